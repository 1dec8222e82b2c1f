//! The sourcing engine: one decision per order. See the module docs of `sourcing` for the
//! algorithm.
//!
//! Map: `decision` (inputs and outputs: the order, the network, the plan and its
//! explanation); `cost` (exact cost arithmetic, shared by the search and the reported
//! packages, and bound arithmetic, ×1000 and saturating); `group` (the candidates of one
//! destination group as flat per-candidate × per-line arrays); `dominance` (aggregates of
//! the candidates still to come, the cover table and `drop_dominated`: what superset bounds
//! and the candidate pool are built from); `alloc` (exact allocation over one node set);
//! `search` (the top three, the budget, set bounds, seeding and the depth first search over
//! sets); `eligibility` (per-node and per-line keep/drop reasons); `report` (packages and
//! the explanation); here, `source` (the order: its rule, pinned pickup lines, destination
//! groups and plan) and `source_group` (one group: eligibility, then search, then report).
//!
//! Indices, in every module: `c` a candidate of a group (an index into
//! `Group::candidates`), `l` a line of the group, `s` a SKU slot (the group's distinct SKUs),
//! `k` a position in a node set, `p` a position in a search order, `u` units; amounts ending
//! in `milli` are ×1000.
//!
//! Every bound must stay admissible — never above the cost of any plan it stands for —
//! and `engine/tests.rs` checks plans and both alternatives against brute force.

mod alloc;
mod cost;
mod decision;
mod dominance;
mod eligibility;
mod group;
mod report;
mod search;

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{FulfillmentMethod, Item};
use crate::geo::GeoPoint;
use crate::ids::{NodeId, Sku};
use crate::sourcing::policy::{OrderFacts, Policy, Rule, RuleBody};
use crate::sourcing::table::NodeTable;

pub use decision::{
    CandidateView, Candidates, CandidatesIter, CostBreakdown, Decision, DropReason, Explanation, Holding, LineQty,
    LineToSource, NodeState, OrderToSource, Package, PackageKind, Plan, PlanSummary, PromiseTerms, SearchOptions,
    SourcingNetwork,
};

use eligibility::{EligibleGroup, OrderStock, eligible_group, is_ship_type};
use group::{CandidateArrays, CandidateBounds};
use report::qty;
use search::{SearchScratch, SetPlan, search_group};

/// Buffers a decision takes over from the previous one on the same thread (their
/// capacity only: every use starts empty), so that a decision allocates little.
///
/// Not the node states: they borrow from the network, which a buffer kept across decisions
/// cannot (a fresh vector per decision costs one allocation of 16 bytes per node).
#[derive(Default)]
struct Scratch {
    holdings: Vec<Holding>,
    row_of: Vec<u32>,
    rows: Vec<(u64, u64)>,
    group_arrays: CandidateArrays,
    single_bound: Vec<i64>,
    holders: Vec<usize>,
    search: SearchScratch,
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
    let mut node_states: Vec<NodeState<'_>> = Vec::with_capacity(net.node_count());
    net.node_states(&mut node_states);
    let nodes = node_states.as_slice();
    let items: Vec<Option<&Item>> = order.lines.iter().map(|l| net.item(&l.sku)).collect();
    let (rule, body) = choose_rule(order, &items, policy);
    let rule_reason = match rule {
        Some(r) => format!("rule {:?} matched: {}", r.name, r.when.describe()),
        None => "no rule matched; the fallback applies".to_owned(),
    };
    let rows = (emptied(&mut scratch.row_of), emptied(&mut scratch.rows));
    let mut holdings = emptied(&mut scratch.holdings);
    let stock = OrderStock::read(order, net, nodes.len(), rows, &mut holdings);
    scratch.holdings = holdings;
    let pinned = pin_pickup_lines(order, nodes, &items, &stock);
    let groups = ship_groups(order, nodes);
    let table = match net.node_table().filter(|t| t.len() == nodes.len()) {
        Some(t) => Arc::clone(t),
        None if groups.is_empty() => Arc::default(),
        None => Arc::new(NodeTable::ids_only(nodes.iter().map(|n| &n.node.id), nodes.len())),
    };
    let mut sourced = Sourced::pinned(pinned.packages, pinned.placed, pinned.nodes);
    let ctx =
        GroupCtx { order, nodes, items: &items, body, stock: &stock, pinned_used: &pinned.used, opts, table: &table };
    for (dest, line_indices) in &groups {
        sourced.add(source_group(&ctx, *dest, line_indices, &mut scratch));
    }
    // allow_partial = false: all or nothing.
    let complete = order.lines.iter().enumerate().all(|(i, l)| sourced.placed[i] == l.quantity.get());
    if !body.constraints.allow_partial && !complete {
        sourced.packages.clear();
        sourced.chosen_nodes.clear();
        sourced.placed.iter_mut().for_each(|p| *p = 0);
    }
    let Sourced { packages, placed, chosen_nodes, mut candidates, alternatives, sets_evaluated, exhausted, gap } =
        sourced;
    let plan = report::plan(order, body, packages, &placed, (!exhausted, gap));
    for &index in &chosen_nodes {
        candidates.choose(index);
    }
    (scratch.row_of, scratch.rows) = stock.into_buffers();
    SCRATCH.with(|s| s.set(Some(scratch)));
    let explanation = Explanation {
        rule: rule.map(|r| r.name.clone()),
        rule_reason,
        candidates,
        alternatives,
        sets_evaluated,
        budget_exhausted: exhausted,
    };
    Decision { plan, explanation }
}

/// The policy rule for the order (`None`: the fallback) and its body.
fn choose_rule<'p>(
    order: &OrderToSource,
    items: &[Option<&Item>],
    policy: &'p Policy,
) -> (Option<&'p Rule>, &'p RuleBody) {
    // (Facts are for rules: with none, the fallback applies without them.)
    if policy.rules.is_empty() {
        return (None, &policy.fallback);
    }
    let facts = OrderFacts::of(order, items.iter().any(|i| i.is_some_and(|i| i.hazmat)));
    policy.select(&facts)
}

/// The index of the node with id `id`.
fn find_node(nodes: &[NodeState<'_>], id: &NodeId) -> Option<usize> {
    nodes.iter().position(|n| &n.node.id == id)
}

/// Pickup and curbside lines, pinned to their node: its ATP or nothing.
struct PinnedLines<'o> {
    /// One pickup package per node, in node id order (costs summed).
    packages: Vec<Package>,
    /// Units placed per order line (0 for ship-type lines).
    placed: Vec<u64>,
    /// Units taken per (node, SKU): ship-type lines cannot use them.
    used: HashMap<(usize, &'o Sku), u64>,
    /// Node indices of the packages.
    nodes: Vec<usize>,
}

fn pin_pickup_lines<'o>(
    order: &'o OrderToSource,
    nodes: &[NodeState<'_>],
    items: &[Option<&Item>],
    stock: &OrderStock<'_>,
) -> PinnedLines<'o> {
    let mut placed: Vec<u64> = vec![0; order.lines.len()];
    let mut used: HashMap<(usize, &Sku), u64> = HashMap::new();
    let mut by_node: HashMap<usize, Package> = HashMap::new();
    for (i, line) in order.lines.iter().enumerate() {
        if is_ship_type(line.method) {
            continue;
        }
        let Some(index) = line.pickup_node.as_ref().and_then(|id| find_node(nodes, id)) else { continue };
        let node = nodes[index].node;
        let ok = node.is_active()
            && node.has(line.method.required_capability())
            && items[i].is_some_and(|it| it.allows(line.method));
        if !ok {
            continue;
        }
        let taken = used.entry((index, &line.sku)).or_default();
        let avail = stock.at(&line.sku, index).0.saturating_sub(*taken);
        let take = avail.min(line.quantity.get());
        if take == 0 {
            continue;
        }
        *taken += take;
        placed[i] = take;
        let package = by_node.entry(index).or_insert_with(|| Package {
            node_id: node.id.clone(),
            kind: PackageKind::Pickup,
            lines: Vec::new(),
            weight_g: 0,
            cost: CostBreakdown { handling: node.costs.per_order_minor, ..Default::default() },
        });
        package.lines.push(LineQty { line_id: line.line_id.clone(), sku: line.sku.clone(), quantity: qty(take) });
        package.weight_g += u64::from(items[i].map_or(0, |it| it.weight_g)) * take;
        package.cost.handling += node.costs.per_unit_minor * take as i64;
    }
    let pinned_nodes = by_node.keys().copied().collect();
    let mut packages: Vec<Package> = by_node.into_values().collect();
    packages.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    for package in &mut packages {
        package.cost.sum();
    }
    PinnedLines { packages, placed, used, nodes: pinned_nodes }
}

/// The ship-type lines (order line indices) grouped by destination: the customer, or the
/// store for ship-to-store; groups in order of their first line.
fn ship_groups(order: &OrderToSource, nodes: &[NodeState<'_>]) -> Vec<(Option<GeoPoint>, Vec<usize>)> {
    let mut groups: Vec<(Option<GeoPoint>, Vec<usize>)> = Vec::new();
    for (i, line) in order.lines.iter().enumerate() {
        if !is_ship_type(line.method) {
            continue;
        }
        let dest = if line.method == FulfillmentMethod::ShipToStore {
            line.pickup_node.as_ref().and_then(|id| find_node(nodes, id)).map(|index| nodes[index].node.location)
        } else {
            order.ship_to
        };
        match groups.iter_mut().find(|(d, _)| *d == dest) {
            Some((_, lines)) => lines.push(i),
            None => groups.push((dest, vec![i])),
        }
    }
    groups
}

/// What the order's pinned lines and destination groups add up to.
struct Sourced {
    /// Pickup packages first, then each group's.
    packages: Vec<Package>,
    /// Units placed per order line.
    placed: Vec<u64>,
    /// Node indices of the packages, for the explanation's `chosen`.
    chosen_nodes: Vec<usize>,
    /// The first group's candidates and alternatives (the explanation's).
    candidates: Candidates,
    alternatives: Vec<PlanSummary>,
    sets_evaluated: u32,
    exhausted: bool,
    gap: i64,
}

impl Sourced {
    fn pinned(packages: Vec<Package>, placed: Vec<u64>, chosen_nodes: Vec<usize>) -> Sourced {
        Sourced {
            packages,
            placed,
            chosen_nodes,
            candidates: Candidates::default(),
            alternatives: Vec::new(),
            sets_evaluated: 0,
            exhausted: false,
            gap: 0,
        }
    }

    fn add(&mut self, outcome: GroupOutcome) {
        self.sets_evaluated += outcome.sets;
        self.exhausted |= outcome.exhausted;
        self.gap += outcome.gap;
        for (i, u) in outcome.placed {
            self.placed[i] += u;
        }
        self.packages.extend(outcome.packages);
        self.chosen_nodes.extend(outcome.chosen_nodes);
        if self.candidates.is_empty() {
            self.candidates = outcome.candidates;
            self.alternatives = outcome.alternatives;
        }
    }
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

/// Sources one destination group (the ship-type lines `line_indices` bound for `dest`):
/// eligibility, then the search, then the report of its best plan.
fn source_group(
    ctx: &GroupCtx<'_, '_>,
    dest: Option<GeoPoint>,
    line_indices: &[usize],
    scratch: &mut Scratch,
) -> GroupOutcome {
    let EligibleGroup { group, bounds, candidates } = eligible_group(ctx, dest, line_indices, scratch);
    let CandidateBounds { all, mut single_bound } = bounds;
    let found = search_group(&group, ctx.nodes, ctx.opts, (all, &mut single_bound), &mut scratch.search);
    let empty = || SetPlan { cost: group.empty_plan_cost(), set: Vec::new(), units: Vec::new() };
    let best = found.top.first().cloned().unwrap_or_else(empty);
    let gap = if found.exhausted { (best.cost - found.open_bound.min(best.cost)).max(0) } else { 0 };
    let alternatives = report::alternatives(&group, ctx.nodes, &found.top);
    let (packages, placed) = report::group_packages(&group, ctx.nodes, ctx.order, &best);
    let chosen_nodes = best.set.iter().map(|&c| group.candidates[c].node).collect();
    scratch.single_bound = single_bound;
    scratch.group_arrays = group.into_arrays();
    GroupOutcome {
        packages,
        placed,
        chosen_nodes,
        candidates,
        alternatives,
        sets: found.sets,
        exhausted: found.exhausted,
        gap,
    }
}

#[cfg(test)]
mod tests;
