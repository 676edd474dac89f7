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

// Start starts the workers of both task queues with every workflow and
// activity registered; stop stops them.
func Start(c client.Client, taskQueue string, acts *activities.Activities) (stop func(), err error) {
	sync := sdkworker.New(c, taskQueue, sdkworker.Options{})
	sync.RegisterWorkflow(workflows.SyncWorkflow)
	sync.RegisterActivity(acts)
	// Payouts are many small provider calls: a bounded concurrency per
	// worker is kind to the provider and leaves CPU and database to the
	// sync, whose freshness has a deadline. Scale payouts with workers.
	payouts := sdkworker.New(c, PayoutTaskQueue(taskQueue), sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     32,
		MaxConcurrentWorkflowTaskExecutionSize: 8,
	})
	RegisterPayouts(payouts)
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
		ID:        workflows.ScheduleID,
		Workflow:  workflows.SyncWorkflow,
		Args:      []any{workflows.SyncInput{Interval: interval, Follow: true}},
		TaskQueue: taskQueue,
		// A sync that cannot finish in a day is stuck; the next run resumes
		// from the stored cursor.
		WorkflowRunTimeout: 24 * time.Hour,
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:     workflows.ScheduleID,
		Spec:   spec,
		Action: action,
		// Skip: never two scheduled syncs at once; a long backfill simply
		// absorbs the ticks it spans.
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		// A new deployment syncs at once instead of a whole interval later.
		TriggerImmediately: true,
		Memo:               map[string]any{"description": "pulls upstream transactions into scorekeeper"},
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", workflows.ScheduleID, err)
	}
	h := c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", workflows.ScheduleID, err)
	}
	return nil
}
