-- Placement in one autocommit statement (`Store::place_order_at_once`): the order's insert
-- passes only if every planned position covered its units, else the statement — and with it
-- everything it wrote — fails with SQLSTATE AL001 and the order is planned again.
CREATE OR REPLACE FUNCTION allot_all_taken(taken bigint, wanted integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF taken < wanted THEN
        RAISE EXCEPTION 'a planned position does not cover its units' USING ERRCODE = 'AL001';
    END IF;
    RETURN true;
END
$$;
