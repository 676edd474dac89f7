package mockapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// testStart is the anchor of every test's data: history ends here.
var testStart = time.Date(2023, 3, 16, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is a small, fault-free (but duplicate-, late- and
// malformed-rich) configuration on a fake clock standing at testStart.
func testConfig(clock *fakeClock) Config {
	return Config{
		Seed:          42,
		Users:         50,
		Transactions:  3000,
		History:       2 * time.Hour,
		DuplicateRate: 0.05,
		LateRate:      0.05,
		LateDelay:     90 * time.Second,
		MalformedRate: 0.05,
		SlowDelay:     time.Second,
		Start:         testStart,
		Now:           clock.Now,
	}
}

// MustNewServer starts the mock on an httptest server with testConfig
// adjusted by mutate.
func MustNewServer(tb testing.TB, mutate func(*Config)) (*Server, *httptest.Server, *fakeClock) {
	tb.Helper()
	clock := &fakeClock{t: testStart}
	cfg := testConfig(clock)
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	require.NoError(tb, err)
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	return s, ts, clock
}

// listResponse is the upstream page, with items kept raw.
type listResponse struct {
	Items []json.RawMessage `json:"items"`
	Meta  struct {
		TotalItems   int `json:"totalItems"`
		ItemCount    int `json:"itemCount"`
		ItemsPerPage int `json:"itemsPerPage"`
		TotalPages   int `json:"totalPages"`
		CurrentPage  int `json:"currentPage"`
	} `json:"meta"`
}

func listURL(base string, start, end time.Time, page, limit int) string {
	q := url.Values{}
	q.Set("startDate", start.UTC().Format(DateLayout))
	q.Set("endDate", end.UTC().Format(DateLayout))
	q.Set("page", strconv.Itoa(page))
	q.Set("limit", strconv.Itoa(limit))
	return base + "/transactions?" + q.Encode()
}

// get performs a GET and returns the status, headers and body.
func get(tb testing.TB, u string) (int, http.Header, []byte) {
	tb.Helper()
	resp, err := http.Get(u)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp.StatusCode, resp.Header, b
}

// MustPage fetches one page and requires a 200.
func MustPage(tb testing.TB, base string, start, end time.Time, page, limit int) (listResponse, []byte) {
	tb.Helper()
	status, _, body := get(tb, listURL(base, start, end, page, limit))
	require.Equal(tb, http.StatusOK, status, string(body))
	var lr listResponse
	require.NoError(tb, json.Unmarshal(body, &lr))
	return lr, body
}

// MustFetchAll pages through a window and returns every item served, raw,
// including duplicate copies.
func MustFetchAll(tb testing.TB, base string, start, end time.Time, limit int) (items []string, totalItems int) {
	tb.Helper()
	first, _ := MustPage(tb, base, start, end, 1, limit)
	for _, it := range first.Items {
		items = append(items, string(it))
	}
	for p := 2; p <= first.Meta.TotalPages; p++ {
		lr, _ := MustPage(tb, base, start, end, p, limit)
		require.Equal(tb, first.Meta.TotalItems, lr.Meta.TotalItems, "totalItems changed between pages")
		for _, it := range lr.Items {
			items = append(items, string(it))
		}
	}
	require.Len(tb, items, first.Meta.TotalItems)
	return items, first.Meta.TotalItems
}

// wireItem is an item decoded the way a strict consumer would.
type wireItem struct {
	ID        string          `json:"id"`
	UserID    string          `json:"userId"`
	CreatedAt string          `json:"createdAt"`
	Type      string          `json:"type"`
	Amount    json.RawMessage `json:"amount"`
}

// validateItem applies the contract's validation (design §2, §4) to a raw
// item, returning the transaction or why it must be quarantined. It is
// deliberately independent of the generator: a strict decoding, then
// scorekeeper.Transaction.Validate.
func validateItem(raw string) (scorekeeper.Transaction, error) {
	var w wireItem
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	if err := dec.Decode(&w); err != nil {
		return scorekeeper.Transaction{}, err
	}
	tx := scorekeeper.Transaction{ID: w.ID, UserID: w.UserID, Type: scorekeeper.TxType(w.Type)}
	if len(w.Amount) == 0 {
		return tx, fmt.Errorf("missing amount")
	}
	at, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
	if err != nil {
		return tx, fmt.Errorf("bad createdAt: %w", err)
	}
	tx.CreatedAt = at.UTC()
	if err := tx.Amount.UnmarshalJSON(w.Amount); err != nil {
		return tx, err
	}
	return tx, tx.Validate()
}

// postPayout sends a payout request with key (none if empty) and body.
func postPayout(tb testing.TB, base, key, body string) (int, http.Header, string) {
	tb.Helper()
	status, hdr, resp, err := doPayout(base, key, body)
	require.NoError(tb, err)
	return status, hdr, resp
}

// doPayout is postPayout for goroutines, which must not call FailNow.
func doPayout(base, key, body string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/payouts", bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

func payoutBody(user, amount, key string) string {
	return fmt.Sprintf(`{"userId":%q,"amount":%s,"currency":"EUR","reference":%q}`, user, amount, key)
}

// errorCode extracts error.code from an error body.
func errorCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(tb, json.Unmarshal(body, &e), string(body))
	require.NotEmpty(tb, e.Error.Message)
	return e.Error.Code
}
