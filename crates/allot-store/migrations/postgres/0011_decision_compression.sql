-- Sourcing decisions (several KB of JSON per order) and captured order documents are
-- compressed with lz4 instead of PostgreSQL's default pglz: a profile of order placement
-- showed pglz compressing each new order's decision as a visible share of the server's
-- time, and lz4 compresses several times faster. Existing values stay as they are (a
-- value keeps the method it was written with). A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE orders ALTER COLUMN decision SET COMPRESSION lz4;
    ALTER TABLE orders ALTER COLUMN document SET COMPRESSION lz4;
    ALTER TABLE sourcing_attempts ALTER COLUMN decision SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; decisions stay compressed with pglz';
END
$$;
