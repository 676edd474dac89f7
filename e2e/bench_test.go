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
// seconds, not minutes.
const backfillScale = 6

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

// BenchmarkSync_Capacity runs the capacity scenarios at full length in
// scaled time (10 s stand for a minute; capacity 500 items/s) and prints
// one table: share of capacity ingested, X-Data-As-Of lag (max, p99) and
// late-coverage lag in scaled minutes, pages fetched twice.
func BenchmarkSync_Capacity(b *testing.B) {
	rows := []struct {
		name string
		sc   scenario
	}{
		{"ordered 90% + manual/3min", scenario{share: 0.90, ordered: true, late: 0.005, manualEvery: 30 * time.Second}},
		{"ordered 98% + manual/3min", scenario{share: 0.98, ordered: true, late: 0.005, manualEvery: 30 * time.Second, noCatchUp: true}},
		{"unordered 90% + manual/3min", scenario{share: 0.90, late: 0.005, manualEvery: 30 * time.Second, noCatchUp: true}},
		{"unordered 95%", scenario{share: 0.95, late: 0.005, noCatchUp: true}},
		{"40% 2% late (auto)", scenario{share: 0.40, ordered: true, late: 0.02}},
		{"60% 0.5% late, probes", scenario{share: 0.60, ordered: true, late: 0.005, lateCheck: "probe"}},
		{"60% 0.5% late, re-reads", scenario{share: 0.60, ordered: true, late: 0.005, lateCheck: "rescan"}},
	}
	var table []string
	for _, r := range rows {
		b.Run(r.name, func(b *testing.B) {
			for range b.N {
				sc := r.sc
				sc.warm, sc.measure = 20*time.Second, 100*time.Second // two whole minutes: the mock stops by the minute
				out := runScenario(b, sc)
				b.ReportMetric(100*out.ingested, "ingested-%")
				b.ReportMetric(scaled(out.maxLag), "max-lag-min")
				b.ReportMetric(scaled(out.p99Lag), "p99-lag-min")
				b.ReportMetric(scaled(out.maxLateLag), "max-late-lag-min")
				b.ReportMetric(float64(out.twice), "fetched-twice")
				catchUp := "—"
				if out.catchUp >= 0 {
					catchUp = fmt.Sprintf("%.2f", scaled(out.catchUp))
				}
				if out.catchUpLeast > 0 {
					catchUp += fmt.Sprintf(" (least %.2f: %.2f×)", scaled(out.catchUpLeast), float64(out.catchUp)/float64(out.catchUpLeast))
					b.Logf("catch-up of %d items in %.2f scaled min: %s", out.catchUpItems, scaled(out.catchUp), out.catchUpUse)
				}
				table = append(table, fmt.Sprintf("| %s | %.1f%% | %.2f | %.2f | %.2f | %s | %d |", r.name,
					100*out.ingested, scaled(out.maxLag), scaled(out.p99Lag), scaled(out.maxLateLag), catchUp, out.twice))
			}
		})
	}
	fmt.Println("| scenario (scaled: 10 s = 1 min) | ingested of capacity | max lag (min) | p99 lag (min) | max late lag (min) | late catch-up after stop (min) | pages fetched twice |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, row := range table {
		fmt.Println(row)
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
