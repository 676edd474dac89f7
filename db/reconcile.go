package db

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// Mismatch is a user whose stored summary differs from the aggregate of
// the user's stored transactions and payouts.
type Mismatch struct {
	Stored   scorekeeper.Summary
	Computed scorekeeper.Summary
}

// RecomputeSummaries aggregates every user's summary from the stored
// transactions and payout statuses alone, ignoring user_summaries.
func RecomputeSummaries(ctx context.Context, db bun.IDB) (map[string]scorekeeper.Summary, error) {
	var txs []struct {
		UserID string `bun:"user_id"`
		Type   string `bun:"type"`
		Cents  int64  `bun:"cents"`
	}
	err := db.NewSelect().
		Model((*txRow)(nil)).
		Column("user_id", "type").
		ColumnExpr("SUM(amount_cents) AS cents").
		Group("user_id", "type").
		Scan(ctx, &txs)
	if err != nil {
		return nil, fmt.Errorf("aggregate transactions: %w", err)
	}
	var pays []struct {
		UserID string `bun:"user_id"`
		Status string `bun:"status"`
		Cents  int64  `bun:"cents"`
	}
	err = db.NewSelect().
		Model((*payoutRow)(nil)).
		Column("user_id", "status").
		ColumnExpr("SUM(amount_cents) AS cents").
		Group("user_id", "status").
		Scan(ctx, &pays)
	if err != nil {
		return nil, fmt.Errorf("aggregate payouts: %w", err)
	}
	out := map[string]scorekeeper.Summary{}
	get := func(u string) scorekeeper.Summary {
		s, ok := out[u]
		if !ok {
			s.UserID = u
		}
		return s
	}
	for _, r := range txs {
		s := get(r.UserID)
		switch scorekeeper.TxType(r.Type) {
		case scorekeeper.TxEarned:
			s.Earned += scorekeeper.AmountFromCents(r.Cents)
		case scorekeeper.TxSpent:
			s.Spent += scorekeeper.AmountFromCents(r.Cents)
		case scorekeeper.TxPayout:
			s.Payout += scorekeeper.AmountFromCents(r.Cents)
		}
		out[r.UserID] = s
	}
	for _, r := range pays {
		s := get(r.UserID)
		switch scorekeeper.PayoutStatus(r.Status) {
		case scorekeeper.PayoutPaid:
			s.PaidOut += scorekeeper.AmountFromCents(r.Cents)
		case scorekeeper.PayoutFailed:
			s.Payout -= scorekeeper.AmountFromCents(r.Cents)
			s.FailedPayout += scorekeeper.AmountFromCents(r.Cents)
		}
		out[r.UserID] = s
	}
	return out, nil
}

// Reconcile compares every stored summary with RecomputeSummaries and
// returns the users that differ (none, when the invariants hold). It reads
// one snapshot (on Postgres a repeatable-read transaction), so it can run
// while syncs and payouts keep writing.
func Reconcile(ctx context.Context, db bun.IDB) ([]Mismatch, error) {
	d, ok := db.(*bun.DB)
	if !ok {
		return reconcile(ctx, db)
	}
	var opts *sql.TxOptions
	if IsPostgres(d) {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	var out []Mismatch
	err := d.RunInTx(ctx, opts, func(ctx context.Context, tx bun.Tx) error {
		var err error
		out, err = reconcile(ctx, tx)
		return err
	})
	return out, err
}

func reconcile(ctx context.Context, db bun.IDB) ([]Mismatch, error) {
	computed, err := RecomputeSummaries(ctx, db)
	if err != nil {
		return nil, err
	}
	var rows []summaryRow
	if err := db.NewSelect().Model(&rows).Order("user_id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read summaries: %w", err)
	}
	var out []Mismatch
	for _, r := range rows {
		stored := toSummary(r)
		c := computed[r.UserID]
		c.UserID = r.UserID
		if stored != c {
			out = append(out, Mismatch{Stored: stored, Computed: c})
		}
		delete(computed, r.UserID)
	}
	for _, c := range computed {
		out = append(out, Mismatch{Stored: scorekeeper.Summary{UserID: c.UserID}, Computed: c})
	}
	return out, nil
}
