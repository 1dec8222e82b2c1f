//! Holds that hold (issue 18): a hold placed after a node accepted stops packing and
//! shipping, a hold after shipment is refused, every hold says who placed it and why,
//! every release is an event, policies place holds at capture, and a channel cannot lift
//! a fraud hold an operator or a policy placed. Order limits (defect 7) live here too:
//! both are rules applied to an order at capture. State is read back from the database.

use crate::common::{ADMIN_KEY, TestServer};
use allot_app::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    a_hold_after_acceptance_stops_pack_and_ship_until_released,
    every_release_is_an_event_and_fraud_is_lifted_by_whoever_may_judge_it,
    policy_rules_hold_risky_orders_at_capture,
    orders_beyond_the_policy_limits_are_refused_and_write_nothing,
    a_first_order_over_a_value_is_held_for_review,
);

fn order(ext: &str, quantity: u64, extra: Value) -> Value {
    let mut o = json!({"channel": "web", "external_id": ext, "customer": {"id": "C-1", "tier": "standard"},
           "ship_to": {"city": "Philadelphia", "country": "US", "lat": 39.95, "lon": -75.16},
           "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": quantity, "unit_price_minor": 30000}]});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

/// The types of the order's events, oldest first, as stored.
async fn event_types(s: &TestServer, order_id: &str) -> Vec<String> {
    s.store.order_events(order_id).await.unwrap().into_iter().map(|e| e.event_type).collect()
}

async fn a_hold_after_acceptance_stops_pack_and_ship_until_released(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let (status, o) = s.post("/v1/orders", order("H-1", 2, json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    let act = |action: &'static str, body: Option<Value>| {
        let (s, fo) = (&s, fo.clone());
        async move {
            let path = format!("/v1/fulfillment-orders/{fo}/{action}");
            match body {
                Some(b) => s.post(&path, b).await,
                None => s.post_empty(ADMIN_KEY, &path).await,
            }
        }
    };
    assert_eq!(act("accept", None).await.0, StatusCode::OK);

    let (status, held) =
        s.post(&format!("/v1/orders/{id}/holds"), json!({"hold": "payment", "reason": "card declined"})).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["status"], "on_hold");
    assert_eq!(held["fulfillment_orders"][0]["status"], "accepted", "accepted work stays with its node");
    assert_eq!(held["hold_details"][0]["reason"], "card declined");
    assert_eq!(held["hold_details"][0]["placed_by"], "operator");

    // Picking goes on; packing and shipping wait, naming the hold, and change nothing.
    assert_eq!(act("pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 2}]}))).await.0, StatusCode::OK);
    let (status, p) = act("pack", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["errors"][0]["field"], "hold");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("payment"), "{p}");
    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "1Z-H1"}]});
    assert_eq!(act("ship", Some(ship.clone())).await.0, StatusCode::CONFLICT);
    let stored = s.store.order(&id).await.unwrap().unwrap();
    assert_eq!(stored.fulfillment_orders[0].status, "picking", "picked, and the refused actions wrote nothing");
    assert_eq!(stored.lines[0].shipped, 0);

    let (status, released) = s.post(&format!("/v1/orders/{id}/holds/payment/release"), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(act("pack", None).await.0, StatusCode::OK);
    assert_eq!(act("ship", Some(ship)).await.0, StatusCode::OK);

    // Once every unit has left, a hold would stop nothing: refused, and nothing written.
    let before = event_types(&s, &id).await.len();
    let (status, p) = s.post(&format!("/v1/orders/{id}/holds"), json!({"hold": "fraud"})).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::CONFLICT, json!("hold")), "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("left its node"), "{p}");
    let stored = s.store.order(&id).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.holds.len()), ("shipped", 0));
    assert_eq!(event_types(&s, &id).await.len(), before);
}

async fn every_release_is_an_event_and_fraud_is_lifted_by_whoever_may_judge_it(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let (status, o) = s.post_as(&web, "/v1/orders", order("H-2", 1, json!({"holds": ["payment", "address"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    assert_eq!(o["fulfillment_orders"][0]["status"], "created", "held back from the node");

    // Releasing one of two holds is an event too; the order stays held.
    let (_, h) = s.post_as(&web, &format!("/v1/orders/{id}/holds/address/release"), json!(null)).await;
    assert_eq!((h["status"].clone(), h["holds"].clone()), (json!("on_hold"), json!(["payment"])));
    assert_eq!(h["hold_details"][0]["placed_by"], "channel:web", "placed with the order by its channel");
    let events = s.store.order_events(&id).await.unwrap();
    let released: Vec<_> = events.iter().filter(|e| e.event_type == "order.hold_released").collect();
    assert_eq!(released.len(), 1);
    let data: Value = serde_json::from_str(&released[0].data).unwrap();
    assert_eq!(
        (data["hold"].clone(), data["remaining"].clone(), data["released_by"].clone()),
        (json!("address"), json!(["payment"]), json!("channel:web"))
    );
    assert!(!events.iter().any(|e| e.event_type == "order.released"), "one hold remains");

    // An operator's fraud hold: the channel may not lift it, an admin may.
    let (status, _) = s.post(&format!("/v1/orders/{id}/holds"), json!({"hold": "fraud", "reason": "velocity"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = s.post_as(&web, &format!("/v1/orders/{id}/holds/fraud/release"), json!(null)).await;
    assert_eq!((status, p["type"].clone()), (StatusCode::FORBIDDEN, json!("urn:allot:problem:forbidden")), "{p}");
    assert!(s.store.order(&id).await.unwrap().unwrap().holds.contains(&"fraud".to_owned()), "still held");
    let (_, o) = s.get(&format!("/v1/orders/{id}")).await;
    let fraud = o["hold_details"].as_array().unwrap().iter().find(|h| h["hold"] == "fraud").unwrap().clone();
    assert_eq!((fraud["placed_by"].clone(), fraud["reason"].clone()), (json!("operator"), json!("velocity")));
    assert!(fraud["placed_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{fraud}");
    assert_eq!(s.post(&format!("/v1/orders/{id}/holds/fraud/release"), json!(null)).await.0, StatusCode::OK);

    // A fraud hold the channel placed itself, it may lift; the last release frees the work.
    assert_eq!(s.post_as(&web, &format!("/v1/orders/{id}/holds"), json!({"hold": "fraud"})).await.0, StatusCode::OK);
    assert_eq!(s.post_as(&web, &format!("/v1/orders/{id}/holds/fraud/release"), json!(null)).await.0, StatusCode::OK);
    let (_, o) = s.post_as(&web, &format!("/v1/orders/{id}/holds/payment/release"), json!(null)).await;
    assert_eq!(
        (o["status"].clone(), o["fulfillment_orders"][0]["status"].clone()),
        (json!("allocated"), json!("released"))
    );
    let types = event_types(&s, &id).await;
    assert_eq!(types.iter().filter(|t| *t == "order.hold_released").count(), 4, "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "order.on_hold").count(), 4, "two at capture, two later: {types:?}");
    assert_eq!(types.iter().filter(|t| *t == "order.released").count(), 1, "{types:?}");
}

async fn policy_rules_hold_risky_orders_at_capture(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 20})).await;
    let policy = json!({"holds": [
        {"name": "big-abroad", "hold": "fraud_review", "reason": "high value billed abroad",
         "when": {"order_value_min_minor": 50000, "ship_to_not_billing": true}},
        {"name": "new-customers", "hold": "manual", "reason": "first orders are checked", "when": {"customer_tier": ["new"]}},
        {"name": "marketplace", "hold": "payment", "reason": "marketplace settles later", "when": {"channel": ["market"]}}]});
    let (status, p) = s.put("/v1/policies/risk", policy).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(s.post("/v1/policies/risk/activate", json!(null)).await.0, StatusCode::OK);
    let bad = json!({"holds": [{"name": "x", "hold": "vibes", "reason": ""}]});
    let (status, p) = s.put("/v1/policies/bad", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["holds[0].hold", "holds[0].reason"], "{p}");

    // 2 × 300.00 billed in Canada, shipped to the US: held for review, work kept back.
    let abroad = json!({"bill_to": {"country": "CA", "postal_code": "M5V 2T6"}});
    let (status, o) = s.post("/v1/orders", order("R-1", 2, abroad)).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    let stored = s.store.order(&id).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.holds.clone()), ("on_hold", vec!["fraud_review".to_owned()]));
    assert_eq!(stored.fulfillment_orders[0].status, "created", "not released to the node");
    let (_, o) = s.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(
        o["hold_details"][0],
        json!({"hold": "fraud_review", "reason": "high value billed abroad", "placed_by": "policy:risk/big-abroad",
               "placed_at": o["hold_details"][0]["placed_at"].clone()})
    );
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    assert_eq!(
        s.post_as(&web, &format!("/v1/orders/{id}/holds/fraud_review/release"), json!(null)).await.0,
        StatusCode::FORBIDDEN
    );

    // The same value billed at home, or a small order abroad: no hold.
    for (ext, q, extra) in
        [("R-2", 2, json!({"bill_to": {"country": "us"}})), ("R-3", 1, json!({"bill_to": {"country": "CA"}}))]
    {
        let (status, o) = s.post("/v1/orders", order(ext, q, extra)).await;
        assert_eq!(
            (status, o["status"].clone(), o["holds"].clone()),
            (StatusCode::CREATED, json!("allocated"), json!([])),
            "{ext}: {o}"
        );
    }
    // A new customer, and the marketplace channel: each rule places its own hold, with the
    // channel's own hold kept as the channel placed it.
    let mut new = order("R-4", 1, json!({"customer": {"id": "C-9", "tier": "new"}, "holds": ["address"]}));
    new["channel"] = json!("market");
    let (_, o) = s.post("/v1/orders", new).await;
    assert_eq!(o["holds"], json!(["address", "manual", "payment"]), "{o}");
    let (_, o) = s.get(&format!("/v1/orders/{}", o["order_id"].as_str().unwrap())).await;
    let by: Vec<(String, String)> = o["hold_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hold"].as_str().unwrap().to_owned(), h["placed_by"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        by,
        [
            ("address".to_owned(), "operator".to_owned()),
            ("manual".to_owned(), "policy:risk/new-customers".to_owned()),
            ("payment".to_owned(), "policy:risk/marketplace".to_owned())
        ]
    );
}

async fn orders_beyond_the_policy_limits_are_refused_and_write_nothing(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 20})).await;
    // The built-in limit: 10,000 units per line.
    let (status, p) = s
        .post(
            "/v1/orders",
            order(
                "L-1",
                1_000_000_000,
                json!({"lines": [
        {"line_id": "1", "sku": "SKU-1", "quantity": 1_000_000_000u64, "allow_backorder": true}]}),
            ),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("lines[0].quantity")),
        "{p}"
    );
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("10000"), "{p}");
    let (status, _) = s.post("/v1/sourcing/quote", order("L-1", 10_001, json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a quote follows the same limit");
    assert_eq!(
        s.post(
            "/v1/orders",
            order(
                "L-2",
                10_000,
                json!({"lines": [
        {"line_id": "1", "sku": "SKU-1", "quantity": 10_000, "allow_backorder": true}]})
            )
        )
        .await
        .0,
        StatusCode::CREATED
    );

    let limits = json!({"limits": {"max_units_per_line": 5, "max_units_per_order": 8}});
    assert_eq!(s.put("/v1/policies/small", limits).await.0, StatusCode::CREATED);
    assert_eq!(s.post("/v1/policies/small/activate", json!(null)).await.0, StatusCode::OK);
    let two = |ext: &str, a: u64, b: u64| {
        order(
            ext,
            1,
            json!({"lines": [{"line_id": "1", "sku": "SKU-1", "quantity": a}, {"line_id": "2", "sku": "SKU-1", "quantity": b}]}),
        )
    };
    let (status, p) = s.post("/v1/orders", two("L-3", 6, 1)).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("lines[0].quantity"))
    );
    let (status, p) = s.post("/v1/orders", two("L-4", 5, 4)).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("lines")), "{p}");
    assert_eq!(s.post("/v1/orders", two("L-5", 5, 3)).await.0, StatusCode::CREATED);
    let (status, p) = s.put("/v1/policies/odd", json!({"limits": {"max_units_per_line": 0}})).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("limits.max_units_per_line"))
    );

    // Only L-2 and L-5 were written: 8 units allocated (20 on hand) and 10,000 − 12 backordered.
    let orders = s.get("/v1/orders").await.1["orders"].as_array().unwrap().len();
    assert_eq!(orders, 2);
    assert_eq!(s.store.allocation_totals().await.unwrap().0, 20);
}

/// The hold rule "a first-time customer over a threshold": the customer's first order (by
/// e-mail, any case) over the value is held for review; their next one is not; routing
/// rules may not use the condition (sourcing does not look up history).
async fn a_first_order_over_a_value_is_held_for_review(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 20})).await;
    let policy = json!({"holds": [{"name": "first-big", "hold": "fraud_review", "reason": "first order over 500.00",
        "when": {"first_order": true, "order_value_min_minor": 50000}}]});
    assert_eq!(s.put("/v1/policies/new-buyers", policy).await.0, StatusCode::CREATED);
    assert_eq!(s.post("/v1/policies/new-buyers/activate", json!(null)).await.0, StatusCode::OK);
    let bad = json!({"rules": [{"name": "r", "when": {"first_order": true}}]});
    let (status, p) = s.put("/v1/policies/bad", bad).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("rules[0].when.first_order"))
    );

    let by =
        |ext: &str, email: &str, quantity: u64| order(ext, quantity, json!({"customer": {"id": ext, "email": email}}));
    let holds = |o: &Value| o["holds"].clone();
    // 2 × 300.00 = 600.00, Ada's first order: held. Her second: not. Bob's small first: not.
    let (status, first) = s.post("/v1/orders", by("F-1", "ada@example.com", 2)).await;
    assert_eq!((status, holds(&first)), (StatusCode::CREATED, json!(["fraud_review"])), "{first}");
    let (_, second) = s.post("/v1/orders", by("F-2", "ADA@example.com", 2)).await;
    assert_eq!(holds(&second), json!([]), "{second}");
    let (_, small) = s.post("/v1/orders", by("F-3", "bob@example.com", 1)).await;
    assert_eq!(holds(&small), json!([]));
    let stored = s.store.order(first["order_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.fulfillment_orders[0].status.as_str()), ("on_hold", "created"));
}
