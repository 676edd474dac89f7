package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// update is the answer of one Update in the test environment.
type update struct {
	rejected error
	result   any
	err      error
	done     bool
}

// sendUpdate sends an Update after delay and keeps its answer.
func sendUpdate(env *testsuite.TestWorkflowEnvironment, delay time.Duration, name string, arg any) *update {
	u := &update{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { u.rejected, u.done = err, true },
			OnComplete: func(res any, err error) { u.result, u.err, u.done = res, err, true },
		}, arg)
	}, delay)
	return u
}

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

var blockedErr = temporal.NewApplicationError("payout: provider status 409: idempotency_conflict", activities.ErrTypePayoutProviderConflict)

// Ensure a retry ends an operator pause at once (not after
// BlockedPayoutRetryInterval), and is a conflict for a payout that is not
// waiting for an operator; bad input is rejected before history.
func TestPayoutWorkflow_RetryEndsOperatorPause(t *testing.T) {
	env := newEnv(t)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Twice()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	var sendTimes []time.Time
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(
		func(_ context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
			sendTimes = append(sendTimes, env.Now())
			if len(sendTimes) == 1 {
				return activities.SendPayoutResult{}, blockedErr
			}
			return paid(in.TransactionID), nil
		}).Twice()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).Return(paid("p2"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.Anything).Return(stored).Twice()
	record := func(id string) scorekeeper.Payout {
		return scorekeeper.Payout{TransactionID: id, UserID: payoutUser, Status: scorekeeper.PayoutRequested, Attempts: 1}
	}
	env.OnActivity(a.GetUserPayout, mock.Anything, mock.MatchedBy(func(in activities.PayoutActionInput) bool { return in.TransactionID == "p2" })).
		Return(record("p2"), nil).Once()
	env.OnActivity(a.GetUserPayout, mock.Anything, mock.MatchedBy(func(in activities.PayoutActionInput) bool { return in.TransactionID == "p1" })).
		Return(record("p1"), nil).Once()

	bad := sendUpdate(env, 30*time.Second, workflows.PayoutRetryUpdate, workflows.PayoutActionRequest{TransactionID: "p1"})
	notBlocked := sendUpdate(env, 40*time.Second, workflows.PayoutRetryUpdate, workflows.PayoutActionRequest{TransactionID: "p2", By: "alice"})
	retry := sendUpdate(env, time.Minute, workflows.PayoutRetryUpdate, workflows.PayoutActionRequest{TransactionID: "p1", By: "alice"})

	start := env.Now()
	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.Equal(t, 2, res.Paid)

	require.True(t, bad.done)
	require.Equal(t, activities.ErrTypePayoutActionInvalid, errType(bad.rejected), "no actor: rejected by the validator")
	require.True(t, notBlocked.done)
	require.Nil(t, notBlocked.rejected)
	require.Equal(t, activities.ErrTypePayoutActionConflict, errType(notBlocked.err))
	require.Contains(t, notBlocked.err.Error(), "not waiting for an operator")
	require.True(t, retry.done)
	require.NoError(t, retry.err)
	require.Len(t, sendTimes, 2)
	require.Equal(t, time.Minute, sendTimes[1].Sub(start), "sent at the retry, not after %s", workflows.BlockedPayoutRetryInterval)
}

// Ensure a hold stops sending the user's payouts (what is in flight
// finishes; nothing after it is sent) until a release, which wakes the
// workflow at once; the hold's answer and the query show it.
func TestPayoutWorkflow_HoldAndRelease(t *testing.T) {
	env := newEnv(t)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	hold := activities.PayoutHold{Reason: "fraud report", By: "alice", HeldAt: t0}
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(activities.ListPayoutsResult{Hold: &hold}, nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	var sends []time.Time
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(
		func(_ context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
			sends = append(sends, env.Now())
			if len(sends) == 1 {
				return activities.SendPayoutResult{}, blockedErr
			}
			return paid(in.TransactionID), nil
		}).Twice()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).Return(
		func(_ context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
			sends = append(sends, env.Now())
			return paid(in.TransactionID), nil
		}).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, mock.Anything).Return(stored).Twice()
	env.OnActivity(a.HoldPayouts, mock.Anything, activities.HoldPayoutsInput{UserID: payoutUser, Reason: "fraud report", By: "alice"}).
		Return(hold, nil).Once()
	env.OnActivity(a.ReleasePayouts, mock.Anything, activities.ReleasePayoutsInput{UserID: payoutUser, By: "bob"}).Return(true, nil).Once()

	noReason := sendUpdate(env, 30*time.Second, workflows.PayoutHoldUpdate, workflows.HoldRequest{Reason: "  ", By: "alice"})
	held := sendUpdate(env, time.Minute, workflows.PayoutHoldUpdate, workflows.HoldRequest{Reason: "fraud report", By: "alice"})
	var view workflows.PayoutsView
	env.RegisterDelayedCallback(func() { view = queryPayouts(t, env) }, 12*time.Minute)
	released := sendUpdate(env, 15*time.Minute, workflows.PayoutReleaseUpdate, workflows.ReleaseRequest{By: "bob"})

	start := env.Now()
	// Idle for longer than the hold lasts: a run idle that long completes,
	// and a release then starts the next one (update-with-start).
	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser, IdleTimeout: time.Hour})
	res := payoutResult(t, env)
	require.Equal(t, 2, res.Paid)

	require.Equal(t, activities.ErrTypePayoutActionInvalid, errType(noReason.rejected))
	require.NoError(t, held.err)
	require.Equal(t, workflows.HoldView{UserID: payoutUser, Held: true, Reason: "fraud report", By: "alice", HeldAt: t0}, held.result)
	require.NoError(t, released.err)
	require.Equal(t, workflows.HoldView{UserID: payoutUser}, released.result)
	require.Equal(t, &hold, view.Hold, "the query shows the hold and its reason")
	require.Empty(t, view.Pending)
	require.Len(t, sends, 3)
	require.Equal(t, 15*time.Minute, sends[1].Sub(start), "nothing is sent while held; the release wakes the workflow at once")
	require.Equal(t, 15*time.Minute, sends[2].Sub(start))
}

// Ensure a payout canceled before its turn is not sent and not recorded
// again: SendPayout finds it settled and the workflow counts it canceled.
func TestPayoutWorkflow_CancelBeforeSend(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	canceled := scorekeeper.Payout{TransactionID: "p1", UserID: payoutUser, Status: scorekeeper.PayoutCanceled, Reason: "canceled by alice: duplicate"}
	env.OnActivity(a.CancelPayout, mock.Anything, activities.PayoutActionInput{UserID: payoutUser, TransactionID: "p1", Reason: "duplicate", By: "alice"}).
		Return(canceled, nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).
		Return(activities.SendPayoutResult{Status: scorekeeper.PayoutCanceled, Reason: canceled.Reason, Settled: true}, nil).Once().
		After(2 * time.Second)
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p2)).Return(paid("p2"), nil).Once()
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p2")).Return(stored).Once()
	cancel := sendUpdate(env, time.Second, workflows.PayoutCancelUpdate, workflows.PayoutActionRequest{TransactionID: "p1", Reason: "duplicate", By: "alice"})

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser})
	res := payoutResult(t, env)
	require.NoError(t, cancel.err)
	require.Equal(t, canceled, cancel.result)
	require.Equal(t, 1, res.Paid)
	require.Equal(t, 1, res.Canceled)
	require.Equal(t, scorekeeper.PayoutCanceled, res.Recent[0].Status)
	env.AssertActivityNotCalled(t, "RecordPayoutResult", mock.Anything, recordOf("p1"))
}

// Ensure an action in progress when a run continues as new is answered by
// that run, and what it did carries over: a hold arriving while a send is
// in flight completes before the run ends, no later payout is sent, and
// the canceled count is carried.
func TestPayoutWorkflow_ActionAcrossContinueAsNew(t *testing.T) {
	env := newPayoutEnv(t)
	p1, p2 := requested("p1", 100), requested("p2", 200)
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1, p2), nil).Once()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(paid("p1"), nil).Once().After(10 * time.Second)
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()
	hold := activities.PayoutHold{Reason: "fraud report", By: "alice", HeldAt: t0}
	env.OnActivity(a.HoldPayouts, mock.Anything, mock.Anything).Return(hold, nil).Once().After(20 * time.Second)
	held := sendUpdate(env, 5*time.Second, workflows.PayoutHoldUpdate, workflows.HoldRequest{Reason: "fraud report", By: "alice"})

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser, MaxPayoutsPerRun: 1, Canceled: 2})
	next := requireContinuedAsNew(t, env)
	require.True(t, held.done, "the hold was answered before the run ended")
	require.NoError(t, held.err)
	require.Equal(t, workflows.HoldView{UserID: payoutUser, Held: true, Reason: "fraud report", By: "alice", HeldAt: t0}, held.result)
	require.Equal(t, 1, next.Paid)
	require.Equal(t, 2, next.Canceled)
	env.AssertActivityNotCalled(t, "SendPayout", mock.Anything, sendOf(p2))
}

// Ensure a hold during a provider outage stops the send's retries at once
// (the payout stays requested, never failed) and the release sends it
// again with the same key.
func TestPayoutWorkflow_HoldDuringProviderOutage(t *testing.T) {
	env := newEnv(t)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	p1 := requested("p1", 100)
	hold := activities.PayoutHold{Reason: "provider incident", By: "alice", HeldAt: t0}
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(activities.ListPayoutsResult{Hold: &hold}, nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(p1), nil).Once()
	env.OnActivity(a.ListPayouts, mock.Anything, mock.Anything).Return(listOf(), nil).Once()
	var attempts []time.Time
	heldAt, releasedAt := 30*time.Second, 10*time.Minute
	start := env.Now()
	env.OnActivity(a.SendPayout, mock.Anything, sendOf(p1)).Return(
		func(_ context.Context, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
			attempts = append(attempts, env.Now())
			if env.Now().Sub(start) < releasedAt {
				return activities.SendPayoutResult{}, errors.New("payout: provider status 503")
			}
			return paid(in.TransactionID), nil
		})
	env.OnActivity(a.RecordPayoutResult, mock.Anything, recordOf("p1")).Return(stored).Once()
	env.OnActivity(a.HoldPayouts, mock.Anything, mock.Anything).Return(hold, nil).Once()
	env.OnActivity(a.ReleasePayouts, mock.Anything, mock.Anything).Return(true, nil).Once()
	held := sendUpdate(env, heldAt, workflows.PayoutHoldUpdate, workflows.HoldRequest{Reason: "provider incident", By: "alice"})
	released := sendUpdate(env, releasedAt, workflows.PayoutReleaseUpdate, workflows.ReleaseRequest{By: "alice"})

	env.ExecuteWorkflow(workflows.PayoutWorkflow, workflows.PayoutInput{UserID: payoutUser, IdleTimeout: time.Hour})
	res := payoutResult(t, env)
	require.NoError(t, held.err)
	require.NoError(t, released.err)
	require.Equal(t, 1, res.Paid)
	require.Zero(t, res.Failed)
	require.Greater(t, len(attempts), 2, "the outage was retried before the hold")
	for _, at := range attempts[:len(attempts)-1] {
		require.LessOrEqual(t, at.Sub(start), heldAt, "an attempt after the hold")
	}
	require.Equal(t, releasedAt, attempts[len(attempts)-1].Sub(start), "sent again at the release")
}
