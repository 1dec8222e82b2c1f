//! Carrier scans of shipments: a scan moves the shipment; the last delivery scan of a
//! fulfillment order delivers it.

use super::*;

/// How far ahead of the server's clock a scan's time may be (carrier clocks drift a
/// little); a scan further in the future is refused, as it would make a delivery look
/// early and spoil the promise accuracy it feeds.
pub const SCAN_AHEAD_MAX_MS: i64 = 5 * 60_000;

impl App {
    /// A carrier's scan of a shipment. A repeat of the shipment's current scan changes
    /// nothing; a delivery scan delivers the fulfillment order once all its shipments are
    /// delivered. `node` limits a node key to its own shipments.
    pub async fn record_scan(&self, tracking_number: &str, scan: Scan, node: Option<&NodeId>) -> Result<ShipmentRow> {
        if scan.detail.as_ref().is_some_and(|d| d.chars().count() > 500) {
            return Err(AppError::invalid("detail", "at most 500 characters"));
        }
        let not_found = || AppError::NotFound { what: "shipment", id: tracking_number.to_owned() };
        let now = self.now_ms();
        if scan.at_ms > now + SCAN_AHEAD_MAX_MS {
            return Err(AppError::invalid("at", "is more than 5 minutes ahead of the server's clock"));
        }
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
}
