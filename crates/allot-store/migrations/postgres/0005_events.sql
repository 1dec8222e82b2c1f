-- The transactional outbox: every event is written in the transaction of the change it
-- reports. Sequence values are taken before commit, so a later seq can commit first;
-- `tx_id` lets readers serve only events of transactions older than every one still
-- running (see Store::events), so a consumer's cursor never skips an event.
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    channel         TEXT,
    order_id        TEXT,
    node_id         TEXT,
    at_ms           BIGINT NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    data            TEXT NOT NULL,
    tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id()
);

CREATE INDEX events_by_order ON events (order_id, seq);
CREATE INDEX events_by_type ON events (type, seq);
