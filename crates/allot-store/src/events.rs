//! The event outbox: [`Tx::insert_events`] writes events in the transaction of the change
//! they report; [`Store::events`] pages through them in order for pull consumers (and,
//! later, the webhook and NATS relays).

use crate::json_rows::{JsonRows, PerDialect, RowOrder, SqlType, element};
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

/// A position in the event stream: after which event a reader resumes.
///
/// On SQLite the single writer commits events in `seq` order, so `seq` alone orders the
/// stream (`tx` is 0). On PostgreSQL `seq` is taken when an event is inserted, and a
/// transaction with a smaller `seq` can commit after one with a larger: a reader that
/// resumed after the larger one would skip it for good. There the stream is ordered by the
/// writing transaction's id, then `seq`, and only events of transactions older than every
/// transaction still running are served (`tx_id < pg_snapshot_xmin`): any event that
/// becomes visible later belongs to a transaction that was running (or not yet started)
/// at the previous read, whose id is at least that read's horizon — so it sorts after
/// every event served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor {
    /// The writing transaction's id (PostgreSQL `xid8`); 0 on SQLite.
    pub tx: i64,
    pub seq: i64,
}

impl EventCursor {
    /// `"<seq>"` (SQLite, and the start) or `"<tx>.<seq>"` (PostgreSQL).
    pub fn parse(text: &str) -> Option<EventCursor> {
        let (tx, seq) = match text.split_once('.') {
            Some((tx, seq)) => (tx.parse().ok()?, seq.parse().ok()?),
            None => (0, text.parse().ok()?),
        };
        (tx >= 0 && seq >= 0).then_some(EventCursor { tx, seq })
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tx == 0 { write!(f, "{}", self.seq) } else { write!(f, "{}.{}", self.tx, self.seq) }
    }
}

/// A stored event with its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    /// The writing transaction's id (PostgreSQL); 0 on SQLite. See [`EventCursor`].
    pub tx: i64,
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
    /// Only events after this cursor.
    pub after: EventCursor,
    pub event_type: Option<String>,
    pub order_id: Option<String>,
    pub channel: Option<String>,
    pub limit: i64,
}

/// Events as rows of a JSON array parameter ([`event_rows`] writes them in this order).
pub(crate) const EVENT_ROWS: JsonRows = JsonRows {
    table: "events",
    columns: &[
        element("event_id", SqlType::Text),
        element("type", SqlType::Text),
        element("channel", SqlType::Text),
        element("order_id", SqlType::Text),
        element("node_id", SqlType::Text),
        element("at_ms", SqlType::BigInt),
        element("version", SqlType::Int),
        element("data", SqlType::Text),
        element("actor", SqlType::Text),
    ],
};

/// The JSON array parameter of events, in the order given ([`EVENT_ROWS`]).
pub(crate) fn event_rows(events: &[NewEvent]) -> String {
    serde_json::Value::from(
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
    .to_string()
}

impl Tx {
    /// Writes events (one statement for all of them), in the order given.
    pub async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        static INSERT: PerDialect = PerDialect::new(|d| EVENT_ROWS.insert(d, "$1", &[], RowOrder::AsGiven));
        let rows = event_rows(events);
        let sql = INSERT.get(self.dialect());
        on_tx!(self, |conn| {
            sqlx::query(sql).bind(&rows).execute(conn).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Events after `filter.after`, in stream order (see [`EventCursor`]): a consumer that
    /// resumes from the cursor of the last event it saw never skips one committed late.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>> {
        let (tx, after, order) = match self {
            Store::Sqlite(_) => ("0", "seq > $6", "seq"),
            Store::Postgres(_) => (
                "CAST(tx_id::text AS BIGINT)",
                "(tx_id > $1::text::xid8 OR (tx_id = $1::text::xid8 AND seq > $6)) \
                 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())",
                "tx_id, seq",
            ),
        };
        // `$1 IS NOT NULL` only makes SQLite's statement use $1 as well.
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, StoredEvent>(sqlx::AssertSqlSafe(format!(
                "SELECT seq, {tx} AS tx, event_id, type, channel, order_id, node_id, at_ms, version, data, actor \
                 FROM events WHERE {after} AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR order_id = $3) \
                   AND ($4 IS NULL OR channel = $4) AND ($1 IS NOT NULL) \
                 ORDER BY {order} LIMIT $5"
            )))
            .bind(f.after.tx.to_string())
            .bind(&f.event_type)
            .bind(&f.order_id)
            .bind(&f.channel)
            .bind(f.limit)
            .bind(f.after.seq)
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
                "SELECT seq, CAST(0 AS BIGINT) AS tx, event_id, type, channel, order_id, node_id, at_ms, version, data, actor \
                 FROM events WHERE order_id = $1 ORDER BY seq",
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
