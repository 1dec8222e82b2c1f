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
use crate::rows::{fo_kind, fo_status, line_status, new_allocation, new_fulfillment_order, order_status};
use crate::workers::ErrorChain;
use crate::{App, AppError, FieldError, ListPage, Result};

use crate::captured::{CapturedOrder, CapturedShipTo};
pub use jeopardy::JEOPARDY_BATCH;
use jeopardy::shipment_line_ids;

mod actions;
mod backorders;
mod jeopardy;
mod observations;
mod reroute;
mod scans;

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
    pub const ALL: [ScanKind; 5] =
        [ScanKind::InTransit, ScanKind::OutForDelivery, ScanKind::Delivered, ScanKind::Exception, ScanKind::Delayed];

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
        ScanKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A carrier scan as received.
#[derive(Debug, Clone)]
pub struct Scan {
    pub kind: ScanKind,
    pub at_ms: i64,
    pub detail: Option<String>,
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
    pub async fn fulfillment_order(
        &self,
        fo_id: &allot_core::FulfillmentOrderId,
        node: Option<&NodeId>,
    ) -> Result<FulfillmentOrderEntry> {
        Ok(self.fulfillment_order_of_order(fo_id, node).await?.1)
    }

    /// A fulfillment order with what its node needs to send it: the order's terms (the
    /// ship-to and each line's service level; a node key reaches its own work only).
    pub async fn fulfillment_order_work(
        &self,
        fo_id: &allot_core::FulfillmentOrderId,
        node: Option<&NodeId>,
    ) -> Result<(FulfillmentOrderEntry, Option<crate::OrderTerms>)> {
        let (order, entry) = self.fulfillment_order_of_order(fo_id, node).await?;
        Ok((entry, crate::OrderTerms::of(&order)))
    }

    /// The fulfillment order and the order it belongs to, read once.
    async fn fulfillment_order_of_order(
        &self,
        fo_id: &allot_core::FulfillmentOrderId,
        node: Option<&NodeId>,
    ) -> Result<(StoredOrder, FulfillmentOrderEntry)> {
        let fo_id = fo_id.as_str();
        let not_found = || AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() };
        let Some((order_id, node_id)) = self.inner.store.fulfillment_order_owner(fo_id).await? else {
            return Err(not_found());
        };
        if node.is_some_and(|n| n.as_str() != node_id) {
            return Err(not_found());
        }
        let order = self.order_by_id(&order_id).await?;
        let entry = entry_of(&order, fo_id).ok_or_else(not_found)?;
        Ok((order, entry))
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
