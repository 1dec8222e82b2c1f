//! Webhook endpoints and their delivery queue: fan-out queues each event once per
//! endpoint, a claim takes due deliveries with a lease (one order's deliveries in `seq`
//! order), only the lease holder records the outcome, dead deliveries can be driven again,
//! and on PostgreSQL two relays claiming at once never get the same delivery.

use std::time::Duration;

use allot_store::{DeliveryCounts, DeliveryRow, EventCursor, Store, StoredWebhook};

use crate::conformance;
use crate::fixtures::NOW;

conformance!(
    an_endpoint_is_created_then_replaced_keeping_its_cursor,
    fan_out_queues_each_event_once_and_moves_the_cursor_forward_only,
    a_claim_takes_due_deliveries_oldest_first_under_a_lease,
    a_later_delivery_of_an_order_waits_for_the_earlier_one,
    only_the_lease_holder_records_an_outcome,
    redriving_sends_dead_deliveries_again_from_scratch,
);
conformance!(postgres_only: two_relays_claiming_at_once_never_share_a_delivery);

const LEASE: i64 = 30_000;

fn endpoint(id: &str) -> StoredWebhook {
    StoredWebhook {
        webhook_id: id.to_owned(),
        url: format!("https://example.test/{id}"),
        event_types: vec!["order.allocated".to_owned(), "order.created".to_owned()],
        secret: "whsec_c2VjcmV0".to_owned(),
        cursor: EventCursor { tx: 0, seq: 0 },
        created_at_ms: NOW,
        updated_at_ms: NOW,
    }
}

/// An endpoint `wh_1` with deliveries of (seq, order key) queued at `NOW`.
async fn queued(store: &Store, deliveries: &[(i64, &str)]) {
    let rows: Vec<(i64, String, String)> =
        deliveries.iter().map(|(seq, key)| (*seq, format!("evt_{seq}"), (*key).to_owned())).collect();
    let mut tx = store.begin().await.unwrap();
    tx.put_webhook(&endpoint("wh_1")).await.unwrap();
    tx.insert_deliveries("wh_1", &rows, NOW).await.unwrap();
    tx.commit().await.unwrap();
}

async fn claim(store: &Store, now: i64, limit: i64) -> Vec<DeliveryRow> {
    let mut tx = store.begin().await.unwrap();
    let claimed = tx.claim_deliveries(now, now + LEASE, limit).await.unwrap();
    tx.commit().await.unwrap();
    claimed
}

fn seqs(rows: &[DeliveryRow]) -> Vec<i64> {
    rows.iter().map(|d| d.seq).collect()
}

/// Records `d`'s outcome as the relay that claimed it at `claimed_at` does.
async fn finish(store: &Store, d: &DeliveryRow, claimed_at: i64, status: &str, attempts: i64) {
    let mut done = d.clone();
    done.status = status.to_owned();
    done.attempts = attempts;
    done.delivered_at_ms = (status == "delivered").then_some(claimed_at + 1);
    done.last_error = (status != "delivered").then(|| "HTTP 503".to_owned());
    done.next_attempt_at_ms = claimed_at + 60_000;
    let mut tx = store.begin().await.unwrap();
    tx.finish_delivery(&done, claimed_at + LEASE).await.unwrap();
    tx.commit().await.unwrap();
}

async fn an_endpoint_is_created_then_replaced_keeping_its_cursor(store: &Store) {
    let first = endpoint("wh_1");
    let mut tx = store.begin().await.unwrap();
    assert!(tx.put_webhook(&first).await.unwrap(), "created");
    tx.advance_webhook_cursor("wh_1", EventCursor { tx: 0, seq: 12 }).await.unwrap();
    tx.commit().await.unwrap();
    let mut replaced = first.clone();
    replaced.url = "https://example.test/moved".to_owned();
    replaced.event_types = vec!["*".to_owned()];
    replaced.secret = "whsec_bmV3".to_owned();
    replaced.cursor = EventCursor::default(); // ignored on replace
    replaced.updated_at_ms = NOW + 5;
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.put_webhook(&replaced).await.unwrap(), "replaced, not created");
    tx.commit().await.unwrap();
    let stored = store.webhook("wh_1").await.unwrap().unwrap();
    assert_eq!(stored, StoredWebhook { cursor: EventCursor { tx: 0, seq: 12 }, ..replaced });
    assert_eq!(store.webhooks().await.unwrap(), [stored]);
    assert_eq!(store.webhook("wh_2").await.unwrap(), None);
}

async fn fan_out_queues_each_event_once_and_moves_the_cursor_forward_only(store: &Store) {
    queued(store, &[(1, "ord_a"), (2, "ord_b"), (3, "ord_a")]).await;
    // A second fan-out over overlapping events (a relay that crashed before moving the
    // cursor) queues only the new ones.
    let mut tx = store.begin().await.unwrap();
    let rows = [(3, "evt_3".to_owned(), "ord_a".to_owned()), (4, "evt_4".to_owned(), "evt_4".to_owned())];
    tx.insert_deliveries("wh_1", &rows, NOW + 1).await.unwrap();
    tx.insert_deliveries("wh_1", &[], NOW + 1).await.unwrap();
    tx.advance_webhook_cursor("wh_1", EventCursor { tx: 0, seq: 4 }).await.unwrap();
    tx.advance_webhook_cursor("wh_1", EventCursor { tx: 0, seq: 2 }).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.delivery_counts("wh_1").await.unwrap(), DeliveryCounts { pending: 4, delivered: 0, dead: 0 });
    assert_eq!(store.webhook("wh_1").await.unwrap().unwrap().cursor, EventCursor { tx: 0, seq: 4 }, "never back");
    let listed = store.deliveries("wh_1", Some("pending"), 0, 10).await.unwrap();
    assert_eq!(seqs(&listed), [1, 2, 3, 4]);
    let d = &listed[2];
    assert_eq!(
        (d.event_id.as_str(), d.order_key.as_str(), d.attempts, d.next_attempt_at_ms, d.status.as_str()),
        ("evt_3", "ord_a", 0, NOW, "pending"),
        "the first fan-out's row is kept as it was"
    );
    assert_eq!(seqs(&store.deliveries("wh_1", None, 2, 1).await.unwrap()), [3], "after a seq, at most the limit");
    assert!(store.deliveries("wh_1", Some("dead"), 0, 10).await.unwrap().is_empty());
}

async fn a_claim_takes_due_deliveries_oldest_first_under_a_lease(store: &Store) {
    queued(store, &[(1, "ord_a"), (2, "ord_b"), (3, "ord_c"), (4, "ord_d")]).await;
    assert!(claim(store, NOW - 1, 10).await.is_empty(), "nothing is due before its time");
    let first = claim(store, NOW, 3).await;
    assert_eq!(seqs(&first), [1, 2, 3], "oldest first, at most the limit");
    assert!(first.iter().all(|d| d.next_attempt_at_ms == NOW), "the rows as they were before the claim");
    let stored = store.deliveries("wh_1", None, 0, 10).await.unwrap();
    let due: Vec<i64> = stored.iter().map(|d| d.next_attempt_at_ms).collect();
    assert_eq!(due, [NOW + LEASE, NOW + LEASE, NOW + LEASE, NOW], "claimed ones are leased");
    assert_eq!(seqs(&claim(store, NOW + 1, 10).await), [4], "leased deliveries are not claimed again");
    // A lease that runs out makes the delivery claimable again (its relay died).
    assert_eq!(seqs(&claim(store, NOW + LEASE, 10).await), [1, 2, 3]);
}

async fn a_later_delivery_of_an_order_waits_for_the_earlier_one(store: &Store) {
    queued(store, &[(1, "ord_a"), (2, "ord_a"), (3, "ord_b"), (4, "ord_a")]).await;
    let first = claim(store, NOW, 10).await;
    assert_eq!(seqs(&first), [1, 3], "one delivery per order at a time");
    finish(store, &first[0], NOW, "delivered", 1).await;
    assert_eq!(seqs(&claim(store, NOW + 1, 10).await), [2], "ord_a's next, once the first is delivered");
    // A dead delivery does not hold its order back.
    let mut tx = store.begin().await.unwrap();
    let leased = store.deliveries("wh_1", Some("pending"), 1, 1).await.unwrap();
    assert_eq!(seqs(&leased), [2]);
    tx.finish_delivery(&DeliveryRow { status: "dead".to_owned(), attempts: 8, ..leased[0].clone() }, NOW + 1 + LEASE)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seqs(&claim(store, NOW + 2, 10).await), [4]);
}

async fn only_the_lease_holder_records_an_outcome(store: &Store) {
    queued(store, &[(1, "ord_a")]).await;
    let claimed = claim(store, NOW, 10).await;
    // The lease ran out and another relay claimed it at NOW + LEASE.
    let again = claim(store, NOW + LEASE, 10).await;
    assert_eq!(seqs(&again), [1]);
    // The first relay's late answer is not recorded …
    finish(store, &claimed[0], NOW, "delivered", 1).await;
    assert_eq!(store.delivery_counts("wh_1").await.unwrap(), DeliveryCounts { pending: 1, delivered: 0, dead: 0 });
    // … the holder's is, with every field.
    finish(store, &again[0], NOW + LEASE, "pending", 2).await;
    let row = store.deliveries("wh_1", None, 0, 10).await.unwrap().remove(0);
    let expected = DeliveryRow {
        attempts: 2,
        next_attempt_at_ms: NOW + LEASE + 60_000,
        last_error: Some("HTTP 503".to_owned()),
        ..claimed[0].clone()
    };
    assert_eq!(row, expected);
    finish(store, &claim(store, NOW + LEASE + 60_000, 10).await[0], NOW + LEASE + 60_000, "delivered", 3).await;
    let row = store.deliveries("wh_1", None, 0, 10).await.unwrap().remove(0);
    assert_eq!((row.status.as_str(), row.attempts, row.delivered_at_ms), ("delivered", 3, Some(NOW + LEASE + 60_001)));
    assert!(claim(store, NOW + 10 * LEASE, 10).await.is_empty(), "a delivered delivery is done");
}

async fn redriving_sends_dead_deliveries_again_from_scratch(store: &Store) {
    queued(store, &[(1, "ord_a"), (2, "ord_b"), (3, "ord_c")]).await;
    let claimed = claim(store, NOW, 10).await;
    finish(store, &claimed[0], NOW, "dead", 8).await;
    finish(store, &claimed[1], NOW, "delivered", 1).await;
    finish(store, &claimed[2], NOW, "dead", 8).await;
    assert_eq!(store.delivery_counts("wh_1").await.unwrap(), DeliveryCounts { pending: 0, delivered: 1, dead: 2 });
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.redrive_deliveries("wh_1", NOW + 100).await.unwrap(), 2);
    assert_eq!(tx.redrive_deliveries("wh_2", NOW + 100).await.unwrap(), 0, "another endpoint has none");
    tx.commit().await.unwrap();
    assert_eq!(store.delivery_counts("wh_1").await.unwrap(), DeliveryCounts { pending: 2, delivered: 1, dead: 0 });
    let again = claim(store, NOW + 100, 10).await;
    assert_eq!(seqs(&again), [1, 3]);
    assert!(again.iter().all(|d| d.attempts == 0 && d.next_attempt_at_ms == NOW + 100), "{again:?}");
}

/// Two relays (replicas) claim at once: the second skips the rows the first has locked
/// instead of waiting for them or taking them too.
async fn two_relays_claiming_at_once_never_share_a_delivery(store: &Store) {
    queued(store, &[(1, "ord_a"), (2, "ord_b"), (3, "ord_c"), (4, "ord_d"), (5, "ord_e")]).await;
    let mut one = store.begin().await.unwrap();
    let first = one.claim_deliveries(NOW, NOW + LEASE, 2).await.unwrap();
    let mut two = store.begin().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), two.claim_deliveries(NOW, NOW + LEASE, 10))
        .await
        .expect("a claim must skip locked deliveries, not wait for them")
        .unwrap();
    assert_eq!(seqs(&first), [1, 2]);
    assert_eq!(seqs(&second), [3, 4, 5]);
    one.commit().await.unwrap();
    two.commit().await.unwrap();
    assert!(store.deliveries("wh_1", None, 0, 10).await.unwrap().iter().all(|d| d.next_attempt_at_ms == NOW + LEASE));
}
