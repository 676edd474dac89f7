package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/mockapi"
)

// call sends method target with the admin token and an optional JSON body
// and returns the status and body.
func call(t *testing.T, method, target, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// servedPayout is a row of GET /api/users/{userId}/payouts.
type servedPayout struct {
	ID       string             `json:"id"`
	Amount   scorekeeper.Amount `json:"amount"`
	Status   string             `json:"status"`
	Reason   string             `json:"reason"`
	Attempts int                `json:"attempts"`
}

// Ensure the operator actions end to end, as a user runs them, through
// the REST API, Temporal Updates and the real worker: a user held before
// their payouts arrive gets none sent; a payout never sent is canceled
// (it never reaches the provider, leaves payout, a second cancel answers
// the same, a retry is a conflict); after the release every other payout is paid
// exactly once; the summary and a reconciliation agree.
func TestPayouts_OperatorActions(t *testing.T) {
	w := newWorldTB(t, 40, 1500, func(c *mockapi.Config) {
		c.PayoutFailRate = 0
		c.PayoutRejectRate = 0
		c.LateRate = 0 // late items are the sync's tests' business
	})
	// The user with the most payouts.
	byUser := map[string][]scorekeeper.Transaction{}
	for _, tx := range w.mock.Transactions() {
		if tx.Type == scorekeeper.TxPayout {
			byUser[tx.UserID] = append(byUser[tx.UserID], tx)
		}
	}
	user := ""
	for u, ps := range byUser {
		if len(ps) > len(byUser[user]) || (len(ps) == len(byUser[user]) && u < user) {
			user = u
		}
	}
	payouts := byUser[user]
	require.GreaterOrEqual(t, len(payouts), 3, "the scenario needs a user with several payouts")
	base := w.startWeb(t)
	userURL := base + "/api/users/" + user

	// A worker that cannot reach upstream yet serves the hold: nothing of
	// the user is stored when it lands.
	blind := startProc(t, "worker-blind", "worker", maps(w.env, map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1"}))
	status, body := call(t, http.MethodPost, userURL+"/payouts:hold", `{"reason":"fraud report #4411"}`)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"held":true`)
	require.Contains(t, body, `"reason":"fraud report #4411"`)
	blind.stop()
	startProc(t, "worker", "worker", w.env)

	w.requireExact(t, 3*time.Minute)
	list := func() []servedPayout {
		t.Helper()
		status, body := call(t, http.MethodGet, userURL+"/payouts?limit=500", "")
		require.Equal(t, http.StatusOK, status, body)
		var rows []servedPayout
		require.NoError(t, json.Unmarshal([]byte(body), &rows))
		return rows
	}
	rows := list()
	require.Len(t, rows, len(payouts))
	for _, r := range rows {
		require.Equal(t, "held", r.Status, "%+v", r)
		require.Equal(t, "held by operator: fraud report #4411", r.Reason)
	}
	// Everyone else's payouts settle meanwhile; the held user's are never
	// sent.
	eventually(t, 2*time.Minute, "the other users' payouts to be paid", func() (bool, string) {
		paid := w.mock.PaymentsByKey()
		for u, ps := range byUser {
			for _, p := range ps {
				if u != user && paid[p.ID] != 1 {
					return false, fmt.Sprintf("%s of %s: %d payments", p.ID, u, paid[p.ID])
				}
			}
		}
		return true, ""
	})
	for _, p := range payouts {
		require.Zero(t, w.mock.PaymentsByKey()[p.ID], "%s was sent while its user was held", p.ID)
	}

	canceled := payouts[0]
	status, body = call(t, http.MethodPost, userURL+"/payouts/"+canceled.ID+":cancel", `{"reason":"duplicate request"}`)
	require.Equal(t, http.StatusOK, status, body)
	var got servedPayout
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Equal(t, servedPayout{ID: canceled.ID, Amount: canceled.Amount, Status: "canceled", Reason: "canceled by operator: duplicate request"}, got)
	// A cancel is idempotent: a client whose answer was lost asks again
	// and gets the same payout.
	status, again := call(t, http.MethodPost, userURL+"/payouts/"+canceled.ID+":cancel", `{"reason":"asked twice"}`)
	require.Equal(t, http.StatusOK, status, again)
	require.JSONEq(t, body, again)
	status, body = call(t, http.MethodPost, userURL+"/payouts/"+canceled.ID+":retry", "")
	require.Equal(t, http.StatusConflict, status, body)
	status, body = call(t, http.MethodPost, userURL+"/payouts/no-such-payout:cancel", "")
	require.Equal(t, http.StatusNotFound, status, body)
	status, body = call(t, http.MethodPost, userURL+"/payouts:hold", `{"reason":""}`)
	require.Equal(t, http.StatusBadRequest, status, body)

	status, body = call(t, http.MethodPost, userURL+"/payouts:release", "")
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, fmt.Sprintf(`{"userId":%q,"held":false}`, user), body)
	eventually(t, 2*time.Minute, "the released payouts to be paid", func() (bool, string) {
		for _, r := range list() {
			if r.ID != canceled.ID && r.Status != "paid" {
				return false, fmt.Sprintf("%s is %s", r.ID, r.Status)
			}
		}
		return true, ""
	})
	var want, paidOut scorekeeper.Amount
	for _, p := range payouts {
		n := w.mock.PaymentsByKey()[p.ID]
		if p.ID == canceled.ID {
			require.Zero(t, n, "a canceled payout reached the provider")
			continue
		}
		require.Equal(t, 1, n, "%s paid %d times", p.ID, n)
		want += p.Amount
	}
	for _, pay := range w.mock.Payments() {
		if pay.UserID == user {
			paidOut += pay.Amount
		}
	}
	require.Equal(t, want, paidOut)
	rows = list()
	require.Equal(t, "canceled", rows[slices.IndexFunc(rows, func(r servedPayout) bool { return r.ID == canceled.ID })].Status)

	eventually(t, 30*time.Second, "the summary to show the cancel", func() (bool, string) {
		status, body := call(t, http.MethodGet, userURL+"/summary", "")
		var s servedSummary
		if status != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
			return false, body
		}
		return s.Payout == want && s.PaidOut == want, body
	})
	status, body = call(t, http.MethodPost, base+"/api/reconcile?wait=true", "")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"drifted":[]`)
	_, metrics := call(t, http.MethodGet, base+"/metrics", "")
	require.Contains(t, metrics, `scorekeeper_payouts_total{status="canceled"} 1`)
	require.Contains(t, metrics, "scorekeeper_payouts_held_users 0")
}
