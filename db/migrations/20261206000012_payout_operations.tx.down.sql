DROP TABLE payout_holds;

--bun:split

ALTER TABLE user_summaries DROP COLUMN canceled_cents;
