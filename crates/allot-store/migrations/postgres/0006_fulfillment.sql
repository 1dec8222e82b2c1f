-- Fulfillment execution (issue 6); see the SQLite twin for the reasons of each change.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('allocated','partially_allocated','backordered',
    'unfilled','on_hold','partially_shipped','shipped','delivered','cancelled'));

ALTER TABLE order_lines ADD COLUMN shipped BIGINT NOT NULL DEFAULT 0 CHECK (shipped >= 0);
ALTER TABLE order_lines ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0 CHECK (delivered >= 0);
ALTER TABLE order_lines ADD CONSTRAINT order_lines_handover_check CHECK (delivered <= shipped AND shipped <= allocated);
ALTER TABLE order_lines DROP CONSTRAINT order_lines_status_check;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_status_check CHECK (status IN ('allocated','partially_allocated',
    'backordered','unfilled','partially_shipped','shipped','delivered','cancelled'));

ALTER TABLE fulfillment_orders DROP CONSTRAINT fulfillment_orders_order_id_node_id_key;
ALTER TABLE fulfillment_orders ADD COLUMN kind TEXT NOT NULL DEFAULT 'ship' CHECK (kind IN ('ship','pickup'));
ALTER TABLE fulfillment_orders ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE fulfillment_orders ADD COLUMN reason TEXT;
ALTER TABLE fulfillment_orders ADD COLUMN released_at_ms BIGINT;
ALTER TABLE fulfillment_orders ADD COLUMN updated_at_ms BIGINT;
UPDATE fulfillment_orders SET updated_at_ms = created_at_ms,
    released_at_ms = CASE WHEN status = 'created' THEN NULL ELSE created_at_ms END;
ALTER TABLE fulfillment_orders ALTER COLUMN updated_at_ms SET NOT NULL;
CREATE INDEX fulfillment_orders_by_order ON fulfillment_orders (order_id);
CREATE INDEX fulfillment_orders_queue ON fulfillment_orders (node_id, status, fulfillment_order_id);
CREATE INDEX fulfillment_orders_waiting ON fulfillment_orders (status, released_at_ms);

ALTER TABLE allocations DROP CONSTRAINT allocations_pkey;
ALTER TABLE allocations ADD PRIMARY KEY (fulfillment_order_id, line_id, sku);
ALTER TABLE allocations DROP CONSTRAINT allocations_quantity_check;
ALTER TABLE allocations ADD CONSTRAINT allocations_quantity_check CHECK (quantity >= 0);
ALTER TABLE allocations ADD COLUMN picked BIGINT CHECK (picked >= 0);
ALTER TABLE allocations ADD COLUMN short BIGINT NOT NULL DEFAULT 0 CHECK (short >= 0);
ALTER TABLE allocations ADD COLUMN shipped BIGINT NOT NULL DEFAULT 0 CHECK (shipped >= 0 AND shipped <= quantity);
CREATE INDEX allocations_by_order ON allocations (order_id, line_id);

-- Fulfillment orders made before kinds existed: pickup when every line they carry is a
-- pickup or curbside line of the captured order, else ship.
UPDATE fulfillment_orders SET kind = 'pickup' WHERE fulfillment_order_id IN (
    SELECT a.fulfillment_order_id FROM allocations a JOIN orders o ON o.order_id = a.order_id
        CROSS JOIN LATERAL jsonb_array_elements(o.document::jsonb -> 'lines') AS l
    WHERE l ->> 'line_id' = a.line_id
    GROUP BY a.fulfillment_order_id
    HAVING SUM(CASE WHEN l ->> 'method' IN ('pickup', 'curbside') THEN 0 ELSE 1 END) = 0);

CREATE TABLE sourcing_attempts (
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    attempt         BIGINT NOT NULL CHECK (attempt >= 2),
    reason          TEXT NOT NULL,
    failed_node_id  TEXT,
    fulfillment_order_id TEXT,
    decision        TEXT NOT NULL,
    at_ms           BIGINT NOT NULL,
    PRIMARY KEY (order_id, attempt)
);

CREATE TABLE shipments (
    shipment_id     TEXT PRIMARY KEY,
    fulfillment_order_id TEXT NOT NULL REFERENCES fulfillment_orders (fulfillment_order_id),
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    node_id         TEXT NOT NULL,
    carrier         TEXT NOT NULL,
    tracking_number TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('shipped','in_transit','out_for_delivery','delivered','exception',
                        'delayed')),
    lines           TEXT NOT NULL,
    detail          TEXT,
    shipped_at_ms   BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX shipments_by_order ON shipments (order_id);

-- Who caused an event: channel:<id>, node:<id>, operator (an admin key) or system (sweeps).
ALTER TABLE events ADD COLUMN actor TEXT;

-- Customer-service contacts about an order (the contact-rate KPI counts them).
CREATE TABLE customer_contacts (
    contact_id      TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    channel         TEXT NOT NULL CHECK (channel IN ('phone','chat','email')),
    reason          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at_ms           BIGINT NOT NULL
);
CREATE INDEX customer_contacts_by_order ON customer_contacts (order_id);

-- Webhook endpoints and their deliveries (the outbox relay). `cursor_seq` is the last
-- event fanned out into deliveries; a delivery is pending until the endpoint answers 2xx
-- (delivered) or it has failed max attempts (dead, re-drivable).
CREATE TABLE webhooks (
    webhook_id      TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,                 -- comma-separated, or *
    secret          TEXT NOT NULL,                 -- whsec_<base64>, needed to sign
    cursor_tx       BIGINT NOT NULL DEFAULT 0,        -- with cursor_seq: the event cursor (see Store::events)
    cursor_seq      BIGINT NOT NULL CHECK (cursor_seq >= 0),
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    webhook_id      TEXT NOT NULL REFERENCES webhooks (webhook_id),
    seq             BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    order_key       TEXT NOT NULL,                 -- the order id (or the event id): order is kept per key
    status          TEXT NOT NULL CHECK (status IN ('pending','delivered','dead')),
    attempts        BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at_ms BIGINT,
    PRIMARY KEY (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_ms);
CREATE INDEX webhook_deliveries_by_key ON webhook_deliveries (webhook_id, order_key, seq);
