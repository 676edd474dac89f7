package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/syncplan"
	"scorekeeper/web"
)

func newFakeSyncer() *fakeSyncer {
	return &fakeSyncer{
		run: scorekeeper.SyncRun{WorkflowID: "sync-manual-1", RunID: "run-1"},
		stats: scorekeeper.SyncStats{
			Fetched: 1200, Inserted: 1180, Duplicates: 19, Quarantined: 1, Pages: 2,
			SyncedThrough: time.Date(2023, 3, 16, 12, 34, 0, 0, time.FixedZone("CET", 3600)),
		},
	}
}

func TestSync(t *testing.T) {
	s := newFakeSyncer()
	app, _, logs := MustNewApp(t, web.Config{Syncer: s})

	t.Run("OK", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
		require.Equal(t, `{"workflowId":"sync-manual-1","runId":"run-1"}`, body)
		require.Equal(t, "/api/sync/status", resp.Header.Get("Location"))
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	})

	t.Run("OKWaitFalse", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=false")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	})

	t.Run("OKWait", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `{"workflowId":"sync-manual-1","runId":"run-1","fetched":1200,"inserted":1180,`+
			`"duplicates":19,"quarantined":1,"pages":2,"syncedThrough":"2023-03-16T11:34:00Z"}`, body)
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Equal(t, []scorekeeper.SyncRun{s.run}, s.waits, "waits for the run it started")
	})

	t.Run("ErrBadWait", func(t *testing.T) {
		for _, v := range []string{"yes", "1", "TRUE", ""} {
			resp, body := do(t, app, http.MethodPost, "/api/sync?wait="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "wait")
		}
	})

	t.Run("ErrUnknownParam", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync?force=true")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
		resp, body = do(t, app, http.MethodPost, "/api/sync?wait=true&wait=false")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		s.mu.Lock()
		s.startErr = scorekeeper.Errorf(scorekeeper.EUnavailable, "temporal is unreachable")
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.startErr = nil; s.mu.Unlock() }()
		resp, body := do(t, app, http.MethodPost, "/api/sync")
		msg := requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
		require.Equal(t, "temporal is unreachable", msg)
	})

	t.Run("ErrConflictPassesThrough", func(t *testing.T) {
		s.mu.Lock()
		s.waitErr = scorekeeper.Errorf(scorekeeper.EConflict, "sync state moved")
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.waitErr = nil; s.mu.Unlock() }()
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
		requireError(t, resp, body, http.StatusConflict, "conflict")
	})

	t.Run("ErrInternalNotLeaked", func(t *testing.T) {
		s.mu.Lock()
		s.waitErr = errors.New("workflow execution error: activity task failed: dial tcp 10.0.0.7:5432: connection refused")
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.waitErr = nil; s.mu.Unlock() }()
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
		msg := requireError(t, resp, body, http.StatusInternalServerError, "internal")
		require.Equal(t, "internal error", msg)
		require.NotContains(t, body, "10.0.0.7")
		require.Contains(t, logs.String(), "10.0.0.7", "the cause is logged")
	})

	t.Run("OKWaitTimeoutIsAccepted", func(t *testing.T) {
		s := newFakeSyncer()
		s.block = true
		app, _, _ := MustNewApp(t, web.Config{Syncer: s, SyncWaitTimeout: 50 * time.Millisecond})
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
		require.Equal(t, `{"workflowId":"sync-manual-1","runId":"run-1"}`, body)
	})

	t.Run("ErrMethodNotAllowed", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/sync")
		requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
		require.Equal(t, "POST", resp.Header.Get("Allow"))
	})
}

func TestSync_NoSyncer(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{})
	t.Run("ErrStartUnavailable", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync")
		requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
	})
	t.Run("ErrStatusUnavailable", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
	})
}

func TestSync_AdminToken(t *testing.T) {
	const token = "s3cret-token"
	s := newFakeSyncer()
	app, _, _ := MustNewApp(t, web.Config{Syncer: s, AdminToken: token})

	t.Run("ErrMissingToken", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync")
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		require.Equal(t, `Bearer realm="scorekeeper"`, resp.Header.Get("WWW-Authenticate"))
	})

	t.Run("ErrMalformedHeader", func(t *testing.T) {
		for _, h := range []string{"Bearer", "Bearer ", token, "Basic " + token, "Bearer" + token, "Token " + token} {
			resp, body := do(t, app, http.MethodPost, "/api/sync", "Authorization", h)
			requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		}
	})

	t.Run("ErrWrongToken", func(t *testing.T) {
		for _, got := range []string{"wrong", token + "x", token[:len(token)-1], strings.ToUpper(token)} {
			resp, body := do(t, app, http.MethodPost, "/api/sync", "Authorization", "Bearer "+got)
			msg := requireError(t, resp, body, http.StatusForbidden, "forbidden")
			require.NotContains(t, msg, token)
		}
	})

	t.Run("ErrAuthBeforeParams", func(t *testing.T) {
		// Without the token, nothing about the request is judged.
		resp, body := do(t, app, http.MethodPost, "/api/sync?bogus=1")
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	})

	t.Run("OK", func(t *testing.T) {
		s.mu.Lock()
		before := s.starts
		s.mu.Unlock()
		for _, h := range []string{"Bearer " + token, "bearer " + token} {
			resp, body := do(t, app, http.MethodPost, "/api/sync", "Authorization", h)
			require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
		}
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Equal(t, before+3, s.starts, "only authorised requests start syncs")
	})

	t.Run("OKStatusNeedsNoToken", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	})
}

func TestSyncStatus(t *testing.T) {
	started := time.Date(2023, 3, 16, 12, 34, 0, 0, time.UTC)
	closed := started.Add(5 * time.Second)
	late := started.Add(-2 * time.Minute)
	s := newFakeSyncer()
	now := started.Add(90 * time.Second)
	app, store, _ := MustNewApp(t, web.Config{Syncer: s, Now: func() time.Time { return now }})

	t.Run("OK", func(t *testing.T) {
		stats := s.stats
		s.status = scorekeeper.SyncStatus{
			LastRun: &scorekeeper.SyncRunInfo{
				WorkflowID: "transactions-sync-2023-03-16T12:34:00Z", RunID: "r1", Status: "completed",
				StartedAt: started, ClosedAt: &closed, Stats: &stats,
			},
			Now: started.Add(12500 * time.Millisecond), SyncedThrough: started,
			BudgetUsed: 3, BudgetLimit: 5, BudgetWindow: time.Minute,
			Quarantined: 4, LateCoveredThrough: late, PayoutsOverdue: 2,
			BudgetSpent:       map[scorekeeper.BudgetKind]int{scorekeeper.BudgetFresh: 270, scorekeeper.BudgetRescan: 25, scorekeeper.BudgetProbe: 5},
			PagesFetchedTwice: 0, Fetcher: "transactions-sync-2023-03-16T12:34:00Z",
		}
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{
			"lastRun": {"workflowId": "transactions-sync-2023-03-16T12:34:00Z", "runId": "r1", "status": "completed",
				"startedAt": "2023-03-16T12:34:00Z", "closedAt": "2023-03-16T12:34:05Z",
				"stats": {"fetched": 1200, "inserted": 1180, "duplicates": 19, "quarantined": 1, "pages": 2,
					"syncedThrough": "2023-03-16T11:34:00Z"}},
			"syncedThrough": "2023-03-16T12:34:00Z", "lagSeconds": 12.5,
			"budgetUsed": 3, "budgetLimit": 5, "budgetWindow": "1m0s",
			"quarantined": 4, "lateCoveredThrough": "2023-03-16T12:32:00Z", "payoutsOverdue": 2,
			"lateLagSeconds": 132.5, "budgetSpentLastHour": {"fresh": 270, "rescan": 25, "probe": 5},
			"pagesFetchedTwice": 0, "fetcher": "transactions-sync-2023-03-16T12:34:00Z"}`, body)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	})

	t.Run("OKBeforeFirstRun", func(t *testing.T) {
		s.status = scorekeeper.SyncStatus{BudgetLimit: 5, BudgetWindow: time.Minute}
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"lastRun": null, "syncedThrough": null, "lagSeconds": 0, "budgetUsed": 0, "budgetLimit": 5,
			"budgetWindow": "1m0s", "quarantined": 0, "lateCoveredThrough": null, "payoutsOverdue": 0,
			"lateLagSeconds": 0, "budgetSpentLastHour": {"fresh": 0, "rescan": 0, "probe": 0},
			"pagesFetchedTwice": 0, "fetcher": null}`, body)
	})

	t.Run("OKSyncedThroughFromStore", func(t *testing.T) {
		s.status = scorekeeper.SyncStatus{BudgetLimit: 5, BudgetWindow: time.Minute}
		store.setAsOf(started)
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, `"syncedThrough":"2023-03-16T12:34:00Z","lagSeconds":90,`)
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		s.statusErr = scorekeeper.Errorf(scorekeeper.EUnavailable, "temporal is unreachable")
		defer func() { s.statusErr = nil }()
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
	})

	t.Run("ErrStoreUnavailable", func(t *testing.T) {
		// The syncer leaves syncedThrough to the store, which is down.
		s.status = scorekeeper.SyncStatus{}
		store.fail(errUnreachable)
		defer store.fail(nil)
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		msg := requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
		require.Equal(t, "the database is unreachable", msg)
	})

	t.Run("ErrInternal", func(t *testing.T) {
		s.statusErr = fmt.Errorf("describe workflow: %w", context.DeadlineExceeded)
		defer func() { s.statusErr = nil }()
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		msg := requireError(t, resp, body, http.StatusInternalServerError, "internal")
		require.Equal(t, "internal error", msg)
	})
}

// Ensure each client is limited on both sync routes: POST /api/sync, more
// tightly when it waits, and GET /api/sync/status, with 429, Retry-After
// and the error shape; that the limit is counted before the admin token is
// checked; and that other clients are not affected.
func TestSync_RateLimits(t *testing.T) {
	s := newFakeSyncer()
	app, _, _ := MustNewApp(t, web.Config{
		Syncer:              s,
		AdminToken:          "tok",
		SyncRateLimit:       web.RateLimit{N: 3, Per: time.Minute},
		SyncWaitRateLimit:   web.RateLimit{N: 1, Per: time.Minute},
		SyncStatusRateLimit: web.RateLimit{N: 2, Per: time.Minute},
	})
	auth := []string{"Authorization", "Bearer tok"}
	limited := func(resp *http.Response, body string) string {
		t.Helper()
		msg := requireError(t, resp, body, http.StatusTooManyRequests, "rate_limited")
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		return msg
	}

	t.Run("StartAndWait", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, body = do(t, app, http.MethodPost, "/api/sync?wait=true", auth...)
		require.Contains(t, limited(resp, body), "wait=true")
		resp, body = do(t, app, http.MethodPost, "/api/sync", auth...)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "a start without wait has room left: %s", body)
		resp, body = do(t, app, http.MethodPost, "/api/sync", auth...)
		limited(resp, body)
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Equal(t, 2, s.starts, "a limited request starts nothing")
	})

	t.Run("CountedBeforeTheToken", func(t *testing.T) {
		// This client used its 3 starts above; without a token it is
		// still told to slow down, and learns nothing about tokens.
		resp, body := do(t, app, http.MethodPost, "/api/sync", "Authorization", "Bearer guess")
		limited(resp, body)
	})

	t.Run("Status", func(t *testing.T) {
		for range 2 {
			resp, body := do(t, app, http.MethodGet, "/api/sync/status")
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
		}
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		limited(resp, body)
	})

	t.Run("PerClient", func(t *testing.T) {
		// Behind a proxy Fiber sees the proxy's address; with app.Test
		// every client is 0.0.0.0, so another client is another app's
		// fresh limiter: limits are per process and per client, never
		// shared between the two.
		other, _, _ := MustNewApp(t, web.Config{Syncer: s, SyncRateLimit: web.RateLimit{N: 1, Per: time.Minute}})
		resp, body := do(t, other, http.MethodPost, "/api/sync")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	})
}

// Ensure a burst of POST /api/sync?wait=true cannot tie up the process:
// past MaxSyncWaits waiting at once, a request still starts the sync but
// is answered 202 at once, and a slot is free again once a wait ends.
func TestSync_WaitSlots(t *testing.T) {
	s := newFakeSyncer()
	s.gate = make(chan struct{})
	app, _, _ := MustNewApp(t, web.Config{Syncer: s, MaxSyncWaits: 1})
	first := make(chan int, 1)
	go func() {
		resp, err := app.Test(httptest.NewRequest(http.MethodPost, "/api/sync?wait=true", nil), -1)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.waits) == 1
	}, 5*time.Second, time.Millisecond, "the first request waits")

	start := time.Now()
	resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Equal(t, `{"workflowId":"sync-manual-1","runId":"run-1"}`, body)
	require.Equal(t, "/api/sync/status", resp.Header.Get("Location"))
	require.Less(t, time.Since(start), time.Second, "answered without waiting")
	s.mu.Lock()
	require.Equal(t, 2, s.starts, "the sync was asked for all the same")
	require.Len(t, s.waits, 1)
	s.mu.Unlock()

	close(s.gate)
	require.Equal(t, http.StatusOK, <-first)
	resp, body = do(t, app, http.MethodPost, "/api/sync?wait=true")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the slot is free again: %s", body)
}

// storeStatusSyncer reads its status from the store, as the Temporal
// adapter (worker.Client) does.
type storeStatusSyncer struct {
	*fakeSyncer
	store scorekeeper.Store
}

func (s storeStatusSyncer) Status(ctx context.Context) (scorekeeper.SyncStatus, error) {
	return s.store.SyncStatus(ctx)
}

// Ensure GET /api/sync/status is 503, not 500, when the database its
// status comes from is down, without the driver's words, and 400 on
// query parameters it does not take.
func TestSyncStatus_Errors(t *testing.T) {
	down := mustOpenDownStore(t)
	app, _, logs := MustNewApp(t, web.Config{Store: down, Syncer: storeStatusSyncer{newFakeSyncer(), down}})

	t.Run("ErrDatabaseDown", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		msg := requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
		require.Equal(t, "the database is unreachable", msg)
		require.NotContains(t, body, "127.0.0.1")
		require.Contains(t, logs.String(), "127.0.0.1:1", "the cause is logged")
	})

	t.Run("ErrUnknownParam", func(t *testing.T) {
		for _, target := range []string{"/api/sync/status?verbose=1", "/api/sync/status?wait=true"} {
			resp, body := do(t, app, http.MethodGet, target)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "unknown query parameter")
		}
	})

	t.Run("ErrUnknownParamWithoutSyncer", func(t *testing.T) {
		// The request is judged before what this process can do.
		bare, _, _ := MustNewApp(t, web.Config{Store: down})
		resp, body := do(t, bare, http.MethodGet, "/api/sync/status?x=1")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
	})
}

// Ensure that once POST /api/sync?wait=true (or a repair it waited for)
// has answered, the same process serves the written data, even though
// its real Cache held an answer from before and has not been polled by
// its own loop since.
func TestSync_ReadYourWrites(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	MustSeed(t, d)
	apply := func(txs ...scorekeeper.Transaction) {
		t.Helper()
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, t0)
		require.NoError(t, err)
	}
	st, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, t0, t0)
	require.NoError(t, err)
	dbStore := db.NewStore(d, db.Budget{})
	cache := web.NewCache(dbStore, nil)
	// Not cache.Run: no poll but the ones made here and by the handlers.
	require.NoError(t, cache.Poll(ctx))
	s := newFakeSyncer()
	app, _, _ := MustNewApp(t, web.Config{Store: dbStore, Syncer: s, Reconciler: s, Cache: cache})
	const target = "/api/users/445566/summary"
	get := func(target string) string {
		t.Helper()
		resp, body := do(t, app, http.MethodGet, target)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		return body
	}
	require.Equal(t, seedSummary, get(target))
	require.JSONEq(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`, get("/api/payouts"))

	// The control: a write the cache has not polled is not served, so the
	// answers above come from memory, and would still after a sync unless
	// the sync route catches the cache up.
	apply(tx("c1", "445566", scorekeeper.TxEarned, "10"))
	require.Equal(t, seedSummary, get(target))

	// The sync stores a page, as ApplyPage does: a transaction created at
	// the request's time less the guard, and the watermark through it, in
	// one database transaction.
	through := time.Now().Add(-syncplan.GuardFor(time.Minute))
	s.onWait = func() {
		c2 := tx("c2", "445566", scorekeeper.TxPayout, "5")
		c2.CreatedAt = through
		_, err := db.ApplyBatch(ctx, d, db.Batch{
			Transactions: []scorekeeper.Transaction{c2},
			Cursor:       &db.CursorUpdate{Name: db.TransactionsStream, ExpectVersion: st.Version, SyncedThrough: through},
		}, time.Now())
		require.NoError(t, err)
	}
	resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = do(t, app, http.MethodGet, target)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, `{"userId":"445566","balance":24.2,"earned":61.2,"spent":12,"payout":25,"paidOut":20}`, body)
	requireDataAsOf(t, resp, through)
	require.JSONEq(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":25}]`, get("/api/payouts"))

	// A repair the client waited for, likewise.
	s.onWait = func() {
		_, err := d.NewUpdate().Table("user_summaries").Set("spent_cents = 0").Where("user_id = '445566'").Exec(ctx)
		require.NoError(t, err)
		apply(tx("c3", "445566", scorekeeper.TxEarned, "1")) // records the change in the feed
	}
	resp, body = do(t, app, http.MethodPost, "/api/reconcile?wait=true&repair=true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, `{"userId":"445566","balance":37.2,"earned":62.2,"spent":0,"payout":25,"paidOut":20}`, get(target))
}

// requireDataAsOf requires resp's X-Data-As-Of to be no earlier than
// through, in the header's whole seconds.
func requireDataAsOf(tb testing.TB, resp *http.Response, through time.Time) {
	tb.Helper()
	h := resp.Header.Get(web.HeaderDataAsOf)
	asOf, err := time.Parse(time.RFC3339, h)
	require.NoError(tb, err, "X-Data-As-Of: %q", h)
	require.False(tb, asOf.Before(through.Truncate(time.Second)), "X-Data-As-Of %s is before %s", h, through.UTC())
}

// Ensure POST /api/sync?wait=true answers 200 only once the data through
// the request's time, less the guard (design §10.2), is stored, and that
// the process then serves all of it through its cache: every transaction
// created at or before that instant in the summaries and the payout
// listing, and X-Data-As-Of and the answer's syncedThrough no earlier than
// it. The cache in front of the fake store is polled by nothing but the
// routes (no Cache.Run, and the store does not catch it up), so what it
// serves after the answer is what the route caught up with; the control
// shows it serves from memory.
func TestSync_WaitStoresThroughRequest(t *testing.T) {
	ctx := context.Background()
	guard := syncplan.GuardFor(time.Minute)
	store := newFakeStore().seed()
	store.setAsOf(t0)
	cache := web.NewCache(store, nil)
	s := newFakeSyncer()
	app, _, _ := MustNewApp(t, web.Config{Store: store, Syncer: s, Cache: cache})
	get := func(target string) (*http.Response, string) {
		t.Helper()
		resp, body := do(t, app, http.MethodGet, target)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		return resp, body
	}
	at := func(id, user string, typ scorekeeper.TxType, amount string, created time.Time) scorekeeper.Transaction {
		x := tx(id, user, typ, amount)
		x.CreatedAt = created
		return x
	}

	require.NoError(t, cache.Poll(ctx))
	_, body := get(summaryURL("445566"))
	require.Equal(t, seedSummary, body)
	_, body = get("/api/payouts")
	require.Equal(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`, body)
	// The control: a write the cache has not polled is not served.
	store.apply(at("x1", "445566", scorekeeper.TxEarned, "1", t0))
	_, body = get(summaryURL("445566"))
	require.Equal(t, seedSummary, body, "served from memory")

	// The sync stores everything created through the request's time less
	// the guard, and the watermark through it, before the wait ends.
	requested := time.Now()
	through := requested.Add(-guard)
	s.onWait = func() {
		store.apply(
			at("w1", "445566", scorekeeper.TxEarned, "2", through.Add(-time.Second)),
			at("w2", "445566", scorekeeper.TxSpent, "0.5", through),
			at("w3", "778899", scorekeeper.TxPayout, "7", through),
		)
		store.setAsOf(through)
		s.stats.SyncedThrough = through
	}
	resp, body := do(t, app, http.MethodPost, "/api/sync?wait=true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var answer struct {
		SyncedThrough time.Time `json:"syncedThrough"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &answer))
	require.False(t, answer.SyncedThrough.Before(through), "syncedThrough %s is before the request less the guard (%s)", answer.SyncedThrough, through)

	resp, body = get(summaryURL("445566"))
	require.Equal(t, `{"userId":"445566","balance":21.7,"earned":54.2,"spent":12.5,"payout":20,"paidOut":20}`, body,
		"every transaction through the request less the guard is served")
	requireDataAsOf(t, resp, through)
	resp, body = get("/api/payouts")
	require.Equal(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20},{"userId":"778899","payoutAmount":7}]`, body)
	requireDataAsOf(t, resp, through)
}
