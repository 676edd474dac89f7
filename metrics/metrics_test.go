package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
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

	m := metrics.New(d, nil)
	app := web.New(web.Config{DB: d, Metrics: m.Handler(), Middleware: []fiber.Handler{m.Middleware()}})
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
		`scorekeeper_http_requests_total{method="GET",route="/api/users/:userId/summary",status="200"} 1`,
		`scorekeeper_http_request_duration_seconds_count{method="GET",route="/api/users/:userId/summary"} 1`,
	} {
		require.Contains(t, body, want)
	}
	require.Contains(t, body, "scorekeeper_sync_lag_seconds ")
	require.False(t, strings.Contains(body, "445566"), "no per-user series")
}
