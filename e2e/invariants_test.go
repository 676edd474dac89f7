package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
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
		if gs := got[u]; gs.Earned != ws.Earned || gs.Spent != ws.Spent || gs.Payout+gs.FailedPayout+gs.CanceledPayout != ws.Payout {
			return fmt.Sprintf("user %s: stored %+v, truth %+v", u, gs, ws)
		}
	}
	return ""
}

// payoutsPending is "" when no payout waits to be paid, else how many
// users have some.
func (w *world) payoutsPending(ctx context.Context) string {
	_, pending, err := db.ListPayoutTotals(ctx, w.db, scorekeeper.PayoutFilter{Status: "pending", Limit: 1})
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
// provider's ledger once none is pending (checkPayouts).
func (w *world) payoutViolations(ctx context.Context) []string {
	return checkPayouts(w.payoutEvidence(ctx))
}

// payoutEvidence is what checkPayouts judges: the mock's truth of
// upstream, the provider's own ledger, and what the store recorded.
type payoutEvidence struct {
	// txs are upstream's valid transactions (the mock's ground truth);
	// rejected says whether the provider closed a user's account.
	txs      []scorekeeper.Transaction
	rejected func(userID string) bool
	// payments is the provider's ledger: every payment it made, with its
	// idempotency key, user, amount and provider reference; conflicts the
	// requests it answered 409 (a key reused with another body).
	payments  []mockapi.Payment
	conflicts int
	// canceled are the payouts an operator canceled.
	canceled map[string]bool
	// stored is each payout transaction's stored payout, by transaction
	// id; paidOut the stored paidOut of each user with a payout or a
	// payment (absent: no summary stored); errs what could not be read.
	stored  map[string]scorekeeper.Payout
	paidOut map[string]scorekeeper.Amount
	errs    []string
}

// payoutEvidence reads the evidence of the world's payouts.
func (w *world) payoutEvidence(ctx context.Context) payoutEvidence {
	ev := payoutEvidence{
		txs:       w.mock.Transactions(),
		rejected:  w.mock.IsRejectedUser,
		payments:  w.mock.Payments(),
		conflicts: w.mock.IdempotencyConflicts(),
		canceled:  w.canceled,
		stored:    map[string]scorekeeper.Payout{},
		paidOut:   map[string]scorekeeper.Amount{},
	}
	users := map[string]bool{}
	for _, tx := range ev.txs {
		if tx.Type != scorekeeper.TxPayout {
			continue
		}
		users[tx.UserID] = true
		p, err := db.GetPayout(ctx, w.db, tx.ID)
		if err != nil {
			ev.errs = append(ev.errs, fmt.Sprintf("payout %s: %v", tx.ID, err))
			continue
		}
		ev.stored[tx.ID] = p
	}
	for _, p := range ev.payments {
		users[p.UserID] = true
	}
	for _, u := range sortedKeys(users) {
		s, err := db.GetSummary(ctx, w.db, u)
		switch {
		case scorekeeper.ErrorCode(err) == scorekeeper.ENotFound:
			// None stored: checkPayouts says so if the provider paid them.
		case err != nil:
			ev.errs = append(ev.errs, fmt.Sprintf("summary of %s: %v", u, err))
		default:
			ev.paidOut[u] = s.PaidOut
		}
	}
	return ev
}

// checkPayouts lists every violation of "paid at most once" (design §8.5)
// in ev, judged on the provider's ledger rather than on its replay of a
// repeated key (which can never pay a key twice, so a client paying one
// payout under two keys would pass a count by key):
//
//   - every payment's key is a payout transaction upstream holds, of the
//     same user and the same amount, and no key is paid twice;
//   - as many payments as payout transactions of users not rejected;
//   - no provider reference is shared by two payments;
//   - no idempotency-key conflict (409) was ever answered;
//   - a canceled payout is never paid and is stored canceled;
//   - a rejected user's payouts are never paid, and are stored failed
//     with a reason; every other payout is stored paid, with the
//     provider reference of its payment;
//   - every user's stored paidOut is what the ledger paid them.
func checkPayouts(ev payoutEvidence) []string {
	out := append([]string(nil), ev.errs...)
	payouts := map[string]scorekeeper.Transaction{}
	wantPayments := 0
	for _, tx := range ev.txs {
		if tx.Type == scorekeeper.TxPayout {
			payouts[tx.ID] = tx
			if !ev.rejected(tx.UserID) && !ev.canceled[tx.ID] {
				wantPayments++
			}
		}
	}

	byKey := map[string][]mockapi.Payment{}
	byRef := map[string][]mockapi.Payment{}
	paid := map[string]scorekeeper.Amount{}
	for _, p := range ev.payments {
		byKey[p.Key] = append(byKey[p.Key], p)
		byRef[p.ProviderID] = append(byRef[p.ProviderID], p)
		paid[p.UserID] += p.Amount
		tx, ok := payouts[p.Key]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("provider paid %s to %s under key %s (%s), which is no payout upstream holds", p.Amount, p.UserID, p.Key, p.ProviderID))
		case tx.UserID != p.UserID || tx.Amount != p.Amount:
			out = append(out, fmt.Sprintf("provider paid %s to %s under key %s (%s), a payout of %s to %s", p.Amount, p.UserID, p.Key, p.ProviderID, tx.Amount, tx.UserID))
		case ev.canceled[p.Key]:
			out = append(out, fmt.Sprintf("provider paid payout %s (%s to %s, %s), which an operator canceled", p.Key, p.Amount, p.UserID, p.ProviderID))
		case ev.rejected(tx.UserID):
			out = append(out, fmt.Sprintf("provider paid payout %s (%s to %s, %s) of rejected user %s", p.Key, p.Amount, p.UserID, p.ProviderID, tx.UserID))
		}
	}
	for _, key := range sortedKeys(byKey) {
		if ps := byKey[key]; len(ps) > 1 {
			out = append(out, fmt.Sprintf("payout %s paid %d times (%s)", key, len(ps), refsOf(ps, false)))
		}
	}
	for _, ref := range sortedKeys(byRef) {
		if ps := byRef[ref]; len(ps) > 1 {
			out = append(out, fmt.Sprintf("provider reference %s shared by %d payments (keys %s)", ref, len(ps), refsOf(ps, true)))
		}
	}
	if len(ev.payments) != wantPayments {
		msg := fmt.Sprintf("provider made %d payments, upstream holds %d payouts of users not rejected", len(ev.payments), wantPayments)
		if len(ev.canceled) > 0 {
			msg += fmt.Sprintf(" (%d more canceled)", len(ev.canceled))
		}
		out = append(out, msg)
	}
	if ev.conflicts != 0 {
		out = append(out, fmt.Sprintf("provider answered %d idempotency-key conflicts (409)", ev.conflicts))
	}

	for _, tx := range ev.txs {
		if tx.Type != scorekeeper.TxPayout {
			continue
		}
		p, ok := ev.stored[tx.ID]
		ps := byKey[tx.ID]
		switch {
		case !ok:
			// Not read (in errs).
		case p.UserID != tx.UserID || p.Amount != tx.Amount:
			out = append(out, fmt.Sprintf("payout %s stored as %s to %s, upstream holds %s to %s", tx.ID, p.Amount, p.UserID, tx.Amount, tx.UserID))
		case ev.canceled[tx.ID] || p.Status == scorekeeper.PayoutCanceled:
			if !ev.canceled[tx.ID] || p.Status != scorekeeper.PayoutCanceled || len(ps) != 0 {
				out = append(out, fmt.Sprintf("payout %s is %s (canceled by an operator: %v), paid %d times", tx.ID, p.Status, ev.canceled[tx.ID], len(ps)))
			}
		case ev.rejected(tx.UserID):
			if p.Status != scorekeeper.PayoutFailed || p.Reason == "" || len(ps) != 0 {
				out = append(out, fmt.Sprintf("payout %s of rejected user %s is %s (reason %q), paid %d times", tx.ID, tx.UserID, p.Status, p.Reason, len(ps)))
			}
		case p.Status != scorekeeper.PayoutPaid || len(ps) != 1:
			out = append(out, fmt.Sprintf("payout %s is %s, paid %d times by the provider", tx.ID, p.Status, len(ps)))
		case p.ProviderID != ps[0].ProviderID:
			out = append(out, fmt.Sprintf("payout %s stored as paid by %s, the provider paid it as %s", tx.ID, p.ProviderID, ps[0].ProviderID))
		}
	}
	for _, u := range sortedKeys(ev.paidOut) {
		if got := ev.paidOut[u]; got != paid[u] {
			out = append(out, fmt.Sprintf("paidOut of %s is %s, the provider paid %s", u, got, paid[u]))
		}
	}
	for _, u := range sortedKeys(paid) {
		if _, ok := ev.paidOut[u]; !ok {
			out = append(out, fmt.Sprintf("the provider paid %s to %s, who has no stored summary", paid[u], u))
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// refsOf lists payments' provider references, or their keys.
func refsOf(ps []mockapi.Payment, keys bool) string {
	var ss []string
	for _, p := range ps {
		if keys {
			ss = append(ss, p.Key)
		} else {
			ss = append(ss, p.ProviderID)
		}
	}
	return strings.Join(ss, ", ")
}

// expectedSummaries is what every user's summary must be once the store is
// exact and no payout is pending, from the two records the service does
// not keep: the mock's truth of upstream (earned, spent, payouts
// requested) and the provider's ledger. A rejected user's payouts all
// fail (the provider rejects every one), so their payout is 0 and their
// requests are failed; everyone's paidOut is what the ledger paid them.
func expectedSummaries(truth map[string]scorekeeper.Summary, rejected func(string) bool, payments []mockapi.Payment) map[string]scorekeeper.Summary {
	out := make(map[string]scorekeeper.Summary, len(truth))
	for u, t := range truth {
		s := scorekeeper.Summary{UserID: u, Earned: t.Earned, Spent: t.Spent, Payout: t.Payout}
		if rejected(u) {
			s.Payout, s.FailedPayout = 0, t.Payout
		}
		out[u] = s
	}
	for _, p := range payments {
		s := out[p.UserID]
		s.UserID = p.UserID
		s.PaidOut += p.Amount
		out[p.UserID] = s
	}
	return out
}

// summaryDiffs lists where got differs from want, at most 10 users, as
// "<what> summary of <user>: …". FailedPayout is compared when failed is
// set (the REST API does not serve it).
func summaryDiffs(what string, got, want map[string]scorekeeper.Summary, failed bool) []string {
	var out []string
	show := func(s scorekeeper.Summary) string {
		str := fmt.Sprintf("earned %s spent %s payout %s paidOut %s", s.Earned, s.Spent, s.Payout, s.PaidOut)
		if failed {
			str += fmt.Sprintf(" failed %s", s.FailedPayout)
		}
		return str
	}
	off := 0
	for _, u := range sortedKeys(want) {
		g, ok := got[u]
		w := want[u]
		switch {
		case !ok:
			off++
			if off <= 10 {
				out = append(out, fmt.Sprintf("%s summary of %s missing; truth and ledger: %s", what, u, show(w)))
			}
		case g.Earned != w.Earned || g.Spent != w.Spent || g.Payout != w.Payout || g.PaidOut != w.PaidOut || (failed && g.FailedPayout != w.FailedPayout):
			off++
			if off <= 10 {
				out = append(out, fmt.Sprintf("%s summary of %s: %s; truth and ledger: %s", what, u, show(g), show(w)))
			}
		}
	}
	for _, u := range sortedKeys(got) {
		if _, ok := want[u]; !ok {
			off++
			if off <= 10 {
				out = append(out, fmt.Sprintf("%s summary of %s, a user neither upstream nor the provider knows: %s", what, u, show(got[u])))
			}
		}
	}
	if off > 10 {
		out = append(out, fmt.Sprintf("… %d %s summaries off in all", off, what))
	}
	return out
}

// expected is expectedSummaries of the world now, the payouts an
// operator canceled taken out of payout (they are never paid).
func (w *world) expected() map[string]scorekeeper.Summary {
	out := expectedSummaries(w.mock.Truth(), w.mock.IsRejectedUser, w.mock.Payments())
	for _, tx := range w.mock.Transactions() {
		if w.canceled[tx.ID] {
			s := out[tx.UserID]
			s.Payout -= tx.Amount
			s.CanceledPayout += tx.Amount
			out[tx.UserID] = s
		}
	}
	return out
}

// storedSummaryViolations compares every stored summary, as stored (not
// recomputed), with the mock's truth and the provider's ledger. Call it
// once the store is exact and no payout is pending.
func (w *world) storedSummaryViolations(ctx context.Context) []string {
	got := map[string]scorekeeper.Summary{}
	for after := ""; ; {
		page, err := db.SummariesAfter(ctx, w.db, after, 1000)
		if err != nil {
			return []string{fmt.Sprintf("stored summaries: %v", err)}
		}
		for _, s := range page {
			got[s.UserID] = s
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].UserID
	}
	return summaryDiffs("stored", got, w.expected(), true)
}

// servedViolations compares the summary the web process at base serves
// for every user with the mock's truth and the provider's ledger, and
// each served balance with earned − spent − payout.
func (w *world) servedViolations(base string) []string {
	client := &http.Client{Timeout: 10 * time.Second}
	want := w.expected()
	got := make(map[string]scorekeeper.Summary, len(want))
	var out []string
	for _, u := range sortedKeys(want) {
		s, err := getSummary(client, base, u)
		if err != nil {
			return []string{fmt.Sprintf("served summaries: %v", err)}
		}
		if s.Balance != s.Earned-s.Spent-s.Payout {
			out = append(out, fmt.Sprintf("served summary of %s: balance %s is not earned %s − spent %s − payout %s", u, s.Balance, s.Earned, s.Spent, s.Payout))
		}
		got[u] = scorekeeper.Summary{UserID: u, Earned: s.Earned, Spent: s.Spent, Payout: s.Payout, PaidOut: s.PaidOut}
	}
	return append(out, summaryDiffs("served", got, want, false)...)
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

// Ensure checkPayouts fails on the regressions "paid at most once" is
// about, each judged on the provider's ledger: the same payout paid again
// under a second key (which a count of payments by key cannot see, the
// provider replaying a repeated key), twice under one key, a payment
// no payout asked for, a shared provider reference, an idempotency-key
// conflict, a rejected user paid, a payout never paid, a stored paidOut
// the ledger does not back; and passes the ledger of a correct run.
func TestCheckPayouts(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	amt := scorekeeper.MustParseAmount
	tx := func(id, user, typ, amount string) scorekeeper.Transaction {
		return scorekeeper.Transaction{ID: id, UserID: user, Type: scorekeeper.TxType(typ), Amount: amt(amount), CreatedAt: at}
	}
	clean := func() payoutEvidence {
		return payoutEvidence{
			txs: []scorekeeper.Transaction{
				tx("e1", "alice", "earned", "100"),
				tx("p1", "alice", "payout", "10.50"),
				tx("p2", "alice", "payout", "4"),
				tx("p3", "bob", "payout", "7.25"),
				tx("p4", "carol", "payout", "3"),
			},
			rejected: func(u string) bool { return u == "carol" },
			payments: []mockapi.Payment{
				{Key: "p1", UserID: "alice", Amount: amt("10.50"), ProviderID: "po_1"},
				{Key: "p2", UserID: "alice", Amount: amt("4"), ProviderID: "po_2"},
				{Key: "p3", UserID: "bob", Amount: amt("7.25"), ProviderID: "po_3"},
			},
			stored: map[string]scorekeeper.Payout{
				"p1": {TransactionID: "p1", UserID: "alice", Amount: amt("10.50"), Status: scorekeeper.PayoutPaid, ProviderID: "po_1"},
				"p2": {TransactionID: "p2", UserID: "alice", Amount: amt("4"), Status: scorekeeper.PayoutPaid, ProviderID: "po_2"},
				"p3": {TransactionID: "p3", UserID: "bob", Amount: amt("7.25"), Status: scorekeeper.PayoutPaid, ProviderID: "po_3"},
				"p4": {TransactionID: "p4", UserID: "carol", Amount: amt("3"), Status: scorekeeper.PayoutFailed, Reason: "account_closed"},
			},
			paidOut: map[string]scorekeeper.Amount{"alice": amt("14.50"), "bob": amt("7.25"), "carol": 0},
		}
	}
	require.Empty(t, checkPayouts(clean()), "a correct run")
	canceledRun := clean()
	canceledRun.canceled = map[string]bool{"p3": true}
	canceledRun.payments = canceledRun.payments[:2]
	canceledRun.paidOut["bob"] = 0
	canceledRun.stored["p3"] = scorekeeper.Payout{TransactionID: "p3", UserID: "bob", Amount: amt("7.25"), Status: scorekeeper.PayoutCanceled, Reason: "canceled by operator"}
	require.Empty(t, checkPayouts(canceledRun), "a correct run with a payout canceled")

	for _, c := range []struct {
		name   string
		mutate func(ev *payoutEvidence)
		want   []string
	}{
		{"PaidAgainUnderASecondKey", func(ev *payoutEvidence) {
			// A retry that sends p1 again under another key: the provider
			// pays it (a new key) and the store still records one payment.
			ev.payments = append(ev.payments, mockapi.Payment{Key: "p1-retry", UserID: "alice", Amount: amt("10.50"), ProviderID: "po_9"})
		}, []string{
			"provider paid 10.5 to alice under key p1-retry (po_9), which is no payout upstream holds",
			"provider made 4 payments, upstream holds 3 payouts of users not rejected",
			"paidOut of alice is 14.5, the provider paid 25",
		}},
		{"PaidTwiceUnderOneKey", func(ev *payoutEvidence) {
			ev.payments = append(ev.payments, mockapi.Payment{Key: "p3", UserID: "bob", Amount: amt("7.25"), ProviderID: "po_8"})
			ev.paidOut["bob"] = amt("14.50")
		}, []string{
			"payout p3 paid 2 times (po_3, po_8)",
			"provider made 4 payments, upstream holds 3 payouts of users not rejected",
			"payout p3 is paid, paid 2 times by the provider",
		}},
		{"PaidAnotherAmount", func(ev *payoutEvidence) {
			ev.payments[1].Amount = amt("40")
			ev.paidOut["alice"] = amt("50.50")
		}, []string{"provider paid 40 to alice under key p2 (po_2), a payout of 4 to alice"}},
		{"SharedProviderReference", func(ev *payoutEvidence) {
			ev.payments[2].ProviderID = "po_1"
			ev.stored["p3"] = scorekeeper.Payout{TransactionID: "p3", UserID: "bob", Amount: amt("7.25"), Status: scorekeeper.PayoutPaid, ProviderID: "po_1"}
		}, []string{"provider reference po_1 shared by 2 payments (keys p1, p3)"}},
		{"IdempotencyConflict", func(ev *payoutEvidence) { ev.conflicts = 1 },
			[]string{"provider answered 1 idempotency-key conflicts (409)"}},
		{"RejectedUserPaid", func(ev *payoutEvidence) {
			ev.payments = append(ev.payments, mockapi.Payment{Key: "p4", UserID: "carol", Amount: amt("3"), ProviderID: "po_4"})
		}, []string{
			"provider paid payout p4 (3 to carol, po_4) of rejected user carol",
			"payout p4 of rejected user carol is failed (reason \"account_closed\"), paid 1 times",
			"paidOut of carol is 0, the provider paid 3",
		}},
		{"NeverPaid", func(ev *payoutEvidence) {
			ev.payments = ev.payments[:2]
			ev.paidOut["bob"] = 0
		}, []string{
			"provider made 2 payments, upstream holds 3 payouts of users not rejected",
			"payout p3 is paid, paid 0 times by the provider",
		}},
		{"StoredAsPaidByAnotherReference", func(ev *payoutEvidence) {
			p := ev.stored["p2"]
			p.ProviderID = "po_7"
			ev.stored["p2"] = p
		}, []string{"payout p2 stored as paid by po_7, the provider paid it as po_2"}},
		{"PaidOutNotBackedByTheLedger", func(ev *payoutEvidence) { ev.paidOut["bob"] = amt("14.50") },
			[]string{"paidOut of bob is 14.5, the provider paid 7.25"}},
		{"CanceledButPaid", func(ev *payoutEvidence) {
			// An operator canceled p3, yet the provider paid it.
			ev.canceled = map[string]bool{"p3": true}
			p := ev.stored["p3"]
			p.Status, p.ProviderID = scorekeeper.PayoutCanceled, ""
			ev.stored["p3"] = p
		}, []string{
			"provider paid payout p3 (7.25 to bob, po_3), which an operator canceled",
			"provider made 3 payments, upstream holds 2 payouts of users not rejected (1 more canceled)",
			"payout p3 is canceled (canceled by an operator: true), paid 1 times",
		}},
		{"CanceledUnasked", func(ev *payoutEvidence) {
			// Stored canceled, though no operator canceled it.
			ev.payments = ev.payments[:2]
			ev.paidOut["bob"] = 0
			p := ev.stored["p3"]
			p.Status, p.ProviderID = scorekeeper.PayoutCanceled, ""
			ev.stored["p3"] = p
		}, []string{"payout p3 is canceled (canceled by an operator: false), paid 0 times"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := clean()
			c.mutate(&ev)
			got := checkPayouts(ev)
			t.Logf("violations:\n\t%s", strings.Join(got, "\n\t"))
			require.NotEmpty(t, got)
			for _, w := range c.want {
				require.Contains(t, got, w)
			}
		})
	}
}
