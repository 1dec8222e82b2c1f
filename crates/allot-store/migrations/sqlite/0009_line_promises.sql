-- A line's promise (the delivery date the customer was promised, from a promise option)
-- and its jeopardy state, kept by the jeopardy sweep.
ALTER TABLE order_lines ADD COLUMN promised_date TEXT;
ALTER TABLE order_lines ADD COLUMN jeopardy TEXT CHECK (jeopardy IN ('on_track', 'at_risk', 'late'));
