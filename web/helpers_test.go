package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/web"
)

// t0 is when the seed transactions happened.
var t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

// seedSummary is the design's example user, byte for byte.
const seedSummary = `{"userId":"445566","balance":19.2,"earned":51.2,"spent":12,"payout":20,"paidOut":20}`

func tx(id, user string, typ scorekeeper.TxType, amount string) scorekeeper.Transaction {
	return scorekeeper.Transaction{
		ID:        id,
		UserID:    user,
		CreatedAt: t0,
		Type:      typ,
		Amount:    scorekeeper.MustParseAmount(amount),
	}
}

// MustSeed stores the design's example in a database, as fakeStore.seed
// does in the fake: user 445566 earned 50 + 1.2, spent 12 and was paid out
// 20 (51.2 − 12 − 20 = 19.2), and user 112233 requested a payout of 30
// that is not paid yet.
func MustSeed(tb testing.TB, d *bun.DB) {
	tb.Helper()
	ctx := context.Background()
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{
		tx("a1", "445566", scorekeeper.TxEarned, "50"),
		tx("a2", "445566", scorekeeper.TxEarned, "1.2"),
		tx("a3", "445566", scorekeeper.TxSpent, "12"),
		tx("a4", "445566", scorekeeper.TxPayout, "20"),
		tx("b1", "112233", scorekeeper.TxPayout, "30"),
	}}, t0)
	require.NoError(tb, err)
	_, err = db.MarkPayoutPaid(ctx, d, "a4", "po_a4", t0)
	require.NoError(tb, err)
}

// fakeSyncer is a scorekeeper.Syncer whose answers the test sets.
type fakeSyncer struct {
	mu        sync.Mutex
	run       scorekeeper.SyncRun
	stats     scorekeeper.SyncStats
	status    scorekeeper.SyncStatus
	startErr  error
	waitErr   error
	statusErr error
	// block makes WaitSync wait for its context to end; gate, when set,
	// makes it wait for gate to close (or its context to end).
	block bool
	gate  chan struct{}
	// onWait runs when a WaitSync returns normally: the sync's writes.
	onWait func()
	starts int
	waits  []scorekeeper.SyncRun
	// report is what WaitReconcile returns; repairs records the repair
	// flag of each StartReconcile.
	report  scorekeeper.ReconcileReport
	repairs []bool
}

func (f *fakeSyncer) StartReconcile(ctx context.Context, repair bool) (scorekeeper.SyncRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repairs = append(f.repairs, repair)
	return scorekeeper.SyncRun{WorkflowID: "reconcile-manual", RunID: "run-r"}, f.startErr
}

func (f *fakeSyncer) WaitReconcile(ctx context.Context, run scorekeeper.SyncRun) (scorekeeper.ReconcileReport, error) {
	f.mu.Lock()
	onWait := f.onWait
	f.mu.Unlock()
	if onWait != nil && f.waitErr == nil {
		onWait()
	}
	return f.report, f.waitErr
}

func (f *fakeSyncer) StartSync(ctx context.Context) (scorekeeper.SyncRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	return f.run, f.startErr
}

func (f *fakeSyncer) WaitSync(ctx context.Context, run scorekeeper.SyncRun) (scorekeeper.SyncStats, error) {
	f.mu.Lock()
	f.waits = append(f.waits, run)
	block, gate, onWait := f.block, f.gate, f.onWait
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return scorekeeper.SyncStats{}, ctx.Err()
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return scorekeeper.SyncStats{}, ctx.Err()
		}
	}
	if onWait != nil {
		onWait()
	}
	return f.stats, f.waitErr
}

func (f *fakeSyncer) Status(ctx context.Context) (scorekeeper.SyncStatus, error) {
	return f.status, f.statusErr
}

// logBuffer collects log output; the app logs from its own goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustNewApp returns web.New(cfg) wired as production wires it
// (app/web.go): the summary and payout routes read through a web.Cache in
// front of the store, which its own loop (Cache.Run) follows until the
// test ends. A cfg without a Store gets an empty fakeStore; a cfg with its
// own Cache keeps it, run (or not) by the test. Writes through a
// fakeStore's methods are polled into its caches before they return
// (fakeStore.write); a test that writes to a database directly calls
// mustCatchUp before reading.
//
// It also returns the store when it is a fakeStore (nil otherwise), and a
// logger writing JSON into the returned buffer. The cache logs elsewhere
// (discarded), so that what a test finds in the buffer was logged by the
// routes.
func MustNewApp(tb testing.TB, cfg web.Config) (*fiber.App, *fakeStore, *logBuffer) {
	tb.Helper()
	if cfg.Store == nil {
		cfg.Store = newFakeStore()
	}
	store, _ := cfg.Store.(*fakeStore)
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Cache == nil {
		cfg.Cache = web.NewCache(cfg.Store, nil)
		mustRunCache(tb, cfg.Cache)
		if store != nil {
			store.follow(cfg.Cache)
		}
	}
	app := web.New(cfg)
	if cfg.Cache != nil {
		appCaches.Store(app, cfg.Cache)
		tb.Cleanup(func() { appCaches.Delete(app) })
	}
	return app, store, logs
}

// appCaches maps each app MustNewApp built with a cache to that cache,
// for mustCatchUp.
var appCaches sync.Map

// mustRunCache runs c.Run, as app.serveWeb does, until the test ends.
func mustRunCache(tb testing.TB, c *web.Cache) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
}

// mustCatchUp polls the change feed into app's cache, if it has one, as
// its loop does every PollInterval: after it, app serves every write
// committed before it. For tests that write to a database directly.
func mustCatchUp(tb testing.TB, app *fiber.App) {
	tb.Helper()
	if c, ok := appCaches.Load(app); ok {
		require.NoError(tb, c.(*web.Cache).Poll(context.Background()))
	}
}

// do sends one request through app.Test and returns the response with
// its body read. headers are name, value pairs.
func do(tb testing.TB, app *fiber.App, method, target string, headers ...string) (*http.Response, string) {
	tb.Helper()
	return doBody(tb, app, method, target, nil, headers...)
}

func doBody(tb testing.TB, app *fiber.App, method, target string, body io.Reader, headers ...string) (*http.Response, string) {
	tb.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := app.Test(req, -1)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp, string(b)
}

// requireError asserts an error response: status, the JSON error shape
// with exactly the keys error.code and error.message, and code.
func requireError(tb testing.TB, resp *http.Response, body string, status int, code string) string {
	tb.Helper()
	require.Equal(tb, status, resp.StatusCode, "body: %s", body)
	require.Equal(tb, fiber.MIMEApplicationJSON, resp.Header.Get("Content-Type"))
	var e map[string]map[string]any
	require.NoError(tb, json.Unmarshal([]byte(body), &e), "body: %s", body)
	require.Len(tb, e, 1, "body: %s", body)
	require.Len(tb, e["error"], 2, "body: %s", body)
	require.Equal(tb, code, e["error"]["code"], "body: %s", body)
	msg, ok := e["error"]["message"].(string)
	require.True(tb, ok && msg != "", "body: %s", body)
	return msg
}

// postOversized sends POST path with a body one byte over BodyLimit to
// the server at base (http://host:port) and returns its answer. It writes
// the headers only and reads the answer: the server refuses on the
// Content-Length alone and closes the connection, and a client still
// writing the body then may see its write fail (broken pipe) before it
// reads the 413, which made a plain http.Post flaky.
func postOversized(tb testing.TB, base, path string, headers ...string) (*http.Response, string) {
	tb.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(tb, err)
	defer conn.Close()
	require.NoError(tb, conn.SetDeadline(time.Now().Add(10*time.Second)))
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n", path, web.BodyLimit+1)
	for i := 0; i+1 < len(headers); i += 2 {
		req += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	_, err = io.WriteString(conn, req+"\r\n")
	require.NoError(tb, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp, string(b)
}
