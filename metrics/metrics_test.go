package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/metrics"
	"scorekeeper/web"
)

// Ensure /metrics serves the design's series with the store's exact values
// and HTTP metrics by route pattern.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	at := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	tx := func(id string, typ scorekeeper.TxType) scorekeeper.Transaction {
		return scorekeeper.Transaction{ID: id, UserID: "445566", CreatedAt: at, Type: typ, Amount: 100}
	}
	_, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, at, time.Now())
	require.NoError(t, err)
	_, err = db.ApplyBatch(ctx, d, db.Batch{
		Transactions: []scorekeeper.Transaction{tx("a", scorekeeper.TxEarned), tx("b", scorekeeper.TxEarned), tx("c", scorekeeper.TxPayout)},
		Quarantined:  []scorekeeper.Quarantined{{Raw: "{}", Reason: "missing id"}},
	}, time.Now())
	require.NoError(t, err)
	_, err = db.MarkPayoutPaid(ctx, d, "c", "po", time.Now())
	require.NoError(t, err)
	require.NoError(t, db.AddCounter(ctx, d, db.CounterUpstreamRequests, "429", 3))
	late := at.Add(-2 * time.Minute)
	_, err = db.ApplyBatch(ctx, d, db.Batch{Cursor: &db.CursorUpdate{Name: db.TransactionsStream, ExpectVersion: 1,
		SyncedThrough: at, Cursor: `{"lateTo":"` + late.Format(time.RFC3339) + `"}`}}, time.Now())
	require.NoError(t, err)
	budget := db.Budget{Name: "upstream", N: 5, Per: time.Minute}
	for i, kind := range []string{"fresh", "fresh", "probe"} {
		ok, _, _, err := budget.Acquire(ctx, d, db.Grant{ID: strconv.Itoa(i), Kind: kind})
		require.NoError(t, err)
		require.True(t, ok)
	}

	store := db.NewStore(d, budget)
	m := metrics.New(store, nil)
	app := web.New(web.Config{Store: store, Metrics: m.Handler(), Middleware: []fiber.Handler{m.Middleware()}})
	resp, err := app.Test(httptest.NewRequest("GET", "/api/users/445566/summary", nil), -1)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)

	resp, err = app.Test(httptest.NewRequest("GET", "/metrics", nil), -1)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body := string(b)
	for _, want := range []string{
		`scorekeeper_transactions_applied_total{type="earned"} 2`,
		`scorekeeper_transactions_applied_total{type="payout"} 1`,
		`scorekeeper_transactions_quarantined_total 1`,
		`scorekeeper_payouts_total{status="requested"} 1`,
		`scorekeeper_payouts_total{status="paid"} 1`,
		`scorekeeper_upstream_requests_total{code="429"} 3`,
		`scorekeeper_payouts_overdue 0`,
		`scorekeeper_store_up 1`,
		`scorekeeper_upstream_budget_used 3`,
		`scorekeeper_upstream_budget_limit 5`,
		`scorekeeper_upstream_budget_spent_last_hour{kind="fresh"} 2`,
		`scorekeeper_upstream_budget_spent_last_hour{kind="probe"} 1`,
		`scorekeeper_upstream_budget_spent_last_hour{kind="rescan"} 0`,
		`scorekeeper_upstream_pages_fetched_twice_total 0`,
		"scorekeeper_sync_synced_through_timestamp_seconds " + strconv.FormatFloat(float64(at.Unix()), 'g', -1, 64),
		"scorekeeper_sync_late_covered_through_timestamp_seconds " + strconv.FormatFloat(float64(late.Unix()), 'g', -1, 64),
		`scorekeeper_http_requests_total{method="GET",route="/api/users/:userId/summary",status="200"} 1`,
		`scorekeeper_http_request_duration_seconds_count{method="GET",route="/api/users/:userId/summary"} 1`,
	} {
		require.Contains(t, body, want)
	}
	require.Contains(t, body, "scorekeeper_sync_lag_seconds ")
	require.Contains(t, body, "scorekeeper_sync_late_coverage_lag_seconds ")
	require.False(t, strings.Contains(body, "445566"), "no per-user series")
}

// Ensure method labels stay exact over keep-alive connections that mix
// methods: fasthttp reuses the request buffer, and a label kept from it
// once turned GET into "DEL" (and two equal series failed every scrape).
func TestMetrics_MethodsOverKeepAlive(t *testing.T) {
	d := dbtest.NewSQLite(t)
	store := db.NewStore(d, db.Budget{})
	m := metrics.New(store, nil)
	app := web.New(web.Config{Store: store, Metrics: m.Handler(), Middleware: []fiber.Handler{m.Middleware()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	base := "http://" + ln.Addr().String()

	// Four clients at once, over two routes with their own statuses: each
	// series is found or made while others are counted.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 4, MaxIdleConnsPerHost: 4}}
	want := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 60 {
				method := []string{http.MethodGet, http.MethodDelete, http.MethodPost, http.MethodHead, http.MethodOptions}[i%5]
				path := "/healthz"
				if (i+g)%3 == 0 {
					path = "/nope"
				}
				req, err := http.NewRequest(method, base+path, nil)
				require.NoError(t, err)
				resp, err := client.Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				// Only GET and HEAD match /healthz; a 405 has no route.
				route := "unmatched"
				if path == "/healthz" && resp.StatusCode == http.StatusOK {
					route = path
				}
				mu.Lock()
				want[method+" "+route+" "+strconv.Itoa(resp.StatusCode)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	resp, err := client.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "gathering must not fail on duplicate series")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	got := map[string]int{}
	re := regexp.MustCompile(`scorekeeper_http_requests_total\{method="([^"]*)",route="([^"]*)",status="(\d+)"\} (\d+)`)
	for _, mt := range re.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(mt[4])
		if mt[2] == "/healthz" || mt[2] == "unmatched" {
			got[mt[1]+" "+mt[2]+" "+mt[3]] += n
		}
	}
	// /healthz: 200 for GET and HEAD, 405 for the rest; /nope: 404 for all.
	require.Len(t, want, 10, "%v", want)
	require.Equal(t, want, got)
}
