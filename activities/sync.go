package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/upstream"
)

// Window kinds: a fresh window moves the watermark forward; a re-scan
// window re-reads the overlap behind it for items that became visible late.
const (
	KindFresh  = "fresh"
	KindRescan = "rescan"
)

// PlanInput asks PlanPage for the next page of work.
type PlanInput struct {
	// NewWindowAfter is the least age of the watermark for which a new
	// fresh window is opened. The first plan of a run passes a second, so a
	// run always catches up; later plans pass the schedule interval, so a
	// run does not spend budget on slivers the next run fetches whole.
	NewWindowAfter time.Duration `json:"newWindowAfter"`
	// AllowRescan lets the plan fall back to the overlap re-scan.
	AllowRescan bool `json:"allowRescan"`
}

// PageRequest is one upstream request, both window ends inclusive.
type PageRequest struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Page  int       `json:"page"`
	Limit int       `json:"limit"`
}

// PlanResult is the next page to fetch, or Done.
type PlanResult struct {
	Done bool `json:"done"`
	// Kind is KindFresh or KindRescan.
	Kind    string      `json:"kind,omitempty"`
	Request PageRequest `json:"request"`
	// Version is the sync state version the plan was read at; ApplyPage
	// advances the state only if it is still current.
	Version       int64     `json:"version"`
	SyncedThrough time.Time `json:"syncedThrough"`
	// Keep is the budget a re-scan must leave free: the requests fresh
	// data is expected to need within one budget period.
	Keep int `json:"keep,omitempty"`
	// NextWindowIn, when Done, is how soon a page of new data is expected
	// to have accrued (zero when unknown).
	NextWindowIn time.Duration `json:"nextWindowIn,omitempty"`
	// PlannedAt is when the fresh window was opened.
	PlannedAt time.Time `json:"plannedAt,omitzero"`
}

// cursor is the sync's progress record, stored in sync_state.cursor and
// written only together with the data it covers.
type cursor struct {
	Fresh  *window `json:"fresh,omitempty"`
	Rescan *window `json:"rescan,omitempty"`
	// LateTo is how far late items are covered: every instant up to it was
	// read from upstream at least SYNC_OVERLAP after it, so items that
	// became visible up to that late are stored. (LateTo, watermark] is
	// still to be re-scanned once SYNC_OVERLAP has passed behind it.
	LateTo time.Time `json:"lateTo,omitzero"`
	// Rate is upstream's volume (items per second) in the last closed
	// fresh window; PlanPage sizes windows from it to fill whole pages.
	Rate float64 `json:"rate,omitempty"`
}

// pageFill is the share of a page a window is sized to fill: a little
// under one, so a burst rarely spills a handful of items onto an extra,
// nearly empty page.
const pageFill = 0.95

type window struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	NextPage int       `json:"nextPage"`
	// PlannedAt is when a fresh window was opened: its pages were all read
	// after this, so instants older than PlannedAt − overlap need no
	// re-scan.
	PlannedAt time.Time `json:"plannedAt,omitzero"`
}

func parseCursor(s string) (cursor, error) {
	var c cursor
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("stored sync cursor is corrupt: %w", err)
	}
	return c, nil
}

// PlanPage reads the stored sync state and decides the next page: the open
// fresh window first, then a new fresh window, then the overlap re-scan.
// It writes nothing; ApplyPage records progress with the data.
func (a *Activities) PlanPage(ctx context.Context, in PlanInput) (PlanResult, error) {
	now := a.now()
	st, err := db.EnsureSyncState(ctx, a.DB, db.TransactionsStream, a.Sync.Start, now)
	if err != nil {
		return PlanResult{}, err
	}
	cur, err := parseCursor(st.Cursor)
	if err != nil {
		return PlanResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "CorruptCursor", err)
	}
	res := PlanResult{Version: st.Version, SyncedThrough: st.SyncedThrough}
	page := func(kind string, w window) PlanResult {
		res.Kind = kind
		res.PlannedAt = w.PlannedAt
		res.Request = PageRequest{Start: w.Start, End: w.End, Page: w.NextPage, Limit: a.Sync.PageSize}
		return res
	}
	// Upstream dates have whole seconds; a window never ends in the future.
	end := now.Truncate(time.Second)
	age := end.Sub(st.SyncedThrough)
	// A window of whole pages: a window's last page is usually partial,
	// and at high volume that waste is what the budget cannot afford.
	// From the last window's rate, size the window to the whole pages of
	// data that have accrued, and open one as soon as a page has.
	var pageSpan time.Duration
	if cur.Rate > 0 {
		pageSpan = time.Duration(float64(a.Sync.PageSize) * pageFill / cur.Rate * float64(time.Second))
	}
	due := age > 0 && (age >= in.NewWindowAfter || (pageSpan >= time.Second && age >= pageSpan))
	switch {
	case cur.Fresh != nil:
		return page(KindFresh, *cur.Fresh), nil
	case due:
		e := end
		if pageSpan >= time.Second && age >= pageSpan {
			if pe := st.SyncedThrough.Add(age / pageSpan * pageSpan).Truncate(time.Second); pe.After(st.SyncedThrough) {
				e = pe
			}
		}
		return page(KindFresh, window{Start: st.SyncedThrough, End: e, NextPage: 1, PlannedAt: now}), nil
	}
	if pageSpan >= time.Second {
		res.NextWindowIn = max(pageSpan-age, time.Second)
		// Fresh pages expected per budget period, plus one for bursts.
		res.Keep = int(float64(a.Sync.Budget.Per)/float64(pageSpan)) + 1
	}
	switch {
	case !in.AllowRescan || a.Sync.Overlap <= 0:
	case cur.Rescan != nil:
		return page(KindRescan, *cur.Rescan), nil
	default:
		// Re-scan what was read before its late items could all be
		// visible, once SYNC_OVERLAP has passed behind it, in chunks of
		// at least an interval so each request is worth its budget.
		from := cur.LateTo
		if from.IsZero() {
			from = a.Sync.Start
		}
		to := now.Add(-a.Sync.Overlap).Truncate(time.Second)
		if to.After(st.SyncedThrough) {
			to = st.SyncedThrough
		}
		if to.Sub(from) >= max(a.Sync.Interval, time.Second) {
			return page(KindRescan, window{Start: from, End: to, NextPage: 1}), nil
		}
	}
	res.Done = true
	return res, nil
}

// FetchPageInput is one upstream request to make within the budget.
type FetchPageInput struct {
	Request PageRequest `json:"request"`
	// NoWait skips the request instead of waiting when the budget has no
	// room now: the re-scan only uses budget that fresh data leaves over.
	NoWait bool `json:"noWait"`
	// Keep is how many budget slots must stay free after this request.
	Keep int `json:"keep,omitempty"`
}

// Item is a valid upstream transaction in activity payloads.
type Item struct {
	ID        string             `json:"id"`
	UserID    string             `json:"userId"`
	CreatedAt time.Time          `json:"createdAt"`
	Type      scorekeeper.TxType `json:"type"`
	Amount    scorekeeper.Amount `json:"amount"`
}

// BadItem is a quarantined upstream item in activity payloads.
type BadItem struct {
	ItemID string `json:"itemId,omitempty"`
	Raw    string `json:"raw"`
	Reason string `json:"reason"`
}

// FetchPageResult is one upstream page, validated.
type FetchPageResult struct {
	// Skipped is set when NoWait was asked and the budget had no room.
	Skipped     bool      `json:"skipped,omitempty"`
	Items       []Item    `json:"items"`
	Quarantined []BadItem `json:"quarantined,omitempty"`
	// Duplicates counts ids repeated within the page.
	Duplicates int `json:"duplicates"`
	TotalPages int `json:"totalPages"`
	TotalItems int `json:"totalItems"`
}

// FetchPage makes exactly one upstream request per attempt, after taking a
// slot of the shared budget (waiting for one, heartbeating, unless NoWait).
// A 429 is retried after its Retry-After instead of burning attempts on the
// policy's backoff; a 4xx that retrying cannot fix is non-retryable.
func (a *Activities) FetchPage(ctx context.Context, in FetchPageInput) (FetchPageResult, error) {
	holder := activity.GetInfo(ctx).ActivityID
	for {
		ok, wait, err := a.Sync.Budget.TryAcquireKeeping(ctx, a.DB, holder, a.now, in.Keep)
		if err != nil {
			return FetchPageResult{}, err
		}
		if ok {
			break
		}
		if in.NoWait {
			return FetchPageResult{Skipped: true}, nil
		}
		activity.RecordHeartbeat(ctx, "waiting for upstream budget")
		select {
		case <-ctx.Done():
			return FetchPageResult{}, ctx.Err()
		case <-time.After(min(wait, 5*time.Second)):
		}
	}
	p, err := a.Upstream.FetchPage(ctx, upstream.PageRequest{
		Start: in.Request.Start,
		End:   in.Request.End,
		Page:  in.Request.Page,
		Limit: in.Request.Limit,
	})
	a.countUpstreamRequest(ctx, err)
	if err != nil {
		return FetchPageResult{}, classifyUpstreamError(err)
	}
	out := FetchPageResult{
		Items:      make([]Item, len(p.Items)),
		Duplicates: p.Duplicates,
		TotalPages: p.Meta.TotalPages,
		TotalItems: p.Meta.TotalItems,
	}
	for i, t := range p.Items {
		out.Items[i] = Item{ID: t.ID, UserID: t.UserID, CreatedAt: t.CreatedAt, Type: t.Type, Amount: t.Amount}
	}
	for _, q := range p.Quarantined {
		out.Quarantined = append(out.Quarantined, BadItem{ItemID: q.ItemID, Raw: q.Raw, Reason: q.Reason})
	}
	return out, nil
}

// countUpstreamRequest feeds scorekeeper_upstream_requests_total{code}.
// Metrics are best effort: a failure here never fails the fetch.
func (a *Activities) countUpstreamRequest(ctx context.Context, err error) {
	code := "200"
	var rl *upstream.RateLimitedError
	var se *upstream.StatusError
	switch {
	case err == nil:
	case errors.As(err, &rl):
		code = "429"
	case errors.As(err, &se):
		code = strconv.Itoa(se.StatusCode)
	default:
		code = "error"
	}
	if err := db.AddCounter(ctx, a.DB, db.CounterUpstreamRequests, code, 1); err != nil {
		activity.GetLogger(ctx).Warn("could not count upstream request", "error", err)
	}
}

// Error types the workflows and operators see.
const (
	ErrTypeUpstreamRateLimited = "UpstreamRateLimited"
	ErrTypeUpstreamRejected    = "UpstreamRejected"
)

func classifyUpstreamError(err error) error {
	var rl *upstream.RateLimitedError
	var se *upstream.StatusError
	switch {
	case errors.As(err, &rl):
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeUpstreamRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: rl.RetryAfter, Cause: err})
	case errors.Is(err, upstream.ErrInvalidRequest):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUpstreamRejected, err)
	case errors.As(err, &se) && !se.Temporary() && se.StatusCode != 429:
		// A 4xx other than 408/429 means our request is wrong; the same
		// request will be wrong next time too.
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUpstreamRejected, err)
	}
	return err
}

// ApplyPageInput is a fetched page and the plan it was fetched for.
type ApplyPageInput struct {
	Plan PlanResult      `json:"plan"`
	Page FetchPageResult `json:"page"`
}

// ApplyPageResult reports what ApplyPage stored.
type ApplyPageResult struct {
	Inserted    int `json:"inserted"`
	Duplicates  int `json:"duplicates"`
	Quarantined int `json:"quarantined"`
	// Conflict is set when another sync advanced the state since the plan:
	// the data was stored anyway (it is idempotent), the progress was not.
	Conflict      bool      `json:"conflict,omitempty"`
	SyncedThrough time.Time `json:"syncedThrough"`
	// PayoutUsers are users with payout requests new in this page.
	PayoutUsers []string `json:"payoutUsers,omitempty"`
}

// ApplyPage stores a page exactly once and, in the same database
// transaction, moves the cursor past it (compare-and-set on the plan's
// version). A retry after a crash finds the ids stored and the version
// moved, and changes nothing twice.
func (a *Activities) ApplyPage(ctx context.Context, in ApplyPageInput) (ApplyPageResult, error) {
	now := a.now()
	st, err := db.GetSyncState(ctx, a.DB, db.TransactionsStream)
	if err != nil {
		return ApplyPageResult{}, err
	}
	cur, err := parseCursor(st.Cursor)
	if err != nil {
		return ApplyPageResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "CorruptCursor", err)
	}
	if cur.LateTo.IsZero() {
		cur.LateTo = a.Sync.Start
	}
	next, through := advance(cur, st.SyncedThrough, in.Plan, in.Page.TotalPages, in.Page.TotalItems, a.Sync.Overlap)
	cb, err := json.Marshal(next)
	if err != nil {
		return ApplyPageResult{}, err
	}
	batch := db.Batch{
		Transactions: make([]scorekeeper.Transaction, len(in.Page.Items)),
		Quarantined:  make([]scorekeeper.Quarantined, len(in.Page.Quarantined)),
		Cursor: &db.CursorUpdate{
			Name:          db.TransactionsStream,
			ExpectVersion: in.Plan.Version,
			SyncedThrough: through,
			Cursor:        string(cb),
		},
	}
	for i, it := range in.Page.Items {
		batch.Transactions[i] = scorekeeper.Transaction{ID: it.ID, UserID: it.UserID, CreatedAt: it.CreatedAt, Type: it.Type, Amount: it.Amount}
	}
	for i, q := range in.Page.Quarantined {
		batch.Quarantined[i] = scorekeeper.Quarantined{ItemID: q.ItemID, Raw: q.Raw, Reason: q.Reason}
	}
	res, err := db.ApplyBatch(ctx, a.DB, batch, now)
	conflict := false
	if scorekeeper.ErrorCode(err) == scorekeeper.EConflict {
		// Another sync moved on (or this is a retry of an apply that
		// committed). The data is still valid and idempotent: store it
		// without touching progress, and let the workflow re-plan.
		conflict = true
		batch.Cursor = nil
		res, err = db.ApplyBatch(ctx, a.DB, batch, now)
		st, _ := db.GetSyncState(ctx, a.DB, db.TransactionsStream)
		through = st.SyncedThrough
	}
	if err != nil {
		return ApplyPageResult{}, err
	}
	out := ApplyPageResult{
		Inserted:      res.Inserted,
		Duplicates:    res.Duplicates + in.Page.Duplicates,
		Quarantined:   res.Quarantined,
		Conflict:      conflict,
		SyncedThrough: through,
	}
	seen := map[string]bool{}
	for _, p := range res.NewPayouts {
		if !seen[p.UserID] {
			seen[p.UserID] = true
			out.PayoutUsers = append(out.PayoutUsers, p.UserID)
		}
	}
	a.notifyPayouts(ctx, out.PayoutUsers)
	return out, nil
}

// advance returns the cursor and watermark after the plan's page is stored.
func advance(cur cursor, through time.Time, plan PlanResult, totalPages, totalItems int, overlap time.Duration) (cursor, time.Time) {
	w := window{Start: plan.Request.Start, End: plan.Request.End, NextPage: plan.Request.Page + 1, PlannedAt: plan.PlannedAt}
	closed := plan.Request.Page >= totalPages
	switch plan.Kind {
	case KindFresh:
		cur.Fresh = &w
		if closed {
			cur.Fresh = nil
			// Instants the window read at least overlap after they
			// happened need no re-scan; they extend late coverage when
			// nothing before them is still pending.
			safe := w.PlannedAt.Add(-overlap).Truncate(time.Second)
			if safe.After(w.End) {
				safe = w.End
			}
			if !cur.LateTo.Before(w.Start) && safe.After(cur.LateTo) {
				cur.LateTo = safe
			}
			through = w.End
			if span := w.End.Sub(w.Start); span >= time.Second {
				cur.Rate = float64(totalItems) / span.Seconds()
			}
		}
	case KindRescan:
		cur.Rescan = &w
		if closed {
			cur.Rescan = nil
			if w.End.After(cur.LateTo) {
				cur.LateTo = w.End
			}
		}
	}
	return cur, through
}

// notifyPayouts wakes the payout workflows of users with new requests. It
// runs after the data committed, so a failure here must not fail the
// activity: a retry would find nothing new to notify. The payout recovery
// scan finds any user left requested without a running workflow.
func (a *Activities) notifyPayouts(ctx context.Context, users []string) {
	if a.PayoutStarter == nil || len(users) == 0 {
		return
	}
	// A page can hold payouts of hundreds of users; one round trip each,
	// in series, would hold up the next page. A few at a time.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := a.PayoutStarter.NotifyPayouts(ctx, u); err != nil {
				activity.GetLogger(ctx).Warn("could not wake payout workflow; the recovery scan will", "userId", u, "error", err)
			}
		}()
	}
	wg.Wait()
}

// LateCoverage reads, from a stored sync cursor, the instant through which
// late items are covered (ok is false before any coverage is known).
func LateCoverage(storedCursor string) (through time.Time, ok bool) {
	c, err := parseCursor(storedCursor)
	if err != nil || c.LateTo.IsZero() {
		return time.Time{}, false
	}
	return c.LateTo, true
}
