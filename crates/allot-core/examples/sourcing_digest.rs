//! A digest of the engine's decisions on fixed generated streams: the guard for changes that
//! must not change any decision (speed work on `sourcing`). Run it before and after; the
//! digests must be equal.
//!
//! Every decision's `Debug` text (plan and explanation, every candidate view, the
//! alternatives and the search counters) goes into an FNV-1a hash per case and overall.
//! Cases: 500-order streams (1–3 and 1–5 lines, with and without 10% pickup lines) over a
//! 60-, a 500- and a 2,000-node network; the built-in policy, a strict one (radius,
//! emissions, store protection, capacity pressure, aging bonus, promise penalties) and an
//! all-or-nothing one (two nodes at most, promise required); networks as generated and
//! with some capacity used, aging stock and no node table; one small search budget.
//!
//! Run: `cargo run --release -p allot-core --example sourcing_digest` (`ALLOT_DIGEST_DUMP=<file>`
//! also writes every decision's text, to find the first difference; `ALLOT_DIGEST_QUICK=1`
//! skips the 2,000-node network).

use std::io::Write;
use std::sync::Arc;

use allot_core::ids::Sku;
use allot_core::network::NodeType;
use allot_core::scenario::{OrderStreamSpec, Scenario, ScenarioSpec, generate, generate_orders};
use allot_core::sourcing::{
    Holding, MemoryNetwork, NodeState, NodeTable, OrderToSource, Policy, PromiseTerms, SearchOptions, SourcingNetwork,
    source,
};

/// A network that keeps no node table (the engine then copies ids and computes distances).
struct NoTable<'a>(&'a MemoryNetwork);

impl SourcingNetwork for NoTable<'_> {
    fn node_count(&self) -> usize {
        self.0.node_count()
    }
    fn node(&self, index: usize) -> NodeState<'_> {
        self.0.node(index)
    }
    fn item(&self, sku: &Sku) -> Option<&allot_core::catalog::Item> {
        self.0.item(sku)
    }
    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>) {
        self.0.holdings(sku, out)
    }
    fn node_table(&self) -> Option<&Arc<NodeTable>> {
        None
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn strict_policy() -> Policy {
    let mut p = Policy::default();
    let b = &mut p.fallback;
    b.filters.max_distance_km = Some(1500.0);
    b.filters.store_protection_units = 2;
    b.cost.co2_g_per_kg_km = 1;
    b.cost.emissions_minor_per_kg_co2 = 20;
    b.cost.capacity_penalty_minor = 800;
    b.cost.aging_bonus_minor = 60;
    b.cost.late_penalty_minor_per_day = 250;
    p
}

fn whole_policy() -> Policy {
    let mut p = Policy::default();
    let b = &mut p.fallback;
    b.constraints.max_nodes = 2;
    b.constraints.allow_partial = false;
    b.constraints.must_meet_promise = true;
    b.filters.node_types = Some(vec![NodeType::Dc, NodeType::Store]);
    b.filters.respect_capacity = true;
    p
}

/// Some capacity used and some stock aging, deterministically by node index.
fn loaded(net: &MemoryNetwork) -> MemoryNetwork {
    let mut net = net.clone();
    for i in 0..net.node_count() {
        net.orders_today[i] = (i as u32 * 37) % 400;
        net.units_today[i] = (i as u32 * 53) % 1300;
    }
    for holdings in net.holdings.values_mut() {
        for h in holdings.iter_mut() {
            if h.node % 3 == 0 {
                h.aging = allot_core::Qty::new(h.atp.get() / 2).unwrap_or(h.atp);
            }
        }
    }
    net
}

/// Promise terms on every fourth order: nodes late by 0–2 days or unable to make a date.
fn with_promises(orders: &[OrderToSource], nodes: usize) -> Vec<OrderToSource> {
    orders
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let mut o = o.clone();
            if k % 4 == 1 {
                let days_late = (0..nodes)
                    .map(|i| match (i + k) % 5 {
                        0 => None,
                        1 | 2 => Some(0),
                        r => Some(r as u16 - 2),
                    })
                    .collect();
                o.promise = Some(PromiseTerms { days_late });
            }
            o
        })
        .collect()
}

fn main() -> std::io::Result<()> {
    let quick = std::env::var("ALLOT_DIGEST_QUICK").is_ok();
    let mut dump = match std::env::var("ALLOT_DIGEST_DUMP") {
        Ok(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        Err(_) => None,
    };
    let networks: &[(&str, usize, usize, usize)] = if quick {
        &[("60 nodes", 4, 56, 500), ("500 nodes", 20, 480, 2000)]
    } else {
        &[("60 nodes", 4, 56, 500), ("500 nodes", 20, 480, 2000), ("2000 nodes", 40, 1960, 5000)]
    };
    let policies = [("built-in", Policy::default()), ("strict", strict_policy()), ("whole", whole_policy())];
    let mut all = Fnv::new();
    let mut decisions = 0usize;
    let started = std::time::Instant::now();
    for &(net_name, dcs, stores, skus) in networks {
        let scenario = generate(&ScenarioSpec { dc_cities: Vec::new(), dcs, stores, skus, seed: 7 });
        let plain = MemoryNetwork::from_scenario(&scenario);
        let busy = loaded(&plain);
        let for_orders =
            Scenario { nodes: scenario.nodes.clone(), items: scenario.items.clone(), positions: Vec::new() };
        for (lines_max, pickup_share) in [(3, 0.0), (3, 0.1), (5, 0.0), (5, 0.1)] {
            let spec =
                OrderStreamSpec { count: 500, seed: 11 + lines_max as u64, lines_min: 1, lines_max, pickup_share };
            let orders = with_promises(&generate_orders(&for_orders, &spec), plain.node_count());
            for (policy_name, policy) in &policies {
                let no_table = NoTable(&busy);
                let mut nets: Vec<(&str, &dyn SourcingNetwork)> = vec![("plain", &plain), ("busy", &busy)];
                if dcs + stores <= 500 {
                    nets.push(("busy, no table", &no_table));
                }
                for (state, net) in nets {
                    let mut opts = vec![("default budget", SearchOptions::default())];
                    if *policy_name == "built-in" && state == "plain" {
                        opts.push(("small budget", SearchOptions { max_sets: 40, max_leaves: 3000 }));
                    }
                    for (budget, opt) in opts {
                        let case = format!(
                            "{net_name} | 1-{lines_max} lines, pickup {pickup_share} | {policy_name} | {state} | {budget}"
                        );
                        let mut h = Fnv::new();
                        for (k, order) in orders.iter().enumerate() {
                            let d = source(order, net, policy, &opt);
                            let text = format!("{d:?}");
                            h.write(text.as_bytes());
                            all.write(text.as_bytes());
                            decisions += 1;
                            if let Some(out) = dump.as_mut() {
                                writeln!(out, "{case} | #{k}\n{text}")?;
                            }
                        }
                        println!("{case}: {:016x}", h.0);
                    }
                }
            }
        }
    }
    println!("all {decisions} decisions: {:016x} ({:.1} s)", all.0, started.elapsed().as_secs_f64());
    Ok(())
}
