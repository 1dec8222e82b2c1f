//! Order events for the outbox: written in the transaction of the change they report,
//! read by pull consumers through [`App::events`] and pushed by the webhook and NATS
//! relays. Payloads are versioned (`version` 1: the order's summary, below). Each event
//! names its actor (the request's caller, or `system`; see [`acting_as`]).
//!
//! Order types: `order.created` (every new order), then in the same transaction
//! `order.allocated` (some units allocated; also when backorders are filled),
//! `order.backordered`, `order.on_hold` (placed with holds, or a hold added),
//! `order.substituted`; `order.released` (last hold released); `order.line_cancelled`,
//! `order.cancelled`; `order.rerouted` (units re-sourced after a failure);
//! `order.delivered`; `order.customer_contact`; from the jeopardy sweep `order.at_risk`,
//! `order.late` and `order.service_upgraded`. Fulfillment and shipment events are made
//! in [`crate::fulfillment`], `inventory.changed` in [`crate::inventory`].

use allot_core::ChannelId;
use allot_store::{
    CommitmentRow, EventFilter, FulfillmentOrderRow, NewEvent, ShipmentRow, StoredEvent, StoredOrder, StoredPosition,
    SupplyRow,
};
use serde_json::json;

use crate::{App, Result};

tokio::task_local! {
    /// Who the events written by the current task are attributed to.
    static ACTOR: String;
}

/// Runs `f` with `actor` (`channel:<id>`, `node:<id>`, `operator`) as the author of the
/// events it writes. Outside it (sweeps, relays) the actor is `system`.
pub async fn acting_as<F: std::future::Future>(actor: String, f: F) -> F::Output {
    ACTOR.scope(actor, f).await
}

/// The actor of the current task.
pub(crate) fn current_actor() -> String {
    ACTOR.try_with(Clone::clone).unwrap_or_else(|_| "system".to_owned())
}

/// A time in milliseconds since the epoch as RFC 3339 (UTC); empty when out of range.
pub fn ms_to_rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// Positions listed in one `inventory.changed` event at most; a larger write lists the
/// first ones and says how many there were.
pub const INVENTORY_EVENT_POSITIONS_MAX: usize = 1000;

/// Every event type Allot writes, for subscriptions to name (an unknown type is refused,
/// so a typo cannot subscribe to nothing). `fulfillment_order.<status>` and
/// `shipment.<scan>` follow their status and scan lists.
pub fn event_types() -> Vec<String> {
    let fixed = [
        "order.created",
        "order.allocated",
        "order.backordered",
        "order.on_hold",
        "order.hold_released",
        "order.released",
        "order.line_cancelled",
        "order.cancelled",
        "order.rerouted",
        "order.substituted",
        "order.delivered",
        "order.customer_contact",
        "order.at_risk",
        "order.late",
        "order.service_upgraded",
        "order.supply_committed",
        "supply.expected",
        "supply.received",
        "supply.cancelled",
        "supply.closed",
        "inventory.changed",
        "fulfillment_order.service_upgraded",
        "shipment.shipped",
    ];
    let statuses = allot_core::FoStatus::ALL.iter().map(|s| format!("fulfillment_order.{}", s.as_str()));
    let scans = crate::fulfillment::ScanKind::ALL.iter().map(|k| format!("shipment.{}", k.as_str()));
    let mut all: Vec<String> = fixed.iter().map(|t| (*t).to_owned()).chain(statuses).chain(scans).collect();
    all.sort();
    all.dedup();
    all
}

/// Payload version of every event type so far.
pub const EVENT_VERSION: i32 = 1;

/// The order summary carried by order events.
/// Who an order's events concern and where it goes: what a notification service needs
/// to write to the customer (read from the captured document; absent parts are null).
#[derive(serde::Deserialize, Default)]
struct Addressee {
    #[serde(default)]
    customer: Option<crate::CapturedCustomer>,
    #[serde(default)]
    ship_to: Option<crate::CapturedShipTo>,
}

/// What every event of an order says about it (the addressee read from the document once).
fn order_base(o: &StoredOrder) -> serde_json::Value {
    let to: Addressee = serde_json::from_str(&o.document).unwrap_or_default();
    let customer = to.customer.map(|c| json!({"id": c.id, "name": c.name, "email": c.email, "phone": c.phone}));
    let ship_to = to.ship_to.map(|a| {
        json!({"name": a.name, "address1": a.address1, "city": a.city, "region": a.region,
               "postal_code": a.postal_code, "country": a.country})
    });
    json!({
        "order_id": o.order_id, "channel": o.channel, "external_id": o.external_id, "status": o.status,
        "customer": customer, "ship_to": ship_to,
        "holds": o.holds,
        "lines": o.lines.iter().map(|l| json!({"line_id": l.line_id, "sku": l.sku, "quantity": l.quantity,
            "allocated": l.allocated, "backordered": l.backordered, "unfilled": l.unfilled,
            "cancelled": l.cancelled, "status": l.status})).collect::<Vec<_>>(),
        "fulfillment_orders": o.fulfillment_orders.iter().map(|f| json!({"id": f.fulfillment_order_id,
            "node_id": f.node_id, "status": f.status})).collect::<Vec<_>>(),
    })
}

/// An order event from its base (see [`order_base`]) and what this event adds.
fn order_event_from(
    kind: &str,
    o: &StoredOrder,
    mut data: serde_json::Value,
    at_ms: i64,
    extra: serde_json::Value,
) -> NewEvent {
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    new_event(kind, Some(&o.channel), Some(&o.order_id), None, at_ms, data.to_string())
}

/// An outbox event with a fresh id, the current actor and the current payload version.
pub(crate) fn new_event(
    kind: impl Into<String>,
    channel: Option<&str>,
    order_id: Option<&str>,
    node_id: Option<&str>,
    at_ms: i64,
    data: String,
) -> NewEvent {
    NewEvent {
        event_id: crate::rows::new_event_id(at_ms),
        event_type: kind.into(),
        channel: channel.map(str::to_owned),
        order_id: order_id.map(str::to_owned),
        node_id: node_id.map(str::to_owned),
        at_ms,
        version: EVENT_VERSION,
        data,
        actor: Some(current_actor()),
    }
}

/// An event about an order.
pub(crate) fn order_event(kind: &str, o: &StoredOrder, at_ms: i64, extra: serde_json::Value) -> NewEvent {
    order_event_from(kind, o, order_base(o), at_ms, extra)
}

/// The events of a newly placed order.
pub(crate) fn placed_events(o: &StoredOrder, holds: &[crate::HoldNote], at_ms: i64) -> Vec<NewEvent> {
    // Placement is the hot path: the document is read once for all of them.
    let base = order_base(o);
    let event = |kind: &str, extra| order_event_from(kind, o, base.clone(), at_ms, extra);
    let mut events = vec![event("order.created", json!({}))];
    if o.lines.iter().any(|l| l.allocated > 0) {
        events.push(event("order.allocated", json!({})));
    }
    if o.lines.iter().any(|l| l.backordered > 0) {
        events.push(event("order.backordered", json!({})));
    }
    // One per hold, with who placed it and why (`App::order_holds` reads them back).
    events.extend(holds.iter().map(|h| event("order.on_hold", h.event_data())));
    events
}

/// An event about a fulfillment order: `fulfillment_order.<status>`.
pub(crate) fn fo_event(fo: &FulfillmentOrderRow, channel: &str, at_ms: i64, extra: serde_json::Value) -> NewEvent {
    fo_event_named(&format!("fulfillment_order.{}", fo.status), fo, channel, at_ms, extra)
}

/// An event about a fulfillment order with its own type.
pub(crate) fn fo_event_named(
    kind: &str,
    fo: &FulfillmentOrderRow,
    channel: &str,
    at_ms: i64,
    extra: serde_json::Value,
) -> NewEvent {
    let mut data = json!({
        "fulfillment_order_id": fo.fulfillment_order_id, "order_id": fo.order_id, "node_id": fo.node_id,
        "kind": fo.kind, "attempt": fo.attempt, "status": fo.status, "reason": fo.reason,
    });
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    new_event(kind, Some(channel), Some(&fo.order_id), Some(&fo.node_id), at_ms, data.to_string())
}

pub(crate) fn shipment_event(sh: &ShipmentRow, channel: &str, kind: &str, at_ms: i64) -> NewEvent {
    let data = json!({
        "shipment_id": sh.shipment_id, "fulfillment_order_id": sh.fulfillment_order_id,
        "carrier": sh.carrier, "tracking_number": sh.tracking_number, "status": sh.status,
        "detail": sh.detail,
        "lines": serde_json::from_str::<serde_json::Value>(&sh.lines).unwrap_or(serde_json::Value::Null),
    });
    let kind = format!("shipment.{kind}");
    new_event(kind, Some(channel), Some(&sh.order_id), Some(&sh.node_id), at_ms, data.to_string())
}

/// `order.substituted` when some of an order's units come as another SKU.
pub(crate) fn substitution_event(o: &StoredOrder, now: i64) -> Option<allot_store::NewEvent> {
    let subs: Vec<serde_json::Value> = o
        .allocations
        .iter()
        .filter_map(|a| {
            let line = o.lines.iter().find(|l| l.line_id == a.line_id)?;
            (line.sku != a.sku).then(|| {
                json!({"line_id": a.line_id, "ordered_sku": line.sku, "sku": a.sku, "node_id": a.node_id,
                       "quantity": a.quantity})
            })
        })
        .collect();
    (!subs.is_empty()).then(|| order_event("order.substituted", o, now, json!({"substitutions": subs})))
}

/// `inventory.changed`: the positions a feed write changed (at most
/// [`INVENTORY_EVENT_POSITIONS_MAX`] listed).
pub(crate) fn inventory_changed(written: &[StoredPosition], now: i64) -> allot_store::NewEvent {
    let first = written.first().map(|p| p.position.node_id.to_string());
    let one_node = written.iter().all(|p| Some(p.position.node_id.to_string()) == first);
    let positions: Vec<serde_json::Value> = written
        .iter()
        .take(INVENTORY_EVENT_POSITIONS_MAX)
        .map(|p| {
            serde_json::json!({"node_id": p.position.node_id.as_str(), "sku": p.position.sku.as_str(),
                "on_hand": p.position.counts.on_hand.get(), "atp": p.position.counts.atp().get()})
        })
        .collect();
    let data = serde_json::json!({
        "count": written.len(),
        "truncated": written.len() > INVENTORY_EVENT_POSITIONS_MAX,
        "positions": positions,
    });
    let node = if one_node { first.as_deref() } else { None };
    new_event("inventory.changed", None, None, node, now, data.to_string())
}

/// `order.supply_committed`: every unit of the order now expected from supply (an empty
/// list: nothing any more).
pub(crate) fn commitment_event(
    order_id: &str,
    channel: Option<&str>,
    sku: &str,
    rows: &[CommitmentRow],
    supplies: &[SupplyRow],
    now: i64,
) -> allot_store::NewEvent {
    let expected: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|c| {
            let s = supplies.iter().find(|s| s.supply_id == c.supply_id)?;
            Some(json!({"line_id": c.line_id, "supply_id": c.supply_id, "node_id": s.node_id,
                        "quantity": c.quantity, "eta": ms_to_rfc3339(s.eta_ms)}))
        })
        .collect();
    let data = json!({"order_id": order_id, "sku": sku, "expected": expected});
    new_event("order.supply_committed", channel, Some(order_id), None, now, data.to_string())
}

/// `supply.received`: a receipt of `units` (the supply's `received` counts all of them;
/// status `expected` while units are still to come).
pub(crate) fn supply_receipt_event(
    s: &SupplyRow,
    units: i64,
    reference: Option<&str>,
    now: i64,
) -> allot_store::NewEvent {
    let data = json!({"supply_id": s.supply_id, "node_id": s.node_id, "sku": s.sku, "quantity": s.quantity,
                      "received": s.received, "receipt": {"quantity": units, "reference": reference},
                      "eta": ms_to_rfc3339(s.eta_ms), "status": s.status});
    new_event("supply.received", None, None, Some(&s.node_id), now, data.to_string())
}

pub(crate) fn supply_event(kind: &str, s: &SupplyRow, now: i64) -> allot_store::NewEvent {
    let data = json!({"supply_id": s.supply_id, "node_id": s.node_id, "sku": s.sku, "quantity": s.quantity,
                      "received": s.received, "eta": ms_to_rfc3339(s.eta_ms), "status": s.status});
    new_event(kind, None, None, Some(&s.node_id), now, data.to_string())
}

impl App {
    /// Events after a cursor, oldest first; a channel key sees only its channel's events.
    pub async fn events(&self, mut filter: EventFilter, channel: Option<&ChannelId>) -> Result<Vec<StoredEvent>> {
        if let Some(c) = channel {
            filter.channel = Some(c.to_string());
        }
        Ok(self.inner.store.events(&filter).await?)
    }
}

/// Ways a customer reaches customer service.
pub const CONTACT_CHANNELS: [&str; 3] = ["phone", "chat", "email"];

impl App {
    /// Every event of an order, oldest first, with its actor (the customer-service
    /// timeline). The caller has already been allowed to see the order.
    pub async fn order_timeline(&self, order_id: &allot_core::OrderId) -> Result<Vec<StoredEvent>> {
        let order_id = order_id.as_str();
        Ok(self.inner.store.order_events(order_id).await?)
    }

    pub async fn order_contacts(&self, order_id: &allot_core::OrderId) -> Result<Vec<allot_store::ContactRow>> {
        let order_id = order_id.as_str();
        Ok(self.inner.store.order_contacts(order_id).await?)
    }

    /// Records a customer-service contact about an order (the contact-rate KPI counts
    /// them), with an `order.customer_contact` event.
    pub async fn record_contact(
        &self,
        order_id: &allot_core::OrderId,
        contact_channel: &str,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<allot_store::ContactRow> {
        let order_id = order_id.as_str();
        let mut errors = Vec::new();
        if !CONTACT_CHANNELS.contains(&contact_channel) {
            errors.push(crate::FieldError::new("channel", format!("one of {}", CONTACT_CHANNELS.join(", "))));
        }
        if reason.trim().is_empty() || reason.chars().count() > crate::rows::REASON_MAX_CHARS {
            errors.push(crate::FieldError::new(
                "reason",
                format!("must be 1–{} characters", crate::rows::REASON_MAX_CHARS),
            ));
        }
        if !errors.is_empty() {
            return Err(crate::AppError::Invalid(errors));
        }
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let order = self.lock_for_change(&mut tx, order_id, channel).await?;
        let contact = allot_store::ContactRow {
            contact_id: self.new_id("ctc", now),
            order_id: order_id.to_owned(),
            channel: contact_channel.to_owned(),
            reason: reason.to_owned(),
            actor: current_actor(),
            at_ms: now,
        };
        tx.insert_contact(&contact).await?;
        let event = order_event(
            "order.customer_contact",
            &order,
            now,
            json!({"contact_id": contact.contact_id, "contact_channel": contact_channel, "reason": reason}),
        );
        tx.insert_events(&[event]).await?;
        tx.commit().await?;
        Ok(contact)
    }
}
