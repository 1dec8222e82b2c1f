//! Request bodies as the API accepts them, and their one-time parsing into core types.
//! Unknown fields are rejected (`deny_unknown_fields`); every rule broken is reported with
//! the field's JSON path, not just the first.

use allot_app::{DeltaInput, FieldError, SnapshotInput};
use allot_core::catalog::{ITEM_NAME_MAX_CHARS, SUBSTITUTES_MAX};
use allot_core::inventory::{AbsolutePosition, SnapshotEntry};
use allot_core::network::{NODE_NAME_MAX_CHARS, canonical_capabilities};
use allot_core::{Currency, GeoPoint, Item, Node, NodeCapacity, NodeCosts, NodeId, Qty, Sku, TimeZoneName};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::text::{Prose, Reference};
use crate::wire::{Capability, FulfillmentMethod, NodeStatus, NodeType};

/// Largest absolute value of a money amount in minor units (a named limit: 10^15).
pub const MONEY_MINOR_MAX: i64 = 1_000_000_000_000_000;
/// Longest free-text reason accepted.
pub const REASON_MAX_CHARS: usize = 200;

/// Collects field errors while parsing a request.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl ToString) {
        self.0.push(FieldError::new(field, message));
    }

    /// Runs a parse, recording its error under `field`.
    pub fn check<T, E: ToString>(&mut self, field: impl Into<String>, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

fn text(errors: &mut Errors, field: &str, value: &str, max_chars: usize) -> Option<String> {
    let n = value.chars().count();
    if value.trim().is_empty() {
        errors.push(field, "must not be empty");
        None
    } else if n > max_chars {
        errors.push(field, format!("must be at most {max_chars} characters, got {n}"));
        None
    } else {
        Some(value.to_owned())
    }
}

/// A quantity of at least 1 (order and reservation lines).
fn positive_qty(errors: &mut Errors, field: &str, value: u64) -> Option<Qty> {
    if value == 0 {
        errors.push(field, "must be at least 1");
        return None;
    }
    qty(errors, field, value)
}

fn qty(errors: &mut Errors, field: &str, value: u64) -> Option<Qty> {
    errors.check(field, Qty::new(value))
}

fn money(errors: &mut Errors, field: &str, value: i64) -> Option<i64> {
    if value.abs() > MONEY_MINOR_MAX {
        errors.push(field, format!("must be within ±{MONEY_MINOR_MAX}"));
        return None;
    }
    Some(value)
}

fn seq(errors: &mut Errors, field: &str, value: Option<u64>) -> Option<Option<u64>> {
    match value {
        Some(s) if s > i64::MAX as u64 => {
            errors.push(field, format!("must be at most {}", i64::MAX));
            None
        }
        other => Some(other),
    }
}

/// A point on the Earth (WGS 84).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationParam {
    /// Latitude in degrees, −90 to 90.
    pub lat: f64,
    /// Longitude in degrees, −180 to 180.
    pub lon: f64,
}

/// Daily limits; null or omitted means unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityParam {
    #[serde(default)]
    pub orders_per_day: Option<u32>,
    #[serde(default)]
    pub units_per_day: Option<u32>,
}

/// Handling cost at the node, in minor units of the node's currency (default 0).
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostsParam {
    #[serde(default)]
    pub per_order_minor: i64,
    #[serde(default)]
    pub per_unit_minor: i64,
}

fn default_status() -> NodeStatus {
    NodeStatus::Active
}
fn default_currency() -> String {
    "USD".to_owned()
}

/// `PUT /v1/nodes/{node_id}`: a node, created or replaced whole.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutNode {
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// 1–200 characters.
    pub name: Prose,
    pub location: LocationParam,
    /// IANA time zone name, e.g. `America/Chicago`.
    pub time_zone: String,
    /// Default: none.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Default: `active`.
    #[serde(default = "default_status")]
    pub status: NodeStatus,
    #[serde(default)]
    pub capacity: CapacityParam,
    #[serde(default)]
    pub costs: CostsParam,
    /// ISO 4217 code of the costs. Default: `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
}

impl PutNode {
    pub fn parse(self, id: NodeId) -> Result<Node, Vec<FieldError>> {
        let mut e = Errors::default();
        let name = text(&mut e, "name", &self.name, NODE_NAME_MAX_CHARS);
        let location = e.check("location", GeoPoint::new(self.location.lat, self.location.lon));
        let time_zone = e.check("time_zone", TimeZoneName::parse(&self.time_zone));
        let currency = e.check("currency", Currency::parse(&self.currency));
        let per_order = money(&mut e, "costs.per_order_minor", self.costs.per_order_minor);
        let per_unit = money(&mut e, "costs.per_unit_minor", self.costs.per_unit_minor);
        let node = (|| {
            Some(Node {
                id,
                node_type: self.node_type.into(),
                name: name?,
                location: location?,
                time_zone: time_zone?,
                capabilities: canonical_capabilities(self.capabilities.iter().map(|c| (*c).into()).collect()),
                status: self.status.into(),
                capacity: NodeCapacity {
                    orders_per_day: self.capacity.orders_per_day,
                    units_per_day: self.capacity.units_per_day,
                },
                costs: NodeCosts { per_order_minor: per_order?, per_unit_minor: per_unit?, currency: currency? },
            })
        })();
        e.finish(node)
    }
}

fn all_methods() -> Vec<FulfillmentMethod> {
    allot_core::FulfillmentMethod::ALL.iter().map(|m| (*m).into()).collect()
}

/// `PUT /v1/items/{sku}`: an item, created or replaced whole.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    /// 1–500 characters.
    pub name: Prose,
    /// Shipping weight in grams, at least 1. Omitted: unknown, and packages with it are
    /// billed at their rate's base (no per-kg part).
    #[serde(default)]
    pub weight_g: Option<u32>,
    /// Length, width, height in millimetres.
    #[serde(default)]
    pub dims_mm: Option<[u32; 3]>,
    #[serde(default)]
    pub hazmat: bool,
    /// Must travel in its own package.
    #[serde(default)]
    pub ship_alone: bool,
    /// Methods allowed for this item. Default: all.
    #[serde(default = "all_methods")]
    pub methods: Vec<FulfillmentMethod>,
    /// SKUs that may replace this one, in order of preference (existing items, at most 20).
    #[serde(default)]
    pub substitutes: Vec<String>,
}

impl PutItem {
    pub fn parse(self, sku: Sku) -> Result<Item, Vec<FieldError>> {
        let mut e = Errors::default();
        let name = text(&mut e, "name", &self.name, ITEM_NAME_MAX_CHARS);
        if self.methods.is_empty() {
            e.push("methods", "must list at least one method");
        }
        if self.weight_g == Some(0) {
            e.push("weight_g", "must be at least 1 gram; omit it when unknown");
        }
        if self.substitutes.len() > SUBSTITUTES_MAX {
            e.push("substitutes", format!("at most {SUBSTITUTES_MAX} substitutes"));
        }
        let substitutes: Vec<Sku> = self
            .substitutes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| e.check(format!("substitutes[{i}]"), Sku::parse(s)))
            .collect();
        let mut methods: Vec<allot_core::FulfillmentMethod> = self.methods.iter().map(|m| (*m).into()).collect();
        methods.sort();
        methods.dedup();
        let item = name.map(|name| Item {
            sku,
            name,
            weight_g: self.weight_g.unwrap_or(0),
            dims_mm: self.dims_mm,
            hazmat: self.hazmat,
            ship_alone: self.ship_alone,
            methods,
            substitutes,
        });
        e.finish(item)
    }
}

/// `PUT /v1/inventory/{node_id}/{sku}`: the absolute counts of one position.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPosition {
    pub on_hand: u64,
    #[serde(default)]
    pub damaged: u64,
    #[serde(default)]
    pub quarantined: u64,
    #[serde(default)]
    pub safety_stock: u64,
    /// Feed sequence number; when given it must exceed the stored one (else 409).
    #[serde(default)]
    pub seq: Option<u64>,
}

impl PutPosition {
    pub fn parse(self) -> Result<AbsolutePosition, Vec<FieldError>> {
        let mut e = Errors::default();
        let on_hand = qty(&mut e, "on_hand", self.on_hand);
        let damaged = qty(&mut e, "damaged", self.damaged);
        let quarantined = qty(&mut e, "quarantined", self.quarantined);
        let safety_stock = qty(&mut e, "safety_stock", self.safety_stock);
        let seq = seq(&mut e, "seq", self.seq);
        let update = (|| {
            Some(AbsolutePosition {
                on_hand: on_hand?,
                damaged: damaged?,
                quarantined: quarantined?,
                safety_stock: safety_stock?,
                seq: seq?,
            })
        })();
        e.finish(update)
    }
}

/// One on-hand change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeltaParam {
    pub node_id: String,
    pub sku: String,
    /// Signed change to on hand, at most ±1,000,000,000.
    pub on_hand_delta: i64,
    #[serde(default)]
    pub seq: Option<u64>,
    /// Free text (receipt, cycle count, …), at most 200 characters.
    #[serde(default)]
    pub reason: Option<Prose>,
}

/// `POST /v1/inventory/deltas`: applied all or nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostDeltas {
    pub deltas: Vec<DeltaParam>,
}

impl PostDeltas {
    pub fn parse(self) -> Result<Vec<DeltaInput>, Vec<FieldError>> {
        let mut e = Errors::default();
        let mut out = Vec::with_capacity(self.deltas.len());
        for (i, d) in self.deltas.into_iter().enumerate() {
            let node_id = e.check(format!("deltas[{i}].node_id"), NodeId::parse(&d.node_id));
            let sku = e.check(format!("deltas[{i}].sku"), Sku::parse(&d.sku));
            if d.on_hand_delta.unsigned_abs() > Qty::MAX.get() {
                e.push(format!("deltas[{i}].on_hand_delta"), format!("must be within ±{}", Qty::MAX));
            }
            let seq = seq(&mut e, &format!("deltas[{i}].seq"), d.seq);
            if let Some(r) = &d.reason
                && r.chars().count() > REASON_MAX_CHARS
            {
                e.push(format!("deltas[{i}].reason"), format!("must be at most {REASON_MAX_CHARS} characters"));
            }
            if let (Some(node_id), Some(sku), Some(seq)) = (node_id, sku, seq) {
                out.push(DeltaInput {
                    node_id,
                    sku,
                    on_hand_delta: d.on_hand_delta,
                    seq,
                    reason: d.reason.map(Into::into),
                });
            }
        }
        e.finish(Some(out))
    }
}

/// One SKU of a snapshot.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPositionParam {
    pub sku: String,
    pub on_hand: u64,
    /// Default 0 (a snapshot is the whole truth about counts).
    #[serde(default)]
    pub damaged: u64,
    #[serde(default)]
    pub quarantined: u64,
    /// Omitted: the stored safety stock is kept.
    #[serde(default)]
    pub safety_stock: Option<u64>,
}

/// `POST /v1/inventory/snapshots/{node_id}`: the node's full truth.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostSnapshot {
    pub positions: Vec<SnapshotPositionParam>,
    #[serde(default)]
    pub seq: Option<u64>,
}

impl PostSnapshot {
    pub fn parse(self) -> Result<SnapshotInput, Vec<FieldError>> {
        let mut e = Errors::default();
        let mut entries = Vec::with_capacity(self.positions.len());
        for (i, p) in self.positions.iter().enumerate() {
            let f = |name: &str| format!("positions[{i}].{name}");
            let sku = e.check(f("sku"), Sku::parse(&p.sku));
            let on_hand = qty(&mut e, &f("on_hand"), p.on_hand);
            let damaged = qty(&mut e, &f("damaged"), p.damaged);
            let quarantined = qty(&mut e, &f("quarantined"), p.quarantined);
            let safety_stock = match p.safety_stock {
                Some(s) => qty(&mut e, &f("safety_stock"), s).map(Some),
                None => Some(None),
            };
            if let (Some(sku), Some(on_hand), Some(damaged), Some(quarantined), Some(safety_stock)) =
                (sku, on_hand, damaged, quarantined, safety_stock)
            {
                entries.push(SnapshotEntry { sku, on_hand, damaged, quarantined, safety_stock });
            }
        }
        let seq = seq(&mut e, "seq", self.seq);
        e.finish(seq.map(|seq| SnapshotInput { entries, seq }))
    }
}

/// Most lines an order may have (a named limit).
pub const LINES_MAX: usize = 500;
/// Longest address field accepted.
pub const ADDRESS_TEXT_MAX: usize = 200;
/// Longest line id, external id, customer id or tier accepted.
pub const SHORT_TEXT_MAX: usize = 64;

/// Service level a line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevel {
    Standard,
    Express,
    NextDay,
}

impl ServiceLevel {
    pub fn as_str(self) -> &'static str {
        allot_core::ServiceLevel::from(self).as_str()
    }
}

impl From<ServiceLevel> for allot_core::ServiceLevel {
    fn from(s: ServiceLevel) -> allot_core::ServiceLevel {
        match s {
            ServiceLevel::Standard => allot_core::ServiceLevel::Standard,
            ServiceLevel::Express => allot_core::ServiceLevel::Express,
            ServiceLevel::NextDay => allot_core::ServiceLevel::NextDay,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerParam {
    #[serde(default)]
    pub id: Option<Reference>,
    /// Free text matched by policy rules (`standard`, `premium`, …).
    #[serde(default)]
    pub tier: Option<Reference>,
    #[serde(default)]
    pub email: Option<Reference>,
    #[serde(default)]
    pub name: Option<Prose>,
    #[serde(default)]
    pub phone: Option<Reference>,
}

/// The billing address. Its country is what the policy's `ship_to_not_billing` hold
/// condition compares with the ship-to country.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillToParam {
    #[serde(default)]
    pub name: Option<Prose>,
    #[serde(default)]
    pub address1: Option<Prose>,
    #[serde(default)]
    pub city: Option<Prose>,
    #[serde(default)]
    pub region: Option<Reference>,
    #[serde(default)]
    pub postal_code: Option<Reference>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipToParam {
    #[serde(default)]
    pub name: Option<Prose>,
    #[serde(default)]
    pub address1: Option<Prose>,
    #[serde(default)]
    pub city: Option<Prose>,
    #[serde(default)]
    pub region: Option<Reference>,
    #[serde(default)]
    pub postal_code: Option<Reference>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<Reference>,
    /// Required for ship and same-day lines.
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// The customer's IANA time zone (e.g. `America/Chicago`): the calendar day promised
    /// dates are judged in. Absent: looked up offline from the coordinates (the nearest
    /// embedded US place within 300 km), else UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn default_method() -> FulfillmentMethod {
    FulfillmentMethod::Ship
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineParam {
    pub line_id: Reference,
    pub sku: String,
    pub quantity: u64,
    #[serde(default)]
    pub unit_price_minor: i64,
    /// Default `ship`.
    #[serde(default = "default_method")]
    pub method: FulfillmentMethod,
    /// Required for pickup, curbside and ship_to_store.
    #[serde(default)]
    pub pickup_node_id: Option<String>,
    #[serde(default)]
    pub service_level: Option<ServiceLevel>,
    #[serde(default)]
    pub allow_backorder: bool,
    /// Units the ordered SKU cannot cover may come as the item's substitutes, in the
    /// item's order (placement only; a quote never substitutes).
    #[serde(default)]
    pub allow_substitution: bool,
}

/// An order as channels send it (`POST /v1/orders`), also the body of a sourcing quote.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderParam {
    /// Required with an admin key; a channel key implies its own channel.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub external_id: Option<Reference>,
    #[serde(default)]
    pub customer: Option<CustomerParam>,
    #[serde(default)]
    pub ship_to: Option<ShipToParam>,
    #[serde(default)]
    pub bill_to: Option<BillToParam>,
    /// ISO 4217; default USD.
    #[serde(default)]
    pub currency: Option<String>,
    pub lines: Vec<OrderLineParam>,
    /// An order with holds is allocated but its fulfillment orders are not released
    /// (fraud, fraud_review, payment, address, manual). The policy's hold rules may add more.
    #[serde(default)]
    pub holds: Vec<Reference>,
    /// A checkout reservation to convert into this order's allocation.
    #[serde(default)]
    pub reservation_id: Option<Reference>,
    /// A stored policy's name; default: the active policy.
    #[serde(default)]
    pub policy: Option<Reference>,
    /// An option of `POST /v1/promises`: `ship:<service_level>:<date>` — the order's ship
    /// lines take its service level and keep its delivery date as their promise; or
    /// `pickup:<store>` — its pickup and curbside lines at that store keep the time the
    /// store has them ready.
    #[serde(default)]
    pub promise_option_id: Option<Reference>,
}

/// What an order commits to with `promise_option_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromiseChoice {
    /// `ship:<service level>:<date>`.
    Ship(String, jiff::civil::Date),
    /// `pickup:<store>`.
    Pickup(allot_core::NodeId),
}

/// The promise an option id of `POST /v1/promises` stands for.
pub fn parse_promise_option(id: &str) -> Result<PromiseChoice, FieldError> {
    let bad = |m: &str| FieldError::new("promise_option_id", m);
    let mut parts = id.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ship"), Some(level), Some(date)) => {
            if allot_core::ServiceLevel::parse(level).is_none() {
                return Err(bad("unknown service level"));
            }
            let date = date.parse::<jiff::civil::Date>().map_err(|_| bad("the option's date is not YYYY-MM-DD"))?;
            Ok(PromiseChoice::Ship(level.to_owned(), date))
        }
        (Some("pickup"), Some(store), None) => {
            allot_core::NodeId::parse(store).map(PromiseChoice::Pickup).map_err(|_| bad("not a store id"))
        }
        _ => Err(bad("an option_id from POST /v1/promises, e.g. ship:standard:2026-11-27 or pickup:ST-CHI")),
    }
}

fn short(e: &mut Errors, field: &str, v: &Option<Reference>) {
    if let Some(v) = v
        && v.chars().count() > SHORT_TEXT_MAX
    {
        e.push(field, format!("must be at most {SHORT_TEXT_MAX} characters"));
    }
}

impl OrderParam {
    /// Parses into the engine's order. `channel` is the caller's channel when the key is a
    /// channel key (the body may repeat it but not name another).
    pub fn parse(
        &self,
        key_channel: Option<&allot_core::ChannelId>,
    ) -> Result<allot_core::sourcing::OrderToSource, Vec<FieldError>> {
        use allot_core::sourcing::{LineToSource, OrderToSource};
        let mut e = Errors::default();
        let channel = match (&self.channel, key_channel) {
            (Some(c), Some(k)) if c != k.as_str() => {
                e.push("channel", "a channel key may only send orders of its own channel");
                None
            }
            (_, Some(k)) => Some(k.clone()),
            (Some(c), None) => e.check("channel", allot_core::ChannelId::parse(c)),
            (None, None) => None,
        };
        short(&mut e, "external_id", &self.external_id);
        if let Some(c) = &self.customer {
            short(&mut e, "customer.id", &c.id);
            short(&mut e, "customer.tier", &c.tier);
            if c.email.as_ref().is_some_and(|m| m.len() > 254) {
                e.push("customer.email", "must be at most 254 characters");
            }
        }
        // The currency the order is costed in: only nodes costing in it are compared.
        let currency = match &self.currency {
            Some(c) => e.check("currency", Currency::parse(c)),
            None => Currency::parse("USD").ok(),
        };
        let ship_to = self.ship_to.clone().unwrap_or_default();
        for (field, value) in [
            ("ship_to.name", ship_to.name.as_deref()),
            ("ship_to.address1", ship_to.address1.as_deref()),
            ("ship_to.city", ship_to.city.as_deref()),
            ("ship_to.region", ship_to.region.as_deref()),
            ("ship_to.postal_code", ship_to.postal_code.as_deref()),
            ("ship_to.country", ship_to.country.as_deref()),
        ] {
            if value.is_some_and(|v| v.chars().count() > ADDRESS_TEXT_MAX) {
                e.push(field, format!("must be at most {ADDRESS_TEXT_MAX} characters"));
            }
        }
        if let Some(tz) = &ship_to.time_zone
            && (tz.len() > ADDRESS_TEXT_MAX || jiff::tz::TimeZone::get(tz).is_err())
        {
            e.push("ship_to.time_zone", "not an IANA time zone name (e.g. America/Chicago)");
        }
        let point = match (ship_to.lat, ship_to.lon) {
            (Some(lat), Some(lon)) => e.check("ship_to", GeoPoint::new(lat, lon)),
            (None, None) => None,
            _ => {
                e.push("ship_to.lat", "lat and lon go together");
                None
            }
        };
        if self.lines.is_empty() {
            e.push("lines", "an order needs at least one line");
        }
        if self.lines.len() > LINES_MAX {
            e.push("lines", format!("at most {LINES_MAX} lines"));
        }
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, l) in self.lines.iter().enumerate() {
            let f = |name: &str| format!("lines[{i}].{name}");
            if l.line_id.is_empty() || l.line_id.chars().count() > SHORT_TEXT_MAX {
                e.push(f("line_id"), format!("must be 1–{SHORT_TEXT_MAX} characters"));
            } else if self.lines[..i].iter().any(|o| o.line_id == l.line_id) {
                e.push(f("line_id"), format!("duplicate line id {:?}", l.line_id));
            }
            let sku = e.check(f("sku"), Sku::parse(&l.sku));
            let quantity = positive_qty(&mut e, &f("quantity"), l.quantity);
            let unit_price = money(&mut e, &f("unit_price_minor"), l.unit_price_minor);
            if l.unit_price_minor < 0 {
                e.push(f("unit_price_minor"), "must not be negative");
            }
            let method: allot_core::FulfillmentMethod = l.method.into();
            let pickup_node = match (&l.pickup_node_id, method.needs_node()) {
                (Some(n), true) => e.check(f("pickup_node_id"), NodeId::parse(n)),
                (None, true) => {
                    e.push(f("pickup_node_id"), format!("required for {} lines", method.as_str()));
                    None
                }
                (Some(_), false) => {
                    e.push(
                        f("pickup_node_id"),
                        format!("only for pickup, curbside and ship_to_store lines, not {}", method.as_str()),
                    );
                    None
                }
                (None, false) => None,
            };
            if method.ships_to_customer() && point.is_none() && ship_to.lat.is_none() {
                e.push(
                    "ship_to.lat",
                    format!("coordinates are required for {} lines (line {})", method.as_str(), l.line_id),
                );
            }
            if let (Some(sku), Some(quantity), Some(unit_price_minor)) = (sku, quantity, unit_price) {
                lines.push(LineToSource {
                    line_id: l.line_id.to_string(),
                    sku,
                    quantity,
                    method,
                    pickup_node,
                    service_level: l.service_level.map(|s| s.as_str().to_owned()),
                    allow_backorder: l.allow_backorder,
                    unit_price_minor,
                });
            }
        }
        // One message per missing-coordinates problem is enough.
        let mut errors = e.0;
        let mut seen_coords = false;
        errors.retain(|err| {
            if err.field == "ship_to.lat" && err.message.starts_with("coordinates are required") {
                let keep = !seen_coords;
                seen_coords = true;
                keep
            } else {
                true
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(OrderToSource {
            promise: None,
            channel,
            customer_tier: self.customer.as_ref().and_then(|c| c.tier.clone().map(Into::into)),
            ship_to: point,
            country: ship_to.country.clone().map(Into::into),
            region: ship_to.region.clone().map(Into::into),
            billing_country: self.bill_to.as_ref().and_then(|b| b.country.clone().map(Into::into)),
            currency,
            lines,
        })
    }
}

impl OrderParam {
    /// The order to place, parsed once: the engine's view, the captured document (every
    /// default written out, so the same order compares equal however it was spelled), the
    /// promise it is placed on. `key_channel` is the caller's channel for channel keys.
    pub fn into_place_order(
        self,
        key_channel: Option<&allot_core::ChannelId>,
    ) -> Result<allot_app::PlaceOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        let order = self.parse(key_channel).map_err(|e| errors.extend(e)).ok();
        // Its length is checked by `parse`, once.
        if self.external_id.is_none() {
            errors.push(FieldError::new("external_id", format!("required, 1–{SHORT_TEXT_MAX} characters")));
        }
        if self.reservation_id.as_ref().is_some_and(|r| r.chars().count() > SHORT_TEXT_MAX) {
            errors.push(FieldError::new("reservation_id", format!("1–{SHORT_TEXT_MAX} characters")));
        }
        if self.channel.is_none() && key_channel.is_none() {
            errors.push(FieldError::new("channel", "required with an admin key"));
        }
        for (i, h) in self.holds.iter().enumerate() {
            if let Err(e) = hold_kind(&format!("holds[{i}]"), h) {
                errors.push(e);
            }
        }
        let promise = match self.promise_option_id.as_deref().map(parse_promise_option) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
        };
        let (Some(order), Some(channel), true) = (order, order_channel(&self, key_channel), errors.is_empty()) else {
            return Err(errors);
        };
        let captured = self.captured(channel);
        let (ship, pickup) = match promise {
            Some(PromiseChoice::Ship(service_level, delivery_date)) => {
                (Some(allot_app::ShipPromise { service_level, delivery_date }), None)
            }
            Some(PromiseChoice::Pickup(store)) => (None, Some(store)),
            None => (None, None),
        };
        allot_app::PlaceOrder::new(captured, order, ship, pickup).map_err(|e| match e {
            allot_app::AppError::Invalid(errors) => errors,
            other => vec![FieldError::new("", other.to_string())],
        })
    }

    /// The captured document: every field of the request, defaults written out.
    fn captured(self, channel: String) -> allot_app::CapturedOrder {
        let text = |t: Option<Prose>| t.map(String::from);
        let reference = |r: Option<Reference>| r.map(String::from);
        allot_app::CapturedOrder {
            channel,
            external_id: self.external_id.map(String::from).unwrap_or_default(),
            customer: self.customer.map(|c| allot_app::CapturedCustomer {
                id: reference(c.id),
                tier: reference(c.tier),
                email: reference(c.email),
                name: text(c.name),
                phone: reference(c.phone),
            }),
            bill_to: self.bill_to.map(|b| allot_app::CapturedBillTo {
                name: text(b.name),
                address1: text(b.address1),
                city: text(b.city),
                region: reference(b.region),
                postal_code: reference(b.postal_code),
                country: reference(b.country),
            }),
            ship_to: self.ship_to.map(|s| allot_app::CapturedShipTo {
                name: text(s.name),
                address1: text(s.address1),
                city: text(s.city),
                region: reference(s.region),
                postal_code: reference(s.postal_code),
                country: reference(s.country),
                lat: s.lat,
                lon: s.lon,
                time_zone: s.time_zone,
            }),
            currency: self.currency,
            lines: self
                .lines
                .into_iter()
                .map(|l| allot_app::CapturedLine {
                    line_id: l.line_id.into(),
                    sku: l.sku,
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                    method: allot_core::FulfillmentMethod::from(l.method).as_str().to_owned(),
                    pickup_node_id: l.pickup_node_id,
                    service_level: l.service_level.map(|s| s.as_str().to_owned()),
                    allow_backorder: l.allow_backorder,
                    allow_substitution: l.allow_substitution,
                })
                .collect(),
            holds: self.holds.iter().map(|h| h.to_string()).collect(),
            reservation_id: reference(self.reservation_id),
            policy: reference(self.policy),
            promise_option_id: reference(self.promise_option_id),
        }
    }
}

/// The channel an order is placed for: the key's, or (admin keys) the one it names.
fn order_channel(p: &OrderParam, key_channel: Option<&allot_core::ChannelId>) -> Option<String> {
    match key_channel {
        Some(k) => Some(k.to_string()),
        None => p.channel.clone(),
    }
}

/// Body of the cancel endpoints (optional: an empty body cancels everything open with
/// reason `customer_request`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelParam {
    /// Units of the line to cancel (line cancel only); default: all open units.
    #[serde(default)]
    pub quantity: Option<u64>,
    /// Reason code, e.g. `customer_request`, `fraud`, `out_of_stock` (1–100 characters).
    #[serde(default)]
    pub reason: Option<Prose>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldParam {
    /// fraud, fraud_review, payment, address, manual.
    pub hold: Reference,
    /// Why (shown with the hold; 1–200 characters).
    #[serde(default)]
    pub reason: Option<Prose>,
}

/// A hold kind by name; an unknown one is a field error naming `field` (422).
pub fn hold_kind(field: &str, text: &str) -> Result<allot_core::HoldKind, FieldError> {
    allot_core::HoldKind::parse(text).ok_or_else(|| {
        FieldError::new(field, format!("{text:?} is not a hold; one of {}", allot_core::HoldKind::expected()))
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationLineParam {
    pub sku: String,
    pub quantity: u64,
    /// Reserve at this node; without it the sourcing engine chooses (see `ship_to`).
    #[serde(default)]
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointParam {
    pub lat: f64,
    pub lon: f64,
}

/// A checkout reservation (`POST /v1/reservations`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationParam {
    pub lines: Vec<ReservationLineParam>,
    /// Where the cart ships to: lines without a node are routed by the active policy.
    /// Without it they are reserved at the nodes with the most ATP.
    #[serde(default)]
    pub ship_to: Option<PointParam>,
    /// Seconds until it expires, 1–3600.
    pub ttl_s: u64,
}

impl ReservationParam {
    pub fn parse(&self, owner: Option<allot_core::ChannelId>) -> Result<allot_app::ReserveInput, Vec<FieldError>> {
        let mut e = Errors::default();
        let ship_to = self.ship_to.and_then(|p| e.check("ship_to", GeoPoint::new(p.lat, p.lon)));
        let max = allot_app::RESERVATION_TTL_MAX_S;
        let ttl_s = match u32::try_from(self.ttl_s) {
            Ok(t) if (1..=max).contains(&t) => Some(t),
            _ => {
                e.push("ttl_s", format!("must be 1–{max} seconds"));
                None
            }
        };
        if self.lines.is_empty() || self.lines.len() > allot_app::RESERVATION_LINES_MAX {
            e.push("lines", format!("1–{} lines", allot_app::RESERVATION_LINES_MAX));
        }
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, l) in self.lines.iter().enumerate() {
            let f = |name: &str| format!("lines[{i}].{name}");
            let sku = e.check(f("sku"), Sku::parse(&l.sku));
            let quantity = positive_qty(&mut e, &f("quantity"), l.quantity);
            let node = match &l.node_id {
                Some(n) => e.check(f("node_id"), NodeId::parse(n)).map(Some),
                None => Some(None),
            };
            if let (Some(sku), Some(quantity), Some(node)) = (sku, quantity, node) {
                lines.push(allot_app::ReserveLine { sku, quantity, node });
            }
        }
        let input = ttl_s.map(|ttl_s| allot_app::ReserveInput { owner, lines, ship_to, ttl_s });
        e.finish(input)
    }
}

/// Body of `POST /v1/fulfillment-orders/{id}/reject`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectParam {
    /// Why the node refuses the work, e.g. `no_stock`, `damaged`, `store_closed` (1–100 characters).
    pub reason: Prose,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickLineParam {
    pub line_id: Reference,
    /// Required when some of the line's units here come as a substitute SKU.
    #[serde(default)]
    pub sku: Option<Reference>,
    /// Units found; fewer than the line's units here is a short pick.
    pub picked_quantity: u64,
}

/// Body of `POST /v1/fulfillment-orders/{id}/pick` (optional: no body = everything picked).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickParam {
    /// Lines not listed were picked in full.
    #[serde(default)]
    pub lines: Vec<PickLineParam>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageLineParam {
    pub line_id: Reference,
    pub quantity: u64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageParam {
    pub carrier: Reference,
    pub tracking_number: Reference,
    /// Required with several packages; one package without lines carries everything.
    #[serde(default)]
    pub lines: Option<Vec<PackageLineParam>>,
}

/// Body of `POST /v1/fulfillment-orders/{id}/ship`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipParam {
    pub packages: Vec<PackageParam>,
}

/// Body of `POST /v1/fulfillment-orders/{id}/deliver` (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverParam {
    /// RFC 3339; default now.
    #[serde(default)]
    pub delivered_at: Option<String>,
}

/// A carrier scan: `POST /v1/shipments/{tracking_number}/events`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanParam {
    /// in_transit, out_for_delivery, delivered, exception, delayed
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339; default now.
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub detail: Option<Prose>,
}

/// Body of `POST /v1/orders/{id}/contacts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactParam {
    /// phone, chat, email
    pub channel: String,
    /// Why the customer got in touch, e.g. `where_is_my_order` (1–100 characters).
    pub reason: Prose,
}

/// Body of `PUT /v1/webhooks/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookParam {
    /// https (or, with `--allow-insecure-webhooks`, http://127.0.0.1…).
    pub url: Reference,
    /// Event types to deliver (`order.created`, `fulfillment_order.shipped`, …) or `["*"]`.
    pub event_types: Vec<String>,
    /// `whsec_<base64 of a 24–64 byte key>`; signs every delivery (Standard Webhooks).
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromiseLineParam {
    pub sku: String,
    pub quantity: u64,
}

/// Body of `POST /v1/promises`: a cart and where it goes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromiseParam {
    pub lines: Vec<PromiseLineParam>,
    /// lat and lon required (shipping distance; pickup stores near it).
    pub ship_to: ShipToParam,
    #[serde(default)]
    pub customer: Option<CustomerParam>,
    /// `ship`, `pickup`; default (omitted or null) both.
    #[serde(default)]
    pub methods: Option<Vec<Reference>>,
    #[serde(default)]
    pub policy: Option<Reference>,
}

impl PromiseParam {
    pub fn parse(&self) -> Result<allot_app::PromiseQuery, Vec<FieldError>> {
        use allot_core::sourcing::{LineToSource, OrderToSource};
        let mut e = Errors::default();
        if self.lines.is_empty() || self.lines.len() > LINES_MAX {
            e.push("lines", format!("1–{LINES_MAX} lines"));
        }
        let point = match (self.ship_to.lat, self.ship_to.lon) {
            (Some(lat), Some(lon)) => e.check("ship_to", GeoPoint::new(lat, lon)),
            _ => {
                e.push("ship_to.lat", "lat and lon are required");
                None
            }
        };
        let methods: Vec<String> = self.methods.iter().flatten().map(|m| m.to_string()).collect();
        for (i, m) in methods.iter().enumerate() {
            if !["ship", "pickup"].contains(&m.as_str()) {
                e.push(format!("methods[{i}]"), "ship or pickup");
            }
        }
        let mut lines = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            let sku = e.check(format!("lines[{i}].sku"), Sku::parse(&l.sku));
            let quantity = positive_qty(&mut e, &format!("lines[{i}].quantity"), l.quantity);
            if let (Some(sku), Some(quantity)) = (sku, quantity) {
                lines.push(LineToSource {
                    line_id: (i + 1).to_string(),
                    sku,
                    quantity,
                    method: allot_core::FulfillmentMethod::Ship,
                    pickup_node: None,
                    service_level: None,
                    allow_backorder: false,
                    unit_price_minor: 0,
                });
            }
        }
        if !e.0.is_empty() {
            return Err(e.0);
        }
        Ok(allot_app::PromiseQuery {
            order: OrderToSource {
                promise: None,
                channel: None,
                customer_tier: self.customer.as_ref().and_then(|c| c.tier.clone().map(Into::into)),
                ship_to: point,
                country: self.ship_to.country.clone().map(Into::into),
                region: self.ship_to.region.clone().map(Into::into),
                billing_country: None,
                currency: None,
                lines,
            },
            policy: self.policy.clone().map(Into::into),
            methods,
        })
    }
}
