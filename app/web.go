package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper/config"
	"scorekeeper/web"
	"scorekeeper/worker"
)

// RunWeb serves the REST API on HTTP_ADDR until ctx ends, then drains
// in-flight requests before returning.
func (a *App) RunWeb(ctx context.Context) error {
	if a.cfg.AdminToken == "" {
		a.log.Warn("ADMIN_TOKEN is unset: POST /api/sync is open to every client; set ADMIN_TOKEN to require a bearer token")
	}
	return a.serveWeb(ctx, a.cfg)
}

// serveWeb is RunWeb on cfg, which dev adjusts.
func (a *App) serveWeb(ctx context.Context, cfg config.Config) error {
	syncer := &worker.Client{
		Temporal:     a.temporal,
		Store:        a.store,
		Namespace:    cfg.TemporalNamespace,
		TaskQueue:    cfg.TemporalTaskQueue,
		SyncInterval: cfg.SyncInterval,
	}
	cache := web.NewCache(a.store, a.log.With("component", "cache"))
	go cache.Run(ctx)
	api := web.New(web.Config{
		Metrics:       a.metrics.Handler(),
		Middleware:    []fiber.Handler{a.metrics.Middleware()},
		Store:         a.store,
		Syncer:        syncer,
		Cache:         cache,
		AdminToken:    cfg.AdminToken,
		PublicBaseURL: cfg.PublicBaseURL,
		Reconciler:    syncer,
		Payouts:       syncer,
		RateLimit:     web.RateLimit{N: cfg.APIRateLimit.N, Per: cfg.APIRateLimit.Per},
		// The sync routes keep their own, tighter limits whatever
		// API_RATE_LIMIT says: they cost Temporal work, not a read.
		SyncRateLimit:       web.DefaultSyncRateLimit,
		SyncWaitRateLimit:   web.DefaultSyncWaitRateLimit,
		SyncStatusRateLimit: web.DefaultSyncStatusRateLimit,
		Logger:              a.log.With("component", "web"),
		Ready:               a.readyChecks(),
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	a.log.Info("REST API listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- api.Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := api.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shut down REST API: %w", err)
	}
	return <-errc
}
