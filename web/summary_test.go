package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

func summaryURL(userID string) string {
	return "/api/users/" + url.PathEscape(userID) + "/summary"
}

// Ensure the route reads the store as documented on both databases: the
// design's seed example byte for byte, user ids compared case-sensitively,
// an unknown user 404, and X-Data-As-Of from the sync state once there is
// one.
func TestSummary_Store(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		MustSeed(t, d)
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{
			tx("c1", "Abc", scorekeeper.TxEarned, "1"),
		}}, t0)
		require.NoError(t, err)
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, seedSummary, body)
		_, ok := resp.Header[web.HeaderDataAsOf]
		require.False(t, ok, "no sync state yet: X-Data-As-Of is omitted")

		resp, body = do(t, app, http.MethodGet, "/api/users/Abc/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, body = do(t, app, http.MethodGet, "/api/users/abc/summary")
		requireError(t, resp, body, http.StatusNotFound, "not_found")

		through := time.Date(2023, 3, 16, 12, 34, 56, 789_000_000, time.UTC)
		_, err = db.EnsureSyncState(ctx, d, db.TransactionsStream, through, time.Now())
		require.NoError(t, err)
		mustCatchUp(t, app)
		resp, body = do(t, app, http.MethodGet, "/api/users/445566/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "2023-03-16T12:34:56Z", resp.Header.Get(web.HeaderDataAsOf))
	})
}

func TestSummary(t *testing.T) {
	app, store, _ := MustNewApp(t, web.Config{})
	store.seed()

	t.Run("OK", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, seedSummary, body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
		require.Regexp(t, `^"[0-9a-f]{16}"$`, resp.Header.Get("ETag"))
		require.NotEmpty(t, resp.Header.Get(web.HeaderRequestID))
	})

	t.Run("OKNoDataAsOfBeforeFirstSync", func(t *testing.T) {
		resp, _ := do(t, app, http.MethodGet, "/api/users/445566/summary")
		_, ok := resp.Header[web.HeaderDataAsOf]
		require.False(t, ok, "no sync state yet: X-Data-As-Of is omitted")
	})

	t.Run("OKOtherUser", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/users/112233/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `{"userId":"112233","balance":-30,"earned":0,"spent":0,"payout":30,"paidOut":0}`, body)
	})

	t.Run("OKHead", func(t *testing.T) {
		resp, body := do(t, app, http.MethodHead, "/api/users/445566/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, body)
		require.NotEmpty(t, resp.Header.Get("ETag"))
	})

	t.Run("NotModified", func(t *testing.T) {
		resp, _ := do(t, app, http.MethodGet, "/api/users/445566/summary")
		etag := resp.Header.Get("ETag")
		for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
			resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary", "If-None-Match", inm)
			require.Equal(t, http.StatusNotModified, resp.StatusCode, "If-None-Match: %s", inm)
			require.Empty(t, body)
			require.Equal(t, etag, resp.Header.Get("ETag"))
		}
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary", "If-None-Match", `"stale"`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, seedSummary, body)
	})

	t.Run("DataAsOf", func(t *testing.T) {
		through := time.Date(2023, 3, 16, 12, 34, 56, 789_000_000, time.FixedZone("CET", 3600))
		store.setAsOf(through)
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		// UTC, whole seconds, rounded down.
		require.Equal(t, "2023-03-16T11:34:56Z", resp.Header.Get(web.HeaderDataAsOf))
	})

	t.Run("ETagChangesWithData", func(t *testing.T) {
		resp, _ := do(t, app, http.MethodGet, "/api/users/445566/summary")
		before := resp.Header.Get("ETag")
		store.apply(tx("a9", "445566", scorekeeper.TxEarned, "0.05"))
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary", "If-None-Match", before)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, `{"userId":"445566","balance":19.25,"earned":51.25,"spent":12,"payout":20,"paidOut":20}`, body)
		require.NotEqual(t, before, resp.Header.Get("ETag"))
	})

	t.Run("OKUserID64Chars", func(t *testing.T) {
		// Valid, so it reaches the store, which does not know it.
		resp, body := do(t, app, http.MethodGet, summaryURL(strings.Repeat("a", 64)))
		requireError(t, resp, body, http.StatusNotFound, "not_found")
	})

	t.Run("ErrUserIDTooLong", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, summaryURL(strings.Repeat("a", 65)))
		msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, "userId")
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		require.Empty(t, resp.Header.Get("ETag"))
	})

	t.Run("ErrUserIDMalformed", func(t *testing.T) {
		reads := store.readCount()
		for _, id := range []string{"abc.def", "a b", "a/b", "é", "a\x00b", "445566\n", "a+b", "%"} {
			resp, body := do(t, app, http.MethodGet, summaryURL(id))
			requireError(t, resp, body, http.StatusBadRequest, "invalid")
		}
		// A stray percent sign that is not an escape at all; NewRequest
		// would refuse such a URL, so it goes in as is.
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RequestURI = "/api/users/44%zz/summary"
		resp, err := app.Test(req, -1)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		requireError(t, resp, string(b), http.StatusBadRequest, "invalid")
		require.Equal(t, reads, store.readCount(), "rejected before the store is asked")
	})

	t.Run("ErrUserIDSQL", func(t *testing.T) {
		reads := store.readCount()
		for _, id := range []string{"1' OR '1'='1", "445566'--", "1; DROP TABLE user_summaries", `" OR ""="`} {
			resp, body := do(t, app, http.MethodGet, summaryURL(id))
			requireError(t, resp, body, http.StatusBadRequest, "invalid")
		}
		// Fully percent-encoded, as a browser would send it.
		resp, body := do(t, app, http.MethodGet, "/api/users/1%27%20OR%20%271%27%3D%271/summary")
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
		require.Equal(t, reads, store.readCount(), "rejected before the store is asked")
	})

	t.Run("OKPercentEncodedValidID", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/users/%34%34%35%35%36%36/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, `"userId":"445566"`)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/users/999999/summary")
		msg := requireError(t, resp, body, http.StatusNotFound, "not_found")
		require.Equal(t, "user 999999 not found", msg)
	})

	t.Run("ErrUserIDIsCaseSensitive", func(t *testing.T) {
		store.apply(tx("c1", "Abc", scorekeeper.TxEarned, "1"))
		resp, _ := do(t, app, http.MethodGet, "/api/users/Abc/summary")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, body := do(t, app, http.MethodGet, "/api/users/abc/summary")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
	})

	t.Run("ErrEmptyUserID", func(t *testing.T) {
		// An empty segment matches no route.
		resp, body := do(t, app, http.MethodGet, "/api/users//summary")
		requireError(t, resp, body, http.StatusNotFound, "not_found")
	})

	t.Run("ErrUnknownParam", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/users/445566/summary?fields=all")
		msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, `"fields"`)
	})

	t.Run("ErrMethodNotAllowed", func(t *testing.T) {
		resp, body := do(t, app, http.MethodPost, "/api/users/445566/summary")
		requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	})
}
