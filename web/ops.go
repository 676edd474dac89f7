package web

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// OpsConfig configures the operations endpoints of a process that serves
// no API (the worker).
type OpsConfig struct {
	// Metrics serves GET /metrics.
	Metrics fiber.Handler
	// Ready lists what GET /readyz checks.
	Ready  []ReadyCheck
	Logger *slog.Logger
}

// NewOps returns an app with GET /healthz, /readyz and /metrics only: the
// worker's METRICS_ADDR.
func NewOps(cfg OpsConfig) *fiber.App {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/healthz", healthz)
	app.Get("/readyz", readyz(cfg.Ready, log))
	if cfg.Metrics != nil {
		app.Get("/metrics", cfg.Metrics)
	}
	return app
}
