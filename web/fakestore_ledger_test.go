package web_test

import (
	"context"
	"slices"
	"strings"
	"time"

	"scorekeeper"
)

// The fake's ledger follows the documented contract of db.UserLedgerPage,
// db.SummaryAsOf and db.UserPayoutPage; whether the SQL keeps it is for
// the tests on a database (db/ledger_test.go, ledger_test.go).

// record keeps t in the ledger, stored at t0 (the seed's clock), and a
// payout's state. Called by apply with s.mu held.
func (s *fakeStore) record(t scorekeeper.Transaction) {
	e := scorekeeper.LedgerEntry{Transaction: t, SyncedAt: t0}
	if t.Type == scorekeeper.TxPayout {
		e.Status = scorekeeper.PayoutRequested
		s.payouts[t.ID] = scorekeeper.Payout{TransactionID: t.ID, UserID: t.UserID, Amount: t.Amount, Status: scorekeeper.PayoutRequested, CreatedAt: t.CreatedAt}
	}
	s.ledger = append(s.ledger, e)
}

// settle marks the user's oldest requested payout of amount paid, settled
// at its createdAt (as MustSeed pays one in a database). Called by pay
// with s.mu held.
func (s *fakeStore) settle(user string, amount scorekeeper.Amount) {
	for i, e := range s.ledger {
		p, ok := s.payouts[e.ID]
		if ok && p.UserID == user && p.Amount == amount && p.Status == scorekeeper.PayoutRequested {
			p.Status, p.ProviderID, p.SettledAt, p.Attempts = scorekeeper.PayoutPaid, "po_"+p.TransactionID, p.CreatedAt, 1
			s.payouts[e.ID] = p
			s.ledger[i].Status, s.ledger[i].SettledAt = scorekeeper.PayoutPaid, p.SettledAt
			return
		}
	}
}

// newestFirst orders by (createdAt, id), both descending.
func newestFirst(a, b time.Time, aID, bID string) int {
	if c := b.Compare(a); c != 0 {
		return c
	}
	return strings.Compare(bID, aID)
}

// afterCursor reports whether (at, id) comes after the cursor in a listing
// newest first (the zero cursor: everything does).
func afterCursor(c scorekeeper.LedgerCursor, at time.Time, id string) bool {
	return c.ID == "" || newestFirst(c.CreatedAt, at, c.ID, id) < 0
}

func (s *fakeStore) Ledger(ctx context.Context, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, 0, s.err
	}
	var match []scorekeeper.LedgerEntry
	for _, e := range s.ledger {
		if e.UserID == f.UserID && (f.Type == "" || e.Type == f.Type) &&
			(f.From.IsZero() || !e.CreatedAt.Before(f.From)) && (f.To.IsZero() || e.CreatedAt.Before(f.To)) {
			match = append(match, e)
		}
	}
	slices.SortFunc(match, func(a, b scorekeeper.LedgerEntry) int { return newestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	var page []scorekeeper.LedgerEntry
	for _, e := range match {
		if afterCursor(f.After, e.CreatedAt, e.ID) && len(page) < f.Limit {
			page = append(page, e)
		}
	}
	return page, len(match), nil
}

func (s *fakeStore) SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (scorekeeper.Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return scorekeeper.Summary{}, s.err
	}
	if _, ok := s.summaries[userID]; !ok {
		return scorekeeper.Summary{}, scorekeeper.Errorf(scorekeeper.ENotFound, "user %s not found", userID)
	}
	sum := scorekeeper.Summary{UserID: userID}
	for _, e := range s.ledger {
		if e.UserID != userID || e.CreatedAt.After(asOf) {
			continue
		}
		if err := sum.Add(e.Transaction); err != nil {
			return scorekeeper.Summary{}, err
		}
		if p, ok := s.payouts[e.ID]; ok && !p.SettledAt.IsZero() && !p.SettledAt.After(asOf) {
			sum.Settle(p.Status, p.Amount)
		}
	}
	return sum, nil
}

func (s *fakeStore) UserPayouts(ctx context.Context, f scorekeeper.UserPayoutFilter) ([]scorekeeper.Payout, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, 0, s.err
	}
	var all []scorekeeper.Payout
	for _, p := range s.payouts {
		if p.UserID == f.UserID {
			all = append(all, p)
		}
	}
	slices.SortFunc(all, func(a, b scorekeeper.Payout) int {
		return newestFirst(a.CreatedAt, b.CreatedAt, a.TransactionID, b.TransactionID)
	})
	var page []scorekeeper.Payout
	for _, p := range all {
		if afterCursor(f.After, p.CreatedAt, p.TransactionID) && len(page) < f.Limit {
			page = append(page, p)
		}
	}
	return page, len(all), nil
}
