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
    pub name: String,
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
    pub name: String,
    /// Shipping weight in grams. Default 0.
    #[serde(default)]
    pub weight_g: u32,
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
            weight_g: self.weight_g,
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
    pub reason: Option<String>,
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
                out.push(DeltaInput { node_id, sku, on_hand_delta: d.on_hand_delta, seq, reason: d.reason });
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
