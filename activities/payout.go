package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/payout"
)

// Error types of the payout activities, as the workflow and operators see
// them in Temporal.
const (
	// ErrTypePayoutProviderBusy is a 429 (or other transient answer) that
	// said when to come back: the next attempt waits its Retry-After.
	ErrTypePayoutProviderBusy = "PayoutProviderBusy"
	// ErrTypePayoutProviderConflict is a 4xx other than 422 (payout.StatusError):
	// 409 idempotency conflict, 400, 401/403, 404. It is not an answer
	// about the payout — after a 409 the key's first request may well have
	// paid — so the payout stays requested until an operator fixes the
	// cause. The error itself is retryable; PayoutWorkflow takes it out of
	// the activity's fast retries and retries it slowly.
	ErrTypePayoutProviderConflict = "PayoutProviderConflict"
	// ErrTypePayoutInvalidRequest is a payout the client refused to send
	// (payout.ErrInvalidRequest): a bug or bad data, never retried as is,
	// and never a reason to fail the payout either.
	ErrTypePayoutInvalidRequest = "PayoutInvalidRequest"
	// ErrTypePayoutNotFound is a payout transition for a transaction the
	// store does not have: a bug, not retryable.
	ErrTypePayoutNotFound = "PayoutNotFound"
)

// DefaultRecoverPageSize is RecoverPayoutsInput.Limit's default.
const DefaultRecoverPageSize = 500

// RequestedPayout is a payout still waiting to be sent, in activity
// payloads.
type RequestedPayout struct {
	TransactionID string             `json:"transactionId"`
	UserID        string             `json:"userId"`
	Amount        scorekeeper.Amount `json:"amount"`
	// CreatedAt is upstream's time of the request: payouts are sent
	// oldest first.
	CreatedAt time.Time `json:"createdAt"`
}

// ListPayoutsInput asks for a user's next requested payouts.
type ListPayoutsInput struct {
	UserID string `json:"userId"`
	// Limit bounds the batch; it must be positive.
	Limit int `json:"limit"`
}

// ListPayoutsResult is a user's oldest requested payouts, oldest first.
type ListPayoutsResult struct {
	Payouts []RequestedPayout `json:"payouts"`
	// Hold is set while an operator holds the user's payouts: nothing is
	// to be sent (Payouts is then empty).
	Hold *PayoutHold `json:"hold,omitempty"`
}

// PayoutHold is an operator's hold on a user's payouts, in activity
// payloads. It restates scorekeeper.PayoutHold on purpose: this is a wire
// format that recorded histories hold (workflows/testdata) and every
// running workflow may replay, so it changes only as payloads may (see
// docs/versioning.md), while the domain type stays free to change; it
// needs no user id, as every payout workflow is one user's.
type PayoutHold struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	HeldAt time.Time `json:"heldAt"`
}

// ListPayouts reads a user's requested payouts from the store, oldest
// first, at most Limit. The store, not the signals that woke the
// workflow, says what is left to pay, so a duplicate or lost signal can
// neither duplicate nor drop a payout.
func (a *Activities) ListPayouts(ctx context.Context, in ListPayoutsInput) (ListPayoutsResult, error) {
	if in.UserID == "" || in.Limit <= 0 {
		return ListPayoutsResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("list payouts: need a user id and a positive limit, got %q and %d", in.UserID, in.Limit),
			ErrTypePayoutInvalidRequest, nil)
	}
	hold, err := db.GetPayoutHold(ctx, a.Store.DB(), in.UserID)
	if err != nil {
		return ListPayoutsResult{}, err
	}
	if hold != nil {
		return ListPayoutsResult{Payouts: []RequestedPayout{}, Hold: &PayoutHold{Reason: hold.Reason, By: hold.By, HeldAt: hold.HeldAt}}, nil
	}
	ps, err := db.UserPayouts(ctx, a.Store.DB(), in.UserID, scorekeeper.PayoutRequested, in.Limit)
	if err != nil {
		return ListPayoutsResult{}, err
	}
	out := ListPayoutsResult{Payouts: make([]RequestedPayout, len(ps))}
	for i, p := range ps {
		out.Payouts[i] = RequestedPayout{TransactionID: p.TransactionID, UserID: p.UserID, Amount: p.Amount, CreatedAt: p.CreatedAt}
	}
	return out, nil
}

// SendPayoutInput is one payout to send to the provider.
type SendPayoutInput struct {
	// TransactionID is the payout transaction's id, sent as the
	// Idempotency-Key: every attempt of every run sends the same key.
	TransactionID string             `json:"transactionId"`
	UserID        string             `json:"userId"`
	Amount        scorekeeper.Amount `json:"amount"`
}

// SendPayoutResult is the provider's definite answer about a payout.
type SendPayoutResult struct {
	// Status is scorekeeper.PayoutPaid or scorekeeper.PayoutFailed.
	Status scorekeeper.PayoutStatus `json:"status"`
	// ProviderID is the provider's id of a paid payout.
	ProviderID string `json:"providerId,omitempty"`
	// Reason is the provider's code and message for a failed payout.
	Reason string `json:"reason,omitempty"`
	// Settled is set when nothing was sent because the payout was no
	// longer requested (an operator canceled it, or another worker
	// settled it): Status and the rest are then as stored, and there is
	// nothing to record.
	Settled bool `json:"settled,omitempty"`
}

// SendPayout sends one payout to the provider, once per attempt, with the
// transaction id as Idempotency-Key, so repeating it after a timeout, a
// crash or a retry pays nothing twice: the provider replays the key's
// first answer.
//
// Only a definite answer is a result: paid (with the provider's id) or a
// 422 rejection (failed, with the provider's code and message as reason).
// Everything else is an error, and the payout stays requested:
//   - 429/5xx/timeouts/transport errors/malformed 2xx are plain retryable
//     errors; a Retry-After becomes the next attempt's delay
//     (ErrTypePayoutProviderBusy);
//   - another 4xx is ErrTypePayoutProviderConflict, which needs an
//     operator;
//   - a request the client refuses to send is ErrTypePayoutInvalidRequest.
func (a *Activities) SendPayout(ctx context.Context, in SendPayoutInput) (SendPayoutResult, error) {
	// Counted before it is sent (GET /api/users/{userId}/payouts shows
	// it): a request whose answer is lost still counts.
	// A payout no longer requested is not sent: the attempt is recorded
	// only while it is, and a cancel only while none is (db.CancelPayout),
	// so a canceled payout never reaches the provider.
	requested, err := db.RecordPayoutAttempt(ctx, a.Store.DB(), in.TransactionID)
	if err != nil {
		return SendPayoutResult{}, err
	}
	if !requested {
		cur, err := db.GetPayout(ctx, a.Store.DB(), in.TransactionID)
		if scorekeeper.ErrorCode(err) == scorekeeper.ENotFound {
			return SendPayoutResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePayoutNotFound, err)
		} else if err != nil {
			return SendPayoutResult{}, err
		}
		return SendPayoutResult{Status: cur.Status, ProviderID: cur.ProviderID, Reason: cur.Reason, Settled: true}, nil
	}
	res, err := a.Payouts.Pay(ctx, payout.Request{
		TransactionID: in.TransactionID,
		UserID:        in.UserID,
		Amount:        in.Amount,
	})
	var rejected *payout.RejectedError
	switch {
	case err == nil:
		return SendPayoutResult{Status: scorekeeper.PayoutPaid, ProviderID: res.ID}, nil
	case errors.As(err, &rejected):
		// A 422 is the provider's final word, so it is a result to record,
		// not an error: retrying returns the same refusal.
		return SendPayoutResult{Status: scorekeeper.PayoutFailed, Reason: rejectionReason(rejected)}, nil
	}
	return SendPayoutResult{}, classifyPayoutError(ctx, in, err)
}

// rejectionReason renders a 422 as the failed payout's reason.
func rejectionReason(e *payout.RejectedError) string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// classifyPayoutError turns a Pay error that is not an answer about the
// payout into the error Temporal retries, or hands to the workflow.
func classifyPayoutError(ctx context.Context, in SendPayoutInput, err error) error {
	var (
		transient *payout.TransientError
		status    *payout.StatusError
	)
	switch {
	case errors.As(err, &transient) && transient.RetryAfter > 0:
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypePayoutProviderBusy,
			temporal.ApplicationErrorOptions{NextRetryDelay: transient.RetryAfter, Cause: err})
	case errors.As(err, &status):
		activity.GetLogger(ctx).Error("payout provider refused the request; the payout stays requested until an operator fixes the cause",
			"transactionId", in.TransactionID, "userId", in.UserID, "status", status.StatusCode, "error", err)
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypePayoutProviderConflict,
			temporal.ApplicationErrorOptions{Cause: err})
	case errors.Is(err, payout.ErrInvalidRequest):
		activity.GetLogger(ctx).Error("payout cannot be sent; it stays requested until an operator fixes it",
			"transactionId", in.TransactionID, "userId", in.UserID, "error", err)
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePayoutInvalidRequest, err)
	}
	// Timeouts and transport errors may hide a payment that went through;
	// only the idempotent retry can tell, so retry.
	return err
}

// RecordPayoutResultInput is a provider's answer to store.
type RecordPayoutResultInput struct {
	TransactionID string `json:"transactionId"`
	// Status is scorekeeper.PayoutPaid or scorekeeper.PayoutFailed.
	Status     scorekeeper.PayoutStatus `json:"status"`
	ProviderID string                   `json:"providerId,omitempty"`
	Reason     string                   `json:"reason,omitempty"`
}

// RecordPayoutResultResult is the payout as stored after recording.
type RecordPayoutResultResult struct {
	Status     scorekeeper.PayoutStatus `json:"status"`
	ProviderID string                   `json:"providerId,omitempty"`
	Reason     string                   `json:"reason,omitempty"`
	// Conflict is set when the store already held the other outcome (paid
	// vs failed). Nothing was changed; an operator must look at it.
	Conflict bool `json:"conflict,omitempty"`
}

// RecordPayoutResult stores the provider's answer: paid moves the amount
// into the user's paidOut, failed returns it to the balance, each in one
// database transaction with the status change. It is idempotent, so the
// retry of an attempt that committed changes nothing.
//
// A conflicting stored outcome is reported as a result, not an error: the
// payout is no longer requested, so retrying cannot help and the
// workflow should move on to the user's next payout.
func (a *Activities) RecordPayoutResult(ctx context.Context, in RecordPayoutResultInput) (RecordPayoutResultResult, error) {
	var (
		p   scorekeeper.Payout
		err error
	)
	switch in.Status {
	case scorekeeper.PayoutPaid:
		if in.ProviderID == "" {
			return RecordPayoutResultResult{}, temporal.NewNonRetryableApplicationError(
				"record payout "+in.TransactionID+": a paid payout needs the provider's id", ErrTypePayoutInvalidRequest, nil)
		}
		p, err = db.MarkPayoutPaid(ctx, a.Store.DB(), in.TransactionID, in.ProviderID, a.now())
	case scorekeeper.PayoutFailed:
		if in.Reason == "" {
			return RecordPayoutResultResult{}, temporal.NewNonRetryableApplicationError(
				"record payout "+in.TransactionID+": a failed payout needs a reason", ErrTypePayoutInvalidRequest, nil)
		}
		p, err = db.MarkPayoutFailed(ctx, a.Store.DB(), in.TransactionID, in.Reason, a.now())
	default:
		return RecordPayoutResultResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("record payout %s: status %q is not paid or failed", in.TransactionID, in.Status), ErrTypePayoutInvalidRequest, nil)
	}
	switch scorekeeper.ErrorCode(err) {
	case "":
		return RecordPayoutResultResult{Status: p.Status, ProviderID: p.ProviderID, Reason: p.Reason}, nil
	case scorekeeper.EConflict:
		cur, gerr := db.GetPayout(ctx, a.Store.DB(), in.TransactionID)
		if gerr != nil {
			return RecordPayoutResultResult{}, gerr
		}
		activity.GetLogger(ctx).Error("provider's answer contradicts the stored payout; left as stored for an operator",
			"transactionId", in.TransactionID, "answer", in.Status, "stored", cur.Status, "storedReason", cur.Reason)
		return RecordPayoutResultResult{Status: cur.Status, ProviderID: cur.ProviderID, Reason: cur.Reason, Conflict: true}, nil
	case scorekeeper.ENotFound:
		return RecordPayoutResultResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePayoutNotFound, err)
	}
	// The database is down or busy: wait it out.
	return RecordPayoutResultResult{}, err
}

// RecoverPayoutsInput bounds the recovery scan.
type RecoverPayoutsInput struct {
	// OlderThan skips payouts stored more recently: their workflow was
	// just woken and is likely still working through them. Zero wakes
	// every user with a requested payout.
	OlderThan time.Duration `json:"olderThan"`
	// Limit is the page size of the scan; zero means
	// DefaultRecoverPageSize.
	Limit int `json:"limit,omitempty"`
	// MaxDuration ends the scan after the page in progress once it has
	// run this long (zero: no bound); the next scan starts over. During a
	// provider or Temporal outage a wake-up can take seconds, and the scan
	// must not run into the next one.
	MaxDuration time.Duration `json:"maxDuration,omitempty"`
}

// RecoverPayoutsResult reports the recovery scan.
type RecoverPayoutsResult struct {
	// Notified counts users whose payout workflow was started or
	// signalled.
	Notified int `json:"notified"`
	// Cut is set when MaxDuration ended the scan early.
	Cut bool `json:"cut,omitempty"`
	// Failed counts users whose notification failed; the next scan tries
	// them again.
	Failed int `json:"failed,omitempty"`
}

// RecoverPayouts wakes the payout workflow of every user with a payout
// requested for longer than OlderThan. A sync wakes workflows right after
// storing payouts, but that notification can be lost (the worker dies
// after the commit, Temporal is briefly unreachable, a workflow completed
// idle in the same instant): the store still says requested, and this
// scan turns that into a signal-with-start. Waking a workflow that is
// already busy costs one signal and pays nothing twice, because workflows
// pay what the store lists, not what signals say.
//
// The scan heartbeats its cursor, so a retried attempt resumes after the
// last page it finished.
func (a *Activities) RecoverPayouts(ctx context.Context, in RecoverPayoutsInput) (RecoverPayoutsResult, error) {
	var res RecoverPayoutsResult
	if a.PayoutStarter == nil {
		return res, nil
	}
	limit := in.Limit
	if limit <= 0 {
		limit = DefaultRecoverPageSize
	}
	before := a.now().Add(-in.OlderThan)
	after := ""
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &after)
	}
	logger := activity.GetLogger(ctx)
	started := time.Now()
	for {
		if in.MaxDuration > 0 && time.Since(started) > in.MaxDuration {
			res.Cut = true
			break
		}
		users, err := db.UsersWithStalePayouts(ctx, a.Store.DB(), before, after, limit)
		if err != nil {
			return res, err
		}
		for _, u := range users {
			if err := a.PayoutStarter.NotifyPayouts(ctx, u); err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.Failed++
				logger.Warn("could not wake payout workflow; the next scan retries", "userId", u, "error", err)
				continue
			}
			res.Notified++
		}
		if len(users) < limit {
			break
		}
		after = users[len(users)-1]
		activity.RecordHeartbeat(ctx, after)
	}
	if res.Notified > 0 || res.Failed > 0 {
		logger.Info("woke payout workflows with stale requests", "notified", res.Notified, "failed", res.Failed)
	}
	return res, nil
}
