//! What promising reads (issue 5): carriers and node calendars are validated (every bad
//! field named, nothing written), versioned, survive a restart, and a calendar may only
//! name carrier services that exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use allot_app::Role;
use common::TestServer;
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
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("carrier_services[0]")));
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
