// Package activities holds the Temporal activities: every piece of sync and
// payout work that touches the network, the database or the clock. Each is
// idempotent, so Temporal's retries are always safe.
package activities

import (
	"context"
	"time"

	"scorekeeper/db"
	"scorekeeper/payout"
	"scorekeeper/syncplan"
	"scorekeeper/upstream"
)

// SyncConfig is the sync's share of the configuration.
type SyncConfig struct {
	// Start is where the first sync starts (SYNC_START).
	Start time.Time
	// Interval is the schedule interval (SYNC_INTERVAL).
	Interval time.Duration
	// Overlap is the window re-scanned for late items (SYNC_OVERLAP).
	Overlap time.Duration
	// PageSize is the limit asked of upstream (UPSTREAM_PAGE_SIZE).
	PageSize int
	// Budget is the upstream request budget shared by all workers.
	Budget db.Budget
	// LateCheck is how late coverage checks windows: syncplan.LateAuto
	// (the default), LateProbe or LateRescan.
	LateCheck string
	// Sleep waits d, or until ctx ends, inside an activity that polls
	// (FetchPage waiting for a budget slot, AwaitSync); nil waits on a
	// timer. The sync's simulation (syncsim), in virtual time, moves its
	// clock on by d at once instead.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (c SyncConfig) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Plan is the planner's configuration.
func (c SyncConfig) Plan() syncplan.Config {
	return syncplan.Config{
		Start:        c.Start,
		Interval:     c.Interval,
		Overlap:      c.Overlap,
		PageSize:     c.PageSize,
		Guard:        c.guard(),
		BudgetN:      c.Budget.N,
		BudgetWindow: c.Budget.Window(),
		LateCheck:    c.LateCheck,
	}
}

func (c SyncConfig) guard() time.Duration { return syncplan.GuardFor(c.Interval) }

// leaseTTL is how long the fetcher lease outlives its last renewal: longer
// than a fetcher ever goes without renewing (a wait of at most an
// interval, a fetch retry backing off up to a minute), so a live fetcher
// keeps it and a dead one frees it within minutes.
func (c SyncConfig) leaseTTL() time.Duration { return max(3*c.Interval, 2*time.Minute) }

// Activities holds the dependencies of every activity. The worker registers
// one value; workflows refer to its methods through a nil pointer.
type Activities struct {
	// Store is the database; the activities write through db's functions
	// on Store.DB() inside their own transactions.
	Store    *db.Store
	Upstream *upstream.Client
	Payouts  *payout.Client
	Sync     SyncConfig
	// PayoutStarter wakes users' payout workflows when a sync stores new
	// payout requests; nil disables it (the store stays the source of
	// truth, so a missed wake-up is caught by the recovery scan).
	PayoutStarter PayoutStarter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// PayoutStarter starts a user's PayoutWorkflow, or signals the running one
// that new payout requests are stored (Temporal signal-with-start), so a
// user never has two payout workflows.
type PayoutStarter interface {
	NotifyPayouts(ctx context.Context, userID string) error
}
