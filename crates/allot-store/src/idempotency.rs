//! `Idempotency-Key` records: the first request with a (caller, key) claims it; its
//! answer is stored and replayed to every retry for 24 hours.

use crate::{Result, Store, on_tx};

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// A claim whose request never stored an answer (the process died) is taken over by a
/// retry after this long.
pub const IDEMPOTENCY_STALE_CLAIM_MS: i64 = 60 * 1000;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// What a request carrying a key should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or expired, or abandoned): run the request, then store its answer.
    Run,
    /// The same request was answered: replay the answer.
    Replay(StoredAnswer),
    /// The key was used for a different request (method, path or body).
    Mismatch { method: String, path: String },
    /// The first request with this key is still running.
    InFlight,
}

type KeyRow = (String, String, String, Option<i64>, Option<String>, Option<String>, i64);

impl Store {
    /// Claims `key` for `caller`'s request, or tells how to answer it (see [`Claim`]).
    pub async fn claim_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        method: &str,
        path: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<Claim> {
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |conn| {
            sqlx::query_as::<_, KeyRow>(
                "SELECT method, path, request_hash, status, content_type, response, created_at_ms \
                 FROM idempotency_keys WHERE caller = $1 AND idem_key = $2",
            )
            .bind(caller)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?
        });
        let claim = match row {
            Some((m, p, h, status, content_type, body, created)) if created > now_ms - IDEMPOTENCY_TTL_MS => {
                if m != method || p != path || h != request_hash {
                    Some(Claim::Mismatch { method: m, path: p })
                } else if let Some(status) = status {
                    Some(Claim::Replay(StoredAnswer {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type: content_type.unwrap_or_default(),
                        body: body.unwrap_or_default(),
                    }))
                } else if created > now_ms - IDEMPOTENCY_STALE_CLAIM_MS {
                    Some(Claim::InFlight)
                } else {
                    None // abandoned claim: take it over
                }
            }
            _ => None,
        };
        if let Some(claim) = claim {
            tx.rollback().await?;
            return Ok(claim);
        }
        // New, expired or abandoned: (re)claim. On PostgreSQL two concurrent first
        // requests both reach here; the upsert's condition lets only one of them win.
        let won = on_tx!(&mut tx, |conn| {
            sqlx::query(
                "INSERT INTO idempotency_keys (caller, idem_key, method, path, request_hash, status, content_type, \
                   response, created_at_ms) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, $6) \
                 ON CONFLICT (caller, idem_key) DO UPDATE SET method = excluded.method, path = excluded.path, \
                   request_hash = excluded.request_hash, status = NULL, content_type = NULL, response = NULL, \
                   created_at_ms = excluded.created_at_ms \
                 WHERE idempotency_keys.created_at_ms <= $7 \
                   OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at_ms <= $8)",
            )
            .bind(caller)
            .bind(key)
            .bind(method)
            .bind(path)
            .bind(request_hash)
            .bind(now_ms)
            .bind(now_ms - IDEMPOTENCY_TTL_MS)
            .bind(now_ms - IDEMPOTENCY_STALE_CLAIM_MS)
            .execute(conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(if won == 1 { Claim::Run } else { Claim::InFlight })
    }

    /// Stores the answer to a claimed key.
    pub async fn complete_idempotency_key(&self, caller: &str, key: &str, answer: &StoredAnswer) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $3, content_type = $4, response = $5 \
                 WHERE caller = $1 AND idem_key = $2",
            )
            .bind(caller)
            .bind(key)
            .bind(i64::from(answer.status))
            .bind(&answer.content_type)
            .bind(&answer.body)
            .execute(conn)
            .await?;
        });
        tx.commit().await
    }

    /// Forgets a claim whose request failed in a way worth retrying (a server error).
    pub async fn abandon_idempotency_key(&self, caller: &str, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM idempotency_keys WHERE caller = $1 AND idem_key = $2 AND status IS NULL")
                .bind(caller)
                .bind(key)
                .execute(conn)
                .await?;
        });
        tx.commit().await
    }

    /// Deletes keys older than the TTL; answers how many.
    pub async fn purge_idempotency_keys(&self, now_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at_ms <= $1")
                .bind(now_ms - IDEMPOTENCY_TTL_MS)
                .execute(conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(n)
    }
}
