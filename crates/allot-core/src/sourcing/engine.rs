//! The search itself. See the module docs of `sourcing` for the algorithm.
//!
//! Map: cost arithmetic (exact, shared by the search and the reported packages); bound
//! arithmetic (×1000, saturating); `Group` (the candidates of one destination group as
//! flat per-candidate × per-line arrays); `Agg`, `CoverTable` and `drop_dominated` (what
//! superset bounds and the candidate pool are built from); `Alloc` (exact allocation over
//! one node set); `Search` (the top three, the budget, set bounds, seeding and the depth
//! first search over sets); `source` and `source_group` (eligibility and reporting).
//!
//! Every bound must stay admissible — never above the cost of any plan it stands for —
//! and `engine/tests.rs` checks plans and both alternatives against brute force.

use std::collections::HashMap;

use crate::catalog::{FulfillmentMethod, Item};
use std::sync::Arc;

use crate::geo::{ChordLimit, GeoPoint, SpherePoint};
use crate::ids::{ChannelId, NodeId, Sku};
use crate::network::{Node, NodeType};
use crate::qty::Qty;
use crate::sourcing::policy::{CostModel, OrderFacts, Policy, RuleBody};
use crate::sourcing::table::{NodeTable, capability_bit};

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
    fn sum(&mut self) {
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
enum Distance {
    /// None (dropped before distance mattered, or no destination).
    None,
    /// The entry's `km`.
    Km,
    /// Not needed by the search: computed when read, from the table's sphere point.
    FromTable,
}

impl Candidates {
    fn new(table: Arc<NodeTable>, dest: Option<GeoPoint>) -> Candidates {
        let entries = Vec::with_capacity(table.len());
        Candidates { table, dest, entries }
    }

    /// Appends the next node: kept when there is no drop reason.
    fn push(&mut self, reason: Option<DropReason>, (distance, km): (Distance, f64), usable_units: u64) {
        debug_assert!(distance != Distance::FromTable || self.dest.is_some());
        self.entries.push(CandidateEntry { usable_units, km, reason, chosen: false, distance });
    }

    /// Replaces the entry of node `node` (pushed before).
    fn set(&mut self, node: usize, reason: Option<DropReason>, (distance, km): (Distance, f64), usable_units: u64) {
        debug_assert!(distance != Distance::FromTable || self.dest.is_some());
        if let Some(e) = self.entries.get_mut(node) {
            *e = CandidateEntry { usable_units, km, reason, chosen: false, distance };
        }
    }

    /// Marks the node of index `node` as used by the chosen plan.
    fn choose(&mut self, node: usize) {
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

// ---------------------------------------------------------------------------------------
// Cost arithmetic (integer, shared by the search and by plan reporting)

fn billed_kg(weight_g: u64) -> i64 {
    weight_g.div_ceil(1000) as i64
}

/// The shipping zone for a distance, if any.
fn zone(cost: &CostModel, km: f64) -> Option<(i64, i64)> {
    cost.shipping_zones.iter().find(|z| km <= z.max_km).map(|z| (z.base_minor, z.per_kg_minor))
}

/// Emissions cost of a package: `co2_g = kg × ceil(km) × co2_g_per_kg_km`, charged at
/// `emissions_minor_per_kg_co2` per kg CO2, rounded down.
fn emissions(cost: &CostModel, kg: i64, km_ceil: i64) -> i64 {
    if cost.co2_g_per_kg_km == 0 || cost.emissions_minor_per_kg_co2 == 0 || kg == 0 || km_ceil == 0 {
        return 0;
    }
    let co2_g = i128::from(kg) * i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km);
    (co2_g * i128::from(cost.emissions_minor_per_kg_co2) / 1000) as i64
}

/// `capacity_penalty × (orders_today ÷ orders_per_day)²`, rounded down.
fn capacity_pressure(cost: &CostModel, state: &NodeState<'_>) -> i64 {
    match state.node.capacity.orders_per_day {
        Some(cap) if cap > 0 && cost.capacity_penalty_minor != 0 && state.orders_today > 0 => {
            let o = i128::from(state.orders_today);
            let c = i128::from(cap);
            (i128::from(cost.capacity_penalty_minor) * o * o / (c * c)) as i64
        }
        _ => 0,
    }
}

/// Emissions per kg (×1000): `ceil(km) × co2_g_per_kg_km × emissions_minor_per_kg_co2`.
fn emissions_per_kg_milli(cost: &CostModel, km_ceil: i64) -> i128 {
    i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km) * i128::from(cost.emissions_minor_per_kg_co2)
}

// ---------------------------------------------------------------------------------------
// Bound arithmetic: lower bounds are kept ×1000 ("milli") so that shipping weight can stay
// un-rounded; they saturate instead of overflowing, which keeps them lower bounds.

/// A lower bound at or above this means "no feasible plan in this subtree".
const INF: i64 = i64::MAX / 4;

/// Largest linear unit cost kept (×1000); larger ones are clamped down (still a bound).
const UNIT_MILLI_MAX: i128 = 1 << 52;

fn mul(a: i64, u: u64) -> i64 {
    a.saturating_mul(i64::try_from(u).unwrap_or(i64::MAX))
}

fn clamp_milli(v: i128) -> i64 {
    v.min(UNIT_MILLI_MAX) as i64
}

/// Minor units of a milli amount, rounded down (INF stays INF).
fn floor_milli(v: i64) -> i64 {
    if v >= INF { INF } else { v.div_euclid(1000) }
}

/// The linear relaxation of one line over a few options `(unit cost ×1000, units)`: the
/// cheapest units up to the line's quantity (only those cheaper than its penalty, unless
/// every unit must be placed), the rest at the penalty. INF when all-or-nothing cannot
/// place every unit.
fn settle(opts: &mut [(i64, u64)], qty: u64, penalty_milli: i64, must_fill: bool) -> i64 {
    match opts.len() {
        0 | 1 => {}
        2 => {
            if opts[0].0 > opts[1].0 {
                opts.swap(0, 1);
            }
        }
        _ => opts.sort_unstable_by_key(|o| o.0),
    }
    let mut left = qty;
    let mut total = 0i64;
    for &(unit, n) in opts.iter() {
        if left == 0 || (!must_fill && unit >= penalty_milli) {
            break;
        }
        let take = left.min(n);
        total = total.saturating_add(mul(unit, take));
        left -= take;
    }
    if left > 0 {
        if must_fill {
            return INF;
        }
        total = total.saturating_add(mul(penalty_milli, left));
    }
    total
}

// ---------------------------------------------------------------------------------------
// The search problem of one destination group

/// A ship-type line in a group.
#[derive(Debug, Clone)]
struct GLine {
    order_index: usize,
    slot: usize, // index of its SKU among the group's distinct SKUs
    qty: u64,
    weight_g: u64,
    /// Billed kg of one unit (the package of a ship-alone unit).
    unit_kg: i64,
    ship_alone: bool,
    penalty: i64, // per unallocated unit
    penalty_milli: i64,
}

/// A kept candidate node of a group that can give units to at least one line.
#[derive(Debug, Clone)]
struct Cand {
    node: usize,
    /// per_order handling + capacity pressure + late penalty: paid once if the node is used.
    fixed: i64,
    base: i64,
    per_kg: i64,
    km_ceil: i64,
    per_unit: i64,
    /// The late penalty within `fixed` (promised orders).
    late: i64,
    /// Remaining units the node may take today (respect_capacity), else u64::MAX.
    unit_cap: u64,
    /// What every plan using the node pays at least, besides units: fixed + base + split
    /// penalty (a used node sends one package at least; plan bounds take the first
    /// package's split penalty back once), less one minor unit for the rounding down of
    /// the emissions of its regular package.
    entry: i64,
    /// Extra cost ×1000 of a ship-alone unit whose package the entry does not pay for:
    /// the base rate and split penalty of its own package.
    alone_extra: i64,
    /// Lines the node can give units to (bit `l`, for lines below 64).
    mask: u64,
    /// Kinds of lines it can serve: 1 regular, 2 ship-alone.
    kinds: u8,
}

struct Group<'r> {
    lines: Vec<GLine>,
    slots: usize,
    cost: &'r CostModel,
    split_penalty: i64,
    max_nodes: usize,
    /// `allow_partial = false`: only complete allocations (or the empty plan) count.
    all_or_nothing: bool,
    /// Aging bonus ×1000 (0: none).
    bonus_milli: i64,
    /// Whether some line is ship-alone.
    has_alone: bool,
    cands: Vec<Cand>,
    /// Per candidate and line (`c × lines + l`): units the line may take there alone
    /// (eligibility, usable stock, unit capacity and the line's quantity); 0: none.
    avail: Vec<u64>,
    /// Per candidate and line: linear lower bound of one unit's cost ×1000, before the
    /// aging bonus and the ship-alone package extras (shipping weight un-rounded; a
    /// ship-alone unit's base rate is in `Cand::entry` or `Cand::alone_extra`).
    unit: Vec<i64>,
    /// Per candidate and SKU slot (`c × slots + s`): usable stock and its aging units.
    stock: Vec<u64>,
    aging: Vec<u64>,
    /// Per SKU slot: units the group's lines ask for (saturating), and their sum.
    slot_qty: Vec<u64>,
    qty_total: u64,
}

impl Group<'_> {
    fn nl(&self) -> usize {
        self.lines.len()
    }

    /// Aging units the relaxation credits to line `l` at candidate `c` among `a` units.
    fn aged(&self, c: usize, l: usize, a: u64) -> u64 {
        if self.bonus_milli == 0 { 0 } else { self.aging[c * self.slots + self.lines[l].slot].min(a) }
    }

    /// Relaxed cost ×1000 of `u` units of line `l` at candidate `c` (`ag` aging units):
    /// linear unit costs, the aging bonus on at most `ag` units, and for ship-alone lines
    /// a package base and split penalty on every unit, except the first when `free_first`
    /// (the node's entry may pay for that package: when it has no regular package and no
    /// other ship-alone unit). Never above the exact cost those units add.
    fn units_cost(&self, c: usize, l: usize, u: u64, ag: u64, free_first: bool) -> i64 {
        if u == 0 {
            return 0;
        }
        let mut v = mul(self.unit[c * self.nl() + l], u).saturating_sub(mul(self.bonus_milli, u.min(ag)));
        if self.lines[l].ship_alone {
            v = v.saturating_add(mul(self.cands[c].alone_extra, if free_first { u - 1 } else { u }));
        }
        v
    }

    /// The relaxed unit costs of up to `a` units of line `l` at `c`, as ascending
    /// segments `(cost per unit ×1000, units)` (their prefix sums are `units_cost`).
    fn push_segments(&self, c: usize, l: usize, a: u64, free_first: bool, out: &mut Vec<(i64, u64)>) {
        if a == 0 {
            return;
        }
        let c0 = self.unit[c * self.nl() + l];
        let ag = self.aged(c, l, a);
        let b = self.bonus_milli;
        let extra = if self.lines[l].ship_alone { self.cands[c].alone_extra } else { 0 };
        if extra == 0 || !free_first {
            let c1 = c0.saturating_add(extra);
            if ag > 0 {
                out.push((c1.saturating_sub(b), ag));
            }
            if a > ag {
                out.push((c1, a - ag));
            }
        } else {
            out.push((if ag > 0 { c0.saturating_sub(b) } else { c0 }, 1));
            let mid = ag.saturating_sub(1);
            if mid > 0 {
                out.push((c0.saturating_add(extra).saturating_sub(b), mid));
            }
            let rest = a - 1 - mid;
            if rest > 0 {
                out.push((c0.saturating_add(extra), rest));
            }
        }
    }

    /// Cheapest relaxed unit of line `l` at `c` (×1000) that pays its own package.
    fn full_unit(&self, c: usize, l: usize) -> i64 {
        let extra = if self.lines[l].ship_alone { self.cands[c].alone_extra } else { 0 };
        self.first_unit(c, l).saturating_add(extra)
    }

    /// Cheapest relaxed unit of line `l` at `c` (×1000).
    fn first_unit(&self, c: usize, l: usize) -> i64 {
        let a = self.avail[c * self.nl() + l];
        let c0 = self.unit[c * self.nl() + l];
        if self.aged(c, l, a) > 0 { c0.saturating_sub(self.bonus_milli) } else { c0 }
    }

    /// Exact cost of candidate `c` shipping `x(l)` units of each line, and its packages.
    fn node_cost(&self, c: usize, x: impl Fn(usize) -> u64, slot_units: &mut [u64]) -> (i64, i64) {
        let cand = &self.cands[c];
        let mut units = 0u64;
        let mut reg_weight = 0u64;
        let mut reg = false;
        let mut total = 0i64;
        let mut packages = 0i64;
        if self.bonus_milli > 0 {
            slot_units.fill(0);
        }
        for (l, line) in self.lines.iter().enumerate() {
            let u = x(l);
            if u == 0 {
                continue;
            }
            units += u;
            if self.bonus_milli > 0 {
                slot_units[line.slot] += u;
            }
            if line.ship_alone {
                let kg = line.unit_kg;
                total += (cand.base + cand.per_kg * kg + emissions(self.cost, kg, cand.km_ceil)) * u as i64;
                packages += u as i64;
            } else {
                reg = true;
                reg_weight += line.weight_g * u;
            }
        }
        if units == 0 {
            return (0, 0);
        }
        total += cand.fixed + cand.per_unit * units as i64;
        if reg {
            let kg = billed_kg(reg_weight);
            total += cand.base + cand.per_kg * kg + emissions(self.cost, kg, cand.km_ceil);
            packages += 1;
        }
        if self.bonus_milli > 0 {
            let aging = &self.aging[c * self.slots..(c + 1) * self.slots];
            let aged: u64 = slot_units.iter().zip(aging).map(|(u, a)| (*u).min(*a)).sum();
            total -= aged as i64 * self.cost.aging_bonus_minor;
        }
        (total, packages)
    }

    /// Exact cost of an allocation over `set`; `x[l × set.len() + k]` units of line `l`
    /// at `set[k]`.
    fn plan_cost(&self, set: &[usize], x: &[u64], slot_units: &mut [u64]) -> i64 {
        let m = set.len();
        let mut total = 0i64;
        let mut packages = 0i64;
        for (k, &c) in set.iter().enumerate() {
            let (cost, p) = self.node_cost(c, |l| x[l * m + k], slot_units);
            total += cost;
            packages += p;
        }
        total += self.split_penalty * (packages - 1).max(0);
        for (l, line) in self.lines.iter().enumerate() {
            let placed: u64 = x[l * m..(l + 1) * m].iter().sum();
            total += line.penalty * (line.qty - placed) as i64;
        }
        total
    }

    /// Σ entry − split penalty of a set, ×1000.
    fn entry_milli(&self, set: &[usize]) -> i64 {
        let e = set.iter().fold(0i64, |a, &c| a.saturating_add(self.cands[c].entry));
        e.saturating_sub(self.split_penalty).saturating_mul(1000)
    }
}

// ---------------------------------------------------------------------------------------
// Bounds on node sets

/// What a group of candidates (all of them, or a suffix of the search order) can add to
/// a node set, per line: for superset bounds.
#[derive(Debug, Default)]
struct Agg {
    lines: usize,
    /// Per position: cheapest entry cost among the candidates from that position on.
    min_entry: Vec<i64>,
    /// Per position and line: cheapest entry among those that can serve the line (INF).
    cover: Vec<i64>,
    /// Per position and line: cheapest relaxed unit cost ×1000 for the line (INF).
    min_unit: Vec<i64>,
    /// Per position and line: the same without the first-unit package discount of
    /// ship-alone lines (each added node gives at most one unit that discount).
    min_full: Vec<i64>,
    /// Per position and line: most units one candidate can give the line.
    max_avail: Vec<u64>,
}

impl Agg {
    /// Aggregates of every suffix of `order` (position `order.len()` is empty).
    fn suffixes(g: &Group<'_>, order: &[usize]) -> Agg {
        let nl = g.nl();
        let n = order.len();
        let mut a = Agg {
            lines: nl,
            min_entry: vec![INF; n + 1],
            cover: vec![INF; (n + 1) * nl],
            min_unit: vec![INF; (n + 1) * nl],
            min_full: vec![INF; (n + 1) * nl],
            max_avail: vec![0; (n + 1) * nl],
        };
        for p in (0..n).rev() {
            let c = order[p];
            a.min_entry[p] = a.min_entry[p + 1].min(g.cands[c].entry);
            for l in 0..nl {
                let (here, next) = (p * nl + l, (p + 1) * nl + l);
                let av = g.avail[c * nl + l];
                a.cover[here] = a.cover[next];
                a.min_unit[here] = a.min_unit[next];
                a.min_full[here] = a.min_full[next];
                a.max_avail[here] = a.max_avail[next].max(av);
                if av > 0 {
                    a.cover[here] = a.cover[here].min(g.cands[c].entry);
                    a.min_unit[here] = a.min_unit[here].min(g.first_unit(c, l));
                    a.min_full[here] = a.min_full[here].min(g.full_unit(c, l));
                }
            }
        }
        a
    }

    /// The aggregate of no candidate (one position), to which the candidates of a group
    /// are added as they are built (in `source_group`).
    fn empty(nl: usize) -> Agg {
        Agg {
            lines: nl,
            min_entry: vec![INF],
            cover: vec![INF; nl],
            min_unit: vec![INF; nl],
            min_full: vec![INF; nl],
            max_avail: vec![0; nl],
        }
    }

    fn at(&self, p: usize) -> AggView<'_> {
        let r = p * self.lines..(p + 1) * self.lines;
        AggView {
            min_entry: self.min_entry[p],
            cover: &self.cover[r.clone()],
            min_unit: &self.min_unit[r.clone()],
            min_full: &self.min_full[r.clone()],
            max_avail: &self.max_avail[r],
        }
    }
}

#[derive(Clone, Copy)]
struct AggView<'a> {
    min_entry: i64,
    cover: &'a [i64],
    min_unit: &'a [i64],
    min_full: &'a [i64],
    max_avail: &'a [u64],
}

/// Node ids of the candidates, compared quickly: by their first 8 bytes (computed when
/// first needed), then in full.
struct Ids<'a> {
    nodes: &'a [NodeState<'a>],
    cands: &'a [Cand],
    keys: Vec<std::cell::Cell<u64>>,
}

/// No key: id bytes are ASCII, so no id's key has this value.
const NO_KEY: u64 = u64::MAX;

impl<'a> Ids<'a> {
    fn new(nodes: &'a [NodeState<'a>], cands: &'a [Cand]) -> Ids<'a> {
        let keys = vec![std::cell::Cell::new(NO_KEY); cands.len()];
        Ids { nodes, cands, keys }
    }

    fn id(&self, c: usize) -> &'a NodeId {
        &self.nodes[self.cands[c].node].node.id
    }

    fn key(&self, c: usize) -> u64 {
        let k = self.keys[c].get();
        if k != NO_KEY {
            return k;
        }
        let mut bytes = [0u8; 8];
        let b = self.id(c).as_str().as_bytes();
        let n = b.len().min(8);
        bytes[..n].copy_from_slice(&b[..n]);
        let k = u64::from_be_bytes(bytes);
        self.keys[c].set(k);
        k
    }

    fn cmp(&self, a: usize, b: usize) -> std::cmp::Ordering {
        self.key(a).cmp(&self.key(b)).then_with(|| self.id(a).cmp(self.id(b)))
    }
}

/// Drops from `pool` the candidates no top-three plan can use: a candidate `b` with
/// `max_nodes + 2` dominators among all candidates. `a` dominates `b` when every
/// allocation `b` can take `a` can take too (eligible for every line `b` serves, at least
/// as much stock per SKU and unit capacity, up to what the lines ask) and costs no more
/// for it (fixed, per-unit, base and per-kg costs no higher, no farther when emissions are
/// charged, no fewer aging units), ties going to the lower node id. Moving `b`'s units to
/// an unused dominator gives a plan at most as costly on a set that ranks before, and a
/// set with `b` leaves at least three dominators unused: three sets rank before it.
///
/// Candidates are grouped by their cost terms; `b`'s dominators are searched in the groups
/// that cost no more, strongest first (a dominator offers at least as many units).
///
/// For a kept candidate with r ≥ 3 dominators found, `companions` gets them: a top-three
/// set with it leaves at most two of them out (each one left out gives a set that ranks
/// before), so it holds at least r − 2 of them.
fn drop_dominated(g: &Group<'_>, ids: &Ids<'_>, pool: &mut Vec<usize>, companions: &mut Vec<(usize, Vec<usize>)>) {
    let (nl, ns) = (g.nl(), g.slots);
    let need = g.max_nodes + 2;
    let n = g.cands.len();
    if pool.is_empty() || n <= need {
        return;
    }
    let (slot_qty, total_qty) = (&g.slot_qty, g.qty_total);
    let emissions_on = g.cost.co2_g_per_kg_km > 0 && g.cost.emissions_minor_per_kg_co2 > 0;
    // Cost terms and strength (units offered over all lines) of every candidate, once.
    let keys: Vec<[i64; 5]> = g
        .cands
        .iter()
        .map(|x| [x.fixed, x.per_unit, x.base, x.per_kg, if emissions_on { x.km_ceil } else { 0 }])
        .collect();
    let key = |c: usize| -> [i64; 5] { keys[c] };
    let strengths: Vec<u64> =
        g.avail.chunks_exact(nl.max(1)).take(n).map(|a| a.iter().fold(0u64, |a, v| a.saturating_add(*v))).collect();
    let strength = |c: usize| -> u64 { strengths[c] };
    // Whether `a` offers whatever `b` does (costs aside). Fast path: per-SKU stock (up to
    // what the lines ask) packed a byte each, compared bytewise at once.
    let packed = ns <= 8 && slot_qty.iter().all(|&q| q < 128) && (g.bonus_milli == 0 || ns <= 4);
    let sig: Vec<u64> = if packed {
        (0..n)
            .map(|c| {
                let mut v = 0u64;
                for (s, &q) in slot_qty.iter().enumerate() {
                    v |= g.stock[c * ns + s].min(q) << (8 * s);
                    if g.bonus_milli > 0 {
                        v |= g.aging[c * ns + s].min(q) << (8 * (s + 4));
                    }
                }
                v
            })
            .collect()
    } else {
        Vec::new()
    };
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // (What `covers` reads of a candidate is kept with it in the buckets: no candidate is
    // looked up while scanning them.)
    let member = |c: usize| Member {
        strength: strength(c),
        c,
        cap: g.cands[c].unit_cap.min(total_qty),
        mask: g.cands[c].mask,
        sig: if packed { sig[c] } else { 0 },
    };
    let covers = |a: &Member, b: &Member| -> bool {
        if a.cap < b.cap {
            return false;
        }
        if nl <= 64 {
            if b.mask & !a.mask != 0 {
                return false;
            }
        } else if (0..nl).any(|l| g.avail[b.c * nl + l] > 0 && g.avail[a.c * nl + l] == 0) {
            return false;
        }
        if packed {
            // Every byte of a ≥ the same byte of b (all bytes below 128).
            return ((a.sig | HIGH) - b.sig) & HIGH == HIGH;
        }
        let (a, b) = (a.c, b.c);
        for (s, &q) in slot_qty.iter().enumerate() {
            if g.stock[a * ns + s].min(q) < g.stock[b * ns + s].min(q) {
                return false;
            }
            if g.bonus_milli > 0 && g.aging[a * ns + s].min(q) < g.aging[b * ns + s].min(q) {
                return false;
            }
        }
        true
    };
    // Groups of equal cost terms (few: node types × zones, typically). With too many, one
    // group, and costs compared pair by pair.
    // Groups are numbered in order of first appearance, found through a small hash table
    // (entry: group number + 1, 0 empty; at most `DOMINANCE_GROUPS` in `GROUP_SLOTS`).
    let mut groups: Vec<[i64; 5]> = Vec::new();
    let mut group_of = vec![0usize; n];
    let mut slots = [0u8; GROUP_SLOTS];
    // (Element by element: `==` on the arrays calls memcmp.)
    let same =
        |a: &[i64; 5], b: &[i64; 5]| a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4];
    for (c, slot) in group_of.iter_mut().enumerate() {
        let k = key(c);
        let h = k.iter().fold(0u64, |h, &x| (h.rotate_left(5) ^ x as u64).wrapping_mul(0x517c_c1b7_2722_0a95));
        let mut i = (h >> 56) as usize % GROUP_SLOTS;
        let at = loop {
            match slots[i] {
                0 => {
                    if groups.len() == DOMINANCE_GROUPS {
                        break None;
                    }
                    groups.push(k);
                    slots[i] = groups.len() as u8;
                    break Some(groups.len() - 1);
                }
                e if same(&groups[e as usize - 1], &k) => break Some(e as usize - 1),
                _ => i = (i + 1) % GROUP_SLOTS,
            }
        };
        let Some(at) = at else { break };
        *slot = at;
    }
    let pairwise = groups.len() == DOMINANCE_GROUPS;
    if pairwise {
        groups.truncate(1);
        group_of.iter_mut().for_each(|g| *g = 0);
    }
    // Whether `a` costs no more than `b` for any allocation, and strictly less.
    let cheaper_pair = |a: usize, b: usize| -> Option<bool> {
        let (ka, kb) = (key(a), key(b));
        ka.iter().zip(kb.iter()).all(|(x, y)| x <= y).then(|| ka[0] < kb[0] || ka[1] < kb[1] || ka[2] < kb[2])
    };
    // Buckets by group and by the lines served (a dominator serves every line `b` does),
    // members strongest first, then by index.
    let mask_bits = if nl <= DOMINANCE_MASK_LINES { nl } else { 0 };
    let masks = 1usize << mask_bits;
    let bucket_of = |c: usize| group_of[c] * masks + (g.cands[c].mask as usize & (masks - 1));
    let mut start = vec![0usize; groups.len() * masks + 1];
    for c in 0..n {
        start[bucket_of(c) + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut members = vec![Member::default(); n];
    for c in 0..n {
        let b = bucket_of(c);
        members[fill[b]] = member(c);
        fill[b] += 1;
    }
    for bucket in start.windows(2) {
        members[bucket[0]..bucket[1]].sort_by_key(|m| std::cmp::Reverse(m.strength));
    }
    // Per group, its non-empty line masks, most lines first.
    let mut used_masks: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (j, list) in used_masks.iter_mut().enumerate() {
        list.extend((0..masks).filter(|&m| start[j * masks + m + 1] > start[j * masks + m]));
        list.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
    }
    // Per group, the groups that cost no more, and whether strictly less on every plan.
    let ng = groups.len();
    let mut cheaper: Vec<Vec<(usize, bool)>> = vec![Vec::new(); ng];
    for (h, kh) in groups.iter().enumerate() {
        for (j, kj) in groups.iter().enumerate() {
            if pairwise || kj.iter().zip(kh.iter()).all(|(a, b)| a <= b) {
                let strict = kj[0] < kh[0] || kj[1] < kh[1] || kj[2] < kh[2];
                cheaper[h].push((j, strict));
            }
        }
    }
    let mut checks = 0usize;
    let mut doms: Vec<usize> = Vec::with_capacity(need);
    pool.retain(|&b| {
        let mb_member = member(b);
        let sb = mb_member.strength;
        let mb = g.cands[b].mask as usize & (masks - 1);
        let mut found = 0;
        doms.clear();
        let mut keep = |doms: &Vec<usize>| {
            if doms.len() >= 3 {
                companions.push((b, doms.clone()));
            }
            true
        };
        for &(j, strict) in &cheaper[group_of[b]] {
            for &m in &used_masks[j] {
                if m & mb != mb {
                    continue;
                }
                let bucket = j * masks + m;
                for ma in &members[start[bucket]..start[bucket + 1]] {
                    let a = ma.c;
                    if ma.strength < sb {
                        break;
                    }
                    if a == b {
                        continue;
                    }
                    checks += 1;
                    if checks > DOMINANCE_CHECKS {
                        return keep(&doms);
                    }
                    let strict = if pairwise {
                        match cheaper_pair(a, b) {
                            Some(strict) => strict,
                            None => continue,
                        }
                    } else {
                        strict
                    };
                    if covers(ma, &mb_member) && (strict || ids.cmp(a, b).is_lt()) {
                        found += 1;
                        if found >= need {
                            return false;
                        }
                        doms.push(a);
                    }
                }
            }
        }
        keep(&doms)
    });
}

/// A candidate as dominance compares it: its strength, index, unit capacity (up to what
/// the lines ask), lines served and packed stock signature.
#[derive(Debug, Clone, Copy, Default)]
struct Member {
    strength: u64,
    c: usize,
    cap: u64,
    mask: u64,
    sig: u64,
}

/// Lines up to which dominance candidates are bucketed by the lines they serve.
const DOMINANCE_MASK_LINES: usize = 8;
/// Most cost groups compared group by group (beyond, costs are compared pair by pair) …
const DOMINANCE_GROUPS: usize = 64;
/// … and most dominance checks per decision.
const DOMINANCE_CHECKS: usize = 200_000;
/// Slots of the table that finds a cost group (more than twice `DOMINANCE_GROUPS`).
const GROUP_SLOTS: usize = 256;

/// Lower bounds on the entry costs of the nodes added to a set, by the lines they cover:
/// `b[(r − 1) × 2^L + X]` is the cheapest Σ entry of 1..=r candidates (any, repeats
/// allowed) that can together serve every line of `X`. Built when 3^L × r is small.
struct CoverTable {
    lines: usize,
    rows: usize,
    b: Vec<i64>,
}

/// Largest 3^L × (max_nodes − 1) for which the cover table is built.
const COVER_TABLE_WORK: usize = 30_000;
/// Superset bounds enumerate the subsets of at most this many lines; beyond, a weaker
/// one-dimensional bound is used.
const ENUM_LINES: usize = 8;

impl CoverTable {
    fn build(g: &Group<'_>) -> Option<CoverTable> {
        let nl = g.nl();
        let rows = g.max_nodes.saturating_sub(1);
        if rows == 0 || nl > 16 || 3usize.pow(nl as u32).saturating_mul(rows) > COVER_TABLE_WORK {
            return None;
        }
        let size = 1usize << nl;
        // One node: cheapest entry over candidates covering a superset of X.
        let mut one = vec![INF; size];
        for c in &g.cands {
            let m = c.mask as usize & (size - 1);
            one[m] = one[m].min(c.entry);
        }
        for bit in 0..nl {
            for x in 0..size {
                if x & (1 << bit) == 0 {
                    one[x] = one[x].min(one[x | (1 << bit)]);
                }
            }
        }
        let mut b = Vec::with_capacity(rows * size);
        b.extend_from_slice(&one);
        let mut exact = one.clone(); // exactly r nodes (repeats allowed)
        for _ in 1..rows {
            let mut next = vec![INF; size];
            for (x, nx) in next.iter_mut().enumerate() {
                // Split X between the new node (Y) and the r others (X \ Y).
                let mut y = x;
                loop {
                    let v = one[y].saturating_add(exact[x & !y]);
                    if v < *nx {
                        *nx = v;
                    }
                    if y == 0 {
                        break;
                    }
                    y = (y - 1) & x;
                }
                *nx = (*nx).min(INF);
            }
            let prev = b.len() - size;
            for x in 0..size {
                let v = b[prev + x].min(next[x]);
                b.push(v);
            }
            exact = next;
        }
        Some(CoverTable { lines: nl, rows, b })
    }

    fn get(&self, r: usize, x: u64) -> i64 {
        let r = r.min(self.rows);
        self.b[(r - 1) * (1 << self.lines) + x as usize]
    }
}

// ---------------------------------------------------------------------------------------
// Allocation within a node set

/// Exact allocation over a fixed set: depth-first over lines (regular lines first, so that
/// a node's regular package and billed weight are known when its ship-alone units are
/// costed), each line's splits across the set (cheapest node first, largest share first),
/// pruned by the relaxed cost of the lines fixed so far plus the linear relaxation of the
/// others.
#[derive(Debug, Default)]
struct Alloc {
    m: usize,
    set: Vec<usize>,
    /// `x[l × m + k]`: units of line `l` at `set[k]`.
    x: Vec<u64>,
    /// Lines in search order.
    lines: Vec<usize>,
    rem_stock: Vec<u64>,
    rem_cap: Vec<u64>,
    used: Vec<u64>,
    /// Per position: regular units, ship-alone units and regular weight placed so far.
    reg_units: Vec<u64>,
    alone_units: Vec<u64>,
    reg_weight: Vec<u64>,
    /// Per line, the set positions that may serve it, cheapest first.
    order: Vec<usize>,
    count: Vec<usize>,
    base_milli: i64,
    /// Costs above this are of no use (the top-three threshold).
    limit: i64,
    best_cost: i64,
    best_x: Vec<u64>,
    steps: u64,
    max_steps: u64,
    cut: bool,
    buf: Vec<(i64, u64)>,
    slot_units: Vec<u64>,
    /// Lines never compete (distinct SKUs, unit capacity never binding): the relaxation
    /// of the lines from search position `p` on is fixed, `rest[p]`, and position `k` can
    /// serve a later line iff `last[k] > p` (`last[k]`: one past its last position).
    independent: bool,
    rest: Vec<i64>,
    last: Vec<usize>,
    /// Symmetry: per position, an earlier position with the same profile (or MAX), and
    /// whether their units have been equal on every line so far.
    twin: Vec<usize>,
    tied: Vec<bool>,
    /// `reg_room[p × m + k]`: most regular weight position `k` may receive from search
    /// position `p` on.
    reg_room: Vec<u64>,
}

impl Alloc {
    /// Solves the allocation of `set`; `twin[k]`: an earlier position whose node has the
    /// same profile as `set[k]` (`usize::MAX`: none).
    fn solve(&mut self, g: &Group<'_>, set: &[usize], twin: &[usize], limit: i64, max_steps: u64) {
        let (nl, ns, m) = (g.nl(), g.slots, set.len());
        self.m = m;
        self.set.clear();
        self.set.extend_from_slice(set);
        self.x.clear();
        self.x.resize(nl * m, 0);
        self.lines.clear();
        self.lines.extend((0..nl).filter(|&l| !g.lines[l].ship_alone));
        // Heaviest regular lines first: the billed weight is settled early.
        self.lines.sort_by_key(|&l| (std::cmp::Reverse(g.lines[l].weight_g.saturating_mul(g.lines[l].qty)), l));
        self.lines.extend((0..nl).filter(|&l| g.lines[l].ship_alone));
        self.rem_stock.clear();
        self.rem_cap.clear();
        for &c in set {
            self.rem_stock.extend_from_slice(&g.stock[c * ns..(c + 1) * ns]);
            self.rem_cap.push(g.cands[c].unit_cap);
        }
        for v in [&mut self.used, &mut self.reg_units, &mut self.alone_units, &mut self.reg_weight] {
            v.clear();
            v.resize(m, 0);
        }
        self.order.clear();
        self.order.resize(nl * m, 0);
        self.count.clear();
        for l in 0..nl {
            let mut n = 0;
            for (k, &c) in set.iter().enumerate() {
                if g.avail[c * nl + l] > 0 {
                    self.order[l * m + n] = k;
                    n += 1;
                }
            }
            self.order[l * m..l * m + n].sort_by_key(|&k| (g.unit[set[k] * nl + l], k));
            self.count.push(n);
        }
        self.slot_units.clear();
        self.slot_units.resize(ns, 0);
        self.twin.clear();
        self.twin.extend_from_slice(twin);
        self.tied.clear();
        self.tied.resize(m, true);
        // Most regular weight each position may still receive from search position p on.
        self.reg_room.clear();
        self.reg_room.resize((nl + 1) * m, 0);
        for p in (0..nl).rev() {
            let l = self.lines[p];
            for (k, &c) in set.iter().enumerate() {
                let add =
                    if g.lines[l].ship_alone { 0 } else { g.lines[l].weight_g.saturating_mul(g.avail[c * nl + l]) };
                self.reg_room[p * m + k] = self.reg_room[(p + 1) * m + k].saturating_add(add);
            }
        }
        self.last.clear();
        for &c in set {
            let serves = |p: usize| g.avail[c * nl + self.lines[p]] > 0;
            self.last.push((0..nl).rev().find(|&p| serves(p)).map_or(0, |p| p + 1));
        }
        let distinct_slots = ns == nl;
        self.independent = distinct_slots
            && set.iter().all(|&c| {
                let most = g.avail[c * nl..(c + 1) * nl].iter().fold(0u64, |a, v| a.saturating_add(*v));
                g.cands[c].unit_cap >= most
            });
        self.rest.clear();
        if self.independent {
            self.rest.resize(nl + 1, 0);
            for p in (0..nl).rev() {
                let v = self.line_lp(g, self.lines[p]);
                self.rest[p] =
                    if v >= INF || self.rest[p + 1] >= INF { INF } else { v.saturating_add(self.rest[p + 1]) };
            }
        }
        self.base_milli = g.entry_milli(set);
        self.limit = limit;
        self.best_cost = INF;
        self.steps = 0;
        self.max_steps = max_steps;
        self.cut = false;
        self.line(g, 0, 0);
    }

    fn line(&mut self, g: &Group<'_>, p: usize, committed: i64) {
        if p == g.nl() {
            self.leaf(g);
            return;
        }
        let l = self.lines[p];
        self.split(g, p, l, 0, g.lines[l].qty, committed, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn split(&mut self, g: &Group<'_>, p: usize, l: usize, j: usize, left: u64, committed: i64, acc: i64) {
        let m = self.m;
        let nl = g.nl();
        if j == self.count[l] {
            self.steps += 1;
            if self.steps > self.max_steps {
                self.cut = true;
                return;
            }
            let line = &g.lines[l];
            let mut acc = acc;
            if left > 0 {
                if g.all_or_nothing {
                    return;
                }
                acc = acc.saturating_add(mul(line.penalty_milli, left));
            }
            let committed = committed.saturating_add(acc);
            // Every node of the set must still be able to receive a unit.
            for k in 0..m {
                if self.used[k] == 0
                    && !(if self.independent { self.last[k] > p + 1 } else { self.can_serve_from(g, k, p + 1) })
                {
                    return;
                }
            }
            let rest = if self.independent { self.rest[p + 1] } else { self.rest_lp(g, p + 1) };
            if rest >= INF {
                return;
            }
            // Twins: a node's units, line by line, never exceed its earlier twin's.
            let mut untied = 0u64;
            for k in 0..m {
                let t = self.twin[k];
                if t != usize::MAX && self.tied[k] {
                    let (a, b) = (self.x[l * m + t], self.x[l * m + k]);
                    if a < b {
                        return;
                    }
                    if a > b && k < 64 {
                        untied |= 1 << k;
                    }
                }
            }
            // Billed weight: whatever regular weight a node may still receive, its kg are
            // at least those of the weight it has.
            let mut rounding = 0i64;
            for k in 0..m {
                let w = self.reg_weight[k];
                if w > 0 {
                    let up = w.div_ceil(1000) * 1000 - w;
                    let room = self.reg_room[(p + 1) * m + k];
                    if up > room {
                        rounding =
                            rounding.saturating_add(g.cands[self.set[k]].per_kg.saturating_mul((up - room) as i64));
                    }
                }
            }
            let bound =
                floor_milli(self.base_milli.saturating_add(committed).saturating_add(rest).saturating_add(rounding));
            if bound > self.limit.min(self.best_cost - 1) {
                return;
            }
            for k in 0..m.min(64) {
                if untied & (1 << k) != 0 {
                    self.tied[k] = false;
                }
            }
            self.line(g, p + 1, committed);
            for k in 0..m.min(64) {
                if untied & (1 << k) != 0 {
                    self.tied[k] = true;
                }
            }
            return;
        }
        let k = self.order[l * m + j];
        let c = self.set[k];
        let si = k * g.slots + g.lines[l].slot;
        let full = g.avail[c * nl + l];
        let max_u = left.min(self.rem_stock[si]).min(self.rem_cap[k]).min(full);
        let ag = g.aged(c, l, full);
        let alone = g.lines[l].ship_alone;
        let w = if alone { 0 } else { g.lines[l].weight_g };
        // A ship-alone unit rides on the node's entry only if it is the node's first package.
        let free_first = alone && self.reg_units[k] == 0 && self.alone_units[k] == 0;
        for u in (0..=max_u).rev() {
            self.x[l * m + k] = u;
            self.rem_stock[si] -= u;
            self.rem_cap[k] -= u;
            self.used[k] += u;
            if alone {
                self.alone_units[k] += u;
            } else {
                self.reg_units[k] += u;
                self.reg_weight[k] += w * u;
            }
            let cost = g.units_cost(c, l, u, ag, free_first);
            self.split(g, p, l, j + 1, left - u, committed, acc.saturating_add(cost));
            self.rem_stock[si] += u;
            self.rem_cap[k] += u;
            self.used[k] -= u;
            if alone {
                self.alone_units[k] -= u;
            } else {
                self.reg_units[k] -= u;
                self.reg_weight[k] -= w * u;
            }
            if self.cut {
                break;
            }
        }
        self.x[l * m + k] = 0;
    }

    fn remaining(&self, g: &Group<'_>, k: usize, l: usize) -> u64 {
        let c = self.set[k];
        g.avail[c * g.nl() + l].min(self.rem_stock[k * g.slots + g.lines[l].slot]).min(self.rem_cap[k])
    }

    fn can_serve_from(&self, g: &Group<'_>, k: usize, from: usize) -> bool {
        (from..g.nl()).any(|p| self.remaining(g, k, self.lines[p]) > 0)
    }

    /// Linear relaxation of the lines from search position `from` on, with the stock and
    /// capacity left.
    fn rest_lp(&mut self, g: &Group<'_>, from: usize) -> i64 {
        let mut total = 0i64;
        for p in from..g.nl() {
            let v = self.line_lp(g, self.lines[p]);
            if v >= INF {
                return INF;
            }
            total = total.saturating_add(v);
        }
        total
    }

    /// Linear relaxation of line `l` with the stock and capacity left.
    fn line_lp(&mut self, g: &Group<'_>, l: usize) -> i64 {
        let m = self.m;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for j in 0..self.count[l] {
            let k = self.order[l * m + j];
            let a = self.remaining(g, k, l);
            let free_first = self.reg_units[k] == 0 && self.alone_units[k] == 0;
            g.push_segments(self.set[k], l, a, free_first, &mut buf);
        }
        let line = &g.lines[l];
        let v = settle(&mut buf, line.qty, line.penalty_milli, g.all_or_nothing);
        self.buf = buf;
        v
    }

    fn leaf(&mut self, g: &Group<'_>) {
        if self.used.contains(&0) {
            return;
        }
        let cost = g.plan_cost(&self.set, &self.x, &mut self.slot_units);
        if cost <= self.limit && cost < self.best_cost {
            self.best_cost = cost;
            self.best_x.clone_from(&self.x);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Branch and bound over node sets

/// A complete allocation.
#[derive(Debug, Clone)]
struct Found {
    cost: i64,
    /// Candidate indices, in node id order.
    set: Vec<usize>,
    /// `units[l × set.len() + k]`.
    units: Vec<u64>,
}

/// The least quick bound of any candidate (the one with the cheapest entry).
fn quick_floor(g: &Group<'_>, pre: &OnePre, min_entry: i64) -> i64 {
    floor_milli(min_entry.saturating_sub(g.split_penalty).saturating_mul(1000).saturating_add(pre.cheap))
}

/// `Search::single_bound` of a candidate of a group without aging bonus, from its unit
/// costs, units available, entry and ship-alone package extra by line: the first unit,
/// then the others (a ship-alone line's pay their packages), each taken if cheaper than
/// the penalty (or if all must be placed). A line with no units there costs its penalty
/// on every unit (INF when all must be placed).
fn plain_single_bound(
    lines: &[GLine],
    (fill, split_penalty): (bool, i64),
    units: &[i64],
    avail: &[u64],
    entry: i64,
    alone_extra: i64,
) -> i64 {
    // `g.entry_milli(&[c])`.
    let mut total = entry.saturating_sub(split_penalty).saturating_mul(1000);
    for ((line, &first), &a) in lines.iter().zip(units).zip(avail) {
        let rest = if line.ship_alone { first.saturating_add(alone_extra) } else { first };
        let v = plain_line_bound(line, fill, (first, rest), a);
        if v >= INF {
            return INF;
        }
        total = total.saturating_add(v);
    }
    floor_milli(total)
}

/// One line's term of `plain_single_bound`: `a` units available, the first at `first`
/// (×1000), the others at `rest`.
fn plain_line_bound(line: &GLine, fill: bool, (first, rest): (i64, i64), a: u64) -> i64 {
    let (q, pen) = (line.qty, line.penalty_milli);
    let take_first = u64::from(fill || first < pen).min(a).min(q);
    let take_rest = if fill || rest < pen { (a.min(q)).saturating_sub(take_first) } else { 0 };
    let left = q - take_first - take_rest;
    if fill && left > 0 {
        return INF;
    }
    // Small terms (the usual case): nothing can saturate, the sum stays below INF.
    const SMALL: u64 = 1 << 36;
    if (first as u64) < SMALL && (rest as u64) < SMALL && (pen as u64) < SMALL && q < 1 << 20 {
        return first * take_first as i64 + rest * take_rest as i64 + pen * left as i64;
    }
    mul(first, take_first).saturating_add(mul(rest, take_rest)).saturating_add(mul(pen, left))
}

/// What the entries of the nodes a superset bound adds pay for (see `Search::bound`).
#[derive(Clone, Copy)]
enum Added {
    /// Their regular package.
    Regular,
    /// Ship-alone units, first units of any lines (a relaxation for several nodes).
    FreeAll,
    /// One added node: the first unit of ship-alone line `j`.
    FreeOne(usize),
}

/// The added nodes' option for a line: `units` at their cheapest unit `first`, except that
/// beyond one per added node (`room`) they pay at least `full` (ship-alone packages).
fn push_added(out: &mut Vec<(i64, u64)>, first: i64, full: i64, units: u64, room: u64) {
    let cheap = units.min(room);
    out.push((first, cheap));
    if units > cheap {
        out.push((full, units - cheap));
    }
}

/// Constants of one group for the bounds of single candidates.
struct OnePre {
    /// Per line: the relaxation for a candidate that cannot serve it, alone and with the
    /// option of the added nodes.
    none_alone: Vec<i64>,
    none_with: Vec<i64>,
    /// Per line: the added nodes' option (cheapest unit ×1000 of any candidate, units).
    agg: Vec<(i64, u64)>,
    /// Per line subset (groups of at most `ENUM_LINES` lines): lower bound ×1000 on the
    /// entries of 1..=max_nodes − 1 added nodes serving those lines.
    fix: Option<Vec<i64>>,
    /// Σ of the cheapest conceivable cost of every line, plus one added node's entry
    /// (×1000): a candidate's entry plus this bounds every multi-node plan with it.
    cheap: i64,
}

/// Seeding: greedy extensions from this many best single candidates …
const SEED_STARTS: usize = 3;
/// … trying the shortlisted candidates: this many per line (the cheapest to serve it) …
const SEED_PER_LINE: usize = 3;
/// … and solving this many best extensions at every step. Candidates are picked among the
/// best `SEED_POOL` by each score, one per profile.
const SEED_BRANCHES: usize = 2;
const SEED_POOL: usize = 12;

/// Keeps in `top` the `SEED_POOL` least `(score, candidate)`, ascending.
fn push_best(top: &mut Vec<(i64, usize)>, v: i64, c: usize) {
    if top.len() == SEED_POOL && (v, c) >= top[SEED_POOL - 1] {
        return;
    }
    let at = top.partition_point(|&x| x < (v, c));
    top.insert(at, (v, c));
    top.truncate(SEED_POOL);
}

/// Largest set, and most package-choice combinations, whose bound accounts packages
/// exactly (see `Search::bound`).
const REFINED_NODES: usize = 4;
const REFINED_CHOICES: usize = 256;

/// Node sets bounded (without solving their allocation) per unit of `max_sets`.
const BOUNDS_PER_SET: u64 = 16;

struct Search<'g, 'r> {
    g: &'g Group<'r>,
    /// Node id of each candidate.
    ids: Ids<'g>,
    opts: SearchOptions,
    sets: u32,
    leaves: u64,
    bounds: u64,
    exhausted: bool,
    /// Budget spent: nothing more is searched.
    stopped: bool,
    /// The best three plans with distinct sets, cheapest first (ties: lowest node ids).
    top: Vec<Found>,
    /// Lowest bound among subtrees skipped for lack of budget.
    open_bound: i64,
    cover: Option<CoverTable>,
    /// min(0, cheapest entry): what each further node could at most take off a bound.
    neg_entry: i64,
    alloc: Alloc,
    buf: Vec<(i64, u64)>,
    /// Lines a superset bound may hand to the added nodes: (δ ×1000, cover entry, line).
    delta: Vec<(i64, i64, usize)>,
    /// Scratch for `bound`: each node's package choices, and memoized line values.
    choices: [Vec<usize>; REFINED_NODES],
    memo: Vec<(i64, i64)>,
    /// Layout of `memo`: per line `memo_masks` node masks × 3 added-node states (refined
    /// values), then from `memo_plain` 3 per line (plain values).
    memo_masks: usize,
    memo_plain: usize,
    /// Scratch for superset bounds: (lines, largest cover entry, saving) per subset.
    subsets: Vec<(u64, i64, i64)>,
    /// The plain relaxation of each line over the last set bounded (see `plain_line`).
    plain: PlainLines,
    /// Scratch for `allocate`: positions in profile order, profiles, twins.
    canon: Vec<(u32, usize)>,
    key: Vec<u32>,
    twin: Vec<usize>,
    /// Profile id per candidate (`u32::MAX`: not yet known), and the ids by profile.
    profiles: Vec<u32>,
    profile_ids: FxMap<Vec<i64>, u32>,
    /// Solved sets by their sorted profile ids: the limit used, and the best allocation
    /// (cost, units by position in profile order) if one was within it.
    solved: FxMap<Vec<u32>, SolvedSet>,
    /// Per candidate, its entry in `companion_sets` (`u32::MAX`: none): dominators of which
    /// a top-three set with the candidate holds all but two (see `drop_dominated`).
    companions: Vec<u32>,
    companion_sets: Vec<(usize, Vec<usize>)>,
}

/// Per line, the plain relaxation over one node set alone: known yet, its value and its
/// segments after `settle`.
#[derive(Default)]
struct PlainLines {
    set: Vec<usize>,
    known: Vec<bool>,
    alone: Vec<i64>,
    segments: Vec<Vec<(i64, u64)>>,
}

/// The search's maps are keyed by short vectors of small integers built by the search
/// itself: FxHash is enough and much cheaper than SipHash.
type FxMap<K, V> = HashMap<K, V, crate::hash::FxBuildHasher>;

/// A solved set's limit and best allocation within it.
type SolvedSet = (i64, Option<(i64, Vec<u64>)>);

impl Search<'_, '_> {
    fn cmp_sets(&self, a: &[usize], b: &[usize]) -> std::cmp::Ordering {
        for (&x, &y) in a.iter().zip(b) {
            let o = self.ids.cmp(x, y);
            if o.is_ne() {
                return o;
            }
        }
        a.len().cmp(&b.len())
    }

    /// Costs above this cannot enter the top three (bounds equal to it might).
    fn threshold(&self) -> i64 {
        if self.top.len() < 3 { INF - 1 } else { self.top[2].cost }
    }

    /// Highest cost with which a plan over `set` (node id order) enters the top three.
    fn limit_for(&self, set: &[usize]) -> i64 {
        match self.top.get(2) {
            None => INF - 1,
            Some(t) if self.cmp_sets(set, &t.set).is_lt() => t.cost,
            Some(t) => t.cost - 1,
        }
    }

    fn offer(&mut self, found: Found) {
        if let Some(t) = self.top.iter_mut().find(|t| t.set == found.set) {
            if found.cost < t.cost {
                *t = found;
            }
        } else {
            self.top.push(found);
        }
        let mut top = std::mem::take(&mut self.top);
        top.sort_by(|a, b| a.cost.cmp(&b.cost).then_with(|| self.cmp_sets(&a.set, &b.set)));
        top.truncate(3);
        self.top = top;
    }

    fn budget_left(&self) -> bool {
        self.sets < self.opts.max_sets && self.leaves < u64::from(self.opts.max_leaves)
    }

    /// Solves the allocation of `set` (any order) whose bound is `bound`, if the budget
    /// allows; else records the bound as open and stops the search.
    fn allocate(&mut self, set: &[usize], bound: i64) -> Option<i64> {
        let mut sorted = set.to_vec();
        sorted.sort_by(|&a, &b| self.ids.cmp(a, b));
        let limit = self.limit_for(&sorted);
        if bound > limit {
            return None;
        }
        // Sets of the same node profiles have the same allocations and costs.
        let mut canon = std::mem::take(&mut self.canon);
        canon.clear();
        for (k, &c) in sorted.iter().enumerate() {
            canon.push((self.profile(c), k));
        }
        canon.sort_unstable();
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend(canon.iter().map(|&(p, _)| p));
        let outcome = self.allocate_canon(sorted, bound, limit, &canon, &key);
        self.canon = canon;
        self.key = key;
        outcome
    }

    /// `allocate` for `sorted` (node id order) within `limit`, its positions in profile
    /// order `canon` and its profiles `key`.
    fn allocate_canon(
        &mut self,
        sorted: Vec<usize>,
        bound: i64,
        limit: i64,
        canon: &[(u32, usize)],
        key: &[u32],
    ) -> Option<i64> {
        let nl = self.g.nl();
        let m = sorted.len();
        if let Some((seen_limit, result)) = self.solved.get(key) {
            match result {
                Some((cost, units)) => {
                    let cost = *cost;
                    if cost > limit {
                        return None;
                    }
                    // Cached units are by canonical position; map them to this set's.
                    let mut mine = vec![0u64; nl * m];
                    for (j, &(_, k)) in canon.iter().enumerate() {
                        for l in 0..nl {
                            mine[l * m + k] = units[l * m + j];
                        }
                    }
                    self.offer(Found { cost, set: sorted, units: mine });
                    return Some(cost);
                }
                None if limit <= *seen_limit => return None,
                None => {}
            }
        }
        if !self.budget_left() {
            self.stop(bound);
            return None;
        }
        self.sets += 1;
        let max_steps = u64::from(self.opts.max_leaves) - self.leaves;
        let mut twin = std::mem::take(&mut self.twin);
        twin.clear();
        for k in 0..m {
            let pk = self.profile(sorted[k]);
            twin.push((0..k).rev().find(|&j| self.profile(sorted[j]) == pk).unwrap_or(usize::MAX));
        }
        self.alloc.solve(self.g, &sorted, &twin, limit, max_steps);
        self.twin = twin;
        self.leaves += self.alloc.steps.min(max_steps);
        if self.alloc.cut {
            self.stop(bound);
        }
        let found = (self.alloc.best_cost < INF).then(|| (self.alloc.best_cost, self.alloc.best_x.clone()));
        if !self.alloc.cut {
            let cached = found.as_ref().map(|(cost, x)| {
                let mut units = vec![0u64; nl * m];
                for (j, &(_, k)) in canon.iter().enumerate() {
                    for l in 0..nl {
                        units[l * m + j] = x[l * m + k];
                    }
                }
                (*cost, units)
            });
            self.solved.insert(key.to_vec(), (limit, cached));
        }
        let (cost, units) = found?;
        self.offer(Found { cost, set: sorted, units });
        Some(cost)
    }

    /// The profile of a candidate: equal profiles mean equal costs and feasibility for
    /// every allocation (cost terms, eligibility, stock and capacity up to what the lines
    /// ask, aging).
    fn profile(&mut self, c: usize) -> u32 {
        if self.profiles.is_empty() {
            self.profiles = vec![u32::MAX; self.g.cands.len()];
        }
        if self.profiles[c] != u32::MAX {
            return self.profiles[c];
        }
        let g = self.g;
        let (nl, ns) = (g.nl(), g.slots);
        let x = &g.cands[c];
        let (slot_qty, total) = (&g.slot_qty, g.qty_total);
        let emissions_on = g.cost.co2_g_per_kg_km > 0 && g.cost.emissions_minor_per_kg_co2 > 0;
        let km = if emissions_on { x.km_ceil } else { 0 };
        let mut key: Vec<i64> = vec![x.fixed, x.per_unit, x.base, x.per_kg, km, x.unit_cap.min(total) as i64];
        key.extend(g.avail[c * nl..(c + 1) * nl].iter().map(|&a| a as i64));
        key.extend((0..ns).map(|s| g.stock[c * ns + s].min(slot_qty[s]) as i64));
        if g.bonus_milli > 0 {
            key.extend((0..ns).map(|s| g.aging[c * ns + s].min(slot_qty[s]) as i64));
        }
        let next = self.profile_ids.len() as u32;
        let id = *self.profile_ids.entry(key).or_insert(next);
        self.profiles[c] = id;
        id
    }

    /// Seeds the top three with multi-node plans before the exhaustive search, so that
    /// its threshold starts low: from each of the best single candidates, greedily adds
    /// the shortlisted candidate with the best set bound (solving the two best sets of
    /// every step).
    fn seed(&mut self, starts: &[usize], shortlist: &[usize]) {
        let k = self.g.max_nodes;
        let mut set: Vec<usize> = Vec::with_capacity(k);
        for &s in starts {
            set.clear();
            set.push(s);
            while set.len() < k && !self.stopped {
                let mut best = [(INF, usize::MAX); SEED_BRANCHES];
                for &c in shortlist {
                    if set.contains(&c) {
                        continue;
                    }
                    set.push(c);
                    let b = self.set_bound(&set);
                    set.pop();
                    if let Some(at) = best.iter().position(|&(bb, bc)| (b, c) < (bb, bc)) {
                        best[at..].rotate_right(1);
                        best[at] = (b, c);
                    }
                }
                let mut next = None;
                for &(b, c) in &best {
                    if b > self.threshold() || self.stopped {
                        break;
                    }
                    set.push(c);
                    let cost = self.allocate(&set, b).unwrap_or(INF);
                    set.pop();
                    if next.is_none_or(|(nc, _)| cost < nc) {
                        next = Some((cost, c));
                    }
                }
                match next {
                    Some((_, c)) => set.push(c),
                    None => break,
                }
            }
        }
    }

    fn stop(&mut self, bound: i64) {
        self.exhausted = true;
        self.stopped = true;
        self.open_bound = self.open_bound.min(bound);
    }

    /// Counts one bound evaluation against the budget.
    fn count_bound(&mut self) -> bool {
        self.bounds += 1;
        self.bounds <= u64::from(self.opts.max_sets) * BOUNDS_PER_SET
    }

    /// The relaxation of line `l` (which `c` can serve) over candidate `c` alone, and with
    /// one more option `extra` (INF unit: none); groups without ship-alone lines.
    fn line_pair(&mut self, c: usize, l: usize, extra: (i64, u64)) -> (i64, i64) {
        let g = self.g;
        let line = &g.lines[l];
        let a = g.avail[c * g.nl() + l];
        let (q, pen, fill) = (line.qty, line.penalty_milli, g.all_or_nothing);
        if g.aged(c, l, a) == 0 {
            let u = g.unit[c * g.nl() + l];
            let alone = settle(&mut [(u, a)], q, pen, fill);
            let with = if extra.0 < INF { settle(&mut [(u, a), extra], q, pen, fill) } else { alone };
            (alone, with)
        } else {
            self.buf.clear();
            g.push_segments(c, l, a, true, &mut self.buf);
            let alone = settle(&mut self.buf, q, pen, fill);
            let with = if extra.0 < INF {
                self.buf.push(extra);
                settle(&mut self.buf, q, pen, fill)
            } else {
                alone
            };
            (alone, with)
        }
    }

    /// `set_bound(&[c])`, faster; with ship-alone lines the plain relaxation (package
    /// choices are accounted for when the candidate is solved).
    fn single_bound(&mut self, c: usize, pre: &OnePre) -> i64 {
        let g = self.g;
        let nl = g.nl();
        if g.bonus_milli == 0 {
            let row = c * nl..(c + 1) * nl;
            let cand = &g.cands[c];
            let terms = (g.all_or_nothing, g.split_penalty);
            return plain_single_bound(
                &g.lines,
                terms,
                &g.unit[row.clone()],
                &g.avail[row],
                cand.entry,
                cand.alone_extra,
            );
        }
        if g.has_alone {
            return self.bound(&[c], None, -INF);
        }
        let mut total = g.entry_milli(&[c]);
        for l in 0..nl {
            let a = g.avail[c * nl + l];
            let v = if a == 0 { pre.none_alone[l] } else { self.line_pair(c, l, (INF, 0)).0 };
            if v >= INF {
                return INF;
            }
            total = total.saturating_add(v);
        }
        floor_milli(total)
    }

    /// Lower bound on plans of two or more nodes that use `c`: `ext_bound(&[c], all, k − 1)`,
    /// faster, with the entries of the added nodes tabled per line subset.
    fn multi_bound(&mut self, c: usize, pre: &OnePre, all: &Agg) -> i64 {
        let g = self.g;
        let nl = g.nl();
        let (Some(fix), false) = (&pre.fix, g.has_alone) else {
            return self.ext_bound(&[c], all.at(0), g.max_nodes - 1);
        };
        let mut sum = g.entry_milli(&[c]);
        let mut mandatory = 0usize;
        let mut d = 0usize;
        let mut deltas = [0i64; ENUM_LINES];
        let mut bits = [0usize; ENUM_LINES];
        for l in 0..nl {
            let (alone, with) = if g.avail[c * nl + l] == 0 {
                (pre.none_alone[l], pre.none_with[l])
            } else {
                self.line_pair(c, l, pre.agg[l])
            };
            if with >= INF {
                return INF;
            }
            if alone >= INF {
                sum = sum.saturating_add(with);
                mandatory |= 1 << l;
            } else {
                sum = sum.saturating_add(alone);
                if with < alone {
                    deltas[d] = with - alone;
                    bits[d] = 1 << l;
                    d += 1;
                }
            }
        }
        let mut sums = [0i64; 1 << ENUM_LINES];
        let mut masks = [0usize; 1 << ENUM_LINES];
        masks[0] = mandatory;
        let mut best = fix[mandatory];
        for t in 1..(1usize << d) {
            let low = t.trailing_zeros() as usize;
            let prev = t & (t - 1);
            sums[t] = sums[prev].saturating_add(deltas[low]);
            masks[t] = masks[prev] | bits[low];
            best = best.min(fix[masks[t]].saturating_add(sums[t]));
        }
        if best >= INF {
            return INF;
        }
        floor_milli(sum.saturating_add(best))
    }

    fn one_pre(&self, all: &Agg) -> OnePre {
        let g = self.g;
        let nl = g.nl();
        let room = g.max_nodes.saturating_sub(1).max(1);
        let others = mul(self.neg_entry, room as u64 - 1);
        let floor_entry = all.min_entry.first().copied().unwrap_or(INF).saturating_add(others);
        let mut pre = OnePre {
            none_alone: Vec::with_capacity(nl),
            none_with: Vec::with_capacity(nl),
            agg: Vec::with_capacity(nl),
            fix: None,
            cheap: 0,
        };
        let mut cheap = floor_entry.saturating_mul(1000);
        for (l, line) in g.lines.iter().enumerate() {
            let (q, pen, fill) = (line.qty, line.penalty_milli, g.all_or_nothing);
            let alone = settle(&mut [], q, pen, fill);
            let unit = all.min_unit.get(l).copied().unwrap_or(INF);
            let units = q.min(all.max_avail.get(l).copied().unwrap_or(0).saturating_mul(room as u64));
            let with = if unit < INF { settle(&mut [(unit, units)], q, pen, fill) } else { alone };
            let full = all.min_full.get(l).copied().unwrap_or(INF);
            let any = if unit < INF {
                // `push_added(…, unit, full, q, max_nodes)` without a vector.
                let cheap = q.min(g.max_nodes as u64);
                let mut opts = [(unit, cheap), (full, q - cheap)];
                settle(&mut opts[..if q > cheap { 2 } else { 1 }], q, pen, fill)
            } else {
                alone
            };
            pre.none_alone.push(alone);
            pre.none_with.push(with);
            pre.agg.push((unit, units));
            cheap = if any >= INF || cheap >= INF { INF } else { cheap.saturating_add(any) };
        }
        pre.cheap = cheap;
        pre
    }

    /// Adds `OnePre::fix` (after the cover table is built: it reads it).
    fn one_pre_fix(&self, all: &Agg, pre: &mut OnePre) {
        let nl = self.g.nl();
        let room = self.g.max_nodes.saturating_sub(1).max(1);
        let others = mul(self.neg_entry, room as u64 - 1);
        let floor_entry = all.min_entry.first().copied().unwrap_or(INF).saturating_add(others);
        if nl <= ENUM_LINES && floor_entry < INF {
            let size = 1usize << nl;
            let mut cover_max = vec![i64::MIN; size];
            let mut fix = vec![INF; size];
            for x in 0..size {
                if x > 0 {
                    let low = x.trailing_zeros() as usize;
                    cover_max[x] = cover_max[x & (x - 1)].max(all.cover[low]);
                }
                let mut entry = if x == 0 { floor_entry } else { floor_entry.max(cover_max[x].saturating_add(others)) };
                if let Some(table) = &self.cover {
                    entry = entry.max(table.get(room, x as u64));
                }
                fix[x] = if entry >= INF { INF } else { entry.saturating_mul(1000) };
            }
            pre.fix = Some(fix);
        }
    }

    /// Lower bound on plans over exactly `set` (see `bound`).
    fn set_bound(&mut self, set: &[usize]) -> i64 {
        let cutoff = self.threshold();
        self.bound(set, None, cutoff)
    }

    /// Lower bound on plans over `set` plus 1..=`room` more nodes described by `agg`.
    fn ext_bound(&mut self, set: &[usize], agg: AggView<'_>, room: usize) -> i64 {
        if room == 0 || agg.min_entry >= INF {
            return INF;
        }
        let cutoff = self.threshold();
        self.bound(set, Some((agg, room)), cutoff)
    }

    /// Lower bound on plans over `set`, exactly or plus 1..=room nodes described by an
    /// aggregate.
    ///
    /// *The set*: Σ entry − split penalty, plus per line the linear relaxation over the
    /// set's nodes. Package accounting is exact: a node's entry pays for one package,
    /// either its regular package (the node may then serve regular lines, and each of its
    /// ship-alone units pays its own package) or the first unit of one ship-alone line (it
    /// then serves no regular line). The bound is the least over these choices (sets of
    /// at most `REFINED_NODES` nodes and `REFINED_CHOICES` combinations; beyond, all
    /// choices at once, which is weaker).
    ///
    /// *Added nodes*: per line one more option, their cheapest unit, for at most `room` ×
    /// their largest stock. The lines T they serve cost their entries: at least the
    /// cheapest entry among them, the cheapest entry of a node able to serve each line of
    /// T, and (cover table) the cheapest Σ entry of `room` nodes able to serve all of T.
    /// The least over T.
    ///
    /// Callers compare the bound with `cutoff`: the plain relaxation (every choice at
    /// once, never above) is tried first, and once a choice is found at or below `cutoff`
    /// the plain value is returned.
    fn bound(&mut self, set: &[usize], ext: Option<(AggView<'_>, usize)>, cutoff: i64) -> i64 {
        let g = self.g;
        let (m, nl) = (set.len(), g.nl());
        let mut counts = [1usize; REFINED_NODES];
        let mut refined = g.has_alone && m <= REFINED_NODES && nl <= 64;
        if refined {
            let mut combos = 1usize;
            for (k, &c) in set.iter().enumerate() {
                let cand = &g.cands[c];
                let ch = &mut self.choices[k];
                ch.clear();
                if cand.kinds & 1 != 0 || cand.alone_extra == 0 {
                    ch.push(0);
                }
                if cand.alone_extra != 0 {
                    ch.extend((0..nl).filter(|&l| g.lines[l].ship_alone && g.avail[c * nl + l] > 0).map(|l| l + 1));
                }
                if ch.is_empty() {
                    ch.push(0);
                }
                counts[k] = ch.len();
                combos = combos.saturating_mul(ch.len());
            }
            refined = combos <= REFINED_CHOICES;
        }
        let size = if refined { 1usize << m } else { 0 };
        self.memo.clear();
        self.memo.resize(3 * nl * (size + 1), (i64::MIN, 0));
        self.memo_masks = size;
        self.memo_plain = 3 * nl * size;
        // What the added nodes' entries pay for: their regular package, or else ship-alone
        // units (one added node: the first unit of one line, tried for each).
        let variants = |search: &mut Self, refined: bool, choice: &[usize; REFINED_NODES]| -> i64 {
            let mut v = search.bound_combination(set, ext, (refined, Added::Regular), choice);
            if let Some((agg, room)) = ext
                && g.has_alone
            {
                if room == 1 {
                    let mut any = false;
                    for j in (0..nl).filter(|&j| g.lines[j].ship_alone && agg.min_unit[j] < INF) {
                        any = true;
                        v = v.min(search.bound_combination(set, ext, (refined, Added::FreeOne(j)), choice));
                    }
                    if !any {
                        v = v.min(search.bound_combination(set, ext, (refined, Added::FreeAll), choice));
                    }
                } else {
                    v = v.min(search.bound_combination(set, ext, (refined, Added::FreeAll), choice));
                }
            }
            v
        };
        let plain = variants(self, false, &[0; REFINED_NODES]);
        if !refined || plain > cutoff {
            return plain;
        }
        let mut pick = [0usize; REFINED_NODES];
        let mut best = INF;
        loop {
            // This combination: per node, 0 = it sends a regular package, j + 1 = its
            // first unit of ship-alone line j rides its entry.
            let mut choice = [0usize; REFINED_NODES];
            for k in 0..m {
                choice[k] = self.choices[k][pick[k]];
            }
            let v = variants(self, true, &choice);
            if v <= cutoff {
                return plain;
            }
            best = best.min(v);
            // Next combination.
            let mut k = 0;
            while k < m {
                pick[k] += 1;
                if pick[k] < counts[k] {
                    break;
                }
                pick[k] = 0;
                k += 1;
            }
            if k == m {
                break;
            }
        }
        best.max(plain)
    }

    /// The relaxation of line `l` over `set` (alone, and with the added nodes' option),
    /// for the nodes of `mask` (regular lines: those sending a regular package; ship-alone
    /// lines: those whose first unit rides their entry); `mask` is ignored (every node,
    /// every first unit) unless `refined`. Memoized per call of `bound`.
    fn line_values(
        &mut self,
        set: &[usize],
        ext: Option<(AggView<'_>, usize)>,
        l: usize,
        (refined, mask, state): (bool, usize, usize),
    ) -> (i64, i64) {
        let g = self.g;
        let nl = g.nl();
        let slot = state + if refined { 3 * (l * self.memo_masks + mask) } else { self.memo_plain + 3 * l };
        if self.memo[slot].0 != i64::MIN {
            return self.memo[slot];
        }
        let line = &g.lines[l];
        let alone = if refined {
            self.buf.clear();
            for (k, &c) in set.iter().enumerate() {
                let a = g.avail[c * nl + l];
                if a == 0 {
                    continue;
                }
                let inside = mask & (1 << k) != 0;
                if line.ship_alone {
                    g.push_segments(c, l, a, inside, &mut self.buf);
                } else if inside {
                    g.push_segments(c, l, a, true, &mut self.buf);
                }
            }
            settle(&mut self.buf, line.qty, line.penalty_milli, g.all_or_nothing)
        } else {
            self.plain_line(set, l)
        };
        let with = match ext {
            // State 0: the added nodes send a regular package (they may serve regular lines;
            // one of their entries is spent); 1: they do not, and this line's first units
            // may ride their entries; 2: they do not, and this line's units pay packages
            // except beyond the first added node.
            Some((agg, room)) if agg.min_unit[l] < INF && (line.ship_alone || state == 0) => {
                let units = line.qty.min(agg.max_avail[l].saturating_mul(room as u64));
                let free = if state == 1 { room as u64 } else { room as u64 - 1 };
                push_added(&mut self.buf, agg.min_unit[l], agg.min_full[l], units, free);
                settle(&mut self.buf, line.qty, line.penalty_milli, g.all_or_nothing)
            }
            _ => alone,
        };
        self.memo[slot] = (alone, with);
        (alone, with)
    }

    /// The plain relaxation of line `l` over `set` alone (every node, every first unit),
    /// leaving its segments in `buf` as `settle` ordered them. Kept for the last set asked
    /// about: the superset bounds of one prefix over successive suffixes share it.
    fn plain_line(&mut self, set: &[usize], l: usize) -> i64 {
        let g = self.g;
        let nl = g.nl();
        let plain = &mut self.plain;
        if plain.set.as_slice() != set || plain.known.len() != nl {
            plain.set.clear();
            plain.set.extend_from_slice(set);
            plain.known.clear();
            plain.known.resize(nl, false);
            plain.alone.resize(nl, 0);
            plain.segments.resize_with(nl, Vec::new);
        }
        self.buf.clear();
        if plain.known[l] {
            self.buf.extend_from_slice(&plain.segments[l]);
            return plain.alone[l];
        }
        for &c in set {
            let a = g.avail[c * nl + l];
            if a > 0 {
                g.push_segments(c, l, a, true, &mut self.buf);
            }
        }
        let line = &g.lines[l];
        let alone = settle(&mut self.buf, line.qty, line.penalty_milli, g.all_or_nothing);
        plain.known[l] = true;
        plain.alone[l] = alone;
        plain.segments[l].clear();
        plain.segments[l].extend_from_slice(&self.buf);
        alone
    }

    /// One combination of `bound`: the set's package choices and what the added nodes'
    /// entries pay for.
    fn bound_combination(
        &mut self,
        set: &[usize],
        ext: Option<(AggView<'_>, usize)>,
        (refined, added): (bool, Added),
        choice: &[usize; REFINED_NODES],
    ) -> i64 {
        let g = self.g;
        let m = set.len().min(REFINED_NODES);
        // The nodes of a line's mask: regular lines, those sending a regular package;
        // ship-alone line l, those whose first unit of it rides their entry.
        let mask_of = |line: &GLine, l: usize| -> usize {
            let want = if line.ship_alone { l + 1 } else { 0 };
            (0..m).filter(|&k| choice[k] == want).fold(0, |acc, k| acc | 1 << k)
        };
        let mut sum = g.entry_milli(set);
        let Some((agg, room)) = ext else {
            for (l, line) in g.lines.iter().enumerate() {
                let mask = if refined { mask_of(line, l) } else { 0 };
                let (alone, _) = self.line_values(set, None, l, (refined, mask, 0));
                if alone >= INF {
                    return INF;
                }
                sum = sum.saturating_add(alone);
            }
            return floor_milli(sum);
        };
        let others = mul(self.neg_entry, room as u64 - 1);
        let mut mandatory = 0u64;
        let mut mandatory_cover = i64::MIN;
        let mut delta = std::mem::take(&mut self.delta);
        delta.clear();
        for (l, line) in g.lines.iter().enumerate() {
            let mask = if refined { mask_of(line, l) } else { 0 };
            let state = match added {
                Added::Regular => 0,
                Added::FreeAll => 1,
                Added::FreeOne(j) => {
                    if j == l {
                        1
                    } else {
                        2
                    }
                }
            };
            let (alone, with) = self.line_values(set, ext, l, (refined, mask, state));
            if with >= INF {
                self.delta = delta;
                return INF;
            }
            if alone >= INF {
                sum = sum.saturating_add(with);
                if l < 64 {
                    mandatory |= 1 << l;
                }
                mandatory_cover = mandatory_cover.max(agg.cover[l]);
            } else {
                sum = sum.saturating_add(alone);
                if with < alone {
                    delta.push((with - alone, agg.cover[l], l));
                }
            }
        }
        let floor_entry = agg.min_entry.saturating_add(others);
        let fix = |cover_max: i64| -> i64 {
            if cover_max == i64::MIN { floor_entry } else { floor_entry.max(cover_max.saturating_add(others)) }
        };
        let mut best;
        match &self.cover {
            Some(table) if delta.len() <= ENUM_LINES => {
                // Every subset T of the lines with a saving, built from T minus its lowest.
                let n = 1usize << delta.len();
                let subsets = &mut self.subsets;
                subsets.clear();
                subsets.push((mandatory, mandatory_cover, 0));
                best = fix(mandatory_cover).max(table.get(room, mandatory)).saturating_mul(1000);
                for t in 1..n {
                    let (pm, pc, ps) = subsets[t & (t - 1)];
                    let (dl, cov, l) = delta[t.trailing_zeros() as usize];
                    let (mask, cover, saving) = (pm | 1 << l, pc.max(cov), ps.saturating_add(dl));
                    subsets.push((mask, cover, saving));
                    let entry = fix(cover).max(table.get(room, mask));
                    best = best.min(entry.saturating_mul(1000).saturating_add(saving));
                }
            }
            table => {
                // Lines taken in order of their cover entry: the best T with a given
                // largest cover entry takes every line whose cover is at most it.
                delta.sort_unstable_by_key(|d| (d.1, d.2));
                let mut entry = fix(mandatory_cover);
                if let Some(table) = table {
                    entry = entry.max(table.get(room, mandatory));
                }
                best = entry.saturating_mul(1000);
                let mut d = 0i64;
                let mut cover_max = mandatory_cover;
                for &(dl, cov, _) in delta.iter() {
                    d = d.saturating_add(dl);
                    cover_max = cover_max.max(cov);
                    best = best.min(fix(cover_max).saturating_mul(1000).saturating_add(d));
                }
            }
        }
        self.delta = delta;
        if best >= INF {
            return INF;
        }
        floor_milli(sum.saturating_add(best))
    }

    /// Whether `set` holds the companions its candidates need (see `drop_dominated`), and
    /// whether it still can with `room` more nodes.
    fn companions_held(&self, set: &[usize], room: usize) -> (bool, bool) {
        if self.companion_sets.is_empty() {
            return (true, true);
        }
        let mut complete = true;
        for &b in set {
            let i = self.companions[b];
            if i == u32::MAX {
                continue;
            }
            let doms = &self.companion_sets[i as usize].1;
            let need = doms.len() - 2;
            let have = set.iter().filter(|x| doms.contains(x)).count();
            if have < need {
                complete = false;
                if have + room < need {
                    return (false, false);
                }
            }
        }
        (complete, true)
    }

    /// Depth-first over multi-node sets of the pool, in pool order (ascending multi-node
    /// bound, so a candidate beyond the threshold ends the loop).
    fn sets_from(
        &mut self,
        pool: &[usize],
        agg: &Agg,
        multi_bound: &[i64],
        prefix: &mut Vec<usize>,
        positions: std::ops::Range<usize>,
    ) {
        let k = self.g.max_nodes;
        let mut end = positions.end;
        if !prefix.is_empty() {
            // Suffix cut: every set extending the prefix with nodes from position p on is
            // bounded by its superset bound over that suffix, which grows with p; the
            // first p beyond the threshold ends the loop.
            let room = k.saturating_sub(prefix.len());
            let (mut lo, mut hi) = (positions.start, end);
            if lo < hi {
                // Most prefixes end here: nothing after them is worth it.
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    return;
                }
                if self.ext_bound(prefix, agg.at(lo), room) > self.threshold() {
                    hi = lo;
                } else {
                    lo += 1;
                }
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    return;
                }
                if self.ext_bound(prefix, agg.at(mid), room) > self.threshold() {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            end = lo;
        }
        for pos in positions.start..end {
            if self.stopped {
                return;
            }
            let c = pool[pos];
            if multi_bound[c] > self.threshold() {
                break;
            }
            prefix.push(c);
            let room = k.saturating_sub(prefix.len());
            let (complete, possible) = self.companions_held(prefix, room);
            if !possible {
                prefix.pop();
                continue;
            }
            if prefix.len() >= 2 && complete {
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    prefix.pop();
                    return;
                }
                let bound = self.set_bound(prefix);
                if bound <= self.threshold() {
                    let set = prefix.clone();
                    let _ = self.allocate(&set, bound);
                }
            }
            if room > 0 && pos + 1 < pool.len() && !self.stopped {
                self.sets_from(pool, agg, multi_bound, prefix, pos + 1..pool.len());
            }
            prefix.pop();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Entry point

fn is_ship_type(m: FulfillmentMethod) -> bool {
    matches!(m, FulfillmentMethod::Ship | FulfillmentMethod::SameDay | FulfillmentMethod::ShipToStore)
}

/// Stock of the order's distinct SKUs at the nodes holding any: one row per such node,
/// (atp, aging) per SKU in `skus` order.
struct OrderStock<'a> {
    skus: Vec<&'a Sku>,
    /// Per node index: its row, or `NO_ROW` (row 0, all zeros).
    row_of: Vec<u32>,
    rows: Vec<(u64, u64)>,
}

const NO_ROW: u32 = 0;

impl OrderStock<'_> {
    /// The stock of node `node` (zeros when it holds none of the SKUs).
    fn row(&self, node: usize) -> &[(u64, u64)] {
        let k = self.skus.len();
        match self.row_of.get(node) {
            Some(&r) => self.rows.get(r as usize * k..(r as usize + 1) * k).unwrap_or(&[]),
            None => &[],
        }
    }

    fn index(&self, sku: &Sku) -> Option<usize> {
        self.skus.iter().position(|s| *s == sku)
    }

    fn at(&self, sku: &Sku, node: usize) -> (u64, u64) {
        self.index(sku).and_then(|k| self.row(node).get(k).copied()).unwrap_or((0, 0))
    }
}

/// Buffers a decision takes over from the previous one on the same thread (their
/// capacity only: every use starts empty), so that a decision allocates little.
#[derive(Default)]
struct Scratch {
    /// Always empty between decisions (its capacity is what is kept).
    nodes: Vec<NodeState<'static>>,
    holdings: Vec<Holding>,
    row_of: Vec<u32>,
    rows: Vec<(u64, u64)>,
    cands: Vec<Cand>,
    avail: Vec<u64>,
    unit: Vec<i64>,
    stock: Vec<u64>,
    aging: Vec<u64>,
    single_bound: Vec<i64>,
    by_bound: Vec<(i64, usize)>,
    holders: Vec<usize>,
    alloc: Alloc,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

/// Empties `v` and hands it out (its capacity kept).
fn emptied<T>(v: &mut Vec<T>) -> Vec<T> {
    let mut v = std::mem::take(v);
    v.clear();
    v
}

/// Sources an order. Never fails; see [`Decision`].
pub fn source(order: &OrderToSource, net: &dyn SourcingNetwork, policy: &Policy, opts: &SearchOptions) -> Decision {
    let mut scratch = SCRATCH.with(|s| s.take()).unwrap_or_default();
    let mut node_states: Vec<NodeState<'_>> = emptied(&mut scratch.nodes);
    node_states.reserve(net.node_count());
    net.node_states(&mut node_states);
    let nodes = node_states.as_slice();
    let find_node = |id: &NodeId| nodes.iter().position(|n| &n.node.id == id);
    let items: Vec<Option<&Item>> = order.lines.iter().map(|l| net.item(&l.sku)).collect();

    // (Facts are for rules: with none, the fallback applies without them.)
    let facts = || OrderFacts {
        customer_tier: order.customer_tier.clone(),
        channel: order.channel.clone(),
        methods: order.lines.iter().map(|l| l.method).collect(),
        service_levels: order.lines.iter().filter_map(|l| l.service_level.clone()).collect(),
        country: order.country.clone(),
        region: order.region.clone(),
        order_value_minor: order
            .lines
            .iter()
            .map(|l| l.unit_price_minor.saturating_mul(l.quantity.get() as i64))
            .fold(0i64, i64::saturating_add),
        any_hazmat: items.iter().any(|i| i.is_some_and(|i| i.hazmat)),
    };
    let (rule, body) = if policy.rules.is_empty() { (None, &policy.fallback) } else { policy.select(&facts()) };
    let rule_reason = match rule {
        Some(r) => format!("rule {:?} matched: {}", r.name, r.when.describe()),
        None => "no rule matched; the fallback applies".to_owned(),
    };

    let penalty_of = |l: &LineToSource| {
        if l.allow_backorder && body.constraints.allow_backorder {
            body.cost.backorder_penalty_minor
        } else {
            body.cost.unfilled_penalty_minor
        }
    };

    // Stock of the order's SKUs, a row per node holding any (the last holding of a node
    // and SKU counts).
    let mut stock =
        OrderStock { skus: Vec::new(), row_of: emptied(&mut scratch.row_of), rows: emptied(&mut scratch.rows) };
    for line in &order.lines {
        if !stock.skus.contains(&&line.sku) {
            stock.skus.push(&line.sku);
        }
    }
    let k = stock.skus.len();
    stock.row_of.resize(nodes.len(), NO_ROW);
    // (Holdings of every SKU first, rows numbered; then the rows, zeroed at once, filled.)
    let mut buf = emptied(&mut scratch.holdings);
    let mut ends = Vec::with_capacity(k);
    let mut n_rows = 1u32;
    for sku in &stock.skus {
        let start = buf.len();
        net.holdings(sku, &mut buf);
        for h in &buf[start..] {
            if let Some(r) = stock.row_of.get_mut(h.node)
                && *r == NO_ROW
            {
                *r = n_rows;
                n_rows += 1;
            }
        }
        ends.push(buf.len());
    }
    stock.rows.resize(n_rows as usize * k, (0, 0));
    let mut start = 0;
    for (j, &end) in ends.iter().enumerate() {
        for h in &buf[start..end] {
            if let Some(&r) = stock.row_of.get(h.node) {
                stock.rows[r as usize * k + j] = (h.atp.get(), h.aging.get().min(h.atp.get()));
            }
        }
        start = end;
    }
    scratch.holdings = buf;

    let mut packages: Vec<Package> = Vec::new();
    let mut placed: Vec<u64> = vec![0; order.lines.len()];

    // Pickup and curbside lines are pinned to their node: its ATP or nothing.
    let mut pinned_used: HashMap<(usize, &Sku), u64> = HashMap::new();
    let mut pickup_pkgs: HashMap<usize, Package> = HashMap::new();
    // Node indices of the packages, for the explanation's `chosen`.
    let mut chosen_nodes: Vec<usize> = Vec::new();
    for (i, line) in order.lines.iter().enumerate() {
        if is_ship_type(line.method) {
            continue;
        }
        let Some(ni) = line.pickup_node.as_ref().and_then(find_node) else { continue };
        let st = &nodes[ni];
        let ok = st.node.is_active()
            && st.node.has(line.method.required_capability())
            && items[i].is_some_and(|it| it.allows(line.method));
        if !ok {
            continue;
        }
        let used = pinned_used.entry((ni, &line.sku)).or_default();
        let avail = stock.at(&line.sku, ni).0.saturating_sub(*used);
        let take = avail.min(line.quantity.get());
        if take == 0 {
            continue;
        }
        *used += take;
        placed[i] = take;
        let pkg = pickup_pkgs.entry(ni).or_insert_with(|| Package {
            node_id: st.node.id.clone(),
            kind: PackageKind::Pickup,
            lines: Vec::new(),
            weight_g: 0,
            cost: CostBreakdown { handling: st.node.costs.per_order_minor, ..Default::default() },
        });
        pkg.lines.push(LineQty { line_id: line.line_id.clone(), sku: line.sku.clone(), quantity: qty(take) });
        pkg.weight_g += u64::from(items[i].map_or(0, |it| it.weight_g)) * take;
        pkg.cost.handling += st.node.costs.per_unit_minor * take as i64;
    }
    chosen_nodes.extend(pickup_pkgs.keys());
    let mut pickup_list: Vec<Package> = pickup_pkgs.into_values().collect();
    pickup_list.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    for p in &mut pickup_list {
        p.cost.sum();
    }
    packages.extend(pickup_list);

    // Ship-type lines, grouped by destination.
    let mut groups: Vec<(Option<GeoPoint>, Vec<usize>)> = Vec::new();
    for (i, line) in order.lines.iter().enumerate() {
        if !is_ship_type(line.method) {
            continue;
        }
        let dest = if line.method == FulfillmentMethod::ShipToStore {
            line.pickup_node.as_ref().and_then(find_node).map(|ni| nodes[ni].node.location)
        } else {
            order.ship_to
        };
        match groups.iter_mut().find(|(d, _)| *d == dest) {
            Some((_, ls)) => ls.push(i),
            None => groups.push((dest, vec![i])),
        }
    }

    let mut candidates_view = Candidates::default();
    let table = match net.node_table().filter(|t| t.len() == nodes.len()) {
        Some(t) => Arc::clone(t),
        None if groups.is_empty() => Arc::default(),
        None => Arc::new(NodeTable::ids_only(nodes.iter().map(|n| &n.node.id), nodes.len())),
    };
    let mut alternatives: Vec<PlanSummary> = Vec::new();
    let mut sets_evaluated = 0;
    let mut exhausted = false;
    let mut gap = 0i64;
    let ctx =
        GroupCtx { order, nodes, items: &items, body, stock: &stock, pinned_used: &pinned_used, opts, table: &table };
    for (dest, line_idx) in &groups {
        let outcome = source_group(&ctx, *dest, line_idx, &penalty_of, &mut scratch);
        sets_evaluated += outcome.sets;
        exhausted |= outcome.exhausted;
        gap += outcome.gap;
        for (i, u) in outcome.placed {
            placed[i] += u;
        }
        packages.extend(outcome.packages);
        chosen_nodes.extend(outcome.chosen_nodes);
        if candidates_view.is_empty() {
            candidates_view = outcome.candidates;
            alternatives = outcome.alternatives;
        }
    }
    // allow_partial = false: all or nothing.
    let complete = order.lines.iter().enumerate().all(|(i, l)| placed[i] == l.quantity.get());
    if !body.constraints.allow_partial && !complete {
        packages.clear();
        chosen_nodes.clear();
        placed.iter_mut().for_each(|p| *p = 0);
    }

    // Split penalty across the whole order: every package beyond the first. Packages are
    // ordered pickup first, then groups; assign the penalty to all but the first.
    let sp = body.cost.split_penalty_minor;
    for (i, p) in packages.iter_mut().enumerate() {
        p.cost.split_penalty = if i == 0 { 0 } else { sp };
        p.cost.sum();
    }
    let mut backordered = Vec::new();
    let mut unfilled = Vec::new();
    let mut backorder_penalty = 0;
    let mut unfilled_penalty = 0;
    for (i, line) in order.lines.iter().enumerate() {
        let left = line.quantity.get() - placed[i];
        if left == 0 {
            continue;
        }
        let lq = LineQty { line_id: line.line_id.clone(), sku: line.sku.clone(), quantity: qty(left) };
        if line.allow_backorder && body.constraints.allow_backorder {
            backorder_penalty += body.cost.backorder_penalty_minor * left as i64;
            backordered.push(lq);
        } else {
            unfilled_penalty += body.cost.unfilled_penalty_minor * left as i64;
            unfilled.push(lq);
        }
    }
    for &ni in &chosen_nodes {
        candidates_view.choose(ni);
    }
    scratch.row_of = stock.row_of;
    scratch.rows = stock.rows;
    node_states.clear();
    // (Empty: the vector keeps its capacity for the next decision, as a `'static` one.)
    scratch.nodes = node_states.into_iter().map(|_| -> NodeState<'static> { unreachable!() }).collect();
    SCRATCH.with(|s| s.set(Some(scratch)));
    let total = packages.iter().map(|p| p.cost.total).sum::<i64>() + backorder_penalty + unfilled_penalty;
    Decision {
        plan: Plan {
            packages,
            backordered,
            unfilled,
            backorder_penalty_minor: backorder_penalty,
            unfilled_penalty_minor: unfilled_penalty,
            total_cost_minor: total,
            plan_is_optimal: !exhausted,
            gap_minor: gap,
        },
        explanation: Explanation {
            rule: rule.map(|r| r.name.clone()),
            rule_reason,
            candidates: candidates_view,
            alternatives,
            sets_evaluated,
            budget_exhausted: exhausted,
        },
    }
}

fn qty(v: u64) -> Qty {
    // Quantities in plans never exceed a line's quantity, itself a Qty.
    Qty::new(v).unwrap_or(Qty::MAX)
}

struct GroupOutcome {
    packages: Vec<Package>,
    placed: Vec<(usize, u64)>,
    /// Node indices of the best plan's set.
    chosen_nodes: Vec<usize>,
    candidates: Candidates,
    alternatives: Vec<PlanSummary>,
    sets: u32,
    exhausted: bool,
    gap: i64,
}

/// What every destination group of an order shares.
struct GroupCtx<'a, 'n> {
    order: &'a OrderToSource,
    nodes: &'a [NodeState<'n>],
    items: &'a [Option<&'n Item>],
    body: &'a RuleBody,
    stock: &'a OrderStock<'a>,
    pinned_used: &'a HashMap<(usize, &'a Sku), u64>,
    opts: &'a SearchOptions,
    /// The network's table, or ids copied for this decision.
    table: &'a Arc<NodeTable>,
}

/// A node's distance to a group's destination, computed exactly only when needed.
struct NodeDistance {
    dest: Option<GeoPoint>,
    at: GeoPoint,
    /// Squared chord to the destination, when the network keeps sphere points.
    chord2: Option<f64>,
    km: Option<f64>,
}

impl NodeDistance {
    /// Great-circle km (infinite without a destination).
    fn km(&mut self) -> f64 {
        match self.dest {
            None => f64::INFINITY,
            Some(d) => *self.km.get_or_insert_with(|| d.distance_km(self.at)),
        }
    }

    /// `self.km() <= limit_km`, through the chord when it can tell.
    fn within(&mut self, limit: ChordLimit, limit_km: f64) -> bool {
        match self.chord2.and_then(|c| limit.decide(c)) {
            Some(within) => within,
            None => self.km() <= limit_km,
        }
    }

    /// The distance the explanation reports (the same km, computed when read if not yet:
    /// then the node has a sphere point in the table).
    fn reported(&self) -> (Distance, f64) {
        match (self.dest, self.km) {
            (None, _) => (Distance::None, 0.0),
            (Some(_), Some(km)) => (Distance::Km, km),
            (Some(_), None) => (Distance::FromTable, 0.0),
        }
    }
}

fn source_group(
    ctx: &GroupCtx<'_, '_>,
    dest: Option<GeoPoint>,
    line_idx: &[usize],
    penalty_of: &dyn Fn(&LineToSource) -> i64,
    scratch: &mut Scratch,
) -> GroupOutcome {
    let (order, nodes, items, body) = (ctx.order, ctx.nodes, ctx.items, ctx.body);
    let f = &body.filters;
    let cost = &body.cost;
    let split_penalty = cost.split_penalty_minor;
    // Distinct SKUs of the group.
    let mut skus: Vec<&Sku> = Vec::new();
    let lines: Vec<GLine> = line_idx
        .iter()
        .map(|&i| {
            let l = &order.lines[i];
            let slot = match skus.iter().position(|s| *s == &l.sku) {
                Some(p) => p,
                None => {
                    skus.push(&l.sku);
                    skus.len() - 1
                }
            };
            let weight_g = u64::from(items[i].map_or(0, |it| it.weight_g));
            let penalty = penalty_of(l);
            GLine {
                order_index: i,
                slot,
                qty: l.quantity.get(),
                weight_g,
                unit_kg: billed_kg(weight_g),
                ship_alone: items[i].is_some_and(|it| it.ship_alone),
                penalty,
                penalty_milli: penalty.saturating_mul(1000),
            }
        })
        .collect();
    let nl = lines.len();
    let ns = skus.len();
    // The order's SKU index of each slot.
    let slot_sku: Vec<usize> = skus.iter().map(|s| ctx.stock.index(s).unwrap_or(usize::MAX)).collect();
    // Node-independent parts of per-line eligibility.
    let line_item_ok: Vec<bool> = lines
        .iter()
        .map(|line| items[line.order_index].is_some_and(|it| it.allows(order.lines[line.order_index].method)))
        .collect();
    let line_hazmat: Vec<bool> = lines.iter().map(|line| items[line.order_index].is_some_and(|it| it.hazmat)).collect();
    let bonus_milli = cost.aging_bonus_minor.saturating_mul(1000);

    let line_capability: Vec<_> =
        lines.iter().map(|line| order.lines[line.order_index].method.required_capability()).collect();
    let mut candidates = Candidates::new(Arc::clone(ctx.table), dest);
    // Sphere points: the destination's, and the limits the distances are compared with.
    let points =
        (!ctx.table.points().is_empty()).then(|| dest.map(|d| (ctx.table.points(), SpherePoint::new(d)))).flatten();
    let capability_bits = ctx.table.capabilities();
    let line_capability_bit: Vec<u32> = line_capability.iter().map(|c| capability_bit(*c)).collect();
    // (`km > max` is `!(km <= max)` for every km, infinite too, unless max is NaN.)
    let radius = f.max_distance_km.filter(|max| !max.is_nan()).map(|max| (max, ChordLimit::new(max)));
    let zone_limits: Vec<ChordLimit> = match points {
        Some(_) => cost.shipping_zones.iter().map(|z| ChordLimit::new(z.max_km)).collect(),
        None => Vec::new(),
    };
    let zones_ascending = zone_limits.windows(2).all(|w| w[0].not_beyond(w[1]));
    let emissions_charged = cost.co2_g_per_kg_km != 0 && cost.emissions_minor_per_kg_co2 != 0;
    // The promise binds the lines shipped to the customer's address.
    let promise = order.promise.as_ref().filter(|_| dest.is_some() && dest == order.ship_to);
    let mut cands = emptied(&mut scratch.cands);
    let mut avail = emptied(&mut scratch.avail);
    let mut unit = emptied(&mut scratch.unit);
    let mut cand_stock = emptied(&mut scratch.stock);
    let mut cand_aging = emptied(&mut scratch.aging);
    let mut all = Agg::empty(nl);
    let fill = !body.constraints.allow_partial;
    let mut single_bound = emptied(&mut scratch.single_bound);
    let mut eligible = vec![false; nl];
    let mut usable = vec![0u64; ns];
    let mut aged = vec![0u64; ns];
    // Node-level reasons first, for every node (a node without a reason holds something
    // and is taken up below: its entry is a placeholder until then).
    let mut holders = emptied(&mut scratch.holders);
    holders.resize(nodes.len(), 0);
    let mut n_holders = 0;
    for (ni, st) in nodes.iter().enumerate() {
        let n = st.node;
        let row = ctx.stock.row(ni);
        // (Without a branch per SKU: a node holding none has a row of zeros.)
        let holds_any = slot_sku.iter().fold(false, |any, &k| any | row.get(k).is_some_and(|s| s.0 > 0));
        let node_reason = if f.exclude_nodes.contains(&n.id) {
            Some(DropReason::Excluded)
        } else if f.node_types.as_ref().is_some_and(|t| !t.contains(&n.node_type)) {
            Some(DropReason::NodeTypeNotAllowed)
        } else if !n.is_active() {
            Some(DropReason::Inactive)
        } else if f.respect_capacity && n.capacity.orders_per_day.is_some_and(|c| st.orders_today >= c) {
            Some(DropReason::CapacityFull)
        } else if promise.is_some_and(|p| body.constraints.must_meet_promise && p.days_late(ni) != Some(0)) {
            Some(DropReason::MissesPromise)
        } else if !holds_any {
            Some(DropReason::NoStock)
        } else {
            None
        };
        candidates.push(node_reason, (Distance::None, 0.0), 0);
        holders[n_holders] = ni;
        n_holders += usize::from(node_reason.is_none());
    }
    // Distance, zone and lines of the nodes holding something, in node order.
    for &ni in &holders[..n_holders] {
        let st = &nodes[ni];
        let n = st.node;
        let row = ctx.stock.row(ni);
        let stock_at = |slot: usize| row.get(slot_sku[slot]).copied().unwrap_or((0, 0));
        let mut km = NodeDistance {
            dest,
            at: n.location,
            chord2: points
                .and_then(|(points, d)| points.get(ni).filter(|p| p.point() == n.location).map(|p| d.chord2(*p))),
            km: None,
        };
        if let Some((max, limit)) = radius
            && !km.within(limit, max)
        {
            candidates.set(ni, Some(DropReason::BeyondRadius), km.reported(), 0);
            continue;
        }
        // With ascending zone limits the zones surely beyond the chord are the first ones:
        // the band is the next zone if the chord is surely within it (no zone at all if
        // every zone is surely beyond), found without branching zone by zone.
        let quick_band = match km.chord2 {
            Some(c2) if zones_ascending => {
                let beyond = zone_limits.iter().map(|z| usize::from(z.surely_beyond(c2))).sum::<usize>();
                match zone_limits.get(beyond) {
                    None => Some(None),
                    Some(z) if z.decide(c2) == Some(true) => {
                        let z = &cost.shipping_zones[beyond];
                        Some(Some((z.base_minor, z.per_kg_minor)))
                    }
                    Some(_) => None,
                }
            }
            _ => None,
        };
        let band = if let Some(band) = quick_band {
            band
        } else if km.chord2.is_some() {
            cost.shipping_zones
                .iter()
                .zip(&zone_limits)
                .find(|(z, limit)| km.within(**limit, z.max_km))
                .map(|(z, _)| (z.base_minor, z.per_kg_minor))
        } else {
            zone(cost, km.km())
        };
        let Some((base, per_kg)) = band else {
            candidates.set(ni, Some(DropReason::BeyondShippingZones), km.reported(), 0);
            continue;
        };
        // Per-line eligibility.
        let protection = if n.node_type == NodeType::Store { f.store_protection_units } else { 0 };
        for s in 0..ns {
            let (atp, ag) = stock_at(s);
            let pinned =
                if ctx.pinned_used.is_empty() { 0 } else { ctx.pinned_used.get(&(ni, skus[s])).copied().unwrap_or(0) };
            usable[s] = atp.saturating_sub(pinned).saturating_sub(protection);
            aged[s] = ag.min(usable[s]);
        }
        let hazmat_ok = f.hazmat_node_types.contains(&n.node_type);
        let mut any = false;
        let mut usable_units = 0u64;
        let mut any_units = false;
        let bits = capability_bits.get(ni);
        debug_assert!(ctx.table.describes(ni, n), "the node table describes node {ni}");
        let capable = |l: usize| match bits {
            Some(bits) => bits & line_capability_bit[l] != 0,
            None => n.has(line_capability[l]),
        };
        // (Without branches on each line's outcome; the reason only when no line is kept.)
        for (l, line) in lines.iter().enumerate() {
            let u = usable[line.slot];
            let ok = capable(l) & line_item_ok[l] & (!line_hazmat[l] | hazmat_ok) & (u > 0);
            eligible[l] = ok;
            any |= ok;
            usable_units += if ok { u.min(line.qty) } else { 0 };
            any_units |= ok & (line.qty > 0);
        }
        // Every line failed: the first line's reason is the first.
        let first_line_reason = if any || lines.is_empty() {
            None
        } else if !capable(0) {
            Some(DropReason::NoCapability)
        } else if !line_item_ok[0] {
            Some(DropReason::MethodNotAllowedForItem)
        } else if line_hazmat[0] && !hazmat_ok {
            Some(DropReason::Hazmat)
        } else if stock_at(lines[0].slot).0 > 0 {
            Some(DropReason::ProtectedStock)
        } else {
            Some(DropReason::NoStock)
        };
        if !any {
            candidates.set(ni, first_line_reason, km.reported(), 0);
            continue;
        }
        candidates.set(ni, None, km.reported(), usable_units);
        let unit_cap = match (f.respect_capacity, n.capacity.units_per_day) {
            (true, Some(c)) => u64::from(c.saturating_sub(st.units_today)),
            _ => u64::MAX,
        };
        // Only nodes that can give some line a unit take part in the search.
        let can_serve = any_units && unit_cap > 0;
        if !can_serve {
            continue;
        }
        // Only emissions depend on the distance beyond its zone.
        let km_ceil = if emissions_charged { km.km().ceil() as i64 } else { 0 };
        let emis_milli = emissions_per_kg_milli(cost, km_ceil);
        let per_unit = n.costs.per_unit_minor;
        let late = promise
            .and_then(|p| p.days_late(ni))
            .map_or(0, |d| cost.late_penalty_minor_per_day.saturating_mul(i64::from(d)));
        let fixed = n.costs.per_order_minor + capacity_pressure(cost, st) + late;
        let rounding = i64::from(emis_milli > 0);
        let entry = fixed.saturating_add(base).saturating_add(split_penalty) - rounding;
        let alone_extra = base.saturating_add(split_penalty).saturating_mul(1000);
        // Per line, in one pass: its units and unit cost, the candidate's part of the
        // aggregate of all candidates (`all`) and, without aging bonus, of its single
        // bound (`plain_single_bound`).
        let mut mask = 0u64;
        let mut kinds = 0u8;
        let mut bound = entry.saturating_sub(split_penalty).saturating_mul(1000);
        let mut bound_inf = false;
        for (l, line) in lines.iter().enumerate() {
            let a = if eligible[l] { usable[line.slot].min(unit_cap).min(line.qty) } else { 0 };
            let u = if line.ship_alone {
                let kg = line.unit_kg;
                let package = i128::from(per_kg) * i128::from(kg) + i128::from(emissions(cost, kg, km_ceil));
                (i128::from(per_unit) + package) * 1000
            } else {
                // Shipping weight un-rounded (per_kg × grams / 1000 ≤ per_kg × billed
                // kg); emissions likewise (their rounding down is in `entry`).
                let w = i128::from(line.weight_g);
                let emis = if emis_milli > 0 { emis_milli * w / 1000 } else { 0 };
                i128::from(per_unit) * 1000 + i128::from(per_kg) * w + emis
            };
            let u = clamp_milli(u);
            avail.push(a);
            unit.push(u);
            let extra = if line.ship_alone { alone_extra } else { 0 };
            if a > 0 {
                if l < 64 {
                    mask |= 1 << l;
                }
                kinds |= if line.ship_alone { 2 } else { 1 };
                // `Group::first_unit`.
                let ag = if bonus_milli == 0 { 0 } else { aged[line.slot].min(a) };
                let first = if ag > 0 { u.saturating_sub(bonus_milli) } else { u };
                all.max_avail[l] = all.max_avail[l].max(a);
                all.cover[l] = all.cover[l].min(entry);
                all.min_unit[l] = all.min_unit[l].min(first);
                all.min_full[l] = all.min_full[l].min(first.saturating_add(extra));
            }
            if bonus_milli == 0 && !bound_inf {
                let v = plain_line_bound(line, fill, (u, u.saturating_add(extra)), a);
                if v >= INF {
                    bound_inf = true;
                } else {
                    bound = bound.saturating_add(v);
                }
            }
        }
        all.min_entry[0] = all.min_entry[0].min(entry);
        cand_stock.extend_from_slice(&usable);
        cand_aging.extend_from_slice(&aged);
        cands.push(Cand {
            node: ni,
            fixed,
            base,
            per_kg,
            km_ceil,
            per_unit,
            late,
            unit_cap,
            entry,
            alone_extra,
            mask,
            kinds,
        });
        if bonus_milli == 0 {
            single_bound.push(if bound_inf { INF } else { floor_milli(bound) });
        }
    }

    scratch.holders = holders;
    let has_alone = lines.iter().any(|l| l.ship_alone);
    let mut slot_qty = vec![0u64; ns];
    for line in &lines {
        slot_qty[line.slot] = slot_qty[line.slot].saturating_add(line.qty);
    }
    let qty_total = slot_qty.iter().fold(0u64, |a, q| a.saturating_add(*q));
    let group = Group {
        slot_qty,
        qty_total,
        has_alone,
        lines,
        slots: ns,
        cost,
        split_penalty,
        max_nodes: body.constraints.max_nodes as usize,
        all_or_nothing: !body.constraints.allow_partial,
        bonus_milli,
        cands,
        avail,
        unit,
        stock: cand_stock,
        aging: cand_aging,
    };
    let g = &group;
    let n_cands = g.cands.len();
    // (The aggregate's least entry is the least over the candidates.)
    let min_entry = if g.cands.is_empty() { 0 } else { all.min_entry[0] };
    let mut search = Search {
        g,
        ids: Ids::new(nodes, &g.cands),
        opts: *ctx.opts,
        sets: 0,
        leaves: 0,
        bounds: 0,
        exhausted: false,
        stopped: false,
        top: Vec::new(),
        open_bound: INF,
        cover: None,
        neg_entry: min_entry.min(0),
        alloc: std::mem::take(&mut scratch.alloc),
        buf: Vec::new(),
        delta: Vec::new(),
        choices: Default::default(),
        memo: Vec::new(),
        memo_masks: 0,
        memo_plain: 0,
        subsets: Vec::new(),
        plain: PlainLines::default(),
        canon: Vec::new(),
        key: Vec::new(),
        twin: Vec::new(),
        profiles: Vec::new(),
        profile_ids: FxMap::default(),
        solved: FxMap::default(),
        companions: Vec::new(),
        companion_sets: Vec::new(),
    };
    // The empty plan (nothing allocated) is always possible.
    let empty_cost: i64 = g.lines.iter().map(|l| l.penalty * l.qty as i64).sum();
    search.offer(Found { cost: empty_cost, set: Vec::new(), units: Vec::new() });

    // Bounds of every candidate: alone, and in any set of two or more nodes.
    let multi = g.max_nodes > 1 && n_cands > 1;
    let all = if multi { all } else { Agg::default() };
    let mut pre = search.one_pre(&all);
    if g.bonus_milli > 0 {
        single_bound.extend((0..n_cands).map(|c| search.single_bound(c, &pre)));
    }
    debug_assert_eq!(single_bound.len(), n_cands);

    // Phase 1: single-node plans, cheapest bound first. The bound is admissible, so once
    // one exceeds the threshold all later ones do.
    // (The least few first; then, the threshold known, the rest within it sorted: the
    // threshold only falls, so a bound beyond it now is never reached.)
    let mut by_bound = emptied(&mut scratch.by_bound);
    const SCANS: usize = 3;
    {
        // The least `SCANS`, ascending, found as they are listed; then moved to the front.
        let mut least = [(i64::MAX, usize::MAX); SCANS];
        let mut at = [0usize; SCANS];
        for (c, &bound) in single_bound.iter().enumerate() {
            if bound >= INF {
                continue;
            }
            let (i, e) = (by_bound.len(), (bound, c));
            by_bound.push(e);
            if e < least[SCANS - 1] {
                let mut j = SCANS - 1;
                while j > 0 && e < least[j - 1] {
                    least[j] = least[j - 1];
                    at[j] = at[j - 1];
                    j -= 1;
                }
                least[j] = e;
                at[j] = i;
            }
        }
        for j in 0..by_bound.len().min(SCANS) {
            let p = at[j];
            by_bound.swap(j, p);
            // (What was at j is now at p.)
            for later in &mut at[j + 1..] {
                if *later == j {
                    *later = p;
                }
            }
        }
    }
    let mut next = 0;
    while next < by_bound.len() {
        if next == SCANS {
            let threshold = search.threshold();
            let mut kept = next;
            for i in next..by_bound.len() {
                if by_bound[i].0 <= threshold {
                    by_bound.swap(kept, i);
                    kept += 1;
                }
            }
            by_bound.truncate(kept);
            by_bound[next..].sort_unstable();
            if next == kept {
                break;
            }
        }
        let (bound, c) = by_bound[next];
        next += 1;
        if bound > search.threshold() {
            break;
        }
        let bound = if g.has_alone { bound.max(search.set_bound(&[c])) } else { bound };
        let _ = search.allocate(&[c], bound);
        if search.stopped {
            break;
        }
    }

    // A multi-node plan costs at least a candidate's entry plus the cheapest conceivable
    // rest (`OnePre::cheap`): the quick bound of every candidate in such sets.
    let cheap = pre.cheap;
    let quick = |c: usize| floor_milli(g.entry_milli(&[c]).saturating_add(cheap));
    let multi = multi && quick_floor(g, &pre, min_entry) <= search.threshold();
    scratch.by_bound = by_bound;
    if multi {
        search.cover = CoverTable::build(g);
        search.one_pre_fix(&all, &mut pre);
    }

    // Seeding: good multi-node plans early, from the best single candidates and the best
    // holders of each line.
    if multi && !search.stopped {
        // The best `SEED_POOL` by each score, in one pass over the candidates: `tops[0]` by
        // single bound, `tops[1 + l]` the cheapest to serve line l (entry plus the relaxed
        // cost of its units).
        let mut tops: Vec<Vec<(i64, usize)>> = vec![Vec::with_capacity(SEED_POOL + 1); nl + 1];
        // Small terms (the usual case): the scores in plain arithmetic, nothing can saturate.
        const SMALL: i64 = 1 << 36;
        let small = |x: i64| (0..SMALL).contains(&x);
        let small_lines = small(g.bonus_milli) && g.lines.iter().all(|l| small(l.penalty_milli) && l.qty < 1 << 20);
        for (c, &bound) in single_bound.iter().enumerate() {
            // (`push_best` declines (v, c) ≥ its last: with c the highest index yet, when v
            // ≥ its score.)
            if bound < INF && (tops[0].len() < SEED_POOL || bound < tops[0][SEED_POOL - 1].0) {
                push_best(&mut tops[0], bound, c);
            }
            let entry = g.entry_milli(&[c]);
            let plain = small_lines && small(g.cands[c].alone_extra) && entry.unsigned_abs() < 1 << 40;
            for (l, line) in g.lines.iter().enumerate() {
                let a = g.avail[c * nl + l];
                let u = a.min(line.qty);
                let unit = g.unit[c * nl + l];
                let aged = u.min(g.aged(c, l, a));
                let alone = if line.ship_alone { u.saturating_sub(1) } else { 0 };
                // `g.units_cost(c, l, u, aged, true)` without its branch on u = 0 (the
                // score only counts when a > 0, so u ≥ 1).
                let v = if plain && small(unit) {
                    let units = unit * u as i64 - g.bonus_milli * aged as i64 + g.cands[c].alone_extra * alone as i64;
                    entry + units + line.penalty_milli * (line.qty - u) as i64
                } else {
                    let units = mul(unit, u).saturating_sub(mul(g.bonus_milli, aged));
                    let units = units.saturating_add(mul(g.cands[c].alone_extra, alone));
                    entry.saturating_add(units).saturating_add(mul(line.penalty_milli, line.qty - u))
                };
                let top = &mut tops[1 + l];
                if (a > 0) & (top.len() < SEED_POOL || v < top[SEED_POOL - 1].0) {
                    push_best(top, v, c);
                }
            }
        }
        // The best few of a list, skipping candidates of a profile already taken (twins
        // would make the same plans).
        let distinct = |search: &mut Search<'_, '_>, top: &[(i64, usize)], want: usize| {
            let mut taken: Vec<usize> = Vec::with_capacity(want);
            let mut profiles: Vec<u32> = Vec::with_capacity(want);
            for &(_, c) in top {
                let p = search.profile(c);
                if !profiles.contains(&p) {
                    profiles.push(p);
                    taken.push(c);
                    if taken.len() == want {
                        break;
                    }
                }
            }
            taken
        };
        let by_single = distinct(&mut search, &tops[0], SEED_STARTS);
        let mut shortlist: Vec<usize> = by_single.clone();
        for top in &tops[1..] {
            shortlist.extend(distinct(&mut search, top, SEED_PER_LINE));
        }
        shortlist.sort_unstable();
        shortlist.dedup();
        search.seed(&by_single, &shortlist);
    }

    // Phase 2: multi-node sets. Candidates whose quick bound (their entry plus the
    // cheapest conceivable rest) cannot enter the top three are out, then those with
    // enough dominators; the others are bounded in any set of two or more nodes, and
    // the ones within the threshold form the pool, searched in order of that bound.
    if multi {
        if search.stopped {
            let lowest = (0..n_cands).map(quick).min().unwrap_or(INF);
            search.open_bound = search.open_bound.min(lowest);
        } else {
            let threshold = search.threshold();
            // quick(c) ≤ threshold, without a division per candidate.
            let within = threshold.saturating_mul(1000).saturating_add(999).saturating_sub(pre.cheap);
            let split_milli = g.split_penalty.saturating_mul(1000);
            let mut pool: Vec<usize> = (0..n_cands)
                .filter(|&c| g.cands[c].entry.saturating_mul(1000).saturating_sub(split_milli) <= within)
                .collect();
            let mut companions = Vec::new();
            drop_dominated(g, &search.ids, &mut pool, &mut companions);
            search.companions = vec![u32::MAX; n_cands];
            for (i, (b, _)) in companions.iter().enumerate() {
                search.companions[*b] = i as u32;
            }
            search.companion_sets = companions;
            let mut multi_bound = vec![INF; n_cands];
            pool.retain(|&c| {
                multi_bound[c] = search.multi_bound(c, &pre, &all);
                multi_bound[c] <= threshold
            });
            pool.sort_unstable_by_key(|&c| (multi_bound[c], c));
            let agg = Agg::suffixes(g, &pool);
            let mut prefix = Vec::with_capacity(g.max_nodes);
            for pos in 0..pool.len() {
                search.sets_from(&pool, &agg, &multi_bound, &mut prefix, pos..pos + 1);
                if search.stopped {
                    // Every set not searched has its first pool node at `pos` or later.
                    let lowest = pool[pos..].iter().map(|&c| multi_bound[c]).min().unwrap_or(INF);
                    search.open_bound = search.open_bound.min(lowest);
                    break;
                }
            }
        }
    }

    let ids = |f: &Found| -> Vec<NodeId> { f.set.iter().map(|&c| nodes[g.cands[c].node].node.id.clone()).collect() };
    let top = std::mem::take(&mut search.top);
    let best = top.first().cloned().unwrap_or(Found { cost: empty_cost, set: Vec::new(), units: Vec::new() });
    let gap = if search.exhausted { (best.cost - search.open_bound.min(best.cost)).max(0) } else { 0 };
    let alternatives = top
        .iter()
        .skip(1)
        .take(2)
        .map(|f| PlanSummary { nodes: ids(f), total_cost_minor: f.cost, allocated_units: f.units.iter().sum() })
        .collect();

    // Build packages of the best plan with itemised costs (the set is in node id order).
    let mut packages = Vec::new();
    let mut placed = Vec::new();
    let m = best.set.len();
    for (k, &ci) in best.set.iter().enumerate() {
        let c = &g.cands[ci];
        let node = nodes[c.node].node;
        let mut regular = Package {
            node_id: node.id.clone(),
            kind: PackageKind::Ship,
            lines: Vec::new(),
            weight_g: 0,
            cost: CostBreakdown::default(),
        };
        let mut handling = c.fixed - capacity_pressure(cost, &nodes[c.node]) - c.late;
        let mut alone = Vec::new();
        let mut units_by_slot = vec![0u64; ns];
        for (l, line) in g.lines.iter().enumerate() {
            let u = best.units[l * m + k];
            if u == 0 {
                continue;
            }
            placed.push((line.order_index, u));
            units_by_slot[line.slot] += u;
            handling += c.per_unit * u as i64;
            let ol = &order.lines[line.order_index];
            if line.ship_alone {
                for _ in 0..u {
                    let kg = line.unit_kg;
                    let mut pc = CostBreakdown {
                        shipping: c.base + c.per_kg * kg,
                        emissions: emissions(cost, kg, c.km_ceil),
                        ..Default::default()
                    };
                    pc.sum();
                    alone.push(Package {
                        node_id: node.id.clone(),
                        kind: PackageKind::ShipAlone,
                        lines: vec![LineQty { line_id: ol.line_id.clone(), sku: ol.sku.clone(), quantity: qty(1) }],
                        weight_g: line.weight_g,
                        cost: pc,
                    });
                }
            } else {
                regular.weight_g += line.weight_g * u;
                regular.lines.push(LineQty { line_id: ol.line_id.clone(), sku: ol.sku.clone(), quantity: qty(u) });
            }
        }
        let aging = &g.aging[ci * ns..(ci + 1) * ns];
        let aging_bonus: i64 =
            units_by_slot.iter().zip(aging).map(|(u, a)| (*u).min(*a) as i64 * cost.aging_bonus_minor).sum();
        let capacity = capacity_pressure(cost, &nodes[c.node]);
        // The node-level terms (handling, capacity, aging) go on the node's first package.
        let mut node_pkgs = Vec::new();
        if !regular.lines.is_empty() {
            let kg = billed_kg(regular.weight_g);
            regular.cost.shipping = c.base + c.per_kg * kg;
            regular.cost.emissions = emissions(cost, kg, c.km_ceil);
            node_pkgs.push(regular);
        }
        node_pkgs.extend(alone);
        if let Some(first) = node_pkgs.first_mut() {
            first.cost.handling = handling;
            first.cost.capacity = capacity;
            first.cost.aging_bonus = -aging_bonus;
            first.cost.late = c.late;
        }
        for p in &mut node_pkgs {
            p.cost.sum();
        }
        packages.extend(node_pkgs);
    }
    let chosen_nodes = best.set.iter().map(|&c| g.cands[c].node).collect();
    let (sets, exhausted) = (search.sets, search.exhausted);
    scratch.alloc = std::mem::take(&mut search.alloc);
    drop(search);
    scratch.single_bound = single_bound;
    scratch.cands = group.cands;
    scratch.avail = group.avail;
    scratch.unit = group.unit;
    scratch.stock = group.stock;
    scratch.aging = group.aging;
    GroupOutcome { packages, placed, chosen_nodes, candidates, alternatives, sets, exhausted, gap }
}

#[cfg(test)]
mod tests;
