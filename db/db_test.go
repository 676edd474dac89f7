package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

var t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

func tx(id, user string, typ scorekeeper.TxType, amount string) scorekeeper.Transaction {
	return scorekeeper.Transaction{
		ID:        id,
		UserID:    user,
		CreatedAt: t0.Add(time.Duration(len(id)) * time.Second),
		Type:      typ,
		Amount:    scorekeeper.MustParseAmount(amount),
	}
}

// seedBatch is the design's example user: 51.2 − 12 − 20 = 19.2.
func seedBatch() []scorekeeper.Transaction {
	return []scorekeeper.Transaction{
		tx("a1", "445566", scorekeeper.TxEarned, "50"),
		tx("a2", "445566", scorekeeper.TxEarned, "1.2"),
		tx("a3", "445566", scorekeeper.TxSpent, "12"),
		tx("a4", "445566", scorekeeper.TxPayout, "20"),
		tx("b1", "112233", scorekeeper.TxPayout, "30"),
	}
}

func TestMigrate_Twice(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		// dbtest already migrated once; a second run must be a no-op.
		require.NoError(t, db.Migrate(context.Background(), d))
	})
}

func TestApplyBatch(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		t.Run("OK", func(t *testing.T) {
			res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch()}, time.Now())
			require.NoError(t, err)
			require.Equal(t, 5, res.Inserted)
			require.Equal(t, 0, res.Duplicates)
			require.Equal(t, 2, res.InsertedByType[scorekeeper.TxEarned])
			require.Len(t, res.NewPayouts, 2)
			require.Equal(t, "a4", res.NewPayouts[0].TransactionID)
			require.Equal(t, scorekeeper.PayoutRequested, res.NewPayouts[0].Status)

			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "51.2", s.Earned.String())
			require.Equal(t, "12", s.Spent.String())
			require.Equal(t, "20", s.Payout.String())
			require.Equal(t, "19.2", s.Balance().String())
			dbtest.RequireReconciled(t, d)
		})
		t.Run("SameBatchTwice", func(t *testing.T) {
			res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch()}, time.Now())
			require.NoError(t, err)
			require.Equal(t, 0, res.Inserted)
			require.Equal(t, 5, res.Duplicates)
			require.Empty(t, res.NewPayouts)
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "19.2", s.Balance().String())
			dbtest.RequireReconciled(t, d)
		})
		t.Run("OverlappingBatch", func(t *testing.T) {
			b := append(seedBatch()[3:], tx("c1", "445566", scorekeeper.TxEarned, "0.8"), tx("c1", "445566", scorekeeper.TxEarned, "0.8"))
			res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: b}, time.Now())
			require.NoError(t, err)
			require.Equal(t, 1, res.Inserted)
			require.Equal(t, 3, res.Duplicates) // a4, b1 stored before; c1 twice in the batch
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "20", s.Balance().String())
			dbtest.RequireReconciled(t, d)
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			_, err := db.GetSummary(ctx, d, "nobody")
			require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err))
		})
		t.Run("ErrInvalidTransaction", func(t *testing.T) {
			bad := tx("z1", "445566", scorekeeper.TxEarned, "1")
			bad.Amount = 0
			_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{tx("z0", "445566", scorekeeper.TxEarned, "1"), bad}}, time.Now())
			require.Error(t, err)
			// Nothing of the batch was applied.
			_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{tx("z0", "445566", scorekeeper.TxEarned, "1")}}, time.Now())
			require.NoError(t, err)
			dbtest.RequireReconciled(t, d)
		})
	})
}

func TestApplyBatch_Quarantine(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		q := []scorekeeper.Quarantined{
			{ItemID: "q1", Raw: `{"id":"q1","amount":-1}`, Reason: "amount must be positive"},
			{ItemID: "", Raw: `{"amount":1}`, Reason: "missing id"},
			{ItemID: "q1", Raw: `{"id":"q1","amount":-1}`, Reason: "amount must be positive"},
		}
		res, err := db.ApplyBatch(ctx, d, db.Batch{Quarantined: q}, time.Now())
		require.NoError(t, err)
		require.Equal(t, 2, res.Quarantined)
		res, err = db.ApplyBatch(ctx, d, db.Batch{Quarantined: q[:1]}, time.Now())
		require.NoError(t, err)
		require.Equal(t, 0, res.Quarantined)
		n, err := db.QuarantineCount(ctx, d)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		items, total, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{Limit: 10})
		require.NoError(t, err)
		require.Len(t, items, 2)
		require.Equal(t, 2, total)
	})
}

func TestApplyBatch_Cursor(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		st, err := db.EnsureSyncState(ctx, d, "transactions", t0, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(1), st.Version)
		require.True(t, st.SyncedThrough.Equal(t0))

		res, err := db.ApplyBatch(ctx, d, db.Batch{
			Transactions: seedBatch()[:1],
			Cursor:       &db.CursorUpdate{Name: "transactions", ExpectVersion: 1, SyncedThrough: t0.Add(time.Minute), Cursor: `{"page":2}`},
		}, time.Now())
		require.NoError(t, err)
		require.Equal(t, int64(2), res.State.Version)

		t.Run("ErrConflictRollsBackData", func(t *testing.T) {
			_, err := db.ApplyBatch(ctx, d, db.Batch{
				Transactions: seedBatch()[1:],
				Cursor:       &db.CursorUpdate{Name: "transactions", ExpectVersion: 1, SyncedThrough: t0.Add(2 * time.Minute)},
			}, time.Now())
			require.Equal(t, scorekeeper.EConflict, scorekeeper.ErrorCode(err))
			s, err := db.GetSummary(ctx, d, "445566")
			require.NoError(t, err)
			require.Equal(t, "50", s.Earned.String(), "the conflicting batch must not be applied")
			st, err := db.GetSyncState(ctx, d, "transactions")
			require.NoError(t, err)
			require.Equal(t, int64(2), st.Version)
			require.Equal(t, `{"page":2}`, st.Cursor)
			require.True(t, st.SyncedThrough.Equal(t0.Add(time.Minute)))
		})
		t.Run("EnsureKeepsExisting", func(t *testing.T) {
			st, err := db.EnsureSyncState(ctx, d, "transactions", t0.Add(time.Hour), time.Now())
			require.NoError(t, err)
			require.Equal(t, int64(2), st.Version)
		})
	})
}

// Ensure eight concurrent applies of the same batch insert each transaction
// once in total and leave every summary exact.
func TestApplyBatch_Concurrent(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		rng := rand.New(rand.NewPCG(7, 7))
		batch := randomTransactions(rng, "cc", 2000, 50)
		var wg sync.WaitGroup
		results := make([]db.ApplyResult, 8)
		errs := make([]error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Shuffled so the goroutines do not arrive in the same order.
				b := append([]scorekeeper.Transaction(nil), batch...)
				r := rand.New(rand.NewPCG(uint64(i), 1))
				r.Shuffle(len(b), func(x, y int) { b[x], b[y] = b[y], b[x] })
				results[i], errs[i] = db.ApplyBatch(ctx, d, db.Batch{Transactions: b}, time.Now())
			}()
		}
		wg.Wait()
		inserted := 0
		for i := range 8 {
			require.NoError(t, errs[i])
			inserted += results[i].Inserted
			require.Equal(t, len(batch), results[i].Inserted+results[i].Duplicates)
		}
		require.Equal(t, len(batch), inserted)
		dbtest.RequireReconciled(t, d)
		requireSummariesEqual(t, d, truth(batch))
	})
}

// Ensure seeded random rounds of batches with duplicates, overlaps and
// malformed items keep summaries equal to the ground truth.
func TestApplyBatch_Randomized(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		rng := rand.New(rand.NewPCG(42, 2026))
		all := randomTransactions(rng, "rr", 3000, 80)
		malformed := 0
		for round := range 60 {
			// A random slice of the universe, so batches overlap.
			n := rng.IntN(200) + 1
			start := rng.IntN(len(all))
			var b db.Batch
			for i := range n {
				b.Transactions = append(b.Transactions, all[(start+i)%len(all)])
			}
			for range rng.IntN(3) {
				b.Quarantined = append(b.Quarantined, scorekeeper.Quarantined{Raw: fmt.Sprintf(`{"round":%d,"n":%d}`, round, malformed), Reason: "test"})
				malformed++
			}
			_, err := db.ApplyBatch(ctx, d, b, time.Now())
			require.NoError(t, err)
		}
		// A final full pass stores what the rounds missed.
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: all}, time.Now())
		require.NoError(t, err)
		dbtest.RequireReconciled(t, d)
		requireSummariesEqual(t, d, truth(all))
		n, err := db.QuarantineCount(ctx, d)
		require.NoError(t, err)
		require.Equal(t, malformed, n)
	})
}

func randomTransactions(rng *rand.Rand, prefix string, n, users int) []scorekeeper.Transaction {
	out := make([]scorekeeper.Transaction, n)
	for i := range out {
		out[i] = scorekeeper.Transaction{
			ID:        fmt.Sprintf("%s-%06d", prefix, i),
			UserID:    fmt.Sprintf("u%04d", rng.IntN(users)),
			CreatedAt: t0.Add(time.Duration(rng.IntN(3600)) * time.Second),
			Type:      scorekeeper.TxTypes[rng.IntN(3)],
			Amount:    scorekeeper.AmountFromCents(int64(rng.IntN(100000) + 1)),
		}
	}
	return out
}

// truth aggregates a set of distinct transactions in memory.
func truth(txs []scorekeeper.Transaction) map[string]scorekeeper.Summary {
	out := map[string]scorekeeper.Summary{}
	for _, t := range txs {
		s := out[t.UserID]
		s.UserID = t.UserID
		if err := s.Add(t); err != nil {
			panic(err)
		}
		out[t.UserID] = s
	}
	return out
}

func requireSummariesEqual(t *testing.T, d bun.IDB, want map[string]scorekeeper.Summary) {
	t.Helper()
	for u, w := range want {
		got, err := db.GetSummary(context.Background(), d, u)
		require.NoError(t, err)
		require.Equal(t, w, got, "user %s", u)
	}
}

// Ensure the metrics counters move with the rows they count, exactly once.
func TestCounters(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		q := []scorekeeper.Quarantined{{Raw: `{"x":1}`, Reason: "bad"}}
		for range 2 {
			_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch(), Quarantined: q}, time.Now())
			require.NoError(t, err)
		}
		_, err := db.MarkPayoutPaid(ctx, d, "a4", "po", time.Now())
		require.NoError(t, err)
		_, err = db.MarkPayoutPaid(ctx, d, "a4", "po", time.Now())
		require.NoError(t, err)
		_, err = db.MarkPayoutFailed(ctx, d, "b1", "rejected", time.Now())
		require.NoError(t, err)
		require.NoError(t, db.AddCounter(ctx, d, db.CounterUpstreamRequests, "200", 1))
		require.NoError(t, db.AddCounter(ctx, d, db.CounterUpstreamRequests, "200", 1))

		c, err := db.Counters(ctx, d)
		require.NoError(t, err)
		require.Equal(t, map[string]map[string]int64{
			db.CounterApplied:          {"earned": 2, "spent": 1, "payout": 2},
			db.CounterQuarantined:      {"": 1},
			db.CounterPayouts:          {"requested": 2, "paid": 1, "failed": 1},
			db.CounterUpstreamRequests: {"200": 2},
			"generation":               {"": 3}, // one per write that changed a summary
		}, c)

		n, err := db.OverduePayouts(ctx, d, time.Now().Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, 0, n, "both payouts are settled")
	})
}

// Ensure ids that need escaping on the way in (Postgres receives pages by
// COPY) are stored exactly, and ids with control characters (which no
// valid transaction has) are refused before anything is stored.
func TestApplyBatch_OddIDs(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		for _, id := range []string{"tab\tid", "new\nline", "cr\rid"} {
			_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{tx(id, "odd", scorekeeper.TxPayout, "0.01")}}, time.Now())
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err), "id %q", id)
		}
		ids := []string{`back\slash`, `back\tslash`, "ünïcode-✓", `quote'"`, `\N`, "sp ace"}
		var txs []scorekeeper.Transaction
		for _, id := range ids {
			txs = append(txs, tx(id, "odd", scorekeeper.TxPayout, "0.01"))
		}
		res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
		require.Equal(t, len(ids), res.Inserted)
		for _, id := range ids {
			p, err := db.GetPayout(ctx, d, id)
			require.NoError(t, err, "id %q", id)
			require.Equal(t, id, p.TransactionID)
		}
		res, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
		require.Equal(t, 0, res.Inserted, "each id is known again")
		dbtest.RequireReconciled(t, d)
	})
}
