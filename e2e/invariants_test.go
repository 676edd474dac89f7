package e2e

import (
	"context"
	"fmt"
	"testing"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// The invariants of design §8 as the end-to-end tests check them, each
// against a record the service does not keep itself: the mock's ground
// truth, its record of requests received, and the provider's own ledger.
// The plain tests require none to be violated; the chaos suite lists
// every violation of a run in its table.

// summariesOff is "" when every stored summary, recomputed from the stored
// transactions, equals the mock's ground truth, else the first difference.
// Payout workflows may have run: a request counts in payout until it
// fails, so payout + failed is the requested total.
func (w *world) summariesOff(ctx context.Context) string {
	got, err := db.RecomputeSummaries(ctx, w.db)
	if err != nil {
		return err.Error()
	}
	want := w.mock.Truth()
	if len(got) != len(want) {
		return fmt.Sprintf("%d users stored, %d in truth", len(got), len(want))
	}
	for u, ws := range want {
		if gs := got[u]; gs.Earned != ws.Earned || gs.Spent != ws.Spent || gs.Payout+gs.FailedPayout != ws.Payout {
			return fmt.Sprintf("user %s: stored %+v, truth %+v", u, gs, ws)
		}
	}
	return ""
}

// payoutsPending is "" when no payout waits to be paid, else how many
// users have some.
func (w *world) payoutsPending(ctx context.Context) string {
	_, pending, err := db.ListPayoutTotals(ctx, w.db, db.PayoutFilter{Status: "pending", Limit: 1})
	if err != nil {
		return err.Error()
	}
	if pending > 0 {
		return fmt.Sprintf("%d users with pending payouts", pending)
	}
	return ""
}

// storeViolations checks the store once it is exact: every summary
// reconciles with its transactions, every malformed item upstream served
// is quarantined once, and upstream never received more requests in a
// window than the budget allows (its own record).
func (w *world) storeViolations(ctx context.Context) []string {
	var out []string
	if drifts, err := dbtest.Drifts(ctx, w.db); err != nil {
		out = append(out, fmt.Sprintf("reconciliation: %v", err))
	} else {
		for i, dr := range drifts {
			if i == 10 {
				out = append(out, fmt.Sprintf("… and %d more drifted fields", len(drifts)-10))
				break
			}
			out = append(out, fmt.Sprintf("summary of %s drifted: %s stored %s, recomputed %s", dr.UserID, dr.Field, dr.Stored, dr.Recomputed))
		}
	}
	if n, err := db.QuarantineCount(ctx, w.db); err != nil || n != w.mock.MalformedCount() {
		out = append(out, fmt.Sprintf("quarantine holds %d items, upstream served %d malformed (%v)", n, w.mock.MalformedCount(), err))
	}
	if n := w.mock.MaxReceivedInWindow(w.per); n > budgetN {
		out = append(out, fmt.Sprintf("upstream received %d requests within %s (budget %d)", n, w.per, budgetN))
	}
	return out
}

// payoutViolations checks every payout upstream holds against the
// provider's ledger once none is pending: each paid at most once; a
// rejected user's payouts failed with a reason and were never paid; every
// other payout paid exactly once and stored as paid; and every user's
// paidOut equal to what the provider paid them.
func (w *world) payoutViolations(ctx context.Context) []string {
	var out []string
	byKey := w.mock.PaymentsByKey()
	for key, n := range byKey {
		if n > 1 {
			out = append(out, fmt.Sprintf("payout %s paid %d times", key, n))
		}
	}
	users := map[string]bool{}
	for _, tx := range w.mock.Transactions() {
		if tx.Type != scorekeeper.TxPayout {
			continue
		}
		users[tx.UserID] = true
		p, err := db.GetPayout(ctx, w.db, tx.ID)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("payout %s: %v", tx.ID, err))
		case w.mock.IsRejectedUser(tx.UserID):
			if p.Status != scorekeeper.PayoutFailed || p.Reason == "" || byKey[tx.ID] != 0 {
				out = append(out, fmt.Sprintf("payout %s of rejected user %s is %s (reason %q), paid %d times", tx.ID, tx.UserID, p.Status, p.Reason, byKey[tx.ID]))
			}
		case p.Status != scorekeeper.PayoutPaid || byKey[tx.ID] != 1:
			out = append(out, fmt.Sprintf("payout %s is %s, paid %d times by the provider", tx.ID, p.Status, byKey[tx.ID]))
		}
	}
	paid := w.mock.Paid()
	for u := range users {
		if s, err := db.GetSummary(ctx, w.db, u); err != nil || s.PaidOut != paid[u] {
			out = append(out, fmt.Sprintf("paidOut of %s is %s, the provider paid %s (%v)", u, s.PaidOut, paid[u], err))
		}
	}
	return out
}

// requireNone fails the test with every violation listed.
func requireNone(t testing.TB, violations []string) {
	t.Helper()
	for _, v := range violations {
		t.Errorf("violation: %s", v)
	}
	if len(violations) > 0 {
		t.FailNow()
	}
}
