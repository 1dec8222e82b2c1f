//! The event outbox and its readers: events come back in the order written, a cursor
//! resumes after the last event seen without skipping one that committed late
//! (PostgreSQL), filters select, relay cursors only move forward.

use allot_store::{ContactRow, EventCursor, EventFilter, NewEvent, Store, StoredEvent};

use crate::conformance;
use crate::fixtures::{NOW, another_page, event, line, order, place, settled, stocked};
use crate::harness::Db;

conformance!(
    events_come_back_in_the_order_written_with_every_field,
    a_cursor_resumes_after_the_last_event_seen,
    event_filters_select_by_type_order_and_channel,
    a_rolled_back_change_leaves_no_event,
    the_horizon_is_the_last_event_a_reader_may_serve,
    a_relay_cursor_only_moves_forward,
    customer_contacts_read_back_in_time_order,
);
conformance!(postgres_only: an_event_committed_late_is_served_after_the_cursor_that_passed_it);

async fn write(store: &Store, events: &[NewEvent]) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_events(events).await.unwrap();
    tx.commit().await.unwrap();
}

fn cursor(e: &StoredEvent) -> EventCursor {
    EventCursor { tx: e.tx, seq: e.seq }
}

fn ids(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// Every event after `filter.after`, `filter.limit` at a time.
async fn read_all(store: &Store, mut filter: EventFilter) -> Vec<StoredEvent> {
    settled(store).await;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        another_page(&mut pages);
        let page = store.events(&filter).await.unwrap();
        assert!(page.len() as i64 <= filter.limit);
        let Some(last) = page.last() else { return out };
        filter.after = cursor(last);
        out.extend(page);
    }
}

async fn events_come_back_in_the_order_written_with_every_field(store: &Store) {
    stocked(store, &[]).await;
    let o = order(1, "web", &[line("SKU-1", 1, "DC-1")]);
    // Ids deliberately not in insertion order: the stream keeps the order given.
    let mut written: Vec<NewEvent> = [5, 3, 9, 1].into_iter().map(|n| event(n, "order.created", Some(&o))).collect();
    written[1].node_id = Some("DC-1".to_owned());
    written[2] = event(9, "inventory.changed", None);
    written[3].version = 2;
    write(store, &written).await;
    let read = read_all(store, EventFilter { limit: 100, ..Default::default() }).await;
    let as_new: Vec<NewEvent> = read
        .iter()
        .map(|e| NewEvent {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            channel: e.channel.clone(),
            order_id: e.order_id.clone(),
            node_id: e.node_id.clone(),
            at_ms: e.at_ms,
            version: e.version,
            data: e.data.clone(),
            actor: e.actor.clone(),
        })
        .collect();
    assert_eq!(as_new, written);
    assert!(read.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows along the stream");
    let by_seq = store.events_by_seq(&[read[3].seq, read[1].seq, 999_999]).await.unwrap();
    assert_eq!(ids(&by_seq), [read[1].event_id.clone(), read[3].event_id.clone()], "by seq, in seq order");
    assert_eq!(ids(&store.order_events("ord_none").await.unwrap()), Vec::<String>::new());
}

async fn a_cursor_resumes_after_the_last_event_seen(store: &Store) {
    let batches: Vec<Vec<NewEvent>> =
        (0..4u64).map(|b| (0..3u64).map(|i| event(b * 10 + i, "test.event", None)).collect()).collect();
    let mut expected = Vec::new();
    for batch in &batches {
        write(store, batch).await;
        expected.extend(batch.iter().map(|e| e.event_id.clone()));
    }
    for limit in [1, 2, 5, 12, 50] {
        let read = read_all(store, EventFilter { limit, ..Default::default() }).await;
        assert_eq!(ids(&read), expected, "pages of {limit}: each event once, in order");
    }
    // Resuming from the text form of a cursor is the same as from the cursor.
    let all = read_all(store, EventFilter { limit: 50, ..Default::default() }).await;
    let middle = EventCursor::parse(&cursor(&all[6]).to_string()).unwrap();
    assert_eq!(middle, cursor(&all[6]));
    let rest = read_all(store, EventFilter { after: middle, limit: 50, ..Default::default() }).await;
    assert_eq!(ids(&rest), expected[7..]);
    let last = cursor(all.last().unwrap());
    assert!(read_all(store, EventFilter { after: last, limit: 50, ..Default::default() }).await.is_empty());
}

async fn event_filters_select_by_type_order_and_channel(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 10)]).await;
    let web = order(1, "web", &[line("SKU-1", 1, "DC-1")]);
    let app = order(2, "app", &[line("SKU-1", 1, "DC-1")]);
    place(store, &web, 1).await; // order.created, order.allocated
    place(store, &app, 3).await;
    write(store, &[event(5, "order.cancelled", Some(&web)), event(6, "inventory.changed", None)]).await;
    let text = |s: &str| Some(s.to_owned());
    let cases = [
        (EventFilter { event_type: text("order.created"), ..Default::default() }, vec![1, 3]),
        (EventFilter { order_id: text(&web.order_id), ..Default::default() }, vec![1, 2, 5]),
        (EventFilter { channel: text("app"), ..Default::default() }, vec![3, 4]),
        (EventFilter { event_type: text("order.allocated"), channel: text("web"), ..Default::default() }, vec![2]),
        (EventFilter { event_type: text("order.shipped"), ..Default::default() }, vec![]),
    ];
    for (filter, numbers) in cases {
        let what = format!("{filter:?}");
        let read = read_all(store, EventFilter { limit: 2, ..filter }).await;
        let expected: Vec<String> = numbers.iter().map(|n| event(*n, "", None).event_id).collect();
        assert_eq!(ids(&read), expected, "{what}");
    }
}

async fn a_rolled_back_change_leaves_no_event(db: &Db) {
    let mut tx = db.begin().await.unwrap();
    tx.insert_events(&[event(1, "test.event", None), event(2, "test.event", None)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.rows("events").await, 0);
    write(db, &[event(3, "test.event", None)]).await;
    let read = read_all(db, EventFilter { limit: 10, ..Default::default() }).await;
    assert_eq!(ids(&read), [event(3, "", None).event_id]);
    // Writing nothing is allowed and writes nothing.
    write(db, &[]).await;
    assert_eq!(db.rows("events").await, 1);
}

async fn the_horizon_is_the_last_event_a_reader_may_serve(store: &Store) {
    assert_eq!(store.event_horizon().await.unwrap(), EventCursor::default(), "no events: the start");
    write(store, &[event(1, "test.event", None), event(2, "test.event", None)]).await;
    let read = read_all(store, EventFilter { limit: 10, ..Default::default() }).await;
    assert_eq!(read.len(), 2);
    assert_eq!(store.event_horizon().await.unwrap(), cursor(&read[1]));
    assert_eq!(store.events_in_flight().await.unwrap(), 0, "nothing is waiting for an older transaction");
}

async fn a_relay_cursor_only_moves_forward(store: &Store) {
    assert_eq!(store.relay_cursor("nats").await.unwrap(), EventCursor::default());
    // (tx, seq) pairs offered in turn, and where the cursor is after each.
    let steps =
        [((0, 5), (0, 5)), ((0, 3), (0, 5)), ((7, 1), (7, 1)), ((6, 9), (7, 1)), ((7, 1), (7, 1)), ((7, 2), (7, 2))];
    for ((tx, seq), (want_tx, want_seq)) in steps {
        let mut t = store.begin().await.unwrap();
        t.advance_relay_cursor("nats", EventCursor { tx, seq }, NOW).await.unwrap();
        t.commit().await.unwrap();
        let at = store.relay_cursor("nats").await.unwrap();
        assert_eq!(at, EventCursor { tx: want_tx, seq: want_seq }, "after offering {tx}.{seq}");
    }
    assert_eq!(store.relay_cursor("other").await.unwrap(), EventCursor::default(), "cursors are per relay");
}

async fn customer_contacts_read_back_in_time_order(store: &Store) {
    stocked(store, &[("DC-1", "SKU-1", 1)]).await;
    let o = order(1, "web", &[line("SKU-1", 1, "DC-1")]);
    place(store, &o, 1).await;
    let contact = |id: &str, channel: &str, at_ms: i64| ContactRow {
        contact_id: id.to_owned(),
        order_id: o.order_id.clone(),
        channel: channel.to_owned(),
        reason: "where_is_my_order".to_owned(),
        actor: "operator".to_owned(),
        at_ms,
    };
    let (late, early) = (contact("ct_1", "phone", NOW + 20), contact("ct_2", "chat", NOW + 10));
    let mut tx = store.begin().await.unwrap();
    tx.insert_contact(&late).await.unwrap();
    tx.insert_contact(&early).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.order_contacts(&o.order_id).await.unwrap(), [early, late]);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.insert_contact(&contact("ct_3", "pigeon", NOW)).await.is_err(), "contact channels are a closed set");
    tx.rollback().await.unwrap();
}

/// A transaction that took its id first but its `seq` last commits while an older-id
/// transaction with a smaller `seq` still runs; a reader resuming from the last cursor it
/// saw must still get the late one. (SQLite's single writer commits in `seq` order.)
async fn an_event_committed_late_is_served_after_the_cursor_that_passed_it(store: &Store) {
    // `late` takes its transaction id first (any write does) …
    let mut late = store.begin().await.unwrap();
    late.advance_relay_cursor("probe", EventCursor { tx: 0, seq: 1 }, 0).await.unwrap();
    // … `early` gets a later id but the smaller seq, and stays open.
    let mut early = store.begin().await.unwrap();
    early.insert_events(&[event(1, "test.early", None)]).await.unwrap();
    late.insert_events(&[event(2, "test.late", None)]).await.unwrap();
    late.commit().await.unwrap();
    // Other tests' transactions older than `late` must end first (`settled`); `early`'s
    // event is not committed, so it is not waited for.
    settled(store).await;

    // While `early` runs, the reader gets `late`'s event (its transaction is older than
    // every running one) and moves its cursor past it.
    let first = store.events(&EventFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(ids(&first), [event(2, "", None).event_id]);
    let passed = cursor(&first[0]);
    assert_eq!(store.event_horizon().await.unwrap(), passed);
    early.commit().await.unwrap();
    settled(store).await;
    // The event with the smaller seq is still served after that cursor.
    let second = store.events(&EventFilter { after: passed, limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(ids(&second), [event(1, "", None).event_id], "resuming from {passed} must not skip it");
    assert!(second[0].seq < first[0].seq && second[0].tx > first[0].tx);
    assert_eq!(EventCursor::parse(&passed.to_string()), Some(passed));
    assert_eq!(store.events_in_flight().await.unwrap(), 0);
}

/// Committed behind an older transaction still running: written, not yet served.
async fn events_wait_in_flight_behind_an_older_running_transaction(store: &Store) {
    let mut older = store.begin().await.unwrap();
    older.advance_relay_cursor("probe", EventCursor { tx: 0, seq: 1 }, 0).await.unwrap();
    write(store, &[event(1, "test.event", None), event(2, "test.event", None)]).await;
    assert_eq!(store.events_in_flight().await.unwrap(), 2);
    assert!(store.events(&EventFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty());
    assert_eq!(store.event_horizon().await.unwrap(), EventCursor::default());
    older.commit().await.unwrap();
    settled(store).await;
    assert_eq!(store.events(&EventFilter { limit: 10, ..Default::default() }).await.unwrap().len(), 2);
}
conformance!(postgres_only: events_wait_in_flight_behind_an_older_running_transaction);

#[test]
fn an_event_cursor_reads_back_from_its_text() {
    let cases = [
        ("0", Some(EventCursor { tx: 0, seq: 0 })),
        ("42", Some(EventCursor { tx: 0, seq: 42 })),
        ("7.42", Some(EventCursor { tx: 7, seq: 42 })),
        ("", None),
        ("-1", None),
        ("7.-1", None),
        ("-7.1", None),
        ("7.", None),
        (".7", None),
        ("7.4.2", None),
        ("seven", None),
        ("99999999999999999999", None),
    ];
    for (text, cursor) in cases {
        assert_eq!(EventCursor::parse(text), cursor, "{text:?}");
        if let Some(c) = cursor {
            assert_eq!(c.to_string(), text, "{c:?} prints as it parses");
        }
    }
    // Cursors order as the stream does: by transaction, then seq.
    assert!(EventCursor { tx: 1, seq: 9 } < EventCursor { tx: 2, seq: 1 });
}
