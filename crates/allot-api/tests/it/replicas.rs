//! Two servers on one PostgreSQL database: each one's reads reflect the other's committed
//! writes within a second (change notifications refresh the in-memory read models).
//! PostgreSQL only; skipped without `ALLOT_TEST_DATABASE_URL`.

use std::time::{Duration, Instant};

use crate::common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Polls `path` on `server` until `check` holds or a second has passed; returns whether it held.
async fn within_a_second(server: &TestServer, path: &str, check: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = server.get(path).await;
        if status == StatusCode::OK && check(&body) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_sees_the_others_committed_writes_within_a_second() {
    let Some(a) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let b = a.replica().await;
    a.seed().await;
    assert!(within_a_second(&b, "/v1/nodes/DC-EAST", |n| n["type"] == "dc").await, "node");
    assert!(within_a_second(&b, "/v1/items/SKU-3", |i| i["name"] == "Item SKU-3").await, "item");

    a.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    assert!(within_a_second(&b, "/v1/availability?sku=SKU-1", |v| v["items"][0]["atp"] == 10).await, "position");

    b.post("/v1/inventory/deltas", json!({"deltas": [{"node_id": "DC-EAST", "sku": "SKU-1", "on_hand_delta": -4}]}))
        .await;
    assert!(within_a_second(&a, "/v1/inventory/DC-EAST/SKU-1", |p| p["on_hand"] == 6).await, "delta the other way");

    b.post("/v1/inventory/snapshots/DC-WEST", json!({"positions": [{"sku": "SKU-2", "on_hand": 3}]})).await;
    assert!(within_a_second(&a, "/v1/availability?sku=SKU-2", |v| v["items"][0]["atp"] == 3).await, "snapshot");

    // A bulk write too large to list its keys still reaches the other replica.
    let deltas: Vec<Value> = (0..3)
        .flat_map(|_| ["DC-EAST", "DC-WEST", "ST-CHI"].into_iter())
        .flat_map(|n| {
            ["SKU-1", "SKU-2", "SKU-3"].into_iter().map(move |s| json!({"node_id": n, "sku": s, "on_hand_delta": 1}))
        })
        .cycle()
        .take(3000)
        .collect();
    let (status, _) = a.post("/v1/inventory/deltas", json!({"deltas": deltas})).await;
    assert_eq!(status, StatusCode::OK);
    let expected = a.get("/v1/availability?sku=SKU-3").await.1["items"][0]["atp"].clone();
    assert!(within_a_second(&b, "/v1/availability?sku=SKU-3", |v| v["items"][0]["atp"] == expected).await, "bulk");

    // Policies: activation on one replica routes quotes on the other.
    let put = a
        .client
        .put(a.url("/v1/policies/p"))
        .bearer_auth(crate::common::ADMIN_KEY)
        .header("content-type", "application/json")
        .body(r#"{"fallback": {"filters": {"exclude_nodes": ["DC-EAST"]}}}"#);
    assert_eq!(a.send(put).await.0, StatusCode::CREATED);
    a.post("/v1/policies/p/activate", json!(null)).await;
    assert!(within_a_second(&b, "/v1/policies", |v| v["policies"][0]["active"] == true).await, "policy");
    let body =
        json!({"ship_to": {"lat": 40.0, "lon": -75.0}, "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    let (status, q) = b.post("/v1/sourcing/quote", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(q["policy"]["name"], "p");

    // Promise data: a carrier and a node calendar written on one replica are read there.
    let ups = json!({"name": "UPS", "services": [{"code": "ground", "service_level": "standard",
        "pickup_cutoff_local": "17:00", "transit_days": [{"max_km": 5000.0, "days": 2}]}]});
    assert_eq!(a.put("/v1/carriers/ups", ups).await.0, StatusCode::CREATED);
    assert!(within_a_second(&b, "/v1/carriers/ups", |c| c["document"]["name"] == "UPS").await, "carrier");
    let cal =
        json!({"hours": {"mon": ["09:00", "17:00"]}, "processing_minutes": 60, "carrier_services": ["ups:ground"]});
    assert_eq!(b.put("/v1/nodes/DC-WEST/calendar", cal).await.0, StatusCode::CREATED);
    assert!(
        within_a_second(&a, "/v1/nodes/DC-WEST/calendar", |c| c["document"]["carrier_services"][0] == "ups:ground")
            .await,
        "calendar"
    );
}

/// The hot-SKU race split across two servers (separate connection pools and read models,
/// one database): still exactly the stock there is, counted in the database; each server
/// answers the orders the other placed, and its availability follows within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_sku_raced_across_two_replicas_is_never_oversold() {
    use futures::StreamExt;
    let Some(a) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let b = a.replica().await;
    a.seed().await;
    a.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 500})).await;
    assert!(within_a_second(&b, "/v1/availability?sku=SKU-1", |v| v["items"][0]["atp"] == 500).await);

    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..2000)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            let body = json!({"channel": "web", "external_id": format!("R-{i}"),
                "ship_to": {"lat": 39.95, "lon": -75.16},
                "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
            async move { server.post("/v1/orders", body).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::CREATED), "every order is captured");
    let allocated = answers.iter().filter(|(_, o)| o["status"] == "allocated").count();
    assert_eq!(allocated, 500, "exactly the stock there is, across both servers");
    assert_eq!(a.store.allocation_totals().await.unwrap(), (500, 500));
    for server in [&a, &b] {
        assert!(
            within_a_second(server, "/v1/availability?sku=SKU-1", |v| v["items"][0]["atp"] == 0).await,
            "both read models reach ATP 0"
        );
    }
    // Orders placed through one server are read through the other.
    for (_, o) in answers.iter().step_by(199) {
        let id = o["order_id"].as_str().unwrap();
        assert_eq!(b.get(&format!("/v1/orders/{id}")).await.1["status"], o["status"]);
        assert_eq!(a.get(&format!("/v1/orders/{id}")).await.1["status"], o["status"]);
    }
}
