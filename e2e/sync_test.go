package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
)

// world is one end-to-end setup: mock, database, Temporal, and the env
// every scorekeeper process of the test gets.
type world struct {
	mock *mockapi.Server
	db   *bun.DB
	env  map[string]string
	// per is the budget period (budgetPer unless a scenario scales it).
	per time.Duration
	// canceled are the payouts an operator canceled (by transaction id):
	// never paid, out of payout, stored canceled.
	canceled map[string]bool
}

// budget is the fast upstream budget of these tests: 5 requests per 5 s.
const (
	budgetN   = 5
	budgetPer = 5 * time.Second
)

type mockConfig = mockapi.Config

func newWorld(t *testing.T, users, transactions int) *world {
	t.Helper()
	return newWorldTB(t, users, transactions, nil)
}

// newWorldTB builds a world; tweak adjusts the mock's configuration.
func newWorldTB(t testing.TB, users, transactions int, tweak func(*mockapi.Config), dsn ...string) *world {
	t.Helper()
	cfg := mockapi.DefaultConfig()
	// The world itself is fixed (its late and rejected items are what the
	// tests rely on) unless E2E_SEED asks for another.
	cfg.Seed = 20261128
	if v := os.Getenv("E2E_SEED"); v != "" {
		cfg.Seed = int64(testSeed(t))
	}
	cfg.Users = users
	cfg.Transactions = transactions
	cfg.History = 30 * time.Minute
	cfg.LiveRate = 0
	cfg.RateLimit, cfg.RateWindow = budgetN, budgetPer
	cfg.DuplicateRate = 0.02
	cfg.LateRate = 0.02
	cfg.LateDelay = 15 * time.Second
	cfg.MalformedRate = 0.01
	if tweak != nil {
		tweak(&cfg)
	}
	mock, err := mockapi.New(cfg)
	require.NoError(t, err)
	if cfg.LateRate > 0 && cfg.LiveRate == 0 {
		// Items hidden at the mock's start are missed by the first read of
		// their window (the worker starts later still), so matching the
		// truth below proves the overlap re-scan found them.
		require.Positive(t, mock.HiddenAt(mock.Start()), "the scenario needs late items")
	}
	hs := httptest.NewServer(mock)
	t.Cleanup(hs.Close)

	url := ""
	if len(dsn) > 0 {
		url = dsn[0] // a database of the test's own (the chaos suite restarts it)
	} else {
		url = dbtest.NewPostgresURL(t)
	}
	d, err := db.Open(url)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	require.NoError(t, db.Migrate(context.Background(), d))

	srv, _ := startTemporal(t)
	return &world{
		mock: mock,
		db:   d,
		per:  cfg.RateWindow,
		env: map[string]string{
			"DATABASE_URL":        url,
			"TEMPORAL_ADDRESS":    srv.FrontendHostPort(),
			"TEMPORAL_TASK_QUEUE": "scorekeeper-e2e",
			"UPSTREAM_URL":        hs.URL,
			"PAYOUT_URL":          hs.URL,
			"UPSTREAM_RATE":       fmt.Sprintf("%d/%s", budgetN, budgetPer),
			"UPSTREAM_TIMEOUT":    "5s",
			"SYNC_INTERVAL":       "5s",
			"SYNC_OVERLAP":        "1m",
			"SYNC_START":          mock.Start().Add(-cfg.History - time.Minute).UTC().Format(time.RFC3339),
			"LOG_LEVEL":           "warn",
			"HTTP_ADDR":           "127.0.0.1:0",
			"METRICS_ADDR":        "127.0.0.1:0",
		},
	}
}

// requireExact waits until every stored summary equals the mock's ground
// truth, then requires the store's invariants and that upstream never
// answered 429 (the budget was respected).
func (w *world) requireExact(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	eventually(t, timeout, "summaries to equal the mock's ground truth", func() (bool, string) {
		off := w.summariesOff(ctx)
		return off == "", off
	})
	requireNone(t, w.storeViolations(ctx))
	require.Zero(t, w.mock.Stats().Transactions.RateLimited, "upstream answered 429: the budget was not respected")
}

// Ensure 20,000 transactions over 2,000 users, with duplicates across
// pages, late-visible and malformed items, sync exactly within the budget.
func TestSync_EndToEnd(t *testing.T) {
	w := newWorld(t, 2000, 20000)
	startProc(t, "worker", "worker", w.env)
	base := w.startWeb(t)
	w.requireExact(t, 4*time.Minute)
	w.requireServedExact(t, base, 4*time.Minute)
}

// Ensure the sync stays exact when the worker is SIGKILLed at random
// moments and restarted.
func TestSync_WorkerKilled(t *testing.T) {
	w := newWorld(t, 2000, 20000)
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	p := startProc(t, "worker-0", "worker", w.env)
	for i := 1; i <= 4; i++ {
		time.Sleep(time.Duration(2000+rng.IntN(5000)) * time.Millisecond)
		p.kill()
		t.Logf("killed worker %d", i-1)
		p = startProc(t, fmt.Sprintf("worker-%d", i), "worker", w.env)
	}
	w.requireExact(t, 5*time.Minute)
}

// Ensure the sync stays exact against an upstream doing what the contract
// allows beyond our own mock's manners, all at once: whole-second
// createdAt whose ties come in a fresh order on every request, a copy of
// an item in some pages' last place or in another item's place, pages
// capped below our limit, one malformed item of 5 MB, a clock a second
// behind ours, and requests counted and then closed unanswered. Every summary matches the truth,
// every malformed item is quarantined (the big one as a bounded record),
// and upstream never answered 429.
func TestSync_AdversarialUpstream(t *testing.T) {
	w := newWorldTB(t, 1000, 12000, func(c *mockapi.Config) {
		c.Ordered = true
		c.WholeSeconds = true
		c.ShuffleTies = true
		c.PageDuplicates = 0.1
		c.PageCap = 300
		c.BigItemBytes = 5 << 20
		c.ClockSkew = time.Second
		c.DropRate = 0.05
	})
	startProc(t, "worker", "worker", w.env)
	w.requireExact(t, 5*time.Minute)
	st := w.mock.Stats().Transactions
	require.Positive(t, w.mock.DroppedRequests(), "the scenario needs answers lost after counting")
	require.Positive(t, w.mock.PagesWithDuplicate(), "the scenario needs copies on pages")
	t.Logf("upstream: %+v; %d dropped, %d pages with a copy", st, w.mock.DroppedRequests(), w.mock.PagesWithDuplicate())
	var big struct {
		Size      int64
		Truncated bool
	}
	require.NoError(t, w.db.NewSelect().Table("quarantine").Column("raw_size", "raw_truncated").
		Where("raw_size > ?", 1<<20).Scan(context.Background(), &big.Size, &big.Truncated))
	require.EqualValues(t, 5<<20, big.Size, "the 5 MB item is quarantined with its size")
	require.True(t, big.Truncated, "and kept as an excerpt")
}
