package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/web"
)

// quarantineItem is one item of GET /api/quarantine as a client reads it.
type quarantineItem struct {
	ID         *string `json:"id"`
	Raw        string  `json:"raw"`
	Reason     string  `json:"reason"`
	ReceivedAt string  `json:"receivedAt"`
}

// seededItem is a quarantined item as stored by mustSeedQuarantine.
type seededItem struct {
	scorekeeper.Quarantined
	at time.Time
}

// mustSeedQuarantine stores batches quarantined items, per items each,
// one batch a minute after t0 (plus a fraction of a second, which the
// listing must keep), and returns them newest batch first. Every third
// item has no id; raw texts include what JSON must escape.
func mustSeedQuarantine(tb testing.TB, d *bun.DB, batches, per int) []seededItem {
	tb.Helper()
	var out []seededItem
	for b := range batches {
		at := t0.Add(time.Duration(b)*time.Minute + 250*time.Millisecond)
		var items []scorekeeper.Quarantined
		for i := range per {
			n := b*per + i
			q := scorekeeper.Quarantined{
				ItemID: fmt.Sprintf("q%03d", n),
				Raw:    fmt.Sprintf(`{"id":"q%03d","amount":-%d,"note":"<é & \"x\">"}`, n, n),
				Reason: "amount must be positive",
			}
			if n%3 == 0 {
				q.ItemID = ""
				q.Raw = fmt.Sprintf("not JSON %d\t\n", n)
				q.Reason = "not a JSON object"
			}
			items = append(items, q)
		}
		_, err := db.ApplyBatch(context.Background(), d, db.Batch{Quarantined: items}, at)
		require.NoError(tb, err)
		batch := make([]seededItem, len(items))
		for i, q := range items {
			batch[i] = seededItem{q, at}
		}
		out = append(batch, out...)
	}
	return out
}

func decodeQuarantine(tb testing.TB, body string) []quarantineItem {
	tb.Helper()
	var items []quarantineItem
	require.NoError(tb, json.Unmarshal([]byte(body), &items), body)
	require.NotNil(tb, items, "an empty page is [], not null")
	return items
}

// Ensure GET /api/quarantine is admin-only (401 without the token, 403
// with another), lists each quarantined item with its id (null when it
// had none), its raw text byte for byte, its reason and when it was
// received, newest first, and that following Link headers walks every
// item exactly once in that order; bad queries are 400.
func TestQuarantine(t *testing.T) {
	const token = "quarantine-admin-token"
	app, d, _ := MustNewApp(t, web.Config{AdminToken: token})
	auth := []string{"Authorization", "Bearer " + token}

	t.Run("OKEmpty", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "[]", body)
		require.Equal(t, "0", resp.Header.Get(web.HeaderTotalCount))
	})

	seeded := mustSeedQuarantine(t, d, 5, 5)

	t.Run("ErrNoToken", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine")
		requireError(t, resp, body, http.StatusUnauthorized, scorekeeper.EUnauthorized)
		require.Equal(t, `Bearer realm="scorekeeper"`, resp.Header.Get("WWW-Authenticate"))
		resp, body = do(t, app, http.MethodGet, "/api/quarantine", "Authorization", "Basic YWRtaW46YWRtaW4=")
		requireError(t, resp, body, http.StatusUnauthorized, scorekeeper.EUnauthorized)
		require.NotContains(t, body, "q001", "no data without the token")
	})

	t.Run("ErrWrongToken", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine", "Authorization", "Bearer not-the-token")
		requireError(t, resp, body, http.StatusForbidden, scorekeeper.EForbidden)
		require.NotContains(t, body, "q001")
	})

	t.Run("OK", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "raw upstream data is not cached")
		require.Equal(t, strconv.Itoa(len(seeded)), resp.Header.Get(web.HeaderTotalCount))
		require.Empty(t, resp.Header.Get("Link"), "a short page is the last")
		items := decodeQuarantine(t, body)
		require.Len(t, items, len(seeded))

		want := map[string]seededItem{}
		for _, s := range seeded {
			want[s.Raw] = s
		}
		for i, it := range items {
			s, ok := want[it.Raw]
			require.True(t, ok, "raw %q was not stored as is", it.Raw)
			require.Equal(t, s.Reason, it.Reason)
			if s.ItemID == "" {
				require.Nil(t, it.ID, "an item without id has id null")
			} else {
				require.NotNil(t, it.ID)
				require.Equal(t, s.ItemID, *it.ID)
			}
			at, err := time.Parse(time.RFC3339Nano, it.ReceivedAt)
			require.NoError(t, err)
			require.Equal(t, time.UTC, at.Location(), "receivedAt is UTC: %s", it.ReceivedAt)
			require.True(t, s.at.Equal(at), "receivedAt %s, stored at %s", it.ReceivedAt, s.at)
			// Newest batch first.
			require.Equal(t, seeded[i].at, s.at, "item %d", i)
		}
		// The raw text survives JSON both ways, quotes, tabs and all.
		require.Contains(t, body, `"id":null`)
	})

	t.Run("OKPaging", func(t *testing.T) {
		for _, limit := range []int{1, 4, 5, 25} {
			var all []quarantineItem
			next := "/api/quarantine?limit=" + strconv.Itoa(limit)
			pages := 0
			for ; next != ""; pages++ {
				require.LessOrEqual(t, pages, len(seeded)+1, "paging does not end")
				u, err := url.Parse(next)
				require.NoError(t, err)
				require.False(t, u.IsAbs(), "relative link: %s", next)
				require.Equal(t, "/api/quarantine", u.Path)
				require.Equal(t, strconv.Itoa(limit), u.Query().Get("limit"), "the link keeps the limit")
				resp, body := do(t, app, http.MethodGet, u.RequestURI(), auth...)
				require.Equal(t, http.StatusOK, resp.StatusCode, body)
				require.Equal(t, strconv.Itoa(len(seeded)), resp.Header.Get(web.HeaderTotalCount))
				page := decodeQuarantine(t, body)
				require.LessOrEqual(t, len(page), limit)
				all = append(all, page...)
				next = nextLink(t, resp)
				if next != "" {
					require.Len(t, page, limit, "only a full page links onwards")
				}
			}
			require.Len(t, all, len(seeded), "limit %d", limit)
			seen := map[string]bool{}
			for i, it := range all {
				require.False(t, seen[it.Raw], "limit %d: %q listed twice", limit, it.Raw)
				seen[it.Raw] = true
				if i > 0 {
					require.GreaterOrEqual(t, all[i-1].ReceivedAt, it.ReceivedAt, "newest first")
				}
			}
			// Same order as one big page: paging is stable.
			_, body := do(t, app, http.MethodGet, "/api/quarantine", auth...)
			require.Equal(t, decodeQuarantine(t, body), all, "limit %d", limit)
		}
	})

	t.Run("OKNewItemsDoNotShiftPages", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine?limit=10", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		first := decodeQuarantine(t, body)
		next := nextLink(t, resp)
		late := []scorekeeper.Quarantined{{Raw: "late item", Reason: "not a JSON object"}}
		_, err := db.ApplyBatch(context.Background(), d, db.Batch{Quarantined: late}, t0.Add(time.Hour))
		require.NoError(t, err)
		var rest []quarantineItem
		for next != "" {
			resp, body := do(t, app, http.MethodGet, next, auth...)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			rest = append(rest, decodeQuarantine(t, body)...)
			next = nextLink(t, resp)
		}
		require.Len(t, append(first, rest...), len(seeded), "the late item is newer than the cursor")
	})

	t.Run("ErrBadQuery", func(t *testing.T) {
		// A cursor of the payouts listing is no cursor here.
		payoutsCursor := base64.RawURLEncoding.EncodeToString([]byte(`{"s":"userId","u":"112233"}`))
		for q, mention := range map[string]string{
			"?limit=0":                             "limit",
			"?limit=10001":                         "limit",
			"?limit=%2B5":                          "limit",
			"?limit=ten":                           "limit",
			"?after=":                              "after",
			"?after=q001":                          "after",
			"?after=" + payoutsCursor:              "after",
			"?after=" + b64(`{"t":1}`):             "after",
			"?after=" + b64(`{"k":"abc"}`):         "after",
			"?after=" + b64(`{"t":"1","k":"abc"}`): "after",
			"?page=2":                              "unknown query parameter",
			"?limit=1&limit=2":                     "more than once",
			"?status=pending":                      "unknown query parameter",
		} {
			resp, body := do(t, app, http.MethodGet, "/api/quarantine"+q, auth...)
			msg := requireError(t, resp, body, http.StatusBadRequest, scorekeeper.EInvalid)
			require.Contains(t, msg, mention, q)
		}
	})

	t.Run("OKOpenWithoutToken", func(t *testing.T) {
		open, _, _ := MustNewApp(t, web.Config{DB: d})
		resp, body := do(t, open, http.MethodGet, "/api/quarantine?limit=1")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Len(t, decodeQuarantine(t, body), 1)
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
