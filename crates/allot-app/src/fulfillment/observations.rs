//! Delivery observations for the promise accuracy loop: what each delivered shipment
//! took on its lane, against its promise.

use super::*;

impl App {
    /// What a delivered shipment took (see [`allot_store::DeliveryObservation`]): its lane
    /// (node → the address's region, carrier service), the carrier delivery days from the
    /// node-local ship date to the customer's delivery date (with the matched service's
    /// calendar; calendar days when no service of the node matches the carrier), and the
    /// days against the earliest promised date of its lines.
    pub(crate) fn delivery_observation(
        &self,
        order: &StoredOrder,
        sh: &ShipmentRow,
        delivered_at_ms: i64,
    ) -> Option<allot_store::DeliveryObservation> {
        let captured = CapturedOrder::of(order).ok();
        let ship_to = captured.as_ref().and_then(|c| c.ship_to.as_ref());
        let region = ship_to.and_then(|s| s.region.clone()).unwrap_or_default();
        let customer_zone = customer_zone(ship_to);
        let line_ids = shipment_line_ids(sh);
        if line_ids.is_empty() {
            return None;
        }
        // Only parcels to the customer's address teach its lane (not store transfers).
        let to_customer = |id: &String| {
            captured.as_ref().is_some_and(|c| c.lines.iter().any(|l| &l.line_id == id && l.method == "ship"))
        };
        if !line_ids.iter().all(to_customer) {
            return None;
        }
        let lines: Vec<&allot_store::OrderLineRow> =
            order.lines.iter().filter(|l| line_ids.contains(&l.line_id)).collect();
        let level = lines
            .first()
            .map(|l| {
                l.upgraded_service_level.clone().unwrap_or_else(|| match &captured {
                    Some(c) => c.service_level(&l.line_id),
                    None => "standard".to_owned(),
                })
            })
            .unwrap_or_else(|| "standard".to_owned());
        let read = self.inner.read.read();
        let node_zone = read
            .node(&sh.node_id)
            .and_then(|n| jiff::tz::TimeZone::get(n.node.time_zone.as_str()).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let shipped = node_zone.to_datetime(jiff::Timestamp::from_millisecond(sh.shipped_at_ms).ok()?).date();
        let delivered = customer_zone.to_datetime(jiff::Timestamp::from_millisecond(delivered_at_ms).ok()?).date();
        let carrier_prefix = format!("{}:", sh.carrier);
        let service = read.calendars.get(&sh.node_id).and_then(|cal| {
            cal.carrier_services.iter().filter(|k| k.starts_with(&carrier_prefix)).find_map(|key| {
                read.carriers
                    .values()
                    .flat_map(|c| c.services.iter())
                    .find(|s| &s.key == key && s.service_level == level)
            })
        });
        let (carrier_service, transit_days) = match service {
            Some(svc) => (
                svc.key.clone(),
                i64::from(allot_core::promise::observed_transit_days(&svc.calendar, shipped, delivered)),
            ),
            None => (
                format!("{}{level}", carrier_prefix),
                shipped.until(delivered).ok().map_or(0, |span| i64::from(span.get_days()).max(0)),
            ),
        };
        let promised = lines.iter().filter_map(|l| l.promised_date.as_deref()?.parse::<jiff::civil::Date>().ok()).min();
        let days_late = promised.and_then(|p| p.until(delivered).ok()).map(|span| i64::from(span.get_days()));
        Some(allot_store::DeliveryObservation {
            shipment_id: sh.shipment_id.clone(),
            order_id: order.order_id.clone(),
            node_id: sh.node_id.clone(),
            region,
            carrier_service,
            shipped_at_ms: sh.shipped_at_ms,
            delivered_at_ms,
            transit_days,
            promised_date: promised.map(|d| d.to_string()),
            days_late,
        })
    }
}
