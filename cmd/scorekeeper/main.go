// Command scorekeeper is the one binary of the service. Its subcommands are
// the processes of design §6:
//
//	scorekeeper web      the REST API
//	scorekeeper worker   the Temporal worker (creates the sync schedule)
//	scorekeeper mockapi  a realistic mock upstream and payout provider
//	scorekeeper dev      all of the above in one process
//	scorekeeper migrate  apply database migrations
//
// Configuration comes from the environment (design §7). This package only
// reads it and dispatches; package app runs the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"scorekeeper/app"
	"scorekeeper/config"
)

const usage = `usage: scorekeeper <command>

commands:
  web       serve the REST API on HTTP_ADDR
  worker    run the Temporal worker and keep the transactions-sync schedule
  mockapi   serve the mock transaction API and payout provider on MOCKAPI_ADDR
  dev       run web, worker and (where UPSTREAM_URL/PAYOUT_URL are unset) the mock in one process
  migrate   apply database migrations to DATABASE_URL

Configuration is read from the environment; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scorekeeper:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("unknown or missing command")

// run dispatches one subcommand; everything it starts stops when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) != 1 {
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return nil
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	log, closeLog := app.NewLogger(cfg, stderr)
	// Every subcommand returns through here, so buffered log lines are
	// written out on every way out of run, errors included.
	defer closeLog()
	slog.SetDefault(log)
	switch args[0] {
	case "migrate":
		return app.Migrate(ctx, cfg, log)
	case "mockapi":
		return app.RunMockAPI(ctx, cfg, getenv, log)
	case "web":
		return runApp(ctx, cfg, log, (*app.App).RunWeb)
	case "worker":
		// Before connecting, so a missing variable is the error reported.
		if err := cfg.RequireUpstream(); err != nil {
			return err
		}
		return runApp(ctx, cfg, log, (*app.App).RunWorker)
	case "dev":
		return runApp(ctx, cfg, log, func(a *app.App, ctx context.Context) error { return a.RunDev(ctx, getenv) })
	}
	return fmt.Errorf("%w: %q", errUsage, args[0])
}

// runApp opens the App, runs one command on it until ctx ends, and closes
// it.
func runApp(ctx context.Context, cfg config.Config, log *slog.Logger, command func(*app.App, context.Context) error) error {
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return command(a, ctx)
}
