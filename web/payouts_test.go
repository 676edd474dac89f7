package web_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/web"
)

type payoutRow struct {
	UserID       string             `json:"userId"`
	PayoutAmount scorekeeper.Amount `json:"payoutAmount"`
}

func TestPayouts(t *testing.T) {
	app, store, _ := MustNewApp(t, web.Config{})
	store.seed()

	t.Run("OK", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/payouts")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`, body)
		require.Equal(t, "2", resp.Header.Get(web.HeaderTotalCount))
		require.Empty(t, resp.Header.Get("Link"), "a short page is the last")
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
		require.NotEmpty(t, resp.Header.Get("ETag"))
	})

	t.Run("OKStatus", func(t *testing.T) {
		for status, want := range map[string]string{
			"requested": `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`,
			"pending":   `[{"userId":"112233","payoutAmount":30}]`,
			"paid":      `[{"userId":"445566","payoutAmount":20}]`,
			"failed":    `[]`,
		} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?status="+status)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, want, body, "status=%s", status)
		}
	})

	t.Run("OKEmptyIsArray", func(t *testing.T) {
		// A full last page links to an empty one.
		resp, body := do(t, app, http.MethodGet, "/api/payouts?limit=2")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, body = do(t, app, http.MethodGet, nextLink(t, resp))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[]`, body)
		require.Equal(t, "2", resp.Header.Get(web.HeaderTotalCount), "the count ignores the cursor")
		require.Empty(t, resp.Header.Get("Link"))
	})

	t.Run("OKSortPayoutAmount", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/payouts?sort=-payoutAmount")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"userId":"112233","payoutAmount":30},{"userId":"445566","payoutAmount":20}]`, body)
	})

	t.Run("OKLimitAndLink", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/payouts?limit=1&sort=userId&status=requested")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"userId":"112233","payoutAmount":30}]`, body)
		next := nextLink(t, resp)
		require.NotEmpty(t, next)
		u, err := url.Parse(next)
		require.NoError(t, err)
		require.False(t, u.IsAbs(), "relative without PUBLIC_BASE_URL: %s", next)
		require.Equal(t, "/api/payouts", u.Path)
		q := u.Query()
		require.Regexp(t, `^[A-Za-z0-9_-]+$`, q.Get("after"), "an opaque cursor that needs no escaping")
		require.NotEqual(t, "112233", q.Get("after"), "the cursor is not the bare userId")
		q.Del("after")
		require.Equal(t, url.Values{"limit": {"1"}, "sort": {"userId"}, "status": {"requested"}}, q)

		resp, body = do(t, app, http.MethodGet, u.RequestURI())
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, `[{"userId":"445566","payoutAmount":20}]`, body)
	})

	t.Run("OKLimitBounds", func(t *testing.T) {
		for _, limit := range []string{"1", "10000"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?limit="+limit)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
		}
	})

	t.Run("NotModified", func(t *testing.T) {
		resp, _ := do(t, app, http.MethodGet, "/api/payouts?status=paid")
		etag := resp.Header.Get("ETag")
		resp, body := do(t, app, http.MethodGet, "/api/payouts?status=paid", "If-None-Match", etag)
		require.Equal(t, http.StatusNotModified, resp.StatusCode)
		require.Empty(t, body)
		// Another listing has another representation.
		resp, _ = do(t, app, http.MethodGet, "/api/payouts?status=pending", "If-None-Match", etag)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("DataAsOf", func(t *testing.T) {
		store.setAsOf(time.Date(2023, 3, 16, 12, 0, 0, 0, time.UTC))
		resp, _ := do(t, app, http.MethodGet, "/api/payouts")
		require.Equal(t, "2023-03-16T12:00:00Z", resp.Header.Get(web.HeaderDataAsOf))
	})

	t.Run("ErrUnknownParam", func(t *testing.T) {
		for _, q := range []string{"?page=2", "?Status=paid", "?limit=5&offset=5", "?=x", "?statu"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts"+q)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "unknown query parameter", q)
		}
	})

	t.Run("ErrRepeatedParam", func(t *testing.T) {
		for _, q := range []string{"?limit=5&limit=6", "?status=paid&status=paid", "?after=a&sort=userId&after=b"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts"+q)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "more than once", q)
		}
	})

	t.Run("ErrBadLimit", func(t *testing.T) {
		for _, v := range []string{"0", "-1", "10001", "abc", "", "1.5", "%2B5", "1e3", "99999999999999999999"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?limit="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "limit", "limit=%s", v)
		}
	})

	t.Run("ErrBadAfter", func(t *testing.T) {
		b64 := base64.RawURLEncoding.EncodeToString
		for _, v := range []string{
			strings.Repeat("9", 65), url.QueryEscape("1' OR '1'='1"), "", "a.b",
			// The old format, a bare userId, is no cursor.
			"112233", "zzz",
			strings.Repeat("A", 600), // longer than any cursor of ours
			b64([]byte("not json")),
			b64([]byte(`{"s":"userId"}`)),
			b64([]byte(`{"s":"userId","u":"a b"}`)),
			b64([]byte(`{"s":"userId","u":"112233","x":1}`)),
			b64([]byte(`{"s":"userId","u":"112233"} {}`)),
			b64([]byte(`{"s":"userId","u":"112233","a":3000}`)),
			b64([]byte(`{"s":"status","u":"112233"}`)),
			b64([]byte(`{"t":1,"k":"abc"}`)),
		} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?after="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "after", "after=%s", v)
			require.NotContains(t, msg, "112233", "the cursor is not echoed")
		}
		for _, v := range []string{
			b64([]byte(`{"s":"-payoutAmount","u":"112233"}`)),
			b64([]byte(`{"s":"-payoutAmount","u":"112233","a":0}`)),
			b64([]byte(`{"s":"-payoutAmount","u":"112233","a":"30"}`)),
		} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?sort=-payoutAmount&after="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "after", "after=%s", v)
		}
	})

	t.Run("ErrCursorOfOtherSort", func(t *testing.T) {
		for from, to := range map[string]string{"userId": "-payoutAmount", "-payoutAmount": "userId"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?limit=1&sort="+url.QueryEscape(from))
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			u, err := url.Parse(nextLink(t, resp))
			require.NoError(t, err)
			resp, body = do(t, app, http.MethodGet, "/api/payouts?sort="+url.QueryEscape(to)+"&after="+u.Query().Get("after"))
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "after is a cursor of sort="+from)
			require.Contains(t, msg, "sort="+to)
		}
	})

	t.Run("ErrBadSort", func(t *testing.T) {
		for _, v := range []string{"payoutAmount", "-userId", "userid", "", url.QueryEscape("user_id; DROP TABLE x")} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?sort="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "sort", "sort=%s", v)
		}
	})

	t.Run("ErrBadStatus", func(t *testing.T) {
		for _, v := range []string{"REQUESTED", "all", "", "paid,failed"} {
			resp, body := do(t, app, http.MethodGet, "/api/payouts?status="+v)
			msg := requireError(t, resp, body, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, "status", "status=%s", v)
		}
	})
}

var linkNext = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// nextLink returns the URL of the response's rel="next" link, or "".
func nextLink(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	h := resp.Header.Get("Link")
	if h == "" {
		return ""
	}
	m := linkNext.FindStringSubmatch(h)
	require.NotNil(tb, m, "Link: %s", h)
	return m[1]
}

// Ensure following Link headers visits every user exactly once, in order,
// with the right sums, under both sort orders: the cursors the handler
// makes lead the store on from each page's last row, through long runs of
// equal amounts. (TestPayouts_PagingAtScale walks the SQL.)
func TestPayouts_Paging(t *testing.T) {
	app, store, _ := MustNewApp(t, web.Config{})

	const users = 2500
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]scorekeeper.Amount{}
	var txs []scorekeeper.Transaction
	for i := range users {
		user := fmt.Sprintf("u%05d", i)
		// Two payouts per user, so the listing must sum them; amounts are
		// drawn from a small range so sorting by amount has many ties.
		for j := range 2 {
			a := scorekeeper.AmountFromCents(int64(1 + rng.IntN(50)*25))
			txs = append(txs, scorekeeper.Transaction{
				ID: fmt.Sprintf("p%05d-%d", i, j), UserID: user, CreatedAt: t0, Type: scorekeeper.TxPayout, Amount: a,
			})
			want[user] += a
		}
	}
	// Users with only earnings are not in the listing.
	txs = append(txs, tx("e1", "earner", scorekeeper.TxEarned, "5"))
	store.apply(txs...)
	var wantSum scorekeeper.Amount
	for _, a := range want {
		wantSum += a
	}

	walk := func(t *testing.T, first string) []payoutRow {
		t.Helper()
		var all []payoutRow
		pages := 0
		for next := first; next != ""; pages++ {
			u, err := url.Parse(next)
			require.NoError(t, err)
			resp, body := do(t, app, http.MethodGet, u.RequestURI())
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, fmt.Sprint(users), resp.Header.Get(web.HeaderTotalCount))
			var page []payoutRow
			require.NoError(t, json.Unmarshal([]byte(body), &page))
			all = append(all, page...)
			next = nextLink(t, resp)
			if next != "" {
				require.Len(t, page, 1000, "only full pages link onwards")
			}
			require.Less(t, pages, 10, "paging does not end")
		}
		require.Equal(t, 3, pages)
		return all
	}
	check := func(t *testing.T, all []payoutRow) {
		t.Helper()
		require.Len(t, all, users)
		seen := map[string]bool{}
		var sum scorekeeper.Amount
		for _, r := range all {
			require.False(t, seen[r.UserID], "user %s listed twice", r.UserID)
			seen[r.UserID] = true
			require.Equal(t, want[r.UserID], r.PayoutAmount, "user %s", r.UserID)
			sum += r.PayoutAmount
		}
		require.Equal(t, wantSum, sum)
	}

	t.Run("OKByUserID", func(t *testing.T) {
		all := walk(t, "/api/payouts?limit=1000")
		check(t, all)
		for i := 1; i < len(all); i++ {
			require.Less(t, all[i-1].UserID, all[i].UserID)
		}
	})

	t.Run("OKByPayoutAmount", func(t *testing.T) {
		all := walk(t, "/api/payouts?limit=1000&sort=-payoutAmount")
		check(t, all)
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			require.True(t, a.PayoutAmount > b.PayoutAmount || a.PayoutAmount == b.PayoutAmount && a.UserID < b.UserID,
				"row %d (%s %s) after (%s %s)", i, b.UserID, b.PayoutAmount, a.UserID, a.PayoutAmount)
		}
	})

	t.Run("OKLinkKeepsParams", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/payouts?limit=1000&status=pending&sort=-payoutAmount")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		u, err := url.Parse(nextLink(t, resp))
		require.NoError(t, err)
		require.False(t, u.IsAbs(), "the link is relative: %s", u)
		require.Equal(t, "/api/payouts", u.Path)
		q := u.Query()
		require.Equal(t, "1000", q.Get("limit"))
		require.Equal(t, "pending", q.Get("status"))
		require.Equal(t, "-payoutAmount", q.Get("sort"))
		require.NotEmpty(t, q.Get("after"))
		require.Len(t, q, 4)
	})
}
