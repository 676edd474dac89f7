package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// The ledger benchmark's store: ledgerBenchTx transactions over
// apiBenchUsers users, of which ledgerBenchHeavy hold ledgerBenchPerHeavy
// each (the users the routes are asked about), spread over
// ledgerBenchSpan.
const (
	ledgerBenchTx       = 5_000_000
	ledgerBenchHeavy    = 200
	ledgerBenchPerHeavy = 5_000
	ledgerBenchSpan     = 30 * 24 * time.Hour
)

// BenchmarkLedgerAPI loads `scorekeeper web` (access logs on, the default)
// on Postgres holding 5 million transactions over 100,000 users and
// reports, side by side in alternating rounds, the plain summary route
// and, for users with 5,000 transactions each, a ledger page of 100 rows
// (GET /api/users/{id}/transactions?limit=100, at a random position) and
// the summary as of a random instant (GET /api/users/{id}/summary?asOf=):
// requests/s, each as a share of the plain summary's measured around it,
// and p99 over all its requests.
//
// Goal (docs: README, Performance): ledger and asOf p99 ≤ 20 ms, each at
// ≥ 50% of the plain summary route's throughput.
func BenchmarkLedgerAPI(b *testing.B) {
	dsn := dbtest.NewPostgresURL(b)
	d, err := db.Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := db.Migrate(ctx, d); err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	seeded := time.Now()
	seedLedger(b, d, start)
	b.Logf("seeded %d transactions in %s", ledgerBenchTx, time.Since(seeded).Round(time.Second))
	srv, _ := startTemporal(b)
	addr := freeAddrTB(b)
	web := startProcToFile(b, "web", "web", map[string]string{
		"DATABASE_URL":     dsn,
		"TEMPORAL_ADDRESS": srv.FrontendHostPort(),
		"HTTP_ADDR":        addr,
		"API_RATE_LIMIT":   "off",
	})
	base := "http://" + addr
	waitHTTP(b, base+"/readyz")

	heavy := func() string { return fmt.Sprintf("h%04d", rand.IntN(ledgerBenchHeavy)) }
	instant := func() time.Time {
		return start.Add(time.Duration(rand.Int64N(int64(ledgerBenchSpan))))
	}
	targets := map[string]vegeta.Targeter{
		"summary": summaryTargeter(base),
		"ledger": func(t *vegeta.Target) error {
			t.Method = http.MethodGet
			// A page at a random position: the cursor a client follows
			// (newest first, so "after" a random instant).
			t.URL = fmt.Sprintf("%s/api/users/%s/transactions?limit=100&to=%s", base, heavy(), instant().Format(time.RFC3339))
			return nil
		},
		"asof": func(t *vegeta.Target) error {
			t.Method = http.MethodGet
			t.URL = fmt.Sprintf("%s/api/users/%s/summary?asOf=%s", base, heavy(), instant().Format(time.RFC3339))
			return nil
		},
	}
	for range b.N {
		// The first request of a user's ledger reads it whole into the
		// web's cache (coldMs, reported apart); the rounds measure the
		// steady state, every heavy user's ledger in memory.
		cold := time.Now()
		for i := range ledgerBenchHeavy {
			waitHTTP(b, fmt.Sprintf("%s/api/users/h%04d/transactions?limit=1", base, i))
		}
		b.ReportMetric(float64(time.Since(cold).Milliseconds())/ledgerBenchHeavy, "cold-ledger-ms")
		for name, tr := range targets {
			attack(b, "warmup-"+name, tr, 2*time.Second)
		}
		all := map[string]*vegeta.Metrics{"summary": {}, "ledger": {}, "asof": {}}
		ratios := map[string][]float64{}
		throughput := map[string][]float64{}
		summaryPhase := func() float64 {
			m := attack(b, "summary", targets["summary"], apiBenchPhase, all["summary"])
			throughput["summary"] = append(throughput["summary"], m.Throughput)
			return m.Throughput
		}
		before := summaryPhase()
		for range apiBenchRounds {
			for _, name := range []string{"ledger", "asof"} {
				m := attack(b, name, targets[name], apiBenchPhase, all[name])
				if m.Success < 1 {
					b.Errorf("%s: success ratio %.4f, errors %v", name, m.Success, m.Errors)
				}
				after := summaryPhase()
				ratios[name] = append(ratios[name], m.Throughput/((before+after)/2))
				throughput[name] = append(throughput[name], m.Throughput)
				before = after
			}
		}
		b.ReportMetric(peakRSSMiB(b, web.cmd.Process.Pid), "web-peak-rss-MiB")
		for name, m := range all {
			m.Close()
			b.ReportMetric(median(throughput[name]), name+"-req/s")
			b.ReportMetric(float64(m.Latencies.P50.Microseconds())/1000, name+"-p50-ms")
			b.ReportMetric(float64(m.Latencies.P99.Microseconds())/1000, name+"-p99-ms")
			if name != "summary" {
				b.ReportMetric(100*median(ratios[name]), name+"-%-of-summary")
				b.Logf("%s: %% of the summary route by round %s", name, percents(ratios[name]))
			}
		}
	}
}

// seedLedger stores ledgerBenchTx transactions: ledgerBenchPerHeavy for
// each of ledgerBenchHeavy users h0000…, the rest over apiBenchUsers users
// u000000… (whom summaryTargeter asks for), every fifth a payout, at
// random instants of ledgerBenchSpan from start, and marks the feed
// synced through the end of the span.
func seedLedger(b *testing.B, d *bun.DB, start time.Time) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	batch := make([]scorekeeper.Transaction, 0, 5000)
	flush := func() {
		if _, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: batch}, time.Now()); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range ledgerBenchTx {
		user := userID(i % apiBenchUsers)
		if i < ledgerBenchHeavy*ledgerBenchPerHeavy {
			user = fmt.Sprintf("h%04d", i%ledgerBenchHeavy)
		}
		typ, cents := scorekeeper.TxEarned, int64(100+rng.IntN(10000))
		switch {
		case i%5 == 4:
			typ, cents = scorekeeper.TxPayout, int64(1+rng.IntN(50))
		case i%5 == 3:
			typ, cents = scorekeeper.TxSpent, int64(1+rng.IntN(50))
		}
		batch = append(batch, scorekeeper.Transaction{
			ID: fmt.Sprintf("t%08d", i), UserID: user, Type: typ, Amount: scorekeeper.AmountFromCents(cents),
			CreatedAt: start.Add(time.Duration(rng.Int64N(int64(ledgerBenchSpan)))).Truncate(time.Millisecond),
		})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if _, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, start, time.Now()); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ApplyBatch(ctx, d, db.Batch{Cursor: &db.CursorUpdate{Name: db.TransactionsStream, ExpectVersion: 1,
		SyncedThrough: start.Add(ledgerBenchSpan)}}, time.Now()); err != nil {
		b.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
}
