-- One statement writes an order with its lines, fulfillment orders, allocations and events:
-- an INSERT into this view, whose INSTEAD OF trigger does the five inserts. Each statement
-- of a multi-statement call is a result message from sqlx's connection thread, and most
-- of them woke the group writer's thread (about five wake-ups per order); as one statement
-- the order's rows cost one. The columns are the order's, then its rows as JSON arrays
-- (see `Tx::write_order`). The trigger names orders, order_lines, fulfillment_orders,
-- allocations and events: a later migration that rebuilds one of them (as 0006 did) must
-- DROP TRIGGER order_writes_insert first and create it again after.
CREATE VIEW order_writes AS SELECT
    NULL AS order_id, NULL AS channel, NULL AS external_id, NULL AS request_hash, NULL AS status,
    NULL AS holds, NULL AS document, NULL AS decision, NULL AS policy_name, NULL AS policy_version,
    NULL AS policy_hash, NULL AS created_at_ms, NULL AS lines, NULL AS fulfillment_orders,
    NULL AS allocations, NULL AS events
WHERE 0;

CREATE TRIGGER order_writes_insert INSTEAD OF INSERT ON order_writes
BEGIN
    INSERT INTO orders (order_id, channel, external_id, request_hash, status, holds, document,
        decision, policy_name, policy_version, policy_hash, created_at_ms)
    VALUES (NEW.order_id, NEW.channel, NEW.external_id, NEW.request_hash, NEW.status, NEW.holds,
        NEW.document, NEW.decision, NEW.policy_name, NEW.policy_version, NEW.policy_hash,
        NEW.created_at_ms);
    INSERT INTO order_lines (order_id, line_id, sku, quantity, allocated, backordered, unfilled,
        cancelled, status, promised_date, promised_ready_at_ms)
    SELECT NEW.order_id, v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, v.value ->> 4,
        v.value ->> 5, v.value ->> 6, v.value ->> 7, v.value ->> 8, v.value ->> 9
    FROM json_each(NEW.lines) AS v;
    INSERT INTO fulfillment_orders (fulfillment_order_id, order_id, node_id, kind, attempt, status,
        created_at_ms, released_at_ms, updated_at_ms, due_date)
    SELECT v.value ->> 0, NEW.order_id, v.value ->> 1, v.value ->> 2, v.value ->> 3, v.value ->> 4,
        v.value ->> 5, v.value ->> 6, v.value ->> 7, v.value ->> 8
    FROM json_each(NEW.fulfillment_orders) AS v;
    INSERT INTO allocations (order_id, line_id, node_id, sku, quantity, fulfillment_order_id)
    SELECT NEW.order_id, v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, v.value ->> 4
    FROM json_each(NEW.allocations) AS v;
    INSERT INTO events (event_id, type, channel, order_id, node_id, at_ms, version, data, actor)
    SELECT v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, v.value ->> 4, v.value ->> 5,
        v.value ->> 6, v.value ->> 7, v.value ->> 8
    FROM json_each(NEW.events) AS v ORDER BY v.key;
END;
