// Package metrics serves /metrics in the Prometheus text format: HTTP
// request counts and latencies of this process, and the service's own
// numbers (design §9) read from the database at scrape time, so every web
// process reports the same exact totals whichever worker did the work.
package metrics

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"scorekeeper"
	"scorekeeper/internal/httpx"
)

// Metrics holds the registry and the HTTP instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// byLabels caches the instruments of each (method, route, status):
	// finding a labelled child in a vector hashes its label values on
	// every request, about a tenth of a cached summary's CPU. The map is
	// never written once published (a miss copies it under mu), so a hit
	// takes no lock. Its size is bounded by the routes, methods and
	// statuses there are.
	byLabels atomic.Pointer[map[labels]*instruments]
	mu       sync.Mutex
}

type labels struct {
	method, route string
	status        int
}

type instruments struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// instrumentsFor returns the request counter and latency histogram of l.
func (m *Metrics) instrumentsFor(l labels) *instruments {
	if byLabels := m.byLabels.Load(); byLabels != nil {
		if in, ok := (*byLabels)[l]; ok {
			return in
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.byLabels.Load()
	if old != nil {
		if in, ok := (*old)[l]; ok {
			return in
		}
	}
	in := &instruments{
		requests: m.requests.WithLabelValues(l.method, l.route, strconv.Itoa(l.status)),
		latency:  m.latency.WithLabelValues(l.method, l.route),
	}
	next := make(map[labels]*instruments, 1)
	if old != nil {
		next = maps.Clone(*old)
	}
	next[l] = in
	m.byLabels.Store(&next)
	return in
}

// New registers the collectors. The store's sync status is read at scrape
// time (cached for a few seconds, so frequent scrapes cost the database
// little).
func New(store scorekeeper.Store, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scorekeeper_http_requests_total",
			Help: "HTTP requests served, by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scorekeeper_http_request_duration_seconds",
			Help:    "HTTP request latency, by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	m.reg.MustRegister(
		m.requests, m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&storeCollector{store: store, log: log, ttl: 5 * time.Second},
	)
	return m
}

// Registry is the registry, for other instruments of this process.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry at /metrics.
func (m *Metrics) Handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// Middleware counts and times every request by its route pattern (not its
// path, which would make one series per user id).
func (m *Metrics) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		route := c.Route().Path
		if route == "" || route == "/" && c.Path() != "/" {
			route = "unmatched"
		}
		status := c.Response().StatusCode()
		if err != nil {
			if fe, ok := err.(*fiber.Error); ok {
				status = fe.Code
			}
		}
		// A constant, never c.Method() itself: see httpx.MethodName.
		method := httpx.MethodName(c.Method())
		in := m.instrumentsFor(labels{method: method, route: route, status: status})
		in.requests.Inc()
		in.latency.Observe(time.Since(start).Seconds())
		return err
	}
}

var (
	descLag = prometheus.NewDesc("scorekeeper_sync_lag_seconds",
		"How far the synced watermark (X-Data-As-Of) is behind now.", nil, nil)
	descUpstream = prometheus.NewDesc("scorekeeper_upstream_requests_total",
		"Requests made to the upstream transaction API, by HTTP status code (error: no response).", []string{"code"}, nil)
	descApplied = prometheus.NewDesc("scorekeeper_transactions_applied_total",
		"Upstream transactions stored and counted in summaries, by type.", []string{"type"}, nil)
	descQuarantined = prometheus.NewDesc("scorekeeper_transactions_quarantined_total",
		"Malformed upstream items quarantined (distinct).", nil, nil)
	descPayouts = prometheus.NewDesc("scorekeeper_payouts_total",
		"Payouts entering each status: requested when stored, then paid, failed or canceled.", []string{"status"}, nil)
	descHeld = prometheus.NewDesc("scorekeeper_payouts_held_users",
		"Users whose payouts an operator holds: nothing is sent for them until released.", nil, nil)
	descOverdue = prometheus.NewDesc("scorekeeper_payouts_overdue",
		"Payouts requested more than 15 minutes ago and not yet paid or failed.", nil, nil)
	descThrough = prometheus.NewDesc("scorekeeper_sync_synced_through_timestamp_seconds",
		"The synced watermark (X-Data-As-Of), as a Unix time.", nil, nil)
	descLateThrough = prometheus.NewDesc("scorekeeper_sync_late_covered_through_timestamp_seconds",
		"lateCoveredThrough: instants up to it were read after late items could appear, as a Unix time.", nil, nil)
	descLateLag = prometheus.NewDesc("scorekeeper_sync_late_coverage_lag_seconds",
		"How far lateCoveredThrough is behind now (at least SYNC_OVERLAP).", nil, nil)
	descBudgetUsed = prometheus.NewDesc("scorekeeper_upstream_budget_used",
		"Upstream requests in the current budget period, all workers together (database clock).", nil, nil)
	descBudgetLimit = prometheus.NewDesc("scorekeeper_upstream_budget_limit",
		"Upstream requests allowed per budget period (UPSTREAM_RATE).", nil, nil)
	descBudgetSpent = prometheus.NewDesc("scorekeeper_upstream_budget_spent_last_hour",
		"Upstream requests of the last hour by what they were for: fresh pages, re-scans, probes.", []string{"kind"}, nil)
	descTwice = prometheus.NewDesc("scorekeeper_upstream_pages_fetched_twice_total",
		"Upstream pages answered twice for the same request of one kind of plan (0 unless an answer was lost after it came).", nil, nil)
	descDrift = prometheus.NewDesc("scorekeeper_reconcile_drift_users",
		"Users whose stored summary differed from their transactions at the last reconciliation (alert when not 0).", nil, nil)
	descUp = prometheus.NewDesc("scorekeeper_store_up",
		"1 when the last read of the store's numbers succeeded.", nil, nil)
)

// storeCollector reports the store's sync status (Store.SyncStatus, the
// one read model GET /api/sync/status serves too).
type storeCollector struct {
	store scorekeeper.Store
	log   *slog.Logger
	ttl   time.Duration

	mu      sync.Mutex
	at      time.Time
	cached  []prometheus.Metric
	lastErr error
}

func (s *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descUpstream, descApplied, descQuarantined, descPayouts, descOverdue, descHeld,
		descThrough, descLateThrough, descLateLag, descBudgetUsed, descBudgetLimit, descBudgetSpent, descTwice, descDrift, descUp} {
		ch <- d
	}
}

func (s *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) > s.ttl {
		s.cached, s.lastErr = s.read()
		s.at = time.Now()
		if s.lastErr != nil && s.log != nil {
			s.log.Warn("metrics: could not read the store", "error", s.lastErr)
		}
	}
	up := 1.0
	if s.lastErr != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, m := range s.cached {
		ch <- m
	}
}

func (s *storeCollector) read() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	st, err := s.store.SyncStatus(ctx)
	if err != nil {
		return nil, err
	}
	if lag, ok := st.Lag(); ok {
		gauge(descLag, lag.Seconds())
		gauge(descThrough, float64(st.SyncedThrough.Unix()))
	}
	if lag, ok := st.LateLag(); ok {
		gauge(descLateThrough, float64(st.LateCoveredThrough.Unix()))
		gauge(descLateLag, lag.Seconds())
	}
	if st.BudgetLimit > 0 {
		gauge(descBudgetUsed, float64(st.BudgetUsed))
		gauge(descBudgetLimit, float64(st.BudgetLimit))
		for _, k := range scorekeeper.BudgetKinds {
			gauge(descBudgetSpent, float64(st.BudgetSpent[k]), string(k))
		}
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...))
	}
	for _, typ := range scorekeeper.TxTypes {
		counter(descApplied, st.Applied[typ], string(typ))
	}
	counter(descQuarantined, st.QuarantinedTotal)
	for _, status := range scorekeeper.PayoutStatuses {
		counter(descPayouts, st.PayoutsEntered[status], string(status))
	}
	counter(descTwice, st.PagesFetchedTwice)
	gauge(descDrift, float64(st.DriftedUsers))
	for code, n := range st.UpstreamRequests {
		counter(descUpstream, n, code)
	}
	gauge(descOverdue, float64(st.PayoutsOverdue))
	gauge(descHeld, float64(st.PayoutsHeldUsers))
	return out, nil
}
