package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.temporal.io/sdk/client"

	"scorekeeper/config"
	"scorekeeper/metrics"
	"scorekeeper/web"
	"scorekeeper/worker"
)

func runWeb(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.AdminToken == "" {
		log.Warn("ADMIN_TOKEN is unset: POST /api/sync is open to every client; set ADMIN_TOKEN to require a bearer token")
	}
	d, c, closeAll, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	return serveWeb(ctx, cfg, d, c, log)
}

// serveWeb serves the REST API on HTTP_ADDR until ctx ends, then drains
// in-flight requests before returning.
func serveWeb(ctx context.Context, cfg config.Config, d *bun.DB, c client.Client, log *slog.Logger) error {
	m := metrics.New(d, log.With("component", "metrics"), upstreamBudget(cfg.UpstreamRate))
	cache := web.NewCache(d, log.With("component", "cache"))
	go cache.Run(ctx)
	app := web.New(web.Config{
		Metrics:    m.Handler(),
		Middleware: []fiber.Handler{m.Middleware()},
		DB:         d,
		Syncer:     &temporalSyncer{client: c, db: d, cfg: cfg},
		Cache:      cache,
		AdminToken: cfg.AdminToken,
		RateLimit:  web.RateLimit{N: cfg.APIRateLimit.N, Per: cfg.APIRateLimit.Per},
		Logger:     log.With("component", "web"),
		Ready: []web.ReadyCheck{
			web.DatabaseCheck(d),
			{Name: "temporal", Check: func(ctx context.Context) error {
				_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			}},
			{Name: "temporal-namespace", Check: func(ctx context.Context) error {
				return worker.CheckNamespace(ctx, c, cfg.TemporalNamespace)
			}},
		},
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
