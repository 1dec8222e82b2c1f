//! Fulfillment execution: the node queue and its actions, stock leaving at hand-over,
//! rejections and short picks re-sourced elsewhere, carrier scans, and what keys may see.
//! Stock is checked in the database (positions and allocation totals), not from answers.

use std::sync::Arc;

use crate::common::{ADMIN_KEY, Backend, TestServer};
use allot_app::{FixedClock, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    a_shipped_order_walks_to_delivery_and_its_stock_leaves_at_shipment,
    node_keys_see_and_act_on_their_own_node_only,
    a_rejection_gives_stock_back_and_reroutes_excluding_every_failed_node,
    a_short_pick_writes_off_the_missing_units_and_sources_them_elsewhere,
    pickup_work_goes_to_the_counter_and_leaves_when_collected,
    cancellation_reaches_only_units_not_yet_handed_over,
    bad_fulfillment_input_is_refused_and_changes_nothing,
    backorders_are_sourced_when_stock_arrives_oldest_first,
    substitutes_cover_what_the_ordered_sku_cannot_when_the_line_allows_it,
    work_no_node_can_take_is_cancelled_and_announced,
    units_a_node_cannot_find_or_found_damaged_are_not_sold_again,
);

fn order(ext: &str, lines: Value) -> Value {
    json!({"channel": "web", "external_id": ext, "customer": {"id": "C-1", "tier": "standard"},
           "ship_to": {"city": "Philadelphia", "country": "US", "lat": 39.95, "lon": -75.16},
           "currency": "USD", "lines": lines})
}

async fn position(s: &TestServer, node: &str, sku: &str) -> (i64, i64, i64) {
    let p = s.get(&format!("/v1/inventory/{node}/{sku}")).await.1;
    (p["on_hand"].as_i64().unwrap(), p["allocated"].as_i64().unwrap(), p["atp"].as_i64().unwrap())
}

/// Allocations of fulfillment orders that still hold stock equal the positions' allocated
/// units, in the database.
async fn assert_stock_consistent(s: &TestServer) {
    let (held, allocated) = s.store.allocation_totals().await.unwrap();
    assert_eq!(held, allocated, "allocations of working fulfillment orders vs positions.allocated");
}

async fn fo_action(s: &TestServer, key: &str, fo: &str, action: &str, body: Option<Value>) -> (StatusCode, Value) {
    let path = format!("/v1/fulfillment-orders/{fo}/{action}");
    match body {
        Some(b) => s.post_as(key, &path, b).await,
        None => s.post_empty(key, &path).await,
    }
}

/// The order's event types, from its timeline (`/v1/events` on PostgreSQL serves an event
/// only once every older transaction in the cluster has ended, which other tests' running
/// transactions can delay; the timeline reads committed events at once).
/// The order ids of `GET /v1/fulfillment-orders?{query}`, one entry per page, following
/// the cursor.
async fn fo_orders_page_by_page(s: &TestServer, query: &str) -> Vec<Value> {
    let (mut paged, mut path) = (Vec::new(), format!("/v1/fulfillment-orders?{query}&limit=1"));
    loop {
        let page = s.get(&path).await.1;
        paged.push(page["fulfillment_orders"][0]["order_id"].clone());
        let Some(c) = page["next_cursor"].as_str() else { break };
        path = format!("/v1/fulfillment-orders?{query}&limit=1&cursor={c}");
    }
    paged
}

async fn event_types(s: &TestServer, order_id: &str) -> Vec<String> {
    let o = s.get(&format!("/v1/orders/{order_id}")).await.1;
    o["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

async fn a_shipped_order_walks_to_delivery_and_its_stock_leaves_at_shipment(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    let (status, o) =
        s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 3}]))).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(o["fulfillment_orders"][0]["kind"], "ship");
    assert_eq!(o["fulfillment_orders"][0]["attempt"], 1);
    let node = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;

    // Out of order: 409, nothing changes.
    let (status, p) = fo_action(&s, &node, &fo, "pack", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("released cannot pack"), "{p}");
    assert_eq!(s.get_as(&node, &format!("/v1/fulfillment-orders/{fo}")).await.1["status"], "released");

    let (status, f) = fo_action(&s, &node, &fo, "accept", None).await;
    assert_eq!((status, f["status"].clone()), (StatusCode::OK, json!("accepted")));
    // A retried accept answers the current state.
    let (status, again) = fo_action(&s, &node, &fo, "accept", None).await;
    assert_eq!(
        (status, again["status"].clone(), again["updated_at"].clone()),
        (StatusCode::OK, json!("accepted"), f["updated_at"].clone())
    );
    let f = fo_action(&s, &node, &fo, "pick", None).await.1;
    assert_eq!((f["status"].clone(), f["lines"][0]["picked_quantity"].clone()), (json!("picking"), json!(3)));
    assert_eq!(fo_action(&s, &node, &fo, "pack", None).await.1["status"], "packed");
    // Stock is still allocated at the node until it ships.
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (10, 3, 7));

    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "1Z-1"}]});
    let (status, f) = fo_action(&s, &node, &fo, "ship", Some(ship.clone())).await;
    assert_eq!((status, f["status"].clone()), (StatusCode::OK, json!("shipped")), "{f}");
    assert_eq!(f["shipments"][0]["tracking_number"], "1Z-1");
    assert_eq!(f["shipments"][0]["lines"], json!([{"line_id": "1", "quantity": 3}]));
    assert_eq!(f["lines"][0]["shipped_quantity"], 3);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (7, 0, 7));
    // Shipping again is a retry: one shipment, stock unchanged.
    let (status, again) = fo_action(&s, &node, &fo, "ship", Some(ship)).await;
    assert_eq!((status, again["shipments"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (7, 0, 7));
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!((o["status"].clone(), o["lines"][0]["status"].clone()), (json!("shipped"), json!("shipped")));
    assert_eq!(o["lines"][0]["shipped_quantity"], 3);

    // Carrier scans.
    let scan = |t: &str| json!({"type": t, "at": "2026-11-26T15:00:00Z", "detail": "scan"});
    let (status, sh) = s.post("/v1/shipments/1Z-1/events", scan("in_transit")).await;
    assert_eq!((status, sh["status"].clone()), (StatusCode::OK, json!("in_transit")), "{sh}");
    assert_eq!(s.post("/v1/shipments/NOPE/events", scan("in_transit")).await.0, StatusCode::NOT_FOUND);
    // A scan from the future (a carrier clock gone wrong) is refused and changes nothing.
    let (status, p) =
        s.post("/v1/shipments/1Z-1/events", json!({"type": "delivered", "at": "2099-01-01T00:00:00Z"})).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("at")), "{p}");
    let (status, sh) = s.post("/v1/shipments/1Z-1/events", scan("delivered")).await;
    assert_eq!((status, sh["delivered_at"].clone()), (StatusCode::OK, json!("2026-11-26T15:00:00Z")));
    // A scan after delivery other than the delivery itself is refused.
    assert_eq!(s.post("/v1/shipments/1Z-1/events", scan("delayed")).await.0, StatusCode::CONFLICT);
    assert_eq!(s.post("/v1/shipments/1Z-1/events", scan("delivered")).await.0, StatusCode::OK);
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!((o["status"].clone(), o["lines"][0]["delivered_quantity"].clone()), (json!("delivered"), json!(3)));
    assert_eq!(o["lines"][0]["delivered_at"], "2026-11-26T15:00:00Z", "the carrier's delivery time");
    assert!(o["lines"][0]["shipped_at"].is_string());
    assert_eq!(o["fulfillment_orders"][0]["status"], "delivered");
    assert_eq!(o["shipments"][0]["status"], "delivered");
    // A ship retried after delivery answers the delivered state; nothing moves.
    let late_retry = json!({"packages": [{"carrier": "ups", "tracking_number": "1Z-1"}]});
    let (status, f) = fo_action(&s, &node, &fo, "ship", Some(late_retry)).await;
    assert_eq!(
        (status, f["status"].clone(), f["shipments"].as_array().unwrap().len()),
        (StatusCode::OK, json!("delivered"), 1)
    );
    // Nothing left to cancel once delivered.
    let (status, _) = s.post(&format!("/v1/orders/{oid}/cancel"), json!({"reason": "customer_request"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (7, 0, 7));

    let types = event_types(&s, &oid).await;
    for t in [
        "order.created",
        "fulfillment_order.accepted",
        "fulfillment_order.picking",
        "fulfillment_order.packed",
        "fulfillment_order.shipped",
        "shipment.shipped",
        "shipment.in_transit",
        "shipment.delivered",
        "fulfillment_order.delivered",
        "order.delivered",
    ] {
        assert_eq!(types.iter().filter(|x| *x == t).count(), 1, "{t} once in {types:?}");
    }

    // The customer-service view: the timeline names who did what; contacts are recorded.
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let (status, c) = s
        .post_as(
            &web,
            &format!("/v1/orders/{oid}/contacts"),
            json!({"channel": "phone", "reason": "where_is_my_order"}),
        )
        .await;
    assert_eq!((status, c["actor"].clone()), (StatusCode::CREATED, json!("channel:web")), "{c}");
    let (status, p) = s.post(&format!("/v1/orders/{oid}/contacts"), json!({"channel": "fax", "reason": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["errors"].as_array().unwrap().len(), 2, "{p}");
    assert_eq!(
        s.post_as(&node, &format!("/v1/orders/{oid}/contacts"), json!({"channel": "chat", "reason": "x"})).await.0,
        StatusCode::NOT_FOUND
    );
    let o = s.get_as(&web, &format!("/v1/orders/{oid}")).await.1;
    assert_eq!(o["contacts"].as_array().unwrap().len(), 1);
    let timeline = o["timeline"].as_array().unwrap();
    let actor_of = |t: &str| timeline.iter().find(|e| e["type"] == t).map(|e| e["actor"].clone()).unwrap();
    assert_eq!(timeline[0]["type"], "order.created");
    assert_eq!(actor_of("order.created"), "operator");
    assert_eq!(actor_of("fulfillment_order.accepted"), "node:DC-EAST");
    assert_eq!(actor_of("shipment.in_transit"), "operator");
    assert_eq!(actor_of("order.customer_contact"), "channel:web");
    assert_stock_consistent(&s).await;
}

async fn node_keys_see_and_act_on_their_own_node_only(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/DC-WEST/SKU-2", json!({"on_hand": 10})).await;
    let mut fos = Vec::new();
    for (i, sku) in ["SKU-1", "SKU-1", "SKU-2"].iter().enumerate() {
        let o = s
            .post("/v1/orders", order(&format!("W-{i}"), json!([{"line_id": "1", "sku": sku, "quantity": 1}])))
            .await
            .1;
        fos.push(o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned());
    }
    let east = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;
    let west = s.app.create_key(Role::parse("node:DC-WEST").unwrap()).await.unwrap().secret;
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;

    // A node sees where its work goes and how fast, not the customer's contact or prices.
    let (status, work) = s.get_as(&east, &format!("/v1/fulfillment-orders/{}", fos[0])).await;
    assert_eq!(status, StatusCode::OK, "{work}");
    assert_eq!(
        (work["ship_to"]["city"].clone(), work["ship_to"]["country"].clone()),
        (json!("Philadelphia"), json!("US"))
    );
    assert_eq!(work["lines"][0]["service_level"], "standard");
    assert!(work.get("customer").is_none() && work["lines"][0].get("unit_price_minor").is_none(), "{work}");

    // The east queue: its two, oldest first, paged.
    let page = s.get_as(&east, "/v1/fulfillment-orders?limit=1").await.1;
    assert_eq!(page["fulfillment_orders"][0]["id"], fos[0].as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page = s.get_as(&east, &format!("/v1/fulfillment-orders?limit=1&cursor={cursor}")).await.1;
    assert_eq!(page["fulfillment_orders"][0]["id"], fos[1].as_str());
    assert!(page.get("next_cursor").is_none(), "{page}");
    // Asking for another node's queue with a node key finds nothing.
    let other = s.get_as(&east, "/v1/fulfillment-orders?node_id=DC-WEST").await.1;
    assert_eq!(other["fulfillment_orders"], json!([]));
    // Admin sees every node; filters by status.
    let all = s.get("/v1/fulfillment-orders?status=released").await.1;
    assert_eq!(all["fulfillment_orders"].as_array().unwrap().len(), 3);
    assert_eq!(s.get("/v1/fulfillment-orders?status=nope").await.0, StatusCode::UNPROCESSABLE_ENTITY);

    // Another node's fulfillment order is "not found", for reading and acting.
    assert_eq!(s.get_as(&west, &format!("/v1/fulfillment-orders/{}", fos[0])).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fo_action(&s, &west, &fos[0], "accept", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get_as(&east, &format!("/v1/fulfillment-orders/{}", fos[0])).await.1["status"], "released");
    // Channel keys do not work fulfillment.
    assert_eq!(s.get_as(&web, "/v1/fulfillment-orders").await.0, StatusCode::FORBIDDEN);
    assert_eq!(fo_action(&s, &web, &fos[0], "accept", None).await.0, StatusCode::FORBIDDEN);
    // The admin may act on any.
    assert_eq!(fo_action(&s, ADMIN_KEY, &fos[2], "accept", None).await.1["status"], "accepted");
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{}", "fo_missing")).await.0, StatusCode::NOT_FOUND);
}

async fn a_rejection_gives_stock_back_and_reroutes_excluding_every_failed_node(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 5})).await;
    let o = s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 3}]))).await.1;
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let first = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(o["fulfillment_orders"][0]["node_id"], "DC-EAST");
    let east = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;
    let west = s.app.create_key(Role::parse("node:DC-WEST").unwrap()).await.unwrap().secret;

    let (status, f) = fo_action(&s, &east, &first, "reject", Some(json!({"reason": "too_busy"}))).await;
    assert_eq!(
        (status, f["status"].clone(), f["reason"].clone()),
        (StatusCode::OK, json!("rejected"), json!("too_busy"))
    );
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (5, 0, 5));
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await, (5, 3, 2));
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!(o["status"], "allocated");
    let second = &o["fulfillment_orders"][1];
    assert_eq!(
        (second["node_id"].clone(), second["attempt"].clone(), second["status"].clone()),
        (json!("DC-WEST"), json!(2), json!("released"))
    );
    assert_eq!(
        o["lines"][0]["allocations"],
        json!([{"node_id": "DC-WEST", "quantity": 3, "fulfillment_order_id": second["id"]}])
    );
    let attempt = &o["sourcing_attempts"][0];
    assert_eq!(
        (attempt["attempt"].clone(), attempt["reason"].clone(), attempt["failed_node_id"].clone()),
        (json!(2), json!("rejected: too_busy"), json!("DC-EAST"))
    );
    assert_eq!(attempt["decision"]["excluded_nodes"], json!(["DC-EAST"]));
    // The attempt keeps the engine's full explanation: the failed node dropped as excluded,
    // the chosen one marked.
    let sourcing = &attempt["decision"]["sourcing"][0];
    let candidates = sourcing["explanation"]["candidates"].as_array().unwrap();
    let failed = candidates.iter().find(|c| c["node_id"] == "DC-EAST").unwrap();
    assert_eq!((failed["kept"].clone(), failed["reason"].clone()), (json!(false), json!("excluded")), "{sourcing}");
    let chosen: Vec<Value> = candidates.iter().filter(|c| c["chosen"] == true).map(|c| c["node_id"].clone()).collect();
    assert_eq!(chosen, [second["node_id"].clone()], "{sourcing}");
    assert_eq!(sourcing["plan"]["packages"][0]["node_id"], second["node_id"]);
    // A retried reject answers the rejected state and re-sources nothing more.
    assert_eq!(
        fo_action(&s, &east, &first, "reject", Some(json!({"reason": "too_busy"}))).await.1["status"],
        "rejected"
    );
    assert_eq!(s.get(&format!("/v1/orders/{oid}")).await.1["fulfillment_orders"].as_array().unwrap().len(), 2);

    // The west DC refuses too: DC-EAST is still excluded and the store has none, so the
    // line (no backorder) is cancelled with the reason.
    let second = second["id"].as_str().unwrap().to_owned();
    fo_action(&s, &west, &second, "accept", None).await;
    let (status, _) = fo_action(&s, &west, &second, "reject", Some(json!({"reason": "no_stock"}))).await;
    assert_eq!(status, StatusCode::OK);
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!((o["status"].clone(), o["lines"][0]["cancelled_quantity"].clone()), (json!("cancelled"), json!(3)));
    assert_eq!(o["sourcing_attempts"][1]["decision"]["excluded_nodes"], json!(["DC-EAST", "DC-WEST"]));
    assert_eq!(o["sourcing_attempts"][1]["decision"]["cancelled"][0]["quantity"], 3);
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await, (5, 0, 5));
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (5, 0, 5));
    let types = event_types(&s, &oid).await;
    assert_eq!(types.iter().filter(|t| *t == "order.rerouted").count(), 2, "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "fulfillment_order.rejected").count(), 2, "{types:?}");

    // With backorders allowed, what nobody can take is backordered instead.
    let o = s
        .post(
            "/v1/orders",
            order("W-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 5, "allow_backorder": true}])),
        )
        .await
        .1;
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let fo = &o["fulfillment_orders"][0];
    let key = if fo["node_id"] == "DC-EAST" { &east } else { &west };
    fo_action(&s, key, fo["id"].as_str().unwrap(), "reject", Some(json!({"reason": "closed"}))).await;
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!(o["lines"][0]["allocated_quantity"], 5, "{o}");
    let third = o["fulfillment_orders"][1]["id"].as_str().unwrap().to_owned();
    let key = if o["fulfillment_orders"][1]["node_id"] == "DC-EAST" { &east } else { &west };
    fo_action(&s, key, &third, "reject", Some(json!({"reason": "closed"}))).await;
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!((o["status"].clone(), o["lines"][0]["backordered_quantity"].clone()), (json!("backordered"), json!(5)));
    assert_stock_consistent(&s).await;
}

async fn a_short_pick_writes_off_the_missing_units_and_sources_them_elsewhere(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 5})).await;
    let o = s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 4}]))).await.1;
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    let east = s.app.create_key(Role::parse("node:DC-EAST").unwrap()).await.unwrap().secret;
    fo_action(&s, &east, &fo, "accept", None).await;
    let (status, f) =
        fo_action(&s, &east, &fo, "pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 1}]}))).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["status"], "picking");
    assert_eq!(
        f["lines"][0],
        json!({"line_id": "1", "sku": "SKU-1", "quantity": 1, "picked_quantity": 1, "short_quantity": 3, "shipped_quantity": 0})
    );
    // Three units were not there: written off at DC-EAST; the one picked stays allocated.
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (2, 1, 1));
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await, (5, 3, 2));
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!(o["sourcing_attempts"][0]["reason"], "short_pick");
    assert_eq!(o["lines"][0]["allocated_quantity"], 4);
    assert_eq!(o["fulfillment_orders"][1]["node_id"], "DC-WEST");

    // The picked unit ships; the order is partly shipped.
    fo_action(&s, &east, &fo, "pack", None).await;
    let ship = json!({"packages": [{"carrier": "fedex", "tracking_number": "FX-1", "lines": [{"line_id": "1", "quantity": 1}]}]});
    assert_eq!(fo_action(&s, &east, &fo, "ship", Some(ship)).await.0, StatusCode::OK);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (1, 0, 1));
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!(
        (o["status"].clone(), o["lines"][0]["shipped_quantity"].clone()),
        (json!("partially_shipped"), json!(1))
    );

    // Nothing found at all: the node failed the work; everything is re-sourced.
    let o2 = s.post("/v1/orders", order("W-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]))).await.1;
    let fo2 = o2["fulfillment_orders"][0].clone();
    let key = s
        .app
        .create_key(Role::parse(&format!("node:{}", fo2["node_id"].as_str().unwrap())).unwrap())
        .await
        .unwrap()
        .secret;
    let fo2 = fo2["id"].as_str().unwrap().to_owned();
    fo_action(&s, &key, &fo2, "accept", None).await;
    let f = fo_action(&s, &key, &fo2, "pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 0}]}))).await.1;
    assert_eq!((f["status"].clone(), f["reason"].clone()), (json!("rejected"), json!("short_pick")));
    // Retried, the pick answers the state it left (nothing is re-sourced twice).
    let again =
        fo_action(&s, &key, &fo2, "pick", Some(json!({"lines": [{"line_id": "1", "picked_quantity": 0}]}))).await;
    assert_eq!((again.0, again.1["status"].clone()), (StatusCode::OK, json!("rejected")));
    let attempts =
        s.get(&format!("/v1/orders/{}", o2["order_id"].as_str().unwrap())).await.1["sourcing_attempts"].clone();
    assert_eq!(attempts.as_array().unwrap().len(), 1);
    assert_stock_consistent(&s).await;
}

async fn pickup_work_goes_to_the_counter_and_leaves_when_collected(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/ST-CHI/SKU-2", json!({"on_hand": 4})).await;
    let line = json!([{"line_id": "1", "sku": "SKU-2", "quantity": 2, "method": "pickup", "pickup_node_id": "ST-CHI"}]);
    let (status, o) = s.post("/v1/orders", order("P-1", line)).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(o["fulfillment_orders"][0]["kind"], "pickup");
    let store = s.app.create_key(Role::parse("node:ST-CHI").unwrap()).await.unwrap().secret;
    fo_action(&s, &store, &fo, "accept", None).await;
    fo_action(&s, &store, &fo, "pick", None).await;
    // A pickup is not shipped.
    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "X"}]});
    assert_eq!(fo_action(&s, &store, &fo, "ship", Some(ship)).await.0, StatusCode::CONFLICT);
    assert_eq!(fo_action(&s, &store, &fo, "ready-for-pickup", None).await.1["status"], "ready_for_pickup");
    assert_eq!(position(&s, "ST-CHI", "SKU-2").await, (4, 2, 2));
    assert_eq!(fo_action(&s, &store, &fo, "picked-up", None).await.1["status"], "picked_up");
    assert_eq!(position(&s, "ST-CHI", "SKU-2").await, (2, 0, 2));
    let o = s.get(&format!("/v1/orders/{oid}")).await.1;
    assert_eq!((o["status"].clone(), o["lines"][0]["delivered_quantity"].clone()), (json!("delivered"), json!(2)));
    assert!(event_types(&s, &oid).await.contains(&"fulfillment_order.picked_up".to_owned()));
    assert_stock_consistent(&s).await;
}

async fn cancellation_reaches_only_units_not_yet_handed_over(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    s.put("/v1/inventory/DC-WEST/SKU-2", json!({"on_hand": 5})).await;
    let lines =
        json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}, {"line_id": "2", "sku": "SKU-2", "quantity": 2}]);
    let o = s.post("/v1/orders", order("W-1", lines)).await.1;
    let oid = o["order_id"].as_str().unwrap().to_owned();
    let east_fo = o["fulfillment_orders"].as_array().unwrap().iter().find(|f| f["node_id"] == "DC-EAST").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for action in ["accept", "pick", "pack"] {
        fo_action(&s, ADMIN_KEY, &east_fo, action, None).await;
    }
    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "T-1"}]});
    assert_eq!(fo_action(&s, ADMIN_KEY, &east_fo, "ship", Some(ship)).await.0, StatusCode::OK);
    // Line 1 is shipped: cancelling it is a conflict and changes nothing.
    let (status, p) = s.post(&format!("/v1/orders/{oid}/lines/1/cancel"), json!({"reason": "customer_request"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (3, 0, 3));
    // Cancelling the order takes what is left (line 2) and leaves the shipped line alone.
    let (status, o) = s.post(&format!("/v1/orders/{oid}/cancel"), json!({"reason": "customer_request"})).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["status"], "shipped");
    assert_eq!(
        (o["lines"][0]["status"].clone(), o["lines"][1]["status"].clone()),
        (json!("shipped"), json!("cancelled"))
    );
    assert_eq!(position(&s, "DC-WEST", "SKU-2").await, (5, 0, 5));
    let west = o["fulfillment_orders"].as_array().unwrap().iter().find(|f| f["node_id"] == "DC-WEST").unwrap().clone();
    assert_eq!((west["status"].clone(), west["reason"].clone()), (json!("cancelled"), json!("customer_request")));
    // A cancelled fulfillment order cannot be worked on.
    assert_eq!(fo_action(&s, ADMIN_KEY, west["id"].as_str().unwrap(), "accept", None).await.0, StatusCode::CONFLICT);
    assert_stock_consistent(&s).await;
}

async fn bad_fulfillment_input_is_refused_and_changes_nothing(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    let o = s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]))).await.1;
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    fo_action(&s, ADMIN_KEY, &fo, "accept", None).await;
    let before = s.get(&format!("/v1/fulfillment-orders/{fo}")).await.1;
    for (action, body, field) in [
        ("pick", json!({"lines": [{"line_id": "1", "picked_quantity": 3}]}), "lines[0].picked_quantity"),
        ("pick", json!({"lines": [{"line_id": "9", "picked_quantity": 1}]}), "lines[0].line_id"),
        ("reject", json!({"reason": ""}), "reason"),
        ("reject", json!({"reason": "x".repeat(101)}), "reason"),
    ] {
        let (status, p) = fo_action(&s, ADMIN_KEY, &fo, action, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {p}");
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    assert_eq!(
        fo_action(&s, ADMIN_KEY, &fo, "pick", Some(json!({"lines": [], "extra": 1}))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{fo}")).await.1, before);
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (5, 2, 3));

    // Ship: packages must carry every unit exactly once; tracking numbers are unique.
    fo_action(&s, ADMIN_KEY, &fo, "pick", None).await;
    fo_action(&s, ADMIN_KEY, &fo, "pack", None).await;
    let short =
        json!({"packages": [{"carrier": "ups", "tracking_number": "A", "lines": [{"line_id": "1", "quantity": 1}]}]});
    let (status, p) = fo_action(&s, ADMIN_KEY, &fo, "ship", Some(short)).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("packages")));
    let twice =
        json!({"packages": [{"carrier": "ups", "tracking_number": "A"}, {"carrier": "ups", "tracking_number": "A"}]});
    assert_eq!(fo_action(&s, ADMIN_KEY, &fo, "ship", Some(twice)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{fo}")).await.1["status"], "packed");
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (5, 2, 3));
    assert_eq!(
        s.post("/v1/shipments/A/events", json!({"type": "teleported"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A delivery reported in the future is refused like a future scan (issue 18).
    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "B"}]});
    assert_eq!(fo_action(&s, ADMIN_KEY, &fo, "ship", Some(ship)).await.0, StatusCode::OK);
    let (status, p) =
        fo_action(&s, ADMIN_KEY, &fo, "deliver", Some(json!({"delivered_at": "2999-01-01T00:00:00Z"}))).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("delivered_at")));
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{fo}")).await.1["status"], "shipped");
    assert_stock_consistent(&s).await;
}

/// Release timeout: with the active policy's `accept_within_minutes`, released work not
/// accepted in time is re-sourced by the sweep; accepted work and work not yet due stay.
async fn unaccepted_work_times_out_and_is_rerouted(backend: Backend) {
    let start: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let Some(s) = TestServer::start_with(backend, clock.clone(), false).await else { return };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 5})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 5})).await;
    // No timeout without a policy that sets one.
    let o1 = s.post("/v1/orders", order("W-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]))).await.1;
    clock.set(start + jiff::SignedDuration::from_hours(5));
    assert_eq!(s.app.sweep_release_timeouts().await.unwrap(), 0);

    let (status, p) = s.put("/v1/policies/strict", json!({"accept_within_minutes": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(s.post("/v1/policies/strict/activate", json!(null)).await.0, StatusCode::OK);
    let (status, p) = s.put("/v1/policies/bad", json!({"accept_within_minutes": 0})).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("accept_within_minutes"))
    );

    let t0 = start + jiff::SignedDuration::from_hours(5);
    let o2 = s.post("/v1/orders", order("W-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]))).await.1;
    let o3 = s.post("/v1/orders", order("W-3", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}]))).await.1;
    let fo3 = o3["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(fo_action(&s, ADMIN_KEY, &fo3, "accept", None).await.1["status"], "accepted");
    // 29 minutes: nothing due except the first order's (released 5 hours ago).
    clock.set(t0 + jiff::SignedDuration::from_mins(29));
    assert_eq!(s.app.sweep_release_timeouts().await.unwrap(), 1);
    let o1 = s.get(&format!("/v1/orders/{}", o1["order_id"].as_str().unwrap())).await.1;
    assert_eq!(o1["fulfillment_orders"][0]["reason"], "release_timeout");
    assert_eq!(o1["sourcing_attempts"][0]["reason"], "release_timeout");
    let rejected =
        o1["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "fulfillment_order.rejected").unwrap().clone();
    assert_eq!(rejected["actor"], "system");
    // 31 minutes: the second order's work moves; the accepted one stays.
    clock.set(t0 + jiff::SignedDuration::from_mins(31));
    assert_eq!(s.app.sweep_release_timeouts().await.unwrap(), 1);
    let o2 = s.get(&format!("/v1/orders/{}", o2["order_id"].as_str().unwrap())).await.1;
    let fos = o2["fulfillment_orders"].as_array().unwrap();
    assert_eq!((fos[0]["status"].clone(), fos[1]["status"].clone()), (json!("rejected"), json!("released")));
    assert_ne!(fos[0]["node_id"], fos[1]["node_id"]);
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{fo3}")).await.1["status"], "accepted");
    // The re-sourced work gets its own 30 minutes.
    assert_eq!(s.app.sweep_release_timeouts().await.unwrap(), 0);
    assert_stock_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaccepted_work_times_out_and_is_rerouted_sqlite() {
    unaccepted_work_times_out_and_is_rerouted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaccepted_work_times_out_and_is_rerouted_postgres() {
    unaccepted_work_times_out_and_is_rerouted(Backend::Postgres).await;
}

/// Node disruption: pausing a node moves its work not yet picked elsewhere (in bounded
/// batches, by the sweep); picked work stays; the moves are the system's.
async fn a_paused_node_hands_its_unpicked_work_elsewhere(backend: Backend) {
    let start: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(start));
    let Some(s) = TestServer::start_with(backend, clock, false).await else { return };
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 10})).await;
    s.put("/v1/inventory/DC-WEST/SKU-1", json!({"on_hand": 10})).await;
    let mut fos = Vec::new();
    for i in 0..3 {
        let o = s
            .post("/v1/orders", order(&format!("W-{i}"), json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}])))
            .await
            .1;
        assert_eq!(o["fulfillment_orders"][0]["node_id"], "DC-EAST");
        fos.push((
            o["order_id"].as_str().unwrap().to_owned(),
            o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned(),
        ));
    }
    // Order 0 stays released, order 1 is accepted, order 2 is already picked.
    fo_action(&s, ADMIN_KEY, &fos[1].1, "accept", None).await;
    fo_action(&s, ADMIN_KEY, &fos[2].1, "accept", None).await;
    fo_action(&s, ADMIN_KEY, &fos[2].1, "pick", None).await;

    let mut east = crate::common::node_json("dc", 40.6084, -75.4902, "America/New_York", &["ship", "returns"]);
    east["status"] = json!("paused");
    assert_eq!(s.put("/v1/nodes/DC-EAST", east).await.0, StatusCode::OK);
    // The PUT starts one batch itself; the sweep finishes whatever is left (nothing here).
    for _ in 0..100 {
        s.app.sweep_disrupted_nodes().await.unwrap();
        let o = s.get(&format!("/v1/orders/{}", fos[1].0)).await.1;
        if o["fulfillment_orders"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (order_id, fo) in &fos[..2] {
        let o = s.get(&format!("/v1/orders/{order_id}")).await.1;
        let fo_view =
            o["fulfillment_orders"].as_array().unwrap().iter().find(|f| f["id"] == fo.as_str()).unwrap().clone();
        assert_eq!(
            (fo_view["status"].clone(), fo_view["reason"].clone()),
            (json!("rejected"), json!("node_paused")),
            "{o}"
        );
        assert_eq!(o["fulfillment_orders"][1]["node_id"], "DC-WEST");
        assert_eq!(o["sourcing_attempts"][0]["reason"], "node_paused");
        let moved = o["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "order.rerouted").unwrap().clone();
        assert_eq!(moved["actor"], "system");
    }
    // Picked work stays where it is.
    assert_eq!(s.get(&format!("/v1/fulfillment-orders/{}", fos[2].1)).await.1["status"], "picking");
    // DC-EAST keeps only the picked order's 2 units allocated (its ATP shows 8 though the
    // node is paused: the position view is arithmetic; sourcing skips paused nodes).
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (10, 2, 8));
    assert_eq!(position(&s, "DC-WEST", "SKU-1").await.1, 4);
    assert_eq!(s.app.sweep_disrupted_nodes().await.unwrap(), 0, "nothing left to move");
    assert_stock_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_hands_its_unpicked_work_elsewhere_sqlite() {
    a_paused_node_hands_its_unpicked_work_elsewhere(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_hands_its_unpicked_work_elsewhere_postgres() {
    a_paused_node_hands_its_unpicked_work_elsewhere(Backend::Postgres).await;
}

async fn backorders_are_sourced_when_stock_arrives_oldest_first(s: TestServer) {
    s.seed().await;
    let line = |q: u64| json!([{"line_id": "1", "sku": "SKU-3", "quantity": q, "allow_backorder": true}]);
    let first = s.post("/v1/orders", order("B-1", line(2))).await.1;
    let second = s.post("/v1/orders", order("B-2", line(2))).await.1;
    assert_eq!((first["status"].clone(), second["status"].clone()), (json!("backordered"), json!("backordered")));
    // Three units arrive: the older order gets its two, the newer one the third.
    s.put("/v1/inventory/DC-EAST/SKU-3", json!({"on_hand": 3})).await;
    let path = |o: &Value| format!("/v1/orders/{}", o["order_id"].as_str().unwrap());
    let mut done = false;
    for _ in 0..200 {
        let (a, b) = (s.get(&path(&first)).await.1, s.get(&path(&second)).await.1);
        if a["status"] == "allocated" && b["lines"][0]["allocated_quantity"] == 1 {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(done, "backorders were not filled: {} / {}", s.get(&path(&first)).await.1, s.get(&path(&second)).await.1);
    let a = s.get(&path(&first)).await.1;
    assert_eq!(a["sourcing_attempts"][0]["reason"], "supply_arrived");
    assert_eq!(a["fulfillment_orders"][0]["node_id"], "DC-EAST");
    assert_eq!(a["fulfillment_orders"][0]["status"], "released");
    let b = s.get(&path(&second)).await.1;
    assert_eq!(
        (b["status"].clone(), b["lines"][0]["backordered_quantity"].clone()),
        (json!("partially_allocated"), json!(1))
    );
    assert!(
        event_types(&s, a["order_id"].as_str().unwrap()).await.iter().filter(|t| *t == "order.allocated").count() == 1
    );
    assert_eq!(position(&s, "DC-EAST", "SKU-3").await, (3, 3, 0));
    assert_stock_consistent(&s).await;
}

async fn substitutes_cover_what_the_ordered_sku_cannot_when_the_line_allows_it(s: TestServer) {
    s.seed().await;
    let (status, i) =
        s.put("/v1/items/SKU-1", json!({"name": "Tent", "weight_g": 500, "substitutes": ["SKU-3", "SKU-2"]})).await;
    assert!(status.is_success(), "{i}");
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 1})).await;
    s.put("/v1/inventory/DC-EAST/SKU-2", json!({"on_hand": 5})).await;
    // Without consent: one unit, the rest unfilled.
    let plain = s.post("/v1/orders", order("S-0", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 3}]))).await.1;
    assert_eq!(
        (plain["lines"][0]["allocated_quantity"].clone(), plain["lines"][0]["unfilled_quantity"].clone()),
        (json!(1), json!(2))
    );
    let cancel =
        s.post(&format!("/v1/orders/{}/cancel", plain["order_id"].as_str().unwrap()), json!({"reason": "test"})).await;
    assert_eq!(cancel.0, StatusCode::OK);
    // With consent: the ordered unit, then the first substitute with stock (SKU-3 has none).
    let line = json!([{"line_id": "1", "sku": "SKU-1", "quantity": 3, "allow_substitution": true}]);
    let (status, o) = s.post("/v1/orders", order("S-1", line)).await;
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let l = &o["lines"][0];
    assert_eq!((l["status"].clone(), l["allocated_quantity"].clone()), (json!("allocated"), json!(3)), "{o}");
    let mut allocs: Vec<(i64, Value)> = l["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["quantity"].as_i64().unwrap(), a["substitute_sku"].clone()))
        .collect();
    allocs.sort_by_key(|a| a.0);
    assert_eq!(allocs, [(1, Value::Null), (2, json!("SKU-2"))]);
    let fo_lines = o["fulfillment_orders"][0]["lines"].as_array().unwrap();
    assert_eq!(fo_lines.iter().map(|l| l["sku"].as_str().unwrap()).collect::<Vec<_>>(), ["SKU-1", "SKU-2"]);
    assert_eq!(position(&s, "DC-EAST", "SKU-2").await, (5, 2, 3));
    assert_eq!(position(&s, "DC-EAST", "SKU-1").await, (1, 1, 0));
    let types = event_types(&s, o["order_id"].as_str().unwrap()).await;
    assert!(types.contains(&"order.substituted".to_owned()), "{types:?}");
    // The substitute ships like any unit: stock leaves the substitute's position.
    let fo = o["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    fo_action(&s, ADMIN_KEY, &fo, "accept", None).await;
    // A pick of a line with two SKUs here must say which SKU it counts.
    let vague = json!({"lines": [{"line_id": "1", "picked_quantity": 1}]});
    let (status, p) = fo_action(&s, ADMIN_KEY, &fo, "pick", Some(vague)).await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("lines[0].sku")));
    let exact = json!({"lines": [{"line_id": "1", "sku": "SKU-2", "picked_quantity": 2}]});
    assert_eq!(fo_action(&s, ADMIN_KEY, &fo, "pick", Some(exact)).await.1["status"], "picking");
    fo_action(&s, ADMIN_KEY, &fo, "pack", None).await;
    let ship = json!({"packages": [{"carrier": "ups", "tracking_number": "SUB-1"}]});
    assert_eq!(fo_action(&s, ADMIN_KEY, &fo, "ship", Some(ship)).await.0, StatusCode::OK);
    assert_eq!(position(&s, "DC-EAST", "SKU-2").await, (3, 0, 3));
    assert_stock_consistent(&s).await;
}

/// The oldest promise goes first: backordered orders are filled by promised date (then
/// age; unpromised after promised), the node queue lists work by due date (promised
/// date, else the day it was made), and its cursor pages through that order.
async fn the_oldest_promise_is_served_first(backend: Backend) {
    let start: jiff::Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let Some(s) = TestServer::start_with(backend, Arc::new(FixedClock::new(start)), false).await else { return };
    s.seed().await;
    let place = |ext: &str, sku: &str, promise: Option<&str>| {
        let mut o = order(ext, json!([{"line_id": "1", "sku": sku, "quantity": 1, "allow_backorder": true}]));
        if let Some(p) = promise {
            o["promise_option_id"] = json!(format!("ship:standard:{p}"));
        }
        o
    };
    let mut ids = Vec::new();
    for (ext, promise) in [("Q-A", None), ("Q-B", Some("2026-12-10")), ("Q-C", Some("2026-12-05"))] {
        let (status, o) = s.post("/v1/orders", place(ext, "SKU-3", promise)).await;
        assert_eq!((status, o["status"].clone()), (StatusCode::CREATED, json!("backordered")), "{o}");
        ids.push(o["order_id"].as_str().unwrap().to_owned());
    }
    // The backorder list pages in promise order (page size 1 here).
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = s.store.backordered_orders(&["SKU-3".to_owned()], after.as_ref(), 1).await.unwrap();
        let Some((id, p)) = page.first().cloned() else { break };
        walked.push(id.clone());
        after = Some((p, id));
    }
    assert_eq!(walked, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    // Two units arrive: C (promised 12-05) and B (12-10) get them; A (no promise) waits.
    s.put("/v1/inventory/DC-EAST/SKU-3", json!({"on_hand": 2})).await;
    assert_eq!(s.app.fill_backorders(&["SKU-3".to_owned()]).await.unwrap(), 2);
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(s.get(&format!("/v1/orders/{id}")).await.1["status"].clone());
    }
    assert_eq!(statuses, [json!("backordered"), json!("allocated"), json!("allocated")]);

    // An unpromised order is due the day it is made: today's comes before promises due
    // later, and a promise due later than the oldest unpromised work waits behind it.
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 1})).await;
    let (_, d) = s.post("/v1/orders", place("Q-D", "SKU-1", None)).await;
    assert_eq!(d["status"], "allocated", "{d}");
    let queue = s.get("/v1/fulfillment-orders?node_id=DC-EAST").await.1;
    let listed: Vec<(Value, Value)> = queue["fulfillment_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["order_id"].clone(), f["due_date"].clone()))
        .collect();
    let expected = vec![
        (d["order_id"].clone(), json!("2026-12-01")),
        (json!(ids[2]), json!("2026-12-05")),
        (json!(ids[1]), json!("2026-12-10")),
    ];
    assert_eq!(listed, expected);
    // The same order one entry per page; with the status too (a store's work queue: the
    // statement reads the node's released work straight off its index).
    let order_ids: Vec<Value> = expected.iter().map(|e| e.0.clone()).collect();
    assert_eq!(fo_orders_page_by_page(&s, "node_id=DC-EAST").await, order_ids);
    assert_eq!(fo_orders_page_by_page(&s, "node_id=DC-EAST&status=released").await, order_ids);
    let released = s.get("/v1/fulfillment-orders?node_id=DC-EAST&status=released").await.1;
    assert_eq!(released["fulfillment_orders"].as_array().unwrap().len(), 3);
    let none = s.get("/v1/fulfillment-orders?node_id=DC-EAST&status=shipped").await.1;
    assert_eq!(none["fulfillment_orders"], json!([]));
    let (status, p) = s.get("/v1/fulfillment-orders?cursor=nonsense").await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("cursor")));
    assert_stock_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_promise_is_served_first_sqlite() {
    the_oldest_promise_is_served_first(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_promise_is_served_first_postgres() {
    the_oldest_promise_is_served_first(Backend::Postgres).await;
}

/// Re-sourcing that finds no node cancels the units (lines without backorder): announced
/// like any cancellation — `order.cancelled` when nothing is left, else
/// `order.line_cancelled` per line (issue 18, defect 2: there was no event at all).
async fn work_no_node_can_take_is_cancelled_and_announced(s: TestServer) {
    s.seed().await;
    s.put("/v1/inventory/DC-EAST/SKU-1", json!({"on_hand": 3})).await;
    s.put("/v1/inventory/DC-WEST/SKU-3", json!({"on_hand": 1})).await;
    let (_, a) = s.post("/v1/orders", order("U-1", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]))).await;
    let a_id = a["order_id"].as_str().unwrap().to_owned();
    let fo = a["fulfillment_orders"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = fo_action(&s, ADMIN_KEY, &fo, "reject", Some(json!({"reason": "no_stock"}))).await;
    assert_eq!(status, StatusCode::OK);
    let stored = s.store.order(&a_id).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.lines[0].cancelled), ("cancelled", 2));
    let events = s.store.order_events(&a_id).await.unwrap();
    let cancelled: Vec<_> = events.iter().filter(|e| e.event_type == "order.cancelled").collect();
    assert_eq!(cancelled.len(), 1, "{:?}", events.iter().map(|e| &e.event_type).collect::<Vec<_>>());
    let data: Value = serde_json::from_str(&cancelled[0].data).unwrap();
    assert_eq!(data["reason"], "unsourceable after rejected: no_stock");

    // Two lines at two nodes: one node fails, its line is cancelled, the other goes on.
    let (_, b) = s
        .post(
            "/v1/orders",
            order("U-2", json!([{"line_id": "1", "sku": "SKU-1", "quantity": 1}, {"line_id": "2", "sku": "SKU-3", "quantity": 1}])),
        )
        .await;
    let b_id = b["order_id"].as_str().unwrap().to_owned();
    let east = b["fulfillment_orders"].as_array().unwrap().iter().find(|f| f["node_id"] == "DC-EAST").unwrap().clone();
    let (status, _) =
        fo_action(&s, ADMIN_KEY, east["id"].as_str().unwrap(), "reject", Some(json!({"reason": "closed"}))).await;
    assert_eq!(status, StatusCode::OK);
    let stored = s.store.order(&b_id).await.unwrap().unwrap();
    assert_eq!((stored.lines[0].cancelled, stored.lines[1].allocated, stored.status.as_str()), (1, 1, "allocated"));
    let events = s.store.order_events(&b_id).await.unwrap();
    let lines: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type == "order.line_cancelled")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0]["line_id"].clone(), lines[0]["quantity"].clone()), (json!("1"), json!(1)));
    assert!(!events.iter().any(|e| e.event_type == "order.cancelled"), "the order goes on");
    assert_stock_consistent(&s).await;
}

/// A rejection's reason decides what happens to the node's units (issue 18, defect 1:
/// every reason gave them back to ATP, so units a node said it could not find were sold
/// again): `not_found` writes them off, `damaged` quarantines them, others give them back;
/// a policy maps its own reasons. Counted in the positions.
async fn units_a_node_cannot_find_or_found_damaged_are_not_sold_again(s: TestServer) {
    s.seed().await;
    for node in ["DC-EAST", "DC-WEST"] {
        s.put(&format!("/v1/inventory/{node}/SKU-1"), json!({"on_hand": 10})).await;
    }
    let reject = |ext: &'static str, reason: &'static str| {
        let s = &s;
        async move {
            let o = s.post("/v1/orders", order(ext, json!([{"line_id": "1", "sku": "SKU-1", "quantity": 2}]))).await.1;
            let fo = &o["fulfillment_orders"][0];
            let node = fo["node_id"].as_str().unwrap().to_owned();
            let (status, f) =
                fo_action(s, ADMIN_KEY, fo["id"].as_str().unwrap(), "reject", Some(json!({"reason": reason}))).await;
            assert_eq!(status, StatusCode::OK, "{f}");
            let rejected = s.get(&format!("/v1/orders/{}", o["order_id"].as_str().unwrap())).await.1["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "fulfillment_order.rejected")
                .unwrap()["data"]["stock"]
                .clone();
            (node, rejected)
        }
    };
    let counters = |node: String| {
        let s = &s;
        async move {
            let p = s.get(&format!("/v1/inventory/{node}/SKU-1")).await.1;
            (p["on_hand"].as_i64().unwrap(), p["quarantined"].as_i64().unwrap(), p["allocated"].as_i64().unwrap())
        }
    };
    // Each order goes to DC-EAST (nearest) and is re-sourced to DC-WEST when rejected.
    // Not found: 2 units gone from DC-EAST's books (on hand 10 → 8), none allocated.
    assert_eq!(reject("N-1", "not_found").await, ("DC-EAST".to_owned(), json!("write_off")));
    assert_eq!(counters("DC-EAST".to_owned()).await, (8, 0, 0));
    // Damaged: on hand stays, 2 quarantined, ATP does not get them back.
    assert_eq!(reject("N-2", "damaged").await, ("DC-EAST".to_owned(), json!("quarantine")));
    assert_eq!(counters("DC-EAST".to_owned()).await, (8, 2, 0));
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["atp"], 6);
    // Any other reason: back to ATP.
    assert_eq!(reject("N-3", "too_busy").await, ("DC-EAST".to_owned(), json!("release")));
    assert_eq!(counters("DC-EAST".to_owned()).await, (8, 2, 0));
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-1").await.1["atp"], 6);

    // A policy maps its own reasons; a bad mapping is named.
    let (status, p) =
        s.put("/v1/policies/ops", json!({"reject_reasons": {"too_busy": "quarantine", "lost": "shred"}})).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("reject_reasons.lost"))
    );
    let policy = json!({"reject_reasons": {"too_busy": "write_off", "not_found": "release"}});
    assert_eq!(s.put("/v1/policies/ops", policy).await.0, StatusCode::CREATED);
    assert_eq!(s.post("/v1/policies/ops/activate", json!(null)).await.0, StatusCode::OK);
    assert_eq!(reject("N-4", "too_busy").await.1, "write_off");
    assert_eq!(counters("DC-EAST".to_owned()).await, (6, 2, 0));
    assert_eq!(reject("N-5", "not_found").await.1, "release");
    assert_eq!(counters("DC-EAST".to_owned()).await, (6, 2, 0));
    // The re-sourced units: 5 orders × 2 at DC-WEST.
    assert_eq!(counters("DC-WEST".to_owned()).await, (10, 0, 10));
    assert_stock_consistent(&s).await;
}
