package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure a payout never sent can be canceled: it leaves payout like a
// failed one (the balance returns), counts under canceled, and is never
// sent after; one with an attempt recorded cannot be, and whichever of a
// cancel and an attempt commits first wins, never both.
func TestCancelPayout(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: append(seedBatch(),
			tx("a5", "445566", scorekeeper.TxPayout, "5"),
			tx("a6", "445566", scorekeeper.TxPayout, "3"))}, time.Now())
		require.NoError(t, err)

		t.Run("NeverSent", func(t *testing.T) {
			p, err := db.CancelPayout(ctx, d, "a5", "fraud report", time.Now())
			require.NoError(t, err)
			require.Equal(t, scorekeeper.PayoutCanceled, p.Status)
			require.Equal(t, "fraud report", p.Reason)
			require.False(t, p.SettledAt.IsZero())
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "23", s.Payout.String(), "20 + 3 still requested")
			require.Equal(t, "5", s.CanceledPayout.String())
			require.Equal(t, "0", s.FailedPayout.String())
			require.Equal(t, "16.2", s.Balance().String(), "the canceled amount returns to balance")
			dbtest.RequireReconciled(t, d)

			sent, err := db.RecordPayoutAttempt(ctx, d, "a5")
			require.NoError(t, err)
			require.False(t, sent, "a canceled payout takes no attempt: it is never sent")
			totals, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Status: "canceled", Limit: 10})
			require.NoError(t, err)
			require.Equal(t, []scorekeeper.PayoutTotal{{UserID: "445566", Amount: scorekeeper.MustParseAmount("5")}}, totals)
		})
		t.Run("Twice", func(t *testing.T) {
			p, err := db.CancelPayout(ctx, d, "a5", "again", time.Now())
			require.NoError(t, err)
			require.Equal(t, "fraud report", p.Reason, "the first cancel stands")
			dbtest.RequireReconciled(t, d)
		})
		t.Run("ErrConflictSent", func(t *testing.T) {
			sent, err := db.RecordPayoutAttempt(ctx, d, "a6")
			require.NoError(t, err)
			require.True(t, sent)
			_, err = db.CancelPayout(ctx, d, "a6", "too late", time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err))
			require.Contains(t, err.Error(), "was sent to the provider")
			p, err := db.GetPayout(ctx, d, "a6")
			require.NoError(t, err)
			require.Equal(t, scorekeeper.PayoutRequested, p.Status)
		})
		t.Run("ErrConflictSettled", func(t *testing.T) {
			_, err := db.MarkPayoutPaid(ctx, d, "a4", "po_1", time.Now())
			require.NoError(t, err)
			_, err = db.CancelPayout(ctx, d, "a4", "late", time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err))
			_, err = db.MarkPayoutPaid(ctx, d, "a5", "po_2", time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err), "a canceled payout never becomes paid")
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			_, err := db.CancelPayout(ctx, d, "nope", "x", time.Now())
			require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err))
		})
		t.Run("ErrInvalidNoReason", func(t *testing.T) {
			_, err := db.CancelPayout(ctx, d, "a6", "", time.Now())
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
		})
	})
}

// Ensure a cancel racing a send's attempt has exactly one winner.
func TestCancelPayout_RacesAttempt(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	var txs []scorekeeper.Transaction
	for i := range 40 {
		txs = append(txs, tx("p"+string(rune('A'+i)), "u1", scorekeeper.TxEarned, "100"), tx("q"+string(rune('A'+i)), "u1", scorekeeper.TxPayout, "1"))
	}
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
	require.NoError(t, err)
	for i := range 40 {
		id := "q" + string(rune('A'+i))
		var wg sync.WaitGroup
		var sent bool
		var cancelErr error
		wg.Add(2)
		go func() { defer wg.Done(); sent, _ = db.RecordPayoutAttempt(ctx, d, id) }()
		go func() { defer wg.Done(); _, cancelErr = db.CancelPayout(ctx, d, id, "race", time.Now()) }()
		wg.Wait()
		p, err := db.GetPayout(ctx, d, id)
		require.NoError(t, err)
		if sent {
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(cancelErr), "%s: attempt won, the cancel must fail", id)
			require.Equal(t, scorekeeper.PayoutRequested, p.Status)
		} else {
			require.NoError(t, cancelErr, id)
			require.Equal(t, scorekeeper.PayoutCanceled, p.Status)
			require.Zero(t, p.Attempts)
		}
	}
	dbtest.RequireReconciled(t, d)
}

// Ensure a hold is kept, its reason changed by a second hold, lifted by a
// release, placed on a user with no transaction yet too, and keeps the
// recovery scan away.
func TestPayoutHolds(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		stored := time.Now().Add(-time.Hour)
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch()}, stored)
		require.NoError(t, err)
		stale := func() []string {
			users, err := db.UsersWithStalePayouts(ctx, d, time.Now(), "", 10)
			require.NoError(t, err)
			return users
		}
		require.Equal(t, []string{"112233", "445566"}, stale())

		h, err := db.GetPayoutHold(ctx, d, "445566")
		require.NoError(t, err)
		require.Nil(t, h)
		at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		held, err := db.HoldPayouts(ctx, d, "445566", "fraud report", "alice", at)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutHold{UserID: "445566", Reason: "fraud report", By: "alice", HeldAt: at}, held)
		held, err = db.HoldPayouts(ctx, d, "445566", "still looking", "bob", at.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutHold{UserID: "445566", Reason: "still looking", By: "alice", HeldAt: at}, held)
		h, err = db.GetPayoutHold(ctx, d, "445566")
		require.NoError(t, err)
		require.Equal(t, &held, h)
		n, err := db.CountPayoutHolds(ctx, d)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, []string{"112233"}, stale(), "a held user is not woken by the recovery scan")

		_, err = db.HoldPayouts(ctx, d, "newcomer", "x", "alice", at)
		require.NoError(t, err, "a hold may come before the user's first transaction")
		released, err := db.ReleasePayouts(ctx, d, "newcomer")
		require.NoError(t, err)
		require.True(t, released)
		_, err = db.HoldPayouts(ctx, d, "445566", "", "alice", at)
		require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))

		released, err = db.ReleasePayouts(ctx, d, "445566")
		require.NoError(t, err)
		require.True(t, released)
		released, err = db.ReleasePayouts(ctx, d, "445566")
		require.NoError(t, err)
		require.False(t, released)
		require.Equal(t, []string{"112233", "445566"}, stale())
	})
}
