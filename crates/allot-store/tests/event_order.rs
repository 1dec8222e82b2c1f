//! The event stream never skips an event that commits late (PostgreSQL): a transaction
//! that took its id first but its `seq` last, committed while an older-id transaction
//! with a smaller `seq` still runs. A reader resuming from the last cursor it saw must
//! still get the late one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use allot_store::{DbConfig, EventCursor, EventFilter, NewEvent, Store};

fn event(id: &str) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        event_type: "test.event".to_owned(),
        channel: None,
        order_id: None,
        node_id: None,
        at_ms: 0,
        version: 1,
        data: "{}".to_owned(),
        actor: None,
    }
}

async fn ids_after(store: &Store, after: EventCursor) -> (Vec<String>, EventCursor) {
    let events = store.events(&EventFilter { after, limit: 100, ..Default::default() }).await.unwrap();
    let next = events.last().map_or(after, |e| EventCursor { tx: e.tx, seq: e.seq });
    (events.into_iter().map(|e| e.event_id).collect(), next)
}

#[tokio::test]
async fn an_event_committed_late_is_served_after_the_cursor_that_passed_it() {
    let Ok(url) = std::env::var("ALLOT_TEST_DATABASE_URL") else {
        eprintln!("skipped: ALLOT_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("event_order_{}", std::process::id());
    let store = Store::open(&DbConfig::Postgres { url: url.clone(), schema: Some(schema.clone()) }).await.unwrap();
    // `late` takes its transaction id first (any write does) …
    let mut late = store.begin().await.unwrap();
    late.advance_relay_cursor("probe", EventCursor { tx: 0, seq: 1 }, 0).await.unwrap();
    // … `early` gets a later id but the smaller seq, and stays open.
    let mut early = store.begin().await.unwrap();
    early.insert_events(&[event("evt_early")]).await.unwrap();
    late.insert_events(&[event("evt_late")]).await.unwrap();
    late.commit().await.unwrap();

    // While `early` runs, the reader gets `late`'s event (its transaction is older than
    // every running one) and moves its cursor past it.
    let (first, cursor) = ids_after(&store, EventCursor::default()).await;
    assert_eq!(first, ["evt_late"]);
    early.commit().await.unwrap();
    // The event with the smaller seq is still served after that cursor.
    let (second, _) = ids_after(&store, cursor).await;
    assert_eq!(second, ["evt_early"], "resuming from {cursor} must not skip it");
    assert_eq!(EventCursor::parse(&cursor.to_string()), Some(cursor));
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
}
