DROP INDEX payouts_user_id_created_at_idx;

--bun:split

ALTER TABLE payouts DROP COLUMN settled_at;

--bun:split

ALTER TABLE payouts DROP COLUMN attempts;
