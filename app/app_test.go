package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper/app"
	"scorekeeper/config"
	"scorekeeper/db/dbtest"
)

// temporal is the Temporal dev server the tests share, started by the
// first test that needs it and stopped by TestMain.
var temporal struct {
	once sync.Once
	srv  *testsuite.DevServer
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if temporal.srv != nil {
		_ = temporal.srv.Stop()
	}
	os.Exit(code)
}

// temporalAddress starts the shared dev server on first use, with the
// UserId search attribute worker.CheckNamespace requires (as `make run`
// and the e2e harness do), and returns its frontend address.
func temporalAddress(t *testing.T) string {
	t.Helper()
	cli := os.Getenv("TEMPORAL_CLI")
	if cli == "" {
		_, file, _, _ := runtime.Caller(0)
		cli = filepath.Join(filepath.Dir(file), "..", ".tools", "bin", "temporal")
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run `make temporal` (or `make test`, which installs it)", cli)
	}
	temporal.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		temporal.srv, temporal.err = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
			ExistingPath:  cli,
			ClientOptions: &client.Options{Namespace: "default"},
			LogLevel:      "error",
			ExtraArgs:     []string{"--search-attribute", "UserId=Keyword"},
			Stdout:        io.Discard,
			Stderr:        io.Discard,
		})
	})
	require.NoError(t, temporal.err, "start Temporal dev server")
	return temporal.srv.FrontendHostPort()
}

// testConfig is the defaults on a fresh Postgres database, the shared
// dev server and a task queue of the test's own, listening on free ports.
func testConfig(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.DatabaseURL = dbtest.NewPostgresURL(t)
	cfg.TemporalAddress = temporalAddress(t)
	cfg.TemporalTaskQueue = "app-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	cfg.HTTPAddr, cfg.MetricsAddr, cfg.MockAPIAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	return cfg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// start opens an App on cfg and runs one command on it in the background;
// the returned stop ends the command, waits for it and closes the App.
func start(t *testing.T, cfg config.Config, logs io.Writer, run func(*app.App, context.Context) error) (stop func() error) {
	t.Helper()
	log, closeLog := app.NewLogger(cfg, logs)
	a, err := app.New(context.Background(), cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(a, ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			a.Close()
			closeLog()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// ready waits for GET url to answer 200 and returns the /readyz report.
func ready(t *testing.T, url string) map[string]any {
	t.Helper()
	var report map[string]any
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := http.Get(url)
		if !assert.NoError(c, err) {
			return
		}
		defer resp.Body.Close()
		assert.Equal(c, http.StatusOK, resp.StatusCode)
		assert.NoError(c, json.NewDecoder(resp.Body).Decode(&report))
	}, 30*time.Second, 100*time.Millisecond)
	return report
}

func readyNames(report map[string]any) map[string]string {
	out := map[string]string{}
	for _, c := range report["checks"].([]any) {
		c := c.(map[string]any)
		out[c["name"].(string)] = c["status"].(string)
	}
	return out
}

// Ensure New fails fast, naming the variable to fix, when Temporal is not
// there.
func TestNew_TemporalUnreachable(t *testing.T) {
	cfg := config.Defaults()
	cfg.DatabaseURL = dbtest.NewSQLiteURL(t)
	cfg.TemporalAddress = freeAddr(t) // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := app.New(ctx, cfg, discard())
	require.ErrorContains(t, err, "connect to Temporal at TEMPORAL_ADDRESS="+cfg.TemporalAddress)
}

// Ensure New names DATABASE_URL when the database cannot be reached.
func TestNew_DatabaseUnreachable(t *testing.T) {
	cfg := config.Defaults()
	cfg.DatabaseURL = "postgres://postgres@" + freeAddr(t) + "/none?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := app.New(ctx, cfg, discard())
	require.ErrorContains(t, err, "connect to database postgres://postgres@")
}

// Ensure Migrate migrates and reports it, with the password redacted.
func TestMigrate(t *testing.T) {
	var logs lockedBuffer
	cfg := config.Defaults()
	cfg.DatabaseURL = dbtest.NewSQLiteURL(t)
	log, closeLog := app.NewLogger(cfg, &logs)
	require.NoError(t, app.Migrate(context.Background(), cfg, log))
	closeLog()
	require.Contains(t, logs.String(), "migrations applied")
}

// Ensure the web command, in-process on Postgres and a Temporal dev
// server, serves /readyz with every check ok and the sync status (which
// reads the database and Temporal's visibility store), warns that the
// admin routes are open, and drains and returns nil when its context ends.
func TestApp_RunWeb(t *testing.T) {
	cfg := testConfig(t)
	var logs lockedBuffer
	stop := start(t, cfg, &logs, (*app.App).RunWeb)
	base := "http://" + cfg.HTTPAddr

	report := ready(t, base+"/readyz")
	require.Equal(t, map[string]string{"database": "ok", "temporal": "ok", "temporal-namespace": "ok"}, readyNames(report))

	resp, err := http.Get(base + "/api/sync/status")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var status struct {
		BudgetLimit  int    `json:"budgetLimit"`
		BudgetWindow string `json:"budgetWindow"`
	}
	require.NoError(t, json.Unmarshal(body, &status))
	require.Equal(t, cfg.UpstreamRate.N, status.BudgetLimit, "%s", body)
	require.Equal(t, cfg.UpstreamRate.Per.String(), status.BudgetWindow)

	require.NoError(t, stop())
	require.Contains(t, logs.String(), "ADMIN_TOKEN is unset")
	require.Contains(t, logs.String(), "REST API listening")
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "the listener is closed")
}

// Ensure the worker command serves /readyz and /metrics on METRICS_ADDR
// and keeps its schedules, and dev runs the mock, the worker and the API
// in one process: a manual sync there fetches the mock's transactions.
func TestApp_RunWorkerAndDev(t *testing.T) {
	t.Run("Worker", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.UpstreamURL, cfg.PayoutURL = "http://127.0.0.1:1", "http://127.0.0.1:1"
		var logs lockedBuffer
		stop := start(t, cfg, &logs, (*app.App).RunWorker)
		report := ready(t, "http://"+cfg.MetricsAddr+"/readyz")
		require.Equal(t, "ok", report["status"])
		resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "worker running") }, 30*time.Second, 50*time.Millisecond)
		require.NoError(t, stop())
	})

	t.Run("Dev", func(t *testing.T) {
		cfg := testConfig(t)
		// A budget the mock lets through at once, so the sync is quick.
		cfg.UpstreamRate = config.Rate{N: 1000, Per: time.Second}
		env := map[string]string{"MOCK_TRANSACTIONS": "300", "MOCK_USERS": "20", "MOCK_RATE": "off", "MOCK_LATE_RATE": "0"}
		var logs lockedBuffer
		start(t, cfg, &logs, func(a *app.App, ctx context.Context) error {
			return a.RunDev(ctx, func(k string) string { return env[k] })
		})
		base := "http://" + cfg.HTTPAddr
		ready(t, base+"/readyz")
		// Info lines are buffered (written within logbuf's flush interval),
		// and /readyz can answer before the first flush.
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "mock upstream and payout provider listening") },
			10*time.Second, 20*time.Millisecond, "%s", logs.String())
		require.NotContains(t, logs.String(), "ADMIN_TOKEN is unset", "dev is open on purpose")

		resp, err := http.Post(base+"/api/sync?wait=true", "application/json", bytes.NewReader(nil))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var res struct {
			SyncedThrough time.Time `json:"syncedThrough"`
		}
		require.NoError(t, json.Unmarshal(body, &res))
		require.False(t, res.SyncedThrough.IsZero(), "%s", body)
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
