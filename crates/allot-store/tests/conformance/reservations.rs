//! Checkout reservations: stored with their lines, stock reserved through guarded moves,
//! closed exactly once, and found when due.

use std::time::Duration;

use allot_store::{ReservationLineRow, StockMove, Store, StoredReservation};

use crate::conformance;
use crate::fixtures::{NOW, node_id, sku, stocked, stored};
use crate::harness::Db;

conformance!(
    a_reservation_reads_back_with_its_lines,
    reserved_units_match_the_positions_reserved_counts,
    a_reservation_closes_once,
    a_closed_reservation_says_how_it_ended,
    due_reservations_are_the_active_ones_past_their_expiry,
);
conformance!(postgres_only: two_sweeps_never_expire_the_same_reservation);

const TTL: i64 = 15 * 60_000;

fn reservation(n: u64, lines: &[(&str, &str, i64)]) -> StoredReservation {
    StoredReservation {
        reservation_id: format!("res_{n:032x}"),
        owner: "web".to_owned(),
        status: "active".to_owned(),
        expires_at_ms: NOW + TTL + n as i64,
        created_at_ms: NOW + n as i64,
        closed_at_ms: None,
        order_id: None,
        lines: lines
            .iter()
            .map(|(node, sku, quantity)| ReservationLineRow {
                node_id: (*node).to_owned(),
                sku: (*sku).to_owned(),
                quantity: *quantity,
            })
            .collect(),
    }
}

/// Writes `r` and reserves its units, as `App::reserve` does; panics if one is short.
async fn reserve(store: &Store, r: &StoredReservation) {
    let mut tx = store.begin().await.unwrap();
    for l in &r.lines {
        let (node, sku) = (node_id(&l.node_id), sku(&l.sku));
        let moved = tx.move_stock(StockMove::Reserve, &node, &sku, l.quantity as u64, NOW).await.unwrap();
        moved.expect("ATP covers the reservation");
    }
    tx.insert_reservation(r).await.unwrap();
    tx.commit().await.unwrap();
}

async fn a_reservation_reads_back_with_its_lines(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-1", "SKU-2", 10), ("DC-2", "SKU-1", 10)]).await;
    // Lines come back by node, then SKU.
    let r = reservation(1, &[("DC-2", "SKU-1", 1), ("DC-1", "SKU-2", 2), ("DC-1", "SKU-1", 3)]);
    reserve(store, &r).await;
    let mut expected = r.clone();
    expected.lines.sort_by(|a, b| (&a.node_id, &a.sku).cmp(&(&b.node_id, &b.sku)));
    assert_eq!(store.reservation(&r.reservation_id).await.unwrap(), Some(expected.clone()));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.lock_reservation(&r.reservation_id).await.unwrap(), Some(expected));
    assert_eq!(tx.lock_reservation("res_missing").await.unwrap(), None);
    tx.rollback().await.unwrap();
    assert_eq!(store.reservation("res_missing").await.unwrap(), None);
}

async fn reserved_units_match_the_positions_reserved_counts(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-2", "SKU-1", 10)]).await;
    reserve(store, &reservation(1, &[("DC-1", "SKU-1", 3), ("DC-2", "SKU-1", 2)])).await;
    let released = reservation(2, &[("DC-1", "SKU-1", 4)]);
    reserve(store, &released).await;
    assert_eq!(store.reservation_totals().await.unwrap(), (9, 9));
    assert_eq!(stored(store, "DC-1", "SKU-1").await.position.counts.reserved.get(), 7);
    // Releasing gives the units back and closes the reservation in one transaction.
    let mut tx = store.begin().await.unwrap();
    tx.move_stock(StockMove::Unreserve, &node_id("DC-1"), &sku("SKU-1"), 4, NOW + 1).await.unwrap().unwrap();
    tx.close_reservation(&released.reservation_id, "released", None, NOW + 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.reservation_totals().await.unwrap(), (5, 5));
}

async fn a_reservation_closes_once(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10)]).await;
    let r = reservation(1, &[("DC-1", "SKU-1", 3)]);
    reserve(store, &r).await;
    let mut tx = store.begin().await.unwrap();
    tx.close_reservation(&r.reservation_id, "expired", None, NOW + TTL + 5).await.unwrap();
    // A second close (a release racing the sweep) finds it no longer active: no change.
    tx.close_reservation(&r.reservation_id, "released", None, NOW + TTL + 6).await.unwrap();
    tx.commit().await.unwrap();
    let closed = store.reservation(&r.reservation_id).await.unwrap().unwrap();
    assert_eq!((closed.status.as_str(), closed.closed_at_ms), ("expired", Some(NOW + TTL + 5)));
}

async fn a_closed_reservation_says_how_it_ended(db: &Db) {
    stocked(db, &[("DC-1", "SKU-1", 10)]).await;
    let r = reservation(1, &[("DC-1", "SKU-1", 3)]);
    reserve(db, &r).await;
    // Converted names its order; nothing else does.
    for (status, order) in [("converted", None), ("released", Some("ord_1")), ("finished", None)] {
        let mut tx = db.begin().await.unwrap();
        assert!(tx.close_reservation(&r.reservation_id, status, order, NOW).await.is_err(), "{status} {order:?}");
        tx.rollback().await.unwrap();
    }
    // Active without a closing time only.
    assert!(db.execute("UPDATE reservations SET closed_at_ms = 1").await.is_err());
    let mut tx = db.begin().await.unwrap();
    tx.close_reservation(&r.reservation_id, "converted", Some("ord_1"), NOW + 7).await.unwrap();
    tx.commit().await.unwrap();
    let closed = db.reservation(&r.reservation_id).await.unwrap().unwrap();
    assert_eq!(
        (closed.status.as_str(), closed.order_id.as_deref(), closed.closed_at_ms),
        ("converted", Some("ord_1"), Some(NOW + 7))
    );
}

async fn due_reservations_are_the_active_ones_past_their_expiry(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 100)]).await;
    let all: Vec<StoredReservation> = (1..=4).map(|n| reservation(n, &[("DC-1", "SKU-1", 1)])).collect();
    for r in &all {
        reserve(store, r).await;
    }
    let mut tx = store.begin().await.unwrap();
    tx.close_reservation(&all[1].reservation_id, "released", None, NOW + 10).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!store.has_due_reservations(NOW + TTL).await.unwrap(), "none has expired yet");
    assert!(store.has_due_reservations(NOW + TTL + 1).await.unwrap());
    let due = |now: i64, limit: i64| async move {
        let mut tx = store.begin().await.unwrap();
        let ids = tx.due_reservations(now, limit).await.unwrap();
        tx.rollback().await.unwrap();
        ids
    };
    let ids = |ns: &[usize]| ns.iter().map(|i| all[*i].reservation_id.clone()).collect::<Vec<_>>();
    assert_eq!(due(NOW + TTL + 3, 10).await, ids(&[0, 2]), "expiry order, active ones only, expiry included");
    assert_eq!(due(NOW + TTL + 10, 2).await, ids(&[0, 2]), "at most the limit");
    assert_eq!(due(NOW + TTL + 10, 10).await, ids(&[0, 2, 3]));
}

/// Two sweeps at once: the second skips the reservations the first has locked.
async fn two_sweeps_never_expire_the_same_reservation(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 100)]).await;
    let all: Vec<StoredReservation> = (1..=3).map(|n| reservation(n, &[("DC-1", "SKU-1", 1)])).collect();
    for r in &all {
        reserve(store, r).await;
    }
    let mut one = store.begin().await.unwrap();
    let first = one.due_reservations(NOW + 2 * TTL, 1).await.unwrap();
    let mut two = store.begin().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), two.due_reservations(NOW + 2 * TTL, 10))
        .await
        .expect("a sweep must skip locked reservations, not wait for them")
        .unwrap();
    assert_eq!(first, [all[0].reservation_id.clone()]);
    assert_eq!(second, [all[1].reservation_id.clone(), all[2].reservation_id.clone()]);
    one.rollback().await.unwrap();
    two.rollback().await.unwrap();
}
