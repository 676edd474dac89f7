// Package app is the service as a value: App opens what every long-running
// process of design §6 needs (the database, migrated; the metrics
// registry; the Temporal client) and runs the REST API, the worker, or
// both beside the mock, until its context ends. It keeps no globals and
// never exits the process, so tests run it in-process as cmd/scorekeeper
// does.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"scorekeeper/config"
	"scorekeeper/db"
	"scorekeeper/metrics"
	"scorekeeper/web"
	"scorekeeper/worker"
)

// App is one process's connections. Create it with New, run one of RunWeb,
// RunWorker or RunDev, and Close it when that returns.
type App struct {
	cfg config.Config
	log *slog.Logger
	db  *bun.DB
	// store is db as the root's Store port, with the upstream budget
	// every process shares through the database: the worker spends it,
	// metrics and the status route report it.
	store       *db.Store
	temporal    client.Client
	metrics     *metrics.Metrics
	stopMetrics func()
}

// New opens the database (applying pending migrations) and dials
// Temporal, failing fast with an error that names the variable to fix.
// The Temporal client reports the SDK's metrics into the App's registry.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	d, err := openDB(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, db: d, store: db.NewStore(d, db.NewBudget("upstream", cfg.UpstreamRate.N, cfg.UpstreamRate.Per))}
	a.metrics = metrics.New(a.store, log.With("component", "metrics"))
	var h client.MetricsHandler
	h, a.stopMetrics = a.metrics.TemporalHandler(log.With("component", "metrics"))
	if a.temporal, err = dialTemporal(ctx, cfg, log, h); err != nil {
		a.stopMetrics()
		d.Close()
		return nil, err
	}
	return a, nil
}

// Close closes the Temporal client, then the metrics reporter and the
// database the client's last reports may still use.
func (a *App) Close() {
	a.temporal.Close()
	a.stopMetrics()
	a.db.Close()
}

// Migrate applies pending migrations to DATABASE_URL and reports it: the
// migrate command, which needs nothing else.
func Migrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	log.Info("migrations applied", "database", config.RedactURL(cfg.DatabaseURL))
	return nil
}

// openDB opens DATABASE_URL and applies pending migrations, as every
// process does at start.
func openDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*bun.DB, error) {
	d, err := db.Open(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := db.Ping(ctx, d); err != nil {
		d.Close()
		return nil, fmt.Errorf("connect to database %s: %w", config.RedactURL(cfg.DatabaseURL), err)
	}
	if err := db.Migrate(ctx, d); err != nil {
		d.Close()
		return nil, err
	}
	log.Debug("database ready", "database", config.RedactURL(cfg.DatabaseURL))
	return d, nil
}

// dialTemporal connects to the Temporal frontend with the options config
// loaded (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key: the Temporal
// CLI's variables and profile), failing fast with a clear error when it is
// not there or refuses the connection.
func dialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger, h client.MetricsHandler) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	opts := cfg.TemporalClientOptions()
	opts.Logger = tlog.NewStructuredLogger(log.With("component", "temporal"))
	opts.MetricsHandler = h
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		hint := ""
		if t := cfg.Temporal; t.TLS && !t.ClientCert && !t.APIKey {
			// A server that requires client certificates closes the
			// connection without one; gRPC reports only that.
			hint = " (if the server requires a client certificate, mTLS, set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)"
		}
		return nil, fmt.Errorf("connect to Temporal at TEMPORAL_ADDRESS=%s (%s): %w%s", cfg.TemporalAddress, cfg.Temporal, err, hint)
	}
	log.Info("Temporal client connected", "address", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace, "connection", cfg.Temporal)
	return c, nil
}

// readyChecks are what /readyz checks, on the API and on the worker's ops
// server alike: the database, Temporal, and the namespace's search
// attributes.
func (a *App) readyChecks() []web.ReadyCheck {
	return []web.ReadyCheck{
		web.StoreCheck(a.store),
		{Name: "temporal", Check: func(ctx context.Context) error {
			_, err := a.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
		{Name: "temporal-namespace", Check: func(ctx context.Context) error {
			return worker.CheckNamespace(ctx, a.temporal, a.cfg.TemporalNamespace)
		}},
	}
}
