-- no-transaction
-- Fulfillment execution (issue 6). SQLite cannot change a CHECK constraint or a key in
-- place, so the order tables are rebuilt (the documented 12-step procedure: foreign keys
-- off, new table, copy, drop, rename, check, foreign keys on), in one transaction.
--
-- * orders / order_lines: statuses gain partially_shipped, shipped, delivered; lines count
--   shipped and delivered units (both within allocated).
-- * fulfillment_orders: one per order × node × kind and sourcing attempt (a re-sourced
--   line may come back to a node later), so (order_id, node_id) is no longer unique; kind
--   (ship or pickup), the attempt that made it, the reason of a rejection or
--   cancellation, and release/update times.
-- * allocations: keyed by (fulfillment order, line, SKU: a substitute is its own row); picked and short (written off at
--   pick time) and shipped units; kept at quantity 0 (all cancelled or not found) as a record.
-- * sourcing_attempts: every re-sourcing of an order (after a rejection, short pick,
--   timeout), with its reason and decision; attempt 1 is the capture decision on orders.
-- * shipments: parcels with carrier and tracking number, and their last carrier scan.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE orders_new (
    order_id        TEXT PRIMARY KEY NOT NULL,
    channel         TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    request_hash    TEXT NOT NULL CHECK (length(request_hash) = 64),
    status          TEXT NOT NULL CHECK (status IN ('allocated','partially_allocated','backordered','unfilled','on_hold',
                        'partially_shipped','shipped','delivered','cancelled')),
    holds           TEXT NOT NULL,
    document        TEXT NOT NULL,
    decision        TEXT NOT NULL,
    policy_name     TEXT NOT NULL,
    policy_version  INTEGER NOT NULL,
    policy_hash     TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    UNIQUE (channel, external_id)
) STRICT;
INSERT INTO orders_new SELECT order_id, channel, external_id, request_hash, status, holds, document, decision,
    policy_name, policy_version, policy_hash, created_at_ms FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_channel ON orders (channel, order_id);
CREATE INDEX orders_by_status ON orders (status, order_id);

CREATE TABLE order_lines_new (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    sku             TEXT NOT NULL REFERENCES items (sku),
    quantity        INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    allocated       INTEGER NOT NULL CHECK (allocated >= 0),
    backordered     INTEGER NOT NULL CHECK (backordered >= 0),
    unfilled        INTEGER NOT NULL CHECK (unfilled >= 0),
    cancelled       INTEGER NOT NULL CHECK (cancelled >= 0),
    shipped         INTEGER NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    delivered       INTEGER NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    status          TEXT NOT NULL CHECK (status IN ('allocated','partially_allocated','backordered','unfilled',
                        'partially_shipped','shipped','delivered','cancelled')),
    PRIMARY KEY (order_id, line_id),
    CHECK (allocated + backordered + unfilled + cancelled = quantity),
    CHECK (delivered <= shipped AND shipped <= allocated)
) STRICT;
INSERT INTO order_lines_new (order_id, line_id, sku, quantity, allocated, backordered, unfilled, cancelled, status)
    SELECT order_id, line_id, sku, quantity, allocated, backordered, unfilled, cancelled, status FROM order_lines;
DROP TABLE order_lines;
ALTER TABLE order_lines_new RENAME TO order_lines;
CREATE INDEX order_lines_by_sku ON order_lines (sku, order_id);

CREATE TABLE fulfillment_orders_new (
    fulfillment_order_id TEXT PRIMARY KEY NOT NULL,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    kind            TEXT NOT NULL DEFAULT 'ship' CHECK (kind IN ('ship','pickup')),
    attempt         INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    status          TEXT NOT NULL CHECK (status IN ('created','released','accepted','picking','packed','shipped',
                        'delivered','ready_for_pickup','picked_up','rejected','cancelled')),
    reason          TEXT,
    created_at_ms   INTEGER NOT NULL,
    released_at_ms  INTEGER,
    updated_at_ms   INTEGER NOT NULL
) STRICT;
INSERT INTO fulfillment_orders_new (fulfillment_order_id, order_id, node_id, status, created_at_ms, released_at_ms,
        updated_at_ms)
    SELECT fulfillment_order_id, order_id, node_id, status, created_at_ms,
        CASE WHEN status = 'created' THEN NULL ELSE created_at_ms END, created_at_ms FROM fulfillment_orders;
DROP TABLE fulfillment_orders;
ALTER TABLE fulfillment_orders_new RENAME TO fulfillment_orders;
CREATE INDEX fulfillment_orders_by_order ON fulfillment_orders (order_id);
CREATE INDEX fulfillment_orders_by_node ON fulfillment_orders (node_id, order_id);
CREATE INDEX fulfillment_orders_queue ON fulfillment_orders (node_id, status, fulfillment_order_id);
CREATE INDEX fulfillment_orders_waiting ON fulfillment_orders (status, released_at_ms);

CREATE TABLE allocations_new (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 0),   -- 0: all cancelled or not found
    fulfillment_order_id TEXT NOT NULL REFERENCES fulfillment_orders (fulfillment_order_id),
    picked          INTEGER CHECK (picked >= 0),
    short           INTEGER NOT NULL DEFAULT 0 CHECK (short >= 0),
    shipped         INTEGER NOT NULL DEFAULT 0 CHECK (shipped >= 0 AND shipped <= quantity),
    PRIMARY KEY (fulfillment_order_id, line_id, sku),
    FOREIGN KEY (order_id, line_id) REFERENCES order_lines (order_id, line_id)
) STRICT;
INSERT INTO allocations_new (order_id, line_id, node_id, sku, quantity, fulfillment_order_id)
    SELECT order_id, line_id, node_id, sku, quantity, fulfillment_order_id FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_new RENAME TO allocations;
CREATE INDEX allocations_by_position ON allocations (node_id, sku);
CREATE INDEX allocations_by_order ON allocations (order_id, line_id);

-- Fulfillment orders made before kinds existed: pickup when every line they carry is a
-- pickup or curbside line of the captured order, else ship.
UPDATE fulfillment_orders SET kind = 'pickup' WHERE fulfillment_order_id IN (
    SELECT a.fulfillment_order_id FROM allocations a JOIN orders o ON o.order_id = a.order_id,
        json_each(o.document, '$.lines') AS l
    WHERE json_extract(l.value, '$.line_id') = a.line_id
    GROUP BY a.fulfillment_order_id
    HAVING SUM(CASE WHEN json_extract(l.value, '$.method') IN ('pickup', 'curbside') THEN 0 ELSE 1 END) = 0);

CREATE TABLE sourcing_attempts (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    attempt         INTEGER NOT NULL CHECK (attempt >= 2),
    reason          TEXT NOT NULL,
    failed_node_id  TEXT,
    fulfillment_order_id TEXT,
    decision        TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    PRIMARY KEY (order_id, attempt)
) STRICT;

CREATE TABLE shipments (
    shipment_id     TEXT PRIMARY KEY NOT NULL,
    fulfillment_order_id TEXT NOT NULL REFERENCES fulfillment_orders (fulfillment_order_id),
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    node_id         TEXT NOT NULL,
    carrier         TEXT NOT NULL,
    tracking_number TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('shipped','in_transit','out_for_delivery','delivered','exception',
                        'delayed')),
    lines           TEXT NOT NULL,                 -- JSON [{line_id, quantity}]
    detail          TEXT,
    shipped_at_ms   INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    updated_at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX shipments_by_order ON shipments (order_id);

-- Who caused an event: channel:<id>, node:<id>, operator (an admin key) or system (sweeps).
ALTER TABLE events ADD COLUMN actor TEXT;

-- Customer-service contacts about an order (the contact-rate KPI counts them).
CREATE TABLE customer_contacts (
    contact_id      TEXT PRIMARY KEY NOT NULL,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    channel         TEXT NOT NULL CHECK (channel IN ('phone','chat','email')),
    reason          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at_ms           INTEGER NOT NULL
) STRICT;
CREATE INDEX customer_contacts_by_order ON customer_contacts (order_id);

-- Webhook endpoints and their deliveries (the outbox relay). `cursor_seq` is the last
-- event fanned out into deliveries; a delivery is pending until the endpoint answers 2xx
-- (delivered) or it has failed max attempts (dead, re-drivable).
CREATE TABLE webhooks (
    webhook_id      TEXT PRIMARY KEY NOT NULL,
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,                 -- comma-separated, or *
    secret          TEXT NOT NULL,                 -- whsec_<base64>, needed to sign
    cursor_tx       INTEGER NOT NULL DEFAULT 0,        -- with cursor_seq: the event cursor (see Store::events)
    cursor_seq      INTEGER NOT NULL CHECK (cursor_seq >= 0),
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    webhook_id      TEXT NOT NULL REFERENCES webhooks (webhook_id),
    seq             INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    order_key       TEXT NOT NULL,                 -- the order id (or the event id): order is kept per key
    status          TEXT NOT NULL CHECK (status IN ('pending','delivered','dead')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at_ms INTEGER,
    PRIMARY KEY (webhook_id, seq)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_ms);
CREATE INDEX webhook_deliveries_by_key ON webhook_deliveries (webhook_id, order_key, seq);

PRAGMA foreign_key_check;
COMMIT;
PRAGMA foreign_keys = ON;
