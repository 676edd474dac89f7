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

// New returns a worker on taskQueue with every workflow and activity
// registered. The caller runs it (Run or Start/Stop).
func New(c client.Client, taskQueue string, acts *activities.Activities) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflow(workflows.SyncWorkflow)
	RegisterPayouts(w)
	w.RegisterActivity(acts)
	return w
}

// EnsureSchedule creates the transactions-sync schedule, or updates it to
// the given interval when it exists. Safe with many workers starting at
// once: the losers of the create race update to the same values.
func EnsureSchedule(ctx context.Context, c client.Client, taskQueue string, interval time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:        workflows.ScheduleID,
		Workflow:  workflows.SyncWorkflow,
		Args:      []any{workflows.SyncInput{Interval: interval}},
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
