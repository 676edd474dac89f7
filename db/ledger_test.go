package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure UserLedgerPage walks a user's ledger newest first by (createdAt,
// id), every row exactly once at every page size, with the type and time
// filters and the payouts' status, on both backends; a row stored
// mid-walk that is older than the position shows up on a later page and
// shifts nothing, one newer than it does not show up.
func TestUserLedgerPage(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		types := []scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}
		var txs []scorekeeper.Transaction
		for i := range 30 {
			// Three rows per instant: ties broken by id. Instants step by
			// fractions of a second, which SQLite compares as text.
			at := t0.Add(time.Duration(i/3) * 1500 * time.Millisecond)
			txs = append(txs, scorekeeper.Transaction{
				// Ids that a locale's collation would order differently
				// from bytes: ties are broken by byte order everywhere.
				ID: fmt.Sprintf("%s%02d", []string{"u-", "U_", "u_"}[i%3], (i*7)%30), UserID: "u1", CreatedAt: at, Type: types[i%3],
				Amount: scorekeeper.AmountFromCents(int64(100 + i)),
			})
		}
		other := scorekeeper.Transaction{ID: "x-1", UserID: "u2", CreatedAt: t0, Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(5)}
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: append(slices.Clone(txs), other)}, t0.Add(time.Hour))
		require.NoError(t, err)
		paid := txs[2]
		_, err = db.MarkPayoutPaid(ctx, d, paid.ID, "prov-1", t0.Add(2*time.Hour))
		require.NoError(t, err)

		newestFirst := func(ts []scorekeeper.Transaction) []string {
			ts = slices.Clone(ts)
			slices.SortFunc(ts, func(a, b scorekeeper.Transaction) int {
				if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
					return c
				}
				return strings.Compare(b.ID, a.ID)
			})
			var ids []string
			for _, tx := range ts {
				ids = append(ids, tx.ID)
			}
			return ids
		}
		walk := func(t *testing.T, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int) {
			var all []scorekeeper.LedgerEntry
			total := -1
			for range 100 {
				page, n, err := db.UserLedgerPage(ctx, d, f)
				require.NoError(t, err)
				if total >= 0 {
					require.Equal(t, total, n, "the total does not depend on the page")
				}
				total = n
				all = append(all, page...)
				if len(page) < f.Limit {
					return all, total
				}
				last := page[len(page)-1]
				f.After = scorekeeper.LedgerCursor{CreatedAt: last.CreatedAt, ID: last.ID}
			}
			t.Fatal("the walk did not end")
			return nil, 0
		}
		ids := func(es []scorekeeper.LedgerEntry) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.ID)
			}
			return out
		}

		for _, limit := range []int{1, 2, 4, 100} {
			t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
				all, total := walk(t, scorekeeper.LedgerFilter{UserID: "u1", Limit: limit})
				require.Equal(t, newestFirst(txs), ids(all))
				require.Equal(t, len(txs), total)
				for _, e := range all {
					switch {
					case e.ID == paid.ID:
						require.Equal(t, scorekeeper.PayoutPaid, e.Status)
					case e.Type == scorekeeper.TxPayout:
						require.Equal(t, scorekeeper.PayoutRequested, e.Status)
					default:
						require.Empty(t, e.Status, "only payouts have a status")
					}
					require.Equal(t, t0.Add(time.Hour), e.SyncedAt)
					if e.ID == paid.ID {
						require.Equal(t, t0.Add(2*time.Hour), e.SettledAt)
					} else {
						require.Zero(t, e.SettledAt, "only a settled payout has a settlement time")
					}
				}
			})
		}
		if db.IsPostgres(d) {
			// This server's default locale may already sort bytewise; the
			// columns themselves must say so.
			for _, c := range [][2]string{{"transactions", "id"}, {"payouts", "transaction_id"}} {
				var collation string
				require.NoError(t, d.NewRaw(`SELECT collation_name FROM information_schema.columns
					WHERE table_name = ? AND column_name = ?`, c[0], c[1]).Scan(ctx, &collation))
				require.Equal(t, "C", collation, "%s.%s", c[0], c[1])
			}
		}
		t.Run("Filters", func(t *testing.T) {
			from, to := t0.Add(3*time.Second), t0.Add(9*time.Second)
			var want []scorekeeper.Transaction
			for _, tx := range txs {
				if tx.Type == scorekeeper.TxSpent && !tx.CreatedAt.Before(from) && tx.CreatedAt.Before(to) {
					want = append(want, tx)
				}
			}
			require.NotEmpty(t, want)
			all, total := walk(t, scorekeeper.LedgerFilter{UserID: "u1", Type: scorekeeper.TxSpent, From: from, To: to, Limit: 2})
			require.Equal(t, newestFirst(want), ids(all), "from inclusive, to exclusive, one type")
			require.Equal(t, len(want), total)
		})
		t.Run("RowsArrivingMidWalk", func(t *testing.T) {
			f := scorekeeper.LedgerFilter{UserID: "u1", Limit: 5}
			page, _, err := db.UserLedgerPage(ctx, d, f)
			require.NoError(t, err)
			last := page[len(page)-1]
			older := scorekeeper.Transaction{ID: "late-old", UserID: "u1", CreatedAt: t0.Add(-time.Minute), Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(1)}
			newer := scorekeeper.Transaction{ID: "late-new", UserID: "u1", CreatedAt: t0.Add(time.Minute), Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(1)}
			_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{older, newer}}, t0.Add(3*time.Hour))
			require.NoError(t, err)
			f.After = scorekeeper.LedgerCursor{CreatedAt: last.CreatedAt, ID: last.ID}
			rest, _ := walk(t, f)
			want := newestFirst(append(slices.Clone(txs), older))
			require.Equal(t, want, append(ids(page), ids(rest)...), "the older row at the end, the newer one not at all, nothing twice")
		})
	})
}

// Ensure SummaryAsOf folds what was created, and settled, by the instant:
// zero before any transaction, the stored summary once past everything,
// and a payout settled after the instant still requested at it.
func TestSummaryAsOf(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		// a1…a4 are created 2 s after t0 (tx's createdAt is t0 + len(id) s).
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch()}, t0.Add(time.Hour))
		require.NoError(t, err)
		late := tx("a5-late", "445566", scorekeeper.TxPayout, "5") // created t0 + 7 s
		_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{late}}, t0.Add(time.Hour))
		require.NoError(t, err)
		paidAt, failedAt := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
		_, err = db.MarkPayoutPaid(ctx, d, "a4", "prov-1", paidAt)
		require.NoError(t, err)
		_, err = db.MarkPayoutFailed(ctx, d, "a5-late", "rejected", failedAt)
		require.NoError(t, err)

		at := func(when time.Time) scorekeeper.Summary {
			s, err := db.SummaryAsOf(ctx, d, "445566", when)
			require.NoError(t, err)
			return s
		}
		amt := scorekeeper.MustParseAmount
		require.Equal(t, scorekeeper.Summary{UserID: "445566"}, at(t0), "before any transaction: zero")
		s := at(t0.Add(2 * time.Second))
		require.Equal(t, scorekeeper.Summary{UserID: "445566", Earned: amt("51.2"), Spent: amt("12"), Payout: amt("20")}, s, "the seed, the payout not settled yet")
		s = at(paidAt)
		require.Equal(t, amt("20"), s.PaidOut, "settled at the instant: counted")
		require.Equal(t, amt("25"), s.Payout, "a5 requested, not failed yet")
		s = at(failedAt.Add(time.Second))
		stored, err := db.GetSummary(ctx, d, "445566")
		require.NoError(t, err)
		require.Equal(t, stored, s, "past everything: the stored summary")
		require.Equal(t, amt("19.2"), s.Balance())

		_, err = db.SummaryAsOf(ctx, d, "nobody", paidAt)
		require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err), "unknown user: not found, got %v", err)
	})
}

// Ensure UserPayoutPage walks a user's payouts newest first, every one
// once at every page size, with attempts and settlement, on both
// backends.
func TestUserPayoutPage(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		var txs []scorekeeper.Transaction
		for i := range 7 {
			txs = append(txs, scorekeeper.Transaction{
				ID: fmt.Sprintf("p%d", i), UserID: "u1", CreatedAt: t0.Add(time.Duration(i/2) * time.Second),
				Type: scorekeeper.TxPayout, Amount: scorekeeper.AmountFromCents(int64(100 + i)),
			})
		}
		txs = append(txs, scorekeeper.Transaction{ID: "e1", UserID: "u1", CreatedAt: t0, Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(10000)},
			scorekeeper.Transaction{ID: "q1", UserID: "u2", CreatedAt: t0, Type: scorekeeper.TxPayout, Amount: scorekeeper.AmountFromCents(1)})
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, t0.Add(time.Hour))
		require.NoError(t, err)
		for range 2 {
			_, err = db.RecordPayoutAttempt(ctx, d, "p3")
			require.NoError(t, err)
		}
		_, err = db.MarkPayoutFailed(ctx, d, "p3", "account_closed", t0.Add(2*time.Hour))
		require.NoError(t, err)
		again, err := db.RecordPayoutAttempt(ctx, d, "p3")
		require.NoError(t, err)
		require.False(t, again, "settled: not counted")

		for _, limit := range []int{1, 3, 100} {
			f := scorekeeper.UserPayoutFilter{UserID: "u1", Limit: limit}
			var got []string
			for range 20 {
				page, total, err := db.UserPayoutPage(ctx, d, f)
				require.NoError(t, err)
				require.Equal(t, 7, total)
				for _, p := range page {
					got = append(got, p.TransactionID)
					if p.TransactionID == "p3" {
						require.Equal(t, 2, p.Attempts)
						require.Equal(t, scorekeeper.PayoutFailed, p.Status)
						require.Equal(t, t0.Add(2*time.Hour), p.SettledAt)
					} else {
						require.Zero(t, p.Attempts)
						require.True(t, p.SettledAt.IsZero())
					}
				}
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				f.After = scorekeeper.LedgerCursor{CreatedAt: last.CreatedAt, ID: last.TransactionID}
			}
			require.Equal(t, []string{"p6", "p5", "p4", "p3", "p2", "p1", "p0"}, got, "limit %d", limit)
		}
	})
}
