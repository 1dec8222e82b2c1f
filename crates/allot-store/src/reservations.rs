//! Checkout reservations: stock moved from ATP into `positions.reserved` until the
//! reservation expires, is released, or is converted into an order's allocation.
//!
//! The stock itself moves with [`Tx::move_stock`] (reserve, unreserve, convert), each a
//! conditional `UPDATE`; only `active` reservations are ever released, and every change
//! locks the reservation row first, so a reservation's units go back exactly once.

use crate::{Result, Store, Tx, on_read, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReservationLineRow {
    pub node_id: String,
    pub sku: String,
    pub quantity: i64,
}

/// A reservation with its lines (one per node × SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReservation {
    pub reservation_id: String,
    /// The channel of the key that made it; empty for an admin key.
    pub owner: String,
    /// active, released, expired, converted
    pub status: String,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub order_id: Option<String>,
    pub lines: Vec<ReservationLineRow>,
}

type ReservationRow = (String, String, String, i64, i64, Option<i64>, Option<String>);
const RESERVATION_COLUMNS: &str = "reservation_id, owner, status, expires_at_ms, created_at_ms, closed_at_ms, order_id";

fn assemble(r: ReservationRow, lines: Vec<ReservationLineRow>) -> StoredReservation {
    StoredReservation {
        reservation_id: r.0,
        owner: r.1,
        status: r.2,
        expires_at_ms: r.3,
        created_at_ms: r.4,
        closed_at_ms: r.5,
        order_id: r.6,
        lines,
    }
}

impl Tx {
    pub async fn insert_reservation(&mut self, r: &StoredReservation) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )))
            .bind(&r.reservation_id)
            .bind(&r.owner)
            .bind(&r.status)
            .bind(r.expires_at_ms)
            .bind(r.created_at_ms)
            .bind(r.closed_at_ms)
            .bind(&r.order_id)
            .execute(&mut *conn)
            .await?;
            for l in &r.lines {
                sqlx::query(
                    "INSERT INTO reservation_lines (reservation_id, node_id, sku, quantity) VALUES ($1, $2, $3, $4)",
                )
                .bind(&r.reservation_id)
                .bind(&l.node_id)
                .bind(&l.sku)
                .bind(l.quantity)
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(())
    }

    /// Locks a reservation (PostgreSQL: row lock; SQLite: the write lock is held) and loads it.
    pub async fn lock_reservation(&mut self, reservation_id: &str) -> Result<Option<StoredReservation>> {
        let lock = if matches!(self, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
        let found = on_tx!(self, |conn| {
            let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1{lock}"
            )))
            .bind(reservation_id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => None,
                Some(r) => {
                    let lines = sqlx::query_as::<_, ReservationLineRow>(
                        "SELECT node_id, sku, quantity FROM reservation_lines WHERE reservation_id = $1 \
                         ORDER BY node_id, sku",
                    )
                    .bind(reservation_id)
                    .fetch_all(&mut *conn)
                    .await?;
                    Some(assemble(r, lines))
                }
            }
        });
        Ok(found)
    }

    /// Closes an active reservation (released, expired or converted into `order_id`).
    pub async fn close_reservation(
        &mut self,
        reservation_id: &str,
        status: &str,
        order_id: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE reservations SET status = $2, order_id = $3, closed_at_ms = $4 \
                 WHERE reservation_id = $1 AND status = 'active'",
            )
            .bind(reservation_id)
            .bind(status)
            .bind(order_id)
            .bind(now_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Ids of active reservations whose expiry has passed (at most `limit`, oldest expiry
    /// first). On PostgreSQL they are locked, skipping ones another transaction holds.
    pub async fn due_reservations(&mut self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        let lock = if matches!(self, Tx::Postgres(_)) { " FOR UPDATE SKIP LOCKED" } else { "" };
        let ids = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT reservation_id FROM reservations WHERE status = 'active' AND expires_at_ms <= $1 \
                 ORDER BY expires_at_ms, reservation_id LIMIT $2{lock}"
            )))
            .bind(now_ms)
            .bind(limit)
            .fetch_all(conn)
            .await?
        });
        Ok(ids)
    }
}

impl Store {
    pub async fn reservation(&self, reservation_id: &str) -> Result<Option<StoredReservation>> {
        let found = on_read!(self, |pool| {
            let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1"
            )))
            .bind(reservation_id)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => {
                    let lines = sqlx::query_as::<_, ReservationLineRow>(
                        "SELECT node_id, sku, quantity FROM reservation_lines WHERE reservation_id = $1 \
                         ORDER BY node_id, sku",
                    )
                    .bind(reservation_id)
                    .fetch_all(pool)
                    .await?;
                    Some(assemble(r, lines))
                }
            }
        });
        Ok(found)
    }

    /// Whether any active reservation has passed its expiry (a cheap indexed probe).
    pub async fn has_due_reservations(&self, now_ms: i64) -> Result<bool> {
        let found = on_read!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT reservation_id FROM reservations WHERE status = 'active' AND expires_at_ms <= $1 LIMIT 1",
            )
            .bind(now_ms)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    /// Units held by active reservations, and the positions' reserved column, for checks.
    pub async fn reservation_totals(&self) -> Result<(i64, i64)> {
        let sums = on_read!(self, |pool| {
            let r: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SUM(l.quantity) AS BIGINT) FROM reservation_lines l \
                 JOIN reservations r ON r.reservation_id = l.reservation_id WHERE r.status = 'active'",
            )
            .fetch_one(pool)
            .await?;
            let p: Option<i64> =
                sqlx::query_scalar("SELECT CAST(SUM(reserved) AS BIGINT) FROM positions").fetch_one(pool).await?;
            (r.unwrap_or(0), p.unwrap_or(0))
        });
        Ok(sums)
    }
}
