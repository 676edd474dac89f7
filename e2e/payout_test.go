package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"scorekeeper"
	"scorekeeper/mockapi"
	"scorekeeper/workflows"
)

// payoutWorld has about 2,000 payouts over 300 users; the provider fails
// 20% of requests transiently, rejects some users for good, and answers
// with random latency.
func payoutWorld(t *testing.T) *world {
	return newWorldTB(t, 300, 13400, func(c *mockapi.Config) {
		c.PayoutFailRate = 0.2
		c.PayoutRejectRate = 0.05
		c.PayoutLatency = 150 * time.Millisecond
	})
}

// requirePayoutsExact waits until the store is exact and no payout is
// pending, then checks the provider's ledger against upstream's payouts
// and the store (checkPayouts: every payment a payout of the same user
// and amount, paid once, under its own provider reference, no conflict,
// nothing missing, rejected users never paid and failed, every paidOut
// what the provider paid), and every stored summary against the truth
// and the ledger directly.
func (w *world) requirePayoutsExact(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	w.requireExact(t, timeout)
	eventually(t, timeout, "every payout to be paid or failed", func() (bool, string) {
		off := w.payoutsPending(ctx)
		return off == "", off
	})
	requireNone(t, w.payoutViolations(ctx))
	requireNone(t, w.storedSummaryViolations(ctx))

	payouts, users, rejected := 0, map[string]bool{}, 0
	for _, tx := range w.mock.Transactions() {
		if tx.Type == scorekeeper.TxPayout {
			payouts++
			if !users[tx.UserID] && w.mock.IsRejectedUser(tx.UserID) {
				rejected++
			}
			users[tx.UserID] = true
		}
	}
	require.GreaterOrEqual(t, payouts, 1800, "the scenario needs about 2,000 payouts")
	require.Positive(t, rejected, "the scenario needs rejected users")
}

// Ensure about 2,000 payouts over 300 users end paid or failed exactly as
// the provider decided, none paid twice, and each user's workflow is found
// by the UserId search attribute.
func TestPayouts_EndToEnd(t *testing.T) {
	w := payoutWorld(t)
	startProc(t, "worker", "worker", w.env)
	base := w.startWeb(t)
	w.requirePayoutsExact(t, 5*time.Minute)
	w.requireServedExact(t, base, 2*time.Minute)

	c := w.temporalClient(t)
	user := ""
	for _, tx := range w.mock.Transactions() {
		if tx.Type == scorekeeper.TxPayout {
			user = tx.UserID
			break
		}
	}
	eventually(t, 30*time.Second, "the payout workflow to be found by UserId", func() (bool, string) {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("UserId = '%s'", user),
		})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range resp.Executions {
			if e.GetExecution().GetWorkflowId() == workflows.PayoutWorkflowID(user) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d executions found", len(resp.Executions))
	})
}

// Ensure the same holds with the worker SIGKILLed at random moments.
func TestPayouts_WorkerKilled(t *testing.T) {
	w := payoutWorld(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	p := startProc(t, "worker-0", "worker", w.env)
	for i := 1; i <= 5; i++ {
		time.Sleep(time.Duration(2000+rng.IntN(6000)) * time.Millisecond)
		p.kill()
		t.Logf("killed worker %d", i-1)
		p = startProc(t, fmt.Sprintf("worker-%d", i), "worker", w.env)
	}
	w.requirePayoutsExact(t, 6*time.Minute)
}

func (w *world) temporalClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: w.env["TEMPORAL_ADDRESS"]})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}
