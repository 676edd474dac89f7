package workflows_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/workflows"
)

// Replay checks only the paths some recorded history went through: a
// change on a path no history contains (a timer added where a payout
// pauses for an operator, before a continue-as-new, …) replays every
// history and breaks the executions a deploy finds on that path. These
// tests keep the recorded histories covering every path a running
// workflow can be in, and recorded at today's workflow code.

// path is one place a running workflow can be in, as its history shows it.
type path struct {
	name  string
	shows func(h *historypb.History) bool
}

// paths are, per workflow type, the paths its recorded histories must
// show between them. scripts/record-histories.sh drives each of them and
// checks the same (its jq definitions follow these).
var paths = map[string][]path{
	"SyncWorkflow": {
		{"continued as new", continuedAsNew},
		{"started from continue-as-new, its carried totals decoded", startedFromContinueAsNew(func(in workflows.SyncInput) bool { return in.Carry != nil })},
		{"fetched and applied a page", func(h *historypb.History) bool { return len(activityResults(h, "ApplyPage")) > 0 }},
		{"completed, giving the fetcher lease up", func(h *historypb.History) bool {
			return completed(h) && slices.Contains(slices.Collect(maps.Values(scheduledActivities(h))), "ReleaseFetcher")
		}},
		{"a signal while a page is fetched", signaledDuring(activityOf("FetchPage"))},
		{"a signal while sleeping between pages", signaledDuring(anyTimer)},
		{"joined the fetcher: asked it by signal and waited", joinedFetcher},
		{"a signal while joined (asked the fetcher again)", signaledDuring(activityOf("AwaitSync"))},
		{"lost the fetcher lease while fetching", lostLease},
	},
	"PayoutWorkflow": {
		{"continued as new", continuedAsNew},
		{"started from continue-as-new, its recent payouts decoded", startedFromContinueAsNew(func(in workflows.PayoutInput) bool {
			return in.UserID != "" && len(in.Recent) > 0 && in.Paid+in.Failed > 0
		})},
		{"completed (went idle)", completed},
		{"a payout paid", sendPayoutResult(scorekeeper.PayoutPaid)},
		{"a payout rejected (422, recorded as failed)", sendPayoutResult(scorekeeper.PayoutFailed)},
		{"paused for an operator (provider 409/400), and went on after the pause", operatorPause},
		{"a signal during the operator pause", signaledDuring(func(e *historypb.HistoryEvent) (string, bool) {
			a := e.GetTimerStartedEventAttributes()
			return a.GetTimerId(), a != nil && a.GetStartToFireTimeout().AsDuration() == workflows.BlockedPayoutRetryInterval
		})},
		{"an operator hold (Update)", updated(workflows.PayoutHoldUpdate)},
		{"an operator release (Update)", updated(workflows.PayoutReleaseUpdate)},
		{"an operator cancel (Update)", updated(workflows.PayoutCancelUpdate)},
		{"an operator retry (Update)", updated(workflows.PayoutRetryUpdate)},
	},
	"PayoutRecoveryWorkflow": {
		{"woke a payout workflow", func(h *historypb.History) bool {
			for _, p := range activityResults(h, "RecoverPayouts") {
				var res activities.RecoverPayoutsResult
				if decode(p, &res) == nil && res.Notified > 0 {
					return true
				}
			}
			return false
		}},
	},
	"ReconcileWorkflow": {
		{"continued as new", continuedAsNew},
		{"started from continue-as-new, its cursor and totals decoded", startedFromContinueAsNew(func(in workflows.ReconcileInput) bool {
			return in.After != "" && in.Carry != nil && in.Carry.UsersChecked > 0
		})},
		{"reconciled a page", func(h *historypb.History) bool { return len(activityResults(h, "ReconcilePage")) > 0 }},
		{"completed", completed},
	},
}

// Ensure the recorded histories show, per workflow type, every path a
// running workflow can be in, so that TestReplay_RecordedHistories checks
// a change on any of them.
func TestReplay_HistoriesCoverEveryPath(t *testing.T) {
	hs := loadHistories(t)
	require.ElementsMatch(t, keys(currentWorkflows), keys(paths), "every registered workflow needs its paths listed here")
	for _, typ := range keys(paths) {
		t.Run(typ, func(t *testing.T) {
			var missing []string
			for _, p := range paths[typ] {
				if !slices.ContainsFunc(hs, func(h recordedHistory) bool { return h.workflowType == typ && p.shows(h.history) }) {
					missing = append(missing, p.name)
				}
			}
			if len(missing) > 0 {
				t.Fatalf("no recorded %s history in %s shows: %s.\nReplay cannot check a path no history went through: record the histories again with scripts/record-histories.sh, which drives every path (docs/versioning.md); a new path needs a way there in the script too.",
					typ, historiesDir, strings.Join(missing, "; "))
			}
		})
	}
}

// sourcesFile holds the SHA-256 of each workflow source file
// (`sha256sum` lines, sorted by name) the recorded histories were
// recorded at. Only scripts/record-histories.sh writes it.
const sourcesFile = historiesDir + "/SOURCES.sha256"

// Ensure the histories were recorded at today's workflow code: a change to
// a non-test file of workflows/ since the recording fails here until the
// histories are recorded again (or the change is shown to replay them).
func TestReplay_HistoriesMatchSources(t *testing.T) {
	recorded := readSourceSums(t)
	current := map[string]string{}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		current["workflows/"+f] = hex.EncodeToString(sum[:])
	}
	var changed []string
	for _, f := range keys(current) {
		switch sum, ok := recorded[f]; {
		case !ok:
			changed = append(changed, f+" (new)")
		case sum != current[f]:
			changed = append(changed, f)
		}
	}
	for _, f := range keys(recorded) {
		if _, ok := current[f]; !ok {
			changed = append(changed, f+" (removed)")
		}
	}
	if len(changed) > 0 {
		t.Fatalf(`workflow code changed since the histories in workflows/%s were recorded: %s.
Histories recorded before the change do not show what it does, so replay cannot tell whether the executions it will leave behind stay replayable (docs/versioning.md):
  - record them again: scripts/record-histories.sh (about 10 minutes; it also rewrites workflows/%s);
  - or, if the change issues the same commands on every path and replays every recorded history (a comment, a log line, a query handler, a change guarded by workflow.GetVersion):
    scripts/record-histories.sh --update-checksum   (runs the replay tests, then rewrites workflows/%s only).`,
			historiesDir, strings.Join(changed, ", "), sourcesFile, sourcesFile)
	}
}

// readSourceSums reads sourcesFile: path → hex SHA-256.
func readSourceSums(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(sourcesFile)
	require.NoError(t, err, "no %s: record the histories with scripts/record-histories.sh, which writes it", sourcesFile)
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		require.Len(t, fields, 2, "%s: %q is not a sha256sum line", sourcesFile, sc.Text())
		sums[strings.TrimPrefix(fields[1], "*")] = fields[0]
	}
	require.NoError(t, sc.Err())
	return sums
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// What a history shows.

func continuedAsNew(h *historypb.History) bool {
	return slices.ContainsFunc(h.GetEvents(), func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
	})
}

func completed(h *historypb.History) bool {
	return slices.ContainsFunc(h.GetEvents(), func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
	})
}

// startedFromContinueAsNew reports whether a run was started by another
// run's continue-as-new with an input that today's input type decodes
// and that carries what carried shows.
func startedFromContinueAsNew[In any](carried func(In) bool) func(*historypb.History) bool {
	return func(h *historypb.History) bool {
		start := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
		if start.GetContinuedExecutionRunId() == "" {
			return false
		}
		var in In
		return decode(start.GetInput(), &in) == nil && carried(in)
	}
}

// activityResults returns the results of the completed activities of one
// type.
func activityResults(h *historypb.History, activityType string) []*commonpb.Payloads {
	types := scheduledActivities(h)
	var out []*commonpb.Payloads
	for _, e := range h.GetEvents() {
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && types[a.GetScheduledEventId()] == activityType {
			out = append(out, a.GetResult())
		}
	}
	return out
}

// scheduledActivities maps each ActivityTaskScheduled event id to its
// activity type.
func scheduledActivities(h *historypb.History) map[int64]string {
	types := map[int64]string{}
	for _, e := range h.GetEvents() {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			types[e.GetEventId()] = a.GetActivityType().GetName()
		}
	}
	return types
}

func decode(p *commonpb.Payloads, into any) error {
	return converter.GetDefaultDataConverter().FromPayloads(p, into)
}

// opener says whether an event opens something a signal can come during,
// and names it; closing events name it the same way.
type opener func(e *historypb.HistoryEvent) (key string, opens bool)

// activityOf opens at the scheduling of an activity of the type.
func activityOf(activityType string) opener {
	return func(e *historypb.HistoryEvent) (string, bool) {
		a := e.GetActivityTaskScheduledEventAttributes()
		return fmt.Sprint(e.GetEventId()), a != nil && a.GetActivityType().GetName() == activityType
	}
}

// anyTimer opens at the start of any timer.
func anyTimer(e *historypb.HistoryEvent) (string, bool) {
	a := e.GetTimerStartedEventAttributes()
	return a.GetTimerId(), a != nil
}

// closes names what an event ends, an activity (by its scheduled event id)
// or a timer, if any.
func closes(e *historypb.HistoryEvent) (string, bool) {
	switch {
	case e.GetActivityTaskCompletedEventAttributes() != nil:
		return fmt.Sprint(e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()), true
	case e.GetActivityTaskFailedEventAttributes() != nil:
		return fmt.Sprint(e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()), true
	case e.GetActivityTaskTimedOutEventAttributes() != nil:
		return fmt.Sprint(e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()), true
	case e.GetActivityTaskCanceledEventAttributes() != nil:
		return fmt.Sprint(e.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()), true
	case e.GetTimerFiredEventAttributes() != nil:
		return e.GetTimerFiredEventAttributes().GetTimerId(), true
	case e.GetTimerCanceledEventAttributes() != nil:
		return e.GetTimerCanceledEventAttributes().GetTimerId(), true
	}
	return "", false
}

// signaledDuring reports whether a signal came while something opens
// opened was still open.
func signaledDuring(opens opener) func(*historypb.History) bool {
	return func(h *historypb.History) bool {
		open := map[string]bool{}
		for _, e := range h.GetEvents() {
			if k, ok := opens(e); ok {
				open[k] = true
			} else if k, ok := closes(e); ok {
				delete(open, k)
			} else if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED && len(open) > 0 {
				return true
			}
		}
		return false
	}
}

// joinedFetcher: the run asked the fetcher for data by signal and waited
// for it (AwaitSync).
func joinedFetcher(h *historypb.History) bool {
	asked := slices.ContainsFunc(h.GetEvents(), func(e *historypb.HistoryEvent) bool {
		return e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName() == workflows.SyncSignal
	})
	return asked && slices.Contains(slices.Collect(maps.Values(scheduledActivities(h))), "AwaitSync")
}

// lostLease: planning or fetching found another sync holding the lease.
func lostLease(h *historypb.History) bool {
	for _, p := range activityResults(h, "PlanPage") {
		var res activities.PlanResult
		if decode(p, &res) == nil && res.LeaseLost {
			return true
		}
	}
	for _, p := range activityResults(h, "FetchPage") {
		var res activities.FetchPageResult
		if decode(p, &res) == nil && res.LeaseLost {
			return true
		}
	}
	return false
}

// sendPayoutResult: the provider answered a payout with status.
// updated reports whether a run accepted an Update of the given name.
func updated(name string) func(*historypb.History) bool {
	return func(h *historypb.History) bool {
		return slices.ContainsFunc(h.GetEvents(), func(e *historypb.HistoryEvent) bool {
			return e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName() == name
		})
	}
}

func sendPayoutResult(status scorekeeper.PayoutStatus) func(*historypb.History) bool {
	return func(h *historypb.History) bool {
		for _, p := range activityResults(h, "SendPayout") {
			var res activities.SendPayoutResult
			if decode(p, &res) == nil && res.Status == status {
				return true
			}
		}
		return false
	}
}

// commandsAfterPause are the events of the commands PayoutWorkflow can
// issue after a pause: list again, wait for work, continue as new, end.
var commandsAfterPause = []enumspb.EventType{
	enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
	enumspb.EVENT_TYPE_TIMER_STARTED,
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
}

// operatorPause: a timer of BlockedPayoutRetryInterval (pauseForOperator's)
// fired and the workflow issued a command after it, so a change at the
// pause meets recorded events on either side.
func operatorPause(h *historypb.History) bool {
	pause, fired := "", false
	for _, e := range h.GetEvents() {
		switch {
		case e.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration() == workflows.BlockedPayoutRetryInterval:
			pause = e.GetTimerStartedEventAttributes().GetTimerId()
		case pause != "" && e.GetTimerFiredEventAttributes().GetTimerId() == pause:
			fired = true
		case fired && slices.Contains(commandsAfterPause, e.GetEventType()):
			return true
		}
	}
	return false
}
