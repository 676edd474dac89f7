package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

var (
	a  *activities.Activities
	t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
)

func freshPlan(page int, version int64) activities.PlanResult {
	return activities.PlanResult{
		Kind:          activities.KindFresh,
		Request:       activities.PageRequest{Start: t0, End: t0.Add(time.Minute), Page: page, Limit: 2},
		Version:       version,
		SyncedThrough: t0,
	}
}

func donePlan(through time.Time) activities.PlanResult {
	return activities.PlanResult{Done: true, SyncedThrough: through}
}

func pageOf(ids ...string) activities.FetchPageResult {
	p := activities.FetchPageResult{TotalPages: 3}
	for _, id := range ids {
		p.Items = append(p.Items, activities.Item{ID: id, UserID: "u1", CreatedAt: t0, Type: scorekeeper.TxEarned, Amount: 100})
	}
	return p
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	env := newBareEnv(t)
	// Every sync ends with the payout recovery scan (tested on its own).
	env.OnActivity(a.RecoverPayouts, mock.Anything, mock.Anything).Return(activities.RecoverPayoutsResult{}, nil).Maybe()
	return env
}

func newBareEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

// Ensure a sync pages through a window to its end, applies every page with
// the plan it was fetched for, and sums the stats.
func TestSyncWorkflow_PagesToEnd(t *testing.T) {
	env := newEnv(t)
	through := t0.Add(time.Minute)
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{NewWindowAfter: time.Second, AllowRescan: true}).Return(freshPlan(1, 1), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, activities.PlanInput{NewWindowAfter: time.Minute, AllowRescan: true}).Return(freshPlan(2, 2), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(3, 3), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(donePlan(through), nil).Once()
	for i, ids := range [][]string{{"a", "b"}, {"c", "c"}, {"d"}} {
		req := freshPlan(i+1, 0).Request
		p := pageOf(ids...)
		env.OnActivity(a.FetchPage, mock.Anything, activities.FetchPageInput{Request: req}).Return(p, nil).Once()
	}
	env.OnActivity(a.ApplyPage, mock.Anything, mock.MatchedBy(func(in activities.ApplyPageInput) bool {
		return in.Plan.Request.Page == 1 && in.Plan.Version == 1 && len(in.Page.Items) == 2
	})).Return(activities.ApplyPageResult{Inserted: 2, SyncedThrough: t0}, nil).Once()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.MatchedBy(func(in activities.ApplyPageInput) bool {
		return in.Plan.Request.Page == 2
	})).Return(activities.ApplyPageResult{Inserted: 1, Duplicates: 1, SyncedThrough: t0}, nil).Once()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.MatchedBy(func(in activities.ApplyPageInput) bool {
		return in.Plan.Request.Page == 3
	})).Return(activities.ApplyPageResult{Inserted: 0, Duplicates: 1, Quarantined: 2, SyncedThrough: through}, nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.SyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, workflows.SyncResult{Fetched: 5, Inserted: 3, Duplicates: 2, Quarantined: 2, Pages: 3, SyncedThrough: through}, res)
}

// Ensure nothing to do is a successful, empty sync that still runs the
// payout recovery scan.
func TestSyncWorkflow_NothingToDo(t *testing.T) {
	env := newBareEnv(t)
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(donePlan(t0), nil).Once()
	env.OnActivity(a.RecoverPayouts, mock.Anything, activities.RecoverPayoutsInput{OlderThan: workflows.PayoutRecoveryAge}).
		Return(activities.RecoverPayoutsResult{Notified: 2}, nil).Once()
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{})
	var res workflows.SyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, workflows.SyncResult{SyncedThrough: t0}, res)
}

// Ensure a 429 is retried after its Retry-After, not failed.
func TestSyncWorkflow_RateLimitedRetries(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(1, 1), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(donePlan(t0.Add(time.Minute)), nil).Once()
	rateLimited := temporal.NewApplicationErrorWithOptions("upstream: 429", activities.ErrTypeUpstreamRateLimited,
		temporal.ApplicationErrorOptions{NextRetryDelay: 12 * time.Second})
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(activities.FetchPageResult{}, rateLimited).Twice()
	p := pageOf("a")
	p.TotalPages = 1
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(p, nil).Once()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 1, SyncedThrough: t0.Add(time.Minute)}, nil).Once()

	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{})
	var res workflows.SyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 1, res.Pages)
	require.Equal(t, 1, res.Inserted)
}

// Ensure a failing apply (database down) is retried and nothing is skipped.
func TestSyncWorkflow_ApplyRetries(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(3, 1), nil).Once()
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(donePlan(t0.Add(time.Minute)), nil).Once()
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(pageOf("x"), nil).Once()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{}, errors.New("connection refused")).Times(3)
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 1, SyncedThrough: t0.Add(time.Minute)}, nil).Once()
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{})
	var res workflows.SyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 1, res.Inserted)
}

// Ensure a request upstream rejects for good fails the run instead of
// retrying forever.
func TestSyncWorkflow_UpstreamRejectedFails(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(1, 1), nil).Once()
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(activities.FetchPageResult{},
		temporal.NewNonRetryableApplicationError("upstream: 400", activities.ErrTypeUpstreamRejected, nil)).Once()
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, activities.ErrTypeUpstreamRejected, appErr.Type())
}

// Ensure the re-scan gives way when the budget has no room left over.
func TestSyncWorkflow_RescanUsesLeftoverBudget(t *testing.T) {
	env := newEnv(t)
	rescan := activities.PlanResult{Kind: activities.KindRescan, Request: activities.PageRequest{Start: t0, End: t0.Add(2 * time.Minute), Page: 1, Limit: 1000}, Version: 4}
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(rescan, nil).Once()
	env.OnActivity(a.FetchPage, mock.Anything, activities.FetchPageInput{Request: rescan.Request, NoWait: true}).Return(activities.FetchPageResult{Skipped: true}, nil).Once()
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{})
	var res workflows.SyncResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 0, res.Pages)
}

// Ensure a backlog larger than one run continues as new with its totals.
func TestSyncWorkflow_BacklogContinuesAsNew(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(1, 1), nil).Twice()
	env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(pageOf("a", "b"), nil).Twice()
	env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 2, SyncedThrough: t0}, nil).Twice()
	carry := &workflows.SyncResult{Fetched: 10, Inserted: 10, Pages: 5}
	env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{MaxPagesPerRun: 2, Carry: carry, Interval: time.Minute})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next workflows.SyncInput
	require.NoError(t, converterDecode(can, &next))
	require.Equal(t, 2, next.MaxPagesPerRun)
	require.Equal(t, time.Minute, next.Interval)
	require.Equal(t, &workflows.SyncResult{Fetched: 14, Inserted: 14, Pages: 7, SyncedThrough: t0}, next.Carry)
}

func converterDecode(can *workflow.ContinueAsNewError, out *workflows.SyncInput) error {
	return testsuiteDataConverter().FromPayloads(can.Input, out)
}

var _ = context.Background

// Ensure a scheduled (following) run waits for the next page of data when
// it is due before the next run, and a manual run ends once caught up.
func TestSyncWorkflow_FollowsHighVolume(t *testing.T) {
	waiting := donePlan(t0)
	waiting.NextWindowIn = 10 * time.Second
	t.Run("Follow", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(waiting, nil).Once()
		env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(freshPlan(1, 1), nil).Once()
		p := pageOf("a")
		p.TotalPages = 1
		env.OnActivity(a.FetchPage, mock.Anything, mock.Anything).Return(p, nil).Once()
		env.OnActivity(a.ApplyPage, mock.Anything, mock.Anything).Return(activities.ApplyPageResult{Inserted: 1, SyncedThrough: t0.Add(time.Minute)}, nil).Once()
		env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(donePlan(t0.Add(time.Minute)), nil).Once()
		env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute, Follow: true})
		var res workflows.SyncResult
		require.NoError(t, env.GetWorkflowResult(&res))
		require.Equal(t, 1, res.Inserted)
	})
	t.Run("FollowBounded", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(waiting, nil)
		env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute, Follow: true, MaxPagesPerRun: 1000})
		require.NoError(t, env.GetWorkflowError())
		require.True(t, env.IsWorkflowCompleted(), "following ends after ten intervals")
	})
	t.Run("ManualEnds", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(a.PlanPage, mock.Anything, mock.Anything).Return(waiting, nil).Once()
		env.ExecuteWorkflow(workflows.SyncWorkflow, workflows.SyncInput{Interval: time.Minute})
		require.NoError(t, env.GetWorkflowError())
	})
}
