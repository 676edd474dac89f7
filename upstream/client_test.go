package upstream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/upstream"
)

// window is a valid one-minute window used where the dates do not matter.
var (
	windowStart = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2023, 2, 1, 0, 1, 0, 0, time.UTC)
)

// MustNewClient returns a Client for handler served by an httptest server
// that is closed when the test ends.
func MustNewClient(tb testing.TB, timeout time.Duration, handler http.HandlerFunc) *upstream.Client {
	tb.Helper()
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	c, err := upstream.New(srv.URL, timeout, srv.Client())
	require.NoError(tb, err)
	return c
}

// item renders a valid upstream item.
func item(id, userID, createdAt, typ, amount string) string {
	return fmt.Sprintf(`{"id":%q,"userId":%q,"createdAt":%q,"type":%q,"amount":%s}`, id, userID, createdAt, typ, amount)
}

// pageBody renders a page body around raw item JSON texts, exactly as given.
func pageBody(meta upstream.Meta, items ...string) string {
	m, _ := json.Marshal(meta)
	return `{"items":[` + strings.Join(items, ",") + `],"meta":` + string(m) + `}`
}

func onePage(n int) upstream.Meta {
	return upstream.Meta{TotalItems: n, ItemCount: n, ItemsPerPage: upstream.MaxLimit, TotalPages: 1, CurrentPage: 1}
}

func serveBody(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func fetch(tb testing.TB, c *upstream.Client) (*upstream.Page, error) {
	tb.Helper()
	return c.FetchPage(context.Background(), upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 1, Limit: upstream.MaxLimit})
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name, url string
		timeout   time.Duration
		wantErr   string
	}{
		{"OK", "http://upstream.example:8080", time.Second, ""},
		{"OKHTTPSWithPath", "https://upstream.example/api/", time.Second, ""},
		{"ErrRelative", "/transactions", time.Second, "absolute"},
		{"ErrNoScheme", "upstream.example:8080", time.Second, "absolute"},
		{"ErrScheme", "ftp://upstream.example", time.Second, "absolute"},
		{"ErrNoHost", "http://", time.Second, "absolute"},
		{"ErrQuery", "http://upstream.example/?x=1", time.Second, "query"},
		{"ErrUnparseable", "http://[::1", time.Second, "invalid base URL"},
		{"ErrZeroTimeout", "http://upstream.example", 0, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := upstream.New(tt.url, tt.timeout, nil)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, c)
		})
	}

	// Ensure a base URL's path prefix is kept, with or without a trailing
	// slash, and a nil http.Client works.
	t.Run("PathPrefix", func(t *testing.T) {
		var gotPath atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotPath.Store(r.URL.Path)
			serveBody(http.StatusOK, pageBody(onePage(0)))(w, r)
		}))
		t.Cleanup(srv.Close)
		for _, base := range []string{srv.URL + "/api", srv.URL + "/api/"} {
			c, err := upstream.New(base, time.Second, nil)
			require.NoError(t, err)
			_, err = fetch(t, c)
			require.NoError(t, err)
			require.Equal(t, "/api/transactions", gotPath.Load())
		}
	})
}

func TestFetchPage_Query(t *testing.T) {
	type received struct {
		method, path, rawQuery, accept string
		query                          map[string][]string
	}
	capture := func(t *testing.T) (*upstream.Client, *received) {
		got := &received{}
		c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
			*got = received{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"), r.URL.Query()}
			serveBody(http.StatusOK, pageBody(onePage(0)))(w, r)
		})
		return c, got
	}

	t.Run("OK", func(t *testing.T) {
		c, got := capture(t)
		_, err := c.FetchPage(context.Background(), upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 3, Limit: 1000})
		require.NoError(t, err)
		require.Equal(t, http.MethodGet, got.method)
		require.Equal(t, "/transactions", got.path)
		require.Equal(t, "application/json", got.accept)
		// Spaces travel as %20 so that no decoder reads them as a literal '+'.
		require.Equal(t, "startDate=2023-02-01%2000%3A00%3A00&endDate=2023-02-01%2000%3A01%3A00&page=3&limit=1000", got.rawQuery)
		require.Equal(t, map[string][]string{
			"startDate": {"2023-02-01 00:00:00"},
			"endDate":   {"2023-02-01 00:01:00"},
			"page":      {"3"},
			"limit":     {"1000"},
		}, got.query)
	})

	// Ensure dates are sent in UTC whatever the caller's zone.
	t.Run("ConvertsToUTC", func(t *testing.T) {
		c, got := capture(t)
		berlin := time.FixedZone("CET", 3600)
		_, err := c.FetchPage(context.Background(), upstream.PageRequest{
			Start: time.Date(2023, 2, 1, 1, 0, 0, 0, berlin),
			End:   time.Date(2023, 2, 1, 1, 1, 0, 0, berlin),
			Page:  1, Limit: 1,
		})
		require.NoError(t, err)
		require.Equal(t, "2023-02-01 00:00:00", got.query["startDate"][0])
		require.Equal(t, "2023-02-01 00:01:00", got.query["endDate"][0])
		require.Equal(t, "1", got.query["limit"][0])
	})

	// Ensure sub-second bounds widen the window to whole seconds and never
	// narrow it: an item at 00:01:00.5 must stay inside the window.
	t.Run("WidensToWholeSeconds", func(t *testing.T) {
		c, got := capture(t)
		_, err := c.FetchPage(context.Background(), upstream.PageRequest{
			Start: windowStart.Add(999 * time.Millisecond),
			End:   windowEnd.Add(500 * time.Millisecond),
			Page:  1, Limit: 10,
		})
		require.NoError(t, err)
		require.Equal(t, "2023-02-01 00:00:00", got.query["startDate"][0])
		require.Equal(t, "2023-02-01 00:01:01", got.query["endDate"][0])
	})

	// Ensure a one-instant window (start == end) is allowed: both ends are
	// inclusive.
	t.Run("StartEqualsEnd", func(t *testing.T) {
		c, got := capture(t)
		_, err := c.FetchPage(context.Background(), upstream.PageRequest{Start: windowEnd, End: windowEnd, Page: 1, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, got.query["startDate"], got.query["endDate"])
	})
}

func TestFetchPage_InvalidRequest(t *testing.T) {
	var hits atomic.Int32
	c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		serveBody(http.StatusOK, pageBody(onePage(0)))(w, r)
	})
	for _, tt := range []struct {
		name string
		req  upstream.PageRequest
	}{
		{"ErrPageZero", upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 0, Limit: 10}},
		{"ErrPageNegative", upstream.PageRequest{Start: windowStart, End: windowEnd, Page: -1, Limit: 10}},
		{"ErrLimitZero", upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 1, Limit: 0}},
		{"ErrLimitTooLarge", upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 1, Limit: 1001}},
		{"ErrStartAfterEnd", upstream.PageRequest{Start: windowEnd, End: windowStart, Page: 1, Limit: 10}},
		{"ErrZeroStart", upstream.PageRequest{End: windowEnd, Page: 1, Limit: 10}},
		{"ErrEndBeyond9999", upstream.PageRequest{Start: windowStart, End: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Page: 1, Limit: 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.FetchPage(context.Background(), tt.req)
			require.ErrorIs(t, err, upstream.ErrInvalidRequest)
			require.Nil(t, p)
		})
	}
	// Ensure an invalid request never spends upstream budget.
	require.Zero(t, hits.Load())
}

// Ensure a caller can page to the last page using meta.totalPages, and
// every item arrives once.
func TestFetchPage_PagingToLastPage(t *testing.T) {
	const total, limit = 2345, 1000
	var requests atomic.Int32
	c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		lim, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		pages := (total + lim - 1) / lim
		var items []string
		for i := (page - 1) * lim; i < min(page*lim, total); i++ {
			items = append(items, item(fmt.Sprintf("tx-%05d", i), "074092", "2023-02-01T00:00:30.000Z", "earned", "1.5"))
		}
		meta := upstream.Meta{TotalItems: total, ItemCount: len(items), ItemsPerPage: lim, TotalPages: pages, CurrentPage: page}
		serveBody(http.StatusOK, pageBody(meta, items...))(w, r)
	})

	seen := map[string]bool{}
	var sizes []int
	for page := 1; ; page++ {
		p, err := c.FetchPage(context.Background(), upstream.PageRequest{Start: windowStart, End: windowEnd, Page: page, Limit: limit})
		require.NoError(t, err)
		require.Equal(t, page, p.Meta.CurrentPage)
		require.Empty(t, p.Quarantined)
		sizes = append(sizes, len(p.Items))
		for _, tx := range p.Items {
			require.False(t, seen[tx.ID], "id %s seen twice", tx.ID)
			seen[tx.ID] = true
		}
		if page >= p.Meta.TotalPages {
			break
		}
	}
	require.Equal(t, []int{1000, 1000, 345}, sizes)
	require.Len(t, seen, total)
	require.EqualValues(t, 3, requests.Load())
}

func TestFetchPage_FullPage(t *testing.T) {
	items := make([]string, upstream.MaxLimit)
	for i := range items {
		items[i] = item(fmt.Sprintf("41bbdf81-%04d", i), "074092", "2023-03-16T12:33:11.000Z", "payout", "30")
	}
	c := MustNewClient(t, 5*time.Second, serveBody(http.StatusOK, pageBody(upstream.Meta{TotalItems: 1200, ItemCount: 1000, ItemsPerPage: 1000, TotalPages: 2, CurrentPage: 1}, items...)))

	p, err := fetch(t, c)
	require.NoError(t, err)
	require.Len(t, p.Items, 1000)
	require.Empty(t, p.Quarantined)
	require.Zero(t, p.Duplicates)
	require.Equal(t, upstream.Meta{TotalItems: 1200, ItemCount: 1000, ItemsPerPage: 1000, TotalPages: 2, CurrentPage: 1}, p.Meta)
	require.Equal(t, scorekeeper.Transaction{
		ID:        "41bbdf81-0000",
		UserID:    "074092",
		CreatedAt: time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC),
		Type:      scorekeeper.TxPayout,
		Amount:    scorekeeper.AmountFromCents(3000),
	}, p.Items[0])
	require.Equal(t, "41bbdf81-0999", p.Items[999].ID)
}

// Ensure amounts are exact (never float64) and timestamps are stored in UTC.
func TestFetchPage_ExactValues(t *testing.T) {
	for _, tt := range []struct {
		name, amount, createdAt string
		wantCents               int64
		wantTime                time.Time
	}{
		{"Tenth", "0.1", "2023-03-16T12:33:11.000Z", 10, time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC)},
		{"SeedBalance", "19.2", "2023-03-16T12:33:11Z", 1920, time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC)},
		{"Cents", "0.05", "2023-03-16T12:33:11.123456789Z", 5, time.Date(2023, 3, 16, 12, 33, 11, 123456789, time.UTC)},
		{"Whole", "12", "2023-03-16T14:33:11+02:00", 1200, time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC)},
		{"TrailingZeros", "51.20", "2023-03-16T07:33:11.5-05:00", 5120, time.Date(2023, 3, 16, 12, 33, 11, 500_000_000, time.UTC)},
		{"Exponent", "1.5e1", "2023-03-16T12:33:11Z", 1500, time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC)},
		{"BeyondFloatPrecision", "90071992547409.93", "2023-03-16T12:33:11Z", 9007199254740993, time.Date(2023, 3, 16, 12, 33, 11, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(1), item("a", "445566", tt.createdAt, "earned", tt.amount))))
			p, err := fetch(t, c)
			require.NoError(t, err)
			require.Empty(t, p.Quarantined)
			require.Len(t, p.Items, 1)
			require.Equal(t, tt.wantCents, p.Items[0].Amount.Cents())
			require.True(t, tt.wantTime.Equal(p.Items[0].CreatedAt), "got %s", p.Items[0].CreatedAt)
			require.Equal(t, time.UTC, p.Items[0].CreatedAt.Location())
		})
	}
}

func TestFetchPage_MalformedItems(t *testing.T) {
	valid1 := item("v1", "112233", "2023-02-01T00:00:10Z", "earned", "10")
	valid2 := item("v2", "112233", "2023-02-01T00:00:20Z", "spent", "2.5")
	long := strings.Repeat("x", 129)

	for _, tt := range []struct {
		name       string
		raw        string
		wantReason string
		wantItemID string
	}{
		{"NotObjectString", `"hello"`, "item is a string, not a JSON object", ""},
		{"NotObjectArray", `[1, 2]`, "item is an array, not a JSON object", ""},
		{"NotObjectNumber", `42`, "item is a number, not a JSON object", ""},
		{"NotObjectNull", `null`, "item is null, not a JSON object", ""},
		{"ErrIDMissing", `{"userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1}`, "id is missing", ""},
		{"ErrIDNull", `{"id":null,"userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1}`, "id is missing", ""},
		{"ErrIDEmpty", item("", "112233", "2023-02-01T00:00:00Z", "earned", "1"), "id is empty", ""},
		{"ErrIDNotString", `{"id":123,"userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1}`, "id must be a string", ""},
		{"ErrIDTooLong", item(long, "112233", "2023-02-01T00:00:00Z", "earned", "1"), "id is too long: 129 bytes, max 128", ""},
		{"ErrIDControlChars", item("a\nb", "112233", "2023-02-01T00:00:00Z", "earned", "1"), "id \"a\\nb\" contains control characters", ""},
		{"ErrUserIDMissing", `{"id":"bad","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1}`, "userId is missing", "bad"},
		{"ErrUserIDEmpty", item("bad", "", "2023-02-01T00:00:00Z", "earned", "1"), `userId "" is invalid`, "bad"},
		{"ErrUserIDTooLong", item("bad", strings.Repeat("1", 65), "2023-02-01T00:00:00Z", "earned", "1"), "is invalid: want 1-64 characters", "bad"},
		{"ErrUserIDBadChars", item("bad", "11 22/33", "2023-02-01T00:00:00Z", "earned", "1"), `userId "11 22/33" is invalid`, "bad"},
		{"ErrUserIDNumber", `{"id":"bad","userId":74092,"createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1}`, "userId must be a string, got 74092", "bad"},
		{"ErrCreatedAtMissing", `{"id":"bad","userId":"112233","type":"earned","amount":1}`, "createdAt is missing", "bad"},
		{"ErrCreatedAtNotRFC3339", item("bad", "112233", "2023-02-01 00:00:00", "earned", "1"), `createdAt "2023-02-01 00:00:00" is not an RFC 3339 timestamp`, "bad"},
		{"ErrCreatedAtNoZone", item("bad", "112233", "2023-02-01T00:00:00", "earned", "1"), "is not an RFC 3339 timestamp", "bad"},
		{"ErrCreatedAtGarbage", item("bad", "112233", "yesterday", "earned", "1"), `createdAt "yesterday" is not an RFC 3339 timestamp`, "bad"},
		{"ErrCreatedAtZero", item("bad", "112233", "0001-01-01T00:00:00Z", "earned", "1"), "createdAt is the zero time", "bad"},
		{"ErrCreatedAtNumber", `{"id":"bad","userId":"112233","createdAt":1675209600,"type":"earned","amount":1}`, "createdAt must be a string", "bad"},
		{"ErrTypeUnknown", item("bad", "112233", "2023-02-01T00:00:00Z", "refund", "1"), `type "refund" is unknown`, "bad"},
		{"ErrTypeWrongCase", item("bad", "112233", "2023-02-01T00:00:00Z", "Earned", "1"), `type "Earned" is unknown`, "bad"},
		{"ErrTypeMissing", `{"id":"bad","userId":"112233","createdAt":"2023-02-01T00:00:00Z","amount":1}`, "type is missing", "bad"},
		{"ErrAmountMissing", `{"id":"bad","userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned"}`, "amount is missing", "bad"},
		{"ErrAmountNull", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "null"), "amount is missing", "bad"},
		{"ErrAmountString", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", `"30"`), "amount must be a JSON number", "bad"},
		{"ErrAmountBool", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "true"), "amount must be a JSON number", "bad"},
		{"ErrAmountObject", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", `{"value":30}`), "is not a decimal number", "bad"},
		{"ErrAmountZero", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "0"), "amount 0 must be greater than 0", "bad"},
		{"ErrAmountNegative", item("bad", "112233", "2023-02-01T00:00:00Z", "spent", "-5.5"), "amount -5.5 must be greater than 0", "bad"},
		{"ErrAmountThreeDecimals", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "1.005"), "has more than 2 decimal places", "bad"},
		{"ErrAmountTinyExponent", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "1e-3"), "has more than 2 decimal places", "bad"},
		{"ErrAmountOutOfRange", item("bad", "112233", "2023-02-01T00:00:00Z", "earned", "1e30"), "out of range", "bad"},
		{"ErrDuplicateKey", `{"id":"bad","userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1,"amount":1000}`, `duplicate key "amount"`, ""},
		// Raw must be byte-for-byte what upstream sent, whitespace included.
		{"RawKeptExactly", "{ \"id\" : \"bad\",\n \"userId\":\"112233\", \"createdAt\":\"2023-02-01T00:00:00Z\", \"type\":\"earned\", \"amount\": 0.001 }", "more than 2 decimal places", "bad"},
		// Every problem is named, not just the first.
		{"ErrSeveral", `{"id":"bad","userId":"","type":"gift","amount":-1}`, `userId "" is invalid: want 1-64 characters of [A-Za-z0-9_-]; createdAt is missing; type "gift" is unknown: want earned, spent or payout; amount -1 must be greater than 0`, "bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(3), valid1, tt.raw, valid2)))
			p, err := fetch(t, c)
			require.NoError(t, err)

			require.Len(t, p.Quarantined, 1)
			q := p.Quarantined[0]
			require.Equal(t, tt.raw, q.Raw)
			require.Contains(t, q.Reason, tt.wantReason)
			require.Equal(t, tt.wantItemID, q.ItemID)

			// Ensure the rest of the page still applies.
			require.Len(t, p.Items, 2)
			require.Equal(t, "v1", p.Items[0].ID)
			require.Equal(t, "v2", p.Items[1].ID)
			require.Equal(t, scorekeeper.AmountFromCents(250), p.Items[1].Amount)
		})
	}

	// Ensure the boundaries themselves are accepted.
	t.Run("OKLimits", func(t *testing.T) {
		id128 := strings.Repeat("i", upstream.MaxIDLength)
		user64 := strings.Repeat("u", 64)
		c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(2),
			item(id128, user64, "2023-02-01T00:00:00Z", "payout", "0.01"),
			// Unknown extra fields are tolerated: upstream may add some.
			`{"id":"x","userId":"A-z_9","createdAt":"2023-02-01T00:00:00Z","type":"spent","amount":1,"note":"hi"}`,
		)))
		p, err := fetch(t, c)
		require.NoError(t, err)
		require.Empty(t, p.Quarantined)
		require.Len(t, p.Items, 2)
		require.Equal(t, id128, p.Items[0].ID)
		require.Equal(t, user64, p.Items[0].UserID)
		require.Equal(t, scorekeeper.AmountFromCents(1), p.Items[0].Amount)
	})
}

// Ensure an id repeated within a page is kept once (the first copy) and
// counted, not quarantined.
func TestFetchPage_Duplicates(t *testing.T) {
	c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(5),
		item("a", "112233", "2023-02-01T00:00:10Z", "earned", "10"),
		item("b", "112233", "2023-02-01T00:00:20Z", "earned", "20"),
		item("a", "112233", "2023-02-01T00:00:10Z", "earned", "10"),
		item("a", "445566", "2023-02-01T00:00:30Z", "spent", "99"),
		// A malformed copy is still quarantined: it carries information an
		// operator should see.
		item("b", "112233", "2023-02-01T00:00:20Z", "earned", "-1"),
	)))
	p, err := fetch(t, c)
	require.NoError(t, err)
	require.Equal(t, 2, p.Duplicates)
	require.Len(t, p.Items, 2)
	require.Equal(t, "a", p.Items[0].ID)
	require.Equal(t, "112233", p.Items[0].UserID)
	require.Equal(t, scorekeeper.AmountFromCents(1000), p.Items[0].Amount)
	require.Equal(t, "b", p.Items[1].ID)
	require.Len(t, p.Quarantined, 1)
	require.Equal(t, "b", p.Quarantined[0].ItemID)
}

func TestFetchPage_RateLimited(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header string
		want   time.Duration
	}{
		{"Seconds", "30", 30 * time.Second},
		{"Missing", "", upstream.DefaultRetryAfter},
		{"Garbage", "soon", upstream.DefaultRetryAfter},
		{"Negative", "-5", upstream.DefaultRetryAfter},
		{"Capped", "86400", upstream.MaxRetryAfter},
		{"ZeroFloored", "0", time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				http.Error(w, `{"message":"Too Many Requests"}`, http.StatusTooManyRequests)
			})
			p, err := fetch(t, c)
			require.Nil(t, p)
			var rl *upstream.RateLimitedError
			require.ErrorAs(t, err, &rl)
			require.Equal(t, tt.want, rl.RetryAfter)
			require.ErrorContains(t, err, "rate limited")
		})
	}

	t.Run("HTTPDate", func(t *testing.T) {
		c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(45*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
		})
		_, err := fetch(t, c)
		var rl *upstream.RateLimitedError
		require.ErrorAs(t, err, &rl)
		// HTTP dates have one-second resolution.
		require.InDelta(t, 45*time.Second, rl.RetryAfter, float64(2*time.Second))
	})
}

func TestFetchPage_StatusError(t *testing.T) {
	for _, tt := range []struct {
		name          string
		status        int
		wantTemporary bool
	}{
		{"InternalServerError", http.StatusInternalServerError, true},
		{"BadGateway", http.StatusBadGateway, true},
		{"ServiceUnavailable", http.StatusServiceUnavailable, true},
		{"RequestTimeout", http.StatusRequestTimeout, true},
		{"BadRequest", http.StatusBadRequest, false},
		{"Unauthorized", http.StatusUnauthorized, false},
		{"NotFound", http.StatusNotFound, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, serveBody(tt.status, `{"message":"nope"}`))
			p, err := fetch(t, c)
			require.Nil(t, p)
			var se *upstream.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.status, se.StatusCode)
			require.Equal(t, tt.wantTemporary, se.Temporary())
			require.Equal(t, `{"message":"nope"}`, se.Body)
			require.ErrorContains(t, err, strconv.Itoa(tt.status))
		})
	}

	// Ensure a huge error page is cut to 512 bytes, not kept whole.
	t.Run("BodyTruncated", func(t *testing.T) {
		c := MustNewClient(t, time.Second, serveBody(http.StatusBadGateway, "<html>"+strings.Repeat("é", 10_000)))
		_, err := fetch(t, c)
		var se *upstream.StatusError
		require.ErrorAs(t, err, &se)
		require.LessOrEqual(t, len(se.Body), 512)
		require.Greater(t, len(se.Body), 500)
		require.True(t, strings.HasPrefix(se.Body, "<html>é"))
		require.NotContains(t, se.Body, "\uFFFD")
	})
}

func TestFetchPage_Timeout(t *testing.T) {
	// block holds a request until the client gives up, so that the test
	// server can shut down promptly.
	block := func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}

	t.Run("BeforeHeaders", func(t *testing.T) {
		c := MustNewClient(t, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			block(r)
		})
		start := time.Now()
		p, err := fetch(t, c)
		require.Nil(t, p)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 2*time.Second)
	})

	t.Run("DuringBody", func(t *testing.T) {
		c := MustNewClient(t, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"items":[`))
			w.(http.Flusher).Flush()
			block(r)
		})
		p, err := fetch(t, c)
		require.Nil(t, p)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	// Ensure the caller's own cancellation is reported as such.
	t.Run("ParentCanceled", func(t *testing.T) {
		c := MustNewClient(t, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
			block(r)
		})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.FetchPage(ctx, upstream.PageRequest{Start: windowStart, End: windowEnd, Page: 1, Limit: 10})
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, err := upstream.New(srv.URL, time.Second, nil)
		require.NoError(t, err)
		p, err := fetch(t, c)
		require.Nil(t, p)
		require.Error(t, err)
		require.ErrorContains(t, err, "upstream: fetch page 1")
		var se *upstream.StatusError
		require.False(t, errors.As(err, &se))
	})
}

func TestFetchPage_MalformedResponse(t *testing.T) {
	meta := `{"totalItems":0,"itemCount":0,"itemsPerPage":1000,"totalPages":0,"currentPage":1}`
	for _, tt := range []struct {
		name, body, wantReason string
	}{
		{"Empty", ``, "not valid JSON"},
		{"HTML", `<html><body>Bad Gateway</body></html>`, "not valid JSON"},
		{"Truncated", `{"items":[{"id":"a"`, "not valid JSON"},
		{"TrailingGarbage", `{"items":[],"meta":` + meta + `} x`, "not valid JSON"},
		{"TopLevelArray", `[]`, "body is an array, not a JSON object"},
		{"ItemsMissing", `{"meta":` + meta + `}`, `"items" is missing`},
		{"ItemsNull", `{"items":null,"meta":` + meta + `}`, `"items" is missing`},
		{"ItemsNotArray", `{"items":{"id":"a"},"meta":` + meta + `}`, `"items" is not an array`},
		{"DuplicateItems", `{"items":[],"items":[],"meta":` + meta + `}`, `duplicate key "items"`},
		{"MetaMissing", `{"items":[]}`, `"meta" is missing`},
		{"MetaNull", `{"items":[],"meta":null}`, `"meta" is missing`},
		{"MetaNotObject", `{"items":[],"meta":[1]}`, `"meta" is an array, not an object`},
		{"MetaTotalPagesMissing", `{"items":[],"meta":{"currentPage":1}}`, `"meta.totalPages" is missing`},
		{"MetaCurrentPageMissing", `{"items":[],"meta":{"totalPages":1}}`, `"meta.currentPage" is missing`},
		{"MetaNotInteger", `{"items":[],"meta":{"totalPages":"2","currentPage":1}}`, "not an integer"},
		{"MetaFraction", `{"items":[],"meta":{"totalPages":1.5,"currentPage":1}}`, "not an integer"},
		{"MetaNegative", `{"items":[],"meta":{"totalPages":-1,"currentPage":1}}`, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, serveBody(http.StatusOK, tt.body))
			p, err := fetch(t, c)
			require.Nil(t, p)
			var me *upstream.MalformedResponseError
			require.ErrorAs(t, err, &me)
			require.Contains(t, me.Reason, tt.wantReason)
		})
	}

	// Ensure the minimal well-formed page decodes: an empty last page.
	t.Run("OKEmpty", func(t *testing.T) {
		c := MustNewClient(t, time.Second, serveBody(http.StatusOK, `{"items":[],"meta":{"totalPages":0,"currentPage":1}}`))
		p, err := fetch(t, c)
		require.NoError(t, err)
		require.Empty(t, p.Items)
		require.Empty(t, p.Quarantined)
		require.Equal(t, upstream.Meta{CurrentPage: 1}, p.Meta)
	})

	// Ensure a body over the cap is refused rather than read into memory.
	t.Run("TooLarge", func(t *testing.T) {
		c := MustNewClient(t, 10*time.Second, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"items":[`))
			chunk := []byte(strings.Repeat(" ", 1<<20))
			for range 33 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = w.Write([]byte(`],"meta":{"totalPages":0,"currentPage":1}}`))
		})
		_, err := fetch(t, c)
		var me *upstream.MalformedResponseError
		require.ErrorAs(t, err, &me)
		require.Contains(t, me.Reason, "larger than")
	})
}

// dropAfterFirst is an upstream on a raw listener that answers the first
// request it reads with an empty page, keeping the connection open, and
// reads every later request, counts it and closes its connection
// unanswered: a request upstream counted and then dropped.
func dropAfterFirst(t *testing.T) (url string, requests *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	requests = new(atomic.Int32)
	body := pageBody(onePage(0))
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if requests.Add(1) > 1 {
						return // counted, then closed without a byte
					}
					// No Connection: close, so the client may keep the
					// connection for its next request.
					_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

// Ensure one FetchPage is one request upstream, also when upstream counts a
// request and closes the connection unanswered: net/http resends a GET
// dropped on a reused keep-alive connection, which would spend two units
// of the budget for one grant.
func TestFetchPage_OneRequestPerCall(t *testing.T) {
	for name, httpClient := range map[string]func() *http.Client{
		"OwnClient":       func() *http.Client { return nil },
		"CallerTransport": func() *http.Client { return &http.Client{Transport: &http.Transport{}} },
	} {
		t.Run(name, func(t *testing.T) {
			url, requests := dropAfterFirst(t)
			caller := httpClient()
			c, err := upstream.New(url, 5*time.Second, caller)
			require.NoError(t, err)

			_, err = fetch(t, c)
			require.NoError(t, err)
			_, err = fetch(t, c)
			require.Error(t, err, "the dropped request is an error")
			var se *upstream.StatusError
			require.False(t, errors.As(err, &se))
			// The resend, if any, happens inside the second call, and the
			// server counts a request before closing: the count is final.
			require.Equal(t, int32(2), requests.Load(), "one request per call, no transport-level resend")
			if caller != nil {
				require.False(t, caller.Transport.(*http.Transport).DisableKeepAlives, "the caller's transport is left as it is")
			}
		})
	}

	t.Run("NoRedirect", func(t *testing.T) {
		var requests atomic.Int32
		c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			http.Redirect(w, r, "/elsewhere"+r.URL.Path, http.StatusFound)
		})
		_, err := fetch(t, c)
		var se *upstream.StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, http.StatusFound, se.StatusCode)
		require.Equal(t, int32(1), requests.Load())
	})
}
