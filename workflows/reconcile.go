package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"scorekeeper"
	"scorekeeper/activities"
)

// ReconcileScheduleID is the Temporal Schedule that runs ReconcileWorkflow
// daily (report only).
const ReconcileScheduleID = "reconcile-daily"

// ReconcileWorkflowID is the id of reconciliations started by POST
// /api/reconcile: one at a time.
const ReconcileWorkflowID = "reconcile-manual"

// MaxDriftReported bounds the drifted fields a reconciliation lists in its
// result; the count of drifted users is always exact.
const MaxDriftReported = 1000

// ReconcileInput starts or continues a reconciliation.
type ReconcileInput struct {
	// Repair rewrites drifted summaries; otherwise nothing is changed.
	Repair bool `json:"repair,omitempty"`
	// PageSize is the users per page (zero: 500).
	PageSize int `json:"pageSize,omitempty"`
	// After and Carry continue a run that continued as new.
	After string                       `json:"after,omitempty"`
	Carry *scorekeeper.ReconcileReport `json:"carry,omitempty"`
}

// reconcilePagesPerRun bounds a run's history; a larger store continues as
// new.
const reconcilePagesPerRun = 200

// ReconcileWorkflow recomputes every user's summary from the stored
// transactions and payouts, a page of users at a time, and reports the
// fields that differ from the stored summaries (invariant 2). With Repair
// it rewrites them. It ends by recording how many users drifted, for
// scorekeeper_reconcile_drift_users.
func ReconcileWorkflow(ctx workflow.Context, in ReconcileInput) (scorekeeper.ReconcileReport, error) {
	res := scorekeeper.ReconcileReport{Drifted: []scorekeeper.Drift{}}
	if in.Carry != nil {
		res = *in.Carry
	}
	size := in.PageSize
	if size <= 0 {
		size = 500
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: 30 * time.Second,
		},
	})
	after := in.After
	for pages := 0; ; pages++ {
		if pages == reconcilePagesPerRun {
			next := in
			next.After, next.Carry = after, &res
			return res, workflow.NewContinueAsNewError(ctx, ReconcileWorkflow, next)
		}
		var p activities.ReconcilePageResult
		if err := workflow.ExecuteActivity(ctx, a.ReconcilePage, activities.ReconcilePageInput{After: after, Limit: size, Repair: in.Repair}).Get(ctx, &p); err != nil {
			return res, err
		}
		addPage(&res, p)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	err := workflow.ExecuteActivity(ctx, a.RecordReconcile, activities.RecordReconcileInput{DriftedUsers: res.DriftedUsers}).Get(ctx, nil)
	return res, err
}

// addPage folds one page into the result.
func addPage(r *scorekeeper.ReconcileReport, p activities.ReconcilePageResult) {
	r.UsersChecked += p.Checked
	r.Repaired += p.Repaired
	last := ""
	for _, d := range p.Drifted {
		if d.UserID != last {
			r.DriftedUsers++
			last = d.UserID
		}
		if len(r.Drifted) < MaxDriftReported {
			r.Drifted = append(r.Drifted, d)
		}
	}
}
