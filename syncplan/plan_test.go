package syncplan

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// prodConfig is the default configuration: 5 requests a minute of 1000.
func prodConfig() Config {
	return Config{
		Start:        t0.Add(-time.Minute),
		Interval:     time.Minute,
		Overlap:      2 * time.Minute,
		PageSize:     1000,
		Guard:        GuardFor(time.Minute),
		BudgetN:      5,
		BudgetWindow: time.Minute + 300*time.Millisecond,
	}
}

// capacity is the budget's items per second.
func capacity(cfg Config) float64 {
	return float64(cfg.BudgetN*cfg.PageSize) / time.Minute.Seconds()
}

// Ensure the sync keeps up near capacity and the watermark stays fresh.
func TestSim_Capacity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ordered bool
		share   float64
		maxLag  time.Duration // after warm-up; 0: only that it stays bounded
		manual  time.Duration // a manual sync this often (0: none)
	}{
		{"Ordered90", true, 0.90, 2 * time.Minute, 0},
		{"Unordered90", false, 0.90, 2 * time.Minute, 0},
		{"Ordered98", true, 0.98, 0, 0},
		{"Unordered95", false, 0.95, 0, 0},
		{"Ordered90Manual", true, 0.90, 2 * time.Minute, 3 * time.Minute},
		{"Unordered90Manual", false, 0.90, 2 * time.Minute, 3 * time.Minute},
		{"Ordered98Manual", true, 0.98, 0, 3 * time.Minute},
		{"Unordered95Manual", false, 0.95, 0, 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := prodConfig()
			rng := rand.New(rand.NewPCG(1, 2))
			start := t0
			end := start.Add(40 * time.Minute)
			items := simFeed(rng, cfg.Start, end, capacity(cfg)*tc.share, 0, 0)
			m := newSim(t, cfg, items, tc.ordered, start)
			m.manualEvery, m.nextManual = tc.manual, start.Add(5*time.Minute)
			m.run(start.Add(5 * time.Minute)) // warm up
			m.maxLag = 0
			m.run(end)
			lagEnd := m.now.Sub(m.through)
			t.Logf("max lag %s, lag at end %s, requests %v, twice %d, manual syncs served in %v", m.maxLag, lagEnd, m.requests, m.twice, m.served)
			if m.twice != 0 {
				t.Errorf("%d pages fetched twice", m.twice)
			}
			if tc.maxLag > 0 && m.maxLag >= tc.maxLag {
				t.Errorf("max lag %s, want < %s", m.maxLag, tc.maxLag)
			}
			if lagEnd > 3*time.Minute {
				t.Errorf("lag at end %s: not keeping up", lagEnd)
			}
			m.manualEvery = 0 // the stream and manual syncs stop
			m.run(end.Add(5 * time.Minute))
			if n := m.missing(); n != 0 {
				t.Errorf("%d items never stored", n)
			}
			// A manual sync is served by the next pages the budget allows:
			// near capacity the budget may be spent for the window ahead.
			if tc.manual > 0 {
				if !m.want.IsZero() || len(m.served) != int((end.Sub(start.Add(5*time.Minute))-1)/tc.manual)+1 {
					t.Errorf("manual syncs served %d, one open since %s", len(m.served), m.wantAt)
				}
				if worst := slices.Max(m.served); worst > 2*cfg.BudgetWindow+cfg.Interval {
					t.Errorf("a manual sync waited %s for its data", worst)
				}
			}
		})
	}
}

// Ensure late coverage keeps within SYNC_OVERLAP + 2 intervals while
// fresh data leaves budget free, and catches up within SYNC_OVERLAP + 1
// interval after the stream stops.
func TestSim_LateCoverage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check string
		share float64
		late  float64
		bound time.Duration // 0: report only
	}{
		{"Rescan40Late2", LateRescan, 0.40, 0.02, 4 * time.Minute},
		{"Auto40Late2", LateAuto, 0.40, 0.02, 4 * time.Minute},
		{"Probe10Late0", LateProbe, 0.10, 0, 4 * time.Minute},
		{"Rescan60Late05", LateRescan, 0.60, 0.005, 0},
		{"Probe60Late05", LateProbe, 0.60, 0.005, 0},
		{"Auto60Late05", LateAuto, 0.60, 0.005, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := prodConfig()
			cfg.LateCheck = tc.check
			rng := rand.New(rand.NewPCG(3, 4))
			stop := t0.Add(30 * time.Minute)
			items := simFeed(rng, cfg.Start, stop, capacity(cfg)*tc.share, tc.late, 90*time.Second)
			m := newSim(t, cfg, items, true, t0)
			m.run(t0.Add(5 * time.Minute))
			m.maxLateLag = 0
			m.run(stop)
			t.Logf("max late lag %s while streaming, requests %v", m.maxLateLag, m.requests)
			if m.twice != 0 {
				t.Errorf("%d pages fetched twice", m.twice)
			}
			if tc.bound > 0 && m.maxLateLag > tc.bound {
				t.Errorf("late coverage fell %s behind, want ≤ %s", m.maxLateLag, tc.bound)
			}
			if tc.bound > 0 {
				m.run(stop.Add(cfg.Overlap + cfg.Interval))
				if lt := lateFrom(cfg, m.st); lt.Before(stop) {
					t.Errorf("late coverage at %s, %s after the stream stopped at %s", lt, m.now.Sub(stop), stop)
				}
			}
			m.run(stop.Add(time.Hour))
			if n := m.missing(); n != 0 {
				t.Errorf("%d items never stored", n)
			}
		})
	}
}

// Ensure odd feeds stay exact: more than a page in one second, upstream
// switching from sorted to unsorted mid-stream, a clock ahead of
// upstream's by less than the guard, and a long backfill.
func TestSim_Edges(t *testing.T) {
	t.Run("MoreThanAPageInOneSecond", func(t *testing.T) {
		cfg := prodConfig()
		rng := rand.New(rand.NewPCG(5, 6))
		items := simFeed(rng, cfg.Start, t0.Add(10*time.Minute), 10, 0.01, 30*time.Second)
		items = append(items, simFeed(rng, t0.Add(3*time.Minute), t0.Add(3*time.Minute+time.Second), 2500, 0, 0)...)
		m := newSim(t, cfg, items, true, t0)
		m.run(t0.Add(30 * time.Minute))
		if n := m.missing(); n != 0 {
			t.Errorf("%d items never stored", n)
		}
	})
	t.Run("OrderBreaksMidStream", func(t *testing.T) {
		cfg := prodConfig()
		rng := rand.New(rand.NewPCG(7, 8))
		items := simFeed(rng, cfg.Start, t0.Add(20*time.Minute), capacity(cfg)*0.5, 0.01, time.Minute)
		m := newSim(t, cfg, items, true, t0)
		m.run(t0.Add(8 * time.Minute))
		if m.st.Unordered {
			t.Fatal("sorted upstream taken for unsorted")
		}
		m.ordered = false
		m.run(t0.Add(50 * time.Minute))
		if !m.st.Unordered {
			t.Error("unsorted upstream not noticed")
		}
		if n := m.missing(); n != 0 {
			t.Errorf("%d items never stored", n)
		}
	})
	t.Run("ClockAheadWithinGuard", func(t *testing.T) {
		cfg := prodConfig()
		rng := rand.New(rand.NewPCG(9, 10))
		m := newSim(t, cfg, nil, true, t0)
		m.skew = cfg.Guard - time.Second
		items := simFeed(rng, cfg.Start, t0.Add(20*time.Minute), capacity(cfg)*0.5, 0, 0)
		for i := range items {
			items[i].visible = items[i].created.Add(m.skew)
		}
		m = newSim(t, cfg, items, true, t0)
		m.skew = cfg.Guard - time.Second
		m.run(t0.Add(25 * time.Minute)) // check() fails on any item missed
	})
	t.Run("Backfill", func(t *testing.T) {
		for _, ordered := range []bool{true, false} {
			cfg := prodConfig()
			cfg.Start = t0.Add(-48 * time.Hour)
			rng := rand.New(rand.NewPCG(11, 12))
			items := simFeed(rng, t0.Add(-24*time.Hour), t0, 60000.0/86400, 0.01, time.Minute)
			m := newSim(t, cfg, items, ordered, t0)
			var steps []time.Time
			for m.step(t0.Add(time.Hour)) {
				steps = append(steps, m.through)
				if m.through.After(t0.Add(-time.Minute)) {
					break
				}
			}
			t.Logf("ordered=%v: caught up at %s after %v requests", ordered, m.now.Sub(t0), m.requests)
			if ordered {
				// The watermark moves page by page, not per window.
				moves := 0
				for i := 1; i < len(steps); i++ {
					if steps[i].After(steps[i-1]) {
						moves++
					}
				}
				if moves < 50 {
					t.Errorf("watermark moved %d times over a 60-page backfill", moves)
				}
			}
		}
	})
}
