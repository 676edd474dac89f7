-- Monotonic counters behind /metrics, moved in the same transaction as the
-- rows they count, so every web process reports the same exact totals.
CREATE TABLE counters (
    name  TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    value BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, label)
);
