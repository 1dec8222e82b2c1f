//! The order as captured: what a channel sent, validated, kept with the order as its
//! document, and read back when the order is re-sourced, watched for jeopardy or observed
//! on delivery.
//!
//! What it owns: the stored document's shape and its one canonical text — every field in a
//! fixed order, defaults written out, holds sorted — which is also the order's identity
//! for idempotency: the same order sent with an explicit `null`, a default spelled out, in
//! another key order, or by an admin naming the channel a channel key implies, is the same
//! order. What it must never do: speak HTTP (the API builds it from its request shape).
//!
//! Documents stored before this type (the request's own JSON) read back through the same
//! type: every field but `lines` has a default, and a line's `method` defaults to `ship`.

use allot_core::sourcing::{LineToSource, OrderToSource};
use allot_core::{FulfillmentMethod, NodeId, Qty, Sku};
use allot_store::StoredOrder;
use serde::{Deserialize, Serialize};

use crate::{AppError, Result};

/// The order as captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedOrder {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub customer: Option<CapturedCustomer>,
    #[serde(default)]
    pub ship_to: Option<CapturedShipTo>,
    /// The billing address (fields added after the first documents are written only when
    /// given, so a document's canonical text, its identity, does not change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to: Option<CapturedBillTo>,
    /// ISO 4217; `None`: USD.
    #[serde(default)]
    pub currency: Option<String>,
    pub lines: Vec<CapturedLine>,
    #[serde(default)]
    pub holds: Vec<String>,
    #[serde(default)]
    pub reservation_id: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    /// `ship:<service level>:<date>` or `pickup:<store>` when placed on a promise option.
    #[serde(default)]
    pub promise_option_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapturedCustomer {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapturedBillTo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapturedShipTo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedLine {
    pub line_id: String,
    pub sku: String,
    #[serde(default)]
    pub quantity: u64,
    #[serde(default)]
    pub unit_price_minor: i64,
    #[serde(default = "ship")]
    pub method: String,
    #[serde(default)]
    pub pickup_node_id: Option<String>,
    #[serde(default)]
    pub service_level: Option<String>,
    #[serde(default)]
    pub allow_backorder: bool,
    #[serde(default)]
    pub allow_substitution: bool,
}

fn ship() -> String {
    FulfillmentMethod::Ship.as_str().to_owned()
}

impl CapturedOrder {
    /// The canonical text: stored with the order, and hashed into its identity.
    pub fn canonical(&self) -> String {
        let mut canonical = self.clone();
        canonical.holds.sort();
        canonical.holds.dedup();
        // Serializing plain data with string keys cannot fail; an empty text would only
        // make two orders compare unequal, never equal.
        serde_json::to_string(&canonical).unwrap_or_default()
    }

    /// Reads an order's stored document.
    pub(crate) fn of(order: &StoredOrder) -> Result<CapturedOrder> {
        let mut c: CapturedOrder = serde_json::from_str(&order.document).map_err(|e| corrupt(order, e.to_string()))?;
        if c.channel.is_empty() {
            // Stored from a channel key's request, which implied its channel.
            c.channel.clone_from(&order.channel);
        }
        Ok(c)
    }

    /// The engine's view of a stored order, every line at quantity 1 (callers set the
    /// units to source). A line's service level is the one the jeopardy sweep upgraded it
    /// to, if it did (an upgrade holds for any later re-sourcing too).
    pub(crate) fn to_source(&self, order: &StoredOrder) -> Result<OrderToSource> {
        let ship_to = self.ship_to.as_ref().and_then(|s| allot_core::GeoPoint::new(s.lat?, s.lon?).ok());
        let mut lines = Vec::with_capacity(self.lines.len());
        for l in &self.lines {
            let method = FulfillmentMethod::parse(&l.method)
                .ok_or_else(|| corrupt(order, format!("line {}: method {}", l.line_id, l.method)))?;
            let service_level = order
                .lines
                .iter()
                .find(|r| r.line_id == l.line_id)
                .and_then(|r| r.upgraded_service_level.clone())
                .or_else(|| l.service_level.clone());
            lines.push(LineToSource {
                line_id: l.line_id.clone(),
                sku: Sku::parse(&l.sku).map_err(|e| corrupt(order, e.to_string()))?,
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
            customer_tier: self.customer.as_ref().and_then(|c| c.tier.clone()),
            ship_to,
            country: self.ship_to.as_ref().and_then(|s| s.country.clone()),
            region: self.ship_to.as_ref().and_then(|s| s.region.clone()),
            billing_country: self.bill_to.as_ref().and_then(|b| b.country.clone()),
            currency: allot_core::Currency::parse(self.currency.as_deref().unwrap_or("USD")).ok(),
            lines,
        })
    }

    /// The ship promise the order was placed on (`ship:<service level>:<date>`), if any.
    pub(crate) fn ship_promise(&self) -> Option<(String, jiff::civil::Date)> {
        let mut parts = self.promise_option_id.as_deref()?.strip_prefix("ship:")?.splitn(2, ':');
        let level = parts.next()?.to_owned();
        let date = parts.next()?.parse().ok()?;
        Some((level, date))
    }

    /// The service level a line was ordered with: its own, else the promise option's,
    /// else standard.
    pub(crate) fn service_level(&self, line_id: &str) -> String {
        self.lines
            .iter()
            .find(|l| l.line_id == line_id)
            .and_then(|l| l.service_level.clone())
            .or_else(|| self.promise_option_id.as_deref()?.strip_prefix("ship:")?.split(':').next().map(str::to_owned))
            .unwrap_or_else(|| "standard".to_owned())
    }
}

/// What an order says about its customer, addresses and money, for whoever reads it
/// (customer service, notifications): read from the captured document, once, below the
/// API.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTerms {
    pub customer: Option<CapturedCustomer>,
    pub ship_to: Option<CapturedShipTo>,
    pub bill_to: Option<CapturedBillTo>,
    /// ISO 4217 (USD when the channel did not say).
    pub currency: String,
    /// Per line, in the order's line order.
    pub lines: Vec<LineTerms>,
    /// What the customer pays for the units not cancelled, in minor units.
    pub total_minor: i64,
}

/// One line's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTerms {
    pub line_id: String,
    pub method: String,
    pub unit_price_minor: i64,
    /// `unit_price_minor` × the units not cancelled.
    pub line_total_minor: i64,
    /// The service level its units travel by (as upgraded by the jeopardy sweep, else as
    /// ordered or promised, else standard); `None` for lines collected at a store.
    pub service_level: Option<String>,
}

impl OrderTerms {
    /// The terms of a stored order; `None` when its document cannot be read (a corrupt
    /// row is reported where the order is acted on, not where it is shown).
    pub fn of(order: &StoredOrder) -> Option<OrderTerms> {
        let c = CapturedOrder::of(order).ok()?;
        let lines: Vec<LineTerms> = c
            .lines
            .iter()
            .map(|l| {
                let row = order.lines.iter().find(|r| r.line_id == l.line_id);
                let units = row.map_or(0, |r| r.quantity - r.cancelled);
                let ships = FulfillmentMethod::parse(&l.method).is_some_and(FulfillmentMethod::ships_to_customer);
                LineTerms {
                    line_id: l.line_id.clone(),
                    method: l.method.clone(),
                    unit_price_minor: l.unit_price_minor,
                    line_total_minor: l.unit_price_minor.saturating_mul(units),
                    service_level: ships.then(|| {
                        row.and_then(|r| r.upgraded_service_level.clone())
                            .unwrap_or_else(|| c.service_level(&l.line_id))
                    }),
                }
            })
            .collect();
        Some(OrderTerms {
            total_minor: lines.iter().map(|l| l.line_total_minor).fold(0, i64::saturating_add),
            customer: c.customer,
            ship_to: c.ship_to,
            bill_to: c.bill_to,
            currency: c.currency.unwrap_or_else(|| "USD".to_owned()),
            lines,
        })
    }
}

fn corrupt(order: &StoredOrder, detail: String) -> AppError {
    AppError::Store(allot_store::StoreError::Corrupt {
        table: "orders",
        detail: format!("{}: {detail}", order.order_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> CapturedLine {
        CapturedLine {
            line_id: id.to_owned(),
            sku: "SKU-1".to_owned(),
            quantity: 1,
            unit_price_minor: 0,
            method: ship(),
            pickup_node_id: None,
            service_level: None,
            allow_backorder: false,
            allow_substitution: false,
        }
    }

    #[test]
    fn a_request_stored_before_this_type_reads_back_with_its_defaults() {
        let raw = r#"{"external_id":"W-1","ship_to":{"lat":39.95,"lon":-75.16},
                     "lines":[{"line_id":"1","sku":"SKU-1","quantity":2}],"holds":["payment"]}"#;
        let c: CapturedOrder = serde_json::from_str(raw).unwrap();
        assert_eq!(c.lines[0].method, "ship");
        assert_eq!((c.channel.as_str(), c.holds.as_slice()), ("", ["payment".to_owned()].as_slice()));
    }

    #[test]
    fn the_canonical_text_does_not_depend_on_hold_order_and_reads_back_the_same() {
        let a = CapturedOrder {
            channel: "web".into(),
            external_id: "W-1".into(),
            customer: None,
            ship_to: None,
            bill_to: None,
            currency: None,
            lines: vec![line("1")],
            holds: vec!["payment".into(), "fraud".into()],
            reservation_id: None,
            policy: None,
            promise_option_id: None,
        };
        let b = CapturedOrder { holds: vec!["fraud".into(), "payment".into(), "fraud".into()], ..a.clone() };
        assert_eq!(a.canonical(), b.canonical());
        // Fields added later are absent when not given: documents keep their identity.
        assert!(!a.canonical().contains("bill_to"), "{}", a.canonical());
        let back: CapturedOrder = serde_json::from_str(&a.canonical()).unwrap();
        assert_eq!(back.canonical(), a.canonical());
    }
}
