//! The rows a change writes, built the same way by every use case: new ids, new
//! fulfillment orders and allocations, due dates, and the statuses derived from a row's
//! quantities.
//!
//! What it owns: these small, pure row helpers, shared by orders, fulfillment, supply and
//! reservations. What it must never do: read or write the store, or call a use case — it
//! sits below them all, so no two use-case modules need each other for a row's shape.

use allot_core::sourcing::LineToSource;
use allot_core::{FoKind, FoStatus, HoldState, LineQuantities, LineStatus, NodeId, OrderStatus};
use allot_store::{AllocationRow, FulfillmentOrderRow, OrderLineRow};

use crate::{AppError, Result};

/// Longest cancellation reason accepted.
pub const REASON_MAX_CHARS: usize = 100;

/// A line's counters as the core's status derivation reads them.
pub(crate) fn line_quantities(l: &OrderLineRow) -> LineQuantities {
    LineQuantities {
        quantity: l.quantity,
        allocated: l.allocated,
        backordered: l.backordered,
        cancelled: l.cancelled,
        shipped: l.shipped,
        delivered: l.delivered,
    }
}

/// A line's status from its quantities ([`LineStatus::of`]).
pub(crate) fn line_status(l: &OrderLineRow) -> &'static str {
    LineStatus::of(&line_quantities(l)).as_str()
}

/// An order's status from its lines and holds ([`OrderStatus::of`]).
pub(crate) fn order_status(lines: &[OrderLineRow], holds: &[String]) -> &'static str {
    OrderStatus::of(lines.iter().map(line_quantities), HoldState::of_count(holds.len())).as_str()
}

/// Keeps ids made in the same millisecond in the order they were made (a counter under
/// the random bits, as `Uuid::now_v7` does for the system clock). One per app (see
/// `App::new_id`): a context never lets time go back, so apps with different clocks in one
/// process (tests) must not share one.
pub(crate) type IdContext = std::sync::Mutex<uuid::ContextV7>;

/// A new id `<prefix>_<UUIDv7 as 32 hex digits>`, whose time is `now_ms` (never before
/// the last id of `context`) and which sorts after every id `context` made before it.
pub(crate) fn new_id_in(context: &IdContext, prefix: &str, now_ms: i64) -> String {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(context, ms / 1000, u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000);
    format!("{prefix}_{}", uuid::Uuid::new_v7(ts).simple())
}

/// Event ids: nothing reads their time or their order (the stream is ordered by `seq`),
/// so one context serves every app.
static EVENT_IDS: IdContext = std::sync::Mutex::new(uuid::ContextV7::new());

/// A new event id (`evt_…`).
pub(crate) fn new_event_id(now_ms: i64) -> String {
    new_id_in(&EVENT_IDS, "evt", now_ms)
}

/// A new fulfillment order: released to its node at once, or held back (`created`) while
/// the order is on hold.
pub(crate) fn new_fulfillment_order(
    id: &str,
    order_id: &str,
    node: &NodeId,
    kind: FoKind,
    attempt: i64,
    on_hold: bool,
    now: i64,
) -> FulfillmentOrderRow {
    let status = if on_hold { FoStatus::Created } else { FoStatus::Released };
    FulfillmentOrderRow {
        fulfillment_order_id: id.to_owned(),
        order_id: order_id.to_owned(),
        node_id: node.to_string(),
        kind: kind.as_str().to_owned(),
        attempt,
        status: status.as_str().to_owned(),
        reason: None,
        created_at_ms: now,
        released_at_ms: (!on_hold).then_some(now),
        updated_at_ms: now,
        due_date: String::new(),
    }
}

/// Stamps each fulfillment order with its due date: the earliest promised date of the
/// lines it carries, else the UTC day it was made (what the node queue orders by).
pub(crate) fn stamp_due_dates(fos: &mut [FulfillmentOrderRow], allocations: &[AllocationRow], lines: &[OrderLineRow]) {
    for fo in fos.iter_mut() {
        let promised = allocations
            .iter()
            .filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id)
            .filter_map(|a| lines.iter().find(|l| l.line_id == a.line_id)?.promised_date.clone())
            .min();
        fo.due_date = promised.unwrap_or_else(|| utc_day(fo.created_at_ms));
    }
}

/// The UTC calendar day of a time in milliseconds (YYYY-MM-DD).
pub(crate) fn utc_day(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| jiff::tz::TimeZone::UTC.to_datetime(t).date().to_string())
        .unwrap_or_default()
}

pub(crate) fn new_allocation(line: &LineToSource, node: &NodeId, quantity: i64, fo_id: &str) -> AllocationRow {
    AllocationRow {
        line_id: line.line_id.clone(),
        node_id: node.to_string(),
        sku: line.sku.to_string(),
        quantity,
        fulfillment_order_id: fo_id.to_owned(),
        picked: None,
        short: 0,
        shipped: 0,
    }
}

/// The status of a fulfillment order row (the database's CHECK admits only known ones).
pub(crate) fn fo_status(f: &FulfillmentOrderRow) -> Result<FoStatus> {
    FoStatus::parse(&f.status).ok_or_else(|| {
        AppError::Store(allot_store::StoreError::Corrupt {
            table: "fulfillment_orders",
            detail: format!("{}: status {}", f.fulfillment_order_id, f.status),
        })
    })
}

/// The kind of a fulfillment order row.
pub(crate) fn fo_kind(f: &FulfillmentOrderRow) -> Result<FoKind> {
    FoKind::parse(&f.kind).ok_or_else(|| {
        AppError::Store(allot_store::StoreError::Corrupt {
            table: "fulfillment_orders",
            detail: format!("{}: kind {}", f.fulfillment_order_id, f.kind),
        })
    })
}
