package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// apiBenchUsers is how many users the load benchmark's database holds.
const apiBenchUsers = 100_000

// BenchmarkAPI loads `scorekeeper web` on Postgres with 100,000 users from
// 64 connections on loopback and reports requests/s and p50/p99 latency for
// the summary route (random users) and the payouts listing, the web
// process's peak RSS, and the same load against a constant-response Fiber
// handler: the ceiling of this machine with the load generator on it.
// Goal: summary ≥ 70% of the ceiling, p99 ≤ 10 ms.
func BenchmarkAPI(b *testing.B) {
	dsn := dbtest.NewPostgresURL(b)
	d, err := db.Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := db.Migrate(ctx, d); err != nil {
		b.Fatal(err)
	}
	seedUsers(b, d, apiBenchUsers)
	srv, _ := startTemporal(b)

	addr := freeAddrTB(b)
	web := startProc(b, "web", "web", map[string]string{
		"DATABASE_URL":     dsn,
		"TEMPORAL_ADDRESS": srv.FrontendHostPort(),
		"HTTP_ADDR":        addr,
		"LOG_LEVEL":        "warn",
		"API_RATE_LIMIT":   "off",
	})
	waitHTTP(b, "http://"+addr+"/readyz")

	ceilingAddr := freeAddrTB(b)
	ceiling := exec.Command(buildCeiling(b), ceilingAddr)
	if err := ceiling.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ceiling.Process.Kill(); _ = ceiling.Wait() }()
	waitHTTP(b, "http://"+ceilingAddr+"/")

	rng := rand.New(rand.NewPCG(1, 2))
	summary := func(base string) vegeta.Targeter {
		return func(t *vegeta.Target) error {
			t.Method = http.MethodGet
			t.URL = fmt.Sprintf("%s/api/users/%s/summary", base, userID(rng.IntN(apiBenchUsers)))
			return nil
		}
	}
	fixed := func(url string) vegeta.Targeter {
		return func(t *vegeta.Target) error {
			t.Method, t.URL = http.MethodGet, url
			return nil
		}
	}
	for range b.N {
		// Warm up the connection pools, then measure.
		attack(b, "warmup", fixed("http://"+addr+"/healthz"), 2*time.Second)
		ceil := attack(b, "ceiling", summary("http://"+ceilingAddr), 10*time.Second)
		// The first summary phase starts with an empty cache: misses
		// included. The second runs with what the first cached.
		sum := attack(b, "summary", summary("http://"+addr), 10*time.Second)
		warm := attack(b, "summary-warm", summary("http://"+addr), 10*time.Second)
		pay := attack(b, "payouts", fixed("http://"+addr+"/api/payouts?limit=100"), 10*time.Second)
		for _, r := range []struct {
			name string
			m    *vegeta.Metrics
		}{{"ceiling", ceil}, {"summary", sum}, {"summary-warm", warm}, {"payouts", pay}} {
			b.ReportMetric(r.m.Throughput, r.name+"-req/s")
			b.ReportMetric(float64(r.m.Latencies.P50.Microseconds())/1000, r.name+"-p50-ms")
			b.ReportMetric(float64(r.m.Latencies.P99.Microseconds())/1000, r.name+"-p99-ms")
			if r.m.Success < 1 {
				b.Errorf("%s: success ratio %.4f, errors %v", r.name, r.m.Success, r.m.Errors)
			}
		}
		b.ReportMetric(100*sum.Throughput/ceil.Throughput, "summary-%-of-ceiling")
		b.ReportMetric(100*warm.Throughput/ceil.Throughput, "summary-warm-%-of-ceiling")
		b.ReportMetric(peakRSSMiB(b, web.cmd.Process.Pid), "web-peak-rss-MiB")
	}
}

// attack runs one load phase from 64 connections as fast as they go.
func attack(b *testing.B, name string, tr vegeta.Targeter, d time.Duration) *vegeta.Metrics {
	b.Helper()
	a := vegeta.NewAttacker(vegeta.Workers(64), vegeta.MaxWorkers(64), vegeta.Connections(64),
		vegeta.KeepAlive(true), vegeta.Timeout(5*time.Second))
	var m vegeta.Metrics
	for res := range a.Attack(tr, vegeta.Rate{}, d, name) {
		m.Add(res)
	}
	m.Close()
	return &m
}

func userID(i int) string { return fmt.Sprintf("u%06d", i) }

// seedUsers stores one earned and one payout transaction per user.
func seedUsers(b *testing.B, d *bun.DB, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]scorekeeper.Transaction, 0, 1000)
	flush := func() {
		if _, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: batch}, time.Now()); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		u := userID(i)
		batch = append(batch,
			scorekeeper.Transaction{ID: "e" + u, UserID: u, CreatedAt: at, Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(int64(1000 + i%5000))},
			scorekeeper.Transaction{ID: "p" + u, UserID: u, CreatedAt: at, Type: scorekeeper.TxPayout, Amount: scorekeeper.AmountFromCents(int64(1 + i%700))})
		if len(batch) >= 1000 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if _, err := db.EnsureSyncState(ctx, d, db.TransactionsStream, at, time.Now()); err != nil {
		b.Fatal(err)
	}
}

func buildCeiling(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "ceiling")
	cmd := exec.Command("go", "build", "-o", out, "./ceiling")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return out
}

func waitHTTP(tb testing.TB, url string) {
	tb.Helper()
	eventually(tb, 30*time.Second, url, func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// peakRSSMiB reads the process's peak resident set size (VmHWM).
func peakRSSMiB(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Logf("read RSS: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
