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
use allot_store::{EventFilter, NewEvent, StoredEvent, StoredOrder};
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

/// Payload version of every event type so far.
pub const EVENT_VERSION: i32 = 1;

/// The order summary carried by order events.
fn order_data(o: &StoredOrder, extra: serde_json::Value) -> String {
    let mut data = json!({
        "order_id": o.order_id, "channel": o.channel, "external_id": o.external_id, "status": o.status,
        "holds": o.holds,
        "lines": o.lines.iter().map(|l| json!({"line_id": l.line_id, "sku": l.sku, "quantity": l.quantity,
            "allocated": l.allocated, "backordered": l.backordered, "unfilled": l.unfilled,
            "cancelled": l.cancelled, "status": l.status})).collect::<Vec<_>>(),
        "fulfillment_orders": o.fulfillment_orders.iter().map(|f| json!({"id": f.fulfillment_order_id,
            "node_id": f.node_id, "status": f.status})).collect::<Vec<_>>(),
    });
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    data.to_string()
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
        event_id: crate::orders::new_id("evt"),
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
    new_event(kind, Some(&o.channel), Some(&o.order_id), None, at_ms, order_data(o, extra))
}

/// The events of a newly placed order.
pub(crate) fn placed_events(o: &StoredOrder, at_ms: i64) -> Vec<NewEvent> {
    let mut events = vec![order_event("order.created", o, at_ms, json!({}))];
    if o.lines.iter().any(|l| l.allocated > 0) {
        events.push(order_event("order.allocated", o, at_ms, json!({})));
    }
    if o.lines.iter().any(|l| l.backordered > 0) {
        events.push(order_event("order.backordered", o, at_ms, json!({})));
    }
    if !o.holds.is_empty() {
        events.push(order_event("order.on_hold", o, at_ms, json!({})));
    }
    events
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
    pub async fn order_timeline(&self, order_id: &str) -> Result<Vec<StoredEvent>> {
        Ok(self.inner.store.order_events(order_id).await?)
    }

    pub async fn order_contacts(&self, order_id: &str) -> Result<Vec<allot_store::ContactRow>> {
        Ok(self.inner.store.order_contacts(order_id).await?)
    }

    /// Records a customer-service contact about an order (the contact-rate KPI counts
    /// them), with an `order.customer_contact` event.
    pub async fn record_contact(
        &self,
        order_id: &str,
        contact_channel: &str,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<allot_store::ContactRow> {
        let mut errors = Vec::new();
        if !CONTACT_CHANNELS.contains(&contact_channel) {
            errors.push(crate::FieldError::new("channel", format!("one of {}", CONTACT_CHANNELS.join(", "))));
        }
        if reason.trim().is_empty() || reason.chars().count() > crate::orders::REASON_MAX_CHARS {
            errors.push(crate::FieldError::new(
                "reason",
                format!("must be 1–{} characters", crate::orders::REASON_MAX_CHARS),
            ));
        }
        if !errors.is_empty() {
            return Err(crate::AppError::Invalid(errors));
        }
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let order = self.lock_for_change(&mut tx, order_id, channel).await?;
        let contact = allot_store::ContactRow {
            contact_id: crate::orders::new_id("ctc"),
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
