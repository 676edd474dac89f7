package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/syncplan"
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
// together stay exact and within the upstream budget, and that each POST
// /api/sync?wait=true answers only once every transaction upstream showed,
// created at or before the request's time less the guard, is stored.
func TestSync_TwoWorkersAndManualSyncs(t *testing.T) {
	w := newWorld(t, 2000, 20000)
	interval, err := time.ParseDuration(w.env["SYNC_INTERVAL"])
	require.NoError(t, err)
	guard := syncplan.GuardFor(interval)
	// What upstream shows before anything reads it: every listing of these
	// items' windows has them, so a sync that says it has read through an
	// instant has stored each one created by then. (Late items hidden now
	// may appear after their window was read; late coverage finds those,
	// which wait=true does not wait for.)
	visibleAtStart := w.mock.Transactions()
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

	// waitSync posts ?wait=true and requires the 200 to come only once the
	// data through the request's time less the guard is stored: the
	// answer's syncedThrough no earlier, and each transaction of want
	// created at or before it in the store as upstream has it.
	waitSync := func(want func() []scorekeeper.Transaction) map[string]any {
		t.Helper()
		requested := time.Now()
		through := requested.Add(-guard)
		txs := want()
		code, body, err := post("?wait=true", "s3cret")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%v", body)
		for _, k := range []string{"workflowId", "runId", "fetched", "inserted", "duplicates", "quarantined", "pages", "syncedThrough"} {
			require.Contains(t, body, k)
		}
		synced, err := time.Parse(time.RFC3339Nano, fmt.Sprint(body["syncedThrough"]))
		require.NoError(t, err, "%v", body)
		require.False(t, synced.Before(through.Truncate(time.Second)),
			"answered with syncedThrough %s, before the request (%s) less the guard (%s)", synced, requested.UTC(), guard)
		n, off := w.storedOff(context.Background(), txs, through)
		require.Empty(t, off, "answered before the data through %s was stored", through.UTC())
		require.Positive(t, n, "the check covers transactions")
		t.Logf("wait=true answered after %s: inserted %v, syncedThrough %s; the %d transactions created through %s are stored",
			time.Since(requested).Round(time.Millisecond), body["inserted"], synced.UTC().Format(time.RFC3339), n, through.UTC().Format(time.RFC3339))
		return body
	}

	// Asked while the backfill runs (and the manual sync the bursts
	// started may still run): the answer waits for the data.
	waitSync(func() []scorekeeper.Transaction { return visibleAtStart })

	w.requireExact(t, 5*time.Minute)
	w.requireServedExact(t, base, 4*time.Minute)

	// The first wait may join a manual sync still running from the
	// bursts; once it returns, a new one finds everything stored. Every
	// item upstream shows is visible by now (LateDelay has passed).
	for i := range 2 {
		body := waitSync(w.mock.Transactions)
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

// storedOff checks that every transaction of want created at or before
// through is stored as upstream has it (user, type, amount). It returns
// how many it checked and the first few that are not (empty when all are).
func (w *world) storedOff(ctx context.Context, want []scorekeeper.Transaction, through time.Time) (int, []string) {
	var rows []struct {
		ID          string `bun:"id"`
		UserID      string `bun:"user_id"`
		Type        string `bun:"type"`
		AmountCents int64  `bun:"amount_cents"`
	}
	if err := w.db.NewSelect().Table("transactions").Column("id", "user_id", "type", "amount_cents").Scan(ctx, &rows); err != nil {
		return 0, []string{err.Error()}
	}
	type stored struct {
		user, typ string
		cents     int64
	}
	have := make(map[string]stored, len(rows))
	for _, r := range rows {
		have[r.ID] = stored{r.UserID, r.Type, r.AmountCents}
	}
	n, missing := 0, 0
	var off []string
	for _, tx := range want {
		if tx.CreatedAt.After(through) {
			continue
		}
		n++
		got, ok := have[tx.ID]
		switch {
		case !ok:
			missing++
			if len(off) < 10 {
				off = append(off, fmt.Sprintf("%s (createdAt %s) is not stored", tx.ID, tx.CreatedAt.UTC().Format(time.RFC3339Nano)))
			}
		case got != stored{tx.UserID, string(tx.Type), tx.Amount.Cents()}:
			if len(off) < 10 {
				off = append(off, fmt.Sprintf("%s is stored as %+v, upstream has %s %s %s", tx.ID, got, tx.UserID, tx.Type, tx.Amount))
			}
		}
	}
	if missing > 10 {
		off = append(off, fmt.Sprintf("… %d missing in all, of %d", missing, n))
	}
	return n, off
}
