// Command scorekeeper is the one binary of the service. Its subcommands are
// the processes of design §6:
//
//	scorekeeper web      the REST API
//	scorekeeper worker   the Temporal worker (creates the sync schedule)
//	scorekeeper mockapi  a realistic mock upstream and payout provider
//	scorekeeper dev      all of the above in one process
//	scorekeeper migrate  apply database migrations
//
// Configuration comes from the environment (design §7).
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
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stderr, usage)
			return nil
		}
		return errUsage
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	switch args[0] {
	case "migrate":
		return runMigrate(ctx, cfg, log)
	case "mockapi":
		return runMockAPI(ctx, cfg, getenv, log)
	case "web":
		return runWeb(ctx, cfg, log)
	case "worker":
		return runWorker(ctx, cfg, log)
	case "dev":
		return runDev(ctx, cfg, getenv, log)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	return fmt.Errorf("%w: %q", errUsage, args[0])
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
