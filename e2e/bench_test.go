package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"scorekeeper/db"
)

// The sync benchmarks run in scaled time: the budget is 5 requests per
// minute/scale instead of per minute, and every other period (interval,
// overlap, volume per period) is scaled by the same factor, so a run takes
// seconds, not minutes. Lag is reported both in real seconds and in design
// minutes. The backfill scales by 6, so the budget's safety margin (at
// least 250 ms) is the same share of the period as at 5/1m; the steady
// state by 4 only, because scaling also multiplies the CPU work per second
// (payouts above all) on this 2-core machine, which a real minute would
// not see.
const (
	backfillScale = 6
	steadyScale   = 4
)

// BenchmarkSync_Backfill reports how much of the upstream budget a backfill
// turns into transactions (goal ≥ 95% of UPSTREAM_RATE × 1000 per window).
func BenchmarkSync_Backfill(b *testing.B) {
	for range b.N {
		w := newBenchWorld(b, backfillScale, 5000, 60000, 0)
		started := time.Now()
		startProc(b, "worker", "worker", w.env)
		want := w.mock.ValidCount() + w.mock.MalformedCount()
		ctx := context.Background()
		for {
			n, err := w.db.NewSelect().Table("transactions").Count(ctx)
			if err != nil {
				b.Fatal(err)
			}
			q, _ := db.QuarantineCount(ctx, w.db)
			if int(n)+q >= want {
				break
			}
			if time.Since(started) > 10*time.Minute {
				b.Fatalf("backfill incomplete after 10 minutes: %d of %d", int(n)+q, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		total := time.Since(started)
		// Utilisation is measured over the backfill itself, from the first
		// request upstream accepted to the last (process start-up is
		// reported separately). The budget allows N requests of 1000 items
		// per window; a request started at the window's end still counts,
		// hence the extra request in capacity.
		_, accepted := w.mock.RequestTimes()
		span := accepted[len(accepted)-1].Sub(accepted[0])
		per := time.Minute / backfillScale
		capacity := (span.Seconds()/per.Seconds()*budgetN + 1) * 1000
		b.ReportMetric(float64(want)/span.Seconds(), "tx/s")
		b.ReportMetric(100*float64(want)/capacity, "budget-used-%")
		b.ReportMetric(100*float64(len(accepted))*1000/capacity, "requests-used-%")
		b.ReportMetric(accepted[0].Sub(started).Seconds(), "startup-s")
		b.ReportMetric(total.Seconds(), "backfill-s")
	}
}

// BenchmarkSync_SteadyLag feeds 4,500 transactions per (scaled) minute and
// reports the worst and mean lag of the synced watermark behind now (goal
// < 2 design minutes).
func BenchmarkSync_SteadyLag(b *testing.B) {
	for range b.N {
		w := newBenchWorld(b, steadyScale, 2000, 1000, 4500*steadyScale)
		w.env["SYNC_START"] = w.mock.Start().Add(-time.Minute).UTC().Format(time.RFC3339)
		startProc(b, "worker", "worker", w.env)
		ctx := context.Background()
		// Warm up past the first windows, then sample.
		time.Sleep(3 * time.Minute / steadyScale)
		var worst, sum time.Duration
		n := 0
		for end := time.Now().Add(10 * time.Minute / steadyScale); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			st, err := db.GetSyncState(ctx, w.db, db.TransactionsStream)
			if err != nil {
				b.Fatal(err)
			}
			lag := time.Since(st.SyncedThrough)
			worst = max(worst, lag)
			sum += lag
			n++
		}
		mean := sum / time.Duration(n)
		b.ReportMetric(worst.Seconds(), "max-lag-s")
		b.ReportMetric(mean.Seconds(), "mean-lag-s")
		b.ReportMetric(worst.Seconds()*steadyScale/60, "max-lag-design-min")
		b.ReportMetric(mean.Seconds()*steadyScale/60, "mean-lag-design-min")
		if st := w.mock.Stats().Transactions; st.RateLimited > 0 {
			b.Errorf("upstream answered 429 %d times", st.RateLimited)
		}
	}
}

func newBenchWorld(b *testing.B, scale time.Duration, users, history, liveRate int) *world {
	b.Helper()
	per := time.Minute / scale
	w := newWorldTB(b, users, history, func(c *mockConfig) {
		c.RateWindow = per
		c.LateDelay = per / 4
		c.LiveRate = liveRate
		c.LateRate = 0.01
		c.MalformedRate = 0.001
		c.DuplicateRate = 0.01
	})
	w.env["UPSTREAM_RATE"] = fmt.Sprintf("%d/%s", budgetN, per)
	w.env["SYNC_INTERVAL"] = per.String()
	w.env["SYNC_OVERLAP"] = (2 * per).String()
	return w
}
