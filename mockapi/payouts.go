package mockapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"scorekeeper"
)

// Payment is one disbursement the mock provider actually made.
type Payment struct {
	Key        string // the Idempotency-Key, i.e. the payout transaction id
	UserID     string
	Amount     scorekeeper.Amount
	ProviderID string // "po_…", as returned to the client
	At         time.Time
}

// payoutRecord is the stored outcome of an idempotency key: the request it
// answered (to detect a key reused with another body) and the exact
// response to replay.
type payoutRecord struct {
	userID   string
	amount   scorekeeper.Amount
	currency string
	status   int
	body     []byte
}

// payoutLedger is the provider's state. One mutex covers the check of a key
// and the payment, so concurrent requests with the same key pay once.
type payoutLedger struct {
	seed        int64
	rejectRate  float64
	rejectUsers map[string]bool

	mu       sync.Mutex
	records  map[string]*payoutRecord
	payCount map[string]int
	paid     map[string]scorekeeper.Amount
	payments []Payment
	rejected []string
}

func (l *payoutLedger) init(cfg Config) {
	l.seed = cfg.Seed
	l.rejectRate = cfg.PayoutRejectRate
	l.rejectUsers = make(map[string]bool, len(cfg.PayoutRejectUsers))
	for _, u := range cfg.PayoutRejectUsers {
		l.rejectUsers[u] = true
	}
	l.records = make(map[string]*payoutRecord)
	l.payCount = make(map[string]int)
	l.paid = make(map[string]scorekeeper.Amount)
}

// rejects reports whether userID's account is closed: listed, or picked by
// a seeded hash of the id so the same users are rejected in every run.
func (l *payoutLedger) rejects(userID string) bool {
	if l.rejectUsers[userID] {
		return true
	}
	h := hashString(l.seed, streamReject, userID)
	return float64(h>>11)/(1<<53) < l.rejectRate
}

// IsRejectedUser reports whether the provider rejects every payout to
// userID (422 account_closed), by list or by PayoutRejectRate.
func (s *Server) IsRejectedUser(userID string) bool { return s.payouts.rejects(userID) }

// payoutRequest is the provider's request body.
type payoutRequest struct {
	UserID    string
	Amount    scorekeeper.Amount
	Currency  string
	Reference string
}

// parsePayout validates the body against the idempotency key. The amount
// is parsed exactly from its JSON text; a string, 0, a negative number or a
// third decimal is refused, as a real provider refuses ambiguous money.
func parsePayout(body []byte, key string) (payoutRequest, error) {
	var raw struct {
		UserID    *string         `json:"userId"`
		Amount    json.RawMessage `json:"amount"`
		Currency  *string         `json:"currency"`
		Reference *string         `json:"reference"`
	}
	var p payoutRequest
	if err := json.Unmarshal(body, &raw); err != nil {
		return p, fmt.Errorf("body is not a JSON object: %v", err)
	}
	switch {
	case raw.UserID == nil || !scorekeeper.ValidUserID(*raw.UserID):
		return p, fmt.Errorf("userId must be 1-64 characters of [A-Za-z0-9_-]")
	case len(raw.Amount) == 0:
		return p, fmt.Errorf("amount is required")
	case raw.Currency == nil || *raw.Currency != "EUR":
		return p, fmt.Errorf(`currency must be "EUR"`)
	case raw.Reference == nil || *raw.Reference != key:
		return p, fmt.Errorf("reference must equal the Idempotency-Key")
	}
	if err := p.Amount.UnmarshalJSON(raw.Amount); err != nil {
		return p, fmt.Errorf("amount: %v", err)
	}
	if p.Amount <= 0 {
		return p, fmt.Errorf("amount must be positive, got %s", p.Amount)
	}
	p.UserID, p.Currency, p.Reference = *raw.UserID, *raw.Currency, *raw.Reference
	return p, nil
}

// handlePayout serves POST /payouts.
//
// Order of events, as at a real provider: validation (400, nothing stored),
// latency and transient failures (503/429, nothing paid or stored), then
// under the ledger lock either the key's stored result is replayed (200
// for a success, the same 422 for a rejection; 409 if the body differs) or
// the payout is decided, paid and stored (201 or 422). An after-pay fault
// then delays or replaces the answer.
func (s *Server) handlePayout(w http.ResponseWriter, r *http.Request) {
	s.stats.poReceived.Add(1)
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		s.stats.poBadRequest.Add(1)
		writeError(w, http.StatusBadRequest, "missing_idempotency_key", "the Idempotency-Key header is required")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.stats.poBadRequest.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request", "reading body: "+err.Error())
		return
	}
	req, err := parsePayout(bytes.TrimSpace(body), key)
	if err != nil {
		s.stats.poBadRequest.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}

	fault, faulty := s.takeFault(FaultPayouts)
	var latency time.Duration
	var transient, as429 bool
	s.draw(func(g *prng) {
		if s.cfg.PayoutLatency > 0 {
			latency = time.Duration(g.intn(int64(s.cfg.PayoutLatency) + 1))
		}
		transient, as429 = g.chance(s.cfg.PayoutFailRate), g.chance(0.5)
	})
	if faulty && !fault.AfterPay {
		latency += fault.Delay
	}
	if !sleep(r.Context(), latency) {
		return
	}
	if faulty && !fault.AfterPay && fault.Status != 0 {
		s.stats.poTransient.Add(1)
		writeTransient(w, fault.Status)
		return
	}
	if transient {
		s.stats.poTransient.Add(1)
		if as429 {
			writeTransient(w, http.StatusTooManyRequests)
		} else {
			writeTransient(w, http.StatusServiceUnavailable)
		}
		return
	}

	status, resp := s.pay(key, req)

	if faulty && fault.AfterPay {
		// The payment stands whatever happens to this answer.
		if !sleep(r.Context(), fault.Delay) {
			s.lostAfterPayment(status)
			return
		}
		if fault.Status != 0 {
			s.lostAfterPayment(status)
			writeTransient(w, fault.Status)
			return
		}
	}
	writeRaw(w, status, resp)
}

// lostAfterPayment counts an answer an after-pay fault kept from the
// client, when it was the answer of a first-time payment (201).
func (s *Server) lostAfterPayment(status int) {
	if status == http.StatusCreated {
		s.stats.poLostAfterPayment.Add(1)
	}
}

func writeTransient(w http.ResponseWriter, status int) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, status, statusCode(status), "temporary failure, retry later")
}

// pay decides, records and answers one payout under the ledger lock.
func (s *Server) pay(key string, req payoutRequest) (int, []byte) {
	l := &s.payouts
	l.mu.Lock()
	defer l.mu.Unlock()
	if rec, ok := l.records[key]; ok {
		if rec.userID != req.UserID || rec.amount != req.Amount || rec.currency != req.Currency {
			s.stats.poConflicts.Add(1)
			return http.StatusConflict, errorBody("idempotency_conflict",
				"this Idempotency-Key was used with a different request body")
		}
		s.stats.poReplayed.Add(1)
		if rec.status == http.StatusCreated {
			return http.StatusOK, rec.body
		}
		return rec.status, rec.body
	}
	rec := &payoutRecord{userID: req.UserID, amount: req.Amount, currency: req.Currency}
	if l.rejects(req.UserID) {
		s.stats.poRejected.Add(1)
		rec.status = http.StatusUnprocessableEntity
		rec.body = errorBody("account_closed", fmt.Sprintf("the account of user %s is closed", req.UserID))
		l.rejected = append(l.rejected, key)
	} else {
		s.stats.poPaid.Add(1)
		id := "po_" + strconv.FormatUint(hashString(l.seed, streamPayoutID, key), 16)
		rec.status = http.StatusCreated
		rec.body, _ = json.Marshal(map[string]string{"id": id, "status": "paid"})
		l.payCount[key]++
		l.paid[req.UserID] += req.Amount
		l.payments = append(l.payments, Payment{Key: key, UserID: req.UserID, Amount: req.Amount, ProviderID: id, At: s.now()})
	}
	l.records[key] = rec
	return rec.status, rec.body
}

// Paid returns the total actually paid per user.
func (s *Server) Paid() map[string]scorekeeper.Amount {
	l := &s.payouts
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]scorekeeper.Amount, len(l.paid))
	for u, a := range l.paid {
		out[u] = a
	}
	return out
}

// PaymentsByKey returns how many times each idempotency key was actually
// paid. Every value must be 1: anything higher is a double payment.
func (s *Server) PaymentsByKey() map[string]int {
	l := &s.payouts
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.payCount))
	for k, n := range l.payCount {
		out[k] = n
	}
	return out
}

// Payments returns every payment made, in order: the provider's ledger,
// each with its idempotency key, user, amount and provider reference.
// Unlike PaymentsByKey, which cannot exceed 1 while the mock replays a
// repeated key, it records a client that pays the same payout twice under
// two keys as two payments.
func (s *Server) Payments() []Payment {
	l := &s.payouts
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Payment(nil), l.payments...)
}

// IdempotencyConflicts counts the POST /payouts requests answered 409: an
// idempotency key used again with another body (user, amount or
// currency). A client that keys each payout by its transaction id never
// causes one.
func (s *Server) IdempotencyConflicts() int {
	return int(s.stats.poConflicts.Load())
}

// PaymentAnswersLost counts the first-time payments whose answer an
// AfterPay fault kept from the client: replaced by the fault's status, or
// given up on by the client during its delay. Each is a payment the client
// does not know was made until it asks again with the same key.
func (s *Server) PaymentAnswersLost() int {
	return int(s.stats.poLostAfterPayment.Load())
}

// Rejected returns the idempotency keys answered 422 account_closed,
// sorted.
func (s *Server) Rejected() []string {
	l := &s.payouts
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.rejected...)
	sort.Strings(out)
	return out
}
