-- Foundation schema (SQLite). The PostgreSQL migration of the same number has the same
-- meaning; the CHECK constraints repeat the core's invariants as the second guard.

CREATE TABLE nodes (
    node_id         TEXT PRIMARY KEY NOT NULL,
    node_type       TEXT NOT NULL CHECK (node_type IN ('dc','store','dark_store','dropship','3pl','locker','return_center')),
    name            TEXT NOT NULL,
    lat             REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon             REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    time_zone       TEXT NOT NULL,
    capabilities    TEXT NOT NULL,          -- sorted, comma-separated capability spellings
    status          TEXT NOT NULL CHECK (status IN ('active','paused','closed')),
    orders_per_day  INTEGER CHECK (orders_per_day >= 0),
    units_per_day   INTEGER CHECK (units_per_day >= 0),
    per_order_minor INTEGER NOT NULL,
    per_unit_minor  INTEGER NOT NULL,
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE items (
    sku             TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    weight_g        INTEGER NOT NULL CHECK (weight_g >= 0),
    length_mm       INTEGER CHECK (length_mm >= 0),
    width_mm        INTEGER CHECK (width_mm >= 0),
    height_mm       INTEGER CHECK (height_mm >= 0),
    hazmat          INTEGER NOT NULL CHECK (hazmat IN (0, 1)),
    ship_alone      INTEGER NOT NULL CHECK (ship_alone IN (0, 1)),
    methods         TEXT NOT NULL CHECK (methods <> ''),   -- sorted, comma-separated
    substitutes     TEXT NOT NULL,                         -- comma-separated SKUs, in order
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at_ms   INTEGER NOT NULL,
    CHECK ((length_mm IS NULL) = (width_mm IS NULL) AND (width_mm IS NULL) = (height_mm IS NULL))
) STRICT;

CREATE TABLE positions (
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL REFERENCES items (sku),
    on_hand         INTEGER NOT NULL CHECK (on_hand BETWEEN 0 AND 1000000000),
    damaged         INTEGER NOT NULL CHECK (damaged BETWEEN 0 AND 1000000000),
    quarantined     INTEGER NOT NULL CHECK (quarantined BETWEEN 0 AND 1000000000),
    safety_stock    INTEGER NOT NULL CHECK (safety_stock BETWEEN 0 AND 1000000000),
    reserved        INTEGER NOT NULL CHECK (reserved BETWEEN 0 AND 1000000000),
    allocated       INTEGER NOT NULL CHECK (allocated BETWEEN 0 AND 1000000000),
    seq             INTEGER CHECK (seq >= 0),
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (node_id, sku)
) STRICT, WITHOUT ROWID;

CREATE INDEX positions_by_sku ON positions (sku);

CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY NOT NULL,
    digest          TEXT NOT NULL UNIQUE CHECK (length(digest) = 64),   -- hex SHA-256 of the key
    role            TEXT NOT NULL CHECK (role = 'admin' OR role LIKE 'channel:_%' OR role LIKE 'node:_%'),
    created_at_ms   INTEGER NOT NULL
) STRICT;
