//! Checkout reservations, order listing and `Idempotency-Key`: stock held and given back
//! exactly, counted in the database.

use std::sync::Arc;

use crate::common::{Backend, TestServer};
use allot_app::{FixedClock, Role};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    reservations_hold_stock_until_released_converted_or_expired,
    reservations_racing_orders_never_oversell,
    orders_are_listed_filtered_and_paged,
    idempotency_keys_replay_the_first_answer,
    concurrent_retries_with_one_key_run_the_request_once,
);

fn order(ext: &str, lines: Value) -> Value {
    json!({"channel": "web", "external_id": ext, "ship_to": {"lat": 39.95, "lon": -75.16}, "lines": lines})
}

async fn position(s: &TestServer, node: &str, sku: &str) -> (i64, i64, i64) {
    let p = s.get(&format!("/v1/inventory/{node}/{sku}")).await.1;
    (p["reserved"].as_i64().unwrap(), p["allocated"].as_i64().unwrap(), p["atp"].as_i64().unwrap())
}

/// Units held by active reservations equal the positions' reserved column.
/// The order ids of a `GET /v1/orders` answer.
fn listed(v: &Value) -> Vec<String> {
    v["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

/// The order ids of `GET /v1/orders?{query}`, every page, following the cursor.
async fn orders_page_by_page(s: &TestServer, query: &str) -> Vec<String> {
    let (mut seen, mut path) = (Vec::new(), format!("/v1/orders?{query}"));
    loop {
        let (status, page) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(listed(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/orders?{query}&cursor={c}"),
            None => break,
        }
    }
    seen
}

async fn reserved_matches(s: &TestServer) -> i64 {
    let (lines, positions) = s.store.reservation_totals().await.unwrap();
    assert_eq!(lines, positions, "reservation lines and positions.reserved agree");
    lines
}

async fn reservations_hold_stock_until_released_converted_or_expired(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 4})).await;

    // At a named node.
    let (status, r) = s
        .post(
            "/v1/reservations",
            json!({"lines": [{"sku": "SKU-1", "quantity": 3, "node_id": "DC-EAST"}], "ttl_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!((r["status"].clone(), r["lines"][0]["quantity"].clone()), (json!("active"), json!(3)));
    assert!(r["expires_in_s"].as_i64().unwrap() > 590);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (3, 0, 7));
    let id = r["reservation_id"].as_str().unwrap().to_owned();

    // Routed by the engine: the nearest DC to Philadelphia.
    let (status, routed) = s
        .post(
            "/v1/reservations",
            json!({"lines": [{"sku": "SKU-1", "quantity": 2}], "ship_to": {"lat": 39.95, "lon": -75.16}, "ttl_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{routed}");
    assert_eq!(routed["lines"], json!([{"node_id": "DC-EAST", "sku": "SKU-1", "quantity": 2}]));
    // Without an address: the largest holding (DC-EAST has 5 left, DC-WEST 4).
    let (_, anywhere) =
        s.post("/v1/reservations", json!({"lines": [{"sku": "SKU-1", "quantity": 1}], "ttl_s": 60})).await;
    assert_eq!(anywhere["lines"][0]["node_id"], "DC-EAST");
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (6, 0, 4));
    assert_eq!(reserved_matches(&s).await, 6);

    // All or nothing: one short line refuses the whole reservation and names it.
    let (status, problem) = s
        .post(
            "/v1/reservations",
            json!({"lines": [{"sku": "SKU-1", "quantity": 1, "node_id": "DC-WEST"},
                             {"sku": "SKU-2", "quantity": 1}], "ttl_s": 60}),
        )
        .await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::CONFLICT, json!("lines[1].quantity")));
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await, (0, 0, 4), "nothing reserved");
    // Bad input names every field.
    let (status, problem) = s
        .post("/v1/reservations", json!({"lines": [{"sku": "SKU-9", "quantity": 0, "node_id": "NOPE"}], "ttl_s": 7200}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["ttl_s", "lines[0].quantity"]);

    // Another channel cannot see or release it.
    let other = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    assert_eq!(s.get_as(&other, &format!("/v1/reservations/{id}")).await.0, StatusCode::NOT_FOUND);
    let (status, _) = s.send(s.client.delete(s.url(&format!("/v1/reservations/{id}"))).bearer_auth(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Converted by an order: the reserved units become the allocation; the rest of the
    // order is sourced as usual.
    let mut body = order(
        "W-R1",
        json!([{"line_id": "1", "sku": "SKU-1", "quantity": 4}, {"line_id": "2", "sku": "SKU-2", "quantity": 1, "allow_backorder": true}]),
    );
    body["reservation_id"] = json!(id);
    let (status, o) = s.post("/v1/orders", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(o["lines"][0]["allocated_quantity"], 4);
    assert_eq!(o["lines"][1]["backordered_quantity"], 1);
    // 3 reserved units converted, 1 more allocated from ATP; the other reservations stay.
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (3, 4, 3));
    let (_, converted) = s.get(&format!("/v1/reservations/{id}")).await;
    assert_eq!(
        (converted["status"].clone(), converted["order_id"].clone()),
        (json!("converted"), o["order_id"].clone())
    );
    // The same order again is the same order; another order cannot convert it again.
    assert_eq!(s.post("/v1/orders", body).await.0, StatusCode::OK);
    let mut again = order("W-R2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
    again["reservation_id"] = json!(id);
    let (status, problem) = s.post("/v1/orders", again).await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::CONFLICT, json!("reservation_id")));
    let (status, _) =
        s.send(s.client.delete(s.url(&format!("/v1/reservations/{id}"))).bearer_auth(crate::common::ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::CONFLICT, "a converted reservation cannot be released");

    // A reservation that covers the whole order: nothing left to source.
    let rid = routed["reservation_id"].as_str().unwrap();
    let mut whole = order("W-R3", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]));
    whole["reservation_id"] = json!(rid);
    let (status, o3) = s.post("/v1/orders", whole).await;
    assert_eq!((status, o3["status"].clone()), (StatusCode::CREATED, json!("allocated")), "{o3}");
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (1, 6, 3));

    // Released: back to ATP at once; releasing again answers it as it is.
    let aid = anywhere["reservation_id"].as_str().unwrap();
    let (status, released) =
        s.send(s.client.delete(s.url(&format!("/v1/reservations/{aid}"))).bearer_auth(crate::common::ADMIN_KEY)).await;
    assert_eq!((status, released["status"].clone()), (StatusCode::OK, json!("released")));
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (0, 6, 4));
    let (status, _) =
        s.send(s.client.delete(s.url(&format!("/v1/reservations/{aid}"))).bearer_auth(crate::common::ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);

    // Expired by the background sweep, with no request touching it.
    let (_, short) = s
        .post("/v1/reservations", json!({"lines": [{"sku": "SKU-1", "quantity": 2, "node_id": "DC-WEST"}], "ttl_s": 1}))
        .await;
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await, (2, 0, 2));
    let sid = short["reservation_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (reserved, _, _) = position(&s, "DC-WEST", "SKU-1").await;
        if reserved == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sweep expires reservations within seconds");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(s.get(&format!("/v1/reservations/{sid}")).await.1["status"], "expired");
    assert_eq!(reserved_matches(&s).await, 0);
    assert_eq!(s.store.allocation_totals().await.unwrap(), (6, 6));
}

async fn reservations_racing_orders_never_oversell(mut s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 500})).await;
    // 64 clients: 1,000 single-unit reservations and 1,000 single-unit orders, interleaved.
    let answers: Vec<(bool, StatusCode, Value)> = futures::stream::iter(0..2000)
        .map(|i| {
            let s = &s;
            async move {
                if i % 2 == 0 {
                    let body = json!({"lines": [{"sku": "SKU-1", "quantity": 1, "node_id": "DC-EAST"}], "ttl_s": 600});
                    let (status, v) = s.post("/v1/reservations", body).await;
                    (true, status, v)
                } else {
                    let body = order(&format!("HOT-{i}"), json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
                    let (status, v) = s.post("/v1/orders", body).await;
                    (false, status, v)
                }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let reserved = answers.iter().filter(|(r, status, _)| *r && *status == StatusCode::CREATED).count();
    let refused = answers.iter().filter(|(r, status, _)| *r && *status == StatusCode::CONFLICT).count();
    let allocated = answers.iter().filter(|(r, _, o)| !*r && o["status"] == "allocated").count();
    assert_eq!(reserved + refused, 1000, "every reservation is answered 201 or 409");
    assert_eq!(reserved + allocated, 500, "exactly the stock there is");

    // Counted in the database, after a restart.
    s.restart().await;
    assert_eq!(reserved_matches(&s).await, reserved as i64);
    assert_eq!(s.store.allocation_totals().await.unwrap(), (allocated as i64, allocated as i64));
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (reserved as i64, allocated as i64, 0));
}

async fn orders_are_listed_filtered_and_paged(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 100})).await;
    s.put("/v1/inventory/DC-WEST/SKU-2", json!({"on_hand": 100})).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let sku = if i % 2 == 0 { "SKU-1" } else { "SKU-2" };
        let mut body = order(&format!("L-{i}"), json!([{"line_id": "1", "sku": sku, "quantity": 1}]));
        if i == 6 {
            body["channel"] = json!("app");
            body["holds"] = json!(["fraud"]);
        }
        let (status, o) = s.post("/v1/orders", body).await;
        assert_eq!(status, StatusCode::CREATED, "{o}");
        ids.push(o["order_id"].as_str().unwrap().to_owned());
    }
    // Newest first, three per page, the cursor walks every order once.
    let seen = orders_page_by_page(&s, "limit=3").await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let (_, by_sku) = s.get("/v1/orders?sku=SKU-2").await;
    assert_eq!(listed(&by_sku), [ids[5].clone(), ids[3].clone(), ids[1].clone()]);
    let (_, by_node) = s.get("/v1/orders?node_id=DC-WEST&channel=web").await;
    assert_eq!(listed(&by_node), [ids[5].clone(), ids[3].clone(), ids[1].clone()]);
    let (_, held) = s.get("/v1/orders?status=on_hold").await;
    assert_eq!(listed(&held), [ids[6].clone()]);
    assert_eq!(held["orders"][0]["lines"][0]["allocations"][0]["node_id"], "DC-EAST");
    let (_, none) = s.get("/v1/orders?created_after=2999-01-01T00:00:00Z").await;
    assert_eq!(listed(&none), Vec::<String>::new());
    let (_, all) = s.get("/v1/orders?created_before=2999-01-01T00:00:00Z&limit=500").await;
    assert_eq!(listed(&all).len(), 7);
    // Every kind of filter at once, paged one by one: the cursor walks the same orders.
    let every = "channel=web&sku=SKU-2&node_id=DC-WEST&created_after=2000-01-01T00:00:00Z\
                 &created_before=2999-01-01T00:00:00Z&limit=1";
    let walked = orders_page_by_page(&s, every).await;
    assert_eq!(walked, [ids[5].clone(), ids[3].clone(), ids[1].clone()]);

    // A channel key lists only its own channel.
    let app_key = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    assert_eq!(listed(&s.get_as(&app_key, "/v1/orders").await.1), [ids[6].clone()]);
    assert_eq!(listed(&s.get_as(&app_key, "/v1/orders?channel=web").await.1), Vec::<String>::new());

    // Bad parameters are named.
    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("status=lost", "status"),
        ("created_after=yesterday", "created_after"),
        ("colour=red", "colour"),
    ] {
        let (status, problem) = s.get(&format!("/v1/orders?{query}")).await;
        assert!(status.is_client_error(), "{query}: {status}");
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
}

async fn idempotency_keys_replay_the_first_answer(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let body = json!({"lines": [{"sku": "SKU-1", "quantity": 2, "node_id": "DC-EAST"}], "ttl_s": 600});
    let send = |key: &str, auth: &str, body: &Value| {
        s.client.post(s.url("/v1/reservations")).bearer_auth(auth).header("Idempotency-Key", key).json(body)
    };
    let first = send("k-1", crate::common::ADMIN_KEY, &body).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", crate::common::ADMIN_KEY, &body).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["reservation_id"], first["reservation_id"]);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (2, 0, 8), "the retry reserved nothing more");

    // The same key with another body: 409 naming the header; nothing reserved.
    let other_body = json!({"lines": [{"sku": "SKU-1", "quantity": 3, "node_id": "DC-EAST"}], "ttl_s": 600});
    let (status, problem) = s.send(send("k-1", crate::common::ADMIN_KEY, &other_body)).await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::CONFLICT, json!("Idempotency-Key")));
    // Keys are per caller: another key's "k-1" is a new request.
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    assert_eq!(s.send(send("k-1", &web, &body)).await.0, StatusCode::CREATED);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (4, 0, 6));

    // Errors a client can fix are replayed too; a bad key is refused.
    let short = json!({"lines": [{"sku": "SKU-1", "quantity": 99, "node_id": "DC-EAST"}], "ttl_s": 600});
    assert_eq!(s.send(send("k-2", crate::common::ADMIN_KEY, &short)).await.0, StatusCode::CONFLICT);
    assert_eq!(s.send(send("k-2", crate::common::ADMIN_KEY, &short)).await.0, StatusCode::CONFLICT);
    let (status, problem) = s.send(send(&"x".repeat(300), crate::common::ADMIN_KEY, &body)).await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("Idempotency-Key")));

    // Orders too: a retried order with the same key answers the first answer (201).
    let o = order("W-I1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
    let req = || {
        s.client
            .post(s.url("/v1/orders"))
            .bearer_auth(crate::common::ADMIN_KEY)
            .header("Idempotency-Key", "o-1")
            .json(&o)
    };
    let (s1, o1) = s.send(req()).await;
    let (s2, o2) = s.send(req()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(o1["order_id"], o2["order_id"]);
    assert_eq!(s.store.allocation_totals().await.unwrap(), (1, 1));
}

/// Expiry does not depend on the sweep: with the clock past a reservation's expiry, the
/// next order takes its stock at once.
async fn an_expired_reservation_never_blocks_stock(backend: Backend) {
    let start: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let Some(s) = TestServer::start_with_clock(backend, clock.clone()).await else { return };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 2})).await;
    let (status, r) = s
        .post(
            "/v1/reservations",
            json!({"lines": [{"sku": "SKU-1", "quantity": 2, "node_id": "DC-EAST"}], "ttl_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let body = order("W-E1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]));
    let (_, blocked) = s.post("/v1/orders", body).await;
    assert_eq!(blocked["status"], "unfilled", "a live reservation holds its stock");

    clock.set(start + jiff::SignedDuration::from_secs(61));
    let (status, o) =
        s.post("/v1/orders", order("W-E2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]))).await;
    assert_eq!((status, o["status"].clone()), (StatusCode::CREATED, json!("allocated")), "{o}");
    let id = r["reservation_id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/v1/reservations/{id}")).await.1["status"], "expired");
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (0, 2, 0));
    // An expired reservation cannot be converted.
    let mut late = order("W-E3", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
    late["reservation_id"] = json!(id);
    let (status, problem) = s.post("/v1/orders", late).await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::CONFLICT, json!("reservation_id")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reservation_never_blocks_stock_sqlite() {
    an_expired_reservation_never_blocks_stock(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reservation_never_blocks_stock_postgres() {
    an_expired_reservation_never_blocks_stock(Backend::Postgres).await;
}

/// Sixteen copies of one request with one key at once: it runs once (counted in the
/// database); the others replay its answer or are told it is still in flight.
async fn concurrent_retries_with_one_key_run_the_request_once(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 100})).await;
    let body = json!({"lines": [{"sku": "SKU-1", "quantity": 2, "node_id": "DC-EAST"}], "ttl_s": 600});
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..16)
        .map(|_| {
            let req = s
                .client
                .post(s.url("/v1/reservations"))
                .bearer_auth(crate::common::ADMIN_KEY)
                .header("Idempotency-Key", "same")
                .json(&body);
            let s = &s;
            async move { s.send(req).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let created: Vec<&Value> = answers.iter().filter(|(st, _)| *st == StatusCode::CREATED).map(|(_, v)| v).collect();
    assert!(!created.is_empty());
    assert!(created.iter().all(|v| v["reservation_id"] == created[0]["reservation_id"]), "one reservation, replayed");
    assert!(
        answers.iter().all(|(st, v)| *st == StatusCode::CREATED
            || (*st == StatusCode::CONFLICT && v["errors"][0]["field"] == "Idempotency-Key")),
        "{answers:?}"
    );
    assert_eq!(reserved_matches(&s).await, 2, "the request ran once");
}
