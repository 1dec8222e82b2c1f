-- The node queue serves the earliest due date first: a fulfillment order is due on the
-- earliest promised date of its lines, else on the (UTC) day it was made, so unpromised
-- and pickup work keeps its place in line instead of waiting behind every promise.
ALTER TABLE fulfillment_orders ADD COLUMN due_date TEXT NOT NULL DEFAULT '';
UPDATE fulfillment_orders SET due_date = COALESCE(
    (SELECT MIN(l.promised_date) FROM allocations a
       JOIN order_lines l ON l.order_id = a.order_id AND l.line_id = a.line_id
      WHERE a.fulfillment_order_id = fulfillment_orders.fulfillment_order_id),
    to_char(to_timestamp(created_at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
CREATE INDEX fulfillment_orders_by_due ON fulfillment_orders (node_id, status, due_date, fulfillment_order_id);

-- A pickup line's promised ready time (placed on a pickup promise option).
ALTER TABLE order_lines ADD COLUMN promised_ready_at_ms BIGINT;

-- A line's service level after a jeopardy upgrade (NULL: as ordered).
ALTER TABLE order_lines ADD COLUMN upgraded_service_level TEXT
    CHECK (upgraded_service_level IN ('standard', 'express', 'next_day', 'same_day'));

-- Incoming stock (a purchase order or transfer) expected at a node: not on hand, so not
-- ATP, but backordered units (preorders) may be promised against it until it arrives.
CREATE TABLE inbound_supply (
    supply_id       TEXT PRIMARY KEY NOT NULL,
    node_id         TEXT NOT NULL REFERENCES nodes (node_id),
    sku             TEXT NOT NULL REFERENCES items (sku),
    quantity        BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    committed       BIGINT NOT NULL CHECK (committed >= 0 AND committed <= quantity),
    eta_ms          BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('expected', 'received', 'cancelled')),
    received        BIGINT NOT NULL CHECK (received >= 0),
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX inbound_supply_open ON inbound_supply (sku, eta_ms) WHERE status = 'expected';

-- Backordered units promised against incoming supply, until the line gets stock.
CREATE TABLE supply_commitments (
    supply_id       TEXT NOT NULL REFERENCES inbound_supply (supply_id),
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    line_id         TEXT NOT NULL,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    committed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (supply_id, order_id, line_id)
);
CREATE INDEX supply_commitments_by_order ON supply_commitments (order_id);

-- Promise accuracy: one row per delivered shipment — the lane (origin node → destination
-- region, carrier service), the carrier days it took, and how it met its promise.
CREATE TABLE delivery_observations (
    shipment_id     TEXT PRIMARY KEY NOT NULL REFERENCES shipments (shipment_id),
    order_id        TEXT NOT NULL,
    node_id         TEXT NOT NULL,
    region          TEXT NOT NULL,                 -- '' when the address had none
    carrier_service TEXT NOT NULL,                 -- carrier:service
    shipped_at_ms   BIGINT NOT NULL,
    delivered_at_ms BIGINT NOT NULL,
    transit_days    BIGINT NOT NULL CHECK (transit_days >= 0),
    promised_date   TEXT,
    days_late       BIGINT                           -- delivered − promised (negative: early); NULL unpromised
);
CREATE INDEX delivery_observations_lane ON delivery_observations (node_id, region, carrier_service);
CREATE INDEX delivery_observations_by_time ON delivery_observations (delivered_at_ms);
