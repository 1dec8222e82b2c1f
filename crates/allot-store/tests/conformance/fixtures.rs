//! Rows built the way `allot-app` builds them (see `allot-app/src/orders.rs`: an order's
//! lines, one fulfillment order per node, allocations, the `order.created` event), with
//! fixed ids and times so that every run writes the same database.

use std::collections::BTreeMap;

use allot_core::catalog::FulfillmentMethod;
use allot_core::{
    Capability, Currency, GeoPoint, Item, Node, NodeCapacity, NodeCosts, NodeId, NodeStatus, NodeType, Position,
    PositionCounts, Qty, Sku, TimeZoneName,
};
use allot_store::{AllocationRow, FulfillmentOrderRow, NewEvent, OrderLineRow, Store, StoredOrder, StoredPosition};

/// The fixed "now" of every test (2025-06-15T15:06:40Z), in milliseconds.
pub const NOW: i64 = 1_750_000_000_000;
/// Its UTC day: the due date of work made then without a promise.
pub const TODAY: &str = "2025-06-15";

/// The nodes and items [`network`] writes.
pub const NODES: [&str; 3] = ["DC-1", "DC-2", "STORE-1"];
pub const SKUS: [&str; 4] = ["SKU-1", "SKU-2", "SKU-3", "SKU-4"];

pub fn node_id(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

pub fn sku(id: &str) -> Sku {
    Sku::parse(id).unwrap()
}

pub fn qty(n: u64) -> Qty {
    Qty::new(n).unwrap()
}

pub fn node(id: &str) -> Node {
    Node {
        id: node_id(id),
        node_type: if id.starts_with("STORE") { NodeType::Store } else { NodeType::Dc },
        name: format!("Node {id}"),
        location: GeoPoint::new(40.7, -74.0).unwrap(),
        time_zone: TimeZoneName::parse("America/New_York").unwrap(),
        capabilities: vec![Capability::Ship, Capability::Pickup],
        status: NodeStatus::Active,
        capacity: NodeCapacity { orders_per_day: Some(500), units_per_day: None },
        costs: NodeCosts { per_order_minor: 250, per_unit_minor: 15, currency: Currency::parse("USD").unwrap() },
    }
}

pub fn item(id: &str) -> Item {
    Item {
        sku: sku(id),
        name: format!("Item {id}"),
        weight_g: 750,
        dims_mm: Some([300, 200, 100]),
        hazmat: false,
        ship_alone: false,
        methods: vec![FulfillmentMethod::Ship, FulfillmentMethod::Pickup],
        substitutes: Vec::new(),
    }
}

/// Writes [`NODES`] and [`SKUS`].
pub async fn network(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for id in NODES {
        tx.put_node(&node(id), NOW).await.unwrap();
    }
    for id in SKUS {
        tx.put_item(&item(id), NOW).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Counts with only `on_hand` set.
pub fn on_hand(units: u64) -> PositionCounts {
    PositionCounts { on_hand: qty(units), ..PositionCounts::default() }
}

pub fn position(node: &str, sku_id: &str, counts: PositionCounts) -> Position {
    Position { node_id: node_id(node), sku: sku(sku_id), counts, seq: None }
}

/// The network, and `on_hand` units of each (node, SKU) given, written the way feeds write
/// them (lock, then write).
pub async fn stocked(store: &Store, stock: &[(&str, &str, u64)]) {
    network(store).await;
    let positions: Vec<Position> = stock.iter().map(|(n, s, q)| position(n, s, on_hand(*q))).collect();
    let keys: Vec<(NodeId, Sku)> = positions.iter().map(|p| (p.node_id.clone(), p.sku.clone())).collect();
    let mut tx = store.begin().await.unwrap();
    tx.lock_positions(&keys, NOW).await.unwrap();
    tx.write_positions(&positions, NOW).await.unwrap();
    tx.commit().await.unwrap();
}

/// The stored position of (node, SKU); panics if there is none.
pub async fn stored(store: &Store, node: &str, sku_id: &str) -> StoredPosition {
    store.position(&node_id(node), &sku(sku_id)).await.unwrap().unwrap_or_else(|| panic!("no position {node}/{sku_id}"))
}

/// A line to order: `quantity` units of `sku`, allocated at `at` or backordered.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub sku: &'static str,
    pub quantity: i64,
    pub at: Option<&'static str>,
}

pub const fn line(sku: &'static str, quantity: i64, at: &'static str) -> Line {
    Line { sku, quantity, at: Some(at) }
}

pub const fn backordered(sku: &'static str, quantity: i64) -> Line {
    Line { sku, quantity, at: None }
}

/// Order `n`'s id: fixed width, so ids sort in `n` order as UUIDv7 ids sort in time order.
pub fn order_id(n: u64) -> String {
    format!("ord_{n:032x}")
}

/// Order `n` of `channel` as placement writes it: made at `NOW + n`, one line per
/// [`Line`] (ids "1", "2", …), one released ship fulfillment order per node, due today.
pub fn order(n: u64, channel: &str, lines: &[Line]) -> StoredOrder {
    let order_id = order_id(n);
    let made = NOW + n as i64;
    let mut nodes: Vec<&str> = lines.iter().filter_map(|l| l.at).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let fo_id = |node: &str| format!("fo_{n:032x}_{}", nodes.iter().position(|x| *x == node).unwrap());
    let rows: Vec<OrderLineRow> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let allocated = if l.at.is_some() { l.quantity } else { 0 };
            OrderLineRow {
                line_id: (i + 1).to_string(),
                sku: l.sku.to_owned(),
                quantity: l.quantity,
                allocated,
                backordered: l.quantity - allocated,
                unfilled: 0,
                cancelled: 0,
                shipped: 0,
                delivered: 0,
                status: if allocated > 0 { "allocated" } else { "backordered" }.to_owned(),
                promised_date: None,
                promised_ready_at_ms: None,
                jeopardy: None,
                upgraded_service_level: None,
            }
        })
        .collect();
    let allocations: Vec<AllocationRow> = lines
        .iter()
        .zip(&rows)
        .filter_map(|(l, row)| {
            l.at.map(|node| AllocationRow {
                line_id: row.line_id.clone(),
                node_id: node.to_owned(),
                sku: l.sku.to_owned(),
                quantity: l.quantity,
                fulfillment_order_id: fo_id(node),
                picked: None,
                short: 0,
                shipped: 0,
            })
        })
        .collect();
    let fulfillment_orders = nodes
        .iter()
        .map(|node| FulfillmentOrderRow {
            fulfillment_order_id: fo_id(node),
            order_id: order_id.clone(),
            node_id: (*node).to_owned(),
            kind: "ship".to_owned(),
            attempt: 1,
            status: "released".to_owned(),
            reason: None,
            created_at_ms: made,
            released_at_ms: Some(made),
            updated_at_ms: made,
            due_date: TODAY.to_owned(),
        })
        .collect();
    let (allocated, backordered): (i64, i64) =
        rows.iter().fold((0, 0), |(a, b), l| (a + l.allocated, b + l.backordered));
    let status = match (allocated, backordered) {
        (_, 0) => "allocated",
        (0, _) => "backordered",
        _ => "partially_allocated",
    };
    let document = serde_json::json!({
        "channel": channel,
        "external_id": format!("EXT-{n}"),
        "lines": lines.iter().enumerate().map(|(i, l)| serde_json::json!({
            "line_id": (i + 1).to_string(), "sku": l.sku, "quantity": l.quantity, "method": "ship"
        })).collect::<Vec<_>>(),
    });
    let mut o = StoredOrder {
        order_id,
        channel: channel.to_owned(),
        external_id: format!("EXT-{n}"),
        request_hash: format!("{n:064x}"),
        status: status.to_owned(),
        holds: Vec::new(),
        document: document.to_string(),
        decision: r#"{"plan":{"packages":[]},"explanation":{"candidates":[]}}"#.to_owned(),
        policy_name: "builtin".to_owned(),
        policy_version: 1,
        policy_hash: "ab".repeat(32),
        created_at_ms: made,
        lines: rows,
        fulfillment_orders,
        allocations,
        shipments: Vec::new(),
        attempts: Vec::new(),
        expectations: Vec::new(),
    };
    o.sort_parts();
    o
}

/// The stock an order's allocations take, per position (what placement asks for).
pub fn wants(o: &StoredOrder) -> BTreeMap<(NodeId, Sku), u64> {
    let mut wants = BTreeMap::new();
    for a in &o.allocations {
        *wants.entry((node_id(&a.node_id), sku(&a.sku))).or_insert(0) += a.quantity as u64;
    }
    wants
}

/// An event about order `order` (or about nothing), numbered `n` within its test.
pub fn event(n: u64, event_type: &str, order: Option<&StoredOrder>) -> NewEvent {
    NewEvent {
        event_id: format!("evt_{n:032x}"),
        event_type: event_type.to_owned(),
        channel: order.map(|o| o.channel.clone()),
        order_id: order.map(|o| o.order_id.clone()),
        node_id: None,
        at_ms: NOW + n as i64,
        version: 1,
        data: serde_json::json!({ "n": n, "order_id": order.map(|o| &o.order_id) }).to_string(),
        actor: Some(order.map_or_else(|| "system".to_owned(), |o| format!("channel:{}", o.channel))),
    }
}

/// The events placement writes with an order (`order.created`, `order.allocated`).
pub fn placed_events(o: &StoredOrder, first: u64) -> Vec<NewEvent> {
    let mut events = vec![event(first, "order.created", Some(o))];
    if o.lines.iter().any(|l| l.allocated > 0) {
        events.push(event(first + 1, "order.allocated", Some(o)));
    }
    events
}

/// Places `o` (its rows, events and stock in one statement) and commits; panics if a
/// position falls short.
pub async fn place(store: &Store, o: &StoredOrder, first_event: u64) {
    let mut tx = store.begin().await.unwrap();
    let wants = wants(o);
    let taken = tx.insert_order_taking(o, &placed_events(o, first_event), &wants, NOW).await.unwrap();
    assert_eq!(taken.len(), wants.len(), "every planned position covers its units");
    tx.commit().await.unwrap();
}

/// Counts a page read by a paging loop and fails once there are more than any fixture
/// needs: a cursor that does not move past its page would otherwise loop for ever.
pub fn another_page(pages: &mut usize) {
    *pages += 1;
    assert!(*pages <= 100, "paging does not end: the cursor does not move past its page");
}

/// Waits until every committed event may be served. On PostgreSQL a reader serves only
/// events of transactions older than every transaction still running in the cluster (see
/// `EventCursor`), and other tests run transactions concurrently; this waits for the
/// condition (bounded), not for a time. On SQLite nothing is ever in flight.
pub async fn settled(store: &Store) {
    let wait = async {
        while store.events_in_flight().await.unwrap() > 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), wait)
        .await
        .expect("an older transaction kept events in flight for 20 s");
}
