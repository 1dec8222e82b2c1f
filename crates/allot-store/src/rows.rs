//! Rows as the database holds them, and their conversion to and from core types.
//! Lists (capabilities, methods, substitutes) are stored as comma-separated text: their
//! elements are identifiers or enum spellings, which never contain a comma.

use allot_core::catalog::FulfillmentMethod;
use allot_core::{
    Capability, Currency, GeoPoint, Item, Node, NodeCapacity, NodeCosts, NodeId, NodeStatus, NodeType, Sku,
    TimeZoneName,
};

use crate::StoreError;

/// A node with the version of its row (incremented on every write).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNode {
    pub node: Node,
    pub version: i64,
}

/// An item with the version of its row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: Item,
    pub version: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow {
    node_id: String,
    node_type: String,
    name: String,
    lat: f64,
    lon: f64,
    time_zone: String,
    capabilities: String,
    status: String,
    orders_per_day: Option<i64>,
    units_per_day: Option<i64>,
    per_order_minor: i64,
    per_unit_minor: i64,
    currency: String,
    version: i64,
}

pub(crate) const NODE_COLUMNS: &str = "node_id, node_type, name, lat, lon, time_zone, capabilities, status, \
     orders_per_day, units_per_day, per_order_minor, per_unit_minor, currency, version";

fn bad(table: &'static str, what: &str, value: impl std::fmt::Debug) -> StoreError {
    StoreError::corrupt(table, format!("{what} {value:?}"))
}

pub(crate) fn join<T>(values: &[T], text: impl Fn(&T) -> &str) -> String {
    values.iter().map(text).collect::<Vec<_>>().join(",")
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').filter(|s| !s.is_empty())
}

fn u32_col(table: &'static str, what: &str, v: Option<i64>) -> Result<Option<u32>, StoreError> {
    v.map(|v| u32::try_from(v).map_err(|_| bad(table, what, v))).transpose()
}

impl TryFrom<NodeRow> for StoredNode {
    type Error = StoreError;

    fn try_from(r: NodeRow) -> Result<StoredNode, StoreError> {
        const T: &str = "nodes";
        let capabilities = split(&r.capabilities)
            .map(|c| Capability::parse(c).ok_or_else(|| bad(T, "capability", c)))
            .collect::<Result<Vec<_>, _>>()?;
        let node = Node {
            id: NodeId::parse(&r.node_id).map_err(|e| bad(T, "node_id", e))?,
            node_type: NodeType::parse(&r.node_type).ok_or_else(|| bad(T, "node_type", &r.node_type))?,
            name: r.name,
            location: GeoPoint::new(r.lat, r.lon).map_err(|e| bad(T, "location", e))?,
            time_zone: TimeZoneName::parse(&r.time_zone).map_err(|e| bad(T, "time_zone", e))?,
            capabilities,
            status: NodeStatus::parse(&r.status).ok_or_else(|| bad(T, "status", &r.status))?,
            capacity: NodeCapacity {
                orders_per_day: u32_col(T, "orders_per_day", r.orders_per_day)?,
                units_per_day: u32_col(T, "units_per_day", r.units_per_day)?,
            },
            costs: NodeCosts {
                per_order_minor: r.per_order_minor,
                per_unit_minor: r.per_unit_minor,
                currency: Currency::parse(&r.currency).map_err(|e| bad(T, "currency", e))?,
            },
        };
        Ok(StoredNode { node, version: r.version })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    sku: String,
    name: String,
    weight_g: i64,
    length_mm: Option<i64>,
    width_mm: Option<i64>,
    height_mm: Option<i64>,
    hazmat: bool,
    ship_alone: bool,
    methods: String,
    substitutes: String,
    version: i64,
}

pub(crate) const ITEM_COLUMNS: &str =
    "sku, name, weight_g, length_mm, width_mm, height_mm, hazmat, ship_alone, methods, substitutes, version";

impl TryFrom<ItemRow> for StoredItem {
    type Error = StoreError;

    fn try_from(r: ItemRow) -> Result<StoredItem, StoreError> {
        const T: &str = "items";
        let dims_mm = match (
            u32_col(T, "length_mm", r.length_mm)?,
            u32_col(T, "width_mm", r.width_mm)?,
            u32_col(T, "height_mm", r.height_mm)?,
        ) {
            (Some(l), Some(w), Some(h)) => Some([l, w, h]),
            (None, None, None) => None,
            other => return Err(bad(T, "dims", other)),
        };
        let item = Item {
            sku: Sku::parse(&r.sku).map_err(|e| bad(T, "sku", e))?,
            name: r.name,
            weight_g: u32_col(T, "weight_g", Some(r.weight_g))?.unwrap_or_default(),
            dims_mm,
            hazmat: r.hazmat,
            ship_alone: r.ship_alone,
            methods: split(&r.methods)
                .map(|m| FulfillmentMethod::parse(m).ok_or_else(|| bad(T, "method", m)))
                .collect::<Result<_, _>>()?,
            substitutes: split(&r.substitutes)
                .map(|s| Sku::parse(s).map_err(|e| bad(T, "substitute", e)))
                .collect::<Result<_, _>>()?,
        };
        Ok(StoredItem { item, version: r.version })
    }
}
