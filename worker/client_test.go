package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/workflows"
)

// Ensure every status the API can show has its own name, and an unknown
// one reads "unknown".
func TestStatusName(t *testing.T) {
	for status, want := range map[enumspb.WorkflowExecutionStatus]string{
		enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:          "running",
		enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:        "completed",
		enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:           "failed",
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:         "canceled",
		enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:       "terminated",
		enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
		enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        "timed_out",
		enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:      "unknown",
		enumspb.WorkflowExecutionStatus(99):                "unknown",
	} {
		require.Equal(t, want, statusName(status), "%s", status)
	}
}

// Ensure an unreachable or slow Temporal is EUnavailable (a 503 the client
// may retry), and any other failure keeps its cause under what was done.
func TestTemporalError(t *testing.T) {
	for _, err := range []error{
		serviceerror.NewUnavailable("connection refused"),
		fmt.Errorf("dial: %w", serviceerror.NewDeadlineExceeded("slow")),
		context.DeadlineExceeded,
	} {
		got := temporalError("start sync", err)
		require.Equal(t, scorekeeper.EUnavailable, scorekeeper.ErrorCode(got), "%v", err)
		require.Equal(t, "the workflow service is unavailable; try again shortly", scorekeeper.ErrorMessage(got))
	}

	cause := serviceerror.NewInvalidArgument("bad input")
	got := temporalError("start sync", cause)
	require.Equal(t, scorekeeper.EInternal, scorekeeper.ErrorCode(got))
	require.ErrorIs(t, got, cause)
	require.EqualError(t, got, "start sync: bad input")
}

// Ensure a manual sync joins the one running under its fixed id, starts
// anew once it closed, and has the scheduled runs' timeout.
func TestManualSyncOptions(t *testing.T) {
	require.Equal(t, client.StartWorkflowOptions{
		ID:                    workflows.ManualSyncWorkflowID,
		TaskQueue:             "q",
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:    24 * time.Hour,
	}, manualSyncOptions("q"))
}

// Ensure reports and repairs run under ids of their own, each joining a
// running one of its kind.
func TestReconcileOptions(t *testing.T) {
	report, repair := reconcileOptions("q", false), reconcileOptions("q", true)
	require.Equal(t, workflows.ReconcileWorkflowID, report.ID)
	require.Equal(t, workflows.ReconcileWorkflowID+"-repair", repair.ID)
	for _, o := range []client.StartWorkflowOptions{report, repair} {
		require.Equal(t, "q", o.TaskQueue)
		require.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, o.WorkflowIDConflictPolicy)
		require.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, o.WorkflowIDReusePolicy)
		require.Equal(t, 6*time.Hour, o.WorkflowRunTimeout)
	}
}

// Ensure StartReconcile starts ReconcileWorkflow with the reconcile
// options and returns the run it got, or the mapped error.
func TestClient_StartReconcile(t *testing.T) {
	tc := mocks.NewClient(t)
	run := mocks.NewWorkflowRun(t)
	run.On("GetID").Return(workflows.ReconcileWorkflowID + "-repair")
	run.On("GetRunID").Return("r1")
	tc.On("ExecuteWorkflow", mock.Anything, reconcileOptions("q", true), mock.Anything, workflows.ReconcileInput{Repair: true}).
		Return(run, nil).Once()
	c := &Client{Temporal: tc, TaskQueue: "q"}

	got, err := c.StartReconcile(context.Background(), true)
	require.NoError(t, err)
	require.Equal(t, scorekeeper.SyncRun{WorkflowID: workflows.ReconcileWorkflowID + "-repair", RunID: "r1"}, got)

	tc.On("ExecuteWorkflow", mock.Anything, reconcileOptions("q", false), mock.Anything, workflows.ReconcileInput{}).
		Return(nil, serviceerror.NewUnavailable("down")).Once()
	_, err = c.StartReconcile(context.Background(), false)
	require.Equal(t, scorekeeper.EUnavailable, scorekeeper.ErrorCode(err))
}

// Ensure the waits return the run's result, a failed run's error under
// what failed, and the caller's own deadline as it is.
func TestClient_Wait(t *testing.T) {
	ctx := context.Background()
	handle := scorekeeper.SyncRun{WorkflowID: "w", RunID: "r"}
	runReturning := func(err error, result any) *mocks.WorkflowRun {
		run := mocks.NewWorkflowRun(t)
		run.On("Get", mock.Anything, mock.Anything).Return(err).Run(func(args mock.Arguments) {
			if result == nil {
				return
			}
			switch out := args.Get(1).(type) {
			case *scorekeeper.SyncStats:
				*out = result.(scorekeeper.SyncStats)
			case *scorekeeper.ReconcileReport:
				*out = result.(scorekeeper.ReconcileReport)
			}
		})
		return run
	}

	t.Run("Sync", func(t *testing.T) {
		tc := mocks.NewClient(t)
		tc.On("GetWorkflow", mock.Anything, "w", "r").Return(runReturning(nil, scorekeeper.SyncStats{Fetched: 3, Inserted: 2, Duplicates: 1, Pages: 1})).Once()
		got, err := (&Client{Temporal: tc}).WaitSync(ctx, handle)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.SyncStats{Fetched: 3, Inserted: 2, Duplicates: 1, Pages: 1}, got)
	})

	t.Run("Reconcile", func(t *testing.T) {
		tc := mocks.NewClient(t)
		res := scorekeeper.ReconcileReport{UsersChecked: 2, Repaired: 1, Drifted: []scorekeeper.Drift{{UserID: "u1", Field: "balance", Stored: 100, Recomputed: 250}}}
		tc.On("GetWorkflow", mock.Anything, "w", "r").Return(runReturning(nil, res)).Once()
		got, err := (&Client{Temporal: tc}).WaitReconcile(ctx, handle)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.ReconcileReport{UsersChecked: 2, Repaired: 1,
			Drifted: []scorekeeper.Drift{{UserID: "u1", Field: "balance", Stored: 100, Recomputed: 250}}}, got)
	})

	t.Run("Failed", func(t *testing.T) {
		tc := mocks.NewClient(t)
		cause := errors.New("activity error")
		tc.On("GetWorkflow", mock.Anything, "w", "r").Return(runReturning(cause, nil)).Once()
		_, err := (&Client{Temporal: tc}).WaitSync(ctx, handle)
		require.ErrorIs(t, err, cause)
		require.EqualError(t, err, "sync failed: activity error")
	})

	t.Run("CallerDeadline", func(t *testing.T) {
		tc := mocks.NewClient(t)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		tc.On("GetWorkflow", mock.Anything, "w", "r").Return(runReturning(errors.New("context canceled by caller"), nil)).Once()
		_, err := (&Client{Temporal: tc}).WaitReconcile(ctx, handle)
		require.ErrorIs(t, err, context.Canceled)
	})
}

// Ensure a manual sync runs at the interval of the transactions-sync
// schedule, which the worker keeps at its SYNC_INTERVAL, not this
// process's own (read once a minute), and at its own only while the
// schedule cannot be read.
func TestClient_StartSyncUsesTheScheduleInterval(t *testing.T) {
	d := dbtest.NewSQLite(t)
	withInterval := func(want time.Duration) any {
		return mock.MatchedBy(func(in workflows.SyncInput) bool { return in.Interval == want })
	}
	run := mocks.NewWorkflowRun(t)
	run.On("GetID").Return(workflows.ManualSyncWorkflowID)
	run.On("GetRunID").Return("r1")

	tc := mocks.NewClient(t)
	sc := mocks.NewScheduleClient(t)
	h := mocks.NewScheduleHandle(t)
	tc.On("ScheduleClient").Return(sc)
	sc.On("GetHandle", mock.Anything, workflows.ScheduleID).Return(h)
	h.On("Describe", mock.Anything).Return(&client.ScheduleDescription{Schedule: client.Schedule{
		Spec: &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: 10 * time.Second}}},
	}}, nil).Once()
	tc.On("SignalWithStartWorkflow", mock.Anything, workflows.ManualSyncWorkflowID, workflows.SyncSignal, mock.Anything, mock.Anything, mock.Anything, withInterval(10*time.Second)).
		Return(run, nil).Twice()
	c := &Client{Temporal: tc, Store: db.NewStore(d, db.Budget{}), TaskQueue: "q", SyncInterval: time.Minute}
	for range 2 {
		_, err := c.StartSync(context.Background())
		require.NoError(t, err)
	}

	// No schedule yet (no worker has started): this process's own.
	tc2 := mocks.NewClient(t)
	sc2 := mocks.NewScheduleClient(t)
	h2 := mocks.NewScheduleHandle(t)
	tc2.On("ScheduleClient").Return(sc2)
	sc2.On("GetHandle", mock.Anything, workflows.ScheduleID).Return(h2)
	h2.On("Describe", mock.Anything).Return(nil, serviceerror.NewNotFound("schedule not found"))
	tc2.On("SignalWithStartWorkflow", mock.Anything, workflows.ManualSyncWorkflowID, workflows.SyncSignal, mock.Anything, mock.Anything, mock.Anything, withInterval(time.Minute)).
		Return(run, nil).Once()
	c2 := &Client{Temporal: tc2, Store: db.NewStore(d, db.Budget{}), TaskQueue: "q", SyncInterval: time.Minute}
	_, err := c2.StartSync(context.Background())
	require.NoError(t, err)
}
