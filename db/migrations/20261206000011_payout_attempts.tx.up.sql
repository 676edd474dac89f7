-- GET /api/users/{userId}/payouts shows how often each payout was sent to
-- the provider and when it settled. attempts counts the requests made
-- (each recorded before it is sent); settled_at is when it became paid or
-- failed (before this column, updated_at changed only then, so it is the
-- settlement time of the payouts settled so far).
ALTER TABLE payouts ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

--bun:split

ALTER TABLE payouts ADD COLUMN settled_at TIMESTAMPTZ;

--bun:split

UPDATE payouts SET settled_at = updated_at WHERE status <> 'requested';

--bun:split

-- The user's payouts newest first, as the route pages them.
CREATE INDEX payouts_user_id_created_at_idx ON payouts (user_id, created_at, transaction_id);
