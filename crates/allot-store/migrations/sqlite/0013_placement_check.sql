-- PostgreSQL's 0013 adds the function its one-statement placement checks stock with; SQLite
-- places orders through the group writer. This keeps the two backends' migration numbers
-- in step.
SELECT 1;
