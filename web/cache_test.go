package web

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

func cacheTx(id, user string, cents int64) scorekeeper.Transaction {
	return scorekeeper.Transaction{ID: id, UserID: user, CreatedAt: time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC), Type: scorekeeper.TxPayout, Amount: scorekeeper.AmountFromCents(cents)}
}

// Ensure the cache serves from memory only what no committed write has
// changed since, following the store's change feed like another web
// process would.
func TestCache(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	apply := func(txs ...scorekeeper.Transaction) {
		t.Helper()
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
	}
	apply(cacheTx("a1", "alice", 100), cacheTx("b1", "bob", 200))
	c := NewCache(db.NewStore(d, db.Budget{}), nil)

	t.Run("NotLiveReadsDatabase", func(t *testing.T) {
		s, err := c.Summary(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, "1", s.Payout.String())
		require.Empty(t, c.summaries, "nothing is cached before the first poll")
	})
	require.NoError(t, c.Poll(ctx))

	t.Run("ServesFromMemory", func(t *testing.T) {
		s, err := c.Summary(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, "1", s.Payout.String())
		require.Contains(t, c.summaries, "alice")
		// Change the cached row behind the store's back: a cache hit does
		// not see it, which proves the hit came from memory.
		_, err = d.NewUpdate().Table("user_summaries").Set("payout_cents = 999").Where("user_id = 'alice'").Exec(ctx)
		require.NoError(t, err)
		s, err = c.Summary(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, "1", s.Payout.String())
	})
	t.Run("EvictsChangedUsersOnly", func(t *testing.T) {
		_, err := c.Summary(ctx, "bob")
		require.NoError(t, err)
		apply(cacheTx("a2", "alice", 50))
		require.NoError(t, c.Poll(ctx))
		require.NotContains(t, c.summaries, "alice")
		require.Contains(t, c.summaries, "bob")
		s, err := c.Summary(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, "10.49", s.Payout.String(), "9.99 set above + 0.50")
	})
	t.Run("StaleReadIsNotCached", func(t *testing.T) {
		// A read that started before a change was committed and polled
		// must not be cached as current.
		c.mu.Lock()
		before := c.stamp()
		c.mu.Unlock()
		apply(cacheTx("b2", "bob", 1))
		require.NoError(t, c.Poll(ctx))
		require.NotContains(t, c.summaries, "bob")
		// The read made at the old generation finishes now.
		c.mu.Lock()
		c.putSummary(scorekeeper.Summary{UserID: "bob"}, "bob", before)
		c.mu.Unlock()
		require.NotContains(t, c.summaries, "bob")
		c.mu.Lock()
		c.putSummary(scorekeeper.Summary{UserID: "bob"}, "bob", c.stamp())
		c.mu.Unlock()
		require.Contains(t, c.summaries, "bob", "a read after the change is cached")
	})
	t.Run("ListingsLastOneGeneration", func(t *testing.T) {
		f := scorekeeper.PayoutFilter{Limit: 10}
		rows, total, err := c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		require.Equal(t, 2, total)
		require.Len(t, rows, 2)
		require.Contains(t, c.listings, f)
		apply(cacheTx("c1", "carol", 5))
		require.NoError(t, c.Poll(ctx))
		_, total, err = c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		require.Equal(t, 3, total)
	})
	t.Run("StandsAsideWhenNotFollowing", func(t *testing.T) {
		c.mu.Lock()
		c.polledAt = time.Now().Add(-time.Minute)
		c.mu.Unlock()
		_, err := d.NewUpdate().Table("user_summaries").Set("payout_cents = 7").Where("user_id = 'bob'").Exec(ctx)
		require.NoError(t, err)
		s, err := c.Summary(ctx, "bob")
		require.NoError(t, err)
		require.Equal(t, "0.07", s.Payout.String())
	})
}

// Ensure a warmed cache answers known and unknown users from memory, and
// still reads users created after the warm-up.
func TestCache_Warm(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewSQLite(t)
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{cacheTx("a1", "alice", 100)}}, time.Now())
	require.NoError(t, err)
	c := NewCache(db.NewStore(d, db.Budget{}), nil)
	require.NoError(t, c.Poll(ctx))
	require.NoError(t, c.Warm(ctx))
	require.True(t, c.complete)
	require.Contains(t, c.summaries, "alice")

	_, err = c.Summary(ctx, "nobody")
	require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err))

	_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{cacheTx("n1", "newcomer", 5)}}, time.Now())
	require.NoError(t, err)
	require.NoError(t, c.Poll(ctx))
	s, err := c.Summary(ctx, "newcomer")
	require.NoError(t, err, "a user created after the warm-up is read from the store")
	require.Equal(t, "0.05", s.Payout.String())
}

// requireConsistent checks the cache's books: every entry is in its map
// and in the recency ring once, the byte count is the sum of the entries'
// sizes and of changed's, and it is within the budget.
func requireConsistent(t *testing.T, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n, sum := 0, int64(0)
	for e := c.recent.next; e != &c.recent; e = e.next {
		require.Same(t, e, e.next.prev)
		switch {
		case e.list != nil:
			require.Same(t, e, c.listings[e.list.filter])
		case e.ledger != nil:
			require.Same(t, e, c.ledgers[e.user])
		default:
			require.Same(t, e, c.summaries[e.user])
		}
		n++
		sum += e.size
	}
	require.Equal(t, len(c.summaries)+len(c.listings)+len(c.ledgers), n)
	require.Equal(t, sum+c.changedBytes, c.bytes)
	require.LessOrEqual(t, c.bytes, c.maxBytes)
}

func seedUsers(t *testing.T, d *bun.DB, n int) {
	t.Helper()
	var txs []scorekeeper.Transaction
	for i := range n {
		txs = append(txs, cacheTx(fmt.Sprintf("t%02d", i), fmt.Sprintf("u%02d", i), int64(100+i)))
	}
	_, err := db.ApplyBatch(context.Background(), d, db.Batch{Transactions: txs}, time.Now())
	require.NoError(t, err)
}

// Ensure the cache holds summaries and listings within one byte budget,
// evicting the least recently used entry first, and that a warm-up fills
// it only up to the budget, giving up completeness.
func TestCache_BoundedBySize(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewSQLite(t)
	seedUsers(t, d, 40)
	c := NewCache(db.NewStore(d, db.Budget{}), nil)
	one := newSummaryEntry(scorekeeper.Summary{UserID: "u00"}, "u00").size
	c.maxBytes = 20 * one
	require.NoError(t, c.Poll(ctx))
	read := func(user string) {
		t.Helper()
		s, err := c.Summary(ctx, user)
		require.NoError(t, err)
		require.Equal(t, user, s.UserID)
	}

	t.Run("EvictsLeastRecentlyUsed", func(t *testing.T) {
		for i := range 20 {
			read(fmt.Sprintf("u%02d", i))
		}
		require.Len(t, c.summaries, 20)
		read("u00") // now the most recently used
		read("u20")
		require.Contains(t, c.summaries, "u00")
		require.NotContains(t, c.summaries, "u01", "the least recently used goes first")
		require.Contains(t, c.summaries, "u20")
		requireConsistent(t, c)
		for i := 21; i < 40; i++ {
			read(fmt.Sprintf("u%02d", i))
			requireConsistent(t, c)
		}
		require.Len(t, c.summaries, 20)
	})

	t.Run("ListingsShareTheBudget", func(t *testing.T) {
		f := scorekeeper.PayoutFilter{Status: "requested", Sort: "userId", Limit: 2}
		rows, total, err := c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		require.Len(t, rows, 2)
		require.Equal(t, 40, total)
		require.Contains(t, c.listings, f)
		require.Less(t, len(c.summaries), 20, "the listing took the room of summaries")
		requireConsistent(t, c)
		for i := range 20 {
			read(fmt.Sprintf("u%02d", i))
		}
		require.NotContains(t, c.listings, f, "an unused listing is evicted like a summary")
		requireConsistent(t, c)
	})

	t.Run("TooLargeIsNotCached", func(t *testing.T) {
		f := scorekeeper.PayoutFilter{Status: "requested", Sort: "userId", Limit: 40}
		_, _, err := c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		require.NotContains(t, c.listings, f, "one listing may not take over an eighth of the budget")
	})

	t.Run("WarmUpStopsAtTheBudget", func(t *testing.T) {
		w := NewCache(db.NewStore(d, db.Budget{}), nil)
		w.maxBytes = 20 * one
		require.NoError(t, w.Poll(ctx))
		require.NoError(t, w.Warm(ctx))
		require.Len(t, w.summaries, 20)
		require.False(t, w.complete, "not everyone fits, so a miss is no proof of absence")
		requireConsistent(t, w)
		s, err := w.Summary(ctx, "u39")
		require.NoError(t, err, "a user the warm-up left out is read from the store")
		require.Equal(t, "1.39", s.Payout.String())
		_, err = w.Summary(ctx, "nobody")
		require.Equal(t, scorekeeper.ENotFound, scorekeeper.ErrorCode(err))
	})

	t.Run("EvictionEndsCompleteness", func(t *testing.T) {
		w := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, w.Poll(ctx))
		require.NoError(t, w.Warm(ctx))
		require.True(t, w.complete)
		w.mu.Lock()
		w.maxBytes = 10 * one
		w.evict()
		w.mu.Unlock()
		require.False(t, w.complete)
		requireConsistent(t, w)
	})
}

// hookAfter blocks, once armed, the first query whose SQL contains match
// after it has run (its rows are read) and before it returns, until
// released: a read in flight, frozen at the worst moment.
type hookAfter struct {
	mu      sync.Mutex
	match   string
	reached chan struct{}
	release chan struct{}
}

func (h *hookAfter) arm(match string) (reached, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.match, h.reached, h.release = match, make(chan struct{}), make(chan struct{})
	return h.reached, h.release
}

func (h *hookAfter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *hookAfter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	h.mu.Lock()
	match, reached, release := h.match, h.reached, h.release
	if match != "" && strings.Contains(e.Query, match) {
		h.match = ""
	} else {
		release = nil
	}
	h.mu.Unlock()
	if release != nil {
		close(reached)
		<-release
	}
}

// Ensure a store reset never leaves stale data cached as current: a read
// in flight across it (the feed's generation going backwards, the store
// recreated) is answered but not kept, and the first successful poll
// after the cache stopped following, or after the feed was reset, starts
// the cache over.
func TestCache_ResetSafety(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	hook := &hookAfter{}
	d = d.WithQueryHook(hook)
	apply := func(txs ...scorekeeper.Transaction) {
		t.Helper()
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
	}
	exec := func(query string, args ...any) {
		t.Helper()
		_, err := d.ExecContext(ctx, query, args...)
		require.NoError(t, err)
	}
	// recreate replaces the store with one at generation 0 where alice's
	// payout is cents, as a restore or a fresh database would.
	recreate := func(cents int) {
		t.Helper()
		exec("DELETE FROM summary_changes")
		exec("UPDATE counters SET value = 0 WHERE name IN ('generation', 'changes_pruned_through')")
		exec("UPDATE user_summaries SET payout_cents = ? WHERE user_id = 'alice'", cents)
	}
	payout := func(c *Cache) string {
		t.Helper()
		s, err := c.Summary(ctx, "alice")
		require.NoError(t, err)
		return s.Payout.String()
	}
	apply(cacheTx("a1", "alice", 100), cacheTx("b1", "bob", 200), cacheTx("b2", "bob", 300))

	t.Run("SummaryInFlightAcrossRecreation", func(t *testing.T) {
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		reached, release := hook.arm("user_summaries")
		got := make(chan string, 1)
		go func() {
			s, err := c.Summary(ctx, "alice")
			if err != nil {
				got <- err.Error()
				return
			}
			got <- s.Payout.String()
		}()
		<-reached // the old store's alice is read, not yet returned
		recreate(700)
		require.NoError(t, c.Poll(ctx))
		close(release)
		require.Equal(t, "1", <-got, "the caller gets what it read")
		require.NotContains(t, c.summaries, "alice", "a read from the old store is not kept")
		require.Equal(t, "7", payout(c))
		requireConsistent(t, c)
	})

	t.Run("ListingInFlightAcrossRecreation", func(t *testing.T) {
		apply(cacheTx("d1", "dave", 1)) // generation 1 again, so it can go back
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		f := scorekeeper.PayoutFilter{Status: "requested", Sort: "userId", Limit: 10}
		reached, release := hook.arm("user_summaries")
		done := make(chan error, 1)
		go func() {
			_, _, err := c.PayoutTotals(ctx, f)
			done <- err
		}()
		<-reached
		recreate(900)
		require.NoError(t, c.Poll(ctx))
		close(release)
		require.NoError(t, <-done)
		require.NotContains(t, c.listings, f, "a listing from the old store is not kept")
		rows, _, err := c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		require.Equal(t, "alice", rows[0].UserID)
		require.Equal(t, "9", rows[0].Amount.String())
	})

	t.Run("CachedBeforeRecreationIsDropped", func(t *testing.T) {
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		require.Equal(t, "9", payout(c))
		f := scorekeeper.PayoutFilter{Status: "requested", Sort: "userId", Limit: 10}
		_, _, err := c.PayoutTotals(ctx, f)
		require.NoError(t, err)
		apply(cacheTx("c1", "carol", 5)) // the generation moves on: 1
		require.NoError(t, c.Poll(ctx))
		require.Equal(t, "9", payout(c))
		recreate(400)
		require.NoError(t, c.Poll(ctx))
		require.Empty(t, c.summaries)
		require.Empty(t, c.listings)
		require.Equal(t, "4", payout(c))
	})

	t.Run("FeedResetStartsOver", func(t *testing.T) {
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		require.Equal(t, "4", payout(c))
		c.mu.Lock()
		epoch, gen := c.epoch, c.gen
		c.mu.Unlock()
		// Changes this reader has not seen were pruned: it fell behind.
		exec("UPDATE counters SET value = ? WHERE name = 'generation'", gen+10)
		exec("INSERT INTO counters (name, label, value) VALUES ('changes_pruned_through', '', ?) ON CONFLICT (name, label) DO UPDATE SET value = EXCLUDED.value", gen+5)
		exec("UPDATE user_summaries SET payout_cents = 500 WHERE user_id = 'alice'")
		require.NoError(t, c.Poll(ctx))
		require.Empty(t, c.summaries)
		require.Greater(t, c.epoch, epoch)
		require.Equal(t, "5", payout(c))
	})

	t.Run("FirstPollAfterStoppingStartsOver", func(t *testing.T) {
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		require.Equal(t, "5", payout(c))
		c.mu.Lock()
		c.polledAt = time.Now().Add(-time.Minute)
		c.mu.Unlock()
		// A change the feed does not show (a restore to the same
		// generation, say) happens while the cache is not following.
		exec("UPDATE user_summaries SET payout_cents = 600 WHERE user_id = 'alice'")
		require.Equal(t, "6", payout(c), "not following: reads go to the store")
		require.NoError(t, c.Poll(ctx))
		require.Empty(t, c.summaries, "the first successful poll starts over")
		require.Equal(t, "6", payout(c))
		require.Contains(t, c.summaries, "alice", "and the cache serves again")
	})

	t.Run("CatchUpFailureStandsAside", func(t *testing.T) {
		c := NewCache(db.NewStore(d, db.Budget{}), nil)
		require.NoError(t, c.Poll(ctx))
		require.Equal(t, "6", payout(c))
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		require.Error(t, c.CatchUp(canceled))
		exec("UPDATE user_summaries SET payout_cents = 800 WHERE user_id = 'alice'")
		require.Equal(t, "8", payout(c), "a cache that could not catch up sends reads to the store")
	})
}

// BenchmarkCache_SummaryHit is the cache's part of a summary request that
// hits, from parallel requests over 100,000 users.
func BenchmarkCache_SummaryHit(b *testing.B) {
	ctx := context.Background()
	c := NewCache(nil, nil)
	const users = 100_000
	ids := make([]string, users)
	c.mu.Lock()
	for i := range ids {
		ids[i] = fmt.Sprintf("u%06d", i)
		c.add(newSummaryEntry(scorekeeper.Summary{UserID: ids[i]}, ids[i]))
	}
	// Live for the whole benchmark: a miss would read the nil database.
	c.polledAt = time.Now().Add(time.Hour)
	c.mu.Unlock()
	var seq atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(7919) // different users per goroutine
		for pb.Next() {
			i = i*6364136223846793005 + 1442695040888963407
			if _, err := c.Summary(ctx, ids[i%users]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Ensure the cache keeps a user's whole ledger and serves pages and
// summaries as of an instant from it, as the store does; drops it when a
// commit changes the user; does not keep one larger than an eighth of the
// budget (it remembers that and asks the store, not reading it whole
// again); and that evicting a ledger does not cost the summaries their
// completeness.
func TestCache_Ledger(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewSQLite(t)
	seedUsers(t, d, 3)
	var txs []scorekeeper.Transaction
	for i := range 40 {
		tx := cacheTx(fmt.Sprintf("b%02d", i), "big", int64(10+i))
		tx.CreatedAt = tx.CreatedAt.Add(time.Duration(i/2) * time.Second)
		txs = append(txs, tx)
	}
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
	require.NoError(t, err)
	store := db.NewStore(d, db.Budget{})
	c := NewCache(store, nil)
	require.NoError(t, c.Poll(ctx))
	require.NoError(t, c.Warm(ctx))
	require.True(t, c.complete)

	same := func(t *testing.T, f scorekeeper.LedgerFilter) {
		t.Helper()
		want, wantTotal, err := store.Ledger(ctx, f)
		require.NoError(t, err)
		got, total, err := c.Ledger(ctx, f)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, wantTotal, total)
		at := txs[len(txs)/2].CreatedAt
		wantSum, err := store.SummaryAsOf(ctx, f.UserID, at)
		require.NoError(t, err)
		gotSum, err := c.SummaryAsOf(ctx, f.UserID, at)
		require.NoError(t, err)
		require.Equal(t, wantSum, gotSum)
	}

	same(t, scorekeeper.LedgerFilter{UserID: "big", Limit: 7, After: scorekeeper.LedgerCursor{CreatedAt: txs[20].CreatedAt, ID: txs[20].ID}})
	require.Contains(t, c.ledgers, "big")
	require.False(t, c.ledgers["big"].ledger.tooLarge)
	same(t, scorekeeper.LedgerFilter{UserID: "big", Limit: 100, From: txs[3].CreatedAt, To: txs[30].CreatedAt.Add(time.Nanosecond)})
	requireConsistent(t, c)

	_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{cacheTx("b99", "big", 1)}}, time.Now())
	require.NoError(t, err)
	require.NoError(t, c.Poll(ctx))
	require.NotContains(t, c.ledgers, "big", "a commit that changed the user drops their ledger")
	got, total, err := c.Ledger(ctx, scorekeeper.LedgerFilter{UserID: "big", Limit: 100})
	require.NoError(t, err)
	require.Equal(t, 41, total)
	require.Len(t, got, 41)

	c.mu.Lock()
	c.startOver()
	c.mu.Unlock()
	require.NoError(t, c.Poll(ctx))
	require.NoError(t, c.Warm(ctx))
	c.maxBytes = 8 * 30 * (ledgerRowBytes + 8) // room for 30 rows
	require.Equal(t, 30, c.maxLedgerRows())
	same(t, scorekeeper.LedgerFilter{UserID: "big", Limit: 5})
	require.True(t, c.ledgers["big"].ledger.tooLarge, "41 rows are too many: remembered as such")
	same(t, scorekeeper.LedgerFilter{UserID: "big", Limit: 5, Type: scorekeeper.TxPayout})

	// Few rows, but ids so long (120 bytes; at most 128 are valid) that the ledger outgrows an eighth of the
	// budget: remembered as too large too, not read whole on every request.
	var long []scorekeeper.Transaction
	for i := range 20 {
		long = append(long, cacheTx(fmt.Sprintf("%0120d", i), "longids", 5))
	}
	_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: long}, time.Now())
	require.NoError(t, err)
	require.NoError(t, c.Poll(ctx))
	same(t, scorekeeper.LedgerFilter{UserID: "longids", Limit: 5})
	require.True(t, c.ledgers["longids"].ledger.tooLarge, "20 rows of 120-byte ids outgrow %d bytes", c.maxBytes/8)

	same(t, scorekeeper.LedgerFilter{UserID: "u01", Limit: 5})
	require.False(t, c.ledgers["u01"].ledger.tooLarge)
	c.mu.Lock()
	summaries := len(c.summaries)
	big := c.ledgers["big"]
	for e := c.recent.next; e != &c.recent; e = e.next {
		e.used.Store(e != big)
	}
	c.maxBytes = c.bytes - 1
	c.evict()
	c.mu.Unlock()
	requireConsistent(t, c)
	require.NotContains(t, c.ledgers, "big", "the one entry not used since is evicted")
	require.Len(t, c.summaries, summaries)
	require.True(t, c.complete, "losing a ledger loses no summary")
}

// Ensure a cached ledger's summary as of any instant is the plain fold of
// its rows, at every row count around a checkpoint: with exactly 64 rows
// an instant after all of them once read past the last checkpoint (a 500
// found by TestLedger_AgainstTheMocksTruth).
func TestUserLedger_SummaryAsOfAtCheckpoints(t *testing.T) {
	t0 := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	types := []scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 129} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var rows []scorekeeper.LedgerEntry // newest first, as the store pages
			for i := n - 1; i >= 0; i-- {
				rows = append(rows, scorekeeper.LedgerEntry{Transaction: scorekeeper.Transaction{
					ID: fmt.Sprintf("t%03d", i), UserID: "u", CreatedAt: t0.Add(time.Duration(i) * time.Second),
					Type: types[i%3], Amount: scorekeeper.AmountFromCents(int64(1 + i)),
				}})
			}
			l := newUserLedger(rows)
			require.NotNil(t, l)
			for k := -1; k <= n; k++ {
				at := t0.Add(time.Duration(k) * time.Second)
				want := scorekeeper.Summary{UserID: "u"}
				for _, r := range rows {
					if !r.CreatedAt.After(at) {
						require.NoError(t, want.Add(r.Transaction))
					}
				}
				require.Equal(t, want, l.summaryAsOf("u", at), "as of row %d", k)
			}
		})
	}
}

// Ensure a page encoded from a cached ledger's columns is byte for byte
// the encoding of the rows page returns, with the same count, total and
// last row, under random filters and cursors over ties and every type;
// and that a ledger with an id that needs escaping is left to page.
func TestUserLedger_AppendPage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	types := []scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}
	statuses := append([]scorekeeper.PayoutStatus{""}, scorekeeper.PayoutStatuses...)
	instant := func() time.Time {
		return t0.Add(time.Duration(rng.IntN(300))*time.Second + time.Duration(rng.IntN(3))*time.Duration(rng.IntN(1e6))*time.Microsecond)
	}
	for n := range 60 {
		rows := make([]scorekeeper.LedgerEntry, n*7)
		for i := range rows {
			typ := types[rng.IntN(3)]
			rows[i] = scorekeeper.LedgerEntry{Transaction: scorekeeper.Transaction{ID: fmt.Sprintf("t%d", rng.IntN(1e6)), UserID: "u",
				CreatedAt: instant(), Type: typ, Amount: scorekeeper.AmountFromCents(rng.Int64N(1e6))}, SyncedAt: instant()}
			if typ == scorekeeper.TxPayout {
				rows[i].Status = statuses[rng.IntN(len(statuses))]
			}
		}
		// Newest first, as the store pages them.
		slices.SortFunc(rows, func(a, b scorekeeper.LedgerEntry) int {
			return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
		})
		rows = slices.CompactFunc(rows, func(a, b scorekeeper.LedgerEntry) bool { return a.ID == b.ID })
		l := newUserLedger(rows)
		require.NotNil(t, l)
		for range 50 {
			f := scorekeeper.LedgerFilter{UserID: "u", Limit: 1 + rng.IntN(20)}
			if rng.IntN(3) == 0 {
				f.Type = types[rng.IntN(3)]
			}
			if rng.IntN(3) == 0 {
				f.From = instant()
			}
			if rng.IntN(3) == 0 {
				f.To = instant()
			}
			if len(rows) > 0 && rng.IntN(2) == 0 {
				r := rows[rng.IntN(len(rows))]
				f.After = scorekeeper.LedgerCursor{CreatedAt: r.CreatedAt, ID: r.ID}
			}
			es, total := l.page("u", f)
			want, ok := appendLedgerJSON([]byte("x"), es)
			require.True(t, ok)
			got, ok := l.appendPage([]byte("x"), f)
			require.True(t, ok)
			require.Equal(t, string(want), string(got.body), "%+v", f)
			require.Equal(t, len(es), got.rows)
			require.Equal(t, total, got.total)
			if len(es) > 0 {
				last := es[len(es)-1]
				require.Equal(t, scorekeeper.LedgerCursor{CreatedAt: last.CreatedAt, ID: last.ID}, got.last)
			}
		}
	}
	l := newUserLedger([]scorekeeper.LedgerEntry{{Transaction: scorekeeper.Transaction{ID: `a"b`, UserID: "u", Type: scorekeeper.TxEarned, CreatedAt: t0}}})
	_, ok := l.appendPage(nil, scorekeeper.LedgerFilter{UserID: "u", Limit: 10})
	require.False(t, ok, "an id that needs escaping is left to encoding/json")
}
