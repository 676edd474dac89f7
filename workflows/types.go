// Package workflows holds the Temporal workflows: orchestration only. Every
// decision that needs I/O or the clock happens in an activity; workflow code
// uses only the SDK's deterministic APIs, which `make lint` checks with
// workflowcheck.
package workflows

import (
	"time"
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
)

// SyncInput starts or continues a SyncWorkflow.
type SyncInput struct {
	// MaxPagesPerRun bounds the pages one execution fetches before it
	// continues as new, which keeps event history small during a backfill.
	// Zero means DefaultMaxPagesPerRun.
	MaxPagesPerRun int `json:"maxPagesPerRun,omitempty"`
	// Interval is the schedule interval: after its first page, a run opens
	// another fresh window only once this much new time has accrued.
	// Zero means a minute.
	Interval time.Duration `json:"interval,omitempty"`
	// Follow keeps the run going while upstream volume is high: when a page
	// of new data is expected sooner than the next scheduled run, it waits
	// for it instead of ending, so back-to-back windows keep data fresh.
	// Scheduled runs follow; manual runs end once caught up.
	Follow bool `json:"follow,omitempty"`
	// FollowUntil bounds following (set by the first execution to ten
	// intervals after its start), so pausing the schedule takes effect
	// within that time.
	FollowUntil time.Time `json:"followUntil,omitzero"`
	// Carry is the running total of earlier executions of this sync (set
	// when the workflow continued as new).
	Carry *SyncResult `json:"carry,omitempty"`
}

// DefaultMaxPagesPerRun is SyncInput.MaxPagesPerRun's default.
const DefaultMaxPagesPerRun = 40

// SyncResult is what one sync did: exactly what POST /api/sync?wait=true
// returns beside the workflow and run ids.
type SyncResult struct {
	// Fetched counts valid items received from upstream (duplicates included).
	Fetched int `json:"fetched"`
	// Inserted counts transactions stored for the first time.
	Inserted int `json:"inserted"`
	// Duplicates counts items already stored (or repeated on a page).
	Duplicates int `json:"duplicates"`
	// Quarantined counts malformed items seen for the first time.
	Quarantined int `json:"quarantined"`
	// Pages counts upstream pages fetched.
	Pages int `json:"pages"`
	// SyncedThrough is the instant through which upstream data is stored.
	SyncedThrough time.Time `json:"syncedThrough"`
}
