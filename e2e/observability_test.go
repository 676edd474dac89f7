package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/db/dbtest"
)

// Ensure the worker serves, on METRICS_ADDR, /readyz and a /metrics that
// carries the Temporal SDK's own series beside ours.
func TestWorker_MetricsAndReadiness(t *testing.T) {
	w := newWorldTB(t, 200, 2000, func(c *mockConfig) { c.LateRate = 0 })
	addr := freeAddr(t)
	env := map[string]string{"METRICS_ADDR": addr}
	for k, v := range w.env {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	startProc(t, "worker", "worker", env)
	waitHTTP(t, "http://"+addr+"/readyz")
	eventually(t, time.Minute, "Temporal SDK series on the worker's /metrics", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		ok := resp.StatusCode == http.StatusOK &&
			strings.Contains(body, "temporal_workflow_task_execution_latency") &&
			strings.Contains(body, "temporal_activity_execution_latency") &&
			strings.Contains(body, "scorekeeper_sync_lag_seconds")
		return ok, resp.Status
	})
	w.requireExact(t, 3*time.Minute)
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.NotContains(t, string(b), "temporal_temporal_", "no doubled prefix")
}

// Ensure `scorekeeper dev` serves on the API's /metrics the in-process
// worker's Temporal SDK series, and GET /api/quarantine lists each
// quarantined item with its raw JSON and reason behind the admin token.
func TestDev_MetricsAndQuarantine(t *testing.T) {
	srv, _ := startTemporal(t)
	addr, mock := freeAddr(t), freeAddr(t)
	startProc(t, "dev", "dev", map[string]string{
		"DATABASE_URL":        dbtest.NewPostgresURL(t),
		"TEMPORAL_ADDRESS":    srv.FrontendHostPort(),
		"TEMPORAL_TASK_QUEUE": "scorekeeper-dev-e2e",
		"HTTP_ADDR":           addr,
		"MOCKAPI_ADDR":        mock,
		"ADMIN_TOKEN":         "s3cret",
		"MOCK_MALFORMED_RATE": "0.05",
		"MOCK_TRANSACTIONS":   "600",
		"LOG_LEVEL":           "warn",
	})
	base := "http://" + addr
	waitHTTP(t, base+"/readyz")
	get := func(path, token string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	eventually(t, 2*time.Minute, "temporal_* series and quarantined items", func() (bool, string) {
		_, metrics := get("/metrics", "")
		resp, body := get("/api/quarantine?limit=5", "s3cret")
		ok := strings.Contains(metrics, "temporal_workflow_task_execution_latency") &&
			resp.StatusCode == http.StatusOK && strings.Contains(body, `"raw"`) && strings.Contains(body, `"reason"`)
		return ok, resp.Status + " " + tail(body, 200)
	})
	resp, _ := get("/api/quarantine", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = get("/api/quarantine", "wrong")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// GET /api/sync/status and /metrics serve one read model: between two
	// equal statuses (nothing moved), /metrics (cached up to 5 s) shows
	// the same figures.
	type status struct {
		SyncedThrough      *time.Time     `json:"syncedThrough"`
		LateCoveredThrough *time.Time     `json:"lateCoveredThrough"`
		BudgetLimit        int            `json:"budgetLimit"`
		BudgetSpent        map[string]int `json:"budgetSpentLastHour"`
		Quarantined        int            `json:"quarantined"`
		PagesFetchedTwice  int            `json:"pagesFetchedTwice"`
		PayoutsOverdue     int            `json:"payoutsOverdue"`
	}
	read := func() (status, string) {
		_, body := get("/api/sync/status", "")
		var st status
		require.NoError(t, json.Unmarshal([]byte(body), &st), body)
		return st, body
	}
	eventually(t, 2*time.Minute, "/api/sync/status and /metrics to agree", func() (bool, string) {
		before, body := read()
		_, metrics := get("/metrics", "")
		after, _ := read()
		if !reflect.DeepEqual(before, after) || before.SyncedThrough == nil {
			return false, "status moved, or no watermark yet: " + body
		}
		const lateSeries = "scorekeeper_sync_late_covered_through_timestamp_seconds"
		if _, ok := metricValue(metrics, lateSeries); ok != (before.LateCoveredThrough != nil) {
			return false, fmt.Sprintf("%s on /metrics: %v, lateCoveredThrough %v", lateSeries, ok, before.LateCoveredThrough)
		}
		want := map[string]float64{
			"scorekeeper_sync_synced_through_timestamp_seconds": float64(before.SyncedThrough.Unix()),
			"scorekeeper_upstream_budget_limit":                 float64(before.BudgetLimit),
			"scorekeeper_transactions_quarantined_total":        float64(before.Quarantined),
			"scorekeeper_upstream_pages_fetched_twice_total":    float64(before.PagesFetchedTwice),
			"scorekeeper_payouts_overdue":                       float64(before.PayoutsOverdue),
		}
		if before.LateCoveredThrough != nil {
			want[lateSeries] = float64(before.LateCoveredThrough.Unix())
		}
		for _, k := range []string{"fresh", "rescan", "probe"} {
			want[`scorekeeper_upstream_budget_spent_last_hour{kind="`+k+`"}`] = float64(before.BudgetSpent[k])
		}
		for series, v := range want {
			got, ok := metricValue(metrics, series)
			if !ok || got != v {
				return false, fmt.Sprintf("%s is %v (found %v) on /metrics, %v by the status: %s", series, got, ok, v, body)
			}
		}
		return true, ""
	})
}

// metricValue finds a sample's value in Prometheus text: series is the
// name with its labels as rendered ({kind="fresh"}).
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
