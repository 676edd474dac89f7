package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/web"
)

// quarantineItem is one item of GET /api/quarantine as a client reads it.
// The pointers tell a missing field from a zero one.
type quarantineItem struct {
	ID         *string `json:"id"`
	Raw        string  `json:"raw"`
	Reason     string  `json:"reason"`
	ReceivedAt string  `json:"receivedAt"`
	Size       *int64  `json:"size"`
	SHA256     *string `json:"sha256"`
	Truncated  *bool   `json:"truncated"`
}

// seededItem is a quarantined item as stored by seedQuarantine.
type seededItem struct {
	scorekeeper.Quarantined
	at time.Time
}

// seedQuarantine stores, through store, batches quarantined items, per
// items each, one batch a minute after t0 (plus a fraction of a second,
// which the listing must keep), and returns them newest batch first. Every
// third item has no id; raw texts include what JSON must escape.
func seedQuarantine(store func(at time.Time, items []scorekeeper.Quarantined), batches, per int) []seededItem {
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
		store(at, items)
		batch := make([]seededItem, len(items))
		for i, q := range items {
			batch[i] = seededItem{q, at}
		}
		out = append(batch, out...)
	}
	return out
}

// intoFake stores quarantined items in a fakeStore.
func intoFake(s *fakeStore) func(time.Time, []scorekeeper.Quarantined) {
	return func(at time.Time, items []scorekeeper.Quarantined) { s.quarantine(at, items...) }
}

// intoDB stores quarantined items in a database, as a sync does.
func intoDB(tb testing.TB, d *bun.DB) func(time.Time, []scorekeeper.Quarantined) {
	return func(at time.Time, items []scorekeeper.Quarantined) {
		tb.Helper()
		_, err := db.ApplyBatch(context.Background(), d, db.Batch{Quarantined: items}, at)
		require.NoError(tb, err)
	}
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
	app, store, _ := MustNewApp(t, web.Config{AdminToken: token})
	auth := []string{"Authorization", "Bearer " + token}

	t.Run("OKEmpty", func(t *testing.T) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "[]", body)
		require.Equal(t, "0", resp.Header.Get(web.HeaderTotalCount))
	})

	seeded := seedQuarantine(intoFake(store), 5, 5)

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
		requireQuarantined(t, seeded, decodeQuarantine(t, body))
		// The raw text survives JSON both ways, quotes, tabs and all.
		require.Contains(t, body, `"id":null`)
	})

	t.Run("OKPaging", func(t *testing.T) {
		for _, limit := range []int{1, 4, 5, 25} {
			walkQuarantine(t, app, limit, len(seeded), auth...)
		}
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
		open, _, _ := MustNewApp(t, web.Config{Store: store})
		resp, body := do(t, open, http.MethodGet, "/api/quarantine?limit=1")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Len(t, decodeQuarantine(t, body), 1)
	})
}

// requireQuarantined requires items to be exactly the seeded items, each
// with its id (null when it had none), raw text byte for byte (an excerpt
// of a big one), size, SHA-256, reason, and receivedAt in UTC to the
// microsecond, newest batch first.
func requireQuarantined(t *testing.T, seeded []seededItem, items []quarantineItem) {
	t.Helper()
	require.Len(t, items, len(seeded))
	want := map[string]seededItem{}
	for _, s := range seeded {
		want[s.Raw] = s
	}
	for i, it := range items {
		s, ok := want[it.Raw]
		require.True(t, ok, "raw %q was not stored as is", it.Raw)
		rec, err := s.Bounded()
		require.NoError(t, err)
		require.Equal(t, rec.Raw, it.Raw)
		require.NotNil(t, it.Size)
		require.Equal(t, rec.Size, *it.Size)
		require.NotNil(t, it.SHA256)
		require.Equal(t, rec.SHA256, *it.SHA256)
		require.NotNil(t, it.Truncated)
		require.Equal(t, rec.Truncated, *it.Truncated)
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
		require.Equal(t, seeded[i].at, s.at, "item %d: newest batch first", i)
	}
}

// walkQuarantine follows GET /api/quarantine?limit=limit by its Link
// headers, requiring relative links that keep the limit, X-Total-Count
// total on every page, links from full pages only, every item once, and
// the order of one big page. It returns the items.
func walkQuarantine(t *testing.T, app *fiber.App, limit, total int, header ...string) []quarantineItem {
	t.Helper()
	var all []quarantineItem
	next := "/api/quarantine?limit=" + strconv.Itoa(limit)
	for pages := 0; next != ""; pages++ {
		require.LessOrEqual(t, pages, total+1, "paging does not end")
		u, err := url.Parse(next)
		require.NoError(t, err)
		require.False(t, u.IsAbs(), "relative link: %s", next)
		require.Equal(t, "/api/quarantine", u.Path)
		require.Equal(t, strconv.Itoa(limit), u.Query().Get("limit"), "the link keeps the limit")
		resp, body := do(t, app, http.MethodGet, u.RequestURI(), header...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, strconv.Itoa(total), resp.Header.Get(web.HeaderTotalCount))
		page := decodeQuarantine(t, body)
		require.LessOrEqual(t, len(page), limit)
		all = append(all, page...)
		next = nextLink(t, resp)
		if next != "" {
			require.Len(t, page, limit, "only a full page links onwards")
		}
	}
	require.Len(t, all, total, "limit %d", limit)
	seen := map[string]bool{}
	for i, it := range all {
		require.False(t, seen[it.Raw], "limit %d: %q listed twice", limit, it.Raw)
		seen[it.Raw] = true
		if i > 0 {
			require.GreaterOrEqual(t, all[i-1].ReceivedAt, it.ReceivedAt, "newest first")
		}
	}
	// Same order as one big page: paging is stable.
	_, body := do(t, app, http.MethodGet, "/api/quarantine", header...)
	require.Equal(t, decodeQuarantine(t, body), all, "limit %d", limit)
	return all
}

// Ensure the quarantine listing reads the store as documented on both
// databases: each item's raw text byte for byte and its receivedAt to the
// microsecond (stored with a fraction of a second); the handler's cursors,
// which carry that instant, walk every item exactly once in the order of
// one big page at any limit; and an item stored mid-walk, newer than the
// cursor, shifts nothing.
func TestQuarantine_Store(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		seeded := seedQuarantine(intoDB(t, d), 5, 5)

		_, body := do(t, app, http.MethodGet, "/api/quarantine")
		requireQuarantined(t, seeded, decodeQuarantine(t, body))
		for _, limit := range []int{1, 4, 5, 25} {
			walkQuarantine(t, app, limit, len(seeded))
		}

		resp, body := do(t, app, http.MethodGet, "/api/quarantine?limit=10")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		first := decodeQuarantine(t, body)
		next := nextLink(t, resp)
		intoDB(t, d)(t0.Add(time.Hour), []scorekeeper.Quarantined{{Raw: "late item", Reason: "not a JSON object"}})
		var rest []quarantineItem
		for next != "" {
			resp, body := do(t, app, http.MethodGet, next)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			rest = append(rest, decodeQuarantine(t, body)...)
			next = nextLink(t, resp)
		}
		require.Len(t, append(first, rest...), len(seeded), "the late item is newer than the cursor")
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Ensure GET /api/quarantine shows a big item as its record — a raw
// excerpt of at most scorekeeper.MaxQuarantineExcerpt bytes marked
// truncated, with the whole item's size and SHA-256 — on the fake store and
// both databases, so a listing of big items stays small; a small item is
// shown whole with its size and hash.
func TestQuarantine_BigItems(t *testing.T) {
	big := []byte(`{"id":"big","amount":-1,"note":"` + strings.Repeat("<é>", 1<<20) + `"}`) // 5 MiB
	sum := sha256.Sum256(big)
	small := `{"id":"small","amount":-1}`
	smallSum := sha256.Sum256([]byte(small))
	items := []scorekeeper.Quarantined{
		scorekeeper.NewQuarantined("big", big, "amount -1 must be greater than 0"),
		// A record holding a big item whole, as hand-built ones may.
		{ItemID: "whole", Raw: strings.Repeat("w", 3*scorekeeper.MaxQuarantineExcerpt), Reason: "item is a string, not a JSON object"},
		{ItemID: "small", Raw: small, Reason: "amount -1 must be greater than 0"},
	}
	check := func(t *testing.T, app *fiber.App) {
		resp, body := do(t, app, http.MethodGet, "/api/quarantine")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Less(t, len(body), 64<<10, "the listing holds excerpts (JSON-escaped), not 5 MiB items")
		got := map[string]quarantineItem{}
		for _, it := range decodeQuarantine(t, body) {
			got[*it.ID] = it
		}
		require.Len(t, got, 3)

		b := got["big"]
		require.True(t, *b.Truncated)
		require.EqualValues(t, len(big), *b.Size)
		require.Equal(t, hex.EncodeToString(sum[:]), *b.SHA256)
		require.LessOrEqual(t, len(b.Raw), scorekeeper.MaxQuarantineExcerpt)
		require.True(t, strings.HasPrefix(string(big), b.Raw))

		w := got["whole"]
		require.True(t, *w.Truncated)
		require.EqualValues(t, 3*scorekeeper.MaxQuarantineExcerpt, *w.Size)
		require.Len(t, w.Raw, scorekeeper.MaxQuarantineExcerpt)

		s := got["small"]
		require.False(t, *s.Truncated)
		require.Equal(t, small, s.Raw)
		require.EqualValues(t, len(small), *s.Size)
		require.Equal(t, hex.EncodeToString(smallSum[:]), *s.SHA256)
	}
	t.Run("Fake", func(t *testing.T) {
		app, store, _ := MustNewApp(t, web.Config{})
		store.quarantine(t0, items...)
		check(t, app)
	})
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
		intoDB(t, d)(t0, items)
		// The same big item again, whole this time: one row still.
		intoDB(t, d)(t0.Add(time.Minute), []scorekeeper.Quarantined{{ItemID: "big", Raw: string(big), Reason: "again"}})
		check(t, app)
	})
}
