package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/syncplan"
)

// FetcherLease is the lease the sync's one fetcher holds (see
// activities.AcquireFetcher); SyncStatus.Fetcher is its holder.
const FetcherLease = "transactions-fetcher"

// ReadSyncStatus reads the sync's status, every figure on the database's
// clock; b is the upstream budget (its N 0: no budget figures).
func ReadSyncStatus(ctx context.Context, d bun.IDB, b Budget) (scorekeeper.SyncStatus, error) {
	var out scorekeeper.SyncStatus
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
	out.BudgetSpent = map[scorekeeper.BudgetKind]int{}
	out.BudgetLimit, out.BudgetWindow = b.N, b.Per
	if b.N > 0 {
		if out.BudgetUsed, err = b.Used(ctx, d, now); err != nil {
			return out, err
		}
		spent, err := b.Spent(ctx, d, now.Add(-time.Hour))
		if err != nil {
			return out, err
		}
		for _, k := range scorekeeper.BudgetKinds {
			out.BudgetSpent[k] = spent[string(k)]
		}
	}
	counters, err := Counters(ctx, d)
	if err != nil {
		return out, err
	}
	out.Applied = map[scorekeeper.TxType]int64{}
	for _, t := range scorekeeper.TxTypes {
		out.Applied[t] = counters[CounterApplied][string(t)]
	}
	out.PayoutsEntered = map[scorekeeper.PayoutStatus]int64{}
	for _, st := range scorekeeper.PayoutStatuses {
		out.PayoutsEntered[st] = counters[CounterPayouts][string(st)]
	}
	out.UpstreamRequests = map[string]int64{}
	for code, n := range counters[CounterUpstreamRequests] {
		out.UpstreamRequests[code] = n
	}
	out.QuarantinedTotal = counters[CounterQuarantined][""]
	out.PagesFetchedTwice = counters[CounterPagesFetchedTwice][""]
	out.DriftedUsers = counters[CounterReconcileDrift][""]
	if l, ok, err := GetLease(ctx, d, FetcherLease); err != nil {
		return out, err
	} else if ok {
		out.Fetcher = l.Holder
	}
	if out.Quarantined, err = QuarantineCount(ctx, d); err != nil {
		return out, err
	}
	if out.PayoutsHeldUsers, err = CountPayoutHolds(ctx, d); err != nil {
		return out, err
	}
	if out.PayoutsOverdue, err = OverduePayouts(ctx, d, now.Add(-scorekeeper.PayoutOverdueAfter)); err != nil {
		return out, err
	}
	return out, nil
}
