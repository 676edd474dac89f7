#!/usr/bin/env bash
# Records real workflow histories for the replay test (workflows/replay_test.go).
#
# Starts a throwaway Temporal dev server and `scorekeeper dev` (API, worker
# and the mock upstream/payout provider) on a fresh SQLite file, lets the
# scheduled SyncWorkflow run, runs a manual sync while it does (so the
# manual one joins the scheduled fetcher), waits until a PayoutWorkflow has
# paid something and gone idle, and a PayoutRecoveryWorkflow and a
# ReconcileWorkflow have run, then exports completed histories into
# workflows/testdata/histories:
#
#   SyncWorkflow-<n>.json            a scheduled sync that fetched pages, and
#                                    the manual sync (joiner or fetcher)
#   PayoutWorkflow-<n>.json          a user's payouts, paid, then idle
#   PayoutRecoveryWorkflow-<n>.json  one recovery scan
#   ReconcileWorkflow-<n>.json       one report-only reconciliation
#
# Files are added with the next free <n>: histories of earlier releases stay,
# so the replay test keeps proving that today's code still replays them
# (see docs/versioning.md). Delete one only when no execution that old can
# still be running.
#
# Takes about two and a half minutes, most of it waiting for the payout
# workflows' idle timeout (workflows.DefaultPayoutIdleTimeout, 2m) so their
# histories are complete.
# Everything it starts is stopped, and its temporary files removed, on exit.
#
# Usage: scripts/record-histories.sh [output-dir]
# (SCOREKEEPER_BIN=path uses a prebuilt binary instead of building one.)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TEMPORAL="${TEMPORAL_CLI:-$ROOT/.tools/bin/temporal}"
OUT="${1:-$ROOT/workflows/testdata/histories}"
TIMEOUT="${RECORD_TIMEOUT:-600}" # seconds, for the whole wait
MAX_BYTES=400000                 # the largest history file accepted (a scheduled sync: ~300KB)

for tool in "$TEMPORAL" go jq curl; do
	command -v "$tool" >/dev/null || { echo "record-histories: $tool not found (make temporal installs the CLI)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/record-histories.XXXXXX")
temporal_pid=""
sk_pid=""
cleanup() {
	local rc=$?
	for pid in $sk_pid $temporal_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ $rc -ne 0 ]]; then
		echo "record-histories: failed; last lines of the logs:" >&2
		tail -n 20 "$work/scorekeeper.log" "$work/temporal.log" >&2 2>/dev/null || true
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "record-histories: $(date -u +%H:%M:%S) $*" >&2; }

# free_port prints a TCP port nothing listens on (nothing reserves it; the
# window until the server binds it is short).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

started=$SECONDS
deadline=$((SECONDS + TIMEOUT))
# wait_for runs "$@" every second until it succeeds or the deadline passes.
wait_for() {
	local what=$1
	shift
	log "waiting for $what"
	until "$@"; do
		if ((SECONDS > deadline)); then
			echo "record-histories: timed out waiting for $what" >&2
			return 1
		fi
		sleep 1
	done
}

sk="${SCOREKEEPER_BIN:-}" # a prebuilt binary, or build one
if [[ -z $sk ]]; then
	log "building scorekeeper"
	sk=$work/scorekeeper
	go build -o "$sk" ./cmd/scorekeeper
fi

temporal_port=$(free_port)
TADDR=127.0.0.1:$temporal_port
tctl() { "$TEMPORAL" "$@" --address "$TADDR" --namespace default; }
temporal_up() { tctl operator cluster health >/dev/null 2>&1; }
api_up() { curl -fsS -o /dev/null "$API/readyz" 2>/dev/null; }

log "starting the Temporal dev server on $TADDR"
"$TEMPORAL" server start-dev --headless \
	--ip 127.0.0.1 --port "$temporal_port" \
	--search-attribute UserId=Keyword \
	--dynamic-config-value matching.numTaskqueueReadPartitions=1 \
	--dynamic-config-value matching.numTaskqueueWritePartitions=1 \
	--log-level warn >"$work/temporal.log" 2>&1 &
temporal_pid=$!
wait_for "the Temporal dev server" temporal_up

# A small, calm world: half an hour of history (60 transactions, about ten
# of them payouts) over five users, pages of 20 so a sync fetches several,
# a budget generous enough not to wait long.
# SYNC_INTERVAL=2s makes a scheduled run follow the feed for 20s (ten
# intervals, a history of about 600 events and 300 KB whatever the
# interval) and the whole recording quick.
now=$(date -u +%s)
mock_start=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
sync_start=$(date -u -d "@$((now - 31 * 60))" +%Y-%m-%dT%H:%M:%SZ)
http_port=$(free_port)
mock_port=$(free_port)
API=http://127.0.0.1:$http_port

log "starting scorekeeper dev (API $API)"
env -i PATH="$PATH" HOME="$HOME" \
	DATABASE_URL="file:$work/scorekeeper.db" \
	TEMPORAL_ADDRESS="$TADDR" \
	HTTP_ADDR="127.0.0.1:$http_port" \
	MOCKAPI_ADDR="127.0.0.1:$mock_port" \
	SYNC_INTERVAL=2s \
	SYNC_OVERLAP=1m \
	SYNC_START="$sync_start" \
	UPSTREAM_RATE=10/1s \
	UPSTREAM_PAGE_SIZE=20 \
	MOCK_RATE=10/1s \
	MOCK_START="$mock_start" \
	MOCK_SEED=20260101 \
	MOCK_USERS=5 \
	MOCK_TRANSACTIONS=60 \
	MOCK_HISTORY=30m \
	MOCK_LIVE_RATE=0 \
	LOG_LEVEL=warn \
	"$sk" dev >"$work/scorekeeper.log" 2>&1 &
sk_pid=$!
wait_for "the API" api_up

# executions TYPE STATUS prints "workflowId runId" of each execution.
executions() {
	tctl workflow list --limit 1000 -o json \
		--query "WorkflowType='$1' AND ExecutionStatus='$2'" |
		jq -r 'if type == "array" then .[] else . end | "\(.execution.workflowId) \(.execution.runId)"'
}

# history ID RUN prints the history of one run as the CLI exports it, on
# one line: a scheduled sync's history is a few hundred events, a third
# smaller without the indentation.
history() { tctl workflow show --workflow-id "$1" --run-id "$2" -o json | jq -c .; }

scheduled_sync_running() { executions SyncWorkflow Running | awk '/^transactions-sync-[^m]/ { found = 1 } END { exit !found }'; }
wait_for "a scheduled SyncWorkflow" scheduled_sync_running

log "running a manual sync (POST /api/sync?wait=true)"
curl -fsS -X POST "$API/api/sync?wait=true" >"$work/manual-sync.json"
log "manual sync: $(cat "$work/manual-sync.json")"

# pick TYPE STATUS MIN_SCORE SCORE_FILTER [ID_REGEX] saves as $work/TYPE.json
# the history of that type and status scoring highest under SCORE_FILTER (a
# jq expression over the history) and at least MIN_SCORE, among those small
# enough; fails if there is none yet.
pick() {
	local type=$1 status=$2 min=$3 filter=$4 re=${5:-.} best=-1 id run score size
	while read -r id run; do
		[[ -n $id && $id =~ $re ]] || continue
		! grep -qxF "$run" "$work/too-large" 2>/dev/null || continue
		history "$id" "$run" >"$work/candidate.json"
		size=$(wc -c <"$work/candidate.json")
		if ((size > MAX_BYTES)); then
			echo "$run" >>"$work/too-large"
			log "skipping $id: its history has $size bytes, more than $MAX_BYTES"
			continue
		fi
		score=$(jq "$filter" "$work/candidate.json")
		if ((score >= min && score > best)); then
			best=$score
			mv "$work/candidate.json" "$work/$type.json"
			echo "$id $run" >"$work/$type.id"
		fi
	done < <(executions "$type" "$status")
	((best >= 0))
}

signals='[.events[] | select(.eventType == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED")] | length'
applies='[.events[] | select(.activityTaskScheduledEventAttributes.activityType.name == "ApplyPage")] | length'
asks='[.events[] | select(.eventType == "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED")] | length'
records='[.events[] | select(.activityTaskScheduledEventAttributes.activityType.name == "RecordPayoutResult")] | length'
recovers='[.events[] | select(.activityTaskScheduledEventAttributes.activityType.name == "RecoverPayouts")] | length'
reconciles='[.events[] | select(.activityTaskScheduledEventAttributes.activityType.name == "ReconcilePage")] | length'

# A scheduled run that fetched pages; one that was also asked by signal
# (the manual sync) wins.
wait_for "a completed scheduled sync that fetched pages" \
	pick SyncWorkflow Completed 1 "($applies > 0 | if . then 1 else 0 end) + ($signals > 0 | if . then 1 else 0 end)" '^transactions-sync-[^m]'
mv "$work/SyncWorkflow.json" "$work/SyncWorkflow-scheduled.json"
mv "$work/SyncWorkflow.id" "$work/SyncWorkflow-scheduled.id"
# The manual sync: a joiner (it asked the fetcher by signal) if it could.
wait_for "the completed manual sync" pick SyncWorkflow Completed 0 "$asks" '^transactions-sync-manual$'
mv "$work/SyncWorkflow.json" "$work/SyncWorkflow-manual.json"
mv "$work/SyncWorkflow.id" "$work/SyncWorkflow-manual.id"
# Once every payout workflow went idle, the one that paid the most.
payouts_idle() { [[ -z $(executions PayoutWorkflow Running) ]] && pick PayoutWorkflow Completed 1 "$records"; }
wait_for "every PayoutWorkflow to pay and go idle (about two minutes)" payouts_idle
tctl schedule trigger --schedule-id payouts-recovery >/dev/null
wait_for "a completed PayoutRecoveryWorkflow" pick PayoutRecoveryWorkflow Completed 1 "$recovers"
tctl schedule trigger --schedule-id reconcile-daily >/dev/null
wait_for "a completed ReconcileWorkflow" pick ReconcileWorkflow Completed 1 "$reconciles"

# next_file TYPE prints the first unused OUT/TYPE-<n>.json.
next_file() {
	local n=1
	while [[ -e "$OUT/$1-$n.json" ]]; do n=$((n + 1)); done
	echo "$OUT/$1-$n.json"
}

mkdir -p "$OUT"
for f in SyncWorkflow-scheduled SyncWorkflow-manual PayoutWorkflow PayoutRecoveryWorkflow ReconcileWorkflow; do
	dest=$(next_file "${f%%-*}")
	cp "$work/$f.json" "$dest"
	log "$(cut -d' ' -f1 "$work/$f.id") -> ${dest#"$ROOT"/} ($(wc -c <"$dest") bytes, $(jq '.events | length' "$dest") events)"
done
if [[ $(jq "$asks" "$work/SyncWorkflow-manual.json") -eq 0 ]]; then
	log "note: the manual sync fetched itself instead of joining the scheduled run"
fi
log "done in $((SECONDS - started))s"
