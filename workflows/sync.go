package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/syncplan"
)

// a is only used to name activity methods; the worker registers a real one.
var a *activities.Activities

// SyncWorkflow keeps the store in step with upstream. One sync at a time
// is the fetcher (it holds a lease in the database); any other sync — a
// scheduled run while a manual one fetches, a manual one while the
// scheduled run fetches, any number of workers — joins it: it asks the
// fetcher by signal for the data it wants and waits until the store has
// it, or takes over when the fetcher lets go. So no page is fetched twice
// and no budget slot goes to a page another sync is fetching.
//
// The fetcher asks the planner (activities.PlanPage) for the next request,
// fetches it within the shared budget (FetchPage) and stores it with its
// progress in one database transaction (ApplyPage), until done: a manual
// sync once data through what it was asked for is stored, a scheduled one
// after following the feed for ten intervals. A long run continues as new,
// carrying its totals, so history stays bounded.
//
// The signal SyncSignal asks any running sync for data through now.
func SyncWorkflow(ctx workflow.Context, in SyncInput) (scorekeeper.SyncStats, error) {
	return newSyncRun(ctx, in).run()
}

// syncRun is one execution of SyncWorkflow: its input, totals and the
// activity options of its steps.
type syncRun struct {
	ctx     workflow.Context
	in      SyncInput
	res     scorekeeper.SyncStats
	holder  string
	signals workflow.ReceiveChannel
	pages   int

	dbCtx, fetchCtx, waitCtx workflow.Context
}

func newSyncRun(ctx workflow.Context, in SyncInput) *syncRun {
	s := &syncRun{
		ctx:     ctx,
		in:      in,
		holder:  workflow.GetInfo(ctx).WorkflowExecution.ID,
		signals: workflow.GetSignalChannel(ctx, SyncSignal),
	}
	if in.Carry != nil {
		s.res = *in.Carry
	}
	if in.Follow && in.FollowUntil.IsZero() {
		s.in.FollowUntil = workflow.Now(ctx).Add(10 * s.interval())
	}
	if !in.Follow && in.Want.IsZero() {
		// A manual sync wants the data through the moment it started.
		s.in.Want = workflow.Now(ctx)
	}
	s.dbCtx = workflow.WithActivityOptions(ctx, syncDBActivityOptions())
	s.fetchCtx = workflow.WithActivityOptions(ctx, fetchPageActivityOptions(s.interval()))
	s.waitCtx = workflow.WithActivityOptions(ctx, awaitSyncActivityOptions())
	return s
}

// syncDBActivityOptions are those of planning, applying and the lease,
// which touch only the database (a page is at most a thousand rows): a
// short timeout so a killed worker's attempt is retried soon, and retries
// without limit because a database outage is waited out, never turned into
// lost progress.
func syncDBActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	}
}

// fetchPageActivityOptions are FetchPage's. Fetching may wait for a budget
// slot (up to the budget window) and then for upstream; the heartbeat
// notices a dead worker early. 429s come back with NextRetryDelay =
// Retry-After; other failures back off up to half a sync interval (at
// least a second, at most a minute). The cap is what keeps data fresh
// after a storm: Temporal's backoff counts every attempt, 429s included,
// so after a dozen 429s the next 5xx would otherwise wait the full
// minute, and the freshness promise is two intervals. Retrying sooner
// costs nothing upstream does not allow: every attempt takes a budget
// slot first. ScheduleToClose bounds a run against an upstream that stays
// down: the next run picks up where it stopped.
func fetchPageActivityOptions(interval time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    5 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        min(time.Minute, max(time.Second, interval/2)),
			NonRetryableErrorTypes: []string{activities.ErrTypeUpstreamRejected},
		},
	}
}

// awaitSyncActivityOptions are AwaitSync's: waiting on another fetcher
// polls the database and heartbeats.
func awaitSyncActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: 10 * time.Second,
		},
	}
}

// run alternates between fetching (while this run holds the lease) and
// joining (while another does) until the run is done.
func (s *syncRun) run() (scorekeeper.SyncStats, error) {
	for {
		var lease activities.LeaseResult
		if err := workflow.ExecuteActivity(s.dbCtx, a.AcquireFetcher, activities.LeaseInput{Holder: s.holder}).Get(s.ctx, &lease); err != nil {
			return s.res, err
		}
		s.res.SyncedThrough = lease.SyncedThrough
		var done bool
		var err error
		if lease.Held {
			done, err = s.fetch()
		} else {
			done, err = s.join(lease.Holder)
		}
		if err != nil || done {
			if lease.Held && !workflow.IsContinueAsNewError(err) {
				s.release()
				// A manual sync that asked while this run was ending (its
				// signal came during the release) is served, not dropped
				// with the run: its caller waits for data through its
				// request.
				if err == nil && s.asksMore() {
					continue
				}
			}
			return s.res, err
		}
	}
}

// fetch is the fetcher's loop: plan, then fetch and apply or wait. It
// returns done when the run has what it came for, and not done when
// another sync took the lease (the run then joins it).
func (s *syncRun) fetch() (bool, error) {
	for {
		s.takeSignals()
		if s.pages >= s.maxPages() || s.historyFull() {
			return true, s.continueAsNew()
		}
		var plan activities.PlanResult
		if err := workflow.ExecuteActivity(s.dbCtx, a.PlanPage, activities.PlanInput{Holder: s.holder, Want: s.in.Want}).Get(s.ctx, &plan); err != nil {
			return false, err
		}
		if plan.LeaseLost {
			return false, nil
		}
		s.res.SyncedThrough = plan.SyncedThrough
		// A signal that came while planning still counts: read it before
		// deciding the run is done, or the run would end without it.
		s.takeSignals()
		if s.done(plan.SyncedThrough) {
			return true, nil
		}
		if plan.Request.Kind == syncplan.Wait {
			s.sleep(plan.Request.Wait)
			continue
		}
		if err := s.page(plan); err != nil {
			return false, err
		}
	}
}

// page fetches and stores one planned page.
func (s *syncRun) page(plan activities.PlanResult) error {
	var page activities.FetchPageResult
	if err := workflow.ExecuteActivity(s.fetchCtx, a.FetchPage, activities.FetchPageInput{Plan: plan}).Get(s.ctx, &page); err != nil {
		return err
	}
	if page.Skipped || page.LeaseLost {
		// The budget had no slot to spare, or another sync is the
		// fetcher now: plan again (planning finds the lease lost).
		return nil
	}
	s.pages++
	s.res.Pages++
	s.res.Fetched += len(page.Items) + page.Duplicates
	var applied activities.ApplyPageResult
	if err := workflow.ExecuteActivity(s.dbCtx, a.ApplyPage, activities.ApplyPageInput{Plan: plan, Page: page}).Get(s.ctx, &applied); err != nil {
		return err
	}
	s.res.Inserted += applied.Inserted
	s.res.Duplicates += applied.Duplicates
	s.res.Quarantined += applied.Quarantined
	s.res.SyncedThrough = applied.SyncedThrough
	return nil
}

// join waits while another sync is the fetcher. A manual run asks it for
// its data and is done once the store has it; a scheduled run waits to
// take over (or for its follow time to end). Not done means the lease is
// free: the run tries to take it.
func (s *syncRun) join(holder string) (bool, error) {
	s.ask(holder)
	for {
		if s.in.Follow && !workflow.Now(s.ctx).Before(s.in.FollowUntil) {
			return true, nil
		}
		if s.historyFull() {
			return true, s.continueAsNew()
		}
		var res activities.AwaitSyncResult
		target := s.in.Want
		if s.in.Follow {
			target = time.Time{} // followers wait for the lease, not for data
		}
		f := workflow.ExecuteActivity(s.waitCtx, a.AwaitSync, activities.AwaitSyncInput{Holder: holder, Target: target, MaxWait: time.Minute})
		for !f.IsReady() {
			// Asked for more meanwhile: pass it on to the fetcher.
			sel := workflow.NewSelector(s.ctx)
			sel.AddFuture(f, func(workflow.Future) {})
			sel.AddReceive(s.signals, func(workflow.ReceiveChannel, bool) { s.takeSignals(); s.ask(holder) })
			sel.Select(s.ctx)
		}
		if err := f.Get(s.ctx, &res); err != nil {
			return false, err
		}
		if !res.SyncedThrough.IsZero() {
			s.res.SyncedThrough = res.SyncedThrough
		}
		want := s.in.Want
		if s.takeSignals(); s.in.Want.After(want) {
			s.ask(holder)
		}
		switch {
		case res.Free:
			return false, nil
		case res.Reached && !s.in.Want.After(res.SyncedThrough):
			return true, nil
		}
	}
}

// ask signals the fetcher that this run wants data through its Want.
// Best effort: a fetcher that just ended cannot be asked, and this run
// then takes the lease itself.
func (s *syncRun) ask(holder string) {
	if s.in.Want.IsZero() {
		return
	}
	f := workflow.SignalExternalWorkflow(s.ctx, holder, "", SyncSignal, SyncRequest{Through: s.in.Want})
	if err := f.Get(s.ctx, nil); err != nil {
		workflow.GetLogger(s.ctx).Info("could not ask the fetcher for data; will take over when it ends", "fetcher", holder, "error", err)
	}
}

// takeSignals folds every pending SyncSignal into Want: the run now wants
// data through the latest instant asked for.
func (s *syncRun) takeSignals() {
	var req SyncRequest
	for s.signals.ReceiveAsync(&req) {
		through := req.Through
		if through.IsZero() {
			through = workflow.Now(s.ctx)
		}
		if through.After(s.in.Want) {
			s.in.Want = through
		}
		req = SyncRequest{}
	}
}

// done reports whether the fetcher has what it came for: a manual run the
// data through Want, a scheduled run the end of its follow time (and
// whatever it was asked for by signal meanwhile).
func (s *syncRun) done(syncedThrough time.Time) bool {
	if s.in.Want.After(syncedThrough) {
		return false
	}
	return !s.in.Follow || !workflow.Now(s.ctx).Before(s.in.FollowUntil)
}

// sleep waits until the planner expects work, or a signal asks for data.
func (s *syncRun) sleep(d time.Duration) {
	if s.in.Follow {
		if left := s.in.FollowUntil.Sub(workflow.Now(s.ctx)); left < d {
			d = max(left, time.Millisecond)
		}
	}
	tctx, cancel := workflow.WithCancel(s.ctx)
	defer cancel()
	sel := workflow.NewSelector(s.ctx)
	sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) {})
	sel.AddReceive(s.signals, func(workflow.ReceiveChannel, bool) {})
	sel.Select(s.ctx)
}

// release gives the fetcher lease up so a waiting sync takes over at once.
// Best effort: otherwise the lease expires.
func (s *syncRun) release() {
	if err := workflow.ExecuteActivity(s.dbCtx, a.ReleaseFetcher, activities.LeaseInput{Holder: s.holder}).Get(s.ctx, nil); err != nil {
		workflow.GetLogger(s.ctx).Warn("could not release the fetcher lease; it expires", "error", err)
	}
}

// continueAsNew starts a fresh history for a long run, carrying its
// totals, what it was asked for and its follow deadline. The lease is the
// workflow id's, so the next run keeps it.
func (s *syncRun) continueAsNew() error {
	s.takeSignals()
	in := s.in
	in.Carry = &s.res
	return workflow.NewContinueAsNewError(s.ctx, SyncWorkflow, in)
}

// Versions of SyncWorkflow's changes (docs/versioning.md): runs recorded
// before a change replay its old path.
const (
	// versionServeLateAsks: a run serves signals that came during its
	// ending, and continues as new when its history grows long, whatever
	// the page count.
	versionServeLateAsks = "serve-late-asks"
)

// historyFull reports whether the run should continue as new for the
// length of its history (signals at any rate grow it without a page).
func (s *syncRun) historyFull() bool {
	if workflow.GetVersion(s.ctx, versionServeLateAsks, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	most := s.in.MaxHistoryEvents
	if most <= 0 {
		most = DefaultMaxHistoryEvents
	}
	info := workflow.GetInfo(s.ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > most
}

// asksMore reports, as a fetcher ends, whether signals taken now ask for
// data the store does not have yet.
func (s *syncRun) asksMore() bool {
	if workflow.GetVersion(s.ctx, versionServeLateAsks, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	s.takeSignals()
	return s.in.Want.After(s.res.SyncedThrough)
}

func (s *syncRun) maxPages() int {
	if s.in.MaxPagesPerRun > 0 {
		return s.in.MaxPagesPerRun
	}
	return DefaultMaxPagesPerRun
}

func (s *syncRun) interval() time.Duration {
	if s.in.Interval > 0 {
		return s.in.Interval
	}
	return scorekeeper.DefaultSyncInterval
}
