//! Holds: an order with a hold keeps its fulfillment orders back from their nodes, and
//! work a node accepted before the hold may be picked but not packed, shipped or handed
//! over until the hold goes (`allot_core::hold::blocks`); the last release sends held
//! work to its nodes.
//!
//! Where a hold's details live: the order row keeps the kinds it has now (its status
//! reads them); who placed each one, when and why is the `order.on_hold` event that
//! placed it (an audit trail by construction, read back by [`App::order_holds`]).
//! Decision: no table of its own — holds are few per order, always read with the order,
//! and the event is written in the same transaction as the hold in every case, including
//! one-statement placement.

use allot_core::HoldKind;

use super::*;

/// Longest reason a hold may carry.
pub const HOLD_REASON_MAX: usize = 200;

/// A hold placed on an order, with what the event that placed it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldNote {
    pub hold: HoldKind,
    /// Why (the caller's words, or the policy rule's reason).
    pub reason: Option<String>,
    /// Who: `operator`, `channel:<id>`, or `policy:<policy>/<rule>`.
    pub placed_by: String,
}

impl HoldNote {
    /// The payload of the `order.on_hold` event that places it.
    pub(crate) fn event_data(&self) -> serde_json::Value {
        json!({"hold": self.hold.as_str(), "reason": self.reason, "placed_by": self.placed_by})
    }
}

/// An active hold as shown with the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    pub note: HoldNote,
    pub placed_at_ms: i64,
}

impl App {
    /// Adds a hold. Work not yet accepted is held back; accepted work may not be packed,
    /// shipped or handed over until it is released. Refused (409) once nothing is left
    /// to hold: the order is cancelled, or every open unit has left its node. Adding a
    /// hold the order already has changes nothing.
    pub async fn add_hold(
        &self,
        order_id: &allot_core::OrderId,
        hold: HoldKind,
        reason: Option<String>,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        if reason.as_ref().is_some_and(|r| r.trim().is_empty() || r.chars().count() > HOLD_REASON_MAX) {
            return Err(AppError::invalid("reason", format!("1–{HOLD_REASON_MAX} characters")));
        }
        let order_id = order_id.as_str();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        if let Some(why) = nothing_to_hold(&order) {
            tx.rollback().await?;
            return Err(AppError::Conflict(vec![FieldError::new("hold", why)]));
        }
        if !order.holds.iter().any(|h| h == hold.as_str()) {
            order.holds.push(hold.as_str().to_owned());
            let now = self.now_ms();
            for fo in order.fulfillment_orders.iter_mut() {
                if let Ok(Transition::To(to)) =
                    allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Hold, fo_kind(fo)?)
                {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = None;
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
            let status = order_status(&order.lines, &order.holds);
            tx.update_order(order_id, status, &order.holds).await?;
            order.status = status.to_owned();
            let note = HoldNote { hold, reason, placed_by: crate::events::current_actor() };
            let event = crate::events::order_event("order.on_hold", &order, now, note.event_data());
            tx.insert_events(&[event]).await?;
        }
        tx.commit().await?;
        self.order_by_id(order_id).await
    }

    /// Releases a hold, any of them: `order.hold_released` names it and what remains;
    /// when the last one goes, held work is released to its nodes (`order.released`).
    /// Releasing a hold the order does not have is "not found". A channel may not
    /// release a fraud hold it did not place itself (403).
    pub async fn release_hold(
        &self,
        order_id: &allot_core::OrderId,
        hold: HoldKind,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        // Who placed it: the event that placed it, committed before this release began.
        let placer = match channel {
            Some(_) => self.order_holds_now(order_id, &[hold.as_str().to_owned()]).await?,
            None => Vec::new(),
        };
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        let Some(at) = order.holds.iter().position(|h| h == hold.as_str()) else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "hold", id: format!("{order_id}/{}", hold.as_str()) });
        };
        if let Some(c) = channel {
            let own = placer.iter().any(|p| p.note.placed_by == format!("channel:{c}"));
            if !hold.channel_may_release(own) {
                tx.rollback().await?;
                return Err(AppError::Forbidden { action: "release a fraud hold placed by an operator or a policy" });
            }
        }
        order.holds.remove(at);
        let now = self.now_ms();
        if order.holds.is_empty() {
            for fo in order.fulfillment_orders.iter_mut() {
                let next = allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Release, fo_kind(fo)?);
                if let Ok(Transition::To(to)) = next {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = Some(now);
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
        }
        let status = order_status(&order.lines, &order.holds);
        tx.update_order(order_id, status, &order.holds).await?;
        order.status = status.to_owned();
        let released =
            json!({"hold": hold.as_str(), "released_by": crate::events::current_actor(), "remaining": order.holds});
        let mut events = vec![crate::events::order_event("order.hold_released", &order, now, released)];
        if order.holds.is_empty() && status != "cancelled" {
            events.push(crate::events::order_event("order.released", &order, now, json!({"hold": hold.as_str()})));
        }
        tx.insert_events(&events).await?;
        tx.commit().await?;
        self.order_by_id(order_id).await
    }

    /// The order's active holds with who placed them, when and why (from the events that
    /// placed them; see the module docs).
    pub async fn order_holds(&self, order: &StoredOrder) -> Result<Vec<ActiveHold>> {
        if order.holds.is_empty() {
            return Ok(Vec::new());
        }
        self.order_holds_now(&order.order_id, &order.holds).await
    }

    async fn order_holds_now(&self, order_id: &str, holds: &[String]) -> Result<Vec<ActiveHold>> {
        // Each placement of a hold, oldest first, its payload read once.
        let events = self.inner.store.order_events(order_id).await?;
        let mut placed: Vec<(HoldKind, serde_json::Value, &allot_store::StoredEvent)> = Vec::new();
        for e in events.iter().filter(|e| e.event_type == "order.on_hold") {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
            if let Some(hold) = data["hold"].as_str().and_then(HoldKind::parse) {
                placed.push((hold, data, e));
            }
        }
        let active = holds
            .iter()
            .filter_map(|kind| HoldKind::parse(kind))
            .map(|hold| {
                // The latest placement of this kind (a hold released and placed again
                // shows its second placement); orders placed before holds carried their
                // details have none.
                match placed.iter().rev().find(|(h, _, _)| *h == hold) {
                    Some((_, data, e)) => ActiveHold {
                        note: HoldNote {
                            hold,
                            reason: data["reason"].as_str().map(str::to_owned),
                            placed_by: data["placed_by"].as_str().or(e.actor.as_deref()).unwrap_or("system").to_owned(),
                        },
                        placed_at_ms: e.at_ms,
                    },
                    None => ActiveHold {
                        note: HoldNote { hold, reason: None, placed_by: "unknown".to_owned() },
                        placed_at_ms: 0,
                    },
                }
            })
            .collect();
        Ok(active)
    }
}

/// Why a new hold would hold nothing, if it would not: the order is cancelled, or every
/// unit not cancelled has left its node (shipped, delivered or picked up).
fn nothing_to_hold(order: &StoredOrder) -> Option<String> {
    if order.status == "cancelled" {
        return Some("the order is cancelled".to_owned());
    }
    let open: i64 = order.lines.iter().map(|l| l.quantity - l.cancelled - l.shipped).sum();
    (open <= 0).then(|| "every unit of the order has left its node: a hold cannot stop it any more".to_owned())
}
