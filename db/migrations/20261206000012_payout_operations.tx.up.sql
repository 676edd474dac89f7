-- Operator actions on payouts. A canceled payout leaves payout_cents like
-- a failed one; canceled_cents sums them (GET /api/payouts?status=canceled).
ALTER TABLE user_summaries ADD COLUMN canceled_cents BIGINT NOT NULL DEFAULT 0;

--bun:split

-- A user whose payouts are on hold: nothing is sent for them until an
-- operator releases it. Kept here, not only in the user's workflow, so a
-- hold outlives a workflow that went idle.
CREATE TABLE payout_holds (
    user_id TEXT PRIMARY KEY,
    reason  TEXT NOT NULL,
    held_by TEXT NOT NULL,
    held_at TIMESTAMPTZ NOT NULL
);
