package web

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sync/singleflight"

	"scorekeeper"
)

// Cache is a scorekeeper.Store in front of another: it keeps summaries,
// users' ledgers and payout listings in memory so most reads do not touch
// the database. Correct with any number of web processes: each process
// follows the store's change feed (Store.Changes) every PollInterval and
// evicts exactly the users a committed write changed; a
// listing is kept only while no write at all has committed. So a process
// serves nothing older than the last commit it has seen, at most one poll
// (100 ms) behind, and pairs cached data with the watermark (X-Data-As-Of)
// of the same snapshot; CatchUp closes even that gap on demand. When
// polling fails for longer than MaxPollAge the cache stands aside and
// every read goes to the database (and fails there, visibly, if it is
// down); the first poll that succeeds after that starts the cache over,
// as it cannot know what it missed (the store may have been restored or
// recreated meanwhile).
//
// Memory is bounded by an estimate of the bytes held, summaries, ledgers
// and listings together (DefaultCacheBytes), evicting the least recently
// used entries first, approximately: CLOCK (second chance), where a hit only
// marks its entry used, and eviction moves a used entry back to the front
// instead of dropping it. Exact LRU would reorder a list on every hit,
// under an exclusive lock; this keeps hits under a read lock.
//
// A read that misses is kept only if nothing changed while it ran: no poll
// saw a new generation and the cache did not start over (a reset of the
// feed, the generation going backwards, a gap in following). A read that
// overlapped a change may predate it, or come from a store that has since
// been replaced; its caller gets it, the cache does not keep it.
type Cache struct {
	// Store is the store the cache decorates: it answers what the cache
	// does not keep (the methods Cache does not override) and every miss.
	scorekeeper.Store
	log *slog.Logger
	// maxBytes bounds bytes: DefaultCacheBytes (tests set it lower).
	maxBytes int64

	// pollMu runs polls one at a time: two applied out of order would move
	// the generation backwards, which reads as a store reset.
	pollMu sync.Mutex

	// mu guards everything below; hits take it for reading (they only
	// set cacheEntry.used, which is atomic).
	mu       sync.RWMutex
	polledAt time.Time
	// gen is the change feed's generation as of the last poll, and epoch
	// counts the times the cache started over: together they stamp what a
	// read saw before going to the database (see putSummary).
	gen   int64
	epoch uint64
	asOf  *time.Time

	summaries map[string]*cacheEntry
	listings  map[scorekeeper.PayoutFilter]*cacheEntry
	// ledgers are users' whole ledgers (cache_ledger.go).
	ledgers map[string]*cacheEntry
	// ledgerReads joins concurrent reads of one user's ledger, and
	// ledgerSlots bounds how many users' ledgers are read at once.
	ledgerReads singleflight.Group
	ledgerSlots chan struct{}
	// recent is the sentinel of a ring of all entries, newest (or most
	// recently given a second chance) first; eviction looks at
	// recent.prev.
	recent cacheEntry
	// bytes estimates the memory held by entries and by changed.
	bytes int64

	// complete is set once every user's summary was loaded (Warm) and none
	// was evicted since: a user then missing from summaries and not in
	// changed does not exist, and a 404 needs no database read either.
	complete bool
	// spoiled is set when something a warm-up relies on was lost while it
	// ran (an eviction, a start over, changed overflowing), so it cannot
	// claim completeness.
	spoiled bool
	// changed holds, while Warm runs or complete is set (nil otherwise),
	// the users changed since the warm-up began and the generation of
	// their last change: such a user may exist though the warm-up did not
	// load them, and a warm-up page read before that generation is stale
	// for them.
	changed      map[string]int64
	changedBytes int64
}

// Cache tuning.
const (
	PollInterval = 100 * time.Millisecond
	MaxPollAge   = 2 * time.Second
	// DefaultCacheBytes bounds the memory of a Cache's summaries, ledgers
	// and listings (estimated, see cacheEntry.size): about 800,000
	// summaries, or 3 million ledger rows.
	DefaultCacheBytes = 128 << 20
	// warmPage is how many summaries Warm reads at a time.
	warmPage = 5000
	// maxLedgerReads is how many users' whole ledgers are read at once.
	maxLedgerReads = 4
)

// Estimated sizes. They count what a Go heap holds for an entry (the
// struct, a map slot with its key header, string bytes, slice backing
// arrays), not exactly, but within a small factor and in proportion.
const (
	entryBytes   = int64(unsafe.Sizeof(cacheEntry{})) + 48
	listingBytes = int64(unsafe.Sizeof(cachedListing{}))
	rowBytes     = int64(unsafe.Sizeof(scorekeeper.PayoutTotal{}))
	changedBytes = 48
)

// cacheEntry is one cached summary, ledger or listing, linked into the
// recency ring.
type cacheEntry struct {
	prev, next *cacheEntry
	// used is set by a hit and cleared when eviction passes the entry.
	used atomic.Bool
	size int64
	// user keys a summary, or a ledger when ledger is set; a listing has
	// list set instead.
	user    string
	summary scorekeeper.Summary
	ledger  *userLedger
	list    *cachedListing
}

// isSummary reports whether e is a user's summary.
func (e *cacheEntry) isSummary() bool { return e.list == nil && e.ledger == nil }

type cachedListing struct {
	filter scorekeeper.PayoutFilter
	rows   []scorekeeper.PayoutTotal
	total  int
}

// cacheStamp is the state a read started from.
type cacheStamp struct {
	gen   int64
	epoch uint64
}

var _ scorekeeper.Store = (*Cache)(nil)

// NewCache returns an empty cache in front of store, bounded by
// DefaultCacheBytes; Run fills and follows it.
func NewCache(store scorekeeper.Store, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{Store: store, log: log, maxBytes: DefaultCacheBytes, ledgerSlots: make(chan struct{}, maxLedgerReads)}
	c.startOver()
	return c
}

// Run follows the change feed until ctx ends, warming the cache once it
// follows.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	failing, warmed := false, false
	for {
		if err := c.Poll(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				c.log.Warn("read cache cannot follow the store; reads go to the database", "error", err)
			}
			failing = true
		} else {
			failing = false
			if !warmed {
				warmed = true
				go func() {
					if err := c.Warm(ctx); err != nil && ctx.Err() == nil {
						c.log.Warn("read cache warm-up failed; it fills on demand", "error", err)
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the change feed once and applies it. It starts the cache over
// when the feed was reset (this reader fell behind its retention), when
// its generation went backwards (the store was replaced), and when the
// cache had stopped following (MaxPollAge without a successful poll).
func (c *Cache) Poll(ctx context.Context) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.mu.RLock()
	after := c.gen
	c.mu.RUnlock()
	ch, err := c.Store.Changes(ctx, after)
	if err != nil {
		return err
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ch.Reset, ch.Gen < c.gen, !c.liveAt(now):
		c.startOver()
	default:
		for _, u := range ch.Users {
			if e, ok := c.summaries[u]; ok {
				c.remove(e)
			}
			if e, ok := c.ledgers[u]; ok {
				c.remove(e)
			}
			c.noteChanged(u, ch.Gen)
		}
	}
	if ch.Gen != c.gen {
		for _, e := range c.listings {
			c.remove(e)
		}
	}
	c.gen = ch.Gen
	c.asOf = nil
	if ch.SyncedThrough != nil {
		t := ch.SyncedThrough.UTC()
		c.asOf = &t
	}
	c.polledAt = now
	c.evict()
	return nil
}

// CatchUp polls the change feed now, so that every read that starts after
// it returns sees each write committed before it was called: a process
// that has just waited for a sync serves its data, not an answer cached
// before it (read-your-writes). When the poll fails the cache stands
// aside, sending reads to the database, until a poll succeeds (and starts
// it over).
func (c *Cache) CatchUp(ctx context.Context) error {
	err := c.Poll(ctx)
	if err != nil {
		c.mu.Lock()
		c.polledAt = time.Time{}
		c.mu.Unlock()
		c.log.Warn("read cache could not catch up with a write; reads go to the database until it follows again", "error", err)
	}
	return err
}

// startOver empties the cache and makes every read in flight unkeepable.
func (c *Cache) startOver() {
	c.summaries = map[string]*cacheEntry{}
	c.listings = map[scorekeeper.PayoutFilter]*cacheEntry{}
	c.ledgers = map[string]*cacheEntry{}
	c.recent.prev, c.recent.next = &c.recent, &c.recent
	c.bytes = 0
	c.changed, c.changedBytes = nil, 0
	c.complete, c.spoiled = false, true
	c.epoch++
}

// noteChanged records a change of user at gen while a warm-up or its
// completeness depends on it. When the record outgrows a quarter of the
// budget, completeness is given up instead.
func (c *Cache) noteChanged(user string, gen int64) {
	if c.changed == nil {
		return
	}
	if _, ok := c.changed[user]; !ok {
		n := changedBytes + int64(len(user))
		c.changedBytes += n
		c.bytes += n
	}
	c.changed[user] = gen
	if c.changedBytes > c.maxBytes/4 {
		c.dropChanged()
		c.complete, c.spoiled = false, true
	}
}

func (c *Cache) dropChanged() {
	c.bytes -= c.changedBytes
	c.changed, c.changedBytes = nil, 0
}

// liveAt reports whether the cache follows the store closely enough to use.
func (c *Cache) liveAt(now time.Time) bool { return now.Sub(c.polledAt) < MaxPollAge }

func (c *Cache) stamp() cacheStamp { return cacheStamp{gen: c.gen, epoch: c.epoch} }

// touch marks e used; a read lock suffices. The load first keeps a hot
// entry's cache line shared between cores.
func (e *cacheEntry) touch() {
	if !e.used.Load() {
		e.used.Store(true)
	}
}

// link puts e first in the recency ring and counts it.
func (c *Cache) link(e *cacheEntry) {
	e.prev, e.next = &c.recent, c.recent.next
	e.next.prev = e
	c.recent.next = e
}

// add caches e, replacing an entry of the same key, and evicts down to the
// budget. An entry larger than an eighth of the budget is not cached: it
// would push out too much for one key.
func (c *Cache) add(e *cacheEntry) {
	if e.size > c.maxBytes/8 {
		return
	}
	m, key := c.summaries, e.user
	switch {
	case e.list != nil:
		if old, ok := c.listings[e.list.filter]; ok {
			c.remove(old)
		}
		c.listings[e.list.filter] = e
	case e.ledger != nil:
		m = c.ledgers
	}
	if e.list == nil {
		if old, ok := m[key]; ok {
			c.remove(old)
		}
		m[key] = e
	}
	c.link(e)
	c.bytes += e.size
	c.evict()
}

// remove drops e from the cache.
func (c *Cache) remove(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	switch {
	case e.list != nil:
		delete(c.listings, e.list.filter)
	case e.ledger != nil:
		delete(c.ledgers, e.user)
	default:
		delete(c.summaries, e.user)
	}
	c.bytes -= e.size
}

// evict drops the oldest unused entries until the cache fits its budget;
// an entry used since eviction last passed it is moved to the front
// instead, unmarked (so the loop ends: within two passes every entry is
// unmarked, and no hit can mark one while the write lock is held). Losing
// a summary loses completeness: the user is no longer known to exist from
// memory.
func (c *Cache) evict() {
	for c.bytes > c.maxBytes && c.recent.prev != &c.recent {
		e := c.recent.prev
		if e.used.Load() {
			e.used.Store(false)
			e.prev.next, e.next.prev = e.next, e.prev
			c.link(e)
			continue
		}
		if e.isSummary() {
			c.complete, c.spoiled = false, true
		}
		c.remove(e)
	}
}

func newSummaryEntry(s scorekeeper.Summary, key string) *cacheEntry {
	size := entryBytes + int64(len(key))
	if key != s.UserID {
		size += int64(len(s.UserID))
	}
	return &cacheEntry{user: key, summary: s, size: size}
}

// AsOf is the watermark of the last snapshot polled.
func (c *Cache) AsOf(ctx context.Context) (*time.Time, error) {
	now := time.Now()
	c.mu.RLock()
	if c.liveAt(now) {
		defer c.mu.RUnlock()
		return c.asOf, nil
	}
	c.mu.RUnlock()
	return c.Store.AsOf(ctx)
}

// cacheLookup is what the memory alone says about a summary.
type cacheLookup int

const (
	// lookupMiss: ask the database.
	lookupMiss cacheLookup = iota
	// lookupHit: the summary is cached and current.
	lookupHit
	// lookupAbsent: the user does not exist (the cache is complete).
	lookupAbsent
)

// lookupSummary answers from memory only: the summary and the watermark
// of the same poll, under one read lock. It needs no context, so a hit
// arms no query deadline either.
func (c *Cache) lookupSummary(userID string) (scorekeeper.Summary, *time.Time, cacheLookup) {
	now := time.Now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.liveAt(now) {
		return scorekeeper.Summary{}, nil, lookupMiss
	}
	if e, ok := c.summaries[userID]; ok {
		e.touch()
		return e.summary, c.asOf, lookupHit
	}
	if _, changed := c.changed[userID]; c.complete && !changed {
		return scorekeeper.Summary{}, nil, lookupAbsent
	}
	return scorekeeper.Summary{}, nil, lookupMiss
}

// errUserNotFound is the answer for a user the store does not have.
func errUserNotFound(userID string) error {
	return scorekeeper.Errorf(scorekeeper.ENotFound, "user %s not found", userID)
}

// Summary serves a cached summary, or reads it and caches it if nothing
// changed while it was read.
func (c *Cache) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	switch s, _, found := c.lookupSummary(userID); found {
	case lookupHit:
		return s, nil
	case lookupAbsent:
		return scorekeeper.Summary{}, errUserNotFound(userID)
	}
	now := time.Now()
	c.mu.RLock()
	live, st := c.liveAt(now), c.stamp()
	c.mu.RUnlock()
	s, err := c.Store.Summary(ctx, userID)
	if err != nil || !live {
		return s, err
	}
	// The key is the summary's own id when it is the same (it always is):
	// one string for both, and not the caller's, which may point into a
	// buffer that is reused.
	key := s.UserID
	if key != userID {
		key = strings.Clone(userID)
	}
	c.mu.Lock()
	c.putSummary(s, key, st)
	c.mu.Unlock()
	return s, nil
}

// putSummary caches s, read from state st, unless anything changed since.
func (c *Cache) putSummary(s scorekeeper.Summary, key string, st cacheStamp) {
	if st != c.stamp() {
		return
	}
	c.add(newSummaryEntry(s, key))
}

// Warm loads every summary into the cache, a page at a time, once the
// cache follows the feed, as far as the budget allows without evicting;
// when they all fit, reads of unknown users need no database either. It
// gives up quietly on error (the cache still works, filling on demand).
func (c *Cache) Warm(ctx context.Context) error {
	now := time.Now()
	c.mu.Lock()
	if !c.liveAt(now) {
		c.mu.Unlock()
		return scorekeeper.Errorf(scorekeeper.EUnavailable, "cache is not following the store yet")
	}
	c.spoiled = false
	c.dropChanged()
	c.changed = map[string]int64{}
	c.mu.Unlock()
	done := false
	defer func() {
		c.mu.Lock()
		c.complete = done && !c.spoiled
		if !c.complete {
			c.dropChanged()
		}
		c.mu.Unlock()
	}()
	after := ""
	for {
		c.mu.Lock()
		gen := c.gen
		c.mu.Unlock()
		page, err := c.Store.SummariesAfter(ctx, after, warmPage)
		if err != nil {
			return err
		}
		c.mu.Lock()
		for _, s := range page {
			if c.spoiled {
				break
			}
			if _, ok := c.summaries[s.UserID]; ok || c.changed[s.UserID] > gen {
				// Cached by a read at least as recent, or changed since
				// this page was read.
				continue
			}
			e := newSummaryEntry(s, s.UserID)
			if c.bytes+e.size > c.maxBytes {
				// Full: the warm-up makes room for nobody.
				c.spoiled = true
				break
			}
			c.summaries[s.UserID] = e
			c.link(e)
			c.bytes += e.size
		}
		spoiled := c.spoiled
		c.mu.Unlock()
		if spoiled {
			return nil
		}
		if len(page) < warmPage {
			done = true
			return nil
		}
		after = page[len(page)-1].UserID
	}
}

// PayoutTotals serves a listing cached at the current generation, or reads
// it and caches it if nothing changed while it was read.
func (c *Cache) PayoutTotals(ctx context.Context, f scorekeeper.PayoutFilter) ([]scorekeeper.PayoutTotal, int, error) {
	now := time.Now()
	c.mu.RLock()
	live, st := c.liveAt(now), c.stamp()
	if e, ok := c.listings[f]; ok && live {
		e.touch()
		rows, total := e.list.rows, e.list.total
		c.mu.RUnlock()
		return rows, total, nil
	}
	c.mu.RUnlock()
	rows, total, err := c.Store.PayoutTotals(ctx, f)
	if err != nil || !live {
		return rows, total, err
	}
	size := entryBytes + listingBytes + int64(len(f.Status)+len(f.Sort)+len(f.After.UserID)) + int64(cap(rows))*rowBytes
	for _, r := range rows {
		size += int64(len(r.UserID))
	}
	c.mu.Lock()
	if st == c.stamp() {
		c.add(&cacheEntry{list: &cachedListing{filter: f, rows: rows, total: total}, size: size})
	}
	c.mu.Unlock()
	return rows, total, nil
}
