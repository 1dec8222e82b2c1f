//! Versioned JSON documents keyed by id: carriers and node calendars (what promising
//! reads). The app validates a document before it is written; the store keeps the text.

use crate::{Result, Store, Tx, on_read, on_tx};

/// The tables holding documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Carrier,
    NodeCalendar,
}

impl DocumentKind {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            DocumentKind::Carrier => ("carriers", "carrier_id"),
            DocumentKind::NodeCalendar => ("node_calendars", "node_id"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub id: String,
    pub document: String,
    pub version: i64,
    pub updated_at_ms: i64,
}

impl Tx {
    /// Writes a document; answers its new version (1 = created).
    pub async fn put_document(&mut self, kind: DocumentKind, id: &str, document: &str, now_ms: i64) -> Result<i64> {
        let (table, key) = kind.table_and_key();
        let version = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} ({key}, document, version, updated_at_ms) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT ({key}) DO UPDATE SET document = excluded.document, \
                   version = {table}.version + 1, updated_at_ms = excluded.updated_at_ms \
                 RETURNING version"
            )))
            .bind(id)
            .bind(document)
            .bind(now_ms)
            .fetch_one(conn)
            .await?
        });
        Ok(version)
    }
}

impl Store {
    pub async fn documents(&self, kind: DocumentKind) -> Result<Vec<StoredDocument>> {
        let (table, key) = kind.table_and_key();
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String, i64, i64)>(sqlx::AssertSqlSafe(format!(
                "SELECT {key}, document, version, updated_at_ms FROM {table} ORDER BY {key}"
            )))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, document, version, updated_at_ms)| StoredDocument { id, document, version, updated_at_ms })
            .collect())
    }
}
