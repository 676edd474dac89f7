package syncplan

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"
)

// Page is what one request brought back, as far as progress goes.
type Page struct {
	// Request is the request as made (a sliding read's End resolved).
	Request Request `json:"request"`
	// At is the database's clock when the request was made.
	At time.Time `json:"at"`
	// Total and TotalPages are upstream's meta for the window.
	Total      int `json:"total"`
	TotalPages int `json:"totalPages"`
	// PerPage is upstream's meta.itemsPerPage: the page size it applied,
	// which may be less than the limit asked for (0: not said, the limit).
	PerPage int `json:"perPage,omitempty"`
	// Count is how many entries the page held as served: valid, malformed
	// and repeated alike. Every entry takes a position in the listing.
	Count int `json:"count"`
	// Distinct is how many distinct items the page held: Count less the
	// copies of an item served twice on it.
	Distinct int `json:"distinct,omitempty"`
	// CreatedAt are the valid items' createdAt, in upstream's order.
	CreatedAt []time.Time `json:"createdAt,omitempty"`
	// Head and Tail are the createdAt of the page's first and last entries
	// as served, zero when that entry is malformed (its place in a sorted
	// listing is then unknown).
	Head time.Time `json:"head,omitzero"`
	Tail time.Time `json:"tail,omitzero"`
	// HeadTie and TailTie are the ids of the entries the page starts and
	// ends with that share Head's and Tail's instant (upstream.Page): nil
	// when not known for certain.
	HeadTie []string `json:"headTie,omitempty"`
	TailTie []string `json:"tailTie,omitempty"`
	// StrayCopy reports a copy on the page not right after its original
	// (its fields keep their JSON names: pages travel in activity
	// payloads).
	StrayCopy
	// Stored is, for a window paged through one second (Burst), how many
	// items with createdAt in the window are stored once this page is:
	// the count that proves such a window read (ApplyPage fills it).
	Stored int `json:"stored,omitempty"`
	// Repeats counts the page's items that were stored before it (the
	// database found their ids). Informational: no proof rests on it.
	Repeats int `json:"repeats,omitempty"`
	// Keys are the page's distinct entries' PassKeys, set where the page
	// is applied (it never travels: a pass keeps what it needs of them).
	// Without them a window of a listing in no order is proven by one
	// page only.
	Keys []uint32 `json:"-"`

	// ordered is set by Advance: the page is sorted, and upstream is
	// known to sort (State.observeOrder).
	ordered bool
}

// StrayCopy is what a page shows of a stray copy (upstream.Page, which
// finds it): Stray reports a copy not right after its original, and
// StrayAfter the createdAt of the last valid item served before it: in a
// sorted listing the page proves nothing at or after StrayAfter (nothing
// at all when it is zero). StrayID and StrayGap (entries after its
// original) tell the copy, and StrayUnknown reports that its instant, or
// the entry's before it, is unknown (State.Stray).
type StrayCopy struct {
	// Apart reports a copy not right after its original, stray or not
	// (one among entries of its own instant is taken for a row listed
	// twice): it may hold the place of an item the request served on no
	// page, so in a sorted listing its window is no probe baseline
	// (advanceSliding). In a listing in no order a copy's place shows
	// nothing, and a row listed twice sits anywhere: not heeded there,
	// where it would have late coverage read everything again.
	Apart        bool      `json:"copyApart,omitempty"`
	Stray        bool      `json:"stray,omitempty"`
	StrayAfter   time.Time `json:"strayAfter,omitzero"`
	StrayID      string    `json:"strayId,omitempty"`
	StrayGap     int       `json:"strayGap,omitempty"`
	StrayUnknown bool      `json:"strayUnknown,omitempty"`
}

// observeOrder folds the page's order into the evidence that upstream
// sorts by createdAt, and reports whether the page is sorted with enough
// evidence behind it. An inversion proves upstream does not sort. A
// sorted page of d distinct instants is evidence in the measure of the
// chance that an unsorted listing shows them sorted, 1/d!: evidence holds
// once the pages sorted in a row are less likely than 1/8! by chance
// (ties show no order, so a second of ties adds nothing). Only full pages
// count: a partial page read again shows the same items in the same
// order, which is no new evidence.
func (st *State) observeOrder(p Page) bool {
	if !isSorted(p.CreatedAt) {
		st.Order = 0
		return false
	}
	if p.full() {
		st.Order = min(st.Order+lnFactorial(distinctInstants(p.CreatedAt)), 2*orderEvidence)
	}
	return st.Order >= orderEvidence
}

// orderEvidence is ln(8!): eight distinct instants sorted by chance.
var orderEvidence = lnFactorial(8)

func lnFactorial(n int) float64 {
	v, _ := math.Lgamma(float64(n) + 1)
	return v
}

func distinctInstants(ts []time.Time) int {
	n := 0
	for i, t := range ts {
		if i == 0 || !t.Equal(ts[i-1]) {
			n++
		}
	}
	return n
}

// perPage is the page size upstream applied.
func (p Page) perPage() int {
	if p.PerPage > 0 && (p.Request.Limit <= 0 || p.PerPage < p.Request.Limit) {
		return p.PerPage
	}
	return p.Request.Limit
}

// full reports whether the page holds as many entries as a page can:
// the listing may go on after it.
func (p Page) full() bool {
	return p.Count >= p.perPage()
}

// distinct is Distinct, or Count when the caller did not say.
func (p Page) distinct() int {
	if p.Distinct > 0 {
		return p.Distinct
	}
	return p.Count
}

// complete reports whether the listing ends on this page: upstream says
// it is the last, and either it is short (a listing that went on would
// have filled it) or the distinct items read reach meta.totalItems. A
// full last page whose copies hide how many items follow is not the end:
// one more page is read to see. upstream's totals are never trusted alone
// to end a window early, and our own limit is never assumed applied.
func (p Page) complete(distinctBefore int) bool {
	if p.Request.Page < p.TotalPages {
		return false
	}
	return !p.full() || p.Total <= distinctBefore+p.distinct()
}

// joins reports whether a later page continues the one read before it,
// whose last entry was at lastAt: in a listing sorted by createdAt the
// page's first entry must be strictly later. An equal instant means the
// boundary fell inside a tie, whose order upstream need not keep between
// requests (one item may sit on neither page); an earlier one means an
// item inserted before the boundary pushed an item read already across
// it. Either way the page proves nothing about the instant at the
// boundary.
func (p Page) joins(lastAt time.Time) bool {
	return !lastAt.IsZero() && !p.Head.IsZero() && p.Head.After(lastAt)
}

// continues reports whether a later page of a sorted listing carries on
// from the page read before it, whose last entry was at lastAt and whose
// trailing tie (the entries at lastAt) is lastTie, so that every item at
// or before lastAt visible when that page was read is on it or an earlier
// page, and every later item is on this page or a later one. It does
// where Page.joins does, and where the boundary cut a tie the same way
// twice: the page starts at lastAt with a tie (HeadTie) that ends on it
// and shares no id with lastTie, and holds no copy. lastTie's k items
// sat in the k places before the boundary; had an item been inserted
// before the boundary since, or the tie been served in another order,
// fewer than k of the tie's places would lie before the boundary now, so
// one of lastTie's items would be on this page. None is: the tie was cut
// where it was, every item of it is on one of the two pages, and nothing
// was inserted before the boundary.
func (p Page) continues(lastAt time.Time, lastTie []string) bool {
	switch {
	case p.joins(lastAt):
		return true
	case lastAt.IsZero() || !p.Head.Equal(lastAt) || len(lastTie) == 0 || len(p.HeadTie) == 0 || p.distinct() < p.Count:
		return false
	}
	for _, id := range p.HeadTie {
		if slices.Contains(lastTie, id) {
			return false
		}
	}
	return true
}

// tiedTail reports whether the page's last instant may continue on the
// next page in an order upstream need not keep: the last entry is
// malformed, sits on a whole second (upstream's resolution may be the
// second, so the whole second is one tie), or shares its instant with the
// valid item before it.
func (p Page) tiedTail() bool {
	if p.Tail.IsZero() || p.Tail.Equal(p.Tail.Truncate(time.Second)) {
		return true
	}
	if p.TailTie != nil {
		// The tie is known whole: the next page can show whether the
		// boundary cut it where it did now (Page.continues).
		return false
	}
	n := len(p.CreatedAt)
	return n >= 2 && p.CreatedAt[n-2].Equal(p.CreatedAt[n-1])
}

// proven is the last instant of a sorted page before which it proves
// every item of its span, to the second: its last item's, or, when a
// stray copy took some item's place, the instant before the copy (zero:
// nothing).
func (p Page) proven() time.Time {
	if p.Stray {
		return p.StrayAfter
	}
	return last(p.CreatedAt)
}

// ends reports whether a sorted page reads its window to the end: it is
// complete (Page.complete) and no stray copy took an item's place on it.
func (p Page) ends(distinctBefore int) bool {
	return !p.Stray && p.complete(distinctBefore)
}

// Advance returns the progress record and watermark once page p is stored.
// The caller stores them in the same database transaction as the page.
func Advance(cfg Config, through time.Time, st State, p Page) (State, time.Time) {
	st = st.clone()
	if p.Request.Kind != Probe && p.PerPage > 0 {
		st.PerPage = 0
		if p.PerPage < cfg.PageSize {
			st.PerPage = p.PerPage
		}
	}
	cfg = cfg.withState(st)
	switch {
	case p.Request.Kind == Fresh && p.Request.ForWant:
		st.LateOwed = true
	case p.Request.Kind == Rescan || p.Request.Kind == Probe:
		st.LateOwed = false
	}
	if p.Request.Kind != Probe {
		p.ordered = st.observeOrder(p)
	}
	switch {
	case p.Stray && !p.StrayUnknown:
		// Instants known: two rows alike sit in their own tie, where a
		// copy is no stray, so this one is never taken for a pair.
		st.Stray = nil
	case p.Stray && p.Request.Kind != Probe:
		// A copy of, or after, an entry whose instant is unknown is stray
		// on one read when upstream served it in another item's place;
		// two malformed items alike with no createdAt are stray on every
		// read, and would hold the reads at their second for ever. The
		// same copy at the same place on three stray reads in a row is
		// taken for such a pair.
		seen := Stray{ID: p.StrayID, After: p.StrayAfter, Gap: p.StrayGap, Reads: 1}
		if o := st.Stray; o != nil && o.ID == seen.ID && o.After.Equal(seen.After) && o.Gap == seen.Gap {
			seen.Reads = o.Reads + 1
		}
		if seen.Reads >= strayReads {
			p.Stray, p.StrayAfter = false, time.Time{}
		}
		st.Stray = &seen
	}
	switch p.Request.Kind {
	case Fresh:
		if p.Request.EndAtFetch {
			through = advanceSliding(cfg, through, &st, p)
		} else {
			through = advanceFixed(cfg, through, &st, p)
		}
	case Probe:
		advanceProbe(&st, p)
	case Rescan:
		advanceRescan(cfg, &st, p)
	}
	st.prune(cfg, through)
	return st, through
}

func (st State) clone() State {
	c := st
	if st.Feed != nil {
		f := *st.Feed
		c.Feed = &f
	}
	if st.Late != nil {
		w := *st.Late
		c.Late = &w
	}
	c.Reads = slices.Clone(st.Reads)
	if st.Stray != nil {
		x := *st.Stray
		c.Stray = &x
	}
	return c
}

// advanceSliding moves a sliding window (upstream sorted by createdAt)
// past one page. Page 1 of a window is a prefix of upstream's listing, so
// a full sorted page proves every item before its last item's second was
// visible on it; the watermark moves to the second before. The next page
// continues by offset only where that cannot lose an item: the last
// instant has sub-second precision and its tie on the page is known
// whole, and the next page's first entry comes strictly after it
// (Page.joins) or the next page shows the tie cut in the same place
// (Page.continues). Otherwise the
// next read starts over at the last item's second, re-reading the items
// of that second already stored: what ties cost.
func advanceSliding(cfg Config, through time.Time, st *State, p Page) time.Time {
	req := p.Request
	f := st.Feed
	if f == nil || !f.Start.Equal(req.Start) || f.Page != req.Page {
		f = &Feed{Start: req.Start, Page: req.Page, ReadAt: p.At, Exact: req.Page == 1}
	}
	if f.ReadAt.IsZero() {
		f.ReadAt = p.At
	}
	readAt := f.ReadAt
	sorted := isSorted(p.CreatedAt)
	st.observeRate(cfg, f, req.Start, req.End, p.Total)
	old := through
	joined := req.Page == 1 || p.continues(f.LastAt, f.LastTie)
	if req.Page > 1 && sorted {
		// How often continuing by offset breaks (a late item inserted
		// before the boundary breaks it as surely as a tie does).
		st.Breaks *= 0.8
		if !joined {
			st.Breaks += 0.2
		}
	}
	// The window's count is a probe baseline while every boundary joined:
	// no item was inserted before a boundary between two reads, so every
	// item the last read counts is on a page read. A copy apart from its
	// original may have taken the place of an item the count holds (one
	// right after an entry of its own instant is taken for a row listed
	// twice, which one read cannot tell from that): such a window is
	// re-read by late coverage, never probed, so an item a copy kept off
	// every page is stored by the time lateCoveredThrough passes it.
	// (In a listing in no order a copy's place means nothing: open.)
	apart := p.Apart && sorted
	exact := (req.Page == 1 || (f.Exact && joined)) && !apart
	if apart {
		// Nor are the windows read before whose counts hold this page's
		// items (a window read on from its last second leaves the rest
		// of its count to the next window).
		st.Reads = slices.DeleteFunc(st.Reads, func(r Read) bool {
			return !r.Start.After(req.End) && !r.End.Before(req.Start)
		})
	}
	base := func() {
		if exact {
			st.addRead(Read{Start: req.Start, End: req.End, Total: p.Total, At: p.At})
		}
	}
	switch {
	case !joined && sorted:
		// The boundary fell inside a tie (or an item inserted before it
		// moved one across): the page proves nothing the last one did
		// not. Its items are stored; start over at the boundary's second,
		// which the watermark has not passed.
		f = &Feed{Start: later(req.Start, f.LastAt.Truncate(time.Second)), Page: 1}
	case p.ends(f.Before) && (sorted || req.Page == 1):
		// The window is read to its end. A partial last page is read again
		// as it fills, keeping one baseline; after a full one the next
		// window starts at this one's end.
		through = later(through, req.End)
		base()
		if p.full() {
			f = &Feed{Start: req.End, Page: 1}
			break
		}
		*f = Feed{Start: req.Start, End: req.End, Page: req.Page, Total: p.Total, ReadAt: f.ReadAt,
			Exact: exact, Count: p.Count, LastAt: f.LastAt, LastTie: f.LastTie, Before: f.Before}
	case p.ordered && (p.full() || req.Page == 1 || p.Stray) && !p.proven().IsZero():
		// Page 1 is a prefix of the listing, full or not; a later page
		// continues it (joined). A stray copy proves nothing after it.
		x := p.proven()
		sec := x.Truncate(time.Second)
		through = later(through, sec.Add(-time.Second))
		base()
		// A copy of an item on the page took a position that need not be
		// there at the next request: offsets after it prove nothing.
		offset := !p.tiedTail() && st.Breaks < breakLimit && p.distinct() == p.Count
		st.Breaks *= breakDecay
		switch {
		case !offset && (sec.After(req.Start) || p.Stray):
			// (A stray copy is out of place on some requests only: a read
			// from the same second again will most likely not show it.)
			f = &Feed{Start: later(sec, req.Start), Page: 1}
			if !f.Start.After(req.Start) {
				f.Asked = req.End
			}
		case !offset:
			// More than a page inside the window's first second: no second
			// boundary to start over at. Read that second alone as a
			// fixed window, proven by its count (advanceFixed).
			f = &Feed{Start: sec, End: earlier(sec.Add(time.Second), req.End), Fixed: true, Burst: true, Page: 1}
		case req.Page+1 > rebaseAfter && sec.After(req.Start):
			// Every item before sec is read: start over there, so page
			// numbers (upstream offsets) stay bounded.
			f = &Feed{Start: sec, Page: 1}
		default:
			*f = Feed{Start: req.Start, End: req.End, Page: req.Page + 1, Total: p.Total, ReadAt: f.ReadAt,
				Exact: exact, LastAt: x, LastTie: p.TailTie, Before: f.Before + p.distinct()}
		}
	case sorted && (req.Page == 1 || p.Stray):
		// Sorted, but too few items to say upstream sorts (a page
		// capped small, or copies), or a stray copy before any item:
		// neither order nor offsets prove anything. A window that fits
		// one page proves itself: read a narrower one (advanceNarrow).
		f = narrower(cfg, p)
	default:
		// Upstream is not sorted (or served a short page mid-window): the
		// watermark moves only by whole fixed windows from now on, each
		// read in one page (advanceFixed). A first page that does not hold
		// its window is followed by a narrower window that fits one;
		// later pages proved nothing beyond the watermark.
		st.Unordered = true
		st.Late = nil // a re-scan paged in the old order starts again
		if req.Page == 1 && !p.complete(0) {
			f = narrower(cfg, p)
		} else {
			f = nil
		}
	}
	st.Feed = f
	st.coverFresh(cfg, old, through, readAt, apart)
	return through
}

// advanceFixed moves a fixed window past one page; the watermark moves
// when its last page is read.
func advanceFixed(cfg Config, through time.Time, st *State, p Page) time.Time {
	req := p.Request
	f := st.Feed
	if f == nil || !f.Fixed || !f.Start.Equal(req.Start) || !f.End.Equal(req.End) || f.Page != req.Page {
		f = &Feed{Start: req.Start, End: req.End, Fixed: true, Page: req.Page}
	}
	switch {
	case f.Burst:
		return advanceBurst(cfg, through, st, f, p)
	case f.Narrow:
		return advanceNarrow(cfg, through, st, f, p)
	}
	if req.Page == 1 || f.ReadAt.IsZero() {
		f.Total = p.Total
		if f.Top.IsZero() || f.ReadAt.IsZero() {
			f.ReadAt = p.At
		}
	}
	if req.Page == 1 && f.Top.IsZero() {
		// (Not the windows left below a page read top down: the shorter
		// they are, the more their first second, read already, weighs.)
		st.observeRate(cfg, nil, req.Start, req.End, p.Total)
	}
	st.observeDesc(p)
	if req.Page == 1 && st.Desc && !p.complete(0) {
		if next := descNext(f, p); next != nil {
			st.Feed = next
			return through
		}
	}
	if p.ordered && p.full() {
		// A full page in createdAt order, with the evidence behind it:
		// upstream sorts again. Read on from the watermark in sliding
		// windows.
		st.Unordered = false
		st.Late = nil
		if !p.complete(f.Before) {
			st.Feed = nil
			return through
		}
	}
	pass, step := st.pass(f.Pass, p)
	switch step {
	case passNextPage:
		f.Pass, f.Page = pass, req.Page+1
		st.Feed = f
		return through
	case passNarrow, passFailed:
		// More than the pass could prove. A listing in no order need not
		// keep even its order between requests (ORDER BY a column with
		// ties, newest first with ties, or none), so a later page may
		// repeat items of an earlier one and leave others out: offsets
		// alone prove nothing (Pass). The items are stored; a narrower
		// window that fits one page, which proves itself whatever the
		// order, is read next.
		if next := descNext(f, p); next != nil {
			st.Feed = next
			return through
		}
		st.Feed = narrower(cfg, p)
		return through
	}
	old := through
	through = later(through, f.closes())
	total, at := f.Total, f.ReadAt
	if req.Page > 1 {
		// Proven by the count at the last page's request.
		total, at = p.Total, p.At
	}
	st.addRead(Read{Start: req.Start, End: req.End, Total: total, At: at})
	st.Feed = nil
	st.coverFresh(cfg, old, through, f.ReadAt, f.Apart)
	return through
}

// advanceBurst moves a fixed window of one second holding more than a
// page past one page. Its items are ties whose order upstream need not
// keep between requests, so its pages may miss an item and repeat
// another: no page boundary proves anything. The count does: the window
// is read once every item upstream counts in it is stored, else read
// again from page 1, at most maxBurstPasses times (a count that never
// comes is upstream counting a row twice).
func advanceBurst(cfg Config, through time.Time, st *State, f *Feed, p Page) time.Time {
	req := p.Request
	switch burstNext(p, f.Before, f.Passes) {
	case burstNextPage:
		f.Page, f.Before = req.Page+1, f.Before+p.distinct()
		st.Feed = f
		return through
	case burstAgain:
		st.Feed = &Feed{Start: req.Start, End: req.End, Fixed: true, Burst: true, Page: 1, Passes: f.Passes + 1, Top: f.Top, ReadAt: f.ReadAt}
		return through
	}
	st.Feed = nil
	return later(through, f.closes())
}

// burstStep is what a page of a burst window means for it.
type burstStep int

const (
	burstNextPage burstStep = iota // read on: the pass is not through
	burstAgain                     // read the second again: a pass ended short of upstream's count
	burstDone                      // the second is read: every item stored, or passes spent
)

// burstNext decides a burst window's next step after page p, with before
// distinct items on the pass's earlier pages and passes passes made: one
// rule for fresh and late windows alike.
func burstNext(p Page, before, passes int) burstStep {
	switch {
	case !p.complete(before):
		return burstNextPage
	case p.Stored < p.Total && passes+1 < maxBurstPasses:
		return burstAgain
	}
	return burstDone
}

// narrower is a fixed window from the start of p's window, narrowed to
// fit one page: it ends where p's items say a page's worth of the
// window's items end (the quantile of their createdAt that a page holds
// of meta.totalItems, or, on a page listed newest first, a page's share
// of the span before its oldest item; half the window when p tells
// nothing), at least a second after its start and before its end. A
// window of one second that does not fit a page is a burst, proven by its
// count (a narrower window of one second is not: a second's worth of
// items mostly fits a page).
func narrower(cfg Config, p Page) *Feed {
	start, end := p.Request.Start, p.Request.End
	mid := start.Add(end.Sub(start) / 2).Truncate(time.Second)
	fits := float64(cfg.page()) * cfg.fill(1)
	ts := p.CreatedAt
	switch n := len(ts); {
	case n > 1 && newestFirst(ts):
		// Newest first: the page and the pages before it hold the
		// window's newest items, and the rest are older than its oldest.
		// Of those, as many as fit a page are taken to lie evenly before
		// it.
		oldest := ts[n-1].Truncate(time.Second)
		if rest := float64(p.Total - (p.Request.Page-1)*p.perPage() - p.Count); rest > fits {
			mid = start.Add(time.Duration(float64(oldest.Sub(start)) * fits / rest)).Truncate(time.Second)
		} else {
			// The page's oldest items make up the rest of a page's worth.
			mid = ts[max(n-1-int(fits-rest), 0)].Truncate(time.Second)
		}
	case n > 0 && fits < float64(p.Total):
		// In any other order the page is taken for a sample of the window:
		// the window ends where the share of it a page holds ends.
		ts = slices.SortedFunc(slices.Values(ts), func(a, b time.Time) int { return a.Compare(b) })
		mid = ts[int(fits/float64(p.Total)*float64(n))].Truncate(time.Second)
	}
	if !end.After(start.Add(time.Second)) {
		return &Feed{Start: start, End: end, Fixed: true, Burst: true, Page: 1}
	}
	mid = earlier(later(mid, start.Add(time.Second)), end.Add(-time.Second))
	return &Feed{Start: start, End: mid, Fixed: true, Narrow: true, Page: 1}
}

// advanceNarrow moves past the one page of a narrowed window: read to its
// end, it moves the watermark to its end, whatever upstream's order;
// sorted with enough items, it proves what any sorted first page does;
// else it is narrowed again.
func advanceNarrow(cfg Config, through time.Time, st *State, f *Feed, p Page) time.Time {
	req := p.Request
	old := through
	sorted := isSorted(p.CreatedAt)
	if !sorted && !st.Unordered {
		st.Unordered = true
		st.Late = nil
	}
	switch {
	case p.complete(0) && (!p.Stray || !sorted):
		// (In a listing in no order a copy's place means nothing.)
		through = later(through, req.End)
		st.Feed = nil
	case p.ordered && !p.proven().IsZero():
		through = later(through, p.proven().Truncate(time.Second).Add(-time.Second))
		st.Feed = nil
		if p.full() {
			st.Unordered = false
		}
	default:
		st.observeRate(cfg, nil, req.Start, req.End, p.Total)
		st.observeDesc(p)
		if st.Feed = descNext(f, p); st.Feed == nil {
			st.Feed = narrower(cfg, p)
		}
	}
	st.coverFresh(cfg, old, through, p.At, f.Apart || (p.Apart && sorted))
	return through
}

// coverFresh extends late coverage over instants a fresh window saw at
// least Overlap after they happened (a backfill covers itself): every item
// that was visible when the window's first page was read (at) is stored
// once the watermark passes it. Not when a page of the window held a
// copy apart from its original (apart): it may hold the place of an item
// that request served on no page, which late coverage's re-read finds (a
// copy taken for a row listed twice moves the watermark over it).
func (st *State) coverFresh(cfg Config, old, through, at time.Time, apart bool) {
	if lateFrom(cfg, *st).Before(old) || apart {
		return // a gap before this window, or the window, needs covering
	}
	if c := edge(cfg, at.Add(-cfg.Overlap)); c.After(st.LateTo) {
		st.LateTo = earlier(c, through)
	}
}

func advanceProbe(st *State, p Page) {
	req := p.Request
	st.LateRounds++
	if p.Total == req.Baseline {
		// Nothing appeared since the window was read: it is covered.
		st.LateTo = later(st.LateTo, req.End)
		st.ProbeMiss *= 0.8
		return
	}
	// Something appeared (or, against the contract, vanished): somewhere
	// in (LateTo, End] is to be re-read. The baseline is spent: probing it
	// again could only say the same, for another request.
	if st.Suspect.IsZero() || req.End.Before(st.Suspect) {
		st.Suspect = req.End
	}
	st.Reads = slices.DeleteFunc(st.Reads, func(r Read) bool { return r.Start.Equal(req.Start) && r.End.Equal(req.End) })
	st.ProbeMiss = st.ProbeMiss*0.8 + 0.2
}

// advanceRescan moves a re-scan past one page, by the same rules as fresh
// pages: sorted pages start over at the last item's second where a tie
// may straddle the boundary, unsorted ones are paged by offset until the
// listing ends.
func advanceRescan(cfg Config, st *State, p Page) {
	req := p.Request
	if req.Page == 1 {
		st.LateRounds++
		if span := req.End.Sub(req.Start); span >= time.Second {
			st.LateRate = float64(p.Total) / span.Seconds()
		}
	}
	sorted := isSorted(p.CreatedAt)
	if (!sorted && !st.Unordered) || (p.ordered && st.Unordered) {
		// Upstream changed its order: pages read before the change do not
		// join up with pages read after it. Read the window again.
		st.Unordered = !sorted
		st.Late = nil
		return
	}
	w := st.Late
	if w == nil || !w.Start.Equal(req.Start) || !w.End.Equal(req.End) || w.Page != req.Page {
		w = &Window{Start: req.Start, End: req.End, Page: req.Page}
	}
	if w.Burst {
		// As advanceBurst: proven by the count alone.
		switch burstNext(p, w.Before, w.Passes) {
		case burstNextPage:
			st.Late = &Window{Start: req.Start, End: req.End, Page: req.Page + 1, Before: w.Before + p.distinct(), Burst: true, Passes: w.Passes}
		case burstAgain:
			st.Late = &Window{Start: req.Start, End: req.End, Page: 1, Burst: true, Passes: w.Passes + 1}
		default:
			st.Late = nil
			st.LateTo = later(st.LateTo, req.End)
		}
		return
	}
	if req.Page > 1 && sorted && !st.Unordered && !p.continues(w.LastAt, w.LastTie) {
		st.Late = &Window{Start: later(req.Start, w.LastAt.Truncate(time.Second)), End: req.End, Page: 1, ReadOn: true}
		return
	}
	if st.Unordered {
		// As advanceFixed: a pass over the window's pages.
		switch pass, step := st.pass(w.Pass, p); step {
		case passNextPage:
			st.Late = &Window{Start: req.Start, End: req.End, Page: req.Page + 1, Pass: pass}
			return
		case passProven:
			st.Late = nil
			st.LateTo = later(st.LateTo, req.End)
			return
		}
		n := narrower(cfg, p)
		st.Late = &Window{Start: n.Start, End: n.End, Page: 1, Burst: n.Burst}
		return
	}
	if p.complete(w.Before) && !p.Stray {
		st.Late = nil
		st.LateTo = later(st.LateTo, req.End)
		return
	}
	if sorted && (!p.ordered || p.proven().IsZero()) && (req.Page == 1 || p.Stray) {
		// As for fresh pages (advanceNarrow): a sorted page with too few
		// items proves nothing by order; a narrower window proves itself
		// in one page.
		n := narrower(cfg, p)
		st.Late = &Window{Start: n.Start, End: n.End, Page: 1, Burst: n.Burst}
		return
	}
	next := &Window{Start: req.Start, End: req.End, Page: req.Page + 1, LastAt: p.Tail, Before: w.Before + p.distinct()}
	if p.ordered && (p.full() || req.Page == 1 || p.Stray) {
		// As for fresh pages: every item before the last item's second
		// (or the stray copy's) that was visible at this read is stored.
		x := p.proven()
		sec := x.Truncate(time.Second)
		if c := sec.Add(-time.Second); c.After(st.LateTo) && !c.After(req.End) {
			st.LateTo = c
		}
		offset := !p.tiedTail() && p.distinct() == p.Count
		switch {
		case p.Stray && !sec.After(req.Start):
			// A stray copy in the window's first second: starting over
			// there asks for a page answered before. Late coverage plans
			// its next window afresh from where it stands.
			st.Late = nil
			return
		case !offset && sec.After(req.Start):
			next = &Window{Start: sec, End: req.End, Page: 1, ReadOn: true}
		case !offset:
			next = &Window{Start: sec, End: earlier(sec.Add(time.Second), req.End), Page: 1, Burst: true}
		}
		next.LastAt, next.LastTie = x, p.TailTie
	}
	st.Late = next
}

// observeRate folds a window's count into the volume estimate, weighted
// by how much time it spans: the count since the sliding window's last
// read, or the whole window.
func (st *State) observeRate(cfg Config, f *Feed, start, end time.Time, total int) {
	from, n := start, total
	if f != nil && f.Start.Equal(start) && !f.End.IsZero() && !f.Fixed {
		from, n = f.End, total-f.Total
	}
	span := end.Sub(from)
	if span < time.Second || n < 0 {
		return
	}
	obs := float64(n) / span.Seconds()
	if st.Rate <= 0 {
		st.Rate = obs
		return
	}
	a := min(span.Seconds()/max(cfg.Interval, time.Second).Seconds(), 1)
	if e := st.Rate * span.Seconds(); math.Abs(float64(n)-e) > 4*math.Sqrt(max(e, 1)) {
		// A count this far from the estimate (four standard deviations
		// of a Poisson count) is a change of volume, not chance: the
		// stream stopped, started or moved. Trust the count, so a stopped
		// stream is not read again and again for items that never come.
		a = 1
	}
	st.Rate += a * (obs - st.Rate)
}

// addRead keeps a probe baseline, at most maxReads of them.
func (st *State) addRead(r Read) {
	st.Reads = append(st.Reads, r)
	if n := len(st.Reads) - maxReads; n > 0 {
		st.Reads = slices.Delete(st.Reads, 0, n)
	}
}

// prune drops what late coverage no longer needs, and baselines beyond
// the watermark (a sliding read proves nothing past it until it moves).
func (st *State) prune(cfg Config, through time.Time) {
	lateTo := lateFrom(cfg, *st)
	if !st.Suspect.IsZero() && !st.Suspect.After(lateTo) {
		st.Suspect = time.Time{}
	}
	st.Reads = slices.DeleteFunc(st.Reads, func(r Read) bool {
		return !r.End.After(lateTo) || (st.Feed == nil && r.End.After(through))
	})
}

// newestFirst reports whether ts is listed newest first: sorted from the
// latest to the earliest, with at least two instants.
func newestFirst(ts []time.Time) bool {
	return !ts[0].Equal(ts[len(ts)-1]) && slices.IsSortedFunc(ts, func(a, b time.Time) int { return b.Compare(a) })
}

func isSorted(ts []time.Time) bool {
	return slices.IsSortedFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}

func last(ts []time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ParseState reads the planner's state from a stored sync cursor. A cursor
// of an older release keeps what it shares with this one (late coverage,
// the volume estimate); its open windows are read again from the
// watermark, which is always safe.
func ParseState(cursor string) (State, error) {
	var st State
	if cursor == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(cursor), &st); err != nil {
		return st, fmt.Errorf("stored sync cursor is corrupt: %w", err)
	}
	return st, nil
}

// LateCoverage reads, from a stored sync cursor, the instant through which
// late items are covered (ok is false before any coverage is known).
func LateCoverage(cursor string) (through time.Time, ok bool) {
	st, err := ParseState(cursor)
	if err != nil || st.LateTo.IsZero() {
		return time.Time{}, false
	}
	return st.LateTo, true
}

// NeedsCount reports whether Advance needs Page.Stored for the answer to
// req: the number of stored items with createdAt in the request's window
// once its page is stored, which alone proves a burst window read.
func NeedsCount(st State, req Request) bool {
	switch req.Kind {
	case Fresh:
		return st.Feed != nil && st.Feed.Burst
	case Rescan:
		return st.Late != nil && st.Late.Burst
	}
	return false
}

// PassKey is an entry's key in a pass (Page.Keys): the FNV-1a hash of its
// id (of a malformed item, of its SHA-256). Two items whose keys collide
// look like one item on two pages, which fails the pass; a collision never
// proves a pass that is not.
func PassKey(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()
}

// Pass is what a pass over a fixed window of a listing in no order keeps
// of the pages read so far. Such a listing may serve its items in another
// order on every request, so a page read by offset may repeat items of an
// earlier page and leave others on no page; but items only ever join a
// listing, so if the pass's pages hold no item twice and as many distinct
// items as upstream counts at the last page's request (meta.totalItems),
// every item visible then was read, whatever the order did (Pass.next).
type Pass struct {
	// Seen are the keys of the items on the pass's earlier pages, sorted,
	// four bytes each, little-endian.
	Seen []byte `json:"passSeen,omitempty"`
	// Items counts the distinct items on those pages.
	Items int `json:"passItems,omitempty"`
}

// passStep is what a page of a window of a listing in no order means for
// its pass.
type passStep int

const (
	passNextPage passStep = iota // read on: upstream counts more
	passProven                   // every item upstream counts was read
	passNarrow                   // more than maxPages: read a narrower window
	passFailed                   // the order moved: read a narrower window
)

// next decides the pass's step after page p, read with at most maxPages
// pages to a pass, and folds p into the pass when it reads on. Page 1
// alone proves its window as any page does (Page.complete). A later page
// proves it only by the count: distinct items reaching upstream's count,
// with no item on two pages (an item on two pages is upstream's order
// moving, or a row listed twice; the pass tells the two apart by nothing,
// so it fails either way). A page without keys proves nothing beyond
// itself.
func (ps Pass) next(p Page, maxPages int) (Pass, passStep) {
	req := p.Request
	if req.Page == 1 && p.complete(0) {
		return ps, passProven
	}
	keys := slices.Compact(slices.Sorted(slices.Values(p.Keys)))
	if len(keys) == 0 || len(keys) > p.distinct() {
		return ps, passNarrow
	}
	seen := ps.keys()
	for _, k := range keys {
		if _, found := slices.BinarySearch(seen, k); found {
			return ps, passFailed
		}
	}
	items := ps.Items + p.distinct()
	switch {
	case req.Page > 1 && req.Page >= p.TotalPages && items >= p.Total:
		return ps, passProven
	case !p.full():
		// The listing ended short of its count: items moved, or a copy
		// took an item's place.
		return ps, passFailed
	case req.Page >= maxPages && (maxPages == 1 || p.Total-items > p.perPage()):
		// (A pass that one more page would complete reads it: a window
		// that spilled by a few items is not read again.)
		return ps, passNarrow
	}
	return Pass{Seen: encodeKeys(slices.Sorted(slices.Values(append(seen, keys...)))), Items: items}, passNextPage
}

// keys decodes Seen.
func (ps Pass) keys() []uint32 {
	out := make([]uint32, len(ps.Seen)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(ps.Seen[4*i:])
	}
	return out
}

// encodeKeys encodes sorted keys as Pass.Seen.
func encodeKeys(keys []uint32) []byte {
	out := make([]byte, 4*len(keys))
	for i, k := range keys {
		binary.LittleEndian.PutUint32(out[4*i:], k)
	}
	return out
}

// passRetry is how many windows proven in one page follow the first
// failed pass before a pass is tried again; each further failure in a row
// doubles it, up to passRetry << passRetryDoublings. A failed pass costs
// its pages (two requests or so), which near capacity the watermark never
// wins back: a listing that moves its order on every request (or ties
// newest first) pays that once, then after 256 windows (about an hour
// near capacity), 512 more, and so on; one that moved its order once
// gets its passes back.
const (
	passRetry          = 256
	passRetryDoublings = 5
)

// passPages is how many pages a fixed window of a listing in no order is
// sized to: maxFixedPages, or one while passes wait after a failed one.
func (st State) passPages() int {
	if st.PassWait > 0 {
		return 1
	}
	return maxFixedPages
}

// pass takes the pass ps of a window of a listing in no order over page p
// (Pass.next) and records a pass proven or failed.
func (st *State) pass(ps Pass, p Page) (Pass, passStep) {
	next, step := ps.next(p, st.passPages())
	switch step {
	case passProven:
		st.passProven(p.Request.Page)
	case passFailed:
		st.passFailed()
	}
	return next, step
}

// passFailed records a failed pass.
func (st *State) passFailed() {
	st.PassFailed++
	st.PassWait = passRetry << min(st.PassFailed-1, passRetryDoublings)
}

// passProven records a window proven in pages pages.
func (st *State) passProven(pages int) {
	if pages > 1 {
		st.PassFailed, st.PassWait = 0, 0
	} else if st.PassWait > 0 {
		st.PassWait--
	}
}

// descTop is, for page 1 of a fixed window listed newest first, the
// second from which on it proves its window: page 1 holds the listing's
// first entries, so every item newer than its oldest item (newer than
// the last valid item before a stray copy, which may hold the place of an
// older one) that was visible at its request is on it, whatever order
// upstream gives ties. The window's end is whole seconds: the second
// returned is the one that instant falls in, rounded up, and the window
// [Start, it] is what is left to read. Zero: the page proves nothing so
// (not page 1, not full, not newest first with the evidence observeOrder
// asks of sorted pages, its last entry of unknown instant, or the proof
// reaching no lower than the window's end).
func descTop(p Page) time.Time {
	ts := p.CreatedAt
	switch {
	case p.Request.Page != 1 || !p.full() || len(ts) < 2 || p.Tail.IsZero() || (p.Stray && p.StrayAfter.IsZero()):
		return time.Time{}
	case !newestFirst(ts) || lnFactorial(distinctInstants(ts)) < orderEvidence:
		return time.Time{}
	}
	low := ts[len(ts)-1]
	if p.Stray {
		low = later(low, p.StrayAfter)
	}
	top := low.Truncate(time.Second)
	if top.Before(low) {
		top = top.Add(time.Second)
	}
	if !top.Before(p.Request.End) {
		return time.Time{}
	}
	return top
}

// observeDesc keeps State.Desc, on every full page 1: windows are read
// top down while such pages come newest first, with evidence (descTop),
// and end in a tie upstream need not order alike on the next request (a
// whole second, so a pass would break at its boundary) or passes fail.
// Top down, each page but the last reads half a second of items twice;
// newest first in sub-second instants, passes read none twice.
func (st *State) observeDesc(p Page) {
	if p.Request.Page == 1 && p.full() {
		st.Desc = !descTop(p).IsZero() && (st.PassWait > 0 || p.tiedTail())
	}
}

// descNext is the window left to read after page 1 of f's window, listed
// newest first, proved its top (descTop): from the window's start to the
// second the proof reaches, the watermark to move to the window's end
// (or further, f's own Top) once it is read. Nil when the page proves
// nothing so.
func descNext(f *Feed, p Page) *Feed {
	top := descTop(p)
	if top.IsZero() {
		return nil
	}
	req := p.Request
	at := p.At
	if !f.Top.IsZero() && !f.ReadAt.IsZero() {
		at = f.ReadAt
	}
	next := &Feed{Start: req.Start, End: top, Fixed: true, Page: 1, Top: later(f.Top, req.End), ReadAt: at, Apart: f.Apart || p.Apart}
	if !top.After(req.Start) {
		// Every item after the window's first second is proven: that
		// second is left. If it was the window, it holds more than a
		// page: a burst, proven by its count (advanceBurst); else it is
		// read as any window (a burst read where a page holds it would
		// take a row listed twice for an item unread, pass after pass).
		next.End = req.Start.Add(time.Second)
		next.Burst = !req.End.After(next.End)
	}
	return next
}

// closes is where the watermark moves once the window is read.
func (f *Feed) closes() time.Time {
	return later(f.End, f.Top)
}

// windowPages is how many pages a fresh fixed window of a listing in no
// order is sized to: passPages, or, while a page 1 listed newest first
// proves the window's top whatever passes do (State.Desc), maxFixedPages.
func (st State) windowPages() int {
	if st.Desc {
		return maxFixedPages
	}
	return st.passPages()
}
