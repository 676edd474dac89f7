package web_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/web"
)

func TestServer_Errors(t *testing.T) {
	app, _, logs := MustNewApp(t, web.Config{})
	// Routes added after New run behind the same middleware, which lets
	// the test provoke failures no real handler should have.
	app.Get("/test/panic", func(c *fiber.Ctx) error { panic("pq: secret driver text") })
	app.Get("/test/internal", func(c *fiber.Ctx) error {
		return errors.New(`pq: password authentication failed for user "scorekeeper"`)
	})
	app.Get("/test/internal-code", func(c *fiber.Ctx) error {
		return scorekeeper.Errorf(scorekeeper.EInternal, "invariant broken at row 7")
	})
	app.Get("/test/rate-limited", func(c *fiber.Ctx) error {
		return scorekeeper.Errorf(scorekeeper.ERateLimited, "slow down")
	})
	app.Get("/test/unknown-code", func(c *fiber.Ctx) error {
		return scorekeeper.Errorf("weird", "who knows")
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		for _, target := range []string{"/nope", "/api", "/api/users/445566", "/api/users/445566/summary/x", "/API/payouts"} {
			resp, body := do(t, app, http.MethodGet, target)
			msg := requireError(t, resp, body, http.StatusNotFound, "not_found")
			require.Contains(t, msg, "no route")
		}
	})

	t.Run("ErrMethodNotAllowed", func(t *testing.T) {
		for target, allow := range map[string]string{
			"/api/payouts":              "GET, HEAD",
			"/healthz":                  "GET, HEAD",
			"/api/users/x/summary":      "GET, HEAD",
			"/api/sync/status":          "GET, HEAD",
			"/api/openapi.json":         "GET, HEAD",
			"/api/users/445566/summary": "GET, HEAD",
		} {
			for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
				resp, body := do(t, app, method, target)
				requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
				require.Equal(t, allow, resp.Header.Get("Allow"), "%s %s", method, target)
			}
		}
	})

	t.Run("ErrPanic", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/test/panic")
		msg := requireError(t, resp, body, http.StatusInternalServerError, "internal")
		require.Equal(t, "internal error", msg)
		require.NotContains(t, body, "secret")
		require.NotContains(t, body, "goroutine")
		require.Contains(t, logs.String(), "pq: secret driver text")
		require.Contains(t, logs.String(), "runtime/debug.Stack", "the stack is logged")
	})

	t.Run("ErrInternal", func(t *testing.T) {
		for _, target := range []string{"/test/internal", "/test/internal-code", "/test/unknown-code"} {
			resp, body := do(t, app, http.MethodGet, target)
			msg := requireError(t, resp, body, http.StatusInternalServerError, "internal")
			require.Equal(t, "internal error", msg)
		}
		require.Contains(t, logs.String(), "password authentication failed")
		require.Contains(t, logs.String(), "invariant broken")
	})

	t.Run("ErrRateLimited", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/test/rate-limited")
		msg := requireError(t, resp, body, http.StatusTooManyRequests, "rate_limited")
		require.Equal(t, "slow down", msg)
	})

}

// Ensure the app serves on a real socket (where fasthttp enforces the
// body limit before any handler runs) and shuts down cleanly.
func TestServer_Listen(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{Syncer: newFakeSyncer()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	base := "http://" + ln.Addr().String()

	t.Run("OK", func(t *testing.T) {
		resp, err := http.Get(base + "/healthz")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, `{"status":"ok"}`, string(b))
	})

	t.Run("ErrBodyTooLarge", func(t *testing.T) {
		resp, body := postOversized(t, base, "/api/sync")
		requireError(t, resp, body, http.StatusRequestEntityTooLarge, "payload_too_large")
	})

	t.Run("OKShutdown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, app.ShutdownWithContext(ctx))
		require.NoError(t, <-served)
	})
}

func TestServer_RequestID(t *testing.T) {
	app, _, logs := MustNewApp(t, web.Config{})

	t.Run("OKGenerated", func(t *testing.T) {
		resp1, _ := do(t, app, http.MethodGet, "/healthz")
		resp2, _ := do(t, app, http.MethodGet, "/healthz")
		id1, id2 := resp1.Header.Get(web.HeaderRequestID), resp2.Header.Get(web.HeaderRequestID)
		require.NotEmpty(t, id1)
		require.NotEqual(t, id1, id2)
	})

	// A made-up id is a random UUID, not a counter: the distance between
	// two of a client's ids must not tell how many requests came between.
	t.Run("OKGeneratedRandom", func(t *testing.T) {
		var prevBE, prevLE uint64
		distance := func(a, b uint64) uint64 { return max(a, b) - min(a, b) }
		for i := range 50 {
			resp, _ := do(t, app, http.MethodGet, "/healthz")
			id, err := uuid.Parse(resp.Header.Get(web.HeaderRequestID))
			require.NoError(t, err)
			require.Equal(t, uuid.Version(4), id.Version())
			require.Equal(t, uuid.RFC4122, id.Variant())
			// Read both ways: a counter may sit in either byte order.
			be, le := binary.BigEndian.Uint64(id[:8]), binary.LittleEndian.Uint64(id[:8])
			if i > 0 {
				require.Greater(t, distance(be, prevBE), uint64(1)<<32, "ids %s and the one before", id)
				require.Greater(t, distance(le, prevLE), uint64(1)<<32, "ids %s and the one before", id)
			}
			prevBE, prevLE = be, le
		}
	})

	t.Run("OKCallersKept", func(t *testing.T) {
		resp, _ := do(t, app, http.MethodGet, "/healthz", web.HeaderRequestID, "trace-123.abc:9")
		require.Equal(t, "trace-123.abc:9", resp.Header.Get(web.HeaderRequestID))
	})

	t.Run("OKMalformedReplaced", func(t *testing.T) {
		for _, bad := range []string{"a b", strings.Repeat("x", 129), `"quoted"`, "id=1&evil"} {
			resp, _ := do(t, app, http.MethodGet, "/healthz", web.HeaderRequestID, bad)
			got := resp.Header.Get(web.HeaderRequestID)
			require.NotEmpty(t, got)
			require.NotEqual(t, bad, got)
		}
	})

	t.Run("OKOnErrors", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/nope", web.HeaderRequestID, "req-404")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		require.Equal(t, "req-404", resp.Header.Get(web.HeaderRequestID))
	})

	t.Run("OKAccessLog", func(t *testing.T) {
		do(t, app, http.MethodGet, "/api/users/bad.id/summary", web.HeaderRequestID, "req-log-1")
		var line map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"request_id":"req-log-1"`) && strings.Contains(l, `"http request"`) {
				require.NoError(t, json.Unmarshal([]byte(l), &line))
			}
		}
		require.NotNil(t, line, "an access log line for the request")
		require.Equal(t, "GET", line["method"])
		require.Equal(t, "/api/users/bad.id/summary", line["path"])
		require.EqualValues(t, 400, line["status"], "the logged status is the rendered one")
		require.Contains(t, line, "duration")
	})
}

func TestServer_MiddlewareAndMetrics(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	record := func(c *fiber.Ctx) error {
		err := c.Next()
		mu.Lock()
		defer mu.Unlock()
		seen[c.Method()+" "+c.Path()] = c.Response().StatusCode()
		return err
	}
	metrics := func(c *fiber.Ctx) error { return c.SendString("# HELP up\nup 1\n") }
	app, _, _ := MustNewApp(t, web.Config{Middleware: []fiber.Handler{record}, Metrics: metrics})
	app.Get("/test/panic", func(c *fiber.Ctx) error { panic("boom") })

	t.Run("OKMetrics", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/metrics")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "# HELP up\nup 1\n", body)
	})

	t.Run("OKMiddlewareSeesFinalStatus", func(t *testing.T) {
		do(t, app, http.MethodGet, "/api/users/bad.id/summary")
		do(t, app, http.MethodGet, "/nope")
		do(t, app, http.MethodDelete, "/api/payouts")
		do(t, app, http.MethodGet, "/test/panic")
		do(t, app, http.MethodGet, "/healthz")
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, map[string]int{
			"GET /metrics":                  200,
			"GET /api/users/bad.id/summary": 400,
			"GET /nope":                     404,
			"DELETE /api/payouts":           405,
			"GET /test/panic":               500,
			"GET /healthz":                  200,
		}, seen)
	})

	t.Run("ErrNoMetricsWhenUnset", func(t *testing.T) {
		app, _, _ := MustNewApp(t, web.Config{})
		resp, body := do(t, app, http.MethodGet, "/metrics")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
	})
}

func TestHealth(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{})
	// DatabaseCheck needs a database that answers; SQLite is one.
	d := dbtest.NewSQLite(t)

	t.Run("OKHealthz", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/healthz")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, `{"status":"ok"}`, body)
	})

	t.Run("OKReadyzNoChecks", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/readyz")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, `{"status":"ok","checks":[]}`, body)
	})

	t.Run("OKReadyz", func(t *testing.T) {
		app, _, _ := MustNewApp(t, web.Config{Ready: []web.ReadyCheck{
			web.StoreCheck(db.NewStore(d, db.Budget{})),
			{Name: "temporal", Check: func(context.Context) error { return nil }},
		}})
		resp, body := do(t, app, http.MethodGet, "/readyz")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `{"status":"ok","checks":[{"name":"database","status":"ok"},{"name":"temporal","status":"ok"}]}`, body)
	})

	t.Run("ErrReadyzCheckFails", func(t *testing.T) {
		app, _, _ := MustNewApp(t, web.Config{Ready: []web.ReadyCheck{
			web.StoreCheck(db.NewStore(d, db.Budget{})),
			{Name: "temporal", Check: func(context.Context) error {
				return errors.New("dial tcp 10.1.2.3:7233: connect: connection refused")
			}},
		}})
		resp, body := do(t, app, http.MethodGet, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Equal(t, `{"status":"unavailable","checks":[{"name":"database","status":"ok"},{"name":"temporal","status":"unreachable"}]}`, body)
		require.NotContains(t, body, "10.1.2.3")
	})

	t.Run("ErrReadyzCheckHangs", func(t *testing.T) {
		app, _, checkLogs := MustNewApp(t, web.Config{Ready: []web.ReadyCheck{
			{Name: "temporal", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		}})
		start := time.Now()
		resp, body := do(t, app, http.MethodGet, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Less(t, time.Since(start), web.ReadyTimeout+time.Second)
		require.Contains(t, checkLogs.String(), "readiness check failed")
	})

	t.Run("ErrReadyzDatabaseDown", func(t *testing.T) {
		app, _, _ := MustNewApp(t, web.Config{Ready: []web.ReadyCheck{web.StoreCheck(mustOpenDownStore(t))}})
		resp, body := do(t, app, http.MethodGet, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Equal(t, `{"status":"unavailable","checks":[{"name":"database","status":"unreachable"}]}`, body)
	})
}

// mustOpenDownStore returns a store over a database whose server is not
// there.
func mustOpenDownStore(tb testing.TB) *db.Store {
	tb.Helper()
	d, err := db.Open("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	require.NoError(tb, err)
	tb.Cleanup(func() { d.Close() })
	return db.NewStore(d, db.Budget{})
}

// Ensure a database outage is a 503 without the driver's words.
func TestServer_DatabaseDown(t *testing.T) {
	app, _, logs := MustNewApp(t, web.Config{Store: mustOpenDownStore(t), Syncer: newFakeSyncer()})
	for _, target := range []string{"/api/users/445566/summary", "/api/payouts", "/api/sync/status"} {
		resp, body := do(t, app, http.MethodGet, target)
		msg := requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
		require.Equal(t, "the database is unreachable", msg)
		require.NotContains(t, body, "127.0.0.1")
	}
	require.Contains(t, logs.String(), "127.0.0.1:1", "the cause is logged")
}
