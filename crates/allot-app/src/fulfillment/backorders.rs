//! Backorders filled when stock arrives: the oldest promise first, in bounded pages,
//! each order its own transaction and a numbered attempt (`supply_arrived`).

use super::*;

impl App {
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
    pub(super) fn in_stock(&self, sku: &str) -> bool {
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
}
