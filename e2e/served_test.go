package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// startWeb runs a `scorekeeper web` process of its own on the world (the
// database and Temporal the workers use), with the admin token s3cret,
// and returns its base URL once it is ready. What it serves comes through
// its cache, which follows the store's change feed: checking it against
// the ground truth checks what clients see, not only what is stored.
func (w *world) startWeb(tb testing.TB) string {
	tb.Helper()
	addr := freeAddrTB(tb)
	// The check reads every user's summary, more than a client's rate
	// limit allows: it is the test's own client, so the limit is off.
	startProc(tb, "web", "web", maps(w.env, map[string]string{"HTTP_ADDR": addr, "ADMIN_TOKEN": "s3cret", "API_RATE_LIMIT": "off"}))
	waitHTTP(tb, "http://"+addr+"/readyz")
	return "http://" + addr
}

// servedSummary is the summary route's JSON.
type servedSummary struct {
	UserID  string             `json:"userId"`
	Balance scorekeeper.Amount `json:"balance"`
	Earned  scorekeeper.Amount `json:"earned"`
	Spent   scorekeeper.Amount `json:"spent"`
	Payout  scorekeeper.Amount `json:"payout"`
	PaidOut scorekeeper.Amount `json:"paidOut"`
}

// requireServedExact waits until no payout is pending and the web process
// at base serves, for every user upstream knows, the summary the ground
// truth says: earned and spent as upstream holds them, payout as requested
// less what the provider rejected (a rejected user's payouts all fail),
// paidOut as the provider's own ledger records, and balance their
// difference. Call it once the store is exact (requireExact), so what is
// left is payouts finishing and the web tier catching up.
func (w *world) requireServedExact(t testing.TB, base string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	client := &http.Client{Timeout: 10 * time.Second}
	eventually(t, timeout, "the web process to serve every summary as the ground truth", func() (bool, string) {
		if off := w.payoutsPending(ctx); off != "" {
			return false, off
		}
		paid := w.mock.Paid()
		for u, want := range w.mock.Truth() {
			got, err := getSummary(client, base, u)
			if err != nil {
				return false, err.Error()
			}
			payout := want.Payout
			if w.mock.IsRejectedUser(u) {
				payout = 0
			}
			if got.Earned != want.Earned || got.Spent != want.Spent || got.Payout != payout ||
				got.PaidOut != paid[u] || got.Balance != got.Earned-got.Spent-got.Payout {
				return false, fmt.Sprintf("user %s: served %+v; truth earned %s spent %s payout %s, provider paid %s",
					u, got, want.Earned, want.Spent, payout, paid[u])
			}
		}
		return true, ""
	})
}

func getSummary(client *http.Client, base, userID string) (servedSummary, error) {
	var s servedSummary
	resp, err := client.Get(base + "/api/users/" + userID + "/summary")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET summary of %s: %s", userID, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("GET summary of %s: %w", userID, err)
	}
	return s, nil
}

// testSeed is the seed of a test's random choices: E2E_SEED when set (to
// repeat a run), else the clock. It is logged either way, so a failing run
// can be repeated exactly.
func testSeed(tb testing.TB) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(tb, err, "E2E_SEED")
		seed = v
	}
	tb.Logf("E2E_SEED=%d (set E2E_SEED to repeat this run's random choices)", seed)
	return seed
}
