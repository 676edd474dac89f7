package workflows_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// historiesDir holds real histories recorded by scripts/record-histories.sh,
// of this release and of earlier ones (docs/versioning.md).
const historiesDir = "testdata/histories"

// recordedHistory is one file of historiesDir.
type recordedHistory struct {
	file         string
	workflowType string
	history      *historypb.History
}

// loadHistories reads every recorded history.
func loadHistories(t *testing.T) []recordedHistory {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in %s: run scripts/record-histories.sh", historiesDir)
	hs := make([]recordedHistory, 0, len(files))
	for _, f := range files {
		r, err := os.Open(f)
		require.NoError(t, err)
		h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
		require.NoError(t, r.Close())
		require.NoError(t, err, "%s is not a history exported by `temporal workflow show --output json`", f)
		require.NotEmpty(t, h.GetEvents(), f)
		typ := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		require.NotEmpty(t, typ, "%s: the first event is not WorkflowExecutionStarted", f)
		name := filepath.Base(f)
		require.True(t, strings.HasPrefix(name, typ+"-"), "%s holds a %s history: name it %s-<n>.json", name, typ, typ)
		hs = append(hs, recordedHistory{file: name, workflowType: typ, history: h})
	}
	return hs
}

// historiesOf returns the recorded histories of one workflow type, of
// which there must be at least one.
func historiesOf(t *testing.T, workflowType string) []recordedHistory {
	t.Helper()
	var hs []recordedHistory
	for _, h := range loadHistories(t) {
		if h.workflowType == workflowType {
			hs = append(hs, h)
		}
	}
	require.NotEmpty(t, hs, "no recorded %s history in %s: run scripts/record-histories.sh", workflowType, historiesDir)
	return hs
}

// currentWorkflows are the workflows the worker registers (worker.Start),
// by type name.
var currentWorkflows = map[string]any{
	"SyncWorkflow":           workflows.SyncWorkflow,
	"ReconcileWorkflow":      workflows.ReconcileWorkflow,
	"PayoutWorkflow":         workflows.PayoutWorkflow,
	"PayoutRecoveryWorkflow": workflows.PayoutRecoveryWorkflow,
}

// newReplayer returns a replayer with the current workflows registered,
// each replaced by the variant of the same name in replace, if any.
func newReplayer(replace map[string]any) worker.WorkflowReplayer {
	r := worker.NewWorkflowReplayer()
	for name, wf := range currentWorkflows {
		if v, ok := replace[name]; ok {
			wf = v
		}
		r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	return r
}

// replay replays one recorded history on r, as a worker does after a
// restart or a deploy, and returns what a worker would fail the task with.
func replay(r worker.WorkflowReplayer, h recordedHistory) error {
	return r.ReplayWorkflowHistory(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), h.history)
}

// requireNonDeterminism checks err is the SDK's non-determinism error: the
// replayed code issued other commands than the history recorded.
func requireNonDeterminism(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err, "replay succeeded: the change went unnoticed")
	require.Contains(t, err.Error(), "[TMPRL1100]", "want a non-determinism error")
}

// Ensure today's workflow code replays every recorded history, this
// release's and earlier ones': a deploy does not break the executions it
// finds running. A failure here means a change to workflow code alters the
// commands it issues without a workflow.GetVersion guard (docs/versioning.md).
func TestReplay_RecordedHistories(t *testing.T) {
	hs := loadHistories(t)
	seen := map[string]int{}
	for _, h := range hs {
		seen[h.workflowType]++
		t.Run(h.file, func(t *testing.T) {
			require.Contains(t, currentWorkflows, h.workflowType, "a recorded history of a workflow the worker no longer registers")
			require.NoError(t, replay(newReplayer(nil), h))
		})
	}
	for name := range currentWorkflows {
		require.Positive(t, seen[name], "no recorded %s history in %s: run scripts/record-histories.sh", name, historiesDir)
	}
}

// Deliberately non-deterministic variants of the workflows, each what a
// careless edit could leave behind: the same type name, other commands.

// syncSkipsLease plans its first page without taking the fetcher lease.
func syncSkipsLease(ctx workflow.Context, in workflows.SyncInput) (scorekeeper.SyncStats, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var plan activities.PlanResult
	err := workflow.ExecuteActivity(ctx, a.PlanPage, activities.PlanInput{Holder: workflow.GetInfo(ctx).WorkflowExecution.ID, Want: in.Want}).Get(ctx, &plan)
	return scorekeeper.SyncStats{SyncedThrough: plan.SyncedThrough}, err
}

// payoutListsOnly lists the user's payouts and returns without paying
// them: the recorded SendPayout has no counterpart.
func payoutListsOnly(ctx workflow.Context, in workflows.PayoutInput) (workflows.PayoutResult, error) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.UserIDSearchAttribute.ValueSet(in.UserID)); err != nil {
		return workflows.PayoutResult{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var list activities.ListPayoutsResult
	err := workflow.ExecuteActivity(ctx, a.ListPayouts, activities.ListPayoutsInput{UserID: in.UserID, Limit: workflows.DefaultPayoutBatchSize}).Get(ctx, &list)
	return workflows.PayoutResult{UserID: in.UserID}, err
}

// recoveryWithJitter waits a moment before its scan: a timer where the
// history has the scan's activity.
func recoveryWithJitter(ctx workflow.Context, in workflows.PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return activities.RecoverPayoutsResult{}, err
	}
	return workflows.PayoutRecoveryWorkflow(ctx, in)
}

// reconcileReportsOnly records the drift count without checking a page.
func reconcileReportsOnly(ctx workflow.Context, _ workflows.ReconcileInput) (scorekeeper.ReconcileReport, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	err := workflow.ExecuteActivity(ctx, a.RecordReconcile, activities.RecordReconcileInput{}).Get(ctx, nil)
	return scorekeeper.ReconcileReport{}, err
}

// Ensure the replay test can fail: a variant that issues other commands,
// registered under the real type name, fails to replay every recorded
// history of that type with the SDK's non-determinism error.
func TestReplay_DetectsNonDeterminism(t *testing.T) {
	variants := map[string]any{
		"SyncWorkflow":           syncSkipsLease,
		"PayoutWorkflow":         payoutListsOnly,
		"PayoutRecoveryWorkflow": recoveryWithJitter,
		"ReconcileWorkflow":      reconcileReportsOnly,
	}
	for name, variant := range variants {
		for _, h := range historiesOf(t, name) {
			t.Run(h.file, func(t *testing.T) {
				requireNonDeterminism(t, replay(newReplayer(map[string]any{name: variant}), h))
			})
		}
	}
}
