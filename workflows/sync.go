package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper/activities"
)

// a is only used to name activity methods; the worker registers a real one.
var a *activities.Activities

// SyncWorkflow pages through the upstream transaction API within the shared
// request budget, storing each page exactly once and advancing the stored
// watermark only together with the data (ApplyPage). New data comes first;
// budget left over re-scans the overlap behind the watermark for items that
// became visible late. A backfill larger than MaxPagesPerRun continues as
// new, carrying its totals, so history stays bounded.
func SyncWorkflow(ctx workflow.Context, in SyncInput) (SyncResult, error) {
	res := SyncResult{}
	if in.Carry != nil {
		res = *in.Carry
	}
	if in.Follow && in.FollowUntil.IsZero() {
		in.FollowUntil = workflow.Now(ctx).Add(10 * intervalOrMinute(in))
	}
	maxPages := in.MaxPagesPerRun
	if maxPages <= 0 {
		maxPages = DefaultMaxPagesPerRun
	}

	// Planning and applying touch only the database (a page is at most a
	// thousand rows): a short timeout so a killed worker's attempt is
	// retried soon, and retries without limit because a database outage is
	// waited out, never turned into lost progress.
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
	// Fetching may wait for a budget slot (up to the budget period) and
	// then for upstream; the heartbeat notices a dead worker early. 429s
	// come back with NextRetryDelay = Retry-After; other failures back off
	// up to a minute. ScheduleToClose bounds a run against an upstream
	// that stays down: the next scheduled run picks up where it stopped.
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    5 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeUpstreamRejected},
		},
	})

	newWindowAfter := time.Second
	for pages := 0; ; pages++ {
		if pages >= maxPages {
			in.Carry = &res
			return res, workflow.NewContinueAsNewError(ctx, SyncWorkflow, in)
		}
		var plan activities.PlanResult
		err := workflow.ExecuteActivity(dbCtx, a.PlanPage, activities.PlanInput{
			NewWindowAfter: newWindowAfter,
			AllowRescan:    true,
		}).Get(ctx, &plan)
		if err != nil {
			return res, err
		}
		res.SyncedThrough = plan.SyncedThrough
		if plan.Done {
			if waitForData(ctx, in, plan) {
				continue
			}
			recoverPayouts(ctx)
			return res, nil
		}

		var page activities.FetchPageResult
		err = workflow.ExecuteActivity(fetchCtx, a.FetchPage, activities.FetchPageInput{
			Request: plan.Request,
			NoWait:  plan.Kind == activities.KindRescan,
			Keep:    rescanKeep(plan),
		}).Get(ctx, &page)
		if err != nil {
			return res, err
		}
		if page.Skipped {
			// No budget left over for the re-scan: fresh data has it.
			if waitForData(ctx, in, plan) {
				continue
			}
			recoverPayouts(ctx)
			return res, nil
		}
		res.Pages++
		res.Fetched += len(page.Items) + page.Duplicates

		var applied activities.ApplyPageResult
		err = workflow.ExecuteActivity(dbCtx, a.ApplyPage, activities.ApplyPageInput{
			Plan: plan,
			Page: page,
		}).Get(ctx, &applied)
		if err != nil {
			return res, err
		}
		res.Inserted += applied.Inserted
		res.Duplicates += applied.Duplicates
		res.Quarantined += applied.Quarantined
		res.SyncedThrough = applied.SyncedThrough
		// After the first page, open a new window only when a whole
		// interval has passed: the run is then behind and keeps going;
		// otherwise the next scheduled run fetches the next window whole.
		newWindowAfter = intervalOrMinute(in)
	}
}

// waitForData sleeps until a page of new data is expected, when that is
// sooner than the next scheduled run and the run follows the feed; it
// reports whether it slept (and the run should plan again).
func waitForData(ctx workflow.Context, in SyncInput, plan activities.PlanResult) bool {
	if !in.Follow || plan.NextWindowIn <= 0 || plan.NextWindowIn >= intervalOrMinute(in) ||
		!workflow.Now(ctx).Add(plan.NextWindowIn).Before(in.FollowUntil) {
		return false
	}
	return workflow.Sleep(ctx, plan.NextWindowIn) == nil
}

// rescanKeep is the budget a re-scan leaves to fresh data.
func rescanKeep(plan activities.PlanResult) int {
	if plan.Kind != activities.KindRescan {
		return 0
	}
	return plan.Keep
}

// intervalOrMinute is the gap after which a running sync opens another
// fresh window rather than leaving it to the next scheduled run.
func intervalOrMinute(in SyncInput) time.Duration {
	if in.Interval > 0 {
		return in.Interval
	}
	return time.Minute
}

// recoverPayouts wakes the payout workflows of users whose payouts have
// waited longer than PayoutRecoveryAge: the store is the source of truth,
// so a wake-up lost after a sync committed is made up here, on the next
// sync. It is best effort; a failure is logged and the sync still succeeds.
func recoverPayouts(ctx workflow.Context) {
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var res activities.RecoverPayoutsResult
	err := workflow.ExecuteActivity(rctx, a.RecoverPayouts, activities.RecoverPayoutsInput{
		OlderThan: PayoutRecoveryAge,
	}).Get(ctx, &res)
	if err != nil {
		workflow.GetLogger(ctx).Warn("payout recovery scan failed; the next sync retries it", "error", err)
	}
}

// PayoutRecoveryAge is how long a payout may stay requested before the
// recovery scan wakes its workflow again.
const PayoutRecoveryAge = 2 * time.Minute
