package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// LedgerFilter selects a page of one user's ledger, newest first by
// (createdAt, id). It is comparable, so read caches can key pages by it.
type LedgerFilter struct {
	UserID string
	// Type keeps one type of transaction; "" keeps all.
	Type scorekeeper.TxType
	// From (inclusive) and To (exclusive) bound createdAt; zero: open.
	From, To time.Time
	// After is where the page starts: rows strictly older in (createdAt,
	// id) order. The zero cursor is the first page.
	After LedgerCursor
	Limit int
}

// LedgerCursor is a position in a ledger: the last row of the previous
// page. It holds values, not a row reference, so a row that arrives late
// (older than the position) shows up on a later page and shifts nothing.
type LedgerCursor struct {
	CreatedAt time.Time
	ID        string
}

// LedgerEntry is one row of a user's ledger.
type LedgerEntry struct {
	scorekeeper.Transaction
	// SyncedAt is when scorekeeper stored the transaction.
	SyncedAt time.Time
	// Status is a payout's disbursement state; "" for other types.
	Status scorekeeper.PayoutStatus
}

type ledgerRow struct {
	ID          string         `bun:"id"`
	UserID      string         `bun:"user_id"`
	CreatedAt   time.Time      `bun:"created_at"`
	Type        string         `bun:"type"`
	AmountCents int64          `bun:"amount_cents"`
	SyncedAt    time.Time      `bun:"synced_at"`
	Status      sql.NullString `bun:"status"`
}

// UserLedgerPage returns a page of the user's transactions matching f,
// newest first, and how many match f in all (the cursor aside).
func UserLedgerPage(ctx context.Context, db bun.IDB, f LedgerFilter) ([]LedgerEntry, int, error) {
	if f.Limit <= 0 {
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "limit must be positive")
	}
	match := func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.Where("t.user_id = ?", f.UserID)
		if f.Type != "" {
			q = q.Where("t.type = ?", string(f.Type))
		}
		// Times are compared as the database stores them: bun writes UTC
		// at microsecond precision (on SQLite, text in one fixed format,
		// which sorts as time).
		if !f.From.IsZero() {
			q = q.Where("t.created_at >= ?", f.From.UTC())
		}
		if !f.To.IsZero() {
			q = q.Where("t.created_at < ?", f.To.UTC())
		}
		return q
	}
	total, err := match(db.NewSelect().TableExpr("transactions AS t")).Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count ledger: %w", err)
	}
	q := match(db.NewSelect().
		TableExpr("transactions AS t").
		ColumnExpr("t.id, t.user_id, t.created_at, t.type, t.amount_cents, t.synced_at, p.status").
		Join("LEFT JOIN payouts AS p ON p.transaction_id = t.id")).
		OrderExpr("t.created_at DESC, t.id DESC").
		Limit(int64(f.Limit))
	if f.After.ID != "" {
		at := f.After.CreatedAt.UTC()
		q = q.Where("(t.created_at < ? OR (t.created_at = ? AND t.id < ?))", at, at, f.After.ID)
	}
	var rows []ledgerRow
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, 0, fmt.Errorf("list ledger: %w", err)
	}
	out := make([]LedgerEntry, len(rows))
	for i, r := range rows {
		out[i] = LedgerEntry{
			Transaction: scorekeeper.Transaction{
				ID: r.ID, UserID: r.UserID, CreatedAt: r.CreatedAt.UTC(),
				Type: scorekeeper.TxType(r.Type), Amount: scorekeeper.AmountFromCents(r.AmountCents),
			},
			SyncedAt: r.SyncedAt.UTC(),
			Status:   scorekeeper.PayoutStatus(r.Status.String),
		}
	}
	return out, int(total), nil
}

// SummaryAsOf is the user's summary over the transactions created at or
// before asOf, with the settlements of their payouts recorded at or
// before it (settled_at): the fold reconciliation uses (recompute), so it equals the
// stored summary once asOf is past every transaction and settlement. A
// user with no transaction by then has the zero summary; one unknown
// altogether is ENotFound.
func SummaryAsOf(ctx context.Context, db bun.IDB, userID string, asOf time.Time) (scorekeeper.Summary, error) {
	if asOf.IsZero() {
		return scorekeeper.Summary{}, scorekeeper.Errorf(scorekeeper.EInvalid, "asOf must be an instant")
	}
	if _, err := GetSummary(ctx, db, userID); err != nil {
		return scorekeeper.Summary{}, err
	}
	sums, err := recomputeAsOf(ctx, db, []string{userID}, asOf)
	if err != nil {
		return scorekeeper.Summary{}, err
	}
	s, ok := sums[userID]
	if !ok {
		s.UserID = userID
	}
	return s, nil
}
