package upstream_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/mockapi"
	"scorekeeper/upstream"
)

// Ensure the client pages through the mock's whole contract: every valid
// item arrives, every malformed item is quarantined, duplicates across
// pages are repeats, and the mock's rate limit surfaces as a typed error.
func TestClient_AgainstMock(t *testing.T) {
	start := time.Date(2023, 3, 16, 12, 0, 0, 0, time.UTC)
	cfg := mockapi.DefaultConfig()
	cfg.Users, cfg.Transactions, cfg.History, cfg.LiveRate = 50, 4321, time.Hour, 0
	cfg.DuplicateRate, cfg.MalformedRate = 0.05, 0.02
	cfg.Start = start
	cfg.Now = func() time.Time { return start.Add(time.Hour) }
	cfg.RateLimit, cfg.RateWindow = 6, time.Minute
	mock, err := mockapi.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(mock)
	defer hs.Close()
	c, err := upstream.New(hs.URL, 5*time.Second, nil)
	require.NoError(t, err)

	ids := map[string]int{}
	bad := map[string]bool{}
	req := upstream.PageRequest{Start: start.Add(-2 * time.Hour), End: start.Add(time.Hour), Page: 1, Limit: 1000}
	for {
		p, err := c.FetchPage(context.Background(), req)
		require.NoError(t, err)
		for _, it := range p.Items {
			ids[it.ID]++
		}
		for _, q := range p.Quarantined {
			require.NotEmpty(t, q.Reason)
			bad[q.Raw] = true
		}
		if req.Page >= p.Meta.TotalPages {
			require.Equal(t, 5, p.Meta.TotalPages, "4321 items + duplicates + malformed at 1000 a page")
			break
		}
		req.Page++
	}
	want := map[string]bool{}
	for _, tx := range mock.Transactions() {
		want[tx.ID] = true
	}
	require.Len(t, ids, len(want))
	for id := range want {
		require.Contains(t, ids, id)
	}
	require.Len(t, bad, mock.MalformedCount())
	repeats := 0
	for _, n := range ids {
		if n > 1 {
			repeats++
		}
	}
	require.Positive(t, repeats, "some items arrive on two pages")

	// The sixth request of the minute is the last; the seventh is refused.
	_, err = c.FetchPage(context.Background(), req)
	require.NoError(t, err)
	_, err = c.FetchPage(context.Background(), req)
	var rl *upstream.RateLimitedError
	require.True(t, errors.As(err, &rl), "got %v", err)
	require.Positive(t, rl.RetryAfter)
}
