-- A quarantined item is kept as a bounded record, not whole: raw holds an
-- excerpt (at most scorekeeper.MaxQuarantineExcerpt bytes), raw_truncated
-- says it is only the item's start, raw_size is the whole item's length in
-- bytes, and raw_hash stays the SHA-256 of the whole item, the key that
-- keeps an item seen twice one row. Rows from before hold their whole item:
-- none is truncated, and their size is that of raw.
ALTER TABLE quarantine ADD COLUMN raw_size BIGINT NOT NULL DEFAULT 0;

--bun:split

ALTER TABLE quarantine ADD COLUMN raw_truncated BOOLEAN NOT NULL DEFAULT FALSE;

--bun:split

-- octet_length counts bytes on both databases (length counts characters).
UPDATE quarantine SET raw_size = octet_length(raw);
