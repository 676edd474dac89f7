package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/config"
	"scorekeeper/db"
	"scorekeeper/metrics"
	"scorekeeper/syncplan"
	"scorekeeper/web"
	"scorekeeper/workflows"
)

// temporalSyncer is the web layer's Syncer: it starts SyncWorkflow on
// Temporal and reads sync status from Temporal and the database.
type temporalSyncer struct {
	client client.Client
	db     *bun.DB
	cfg    config.Config
}

var _ web.Syncer = (*temporalSyncer)(nil)

// StartSync asks for data through now: it signals the manual sync, starting
// it if none runs (signal-with-start on one fixed workflow id), so a burst
// of requests is one sync. That sync fetches if no other does, or asks the
// fetcher for the data and waits for it: one fetcher, whatever starts
// syncs. "Now" is the database's clock, which the sync's windows use.
func (s *temporalSyncer) StartSync(ctx context.Context) (web.SyncRun, error) {
	now, err := db.Now(ctx, s.db)
	if err != nil {
		now = time.Now().UTC()
	}
	run, err := s.client.SignalWithStartWorkflow(ctx, workflows.ManualSyncWorkflowID, workflows.SyncSignal,
		workflows.SyncRequest{Through: now},
		client.StartWorkflowOptions{
			ID:                    workflows.ManualSyncWorkflowID,
			TaskQueue:             s.cfg.TemporalTaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowRunTimeout:    24 * time.Hour,
		}, workflows.SyncWorkflow, workflows.SyncInput{Interval: s.cfg.SyncInterval, Want: now})
	if err != nil {
		return web.SyncRun{}, temporalError("start sync", err)
	}
	return web.SyncRun{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// WaitSync waits for the run (following continue-as-new) and returns its
// totals.
func (s *temporalSyncer) WaitSync(ctx context.Context, run web.SyncRun) (web.SyncStats, error) {
	var res workflows.SyncResult
	if err := s.client.GetWorkflow(ctx, run.WorkflowID, run.RunID).Get(ctx, &res); err != nil {
		if ctx.Err() != nil {
			return web.SyncStats{}, ctx.Err()
		}
		return web.SyncStats{}, temporalError("sync failed", err)
	}
	return toSyncStats(res), nil
}

func toSyncStats(r workflows.SyncResult) web.SyncStats {
	return web.SyncStats{
		Fetched:       r.Fetched,
		Inserted:      r.Inserted,
		Duplicates:    r.Duplicates,
		Quarantined:   r.Quarantined,
		Pages:         r.Pages,
		SyncedThrough: r.SyncedThrough,
	}
}

// Status reads the watermark, late coverage, budget and quarantine from the
// database, and the most recent SyncWorkflow run from Temporal's
// visibility store.
func (s *temporalSyncer) Status(ctx context.Context) (web.SyncStatus, error) {
	var out web.SyncStatus
	now := time.Now().UTC()
	st, err := db.GetSyncState(ctx, s.db, db.TransactionsStream)
	switch {
	case err == nil:
		out.SyncedThrough = st.SyncedThrough
		out.LagSeconds = max(0, now.Sub(st.SyncedThrough).Seconds())
		if through, ok := syncplan.LateCoverage(st.Cursor); ok {
			out.LateCoveredThrough = &through
		}
	case scorekeeper.ErrorCode(err) != scorekeeper.ENotFound:
		return out, err
	}
	if dbNow, err := db.Now(ctx, s.db); err == nil {
		now = dbNow
	}
	if out.LateCoveredThrough != nil {
		out.LateLagSeconds = max(0, now.Sub(*out.LateCoveredThrough).Seconds())
	}
	b := upstreamBudget(s.cfg.UpstreamRate)
	if out.BudgetUsed, err = b.Used(ctx, s.db, now); err != nil {
		return out, err
	}
	out.BudgetLimit, out.BudgetWindow = b.N, b.Per.String()
	spent, err := b.Spent(ctx, s.db, now.Add(-time.Hour))
	if err != nil {
		return out, err
	}
	out.BudgetSpent = web.BudgetSpent{Fresh: spent["fresh"], Rescan: spent["rescan"], Probe: spent["probe"]}
	counters, err := db.Counters(ctx, s.db)
	if err != nil {
		return out, err
	}
	out.PagesFetchedTwice = int(counters[db.CounterPagesFetchedTwice][""])
	if lease, ok, err := db.GetLease(ctx, s.db, activities.FetcherLease); err != nil {
		return out, err
	} else if ok {
		out.Fetcher = lease.Holder
	}
	if out.Quarantined, err = db.QuarantineCount(ctx, s.db); err != nil {
		return out, err
	}
	if out.PayoutsOverdue, err = db.OverduePayouts(ctx, s.db, now.Add(-metrics.OverdueAfter)); err != nil {
		return out, err
	}
	out.LastRun, err = s.lastRun(ctx)
	if err != nil {
		return out, err
	}
	return out, nil
}

func (s *temporalSyncer) lastRun(ctx context.Context) (*web.SyncRunInfo, error) {
	resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: s.cfg.TemporalNamespace,
		PageSize:  1,
		Query:     "WorkflowType = 'SyncWorkflow'", // newest first by default
	})
	if err != nil {
		return nil, temporalError("list sync runs", err)
	}
	if len(resp.Executions) == 0 {
		return nil, nil
	}
	e := resp.Executions[0]
	info := &web.SyncRunInfo{
		WorkflowID: e.GetExecution().GetWorkflowId(),
		RunID:      e.GetExecution().GetRunId(),
		Status:     statusName(e.GetStatus()),
		StartedAt:  e.GetStartTime().AsTime(),
	}
	if e.GetCloseTime() != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t := e.GetCloseTime().AsTime()
		info.ClosedAt = &t
	}
	if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var res workflows.SyncResult
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := s.client.GetWorkflow(gctx, info.WorkflowID, info.RunID).Get(gctx, &res); err == nil {
			st := toSyncStats(res)
			info.Stats = &st
		}
	}
	return info, nil
}

func statusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued_as_new"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed_out"
	}
	return "unknown"
}

// temporalError turns Temporal client failures into domain errors: an
// unreachable server is 503, the rest internal.
func temporalError(what string, err error) error {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	if errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) {
		return scorekeeper.Errorf(scorekeeper.EUnavailable, "the workflow service is unavailable; try again shortly")
	}
	return fmt.Errorf("%s: %w", what, err)
}

var _ web.Reconciler = (*temporalSyncer)(nil)

// StartReconcile starts a reconciliation, or joins the one running: one
// workflow id for reports and another for repairs, so a repair is never
// answered by a report already running.
func (s *temporalSyncer) StartReconcile(ctx context.Context, repair bool) (web.SyncRun, error) {
	id := workflows.ReconcileWorkflowID
	if repair {
		id += "-repair"
	}
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                s.cfg.TemporalTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:       6 * time.Hour,
	}, workflows.ReconcileWorkflow, workflows.ReconcileInput{Repair: repair})
	if err != nil {
		return web.SyncRun{}, temporalError("start reconcile", err)
	}
	return web.SyncRun{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// WaitReconcile waits for the run (following continue-as-new) and returns
// its report.
func (s *temporalSyncer) WaitReconcile(ctx context.Context, run web.SyncRun) (web.ReconcileReport, error) {
	var res workflows.ReconcileResult
	if err := s.client.GetWorkflow(ctx, run.WorkflowID, run.RunID).Get(ctx, &res); err != nil {
		if ctx.Err() != nil {
			return web.ReconcileReport{}, ctx.Err()
		}
		return web.ReconcileReport{}, temporalError("reconcile failed", err)
	}
	out := web.ReconcileReport{UsersChecked: res.UsersChecked, Repaired: res.Repaired}
	for _, d := range res.Drifted {
		out.Drifted = append(out.Drifted, web.Drift{UserID: d.UserID, Field: d.Field, Stored: d.Stored, Recomputed: d.Recomputed})
	}
	return out, nil
}
