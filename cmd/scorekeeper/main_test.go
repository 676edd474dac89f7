package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Ensure help prints the usage whatever the environment, and a missing or
// unknown command is errUsage (exit 2 with the usage).
func TestRun_Dispatch(t *testing.T) {
	ctx := context.Background()
	badEnv := func(k string) string {
		if k == "UPSTREAM_RATE" {
			return "nonsense"
		}
		return ""
	}
	for _, arg := range []string{"help", "-h", "--help"} {
		var out bytes.Buffer
		require.NoError(t, run(ctx, []string{arg}, badEnv, &out), arg)
		require.Equal(t, usage, out.String(), arg)
	}

	for _, args := range [][]string{nil, {"web", "worker"}, {"serve"}} {
		var out bytes.Buffer
		err := run(ctx, args, func(string) string { return "" }, &out)
		require.ErrorIs(t, err, errUsage, "%q", args)
	}

	var out bytes.Buffer
	err := run(ctx, []string{"web"}, badEnv, &out)
	require.ErrorContains(t, err, "UPSTREAM_RATE", "a bad variable is named before anything is opened")
}

// Ensure the worker refuses to start without its upstreams before it
// connects to anything.
func TestRun_WorkerRequiresUpstream(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://nowhere.invalid/db", "TEMPORAL_ADDRESS": "127.0.0.1:1"}
	var out bytes.Buffer
	err := run(context.Background(), []string{"worker"}, func(k string) string { return env[k] }, &out)
	require.ErrorContains(t, err, "UPSTREAM_URL is required by the worker")
	require.ErrorContains(t, err, "PAYOUT_URL is required by the worker")
}
