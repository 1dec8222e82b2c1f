//! Policy versions and the active policy. Versions are immutable; a new document is a new
//! version. Concurrent writers of one name serialise on PostgreSQL through an advisory
//! transaction lock on the name, and on SQLite through the single write connection.

use crate::{Result, Store, Tx, on_read, on_tx};

/// One stored version of a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub name: String,
    pub version: i64,
    /// Canonical JSON.
    pub document: String,
    pub hash: String,
    pub created_at_ms: i64,
}

type PolicyRow = (String, i64, String, String, i64);

fn from_row((name, version, document, hash, created_at_ms): PolicyRow) -> StoredPolicy {
    StoredPolicy { name, version, document, hash, created_at_ms }
}

impl Tx {
    /// The latest version of a policy, read inside the transaction (after locking the name
    /// on PostgreSQL, so that the version computed next is not taken by another writer).
    pub async fn lock_latest_policy(&mut self, name: &str) -> Result<Option<StoredPolicy>> {
        if let Tx::Postgres(t) = self {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7213))")
                .bind(name)
                .execute(&mut **t)
                .await?;
        }
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, PolicyRow>(
                "SELECT name, version, document, hash, created_at_ms FROM policies WHERE name = $1 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(name)
            .fetch_optional(conn)
            .await?
        });
        Ok(row.map(from_row))
    }

    pub async fn insert_policy(&mut self, p: &StoredPolicy) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO policies (name, version, document, hash, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&p.name)
            .bind(p.version)
            .bind(&p.document)
            .bind(&p.hash)
            .bind(p.created_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    pub async fn policy_version(&mut self, name: &str, version: i64) -> Result<Option<StoredPolicy>> {
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, PolicyRow>(
                "SELECT name, version, document, hash, created_at_ms FROM policies WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(version)
            .fetch_optional(conn)
            .await?
        });
        Ok(row.map(from_row))
    }

    /// No stored policy is active any more: the built-in default routes again.
    pub async fn clear_active_policy(&mut self) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM active_policy").execute(conn).await?;
        });
        Ok(())
    }

    pub async fn set_active_policy(&mut self, name: &str, version: i64, now_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO active_policy (singleton, name, version, activated_at_ms) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (singleton) DO UPDATE SET name = excluded.name, version = excluded.version, \
                   activated_at_ms = excluded.activated_at_ms",
            )
            .bind(name)
            .bind(version)
            .bind(now_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    pub async fn policy(&self, name: &str, version: Option<i64>) -> Result<Option<StoredPolicy>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, PolicyRow>(
                "SELECT name, version, document, hash, created_at_ms FROM policies \
                 WHERE name = $1 AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
            )
            .bind(name)
            .bind(version)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(from_row))
    }

    /// The latest version of every policy, by name.
    pub async fn latest_policies(&self) -> Result<Vec<StoredPolicy>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, PolicyRow>(
                "SELECT p.name, p.version, p.document, p.hash, p.created_at_ms FROM policies p \
                 WHERE p.version = (SELECT MAX(q.version) FROM policies q WHERE q.name = p.name) ORDER BY p.name",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// The active policy's name and version, if one was activated.
    pub async fn active_policy(&self) -> Result<Option<(String, i64)>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, i64)>("SELECT name, version FROM active_policy WHERE singleton = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }
}
