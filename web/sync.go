package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// budgetSpentResponse is scorekeeper.SyncStatus.BudgetSpent as the
// status route renders it: one field per kind, in BudgetKinds order.
type budgetSpentResponse struct {
	Fresh  int `json:"fresh"`
	Rescan int `json:"rescan"`
	Probe  int `json:"probe"`
}

// syncRunResponse is the 202 body of POST /api/sync.
type syncRunResponse struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

// syncResultResponse is the 200 body of POST /api/sync?wait=true: the
// run's ids and its stats, flattened into one object.
type syncResultResponse struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	scorekeeper.SyncStats
}

type syncRunInfoResponse struct {
	WorkflowID string                 `json:"workflowId"`
	RunID      string                 `json:"runId"`
	Status     string                 `json:"status"`
	StartedAt  time.Time              `json:"startedAt"`
	ClosedAt   *time.Time             `json:"closedAt"`
	Stats      *scorekeeper.SyncStats `json:"stats"`
}

// syncStatusResponse is the body of GET /api/sync/status. Absent values
// are null rather than omitted, so the shape is always the same.
type syncStatusResponse struct {
	LastRun            *syncRunInfoResponse `json:"lastRun"`
	SyncedThrough      *time.Time           `json:"syncedThrough"`
	LagSeconds         float64              `json:"lagSeconds"`
	BudgetUsed         int                  `json:"budgetUsed"`
	BudgetLimit        int                  `json:"budgetLimit"`
	BudgetWindow       string               `json:"budgetWindow"`
	Quarantined        int                  `json:"quarantined"`
	LateCoveredThrough *time.Time           `json:"lateCoveredThrough"`
	LateLagSeconds     float64              `json:"lateLagSeconds"`
	BudgetSpent        budgetSpentResponse  `json:"budgetSpentLastHour"`
	PagesFetchedTwice  int                  `json:"pagesFetchedTwice"`
	Fetcher            *string              `json:"fetcher"`
	PayoutsOverdue     int                  `json:"payoutsOverdue"`
}

func toSyncResultResponse(r scorekeeper.SyncRun, s scorekeeper.SyncStats) syncResultResponse {
	s.SyncedThrough = s.SyncedThrough.UTC()
	return syncResultResponse{WorkflowID: r.WorkflowID, RunID: r.RunID, SyncStats: s}
}

func toSyncStatusResponse(s scorekeeper.SyncStatus) syncStatusResponse {
	out := syncStatusResponse{
		SyncedThrough:      utcOrNil(s.SyncedThrough),
		BudgetUsed:         s.BudgetUsed,
		BudgetLimit:        s.BudgetLimit,
		BudgetWindow:       durationOrEmpty(s.BudgetWindow),
		Quarantined:        s.Quarantined,
		LateCoveredThrough: utcOrNil(s.LateCoveredThrough),
		BudgetSpent: budgetSpentResponse{
			Fresh:  s.BudgetSpent[scorekeeper.BudgetFresh],
			Rescan: s.BudgetSpent[scorekeeper.BudgetRescan],
			Probe:  s.BudgetSpent[scorekeeper.BudgetProbe],
		},
		PagesFetchedTwice: int(s.PagesFetchedTwice),
		PayoutsOverdue:    s.PayoutsOverdue,
	}
	if lag, ok := s.Lag(); ok {
		out.LagSeconds = lag.Seconds()
	}
	if lag, ok := s.LateLag(); ok {
		out.LateLagSeconds = lag.Seconds()
	}
	if s.Fetcher != "" {
		f := s.Fetcher
		out.Fetcher = &f
	}
	if r := s.LastRun; r != nil {
		out.LastRun = &syncRunInfoResponse{
			WorkflowID: r.WorkflowID,
			RunID:      r.RunID,
			Status:     r.Status,
			StartedAt:  r.StartedAt.UTC(),
			ClosedAt:   utcPtr(r.ClosedAt),
		}
		if st := r.Stats; st != nil {
			stats := *st
			stats.SyncedThrough = stats.SyncedThrough.UTC()
			out.LastRun.Stats = &stats
		}
	}
	return out
}

// durationOrEmpty renders a budget window as time.Duration does ("1m0s");
// no budget (zero) is "".
func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return utcOrNil(*t)
}

// errNoSyncer answers the sync routes of a process built without one.
var errNoSyncer = scorekeeper.Errorf(scorekeeper.EUnavailable, "syncing is not available in this process")

// requireAdmin guards a route with the admin bearer token when one is set.
// A missing or malformed Authorization header is 401 (who are you?), a
// wrong token 403 (not you).
func requireAdmin(token string) fiber.Handler {
	if token == "" {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	// Comparing digests keeps the comparison constant-time in the token's
	// length too, which subtle.ConstantTimeCompare alone leaks.
	want := sha256.Sum256([]byte(token))
	return func(c *fiber.Ctx) error {
		scheme, got, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
		got = strings.TrimSpace(got)
		if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
			return scorekeeper.Errorf(scorekeeper.EUnauthorized, "this route requires Authorization: Bearer <ADMIN_TOKEN>")
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return scorekeeper.Errorf(scorekeeper.EForbidden, "the bearer token is not the admin token")
		}
		return c.Next()
	}
}

// startSync serves POST /api/sync: 202 with the run's ids, or with
// ?wait=true, 200 with its result once it finishes. A wait longer than
// waitTimeout ends in the 202 answer, so a client can poll the status; so
// does a wait=true request that finds waits full (as many in flight as it
// has slots), so that a burst of them cannot tie up the process. After a
// finished wait, catchUp (when set) makes this process's reads serve the
// synced data before the answer goes out.
func startSync(s scorekeeper.Syncer, waitTimeout time.Duration, waits chan struct{}, catchUp func(context.Context) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := queryParams(c, "wait")
		if err != nil {
			return err
		}
		wait := false
		if v, ok := q["wait"]; ok {
			switch v {
			case "true":
				wait = true
			case "false":
			default:
				return errInvalidf("wait must be true or false")
			}
		}
		if s == nil {
			return errNoSyncer
		}

		ctx := c.UserContext()
		run, err := s.StartSync(ctx)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		if wait {
			select {
			case waits <- struct{}{}:
				defer func() { <-waits }()
			default:
				// Every wait slot is taken: answer as if this wait had
				// run out. The sync is started all the same.
				wait = false
			}
		}
		if wait {
			wctx, cancel := context.WithTimeout(ctx, waitTimeout)
			defer cancel()
			stats, err := s.WaitSync(wctx, run)
			switch {
			case err == nil:
				readYourWrites(ctx, catchUp)
				return c.Status(fiber.StatusOK).JSON(toSyncResultResponse(run, stats))
			case wctx.Err() == nil || ctx.Err() != nil:
				return err
			}
			// Our wait ran out, not the sync: it is still accepted.
		}
		c.Set(fiber.HeaderLocation, "/api/sync/status")
		return c.Status(fiber.StatusAccepted).JSON(syncRunResponse{WorkflowID: run.WorkflowID, RunID: run.RunID})
	}
}

// readYourWrites runs catchUp (if any) within QueryTimeout. Its error is
// not the client's: the write it waited for did commit, and a cache that
// cannot catch up stands aside (see Cache.CatchUp), so reads still see it.
func readYourWrites(ctx context.Context, catchUp func(context.Context) error) {
	if catchUp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	_ = catchUp(ctx)
}

// syncStatus serves GET /api/sync/status: the Syncer's status. A Syncer
// that leaves SyncedThrough zero gets the store's watermark (the same
// source as X-Data-As-Of), its lag on now when it gave no clock.
func syncStatus(s scorekeeper.Syncer, store scorekeeper.Store, now func() time.Time) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := queryParams(c); err != nil {
			return err
		}
		if s == nil {
			return errNoSyncer
		}
		ctx, cancel := queryContext(c)
		defer cancel()
		st, err := s.Status(ctx)
		if err != nil {
			// The adapter reads most of the status from the database: a
			// database that is down or too slow is 503, as on every other
			// route, not a 500.
			return storeError(ctx, err)
		}
		if st.SyncedThrough.IsZero() {
			asOf, err := store.AsOf(ctx)
			if err != nil {
				return storeError(ctx, err)
			}
			if asOf != nil {
				st.SyncedThrough = *asOf
				if st.Now.IsZero() {
					st.Now = now()
				}
			}
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(toSyncStatusResponse(st))
	}
}
