package db

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// ListQuarantinePage returns up to f.Limit quarantined items, newest
// first and then by Key, strictly after f.After, and how many items are
// quarantined in all.
//
// Keyset paging on (first_seen_at, raw_hash) never repeats or skips an
// item: stored items never change, and an item stored while a client
// pages carries a later instant than the cursor (its batch's clock), so it
// lands before the cursor rather than shifting later pages.
func ListQuarantinePage(ctx context.Context, db bun.IDB, f scorekeeper.QuarantineFilter) ([]scorekeeper.QuarantineItem, int, error) {
	if f.Limit <= 0 {
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "limit must be positive")
	}
	total, err := QuarantineCount(ctx, db)
	if err != nil {
		return nil, 0, err
	}
	var rows []quarantineRow
	q := db.NewSelect().
		Model(&rows).
		OrderExpr("first_seen_at DESC, raw_hash").
		Limit(int64(f.Limit))
	if f.After.Key != "" {
		// The instant is compared as the database stores it: bun writes
		// times at microsecond precision in UTC, which is also what the
		// cursor read back, so equality holds on both backends (on SQLite
		// the column is text in one fixed format, which sorts as time).
		at := f.After.ReceivedAt.UTC()
		q = q.Where("(first_seen_at < ? OR (first_seen_at = ? AND raw_hash > ?))", at, at, f.After.Key)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("list quarantine: %w", err)
	}
	out := make([]scorekeeper.QuarantineItem, len(rows))
	for i, r := range rows {
		// Bounded cuts what rows stored before records were bounded hold
		// whole (raw, and a reason quoting a big value) as a record is cut.
		q, err := scorekeeper.Quarantined{
			ItemID: r.ItemID, Raw: r.Raw, Truncated: r.RawTruncated, Size: r.RawSize, SHA256: r.RawHash, Reason: r.Reason,
		}.Bounded()
		if err != nil {
			return nil, 0, fmt.Errorf("list quarantine: row %s: %w", r.RawHash, err)
		}
		out[i] = scorekeeper.QuarantineItem{Quarantined: q, ReceivedAt: r.FirstSeenAt.UTC(), Key: r.RawHash}
	}
	return out, total, nil
}
