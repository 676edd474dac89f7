// Package mockapi is a realistic, deterministic stand-in for the two
// services scorekeeper depends on: the upstream transaction API (design §4)
// and the payout provider (design §5), served by one http.Handler.
//
// It misbehaves the way the real services are documented to: a shared
// sliding-window rate limit answering 429 with Retry-After, pages in no
// chronological order, items served twice, items that appear minutes after
// their createdAt, malformed items, 5xx and slow answers, and faults on
// demand; configured so, also whole-second timestamps whose ties come in a
// fresh order on every request, pages shorter than asked, an item twice on
// one page, an oversized item, a clock behind ours, and requests counted
// and then dropped unanswered. The payout provider enforces idempotency
// keys, rejects closed accounts and fails transiently. Because all data is
// generated from a seed, the mock also knows the ground truth (Truth, Paid
// …) that tests compare scorekeeper's results against.
//
// It is used by `scorekeeper mockapi`, by `scorekeeper dev`, and by tests and
// benchmarks as an httptest server; a fake clock (Config.Now) lets tests
// move time without sleeping.
//
// Routes:
//
//	GET    /transactions?startDate=…&endDate=…&page=…&limit=…   upstream API
//	POST   /payouts                                            payout provider
//	GET    /healthz                                            200 while serving
//	GET    /_mock/stats                                        counters (Stats)
//	GET    /_mock/truth[?all=true]                             ground truth summaries
//	GET|POST|DELETE /_mock/faults                              list, inject, clear faults
package mockapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"scorekeeper"
)

// Server is the mock upstream API and payout provider. It is safe for
// concurrent use; create it with New.
type Server struct {
	cfg     Config
	start   time.Time
	startMs int64
	mux     *http.ServeMux

	// mu guards gen and liveNext. Reads (listings, truth) share it; only
	// generating a new live minute takes it exclusively.
	mu       sync.RWMutex
	gen      generator
	liveNext int64 // the next live minute to generate

	cacheMu sync.Mutex
	cache   []cachedListing

	limiter limiter

	// faultMu guards the injected faults and the fault generator, whose
	// draws must happen in request order to be reproducible.
	faultMu sync.Mutex
	faults  []Fault
	rng     prng
	// pageRng draws one seed per admitted GET /transactions request, for
	// DropRate, ShuffleTies and PageDuplicates. It is apart from rng so
	// that these change none of the other faults' draws.
	pageRng prng

	payouts payoutLedger

	// answered counts the 200 answers per request (window, page, limit),
	// so a test can tell whether a client fetched the same page twice.
	answeredMu sync.Mutex
	answered   map[listQuery]int
	answers    []Answer
	// trimmed counts the answers dropped from the front of answers.
	trimmed int

	stats struct {
		txReceived, txAccepted, txRateLimited, txFailed, txBadRequest, txSlow, txOK        atomic.Int64
		txDropped, txPageDuplicates, txTruncated, txAbandoned                              atomic.Int64
		poReceived, poPaid, poReplayed, poRejected, poConflicts, poTransient, poBadRequest atomic.Int64
		poLostAfterPayment                                                                 atomic.Int64
	}

	// injected counts the GET /transactions answers carrying an injected
	// fault's status, by status.
	injectedMu sync.Mutex
	injected   map[int]int64
}

// New generates the data described by cfg and returns the mock. Generation
// is eager for the history (about 0.1 s per 100,000 transactions) and lazy,
// a minute at a time, for live data.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.PayoutRejectUsers = append([]string(nil), cfg.PayoutRejectUsers...)
	s := &Server{cfg: cfg, rng: prng{hashOf(cfg.Seed, streamFaults)}, pageRng: prng{hashOf(cfg.Seed, streamPages)}}
	start := cfg.Start
	if start.IsZero() {
		start = s.dataNow()
	}
	precision := time.Millisecond
	if cfg.WholeSeconds {
		precision = time.Second
	}
	s.start = start.UTC().Truncate(precision)
	s.startMs = s.start.UnixMilli()
	s.cfg.Start = s.start
	if minutes := liveMinutesThrough(s.startMs, s.dataNow().UnixMilli()) + 1; int64(cfg.LiveRate)*minutes > MaxLiveBacklog {
		return nil, fmt.Errorf("MOCK_START: %s is %d minutes ago; at MOCK_LIVE_RATE=%d that is more than %d live items to generate",
			s.start.Format(time.RFC3339), minutes, cfg.LiveRate, MaxLiveBacklog)
	}

	kinds := cfg.MalformedKinds
	if len(kinds) == 0 {
		kinds = AllMalformedKinds
	}
	s.gen = generator{
		cfg:     &s.cfg,
		users:   genUsers(cfg.Seed, cfg.Users),
		kinds:   kinds,
		seenRaw: make(map[string]struct{}),
	}
	s.gen.generateHistory(s.startMs)
	s.limiter = limiter{n: cfg.RateLimit, window: cfg.RateWindow}
	s.payouts.init(cfg)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /transactions", s.handleTransactions)
	mux.HandleFunc("POST /payouts", s.handlePayout)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /_mock/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_mock/truth", s.handleTruth)
	mux.HandleFunc("GET /_mock/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, faultsJSON(s.PendingFaults()))
	})
	mux.HandleFunc("POST /_mock/faults", s.handleInjectFault)
	mux.HandleFunc("DELETE /_mock/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	s.mux = mux
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Config returns the configuration in effect, with Start resolved.
func (s *Server) Config() Config { return s.cfg }

// Start returns the anchor instant: history ends here, live data begins.
func (s *Server) Start() time.Time { return s.start }

// Users returns every user id transactions may belong to.
func (s *Server) Users() []string { return append([]string(nil), s.gen.users...) }

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

// dataNow is the clock that decides what exists and is visible: now less
// Config.ClockSkew. Only the rate limit (and the payout ledger) keep now.
func (s *Server) dataNow() time.Time {
	return s.now().Add(-s.cfg.ClockSkew)
}

// sleep waits d or until ctx ends, reporting whether the full wait elapsed.
// Slow answers must honour cancellation, or a client timeout would leave the
// handler (and an httptest server's Close) hanging.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// FaultTarget says which API an injected fault applies to.
type FaultTarget string

// Fault targets.
const (
	FaultTransactions FaultTarget = "transactions"
	FaultPayouts      FaultTarget = "payouts"
)

// Fault makes the next Count requests to Target misbehave. Faults queue up
// and apply in the order injected.
//
// On GET /transactions the request is first admitted by the rate limit
// (so it consumes budget, as a request a real server failed would), then
// waits Delay, then answers Status if it is set (429 and 503 carry
// Retry-After: 1).
//
// On POST /payouts, without AfterPay the request waits Delay and answers
// Status (if set) before anything is paid, a transient failure. With
// AfterPay the payout is processed and stored first, then the answer is
// delayed by Delay and replaced by Status if set: the client times out or
// fails after a real payment, and the stored result answers its retry.
type Fault struct {
	Target   FaultTarget
	Status   int
	Delay    time.Duration
	AfterPay bool
	// Truncate (GET /transactions only) answers 200 with the full
	// Content-Length but cuts the body off halfway and drops the
	// connection, as a proxy or a crashing server would.
	Truncate bool
	// Count is how many requests the fault affects; 0 means 1.
	Count int
}

// InjectFault queues f.
func (s *Server) InjectFault(f Fault) error {
	if f.Target == "" {
		f.Target = FaultTransactions
	}
	if f.Count == 0 {
		f.Count = 1
	}
	switch {
	case f.Target != FaultTransactions && f.Target != FaultPayouts:
		return fmt.Errorf("fault target %q is not %q or %q", f.Target, FaultTransactions, FaultPayouts)
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("fault status %d is not an error status (400-599)", f.Status)
	case f.Delay < 0:
		return fmt.Errorf("fault delay %s is negative", f.Delay)
	case f.Status == 0 && f.Delay == 0 && !f.Truncate:
		return fmt.Errorf("fault needs a status, a delay or truncate")
	case f.Truncate && (f.Target != FaultTransactions || f.Status != 0):
		return fmt.Errorf("truncate applies only to target %q, without a status", FaultTransactions)
	case f.Count < 0:
		return fmt.Errorf("fault count %d is negative", f.Count)
	case f.AfterPay && f.Target != FaultPayouts:
		return fmt.Errorf("afterPay applies only to target %q", FaultPayouts)
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, f)
	return nil
}

// ClearFaults drops every pending injected fault.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
}

// PendingFaults returns the injected faults not yet used up, with their
// remaining counts.
func (s *Server) PendingFaults() []Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return append([]Fault(nil), s.faults...)
}

// takeFault consumes one use of the first pending fault for target.
func (s *Server) takeFault(target FaultTarget) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i := range s.faults {
		if s.faults[i].Target != target {
			continue
		}
		f := s.faults[i]
		s.faults[i].Count--
		if s.faults[i].Count <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f, true
	}
	return Fault{}, false
}

// draw runs fn with the request-fault generator held, so that concurrent
// requests don't race on it and a sequential run is reproducible.
func (s *Server) draw(fn func(r *prng)) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	fn(&s.rng)
}

// faultJSON is the wire form of a Fault: delay is a Go duration string.
type faultJSON struct {
	Target   FaultTarget `json:"target,omitempty"`
	Status   int         `json:"status,omitempty"`
	Delay    string      `json:"delay,omitempty"`
	AfterPay bool        `json:"afterPay,omitempty"`
	Count    int         `json:"count,omitempty"`
}

func faultsJSON(fs []Fault) []faultJSON {
	out := make([]faultJSON, 0, len(fs))
	for _, f := range fs {
		j := faultJSON{Target: f.Target, Status: f.Status, AfterPay: f.AfterPay, Count: f.Count}
		if f.Delay > 0 {
			j.Delay = f.Delay.String()
		}
		out = append(out, j)
	}
	return out
}

// handleInjectFault serves POST /_mock/faults with a body such as
// {"status":503,"count":3}, {"delay":"5s","count":2} or
// {"target":"payouts","delay":"3s","afterPay":true}.
func (s *Server) handleInjectFault(w http.ResponseWriter, r *http.Request) {
	var j faultJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "fault body: "+err.Error())
		return
	}
	f := Fault{Target: j.Target, Status: j.Status, AfterPay: j.AfterPay, Count: j.Count}
	if j.Delay != "" {
		d, err := time.ParseDuration(j.Delay)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("fault delay %q is not a duration", j.Delay))
			return
		}
		f.Delay = d
	}
	if err := s.InjectFault(f); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, faultsJSON(s.PendingFaults()))
}

// Stats is what GET /_mock/stats reports.
type Stats struct {
	Start time.Time `json:"start"` // the data's anchor
	Now   time.Time `json:"now"`   // the mock's clock (the rate limit's)
	// DataNow is the clock that decides what is visible: Now less
	// ClockSkew. The Data counts are taken at it.
	DataNow time.Time `json:"dataNow"`
	// RateLimit is the budget, "N/duration", or "off".
	RateLimit    string           `json:"rateLimit"`
	Transactions TransactionStats `json:"transactions"`
	Payouts      PayoutStats      `json:"payouts"`
	Data         DataStats        `json:"data"`
	// Faults counts injected faults still pending.
	Faults int `json:"pendingFaults"`
}

// TransactionStats counts GET /transactions requests by outcome.
type TransactionStats struct {
	// Received counts every request, Accepted those the rate limit admitted
	// (they consumed budget), RateLimited those answered 429 by it.
	Received    int64 `json:"received"`
	Accepted    int64 `json:"accepted"`
	RateLimited int64 `json:"rateLimited"`
	// Failed counts admitted requests answered with a 5xx or an injected
	// status; BadRequests those answered 400; OK those served a page.
	Failed      int64 `json:"failed"`
	BadRequests int64 `json:"badRequests"`
	OK          int64 `json:"ok"`
	// Dropped counts admitted requests whose connection was closed without
	// an answer (DropRate); they are in none of the counts above but
	// Received and Accepted.
	Dropped int64 `json:"dropped"`
	// PageDuplicates counts the pages served (in OK) that carried one of
	// their items twice (PageDuplicates).
	PageDuplicates int64 `json:"pageDuplicates"`
	// Slow counts requests delayed by SlowRate.
	Slow int64 `json:"slow"`
	// Truncated counts pages cut off mid-body by a Truncate fault (also in
	// Failed).
	Truncated int64 `json:"truncated"`
	// Injected counts the answers with an injected fault's status, by
	// status (also in Failed).
	Injected map[int]int64 `json:"injected,omitempty"`
	// Abandoned counts admitted requests whose client gave up while their
	// answer was delayed (an injected Delay, SlowRate): nothing was
	// answered. A Delay beyond the client's timeout shows up here.
	Abandoned int64 `json:"abandoned"`
	// InWindow is how many accepted requests fall in the current window.
	InWindow int `json:"inWindow"`
}

// PayoutStats counts POST /payouts requests by outcome and the money paid.
// Paid counts first-time payments (201), Replayed answers from a stored
// result, Rejected first-time 422s, Conflicts 409s, TransientFailures the
// 429/5xx answered before paying (random or injected), LostAfterPayment
// the first-time payments whose answer an AfterPay fault kept from the
// client (replaced by its status, or given up on during its delay).
type PayoutStats struct {
	Received          int64              `json:"received"`
	Paid              int64              `json:"paid"`
	Replayed          int64              `json:"replayed"`
	Rejected          int64              `json:"rejected"`
	Conflicts         int64              `json:"conflicts"`
	TransientFailures int64              `json:"transientFailures"`
	BadRequests       int64              `json:"badRequests"`
	LostAfterPayment  int64              `json:"lostAfterPayment"`
	PaidTotal         scorekeeper.Amount `json:"paidTotal"`
	PaidUsers         int                `json:"paidUsers"`
}

// DataStats describes the generated data as of now.
type DataStats struct {
	Users int `json:"users"`
	// Valid and Malformed count distinct items visible now; the *All
	// variants count everything generated so far, visible or not.
	Valid        int `json:"valid"`
	Malformed    int `json:"malformed"`
	ValidAll     int `json:"validAll"`
	MalformedAll int `json:"malformedAll"`
}

// Stats returns the counters GET /_mock/stats serves.
func (s *Server) Stats() Stats {
	now := s.now()
	dataNow := now.Add(-s.cfg.ClockSkew)
	st := Stats{Start: s.start, Now: now, DataNow: dataNow, RateLimit: "off", Faults: len(s.PendingFaults())}
	if s.cfg.RateLimit > 0 {
		st.RateLimit = strconv.Itoa(s.cfg.RateLimit) + "/" + s.cfg.RateWindow.String()
	}
	c := &s.stats
	st.Transactions = TransactionStats{
		Received: c.txReceived.Load(), Accepted: c.txAccepted.Load(), RateLimited: c.txRateLimited.Load(),
		Failed: c.txFailed.Load(), BadRequests: c.txBadRequest.Load(), OK: c.txOK.Load(),
		Dropped: c.txDropped.Load(), PageDuplicates: c.txPageDuplicates.Load(), Slow: c.txSlow.Load(),
		Truncated: c.txTruncated.Load(), Abandoned: c.txAbandoned.Load(),
		InWindow: s.limiter.inWindow(now),
	}
	for status, n := range s.InjectedStatuses() {
		if st.Transactions.Injected == nil {
			st.Transactions.Injected = map[int]int64{}
		}
		st.Transactions.Injected[status] = int64(n)
	}
	st.Payouts = PayoutStats{
		Received: c.poReceived.Load(), Paid: c.poPaid.Load(), Replayed: c.poReplayed.Load(),
		Rejected: c.poRejected.Load(), Conflicts: c.poConflicts.Load(), TransientFailures: c.poTransient.Load(),
		BadRequests: c.poBadRequest.Load(), LostAfterPayment: c.poLostAfterPayment.Load(),
	}
	for _, a := range s.Paid() {
		st.Payouts.PaidTotal += a
		st.Payouts.PaidUsers++
	}
	v, m, va, ma := s.counts(dataNow)
	st.Data = DataStats{Users: len(s.gen.users), Valid: v, Malformed: m, ValidAll: va, MalformedAll: ma}
	return st
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "encoding response")
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorBody renders the error shape both real services use:
// {"error":{"code":"…","message":"…"}}.
func errorBody(code, message string) []byte {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": message}})
	return b
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeRaw(w, status, errorBody(code, message))
}

// statusCode returns the snake_case error code for an injected status.
func statusCode(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusBadGateway:
		return "bad_gateway"
	case http.StatusGatewayTimeout:
		return "gateway_timeout"
	case http.StatusInternalServerError:
		return "internal"
	}
	if status >= 500 {
		return "server_error"
	}
	return "client_error"
}
