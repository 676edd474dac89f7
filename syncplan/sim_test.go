package syncplan

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// simItem is one upstream item of the simulated feed.
type simItem struct {
	id      int
	created time.Time
	visible time.Time
	order   uint64
}

// sim drives Next and Advance against a simulated upstream in virtual
// time: the same budget, paging and visibility rules as the real one,
// so whole runs (hours of feed) take milliseconds and every step can be
// checked against the ground truth.
type sim struct {
	t       testing.TB
	cfg     Config
	items   []simItem // sorted by created
	ordered bool
	latency time.Duration
	// skew is how far upstream's clock runs behind the planner's: items
	// created at c are visible from c+skew on.
	skew time.Duration

	now     time.Time
	through time.Time
	st      State
	want    time.Time
	// manualEvery, when set, makes a manual sync want data through now
	// every manualEvery from nextManual on; wantAt is when the open want
	// was made and served how long each took to be covered.
	manualEvery time.Duration
	nextManual  time.Time
	wantAt      time.Time
	served      []time.Duration
	grants      []time.Time
	stored      map[int]bool
	checked     int       // items[:checked] are behind the watermark, checked
	pending     []simItem // late items behind the watermark, not stored yet

	// Adversarial upstream (TestSim_Adversarial): ties shuffled on every
	// request, a page size below our limit, and copies of an item on a
	// page, drawn from rng.
	rng         *rand.Rand
	shuffleTies bool
	pageCap     int
	pageDup     float64
	// pageDupMid puts pageDup's copies in place of a later item of the
	// page instead, not right after the original: a stray copy.
	pageDupMid bool
	// pageDupAmbiguous puts pageDupMid's copies of fresh pages right
	// after an entry of their own instant where the page has such a
	// place: in a tie served in no order that is what a row listed twice
	// looks like, so the page proves the displaced item's second. The
	// item is due by late coverage (it counts as late, visible from that
	// read on). Late pages draw none: late coverage's re-read is what
	// finds the item.
	pageDupAmbiguous bool
	dupRows          float64
	// unstable, for an unordered listing, is how it keeps its order
	// between requests (unorderedStable and the rest), drawn from orng
	// so that drawing it leaves rng's stream, and every older seed, as
	// it was.
	unstable int
	orng     *rand.Rand
	skipped  int
	lossRate float64
	lost     int

	requests map[Kind]int
	seen     map[string]int // identical fresh requests answered
	windows  map[string]int // pages answered per window and limit
	twice    int
	maxLag   time.Duration
	// maxLateLag is the most late coverage fell behind now.
	maxLateLag time.Duration
	lags       []time.Duration
}

// simFeed makes items at rate per second over [from, to), a share late
// (visible delay after creation).
func simFeed(rng *rand.Rand, from, to time.Time, rate float64, late float64, delay time.Duration) []simItem {
	n := int(rate * to.Sub(from).Seconds())
	items := make([]simItem, n)
	span := to.Sub(from)
	for i := range items {
		c := from.Add(time.Duration(rng.Int64N(int64(span/time.Millisecond))) * time.Millisecond)
		v := c
		if rng.Float64() < late {
			v = c.Add(delay)
		}
		items[i] = simItem{created: c, visible: v, order: rng.Uint64()}
	}
	return items
}

// newSim starts with the watermark where the sync's state starts: just
// before SYNC_START, which claims nothing (an item may sit at SYNC_START
// itself).
func newSim(t testing.TB, cfg Config, items []simItem, ordered bool, start time.Time) *sim {
	slices.SortFunc(items, func(a, b simItem) int { return a.created.Compare(b.created) })
	for i := range items {
		items[i].id = i
	}
	return &sim{t: t, cfg: cfg, items: items, ordered: ordered, latency: 30 * time.Millisecond,
		now: start, through: cfg.Start.Add(-time.Microsecond), stored: map[int]bool{}, requests: map[Kind]int{}, seen: map[string]int{}, windows: map[string]int{}}
}

// window is the distinct items of [s, e] visible now, by createdAt.
func (m *sim) window(s, e time.Time) []simItem {
	lo, _ := slices.BinarySearchFunc(m.items, s, func(it simItem, t time.Time) int { return it.created.Compare(t) })
	hi, _ := slices.BinarySearchFunc(m.items, e, func(it simItem, t time.Time) int {
		if it.created.After(t) {
			return 1
		}
		return -1
	})
	out := make([]simItem, 0, max(hi-lo, 0))
	for _, it := range m.items[lo:max(hi, lo)] {
		if !it.visible.After(m.now) {
			out = append(out, it)
		}
	}
	return out
}

// listing is upstream's answer order for [s, e] at now.
func (m *sim) listing(s, e time.Time) []simItem {
	out := m.order(m.window(s, e))
	if m.dupRows > 0 {
		// Rows listed twice, as a join can list them: every request alike,
		// counted in totalItems.
		var rows []simItem
		for _, it := range out {
			rows = append(rows, it)
			if it.order%1000 < uint64(m.dupRows*1000) {
				rows = append(rows, it)
			}
		}
		out = rows
	}
	return out
}

// How an unordered listing keeps its order between requests (sim.unstable).
const (
	// unorderedStable lists in one order, the same on every request.
	unorderedStable = iota
	// unorderedDesc lists newest first; ties, with shuffleTies, in a
	// fresh order on every request.
	unorderedDesc
	// unorderedShuffled lists in a fresh order on every request.
	unorderedShuffled
)

// order puts a window's items in upstream's answer order.
func (m *sim) order(out []simItem) []simItem {
	if m.ordered && m.shuffleTies {
		// ORDER BY created_at: no order among equal timestamps, and none
		// kept between requests.
		for i := 0; i < len(out); {
			j := i + 1
			for j < len(out) && out[j].created.Equal(out[i].created) {
				j++
			}
			m.rng.Shuffle(j-i, func(a, b int) { out[i+a], out[i+b] = out[i+b], out[i+a] })
			i = j
		}
	}
	switch {
	case !m.ordered && m.unstable == unorderedDesc:
		// ORDER BY created_at DESC: ties in a fresh order on every
		// request when shuffleTies.
		slices.SortFunc(out, func(a, b simItem) int { return b.created.Compare(a.created) })
		for i := 0; m.shuffleTies && i < len(out); {
			j := i + 1
			for j < len(out) && out[j].created.Equal(out[i].created) {
				j++
			}
			m.orng.Shuffle(j-i, func(a, b int) { out[i+a], out[i+b] = out[i+b], out[i+a] })
			i = j
		}
	case !m.ordered && m.unstable == unorderedShuffled:
		// No order at all, and a fresh one on every request.
		m.orng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	case !m.ordered:
		slices.SortFunc(out, func(a, b simItem) int {
			switch {
			case a.order < b.order:
				return -1
			case a.order > b.order:
				return 1
			}
			return 0
		})
	}
	return out
}

func (m *sim) inWindow(t time.Time) []time.Time {
	var out []time.Time
	for _, g := range m.grants {
		if g.After(t.Add(-m.cfg.BudgetWindow)) {
			out = append(out, g)
		}
	}
	return out
}

// step plans and performs one request (or waits); it reports false once
// the planner waits past until.
func (m *sim) step(until time.Time) bool {
	if m.manualEvery > 0 && !m.now.Before(m.nextManual) {
		if m.want.IsZero() {
			m.want, m.wantAt = m.now, m.now
		}
		for !m.now.Before(m.nextManual) {
			m.nextManual = m.nextManual.Add(m.manualEvery)
		}
	}
	in := Input{Now: m.now, Through: m.through, State: m.st, Want: m.want, Grants: m.inWindow(m.now)}
	req := Avoid(Next(m.cfg, in), func(r Request) bool { return m.windows[fmt.Sprint(r.Start, r.End, r.Limit)] > 0 })
	if req.Kind == Wait {
		if req.Wait <= 0 {
			m.t.Fatalf("at %s: wait %s", m.now, req.Wait)
		}
		m.now = m.now.Add(req.Wait)
		if m.manualEvery > 0 && m.now.After(m.nextManual) {
			m.now = m.nextManual // the sync signal wakes the planner
		}
		m.sample()
		return m.now.Before(until)
	}
	// Fresh pages wait for the budget; late work must fit it now.
	g := m.inWindow(m.now)
	if len(g) >= m.cfg.BudgetN {
		if req.Kind != Fresh {
			if m.rng == nil {
				m.t.Fatalf("at %s: %s planned with the budget full", m.now, req.Kind)
			}
			// Adversarial runs: FetchPage skips late work that finds no
			// slot free; counted, not an exactness failure (open).
			m.skipped++
			m.now = m.now.Add(m.latency)
			m.sample()
			return m.now.Before(until)
		}
		m.now = g[len(g)-m.cfg.BudgetN].Add(m.cfg.BudgetWindow).Add(time.Millisecond)
		m.sample()
	}
	m.grants = append(m.grants, m.now)
	if m.lossRate > 0 && m.rng.Float64() < m.lossRate {
		// The request counted upstream but its page never applied: a
		// 429, a 5xx, a timeout, an answer lost, or a worker killed
		// between fetch and apply (the apply is one transaction: all of
		// the page and its progress, or none). The grant stays spent;
		// the planner plans again from the stored state.
		m.lost++
		m.now = m.now.Add(m.latency)
		m.sample()
		return m.now.Before(until)
	}
	if req.EndAtFetch {
		req.End = edge(m.cfg, m.now)
		if req.End.Before(req.Start) {
			m.t.Fatalf("sliding end %s before start %s", req.End, req.Start)
		}
	}
	list := m.listing(req.Start, req.End)
	total := len(list)
	limit := req.Limit
	if m.pageCap > 0 {
		limit = min(limit, m.pageCap)
	}
	from := (req.Page - 1) * limit
	page := list[min(from, len(list)):min(from+limit, len(list))]
	if m.pageDup > 0 && len(page) > 1 && m.rng.Float64() < m.pageDup {
		// A copy of one of the page's items, as the mock's
		// MOCK_PAGE_DUPLICATES serves it: in a full page's last place (that
		// request serves the last item on no page), after a short page's
		// last entry. totalItems does not count the copy.
		i := m.rng.IntN(len(page) - 1)
		c := page[i]
		page = slices.Clone(page)
		var ambiguous []int
		if m.pageDupAmbiguous && req.Kind == Fresh {
			for j := i + 2; j < len(page); j++ {
				if page[j-1].created.Equal(c.created) && page[j].id != c.id {
					ambiguous = append(ambiguous, j)
				}
			}
		}
		switch {
		case len(ambiguous) > 0:
			j := ambiguous[m.rng.IntN(len(ambiguous))]
			d := &m.items[page[j].id]
			d.visible = later(d.visible, m.now)
			page[j] = c
		case m.pageDupMid && slices.ContainsFunc(page[i+1:len(page)-1], func(it simItem) bool { return !it.created.Equal(c.created) }):
			// In place of a later item, after one of another instant (in
			// a tie served in no order a copy is indistinguishable from a
			// row listed twice): that request serves it on no page.
			for {
				j := i + 2 + m.rng.IntN(len(page)-i-2)
				if !page[j-1].created.Equal(c.created) {
					page[j] = c
					break
				}
			}
		case len(page) == limit:
			page[len(page)-1] = c
		default:
			page = append(page, c)
		}
	}
	distinct := map[int]bool{}
	for _, it := range page {
		distinct[it.id] = true
	}
	p := Page{Request: req, At: m.now, Total: total, TotalPages: (total + limit - 1) / limit, PerPage: limit, Count: len(page), Distinct: len(distinct)}
	p.Stray, p.StrayAfter, p.StrayID, p.StrayGap = simStray(page)
	p.Apart = simApart(page)
	if len(page) > 0 {
		p.Head, p.Tail = page[0].created, page[len(page)-1].created
		p.HeadTie = simTies(page)
		rev := slices.Clone(page)
		slices.Reverse(rev)
		p.TailTie = simTies(rev)
		slices.Reverse(p.TailTie)
	}
	onPage := map[int]bool{}
	for _, it := range page {
		if onPage[it.id] {
			continue // the decoder keeps each id once (Page.CreatedAt)
		}
		onPage[it.id] = true
		p.CreatedAt = append(p.CreatedAt, it.created)
		p.Keys = append(p.Keys, PassKey(strconv.Itoa(it.id)))
		if req.Kind != Probe {
			if m.stored[it.id] {
				p.Repeats++
			}
			m.stored[it.id] = true
		}
	}
	if NeedsCount(m.st, req) {
		for _, it := range m.window(req.Start, req.End) {
			if m.stored[it.id] {
				p.Stored++
			}
		}
	}
	m.requests[req.Kind]++
	// Any request answered twice, whatever it was for: upstream (and
	// the mock's record) cannot tell a re-scan from a fresh read.
	key := fmt.Sprint(req.Start, req.End, req.Page, req.Limit)
	m.windows[fmt.Sprint(req.Start, req.End, req.Limit)]++
	if m.seen[key]++; m.seen[key] > 1 {
		m.twice++
		if m.rng == nil {
			m.t.Logf("at %s: %s request %s answered twice", m.now, req.Kind, key)
		}
	}
	if os.Getenv("SIM_TRACE") != "" {
		m.t.Logf("%s %s [%s,%s] p%d n=%d tot=%d stored=%d -> ", m.now.Format("15:04:05.000"), req.Kind, req.Start.Format("15:04:05"), req.End.Format("15:04:05"), req.Page, p.Count, p.Total, p.Stored)
	}
	m.st, m.through = Advance(m.cfg, m.through, m.st, p)
	if os.Getenv("SIM_TRACE") != "" {
		m.t.Logf("   through %s lateTo %s late %+v feed %+v unordered %v rate %.2f passFailed %d wait %d", m.through.Format("15:04:05"), m.st.LateTo.Format("15:04:05"), m.st.Late, m.st.Feed, m.st.Unordered, m.st.Rate, m.st.PassFailed, m.st.PassWait)
	}
	if m.rng == nil || m.rng.IntN(8) == 0 {
		// Adversarial runs store and reload the state as the database
		// does at one step in eight (seeded), for speed.
		m.st = roundTrip(m.t, m.st)
	}
	m.check()
	m.now = m.now.Add(m.latency)
	if !m.want.IsZero() && !m.through.Before(m.want) {
		m.served = append(m.served, m.now.Sub(m.wantAt))
		m.want = time.Time{}
	}
	m.sample()
	return m.now.Before(until)
}

// simStray is upstream.Page's Stray, StrayAfter and StrayID of a page's
// entries: whether a copy sits elsewhere than right after its original or
// another item of its instant, the createdAt of the last distinct item
// before the first such copy, the copy's id and its distance in entries
// from its original.
func simStray(page []simItem) (bool, time.Time, string, int) {
	seen := map[int]int{}
	var after time.Time
	for i, it := range page {
		if orig, ok := seen[it.id]; ok {
			if prev := page[i-1]; prev.id != it.id && !prev.created.Equal(it.created) {
				return true, after, strconv.Itoa(it.id), i - orig
			}
			continue
		}
		seen[it.id] = i
		after = it.created
	}
	return false, time.Time{}, "", 0
}

// simApart is upstream.Page's Apart: a copy not right after its original.
func simApart(page []simItem) bool {
	seen := map[int]bool{}
	for i, it := range page {
		if seen[it.id] && page[i-1].id != it.id {
			return true
		}
		seen[it.id] = true
	}
	return false
}

// simTies is upstream.Page's HeadTie of entries: the ids of the leading
// entries at the first entry's instant, nil when a copy is among them,
// they take the whole page, or they are more than upstream.MaxTie.
func simTies(entries []simItem) []string {
	var ids []string
	seen := map[int]bool{}
	for _, it := range entries {
		switch {
		case seen[it.id]:
			return nil
		case !it.created.Equal(entries[0].created):
			return ids
		case len(ids) == 16:
			return nil
		}
		seen[it.id] = true
		ids = append(ids, strconv.Itoa(it.id))
	}
	return nil
}

func (m *sim) sample() {
	lag := m.now.Sub(m.through)
	m.lags = append(m.lags, lag)
	m.maxLag = max(m.maxLag, lag)
	m.maxLateLag = max(m.maxLateLag, m.now.Sub(lateFrom(m.cfg, m.st)))
}

// check asserts the invariants: every item visible on time (within the
// skew) and created by the watermark is stored; every item created by late
// coverage and visible within Overlap is stored. Items behind the
// watermark are checked once; late ones wait in a list until stored.
func (m *sim) check() {
	m.t.Helper()
	for ; m.checked < len(m.items) && !m.items[m.checked].created.After(m.through); m.checked++ {
		it := m.items[m.checked]
		switch {
		case m.stored[it.id]:
		case !it.visible.After(it.created.Add(m.skew)):
			m.t.Fatalf("at %s: item created %s (on time) not stored, watermark %s", m.now, it.created, m.through)
		default:
			m.pending = append(m.pending, it)
		}
	}
	lateTo := lateFrom(m.cfg, m.st)
	m.pending = slices.DeleteFunc(m.pending, func(it simItem) bool { return m.stored[it.id] })
	for _, it := range m.pending {
		if !it.created.After(lateTo) && !it.visible.After(it.created.Add(m.cfg.Overlap)) && !it.visible.After(m.now) {
			m.t.Fatalf("at %s: item created %s visible %s not stored, late coverage %s", m.now, it.created, it.visible, lateTo)
		}
	}
}

// run steps until the virtual clock passes until.
func (m *sim) run(until time.Time) {
	for m.step(until) {
	}
}

// settle steps until every item is stored and late coverage has passed
// stop (what a quiet upstream leads to), or the clock passes until.
func (m *sim) settle(stop, until time.Time) {
	for m.step(until) {
		if len(m.stored) == len(m.items) && !lateFrom(m.cfg, m.st).Before(stop) {
			return
		}
	}
}

// requireAllStored fails the test, naming the first, unless every item of
// the feed is stored.
func (m *sim) requireAllStored() {
	m.t.Helper()
	n := m.missing()
	if n == 0 {
		return
	}
	m.t.Errorf("%d items never stored (watermark %s, late coverage %s, now %s)", n, m.through, lateFrom(m.cfg, m.st), m.now)
	for _, it := range m.items {
		if !m.stored[it.id] {
			m.t.Logf("missing: created %s visible %s", it.created, it.visible)
			return
		}
	}
}

// sustained is the share of capacity in items per fresh request.
func (m *sim) missing() int {
	n := 0
	for _, it := range m.items {
		if !m.stored[it.id] {
			n++
		}
	}
	return n
}

// roundTrip stores and reloads the state as the database does.
func roundTrip(t testing.TB, st State) State {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out State
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
