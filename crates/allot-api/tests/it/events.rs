//! The event outbox: events are written with the change they report (a refused request
//! writes none), in order, and pages resume from a cursor without gaps.

use crate::common::TestServer;
use allot_app::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(order_changes_are_events_in_order_and_pages_resume);

fn order(ext: &str, lines: Value) -> Value {
    json!({"channel": "web", "external_id": ext, "customer": {"id": "C-1", "email": "ada@example.com", "phone": "+1 215 555 0100"},
           "ship_to": {"name": "Ada", "city": "Philadelphia", "lat": 39.95, "lon": -75.16}, "lines": lines})
}

fn types(page: &Value) -> Vec<String> {
    page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

async fn order_changes_are_events_in_order_and_pages_resume(s: TestServer) {
    s.seed().await;
    let (_, empty) = s.get("/v1/events").await;
    assert_eq!((types(&empty).len(), empty["next_cursor"].clone()), (0, json!("0")));
    // A feed write is one (coalesced) inventory.changed event.
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.settle_events().await;
    let (_, inv) = s.get("/v1/events").await;
    assert_eq!(types(&inv), ["inventory.changed"]);
    let e = &inv["events"][0];
    assert_eq!((e["node_id"].clone(), e["actor"].clone()), (json!("DC-EAST"), json!("operator")));
    assert_eq!(e["data"]["positions"], json!([{"node_id": "DC-EAST", "sku": "SKU-1", "on_hand": 10, "atp": 10}]));
    let start = inv["next_cursor"].as_str().unwrap().to_owned();

    let mut held = order(
        "E-1",
        json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2},
               {"line_id": "2", "sku": "SKU-2", "quantity": 1, "allow_backorder": true}]),
    );
    held["holds"] = json!(["payment"]);
    let (status, o) = s.post("/v1/orders", held.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let id = o["order_id"].as_str().unwrap().to_owned();
    // Retried (200) and refused (422) requests write no events.
    assert_eq!(s.post("/v1/orders", held).await.0, StatusCode::OK);
    let bad = order("E-2", json!([{"line_id": "1", "sku": "SKU-NOPE", "quantity": 1}]));
    assert_eq!(s.post("/v1/orders", bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    s.post(&format!("/v1/orders/{id}/holds/payment/release"), json!(null)).await;
    s.post(&format!("/v1/orders/{id}/lines/1/cancel"), json!({"quantity": 1, "reason": "customer_request"})).await;
    s.post(&format!("/v1/orders/{id}/cancel"), json!({"reason": "fraud"})).await;
    s.post(&format!("/v1/orders/{id}/cancel"), json!({"reason": "fraud"})).await; // retry: no new event

    s.settle_events().await;
    let (status, all) = s.get(&format!("/v1/events?after={start}")).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        types(&all),
        [
            "order.created",
            "order.allocated",
            "order.backordered",
            "order.on_hold",
            "order.hold_released",
            "order.released",
            "order.line_cancelled",
            "fulfillment_order.cancelled",
            "order.cancelled"
        ]
    );
    let events = all["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["order_id"] == id.as_str() && e["version"] == 1));
    assert_eq!(events[0]["data"]["lines"][0]["allocated"], 2);
    // Every order event says whom to tell and where the order goes (issue 18).
    for e in events.iter().filter(|e| e["type"].as_str().unwrap().starts_with("order.")) {
        assert_eq!(
            (
                e["data"]["customer"]["email"].clone(),
                e["data"]["customer"]["phone"].clone(),
                e["data"]["ship_to"]["city"].clone()
            ),
            (json!("ada@example.com"), json!("+1 215 555 0100"), json!("Philadelphia")),
            "{e}"
        );
    }
    assert_eq!(
        (events[3]["data"]["hold"].clone(), events[4]["data"]["remaining"].clone()),
        (json!("payment"), json!([]))
    );
    assert_eq!(events[5]["data"]["fulfillment_orders"][0]["status"], "released");
    assert_eq!((events[6]["data"]["line_id"].clone(), events[6]["data"]["quantity"].clone()), (json!("1"), json!(1)));
    assert_eq!(
        (events[7]["data"]["status"].clone(), events[7]["node_id"].clone()),
        (json!("cancelled"), events[7]["data"]["node_id"].clone())
    );
    assert_eq!(
        (events[8]["data"]["status"].clone(), events[8]["data"]["reason"].clone()),
        (json!("cancelled"), json!("fraud"))
    );

    // Pages of two resume from the cursor and see every event once.
    let mut seen = Vec::new();
    let mut cursor = start.clone();
    loop {
        let (_, page) = s.get(&format!("/v1/events?limit=2&after={cursor}")).await;
        if types(&page).is_empty() {
            break;
        }
        seen.extend(types(&page));
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, types(&all));
    let (_, only) = s.get(&format!("/v1/events?type=order.cancelled&order_id={id}")).await;
    assert_eq!(types(&only), ["order.cancelled"]);

    // A channel key sees its own channel's events only; node keys none.
    let app_key = s.app.create_key(Role::parse("channel:app").unwrap()).await.unwrap().secret;
    assert_eq!(types(&s.get_as(&app_key, "/v1/events").await.1).len(), 0);
    let web_key = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    assert_eq!(types(&s.get_as(&web_key, "/v1/events").await.1).len(), 9);
    let node_key = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;
    assert_eq!(s.get_as(&node_key, "/v1/events").await.0, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/v1/events?after=x").await.0, StatusCode::UNPROCESSABLE_ENTITY);
}
