package db_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestBudget(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		b := db.Budget{Name: "upstream", N: 3, Per: 10 * time.Second, Margin: time.Second}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		t.Run("GrantsUpToN", func(t *testing.T) {
			for i := range 3 {
				ok, _, err := b.TryAcquire(ctx, d, "t", at(now.Add(time.Duration(i)*time.Second)))
				require.NoError(t, err)
				require.True(t, ok)
			}
			ok, wait, err := b.TryAcquire(ctx, d, "t", at(now.Add(3*time.Second)))
			require.NoError(t, err)
			require.False(t, ok)
			// The first grant (t=0) leaves the 11 s window at t=11.
			require.Equal(t, 8*time.Second, wait)
			used, err := b.Used(ctx, d, now.Add(3*time.Second))
			require.NoError(t, err)
			require.Equal(t, 3, used)
		})
		t.Run("KeepLeavesRoom", func(t *testing.T) {
			k := db.Budget{Name: "keep", N: 3, Per: 10 * time.Second}
			ok, _, err := k.TryAcquireKeeping(ctx, d, "t", at(now), 1)
			require.NoError(t, err)
			require.True(t, ok)
			ok, _, err = k.TryAcquireKeeping(ctx, d, "t", at(now), 1)
			require.NoError(t, err)
			require.True(t, ok)
			ok, _, err = k.TryAcquireKeeping(ctx, d, "t", at(now), 1)
			require.NoError(t, err)
			require.False(t, ok, "the last slot is kept")
			ok, _, err = k.TryAcquire(ctx, d, "t", at(now))
			require.NoError(t, err)
			require.True(t, ok, "and fresh work gets it")
		})
		t.Run("SlidesWithTime", func(t *testing.T) {
			ok, _, err := b.TryAcquire(ctx, d, "t", at(now.Add(11*time.Second+time.Millisecond)))
			require.NoError(t, err)
			require.True(t, ok)
			ok, _, err = b.TryAcquire(ctx, d, "t", at(now.Add(11*time.Second+2*time.Millisecond)))
			require.NoError(t, err)
			require.False(t, ok)
		})
	})
}

// Ensure concurrent acquirers across connections never exceed the budget in
// any window.
func TestBudget_Concurrent(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	b := db.Budget{Name: "c", N: 5, Per: 400 * time.Millisecond}
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var stamp time.Time
				ok, wait, err := b.TryAcquire(ctx, d, "g", func() time.Time { stamp = time.Now(); return stamp })
				require.NoError(t, err)
				if ok {
					mu.Lock()
					grants = append(grants, stamp)
					mu.Unlock()
					continue
				}
				time.Sleep(min(wait, 20*time.Millisecond))
			}
		}()
	}
	wg.Wait()
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
