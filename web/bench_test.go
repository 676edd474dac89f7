package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/internal/logbuf"
	"scorekeeper/internal/textlog"
	"scorekeeper/metrics"
	"scorekeeper/web"
)

// BenchmarkSummaryRoute is the CPU one GET /api/users/{id}/summary costs
// the web process when its cache answers, through the whole stack as
// app wires it (request id, access log, metrics, error
// rendering), without the network: with access logs on (through a
// logbuf.Writer, as app.NewLogger does, to a pipe drained by another
// goroutine, as stderr is by a supervisor) and off, and Fiber's constant
// handler for scale. `go test -run '^$' -bench SummaryRoute -cpuprofile cpu.out ./web/`
// shows where it goes.
func BenchmarkSummaryRoute(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := dbtest.NewSQLite(b)
	const users = 1000
	var txs []scorekeeper.Transaction
	for i := range users {
		txs = append(txs, tx(fmt.Sprintf("t%d", i), fmt.Sprintf("u%04d", i), scorekeeper.TxEarned, "1.5"))
	}
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, t0)
	require.NoError(b, err)
	store := db.NewStore(d, db.Budget{Name: "upstream", N: 5, Per: time.Minute})
	cache := web.NewCache(store, nil)
	require.NoError(b, cache.Poll(ctx))
	require.NoError(b, cache.Warm(ctx))
	go cache.Run(ctx)

	serve := func(b *testing.B, h fasthttp.RequestHandler) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var fctx fasthttp.RequestCtx
			i := 0
			for pb.Next() {
				fctx.Request.Reset()
				fctx.Response.Reset()
				fctx.Request.SetRequestURI(fmt.Sprintf("/api/users/u%04d/summary", i%users))
				i++
				h(&fctx)
				if fctx.Response.StatusCode() != fiber.StatusOK {
					b.Fatalf("status %d: %s", fctx.Response.StatusCode(), fctx.Response.Body())
				}
			}
		})
	}
	app := func(level slog.Level) fasthttp.RequestHandler {
		r, pw, err := os.Pipe()
		require.NoError(b, err)
		go func() { _, _ = io.Copy(io.Discard, r) }()
		w := logbuf.New(pw, logbuf.Options{})
		b.Cleanup(func() { w.Close(); pw.Close(); r.Close() })
		opts := &slog.HandlerOptions{Level: level}
		// As app wires it: the web logger carries component=web.
		log := slog.New(logbuf.Split(slog.LevelWarn, textlog.New(w.Lossy(), opts), textlog.New(w, opts))).With("component", "web")
		m := metrics.New(store, slog.New(slog.DiscardHandler))
		return web.New(web.Config{
			Store: store, Cache: cache, Logger: log,
			Metrics: m.Handler(), Middleware: []fiber.Handler{m.Middleware()},
		}).Handler()
	}
	b.Run("logs=on", func(b *testing.B) { serve(b, app(slog.LevelInfo)) })
	b.Run("logs=off", func(b *testing.B) { serve(b, app(slog.LevelWarn)) })
	b.Run("constant", func(b *testing.B) {
		ceiling := fiber.New(fiber.Config{DisableStartupMessage: true})
		body := []byte(seedSummary)
		ceiling.Get("/*", func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(body)
		})
		serve(b, ceiling.Handler())
	})
}

// BenchmarkLedgerRoute is the CPU a ledger page of 100 rows (GET
// /api/users/{id}/transactions?limit=100&to=…) costs the web process when
// the user's 5,000-row ledger is in its cache, beside the summary of the
// same user, without the network or logs: what BenchmarkLedgerAPI's
// ratio is made of on the server's side.
func BenchmarkLedgerRoute(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := dbtest.NewSQLite(b)
	var txs []scorekeeper.Transaction
	for i := range 5000 {
		t := tx(fmt.Sprintf("t%08d", i), "h0001", []scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}[i%3], "1.5")
		t.CreatedAt = t0.Add(time.Duration(i)*517*time.Second + time.Duration(i%1000)*time.Millisecond)
		txs = append(txs, t)
	}
	_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, t0)
	require.NoError(b, err)
	_, err = db.EnsureSyncState(ctx, d, db.TransactionsStream, t0.Add(1000*time.Hour), t0)
	require.NoError(b, err)
	store := db.NewStore(d, db.Budget{Name: "upstream", N: 5, Per: time.Minute})
	cache := web.NewCache(store, nil)
	require.NoError(b, cache.Poll(ctx))
	go cache.Run(ctx)
	h := web.New(web.Config{Store: store, Cache: cache, Logger: slog.New(slog.DiscardHandler)}).Handler()
	for name, path := range map[string]string{
		"summary": "/api/users/h0001/summary",
		"ledger":  "/api/users/h0001/transactions?limit=100&to=2023-02-10T00:00:00Z",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var fctx fasthttp.RequestCtx
				for pb.Next() {
					fctx.Request.Reset()
					fctx.Response.Reset()
					fctx.Request.SetRequestURI(path)
					h(&fctx)
					if fctx.Response.StatusCode() != fiber.StatusOK {
						b.Fatalf("status %d: %s", fctx.Response.StatusCode(), fctx.Response.Body())
					}
				}
			})
		})
	}
}
