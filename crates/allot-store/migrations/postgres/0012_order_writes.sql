-- SQLite's 0012 writes an order's rows through one statement (a view with an INSTEAD OF
-- trigger); PostgreSQL does that with data-modifying CTEs already (`Tx::write_order`).
-- This keeps the two backends' migration numbers in step.
SELECT 1;
