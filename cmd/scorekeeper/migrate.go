package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/uptrace/bun"

	"scorekeeper/config"
	"scorekeeper/db"
)

func runMigrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
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
