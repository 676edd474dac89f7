package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// BenchmarkApplyBatch measures the store's apply rate in transactions per
// second for pages of 1000 new transactions over 10,000 users (goal on
// Postgres: ≥ 50,000/s, so the database is never the sync's bottleneck).
// Postgres-noLedgerIndexes drops the two indexes the ledger routes read
// (a user's transactions and payouts by createdAt): beside Postgres, what
// they cost the apply rate.
func BenchmarkApplyBatch(b *testing.B) {
	withoutLedgerIndexes := func(tb testing.TB) *bun.DB {
		d := dbtest.NewPostgres(tb)
		for _, idx := range []string{"transactions_user_created_at_idx", "payouts_user_id_created_at_idx"} {
			if _, err := d.ExecContext(context.Background(), "DROP INDEX "+idx); err != nil {
				tb.Fatal(err)
			}
		}
		return d
	}
	for _, tc := range []struct {
		name string
		open func(testing.TB) *bun.DB
	}{{"Postgres", dbtest.NewPostgres}, {"Postgres-noLedgerIndexes", withoutLedgerIndexes}, {"SQLite", dbtest.NewSQLite}} {
		b.Run(tc.name, func(b *testing.B) {
			d := tc.open(b)
			rng := rand.New(rand.NewPCG(1, 1))
			const pages, size = 50, 1000
			batches := make([][]scorekeeper.Transaction, pages)
			for p := range batches {
				batches[p] = make([]scorekeeper.Transaction, size)
				for i := range batches[p] {
					batches[p][i] = scorekeeper.Transaction{
						ID:        fmt.Sprintf("x-%08d-%04d", p, i),
						UserID:    fmt.Sprintf("%06d", rng.IntN(10000)),
						CreatedAt: time.Unix(1700000000+int64(p*size+i), 0).UTC(),
						Type:      scorekeeper.TxTypes[rng.IntN(3)],
						Amount:    scorekeeper.AmountFromCents(int64(rng.IntN(10000) + 1)),
					}
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for it := range b.N {
				for _, batch := range batches {
					// New ids every iteration: the rate of real inserts.
					for i := range batch {
						batch[i].ID = fmt.Sprintf("%d-%s", it, batch[i].ID[len(batch[i].ID)-13:])
					}
					res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: batch}, time.Now())
					if err != nil {
						b.Fatal(err)
					}
					n += res.Inserted + res.Duplicates
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "tx/s")
		})
	}
}
