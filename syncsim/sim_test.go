package syncsim_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
	"scorekeeper/syncplan"
	"scorekeeper/upstream"
	"scorekeeper/workflows"
)

// simStart is where the simulated feed's history ends and its live data
// begins, on the virtual clock.
var simStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// maxActivityPayload bounds every activity input and result (the issue's
// 256 KiB; Temporal refuses payloads over 2 MB by default).
const maxActivityPayload = 256 << 10

// scenario is what a seed draws: the upstream's manners and the faults.
type scenario struct {
	mock     mockapi.Config
	pageSize int
	late     string
	maxPages int
	// Per activity attempt: a crash before it starts, one after its
	// effects (the result is lost and the attempt retried), and, for
	// ApplyPage, one in the middle of its database transaction.
	crashBefore, crashAfter, crashMidApply float64
	// zombies is how many times the fetcher's lease expires under it (a
	// stalled holder) while a second fetcher takes it and works.
	zombies int
	// storms are bursts of manual syncs, one every 1–10 s for a minute.
	storms int
	// end is when the simulation stops: the stream's end, then time for
	// late coverage to pass it.
	end time.Time
}

func drawScenario(seed uint64) scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	chance := func(p float64) bool { return rng.Float64() < p }
	cfg := mockapi.DefaultConfig()
	cfg.Seed = int64(seed % (1 << 62))
	cfg.Users = 20 + rng.IntN(60)
	cfg.Transactions = 200 + rng.IntN(800)
	cfg.History = time.Duration(2+rng.IntN(6)) * time.Minute
	pageSize := []int{50, 100, 200}[rng.IntN(3)]
	cfg.LiveFor = time.Duration(3+rng.IntN(6)) * time.Minute
	cfg.RateLimit, cfg.RateWindow = 5, time.Minute
	cfg.DuplicateRate = 0.02 * rng.Float64()
	cfg.LateRate = 0
	if chance(0.6) {
		cfg.LateRate = 0.05 * rng.Float64()
	}
	cfg.LateDelay = time.Duration(10+rng.IntN(110)) * time.Second
	cfg.Ordered = chance(0.5)
	cfg.WholeSeconds = chance(0.6)
	cfg.ShuffleTies = cfg.Ordered && chance(0.7)
	if chance(0.3) {
		cfg.PageCap = 30 + rng.IntN(70)
	}
	// Live data at up to 80% of what the budget can read in full pages.
	perPage := pageSize
	if cfg.PageCap > 0 {
		perPage = min(perPage, cfg.PageCap)
	}
	cfg.LiveRate = 10 + rng.IntN(cfg.RateLimit*perPage*8/10)
	if cfg.Ordered && chance(0.4) {
		// A copy in a full page's last place or in place of a later item
		// of the page, on some requests: that request serves the item it
		// displaced on no page. A sorted listing shows where the item
		// belongs; an unordered one does not, and no offset paging
		// survives it there (docs/design.md §4), so it is drawn for
		// sorted listings only, as in syncplan's simulation.
		cfg.PageDuplicates = 0.2 * rng.Float64()
	}
	if cfg.Ordered && rand.New(rand.NewPCG(seed, 0xde5c)).IntN(4) == 0 {
		// Newest first (drawn apart from rng, so that older seeds keep
		// their scenarios): a listing in no order the sync can exploit,
		// and with shuffled ties none kept between requests. Copies that
		// take another item's place are not drawn with it, as for any
		// unordered listing.
		cfg.NewestFirst = true
		cfg.PageDuplicates = 0
	}
	if !cfg.Ordered || cfg.NewestFirst {
		// A listing in no order is read in windows that each fit one
		// page, whole seconds wide (docs/design.md §4): they fill four
		// fifths of a page of 50 at best, so live data is drawn at up to
		// half of what the budget reads in full pages.
		cfg.LiveRate = max(10, cfg.LiveRate*6/10)
	}
	if chance(0.15) {
		cfg.BigItemBytes = (1 + rng.IntN(3)) << 20
	}
	if chance(0.3) {
		cfg.ClockSkew = time.Duration(rng.IntN(2000)) * time.Millisecond
	}
	if chance(0.4) {
		cfg.DropRate = 0.08 * rng.Float64()
	}
	if chance(0.4) {
		cfg.FailRate = 0.08 * rng.Float64()
	}
	cfg.MalformedRate = 0.02 * rng.Float64()
	cfg.SlowRate, cfg.PayoutFailRate, cfg.PayoutLatency = 0, 0, 0
	cfg.Start = simStart
	sc := scenario{
		mock:     cfg,
		pageSize: pageSize,
		late:     []string{syncplan.LateAuto, syncplan.LateProbe, syncplan.LateRescan}[rng.IntN(3)],
		maxPages: 5 + rng.IntN(40),
		zombies:  rng.IntN(3),
		storms:   rng.IntN(3),
	}
	if chance(0.7) {
		sc.crashBefore, sc.crashAfter, sc.crashMidApply = 0.05*rng.Float64(), 0.05*rng.Float64(), 0.05*rng.Float64()
	}
	// Late coverage passes the stream's end by SYNC_OVERLAP, an interval
	// and the guard after it when it kept up (design §10), and catches up
	// when it fell behind, with what fresh reads leave of the budget (one
	// a minute, and one per manual sync): time for both, re-reading
	// everything twice over (faults cost requests too), and two minutes
	// more. Probes that a late item makes fail cost a re-read each on top
	// when probing is forced.
	items := cfg.Transactions + cfg.LiveRate*int(cfg.LiveFor/time.Minute)
	reread := time.Duration((items+perPage-1)/perPage) * cfg.RateWindow / time.Duration(cfg.RateLimit-1)
	if sc.late == syncplan.LateProbe {
		reread *= 2
	}
	if !cfg.Ordered || cfg.NewestFirst {
		// A listing in no order is read in windows that each fit one
		// page, whole seconds wide: at these page sizes they hold about
		// half a page (design §4).
		reread *= 2
	}
	manual := time.Duration(sc.storms) * time.Minute / time.Duration(cfg.RateLimit) * 60 / 5
	sc.end = simStart.Add(cfg.LiveFor.Round(time.Minute) + 3*time.Minute + 2*reread + manual + 2*time.Minute)
	return sc
}

// quietSuite is a test suite whose environments log nothing: a seed's
// thousands of injected failures would drown a failure's report.
func quietSuite() *testsuite.WorkflowTestSuite {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return &suite
}

// world is one seed's run.
type world struct {
	t    testing.TB
	seed uint64
	sc   scenario
	ctx  context.Context

	mu     sync.Mutex
	rng    *rand.Rand
	failed error
	stored map[string]bool
	faults map[string]int
	checks int
	// trace logs every attempt's result (SIM_TRACE=1).
	trace bool

	env        atomic.Pointer[testsuite.TestWorkflowEnvironment]
	slept      atomic.Int64
	d          *bun.DB
	mock       *mockapi.Server
	acts       *activities.Activities
	zombieEnv  *testsuite.TestActivityEnvironment
	zombieActs *activities.Activities
	maxPayload atomic.Int64
	fired      map[int]bool
	events     []event
	// kinds holds, per page upstream answered, the kinds of plan that
	// fetched it (fetchedBy).
	kinds map[answerKey]map[syncplan.Kind]bool
}

// answerKey is a page as upstream saw the request: window, page, limit.
type answerKey struct {
	start, end  int64
	page, limit int
}

// fetch wraps a FetchPage to record, in kinds, the kind of plan that had
// upstream answer each page.
func (w *world) fetch(fn func(context.Context, activities.FetchPageInput) (activities.FetchPageResult, error)) func(context.Context, activities.FetchPageInput) (activities.FetchPageResult, error) {
	return func(ctx context.Context, in activities.FetchPageInput) (activities.FetchPageResult, error) {
		from := w.mock.AnswerCount()
		defer w.fetchedBy(in.Plan.Request, from)
		return fn(ctx, in)
	}
}

// fetchedBy records the kind of req for the pages upstream answered to it
// from the from-th answer on. Another fetcher's answers at the same time
// are told apart by window start, page and limit.
func (w *world) fetchedBy(req syncplan.Request, from int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.mock.AnswersFrom(from) {
		if !a.Start.Equal(req.Start) || a.Page != req.Page || a.Limit != req.Limit {
			continue
		}
		k := answerKey{a.Start.UnixMilli(), a.End.UnixMilli(), a.Page, a.Limit}
		if w.kinds[k] == nil {
			w.kinds[k] = map[syncplan.Kind]bool{}
		}
		w.kinds[k][req.Kind] = true
	}
}

// replans counts the pages answered again for a plan of another kind:
// late coverage re-reads by design what a fresh read read before, and a
// one-second window can take no other bounds. Only a page answered twice
// for plans of one kind is a page fetched twice.
func (w *world) replans() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, kinds := range w.kinds {
		n += len(kinds) - 1
	}
	return n
}

// event is a scheduled disturbance at a virtual instant.
type event struct {
	at time.Time
	do func(w *world)
}

// now is the virtual clock: the workflow environment's, plus the waits
// activities made inside an attempt (simSleep), which the environment's
// clock does not see.
func (w *world) now() time.Time {
	if env := w.env.Load(); env != nil {
		return env.Now().UTC().Add(time.Duration(w.slept.Load()))
	}
	return simStart
}

// sleep stands for a wait inside an activity (SyncConfig.Sleep): the
// virtual clock moves on by d at once.
func (w *world) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.slept.Add(int64(d))
	return nil
}

// fail records the first broken invariant; the run stops at the next step.
func (w *world) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed == nil {
		w.failed = fmt.Errorf("at %s: %s", w.now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	}
}

func (w *world) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *world) chance(p float64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.Float64() < p
}

func (w *world) intN(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.IntN(n)
}

func (w *world) count(fault string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[fault]++
}

func newWorld(t testing.TB, seed uint64) *world {
	sc := drawScenario(seed)
	w := &world{t: t, seed: seed, sc: sc, rng: rand.New(rand.NewPCG(seed, 0xfa017)),
		stored: map[string]bool{}, faults: map[string]int{}, fired: map[int]bool{}, kinds: map[answerKey]map[syncplan.Kind]bool{}, trace: os.Getenv("SIM_TRACE") != ""}
	w.ctx = db.WithClock(context.Background(), w.now)

	cfg := sc.mock
	cfg.Now = w.now
	m, err := mockapi.New(cfg)
	require.NoError(t, err)
	w.mock = m
	hs := httptest.NewServer(m)
	t.Cleanup(hs.Close)
	up, err := upstream.New(hs.URL, 5*time.Second, nil)
	require.NoError(t, err)

	w.d = dbtest.NewSQLite(t).WithQueryHook(crashHook{})
	w.acts = &activities.Activities{
		Store:    db.NewStore(w.d, db.Budget{}),
		Upstream: up,
		Now:      w.now,
		Sync: activities.SyncConfig{
			Start:     simStart.Add(-cfg.History),
			Interval:  time.Minute,
			Overlap:   2 * time.Minute,
			PageSize:  sc.pageSize,
			Budget:    db.NewBudget("upstream", cfg.RateLimit, cfg.RateWindow),
			LateCheck: sc.late,
			Sleep:     w.sleep,
		},
	}
	zombie := *w.acts
	w.zombieActs = &zombie
	w.zombieEnv = quietSuite().NewTestActivityEnvironment()
	w.zombieEnv.RegisterActivity(w.zombieActs)
	w.zombieEnv.SetWorkerOptions(worker.Options{BackgroundActivityContext: w.ctx})
	w.zombieEnv.SetTestTimeout(time.Minute)
	w.zombieEnv.SetDataConverter(sizedConverter{converter.GetDefaultDataConverter(), &w.maxPayload})

	span := sc.end.Sub(simStart)
	for range sc.zombies {
		at := simStart.Add(time.Duration(w.rng.Int64N(int64(span * 2 / 3))))
		w.events = append(w.events, event{at: at, do: (*world).zombie})
	}
	for range sc.storms {
		at := simStart.Add(time.Duration(w.rng.Int64N(int64(span * 2 / 3))))
		for s := time.Duration(0); s < time.Minute; s += time.Duration(1+w.rng.IntN(10)) * time.Second {
			w.events = append(w.events, event{at: at.Add(s), do: (*world).manualSync})
		}
	}
	return w
}

// crashHook cancels an ApplyPage attempt's context before its n-th query:
// the worker dies in the middle of the page's database transaction, which
// rolls back.
type crashHook struct{}

type crashKey struct{}

type crashPlan struct {
	left   atomic.Int32
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (crashHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	if p, ok := ctx.Value(crashKey{}).(*crashPlan); ok && p.left.Add(-1) == 0 {
		p.fired.Store(true)
		p.cancel()
	}
	return ctx
}

func (crashHook) AfterQuery(context.Context, *bun.QueryEvent) {}

// sizedConverter records the largest payload the activities exchange.
type sizedConverter struct {
	converter.DataConverter
	max *atomic.Int64
}

func (c sizedConverter) track(n int) {
	for {
		cur := c.max.Load()
		if int64(n) <= cur || c.max.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

func (c sizedConverter) ToPayload(v any) (*commonpb.Payload, error) {
	p, err := c.DataConverter.ToPayload(v)
	if err == nil {
		c.track(proto.Size(p))
	}
	return p, err
}

func (c sizedConverter) ToPayloads(vs ...any) (*commonpb.Payloads, error) {
	ps, err := c.DataConverter.ToPayloads(vs...)
	if err == nil {
		for _, p := range ps.GetPayloads() {
			c.track(proto.Size(p))
		}
	}
	return ps, err
}

var errCrash = errors.New("simulated worker crash")

// faulty wraps an activity with the seed's crashes and checks the
// invariants after each attempt that ran.
func faulty[I, R any](w *world, name string, fn func(context.Context, I) (R, error)) func(context.Context, I) (R, error) {
	return func(ctx context.Context, in I) (R, error) {
		var zero R
		if err := w.failure(); err != nil {
			return zero, temporal.NewNonRetryableApplicationError(err.Error(), "InvariantBroken", nil)
		}
		if w.chance(w.sc.crashBefore) {
			w.count(name + " crash before")
			return zero, errCrash
		}
		var plan *crashPlan
		if name == "ApplyPage" && w.chance(w.sc.crashMidApply) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			plan = &crashPlan{cancel: cancel}
			plan.left.Store(int32(1 + w.intN(8)))
			ctx = context.WithValue(ctx, crashKey{}, plan)
		}
		out, err := fn(ctx, in)
		if w.trace {
			w.t.Logf("%s %s: %+v %v", w.now().Format("15:04:05.000"), name, out, err)
		}
		if ap, ok := any(in).(activities.ApplyPageInput); ok {
			w.observe(ap.Page.Items)
		}
		w.check(name)
		if plan != nil && plan.fired.Load() {
			w.count(name + " crash mid-transaction")
			return zero, errCrash
		}
		if err == nil && w.chance(w.sc.crashAfter) {
			w.count(name + " crash after")
			return zero, errCrash
		}
		return out, err
	}
}

// observe records which of items the store holds now: only ApplyPage
// stores transactions, so the shadow set follows the store exactly.
func (w *world) observe(items []activities.Item) {
	if len(items) == 0 {
		return
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	var got []string
	if err := w.d.NewSelect().Table("transactions").Column("id").Where("id IN (?)", bun.List(ids)).Scan(context.Background(), &got); err != nil {
		w.fail("read stored ids: %v", err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range got {
		w.stored[id] = true
	}
}

// check asserts what the sync promises at every step: every item at or
// before syncedThrough, and every late one at or before
// lateCoveredThrough, is stored.
func (w *world) check(after string) {
	st, err := db.GetSyncState(context.Background(), w.d, db.TransactionsStream)
	if err != nil {
		if scorekeeper.ErrorCode(err) == scorekeeper.ENotFound {
			return
		}
		w.fail("read sync state: %v", err)
		return
	}
	lt, _ := syncplan.LateCoverage(st.Cursor)
	owed := w.mock.Owed(st.SyncedThrough, lt)
	w.mu.Lock()
	w.checks++
	var missing []string
	for _, id := range owed {
		if !w.stored[id] {
			missing = append(missing, id)
		}
	}
	w.mu.Unlock()
	if len(missing) > 0 {
		created := map[string]time.Time{}
		for _, tx := range w.mock.Transactions() {
			created[tx.ID] = tx.CreatedAt
		}
		first := missing[:min(3, len(missing))]
		for i, id := range first {
			first[i] = id + " (created " + created[id].Format(time.RFC3339Nano) + ")"
		}
		w.fail("after %s: %d of the %d items promised by syncedThrough %s and lateCoveredThrough %s are not stored, the first: %v",
			after, len(missing), len(owed), st.SyncedThrough.Format(time.RFC3339Nano), lt.Format(time.RFC3339Nano), first)
	}
}

// manualSync asks the running sync for data through now, as POST
// /api/sync does through a joining run's signal.
func (w *world) manualSync() {
	w.count("manual sync")
	w.env.Load().SignalWorkflow(workflows.SyncSignal, workflows.SyncRequest{})
}

// zombie lets the fetcher's lease expire under its holder, as if the
// holder stalled past the lease's TTL, and has a second fetcher take it
// and work a few pages; it then releases the lease, or dies holding it.
func (w *world) zombie() {
	if _, err := w.d.NewUpdate().Table("sync_leases").Set("expires_at = ?", w.now().Add(-time.Second)).
		Where("name = ?", activities.FetcherLease).Exec(w.ctx); err != nil {
		w.fail("expire lease: %v", err)
		return
	}
	w.count("lease expired")
	holder := "default-test-workflow-id" // the activity environment's
	var lease activities.LeaseResult
	if !w.zombieRun(w.zombieActs.AcquireFetcher, activities.LeaseInput{Holder: holder}, &lease) || !lease.Held {
		return
	}
	for range 1 + w.intN(3) {
		var plan activities.PlanResult
		if !w.zombieRun(w.zombieActs.PlanPage, activities.PlanInput{Holder: holder}, &plan) || plan.LeaseLost || plan.Request.Kind == syncplan.Wait {
			break
		}
		var page activities.FetchPageResult
		from := w.mock.AnswerCount()
		ok := w.zombieRun(w.zombieActs.FetchPage, activities.FetchPageInput{Plan: plan}, &page)
		w.fetchedBy(plan.Request, from)
		if !ok || page.Skipped || page.LeaseLost {
			break
		}
		w.count("zombie page")
		var applied activities.ApplyPageResult
		ok = w.zombieRun(w.zombieActs.ApplyPage, activities.ApplyPageInput{Plan: plan, Page: page}, &applied)
		w.observe(page.Items)
		w.check("the second fetcher's ApplyPage")
		if !ok {
			break
		}
	}
	if w.chance(0.5) {
		w.zombieRun(w.zombieActs.ReleaseFetcher, activities.LeaseInput{Holder: holder}, nil)
	}
}

// zombieRun runs one activity of the second fetcher; false when it failed
// (a failure of its own is no violation: the next holder goes on).
func (w *world) zombieRun(fn, in, out any) bool {
	v, err := w.zombieEnv.ExecuteActivity(fn, in)
	if err != nil {
		return false
	}
	if out != nil {
		if err := v.Get(out); err != nil {
			w.fail("decode the second fetcher's result: %v", err)
			return false
		}
	}
	return true
}

// newEnv is a test workflow environment for one run of the scheduled
// sync, starting at start, with the faulty activities and the pending
// events of its span registered.
func (w *world) newEnv(start time.Time) *testsuite.TestWorkflowEnvironment {
	env := quietSuite().NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: w.ctx, DeadlockDetectionTimeout: time.Minute})
	// Wall-clock bounds of the test environment (3 s and 1 s by default)
	// are for workflows alone; here activities and the second fetcher do
	// real HTTP and SQLite work on a machine that may be busy.
	env.SetTestTimeout(time.Minute)
	env.SetDataConverter(sizedConverter{converter.GetDefaultDataConverter(), &w.maxPayload})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "sync-scheduled", TaskQueue: "sim"})
	env.RegisterActivity(w.acts)
	w.slept.Store(0)
	a := w.acts
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(faulty(w, "AcquireFetcher", a.AcquireFetcher))
	env.OnActivity(a.ReleaseFetcher, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.LeaseInput) error {
		_, err := faulty(w, "ReleaseFetcher", func(ctx context.Context, in activities.LeaseInput) (struct{}, error) {
			return struct{}{}, a.ReleaseFetcher(ctx, in)
		})(ctx, in)
		return err
	})
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(faulty(w, "PlanPage", a.PlanPage))
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(w.fetch(faulty(w, "FetchPage", a.FetchPage)))
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(faulty(w, "ApplyPage", a.ApplyPage))
	env.OnActivity(a.AwaitSync, mock.Anything, mock.Anything).Return(faulty(w, "AwaitSync", a.AwaitSync))
	// A run that joins the second fetcher asks it for data by signal; the
	// second fetcher serves no asks (the run waits for the lease instead).
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil)
	for i, e := range w.events {
		if w.fired[i] || e.at.Before(start) {
			continue
		}
		env.RegisterDelayedCallback(func() {
			w.fired[i] = true
			e.do(w)
		}, e.at.Sub(start))
	}
	w.env.Store(env)
	return env
}

// run drives scheduled syncs, as the schedule does, until the end:
// each follows the feed, continues as new when long, and the next starts
// at the next whole minute after one ends.
func (w *world) run() error {
	in := workflows.SyncInput{Interval: time.Minute, Follow: true, MaxPagesPerRun: w.sc.maxPages}
	start := simStart
	for runs := 0; start.Before(w.sc.end); runs++ {
		if runs > 1000 {
			return errors.New("more than 1000 runs")
		}
		env := w.newEnv(start)
		env.ExecuteWorkflow(workflows.SyncWorkflow, in)
		err := env.GetWorkflowError()
		if f := w.failure(); f != nil {
			return f
		}
		var can *workflow.ContinueAsNewError
		switch {
		case errors.As(err, &can):
			var next workflows.SyncInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				return fmt.Errorf("decode continue-as-new input: %w", err)
			}
			in, start = next, w.now()
			continue
		case err != nil:
			return fmt.Errorf("sync run failed: %w", err)
		}
		in = workflows.SyncInput{Interval: time.Minute, Follow: true, MaxPagesPerRun: w.sc.maxPages}
		start = w.now().Truncate(time.Minute).Add(time.Minute)
	}
	return nil
}

// final asserts the end state: late coverage past the stream's end, every
// valid item stored once and counted once, every malformed one kept, the
// budget respected, payloads bounded, and no page fetched twice but for a
// lost result.
func (w *world) final() error {
	ctx := context.Background()
	st, err := db.GetSyncState(ctx, w.d, db.TransactionsStream)
	if err != nil {
		return err
	}
	lt, _ := syncplan.LateCoverage(st.Cursor)
	streamEnd := simStart.Add(w.sc.mock.LiveFor.Round(time.Minute))
	if lt.Before(streamEnd) {
		return fmt.Errorf("late coverage %s did not pass the stream's end %s by %s", lt.Format(time.RFC3339), streamEnd.Format(time.RFC3339), w.sc.end.Format(time.RFC3339))
	}
	truth := w.mock.Transactions()
	stored, err := w.d.NewSelect().Table("transactions").Count(ctx)
	if err != nil {
		return err
	}
	if int(stored) != len(truth) {
		return fmt.Errorf("%d transactions stored, upstream holds %d", stored, len(truth))
	}
	want := w.mock.Truth()
	got := map[string]scorekeeper.Summary{}
	for after := ""; ; {
		page, err := db.SummariesAfter(ctx, w.d, after, 1000)
		if err != nil {
			return err
		}
		for _, s := range page {
			got[s.UserID] = s
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].UserID
	}
	for u, s := range want {
		if got[u] != s {
			return fmt.Errorf("user %s: stored %+v, upstream's truth %+v", u, got[u], s)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d summaries stored, upstream's truth has %d", len(got), len(want))
	}
	quarantined, err := w.d.NewSelect().Table("quarantine").Count(ctx)
	if err != nil {
		return err
	}
	if int(quarantined) != w.mock.MalformedCount() {
		return fmt.Errorf("%d malformed items quarantined, upstream has %d", quarantined, w.mock.MalformedCount())
	}
	if n := w.mock.Stats().Transactions.RateLimited; n > 0 {
		return fmt.Errorf("upstream answered %d 429s: the budget was exceeded", n)
	}
	if n := w.maxPayload.Load(); n > maxActivityPayload {
		return fmt.Errorf("an activity payload of %d bytes, over %d", n, maxActivityPayload)
	}
	w.mu.Lock()
	lost := w.faults["FetchPage crash after"] + w.faults["zombie page"]
	w.mu.Unlock()
	if twice := w.mock.PagesAnsweredTwice() - w.replans(); twice > lost {
		return fmt.Errorf("%d pages fetched twice for plans of one kind, with %d fetch results lost and second-fetcher pages", twice, lost)
	}
	return nil
}

func (w *world) summary() string {
	var b strings.Builder
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(&b, "%d checks; faults:", w.checks)
	for _, k := range slices.Sorted(maps.Keys(w.faults)) {
		fmt.Fprintf(&b, " %s=%d", k, w.faults[k])
	}
	st := w.mock.Stats().Transactions
	fmt.Fprintf(&b, "; upstream: %d requests, %d dropped, %d failed", st.Received, st.Dropped, st.Failed)
	c := w.sc.mock
	fmt.Fprintf(&b, "\nscenario: page %d, late check %s, %d pages a run; upstream: %d users, %d items over %s, %d/min live for %s, late %.3f after %s, ordered %t, newest first %t, shuffled ties %t, whole seconds %t, page cap %d, page copies %.2f, big item %d, skew %s, drops %.3f, 5xx %.3f, malformed %.3f",
		w.sc.pageSize, w.sc.late, w.sc.maxPages, c.Users, c.Transactions, c.History, c.LiveRate, c.LiveFor, c.LateRate, c.LateDelay,
		c.Ordered, c.NewestFirst, c.ShuffleTies, c.WholeSeconds, c.PageCap, c.PageDuplicates, c.BigItemBytes, c.ClockSkew, c.DropRate, c.FailRate, c.MalformedRate)
	if st, err := db.ReadSyncStatus(w.ctx, w.d, w.acts.Sync.Budget); err == nil {
		fmt.Fprintf(&b, "\nbudget spent in the last hour: %v", st.BudgetSpent)
	}
	if s, err := db.GetSyncState(context.Background(), w.d, db.TransactionsStream); err == nil {
		fmt.Fprintf(&b, "\nstate: through %s, cursor %s", s.SyncedThrough.Format(time.RFC3339Nano), s.Cursor)
	}
	return b.String()
}

// simSeeds is which seeds a run of TestSim_WholeSync covers: the named
// ones, then SIM_SEEDS random ones (24 by default, 4 with -short); SIM_SEED
// replays one alone.
func simSeeds(t *testing.T) []uint64 {
	if v := os.Getenv("SIM_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "SIM_SEED")
		return []uint64{s}
	}
	n := 24
	if testing.Short() {
		n = 4
	}
	if v := os.Getenv("SIM_SEEDS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "SIM_SEEDS")
	}
	seeds := slices.Clone(namedSeeds)
	first := rand.Uint64() % 1_000_000_000
	for i := range n {
		seeds = append(seeds, first+uint64(i))
	}
	return seeds
}

// namedSeeds are seeds that found a bug, kept so that it stays found.
var namedSeeds = []uint64{
	// Items created at SYNC_START's very instant were promised by the
	// watermark before the first page stored them (whole seconds): the
	// first state is now created a microsecond before SYNC_START.
	823127416, 704855517,
	// A re-scan of a sliding read's span asked again for the pages that
	// read had reached (they end where it stopped): a window now counts
	// as answered when any of its pages was.
	556154978,
	// A copy of a malformed item took another item's place on a sorted
	// page and counted as a distinct item, so the page looked whole and
	// was continued by offset past the item it displaced: a malformed
	// copy is now a duplicate, by its SHA-256.
	72720817,
	// A copy took the place of another item right after a malformed
	// item, whose instant was taken for its own: the page proved the
	// displaced item's second. A copy after, or of, a malformed item is
	// now stray (upstream.Page.Stray) unless right after its original.
	55945935,
	// A stray copy in a one-second re-scan window's first second started
	// the window over at its own start: upstream answered that page twice.
	// Late coverage now plans its next window afresh.
	721925475,
	// Newest first with whole-second ties, read top down: the window's
	// first second, left below the page's proof, was made a burst though
	// one page held it; with a row listed twice its count was never
	// reached, and the same page was read twenty times. It is now read as
	// any window unless it was the window.
	750548220,
	// Not the sync's bug but the check's: late coverage's one-second
	// windows (page cap 30, whole seconds) had the bounds of fresh
	// windows read half an hour before, and the check counted the re-read
	// late coverage exists for as a page fetched twice. Only pages
	// fetched twice for plans of one kind count now (world.replans).
	268184017, 965738544,
}

// Ensure the whole sync keeps its promises under every upstream behaviour
// the contract allows and every crash, lease expiry and manual-sync storm
// a seed draws: nothing promised missing at any step, everything stored
// and counted once at the end, late coverage caught up, the budget
// respected, payloads bounded, no page fetched twice but for a lost
// result. `make sim` runs more seeds and reports seeds per second.
func TestSim_WholeSync(t *testing.T) {
	seeds := simSeeds(t)
	start := time.Now()
	var failed atomic.Int32
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, seed)
			err := w.run()
			if err == nil {
				err = w.final()
			}
			if err != nil {
				failed.Add(1)
				t.Fatalf("seed %d (SIM_SEED=%[1]d go test -run TestSim_WholeSync ./syncsim/ replays it): %v\n%s", seed, err, w.summary())
			}
			t.Logf("seed %d: %s", seed, w.summary())
		})
	}
	t.Cleanup(func() {
		took := time.Since(start)
		fmt.Printf("TestSim_WholeSync: %d seeds in %s, %.1f seeds/s, %d failed\n", len(seeds), took.Round(time.Millisecond), float64(len(seeds))/took.Seconds(), failed.Load())
	})
}
