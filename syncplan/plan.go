// Package syncplan decides what the sync asks upstream for next, and what
// an answer means for the sync's progress. It is pure code: no I/O, no
// clock (the caller passes the database's time), so every rule here is
// tested by tables in plan_test.go without a database or a server.
//
// Three kinds of request share the upstream budget:
//
//   - fresh pages move the watermark (syncedThrough) forward;
//   - re-scans re-read instants read before their late items could all be
//     visible, once SYNC_OVERLAP has passed behind them;
//   - probes (limit=1) compare a window's meta.totalItems with what it held
//     when it was read: equal means nothing appeared late, and the whole
//     window is covered for the price of one request.
//
// Fresh pages come first; re-scans and probes only take budget slots that
// no fresh page will need within the budget window.
package syncplan

import (
	"math"
	"slices"
	"time"

	"scorekeeper"
)

// Kind names what a request is for.
type Kind string

// The kinds of request, and Wait for "nothing to fetch yet". The others
// are the budget's kinds (scorekeeper.BudgetKinds), which every grant is
// recorded under.
const (
	Wait   Kind = "wait"
	Fresh       = Kind(scorekeeper.BudgetFresh)
	Rescan      = Kind(scorekeeper.BudgetRescan)
	Probe       = Kind(scorekeeper.BudgetProbe)
)

// Late-coverage strategies (SyncConfig.LateCheck).
const (
	// LateAuto probes while probes mostly find nothing new, and re-reads
	// while they mostly do (a probe that finds something costs a request
	// on top of the re-read).
	LateAuto = "auto"
	// LateProbe always probes first.
	LateProbe = "probe"
	// LateRescan always re-reads.
	LateRescan = "rescan"
)

// Config is what the planner needs of the configuration.
type Config struct {
	// Start is SYNC_START: where the first window begins.
	Start time.Time
	// Interval is SYNC_INTERVAL: the longest a fresh read waits for a full
	// page before it reads a partial one.
	Interval time.Duration
	// Overlap is SYNC_OVERLAP: how late an item may become visible.
	Overlap time.Duration
	// PageSize is UPSTREAM_PAGE_SIZE.
	PageSize int
	// Guard keeps window ends this far behind the database's clock, so a
	// clock somewhat ahead of upstream's cannot mark instants as read
	// before their items exist.
	Guard time.Duration
	// BudgetN requests are allowed in any BudgetWindow.
	BudgetN      int
	BudgetWindow time.Duration
	// LateCheck is LateAuto, LateProbe or LateRescan ("" means auto).
	LateCheck string

	// served is the page size upstream applies when it caps our limit
	// (State.PerPage): windows are sized in its pages.
	served int
}

// page is the page size windows are sized in: ours, or upstream's when
// it serves fewer.
func (cfg Config) page() int {
	if cfg.served > 0 && cfg.served < cfg.PageSize {
		return cfg.served
	}
	return cfg.PageSize
}

// withState sizes windows in the page size upstream last applied.
func (cfg Config) withState(st State) Config {
	cfg.served = st.PerPage
	return cfg
}

// GuardFor is the window guard for a schedule interval: a twelfth of it,
// from one to five seconds (5 s at the default 1m).
func GuardFor(interval time.Duration) time.Duration {
	return min(max(interval/12, time.Second), 5*time.Second).Truncate(time.Second)
}

// Tuning constants, each explained where it is used.
const (
	// maxFixedPages bounds a fixed window: at most one budget window of
	// requests before the watermark moves.
	maxFixedPages = 5
	// rebaseAfter pages, a sliding window starts over at its last item's
	// second, so page numbers (upstream offsets) stay bounded; the items
	// of that second already read are read again, once per rebase.
	rebaseAfter = 50
	// maxReads bounds the probe baselines kept in the cursor.
	maxReads = 200
	// fullMargin: a fresh page is read as soon as the window is expected
	// to hold this share more than the page needs, so it surely fills.
	fullMargin = 1.02
	// breakLimit: a full sorted page is continued by offset (no items
	// read twice) only while fewer continuations than this break; a break
	// costs a whole page read again, starting over at the last second
	// costs the items of that second (about 4% of a page at capacity).
	breakLimit = 0.05
	// breakDecay lets the break rate fall while pages start over, so
	// continuing by offset is tried again every fifty pages or so.
	breakDecay = 0.97
	// maxBurstPasses bounds re-reading a second that holds more than a
	// page, until the items stored reach upstream's count: each pass of
	// k pages misses a given item with a chance of about (1-1/k)^k (0.30
	// for three pages), so 20 passes leave one of 300 items unseen with a
	// chance below one in a million. A count never reached after that is
	// upstream counting a row twice.
	maxBurstPasses = 20
)

// State is the sync's progress record, stored as JSON beside the
// watermark and written only together with the data it covers.
type State struct {
	// Feed is the open fresh window, nil between windows.
	Feed *Feed `json:"feed,omitempty"`
	// Unordered is set once upstream served a full page not sorted by
	// createdAt: fresh windows are then fixed and sized to whole pages.
	Unordered bool `json:"unordered,omitempty"`
	// Rate is upstream's recent volume in items per second.
	Rate float64 `json:"rate,omitempty"`
	// LateTo is late coverage: every instant up to it was read (or probed)
	// at least Overlap after it happened.
	LateTo time.Time `json:"lateTo,omitzero"`
	// Late is an open multi-page re-scan window.
	Late *Window `json:"late,omitempty"`
	// Reads are probe baselines: windows and their totals when read.
	Reads []Read `json:"reads,omitempty"`
	// Suspect, when set, is the end of a window a probe found grown: new
	// items are somewhere in (LateTo, Suspect].
	Suspect time.Time `json:"suspect,omitzero"`
	// ProbeMiss is a moving share of probes that found new items (auto).
	ProbeMiss float64 `json:"probeMiss,omitempty"`
	// LateRounds counts late-coverage requests (auto re-tests probes).
	LateRounds int `json:"lateRounds,omitempty"`
	// LateRate is the volume, in items per second, of the window the last
	// re-scan read: late windows of a listing in no order are sized by it.
	LateRate float64 `json:"lateRate,omitempty"`
	// Desc is set while windows are read top down (State.observeDesc):
	// upstream's full pages come newest first, with evidence, and either
	// end inside a tie upstream need not order alike twice or passes
	// fail. A window's page 1 then proves the window down to its oldest
	// item, whatever order ties take (descTop), so windows are sized to
	// several pages.
	Desc bool `json:"desc,omitempty"`
	// PassFailed counts the passes over several pages of a listing in no
	// order that failed in a row (Pass): upstream moved its order between
	// requests. PassWait is how many windows proven in one page are still
	// to come before a pass is tried again (State.passPages).
	PassFailed int `json:"passFailed,omitempty"`
	PassWait   int `json:"passWait,omitempty"`
	// Breaks is a moving share of offset continuations that did not join
	// the page before (see advanceSliding).
	Breaks float64 `json:"breaks,omitempty"`
	// LateOwed is set by a fresh read made for a manual sync and cleared
	// by a late-coverage request: the next spare slot goes to late
	// coverage when it has work.
	LateOwed bool `json:"lateOwed,omitempty"`
	// Order is the evidence that upstream sorts by createdAt: ln of the
	// odds against the sorted pages in a row being sorted by chance
	// (State.observeOrder).
	Order float64 `json:"order,omitempty"`
	// PerPage is the page size upstream last applied (meta.itemsPerPage),
	// when it is below the limit asked for.
	PerPage int `json:"perPage,omitempty"`
	// Stray is the last stray copy of, or after, an entry of unknown
	// instant a page showed (Page.Stray), kept to tell two such rows
	// alike, which every read shows, from a copy served in another item's
	// place on one read.
	Stray *Stray `json:"stray,omitempty"`
}

// Stray names a stray copy: its id, the createdAt of the last valid item
// served before it, and how many entries after its original it sits; Reads
// counts the stray reads in a row that showed it.
type Stray struct {
	ID    string    `json:"id"`
	After time.Time `json:"after"`
	Gap   int       `json:"gap"`
	Reads int       `json:"reads"`
}

// strayReads is how many stray reads in a row must show the same copy of,
// or after, an entry of unknown instant at the same place for it to be
// taken as a row listed twice. A copy served at random in another item's
// place matches a given one with a chance of about 2/n² on a page of n
// entries, no small chance on the short pages near the edge: the rule is
// kept to entries of unknown instant (malformed items without a readable
// createdAt), whose copies are rare, where without it two such rows alike
// would stop the sync.
const strayReads = 3

// Feed is an open fresh window.
type Feed struct {
	Start time.Time `json:"start"`
	// End is the fixed window's end, or the end of the sliding window's
	// last read (zero before it).
	End time.Time `json:"end,omitzero"`
	// Fixed windows keep their end; sliding ones (upstream sorted by
	// createdAt) extend it with every page.
	Fixed bool `json:"fixed,omitempty"`
	// Page is the next page to read.
	Page int `json:"page"`
	// Total is meta.totalItems of the last read (fixed: the first, the
	// smallest, which is the baseline every page stored).
	Total int `json:"total,omitempty"`
	// ReadAt is when the window's first page was read: every item that
	// was visible then is stored once the window is read through.
	ReadAt time.Time `json:"readAt,omitzero"`
	// Exact stays set while the sliding window's count is a probe
	// baseline (see advanceSliding).
	Exact bool `json:"exact,omitempty"`
	// Count is how many items the sliding window's page Page held when
	// last read (it is read again until it fills).
	Count int `json:"count,omitempty"`
	// LastAt is the last entry's createdAt on the page before Page (zero:
	// malformed), which page Page must come strictly after to join it.
	LastAt time.Time `json:"lastAt,omitzero"`
	// LastTie is that page's TailTie: page Page may also start inside
	// that tie if it holds none of these ids (Page.continues).
	LastTie []string `json:"lastTie,omitempty"`
	// Before counts the distinct items on the pages before Page.
	Before int `json:"before,omitempty"`
	// Burst marks a fixed window of one second that holds more than a
	// page of items: there is no second boundary to start over at, so it
	// is proven by its count (advanceBurst).
	Burst bool `json:"burst,omitempty"`
	// Narrow marks a fixed window narrowed to fit one page, because a
	// sorted page held too few items to prove anything (advanceNarrow).
	Narrow bool `json:"narrow,omitempty"`
	// Passes counts the times a burst window was read again because the
	// items stored fell short of upstream's count.
	Passes int `json:"passes,omitempty"`
	// Pass is what a fixed window of a listing in no order read over
	// several pages has read so far.
	Pass
	// Top, when after End, is where the watermark moves once [Start, End]
	// is read: a page listed newest first proved (End, Top] (descTop),
	// read from ReadAt on.
	Top time.Time `json:"top,omitzero"`
	// Apart is set once a page proving part of (End, Top] held a copy
	// apart from its original (StrayCopy.Apart): late coverage is not
	// extended over the window (coverFresh).
	Apart bool `json:"apart,omitempty"`
	// Asked is the end of the last read of this sliding window's page 1
	// when it starts over where it started (a stray copy on it): the
	// next read waits until the edge passes it, so that upstream is not
	// asked for the same page twice.
	Asked time.Time `json:"asked,omitzero"`
}

// Window is a fixed window being read page by page.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Page  int       `json:"page"`
	// LastAt, LastTie, Before, Burst, Passes and Pass are as in Feed.
	LastAt  time.Time `json:"lastAt,omitzero"`
	LastTie []string  `json:"lastTie,omitempty"`
	Before  int       `json:"before,omitempty"`
	Burst   bool      `json:"burst,omitempty"`
	Passes  int       `json:"passes,omitempty"`
	Pass
	// ReadOn marks a window of a sorted listing read on from a second
	// inside the window read before (its page was full, or the next
	// page did not join it): its end moves up with the horizon (nextLate).
	ReadOn bool `json:"readOn,omitempty"`
}

// Read is a probe baseline: window [Start, End] held Total items at At,
// and every one of them is stored.
type Read struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Total int       `json:"total"`
	At    time.Time `json:"at"`
}

// Input is everything the planner looks at.
type Input struct {
	// Now is the database's clock.
	Now time.Time
	// Through is the stored watermark.
	Through time.Time
	State   State
	// Want, when after Through, asks for data through it now (a manual
	// sync): a partial page is read rather than waiting for a full one.
	Want time.Time
	// Grants are the budget's grant stamps within the last BudgetWindow
	// (in-flight ones stamped ahead, see db.Budget).
	Grants []time.Time
}

// Request is one upstream request. For a sliding fresh page, End is set
// when the request is made (EndAtFetch): the database's clock minus the
// guard, so the page sees every item that accrued while it waited for the
// budget.
type Request struct {
	Kind       Kind      `json:"kind"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	EndAtFetch bool      `json:"endAtFetch,omitempty"`
	Page       int       `json:"page"`
	Limit      int       `json:"limit"`
	// Baseline is, for a probe, the total the window held when read.
	Baseline int `json:"baseline,omitempty"`
	// Wait is, for Kind Wait, how long until something may be due.
	Wait time.Duration `json:"wait,omitempty"`
	// ForWant marks a fresh read made only because a manual sync wants
	// data: it takes turns with late coverage (State.LateOwed).
	ForWant bool `json:"forWant,omitempty"`
}

// edge is the latest instant a window may end at now.
func edge(cfg Config, now time.Time) time.Time {
	return now.Add(-cfg.Guard).Truncate(time.Second)
}

// Next decides the next request: a fresh page when one is due, else late
// coverage when the budget can spare a slot, else how long to wait.
func Next(cfg Config, in Input) Request {
	cfg = cfg.withState(in.State)
	fresh, freshOK := nextFresh(cfg, in)
	if freshOK && !fresh.ForWant {
		return fresh
	}
	// A read due only because a manual sync wants data is optional, like
	// late coverage: it takes a slot no scheduled fresh page will need,
	// and it takes turns with late coverage, so manual syncs at any rate
	// never stop late coverage (nor take the whole budget).
	scheduled := in
	scheduled.Want = time.Time{}
	freshIn := freshDueIn(cfg, scheduled)
	wait := freshDueIn(cfg, in)
	late, lateOK := nextLate(cfg, in)
	if freshOK && wantSpares(cfg, in, freshIn, lateOK) {
		return fresh
	}
	if lateOK {
		if budgetSpares(cfg, in, freshIn) {
			return late
		}
		// Look again when a grant leaves the window.
		if d := nextExpiry(cfg, in); d > 0 {
			wait = min(wait, d)
		}
	} else if d := lateDueIn(cfg, in); d > 0 {
		wait = min(wait, d)
	}
	if freshOK {
		// Wanted, but no slot to spare: look again when one frees.
		if d := nextExpiry(cfg, in); d > 0 {
			wait = d
		}
	}
	return Request{Kind: Wait, Wait: min(max(wait, 250*time.Millisecond), max(cfg.Interval, time.Second))}
}

// Avoid returns req, or, when req opens a window any page of which
// upstream answered before (a re-scan ending where a fresh read once did,
// to the second: a sliding read's later pages end where it stopped), the
// same window ended up to a few seconds sooner: a page is never asked for
// twice, so upstream's own record of pages answered twice stays a record
// of mistakes. answered reports whether any page of a window was
// answered. Continuing pages and sliding reads are kept as they are.
func Avoid(req Request, answered func(Request) bool) Request {
	if req.Page != 1 || req.EndAtFetch || (req.Kind != Fresh && req.Kind != Rescan) {
		return req
	}
	for i := 0; i < 3 && req.End.After(req.Start.Add(time.Second)) && answered(req); i++ {
		req.End = req.End.Add(-time.Second)
	}
	return req
}

// nextFresh returns the next fresh page if one is due now.
func nextFresh(cfg Config, in Input) (Request, bool) {
	f := in.State.Feed
	if f != nil && f.Fixed {
		return Request{Kind: Fresh, Start: f.Start, End: f.End, Page: f.Page, Limit: cfg.PageSize}, true
	}
	e := edge(cfg, in.Now)
	start, page := freshFrom(cfg, in)
	if !e.After(start) || !e.After(in.Through) || (f != nil && !e.After(f.Asked)) {
		return Request{}, false
	}
	ok, forWant := due(cfg, in, start, page, e)
	if !ok {
		return Request{}, false
	}
	if in.State.Unordered && f == nil {
		if budgetWait(cfg, in) > 0 {
			// A fixed window's end is set when it is planned: planned
			// now, it would be as old as the wait for the budget when
			// read (freshDueIn waits for the grant instead).
			return Request{}, false
		}
		// Sized to the pages a pass may prove (Pass): one while upstream
		// moves its order between requests, and no more than the budget
		// grants now (the watermark moves only when the pass is read
		// through: a pass waiting for a grant mid-way holds it back).
		pages, loss := min(in.State.windowPages(), freeSlots(cfg, in)), 0.0
		if in.State.Desc {
			// Read top down (descTop): each page but the last proves half
			// a second of items less than it holds.
			loss = in.State.Rate / 2
		}
		return Request{Kind: Fresh, Start: start, End: sizedEnd(cfg, in.State.Rate, start, e, pages, loss, true), Page: 1, Limit: cfg.PageSize, ForWant: forWant}, true
	}
	return Request{Kind: Fresh, Start: start, EndAtFetch: true, Page: page, Limit: cfg.PageSize, ForWant: forWant}, true
}

// freshFrom is where the next fresh read starts, and its page.
func freshFrom(cfg Config, in Input) (time.Time, int) {
	if f := in.State.Feed; f != nil {
		return f.Start, f.Page
	}
	if in.Through.Before(cfg.Start) {
		return cfg.Start, 1
	}
	return in.Through, 1
}

// expected is how many items window [start, at] is expected to hold.
func expected(in Input, start, at time.Time) float64 {
	known, since := 0.0, start
	if f := in.State.Feed; f != nil && !f.Fixed && !f.End.IsZero() && f.Start.Equal(start) {
		known, since = float64(f.Total), f.End
	}
	if at.After(since) {
		known += in.State.Rate * at.Sub(since).Seconds()
	}
	return known
}

// need is how many items the window must hold for the next page to be
// full: a sliding window's page p needs p pages' worth from its start.
func need(cfg Config, in Input, page int) float64 {
	if in.State.Unordered {
		return float64(cfg.page()) * cfg.fill(1)
	}
	n := float64(page * cfg.page())
	if f := in.State.Feed; f == nil || f.Total == 0 {
		// Nothing counted in this window yet: the count is a fresh Poisson
		// draw, so wait until a full page is likely (mean 1.65 standard
		// deviations above it: 19 reads in 20 fill).
		return n + 1.65*math.Sqrt(n)
	}
	return n * fullMargin
}

// due reports whether a fresh read from start is due with the window
// ending at e: a full page has accrued, the watermark is an interval old,
// or a manual sync wants data the watermark does not cover yet.
func due(cfg Config, in Input, start time.Time, page int, e time.Time) (ok, forWant bool) {
	if e.Sub(in.Through) >= max(cfg.Interval, time.Second) || expected(in, start, e) >= need(cfg, in, page) {
		return true, false
	}
	if in.Want.After(in.Through) && !e.Before(in.Want) {
		return true, true
	}
	return false, false
}

// freshDueIn is how long until a fresh read is due (0: now).
func freshDueIn(cfg Config, in Input) time.Duration {
	if f := in.State.Feed; f != nil && f.Fixed {
		return 0
	}
	e := edge(cfg, in.Now)
	start, page := freshFrom(cfg, in)
	d := in.Through.Add(max(cfg.Interval, time.Second)).Sub(e)
	if in.Want.After(in.Through) {
		d = min(d, in.Want.Sub(e))
	}
	if r := in.State.Rate; r > 0 {
		missing := need(cfg, in, page) - expected(in, start, e)
		d = min(d, seconds(missing/r))
	}
	if f := in.State.Feed; f != nil {
		d = max(d, f.Asked.Add(time.Second).Sub(e))
	} else if in.State.Unordered {
		d = max(d, budgetWait(cfg, in))
	}
	return max(d, 0)
}

// fill is the share of k pages a fixed window is sized to: the expected
// count plus 1.65 standard deviations of a Poisson count fits in k pages
// of the size windows are sized in, so about one window in twenty
// spills. (The smaller the page, the larger the margin: 95% of a page of
// 1000, 79% of a page of 50.)
func (cfg Config) fill(k int) float64 {
	n := float64(k * cfg.page())
	s := (-1.65 + math.Sqrt(1.65*1.65+4*n)) / 2 // x + 1.65·√x = n
	return s * s / n
}

// seconds converts a span in seconds computed from the volume estimate,
// which may be near zero, to a Duration without overflowing: at most a
// year.
func seconds(s float64) time.Duration {
	const most = 365 * 24 * time.Hour
	if !(s < most.Seconds()) {
		return most
	}
	return time.Duration(s * float64(time.Second))
}

// sizedEnd sizes a fixed window from start to fit pages pages of the
// expected volume r, never past e; with no volume known it takes
// everything up to e. Windows end on whole seconds: of the two around
// the size that fills fill(pages) of them, it takes the one expected to
// prove more items per request (a longer window holds more, but spills
// more often, and a window that spills costs its pages and one more, and
// delays the watermark: counted as pages+1). With small pages the longer
// one mostly wins: a second may be a large share of the window. loss is
// what each page but the last proves less than a page (read again by the
// next: descTop's half a second). With trim (fresh windows), a span that
// fits but whose last page would hold under a quarter of a page is sized
// to the pages before it. (Not late windows: trimmed, the catch-up after
// a stream at 90% of a listing in no order took 1.47 times its least
// rather than 1.44, TestSim_LateCatchUp.)
func sizedEnd(cfg Config, r float64, start, e time.Time, pages int, loss float64, trim bool) time.Time {
	if r <= 0 {
		return e
	}
	page := float64(cfg.page()) - loss
	span := e.Sub(start).Seconds()
	if x := r * span; trim && x < float64(pages)*page {
		// A request for a few items costs what a full page does: leave
		// them to the next read.
		if q := math.Ceil(x / page); q > 1 && x-(q-1)*page < page/4 {
			pages = int(q) - 1
		}
	}
	n := float64(pages)*page + loss
	secs := n * cfg.fill(pages) / r
	if secs >= span {
		// (A volume near zero would overflow a Duration.)
		return e
	}
	perRequest := func(s float64) float64 {
		x := r * s
		spill := 0.5 * math.Erfc((n-x)/math.Sqrt(2*x)) // P(count > n), normal approximation
		return x / (math.Ceil(x/page) + float64(pages+1)*spill)
	}
	k := max(math.Floor(secs), 1)
	if perRequest(k+1) > perRequest(k) {
		k++
	}
	end := start.Add(time.Duration(k) * time.Second).Truncate(time.Second)
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	return earlier(end, e)
}

// nextLate returns the next late-coverage request, if there is work that
// is eligible now (budget aside).
func nextLate(cfg Config, in Input) (Request, bool) {
	st := in.State
	if cfg.Overlap <= 0 {
		return Request{}, false
	}
	if w := st.Late; w != nil {
		end := w.End
		if w.ReadOn && w.Page == 1 && !w.Burst && !st.Unordered && st.Suspect.IsZero() {
			// A sorted window read on from a second inside it (its page
			// 1 was full) is a window of its own: its end moves up with
			// the horizon, so the rest of it and what is old enough since
			// fill the page, rather than a remnant taking a request.
			end = later(end, sortedLateEnd(cfg, st, w.Start, lateHorizon(cfg, in)))
		}
		return Request{Kind: Rescan, Start: w.Start, End: end, Page: w.Page, Limit: cfg.PageSize}, true
	}
	from := lateFrom(cfg, st)
	to := lateHorizon(cfg, in)
	bisect := !st.Suspect.IsZero()
	if bisect && st.Suspect.Before(to) {
		to = st.Suspect
	}
	// Cover in steps of at least a page of items (or an interval, when
	// that is shorter), so each request is worth its budget; a suspect
	// window is covered whatever its size.
	if !to.After(from) || (!bisect && to.Sub(from) < lateStep(cfg, st)) {
		return Request{}, false
	}
	if probing(cfg, st) {
		if r, ok := probeTarget(cfg, st, from, to, bisect); ok {
			return Request{Kind: Probe, Start: r.Start, End: r.End, Page: 1, Limit: 1, Baseline: r.Total}, true
		}
	}
	r := st.Rate
	if st.Unordered && st.LateRate > 0 {
		// Windows of a listing in no order must fit one page: sized by
		// what the last late read found, not by the fresh volume (which
		// falls to nothing when the stream stops, while the span behind
		// still holds its items).
		r = st.LateRate
	}
	switch {
	case r <= 0 && st.Unordered:
		// No volume seen lately: an interval at a time, so one window
		// of unsorted pages, which proves nothing until read through,
		// cannot hold hours of items. (Sorted pages move late coverage
		// page by page, so a stopped stream is covered in one go.)
		if lim := from.Add(max(cfg.Interval, time.Second)); lim.Before(to) {
			to = lim
		}
	case r <= 0:
	case st.Unordered:
		// As fresh windows (advanceFixed): the pages a pass may prove, in
		// slots the budget spares now. (Sorted pages move it page by page
		// whatever the window's size.)
		to = sizedEnd(cfg, r, from, to, min(st.passPages(), freeSlots(cfg, in)), 0, false)
	default:
		to = sortedLateEnd(cfg, st, from, to)
	}
	return Request{Kind: Rescan, Start: from, End: to, Page: 1, Limit: cfg.PageSize}, true
}

// sortedLateEnd is the end of a late window of a sorted listing from
// from: to, or sooner where the window would hold more than
// maxFixedPages pages at the fresh volume (sorted pages move late
// coverage page by page, so the bound only keeps offsets short).
func sortedLateEnd(cfg Config, st State, from, to time.Time) time.Time {
	if st.Rate <= 0 {
		return to
	}
	lim := from.Add(seconds(float64(maxFixedPages*cfg.page()) / st.Rate)).Truncate(time.Second)
	if lim.After(from) && lim.Before(to) {
		return lim
	}
	return to
}

// lateStep is the least span late coverage moves by in one go: a page
// of items at the fresh volume, or at the last re-scan's where no fresh
// volume is seen (once a stream stops, the span behind still holds its
// items), or an interval when that is shorter.
func lateStep(cfg Config, st State) time.Duration {
	step := max(cfg.Interval, time.Second)
	r := st.Rate
	if r <= 0 {
		r = st.LateRate
	}
	if r > 0 {
		step = min(step, max(seconds(float64(cfg.page())/r), time.Second))
	}
	return step
}

// lateFrom is where late coverage stands.
func lateFrom(cfg Config, st State) time.Time {
	if st.LateTo.Before(cfg.Start) {
		return cfg.Start
	}
	return st.LateTo
}

// lateHorizon is how far late coverage can go now: instants Overlap old
// by the database's clock less the guard (an upstream clock behind ours
// shows an item later than we count from), and only those the watermark
// covers.
func lateHorizon(cfg Config, in Input) time.Time {
	h := edge(cfg, in.Now.Add(-cfg.Overlap))
	if h.After(in.Through) {
		h = in.Through
	}
	return h
}

// lateDueIn is how long until late coverage has a step of work, when it
// has none now (0 when that depends on the watermark, not the clock).
func lateDueIn(cfg Config, in Input) time.Duration {
	if cfg.Overlap <= 0 {
		return 0
	}
	target := lateFrom(cfg, in.State).Add(lateStep(cfg, in.State))
	if target.After(in.Through) {
		return 0
	}
	return max(target.Add(cfg.Overlap).Sub(in.Now), 0)
}

// probing reports whether late coverage should probe first.
func probing(cfg Config, st State) bool {
	switch cfg.LateCheck {
	case LateProbe:
		return true
	case LateRescan:
		return false
	}
	// Auto: while most probes find new items, a probe only adds a
	// request to the re-read; try one again every eighth round.
	return st.ProbeMiss < 0.5 || st.LateRounds%8 == 0
}

// probeTarget picks the baseline to probe in (from, to]: the one reaching
// furthest, or, bisecting a suspect window, the middle one short of it.
func probeTarget(cfg Config, st State, from, to time.Time, bisect bool) (Read, bool) {
	var cands []Read
	for _, r := range st.Reads {
		// A probe of a window that one page re-reads saves nothing.
		if r.Total <= cfg.page() || r.Start.After(from) || !r.End.After(from) || r.End.After(to) || (bisect && !r.End.Before(to)) {
			continue
		}
		cands = append(cands, r)
	}
	if len(cands) == 0 {
		return Read{}, false
	}
	slices.SortFunc(cands, func(a, b Read) int { return a.End.Compare(b.End) })
	if bisect {
		return cands[len(cands)/2], true
	}
	return cands[len(cands)-1], true
}

// budgetSpares reports whether a late-coverage request now leaves every
// fresh page expected within the budget window its slot on time: fresh
// pages are expected from freshIn on, one per page span at the current
// rate (just the one when the rate is unknown).
func budgetSpares(cfg Config, in Input, freshIn time.Duration) bool {
	if cfg.BudgetN <= 0 {
		return true
	}
	w := cfg.BudgetWindow
	grants := append(slices.Clone(in.Grants), in.Now)
	if countIn(grants, in.Now.Add(-w), in.Now) > cfg.BudgetN {
		return false
	}
	step := w
	if r := in.State.Rate; r > 0 {
		step = max(seconds(float64(cfg.page())/r), time.Millisecond)
	}
	// A fresh page may wait up to the guard for its slot: the watermark
	// is then a few seconds older, well inside its promise, and a slot
	// that would otherwise sit unused serves late coverage.
	slack := cfg.Guard
	for t := in.Now.Add(freshIn); t.Before(in.Now.Add(w)); t = t.Add(step) {
		if countIn(grants, t.Add(slack-w), t.Add(slack)) >= cfg.BudgetN {
			return false
		}
		grants = append(grants, t)
	}
	return true
}

// wantSpares reports whether a read made only for a manual sync may take
// a slot now: one no scheduled fresh page needs, and, while late coverage
// has work, not the last such slot, nor two in a row (State.LateOwed).
func wantSpares(cfg Config, in Input, freshIn time.Duration, lateWork bool) bool {
	if !lateWork {
		return budgetSpares(cfg, in, freshIn)
	}
	if in.State.LateOwed {
		return false
	}
	after := in
	after.Grants = append(slices.Clone(in.Grants), in.Now)
	return budgetSpares(cfg, after, freshIn)
}

// freeSlots is how many requests the budget grants within the guard from
// when it grants the next (grants made together leave the window
// together), at least one.
func freeSlots(cfg Config, in Input) int {
	if cfg.BudgetN <= 0 {
		return maxFixedPages
	}
	soon := in.Now.Add(budgetWait(cfg, in) + cfg.Guard)
	return max(cfg.BudgetN-countIn(in.Grants, soon.Add(-cfg.BudgetWindow), soon), 1)
}

// budgetWait is how long until the budget grants a request (0: now).
func budgetWait(cfg Config, in Input) time.Duration {
	if cfg.BudgetN <= 0 || countIn(in.Grants, in.Now.Add(-cfg.BudgetWindow), in.Now) < cfg.BudgetN {
		return 0
	}
	return nextExpiry(cfg, in)
}

// countIn counts the stamps in (from, to].
func countIn(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range ts {
		if t.After(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// nextExpiry is how long until the oldest grant leaves the window.
func nextExpiry(cfg Config, in Input) time.Duration {
	var d time.Duration
	for _, g := range in.Grants {
		if w := g.Add(cfg.BudgetWindow).Sub(in.Now); w > 0 && (d == 0 || w < d) {
			d = w
		}
	}
	return d
}
