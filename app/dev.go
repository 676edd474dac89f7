package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"scorekeeper/config"
	"scorekeeper/mockapi"
)

// RunDev runs the mock (where UPSTREAM_URL or PAYOUT_URL is unset), the
// worker and the REST API in one process until ctx ends or one of them
// fails. getenv supplies the mock's configuration and tells whether
// API_RATE_LIMIT was set.
func (a *App) RunDev(ctx context.Context, getenv func(string) string) error {
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

	cfg := a.cfg
	// A developer's own requests are not throttled unless asked for.
	if getenv("API_RATE_LIMIT") == "" {
		cfg.APIRateLimit = config.Rate{}
	}
	if cfg.UpstreamURL == "" || cfg.PayoutURL == "" {
		mock, ln, err := listenMock(cfg, getenv)
		if err != nil {
			return err
		}
		url := "http://" + loopbackAddr(ln.Addr())
		if cfg.UpstreamURL == "" {
			cfg.UpstreamURL = url
		}
		if cfg.PayoutURL == "" {
			cfg.PayoutURL = url
		}
		a.log.Info("mock upstream and payout provider listening", "url", url)
		spawn("mockapi", func() error { return serveHTTP(ctx, ln, mock) })
	}

	// One process, one registry: the API's /metrics carries the in-process
	// worker's Temporal SDK series too.
	spawn("worker", func() error { return a.serveWorker(ctx, cfg) })
	spawn("web", func() error { return a.serveWeb(ctx, cfg) })
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

// listenMock builds the mock from the MOCK_* variables and listens on
// MOCKAPI_ADDR.
func listenMock(cfg config.Config, getenv func(string) string) (*mockapi.Server, net.Listener, error) {
	mcfg, err := mockapi.ConfigFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	mock, err := mockapi.New(mcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("mock: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.MockAPIAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("MOCKAPI_ADDR: %w", err)
	}
	return mock, ln, nil
}
