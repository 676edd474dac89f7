package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"scorekeeper"
	"scorekeeper/workflows"
)

// Client is the REST API's side of the workflows: scorekeeper.Syncer and
// scorekeeper.Reconciler. It starts SyncWorkflow and ReconcileWorkflow on
// the task queue the worker serves, with the run options the worker's
// schedules use, and reads the sync status from the store (the one read
// model, Store.SyncStatus) and the last run from Temporal.
type Client struct {
	Temporal client.Client
	// Store is the store the status is read from; its clock stamps
	// manual sync requests.
	Store     scorekeeper.Store
	Namespace string
	TaskQueue string
	// SyncInterval is this process's SYNC_INTERVAL, used for a manual
	// sync only until the transactions-sync schedule can be read: the
	// worker keeps the schedule at its own SYNC_INTERVAL, and that value
	// wins (scheduleInterval), so a web process configured otherwise
	// cannot run manual syncs at an interval the worker does not.
	SyncInterval time.Duration

	mu         sync.Mutex
	interval   time.Duration
	intervalAt time.Time
}

// scheduleIntervalTTL is how long the schedule's interval is kept before
// it is read again (a worker restarted with another SYNC_INTERVAL updates
// the schedule).
const scheduleIntervalTTL = time.Minute

// syncInterval is the interval of the transactions-sync schedule, which
// the worker keeps at its SYNC_INTERVAL, read at most once a minute; this
// process's own SyncInterval while the schedule cannot be read (no worker
// has created it yet, or Temporal does not answer).
func (c *Client) syncInterval(ctx context.Context) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.interval > 0 && time.Since(c.intervalAt) < scheduleIntervalTTL {
		return c.interval
	}
	if d, err := c.Temporal.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Describe(ctx); err == nil {
		if iv := d.Schedule.Spec.Intervals; len(iv) == 1 && iv[0].Every > 0 {
			c.interval, c.intervalAt = iv[0].Every, time.Now()
			return c.interval
		}
	}
	return c.SyncInterval
}

var (
	_ scorekeeper.Syncer     = (*Client)(nil)
	_ scorekeeper.Reconciler = (*Client)(nil)
)

// StartSync asks for data through now: it signals the manual sync, starting
// it if none runs (signal-with-start on one fixed workflow id), so a burst
// of requests is one sync. That sync fetches if no other does, or asks the
// fetcher for the data and waits for it: one fetcher, whatever starts
// syncs. "Now" is the database's clock, which the sync's windows use.
func (c *Client) StartSync(ctx context.Context) (scorekeeper.SyncRun, error) {
	now, err := c.Store.Now(ctx)
	if err != nil {
		now = time.Now().UTC()
	}
	run, err := c.Temporal.SignalWithStartWorkflow(ctx, workflows.ManualSyncWorkflowID, workflows.SyncSignal,
		workflows.SyncRequest{Through: now}, manualSyncOptions(c.TaskQueue),
		workflows.SyncWorkflow, workflows.SyncInput{Interval: c.syncInterval(ctx), Want: now})
	return started(run, err, "start sync")
}

// WaitSync waits for the run (following continue-as-new) and returns its
// totals.
func (c *Client) WaitSync(ctx context.Context, run scorekeeper.SyncRun) (scorekeeper.SyncStats, error) {
	return result[scorekeeper.SyncStats](ctx, c.Temporal, run, "sync failed")
}

// StartReconcile starts a reconciliation, or joins the one running: one
// workflow id for reports and another for repairs, so a repair is never
// answered by a report already running.
func (c *Client) StartReconcile(ctx context.Context, repair bool) (scorekeeper.SyncRun, error) {
	run, err := c.Temporal.ExecuteWorkflow(ctx, reconcileOptions(c.TaskQueue, repair),
		workflows.ReconcileWorkflow, workflows.ReconcileInput{Repair: repair})
	return started(run, err, "start reconcile")
}

// WaitReconcile waits for the run (following continue-as-new) and returns
// its report.
func (c *Client) WaitReconcile(ctx context.Context, run scorekeeper.SyncRun) (scorekeeper.ReconcileReport, error) {
	// One vocabulary (scorekeeper.ReconcileReport): the workflow's result
	// is the report.
	return result[scorekeeper.ReconcileReport](ctx, c.Temporal, run, "reconcile failed")
}

// manualSyncOptions start the manual sync: one fixed id, so concurrent
// requests join one run, and a new run once the last one closed.
func manualSyncOptions(taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    workflows.ManualSyncWorkflowID,
		TaskQueue:             taskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:    syncRunTimeout,
	}
}

// reconcileOptions start a reconciliation, or join the one of the same
// kind that runs.
func reconcileOptions(taskQueue string, repair bool) client.StartWorkflowOptions {
	id := workflows.ReconcileWorkflowID
	if repair {
		id += "-repair"
	}
	return client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:       reconcileRunTimeout,
	}
}

// started turns the answer to a start into the web layer's run handle.
func started(run client.WorkflowRun, err error, what string) (scorekeeper.SyncRun, error) {
	if err != nil {
		return scorekeeper.SyncRun{}, temporalError(what, err)
	}
	return scorekeeper.SyncRun{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// result waits for run, following continue-as-new, and returns its result.
// When ctx ends first it returns ctx's error, so the caller can tell its
// own deadline from a failed run.
func result[T any](ctx context.Context, c client.Client, run scorekeeper.SyncRun, what string) (T, error) {
	var res T
	if err := c.GetWorkflow(ctx, run.WorkflowID, run.RunID).Get(ctx, &res); err != nil {
		var zero T
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		return zero, temporalError(what, err)
	}
	return res, nil
}

// Status is the store's sync status (the read model /metrics serves too),
// with the most recent SyncWorkflow run from Temporal's visibility store.
func (c *Client) Status(ctx context.Context) (scorekeeper.SyncStatus, error) {
	st, err := c.Store.SyncStatus(ctx)
	if err != nil {
		return st, err
	}
	st.LastRun, err = c.lastRun(ctx)
	return st, err
}

func (c *Client) lastRun(ctx context.Context) (*scorekeeper.SyncRunInfo, error) {
	resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: c.Namespace,
		PageSize:  1,
		Query:     "WorkflowType = 'SyncWorkflow'", // newest first by default
	})
	if err != nil {
		return nil, temporalError("list sync runs", err)
	}
	if len(resp.Executions) == 0 {
		return nil, nil
	}
	e := resp.Executions[0]
	info := &scorekeeper.SyncRunInfo{
		WorkflowID: e.GetExecution().GetWorkflowId(),
		RunID:      e.GetExecution().GetRunId(),
		Status:     statusName(e.GetStatus()),
		StartedAt:  e.GetStartTime().AsTime(),
	}
	if e.GetCloseTime() != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t := e.GetCloseTime().AsTime()
		info.ClosedAt = &t
	}
	if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		// The stats are a courtesy: a slow history read leaves them out
		// rather than holding up the status.
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if res, err := result[scorekeeper.SyncStats](gctx, c.Temporal, scorekeeper.SyncRun{WorkflowID: info.WorkflowID, RunID: info.RunID}, "sync result"); err == nil {
			info.Stats = &res
		}
	}
	return info, nil
}

// statusName is how the API spells a run's status.
func statusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued_as_new"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed_out"
	}
	return "unknown"
}

// temporalError turns Temporal client failures into domain errors: an
// unreachable server is 503, the rest internal.
func temporalError(what string, err error) error {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	if errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) {
		return scorekeeper.Errorf(scorekeeper.EUnavailable, "the workflow service is unavailable; try again shortly")
	}
	return fmt.Errorf("%s: %w", what, err)
}
