//! Random interleavings of place / cancel / reserve / release / expire / inventory delta /
//! fulfillment actions (accept, reject, short and full picks, pack, ship, hand-over),
//! checked after every step against the stock invariants, on both backends:
//!
//! - every allocation row of a fulfillment order that still holds stock is counted in
//!   `positions.allocated` and every active reservation line in `positions.reserved` (per
//!   position, not only in total), and the allocations are exactly those of the orders
//!   listed by `GET /v1/orders`;
//! - held stock (reserved + allocated) never exceeds what may be promised (on hand −
//!   damaged − quarantined − safety stock), except after a delta that reported shrinkage;
//!   while a position is over-committed that way, no step takes more stock there;
//! - a refused request changes nothing, and the API's positions agree with the database.
//!
//! The sequences come from a seeded SplitMix64, so a failure names the seed and step that
//! reproduce it; the clock is a `FixedClock` moved forward to expire reservations, and the
//! background sweep is off (the steps expire reservations themselves).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::common::{Backend, TestServer};
use allot_app::FixedClock;
use allot_core::rng::SplitMix64;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Seeds per backend and steps per seed: about 1,400 checked steps per backend.
const SEEDS: u64 = 24;
const STEPS: usize = 60;

const NODES: [&str; 2] = ["DC-EAST", "DC-WEST"];
const SKUS: [&str; 2] = ["SKU-1", "SKU-2"];
/// Philadelphia (near DC-EAST) and Los Angeles (near DC-WEST).
const PLACES: [(f64, f64); 2] = [(39.95, -75.16), (34.05, -118.24)];

type Key = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    on_hand: i64,
    damaged: i64,
    quarantined: i64,
    safety_stock: i64,
    reserved: i64,
    allocated: i64,
}

impl Counts {
    fn held(&self) -> i64 {
        self.reserved + self.allocated
    }

    /// What may be held at most: on hand less the units that can never be promised.
    fn promisable(&self) -> i64 {
        (self.on_hand - self.damaged - self.quarantined - self.safety_stock).max(0)
    }

    fn over_committed(&self) -> bool {
        self.held() > self.promisable()
    }
}

/// How often the interesting things happened.
#[derive(Debug, Default)]
struct Tally {
    placed: usize,
    converted: usize,
    cancelled: usize,
    refused: usize,
    expired: usize,
    over_committed: usize,
    /// Fulfillment actions that moved a fulfillment order.
    worked: usize,
    rerouted: usize,
    backorders_filled: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.placed += o.placed;
        self.converted += o.converted;
        self.cancelled += o.cancelled;
        self.refused += o.refused;
        self.expired += o.expired;
        self.over_committed += o.over_committed;
        self.worked += o.worked;
        self.rerouted += o.rerouted;
        self.backorders_filled += o.backorders_filled;
    }
}

/// What the test knows of the history: everything the API answered.
struct Run {
    tally: Tally,
    seed: u64,
    rng: SplitMix64,
    clock: Arc<FixedClock>,
    now: jiff::Timestamp,
    orders: Vec<(String, Value)>,
    reservations: Vec<String>,
    closed_reservations: BTreeSet<String>,
    /// Positions left over-committed by a shrinkage delta and not recovered since.
    shrunk: BTreeSet<Key>,
    log: Vec<String>,
}

impl Run {
    fn context(&self) -> String {
        format!("seed {}, step {}; steps so far:\n  {}", self.seed, self.log.len(), self.log.join("\n  "))
    }

    fn ship_to(&mut self) -> Value {
        let (lat, lon) = *self.rng.pick(&PLACES);
        json!({"lat": lat, "lon": lon})
    }

    fn known_order(&mut self) -> Option<String> {
        (!self.orders.is_empty()).then(|| self.rng.pick(&self.orders).0.clone())
    }
}

/// What a step did, as far as the checks need to know.
struct Outcome {
    what: String,
    status: StatusCode,
    /// An inventory delta was applied (it may have reported shrinkage).
    delta_applied: bool,
    /// A retry: answered as before, changing nothing.
    retry: bool,
}

/// One random step.
async fn step(s: &TestServer, run: &mut Run) -> Outcome {
    let roll = run.rng.range(0, 119);
    let mut is_delta = false;
    let mut retry = false;
    let (what, status) = match roll {
        0..=34 => {
            let n = run.orders.len();
            if n > 0 && run.rng.chance(0.08) {
                // A retry of an earlier order: answered as it is, nothing more taken.
                let (id, body) = run.orders[run.rng.range(0, n as u64 - 1) as usize].clone();
                let (status, o) = s.post("/v1/orders", body).await;
                assert_eq!((status, o["order_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{}", run.context());
                retry = true;
                (format!("retry order {id}"), status)
            } else {
                let mut lines = Vec::new();
                let first = run.rng.range(0, 1) as usize;
                let count = run.rng.range(1, 2) as usize;
                for (i, sku) in SKUS.iter().cycle().skip(first).take(count).enumerate() {
                    lines.push(json!({"line_id": (i + 1).to_string(), "sku": sku,
                        "quantity": run.rng.range(1, 4), "allow_backorder": run.rng.chance(0.3)}));
                }
                let ext = format!("P-{}-{}", run.seed, run.log.len());
                let mut body = json!({"channel": "web", "external_id": ext, "ship_to": run.ship_to(), "lines": lines});
                if !run.reservations.is_empty() && run.rng.chance(0.3) {
                    body["reservation_id"] = json!(run.rng.pick(&run.reservations).clone());
                }
                let (status, o) = s.post("/v1/orders", body.clone()).await;
                if status == StatusCode::CREATED {
                    run.orders.push((o["order_id"].as_str().unwrap().to_owned(), body.clone()));
                    run.tally.placed += 1;
                    run.tally.converted += usize::from(body.get("reservation_id").is_some());
                }
                (format!("place {body} -> {status} {}", summary(&o)), status)
            }
        }
        35..=44 => match run.known_order() {
            Some(id) => {
                let (status, o) = s.post(&format!("/v1/orders/{id}/cancel"), json!({})).await;
                run.tally.cancelled += usize::from(status == StatusCode::OK);
                (format!("cancel order {id} -> {status} {}", summary(&o)), status)
            }
            None => (String::from("nothing to cancel"), StatusCode::OK),
        },
        45..=54 => match run.known_order() {
            Some(id) => {
                let line = run.rng.range(1, 2);
                let body = if run.rng.chance(0.3) { json!({}) } else { json!({"quantity": run.rng.range(1, 3)}) };
                let (status, o) = s.post(&format!("/v1/orders/{id}/lines/{line}/cancel"), body.clone()).await;
                run.tally.cancelled += usize::from(status == StatusCode::OK);
                (format!("cancel line {id}/{line} {body} -> {status} {}", summary(&o)), status)
            }
            None => (String::from("no line to cancel"), StatusCode::OK),
        },
        55..=74 => {
            let mut lines = Vec::new();
            let first = run.rng.range(0, 1) as usize;
            for sku in SKUS.iter().cycle().skip(first).take(run.rng.range(1, 2) as usize) {
                let node = if run.rng.chance(0.5) { json!(run.rng.pick(&NODES)) } else { Value::Null };
                lines.push(json!({"sku": sku, "quantity": run.rng.range(1, 3), "node_id": node}));
            }
            let ship_to = if run.rng.chance(0.5) { run.ship_to() } else { Value::Null };
            let ttl_s = *run.rng.pick(&[30, 60, 90, 120]);
            let body = json!({"lines": lines, "ship_to": ship_to, "ttl_s": ttl_s});
            let (status, r) = s.post("/v1/reservations", body.clone()).await;
            if status == StatusCode::CREATED {
                run.reservations.push(r["reservation_id"].as_str().unwrap().to_owned());
            }
            (format!("reserve {body} -> {status} {}", r["lines"]), status)
        }
        75..=81 => {
            if run.reservations.is_empty() {
                (String::from("nothing to release"), StatusCode::OK)
            } else {
                let id = run.rng.pick(&run.reservations).clone();
                let req =
                    s.client.delete(s.url(&format!("/v1/reservations/{id}"))).bearer_auth(crate::common::ADMIN_KEY);
                let (status, r) = s.send(req).await;
                (format!("release {id} -> {status} {}", r["status"]), status)
            }
        }
        82..=89 => {
            // Time passes. Half of the time an order comes first, which must expire due
            // reservations itself before taking stock; then an explicit sweep settles the
            // rest (the background sweep is off in this test).
            let seconds = run.rng.range(30, 150) as i64;
            run.now += jiff::SignedDuration::from_secs(seconds);
            run.clock.set(run.now);
            let mut what = format!("advance clock {seconds} s");
            if run.rng.chance(0.5) {
                let sku = *run.rng.pick(&SKUS);
                let ext = format!("E-{}-{}", run.seed, run.log.len());
                let body = json!({"channel": "web", "external_id": ext, "ship_to": run.ship_to(),
                    "lines": [{"line_id": "1", "sku": sku, "quantity": run.rng.range(1, 3)}]});
                let (status, o) = s.post("/v1/orders", body.clone()).await;
                assert_eq!(status, StatusCode::CREATED, "{o}\n{}", run.context());
                run.orders.push((o["order_id"].as_str().unwrap().to_owned(), body.clone()));
                what = format!("{what}, then place {body} -> {status} {}", summary(&o));
            }
            let expired = s.app.expire_reservations().await.unwrap();
            (format!("{what}; {expired} expired by the sweep"), StatusCode::OK)
        }
        100..=119 => match run.known_order() {
            Some(id) => fulfillment_step(s, run, &id).await,
            None => (String::from("no fulfillment order to work"), StatusCode::OK),
        },
        _ => {
            let node = *run.rng.pick(&NODES);
            let sku = *run.rng.pick(&SKUS);
            let delta = run.rng.range(0, 8) as i64 - 5;
            let delta = if delta == 0 { 3 } else { delta };
            let body = json!({"deltas": [{"node_id": node, "sku": sku, "on_hand_delta": delta, "reason": "count"}]});
            let (status, _) = s.post("/v1/inventory/deltas", body).await;
            is_delta = true;
            // Stock came in: backordered orders are sourced again (the server does this in
            // the background; here, as part of the step).
            let filled = if status.is_success() && delta > 0 {
                let n = s.app.fill_backorders(&[sku.to_owned()]).await.unwrap();
                run.tally.backorders_filled += n;
                n
            } else {
                0
            };
            (format!("delta {node}/{sku} {delta:+} -> {status}; {filled} backordered orders filled"), status)
        }
    };
    Outcome { what, status, delta_applied: is_delta && status.is_success(), retry }
}

/// A node works one of an order's fulfillment orders: a random action, legal or not.
async fn fulfillment_step(s: &TestServer, run: &mut Run, order_id: &str) -> (String, StatusCode) {
    let o = s.get(&format!("/v1/orders/{order_id}")).await.1;
    let fos = o["fulfillment_orders"].as_array().unwrap().clone();
    if fos.is_empty() {
        return (format!("order {order_id} has no fulfillment order"), StatusCode::OK);
    }
    let fo = run.rng.pick(&fos).clone();
    let id = fo["id"].as_str().unwrap();
    let attempts_before = o["sourcing_attempts"].as_array().unwrap().len();
    let actions = ["accept", "reject", "pick", "pick", "pack", "ship", "ready-for-pickup", "picked-up", "deliver"];
    let action = *run.rng.pick(&actions);
    let body = match action {
        "reject" => Some(json!({"reason": "damaged"})),
        "pick" => {
            let lines: Vec<Value> = fo["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let q = l["quantity"].as_u64().unwrap();
                    let picked = if run.rng.chance(0.5) { q } else { run.rng.range(0, q) };
                    json!({"line_id": l["line_id"], "picked_quantity": picked})
                })
                .collect();
            Some(json!({"lines": lines}))
        }
        "ship" => Some(
            json!({"packages": [{"carrier": "ups", "tracking_number": format!("T-{}-{}", run.seed, run.log.len())}]}),
        ),
        _ => None,
    };
    let path = format!("/v1/fulfillment-orders/{id}/{action}");
    let (status, f) = match &body {
        Some(b) => s.post(&path, b.clone()).await,
        None => s.send(s.client.post(s.url(&path)).bearer_auth(crate::common::ADMIN_KEY)).await,
    };
    if status == StatusCode::OK && f["status"] != fo["status"] {
        run.tally.worked += 1;
        let after = s.get(&format!("/v1/orders/{order_id}")).await.1;
        run.tally.rerouted += after["sourcing_attempts"].as_array().unwrap().len() - attempts_before;
    }
    (format!("{action} {id} ({}) {} -> {status} {}", fo["status"], body.unwrap_or_default(), f["status"]), status)
}

fn summary(o: &Value) -> String {
    match o["lines"].as_array() {
        Some(lines) => lines
            .iter()
            .map(|l| format!("[{} {}: {}]", l["line_id"], l["status"], l["allocations"]))
            .collect::<Vec<_>>()
            .join(""),
        None => o["errors"].to_string(),
    }
}

async fn positions(s: &TestServer) -> BTreeMap<Key, Counts> {
    s.store
        .positions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            let c = p.position.counts;
            let counts = Counts {
                on_hand: c.on_hand.get() as i64,
                damaged: c.damaged.get() as i64,
                quarantined: c.quarantined.get() as i64,
                safety_stock: c.safety_stock.get() as i64,
                reserved: c.reserved.get() as i64,
                allocated: c.allocated.get() as i64,
            };
            ((p.position.node_id.to_string(), p.position.sku.to_string()), counts)
        })
        .collect()
}

/// Every order, walked page by page through the listing.
async fn all_orders(s: &TestServer) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut path = String::from("/v1/orders?limit=500");
    loop {
        let (status, page) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        orders.extend(page["orders"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/orders?limit=500&cursor={c}"),
            None => return orders,
        }
    }
}

/// The invariants after a step. `before` is the state the step started from.
async fn check(
    s: &TestServer,
    run: &mut Run,
    before: &BTreeMap<Key, Counts>,
    delta_applied: bool,
) -> BTreeMap<Key, Counts> {
    let ctx = run.context();
    let after = positions(s).await;

    // Totals in the database.
    let (allocations, allocated) = s.store.allocation_totals().await.unwrap();
    assert_eq!(allocations, allocated, "allocations vs positions.allocated\n{ctx}");
    let (reservation_lines, reserved) = s.store.reservation_totals().await.unwrap();
    assert_eq!(reservation_lines, reserved, "active reservation lines vs positions.reserved\n{ctx}");

    // Per position: allocations of the listed orders' live lines.
    let orders = all_orders(s).await;
    assert_eq!(orders.len(), run.orders.len(), "every order answered 201 is listed, and no other\n{ctx}");
    let holds_stock = ["created", "released", "accepted", "picking", "packed", "ready_for_pickup"];
    let mut by_position: BTreeMap<Key, i64> = BTreeMap::new();
    for o in &orders {
        for f in o["fulfillment_orders"].as_array().unwrap() {
            if !holds_stock.contains(&f["status"].as_str().unwrap()) {
                continue;
            }
            for l in f["lines"].as_array().unwrap() {
                let key = (f["node_id"].as_str().unwrap().to_owned(), l["sku"].as_str().unwrap().to_owned());
                *by_position.entry(key).or_default() += l["quantity"].as_i64().unwrap();
            }
        }
        for l in o["lines"].as_array().unwrap() {
            let q = |f: &str| l[f].as_i64().unwrap();
            assert_eq!(
                q("allocated_quantity") + q("backordered_quantity") + q("unfilled_quantity") + q("cancelled_quantity"),
                q("quantity"),
                "line buckets add up: {l}\n{ctx}"
            );
            let line_sum: i64 =
                l["allocations"].as_array().unwrap().iter().map(|a| a["quantity"].as_i64().unwrap()).sum();
            assert_eq!(line_sum, q("allocated_quantity"), "a line's allocations are its allocated units: {l}\n{ctx}");
            assert!(
                q("delivered_quantity") <= q("shipped_quantity") && q("shipped_quantity") <= q("allocated_quantity"),
                "delivered <= shipped <= allocated: {l}\n{ctx}"
            );
        }
    }
    assert_eq!(by_position.values().sum::<i64>(), allocations, "no allocation outside the listed orders\n{ctx}");

    // Per position: active reservations.
    let mut reserved_at: BTreeMap<Key, i64> = BTreeMap::new();
    for id in run.reservations.clone() {
        if run.closed_reservations.contains(&id) {
            continue;
        }
        let (status, r) = s.get(&format!("/v1/reservations/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{r}\n{ctx}");
        if r["status"] != "active" {
            run.tally.expired += usize::from(r["status"] == "expired");
            run.closed_reservations.insert(id);
            continue;
        }
        for l in r["lines"].as_array().unwrap() {
            let key = (l["node_id"].as_str().unwrap().to_owned(), l["sku"].as_str().unwrap().to_owned());
            *reserved_at.entry(key).or_default() += l["quantity"].as_i64().unwrap();
        }
    }

    for (key, c) in &after {
        let (node, sku) = key;
        assert_eq!(c.allocated, by_position.get(key).copied().unwrap_or(0), "{node}/{sku} allocated\n{ctx}");
        assert_eq!(c.reserved, reserved_at.get(key).copied().unwrap_or(0), "{node}/{sku} reserved\n{ctx}");
        let held_before = before.get(key).map_or(0, Counts::held);
        if c.over_committed() {
            if delta_applied {
                run.shrunk.insert(key.clone());
            }
            run.tally.over_committed += 1;
            assert!(
                run.shrunk.contains(key),
                "{node}/{sku} holds {} of {} promisable without a shrinkage delta: {c:?}\n{ctx}",
                c.held(),
                c.promisable()
            );
            assert!(
                c.held() <= held_before,
                "{node}/{sku} is over-committed after shrinkage, yet stock was taken: {} -> {}\n{ctx}",
                held_before,
                c.held()
            );
        } else {
            run.shrunk.remove(key);
        }

        // What the API serves (the read model) is the database's position.
        let (status, p) = s.get(&format!("/v1/inventory/{node}/{sku}")).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        let atp = (c.promisable() - c.held()).max(0);
        let served = ["on_hand", "reserved", "allocated", "atp"].map(|f| p[f].as_i64().unwrap());
        assert_eq!(served, [c.on_hand, c.reserved, c.allocated, atp], "{node}/{sku} as served\n{ctx}");
    }
    assert!(by_position.keys().all(|k| after.contains_key(k)), "allocations at unknown positions\n{ctx}");
    assert!(reserved_at.keys().all(|k| after.contains_key(k)), "reservations at unknown positions\n{ctx}");
    after
}

async fn one_seed(backend: Backend, seed: u64) -> Option<Tally> {
    let start: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    // No background sweep: it could commit an expiry between a step and its checks and
    // refresh the read model a moment later. Expiry here comes from the requests
    // themselves and from the explicit sweep step.
    let s = TestServer::start_with(backend, clock.clone(), false).await?;
    s.seed().await;
    let mut run = Run {
        tally: Tally::default(),
        seed,
        rng: SplitMix64::new(seed),
        clock,
        now: start,
        orders: Vec::new(),
        reservations: Vec::new(),
        closed_reservations: BTreeSet::new(),
        shrunk: BTreeSet::new(),
        log: Vec::new(),
    };
    for node in NODES {
        for sku in SKUS {
            let mut body = json!({"on_hand": run.rng.range(2, 9)});
            if run.rng.chance(0.25) {
                body["safety_stock"] = json!(1);
            }
            if run.rng.chance(0.2) {
                body["damaged"] = json!(1);
            }
            let (status, p) = s.put(&format!("/v1/inventory/{node}/{sku}"), body.clone()).await;
            assert!(status.is_success(), "{p}");
            run.log.push(format!("put {node}/{sku} {body}"));
        }
    }
    let mut before = positions(&s).await;
    for _ in 0..STEPS {
        let outcome = step(&s, &mut run).await;
        run.log.push(outcome.what);
        let expected = [
            StatusCode::OK,
            StatusCode::CREATED,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::UNPROCESSABLE_ENTITY,
        ];
        assert!(expected.contains(&outcome.status), "unexpected answer\n{}", run.context());
        run.tally.refused += usize::from(!outcome.status.is_success());
        let after = check(&s, &mut run, &before, outcome.delta_applied).await;
        if !outcome.status.is_success() || outcome.retry {
            assert_eq!(after, before, "a refused or retried request changes nothing\n{}", run.context());
        }
        before = after;
    }
    // Each seed has a server of its own; give its connections back before the next one.
    s.app.close().await;
    Some(run.tally)
}

async fn interleavings(backend: Backend, seeds: std::ops::Range<u64>) {
    let mut totals = Tally::default();
    for seed in seeds {
        let Some(tally) = one_seed(backend, seed).await else {
            return;
        };
        totals.add(&tally);
    }
    eprintln!("{backend:?}: {totals:?}");
    // The sequences must reach the interesting states, or the checks prove little.
    assert!(totals.placed > 0 && totals.cancelled > 0 && totals.refused > 0, "{totals:?}");
    assert!(totals.converted > 0 && totals.expired > 0 && totals.over_committed > 0, "{totals:?}");
    assert!(totals.worked > 0 && totals.rerouted > 0 && totals.backorders_filled > 0, "{totals:?}");
}

/// Three groups of seeds per backend, so that each test stays short.
macro_rules! seed_groups {
    ($($name:ident: $backend:expr, $group:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let per = SEEDS / 3;
                interleavings($backend, $group * per..($group + 1) * per).await;
            }
        )*
    };
}

seed_groups! {
    random_interleavings_conserve_stock_sqlite_1: Backend::Sqlite, 0;
    random_interleavings_conserve_stock_sqlite_2: Backend::Sqlite, 1;
    random_interleavings_conserve_stock_sqlite_3: Backend::Sqlite, 2;
    random_interleavings_conserve_stock_postgres_1: Backend::Postgres, 0;
    random_interleavings_conserve_stock_postgres_2: Backend::Postgres, 1;
    random_interleavings_conserve_stock_postgres_3: Backend::Postgres, 2;
}
