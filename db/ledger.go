package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

type ledgerRow struct {
	ID          string         `bun:"id"`
	UserID      string         `bun:"user_id"`
	CreatedAt   time.Time      `bun:"created_at"`
	Type        string         `bun:"type"`
	AmountCents int64          `bun:"amount_cents"`
	SyncedAt    time.Time      `bun:"synced_at"`
	Status      sql.NullString `bun:"status"`
	SettledAt   time.Time      `bun:"settled_at,nullzero"`
}

// UserLedgerPage returns a page of the user's transactions matching f,
// newest first, and how many match f in all (the cursor aside).
func UserLedgerPage(ctx context.Context, db bun.IDB, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int, error) {
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
		// which sorts as time). Bounds are rounded up to a whole
		// microsecond first, which keeps both comparisons exact (a
		// database would round a finer instant its own way).
		if !f.From.IsZero() {
			q = q.Where("t.created_at >= ?", scorekeeper.CeilMicro(f.From))
		}
		if !f.To.IsZero() {
			q = q.Where("t.created_at < ?", scorekeeper.CeilMicro(f.To))
		}
		return q
	}
	total, err := match(db.NewSelect().TableExpr("transactions AS t")).Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count ledger: %w", err)
	}
	q := match(db.NewSelect().
		TableExpr("transactions AS t").
		ColumnExpr("t.id, t.user_id, t.created_at, t.type, t.amount_cents, t.synced_at, p.status, p.settled_at").
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
	out := make([]scorekeeper.LedgerEntry, len(rows))
	for i, r := range rows {
		out[i] = scorekeeper.LedgerEntry{
			Transaction: scorekeeper.Transaction{
				ID: r.ID, UserID: r.UserID, CreatedAt: r.CreatedAt.UTC(),
				Type: scorekeeper.TxType(r.Type), Amount: scorekeeper.AmountFromCents(r.AmountCents),
			},
			SyncedAt: r.SyncedAt.UTC(),
			Status:   scorekeeper.PayoutStatus(r.Status.String),
		}
		if !r.SettledAt.IsZero() {
			out[i].SettledAt = r.SettledAt.UTC()
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
