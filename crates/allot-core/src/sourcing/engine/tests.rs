//! The engine against brute-force enumeration on thousands of small random instances, and
//! table tests for eligibility, pickup pinning, partial and backorder rules.

use super::*;
use crate::money::Currency;
use crate::network::{Capability, Node, NodeCapacity, NodeCosts, NodeStatus, NodeType, TimeZoneName};
use crate::qty::Qty;
use crate::rng::SplitMix64;
use crate::sourcing::policy::{Constraints, CostModel, Filters, Policy, RuleBody, ShippingZone};

struct Net {
    nodes: Vec<Node>,
    orders_today: Vec<u32>,
    units_today: Vec<u32>,
    items: Vec<Item>,
    /// (node index, sku, atp, aging)
    stock: Vec<(usize, Sku, u64, u64)>,
}

struct View<'a> {
    states: Vec<NodeState<'a>>,
    net: &'a Net,
    /// The nodes' table, or none (the engine then copies ids and computes every distance).
    table: Option<Arc<NodeTable>>,
}

impl<'a> View<'a> {
    fn new(net: &'a Net) -> View<'a> {
        let mut view = View::without_points(net);
        view.table = Some(Arc::new(NodeTable::new(&net.nodes)));
        view
    }

    fn without_points(net: &'a Net) -> View<'a> {
        let states = net
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeState { node, orders_today: net.orders_today[i], units_today: net.units_today[i] })
            .collect();
        View { states, net, table: None }
    }
}

impl SourcingNetwork for View<'_> {
    fn node_count(&self) -> usize {
        self.states.len()
    }
    fn node(&self, index: usize) -> NodeState<'_> {
        self.states[index]
    }
    fn item(&self, sku: &Sku) -> Option<&Item> {
        self.net.items.iter().find(|i| &i.sku == sku)
    }
    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>) {
        for (n, s, atp, aging) in &self.net.stock {
            if s == sku {
                out.push(Holding { node: *n, atp: Qty::new(*atp).unwrap(), aging: Qty::new(*aging).unwrap() });
            }
        }
    }
    fn node_table(&self) -> Option<&Arc<NodeTable>> {
        self.table.as_ref()
    }
}

fn sku(i: usize) -> Sku {
    Sku::parse(&format!("S{i}")).unwrap()
}

fn node(i: usize, node_type: NodeType, lat: f64, lon: f64, caps: Vec<Capability>) -> Node {
    Node {
        id: NodeId::parse(&format!("N{i}")).unwrap(),
        node_type,
        name: format!("node {i}"),
        location: GeoPoint::new(lat, lon).unwrap(),
        time_zone: TimeZoneName::parse("UTC").unwrap(),
        capabilities: crate::network::canonical_capabilities(caps),
        status: NodeStatus::Active,
        capacity: NodeCapacity::default(),
        costs: NodeCosts { per_order_minor: 100, per_unit_minor: 10, currency: Currency::parse("USD").unwrap() },
    }
}

fn item(i: usize, weight_g: u32) -> Item {
    Item {
        sku: sku(i),
        name: format!("item {i}"),
        weight_g,
        dims_mm: None,
        hazmat: false,
        ship_alone: false,
        methods: FulfillmentMethod::ALL.to_vec(),
        substitutes: Vec::new(),
    }
}

fn line(id: &str, s: usize, q: u64) -> LineToSource {
    LineToSource {
        line_id: id.to_owned(),
        sku: sku(s),
        quantity: Qty::new(q).unwrap(),
        method: FulfillmentMethod::Ship,
        pickup_node: None,
        service_level: None,
        allow_backorder: false,
        unit_price_minor: 1000,
    }
}

/// A random small instance: 1–4 nodes, 1–3 SKUs, 1–3 ship lines of 1–3 units.
fn random_instance(seed: u64) -> (Net, OrderToSource, Policy) {
    let mut r = SplitMix64::new(seed);
    let n_nodes = r.range(1, 4) as usize;
    let n_skus = r.range(1, 3) as usize;
    let types = [NodeType::Dc, NodeType::Store, NodeType::Dropship];
    let mut nodes = Vec::new();
    for i in 0..n_nodes {
        let mut caps = vec![Capability::Pickup];
        if r.chance(0.85) {
            caps.push(Capability::Ship);
        }
        let lat = 30.0 + r.unit() * 15.0;
        let lon = -120.0 + r.unit() * 45.0;
        let mut n = node(i, *r.pick(&types), lat, lon, caps);
        if r.chance(0.1) {
            n.status = NodeStatus::Paused;
        }
        n.costs.per_order_minor = r.range(0, 600) as i64;
        n.costs.per_unit_minor = r.range(0, 80) as i64;
        if r.chance(0.3) {
            n.capacity =
                NodeCapacity { orders_per_day: Some(r.range(1, 10) as u32), units_per_day: Some(r.range(1, 6) as u32) };
        }
        nodes.push(n);
    }
    let orders_today = (0..n_nodes).map(|_| r.range(0, 8) as u32).collect();
    let units_today = (0..n_nodes).map(|_| r.range(0, 3) as u32).collect();
    let mut items = Vec::new();
    for i in 0..n_skus {
        let mut it = item(i, r.range(50, 3500) as u32);
        it.hazmat = r.chance(0.1);
        it.ship_alone = r.chance(0.15);
        items.push(it);
    }
    let mut stock = Vec::new();
    for n in 0..n_nodes {
        for s in 0..n_skus {
            if r.chance(0.75) {
                let atp = r.range(0, 3);
                stock.push((n, sku(s), atp, r.range(0, atp)));
            }
        }
    }
    let n_lines = r.range(1, 3) as usize;
    let mut lines = Vec::new();
    for l in 0..n_lines {
        let mut ln = line(&format!("{}", l + 1), r.range(0, n_skus as u64 - 1) as usize, r.range(1, 3));
        ln.allow_backorder = r.chance(0.5);
        lines.push(ln);
    }
    // Keep the enumeration small: at most 3 units per line over at most 4 nodes.
    let order = OrderToSource {
        ship_to: Some(GeoPoint::new(30.0 + r.unit() * 15.0, -120.0 + r.unit() * 45.0).unwrap()),
        lines,
        ..Default::default()
    };
    let cost = CostModel {
        shipping_zones: vec![
            ShippingZone { max_km: 500.0, base_minor: r.range(100, 700) as i64, per_kg_minor: r.range(0, 150) as i64 },
            ShippingZone {
                max_km: 1500.0 + r.unit() * 2000.0,
                base_minor: r.range(700, 1500) as i64,
                per_kg_minor: r.range(50, 250) as i64,
            },
        ],
        split_penalty_minor: r.range(0, 800) as i64,
        capacity_penalty_minor: r.range(0, 1) as i64 * r.range(0, 900) as i64,
        backorder_penalty_minor: r.range(200, 3000) as i64,
        unfilled_penalty_minor: r.range(500, 6000) as i64,
        late_penalty_minor_per_day: 0,
        emissions_minor_per_kg_co2: r.range(0, 1) as i64 * r.range(0, 30) as i64,
        co2_g_per_kg_km: r.range(0, 1) as i64 * r.range(0, 3) as i64,
        aging_bonus_minor: r.range(0, 1) as i64 * r.range(0, 200) as i64,
    };
    let filters = Filters {
        max_distance_km: if r.chance(0.2) { Some(800.0 + r.unit() * 2000.0) } else { None },
        store_protection_units: r.range(0, 1),
        respect_capacity: r.chance(0.7),
        ..Filters::default()
    };
    let constraints = Constraints {
        max_nodes: r.range(1, 3) as u32,
        allow_partial: r.chance(0.8),
        allow_backorder: r.chance(0.7),
        must_meet_promise: false,
    };
    let policy = Policy {
        name: "p".to_owned(),
        rules: Vec::new(),
        fallback: RuleBody { filters, constraints, cost },
        accept_within_minutes: None,
        jeopardy_action: Default::default(),
        transit: Default::default(),
        holds: Vec::new(),
        reject_reasons: Default::default(),
        limits: Default::default(),
    };
    (Net { nodes, orders_today, units_today, items, stock }, order, policy)
}

/// Independent reference: the cost of an allocation x[line][node], written straight from
/// the cost model's definition, and the set of feasible allocations by enumeration.
fn brute_force(net: &Net, order: &OrderToSource, policy: &Policy) -> i64 {
    brute_force_sets(net, order, policy).into_iter().map(|(cost, _)| cost).min().unwrap()
}

/// The same enumeration, by node set: every set of nodes some feasible allocation uses
/// (each of them), with its cheapest such allocation's cost; the empty set is the plan
/// that allocates nothing.
fn brute_force_sets(net: &Net, order: &OrderToSource, policy: &Policy) -> Vec<(i64, u64)> {
    let body = &policy.fallback;
    let (f, c, k) = (&body.filters, &body.cost, &body.constraints);
    let dest = order.ship_to.unwrap();
    let n_nodes = net.nodes.len();
    let item_of = |s: &Sku| net.items.iter().find(|i| &i.sku == s).unwrap();
    let atp =
        |n: usize, s: &Sku| net.stock.iter().find(|(nn, ss, _, _)| *nn == n && ss == s).map_or((0, 0), |t| (t.2, t.3));
    // Eligibility of node n for line l, and usable stock.
    let zone_of = |n: usize| {
        let km = dest.distance_km(net.nodes[n].location);
        if f.max_distance_km.is_some_and(|m| km > m) {
            return None;
        }
        c.shipping_zones.iter().find(|z| km <= z.max_km).map(|z| (z.base_minor, z.per_kg_minor, km.ceil() as i64))
    };
    let node_ok = |n: usize| {
        let node = &net.nodes[n];
        node.is_active()
            && !(f.respect_capacity && node.capacity.orders_per_day.is_some_and(|cap| net.orders_today[n] >= cap))
            && zone_of(n).is_some()
    };
    let eligible = |n: usize, l: &LineToSource| {
        let node = &net.nodes[n];
        let it = item_of(&l.sku);
        node_ok(n) && node.has(Capability::Ship) && (!it.hazmat || f.hazmat_node_types.contains(&node.node_type))
    };
    let usable = |n: usize, s: &Sku| {
        let protect = if net.nodes[n].node_type == NodeType::Store { f.store_protection_units } else { 0 };
        atp(n, s).0.saturating_sub(protect)
    };
    let penalty = |l: &LineToSource| {
        if l.allow_backorder && k.allow_backorder { c.backorder_penalty_minor } else { c.unfilled_penalty_minor }
    };
    let cost_of = |x: &[Vec<u64>]| -> i64 {
        let mut total = 0i64;
        let mut packages = 0i64;
        for n in 0..n_nodes {
            let units: u64 = x.iter().map(|xl| xl[n]).sum();
            if units == 0 {
                continue;
            }
            let node = &net.nodes[n];
            let (base, per_kg, km) = zone_of(n).unwrap();
            total += node.costs.per_order_minor + node.costs.per_unit_minor * units as i64;
            if let Some(cap) = node.capacity.orders_per_day {
                let o = net.orders_today[n] as i64;
                total += c.capacity_penalty_minor * o * o / (cap as i64 * cap as i64);
            }
            let emis = |kg: i64| kg * km * c.co2_g_per_kg_km * c.emissions_minor_per_kg_co2 / 1000;
            let mut reg_g = 0u64;
            for (l, line) in order.lines.iter().enumerate() {
                let it = item_of(&line.sku);
                if it.ship_alone {
                    for _ in 0..x[l][n] {
                        let kg = (it.weight_g as i64 + 999) / 1000;
                        total += base + per_kg * kg + emis(kg);
                        packages += 1;
                    }
                } else {
                    reg_g += it.weight_g as u64 * x[l][n];
                }
            }
            if reg_g > 0 {
                let kg = reg_g.div_ceil(1000) as i64;
                total += base + per_kg * kg + emis(kg);
                packages += 1;
            }
            // Aging bonus per SKU at this node.
            let mut per_sku: Vec<(&Sku, u64)> = Vec::new();
            for (l, line) in order.lines.iter().enumerate() {
                match per_sku.iter_mut().find(|(s, _)| *s == &line.sku) {
                    Some(e) => e.1 += x[l][n],
                    None => per_sku.push((&line.sku, x[l][n])),
                }
            }
            for (s, u) in per_sku {
                let aging = atp(n, s).1.min(usable(n, s));
                total -= u.min(aging) as i64 * c.aging_bonus_minor;
            }
        }
        total += c.split_penalty_minor * (packages - 1).max(0);
        for (l, line) in order.lines.iter().enumerate() {
            let placed: u64 = x[l].iter().sum();
            total += penalty(line) * (line.quantity.get() - placed) as i64;
        }
        total
    };
    // Enumerate every x with per-line sums ≤ qty over eligible nodes.
    let mut best: std::collections::BTreeMap<u64, i64> = std::collections::BTreeMap::new();
    let lines = &order.lines;
    let mut x = vec![vec![0u64; n_nodes]; lines.len()];
    fn rec(
        l: usize,
        n: usize,
        x: &mut Vec<Vec<u64>>,
        lines: &[LineToSource],
        visit: &mut dyn FnMut(&[Vec<u64>]),
        limit: &dyn Fn(usize, usize) -> u64,
    ) {
        if l == lines.len() {
            visit(x);
            return;
        }
        let n_nodes = x[0].len();
        if n == n_nodes {
            rec(l + 1, 0, x, lines, visit, limit);
            return;
        }
        let placed: u64 = x[l].iter().sum();
        let max = (lines[l].quantity.get() - placed).min(limit(l, n));
        for u in 0..=max {
            x[l][n] = u;
            rec(l, n + 1, x, lines, visit, limit);
        }
        x[l][n] = 0;
    }
    let limit = |l: usize, n: usize| if eligible(n, &lines[l]) { usable(n, &lines[l].sku) } else { 0 };
    let mut visit = |x: &[Vec<u64>]| {
        // Shared stock per (node, sku), unit capacity, max nodes, all-or-nothing.
        for n in 0..n_nodes {
            let mut per_sku: Vec<(&Sku, u64)> = Vec::new();
            for (l, line) in lines.iter().enumerate() {
                match per_sku.iter_mut().find(|(s, _)| *s == &line.sku) {
                    Some(e) => e.1 += x[l][n],
                    None => per_sku.push((&line.sku, x[l][n])),
                }
            }
            if per_sku.iter().any(|(s, u)| *u > usable(n, s)) {
                return;
            }
            let units: u64 = x.iter().map(|xl| xl[n]).sum();
            if f.respect_capacity
                && let Some(cap) = net.nodes[n].capacity.units_per_day
                && units > u64::from(cap.saturating_sub(net.units_today[n]))
            {
                return;
            }
        }
        let used = (0..n_nodes).filter(|&n| x.iter().any(|xl| xl[n] > 0)).count();
        if used > k.max_nodes as usize {
            return;
        }
        let complete = lines.iter().enumerate().all(|(l, line)| x[l].iter().sum::<u64>() == line.quantity.get());
        let empty = used == 0;
        if !k.allow_partial && !complete && !empty {
            return;
        }
        let mask = (0..n_nodes).filter(|&n| x.iter().any(|xl| xl[n] > 0)).fold(0u64, |m, n| m | 1 << n);
        let cost = cost_of(x);
        let entry = best.entry(mask).or_insert(cost);
        *entry = (*entry).min(cost);
    };
    rec(0, 0, &mut x, lines, &mut visit, &limit);
    best.into_iter().map(|(mask, cost)| (cost, mask)).collect()
}

#[test]
fn engine_matches_brute_force_on_thousands_of_random_instances() {
    let mut checked = 0;
    let mut split_plans = 0;
    for seed in 0..5000u64 {
        let (net, order, policy) = random_instance(seed);
        let view = View::new(&net);
        let decision = source(&order, &view, &policy, &SearchOptions::default());
        let expected = brute_force(&net, &order, &policy);
        assert!(decision.plan.plan_is_optimal, "seed {seed}: budget exhausted on a tiny instance");
        assert_eq!(decision.plan.total_cost_minor, expected, "seed {seed}: engine {:#?}", decision.plan);
        // The node table only spares copies and trigonometry: the decision, explanation
        // included, is the one made without it.
        let exact = source(&order, &View::without_points(&net), &policy, &SearchOptions::default());
        assert_eq!(decision, exact, "seed {seed}");
        // The reported packages add up to the total.
        let sum: i64 = decision.plan.packages.iter().map(|p| p.cost.total).sum::<i64>()
            + decision.plan.backorder_penalty_minor
            + decision.plan.unfilled_penalty_minor;
        assert_eq!(sum, decision.plan.total_cost_minor, "seed {seed}");
        let nodes: std::collections::BTreeSet<_> = decision.plan.packages.iter().map(|p| &p.node_id).collect();
        assert!(nodes.len() <= policy.fallback.constraints.max_nodes as usize, "seed {seed}");
        if nodes.len() > 1 {
            split_plans += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 5000);
    // The generator must exercise splits, or the test proves little.
    assert!(split_plans > 150, "only {split_plans} split plans");
}

/// A random instance crowded with look-alike nodes (few cost profiles, shared locations),
/// where dominance between candidates matters: 6–10 nodes, 1–2 SKUs, 1–2 lines of 1–2
/// units, multi-node plans often cheapest.
fn random_crowded_instance(seed: u64) -> (Net, OrderToSource, Policy) {
    let mut r = SplitMix64::new(seed ^ 0x5eed_c0de);
    let n_nodes = r.range(6, 10) as usize;
    let n_skus = r.range(1, 2) as usize;
    let sites: Vec<(f64, f64)> =
        (0..r.range(1, 3)).map(|_| (30.0 + r.unit() * 15.0, -120.0 + r.unit() * 45.0)).collect();
    let profiles: Vec<(NodeType, i64, i64)> = (0..r.range(1, 3))
        .map(|_| (*r.pick(&[NodeType::Dc, NodeType::Store]), r.range(0, 3) as i64 * 150, r.range(0, 2) as i64 * 25))
        .collect();
    let mut nodes = Vec::new();
    for i in 0..n_nodes {
        let (lat, lon) = *r.pick(&sites);
        let (node_type, per_order, per_unit) = *r.pick(&profiles);
        let mut n = node(i, node_type, lat, lon, vec![Capability::Ship]);
        n.costs.per_order_minor = per_order;
        n.costs.per_unit_minor = per_unit;
        if r.chance(0.2) {
            n.capacity =
                NodeCapacity { orders_per_day: Some(r.range(2, 4) as u32), units_per_day: Some(r.range(1, 4) as u32) };
        }
        nodes.push(n);
    }
    let orders_today = (0..n_nodes).map(|_| r.range(0, 2) as u32).collect();
    let units_today = (0..n_nodes).map(|_| r.range(0, 1) as u32).collect();
    let mut items = Vec::new();
    for i in 0..n_skus {
        let mut it = item(i, r.range(50, 9000) as u32);
        it.ship_alone = r.chance(0.3);
        items.push(it);
    }
    let mut stock = Vec::new();
    let scarce = r.chance(0.5);
    for n in 0..n_nodes {
        for s in 0..n_skus {
            if r.chance(if scarce { 0.5 } else { 0.8 }) {
                let atp = r.range(if scarce { 0 } else { 1 }, if scarce { 1 } else { 2 });
                stock.push((n, sku(s), atp, r.range(0, atp)));
            }
        }
    }
    let mut lines = Vec::new();
    for l in 0..r.range(1, 2) as usize {
        let mut ln = line(&format!("{}", l + 1), r.range(0, n_skus as u64 - 1) as usize, r.range(1, 2));
        ln.allow_backorder = r.chance(0.5);
        lines.push(ln);
    }
    let order = OrderToSource {
        ship_to: Some(GeoPoint::new(30.0 + r.unit() * 15.0, -120.0 + r.unit() * 45.0).unwrap()),
        lines,
        ..Default::default()
    };
    let cost = CostModel {
        shipping_zones: vec![
            ShippingZone { max_km: 800.0, base_minor: r.range(100, 700) as i64, per_kg_minor: r.range(0, 150) as i64 },
            ShippingZone {
                max_km: 6000.0,
                base_minor: r.range(700, 1500) as i64,
                per_kg_minor: r.range(50, 250) as i64,
            },
        ],
        split_penalty_minor: r.range(0, 300) as i64,
        capacity_penalty_minor: r.range(0, 1) as i64 * r.range(0, 900) as i64,
        backorder_penalty_minor: r.range(1000, 5000) as i64,
        unfilled_penalty_minor: r.range(2000, 9000) as i64,
        late_penalty_minor_per_day: 0,
        emissions_minor_per_kg_co2: r.range(0, 1) as i64 * r.range(0, 30) as i64,
        co2_g_per_kg_km: r.range(0, 1) as i64 * r.range(0, 3) as i64,
        aging_bonus_minor: r.range(0, 1) as i64 * r.range(0, 200) as i64,
    };
    let filters =
        Filters { store_protection_units: r.range(0, 1), respect_capacity: r.chance(0.7), ..Filters::default() };
    let constraints = Constraints {
        max_nodes: r.range(2, 3) as u32,
        allow_partial: r.chance(0.8),
        allow_backorder: r.chance(0.7),
        must_meet_promise: false,
    };
    let policy = Policy {
        name: "p".to_owned(),
        rules: Vec::new(),
        fallback: RuleBody { filters, constraints, cost },
        accept_within_minutes: None,
        jeopardy_action: Default::default(),
        transit: Default::default(),
        holds: Vec::new(),
        reject_reasons: Default::default(),
        limits: Default::default(),
    };
    (Net { nodes, orders_today, units_today, items, stock }, order, policy)
}

#[test]
fn the_plan_and_its_two_alternatives_are_the_three_best_node_sets() {
    let mut dominated = 0;
    for seed in 0..6000u64 {
        let (net, order, policy) = random_crowded_instance(seed);
        let view = View::new(&net);
        let d = source(&order, &view, &policy, &SearchOptions::default());
        assert!(d.plan.plan_is_optimal, "seed {seed}");
        let id = |n: usize| net.nodes[n].id.as_str().to_owned();
        let mut sets: Vec<(i64, Vec<String>)> = brute_force_sets(&net, &order, &policy)
            .into_iter()
            .map(|(cost, mask)| (cost, (0..net.nodes.len()).filter(|n| mask & (1 << n) != 0).map(id).collect()))
            .collect();
        sets.sort();
        let mut chosen: Vec<String> = d.plan.packages.iter().map(|p| p.node_id.as_str().to_owned()).collect();
        chosen.sort();
        chosen.dedup();
        assert_eq!((d.plan.total_cost_minor, chosen), sets[0], "seed {seed}");
        let alternatives: Vec<(i64, Vec<String>)> = d
            .explanation
            .alternatives
            .iter()
            .map(|a| (a.total_cost_minor, a.nodes.iter().map(|n| n.as_str().to_owned()).collect()))
            .collect();
        assert_eq!(alternatives, sets[1..].iter().take(2).cloned().collect::<Vec<_>>(), "seed {seed}");
        // Look-alike nodes: some candidate is beaten by as many others as the plan may have
        // nodes plus two, for any allocation.
        dominated += usize::from(sets.len() > 12);
    }
    assert!(dominated > 100, "only {dominated} crowded instances");
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    for seed in 0..200u64 {
        let (net, order, policy) = random_instance(seed);
        let view = View::new(&net);
        let a = source(&order, &view, &policy, &SearchOptions::default());
        let b = source(&order, &view, &policy, &SearchOptions::default());
        assert_eq!(a, b, "seed {seed}");
    }
}

fn simple_net() -> Net {
    // N0: DC near the customer; N1: store near; N2: DC far away.
    let mut nodes = vec![
        node(0, NodeType::Dc, 40.0, -75.0, vec![Capability::Ship]),
        node(1, NodeType::Store, 40.1, -75.1, vec![Capability::Ship, Capability::Pickup]),
        node(2, NodeType::Dc, 34.0, -118.0, vec![Capability::Ship]),
    ];
    nodes[1].costs.per_order_minor = 400;
    Net {
        nodes,
        orders_today: vec![0; 3],
        units_today: vec![0; 3],
        items: vec![item(0, 500), item(1, 1200)],
        stock: vec![(0, sku(0), 5, 0), (1, sku(0), 3, 0), (1, sku(1), 2, 0), (2, sku(1), 10, 0)],
    }
}

fn order_of(lines: Vec<LineToSource>) -> OrderToSource {
    OrderToSource { ship_to: Some(GeoPoint::new(40.05, -75.05).unwrap()), lines, ..Default::default() }
}

#[test]
fn a_single_node_that_has_everything_wins_and_the_explanation_says_why_others_lost() {
    let net = simple_net();
    let view = View::new(&net);
    let d =
        source(&order_of(vec![line("1", 0, 2), line("2", 1, 1)]), &view, &Policy::default(), &SearchOptions::default());
    assert_eq!(d.plan.packages.len(), 1);
    assert_eq!(d.plan.packages[0].node_id.as_str(), "N1");
    assert!(d.plan.unfilled.is_empty() && d.plan.backordered.is_empty());
    let n2 = d.explanation.candidates.iter().find(|c| c.node_id.as_str() == "N2").unwrap();
    assert!(n2.kept, "N2 holds S1 and is within the rate card");
    let n0 = d.explanation.candidates.iter().find(|c| c.node_id.as_str() == "N0").unwrap();
    assert!(n0.kept && !n0.chosen);
    assert_eq!(d.explanation.alternatives.len(), 2);
    assert!(d.explanation.alternatives.iter().all(|a| a.total_cost_minor >= d.plan.total_cost_minor));
    assert_eq!(d.explanation.rule, None);
}

#[test]
fn candidates_are_dropped_with_the_first_failing_reason() {
    let mut net = simple_net();
    net.nodes[2].status = NodeStatus::Closed;
    net.items[0].hazmat = true;
    let view = View::new(&net);
    let mut policy = Policy::default();
    policy.fallback.filters.exclude_nodes = vec![NodeId::parse("N0").unwrap()];
    let d = source(&order_of(vec![line("1", 0, 1)]), &view, &policy, &SearchOptions::default());
    let reason = |id: &str| d.explanation.candidates.iter().find(|c| c.node_id.as_str() == id).unwrap().reason;
    assert_eq!(reason("N0"), Some(DropReason::Excluded));
    assert_eq!(reason("N1"), Some(DropReason::Hazmat), "stores may not ship hazmat by default");
    assert_eq!(reason("N2"), Some(DropReason::Inactive));
    assert_eq!(d.plan.unfilled.len(), 1);
    assert!(d.plan.packages.is_empty());

    let mut policy = Policy::default();
    policy.fallback.filters.store_protection_units = 3;
    policy.fallback.filters.max_distance_km = Some(500.0);
    let d = source(&order_of(vec![line("1", 1, 1)]), &View::new(&simple_net()), &policy, &SearchOptions::default());
    let reason = |id: &str| d.explanation.candidates.iter().find(|c| c.node_id.as_str() == id).unwrap().reason;
    assert_eq!(reason("N0"), Some(DropReason::NoStock));
    assert_eq!(reason("N1"), Some(DropReason::ProtectedStock));
    assert_eq!(reason("N2"), Some(DropReason::BeyondRadius));
}

#[test]
fn splits_happen_only_when_one_node_cannot_fill_and_the_policy_allows() {
    let net = simple_net();
    let view = View::new(&net);
    // 7 of S0: N0 has 5, N1 has 3.
    let d = source(&order_of(vec![line("1", 0, 7)]), &view, &Policy::default(), &SearchOptions::default());
    assert_eq!(d.plan.packages.len(), 2);
    assert!(d.plan.unfilled.is_empty());
    assert_eq!(d.plan.packages[1].cost.split_penalty, 300);

    let mut one = Policy::default();
    one.fallback.constraints.max_nodes = 1;
    let d = source(&order_of(vec![line("1", 0, 7)]), &view, &one, &SearchOptions::default());
    assert_eq!(d.plan.packages.len(), 1);
    assert_eq!(d.plan.unfilled[0].quantity.get(), 2);

    let mut whole = Policy::default();
    whole.fallback.constraints.max_nodes = 1;
    whole.fallback.constraints.allow_partial = false;
    let mut backorderable = line("1", 0, 7);
    backorderable.allow_backorder = true;
    let d = source(&order_of(vec![backorderable]), &view, &whole, &SearchOptions::default());
    assert!(d.plan.packages.is_empty(), "all or nothing");
    assert_eq!(d.plan.backordered[0].quantity.get(), 7);
}

#[test]
fn pickup_lines_take_their_stores_stock_or_nothing() {
    let net = simple_net();
    let view = View::new(&net);
    let mut pickup = line("1", 0, 4);
    pickup.method = FulfillmentMethod::Pickup;
    pickup.pickup_node = Some(NodeId::parse("N1").unwrap());
    pickup.allow_backorder = true;
    let d = source(&order_of(vec![pickup, line("2", 0, 5)]), &view, &Policy::default(), &SearchOptions::default());
    let pk = d.plan.packages.iter().find(|p| p.kind == PackageKind::Pickup).unwrap();
    assert_eq!((pk.node_id.as_str(), pk.lines[0].quantity.get()), ("N1", 3));
    assert_eq!(d.plan.backordered[0].quantity.get(), 1);
    // The ship line cannot use the 3 units the pickup line took at N1.
    let shipped: u64 = d
        .plan
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Ship)
        .flat_map(|p| &p.lines)
        .map(|l| l.quantity.get())
        .sum();
    assert_eq!(shipped, 5);
    assert!(d.plan.packages.iter().filter(|p| p.kind == PackageKind::Ship).all(|p| p.node_id.as_str() == "N0"));
}

#[test]
fn a_tight_budget_returns_a_plan_marked_not_optimal_with_its_gap() {
    let (net, order, policy) = (0..2000u64)
        .map(random_instance)
        .find(|(net, order, policy)| {
            source(order, &View::new(net), policy, &SearchOptions::default()).explanation.sets_evaluated >= 3
        })
        .unwrap();
    let view = View::new(&net);
    let d = source(&order, &view, &policy, &SearchOptions { max_sets: 1, max_leaves: 1000 });
    assert!(!d.plan.plan_is_optimal);
    assert!(d.explanation.budget_exhausted);
    let exact = source(&order, &view, &policy, &SearchOptions::default());
    assert!(d.plan.total_cost_minor >= exact.plan.total_cost_minor);
    assert!(d.plan.total_cost_minor - d.plan.gap_minor <= exact.plan.total_cost_minor, "the gap bounds the optimum");
}

#[test]
fn a_promise_prices_late_nodes_or_rules_them_out() {
    let net = simple_net();
    let view = View::new(&net);
    let plain = source(&order_of(vec![line("1", 0, 1)]), &view, &Policy::default(), &SearchOptions::default());
    let chosen = plain.plan.packages[0].node_id.clone();
    let chosen_index = net.nodes.iter().position(|n| n.id == chosen).unwrap();
    // The cheapest node would be three days late; every other node is on time.
    let mut order = order_of(vec![line("1", 0, 1)]);
    order.promise = Some(PromiseTerms {
        days_late: (0..net.nodes.len()).map(|i| Some(if i == chosen_index { 3 } else { 0 })).collect(),
    });
    // No late penalty and no constraint: the promise changes nothing.
    let same = source(&order, &view, &Policy::default(), &SearchOptions::default());
    assert_eq!(same.plan.packages[0].node_id, chosen);
    assert_eq!(same.plan.packages[0].cost.late, 0);
    // A late penalty is one more cost term of the late node's package.
    let mut priced = Policy::default();
    priced.fallback.cost.late_penalty_minor_per_day = 1;
    let d = source(&order, &view, &priced, &SearchOptions::default());
    assert_eq!(d.plan.packages[0].node_id, chosen, "1 per day does not outweigh the cost difference");
    assert_eq!(d.plan.packages[0].cost.late, 3);
    assert_eq!(d.plan.total_cost_minor, plain.plan.total_cost_minor + 3);
    priced.fallback.cost.late_penalty_minor_per_day = 1_000_000;
    let d = source(&order, &view, &priced, &SearchOptions::default());
    assert_ne!(d.plan.packages[0].node_id, chosen, "a heavy penalty moves the work");
    assert_eq!(d.plan.packages[0].cost.late, 0);
    assert!(d.plan.plan_is_optimal);
    // must_meet_promise drops the late node, and nodes without a date, with the reason.
    let mut strict = Policy::default();
    strict.fallback.constraints.must_meet_promise = true;
    let d = source(&order, &view, &strict, &SearchOptions::default());
    assert_ne!(d.plan.packages[0].node_id, chosen);
    let late = d.explanation.candidates.iter().find(|c| c.node_id == chosen).unwrap();
    assert_eq!(late.reason, Some(DropReason::MissesPromise));
    order.promise = Some(PromiseTerms { days_late: Vec::new() });
    let d = source(&order, &view, &strict, &SearchOptions::default());
    assert!(d.plan.packages.is_empty(), "no node can show a date");
    assert!(d.explanation.candidates.iter().all(|c| c.reason == Some(DropReason::MissesPromise)));
}
