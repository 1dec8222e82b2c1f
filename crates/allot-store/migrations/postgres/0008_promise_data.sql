-- What promising reads (issue 5): carriers with their services, and node calendars, each
-- stored as its validated JSON document with a version.
CREATE TABLE carriers (
    carrier_id      TEXT PRIMARY KEY,
    document        TEXT NOT NULL,
    version         BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE node_calendars (
    node_id         TEXT PRIMARY KEY REFERENCES nodes (node_id),
    document        TEXT NOT NULL,
    version         BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms   BIGINT NOT NULL
);
