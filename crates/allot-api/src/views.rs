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

/// A stored policy version.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    pub version: i64,
    /// Hex SHA-256 of the canonical document; stamped on every decision.
    pub hash: String,
    /// Whether this version is the one orders and quotes use.
    pub active: bool,
    /// The version of this policy that is active, when one is (it may be an older version
    /// than this one; null when another policy, or the built-in default, is active).
    pub active_version: Option<i64>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The canonical document: every default written out.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

impl From<allot_app::PolicyInfo> for PolicyView {
    fn from(p: allot_app::PolicyInfo) -> PolicyView {
        let s = p.stored;
        PolicyView {
            created_at: jiff::Timestamp::from_millisecond(s.created_at_ms).map(|t| t.to_string()).unwrap_or_default(),
            document: serde_json::from_str(&s.document).unwrap_or(serde_json::Value::Null),
            name: s.name,
            version: s.version,
            hash: s.hash,
            active_version: p.active.then_some(s.version),
            active: p.active,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    /// The policy orders and quotes use now (`builtin`, version 0, until one is activated).
    pub active: PolicyStampView,
    /// The latest version of each policy.
    pub policies: Vec<PolicyView>,
}

impl From<allot_app::PolicyStamp> for PolicyStampView {
    fn from(p: allot_app::PolicyStamp) -> PolicyStampView {
        PolicyStampView { name: p.name, version: p.version, hash: p.hash }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyStampView {
    pub name: String,
    /// 0 for the built-in default used until a policy is activated.
    pub version: i64,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineQtyView {
    pub line_id: String,
    pub sku: String,
    pub quantity: u64,
}

impl From<&allot_core::sourcing::LineQty> for LineQtyView {
    fn from(l: &allot_core::sourcing::LineQty) -> LineQtyView {
        LineQtyView { line_id: l.line_id.clone(), sku: l.sku.to_string(), quantity: l.quantity.get() }
    }
}

/// Cost terms in minor units of the order's currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostView {
    pub shipping: i64,
    pub handling: i64,
    pub split_penalty: i64,
    pub capacity: i64,
    pub emissions: i64,
    pub aging_bonus: i64,
    /// Days after a promised date × `late_penalty_minor_per_day` (promised orders).
    pub late: i64,
    pub total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageView {
    pub node_id: String,
    /// `ship`, `ship_alone` (one unit in its own package) or `pickup`.
    pub kind: &'static str,
    pub lines: Vec<LineQtyView>,
    pub weight_g: u64,
    pub cost_minor: CostView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub packages: Vec<PackageView>,
    pub backordered: Vec<LineQtyView>,
    pub unfilled: Vec<LineQtyView>,
    pub backorder_penalty_minor: i64,
    pub unfilled_penalty_minor: i64,
    pub total_cost_minor: i64,
    /// Proven optimal for the policy's cost model.
    pub plan_is_optimal: bool,
    /// When not proven optimal: how much cheaper the optimum could at most be.
    pub gap_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateViewJson {
    pub node_id: String,
    pub kept: bool,
    /// Why the node was dropped: excluded, node_type_not_allowed, inactive, capacity_full,
    /// beyond_radius, beyond_shipping_zones, no_capability, method_not_allowed_for_item,
    /// hazmat, protected_stock, no_stock, misses_promise.
    pub reason: Option<&'static str>,
    pub distance_km: Option<f64>,
    pub usable_units: u64,
    pub chosen: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlternativeView {
    pub nodes: Vec<String>,
    pub total_cost_minor: i64,
    pub allocated_units: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationView {
    /// The rule used; null means the fallback.
    pub rule: Option<String>,
    pub rule_reason: String,
    pub candidates: Vec<CandidateViewJson>,
    /// The next best plans with other node sets, cheapest first.
    pub alternatives: Vec<AlternativeView>,
    pub sets_evaluated: u32,
    pub budget_exhausted: bool,
}

/// A sourcing decision: the plan, why, and which policy made it. Nothing is reserved.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    pub plan: PlanView,
    pub explanation: ExplanationView,
    pub policy: PolicyStampView,
}

impl From<allot_app::Quote> for QuoteView {
    fn from(q: allot_app::Quote) -> QuoteView {
        QuoteView::from(&q)
    }
}

impl From<&allot_app::Quote> for QuoteView {
    fn from(q: &allot_app::Quote) -> QuoteView {
        let p = &q.decision.plan;
        let x = &q.decision.explanation;
        QuoteView {
            plan: PlanView {
                packages: p
                    .packages
                    .iter()
                    .map(|pk| PackageView {
                        node_id: pk.node_id.to_string(),
                        kind: allot_app::package_kind(pk.kind),
                        lines: pk.lines.iter().map(Into::into).collect(),
                        weight_g: pk.weight_g,
                        cost_minor: CostView {
                            shipping: pk.cost.shipping,
                            handling: pk.cost.handling,
                            split_penalty: pk.cost.split_penalty,
                            capacity: pk.cost.capacity,
                            emissions: pk.cost.emissions,
                            aging_bonus: pk.cost.aging_bonus,
                            late: pk.cost.late,
                            total: pk.cost.total,
                        },
                    })
                    .collect(),
                backordered: p.backordered.iter().map(Into::into).collect(),
                unfilled: p.unfilled.iter().map(Into::into).collect(),
                backorder_penalty_minor: p.backorder_penalty_minor,
                unfilled_penalty_minor: p.unfilled_penalty_minor,
                total_cost_minor: p.total_cost_minor,
                plan_is_optimal: p.plan_is_optimal,
                gap_minor: p.gap_minor,
            },
            explanation: ExplanationView {
                rule: x.rule.clone(),
                rule_reason: x.rule_reason.clone(),
                candidates: x
                    .candidates
                    .iter()
                    .map(|c| CandidateViewJson {
                        node_id: c.node_id.to_string(),
                        kept: c.kept,
                        reason: c.reason.map(|r| r.as_str()),
                        distance_km: c.distance_km,
                        usable_units: c.usable_units,
                        chosen: c.chosen,
                    })
                    .collect(),
                alternatives: x
                    .alternatives
                    .iter()
                    .map(|a| AlternativeView {
                        nodes: a.nodes.iter().map(|n| n.to_string()).collect(),
                        total_cost_minor: a.total_cost_minor,
                        allocated_units: a.allocated_units,
                    })
                    .collect(),
                sets_evaluated: x.sets_evaluated,
                budget_exhausted: x.budget_exhausted,
            },
            policy: PolicyStampView {
                name: q.policy.name.clone(),
                version: q.policy.version,
                hash: q.policy.hash.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationView {
    pub node_id: String,
    pub quantity: i64,
    pub fulfillment_order_id: String,
    /// The SKU these units come as, when it is a substitute for the ordered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substitute_sku: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineView {
    pub line_id: String,
    pub sku: String,
    pub quantity: i64,
    /// ship, pickup, curbside, same_day, ship_to_store (`GET /v1/orders/{id}` and the
    /// order's own answers; listings leave the terms out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    /// `unit_price_minor` × the units not cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_total_minor: Option<i64>,
    /// The service level the line travels by (as upgraded, else as ordered or promised,
    /// else standard); absent for lines collected at a store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
    /// allocated, partially_allocated, backordered, unfilled, cancelled
    pub status: String,
    pub allocated_quantity: i64,
    pub backordered_quantity: i64,
    pub unfilled_quantity: i64,
    pub cancelled_quantity: i64,
    /// Units shipped or picked up (within the allocated ones).
    pub shipped_quantity: i64,
    /// Units delivered or picked up.
    pub delivered_quantity: i64,
    /// When the line's units last left a node (shipped or picked up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<String>,
    /// When the line was delivered in full (its last units delivered or picked up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// The delivery date promised (placed on a promise option).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_date: Option<String>,
    /// When a pickup line was promised ready at its store (placed on a pickup option).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_ready_at: Option<String>,
    /// on_track, at_risk, late (promised lines; kept by the jeopardy sweep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jeopardy: Option<String>,
    /// The service level the jeopardy sweep moved the line up to (policy action
    /// `upgrade_service`); absent: as ordered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgraded_service_level: Option<String>,
    /// Backordered units promised against inbound supply: which, where, how many, when
    /// expected (a preorder's date). Empty when nothing is expected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<ExpectedView>,
    /// Where the line's units are now: fulfillment orders still working on them or that
    /// handed them over (not rejected or cancelled ones).
    pub allocations: Vec<AllocationView>,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub channel: String,
    pub external_id: String,
    /// allocated, partially_allocated, backordered, unfilled, on_hold, partially_shipped,
    /// shipped, delivered, cancelled
    pub status: String,
    /// The customer as the channel sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<AddressView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_to: Option<AddressView>,
    /// ISO 4217 (USD when the channel did not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// What the customer pays for the units not cancelled, in minor units of `currency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_minor: Option<i64>,
    /// The kinds of hold the order has now (see `hold_details` for who and why).
    pub holds: Vec<String>,
    /// Each active hold with who placed it (`operator`, `channel:<id>`,
    /// `policy:<policy>/<rule>`), when and why (`GET /v1/orders/{id}` and the hold
    /// endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_details: Option<Vec<HoldView>>,
    pub created_at: String,
    pub lines: Vec<OrderLineView>,
    /// Every fulfillment order of every attempt, rejected and cancelled ones included.
    pub fulfillment_orders: Vec<FulfillmentOrderDetailView>,
    pub shipments: Vec<ShipmentView>,
    pub policy: PolicyStampView,
    /// The sourcing decision made at capture: plan and explanation (as in a quote).
    #[schema(value_type = Object)]
    pub sourcing: allot_app::DecisionJson,
    /// Re-sourcings after a node rejected, came up short or timed out (attempt 2 on).
    pub sourcing_attempts: Vec<SourcingAttemptView>,
    /// Every event of the order, oldest first, with its actor (`GET /v1/orders/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<crate::routes::events::EventView>>,
    /// Customer-service contacts about the order (`GET /v1/orders/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<ContactView>>,
}

/// An active hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    /// fraud, fraud_review, payment, address, manual
    pub hold: String,
    pub reason: Option<String>,
    pub placed_by: String,
    /// Absent for holds placed before their details were recorded.
    pub placed_at: Option<String>,
}

impl From<allot_app::ActiveHold> for HoldView {
    fn from(h: allot_app::ActiveHold) -> HoldView {
        HoldView {
            hold: h.note.hold.as_str().to_owned(),
            reason: h.note.reason,
            placed_by: h.note.placed_by,
            placed_at: (h.placed_at_ms > 0).then(|| allot_app::ms_to_rfc3339(h.placed_at_ms)),
        }
    }
}

/// A customer-service contact about an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub contact_id: String,
    /// phone, chat, email
    pub channel: String,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

impl From<allot_app::ContactRow> for ContactView {
    fn from(c: allot_app::ContactRow) -> ContactView {
        ContactView {
            at: ms_to_rfc3339(c.at_ms),
            contact_id: c.contact_id,
            channel: c.channel,
            reason: c.reason,
            actor: c.actor,
        }
    }
}

/// Line and fulfillment-order views from an order's rows.
fn order_parts(
    lines: &[allot_app::OrderLineRow],
    fos: &[allot_app::FulfillmentOrderRow],
    allocations: &[allot_app::AllocationRow],
    shipments: &[allot_app::ShipmentRow],
    expectations: &[allot_app::LineExpectation],
) -> (Vec<OrderLineView>, Vec<FulfillmentOrderDetailView>) {
    let rows = allot_app::OrderRows { fulfillment_orders: fos, allocations, shipments };
    let lines = lines
        .iter()
        .map(|l| (l, allot_app::LineFacts::of(l, rows)))
        .map(|(l, facts)| OrderLineView {
            line_id: l.line_id.clone(),
            sku: l.sku.clone(),
            quantity: l.quantity,
            method: None,
            unit_price_minor: None,
            line_total_minor: None,
            service_level: None,
            status: l.status.clone(),
            allocated_quantity: l.allocated,
            backordered_quantity: l.backordered,
            unfilled_quantity: l.unfilled,
            cancelled_quantity: l.cancelled,
            shipped_quantity: l.shipped,
            delivered_quantity: l.delivered,
            promised_date: l.promised_date.clone(),
            promised_ready_at: l.promised_ready_at_ms.map(ms_to_rfc3339),
            jeopardy: l.jeopardy.clone(),
            upgraded_service_level: l.upgraded_service_level.clone(),
            expected: expectations
                .iter()
                .filter(|x| x.line_id == l.line_id)
                .map(|x| ExpectedView {
                    supply_id: x.supply_id.clone(),
                    node_id: x.node_id.clone(),
                    quantity: x.quantity,
                    eta: ms_to_rfc3339(x.eta_ms),
                })
                .collect(),
            shipped_at: facts.shipped_at_ms.map(ms_to_rfc3339),
            delivered_at: facts.delivered_at_ms.map(ms_to_rfc3339),
            allocations: facts
                .allocations
                .iter()
                .map(|a| AllocationView {
                    node_id: a.node_id.clone(),
                    quantity: a.quantity,
                    fulfillment_order_id: a.fulfillment_order_id.clone(),
                    substitute_sku: (a.sku != l.sku).then(|| a.sku.clone()),
                })
                .collect(),
        })
        .collect();
    let fulfillment_orders = fos.iter().map(|f| FulfillmentOrderDetailView::new(f, allocations, shipments)).collect();
    (lines, fulfillment_orders)
}

use allot_app::ms_to_rfc3339;

/// The customer as an order shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tier: Option<String>,
}

/// A postal address as an order shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressView {
    pub name: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
}

impl From<allot_app::CapturedShipTo> for AddressView {
    fn from(a: allot_app::CapturedShipTo) -> AddressView {
        AddressView {
            name: a.name,
            address1: a.address1,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
            lat: a.lat,
            lon: a.lon,
        }
    }
}

impl From<allot_app::CapturedBillTo> for AddressView {
    fn from(a: allot_app::CapturedBillTo) -> AddressView {
        AddressView {
            name: a.name,
            address1: a.address1,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
            lat: None,
            lon: None,
        }
    }
}

impl From<allot_app::StoredOrder> for OrderView {
    fn from(o: allot_app::StoredOrder) -> OrderView {
        let (mut lines, fulfillment_orders) =
            order_parts(&o.lines, &o.fulfillment_orders, &o.allocations, &o.shipments, &o.expectations);
        let terms = allot_app::OrderTerms::of(&o);
        for (view, t) in lines.iter_mut().filter_map(|v| {
            let t = terms.as_ref()?.lines.iter().find(|t| t.line_id == v.line_id)?;
            Some((v, t))
        }) {
            view.method = Some(t.method.clone());
            view.unit_price_minor = Some(t.unit_price_minor);
            view.line_total_minor = Some(t.line_total_minor);
            view.service_level.clone_from(&t.service_level);
        }
        let (customer, ship_to, bill_to, currency, total_minor) = match terms {
            Some(t) => (
                t.customer.map(|c| CustomerView {
                    id: c.id,
                    name: c.name,
                    email: c.email,
                    phone: c.phone,
                    tier: c.tier,
                }),
                t.ship_to.map(Into::into),
                t.bill_to.map(Into::into),
                Some(t.currency),
                Some(t.total_minor),
            ),
            None => (None, None, None, None, None),
        };
        OrderView {
            customer,
            ship_to,
            bill_to,
            currency,
            total_minor,
            hold_details: None,
            timeline: None,
            contacts: None,
            shipments: o.shipments.into_iter().map(Into::into).collect(),
            sourcing_attempts: o
                .attempts
                .into_iter()
                .map(|a| SourcingAttemptView {
                    attempt: a.attempt,
                    reason: a.reason,
                    failed_node_id: a.failed_node_id,
                    failed_fulfillment_order_id: a.fulfillment_order_id,
                    at: ms_to_rfc3339(a.at_ms),
                    decision: allot_app::attempt_json(&a.decision),
                })
                .collect(),
            created_at: ms_to_rfc3339(o.created_at_ms),
            sourcing: allot_app::DecisionJson::new(o.decision),
            policy: PolicyStampView { name: o.policy_name, version: o.policy_version, hash: o.policy_hash },
            order_id: o.order_id,
            channel: o.channel,
            external_id: o.external_id,
            status: o.status,
            holds: o.holds,
            lines,
            fulfillment_orders,
        }
    }
}

/// An order in a listing: as `GET /v1/orders/{id}` without the sourcing decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummaryView {
    pub order_id: String,
    pub channel: String,
    pub external_id: String,
    pub status: String,
    pub holds: Vec<String>,
    pub created_at: String,
    pub lines: Vec<OrderLineView>,
    pub fulfillment_orders: Vec<FulfillmentOrderDetailView>,
    pub policy: PolicyNameView,
}

/// The policy an order was sourced by (the hash is on the order itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyNameView {
    pub name: String,
    pub version: i64,
}

impl From<allot_app::OrderSummary> for OrderSummaryView {
    fn from(o: allot_app::OrderSummary) -> OrderSummaryView {
        let (lines, fulfillment_orders) = order_parts(&o.lines, &o.fulfillment_orders, &o.allocations, &[], &[]);
        OrderSummaryView {
            created_at: ms_to_rfc3339(o.created_at_ms),
            policy: PolicyNameView { name: o.policy_name, version: o.policy_version },
            order_id: o.order_id,
            channel: o.channel,
            external_id: o.external_id,
            status: o.status,
            holds: o.holds,
            lines,
            fulfillment_orders,
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderSummaryView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationLineView {
    pub node_id: String,
    pub sku: String,
    pub quantity: i64,
}

/// A checkout reservation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationView {
    pub reservation_id: String,
    /// active, released, expired, converted
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    /// Seconds until it expires (0 once it is no longer active).
    pub expires_in_s: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// The order that converted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub lines: Vec<ReservationLineView>,
}

impl ReservationView {
    pub fn new(r: allot_app::StoredReservation, now_ms: i64) -> ReservationView {
        ReservationView {
            expires_in_s: if r.status == "active" { ((r.expires_at_ms - now_ms).max(0) + 999) / 1000 } else { 0 },
            created_at: ms_to_rfc3339(r.created_at_ms),
            expires_at: ms_to_rfc3339(r.expires_at_ms),
            closed_at: r.closed_at_ms.map(ms_to_rfc3339),
            reservation_id: r.reservation_id,
            status: r.status,
            order_id: r.order_id,
            lines: r
                .lines
                .into_iter()
                .map(|l| ReservationLineView { node_id: l.node_id, sku: l.sku, quantity: l.quantity })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FulfillmentLineView {
    pub line_id: String,
    pub sku: String,
    /// Units this fulfillment order carries (after a short pick: the units picked).
    pub quantity: i64,
    /// Units picked (absent until the pick is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picked_quantity: Option<i64>,
    /// Units not found at pick time (written off and re-sourced).
    pub short_quantity: i64,
    pub shipped_quantity: i64,
    /// The service level the line travels by (`GET /v1/fulfillment-orders/{id}`; absent
    /// for lines collected at a store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentView {
    pub shipment_id: String,
    pub fulfillment_order_id: String,
    pub node_id: String,
    pub carrier: String,
    pub tracking_number: String,
    /// shipped, in_transit, out_for_delivery, delivered, exception, delayed
    pub status: String,
    #[schema(value_type = Object)]
    pub lines: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub shipped_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl From<allot_app::ShipmentRow> for ShipmentView {
    fn from(s: allot_app::ShipmentRow) -> ShipmentView {
        ShipmentView {
            lines: serde_json::from_str(&s.lines).unwrap_or(serde_json::Value::Null),
            shipped_at: ms_to_rfc3339(s.shipped_at_ms),
            delivered_at: s.delivered_at_ms.map(ms_to_rfc3339),
            shipment_id: s.shipment_id,
            fulfillment_order_id: s.fulfillment_order_id,
            node_id: s.node_id,
            carrier: s.carrier,
            tracking_number: s.tracking_number,
            status: s.status,
            detail: s.detail,
        }
    }
}

/// A fulfillment order: an order's work at one node (the node queue's entries).
#[derive(Debug, Serialize, ToSchema)]
pub struct FulfillmentOrderDetailView {
    pub id: String,
    pub order_id: String,
    pub node_id: String,
    /// ship or pickup
    pub kind: String,
    /// created, released, accepted, picking, packed, shipped, delivered, ready_for_pickup,
    /// picked_up, rejected, cancelled
    pub status: String,
    /// The sourcing attempt that made it (1 = at capture; later ones re-source failures).
    pub attempt: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    pub updated_at: String,
    /// When it is due: the earliest delivery date promised for its lines, else the (UTC)
    /// day it was made. The queue serves the earliest due date first.
    pub due_date: String,
    pub lines: Vec<FulfillmentLineView>,
    pub shipments: Vec<ShipmentView>,
    /// Where the order goes (`GET /v1/fulfillment-orders/{id}`): what the node prints on
    /// the label. Customer contact details and prices are not shown to nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<AddressView>,
}

pub(crate) fn fulfillment_line(a: &allot_app::AllocationRow) -> FulfillmentLineView {
    FulfillmentLineView {
        line_id: a.line_id.clone(),
        sku: a.sku.clone(),
        quantity: a.quantity,
        picked_quantity: a.picked,
        short_quantity: a.short,
        shipped_quantity: a.shipped,
        service_level: None,
    }
}

impl FulfillmentOrderDetailView {
    pub(crate) fn new(
        f: &allot_app::FulfillmentOrderRow,
        lines: &[allot_app::AllocationRow],
        shipments: &[allot_app::ShipmentRow],
    ) -> FulfillmentOrderDetailView {
        FulfillmentOrderDetailView {
            id: f.fulfillment_order_id.clone(),
            order_id: f.order_id.clone(),
            node_id: f.node_id.clone(),
            kind: f.kind.clone(),
            status: f.status.clone(),
            attempt: f.attempt,
            reason: f.reason.clone(),
            created_at: ms_to_rfc3339(f.created_at_ms),
            released_at: f.released_at_ms.map(ms_to_rfc3339),
            updated_at: ms_to_rfc3339(f.updated_at_ms),
            due_date: f.due_date.clone(),
            lines: lines
                .iter()
                .filter(|a| a.fulfillment_order_id == f.fulfillment_order_id)
                .map(fulfillment_line)
                .collect(),
            shipments: shipments
                .iter()
                .filter(|s| s.fulfillment_order_id == f.fulfillment_order_id)
                .cloned()
                .map(Into::into)
                .collect(),
            ship_to: None,
        }
    }
}

impl From<allot_app::FulfillmentOrderEntry> for FulfillmentOrderDetailView {
    fn from(e: allot_app::FulfillmentOrderEntry) -> FulfillmentOrderDetailView {
        FulfillmentOrderDetailView::new(&e.fulfillment_order, &e.lines, &e.shipments)
    }
}

/// A page of a node's work queue, earliest due date first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FulfillmentOrderList {
    pub fulfillment_orders: Vec<FulfillmentOrderDetailView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A re-sourcing of part of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourcingAttemptView {
    pub attempt: i64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_fulfillment_order_id: Option<String>,
    pub at: String,
    /// What was re-sourced, the nodes excluded, where the units went, what was
    /// backordered or cancelled; `sourcing` holds the engine's full decision (plan and
    /// explanation, as a quote answers it) of each planning round.
    #[schema(value_type = Object)]
    pub decision: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryCountsView {
    pub pending: i64,
    pub delivered: i64,
    /// Failed every attempt; `POST /v1/webhooks/{id}/redrive` tries them again.
    pub dead: i64,
}

/// A webhook endpoint (its secret is never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deliveries: DeliveryCountsView,
}

impl From<allot_app::WebhookInfo> for WebhookView {
    fn from(i: allot_app::WebhookInfo) -> WebhookView {
        WebhookView {
            created_at: ms_to_rfc3339(i.webhook.created_at_ms),
            updated_at: ms_to_rfc3339(i.webhook.updated_at_ms),
            id: i.webhook.webhook_id,
            url: i.webhook.url,
            event_types: i.webhook.event_types,
            deliveries: DeliveryCountsView {
                pending: i.counts.pending,
                delivered: i.counts.delivered,
                dead: i.counts.dead,
            },
        }
    }
}

/// One event's delivery to one endpoint.
/// Every webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's position in the stream.
    pub seq: i64,
    pub event_id: String,
    /// pending, delivered, dead
    pub status: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl From<allot_app::DeliveryRow> for DeliveryView {
    fn from(d: allot_app::DeliveryRow) -> DeliveryView {
        DeliveryView {
            next_attempt_at: (d.status == "pending").then(|| ms_to_rfc3339(d.next_attempt_at_ms)),
            delivered_at: d.delivered_at_ms.map(ms_to_rfc3339),
            seq: d.seq,
            event_id: d.event_id,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveView {
    /// Dead deliveries put back in the queue.
    pub redriven: u64,
}

/// A stored promise document (a carrier, or a node calendar) with its version.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseDocumentView {
    pub id: String,
    pub version: i64,
    pub updated_at: String,
    /// The document as stored (every default written out).
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

impl From<&allot_app::StoredDocument> for PromiseDocumentView {
    fn from(d: &allot_app::StoredDocument) -> PromiseDocumentView {
        PromiseDocumentView {
            id: d.id.clone(),
            version: d.version,
            updated_at: ms_to_rfc3339(d.updated_at_ms),
            document: serde_json::from_str(&d.document).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromisePackageView {
    pub node_id: String,
    /// [{"line_id", "quantity"}]; line ids are the cart's positions, from "1".
    #[schema(value_type = Object)]
    pub lines: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_date: Option<String>,
    pub distance_km: f64,
    /// The carrier service's rate for this package (its `rates`: distance band, billed kg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_rate_minor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseOptionView {
    pub option_id: String,
    /// ship or pickup
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
    /// Ship: the latest package's delivery date (customer's calendar days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<String>,
    /// Pickup: when the order is ready at the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
    /// Seconds left to order for this date (0: no countdown promised).
    pub order_within_s: i64,
    /// The plan's cost under the sourcing policy (what routing optimises).
    pub cost_minor: i64,
    /// What the carrier services charge for the packages (present when every package's
    /// service has a rate for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_rate_minor: Option<i64>,
    /// Ship: the carrier service when every package uses the same one (see each package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_service: Option<String>,
    /// Pickup: the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<PromiseNodeView>,
    pub packages: Vec<PromisePackageView>,
}

/// The store of a pickup option.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseNodeView {
    pub id: String,
    pub name: String,
    pub distance_km: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnavailableView {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseView {
    pub options: Vec<PromiseOptionView>,
    pub unavailable: Vec<UnavailableView>,
}

impl From<allot_app::PromiseAnswer> for PromiseView {
    fn from(a: allot_app::PromiseAnswer) -> PromiseView {
        PromiseView {
            options: a
                .options
                .into_iter()
                .map(|o| PromiseOptionView {
                    carrier_service: o
                        .packages
                        .first()
                        .and_then(|p| p.carrier_service.clone())
                        .filter(|first| o.packages.iter().all(|p| p.carrier_service.as_ref() == Some(first))),
                    node: o.store_name.clone().and_then(|name| {
                        let p = o.packages.first()?;
                        Some(PromiseNodeView {
                            id: p.node_id.clone(),
                            name,
                            distance_km: (p.distance_km * 10.0).round() / 10.0,
                        })
                    }),
                    option_id: o.option_id,
                    method: o.method,
                    service_level: o.service_level,
                    delivery_date: o.delivery_date.map(|d| d.to_string()),
                    ready_at: o.ready_at.map(|t| t.to_string()),
                    order_within_s: o.order_within_s,
                    cost_minor: o.cost_minor,
                    carrier_rate_minor: o.carrier_rate_minor,
                    packages: o
                        .packages
                        .into_iter()
                        .map(|p| PromisePackageView {
                            node_id: p.node_id,
                            lines: serde_json::Value::from(
                                p.lines
                                    .iter()
                                    .map(|(l, q)| serde_json::json!({"line_id": l, "quantity": q}))
                                    .collect::<Vec<_>>(),
                            ),
                            carrier_service: p.carrier_service,
                            ship_date: p.ship_date.map(|d| d.to_string()),
                            distance_km: (p.distance_km * 10.0).round() / 10.0,
                            carrier_rate_minor: p.carrier_rate_minor,
                        })
                        .collect(),
                })
                .collect(),
            unavailable: a
                .unavailable
                .into_iter()
                .map(|(method, service_level, reason)| UnavailableView { method, service_level, reason })
                .collect(),
        }
    }
}

/// Backordered units of a line promised against inbound supply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpectedView {
    pub supply_id: String,
    pub node_id: String,
    pub quantity: i64,
    /// When the supply is expected at the node (RFC 3339).
    pub eta: String,
}

/// Stock expected at a node (a purchase order or transfer).
#[derive(Debug, Serialize, ToSchema)]
pub struct SupplyView {
    pub id: String,
    pub node_id: String,
    pub sku: String,
    pub quantity: i64,
    /// Units promised to backordered lines.
    pub committed: i64,
    /// Units not yet promised (what a new preorder can still be promised against).
    pub available: i64,
    pub eta: String,
    /// expected, received, cancelled
    pub status: String,
    /// Units put on hand so far (receipts add up; the supply stays `expected` for the rest
    /// until they reach its quantity or it is closed).
    pub received: i64,
    pub created_at: String,
    pub updated_at: String,
    /// The backordered units promised against it (on a single record's answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commitments: Option<Vec<CommitmentView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommitmentView {
    pub order_id: String,
    pub line_id: String,
    pub quantity: i64,
    pub committed_at: String,
}

/// A page of supply records.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupplyList {
    pub supply: Vec<SupplyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<allot_app::SupplyRow> for SupplyView {
    fn from(s: allot_app::SupplyRow) -> SupplyView {
        let open = s.status == "expected";
        SupplyView {
            available: if open { (s.quantity - s.received - s.committed).max(0) } else { 0 },
            id: s.supply_id,
            node_id: s.node_id,
            sku: s.sku,
            quantity: s.quantity,
            committed: s.committed,
            eta: ms_to_rfc3339(s.eta_ms),
            status: s.status,
            received: s.received,
            created_at: ms_to_rfc3339(s.created_at_ms),
            updated_at: ms_to_rfc3339(s.updated_at_ms),
            commitments: None,
        }
    }
}

impl From<allot_app::SupplyEntry> for SupplyView {
    fn from(e: allot_app::SupplyEntry) -> SupplyView {
        let mut v = SupplyView::from(e.supply);
        v.commitments = Some(
            e.commitments
                .into_iter()
                .map(|c| CommitmentView {
                    order_id: c.order_id,
                    line_id: c.line_id,
                    quantity: c.quantity,
                    committed_at: ms_to_rfc3339(c.committed_at_ms),
                })
                .collect(),
        );
        v
    }
}

/// One lane of the promise accuracy report.
#[derive(Debug, Serialize, ToSchema)]
pub struct LaneAccuracyView {
    pub carrier_service: String,
    pub node_id: String,
    /// The destination region ("" when addresses had none).
    pub region: String,
    pub deliveries: u64,
    pub transit_days_p50: u32,
    pub transit_days_p90: u32,
    /// Deliveries that had a promised date.
    pub promised: u64,
    pub on_time: u64,
    pub late: u64,
    /// on_time ÷ promised; absent without promised deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_time_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_days_late: Option<f64>,
}

/// `GET /v1/promise-accuracy`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseAccuracyView {
    pub from: String,
    pub to: String,
    pub deliveries: u64,
    pub promised: u64,
    pub on_time: u64,
    pub late: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_time_rate: Option<f64>,
    pub lanes: Vec<LaneAccuracyView>,
}

impl From<allot_app::PromiseAccuracy> for PromiseAccuracyView {
    fn from(a: allot_app::PromiseAccuracy) -> PromiseAccuracyView {
        PromiseAccuracyView {
            from: ms_to_rfc3339(a.from_ms),
            to: ms_to_rfc3339(a.to_ms),
            deliveries: a.deliveries,
            promised: a.promised,
            on_time: a.on_time,
            late: a.late,
            on_time_rate: a.on_time_rate(),
            lanes: a
                .lanes
                .into_iter()
                .map(|l| LaneAccuracyView {
                    on_time_rate: l.on_time_rate(),
                    carrier_service: l.carrier_service,
                    node_id: l.node_id,
                    region: l.region,
                    deliveries: l.deliveries,
                    transit_days_p50: l.transit_days_p50,
                    transit_days_p90: l.transit_days_p90,
                    promised: l.promised,
                    on_time: l.on_time,
                    late: l.late,
                    average_days_late: l.average_days_late,
                })
                .collect(),
        }
    }
}
