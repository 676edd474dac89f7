package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// GetPayout reads one payout by its transaction id.
func GetPayout(ctx context.Context, db bun.IDB, txID string) (scorekeeper.Payout, error) {
	var row payoutRow
	err := db.NewSelect().Model(&row).Where("transaction_id = ?", txID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return scorekeeper.Payout{}, scorekeeper.Errorf(scorekeeper.ENotFound, "payout %s not found", txID)
	} else if err != nil {
		return scorekeeper.Payout{}, fmt.Errorf("read payout: %w", err)
	}
	return toPayout(row), nil
}

// UserPayouts lists a user's payouts with the given status (all when
// status is ""), oldest first, then by id: the order they are paid in.
func UserPayouts(ctx context.Context, db bun.IDB, userID string, status scorekeeper.PayoutStatus, limit int) ([]scorekeeper.Payout, error) {
	var rows []payoutRow
	q := db.NewSelect().
		Model(&rows).
		Where("user_id = ?", userID).
		Order("created_at", "transaction_id").
		Limit(int64(limit))
	if status != "" {
		q = q.Where("status = ?", string(status))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list user payouts: %w", err)
	}
	out := make([]scorekeeper.Payout, len(rows))
	for i, r := range rows {
		out[i] = toPayout(r)
	}
	return out, nil
}

// MarkPayoutPaid records the provider's confirmation: the payout becomes
// paid and its amount moves into the user's paidOut, in one transaction.
// It is idempotent: marking a paid payout paid again changes nothing. A
// failed payout cannot become paid (EConflict).
func MarkPayoutPaid(ctx context.Context, db *bun.DB, txID, providerID string, now time.Time) (scorekeeper.Payout, error) {
	return transitionPayout(ctx, db, txID, scorekeeper.PayoutPaid, "", providerID, now)
}

// MarkPayoutFailed records a permanent rejection with its reason: the
// payout leaves the user's payout sum, so its amount returns to balance.
// Idempotent like MarkPayoutPaid; a paid payout cannot fail (EConflict).
func MarkPayoutFailed(ctx context.Context, db *bun.DB, txID, reason string, now time.Time) (scorekeeper.Payout, error) {
	if reason == "" {
		return scorekeeper.Payout{}, scorekeeper.Errorf(scorekeeper.EInvalid, "a failed payout needs a reason")
	}
	return transitionPayout(ctx, db, txID, scorekeeper.PayoutFailed, reason, "", now)
}

// CancelPayout cancels a requested payout that was never sent (no attempt
// recorded, RecordPayoutAttempt): it leaves the user's payout sum like a
// failed one, with reason, and is never sent afterwards, because an
// attempt is recorded only while a payout is requested. The two race in
// the database, so exactly one wins: either the attempt was recorded first
// (the payout may reach the provider; EConflict here) or the cancel (the
// send finds it canceled and sends nothing). Canceling a canceled payout
// changes nothing; an unknown one is ENotFound, a settled one EConflict.
func CancelPayout(ctx context.Context, db *bun.DB, txID, reason string, now time.Time) (scorekeeper.Payout, error) {
	if reason == "" {
		return scorekeeper.Payout{}, scorekeeper.Errorf(scorekeeper.EInvalid, "a canceled payout needs a reason")
	}
	return transitionPayout(ctx, db, txID, scorekeeper.PayoutCanceled, reason, "", now)
}

// transitionPayout settles a requested payout as to, moving its amount in
// the user's summary and counting it, in one transaction. A cancel also
// requires that no attempt was recorded.
func transitionPayout(ctx context.Context, db *bun.DB, txID string, to scorekeeper.PayoutStatus, reason, providerID string, now time.Time) (scorekeeper.Payout, error) {
	now = now.UTC()
	var out scorekeeper.Payout
	err := retryTx(ctx, db, func(ctx context.Context, tx bun.Tx) error {
		var row payoutRow
		// The status guard makes the transition happen at most once even
		// when two workers confirm the same payout at the same moment.
		q := tx.NewUpdate().
			Model(&row).
			Set("status = ?", string(to)).
			Set("reason = ?", reason).
			Set("provider_id = ?", providerID).
			Set("updated_at = ?", now).
			Set("settled_at = ?", now).
			Where("transaction_id = ?", txID).
			Where("status = ?", string(scorekeeper.PayoutRequested))
		if to == scorekeeper.PayoutCanceled {
			q = q.Where("attempts = 0")
		}
		res, err := q.Returning("*").Exec(ctx, &row)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update payout: %w", err)
		}
		var n int64
		if err == nil {
			n, _ = res.RowsAffected()
		}
		if n == 0 || row.TransactionID == "" {
			cur, err := GetPayout(ctx, tx, txID)
			if err != nil {
				return err
			}
			if cur.Status == scorekeeper.PayoutRequested && to == scorekeeper.PayoutCanceled {
				return scorekeeper.Errorf(scorekeeper.EConflict, "payout %s was sent to the provider (%d attempts), cannot be canceled", txID, cur.Attempts)
			}
			if cur.Status != to {
				return scorekeeper.Errorf(scorekeeper.EConflict, "payout %s is %s, cannot become %s", txID, cur.Status, to)
			}
			out = cur
			return nil
		}
		settled := scorekeeper.Summary{UserID: row.UserID}
		settled.Settle(to, scorekeeper.AmountFromCents(row.AmountCents))
		delta := toSummaryRow(settled, now)
		if err := addToSummaries(ctx, tx, map[string]*summaryRow{row.UserID: &delta}); err != nil {
			return err
		}
		if err := addCounters(ctx, tx, map[counterKey]int64{{CounterPayouts, string(to)}: 1}); err != nil {
			return err
		}
		if err := bumpGeneration(ctx, tx, []string{row.UserID}, now); err != nil {
			return err
		}
		out = toPayout(row)
		return nil
	})
	return out, err
}

// payoutAmountExpr maps a status filter to the summary column expression
// holding that sum; only these fixed expressions ever reach the SQL.
var payoutAmountExpr = map[string]string{
	"requested": "payout_cents",
	"pending":   "(payout_cents - paid_out_cents)",
	"paid":      "paid_out_cents",
	"failed":    "failed_cents",
	"canceled":  "canceled_cents",
}

// ListPayoutTotals returns one row per user with a non-zero sum for the
// filter's status, and the total number of such users. The sums come from
// user_summaries, which moves in the same transaction as each payout.
//
// Paging is by keyset (f.After holds the previous page's last sort key),
// so it never fails and never repeats or skips a row that did not change
// between pages. A row whose amount changes may move across the cursor
// under sort -payoutAmount: it is then listed again or not at all.
func ListPayoutTotals(ctx context.Context, db bun.IDB, f scorekeeper.PayoutFilter) ([]scorekeeper.PayoutTotal, int, error) {
	if f.Status == "" {
		f.Status = "requested"
	}
	expr, ok := payoutAmountExpr[f.Status]
	if !ok {
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "unknown payout status %q", f.Status)
	}
	if f.Limit <= 0 {
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "limit must be positive")
	}
	total, err := db.NewSelect().
		Model((*summaryRow)(nil)).
		Where(expr + " > 0").
		Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count payout totals: %w", err)
	}

	var rows []struct {
		UserID string `bun:"user_id"`
		Cents  int64  `bun:"cents"`
	}
	q := db.NewSelect().
		Model((*summaryRow)(nil)).
		Column("user_id").
		ColumnExpr(expr + " AS cents").
		Where(expr + " > 0").
		Limit(int64(f.Limit))
	switch f.Sort {
	case "", "userId":
		if f.After.UserID != "" {
			q = q.Where("user_id > ?", f.After.UserID)
		}
		q = q.OrderExpr("user_id")
	case "-payoutAmount":
		if f.After.UserID != "" {
			// Strictly after (amount, user) in (amount DESC, user) order.
			cents := f.After.Amount.Cents()
			q = q.Where("("+expr+" < ? OR ("+expr+" = ? AND user_id > ?))", cents, cents, f.After.UserID)
		}
		q = q.OrderExpr(expr + " DESC, user_id")
	default:
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "unknown sort %q", f.Sort)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, 0, fmt.Errorf("list payout totals: %w", err)
	}
	out := make([]scorekeeper.PayoutTotal, len(rows))
	for i, r := range rows {
		out[i] = scorekeeper.PayoutTotal{UserID: r.UserID, Amount: scorekeeper.AmountFromCents(r.Cents)}
	}
	return out, int(total), nil
}

// RecordPayoutAttempt counts one request to the provider for a payout, to
// be called, and committed, before the request is sent: the count never
// understates what the provider may have seen. It changes nothing once
// the payout settled and reports whether it is still requested.
func RecordPayoutAttempt(ctx context.Context, db bun.IDB, txID string) (bool, error) {
	res, err := db.NewUpdate().
		Model((*payoutRow)(nil)).
		Set("attempts = attempts + 1").
		Where("transaction_id = ?", txID).
		Where("status = ?", string(scorekeeper.PayoutRequested)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record payout attempt: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record payout attempt: %w", err)
	}
	return n > 0, nil
}

// UserPayoutPage returns a page of the user's payouts, newest first, and
// how many the user has in all.
func UserPayoutPage(ctx context.Context, db bun.IDB, f scorekeeper.UserPayoutFilter) ([]scorekeeper.Payout, int, error) {
	if f.Limit <= 0 {
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "limit must be positive")
	}
	total, err := db.NewSelect().Model((*payoutRow)(nil)).Where("user_id = ?", f.UserID).Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count user payouts: %w", err)
	}
	var rows []payoutRow
	q := db.NewSelect().
		Model(&rows).
		Where("user_id = ?", f.UserID).
		OrderExpr("created_at DESC, transaction_id DESC").
		Limit(int64(f.Limit))
	if f.After.ID != "" {
		at := f.After.CreatedAt.UTC()
		q = q.Where("(created_at < ? OR (created_at = ? AND transaction_id < ?))", at, at, f.After.ID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("list user payouts: %w", err)
	}
	out := make([]scorekeeper.Payout, len(rows))
	for i, r := range rows {
		out[i] = toPayout(r)
	}
	return out, int(total), nil
}
