//! The rows a change writes, built the same way by every use case: new ids, new
//! fulfillment orders and allocations, due dates, and the statuses derived from a row's
//! quantities.
//!
//! What it owns: these small, pure row helpers, shared by orders, fulfillment, supply and
//! reservations. What it must never do: read or write the store, or call a use case — it
//! sits below them all, so no two use-case modules need each other for a row's shape.

use allot_core::sourcing::LineToSource;
use allot_core::{FoKind, FoStatus, NodeId};
use allot_store::{AllocationRow, FulfillmentOrderRow, OrderLineRow};

use crate::{AppError, Result};

/// Longest cancellation reason accepted.
pub const REASON_MAX_CHARS: usize = 100;

/// A line's status from its quantities: hand-over first (shipped, delivered), then
/// allocation.
pub(crate) fn line_status(l: &OrderLineRow) -> &'static str {
    let open = l.quantity - l.cancelled;
    if open == 0 {
        "cancelled"
    } else if l.delivered == open {
        "delivered"
    } else if l.shipped == open {
        "shipped"
    } else if l.shipped > 0 {
        "partially_shipped"
    } else if l.allocated == open {
        "allocated"
    } else if l.allocated > 0 {
        "partially_allocated"
    } else if l.backordered > 0 {
        "backordered"
    } else {
        "unfilled"
    }
}

/// An order's status from its lines and holds.
pub(crate) fn order_status(lines: &[OrderLineRow], holds: &[String]) -> &'static str {
    let open: i64 = lines.iter().map(|l| l.quantity - l.cancelled).sum();
    let allocated: i64 = lines.iter().map(|l| l.allocated).sum();
    let backordered: i64 = lines.iter().map(|l| l.backordered).sum();
    let shipped: i64 = lines.iter().map(|l| l.shipped).sum();
    let delivered: i64 = lines.iter().map(|l| l.delivered).sum();
    if open == 0 {
        "cancelled"
    } else if delivered == open {
        "delivered"
    } else if shipped == open {
        "shipped"
    } else if !holds.is_empty() {
        "on_hold"
    } else if shipped > 0 {
        "partially_shipped"
    } else if allocated == open {
        "allocated"
    } else if allocated > 0 {
        "partially_allocated"
    } else if backordered > 0 {
        "backordered"
    } else {
        "unfilled"
    }
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
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
