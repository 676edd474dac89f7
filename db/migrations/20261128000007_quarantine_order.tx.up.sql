-- GET /api/quarantine pages newest first by (first_seen_at, raw_hash); the
-- index serves each page without sorting the whole table.
CREATE INDEX quarantine_first_seen_at_idx ON quarantine (first_seen_at DESC, raw_hash);
