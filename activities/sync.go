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
	"scorekeeper/syncplan"
	"scorekeeper/upstream"
)

// FetcherLease names the lease that makes one sync at a time the fetcher:
// whatever starts syncs (the schedule, POST /api/sync, a signal, several
// workers), only the holder asks upstream for pages, so no budget slot is
// spent on a page another sync is already fetching.
const FetcherLease = db.FetcherLease

// LeaseInput names the sync asking for (or giving up) the fetcher lease:
// its workflow id, which continue-as-new keeps.
type LeaseInput struct {
	Holder string `json:"holder"`
}

// LeaseResult says whether the caller is the fetcher now; if not, who is.
type LeaseResult struct {
	Held          bool      `json:"held"`
	Holder        string    `json:"holder"`
	SyncedThrough time.Time `json:"syncedThrough"`
}

// AcquireFetcher takes or renews the fetcher lease for in.Holder.
func (a *Activities) AcquireFetcher(ctx context.Context, in LeaseInput) (LeaseResult, error) {
	cur, held, err := db.AcquireLease(ctx, a.Store.DB(), FetcherLease, in.Holder, a.Sync.leaseTTL())
	if err != nil {
		return LeaseResult{}, err
	}
	st, err := a.ensureSyncState(ctx)
	if err != nil {
		return LeaseResult{}, err
	}
	return LeaseResult{Held: held, Holder: cur.Holder, SyncedThrough: st.SyncedThrough}, nil
}

// ReleaseFetcher gives the lease up when in.Holder has it, so a waiting
// sync takes over at once rather than when the lease expires.
func (a *Activities) ReleaseFetcher(ctx context.Context, in LeaseInput) error {
	return db.ReleaseLease(ctx, a.Store.DB(), FetcherLease, in.Holder)
}

// PlanInput asks PlanPage for the next request.
type PlanInput struct {
	// Holder is the fetcher's workflow id; planning renews its lease.
	Holder string `json:"holder"`
	// Want, when set, asks for data through it now (a manual sync).
	Want time.Time `json:"want,omitzero"`
}

// PlanResult is the next request (or how long to wait), with the state
// version it was planned at: ApplyPage moves progress only if no one moved
// it since.
type PlanResult struct {
	Request       syncplan.Request `json:"request"`
	Version       int64            `json:"version"`
	SyncedThrough time.Time        `json:"syncedThrough"`
	// LeaseLost is set when another sync holds the fetcher lease (this
	// one's expired): the caller stops fetching and joins it.
	LeaseLost bool   `json:"leaseLost,omitempty"`
	Holder    string `json:"holder,omitempty"`
}

// PlanPage renews the fetcher lease and asks the planner for the next
// request, on the database's clock and the budget's grants. It writes
// nothing else; ApplyPage records progress with the data.
func (a *Activities) PlanPage(ctx context.Context, in PlanInput) (PlanResult, error) {
	cur, held, err := db.AcquireLease(ctx, a.Store.DB(), FetcherLease, in.Holder, a.Sync.leaseTTL())
	if err != nil {
		return PlanResult{}, err
	}
	if !held {
		return PlanResult{LeaseLost: true, Holder: cur.Holder}, nil
	}
	st, state, err := a.syncState(ctx)
	if err != nil {
		return PlanResult{}, err
	}
	now, err := db.Now(ctx, a.Store.DB())
	if err != nil {
		return PlanResult{}, err
	}
	stamps, err := a.Sync.Budget.Stamps(ctx, a.Store.DB(), now)
	if err != nil {
		return PlanResult{}, err
	}
	req := syncplan.Next(a.Sync.Plan(), syncplan.Input{
		Now:     now,
		Through: st.SyncedThrough,
		State:   state,
		Want:    in.Want,
		Grants:  stamps,
	})
	var aerr error
	req = syncplan.Avoid(req, func(r syncplan.Request) bool {
		answered, err := a.Sync.Budget.AnsweredLike(ctx, a.Store.DB(), windowPattern(r))
		if err != nil {
			aerr = err
		}
		return answered
	})
	if aerr != nil {
		return PlanResult{}, aerr
	}
	return PlanResult{Request: req, Version: st.Version, SyncedThrough: st.SyncedThrough}, nil
}

// ensureSyncState reads the sync's progress, creating it on the first run
// a microsecond (the precision stored) before SYNC_START: the first read
// begins at SYNC_START, and until a page proves it the watermark claims
// nothing there, for an item at that very instant is not stored yet.
func (a *Activities) ensureSyncState(ctx context.Context) (db.SyncState, error) {
	return db.EnsureSyncState(ctx, a.Store.DB(), db.TransactionsStream, a.Sync.Start.Add(-time.Microsecond), a.now())
}

// syncState reads the stored watermark and the planner's state.
func (a *Activities) syncState(ctx context.Context) (db.SyncState, syncplan.State, error) {
	st, err := a.ensureSyncState(ctx)
	if err != nil {
		return st, syncplan.State{}, err
	}
	state, err := syncplan.ParseState(st.Cursor)
	if err != nil {
		return st, state, temporal.NewNonRetryableApplicationError(err.Error(), "CorruptCursor", err)
	}
	return st, state, nil
}

// FetchPageInput is one planned upstream request.
type FetchPageInput struct {
	Plan PlanResult `json:"plan"`
}

// Item is a valid upstream transaction in activity payloads.
type Item struct {
	ID        string             `json:"id"`
	UserID    string             `json:"userId"`
	CreatedAt time.Time          `json:"createdAt"`
	Type      scorekeeper.TxType `json:"type"`
	Amount    scorekeeper.Amount `json:"amount"`
}

// BadItem is a quarantined upstream item in activity payloads: its
// record (scorekeeper.Quarantined), never the item itself, which may be
// any size. FetchPage shrinks the records of a page to fit the payload.
type BadItem struct {
	ItemID string `json:"itemId,omitempty"`
	// Raw is the item, or when Truncated its start.
	Raw    string `json:"raw"`
	Reason string `json:"reason"`
	// Size and SHA256 are the whole item's. A payload from before they
	// existed has neither and holds the whole item in Raw.
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// FetchPageResult is one upstream page, validated.
type FetchPageResult struct {
	// Skipped is set when a re-scan or probe found no budget slot free
	// (fresh pages wait for one), or a sliding window had nothing to read.
	Skipped     bool      `json:"skipped,omitempty"`
	Items       []Item    `json:"items"`
	Quarantined []BadItem `json:"quarantined,omitempty"`
	// Duplicates counts ids repeated within the page.
	Duplicates int `json:"duplicates"`
	// Page is what the planner needs of the answer.
	Page syncplan.Page `json:"page"`
	// FetchedTwice is set when upstream answered this very request
	// before (never planned; seen only when an answer was lost).
	FetchedTwice bool `json:"fetchedTwice,omitempty"`
	// LeaseLost is set, with nothing fetched, when another sync holds
	// the fetcher lease (this one's expired): the caller joins it.
	LeaseLost bool   `json:"leaseLost,omitempty"`
	Holder    string `json:"holder,omitempty"`
}

// FetchPage makes exactly one upstream request per attempt, after taking a
// slot of the shared budget: a fresh page waits for one (heartbeating),
// late coverage takes one only if it is free now. A sliding window's end
// is set after the slot is granted, so the page sees everything that
// accrued meanwhile. A 429 is retried after its Retry-After; a 4xx that
// retrying cannot fix is non-retryable.
func (a *Activities) FetchPage(ctx context.Context, in FetchPageInput) (FetchPageResult, error) {
	req := in.Plan.Request
	info := activity.GetInfo(ctx)
	g := db.Grant{
		ID:     fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt),
		Holder: info.WorkflowExecution.ID,
		Kind:   string(req.Kind),
		Hold:   a.Upstream.Timeout() + time.Second,
	}
	var now time.Time
	for {
		// Hold the fetcher lease while this attempt works: a fetch that
		// retries through a long upstream outage (or waits for the budget)
		// would otherwise lose it, and a second fetcher would fetch the
		// same pages. Lost, the fetch stops and the sync joins the new
		// holder.
		if cur, held, err := db.AcquireLease(ctx, a.Store.DB(), FetcherLease, g.Holder, a.Sync.leaseTTL()); err != nil {
			return FetchPageResult{}, err
		} else if !held {
			return FetchPageResult{LeaseLost: true, Holder: cur.Holder}, nil
		}
		granted, at, wait, err := a.Sync.Budget.Acquire(ctx, a.Store.DB(), g)
		if err != nil {
			return FetchPageResult{}, err
		}
		if granted {
			now = at
			break
		}
		if req.Kind != syncplan.Fresh {
			return FetchPageResult{Skipped: true}, nil
		}
		activity.RecordHeartbeat(ctx, "waiting for upstream budget")
		if err := a.Sync.sleep(ctx, min(wait, 5*time.Second)); err != nil {
			return FetchPageResult{}, err
		}
	}
	if req.EndAtFetch {
		req.End = now.Add(-a.Sync.guard()).Truncate(time.Second)
	}
	if !req.End.After(req.Start) && !req.End.Equal(req.Start) {
		// A clock set back: nothing to read yet. The grant stays spent.
		_, err := a.Sync.Budget.Settle(ctx, a.Store.DB(), g.ID, "", false)
		return FetchPageResult{Skipped: true}, err
	}
	p, err := a.Upstream.FetchPage(ctx, upstream.PageRequest{Start: req.Start, End: req.End, Page: req.Page, Limit: req.Limit})
	twice, serr := a.Sync.Budget.Settle(context.WithoutCancel(ctx), a.Store.DB(), g.ID, requestKey(req), err == nil)
	a.countUpstreamRequest(ctx, err)
	if err != nil {
		return FetchPageResult{}, classifyUpstreamError(err)
	}
	if serr != nil {
		return FetchPageResult{}, serr
	}
	if twice {
		activity.GetLogger(ctx).Warn("upstream page fetched twice", "request", requestKey(req))
	}
	out := FetchPageResult{
		Items:        make([]Item, len(p.Items)),
		Duplicates:   p.Duplicates,
		FetchedTwice: twice,
		Page: syncplan.Page{
			Request:    req,
			At:         now,
			Total:      p.Meta.TotalItems,
			TotalPages: p.Meta.TotalPages,
			PerPage:    p.Meta.ItemsPerPage,
			Count:      p.Entries,
			Distinct:   len(p.Items) + len(p.Quarantined),
			Head:       p.Head,
			Tail:       p.Tail,
			HeadTie:    p.HeadTie,
			TailTie:    p.TailTie,
			StrayCopy:  p.StrayCopy,
			CreatedAt:  make([]time.Time, len(p.Items)),
		},
	}
	for i, t := range p.Items {
		out.Items[i] = Item{ID: t.ID, UserID: t.UserID, CreatedAt: t.CreatedAt, Type: t.Type, Amount: t.Amount}
		out.Page.CreatedAt[i] = t.CreatedAt
	}
	out.Quarantined = badItems(out, p.Quarantined)
	return out, nil
}

// passKeys are the keys of a page's distinct entries (syncplan.Page.Keys):
// a valid item's id, a malformed item's SHA-256, as they are deduplicated.
func passKeys(r FetchPageResult) []uint32 {
	keys := make([]uint32, 0, len(r.Items)+len(r.Quarantined))
	for _, it := range r.Items {
		keys = append(keys, syncplan.PassKey(it.ID))
	}
	for _, q := range r.Quarantined {
		keys = append(keys, syncplan.PassKey(q.SHA256))
	}
	return keys
}

// requestKey names an upstream request: the same key twice is the same
// page asked for twice.
func requestKey(r syncplan.Request) string {
	return windowKey(r) + strconv.Itoa(r.Page) + "/" + strconv.Itoa(r.Limit)
}

// windowKey is what the keys of every page of r's window start with.
func windowKey(r syncplan.Request) string {
	return r.Start.UTC().Format(time.RFC3339) + "/" + r.End.UTC().Format(time.RFC3339) + "/"
}

// windowPattern matches the key of every page of r's window at r's limit
// (Budget.AnsweredLike; keys hold neither % nor _): a window opened again
// where an earlier read of it once stood, to the second, would ask
// upstream again for each of its pages that read got to, not only for
// its first (a sliding read's later pages end where a re-scan of its
// span ends).
func windowPattern(r syncplan.Request) string {
	return windowKey(r) + "%/" + strconv.Itoa(r.Limit)
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
	if err := db.AddCounter(ctx, a.Store.DB(), db.CounterUpstreamRequests, code, 1); err != nil {
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
// transaction, moves the progress record past it (compare-and-set on the
// plan's version). A retry after a crash finds the ids stored and the
// version moved, and changes nothing twice.
func (a *Activities) ApplyPage(ctx context.Context, in ApplyPageInput) (ApplyPageResult, error) {
	now := a.now()
	st, state, err := a.syncState(ctx)
	if err != nil {
		return ApplyPageResult{}, err
	}
	cfg := a.Sync.Plan()
	var through time.Time
	batch := db.Batch{
		Transactions: make([]scorekeeper.Transaction, len(in.Page.Items)),
		Quarantined:  make([]scorekeeper.Quarantined, len(in.Page.Quarantined)),
		CursorFunc: func(res db.ApplyResult) (db.CursorUpdate, error) {
			// Items the database already had tell the planner whether a
			// late item slipped in behind the pages read.
			page := in.Page.Page
			page.Repeats = res.Duplicates + len(in.Page.Quarantined) - res.Quarantined
			page.Stored = res.Counted
			page.Keys = passKeys(in.Page)
			next, t := syncplan.Advance(cfg, st.SyncedThrough, state, page)
			through = t
			b, err := json.Marshal(next)
			return db.CursorUpdate{
				Name:          db.TransactionsStream,
				ExpectVersion: in.Plan.Version,
				SyncedThrough: t,
				Cursor:        string(b),
			}, err
		},
	}
	if syncplan.NeedsCount(state, in.Page.Page.Request) {
		batch.CountFrom, batch.CountTo = in.Page.Page.Request.Start, in.Page.Page.Request.End
	}
	for i, it := range in.Page.Items {
		batch.Transactions[i] = scorekeeper.Transaction{ID: it.ID, UserID: it.UserID, CreatedAt: it.CreatedAt, Type: it.Type, Amount: it.Amount}
	}
	for i, q := range in.Page.Quarantined {
		batch.Quarantined[i] = scorekeeper.Quarantined{ItemID: q.ItemID, Raw: q.Raw, Truncated: q.Truncated, Size: q.Size, SHA256: q.SHA256, Reason: q.Reason}
	}
	res, err := db.ApplyBatch(ctx, a.Store.DB(), batch, now)
	conflict := false
	if scorekeeper.ErrorCode(err) == scorekeeper.EConflict {
		// Another sync moved on (or this is a retry of an apply that
		// committed). The data is still valid and idempotent: store it
		// without touching progress, and let the workflow re-plan.
		conflict = true
		batch.CursorFunc = nil
		res, err = db.ApplyBatch(ctx, a.Store.DB(), batch, now)
		if cur, gerr := db.GetSyncState(ctx, a.Store.DB(), db.TransactionsStream); gerr == nil {
			through = cur.SyncedThrough
		}
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

// AwaitSyncInput asks to wait while another sync is the fetcher.
type AwaitSyncInput struct {
	// Holder is the fetcher being waited on.
	Holder string `json:"holder"`
	// Target, when set, ends the wait once data through it is stored.
	Target time.Time `json:"target,omitzero"`
	// MaxWait bounds one call, so the workflow can act on signals and
	// deadlines in between (zero: a minute).
	MaxWait time.Duration `json:"maxWait,omitempty"`
}

// AwaitSyncResult says why the wait ended (neither: MaxWait passed).
type AwaitSyncResult struct {
	// Reached: data through Target is stored.
	Reached bool `json:"reached,omitempty"`
	// Free: the fetcher lease is free (or held by someone else now).
	Free          bool      `json:"free,omitempty"`
	SyncedThrough time.Time `json:"syncedThrough"`
}

// AwaitSync polls the store while another sync fetches, heartbeating,
// until data through Target is stored, the fetcher changes or lets go, or
// MaxWait passes.
func (a *Activities) AwaitSync(ctx context.Context, in AwaitSyncInput) (AwaitSyncResult, error) {
	maxWait := in.MaxWait
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	deadline := a.now().Add(maxWait)
	for {
		st, err := a.ensureSyncState(ctx)
		if err != nil {
			return AwaitSyncResult{}, err
		}
		res := AwaitSyncResult{SyncedThrough: st.SyncedThrough}
		if !in.Target.IsZero() && !st.SyncedThrough.Before(in.Target) {
			res.Reached = true
			return res, nil
		}
		cur, ok, err := db.GetLease(ctx, a.Store.DB(), FetcherLease)
		if err != nil {
			return res, err
		}
		if !ok || cur.Holder != in.Holder {
			res.Free = true
			return res, nil
		}
		if a.now().After(deadline) {
			return res, nil
		}
		activity.RecordHeartbeat(ctx, st.SyncedThrough)
		if err := a.Sync.sleep(ctx, 250*time.Millisecond); err != nil {
			return res, err
		}
	}
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
