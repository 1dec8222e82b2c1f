-- PostgreSQL's 0011 compresses sourcing decisions with lz4; SQLite stores text as it is.
-- This keeps the two backends' migration numbers in step.
SELECT 1;
