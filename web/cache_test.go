package web

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	c := NewCache(d, nil)

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
		c.mu.RLock()
		before := c.gen
		c.mu.RUnlock()
		apply(cacheTx("b2", "bob", 1))
		require.NoError(t, c.Poll(ctx))
		require.NotContains(t, c.summaries, "bob")
		// The read made at the old generation finishes now.
		c.putSummary("bob", scorekeeper.Summary{UserID: "bob"}, before)
		require.NotContains(t, c.summaries, "bob")
		c.putSummary("bob", scorekeeper.Summary{UserID: "bob"}, c.gen)
		require.Contains(t, c.summaries, "bob", "a read after the change is cached")
	})
	t.Run("ListingsLastOneGeneration", func(t *testing.T) {
		f := db.PayoutFilter{Limit: 10}
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
	c := NewCache(d, nil)
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
