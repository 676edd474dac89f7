package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
