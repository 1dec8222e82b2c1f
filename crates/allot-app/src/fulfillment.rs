//! Fulfillment execution: nodes accept, reject, pick, pack, ship and hand over their
//! fulfillment orders; carriers report scans; failures are re-sourced.
//!
//! Every action is one transaction that locks the order first (every change to an order
//! does), asks the core's transition table ([`allot_core::fulfillment::next`]) whether the
//! move is legal, moves the stock it implies, writes the new state and its events. An
//! illegal move is a conflict and changes nothing; repeating the move that produced the
//! current status answers the current state and changes nothing (safe retries).
//!
//! Stock: allocated units stay in `positions.allocated` until they leave the node —
//! shipped or picked up (then on hand and allocated both go down, [`StockMove::Consume`]),
//! or written off as not found by a short pick (same move). A rejection gives them back to
//! ATP ([`StockMove::Release`]).
//!
//! Re-sourcing ([`App::reroute_in`]): units a node gave back (rejection, short pick,
//! release timeout) are sourced again, in the same transaction, through the active policy
//! with every node that already failed this order excluded. What no node can take is
//! backordered when the line and the policy allow it, else cancelled with a reason. Every
//! re-sourcing is a numbered attempt stored with the order (`sourcing_attempts`).

use std::collections::{BTreeMap, BTreeSet};

use allot_core::sourcing::{JeopardyAction, LineToSource, OrderToSource, upgraded_service_level};
use allot_core::{FoEvent, FoKind, FoStatus, NodeId, Qty, Sku, Transition};
use allot_store::{
    AllocationRow, FulfillmentOrderEntry, FulfillmentOrderFilter, FulfillmentOrderRow, NewEvent, ShipmentRow,
    SourcingAttemptRow, StockMove, StoredOrder, StoredPosition, Tx,
};
use serde::Deserialize;
use serde_json::json;

use crate::events::{fo_event, fo_event_named, shipment_event};
use crate::rows::{fo_kind, fo_status, line_status, new_allocation, new_fulfillment_order, new_id, order_status};
use crate::workers::ErrorChain;
use crate::{App, AppError, FieldError, ListPage, Result};

/// Longest reason, carrier name or tracking number accepted.
pub const FULFILLMENT_TEXT_MAX: usize = 100;
/// Most packages one ship action may list.
pub const PACKAGES_MAX: usize = 50;
/// Times an action runs when concurrent transactions deadlock it (PostgreSQL).
pub const ACTION_ATTEMPTS: usize = 3;
/// Fulfillment orders timed out per sweep (the rest wait for the next sweep: a node
/// outage cannot turn one sweep into an unbounded reroute storm).
pub const TIMEOUT_BATCH: i64 = 100;
/// Backordered orders sourced again per stock increase (oldest first; the rest wait for
/// the next increase of their SKU).
pub const BACKORDER_BATCH: i64 = 100;
/// Pages of backordered orders one stock increase works through at most.
pub const BACKORDER_PAGES: usize = 50;
/// Consecutive pages that fill nothing after which a fill stops.
pub const BACKORDER_IDLE_PAGES: usize = 2;
/// Fulfillment orders moved off paused or closed nodes per sweep.
pub const DISRUPTION_BATCH: i64 = 100;
/// Rounds of planning and taking stock when re-sourcing (a round fails where a concurrent
/// order took the planned stock first; the units left after the last round are
/// backordered or cancelled).
pub const REROUTE_ROUNDS: usize = 3;

/// A picked quantity for one line of a fulfillment order (and, for a line whose units
/// come partly as a substitute, for one of its SKUs).
#[derive(Debug, Clone)]
pub struct PickedLine {
    pub line_id: String,
    /// Required when the line has several SKUs here (a substitute); else optional.
    pub sku: Option<String>,
    pub picked_quantity: u64,
}

/// A parcel handed to a carrier.
#[derive(Debug, Clone)]
pub struct Package {
    pub carrier: String,
    pub tracking_number: String,
    /// (line id, units); `None` with a single package: everything in the fulfillment order.
    pub lines: Option<Vec<(String, u64)>>,
}

/// What a node (or an operator, or the system) does to a fulfillment order.
#[derive(Debug, Clone)]
pub enum FoAction {
    Accept,
    Reject {
        reason: String,
    },
    /// Lines not listed were picked in full; fewer units than allocated is a short pick.
    Pick {
        lines: Vec<PickedLine>,
    },
    Pack,
    Ship {
        packages: Vec<Package>,
    },
    ReadyForPickup,
    PickedUp,
    Deliver {
        delivered_at_ms: Option<i64>,
    },
    /// The system's: the node did not accept in time (the policy's
    /// `accept_within_minutes`). A rejection, but only of work still `released` before
    /// `released_before_ms` (a node that accepted meanwhile keeps it).
    ReleaseTimeout {
        released_before_ms: i64,
    },
    /// The system's: the node was paused or closed; work not yet picked moves elsewhere.
    Withdraw {
        reason: String,
    },
    /// The system's: released work its node has not accepted since before
    /// `released_before_ms` moves elsewhere (a jeopardy action) — only if other nodes can
    /// take every unit of it; otherwise it stays (a jeopardy action never cancels or
    /// backorders units). Accepted work stays.
    Reassign {
        reason: String,
        released_before_ms: i64,
    },
}

/// How a fulfillment order's units leave its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// To a carrier: shipped, delivered later.
    Carrier,
    /// To the customer at the counter: shipped and delivered at once.
    Customer,
}

impl FoAction {
    /// Why the node failed the work, for the actions that give units back (also the
    /// fulfillment order's recorded reason).
    fn failure_reason(&self) -> Option<String> {
        match self {
            FoAction::Reject { reason } | FoAction::Withdraw { reason } | FoAction::Reassign { reason, .. } => {
                Some(reason.clone())
            }
            FoAction::ReleaseTimeout { .. } => Some("release_timeout".to_owned()),
            FoAction::Pick { .. } => Some("short_pick".to_owned()),
            _ => None,
        }
    }

    fn event(&self) -> FoEvent {
        match self {
            FoAction::Accept => FoEvent::Accept,
            FoAction::Reject { .. } => FoEvent::Reject,
            FoAction::Pick { .. } => FoEvent::Pick,
            FoAction::Pack => FoEvent::Pack,
            FoAction::Ship { .. } => FoEvent::Ship,
            FoAction::ReadyForPickup => FoEvent::ReadyForPickup,
            FoAction::PickedUp => FoEvent::PickedUp,
            FoAction::Deliver { .. } => FoEvent::Deliver,
            FoAction::ReleaseTimeout { .. } => FoEvent::Reject,
            FoAction::Withdraw { .. } | FoAction::Reassign { .. } => FoEvent::Withdraw,
        }
    }
}

/// A carrier's scan of a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
    Delayed,
}

impl ScanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanKind::InTransit => "in_transit",
            ScanKind::OutForDelivery => "out_for_delivery",
            ScanKind::Delivered => "delivered",
            ScanKind::Exception => "exception",
            ScanKind::Delayed => "delayed",
        }
    }

    pub fn parse(text: &str) -> Option<ScanKind> {
        [ScanKind::InTransit, ScanKind::OutForDelivery, ScanKind::Delivered, ScanKind::Exception, ScanKind::Delayed]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A carrier scan as received.
#[derive(Debug, Clone)]
pub struct Scan {
    pub kind: ScanKind,
    pub at_ms: i64,
    pub detail: Option<String>,
}

fn text_field(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() || value.chars().count() > FULFILLMENT_TEXT_MAX {
        errors.push(FieldError::new(field, format!("must be 1–{FULFILLMENT_TEXT_MAX} characters")));
    }
}

/// Checks what can be checked without the fulfillment order.
fn validate(action: &FoAction) -> Result<()> {
    let mut e = Vec::new();
    match action {
        FoAction::Reject { reason } => text_field(&mut e, "reason", reason),
        FoAction::Ship { packages } => {
            if packages.is_empty() || packages.len() > PACKAGES_MAX {
                e.push(FieldError::new("packages", format!("1–{PACKAGES_MAX} packages")));
            }
            let mut seen = BTreeSet::new();
            for (i, p) in packages.iter().enumerate() {
                text_field(&mut e, &format!("packages[{i}].carrier"), &p.carrier);
                text_field(&mut e, &format!("packages[{i}].tracking_number"), &p.tracking_number);
                if !seen.insert(p.tracking_number.as_str()) {
                    e.push(FieldError::new(format!("packages[{i}].tracking_number"), "repeated"));
                }
                if p.lines.is_none() && packages.len() > 1 {
                    e.push(FieldError::new(format!("packages[{i}].lines"), "required when there are several packages"));
                }
                for (j, (_, q)) in p.lines.iter().flatten().enumerate() {
                    if *q == 0 {
                        e.push(FieldError::new(format!("packages[{i}].lines[{j}].quantity"), "must be at least 1"));
                    }
                }
            }
        }
        _ => {}
    }
    if e.is_empty() { Ok(()) } else { Err(AppError::Invalid(e)) }
}

/// The order as captured, read back for re-sourcing (it was validated at capture; only
/// what the engine needs is read).
#[derive(Deserialize)]
struct Captured {
    #[serde(default)]
    customer: Option<CapturedCustomer>,
    #[serde(default)]
    ship_to: Option<CapturedShipTo>,
    lines: Vec<CapturedLine>,
    /// `ship:<service level>:<date>` when the order was placed on a promise.
    #[serde(default)]
    promise_option_id: Option<String>,
}

#[derive(Deserialize)]
struct CapturedCustomer {
    #[serde(default)]
    tier: Option<String>,
}

#[derive(Deserialize)]
struct CapturedShipTo {
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Deserialize)]
struct CapturedLine {
    line_id: String,
    sku: String,
    #[serde(default)]
    unit_price_minor: i64,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    pickup_node_id: Option<String>,
    #[serde(default)]
    service_level: Option<String>,
    #[serde(default)]
    allow_backorder: bool,
}

/// The engine's view of a stored order, every line at quantity 1 (callers set the units
/// to source).
fn captured_order(order: &StoredOrder) -> Result<OrderToSource> {
    let corrupt = |detail: String| {
        AppError::Store(allot_store::StoreError::Corrupt {
            table: "orders",
            detail: format!("{}: {detail}", order.order_id),
        })
    };
    let c: Captured = serde_json::from_str(&order.document).map_err(|e| corrupt(e.to_string()))?;
    let ship_to = c.ship_to.as_ref().and_then(|s| allot_core::GeoPoint::new(s.lat?, s.lon?).ok());
    let mut lines = Vec::with_capacity(c.lines.len());
    for l in c.lines {
        let method = match l.method.as_deref() {
            None => allot_core::FulfillmentMethod::Ship,
            Some(m) => allot_core::FulfillmentMethod::parse(m).ok_or_else(|| corrupt(format!("method {m}")))?,
        };
        // A jeopardy upgrade holds for any later re-sourcing too.
        let service_level = order
            .lines
            .iter()
            .find(|r| r.line_id == l.line_id)
            .and_then(|r| r.upgraded_service_level.clone())
            .or(l.service_level);
        lines.push(LineToSource {
            line_id: l.line_id,
            sku: Sku::parse(&l.sku).map_err(|e| corrupt(e.to_string()))?,
            quantity: Qty::ONE,
            method,
            pickup_node: l.pickup_node_id.as_deref().and_then(|n| NodeId::parse(n).ok()),
            service_level,
            allow_backorder: l.allow_backorder,
            unit_price_minor: l.unit_price_minor,
        });
    }
    Ok(OrderToSource {
        promise: None,
        channel: allot_core::ChannelId::parse(&order.channel).ok(),
        customer_tier: c.customer.and_then(|c| c.tier),
        ship_to,
        country: c.ship_to.as_ref().and_then(|s| s.country.clone()),
        region: c.ship_to.as_ref().and_then(|s| s.region.clone()),
        lines,
    })
}

/// The promise an order was placed on (`ship:<service level>:<date>`), if any.
fn captured_promise(order: &StoredOrder) -> Option<(String, jiff::civil::Date)> {
    let c: Captured = serde_json::from_str(&order.document).ok()?;
    let option = c.promise_option_id?;
    let mut parts = option.strip_prefix("ship:")?.splitn(2, ':');
    let level = parts.next()?.to_owned();
    let date = parts.next()?.parse().ok()?;
    Some((level, date))
}

/// A fulfillment order of an order with its lines and shipments.
pub(crate) fn entry_of(order: &StoredOrder, fo_id: &str) -> Option<FulfillmentOrderEntry> {
    let fo = order.fulfillment_orders.iter().find(|f| f.fulfillment_order_id == fo_id)?;
    Some(FulfillmentOrderEntry {
        fulfillment_order: fo.clone(),
        lines: order.allocations.iter().filter(|a| a.fulfillment_order_id == fo_id).cloned().collect(),
        shipments: order.shipments.iter().filter(|s| s.fulfillment_order_id == fo_id).cloned().collect(),
    })
}

fn parse_position(a: &AllocationRow) -> Result<(NodeId, Sku)> {
    let corrupt = |d: String| AppError::Store(allot_store::StoreError::Corrupt { table: "allocations", detail: d });
    Ok((
        NodeId::parse(&a.node_id).map_err(|e| corrupt(e.to_string()))?,
        Sku::parse(&a.sku).map_err(|e| corrupt(e.to_string()))?,
    ))
}

/// Everything one action changed, written at the end of the transaction.
#[derive(Default)]
struct Effects {
    written: Vec<StoredPosition>,
    events: Vec<NewEvent>,
    /// Line id → units given back by the node, to re-source.
    reroute: BTreeMap<String, i64>,
}

/// A queue position as a cursor: `<due date>~<id>`.
pub fn queue_cursor(fo: &FulfillmentOrderRow) -> String {
    format!("{}~{}", fo.due_date, fo.fulfillment_order_id)
}

/// The queue position a cursor names; `None` for text no queue page produced.
pub fn parse_queue_cursor(cursor: &str) -> Option<(String, String)> {
    let (date, id) = cursor.split_once('~')?;
    if id.is_empty() || id.contains('~') {
        return None;
    }
    date.parse::<jiff::civil::Date>().ok()?;
    Some((date.to_owned(), id.to_owned()))
}

impl App {
    /// A node's work queue (or, for an admin, any node's), one page: the earliest due date
    /// first (a promised date, else the day the work was made), then creation order. The
    /// cursor is [`queue_cursor`] of the last entry.
    pub async fn list_fulfillment_orders(
        &self,
        mut filter: FulfillmentOrderFilter,
        node: Option<&NodeId>,
    ) -> Result<ListPage<FulfillmentOrderEntry>> {
        if let Some(n) = node {
            if filter.node_id.as_deref().is_some_and(|f| f != n.as_str()) {
                return Ok(ListPage { entries: Vec::new(), next_cursor: None });
            }
            filter.node_id = Some(n.to_string());
        }
        let limit = usize::try_from(filter.limit).unwrap_or(0);
        filter.limit += 1;
        let mut entries = self.inner.store.list_fulfillment_orders(&filter).await?;
        let next_cursor = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| queue_cursor(&e.fulfillment_order))
        } else {
            None
        };
        Ok(ListPage { entries, next_cursor })
    }

    /// One fulfillment order; a node key sees only its own node's (others are not found).
    pub async fn fulfillment_order(&self, fo_id: &str, node: Option<&NodeId>) -> Result<FulfillmentOrderEntry> {
        let not_found = || AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() };
        let Some((order_id, node_id)) = self.inner.store.fulfillment_order_owner(fo_id).await? else {
            return Err(not_found());
        };
        if node.is_some_and(|n| n.as_str() != node_id) {
            return Err(not_found());
        }
        let order = self.order_by_id(&order_id).await?;
        entry_of(&order, fo_id).ok_or_else(not_found)
    }

    /// Applies a node's (or an operator's) action to a fulfillment order (see the module
    /// docs). `node` limits the caller to its own node's fulfillment orders.
    pub async fn act_on_fulfillment_order(
        &self,
        fo_id: &str,
        action: FoAction,
        node: Option<&NodeId>,
    ) -> Result<FulfillmentOrderEntry> {
        validate(&action)?;
        // Positions are locked in key order before any stock moves (below), but a
        // re-sourcing may still meet another transaction's locks: a PostgreSQL deadlock
        // or serialization failure rolled everything back, so the action runs again.
        for attempt in 1..=ACTION_ATTEMPTS {
            match self.act_once(fo_id, &action, node).await {
                Err(AppError::Store(e)) if e.is_retryable_conflict() && attempt < ACTION_ATTEMPTS => continue,
                other => return other,
            }
        }
        Err(AppError::invalid("fulfillment_order", "could not be changed; retry"))
    }

    async fn act_once(&self, fo_id: &str, action: &FoAction, node: Option<&NodeId>) -> Result<FulfillmentOrderEntry> {
        let not_found = || AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() };
        let action = action.clone();
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let Some((order_id, node_id)) = tx.fulfillment_order_owner(fo_id).await? else {
            tx.rollback().await?;
            return Err(not_found());
        };
        if node.is_some_and(|n| n.as_str() != node_id) {
            tx.rollback().await?;
            return Err(not_found());
        }
        let mut order = self.lock_for_change(&mut tx, &order_id, None).await?;
        // Every position this fulfillment order may release or consume, locked in key
        // order first (PostgreSQL), so two actions never lock the same positions in
        // opposite orders.
        let mut keys: Vec<(NodeId, Sku)> = order
            .allocations
            .iter()
            .filter(|a| a.fulfillment_order_id == fo_id && a.quantity > 0)
            .filter_map(|a| parse_position(a).ok())
            .collect();
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            tx.lock_positions(&keys, now).await?;
        }
        let backordered_before: Vec<i64> = order.lines.iter().map(|l| l.backordered).collect();
        let mut fx = Effects::default();
        match self.apply(&mut tx, &mut order, fo_id, &action, now, &mut fx).await {
            Ok(true) => {}
            Ok(false) => {
                tx.rollback().await?;
                return entry_of(&order, fo_id).ok_or_else(not_found);
            }
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
        if let Err(e) = self.finish(&mut tx, &mut order, fo_id, &action, now, &mut fx).await {
            tx.rollback().await?;
            return Err(e);
        }
        self.notify(&mut tx, || self.positions_note(&fx.written)).await?;
        tx.commit().await?;
        self.refresh_positions(fx.written);
        // Backorders this action made (re-sourcing that found no stock) may be promised
        // against supply.
        let moved: Vec<String> = order
            .lines
            .iter()
            .zip(&backordered_before)
            .filter(|(l, b)| l.backordered != **b)
            .map(|(l, _)| l.sku.clone())
            .collect();
        if !moved.is_empty() {
            self.backorders_changed(moved).await;
        }
        let order = self.order_by_id(&order_id).await?;
        entry_of(&order, fo_id).ok_or_else(not_found)
    }

    /// Re-sources what the action gave back, rewrites lines and order status, writes events.
    async fn finish(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        action: &FoAction,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let before = order.status.clone();
        if !fx.reroute.is_empty() {
            let reason = match action {
                FoAction::Reject { reason } => format!("rejected: {reason}"),
                other => other.failure_reason().unwrap_or_else(|| "node_failed".to_owned()),
            };
            let units = std::mem::take(&mut fx.reroute);
            let summary = self.reroute_in(tx, order, &units, Some(fo_id), &reason, now, fx).await?;
            let left_over = |k: &str| summary[k].as_array().is_some_and(|a| !a.is_empty());
            if matches!(action, FoAction::Reassign { .. }) && (left_over("backordered") || left_over("cancelled")) {
                // The caller rolls the whole transaction back: the work stays where it is.
                return Err(AppError::Conflict(vec![FieldError::new(
                    "fulfillment_order",
                    "no other node can take all of its units; it stays",
                )]));
            }
            fx.events.push(crate::events::order_event("order.rerouted", order, now, summary));
        }
        self.write_progress(tx, order, &before, now, fx).await?;
        tx.insert_events(&fx.events).await?;
        Ok(())
    }

    /// Recomputes line and order statuses and writes them; `order.delivered` when the
    /// order just became delivered.
    async fn write_progress(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        before: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for l in order.lines.iter_mut() {
            l.status = line_status(l).to_owned();
            tx.update_line(&order.order_id, l).await?;
        }
        let status = order_status(&order.lines, &order.holds);
        order.status = status.to_owned();
        tx.update_order(&order.order_id, status, &order.holds).await?;
        if status == "delivered" && before != "delivered" {
            fx.events.push(crate::events::order_event("order.delivered", order, now, json!({})));
        }
        Ok(())
    }

    /// The state change of one action inside the order's transaction. `Ok(false)`: a
    /// repeat of the action that produced the current state (nothing to write).
    async fn apply(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        action: &FoAction,
        now: i64,
        fx: &mut Effects,
    ) -> Result<bool> {
        let fi = order
            .fulfillment_orders
            .iter()
            .position(|f| f.fulfillment_order_id == fo_id)
            .ok_or_else(|| AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() })?;
        let (from, kind) = (fo_status(&order.fulfillment_orders[fi])?, fo_kind(&order.fulfillment_orders[fi])?);
        if let FoAction::Withdraw { .. } = action {
            // Re-checked under the order lock: a node resumed meanwhile keeps its work, and
            // pickup work waits for its store (the customer chose that store; moving it
            // needs their consent, so a pause holds it rather than cancelling it).
            let fo = &order.fulfillment_orders[fi];
            let node_active = self.node(&fo.node_id).is_ok_and(|n| n.node.is_active());
            if node_active || kind == allot_core::FoKind::Pickup {
                return Ok(false);
            }
        }
        // A pick that found nothing rejected the work: its retry answers that state.
        if matches!(action, FoAction::Pick { .. })
            && from == FoStatus::Rejected
            && order.fulfillment_orders[fi].reason.as_deref() == Some("short_pick")
        {
            return Ok(false);
        }
        if let FoAction::Reassign { released_before_ms, .. } = action {
            let due = order.fulfillment_orders[fi].released_at_ms.is_some_and(|r| r < *released_before_ms);
            if from != FoStatus::Released || !due {
                return Ok(false);
            }
        }
        if let FoAction::ReleaseTimeout { released_before_ms } = action {
            let due = order.fulfillment_orders[fi].released_at_ms.is_some_and(|r| r < *released_before_ms);
            if from != FoStatus::Released || !due {
                return Ok(false);
            }
        }
        let to = match allot_core::fulfillment::next(from, action.event(), kind) {
            Ok(Transition::To(to)) => to,
            Ok(Transition::Repeat) => return Ok(false),
            // The system's sweeps act on what they listed a moment ago; work that has moved
            // on since (accepted, picked) is simply no longer theirs to move.
            Err(_) if matches!(action, FoAction::Withdraw { .. } | FoAction::Reassign { .. }) => return Ok(false),
            Err(e) => return Err(AppError::Conflict(vec![FieldError::new("status", e.to_string())])),
        };
        let mut to = to;
        let mut reason: Option<String> = None;
        let mut extra = json!({});
        let allocs: Vec<usize> = (0..order.allocations.len())
            .filter(|&i| order.allocations[i].fulfillment_order_id == fo_id && order.allocations[i].quantity > 0)
            .collect();
        let line_index = |order: &StoredOrder, line_id: &str| order.lines.iter().position(|l| l.line_id == line_id);
        match action {
            FoAction::Accept | FoAction::Pack | FoAction::ReadyForPickup => {}
            FoAction::Reject { .. }
            | FoAction::ReleaseTimeout { .. }
            | FoAction::Withdraw { .. }
            | FoAction::Reassign { .. } => {
                for &ai in &allocs {
                    let a = &order.allocations[ai];
                    let (node, sku) = parse_position(a)?;
                    let q = a.quantity;
                    self.move_or_mismatch(tx, StockMove::Release, &node, &sku, q, &order.order_id, now, fx).await?;
                    if let Some(li) = line_index(order, &a.line_id) {
                        order.lines[li].allocated -= q;
                    }
                    *fx.reroute.entry(a.line_id.clone()).or_default() += q;
                }
                reason = action.failure_reason();
            }
            FoAction::Pick { lines } => {
                // Each entry names one row: its line, and its SKU when the line has several
                // here (some units come as a substitute).
                let rows_of = |order: &StoredOrder, p: &PickedLine| -> Vec<usize> {
                    allocs
                        .iter()
                        .copied()
                        .filter(|&ai| order.allocations[ai].line_id == p.line_id)
                        .filter(|&ai| p.sku.as_ref().is_none_or(|s| &order.allocations[ai].sku == s))
                        .collect()
                };
                let mut errors = Vec::new();
                let mut picked_of: BTreeMap<usize, i64> = BTreeMap::new();
                for (i, p) in lines.iter().enumerate() {
                    let rows = rows_of(order, p);
                    match rows.as_slice() {
                        [] => errors.push(FieldError::new(
                            format!("lines[{i}].line_id"),
                            format!("line {} is not in this fulfillment order", p.line_id),
                        )),
                        [ai] => {
                            let here = order.allocations[*ai].quantity;
                            if p.picked_quantity > here as u64 {
                                errors.push(FieldError::new(
                                    format!("lines[{i}].picked_quantity"),
                                    format!("must be 0–{here} (the units of the line here)"),
                                ));
                            } else if picked_of.insert(*ai, p.picked_quantity as i64).is_some() {
                                errors.push(FieldError::new(format!("lines[{i}].line_id"), "repeated"));
                            }
                        }
                        _ => errors.push(FieldError::new(
                            format!("lines[{i}].sku"),
                            format!("line {} has several SKUs here (a substitute): name the SKU", p.line_id),
                        )),
                    }
                }
                if !errors.is_empty() {
                    return Err(AppError::Invalid(errors));
                }
                let mut short_lines = Vec::new();
                for &ai in &allocs {
                    let a = &order.allocations[ai];
                    let picked = picked_of.get(&ai).copied().unwrap_or(a.quantity);
                    let missing = a.quantity - picked;
                    if missing > 0 {
                        let (node, sku) = parse_position(a)?;
                        self.move_or_mismatch(tx, StockMove::Consume, &node, &sku, missing, &order.order_id, now, fx)
                            .await?;
                        if let Some(li) = line_index(order, &a.line_id) {
                            order.lines[li].allocated -= missing;
                        }
                        *fx.reroute.entry(a.line_id.clone()).or_default() += missing;
                        short_lines.push(json!({"line_id": a.line_id, "sku": a.sku, "short": missing}));
                    }
                    let a = &mut order.allocations[ai];
                    a.quantity = picked;
                    a.picked = Some(picked);
                    a.short += missing;
                    tx.update_allocation(a).await?;
                }
                // Nothing found at all: the node has nothing to pack; it failed this work.
                if allocs.iter().all(|&ai| order.allocations[ai].quantity == 0) {
                    to = FoStatus::Rejected;
                    reason = action.failure_reason();
                }
                extra = json!({"short_lines": short_lines});
            }
            FoAction::Ship { packages } => {
                let shipments = self.plan_shipments(tx, order, fo_id, &allocs, packages, now).await?;
                self.hand_over(tx, order, &allocs, Handover::Carrier, now, fx).await?;
                for sh in shipments {
                    // Two ships racing with one tracking number: the second is a conflict.
                    match tx.insert_shipment(&sh).await {
                        Err(e) if e.is_unique_violation() => {
                            return Err(AppError::Conflict(vec![FieldError::new(
                                "packages",
                                format!("tracking number {} is already used by another shipment", sh.tracking_number),
                            )]));
                        }
                        other => other?,
                    }
                    fx.events.push(shipment_event(&sh, &order.channel, "shipped", now));
                    order.shipments.push(sh);
                }
            }
            FoAction::PickedUp => self.hand_over(tx, order, &allocs, Handover::Customer, now, fx).await?,
            FoAction::Deliver { delivered_at_ms } => {
                let at = delivered_at_ms.unwrap_or(now);
                self.mark_delivered(tx, order, fo_id, at, now, fx).await?;
            }
        }
        let fo = &mut order.fulfillment_orders[fi];
        fo.status = to.as_str().to_owned();
        if reason.is_some() {
            fo.reason = reason;
        }
        fo.updated_at_ms = now;
        tx.update_fulfillment_order(fo).await?;
        fx.events.insert(0, fo_event(fo, &order.channel, now, extra));
        Ok(true)
    }

    /// The units of a fulfillment order's rows (`allocs`) leave the node: off its on hand
    /// and allocated, counted as shipped (and delivered, handed to the customer).
    async fn hand_over(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        allocs: &[usize],
        how: Handover,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for &ai in allocs {
            let a = &order.allocations[ai];
            let (node, sku) = parse_position(a)?;
            let q = a.quantity;
            self.move_or_mismatch(tx, StockMove::Consume, &node, &sku, q, &order.order_id, now, fx).await?;
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.shipped += q;
                if how == Handover::Customer {
                    l.delivered += q;
                }
            }
            let a = &mut order.allocations[ai];
            a.shipped = q;
            tx.update_allocation(a).await?;
        }
        Ok(())
    }

    /// Lines of a fulfillment order handed to the customer at its shipments' delivery.
    async fn mark_delivered(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        at_ms: i64,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for a in order.allocations.iter().filter(|a| a.fulfillment_order_id == fo_id && a.shipped > 0) {
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.delivered += a.shipped;
            }
        }
        let mut delivered = Vec::new();
        for sh in order.shipments.iter_mut().filter(|s| s.fulfillment_order_id == fo_id && s.status != "delivered") {
            sh.status = "delivered".to_owned();
            sh.delivered_at_ms = Some(at_ms);
            sh.updated_at_ms = now;
            tx.update_shipment(sh).await?;
            fx.events.push(shipment_event(sh, &order.channel, "delivered", now));
            delivered.push(sh.clone());
        }
        for sh in &delivered {
            if let Some(o) = self.delivery_observation(order, sh, at_ms) {
                tx.insert_delivery_observation(&o).await?;
            }
        }
        Ok(())
    }

    /// The shipments of a ship action: every unit of the fulfillment order in exactly one
    /// package; tracking numbers not used before.
    async fn plan_shipments(
        &self,
        tx: &mut Tx,
        order: &StoredOrder,
        fo_id: &str,
        allocs: &[usize],
        packages: &[Package],
        now: i64,
    ) -> Result<Vec<ShipmentRow>> {
        let mut errors = Vec::new();
        let mut counted: BTreeMap<&str, i64> = BTreeMap::new();
        let mut out = Vec::with_capacity(packages.len());
        for (i, p) in packages.iter().enumerate() {
            if tx.shipment_owner(&p.tracking_number).await?.is_some() {
                return Err(AppError::Conflict(vec![FieldError::new(
                    format!("packages[{i}].tracking_number"),
                    format!("tracking number {} is already used by another shipment", p.tracking_number),
                )]));
            }
            let lines: Vec<(String, i64)> = match &p.lines {
                None => {
                    let mut per_line: BTreeMap<String, i64> = BTreeMap::new();
                    for &ai in allocs {
                        *per_line.entry(order.allocations[ai].line_id.clone()).or_default() +=
                            order.allocations[ai].quantity;
                    }
                    per_line.into_iter().collect()
                }
                // Capped: no line has more than 10⁹ units, and sums must not wrap.
                Some(ls) => {
                    ls.iter().map(|(l, q)| (l.clone(), i64::try_from(*q).unwrap_or(i64::MAX).min(1 << 40))).collect()
                }
            };
            for (j, (line_id, q)) in lines.iter().enumerate() {
                match allocs.iter().find(|&&ai| &order.allocations[ai].line_id == line_id) {
                    Some(&ai) => *counted.entry(order.allocations[ai].line_id.as_str()).or_default() += q,
                    None => errors.push(FieldError::new(
                        format!("packages[{i}].lines[{j}].line_id"),
                        format!("line {line_id} is not in this fulfillment order"),
                    )),
                }
            }
            let fo = order.fulfillment_orders.iter().find(|f| f.fulfillment_order_id == fo_id);
            out.push(ShipmentRow {
                shipment_id: new_id("shp"),
                fulfillment_order_id: fo_id.to_owned(),
                order_id: order.order_id.clone(),
                node_id: fo.map(|f| f.node_id.clone()).unwrap_or_default(),
                carrier: p.carrier.clone(),
                tracking_number: p.tracking_number.clone(),
                status: "shipped".to_owned(),
                lines: serde_json::Value::from(
                    lines.iter().map(|(l, q)| json!({"line_id": l, "quantity": q})).collect::<Vec<_>>(),
                )
                .to_string(),
                detail: None,
                shipped_at_ms: now,
                delivered_at_ms: None,
                updated_at_ms: now,
            });
        }
        let mut here: BTreeMap<&str, i64> = BTreeMap::new();
        for &ai in allocs {
            *here.entry(order.allocations[ai].line_id.as_str()).or_default() += order.allocations[ai].quantity;
        }
        for (line_id, units) in &here {
            let got = counted.get(line_id).copied().unwrap_or(0);
            if got != *units {
                errors.push(FieldError::new(
                    "packages",
                    format!("line {line_id} has {units} units here; the packages carry {got}"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn move_or_mismatch(
        &self,
        tx: &mut Tx,
        how: StockMove,
        node: &NodeId,
        sku: &Sku,
        quantity: i64,
        order_id: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        match tx.move_stock(how, node, sku, quantity as u64, now).await? {
            Some(p) => {
                fx.written.push(p);
                Ok(())
            }
            None => Err(AppError::stock_mismatch(node, sku, "allocated", &format!("order {order_id}"))),
        }
    }

    /// Treats released work not accepted within the active policy's
    /// `accept_within_minutes` as rejected (at most [`TIMEOUT_BATCH`] per call). Answers
    /// how many fulfillment orders timed out. Run by the background sweep; tests call it
    /// with a fixed clock.
    pub async fn sweep_release_timeouts(&self) -> Result<usize> {
        let minutes = {
            let read = self.inner.read.read();
            read.active_policy.as_ref().and_then(|p| p.policy.accept_within_minutes)
        };
        let Some(minutes) = minutes else { return Ok(0) };
        let released_before_ms = self.now_ms() - i64::from(minutes) * 60_000;
        let due = self.inner.store.unaccepted_fulfillment_orders(released_before_ms, TIMEOUT_BATCH).await?;
        let mut timed_out = 0;
        for id in due {
            match self.act_on_fulfillment_order(&id, FoAction::ReleaseTimeout { released_before_ms }, None).await {
                Ok(entry) if entry.fulfillment_order.reason.as_deref() == Some("release_timeout") => timed_out += 1,
                Ok(_) => {}
                // One fulfillment order that cannot be moved must not stop the others.
                Err(e) => tracing::warn!(fulfillment_order = %id, error = %ErrorChain(&e), "release timeout failed"),
            }
        }
        Ok(timed_out)
    }

    /// Moves work not yet picked away from paused and closed nodes, at most
    /// [`DISRUPTION_BATCH`] fulfillment orders per call (a node outage with thousands of
    /// open orders becomes a steady stream of bounded batches, not one storm). Each move is
    /// its own transaction, re-sourced like a rejection (reason `node_paused` or
    /// `node_closed`). Answers how many moved. Run by the background sweep and right after
    /// a node is paused or closed.
    pub async fn sweep_disrupted_nodes(&self) -> Result<usize> {
        let due = self.inner.store.disrupted_fulfillment_orders(DISRUPTION_BATCH).await?;
        let mut moved = 0;
        for (id, node_status) in due {
            let reason = format!("node_{node_status}");
            match self.act_on_fulfillment_order(&id, FoAction::Withdraw { reason: reason.clone() }, None).await {
                Ok(entry) if entry.fulfillment_order.reason.as_deref() == Some(reason.as_str()) => moved += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(fulfillment_order = %id, error = %ErrorChain(&e), "moving work off a disrupted node failed")
                }
            }
        }
        Ok(moved)
    }

    /// Sources the backordered units of orders with lines of `skus`, the oldest promise
    /// first (earliest promised date, then order age; unpromised orders after promised
    /// ones), in pages of [`BACKORDER_BATCH`] orders. Each order is its own transaction and
    /// a numbered attempt (reason `supply_arrived`) when it got anything. It pages on while
    /// any of the SKUs still has stock at an active node, so orders that cannot take the
    /// new stock (it sits at a node they excluded) do not starve the ones behind them;
    /// at most [`BACKORDER_PAGES`] pages per call bound one stock increase's work.
    /// Answers how many orders got units. Run after inventory writes that raise stock.
    pub async fn fill_backorders(&self, skus: &[String]) -> Result<usize> {
        // Most stock increases find no backorder at all: one indexed probe, not a query
        // carrying every SKU of a 100,000-position feed batch.
        if skus.is_empty() || !self.inner.store.has_backorders().await? {
            return Ok(0);
        }
        let all_skus = skus.to_vec();
        let mut skus = skus.to_vec();
        let mut filled = 0;
        let mut after = None;
        let mut idle_pages = 0;
        for _page in 0..BACKORDER_PAGES {
            skus.retain(|s| self.in_stock(s));
            if skus.is_empty() {
                break;
            }
            let page = self.inner.store.backordered_orders(&skus, after.as_ref(), BACKORDER_BATCH).await?;
            let mut page_filled = 0;
            for (id, _) in &page {
                match self.fill_backorder(id).await {
                    Ok(true) => page_filled += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(order = %id, error = %ErrorChain(&e), "filling a backorder failed"),
                }
            }
            filled += page_filled;
            idle_pages = if page_filled == 0 { idle_pages + 1 } else { 0 };
            // Stock no order in two whole pages could use is out of reach for this
            // backlog (excluded or protected nodes): stop rather than walk all of it.
            if (page.len() as i64) < BACKORDER_BATCH || idle_pages >= BACKORDER_IDLE_PAGES {
                break;
            }
            after = page.last().map(|(id, p)| (p.clone(), id.clone()));
        }
        if filled > 0 {
            self.backorders_changed(all_skus).await;
        }
        Ok(filled)
    }

    /// Whether some active node has available stock of `sku` (read model).
    fn in_stock(&self, sku: &str) -> bool {
        let Ok(sku) = Sku::parse(sku) else { return false };
        let read = self.inner.read.read();
        read.active_positions(&sku).any(|(_, p)| p.position.counts.atp() > Qty::ZERO)
    }

    pub(crate) async fn fill_backorder(&self, order_id: &str) -> Result<bool> {
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, None).await?;
        let units: BTreeMap<String, i64> =
            order.lines.iter().filter(|l| l.backordered > 0).map(|l| (l.line_id.clone(), l.backordered)).collect();
        if units.is_empty() || order.status == "cancelled" {
            tx.rollback().await?;
            return Ok(false);
        }
        for l in order.lines.iter_mut() {
            l.backordered -= units.get(&l.line_id).copied().unwrap_or(0);
        }
        let before = order.status.clone();
        let mut fx = Effects::default();
        let summary = self.reroute_in(&mut tx, &mut order, &units, None, "supply_arrived", now, &mut fx).await?;
        if summary["fulfillment_orders"].as_array().is_none_or(|f| f.is_empty()) {
            tx.rollback().await?;
            return Ok(false);
        }
        fx.events.push(crate::events::order_event(
            "order.allocated",
            &order,
            now,
            json!({"backorder_filled": summary}),
        ));
        self.write_progress(&mut tx, &mut order, &before, now, &mut fx).await?;
        tx.insert_events(&fx.events).await?;
        self.notify(&mut tx, || self.positions_note(&fx.written)).await?;
        tx.commit().await?;
        self.refresh_positions(fx.written);
        Ok(true)
    }

    /// A carrier's scan of a shipment. A repeat of the shipment's current scan changes
    /// nothing; a delivery scan delivers the fulfillment order once all its shipments are
    /// delivered. `node` limits a node key to its own shipments.
    pub async fn record_scan(&self, tracking_number: &str, scan: Scan, node: Option<&NodeId>) -> Result<ShipmentRow> {
        if scan.detail.as_ref().is_some_and(|d| d.chars().count() > 500) {
            return Err(AppError::invalid("detail", "at most 500 characters"));
        }
        let not_found = || AppError::NotFound { what: "shipment", id: tracking_number.to_owned() };
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let Some(order_id) = tx.shipment_owner(tracking_number).await? else {
            tx.rollback().await?;
            return Err(not_found());
        };
        let mut order = self.lock_for_change(&mut tx, &order_id, None).await?;
        let Some(si) = order.shipments.iter().position(|s| s.tracking_number == tracking_number) else {
            tx.rollback().await?;
            return Err(not_found());
        };
        if node.is_some_and(|n| n.as_str() != order.shipments[si].node_id) {
            tx.rollback().await?;
            return Err(not_found());
        }
        let sh = order.shipments[si].clone();
        let kind = scan.kind.as_str();
        if sh.status == kind && sh.detail == scan.detail {
            tx.rollback().await?;
            return Ok(sh);
        }
        if sh.status == "delivered" {
            tx.rollback().await?;
            return Err(AppError::Conflict(vec![FieldError::new(
                "type",
                format!("shipment {tracking_number} is delivered; a {kind} scan cannot follow"),
            )]));
        }
        let mut fx = Effects::default();
        let before = order.status.clone();
        {
            let sh = &mut order.shipments[si];
            sh.status = kind.to_owned();
            sh.detail = scan.detail.clone();
            sh.updated_at_ms = now;
            if scan.kind == ScanKind::Delivered {
                sh.delivered_at_ms = Some(scan.at_ms);
            }
            tx.update_shipment(sh).await?;
            fx.events.push(shipment_event(sh, &order.channel, kind, now));
        }
        if scan.kind == ScanKind::Delivered
            && let Some(o) = self.delivery_observation(&order, &order.shipments[si], scan.at_ms)
        {
            tx.insert_delivery_observation(&o).await?;
        }
        let fo_id = sh.fulfillment_order_id.clone();
        let all_delivered =
            order.shipments.iter().filter(|s| s.fulfillment_order_id == fo_id).all(|s| s.status == "delivered");
        if let Some(fi) = order.fulfillment_orders.iter().position(|f| f.fulfillment_order_id == fo_id)
            && all_delivered
            && order.fulfillment_orders[fi].status == FoStatus::Shipped.as_str()
        {
            self.mark_delivered(&mut tx, &mut order, &fo_id, scan.at_ms, now, &mut fx).await?;
            let fo = &mut order.fulfillment_orders[fi];
            fo.status = FoStatus::Delivered.as_str().to_owned();
            fo.updated_at_ms = now;
            tx.update_fulfillment_order(fo).await?;
            fx.events.push(fo_event(fo, &order.channel, now, json!({})));
            self.write_progress(&mut tx, &mut order, &before, now, &mut fx).await?;
        }
        tx.insert_events(&fx.events).await?;
        tx.commit().await?;
        let order = self.order_by_id(&order_id).await?;
        order.shipments.into_iter().find(|s| s.tracking_number == tracking_number).ok_or_else(not_found)
    }

    /// Sources `units` (line id → units) of `order` again, excluding every node that has
    /// failed this order, inside the caller's transaction (see the module docs). Answers
    /// the summary carried by `order.rerouted`.
    #[allow(clippy::too_many_arguments)]
    async fn reroute_in(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        units: &BTreeMap<String, i64>,
        failed_fo: Option<&str>,
        reason: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<serde_json::Value> {
        let mut captured = captured_order(order)?;
        // Work moved after a failure keeps the order's promise, like the first plan.
        if let Some((level, date)) = captured_promise(order) {
            // Inside this transaction: cached figures only; the active policy, as the
            // quote below uses.
            captured.promise = Some(self.promise_terms(&captured, &level, date, None, true).await?);
        }
        let failed_node = order
            .fulfillment_orders
            .iter()
            .find(|f| Some(f.fulfillment_order_id.as_str()) == failed_fo)
            .map(|f| f.node_id.clone());
        let mut excluded: BTreeSet<String> = order
            .fulfillment_orders
            .iter()
            .filter(|f| f.status == FoStatus::Rejected.as_str())
            .map(|f| f.node_id.clone())
            .collect();
        excluded.extend(order.attempts.iter().filter_map(|a| a.failed_node_id.clone()));
        excluded.extend(failed_node.clone());
        let excluded_ids: Vec<NodeId> = excluded.iter().filter_map(|n| NodeId::parse(n).ok()).collect();
        let mut left: BTreeMap<String, i64> =
            units.iter().filter(|(_, q)| **q > 0).map(|(l, q)| (l.clone(), *q)).collect();
        // (line index in captured, node) → units taken
        let mut taken: BTreeMap<(usize, NodeId), u64> = BTreeMap::new();
        let mut no_backorder: BTreeSet<String> = BTreeSet::new();
        let mut stamp = None;
        let mut decisions = Vec::new();
        for _round in 0..REROUTE_ROUNDS {
            let lines: Vec<LineToSource> = captured
                .lines
                .iter()
                .filter_map(|l| {
                    let q = u64::try_from(*left.get(&l.line_id)?).ok()?;
                    Some(LineToSource { quantity: Qty::new(q).ok()?, ..l.clone() })
                })
                .collect();
            if lines.is_empty() {
                break;
            }
            let quote = self.quote_excluding(&OrderToSource { lines, ..captured.clone() }, None, &excluded_ids)?;
            no_backorder = quote.decision.plan.unfilled.iter().map(|u| u.line_id.clone()).collect();
            stamp = Some(quote.policy.clone());
            decisions.push(self.render_decision(&quote));
            let mut wants: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    *wants.entry((pkg.node_id.clone(), l.sku.clone())).or_default() += l.quantity.get();
                }
            }
            if wants.is_empty() {
                break;
            }
            let took = tx.allocate_many(&wants, now).await?;
            let ok: BTreeSet<(NodeId, Sku)> =
                took.iter().map(|p| (p.position.node_id.clone(), p.position.sku.clone())).collect();
            fx.written.extend(took);
            let mut failed = Vec::new();
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    let key = (pkg.node_id.clone(), l.sku.clone());
                    if !ok.contains(&key) {
                        failed.push(key);
                        continue;
                    }
                    let Some(li) = captured.lines.iter().position(|x| x.line_id == l.line_id) else { continue };
                    *taken.entry((li, pkg.node_id.clone())).or_default() += l.quantity.get();
                    if let Some(q) = left.get_mut(&l.line_id) {
                        *q -= l.quantity.get() as i64;
                    }
                }
            }
            left.retain(|_, q| *q > 0);
            if failed.is_empty() {
                break;
            }
            self.reload_positions(&failed).await?;
        }
        // New fulfillment orders, one per node × kind.
        let attempt = order
            .fulfillment_orders
            .iter()
            .map(|f| f.attempt)
            .max()
            .unwrap_or(1)
            .max(order.attempts.iter().map(|a| a.attempt).max().unwrap_or(1))
            + 1;
        let on_hold = !order.holds.is_empty();
        let mut fo_ids: BTreeMap<(NodeId, FoKind), String> = BTreeMap::new();
        for (li, node) in taken.keys() {
            fo_ids.entry((node.clone(), FoKind::of(captured.lines[*li].method))).or_insert_with(|| new_id("fo"));
        }
        let mut fos: Vec<FulfillmentOrderRow> = fo_ids
            .iter()
            .map(|((node, kind), id)| new_fulfillment_order(id, &order.order_id, node, *kind, attempt, on_hold, now))
            .collect();
        let allocations: Vec<AllocationRow> = taken
            .iter()
            .map(|((li, node), q)| {
                let line = &captured.lines[*li];
                new_allocation(line, node, *q as i64, &fo_ids[&(node.clone(), FoKind::of(line.method))])
            })
            .collect();
        crate::rows::stamp_due_dates(&mut fos, &allocations, &order.lines);
        tx.insert_fulfillment_orders(&order.order_id, &fos, &allocations).await?;
        for a in &allocations {
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.allocated += a.quantity;
            }
        }
        // What no node could take: backordered where the line and the policy allow it,
        // else cancelled with the reason.
        let mut backordered = Vec::new();
        let mut cancelled = Vec::new();
        let cancel_reason = format!("unsourceable after {reason}");
        for (line_id, q) in &left {
            let Some(l) = order.lines.iter_mut().find(|l| &l.line_id == line_id) else { continue };
            let allow = captured.lines.iter().any(|c| &c.line_id == line_id && c.allow_backorder);
            // Backordered units that still find no stock simply stay backordered.
            if failed_fo.is_none() || (allow && !no_backorder.contains(line_id)) {
                l.backordered += q;
                backordered.push(json!({"line_id": line_id, "quantity": q}));
            } else {
                l.cancelled += q;
                tx.insert_cancellation(&order.order_id, line_id, *q, &cancel_reason, now).await?;
                cancelled.push(json!({"line_id": line_id, "quantity": q, "reason": cancel_reason}));
            }
        }
        let summary = json!({
            "attempt": attempt,
            "reason": reason,
            "from_node_id": failed_node,
            "from_fulfillment_order_id": failed_fo,
            "excluded_nodes": excluded,
            "policy": stamp.map(|s| json!({"name": s.name, "version": s.version, "hash": s.hash})),
            "requested": units.iter().map(|(l, q)| json!({"line_id": l, "quantity": q})).collect::<Vec<_>>(),
            "fulfillment_orders": fos.iter().map(|f| json!({
                "id": f.fulfillment_order_id, "node_id": f.node_id, "kind": f.kind,
                "lines": allocations.iter().filter(|a| a.fulfillment_order_id == f.fulfillment_order_id)
                    .map(|a| json!({"line_id": a.line_id, "sku": a.sku, "quantity": a.quantity})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "backordered": backordered,
            "cancelled": cancelled,
        });
        // The attempt keeps the engine's full decision (plan and explanation) of each
        // planning round, as a quote answers it; events carry the summary only.
        let mut stored = summary.clone();
        stored["sourcing"] = serde_json::Value::Array(
            decisions.iter().map(|d| serde_json::from_str(d).unwrap_or(serde_json::Value::Null)).collect(),
        );
        let row = SourcingAttemptRow {
            attempt,
            reason: reason.to_owned(),
            failed_node_id: failed_node,
            fulfillment_order_id: failed_fo.map(str::to_owned),
            decision: stored.to_string(),
            at_ms: now,
        };
        tx.insert_sourcing_attempt(&order.order_id, &row).await?;
        order.attempts.push(row);
        for f in &fos {
            fx.events.push(fo_event(f, &order.channel, now, json!({"reason": "rerouted"})));
        }
        order.fulfillment_orders.extend(fos);
        order.allocations.extend(allocations);
        Ok(summary)
    }
}

/// Orders looked at per jeopardy sweep page.
pub const JEOPARDY_BATCH: i64 = 200;

/// A promised line's jeopardy on `today` (the customer's calendar day): `late` once the
/// promised date has passed without delivery; `at_risk` from the day before the promised
/// date while units have not all left a node, or at any time while a carrier reports
/// trouble (`carrier_trouble`: a shipment of the line whose last scan is `exception` or
/// `delayed`); else `on_track`.
///
/// A pickup line promised ready at a time (`promised_ready_at_ms`) is `on_track` once its
/// units are ready at the counter, else `at_risk` in the last [`PICKUP_AT_RISK_MS`] before
/// that time and `late` after it.
pub(crate) fn jeopardy(
    line: &allot_store::OrderLineRow,
    today: jiff::civil::Date,
    carrier_trouble: bool,
    now_ms: i64,
    ready_units: i64,
) -> Option<&'static str> {
    let open = line.quantity - line.cancelled;
    if open == 0 || line.delivered >= open {
        return None;
    }
    if let Some(ready_at) = line.promised_ready_at_ms {
        return Some(if ready_units >= open {
            "on_track"
        } else if now_ms > ready_at {
            "late"
        } else if now_ms > ready_at - PICKUP_AT_RISK_MS {
            "at_risk"
        } else {
            "on_track"
        });
    }
    let promised: jiff::civil::Date = line.promised_date.as_deref()?.parse().ok()?;
    let eve = promised.yesterday().ok()?;
    Some(if today > promised {
        "late"
    } else if carrier_trouble || (today >= eve && line.shipped < open) {
        "at_risk"
    } else {
        "on_track"
    })
}

/// Lines carried by a shipment whose carrier last reported an exception or a delay.
fn lines_in_carrier_trouble(order: &StoredOrder) -> BTreeSet<String> {
    order
        .shipments
        .iter()
        .filter(|s| matches!(s.status.as_str(), "exception" | "delayed"))
        .flat_map(shipment_line_ids)
        .collect()
}

/// The line ids a shipment carries (its stored `[{"line_id", "quantity"}]`).
fn shipment_line_ids(sh: &ShipmentRow) -> Vec<String> {
    #[derive(Deserialize)]
    struct PackageLine {
        line_id: String,
    }
    serde_json::from_str::<Vec<PackageLine>>(&sh.lines).unwrap_or_default().into_iter().map(|l| l.line_id).collect()
}

impl App {
    /// Recomputes the jeopardy of every promised open line, on the customer's calendar
    /// day (`ship_to.time_zone`; UTC when the order has none); a line entering `at_risk`
    /// or `late` raises `order.at_risk` / `order.late` (once per change) naming the lines,
    /// and the active policy's `jeopardy_action` follows: `upgrade_service` moves the
    /// line's unshipped units up one service level (`order.service_upgraded`);
    /// `reroute_if_not_accepted` takes work its node has not accepted away and re-sources
    /// it elsewhere (reason `order_at_risk` / `order_late`). Answers how many orders
    /// changed. Pages of [`JEOPARDY_BATCH`] orders, each its own transaction. Run by the
    /// background sweep; tests call it with a fixed clock.
    pub async fn sweep_jeopardy(&self) -> Result<usize> {
        let now = self.now_ms();
        let action = {
            let read = self.inner.read.read();
            read.active_policy.as_ref().map(|p| p.policy.jeopardy_action).unwrap_or_default()
        };
        let mut changed = 0;
        let mut after = String::new();
        loop {
            let ids = self.inner.store.promised_open_orders(&after, JEOPARDY_BATCH).await?;
            let Some(last) = ids.last().cloned() else { break };
            for id in &ids {
                match self.update_jeopardy(id, now, action).await {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(order = %id, error = %ErrorChain(&e), "jeopardy update failed"),
                }
            }
            if (ids.len() as i64) < JEOPARDY_BATCH {
                break;
            }
            after = last;
        }
        Ok(changed)
    }

    async fn update_jeopardy(&self, order_id: &str, now: i64, action: JeopardyAction) -> Result<bool> {
        let mut tx = self.inner.store.begin().await?;
        let order = self.lock_for_change(&mut tx, order_id, None).await?;
        let captured: Option<Captured> = serde_json::from_str(&order.document).ok();
        let zone = customer_zone(captured.as_ref().and_then(|c| c.ship_to.as_ref()));
        let instant = jiff::Timestamp::from_millisecond(now).map_err(|e| AppError::invalid("now", e))?;
        let today = zone.to_datetime(instant).date();
        let mut entered: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        // Lines at risk or late now, whether or not that is news.
        let mut jeopardized: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut upgrades = Vec::new();
        let mut any = false;
        let troubled = lines_in_carrier_trouble(&order);
        let at_counter: BTreeSet<&str> = order
            .fulfillment_orders
            .iter()
            .filter(|f| matches!(f.status.as_str(), "ready_for_pickup" | "picked_up"))
            .map(|f| f.fulfillment_order_id.as_str())
            .collect();
        for l in &order.lines {
            let ready: i64 = order
                .allocations
                .iter()
                .filter(|a| a.line_id == l.line_id && at_counter.contains(a.fulfillment_order_id.as_str()))
                .map(|a| a.quantity)
                .sum();
            let Some(state) = jeopardy(l, today, troubled.contains(&l.line_id), now, ready) else { continue };
            if state != "on_track" {
                jeopardized.insert(l.line_id.clone(), state);
            }
            if l.jeopardy.as_deref() == Some(state) {
                continue;
            }
            tx.set_line_jeopardy(order_id, &l.line_id, state).await?;
            any = true;
            if state == "on_track" {
                continue;
            }
            entered.entry(state).or_default().push(l.line_id.clone());
            let unshipped = l.quantity - l.cancelled - l.shipped > 0;
            if action == JeopardyAction::UpgradeService && unshipped && l.promised_date.is_some() {
                let current = l.upgraded_service_level.clone().unwrap_or_else(|| ordered_service_level(&captured, l));
                if let Some(to) = upgraded_service_level(&current) {
                    tx.set_line_service_upgrade(order_id, &l.line_id, to).await?;
                    upgrades.push(json!({"line_id": l.line_id, "from": current, "to": to, "jeopardy": state}));
                }
            }
        }
        if any {
            let mut events: Vec<NewEvent> = entered
                .iter()
                .map(|(state, lines)| {
                    crate::events::order_event(
                        &format!("order.{state}"),
                        &order,
                        now,
                        json!({"lines": lines, "today": today.to_string(),
                               "time_zone": zone.iana_name().unwrap_or("UTC"), "action": action.as_str()}),
                    )
                })
                .collect();
            if !upgrades.is_empty() {
                let lines: BTreeSet<&str> = upgrades.iter().filter_map(|u| u["line_id"].as_str()).collect();
                events.push(crate::events::order_event(
                    "order.service_upgraded",
                    &order,
                    now,
                    json!({"lines": upgrades}),
                ));
                // The nodes holding the work hear it on their fulfillment orders too.
                for fo in working_fos(&order, &lines) {
                    let data = json!({"lines": upgrades});
                    events.push(fo_event_named("fulfillment_order.service_upgraded", fo, &order.channel, now, data));
                }
            }
            tx.insert_events(&events).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        if action == JeopardyAction::RerouteIfNotAccepted && !jeopardized.is_empty() {
            // Released work not accepted within the grace period moves, each fulfillment
            // order in its own transaction through the fulfillment path (as a rejection,
            // but only when other nodes can take all of it). Checked on every sweep while
            // the line stays in jeopardy, so work released moments ago gets its turn later.
            let lines: BTreeSet<&str> = jeopardized.keys().map(String::as_str).collect();
            let released_before_ms = now - REASSIGN_GRACE_MS;
            for fo in working_fos(&order, &lines) {
                if fo.status != FoStatus::Released.as_str() || fo.released_at_ms.is_none_or(|r| r >= released_before_ms)
                {
                    continue;
                }
                let state = order
                    .allocations
                    .iter()
                    .filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id)
                    .filter_map(|a| jeopardized.get(&a.line_id))
                    .max()
                    .copied()
                    .unwrap_or("at_risk");
                let reassign = FoAction::Reassign { reason: format!("order_{state}"), released_before_ms };
                match self.act_on_fulfillment_order(&fo.fulfillment_order_id, reassign, None).await {
                    Ok(_) => {}
                    Err(AppError::Conflict(_)) => {
                        tracing::debug!(fulfillment_order = %fo.fulfillment_order_id, "no other node can take it")
                    }
                    Err(e) => {
                        tracing::warn!(fulfillment_order = %fo.fulfillment_order_id, error = %ErrorChain(&e), "jeopardy reroute failed")
                    }
                }
            }
        }
        Ok(any)
    }
}

/// How long before its promised ready time a pickup line not yet ready is at risk.
pub const PICKUP_AT_RISK_MS: i64 = 60 * 60_000;

/// How long released work has to be accepted before a jeopardy reroute may move it.
pub const REASSIGN_GRACE_MS: i64 = 30 * 60_000;

/// Fulfillment orders still holding units of `lines`.
fn working_fos<'a>(order: &'a StoredOrder, lines: &BTreeSet<&str>) -> Vec<&'a FulfillmentOrderRow> {
    let ids: BTreeSet<&str> = order
        .allocations
        .iter()
        .filter(|a| a.quantity > 0 && lines.contains(a.line_id.as_str()))
        .map(|a| a.fulfillment_order_id.as_str())
        .collect();
    order
        .fulfillment_orders
        .iter()
        .filter(|f| ids.contains(f.fulfillment_order_id.as_str()))
        .filter(|f| FoStatus::parse(&f.status).is_some_and(FoStatus::holds_stock))
        .collect()
}

impl App {
    /// What a delivered shipment took (see [`allot_store::DeliveryObservation`]): its lane
    /// (node → the address's region, carrier service), the carrier delivery days from the
    /// node-local ship date to the customer's delivery date (with the matched service's
    /// calendar; calendar days when no service of the node matches the carrier), and the
    /// days against the earliest promised date of its lines.
    pub(crate) fn delivery_observation(
        &self,
        order: &StoredOrder,
        sh: &ShipmentRow,
        delivered_at_ms: i64,
    ) -> Option<allot_store::DeliveryObservation> {
        let captured: Option<Captured> = serde_json::from_str(&order.document).ok();
        let ship_to = captured.as_ref().and_then(|c| c.ship_to.as_ref());
        let region = ship_to.and_then(|s| s.region.clone()).unwrap_or_default();
        let customer_zone = customer_zone(ship_to);
        let line_ids = shipment_line_ids(sh);
        if line_ids.is_empty() {
            return None;
        }
        // Only parcels to the customer's address teach its lane (not store transfers).
        let to_customer = |id: &String| {
            captured.as_ref().is_some_and(|c| {
                c.lines.iter().any(|l| &l.line_id == id && l.method.as_deref().is_none_or(|m| m == "ship"))
            })
        };
        if !line_ids.iter().all(to_customer) {
            return None;
        }
        let lines: Vec<&allot_store::OrderLineRow> =
            order.lines.iter().filter(|l| line_ids.contains(&l.line_id)).collect();
        let level = lines
            .first()
            .map(|l| l.upgraded_service_level.clone().unwrap_or_else(|| ordered_service_level(&captured, l)))
            .unwrap_or_else(|| "standard".to_owned());
        let read = self.inner.read.read();
        let node_zone = read
            .node(&sh.node_id)
            .and_then(|n| jiff::tz::TimeZone::get(n.node.time_zone.as_str()).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let shipped = node_zone.to_datetime(jiff::Timestamp::from_millisecond(sh.shipped_at_ms).ok()?).date();
        let delivered = customer_zone.to_datetime(jiff::Timestamp::from_millisecond(delivered_at_ms).ok()?).date();
        let carrier_prefix = format!("{}:", sh.carrier);
        let service = read.calendars.get(&sh.node_id).and_then(|cal| {
            cal.carrier_services.iter().filter(|k| k.starts_with(&carrier_prefix)).find_map(|key| {
                read.carriers
                    .values()
                    .flat_map(|c| c.services.iter())
                    .find(|s| &s.key == key && s.service_level == level)
            })
        });
        let (carrier_service, transit_days) = match service {
            Some(svc) => (
                svc.key.clone(),
                i64::from(allot_core::promise::observed_transit_days(&svc.calendar, shipped, delivered)),
            ),
            None => (
                format!("{}{level}", carrier_prefix),
                shipped.until(delivered).ok().map_or(0, |span| i64::from(span.get_days()).max(0)),
            ),
        };
        let promised = lines.iter().filter_map(|l| l.promised_date.as_deref()?.parse::<jiff::civil::Date>().ok()).min();
        let days_late = promised.and_then(|p| p.until(delivered).ok()).map(|span| i64::from(span.get_days()));
        Some(allot_store::DeliveryObservation {
            shipment_id: sh.shipment_id.clone(),
            order_id: order.order_id.clone(),
            node_id: sh.node_id.clone(),
            region,
            carrier_service,
            shipped_at_ms: sh.shipped_at_ms,
            delivered_at_ms,
            transit_days,
            promised_date: promised.map(|d| d.to_string()),
            days_late,
        })
    }
}

/// Farthest an address may be from an embedded place to take its time zone.
pub const TIME_ZONE_LOOKUP_KM: f64 = 300.0;

/// The customer's time zone: `ship_to.time_zone` when given, else the zone of the nearest
/// embedded place within [`TIME_ZONE_LOOKUP_KM`] of the coordinates (offline, US places),
/// else UTC.
fn customer_zone(ship_to: Option<&CapturedShipTo>) -> jiff::tz::TimeZone {
    let named = ship_to.and_then(|s| s.time_zone.as_deref()).and_then(|tz| jiff::tz::TimeZone::get(tz).ok());
    named
        .or_else(|| {
            let s = ship_to?;
            let at = allot_core::GeoPoint::new(s.lat?, s.lon?).ok()?;
            jiff::tz::TimeZone::get(allot_core::places::nearest_time_zone(at, TIME_ZONE_LOOKUP_KM)?).ok()
        })
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The service level a line was ordered with: its own, else the promise option's, else
/// standard.
fn ordered_service_level(captured: &Option<Captured>, line: &allot_store::OrderLineRow) -> String {
    let Some(c) = captured else { return "standard".to_owned() };
    c.lines
        .iter()
        .find(|l| l.line_id == line.line_id)
        .and_then(|l| l.service_level.clone())
        .or_else(|| c.promise_option_id.as_deref()?.strip_prefix("ship:")?.split(':').next().map(str::to_owned))
        .unwrap_or_else(|| "standard".to_owned())
}
