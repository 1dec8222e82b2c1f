//! The rest of the interface: nodes and items, API keys, policy versions, promise
//! documents, delivery observations, and change notes between servers.

use std::time::Duration;

use allot_store::{DeliveryObservation, DocumentKind, FeedEvent, LaneCount, ShipmentRow, Store, StoredPolicy};

use crate::conformance;
use crate::fixtures::{NOW, item, line, network, node, node_id, order, place, sku, stocked};
use crate::harness::Db;

conformance!(
    nodes_and_items_read_back_with_a_new_version_on_each_write,
    api_keys_are_found_by_their_digest,
    policies_keep_every_version_and_one_active,
    documents_get_a_new_version_on_each_write,
    delivery_observations_add_up_per_lane,
    change_notes_reach_listeners_only_when_committed,
);

async fn nodes_and_items_read_back_with_a_new_version_on_each_write(store: &Store) {
    network(store).await;
    let mut changed = node("DC-2");
    changed.name = "Second DC".to_owned();
    changed.capacity.orders_per_day = None;
    changed.status = allot_core::NodeStatus::Closed;
    let mut plain = item("SKU-2");
    (plain.dims_mm, plain.hazmat, plain.ship_alone) = (None, true, true);
    plain.substitutes = vec![sku("SKU-3"), sku("SKU-1")];
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.put_node(&changed, NOW + 1).await.unwrap(), 2);
    assert_eq!(tx.put_item(&plain, NOW + 1).await.unwrap(), 2);
    let read = tx.node(&node_id("DC-2")).await.unwrap().unwrap();
    assert_eq!((read.node, read.version), (changed.clone(), 2));
    assert_eq!(tx.node(&node_id("DC-9")).await.unwrap(), None);
    tx.commit().await.unwrap();
    let nodes = store.nodes().await.unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n.node.id.as_str()).collect();
    assert_eq!(ids, ["DC-1", "DC-2", "STORE-1"]);
    assert_eq!((nodes[1].node.clone(), nodes[1].version), (changed, 2));
    assert_eq!((nodes[0].node.clone(), nodes[0].version), (node("DC-1"), 1));
    let read = store.item(&sku("SKU-2")).await.unwrap().unwrap();
    assert_eq!((read.item, read.version), (plain, 2));
    assert_eq!(store.items().await.unwrap().len(), 4);
    assert_eq!(store.item(&sku("SKU-9")).await.unwrap(), None);
}

async fn api_keys_are_found_by_their_digest(store: &Store) {
    let digest = |c: char| c.to_string().repeat(64);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.key_count().await.unwrap(), 0);
    tx.insert_key("key_1", &digest('a'), "admin", NOW).await.unwrap();
    tx.insert_key("key_2", &digest('b'), "channel:web", NOW).await.unwrap();
    assert_eq!(tx.key_count().await.unwrap(), 2);
    tx.commit().await.unwrap();
    let found = store.key_by_digest(&digest('b')).await.unwrap().unwrap();
    assert_eq!((found.key_id.as_str(), found.role.as_str()), ("key_2", "channel:web"));
    assert_eq!(store.key_by_digest(&digest('c')).await.unwrap(), None);
    for (id, d, role) in
        [("key_3", digest('a'), "admin"), ("key_4", digest('d'), "root"), ("key_5", "short".to_owned(), "admin")]
    {
        let mut tx = store.begin().await.unwrap();
        assert!(tx.insert_key(id, &d, role, NOW).await.is_err(), "{id}: a taken digest, an unknown role, a bad digest");
        tx.rollback().await.unwrap();
    }
}

fn policy(name: &str, version: i64) -> StoredPolicy {
    StoredPolicy {
        name: name.to_owned(),
        version,
        document: format!(r#"{{"name":"{name}","version":{version}}}"#),
        hash: format!("{version:064x}"),
        created_at_ms: NOW + version,
    }
}

async fn policies_keep_every_version_and_one_active(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.lock_latest_policy("default").await.unwrap(), None);
    for p in [policy("default", 1), policy("default", 2), policy("fast", 1)] {
        tx.insert_policy(&p).await.unwrap();
    }
    assert_eq!(tx.lock_latest_policy("default").await.unwrap(), Some(policy("default", 2)));
    assert_eq!(tx.policy_version("default", 1).await.unwrap(), Some(policy("default", 1)));
    tx.set_active_policy("default", 1, NOW).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.policy("default", None).await.unwrap(), Some(policy("default", 2)), "latest");
    assert_eq!(store.policy("default", Some(1)).await.unwrap(), Some(policy("default", 1)));
    assert_eq!(store.policy("default", Some(3)).await.unwrap(), None);
    assert_eq!(store.latest_policies().await.unwrap(), [policy("default", 2), policy("fast", 1)]);
    assert_eq!(store.active_policy().await.unwrap(), Some(("default".to_owned(), 1)));
    let mut tx = store.begin().await.unwrap();
    tx.set_active_policy("fast", 1, NOW + 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.active_policy().await.unwrap(), Some(("fast".to_owned(), 1)), "one active policy");
    // A version is written once, and only a stored version can be active.
    for attempt in 0..2 {
        let mut tx = store.begin().await.unwrap();
        let refused = match attempt {
            0 => tx.insert_policy(&policy("default", 2)).await,
            _ => tx.set_active_policy("fast", 2, NOW).await,
        };
        assert!(refused.is_err(), "attempt {attempt}");
        tx.rollback().await.unwrap();
    }
}

async fn documents_get_a_new_version_on_each_write(store: &Store) {
    network(store).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.put_document(DocumentKind::Carrier, "ups", r#"{"v":1}"#, NOW).await.unwrap(), 1);
    assert_eq!(tx.put_document(DocumentKind::Carrier, "fedex", r#"{"v":1}"#, NOW).await.unwrap(), 1);
    assert_eq!(tx.put_document(DocumentKind::Carrier, "ups", r#"{"v":2}"#, NOW + 1).await.unwrap(), 2);
    assert_eq!(tx.put_document(DocumentKind::NodeCalendar, "DC-1", r#"{"open":"08:00"}"#, NOW).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let carriers = store.documents(DocumentKind::Carrier).await.unwrap();
    let seen: Vec<(&str, &str, i64, i64)> =
        carriers.iter().map(|d| (d.id.as_str(), d.document.as_str(), d.version, d.updated_at_ms)).collect();
    assert_eq!(seen, [("fedex", r#"{"v":1}"#, 1, NOW), ("ups", r#"{"v":2}"#, 2, NOW + 1)]);
    assert_eq!(store.documents(DocumentKind::NodeCalendar).await.unwrap().len(), 1);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.put_document(DocumentKind::NodeCalendar, "DC-9", "{}", NOW).await.is_err(), "an unknown node");
    tx.rollback().await.unwrap();
}

async fn delivery_observations_add_up_per_lane(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10)]).await;
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1")]);
    place(db, &o, 1).await;
    let fo = o.fulfillment_orders[0].fulfillment_order_id.clone();
    // (shipment, region, transit days, days late, delivered at)
    let deliveries = [
        ("s1", "NY", 2, Some(0), NOW),
        ("s2", "NY", 3, Some(1), NOW + 1),
        ("s3", "NY", 2, None, NOW + 2),
        ("s4", "CA", 5, Some(-1), NOW + 3),
    ];
    let mut tx = db.begin().await.unwrap();
    for (id, region, transit, late, at) in deliveries {
        tx.insert_shipment(&ShipmentRow {
            shipment_id: id.to_owned(),
            fulfillment_order_id: fo.clone(),
            order_id: o.order_id.clone(),
            node_id: "DC-1".to_owned(),
            carrier: "ups".to_owned(),
            tracking_number: format!("1Z{id}"),
            status: "delivered".to_owned(),
            lines: r#"[{"line_id":"1","quantity":1}]"#.to_owned(),
            detail: None,
            shipped_at_ms: NOW - 5,
            delivered_at_ms: Some(at),
            updated_at_ms: at,
        })
        .await
        .unwrap();
        let observation = DeliveryObservation {
            shipment_id: id.to_owned(),
            order_id: o.order_id.clone(),
            node_id: "DC-1".to_owned(),
            region: region.to_owned(),
            carrier_service: "ups:ground".to_owned(),
            shipped_at_ms: NOW - 5,
            delivered_at_ms: at,
            transit_days: transit,
            promised_date: late.map(|_| "2025-06-15".to_owned()),
            days_late: late,
        };
        tx.insert_delivery_observation(&observation).await.unwrap();
        // A repeated scan records nothing new.
        tx.insert_delivery_observation(&DeliveryObservation { transit_days: 9, ..observation }).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(db.rows("delivery_observations").await, 4);
    let lane = |region: &str, value: i64, deliveries: i64| LaneCount {
        node_id: "DC-1".to_owned(),
        region: region.to_owned(),
        carrier_service: "ups:ground".to_owned(),
        value,
        deliveries,
    };
    let transit = db.transit_histogram(NOW, NOW + 4).await.unwrap();
    assert_eq!(transit, [lane("CA", 5, 1), lane("NY", 2, 2), lane("NY", 3, 1)]);
    let lateness = db.lateness_histogram(NOW, NOW + 4).await.unwrap();
    assert_eq!(lateness, [lane("CA", -1, 1), lane("NY", 0, 1), lane("NY", 1, 1)], "unpromised deliveries left out");
    let window = db.transit_histogram(NOW + 1, NOW + 3).await.unwrap();
    assert_eq!(window, [lane("NY", 2, 1), lane("NY", 3, 1)], "from inclusive, to exclusive");
}

async fn change_notes_reach_listeners_only_when_committed(store: &Store) {
    let Some(mut feed) = store.change_feed().await.unwrap() else {
        // SQLite: one server per file, nobody to tell; notes are no-ops, never even built.
        let mut tx = store.begin().await.unwrap();
        tx.notify_change(|| unreachable!("a note is built on SQLite")).await.unwrap();
        tx.notify_change_reusing_plans(|| unreachable!("a note is built on SQLite")).await.unwrap();
        tx.commit().await.unwrap();
        return;
    };
    // Other tests share the database's notification channel: notes carry this run's mark.
    let mark = format!("conformance-{}-{NOW}", std::process::id());
    let mut tx = store.begin().await.unwrap();
    tx.notify_change(|| format!("{mark}-rolled-back")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.notify_change_reusing_plans(|| format!("{mark}-committed")).await.unwrap();
    tx.commit().await.unwrap();
    let mine = async {
        loop {
            match feed.next().await {
                FeedEvent::Change(note) if note.starts_with(&mark) => return note,
                FeedEvent::Closed => panic!("the feed closed"),
                _ => {}
            }
        }
    };
    let note = tokio::time::timeout(Duration::from_secs(10), mine).await.expect("the committed note arrives");
    assert_eq!(note, format!("{mark}-committed"), "the rolled-back note is never delivered");
}
