package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/web"
)

func newFakeSyncer() *fakeSyncer {
	return &fakeSyncer{
		run: web.SyncRun{WorkflowID: "sync-manual-1", RunID: "run-1"},
		stats: web.SyncStats{
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
		require.Equal(t, []web.SyncRun{s.run}, s.waits, "waits for the run it started")
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
	ctx := context.Background()
	started := time.Date(2023, 3, 16, 12, 34, 0, 0, time.UTC)
	closed := started.Add(5 * time.Second)
	late := started.Add(-2 * time.Minute)
	s := newFakeSyncer()
	now := started.Add(90 * time.Second)
	app, d, _ := MustNewApp(t, web.Config{Syncer: s, Now: func() time.Time { return now }})

	t.Run("OK", func(t *testing.T) {
		stats := s.stats
		s.status = web.SyncStatus{
			LastRun: &web.SyncRunInfo{
				WorkflowID: "transactions-sync-2023-03-16T12:34:00Z", RunID: "r1", Status: "completed",
				StartedAt: started, ClosedAt: &closed, Stats: &stats,
			},
			SyncedThrough: started, LagSeconds: 12.5,
			BudgetUsed: 3, BudgetLimit: 5, BudgetWindow: "1m",
			Quarantined: 4, LateCoveredThrough: &late, PayoutsOverdue: 2,
			LateLagSeconds: 210, BudgetSpent: web.BudgetSpent{Fresh: 270, Rescan: 25, Probe: 5},
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
			"budgetUsed": 3, "budgetLimit": 5, "budgetWindow": "1m",
			"quarantined": 4, "lateCoveredThrough": "2023-03-16T12:32:00Z", "payoutsOverdue": 2,
			"lateLagSeconds": 210, "budgetSpentLastHour": {"fresh": 270, "rescan": 25, "probe": 5},
			"pagesFetchedTwice": 0, "fetcher": "transactions-sync-2023-03-16T12:34:00Z"}`, body)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	})

	t.Run("OKBeforeFirstRun", func(t *testing.T) {
		s.status = web.SyncStatus{BudgetLimit: 5, BudgetWindow: "1m"}
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"lastRun": null, "syncedThrough": null, "lagSeconds": 0, "budgetUsed": 0, "budgetLimit": 5,
			"budgetWindow": "1m", "quarantined": 0, "lateCoveredThrough": null, "payoutsOverdue": 0,
			"lateLagSeconds": 0, "budgetSpentLastHour": {"fresh": 0, "rescan": 0, "probe": 0},
			"pagesFetchedTwice": 0, "fetcher": null}`, body)
	})

	t.Run("OKSyncedThroughFromDatabase", func(t *testing.T) {
		s.status = web.SyncStatus{BudgetLimit: 5, BudgetWindow: "1m"}
		_, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, started, started)
		require.NoError(t, err)
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

	t.Run("ErrInternal", func(t *testing.T) {
		s.statusErr = fmt.Errorf("describe workflow: %w", context.DeadlineExceeded)
		defer func() { s.statusErr = nil }()
		resp, body := do(t, app, http.MethodGet, "/api/sync/status")
		msg := requireError(t, resp, body, http.StatusInternalServerError, "internal")
		require.Equal(t, "internal error", msg)
	})
}
