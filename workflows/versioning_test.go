package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// The worked example of docs/versioning.md, in test code only: release 2 of
// PayoutRecoveryWorkflow reports each scan's result through a new activity,
// RecordRecoveryScan. Release 1 is today's code, whose recorded histories
// end right after the scan.

// release1History is a recorded history of release 1 (today's code): the
// example's release 2 and 3 are about it only, so later real changes to
// the workflow, and the histories recorded after them, leave it alone.
const release1History = "PayoutRecoveryWorkflow-1.json"

// recordScanChange is the change id of the new step. It names the change,
// not the release, and never changes meaning once deployed.
const recordScanChange = "record-recovery-scan"

// recordRecoveryScan stands in for the new activity.
func recordRecoveryScan(context.Context, activities.RecoverPayoutsResult) error { return nil }

// payoutRecoveryV2 is release 2 done right: the new step is guarded by
// workflow.GetVersion. An execution that started on release 1 (its history
// has no marker for the change) gets DefaultVersion and keeps the old
// commands; a new execution gets version 1, records the marker and runs the
// new step.
func payoutRecoveryV2(ctx workflow.Context, in workflows.PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
	res, err := recoveryScan(ctx, in)
	if err != nil {
		return res, err
	}
	if workflow.GetVersion(ctx, recordScanChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return res, nil // release 1: nothing after the scan
	}
	return res, recordScan(ctx, res)
}

// payoutRecoveryV2Unguarded is the same change without the guard: it
// issues a command that release 1's histories do not have.
func payoutRecoveryV2Unguarded(ctx workflow.Context, in workflows.PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
	res, err := recoveryScan(ctx, in)
	if err != nil {
		return res, err
	}
	return res, recordScan(ctx, res)
}

// payoutRecoveryV3 is a later release that drops release 1's branch by
// raising the minimum supported version to 1. Right only once no execution
// of release 1 can still be running, and with release 1's recorded
// histories deleted.
func payoutRecoveryV3(ctx workflow.Context, in workflows.PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
	res, err := recoveryScan(ctx, in)
	if err != nil {
		return res, err
	}
	workflow.GetVersion(ctx, recordScanChange, 1, 1)
	return res, recordScan(ctx, res)
}

// recoveryScan is release 1's body (workflows.PayoutRecoveryWorkflow),
// unchanged.
func recoveryScan(ctx workflow.Context, in workflows.PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
	bound := in.MaxDuration
	if bound <= 0 {
		bound = time.Minute
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: bound + time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var res activities.RecoverPayoutsResult
	err := workflow.ExecuteActivity(ctx, a.RecoverPayouts, activities.RecoverPayoutsInput{
		OlderThan:   workflows.PayoutRecoveryAge,
		MaxDuration: bound,
	}).Get(ctx, &res)
	return res, err
}

// recordScan is the new step.
func recordScan(ctx workflow.Context, res activities.RecoverPayoutsResult) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	return workflow.ExecuteActivity(ctx, "RecordRecoveryScan", res).Get(ctx, nil)
}

// historyFile returns one recorded history.
func historyFile(t *testing.T, name string) recordedHistory {
	t.Helper()
	for _, h := range loadHistories(t) {
		if h.file == name {
			return h
		}
	}
	require.FailNow(t, "no recorded history "+name, "in %s: run scripts/record-histories.sh", historiesDir)
	return recordedHistory{}
}

// Ensure the copy of release 1 in recoveryScan is faithful, so the tests
// below are about the change alone.
func TestVersioning_Release1CopyReplays(t *testing.T) {
	h := historyFile(t, release1History)
	require.NoError(t, replay(newReplayer(map[string]any{"PayoutRecoveryWorkflow": recoveryScan}), h))
}

// Ensure release 2 with its GetVersion guard replays release 1's recorded
// history: executions running at the deploy carry on.
func TestVersioning_GuardedChangeReplaysRelease1(t *testing.T) {
	h := historyFile(t, release1History)
	require.NoError(t, replay(newReplayer(map[string]any{"PayoutRecoveryWorkflow": payoutRecoveryV2}), h))
}

// Ensure the same change without the guard fails to replay it: it would
// break every execution running at the deploy.
func TestVersioning_UnguardedChangeBreaksRelease1(t *testing.T) {
	h := historyFile(t, release1History)
	requireNonDeterminism(t, replay(newReplayer(map[string]any{"PayoutRecoveryWorkflow": payoutRecoveryV2Unguarded}), h))
}

// Ensure dropping the old branch while a history of release 1 is recorded
// fails the replay test: an execution of release 1 might still need it.
func TestVersioning_OldBranchDroppedTooEarlyFails(t *testing.T) {
	h := historyFile(t, release1History)
	requireNonDeterminism(t, replay(newReplayer(map[string]any{"PayoutRecoveryWorkflow": payoutRecoveryV3}), h))
}

// Ensure a new execution of release 2 takes the new branch: it runs the
// new step after the scan.
func TestVersioning_NewExecutionRunsNewStep(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(payoutRecoveryV2, workflow.RegisterOptions{Name: "PayoutRecoveryWorkflow"})
	env.RegisterActivity(a)
	env.RegisterActivityWithOptions(recordRecoveryScan, activity.RegisterOptions{Name: "RecordRecoveryScan"})
	scan := activities.RecoverPayoutsResult{Notified: 2}
	env.OnActivity(a.RecoverPayouts, mock.Anything, mock.Anything).Return(scan, nil).Once()
	env.OnActivity("RecordRecoveryScan", mock.Anything, scan).Return(nil).Once()

	env.ExecuteWorkflow("PayoutRecoveryWorkflow", workflows.PayoutRecoveryInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
