//! Inbound supply (stock expected at a node: a purchase order or a transfer) and the
//! backordered units promised against it until it arrives.
//!
//! Supply is not stock: it never enters ATP. Commitments say which backordered units the
//! supply is expected to cover (the oldest promise first); they are recomputed per SKU
//! whenever supply or backorders of the SKU change (`replace_commitments`), so they always
//! describe the current backlog.

use crate::json_rows::{JsonRows, PerDialect, RowOrder, SqlType, element};
use crate::{Result, Store, Tx, on_read, on_tx};

/// One expected receipt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SupplyRow {
    pub supply_id: String,
    pub node_id: String,
    pub sku: String,
    pub quantity: i64,
    /// Units promised to backordered lines.
    pub committed: i64,
    pub eta_ms: i64,
    /// expected, received, cancelled.
    pub status: String,
    /// Units received into on-hand (when received).
    pub received: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const SUPPLY_COLUMNS: &str =
    "supply_id, node_id, sku, quantity, committed, eta_ms, status, received, created_at_ms, updated_at_ms";

/// Backordered units of one order line promised against one supply.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CommitmentRow {
    pub supply_id: String,
    pub order_id: String,
    pub line_id: String,
    pub quantity: i64,
    pub committed_at_ms: i64,
}

/// Commitments as rows of a JSON array parameter ([`Tx::replace_commitments`]).
const COMMITMENT_ROWS: JsonRows = JsonRows {
    table: "supply_commitments",
    columns: &[
        element("supply_id", SqlType::Text),
        element("order_id", SqlType::Text),
        element("line_id", SqlType::Text),
        element("quantity", SqlType::BigInt),
        element("committed_at_ms", SqlType::BigInt),
    ],
};

/// A line's expected units as an order shows them: which supply, where, how many, when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineExpectation {
    pub line_id: String,
    pub supply_id: String,
    pub node_id: String,
    pub quantity: i64,
    pub eta_ms: i64,
}

/// A backordered line waiting for stock, in the order commitments serve them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BackorderedLine {
    pub order_id: String,
    pub line_id: String,
    pub backordered: i64,
    pub promised_date: Option<String>,
    pub channel: String,
}

/// Filters of a supply listing.
#[derive(Debug, Clone, Default)]
pub struct SupplyFilter {
    pub sku: Option<String>,
    pub node_id: Option<String>,
    pub status: Option<String>,
    /// Entries after this supply id (the cursor of the previous page).
    pub after_id: Option<String>,
    pub limit: i64,
}

impl Tx {
    pub async fn insert_supply(&mut self, s: &SupplyRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO inbound_supply ({SUPPLY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            )))
            .bind(&s.supply_id)
            .bind(&s.node_id)
            .bind(&s.sku)
            .bind(s.quantity)
            .bind(s.committed)
            .bind(s.eta_ms)
            .bind(&s.status)
            .bind(s.received)
            .bind(s.created_at_ms)
            .bind(s.updated_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Reads a supply for a change (PostgreSQL: row lock; SQLite: the write lock is held).
    pub async fn lock_supply(&mut self, supply_id: &str) -> Result<Option<SupplyRow>> {
        let lock = if matches!(self, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, SupplyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUPPLY_COLUMNS} FROM inbound_supply WHERE supply_id = $1{lock}"
            )))
            .bind(supply_id)
            .fetch_optional(conn)
            .await?
        });
        Ok(row)
    }

    /// Records a receipt of `quantity` units of a supply (not closing it). A receipt with a
    /// `reference` taken before is a retry: nothing changes and the answer is `None`; else
    /// the supply's units received in all, this receipt included.
    pub async fn add_supply_receipt(
        &mut self,
        supply_id: &str,
        reference: Option<&str>,
        quantity: i64,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let received = on_tx!(self, |conn| {
            let seen = match reference {
                Some(r) => sqlx::query_scalar::<_, i64>(
                    "SELECT receipt_no FROM supply_receipts WHERE supply_id = $1 AND reference = $2",
                )
                .bind(supply_id)
                .bind(r)
                .fetch_optional(&mut *conn)
                .await?
                .is_some(),
                None => false,
            };
            if seen {
                None
            } else {
                sqlx::query(
                    "INSERT INTO supply_receipts (supply_id, receipt_no, reference, quantity, received_at_ms) \
                     SELECT $1, COALESCE(MAX(receipt_no), 0) + 1, $2, $3, $4 FROM supply_receipts WHERE supply_id = $1",
                )
                .bind(supply_id)
                .bind(reference)
                .bind(quantity)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
                let received = sqlx::query_scalar::<_, i64>(
                    "UPDATE inbound_supply SET received = received + $2, updated_at_ms = $3 WHERE supply_id = $1 \
                     RETURNING received",
                )
                .bind(supply_id)
                .bind(quantity)
                .bind(now_ms)
                .fetch_one(&mut *conn)
                .await?;
                Some(received)
            }
        });
        Ok(received)
    }

    /// Ends a supply's commitments without closing it (a partial receipt: the orders it
    /// was promised to are filled from what arrived, the rest promised again).
    pub async fn release_supply_commitments(&mut self, supply_id: &str, now_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM supply_commitments WHERE supply_id = $1")
                .bind(supply_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE inbound_supply SET committed = 0, updated_at_ms = $2 WHERE supply_id = $1")
                .bind(supply_id)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Closes a supply: `received` (with the units received) or `cancelled`; its
    /// commitments end.
    pub async fn close_supply(&mut self, supply_id: &str, status: &str, received: i64, now_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM supply_commitments WHERE supply_id = $1")
                .bind(supply_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE inbound_supply SET status = $2, received = $3, committed = 0, updated_at_ms = $4 \
                 WHERE supply_id = $1",
            )
            .bind(supply_id)
            .bind(status)
            .bind(received)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// The expected supply of a SKU, earliest first, locked (PostgreSQL) so that two
    /// recomputations of the SKU's commitments run one after the other.
    pub async fn open_supply_for_update(&mut self, sku: &str) -> Result<Vec<SupplyRow>> {
        let lock = if matches!(self, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
        let rows = on_tx!(self, |conn| {
            sqlx::query_as::<_, SupplyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUPPLY_COLUMNS} FROM inbound_supply WHERE sku = $1 AND status = 'expected' \
                 ORDER BY eta_ms, supply_id{lock}"
            )))
            .bind(sku)
            .fetch_all(conn)
            .await?
        });
        Ok(rows)
    }

    /// Backordered lines of a SKU, the oldest promise first (earliest promised date,
    /// unpromised after promised, then order age and line id).
    pub async fn backordered_lines(&mut self, sku: &str) -> Result<Vec<BackorderedLine>> {
        let rows = on_tx!(self, |conn| {
            sqlx::query_as::<_, BackorderedLine>(
                "SELECT l.order_id, l.line_id, l.backordered, l.promised_date, o.channel \
                 FROM order_lines l JOIN orders o ON o.order_id = l.order_id \
                 WHERE l.sku = $1 AND l.backordered > 0 \
                 ORDER BY (l.promised_date IS NULL), l.promised_date, l.order_id, l.line_id",
            )
            .bind(sku)
            .fetch_all(conn)
            .await?
        });
        Ok(rows)
    }

    /// The commitments against `supply_ids`.
    pub async fn commitments_of(&mut self, supply_ids: &[String]) -> Result<Vec<CommitmentRow>> {
        let ids = serde_json::Value::from(supply_ids.to_vec()).to_string();
        let in_ids = self.dialect().in_array(1, SqlType::Text);
        let rows = on_tx!(self, |conn| {
            sqlx::query_as::<_, CommitmentRow>(sqlx::AssertSqlSafe(format!(
                "SELECT supply_id, order_id, line_id, quantity, committed_at_ms FROM supply_commitments \
                 WHERE supply_id {in_ids} ORDER BY supply_id, order_id, line_id"
            )))
            .bind(&ids)
            .fetch_all(conn)
            .await?
        });
        Ok(rows)
    }

    /// Replaces every commitment against `supply_ids` with `rows` and sets each supply's
    /// committed total.
    pub async fn replace_commitments(&mut self, supply_ids: &[String], rows: &[CommitmentRow]) -> Result<()> {
        self.write_commitments(supply_ids, rows, true).await
    }

    /// Adds `rows` (new (supply, order, line) pairs) to the commitments against
    /// `supply_ids` and sets each supply's committed total.
    pub async fn add_commitments(&mut self, supply_ids: &[String], rows: &[CommitmentRow]) -> Result<()> {
        self.write_commitments(supply_ids, rows, false).await
    }

    async fn write_commitments(&mut self, supply_ids: &[String], rows: &[CommitmentRow], replace: bool) -> Result<()> {
        static INSERT: PerDialect = PerDialect::new(|d| COMMITMENT_ROWS.insert(d, "$1", &[], RowOrder::Any));
        let ids = serde_json::Value::from(supply_ids.to_vec()).to_string();
        let in_ids = self.dialect().in_array(1, SqlType::Text);
        let values = serde_json::Value::from(
            rows.iter()
                .map(|c| serde_json::json!([c.supply_id, c.order_id, c.line_id, c.quantity, c.committed_at_ms]))
                .collect::<Vec<_>>(),
        )
        .to_string();
        let insert = INSERT.get(self.dialect());
        on_tx!(self, |conn| {
            if replace {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM supply_commitments WHERE supply_id {in_ids}")))
                    .bind(&ids)
                    .execute(&mut *conn)
                    .await?;
            }
            if !rows.is_empty() {
                sqlx::query(insert).bind(&values).execute(&mut *conn).await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE inbound_supply SET committed = COALESCE((SELECT SUM(c.quantity) FROM supply_commitments c \
                   WHERE c.supply_id = inbound_supply.supply_id), 0) WHERE supply_id {in_ids}"
            )))
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    pub async fn supply(&self, supply_id: &str) -> Result<Option<SupplyRow>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, SupplyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUPPLY_COLUMNS} FROM inbound_supply WHERE supply_id = $1"
            )))
            .bind(supply_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// One page of supply in id (creation) order.
    pub async fn list_supply(&self, f: &SupplyFilter) -> Result<Vec<SupplyRow>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, SupplyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUPPLY_COLUMNS} FROM inbound_supply \
                 WHERE ($1 IS NULL OR sku = $1) AND ($2 IS NULL OR node_id = $2) AND ($3 IS NULL OR status = $3) \
                   AND ($4 IS NULL OR supply_id > $4) \
                 ORDER BY supply_id LIMIT $5"
            )))
            .bind(&f.sku)
            .bind(&f.node_id)
            .bind(&f.status)
            .bind(&f.after_id)
            .bind(f.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Whether any of `skus` has supply expected (one indexed probe).
    pub async fn has_open_supply(&self, skus: &[String]) -> Result<bool> {
        let param = serde_json::Value::from(skus.to_vec()).to_string();
        let in_skus = self.dialect().in_array(1, SqlType::Text);
        let found = on_read!(self, |pool| {
            sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM inbound_supply WHERE status = 'expected' AND sku {in_skus})"
            )))
            .bind(&param)
            .fetch_one(pool)
            .await?
        });
        Ok(found)
    }

    /// The commitments against one supply (oldest promise first as committed).
    pub async fn supply_commitments(&self, supply_id: &str) -> Result<Vec<CommitmentRow>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, CommitmentRow>(
                "SELECT supply_id, order_id, line_id, quantity, committed_at_ms FROM supply_commitments \
                 WHERE supply_id = $1 ORDER BY committed_at_ms, order_id, line_id",
            )
            .bind(supply_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
