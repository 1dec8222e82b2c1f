//! The demo database (`allot demo`): its network, stock and promise data answer the
//! promise API, so a fresh demo offers delivery dates out of the box.

use std::sync::Arc;

use crate::common::{ADMIN_KEY, Backend, TestServer};
use allot_app::FixedClock;
use allot_core::scenario::{ScenarioSpec, generate};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A 3-line cart (the three SKUs Allentown holds most of) to Philadelphia, asked on Tuesday 2026-12-01 at 09:00 in
/// New York: every service level of the demo carrier is offered, each package handed to
/// one of its services, and standard ground arrives the next day (Allentown and the
/// Philadelphia stores are within the 300 km one-day band and ship before the cut-off);
/// next-day leaves Allentown (stores do not hand to it).
async fn the_demo_database_answers_promises(backend: Backend) {
    let now: jiff::Timestamp = "2026-12-01T14:00:00Z".parse().unwrap();
    let Some(s) = TestServer::start_with(backend, Arc::new(FixedClock::new(now)), false).await else { return };
    let scenario = generate(&ScenarioSpec::demo());
    let summary = s.app.load_scenario_if_empty(&scenario).await.unwrap();
    assert!(summary.loaded);
    assert_eq!((summary.nodes, summary.carriers, summary.calendars), (60, 1, 60));
    assert_eq!(s.get("/v1/nodes/DC-ALLENTOWN/calendar").await.0, StatusCode::OK);
    assert_eq!(s.get("/v1/carriers/parcel").await.0, StatusCode::OK);

    let mut held: Vec<_> = scenario.positions.iter().filter(|p| p.node_id.as_str() == "DC-ALLENTOWN").collect();
    held.sort_by_key(|p| (std::cmp::Reverse(p.counts.on_hand), p.sku.clone()));
    let lines: Vec<_> = held.iter().take(3).map(|p| json!({"sku": p.sku.as_str(), "quantity": 1})).collect();
    let cart = json!({"lines": lines, "ship_to": {"lat": 39.95, "lon": -75.16}});
    let (status, p) = s.post("/v1/promises", cart.clone()).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let options = p["options"].as_array().unwrap();
    let ship: Vec<_> = options.iter().filter(|o| o["method"] == "ship").collect();
    assert!(!ship.is_empty(), "{p}");
    for o in &ship {
        for pkg in o["packages"].as_array().unwrap() {
            assert!(pkg["carrier_service"].as_str().unwrap().starts_with("parcel:"), "{o}");
        }
    }
    let levels: Vec<&str> = ship.iter().map(|o| o["service_level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["express", "next_day", "standard"], "{p}");
    let standard = ship.iter().find(|o| o["service_level"] == "standard").unwrap();
    assert_eq!(standard["delivery_date"], "2026-12-02", "{standard}");
    let next_day = ship.iter().find(|o| o["service_level"] == "next_day").unwrap();
    assert_eq!(next_day["packages"][0]["node_id"], "DC-ALLENTOWN", "{next_day}");
    assert_eq!(next_day["order_within_s"], 4 * 3600 + 1800, "order by 13:30: 15:00 cut-off less 90 minutes");
    // Pickup counts down too: to the last order ready the same day (it said 0 before).
    let mut pickup_sku = None;
    for n in 1..=50 {
        let sku = format!("SKU-{n:05}");
        let a = s.get(&format!("/v1/availability?sku={sku}&lat=39.95&lon=-75.16&radius_km=80&method=pickup")).await.1;
        if a["items"][0]["nodes"].as_array().is_some_and(|n| !n.is_empty()) {
            pickup_sku = Some(sku);
            break;
        }
    }
    let pickup_sku = pickup_sku.expect("a demo SKU a Philadelphia-area store holds");
    let pickup_cart = json!({"lines": [{"sku": pickup_sku, "quantity": 1}], "ship_to": {"lat": 39.95, "lon": -75.16},
                             "methods": ["pickup"]});
    let (_, p) = s.post("/v1/promises", pickup_cart).await;
    let pickups: Vec<&Value> = p["options"].as_array().unwrap().iter().filter(|o| o["method"] == "pickup").collect();
    assert!(!pickups.is_empty(), "{p}");
    for o in &pickups {
        let within = o["order_within_s"].as_i64().unwrap();
        assert!(within > 0 && within <= 24 * 3600, "{o}");
    }

    // A rule on the service level still shapes that level alone: express only from
    // dropship nodes (the demo has none) leaves express without stock, the others as they were.
    let policy = json!({"rules": [{"name": "express-dropship", "when": {"service_level": ["express"]},
        "filters": {"node_types": ["dropship"]}}]});
    assert_eq!(s.put("/v1/policies/levels", policy).await.0, StatusCode::CREATED);
    assert_eq!(s.post_empty(ADMIN_KEY, "/v1/policies/levels/activate").await.0, StatusCode::OK);
    let (_, ruled) = s.post("/v1/promises", cart).await;
    let levels: Vec<&str> =
        ruled["options"].as_array().unwrap().iter().filter_map(|o| o["service_level"].as_str()).collect();
    assert_eq!(levels, ["next_day", "standard"], "{ruled}");
    let express = ruled["unavailable"].as_array().unwrap().iter().find(|u| u["service_level"] == "express").cloned();
    assert_eq!(express.unwrap()["reason"], "not enough stock to ship the whole cart");

    // Loading again changes nothing (the database holds a network).
    let again = s.app.load_scenario_if_empty(&scenario).await.unwrap();
    assert!(!again.loaded);
    assert_eq!(s.get("/v1/carriers/parcel").await.1["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_database_answers_promises_sqlite() {
    the_demo_database_answers_promises(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_database_answers_promises_postgres() {
    the_demo_database_answers_promises(Backend::Postgres).await;
}
