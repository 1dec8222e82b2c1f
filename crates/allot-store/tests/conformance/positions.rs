//! Inventory positions: writes with versions and `seq`, locks, and the guarded moves of
//! stock between a position's counters — which never take more than is there, with the
//! database's `CHECK`s behind them.

use allot_core::PositionCounts;
use allot_store::{StockMove, Store};

use crate::conformance;
use crate::fixtures::{NOW, network, node_id, on_hand, position, qty, sku, stocked, stored};
use crate::harness::{Backend, Db};

conformance!(
    written_positions_read_back_with_their_counts_seq_and_a_new_version,
    a_position_written_without_seq_stores_none,
    locking_positions_returns_the_stored_ones_asked_for,
    locking_a_node_returns_every_position_it_holds,
    each_stock_move_changes_only_its_own_counters,
    a_move_whose_guard_fails_changes_nothing,
    reserving_counts_only_units_free_to_promise,
    consuming_more_than_on_hand_floors_it_at_zero,
    the_database_refuses_a_count_below_zero_or_above_a_billion,
    a_rolled_back_write_leaves_the_position_as_it_was,
);

fn counts(
    on_hand: u64,
    damaged: u64,
    quarantined: u64,
    safety_stock: u64,
    reserved: u64,
    allocated: u64,
) -> PositionCounts {
    PositionCounts {
        on_hand: qty(on_hand),
        damaged: qty(damaged),
        quarantined: qty(quarantined),
        safety_stock: qty(safety_stock),
        reserved: qty(reserved),
        allocated: qty(allocated),
    }
}

async fn written_positions_read_back_with_their_counts_seq_and_a_new_version(store: &Store) {
    network(store).await;
    let mut first = position("DC-1", "SKU-1", counts(100, 1, 2, 3, 4, 5));
    first.seq = Some(7);
    let second = position("DC-2", "SKU-1", on_hand(9));
    let mut tx = store.begin().await.unwrap();
    let written = tx.write_positions(&[first.clone(), second.clone()], NOW).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|p| p.version == 1), "a new row starts at version 1: {written:?}");

    let read = stored(store, "DC-1", "SKU-1").await;
    assert_eq!((read.position.clone(), read.version), (first.clone(), 1));
    assert_eq!(store.node_positions(&node_id("DC-2")).await.unwrap().len(), 1);
    assert_eq!(store.positions().await.unwrap().len(), 2);

    // A rewrite bumps the version by one and replaces every count and the seq.
    let mut again = first.clone();
    again.counts = counts(50, 0, 0, 0, 4, 5);
    again.seq = Some(8);
    let mut tx = store.begin().await.unwrap();
    tx.lock_positions(&[(node_id("DC-1"), sku("SKU-1"))], NOW).await.unwrap();
    let written = tx.write_positions(std::slice::from_ref(&again), NOW + 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written[0].version, 2);
    let read = stored(store, "DC-1", "SKU-1").await;
    assert_eq!((read.position, read.version), (again, 2));
}

async fn a_position_written_without_seq_stores_none(store: &Store) {
    network(store).await;
    let p = position("DC-1", "SKU-2", on_hand(3));
    let mut tx = store.begin().await.unwrap();
    tx.write_positions(std::slice::from_ref(&p), NOW).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(store, "DC-1", "SKU-2").await.position.seq, None);
    assert_eq!(store.position(&node_id("DC-2"), &sku("SKU-2")).await.unwrap(), None, "never written");
}

async fn locking_positions_returns_the_stored_ones_asked_for(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-1", "SKU-2", 20), ("DC-2", "SKU-1", 30)]).await;
    let mut tx = store.begin().await.unwrap();
    let keys = [(node_id("DC-1"), sku("SKU-1")), (node_id("DC-2"), sku("SKU-1")), (node_id("DC-2"), sku("SKU-3"))];
    let mut locked = tx.lock_positions(&keys, NOW).await.unwrap();
    assert!(tx.lock_positions(&[], NOW).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    locked.sort_by(|a, b| (&a.position.node_id, &a.position.sku).cmp(&(&b.position.node_id, &b.position.sku)));
    // A key never written is absent (SQLite) or comes back empty (PostgreSQL inserts it at
    // zero, so that a first write to it serialises too): either way it reads as empty.
    if locked.len() == 3 {
        let missing = locked.pop().unwrap();
        assert_eq!(missing.position, position("DC-2", "SKU-3", PositionCounts::default()));
    }
    let found: Vec<(&str, &str, u64)> = locked
        .iter()
        .map(|p| (p.position.node_id.as_str(), p.position.sku.as_str(), p.position.counts.on_hand.get()))
        .collect();
    assert_eq!(found, [("DC-1", "SKU-1", 10), ("DC-2", "SKU-1", 30)], "only the keys asked for, with their counts");
}

async fn locking_a_node_returns_every_position_it_holds(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10), ("DC-1", "SKU-2", 20), ("DC-2", "SKU-1", 30)]).await;
    let mut tx = store.begin().await.unwrap();
    let locked = tx.lock_node_positions(&node_id("DC-1"), &[sku("SKU-1")], NOW).await.unwrap();
    tx.commit().await.unwrap();
    let mut skus: Vec<String> = locked.iter().map(|p| p.position.sku.to_string()).collect();
    skus.sort();
    assert_eq!(skus, ["SKU-1", "SKU-2"], "every position of DC-1 and none of DC-2");
}

/// (move, units, counts before, counts after): each move touches its own counters only.
const MOVES: [(StockMove, u64, [u64; 6], [u64; 6]); 5] = [
    // on_hand, damaged, quarantined, safety_stock, reserved, allocated
    (StockMove::Reserve, 4, [10, 0, 0, 0, 1, 2], [10, 0, 0, 0, 5, 2]),
    (StockMove::Unreserve, 3, [10, 0, 0, 0, 5, 2], [10, 0, 0, 0, 2, 2]),
    (StockMove::Convert, 2, [10, 0, 0, 0, 5, 2], [10, 0, 0, 0, 3, 4]),
    (StockMove::Release, 2, [10, 0, 0, 0, 1, 6], [10, 0, 0, 0, 1, 4]),
    (StockMove::Consume, 5, [10, 0, 0, 0, 1, 6], [5, 0, 0, 0, 1, 1]),
];

fn from(c: [u64; 6]) -> PositionCounts {
    counts(c[0], c[1], c[2], c[3], c[4], c[5])
}

async fn set_counts(store: &Store, node: &str, sku_id: &str, c: PositionCounts) -> i64 {
    let mut tx = store.begin().await.unwrap();
    tx.lock_positions(&[(node_id(node), sku(sku_id))], NOW).await.unwrap();
    let written = tx.write_positions(&[position(node, sku_id, c)], NOW).await.unwrap();
    tx.commit().await.unwrap();
    written[0].version
}

async fn each_stock_move_changes_only_its_own_counters(store: &Store) {
    network(store).await;
    for (how, units, before, after) in MOVES {
        let version = set_counts(store, "DC-1", "SKU-1", from(before)).await;
        let mut tx = store.begin().await.unwrap();
        let moved = tx.move_stock(how, &node_id("DC-1"), &sku("SKU-1"), units, NOW).await.unwrap();
        tx.commit().await.unwrap();
        let moved = moved.unwrap_or_else(|| panic!("{how:?} {units} from {before:?} is covered"));
        assert_eq!(moved.position.counts, from(after), "{how:?} {units} from {before:?}");
        assert_eq!(moved.version, version + 1, "{how:?} bumps the version once");
        assert_eq!(stored(store, "DC-1", "SKU-1").await, moved, "{how:?}: the answer is what is stored");
    }
}

async fn a_move_whose_guard_fails_changes_nothing(store: &Store) {
    network(store).await;
    // (move, units) one more than its guard allows on [10 on hand, 1 safety, 3 reserved, 4 allocated]:
    // ATP is 10 − 1 − 3 − 4 = 2.
    let start = counts(10, 0, 0, 1, 3, 4);
    let refused = [
        (StockMove::Reserve, 3),
        (StockMove::Unreserve, 4),
        (StockMove::Convert, 4),
        (StockMove::Release, 5),
        (StockMove::Consume, 5),
    ];
    let version = set_counts(store, "DC-1", "SKU-1", start).await;
    for (how, units) in refused {
        let mut tx = store.begin().await.unwrap();
        let moved = tx.move_stock(how, &node_id("DC-1"), &sku("SKU-1"), units, NOW).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(moved, None, "{how:?} {units} is refused");
        let now = stored(store, "DC-1", "SKU-1").await;
        assert_eq!((now.position.counts, now.version), (start, version), "{how:?} {units} changed nothing");
    }
    // A position that does not exist has nothing to move.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.move_stock(StockMove::Reserve, &node_id("DC-2"), &sku("SKU-1"), 1, NOW).await.unwrap(), None);
    tx.rollback().await.unwrap();
}

async fn reserving_counts_only_units_free_to_promise(store: &Store) {
    network(store).await;
    // ATP = 20 − 2 damaged − 3 quarantined − 4 safety − 5 reserved − 1 allocated = 5.
    set_counts(store, "DC-1", "SKU-1", counts(20, 2, 3, 4, 5, 1)).await;
    let mut tx = store.begin().await.unwrap();
    assert!(tx.move_stock(StockMove::Reserve, &node_id("DC-1"), &sku("SKU-1"), 6, NOW).await.unwrap().is_none());
    let took = tx.move_stock(StockMove::Reserve, &node_id("DC-1"), &sku("SKU-1"), 5, NOW).await.unwrap();
    assert_eq!(took.unwrap().position.counts.reserved, qty(10));
    assert!(tx.move_stock(StockMove::Reserve, &node_id("DC-1"), &sku("SKU-1"), 1, NOW).await.unwrap().is_none());
    tx.commit().await.unwrap();
}

async fn consuming_more_than_on_hand_floors_it_at_zero(store: &Store) {
    network(store).await;
    // A snapshot already counted the units out: on hand 2, still 5 allocated.
    set_counts(store, "DC-1", "SKU-1", counts(2, 0, 0, 0, 0, 5)).await;
    let mut tx = store.begin().await.unwrap();
    let moved = tx.move_stock(StockMove::Consume, &node_id("DC-1"), &sku("SKU-1"), 5, NOW).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(moved.position.counts, counts(0, 0, 0, 0, 0, 0));
}

async fn the_database_refuses_a_count_below_zero_or_above_a_billion(db: &Db) {
    let store: &Store = db;
    stocked(store, &[("DC-1", "SKU-1", 10)]).await;
    let before = stored(store, "DC-1", "SKU-1").await;
    for column in ["on_hand", "damaged", "quarantined", "safety_stock", "reserved", "allocated"] {
        for value in ["-1", "1000000001"] {
            let refused = db
                .execute(&format!("UPDATE positions SET {column} = {value} WHERE node_id = 'DC-1' AND sku = 'SKU-1'"))
                .await;
            let e = refused.expect_err(&format!("{column} = {value} must be refused"));
            assert!(e.to_string().to_lowercase().contains("check"), "{column} = {value}: {e}");
        }
    }
    assert_eq!(stored(store, "DC-1", "SKU-1").await, before);
    // The limits themselves are allowed.
    db.execute("UPDATE positions SET on_hand = 1000000000, allocated = 0 WHERE node_id = 'DC-1'").await.unwrap();
    assert_eq!(db.number("SELECT on_hand FROM positions WHERE node_id = 'DC-1'").await, 1_000_000_000);
    if db.backend() == Backend::Sqlite {
        // STRICT tables: text is not a count.
        assert!(db.execute("UPDATE positions SET on_hand = 'many' WHERE node_id = 'DC-1'").await.is_err());
    }
}

async fn a_rolled_back_write_leaves_the_position_as_it_was(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10)]).await;
    let before = stored(store, "DC-1", "SKU-1").await;
    let mut tx = store.begin().await.unwrap();
    tx.move_stock(StockMove::Reserve, &node_id("DC-1"), &sku("SKU-1"), 4, NOW).await.unwrap().unwrap();
    tx.write_positions(&[position("DC-1", "SKU-2", on_hand(5))], NOW).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored(store, "DC-1", "SKU-1").await, before);
    assert_eq!(store.positions().await.unwrap().len(), 1);
}
