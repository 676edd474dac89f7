package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/syncplan"
)

// PayoutOverdueAfter is how long a payout may stay requested before it
// counts as overdue (SyncStatus.PayoutsOverdue; the dashboard alerts on
// it). A healthy provider pays within seconds; retries back off to a
// few minutes.
const PayoutOverdueAfter = 15 * time.Minute

// FetcherLease is the lease the sync's one fetcher holds (see
// activities.AcquireFetcher); SyncStatus.Fetcher is its holder.
const FetcherLease = "transactions-fetcher"

// BudgetKinds are the kinds of upstream request the budget's use is
// reported by, in the order reports list them.
var BudgetKinds = []syncplan.Kind{syncplan.Fresh, syncplan.Rescan, syncplan.Probe}

// SyncStatus is the sync's state as the database holds it, read in one
// place with every figure on the database's clock: GET /api/sync/status
// and /metrics both serve it, so they cannot disagree.
type SyncStatus struct {
	// Now is the database's clock at the read.
	Now time.Time
	// SyncedThrough is the watermark; zero before the first sync.
	SyncedThrough time.Time
	// LateCoveredThrough is late coverage; zero before it starts.
	LateCoveredThrough time.Time
	// BudgetUsed requests were granted in the budget period ending now;
	// BudgetSpent counts the last hour's by kind (BudgetKinds).
	BudgetUsed  int
	BudgetSpent map[syncplan.Kind]int
	// Counters are the monotonic counters (Counters).
	Counters map[string]map[string]int64
	// Fetcher holds the fetcher lease; "" when no sync fetches.
	Fetcher string
	// Quarantined counts the distinct malformed items kept.
	Quarantined int
	// PayoutsOverdue counts payouts requested more than
	// PayoutOverdueAfter ago and still neither paid nor failed.
	PayoutsOverdue int
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

// ReadSyncStatus reads the sync's status; b is the upstream budget (its N
// 0: no budget figures).
func ReadSyncStatus(ctx context.Context, d bun.IDB, b Budget) (SyncStatus, error) {
	var out SyncStatus
	now, err := Now(ctx, d)
	if err != nil {
		return out, err
	}
	out.Now = now
	st, err := GetSyncState(ctx, d, TransactionsStream)
	switch {
	case err == nil:
		out.SyncedThrough = st.SyncedThrough.UTC()
		if late, ok := syncplan.LateCoverage(st.Cursor); ok {
			out.LateCoveredThrough = late.UTC()
		}
	case scorekeeper.ErrorCode(err) != scorekeeper.ENotFound:
		return out, err
	}
	out.BudgetSpent = map[syncplan.Kind]int{}
	if b.N > 0 {
		if out.BudgetUsed, err = b.Used(ctx, d, now); err != nil {
			return out, err
		}
		spent, err := b.Spent(ctx, d, now.Add(-time.Hour))
		if err != nil {
			return out, err
		}
		for _, k := range BudgetKinds {
			out.BudgetSpent[k] = spent[string(k)]
		}
	}
	if out.Counters, err = Counters(ctx, d); err != nil {
		return out, err
	}
	if l, ok, err := GetLease(ctx, d, FetcherLease); err != nil {
		return out, err
	} else if ok {
		out.Fetcher = l.Holder
	}
	if out.Quarantined, err = QuarantineCount(ctx, d); err != nil {
		return out, err
	}
	if out.PayoutsOverdue, err = OverduePayouts(ctx, d, now.Add(-PayoutOverdueAfter)); err != nil {
		return out, err
	}
	return out, nil
}
