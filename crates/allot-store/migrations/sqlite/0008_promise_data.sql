-- What promising reads (issue 5): carriers with their services, and node calendars, each
-- stored as its validated JSON document with a version.
CREATE TABLE carriers (
    carrier_id      TEXT PRIMARY KEY NOT NULL,
    document        TEXT NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE node_calendars (
    node_id         TEXT PRIMARY KEY NOT NULL REFERENCES nodes (node_id),
    document        TEXT NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at_ms   INTEGER NOT NULL
) STRICT;
