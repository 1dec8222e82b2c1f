//! Inbound supply and preorders: backordered units are promised against expected stock
//! (earliest supply to the oldest promise), never allocated from it; receiving puts the
//! units on hand and fills the orders it was promised to first. Counts are checked in the
//! database (positions and allocation totals), not only in answers.

use std::sync::Arc;

use crate::common::{ADMIN_KEY, Backend, TestServer};
use allot_app::{FixedClock, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn preorder(ext: &str, quantity: u64, promise: Option<&str>) -> Value {
    let mut o = json!({"channel": "web", "external_id": ext, "customer": {"id": "C-1"},
        "ship_to": {"lat": 39.95, "lon": -75.16},
        "lines": [{"line_id": "1", "sku": "SKU-3", "quantity": quantity, "allow_backorder": true}]});
    if let Some(p) = promise {
        o["promise_option_id"] = json!(format!("ship:standard:{p}"));
    }
    o
}

/// (order id, expected units as (node, quantity)) of an order's first line.
async fn expected(s: &TestServer, order_id: &str) -> Vec<(String, i64)> {
    let o = s.get(&format!("/v1/orders/{order_id}")).await.1;
    o["lines"][0]["expected"]
        .as_array()
        .map(|x| {
            x.iter().map(|e| (e["node_id"].as_str().unwrap().to_owned(), e["quantity"].as_i64().unwrap())).collect()
        })
        .unwrap_or_default()
}

async fn supply_counts(s: &TestServer, id: &str) -> (String, i64, i64, i64) {
    let v = s.get(&format!("/v1/inventory/supply/{id}")).await.1;
    (
        v["status"].as_str().unwrap().to_owned(),
        v["committed"].as_i64().unwrap(),
        v["available"].as_i64().unwrap(),
        v["received"].as_i64().unwrap(),
    )
}

async fn preorders_are_promised_against_supply_and_filled_when_it_arrives(backend: Backend) {
    let start: jiff::Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let Some(s) = TestServer::start_with(backend, Arc::new(FixedClock::new(start)), false).await else { return };
    s.seed().await;
    let mut ids = Vec::new();
    for (ext, q, promise) in [("P-1", 2, Some("2026-12-10")), ("P-2", 1, None), ("P-3", 2, Some("2026-12-05"))] {
        let (status, o) = s.post("/v1/orders", preorder(ext, q, promise)).await;
        assert_eq!((status, o["status"].clone()), (StatusCode::CREATED, json!("backordered")), "{o}");
        ids.push(o["order_id"].as_str().unwrap().to_owned());
    }

    // Bad input is named and writes nothing.
    let (status, p) = s
        .post(
            "/v1/inventory/supply",
            json!({"node_id": "DC-NOWHERE", "sku": "SKU-3", "quantity": 0, "eta": "2026-11-30T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["node_id", "quantity", "eta"]);
    let (status, p) = s
        .post("/v1/inventory/supply", json!({"node_id": "DC-WEST", "sku": "SKU-3", "quantity": 1, "eta": "soon"}))
        .await;
    assert_eq!((status, p["errors"][0]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("eta")));
    let web = s.app.create_key(Role::parse("channel:web").unwrap()).await.unwrap().secret;
    let body = json!({"node_id": "DC-WEST", "sku": "SKU-3", "quantity": 3, "eta": "2026-12-08T12:00:00Z"});
    assert_eq!(s.post_as(&web, "/v1/inventory/supply", body.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/v1/inventory/supply").await.1["supply"], json!([]));

    // Three units due at DC-WEST on the 8th: P-3 (promised the 5th) gets two, P-1 (the
    // 10th) one; P-2 (no promise) waits. Nothing is allocated from supply.
    let (status, first) = s.post_as(ADMIN_KEY, "/v1/inventory/supply", body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!((first["committed"].clone(), first["available"].clone()), (json!(3), json!(0)));
    let promised: Vec<(Value, Value)> = first["commitments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["order_id"].clone(), c["quantity"].clone()))
        .collect();
    assert!(promised.contains(&(json!(ids[2]), json!(2))) && promised.contains(&(json!(ids[0]), json!(1))), "{first}");
    assert_eq!(expected(&s, &ids[2]).await, [("DC-WEST".to_owned(), 2)]);
    assert_eq!(expected(&s, &ids[0]).await, [("DC-WEST".to_owned(), 1)]);
    assert_eq!(expected(&s, &ids[1]).await, []);
    // Commitments name orders of every channel: a channel key sees the supply without them.
    let seen = s.get_as(&web, &format!("/v1/inventory/supply/{first_id}")).await.1;
    assert_eq!((seen["committed"].clone(), seen.get("commitments")), (json!(3), None));
    let o = s.get(&format!("/v1/orders/{}", ids[2])).await.1;
    assert_eq!(o["lines"][0]["expected"][0]["eta"], "2026-12-08T12:00:00Z");
    assert_eq!(o["status"], "backordered");
    assert!(o["timeline"].as_array().unwrap().iter().any(|e| e["type"] == "order.supply_committed"));
    assert_eq!(s.store.allocation_totals().await.unwrap(), (0, 0), "supply is not stock");

    // Five more due at DC-EAST on the 15th: P-1's second unit and P-2's; three left over.
    let (_, second) = s
        .post(
            "/v1/inventory/supply",
            json!({"node_id": "DC-EAST", "sku": "SKU-3", "quantity": 5, "eta": "2026-12-15T12:00:00Z"}),
        )
        .await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_eq!((second["committed"].clone(), second["available"].clone()), (json!(2), json!(3)));
    let mut p1 = expected(&s, &ids[0]).await;
    p1.sort();
    assert_eq!(p1, [("DC-EAST".to_owned(), 1), ("DC-WEST".to_owned(), 1)]);
    // ATP over time: the SKU's open supply with what is still free.
    let open = s.get("/v1/inventory/supply?sku=SKU-3&status=expected").await.1;
    let free: Vec<(Value, Value)> =
        open["supply"].as_array().unwrap().iter().map(|v| (v["eta"].clone(), v["available"].clone())).collect();
    assert_eq!(free, [(json!("2026-12-08T12:00:00Z"), json!(0)), (json!("2026-12-15T12:00:00Z"), json!(3))]);

    // A new preorder sees its expected date in the answer.
    let (status, p4) = s.post("/v1/orders", preorder("P-4", 1, None)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(p4["lines"][0]["expected"][0]["eta"], "2026-12-15T12:00:00Z", "{p4}");
    let p4_id = p4["order_id"].as_str().unwrap().to_owned();

    // The first supply is cancelled: the backlog moves to the second, oldest promise
    // first, and the newest preorder loses its place (told by an event).
    let (status, c) = s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{first_id}/cancel")).await;
    assert_eq!((status, c["status"].clone()), (StatusCode::OK, json!("cancelled")));
    assert_eq!(s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{first_id}/cancel")).await.0, StatusCode::OK);
    assert_eq!(supply_counts(&s, &second_id).await, ("expected".to_owned(), 5, 0, 0));
    assert_eq!(expected(&s, &ids[2]).await, [("DC-EAST".to_owned(), 2)]);
    assert_eq!(expected(&s, &ids[0]).await, [("DC-EAST".to_owned(), 2)]);
    assert_eq!(expected(&s, &ids[1]).await, [("DC-EAST".to_owned(), 1)]);
    assert_eq!(expected(&s, &p4_id).await, []);
    let p4 = s.get(&format!("/v1/orders/{p4_id}")).await.1;
    let last = p4["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "order.supply_committed")
        .unwrap()
        .clone();
    assert_eq!(last["data"]["expected"], json!([]));

    // Received: five units on hand at DC-EAST, filling the orders it was promised to;
    // the preorder without a commitment still waits.
    let (status, r) = s.post(&format!("/v1/inventory/supply/{second_id}/receive"), json!({})).await;
    assert_eq!(
        (status, r["status"].clone(), r["received"].clone()),
        (StatusCode::OK, json!("received"), json!(5)),
        "{r}"
    );
    for id in &ids {
        let o = s.get(&format!("/v1/orders/{id}")).await.1;
        assert_eq!(o["status"], "allocated", "{o}");
        assert_eq!(o["fulfillment_orders"][0]["node_id"], "DC-EAST");
        assert_eq!(o["sourcing_attempts"][0]["reason"], "supply_arrived");
    }
    assert_eq!(s.get(&format!("/v1/orders/{p4_id}")).await.1["status"], "backordered");
    let pos = s.get("/v1/inventory/DC-EAST/SKU-3").await.1;
    assert_eq!((pos["on_hand"].clone(), pos["allocated"].clone(), pos["atp"].clone()), (json!(5), json!(5), json!(0)));
    let (held, allocated) = s.store.allocation_totals().await.unwrap();
    assert_eq!((held, allocated), (5, 5));
    // A repeated receipt changes nothing; received supply cannot be cancelled.
    let again = s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{second_id}/receive")).await;
    assert_eq!((again.0, again.1["received"].clone()), (StatusCode::OK, json!(5)));
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-3").await.1["on_hand"], 5);
    assert_eq!(
        s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{second_id}/cancel")).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{first_id}/receive")).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(s.get("/v1/inventory/supply/sup_nope").await.0, StatusCode::NOT_FOUND);
    // The filled orders heard that nothing is expected for them any more.
    let last_commitment = |o: &Value| {
        o["timeline"].as_array().unwrap().iter().rev().find(|e| e["type"] == "order.supply_committed").unwrap().clone()
    };
    let p1 = s.get(&format!("/v1/orders/{}", ids[0])).await.1;
    assert_eq!(last_commitment(&p1)["data"]["expected"], json!([]));

    // The only supply of the SKU is cancelled: the order promised against it hears so.
    let (_, third) = s
        .post(
            "/v1/inventory/supply",
            json!({"node_id": "DC-WEST", "sku": "SKU-3", "quantity": 1, "eta": "2026-12-20T12:00:00Z"}),
        )
        .await;
    assert_eq!(expected(&s, &p4_id).await, [("DC-WEST".to_owned(), 1)]);
    s.post_empty(ADMIN_KEY, &format!("/v1/inventory/supply/{}/cancel", third["id"].as_str().unwrap())).await;
    assert_eq!(expected(&s, &p4_id).await, []);
    let p4 = s.get(&format!("/v1/orders/{p4_id}")).await.1;
    assert_eq!(last_commitment(&p4)["data"]["expected"], json!([]));

    // Supply's own events, with the node and the counts.
    s.settle_events().await;
    let events = s.get("/v1/events?after=0&limit=500").await.1;
    let supply_events: Vec<(String, String, i64)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("supply."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["node_id"].as_str().unwrap().to_owned(),
                e["data"]["received"].as_i64().unwrap(),
            )
        })
        .collect();
    let expect = |t: &str, n: &str, r: i64| (t.to_owned(), n.to_owned(), r);
    assert_eq!(
        supply_events,
        [
            expect("supply.expected", "DC-WEST", 0),
            expect("supply.expected", "DC-EAST", 0),
            expect("supply.cancelled", "DC-WEST", 0),
            expect("supply.received", "DC-EAST", 5),
            expect("supply.expected", "DC-WEST", 0),
            expect("supply.cancelled", "DC-WEST", 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preorders_are_promised_against_supply_and_filled_when_it_arrives_sqlite() {
    preorders_are_promised_against_supply_and_filled_when_it_arrives(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preorders_are_promised_against_supply_and_filled_when_it_arrives_postgres() {
    preorders_are_promised_against_supply_and_filled_when_it_arrives(Backend::Postgres).await;
}

/// A supply arriving in several receipts (day-one trial: a partial receipt closed the
/// supply and the rest was silently lost): receipts add up on hand, a retried receipt
/// with the same reference adds nothing, the units still expected keep promising
/// backorders, and the supply closes when all arrived — or when an operator closes it.
async fn receipts_of_a_supply_add_up_until_it_closes(backend: Backend) {
    let start: jiff::Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let Some(s) = TestServer::start_with(backend, Arc::new(FixedClock::new(start)), false).await else { return };
    s.seed().await;
    let mut ids = Vec::new();
    for (ext, q, promise) in [("R-1", 3, Some("2026-12-05")), ("R-2", 4, Some("2026-12-06"))] {
        let (status, o) = s.post("/v1/orders", preorder(ext, q, promise)).await;
        assert_eq!((status, o["status"].clone()), (StatusCode::CREATED, json!("backordered")), "{o}");
        ids.push(o["order_id"].as_str().unwrap().to_owned());
    }
    let body = json!({"node_id": "DC-EAST", "sku": "SKU-3", "quantity": 10, "eta": "2026-12-04T12:00:00Z"});
    let id = s.post("/v1/inventory/supply", body).await.1["id"].as_str().unwrap().to_owned();
    assert_eq!(supply_counts(&s, &id).await, ("expected".to_owned(), 7, 3, 0));

    // Four units arrive: R-1 (its supply's first promise) gets three, R-2 one; R-2's other
    // three units are promised again against the six still expected.
    let receive = |q: i64, reference: &str| json!({"quantity": q, "reference": reference});
    let (status, v) = s.post(&format!("/v1/inventory/supply/{id}/receive"), receive(4, "GRN-1")).await;
    assert_eq!(
        (status, v["status"].clone(), v["received"].clone()),
        (StatusCode::OK, json!("expected"), json!(4)),
        "{v}"
    );
    assert_eq!(s.get("/v1/inventory/DC-EAST/SKU-3").await.1["on_hand"], 4);
    assert_eq!(s.get(&format!("/v1/orders/{}", ids[0])).await.1["status"], "allocated");
    let r2 = s.get(&format!("/v1/orders/{}", ids[1])).await.1;
    assert_eq!(
        (r2["lines"][0]["allocated_quantity"].clone(), r2["lines"][0]["backordered_quantity"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(expected(&s, &ids[1]).await, [("DC-EAST".to_owned(), 3)]);
    assert_eq!(supply_counts(&s, &id).await, ("expected".to_owned(), 3, 3, 4));

    // The same receipt again (a retry): nothing more on hand.
    let (status, v) = s.post(&format!("/v1/inventory/supply/{id}/receive"), receive(4, "GRN-1")).await;
    assert_eq!((status, v["received"].clone()), (StatusCode::OK, json!(4)));
    let p = s.get("/v1/inventory/DC-EAST/SKU-3").await.1;
    assert_eq!((p["on_hand"].clone(), p["allocated"].clone()), (json!(4), json!(4)), "nothing more arrived: {p}");

    // Two more arrive, then nothing more will come: closing ends the supply as received.
    let (_, v) = s.post(&format!("/v1/inventory/supply/{id}/receive"), receive(2, "GRN-2")).await;
    assert_eq!((v["status"].clone(), v["received"].clone()), (json!("expected"), json!(6)));
    let (status, v) = s.post(&format!("/v1/inventory/supply/{id}/close"), json!(null)).await;
    assert_eq!((status, v["status"].clone(), v["received"].clone()), (StatusCode::OK, json!("received"), json!(6)));
    assert_eq!(expected(&s, &ids[1]).await, [], "no supply is left to promise R-2's last unit");
    let r2 = s.get(&format!("/v1/orders/{}", ids[1])).await.1;
    assert_eq!(
        (r2["lines"][0]["allocated_quantity"].clone(), r2["lines"][0]["backordered_quantity"].clone()),
        (json!(3), json!(1))
    );
    // A closed supply takes no receipt; one never received is cancelled, not closed.
    let (status, v) = s.post(&format!("/v1/inventory/supply/{id}/receive"), receive(1, "GRN-3")).await;
    assert_eq!((status, v["received"].clone()), (StatusCode::OK, json!(6)), "a repeat, changes nothing");
    let body = json!({"node_id": "DC-EAST", "sku": "SKU-3", "quantity": 5, "eta": "2026-12-09T12:00:00Z"});
    let other = s.post("/v1/inventory/supply", body).await.1["id"].as_str().unwrap().to_owned();
    assert_eq!(s.post(&format!("/v1/inventory/supply/{other}/close"), json!(null)).await.0, StatusCode::CONFLICT);
    assert_eq!(s.store.allocation_totals().await.unwrap().1, 6, "every unit that arrived is allocated, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_of_a_supply_add_up_until_it_closes_sqlite() {
    receipts_of_a_supply_add_up_until_it_closes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_of_a_supply_add_up_until_it_closes_postgres() {
    receipts_of_a_supply_add_up_until_it_closes(Backend::Postgres).await;
}
