package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"scorekeeper/config"
	"scorekeeper/mockapi"
)

// runDev runs the mock (where UPSTREAM_URL or PAYOUT_URL is unset), the
// worker and the REST API in one process.
func runDev(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	spawn := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}

	// A developer's own requests are not throttled unless asked for.
	if getenv("API_RATE_LIMIT") == "" {
		cfg.APIRateLimit = config.Rate{}
	}
	if cfg.UpstreamURL == "" || cfg.PayoutURL == "" {
		mcfg, err := mockapi.ConfigFromEnv(getenv)
		if err != nil {
			return err
		}
		mock, err := mockapi.New(mcfg)
		if err != nil {
			return fmt.Errorf("mock: %w", err)
		}
		ln, err := net.Listen("tcp", cfg.MockAPIAddr)
		if err != nil {
			return fmt.Errorf("MOCKAPI_ADDR: %w", err)
		}
		url := "http://" + loopbackAddr(ln.Addr())
		if cfg.UpstreamURL == "" {
			cfg.UpstreamURL = url
		}
		if cfg.PayoutURL == "" {
			cfg.PayoutURL = url
		}
		log.Info("mock upstream and payout provider listening", "url", url)
		spawn("mockapi", func() error { return serveHTTP(ctx, ln, mock) })
	}

	deps, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer deps.close()

	// One process, one registry: the API's /metrics carries the in-process
	// worker's Temporal SDK series too.
	spawn("worker", func() error { return serveWorker(ctx, cfg, deps.db, deps.temporal, log) })
	spawn("web", func() error { return serveWeb(ctx, cfg, deps, log) })
	wg.Wait()
	close(errc)
	return <-errc
}

// loopbackAddr turns a wildcard listen address into one a client can dial.
func loopbackAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return a.String()
}
