package db_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

var grantSeq atomic.Int64

func grant(kind string, hold time.Duration) db.Grant {
	return db.Grant{ID: fmt.Sprintf("g%d", grantSeq.Add(1)), Holder: "test", Kind: kind, Hold: hold}
}

func TestBudget(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		t.Run("GrantsUpToN", func(t *testing.T) {
			b := db.Budget{Name: "n", N: 3, Per: time.Hour}
			for range 3 {
				ok, _, _, err := b.Acquire(ctx, d, grant("fresh", 0))
				require.NoError(t, err)
				require.True(t, ok)
			}
			ok, now, wait, err := b.Acquire(ctx, d, grant("fresh", 0))
			require.NoError(t, err)
			require.False(t, ok)
			require.InDelta(t, time.Hour.Seconds(), wait.Seconds(), 5, "the first grant leaves the window an hour after it was made")
			used, err := b.Used(ctx, d, now)
			require.NoError(t, err)
			require.Equal(t, 3, used)
		})
		t.Run("InFlightCountsUntilSettled", func(t *testing.T) {
			// A grant is stamped at grant time + Hold until its answer comes:
			// a request that took long to reach upstream cannot share a
			// window with the next N.
			b := db.Budget{Name: "hold", N: 1, Per: 300 * time.Millisecond}
			g := grant("fresh", time.Hour)
			ok, _, _, err := b.Acquire(ctx, d, g)
			require.NoError(t, err)
			require.True(t, ok)
			time.Sleep(2 * b.Window())
			ok, _, wait, err := b.Acquire(ctx, d, grant("fresh", 0))
			require.NoError(t, err)
			require.False(t, ok, "unsettled grant still counts")
			require.Greater(t, wait, 50*time.Minute)
			twice, err := b.Settle(ctx, d, g.ID, "page-1", true)
			require.NoError(t, err)
			require.False(t, twice)
			time.Sleep(2 * b.Window())
			ok, _, _, err = b.Acquire(ctx, d, grant("fresh", 0))
			require.NoError(t, err)
			require.True(t, ok, "settled at its answer, it left the window")
		})
		t.Run("SettleCountsPagesFetchedTwice", func(t *testing.T) {
			b := db.Budget{Name: "twice", N: 10, Per: time.Minute}
			var ids []string
			for range 3 {
				g := grant("fresh", time.Second)
				ok, _, _, err := b.Acquire(ctx, d, g)
				require.NoError(t, err)
				require.True(t, ok)
				ids = append(ids, g.ID)
			}
			twice, err := b.Settle(ctx, d, ids[0], "p", false)
			require.NoError(t, err)
			require.False(t, twice, "a failed request brought no page")
			twice, err = b.Settle(ctx, d, ids[1], "p", true)
			require.NoError(t, err)
			require.False(t, twice)
			twice, err = b.Settle(ctx, d, ids[2], "p", true)
			require.NoError(t, err)
			require.True(t, twice)
			// Late coverage re-reading a page a fresh read had is its plan.
			rescan := grant("rescan", time.Second)
			ok, _, _, err := b.Acquire(ctx, d, rescan)
			require.NoError(t, err)
			require.True(t, ok)
			twice, err = b.Settle(ctx, d, rescan.ID, "p", true)
			require.NoError(t, err)
			require.False(t, twice, "a page answered for another kind of plan")
			c, err := db.Counters(ctx, d)
			require.NoError(t, err)
			require.EqualValues(t, 1, c[db.CounterPagesFetchedTwice][""])
		})
		t.Run("SpentByKind", func(t *testing.T) {
			b := db.Budget{Name: "spent", N: 10, Per: time.Minute}
			for _, k := range []string{"fresh", "fresh", "probe", "rescan"} {
				ok, _, _, err := b.Acquire(ctx, d, grant(k, 0))
				require.NoError(t, err)
				require.True(t, ok)
			}
			spent, err := b.Spent(ctx, d, time.Now().Add(-time.Hour))
			require.NoError(t, err)
			require.Equal(t, map[string]int{"fresh": 2, "probe": 1, "rescan": 1}, spent)
		})
	})
}

// Ensure NewBudget sets the margin MarginFor gives the period: the shared
// budget of every process is built the same way.
func TestNewBudget(t *testing.T) {
	for _, tt := range []struct {
		per, margin time.Duration
	}{
		{time.Second, 50 * time.Millisecond},
		{30 * time.Second, 150 * time.Millisecond},
		{time.Minute, 300 * time.Millisecond},
		{time.Hour, 300 * time.Millisecond},
	} {
		b := db.NewBudget("upstream", 5, tt.per)
		require.Equal(t, db.Budget{Name: "upstream", N: 5, Per: tt.per, Margin: tt.margin}, b, "per %s", tt.per)
		require.Equal(t, tt.per+tt.margin, b.Window())
	}
}

// Ensure concurrent acquirers across connections never exceed the budget in
// any window of settled stamps, on the database's clock.
func TestBudget_Concurrent(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	b := db.Budget{Name: "c", N: 5, Per: 400 * time.Millisecond}
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				ok, now, wait, err := b.Acquire(ctx, d, grant("fresh", 0))
				if err != nil {
					errs <- err
					return
				}
				if ok {
					mu.Lock()
					grants = append(grants, now)
					mu.Unlock()
					continue
				}
				time.Sleep(min(wait, 20*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sort.Slice(grants, func(i, j int) bool { return grants[i].Before(grants[j]) })
	require.GreaterOrEqual(t, len(grants), 10, "the budget must be used, not only respected")
	for i := range grants {
		n := 0
		for j := i; j < len(grants) && grants[j].Sub(grants[i]) < b.Per; j++ {
			n++
		}
		require.LessOrEqual(t, n, b.N, "window starting at grant %d", i)
	}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		_, held, err := db.AcquireLease(ctx, d, "l", "a", time.Hour)
		require.NoError(t, err)
		require.True(t, held)
		cur, held, err := db.AcquireLease(ctx, d, "l", "b", time.Hour)
		require.NoError(t, err)
		require.False(t, held, "a holds it")
		require.Equal(t, "a", cur.Holder)
		_, held, err = db.AcquireLease(ctx, d, "l", "a", 200*time.Millisecond)
		require.NoError(t, err)
		require.True(t, held, "a renews")
		time.Sleep(300 * time.Millisecond)
		_, ok, err := db.GetLease(ctx, d, "l")
		require.NoError(t, err)
		require.False(t, ok, "expired")
		_, held, err = db.AcquireLease(ctx, d, "l", "b", time.Hour)
		require.NoError(t, err)
		require.True(t, held, "b takes over an expired lease")
		require.NoError(t, db.ReleaseLease(ctx, d, "l", "a"), "a no longer holds it: a no-op")
		cur, ok, err = db.GetLease(ctx, d, "l")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "b", cur.Holder)
		require.NoError(t, db.ReleaseLease(ctx, d, "l", "b"))
		_, ok, err = db.GetLease(ctx, d, "l")
		require.NoError(t, err)
		require.False(t, ok)
	})
}
