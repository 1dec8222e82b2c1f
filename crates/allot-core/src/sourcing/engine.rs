//! The search itself. See the module docs of `sourcing` for the algorithm.

use std::collections::HashMap;

use crate::catalog::{FulfillmentMethod, Item};
use crate::geo::GeoPoint;
use crate::ids::{ChannelId, NodeId, Sku};
use crate::network::{Node, NodeType};
use crate::qty::Qty;
use crate::sourcing::policy::{CostModel, OrderFacts, Policy, RuleBody};

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
    fn item(&self, sku: &Sku) -> Option<&Item>;
    /// Appends the holdings of a SKU (any order; nodes without the SKU may be omitted).
    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>);
}

/// Bounds on the search: beyond them the best plan so far is returned as not optimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Node sets whose allocation is solved.
    pub max_sets: u32,
    /// Allocation leaves (complete assignments) evaluated, over all sets.
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
    pub total: i64,
}

impl CostBreakdown {
    fn sum(&mut self) {
        self.total =
            self.shipping + self.handling + self.split_penalty + self.capacity + self.emissions + self.aging_bonus;
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
    pub candidates: Vec<CandidateView>,
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
    let co2_g = i128::from(kg) * i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km);
    (co2_g * i128::from(cost.emissions_minor_per_kg_co2) / 1000) as i64
}

/// `capacity_penalty × (orders_today ÷ orders_per_day)²`, rounded down.
fn capacity_pressure(cost: &CostModel, state: &NodeState<'_>) -> i64 {
    match state.node.capacity.orders_per_day {
        Some(cap) if cap > 0 => {
            let o = i128::from(state.orders_today);
            let c = i128::from(cap);
            (i128::from(cost.capacity_penalty_minor) * o * o / (c * c)) as i64
        }
        _ => 0,
    }
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
    ship_alone: bool,
    penalty: i64, // per unallocated unit
}

/// A kept candidate node of a group.
#[derive(Debug, Clone)]
struct Cand {
    node: usize,
    /// per_order handling + capacity pressure: paid once if the node is used.
    fixed: i64,
    base: i64,
    per_kg: i64,
    km_ceil: i64,
    per_unit: i64,
    /// Usable stock per SKU slot (after protection).
    stock: Vec<u64>,
    /// Aging units per SKU slot.
    aging: Vec<u64>,
    /// Whether each group line may use this node.
    eligible: Vec<bool>,
    /// Remaining units the node may take today (respect_capacity), else u64::MAX.
    unit_cap: u64,
}

struct Group<'r> {
    lines: Vec<GLine>,
    cands: Vec<Cand>,
    cost: &'r CostModel,
    split_penalty: i64,
    max_nodes: usize,
    /// `allow_partial = false`: only complete allocations (or the empty plan) count.
    all_or_nothing: bool,
}

/// A complete allocation: units[line][position in set].
#[derive(Debug, Clone)]
struct Found {
    cost: i64,
    set: Vec<usize>, // candidate indices, ascending
    units: Vec<Vec<u64>>,
}

impl Group<'_> {
    /// Exact cost of an allocation over `set` (candidate indices); units[l][k] for set[k].
    fn cost_of(&self, set: &[usize], units: &[Vec<u64>]) -> i64 {
        let mut total = 0i64;
        let mut packages = 0i64;
        for (k, &ci) in set.iter().enumerate() {
            let c = &self.cands[ci];
            let mut any = false;
            let mut reg_weight = 0u64;
            let mut reg = false;
            for (l, line) in self.lines.iter().enumerate() {
                let u = units[l][k];
                if u == 0 {
                    continue;
                }
                any = true;
                total += c.per_unit * u as i64;
                if line.ship_alone {
                    let kg = billed_kg(line.weight_g);
                    total += (c.base + c.per_kg * kg + emissions(self.cost, kg, c.km_ceil)) * u as i64;
                    packages += u as i64;
                } else {
                    reg = true;
                    reg_weight += line.weight_g * u;
                }
            }
            if !any {
                continue;
            }
            total += c.fixed;
            if reg {
                let kg = billed_kg(reg_weight);
                total += c.base + c.per_kg * kg + emissions(self.cost, kg, c.km_ceil);
                packages += 1;
            }
            total -= self.aging_bonus(c, k, units);
        }
        total += self.split_penalty * (packages - 1).max(0);
        for (l, line) in self.lines.iter().enumerate() {
            let placed: u64 = units[l].iter().sum();
            total += line.penalty * (line.qty - placed) as i64;
        }
        total
    }

    /// Aging bonus at one node: units drawn from aging stock, per SKU slot.
    fn aging_bonus(&self, c: &Cand, k: usize, units: &[Vec<u64>]) -> i64 {
        if self.cost.aging_bonus_minor == 0 {
            return 0;
        }
        let mut by_slot: HashMap<usize, u64> = HashMap::new();
        for (l, line) in self.lines.iter().enumerate() {
            *by_slot.entry(line.slot).or_default() += units[l][k];
        }
        by_slot.iter().map(|(slot, u)| (*u).min(c.aging[*slot]) as i64 * self.cost.aging_bonus_minor).sum()
    }

    /// Linear per-unit lower bound of placing one unit of line `l` at candidate `ci`
    /// (excluding the node's fixed and package base costs). Scaled by 1000 to stay integer:
    /// returns cost×1000.
    fn unit_lb_milli(&self, l: usize, ci: usize) -> i64 {
        let c = &self.cands[ci];
        let line = &self.lines[l];
        let aging = if c.aging[line.slot] > 0 { self.cost.aging_bonus_minor } else { 0 };
        let emis_per_kg_milli = emissions_per_kg_milli(self.cost, c.km_ceil);
        if line.ship_alone {
            let kg = billed_kg(line.weight_g);
            // Each ship-alone unit is a package of its own. Its base rate is left out: the
            // node's one base rate is already in the set's fixed part of every bound.
            (c.per_unit - aging + c.per_kg * kg + emissions(self.cost, kg, c.km_ceil)) * 1000
        } else {
            // Shipping weight un-rounded (per_kg × grams / 1000 ≤ per_kg × billed kg);
            // emissions likewise, less one minor unit for its rounding down.
            let rounding = if emis_per_kg_milli > 0 { 1000 } else { 0 };
            (c.per_unit - aging) * 1000
                + c.per_kg * line.weight_g as i64
                + (emis_per_kg_milli * line.weight_g as i64) / 1000
                - rounding
        }
    }
}

/// Multi-node sets are searched among this many best single-node candidates …
const SHORTLIST_BEST: usize = 10;
/// … plus this many cheapest holders per line …
const SHORTLIST_PER_LINE: usize = 5;
/// … or every holder of a line held by at most this many candidates.
const SCARCE_HOLDERS: usize = 12;

/// Emissions per kg (×1000): `ceil(km) × co2_g_per_kg_km × emissions_minor_per_kg_co2`.
fn emissions_per_kg_milli(cost: &CostModel, km_ceil: i64) -> i64 {
    (i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km) * i128::from(cost.emissions_minor_per_kg_co2)) as i64
}

// ---------------------------------------------------------------------------------------
// Branch and bound

struct Search<'g, 'r> {
    g: &'g Group<'r>,
    opts: SearchOptions,
    sets: u32,
    leaves: u32,
    exhausted: bool,
    /// The best three plans with distinct sets, cheapest first (ties: lowest node ids).
    top: Vec<Found>,
    /// Lowest bound among subtrees skipped for lack of budget.
    open_bound: i64,
    /// Search order of candidates and, per suffix of it, aggregates for superset bounds.
    order: Vec<usize>,
    suffix: Vec<Suffix>,
}

/// What the candidates from one position of the search order onwards offer, per line.
#[derive(Debug, Clone, Default)]
struct Suffix {
    /// Cheapest fixed + base of any candidate in the suffix.
    min_fixed: i64,
    /// Per line: cheapest linear unit cost (×1000) among eligible candidates with stock.
    min_unit: Vec<i64>,
    /// Per line: the largest stocks of eligible candidates, descending, at most max_nodes.
    top_stock: Vec<Vec<u64>>,
}

impl Search<'_, '_> {
    fn threshold(&self) -> i64 {
        if self.top.len() < 3 { i64::MAX } else { self.top[2].cost }
    }

    /// Whether a plan or subtree with this lower bound could still enter the top three.
    fn worth(&self, bound: i64) -> bool {
        bound <= self.threshold()
    }

    fn offer(&mut self, found: Found) {
        if let Some(t) = self.top.iter_mut().find(|t| t.set == found.set) {
            if found.cost < t.cost {
                *t = found;
            }
        } else {
            self.top.push(found);
        }
        // Candidate indices follow node id order, so comparing sorted sets compares ids.
        self.top.sort_by(|a, b| a.cost.cmp(&b.cost).then_with(|| a.set.cmp(&b.set)));
        self.top.truncate(3);
    }

    fn build_suffixes(&mut self) {
        let g = self.g;
        let n = self.order.len();
        let lines = g.lines.len();
        let k = g.max_nodes;
        let mut suffix =
            vec![
                Suffix { min_fixed: i64::MAX, min_unit: vec![i64::MAX; lines], top_stock: vec![Vec::new(); lines] };
                n + 1
            ];
        for p in (0..n).rev() {
            let ci = self.order[p];
            let c = &g.cands[ci];
            let mut here = suffix[p + 1].clone();
            here.min_fixed = here.min_fixed.min(c.fixed + c.base);
            for (l, line) in g.lines.iter().enumerate() {
                let st = c.stock[line.slot].min(c.unit_cap);
                if c.eligible[l] && st > 0 {
                    here.min_unit[l] = here.min_unit[l].min(g.unit_lb_milli(l, ci));
                    let top = &mut here.top_stock[l];
                    let at = top.partition_point(|&x| x >= st);
                    top.insert(at, st);
                    top.truncate(k);
                }
            }
            suffix[p] = here;
        }
        self.suffix = suffix;
    }

    /// Σ fixed + base of the set, plus split penalties between its nodes.
    fn set_fixed(&self, set: &[usize]) -> i64 {
        let g = self.g;
        let fixed: i64 = set.iter().map(|&ci| g.cands[ci].fixed + g.cands[ci].base).sum();
        fixed + g.split_penalty * (set.len() as i64 - 1).max(0)
    }

    /// Lower bound on plans using exactly the nodes of `set` (each at least once).
    fn bound_exact(&self, set: &[usize]) -> i64 {
        self.set_fixed(set) + self.lp(set, None)
    }

    /// Lower bound on plans using `set` plus 1..=`room` candidates from suffix `p`.
    fn bound_supersets(&self, set: &[usize], p: usize, room: usize) -> i64 {
        let sfx = &self.suffix[p];
        if room == 0 || sfx.min_fixed == i64::MAX {
            return i64::MAX;
        }
        self.set_fixed(set) + sfx.min_fixed + self.g.split_penalty + self.lp(set, Some((sfx, room)))
    }

    /// Linear relaxation of unit costs: each line independently takes its cheapest units
    /// among the set's nodes (and, for supersets, one aggregate option standing for the
    /// suffix: its cheapest unit cost for as many units as its `room` largest stocks),
    /// the rest at its penalty. Competition between lines for one stock is relaxed away.
    fn lp(&self, set: &[usize], extra: Option<(&Suffix, usize)>) -> i64 {
        let g = self.g;
        let mut total_milli = 0i64;
        let mut options: Vec<(i64, u64)> = Vec::with_capacity(set.len() + 1);
        for (l, line) in g.lines.iter().enumerate() {
            options.clear();
            for &ci in set {
                let c = &g.cands[ci];
                let st = c.stock[line.slot].min(c.unit_cap);
                if c.eligible[l] && st > 0 {
                    options.push((g.unit_lb_milli(l, ci), st));
                }
            }
            if let Some((sfx, room)) = extra
                && sfx.min_unit[l] != i64::MAX
            {
                let st: u64 = sfx.top_stock[l].iter().take(room).sum();
                options.push((sfx.min_unit[l], st));
            }
            options.sort_unstable();
            let mut left = line.qty;
            let penalty_milli = line.penalty * 1000;
            for &(unit, st) in &options {
                if left == 0 || unit >= penalty_milli {
                    break;
                }
                let take = left.min(st);
                total_milli += unit * take as i64;
                left -= take;
            }
            total_milli += penalty_milli * left as i64;
        }
        total_milli.div_euclid(1000)
    }

    /// Depth-first over node sets in search order.
    fn sets(&mut self, set: &mut Vec<usize>, from: usize) {
        for p in from..self.order.len() {
            let ci = self.order[p];
            set.push(ci);
            let exact = if set.len() == 1 { i64::MAX } else { self.bound_exact(set) };
            if set.len() > 1 && self.worth(exact) {
                if self.sets >= self.opts.max_sets || self.leaves >= self.opts.max_leaves {
                    self.exhausted = true;
                    self.open_bound = self.open_bound.min(exact);
                } else {
                    self.sets += 1;
                    let mut sorted = set.clone();
                    sorted.sort_unstable();
                    self.allocate(&sorted);
                }
            }
            let room = self.g.max_nodes.saturating_sub(set.len());
            let sup = self.bound_supersets(set, p + 1, room);
            if room > 0 && sup != i64::MAX && self.worth(sup) {
                if self.sets >= self.opts.max_sets || self.leaves >= self.opts.max_leaves {
                    self.exhausted = true;
                    self.open_bound = self.open_bound.min(sup);
                } else {
                    self.sets(set, p + 1);
                }
            }
            set.pop();
        }
    }

    /// Exact allocation over a fixed set: depth-first over lines.
    fn allocate(&mut self, set: &[usize]) {
        let g = self.g;
        let k = set.len();
        let mut units = vec![vec![0u64; k]; g.lines.len()];
        // Remaining stock per (set position, slot) and unit capacity per set position.
        let slots = g.lines.iter().map(|l| l.slot + 1).max().unwrap_or(0);
        let mut stock: Vec<Vec<u64>> = set.iter().map(|&ci| g.cands[ci].stock[..slots].to_vec()).collect();
        let mut cap: Vec<u64> = set.iter().map(|&ci| g.cands[ci].unit_cap).collect();
        let mut best: Option<Found> = None;
        self.alloc_line(set, 0, &mut units, &mut stock, &mut cap, &mut best);
        if let Some(found) = best {
            self.offer(found);
        }
    }

    fn alloc_line(
        &mut self,
        set: &[usize],
        l: usize,
        units: &mut Vec<Vec<u64>>,
        stock: &mut Vec<Vec<u64>>,
        cap: &mut Vec<u64>,
        best: &mut Option<Found>,
    ) {
        let g = self.g;
        if self.leaves >= self.opts.max_leaves {
            self.exhausted = true;
            return;
        }
        if l == g.lines.len() {
            // Every node of the set must be used.
            if (0..set.len()).any(|k| units.iter().all(|u| u[k] == 0)) {
                return;
            }
            if g.all_or_nothing && g.lines.iter().zip(units.iter()).any(|(line, u)| u.iter().sum::<u64>() < line.qty) {
                return;
            }
            self.leaves += 1;
            let cost = g.cost_of(set, units);
            let better = best.as_ref().is_none_or(|b| cost < b.cost);
            if better && self.worth(cost) {
                *best = Some(Found { cost, set: set.to_vec(), units: units.clone() });
            }
            return;
        }
        let line = &g.lines[l];
        // Enumerate splits of up to qty units across the set, largest first at the first
        // node so that good plans are met early.
        let limits: Vec<u64> = set
            .iter()
            .enumerate()
            .map(|(k, &ci)| if g.cands[ci].eligible[l] { stock[k][line.slot].min(cap[k]).min(line.qty) } else { 0 })
            .collect();
        let mut split = vec![0u64; set.len()];
        self.splits(set, l, 0, line.qty, &limits, &mut split, units, stock, cap, best);
    }

    #[allow(clippy::too_many_arguments)]
    fn splits(
        &mut self,
        set: &[usize],
        l: usize,
        k: usize,
        left: u64,
        limits: &[u64],
        split: &mut Vec<u64>,
        units: &mut Vec<Vec<u64>>,
        stock: &mut Vec<Vec<u64>>,
        cap: &mut Vec<u64>,
        best: &mut Option<Found>,
    ) {
        if self.exhausted && self.leaves >= self.opts.max_leaves {
            return;
        }
        if k == set.len() {
            let slot = self.g.lines[l].slot;
            for (kk, &u) in split.iter().enumerate() {
                units[l][kk] = u;
                stock[kk][slot] -= u;
                cap[kk] -= u;
            }
            // Bound: what is placed so far exactly is hard to split from the rest, so use
            // the partial cost of lines 0..=l plus a relaxation of the remaining lines.
            let bound = self.partial_bound(set, l + 1, units);
            if self.worth(bound) && best.as_ref().is_none_or(|b| bound < b.cost) {
                self.alloc_line(set, l + 1, units, stock, cap, best);
            }
            for (kk, &u) in split.iter().enumerate() {
                units[l][kk] = 0;
                stock[kk][slot] += u;
                cap[kk] += u;
            }
            return;
        }
        let max = limits[k].min(left);
        for u in (0..=max).rev() {
            split[k] = u;
            self.splits(set, l, k + 1, left - u, limits, split, units, stock, cap, best);
        }
        split[k] = 0;
    }

    /// Lower bound for completing an allocation whose lines `0..next` are fixed: the exact
    /// cost with the remaining lines left unplaced would overcount their penalties, so the
    /// remaining lines are instead bounded by their linear relaxation over the set, and the
    /// fixed part by the set's fixed costs plus placed units' linear costs.
    fn partial_bound(&self, set: &[usize], next: usize, units: &[Vec<u64>]) -> i64 {
        let g = self.g;
        let mut fixed: i64 = set.iter().map(|&ci| g.cands[ci].fixed + g.cands[ci].base).sum();
        fixed += g.split_penalty * (set.len() as i64 - 1);
        let mut milli = 0i64;
        for (l, line) in g.lines.iter().enumerate().take(next) {
            let placed: u64 = units[l].iter().sum();
            milli += line.penalty * 1000 * (line.qty - placed) as i64;
            for (k, &ci) in set.iter().enumerate() {
                milli += g.unit_lb_milli(l, ci) * units[l][k] as i64;
            }
        }
        // Remaining lines: cheapest per unit within the set, ignoring stock competition.
        for (l, line) in g.lines.iter().enumerate().skip(next) {
            let mut options: Vec<(i64, u64)> = set
                .iter()
                .map(|&ci| (ci, &g.cands[ci]))
                .filter(|(_, c)| c.eligible[l] && c.stock[line.slot] > 0)
                .map(|(ci, c)| (g.unit_lb_milli(l, ci), c.stock[line.slot]))
                .collect();
            options.sort_unstable();
            let mut left = line.qty;
            for (unit, s) in options {
                if left == 0 || unit >= line.penalty * 1000 {
                    break;
                }
                let take = left.min(s);
                milli += unit * take as i64;
                left -= take;
            }
            milli += line.penalty * 1000 * left as i64;
        }
        fixed + milli.div_euclid(1000)
    }
}

// ---------------------------------------------------------------------------------------
// Entry point

fn is_ship_type(m: FulfillmentMethod) -> bool {
    matches!(m, FulfillmentMethod::Ship | FulfillmentMethod::SameDay | FulfillmentMethod::ShipToStore)
}

/// Sources an order. Never fails; see [`Decision`].
pub fn source(order: &OrderToSource, net: &dyn SourcingNetwork, policy: &Policy, opts: &SearchOptions) -> Decision {
    let nodes: Vec<NodeState<'_>> = (0..net.node_count()).map(|i| net.node(i)).collect();
    let nodes = nodes.as_slice();
    let find_node = |id: &NodeId| nodes.iter().position(|n| &n.node.id == id);
    let items: Vec<Option<&Item>> = order.lines.iter().map(|l| net.item(&l.sku)).collect();

    let facts = OrderFacts {
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
    let (rule, body) = policy.select(&facts);
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

    // Stock per SKU of the order, dense by node index.
    let mut holdings: HashMap<&Sku, Vec<(u64, u64)>> = HashMap::new();
    let mut buf = Vec::new();
    for line in &order.lines {
        holdings.entry(&line.sku).or_insert_with(|| {
            buf.clear();
            net.holdings(&line.sku, &mut buf);
            let mut dense = vec![(0u64, 0u64); nodes.len()];
            for h in &buf {
                if let Some(d) = dense.get_mut(h.node) {
                    *d = (h.atp.get(), h.aging.get().min(h.atp.get()));
                }
            }
            dense
        });
    }
    let stock_at = |sku: &Sku, node: usize| -> (u64, u64) {
        holdings.get(sku).and_then(|d| d.get(node).copied()).unwrap_or((0, 0))
    };

    let mut packages: Vec<Package> = Vec::new();
    let mut placed: Vec<u64> = vec![0; order.lines.len()];

    // Pickup and curbside lines are pinned to their node: its ATP or nothing.
    let mut pinned_used: HashMap<(usize, &Sku), u64> = HashMap::new();
    let mut pickup_pkgs: HashMap<usize, Package> = HashMap::new();
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
        let avail = stock_at(&line.sku, ni).0.saturating_sub(*used);
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

    let mut candidates_view: Vec<CandidateView> = Vec::new();
    let mut alternatives: Vec<PlanSummary> = Vec::new();
    let mut sets_evaluated = 0;
    let mut exhausted = false;
    let mut gap = 0i64;
    for (dest, line_idx) in &groups {
        let outcome =
            source_group(order, net, nodes, &items, body, *dest, line_idx, &stock_at, &pinned_used, &penalty_of, opts);
        sets_evaluated += outcome.sets;
        exhausted |= outcome.exhausted;
        gap += outcome.gap;
        for (i, u) in outcome.placed {
            placed[i] += u;
        }
        packages.extend(outcome.packages);
        if candidates_view.is_empty() {
            candidates_view = outcome.candidates;
            alternatives = outcome.alternatives;
        }
    }
    // allow_partial = false: all or nothing.
    let complete = order.lines.iter().enumerate().all(|(i, l)| placed[i] == l.quantity.get());
    if !body.constraints.allow_partial && !complete {
        packages.clear();
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
    let chosen: Vec<&NodeId> = packages.iter().map(|p| &p.node_id).collect();
    for c in &mut candidates_view {
        c.chosen = chosen.contains(&&c.node_id);
    }
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
    candidates: Vec<CandidateView>,
    alternatives: Vec<PlanSummary>,
    sets: u32,
    exhausted: bool,
    gap: i64,
}

#[allow(clippy::too_many_arguments)]
fn source_group(
    order: &OrderToSource,
    _net: &dyn SourcingNetwork,
    nodes: &[NodeState<'_>],
    items: &[Option<&Item>],
    body: &RuleBody,
    dest: Option<GeoPoint>,
    line_idx: &[usize],
    stock_at: &dyn Fn(&Sku, usize) -> (u64, u64),
    pinned_used: &HashMap<(usize, &Sku), u64>,
    penalty_of: &dyn Fn(&LineToSource) -> i64,
    opts: &SearchOptions,
) -> GroupOutcome {
    let f = &body.filters;
    let cost = &body.cost;
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
            GLine {
                order_index: i,
                slot,
                qty: l.quantity.get(),
                weight_g: u64::from(items[i].map_or(0, |it| it.weight_g)),
                ship_alone: items[i].is_some_and(|it| it.ship_alone),
                penalty: penalty_of(l),
            }
        })
        .collect();

    let mut candidates = Vec::with_capacity(nodes.len());
    let mut cands: Vec<Cand> = Vec::new();
    for (ni, st) in nodes.iter().enumerate() {
        let n = st.node;
        // Node-level reasons first; distance only for nodes holding something.
        let holds_any = skus.iter().any(|s| stock_at(s, ni).0 > 0);
        let mut view = CandidateView {
            node_id: n.id.clone(),
            kept: false,
            reason: None,
            distance_km: None,
            usable_units: 0,
            chosen: false,
        };
        let node_reason = if f.exclude_nodes.contains(&n.id) {
            Some(DropReason::Excluded)
        } else if f.node_types.as_ref().is_some_and(|t| !t.contains(&n.node_type)) {
            Some(DropReason::NodeTypeNotAllowed)
        } else if !n.is_active() {
            Some(DropReason::Inactive)
        } else if f.respect_capacity && n.capacity.orders_per_day.is_some_and(|c| st.orders_today >= c) {
            Some(DropReason::CapacityFull)
        } else if !holds_any {
            Some(DropReason::NoStock)
        } else {
            None
        };
        if let Some(r) = node_reason {
            view.reason = Some(r);
            candidates.push(view);
            continue;
        }
        let km = dest.map(|d| d.distance_km(n.location));
        view.distance_km = km.map(|k| (k * 1000.0).round() / 1000.0);
        let km_v = km.unwrap_or(f64::INFINITY);
        if f.max_distance_km.is_some_and(|max| km_v > max) {
            view.reason = Some(DropReason::BeyondRadius);
            candidates.push(view);
            continue;
        }
        let Some((base, per_kg)) = zone(cost, km_v) else {
            view.reason = Some(DropReason::BeyondShippingZones);
            candidates.push(view);
            continue;
        };
        // Per-line eligibility; remember the first reason for lines that fail.
        let mut eligible = vec![false; lines.len()];
        let mut first_line_reason = None;
        let protection = if n.node_type == NodeType::Store { f.store_protection_units } else { 0 };
        let mut stock = vec![0u64; skus.len()];
        let mut aging = vec![0u64; skus.len()];
        for (slot, sku) in skus.iter().enumerate() {
            let (atp, ag) = stock_at(sku, ni);
            let pinned = pinned_used.get(&(ni, *sku)).copied().unwrap_or(0);
            let usable = atp.saturating_sub(pinned).saturating_sub(protection);
            stock[slot] = usable;
            aging[slot] = ag.min(usable);
        }
        for (l, line) in lines.iter().enumerate() {
            let ol = &order.lines[line.order_index];
            let reason = if !n.has(ol.method.required_capability()) {
                Some(DropReason::NoCapability)
            } else if !items[line.order_index].is_some_and(|it| it.allows(ol.method)) {
                Some(DropReason::MethodNotAllowedForItem)
            } else if items[line.order_index].is_some_and(|it| it.hazmat) && !f.hazmat_node_types.contains(&n.node_type)
            {
                Some(DropReason::Hazmat)
            } else if stock[line.slot] == 0 {
                if stock_at(skus[line.slot], ni).0 > 0 {
                    Some(DropReason::ProtectedStock)
                } else {
                    Some(DropReason::NoStock)
                }
            } else {
                None
            };
            match reason {
                None => eligible[l] = true,
                Some(r) => {
                    first_line_reason.get_or_insert(r);
                }
            }
        }
        if !eligible.iter().any(|e| *e) {
            view.reason = first_line_reason;
            candidates.push(view);
            continue;
        }
        view.kept = true;
        view.usable_units = lines
            .iter()
            .enumerate()
            .filter(|(l, _)| eligible[*l])
            .map(|(_, line)| stock[line.slot].min(line.qty))
            .sum();
        candidates.push(view);
        let unit_cap = match (f.respect_capacity, n.capacity.units_per_day) {
            (true, Some(c)) => u64::from(c.saturating_sub(st.units_today)),
            _ => u64::MAX,
        };
        cands.push(Cand {
            node: ni,
            fixed: n.costs.per_order_minor + capacity_pressure(cost, st),
            base,
            per_kg,
            km_ceil: km_v.ceil() as i64,
            per_unit: n.costs.per_unit_minor,
            stock,
            aging,
            eligible,
            unit_cap,
        });
    }

    // Candidate indices in node id order: comparing sorted index sets compares node ids.
    cands.sort_by(|a, b| nodes[a.node].node.id.cmp(&nodes[b.node].node.id));
    let group = Group {
        lines,
        cands,
        cost,
        split_penalty: cost.split_penalty_minor,
        max_nodes: body.constraints.max_nodes as usize,
        all_or_nothing: !body.constraints.allow_partial,
    };
    let mut search = Search {
        g: &group,
        opts: *opts,
        sets: 0,
        leaves: 0,
        exhausted: false,
        top: Vec::new(),
        open_bound: i64::MAX,
        order: Vec::new(),
        suffix: Vec::new(),
    };
    // The empty plan (nothing allocated) is always possible.
    let empty_cost: i64 = group.lines.iter().map(|l| l.penalty * l.qty as i64).sum();
    search.offer(Found { cost: empty_cost, set: Vec::new(), units: vec![Vec::new(); group.lines.len()] });

    // Phase 1: every single-node plan, cheapest bound first. The bound is admissible, so
    // once one exceeds the threshold all later ones do.
    let mut scored: Vec<(i64, usize)> = (0..group.cands.len()).map(|ci| (search.bound_exact(&[ci]), ci)).collect();
    scored.sort_unstable();
    for &(bound, ci) in &scored {
        if !search.worth(bound) {
            break;
        }
        search.sets += 1;
        search.allocate(&[ci]);
    }

    // Phase 2: multi-node sets from a shortlist: the best single-node bounds, and per line
    // the cheapest holders (and every holder of a scarce line).
    let mut shortlist: Vec<usize> = scored.iter().take(SHORTLIST_BEST).map(|&(_, ci)| ci).collect();
    for (l, line) in group.lines.iter().enumerate() {
        let mut holders: Vec<(i64, usize)> = (0..group.cands.len())
            .filter(|&ci| group.cands[ci].eligible[l] && group.cands[ci].stock[line.slot] > 0)
            .map(|ci| (group.cands[ci].fixed + group.cands[ci].base + group.unit_lb_milli(l, ci) / 1000, ci))
            .collect();
        holders.sort_unstable();
        let take = if holders.len() <= SCARCE_HOLDERS { holders.len() } else { SHORTLIST_PER_LINE };
        shortlist.extend(holders.iter().take(take).map(|&(_, ci)| ci));
    }
    let rank: HashMap<usize, usize> = scored.iter().enumerate().map(|(r, &(_, ci))| (ci, r)).collect();
    shortlist.sort_by_key(|ci| rank.get(ci).copied().unwrap_or(usize::MAX));
    shortlist.dedup();
    if group.max_nodes > 1 {
        search.order = shortlist.clone();
        search.build_suffixes();
        let mut set = Vec::new();
        search.sets(&mut set, 0);
    }

    // Phase 3: a set with a node outside the shortlist has at least two nodes (single-node
    // plans were all considered), so it costs at least that node's fixed cost, another
    // node's, a split penalty and the linear relaxation over every candidate.
    let in_shortlist: std::collections::HashSet<usize> = shortlist.iter().copied().collect();
    let outsiders: Vec<usize> = (0..group.cands.len()).filter(|ci| !in_shortlist.contains(ci)).collect();
    if group.max_nodes > 1 && !outsiders.is_empty() {
        let all: Vec<usize> = (0..group.cands.len()).collect();
        let lp_all = search.lp(&all, None);
        let min_fixed_all = group.cands.iter().map(|c| c.fixed + c.base).min().unwrap_or(0);
        let min_fixed_out = outsiders.iter().map(|&ci| group.cands[ci].fixed + group.cands[ci].base).min().unwrap_or(0);
        let lb_out = min_fixed_out + min_fixed_all + group.split_penalty + lp_all;
        let best_cost = search.top.first().map_or(empty_cost, |f| f.cost);
        if lb_out < best_cost {
            // Not proven: the best plan found stands, with the gap to the bound.
            search.exhausted = true;
            search.open_bound = search.open_bound.min(lb_out);
        }
    }

    let ids =
        |f: &Found| -> Vec<NodeId> { f.set.iter().map(|&ci| nodes[group.cands[ci].node].node.id.clone()).collect() };
    let top = search.top.clone();
    let best = top.first().cloned().unwrap_or(Found { cost: empty_cost, set: Vec::new(), units: Vec::new() });
    let gap = if search.exhausted { (best.cost - search.open_bound.min(best.cost)).max(0) } else { 0 };
    let alternatives = top
        .iter()
        .skip(1)
        .take(2)
        .map(|f| PlanSummary {
            nodes: ids(f),
            total_cost_minor: f.cost,
            allocated_units: f.units.iter().flatten().sum(),
        })
        .collect();

    // Build packages of the best plan with itemised costs.
    let mut packages = Vec::new();
    let mut placed = Vec::new();
    let mut set_order: Vec<(usize, usize)> = best.set.iter().enumerate().map(|(k, &ci)| (k, ci)).collect();
    set_order.sort_by(|a, b| nodes[group.cands[a.1].node].node.id.cmp(&nodes[group.cands[b.1].node].node.id));
    for (k, ci) in set_order {
        let c = &group.cands[ci];
        let node = nodes[c.node].node;
        let mut regular = Package {
            node_id: node.id.clone(),
            kind: PackageKind::Ship,
            lines: Vec::new(),
            weight_g: 0,
            cost: CostBreakdown::default(),
        };
        let mut handling = c.fixed - capacity_pressure(cost, &nodes[c.node]);
        let mut alone = Vec::new();
        let mut units_by_slot: HashMap<usize, u64> = HashMap::new();
        for (l, line) in group.lines.iter().enumerate() {
            let u = best.units[l][k];
            if u == 0 {
                continue;
            }
            placed.push((line.order_index, u));
            *units_by_slot.entry(line.slot).or_default() += u;
            handling += c.per_unit * u as i64;
            let ol = &order.lines[line.order_index];
            if line.ship_alone {
                for _ in 0..u {
                    let kg = billed_kg(line.weight_g);
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
        let aging_bonus: i64 =
            units_by_slot.iter().map(|(slot, u)| (*u).min(c.aging[*slot]) as i64 * cost.aging_bonus_minor).sum();
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
        }
        for p in &mut node_pkgs {
            p.cost.sum();
        }
        packages.extend(node_pkgs);
    }
    GroupOutcome { packages, placed, candidates, alternatives, sets: search.sets, exhausted: search.exhausted, gap }
}

#[cfg(test)]
mod tests;
