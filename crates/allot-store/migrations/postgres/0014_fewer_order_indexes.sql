-- No statement looks allocations up by position (stock per position lives in `positions`),
-- and the index cost an entry per allocation at a scattered key. SQLite's 0014 also drops
-- order_lines_by_sku; PostgreSQL keeps it, because its planner can start a
-- `GET /v1/orders?sku=` list from it for a rare SKU.
DROP INDEX IF EXISTS allocations_by_position;
