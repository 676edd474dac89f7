package activities

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/syncplan"
)

// Ensure a window counts as answered when any page of it at the same limit
// was, and only then: a re-scan of a sliding read's span ends where that
// read's later pages ended, and reading it again asked upstream twice for
// those pages (found by the whole-sync simulation, seed 556154978: pages
// 10 and 11 of a window a fresh read had reached).
func TestWindowPattern_MatchesEveryPageOfTheWindow(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		b := db.Budget{Name: "upstream", N: 100, Per: time.Minute}
		t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		read := syncplan.Request{Kind: syncplan.Fresh, Start: t0, End: t0.Add(4 * time.Minute), Page: 10, Limit: 200}
		for i, r := range []syncplan.Request{read, {Kind: syncplan.Fresh, Start: t0, End: t0.Add(3 * time.Minute), Page: 1, Limit: 200}} {
			g := db.Grant{ID: fmt.Sprint("g", i), Holder: "h", Kind: string(r.Kind), Hold: time.Minute}
			ok, _, _, err := b.Acquire(ctx, d, g)
			require.NoError(t, err)
			require.True(t, ok)
			_, err = b.Settle(ctx, d, g.ID, requestKey(r), true)
			require.NoError(t, err)
		}
		for _, tc := range []struct {
			name string
			req  syncplan.Request
			want bool
		}{
			{"page 1 of the window a read reached page 10 of", syncplan.Request{Kind: syncplan.Rescan, Start: t0, End: t0.Add(4 * time.Minute), Page: 1, Limit: 200}, true},
			{"the same window at another limit", syncplan.Request{Kind: syncplan.Rescan, Start: t0, End: t0.Add(4 * time.Minute), Page: 1, Limit: 100}, false},
			{"a window ending a second sooner", syncplan.Request{Kind: syncplan.Rescan, Start: t0, End: t0.Add(4*time.Minute - time.Second), Page: 1, Limit: 200}, false},
			{"a window starting a second later", syncplan.Request{Kind: syncplan.Rescan, Start: t0.Add(time.Second), End: t0.Add(4 * time.Minute), Page: 1, Limit: 200}, false},
			{"a page-1 read", syncplan.Request{Kind: syncplan.Rescan, Start: t0, End: t0.Add(3 * time.Minute), Page: 1, Limit: 200}, true},
		} {
			got, err := b.AnsweredLike(ctx, d, windowPattern(tc.req))
			require.NoError(t, err)
			require.Equal(t, tc.want, got, tc.name)
		}
		avoided := syncplan.Avoid(syncplan.Request{Kind: syncplan.Rescan, Start: t0, End: t0.Add(4 * time.Minute), Page: 1, Limit: 200},
			func(r syncplan.Request) bool {
				ok, err := b.AnsweredLike(ctx, d, windowPattern(r))
				require.NoError(t, err)
				return ok
			})
		require.True(t, avoided.End.Equal(t0.Add(4*time.Minute-time.Second)), "the re-scan ends a second sooner: %s", avoided.End)
	})
}
