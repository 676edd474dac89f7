package workflows

import (
	"fmt"
	"unicode/utf8"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
)

// Bounds of an operator action's input.
const (
	maxActorLen = 64
	maxPayoutID = 256
)

// setupUpdates registers the operator actions (PayoutHoldUpdate and the
// rest). Each validator only reads its input, so a rejected action leaves
// no trace in history; each handler acts through an activity on the store,
// where holds and cancels live, so they outlast this run.
func (r *payoutRun) setupUpdates() error {
	for _, u := range []struct {
		name      string
		handler   any
		validator any
	}{
		{PayoutHoldUpdate, r.holdPayouts, func(req HoldRequest) error {
			return firstError(validActor(req.By), validReason(req.Reason, true))
		}},
		{PayoutReleaseUpdate, r.releasePayouts, func(req ReleaseRequest) error { return validActor(req.By) }},
		{PayoutRetryUpdate, r.retryPayout, validAction},
		{PayoutCancelUpdate, r.cancelPayout, validAction},
	} {
		if err := workflow.SetUpdateHandlerWithOptions(r.ctx, u.name, u.handler,
			workflow.UpdateHandlerOptions{Validator: u.validator}); err != nil {
			return err
		}
	}
	return nil
}

func (r *payoutRun) holdPayouts(ctx workflow.Context, req HoldRequest) (HoldView, error) {
	var h activities.PayoutHold
	err := workflow.ExecuteActivity(r.dbCtx, a.HoldPayouts, activities.HoldPayoutsInput{
		UserID: r.in.UserID, Reason: req.Reason, By: req.By,
	}).Get(ctx, &h)
	if err != nil {
		return HoldView{}, err
	}
	r.hold = &h
	if r.stopSend != nil {
		r.stopSend()
	}
	r.logger.Info("payouts held by an operator", "by", req.By, "reason", req.Reason)
	return r.holdView(), nil
}

func (r *payoutRun) releasePayouts(ctx workflow.Context, req ReleaseRequest) (HoldView, error) {
	var released bool
	err := workflow.ExecuteActivity(r.dbCtx, a.ReleasePayouts, activities.ReleasePayoutsInput{
		UserID: r.in.UserID, By: req.By,
	}).Get(ctx, &released)
	if err != nil {
		return HoldView{}, err
	}
	r.hold = nil
	r.wake.SendAsync(struct{}{})
	r.logger.Info("payouts released by an operator", "by", req.By, "wasHeld", released)
	return r.holdView(), nil
}

// retryPayout ends the operator pause of the payout it names, so the run
// lists and sends it now with its original idempotency key. Any other
// payout is not waiting for an operator: a conflict (or unknown).
func (r *payoutRun) retryPayout(ctx workflow.Context, req PayoutActionRequest) (scorekeeper.Payout, error) {
	var p scorekeeper.Payout
	err := workflow.ExecuteActivity(r.dbCtx, a.GetUserPayout, activities.PayoutActionInput{
		UserID: r.in.UserID, TransactionID: req.TransactionID, By: req.By,
	}).Get(ctx, &p)
	if err != nil {
		return p, err
	}
	if r.blocked != req.TransactionID {
		return p, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("payout %s is %s and not waiting for an operator", req.TransactionID, p.Status),
			activities.ErrTypePayoutActionConflict, nil)
	}
	if r.hold != nil {
		return p, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the payouts of user %s are on hold; release them first", r.in.UserID),
			activities.ErrTypePayoutActionConflict, nil)
	}
	r.retryNow.SendAsync(struct{}{})
	r.logger.Info("payout retried by an operator", "transactionId", req.TransactionID, "by", req.By)
	return p, nil
}

// cancelPayout cancels a payout never sent. The store decides against a
// send racing it (db.CancelPayout): a payout in this run's batch that
// loses is skipped when its turn comes (SendPayout sends nothing).
func (r *payoutRun) cancelPayout(ctx workflow.Context, req PayoutActionRequest) (scorekeeper.Payout, error) {
	var p scorekeeper.Payout
	err := workflow.ExecuteActivity(r.dbCtx, a.CancelPayout, activities.PayoutActionInput{
		UserID: r.in.UserID, TransactionID: req.TransactionID, Reason: req.Reason, By: req.By,
	}).Get(ctx, &p)
	if err != nil {
		return p, err
	}
	r.logger.Info("payout canceled by an operator", "transactionId", req.TransactionID, "by", req.By, "reason", req.Reason)
	return p, nil
}

func (r *payoutRun) holdView() HoldView {
	v := HoldView{UserID: r.in.UserID}
	if h := r.hold; h != nil {
		v.Held, v.Reason, v.By, v.HeldAt = true, h.Reason, h.By, h.HeldAt
	}
	return v
}

func validAction(req PayoutActionRequest) error {
	if req.TransactionID == "" || len(req.TransactionID) > maxPayoutID || !utf8.ValidString(req.TransactionID) {
		return invalid("a payout id of 1 to %d bytes is required", maxPayoutID)
	}
	return firstError(validActor(req.By), validReason(req.Reason, false))
}

func validActor(by string) error {
	if by == "" || len(by) > maxActorLen || !scorekeeper.Printable(by) {
		return invalid("who acts (by) must be 1 to %d printable characters", maxActorLen)
	}
	return nil
}

// validReason is scorekeeper.ValidReason as a validator's error.
func validReason(reason string, required bool) error {
	if err := scorekeeper.ValidReason(reason, required); err != nil {
		return invalid("%s", scorekeeper.ErrorMessage(err))
	}
	return nil
}

func invalid(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), activities.ErrTypePayoutActionInvalid, nil)
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
