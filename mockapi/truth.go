package mockapi

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"scorekeeper"
)

// Truth returns, per user, what a correct consumer that has synced
// everything upstream serves right now must hold: Earned, Spent and Payout
// summed over the distinct VALID transactions visible now (createdAt <= now,
// and for late items createdAt + LateDelay <= now). Duplicates count once;
// malformed items never count. PaidOut and FailedPayout are left zero: they
// depend on the payout provider, whose ledger is Paid and Rejected.
//
// Here and in the other ground-truth methods, now is the mock's data clock:
// the real clock less Config.ClockSkew, as GET /transactions sees it.
func (s *Server) Truth() map[string]scorekeeper.Summary {
	return s.truth(s.dataNow(), true)
}

// TruthAll is Truth ignoring the late delay: every valid transaction whose
// createdAt is <= now, whether upstream shows it yet or not. It is what
// Truth will become once LateDelay has passed (for the same items).
func (s *Server) TruthAll() map[string]scorekeeper.Summary {
	return s.truth(s.dataNow(), false)
}

func (s *Server) truth(now time.Time, visibleOnly bool) map[string]scorekeeper.Summary {
	out := make(map[string]scorekeeper.Summary)
	s.each(now, visibleOnly, func(e *entry) {
		if e.tx < 0 {
			return
		}
		tx := s.gen.txs[e.tx]
		sum := out[tx.UserID]
		sum.UserID = tx.UserID
		if err := sum.Add(tx); err != nil {
			// The generator makes valid transactions of modest amounts.
			panic("mockapi: truth: " + err.Error())
		}
		out[tx.UserID] = sum
	})
	return out
}

// each calls fn for every original (non-duplicate) entry that exists at now
// — visible at now if visibleOnly, else merely createdAt <= now — with s.mu
// held for reading.
func (s *Server) each(now time.Time, visibleOnly bool, fn func(*entry)) {
	nowMs := now.UnixMilli()
	s.ensureLive(nowMs)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.gen.entries {
		e := &s.gen.entries[i]
		if e.created > nowMs {
			break // sorted by createdAt
		}
		if e.dup || (visibleOnly && e.visible > nowMs) {
			continue
		}
		fn(e)
	}
}

// counts returns the distinct valid and malformed items visible now, and
// all generated so far (including those not yet visible).
func (s *Server) counts(now time.Time) (valid, malformed, validAll, malformedAll int) {
	s.each(now, true, func(e *entry) {
		if e.tx >= 0 {
			valid++
		} else {
			malformed++
		}
	})
	s.mu.RLock()
	defer s.mu.RUnlock()
	return valid, malformed, len(s.gen.txs), len(s.gen.malformed)
}

// ValidCount returns how many distinct valid transactions are visible now:
// the number of transactions a fully synced consumer stores.
func (s *Server) ValidCount() int {
	v, _, _, _ := s.counts(s.dataNow())
	return v
}

// MalformedCount returns how many distinct malformed items are visible
// now: the number a fully synced consumer has quarantined (deduped by raw
// JSON, which is unique per item).
func (s *Server) MalformedCount() int {
	_, m, _, _ := s.counts(s.dataNow())
	return m
}

// Transactions returns the distinct valid transactions visible now, sorted
// by createdAt then id.
func (s *Server) Transactions() []scorekeeper.Transaction {
	var out []scorekeeper.Transaction
	s.each(s.dataNow(), true, func(e *entry) {
		if e.tx >= 0 {
			out = append(out, s.gen.txs[e.tx])
		}
	})
	slices.SortFunc(out, func(a, b scorekeeper.Transaction) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Malformed returns the distinct malformed items visible now, sorted by
// their (hidden) createdAt then raw JSON.
func (s *Server) Malformed() []MalformedItem {
	var out []MalformedItem
	s.each(s.dataNow(), true, func(e *entry) {
		if e.mal >= 0 {
			out = append(out, s.gen.malformed[e.mal])
		}
	})
	slices.SortFunc(out, func(a, b MalformedItem) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Raw, b.Raw)
	})
	return out
}

// truthJSON is the wire form of one user's ground truth.
type truthJSON struct {
	Earned  scorekeeper.Amount `json:"earned"`
	Spent   scorekeeper.Amount `json:"spent"`
	Payout  scorekeeper.Amount `json:"payout"`
	Balance scorekeeper.Amount `json:"balance"`
	PaidOut scorekeeper.Amount `json:"paidOut"`
}

// handleTruth serves GET /_mock/truth: Truth (or TruthAll with ?all=true)
// with the provider's paid totals, so a test against a mock in another
// process can check scorekeeper too.
func (s *Server) handleTruth(w http.ResponseWriter, r *http.Request) {
	now := s.dataNow()
	all := r.URL.Query().Get("all") == "true"
	sums := s.truth(now, !all)
	paid := s.Paid()
	users := make(map[string]truthJSON, len(sums))
	for u, sum := range sums {
		users[u] = truthJSON{Earned: sum.Earned, Spent: sum.Spent, Payout: sum.Payout, Balance: sum.Balance(), PaidOut: paid[u]}
	}
	v, m, _, _ := s.counts(now)
	writeJSON(w, http.StatusOK, map[string]any{
		"asOf":           now,
		"validCount":     v,
		"malformedCount": m,
		"users":          users,
	})
}

// HiddenAt counts the valid items that existed at t (createdAt ≤ t) but
// were not yet visible then, because they are late. A consumer that read
// their window at t missed them; only a later re-scan finds them. t is on
// the data clock (the real clock less Config.ClockSkew), as Start is.
func (s *Server) HiddenAt(t time.Time) int {
	tMs := t.UnixMilli()
	n := 0
	s.each(t, false, func(e *entry) {
		if e.tx >= 0 && e.visible > tMs {
			n++
		}
	})
	return n
}

// Owed returns the ids of the valid transactions a consumer must have
// stored once it claims data through watermark (syncedThrough) and late
// coverage through lateTo: every item created by the watermark that was
// visible when created, and every late one created by lateTo (late
// coverage re-reads an instant once LateDelay, which must be within
// SYNC_OVERLAP, has passed behind it). Times are on the data clock.
func (s *Server) Owed(watermark, lateTo time.Time) []string {
	wMs, lMs := watermark.UnixMilli(), lateTo.UnixMilli()
	var out []string
	s.each(later(watermark, lateTo), false, func(e *entry) {
		if e.tx < 0 {
			return
		}
		onTime := e.visible <= e.created
		if (onTime && e.created <= wMs) || (!onTime && e.created <= lMs) {
			out = append(out, s.gen.txs[e.tx].ID)
		}
	})
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
