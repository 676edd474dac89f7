package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure ListQuarantinePage walks every quarantined item exactly once,
// newest first and by key within one instant, on both backends: with
// several items per batch (equal instants), instants that differ by
// fractions of a second (which SQLite compares as text) and a clock with
// nanoseconds the database cannot keep. An item stored mid-walk is newer
// than the cursor, so it neither shows up nor shifts the rest.
func TestListQuarantinePage(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		// Batch i holds i%3+1 items; instants step by 0.5 s, 1 µs and 1 ns
		// (the last collapses onto the same microsecond).
		steps := []time.Duration{500 * time.Millisecond, time.Microsecond, time.Nanosecond}
		at := t0
		var want []string // raw texts, newest batch first
		for i := range 9 {
			at = at.Add(steps[i%len(steps)])
			var items []scorekeeper.Quarantined
			for j := range i%3 + 1 {
				id := fmt.Sprintf("q%d-%d", i, j)
				if j == 1 {
					id = "" // an item without a readable id
				}
				items = append(items, scorekeeper.Quarantined{ItemID: id, Raw: fmt.Sprintf(`{"n":%d,"m":%d}`, i, j), Reason: "bad amount"})
			}
			_, err := db.ApplyBatch(ctx, d, db.Batch{Quarantined: items}, at)
			require.NoError(t, err)
			var raws []string
			for _, q := range items {
				raws = append(raws, q.Raw)
			}
			want = append(raws, want...)
		}

		for _, limit := range []int{1, 2, 4, 100} {
			t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
				var all []db.QuarantineItem
				var after db.QuarantineCursor
				for pages := 0; ; pages++ {
					require.Less(t, pages, 100, "paging does not end")
					page, total, err := db.ListQuarantinePage(ctx, d, db.QuarantineFilter{After: after, Limit: limit})
					require.NoError(t, err)
					require.Equal(t, len(want), total)
					require.LessOrEqual(t, len(page), limit)
					all = append(all, page...)
					if len(page) < limit {
						break
					}
					after = page[len(page)-1].Cursor()
				}
				require.Len(t, all, len(want))
				seen := map[string]bool{}
				for i, q := range all {
					require.False(t, seen[q.Key], "item %s listed twice", q.Raw)
					seen[q.Key] = true
					require.Equal(t, "bad amount", q.Reason)
					require.Equal(t, time.UTC, q.ReceivedAt.Location())
					if i > 0 {
						prev := all[i-1]
						require.True(t, prev.ReceivedAt.After(q.ReceivedAt) || prev.ReceivedAt.Equal(q.ReceivedAt) && prev.Key < q.Key,
							"%s (%s) before %s (%s)", prev.Raw, prev.ReceivedAt, q.Raw, q.ReceivedAt)
					}
				}
				// The order is checked above; here, that every item came out.
				var got []string
				for _, q := range all {
					got = append(got, q.Raw)
				}
				require.ElementsMatch(t, want, got)
			})
		}

		t.Run("OKItemIDs", func(t *testing.T) {
			page, _, err := db.ListQuarantinePage(ctx, d, db.QuarantineFilter{Limit: 100})
			require.NoError(t, err)
			blank := 0
			for _, q := range page {
				if q.ItemID == "" {
					blank++
				}
			}
			require.Equal(t, 6, blank, "batches with 2 or 3 items have one without id")
		})

		t.Run("OKStoredMidWalk", func(t *testing.T) {
			first, _, err := db.ListQuarantinePage(ctx, d, db.QuarantineFilter{Limit: 5})
			require.NoError(t, err)
			_, err = db.ApplyBatch(ctx, d, db.Batch{Quarantined: []scorekeeper.Quarantined{{Raw: "late", Reason: "not JSON"}}}, at.Add(time.Hour))
			require.NoError(t, err)
			rest, total, err := db.ListQuarantinePage(ctx, d, db.QuarantineFilter{After: first[len(first)-1].Cursor(), Limit: 100})
			require.NoError(t, err)
			require.Equal(t, len(want)+1, total)
			require.Len(t, rest, len(want)-5)
			for _, q := range rest {
				require.NotEqual(t, "late", q.Raw)
			}
		})

		t.Run("ErrInvalid", func(t *testing.T) {
			_, _, err := db.ListQuarantinePage(ctx, d, db.QuarantineFilter{})
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
		})
	})
}
