package mockapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// probe sends one GET /transactions for the last hour and returns its
// status and Retry-After.
func probe(t *testing.T, base string) (int, string) {
	t.Helper()
	status, hdr, body := get(t, listURL(base, testStart.Add(-time.Hour), testStart, 1, 10))
	if status != http.StatusOK {
		require.NotEmpty(t, errorCode(t, body))
	}
	return status, hdr.Get("Retry-After")
}

func TestRateLimit(t *testing.T) {
	limited := func(c *Config) { c.RateLimit, c.RateWindow = 5, time.Minute }

	t.Run("RejectsBeyondBudget", func(t *testing.T) {
		s, ts, clock := MustNewServer(t, limited)
		for i := 0; i < 5; i++ {
			status, _ := probe(t, ts.URL)
			require.Equal(t, http.StatusOK, status, i)
		}
		status, _, body := get(t, listURL(ts.URL, testStart.Add(-time.Hour), testStart, 1, 10))
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, "rate_limited", errorCode(t, body))

		// Rejected requests consume nothing: the slot frees exactly one
		// window after the first accepted request, however often we asked.
		clock.Add(30 * time.Second)
		status, retry := probe(t, ts.URL)
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, "30", retry)
		clock.Set(testStart.Add(time.Minute))
		status, _ = probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)

		st := s.Stats().Transactions
		require.Equal(t, int64(8), st.Received)
		require.Equal(t, int64(6), st.Accepted)
		require.Equal(t, int64(2), st.RateLimited)
		require.Equal(t, 5, s.MaxAcceptedInWindow(time.Minute))
		require.Equal(t, 6, s.MaxAcceptedInWindow(time.Minute+time.Nanosecond))
		require.Equal(t, 7, s.MaxReceivedInWindow(time.Minute))
		received, accepted := s.RequestTimes()
		require.Len(t, received, 8)
		require.Len(t, accepted, 6)
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		_, ts, clock := MustNewServer(t, limited)
		for i := 0; i < 5; i++ {
			clock.Set(testStart.Add(time.Duration(i) * 10 * time.Second))
			status, _ := probe(t, ts.URL)
			require.Equal(t, http.StatusOK, status)
		}
		for _, c := range []struct {
			at     time.Duration
			status int
			retry  string
		}{
			{50 * time.Second, http.StatusTooManyRequests, "10"},
			{59500 * time.Millisecond, http.StatusTooManyRequests, "1"}, // 0.5 s rounds up
			{60 * time.Second, http.StatusOK, ""},                       // the request at 0 left the window
			{61 * time.Second, http.StatusTooManyRequests, "9"},         // next frees at 10+60
			{70 * time.Second, http.StatusOK, ""},
		} {
			clock.Set(testStart.Add(c.at))
			status, retry := probe(t, ts.URL)
			require.Equal(t, c.status, status, c.at)
			require.Equal(t, c.retry, retry, c.at)
		}
	})

	t.Run("ExactSpacingNeverRejected", func(t *testing.T) {
		s, ts, clock := MustNewServer(t, limited)
		for i := 0; i < 20; i++ {
			clock.Set(testStart.Add(time.Duration(i) * 12 * time.Second))
			status, _ := probe(t, ts.URL)
			require.Equal(t, http.StatusOK, status, i)
		}
		require.Equal(t, 5, s.MaxReceivedInWindow(time.Minute))
	})

	t.Run("OnlyTransactionsAreLimited", func(t *testing.T) {
		_, ts, _ := MustNewServer(t, func(c *Config) { c.RateLimit, c.RateWindow = 1, time.Hour })
		probe(t, ts.URL)
		for i := 0; i < 3; i++ {
			status, _, _ := get(t, ts.URL+"/healthz")
			require.Equal(t, http.StatusOK, status)
			status, _, _ = postPayout(t, ts.URL, "k", payoutBody("000001", "1", "k"))
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, status)
		}
	})

	t.Run("FailuresConsumeBudget", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) {
			limited(c)
			c.FailRate = 1
		})
		for i := 0; i < 5; i++ {
			status, _ := probe(t, ts.URL)
			require.Equal(t, http.StatusServiceUnavailable, status)
		}
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, int64(5), s.Stats().Transactions.Failed)
	})
}

func TestFaults(t *testing.T) {
	t.Run("InjectStatus", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Status: http.StatusBadGateway, Count: 2}))
		for i := 0; i < 2; i++ {
			status, _ := probe(t, ts.URL)
			require.Equal(t, http.StatusBadGateway, status)
		}
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)
		require.Empty(t, s.PendingFaults())
	})

	t.Run("InjectOverHTTP", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		resp, err := http.Post(ts.URL+"/_mock/faults", "application/json", bytes.NewBufferString(`{"status":503,"count":3}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		resp, err = http.Post(ts.URL+"/_mock/faults", "application/json", bytes.NewBufferString(`{"delay":"50ms","count":1}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Len(t, s.PendingFaults(), 2)

		for i := 0; i < 3; i++ {
			status, retry := probe(t, ts.URL)
			require.Equal(t, http.StatusServiceUnavailable, status)
			require.Equal(t, "1", retry)
		}
		began := time.Now()
		status, _ := probe(t, ts.URL)
		require.Equal(t, http.StatusOK, status)
		require.GreaterOrEqual(t, time.Since(began), 50*time.Millisecond)

		status, _, body := get(t, ts.URL+"/_mock/faults")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `[]`, string(body))
	})

	t.Run("ClearOverHTTP", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Status: 500, Count: 10}))
		req, err := http.NewRequest(http.MethodDelete, ts.URL+"/_mock/faults", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Empty(t, s.PendingFaults())
	})

	t.Run("ErrBadFault", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		for _, f := range []Fault{
			{}, {Status: 200}, {Delay: -time.Second}, {Status: 503, Count: -1},
			{Target: "nope", Status: 503}, {Status: 503, AfterPay: true},
		} {
			require.Error(t, s.InjectFault(f), "%+v", f)
		}
		for _, body := range []string{`{"delay":"soon"}`, `{"status":503,"bogus":1}`, `not json`} {
			resp, err := http.Post(ts.URL+"/_mock/faults", "application/json", bytes.NewBufferString(body))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		}
	})

	t.Run("SlowHonoursCancellation", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) {
			c.SlowRate = 1
			c.SlowDelay = time.Minute
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, listURL(ts.URL, testStart.Add(-time.Hour), testStart, 1, 10), nil)
		require.NoError(t, err)
		began := time.Now()
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		ts.Close() // returns only once the handler has given up its minute
		require.Less(t, time.Since(began), 10*time.Second)
		require.Equal(t, int64(1), s.Stats().Transactions.Slow)
	})

	t.Run("RandomFaultsReproducible", func(t *testing.T) {
		run := func() []int {
			_, ts, _ := MustNewServer(t, func(c *Config) { c.FailRate = 0.5 })
			var out []int
			for i := 0; i < 20; i++ {
				status, _ := probe(t, ts.URL)
				out = append(out, status)
			}
			return out
		}
		a := run()
		require.Equal(t, a, run())
		require.Contains(t, a, http.StatusOK)
		require.Contains(t, a, http.StatusServiceUnavailable)
	})
}

func TestStatsAndHealth(t *testing.T) {
	s, ts, _ := MustNewServer(t, nil)
	status, _, _ := get(t, ts.URL+"/healthz")
	require.Equal(t, http.StatusOK, status)
	probe(t, ts.URL)
	postPayout(t, ts.URL, "k1", payoutBody("000001", "12.5", "k1"))

	status, _, body := get(t, ts.URL+"/_mock/stats")
	require.Equal(t, http.StatusOK, status)
	var st Stats
	require.NoError(t, json.Unmarshal(body, &st))
	require.Equal(t, int64(1), st.Transactions.Received)
	require.Equal(t, int64(1), st.Transactions.OK)
	require.Equal(t, int64(1), st.Payouts.Paid)
	require.Contains(t, string(body), `"paidTotal":12.5`)
	require.Equal(t, s.ValidCount(), st.Data.Valid)
	require.Equal(t, s.MalformedCount(), st.Data.Malformed)
	require.Equal(t, "off", st.RateLimit)

	t.Run("Truth", func(t *testing.T) {
		status, _, body := get(t, ts.URL+"/_mock/truth")
		require.Equal(t, http.StatusOK, status)
		var tr struct {
			ValidCount int `json:"validCount"`
			Users      map[string]struct {
				Earned json.Number `json:"earned"`
			} `json:"users"`
		}
		require.NoError(t, json.Unmarshal(body, &tr))
		require.Equal(t, s.ValidCount(), tr.ValidCount)
		truth := s.Truth()
		require.Len(t, tr.Users, len(truth))
		for u, sum := range truth {
			require.Equal(t, sum.Earned.String(), tr.Users[u].Earned.String())
		}
	})

	t.Run("UnknownRoute", func(t *testing.T) {
		status, _, body := get(t, ts.URL+"/nope")
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "not_found", errorCode(t, body))
	})
}
