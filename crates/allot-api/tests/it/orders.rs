//! Order capture: allocation in the same transaction, idempotency, holds, visibility by
//! key, and no overselling under concurrency — counted in the database, not from answers.

use crate::common::TestServer;
use allot_app::Role;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    orders_are_placed_allocated_idempotent_and_visible_only_to_their_channel,
    invalid_orders_are_refused_and_write_nothing,
    a_hot_sku_is_never_oversold_by_concurrent_orders,
    cancellations_release_stock_at_once_and_holds_gate_release,
    a_node_at_its_daily_capacity_is_passed_over_and_pressure_is_charged,
    an_order_shows_its_customer_addresses_and_money,
    customer_service_finds_orders_by_what_the_caller_knows,
    orders_are_costed_in_one_currency_never_two,
);

fn order(ext: &str, lines: Value) -> Value {
    json!({"channel": "web", "external_id": ext, "customer": {"id": "C-1", "tier": "standard"},
           "ship_to": {"city": "Philadelphia", "country": "US", "lat": 39.95, "lon": -75.16},
           "currency": "USD", "lines": lines})
}

async fn orders_are_placed_allocated_idempotent_and_visible_only_to_their_channel(mut s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let body = order(
        "W-1",
        json!([
        {"line_id": "1", "sku": "SKU-1", "quantity": 3, "unit_price_minor": 1999},
        {"line_id": "2", "sku": "SKU-2", "quantity": 1, "unit_price_minor": 999, "allow_backorder": true}]),
    );
    // A quote of the order just before it is placed: the order keeps that decision (stored
    // in a compact form, allot_app::decision_doc) and shows it exactly as the quote did.
    let (_, quote) = s.post("/v1/sourcing/quote", body.clone()).await;
    let (status, o) = s.post("/v1/orders", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(o["sourcing"], quote);
    assert!(!quote["explanation"]["candidates"].as_array().unwrap().is_empty(), "{quote}");
    assert_eq!(s.get(&format!("/v1/orders/{}", o["order_id"].as_str().unwrap())).await.1["sourcing"], quote);
    assert_eq!(o["status"], "partially_allocated");
    assert_eq!(o["lines"][0]["status"], "allocated");
    assert_eq!(o["lines"][0]["allocations"][0]["node_id"], "DC-EAST");
    assert_eq!(o["lines"][0]["allocations"][0]["quantity"], 3);
    assert_eq!(
        (o["lines"][1]["status"].clone(), o["lines"][1]["backordered_quantity"].clone()),
        (json!("backordered"), json!(1))
    );
    let fo = &o["fulfillment_orders"][0];
    assert_eq!((fo["node_id"].clone(), fo["status"].clone()), (json!("DC-EAST"), json!("released")));
    assert_eq!(
        fo["lines"],
        json!([{"line_id": "1", "sku": "SKU-1", "quantity": 3, "short_quantity": 0, "shipped_quantity": 0}])
    );
    assert_eq!(o["lines"][0]["allocations"][0]["fulfillment_order_id"], fo["id"]);
    assert_eq!(o["policy"]["name"], "builtin");
    assert_eq!(o["sourcing"]["plan"]["packages"][0]["node_id"], "DC-EAST");
    let p = s.get("/v1/inventory/DC-EAST/SKU-1").await.1;
    assert_eq!((p["allocated"].clone(), p["atp"].clone()), (json!(3), json!(7)));

    // The same order again (keys in another order): 200, same order, no more stock taken.
    let mut reordered = serde_json::Map::new();
    for (k, v) in body.as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), v.clone());
    }
    let (status, again) = s.post("/v1/orders", Value::Object(reordered)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["order_id"], o["order_id"]);
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 3);

    // The same order spelled differently is the same order: explicit nulls, defaults
    // written out, and the channel a channel key implies left out (before: 409s).
    let mut spelled_out = body.clone();
    spelled_out["policy"] = Value::Null;
    spelled_out["reservation_id"] = Value::Null;
    spelled_out["holds"] = json!([]);
    for line in spelled_out["lines"].as_array_mut().unwrap() {
        let line = line.as_object_mut().unwrap();
        for (key, default) in [
            ("method", json!("ship")),
            ("allow_backorder", json!(false)),
            ("allow_substitution", json!(false)),
            ("pickup_node_id", Value::Null),
        ] {
            line.entry(key).or_insert(default);
        }
    }
    let (status, again) = s.post("/v1/orders", spelled_out).await;
    assert_eq!((status, again["order_id"].clone()), (StatusCode::OK, o["order_id"].clone()), "{again}");
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let mut implied = body.clone();
    implied.as_object_mut().unwrap().remove("channel");
    let (status, again) = s.post_as(&web, "/v1/orders", implied).await;
    assert_eq!((status, again["order_id"].clone()), (StatusCode::OK, o["order_id"].clone()), "{again}");
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 3);

    // Same external id, different body: 409 naming it, nothing changes.
    let (status, problem) =
        s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]))).await;
    assert_eq!((status, problem["type"].clone()), (StatusCode::CONFLICT, json!("urn:allot:problem:conflict")));
    assert_eq!(problem["errors"][0]["field"], "external_id");
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 3);

    // Holds: allocated, but fulfillment orders wait.
    let mut held = order("W-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
    held["holds"] = json!(["fraud"]);
    let (status, h) = s.post("/v1/orders", held).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert_eq!((h["status"].clone(), h["holds"].clone()), (json!("on_hold"), json!(["fraud"])));
    assert_eq!(h["fulfillment_orders"][0]["status"], "created");
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 4);

    // Visibility: the order's channel sees it, another channel and nodes get 404.
    let id = o["order_id"].as_str().unwrap().to_owned();
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let other = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    let node = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;
    assert_eq!(s.get_as(&web, &format!("/v1/orders/{id}")).await.0, StatusCode::OK);
    assert_eq!(s.get_as(&other, &format!("/v1/orders/{id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get_as(&node, &format!("/v1/orders/{id}")).await.0, StatusCode::NOT_FOUND);
    // A channel key's orders are its own channel's; naming another is refused.
    let mine = json!({"external_id": "A-1", "ship_to": {"lat": 39.95, "lon": -75.16},
                      "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    let (status, a) = s.send(s.client.post(s.url("/v1/orders")).bearer_auth(&other).json(&mine)).await;
    assert_eq!((status, a["channel"].clone()), (StatusCode::CREATED, json!("app")));

    // Everything answered 201 is there after a restart, with its stock.
    let (_, before) = s.get(&format!("/v1/orders/{id}")).await;
    s.restart().await;
    assert_eq!(s.get(&format!("/v1/orders/{id}")).await.1, before);
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 5);
    assert_eq!(s.store.allocation_totals().await.unwrap(), (5, 5));
}

async fn invalid_orders_are_refused_and_write_nothing(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let fields = |p: &Value| {
        p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let mut no_channel = order("X-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
    no_channel.as_object_mut().unwrap().remove("channel");
    no_channel.as_object_mut().unwrap().remove("external_id");
    let (status, problem) = s.post("/v1/orders", no_channel).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), vec!["external_id", "channel"]);
    let (status, problem) =
        s.post("/v1/orders", order("X-2", json!([{"line_id": "1", "sku": "SKU-NOPE", "quantity": 1}]))).await;
    assert_eq!((status, fields(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["lines[0].sku".to_owned()]));
    let too_many: Vec<Value> =
        (0..501).map(|i| json!({"line_id": i.to_string(), "sku": "SKU-1", "quantity": 1})).collect();
    let (status, problem) = s.post("/v1/orders", order("X-3", json!(too_many))).await;
    assert_eq!((status, fields(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["lines".to_owned()]));
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"], 0);
    assert_eq!(s.store.allocation_totals().await.unwrap(), (0, 0));
}

async fn a_hot_sku_is_never_oversold_by_concurrent_orders(mut s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 500})).await;
    // 64 concurrent clients place 2,000 single-unit orders that may not be backordered.
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..2000)
        .map(|i| {
            let body = order(&format!("HOT-{i}"), json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
            let s = &s;
            async move { s.post("/v1/orders", body).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::CREATED), "every order is captured");
    let allocated = answers.iter().filter(|(_, o)| o["status"] == "allocated").count();
    let unfilled = answers.iter().filter(|(_, o)| o["status"] == "unfilled").count();
    assert_eq!((allocated, unfilled), (500, 1500));

    // Count in the database: allocations, the position, and no allocation without an order.
    assert_eq!(s.store.allocation_totals().await.unwrap(), (500, 500));
    s.restart().await;
    let p = s.get("/v1/inventory/DC-EAST/SKU-1").await.1;
    assert_eq!((p["on_hand"].clone(), p["allocated"].clone(), p["atp"].clone()), (json!(500), json!(500), json!(0)));
    for (_, o) in answers.iter().step_by(97) {
        let id = o["order_id"].as_str().unwrap();
        assert_eq!(s.get(&format!("/v1/orders/{id}")).await.1["status"], o["status"], "answered orders survive");
    }
}

async fn cancellations_release_stock_at_once_and_holds_gate_release(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let (_, o) = s
        .post(
            "/v1/orders",
            order(
                "W-1",
                json!([
            {"line_id": "1", "sku": "SKU-1", "quantity": 4},
            {"line_id": "2", "sku": "SKU-2", "quantity": 2, "allow_backorder": true}]),
            ),
        )
        .await;
    let id = o["order_id"].as_str().unwrap().to_owned();
    assert_eq!(allocated(&s).await, 4);

    let (status, after) =
        s.post(&format!("/v1/orders/{id}/lines/1/cancel"), json!({"quantity": 1, "reason": "customer_request"})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(
        (after["lines"][0]["allocated_quantity"].clone(), after["lines"][0]["status"].clone()),
        (json!(3), json!("allocated"))
    );
    assert_eq!(allocated(&s).await, 3, "released to ATP at once");
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["atp"], 7);

    let (_, after) = s.post(&format!("/v1/orders/{id}/lines/2/cancel"), json!({})).await;
    assert_eq!(
        (after["lines"][1]["status"].clone(), after["lines"][1]["backordered_quantity"].clone()),
        (json!("cancelled"), json!(0))
    );
    assert_eq!(after["status"], "allocated", "what is left is fully allocated");

    let (status, problem) = s.post(&format!("/v1/orders/{id}/lines/1/cancel"), json!({"quantity": 5})).await;
    assert_eq!((status, problem["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("quantity")));
    assert_eq!(s.post(&format!("/v1/orders/{id}/lines/9/cancel"), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(allocated(&s).await, 3, "refused cancellations change nothing");

    let other = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    let foreign = s.send(s.client.post(s.url(&format!("/v1/orders/{id}/cancel"))).bearer_auth(&other)).await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND);

    let (status, cancelled) =
        s.send(s.client.post(s.url(&format!("/v1/orders/{id}/cancel"))).bearer_auth(crate::common::ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["fulfillment_orders"][0]["status"], "cancelled");
    assert_eq!(allocated(&s).await, 0);
    let (status, again) = s.post(&format!("/v1/orders/{id}/cancel"), json!({"reason": "customer_request"})).await;
    assert_eq!(
        (status, again["status"].clone()),
        (StatusCode::OK, json!("cancelled")),
        "retrying a cancel is harmless"
    );
    assert_eq!(s.store.allocation_totals().await.unwrap(), (0, 0));

    // Holds gate the release of fulfillment orders.
    let (_, o2) = s.post("/v1/orders", order("W-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]))).await;
    let id2 = o2["order_id"].as_str().unwrap().to_owned();
    assert_eq!(o2["fulfillment_orders"][0]["status"], "released");
    let (_, h) = s.post(&format!("/v1/orders/{id2}/holds"), json!({"hold": "payment"})).await;
    assert_eq!(
        (h["status"].clone(), h["fulfillment_orders"][0]["status"].clone()),
        (json!("on_hold"), json!("created"))
    );
    let (_, h) = s.post(&format!("/v1/orders/{id2}/holds"), json!({"hold": "fraud"})).await;
    assert_eq!(h["holds"], json!(["payment", "fraud"]));
    let (_, h) = s.post(&format!("/v1/orders/{id2}/holds/payment/release"), json!(null)).await;
    assert_eq!(
        (h["status"].clone(), h["fulfillment_orders"][0]["status"].clone()),
        (json!("on_hold"), json!("created"))
    );
    let (_, h) = s.post(&format!("/v1/orders/{id2}/holds/fraud/release"), json!(null)).await;
    assert_eq!(
        (h["status"].clone(), h["fulfillment_orders"][0]["status"].clone()),
        (json!("allocated"), json!("released"))
    );
    assert_eq!(s.post(&format!("/v1/orders/{id2}/holds/fraud/release"), json!(null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.post(&format!("/v1/orders/{id2}/holds"), json!({"hold": "vibes"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// Daily capacity in sourcing (`node_load`): the orders a node was assigned today count
/// against its `orders_per_day` — full, it is dropped (`capacity_full`); filling, a policy's
/// capacity penalty charges it.
async fn a_node_at_its_daily_capacity_is_passed_over_and_pressure_is_charged(s: TestServer) {
    s.seed().await;
    let mut east = crate::common::node_json("dc", 40.6084, -75.4902, "America/New_York", &["ship", "returns"]);
    east["capacity"]["orders_per_day"] = json!(2);
    assert_eq!(s.put("/v1/nodes/DC-EAST", east).await.0, StatusCode::OK);
    let mut west = crate::common::node_json("dc", 34.0633, -117.6509, "America/Los_Angeles", &["ship"]);
    west["capacity"]["orders_per_day"] = json!(4);
    assert_eq!(s.put("/v1/nodes/DC-WEST", west).await.0, StatusCode::OK);
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 10})).await;
    let line = json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1, "unit_price_minor": 1999}]);
    let node_of = |o: &Value| o["fulfillment_orders"][0]["node_id"].clone();
    for ext in ["CAP-1", "CAP-2"] {
        let (status, o) = s.post("/v1/orders", order(ext, line.clone())).await;
        assert_eq!((status, node_of(&o)), (StatusCode::CREATED, json!("DC-EAST")), "{o}");
    }
    s.app.refresh_node_load().await.unwrap();
    let (_, q) = s.post("/v1/sourcing/quote", order("Q", line.clone())).await;
    let candidate = |q: &Value, id: &str| {
        q["explanation"]["candidates"].as_array().unwrap().iter().find(|c| c["node_id"] == id).unwrap().clone()
    };
    assert_eq!(candidate(&q, "DC-EAST")["reason"], "capacity_full", "{q}");
    let (status, third) = s.post("/v1/orders", order("CAP-3", line.clone())).await;
    assert_eq!((status, node_of(&third)), (StatusCode::CREATED, json!("DC-WEST")), "{third}");
    // A refresh reads the new work once (re-read ids are not counted again).
    s.app.refresh_node_load().await.unwrap();
    s.app.refresh_node_load().await.unwrap();

    // Capacity pressure: 4000 × (1 of 4 today)² = 250 on DC-WEST's package.
    let policy = json!({"fallback": {"filters": {"exclude_nodes": ["DC-EAST"]},
                                     "cost": {"capacity_penalty_minor": 4000}}});
    assert_eq!(s.put("/v1/policies/pressure", policy).await.0, StatusCode::CREATED);
    let mut body = order("Q2", line.clone());
    body["policy"] = json!("pressure");
    let (_, q) = s.post("/v1/sourcing/quote", body).await;
    assert_eq!(q["plan"]["packages"][0]["node_id"], "DC-WEST", "{q}");
    assert_eq!(q["plan"]["packages"][0]["cost_minor"]["capacity"], 250, "{q}");
    // Without orders today a node costs no pressure (the other DC, never used).
    assert_eq!(candidate(&q, "DC-EAST")["reason"], "excluded");
}

/// The counts survive a pause between refreshes longer than their 3 s re-read window (a
/// slow query, a busy server): each refresh reads from where the previous one started.
/// No background refresher here, so the test decides when refreshes happen.
async fn work_made_before_a_long_pause_is_still_counted(backend: crate::common::Backend) {
    let start: jiff::Timestamp = "2026-12-03T15:00:00Z".parse().unwrap();
    let fixed = std::sync::Arc::new(allot_app::FixedClock::new(start));
    let clock: std::sync::Arc<dyn allot_app::Clock> = fixed.clone();
    let Some(s) = TestServer::start_with(backend, clock, false).await else {
        return;
    };
    s.seed().await;
    let mut east = crate::common::node_json("dc", 40.6084, -75.4902, "America/New_York", &["ship", "returns"]);
    east["capacity"]["orders_per_day"] = json!(1);
    assert_eq!(s.put("/v1/nodes/DC-EAST", east).await.0, StatusCode::OK);
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 10})).await;
    s.app.refresh_node_load().await.unwrap();
    let line = json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1, "unit_price_minor": 1999}]);
    let (status, o) = s.post("/v1/orders", order("PAUSE-1", line.clone())).await;
    assert_eq!((status, o["fulfillment_orders"][0]["node_id"].clone()), (StatusCode::CREATED, json!("DC-EAST")));
    // A pause longer than the re-read window, on the app's clock (ids carry its time).
    fixed.set(start + jiff::SignedDuration::from_secs(4));
    s.app.refresh_node_load().await.unwrap();
    let (_, q) = s.post("/v1/sourcing/quote", order("Q", line)).await;
    let east = q["explanation"]["candidates"].as_array().unwrap().iter().find(|c| c["node_id"] == "DC-EAST").cloned();
    assert_eq!(east.unwrap()["reason"], "capacity_full", "{q}");
}

mod pause {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::work_made_before_a_long_pause_is_still_counted(crate::common::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::work_made_before_a_long_pause_is_still_counted(crate::common::Backend::Postgres).await;
    }
}

async fn allocated(s: &TestServer) -> Value {
    s.get("/v1/inventory/DC-EAST/SKU-1").await.1["allocated"].clone()
}

/// What people downstream need (issue 18): the order shows its customer, ship-to and
/// bill-to, currency, unit prices, line totals of the units not cancelled and the service
/// level each line travels by (none for a line collected at a store).
async fn an_order_shows_its_customer_addresses_and_money(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/ST-CHI/SKU-2", json!({"on_hand": 5})).await;
    let body = json!({"channel": "web", "external_id": "T-1",
        "customer": {"id": "C-7", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1 215 555 0100", "tier": "gold"},
        "ship_to": {"name": "Ada Lovelace", "address1": "1 Main St", "city": "Philadelphia", "region": "PA",
                    "postal_code": "19104", "country": "US", "lat": 39.95, "lon": -75.16},
        "bill_to": {"name": "A. Lovelace", "country": "GB", "postal_code": "W1"},
        "currency": "USD",
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 3, "unit_price_minor": 1999},
                  {"line_id": "2", "sku": "SKU-2", "quantity": 1, "unit_price_minor": 999, "method": "pickup", "pickup_node_id": "ST-CHI"}]});
    let (status, o) = s.post("/v1/orders", body).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    s.post(&format!("/v1/orders/{id}/lines/1/cancel"), json!({"quantity": 1})).await;
    let (_, o) = s.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(
        o["customer"],
        json!({"id": "C-7", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1 215 555 0100", "tier": "gold"})
    );
    assert_eq!(
        (o["ship_to"]["address1"].clone(), o["ship_to"]["postal_code"].clone()),
        (json!("1 Main St"), json!("19104"))
    );
    assert_eq!(o["bill_to"]["country"], "GB");
    assert_eq!((o["currency"].clone(), o["total_minor"].clone()), (json!("USD"), json!(2 * 1999 + 999)));
    let terms = |l: &Value| {
        (l["method"].clone(), l["unit_price_minor"].clone(), l["line_total_minor"].clone(), l["service_level"].clone())
    };
    assert_eq!(terms(&o["lines"][0]), (json!("ship"), json!(1999), json!(3998), json!("standard")));
    assert_eq!(terms(&o["lines"][1]), (json!("pickup"), json!(999), json!(999), Value::Null));
}

/// The customer-service search (issue 18): by the channel's order number, the customer's
/// e-mail (any case) or phone, a tracking number; filters combine with the others.
async fn customer_service_finds_orders_by_what_the_caller_knows(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let place = |ext: &'static str, channel: &'static str, email: &'static str, phone: &'static str| {
        let s = &s;
        async move {
            let mut o = order(ext, json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]));
            o["channel"] = json!(channel);
            o["customer"] = json!({"id": ext, "email": email, "phone": phone});
            let (status, o) = s.post("/v1/orders", o).await;
            assert_eq!(status, StatusCode::CREATED, "{o}");
            o["order_id"].as_str().unwrap().to_owned()
        }
    };
    let a = place("CS-1", "web", "Ada@Example.com", "+1 215 555 0100").await;
    let b = place("CS-2", "web", "bob@example.com", "+1 215 555 0199").await;
    let c = place("CS-1", "app", "ada@example.com", "+44 20 7946 0000").await;
    let ids = |page: &Value| -> Vec<String> {
        page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
    };
    for (query, want) in [
        ("external_id=CS-1", vec![c.clone(), a.clone()]),
        ("external_id=CS-1&channel=web", vec![a.clone()]),
        ("email=ada@example.com", vec![c.clone(), a.clone()]),
        ("email=ADA@EXAMPLE.COM&channel=app", vec![c.clone()]),
        ("phone=%2B1%20215%20555%200199", vec![b.clone()]),
        ("email=nobody@example.com", vec![]),
    ] {
        let (status, page) = s.get(&format!("/v1/orders?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(ids(&page), want, "{query}");
    }
    // A channel key searches its own channel only.
    let app = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    assert_eq!(ids(&s.get_as(&app, "/v1/orders?email=ada@example.com").await.1), vec![c.clone()]);

    // By tracking number, once shipped.
    let fo = s.get(&format!("/v1/orders/{b}")).await.1["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    for (action, body) in [
        ("accept", None),
        ("pick", None),
        ("pack", None),
        ("ship", Some(json!({"packages": [{"carrier": "ups", "tracking_number": "1Z-CS-2"}]}))),
    ] {
        let path = format!("/v1/fulfillment-orders/{fo}/{action}");
        let status = match body {
            Some(b) => s.post(&path, b).await.0,
            None => s.post_empty(crate::common::ADMIN_KEY, &path).await.0,
        };
        assert_eq!(status, StatusCode::OK, "{action}");
    }
    assert_eq!(ids(&s.get("/v1/orders?tracking_number=1Z-CS-2").await.1), vec![b.clone()]);
    assert_eq!(ids(&s.get("/v1/orders?tracking_number=1Z-NONE").await.1), Vec::<String>::new());
    let (status, p) = s.get("/v1/orders?jeopardy=on_track").await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("jeopardy")));
}

/// Costs in two currencies are never added (issue 18, defect 10: an order in EUR was costed
/// with USD node rates): only nodes costing in the order's currency are compared, the
/// others shown as `other_currency`; an order in a currency no node costs in is refused.
async fn orders_are_costed_in_one_currency_never_two(s: TestServer) {
    s.seed().await;
    // A euro-costed node right next to the customer, and the US one further away.
    let mut eu = crate::common::node_json("dc", 39.96, -75.17, "America/New_York", &["ship"]);
    eu["currency"] = json!("EUR");
    assert_eq!(s.put("/v1/nodes/DC-EU", eu).await.0, StatusCode::CREATED);
    for node in ["DC-EU", "DC-EAST"] {
        s.put(&format!("/v1/inventory/{node}/SKU-1"), json!({"on_hand": 5})).await;
    }
    let in_currency = |ext: &str, currency: &str| {
        let mut o = order(ext, json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1, "unit_price_minor": 1000}]));
        o["currency"] = json!(currency);
        o
    };
    let reason = |o: &Value, node: &str| {
        o["sourcing"]["explanation"]["candidates"].as_array().unwrap().iter().find(|c| c["node_id"] == node).unwrap()
            ["reason"]
            .clone()
    };
    let (status, usd) = s.post("/v1/orders", in_currency("C-1", "USD")).await;
    assert_eq!(status, StatusCode::CREATED, "{usd}");
    assert_eq!(usd["lines"][0]["allocations"][0]["node_id"], "DC-EAST");
    assert_eq!(reason(&usd, "DC-EU"), "other_currency");
    let (_, eur) = s.post("/v1/orders", in_currency("C-2", "EUR")).await;
    assert_eq!(eur["lines"][0]["allocations"][0]["node_id"], "DC-EU");
    assert_eq!(reason(&eur, "DC-EAST"), "other_currency");

    let (status, p) = s.post("/v1/orders", in_currency("C-3", "GBP")).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("currency")), "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("no node costs in GBP"), "{p}");
    assert_eq!(s.get("/v1/orders").await.1["orders"].as_array().unwrap().len(), 2, "nothing written");
    assert_eq!(s.store.allocation_totals().await.unwrap(), (2, 2), "one unit at each node");
}
