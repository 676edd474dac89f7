package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper/config"
	"scorekeeper/web"
)

func runWeb(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.AdminToken == "" {
		log.Warn("ADMIN_TOKEN is unset: POST /api/sync is open to every client; set ADMIN_TOKEN to require a bearer token")
	}
	deps, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer deps.close()
	return serveWeb(ctx, cfg, deps, log)
}

// serveWeb serves the REST API on HTTP_ADDR until ctx ends, then drains
// in-flight requests before returning.
func serveWeb(ctx context.Context, cfg config.Config, deps deps, log *slog.Logger) error {
	d, c, m := deps.db, deps.temporal, deps.metrics
	syncer := &temporalSyncer{client: c, db: d, cfg: cfg}
	cache := web.NewCache(d, log.With("component", "cache"))
	go cache.Run(ctx)
	app := web.New(web.Config{
		Metrics:       m.Handler(),
		Middleware:    []fiber.Handler{m.Middleware()},
		DB:            d,
		Syncer:        syncer,
		Cache:         cache,
		AdminToken:    cfg.AdminToken,
		PublicBaseURL: cfg.PublicBaseURL,
		Reconciler:    syncer,
		RateLimit:     web.RateLimit{N: cfg.APIRateLimit.N, Per: cfg.APIRateLimit.Per},
		// The sync routes keep their own, tighter limits whatever
		// API_RATE_LIMIT says: they cost Temporal work, not a read.
		SyncRateLimit:       web.DefaultSyncRateLimit,
		SyncWaitRateLimit:   web.DefaultSyncWaitRateLimit,
		SyncStatusRateLimit: web.DefaultSyncStatusRateLimit,
		Logger:              log.With("component", "web"),
		Ready:               readyChecks(cfg, deps),
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	log.Info("REST API listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := app.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shut down REST API: %w", err)
	}
	return <-errc
}
