//! The webhook relay against a local receiver that fails, times out and recovers: every
//! event is acknowledged exactly once, nothing is lost, signatures verify (checked here
//! with an independent HMAC), events of one order arrive in order, endpoints that keep
//! failing dead-letter and can be re-driven.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::TestServer;
use allot_app::{EgressRules, Role, WebhookOptions};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    webhooks_deliver_every_event_once_signed_and_in_order_per_order_through_failures,
    endpoints_inside_the_network_are_refused_and_never_connected,
    endpoints_are_listed_and_deleted_and_name_only_event_types_allot_writes
);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: (path, webhook-id, timestamp, signature, body, answered 2xx in time).
#[derive(Default)]
struct Receiver {
    seen: Vec<(String, String, String, String, String, bool)>,
    flaky_requests: usize,
    down_recovered: bool,
}

type Shared = Arc<Mutex<Receiver>>;

fn header(h: &HeaderMap, k: &str) -> String {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Fails its first three requests (500), lets the fourth time out, then answers 204.
async fn flaky(State(r): State<Shared>, h: HeaderMap, body: String) -> AxumStatus {
    let n = {
        let mut g = r.lock().unwrap();
        g.flaky_requests += 1;
        g.flaky_requests
    };
    let record = |ok: bool| {
        r.lock().unwrap().seen.push((
            "flaky".into(),
            header(&h, "webhook-id"),
            header(&h, "webhook-timestamp"),
            header(&h, "webhook-signature"),
            body.clone(),
            ok,
        ));
    };
    match n {
        1..=3 => {
            record(false);
            AxumStatus::INTERNAL_SERVER_ERROR
        }
        4 => {
            record(false);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            AxumStatus::NO_CONTENT
        }
        _ => {
            record(true);
            AxumStatus::NO_CONTENT
        }
    }
}

/// Answers 503 until recovered.
async fn down(State(r): State<Shared>, h: HeaderMap, body: String) -> AxumStatus {
    let mut g = r.lock().unwrap();
    let ok = g.down_recovered;
    g.seen.push(("down".into(), header(&h, "webhook-id"), String::new(), String::new(), body, ok));
    if ok { AxumStatus::OK } else { AxumStatus::SERVICE_UNAVAILABLE }
}

async fn start_receiver() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/flaky", axum::routing::post(flaky))
        .route("/down", axum::routing::post(down))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, shared)
}

fn verify(id: &str, ts: &str, signature: &str, body: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature.split(' ').any(|s| s == format!("v1,{expected}"))
}

async fn wait_for(s: &TestServer, hook: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let v = s.get(&format!("/v1/webhooks/{hook}")).await.1;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook {hook} did not settle: {}", s.get(&format!("/v1/webhooks/{hook}")).await.1);
}

async fn webhooks_deliver_every_event_once_signed_and_in_order_per_order_through_failures(s: TestServer) {
    s.app.set_webhook_options(WebhookOptions {
        allow_insecure: true,
        egress: EgressRules { allow_private: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() },
        timeout: Duration::from_millis(400),
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(30),
        backoff_cap: Duration::from_millis(200),
        max_attempts: 4,
        ..Default::default()
    });
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 100})).await;
    // An event before the endpoints exist is not theirs.
    let early = json!({"channel": "web", "external_id": "EARLY", "ship_to": {"lat": 39.95, "lon": -75.16},
                       "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    s.post("/v1/orders", early).await;
    s.settle_events().await;
    let horizon = s.get("/v1/events?limit=1000").await.1["next_cursor"].as_str().unwrap().to_owned();

    let (base, rx) = start_receiver().await;
    // Bad endpoints are refused; only admins manage them.
    let bad = json!({"url": "http://hooks.example.com/x", "event_types": ["*"], "secret": "whsec_short"});
    let (status, p) = s.put("/v1/webhooks/bad", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["url", "secret"]);
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let hook = json!({"url": format!("{base}/flaky"), "event_types": ["*"], "secret": SECRET});
    assert_eq!(s.put_as(&web, "/v1/webhooks/crm", hook.clone()).await.0, StatusCode::FORBIDDEN);
    let (status, v) = s.put("/v1/webhooks/crm", hook).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.get("secret").is_none());
    let dead = json!({"url": format!("{base}/down"), "event_types": ["order.created"], "secret": SECRET});
    assert_eq!(s.put("/v1/webhooks/erp", dead).await.0, StatusCode::CREATED);

    // Traffic: five orders, one cancelled.
    let mut ids = Vec::new();
    for i in 0..5 {
        let o = json!({"channel": "web", "external_id": format!("W-{i}"), "ship_to": {"lat": 39.95, "lon": -75.16},
                       "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
        ids.push(s.post("/v1/orders", o).await.1["order_id"].as_str().unwrap().to_owned());
    }
    s.post(&format!("/v1/orders/{}/cancel", ids[0]), json!({"reason": "customer_request"})).await;
    s.settle_events().await;
    let events = s.get(&format!("/v1/events?after={horizon}&limit=1000")).await.1;
    let events: Vec<Value> = events["events"].as_array().unwrap().clone();
    let created = events.iter().filter(|e| e["type"] == "order.created").count();
    assert_eq!(created, 5);

    let v =
        wait_for(&s, "crm", |v| v["deliveries"]["delivered"] == events.len() && v["deliveries"]["pending"] == 0).await;
    assert_eq!(v["deliveries"]["dead"], 0);
    let seen: Vec<_> = rx.lock().unwrap().seen.iter().filter(|r| r.0 == "flaky").cloned().collect();
    assert!(seen.len() >= events.len() + 4, "three 500s and a timeout were retried: {} requests", seen.len());
    // Every request is signed correctly; every event acknowledged exactly once; none lost.
    for (_, id, ts, sig, body, _) in &seen {
        assert!(verify(id, ts, sig, body), "signature of {id} does not verify");
    }
    let mut acked: BTreeMap<String, usize> = BTreeMap::new();
    for r in seen.iter().filter(|r| r.5) {
        *acked.entry(r.1.clone()).or_default() += 1;
    }
    let expected: BTreeSet<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(acked.keys().cloned().collect::<BTreeSet<_>>(), expected, "acknowledged = the events since creation");
    assert!(acked.values().all(|n| *n == 1), "each event acknowledged once: {acked:?}");
    // Per order, acknowledged events arrive in stream order.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in seen.iter().filter(|r| r.5) {
        let body: Value = serde_json::from_str(&r.4).unwrap();
        assert_eq!(body["id"], r.1.as_str());
        let (order, seq) = (body["order_id"].as_str().unwrap().to_owned(), body["seq"].as_i64().unwrap());
        assert!(last.get(&order).is_none_or(|prev| *prev < seq), "order {order}: {seq} after {:?}", last.get(&order));
        last.insert(order, seq);
    }

    // The endpoint that keeps failing: dead after 4 attempts each, then re-driven.
    let v = wait_for(&s, "erp", |v| v["deliveries"]["dead"] == 5).await;
    assert_eq!((v["deliveries"]["pending"].clone(), v["deliveries"]["delivered"].clone()), (json!(0), json!(0)));
    let deadl = s.get("/v1/webhooks/erp/deliveries?status=dead").await.1;
    let deadl = deadl["deliveries"].as_array().unwrap();
    assert_eq!(deadl.len(), 5);
    assert!(deadl.iter().all(|d| d["attempts"] == 4 && d["last_error"] == "delivery failed: HTTP 503"), "{deadl:?}");
    rx.lock().unwrap().down_recovered = true;
    let (status, r) = s.post("/v1/webhooks/erp/redrive", json!(null)).await;
    assert_eq!((status, r["redriven"].clone()), (StatusCode::OK, json!(5)));
    let v = wait_for(&s, "erp", |v| v["deliveries"]["delivered"] == 5).await;
    assert_eq!(v["deliveries"]["dead"], 0);
    assert_eq!(s.get("/v1/webhooks/nope").await.0, StatusCode::NOT_FOUND);
}

/// Server-side request forgery: endpoints naming internal addresses are refused when they
/// are registered, and a name that resolves to an internal address at delivery time is
/// never connected to (the relay connects only to the addresses it checked). The failure
/// shown to admins does not say why, so it cannot tell an open port from a closed one.
async fn endpoints_inside_the_network_are_refused_and_never_connected(s: TestServer) {
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://10.0.0.1/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://[::ffff:169.254.169.254]/",
        "https://metadata.google.internal/",
        "https://localhost/",
        "https://user:password@hooks.example.com/",
    ] {
        let (status, p) = s.put("/v1/webhooks/ssrf", json!({"url": url, "event_types": ["*"], "secret": SECRET})).await;
        assert_eq!(
            (status, p["errors"][0]["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("url")),
            "{url}: {p}"
        );
    }
    assert_eq!(s.get("/v1/webhooks/ssrf").await.0, StatusCode::NOT_FOUND, "nothing was stored");

    // A public-looking name that resolves to this machine (as DNS rebinding would answer).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let rebind = || EgressRules {
        hosts: vec![("rebind.example".to_owned(), "127.0.0.1".parse().unwrap())],
        ..Default::default()
    };
    let options = |egress: EgressRules| WebhookOptions {
        egress,
        timeout: Duration::from_millis(400),
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(40),
        max_attempts: 3,
        ..Default::default()
    };
    s.app.set_webhook_options(options(rebind()));
    let hook = json!({"url": format!("https://rebind.example:{port}/h"), "event_types": ["*"], "secret": SECRET});
    assert_eq!(s.put("/v1/webhooks/rebind", hook).await.0, StatusCode::CREATED, "a name passes registration");
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    let o = json!({"channel": "web", "external_id": "SSRF-1", "ship_to": {"lat": 39.95, "lon": -75.16},
                   "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    s.post("/v1/orders", o).await;
    let v = wait_for(&s, "rebind", |v| v["deliveries"]["dead"].as_u64() > Some(0)).await;
    assert_eq!(v["deliveries"]["delivered"], 0);
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "no connection reached the internal address");
    let dead = s.get("/v1/webhooks/rebind/deliveries?status=dead").await.1;
    assert!(
        dead["deliveries"].as_array().unwrap().iter().all(|d| d["last_error"] == "delivery failed"),
        "the shown error says nothing about the network: {dead}"
    );

    // The control: with loopback allowed, the same name is connected to (and fails, as
    // the listener speaks no TLS) — it was the address rule, not the name, that stopped it.
    s.app.set_webhook_options(options(EgressRules { allow_private: vec!["127.0.0.0/8".parse().unwrap()], ..rebind() }));
    assert_eq!(s.post("/v1/webhooks/rebind/redrive", json!(null)).await.0, StatusCode::OK);
    for _ in 0..200 {
        if connections.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) > 0, "allowed, the relay connects");
}

/// Endpoints are listed and deleted; a subscription names event types Allot writes (a
/// typo would subscribe to nothing, so it is refused); a method a route does not answer is
/// a 405 problem document.
async fn endpoints_are_listed_and_deleted_and_name_only_event_types_allot_writes(s: TestServer) {
    let hook = |types: Value| json!({"url": "https://hooks.example.com/allot", "event_types": types, "secret": SECRET});
    assert_eq!(
        s.put("/v1/webhooks/crm", hook(json!(["order.created", "fulfillment_order.shipped"]))).await.0,
        StatusCode::CREATED
    );
    assert_eq!(s.put("/v1/webhooks/all", hook(json!(["*"]))).await.0, StatusCode::CREATED);
    let (status, p) = s.put("/v1/webhooks/typo", hook(json!(["order.created", "order.craeted"]))).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("event_types[1]")),
        "{p}"
    );
    assert_eq!(s.get("/v1/webhooks/typo").await.0, StatusCode::NOT_FOUND);

    let (status, list) = s.get("/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["webhooks"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["all", "crm"]);
    assert!(list["webhooks"].as_array().unwrap().iter().all(|w| w.get("secret").is_none()));

    let delete = |id: &str| s.client.delete(s.url(&format!("/v1/webhooks/{id}"))).bearer_auth(crate::common::ADMIN_KEY);
    assert_eq!(s.send(delete("crm")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/v1/webhooks/crm").await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.send(delete("crm")).await.0, StatusCode::NOT_FOUND);
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let (status, _) = s.send(s.client.delete(s.url("/v1/webhooks/all")).bearer_auth(&web)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/v1/webhooks").await.1["webhooks"].as_array().unwrap().len(), 1);

    // Every event a day of traffic writes is a type a subscription may name.
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    let o = json!({"channel": "web", "external_id": "T-1", "ship_to": {"lat": 39.95, "lon": -75.16},
                   "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}], "holds": ["manual"]});
    let id = s.post("/v1/orders", o).await.1["order_id"].as_str().unwrap().to_owned();
    s.post(&format!("/v1/orders/{id}/holds/manual/release"), json!(null)).await;
    s.post(&format!("/v1/orders/{id}/cancel"), json!({"reason": "customer_request"})).await;
    s.settle_events().await;
    let known = allot_app::event_types();
    let events = s.get("/v1/events?limit=1000").await.1;
    for e in events["events"].as_array().unwrap() {
        assert!(
            known.contains(&e["type"].as_str().unwrap().to_owned()),
            "{} is written but not subscribable",
            e["type"]
        );
    }

    // A method the route does not answer: 405 as a problem document.
    let resp = s.client.post(s.url("/v1/nodes/DC-EAST")).bearer_auth(crate::common::ADMIN_KEY).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], "urn:allot:problem:method-not-allowed");
}
