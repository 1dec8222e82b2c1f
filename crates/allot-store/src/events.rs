//! The event outbox: [`Tx::insert_events`] writes events in the transaction of the change
//! they report; [`Store::events`] pages through them in order for pull consumers (and,
//! later, the webhook and NATS relays).

use crate::{Result, Store, Tx, on_read, on_tx};

/// An event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub channel: Option<String>,
    pub order_id: Option<String>,
    pub node_id: Option<String>,
    pub at_ms: i64,
    pub version: i32,
    /// JSON.
    pub data: String,
    /// Who caused it: `channel:<id>`, `node:<id>`, `operator` or `system`.
    pub actor: Option<String>,
}

/// A stored event with its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    pub event_id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub channel: Option<String>,
    pub order_id: Option<String>,
    pub node_id: Option<String>,
    pub at_ms: i64,
    pub version: i32,
    pub data: String,
    pub actor: Option<String>,
}

/// Filters for [`Store::events`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events after this `seq` (the cursor).
    pub after: i64,
    pub event_type: Option<String>,
    pub order_id: Option<String>,
    pub channel: Option<String>,
    pub limit: i64,
}

impl Tx {
    /// Writes events (one statement for all of them), in the order given.
    pub async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = serde_json::Value::from(
            events
                .iter()
                .map(|e| {
                    serde_json::json!([
                        e.event_id,
                        e.event_type,
                        e.channel,
                        e.order_id,
                        e.node_id,
                        e.at_ms,
                        e.version,
                        e.data,
                        e.actor
                    ])
                })
                .collect::<Vec<_>>(),
        )
        .to_string();
        let sql = match self {
            Tx::Sqlite(_) => {
                "INSERT INTO events (event_id, type, channel, order_id, node_id, at_ms, version, data, actor) \
                 SELECT v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, v.value ->> 4, v.value ->> 5, \
                   v.value ->> 6, v.value ->> 7, v.value ->> 8 FROM json_each($1) AS v ORDER BY v.key"
            }
            Tx::Postgres(_) => {
                "INSERT INTO events (event_id, type, channel, order_id, node_id, at_ms, version, data, actor) \
                 SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, (v ->> 5)::bigint, (v ->> 6)::int, v ->> 7, \
                   v ->> 8 \
                 FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t (v, n) ORDER BY n"
            }
        };
        on_tx!(self, |conn| {
            sqlx::query(sql).bind(&rows).execute(conn).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Events after `filter.after`, oldest first. On PostgreSQL only events of transactions
    /// older than every transaction still running are served, so a consumer that resumes
    /// from the last `seq` it saw never skips one committed late.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>> {
        let visible = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => "AND tx_id < pg_snapshot_xmin(pg_current_snapshot())",
        };
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, StoredEvent>(sqlx::AssertSqlSafe(format!(
                "SELECT seq, event_id, type, channel, order_id, node_id, at_ms, version, data, actor FROM events \
                 WHERE seq > $1 AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR order_id = $3) \
                   AND ($4 IS NULL OR channel = $4) {visible} \
                 ORDER BY seq LIMIT $5"
            )))
            .bind(f.after)
            .bind(&f.event_type)
            .bind(&f.order_id)
            .bind(&f.channel)
            .bind(f.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Every event of one order, oldest first (its timeline). Unlike [`Store::events`]
    /// this does not wait for older transactions: it is a view, not a cursor.
    pub async fn order_events(&self, order_id: &str) -> Result<Vec<StoredEvent>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, StoredEvent>(
                "SELECT seq, event_id, type, channel, order_id, node_id, at_ms, version, data, actor FROM events \
                 WHERE order_id = $1 ORDER BY seq",
            )
            .bind(order_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

/// A customer-service contact about an order.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactRow {
    pub contact_id: String,
    pub order_id: String,
    /// phone, chat, email
    pub channel: String,
    pub reason: String,
    pub actor: String,
    pub at_ms: i64,
}

impl Tx {
    pub async fn insert_contact(&mut self, c: &ContactRow) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO customer_contacts (contact_id, order_id, channel, reason, actor, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.contact_id)
            .bind(&c.order_id)
            .bind(&c.channel)
            .bind(&c.reason)
            .bind(&c.actor)
            .bind(c.at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    pub async fn order_contacts(&self, order_id: &str) -> Result<Vec<ContactRow>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, ContactRow>(
                "SELECT contact_id, order_id, channel, reason, actor, at_ms FROM customer_contacts \
                 WHERE order_id = $1 ORDER BY at_ms, contact_id",
            )
            .bind(order_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
