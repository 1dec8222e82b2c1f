//! `Idempotency-Key` claims: the first request runs, its answer is replayed to retries,
//! another request with the key is a mismatch, a retry while it runs is in flight, and a
//! claim never answered is taken over once it is stale; keys expire after the TTL.

use allot_store::{Claim, IDEMPOTENCY_STALE_CLAIM_MS, IDEMPOTENCY_TTL_MS, Store, StoredAnswer};

use crate::conformance;
use crate::fixtures::NOW;
use crate::harness::Db;

conformance!(
    a_new_key_runs_and_its_answer_is_replayed,
    the_key_used_for_another_request_is_a_mismatch,
    a_retry_while_the_first_request_runs_is_in_flight,
    a_claim_never_answered_is_taken_over_once_stale,
    a_key_past_its_ttl_runs_again,
    abandoning_forgets_only_an_unanswered_claim,
    purging_deletes_keys_past_their_ttl,
    of_two_first_requests_at_once_exactly_one_runs,
);

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn claim(store: &Store, key: &str, now: i64) -> Claim {
    store.claim_idempotency_key("channel:web", key, "POST", "/v1/orders", HASH, now).await.unwrap()
}

fn answer() -> StoredAnswer {
    StoredAnswer {
        status: 201,
        content_type: "application/json".to_owned(),
        body: r#"{"order_id":"ord_1"}"#.to_owned(),
    }
}

async fn answered(store: &Store, key: &str, now: i64) {
    assert_eq!(claim(store, key, now).await, Claim::Run);
    store.complete_idempotency_key("channel:web", key, &answer()).await.unwrap();
}

async fn a_new_key_runs_and_its_answer_is_replayed(store: &Store) {
    answered(store, "k1", NOW).await;
    assert_eq!(claim(store, "k1", NOW + 1).await, Claim::Replay(answer()));
    assert_eq!(claim(store, "k1", NOW + IDEMPOTENCY_TTL_MS - 1).await, Claim::Replay(answer()), "until the TTL");
    // Keys are per caller.
    let other = store.claim_idempotency_key("channel:app", "k1", "POST", "/v1/orders", HASH, NOW + 2).await.unwrap();
    assert_eq!(other, Claim::Run);
}

async fn the_key_used_for_another_request_is_a_mismatch(store: &Store) {
    answered(store, "k1", NOW).await;
    let other_hash = "f".repeat(64);
    let cases =
        [("PUT", "/v1/orders", HASH), ("POST", "/v1/reservations", HASH), ("POST", "/v1/orders", other_hash.as_str())];
    for (method, path, hash) in cases {
        let claim = store.claim_idempotency_key("channel:web", "k1", method, path, hash, NOW + 1).await.unwrap();
        let expected = Claim::Mismatch { method: "POST".to_owned(), path: "/v1/orders".to_owned() };
        assert_eq!(claim, expected, "{method} {path} {hash}");
    }
    assert_eq!(claim(store, "k1", NOW + 2).await, Claim::Replay(answer()), "the stored answer is untouched");
}

async fn a_retry_while_the_first_request_runs_is_in_flight(store: &Store) {
    assert_eq!(claim(store, "k1", NOW).await, Claim::Run);
    assert_eq!(claim(store, "k1", NOW + 1).await, Claim::InFlight);
    assert_eq!(claim(store, "k1", NOW + IDEMPOTENCY_STALE_CLAIM_MS - 1).await, Claim::InFlight);
    store.complete_idempotency_key("channel:web", "k1", &answer()).await.unwrap();
    assert_eq!(claim(store, "k1", NOW + IDEMPOTENCY_STALE_CLAIM_MS).await, Claim::Replay(answer()));
}

async fn a_claim_never_answered_is_taken_over_once_stale(store: &Store) {
    assert_eq!(claim(store, "k1", NOW).await, Claim::Run);
    // The process died. At the stale age exactly, a retry takes the claim over …
    let later = NOW + IDEMPOTENCY_STALE_CLAIM_MS;
    assert_eq!(claim(store, "k1", later).await, Claim::Run);
    // … and the claim is new: a retry right after it is in flight again.
    assert_eq!(claim(store, "k1", later + 1).await, Claim::InFlight);
    // A different request with the key is a mismatch, answered or abandoned.
    let other = store
        .claim_idempotency_key("channel:web", "k1", "PUT", "/v1/x", HASH, later + IDEMPOTENCY_STALE_CLAIM_MS)
        .await
        .unwrap();
    assert_eq!(other, Claim::Mismatch { method: "POST".to_owned(), path: "/v1/orders".to_owned() });
}

async fn a_key_past_its_ttl_runs_again(store: &Store) {
    answered(store, "k1", NOW).await;
    assert_eq!(claim(store, "k1", NOW + IDEMPOTENCY_TTL_MS).await, Claim::Run);
    assert_eq!(claim(store, "k1", NOW + IDEMPOTENCY_TTL_MS + 1).await, Claim::InFlight, "the answer is gone");
}

async fn abandoning_forgets_only_an_unanswered_claim(store: &Store) {
    assert_eq!(claim(store, "open", NOW).await, Claim::Run);
    answered(store, "done", NOW).await;
    store.abandon_idempotency_key("channel:web", "open").await.unwrap();
    store.abandon_idempotency_key("channel:web", "done").await.unwrap();
    assert_eq!(claim(store, "open", NOW + 1).await, Claim::Run, "a server error's claim may be retried at once");
    assert_eq!(claim(store, "done", NOW + 1).await, Claim::Replay(answer()));
}

async fn purging_deletes_keys_past_their_ttl(db: &Db) {
    answered(db, "old", NOW).await;
    answered(db, "new", NOW + 10).await;
    assert_eq!(db.purge_idempotency_keys(NOW + IDEMPOTENCY_TTL_MS - 1).await.unwrap(), 0);
    assert_eq!(db.purge_idempotency_keys(NOW + IDEMPOTENCY_TTL_MS).await.unwrap(), 1);
    assert_eq!(db.rows("idempotency_keys").await, 1);
    assert_eq!(claim(db, "new", NOW + 11).await, Claim::Replay(answer()));
}

async fn of_two_first_requests_at_once_exactly_one_runs(store: &Store) {
    for round in 0..5 {
        let key = format!("k{round}");
        let (a, b) = tokio::join!(claim(store, &key, NOW), claim(store, &key, NOW));
        let mut claims = [a, b];
        claims.sort_by_key(|c| matches!(c, Claim::InFlight));
        assert_eq!(claims, [Claim::Run, Claim::InFlight], "round {round}");
    }
}
