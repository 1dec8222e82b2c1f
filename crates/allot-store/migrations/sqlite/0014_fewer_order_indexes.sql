-- Two secondary indexes that no query needs, and that cost the most of any per order: their
-- keys (a position; a SKU) scatter each order's entries over the whole index, so nearly
-- every allocation and line dirtied a page of its own in each group commit (measured: the
-- demo's placement rate rose by about a sixth without them).
-- * allocations_by_position (node_id, sku): no statement looks allocations up by position;
--   stock per position lives in `positions`.
-- * order_lines_by_sku (sku, order_id): `GET /v1/orders?sku=` walks orders newest first and
--   probes each order's lines, which the primary key (order_id, line_id) serves as well
--   (an order has at most 500 lines); the backorder queue by SKU has its own partial index
--   (order_lines_backordered, 0009). PostgreSQL keeps this index: its planner can start
--   from it for a rare SKU.
DROP INDEX IF EXISTS allocations_by_position;
DROP INDEX IF EXISTS order_lines_by_sku;
