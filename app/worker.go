package app

import (
	"context"
	"fmt"
	"net"

	"scorekeeper/activities"
	"scorekeeper/config"
	"scorekeeper/payout"
	"scorekeeper/upstream"
	"scorekeeper/web"
	"scorekeeper/worker"
)

// RunWorker runs the Temporal worker and keeps the schedules until ctx
// ends, with its own /metrics (Temporal SDK series and ours) and /readyz
// on METRICS_ADDR.
func (a *App) RunWorker(ctx context.Context) error {
	if err := a.cfg.RequireUpstream(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	a.log.Info("worker metrics listening", "addr", ln.Addr().String())
	ops := web.NewOps(web.OpsConfig{Metrics: a.metrics.Handler(), Ready: a.readyChecks(), Logger: a.log.With("component", "ops")})
	go func() { _ = ops.Listener(ln) }()
	defer func() { _ = ops.Shutdown() }()
	return a.serveWorker(ctx, a.cfg)
}

// serveWorker runs the worker on cfg, which dev adjusts, until ctx ends.
// It refuses a namespace the payout workflows cannot run on.
func (a *App) serveWorker(ctx context.Context, cfg config.Config) error {
	if err := worker.CheckNamespace(ctx, a.temporal, cfg.TemporalNamespace); err != nil {
		return err
	}
	acts, err := a.newActivities(cfg)
	if err != nil {
		return err
	}
	stop, err := worker.Start(a.temporal, cfg.TemporalTaskQueue, acts)
	if err != nil {
		return err
	}
	defer stop()
	if err := worker.EnsureSchedule(ctx, a.temporal, cfg.TemporalTaskQueue, cfg.SyncInterval); err != nil {
		return err
	}
	if err := worker.EnsureRecoverySchedule(ctx, a.temporal, worker.PayoutTaskQueue(cfg.TemporalTaskQueue)); err != nil {
		return err
	}
	if err := worker.EnsureReconcileSchedule(ctx, a.temporal, cfg.TemporalTaskQueue); err != nil {
		return err
	}
	a.log.Info("worker running", "taskQueue", cfg.TemporalTaskQueue, "syncInterval", cfg.SyncInterval,
		"upstreamRate", cfg.UpstreamRate.String(), "upstream", config.RedactURL(cfg.UpstreamURL))
	<-ctx.Done()
	return nil
}

// newActivities builds the activities' dependencies from cfg.
func (a *App) newActivities(cfg config.Config) (*activities.Activities, error) {
	up, err := upstream.New(cfg.UpstreamURL, cfg.UpstreamTimeout, nil)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_URL: %w", err)
	}
	po, err := payout.New(cfg.PayoutURL, cfg.UpstreamTimeout, nil)
	if err != nil {
		return nil, fmt.Errorf("PAYOUT_URL: %w", err)
	}
	return &activities.Activities{
		Store:         a.store,
		Upstream:      up,
		Payouts:       po,
		PayoutStarter: &worker.PayoutStarter{Client: a.temporal, TaskQueue: worker.PayoutTaskQueue(cfg.TemporalTaskQueue)},
		Sync: activities.SyncConfig{
			Start:     cfg.SyncStart,
			Interval:  cfg.SyncInterval,
			Overlap:   cfg.SyncOverlap,
			PageSize:  cfg.UpstreamPageSize,
			Budget:    a.store.Budget(),
			LateCheck: cfg.SyncLateCheck,
		},
	}, nil
}
