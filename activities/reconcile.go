package activities

import (
	"context"

	"go.temporal.io/sdk/activity"

	"scorekeeper"
	"scorekeeper/db"
)

// ReconcilePageInput asks for one page of a reconciliation.
type ReconcilePageInput struct {
	// After is the last user id of the previous page ("" to start).
	After string `json:"after"`
	// Limit is the page size.
	Limit int `json:"limit"`
	// Repair rewrites drifted summaries to the recomputed values.
	Repair bool `json:"repair"`
}

// ReconcilePageResult is what one page found.
type ReconcilePageResult struct {
	Checked  int                 `json:"checked"`
	Drifted  []scorekeeper.Drift `json:"drifted,omitempty"`
	Repaired int                 `json:"repaired"`
	// Next is where the next page starts; empty after the last page.
	Next string `json:"next,omitempty"`
}

// ReconcilePage recomputes a page of users' summaries from their stored
// transactions and payouts and compares them with the stored summaries
// (db.ReconcileUsers); with Repair it rewrites the drifted ones.
func (a *Activities) ReconcilePage(ctx context.Context, in ReconcilePageInput) (ReconcilePageResult, error) {
	p, err := db.ReconcileUsers(ctx, a.Store.DB(), in.After, max(in.Limit, 1), in.Repair, a.now())
	if err != nil {
		return ReconcilePageResult{}, err
	}
	out := ReconcilePageResult{Checked: p.Checked, Drifted: p.Drifts, Repaired: p.Repaired, Next: p.Next}
	if len(out.Drifted) > 0 {
		activity.GetLogger(ctx).Warn("summaries drifted from their transactions", "fields", len(out.Drifted), "repaired", out.Repaired)
	}
	return out, nil
}

// RecordReconcileInput is a finished reconciliation's outcome.
type RecordReconcileInput struct {
	// DriftedUsers is how many users had a drifted summary.
	DriftedUsers int `json:"driftedUsers"`
}

// RecordReconcile stores the outcome for scorekeeper_reconcile_drift_users,
// which every process reports from the database.
func (a *Activities) RecordReconcile(ctx context.Context, in RecordReconcileInput) error {
	return db.SetCounter(ctx, a.Store.DB(), db.CounterReconcileDrift, "", int64(in.DriftedUsers))
}
