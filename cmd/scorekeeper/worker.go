package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/uptrace/bun"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"scorekeeper/activities"
	"scorekeeper/config"
	"scorekeeper/db"
	"scorekeeper/metrics"
	"scorekeeper/payout"
	"scorekeeper/upstream"
	"scorekeeper/web"
	"scorekeeper/worker"
)

func runWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := cfg.RequireUpstream(); err != nil {
		return err
	}
	deps, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer deps.close()
	// The worker's own /metrics (Temporal SDK series and ours) and
	// /readyz, on METRICS_ADDR.
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	log.Info("worker metrics listening", "addr", ln.Addr().String())
	ops := web.NewOps(web.OpsConfig{Metrics: deps.metrics.Handler(), Ready: readyChecks(cfg, deps), Logger: log.With("component", "ops")})
	go func() { _ = ops.Listener(ln) }()
	defer func() { _ = ops.Shutdown() }()
	return serveWorker(ctx, cfg, deps.db, deps.temporal, log)
}

// serveWorker runs the Temporal worker until ctx ends.
func serveWorker(ctx context.Context, cfg config.Config, d *bun.DB, c client.Client, log *slog.Logger) error {
	if err := worker.CheckNamespace(ctx, c, cfg.TemporalNamespace); err != nil {
		return err
	}
	acts, err := newActivities(cfg, d, c)
	if err != nil {
		return err
	}
	stop, err := worker.Start(c, cfg.TemporalTaskQueue, acts)
	if err != nil {
		return err
	}
	defer stop()
	if err := worker.EnsureSchedule(ctx, c, cfg.TemporalTaskQueue, cfg.SyncInterval); err != nil {
		return err
	}
	if err := worker.EnsureRecoverySchedule(ctx, c, worker.PayoutTaskQueue(cfg.TemporalTaskQueue)); err != nil {
		return err
	}
	if err := worker.EnsureReconcileSchedule(ctx, c, cfg.TemporalTaskQueue); err != nil {
		return err
	}
	log.Info("worker running", "taskQueue", cfg.TemporalTaskQueue, "syncInterval", cfg.SyncInterval,
		"upstreamRate", cfg.UpstreamRate.String(), "upstream", config.RedactURL(cfg.UpstreamURL))
	<-ctx.Done()
	return nil
}

// newActivities builds the activities' dependencies from the configuration.
func newActivities(cfg config.Config, d *bun.DB, c client.Client) (*activities.Activities, error) {
	up, err := upstream.New(cfg.UpstreamURL, cfg.UpstreamTimeout, nil)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_URL: %w", err)
	}
	po, err := payout.New(cfg.PayoutURL, cfg.UpstreamTimeout, nil)
	if err != nil {
		return nil, fmt.Errorf("PAYOUT_URL: %w", err)
	}
	return &activities.Activities{
		DB:            d,
		Upstream:      up,
		Payouts:       po,
		PayoutStarter: &worker.PayoutStarter{Client: c, TaskQueue: worker.PayoutTaskQueue(cfg.TemporalTaskQueue)},
		Sync: activities.SyncConfig{
			Start:     cfg.SyncStart,
			Interval:  cfg.SyncInterval,
			Overlap:   cfg.SyncOverlap,
			PageSize:  cfg.UpstreamPageSize,
			Budget:    upstreamBudget(cfg.UpstreamRate),
			LateCheck: cfg.SyncLateCheck,
		},
	}, nil
}

// upstreamBudget is the shared request budget (see db.Budget and
// db.MarginFor for why its margin can be small).
func upstreamBudget(r config.Rate) db.Budget {
	return db.Budget{Name: "upstream", N: r.N, Per: r.Per, Margin: db.MarginFor(r.Per)}
}

// deps are what every long-running command connects to: the database
// (migrated), the Temporal client, and the metrics registry the client
// reports the SDK's metrics into.
type deps struct {
	db       *bun.DB
	temporal client.Client
	metrics  *metrics.Metrics
	close    func()
}

// connect opens the database and dials Temporal, failing fast with an
// error that names the variable to fix; close closes both, client first.
func connect(ctx context.Context, cfg config.Config, log *slog.Logger) (deps, error) {
	d, err := openDB(ctx, cfg, log)
	if err != nil {
		return deps{}, err
	}
	m := metrics.New(d, log.With("component", "metrics"), upstreamBudget(cfg.UpstreamRate))
	h, stopMetrics := m.TemporalHandler(log.With("component", "metrics"))
	c, err := dialTemporal(ctx, cfg, log, h)
	if err != nil {
		stopMetrics()
		d.Close()
		return deps{}, err
	}
	return deps{db: d, temporal: c, metrics: m, close: func() { c.Close(); stopMetrics(); d.Close() }}, nil
}

// readyChecks are what /readyz checks: the database, Temporal, and the
// namespace's search attributes.
func readyChecks(cfg config.Config, deps deps) []web.ReadyCheck {
	return []web.ReadyCheck{
		web.DatabaseCheck(deps.db),
		{Name: "temporal", Check: func(ctx context.Context) error {
			_, err := deps.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
		{Name: "temporal-namespace", Check: func(ctx context.Context) error {
			return worker.CheckNamespace(ctx, deps.temporal, cfg.TemporalNamespace)
		}},
	}
}

// dialTemporal connects to the Temporal frontend, failing fast with a clear
// error when it is not there.
func dialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger, h client.MetricsHandler) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.TemporalNamespace,
		Logger:         tlog.NewStructuredLogger(log.With("component", "temporal")),
		MetricsHandler: h,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at TEMPORAL_ADDRESS=%s: %w", cfg.TemporalAddress, err)
	}
	return c, nil
}
