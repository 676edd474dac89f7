package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

func TestPayoutTransitions(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: append(seedBatch(),
			tx("a5", "445566", scorekeeper.TxPayout, "5"))}, time.Now())
		require.NoError(t, err)

		t.Run("Paid", func(t *testing.T) {
			p, err := db.MarkPayoutPaid(ctx, d, "a4", "po_1", time.Now())
			require.NoError(t, err)
			require.Equal(t, scorekeeper.PayoutPaid, p.Status)
			require.Equal(t, "po_1", p.ProviderID)
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "20", s.PaidOut.String())
			require.Equal(t, "25", s.Payout.String())
			require.Equal(t, "14.2", s.Balance().String())
		})
		t.Run("PaidTwiceIsNoop", func(t *testing.T) {
			_, err := db.MarkPayoutPaid(ctx, d, "a4", "po_1", time.Now())
			require.NoError(t, err)
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "20", s.PaidOut.String())
			dbtest.RequireReconciled(t, d)
		})
		t.Run("Failed", func(t *testing.T) {
			p, err := db.MarkPayoutFailed(ctx, d, "a5", "account_closed", time.Now())
			require.NoError(t, err)
			require.Equal(t, scorekeeper.PayoutFailed, p.Status)
			require.Equal(t, "account_closed", p.Reason)
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "20", s.Payout.String())
			require.Equal(t, "5", s.FailedPayout.String())
			require.Equal(t, "19.2", s.Balance().String(), "a failed payout returns to balance")
			dbtest.RequireReconciled(t, d)
		})
		t.Run("ErrConflictPaidAfterFailed", func(t *testing.T) {
			_, err := db.MarkPayoutPaid(ctx, d, "a5", "po_2", time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err))
			_, err = db.MarkPayoutFailed(ctx, d, "a4", "late", time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err))
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			_, err := db.MarkPayoutPaid(ctx, d, "nope", "po", time.Now())
			require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err))
		})
		t.Run("ConcurrentConfirmations", func(t *testing.T) {
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := db.MarkPayoutPaid(ctx, d, "b1", "po_b1", time.Now())
					require.NoError(t, err)
				}()
			}
			wg.Wait()
			s, err := db.GetSummary(ctx, d, "112233")
			require.NoError(t, err)
			require.Equal(t, "30", s.PaidOut.String())
			dbtest.RequireReconciled(t, d)
		})
		t.Run("UserPayouts", func(t *testing.T) {
			ps, err := db.UserPayouts(ctx, d, "445566", "", 10)
			require.NoError(t, err)
			require.Len(t, ps, 2)
			ps, err = db.UserPayouts(ctx, d, "445566", scorekeeper.PayoutFailed, 10)
			require.NoError(t, err)
			require.Len(t, ps, 1)
			require.Equal(t, "a5", ps[0].TransactionID)
		})
	})
}

func TestListPayoutTotals(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		var txs []scorekeeper.Transaction
		// user i has payouts summing to (i%7+1) SCR, plus one extra 0.05.
		for i := range 40 {
			u := fmt.Sprintf("u%03d", i)
			txs = append(txs,
				tx(fmt.Sprintf("p%03d-a", i), u, scorekeeper.TxPayout, fmt.Sprint(i%7+1)),
				tx(fmt.Sprintf("p%03d-b", i), u, scorekeeper.TxPayout, "0.05"))
		}
		txs = append(txs, tx("e1", "earner", scorekeeper.TxEarned, "9"))
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
		for i := 0; i < 40; i += 4 {
			_, err := db.MarkPayoutPaid(ctx, d, fmt.Sprintf("p%03d-a", i), "x", time.Now())
			require.NoError(t, err)
		}
		for i := 1; i < 40; i += 10 {
			_, err := db.MarkPayoutFailed(ctx, d, fmt.Sprintf("p%03d-b", i), "rejected", time.Now())
			require.NoError(t, err)
		}

		t.Run("RequestedByUserID", func(t *testing.T) {
			rows, total, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Limit: 1000})
			require.NoError(t, err)
			require.Equal(t, 40, total)
			require.Len(t, rows, 40)
			require.Equal(t, "u000", rows[0].UserID)
			require.Equal(t, "1.05", rows[0].Amount.String())
			require.Equal(t, "2", rows[1].Amount.String(), "u001's 0.05 failed")
		})
		t.Run("Statuses", func(t *testing.T) {
			_, total, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Status: "paid", Limit: 1})
			require.NoError(t, err)
			require.Equal(t, 10, total)
			_, total, err = db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Status: "failed", Limit: 1})
			require.NoError(t, err)
			require.Equal(t, 4, total)
			rows, total, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Status: "pending", Limit: 1})
			require.NoError(t, err)
			require.Equal(t, 40, total, "every user still has a requested 0.05 or more")
			require.Equal(t, "0.05", rows[0].Amount.String(), "u000 paid 1, 0.05 pending")
		})
		t.Run("PagingByUserID", func(t *testing.T) {
			seen := map[string]bool{}
			var after scorekeeper.PayoutCursor
			for {
				rows, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Limit: 7, After: after})
				require.NoError(t, err)
				if len(rows) == 0 {
					break
				}
				for _, r := range rows {
					require.False(t, seen[r.UserID])
					seen[r.UserID] = true
				}
				after = scorekeeper.PayoutCursor{UserID: rows[len(rows)-1].UserID}
			}
			require.Len(t, seen, 40)
		})
		t.Run("PagingByAmountDesc", func(t *testing.T) {
			var all []scorekeeper.PayoutTotal
			var after scorekeeper.PayoutCursor
			for {
				rows, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Limit: 6, After: after, Sort: "-payoutAmount"})
				require.NoError(t, err)
				if len(rows) == 0 {
					break
				}
				all = append(all, rows...)
				last := rows[len(rows)-1]
				after = scorekeeper.PayoutCursor{UserID: last.UserID, Amount: last.Amount}
			}
			require.Len(t, all, 40)
			for i := 1; i < len(all); i++ {
				prev, cur := all[i-1], all[i]
				require.True(t, prev.Amount > cur.Amount || (prev.Amount == cur.Amount && prev.UserID < cur.UserID), "%v before %v", prev, cur)
			}
		})
		t.Run("ErrInvalid", func(t *testing.T) {
			_, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Status: "bogus", Limit: 1})
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
			_, _, err = db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Sort: "amount", Limit: 1})
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
			_, _, err = db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Limit: 0})
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
		})
		t.Run("OKCursorOutsideListing", func(t *testing.T) {
			// The cursor is a position, not a row: a user who is not (or no
			// longer) listed still names where the next page starts.
			all, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Sort: "-payoutAmount", Limit: 100})
			require.NoError(t, err)
			at := scorekeeper.PayoutCursor{UserID: "earner", Amount: scorekeeper.MustParseAmount("4.05")}
			var want []scorekeeper.PayoutTotal
			for _, r := range all {
				if r.Amount < at.Amount || r.Amount == at.Amount && r.UserID > at.UserID {
					want = append(want, r)
				}
			}
			require.NotEmpty(t, want)
			rows, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Sort: "-payoutAmount", Limit: 100, After: at})
			require.NoError(t, err)
			require.Equal(t, want, rows)
		})
	})
}

// Ensure sort=userId is byte order on both backends, whatever the
// database's locale.
func TestListPayoutTotals_ByteOrder(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		users := []string{"b", "a_1", "Z9", "A_2", "a1", "a-1", "B"}
		var txs []scorekeeper.Transaction
		for i, u := range users {
			txs = append(txs, tx(fmt.Sprintf("o%d", i), u, scorekeeper.TxPayout, "1"))
		}
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
		rows, _, err := db.ListPayoutTotals(ctx, d, scorekeeper.PayoutFilter{Limit: 100})
		require.NoError(t, err)
		var got []string
		for _, r := range rows {
			got = append(got, r.UserID)
		}
		require.Equal(t, []string{"A_2", "B", "Z9", "a-1", "a1", "a_1", "b"}, got)
		if db.IsPostgres(d) {
			// This server's default locale may already sort bytewise;
			// the column itself must say so.
			var collation string
			require.NoError(t, d.NewRaw(`SELECT collation_name FROM information_schema.columns
				WHERE table_name = 'user_summaries' AND column_name = 'user_id'`).Scan(ctx, &collation))
			require.Equal(t, "C", collation)
		}
	})
}
