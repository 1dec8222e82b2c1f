//! `allot load orders`: the order-placement load generator (BENCHMARKS.md).
//!
//! Sends `POST /v1/orders` bodies generated from the demo scenario (the same customers,
//! SKU popularity and network as `allot demo`), each with a unique external id, from
//! `--concurrency` connections. Bounded in count and in time, and refuses any address that
//! is not loopback. Two modes:
//! - closed loop (default): each connection sends its next order when the last is answered
//!   — the throughput the server sustains;
//! - open loop (`--rate R`): orders are scheduled at R per second whatever the answers, and
//!   latency is measured from the scheduled send time, so a stalled server cannot hide its
//!   queueing (no coordinated omission) — the latency at a given rate.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use allot_core::scenario::{OrderStreamSpec, ScenarioSpec, generate, generate_orders};
use anyhow::Context;

/// Bodies generated up front and cycled through (each send gets a fresh external id).
const DISTINCT_CARTS: usize = 5_000;

pub struct LoadArgs {
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

/// Bodies with `@@ID@@` where the external id goes.
fn carts(lines: usize, seed: u64) -> Vec<String> {
    let scenario = generate(&ScenarioSpec::demo());
    let spec = OrderStreamSpec { count: DISTINCT_CARTS, seed, lines_min: lines, lines_max: lines, pickup_share: 0.0 };
    generate_orders(&scenario, &spec)
        .iter()
        .enumerate()
        .map(|(i, o)| crate::scenario::order_body(o, "@@ID@@", i).to_string())
        .collect()
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    created: usize,
    ok: usize,
    client_errors: usize,
    server_errors: usize,
    failed: usize,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    anyhow::ensure!(args.concurrency >= 1 && args.concurrency <= 1024, "--concurrency must be 1–1024");
    anyhow::ensure!(args.count >= 1 && args.count <= 10_000_000, "--count must be 1–10000000");
    anyhow::ensure!((1..=500).contains(&args.lines), "--lines must be 1–500");
    let bodies = Arc::new(carts(args.lines, args.seed));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let endpoint = format!("{}/v1/orders", args.url.trim_end_matches('/'));
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
                // Open loop: wait for this order's slot; latency counts from the slot.
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
                let body = bodies[i % bodies.len()].replace("@@ID@@", &format!("L-{run_tag}-{i}"));
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
                        let _ = resp.bytes().await;
                        t.latencies_us.push(sent_at.elapsed().as_micros() as u64);
                        match status.as_u16() {
                            201 => t.created += 1,
                            200 => t.ok += 1,
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
    println!(
        "orders: {answered} answered in {elapsed:.2} s = {:.0}/s ({} created, {} replayed, {} 4xx, {} 5xx, {} failed)",
        answered as f64 / elapsed,
        all.created,
        all.ok,
        all.client_errors,
        all.server_errors,
        all.failed
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}{}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        args.rate.map(|r| format!("  (open loop at {r:.0}/s)")).unwrap_or_default()
    );
    anyhow::ensure!(all.server_errors == 0 && all.failed == 0, "the server failed some requests");
    Ok(())
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
        let c = carts(3, 1);
        assert_eq!(c.len(), DISTINCT_CARTS);
        let v: serde_json::Value = serde_json::from_str(&c[0]).unwrap();
        assert_eq!(v["lines"].as_array().unwrap().len(), 3);
        assert_eq!(v["external_id"], "@@ID@@");
    }
}
