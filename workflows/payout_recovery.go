package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper/activities"
)

// PayoutRecoveryAge is how long a payout may stay requested before the
// recovery scan wakes its workflow again.
const PayoutRecoveryAge = 2 * time.Minute

// PayoutRecoveryInput configures one recovery scan.
type PayoutRecoveryInput struct {
	// MaxDuration bounds the scan (zero: a minute); the next scheduled
	// scan carries on.
	MaxDuration time.Duration `json:"maxDuration,omitempty"`
}

// PayoutRecoveryWorkflow wakes the payout workflows of users whose payouts
// have waited longer than PayoutRecoveryAge: the store is the source of
// truth, so a wake-up lost after a sync committed is made up here. It runs
// on its own schedule, time-bounded and heartbeating per batch, so a slow
// provider or a Temporal hiccup never slows a sync.
func PayoutRecoveryWorkflow(ctx workflow.Context, in PayoutRecoveryInput) (activities.RecoverPayoutsResult, error) {
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
		OlderThan:   PayoutRecoveryAge,
		MaxDuration: bound,
	}).Get(ctx, &res)
	return res, err
}
