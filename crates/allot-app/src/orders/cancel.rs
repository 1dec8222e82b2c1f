//! Cancelling an order or units of a line while they have not left a node: stock goes
//! back to ATP at once, fulfillment orders left empty are cancelled.

use super::*;

impl App {
    /// Cancels units of one line (all its open units when `quantity` is `None`): unfilled
    /// and backordered units first, then allocated ones, whose stock returns to ATP at
    /// once. Cancelling an already cancelled line answers the order as it is.
    pub async fn cancel_line(
        &self,
        order_id: &allot_core::OrderId,
        line_id: &str,
        quantity: Option<u64>,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        self.cancel(order_id, Some((line_id, quantity)), reason, channel).await
    }

    /// Cancels every open unit of an order.
    pub async fn cancel_order(
        &self,
        order_id: &allot_core::OrderId,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        self.cancel(order_id, None, reason, channel).await
    }

    pub(super) async fn cancel(
        &self,
        order_id: &str,
        target: Option<(&str, Option<u64>)>,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        if reason.trim().is_empty() || reason.chars().count() > REASON_MAX_CHARS {
            return Err(AppError::invalid("reason", format!("must be 1–{REASON_MAX_CHARS} characters")));
        }
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        // Units a cancellation can still reach: not yet allocated, or allocated in a
        // fulfillment order that has not handed them over.
        let holding: std::collections::BTreeSet<String> = order
            .fulfillment_orders
            .iter()
            .filter(|f| FoStatus::parse(&f.status).is_some_and(FoStatus::holds_stock))
            .map(|f| f.fulfillment_order_id.clone())
            .collect();
        let cancellable = |order: &StoredOrder, i: usize| {
            let l = &order.lines[i];
            let allocated: i64 = order
                .allocations
                .iter()
                .filter(|a| a.line_id == l.line_id && holding.contains(&a.fulfillment_order_id))
                .map(|a| a.quantity)
                .sum();
            l.unfilled + l.backordered + allocated
        };
        let handed_over = || {
            AppError::Conflict(vec![FieldError::new(
                "quantity",
                "the units have left their node (shipped or picked up); they can no longer be cancelled",
            )])
        };
        let picks: Vec<(usize, i64)> = match target {
            None => {
                let picks: Vec<(usize, i64)> = (0..order.lines.len()).map(|i| (i, cancellable(&order, i))).collect();
                let open: i64 = order.lines.iter().map(|l| l.quantity - l.cancelled).sum();
                if open > 0 && picks.iter().all(|(_, q)| *q == 0) {
                    tx.rollback().await?;
                    return Err(handed_over());
                }
                picks
            }
            Some((line_id, q)) => {
                let Some(i) = order.lines.iter().position(|l| l.line_id == line_id) else {
                    tx.rollback().await?;
                    return Err(AppError::NotFound { what: "order line", id: format!("{order_id}/{line_id}") });
                };
                let open = order.lines[i].quantity - order.lines[i].cancelled;
                let can = cancellable(&order, i);
                let want = q.map_or(can, |q| i64::try_from(q).unwrap_or(i64::MAX));
                if q == Some(0) || want > open {
                    tx.rollback().await?;
                    return Err(AppError::invalid("quantity", format!("must be 1–{open} (the line's open units)")));
                }
                if want > can || (q.is_none() && can == 0 && open > 0) {
                    tx.rollback().await?;
                    return Err(handed_over());
                }
                vec![(i, want)]
            }
        };
        // The positions a cancellation may release, locked in key order (PostgreSQL) so it
        // never locks them in the opposite order of a concurrent fulfillment action.
        let mut keys: Vec<(NodeId, Sku)> = order
            .allocations
            .iter()
            .filter(|a| a.quantity > 0 && holding.contains(&a.fulfillment_order_id))
            .filter_map(|a| Some((NodeId::parse(&a.node_id).ok()?, Sku::parse(&a.sku).ok()?)))
            .collect();
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            tx.lock_positions(&keys, now).await?;
        }
        let was_open = order.status != "cancelled";
        let mut cancelled_now: Vec<(String, i64)> = Vec::new();
        let mut written = Vec::new();
        for (i, mut left) in picks {
            if left == 0 {
                continue;
            }
            let total = left;
            cancelled_now.push((order.lines[i].line_id.clone(), total));
            let line = &mut order.lines[i];
            for bucket in [&mut line.unfilled, &mut line.backordered] {
                let take = left.min(*bucket);
                *bucket -= take;
                left -= take;
            }
            // Allocated units not yet handed over: release stock node by node (node id order).
            let mut allocs: Vec<&mut AllocationRow> = order
                .allocations
                .iter_mut()
                .filter(|a| a.line_id == line.line_id && a.quantity > 0 && holding.contains(&a.fulfillment_order_id))
                .collect();
            allocs.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            for a in allocs {
                if left == 0 {
                    break;
                }
                let take = left.min(a.quantity);
                let (node, sku) = (NodeId::parse(&a.node_id), Sku::parse(&a.sku));
                let (Ok(node), Ok(sku)) = (node, sku) else { continue };
                match tx.move_stock(StockMove::Release, &node, &sku, take as u64, now).await? {
                    Some(p) => written.push(p),
                    None => {
                        return Err(AppError::stock_mismatch(&node, &sku, "allocated", &format!("order {order_id}")));
                    }
                }
                a.quantity -= take;
                if let Some(p) = a.picked.as_mut() {
                    *p = (*p).min(a.quantity);
                }
                line.allocated -= take;
                left -= take;
                tx.update_allocation(a).await?;
            }
            line.cancelled += total;
            line.status = line_status(line).to_owned();
            tx.update_line(order_id, line).await?;
            tx.insert_cancellation(order_id, &line.line_id, total, reason, now).await?;
        }
        let mut events = Vec::new();
        for fo in order.fulfillment_orders.iter_mut().filter(|f| holding.contains(&f.fulfillment_order_id)) {
            let left: i64 = order
                .allocations
                .iter()
                .filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id)
                .map(|a| a.quantity)
                .sum();
            if left == 0 {
                fo.status = FoStatus::Cancelled.as_str().to_owned();
                fo.reason = Some(reason.to_owned());
                fo.updated_at_ms = now;
                tx.update_fulfillment_order(fo).await?;
                events.push(crate::events::fo_event(fo, &order.channel, now, json!({"reason": reason})));
            }
        }
        let status = order_status(&order.lines, &order.holds);
        tx.update_order(order_id, status, &order.holds).await?;
        order.status = status.to_owned();
        if status == "cancelled" && was_open {
            events.push(crate::events::order_event("order.cancelled", &order, now, json!({"reason": reason})));
        } else {
            for (line_id, q) in &cancelled_now {
                events.push(crate::events::order_event(
                    "order.line_cancelled",
                    &order,
                    now,
                    json!({"line_id": line_id, "quantity": q, "reason": reason}),
                ));
            }
        }
        tx.insert_events(&events).await?;
        self.notify(&mut tx, || self.positions_note(&written)).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        if cancelled_now.iter().any(|(_, q)| *q > 0) {
            self.backorders_changed(order.lines.iter().map(|l| l.sku.clone()).collect()).await;
        }
        self.order_by_id(order_id).await
    }

    /// After a change that may have moved backordered units of `skus`: recomputes their
    /// supply commitments. Errors are logged, not answered: the change itself committed,
    /// and the next change of the SKU recomputes them again.
    pub(crate) async fn backorders_changed(&self, mut skus: Vec<String>) {
        skus.sort();
        skus.dedup();
        if let Err(e) = self.recommit_supply(&skus).await {
            tracing::warn!(error = %ErrorChain(&e), "recomputing supply commitments failed");
        }
    }
}
