//! Inventory positions (node × SKU).
//!
//! Writes follow one pattern: lock the affected rows ([`Tx::lock_positions`],
//! [`Tx::lock_node_positions`]), compute the new counts with the pure core, write them
//! back ([`Tx::write_positions`]), commit. On PostgreSQL the lock is a row lock
//! (`SELECT … FOR UPDATE`, after inserting missing rows so that a concurrent first write
//! to the same position also waits); on SQLite the write transaction already holds the
//! database's single write lock.
//!
//! Bulk statements take their keys and values as one JSON array parameter (`json_each` on
//! SQLite, `jsonb_array_elements` on PostgreSQL; see `json_rows`): one statement for 100,000
//! positions instead of 100,000 round trips.

use allot_core::inventory::{Position, PositionCounts};
use allot_core::{NodeId, Qty, Sku};
use serde_json::json;

use crate::json_rows::{JsonRows, PerDialect, SqlType, element, given};
use crate::{Result, Store, StoreError, Tx, on_read, on_tx};

/// A position with the version of its row (incremented on every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    pub position: Position,
    pub version: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PositionRow {
    node_id: String,
    sku: String,
    on_hand: i64,
    damaged: i64,
    quarantined: i64,
    safety_stock: i64,
    reserved: i64,
    allocated: i64,
    seq: Option<i64>,
    version: i64,
}

/// The position columns without a table alias (for `RETURNING`).
pub(crate) const POSITION_COLUMNS_PLAIN: &str =
    "node_id, sku, on_hand, damaged, quarantined, safety_stock, reserved, allocated, seq, version";

const COLUMNS: &str =
    "p.node_id, p.sku, p.on_hand, p.damaged, p.quarantined, p.safety_stock, p.reserved, p.allocated, p.seq, p.version";

impl TryFrom<PositionRow> for StoredPosition {
    type Error = StoreError;

    fn try_from(r: PositionRow) -> Result<StoredPosition> {
        const T: &str = "positions";
        let qty = |what: &str, v: i64| {
            u64::try_from(v)
                .ok()
                .and_then(|v| Qty::new(v).ok())
                .ok_or_else(|| StoreError::corrupt(T, format!("{what} {v}")))
        };
        let position = Position {
            node_id: NodeId::parse(&r.node_id).map_err(|e| StoreError::corrupt(T, e))?,
            sku: Sku::parse(&r.sku).map_err(|e| StoreError::corrupt(T, e))?,
            counts: PositionCounts {
                on_hand: qty("on_hand", r.on_hand)?,
                damaged: qty("damaged", r.damaged)?,
                quarantined: qty("quarantined", r.quarantined)?,
                safety_stock: qty("safety_stock", r.safety_stock)?,
                reserved: qty("reserved", r.reserved)?,
                allocated: qty("allocated", r.allocated)?,
            },
            seq: r.seq.map(|s| u64::try_from(s).map_err(|_| StoreError::corrupt(T, format!("seq {s}")))).transpose()?,
        };
        Ok(StoredPosition { position, version: r.version })
    }
}

/// Positions as rows of a JSON array parameter ([`Tx::write_positions`]); the row's version
/// and write time are given.
const POSITION_ROWS: JsonRows = JsonRows {
    table: "positions",
    columns: &[
        element("node_id", SqlType::Text),
        element("sku", SqlType::Text),
        element("on_hand", SqlType::BigInt),
        element("damaged", SqlType::BigInt),
        element("quarantined", SqlType::BigInt),
        element("safety_stock", SqlType::BigInt),
        element("reserved", SqlType::BigInt),
        element("allocated", SqlType::BigInt),
        element("seq", SqlType::BigInt),
        given("version"),
        given("updated_at_ms"),
    ],
};

fn rows_to_positions(rows: Vec<PositionRow>) -> Result<Vec<StoredPosition>> {
    rows.into_iter().map(StoredPosition::try_from).collect()
}

fn keys_json(keys: &[(NodeId, Sku)]) -> String {
    let mut sorted: Vec<_> = keys.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    json!(sorted.iter().map(|(n, s)| [n, s]).collect::<Vec<_>>()).to_string()
}

fn i64_of(q: Qty) -> i64 {
    // Qty ≤ 1e9 fits i64.
    q.get() as i64
}

impl Tx {
    /// Locks and returns the stored positions among `keys`. On PostgreSQL missing rows are
    /// first inserted at zero (so every key comes back); on SQLite missing keys are simply
    /// absent. Either way the caller treats an absent key as an empty position.
    pub async fn lock_positions(&mut self, keys: &[(NodeId, Sku)], now_ms: i64) -> Result<Vec<StoredPosition>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys_json(keys);
        let rows = match self {
            Tx::Sqlite(t) => {
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM json_each($1) AS k \
                     JOIN positions p ON p.node_id = k.value ->> 0 AND p.sku = k.value ->> 1"
                )))
                .bind(&keys)
                .fetch_all(t.conn().await?)
                .await?
            }
            Tx::Postgres(t) => {
                sqlx::query(
                    "INSERT INTO positions (node_id, sku, on_hand, damaged, quarantined, safety_stock, reserved, \
                       allocated, seq, version, updated_at_ms) \
                     SELECT k ->> 0, k ->> 1, 0, 0, 0, 0, 0, 0, NULL, 1, $2 \
                     FROM jsonb_array_elements($1::jsonb) AS k \
                     ON CONFLICT (node_id, sku) DO NOTHING",
                )
                .bind(&keys)
                .bind(now_ms)
                .execute(&mut **t)
                .await?;
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM positions p \
                     JOIN (SELECT k ->> 0 AS node_id, k ->> 1 AS sku FROM jsonb_array_elements($1::jsonb) AS k) AS k \
                       ON p.node_id = k.node_id AND p.sku = k.sku \
                     ORDER BY p.node_id, p.sku FOR UPDATE OF p"
                )))
                .bind(&keys)
                .fetch_all(&mut **t)
                .await?
            }
        };
        rows_to_positions(rows)
    }

    /// Locks and returns every stored position of one node (for a full snapshot), after
    /// making sure the positions for `also` exist on PostgreSQL.
    pub async fn lock_node_positions(
        &mut self,
        node_id: &NodeId,
        also: &[Sku],
        now_ms: i64,
    ) -> Result<Vec<StoredPosition>> {
        let keys: Vec<(NodeId, Sku)> = also.iter().map(|s| (node_id.clone(), s.clone())).collect();
        let rows = match self {
            Tx::Sqlite(t) => {
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM positions p WHERE p.node_id = $1"
                )))
                .bind(node_id.as_str())
                .fetch_all(t.conn().await?)
                .await?
            }
            Tx::Postgres(_) => {
                self.lock_positions(&keys, now_ms).await?;
                let Tx::Postgres(t) = self else { unreachable!("matched above") };
                sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM positions p WHERE p.node_id = $1 ORDER BY p.sku FOR UPDATE"
                )))
                .bind(node_id.as_str())
                .fetch_all(&mut **t)
                .await?
            }
        };
        rows_to_positions(rows)
    }

    /// Writes positions (creating missing rows) and returns them with their new versions,
    /// in no particular order. Only call with positions locked in this transaction.
    pub async fn write_positions(&mut self, positions: &[Position], now_ms: i64) -> Result<Vec<StoredPosition>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let values = json!(
            positions
                .iter()
                .map(|p| {
                    let c = &p.counts;
                    json!([
                        p.node_id.as_str(),
                        p.sku.as_str(),
                        i64_of(c.on_hand),
                        i64_of(c.damaged),
                        i64_of(c.quarantined),
                        i64_of(c.safety_stock),
                        i64_of(c.reserved),
                        i64_of(c.allocated),
                        p.seq
                    ])
                })
                .collect::<Vec<_>>()
        )
        .to_string();
        static UPSERT: PerDialect = PerDialect::new(|d| {
            POSITION_ROWS.upsert(
                d,
                "$1",
                &["1", "$2"],
                "ON CONFLICT (node_id, sku) DO UPDATE SET on_hand = excluded.on_hand, \
                   damaged = excluded.damaged, quarantined = excluded.quarantined, \
                   safety_stock = excluded.safety_stock, reserved = excluded.reserved, \
                   allocated = excluded.allocated, seq = excluded.seq, version = positions.version + 1, \
                   updated_at_ms = excluded.updated_at_ms \
                 RETURNING node_id, sku, version",
            )
        });
        let sql = UPSERT.get(self.dialect());
        let versions: Vec<(String, String, i64)> =
            on_tx!(self, |conn| sqlx::query_as(sql).bind(&values).bind(now_ms).fetch_all(conn).await?);
        if versions.len() != positions.len() {
            return Err(StoreError::corrupt(
                "positions",
                format!("wrote {} positions, {} came back", positions.len(), versions.len()),
            ));
        }
        let mut by_key: std::collections::HashMap<(&str, &str), &Position> =
            positions.iter().map(|p| ((p.node_id.as_str(), p.sku.as_str()), p)).collect();
        versions
            .iter()
            .map(|(node, sku, version)| {
                let p = by_key
                    .remove(&(node.as_str(), sku.as_str()))
                    .ok_or_else(|| StoreError::corrupt("positions", format!("unexpected row {node}/{sku}")))?;
                Ok(StoredPosition { position: p.clone(), version: *version })
            })
            .collect()
    }
}

impl Store {
    /// Every position (loaded once at start-up into the read model).
    pub async fn positions(&self) -> Result<Vec<StoredPosition>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM positions p")))
                .fetch_all(pool)
                .await?
        });
        rows_to_positions(rows)
    }

    /// Every position of one node.
    pub async fn node_positions(&self, node_id: &NodeId) -> Result<Vec<StoredPosition>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM positions p WHERE p.node_id = $1"
            )))
            .bind(node_id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows_to_positions(rows)
    }

    pub async fn position(&self, node_id: &NodeId, sku: &Sku) -> Result<Option<StoredPosition>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM positions p WHERE p.node_id = $1 AND p.sku = $2"
            )))
            .bind(node_id.as_str())
            .bind(sku.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(StoredPosition::try_from).transpose()
    }
}

/// A conditional move of units between a position's counters. Each is one `UPDATE` that
/// applies only while its guard holds, so a move can never take more than is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMove {
    /// ATP → reserved (guard: ATP covers it).
    Reserve,
    /// reserved → ATP (guard: that much is reserved).
    Unreserve,
    /// reserved → allocated: a reservation converted by an order.
    Convert,
    /// allocated → ATP: a cancellation, a rejection.
    Release,
    /// allocated units leave the node: shipped, picked up, or written off as not found at
    /// pick time (on hand and allocated both go down). On hand never goes below zero: an
    /// inventory snapshot may already have counted the units out.
    Consume,
    /// allocated → quarantined: a node rejected the work because the units are damaged.
    /// On hand stays (the units are there); the next inventory feed owns the figure again.
    Quarantine,
}

impl Tx {
    /// Moves `quantity` units as `how` says; `None` when the guard fails (nothing changes).
    pub async fn move_stock(
        &mut self,
        how: StockMove,
        node: &NodeId,
        sku: &Sku,
        quantity: u64,
        now_ms: i64,
    ) -> Result<Option<StoredPosition>> {
        let q = i64::try_from(quantity).unwrap_or(i64::MAX);
        let (set, guard) = match how {
            StockMove::Reserve => (
                "reserved = reserved + $3",
                "on_hand - damaged - quarantined - reserved - allocated - safety_stock >= $3",
            ),
            StockMove::Unreserve => ("reserved = reserved - $3", "reserved >= $3"),
            StockMove::Convert => ("reserved = reserved - $3, allocated = allocated + $3", "reserved >= $3"),
            StockMove::Release => ("allocated = allocated - $3", "allocated >= $3"),
            StockMove::Quarantine => ("allocated = allocated - $3, quarantined = quarantined + $3", "allocated >= $3"),
            StockMove::Consume => (
                "allocated = allocated - $3, on_hand = CASE WHEN on_hand >= $3 THEN on_hand - $3 ELSE 0 END",
                "allocated >= $3",
            ),
        };
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, PositionRow>(sqlx::AssertSqlSafe(format!(
                "UPDATE positions SET {set}, version = version + 1, updated_at_ms = $4 \
                 WHERE node_id = $1 AND sku = $2 AND {guard} RETURNING {POSITION_COLUMNS_PLAIN}"
            )))
            .bind(node.as_str())
            .bind(sku.as_str())
            .bind(q)
            .bind(now_ms)
            .fetch_optional(conn)
            .await?
        });
        row.map(StoredPosition::try_from).transpose()
    }
}
