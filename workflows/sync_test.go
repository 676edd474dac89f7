package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/syncplan"
	"scorekeeper/workflows"
)

var (
	a  *activities.Activities
	t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
)

const holder = "default-test-workflow-id" // the test environment's workflow id

func freshPlan(version int64, through time.Time) activities.PlanResult {
	return activities.PlanResult{
		Request:       syncplan.Request{Kind: syncplan.Fresh, Start: through, EndAtFetch: true, Page: 1, Limit: 2},
		Version:       version,
		SyncedThrough: through,
	}
}

func waitPlan(through time.Time, d time.Duration) activities.PlanResult {
	return activities.PlanResult{Request: syncplan.Request{Kind: syncplan.Wait, Wait: d}, SyncedThrough: through}
}

func pageOf(ids ...string) activities.FetchPageResult {
	var p activities.FetchPageResult
	for _, id := range ids {
		p.Items = append(p.Items, activities.Item{ID: id, UserID: "u1", CreatedAt: t0, Type: scorekeeper.TxEarned, Amount: 100})
	}
	return p
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	env.SetStartTime(t0.Add(time.Hour))
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

func leaseHeld(through time.Time) activities.LeaseResult {
	return activities.LeaseResult{Held: true, Holder: holder, SyncedThrough: through}
}

// Ensure the fetcher plans, fetches and applies until it has the data it
// was started for, then lets the lease go, and reports its totals.
func TestSyncWorkflow_FetchesUntilCaughtUp(t *testing.T) {
	env := newEnv(t)
	want := t0.Add(time.Hour)
	env.OnActivity(a.AcquireFetcher, mock.Anything, activities.LeaseInput{Holder: holder}).Return(leaseHeld(t0), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: want}).Return(freshPlan(1, t0), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: want}).Return(freshPlan(2, t0.Add(30*time.Minute)), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: want}).Return(waitPlan(want, time.Second), nil).Once()
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(pageOf("t1", "t2"), nil).Twice()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 2, SyncedThrough: t0.Add(30 * time.Minute)}, nil).Once()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 1, Duplicates: 1, SyncedThrough: want}, nil).Once()
	env.OnActivity(a.ReleaseFetcher, mock.Anything, activities.LeaseInput{Holder: holder}).Return(nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res scorekeeper.SyncStats
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, scorekeeper.SyncStats{Fetched: 4, Inserted: 3, Duplicates: 1, Pages: 2, SyncedThrough: want}, res)
}

// Ensure a sync that finds another fetcher asks it for its data by signal
// and waits for the store to have it, fetching nothing itself.
func TestSyncWorkflow_JoinsTheFetcher(t *testing.T) {
	env := newEnv(t)
	want := t0.Add(time.Hour)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(activities.LeaseResult{Holder: "transactions-sync-scheduled", SyncedThrough: t0}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, "transactions-sync-scheduled", "", workflows.SyncSignal, workflows.SyncRequest{Through: want}).Return(nil).Once()
	env.OnActivity(a.AwaitSync, mock.Anything, activities.AwaitSyncInput{Holder: "transactions-sync-scheduled", Target: want, MaxWait: time.Minute}).
		Return(activities.AwaitSyncResult{Reached: true, SyncedThrough: want.Add(time.Second)}, nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res scorekeeper.SyncStats
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, scorekeeper.SyncStats{SyncedThrough: want.Add(time.Second)}, res, "a joiner fetches nothing")
}

// Ensure a joiner takes over when the fetcher lets go before its data is
// stored.
func TestSyncWorkflow_TakesOverAFetcherThatEnds(t *testing.T) {
	env := newEnv(t)
	want := t0.Add(time.Hour)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(activities.LeaseResult{Holder: "other", SyncedThrough: t0}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, "other", "", workflows.SyncSignal, mock.Anything).Return(nil).Once()
	env.OnActivity(a.AwaitSync, mock.Anything, mock.Anything).Return(activities.AwaitSyncResult{Free: true, SyncedThrough: t0.Add(time.Minute)}, nil).Once()
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0.Add(time.Minute)), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(waitPlan(want, time.Second), nil).Once()
	env.OnActivity(a.ReleaseFetcher, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.NoError(t, env.GetWorkflowError())
}

// Ensure the sync signal raises what a running sync wants: a fetcher that
// was caught up keeps going until the store has data through the
// instant the signal named.
func TestSyncWorkflow_SignalAsksForMore(t *testing.T) {
	env := newEnv(t)
	start := t0.Add(time.Hour)
	later := start.Add(10 * time.Second)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0), nil).Once()
	// Not caught up yet: wait 5 s, during which the signal comes.
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: start}).Return(waitPlan(start.Add(-time.Second), 5*time.Second), nil).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SyncSignal, workflows.SyncRequest{Through: later})
	}, 2*time.Second)
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: later}).Return(waitPlan(start, time.Second), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: later}).Return(waitPlan(later, time.Second), nil).Once()
	env.OnActivity(a.ReleaseFetcher, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res scorekeeper.SyncStats
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, later, res.SyncedThrough)
}

// Ensure a scheduled run follows the feed for ten intervals, sleeping as
// the planner says, and then ends.
func TestSyncWorkflow_FollowsForTenIntervals(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0), nil).Once()
	plans := 0
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder}).Return(func(context.Context, activities.PlanInput) (activities.PlanResult, error) {
		plans++
		return waitPlan(t0, 20*time.Second), nil
	})
	env.OnActivity(a.ReleaseFetcher, mock.Anything, mock.Anything).Return(nil).Once()
	started := env.Now()
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute, Follow: true})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 10*time.Minute, env.Now().Sub(started).Round(time.Second))
	require.Equal(t, 31, plans, "a plan every 20 s for 10 minutes, and the last one")
}

// Ensure a long run continues as new, carrying its totals and what it
// was asked for.
func TestSyncWorkflow_ContinuesAsNew(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(1, t0), nil).Twice()
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(pageOf("t1"), nil).Twice()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 1, SyncedThrough: t0}, nil).Twice()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute, MaxPagesPerRun: 2})
	err := env.GetWorkflowError()
	require.Error(t, err)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next workflows.SyncInput
	require.NoError(t, testsuiteDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, t0.Add(time.Hour), next.Want, "still wants the data through its start")
	require.Equal(t, &scorekeeper.SyncStats{Fetched: 2, Inserted: 2, Pages: 2, SyncedThrough: t0}, next.Carry)
}

// Ensure a manual sync that asks while the fetcher is ending (its signal
// comes during the release) is served by that run, not dropped with it:
// its caller waits for data through its request.
func TestSyncWorkflow_ServesAnAskDuringRelease(t *testing.T) {
	env := newEnv(t)
	start := t0.Add(time.Hour)
	later := start.Add(3 * time.Second)
	env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0), nil).Twice()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: start}).Return(waitPlan(start, time.Second), nil).Once()
	// The release takes 5 s; the signal comes 2 s into it.
	env.OnActivity(a.ReleaseFetcher, mock.Anything, mock.Anything).After(5 * time.Second).Return(nil).Twice()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SyncSignal, workflows.SyncRequest{Through: later})
	}, 2*time.Second)
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{Holder: holder, Want: later}).Return(waitPlan(later, time.Second), nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res scorekeeper.SyncStats
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, later, res.SyncedThrough, "the answer covers the ask that came during the release")
}

// Ensure signals at any rate keep one run's history bounded: the run
// continues as new once its history passes MaxHistoryEvents (or the
// server suggests it), carrying what it was asked for, whatever the page
// count. (The test environment reports the history length it is told.)
func TestSyncWorkflow_SignalStormContinuesAsNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		grow func(env *testsuite.TestWorkflowEnvironment)
	}{
		{"HistoryLength", func(env *testsuite.TestWorkflowEnvironment) { env.SetCurrentHistoryLength(201) }},
		{"ServerSuggests", func(env *testsuite.TestWorkflowEnvironment) { env.SetContinueAsNewSuggested(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			start := t0.Add(time.Hour)
			env.OnActivity(a.AcquireFetcher, mock.Anything, mock.Anything).Return(leaseHeld(t0), nil).Once()
			// Never caught up: the run waits, and signals pile up meanwhile.
			env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(waitPlan(t0, time.Minute), nil)
			for i := range 30 {
				env.RegisterDelayedCallback(func() {
					env.SignalWorkflow(workflows.SyncSignal, workflows.SyncRequest{Through: start.Add(time.Duration(i) * time.Second)})
				}, time.Duration(i+1)*100*time.Millisecond)
			}
			env.RegisterDelayedCallback(func() { tc.grow(env) }, 3050*time.Millisecond)
			env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute, MaxHistoryEvents: 200})
			var can *workflow.ContinueAsNewError
			require.ErrorAs(t, env.GetWorkflowError(), &can)
			var next workflows.SyncInput
			require.NoError(t, testsuiteDataConverter().FromPayloads(can.Input, &next))
			require.Equal(t, start.Add(29*time.Second), next.Want, "carries the latest ask")
			require.Equal(t, 200, next.MaxHistoryEvents)
		})
	}
}
