package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
)

// reader is what the read routes need from the store.
type reader interface {
	AsOf(ctx context.Context) (*time.Time, error)
	Summary(ctx context.Context, userID string) (scorekeeper.Summary, error)
	PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error)
}

// dbReader reads the database on every call.
type dbReader struct{ db *bun.DB }

func (r dbReader) AsOf(ctx context.Context) (*time.Time, error) { return dataAsOf(ctx, r.db) }

func (r dbReader) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	return db.GetSummary(ctx, r.db, userID)
}

func (r dbReader) PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error) {
	return db.ListPayoutTotals(ctx, r.db, f)
}

// Cache keeps summaries and payout listings in memory so most reads do not
// touch the database. Correct with any number of web processes: each
// process follows the store's change feed (db.ReadChanges) every
// PollInterval and evicts exactly the users a committed write changed; a
// listing is kept only while no write at all has committed. So a process
// serves nothing older than the last commit it has seen, at most one poll
// (100 ms) behind, and pairs cached data with the watermark (X-Data-As-Of)
// of the same snapshot. When polling fails for longer than MaxPollAge the
// cache stands aside and every read goes to the database (and fails
// there, visibly, if it is down).
type Cache struct {
	db  *bun.DB
	log *slog.Logger

	mu        sync.RWMutex
	polledAt  time.Time
	gen       int64
	asOf      *time.Time
	summaries map[string]cachedSummary
	// evicted is, per user, the generation of the last change seen; a
	// summary read at an earlier generation is stale.
	evicted  map[string]int64
	listings map[db.PayoutFilter]cachedListing
	// complete is set once every user's summary was loaded (Warm): a user
	// then missing from summaries and never seen changing does not exist,
	// and a 404 needs no database read either.
	complete bool
	// epoch counts resets, so a warm-up that spans one does not claim
	// completeness.
	epoch int
}

// Cache tuning.
const (
	PollInterval = 100 * time.Millisecond
	MaxPollAge   = 2 * time.Second
	// maxCached bounds memory: past it a map starts over.
	maxCachedSummaries = 2_000_000
	maxCachedListings  = 10_000
)

type cachedSummary struct {
	s   scorekeeper.Summary
	gen int64
}

type cachedListing struct {
	rows  []db.PayoutTotal
	total int
	gen   int64
}

// NewCache returns an empty cache over d; Run fills and follows it.
func NewCache(d *bun.DB, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{db: d, log: log, summaries: map[string]cachedSummary{}, evicted: map[string]int64{}, listings: map[db.PayoutFilter]cachedListing{}}
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

// Poll reads the change feed once and applies it.
func (c *Cache) Poll(ctx context.Context) error {
	c.mu.RLock()
	after := c.gen
	c.mu.RUnlock()
	ch, err := db.ReadChanges(ctx, c.db, after)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.Reset || ch.Gen < c.gen {
		// Fell behind the feed's retention, or the store was replaced.
		c.summaries, c.evicted = map[string]cachedSummary{}, map[string]int64{}
		c.complete = false
		c.epoch++
	}
	for _, u := range ch.Users {
		delete(c.summaries, u)
		c.evicted[u] = ch.Gen
	}
	if ch.Gen != c.gen {
		clear(c.listings)
	}
	c.gen = ch.Gen
	c.asOf = nil
	if ch.SyncState != nil {
		t := ch.SyncState.SyncedThrough.UTC()
		c.asOf = &t
	}
	c.polledAt = time.Now()
	return nil
}

// live reports whether the cache follows the store closely enough to use.
func (c *Cache) live() bool { return time.Since(c.polledAt) < MaxPollAge }

// AsOf is the watermark of the last snapshot polled.
func (c *Cache) AsOf(ctx context.Context) (*time.Time, error) {
	c.mu.RLock()
	if c.live() {
		defer c.mu.RUnlock()
		return c.asOf, nil
	}
	c.mu.RUnlock()
	return dataAsOf(ctx, c.db)
}

// Summary serves a cached summary that no change since has touched, or
// reads it and caches it at the generation seen before the read (so a
// change that commits during the read makes it stale, never lost).
func (c *Cache) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	c.mu.RLock()
	live, gen := c.live(), c.gen
	e, ok := c.summaries[userID]
	evicted := c.evicted[userID]
	complete := c.complete
	c.mu.RUnlock()
	switch {
	case !live:
	case ok && e.gen >= evicted:
		return e.s, nil
	case !ok && complete && evicted == 0:
		return scorekeeper.Summary{}, scorekeeper.Errorf(scorekeeper.ENotFound, "user %s not found", userID)
	}
	s, err := db.GetSummary(ctx, c.db, userID)
	if err != nil || !live {
		return s, err
	}
	c.putSummary(userID, s, gen)
	return s, nil
}

// putSummary caches s, read after generation gen was polled, unless a
// change to the user has been polled since.
func (c *Cache) putSummary(userID string, s scorekeeper.Summary, gen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted[userID] > gen {
		return
	}
	if len(c.summaries) >= maxCachedSummaries {
		clear(c.summaries)
		c.complete = false
		c.epoch++
	}
	c.summaries[userID] = cachedSummary{s: s, gen: gen}
}

// Warm loads every summary into the cache, a page at a time, once the
// cache follows the feed; afterwards reads of unknown users need no
// database either. It gives up quietly on error (the cache still works,
// filling on demand).
func (c *Cache) Warm(ctx context.Context) error {
	c.mu.RLock()
	gen, epoch, live := c.gen, c.epoch, c.live()
	c.mu.RUnlock()
	if !live {
		return scorekeeper.Errorf(scorekeeper.EUnavailable, "cache is not following the store yet")
	}
	after := ""
	for {
		page, err := db.SummariesAfter(ctx, c.db, after, 5000)
		if err != nil {
			return err
		}
		for _, s := range page {
			c.putSummary(s.UserID, s, gen)
		}
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].UserID
	}
	c.mu.Lock()
	c.complete = c.epoch == epoch && len(c.summaries) < maxCachedSummaries
	c.mu.Unlock()
	return nil
}

// PayoutTotals serves a listing cached at the current generation, or reads
// and caches it.
func (c *Cache) PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error) {
	c.mu.RLock()
	live, gen := c.live(), c.gen
	if e, ok := c.listings[f]; ok && live && e.gen == gen {
		c.mu.RUnlock()
		return e.rows, e.total, nil
	}
	c.mu.RUnlock()
	rows, total, err := db.ListPayoutTotals(ctx, c.db, f)
	if err != nil || !live {
		return rows, total, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.listings) >= maxCachedListings {
			clear(c.listings)
		}
		c.listings[f] = cachedListing{rows: rows, total: total, gen: gen}
	}
	c.mu.Unlock()
	return rows, total, nil
}
