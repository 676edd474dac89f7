package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper/db/dbtest"
)

// Ensure a worker on a namespace without the UserId search attribute
// refuses to start, within seconds, saying what is missing and how to add
// it: otherwise every payout wake-up would fail and nothing would be paid.
func TestWorker_RefusesNamespaceWithoutUserID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  temporalCLI(t),
		ClientOptions: &client.Options{Namespace: "default"},
		LogLevel:      "error",
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	p := startProc(t, "worker", "worker", map[string]string{
		"DATABASE_URL":     dbtest.NewPostgresURL(t),
		"TEMPORAL_ADDRESS": srv.FrontendHostPort(),
		"UPSTREAM_URL":     "http://127.0.0.1:1",
		"PAYOUT_URL":       "http://127.0.0.1:1",
	})
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker kept running on a namespace without UserId")
	}
	require.NotZero(t, p.cmd.ProcessState.ExitCode())
	out := p.output()
	require.True(t, strings.Contains(out, "UserId") && strings.Contains(out, "search-attribute create"), "the error names what is missing and how to add it:\n%s", out)
}
