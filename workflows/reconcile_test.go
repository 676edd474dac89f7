package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// Ensure a reconciliation walks every page, counts drifted users (not
// fields), passes repair on, and records the count for the metric.
func TestReconcileWorkflow_PagesAndRecords(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.ReconcilePage, mock.Anything, activities.ReconcilePageInput{After: "", Limit: 2, Repair: true}).
		Return(activities.ReconcilePageResult{Checked: 2, Next: "u2", Drifted: []scorekeeper.Drift{
			{UserID: "u1", Field: "earned", Stored: 101, Recomputed: 100},
			{UserID: "u1", Field: "spent", Stored: 0, Recomputed: 5},
		}, Repaired: 1}, nil).Once()
	env.OnActivity(a.ReconcilePage, mock.Anything, activities.ReconcilePageInput{After: "u2", Limit: 2, Repair: true}).
		Return(activities.ReconcilePageResult{Checked: 1}, nil).Once()
	env.OnActivity(a.RecordReconcile, mock.Anything, activities.RecordReconcileInput{DriftedUsers: 1}).Return(nil).Once()

	env.ExecuteWorkflow(workflows.ReconcileWorkflow, workflows.ReconcileInput{Repair: true, PageSize: 2})
	require.NoError(t, env.GetWorkflowError())
	var res scorekeeper.ReconcileReport
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 3, res.UsersChecked)
	require.Equal(t, 1, res.DriftedUsers)
	require.Equal(t, 1, res.Repaired)
	require.Len(t, res.Drifted, 2)
}
