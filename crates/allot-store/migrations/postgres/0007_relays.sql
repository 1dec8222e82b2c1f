-- Where each outbox relay (NATS JetStream so far) has published up to: the last event
-- seq the broker acknowledged, so a restart resumes there (the broker's de-duplication
-- by Nats-Msg-Id absorbs a re-publish of events acknowledged but not yet recorded).
CREATE TABLE relay_cursors (
    relay           TEXT PRIMARY KEY,
    cursor_tx       BIGINT NOT NULL DEFAULT 0,
    cursor_seq      BIGINT NOT NULL CHECK (cursor_seq >= 0),
    updated_at_ms   BIGINT NOT NULL
);

-- Readers page through events in (transaction id, seq) order: see Store::events.
CREATE INDEX events_by_tx ON events (tx_id, seq);
