-- The customer-service search (`GET /v1/orders?external_id=|email=|phone=|jeopardy=`): each
-- filter starts from its own index, newest first. Email and phone are read from the captured
-- document (written once, never updated), so placement writes no extra column; email is
-- matched case-insensitively. A tracking number is already unique in `shipments`.
CREATE INDEX orders_by_external_id ON orders (external_id, order_id);
CREATE INDEX orders_by_email ON orders (lower(document::jsonb #>> '{customer,email}'), order_id);
CREATE INDEX orders_by_phone ON orders ((document::jsonb #>> '{customer,phone}'), order_id);
-- Only lines in jeopardy: the worklist of orders at risk or late (few at any time).
CREATE INDEX order_lines_in_jeopardy ON order_lines (jeopardy, order_id) WHERE jeopardy IN ('at_risk', 'late');
