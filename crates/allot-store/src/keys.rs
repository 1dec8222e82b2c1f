//! API keys, stored only as SHA-256 digests of the secret.

use crate::{Result, Store, Tx, on_read, on_tx};

/// A stored key: its public id, the role text (`admin`, `channel:<id>`, `node:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
    pub role: String,
}

impl Tx {
    pub async fn insert_key(&mut self, key_id: &str, digest_hex: &str, role: &str, now_ms: i64) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("INSERT INTO api_keys (key_id, digest, role, created_at_ms) VALUES ($1, $2, $3, $4)")
                .bind(key_id)
                .bind(digest_hex)
                .bind(role)
                .bind(now_ms)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    pub async fn key_count(&mut self) -> Result<i64> {
        let n = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_keys").fetch_one(conn).await?
        });
        Ok(n)
    }
}

impl Store {
    pub async fn key_by_digest(&self, digest_hex: &str) -> Result<Option<StoredKey>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, (String, String)>("SELECT key_id, role FROM api_keys WHERE digest = $1")
                .bind(digest_hex)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(key_id, role)| StoredKey { key_id, role }))
    }
}
