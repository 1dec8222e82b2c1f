//! Orders, lines, fulfillment orders, allocations, and the one statement that takes stock.
//!
//! [`Tx::allocate_many`] is check-and-take in a single conditional `UPDATE`: it adds to
//! `allocated` only while ATP covers the quantity, so concurrent transactions (on
//! PostgreSQL, across servers) can never allocate more than there is. The `CHECK`
//! constraints of `positions` are the second guard.

use std::sync::LazyLock;

use allot_core::fulfillment::next;
use allot_core::{FoEvent, FoKind, FoStatus, NodeId, Sku, Transition};

use crate::json_rows::{JsonRows, PerDialect, RowOrder, SqlType, element, given};
use crate::positions::{POSITION_COLUMNS_PLAIN, PositionRow};
use crate::{Carried, Result, Store, StoreError, StoredPosition, Tx, on_read, on_tx};

/// Binds an order's columns and rows (`$1`–`$16` of the order statements: [`ORDER_VALUES`],
/// then [`LINE_ROWS`], [`FULFILLMENT_ORDER_ROWS`], [`ALLOCATION_ROWS`] and
/// [`crate::events::EVENT_ROWS`] as JSON arrays, [`order_rows`]).
macro_rules! bind_order {
    ($query:expr, $o:expr, $lines:expr, $fos:expr, $allocs:expr, $events:expr) => {
        $query
            .bind(&$o.order_id)
            .bind(&$o.channel)
            .bind(&$o.external_id)
            .bind(&$o.request_hash)
            .bind(&$o.status)
            .bind($o.holds.join(","))
            .bind(&$o.document)
            .bind(&$o.decision)
            .bind(&$o.policy_name)
            .bind($o.policy_version)
            .bind(&$o.policy_hash)
            .bind($o.created_at_ms)
            .bind($lines)
            .bind($fos)
            .bind($allocs)
            .bind($events)
    };
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderLineRow {
    pub line_id: String,
    pub sku: String,
    pub quantity: i64,
    pub allocated: i64,
    pub backordered: i64,
    pub unfilled: i64,
    pub cancelled: i64,
    /// Units handed to a carrier or to the customer (within `allocated`).
    pub shipped: i64,
    /// Units delivered or picked up (within `shipped`).
    pub delivered: i64,
    pub status: String,
    /// The delivery date promised (YYYY-MM-DD), when the order was placed on a promise.
    pub promised_date: Option<String>,
    /// When a pickup line was promised ready at the store (placed on a pickup option).
    pub promised_ready_at_ms: Option<i64>,
    /// on_track, at_risk, late (kept by the jeopardy sweep for promised lines).
    pub jeopardy: Option<String>,
    /// The service level the line was moved up to by a jeopardy upgrade (None: as ordered).
    pub upgraded_service_level: Option<String>,
}

/// A fulfillment order as daily capacity counts it ([`Store::assigned_work`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedWork {
    pub fulfillment_order_id: String,
    pub node_id: String,
    pub created_at_ms: i64,
    /// Units allocated to it.
    pub units: i64,
}

/// A fulfillment order: an order's work at one node, of one kind (ship or pickup), made by
/// one sourcing attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FulfillmentOrderRow {
    pub fulfillment_order_id: String,
    pub order_id: String,
    pub node_id: String,
    /// `ship` or `pickup`.
    pub kind: String,
    /// The sourcing attempt that made it (1 = at capture).
    pub attempt: i64,
    pub status: String,
    /// Why it was rejected or cancelled.
    pub reason: Option<String>,
    pub created_at_ms: i64,
    /// When it went to the node (the release timeout counts from here).
    pub released_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// When it is due (YYYY-MM-DD): the earliest promised date of its lines, else the UTC
    /// day it was made. The node queue serves the earliest due date first.
    pub due_date: String,
}

/// A line's units in one fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AllocationRow {
    pub line_id: String,
    pub node_id: String,
    pub sku: String,
    /// Units this fulfillment order carries (after a short pick: the units picked).
    pub quantity: i64,
    pub fulfillment_order_id: String,
    /// Units picked (`None` until the pick is recorded).
    pub picked: Option<i64>,
    /// Units not found at pick time, written off the node's stock and re-sourced.
    pub short: i64,
    pub shipped: i64,
}

/// A parcel (or a handed-over pickup has none): carrier, tracking number, last scan.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ShipmentRow {
    pub shipment_id: String,
    pub fulfillment_order_id: String,
    pub order_id: String,
    pub node_id: String,
    pub carrier: String,
    pub tracking_number: String,
    /// shipped, in_transit, out_for_delivery, delivered, exception, delayed
    pub status: String,
    /// JSON `[{"line_id", "quantity"}]`.
    pub lines: String,
    pub detail: Option<String>,
    pub shipped_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// A re-sourcing of part of an order (attempt 1 is the capture decision on the order).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SourcingAttemptRow {
    pub attempt: i64,
    /// rejected, short_pick, release_timeout, node_paused, supply_arrived, …
    pub reason: String,
    pub failed_node_id: Option<String>,
    pub fulfillment_order_id: Option<String>,
    /// JSON: what was re-sourced and where it went.
    pub decision: String,
    pub at_ms: i64,
}

/// An order with its parts: what [`Tx::insert_order`] writes and [`Store::order`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub order_id: String,
    pub channel: String,
    pub external_id: String,
    pub request_hash: String,
    pub status: String,
    pub holds: Vec<String>,
    pub document: String,
    pub decision: String,
    pub policy_name: String,
    pub policy_version: i64,
    pub policy_hash: String,
    pub created_at_ms: i64,
    pub lines: Vec<OrderLineRow>,
    pub fulfillment_orders: Vec<FulfillmentOrderRow>,
    pub allocations: Vec<AllocationRow>,
    pub shipments: Vec<ShipmentRow>,
    pub attempts: Vec<SourcingAttemptRow>,
    /// Backordered units promised against inbound supply (see `supply`).
    pub expectations: Vec<crate::LineExpectation>,
}

pub(crate) const LINE_COLUMNS: &str = "line_id, sku, quantity, allocated, backordered, unfilled, cancelled, shipped, \
     delivered, status, promised_date, promised_ready_at_ms, jeopardy, upgraded_service_level";
pub(crate) const FO_COLUMNS: &str = "fulfillment_order_id, order_id, node_id, kind, attempt, status, reason, \
     created_at_ms, released_at_ms, updated_at_ms, due_date";
pub(crate) const ALLOCATION_COLUMNS: &str =
    "line_id, node_id, sku, quantity, fulfillment_order_id, picked, short, shipped";
const SHIPMENT_COLUMNS: &str = "shipment_id, fulfillment_order_id, order_id, node_id, carrier, tracking_number, \
     status, lines, detail, shipped_at_ms, delivered_at_ms, updated_at_ms";

type OrderRow = (String, String, String, String, String, String, String, String, String, i64, String, i64);
const ORDER_COLUMNS: &str = "order_id, channel, external_id, request_hash, status, holds, document, decision, \
     policy_name, policy_version, policy_hash, created_at_ms";
/// The parameters of [`ORDER_COLUMNS`] in the order statements.
const ORDER_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12";

/// An order's lines as the order statements read them (`$13`, the order's id `$1`): the
/// arrays [`order_rows`] writes.
const LINE_ROWS: JsonRows = JsonRows {
    table: "order_lines",
    columns: &[
        given("order_id"),
        element("line_id", SqlType::Text),
        element("sku", SqlType::Text),
        element("quantity", SqlType::BigInt),
        element("allocated", SqlType::BigInt),
        element("backordered", SqlType::BigInt),
        element("unfilled", SqlType::BigInt),
        element("cancelled", SqlType::BigInt),
        element("status", SqlType::Text),
        element("promised_date", SqlType::Text),
        element("promised_ready_at_ms", SqlType::BigInt),
    ],
};

/// Fulfillment orders of one order (its id given), as [`fulfillment_rows`] writes them.
const FULFILLMENT_ORDER_ROWS: JsonRows = JsonRows {
    table: "fulfillment_orders",
    columns: &[
        element("fulfillment_order_id", SqlType::Text),
        given("order_id"),
        element("node_id", SqlType::Text),
        element("kind", SqlType::Text),
        element("attempt", SqlType::BigInt),
        element("status", SqlType::Text),
        element("created_at_ms", SqlType::BigInt),
        element("released_at_ms", SqlType::BigInt),
        element("updated_at_ms", SqlType::BigInt),
        element("due_date", SqlType::Text),
    ],
};

/// Allocations of one order (its id given), as [`fulfillment_rows`] writes them.
const ALLOCATION_ROWS: JsonRows = JsonRows {
    table: "allocations",
    columns: &[
        given("order_id"),
        element("line_id", SqlType::Text),
        element("node_id", SqlType::Text),
        element("sku", SqlType::Text),
        element("quantity", SqlType::BigInt),
        element("fulfillment_order_id", SqlType::Text),
    ],
};

/// Reads an order and its parts with one executor expression (a pool, or a transaction's
/// connection as `&mut *conn`): six statements, a seventh when lines are backordered.
macro_rules! read_order {
    ($exec:expr, $order_id:expr) => {{
        let row = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"
        )))
        .bind($order_id)
        .fetch_optional($exec)
        .await?;
        match row {
            None => None,
            Some(r) => {
                let lines = sqlx::query_as::<_, OrderLineRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id = $1 ORDER BY line_id"
                )))
                .bind($order_id)
                .fetch_all($exec)
                .await?;
                let fulfillment_orders = sqlx::query_as::<_, FulfillmentOrderRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {FO_COLUMNS} FROM fulfillment_orders WHERE order_id = $1 \
                     ORDER BY attempt, node_id, kind, fulfillment_order_id"
                )))
                .bind($order_id)
                .fetch_all($exec)
                .await?;
                let allocations = sqlx::query_as::<_, AllocationRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE order_id = $1 \
                     ORDER BY line_id, node_id, fulfillment_order_id, sku"
                )))
                .bind($order_id)
                .fetch_all($exec)
                .await?;
                let shipments = sqlx::query_as::<_, ShipmentRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE order_id = $1 ORDER BY shipped_at_ms, shipment_id"
                )))
                .bind($order_id)
                .fetch_all($exec)
                .await?;
                // What backordered lines wait for (read only when there are any).
                let expectations = if lines.iter().any(|l| l.backordered > 0) {
                    sqlx::query_as::<_, crate::LineExpectation>(
                        "SELECT c.line_id, c.supply_id, s.node_id, c.quantity, s.eta_ms FROM supply_commitments c \
                         JOIN inbound_supply s ON s.supply_id = c.supply_id WHERE c.order_id = $1 \
                         ORDER BY c.line_id, s.eta_ms, c.supply_id",
                    )
                    .bind($order_id)
                    .fetch_all($exec)
                    .await?
                } else {
                    Vec::new()
                };
                let attempts = sqlx::query_as::<_, SourcingAttemptRow>(
                    "SELECT attempt, reason, failed_node_id, fulfillment_order_id, decision, at_ms \
                     FROM sourcing_attempts WHERE order_id = $1 ORDER BY attempt",
                )
                .bind($order_id)
                .fetch_all($exec)
                .await?;
                Some(StoredOrder {
                    order_id: r.0,
                    channel: r.1,
                    external_id: r.2,
                    request_hash: r.3,
                    status: r.4,
                    holds: r.5.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect(),
                    document: r.6,
                    decision: r.7,
                    policy_name: r.8,
                    policy_version: r.9,
                    policy_hash: r.10,
                    created_at_ms: r.11,
                    lines,
                    fulfillment_orders,
                    allocations,
                    shipments,
                    attempts,
                    expectations,
                })
            }
        }
    }};
}

/// The SQL list (`'a','b'`) of the fulfillment-order statuses `keep` selects: the core
/// decides which statuses a query means, the SQL only lists them.
fn status_list(keep: impl Fn(FoStatus) -> bool) -> String {
    FoStatus::ALL.into_iter().filter(|s| keep(*s)).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

impl Tx {
    /// Takes several positions' stock at once, each all or nothing: one statement for
    /// every (node, SKU) → units in `wants`. Answers the positions written; a position
    /// missing from the answer had too little ATP and nothing was taken there.
    pub async fn allocate_many(&mut self, wants: &Wants, now_ms: i64) -> Result<Vec<StoredPosition>> {
        if wants.is_empty() {
            return Ok(Vec::new());
        }
        static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sqlite_take(1));
        static POSTGRES: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("WITH {} {}", pg_wanted_locked(1), pg_take(1)));
        let rows = match self {
            Tx::Sqlite(t) => {
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(SQLITE.as_str()))
                    .bind(wants_json(wants))
                    .bind(now_ms)
                    .fetch_all(t.conn().await?)
                    .await?
            }
            Tx::Postgres(t) => {
                let (n, sk, q) = wants_arrays(wants);
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(POSTGRES.as_str()))
                    .bind(n)
                    .bind(sk)
                    .bind(q)
                    .bind(now_ms)
                    .fetch_all(&mut **t)
                    .await?
            }
        };
        rows.into_iter().map(StoredPosition::try_from).collect()
    }

    /// Writes an order with its lines, fulfillment orders, allocations and the events that
    /// announce it in **one round trip**, whatever the number of lines (children go in as
    /// one JSON array parameter each): on SQLite one multi-statement query (one hand-off to
    /// the connection's thread), on PostgreSQL one statement of data-modifying CTEs (foreign
    /// keys are checked at the statement's end, when every part is in). A second order with
    /// the same (channel, external_id) fails with a unique violation
    /// ([`crate::StoreError::is_unique_violation`]) and writes nothing.
    pub async fn insert_order(&mut self, o: &StoredOrder, events: &[crate::NewEvent]) -> Result<()> {
        self.write_order(o, events, None).await.map(|_| ())
    }

    /// [`Tx::insert_order`] and [`Tx::allocate_many`] in the same round trip: the order's
    /// rows, then the stock (`wants`), each position all or nothing. Answers the positions
    /// taken; with one missing the caller rolls back (the order's rows assumed it).
    /// On PostgreSQL the positions are locked in key order inside the statement (a
    /// materialized `FOR UPDATE` CTE, as [`Tx::allocate_many`] does in a statement of its
    /// own), so a hot position's lock is held from here to the commit only.
    pub async fn insert_order_taking(
        &mut self,
        o: &StoredOrder,
        events: &[crate::NewEvent],
        wants: &Wants,
        now_ms: i64,
    ) -> Result<Vec<StoredPosition>> {
        self.write_order(o, events, Some((wants, now_ms))).await
    }

    async fn write_order(
        &mut self,
        o: &StoredOrder,
        events: &[crate::NewEvent],
        take: Option<(&Wants, i64)>,
    ) -> Result<Vec<StoredPosition>> {
        let (lines, fos, allocs, events) = order_rows(o, events);
        macro_rules! order_query {
            ($sql:expr) => {
                bind_order!(
                    sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe($sql)),
                    o,
                    &lines,
                    &fos,
                    &allocs,
                    &events
                )
            };
        }
        let rows = match (self, take) {
            // The group writer's pending savepoint goes in front, in the same call.
            (Tx::Sqlite(t), None) => {
                let (sql, conn) = t.prefixed(&ORDER_SQLITE);
                let rows = order_query!(sql).fetch_all(conn).await;
                rows.inspect_err(|_| t.failed())?
            }
            (Tx::Postgres(t), None) => order_query!(ORDER_POSTGRES.as_str()).fetch_all(&mut **t).await?,
            (Tx::Sqlite(t), Some((wants, now))) => {
                let (sql, conn) = t.prefixed(&ORDER_SQLITE_TAKING);
                let rows = order_query!(sql).bind(wants_json(wants)).bind(now).fetch_all(conn).await;
                rows.inspect_err(|_| t.failed())?
            }
            (Tx::Postgres(t), Some((wants, now))) => {
                let (n, sk, q) = wants_arrays(wants);
                order_query!(ORDER_POSTGRES_TAKING.as_str())
                    .bind(n)
                    .bind(sk)
                    .bind(q)
                    .bind(now)
                    .fetch_all(&mut **t)
                    .await?
            }
        };
        rows.into_iter().map(StoredPosition::try_from).collect()
    }

    /// Writes fulfillment orders of one order with their allocations (two statements).
    pub async fn insert_fulfillment_orders(
        &mut self,
        order_id: &str,
        fos: &[FulfillmentOrderRow],
        allocations: &[AllocationRow],
    ) -> Result<()> {
        if fos.is_empty() && allocations.is_empty() {
            return Ok(());
        }
        static FOS: PerDialect = PerDialect::new(|d| FULFILLMENT_ORDER_ROWS.insert(d, "$2", &["$1"], RowOrder::Any));
        static ALLOCS: PerDialect = PerDialect::new(|d| ALLOCATION_ROWS.insert(d, "$2", &["$1"], RowOrder::Any));
        let (fos, allocs) = fulfillment_rows(fos, allocations);
        let (fos_sql, allocs_sql) = (FOS.get(self.dialect()), ALLOCS.get(self.dialect()));
        on_tx!(self, |conn| {
            sqlx::query(fos_sql).bind(order_id).bind(&fos).execute(&mut *conn).await?;
            if !allocations.is_empty() {
                sqlx::query(allocs_sql).bind(order_id).bind(&allocs).execute(&mut *conn).await?;
            }
        });
        Ok(())
    }
}

/// Units wanted per position.
type Wants = std::collections::BTreeMap<(NodeId, Sku), u64>;

/// Wanted units per position as one JSON array parameter `[[node, sku, units], …]` (SQLite).
fn wants_json(wants: &Wants) -> String {
    let rows = wants.iter().map(|((n, s), q)| serde_json::json!([n.as_str(), s.as_str(), q]));
    serde_json::Value::from(rows.collect::<Vec<_>>()).to_string()
}

/// An order with its rows in one statement (SQLite): migration 0012's view, whose trigger
/// inserts the order, its lines, fulfillment orders, allocations and events (in the order
/// given) from `$1`–`$16`. The group writer's pending savepoint goes in front.
static ORDER_SQLITE: Carried = Carried::new(sqlite_order);

/// [`ORDER_SQLITE`], then the stock: parameters from `$17` (see [`sqlite_take`]).
static ORDER_SQLITE_TAKING: Carried = Carried::new(|| format!("{}; {}", sqlite_order(), sqlite_take(17)));

fn sqlite_order() -> String {
    format!(
        "INSERT INTO order_writes ({ORDER_COLUMNS}, lines, fulfillment_orders, allocations, events) \
         VALUES ({ORDER_VALUES}, $13, $14, $15, $16)"
    )
}

/// An order's rows in one PostgreSQL statement of data-modifying CTEs ([`pg_order_rows`],
/// then the events' insert).
static ORDER_POSTGRES: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} {}", pg_order_rows(&format!("VALUES ({ORDER_VALUES})")), pg_order_events()));

/// [`ORDER_POSTGRES`], then the stock: parameters from `$17` (see [`pg_wanted_locked`],
/// [`pg_take`]).
static ORDER_POSTGRES_TAKING: LazyLock<String> = LazyLock::new(|| {
    let order = pg_order_rows(&format!("VALUES ({ORDER_VALUES})"));
    format!("WITH {order}, e AS ({}), {} {}", pg_order_events(), pg_wanted_locked(17), pg_take(17))
});

/// An order's rows as data-modifying CTEs (PostgreSQL): `o` inserts the order's columns
/// from `order` (a `VALUES` list or a `SELECT`), then `l`, `f`, `a` its lines, fulfillment
/// orders and allocations from `$13`–`$15`.
fn pg_order_rows(order: &str) -> String {
    let d = crate::json_rows::Dialect::Postgres;
    format!(
        "o AS (INSERT INTO orders ({ORDER_COLUMNS}) {order}), l AS ({}), f AS ({}), a AS ({})",
        LINE_ROWS.insert(d, "$13", &["$1"], RowOrder::Any),
        FULFILLMENT_ORDER_ROWS.insert(d, "$14", &["$1"], RowOrder::Any),
        ALLOCATION_ROWS.insert(d, "$15", &["$1"], RowOrder::Any)
    )
}

/// An order's events from `$16`, in the order given (PostgreSQL).
fn pg_order_events() -> String {
    crate::events::EVENT_ROWS.insert(crate::json_rows::Dialect::Postgres, "$16", &[], RowOrder::AsGiven)
}

/// Takes the wanted units from every position that covers them, returning those
/// positions (SQLite): `$first` the wanted units as JSON ([`wants_json`]), `$first+1` now.
/// RETURNING names columns unqualified (SQLite does not resolve the alias there), so no
/// other source has a column named like a position's.
fn sqlite_take(first: usize) -> String {
    let now = first + 1;
    format!(
        "UPDATE positions AS p SET allocated = p.allocated + w.q, version = p.version + 1, updated_at_ms = ${now} \
         FROM (SELECT v.value ->> 0 AS n, v.value ->> 1 AS s, v.value ->> 2 AS q FROM json_each(${first}) AS v) AS w \
         WHERE p.node_id = w.n AND p.sku = w.s \
           AND p.on_hand - p.damaged - p.quarantined - p.reserved - p.allocated - p.safety_stock >= w.q \
         RETURNING {POSITION_COLUMNS_PLAIN}"
    )
}

/// The wanted positions as CTEs (PostgreSQL): `w` from `$first`–`$first+2` (nodes, SKUs,
/// units as arrays, [`wants_arrays`]: the planner probes the primary key for each, where a
/// JSON set's row estimate made it scan every position), and `locked`, their rows locked in
/// key order. `UPDATE … FROM` alone locks rows in join order, which differs between
/// transactions: two orders taking the same positions deadlocked (`crates/allot/tests/crash.rs`).
fn pg_wanted_locked(first: usize) -> String {
    let (skus, units) = (first + 1, first + 2);
    format!(
        "w AS (SELECT * FROM unnest(${first}::text[], ${skus}::text[], ${units}::bigint[]) AS w (n, s, q)), \
         locked AS MATERIALIZED (SELECT p.node_id AS ln, p.sku AS ls FROM positions p \
           JOIN w ON p.node_id = w.n AND p.sku = w.s ORDER BY p.node_id, p.sku FOR UPDATE OF p)"
    )
}

/// Takes the wanted units from every locked position that covers them, returning those
/// positions (PostgreSQL, after [`pg_wanted_locked`]`(first)`; `$first+3` now).
fn pg_take(first: usize) -> String {
    let now = first + 3;
    format!(
        "UPDATE positions AS p SET allocated = p.allocated + w.q, version = p.version + 1, updated_at_ms = ${now} \
         FROM w, locked \
         WHERE p.node_id = w.n AND p.sku = w.s AND locked.ln = w.n AND locked.ls = w.s \
           AND p.on_hand - p.damaged - p.quarantined - p.reserved - p.allocated - p.safety_stock >= w.q \
         RETURNING {POSITION_COLUMNS_PLAIN}"
    )
}

/// An order's lines, fulfillment orders, allocations and events as the JSON arrays the
/// order statements read ([`LINE_ROWS`], [`FULFILLMENT_ORDER_ROWS`], [`ALLOCATION_ROWS`],
/// [`crate::events::EVENT_ROWS`]).
fn order_rows(o: &StoredOrder, events: &[crate::NewEvent]) -> (String, String, String, String) {
    let lines = serde_json::Value::from(
        o.lines
            .iter()
            .map(|l| {
                serde_json::json!([
                    l.line_id,
                    l.sku,
                    l.quantity,
                    l.allocated,
                    l.backordered,
                    l.unfilled,
                    l.cancelled,
                    l.status,
                    l.promised_date,
                    l.promised_ready_at_ms
                ])
            })
            .collect::<Vec<_>>(),
    )
    .to_string();
    let (fos, allocs) = fulfillment_rows(&o.fulfillment_orders, &o.allocations);
    (lines, fos, allocs, crate::events::event_rows(events))
}

/// What [`Store::place_order_at_once`] did.
#[derive(Debug)]
pub enum AtOnce {
    /// The order is written; these are the positions its stock was taken from.
    Placed(Vec<StoredPosition>),
    /// A planned position did not cover its units: nothing was written.
    Short,
}

/// How a store places the first attempt of an order (the store decides; the app asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPlacement {
    /// One autocommit statement ([`Store::place_order_at_once`], PostgreSQL): stock, rows
    /// and change note in one round trip.
    OneStatement,
    /// A write command ([`Store::write`]): on SQLite a savepoint in a group commit.
    WriteCommand,
}

impl Store {
    /// How this store places an order's first attempt (later attempts always go through
    /// [`Store::write`]).
    pub fn first_placement(&self) -> FirstPlacement {
        match self {
            Store::Postgres(_) => FirstPlacement::OneStatement,
            Store::Sqlite(_) => FirstPlacement::WriteCommand,
        }
    }

    /// Places an order in one autocommit statement (PostgreSQL only; SQLite places orders
    /// through its group writer): the planned stock is taken from every position
    /// ([`pg_wanted_locked`], [`pg_take`]), and the order's rows are written only if every
    /// position covered its units (`allot_all_taken`, migration 0013), with the change
    /// note for other servers (`pg_notify`, delivered at commit). One round trip, and a
    /// hot position's row lock is held for the statement and its commit only. A repeated
    /// `(channel, external_id)` is the orders table's unique-key error.
    pub async fn place_order_at_once(
        &self,
        o: &StoredOrder,
        events: &[crate::NewEvent],
        wants: &Wants,
        now_ms: i64,
        note: impl FnOnce() -> String,
    ) -> Result<AtOnce> {
        let Store::Postgres(pg) = self else {
            return Err(StoreError::BadConfig("one-statement placement is PostgreSQL's".to_owned()));
        };
        let (lines, fos, allocs, rows) = order_rows(o, events);
        let (n, sk, q) = wants_arrays(wants);
        let taken = bind_order!(
            sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(ORDER_AT_ONCE.as_str())),
            o,
            &lines,
            &fos,
            &allocs,
            &rows
        )
        .bind(n)
        .bind(sk)
        .bind(q)
        .bind(now_ms)
        .bind(crate::changes::CHANGE_CHANNEL)
        .bind(note())
        .fetch_all(&pg.placement)
        .await;
        match taken {
            Ok(rows) => Ok(AtOnce::Placed(rows.into_iter().map(StoredPosition::try_from).collect::<Result<_>>()?)),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("AL001") => Ok(AtOnce::Short),
            Err(e) => Err(e.into()),
        }
    }
}

/// [`Store::place_order_at_once`]'s statement: the stock first (`$17`–`$20`), then the
/// order's rows, whose `o` inserts the order only if every position covered its units, with
/// the change note (`$21`, `$22`).
static ORDER_AT_ONCE: LazyLock<String> = LazyLock::new(|| {
    let order = pg_order_rows(&format!(
        "SELECT {ORDER_VALUES} FROM (SELECT count(*) AS n FROM take) AS t, (SELECT pg_notify($21, $22)) AS note \
         WHERE allot_all_taken(t.n, cardinality($17::text[]))"
    ));
    format!(
        "WITH {}, take AS ({}), {order}, e AS ({}) SELECT * FROM take",
        pg_wanted_locked(17),
        pg_take(17),
        pg_order_events()
    )
});

/// Wanted units per position as three array parameters: nodes, SKUs, units (PostgreSQL).
fn wants_arrays(wants: &Wants) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let nodes = wants.keys().map(|(n, _)| n.to_string()).collect();
    let skus = wants.keys().map(|(_, s)| s.to_string()).collect();
    let units = wants.values().map(|q| i64::try_from(*q).unwrap_or(i64::MAX)).collect();
    (nodes, skus, units)
}

/// The JSON array parameters of fulfillment orders and allocations (see
/// [`Tx::insert_fulfillment_orders`]).
fn fulfillment_rows(fos: &[FulfillmentOrderRow], allocations: &[AllocationRow]) -> (String, String) {
    let fos = serde_json::Value::from(
        fos.iter()
            .map(|f| {
                serde_json::json!([
                    f.fulfillment_order_id,
                    f.node_id,
                    f.kind,
                    f.attempt,
                    f.status,
                    f.created_at_ms,
                    f.released_at_ms,
                    f.updated_at_ms,
                    f.due_date
                ])
            })
            .collect::<Vec<_>>(),
    )
    .to_string();
    let allocs = serde_json::Value::from(
        allocations
            .iter()
            .map(|a| serde_json::json!([a.line_id, a.node_id, a.sku, a.quantity, a.fulfillment_order_id]))
            .collect::<Vec<_>>(),
    )
    .to_string();
    (fos, allocs)
}

impl Tx {
    /// Locks an order for a change (PostgreSQL: row lock; SQLite: the write lock is held
    /// already). Every change to an order takes this lock first. `false` if it does not exist.
    pub async fn lock_order(&mut self, order_id: &str) -> Result<bool> {
        let found = match self {
            Tx::Sqlite(t) => sqlx::query_scalar::<_, String>("SELECT order_id FROM orders WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(t.conn().await?)
                .await?
                .is_some(),
            Tx::Postgres(t) => {
                sqlx::query_scalar::<_, String>("SELECT order_id FROM orders WHERE order_id = $1 FOR UPDATE")
                    .bind(order_id)
                    .fetch_optional(&mut **t)
                    .await?
                    .is_some()
            }
        };
        Ok(found)
    }

    pub async fn update_order(&mut self, order_id: &str, status: &str, holds: &[String]) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("UPDATE orders SET status = $2, holds = $3 WHERE order_id = $1")
                .bind(order_id)
                .bind(status)
                .bind(holds.join(","))
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    pub async fn update_line(&mut self, order_id: &str, l: &OrderLineRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE order_lines SET allocated = $3, backordered = $4, unfilled = $5, cancelled = $6, status = $7, \
                   shipped = $8, delivered = $9 WHERE order_id = $1 AND line_id = $2",
            )
            .bind(order_id)
            .bind(&l.line_id)
            .bind(l.allocated)
            .bind(l.backordered)
            .bind(l.unfilled)
            .bind(l.cancelled)
            .bind(&l.status)
            .bind(l.shipped)
            .bind(l.delivered)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    pub async fn set_line_jeopardy(&mut self, order_id: &str, line_id: &str, jeopardy: &str) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("UPDATE order_lines SET jeopardy = $3 WHERE order_id = $1 AND line_id = $2")
                .bind(order_id)
                .bind(line_id)
                .bind(jeopardy)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Records a jeopardy upgrade of a line's service level.
    pub async fn set_line_service_upgrade(&mut self, order_id: &str, line_id: &str, level: &str) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("UPDATE order_lines SET upgraded_service_level = $3 WHERE order_id = $1 AND line_id = $2")
                .bind(order_id)
                .bind(line_id)
                .bind(level)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Writes an allocation's counts (a quantity of zero stays as a record: everything
    /// cancelled or not found).
    pub async fn update_allocation(&mut self, a: &AllocationRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE allocations SET quantity = $3, picked = $4, short = $5, shipped = $6 \
                 WHERE fulfillment_order_id = $1 AND line_id = $2 AND sku = $7",
            )
            .bind(&a.fulfillment_order_id)
            .bind(&a.line_id)
            .bind(a.quantity)
            .bind(a.picked)
            .bind(a.short)
            .bind(a.shipped)
            .bind(&a.sku)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Writes a fulfillment order's status, reason and times.
    pub async fn update_fulfillment_order(&mut self, f: &FulfillmentOrderRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE fulfillment_orders SET status = $2, reason = $3, released_at_ms = $4, updated_at_ms = $5 \
                 WHERE fulfillment_order_id = $1",
            )
            .bind(&f.fulfillment_order_id)
            .bind(&f.status)
            .bind(&f.reason)
            .bind(f.released_at_ms)
            .bind(f.updated_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// The order a fulfillment order belongs to (to lock the order before changing it).
    pub async fn fulfillment_order_owner(&mut self, fulfillment_order_id: &str) -> Result<Option<(String, String)>> {
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT order_id, node_id FROM fulfillment_orders WHERE fulfillment_order_id = $1",
            )
            .bind(fulfillment_order_id)
            .fetch_optional(conn)
            .await?
        });
        Ok(row)
    }

    /// The order a shipment belongs to, by tracking number.
    pub async fn shipment_owner(&mut self, tracking_number: &str) -> Result<Option<String>> {
        let row = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, String>("SELECT order_id FROM shipments WHERE tracking_number = $1")
                .bind(tracking_number)
                .fetch_optional(conn)
                .await?
        });
        Ok(row)
    }

    pub async fn insert_shipment(&mut self, sh: &ShipmentRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO shipments ({SHIPMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )))
            .bind(&sh.shipment_id)
            .bind(&sh.fulfillment_order_id)
            .bind(&sh.order_id)
            .bind(&sh.node_id)
            .bind(&sh.carrier)
            .bind(&sh.tracking_number)
            .bind(&sh.status)
            .bind(&sh.lines)
            .bind(&sh.detail)
            .bind(sh.shipped_at_ms)
            .bind(sh.delivered_at_ms)
            .bind(sh.updated_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Writes a shipment's status, detail and delivery time.
    pub async fn update_shipment(&mut self, sh: &ShipmentRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE shipments SET status = $2, detail = $3, delivered_at_ms = $4, updated_at_ms = $5 \
                 WHERE shipment_id = $1",
            )
            .bind(&sh.shipment_id)
            .bind(&sh.status)
            .bind(&sh.detail)
            .bind(sh.delivered_at_ms)
            .bind(sh.updated_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    pub async fn insert_sourcing_attempt(&mut self, order_id: &str, a: &SourcingAttemptRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO sourcing_attempts (order_id, attempt, reason, failed_node_id, fulfillment_order_id, \
                   decision, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(order_id)
            .bind(a.attempt)
            .bind(&a.reason)
            .bind(&a.failed_node_id)
            .bind(&a.fulfillment_order_id)
            .bind(&a.decision)
            .bind(a.at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// An order with its parts, read inside this transaction (sees its own writes).
    pub async fn order(&mut self, order_id: &str) -> Result<Option<StoredOrder>> {
        let found = on_tx!(self, |conn| read_order!(&mut *conn, order_id));
        Ok(found)
    }

    pub async fn insert_cancellation(
        &mut self,
        order_id: &str,
        line_id: &str,
        quantity: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO cancellations (order_id, line_id, quantity, reason, cancelled_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(order_id)
            .bind(line_id)
            .bind(quantity)
            .bind(reason)
            .bind(now_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

impl StoredOrder {
    /// Puts lines, fulfillment orders and allocations in the order [`Store::order`] reads
    /// them back in, so an answer built before a read equals the read.
    pub fn sort_parts(&mut self) {
        self.lines.sort_by(|a, b| a.line_id.cmp(&b.line_id));
        self.fulfillment_orders.sort_by(|a, b| {
            (a.attempt, &a.node_id, &a.kind, &a.fulfillment_order_id).cmp(&(
                b.attempt,
                &b.node_id,
                &b.kind,
                &b.fulfillment_order_id,
            ))
        });
        self.allocations.sort_by(|a, b| {
            (&a.line_id, &a.node_id, &a.fulfillment_order_id, &a.sku).cmp(&(
                &b.line_id,
                &b.node_id,
                &b.fulfillment_order_id,
                &b.sku,
            ))
        });
    }
}

impl Store {
    /// The order id and request hash of a channel's order, if it exists (read pool).
    pub async fn order_ref(&self, channel: &str, external_id: &str) -> Result<Option<(String, String)>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT order_id, request_hash FROM orders WHERE channel = $1 AND external_id = $2",
            )
            .bind(channel)
            .bind(external_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    pub async fn order(&self, order_id: &str) -> Result<Option<StoredOrder>> {
        let found = on_read!(self, |pool| read_order!(pool, order_id));
        Ok(found)
    }

    /// Units held by allocations of fulfillment orders that still hold stock, and the sum
    /// of the positions' allocated column, for checks (the two must be equal).
    pub async fn allocation_totals(&self) -> Result<(i64, i64)> {
        let holding = status_list(FoStatus::holds_stock);
        let sums = on_read!(self, |pool| {
            let a: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(SUM(a.quantity) AS BIGINT) FROM allocations a JOIN fulfillment_orders f \
                   ON f.fulfillment_order_id = a.fulfillment_order_id WHERE f.status IN ({holding})"
            )))
            .fetch_one(pool)
            .await?;
            let p: Option<i64> =
                sqlx::query_scalar("SELECT CAST(SUM(allocated) AS BIGINT) FROM positions").fetch_one(pool).await?;
            (a.unwrap_or(0), p.unwrap_or(0))
        });
        Ok(sums)
    }
}

/// A listing's `WHERE` clause holding only the filters given, their parameters numbered
/// in order. Written as `($1 IS NULL OR node_id = $1)`, SQLite plans a filter as a scan of
/// every row; named only when given, it reads a node's queue off
/// `fulfillment_orders_by_due` and a channel's orders off `orders_by_channel`.
#[derive(Debug, Default)]
struct Conditions {
    terms: Vec<String>,
    params: usize,
}

impl Conditions {
    /// Adds `term` when `given`; its placeholders `$a` and `$b` become the next parameters
    /// (bind their values in the order the terms are added).
    fn when(&mut self, given: bool, term: &str) -> &mut Conditions {
        if given {
            let mut term = term.to_owned();
            for local in ["$a", "$b"] {
                if term.contains(local) {
                    term = term.replace(local, &format!("${}", self.param()));
                }
            }
            self.terms.push(term);
        }
        self
    }

    /// The next parameter's number.
    fn param(&mut self) -> usize {
        self.params += 1;
        self.params
    }

    /// `WHERE` and the terms, or nothing.
    fn clause(&self) -> String {
        if self.terms.is_empty() { String::new() } else { format!("WHERE {}", self.terms.join(" AND ")) }
    }
}

/// Filters for [`Store::list_orders`]. Orders come newest first (order ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub channel: Option<String>,
    pub status: Option<String>,
    /// Orders with a line of this SKU.
    pub sku: Option<String>,
    /// Orders with a fulfillment order at this node.
    pub node_id: Option<String>,
    /// The channel's order number (any channel unless `channel` says).
    pub external_id: Option<String>,
    /// The customer's e-mail, case-insensitively.
    pub email: Option<String>,
    /// The customer's phone, as the channel sent it.
    pub phone: Option<String>,
    /// Orders with a shipment of this tracking number.
    pub tracking_number: Option<String>,
    /// Orders with a line `at_risk` or `late` (only those two: the index holds no others).
    pub jeopardy: Option<String>,
    pub created_after_ms: Option<i64>,
    pub created_before_ms: Option<i64>,
    /// Only orders older than this order id (the cursor of the previous page).
    pub before_order_id: Option<String>,
    /// Most orders answered.
    pub limit: i64,
}

/// An order in a listing: everything but the captured document and sourcing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub order_id: String,
    pub channel: String,
    pub external_id: String,
    pub status: String,
    pub holds: Vec<String>,
    pub policy_name: String,
    pub policy_version: i64,
    pub created_at_ms: i64,
    pub lines: Vec<OrderLineRow>,
    pub fulfillment_orders: Vec<FulfillmentOrderRow>,
    pub allocations: Vec<AllocationRow>,
}

type SummaryRow = (String, String, String, String, String, String, i64, i64);

#[derive(sqlx::FromRow)]
struct KeyedLine {
    order_id: String,
    #[sqlx(flatten)]
    row: OrderLineRow,
}

#[derive(sqlx::FromRow)]
struct KeyedAllocation {
    order_id: String,
    #[sqlx(flatten)]
    row: AllocationRow,
}

/// Binds an [`OrderFilter`]'s values in the order [`Store::order_page_sql`] numbers them.
macro_rules! bind_order_filter {
    ($query:expr, $f:expr) => {{
        let f: &OrderFilter = $f;
        let mut query = $query;
        let texts = [&f.channel, &f.status, &f.sku, &f.node_id, &f.external_id, &f.email, &f.phone];
        for text in texts.into_iter().chain([&f.tracking_number, &f.jeopardy]).flatten() {
            query = query.bind(text);
        }
        for ms in [f.created_after_ms, f.created_before_ms].into_iter().flatten() {
            query = query.bind(ms);
        }
        if let Some(before) = &f.before_order_id {
            query = query.bind(before);
        }
        query.bind(f.limit)
    }};
}

impl Store {
    /// The statement of one page of [`Store::list_orders`] (`prefix`: e.g. `EXPLAIN`).
    fn order_page_sql(&self, f: &OrderFilter, prefix: &str) -> String {
        let mut filter = Conditions::default();
        filter
            .when(f.channel.is_some(), "o.channel = $a")
            .when(f.status.is_some(), "o.status = $a")
            .when(f.sku.is_some(), "EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.order_id AND l.sku = $a)")
            .when(
                f.node_id.is_some(),
                "EXISTS (SELECT 1 FROM fulfillment_orders f WHERE f.order_id = o.order_id AND f.node_id = $a)",
            )
            .when(f.external_id.is_some(), "o.external_id = $a")
            // The same expressions as the indexes of migration 0016.
            .when(
                f.email.is_some(),
                match self {
                    Store::Postgres(_) => "lower(o.document::jsonb #>> '{customer,email}') = lower($a)",
                    Store::Sqlite(_) => "lower(json_extract(o.document, '$.customer.email')) = lower($a)",
                },
            )
            .when(
                f.phone.is_some(),
                match self {
                    Store::Postgres(_) => "(o.document::jsonb #>> '{customer,phone}') = $a",
                    Store::Sqlite(_) => "json_extract(o.document, '$.customer.phone') = $a",
                },
            )
            .when(
                f.tracking_number.is_some(),
                "o.order_id IN (SELECT s.order_id FROM shipments s WHERE s.tracking_number = $a)",
            )
            .when(
                f.jeopardy.is_some(),
                "o.order_id IN (SELECT l.order_id FROM order_lines l \
                 WHERE l.jeopardy = $a AND l.jeopardy IN ('at_risk', 'late'))",
            )
            .when(f.created_after_ms.is_some(), "o.created_at_ms > $a")
            .when(f.created_before_ms.is_some(), "o.created_at_ms < $a")
            .when(f.before_order_id.is_some(), "o.order_id < $a");
        let (filter, limit) = (filter.clause(), filter.param());
        format!(
            "{prefix}SELECT o.order_id, o.channel, o.external_id, o.status, o.holds, o.policy_name, o.policy_version, \
               o.created_at_ms FROM orders o {filter} ORDER BY o.order_id DESC LIMIT ${limit}"
        )
    }

    /// Whether an order was ever placed with this customer e-mail (any case), read through
    /// the e-mail index of migration 0016 (the same expression as the listing's filter).
    pub async fn customer_has_orders(&self, email: &str) -> Result<bool> {
        let sql = match self {
            Store::Postgres(_) => {
                "SELECT 1 FROM orders o WHERE lower(o.document::jsonb #>> '{customer,email}') = lower($1) LIMIT 1"
            }
            Store::Sqlite(_) => {
                "SELECT 1 FROM orders o WHERE lower(json_extract(o.document, '$.customer.email')) = lower($1) LIMIT 1"
            }
        };
        let found: Option<(i32,)> =
            on_read!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(pool).await?);
        Ok(found.is_some())
    }

    /// How the database would read one page of [`Store::list_orders`]: its plan, one line
    /// per step (PostgreSQL: `EXPLAIN` with sequential scans discouraged, so a usable index
    /// shows even on small tables; SQLite: `EXPLAIN QUERY PLAN`). For tests that keep every
    /// listing on an index, and for operators asking why a listing is slow.
    pub async fn explain_list_orders(&self, f: &OrderFilter) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => {
                let page = self.order_page_sql(f, "EXPLAIN QUERY PLAN ");
                let query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(page.as_str()));
                let rows = bind_order_filter!(query, f).fetch_all(&s.read).await?;
                Ok(rows.into_iter().map(|r| r.3).collect())
            }
            Store::Postgres(s) => {
                let page = self.order_page_sql(f, "EXPLAIN ");
                let mut tx = s.pool.begin().await?;
                sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
                let query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(page.as_str()));
                let rows = bind_order_filter!(query, f).fetch_all(&mut *tx).await?;
                tx.rollback().await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }
        }
    }
}

impl Store {
    /// One page of orders matching `filter`, newest first, with their lines, fulfillment
    /// orders and allocations (three more statements for the whole page).
    pub async fn list_orders(&self, f: &OrderFilter) -> Result<Vec<OrderSummary>> {
        let ids_param = |ids: &[String]| serde_json::Value::from(ids.to_vec()).to_string();
        let in_ids = self.dialect().in_array(1, SqlType::Text);
        let page = self.order_page_sql(f, "");
        let (rows, lines, fos, allocs) = on_read!(self, |pool| {
            let query = sqlx::query_as::<_, SummaryRow>(sqlx::AssertSqlSafe(page.as_str()));
            let rows = bind_order_filter!(query, f).fetch_all(pool).await?;
            let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            let p = ids_param(&ids);
            let lines = sqlx::query_as::<_, KeyedLine>(sqlx::AssertSqlSafe(format!(
                "SELECT order_id, {LINE_COLUMNS} FROM order_lines WHERE order_id {in_ids} ORDER BY order_id, line_id"
            )))
            .bind(&p)
            .fetch_all(pool)
            .await?;
            let fos = sqlx::query_as::<_, FulfillmentOrderRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {FO_COLUMNS} FROM fulfillment_orders WHERE order_id {in_ids} \
                 ORDER BY order_id, attempt, node_id, kind, fulfillment_order_id"
            )))
            .bind(&p)
            .fetch_all(pool)
            .await?;
            let allocs = sqlx::query_as::<_, KeyedAllocation>(sqlx::AssertSqlSafe(format!(
                "SELECT order_id, {ALLOCATION_COLUMNS} FROM allocations WHERE order_id {in_ids} \
                 ORDER BY order_id, line_id, node_id, fulfillment_order_id, sku"
            )))
            .bind(&p)
            .fetch_all(pool)
            .await?;
            (rows, lines, fos, allocs)
        });
        let mut out: Vec<OrderSummary> = rows
            .into_iter()
            .map(|r| OrderSummary {
                order_id: r.0,
                channel: r.1,
                external_id: r.2,
                status: r.3,
                holds: r.4.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect(),
                policy_name: r.5,
                policy_version: r.6,
                created_at_ms: r.7,
                lines: Vec::new(),
                fulfillment_orders: Vec::new(),
                allocations: Vec::new(),
            })
            .collect();
        let index: std::collections::HashMap<String, usize> =
            out.iter().enumerate().map(|(i, o)| (o.order_id.clone(), i)).collect();
        for l in lines {
            if let Some(&i) = index.get(&l.order_id) {
                out[i].lines.push(l.row);
            }
        }
        for f in fos {
            if let Some(&i) = index.get(&f.order_id) {
                out[i].fulfillment_orders.push(f);
            }
        }
        for a in allocs {
            if let Some(&i) = index.get(&a.order_id) {
                out[i].allocations.push(a.row);
            }
        }
        Ok(out)
    }
}

/// Filters for [`Store::list_fulfillment_orders`]: a node's work queue, oldest first.
#[derive(Debug, Clone, Default)]
pub struct FulfillmentOrderFilter {
    pub node_id: Option<String>,
    pub status: Option<String>,
    /// Only fulfillment orders after this one in queue order: its due date and id (the
    /// cursor of the previous page).
    pub after: Option<(String, String)>,
    pub limit: i64,
}

/// A fulfillment order with its lines (allocations) and shipments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentOrderEntry {
    pub fulfillment_order: FulfillmentOrderRow,
    pub lines: Vec<AllocationRow>,
    pub shipments: Vec<ShipmentRow>,
}

impl Store {
    /// One page of fulfillment orders, oldest first. Ids are time-ordered (UUIDv7), so id
    /// order is creation order; until promised dates exist (issue 5) the oldest
    /// fulfillment order is the one with the oldest promise.
    pub async fn list_fulfillment_orders(&self, f: &FulfillmentOrderFilter) -> Result<Vec<FulfillmentOrderEntry>> {
        let in_ids = self.dialect().in_array(1, SqlType::Text);
        let mut filter = Conditions::default();
        filter
            .when(f.node_id.is_some(), "node_id = $a")
            .when(f.status.is_some(), "status = $a")
            .when(f.after.is_some(), "(due_date > $a OR (due_date = $a AND fulfillment_order_id > $b))");
        let (filter, limit) = (filter.clause(), filter.param());
        let page = format!(
            "SELECT {FO_COLUMNS} FROM fulfillment_orders {filter} ORDER BY due_date, fulfillment_order_id LIMIT ${limit}"
        );
        let (fos, allocs, shipments) = on_read!(self, |pool| {
            let mut query = sqlx::query_as::<_, FulfillmentOrderRow>(sqlx::AssertSqlSafe(page.as_str()));
            if let Some(node) = &f.node_id {
                query = query.bind(node);
            }
            if let Some(status) = &f.status {
                query = query.bind(status);
            }
            if let Some((due, id)) = &f.after {
                query = query.bind(due).bind(id);
            }
            let fos = query.bind(f.limit).fetch_all(pool).await?;
            let ids = serde_json::Value::from(fos.iter().map(|f| f.fulfillment_order_id.clone()).collect::<Vec<_>>())
                .to_string();
            let allocs = sqlx::query_as::<_, AllocationRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE fulfillment_order_id {in_ids} \
                 ORDER BY fulfillment_order_id, line_id, sku"
            )))
            .bind(&ids)
            .fetch_all(pool)
            .await?;
            let shipments = sqlx::query_as::<_, ShipmentRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE fulfillment_order_id {in_ids} \
                 ORDER BY shipped_at_ms, shipment_id"
            )))
            .bind(&ids)
            .fetch_all(pool)
            .await?;
            (fos, allocs, shipments)
        });
        Ok(fos
            .into_iter()
            .map(|fo| FulfillmentOrderEntry {
                lines: allocs.iter().filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id).cloned().collect(),
                shipments: shipments
                    .iter()
                    .filter(|s| s.fulfillment_order_id == fo.fulfillment_order_id)
                    .cloned()
                    .collect(),
                fulfillment_order: fo,
            })
            .collect())
    }

    /// Same-day work a node took on for local day `day` (YYYY-MM-DD, starting at
    /// `day_start_ms`): its live fulfillment orders made since then carrying lines promised
    /// for that same day.
    pub async fn same_day_work(&self, node_id: &str, day: &str, day_start_ms: i64) -> Result<i64> {
        let n = on_read!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(DISTINCT f.fulfillment_order_id) FROM fulfillment_orders f \
                 JOIN allocations a ON a.fulfillment_order_id = f.fulfillment_order_id \
                 JOIN order_lines l ON l.order_id = a.order_id AND l.line_id = a.line_id \
                 WHERE f.node_id = $1 AND l.promised_date = $2 AND f.created_at_ms >= $3 \
                   AND f.status NOT IN ('rejected', 'cancelled')",
            )
            .bind(node_id)
            .bind(day)
            .bind(day_start_ms)
            .fetch_one(pool)
            .await?
        });
        Ok(n)
    }

    /// Fulfillment orders whose id is `from_id` or later and that were made at
    /// `created_from_ms` or later, with their node, creation time and allocated units: what
    /// nodes were assigned (the engine's daily capacity, `App::refresh_node_load`). Ids are
    /// time-ordered (UUIDv7), so a recent `from_id` reads a short range of the primary key;
    /// `"fo_"` with a day's start reads a whole day (by scan, once at start-up).
    pub async fn assigned_work(&self, from_id: &str, created_from_ms: i64) -> Result<Vec<AssignedWork>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String, i64, i64)>(
                "SELECT f.fulfillment_order_id, f.node_id, f.created_at_ms, \
                   CAST(COALESCE((SELECT SUM(a.quantity) FROM allocations a \
                     WHERE a.fulfillment_order_id = f.fulfillment_order_id), 0) AS BIGINT) \
                 FROM fulfillment_orders f \
                 WHERE f.fulfillment_order_id >= $1 AND f.created_at_ms >= $2",
            )
            .bind(from_id)
            .bind(created_from_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(fulfillment_order_id, node_id, created_at_ms, units)| AssignedWork {
                fulfillment_order_id,
                node_id,
                created_at_ms,
                units,
            })
            .collect())
    }

    /// Per node, the released fulfillment orders not yet handed over or made ready (what
    /// daily capacity still has to work off).
    pub async fn open_work_by_node(&self) -> Result<Vec<(String, i64)>> {
        // Held work (`created`) waits for its hold, not for the node's capacity.
        let open = status_list(|s| s.holds_stock() && !matches!(s, FoStatus::ReadyForPickup | FoStatus::Created));
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(format!(
                "SELECT node_id, COUNT(*) FROM fulfillment_orders WHERE status IN ({open}) GROUP BY node_id"
            )))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Fulfillment orders not yet picked at paused or closed nodes, oldest first, with the
    /// node's status.
    pub async fn disrupted_fulfillment_orders(&self, limit: i64) -> Result<Vec<(String, String)>> {
        // The statuses a withdrawal may move (the core's transition table says which).
        let movable = status_list(|s| matches!(next(s, FoEvent::Withdraw, FoKind::Ship), Ok(Transition::To(_))));
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
                "SELECT f.fulfillment_order_id, n.status FROM fulfillment_orders f \
                 JOIN nodes n ON n.node_id = f.node_id \
                 WHERE n.status IN ('paused', 'closed') AND f.status IN ({movable}) \
                 ORDER BY f.fulfillment_order_id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Orders with promised lines not yet delivered or cancelled, after `after_order_id`,
    /// in id order (the jeopardy sweep's pages).
    pub async fn promised_open_orders(&self, after_order_id: &str, limit: i64) -> Result<Vec<String>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT order_id FROM order_lines \
                 WHERE (promised_date IS NOT NULL OR promised_ready_at_ms IS NOT NULL) \
                   AND status NOT IN ('delivered', 'cancelled') AND order_id > $1 ORDER BY order_id LIMIT $2",
            )
            .bind(after_order_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Whether any order line has backordered units (an indexed probe).
    pub async fn has_backorders(&self) -> Result<bool> {
        let found = on_read!(self, |pool| {
            sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM order_lines WHERE backordered > 0)")
                .fetch_one(pool)
                .await?
        });
        Ok(found)
    }

    /// Orders with backordered units of any of `skus`, the oldest promise first: by the
    /// earliest promised date among those lines (unpromised after all promised), then by
    /// order id (creation order). `after` continues after an entry of a previous page.
    /// Answers (order id, its promise key).
    pub async fn backordered_orders(
        &self,
        skus: &[String],
        after: Option<&(Option<String>, String)>,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>)>> {
        let param = serde_json::Value::from(skus.to_vec()).to_string();
        let in_skus = self.dialect().in_array(1, SqlType::Text);
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, Option<String>)>(sqlx::AssertSqlSafe(format!(
                "SELECT order_id, p FROM (SELECT order_id, MIN(promised_date) AS p FROM order_lines \
                   WHERE backordered > 0 AND sku {in_skus} GROUP BY order_id) AS t \
                 WHERE ($2 IS NULL \
                        OR ($3 IS NOT NULL AND (p > $3 OR p IS NULL OR (p = $3 AND order_id > $2))) \
                        OR ($3 IS NULL AND p IS NULL AND order_id > $2)) \
                 ORDER BY (p IS NULL), p, order_id LIMIT $4"
            )))
            .bind(&param)
            .bind(after.map(|a| &a.1))
            .bind(after.and_then(|a| a.0.as_ref()))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The order and node of a fulfillment order (read pool).
    pub async fn fulfillment_order_owner(&self, fulfillment_order_id: &str) -> Result<Option<(String, String)>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT order_id, node_id FROM fulfillment_orders WHERE fulfillment_order_id = $1",
            )
            .bind(fulfillment_order_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Fulfillment orders released to their nodes before `released_before_ms` and not yet
    /// accepted (the release timeout), oldest first, at most `limit`.
    pub async fn unaccepted_fulfillment_orders(&self, released_before_ms: i64, limit: i64) -> Result<Vec<String>> {
        let ids = on_read!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT fulfillment_order_id FROM fulfillment_orders \
                 WHERE status = 'released' AND released_at_ms < $1 ORDER BY released_at_ms LIMIT $2",
            )
            .bind(released_before_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EVENT_ROWS;
    use crate::json_rows::Dialect;

    /// SQLite writes an order's rows through migration 0012's trigger, whose SQL a migration
    /// fixes: it must read each row's array as the layouts spell it (so, as [`order_rows`]
    /// writes it). Read from a migrated database, so a later migration that replaces the
    /// trigger is what is checked.
    #[tokio::test]
    async fn sqlites_order_trigger_reads_rows_as_the_layouts_spell_them() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("allot-trigger-{}-{nanos}", std::process::id()));
        let store = Store::open(&crate::DbConfig::Sqlite { path: dir.join("allot.db") }).await.unwrap();
        let trigger: String = on_read!(&store, |pool| {
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'order_writes_insert'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        let trigger = trigger.split_whitespace().collect::<Vec<_>>().join(" ");
        let reads = [
            LINE_ROWS.insert(Dialect::Sqlite, "NEW.lines", &["NEW.order_id"], RowOrder::Any),
            FULFILLMENT_ORDER_ROWS.insert(Dialect::Sqlite, "NEW.fulfillment_orders", &["NEW.order_id"], RowOrder::Any),
            ALLOCATION_ROWS.insert(Dialect::Sqlite, "NEW.allocations", &["NEW.order_id"], RowOrder::Any),
            EVENT_ROWS.insert(Dialect::Sqlite, "NEW.events", &[], RowOrder::AsGiven),
        ];
        for read in reads {
            assert!(trigger.contains(&format!("{read};")), "the trigger does not read\n{read}\nbut\n{trigger}");
        }
    }

    /// Every array [`order_rows`] writes holds as many values as its layout reads.
    #[test]
    fn order_rows_carry_as_many_values_as_their_layouts_read() {
        let line = OrderLineRow {
            line_id: "1".to_owned(),
            sku: "SKU-1".to_owned(),
            quantity: 1,
            allocated: 1,
            backordered: 0,
            unfilled: 0,
            cancelled: 0,
            shipped: 0,
            delivered: 0,
            status: "allocated".to_owned(),
            promised_date: None,
            promised_ready_at_ms: None,
            jeopardy: None,
            upgraded_service_level: None,
        };
        let fo = FulfillmentOrderRow {
            fulfillment_order_id: "fo_1".to_owned(),
            order_id: "ord_1".to_owned(),
            node_id: "DC-1".to_owned(),
            kind: "ship".to_owned(),
            attempt: 1,
            status: "released".to_owned(),
            reason: None,
            created_at_ms: 0,
            released_at_ms: Some(0),
            updated_at_ms: 0,
            due_date: "1970-01-01".to_owned(),
        };
        let allocation = AllocationRow {
            line_id: "1".to_owned(),
            node_id: "DC-1".to_owned(),
            sku: "SKU-1".to_owned(),
            quantity: 1,
            fulfillment_order_id: "fo_1".to_owned(),
            picked: None,
            short: 0,
            shipped: 0,
        };
        let order = StoredOrder {
            order_id: "ord_1".to_owned(),
            channel: "web".to_owned(),
            external_id: "W-1".to_owned(),
            request_hash: "0".repeat(64),
            status: "allocated".to_owned(),
            holds: Vec::new(),
            document: "{}".to_owned(),
            decision: "{}".to_owned(),
            policy_name: "builtin".to_owned(),
            policy_version: 1,
            policy_hash: "h".to_owned(),
            created_at_ms: 0,
            lines: vec![line],
            fulfillment_orders: vec![fo],
            allocations: vec![allocation],
            shipments: Vec::new(),
            attempts: Vec::new(),
            expectations: Vec::new(),
        };
        let event = crate::NewEvent {
            event_id: "evt_1".to_owned(),
            event_type: "order.created".to_owned(),
            channel: None,
            order_id: None,
            node_id: None,
            at_ms: 0,
            version: 1,
            data: "{}".to_owned(),
            actor: None,
        };
        let (lines, fos, allocs, events) = order_rows(&order, &[event]);
        let width = |rows: &str| {
            let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(rows).unwrap();
            rows[0].len()
        };
        assert_eq!(width(&lines), LINE_ROWS.elements());
        assert_eq!(width(&fos), FULFILLMENT_ORDER_ROWS.elements());
        assert_eq!(width(&allocs), ALLOCATION_ROWS.elements());
        assert_eq!(width(&events), EVENT_ROWS.elements());
    }
}
