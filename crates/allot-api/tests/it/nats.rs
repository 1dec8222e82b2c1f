//! The NATS JetStream relay against real NATS servers: a private `nats-server` (from the
//! machine's package) killed with SIGKILL and restarted on the same store while orders
//! are placed — every event ends up in the stream exactly once — and the shared server on
//! 127.0.0.1:4222 (a stream and subject prefix of the test's own, deleted afterwards).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Backend, TestServer};
use allot_app::NatsOptions;
use futures::StreamExt;
use serde_json::json;

const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// The machine's NATS service, as CI has it.
const SHARED_NATS: &str = "127.0.0.1:4222";

/// Whether `nats-server` can be started here (else the test is skipped, see `common::skip`).
fn nats_server_installed() -> bool {
    let found = std::path::Path::new(NATS_SERVER).exists();
    if !found {
        crate::common::skip(&format!("{NATS_SERVER} is not installed, NATS broker-restart test not run"));
    }
    found
}

/// Whether the shared NATS service answers.
fn shared_nats_answers() -> bool {
    let up = std::net::TcpStream::connect(SHARED_NATS).is_ok();
    if !up {
        crate::common::skip(&format!("no NATS server answers on {SHARED_NATS}, shared-NATS test not run"));
    }
    up
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nats(port: u16, dir: &std::path::Path) -> Child {
    let mut child = Command::new(NATS_SERVER)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nats-server did not start on port {port}");
}

/// Every message of a stream: (Nats-Msg-Id, subject).
async fn stream_messages(url: &str, stream: &str) -> Vec<(String, String)> {
    let js =
        allot_app::connect_nats(&NatsOptions { stream: stream.to_owned(), ..NatsOptions::new(url) }).await.unwrap();
    let mut s = js.get_stream(stream).await.unwrap();
    let count = s.info().await.unwrap().state.messages;
    let consumer = s.create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default()).await.unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await.unwrap().unwrap().unwrap();
        let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string()).unwrap_or_default();
        out.push((id, m.subject.to_string()));
    }
    out
}

async fn event_ids(s: &TestServer) -> Vec<String> {
    s.settle_events().await;
    let e = s.get("/v1/events?limit=1000").await.1;
    e["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

async fn place(s: &TestServer, ext: &str) {
    let o = json!({"channel": "web", "external_id": ext, "ship_to": {"lat": 39.95, "lon": -75.16},
                   "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    assert_eq!(s.post("/v1/orders", o).await.0, reqwest::StatusCode::CREATED);
}

/// Waits until the relay has published every event written so far.
async fn wait_published(s: &TestServer) {
    s.settle_events().await;
    let want = s.store.event_horizon().await.unwrap();
    for _ in 0..400 {
        if s.store.relay_cursor(allot_app::NATS_RELAY).await.unwrap() >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the relay did not publish up to {want}");
}

async fn a_broker_restart_loses_nothing_and_duplicates_nothing(backend: Backend) {
    if !nats_server_installed() {
        return;
    }
    let Some(s) = TestServer::start(backend).await else { return };
    let dir = std::env::temp_dir().join(format!("allot-nats-{}-{:?}", std::process::id(), backend));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut nats = start_nats(port, &dir);
    let url = format!("nats://127.0.0.1:{port}");
    let opts = NatsOptions {
        poll: Duration::from_millis(20),
        ack_timeout: Duration::from_millis(500),
        ..NatsOptions::new(&url)
    };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 1000})).await;
    s.app.start_nats_relay(opts);
    for i in 0..10 {
        place(&s, &format!("A-{i}")).await;
    }
    wait_published(&s).await;
    // Kill the broker (no clean shutdown) while more orders come in, then bring it back
    // on the same store.
    nats.kill().unwrap();
    nats.wait().unwrap();
    for i in 0..10 {
        place(&s, &format!("B-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut nats = start_nats(port, &dir);
    for i in 0..10 {
        place(&s, &format!("C-{i}")).await;
    }
    wait_published(&s).await;

    let ids = event_ids(&s).await;
    let msgs = stream_messages(&url, "ALLOT").await;
    let stored: Vec<String> = msgs.iter().map(|m| m.0.clone()).collect();
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no event stored twice");
    assert_eq!(unique, ids.iter().collect::<BTreeSet<_>>(), "every event stored");
    assert!(msgs.iter().any(|m| m.1 == "allot.order.created"));
    nats.kill().unwrap();
    nats.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_duplicates_nothing_sqlite() {
    a_broker_restart_loses_nothing_and_duplicates_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_duplicates_nothing_postgres() {
    a_broker_restart_loses_nothing_and_duplicates_nothing(Backend::Postgres).await;
}

/// The machine's NATS service (127.0.0.1:4222), as CI has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_shared_nats_server() {
    if !shared_nats_answers() {
        return;
    }
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let tag = format!("T{}", std::process::id());
    let url = &format!("nats://{SHARED_NATS}");
    let opts = NatsOptions {
        stream: format!("ALLOT_TEST_{tag}"),
        subject_prefix: format!("allot_test_{tag}"),
        poll: Duration::from_millis(20),
        ..NatsOptions::new(url)
    };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.app.start_nats_relay(opts.clone());
    for i in 0..3 {
        place(&s, &format!("S-{i}")).await;
    }
    wait_published(&s).await;
    let msgs = stream_messages(url, &opts.stream).await;
    // Without failures the stream holds the events in outbox order.
    assert_eq!(msgs.iter().map(|m| m.0.clone()).collect::<Vec<_>>(), event_ids(&s).await);
    assert!(msgs.iter().all(|m| m.1.starts_with(&format!("allot_test_{tag}."))));
    let js = allot_app::connect_nats(&opts).await.unwrap();
    js.delete_stream(&opts.stream).await.unwrap();
}
