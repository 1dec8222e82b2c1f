//! What an order's rows mean to whoever reads the order: when a line's units left a node
//! and when they reached the customer, which fulfillment orders are live, where a line's
//! units are now.
//!
//! What it owns: these readings, computed from the stored rows, once, below the API (the
//! API and the console show them; KPIs count them). What it must never do: change rows.

use allot_store::{AllocationRow, FulfillmentOrderRow, OrderLineRow, ShipmentRow};

/// A fulfillment order that holds or handed over units: neither rejected nor cancelled.
pub fn is_live(fo: &FulfillmentOrderRow) -> bool {
    !matches!(fo.status.as_str(), "rejected" | "cancelled")
}

/// Whether a shipment carries some of `line_id` (its stored `[{"line_id", "quantity"}]`).
pub fn shipment_carries(sh: &ShipmentRow, line_id: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(&sh.lines)
        .ok()
        .and_then(|v| v.as_array().map(|ls| ls.iter().any(|l| l["line_id"] == line_id)))
        .unwrap_or(false)
}

/// An order's rows, as read by [`LineFacts::of`].
#[derive(Clone, Copy)]
pub struct OrderRows<'a> {
    pub fulfillment_orders: &'a [FulfillmentOrderRow],
    pub allocations: &'a [AllocationRow],
    pub shipments: &'a [ShipmentRow],
}

/// What one line's rows mean.
pub struct LineFacts<'a> {
    /// When the line's units last left a node (shipped, or picked up).
    pub shipped_at_ms: Option<i64>,
    /// When the line was delivered in full (its last units delivered or picked up).
    pub delivered_at_ms: Option<i64>,
    /// Where its units are now: allocations of live fulfillment orders, with units.
    pub allocations: Vec<&'a AllocationRow>,
}

impl<'a> LineFacts<'a> {
    pub fn of(line: &OrderLineRow, rows: OrderRows<'a>) -> LineFacts<'a> {
        let delivered_in_full = line.delivered > 0 && line.delivered == line.quantity - line.cancelled;
        LineFacts {
            shipped_at_ms: handed_over(line, rows, Handover::LeftNode),
            delivered_at_ms: delivered_in_full.then(|| handed_over(line, rows, Handover::Delivered)).flatten(),
            allocations: rows
                .allocations
                .iter()
                .filter(|a| a.line_id == line.line_id && a.quantity > 0)
                .filter(|a| {
                    rows.fulfillment_orders
                        .iter()
                        .any(|f| f.fulfillment_order_id == a.fulfillment_order_id && is_live(f))
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handover {
    LeftNode,
    Delivered,
}

/// The latest time a line's units left a node (shipped, or picked up) or were delivered
/// (delivery scans, or picked up), from its shipments and pickup fulfillment orders.
fn handed_over(line: &OrderLineRow, rows: OrderRows<'_>, handover: Handover) -> Option<i64> {
    let by_shipment =
        rows.shipments.iter().filter(|sh| shipment_carries(sh, &line.line_id)).filter_map(|sh| match handover {
            Handover::Delivered => sh.delivered_at_ms,
            Handover::LeftNode => Some(sh.shipped_at_ms),
        });
    let by_pickup = rows
        .fulfillment_orders
        .iter()
        .filter(|f| f.status == "picked_up")
        .filter(|f| {
            rows.allocations
                .iter()
                .any(|a| a.fulfillment_order_id == f.fulfillment_order_id && a.line_id == line.line_id)
        })
        .map(|f| f.updated_at_ms);
    by_shipment.chain(by_pickup).max()
}
