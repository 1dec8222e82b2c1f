//! Order capture: idempotent intake, sourcing through the engine, and allocation that
//! never oversells.
//!
//! Placement is one transaction: the plan is made from the read model (fast, possibly a
//! little behind other servers), then every allocation is taken with a conditional
//! `UPDATE` that succeeds only while the database's ATP covers it. If one fails, the
//! transaction rolls back, the positions involved are re-read into the read model and the
//! order is sourced again (at most [`PLACE_ATTEMPTS`] times; on the last attempt units
//! whose allocation fails are simply not allocated). The order, its lines, fulfillment
//! orders and allocations are written in the same transaction as the stock they take.

use std::collections::BTreeMap;

use allot_core::sourcing::OrderToSource;
use allot_core::{ChannelId, NodeId, Sku};
use allot_store::{AllocationRow, FulfillmentOrderRow, NewOrder, OrderLineRow, StoredOrder, StoredPosition};

use crate::{App, AppError, FieldError, Quote, Result};

/// Attempts to place an order when concurrent orders take the planned stock first.
pub const PLACE_ATTEMPTS: usize = 3;

/// An order as captured, ready to place.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub channel: ChannelId,
    pub external_id: String,
    /// SHA-256 (hex) of the canonical request, for idempotency.
    pub request_hash: String,
    /// The request as captured (JSON), stored with the order.
    pub document: String,
    pub holds: Vec<String>,
    pub policy: Option<String>,
    pub order: OrderToSource,
}

/// The result of placing: the stored order, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: StoredOrder,
    pub created: bool,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

impl App {
    /// Places an order (see the module docs). `render` turns the sourcing decision into
    /// the JSON stored with the order (the API's view of a quote).
    pub async fn place_order(&self, input: PlaceOrder, render: &(dyn Fn(&Quote) -> String + Sync)) -> Result<Placed> {
        if input.external_id.is_empty() {
            return Err(AppError::invalid("external_id", "required"));
        }
        // Idempotency: the same (channel, external_id) answers the stored order.
        if let Some(existing) = self.existing_order(&input).await? {
            return Ok(existing);
        }
        for attempt in 1..=PLACE_ATTEMPTS {
            let last = attempt == PLACE_ATTEMPTS;
            let quote = self.quote(&input.order, input.policy.as_deref())?;
            let now = self.now_ms();
            let mut tx = self.inner.store.begin().await?;
            if tx.order_by_external(input.channel.as_str(), &input.external_id).await?.is_some() {
                tx.rollback().await?;
                if let Some(existing) = self.existing_order(&input).await? {
                    return Ok(existing);
                }
                continue;
            }
            // Take the planned stock, package by package.
            let mut taken: BTreeMap<(usize, NodeId), u64> = BTreeMap::new(); // (line index, node) → units
            let mut written: Vec<StoredPosition> = Vec::new();
            let mut failed: Vec<(NodeId, Sku)> = Vec::new();
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    let Some(li) = input.order.lines.iter().position(|x| x.line_id == l.line_id) else { continue };
                    match tx.allocate(&pkg.node_id, &l.sku, l.quantity.get(), now).await? {
                        Some(p) => {
                            written.push(p);
                            *taken.entry((li, pkg.node_id.clone())).or_default() += l.quantity.get();
                        }
                        None => failed.push((pkg.node_id.clone(), l.sku.clone())),
                    }
                }
            }
            if !failed.is_empty() && !last {
                tx.rollback().await?;
                self.reload_positions(&failed).await?;
                continue;
            }
            let new = self.build_order(&input, &quote, &taken, render, now);
            tx.insert_order(&new).await?;
            self.notify(&mut tx, self.positions_note_pub(&written)).await?;
            tx.commit().await?;
            self.refresh_positions_pub(written);
            if !failed.is_empty() {
                self.reload_positions(&failed).await?;
            }
            let order = self.order_by_id(&new.order_id).await?;
            return Ok(Placed { order, created: true });
        }
        Err(AppError::invalid("lines", "the order could not be placed; retry"))
    }

    async fn existing_order(&self, input: &PlaceOrder) -> Result<Option<Placed>> {
        let mut tx = self.inner.store.begin().await?;
        let found = tx.order_by_external(input.channel.as_str(), &input.external_id).await?;
        tx.rollback().await?;
        let Some((order_id, hash)) = found else { return Ok(None) };
        if hash != input.request_hash {
            return Err(AppError::Conflict(vec![FieldError::new(
                "external_id",
                format!(
                    "order {} of channel {} exists ({order_id}) with a different body",
                    input.external_id, input.channel
                ),
            )]));
        }
        Ok(Some(Placed { order: self.order_by_id(&order_id).await?, created: false }))
    }

    async fn reload_positions(&self, keys: &[(NodeId, Sku)]) -> Result<()> {
        let mut fresh = Vec::with_capacity(keys.len());
        for (n, s) in keys {
            if let Some(p) = self.inner.store.position(n, s).await? {
                fresh.push(p);
            }
        }
        self.refresh_positions_pub(fresh);
        Ok(())
    }

    fn build_order(
        &self,
        input: &PlaceOrder,
        quote: &Quote,
        taken: &BTreeMap<(usize, NodeId), u64>,
        render: &(dyn Fn(&Quote) -> String + Sync),
        now: i64,
    ) -> NewOrder {
        let order_id = new_id("ord");
        let on_hold = !input.holds.is_empty();
        let mut fo_ids: BTreeMap<NodeId, String> = BTreeMap::new();
        for (_, node) in taken.keys() {
            fo_ids.entry(node.clone()).or_insert_with(|| new_id("fo"));
        }
        let allocations: Vec<AllocationRow> = taken
            .iter()
            .map(|((li, node), q)| {
                let line = &input.order.lines[*li];
                AllocationRow {
                    line_id: line.line_id.clone(),
                    node_id: node.to_string(),
                    sku: line.sku.to_string(),
                    quantity: *q as i64,
                    fulfillment_order_id: fo_ids[node].clone(),
                }
            })
            .collect();
        // Units not allocated are backordered when the line allows it and the engine did
        // not rule backorders out (it lists such lines as unfilled).
        let allow_backorder = |li: usize| {
            let line = &input.order.lines[li];
            line.allow_backorder && !quote.decision.plan.unfilled.iter().any(|u| u.line_id == line.line_id)
        };
        let lines: Vec<OrderLineRow> = input
            .order
            .lines
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let q = l.quantity.get() as i64;
                let allocated: i64 = taken.iter().filter(|((i, _), _)| *i == li).map(|(_, u)| *u as i64).sum();
                let rest = q - allocated;
                let (backordered, unfilled) = if allow_backorder(li) { (rest, 0) } else { (0, rest) };
                let status = if allocated == q {
                    "allocated"
                } else if allocated > 0 {
                    "partially_allocated"
                } else if backordered > 0 {
                    "backordered"
                } else {
                    "unfilled"
                };
                OrderLineRow {
                    line_id: l.line_id.clone(),
                    sku: l.sku.to_string(),
                    quantity: q,
                    allocated,
                    backordered,
                    unfilled,
                    status: status.to_owned(),
                }
            })
            .collect();
        let total: i64 = lines.iter().map(|l| l.quantity).sum();
        let allocated: i64 = lines.iter().map(|l| l.allocated).sum();
        let backordered: i64 = lines.iter().map(|l| l.backordered).sum();
        let status = if on_hold {
            "on_hold"
        } else if allocated == total {
            "allocated"
        } else if allocated > 0 {
            "partially_allocated"
        } else if backordered > 0 {
            "backordered"
        } else {
            "unfilled"
        };
        // Fulfillment orders go to their nodes at once unless the order is on hold.
        let fo_status = if on_hold { "created" } else { "released" };
        let fulfillment_orders = fo_ids
            .iter()
            .map(|(node, id)| FulfillmentOrderRow {
                fulfillment_order_id: id.clone(),
                node_id: node.to_string(),
                status: fo_status.to_owned(),
            })
            .collect();
        NewOrder {
            order_id,
            channel: input.channel.to_string(),
            external_id: input.external_id.clone(),
            request_hash: input.request_hash.clone(),
            status: status.to_owned(),
            holds: input.holds.clone(),
            document: input.document.clone(),
            decision: render(quote),
            policy_name: quote.policy.name.clone(),
            policy_version: quote.policy.version,
            policy_hash: quote.policy.hash.clone(),
            created_at_ms: now,
            lines,
            fulfillment_orders,
            allocations,
        }
    }

    pub async fn order_by_id(&self, order_id: &str) -> Result<StoredOrder> {
        self.inner
            .store
            .order(order_id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "order", id: order_id.to_owned() })
    }

    /// An order as seen by a caller: a channel key sees only its own channel's orders
    /// (anything else is "not found", not "forbidden").
    pub async fn order_for(&self, order_id: &str, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        let order = self.order_by_id(order_id).await?;
        match channel {
            Some(c) if c.as_str() != order.channel => {
                Err(AppError::NotFound { what: "order", id: order_id.to_owned() })
            }
            _ => Ok(order),
        }
    }
}
