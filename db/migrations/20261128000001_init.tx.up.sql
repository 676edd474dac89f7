-- Amounts are integer cents (BIGINT) in both databases: SQLite's NUMERIC is
-- floating point, so it would not keep money exact.
CREATE TABLE transactions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('earned', 'spent', 'payout')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    synced_at    TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX transactions_user_id_idx ON transactions (user_id);

--bun:split

-- One row per user, kept equal to the aggregate of the user's transactions
-- and payouts (db.Reconcile proves it). payout_cents is the sum of payout
-- requests that have not failed; failed_cents the sum of those that did.
CREATE TABLE user_summaries (
    user_id        TEXT PRIMARY KEY,
    earned_cents   BIGINT NOT NULL DEFAULT 0,
    spent_cents    BIGINT NOT NULL DEFAULT 0,
    payout_cents   BIGINT NOT NULL DEFAULT 0,
    paid_out_cents BIGINT NOT NULL DEFAULT 0,
    failed_cents   BIGINT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE TABLE payouts (
    transaction_id TEXT PRIMARY KEY REFERENCES transactions (id),
    user_id        TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    status         TEXT NOT NULL CHECK (status IN ('requested', 'paid', 'failed')),
    reason         TEXT NOT NULL DEFAULT '',
    provider_id    TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX payouts_user_id_status_idx ON payouts (user_id, status);

--bun:split

CREATE INDEX payouts_status_created_at_idx ON payouts (status, created_at);

--bun:split

-- Malformed upstream items, keyed by a hash of their raw JSON so the same
-- item seen again (another page, the overlap re-scan) is counted once.
CREATE TABLE quarantine (
    raw_hash      TEXT PRIMARY KEY,
    item_id       TEXT NOT NULL DEFAULT '',
    raw           TEXT NOT NULL,
    reason        TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL
);

--bun:split

-- Sync progress. version guards every update (compare-and-set), so two syncs
-- running at once can never move the cursor past data neither committed.
CREATE TABLE sync_state (
    name           TEXT PRIMARY KEY,
    synced_through TIMESTAMPTZ NOT NULL,
    cursor         TEXT NOT NULL DEFAULT '{}',
    version        BIGINT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL
);
