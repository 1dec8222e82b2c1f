//! `Idempotency-Key`: a caller's retry of a request gets the first answer instead of
//! running the request again.
//!
//! What it owns: a request's fingerprint (SHA-256 of method, path with query, and the
//! body's bytes, fed as the body streams in — nothing is parsed or copied to compute it),
//! and the claim → run → store-the-answer cycle around a request. What it must never do:
//! know HTTP (the API hands it method, path, body chunks and the answer as plain values).
//!
//! The record is written in its own transactions around the request, not inside the
//! request's own transaction: a crash between the request's commit and the answer being
//! stored leaves a claim without an answer, which a retry takes over after
//! [`allot_store::IDEMPOTENCY_STALE_CLAIM_MS`] and runs again. Orders are still safe then:
//! (channel, external_id) makes the rerun answer the order already placed.

use allot_store::{Claim, StoredAnswer};
use sha2::Digest;

use crate::{App, Result};

/// A request's identity for idempotency, built as its body streams in. Two requests are
/// the same when method, path, query and body bytes are the same (a retry resends the
/// same bytes; a body that differs only in spacing or key order is a different request).
pub struct RequestFingerprint(sha2::Sha256);

impl RequestFingerprint {
    pub fn new(method: &str, path_and_query: &str) -> RequestFingerprint {
        let mut hasher = sha2::Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update(b" ");
        hasher.update(path_and_query.as_bytes());
        hasher.update(b"\n");
        RequestFingerprint(hasher)
    }

    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl App {
    /// Claims `key` for `caller` (an API key's id) and a request with `fingerprint`:
    /// run it, replay the stored answer, or refuse (another request, or still running).
    pub async fn claim_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        method: &str,
        path: &str,
        fingerprint: &str,
    ) -> Result<Claim> {
        let now = self.now_ms();
        Ok(self.inner.store.claim_idempotency_key(caller, key, method, path, fingerprint, now).await?)
    }

    /// Stores the answer of a claimed request for its retries.
    pub async fn complete_idempotency_key(&self, caller: &str, key: &str, answer: &StoredAnswer) -> Result<()> {
        Ok(self.inner.store.complete_idempotency_key(caller, key, answer).await?)
    }

    /// Forgets keys older than their 24 hours (the sweeper, hourly).
    pub(crate) async fn purge_idempotency_keys(&self) -> Result<u64> {
        Ok(self.inner.store.purge_idempotency_keys(self.now_ms()).await?)
    }

    /// Gives a claim up (the request failed on the server's side): a retry runs again.
    pub async fn abandon_idempotency_key(&self, caller: &str, key: &str) -> Result<()> {
        Ok(self.inner.store.abandon_idempotency_key(caller, key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_does_not_depend_on_how_the_body_was_cut_into_chunks() {
        let whole = {
            let mut f = RequestFingerprint::new("POST", "/v1/orders");
            f.update(b"{\"a\":1}");
            f.finish()
        };
        let chunked = {
            let mut f = RequestFingerprint::new("POST", "/v1/orders");
            for chunk in [&b"{\"a"[..], b"\":", b"1}"] {
                f.update(chunk);
            }
            f.finish()
        };
        assert_eq!(whole, chunked);
        let other_path = {
            let mut f = RequestFingerprint::new("POST", "/v1/orders?x=1");
            f.update(b"{\"a\":1}");
            f.finish()
        };
        assert_ne!(whole, other_path);
    }
}
