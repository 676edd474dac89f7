-- The upstream request budget, shared by every worker through the database:
-- one row per granted request. budget_locks has one row per budget and is
-- updated first in every grant, so grants are serialised across processes.
CREATE TABLE budget_locks (
    name       TEXT PRIMARY KEY,
    updated_at TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE TABLE budget_grants (
    name       TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    holder     TEXT NOT NULL DEFAULT ''
);

--bun:split

CREATE INDEX budget_grants_name_granted_at_idx ON budget_grants (name, granted_at);
