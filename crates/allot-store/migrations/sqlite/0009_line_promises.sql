-- A line's promise (the delivery date the customer was promised, from a promise option)
-- and its jeopardy state, kept by the jeopardy sweep.
ALTER TABLE order_lines ADD COLUMN promised_date TEXT;
ALTER TABLE order_lines ADD COLUMN jeopardy TEXT CHECK (jeopardy IN ('on_track', 'at_risk', 'late'));

-- Backordered lines by SKU (what a stock increase looks for; usually few rows).
CREATE INDEX order_lines_backordered ON order_lines (sku, order_id) WHERE backordered > 0;
