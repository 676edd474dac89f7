package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/web"
)

// maxFuzzTarget is the longest request target the fuzz targets send
// through app.Test. A request line longer than fasthttp's read buffer
// (Fiber's default ReadBufferSize, 4096 bytes, for the line and headers
// together) is refused with 431 before routing, and app.Test reports that
// refusal as an error rather than as a response, so longer inputs are
// skipped: the handlers never see them.
const maxFuzzTarget = 3900

// fuzzRequestTimeout bounds one fuzzed request; a request is a few
// milliseconds, so reaching it means the handler hangs.
const fuzzRequestTimeout = 10 * time.Second

// driverMarkers are fragments of database driver, SQL and runtime error
// text that must never reach a client.
var driverMarkers = []string{
	"sqlite", "sql logic error", "syntax error", "sqlstate", "pgdriver", "pq:", "no such table",
	"no such column", "database is closed", "sql:", "constraint failed", "panic", "goroutine", ".go:",
}

// MustNewFuzzApp returns the app over a fakeStore holding the seed data
// and a sync state, built once per fuzz target so that every iteration
// costs one request and no setup. What is fuzzed is the HTTP edge (raw
// paths and queries, their unescaping and validation): the store only
// ever sees what validation let through.
func MustNewFuzzApp(tb testing.TB) *fiber.App {
	tb.Helper()
	store := newFakeStore().seed()
	store.setAsOf(t0.Add(time.Hour))
	app, _, _ := MustNewApp(tb, web.Config{Store: store})
	return app
}

// rawTarget makes s fit a request line: bytes outside printable ASCII
// (space included) are percent-encoded, everything else is sent exactly as
// given ('%', '/', '?', '#' and '&' too), so the fuzzer reaches the
// server's own parsing and unescaping rather than Go's.
func rawTarget(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c > ' ' && c < 0x7f {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sendRaw sends GET target with the request line exactly as given (not
// re-escaped by net/url) and returns the response with its body read. ok is
// false when the request was refused before routing (see maxFuzzTarget).
func sendRaw(t *testing.T, app *fiber.App, target string) (resp *http.Response, body []byte, ok bool) {
	t.Helper()
	if len(target) > maxFuzzTarget {
		return nil, nil, false
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	// httputil.DumpRequest, which app.Test uses, writes RequestURI as is.
	req.RequestURI = target
	// A deadline, so that a request that hangs fails the iteration (with
	// its input) instead of stalling the fuzzer.
	resp, err := app.Test(req, int(fuzzRequestTimeout/time.Millisecond))
	require.NoError(t, err, "GET %s", target)
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body, true
}

// requireAPIInvariants checks what holds for every answer of the API to a
// GET, whatever the input: no 5xx, a status from allowed, a JSON body (none
// on 304), errors shaped {"error":{"code","message"}} with the code their
// status implies, and no driver or runtime text that input did not itself
// contain (a 404 message quotes the path).
func requireAPIInvariants(t *testing.T, input string, resp *http.Response, body []byte, allowed ...int) {
	t.Helper()
	status := resp.StatusCode
	require.Less(t, status, 500, "5xx for %q: %s", input, body)
	require.Contains(t, allowed, status, "status for %q: %s", input, body)
	if status == http.StatusNotModified {
		require.Empty(t, body)
		return
	}
	require.Equal(t, fiber.MIMEApplicationJSON, resp.Header.Get("Content-Type"), "input %q", input)
	require.True(t, json.Valid(body), "invalid JSON for %q: %s", input, body)

	lower := strings.ToLower(string(body))
	in := strings.ToLower(input)
	for _, m := range driverMarkers {
		if !strings.Contains(in, m) {
			require.NotContains(t, lower, m, "input %q", input)
		}
	}

	if status < 400 {
		return
	}
	var e map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &e), "error body for %q: %s", input, body)
	require.Len(t, e, 1, "error body for %q: %s", input, body)
	require.Len(t, e["error"], 2, "error body for %q: %s", input, body)
	msg, _ := e["error"]["message"].(string)
	require.NotEmpty(t, msg, "error body for %q: %s", input, body)
	want := map[int]string{
		http.StatusBadRequest:       scorekeeper.EInvalid,
		http.StatusNotFound:         scorekeeper.ENotFound,
		http.StatusMethodNotAllowed: "method_not_allowed",
	}[status]
	require.Equal(t, want, e["error"]["code"], "error body for %q: %s", input, body)
}

// requireExactKeys decodes a JSON object and requires exactly keys.
func requireExactKeys(t *testing.T, raw []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m), "%s", raw)
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	require.ElementsMatch(t, keys, got, "%s", raw)
}

// FuzzSummaryPath sends GET /api/users/{userId}/summary with fuzzed
// userId path segments.
//
// Ensure no segment, however encoded, long or hostile, makes the route
// fail (5xx), answer outside {200, 304, 400, 404, 405}, or answer anything
// but JSON; a 400 is code invalid; no driver text leaks; and a 200 is the
// summary of exactly the user the segment decodes to.
func FuzzSummaryPath(f *testing.F) {
	app := MustNewFuzzApp(f)
	f.Add("445566")
	f.Fuzz(func(t *testing.T, segment string) {
		target := "/api/users/" + rawTarget(segment) + "/summary"
		resp, body, ok := sendRaw(t, app, target)
		if !ok {
			t.Skip("request line longer than the server's read buffer")
		}
		requireAPIInvariants(t, segment, resp, body,
			http.StatusOK, http.StatusNotModified, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed)
		if resp.StatusCode != http.StatusOK {
			return
		}
		requireExactKeys(t, body, "userId", "balance", "earned", "spent", "payout", "paidOut")
		var s struct {
			UserID string `json:"userId"`
		}
		require.NoError(t, json.Unmarshal(body, &s))
		require.True(t, scorekeeper.ValidUserID(s.UserID), "userId %q", s.UserID)
		want, err := url.PathUnescape(rawTarget(segment))
		require.NoError(t, err, "a 200 for an undecodable segment %q", segment)
		require.Equal(t, want, s.UserID, "the summary of another user for %q", segment)
	})
}

// FuzzPayoutsQuery sends GET /api/payouts with a fuzzed raw query string.
//
// Ensure no query makes the listing fail (5xx), answer outside {200, 304,
// 400, 404, 405} or with anything but JSON; a 400 is code invalid; no
// driver text leaks; and a 200 is an array of {userId, payoutAmount} rows,
// no more than the limit, with a numeric X-Total-Count.
func FuzzPayoutsQuery(f *testing.F) {
	app := MustNewFuzzApp(f)
	f.Add("limit=1&sort=-payoutAmount")
	f.Fuzz(func(t *testing.T, query string) {
		target := "/api/payouts?" + rawTarget(query)
		resp, body, ok := sendRaw(t, app, target)
		if !ok {
			t.Skip("request line longer than the server's read buffer")
		}
		requireAPIInvariants(t, query, resp, body,
			http.StatusOK, http.StatusNotModified, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed)
		if resp.StatusCode != http.StatusOK {
			return
		}
		var rows []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &rows), "%s", body)
		require.NotNil(t, rows, "an empty page is [], not null")
		for _, r := range rows {
			requireExactKeys(t, r, "userId", "payoutAmount")
		}
		total, err := strconv.Atoi(resp.Header.Get(web.HeaderTotalCount))
		require.NoError(t, err)
		require.GreaterOrEqual(t, total, len(rows))

		// The handler accepted the query, so its limit (if any) is a
		// number that bounds the page. The server drops a fragment, as
		// clients never send one.
		raw, _, _ := strings.Cut(rawTarget(query), "#")
		q, err := url.ParseQuery(raw)
		if err == nil && len(q["limit"]) == 1 {
			limit, err := strconv.Atoi(q.Get("limit"))
			require.NoError(t, err, "limit %q accepted", q.Get("limit"))
			require.LessOrEqual(t, len(rows), limit)
		}
	})
}
