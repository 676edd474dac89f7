package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
)

// PayoutSignal is the signal that tells a user's PayoutWorkflow new payout
// requests are stored. It carries nothing: the workflow reads what to pay
// from the store, so a duplicate signal costs one listing and a lost one is
// made up by the recovery scan (activities.RecoverPayouts).
const PayoutSignal = "payouts-requested"

// PayoutQuery is the query that returns a PayoutsView: the payouts a
// PayoutWorkflow is working through and those it settled recently.
const PayoutQuery = "payouts"

// The operator actions on a user's payouts, each a Temporal Update of the
// user's PayoutWorkflow with a validator that rejects bad input before
// anything is written to history. Each is recorded in the workflow's
// history with who asked and why (the Web UI shows it).
const (
	// PayoutHoldUpdate (HoldRequest → HoldView) stops sending the user's
	// payouts until PayoutReleaseUpdate; a request already on the wire
	// finishes, and its retries stop.
	PayoutHoldUpdate = "hold"
	// PayoutReleaseUpdate (ReleaseRequest → HoldView) lifts the hold.
	PayoutReleaseUpdate = "release"
	// PayoutRetryUpdate (PayoutActionRequest → scorekeeper.Payout)
	// sends now a payout waiting for an operator, with its original
	// idempotency key.
	PayoutRetryUpdate = "retry"
	// PayoutCancelUpdate (PayoutActionRequest → scorekeeper.Payout)
	// cancels a payout that was never sent.
	PayoutCancelUpdate = "cancel"
)

// HoldRequest asks to hold a user's payouts.
type HoldRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// ReleaseRequest asks to release a user's payouts.
type ReleaseRequest struct {
	By string `json:"by"`
}

// PayoutActionRequest names one of the user's payouts to retry or cancel.
type PayoutActionRequest struct {
	TransactionID string `json:"transactionId"`
	// Reason is why (optional); a cancel records it with By.
	Reason string `json:"reason,omitempty"`
	By     string `json:"by"`
}

// HoldView is whether a user's payouts are on hold, as a hold or release
// left it: the answer of those Updates, which the web and the Temporal
// CLI read (a payload too, so kept apart from scorekeeper.PayoutHold).
type HoldView struct {
	UserID string `json:"userId"`
	Held   bool   `json:"held"`
	// Reason, By and HeldAt describe the hold; empty when not held.
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	HeldAt time.Time `json:"heldAt,omitzero"`
}

// UserIDSearchAttribute is the custom keyword search attribute UserId that
// makes each payout workflow findable by user in the Web UI and the CLI. The
// Temporal namespace must have it registered (UserId=Keyword).
var UserIDSearchAttribute = temporal.NewSearchAttributeKeyKeyword("UserId")

// PayoutWorkflowID is the workflow id of a user's PayoutWorkflow. A business
// key: signal-with-start on it finds the running workflow, so a user never
// has two, and that is what keeps the user's payouts serial.
func PayoutWorkflowID(userID string) string { return "payout-" + userID }

// PayoutWorkflow defaults, overridable through PayoutInput (tests use small
// values).
const (
	// DefaultPayoutBatchSize is how many requested payouts one listing
	// returns.
	DefaultPayoutBatchSize = 50
	// DefaultMaxPayoutsPerRun is how many sends a run makes before it
	// continues as new, which keeps its history bounded (each payout adds
	// about a dozen events).
	DefaultMaxPayoutsPerRun = 200
	// DefaultPayoutIdleTimeout is how long a workflow with nothing to pay
	// waits for a signal before completing. Completing is safe: the next
	// signal-with-start starts a new run.
	DefaultPayoutIdleTimeout = 2 * time.Minute
	// RecentPayoutsKept bounds the settled payouts a workflow remembers
	// (and carries across continue-as-new) for the "payouts" query.
	RecentPayoutsKept = 50
	// BlockedPayoutRetryInterval is how long a payout that needs an
	// operator (activities.ErrTypePayoutProviderConflict or
	// ErrTypePayoutInvalidRequest) waits before it is listed and sent again.
	BlockedPayoutRetryInterval = 10 * time.Minute
)

// PayoutState is one payout as a PayoutWorkflow sees it.
type PayoutState struct {
	TransactionID string             `json:"transactionId"`
	Amount        scorekeeper.Amount `json:"amount"`
	// CreatedAt is upstream's time of the request.
	CreatedAt time.Time `json:"createdAt"`
	// Status is requested while pending, then paid or failed as stored.
	Status     scorekeeper.PayoutStatus `json:"status"`
	ProviderID string                   `json:"providerId,omitempty"`
	// Reason is the provider's code and message for a failed payout.
	Reason string `json:"reason,omitempty"`
	// LastError says why a pending payout waits for an operator, or why a
	// settled one needs a look (the store already held another outcome).
	LastError string `json:"lastError,omitempty"`
	// SettledAt is the workflow time the outcome was recorded.
	SettledAt time.Time `json:"settledAt,omitzero"`
}

// PayoutInput starts or continues a user's PayoutWorkflow. Signal-with-start
// passes only UserID; the rest is carried across continue-as-new.
type PayoutInput struct {
	UserID string `json:"userId"`
	// Recent are the payouts settled by earlier runs, oldest first, at most
	// RecentPayoutsKept.
	Recent []PayoutState `json:"recent,omitempty"`
	// Paid, Failed and Canceled count the payouts settled by earlier runs.
	Paid     int `json:"paid,omitempty"`
	Failed   int `json:"failed,omitempty"`
	Canceled int `json:"canceled,omitempty"`
	// BatchSize, MaxPayoutsPerRun and IdleTimeout override the defaults
	// when positive.
	BatchSize        int           `json:"batchSize,omitempty"`
	MaxPayoutsPerRun int           `json:"maxPayoutsPerRun,omitempty"`
	IdleTimeout      time.Duration `json:"idleTimeout,omitempty"`
}

// PayoutResult is what a PayoutWorkflow settled before it went idle,
// earlier runs of the same chain included.
type PayoutResult struct {
	UserID   string `json:"userId"`
	Paid     int    `json:"paid"`
	Failed   int    `json:"failed"`
	Canceled int    `json:"canceled,omitempty"`
	// Recent are the last payouts settled, oldest first.
	Recent []PayoutState `json:"recent"`
}

// PayoutsView is the answer to PayoutQuery.
type PayoutsView struct {
	UserID string `json:"userId"`
	// Pending is the current batch still to settle, in the order it is
	// paid; the first one is in flight.
	Pending []PayoutState `json:"pending"`
	// Recent are the last payouts settled, oldest first.
	Recent   []PayoutState `json:"recent"`
	Paid     int           `json:"paid"`
	Failed   int           `json:"failed"`
	Canceled int           `json:"canceled,omitempty"`
	// Hold is set while an operator holds the user's payouts.
	Hold *activities.PayoutHold `json:"hold,omitempty"`
	// Blocked is the payout waiting for an operator (a retry sends it).
	Blocked string `json:"blocked,omitempty"`
}

// PayoutWorkflow pays a user's payout requests, one at a time, oldest first,
// each exactly once. There is one per user (workflow id payout-<userId>,
// started or woken by signal-with-start of PayoutSignal), so a user's
// payouts never race each other.
//
// For each requested payout listed from the store it sends the payout
// (SendPayout, Idempotency-Key = transaction id) and records the answer
// (RecordPayoutResult). The provider pays a key at most once and the store
// changes a payout's status at most once, so a crash or retry anywhere in
// between repeats work and never pays or counts twice. A payout is marked
// failed only on the provider's 422; every other trouble leaves it
// requested and is retried.
//
// With nothing left to pay the workflow waits for a signal, and completes
// after an idle timeout. After MaxPayoutsPerRun sends, or when Temporal
// suggests it, it continues as new, carrying its recent payouts and
// counts, so its history stays bounded however many payouts a user has.
func PayoutWorkflow(ctx workflow.Context, in PayoutInput) (PayoutResult, error) {
	if in.UserID == "" {
		return PayoutResult{}, temporal.NewNonRetryableApplicationError("payout workflow needs a user id", "InvalidPayoutInput", nil)
	}
	r := newPayoutRun(ctx, in)
	if err := r.setup(); err != nil {
		return r.result(), err
	}
	err := r.run()
	return r.result(), err
}

// payoutRun is one run of PayoutWorkflow: its settings, the activity
// contexts of its steps, and the state the query handler reads.
type payoutRun struct {
	ctx    workflow.Context
	in     PayoutInput
	logger log.Logger

	batchSize, maxPerRun int
	idle                 time.Duration

	dbCtx, sendCtx workflow.Context
	signals        workflow.ReceiveChannel
	// wake ends a wait for work (a release); retryNow ends an operator
	// pause (a retry). Both hold one value at most.
	wake, retryNow workflow.Channel
	// hold is the user's hold as last listed or changed; blocked is the
	// payout an operator pause waits on.
	hold    *activities.PayoutHold
	blocked string
	// stopSend cancels the send in progress (nil when none): a hold stops
	// its retries.
	stopSend workflow.CancelFunc
	// sends counts this run's SendPayout calls, answered or not.
	sends int

	pending  []PayoutState
	recent   []PayoutState
	paid     int
	failed   int
	canceled int
}

func newPayoutRun(ctx workflow.Context, in PayoutInput) *payoutRun {
	return &payoutRun{
		ctx:       ctx,
		in:        in,
		logger:    workflow.GetLogger(ctx),
		batchSize: positiveOr(in.BatchSize, DefaultPayoutBatchSize),
		maxPerRun: positiveOr(in.MaxPayoutsPerRun, DefaultMaxPayoutsPerRun),
		idle:      positiveOr(in.IdleTimeout, DefaultPayoutIdleTimeout),
		dbCtx:     workflow.WithActivityOptions(ctx, payoutDBActivityOptions()),
		sendCtx:   workflow.WithActivityOptions(ctx, sendPayoutActivityOptions()),
		recent:    in.Recent,
		paid:      in.Paid,
		failed:    in.Failed,
		canceled:  in.Canceled,
		wake:      workflow.NewBufferedChannel(ctx, 1),
		retryNow:  workflow.NewBufferedChannel(ctx, 1),
	}
}

// payoutDBActivityOptions are those of listing and recording, which touch
// only the database. Both are idempotent, so they retry without limit: a
// database outage is waited out, never turned into a skipped or
// double-recorded payout.
func payoutDBActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	}
}

// sendPayoutActivityOptions are those of the provider call. Every attempt
// sends the same Idempotency-Key, so retrying is always safe, and giving up
// never is: the only way out would be to mark the payout failed without a
// definite answer (a timeout may hide a payment). Hence transient errors
// (429, 5xx, timeouts, transport) retry with capped exponential backoff, 1s
// to 5m, with no attempt limit and no ScheduleToClose; a 429's Retry-After
// replaces the backoff (NextRetryDelay). A 422 is not an error but a
// result, recorded as failed. StartToClose is above the client's own
// per-request timeout and only catches a lost worker. The two
// operator-needed errors are not retried here but handed to
// pauseForOperator, which keeps the payout requested and tries it again
// slowly.
func sendPayoutActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    0, // unlimited
			NonRetryableErrorTypes: []string{
				activities.ErrTypePayoutProviderConflict,
				activities.ErrTypePayoutInvalidRequest,
			},
		},
	}
}

// setup makes the run findable by user, answers PayoutQuery and listens
// for PayoutSignal.
func (r *payoutRun) setup() error {
	// Set at start by the starter too; upserting makes any run findable by
	// user however it was started.
	if err := workflow.UpsertTypedSearchAttributes(r.ctx, UserIDSearchAttribute.ValueSet(r.in.UserID)); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(r.ctx, PayoutQuery, func() (PayoutsView, error) {
		return r.view(), nil
	}); err != nil {
		return err
	}
	r.signals = workflow.GetSignalChannel(r.ctx, PayoutSignal)
	return r.setupUpdates()
}

// run pays batch after batch of listed payouts until it goes idle (nil)
// or continues as new (a continue-as-new error).
func (r *payoutRun) run() error {
	for {
		// Every signal received so far is answered by the listing below,
		// which reads the store after those payouts were committed.
		drainSignals(r.signals)
		batch, err := r.listBatch()
		if err != nil {
			return err
		}
		if len(batch) > 0 && r.hold == nil {
			if err := r.payBatch(batch); err != nil {
				return err
			}
			continue
		}
		if !r.waitForWork() {
			return r.finishHandlers()
		}
		// Woken: list again, unless history has grown so long that the
		// next run should (wake-ups alone add events too).
		if workflow.GetInfo(r.ctx).GetContinueAsNewSuggested() {
			return r.continueAsNew()
		}
	}
}

// listBatch reads the user's oldest requested payouts from the store.
func (r *payoutRun) listBatch() ([]activities.RequestedPayout, error) {
	var list activities.ListPayoutsResult
	err := workflow.ExecuteActivity(r.dbCtx, a.ListPayouts, activities.ListPayoutsInput{
		UserID: r.in.UserID,
		Limit:  r.batchSize,
	}).Get(r.ctx, &list)
	if err == nil {
		r.hold = list.Hold
	}
	return list.Payouts, err
}

// payBatch pays a listed batch in order. It stops early when a payout
// needs an operator (the next listing brings it back) and when the run
// should continue as new.
func (r *payoutRun) payBatch(batch []activities.RequestedPayout) error {
	r.pending = make([]PayoutState, len(batch))
	for i, p := range batch {
		r.pending[i] = PayoutState{TransactionID: p.TransactionID, Amount: p.Amount, CreatedAt: p.CreatedAt, Status: scorekeeper.PayoutRequested}
	}
	for len(r.pending) > 0 {
		if r.hold != nil {
			// Held meanwhile: send nothing more; the next listing says
			// when the hold is lifted.
			r.pending = nil
			return nil
		}
		if err := r.pay(&r.pending[0]); err != nil {
			return err
		}
		// Continue as new only between payouts, never with one half
		// done; the next run lists what is still requested.
		if r.sends >= r.maxPerRun || workflow.GetInfo(r.ctx).GetContinueAsNewSuggested() {
			return r.continueAsNew()
		}
	}
	return nil
}

// pay settles one payout: it sends it, then records the provider's answer,
// or pauses for an operator when the provider or the client refused it as
// sent.
func (r *payoutRun) pay(p *PayoutState) error {
	var sent activities.SendPayoutResult
	// A hold cancels the send: its retries (a provider outage retries
	// without limit) stop, and the payout stays requested, to be sent
	// again with the same key after the release. An attempt already on
	// the wire finishes; the key makes sending it again safe.
	sendCtx, stop := workflow.WithCancel(r.sendCtx)
	r.stopSend = stop
	err := workflow.ExecuteActivity(sendCtx, a.SendPayout, activities.SendPayoutInput{
		TransactionID: p.TransactionID,
		UserID:        r.in.UserID,
		Amount:        p.Amount,
	}).Get(r.ctx, &sent)
	r.stopSend = nil
	stop()
	r.sends++
	if err != nil && r.hold != nil && temporal.IsCanceledError(err) {
		return nil
	}
	if err == nil && sent.Settled {
		// Nothing was sent: the payout was canceled (or settled by
		// another worker) before its attempt.
		p.Status, p.ProviderID, p.Reason = sent.Status, sent.ProviderID, sent.Reason
		p.SettledAt = workflow.Now(r.ctx)
		r.settle(*p)
		return nil
	}
	if err == nil {
		return r.record(*p, sent)
	}
	problem, ok := needsOperator(err)
	if !ok {
		return err
	}
	return r.pauseForOperator(p, problem, err)
}

// pauseForOperator keeps a refused payout requested and waits
// BlockedPayoutRetryInterval before the next listing sends it again. The
// refusal is not an answer about the payout, so the user's later payouts
// wait behind it (oldest first). Re-listing after the pause picks up an
// operator's fix in the store as well as in the provider.
func (r *payoutRun) pauseForOperator(p *PayoutState, problem string, err error) error {
	p.LastError = problem
	r.logger.Error("payout needs an operator; it stays requested and is retried",
		"transactionId", p.TransactionID, "retryIn", BlockedPayoutRetryInterval, "error", err)
	r.blocked = p.TransactionID
	defer func() { r.blocked = "" }()
	// The timer is the one workflow.Sleep made before retries existed, so
	// recorded histories replay; a retry (PayoutRetryUpdate) ends the
	// wait early and cancels it.
	timerCtx, cancelTimer := workflow.WithCancel(r.ctx)
	defer cancelTimer()
	var slept error
	sel := workflow.NewSelector(r.ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, BlockedPayoutRetryInterval), func(f workflow.Future) { slept = f.Get(r.ctx, nil) })
	sel.AddReceive(r.retryNow, func(c workflow.ReceiveChannel, _ bool) { c.Receive(r.ctx, nil) })
	sel.Select(r.ctx)
	if slept != nil {
		return slept
	}
	r.pending = nil
	return nil
}

// record stores the provider's answer about p and settles p as stored. A
// store that already held the other outcome wins; the contradiction is
// kept on the payout for an operator.
func (r *payoutRun) record(p PayoutState, sent activities.SendPayoutResult) error {
	var rec activities.RecordPayoutResultResult
	err := workflow.ExecuteActivity(r.dbCtx, a.RecordPayoutResult, activities.RecordPayoutResultInput{
		TransactionID: p.TransactionID,
		Status:        sent.Status,
		ProviderID:    sent.ProviderID,
		Reason:        sent.Reason,
	}).Get(r.ctx, &rec)
	if err != nil {
		return err
	}
	p.Status, p.ProviderID, p.Reason = rec.Status, rec.ProviderID, rec.Reason
	p.LastError = ""
	p.SettledAt = workflow.Now(r.ctx)
	if rec.Conflict {
		p.LastError = "provider answered " + string(sent.Status) + " but the store already held " + string(rec.Status)
		r.logger.Error("payout outcome contradicts the store; left as stored for an operator",
			"transactionId", p.TransactionID, "answer", sent.Status, "stored", rec.Status)
	}
	r.settle(p)
	return nil
}

// waitForWork waits for PayoutSignal up to the idle timeout and reports
// whether one came. It drains the channel after the timer fires: a signal
// delivered in the same workflow task as the timer would otherwise be lost
// when the workflow completes. (One arriving while the completion is being
// recorded makes Temporal reject it and rerun the task, which then sees it
// here.)
func (r *payoutRun) waitForWork() bool {
	timerCtx, cancelTimer := workflow.WithCancel(r.ctx)
	defer cancelTimer()
	got := false
	sel := workflow.NewSelector(r.ctx)
	sel.AddReceive(r.signals, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(r.ctx, nil)
		got = true
	})
	sel.AddReceive(r.wake, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(r.ctx, nil)
		got = true
	})
	sel.AddFuture(workflow.NewTimer(timerCtx, r.idle), func(workflow.Future) {})
	sel.Select(r.ctx)
	if drainSignals(r.signals) > 0 {
		got = true
	}
	return got
}

// continueAsNew ends the run for a fresh one with the same settings and
// this run's counts and recent payouts. The new run lists the store first,
// so pending signals carry nothing it needs; draining them just keeps the
// SDK from reporting them as lost.
func (r *payoutRun) continueAsNew() error {
	if err := r.finishHandlers(); err != nil {
		return err
	}
	drainSignals(r.signals)
	next := r.in
	next.Recent, next.Paid, next.Failed, next.Canceled = r.recent, r.paid, r.failed, r.canceled
	return workflow.NewContinueAsNewError(r.ctx, PayoutWorkflow, next)
}

// finishHandlers waits for operator actions in progress to answer before
// the run ends: an action's caller gets the workflow's answer, never a
// run that ended under it. (Their effects are in the store, so the next
// run sees them.)
func (r *payoutRun) finishHandlers() error {
	return workflow.Await(r.ctx, func() bool { return workflow.AllHandlersFinished(r.ctx) })
}

// settle moves the first pending payout, now p, to the recent ones and
// counts its outcome.
func (r *payoutRun) settle(p PayoutState) {
	r.pending = r.pending[1:]
	switch p.Status {
	case scorekeeper.PayoutPaid:
		r.paid++
	case scorekeeper.PayoutFailed:
		r.failed++
	case scorekeeper.PayoutCanceled:
		r.canceled++
	}
	r.recent = append(r.recent, p)
	if n := len(r.recent); n > RecentPayoutsKept {
		r.recent = append([]PayoutState(nil), r.recent[n-RecentPayoutsKept:]...)
	}
}

func (r *payoutRun) view() PayoutsView {
	return PayoutsView{
		UserID:   r.in.UserID,
		Pending:  append([]PayoutState{}, r.pending...),
		Recent:   append([]PayoutState{}, r.recent...),
		Paid:     r.paid,
		Failed:   r.failed,
		Canceled: r.canceled,
		Hold:     r.hold,
		Blocked:  r.blocked,
	}
}

func (r *payoutRun) result() PayoutResult {
	return PayoutResult{UserID: r.in.UserID, Paid: r.paid, Failed: r.failed, Canceled: r.canceled, Recent: append([]PayoutState{}, r.recent...)}
}

// drainSignals consumes every signal already received and returns how many.
func drainSignals(signals workflow.ReceiveChannel) int {
	n := 0
	for signals.ReceiveAsync(nil) {
		n++
	}
	return n
}

// needsOperator reports whether a SendPayout error is one the provider or
// the client refused as sent, which retrying soon cannot fix, and returns
// the provider's or client's message for operators.
func needsOperator(err error) (string, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return "", false
	}
	switch appErr.Type() {
	case activities.ErrTypePayoutProviderConflict, activities.ErrTypePayoutInvalidRequest:
		return appErr.Message(), true
	}
	return "", false
}

// positiveOr is v when it is set (positive), def otherwise.
func positiveOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
