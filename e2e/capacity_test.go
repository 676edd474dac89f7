package e2e

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/db"
	"scorekeeper/mockapi"
	"scorekeeper/syncplan"
)

// scale runs the capacity scenarios in scaled time: the budget is 5
// requests per 10 s instead of per minute, SYNC_INTERVAL 10s and
// SYNC_OVERLAP 20s, so 10 s stand for a minute and capacity is 500 items/s.
const scale = 6

// scenario is one load on the real system: worker and web processes, the
// dev server, Postgres and the mock.
type scenario struct {
	// share of capacity (UPSTREAM_RATE × page size) the feed produces.
	share   float64
	ordered bool
	// ties: createdAt in whole seconds, the items of a second listed in a
	// fresh order on every request (ORDER BY created_at OFFSET n).
	ties bool
	// history is how much data upstream holds before the stream starts
	// (real time; 0: 2 minutes).
	history time.Duration
	// late is the share of items visible only LateDelay (15 s, under the
	// 20 s overlap) after their createdAt.
	late      float64
	lateCheck string
	// manualEvery asks POST /api/sync this often (real time; 0: never).
	manualEvery time.Duration
	// warm and measure are real durations: warm-up, then sampling.
	warm, measure time.Duration
	// noCatchUp skips waiting, after the stream, for late coverage to
	// catch up and for every summary to match (near capacity that takes
	// minutes the bench need not spend; the tests do it).
	noCatchUp bool
}

// outcome is what a scenario measured; durations are real time.
type outcome struct {
	// ingested is the share of capacity stored per second while measured.
	ingested float64
	// maxLag and p99Lag: X-Data-As-Of (syncedThrough) behind now.
	maxLag, p99Lag time.Duration
	// maxLateLag: lateCoveredThrough behind now.
	maxLateLag time.Duration
	// catchUp: after the stream stopped, until lateCoveredThrough passed
	// its last item; catchUpLeast: the least that could take (the items
	// late coverage had not covered when the stream stopped, in full
	// pages at the whole budget).
	catchUp, catchUpLeast time.Duration
	// catchUpItems: the items late coverage had not covered.
	catchUpItems int
	// catchUpUse: what the pages answered during the catch-up were.
	catchUpUse catchUpUse
	// twice: pages upstream answered twice for reads of one kind
	// (pagesTwice); twiceAny: for any reads.
	twice, twiceAny int
	manual          int
	// promised counts the samples checked against the mock's truth.
	promised int
}

func scaled(d time.Duration) float64 { return d.Seconds() * scale / 60 }

// runScenario feeds the system for warm+measure, stops the stream, waits
// for late coverage to pass its end, and checks every summary against the
// mock's ground truth.
func runScenario(tb testing.TB, sc scenario) outcome {
	per := time.Minute / scale
	liveFor := sc.warm + sc.measure
	w := newWorldTB(tb, 2000, 1000, func(c *mockapi.Config) {
		c.RateWindow = per
		c.LiveRate = int(sc.share * float64(budgetN*1000) * float64(scale))
		c.LiveFor = liveFor
		c.Ordered = sc.ordered
		c.WholeSeconds, c.ShuffleTies = sc.ties, sc.ties
		c.LateRate = sc.late
		c.LateDelay = 15 * time.Second
		c.DuplicateRate = 0.01
		c.MalformedRate = 0.001
		c.History = cmp.Or(sc.history, 2*time.Minute)
		// Scaled time multiplies the payout work per second by the scale;
		// the sync's is what is measured here, so payouts keep the rate
		// a real minute would bring.
		c.PayoutShare = 0.15 / scale
	})
	w.env["UPSTREAM_RATE"] = fmt.Sprintf("%d/%s", budgetN, per)
	w.env["SYNC_INTERVAL"] = per.String()
	w.env["SYNC_OVERLAP"] = (2 * per).String()
	w.env["SYNC_START"] = w.mock.Start().Add(-3 * time.Minute).UTC().Format(time.RFC3339)
	if sc.lateCheck != "" {
		w.env["SYNC_LATE_CHECK"] = sc.lateCheck
	}
	startProc(tb, "worker", "worker", w.env)
	base := w.startWeb(tb)

	ctx := context.Background()
	var out outcome
	var lags []time.Duration
	sample := func() (lag, late time.Duration) {
		st, err := db.GetSyncState(ctx, w.db, db.TransactionsStream)
		require.NoError(tb, err)
		lag = time.Since(st.SyncedThrough)
		if lt, ok := syncplan.LateCoverage(st.Cursor); ok {
			late = time.Since(lt)
		}
		return lag, late
	}
	count := func() int {
		n, err := w.db.NewSelect().Table("transactions").Count(ctx)
		require.NoError(tb, err)
		return int(n)
	}
	manual := func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/sync", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(tb, err)
		resp.Body.Close()
		require.Equal(tb, http.StatusAccepted, resp.StatusCode)
		out.manual++
	}

	// promised checks the watermarks against the truth: every item they
	// claim (on-time ones by syncedThrough, late ones by
	// lateCoveredThrough) is stored. The state is read first: data is
	// written with it and never removed, so what it promised is there
	// when the ids are read after it.
	promised := func() {
		st, err := db.GetSyncState(ctx, w.db, db.TransactionsStream)
		require.NoError(tb, err)
		lt, _ := syncplan.LateCoverage(st.Cursor)
		owed := w.mock.Owed(st.SyncedThrough, lt)
		var ids []string
		require.NoError(tb, w.db.NewSelect().Table("transactions").Column("id").Scan(ctx, &ids))
		stored := make(map[string]bool, len(ids))
		for _, id := range ids {
			stored[id] = true
		}
		var missing []string
		for _, id := range owed {
			if !stored[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			tb.Fatalf("%d of the %d items promised by syncedThrough %s and lateCoveredThrough %s are not stored, the first: %v",
				len(missing), len(owed), st.SyncedThrough.Format(time.RFC3339Nano), lt.Format(time.RFC3339Nano), missing[:min(len(missing), 3)])
		}
		out.promised++
	}

	start := w.mock.Start()
	time.Sleep(time.Until(start.Add(sc.warm)))
	n0, t0 := count(), time.Now()
	nextManual := t0.Add(sc.manualEvery / 2)
	for i := 0; time.Since(start) < liveFor; i++ {
		if i%8 == 0 {
			promised()
		}
		lag, late := sample()
		lags = append(lags, lag)
		out.maxLag = max(out.maxLag, lag)
		out.maxLateLag = max(out.maxLateLag, late)
		if sc.manualEvery > 0 && time.Now().After(nextManual) {
			manual()
			nextManual = nextManual.Add(sc.manualEvery)
		}
		time.Sleep(250 * time.Millisecond)
	}
	out.ingested = float64(count()-n0) / time.Since(t0).Seconds() / (float64(budgetN*1000) / per.Seconds())
	slices.Sort(lags)
	if len(lags) > 0 {
		out.p99Lag = lags[len(lags)*99/100]
	}

	out.twice, out.twiceAny = pagesTwice(w.mock.Answers(), 2*per), w.mock.PagesAnsweredTwice()
	if sc.noCatchUp {
		out.catchUp = -1
		return out
	}
	// The stream stopped at start+liveFor (rounded up to whole minutes by
	// the mock): late coverage must pass its last item.
	end := start.Add(liveFor.Round(time.Minute))
	if end.Before(start.Add(liveFor)) {
		end = end.Add(time.Minute)
	}
	// The least a catch-up can take: re-reading what late coverage has
	// not covered yet in full pages, every request of the budget.
	if st, err := db.GetSyncState(ctx, w.db, db.TransactionsStream); err == nil {
		lt, _ := syncplan.LateCoverage(st.Cursor)
		if n := len(w.mock.Owed(end, end)) - len(w.mock.Owed(lt, lt)); n > 0 {
			out.catchUpItems = n
			out.catchUpLeast = time.Duration((n+999)/1000) * per / budgetN
		}
	}
	// Near capacity late coverage falls behind while the stream runs (it
	// gets what fresh pages leave over) and catches up after it stops.
	eventually(tb, 15*time.Minute, "late coverage to pass the stream's end", func() (bool, string) {
		promised()
		st, err := db.GetSyncState(ctx, w.db, db.TransactionsStream)
		if err != nil {
			return false, err.Error()
		}
		lt, _ := syncplan.LateCoverage(st.Cursor)
		return !lt.Before(end), fmt.Sprintf("lateCoveredThrough %s, stream ended %s", lt, end)
	})
	out.catchUp = time.Since(end)
	out.catchUpUse = useOfCatchUp(w.mock.Answers(), end, per)
	w.requireExact(tb, time.Minute)
	w.requireServedExact(tb, base, 3*time.Minute)
	out.twice, out.twiceAny = pagesTwice(w.mock.Answers(), 2*per), w.mock.PagesAnsweredTwice()
	return out
}

// pagesTwice counts the pages upstream answered more than once for reads
// of one kind, told apart by what upstream saw of them: a probe asks for
// one item; a re-scan reads a window at least SYNC_OVERLAP old (late
// coverage's horizon); a fresh read, one younger. Late coverage
// re-reading a window a fresh read had is its plan, not a page fetched
// twice (design §4), as the service's own counter has it.
func pagesTwice(answers []mockapi.Answer, overlap time.Duration) int {
	type read struct {
		start, end  time.Time
		page, limit int
		late        bool
	}
	seen := map[read]int{}
	n := 0
	for _, a := range answers {
		k := read{a.Start, a.End, a.Page, a.Limit, a.Limit != 1 && a.At.Sub(a.End) >= overlap}
		if seen[k]++; seen[k] > 1 {
			n++
		}
	}
	return n
}

// catchUpUse sorts the pages upstream answered after the stream stopped.
type catchUpUse struct {
	// fresh: reads of the newest data (a window ending near the request:
	// the watermark's read each interval); probes: limit=1 requests; late:
	// the other pages (late coverage), lateItems the entries they held.
	fresh, probes, late, lateItems int
}

func useOfCatchUp(answers []mockapi.Answer, end time.Time, interval time.Duration) catchUpUse {
	var u catchUpUse
	for _, a := range answers {
		switch {
		case a.At.Before(end):
		case a.Limit == 1:
			u.probes++
		case a.At.Sub(a.End) < interval:
			u.fresh++
		default:
			u.late++
			u.lateItems += a.Items
		}
	}
	return u
}

func (u catchUpUse) String() string {
	return fmt.Sprintf("%d pages: %d fresh, %d probes, %d late holding %d entries", u.fresh+u.probes+u.late, u.fresh, u.probes, u.late, u.lateItems)
}

// Ensure the sync keeps up with a feed at 90% of capacity, sorted or not,
// with a manual sync every 3 scaled minutes: data stays under 2 scaled
// minutes stale, every item the watermarks claim is stored at every
// sample, no page is fetched twice, late coverage catches up after the
// stream, and every summary is exact.
func TestSync_NearCapacity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ordered bool
	}{{"Ordered", true}, {"Unordered", false}} {
		t.Run(tc.name, func(t *testing.T) {
			nearCapacity(t, scenario{share: 0.9, ordered: tc.ordered, late: 0.005, manualEvery: 30 * time.Second, warm: 20 * time.Second, measure: 40 * time.Second})
		})
	}
}

func nearCapacity(t *testing.T, sc scenario) {
	out := runScenario(t, sc)
	t.Logf("ingested %.1f%% of capacity, lag max %.2f p99 %.2f scaled min, late lag max %.2f, catch-up %.2f scaled min (least %.2f), %d manual syncs, %d samples checked against the truth, %d pages answered twice (%d for reads of one kind)",
		100*out.ingested, scaled(out.maxLag), scaled(out.p99Lag), scaled(out.maxLateLag), scaled(out.catchUp), scaled(out.catchUpLeast), out.manual, out.promised, out.twiceAny, out.twice)
	require.Zero(t, out.twice, "pages fetched twice")
	require.Positive(t, out.promised, "no sample checked against the truth")
	// Keeping up with the feed is the lag bound: a sync that fell behind
	// the 90% feed would fall further behind every interval. The share of
	// capacity ingested over a 40 s window is logged, not asserted: with
	// the lag moving within its bound it differs from the feed's 90% by
	// up to lag/window (±12% here), and throughput is a performance goal,
	// measured by BenchmarkSync_Capacity (make bench).
	require.Less(t, out.maxLag, 2*time.Minute/scale, "X-Data-As-Of more than 2 scaled minutes behind")
}

// Ensure late coverage keeps moving at 40% of capacity with 2% late
// items, and catches up after the stream stops. What it promises is
// checked against the mock's truth every two seconds (runScenario); the
// timing goals (SYNC_OVERLAP + 2 intervals behind while streaming, the
// stream's end reached within SYNC_OVERLAP + an interval after it) are
// held in virtual time by TestSim_LateCoverage. Here, in real time on a
// shared 2-core machine, the bounds are an interval looser, plus 3 s
// (real) for the processes' scheduling: measured 4.66 and 4.80 scaled
// minutes behind, caught up 3.19 and 3.63 after, on a loaded machine;
// 3.27 and 2.76 on 2026-12-08, once a late window read on from a second
// inside it ended at the horizon (design §10.4).
func TestSync_LateCoverage(t *testing.T) {
	out := runScenario(t, scenario{share: 0.4, ordered: true, late: 0.02, warm: 30 * time.Second, measure: 30 * time.Second})
	t.Logf("late lag max %.2f scaled min, catch-up %.2f scaled min", scaled(out.maxLateLag), scaled(out.catchUp))
	per := time.Minute / scale
	require.LessOrEqual(t, out.maxLateLag, 2*per+3*per+3*time.Second, "lateCoveredThrough fell more than SYNC_OVERLAP + 3 intervals behind")
	require.LessOrEqual(t, out.catchUp, 2*per+2*per+3*time.Second, "late coverage did not catch up within SYNC_OVERLAP + 2 intervals")
	require.Positive(t, out.promised, "no sample checked against the truth")
	require.Zero(t, out.twice, "pages fetched twice")
}
