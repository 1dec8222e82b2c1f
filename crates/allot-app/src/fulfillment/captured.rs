//! The order as captured, read back for re-sourcing and jeopardy (it was validated at
//! capture; only what the engine needs is read).

use super::*;

/// The order as captured, read back for re-sourcing (it was validated at capture; only
/// what the engine needs is read).
#[derive(Deserialize)]
pub(crate) struct Captured {
    #[serde(default)]
    pub(crate) customer: Option<CapturedCustomer>,
    #[serde(default)]
    pub(crate) ship_to: Option<CapturedShipTo>,
    pub(crate) lines: Vec<CapturedLine>,
    /// `ship:<service level>:<date>` when the order was placed on a promise.
    #[serde(default)]
    pub(crate) promise_option_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CapturedCustomer {
    #[serde(default)]
    pub(crate) tier: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CapturedShipTo {
    #[serde(default)]
    pub(crate) country: Option<String>,
    #[serde(default)]
    pub(crate) region: Option<String>,
    #[serde(default)]
    pub(crate) lat: Option<f64>,
    #[serde(default)]
    pub(crate) lon: Option<f64>,
    #[serde(default)]
    pub(crate) time_zone: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CapturedLine {
    pub(crate) line_id: String,
    pub(crate) sku: String,
    #[serde(default)]
    pub(crate) unit_price_minor: i64,
    #[serde(default)]
    pub(crate) method: Option<String>,
    #[serde(default)]
    pub(crate) pickup_node_id: Option<String>,
    #[serde(default)]
    pub(crate) service_level: Option<String>,
    #[serde(default)]
    pub(crate) allow_backorder: bool,
}

/// The engine's view of a stored order, every line at quantity 1 (callers set the units
/// to source).
pub(crate) fn captured_order(order: &StoredOrder) -> Result<OrderToSource> {
    let corrupt = |detail: String| {
        AppError::Store(allot_store::StoreError::Corrupt {
            table: "orders",
            detail: format!("{}: {detail}", order.order_id),
        })
    };
    let c: Captured = serde_json::from_str(&order.document).map_err(|e| corrupt(e.to_string()))?;
    let ship_to = c.ship_to.as_ref().and_then(|s| allot_core::GeoPoint::new(s.lat?, s.lon?).ok());
    let mut lines = Vec::with_capacity(c.lines.len());
    for l in c.lines {
        let method = match l.method.as_deref() {
            None => allot_core::FulfillmentMethod::Ship,
            Some(m) => allot_core::FulfillmentMethod::parse(m).ok_or_else(|| corrupt(format!("method {m}")))?,
        };
        // A jeopardy upgrade holds for any later re-sourcing too.
        let service_level = order
            .lines
            .iter()
            .find(|r| r.line_id == l.line_id)
            .and_then(|r| r.upgraded_service_level.clone())
            .or(l.service_level);
        lines.push(LineToSource {
            line_id: l.line_id,
            sku: Sku::parse(&l.sku).map_err(|e| corrupt(e.to_string()))?,
            quantity: Qty::ONE,
            method,
            pickup_node: l.pickup_node_id.as_deref().and_then(|n| NodeId::parse(n).ok()),
            service_level,
            allow_backorder: l.allow_backorder,
            unit_price_minor: l.unit_price_minor,
        });
    }
    Ok(OrderToSource {
        promise: None,
        channel: allot_core::ChannelId::parse(&order.channel).ok(),
        customer_tier: c.customer.and_then(|c| c.tier),
        ship_to,
        country: c.ship_to.as_ref().and_then(|s| s.country.clone()),
        region: c.ship_to.as_ref().and_then(|s| s.region.clone()),
        lines,
    })
}

/// The promise an order was placed on (`ship:<service level>:<date>`), if any.
pub(crate) fn captured_promise(order: &StoredOrder) -> Option<(String, jiff::civil::Date)> {
    let c: Captured = serde_json::from_str(&order.document).ok()?;
    let option = c.promise_option_id?;
    let mut parts = option.strip_prefix("ship:")?.splitn(2, ':');
    let level = parts.next()?.to_owned();
    let date = parts.next()?.parse().ok()?;
    Some((level, date))
}
