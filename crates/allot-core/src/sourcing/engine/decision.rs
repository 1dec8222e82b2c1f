//! The engine's inputs and outputs: the order and network as the engine reads them, and the
//! decision it returns (plan, explanation, candidates). Types and their accessors only: no
//! search and no cost arithmetic here. A candidate is kept exactly when it has no drop reason.

use std::sync::Arc;

use crate::catalog::{FulfillmentMethod, Item};
use crate::geo::GeoPoint;
use crate::ids::{ChannelId, NodeId, Sku};
use crate::network::Node;
use crate::qty::Qty;
use crate::sourcing::table::NodeTable;

// ---------------------------------------------------------------------------------------
// Inputs

/// One order line to source.
#[derive(Debug, Clone, PartialEq)]
pub struct LineToSource {
    pub line_id: String,
    pub sku: Sku,
    pub quantity: Qty,
    pub method: FulfillmentMethod,
    /// Required for pickup, curbside and ship-to-store lines.
    pub pickup_node: Option<NodeId>,
    pub service_level: Option<String>,
    pub allow_backorder: bool,
    pub unit_price_minor: i64,
}

/// An order as the engine sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderToSource {
    pub channel: Option<ChannelId>,
    pub customer_tier: Option<String>,
    pub ship_to: Option<GeoPoint>,
    pub country: Option<String>,
    pub region: Option<String>,
    /// The country the order is billed in (ISO 3166-1 alpha-2), if the channel says.
    pub billing_country: Option<String>,
    /// The order's currency: only nodes costing in it are compared (`None`: any, for
    /// callers that cost in one currency only, like the scenario generator).
    pub currency: Option<crate::Currency>,
    pub lines: Vec<LineToSource>,
    /// A delivery date promised for the lines shipped to `ship_to` (the promise engine
    /// works out each node's date; the engine only compares).
    pub promise: Option<PromiseTerms>,
}

/// How late each node would deliver a promised order: `days_late[i]` for node `i` of the
/// network (`Some(0)`: on time; `None`: no date can be made from there — no calendar or
/// carrier service). Nodes past the end of the list count as `None`. A policy with
/// `must_meet_promise` drops every node not `Some(0)` (`misses_promise`); otherwise each
/// node used costs `late_penalty_minor_per_day × days late` (nothing for `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromiseTerms {
    pub days_late: Vec<Option<u16>>,
}

impl PromiseTerms {
    pub fn days_late(&self, node: usize) -> Option<u16> {
        self.days_late.get(node).copied().flatten()
    }
}

/// A node with what it has already taken on today.
#[derive(Debug, Clone, Copy)]
pub struct NodeState<'a> {
    pub node: &'a Node,
    pub orders_today: u32,
    pub units_today: u32,
}

/// Stock of one SKU at one node, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// Index into [`SourcingNetwork::nodes`].
    pub node: usize,
    pub atp: Qty,
    /// Units of the ATP flagged as aging (drawn first for the aging bonus).
    pub aging: Qty,
}

/// What the engine reads about the network. Nodes are addressed by index
/// (`0..node_count()`); [`Holding::node`] uses the same indices.
pub trait SourcingNetwork {
    fn node_count(&self) -> usize;
    fn node(&self, index: usize) -> NodeState<'_>;
    /// Appends `node(i)` for every `i` in `0..node_count()`, in order (one call per decision;
    /// a network may do it faster than node by node).
    fn node_states<'a>(&'a self, out: &mut Vec<NodeState<'a>>) {
        out.extend((0..self.node_count()).map(|i| self.node(i)));
    }
    fn item(&self, sku: &Sku) -> Option<&Item>;
    /// Appends the holdings of a SKU (any order; nodes without the SKU may be omitted).
    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>);
    /// The network's [`NodeTable`], if it keeps one (built when its nodes change): node
    /// ids are then shared with the explanations instead of copied, and shipping zones and
    /// the radius are told apart without trigonometry per node and decision. `None` (the
    /// default): the engine copies the ids and computes every great-circle distance. A
    /// table whose length is not `node_count()` is ignored, as is a sphere point whose
    /// location differs from its node's.
    fn node_table(&self) -> Option<&Arc<NodeTable>> {
        None
    }
}

/// Bounds on the search: beyond them the best plan so far is returned as not optimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Node sets whose allocation is solved; node sets only bounded count 1/16 each.
    pub max_sets: u32,
    /// Allocation steps (a line's split across a set, whether or not it completes an
    /// assignment), over all sets.
    pub max_leaves: u32,
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions { max_sets: 20_000, max_leaves: 200_000 }
    }
}

// ---------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineQty {
    pub line_id: String,
    pub sku: Sku,
    pub quantity: Qty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    /// Shipped to the customer (or to the pickup store for ship-to-store).
    Ship,
    /// A ship-alone item: one unit, its own package.
    ShipAlone,
    /// Handed over at the node (pickup, curbside).
    Pickup,
}

/// Cost terms of one package, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CostBreakdown {
    pub shipping: i64,
    pub handling: i64,
    pub split_penalty: i64,
    pub capacity: i64,
    pub emissions: i64,
    /// Negative or zero.
    pub aging_bonus: i64,
    /// `late_penalty_minor_per_day` × days this node delivers after the promised date.
    pub late: i64,
    pub total: i64,
}

impl CostBreakdown {
    pub(super) fn sum(&mut self) {
        self.total = self.shipping
            + self.handling
            + self.split_penalty
            + self.capacity
            + self.emissions
            + self.aging_bonus
            + self.late;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub node_id: NodeId,
    pub kind: PackageKind,
    pub lines: Vec<LineQty>,
    pub weight_g: u64,
    pub cost: CostBreakdown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub packages: Vec<Package>,
    pub backordered: Vec<LineQty>,
    pub unfilled: Vec<LineQty>,
    pub backorder_penalty_minor: i64,
    pub unfilled_penalty_minor: i64,
    pub total_cost_minor: i64,
    pub plan_is_optimal: bool,
    /// Upper bound on how much cheaper the optimum could be (0 when optimal).
    pub gap_minor: i64,
}

/// Why a candidate node was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    Excluded,
    NodeTypeNotAllowed,
    Inactive,
    CapacityFull,
    BeyondRadius,
    BeyondShippingZones,
    NoCapability,
    MethodNotAllowedForItem,
    Hazmat,
    ProtectedStock,
    NoStock,
    /// The order was placed on a promised date this node cannot deliver by
    /// (`must_meet_promise`).
    MissesPromise,
    /// The node's costs are in another currency than the order's.
    OtherCurrency,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Excluded => "excluded",
            DropReason::NodeTypeNotAllowed => "node_type_not_allowed",
            DropReason::Inactive => "inactive",
            DropReason::CapacityFull => "capacity_full",
            DropReason::BeyondRadius => "beyond_radius",
            DropReason::BeyondShippingZones => "beyond_shipping_zones",
            DropReason::NoCapability => "no_capability",
            DropReason::MethodNotAllowedForItem => "method_not_allowed_for_item",
            DropReason::Hazmat => "hazmat",
            DropReason::ProtectedStock => "protected_stock",
            DropReason::NoStock => "no_stock",
            DropReason::MissesPromise => "misses_promise",
            DropReason::OtherCurrency => "other_currency",
        }
    }
}

/// One candidate node in the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateView {
    pub node_id: NodeId,
    pub kept: bool,
    /// Why it was dropped (when not kept).
    pub reason: Option<DropReason>,
    pub distance_km: Option<f64>,
    /// Units the node could contribute over all lines (after protection), for kept nodes.
    pub usable_units: u64,
    /// Whether the chosen plan uses it.
    pub chosen: bool,
}

/// Every node of the network as a candidate of the order's first destination group, in
/// node index order, stored compactly: the node ids stay in the network's [`NodeTable`]
/// (shared, or copied once per decision when the network keeps none) and each node has a
/// small fixed-size entry. [`CandidateView`]s are built when read ([`Candidates::iter`]).
#[derive(Clone, Default)]
pub struct Candidates {
    /// Node ids (and sphere points) by node index.
    table: Arc<NodeTable>,
    /// The group's destination, for distances computed when read.
    dest: Option<GeoPoint>,
    entries: Vec<CandidateEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CandidateEntry {
    usable_units: u64,
    /// Un-rounded km when `distance` is `Km` (views round to the metre).
    km: f64,
    /// `None`: kept.
    reason: Option<DropReason>,
    chosen: bool,
    distance: Distance,
}

/// Which distance to the destination the explanation reports for a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Distance {
    /// None (dropped before distance mattered, or no destination).
    None,
    /// The entry's `km`.
    Km,
    /// Not needed by the search: computed when read, from the table's sphere point.
    FromTable,
}

impl Candidates {
    pub(super) fn new(table: Arc<NodeTable>, dest: Option<GeoPoint>) -> Candidates {
        let entries = Vec::with_capacity(table.len());
        Candidates { table, dest, entries }
    }

    /// Appends the next node: kept when there is no drop reason.
    pub(super) fn push(&mut self, reason: Option<DropReason>, (distance, km): (Distance, f64), usable_units: u64) {
        debug_assert!(distance != Distance::FromTable || self.dest.is_some());
        self.entries.push(CandidateEntry { usable_units, km, reason, chosen: false, distance });
    }

    /// Replaces the entry of node `node` (pushed before).
    pub(super) fn set(
        &mut self,
        node: usize,
        reason: Option<DropReason>,
        (distance, km): (Distance, f64),
        usable_units: u64,
    ) {
        debug_assert!(distance != Distance::FromTable || self.dest.is_some());
        if let Some(e) = self.entries.get_mut(node) {
            *e = CandidateEntry { usable_units, km, reason, chosen: false, distance };
        }
    }

    /// Marks the node of index `node` as used by the chosen plan.
    pub(super) fn choose(&mut self, node: usize) {
        if let Some(e) = self.entries.get_mut(node) {
            e.chosen = true;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The candidate of node index `index`.
    pub fn get(&self, index: usize) -> Option<CandidateView> {
        let e = self.entries.get(index)?;
        let km = match e.distance {
            Distance::None => None,
            Distance::Km => Some(e.km),
            Distance::FromTable => self.dest.zip(self.table.points().get(index)).map(|(d, p)| d.distance_km(p.point())),
        };
        Some(CandidateView {
            node_id: NodeId::from_parsed(self.table.id(index)?),
            kept: e.reason.is_none(),
            reason: e.reason,
            distance_km: km.map(|km| (km * 1000.0).round() / 1000.0),
            usable_units: e.usable_units,
            chosen: e.chosen,
        })
    }

    /// The candidates in node index order.
    pub fn iter(&self) -> CandidatesIter<'_> {
        CandidatesIter { candidates: self, next: 0 }
    }

    pub fn to_vec(&self) -> Vec<CandidateView> {
        self.iter().collect()
    }
}

impl PartialEq for Candidates {
    /// Equal when they read the same (a distance may be stored or computed when read).
    fn eq(&self, other: &Candidates) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<CandidateView> for Candidates {
    fn from_iter<I: IntoIterator<Item = CandidateView>>(iter: I) -> Candidates {
        let views: Vec<CandidateView> = iter.into_iter().collect();
        let table = NodeTable::ids_only(views.iter().map(|c| &c.node_id), views.len());
        let mut out = Candidates::new(Arc::new(table), None);
        for (i, c) in views.iter().enumerate() {
            debug_assert_eq!(c.kept, c.reason.is_none(), "a candidate is kept exactly when it has no drop reason");
            let distance = c.distance_km.map_or((Distance::None, 0.0), |km| (Distance::Km, km));
            out.push(c.reason, distance, c.usable_units);
            if c.chosen {
                out.choose(i);
            }
        }
        out
    }
}

impl<'a> IntoIterator for &'a Candidates {
    type Item = CandidateView;
    type IntoIter = CandidatesIter<'a>;
    fn into_iter(self) -> CandidatesIter<'a> {
        self.iter()
    }
}

/// The candidates of an explanation, as views built one by one.
#[derive(Debug, Clone)]
pub struct CandidatesIter<'a> {
    candidates: &'a Candidates,
    next: usize,
}

impl Iterator for CandidatesIter<'_> {
    type Item = CandidateView;
    fn next(&mut self) -> Option<CandidateView> {
        let v = self.candidates.get(self.next)?;
        self.next += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.candidates.len() - self.next.min(self.candidates.len());
        (n, Some(n))
    }
}

impl ExactSizeIterator for CandidatesIter<'_> {}

/// A runner-up plan, for the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub nodes: Vec<NodeId>,
    pub total_cost_minor: i64,
    pub allocated_units: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The rule used; `None` means the fallback.
    pub rule: Option<String>,
    pub rule_reason: String,
    pub candidates: Candidates,
    /// The next best plans (distinct node sets), cheapest first, at most two.
    pub alternatives: Vec<PlanSummary>,
    pub sets_evaluated: u32,
    pub budget_exhausted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub plan: Plan,
    pub explanation: Explanation,
}
