package mockapi

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// DateLayout is the upstream API's date parameter format, always UTC.
const DateLayout = "2006-01-02 15:04:05"

// handleTransactions serves GET /transactions.
//
// The window is inclusive at both ends and compared at full (millisecond)
// precision: startDate S and endDate E select items with
// S.000 <= createdAt <= E.000. So an item at 12:00:59.500 is selected by a
// window ending 12:01:00 but not by one ending 12:00:59, and an item at
// exactly E.000 is selected by both the window ending at E and the one
// starting at E — consumers must dedupe by id.
//
// Only items visible now are served: createdAt <= now, and for late items
// createdAt + LateDelay <= now. Items are listed in a stable, seeded, non-
// chronological order, so pages of the same window agree between calls
// (until new items become visible, which reshuffles positions as it would
// upstream); with Config.Ordered, by createdAt (ties in a seeded order), as
// upstreams commonly list them.
//
// The Config can make it harsher still: ties in a fresh order on every
// request (ShuffleTies), whole-second createdAt (WholeSeconds), pages
// smaller than asked (PageCap), an item twice on one page (PageDuplicates),
// an upstream clock behind ours (ClockSkew: "now" above is the data clock),
// and an admitted request closed unanswered (DropRate).
func (s *Server) handleTransactions(w http.ResponseWriter, r *http.Request) {
	s.stats.txReceived.Add(1)
	ok, retry := s.limiter.allow(s.now())
	if !ok {
		s.stats.txRateLimited.Add(1)
		secs := int64(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeError(w, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("rate limit of %d requests per %s exceeded", s.cfg.RateLimit, s.cfg.RateWindow))
		return
	}
	s.stats.txAccepted.Add(1)

	var slow, fail bool
	var pr prng // this request's draws for DropRate, ShuffleTies, PageDuplicates
	// Every draw happens for every admitted request, so the sequence of
	// faults does not depend on which ones fired before.
	s.draw(func(g *prng) {
		slow, fail = g.chance(s.cfg.SlowRate), g.chance(s.cfg.FailRate)
		pr = prng{s.pageRng.next()}
	})
	if pr.chance(s.cfg.DropRate) {
		// Before any injected fault is used: a dropped request consumes
		// budget but nothing else.
		s.stats.txDropped.Add(1)
		dropConnection(w)
		return
	}
	fault, faulty := s.takeFault(FaultTransactions)
	var delay time.Duration
	if faulty {
		delay += fault.Delay
	}
	if slow {
		s.stats.txSlow.Add(1)
		delay += s.cfg.SlowDelay
	}
	if !sleep(r.Context(), delay) {
		s.stats.txAbandoned.Add(1)
		return // the client gave up; nobody reads the answer
	}
	if faulty && fault.Status != 0 {
		s.stats.txFailed.Add(1)
		s.countInjected(fault.Status)
		if fault.Status == http.StatusTooManyRequests || fault.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, fault.Status, statusCode(fault.Status), "injected fault")
		return
	}
	if fail {
		s.stats.txFailed.Add(1)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "upstream temporarily unavailable")
		return
	}

	q, err := parseListQuery(r)
	if err != nil {
		s.stats.txBadRequest.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	body, n, duplicated := s.page(q, s.dataNow().UnixMilli(), &pr)
	if faulty && fault.Truncate {
		s.stats.txFailed.Add(1)
		s.stats.txTruncated.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	s.stats.txOK.Add(1)
	if duplicated {
		s.stats.txPageDuplicates.Add(1)
	}
	s.answeredMu.Lock()
	if s.answered == nil {
		s.answered = map[listQuery]int{}
	}
	s.answered[q]++
	if len(s.answers) == maxAnswers {
		// A mock left running keeps the newest half.
		s.answers = append(s.answers[:0], s.answers[maxAnswers/2:]...)
		s.trimmed += maxAnswers / 2
	}
	s.answers = append(s.answers, Answer{At: time.Now(), Start: time.UnixMilli(q.startMs).UTC(), End: time.UnixMilli(q.endMs).UTC(),
		Page: q.page, Limit: q.limit, Items: n})
	s.answeredMu.Unlock()
	writeRaw(w, http.StatusOK, body)
}

// dropConnection closes the client's connection without writing a byte, as
// a server that crashes (or a proxy that gives up) after counting the
// request does. Without a hijackable connection (HTTP/2), aborting the
// handler resets the stream instead.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

type listQuery struct {
	startMs, endMs int64
	page, limit    int
}

func parseListQuery(r *http.Request) (listQuery, error) {
	v := r.URL.Query()
	var q listQuery
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"startDate", &q.startMs}, {"endDate", &q.endMs}} {
		raw := v.Get(p.name)
		if raw == "" {
			return q, fmt.Errorf("%s is required (format %q, UTC)", p.name, DateLayout)
		}
		t, err := time.Parse(DateLayout, raw)
		if err != nil {
			return q, fmt.Errorf("%s %q is not a date in the format %q", p.name, raw, DateLayout)
		}
		*p.dst = t.UnixMilli()
	}
	if q.startMs > q.endMs {
		return q, fmt.Errorf("startDate must not be after endDate")
	}
	var err error
	if q.page, err = positiveParam(v.Get("page"), "page", 1); err != nil {
		return q, err
	}
	if q.limit, err = positiveParam(v.Get("limit"), "limit", DefaultPageSize); err != nil {
		return q, err
	}
	q.limit = min(q.limit, MaxPageSize) // capped, not rejected, as upstream does
	return q, nil
}

func positiveParam(raw, name string, def int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s %q is not a positive integer", name, raw)
	}
	return n, nil
}

// page renders one page of the listing as the exact upstream JSON. Items
// are the stored raw bytes, so amounts never pass through float64. r is the
// request's generator for ShuffleTies and PageDuplicates; duplicated
// reports whether the page carries a copy.
func (s *Server) page(q listQuery, nowMs int64, r *prng) (body []byte, n int, duplicated bool) {
	s.ensureLive(nowMs)
	s.mu.RLock()
	defer s.mu.RUnlock()
	es := s.gen.entries
	idx := s.listing(es, q.startMs, q.endMs, nowMs)

	perPage := q.limit
	if s.cfg.PageCap > 0 {
		perPage = min(perPage, s.cfg.PageCap)
	}
	total := len(idx)
	totalPages := (total + perPage - 1) / perPage
	// items may be part of idx, which the cache shares: never modify it in
	// place.
	var items []int32
	if q.page <= totalPages { // also keeps (page-1)*perPage from overflowing
		from := (q.page - 1) * perPage
		to := min(from+perPage, total)
		if s.cfg.Ordered && s.cfg.ShuffleTies {
			items = shuffleTies(es, idx, from, to, r)
		} else {
			items = idx[from:to]
		}
	}
	if r.chance(s.cfg.PageDuplicates) {
		items, duplicated = duplicateOnPage(es, items, perPage, r)
	}
	size := 128
	for _, i := range items {
		size += len(es[i].raw) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"items":[`...)
	for n, i := range items {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, es[i].raw...)
	}
	b = append(b, `],"meta":{"totalItems":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"itemCount":`...)
	b = strconv.AppendInt(b, int64(len(items)), 10)
	b = append(b, `,"itemsPerPage":`...)
	b = strconv.AppendInt(b, int64(perPage), 10)
	b = append(b, `,"totalPages":`...)
	b = strconv.AppendInt(b, int64(totalPages), 10)
	b = append(b, `,"currentPage":`...)
	b = strconv.AppendInt(b, int64(q.page), 10)
	return append(b, "}}"...), len(items), duplicated
}

// shuffleTies returns the listing positions [from, to) of idx (sorted by
// createdAt) after shuffling, with r, every run of equal createdAt that
// reaches into them, as a SQL database may order ties differently on every
// query. Only those runs are copied and shuffled, so a page costs its size
// plus the runs at its edges, not the window's size.
func shuffleTies(es []entry, idx []int32, from, to int, r *prng) []int32 {
	lo, hi := from, to
	for lo > 0 && es[idx[lo-1]].created == es[idx[from]].created {
		lo--
	}
	for hi < len(idx) && es[idx[hi]].created == es[idx[to-1]].created {
		hi++
	}
	seg := slices.Clone(idx[lo:hi])
	for a := 0; a < len(seg); {
		b := a + 1
		for b < len(seg) && es[seg[b]].created == es[seg[a]].created {
			b++
		}
		for i := b - 1; i > a; i-- { // Fisher–Yates over seg[a:b]
			j := a + int(r.intn(int64(i-a+1)))
			seg[i], seg[j] = seg[j], seg[i]
		}
		a = b
	}
	return seg[from-lo : to-lo]
}

// duplicateOnPage returns a copy of items with one of them served twice
// (Config.PageDuplicates): right after itself or at the page's end, where
// the copy takes a position (a full page loses its last item to it, a
// shorter page grows by one), or, a third of the time, in place of a
// later item that is not right after it nor after another item of its
// instant (that item is served on no page by this request). ok is false, and items returned as they are, when no
// item can be copied (an empty page, or a full page of one).
func duplicateOnPage(es []entry, items []int32, perPage int, r *prng) (out []int32, ok bool) {
	if v := r.intn(3); v == 2 && len(items) >= 3 {
		// Where the entry before is of another instant than the copy:
		// among items of its own instant, in ties served in no order, a
		// copy is indistinguishable from a row listed twice.
		i := int(r.intn(int64(len(items) - 2)))
		var at []int
		for j := i + 2; j < len(items); j++ {
			if es[items[j-1]].created != es[items[i]].created {
				at = append(at, j)
			}
		}
		if len(at) > 0 {
			out = slices.Clone(items)
			out[at[r.intn(int64(len(at)))]] = out[i]
			return out, true
		}
	}
	keep := len(items)
	if keep >= perPage {
		keep--
	}
	if keep < 1 {
		return items, false
	}
	out = make([]int32, keep, keep+1)
	copy(out, items[:keep])
	i := int(r.intn(int64(keep)))
	if r.intn(2) == 0 {
		out = slices.Insert(out, i+1, out[i])
	} else {
		out = append(out, out[i])
	}
	return out, true
}

// cachedListing remembers the ordered listing of one window for one set of
// visible items, so paging through a window of 100,000 items sorts it once.
type cachedListing struct {
	startMs, endMs int64
	count          int
	fingerprint    uint64
	idx            []int32
}

const listingCacheSize = 16

// listing returns the indexes (into es) of the items in [startMs, endMs]
// visible at nowMs, in listing order. The caller holds s.mu for reading.
//
// Entries are sorted by createdAt, so the window is found by binary search.
// The visible set is identified by its size and a sum of per-item hashes,
// so the cached order is reused exactly while no item appears (or, with a
// test clock moved back, disappears) in the window.
func (s *Server) listing(es []entry, startMs, endMs, nowMs int64) []int32 {
	lo := sort.Search(len(es), func(i int) bool { return es[i].created >= startMs })
	hi := sort.Search(len(es), func(i int) bool { return es[i].created > endMs })
	count, fp := 0, uint64(0)
	for i := lo; i < hi; i++ {
		if es[i].visible <= nowMs {
			count++
			fp += mix(es[i].order)
		}
	}
	s.cacheMu.Lock()
	for n, c := range s.cache {
		if c.startMs == startMs && c.endMs == endMs && c.count == count && c.fingerprint == fp {
			// Move to the front: a client pages through one window at a time.
			copy(s.cache[1:n+1], s.cache[:n])
			s.cache[0] = c
			s.cacheMu.Unlock()
			return c.idx
		}
	}
	s.cacheMu.Unlock()

	type keyed struct {
		order uint64
		i     int32
	}
	ks := make([]keyed, 0, count)
	for i := lo; i < hi; i++ {
		if es[i].visible <= nowMs {
			ks = append(ks, keyed{es[i].order, int32(i)})
		}
	}
	switch {
	case !s.cfg.Ordered:
		slices.SortFunc(ks, func(a, b keyed) int { return cmp.Compare(a.order, b.order) })
	case s.cfg.NewestFirst:
		slices.Reverse(ks)
	}
	idx := make([]int32, len(ks))
	for n, k := range ks {
		idx[n] = k.i
	}

	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cache = append([]cachedListing{{startMs, endMs, count, fp, idx}}, s.cache...)
	if len(s.cache) > listingCacheSize {
		s.cache = s.cache[:listingCacheSize]
	}
	return idx
}

// ensureLive generates every live minute that has begun by nowMs.
func (s *Server) ensureLive(nowMs int64) {
	if s.cfg.LiveRate == 0 {
		return
	}
	through := liveMinutesThrough(s.startMs, nowMs)
	s.mu.RLock()
	done := s.liveNext > through
	s.mu.RUnlock()
	if done {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.liveNext <= through {
		if s.cfg.LiveFor <= 0 || time.Duration(s.liveNext)*time.Minute < s.cfg.LiveFor {
			s.gen.generateLiveMinute(s.startMs, s.liveNext)
		}
		s.liveNext++
	}
}

// limiter is the upstream budget: at most n accepted requests in any
// sliding window of length window, shared by every client. It also keeps
// the time of every request, so tests can check a client's pacing.
type limiter struct {
	n      int
	window time.Duration

	mu       sync.Mutex
	received []int64 // Unix nanoseconds, sorted
	accepted []int64 // Unix nanoseconds, sorted
}

// allow records a request at now and reports whether it fits the budget.
// A rejected request consumes nothing; the returned duration is how long
// until the oldest request in the window leaves it and a slot frees.
//
// The window is half-open, (now-window, now]: a request accepted at t frees
// its slot at exactly t+window. So a client spacing 5/1m requests exactly
// 12 s apart is never rejected.
func (l *limiter) allow(now time.Time) (bool, time.Duration) {
	t := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received = insertSorted(l.received, t)
	if l.n > 0 {
		w := l.window.Nanoseconds()
		lo := sort.Search(len(l.accepted), func(i int) bool { return l.accepted[i] > t-w })
		hi := sort.Search(len(l.accepted), func(i int) bool { return l.accepted[i] > t })
		if hi-lo >= l.n {
			return false, time.Duration(l.accepted[hi-l.n] + w - t)
		}
	}
	l.accepted = insertSorted(l.accepted, t)
	return true, 0
}

// insertSorted appends t, keeping ts sorted even if a test clock goes back.
func insertSorted(ts []int64, t int64) []int64 {
	i := len(ts)
	for i > 0 && ts[i-1] > t {
		i--
	}
	return slices.Insert(ts, i, t)
}

func (l *limiter) inWindow(now time.Time) int {
	if l.n <= 0 {
		return 0
	}
	t, w := now.UnixNano(), l.window.Nanoseconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	lo := sort.Search(len(l.accepted), func(i int) bool { return l.accepted[i] > t-w })
	hi := sort.Search(len(l.accepted), func(i int) bool { return l.accepted[i] > t })
	return hi - lo
}

// maxInWindow returns the largest number of times in any window (t-d, t].
func maxInWindow(ts []int64, d time.Duration) int {
	best, i := 0, 0
	for j := range ts {
		for i <= j && ts[i] <= ts[j]-d.Nanoseconds() {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

// MaxAcceptedInWindow returns the most GET /transactions requests the rate
// limit admitted within any window of length d (half-open, like the
// limiter's). With d = the configured window it can never exceed the
// limit; use it with other d, or MaxReceivedInWindow, to judge a client.
func (s *Server) MaxAcceptedInWindow(d time.Duration) int {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	return maxInWindow(s.limiter.accepted, d)
}

// MaxReceivedInWindow returns the most GET /transactions requests received
// (admitted or not) within any window of length d. A client that keeps to
// the budget has MaxReceivedInWindow(window) <= limit and never sees a 429.
func (s *Server) MaxReceivedInWindow(d time.Duration) int {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	return maxInWindow(s.limiter.received, d)
}

// PagesAnsweredTwice counts the GET /transactions requests answered with
// 200 for a request (window, page, limit) answered before: pages a client
// fetched twice.
func (s *Server) PagesAnsweredTwice() int {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	n := 0
	for _, k := range s.answered {
		n += k - 1
	}
	return n
}

// AnswerCount returns how many pages were answered: Answers numbers them
// from 0 in that order.
func (s *Server) AnswerCount() int {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	return s.trimmed + len(s.answers)
}

// AnswersFrom returns the pages answered from the n-th on (numbered as
// AnswerCount counts), less any no longer kept.
func (s *Server) AnswersFrom(n int) []Answer {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	return slices.Clone(s.answers[min(max(n-s.trimmed, 0), len(s.answers)):])
}

// Answer is one GET /transactions request answered with a page: when (the
// wall clock), the query, and the entries the page held.
type Answer struct {
	At, Start, End     time.Time
	Page, Limit, Items int
}

// maxAnswers bounds the answers kept (Answers).
const maxAnswers = 1 << 16

// Answers returns the pages answered, oldest first: every one, or the
// newest when more than maxAnswers were.
func (s *Server) Answers() []Answer {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	return slices.Clone(s.answers)
}

// DroppedRequests counts the GET /transactions requests the rate limit
// admitted (they consumed budget) and that were then closed without an
// answer (Config.DropRate).
func (s *Server) DroppedRequests() int {
	return int(s.stats.txDropped.Load())
}

// PagesWithDuplicate counts the pages served with one of their items twice
// (Config.PageDuplicates).
func (s *Server) PagesWithDuplicate() int {
	return int(s.stats.txPageDuplicates.Load())
}

// TruncatedPages counts the GET /transactions answers cut off mid-body by a
// Truncate fault: the client got a 200 and half a page.
func (s *Server) TruncatedPages() int {
	return int(s.stats.txTruncated.Load())
}

// AbandonedRequests counts the admitted GET /transactions requests whose
// client gave up while the answer was delayed (an injected Delay or
// SlowRate), so nothing was answered: a Delay beyond the client's timeout
// is counted here once the client times out.
func (s *Server) AbandonedRequests() int {
	return int(s.stats.txAbandoned.Load())
}

// countInjected records one answer with an injected fault's status.
func (s *Server) countInjected(status int) {
	s.injectedMu.Lock()
	defer s.injectedMu.Unlock()
	if s.injected == nil {
		s.injected = map[int]int64{}
	}
	s.injected[status]++
}

// InjectedStatuses counts, by status, the GET /transactions answers that
// carried an injected fault's status (429s and 5xx the mock served on
// demand, apart from its rate limit's own 429s and FailRate's 503s).
func (s *Server) InjectedStatuses() map[int]int {
	s.injectedMu.Lock()
	defer s.injectedMu.Unlock()
	out := make(map[int]int, len(s.injected))
	for status, n := range s.injected {
		out[status] = int(n)
	}
	return out
}

// RequestTimes returns the times of every GET /transactions request
// received and of those the rate limit accepted, oldest first.
func (s *Server) RequestTimes() (received, accepted []time.Time) {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	conv := func(ts []int64) []time.Time {
		out := make([]time.Time, len(ts))
		for i, t := range ts {
			out[i] = time.Unix(0, t).UTC()
		}
		return out
	}
	return conv(s.limiter.received), conv(s.limiter.accepted)
}
