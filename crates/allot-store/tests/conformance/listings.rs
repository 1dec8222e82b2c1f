//! Listings and their cursors: orders newest first, a node's fulfillment-order queue by
//! due date — every filter alone and all at once, paged through without a duplicate or a
//! gap.

use allot_store::{
    FulfillmentOrderEntry, FulfillmentOrderFilter, OrderFilter, OrderSummary, ShipmentRow, Store, StoredOrder,
};

use crate::conformance;
use crate::fixtures::{NOW, another_page, backordered, line, network, order, placed_events};

conformance!(
    orders_page_newest_first_without_duplicates_or_gaps,
    every_order_filter_selects_exactly_its_orders,
    fulfillment_orders_queue_by_due_date_then_id_page_by_page,
    a_fulfillment_order_entry_carries_its_lines_and_shipments,
    the_customer_service_search_starts_from_an_index,
);

/// Orders 1..=12 of two channels, three statuses, four SKUs and two nodes, made at
/// `NOW + n`; their fulfillment orders are due on one of five days and some are accepted
/// or held back.
fn assortment() -> Vec<StoredOrder> {
    (1..=12u64)
        .map(|n| {
            let lines = match n % 4 {
                0 => vec![backordered("SKU-3", 2)],
                1 => vec![line("SKU-1", 1, "DC-1")],
                2 => vec![line("SKU-2", 1, "DC-2"), line("SKU-1", 2, "DC-1")],
                _ => vec![line("SKU-1", 1, "DC-2"), backordered("SKU-4", 1)],
            };
            let mut o = order(n, if n % 3 == 0 { "app" } else { "web" }, &lines);
            for (i, fo) in o.fulfillment_orders.iter_mut().enumerate() {
                fo.due_date = format!("2025-06-{:02}", 15 + (n as usize * 7 + i) % 5);
                if n % 5 == 0 {
                    fo.status = "accepted".to_owned();
                }
            }
            o
        })
        .collect()
}

async fn insert(store: &Store, orders: &[StoredOrder]) {
    network(store).await;
    let mut tx = store.begin().await.unwrap();
    for (i, o) in orders.iter().enumerate() {
        tx.insert_order(o, &placed_events(o, 10 * i as u64)).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// What a listing shows of an order.
fn summary(o: &StoredOrder) -> OrderSummary {
    OrderSummary {
        order_id: o.order_id.clone(),
        channel: o.channel.clone(),
        external_id: o.external_id.clone(),
        status: o.status.clone(),
        holds: o.holds.clone(),
        policy_name: o.policy_name.clone(),
        policy_version: o.policy_version,
        created_at_ms: o.created_at_ms,
        lines: o.lines.clone(),
        fulfillment_orders: o.fulfillment_orders.clone(),
        allocations: o.allocations.clone(),
    }
}

/// Every page of orders matching `filter`, `limit` at a time, resuming from each page's
/// last order; asserts no page is longer than the limit.
async fn all_order_pages(store: &Store, mut filter: OrderFilter) -> Vec<OrderSummary> {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        another_page(&mut pages);
        let page = store.list_orders(&filter).await.unwrap();
        assert!(page.len() as i64 <= filter.limit);
        let Some(last) = page.last() else { return out };
        filter.before_order_id = Some(last.order_id.clone());
        out.extend(page);
    }
}

async fn orders_page_newest_first_without_duplicates_or_gaps(store: &Store) {
    let orders = assortment();
    insert(store, &orders).await;
    let listed = all_order_pages(store, OrderFilter { limit: 5, ..Default::default() }).await;
    let expected: Vec<OrderSummary> = orders.iter().rev().map(summary).collect();
    assert_eq!(listed, expected, "newest first, each order once, with its lines, work and allocations");
    let one_page = store.list_orders(&OrderFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(one_page, expected, "pages add up to the single page");
    assert!(store.list_orders(&OrderFilter { limit: 0, ..Default::default() }).await.unwrap().is_empty());
}

async fn every_order_filter_selects_exactly_its_orders(store: &Store) {
    let orders = assortment();
    insert(store, &orders).await;
    let text = |s: &str| Some(s.to_owned());
    let has_sku = |o: &StoredOrder, s: &str| o.lines.iter().any(|l| l.sku == s);
    let at_node = |o: &StoredOrder, n: &str| o.fulfillment_orders.iter().any(|f| f.node_id == n);
    type Case<'a> = (&'a str, OrderFilter, Box<dyn Fn(&StoredOrder) -> bool + Send + 'a>);
    let cases: Vec<Case> = vec![
        ("none", OrderFilter::default(), Box::new(|_| true)),
        ("channel", OrderFilter { channel: text("app"), ..Default::default() }, Box::new(|o| o.channel == "app")),
        (
            "status",
            OrderFilter { status: text("partially_allocated"), ..Default::default() },
            Box::new(|o| o.status == "partially_allocated"),
        ),
        ("sku", OrderFilter { sku: text("SKU-1"), ..Default::default() }, Box::new(move |o| has_sku(o, "SKU-1"))),
        ("node", OrderFilter { node_id: text("DC-2"), ..Default::default() }, Box::new(move |o| at_node(o, "DC-2"))),
        (
            "created after",
            OrderFilter { created_after_ms: Some(NOW + 4), ..Default::default() },
            Box::new(|o| o.created_at_ms > NOW + 4),
        ),
        (
            "created before",
            OrderFilter { created_before_ms: Some(NOW + 9), ..Default::default() },
            Box::new(|o| o.created_at_ms < NOW + 9),
        ),
        (
            "all at once",
            OrderFilter {
                channel: text("web"),
                status: text("allocated"),
                sku: text("SKU-1"),
                node_id: text("DC-1"),
                created_after_ms: Some(NOW + 1),
                created_before_ms: Some(NOW + 12),
                ..Default::default()
            },
            Box::new(move |o| {
                o.channel == "web"
                    && o.status == "allocated"
                    && has_sku(o, "SKU-1")
                    && at_node(o, "DC-1")
                    && o.created_at_ms > NOW + 1
                    && o.created_at_ms < NOW + 12
            }),
        ),
        ("nothing matches", OrderFilter { channel: text("kiosk"), ..Default::default() }, Box::new(|_| false)),
    ];
    for (case, filter, keep) in cases {
        let expected: Vec<OrderSummary> = orders.iter().rev().filter(|o| keep(o)).map(summary).collect();
        assert!(case == "nothing matches" || expected.len() >= 2, "{case}: the fixture selects a few orders");
        let listed = all_order_pages(store, OrderFilter { limit: 2, ..filter }).await;
        let ids = |v: &[OrderSummary]| v.iter().map(|o| o.order_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&listed), ids(&expected), "{case}");
        assert_eq!(listed, expected, "{case}");
    }
}

/// Every page of the fulfillment-order queue matching `filter`, resuming after each page's
/// last entry (its due date and id).
async fn all_queue_pages(store: &Store, mut filter: FulfillmentOrderFilter) -> Vec<FulfillmentOrderEntry> {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        another_page(&mut pages);
        let page = store.list_fulfillment_orders(&filter).await.unwrap();
        assert!(page.len() as i64 <= filter.limit);
        let Some(last) = page.last() else { return out };
        let f = &last.fulfillment_order;
        filter.after = Some((f.due_date.clone(), f.fulfillment_order_id.clone()));
        out.extend(page);
    }
}

/// Every fulfillment order of `orders` as its queue entry (no shipments), in queue order.
fn queue(orders: &[StoredOrder]) -> Vec<FulfillmentOrderEntry> {
    let mut entries: Vec<FulfillmentOrderEntry> = orders
        .iter()
        .flat_map(|o| {
            o.fulfillment_orders.iter().map(|f| {
                let mut lines: Vec<_> = o
                    .allocations
                    .iter()
                    .filter(|a| a.fulfillment_order_id == f.fulfillment_order_id)
                    .cloned()
                    .collect();
                lines.sort_by(|a, b| (&a.line_id, &a.sku).cmp(&(&b.line_id, &b.sku)));
                FulfillmentOrderEntry { fulfillment_order: f.clone(), lines, shipments: Vec::new() }
            })
        })
        .collect();
    entries.sort_by(|a, b| {
        let key = |e: &FulfillmentOrderEntry| {
            (e.fulfillment_order.due_date.clone(), e.fulfillment_order.fulfillment_order_id.clone())
        };
        key(a).cmp(&key(b))
    });
    entries
}

async fn fulfillment_orders_queue_by_due_date_then_id_page_by_page(store: &Store) {
    let orders = assortment();
    insert(store, &orders).await;
    let all = queue(&orders);
    let text = |s: &str| Some(s.to_owned());
    type Case = (&'static str, FulfillmentOrderFilter, fn(&FulfillmentOrderEntry) -> bool);
    let cases: [Case; 4] = [
        ("none", FulfillmentOrderFilter::default(), |_| true),
        ("node", FulfillmentOrderFilter { node_id: text("DC-1"), ..Default::default() }, |e| {
            e.fulfillment_order.node_id == "DC-1"
        }),
        ("status", FulfillmentOrderFilter { status: text("accepted"), ..Default::default() }, |e| {
            e.fulfillment_order.status == "accepted"
        }),
        (
            "node and status",
            FulfillmentOrderFilter { node_id: text("DC-2"), status: text("released"), ..Default::default() },
            |e| e.fulfillment_order.node_id == "DC-2" && e.fulfillment_order.status == "released",
        ),
    ];
    for (case, filter, keep) in cases {
        let expected: Vec<FulfillmentOrderEntry> = all.iter().filter(|e| keep(e)).cloned().collect();
        assert!(expected.len() >= 2, "{case}: the fixture selects a few");
        let listed = all_queue_pages(store, FulfillmentOrderFilter { limit: 3, ..filter }).await;
        assert_eq!(listed, expected, "{case}");
    }
    // Due dates repeat across pages, so the id breaks ties: a page boundary inside a day
    // neither repeats nor skips an entry (checked above); the first day has several.
    assert!(all.iter().filter(|e| e.fulfillment_order.due_date == all[0].fulfillment_order.due_date).count() >= 2);
}

async fn a_fulfillment_order_entry_carries_its_lines_and_shipments(store: &Store) {
    let orders = assortment();
    insert(store, &orders).await;
    let o = &orders[1]; // two lines at two nodes
    let fo = o.fulfillment_orders.iter().find(|f| f.node_id == "DC-1").unwrap().clone();
    let shipment = ShipmentRow {
        shipment_id: "shp_1".to_owned(),
        fulfillment_order_id: fo.fulfillment_order_id.clone(),
        order_id: o.order_id.clone(),
        node_id: "DC-1".to_owned(),
        carrier: "fedex".to_owned(),
        tracking_number: "7946".to_owned(),
        status: "in_transit".to_owned(),
        lines: r#"[{"line_id":"2","quantity":2}]"#.to_owned(),
        detail: Some("departed hub".to_owned()),
        shipped_at_ms: NOW + 100,
        delivered_at_ms: None,
        updated_at_ms: NOW + 200,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_shipment(&shipment).await.unwrap();
    tx.commit().await.unwrap();
    let listed = all_queue_pages(
        store,
        FulfillmentOrderFilter { node_id: Some("DC-1".to_owned()), limit: 50, ..Default::default() },
    )
    .await;
    let entry = listed.iter().find(|e| e.fulfillment_order.fulfillment_order_id == fo.fulfillment_order_id).unwrap();
    let lines: Vec<_> =
        o.allocations.iter().filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id).cloned().collect();
    assert_eq!(entry, &FulfillmentOrderEntry { fulfillment_order: fo, lines, shipments: vec![shipment] });
    assert!(
        listed
            .iter()
            .filter(|e| e.fulfillment_order.fulfillment_order_id != entry.fulfillment_order.fulfillment_order_id)
            .all(|e| e.shipments.is_empty()),
        "the shipment belongs to its fulfillment order alone"
    );
}

/// Every customer-service search filter is served by an index, not a scan of the orders
/// (issue 18: the listing stays on indexes on both backends), read from the database's
/// own plan of the very statement `list_orders` runs.
async fn the_customer_service_search_starts_from_an_index(store: &Store) {
    let pg = matches!(store, Store::Postgres(_));
    let text = |s: &str| Some(s.to_owned());
    let cases = [
        (
            "external_id",
            OrderFilter { external_id: text("W-1"), limit: 50, ..Default::default() },
            "orders_by_external_id",
        ),
        ("email", OrderFilter { email: text("ada@example.com"), limit: 50, ..Default::default() }, "orders_by_email"),
        ("phone", OrderFilter { phone: text("+1 215 555 0100"), limit: 50, ..Default::default() }, "orders_by_phone"),
        (
            "tracking_number",
            OrderFilter { tracking_number: text("1Z"), limit: 50, ..Default::default() },
            if pg { "shipments_tracking_number_key" } else { "INDEX sqlite_autoindex_shipments_2 (tracking_number=?)" },
        ),
        (
            "jeopardy",
            OrderFilter { jeopardy: text("late"), limit: 50, ..Default::default() },
            "order_lines_in_jeopardy",
        ),
    ];
    for (what, filter, index) in cases {
        let plan = store.explain_list_orders(&filter).await.unwrap().join("\n");
        assert!(plan.contains(index), "{what}: {index} not in the plan:\n{plan}");
    }
}
