package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// QuarantineItem is one quarantined upstream item as listed.
type QuarantineItem struct {
	scorekeeper.Quarantined
	// ReceivedAt is when the item was first stored (its batch's clock),
	// as the database keeps it (microseconds).
	ReceivedAt time.Time
	// Key is unique per item (the SHA-256 of its whole raw text, as
	// Quarantined.SHA256) and breaks ties between items received at the
	// same instant, typically one batch.
	Key string
}

// Cursor returns the position just after the item, for the next page.
func (q QuarantineItem) Cursor() QuarantineCursor {
	return QuarantineCursor{ReceivedAt: q.ReceivedAt, Key: q.Key}
}

// QuarantineCursor is a position in the quarantine listing: the
// (ReceivedAt, Key) of the last item of the previous page. The zero
// cursor is the start.
type QuarantineCursor struct {
	ReceivedAt time.Time
	Key        string
}

// QuarantineFilter selects a page of ListQuarantinePage.
type QuarantineFilter struct {
	// After is where the page starts: items strictly after it in listing
	// order. Zero means from the newest.
	After QuarantineCursor
	// Limit is the page size; it must be positive.
	Limit int
}

// ListQuarantinePage returns up to f.Limit quarantined items, newest
// first and then by Key, strictly after f.After, and how many items are
// quarantined in all.
//
// Keyset paging on (first_seen_at, raw_hash) never repeats or skips an
// item: stored items never change, and an item stored while a client
// pages carries a later instant than the cursor (its batch's clock), so it
// lands before the cursor rather than shifting later pages.
func ListQuarantinePage(ctx context.Context, db bun.IDB, f QuarantineFilter) ([]QuarantineItem, int, error) {
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
	out := make([]QuarantineItem, len(rows))
	for i, r := range rows {
		// Bounded cuts what rows stored before records were bounded hold
		// whole (raw, and a reason quoting a big value) as a record is cut.
		q, err := scorekeeper.Quarantined{
			ItemID: r.ItemID, Raw: r.Raw, Truncated: r.RawTruncated, Size: r.RawSize, SHA256: r.RawHash, Reason: r.Reason,
		}.Bounded()
		if err != nil {
			return nil, 0, fmt.Errorf("list quarantine: row %s: %w", r.RawHash, err)
		}
		out[i] = QuarantineItem{Quarantined: q, ReceivedAt: r.FirstSeenAt.UTC(), Key: r.RawHash}
	}
	return out, total, nil
}
