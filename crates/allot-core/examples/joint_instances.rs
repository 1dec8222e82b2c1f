//! Writes generated sourcing waves as joint-optimisation instances, with what the engine
//! decided for them, for `bench/joint_optimum.py` to solve exactly (a MIP) and compare.
//!
//! Run: `cargo run --release -p allot-core --example joint_instances -- DIR [WAVES [60,500]]`.
//!
//! Each file `DIR/<network>-<stock>-<wave>.json` holds one wave of 100 generated orders
//! (1–5 lines, 10% pickup) on a generated network under the built-in policy, in the form
//! the cost model reads it, and the engine's totals: one by one in arrival order, batch,
//! and each order alone against the wave's full stock (`single`, with whether the engine
//! proved it optimal). Two stock regimes: `full` (as generated) and `scarce` (every
//! position's ATP divided by 8, rounded down), where the orders of a wave compete.
//!
//! What is exported is the built-in policy's model only — no radius, type filter, store
//! protection, capacity pressure, emissions, aging or promise terms (all off in it) — so
//! the MIP mirrors: eligibility (active node, capability for the method, the item allows
//! the method, hazmat only from the policy's node types, a shipping zone within reach,
//! stock, capacity left), the shipping zone's base and per-kg rate by node, the node's
//! handling, billed kg rounded up per package, ship-alone units in their own packages,
//! the split penalty per package beyond the first, `max_nodes` per shipment, and the
//! backorder or unfilled penalty per unit not placed. Pickup lines name their node.

use allot_core::catalog::FulfillmentMethod;
use allot_core::scenario::{OrderStreamSpec, ScenarioSpec, generate, generate_orders};
use allot_core::sourcing::{
    Decision, MemoryNetwork, OrderToSource, Policy, SearchOptions, SourcingNetwork, source, source_batch,
    source_one_by_one,
};
use allot_core::{Qty, Sku};
use serde_json::{Value, json};

fn total(decisions: &[Decision]) -> i64 {
    decisions.iter().map(|d| d.plan.total_cost_minor).sum()
}

fn instance(net: &MemoryNetwork, orders: &[OrderToSource], policy: &Policy) -> Value {
    let body = &policy.fallback;
    let cost = &body.cost;
    let nodes = net.nodes();
    let node_json: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let st = net.node(i);
            let left = |cap: Option<u32>, used: u32| cap.map(|c| c.saturating_sub(used));
            json!({
                "id": n.id.as_str(),
                "per_order": n.costs.per_order_minor,
                "per_unit": n.costs.per_unit_minor,
                "orders_left": if body.filters.respect_capacity { left(n.capacity.orders_per_day, st.orders_today) } else { None },
                "units_left": if body.filters.respect_capacity { left(n.capacity.units_per_day, st.units_today) } else { None },
            })
        })
        .collect();
    // Stock of the wave's SKUs.
    let mut skus: Vec<&Sku> = orders.iter().flat_map(|o| o.lines.iter().map(|l| &l.sku)).collect();
    skus.sort();
    skus.dedup();
    let mut stock = Vec::new();
    let mut holdings = Vec::new();
    for (s, sku) in skus.iter().enumerate() {
        holdings.clear();
        net.holdings(sku, &mut holdings);
        for h in &holdings {
            stock.push(json!([h.node, s, h.atp.get()]));
        }
    }
    let atp = |node: usize, sku: &Sku| -> u64 {
        let mut h = Vec::new();
        net.holdings(sku, &mut h);
        h.iter().rev().find(|h| h.node == node).map_or(0, |h| h.atp.get())
    };
    let order_json: Vec<Value> = orders
        .iter()
        .map(|o| {
            let lines: Vec<Value> = o
                .lines
                .iter()
                .map(|l| {
                    let item = net.item(&l.sku);
                    let penalty = if l.allow_backorder && body.constraints.allow_backorder {
                        cost.backorder_penalty_minor
                    } else {
                        cost.unfilled_penalty_minor
                    };
                    let pickup = (l.method != FulfillmentMethod::Ship)
                        .then(|| l.pickup_node.as_ref().and_then(|id| nodes.iter().position(|n| &n.id == id)))
                        .flatten()
                        .filter(|&ni| {
                            let n = &nodes[ni];
                            n.is_active()
                                && n.has(l.method.required_capability())
                                && item.is_some_and(|it| it.allows(l.method))
                        });
                    json!({
                        "sku": skus.binary_search(&&l.sku).unwrap_or(usize::MAX),
                        "qty": l.quantity.get(),
                        "weight_g": item.map_or(0, |it| it.weight_g),
                        "alone": item.is_some_and(|it| it.ship_alone),
                        "penalty": penalty,
                        "ship": l.method == FulfillmentMethod::Ship,
                        "pickup_node": pickup,
                    })
                })
                .collect();
            // Ship options: per node, its zone and the ship lines it may serve.
            let mut options = Vec::new();
            if let Some(dest) = o.ship_to {
                for (ni, n) in nodes.iter().enumerate() {
                    let st = net.node(ni);
                    let f = &body.filters;
                    if f.exclude_nodes.contains(&n.id)
                        || f.node_types.as_ref().is_some_and(|t| !t.contains(&n.node_type))
                        || !n.is_active()
                        || (f.respect_capacity && n.capacity.orders_per_day.is_some_and(|c| st.orders_today >= c))
                    {
                        continue;
                    }
                    let km = n.location.distance_km(dest);
                    let Some(zone) = cost.shipping_zones.iter().find(|z| km <= z.max_km) else { continue };
                    let serves: Vec<usize> = o
                        .lines
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.method == FulfillmentMethod::Ship)
                        .filter(|(_, l)| {
                            let item = net.item(&l.sku);
                            n.has(l.method.required_capability())
                                && item.is_some_and(|it| it.allows(l.method))
                                && (!item.is_some_and(|it| it.hazmat) || f.hazmat_node_types.contains(&n.node_type))
                                && atp(ni, &l.sku) > 0
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if !serves.is_empty() {
                        options.push(json!({
                            "node": ni, "base": zone.base_minor, "per_kg": zone.per_kg_minor, "lines": serves,
                        }));
                    }
                }
            }
            json!({ "lines": lines, "options": options })
        })
        .collect();
    json!({
        "split_penalty": cost.split_penalty_minor,
        "max_nodes": body.constraints.max_nodes,
        "nodes": node_json,
        "skus": skus.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "stock": stock,
        "orders": order_json,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: joint_instances DIR [WAVES [NETWORKS]]")?);
    let waves: u64 = args.next().map_or(Ok(5), |w| w.parse())?;
    // Optional: which networks ("60", "500"; comma-separated), default both.
    let only: Option<Vec<String>> = args.next().map(|o| o.split(',').map(str::to_owned).collect());
    std::fs::create_dir_all(&dir)?;
    let policy = Policy::default();
    assert!(policy.rules.is_empty(), "the export mirrors the fallback rule only");
    let opts = SearchOptions::default();
    let cases = [("60", 3, 57, 500), ("500", 20, 480, 2000)];
    for (name, dcs, stores, skus) in cases {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let scenario = generate(&ScenarioSpec { dc_cities: Vec::new(), dcs, stores, skus, seed: 42 });
        for regime in ["full", "scarce"] {
            let mut net = MemoryNetwork::from_scenario(&scenario);
            if regime == "scarce" {
                for hs in net.holdings.values_mut() {
                    for h in hs.iter_mut() {
                        h.atp = Qty::new(h.atp.get() / 8).unwrap_or(Qty::ZERO);
                    }
                    hs.retain(|h| h.atp.get() > 0);
                }
            }
            for wave in 0..waves {
                let spec =
                    OrderStreamSpec { count: 100, seed: 1000 + wave, lines_min: 1, lines_max: 5, pickup_share: 0.1 };
                let orders = generate_orders(&scenario, &spec);
                let one = source_one_by_one(&orders, &net, &policy, &opts);
                let batch = source_batch(&orders, &net, &policy, &opts);
                let single: Vec<Value> = orders
                    .iter()
                    .map(|o| {
                        let d = source(o, &net, &policy, &opts);
                        json!([d.plan.total_cost_minor, d.plan.plan_is_optimal])
                    })
                    .collect();
                let mut doc = instance(&net, &orders, &policy);
                doc["engine"] = json!({
                    "one_by_one": total(&one),
                    "batch": total(&batch),
                    "one_by_one_proven": one.iter().all(|d| d.plan.plan_is_optimal),
                    "single": single,
                });
                let path = dir.join(format!("{name}-{regime}-{wave}.json"));
                std::fs::write(&path, doc.to_string())?;
                println!("{} one by one {} batch {}", path.display(), total(&one), total(&batch));
            }
        }
    }
    Ok(())
}
