//! Holds: fulfillment orders are held back while an order has a hold; the last release
//! sends them to their nodes.

use super::*;

impl App {
    /// Adds a hold: fulfillment orders not yet worked on are held back. Adding a hold the
    /// order already has changes nothing.
    pub async fn add_hold(
        &self,
        order_id: &allot_core::OrderId,
        hold: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        if order.status == "cancelled" {
            tx.rollback().await?;
            return Err(AppError::Conflict(vec![FieldError::new("hold", "the order is cancelled")]));
        }
        if !order.holds.iter().any(|h| h == hold) {
            order.holds.push(hold.to_owned());
            let now = self.now_ms();
            for fo in order.fulfillment_orders.iter_mut() {
                if let Ok(Transition::To(to)) =
                    allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Hold, fo_kind(fo)?)
                {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = None;
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
            let status = order_status(&order.lines, &order.holds);
            tx.update_order(order_id, status, &order.holds).await?;
            order.status = status.to_owned();
            let event = crate::events::order_event("order.on_hold", &order, self.now_ms(), json!({"hold": hold}));
            tx.insert_events(&[event]).await?;
        }
        tx.commit().await?;
        self.order_by_id(order_id).await
    }

    /// Releases a hold; when the last one goes, fulfillment orders are released to their
    /// nodes. Releasing a hold the order does not have is "not found".
    pub async fn release_hold(
        &self,
        order_id: &allot_core::OrderId,
        hold: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        let order_id = order_id.as_str();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        let Some(at) = order.holds.iter().position(|h| h == hold) else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "hold", id: format!("{order_id}/{hold}") });
        };
        order.holds.remove(at);
        let now = self.now_ms();
        if order.holds.is_empty() {
            for fo in order.fulfillment_orders.iter_mut() {
                let next = allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Release, fo_kind(fo)?);
                if let Ok(Transition::To(to)) = next {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = Some(now);
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
        }
        let status = order_status(&order.lines, &order.holds);
        tx.update_order(order_id, status, &order.holds).await?;
        if order.holds.is_empty() && status != "cancelled" {
            order.status = status.to_owned();
            let event = crate::events::order_event("order.released", &order, now, json!({"hold": hold}));
            tx.insert_events(&[event]).await?;
        }
        tx.commit().await?;
        self.order_by_id(order_id).await
    }
}
