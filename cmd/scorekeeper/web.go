package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/uptrace/bun"
	"go.temporal.io/sdk/client"

	"scorekeeper/config"
)

func runWeb(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	c, err := dialTemporal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	return serveWeb(ctx, cfg, d, c, log)
}

func serveWeb(ctx context.Context, cfg config.Config, d *bun.DB, c client.Client, log *slog.Logger) error {
	return errors.New("the REST API is not wired yet")
}
