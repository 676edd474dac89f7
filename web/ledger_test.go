package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/web"
)

type ledgerRow struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Amount    float64   `json:"amount"`
	CreatedAt time.Time `json:"createdAt"`
	SyncedAt  time.Time `json:"syncedAt"`
	Status    *string   `json:"status"`
}

// Ensure GET /api/users/{userId}/transactions serves the user's ledger on
// both databases: newest first, every row once across pages followed by
// their Link, X-Total-Count and X-Data-As-Of, payouts with their status,
// the filters, and clear errors for bad input and unknown users.
func TestLedger(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		MustSeed(t, d) // a1…a4 (a4 paid) of 445566, b1 of 112233, all created at t0
		through := t0.Add(time.Hour)
		_, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, through, time.Now())
		require.NoError(t, err)
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		mustCatchUp(t, app)

		walk := func(t *testing.T, target string) ([]ledgerRow, *http.Response) {
			var all []ledgerRow
			var first *http.Response
			for range 20 {
				resp, body := do(t, app, http.MethodGet, target)
				require.Equal(t, http.StatusOK, resp.StatusCode, body)
				if first == nil {
					first = resp
				}
				var page []ledgerRow
				require.NoError(t, json.Unmarshal([]byte(body), &page))
				all = append(all, page...)
				next := resp.Header.Get("Link")
				if next == "" {
					return all, first
				}
				target = strings.TrimSuffix(strings.TrimPrefix(next, "<"), `>; rel="next"`)
			}
			t.Fatal("the walk did not end")
			return nil, nil
		}
		ids := func(rows []ledgerRow) string {
			var out []string
			for _, r := range rows {
				out = append(out, r.ID)
			}
			return strings.Join(out, ",")
		}

		rows, resp := walk(t, "/api/users/445566/transactions?limit=1")
		require.Equal(t, "a4,a3,a2,a1", ids(rows), "newest first; ties by id, descending")
		require.Equal(t, "4", resp.Header.Get(web.HeaderTotalCount))
		require.Equal(t, "2023-02-01T01:00:00Z", resp.Header.Get(web.HeaderDataAsOf))
		require.NotNil(t, rows[0].Status)
		require.Equal(t, "paid", *rows[0].Status)
		require.Nil(t, rows[1].Status, "only payouts carry a status")
		require.Equal(t, 20.0, rows[0].Amount)
		require.Equal(t, t0, rows[0].CreatedAt)
		require.Equal(t, t0, rows[0].SyncedAt)

		resp, body := do(t, app, http.MethodGet, "/api/users/445566/transactions")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Empty(t, resp.Header.Get("Link"), "one page holds it all")
		require.Contains(t, body, `"amount":1.2,`, "amounts as plain numbers")

		rows, _ = walk(t, "/api/users/445566/transactions?type=earned&limit=1")
		require.Equal(t, "a2,a1", ids(rows))
		from := url.QueryEscape(t0.Format(time.RFC3339))
		to := url.QueryEscape(t0.Add(time.Second).Format(time.RFC3339))
		rows, _ = walk(t, "/api/users/445566/transactions?from="+from+"&to="+to)
		require.Equal(t, "a4,a3,a2,a1", ids(rows), "from inclusive")
		rows, _ = walk(t, "/api/users/445566/transactions?to="+from)
		require.Empty(t, rows, "to exclusive")

		resp, body = do(t, app, http.MethodGet, "/api/users/nobody/transactions")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		for _, q := range []string{"type=refund", "from=yesterday", "limit=0", "after=xyz", "from=" + to + "&to=" + from, "sort=id"} {
			resp, body = do(t, app, http.MethodGet, "/api/users/445566/transactions?"+q)
			requireError(t, resp, body, http.StatusBadRequest, "invalid")
		}
		resp, body = do(t, app, http.MethodGet, "/api/users/a%20b/transactions")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
	})
}

// Ensure GET /api/users/{userId}/summary?asOf= answers the summary as of
// the instant: the seed before its payout settled, a zero summary before
// any data, 409 naming the watermark after it, 400 for a bad instant.
func TestSummaryAsOf(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		MustSeed(t, d) // created, applied and paid at t0
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		at := func(when time.Time) string {
			return "/api/users/445566/summary?asOf=" + url.QueryEscape(when.Format(time.RFC3339Nano))
		}
		resp, body := do(t, app, http.MethodGet, at(t0))
		requireError(t, resp, body, http.StatusConflict, "conflict")

		through := t0.Add(time.Hour)
		_, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, through, time.Now())
		require.NoError(t, err)
		mustCatchUp(t, app)

		resp, body = do(t, app, http.MethodGet, at(t0.Add(-time.Second)))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `{"userId":"445566","balance":0,"earned":0,"spent":0,"payout":0,"paidOut":0}`, body)
		resp, body = do(t, app, http.MethodGet, at(t0))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, seedSummary, body)
		require.Equal(t, "2023-02-01T01:00:00Z", resp.Header.Get(web.HeaderDataAsOf))

		resp, body = do(t, app, http.MethodGet, at(through.Add(time.Millisecond)))
		msg := requireError(t, resp, body, http.StatusConflict, "conflict")
		require.Contains(t, msg, "2023-02-01T01:00:00Z", "names the watermark")

		resp, body = do(t, app, http.MethodGet, "/api/users/445566/summary?asOf=last-week")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
		resp, body = do(t, app, http.MethodGet, "/api/users/nobody/summary?asOf="+url.QueryEscape(t0.Format(time.RFC3339)))
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		resp, body = do(t, app, http.MethodGet, fmt.Sprintf("/api/users/445566/summary?asOf=%s&asOf=%s", url.QueryEscape(t0.Format(time.RFC3339)), url.QueryEscape(t0.Format(time.RFC3339))))
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
	})
}

// Ensure GET /api/users/{userId}/payouts lists the user's payouts with
// their state, byte for byte, paged newest first, on both databases.
func TestUserPayouts(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		MustSeed(t, d) // a4 of 445566 paid at t0; b1 of 112233 requested
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{
			{ID: "b2", UserID: "112233", CreatedAt: t0.Add(time.Second), Type: scorekeeper.TxPayout, Amount: scorekeeper.MustParseAmount("0.5")},
		}}, t0)
		require.NoError(t, err)
		_, err = db.RecordPayoutAttempt(ctx, d, "b1")
		require.NoError(t, err)
		_, err = db.MarkPayoutFailed(ctx, d, "b1", "account_closed: closed", t0.Add(time.Minute))
		require.NoError(t, err)
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		mustCatchUp(t, app)

		resp, body := do(t, app, http.MethodGet, "/api/users/445566/payouts")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"id":"a4","amount":20,"requestedAt":"2023-02-01T00:00:00Z","status":"paid","reason":"","providerId":"po_a4","attempts":0,"settledAt":"2023-02-01T00:00:00Z"}]`, body)
		require.Equal(t, "1", resp.Header.Get(web.HeaderTotalCount))

		resp, body = do(t, app, http.MethodGet, "/api/users/112233/payouts?limit=1")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"id":"b2","amount":0.5,"requestedAt":"2023-02-01T00:00:01Z","status":"requested","reason":"","providerId":"","attempts":0,"settledAt":null}]`, body)
		next := strings.TrimSuffix(strings.TrimPrefix(resp.Header.Get("Link"), "<"), `>; rel="next"`)
		require.True(t, strings.HasPrefix(next, "/api/users/112233/payouts?"), next)
		resp, body = do(t, app, http.MethodGet, next)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"id":"b1","amount":30,"requestedAt":"2023-02-01T00:00:00Z","status":"failed","reason":"account_closed: closed","providerId":"","attempts":1,"settledAt":"2023-02-01T00:01:00Z"}]`, body)

		resp, body = do(t, app, http.MethodGet, "/api/users/nobody/payouts")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		for _, q := range []string{"limit=10001", "after=abc", "status=paid"} {
			resp, body = do(t, app, http.MethodGet, "/api/users/112233/payouts?"+q)
			requireError(t, resp, body, http.StatusBadRequest, "invalid")
		}
	})
}
