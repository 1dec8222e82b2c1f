-- Checkout reservations, Idempotency-Key records, and indexes for order listing.

-- A reservation holds stock out of ATP (positions.reserved) until it expires, is
-- released, or is converted into an order's allocation. `owner` is the channel of the
-- key that made it ('' for an admin key).
CREATE TABLE reservations (
    reservation_id  TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active','released','expired','converted')),
    expires_at_ms   BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    closed_at_ms    BIGINT,
    order_id        TEXT,
    CHECK ((status = 'active') = (closed_at_ms IS NULL)),
    CHECK ((status = 'converted') = (order_id IS NOT NULL))
);

CREATE INDEX reservations_due ON reservations (status, expires_at_ms);

CREATE TABLE reservation_lines (
    reservation_id  TEXT NOT NULL REFERENCES reservations (reservation_id),
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL REFERENCES items (sku),
    quantity        BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    PRIMARY KEY (reservation_id, node_id, sku)
);

-- Idempotency-Key: one row per (caller, key) for 24 h. `status` is NULL while the first
-- request is in flight; then the answer is stored and replayed to retries.
CREATE TABLE idempotency_keys (
    caller          TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    request_hash    TEXT NOT NULL CHECK (length(request_hash) = 64),
    status          BIGINT,
    content_type    TEXT,
    response        TEXT,
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (caller, idem_key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);

CREATE INDEX order_lines_by_sku ON order_lines (sku, order_id);
CREATE INDEX fulfillment_orders_by_node ON fulfillment_orders (node_id, order_id);
CREATE INDEX orders_by_status ON orders (status, order_id);
