// Package worker wires workflows and activities into a Temporal worker and
// keeps the transactions-sync schedule. It holds no business logic.
package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// PayoutTaskQueue is the task queue of payout workflows and their
// activities, beside the sync's. Separate queues keep a burst of thousands
// of payouts from delaying the sync's activities behind them (and the sync
// from delaying payouts).
func PayoutTaskQueue(taskQueue string) string { return taskQueue + "-payouts" }

// The run timeouts of SyncWorkflow and ReconcileWorkflow, whether a
// schedule or the REST API starts them.
const (
	// A sync that cannot finish in a day is stuck; the next run resumes
	// from the stored cursor.
	syncRunTimeout = 24 * time.Hour
	// A reconciliation run still going after six hours is stuck.
	reconcileRunTimeout = 6 * time.Hour
)

// Start starts the workers of both task queues with every workflow and
// activity registered; stop stops them.
func Start(c client.Client, taskQueue string, acts *activities.Activities) (stop func(), err error) {
	// A sync that hits a non-determinism error (a bad deploy) fails
	// instead of blocking: its progress is in the database, so the next
	// scheduled run continues from there on the fixed code. Payout
	// workflows keep the default (block): they hold which payout is being
	// sent, and an operator fixes the deploy while they wait.
	sync := sdkworker.New(c, taskQueue, sdkworker.Options{WorkflowPanicPolicy: sdkworker.FailWorkflow})
	sync.RegisterWorkflow(workflows.SyncWorkflow)
	sync.RegisterWorkflow(workflows.ReconcileWorkflow)
	sync.RegisterActivity(acts)
	// Payouts are many small provider calls: a bounded concurrency per
	// worker is kind to the provider and leaves CPU and database to the
	// sync, whose freshness has a deadline. Scale payouts with workers.
	payouts := sdkworker.New(c, PayoutTaskQueue(taskQueue), sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     32,
		MaxConcurrentWorkflowTaskExecutionSize: 8,
	})
	RegisterPayouts(payouts)
	payouts.RegisterWorkflow(workflows.PayoutRecoveryWorkflow)
	payouts.RegisterActivity(acts)
	if err := sync.Start(); err != nil {
		return nil, fmt.Errorf("start sync worker: %w", err)
	}
	if err := payouts.Start(); err != nil {
		sync.Stop()
		return nil, fmt.Errorf("start payout worker: %w", err)
	}
	return func() { payouts.Stop(); sync.Stop() }, nil
}

// EnsureSchedule creates the transactions-sync schedule, or updates it to
// the given interval when it exists. Safe with many workers starting at
// once: the losers of the create race update to the same values.
func EnsureSchedule(ctx context.Context, c client.Client, taskQueue string, interval time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                 workflows.ScheduleID,
		Workflow:           workflows.SyncWorkflow,
		Args:               []any{workflows.SyncInput{Interval: interval, Follow: true}},
		TaskQueue:          taskQueue,
		WorkflowRunTimeout: syncRunTimeout,
	}
	// Buffer one: never two scheduled syncs at once, and a tick that
	// comes while a run follows the feed starts the next run the moment
	// it ends, so no tick is lost to a run that ends just after one.
	return ensureSchedule(ctx, c, workflows.ScheduleID, spec, action, enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
		"pulls upstream transactions into scorekeeper", true)
}

// EnsureRecoverySchedule creates or updates the payouts-recovery schedule:
// PayoutRecoveryWorkflow every minute on the payout task queue, off the
// sync's path.
func EnsureRecoverySchedule(ctx context.Context, c client.Client, payoutQueue string) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute}}}
	action := &client.ScheduleWorkflowAction{
		ID:                 workflows.PayoutRecoveryScheduleID,
		Workflow:           workflows.PayoutRecoveryWorkflow,
		Args:               []any{workflows.PayoutRecoveryInput{MaxDuration: 45 * time.Second}},
		TaskQueue:          payoutQueue,
		WorkflowRunTimeout: 10 * time.Minute,
	}
	return ensureSchedule(ctx, c, workflows.PayoutRecoveryScheduleID, spec, action, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		"wakes payout workflows whose wake-up was lost", true)
}

// EnsureReconcileSchedule creates or updates the reconcile-daily schedule:
// a report-only ReconcileWorkflow every day, which exports the drifted
// users as scorekeeper_reconcile_drift_users (an alert's input).
func EnsureReconcileSchedule(ctx context.Context, c client.Client, taskQueue string) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: 24 * time.Hour}}}
	action := &client.ScheduleWorkflowAction{
		ID:                 workflows.ReconcileScheduleID,
		Workflow:           workflows.ReconcileWorkflow,
		Args:               []any{workflows.ReconcileInput{}},
		TaskQueue:          taskQueue,
		WorkflowRunTimeout: reconcileRunTimeout,
	}
	return ensureSchedule(ctx, c, workflows.ReconcileScheduleID, spec, action, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		"recomputes every summary from its transactions and reports drift", false)
}

// ensureSchedule creates a schedule (running it at once when triggerNow),
// or updates it to the given spec, action and overlap policy when it
// exists. Safe with many workers
// starting at once: the losers of the create race update to the same
// values.
func ensureSchedule(ctx context.Context, c client.Client, id string, spec client.ScheduleSpec,
	action *client.ScheduleWorkflowAction, overlap enumspb.ScheduleOverlapPolicy, description string, triggerNow bool) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Action:  action,
		Overlap: overlap,
		// A new deployment syncs at once instead of a whole interval later.
		TriggerImmediately: triggerNow,
		Memo:               map[string]any{"description": description},
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", id, err)
	}
	h := c.ScheduleClient().GetHandle(ctx, id)
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = overlap
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", id, err)
	}
	return nil
}
