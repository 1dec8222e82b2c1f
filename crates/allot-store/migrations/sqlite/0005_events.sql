-- The transactional outbox: every event is written in the transaction of the change it
-- reports. `seq` orders events; on SQLite (one writer) commit order is seq order.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    channel         TEXT,
    order_id        TEXT,
    node_id         TEXT,
    at_ms           INTEGER NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    data            TEXT NOT NULL
) STRICT;

CREATE INDEX events_by_order ON events (order_id, seq);
CREATE INDEX events_by_type ON events (type, seq);
