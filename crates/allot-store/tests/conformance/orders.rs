//! Placement and an order's rows: writing an order with its stock in one statement (and
//! nothing at all when a position comes up short), taking stock all or nothing per
//! position, placing in one autocommit statement (PostgreSQL), and the updates fulfillment
//! makes to an order's lines, fulfillment orders, allocations and shipments.

use allot_store::{
    AtOnce, FulfillmentOrderRow, ShipmentRow, SourcingAttemptRow, Step, StockMove, Store, StoreError, StoredOrder,
};

use crate::conformance;
use crate::fixtures::{
    NOW, TODAY, another_page, backordered, event, line, network, node, node_id, order, place, placed_events, sku,
    stocked, stored, wants,
};
use crate::harness::{Backend, Db};

conformance!(
    an_inserted_order_reads_back_exactly_as_written,
    placing_takes_every_planned_position_with_the_order,
    a_short_position_rolls_the_whole_placement_back,
    a_placement_command_keeps_or_undoes_only_its_own_writes,
    a_repeated_external_id_is_refused_and_writes_nothing,
    placing_at_once_writes_the_order_and_takes_its_stock,
    placing_at_once_with_a_short_position_writes_nothing,
    placing_at_once_a_repeated_external_id_is_refused,
    taking_stock_is_all_or_nothing_per_position,
    fulfillment_changes_to_an_order_read_back_inside_and_after_the_transaction,
    a_line_whose_units_do_not_add_up_is_refused,
    allocation_totals_count_only_work_that_still_holds_stock,
    work_queries_see_released_unaccepted_and_disrupted_work,
    backordered_orders_come_oldest_promise_first_page_by_page,
);

/// Rows of every table an order writes, and its events.
async fn order_rows(db: &Db) -> [i64; 5] {
    let mut counts = [0; 5];
    for (i, table) in ["orders", "order_lines", "fulfillment_orders", "allocations", "events"].iter().enumerate() {
        counts[i] = db.rows(table).await;
    }
    counts
}

async fn an_inserted_order_reads_back_exactly_as_written(store: &Store) {
    network(store).await;
    let mut o = order(1, "web", &[line("SKU-1", 2, "DC-1"), line("SKU-2", 1, "STORE-1"), backordered("SKU-3", 4)]);
    // Every optional field set, so a column written to the wrong place shows.
    o.holds = vec!["fraud_review".to_owned(), "payment".to_owned()];
    o.status = "on_hold".to_owned();
    o.lines[0].promised_date = Some("2025-06-18".to_owned());
    o.lines[1].promised_ready_at_ms = Some(NOW + 3_600_000);
    for fo in &mut o.fulfillment_orders {
        (fo.status, fo.released_at_ms) = ("created".to_owned(), None);
    }
    o.fulfillment_orders[1].kind = "pickup".to_owned();
    o.fulfillment_orders[0].due_date = "2025-06-18".to_owned();
    let events = placed_events(&o, 1);
    let mut tx = store.begin().await.unwrap();
    tx.insert_order(&o, &events).await.unwrap();
    assert_eq!(tx.order(&o.order_id).await.unwrap().as_ref(), Some(&o), "the transaction reads its own write");
    tx.commit().await.unwrap();

    assert_eq!(store.order(&o.order_id).await.unwrap(), Some(o.clone()));
    assert_eq!(store.order_ref("web", "EXT-1").await.unwrap(), Some((o.order_id.clone(), o.request_hash.clone())));
    assert_eq!(store.order_ref("app", "EXT-1").await.unwrap(), None);
    let timeline = store.order_events(&o.order_id).await.unwrap();
    let written: Vec<(&str, &str)> = events.iter().map(|e| (e.event_id.as_str(), e.event_type.as_str())).collect();
    let read: Vec<(&str, &str)> = timeline.iter().map(|e| (e.event_id.as_str(), e.event_type.as_str())).collect();
    assert_eq!(read, written, "events in the order given");
    assert_eq!(store.order("ord_missing").await.unwrap(), None);
}

async fn placing_takes_every_planned_position_with_the_order(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-2", 3)]).await;
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1"), line("SKU-2", 3, "DC-2")]);
    let mut tx = db.begin().await.unwrap();
    let mut taken = tx.insert_order_taking(&o, &placed_events(&o, 1), &wants(&o), NOW).await.unwrap();
    tx.commit().await.unwrap();
    taken.sort_by(|a, b| a.position.node_id.cmp(&b.position.node_id));
    let allocated: Vec<u64> = taken.iter().map(|p| p.position.counts.allocated.get()).collect();
    assert_eq!(allocated, [4, 3], "the answer is each position after the take");
    assert_eq!(stored(db, "DC-1", "SKU-1").await, taken[0]);
    assert_eq!(stored(db, "DC-2", "SKU-2").await, taken[1]);
    assert_eq!(db.order(&o.order_id).await.unwrap(), Some(o));
    assert_eq!(order_rows(db).await, [1, 2, 2, 2, 2]);
    assert_eq!(db.allocation_totals().await.unwrap(), (7, 7));
}

async fn a_short_position_rolls_the_whole_placement_back(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-2", 2)]).await;
    let before = db.positions().await.unwrap();
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1"), line("SKU-2", 3, "DC-2")]);
    let mut tx = db.begin().await.unwrap();
    let taken = tx.insert_order_taking(&o, &placed_events(&o, 1), &wants(&o), NOW).await.unwrap();
    // DC-2 holds 2 of the 3 units planned: it is missing from the answer, and the caller
    // rolls back (the order's rows assumed every unit).
    let keys: Vec<String> = taken.iter().map(|p| p.position.node_id.to_string()).collect();
    assert_eq!(keys, ["DC-1"]);
    tx.rollback().await.unwrap();
    assert_eq!(order_rows(db).await, [0; 5], "no order, line, fulfillment order, allocation or event");
    assert_eq!(db.positions().await.unwrap(), before, "no stock taken, no version bumped");
    assert_eq!(db.allocation_totals().await.unwrap(), (0, 0));
}

async fn a_placement_command_keeps_or_undoes_only_its_own_writes(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-2", 2)]).await;
    let fits = order(1, "web", &[line("SKU-1", 4, "DC-1")]);
    let short = order(2, "web", &[line("SKU-1", 1, "DC-1"), line("SKU-2", 3, "DC-2")]);
    let fits_too = order(3, "web", &[line("SKU-1", 5, "DC-1")]);
    // Through `Store::write`, as placement runs: on SQLite commands share a group-committed
    // transaction, each in its own savepoint (opened by the order statement itself).
    let command = |o: StoredOrder, first: u64| {
        let store = db.store.clone();
        async move {
            store
                .write(move |tx| {
                    Box::pin(async move {
                        let wants = wants(&o);
                        let taken = tx.insert_order_taking(&o, &placed_events(&o, first), &wants, NOW).await?;
                        Ok::<_, StoreError>(if taken.len() == wants.len() {
                            Step::Commit(true)
                        } else {
                            Step::Rollback(false)
                        })
                    })
                })
                .await
        }
    };
    let (a, b, c) = tokio::join!(command(fits.clone(), 1), command(short.clone(), 3), command(fits_too.clone(), 5));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (true, false, true));
    assert_eq!(db.order(&fits.order_id).await.unwrap(), Some(fits));
    assert_eq!(db.order(&short.order_id).await.unwrap(), None);
    assert_eq!(db.order(&fits_too.order_id).await.unwrap(), Some(fits_too));
    assert_eq!(order_rows(db).await, [2, 2, 2, 2, 4]);
    assert_eq!(stored(db, "DC-1", "SKU-1").await.position.counts.allocated.get(), 9);
    assert_eq!(stored(db, "DC-2", "SKU-2").await.position.counts.allocated.get(), 0);
    assert_eq!(db.allocation_totals().await.unwrap(), (9, 9));
}

async fn a_repeated_external_id_is_refused_and_writes_nothing(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10)]).await;
    let first = order(1, "web", &[line("SKU-1", 2, "DC-1")]);
    place(db, &first, 1).await;
    let (rows, position) = (order_rows(db).await, stored(db, "DC-1", "SKU-1").await);
    let mut again = order(2, "web", &[line("SKU-1", 3, "DC-1")]);
    again.external_id = first.external_id.clone();
    let mut tx = db.begin().await.unwrap();
    let e = tx.insert_order_taking(&again, &placed_events(&again, 3), &wants(&again), NOW).await.unwrap_err();
    assert!(e.is_unique_violation(), "{e:?}");
    tx.rollback().await.unwrap();
    assert_eq!(order_rows(db).await, rows);
    assert_eq!(stored(db, "DC-1", "SKU-1").await, position);
    // The same external id on another channel is another order.
    let mut other = again.clone();
    other.channel = "app".to_owned();
    place(db, &other, 3).await;
    assert_eq!(db.rows("orders").await, 2);
}

/// Places `o` at once and answers what happened; SQLite has no one-statement placement
/// (its orders go through the group writer) and refuses without writing.
async fn at_once(db: &Db, o: &StoredOrder, first_event: u64) -> Option<Result<AtOnce, StoreError>> {
    let placed = db.place_order_at_once(o, &placed_events(o, first_event), &wants(o), NOW, || "{}".to_owned()).await;
    if db.backend() == Backend::Sqlite {
        assert!(matches!(placed, Err(StoreError::BadConfig(_))), "{placed:?}");
        assert_eq!(order_rows(db).await, [0; 5]);
        return None;
    }
    Some(placed)
}

async fn placing_at_once_writes_the_order_and_takes_its_stock(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-2", 3)]).await;
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1"), line("SKU-2", 3, "DC-2"), backordered("SKU-3", 2)]);
    let Some(placed) = at_once(db, &o, 1).await else { return };
    let AtOnce::Placed(mut taken) = placed.unwrap() else { panic!("every position covers its units") };
    taken.sort_by(|a, b| a.position.node_id.cmp(&b.position.node_id));
    assert_eq!(taken, [stored(db, "DC-1", "SKU-1").await, stored(db, "DC-2", "SKU-2").await]);
    assert_eq!(taken[0].position.counts.allocated.get(), 4);
    assert_eq!(db.order(&o.order_id).await.unwrap(), Some(o.clone()));
    assert_eq!(db.order_events(&o.order_id).await.unwrap().len(), 2);
    assert_eq!(db.allocation_totals().await.unwrap(), (7, 7));
}

async fn placing_at_once_with_a_short_position_writes_nothing(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-2", 2)]).await;
    let before = db.positions().await.unwrap();
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1"), line("SKU-2", 3, "DC-2")]);
    let Some(placed) = at_once(db, &o, 1).await else { return };
    assert!(matches!(placed.unwrap(), AtOnce::Short));
    assert_eq!(order_rows(db).await, [0; 5]);
    assert_eq!(db.positions().await.unwrap(), before, "the units DC-1 covered are not taken either");
    // A position never stocked is short too.
    let o = order(2, "web", &[line("SKU-4", 1, "DC-1")]);
    assert!(matches!(at_once(db, &o, 3).await.unwrap().unwrap(), AtOnce::Short));
    assert_eq!(order_rows(db).await, [0; 5]);
}

async fn placing_at_once_a_repeated_external_id_is_refused(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10)]).await;
    let first = order(1, "web", &[line("SKU-1", 2, "DC-1")]);
    let Some(placed) = at_once(db, &first, 1).await else { return };
    assert!(matches!(placed.unwrap(), AtOnce::Placed(_)));
    let mut again = order(2, "web", &[line("SKU-1", 3, "DC-1")]);
    again.external_id = first.external_id.clone();
    let e = at_once(db, &again, 3).await.unwrap().unwrap_err();
    assert!(e.is_unique_violation(), "{e:?}");
    assert_eq!(order_rows(db).await, [1, 1, 1, 1, 2]);
    assert_eq!(stored(db, "DC-1", "SKU-1").await.position.counts.allocated.get(), 2);
}

async fn taking_stock_is_all_or_nothing_per_position(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 5), ("DC-2", "SKU-1", 4)]).await;
    // DC-2 has 4 on hand but 2 reserved: ATP 2.
    let mut tx = db.begin().await.unwrap();
    tx.move_stock(StockMove::Reserve, &node_id("DC-2"), &sku("SKU-1"), 2, NOW).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    let before_dc2 = stored(db, "DC-2", "SKU-1").await;
    let wants = [
        ((node_id("DC-1"), sku("SKU-1")), 5), // exactly ATP
        ((node_id("DC-2"), sku("SKU-1")), 3), // one more than ATP
        ((node_id("DC-2"), sku("SKU-2")), 1), // no position
    ]
    .into_iter()
    .collect();
    let mut tx = db.begin().await.unwrap();
    let taken = tx.allocate_many(&wants, NOW + 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].position.node_id.as_str(), taken[0].position.counts.allocated.get()), ("DC-1", 5));
    assert_eq!(stored(db, "DC-1", "SKU-1").await, taken[0]);
    assert_eq!(stored(db, "DC-2", "SKU-1").await, before_dc2, "a short position takes nothing");
    assert_eq!(db.rows("positions").await, 2, "taking never creates a position");
    // Nothing wanted: nothing taken.
    let mut tx = db.begin().await.unwrap();
    assert!(tx.allocate_many(&Default::default(), NOW).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn fulfillment_changes_to_an_order_read_back_inside_and_after_the_transaction(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-1", "SKU-2", 10)]).await;
    let placed = order(1, "web", &[line("SKU-1", 4, "DC-1"), line("SKU-2", 2, "DC-1")]);
    place(store, &placed, 1).await;
    let id = placed.order_id.clone();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.lock_order(&id).await.unwrap());
    assert!(!tx.lock_order("ord_missing").await.unwrap());
    let fo1 = placed.fulfillment_orders[0].fulfillment_order_id.clone();
    assert_eq!(tx.fulfillment_order_owner(&fo1).await.unwrap(), Some((id.clone(), "DC-1".to_owned())));
    assert_eq!(tx.fulfillment_order_owner("fo_missing").await.unwrap(), None);

    // The customer cancels one unit of line 1.
    let mut expected = placed.clone();
    expected.lines[0].allocated = 3;
    expected.lines[0].cancelled = 1;
    expected.allocations[0].quantity = 3;
    tx.insert_cancellation(&id, "1", 1, "customer_request", NOW + 10).await.unwrap();
    // DC-1 picks line 2 one unit short; the unit is re-sourced to DC-2 (attempt 2).
    expected.allocations[1].picked = Some(1);
    expected.allocations[1].short = 1;
    expected.allocations[1].quantity = 1;
    expected.allocations[0].picked = Some(3);
    let attempt = SourcingAttemptRow {
        attempt: 2,
        reason: "short_pick".to_owned(),
        failed_node_id: Some("DC-1".to_owned()),
        fulfillment_order_id: Some(fo1.clone()),
        decision: r#"{"moved":[{"line_id":"2","units":1,"to":"DC-2"}]}"#.to_owned(),
        at_ms: NOW + 20,
    };
    let fo2 = FulfillmentOrderRow {
        fulfillment_order_id: format!("{fo1}_2"),
        node_id: "DC-2".to_owned(),
        attempt: 2,
        created_at_ms: NOW + 20,
        released_at_ms: Some(NOW + 20),
        updated_at_ms: NOW + 20,
        due_date: "2025-06-16".to_owned(),
        ..placed.fulfillment_orders[0].clone()
    };
    let mut moved = expected.allocations[1].clone();
    (moved.node_id, moved.fulfillment_order_id, moved.quantity, moved.picked, moved.short) =
        ("DC-2".to_owned(), fo2.fulfillment_order_id.clone(), 1, None, 0);
    tx.insert_sourcing_attempt(&id, &attempt).await.unwrap();
    tx.insert_fulfillment_orders(&id, std::slice::from_ref(&fo2), std::slice::from_ref(&moved)).await.unwrap();
    expected.attempts.push(attempt);
    expected.fulfillment_orders.push(fo2);
    expected.allocations.push(moved);
    // DC-1 ships what it picked: line 1's 3 units and line 2's 1.
    let shipment = ShipmentRow {
        shipment_id: "shp_1".to_owned(),
        fulfillment_order_id: fo1.clone(),
        order_id: id.clone(),
        node_id: "DC-1".to_owned(),
        carrier: "ups".to_owned(),
        tracking_number: "1Z999".to_owned(),
        status: "shipped".to_owned(),
        lines: r#"[{"line_id":"1","quantity":3},{"line_id":"2","quantity":1}]"#.to_owned(),
        detail: None,
        shipped_at_ms: NOW + 30,
        delivered_at_ms: None,
        updated_at_ms: NOW + 30,
    };
    tx.insert_shipment(&shipment).await.unwrap();
    expected.allocations[0].shipped = 3;
    expected.allocations[1].shipped = 1;
    (expected.lines[0].shipped, expected.lines[0].status) = (3, "shipped".to_owned());
    (expected.lines[1].shipped, expected.lines[1].status) = (1, "partially_shipped".to_owned());
    let fo = &mut expected.fulfillment_orders[0];
    (fo.status, fo.updated_at_ms) = ("shipped".to_owned(), NOW + 30);
    // The carrier delivers; the sweep marks line 1 on track and upgrades line 2.
    let mut delivered = shipment.clone();
    (delivered.status, delivered.detail, delivered.delivered_at_ms, delivered.updated_at_ms) =
        ("delivered".to_owned(), Some("front door".to_owned()), Some(NOW + 40), NOW + 40);
    tx.update_shipment(&delivered).await.unwrap();
    expected.shipments.push(delivered);
    expected.lines[0].delivered = 3;
    expected.lines[0].status = "delivered".to_owned();
    expected.lines[0].jeopardy = Some("on_track".to_owned());
    expected.lines[1].upgraded_service_level = Some("express".to_owned());
    expected.status = "partially_shipped".to_owned();
    expected.holds = vec!["address_check".to_owned()];
    for l in &expected.lines {
        tx.update_line(&id, l).await.unwrap();
    }
    for a in &expected.allocations {
        tx.update_allocation(a).await.unwrap();
    }
    tx.update_fulfillment_order(&expected.fulfillment_orders[0]).await.unwrap();
    tx.set_line_jeopardy(&id, "1", "on_track").await.unwrap();
    tx.set_line_service_upgrade(&id, "2", "express").await.unwrap();
    tx.update_order(&id, &expected.status, &expected.holds).await.unwrap();
    assert_eq!(tx.shipment_owner("1Z999").await.unwrap(), Some(id.clone()));
    assert_eq!(tx.shipment_owner("1Z000").await.unwrap(), None);
    expected.sort_parts();
    assert_eq!(tx.order(&id).await.unwrap().as_ref(), Some(&expected), "read inside the transaction");
    tx.commit().await.unwrap();
    assert_eq!(store.order(&id).await.unwrap(), Some(expected.clone()), "read after the commit");
    assert_eq!(store.fulfillment_order_owner(&fo1).await.unwrap(), Some((id, "DC-1".to_owned())));
}

async fn a_line_whose_units_do_not_add_up_is_refused(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10)]).await;
    let o = order(1, "web", &[line("SKU-1", 4, "DC-1")]);
    place(store, &o, 1).await;
    let good = o.lines[0].clone();
    let mut cases = Vec::new();
    let mut l = good.clone();
    l.allocated = 3; // 3 + 0 + 0 + 0 ≠ 4
    cases.push(("units lost", l));
    let mut l = good.clone();
    l.backordered = 1; // 4 + 1 ≠ 4
    cases.push(("units made up", l));
    let mut l = good.clone();
    l.shipped = 5; // shipped > allocated
    cases.push(("shipped beyond allocated", l));
    let mut l = good.clone();
    (l.shipped, l.delivered) = (1, 2); // delivered > shipped
    cases.push(("delivered beyond shipped", l));
    let mut l = good.clone();
    l.status = "teleported".to_owned();
    cases.push(("unknown status", l));
    for (case, l) in cases {
        let mut tx = store.begin().await.unwrap();
        assert!(tx.update_line(&o.order_id, &l).await.is_err(), "{case}: {l:?}");
        tx.rollback().await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    assert!(tx.set_line_jeopardy(&o.order_id, "1", "doomed").await.is_err(), "jeopardy is a closed set");
    tx.rollback().await.unwrap();
    assert_eq!(store.order(&o.order_id).await.unwrap(), Some(o));
}

async fn allocation_totals_count_only_work_that_still_holds_stock(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-1", 10)]).await;
    let kept = order(1, "web", &[line("SKU-1", 3, "DC-1")]);
    let rejected = order(2, "web", &[line("SKU-1", 5, "DC-2")]);
    place(store, &kept, 1).await;
    place(store, &rejected, 3).await;
    assert_eq!(store.allocation_totals().await.unwrap(), (8, 8));
    // DC-2 rejects: its work no longer holds stock, so until the units are released the
    // two sums disagree — which is what the check is for.
    let mut fo = rejected.fulfillment_orders[0].clone();
    (fo.status, fo.reason, fo.updated_at_ms) = ("rejected".to_owned(), Some("damaged".to_owned()), NOW + 5);
    let mut tx = store.begin().await.unwrap();
    tx.update_fulfillment_order(&fo).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.allocation_totals().await.unwrap(), (3, 8));
    let mut tx = store.begin().await.unwrap();
    tx.move_stock(StockMove::Release, &node_id("DC-2"), &sku("SKU-1"), 5, NOW + 5).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.allocation_totals().await.unwrap(), (3, 3));
}

async fn work_queries_see_released_unaccepted_and_disrupted_work(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 50), ("DC-2", "SKU-1", 50), ("DC-2", "SKU-2", 50)]).await;
    let first = order(1, "web", &[line("SKU-1", 2, "DC-1"), line("SKU-2", 3, "DC-2")]);
    let mut second = order(2, "web", &[line("SKU-1", 1, "DC-2")]);
    second.lines[0].promised_date = Some(TODAY.to_owned());
    let mut third = order(3, "web", &[line("SKU-1", 4, "DC-1")]);
    for fo in &mut third.fulfillment_orders {
        (fo.status, fo.updated_at_ms) = ("accepted".to_owned(), NOW + 3);
    }
    for (i, o) in [&first, &second, &third].into_iter().enumerate() {
        place(store, o, 10 * i as u64).await;
    }
    let fo_of = |o: &StoredOrder, node: &str| {
        o.fulfillment_orders.iter().find(|f| f.node_id == node).unwrap().fulfillment_order_id.clone()
    };
    // Released before NOW + 3 and not accepted: the first two orders' work, oldest first.
    let waiting = store.unaccepted_fulfillment_orders(NOW + 3, 10).await.unwrap();
    assert_eq!(waiting.len(), 3);
    assert_eq!(waiting[2], fo_of(&second, "DC-2"));
    assert_eq!(store.unaccepted_fulfillment_orders(NOW + 2, 10).await.unwrap().len(), 2);
    assert_eq!(store.unaccepted_fulfillment_orders(NOW + 3, 1).await.unwrap().len(), 1, "at most the limit");
    let mut open = store.open_work_by_node().await.unwrap();
    open.sort();
    assert_eq!(open, [("DC-1".to_owned(), 2), ("DC-2".to_owned(), 2)]);
    // Work made since NOW + 2 from the second order's fulfillment order on, with its units.
    let assigned = store.assigned_work(&fo_of(&second, "DC-2"), NOW + 2).await.unwrap();
    let mut assigned: Vec<(String, i64)> = assigned.into_iter().map(|w| (w.node_id, w.units)).collect();
    assigned.sort();
    assert_eq!(assigned, [("DC-1".to_owned(), 4), ("DC-2".to_owned(), 1)]);
    assert_eq!(store.same_day_work("DC-2", TODAY, NOW).await.unwrap(), 1);
    assert_eq!(store.same_day_work("DC-2", TODAY, NOW + 3).await.unwrap(), 0, "made before the day began");
    assert_eq!(store.same_day_work("DC-1", TODAY, NOW).await.unwrap(), 0, "nothing promised today there");
    // DC-1 pauses: its released and accepted work may move; DC-2's stays.
    assert!(store.disrupted_fulfillment_orders(10).await.unwrap().is_empty());
    let mut paused = node("DC-1");
    paused.status = allot_core::NodeStatus::Paused;
    let mut tx = store.begin().await.unwrap();
    tx.put_node(&paused, NOW + 4).await.unwrap();
    tx.commit().await.unwrap();
    let disrupted = store.disrupted_fulfillment_orders(10).await.unwrap();
    let expected = [(fo_of(&first, "DC-1"), "paused".to_owned()), (fo_of(&third, "DC-1"), "paused".to_owned())];
    assert_eq!(disrupted, expected);
}

async fn backordered_orders_come_oldest_promise_first_page_by_page(store: &Store) {
    network(store).await;
    assert!(!store.has_backorders().await.unwrap());
    // Promise dates, including none (served after every promised one).
    let promises = [Some("2025-07-02"), None, Some("2025-07-01"), Some("2025-07-02"), None, Some("2025-06-30")];
    let mut orders = Vec::new();
    for (i, promise) in promises.iter().enumerate() {
        let mut o = order(i as u64 + 1, "web", &[backordered("SKU-1", 1), backordered("SKU-2", 1)]);
        o.lines[0].promised_date = promise.map(str::to_owned);
        let mut tx = store.begin().await.unwrap();
        tx.insert_order(&o, &[event(i as u64, "order.created", Some(&o))]).await.unwrap();
        tx.commit().await.unwrap();
        orders.push(o);
    }
    // Another SKU's backorders are not in the SKU-3 queue.
    let other = order(9, "web", &[backordered("SKU-3", 1)]);
    let mut tx = store.begin().await.unwrap();
    tx.insert_order(&other, &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.has_backorders().await.unwrap());

    let expected: Vec<usize> = vec![5, 2, 0, 3, 1, 4]; // 06-30, 07-01, 07-02 (×2 by id), none (×2 by id)
    let skus = ["SKU-1".to_owned(), "SKU-4".to_owned()];
    let mut seen = Vec::new();
    let mut after: Option<(Option<String>, String)> = None;
    let mut pages = 0;
    loop {
        another_page(&mut pages);
        let page = store.backordered_orders(&skus, after.as_ref(), 4).await.unwrap();
        let Some((last_id, last_key)) = page.last().cloned() else { break };
        assert!(page.len() <= 4);
        seen.extend(page.into_iter().map(|(id, _)| id));
        after = Some((last_key, last_id));
    }
    let want: Vec<String> = expected.iter().map(|i| orders[*i].order_id.clone()).collect();
    assert_eq!(seen, want, "each order once, oldest promise first, unpromised last");

    // The jeopardy sweep's pages: orders with a promised line, in id order.
    let promised = store.promised_open_orders("", 10).await.unwrap();
    let want: Vec<String> = [0, 2, 3, 5].iter().map(|i| orders[*i].order_id.clone()).collect();
    assert_eq!(promised, want);
    assert_eq!(store.promised_open_orders(&orders[2].order_id, 1).await.unwrap(), [orders[3].order_id.clone()]);
}
