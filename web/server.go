// Package web is the REST API of scorekeeper: a Fiber v2 application that
// answers summary and payout queries from the database (never from
// upstream), starts on-demand syncs through a Syncer, and serves its own
// OpenAPI document and docs page.
//
// The package speaks HTTP only at its edge: handlers call the root
// package's ports (scorekeeper.Store, Syncer and Reconciler), which return
// domain errors (*scorekeeper.Error), and one error handler turns their
// codes into statuses and JSON bodies. Only app imports this package.
package web

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"scorekeeper"
)

// Limits of the HTTP server. The API takes no request bodies worth the
// name (POST /api/sync has none), so a small body limit costs nothing and
// bounds what a client can make us buffer.
const (
	// BodyLimit is the largest request body accepted; larger is 413.
	BodyLimit = 64 << 10
	// ReadTimeout bounds reading one request (headers and body).
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds writing one response. fasthttp arms it after the
	// handler returns, so it does not cut short POST /api/sync?wait=true.
	WriteTimeout = 10 * time.Second
	// IdleTimeout closes keep-alive connections idle this long, which also
	// lets ShutdownWithContext finish instead of waiting on idle clients.
	IdleTimeout = 60 * time.Second
	// QueryTimeout bounds the database work of one request; a database
	// that does not answer in time is reported as 503 unavailable.
	QueryTimeout = 10 * time.Second
	// DefaultSyncWaitTimeout is how long POST /api/sync?wait=true waits
	// when Config.SyncWaitTimeout is zero.
	DefaultSyncWaitTimeout = 5 * time.Minute
	// DefaultMaxSyncWaits is Config.MaxSyncWaits when zero.
	DefaultMaxSyncWaits = 64
)

// Per-client limits of the sync routes that app sets (the
// zero Config leaves them off, like RateLimit). They are far below
// API_RATE_LIMIT's because each request costs far more than a read: a
// start is a database read and a Temporal signal recorded in the sync's
// history, a status a dozen queries and a Temporal visibility query, and a
// wait holds a connection, a goroutine and a Temporal long poll for up to
// SyncWaitTimeout.
var (
	// DefaultSyncRateLimit bounds POST /api/sync per client. Bursts are
	// harmless to the data (they join one sync), so it allows one a
	// second on average; what it stops is a loop hammering Temporal.
	DefaultSyncRateLimit = RateLimit{N: 60, Per: time.Minute}
	// DefaultSyncWaitRateLimit bounds POST /api/sync?wait=true per client,
	// on top of DefaultSyncRateLimit: a few a minute. A client that needs
	// more polls GET /api/sync/status.
	DefaultSyncWaitRateLimit = RateLimit{N: 6, Per: time.Minute}
	// DefaultSyncStatusRateLimit bounds GET /api/sync/status per client:
	// polling once a second is plenty to follow a sync.
	DefaultSyncStatusRateLimit = RateLimit{N: 60, Per: time.Minute}
)

// Config holds the dependencies of the REST API. Store is required; the
// rest is optional.
type Config struct {
	// Store answers every query (db.Store in production; tests give an
	// in-memory one).
	Store scorekeeper.Store
	// Syncer starts and reports syncs. When nil, the sync routes answer
	// 503 unavailable (a web process running without Temporal).
	Syncer scorekeeper.Syncer
	// Reconciler runs reconciliations. When nil, POST /api/reconcile
	// answers 503.
	Reconciler scorekeeper.Reconciler
	// Payouts carries out the operator actions on payouts (hold, release,
	// retry, cancel). When nil, those routes answer 503.
	Payouts scorekeeper.PayoutOperator
	// AdminToken, when set, is the bearer token the admin routes (POST
	// /api/sync, GET /api/quarantine) require.
	AdminToken string
	// PublicBaseURL, when set, is the absolute URL clients reach the API
	// at (PUBLIC_BASE_URL, e.g. https://api.example.com), and next-page
	// Link headers are absolute on it. When empty they are relative (path
	// and query). Never derived from request headers, which clients set.
	PublicBaseURL string
	// Logger receives the access log and internal errors; nil discards.
	Logger *slog.Logger
	// Ready lists the dependencies GET /readyz checks, in order.
	Ready []ReadyCheck
	// Now is the clock (for sync lag); nil means time.Now.
	Now func() time.Time
	// SyncWaitTimeout bounds POST /api/sync?wait=true; when it passes, the
	// answer is 202 with the run's ids, as without wait. Zero means
	// DefaultSyncWaitTimeout.
	SyncWaitTimeout time.Duration
	// Metrics, when set, is mounted at GET /metrics (Prometheus text).
	Metrics fiber.Handler
	// Cache, when set, is a Cache made over Store (NewCache): the routes
	// read through it, and it serves summaries and listings from memory;
	// the caller runs it. Nil reads the Store every time.
	Cache *Cache
	// RateLimit is the per-client (per IP) request limit on the public
	// read routes, per process; zero N turns it off.
	RateLimit RateLimit
	// SyncRateLimit is the per-client limit on POST /api/sync (counted
	// before the admin token is checked, so guessing it is limited too),
	// per process; zero N turns it off. See DefaultSyncRateLimit.
	SyncRateLimit RateLimit
	// SyncWaitRateLimit is the per-client limit on POST /api/sync?wait=true,
	// counted on top of SyncRateLimit; zero N turns it off.
	SyncWaitRateLimit RateLimit
	// SyncStatusRateLimit is the per-client limit on GET /api/sync/status;
	// zero N turns it off.
	SyncStatusRateLimit RateLimit
	// MaxSyncWaits bounds the POST /api/sync?wait=true requests of all
	// clients waiting at once in this process. A wait=true request past it
	// still starts the sync but is answered 202 at once, as when its wait
	// runs out. Zero means DefaultMaxSyncWaits.
	MaxSyncWaits int
	// Middleware runs on every request, after request ids, the access log
	// and panic recovery, and before the routes (e.g. HTTP metrics). Errors
	// are already rendered when control returns to it, so it sees the
	// final status of every response.
	Middleware []fiber.Handler
}

// ReadyCheck is one dependency GET /readyz checks.
type ReadyCheck struct {
	// Name identifies the check in the readiness report, e.g. "database".
	Name string
	// Check returns nil when the dependency answers.
	Check func(ctx context.Context) error
}

// StoreCheck returns the readiness check of the store s, named
// "database".
func StoreCheck(s scorekeeper.Store) ReadyCheck {
	return ReadyCheck{Name: "database", Check: s.Ping}
}

// New returns the REST API as a Fiber app with every route registered. The
// caller listens (app.Listen or app.Listener) and stops it with
// app.ShutdownWithContext, which lets in-flight requests finish. A config
// without a Store is a wiring mistake and panics.
func New(cfg Config) *fiber.App {
	if cfg.Store == nil {
		panic("web.New: Config.Store is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// Links append "/api/…" to the base.
	cfg.PublicBaseURL = strings.TrimRight(cfg.PublicBaseURL, "/")
	if cfg.SyncWaitTimeout <= 0 {
		cfg.SyncWaitTimeout = DefaultSyncWaitTimeout
	}
	if cfg.MaxSyncWaits <= 0 {
		cfg.MaxSyncWaits = DefaultMaxSyncWaits
	}
	log := cfg.Logger
	handleError := errorHandler(log)

	app := fiber.New(fiber.Config{
		AppName:               "scorekeeper",
		DisableStartupMessage: true,
		ErrorHandler:          handleError,
		BodyLimit:             BodyLimit,
		ReadTimeout:           ReadTimeout,
		WriteTimeout:          WriteTimeout,
		IdleTimeout:           IdleTimeout,
		// User ids are case-sensitive, and so are our routes.
		CaseSensitive: true,
	})

	// Outermost first. The access log renders any error that reaches it,
	// so it logs the status the client actually got; recovery sits inside
	// it so a panic is logged as a 500 rather than killing the connection.
	app.Use(requestID(), accessLog(log, handleError), recoverPanics())
	for _, m := range cfg.Middleware {
		app.Use(m)
	}
	// Errors (including 404/405 for unmatched routes and panics in
	// handlers) are rendered here, inside the caller's middleware, so that
	// middleware such as HTTP metrics sees the final status code.
	app.Use(renderErrors(handleError), recoverPanics())

	app.Get("/healthz", healthz)
	app.Get("/readyz", readyz(cfg.Ready, log))
	read := cfg.Store
	// catchUp brings this process's reads up to date with the store after
	// a sync or repair it waited for, so the client's next read sees the
	// data it just waited for (read-your-writes).
	var catchUp func(context.Context) error
	if cfg.Cache != nil {
		read = cfg.Cache
		catchUp = cfg.Cache.CatchUp
	}
	limit := rateLimit(cfg.RateLimit)
	app.Get("/api/users/:userId/summary", limit, getSummary(read, cfg.Cache))
	app.Get("/api/users/:userId/transactions", limit, listLedger(read, cfg.Cache, cfg.PublicBaseURL))
	app.Get("/api/users/:userId/payouts", limit, listUserPayouts(read, cfg.PublicBaseURL))
	app.Get("/api/payouts", limit, listPayouts(read, cfg.PublicBaseURL))
	admin := requireAdmin(cfg.AdminToken)
	// The sync limits run before the admin check: a client over its limit
	// gets no answer about its token either.
	waits := make(chan struct{}, cfg.MaxSyncWaits)
	waitLimit := rateLimitOnly(cfg.SyncWaitRateLimit, isWait,
		"too many waiting syncs: at most %d POST /api/sync?wait=true per %s per client; poll GET /api/sync/status instead")
	app.Post("/api/sync", rateLimit(cfg.SyncRateLimit), waitLimit, admin,
		startSync(cfg.Syncer, cfg.SyncWaitTimeout, waits, catchUp))
	app.Get("/api/quarantine", admin, listQuarantine(read, cfg.PublicBaseURL))
	app.Post("/api/reconcile", admin, startReconcile(cfg.Reconciler, cfg.SyncWaitTimeout, catchUp))
	// Operator actions: Google-style custom methods, the colon escaped for
	// Fiber's router.
	app.Post("/api/users/:userId/payouts\\:hold", admin, holdPayouts(cfg.Payouts))
	app.Post("/api/users/:userId/payouts\\:release", admin, releasePayouts(cfg.Payouts))
	app.Post("/api/users/:userId/payouts/:id\\:retry", admin, payoutAction(cfg.Payouts, false))
	app.Post("/api/users/:userId/payouts/:id\\:cancel", admin, payoutAction(cfg.Payouts, true))
	app.Get("/api/sync/status", rateLimit(cfg.SyncStatusRateLimit), syncStatus(cfg.Syncer, cfg.Store, cfg.Now))
	app.Get("/api/openapi.json", openAPI)
	app.Get("/docs", docsPage)
	if cfg.Metrics != nil {
		app.Get("/metrics", cfg.Metrics)
	}
	return app
}

// RateLimit is a request budget per client: N requests per Per.
type RateLimit struct {
	N   int
	Per time.Duration
}

// rateLimit limits each client IP on a sliding window, answering 429 with
// Retry-After in the usual error shape. The limit is per process: behind a
// load balancer each web process allows N per Per.
func rateLimit(r RateLimit) fiber.Handler {
	return rateLimitOnly(r, nil, "too many requests: at most %d per %s per client")
}

// rateLimitOnly is rateLimit for the requests only selects (nil: all);
// the others are neither counted nor limited. message formats the 429's
// message from N and Per.
func rateLimitOnly(r RateLimit, only func(*fiber.Ctx) bool, message string) fiber.Handler {
	if r.N <= 0 || r.Per <= 0 {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	var skip func(*fiber.Ctx) bool
	if only != nil {
		skip = func(c *fiber.Ctx) bool { return !only(c) }
	}
	return limiter.New(limiter.Config{
		Next:              skip,
		Max:               r.N,
		Expiration:        r.Per,
		LimiterMiddleware: limiter.SlidingWindow{},
		KeyGenerator:      func(c *fiber.Ctx) string { return c.IP() },
		LimitReached: func(c *fiber.Ctx) error {
			return scorekeeper.Errorf(scorekeeper.ERateLimited, message, r.N, r.Per)
		},
	})
}

// isWait reports whether a POST /api/sync asks to wait (the handler
// rejects a malformed wait, so only "true" matters here).
func isWait(c *fiber.Ctx) bool { return c.Query("wait") == "true" }
