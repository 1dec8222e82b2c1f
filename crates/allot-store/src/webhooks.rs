//! Webhook endpoints and the delivery queue the relay works from; relay cursors.
//!
//! Fan-out ([`Tx::insert_deliveries`] + [`Tx::advance_webhook_cursor`]) turns events after
//! an endpoint's cursor into `pending` deliveries in one transaction. The relay claims due
//! deliveries with a lease ([`Tx::claim_deliveries`]: the next attempt time moves past the
//! request's timeout, and on PostgreSQL rows are taken `FOR UPDATE SKIP LOCKED`, so two
//! servers never send the same delivery at once), sends them outside any transaction, and
//! records the outcome ([`Tx::finish_delivery`]). A delivery is only claimable when no
//! earlier delivery of the same endpoint and order is still pending: per-order order.

use crate::json_rows::{JsonRows, PerDialect, SqlType, element, given};
use crate::{Result, Store, Tx, on_read, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub webhook_id: String,
    pub url: String,
    /// Event types delivered, or `["*"]` for all.
    pub event_types: Vec<String>,
    pub secret: String,
    /// The last event fanned out into deliveries.
    pub cursor: crate::EventCursor,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

type WebhookRow = (String, String, String, String, i64, i64, i64, i64);
const WEBHOOK_COLUMNS: &str =
    "webhook_id, url, event_types, secret, cursor_tx, cursor_seq, created_at_ms, updated_at_ms";

fn from_row(r: WebhookRow) -> StoredWebhook {
    StoredWebhook {
        webhook_id: r.0,
        url: r.1,
        event_types: r.2.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        secret: r.3,
        cursor: crate::EventCursor { tx: r.4, seq: r.5 },
        created_at_ms: r.6,
        updated_at_ms: r.7,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub webhook_id: String,
    pub seq: i64,
    pub event_id: String,
    pub order_key: String,
    /// pending, delivered, dead
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<i64>,
}

const DELIVERY_COLUMNS: &str =
    "webhook_id, seq, event_id, order_key, status, attempts, next_attempt_at_ms, last_error, delivered_at_ms";

/// Events queued for one endpoint (`webhook_id`, status, attempts and due time given), as
/// [`Tx::insert_deliveries`] passes them: `[seq, event id, order key]`.
const DELIVERY_ROWS: JsonRows = JsonRows {
    table: "webhook_deliveries",
    columns: &[
        given("webhook_id"),
        element("seq", SqlType::BigInt),
        element("event_id", SqlType::Text),
        element("order_key", SqlType::Text),
        given("status"),
        given("attempts"),
        given("next_attempt_at_ms"),
    ],
};

/// Deliveries of one endpoint by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

impl Tx {
    /// Creates or replaces an endpoint (its cursor is kept on replace). `true` if created.
    /// Deletes an endpoint and its delivery queue; answers whether it existed. A relay
    /// pass sending one of its deliveries meanwhile records nothing (the row is gone).
    pub async fn delete_webhook(&mut self, webhook_id: &str) -> Result<bool> {
        let deleted = on_tx!(self, |conn| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(webhook_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM webhooks WHERE webhook_id = $1")
                .bind(webhook_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(deleted > 0)
    }

    pub async fn put_webhook(&mut self, w: &StoredWebhook) -> Result<bool> {
        let created = on_tx!(self, |conn| {
            let exists = sqlx::query_scalar::<_, String>("SELECT webhook_id FROM webhooks WHERE webhook_id = $1")
                .bind(&w.webhook_id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if exists {
                sqlx::query(
                    "UPDATE webhooks SET url = $2, event_types = $3, secret = $4, updated_at_ms = $5 WHERE webhook_id = $1",
                )
                .bind(&w.webhook_id)
                .bind(&w.url)
                .bind(w.event_types.join(","))
                .bind(&w.secret)
                .bind(w.updated_at_ms)
                .execute(&mut *conn)
                .await?;
            } else {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                )))
                .bind(&w.webhook_id)
                .bind(&w.url)
                .bind(w.event_types.join(","))
                .bind(&w.secret)
                .bind(w.cursor.tx)
                .bind(w.cursor.seq)
                .bind(w.created_at_ms)
                .bind(w.updated_at_ms)
                .execute(&mut *conn)
                .await?;
            }
            !exists
        });
        Ok(created)
    }

    /// Queues events for an endpoint: `(seq, event id, order key)`; already queued ones are
    /// left as they are.
    pub async fn insert_deliveries(
        &mut self,
        webhook_id: &str,
        rows: &[(i64, String, String)],
        now_ms: i64,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let param = serde_json::Value::from(
            rows.iter().map(|(seq, id, key)| serde_json::json!([seq, id, key])).collect::<Vec<_>>(),
        )
        .to_string();
        static INSERT: PerDialect = PerDialect::new(|d| {
            DELIVERY_ROWS.upsert(d, "$2", &["$1", "'pending'", "0", "$3"], "ON CONFLICT (webhook_id, seq) DO NOTHING")
        });
        let sql = INSERT.get(self.dialect());
        on_tx!(self, |conn| {
            sqlx::query(sql).bind(webhook_id).bind(&param).bind(now_ms).execute(conn).await?;
        });
        Ok(())
    }

    /// Moves an endpoint's cursor forward (never back).
    pub async fn advance_webhook_cursor(&mut self, webhook_id: &str, to: crate::EventCursor) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE webhooks SET cursor_tx = $2, cursor_seq = $3 WHERE webhook_id = $1 \
                 AND (cursor_tx < $2 OR (cursor_tx = $2 AND cursor_seq < $3))",
            )
            .bind(webhook_id)
            .bind(to.tx)
            .bind(to.seq)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Claims up to `limit` due deliveries, oldest first, each the earliest pending one of
    /// its endpoint and order; their next attempt moves to `lease_until_ms` so no other
    /// relay takes them meanwhile.
    pub async fn claim_deliveries(&mut self, now_ms: i64, lease_until_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
        let lock = match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => "FOR UPDATE OF d SKIP LOCKED",
        };
        let rows = on_tx!(self, |conn| {
            let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM webhook_deliveries d \
                 WHERE d.status = 'pending' AND d.next_attempt_at_ms <= $1 \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
                       AND e.order_key = d.order_key AND e.status = 'pending' AND e.seq < d.seq) \
                 ORDER BY d.seq LIMIT $2 {lock}",
                cols = DELIVERY_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
            )))
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            for r in &rows {
                sqlx::query("UPDATE webhook_deliveries SET next_attempt_at_ms = $3 WHERE webhook_id = $1 AND seq = $2")
                    .bind(&r.webhook_id)
                    .bind(r.seq)
                    .bind(lease_until_ms)
                    .execute(&mut *conn)
                    .await?;
            }
            rows
        });
        Ok(rows)
    }

    /// Records an attempt's outcome, if this relay still holds the delivery's lease (one
    /// whose lease ran out may have been claimed and finished by another relay since).
    pub async fn finish_delivery(&mut self, d: &DeliveryRow, lease_until_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at_ms = $5, last_error = $6, \
                   delivered_at_ms = $7 WHERE webhook_id = $1 AND seq = $2 AND status = 'pending' \
                   AND next_attempt_at_ms = $8",
            )
            .bind(&d.webhook_id)
            .bind(d.seq)
            .bind(&d.status)
            .bind(d.attempts)
            .bind(d.next_attempt_at_ms)
            .bind(&d.last_error)
            .bind(d.delivered_at_ms)
            .bind(lease_until_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Dead deliveries of an endpoint go back to pending with a fresh set of attempts.
    /// Answers how many.
    pub async fn redrive_deliveries(&mut self, webhook_id: &str, now_ms: i64) -> Result<u64> {
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at_ms = $2 \
                 WHERE webhook_id = $1 AND status = 'dead'",
            )
            .bind(webhook_id)
            .bind(now_ms)
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(n)
    }
}

impl Store {
    pub async fn webhooks(&self) -> Result<Vec<StoredWebhook>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY webhook_id"
            )))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(from_row).collect())
    }

    pub async fn webhook(&self, webhook_id: &str) -> Result<Option<StoredWebhook>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = $1"
            )))
            .bind(webhook_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(from_row))
    }

    pub async fn delivery_counts(&self, webhook_id: &str) -> Result<DeliveryCounts> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT status, CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries WHERE webhook_id = $1 GROUP BY status",
            )
            .bind(webhook_id)
            .fetch_all(pool)
            .await?
        });
        let mut c = DeliveryCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.dead = n,
            }
        }
        Ok(c)
    }

    /// An endpoint's deliveries of one status, oldest first, after `after_seq`.
    pub async fn deliveries(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
                 AND ($2 IS NULL OR status = $2) AND seq > $3 ORDER BY seq LIMIT $4"
            )))
            .bind(webhook_id)
            .bind(status)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The cursor of the last event a reader may serve now (see [`crate::EventCursor`]):
    /// where a new endpoint's cursor starts.
    pub async fn event_horizon(&self) -> Result<crate::EventCursor> {
        let sql = match self {
            Store::Sqlite(_) => "SELECT 0, seq FROM events ORDER BY seq DESC LIMIT 1",
            Store::Postgres(_) => {
                "SELECT CAST(tx_id::text AS BIGINT), seq FROM events \
                 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx_id DESC, seq DESC LIMIT 1"
            }
        };
        let row = on_read!(self, |pool| sqlx::query_as::<_, (i64, i64)>(sql).fetch_optional(pool).await?);
        Ok(row.map(|(tx, seq)| crate::EventCursor { tx, seq }).unwrap_or_default())
    }

    /// Events written but not yet served by [`Store::events`] (PostgreSQL: their
    /// transaction, or an older one, is still running); always 0 on SQLite.
    pub async fn events_in_flight(&self) -> Result<i64> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(s) => Ok(sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM events WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
            )
            .fetch_one(&s.pool)
            .await?),
        }
    }

    /// Events by `seq`.
    pub async fn events_by_seq(&self, seqs: &[i64]) -> Result<Vec<crate::StoredEvent>> {
        let param = serde_json::Value::from(seqs.to_vec()).to_string();
        let in_seqs = self.dialect().in_array(1, SqlType::BigInt);
        let tx = match self {
            Store::Sqlite(_) => "0",
            Store::Postgres(_) => "CAST(tx_id::text AS BIGINT)",
        };
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, crate::StoredEvent>(sqlx::AssertSqlSafe(format!(
                "SELECT seq, {tx} AS tx, event_id, type, channel, order_id, node_id, at_ms, version, data, actor \
                 FROM events WHERE seq {in_seqs} ORDER BY seq"
            )))
            .bind(&param)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

impl Store {
    /// Where a relay has published up to (the start if it never ran).
    pub async fn relay_cursor(&self, relay: &str) -> Result<crate::EventCursor> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, (i64, i64)>("SELECT cursor_tx, cursor_seq FROM relay_cursors WHERE relay = $1")
                .bind(relay)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(tx, seq)| crate::EventCursor { tx, seq }).unwrap_or_default())
    }
}

impl Tx {
    /// Moves a relay's cursor forward (never back).
    pub async fn advance_relay_cursor(&mut self, relay: &str, to: crate::EventCursor, now_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO relay_cursors (relay, cursor_tx, cursor_seq, updated_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (relay) DO UPDATE SET cursor_tx = excluded.cursor_tx, cursor_seq = excluded.cursor_seq, \
                   updated_at_ms = excluded.updated_at_ms \
                 WHERE relay_cursors.cursor_tx < excluded.cursor_tx \
                   OR (relay_cursors.cursor_tx = excluded.cursor_tx AND relay_cursors.cursor_seq < excluded.cursor_seq)",
            )
            .bind(relay)
            .bind(to.tx)
            .bind(to.seq)
            .bind(now_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}
