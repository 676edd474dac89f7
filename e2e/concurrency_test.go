package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string { return freeAddrTB(t) }

func freeAddrTB(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Ensure two workers, the schedule and a burst of POST /api/sync calls
// together stay exact and within the upstream budget.
func TestSync_TwoWorkersAndManualSyncs(t *testing.T) {
	w := newWorld(t, 2000, 20000)
	base := w.startWeb(t)
	startProc(t, "worker-a", "worker", w.env)
	startProc(t, "worker-b", "worker", w.env)

	// post is called from the burst's goroutines too, so it reports
	// failures as errors: require may only stop the test's own goroutine.
	post := func(query, token string) (int, map[string]any, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/sync"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("POST /api/sync%s: %s: %w", query, resp.Status, err)
		}
		return resp.StatusCode, body, nil
	}
	code, _, err := post("", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, err = post("", "wrong")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, code)

	// Bursts while the scheduled backfill runs.
	for burst := range 3 {
		var wg sync.WaitGroup
		ids := make(chan string, 10)
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := post("", "s3cret")
				if err != nil || code != http.StatusAccepted {
					t.Errorf("burst %d: status %d: %v (%v)", burst, code, body, err)
					return
				}
				ids <- fmt.Sprint(body["workflowId"])
			}()
		}
		wg.Wait()
		close(ids)
		for id := range ids {
			require.Equal(t, "transactions-sync-manual", id)
		}
		time.Sleep(3 * time.Second)
	}

	w.requireExact(t, 5*time.Minute)
	w.requireServedExact(t, base, 4*time.Minute)

	// The first wait may join a manual sync still running from the
	// bursts; once it returns, a new one finds everything stored.
	for i := range 2 {
		code, body, err := post("?wait=true", "s3cret")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%v", body)
		for _, k := range []string{"workflowId", "runId", "fetched", "inserted", "duplicates", "quarantined", "pages", "syncedThrough"} {
			require.Contains(t, body, k)
		}
		if i == 1 {
			require.EqualValues(t, 0, body["inserted"], "everything was already stored")
		}
	}

	st, err := http.Get(base + "/api/sync/status")
	require.NoError(t, err)
	defer st.Body.Close()
	require.Equal(t, http.StatusOK, st.StatusCode)
	var status map[string]any
	require.NoError(t, json.NewDecoder(st.Body).Decode(&status))
	require.EqualValues(t, w.mock.MalformedCount(), status["quarantined"])
}
