package syncplan

import (
	"encoding/json"
	"fmt"
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
	// Count is how many items the page held as served: valid, malformed
	// and repeated alike.
	Count int `json:"count"`
	// CreatedAt are the valid items' createdAt, in upstream's order.
	CreatedAt []time.Time `json:"createdAt,omitempty"`
	// Repeats counts the page's items that were stored before it (the
	// database found their ids). In a sorted listing, an item read before
	// on the next page means a late item was inserted behind the pages
	// already read, which makes the window's count no longer a baseline.
	Repeats int `json:"repeats,omitempty"`
}

// Advance returns the progress record and watermark once page p is stored.
// The caller stores them in the same database transaction as the page.
func Advance(cfg Config, through time.Time, st State, p Page) (State, time.Time) {
	st = st.clone()
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
	return c
}

// advanceSliding moves a sliding window (upstream sorted by createdAt)
// past one page. A page that does not reach the window's end proves every
// item before its last item's second is read, so the watermark moves page
// by page; one that reaches the end proves the whole window is read.
func advanceSliding(cfg Config, through time.Time, st *State, p Page) time.Time {
	req := p.Request
	f := st.Feed
	if f == nil || !f.Start.Equal(req.Start) || f.Page != req.Page {
		f = &Feed{Start: req.Start, Page: req.Page, ReadAt: p.At}
	}
	if f.ReadAt.IsZero() {
		f.ReadAt = p.At
	}
	readAt := f.ReadAt
	// A page of many items in createdAt order comes from a listing in
	// that order (by chance it would not be). Pages need not join up: a
	// late item inserted before the page boundary pushes items already
	// read onto the next page, which is harmless (they are duplicates).
	sorted := isSorted(p.CreatedAt)
	evidence := len(p.CreatedAt) >= minOrderEvidence
	more := p.Total > req.Page*cfg.PageSize
	st.observeRate(cfg, f, req.Start, req.End, p.Total)
	old := through
	// The window's count is a probe baseline while every item behind the
	// pages read is stored: page 1 has nothing behind it; a later page
	// must repeat no more than what was on it at its last read.
	exact := req.Page == 1 || (f.Exact && p.Repeats <= f.Count)
	base := func() {
		if exact {
			st.addRead(Read{Start: req.Start, End: req.End, Total: p.Total, At: p.At})
		}
	}
	switch {
	case !more && (sorted || req.Page == 1 || !evidence):
		// The window is read to its end. Keep its start, so later reads
		// extend one baseline; a full last page moves on to the next.
		through = later(through, req.End)
		next, count := req.Page, p.Count
		if p.Count >= cfg.PageSize {
			next, count = next+1, 0
		}
		*f = Feed{Start: req.Start, End: req.End, Page: next, Total: p.Total, ReadAt: f.ReadAt, Exact: exact, Count: count}
		base()
		if next > rebaseAfter {
			f = nil // the next window starts at the watermark
		}
	case sorted && evidence && p.Count >= cfg.PageSize:
		sec := last(p.CreatedAt).Truncate(time.Second)
		through = later(through, sec.Add(-time.Second))
		*f = Feed{Start: req.Start, End: req.End, Page: req.Page + 1, Total: p.Total, ReadAt: f.ReadAt, Exact: exact}
		base()
		if f.Page > rebaseAfter && sec.After(req.Start) {
			// Every item before sec is read: start over there.
			f = &Feed{Start: sec, Page: 1}
		}
	default:
		// Upstream is not sorted (or served a short page mid-window): the
		// watermark moves only by whole fixed windows from now on, paged by
		// upstream's own totalPages. A first page is the first page of a
		// fixed window; later pages proved nothing beyond the watermark.
		st.Unordered = true
		st.Late = nil // a re-scan paged in the old order starts again
		if req.Page == 1 {
			f = &Feed{Start: req.Start, End: req.End, Fixed: true, Page: 2, Total: p.Total, ReadAt: p.At}
		} else {
			f = nil
		}
	}
	st.Feed = f
	st.coverFresh(cfg, old, through, readAt)
	return through
}

// advanceFixed moves a fixed window past one page; the watermark moves
// when its last page is read.
func advanceFixed(cfg Config, through time.Time, st *State, p Page) time.Time {
	req := p.Request
	f := st.Feed
	if f == nil || !f.Fixed || !f.Start.Equal(req.Start) || !f.End.Equal(req.End) || f.Page != req.Page {
		f = &Feed{Start: req.Start, End: req.End, Fixed: true, Page: req.Page, Sorted: true}
	}
	if req.Page == 1 || f.ReadAt.IsZero() {
		f.Total, f.ReadAt = p.Total, p.At
	}
	f.Sorted = f.Sorted && isSorted(p.CreatedAt)
	if req.Page < p.TotalPages {
		f.Page = req.Page + 1
		st.Feed = f
		return through
	}
	old := through
	through = later(through, req.End)
	st.observeRate(cfg, nil, req.Start, req.End, p.Total)
	st.addRead(Read{Start: req.Start, End: req.End, Total: f.Total, At: f.ReadAt})
	if f.Sorted && req.Page >= 2 && p.Total > cfg.PageSize && cfg.PageSize >= minOrderEvidence {
		// Two or more pages, all in createdAt order: upstream sorts again.
		st.Unordered = false
		st.Late = nil
	}
	st.Feed = nil
	st.coverFresh(cfg, old, through, f.ReadAt)
	return through
}

// coverFresh extends late coverage over instants a fresh window saw at
// least Overlap after they happened (a backfill covers itself): every item
// that was visible when the window's first page was read (at) is stored
// once the watermark passes it.
func (st *State) coverFresh(cfg Config, old, through, at time.Time) {
	if lateFrom(cfg, *st).Before(old) {
		return // a gap before this window still needs covering
	}
	if c := at.Add(-cfg.Overlap).Truncate(time.Second); c.After(st.LateTo) {
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

func advanceRescan(cfg Config, st *State, p Page) {
	req := p.Request
	if req.Page == 1 {
		st.LateRounds++
	}
	sorted, evidence := isSorted(p.CreatedAt), len(p.CreatedAt) >= minOrderEvidence
	if evidence && sorted == st.Unordered {
		// Upstream changed its order: pages read before the change do not
		// join up with pages read after it. Read the window again.
		st.Unordered = !sorted
		st.Late = nil
		return
	}
	if req.Page < p.TotalPages {
		st.Late = &Window{Start: req.Start, End: req.End, Page: req.Page + 1}
		if sorted && evidence && p.Count >= cfg.PageSize {
			// As for fresh pages: every item before the last item's second
			// that was visible at the first page is read.
			if c := last(p.CreatedAt).Truncate(time.Second).Add(-time.Second); c.After(st.LateTo) && !c.After(req.End) {
				st.LateTo = c
			}
		}
		return
	}
	st.Late = nil
	st.LateTo = later(st.LateTo, req.End)
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
