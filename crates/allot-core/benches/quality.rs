//! Routing quality on generated scenarios: how often each decision is proven optimal, the
//! gap the engine reports when it is not, and what batch (wave) sourcing saves over one by
//! one in arrival order on the same orders and stock.
//! Run: `cargo bench -p allot-core --bench quality`

use allot_core::scenario::{OrderStreamSpec, ScenarioSpec, generate, generate_orders};
use allot_core::sourcing::{Decision, MemoryNetwork, Policy, SearchOptions, source_batch, source_one_by_one};

fn summary(decisions: &[Decision]) -> (i64, usize, i64, u64) {
    let cost = decisions.iter().map(|d| d.plan.total_cost_minor).sum();
    let proven = decisions.iter().filter(|d| d.plan.plan_is_optimal).count();
    let gap = decisions.iter().map(|d| d.plan.gap_minor).sum();
    let placed = decisions.iter().flat_map(|d| &d.plan.packages).flat_map(|p| &p.lines).map(|l| l.quantity.get()).sum();
    (cost, proven, gap, placed)
}

fn main() {
    // Skip criterion's CLI arguments (`--bench`); this target only prints.
    let cases = [("60 nodes, 500 SKUs", 3, 57, 500), ("500 nodes, 2000 SKUs", 20, 480, 2000)];
    for (name, dcs, stores, skus) in cases {
        let scenario = generate(&ScenarioSpec { dc_cities: Vec::new(), dcs, stores, skus, seed: 42 });
        let net = MemoryNetwork::from_scenario(&scenario);
        let policy = Policy::default();
        let opts = SearchOptions::default();
        let (mut one_cost, mut one_proven, mut one_gap, mut one_placed) = (0i64, 0usize, 0i64, 0u64);
        let (mut wave_cost, mut wave_proven, mut wave_gap, mut wave_placed) = (0i64, 0usize, 0i64, 0u64);
        let mut orders_total = 0;
        // 10 waves of 100 orders, each against the full stock (waves are independent).
        for wave in 0..10u64 {
            let spec = OrderStreamSpec { count: 100, seed: 1000 + wave, lines_min: 1, lines_max: 5, pickup_share: 0.1 };
            let orders = generate_orders(&scenario, &spec);
            orders_total += orders.len();
            let one = summary(&source_one_by_one(&orders, &net, &policy, &opts));
            let batch = summary(&source_batch(&orders, &net, &policy, &opts));
            (one_cost, one_proven, one_gap, one_placed) =
                (one_cost + one.0, one_proven + one.1, one_gap + one.2, one_placed + one.3);
            (wave_cost, wave_proven, wave_gap, wave_placed) =
                (wave_cost + batch.0, wave_proven + batch.1, wave_gap + batch.2, wave_placed + batch.3);
        }
        let pct = |a: f64, b: f64| 100.0 * a / b;
        println!("{name}: {orders_total} orders in 10 waves of 100");
        println!(
            "  one by one: cost {one_cost}, units placed {one_placed}, proven optimal {:.1}%, reported gap {:.3}% of cost",
            pct(one_proven as f64, orders_total as f64),
            pct(one_gap as f64, one_cost as f64)
        );
        println!(
            "  batch:      cost {wave_cost} ({:+.2}% vs one by one), units placed {wave_placed}, proven optimal {:.1}%, reported gap {:.3}% of cost",
            pct((wave_cost - one_cost) as f64, one_cost as f64),
            pct(wave_proven as f64, orders_total as f64),
            pct(wave_gap as f64, wave_cost as f64)
        );
    }
}
