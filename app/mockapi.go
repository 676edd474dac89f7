package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"scorekeeper/config"
)

// RunMockAPI serves the mock transaction API and payout provider on
// MOCKAPI_ADDR until ctx ends: the mockapi command, which needs neither
// database nor Temporal.
func RunMockAPI(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger) error {
	mock, ln, err := listenMock(cfg, getenv)
	if err != nil {
		return err
	}
	mcfg := mock.Config()
	log.Info("mock upstream and payout provider listening", "addr", ln.Addr().String(),
		"users", mcfg.Users, "transactions", mcfg.Transactions, "rate", fmt.Sprintf("%d/%s", mcfg.RateLimit, mcfg.RateWindow))
	return serveHTTP(ctx, ln, mock)
}

// serveHTTP serves h on ln until ctx ends, then drains in-flight requests.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
