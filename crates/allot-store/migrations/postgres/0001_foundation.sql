-- Foundation schema (PostgreSQL). Same meaning as the SQLite migration of the same number.

CREATE TABLE nodes (
    node_id         TEXT PRIMARY KEY,
    node_type       TEXT NOT NULL CHECK (node_type IN ('dc','store','dark_store','dropship','3pl','locker','return_center')),
    name            TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon             DOUBLE PRECISION NOT NULL CHECK (lon BETWEEN -180 AND 180),
    time_zone       TEXT NOT NULL,
    capabilities    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active','paused','closed')),
    orders_per_day  BIGINT CHECK (orders_per_day >= 0),
    units_per_day   BIGINT CHECK (units_per_day >= 0),
    per_order_minor BIGINT NOT NULL,
    per_unit_minor  BIGINT NOT NULL,
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    version         BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE items (
    sku             TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    weight_g        BIGINT NOT NULL CHECK (weight_g >= 0),
    length_mm       BIGINT CHECK (length_mm >= 0),
    width_mm        BIGINT CHECK (width_mm >= 0),
    height_mm       BIGINT CHECK (height_mm >= 0),
    hazmat          BOOLEAN NOT NULL,
    ship_alone      BOOLEAN NOT NULL,
    methods         TEXT NOT NULL CHECK (methods <> ''),
    substitutes     TEXT NOT NULL,
    version         BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms   BIGINT NOT NULL,
    CHECK ((length_mm IS NULL) = (width_mm IS NULL) AND (width_mm IS NULL) = (height_mm IS NULL))
);

CREATE TABLE positions (
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL REFERENCES items (sku),
    on_hand         BIGINT NOT NULL CHECK (on_hand BETWEEN 0 AND 1000000000),
    damaged         BIGINT NOT NULL CHECK (damaged BETWEEN 0 AND 1000000000),
    quarantined     BIGINT NOT NULL CHECK (quarantined BETWEEN 0 AND 1000000000),
    safety_stock    BIGINT NOT NULL CHECK (safety_stock BETWEEN 0 AND 1000000000),
    reserved        BIGINT NOT NULL CHECK (reserved BETWEEN 0 AND 1000000000),
    allocated       BIGINT NOT NULL CHECK (allocated BETWEEN 0 AND 1000000000),
    seq             BIGINT CHECK (seq >= 0),
    version         BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (node_id, sku)
);

CREATE INDEX positions_by_sku ON positions (sku);

CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY,
    digest          TEXT NOT NULL UNIQUE CHECK (length(digest) = 64),
    role            TEXT NOT NULL CHECK (role = 'admin' OR role LIKE 'channel:_%' OR role LIKE 'node:_%'),
    created_at_ms   BIGINT NOT NULL
);
