package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
	"scorekeeper/syncplan"
	"scorekeeper/upstream"
)

// testWorkflowID is the workflow id the test activity environment gives
// activities: the fetcher lease's holder, as a sync workflow's id is.
const testWorkflowID = "default-test-workflow-id"

// newMock serves items of the last half hour, no live data, no faults.
func newMock(t *testing.T, tweak func(*mockapi.Config)) (*mockapi.Server, string) {
	t.Helper()
	cfg := mockapi.DefaultConfig()
	cfg.Users, cfg.Transactions, cfg.History, cfg.LiveRate = 20, 2500, 30*time.Minute, 0
	cfg.LateRate = 0
	cfg.RateLimit = 0
	if tweak != nil {
		tweak(&cfg)
	}
	mock, err := mockapi.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(mock)
	t.Cleanup(hs.Close)
	return mock, hs.URL
}

// newSyncActivities builds the sync's activities on a fresh Postgres
// database, against upstreamURL, with a budget of n requests a minute.
func newSyncActivities(t *testing.T, d *bun.DB, upstreamURL string, n int) (*activities.Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	if upstreamURL == "" {
		upstreamURL = "http://127.0.0.1:1"
	}
	up, err := upstream.New(upstreamURL, 2*time.Second, nil)
	require.NoError(t, err)
	if d == nil {
		d = dbtest.NewPostgres(t)
	}
	acts := &activities.Activities{
		Store:    db.NewStore(d, db.Budget{}),
		Upstream: up,
		Sync: activities.SyncConfig{
			Start:    time.Now().UTC().Add(-time.Hour).Truncate(time.Second),
			Interval: time.Minute,
			Overlap:  2 * time.Minute,
			PageSize: 1000,
			Budget:   db.Budget{Name: "upstream", N: n, Per: time.Minute, Margin: db.MarginFor(time.Minute)},
		},
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return acts, env
}

func run[T any](t *testing.T, env *testsuite.TestActivityEnvironment, fn any, in any) T {
	t.Helper()
	v, err := env.ExecuteActivity(fn, in)
	require.NoError(t, err)
	var out T
	require.NoError(t, v.Get(&out))
	return out
}

// Ensure one fetcher at a time: a second sync cannot plan while the first
// holds the lease, and takes over once it lets go.
func TestFetcherLease(t *testing.T) {
	acts, env := newSyncActivities(t, nil, "", 5)
	a := run[activities.LeaseResult](t, env, acts.AcquireFetcher, activities.LeaseInput{Holder: "sync-a"})
	require.True(t, a.Held)
	b := run[activities.LeaseResult](t, env, acts.AcquireFetcher, activities.LeaseInput{Holder: "sync-b"})
	require.False(t, b.Held)
	require.Equal(t, "sync-a", b.Holder)
	p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: "sync-b"})
	require.True(t, p.LeaseLost, "only the holder plans")
	require.Equal(t, "sync-a", p.Holder)

	w := run[activities.AwaitSyncResult](t, env, acts.AwaitSync, activities.AwaitSyncInput{Holder: "sync-a", MaxWait: 300 * time.Millisecond})
	require.False(t, w.Free, "sync-a still holds it")
	_, err := env.ExecuteActivity(acts.ReleaseFetcher, activities.LeaseInput{Holder: "sync-a"})
	require.NoError(t, err)
	w = run[activities.AwaitSyncResult](t, env, acts.AwaitSync, activities.AwaitSyncInput{Holder: "sync-a"})
	require.True(t, w.Free)
	b = run[activities.LeaseResult](t, env, acts.AcquireFetcher, activities.LeaseInput{Holder: "sync-b"})
	require.True(t, b.Held)
}

// Ensure the fetcher's loop — plan, fetch, apply — stores a backfill
// exactly, moving the watermark with the data and spending one budget slot
// per page, every one settled.
func TestPlanFetchApply_Backfill(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(map[bool]string{true: "Ordered", false: "Unordered"}[ordered], func(t *testing.T) {
			mock, url := newMock(t, func(c *mockapi.Config) { c.Ordered = ordered })
			acts, env := newSyncActivities(t, nil, url, 100)
			acts.Sync.PageSize = 400 // several pages
			ctx := context.Background()
			var through []time.Time
			// Want the data through the mock's last item, as a manual sync
			// would: the planner waits out the guard, then reads it.
			want := mock.Start()
			for i := 0; ; i++ {
				require.Less(t, i, 50, "backfill does not end")
				p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: testWorkflowID, Want: want})
				require.False(t, p.LeaseLost)
				if !p.SyncedThrough.Before(want) {
					break
				}
				if p.Request.Kind == syncplan.Wait {
					require.LessOrEqual(t, p.Request.Wait, syncplan.GuardFor(acts.Sync.Interval)+time.Second)
					time.Sleep(p.Request.Wait)
					continue
				}
				require.Equal(t, syncplan.Fresh, p.Request.Kind, "nothing is late yet")
				page := run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: p})
				require.False(t, page.Skipped)
				require.False(t, page.FetchedTwice)
				r := run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
				require.False(t, r.Conflict)
				through = append(through, r.SyncedThrough)
			}
			n, err := acts.Store.DB().NewSelect().Table("transactions").Count(ctx)
			require.NoError(t, err)
			require.EqualValues(t, mock.ValidCount(), n)
			q, err := db.QuarantineCount(ctx, acts.Store.DB())
			require.NoError(t, err)
			require.Equal(t, mock.MalformedCount(), q)
			dbtest.RequireReconciled(t, acts.Store.DB())
			if ordered {
				// Sorted pages move the watermark page by page.
				moves := 0
				for i := 1; i < len(through); i++ {
					if through[i].After(through[i-1]) {
						moves++
					}
				}
				require.GreaterOrEqual(t, moves, 5, "watermark %v", through)
			}
			spent, err := acts.Sync.Budget.Spent(ctx, acts.Store.DB(), time.Now().Add(-time.Hour))
			require.NoError(t, err)
			require.Equal(t, len(through), spent["fresh"], "one budget slot per page")
			require.EqualValues(t, len(through), mock.Stats().Transactions.Received)
		})
	}
}

// Ensure the budget and the windows run on the database's clock: two
// workers whose clocks are 5 s apart (and one an hour ahead) share the
// budget exactly, and no window ends past the database's now less the
// guard.
func TestFetchPage_DatabaseClock(t *testing.T) {
	_, url := newMock(t, nil)
	d := dbtest.NewPostgres(t)
	ahead, envA := newSyncActivities(t, d, url, 2)
	behind, envB := newSyncActivities(t, d, url, 2)
	ahead.Now = func() time.Time { return time.Now().Add(5 * time.Second) }
	behind.Now = func() time.Time { return time.Now() }
	req := syncplan.Request{Kind: syncplan.Rescan, Start: ahead.Sync.Start, End: ahead.Sync.Start.Add(time.Minute), Page: 1, Limit: 10}

	p := run[activities.FetchPageResult](t, envA, ahead.FetchPage, activities.FetchPageInput{Plan: activities.PlanResult{Request: req}})
	require.False(t, p.Skipped)
	p = run[activities.FetchPageResult](t, envB, behind.FetchPage, activities.FetchPageInput{Plan: activities.PlanResult{Request: req}})
	require.False(t, p.Skipped)
	p = run[activities.FetchPageResult](t, envA, ahead.FetchPage, activities.FetchPageInput{Plan: activities.PlanResult{Request: req}})
	require.True(t, p.Skipped, "two workers, one budget of 2 a minute")

	ahead.Now = func() time.Time { return time.Now().Add(time.Hour) }
	ahead.Sync.Budget.Name = "other"
	sliding := syncplan.Request{Kind: syncplan.Fresh, Start: ahead.Sync.Start, EndAtFetch: true, Page: 1, Limit: 1000}
	before := time.Now()
	p = run[activities.FetchPageResult](t, envA, ahead.FetchPage, activities.FetchPageInput{Plan: activities.PlanResult{Request: sliding}})
	require.False(t, p.Skipped)
	guard := syncplan.GuardFor(ahead.Sync.Interval)
	require.False(t, p.Page.Request.End.After(time.Now().Add(-guard)), "window end %s past the database's now − %s", p.Page.Request.End, guard)
	require.False(t, p.Page.Request.End.Before(before.Add(-guard-2*time.Second)))
}

// Ensure FetchPage classifies upstream failures for Temporal's retries.
func TestFetchPage_Errors(t *testing.T) {
	mock, url := newMock(t, nil)
	acts, env := newSyncActivities(t, nil, url, 100)
	req := syncplan.Request{Kind: syncplan.Fresh, Start: acts.Sync.Start, End: time.Now().UTC(), Page: 1, Limit: 1000}
	in := activities.FetchPageInput{Plan: activities.PlanResult{Request: req}}
	t.Run("ErrRateLimitedWaitsRetryAfter", func(t *testing.T) {
		require.NoError(t, mock.InjectFault(mockapi.Fault{Status: http.StatusTooManyRequests, Count: 1}))
		_, err := env.ExecuteActivity(acts.FetchPage, in)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, activities.ErrTypeUpstreamRateLimited, appErr.Type())
		require.Positive(t, appErr.NextRetryDelay())
	})
	t.Run("ErrServerIsRetryable", func(t *testing.T) {
		require.NoError(t, mock.InjectFault(mockapi.Fault{Status: http.StatusBadGateway, Count: 1}))
		_, err := env.ExecuteActivity(acts.FetchPage, in)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.False(t, appErr.NonRetryable())
	})
	t.Run("ErrBadRequestIsNotRetryable", func(t *testing.T) {
		bad := in
		bad.Plan.Request.Page = 0
		_, err := env.ExecuteActivity(acts.FetchPage, bad)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.True(t, appErr.NonRetryable())
		require.Equal(t, activities.ErrTypeUpstreamRejected, appErr.Type())
	})
	t.Run("FailedRequestsAreSettled", func(t *testing.T) {
		// Each failed request still spent its slot, stamped when it ended.
		stamps, err := acts.Sync.Budget.Stamps(context.Background(), acts.Store.DB(), time.Now())
		require.NoError(t, err)
		for _, s := range stamps {
			require.False(t, s.After(time.Now()), "a settled grant is stamped when its answer came")
		}
	})
}

// Ensure the first sync state claims nothing at SYNC_START: the watermark
// starts a microsecond (the precision stored) before it, so X-Data-As-Of
// promises no item of that very instant before a page stores it, while
// the first read still begins at SYNC_START. Found by the whole-sync
// simulation (syncsim, seeds 823127416 and 704855517): with whole-second
// timestamps, items at SYNC_START were promised before they were stored.
func TestAcquireFetcher_FirstStateClaimsNothingAtSyncStart(t *testing.T) {
	acts, env := newSyncActivities(t, nil, "", 5)
	lease := run[activities.LeaseResult](t, env, acts.AcquireFetcher, activities.LeaseInput{Holder: testWorkflowID})
	require.True(t, lease.Held)
	require.True(t, lease.SyncedThrough.Equal(acts.Sync.Start.Add(-time.Microsecond)), "watermark %s", lease.SyncedThrough)
	asOf, err := acts.Store.AsOf(context.Background())
	require.NoError(t, err)
	require.True(t, asOf.Before(acts.Sync.Start), "X-Data-As-Of %s claims SYNC_START %s", asOf, acts.Sync.Start)
	p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: testWorkflowID})
	require.Equal(t, syncplan.Fresh, p.Request.Kind)
	require.True(t, p.Request.Start.Equal(acts.Sync.Start), "the first read begins at SYNC_START, not before: %s", p.Request.Start)
}

// Ensure a page applied against a stale plan stores its data but not the
// progress, and applying it again with the right version changes nothing.
func TestApplyPage_Conflict(t *testing.T) {
	acts, env := newSyncActivities(t, nil, "", 5)
	p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: testWorkflowID})
	require.Equal(t, syncplan.Fresh, p.Request.Kind)
	at := acts.Sync.Start.Add(time.Minute)
	page := activities.FetchPageResult{
		Items: []activities.Item{{ID: "t1", UserID: "u1", CreatedAt: at, Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(150)}},
		Page: syncplan.Page{
			Request: syncplan.Request{Kind: syncplan.Fresh, Start: acts.Sync.Start, End: at.Add(time.Minute), EndAtFetch: true, Page: 1, Limit: 1000},
			At:      time.Now(), Total: 1, TotalPages: 1, Count: 1, CreatedAt: []time.Time{at},
		},
	}
	stale := p
	stale.Version--
	r := run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: stale, Page: page})
	require.True(t, r.Conflict)
	require.Equal(t, 1, r.Inserted)
	require.True(t, r.SyncedThrough.Equal(acts.Sync.Start.Add(-time.Microsecond)), "the stale plan did not move the watermark")
	r = run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
	require.False(t, r.Conflict)
	require.Equal(t, 0, r.Inserted)
	require.Equal(t, 1, r.Duplicates)
	require.True(t, r.SyncedThrough.Equal(at.Add(time.Minute)))
	dbtest.RequireReconciled(t, acts.Store.DB())
}

// Ensure a fetch never runs without the fetcher lease: an attempt whose
// lease expired (a fetch retrying through a long upstream outage) and was
// taken by another sync asks upstream nothing and says so, so the same
// page is never fetched by two syncs.
func TestFetchPage_LeaseLost(t *testing.T) {
	var requests int
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[],"meta":{"totalItems":0,"itemCount":0,"itemsPerPage":1000,"totalPages":0,"currentPage":1}}`))
	}))
	t.Cleanup(hs.Close)
	acts, env := newSyncActivities(t, nil, hs.URL, 5)
	ctx := context.Background()
	_, held, err := db.AcquireLease(ctx, acts.Store.DB(), activities.FetcherLease, "another-sync", time.Minute)
	require.NoError(t, err)
	require.True(t, held)
	now := time.Now().UTC().Truncate(time.Second)
	plan := activities.PlanResult{Request: syncplan.Request{Kind: syncplan.Fresh, Start: now.Add(-time.Minute), End: now.Add(-10 * time.Second), Page: 1, Limit: 1000}}
	page := run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: plan})
	require.True(t, page.LeaseLost, "the lease is another sync's")
	require.Equal(t, "another-sync", page.Holder)
	require.Zero(t, requests, "nothing asked of upstream")

	// The lease free again, the same attempt takes it and fetches.
	require.NoError(t, db.ReleaseLease(ctx, acts.Store.DB(), activities.FetcherLease, "another-sync"))
	page = run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: plan})
	require.False(t, page.LeaseLost)
	require.Equal(t, 1, requests)
}
