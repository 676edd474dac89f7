package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
	"scorekeeper/upstream"
)

var start = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newSyncActivities(t *testing.T, upstreamURL string) (*activities.Activities, *clock, *testsuite.TestActivityEnvironment) {
	t.Helper()
	if upstreamURL == "" {
		upstreamURL = "http://127.0.0.1:1"
	}
	up, err := upstream.New(upstreamURL, 2*time.Second, nil)
	require.NoError(t, err)
	c := &clock{t: start.Add(10*time.Minute + 500*time.Millisecond)}
	acts := &activities.Activities{
		DB:       dbtest.NewPostgres(t),
		Upstream: up,
		Now:      c.now,
		Sync: activities.SyncConfig{
			Start:    start,
			Interval: time.Minute,
			Overlap:  2 * time.Minute,
			PageSize: 1000,
			Budget:   db.Budget{Name: "upstream", N: 2, Per: time.Minute},
		},
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return acts, c, env
}

func plan(t *testing.T, env *testsuite.TestActivityEnvironment, acts *activities.Activities, in activities.PlanInput) activities.PlanResult {
	t.Helper()
	v, err := env.ExecuteActivity(acts.PlanPage, in)
	require.NoError(t, err)
	var p activities.PlanResult
	require.NoError(t, v.Get(&p))
	return p
}

func apply(t *testing.T, env *testsuite.TestActivityEnvironment, acts *activities.Activities, p activities.PlanResult, page activities.FetchPageResult) activities.ApplyPageResult {
	t.Helper()
	v, err := env.ExecuteActivity(acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
	require.NoError(t, err)
	var r activities.ApplyPageResult
	require.NoError(t, v.Get(&r))
	return r
}

func item(id, user string, typ scorekeeper.TxType, cents int64) activities.Item {
	return activities.Item{ID: id, UserID: user, CreatedAt: start.Add(time.Minute), Type: typ, Amount: scorekeeper.AmountFromCents(cents)}
}

// Ensure windows: fresh pages first, the watermark moves only when a window
// closes, then one overlap re-scan per watermark advance.
func TestPlanAndApply_Windowing(t *testing.T) {
	acts, clk, env := newSyncActivities(t, "")
	all := activities.PlanInput{NewWindowAfter: time.Second, AllowRescan: true}
	end := start.Add(10 * time.Minute) // now, truncated to the second

	p := plan(t, env, acts, all)
	require.Equal(t, activities.KindFresh, p.Kind)
	require.Equal(t, activities.PageRequest{Start: start, End: end, Page: 1, Limit: 1000}, p.Request)

	t.Run("MidWindowKeepsWatermark", func(t *testing.T) {
		r := apply(t, env, acts, p, activities.FetchPageResult{Items: []activities.Item{item("t1", "u1", scorekeeper.TxEarned, 150)}, TotalPages: 2})
		require.Equal(t, 1, r.Inserted)
		require.True(t, r.SyncedThrough.Equal(start), "watermark moves only when the window closes")
		clk.t = clk.t.Add(30 * time.Second)
		p = plan(t, env, acts, all)
		require.Equal(t, activities.PageRequest{Start: start, End: end, Page: 2, Limit: 1000}, p.Request, "same window, next page")
	})
	t.Run("WindowCloses", func(t *testing.T) {
		r := apply(t, env, acts, p, activities.FetchPageResult{Items: []activities.Item{
			item("t1", "u1", scorekeeper.TxEarned, 150), // seen on page 1 too
			item("t2", "u1", scorekeeper.TxPayout, 50),
		}, TotalPages: 2})
		require.Equal(t, 1, r.Inserted)
		require.Equal(t, 1, r.Duplicates)
		require.Equal(t, []string{"u1"}, r.PayoutUsers)
		require.True(t, r.SyncedThrough.Equal(end))
	})
	t.Run("RescanOnceOverlapPassed", func(t *testing.T) {
		// The window was opened at 10m; what it read before 8m was already
		// 2m old (no re-scan needed); 8m..10m is re-scanned once 2m have
		// passed behind it, in chunks of at least an interval.
		require.True(t, plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Minute, AllowRescan: true}).Done,
			"at 10m30s only 30 s of the pending part has aged past the overlap")
		clk.t = start.Add(11*time.Minute + 500*time.Millisecond)
		p = plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour, AllowRescan: true})
		require.Equal(t, activities.KindRescan, p.Kind)
		require.Equal(t, activities.PageRequest{Start: start.Add(8 * time.Minute), End: start.Add(9 * time.Minute), Page: 1, Limit: 1000}, p.Request)
		require.True(t, plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour}).Done, "no re-scan unless allowed")

		late := item("late", "u2", scorekeeper.TxEarned, 99)
		r := apply(t, env, acts, p, activities.FetchPageResult{Items: []activities.Item{late}, TotalPages: 1})
		require.Equal(t, 1, r.Inserted, "the re-scan catches the late item")
		st, err := db.GetSyncState(context.Background(), acts.DB, db.TransactionsStream)
		require.NoError(t, err)
		through, ok := activities.LateCoverage(st.Cursor)
		require.True(t, ok)
		require.Equal(t, start.Add(9*time.Minute), through)
		require.True(t, plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour, AllowRescan: true}).Done,
			"nothing more has aged past the overlap")

		clk.t = start.Add(12*time.Minute + 500*time.Millisecond)
		p = plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour, AllowRescan: true})
		require.Equal(t, activities.PageRequest{Start: start.Add(9 * time.Minute), End: end, Page: 1, Limit: 1000}, p.Request,
			"the re-scan stops at the watermark")
		apply(t, env, acts, p, activities.FetchPageResult{TotalPages: 1})
	})
	t.Run("NextFreshWindow", func(t *testing.T) {
		clk.t = clk.t.Add(time.Minute)
		p = plan(t, env, acts, all)
		require.Equal(t, activities.KindFresh, p.Kind)
		require.True(t, p.Request.Start.Equal(end))
	})
	t.Run("ConflictStoresDataNotProgress", func(t *testing.T) {
		stale := p
		stale.Version--
		r := apply(t, env, acts, stale, activities.FetchPageResult{Items: []activities.Item{item("t3", "u3", scorekeeper.TxSpent, 1)}, TotalPages: 1})
		require.True(t, r.Conflict)
		require.Equal(t, 1, r.Inserted)
		require.True(t, r.SyncedThrough.Equal(end), "the stale plan did not move the watermark")
		// Applying the same page with the right version is idempotent.
		r = apply(t, env, acts, p, activities.FetchPageResult{Items: []activities.Item{item("t3", "u3", scorekeeper.TxSpent, 1)}, TotalPages: 1})
		require.False(t, r.Conflict)
		require.Equal(t, 0, r.Inserted)
		dbtest.RequireReconciled(t, acts.DB)
	})
}

// Ensure FetchPage makes one request within the budget, and classifies
// upstream failures for Temporal's retries.
func TestFetchPage(t *testing.T) {
	cfg := mockapi.DefaultConfig()
	cfg.Users, cfg.Transactions, cfg.History, cfg.LiveRate = 10, 30, time.Hour, 0
	cfg.Start = start.Add(time.Hour)
	cfg.RateLimit = 0
	cfg.Now = func() time.Time { return start.Add(2 * time.Hour) }
	mock, err := mockapi.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(mock)
	defer hs.Close()
	acts, _, env := newSyncActivities(t, hs.URL)
	req := activities.PageRequest{Start: start, End: start.Add(2 * time.Hour), Page: 1, Limit: 1000}

	t.Run("OK", func(t *testing.T) {
		v, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: req})
		require.NoError(t, err)
		var p activities.FetchPageResult
		require.NoError(t, v.Get(&p))
		require.Equal(t, 1, p.TotalPages)
		require.Equal(t, mock.ValidCount(), len(p.Items))
	})
	t.Run("NoWaitSkipsWhenBudgetUsed", func(t *testing.T) {
		// The budget is 2 a minute; the first is used above.
		_, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: req, NoWait: true})
		require.NoError(t, err)
		v, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: req, NoWait: true})
		require.NoError(t, err)
		var p activities.FetchPageResult
		require.NoError(t, v.Get(&p))
		require.True(t, p.Skipped)
		require.EqualValues(t, 2, mock.Stats().Transactions.Received)
	})
	t.Run("ErrRateLimitedWaitsRetryAfter", func(t *testing.T) {
		acts.Sync.Budget.Name = "other"
		require.NoError(t, mock.InjectFault(mockapi.Fault{Status: http.StatusTooManyRequests, Count: 1}))
		_, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: req})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, activities.ErrTypeUpstreamRateLimited, appErr.Type())
		require.Positive(t, appErr.NextRetryDelay())
	})
	t.Run("ErrServerIsRetryable", func(t *testing.T) {
		acts.Sync.Budget.Name = "third"
		require.NoError(t, mock.InjectFault(mockapi.Fault{Status: http.StatusBadGateway, Count: 1}))
		_, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: req})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.False(t, appErr.NonRetryable())
	})
	t.Run("ErrBadRequestIsNotRetryable", func(t *testing.T) {
		acts.Sync.Budget.Name = "fourth"
		bad := req
		bad.Page = 0
		_, err := env.ExecuteActivity(acts.FetchPage, activities.FetchPageInput{Request: bad})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.True(t, appErr.NonRetryable())
		require.Equal(t, activities.ErrTypeUpstreamRejected, appErr.Type())
	})
}

// Ensure fresh windows are sized to whole pages from the last window's
// volume, and open as soon as a page of data has accrued.
func TestPlanPage_PageAlignedWindows(t *testing.T) {
	acts, clk, env := newSyncActivities(t, "")
	acts.Sync.Overlap = 0
	first := plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Second})
	w := start.Add(10 * time.Minute)
	// 6000 items in 600 s: 10 a second, so a page of 950 is 95 s.
	apply(t, env, acts, first, activities.FetchPageResult{TotalPages: 6, TotalItems: 6000})
	first.Request.Page = 6
	first.Version++
	r := apply(t, env, acts, first, activities.FetchPageResult{TotalPages: 6, TotalItems: 6000})
	require.True(t, r.SyncedThrough.Equal(w))

	clk.t = w.Add(50 * time.Second)
	require.True(t, plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour}).Done, "less than a page accrued")

	clk.t = w.Add(100 * time.Second)
	p := plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour})
	require.Equal(t, activities.KindFresh, p.Kind, "a page accrued: open a window before the interval")
	require.Equal(t, w.Add(95*time.Second), p.Request.End)

	clk.t = w.Add(200 * time.Second)
	p = plan(t, env, acts, activities.PlanInput{NewWindowAfter: time.Hour})
	require.Equal(t, w.Add(190*time.Second), p.Request.End, "two whole pages")
}
