package scorekeeper

import (
	"context"
	"time"
)

// Syncer starts syncs on demand and reports on them; worker.Client
// implements it over Temporal.
type Syncer interface {
	// StartSync starts a sync, or joins the one running, and returns its
	// run. It returns once the request is recorded, not when data is in.
	StartSync(ctx context.Context) (SyncRun, error)
	// WaitSync waits for the run to finish and returns what it did. It
	// returns ctx's error when ctx ends first; the sync goes on.
	WaitSync(ctx context.Context, run SyncRun) (SyncStats, error)
	// Status reports the sync's state: the store's SyncStatus with the
	// last run filled in.
	Status(ctx context.Context) (SyncStatus, error)
}

// Reconciler runs reconciliations (invariant 2: every stored summary
// equals the fold of its user's transactions); worker.Client implements
// it over Temporal.
type Reconciler interface {
	// StartReconcile starts a reconciliation (repair: rewrite drifted
	// summaries), or joins the one running, and returns its run.
	StartReconcile(ctx context.Context, repair bool) (SyncRun, error)
	// WaitReconcile waits for the run to finish and returns its report.
	WaitReconcile(ctx context.Context, run SyncRun) (ReconcileReport, error)
}

// SyncRun identifies one workflow run started on demand.
type SyncRun struct {
	// WorkflowID is the workflow's id (the manual sync's is fixed, so
	// concurrent requests join one run).
	WorkflowID string
	// RunID is the run's id.
	RunID string
}

// SyncRunInfo describes the most recent sync run, as the workflow service
// reports it.
type SyncRunInfo struct {
	WorkflowID string
	RunID      string
	// Status is running, completed, failed, canceled, terminated,
	// continued_as_new or timed_out.
	Status    string
	StartedAt time.Time
	// ClosedAt is nil while the run is open.
	ClosedAt *time.Time
	// Stats is the run's result once it completed.
	Stats *SyncStats
}

// DefaultSyncInterval is SYNC_INTERVAL's default: the schedule's interval,
// which a sync started without one (by hand, from the Web UI) also uses.
const DefaultSyncInterval = time.Minute

// BudgetKind is what an upstream request was for; the budget records
// every grant under one.
type BudgetKind string

// The kinds of upstream request, as the planner issues them and the budget
// reports them.
const (
	// BudgetFresh pages read new data past the watermark.
	BudgetFresh BudgetKind = "fresh"
	// BudgetRescan pages re-read windows late items may have reached.
	BudgetRescan BudgetKind = "rescan"
	// BudgetProbe requests count a window's items without reading them.
	BudgetProbe BudgetKind = "probe"
)

// BudgetKinds are the kinds in the order reports list them.
var BudgetKinds = []BudgetKind{BudgetFresh, BudgetRescan, BudgetProbe}

// PayoutOverdueAfter is how long a payout may stay requested before it
// counts as overdue (SyncStatus.PayoutsOverdue; the dashboard alerts on
// it). A healthy provider pays within seconds; retries back off to a few
// minutes.
const PayoutOverdueAfter = 15 * time.Minute

// SyncStatus is the sync's state, read in one place (Store.SyncStatus)
// with every figure on the store's clock: GET /api/sync/status and
// /metrics both serve it, so they cannot disagree.
type SyncStatus struct {
	// Now is the store's clock at the read.
	Now time.Time
	// SyncedThrough is the watermark; zero before the first sync.
	SyncedThrough time.Time
	// LateCoveredThrough is late coverage; zero before it starts.
	LateCoveredThrough time.Time

	// BudgetLimit upstream requests are allowed per BudgetWindow
	// (UPSTREAM_RATE; 0: no budget figures); BudgetUsed were granted in
	// the window ending now; BudgetSpent counts the last hour's by kind,
	// every kind of BudgetKinds present.
	BudgetLimit  int
	BudgetWindow time.Duration
	BudgetUsed   int
	BudgetSpent  map[BudgetKind]int

	// Fetcher holds the fetcher lease; "" when no sync fetches.
	Fetcher string
	// Quarantined counts the distinct malformed items kept.
	Quarantined int
	// PayoutsOverdue counts payouts requested more than
	// PayoutOverdueAfter ago and still neither paid nor failed.
	PayoutsOverdue int
	// PayoutsHeldUsers counts users whose payouts an operator holds.
	PayoutsHeldUsers int

	// The monotonic counters, since the store was created.
	//
	// Applied counts transactions stored and counted, by type.
	Applied map[TxType]int64
	// QuarantinedTotal counts malformed items quarantined (distinct).
	QuarantinedTotal int64
	// PayoutsEntered counts payouts entering each status.
	PayoutsEntered map[PayoutStatus]int64
	// UpstreamRequests counts upstream requests by HTTP status code
	// ("error": no response).
	UpstreamRequests map[string]int64
	// PagesFetchedTwice counts upstream pages answered twice for one
	// request (an answer lost after it came).
	PagesFetchedTwice int64
	// DriftedUsers is the number of users whose stored summary differed
	// from their transactions at the last reconciliation.
	DriftedUsers int64

	// LastRun is the most recent sync run; the Syncer fills it, nil when
	// there is none.
	LastRun *SyncRunInfo
}

// Lag is how far the watermark is behind now (false before any sync).
func (s SyncStatus) Lag() (time.Duration, bool) {
	if s.SyncedThrough.IsZero() {
		return 0, false
	}
	return max(0, s.Now.Sub(s.SyncedThrough)), true
}

// LateLag is how far late coverage is behind now (false before it
// starts).
func (s SyncStatus) LateLag() (time.Duration, bool) {
	if s.LateCoveredThrough.IsZero() {
		return 0, false
	}
	return max(0, s.Now.Sub(s.LateCoveredThrough)), true
}

// PayoutOperator carries out an operator's actions on a user's payouts,
// each answered by the user's payout workflow once it is done. Errors:
// ENotFound for an unknown payout (or user, for a hold), EConflict for an
// action the payout's state does not allow, EInvalid for bad input.
type PayoutOperator interface {
	// HoldPayouts stops sending the user's payouts until released.
	HoldPayouts(ctx context.Context, userID, reason, by string) (PayoutHold, error)
	// ReleasePayouts lifts a hold; the user's payouts are sent again.
	ReleasePayouts(ctx context.Context, userID, by string) error
	// RetryPayout sends now a payout waiting for an operator, with its
	// original idempotency key.
	RetryPayout(ctx context.Context, userID, payoutID, by string) (Payout, error)
	// CancelPayout cancels a payout that was never sent.
	CancelPayout(ctx context.Context, userID, payoutID, reason, by string) (Payout, error)
}
