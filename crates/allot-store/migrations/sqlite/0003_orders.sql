-- Orders, their lines, allocations (a line's units assigned to a node) and fulfillment
-- orders (one per order × node). Stock held by allocations is in positions.allocated,
-- changed in the same transaction.

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY NOT NULL,
    channel         TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    request_hash    TEXT NOT NULL CHECK (length(request_hash) = 64),
    status          TEXT NOT NULL CHECK (status IN ('allocated','partially_allocated','backordered','unfilled','on_hold','cancelled')),
    holds           TEXT NOT NULL,                 -- comma-separated hold kinds
    document        TEXT NOT NULL,                 -- the order as captured (JSON)
    decision        TEXT NOT NULL,                 -- sourcing plan and explanation (JSON)
    policy_name     TEXT NOT NULL,
    policy_version  INTEGER NOT NULL,
    policy_hash     TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    UNIQUE (channel, external_id)
) STRICT;

CREATE TABLE order_lines (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    sku             TEXT NOT NULL REFERENCES items (sku),
    quantity        INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    allocated       INTEGER NOT NULL CHECK (allocated >= 0),
    backordered     INTEGER NOT NULL CHECK (backordered >= 0),
    unfilled        INTEGER NOT NULL CHECK (unfilled >= 0),
    cancelled       INTEGER NOT NULL CHECK (cancelled >= 0),
    status          TEXT NOT NULL CHECK (status IN ('allocated','partially_allocated','backordered','unfilled','cancelled')),
    PRIMARY KEY (order_id, line_id),
    CHECK (allocated + backordered + unfilled + cancelled = quantity)
) STRICT;

CREATE TABLE fulfillment_orders (
    fulfillment_order_id TEXT PRIMARY KEY NOT NULL,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    status          TEXT NOT NULL CHECK (status IN ('created','released','accepted','picking','packed','shipped','delivered','ready_for_pickup','picked_up','rejected','cancelled')),
    created_at_ms   INTEGER NOT NULL,
    UNIQUE (order_id, node_id)
) STRICT;

CREATE TABLE allocations (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 1),
    fulfillment_order_id TEXT NOT NULL REFERENCES fulfillment_orders (fulfillment_order_id),
    PRIMARY KEY (order_id, line_id, node_id),
    FOREIGN KEY (order_id, line_id) REFERENCES order_lines (order_id, line_id)
) STRICT;

CREATE INDEX allocations_by_position ON allocations (node_id, sku);
CREATE INDEX orders_by_channel ON orders (channel, order_id);

-- Every cancellation, whole order or part of a line, with its reason code.
CREATE TABLE cancellations (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 1),
    reason          TEXT NOT NULL,
    cancelled_at_ms INTEGER NOT NULL
) STRICT;
