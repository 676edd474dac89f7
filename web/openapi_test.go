package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/metrics"
	"scorekeeper/web"
)

// adminToken is the ADMIN_TOKEN of the contract test's apps.
const adminToken = "s3cret-admin-token"

// unproducible lists the documented responses no request can provoke from
// the real handlers, with the reason. Every other documented status of
// every operation must be produced and validated by TestOpenAPI_Contract.
var unproducible = map[string]string{
	"healthz 500": "healthz touches no dependency and cannot fail",
	"readyz 500":  "a failing or hanging check is 503; nothing else in readyz can fail",
	"metrics 500": "promhttp answers 500 only for an inconsistent registry, which metrics.New cannot build",
	"openapi 500": "serves embedded bytes",
	"docs 500":    "serves embedded bytes",
}

// registerHTMLDecoder teaches openapi3filter to read text/html bodies (for
// GET /docs) as plain strings; it knows text/plain but not text/html.
var registerHTMLDecoder = sync.OnceFunc(func() {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
})

// MustLoadOpenAPI loads web/openapi.json with kin-openapi and requires it
// to be a valid OpenAPI 3 document.
func MustLoadOpenAPI(tb testing.TB) *openapi3.T {
	tb.Helper()
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("openapi.json")
	require.NoError(tb, err)
	require.NoError(tb, doc.Validate(ctx, openapi3.EnableExamplesValidation()))
	return doc
}

// Ensure openapi.json is a valid OpenAPI 3 document, examples included,
// and is exactly what GET /api/openapi.json serves.
func TestOpenAPI_Valid(t *testing.T) {
	doc := MustLoadOpenAPI(t)
	require.NotEmpty(t, doc.Paths.Map())

	t.Run("OKServedAsIs", func(t *testing.T) {
		file, err := os.ReadFile("openapi.json")
		require.NoError(t, err)
		app, _, _ := MustNewApp(t, web.Config{})
		resp, body := do(t, app, http.MethodGet, "/api/openapi.json")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// Compared by digest: a diff of the whole document helps nobody.
		require.Equal(t, sha256.Sum256(file), sha256.Sum256([]byte(body)), "the served document differs from openapi.json")
	})

	t.Run("OKRouterBuilds", func(t *testing.T) {
		_, err := gorillamux.NewRouter(doc)
		require.NoError(t, err)
	})
}

// reqCheck says what openapi3filter.ValidateRequest must conclude about a
// request.
type reqCheck int

const (
	// reqValid: the request conforms to the document.
	reqValid reqCheck = iota
	// reqInvalid: the document itself rejects the request, as the
	// handler does (e.g. limit=0, a 65-character userId).
	reqInvalid
	// reqUnchecked: the document cannot express why the handler rejects
	// it (an unknown or repeated query parameter, a method it does not
	// list), so request validation is not asked.
	reqUnchecked
)

// exchange is one request sent to an app and the status it must get.
type exchange struct {
	app    *fiber.App
	method string
	target string
	// header holds name, value pairs.
	header []string
	status int
	// opMethod is the documented method whose operation describes the
	// response, when method is not documented for the path (405).
	opMethod string
	request  reqCheck
	// body, when set, is sent as application/json.
	body string
}

// contract validates live exchanges against the document and records
// which documented statuses each operation has produced.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options

	mu   sync.Mutex
	seen map[string]map[int]bool
}

func newContract(tb testing.TB) *contract {
	tb.Helper()
	registerHTMLDecoder()
	doc := MustLoadOpenAPI(tb)
	router, err := gorillamux.NewRouter(doc)
	require.NoError(tb, err)
	return &contract{
		doc:    doc,
		router: router,
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true,
			// The admin token is the handler's business, tested by the
			// 401/403 exchanges; the document lists it as optional.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			// Defaults must not be written into the request we then send:
			// the handler would see parameters the client never gave.
			SkipSettingDefaults: true,
			MultiError:          true,
		},
		seen: map[string]map[int]bool{},
	}
}

// check sends x through x.app, requires its status, validates the request
// as x.request says and the response against the operation's documented
// response for that status, and returns the response and body.
func (k *contract) check(t *testing.T, x exchange) (*http.Response, string) {
	t.Helper()
	ctx := context.Background()

	newRequest := func() *http.Request {
		var body io.Reader
		if x.body != "" {
			body = strings.NewReader(x.body)
		}
		req := httptest.NewRequest(x.method, x.target, body)
		if x.body != "" {
			req.Header.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		}
		for i := 0; i+1 < len(x.header); i += 2 {
			req.Header.Set(x.header[i], x.header[i+1])
		}
		return req
	}
	// The document reads one copy of the body, the app the other.
	req, routeReq := newRequest(), newRequest().WithContext(ctx)
	if x.opMethod != "" {
		routeReq.Method = x.opMethod
	}
	route, pathParams, err := k.router.FindRoute(routeReq)
	require.NoError(t, err, "%s %s is not documented", routeReq.Method, x.target)
	in := &openapi3filter.RequestValidationInput{
		Request:    routeReq,
		PathParams: pathParams,
		Route:      route,
		Options:    k.opts,
	}
	switch reqErr := openapi3filter.ValidateRequest(ctx, in); x.request {
	case reqValid:
		require.NoError(t, reqErr, "the document rejects %s %s", x.method, x.target)
	case reqInvalid:
		require.Error(t, reqErr, "the document accepts %s %s, which the handler rejects", x.method, x.target)
	}

	resp, err := x.app.Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, x.status, resp.StatusCode, "%s %s: %s", x.method, x.target, b)

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                k.opts,
	}
	out.SetBodyBytes(b)
	require.NoError(t, openapi3filter.ValidateResponse(ctx, out),
		"%s %s → %d %s\n%s", x.method, x.target, resp.StatusCode, headerDump(resp.Header), b)

	k.mu.Lock()
	defer k.mu.Unlock()
	op := route.Operation.OperationID
	if k.seen[op] == nil {
		k.seen[op] = map[int]bool{}
	}
	k.seen[op][resp.StatusCode] = true
	return resp, string(b)
}

// missing returns, for the operations in ops, every documented status not
// yet produced and not listed in unproducible.
func (k *contract) missing(ops []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, item := range k.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if !slices.Contains(ops, op.OperationID) {
				continue
			}
			for code := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err != nil {
					out = append(out, op.OperationID+" "+code+" (not a status)")
					continue
				}
				key := op.OperationID + " " + code
				if _, ok := unproducible[key]; !ok && !k.seen[op.OperationID][status] {
					out = append(out, key)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// mustListen serves app on a loopback socket until the test ends and
// returns its base URL.
func mustListen(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, app.ShutdownWithContext(ctx))
		require.NoError(tb, <-served)
	})
	return "http://" + ln.Addr().String()
}

func headerDump(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// syncStatusFixture is a full status: a completed last run with stats,
// late coverage, and SyncedThrough set by the adapter.
func syncStatusFixture() scorekeeper.SyncStatus {
	started := time.Date(2023, 3, 16, 12, 34, 0, 0, time.UTC)
	closed := started.Add(5 * time.Second)
	late := started.Add(-2 * time.Minute)
	return scorekeeper.SyncStatus{
		LastRun: &scorekeeper.SyncRunInfo{
			WorkflowID: "transactions-sync-manual",
			RunID:      "0f6c2c1e-7d0e-4d7e-9a53-3b1f1e9b2c4a",
			Status:     "completed",
			StartedAt:  started,
			ClosedAt:   &closed,
			Stats: &scorekeeper.SyncStats{
				Fetched: 1200, Inserted: 1180, Duplicates: 19, Quarantined: 1, Pages: 2, SyncedThrough: started,
			},
		},
		Now:                started.Add(12500 * time.Millisecond),
		SyncedThrough:      started,
		BudgetUsed:         3,
		BudgetLimit:        5,
		BudgetWindow:       time.Minute,
		Quarantined:        4,
		LateCoveredThrough: late,
	}
}

// Ensure every documented operation answers every documented status it
// can produce with a response that conforms to openapi.json (status,
// headers, media type and body schema), and that the valid requests
// conform too. The handlers are the reference: a failure here means the
// document or a handler is wrong.
func TestOpenAPI_Contract(t *testing.T) {
	k := newContract(t)
	discard := slog.New(slog.DiscardHandler)

	// ok is the fully wired app: the seed data, synced (so X-Data-As-Of is
	// sent), a syncer, an admin token, metrics and a passing readiness
	// check. The routes read a fakeStore; metrics and the readiness check
	// read a database of their own, SQLite (no server needed).
	store := newFakeStore().seed()
	store.setAsOf(t0.Add(time.Hour))
	d := db.NewStore(dbtest.NewSQLite(t), db.Budget{Name: "upstream", N: 5, Per: time.Minute})
	syncer := newFakeSyncer()
	syncer.status = syncStatusFixture()
	syncer.report = scorekeeper.ReconcileReport{UsersChecked: 3, Repaired: 1, Drifted: []scorekeeper.Drift{{UserID: "445566", Field: "earned", Stored: 5130, Recomputed: 5120}}}
	ok, _, _ := MustNewApp(t, web.Config{
		Store:      store,
		Syncer:     syncer,
		Reconciler: syncer,
		AdminToken: adminToken,
		Ready:      []web.ReadyCheck{web.StoreCheck(d)},
		Metrics:    metrics.New(d, discard).Handler(),
	})

	// bare runs without Temporal or metrics, and its readiness check fails.
	bare, _, _ := MustNewApp(t, web.Config{
		Store: store,
		Ready: []web.ReadyCheck{
			web.StoreCheck(d),
			{Name: "temporal", Check: func(context.Context) error { return errors.New("connection refused") }},
		},
	})

	// down's database is not there: 503.
	downStore := newFakeStore()
	downStore.fail(errUnreachable)
	down, _, _ := MustNewApp(t, web.Config{Store: downStore, Syncer: newFakeSyncer()})

	// broken's store and syncer fail with plain errors: both are bugs,
	// not outages, so 500.
	brokenStore := newFakeStore()
	brokenStore.fail(errBroken)
	failing := newFakeSyncer()
	failing.startErr = errors.New("temporal: unexpected reply")
	failing.statusErr = errors.New("temporal: unexpected reply")
	broken, _, _ := MustNewApp(t, web.Config{Store: brokenStore, Syncer: failing, Reconciler: failing, AdminToken: adminToken})

	// unsynced has data but no sync progress yet: no X-Data-As-Of.
	unsynced, _, _ := MustNewApp(t, web.Config{Store: newFakeStore().seed()})

	// limited allows each client one read a minute.
	limited, _, _ := MustNewApp(t, web.Config{Store: store, RateLimit: web.RateLimit{N: 1, Per: time.Minute}})
	// limitedSync allows each client two syncs a minute, one of them
	// waited for, and one status.
	limitedSync, _, _ := MustNewApp(t, web.Config{
		Store:               store,
		Syncer:              syncer,
		SyncRateLimit:       web.RateLimit{N: 2, Per: time.Minute},
		SyncWaitRateLimit:   web.RateLimit{N: 1, Per: time.Minute},
		SyncStatusRateLimit: web.RateLimit{N: 1, Per: time.Minute},
	})

	auth := []string{"Authorization", "Bearer " + adminToken}
	var ran []string

	t.Run("getSummary", func(t *testing.T) {
		ran = append(ran, "getSummary")
		const target = "/api/users/445566/summary"
		resp, body := k.check(t, exchange{app: ok, method: http.MethodGet, target: target, status: http.StatusOK})
		require.Equal(t, seedSummary, body)
		require.Equal(t, "2023-02-01T01:00:00Z", resp.Header.Get(web.HeaderDataAsOf))
		etag := resp.Header.Get("ETag")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: target, header: []string{"If-None-Match", etag}, status: http.StatusNotModified})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/users/112233/summary", status: http.StatusOK})
		resp, _ = k.check(t, exchange{app: unsynced, method: http.MethodGet, target: target, status: http.StatusOK})
		require.Empty(t, resp.Header.Get(web.HeaderDataAsOf))
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/users/" + strings.Repeat("a", 64) + "/summary", status: http.StatusNotFound})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/users/999999/summary", status: http.StatusNotFound})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/users/" + strings.Repeat("a", 65) + "/summary", status: http.StatusBadRequest, request: reqInvalid})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/users/a.b/summary", status: http.StatusBadRequest, request: reqInvalid})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: target + "?x=1", status: http.StatusBadRequest, request: reqUnchecked})
		k.check(t, exchange{app: ok, method: http.MethodDelete, target: target, opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		k.check(t, exchange{app: broken, method: http.MethodGet, target: target, status: http.StatusInternalServerError})
		k.check(t, exchange{app: down, method: http.MethodGet, target: target, status: http.StatusServiceUnavailable})
		k.check(t, exchange{app: limited, method: http.MethodGet, target: target, status: http.StatusOK})
		k.check(t, exchange{app: limited, method: http.MethodGet, target: target, status: http.StatusTooManyRequests})

		// As of an instant: the seed before it settled, 409 after the
		// watermark (or before any sync).
		_, body = k.check(t, exchange{app: ok, method: http.MethodGet, target: target + "?asOf=2023-02-01T00:00:00Z", status: http.StatusOK})
		require.Equal(t, seedSummary, body)
		k.check(t, exchange{app: ok, method: http.MethodGet, target: target + "?asOf=2023-01-31T23:59:59Z", status: http.StatusOK})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: target + "?asOf=2023-02-01T01:00:01Z", status: http.StatusConflict})
		k.check(t, exchange{app: unsynced, method: http.MethodGet, target: target + "?asOf=2023-02-01T00:00:00Z", status: http.StatusConflict})
		k.check(t, exchange{app: ok, method: http.MethodGet, target: target + "?asOf=soon", status: http.StatusBadRequest, request: reqInvalid})
	})

	t.Run("listUserTransactions", func(t *testing.T) {
		ran = append(ran, "listUserTransactions")
		get := getter(t, k)
		const target = "/api/users/445566/transactions"
		resp, body := get(ok, target+"?limit=2", http.StatusOK, reqValid)
		require.Contains(t, body, `{"id":"a4","type":"payout","amount":20,"createdAt":"2023-02-01T00:00:00Z","syncedAt":"2023-02-01T00:00:00Z","status":"paid"}`)
		require.Equal(t, "4", resp.Header.Get(web.HeaderTotalCount))
		get(ok, nextLink(t, resp), http.StatusOK, reqValid)
		get(ok, target+"?limit=2", http.StatusNotModified, reqValid, "If-None-Match", resp.Header.Get("ETag"))
		get(ok, target+"?type=earned&from=2023-02-01T00:00:00Z&to=2023-02-02T00:00:00Z", http.StatusOK, reqValid)
		get(ok, "/api/users/999999/transactions", http.StatusNotFound, reqValid)
		get(ok, target+"?type=refund", http.StatusBadRequest, reqInvalid)
		get(ok, target+"?from=yesterday", http.StatusBadRequest, reqInvalid)
		get(ok, target+"?limit=0", http.StatusBadRequest, reqInvalid)
		get(ok, target+"?after=nobody", http.StatusBadRequest, reqValid)
		get(ok, target+"?from=2023-02-02T00:00:00Z&to=2023-02-01T00:00:00Z", http.StatusBadRequest, reqValid)
		get(ok, target+"?page=2", http.StatusBadRequest, reqUnchecked)
		k.check(t, exchange{app: ok, method: http.MethodPost, target: target, opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		get(broken, target, http.StatusInternalServerError, reqValid)
		get(down, target, http.StatusServiceUnavailable, reqValid)
		// A client's one read a minute, on an app of its own.
		limited, _, _ := MustNewApp(t, web.Config{Store: store, RateLimit: web.RateLimit{N: 1, Per: time.Minute}})
		get(limited, target, http.StatusOK, reqValid)
		get(limited, target, http.StatusTooManyRequests, reqValid)
	})

	t.Run("listUserPayouts", func(t *testing.T) {
		ran = append(ran, "listUserPayouts")
		get := getter(t, k)
		const target = "/api/users/445566/payouts"
		resp, body := get(ok, target, http.StatusOK, reqValid)
		require.Equal(t, `[{"id":"a4","amount":20,"requestedAt":"2023-02-01T00:00:00Z","status":"paid","reason":"","providerId":"po_a4","attempts":1,"settledAt":"2023-02-01T00:00:00Z"}]`, body)
		get(ok, target, http.StatusNotModified, reqValid, "If-None-Match", resp.Header.Get("ETag"))
		resp, _ = get(ok, "/api/users/112233/payouts?limit=1", http.StatusOK, reqValid)
		require.Contains(t, resp.Header.Get("Link"), "after=", "a full page links onwards")
		get(ok, nextLink(t, resp), http.StatusOK, reqValid)
		get(ok, "/api/users/999999/payouts", http.StatusNotFound, reqValid)
		get(ok, target+"?limit=10001", http.StatusBadRequest, reqInvalid)
		get(ok, target+"?after=nobody", http.StatusBadRequest, reqValid)
		get(ok, target+"?status=paid", http.StatusBadRequest, reqUnchecked)
		k.check(t, exchange{app: ok, method: http.MethodPost, target: target, opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		get(broken, target, http.StatusInternalServerError, reqValid)
		get(down, target, http.StatusServiceUnavailable, reqValid)
		// A client's one read a minute, on an app of its own.
		limited, _, _ := MustNewApp(t, web.Config{Store: store, RateLimit: web.RateLimit{N: 1, Per: time.Minute}})
		get(limited, target, http.StatusOK, reqValid)
		get(limited, target, http.StatusTooManyRequests, reqValid)
	})

	t.Run("listPayouts", func(t *testing.T) {
		ran = append(ran, "listPayouts")
		get := func(target string, status int, rc reqCheck, header ...string) (*http.Response, string) {
			t.Helper()
			return k.check(t, exchange{app: ok, method: http.MethodGet, target: target, header: header, status: status, request: rc})
		}
		resp, body := get("/api/payouts", http.StatusOK, reqValid)
		require.Equal(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`, body)
		get("/api/payouts", http.StatusNotModified, reqValid, "If-None-Match", resp.Header.Get("ETag"))
		resp, _ = get("/api/payouts?status=requested&limit=1&sort=-payoutAmount", http.StatusOK, reqValid)
		byAmount := nextLink(t, resp)
		require.NotEmpty(t, byAmount, "a full page links onwards")
		get(byAmount, http.StatusOK, reqValid)
		for _, status := range []string{"pending", "paid", "failed"} {
			get("/api/payouts?status="+status, http.StatusOK, reqValid)
		}
		resp, _ = get("/api/payouts?limit=1&sort=userId", http.StatusOK, reqValid)
		byUser, err := url.Parse(nextLink(t, resp))
		require.NoError(t, err)
		get("/api/payouts?after="+byUser.Query().Get("after")+"&limit=10000&sort=userId", http.StatusOK, reqValid)
		resp, _ = k.check(t, exchange{app: unsynced, method: http.MethodGet, target: "/api/payouts", status: http.StatusOK})
		require.Empty(t, resp.Header.Get(web.HeaderDataAsOf))

		get("/api/payouts?limit=0", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?limit=10001", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?limit=ten", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?status=lost", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?sort=payoutAmount", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?after=a%20b", http.StatusBadRequest, reqInvalid)
		get("/api/payouts?page=2", http.StatusBadRequest, reqUnchecked)
		get("/api/payouts?limit=1&limit=2", http.StatusBadRequest, reqUnchecked)
		// Cursors are opaque to the document: one that is not ours, or is
		// of another sort, has the right shape and only the handler can
		// tell.
		get("/api/payouts?sort=-payoutAmount&after=nobody", http.StatusBadRequest, reqValid)
		get("/api/payouts?sort=-payoutAmount&after="+byUser.Query().Get("after"), http.StatusBadRequest, reqValid)

		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/api/payouts", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		k.check(t, exchange{app: broken, method: http.MethodGet, target: "/api/payouts", status: http.StatusInternalServerError})
		k.check(t, exchange{app: down, method: http.MethodGet, target: "/api/payouts", status: http.StatusServiceUnavailable})
		// The summary check above used this client's one request.
		k.check(t, exchange{app: limited, method: http.MethodGet, target: "/api/payouts", status: http.StatusTooManyRequests})
	})

	t.Run("startSync", func(t *testing.T) {
		ran = append(ran, "startSync")
		post := func(app *fiber.App, target string, status int, rc reqCheck, header ...string) (*http.Response, string) {
			t.Helper()
			return k.check(t, exchange{app: app, method: http.MethodPost, target: target, header: header, status: status, request: rc})
		}
		resp, body := post(ok, "/api/sync", http.StatusAccepted, reqValid, auth...)
		require.JSONEq(t, `{"workflowId":"sync-manual-1","runId":"run-1"}`, body)
		require.Equal(t, "/api/sync/status", resp.Header.Get("Location"))
		post(ok, "/api/sync?wait=false", http.StatusAccepted, reqValid, auth...)
		_, body = post(ok, "/api/sync?wait=true", http.StatusOK, reqValid, auth...)
		require.JSONEq(t, `{"workflowId":"sync-manual-1","runId":"run-1","fetched":1200,"inserted":1180,"duplicates":19,"quarantined":1,"pages":2,"syncedThrough":"2023-03-16T11:34:00Z"}`, body)

		post(ok, "/api/sync?wait=yes", http.StatusBadRequest, reqInvalid, auth...)
		post(ok, "/api/sync?now=1", http.StatusBadRequest, reqUnchecked, auth...)
		resp, _ = post(ok, "/api/sync", http.StatusUnauthorized, reqValid)
		require.Equal(t, `Bearer realm="scorekeeper"`, resp.Header.Get("WWW-Authenticate"))
		post(ok, "/api/sync", http.StatusUnauthorized, reqValid, "Authorization", "Basic YWRtaW46YWRtaW4=")
		post(ok, "/api/sync", http.StatusForbidden, reqValid, "Authorization", "Bearer not-the-token")
		resp, _ = k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/sync", opMethod: http.MethodPost, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		require.Equal(t, "POST", resp.Header.Get("Allow"))
		// A body over BodyLimit is refused while fasthttp reads the
		// request, before routing, on a real socket only (app.Test reports
		// the refusal as an error). No operation lists 413, as none lists
		// 431 for an oversized request line: both can answer any path, and
		// the document's description names payload_too_large. So only the
		// body is checked, against the Error schema.
		listening, _, _ := MustNewApp(t, web.Config{Store: store, Syncer: syncer, AdminToken: adminToken})
		resp, body = postOversized(t, mustListen(t, listening), "/api/sync", auth...)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		var e any
		require.NoError(t, json.Unmarshal([]byte(body), &e))
		require.NoError(t, k.doc.Components.Schemas["Error"].Value.VisitJSON(e))
		require.Equal(t, "payload_too_large", e.(map[string]any)["error"].(map[string]any)["code"])

		post(bare, "/api/sync", http.StatusServiceUnavailable, reqValid)
		post(broken, "/api/sync", http.StatusInternalServerError, reqValid, auth...)

		post(limitedSync, "/api/sync?wait=true", http.StatusOK, reqValid)
		resp, _ = post(limitedSync, "/api/sync?wait=true", http.StatusTooManyRequests, reqValid)
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		post(limitedSync, "/api/sync", http.StatusTooManyRequests, reqValid)
	})

	t.Run("reconcile", func(t *testing.T) {
		ran = append(ran, "reconcile")
		post := func(app *fiber.App, target string, status int, rc reqCheck, header ...string) string {
			t.Helper()
			_, body := k.check(t, exchange{app: app, method: http.MethodPost, target: target, header: header, status: status, request: rc})
			return body
		}
		require.JSONEq(t, `{"workflowId":"reconcile-manual","runId":"run-r"}`, post(ok, "/api/reconcile", http.StatusAccepted, reqValid, auth...))
		require.JSONEq(t, `{"usersChecked":3,"drifted":[{"userId":"445566","field":"earned","stored":51.3,"recomputed":51.2}],"repaired":1}`,
			post(ok, "/api/reconcile?wait=true&repair=true", http.StatusOK, reqValid, auth...))
		require.Equal(t, []bool{false, true}, syncer.repairs[len(syncer.repairs)-2:], "repair only when asked")
		post(ok, "/api/reconcile?repair=maybe", http.StatusBadRequest, reqInvalid, auth...)
		post(ok, "/api/reconcile?dry=1", http.StatusBadRequest, reqUnchecked, auth...)
		post(ok, "/api/reconcile", http.StatusUnauthorized, reqValid)
		post(ok, "/api/reconcile", http.StatusForbidden, reqValid, "Authorization", "Bearer not-the-token")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/reconcile", opMethod: http.MethodPost, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		post(bare, "/api/reconcile", http.StatusServiceUnavailable, reqValid)
		post(broken, "/api/reconcile", http.StatusInternalServerError, reqValid, auth...)
	})

	// The payout actions act on a store of their own (a cancel changes
	// what the listings above sum).
	opStore := newFakeStore().seed()
	opStore.setAsOf(t0.Add(time.Hour))
	opStore.apply(tx("b2", "112233", scorekeeper.TxPayout, "4"))
	opStore.mu.Lock()
	b2 := opStore.payouts["b2"]
	b2.Attempts = 1 // sent once and refused: waiting for an operator
	opStore.payouts["b2"] = b2
	opStore.mu.Unlock()
	ops, _, _ := MustNewApp(t, web.Config{Store: opStore, Payouts: &fakeOperator{store: opStore}, AdminToken: adminToken})
	brokenOps, _, _ := MustNewApp(t, web.Config{Store: opStore, Payouts: &fakeOperator{store: opStore, err: errors.New("temporal: unexpected reply")}, AdminToken: adminToken})
	action := func(t *testing.T, app *fiber.App, target, body string, status int, rc reqCheck, header ...string) string {
		t.Helper()
		_, got := k.check(t, exchange{app: app, method: http.MethodPost, target: target, header: header, status: status, request: rc, body: body})
		return got
	}
	actionErrors := func(t *testing.T, target, body string) {
		t.Helper()
		action(t, ops, target, body, http.StatusUnauthorized, reqValid)
		action(t, ops, target, body, http.StatusForbidden, reqValid, "Authorization", "Bearer not-the-token")
		action(t, ops, target+"?now=1", body, http.StatusBadRequest, reqUnchecked, auth...)
		k.check(t, exchange{app: ops, method: http.MethodGet, target: target, opMethod: http.MethodPost, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		action(t, bare, target, body, http.StatusServiceUnavailable, reqValid)
		action(t, brokenOps, target, body, http.StatusInternalServerError, reqValid, auth...)
	}

	t.Run("holdPayouts", func(t *testing.T) {
		ran = append(ran, "holdPayouts")
		require.JSONEq(t, `{"userId":"112233","held":true,"reason":"fraud report","by":"operator","heldAt":"2023-02-01T00:00:00Z"}`,
			action(t, ops, "/api/users/112233/payouts:hold", `{"reason":"fraud report"}`, http.StatusOK, reqValid, auth...))
		action(t, ops, "/api/users/112233/payouts:hold", ``, http.StatusBadRequest, reqInvalid, auth...)
		action(t, ops, "/api/users/112233/payouts:hold", `{"reason":"`+strings.Repeat("x", 501)+`"}`, http.StatusBadRequest, reqInvalid, auth...)
		actionErrors(t, "/api/users/112233/payouts:hold", `{"reason":"x"}`)
	})

	t.Run("releasePayouts", func(t *testing.T) {
		ran = append(ran, "releasePayouts")
		require.JSONEq(t, `{"userId":"112233","held":false}`,
			action(t, ops, "/api/users/112233/payouts:release", ``, http.StatusOK, reqValid, auth...))
		action(t, ops, "/api/users/112233/payouts:release", `{"reason":1}`, http.StatusBadRequest, reqInvalid, auth...)
		actionErrors(t, "/api/users/112233/payouts:release", ``)
	})

	t.Run("retryPayout", func(t *testing.T) {
		ran = append(ran, "retryPayout")
		require.Contains(t, action(t, ops, "/api/users/112233/payouts/b2:retry", ``, http.StatusOK, reqValid, auth...), `"id":"b2"`)
		action(t, ops, "/api/users/445566/payouts/a4:retry", ``, http.StatusConflict, reqValid, auth...)
		action(t, ops, "/api/users/445566/payouts/b2:retry", ``, http.StatusNotFound, reqValid, auth...)
		action(t, ops, "/api/users/445566/payouts/a4:retry", `{"by":"me"}`, http.StatusBadRequest, reqInvalid, auth...)
		actionErrors(t, "/api/users/112233/payouts/b2:retry", ``)
	})

	t.Run("cancelPayout", func(t *testing.T) {
		ran = append(ran, "cancelPayout")
		require.JSONEq(t, `{"id":"b1","amount":30,"requestedAt":"2023-02-01T00:00:00Z","status":"canceled",
			"reason":"canceled by operator: duplicate","providerId":"","attempts":0,"settledAt":"2023-02-01T00:01:00Z"}`,
			action(t, ops, "/api/users/112233/payouts/b1:cancel", `{"reason":"duplicate"}`, http.StatusOK, reqValid, auth...))
		action(t, ops, "/api/users/112233/payouts/b2:cancel", ``, http.StatusConflict, reqValid, auth...)
		action(t, ops, "/api/users/112233/payouts/nope:cancel", ``, http.StatusNotFound, reqValid, auth...)
		action(t, ops, "/api/users/112233/payouts/b1:cancel", `[]`, http.StatusBadRequest, reqInvalid, auth...)
		actionErrors(t, "/api/users/112233/payouts/b2:cancel", ``)
	})

	t.Run("syncStatus", func(t *testing.T) {
		ran = append(ran, "syncStatus")
		get := func(app *fiber.App, status int) string {
			t.Helper()
			_, body := k.check(t, exchange{app: app, method: http.MethodGet, target: "/api/sync/status", status: status})
			return body
		}
		get(ok, http.StatusOK)
		// Before the first run: nulls where the schema allows them, and
		// syncedThrough filled from the store.
		empty := newFakeSyncer()
		fresh, _, _ := MustNewApp(t, web.Config{Store: store, Syncer: empty, Now: func() time.Time { return t0.Add(2 * time.Hour) }})
		require.JSONEq(t, `{"lastRun":null,"syncedThrough":"2023-02-01T01:00:00Z","lagSeconds":3600,"budgetUsed":0,"budgetLimit":0,"budgetWindow":"","quarantined":0,"lateCoveredThrough":null,"payoutsOverdue":0,"lateLagSeconds":0,"budgetSpentLastHour":{"fresh":0,"rescan":0,"probe":0},"pagesFetchedTwice":0,"fetcher":null}`, get(fresh, http.StatusOK))
		// A running sync: no closedAt, no stats yet.
		empty.status = scorekeeper.SyncStatus{LastRun: &scorekeeper.SyncRunInfo{WorkflowID: "w", RunID: "r", Status: "running", StartedAt: t0}}
		get(fresh, http.StatusOK)
		// Nothing synced at all: syncedThrough is null too.
		nothing, _, _ := MustNewApp(t, web.Config{Syncer: newFakeSyncer()})
		require.Contains(t, get(nothing, http.StatusOK), `"syncedThrough":null`)

		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/api/sync/status", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		get(broken, http.StatusInternalServerError)
		get(bare, http.StatusServiceUnavailable)
		get(down, http.StatusServiceUnavailable)
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/sync/status?verbose=1", status: http.StatusBadRequest, request: reqUnchecked})
		get(limitedSync, http.StatusOK)
		get(limitedSync, http.StatusTooManyRequests)
	})

	t.Run("listQuarantine", func(t *testing.T) {
		ran = append(ran, "listQuarantine")
		store.quarantine(t0,
			scorekeeper.Quarantined{ItemID: "q1", Raw: `{"id":"q1","amount":-1}`, Reason: "amount must be positive"},
			scorekeeper.Quarantined{Raw: `{"amount":1}`, Reason: "missing id"},
			// A big item: listed as an excerpt, truncated, with its size and hash.
			scorekeeper.NewQuarantined("q2", []byte(`{"id":"q2","note":"`+strings.Repeat("n", 1<<20)+`"}`), "amount is missing"),
		)
		get := getter(t, k)
		_, body := get(ok, "/api/quarantine", http.StatusOK, reqValid, auth...)
		require.Contains(t, body, `"id":null`)
		require.Contains(t, body, `"id":"q1"`)
		require.Contains(t, body, `"truncated":true`)
		require.Contains(t, body, `"truncated":false`)
		resp, _ := get(ok, "/api/quarantine?limit=1", http.StatusOK, reqValid, auth...)
		next := nextLink(t, resp)
		require.NotEmpty(t, next, "a full page links onwards")
		_, body = get(ok, next, http.StatusOK, reqValid, auth...)
		require.NotEqual(t, "[]", body)
		nothing, _, _ := MustNewApp(t, web.Config{})
		_, body = get(nothing, "/api/quarantine?limit=10000", http.StatusOK, reqValid)
		require.Equal(t, "[]", body)

		get(ok, "/api/quarantine?limit=0", http.StatusBadRequest, reqInvalid, auth...)
		get(ok, "/api/quarantine?limit=ten", http.StatusBadRequest, reqInvalid, auth...)
		get(ok, "/api/quarantine?after=a%20b", http.StatusBadRequest, reqInvalid, auth...)
		// An opaque cursor that is not ours: only the handler can tell.
		get(ok, "/api/quarantine?after=q1", http.StatusBadRequest, reqValid, auth...)
		get(ok, "/api/quarantine?page=2", http.StatusBadRequest, reqUnchecked, auth...)
		get(ok, "/api/quarantine?limit=1&limit=2", http.StatusBadRequest, reqUnchecked, auth...)
		resp, _ = get(ok, "/api/quarantine", http.StatusUnauthorized, reqValid)
		require.Equal(t, `Bearer realm="scorekeeper"`, resp.Header.Get("WWW-Authenticate"))
		get(ok, "/api/quarantine", http.StatusForbidden, reqValid, "Authorization", "Bearer not-the-token")
		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/api/quarantine", header: auth, opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
		get(broken, "/api/quarantine", http.StatusInternalServerError, reqValid, auth...)
		get(down, "/api/quarantine", http.StatusServiceUnavailable, reqValid)
	})

	t.Run("healthz", func(t *testing.T) {
		ran = append(ran, "healthz")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/healthz", status: http.StatusOK})
		k.check(t, exchange{app: down, method: http.MethodGet, target: "/healthz", status: http.StatusOK})
		k.check(t, exchange{app: ok, method: http.MethodPut, target: "/healthz", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
	})

	t.Run("readyz", func(t *testing.T) {
		ran = append(ran, "readyz")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/readyz", status: http.StatusOK})
		_, body := k.check(t, exchange{app: bare, method: http.MethodGet, target: "/readyz", status: http.StatusServiceUnavailable})
		require.NotContains(t, body, "connection refused")
		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/readyz", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
	})

	t.Run("metrics", func(t *testing.T) {
		ran = append(ran, "metrics")
		_, body := k.check(t, exchange{app: ok, method: http.MethodGet, target: "/metrics", status: http.StatusOK})
		require.Contains(t, body, "scorekeeper_")
		k.check(t, exchange{app: bare, method: http.MethodGet, target: "/metrics", status: http.StatusNotFound})
		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/metrics", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
	})

	t.Run("openapi", func(t *testing.T) {
		ran = append(ran, "openapi")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/api/openapi.json", status: http.StatusOK})
		k.check(t, exchange{app: ok, method: http.MethodDelete, target: "/api/openapi.json", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
	})

	t.Run("docs", func(t *testing.T) {
		ran = append(ran, "docs")
		k.check(t, exchange{app: ok, method: http.MethodGet, target: "/docs", status: http.StatusOK})
		k.check(t, exchange{app: ok, method: http.MethodPost, target: "/docs", opMethod: http.MethodGet, status: http.StatusMethodNotAllowed, request: reqUnchecked})
	})

	// Run last, over the operations whose subtests ran (all of them unless
	// -run selects some).
	t.Run("OKEveryDocumentedStatus", func(t *testing.T) {
		require.Empty(t, k.missing(ran), "documented statuses never produced; produce them or list them in unproducible")
	})

	t.Run("OKEveryOperationCovered", func(t *testing.T) {
		if subtestsFiltered() {
			t.Skip("-run or -skip may have deselected some operations' subtests")
		}
		var all []string
		for _, item := range k.doc.Paths.Map() {
			for _, op := range item.Operations() {
				all = append(all, op.OperationID)
			}
		}
		slices.Sort(all)
		slices.Sort(ran)
		require.Equal(t, all, ran, "every documented operation has a subtest")
	})
}

// getter returns a GET exchange checked against the document on t: app,
// target, the status wanted, how the request is checked, and headers.
func getter(t *testing.T, k *contract) func(app *fiber.App, target string, status int, rc reqCheck, header ...string) (*http.Response, string) {
	return func(app *fiber.App, target string, status int, rc reqCheck, header ...string) (*http.Response, string) {
		t.Helper()
		return k.check(t, exchange{app: app, method: http.MethodGet, target: target, header: header, status: status, request: rc})
	}
}

// subtestsFiltered reports whether the command line may have deselected
// subtests: -skip names tests at any level, and -run names subtests in its
// second and later slash-separated elements (with one element, every
// subtest of a selected test runs). A '/' inside a bracket or group of the
// pattern is counted too, which only makes the answer cautious.
func subtestsFiltered() bool {
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return value("test.skip") != "" || strings.Contains(value("test.run"), "/")
}

// Ensure the error codes the document lists are exactly the domain's and
// the web layer's, so the Error schema's enum cannot drift.
func TestOpenAPI_ErrorCodes(t *testing.T) {
	doc := MustLoadOpenAPI(t)
	schema := doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value
	var got []string
	for _, v := range schema.Enum {
		got = append(got, fmt.Sprint(v))
	}
	want := []string{
		scorekeeper.EInvalid, scorekeeper.EUnauthorized, scorekeeper.EForbidden, scorekeeper.ENotFound,
		"method_not_allowed", "payload_too_large", scorekeeper.EConflict, scorekeeper.ERateLimited,
		scorekeeper.EInternal, scorekeeper.EUnavailable,
	}
	require.ElementsMatch(t, want, got)
}
