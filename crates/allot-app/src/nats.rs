//! The NATS JetStream relay: publishes every outbox event to subject
//! `<prefix>.<event type>` (default `allot.order.created`, …) on a stream it creates if
//! absent, with `Nats-Msg-Id` = the event id.
//!
//! What it owns: the connection (the client reconnects by itself; the relay retries from
//! its cursor), the stream's existence, and the relay cursor. Key invariant: the cursor
//! only moves past an event after the broker acknowledged it and every event before it,
//! so nothing is lost; an event published again after a crash or a lost acknowledgement
//! is dropped by the broker's de-duplication window (keyed by `Nats-Msg-Id`), so nothing
//! is stored twice. Replicas may each run the relay: they publish the same ids, which the
//! broker de-duplicates the same way.

use std::time::Duration;

use async_nats::jetstream;

use crate::{App, Result};

/// The relay's name in `relay_cursors`.
pub const NATS_RELAY: &str = "nats";

#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream created if absent, capturing `<subject_prefix>.>`.
    pub stream: String,
    pub subject_prefix: String,
    /// Events published per pass (acknowledgements awaited together).
    pub batch: i64,
    /// Pause between passes when there was nothing to publish, and after a failure.
    pub poll: Duration,
    /// How long to wait for the broker's acknowledgement of a publish.
    pub ack_timeout: Duration,
    /// The stream's de-duplication window; a re-publish within it is dropped.
    pub duplicate_window: Duration,
}

impl NatsOptions {
    pub fn new(url: &str) -> NatsOptions {
        NatsOptions {
            url: url.to_owned(),
            stream: "ALLOT".to_owned(),
            subject_prefix: "allot".to_owned(),
            batch: 256,
            poll: Duration::from_millis(200),
            ack_timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(600),
        }
    }
}

/// Connects and makes sure the stream exists.
pub async fn connect(opts: &NatsOptions) -> std::result::Result<jetstream::Context, String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(opts.url.as_str())
        .await
        .map_err(|e| format!("connecting to {}: {e}", opts.url))?;
    let mut js = jetstream::new(client);
    js.set_timeout(opts.ack_timeout);
    js.get_or_create_stream(jetstream::stream::Config {
        name: opts.stream.clone(),
        subjects: vec![format!("{}.>", opts.subject_prefix)],
        duplicate_window: opts.duplicate_window,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating stream {}: {e}", opts.stream))?;
    Ok(js)
}

/// How one pass went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsPass {
    /// Events acknowledged by the broker (the cursor moved past them).
    pub published: usize,
    /// Why the pass stopped early (the rest is retried from the cursor).
    pub error: Option<String>,
}

impl App {
    /// One pass: publish the next events after the cursor, await their acknowledgements
    /// in order, move the cursor past the acknowledged prefix.
    pub async fn publish_to_nats_once(&self, js: &jetstream::Context, opts: &NatsOptions) -> Result<NatsPass> {
        let after = self.inner.store.relay_cursor(NATS_RELAY).await?;
        let filter = allot_store::EventFilter { after, limit: opts.batch, ..Default::default() };
        let events = self.inner.store.events(&filter).await?;
        let mut pending = Vec::with_capacity(events.len());
        let mut error = None;
        for e in &events {
            let subject = format!("{}.{}", opts.subject_prefix, e.event_type);
            let msg = jetstream::message::PublishMessage::build()
                .payload(crate::webhooks::payload(e).into())
                .message_id(&e.event_id);
            match js.send_publish(subject, msg).await {
                Ok(ack) => pending.push((allot_store::EventCursor { tx: e.tx, seq: e.seq }, ack)),
                Err(err) => {
                    error = Some(format!("publishing event {}: {err}", e.seq));
                    break;
                }
            }
        }
        let mut acked_to = after;
        let mut published = 0;
        for (at, ack) in pending {
            match ack.await {
                Ok(_) => {
                    acked_to = at;
                    published += 1;
                }
                Err(err) => {
                    error = Some(format!("no acknowledgement for event {}: {err}", at.seq));
                    break;
                }
            }
        }
        if acked_to > after {
            let mut tx = self.inner.store.begin().await?;
            tx.advance_relay_cursor(NATS_RELAY, acked_to, self.now_ms()).await?;
            tx.commit().await?;
        }
        Ok(NatsPass { published, error })
    }
}
