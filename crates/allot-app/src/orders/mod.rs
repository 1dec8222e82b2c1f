//! Order capture: idempotent intake, sourcing through the engine, and allocation that
//! never oversells.
//!
//! Placement is one write command (`Store::write`: its own transaction on PostgreSQL, a
//! savepoint in a group-committed transaction on SQLite): the plan is made from the read
//! model (fast, possibly a little behind other servers), then the stock of every planned
//! position is taken by one conditional `UPDATE` that succeeds per position only while
//! the database's ATP covers it. If a position fails, the command rolls back, the
//! positions involved are re-read into the read model and the order is sourced again (at
//! most [`PLACE_ATTEMPTS`] times; on the last attempt units whose allocation fails are
//! simply not allocated). The order, its lines, fulfillment orders, allocations and
//! events are written in the same command as the stock they take.
//!
//! The path is kept short because every order of the server passes through it:
//! - **No reads before the write.** A repeated (channel, external_id) is found by the
//!   orders table's unique key inside the write (the attempt rolls back and the stored
//!   order is answered, or a 409 if the body differs); only an order converting a
//!   reservation looks first, because a converted reservation cannot be converted again.
//!   Reservations past their expiry are expired only when they could be in the way: when
//!   the plan leaves units unplaced (then due reservations are expired and the order
//!   planned again) and, inside the write, when a planned position comes up short (then
//!   they are expired and the position tried again). So a due reservation never blocks
//!   stock, and the background sweep expires the rest.
//! - **Stock is taken last** (except on the last attempt): the order and its events are
//!   written first as planned, then the planned positions are taken in one statement and,
//!   if one of them comes up short, the attempt rolls back. On PostgreSQL a hot position's
//!   row lock is then held only from that statement to the commit, not while the order is
//!   written; on the last attempt stock is taken first and the order records what it got.
//! - **One round trip for the order's rows, events and stock**
//!   ([`allot_store::Tx::insert_order_taking`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_core::sourcing::{LineToSource, OrderToSource};
use allot_core::{ChannelId, FoEvent, FoKind, FoStatus, NodeId, Sku, Transition};
use allot_store::{AllocationRow, FulfillmentOrderRow, OrderLineRow, Step, StockMove, StoredOrder, StoredPosition};

use serde_json::json;

use crate::rows::{
    REASON_MAX_CHARS, fo_kind, fo_status, line_status, new_allocation, new_fulfillment_order, order_status,
    stamp_due_dates,
};

mod cancel;
mod holds;
pub use holds::{ActiveHold, HoldNote};
mod list;
mod place;

use crate::captured::CapturedOrder;
use crate::workers::ErrorChain;
use crate::{App, AppError, FieldError, Quote, Result};

/// Attempts to place an order when concurrent orders take the planned stock first.
pub const PLACE_ATTEMPTS: usize = 3;

/// An order as captured, ready to place: the captured document and what is read from it.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// The order as the channel sent it (validated), stored with the order.
    pub captured: CapturedOrder,
    /// The engine's view of it.
    pub order: OrderToSource,
    /// A ship promise option the order is placed on (`promise_option_id`): its ship lines
    /// take the service level (unless they name one) and keep the date as their promise,
    /// watched by the jeopardy sweep.
    pub promise: Option<ShipPromise>,
    /// A pickup promise option (`pickup:<store>`): the order's pickup and curbside lines at
    /// that store keep the time it is ready (worked out from the store's calendar when the
    /// order is placed) as their promise.
    pub pickup_promise: Option<NodeId>,
    channel: ChannelId,
    /// The captured document's canonical text, stored with the order.
    document: String,
    /// SHA-256 (hex) of `document`: the order's identity for idempotency.
    request_hash: String,
    holds: Vec<String>,
    /// Who placed each hold and why (the request's holds, and the policy's hold rules'),
    /// filled in when the order is placed.
    hold_notes: Vec<HoldNote>,
    /// Line ids whose units may come as the item's substitutes (in the item's order) when
    /// the ordered SKU cannot be sourced.
    substitutable: std::collections::BTreeSet<String>,
}

impl PlaceOrder {
    /// An order to place from its captured document and the engine's view of it (both
    /// validated by the caller).
    pub fn new(
        captured: CapturedOrder,
        order: OrderToSource,
        promise: Option<ShipPromise>,
        pickup_promise: Option<NodeId>,
    ) -> Result<PlaceOrder> {
        let channel = ChannelId::parse(&captured.channel).map_err(|e| AppError::invalid("channel", e))?;
        if captured.external_id.is_empty() {
            return Err(AppError::invalid("external_id", "required"));
        }
        let document = captured.canonical();
        let request_hash = crate::content_hash(document.as_bytes());
        let mut holds = captured.holds.clone();
        holds.sort();
        holds.dedup();
        let substitutable = captured.lines.iter().filter(|l| l.allow_substitution).map(|l| l.line_id.clone()).collect();
        Ok(PlaceOrder {
            captured,
            order,
            promise,
            pickup_promise,
            channel,
            document,
            request_hash,
            holds,
            hold_notes: Vec::new(),
            substitutable,
        })
    }

    fn external_id(&self) -> &str {
        &self.captured.external_id
    }

    fn policy(&self) -> Option<&str> {
        self.captured.policy.as_deref()
    }

    fn reservation_id(&self) -> Option<&str> {
        self.captured.reservation_id.as_deref()
    }
}

/// A ship option of `POST /v1/promises` an order commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipPromise {
    pub service_level: String,
    pub delivery_date: jiff::civil::Date,
}

/// The result of placing: the stored order, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: StoredOrder,
    pub created: bool,
}

impl App {
    /// An order by id, for callers that already decided who may see it.
    pub async fn order_by_id(&self, order_id: &str) -> Result<StoredOrder> {
        self.inner
            .store
            .order(order_id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "order", id: order_id.to_owned() })
    }

    /// An order as seen by a caller: a channel key sees only its own channel's orders
    /// (anything else is "not found", not "forbidden").
    pub async fn order_for(&self, order_id: &allot_core::OrderId, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        let order = self.order_by_id(order_id).await?;
        match channel {
            Some(c) if c.as_str() != order.channel => {
                Err(AppError::NotFound { what: "order", id: order_id.to_owned() })
            }
            _ => Ok(order),
        }
    }

    /// Locks an order for a change and loads it (visible to `channel` only if given).
    pub(crate) async fn lock_for_change(
        &self,
        tx: &mut allot_store::Tx,
        order_id: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        if !tx.lock_order(order_id).await? {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        }
        let Some(order) = tx.order(order_id).await? else {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        };
        if channel.is_some_and(|c| c.as_str() != order.channel) {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        }
        Ok(order)
    }
}
