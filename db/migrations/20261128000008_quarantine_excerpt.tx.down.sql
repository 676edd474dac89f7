-- Rows stored since the up migration keep their excerpts in raw.
ALTER TABLE quarantine DROP COLUMN raw_truncated;

--bun:split

ALTER TABLE quarantine DROP COLUMN raw_size;
