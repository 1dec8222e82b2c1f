//! Inbound supply and the backordered units promised against it: a supply's `committed`
//! is the sum of its commitments and never exceeds its quantity; closing it ends them.

use allot_store::{CommitmentRow, LineExpectation, Store, SupplyFilter, SupplyRow};

use crate::conformance;
use crate::fixtures::{NOW, another_page, backordered, network, order};
use crate::harness::Db;

conformance!(
    supply_reads_back_and_lists_by_every_filter_page_by_page,
    commitments_set_each_supplys_committed_total,
    commitments_beyond_a_supplys_quantity_are_refused,
    closing_a_supply_ends_its_commitments,
    backordered_lines_come_oldest_promise_first,
);

fn supply(id: &str, node: &str, sku: &str, quantity: i64, eta_ms: i64) -> SupplyRow {
    SupplyRow {
        supply_id: id.to_owned(),
        node_id: node.to_owned(),
        sku: sku.to_owned(),
        quantity,
        committed: 0,
        eta_ms,
        status: "expected".to_owned(),
        received: 0,
        created_at_ms: NOW,
        updated_at_ms: NOW,
    }
}

const DAY: i64 = 86_400_000;

/// Supply of SKU-1 and SKU-2 at two nodes, and backordered orders 1–3 of SKU-1.
async fn supplied(store: &Store) -> Vec<SupplyRow> {
    network(store).await;
    let rows = vec![
        supply("sup_1", "DC-1", "SKU-1", 5, NOW + 3 * DAY),
        supply("sup_2", "DC-2", "SKU-1", 10, NOW + DAY),
        supply("sup_3", "DC-1", "SKU-2", 7, NOW + 2 * DAY),
        supply("sup_4", "DC-2", "SKU-2", 1, NOW + DAY),
    ];
    let mut tx = store.begin().await.unwrap();
    for s in &rows {
        tx.insert_supply(s).await.unwrap();
    }
    for n in 1..=3 {
        tx.insert_order(&order(n, "web", &[backordered("SKU-1", 4)]), &[]).await.unwrap();
    }
    tx.commit().await.unwrap();
    rows
}

fn commitment(supply_id: &str, order: u64, quantity: i64) -> CommitmentRow {
    CommitmentRow {
        supply_id: supply_id.to_owned(),
        order_id: crate::fixtures::order_id(order),
        line_id: "1".to_owned(),
        quantity,
        committed_at_ms: NOW + order as i64,
    }
}

async fn committed(store: &Store, supply_id: &str) -> i64 {
    store.supply(supply_id).await.unwrap().unwrap().committed
}

async fn supply_reads_back_and_lists_by_every_filter_page_by_page(store: &Store) {
    let rows = supplied(store).await;
    assert_eq!(store.supply("sup_3").await.unwrap().as_ref(), Some(&rows[2]));
    assert_eq!(store.supply("sup_9").await.unwrap(), None);
    let text = |s: &str| Some(s.to_owned());
    let cases: [(SupplyFilter, &[usize]); 5] = [
        (SupplyFilter::default(), &[0, 1, 2, 3]),
        (SupplyFilter { sku: text("SKU-1"), ..Default::default() }, &[0, 1]),
        (SupplyFilter { node_id: text("DC-2"), ..Default::default() }, &[1, 3]),
        (
            SupplyFilter { sku: text("SKU-2"), node_id: text("DC-1"), status: text("expected"), ..Default::default() },
            &[2],
        ),
        (SupplyFilter { status: text("received"), ..Default::default() }, &[]),
    ];
    for (filter, expected) in cases {
        let what = format!("{filter:?}");
        let mut f = SupplyFilter { limit: 1, ..filter };
        let mut listed = Vec::new();
        let mut pages = 0;
        loop {
            another_page(&mut pages);
            let page = store.list_supply(&f).await.unwrap();
            assert!(page.len() <= 1);
            let Some(last) = page.last() else { break };
            f.after_id = Some(last.supply_id.clone());
            listed.extend(page);
        }
        let expected: Vec<SupplyRow> = expected.iter().map(|i| rows[*i].clone()).collect();
        assert_eq!(listed, expected, "{what}");
    }
    assert!(store.has_open_supply(&["SKU-4".to_owned(), "SKU-2".to_owned()]).await.unwrap());
    assert!(!store.has_open_supply(&["SKU-3".to_owned()]).await.unwrap());
    assert!(!store.has_open_supply(&[]).await.unwrap());
}

async fn commitments_set_each_supplys_committed_total(store: &Store) {
    supplied(store).await;
    let ids = ["sup_1".to_owned(), "sup_2".to_owned()];
    let mut tx = store.begin().await.unwrap();
    let open = tx.open_supply_for_update("SKU-1").await.unwrap();
    assert_eq!(open.iter().map(|s| s.supply_id.as_str()).collect::<Vec<_>>(), ["sup_2", "sup_1"], "earliest first");
    tx.replace_commitments(&ids, &[commitment("sup_2", 1, 4), commitment("sup_2", 2, 4), commitment("sup_1", 3, 2)])
        .await
        .unwrap();
    tx.add_commitments(&ids, &[commitment("sup_2", 3, 2)]).await.unwrap();
    let mut of = tx.commitments_of(&ids).await.unwrap();
    tx.commit().await.unwrap();
    of.sort_by(|a, b| (&a.supply_id, &a.order_id).cmp(&(&b.supply_id, &b.order_id)));
    assert_eq!(of.len(), 4);
    assert_eq!((committed(store, "sup_1").await, committed(store, "sup_2").await), (2, 10));
    assert_eq!(committed(store, "sup_3").await, 0, "other supply untouched");
    let on_2: Vec<i64> = store.supply_commitments("sup_2").await.unwrap().iter().map(|c| c.quantity).collect();
    assert_eq!(on_2, [4, 4, 2], "oldest commitment first");
    // What the orders show: order 3's line expects 2 units from each supply, earliest first.
    let third = store.order(&crate::fixtures::order_id(3)).await.unwrap().unwrap();
    let expect = |supply_id: &str, node: &str, eta_ms: i64| LineExpectation {
        line_id: "1".to_owned(),
        supply_id: supply_id.to_owned(),
        node_id: node.to_owned(),
        quantity: 2,
        eta_ms,
    };
    assert_eq!(third.expectations, [expect("sup_2", "DC-2", NOW + DAY), expect("sup_1", "DC-1", NOW + 3 * DAY)]);
    // Replacing with fewer rows removes the rest, and totals follow.
    let mut tx = store.begin().await.unwrap();
    tx.replace_commitments(&ids, &[commitment("sup_1", 1, 1)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((committed(store, "sup_1").await, committed(store, "sup_2").await), (1, 0));
    assert!(store.supply_commitments("sup_2").await.unwrap().is_empty());
}

async fn commitments_beyond_a_supplys_quantity_are_refused(db: &Db) {
    supplied(db).await;
    let ids = ["sup_1".to_owned()];
    let mut tx = db.begin().await.unwrap();
    tx.replace_commitments(&ids, &[commitment("sup_1", 1, 4)]).await.unwrap();
    tx.commit().await.unwrap();
    // sup_1 expects 5 units: 4 + 2 would promise 6.
    let mut tx = db.begin().await.unwrap();
    assert!(tx.add_commitments(&ids, &[commitment("sup_1", 2, 2)]).await.is_err());
    tx.rollback().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(tx.replace_commitments(&ids, &[commitment("sup_1", 1, 3), commitment("sup_1", 2, 3)]).await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(db.supply("sup_1").await.unwrap().unwrap().committed, 4);
    assert_eq!(db.rows("supply_commitments").await, 1);
    // Nor can the total be set past it by hand, or a commitment be empty.
    assert!(db.execute("UPDATE inbound_supply SET committed = 6 WHERE supply_id = 'sup_1'").await.is_err());
    let mut tx = db.begin().await.unwrap();
    assert!(tx.add_commitments(&["sup_3".to_owned()], &[commitment("sup_3", 2, 0)]).await.is_err());
    tx.rollback().await.unwrap();
}

async fn closing_a_supply_ends_its_commitments(store: &Store) {
    supplied(store).await;
    let ids = ["sup_1".to_owned(), "sup_2".to_owned()];
    let mut tx = store.begin().await.unwrap();
    tx.replace_commitments(&ids, &[commitment("sup_1", 1, 4), commitment("sup_2", 2, 4)]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let locked = tx.lock_supply("sup_1").await.unwrap().unwrap();
    assert_eq!((locked.status.as_str(), locked.committed), ("expected", 4));
    assert_eq!(tx.lock_supply("sup_9").await.unwrap(), None);
    tx.close_supply("sup_1", "received", 5, NOW + 3 * DAY).await.unwrap();
    tx.commit().await.unwrap();
    let closed = store.supply("sup_1").await.unwrap().unwrap();
    assert_eq!(
        closed,
        SupplyRow {
            status: "received".to_owned(),
            received: 5,
            updated_at_ms: NOW + 3 * DAY,
            ..supply("sup_1", "DC-1", "SKU-1", 5, NOW + 3 * DAY)
        }
    );
    assert!(store.supply_commitments("sup_1").await.unwrap().is_empty());
    assert_eq!(store.supply_commitments("sup_2").await.unwrap().len(), 1, "another supply's stay");
    let mut tx = store.begin().await.unwrap();
    let open: Vec<String> =
        tx.open_supply_for_update("SKU-1").await.unwrap().into_iter().map(|s| s.supply_id).collect();
    tx.rollback().await.unwrap();
    assert_eq!(open, ["sup_2"], "closed supply is no longer open");
    let mut tx = store.begin().await.unwrap();
    assert!(tx.close_supply("sup_2", "lost", 0, NOW).await.is_err(), "supply statuses are a closed set");
    tx.rollback().await.unwrap();
}

async fn backordered_lines_come_oldest_promise_first(store: &Store) {
    network(store).await;
    let promises = [None, Some("2025-07-01"), Some("2025-06-20"), None];
    let mut tx = store.begin().await.unwrap();
    for (i, promise) in promises.iter().enumerate() {
        let mut o = order(
            i as u64 + 1,
            if i % 2 == 0 { "web" } else { "app" },
            &[backordered("SKU-1", 2), backordered("SKU-1", 3)],
        );
        o.lines[1].promised_date = promise.map(str::to_owned);
        tx.insert_order(&o, &[]).await.unwrap();
    }
    let lines = tx.backordered_lines("SKU-1").await.unwrap();
    assert!(tx.backordered_lines("SKU-2").await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let got: Vec<(u64, &str, i64, &str)> = lines
        .iter()
        .map(|l| {
            let n = u64::from_str_radix(l.order_id.trim_start_matches("ord_"), 16).unwrap();
            (n, l.line_id.as_str(), l.backordered, l.channel.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            (3, "2", 3, "web"), // 2025-06-20
            (2, "2", 3, "app"), // 2025-07-01
            (1, "1", 2, "web"), // unpromised: by order, then line
            (1, "2", 3, "web"),
            (2, "1", 2, "app"),
            (3, "1", 2, "web"),
            (4, "1", 2, "app"),
            (4, "2", 3, "app"),
        ]
    );
}
