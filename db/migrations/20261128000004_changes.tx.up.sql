-- The change feed behind the web processes' read caches: every write that
-- changes summaries or the watermark takes the next generation (counters
-- row 'generation') and lists the users it changed (a JSON array, one row
-- per write). Generations commit in order, because the counter row stays
-- locked until commit.
CREATE TABLE summary_changes (
    gen        BIGINT PRIMARY KEY,
    users      TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
