package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// RecomputeSummaries aggregates every user's summary from the stored
// transactions and payout statuses alone, ignoring user_summaries.
func RecomputeSummaries(ctx context.Context, db bun.IDB) (map[string]scorekeeper.Summary, error) {
	return recompute(ctx, db, nil)
}

// recompute is RecomputeSummaries for the given users (nil: everyone).
func recompute(ctx context.Context, db bun.IDB, users []string) (map[string]scorekeeper.Summary, error) {
	return recomputeAsOf(ctx, db, users, time.Time{})
}

// recomputeAsOf is recompute over the transactions created at or before
// asOf, with the settlements of their payouts recorded at or before it
// (settled_at).
// The zero asOf takes everything.
func recomputeAsOf(ctx context.Context, db bun.IDB, users []string, asOf time.Time) (map[string]scorekeeper.Summary, error) {
	only := func(q *bun.SelectQuery) *bun.SelectQuery {
		if users != nil {
			q = q.Where("user_id IN (?)", bun.List(users))
		}
		if !asOf.IsZero() {
			// Both tables' created_at is the transaction's createdAt.
			// Rounded down to a whole microsecond, as stored, so the
			// comparison is exact.
			q = q.Where("created_at <= ?", asOf.Truncate(time.Microsecond).UTC())
		}
		return q
	}
	settled := func(q *bun.SelectQuery) *bun.SelectQuery {
		if !asOf.IsZero() {
			// A payout settled later was still requested at asOf: it
			// stays in payout, as the transactions' fold put it.
			q = q.Where("settled_at <= ?", asOf.Truncate(time.Microsecond).UTC())
		}
		return q
	}
	var txs []struct {
		UserID string `bun:"user_id"`
		Type   string `bun:"type"`
		Cents  int64  `bun:"cents"`
	}
	err := only(db.NewSelect().
		Model((*txRow)(nil)).
		Column("user_id", "type").
		ColumnExpr("SUM(amount_cents) AS cents")).
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
	err = settled(only(db.NewSelect().
		Model((*payoutRow)(nil)).
		Column("user_id", "status").
		ColumnExpr("SUM(amount_cents) AS cents"))).
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
		// A (user, type) total folds like one transaction of that amount:
		// the same fold ApplyBatch adds to the summaries.
		s := get(r.UserID)
		t := scorekeeper.Transaction{UserID: r.UserID, Type: scorekeeper.TxType(r.Type), Amount: scorekeeper.AmountFromCents(r.Cents)}
		if err := s.Add(t); err != nil {
			return nil, fmt.Errorf("recompute summary: %w", err)
		}
		out[r.UserID] = s
	}
	for _, r := range pays {
		// A (user, status) total settles like one payout of that amount.
		s := get(r.UserID)
		s.Settle(scorekeeper.PayoutStatus(r.Status), scorekeeper.AmountFromCents(r.Cents))
		out[r.UserID] = s
	}
	return out, nil
}

// ReconcilePage is one page of a reconciliation.
type ReconcilePage struct {
	// Checked counts the users of the page.
	Checked int
	// Drifts lists every drifted field, by user id then field.
	Drifts []scorekeeper.Drift
	// Repaired counts users whose summary was rewritten.
	Repaired int
	// Next is the last user id of the page: the next page starts after
	// it. Empty when this was the last page.
	Next string
}

// ReconcileUsers recomputes the summaries of the next limit users after
// after (user ids in byte order, from summaries and transactions alike)
// and compares them with the stored ones. With repair, drifted summaries
// are rewritten to the recomputed values in the same transaction, with
// the summary rows locked first, so a sync applying to those users waits
// and adds its delta to the repaired value; without, nothing is written
// and the page is read from one snapshot.
func ReconcileUsers(ctx context.Context, d *bun.DB, after string, limit int, repair bool, now time.Time) (ReconcilePage, error) {
	var page ReconcilePage
	var users []string
	if err := d.NewRaw(`SELECT user_id FROM (
			SELECT user_id FROM user_summaries WHERE user_id > ?
			UNION SELECT user_id FROM transactions WHERE user_id > ?
		) u ORDER BY user_id LIMIT ?`, after, after, limit).Scan(ctx, &users); err != nil {
		return page, fmt.Errorf("list users to reconcile: %w", err)
	}
	if len(users) == 0 {
		return page, nil
	}
	if len(users) == limit {
		page.Next = users[len(users)-1]
	}
	page.Checked = len(users)
	var opts *sql.TxOptions
	if IsPostgres(d) && !repair {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	err := d.RunInTx(ctx, opts, func(ctx context.Context, tx bun.Tx) error {
		page.Drifts, page.Repaired = nil, 0
		var rows []summaryRow
		q := tx.NewSelect().Model(&rows).Where("user_id IN (?)", bun.List(users)).Order("user_id")
		if repair && IsPostgres(d) {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("read summaries: %w", err)
		}
		stored := make(map[string]scorekeeper.Summary, len(rows))
		for _, r := range rows {
			stored[r.UserID] = toSummary(r)
		}
		computed, err := recompute(ctx, tx, users)
		if err != nil {
			return err
		}
		var fix []summaryRow
		for _, u := range users {
			s, c := stored[u], computed[u]
			s.UserID, c.UserID = u, u
			ds := drifts(s, c)
			page.Drifts = append(page.Drifts, ds...)
			if len(ds) > 0 {
				fix = append(fix, toSummaryRow(c, now))
			}
		}
		if !repair || len(fix) == 0 {
			return nil
		}
		if _, err := tx.NewInsert().
			Model(&fix).
			On("CONFLICT (user_id) DO UPDATE").
			Set("earned_cents = EXCLUDED.earned_cents").
			Set("spent_cents = EXCLUDED.spent_cents").
			Set("payout_cents = EXCLUDED.payout_cents").
			Set("paid_out_cents = EXCLUDED.paid_out_cents").
			Set("failed_cents = EXCLUDED.failed_cents").
			Set("canceled_cents = EXCLUDED.canceled_cents").
			Set("updated_at = EXCLUDED.updated_at").
			Exec(ctx); err != nil {
			return fmt.Errorf("repair summaries: %w", err)
		}
		fixed := make([]string, len(fix))
		for i, r := range fix {
			fixed[i] = r.UserID
		}
		// Web processes follow the change feed: repaired users are read
		// afresh, not served from a cache of the drifted value.
		if err := bumpGeneration(ctx, tx, fixed, now); err != nil {
			return err
		}
		page.Repaired = len(fix)
		return nil
	})
	return page, err
}

// drifts lists the fields in which stored differs from computed.
func drifts(stored, computed scorekeeper.Summary) []scorekeeper.Drift {
	var out []scorekeeper.Drift
	for _, f := range []struct {
		name string
		s, c scorekeeper.Amount
	}{
		{"earned", stored.Earned, computed.Earned},
		{"spent", stored.Spent, computed.Spent},
		{"payout", stored.Payout, computed.Payout},
		{"paidOut", stored.PaidOut, computed.PaidOut},
		{"failedPayout", stored.FailedPayout, computed.FailedPayout},
		{"canceledPayout", stored.CanceledPayout, computed.CanceledPayout},
	} {
		if f.s != f.c {
			out = append(out, scorekeeper.Drift{UserID: stored.UserID, Field: f.name, Stored: f.s, Recomputed: f.c})
		}
	}
	return out
}

func toSummaryRow(s scorekeeper.Summary, now time.Time) summaryRow {
	return summaryRow{
		UserID:        s.UserID,
		EarnedCents:   s.Earned.Cents(),
		SpentCents:    s.Spent.Cents(),
		PayoutCents:   s.Payout.Cents(),
		PaidOutCents:  s.PaidOut.Cents(),
		FailedCents:   s.FailedPayout.Cents(),
		CanceledCents: s.CanceledPayout.Cents(),
		UpdatedAt:     now.UTC(),
	}
}
