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
	"time"

	"scorekeeper/config"
	"scorekeeper/internal/logbuf"
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
	log, closeLog := newLogger(cfg, stderr)
	// Every subcommand returns through here, so buffered log lines are
	// written out on every way out of run, errors included.
	defer closeLog()
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

// newLogger returns the process's logger, writing to w through a
// logbuf.Writer, and the function that flushes and closes it (run defers
// it). Records below warn (the info access lines) are buffered and
// written in batches, and dropped, counted, only when w cannot keep up;
// warnings and errors (5xx access lines among them) are never dropped and
// are on w when their log call returns. Dropped lines are reported every
// dropReportEvery while they occur, and at close.
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, func()) {
	buf := logbuf.New(w, logbuf.Options{})
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	handler := func(out io.Writer) slog.Handler {
		if cfg.LogFormat == "json" {
			return slog.NewJSONHandler(out, opts)
		}
		return slog.NewTextHandler(out, opts)
	}
	log := slog.New(logbuf.Split(slog.LevelWarn, handler(buf.Lossy()), handler(buf)))

	stop, stopped := make(chan struct{}), make(chan struct{})
	var reported uint64
	report := func() {
		if n := buf.Dropped(); n > reported {
			log.Warn("log lines dropped: the log output could not keep up", "dropped", n-reported, "dropped_total", n)
			reported = n
		}
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(dropReportEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report()
			}
		}
	}()
	return log, func() {
		close(stop)
		<-stopped
		report()
		if err := buf.Close(); err != nil {
			fmt.Fprintln(w, "scorekeeper: write logs:", err)
		}
	}
}

// dropReportEvery is how often dropped log lines are reported.
const dropReportEvery = 10 * time.Second
