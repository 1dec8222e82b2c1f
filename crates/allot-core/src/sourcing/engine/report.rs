//! Reporting: the packages of the chosen plans with itemised costs, the runners-up of the
//! explanation, and the plan's totals. Reads the plans the search found; never searches
//! or changes one. Invariant: the packages' costs and the penalties add up to the total.

use crate::ids::NodeId;
use crate::qty::Qty;
use crate::sourcing::policy::RuleBody;

use super::cost::{billed_kg, capacity_pressure, emissions};
use super::decision::{CostBreakdown, LineQty, NodeState, OrderToSource, Package, PackageKind, Plan, PlanSummary};
use super::group::{Group, GroupLine};
use super::search::SetPlan;

pub(super) fn qty(v: u64) -> Qty {
    // Quantities in plans never exceed a line's quantity, itself a Qty.
    Qty::new(v).unwrap_or(Qty::MAX)
}

/// The explanation's runners-up: the second and third of the top three plans.
pub(super) fn alternatives(group: &Group<'_>, nodes: &[NodeState<'_>], top: &[SetPlan]) -> Vec<PlanSummary> {
    let ids = |plan: &SetPlan| -> Vec<NodeId> {
        plan.set.iter().map(|&c| nodes[group.candidates[c].node].node.id.clone()).collect()
    };
    top.iter()
        .skip(1)
        .take(2)
        .map(|plan| PlanSummary {
            nodes: ids(plan),
            total_cost_minor: plan.cost,
            allocated_units: plan.units.iter().sum(),
        })
        .collect()
}

/// The packages of a group's plan `best` with itemised costs (its set is in node id order),
/// and the units it places, per order line index.
pub(super) fn group_packages(
    group: &Group<'_>,
    nodes: &[NodeState<'_>],
    order: &OrderToSource,
    best: &SetPlan,
) -> (Vec<Package>, Vec<(usize, u64)>) {
    let mut packages = Vec::new();
    let mut placed = Vec::new();
    let set_len = best.set.len();
    for (k, &c) in best.set.iter().enumerate() {
        let units = |l: usize| best.units[l * set_len + k];
        node_packages(group, (nodes, order), c, units, (&mut packages, &mut placed));
    }
    (packages, placed)
}

/// The packages of candidate `c` shipping `units(l)` of each line `l`: its regular package
/// and one per ship-alone unit. The node-level terms (handling, capacity, aging, late) go on
/// its first package; the split penalty is the order's (`plan`).
fn node_packages(
    group: &Group<'_>,
    (nodes, order): (&[NodeState<'_>], &OrderToSource),
    c: usize,
    units: impl Fn(usize) -> u64,
    (packages, placed): (&mut Vec<Package>, &mut Vec<(usize, u64)>),
) {
    let candidate = &group.candidates[c];
    let state = &nodes[candidate.node];
    let cost = group.cost;
    let mut regular = Package {
        node_id: state.node.id.clone(),
        kind: PackageKind::Ship,
        lines: Vec::new(),
        weight_g: 0,
        cost: CostBreakdown::default(),
    };
    let mut handling = candidate.fixed - capacity_pressure(cost, state) - candidate.late;
    let mut alone = Vec::new();
    let mut units_by_slot = vec![0u64; group.slots];
    for (l, line) in group.lines.iter().enumerate() {
        let u = units(l);
        if u == 0 {
            continue;
        }
        placed.push((line.order_index, u));
        units_by_slot[line.slot] += u;
        handling += candidate.per_unit * u as i64;
        let order_line = &order.lines[line.order_index];
        let line_qty =
            |quantity| LineQty { line_id: order_line.line_id.clone(), sku: order_line.sku.clone(), quantity };
        if line.ship_alone {
            for _ in 0..u {
                alone.push(ship_alone_package(group, c, state, line, line_qty(qty(1))));
            }
        } else {
            regular.weight_g += line.weight_g * u;
            regular.lines.push(line_qty(qty(u)));
        }
    }
    let aging = &group.aging[c * group.slots..(c + 1) * group.slots];
    let aging_bonus: i64 =
        units_by_slot.iter().zip(aging).map(|(u, a)| (*u).min(*a) as i64 * cost.aging_bonus_minor).sum();
    let capacity = capacity_pressure(cost, state);
    let mut node_packages = Vec::new();
    if !regular.lines.is_empty() {
        let kg = billed_kg(regular.weight_g);
        regular.cost.shipping = candidate.base + candidate.per_kg * kg;
        regular.cost.emissions = emissions(cost, kg, candidate.km_ceil);
        node_packages.push(regular);
    }
    node_packages.extend(alone);
    if let Some(first) = node_packages.first_mut() {
        first.cost.handling = handling;
        first.cost.capacity = capacity;
        first.cost.aging_bonus = -aging_bonus;
        first.cost.late = candidate.late;
    }
    for package in &mut node_packages {
        package.cost.sum();
    }
    packages.extend(node_packages);
}

/// The package of one ship-alone unit of `line` from candidate `c`.
fn ship_alone_package(
    group: &Group<'_>,
    c: usize,
    state: &NodeState<'_>,
    line: &GroupLine,
    line_qty: LineQty,
) -> Package {
    let candidate = &group.candidates[c];
    let kg = line.unit_kg;
    let mut cost = CostBreakdown {
        shipping: candidate.base + candidate.per_kg * kg,
        emissions: emissions(group.cost, kg, candidate.km_ceil),
        ..Default::default()
    };
    cost.sum();
    Package {
        node_id: state.node.id.clone(),
        kind: PackageKind::ShipAlone,
        lines: vec![line_qty],
        weight_g: line.weight_g,
        cost,
    }
}

/// The order's plan from its packages (pickup first, then the groups') and the units
/// placed per order line: the split penalty on every package but the first, the units
/// left backordered or unfilled with their penalties, and the total.
pub(super) fn plan(
    order: &OrderToSource,
    body: &RuleBody,
    mut packages: Vec<Package>,
    placed: &[u64],
    (plan_is_optimal, gap_minor): (bool, i64),
) -> Plan {
    let split_penalty = body.cost.split_penalty_minor;
    for (i, package) in packages.iter_mut().enumerate() {
        package.cost.split_penalty = if i == 0 { 0 } else { split_penalty };
        package.cost.sum();
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
        let line_qty = LineQty { line_id: line.line_id.clone(), sku: line.sku.clone(), quantity: qty(left) };
        if line.allow_backorder && body.constraints.allow_backorder {
            backorder_penalty += body.cost.backorder_penalty_minor * left as i64;
            backordered.push(line_qty);
        } else {
            unfilled_penalty += body.cost.unfilled_penalty_minor * left as i64;
            unfilled.push(line_qty);
        }
    }
    let total = packages.iter().map(|p| p.cost.total).sum::<i64>() + backorder_penalty + unfilled_penalty;
    Plan {
        packages,
        backordered,
        unfilled,
        backorder_penalty_minor: backorder_penalty,
        unfilled_penalty_minor: unfilled_penalty,
        total_cost_minor: total,
        plan_is_optimal,
        gap_minor,
    }
}
