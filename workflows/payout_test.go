package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

const payoutUser = "u1"

// requested returns a requested payout of payoutUser; ids sort in the order
// the store lists them.
func requested(id string, cents int64) activities.RequestedPayout {
	return activities.RequestedPayout{TransactionID: id, UserID: payoutUser, Amount: scorekeeper.AmountFromCents(cents), CreatedAt: t0}
}

func listOf(ps ...activities.RequestedPayout) activities.ListPayoutsResult {
	return activities.ListPayoutsResult{Payouts: ps}
}

func sendOf(p activities.RequestedPayout) activities.SendPayoutInput {
	return activities.SendPayoutInput{TransactionID: p.TransactionID, UserID: p.UserID, Amount: p.Amount}
}

func paid(id string) activities.SendPayoutResult {
	return activities.SendPayoutResult{Status: scorekeeper.PayoutPaid, ProviderID: "po_" + id}
}

// recordOf matches RecordPayoutResult for one transaction.
func recordOf(id string) any {
	return mock.MatchedBy(func(in activities.RecordPayoutResultInput) bool { return in.TransactionID == id })
}

// stored echoes a recorded outcome, as the store returns it.
func stored(_ context.Context, in activities.RecordPayoutResultInput) (activities.RecordPayoutResultResult, error) {
	return activities.RecordPayoutResultResult{Status: in.Status, ProviderID: in.ProviderID, Reason: in.Reason}, nil
}

// newPayoutEnv is newEnv that also asserts the UserId search attribute is
// upserted once per run.
func newPayoutEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	env := newEnv(t)
	env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(workflows.UserIDSearchAttribute.ValueSet(payoutUser))).Return(nil).Once()
	return env
}

func payoutResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.PayoutResult {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.PayoutResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func queryPayouts(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.PayoutsView {
	t.Helper()
	v, err := env.QueryWorkflow(workflows.PayoutQuery)
	require.NoError(t, err)
	var view workflows.PayoutsView
	require.NoError(t, v.Get(&view))
	return view
}

func TestPayoutWorkflowID(t *testing.T) {
	require.Equal(t, "payout-074092", workflows.PayoutWorkflowID("074092"))
}

// Ensure payouts are sent in the order the store lists them, each recorded
// before the next is sent, never two activities at once.
func TestPayoutWorkflow_PaysInListedOrderOneAtATime(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2, p3 := requested("p1", 100), requested("p2", 250), requested("p3", 5)
	var calls []string
	inFlight, maxInFlight := 0, 0
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) {
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
	})
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { inFlight-- })

	env.OnActivity(a.ListPayouts, mock.Anything, activities.ListPayoutsInput{UserID: payoutUser, Limit: workflows.DefaultPayoutBatchSize}).
		Return(listOf(p1, p2, p3), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	for _, p := range []activities.RequestedPayout{p1, p2, p3} {
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p)).
			Run(func(mock.Arguments) { calls = append(calls, "send "+p.TransactionID) }).
			Return(paid(p.TransactionID), nil).Once()
		env.OnActivity(a.RecordPayoutResult, mock.Anything, activities.RecordPayoutResultInput{
			TransactionID: p.TransactionID, Status: scorekeeper.PayoutPaid, ProviderID: "po_" + p.TransactionID,
		}).Run(func(mock.Arguments) { calls = append(calls, "record "+p.TransactionID) }).
			Return(stored).Once()
	}

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, []string{"send p1", "record p1", "send p2", "record p2", "send p3", "record p3"}, calls)
	require.Equal(t, 1, maxInFlight)
	require.Equal(t, 3, res.Paid)
	require.Equal(t, 0, res.Failed)
	require.Len(t, res.Recent, 3)
	for i, id := range []string{"p1", "p2", "p3"} {
		require.Equal(t, id, res.Recent[i].TransactionID)
		require.Equal(t, scorekeeper.PayoutPaid, res.Recent[i].Status)
		require.Equal(t, "po_"+id, res.Recent[i].ProviderID)
	}
	require.Equal(t, "2.5", res.Recent[1].Amount.String())
}

// Ensure transient provider errors are retried inside the same activity
// (attempt after attempt, a Retry-After honoured) until the provider
// answers, and the payout is recorded once.
func TestPayoutWorkflow_TransientErrorsRetry(t *testing.T) {
	env := newPayoutEnv(t)
	p1 := requested("p1", 100)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()

	var attempts []int32
	var times []time.Time
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(
		func(ctx context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
			attempt := activity.GetInfo(ctx).Attempt
			attempts = append(attempts, attempt)
			times = append(times, env.Now())
			switch attempt {
			case 1, 2, 3:
				return activities.SendPayoutResult{}, errors.New("payout: provider status 503")
			case 4:
				return activities.SendPayoutResult{}, temporal.NewApplicationErrorWithOptions("payout: provider status 429",
					activities.ErrTypePayoutProviderBusy, temporal.ApplicationErrorOptions{NextRetryDelay: 90 * time.Second})
			}
			return paid(in.TransactionID), nil
		}).Times(5)
	env.OnActivity(a.RecordPayoutResult, mock.Anything, activities.RecordPayoutResultInput{
		TransactionID: "p1", Status: scorekeeper.PayoutPaid, ProviderID: "po_p1",
	}).Return(stored).Once()

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, []int32{1, 2, 3, 4, 5}, attempts, "retried by Temporal, not re-sent by the workflow")
	require.Equal(t, 1, res.Paid)
	require.Equal(t, 90*time.Second, times[4].Sub(times[3]), "Retry-After replaces the backoff")
	require.Greater(t, times[3].Sub(times[2]), times[1].Sub(times[0]), "backoff grows")
}

// Ensure a 422 is a result recorded as failed with the provider's reason,
// not a workflow failure.
func TestPayoutWorkflow_RejectionRecordedAsFailed(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	reason := "account_closed: the account of user u1 is closed"
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).
		Return(activities.SendPayoutResult{Status: scorekeeper.PayoutFailed, Reason: reason}, nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).
		Return(activities.SendPayoutResult{Status: scorekeeper.PayoutFailed, Reason: reason}, nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, activities.RecordPayoutResultInput{
		TransactionID: "p1", Status: scorekeeper.PayoutFailed, Reason: reason,
	}).Return(stored).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, activities.RecordPayoutResultInput{
		TransactionID: "p2", Status: scorekeeper.PayoutFailed, Reason: reason,
	}).Return(stored).Once()

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, 2, res.Failed)
	require.Equal(t, 0, res.Paid)
	require.Equal(t, scorekeeper.PayoutFailed, res.Recent[0].Status)
	require.Equal(t, reason, res.Recent[0].Reason)
}

// Ensure a provider answer that is not about the payout (409 and other
// 4xx, or a request the client refuses) never marks it failed: the payout
// stays requested, blocks the user's later payouts, is shown to operators
// in the query, and is tried again after BlockedPayoutRetryInterval.
func TestPayoutWorkflow_NeedsOperatorNeverFails(t *testing.T) {
	for name, blocked := range map[string]error{
		"ProviderConflict": temporal.NewApplicationError("payout: provider status 409: idempotency_conflict",
			activities.ErrTypePayoutProviderConflict),
		"InvalidRequest": temporal.NewNonRetryableApplicationError("invalid payout request: user id is invalid",
			activities.ErrTypePayoutInvalidRequest, nil),
	} {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
			p1, p2 := requested("p1", 100), requested("p2", 200)
			env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Times(3)
			env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
			var sendTimes []time.Time
			var sendAttempts []int32
			env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(
				func(ctx context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
					sendTimes = append(sendTimes, env.Now())
					sendAttempts = append(sendAttempts, activity.GetInfo(ctx).Attempt)
					if len(sendTimes) <= 2 {
						return activities.SendPayoutResult{}, blocked
					}
					return paid(in.TransactionID), nil
				}).Times(3)
			env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).Return(paid("p2"), nil).Once()
			env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.MatchedBy(func(in activities.RecordPayoutResultInput) bool {
				return in.Status == scorekeeper.PayoutPaid
			})).Return(stored).Twice()

			var view workflows.PayoutsView
			env.RegisterDelayedCallback(func() { view = queryPayouts(t, env) }, 5*time.Minute)

			env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
			res := payoutResult(t, env)
			env.AssertActivityNotCalled(t, "RecordPayoutResult", mock.Anything, mock.MatchedBy(func(in activities.RecordPayoutResultInput) bool {
				return in.Status == scorekeeper.PayoutFailed
			}))
			require.Equal(t, 2, res.Paid)
			require.Equal(t, 0, res.Failed)
			require.Equal(t, []int32{1, 1, 1}, sendAttempts, "not retried fast by the activity policy")
			require.Equal(t, workflows.BlockedPayoutRetryInterval, sendTimes[1].Sub(sendTimes[0]))
			require.Equal(t, workflows.BlockedPayoutRetryInterval, sendTimes[2].Sub(sendTimes[1]))
			require.Equal(t, []string{"p1", "p2"}, []string{res.Recent[0].TransactionID, res.Recent[1].TransactionID})

			require.Len(t, view.Pending, 2, "p2 waits behind the blocked p1")
			require.Equal(t, "p1", view.Pending[0].TransactionID)
			require.Equal(t, scorekeeper.PayoutRequested, view.Pending[0].Status)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, blocked, &appErr)
			require.Equal(t, appErr.Message(), view.Pending[0].LastError, "the provider's words, for operators")
			require.Empty(t, view.Recent)
		})
	}
}

// Ensure a run continues as new between payouts after MaxPayoutsPerRun
// sends, with a batch still in flight, carrying its counts, its bounded
// recent list and its settings; the rest is left for the next run to list.
func TestPayoutWorkflow_ContinuesAsNewWithPayoutsInFlight(t *testing.T) {
	older := make([]workflows.PayoutState, workflows.RecentPayoutsKept-1)
	for i := range older {
		older[i] = workflows.PayoutState{TransactionID: fmt.Sprintf("old%02d", i), Status: scorekeeper.PayoutPaid}
	}
	in := workflows.PayoutInput{UserID: payoutUser, Recent: older, Paid: 40, Failed: 9, MaxPayoutsPerRun: 2, BatchSize: 10, IdleTimeout: time.Minute}

	t.Run("MaxPayoutsPerRun", func(t *testing.T) {
		env := newPayoutEnv(t)
		p1, p2, p3 := requested("p1", 100), requested("p2", 200), requested("p3", 300)
		env.OnActivity(a.ListPayouts, mock.Anything, activities.ListPayoutsInput{UserID: payoutUser, Limit: 10}).Return(listOf(p1, p2, p3), nil).Once()
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).
			Return(activities.SendPayoutResult{Status: scorekeeper.PayoutFailed, Reason: "account_closed"}, nil).Once()
		env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.Anything).Return(stored).Twice()

		env.ExecuteWorkflow(workflows.PayoutWorkflow, in)
		next := requireContinuedAsNew(t, env)
		env.AssertActivityNotCalled(t, "SendPayout", mock.Anything, sendOf(p3))
		require.Equal(t, payoutUser, next.UserID)
		require.Equal(t, 41, next.Paid)
		require.Equal(t, 10, next.Failed)
		require.Equal(t, 2, next.MaxPayoutsPerRun)
		require.Equal(t, 10, next.BatchSize)
		require.Equal(t, time.Minute, next.IdleTimeout)
		require.Len(t, next.Recent, workflows.RecentPayoutsKept, "bounded: the oldest is dropped")
		require.Equal(t, "old01", next.Recent[0].TransactionID)
		require.Equal(t, "p1", next.Recent[len(next.Recent)-2].TransactionID)
		last := next.Recent[len(next.Recent)-1]
		require.Equal(t, "p2", last.TransactionID)
		require.Equal(t, scorekeeper.PayoutFailed, last.Status)
		require.Equal(t, "account_closed", last.Reason)
	})
	t.Run("SuggestedByTemporal", func(t *testing.T) {
		env := newPayoutEnv(t)
		env.SetContinueAsNewSuggested(true)
		p1, p2 := requested("p1", 100), requested("p2", 200)
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
		env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()

		env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
		next := requireContinuedAsNew(t, env)
		require.Equal(t, 1, next.Paid)
		require.Len(t, next.Recent, 1)
	})
	t.Run("SuggestedWhileIdle", func(t *testing.T) {
		env := newPayoutEnv(t)
		env.SetContinueAsNewSuggested(true)
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.PayoutSignal, nil) }, 30*time.Second)

		env.ExecuteWorkflow(workflows.PayoutWorkflow, in)
		next := requireContinuedAsNew(t, env)
		require.Equal(t, in, next, "nothing settled, everything carried")
	})
}

func requireContinuedAsNew(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.PayoutInput {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	require.Equal(t, "PayoutWorkflow", can.WorkflowType.Name)
	var next workflows.PayoutInput
	require.NoError(t, testsuiteDataConverter().FromPayloads(can.Input, &next))
	return next
}

// Ensure signals that arrive while a batch is being paid are answered by
// one listing: they never cause a payout to be sent twice.
func TestPayoutWorkflow_DuplicateSignalsDoNotDuplicateSends(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).After(time.Second).Return(paid("p1"), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).After(time.Second).Return(paid("p2"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.Anything).Return(stored).Twice()
	for _, at := range []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 600 * time.Millisecond, 1500 * time.Millisecond} {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.PayoutSignal, nil) }, at)
	}

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, 2, res.Paid)
}

// Ensure a workflow with nothing to pay waits for a signal, pays what the
// signal announced, and completes once idle for IdleTimeout.
func TestPayoutWorkflow_Idle(t *testing.T) {
	t.Run("CompletesAfterIdleTimeout", func(t *testing.T) {
		env := newPayoutEnv(t)
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
		start := env.Now()
		env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
		res := payoutResult(t, env)
		require.Equal(t, workflows.PayoutResult{UserID: payoutUser, Recent: []workflows.PayoutState{}}, res)
		require.Equal(t, workflows.DefaultPayoutIdleTimeout, env.Now().Sub(start))
	})
	t.Run("SignalWakesIt", func(t *testing.T) {
		env := newPayoutEnv(t)
		p1 := requested("p1", 100)
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
		env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.PayoutSignal, nil) }, time.Minute)

		start := env.Now()
		env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
		res := payoutResult(t, env)
		require.Equal(t, 1, res.Paid)
		require.Equal(t, time.Minute+workflows.DefaultPayoutIdleTimeout, env.Now().Sub(start), "idle again for a full timeout")
	})
	t.Run("SignalDuringEmptyListing", func(t *testing.T) {
		// The listing read the store before the payout was committed and
		// the signal came while it was still running: the workflow must
		// list again rather than go idle on a stale answer.
		env := newPayoutEnv(t)
		p1 := requested("p1", 100)
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).After(time.Second).Return(listOf(), nil).Once()
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
		env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
		env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
		env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.PayoutSignal, nil) }, 500*time.Millisecond)

		start := env.Now()
		env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
		res := payoutResult(t, env)
		require.Equal(t, 1, res.Paid)
		require.Equal(t, time.Second+workflows.DefaultPayoutIdleTimeout, env.Now().Sub(start))
	})
}

// Ensure the "payouts" query shows the batch in flight and what was
// settled.
func TestPayoutWorkflow_Query(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).After(time.Second).Return(paid("p1"), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).After(time.Minute).Return(paid("p2"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.Anything).Return(stored).Twice()
	var during, idle workflows.PayoutsView
	env.RegisterDelayedCallback(func() { during = queryPayouts(t, env) }, 30*time.Second)
	env.RegisterDelayedCallback(func() { idle = queryPayouts(t, env) }, 2*time.Minute)

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	payoutResult(t, env)

	require.Equal(t, payoutUser, during.UserID)
	require.Equal(t, 1, during.Paid)
	require.Len(t, during.Pending, 1)
	require.Equal(t, "p2", during.Pending[0].TransactionID)
	require.Equal(t, scorekeeper.PayoutRequested, during.Pending[0].Status)
	require.Equal(t, "2", during.Pending[0].Amount.String())
	require.Len(t, during.Recent, 1)
	require.Equal(t, "p1", during.Recent[0].TransactionID)
	require.Equal(t, scorekeeper.PayoutPaid, during.Recent[0].Status)
	require.Equal(t, "po_p1", during.Recent[0].ProviderID)
	require.False(t, during.Recent[0].SettledAt.IsZero())

	require.Empty(t, idle.Pending)
	require.Len(t, idle.Recent, 2)
	require.Equal(t, 2, idle.Paid)
}

// Ensure a provider answer the store contradicts (paid vs failed) is left
// as stored and flagged, and the user's next payout still goes out.
func TestPayoutWorkflow_RecordConflictMovesOn(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).Return(paid("p2"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(activities.RecordPayoutResultResult{
		Status: scorekeeper.PayoutFailed, Reason: "manual", Conflict: true,
	}, nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p2")).Return(stored).Once()

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, 1, res.Paid)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, scorekeeper.PayoutFailed, res.Recent[0].Status)
	require.Contains(t, res.Recent[0].LastError, "store already held failed")
	require.Empty(t, res.Recent[1].LastError)
}

// Ensure a store outage while listing or recording is waited out.
func TestPayoutWorkflow_DatabaseErrorsRetry(t *testing.T) {
	env := newPayoutEnv(t)
	p1 := requested("p1", 100)
	down := errors.New("connection refused")
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(activities.ListPayoutsResult{}, down).Twice()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(activities.RecordPayoutResultResult{}, down).Times(3)
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, 1, res.Paid)
}
