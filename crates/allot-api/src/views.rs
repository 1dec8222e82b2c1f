//! Response bodies as the API returns them. Built from core/app values; never the rows.

use allot_app::{Availability, ListPage};
use allot_app::{StoredItem, StoredNode};
use allot_core::inventory::Position;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::{Capability, FulfillmentMethod, NodeStatus, NodeType};

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationView {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityView {
    pub orders_per_day: Option<u32>,
    pub units_per_day: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostsView {
    pub per_order_minor: i64,
    pub per_unit_minor: i64,
}

/// A node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub node_id: String,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    pub name: String,
    pub location: LocationView,
    pub time_zone: String,
    pub capabilities: Vec<Capability>,
    pub status: NodeStatus,
    pub capacity: CapacityView,
    pub costs: CostsView,
    pub currency: String,
    /// Incremented on every change.
    pub version: i64,
}

impl From<StoredNode> for NodeView {
    fn from(s: StoredNode) -> NodeView {
        let n = s.node;
        NodeView {
            node_id: n.id.to_string(),
            node_type: n.node_type.into(),
            name: n.name,
            location: LocationView { lat: n.location.lat(), lon: n.location.lon() },
            time_zone: n.time_zone.as_str().to_owned(),
            capabilities: n.capabilities.into_iter().map(Into::into).collect(),
            status: n.status.into(),
            capacity: CapacityView {
                orders_per_day: n.capacity.orders_per_day,
                units_per_day: n.capacity.units_per_day,
            },
            costs: CostsView { per_order_minor: n.costs.per_order_minor, per_unit_minor: n.costs.per_unit_minor },
            currency: n.costs.currency.code().to_owned(),
            version: s.version,
        }
    }
}

/// A page of nodes, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<ListPage<StoredNode>> for NodeList {
    fn from(p: ListPage<StoredNode>) -> NodeList {
        NodeList { nodes: p.entries.into_iter().map(Into::into).collect(), next_cursor: p.next_cursor }
    }
}

/// An item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub sku: String,
    pub name: String,
    pub weight_g: u32,
    pub dims_mm: Option<[u32; 3]>,
    pub hazmat: bool,
    pub ship_alone: bool,
    pub methods: Vec<FulfillmentMethod>,
    pub substitutes: Vec<String>,
    pub version: i64,
}

impl From<StoredItem> for ItemView {
    fn from(s: StoredItem) -> ItemView {
        let i = s.item;
        ItemView {
            sku: i.sku.to_string(),
            name: i.name,
            weight_g: i.weight_g,
            dims_mm: i.dims_mm,
            hazmat: i.hazmat,
            ship_alone: i.ship_alone,
            methods: i.methods.into_iter().map(Into::into).collect(),
            substitutes: i.substitutes.into_iter().map(|s| s.to_string()).collect(),
            version: s.version,
        }
    }
}

/// A page of items, ordered by SKU.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    pub items: Vec<ItemView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<ListPage<StoredItem>> for ItemList {
    fn from(p: ListPage<StoredItem>) -> ItemList {
        ItemList { items: p.entries.into_iter().map(Into::into).collect(), next_cursor: p.next_cursor }
    }
}

/// One inventory position.
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionView {
    pub node_id: String,
    pub sku: String,
    pub on_hand: u64,
    pub damaged: u64,
    pub quarantined: u64,
    pub safety_stock: u64,
    /// Held by checkout reservations.
    pub reserved: u64,
    /// Held by sourced orders.
    pub allocated: u64,
    /// on_hand − damaged − quarantined − reserved − allocated − safety_stock, floored at 0.
    /// Network availability counts it only while the node is active.
    pub atp: u64,
    /// Last feed sequence number applied.
    pub seq: Option<u64>,
}

impl From<Position> for PositionView {
    fn from(p: Position) -> PositionView {
        let c = p.counts;
        PositionView {
            node_id: p.node_id.to_string(),
            sku: p.sku.to_string(),
            on_hand: c.on_hand.get(),
            damaged: c.damaged.get(),
            quarantined: c.quarantined.get(),
            safety_stock: c.safety_stock.get(),
            reserved: c.reserved.get(),
            allocated: c.allocated.get(),
            atp: c.atp().get(),
            seq: p.seq,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeltasApplied {
    /// Deltas in the request (all applied).
    pub applied: usize,
    /// Distinct positions changed.
    pub positions_changed: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotApplied {
    pub node_id: String,
    /// Positions written: the snapshot's SKUs plus those zeroed because they were absent.
    pub positions_written: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeAvailabilityView {
    pub node_id: String,
    pub atp: u64,
    /// Great-circle distance from the given point; null without one.
    pub distance_km: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkuAvailabilityView {
    pub sku: String,
    /// Sum of the listed nodes' ATP.
    pub atp: u64,
    /// Active nodes with ATP > 0 (and the capability for `method`), nearest first when a
    /// point is given, else by node id.
    pub nodes: Vec<NodeAvailabilityView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityView {
    pub items: Vec<SkuAvailabilityView>,
}

impl From<Availability> for AvailabilityView {
    fn from(a: Availability) -> AvailabilityView {
        AvailabilityView {
            items: a
                .items
                .into_iter()
                .map(|i| SkuAvailabilityView {
                    sku: i.sku.to_string(),
                    atp: i.atp,
                    nodes: i
                        .nodes
                        .into_iter()
                        .map(|n| NodeAvailabilityView {
                            node_id: n.node_id.to_string(),
                            atp: n.atp.get(),
                            distance_km: n.distance_km.map(|d| (d * 1000.0).round() / 1000.0),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    pub status: &'static str,
}
