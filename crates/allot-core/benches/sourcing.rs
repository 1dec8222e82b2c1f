//! Sourcing decisions on generated networks (issue 3 targets: 3-line order, 500 nodes,
//! max_nodes 3: median ≤ 50 µs, p99 ≤ 500 µs; 5-line order, 2,000 nodes: p99 ≤ 2 ms).
//!
//! Two measurements per network: criterion's estimate of the time per decision over a
//! round-robin stream of distinct orders, and a latency distribution (p50, p99, max) of
//! 20,000 individually timed decisions, printed to stdout.
//! Run: `cargo bench -p allot-core --bench sourcing`. `ALLOT_BENCH_DECISIONS` sets the number
//! of timed decisions; `ALLOT_BENCH_ONLY=<text>` keeps the networks whose name contains it.

use std::hint::black_box;
use std::time::Instant;

use allot_core::scenario::{OrderStreamSpec, ScenarioSpec, generate, generate_orders};
use allot_core::sourcing::{MemoryNetwork, Policy, SearchOptions, source};
use criterion::{Criterion, criterion_group, criterion_main};

fn network(dcs: usize, stores: usize, skus: usize) -> MemoryNetwork {
    let spec = ScenarioSpec { dc_cities: Vec::new(), dcs, stores, skus, seed: 7 };
    MemoryNetwork::from_scenario(&generate(&spec))
}

fn distribution(name: &str, net: &MemoryNetwork, orders: &[allot_core::sourcing::OrderToSource]) {
    let policy = Policy::default();
    let opts = SearchOptions::default();
    let decisions: usize = std::env::var("ALLOT_BENCH_DECISIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut times = Vec::with_capacity(decisions);
    let mut optimal = 0;
    let mut max_sets = 0;
    for i in 0..decisions {
        let order = &orders[i % orders.len()];
        let start = Instant::now();
        let d = source(order, net, &policy, &opts);
        times.push(start.elapsed().as_nanos() as u64);
        optimal += usize::from(d.plan.plan_is_optimal);
        max_sets = max_sets.max(d.explanation.sets_evaluated);
        black_box(d);
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0;
    println!(
        "{name}: {} decisions, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs, optimal {:.2}%, most sets in one decision {max_sets}",
        times.len(),
        pct(0.50),
        pct(0.99),
        *times.last().unwrap_or(&0) as f64 / 1000.0,
        100.0 * optimal as f64 / times.len() as f64
    );
}

fn bench(c: &mut Criterion) {
    let cases =
        [("3 lines, 500 nodes", network(20, 480, 2000), 3), ("5 lines, 2000 nodes", network(40, 1960, 5000), 5)];
    let only = std::env::var("ALLOT_BENCH_ONLY").ok();
    for (name, net, lines) in &cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let scenario_for_orders = allot_core::scenario::Scenario {
            nodes: net.nodes().to_vec(),
            items: {
                let mut items: Vec<_> = net.items.values().cloned().collect();
                items.sort_by(|a, b| a.sku.cmp(&b.sku));
                items
            },
            positions: Vec::new(),
        };
        let spec = OrderStreamSpec { count: 2000, seed: 11, lines_min: *lines, lines_max: *lines, pickup_share: 0.0 };
        let orders = generate_orders(&scenario_for_orders, &spec);
        distribution(name, net, &orders);
        let policy = Policy::default();
        let opts = SearchOptions::default();
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % orders.len();
                black_box(source(&orders[i], net, &policy, &opts))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
