-- One fetcher at a time (sync_leases), and budget grants that say what
-- they were for and when their answer came (see db.Budget.Settle): a grant
-- is stamped pessimistically at grant time + the request timeout, then at
-- the time its answer came.
ALTER TABLE budget_grants ADD COLUMN id TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE budget_grants ADD COLUMN kind TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE budget_grants ADD COLUMN request TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE budget_grants ADD COLUMN answered BOOLEAN NOT NULL DEFAULT FALSE;

--bun:split

CREATE INDEX budget_grants_id_idx ON budget_grants (id);

--bun:split

CREATE INDEX budget_grants_request_idx ON budget_grants (name, request);

--bun:split

CREATE TABLE sync_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
