package worker

import (
	"context"
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

var _ scorekeeper.PayoutOperator = (*Client)(nil)

// HoldPayouts runs the hold Update on the user's payout workflow.
func (c *Client) HoldPayouts(ctx context.Context, userID, reason, by string) (scorekeeper.PayoutHold, error) {
	var v workflows.HoldView
	if err := c.payoutUpdate(ctx, userID, workflows.PayoutHoldUpdate, workflows.HoldRequest{Reason: reason, By: by}, &v); err != nil {
		return scorekeeper.PayoutHold{}, err
	}
	return scorekeeper.PayoutHold{UserID: userID, Reason: v.Reason, By: v.By, HeldAt: v.HeldAt}, nil
}

// ReleasePayouts runs the release Update on the user's payout workflow.
func (c *Client) ReleasePayouts(ctx context.Context, userID, by string) error {
	var v workflows.HoldView
	return c.payoutUpdate(ctx, userID, workflows.PayoutReleaseUpdate, workflows.ReleaseRequest{By: by}, &v)
}

// RetryPayout runs the retry Update on the user's payout workflow.
func (c *Client) RetryPayout(ctx context.Context, userID, payoutID, by string) (scorekeeper.Payout, error) {
	var p scorekeeper.Payout
	err := c.payoutUpdate(ctx, userID, workflows.PayoutRetryUpdate, workflows.PayoutActionRequest{TransactionID: payoutID, By: by}, &p)
	return p, err
}

// CancelPayout runs the cancel Update on the user's payout workflow.
func (c *Client) CancelPayout(ctx context.Context, userID, payoutID, reason, by string) (scorekeeper.Payout, error) {
	var p scorekeeper.Payout
	err := c.payoutUpdate(ctx, userID, workflows.PayoutCancelUpdate, workflows.PayoutActionRequest{TransactionID: payoutID, Reason: reason, By: by}, &p)
	return p, err
}

// payoutUpdate sends an Update to the user's payout workflow and waits for
// its answer, starting the workflow first when none runs (update-with-
// start, with the options the sync's signal-with-start uses): an idle
// user's workflow has completed, and a hold or cancel must still reach the
// store through it, so that every action is in a workflow's history.
func (c *Client) payoutUpdate(ctx context.Context, userID, name string, arg, out any) error {
	id := workflows.PayoutWorkflowID(userID)
	start := c.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                PayoutTaskQueue(c.TaskQueue),
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(workflows.UserIDSearchAttribute.ValueSet(userID)),
	}, workflows.PayoutWorkflow, workflows.PayoutInput{UserID: userID})
	h, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   name,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(ctx, out)
	}
	return payoutActionError(name, err)
}

// payoutActionError maps the workflow's refusals to domain errors.
func payoutActionError(name string, err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case activities.ErrTypePayoutNotFound:
			return scorekeeper.Errorf(scorekeeper.ENotFound, "%s", appErr.Message())
		case activities.ErrTypePayoutActionConflict:
			return scorekeeper.Errorf(scorekeeper.EConflict, "%s", appErr.Message())
		case activities.ErrTypePayoutActionInvalid:
			return scorekeeper.Errorf(scorekeeper.EInvalid, "%s", appErr.Message())
		}
	}
	return temporalError("payout "+name, err)
}
