//! The search itself. See the module docs of `sourcing` for the algorithm.
//!
//! Map: `decision` (inputs and outputs: the order, the network, the plan and its
//! explanation); `cost` (exact cost arithmetic, shared by the search and the reported
//! packages, and bound arithmetic, ×1000 and saturating); `group` (the candidates of one
//! destination group as flat per-candidate × per-line arrays); `dominance` (aggregates of
//! the candidates still to come, the cover table and `drop_dominated`: what superset bounds
//! and the candidate pool are built from); `alloc` (exact allocation over one node set);
//! `search` (the top three, the budget, set bounds, seeding and the depth first search over
//! sets); `eligibility` (per-node and per-line keep/drop reasons); `report` (packages and
//! the explanation); here, `source` and `source_group`, which call them in that order.
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
use crate::geo::{ChordLimit, GeoPoint, SpherePoint};
use crate::ids::{NodeId, Sku};
use crate::network::NodeType;
use crate::sourcing::policy::{OrderFacts, Policy, RuleBody};
use crate::sourcing::table::{NodeTable, capability_bit};

pub use decision::{
    CandidateView, Candidates, CandidatesIter, CostBreakdown, Decision, DropReason, Explanation, Holding, LineQty,
    LineToSource, NodeState, OrderToSource, Package, PackageKind, Plan, PlanSummary, PromiseTerms, SearchOptions,
    SourcingNetwork,
};

use alloc::AllocationSearch;
use cost::*;
use decision::Distance;
use dominance::{AddableNodes, CoverTable, drop_dominated};
use eligibility::*;
use group::*;
use report::qty;
use search::*;

/// Buffers a decision takes over from the previous one on the same thread (their
/// capacity only: every use starts empty), so that a decision allocates little.
#[derive(Default)]
struct Scratch {
    /// Always empty between decisions (its capacity is what is kept).
    nodes: Vec<NodeState<'static>>,
    holdings: Vec<Holding>,
    row_of: Vec<u32>,
    rows: Vec<(u64, u64)>,
    candidates: Vec<GroupCandidate>,
    avail: Vec<u64>,
    unit: Vec<i64>,
    stock: Vec<u64>,
    aging: Vec<u64>,
    single_bound: Vec<i64>,
    by_bound: Vec<(i64, usize)>,
    holders: Vec<usize>,
    allocation: AllocationSearch,
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
    let lines: Vec<GroupLine> = line_idx
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
            GroupLine {
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
    let mut group_candidates = emptied(&mut scratch.candidates);
    let mut avail = emptied(&mut scratch.avail);
    let mut unit = emptied(&mut scratch.unit);
    let mut cand_stock = emptied(&mut scratch.stock);
    let mut cand_aging = emptied(&mut scratch.aging);
    let mut all = AddableNodes::empty(nl);
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
        group_candidates.push(GroupCandidate {
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
        candidates: group_candidates,
        avail,
        unit,
        stock: cand_stock,
        aging: cand_aging,
    };
    let g = &group;
    let n_cands = g.candidates.len();
    // (The aggregate's least entry is the least over the candidates.)
    let min_entry = if g.candidates.is_empty() { 0 } else { all.min_entry[0] };
    let mut search = Search {
        g,
        ids: CandidateIds::new(nodes, &g.candidates),
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
        allocation: std::mem::take(&mut scratch.allocation),
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
    search.offer(SetPlan { cost: empty_cost, set: Vec::new(), units: Vec::new() });

    // Bounds of every candidate: alone, and in any set of two or more nodes.
    let multi = g.max_nodes > 1 && n_cands > 1;
    let all = if multi { all } else { AddableNodes::default() };
    let mut pre = search.candidate_bound_terms(&all);
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
    // rest (`CandidateBoundTerms::cheap`): the quick bound of every candidate in such sets.
    let cheap = pre.cheap;
    let quick = |c: usize| floor_milli(g.entry_milli(&[c]).saturating_add(cheap));
    let multi = multi && quick_floor(g, &pre, min_entry) <= search.threshold();
    scratch.by_bound = by_bound;
    if multi {
        search.cover = CoverTable::build(g);
        search.add_entry_floors(&all, &mut pre);
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
            let plain = small_lines && small(g.candidates[c].alone_extra) && entry.unsigned_abs() < 1 << 40;
            for (l, line) in g.lines.iter().enumerate() {
                let a = g.avail[c * nl + l];
                let u = a.min(line.qty);
                let unit = g.unit[c * nl + l];
                let aged = u.min(g.aged(c, l, a));
                let alone = if line.ship_alone { u.saturating_sub(1) } else { 0 };
                // `g.units_cost(c, l, u, aged, true)` without its branch on u = 0 (the
                // score only counts when a > 0, so u ≥ 1).
                let v = if plain && small(unit) {
                    let units =
                        unit * u as i64 - g.bonus_milli * aged as i64 + g.candidates[c].alone_extra * alone as i64;
                    entry + units + line.penalty_milli * (line.qty - u) as i64
                } else {
                    let units = saturating_times(unit, u).saturating_sub(saturating_times(g.bonus_milli, aged));
                    let units = units.saturating_add(saturating_times(g.candidates[c].alone_extra, alone));
                    entry.saturating_add(units).saturating_add(saturating_times(line.penalty_milli, line.qty - u))
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
                .filter(|&c| g.candidates[c].entry.saturating_mul(1000).saturating_sub(split_milli) <= within)
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
            let agg = AddableNodes::suffixes(g, &pool);
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

    let ids =
        |f: &SetPlan| -> Vec<NodeId> { f.set.iter().map(|&c| nodes[g.candidates[c].node].node.id.clone()).collect() };
    let top = std::mem::take(&mut search.top);
    let best = top.first().cloned().unwrap_or(SetPlan { cost: empty_cost, set: Vec::new(), units: Vec::new() });
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
        let c = &g.candidates[ci];
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
    let chosen_nodes = best.set.iter().map(|&c| g.candidates[c].node).collect();
    let (sets, exhausted) = (search.sets, search.exhausted);
    scratch.allocation = std::mem::take(&mut search.allocation);
    drop(search);
    scratch.single_bound = single_bound;
    scratch.candidates = group.candidates;
    scratch.avail = group.avail;
    scratch.unit = group.unit;
    scratch.stock = group.stock;
    scratch.aging = group.aging;
    GroupOutcome { packages, placed, chosen_nodes, candidates, alternatives, sets, exhausted, gap }
}

#[cfg(test)]
mod tests;
