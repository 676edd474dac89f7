package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"scorekeeper/activities"
	"scorekeeper/config"
	"scorekeeper/db"
	"scorekeeper/payout"
	"scorekeeper/upstream"
	"scorekeeper/worker"
)

func runWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := cfg.RequireUpstream(); err != nil {
		return err
	}
	d, c, closeAll, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	return serveWorker(ctx, cfg, d, c, log)
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

// connect opens the database (migrated) and the Temporal client every
// long-running command needs; closeAll closes both, client first.
func connect(ctx context.Context, cfg config.Config, log *slog.Logger) (*bun.DB, client.Client, func(), error) {
	d, err := openDB(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := dialTemporal(ctx, cfg, log)
	if err != nil {
		d.Close()
		return nil, nil, nil, err
	}
	return d, c, func() { c.Close(); d.Close() }, nil
}

// dialTemporal connects to the Temporal frontend, failing fast with a clear
// error when it is not there.
func dialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    tlog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at TEMPORAL_ADDRESS=%s: %w", cfg.TemporalAddress, err)
	}
	return c, nil
}
