package syncplan

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Ensure Next picks the right request in each situation.
func TestNext(t *testing.T) {
	cfg := prodConfig()
	now := t0.Add(10 * time.Minute)
	e := now.Add(-cfg.Guard) // the latest a window may end
	sliding := &Feed{Start: e.Add(-time.Minute), End: e.Add(-10 * time.Second), Page: 2, Total: 1500}
	reads := []Read{
		{Start: cfg.Start, End: t0.Add(2 * time.Minute), Total: 1100},
		{Start: cfg.Start, End: t0.Add(4 * time.Minute), Total: 2200},
		{Start: cfg.Start, End: t0.Add(6 * time.Minute), Total: 3300},
	}
	full := []time.Time{now.Add(-50 * time.Second), now.Add(-40 * time.Second), now.Add(-30 * time.Second), now.Add(-20 * time.Second), now.Add(-10 * time.Second)}
	for _, tc := range []struct {
		name  string
		in    Input
		check func(t *testing.T, r Request)
	}{
		{"FirstWindowSlides", Input{Now: now, Through: cfg.Start}, func(t *testing.T, r Request) {
			want(t, r.Kind == Fresh && r.EndAtFetch && r.Start.Equal(cfg.Start) && r.Page == 1, "fresh sliding from SYNC_START, got %+v", r)
		}},
		{"WaitsForAFullPage", Input{Now: now, Through: e.Add(-15 * time.Second), State: State{Feed: sliding, Rate: 40, LateTo: now.Add(-cfg.Overlap)}}, func(t *testing.T, r Request) {
			// 1500 + 40/s × 10 s = 1900 < 2040 needed: 3.5 s more.
			want(t, r.Kind == Wait && r.Wait == 3500*time.Millisecond, "wait 3.5 s, got %+v", r)
		}},
		{"StartOverAtTheSameSecondWaitsForTheEdge", Input{Now: now, Through: e.Add(-time.Minute), State: State{
			Feed: &Feed{Start: e.Add(-time.Minute), Page: 1, Asked: e.Truncate(time.Second)}, Rate: 40, LateTo: now.Add(-cfg.Overlap)}}, func(t *testing.T, r Request) {
			// A stray copy on the page just read from the same start: the
			// same request again would ask upstream for that page twice.
			want(t, r.Kind == Wait && r.Wait <= time.Second, "wait for the edge to pass the last read's end, got %+v", r)
		}},
		{"FullPageDue", Input{Now: now.Add(4 * time.Second), Through: e.Add(-15 * time.Second), State: State{Feed: sliding, Rate: 40}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Fresh && r.Page == 2 && r.Start.Equal(sliding.Start), "page 2 of the window, got %+v", r)
		}},
		{"ManualSyncReadsAPartialPage", Input{Now: now, Through: e.Add(-15 * time.Second), Want: e, State: State{Feed: sliding, Rate: 40}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Fresh && r.Page == 2, "read now for the manual sync, got %+v", r)
		}},
		{"ManualSyncWaitsOutTheGuard", Input{Now: now, Through: e.Add(-15 * time.Second), Want: now, State: State{Feed: sliding, Rate: 1, LateTo: now.Add(-cfg.Overlap)}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Wait && r.Wait == cfg.Guard, "wait until now is behind the guard, got %+v", r)
		}},
		{"IntervalOldReadsWhatThereIs", Input{Now: now, Through: e.Add(-cfg.Interval), State: State{Rate: 0.1}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Fresh, "an interval old: read, got %+v", r)
		}},
		{"UnorderedSizesWholePages", Input{Now: now, Through: e.Add(-2 * time.Minute), State: State{Unordered: true, Rate: 20, PassFailed: 1, PassWait: 10}}, func(t *testing.T, r Request) {
			// 2400 items accrued, but after a failed pass a window of a
			// listing in no order is sized to prove itself in one page:
			// 95.5% of a page (fill(1)), 955 items, 47 s.
			want(t, r.Kind == Fresh && !r.EndAtFetch && r.End.Sub(r.Start) == 47*time.Second, "a fixed one-page window, got %+v", r)
		}},
		{"UnorderedPassesTakeTheFreeSlots", Input{Now: now, Through: e.Add(-2 * time.Minute), State: State{Unordered: true, Rate: 20}}, func(t *testing.T, r Request) {
			// While passes prove their windows, the 2400 items are one
			// window of three pages: the budget grants five now.
			want(t, r.Kind == Fresh && !r.EndAtFetch && r.End.Equal(e), "one window up to the edge, got %+v", r)
		}},
		{"UnorderedPassesWaitForNoGrant", Input{Now: now, Through: e.Add(-2 * time.Minute), Grants: full[1:], State: State{Unordered: true, Rate: 20}}, func(t *testing.T, r Request) {
			// One grant free: a pass of two pages would wait a minute for
			// its second, with the watermark held back; one page.
			want(t, r.Kind == Fresh && r.End.Sub(r.Start) == 47*time.Second, "a one-page window, got %+v", r)
		}},
		// Found by TestSim_LateCoverage with listings in no order: a read
		// planned when a little more than a page had accrued took a
		// second request for the few items over.
		{"UnorderedLeavesAFewItemsToTheNextRead", Input{Now: now, Through: e.Add(-55 * time.Second), State: State{Unordered: true, Rate: 20}}, func(t *testing.T, r Request) {
			// 1100 items: one page of them (955, 47 s), the 145 left
			// are the next read's.
			want(t, r.Kind == Fresh && r.End.Sub(r.Start) == 47*time.Second, "a one-page window, got %+v", r)
		}},
		{"WindowEndsAGuardBehindTheClock", Input{Now: now, Through: e.Add(-time.Hour), State: State{Unordered: true}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Fresh && r.End.Equal(e), "ends at now − guard, got %+v", r)
		}},
		{"LateWorkWaitsForTheBudget", Input{Now: now, Through: e, Grants: full, State: State{LateTo: t0, Rate: 1}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Wait && r.Wait == 10*time.Second+cfg.BudgetWindow-time.Minute, "wait for the oldest grant, got %+v", r)
		}},
		{"LateWorkTakesASpareSlot", Input{Now: now, Through: e, State: State{LateTo: t0, Rate: 1}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.Start.Equal(t0) && r.End.Equal(now.Add(-cfg.Overlap-cfg.Guard)), "re-scan up to now − overlap − guard, got %+v", r)
		}},
		{"ProbeTheFurthestBaseline", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 1, Reads: reads}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Probe && r.End.Equal(t0.Add(6*time.Minute)) && r.Baseline == 3300 && r.Limit == 1, "probe the furthest, got %+v", r)
		}},
		{"BisectAGrownWindow", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 1, Reads: reads, Suspect: t0.Add(6 * time.Minute)}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Probe && r.End.Equal(t0.Add(4*time.Minute)), "probe the middle, got %+v", r)
		}},
		{"NoProbeOfAOnePageWindow", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 1, Reads: []Read{{Start: cfg.Start, End: t0.Add(6 * time.Minute), Total: 900}}}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan, "a re-read costs what the probe would: re-read, got %+v", r)
		}},
		// Found by TestSim_LateCatchUp: with a slot free only if the
		// fresh read waited a second for its own, late coverage left the
		// slot unused, a fifth of the budget after a stream stopped.
		{"LateWorkTakesASlotTheFreshReadCanWaitFor", Input{Now: now, Through: e.Add(-55 * time.Second), Grants: []time.Time{now.Add(-54 * time.Second), now.Add(-50 * time.Second), now.Add(-20 * time.Second), now.Add(-10 * time.Second)}, State: State{LateTo: t0, Rate: 0.1}}, func(t *testing.T, r Request) {
			// The fresh read is due in 5 s; with a late request now it
			// finds its slot 1.3 s later (when the grant of 54 s ago
			// leaves the window), inside the guard.
			want(t, r.Kind == Rescan, "re-scan now, got %+v", r)
		}},
		{"LateWorkLeavesASlotTheFreshReadCannotWaitFor", Input{Now: now, Through: e.Add(-55 * time.Second), Grants: []time.Time{now.Add(-45 * time.Second), now.Add(-40 * time.Second), now.Add(-20 * time.Second), now.Add(-10 * time.Second)}, State: State{LateTo: t0, Rate: 0.1}}, func(t *testing.T, r Request) {
			// It would find its slot 10.3 s late.
			want(t, r.Kind == Wait, "keep the slot for the fresh read, got %+v", r)
		}},
		// Found by TestSim_LateCoverage: with no volume seen lately (a
		// stopped stream), late coverage moved an interval at a time and
		// reached the stream's end a minute late.
		{"StoppedSortedStreamIsCoveredInOneGo", Input{Now: now, Through: e, State: State{LateTo: t0}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.Start.Equal(t0) && r.End.Equal(now.Add(-cfg.Overlap-cfg.Guard)), "re-scan up to now − overlap − guard, got %+v", r)
		}},
		// Found by TestSim_LateCoverage: once the stream stopped, late
		// coverage of a listing in no order waited for an interval's span
		// between windows of a page each, two requests a minute.
		{"StoppedStreamLateStepsByTheSpanBehind", Input{Now: now, Through: e, State: State{LateTo: now.Add(-cfg.Overlap - cfg.Guard - 40*time.Second), Unordered: true, LateRate: 30}}, func(t *testing.T, r Request) {
			// 40 s at 30 items/s hold more than a page.
			want(t, r.Kind == Rescan, "re-scan now, got %+v", r)
		}},
		{"StoppedUnsortedStreamAnIntervalAtATime", Input{Now: now, Through: e, State: State{LateTo: t0, Unordered: true}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.Start.Equal(t0) && r.End.Equal(t0.Add(cfg.Interval)), "re-scan one interval, got %+v", r)
		}},
		// Found by TestSim_LateCoverage with whole-second ties: a late
		// window read on from a second inside it kept its end, and the
		// few items left before that end took a request of their own.
		{"LateWindowReadOnFromASecondEndsAtTheHorizon", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 10,
			Late: &Window{Start: t0.Add(time.Minute + time.Second), End: t0.Add(2 * time.Minute), Page: 1, ReadOn: true}}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.Start.Equal(t0.Add(time.Minute+time.Second)) && r.End.Equal(now.Add(-cfg.Overlap-cfg.Guard)), "re-scan from the second up to now − overlap − guard, got %+v", r)
		}},
		{"LateBurstKeepsItsSecond", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 10,
			Late: &Window{Start: t0.Add(time.Minute), End: t0.Add(time.Minute + time.Second), Page: 1, Burst: true}}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.End.Equal(t0.Add(time.Minute+time.Second)), "the burst's second alone, got %+v", r)
		}},
		{"LateWindowOfAListingInNoOrderKeepsItsEnd", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 10, Unordered: true,
			Late: &Window{Start: t0.Add(time.Minute), End: t0.Add(2 * time.Minute), Page: 1, ReadOn: true}}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan && r.End.Equal(t0.Add(2*time.Minute)), "the window as sized to fit its pass, got %+v", r)
		}},
		{"NarrowedLateWindowKeepsItsEnd", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 10,
			Late: &Window{Start: t0.Add(time.Minute), End: t0.Add(time.Minute + 20*time.Second), Page: 1}}}, func(t *testing.T, r Request) {
			// (A window narrowed to fit one page must not grow back.)
			want(t, r.Kind == Rescan && r.End.Equal(t0.Add(time.Minute+20*time.Second)), "the narrowed window, got %+v", r)
		}},
		{"RescanWhenProbesMostlyMiss", Input{Now: now, Through: e, State: State{LateTo: t0.Add(time.Minute), Rate: 1, Reads: reads, ProbeMiss: 0.9, LateRounds: 3}}, func(t *testing.T, r Request) {
			want(t, r.Kind == Rescan, "re-read, got %+v", r)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, Next(cfg, tc.in)) })
	}
}

// Ensure Advance reads each kind of answer right.
func TestAdvance(t *testing.T) {
	cfg := prodConfig()
	cfg.PageSize = 10
	at := t0.Add(10 * time.Minute)
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	sorted := func(from, step int) []time.Time {
		var ts []time.Time
		for i := range 10 {
			ts = append(ts, sec(from+i*step).Add(100*time.Millisecond))
		}
		return ts
	}
	slide := func(page, total int, ts []time.Time) Page {
		return Page{Request: Request{Kind: Fresh, Start: t0, End: sec(100), EndAtFetch: true, Page: page, Limit: 10},
			At: at, Total: total, TotalPages: (total + 9) / 10, Count: len(ts), CreatedAt: ts, Head: ts[0], Tail: ts[len(ts)-1]}
	}
	t.Run("SortedPageMovesTheWatermarkToItsLastSecond", func(t *testing.T) {
		st, through := Advance(cfg, t0, State{}, slide(1, 25, sorted(0, 3)))
		want(t, through.Equal(sec(26)), "through the second before the last item's (27), got %s", through)
		want(t, st.Feed.Page == 2 && st.Feed.Start.Equal(t0) && !st.Unordered, "next page of the window, got %+v", st.Feed)
	})
	t.Run("MoreThanAPageInOneSecond", func(t *testing.T) {
		// Upstream is known to sort; ties alone show no order.
		st, through := Advance(cfg, t0, State{Order: orderEvidence}, slide(1, 25, sorted(40, 0)))
		want(t, through.Equal(sec(39)), "only what is before that second, got %s", through)
		want(t, st.Feed.Page == 1 && st.Feed.Start.Equal(sec(40)), "start over at that second, got %+v", st.Feed)
		p := slide(1, 25, sorted(40, 0))
		p.Request.Start = sec(40)
		st, through = Advance(cfg, through, st, p)
		want(t, through.Equal(sec(39)) && st.Feed.Fixed && st.Feed.Burst && st.Feed.Start.Equal(sec(40)) && st.Feed.End.Equal(sec(41)),
			"then that second alone, a fixed window proven by its count, got %s %+v", through, st.Feed)
		burst := func(page, stored int) Page {
			return Page{Request: Request{Kind: Fresh, Start: sec(40), End: sec(41), Page: page, Limit: 10},
				At: at, Total: 25, TotalPages: 3, Count: min(10, 25-10*(page-1)), CreatedAt: sorted(40, 0), Stored: stored}
		}
		st, through = Advance(cfg, through, st, burst(1, 10))
		st, through = Advance(cfg, through, st, burst(2, 19))
		st, through = Advance(cfg, through, st, burst(3, 24))
		want(t, through.Equal(sec(39)) && st.Feed.Page == 1 && st.Feed.Passes == 1, "24 of 25 stored: read it again, got %s %+v", through, st.Feed)
		st, through = Advance(cfg, through, st, burst(1, 25))
		st, through = Advance(cfg, through, st, burst(2, 25))
		st, through = Advance(cfg, through, st, burst(3, 25))
		want(t, through.Equal(sec(41)) && st.Feed == nil, "all 25 stored: the second is read, got %s %+v", through, st.Feed)
	})
	t.Run("PagesOutOfOrder", func(t *testing.T) {
		ts := sorted(0, 3)
		ts[3], ts[7] = ts[7], ts[3]
		st, _ := Advance(cfg, t0, State{Feed: &Feed{Start: t0, Page: 2, ReadAt: at}}, slide(2, 25, ts))
		want(t, st.Unordered && st.Feed == nil, "unsorted: fixed windows from the watermark, got %+v", st)
		st, through := Advance(cfg, t0, State{}, slide(1, 25, ts))
		// 25 items, 10 to a page: no offset is trusted in a listing in no
		// order; the window narrows to where the page's items say a
		// page's worth ends (fill(1) of a page of 10 is 6 items, 24% of
		// the 25: 2 of the page's 10), and fits one page.
		want(t, through.Equal(t0) && st.Feed.Fixed && st.Feed.Narrow && st.Feed.End.Equal(sorted(0, 3)[2].Truncate(time.Second)) && st.Feed.Page == 1,
			"a first page that does not hold its window becomes a narrower fixed window, got %+v", st.Feed)
	})
	t.Run("TiesAloneProveNoOrder", func(t *testing.T) {
		st, through := Advance(cfg, t0, State{}, slide(1, 25, sorted(40, 0)))
		want(t, through.Equal(t0) && st.Feed.Narrow && st.Feed.End.Equal(sec(40)) && !st.Unordered,
			"neither order nor offsets prove anything: a narrower window that fits a page, got %s %+v", through, st.Feed)
	})
	t.Run("AnInversionProvesDisorder", func(t *testing.T) {
		ts := sorted(0, 3)[:3]
		ts[0], ts[1] = ts[1], ts[0]
		p := slide(1, 25, ts)
		p.Count = 10
		st, _ := Advance(cfg, t0, State{Order: orderEvidence}, p)
		want(t, st.Unordered && st.Order == 0, "three items out of order: unordered, got %+v", st)
	})
	t.Run("StreamStops", func(t *testing.T) {
		st, through := Advance(cfg, t0, State{}, slide(1, 4, sorted(0, 3)[:4]))
		want(t, through.Equal(sec(100)), "a partial page reads the window to its end, got %s", through)
		want(t, st.Feed.Page == 1 && st.Feed.Count == 4 && len(st.Reads) == 1, "read page 1 again as it fills, got %+v", st)
	})
	t.Run("StoppedStreamIsSeenAtOnce", func(t *testing.T) {
		// Found by TestSim_LateCatchUp: the volume estimate fell a fifth
		// per read after the stream stopped, so page 1 was read again and
		// again (a dozen requests) for items that never came.
		f := &Feed{Start: t0, End: sec(20), Page: 1, Total: 4, Count: 4}
		p := slide(1, 4, sorted(0, 3)[:4])
		p.Request.End = sec(30)
		st, _ := Advance(cfg, t0, State{Feed: f, Rate: 70}, p)
		want(t, st.Rate == 0, "none in 10 s where 700 were expected: the volume is 0, got %v", st.Rate)
		p.Total, p.Count = 700, 10 // as many as expected: the usual moving average
		st, _ = Advance(cfg, t0, State{Feed: f, Rate: 70}, p)
		want(t, st.Rate > 69 && st.Rate < 70, "about 70 (70 + 1/6 × (69.6 − 70)), got %v", st.Rate)
	})
	t.Run("WindowCountGrows", func(t *testing.T) {
		base := State{LateTo: t0, Reads: []Read{{Start: t0, End: sec(60), Total: 30}}}
		probe := Page{Request: Request{Kind: Probe, Start: t0, End: sec(60), Page: 1, Limit: 1, Baseline: 30}, At: at, Total: 31}
		st, _ := Advance(cfg, sec(100), base, probe)
		want(t, st.LateTo.Equal(t0) && st.Suspect.Equal(sec(60)), "grown: suspect, not covered, got %+v", st)
		probe.Total = 30
		st, _ = Advance(cfg, sec(100), base, probe)
		want(t, st.LateTo.Equal(sec(60)) && st.Suspect.IsZero() && len(st.Reads) == 0, "unchanged: covered, got %+v", st)
	})
	t.Run("ATieCutTheSameWayTwiceContinues", func(t *testing.T) {
		// Page 1 ends in a tie of two items at 27.1 s; page 2 starts with
		// a third. Sub-second instants shared by a few items are common
		// at a few dozen items a second: starting over at the second each
		// time cost 4% of a page.
		tie := sec(27).Add(100 * time.Millisecond)
		one := sorted(0, 3)
		one[8] = tie
		p1 := slide(1, 25, one)
		p1.TailTie = []string{"a8", "a9"}
		st, through := Advance(cfg, t0, State{}, p1)
		want(t, through.Equal(sec(26)) && st.Feed.Page == 2 && slices.Equal(st.Feed.LastTie, p1.TailTie),
			"a tie known whole: read on by offset, got %s %+v", through, st.Feed)
		two := append([]time.Time{tie}, sorted(28, 1)[:9]...)
		p2 := slide(2, 25, two)
		p2.HeadTie = []string{"a10"}
		got, through2 := Advance(cfg, through, st, p2)
		want(t, got.Feed.Page == 3 && got.Feed.Exact && through2.Equal(sec(35)),
			"the tie cut where it was: page 2 continues page 1 exactly, got %s %+v", through2, got.Feed)

		// The same tie served in another order: a9 on page 2, so one of
		// the tie's items may be on neither page.
		p2.HeadTie = []string{"a9"}
		got, through2 = Advance(cfg, through, st, p2)
		want(t, got.Feed.Page == 1 && got.Feed.Start.Equal(sec(27)) && through2.Equal(sec(26)),
			"start over at the tie's second, got %s %+v", through2, got.Feed)
		// A tie not known whole (a copy in it, or too long): no offset.
		p1.TailTie = nil
		st, _ = Advance(cfg, t0, State{}, p1)
		want(t, st.Feed.Page == 1 && st.Feed.Start.Equal(sec(27)), "start over at the tie's second, got %+v", st.Feed)
	})
	t.Run("AStrayCopyProvesNothingFromWhereItSits", func(t *testing.T) {
		// Found by TestSim_Adversarial once its upstream put a page's copy
		// in place of a later item: the page moved the watermark to its
		// last item's second, past the item the copy replaced, which that
		// request served on no page.
		p := slide(1, 25, sorted(0, 3)[:9]) // nine distinct items and a copy
		p.Count, p.Distinct = 10, 9
		p.Stray, p.StrayAfter = true, sec(12).Add(100*time.Millisecond)
		st, through := Advance(cfg, t0, State{}, p)
		want(t, through.Equal(sec(11)) && st.Feed.Page == 1 && st.Feed.Start.Equal(sec(12)),
			"proven only before the copy: start over at the second of the item before it, got %s %+v", through, st.Feed)
		// A short last page: not read to its end while a copy took an
		// item's place on it.
		p = slide(1, 4, sorted(0, 3)[:3])
		p.Count, p.Distinct = 4, 3
		p.Stray, p.StrayAfter = true, sec(3).Add(100*time.Millisecond)
		st, through = Advance(cfg, t0, State{Order: orderEvidence}, p)
		want(t, through.Equal(sec(2)) && st.Feed.Start.Equal(sec(3)), "not to the window's end, got %s %+v", through, st.Feed)
		// A copy right after its original (a row listed twice) is no stray.
		p.Stray, p.StrayAfter = false, time.Time{}
		_, through = Advance(cfg, t0, State{Order: orderEvidence}, p)
		want(t, through.Equal(sec(100)), "read to the window's end, got %s", through)

		// A stray copy in the window's first second: read from there again
		// (it is out of place on some requests only), but not before the
		// edge passes this read's end.
		p = slide(1, 25, sorted(0, 3)[:9])
		p.Count, p.Distinct = 10, 9
		p.Stray, p.StrayAfter = true, sec(0).Add(100*time.Millisecond)
		st, through = Advance(cfg, t0, State{}, p)
		want(t, through.Equal(t0) && st.Feed.Start.Equal(t0) && st.Feed.Page == 1 && !st.Feed.Burst && st.Feed.Asked.Equal(sec(100)),
			"start over at the window's start once the edge moves, got %s %+v", through, st.Feed)
	})
	t.Run("AStrayCopyInALateWindowsFirstSecondAsksNoPageTwice", func(t *testing.T) {
		// Found by the whole sync's simulation: a re-scan window of one
		// second with a stray copy started over at its own start, and
		// asked upstream for the page it had just answered.
		ts := []time.Time{sec(11).Add(100 * time.Millisecond), sec(11).Add(800 * time.Millisecond)}
		p := Page{Request: Request{Kind: Rescan, Start: sec(11), End: sec(12), Page: 1, Limit: 10},
			At: at, Total: 3, TotalPages: 1, Count: 3, CreatedAt: ts, Head: ts[0], Tail: ts[0]}
		p.Stray, p.StrayAfter, p.StrayID, p.StrayGap = true, ts[1], "a", 2
		st := State{Order: orderEvidence, LateTo: sec(10), Late: &Window{Start: sec(11), End: sec(12), Page: 1}}
		st, _ = Advance(cfg, sec(100), st, p)
		want(t, st.Late == nil && st.LateTo.Equal(sec(10)), "plan late coverage afresh from where it stands, got %+v %s", st.Late, st.LateTo)
		r := Next(cfg, Input{Now: at, Through: at, State: st})
		want(t, r.Kind == Rescan && r.Start.Equal(sec(10)) && r.End.After(sec(12)), "another window, from late coverage's end, got %+v", r)
	})
	t.Run("TheSameStrayCopyOnThreeReadsInARowIsARowListedTwice", func(t *testing.T) {
		// Found by the whole sync's simulation once copies after malformed
		// items were stray: two malformed items alike in one second are
		// the same copy at the same place on every read, and the reads
		// stayed at that second for good.
		p := slide(1, 4, sorted(0, 3)[:3])
		p.Count, p.Distinct = 4, 3
		p.Stray, p.StrayAfter, p.StrayID, p.StrayGap = true, sec(1).Add(100*time.Millisecond), "x", 2
		p.StrayUnknown = true
		st := State{Order: orderEvidence}
		var through time.Time
		for read := 1; read <= strayReads; read++ {
			st, through = Advance(cfg, t0, st, p)
			if read < strayReads {
				want(t, through.Equal(sec(0)) && st.Feed.Start.Equal(sec(1)), "read %d: proven before the copy only, got %s %+v", read, through, st.Feed)
				st.Feed = nil
			}
		}
		want(t, through.Equal(sec(100)) && st.Stray.Reads == strayReads, "read to the window's end, got %s %+v", through, st.Stray)

		// Another copy, or the same one elsewhere, starts the count over.
		st = State{Order: orderEvidence}
		for read, gap := range []int{2, 2, 3, 2, 2} {
			p.StrayGap = gap
			st, through = Advance(cfg, t0, st, p)
			want(t, through.Equal(sec(0)), "read %d (gap %d): proven before the copy only, got %s", read+1, gap, through)
			st.Feed = nil
		}

		// Found by TestSim_Adversarial (seeds 38764, 70273): on the short
		// pages near the edge a copy served at random in another item's
		// place sat at the same place three reads in a row. Where the
		// instants are known, a copy is stray on every read.
		st, p.StrayUnknown, p.StrayGap = State{Order: orderEvidence}, false, 2
		for read := 1; read <= 2*strayReads; read++ {
			st, through = Advance(cfg, t0, st, p)
			want(t, through.Equal(sec(0)) && st.Stray == nil, "read %d: proven before the copy only, got %s %+v", read, through, st.Stray)
			st.Feed = nil
		}
	})
	t.Run("LateItemBehindThePagesReadSpoilsTheBaseline", func(t *testing.T) {
		st, _ := Advance(cfg, t0, State{}, slide(1, 25, sorted(0, 3)))
		p := slide(2, 26, sorted(27, 1))
		p.Repeats = 1 // the last item of page 1, pushed onto page 2
		st, _ = Advance(cfg, t0, st, p)
		want(t, len(st.Reads) == 1 && !st.Feed.Exact, "no baseline from page 2, got %+v", st)
	})
	t.Run("APageWithACopyIsNoProbeBaseline", func(t *testing.T) {
		// A copy right after an entry of its own instant is taken for a
		// row listed twice, but it may hold the place of an item the
		// window's count holds, which that request served on no page. A
		// probe would find the count unchanged and cover the item for
		// good: the window is left to late coverage's re-read instead.
		ts := sorted(0, 3)
		ts[5] = ts[4] // the copy, at its original's instant
		p := slide(1, 25, ts)
		p.Count, p.Distinct, p.Apart = 10, 9, true
		// Read long after (a backfill), with late coverage at the window.
		before := State{LateTo: t0, Reads: []Read{{Start: t0.Add(-time.Minute), End: sec(20), Total: 40, At: at}}}
		st, through := Advance(cfg, t0, before, p)
		want(t, through.Equal(sec(26)) && len(st.Reads) == 0 && !st.Feed.Exact,
			"read on, but no baseline, and none kept that counted the page's items, got %s %+v %+v", through, st.Reads, st.Feed)
		want(t, st.LateTo.Equal(t0), "late coverage left to re-read it, got %s", st.LateTo)
		st, _ = Advance(cfg, t0, st, slide(2, 25, sorted(28, 1)))
		want(t, len(st.Reads) == 0, "nor from a later page, got %+v", st.Reads)
		p.Distinct, p.Apart = 10, false // no copy: the count is a baseline
		st, _ = Advance(cfg, t0, before, p)
		want(t, len(st.Reads) > 0 && st.Reads[len(st.Reads)-1].Total == 25 && st.LateTo.Equal(sec(26)),
			"a baseline, and late coverage through the watermark, got %+v %s", st.Reads, st.LateTo)
	})
	t.Run("APassOverPagesHoldingNoItemTwiceProvesItsWindow", func(t *testing.T) {
		// A listing in no order, 25 items in the window, 10 to a page: a
		// pass reads on by offset and proves the window by the count, the
		// state going through JSON between pages as it does in the
		// database.
		unsorted := sorted(0, 3)
		unsorted[0], unsorted[3] = unsorted[3], unsorted[0]
		fixed := func(page, total, count int, keys ...int) Page {
			p := Page{Request: Request{Kind: Fresh, Start: t0, End: sec(100), Page: page, Limit: 10}, At: at.Add(time.Duration(page) * time.Second),
				Total: total, TotalPages: (total + 9) / 10, Count: count, CreatedAt: unsorted[:len(keys)]}
			for _, k := range keys {
				p.Keys = append(p.Keys, PassKey(strconv.Itoa(k)))
			}
			p.Distinct = len(keys)
			return p
		}
		span := func(from, to int) []int {
			var ks []int
			for k := from; k < to; k++ {
				ks = append(ks, k)
			}
			return ks
		}
		read := func(st State, through time.Time, pages ...Page) (State, time.Time) {
			for _, p := range pages {
				st, through = Advance(cfg, through, roundTrip(t, st), p)
			}
			return st, through
		}
		start := State{Unordered: true, Rate: 0.25, PassFailed: 2}
		st, through := read(start, t0, fixed(1, 25, 10, span(0, 10)...), fixed(2, 25, 10, span(10, 20)...))
		want(t, through.Equal(t0) && st.Feed.Page == 3 && st.Feed.Pass.Items == 20, "read on, got %s %+v", through, st.Feed)
		// An item that joined the listing since page 1 (item 25) is
		// counted at page 3's request: the pass holds 26 only with it.
		st2, through := read(st, through, fixed(3, 26, 6, append(span(20, 25), 25)...))
		want(t, through.Equal(sec(100)) && st2.Feed == nil && st2.PassFailed == 0 && len(st2.Reads) == 1 && st2.Reads[0].Total == 26,
			"25 + 1 distinct items, none twice: proven, got %s %+v", through, st2)

		// Upstream's order moved between page 2 and 3: item 5 shows again
		// and, as the count shows, another item is on no page.
		st2, through = read(st, t0, fixed(3, 25, 5, 5, 20, 21, 22, 23))
		want(t, through.Equal(t0) && st2.Feed.Narrow && st2.Feed.Page == 1 && st2.PassFailed == 3 && st2.PassWait == 4*passRetry,
			"an item on two pages: the pass fails, narrower windows of one page, got %s %+v", through, st2)
		r := Next(cfg, Input{Now: at, Through: t0, State: State{Unordered: true, Rate: 0.25, PassWait: st2.PassWait}})
		want(t, r.Kind == Fresh && r.End.Sub(r.Start) < 100*time.Second, "windows sized to one page after a failed pass, got %+v", r)

		// A copy in another item's place on the last page: 10 entries,
		// 9 distinct; the pass holds 24 of 25.
		st2, through = read(st, t0, fixed(3, 25, 5, 20, 21, 22, 23))
		want(t, through.Equal(t0) && st2.Feed.Narrow, "short of the count: the pass fails, got %s %+v", through, st2.Feed)

		// Pages without keys (a caller that did not say) prove nothing
		// beyond one page.
		p2 := fixed(2, 25, 10, span(10, 20)...)
		p2.Keys = nil
		st2, through = read(start, t0, fixed(1, 25, 10, span(0, 10)...), p2)
		want(t, through.Equal(t0) && st2.Feed.Narrow, "no keys: narrower, got %s %+v", through, st2.Feed)
	})
	t.Run("APageListedNewestFirstProvesItsWindowDownToItsOldestSecond", func(t *testing.T) {
		// Newest first with whole-second ties in a fresh order on every
		// request: a pass over pages fails at every boundary inside a tie,
		// but page 1 of a window holds every item newer than its oldest.
		desc := func(end time.Time, total int, ts []time.Time) Page {
			ts = slices.Clone(ts)
			slices.Reverse(ts)
			return Page{Request: Request{Kind: Fresh, Start: t0, End: end, Page: 1, Limit: 10}, At: t0.Add(3 * time.Minute),
				Total: total, TotalPages: (total + 9) / 10, Count: len(ts), CreatedAt: ts, Head: ts[0], Tail: ts[len(ts)-1]}
		}
		whole := func(from int) []time.Time {
			var ts []time.Time
			for i := range 10 {
				ts = append(ts, sec(from+i))
			}
			return ts
		}
		start := State{Unordered: true, Rate: 0.25, PassFailed: 1, PassWait: 10, LateTo: t0}
		// 25 items; the page holds the ten newest, 60 s to 69 s.
		st, through := Advance(cfg, t0, start, desc(sec(100), 25, whole(60)))
		want(t, through.Equal(t0) && st.Desc && st.Feed.Start.Equal(t0) && st.Feed.End.Equal(sec(60)) && st.Feed.Top.Equal(sec(100)) && st.Feed.ReadAt.Equal(t0.Add(3*time.Minute)),
			"(60 s, 100 s] proven: [0, 60 s] is left, got %s %+v", through, st.Feed)
		r := Next(cfg, Input{Now: t0.Add(3*time.Minute + time.Second), Through: through, State: st})
		want(t, r.Kind == Fresh && r.Start.Equal(t0) && r.End.Equal(sec(60)) && r.Page == 1, "page 1 of what is left, got %+v", r)
		// The rest of the 60 s tie, and all before, fit one page now: the
		// watermark moves to the first window's end.
		p := desc(sec(60), 7, whole(54)[:7])
		p.At = t0.Add(3*time.Minute + 20*time.Second)
		st2, through := Advance(cfg, through, roundTrip(t, st), p)
		want(t, through.Equal(sec(100)) && st2.Feed == nil && st2.LateTo.Equal(sec(55)),
			"read through: the whole window, covered as of the first page's read, got %s %+v", through, st2)
		// A copy apart from its original on the first page may have kept
		// an item it proved off every page: late coverage re-reads it.
		p1 := desc(sec(100), 25, whole(60))
		p1.Apart = true
		st3, through3 := Advance(cfg, t0, start, p1)
		want(t, st3.Feed.Apart, "carried to what is left, got %+v", st3.Feed)
		st3, through3 = Advance(cfg, through3, roundTrip(t, st3), p)
		want(t, through3.Equal(sec(100)) && st3.LateTo.Equal(t0), "read through, but not covered, got %s %s", through3, st3.LateTo)

		// A stray copy after the item at 64 s may hold the place of any
		// older item: proven only above 64 s.
		p = desc(sec(100), 25, whole(60))
		p.Stray, p.StrayAfter = true, sec(64)
		st2, _ = Advance(cfg, t0, start, p)
		want(t, st2.Feed.End.Equal(sec(64)) && st2.Feed.Top.Equal(sec(100)), "left: [0, 64 s], got %+v", st2.Feed)
		// Sub-second instants: what is left ends at the second after the
		// oldest item's.
		ms := whole(60)
		for i := range ms {
			ms[i] = ms[i].Add(300 * time.Millisecond)
		}
		st2, _ = Advance(cfg, t0, start, desc(sec(100), 25, ms))
		want(t, st2.Feed.End.Equal(sec(61)), "left: [0, 61 s], got %+v", st2.Feed)
		// Seven distinct instants sorted prove nothing (7! is a chance of
		// one in 5040): narrowed as in any listing in no order.
		few := whole(60)
		for i := range few[:4] {
			few[i] = sec(60)
		}
		st2, _ = Advance(cfg, t0, start, desc(sec(100), 25, few))
		want(t, !st2.Desc && st2.Feed.Narrow && st2.Feed.Top.IsZero(), "no evidence: narrower, got %+v", st2)
		// Every item but the first second's is proven: that second is
		// left (found by TestSim_WholeSync, seed 750548220: made a burst,
		// a second of four entries, one a row listed twice, was read
		// twenty times for a count its distinct items never reach).
		st2, through = Advance(cfg, t0, start, desc(sec(100), 25, append([]time.Time{t0}, whole(1)[:9]...)))
		want(t, !st2.Feed.Burst && st2.Feed.End.Equal(sec(1)) && st2.Feed.Top.Equal(sec(100)), "left: the first second, got %+v", st2.Feed)
		b := Page{Request: Request{Kind: Fresh, Start: t0, End: sec(1), Page: 1, Limit: 10}, At: at, Total: 4, TotalPages: 1, Count: 4, Distinct: 3,
			CreatedAt: []time.Time{sec(1), t0, t0}, Head: sec(1), Tail: t0}
		_, through = Advance(cfg, through, st2, b)
		want(t, through.Equal(sec(100)), "read in one page: through the top, got %s", through)
		// A window of one second, more than a page in it: a burst.
		var tenths []time.Time
		for i := range 10 {
			tenths = append(tenths, t0.Add(time.Duration(i)*100*time.Millisecond))
		}
		st2, _ = Advance(cfg, t0, start, desc(sec(1), 25, tenths))
		want(t, st2.Feed.Burst && st2.Feed.End.Equal(sec(1)) && st2.Feed.Top.Equal(sec(1)), "a burst, got %+v", st2.Feed)
	})
	t.Run("ANarrowerWindowAfterALaterPageListedNewestFirst", func(t *testing.T) {
		// Found by BenchmarkSim_Capacity: page 2 of a pass listed newest
		// first holds the window's 11th to 20th newest items; 5 of the 25
		// are older (within a page's worth, fill(1) of 10), so the
		// narrower window ends at the page's oldest second. Counting every
		// item but the page's as older gave a window of one second.
		ts := sorted(30, 2) // 30.1 s … 48.1 s
		slices.Reverse(ts)
		p := Page{Request: Request{Kind: Fresh, Start: t0, End: sec(100), Page: 2, Limit: 10}, At: at, Total: 25, TotalPages: 3, Count: 10, CreatedAt: ts}
		got := narrower(cfg, p)
		want(t, got.Narrow && got.End.Equal(sec(30)), "a window up to 30 s, got %+v", got)
	})
	t.Run("BacklogAcrossContinueAsNew", func(t *testing.T) {
		// The state lives in the database, not the workflow: reloaded, it
		// plans the same next page.
		st, through := Advance(cfg, t0, State{Unordered: true, Rate: 1}, Page{
			Request: Request{Kind: Fresh, Start: t0, End: sec(100), Page: 1, Limit: 10}, At: at, Total: 35, TotalPages: 4, Count: 10})
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var again State
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		in := Input{Now: at, Through: through, State: again}
		r := Next(cfg, in)
		want(t, r.Kind == Fresh && r.Page == 1 && r.Start.Equal(t0) && r.End.Equal(st.Feed.End) && r.End.Before(sec(100)),
			"the same narrowed window, got %+v", r)
	})
}

func want(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}
