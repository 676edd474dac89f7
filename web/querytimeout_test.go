package web_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/web"
)

// hangingStore is a fakeStore behind a database that does not answer: a
// read that hangs waits for its context to end and then fails with the
// context's error, as a driver does when a query's deadline passes. The
// change feed (what a Cache follows) and the queries (the routes' reads
// and the cache's warm-up) hang separately. Every route read records the
// time its context left it, from the call to the deadline.
type hangingStore struct {
	*fakeStore
	// hangFeed makes Changes hang; hangReads every other read.
	hangFeed, hangReads bool

	mu        sync.Mutex
	feedReads int
	// budgets holds, for each route read, its context's deadline less the
	// time of the call; noDeadline when it had none.
	budgets []time.Duration
}

const noDeadline = time.Duration(-1)

var _ scorekeeper.Store = (*hangingStore)(nil)

// read records a route read's deadline and, when hang is set, waits for
// ctx to end and returns the driver's error for it.
func (s *hangingStore) read(ctx context.Context, hang, route bool) error {
	if route {
		budget := noDeadline
		if d, ok := ctx.Deadline(); ok {
			budget = time.Until(d)
		}
		s.mu.Lock()
		s.budgets = append(s.budgets, budget)
		s.mu.Unlock()
	}
	if !hang {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("pgdriver: query canceled: %w", ctx.Err())
}

func (s *hangingStore) recorded() (feedReads int, budgets []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.feedReads, append([]time.Duration(nil), s.budgets...)
}

func (s *hangingStore) Changes(ctx context.Context, after int64) (scorekeeper.Changes, error) {
	s.mu.Lock()
	s.feedReads++
	s.mu.Unlock()
	if err := s.read(ctx, s.hangFeed, false); err != nil {
		return scorekeeper.Changes{}, err
	}
	return s.fakeStore.Changes(ctx, after)
}

func (s *hangingStore) SummariesAfter(ctx context.Context, after string, limit int) ([]scorekeeper.Summary, error) {
	if err := s.read(ctx, s.hangReads, false); err != nil {
		return nil, err
	}
	return s.fakeStore.SummariesAfter(ctx, after, limit)
}

func (s *hangingStore) AsOf(ctx context.Context) (*time.Time, error) {
	if err := s.read(ctx, s.hangReads, true); err != nil {
		return nil, err
	}
	return s.fakeStore.AsOf(ctx)
}

func (s *hangingStore) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	if err := s.read(ctx, s.hangReads, true); err != nil {
		return scorekeeper.Summary{}, err
	}
	return s.fakeStore.Summary(ctx, userID)
}

func (s *hangingStore) PayoutTotals(ctx context.Context, f scorekeeper.PayoutFilter) ([]scorekeeper.PayoutTotal, int, error) {
	if err := s.read(ctx, s.hangReads, true); err != nil {
		return nil, 0, err
	}
	return s.fakeStore.PayoutTotals(ctx, f)
}

func (s *hangingStore) QuarantinePage(ctx context.Context, f scorekeeper.QuarantineFilter) ([]scorekeeper.QuarantineItem, int, error) {
	if err := s.read(ctx, s.hangReads, true); err != nil {
		return nil, 0, err
	}
	return s.fakeStore.QuarantinePage(ctx, f)
}

// timeoutTargets are the routes that read the store, with the status each
// answers when the store does answer.
var timeoutTargets = []struct {
	target string
	ok     int
}{
	{"/api/users/445566/summary", http.StatusOK},
	{"/api/users/999999/summary", http.StatusNotFound},
	{"/api/payouts", http.StatusOK},
	{"/api/payouts?status=paid&sort=-payoutAmount&limit=1", http.StatusOK},
	{"/api/quarantine", http.StatusOK},
	{"/api/sync/status", http.StatusOK},
}

// Ensure a database that does not answer within the query deadline is
// 503 unavailable with the documented error body (design §3: a dependency
// is down; openapi.json's 503 of every route that reads the store), never
// a 500, without the driver's words, on every route that reads it,
// through the cache as production runs it: when only the queries hang
// (the cache follows the change feed, but what a request needs is not in
// memory) and when the whole database hangs (the cache cannot follow and
// stands aside). And ensure each read carries a deadline of QueryTimeout,
// which is what turns a database that hangs into this 503 in production.
//
// QueryTimeout is 10 s and not configurable; queryContext bounds a
// request's store work by the earlier of it and the request context's own
// deadline, so a middleware giving every request a deadline of
// shortTimeout drives the branch in milliseconds.
func TestStore_QueryTimeout(t *testing.T) {
	const shortTimeout = 50 * time.Millisecond
	shortDeadline := func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), shortTimeout)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
	k := newContract(t)

	for _, tc := range []struct {
		name     string
		hangFeed bool
	}{
		{"ErrQueriesHang", false},
		{"ErrDatabaseHangs", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &hangingStore{fakeStore: newFakeStore().seed(), hangFeed: tc.hangFeed, hangReads: true}
			app, _, logs := MustNewApp(t, web.Config{
				Store:      store,
				Syncer:     newFakeSyncer(), // its status leaves syncedThrough to the store
				Middleware: []fiber.Handler{shortDeadline},
			})
			if !tc.hangFeed {
				// A second poll has begun, so the first succeeded: the
				// cache follows, and the reads below go through it.
				require.Eventually(t, func() bool { n, _ := store.recorded(); return n >= 2 }, 5*time.Second, time.Millisecond)
			}
			for _, x := range timeoutTargets {
				start := time.Now()
				resp, body := k.check(t, exchange{app: app, method: http.MethodGet, target: x.target, status: http.StatusServiceUnavailable})
				took := time.Since(start)
				require.Equal(t, `{"error":{"code":"unavailable","message":"the database did not answer in time"}}`, body, x.target)
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), x.target)
				require.GreaterOrEqual(t, took, shortTimeout, "%s answered before the deadline", x.target)
				require.Less(t, took, web.QueryTimeout, "%s waited past the deadline", x.target)
			}
			_, budgets := store.recorded()
			require.NotEmpty(t, budgets)
			for _, b := range budgets {
				require.NotEqual(t, noDeadline, b, "a store read without a deadline")
				require.LessOrEqual(t, b, shortTimeout)
			}
			require.Contains(t, logs.String(), "context deadline exceeded", "the cause is logged")
		})
	}

	t.Run("OKDeadlineIsQueryTimeout", func(t *testing.T) {
		// The feed hangs, so the cache stands aside and every read reaches
		// the store; the reads themselves answer, without the middleware.
		store := &hangingStore{fakeStore: newFakeStore().seed(), hangFeed: true}
		app, _, _ := MustNewApp(t, web.Config{Store: store, Syncer: newFakeSyncer()})
		for _, x := range timeoutTargets {
			resp, body := do(t, app, http.MethodGet, x.target)
			require.Equal(t, x.ok, resp.StatusCode, "%s: %s", x.target, body)
		}
		_, budgets := store.recorded()
		require.GreaterOrEqual(t, len(budgets), len(timeoutTargets))
		for _, b := range budgets {
			require.NotEqual(t, noDeadline, b, "a store read without a deadline")
			require.LessOrEqual(t, b, web.QueryTimeout)
			require.Greater(t, b, web.QueryTimeout-time.Second, "the deadline is QueryTimeout from the request")
		}
	})
}
