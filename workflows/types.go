// Package workflows holds the Temporal workflows: orchestration only. Every
// decision that needs I/O or the clock happens in an activity; workflow code
// uses only the SDK's deterministic APIs, which `make lint` checks with
// workflowcheck.
package workflows

import (
	"time"

	"scorekeeper"
)

// Workflow and schedule ids are business keys, so starting the same thing
// twice finds the one already running instead of duplicating it.
const (
	// ScheduleID is the Temporal Schedule that starts SyncWorkflow every
	// SYNC_INTERVAL; scheduled runs get ids "transactions-sync-<time>".
	ScheduleID = "transactions-sync"
	// ManualSyncWorkflowID is the id of syncs started by POST /api/sync. One
	// manual sync runs at a time; a second request joins the running one.
	ManualSyncWorkflowID = "transactions-sync-manual"
	// PayoutRecoveryScheduleID is the Temporal Schedule that starts
	// PayoutRecoveryWorkflow, off the sync's path.
	PayoutRecoveryScheduleID = "payouts-recovery"
)

// SyncSignal asks a running SyncWorkflow for data through an instant (now,
// when the request names none). Sent by POST /api/sync (signal-with-start
// of the manual sync), by syncs that join the fetcher, and by developers:
//
//	temporal workflow signal-with-start --workflow-id transactions-sync-manual \
//	  --type SyncWorkflow --task-queue scorekeeper --input '{}' --signal-name sync
const SyncSignal = "sync"

// SyncRequest is SyncSignal's payload.
type SyncRequest struct {
	// Through is the instant data is wanted through; zero means now.
	Through time.Time `json:"through,omitzero"`
}

// SyncInput starts or continues a SyncWorkflow.
type SyncInput struct {
	// MaxPagesPerRun bounds the pages one execution fetches before it
	// continues as new, which keeps event history small during a long
	// run. Zero means DefaultMaxPagesPerRun.
	MaxPagesPerRun int `json:"maxPagesPerRun,omitempty"`
	// MaxHistoryEvents bounds the run's event history, whatever fills it
	// (pages, signals at any rate, waits): past it, or when the server
	// suggests it, the run continues as new. Zero means
	// DefaultMaxHistoryEvents.
	MaxHistoryEvents int `json:"maxHistoryEvents,omitempty"`
	// Interval is the schedule interval; a scheduled run follows the feed
	// for ten of them. Zero means a minute.
	Interval time.Duration `json:"interval,omitempty"`
	// Follow keeps the run fetching as data accrues until FollowUntil.
	// Scheduled runs follow; manual runs end once caught up with Want.
	Follow bool `json:"follow,omitempty"`
	// FollowUntil bounds following (set by the first execution to ten
	// intervals after its start), so pausing the schedule takes effect
	// within that time.
	FollowUntil time.Time `json:"followUntil,omitzero"`
	// Want is the instant through which a manual sync wants data; zero
	// means the moment the run started. Scheduled runs want nothing in
	// particular: they follow the feed.
	Want time.Time `json:"want,omitzero"`
	// Carry is the running total of earlier executions of this sync (set
	// when the workflow continued as new).
	Carry *scorekeeper.SyncStats `json:"carry,omitempty"`
}

// DefaultMaxPagesPerRun is SyncInput.MaxPagesPerRun's default.
const DefaultMaxPagesPerRun = 40

// DefaultMaxHistoryEvents is SyncInput.MaxHistoryEvents's default, well
// under Temporal's own limits (a warning at 10 Ki events).
const DefaultMaxHistoryEvents = 4000
