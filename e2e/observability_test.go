package e2e

import (
	"io"
	"net/http"
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
}
