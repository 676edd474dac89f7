package worker

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// PayoutStarter wakes a user's PayoutWorkflow through Temporal. It is the
// activities.PayoutStarter the worker gives its activities.
type PayoutStarter struct {
	Client    client.Client
	TaskQueue string
}

var _ activities.PayoutStarter = (*PayoutStarter)(nil)

// NotifyPayouts signals the user's PayoutWorkflow that payouts are waiting,
// starting it first if it is not running (signal-with-start, atomic in
// Temporal). The workflow id is the business key payout-<userId>, so any
// number of syncs and workers notifying at once still yield one workflow
// per user; a completed workflow is simply started again.
func (s *PayoutStarter) NotifyPayouts(ctx context.Context, userID string) error {
	id := workflows.PayoutWorkflowID(userID)
	_, err := s.Client.SignalWithStartWorkflow(ctx, id, workflows.PayoutSignal, nil,
		client.StartWorkflowOptions{
			ID:        id,
			TaskQueue: s.TaskQueue,
			// Searchable by user from its first event; the workflow
			// upserts the same value.
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.UserIDSearchAttribute.ValueSet(userID)),
		},
		workflows.PayoutWorkflow, workflows.PayoutInput{UserID: userID})
	if err != nil {
		return fmt.Errorf("signal-with-start %s: %w", id, err)
	}
	return nil
}

// RegisterPayouts registers PayoutWorkflow on w. Its activities are methods
// of activities.Activities, registered with the struct.
func RegisterPayouts(w sdkworker.Registry) {
	w.RegisterWorkflow(workflows.PayoutWorkflow)
}
