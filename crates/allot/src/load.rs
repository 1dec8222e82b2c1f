//! `allot load orders` and `allot load promises`: the load generators (BENCHMARKS.md).
//!
//! Carts are generated from a scenario (by default the demo scenario: the same customers,
//! SKU popularity and network as `allot demo`; `--nodes`/`--skus`/`--network-seed` name a
//! generated one as `allot scenario generate` writes it). `orders` sends each as a
//! `POST /v1/orders` body with a unique external id; `promises` sends it as a
//! `POST /v1/promises` body (lines, ship-to, customer tier; every method). Requests go
//! from `--concurrency` connections, bounded in count and in time, and any address that is
//! not loopback is refused. Two modes:
//! - closed loop (default): each connection sends its next request when the last is
//!   answered — the throughput the server sustains;
//! - open loop (`--rate R`): requests are scheduled at R per second whatever the answers,
//!   and latency is measured from the scheduled send time, so a stalled server cannot hide
//!   its queueing (no coordinated omission) — the latency at a given rate.
//!
//! Every answer is counted by status class; non-2xx answers are reported, never dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use allot_core::scenario::{OrderStreamSpec, ScenarioSpec, generate, generate_orders};
use allot_core::sourcing::OrderToSource;
use anyhow::Context;
use serde_json::json;

/// Bodies generated up front and cycled through (each order gets a fresh external id).
const DISTINCT_CARTS: usize = 5_000;

/// What the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /v1/orders` (201 created, 200 replayed).
    Orders,
    /// `POST /v1/promises` (200 with the options).
    Promises,
}

impl Target {
    fn path(self) -> &'static str {
        match self {
            Target::Orders => "/v1/orders",
            Target::Promises => "/v1/promises",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Target::Orders => "orders",
            Target::Promises => "promises",
        }
    }
}

pub struct LoadArgs {
    pub target: Target,
    /// The network carts are drawn from (`ScenarioSpec::demo()` for the demo).
    pub network: ScenarioSpec,
    pub url: String,
    pub key: String,
    pub count: usize,
    pub duration: Duration,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub lines: usize,
    pub seed: u64,
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
    let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(loopback, "the load generator only targets loopback addresses, not {host}");
    Ok(())
}

/// Carts of `lines` shipped lines: customers and SKUs as the scenario's order stream.
fn carts(network: &ScenarioSpec, lines: usize, seed: u64) -> Vec<OrderToSource> {
    let scenario = generate(network);
    let spec = OrderStreamSpec { count: DISTINCT_CARTS, seed, lines_min: lines, lines_max: lines, pickup_share: 0.0 };
    generate_orders(&scenario, &spec)
}

/// Order bodies with `@@ID@@` where the external id goes.
fn order_bodies(carts: &[OrderToSource]) -> Vec<String> {
    carts.iter().enumerate().map(|(i, o)| crate::scenario::order_body(o, "@@ID@@", i).to_string()).collect()
}

/// Promise bodies: the cart's lines, where it goes and the customer's tier.
fn promise_bodies(carts: &[OrderToSource]) -> Vec<String> {
    carts
        .iter()
        .map(|o| {
            let lines: Vec<_> =
                o.lines.iter().map(|l| json!({"sku": l.sku.as_str(), "quantity": l.quantity.get()})).collect();
            let ship_to =
                o.ship_to.map(|p| json!({"lat": p.lat(), "lon": p.lon(), "country": o.country, "region": o.region}));
            json!({"lines": lines, "ship_to": ship_to, "customer": {"tier": o.customer_tier}}).to_string()
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    created: usize,
    ok: usize,
    /// 2xx answers that offer at least one ship option (promises only).
    with_ship_option: usize,
    client_errors: usize,
    server_errors: usize,
    failed: usize,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    anyhow::ensure!(args.concurrency >= 1 && args.concurrency <= 1024, "--concurrency must be 1–1024");
    anyhow::ensure!(args.count >= 1 && args.count <= 10_000_000, "--count must be 1–10000000");
    anyhow::ensure!((1..=500).contains(&args.lines), "--lines must be 1–500");
    let carts = carts(&args.network, args.lines, args.seed);
    let bodies = Arc::new(match args.target {
        Target::Orders => order_bodies(&carts),
        Target::Promises => promise_bodies(&carts),
    });
    let target = args.target;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let endpoint = format!("{}{}", args.url.trim_end_matches('/'), target.path());
    let run_tag = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, endpoint, key, bodies, next, run_tag) =
            (client.clone(), endpoint.clone(), args.key.clone(), bodies.clone(), next.clone(), run_tag.clone());
        let (count, rate) = (args.count, args.rate);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                // Open loop: wait for this request's slot; latency counts from the slot.
                let sent_at = match rate {
                    Some(r) => {
                        let slot = start + Duration::from_secs_f64(i as f64 / r);
                        tokio::time::sleep_until(slot.into()).await;
                        slot
                    }
                    None => Instant::now(),
                };
                if Instant::now() >= deadline {
                    break;
                }
                let body = match target {
                    Target::Orders => bodies[i % bodies.len()].replace("@@ID@@", &format!("L-{run_tag}-{i}")),
                    Target::Promises => bodies[i % bodies.len()].clone(),
                };
                let answer = client
                    .post(&endpoint)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(resp) => {
                        let status = resp.status();
                        let answer = resp.bytes().await.unwrap_or_default();
                        t.latencies_us.push(sent_at.elapsed().as_micros() as u64);
                        if target == Target::Promises && status.is_success() && has_ship_option(&answer) {
                            t.with_ship_option += 1;
                        }
                        match status.as_u16() {
                            201 => t.created += 1,
                            200..=299 => t.ok += 1,
                            400..=499 => t.client_errors += 1,
                            _ => t.server_errors += 1,
                        }
                    }
                    Err(_) => t.failed += 1,
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.context("a load task panicked")?;
        all.latencies_us.extend(t.latencies_us);
        all.created += t.created;
        all.ok += t.ok;
        all.with_ship_option += t.with_ship_option;
        all.client_errors += t.client_errors;
        all.server_errors += t.server_errors;
        all.failed += t.failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((all.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, all.latencies_us.len()) - 1;
        all.latencies_us[idx] as f64 / 1000.0
    };
    let answered = all.latencies_us.len();
    let rate = answered as f64 / elapsed;
    match target {
        Target::Orders => println!(
            "orders: {answered} answered in {elapsed:.2} s = {rate:.0}/s ({} created, {} replayed, {} 4xx, {} 5xx, \
             {} failed)",
            all.created, all.ok, all.client_errors, all.server_errors, all.failed
        ),
        Target::Promises => println!(
            "promises: {answered} answered in {elapsed:.2} s = {rate:.0}/s ({} 2xx of which {} with a ship option, \
             {} 4xx, {} 5xx, {} failed)",
            all.created + all.ok,
            all.with_ship_option,
            all.client_errors,
            all.server_errors,
            all.failed
        ),
    }
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}{}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        args.rate.map(|r| format!("  (open loop at {r:.0}/s)")).unwrap_or_default()
    );
    anyhow::ensure!(all.server_errors == 0 && all.failed == 0, "the server failed some requests");
    // Every promise body is valid: a 4xx is a failure too.
    anyhow::ensure!(
        target == Target::Orders || all.client_errors == 0,
        "the server refused some {} requests",
        target.noun()
    );
    Ok(())
}

/// Whether a promise answer offers shipping (an option id `ship:…`; the `unavailable`
/// list has no ids); a byte search, so the check takes little of the shared cores.
fn has_ship_option(answer: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""option_id":"ship:"#;
    answer.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_a_target() {
        assert!(check_loopback("http://127.0.0.1:8080").is_ok());
        assert!(check_loopback("http://localhost:8080").is_ok());
        assert!(check_loopback("http://[::1]:8080").is_ok());
        assert!(check_loopback("http://10.0.0.5:8080").is_err());
        assert!(check_loopback("https://example.com").is_err());
    }

    #[test]
    fn carts_have_the_asked_lines_and_a_slot_for_the_id() {
        let c = order_bodies(&carts(&ScenarioSpec::demo(), 3, 1));
        assert_eq!(c.len(), DISTINCT_CARTS);
        let v: serde_json::Value = serde_json::from_str(&c[0]).unwrap();
        assert_eq!(v["lines"].as_array().unwrap().len(), 3);
        assert_eq!(v["external_id"], "@@ID@@");
    }

    #[test]
    fn promise_carts_are_valid_promise_bodies_of_the_same_carts() {
        let carts = carts(&ScenarioSpec::demo(), 3, 1);
        let bodies = promise_bodies(&carts);
        assert_eq!(bodies.len(), DISTINCT_CARTS);
        for (cart, body) in carts.iter().zip(&bodies).take(50) {
            let p: allot_api::params::PromiseParam = serde_json::from_str(body).unwrap();
            let q = p.parse().unwrap();
            assert_eq!(q.order.lines.len(), 3);
            let skus: Vec<_> = q.order.lines.iter().map(|l| l.sku.clone()).collect();
            assert_eq!(skus, cart.lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>());
            assert!(q.methods.is_empty(), "every method is asked for");
        }
    }

    #[test]
    fn a_ship_option_is_recognised_in_an_answer() {
        assert!(has_ship_option(br#"{"options":[{"option_id":"ship:standard:2026-11-27","method":"ship"}]}"#));
        let pickup_only =
            br#"{"options":[{"option_id":"pickup:ST-X","method":"pickup"}],"unavailable":[{"method":"ship"}]}"#;
        assert!(!has_ship_option(pickup_only));
    }
}
