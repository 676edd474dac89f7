package mockapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The counters the chaos suite reads to prove that the fault it injected
// took effect (e2e/chaos_test.go): each counts exactly the answers its
// fault shaped, and nothing else.
func TestTransactionFaultCounters(t *testing.T) {
	t.Run("TruncatedPages", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Truncate: true, Count: 2}))
		for range 2 {
			resp, err := http.Get(listURL(ts.URL, testStart.Add(-time.Hour), testStart, 1, 100))
			require.NoError(t, err)
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Error(t, err, "the body ends early")
		}
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, 2, s.TruncatedPages())
		st := s.Stats().Transactions
		require.Equal(t, int64(2), st.Truncated)
		require.Equal(t, int64(2), st.Failed, "a truncated page is a failed answer too")
		require.Empty(t, st.Injected, "a truncation has no status")
		require.Zero(t, st.Abandoned)
	})

	t.Run("InjectedStatuses", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Status: http.StatusTooManyRequests, Count: 2}))
		require.NoError(t, s.InjectFault(Fault{Status: http.StatusBadGateway}))
		var got []int
		for range 4 {
			status, _ := probe(t, ts.URL)
			got = append(got, status)
		}
		require.Equal(t, []int{429, 429, 502, 200}, got)
		require.Equal(t, map[int]int{429: 2, 502: 1}, s.InjectedStatuses())
		require.Equal(t, map[int]int64{429: 2, 502: 1}, s.Stats().Transactions.Injected)
		status, _, body := get(t, ts.URL+"/_mock/stats")
		require.Equal(t, http.StatusOK, status)
		var wire struct {
			Transactions struct {
				Injected map[string]int64 `json:"injected"`
			} `json:"transactions"`
		}
		require.NoError(t, json.Unmarshal(body, &wire))
		require.Equal(t, map[string]int64{"429": 2, "502": 1}, wire.Transactions.Injected)
		require.Zero(t, s.TruncatedPages())
	})

	t.Run("InjectedStatusesNotTheRateLimitsOrFailRates", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.RateLimit, c.RateWindow = 1, time.Hour })
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)
		status, _ = probe(t, ts.URL)
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, int64(1), s.Stats().Transactions.RateLimited)

		f, fts, _ := MustNewServer(t, func(c *Config) { c.FailRate = 1 })
		status, _ = probe(t, fts.URL)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, int64(1), f.Stats().Transactions.Failed)

		require.Empty(t, s.InjectedStatuses())
		require.Empty(t, f.InjectedStatuses())
		require.Nil(t, s.Stats().Transactions.Injected)
	})

	t.Run("AbandonedRequests", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Delay: time.Minute}))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, listURL(ts.URL, testStart.Add(-time.Hour), testStart, 1, 10), nil)
		require.NoError(t, err)
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Eventually(t, func() bool { return s.AbandonedRequests() == 1 }, 10*time.Second, 10*time.Millisecond,
			"the handler gives up its minute when the client does")

		// A delay the client waits out is answered, not abandoned.
		require.NoError(t, s.InjectFault(Fault{Delay: 50 * time.Millisecond}))
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, 1, s.AbandonedRequests())
		require.Equal(t, int64(1), s.Stats().Transactions.Abandoned)
		require.Empty(t, s.InjectedStatuses(), "a delay has no status")
	})
}
