//! What promising reads (issue 5): carriers and node calendars are validated (every bad
//! field named, nothing written), versioned, survive a restart, and a calendar may only
//! name carrier services that exist.

use std::sync::Arc;

use crate::common::{ADMIN_KEY, Backend, TestServer};
use allot_app::{FixedClock, Role};
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(carriers_and_node_calendars_are_validated_versioned_and_kept);

async fn carriers_and_node_calendars_are_validated_versioned_and_kept(mut s: TestServer) {
    s.seed().await;
    let ups = json!({"name": "UPS", "services": [
        {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:00",
         "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
         "holidays": ["2026-12-25"], "rates": [{"max_km": 5000.0, "base_minor": 900, "per_kg_minor": 100}]}]});
    let (status, c) = s.put("/v1/carriers/ups", ups.clone()).await;
    assert_eq!((status, c["version"].clone()), (StatusCode::CREATED, json!(1)), "{c}");
    assert_eq!(c["document"]["services"][0]["delivery_weekdays"], json!(["mon", "tue", "wed", "thu", "fri", "sat"]));
    let (status, c) = s.put("/v1/carriers/ups", ups).await;
    assert_eq!((status, c["version"].clone()), (StatusCode::OK, json!(2)));

    let bad = json!({"name": "X", "services": [{"code": "g", "service_level": "warp", "pickup_cutoff_local": "9am",
        "transit_days": [{"max_km": 10.0, "days": 1}]}]});
    let (status, p) = s.put("/v1/carriers/bad", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["services[0].service_level", "services[0].pickup_cutoff_local"]);
    assert_eq!(s.get("/v1/carriers/bad").await.0, StatusCode::NOT_FOUND);

    let cal = json!({"hours": {"mon": ["09:00", "21:00"], "sat": ["10:00", "18:00"]}, "holidays": ["2026-11-26"],
        "processing_minutes": 60, "pickup_ready_minutes": 120, "carrier_services": ["ups:ground"]});
    let (status, c) = s.put("/v1/nodes/ST-CHI/calendar", cal.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let mut unknown = cal.clone();
    unknown["carrier_services"] = json!(["fedex:overnight"]);
    let (status, p) = s.put("/v1/nodes/ST-CHI/calendar", unknown).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("carrier_services[0]"))
    );
    assert_eq!(s.put("/v1/nodes/NOPE/calendar", cal.clone()).await.0, StatusCode::NOT_FOUND);
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    assert_eq!(s.put_as(&web, "/v1/nodes/ST-CHI/calendar", cal).await.0, StatusCode::FORBIDDEN);
    assert_eq!(s.get_as(&web, "/v1/nodes/ST-CHI/calendar").await.1["version"], 1);

    // Both survive a restart (loaded into the read model from the database).
    s.restart().await;
    assert_eq!(s.get("/v1/carriers/ups").await.1["version"], 2);
    let c = s.get("/v1/nodes/ST-CHI/calendar").await.1;
    assert_eq!(c["document"]["hours"]["mon"], json!(["09:00", "21:00"]));
    assert_eq!(s.get("/v1/nodes/DC-EAST/calendar").await.0, StatusCode::NOT_FOUND);
}

/// A cart promised on Wednesday 2026-11-25 at 09:00 in Chicago: ground from the Chicago
/// store ships today (cut-off 17:00, an hour of processing) and arrives Friday (Thursday is
/// a carrier holiday); express is unavailable there (the store has no express service);
/// pickup at the store is ready two open hours later.
async fn a_cart_gets_the_dates_the_calendars_allow(backend: Backend) {
    let now: jiff::Timestamp = "2026-11-25T15:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    let ups = json!({"name": "UPS", "services": [
        {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:00",
         "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
         "delivery_weekdays": ["mon", "tue", "wed", "thu", "fri"], "holidays": ["2026-11-26"],
         "rates": [{"max_km": 300.0, "base_minor": 700, "per_kg_minor": 100},
                   {"max_km": 5000.0, "base_minor": 1200, "per_kg_minor": 150}]},
        {"code": "air", "service_level": "express", "pickup_cutoff_local": "15:00",
         "transit_days": [{"max_km": 5000.0, "days": 1}]}]});
    assert_eq!(s.put("/v1/carriers/ups", ups).await.0, StatusCode::CREATED);
    let store = json!({"hours": {"mon": ["09:00", "21:00"], "tue": ["09:00", "21:00"], "wed": ["09:00", "21:00"],
        "thu": ["09:00", "21:00"], "fri": ["09:00", "21:00"]}, "processing_minutes": 60, "pickup_ready_minutes": 120,
        "carrier_services": ["ups:ground"]});
    assert_eq!(s.put("/v1/nodes/ST-CHI/calendar", store).await.0, StatusCode::CREATED);
    s.put("/v1/inventory/ST-CHI/SKU-1", json!({"on_hand": 5})).await;

    let cart = json!({"lines": [{"sku": "SKU-1", "quantity": 2}], "ship_to": {"lat": 41.88, "lon": -87.63}});
    let (status, p) = s.post("/v1/promises", cart).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let options = p["options"].as_array().unwrap();
    let ground = options.iter().find(|o| o["service_level"] == "standard").unwrap();
    assert_eq!(ground["packages"][0]["node_id"], "ST-CHI");
    assert_eq!(ground["packages"][0]["carrier_service"], "ups:ground");
    assert_eq!(ground["packages"][0]["ship_date"], "2026-11-25");
    assert_eq!(ground["delivery_date"], "2026-11-27", "Thursday is the carrier's holiday");
    assert_eq!(ground["order_within_s"], 7 * 3600, "order by 16:00 Chicago time");
    // Two 500 g units bill 1 kg in the carrier's nearest band: 700 + 100.
    assert_eq!(
        (ground["carrier_rate_minor"].clone(), ground["packages"][0]["carrier_rate_minor"].clone()),
        (json!(800), json!(800))
    );
    assert_eq!(ground["carrier_service"], "ups:ground");
    let pickup = options.iter().find(|o| o["method"] == "pickup").unwrap();
    assert_eq!(pickup["ready_at"], "2026-11-25T17:00:00Z", "11:00 in Chicago");
    assert_eq!(pickup["node"], json!({"id": "ST-CHI", "name": "store node", "distance_km": 3.7}));
    let express =
        p["unavailable"].as_array().unwrap().iter().find(|u| u["service_level"] == "express").unwrap().clone();
    assert!(express["reason"].as_str().unwrap().contains("no express service"), "{express}");

    // A service that takes packages up to 500 g cannot carry the 1 kg package.
    let light = json!({"name": "UPS", "services": [
        {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:00",
         "transit_days": [{"max_km": 300.0, "days": 1}], "max_package_weight_g": 500}]});
    assert_eq!(s.put("/v1/carriers/ups", light).await.0, StatusCode::OK);
    let cart2 = json!({"lines": [{"sku": "SKU-1", "quantity": 2}], "ship_to": {"lat": 41.88, "lon": -87.63},
                       "methods": ["ship"]});
    let p2 = s.post("/v1/promises", cart2).await.1;
    let refused =
        p2["unavailable"].as_array().unwrap().iter().find(|u| u["service_level"] == "standard").unwrap().clone();
    assert!(refused["reason"].as_str().unwrap().contains("takes this package"), "{p2}");
    let ups = json!({"name": "UPS", "services": [
        {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:00",
         "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
         "delivery_weekdays": ["mon", "tue", "wed", "thu", "fri"], "holidays": ["2026-11-26"]}]});
    assert_eq!(s.put("/v1/carriers/ups", ups).await.0, StatusCode::OK);

    // An order placed with a service level but no option is promised that level's date.
    let (status, o) = s
        .post(
            "/v1/orders",
            json!({"channel": "web", "external_id": "SL-1", "ship_to": {"lat": 41.88, "lon": -87.63},
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1, "service_level": "standard"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(o["lines"][0]["promised_date"], "2026-11-27", "ground from the store, Thursday a carrier holiday");
    assert_eq!(o["fulfillment_orders"][0]["due_date"], "2026-11-27");
    let cancel =
        s.post(&format!("/v1/orders/{}/cancel", o["order_id"].as_str().unwrap()), json!({"reason": "test"})).await;
    assert_eq!(cancel.0, StatusCode::OK);

    // An order placed on the pickup option keeps the ready time; the jeopardy sweep
    // watches it: at risk in the last hour while not ready, on track once at the counter.
    let (status, p) = s
        .post(
            "/v1/orders",
            json!({"channel": "web", "external_id": "PU-1", "promise_option_id": "pickup:ST-CHI",
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1, "method": "pickup",
                          "pickup_node_id": "ST-CHI"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["lines"][0]["promised_ready_at"], "2026-11-25T17:00:00Z");
    let pu = p["order_id"].as_str().unwrap().to_owned();
    let jeopardy = |o: &serde_json::Value| o["lines"][0]["jeopardy"].clone();
    s.app.sweep_jeopardy().await.unwrap();
    assert_eq!(jeopardy(&s.get(&format!("/v1/orders/{pu}")).await.1), "on_track");
    clock.set("2026-11-25T16:30:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    assert_eq!(jeopardy(&s.get(&format!("/v1/orders/{pu}")).await.1), "at_risk");
    let fo = p["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    for action in ["accept", "pick", "ready-for-pickup"] {
        let path = format!("/v1/fulfillment-orders/{fo}/{action}");
        let (status, r) = if action == "pick" {
            s.post(&path, json!({"lines": [{"line_id": "1", "picked_quantity": 1}]})).await
        } else {
            s.post_empty(ADMIN_KEY, &path).await
        };
        assert_eq!(status, StatusCode::OK, "{action}: {r}");
    }
    clock.set("2026-11-25T18:00:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    assert_eq!(jeopardy(&s.get(&format!("/v1/orders/{pu}")).await.1), "on_track", "ready in time stays on track");
    let (status, p) = s
        .post(
            "/v1/orders",
            json!({"channel": "web", "external_id": "PU-2", "promise_option_id": "pickup:DC-EAST",
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1, "method": "pickup",
                          "pickup_node_id": "ST-CHI"}]}),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("promise_option_id"))
    );
    clock.set(now);

    // Daily capacity: with room for one order a day and one order waiting, the store's
    // next slot is tomorrow.
    let mut chi = crate::common::node_json("store", 41.85, -87.65, "America/Chicago", &["ship", "pickup", "curbside"]);
    chi["capacity"]["orders_per_day"] = json!(1);
    assert_eq!(s.put("/v1/nodes/ST-CHI", chi).await.0, StatusCode::OK);
    let order = json!({"channel": "web", "external_id": "CAP-1", "ship_to": {"lat": 41.88, "lon": -87.63},
                       "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}]});
    let (status, o) = s.post("/v1/orders", order).await;
    assert_eq!((status, o["fulfillment_orders"][0]["node_id"].clone()), (StatusCode::CREATED, json!("ST-CHI")), "{o}");
    s.app.refresh_node_backlog().await.unwrap();
    let cart = json!({"lines": [{"sku": "SKU-1", "quantity": 1}], "ship_to": {"lat": 41.88, "lon": -87.63},
                      "methods": ["ship"]});
    let p = s.post("/v1/promises", cart).await.1;
    let ground = p["options"].as_array().unwrap().iter().find(|o| o["service_level"] == "standard").unwrap().clone();
    assert_eq!(ground["packages"][0]["ship_date"], "2026-11-26", "today's one slot is taken: {ground}");

    // Nothing in stock: every ship level is unavailable with the reason; bad input is named.
    let (_, none) = s
        .post(
            "/v1/promises",
            json!({"lines": [{"sku": "SKU-2", "quantity": 1}],
        "ship_to": {"lat": 41.88, "lon": -87.63}, "methods": ["ship"]}),
        )
        .await;
    assert_eq!(none["options"], json!([]));
    assert!(
        none["unavailable"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["reason"] == "not enough stock to ship the whole cart")
    );
    let (status, bad) = s
        .post(
            "/v1/promises",
            json!({"lines": [{"sku": "SKU-1", "quantity": 0}], "ship_to": {},
        "methods": ["teleport"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["ship_to.lat", "methods[0]", "lines[0].quantity"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_gets_the_dates_the_calendars_allow_sqlite() {
    a_cart_gets_the_dates_the_calendars_allow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_gets_the_dates_the_calendars_allow_postgres() {
    a_cart_gets_the_dates_the_calendars_allow(Backend::Postgres).await;
}

/// An order placed on a promise option keeps the promised date per ship line; the
/// jeopardy sweep moves it on_track → at_risk (the day before, not shipped) → late (after
/// the date, not delivered), each change once, with an event.
async fn a_promised_order_is_watched_for_jeopardy(backend: Backend) {
    let start: jiff::Timestamp = "2026-11-25T15:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    let order = |ext: &str, option: &str| {
        json!({"channel": "web", "external_id": ext, "ship_to": {"lat": 39.95, "lon": -75.16},
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}], "promise_option_id": option})
    };
    for (bad, why) in [("ship:warp:2026-11-27", "unknown service level"), ("pickup:ST-CHI", "pickup lines")] {
        let (status, p) = s.post("/v1/orders", order("BAD", bad)).await;
        assert_eq!(
            (status, p["errors"][0]["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("promise_option_id"))
        );
        assert!(p["errors"][0]["message"].as_str().unwrap().contains(why), "{p}");
    }
    let (status, o) = s.post("/v1/orders", order("P-1", "ship:standard:2026-11-27")).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    assert_eq!(o["lines"][0]["promised_date"], "2026-11-27");
    let line = |o: &serde_json::Value| o["lines"][0]["jeopardy"].clone();
    let events =
        |o: &serde_json::Value, t: &str| o["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == t).count();

    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 1);
    let o = s.get(&format!("/v1/orders/{id}")).await.1;
    assert_eq!(line(&o), "on_track");
    clock.set("2026-11-26T12:00:00Z".parse().unwrap());
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 1);
    let o = s.get(&format!("/v1/orders/{id}")).await.1;
    assert_eq!((line(&o), events(&o, "order.at_risk")), (json!("at_risk"), 1));
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 0, "no change, no event");

    // Carrier progress: a shipment promised for the 30th that the carrier reports delayed
    // is at risk days ahead; a later in-transit scan puts it back on track.
    let (_, o2) = s.post("/v1/orders", order("P-2", "ship:standard:2026-11-30")).await;
    let id2 = o2["order_id"].as_str().unwrap().to_owned();
    let fo = o2["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    for (action, body) in [
        ("accept", None),
        ("pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 1}]}))),
        ("pack", None),
        ("ship", Some(json!({"packages": [{"carrier": "ups", "tracking_number": "JEO-1"}]}))),
    ] {
        let path = format!("/v1/fulfillment-orders/{fo}/{action}");
        let (status, r) = match body {
            Some(b) => s.post(&path, b).await,
            None => s.post_empty(ADMIN_KEY, &path).await,
        };
        assert_eq!(status, StatusCode::OK, "{action}: {r}");
    }
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 1);
    assert_eq!(line(&s.get(&format!("/v1/orders/{id2}")).await.1), "on_track");
    let scan = |kind: &str| json!({"type": kind, "at": "2026-11-26T11:30:00Z"});
    assert_eq!(s.post("/v1/shipments/JEO-1/events", scan("delayed")).await.0, StatusCode::OK);
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 1);
    let o2 = s.get(&format!("/v1/orders/{id2}")).await.1;
    assert_eq!((line(&o2), events(&o2, "order.at_risk")), (json!("at_risk"), 1));
    assert_eq!(s.post("/v1/shipments/JEO-1/events", scan("in_transit")).await.0, StatusCode::OK);
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 1);
    assert_eq!(line(&s.get(&format!("/v1/orders/{id2}")).await.1), "on_track");

    clock.set("2026-11-28T12:00:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    let o = s.get(&format!("/v1/orders/{id}")).await.1;
    assert_eq!((line(&o), events(&o, "order.late"), events(&o, "order.at_risk")), (json!("late"), 1, 1));
    // The customer-service worklist: orders with a line late (issue 18's search).
    let late: Vec<serde_json::Value> = s.get("/v1/orders?jeopardy=late").await.1["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].clone())
        .collect();
    assert!(late.contains(&json!(id)), "{late:?}");
    assert!(!late.contains(&json!(id2)), "delivered on time: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promised_order_is_watched_for_jeopardy_sqlite() {
    a_promised_order_is_watched_for_jeopardy(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promised_order_is_watched_for_jeopardy_postgres() {
    a_promised_order_is_watched_for_jeopardy(Backend::Postgres).await;
}

/// Jeopardy is judged on the customer's calendar day (`ship_to.time_zone`) and the active
/// policy's `jeopardy_action` follows it: `reroute_if_not_accepted` moves work its node
/// has not accepted (accepted work stays), `upgrade_service` moves unshipped lines up one
/// service level.
async fn jeopardy_actions_follow_the_policy(backend: Backend) {
    let start: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 5})).await;
    let order = |ext: &str, tz: Option<&str>, date: &str| {
        let mut ship_to = json!({"lat": 39.95, "lon": -75.16});
        if let Some(tz) = tz {
            ship_to["time_zone"] = json!(tz);
        }
        json!({"channel": "web", "external_id": ext, "ship_to": ship_to,
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}],
               "promise_option_id": format!("ship:standard:{date}")})
    };
    let (status, p) = s.post("/v1/orders", order("BAD", Some("Mars/Olympus"), "2026-11-27")).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("ship_to.time_zone"))
    );
    let (status, p) = s.put("/v1/policies/odd", json!({"jeopardy_action": "panic"})).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("jeopardy_action")));
    let (status, p) = s.put("/v1/policies/watchful", json!({"jeopardy_action": "reroute_if_not_accepted"})).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(s.post("/v1/policies/watchful/activate", json!(null)).await.0, StatusCode::OK);

    // 12:00 UTC on the 25th is already the 26th (the eve of the promise) in Auckland.
    let a = s.post("/v1/orders", order("J-A", Some("Pacific/Auckland"), "2026-11-27")).await.1;
    let b = s.post("/v1/orders", order("J-B", None, "2026-11-27")).await.1;
    let (a_id, b_id) = (a["order_id"].as_str().unwrap().to_owned(), b["order_id"].as_str().unwrap().to_owned());
    let b_fo = b["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    let accepted = s.post_empty(ADMIN_KEY, &format!("/v1/fulfillment-orders/{b_fo}/accept")).await;
    assert_eq!(accepted.1["status"], "accepted");
    // A single-node SKU at risk in Auckland too, which no line may wait for.
    s.put("/v1/inventory/DC-EAST/SKU-2", json!({"on_hand": 1})).await;
    let mut lone = order("J-E", Some("Pacific/Auckland"), "2026-11-27");
    lone["lines"][0]["sku"] = json!("SKU-2");
    let e_id = s.post("/v1/orders", lone).await.1["order_id"].as_str().unwrap().to_owned();
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 3);
    let a = s.get(&format!("/v1/orders/{a_id}")).await.1;
    assert_eq!(a["lines"][0]["jeopardy"], "at_risk", "Auckland's day");
    assert_eq!(a["fulfillment_orders"].as_array().unwrap().len(), 1, "just released: the node has its grace period");
    // Half an hour later the unaccepted work moves; the lone SKU's work stays where it is
    // (nothing else can take it, and a jeopardy action never cancels).
    clock.set(start + jiff::SignedDuration::from_mins(31));
    assert_eq!(s.app.sweep_jeopardy().await.unwrap(), 0, "no jeopardy changed");
    let e = s.get(&format!("/v1/orders/{e_id}")).await.1;
    assert_eq!(
        (
            e["status"].clone(),
            e["fulfillment_orders"].as_array().unwrap().len(),
            e["fulfillment_orders"][0]["status"].clone()
        ),
        (json!("allocated"), 1, json!("released")),
        "{e}"
    );
    let a = s.get(&format!("/v1/orders/{a_id}")).await.1;
    let fos = a["fulfillment_orders"].as_array().unwrap();
    assert_eq!(fos.len(), 2, "{a}");
    assert_eq!((fos[0]["status"].clone(), fos[0]["reason"].clone()), (json!("rejected"), json!("order_at_risk")));
    assert_eq!(fos[1]["status"], "released");
    assert_ne!(fos[0]["node_id"], fos[1]["node_id"]);
    assert_eq!(a["sourcing_attempts"][0]["reason"], "order_at_risk");
    let at_risk = a["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "order.at_risk").unwrap().clone();
    assert_eq!(at_risk["data"]["time_zone"], "Pacific/Auckland");
    assert_eq!(at_risk["data"]["today"], "2026-11-26");
    assert_eq!(s.get(&format!("/v1/orders/{b_id}")).await.1["lines"][0]["jeopardy"], "on_track", "Philadelphia's day");

    // A day later B is at risk too, but its node accepted it: it stays there.
    clock.set("2026-11-26T12:00:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    let b = s.get(&format!("/v1/orders/{b_id}")).await.1;
    assert_eq!(b["lines"][0]["jeopardy"], "at_risk");
    let at_risk = b["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "order.at_risk").unwrap().clone();
    assert_eq!(at_risk["data"]["time_zone"], "America/New_York", "no zone named: looked up from the coordinates");
    assert_eq!(b["fulfillment_orders"].as_array().unwrap().len(), 1);
    assert_eq!(b["fulfillment_orders"][0]["status"], "accepted");

    // With upgrade_service, an unshipped line at risk moves up to express (once per change).
    let (status, _) = s.put("/v1/policies/hurry", json!({"jeopardy_action": "upgrade_service"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(s.post("/v1/policies/hurry/activate", json!(null)).await.0, StatusCode::OK);
    let c = s.post("/v1/orders", order("J-C", Some("America/New_York"), "2026-11-28")).await.1;
    let c_id = c["order_id"].as_str().unwrap().to_owned();
    clock.set("2026-11-27T15:00:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    let c = s.get(&format!("/v1/orders/{c_id}")).await.1;
    assert_eq!(
        (c["lines"][0]["jeopardy"].clone(), c["lines"][0]["upgraded_service_level"].clone()),
        (json!("at_risk"), json!("express"))
    );
    let upgraded: Vec<serde_json::Value> =
        c["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == "order.service_upgraded").cloned().collect();
    assert_eq!(upgraded.len(), 1);
    assert_eq!(
        upgraded[0]["data"]["lines"][0],
        json!({"line_id": "1", "from": "standard", "to": "express", "jeopardy": "at_risk"})
    );
    let fo_upgrade: Vec<serde_json::Value> = c["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "fulfillment_order.service_upgraded")
        .cloned()
        .collect();
    assert_eq!(fo_upgrade.len(), 1, "the node holding the work hears it");
    assert_eq!(fo_upgrade[0]["node_id"], c["fulfillment_orders"][0]["node_id"]);
    assert_eq!(c["fulfillment_orders"].as_array().unwrap().len(), 1, "an upgrade does not move the work");
    // Late the next day: one more step.
    clock.set("2026-11-29T15:00:00Z".parse().unwrap());
    s.app.sweep_jeopardy().await.unwrap();
    let c = s.get(&format!("/v1/orders/{c_id}")).await.1;
    assert_eq!(
        (c["lines"][0]["jeopardy"].clone(), c["lines"][0]["upgraded_service_level"].clone()),
        (json!("late"), json!("next_day"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jeopardy_actions_follow_the_policy_sqlite() {
    jeopardy_actions_follow_the_policy(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jeopardy_actions_follow_the_policy_postgres() {
    jeopardy_actions_follow_the_policy(Backend::Postgres).await;
}

/// An order placed on a promise is sourced to keep it when the policy says so: the
/// cheapest node (Chicago, five transit days) would miss the next-day date that the
/// nearby DC makes; `must_meet_promise` rules it out (`misses_promise` in the
/// explanation), a late penalty prices it out, and without either the promise does not
/// change the plan.
async fn sourcing_keeps_the_promise_the_policy_asks_for(backend: Backend) {
    let now: jiff::Timestamp = "2026-11-25T15:00:00Z".parse().unwrap();
    let Some(s) = TestServer::start_with(backend, Arc::new(FixedClock::new(now)), false).await else { return };
    s.seed().await;
    let ups = json!({"name": "UPS", "services": [
        {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:00",
         "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
         "delivery_weekdays": ["mon", "tue", "wed", "thu", "fri"]}]});
    assert_eq!(s.put("/v1/carriers/ups", ups).await.0, StatusCode::CREATED);
    let hours = json!({"mon": ["09:00", "21:00"], "tue": ["09:00", "21:00"], "wed": ["09:00", "21:00"],
        "thu": ["09:00", "21:00"], "fri": ["09:00", "21:00"]});
    for node in ["DC-EAST", "ST-CHI"] {
        let cal = json!({"hours": hours, "processing_minutes": 60, "carrier_services": ["ups:ground"]});
        assert_eq!(s.put(&format!("/v1/nodes/{node}/calendar"), cal).await.0, StatusCode::CREATED);
        s.put(&format!("/v1/inventory/{node}/SKU-1"), json!({"on_hand": 5})).await;
    }
    // The DC near the customer is the expensive one.
    let mut east = crate::common::node_json("dc", 40.6084, -75.4902, "America/New_York", &["ship", "returns"]);
    east["costs"]["per_order_minor"] = json!(5_000);
    assert_eq!(s.put("/v1/nodes/DC-EAST", east).await.0, StatusCode::OK);

    let order = |ext: &str, policy: Option<&str>| {
        json!({"channel": "web", "external_id": ext, "ship_to": {"lat": 39.95, "lon": -75.16},
               "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}],
               "promise_option_id": "ship:standard:2026-11-26", "policy": policy})
    };
    let node_of = |o: &serde_json::Value| o["fulfillment_orders"][0]["node_id"].clone();
    let (status, plain) = s.post("/v1/orders", order("K-1", None)).await;
    assert_eq!(status, StatusCode::CREATED, "{plain}");
    assert_eq!(node_of(&plain), "ST-CHI", "without a rule about promises the cheapest node ships, late");

    let (status, p) =
        s.put("/v1/policies/keep", json!({"fallback": {"constraints": {"must_meet_promise": true}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["document"]["fallback"]["constraints"]["must_meet_promise"], true, "{p}");
    let (_, kept) = s.post("/v1/orders", order("K-2", Some("keep"))).await;
    assert_eq!(node_of(&kept), "DC-EAST", "{kept}");
    let chi = kept["sourcing"]["explanation"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["node_id"] == "ST-CHI")
        .unwrap()
        .clone();
    assert_eq!((chi["kept"].clone(), chi["reason"].clone()), (json!(false), json!("misses_promise")));

    let priced = json!({"fallback": {"cost": {"late_penalty_minor_per_day": 1_000}}});
    assert_eq!(s.put("/v1/policies/priced", priced).await.0, StatusCode::CREATED);
    let (_, o) = s.post("/v1/orders", order("K-3", Some("priced"))).await;
    assert_eq!(node_of(&o), "DC-EAST", "six days late × 1,000 outweighs the dearer DC: {o}");
    assert_eq!(o["sourcing"]["plan"]["packages"][0]["cost_minor"]["late"], 0);
    // With the DC out of stock the penalty is paid, and shown.
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 0})).await;
    let (_, o) = s.post("/v1/orders", order("K-4", Some("priced"))).await;
    assert_eq!(node_of(&o), "ST-CHI");
    assert_eq!(o["sourcing"]["plan"]["packages"][0]["cost_minor"]["late"], 6 * 1_000, "{o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sourcing_keeps_the_promise_the_policy_asks_for_sqlite() {
    sourcing_keeps_the_promise_the_policy_asks_for(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sourcing_keeps_the_promise_the_policy_asks_for_postgres() {
    sourcing_keeps_the_promise_the_policy_asks_for(Backend::Postgres).await;
}

/// The accuracy loop: every delivery is observed on its lane (node → region, carrier
/// service); the report compares promised with delivered; a policy with
/// `transit: observed_p90` promises a lane's learned p90 once it has 30 deliveries.
async fn deliveries_teach_the_promise(backend: Backend) {
    let monday: jiff::Timestamp = "2026-11-30T15:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(monday));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    let ups = json!({"name": "UPS", "services": [{"code": "ground", "service_level": "standard",
        "pickup_cutoff_local": "17:00", "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
        "delivery_weekdays": ["mon", "tue", "wed", "thu", "fri"]}]});
    assert_eq!(s.put("/v1/carriers/ups", ups).await.0, StatusCode::CREATED);
    let cal = json!({"hours": {"mon": ["08:00", "20:00"], "tue": ["08:00", "20:00"], "wed": ["08:00", "20:00"],
        "thu": ["08:00", "20:00"], "fri": ["08:00", "20:00"]}, "processing_minutes": 60, "carrier_services": ["ups:ground"]});
    assert_eq!(s.put("/v1/nodes/DC-EAST/calendar", cal).await.0, StatusCode::CREATED);
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 100})).await;
    let (status, _) = s.put("/v1/policies/learned", json!({"transit": "observed_p90"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, p) = s.put("/v1/policies/odd", json!({"transit": "astrology"})).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("transit")));
    let cart = |policy: Option<&str>| {
        json!({"lines": [{"sku": "SKU-1", "quantity": 1}], "methods": ["ship"], "policy": policy,
               "ship_to": {"lat": 39.95, "lon": -75.16, "region": "PA"}})
    };
    let promised = |p: &serde_json::Value| p["options"][0]["delivery_date"].clone();
    assert_eq!(promised(&s.post("/v1/promises", cart(None)).await.1), "2026-12-01", "the table: one day");

    // Each order promised for Tuesday arrives on Thursday: three carrier days, two late.
    let deliver = |n: usize| {
        let (s, clock) = (&s, &clock);
        async move {
            let order = json!({"channel": "web", "external_id": format!("ACC-{n}"),
                "ship_to": {"lat": 39.95, "lon": -75.16, "region": "PA"},
                "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1}],
                "promise_option_id": "ship:standard:2026-12-01"});
            let (status, o) = s.post("/v1/orders", order).await;
            assert_eq!(status, StatusCode::CREATED, "{o}");
            let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
            for (action, body) in [
                ("accept", None),
                ("pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 1}]}))),
                ("pack", None),
                ("ship", Some(json!({"packages": [{"carrier": "ups", "tracking_number": format!("ACC-{n}")}]}))),
            ] {
                let path = format!("/v1/fulfillment-orders/{fo}/{action}");
                let status = match body {
                    Some(b) => s.post(&path, b).await.0,
                    None => s.post_empty(ADMIN_KEY, &path).await.0,
                };
                assert_eq!(status, StatusCode::OK, "{action}");
            }
            // The carrier reports on Thursday; the next order is placed on Monday again.
            clock.set("2026-12-03T19:00:00Z".parse().unwrap());
            let scan = json!({"type": "delivered", "at": "2026-12-03T18:00:00Z"});
            assert_eq!(s.post(&format!("/v1/shipments/ACC-{n}/events"), scan).await.0, StatusCode::OK);
            clock.set(monday);
        }
    };
    for n in 0..29 {
        deliver(n).await;
    }
    s.app.refresh_lane_stats().await.unwrap();
    assert_eq!(promised(&s.post("/v1/promises", cart(Some("learned"))).await.1), "2026-12-01", "29: still the table");
    deliver(29).await;
    s.app.refresh_lane_stats().await.unwrap();
    assert_eq!(promised(&s.post("/v1/promises", cart(Some("learned"))).await.1), "2026-12-03", "30: the lane's p90");
    assert_eq!(
        promised(&s.post("/v1/promises", cart(None)).await.1),
        "2026-12-01",
        "the default policy keeps the table"
    );

    let (status, r) = s.get("/v1/promise-accuracy?from=2026-11-01T00:00:00Z&to=2026-12-31T00:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!((r["deliveries"].clone(), r["promised"].clone(), r["late"].clone()), (json!(30), json!(30), json!(30)));
    assert_eq!(
        r["lanes"],
        json!([{"carrier_service": "ups:ground", "node_id": "DC-EAST", "region": "PA", "deliveries": 30,
                "transit_days_p50": 3, "transit_days_p90": 3, "promised": 30, "on_time": 0, "late": 30,
                "on_time_rate": 0.0, "average_days_late": 2.0}])
    );
    let empty = s.get("/v1/promise-accuracy?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z").await.1;
    assert_eq!((empty["deliveries"].clone(), empty["lanes"].clone()), (json!(0), json!([])));
    let (status, p) = s.get("/v1/promise-accuracy?from=2026-12-31T00:00:00Z&to=2026-11-01T00:00:00Z").await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("from")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_teach_the_promise_sqlite() {
    deliveries_teach_the_promise(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_teach_the_promise_postgres() {
    deliveries_teach_the_promise(Backend::Postgres).await;
}

/// Same-day: only from a node with the capability, within the service's distance, before
/// its cut-off, with a slot left today; a same-day order takes the slot.
async fn same_day_needs_a_capable_node_a_slot_and_time(backend: Backend) {
    let morning: jiff::Timestamp = "2026-11-25T15:00:00Z".parse().unwrap(); // 09:00 in Chicago
    let clock = Arc::new(FixedClock::new(morning));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    let chi = crate::common::node_json("store", 41.85, -87.65, "America/Chicago", &["ship", "pickup", "same_day"]);
    assert_eq!(s.put("/v1/nodes/ST-CHI", chi).await.0, StatusCode::OK);
    let courier = json!({"name": "Courier", "services": [{"code": "sameday", "service_level": "same_day",
        "pickup_cutoff_local": "14:00", "transit_days": [{"max_km": 40.0, "days": 0}]}]});
    assert_eq!(s.put("/v1/carriers/courier", courier).await.0, StatusCode::CREATED);
    let cal = json!({"hours": {"wed": ["09:00", "21:00"], "thu": ["09:00", "21:00"]}, "processing_minutes": 60,
        "carrier_services": ["courier:sameday"], "same_day_slots": 1});
    assert_eq!(s.put("/v1/nodes/ST-CHI/calendar", cal).await.0, StatusCode::CREATED);
    let (status, p) = s
        .put(
            "/v1/nodes/DC-EAST/calendar",
            json!({"hours": {}, "processing_minutes": 0,
        "same_day_slots": 1_000_000}),
        )
        .await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("same_day_slots")));
    s.put("/v1/inventory/ST-CHI/SKU-1", json!({"on_hand": 5})).await;
    let cart = |lat: f64, lon: f64| json!({"lines": [{"sku": "SKU-1", "quantity": 1}], "ship_to": {"lat": lat, "lon": lon}, "methods": ["ship"]});
    let same_day = |p: &serde_json::Value| {
        let offered = p["options"].as_array().unwrap().iter().find(|o| o["service_level"] == "same_day").cloned();
        let refused = p["unavailable"].as_array().unwrap().iter().find(|u| u["service_level"] == "same_day").cloned();
        (offered, refused.map(|u| u["reason"].as_str().unwrap().to_owned()))
    };
    let (offered, _) = same_day(&s.post("/v1/promises", cart(41.88, -87.63)).await.1);
    let offered = offered.expect("same-day in the city");
    assert_eq!(
        (offered["option_id"].clone(), offered["delivery_date"].clone()),
        (json!("ship:same_day:2026-11-25"), json!("2026-11-25"))
    );
    assert_eq!(offered["packages"][0]["node_id"], "ST-CHI");
    let (none, why) = same_day(&s.post("/v1/promises", cart(43.04, -87.91)).await.1);
    assert!(none.is_none() && why.as_deref().unwrap().contains("takes this package"), "Milwaukee is too far: {why:?}");
    clock.set("2026-11-25T20:30:00Z".parse().unwrap()); // 14:30: past the cut-off
    let (none, why) = same_day(&s.post("/v1/promises", cart(41.88, -87.63)).await.1);
    assert!(none.is_none() && why.as_deref().unwrap().contains("cut-off"), "{why:?}");
    clock.set(morning);
    let order = json!({"channel": "web", "external_id": "SD-1", "ship_to": {"lat": 41.88, "lon": -87.63},
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 1, "method": "same_day"}],
        "promise_option_id": "ship:same_day:2026-11-25"});
    let (status, o) = s.post("/v1/orders", order).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    assert_eq!(
        (o["fulfillment_orders"][0]["node_id"].clone(), o["lines"][0]["promised_date"].clone()),
        (json!("ST-CHI"), json!("2026-11-25"))
    );
    let (none, why) = same_day(&s.post("/v1/promises", cart(41.88, -87.63)).await.1);
    assert!(none.is_none() && why.as_deref().unwrap().contains("no same-day slot left"), "{why:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_day_needs_a_capable_node_a_slot_and_time_sqlite() {
    same_day_needs_a_capable_node_a_slot_and_time(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_day_needs_a_capable_node_a_slot_and_time_postgres() {
    same_day_needs_a_capable_node_a_slot_and_time(Backend::Postgres).await;
}
