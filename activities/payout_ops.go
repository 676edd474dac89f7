package activities

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"scorekeeper"
	"scorekeeper/db"
)

// Error types of the operator actions on payouts, which the REST API maps
// to 404, 409 and 400.
const (
	// ErrTypePayoutActionConflict is an action the payout's state does not
	// allow (canceling a payout already sent, retrying one not waiting for
	// an operator).
	ErrTypePayoutActionConflict = "PayoutActionConflict"
	// ErrTypePayoutActionInvalid is an action with bad input.
	ErrTypePayoutActionInvalid = "PayoutActionInvalid"
)

// HoldPayoutsInput puts a user's payouts on hold.
type HoldPayoutsInput struct {
	UserID string `json:"userId"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// HoldPayouts stores a hold on the user's payouts (db.HoldPayouts): from
// then on ListPayouts lists nothing to send for them.
func (a *Activities) HoldPayouts(ctx context.Context, in HoldPayoutsInput) (PayoutHold, error) {
	h, err := db.HoldPayouts(ctx, a.Store.DB(), in.UserID, in.Reason, in.By, a.now())
	if err != nil {
		return PayoutHold{}, actionError(err, ErrTypePayoutNotFound)
	}
	return PayoutHold{Reason: h.Reason, By: h.By, HeldAt: h.HeldAt}, nil
}

// ReleasePayoutsInput lifts the hold on a user's payouts.
type ReleasePayoutsInput struct {
	UserID string `json:"userId"`
	By     string `json:"by"`
}

// ReleasePayouts removes the hold on the user's payouts and reports
// whether there was one.
func (a *Activities) ReleasePayouts(ctx context.Context, in ReleasePayoutsInput) (bool, error) {
	released, err := db.ReleasePayouts(ctx, a.Store.DB(), in.UserID)
	return released, actionError(err, ErrTypePayoutNotFound)
}

// PayoutActionInput names one payout of a user for an operator action.
type PayoutActionInput struct {
	UserID        string `json:"userId"`
	TransactionID string `json:"transactionId"`
	Reason        string `json:"reason,omitempty"`
	By            string `json:"by"`
}

// GetUserPayout reads one of the user's payouts; another user's payout is
// as unknown as a missing one.
func (a *Activities) GetUserPayout(ctx context.Context, in PayoutActionInput) (scorekeeper.Payout, error) {
	p, err := db.GetPayout(ctx, a.Store.DB(), in.TransactionID)
	if err == nil && p.UserID != in.UserID {
		err = scorekeeper.Errorf(scorekeeper.ENotFound, "payout %s not found", in.TransactionID)
	}
	if err != nil {
		return scorekeeper.Payout{}, actionError(err, ErrTypePayoutNotFound)
	}
	return p, nil
}

// CancelPayout cancels one of the user's payouts that was never sent
// (db.CancelPayout), recording who canceled it and why as its reason.
func (a *Activities) CancelPayout(ctx context.Context, in PayoutActionInput) (scorekeeper.Payout, error) {
	if _, err := a.GetUserPayout(ctx, in); err != nil {
		return scorekeeper.Payout{}, err
	}
	reason := "canceled by " + in.By
	if in.Reason != "" {
		reason += ": " + in.Reason
	}
	p, err := db.CancelPayout(ctx, a.Store.DB(), in.TransactionID, reason, a.now())
	if err != nil {
		return scorekeeper.Payout{}, actionError(err, ErrTypePayoutNotFound)
	}
	return p, nil
}

// actionError turns the store's domain errors into non-retryable
// application errors the REST API maps to statuses (ENotFound as
// notFound); anything else (the database down) stays retryable.
func actionError(err error, notFound string) error {
	switch scorekeeper.ErrorCode(err) {
	case "":
		return err
	case scorekeeper.ENotFound:
		return temporal.NewNonRetryableApplicationError(scorekeeper.ErrorMessage(err), notFound, nil)
	case scorekeeper.EConflict:
		return temporal.NewNonRetryableApplicationError(scorekeeper.ErrorMessage(err), ErrTypePayoutActionConflict, nil)
	case scorekeeper.EInvalid:
		return temporal.NewNonRetryableApplicationError(scorekeeper.ErrorMessage(err), ErrTypePayoutActionInvalid, nil)
	}
	return err
}
