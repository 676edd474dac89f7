#!/usr/bin/env bash
# Records real workflow histories for the replay tests
# (workflows/replay_test.go, workflows/replay_coverage_test.go).
#
# Starts a throwaway Temporal dev server, the mock upstream/payout provider
# (`scorekeeper mockapi`) and `scorekeeper dev` (API and worker) on a fresh
# SQLite file, and drives them through every path a running workflow can be
# in when a deploy finds it:
#
#   SyncWorkflow     a scheduled fetcher that a manual sync joins (asked by
#                    signal while a page is being fetched, and again while
#                    it waits), whose lease is lost to that manual sync,
#                    signals during the fetcher's sleeps, runs that
#                    continue as new and runs started from continue-as-new
#                    (their carried totals decoded from the old payload)
#   PayoutWorkflow   payouts paid and rejected (422), a payout the provider
#                    refused (409) paused for an operator for
#                    BlockedPayoutRetryInterval, woken by the recovery scan
#                    meanwhile, continue-as-new both ways
#   PayoutRecoveryWorkflow  a recovery scan that woke a payout workflow
#   ReconcileWorkflow       a report-only reconciliation, and one of a page
#                    per user that continues as new after 200 pages
#
# How each path is reached, without product configuration the service
# does not have:
#   - continue-as-new: the dev server suggests it early
#     (limit.historyCount.suggestContinueAsNew=RECORD_CAN_EVENTS), which
#     SyncWorkflow and PayoutWorkflow obey like their own limits;
#     ReconcileWorkflow continues after a fixed 200 pages, so one is
#     started with pageSize 1 over more than 200 users;
#   - the 409 and the delayed fetch are faults injected into the mock
#     (POST /_mock/faults), the 422s its MOCK_PAYOUT_REJECT_RATE;
#   - the lost lease: a fetcher whose lease expires (in production, a
#     fetcher stalled past the lease TTL, two minutes or more) while a
#     manual sync waits; the script expires it by deleting the lease row
#     while the fetcher waits for a slow page, rather than waiting minutes;
#   - the pause is workflows.BlockedPayoutRetryInterval (10m, a constant):
#     most of the recording is waiting for it to end.
#
# Each path is checked in the exported histories (the same definitions as
# workflows/replay_coverage_test.go); a path missing from every candidate
# fails the recording, which then writes nothing (run it again). The
# fewest, smallest histories that cover every path are added as
# <Type>-<n>.json with the next free <n>, and a line each to README.md
# there: histories of earlier releases stay, so the replay test keeps
# proving today's code replays them (docs/versioning.md). Last it writes
# SOURCES.sha256, the SHA-256 of each non-test workflows/*.go file it
# recorded, which TestReplay_HistoriesMatchSources compares with today's.
#
# Takes about 10 minutes, most of it the operator pause. Everything it
# starts is stopped, and its temporary files removed, on exit.
#
# Usage:
#   scripts/record-histories.sh [output-dir]
#       record (SCOREKEEPER_BIN=path uses a prebuilt binary instead of
#       building one from the working tree: the checksum then assumes it
#       was built from it; RECORD_TIMEOUT=seconds bounds the whole wait,
#       default 1200; RECORD_CAN_EVENTS=n, default 20; RECORD_KEEP=1
#       keeps the temporary directory, logs and Temporal's database, to
#       look into a failed recording)
#   scripts/record-histories.sh --update-checksum [output-dir]
#       records nothing: after a change to workflows/ that replays every
#       recorded history (a GetVersion-guarded change, a comment), runs the
#       replay test and, if it passes, writes SOURCES.sha256 for today's
#       sources.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

update_checksum=false
if [[ ${1:-} == --update-checksum ]]; then
	update_checksum=true
	shift
fi
TEMPORAL="${TEMPORAL_CLI:-$ROOT/.tools/bin/temporal}"
OUT="${1:-$ROOT/workflows/testdata/histories}"
TIMEOUT="${RECORD_TIMEOUT:-1200}"     # seconds, for the whole recording
CAN_EVENTS="${RECORD_CAN_EVENTS:-20}" # history length at which the server suggests continue-as-new
MAX_BYTES=800000                      # the largest history accepted (the 200-page reconciliation: ~500KB)

# sources prints `sha256sum` lines of the workflow code the histories are
# recorded with: every non-test .go file of workflows/, sorted by name, as
# TestReplay_HistoriesMatchSources computes them (`sha256sum -c` checks
# the file from the repository root).
sources() {
	local f
	for f in workflows/*.go; do
		[[ $f == *_test.go ]] || printf '%s\n' "$f"
	done | LC_ALL=C sort | while read -r f; do sha256sum "$f"; done
}

if $update_checksum; then
	command -v go >/dev/null || { echo "record-histories: go not found" >&2; exit 1; }
	echo "record-histories: replaying every recorded history on today's code" >&2
	go test -count=1 -run '^TestReplay_(RecordedHistories|DetectsNonDeterminism)$' ./workflows/
	sources >"$OUT/SOURCES.sha256"
	echo "record-histories: wrote ${OUT#"$ROOT"/}/SOURCES.sha256; record new histories at the next release all the same" >&2
	exit 0
fi

for tool in "$TEMPORAL" go jq curl sqlite3 sha256sum awk; do
	command -v "$tool" >/dev/null || { echo "record-histories: $tool not found (make temporal installs the CLI)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/record-histories.XXXXXX")
pids=()
cleanup() {
	local rc=$? pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ $rc -ne 0 ]]; then
		echo "record-histories: failed; last lines of the logs:" >&2
		tail -n 20 "$work/scorekeeper.log" "$work/mockapi.log" "$work/temporal.log" >&2 2>/dev/null || true
	fi
	if [[ -n ${RECORD_KEEP:-} ]]; then
		echo "record-histories: kept $work (temporal.db: start-dev --db-filename it to look)" >&2
	else
		rm -rf "$work"
	fi
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
# wait_for [-n SECONDS] WHAT CMD… runs CMD every second (every 0.2s with
# -n) until it succeeds, the deadline passes, or SECONDS have passed.
wait_for() {
	local until=$deadline pause=1
	if [[ $1 == -n ]]; then
		until=$((SECONDS + $2)) pause=0.2
		((until < deadline)) || until=$deadline
		shift 2
	fi
	local what=$1
	shift
	log "waiting for $what"
	until "$@"; do
		if ((SECONDS > until)); then
			echo "record-histories: timed out waiting for $what" >&2
			return 1
		fi
		sleep "$pause"
	done
}

sources >"$work/SOURCES.sha256"
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

log "starting the Temporal dev server on $TADDR"
"$TEMPORAL" server start-dev --headless \
	--ip 127.0.0.1 --port "$temporal_port" \
	--db-filename "$work/temporal.db" \
	--search-attribute UserId=Keyword \
	--dynamic-config-value matching.numTaskqueueReadPartitions=1 \
	--dynamic-config-value matching.numTaskqueueWritePartitions=1 \
	--dynamic-config-value "limit.historyCount.suggestContinueAsNew=$CAN_EVENTS" \
	--log-level warn >"$work/temporal.log" 2>&1 &
pids+=($!)
wait_for "the Temporal dev server" temporal_up

# The world: half an hour of history, 800 transactions over 250 users (so
# more than 200 of them have a summary to reconcile), one in twenty a
# payout, one user in ten whose payouts the provider rejects (422). Pages
# of 20, so the first sync has some 40 to fetch, within a budget generous
# enough not to wait long. With SYNC_INTERVAL=10s a fetcher that caught up
# sleeps seconds between pages (a scheduled run follows the feed for
# 100s).
now=$(date -u +%s)
mock_start=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
sync_start=$(date -u -d "@$((now - 31 * 60))" +%Y-%m-%dT%H:%M:%SZ)
http_port=$(free_port)
mock_port=$(free_port)
API=http://127.0.0.1:$http_port
MOCK=http://127.0.0.1:$mock_port
DB=$work/scorekeeper.db

log "starting the mock upstream and payout provider ($MOCK)"
env -i PATH="$PATH" HOME="$HOME" \
	MOCKAPI_ADDR="127.0.0.1:$mock_port" \
	MOCK_RATE=10/1s \
	MOCK_START="$mock_start" \
	MOCK_SEED=20260101 \
	MOCK_USERS=250 \
	MOCK_TRANSACTIONS=800 \
	MOCK_HISTORY=30m \
	MOCK_LIVE_RATE=0 \
	MOCK_PAYOUT_SHARE=0.05 \
	MOCK_PAYOUT_REJECT_RATE=0.1 \
	LOG_LEVEL=warn \
	"$sk" mockapi >"$work/mockapi.log" 2>&1 &
pids+=($!)
mock_up() { curl -fsS -o /dev/null "$MOCK/healthz" 2>/dev/null; }
wait_for "the mock" mock_up
# fault JSON queues an injected fault; faults_pending succeeds while one is.
fault() { curl -fsS -o /dev/null -X POST "$MOCK/_mock/faults" -H 'Content-Type: application/json' -d "$1"; }
faults_pending() { [[ $(curl -fsS "$MOCK/_mock/faults" | jq 'length') -gt 0 ]]; }
# The first payout sent is refused with a 409: its workflow pauses for an
# operator, and sends it again (then paid) after the pause.
fault '{"target":"payouts","status":409}'

log "starting scorekeeper dev (API $API)"
env -i PATH="$PATH" HOME="$HOME" \
	DATABASE_URL="file:$DB" \
	TEMPORAL_ADDRESS="$TADDR" \
	HTTP_ADDR="127.0.0.1:$http_port" \
	METRICS_ADDR="127.0.0.1:$(free_port)" \
	UPSTREAM_URL="$MOCK" \
	PAYOUT_URL="$MOCK" \
	SYNC_INTERVAL=10s \
	SYNC_OVERLAP=1m \
	SYNC_START="$sync_start" \
	UPSTREAM_RATE=10/1s \
	UPSTREAM_PAGE_SIZE=20 \
	LOG_LEVEL=warn \
	"$sk" dev >"$work/scorekeeper.log" 2>&1 &
pids+=($!)
api_up() { curl -fsS -o /dev/null "$API/readyz" 2>/dev/null; }
wait_for "the API" api_up

sql() { sqlite3 -cmd ".timeout 10000" "$DB" "$1"; }
# status is GET /api/sync/status, which allows a client 60 requests a
# minute: poll it once a second at most (the store answers the rest).
status() { curl -fsS "$API/api/sync/status"; }

# executions TYPE STATUS [EXTRA] prints "workflowId runId" of each execution.
executions() {
	tctl workflow list --limit 2000 -o json \
		--query "WorkflowType='$1' AND ExecutionStatus='$2'${3:+ AND $3}" |
		jq -r 'if type == "array" then .[] else . end | "\(.execution.workflowId) \(.execution.runId)"'
}
# pending WORKFLOW_ID prints the activity types the workflow waits for.
pending() { tctl workflow describe --workflow-id "$1" -o json 2>/dev/null | jq -r '.pendingActivities[]?.activityType.name'; }
# history ID RUN prints the history of one run as the CLI exports it, on
# one line (a third smaller than indented).
history() { tctl workflow show --workflow-id "$1" --run-id "$2" -o json | jq -c .; }

# fetcher prints the holder of the fetcher lease.
fetcher() { sql "SELECT holder FROM sync_leases WHERE name = 'transactions-fetcher'"; }

# 1. A manual sync joins the scheduled fetcher while it fetches a slow
# page, asks it again while waiting, and takes the lease when it expires.
scheduled_fetching() { [[ $(fetcher) =~ ^transactions-sync-[^m] ]]; }
wait_for "the scheduled sync to fetch" scheduled_fetching
fetcher_id=$(fetcher)
# The next page answers 503 after 6s; the retry finds the lease lost.
fault '{"status":503,"delay":"6s"}'
fault_taken() { ! faults_pending; }
wait_for -n 30 "the fetcher to ask for the slow page" fault_taken
curl -fsS -X POST "$API/api/sync" >/dev/null
manual_joined() { pending transactions-sync-manual | grep -qx AwaitSync; }
wait_for -n 3 "the manual sync to join $fetcher_id" manual_joined
curl -fsS -X POST "$API/api/sync" >/dev/null # asked again while it waits
sleep 0.5
log "expiring $fetcher_id's fetcher lease (as a stall past its TTL would)"
sql "DELETE FROM sync_leases WHERE name = 'transactions-fetcher' AND holder = '$fetcher_id'"
manual_fetching() { [[ $(fetcher) == transactions-sync-manual ]]; }
wait_for -n 4 "the manual sync to take the lease" manual_fetching

# 2. Once caught up, the fetcher sleeps between pages: manual syncs ask it
# for data while it does.
caught_up() { [[ $(status | jq '.lagSeconds < 30 and .fetcher != null') == true ]]; }
wait_for "the sync to catch up" caught_up
# sleeping succeeds while the fetcher's current run waits on its timer.
sleeping() {
	local id
	id=$(fetcher)
	[[ -n $id ]] && tctl workflow show --workflow-id "$id" -o json 2>/dev/null | jq -e '[.events[] |
		select(.timerStartedEventAttributes or .timerFiredEventAttributes or .timerCanceledEventAttributes)] |
		last | .timerStartedEventAttributes != null' >/dev/null
}
log "asking for data while the fetcher sleeps"
asked=0
for _ in $(seq 1 150); do # two minutes at most
	if sleeping; then
		curl -fsS -X POST "$API/api/sync" >/dev/null
		asked=$((asked + 1))
		((asked < 3)) || break
		sleep 1
	fi
	sleep 0.2
done
log "asked $asked times while the fetcher slept"
# Fewer runs to export: no new scheduled syncs from here on.
tctl schedule toggle --schedule-id transactions-sync --pause --reason "recorded" >/dev/null

# 3. Reconciliations: the daily one (one page), and one of a page per
# user, which continues as new after 200 pages.
users=$(sql "SELECT count(*) FROM user_summaries")
log "$users users to reconcile"
((users > 200)) || { echo "record-histories: only $users users stored; a reconciliation of a page each would not continue as new" >&2; exit 1; }
tctl schedule trigger --schedule-id reconcile-daily >/dev/null
tctl workflow start --type ReconcileWorkflow --task-queue scorekeeper \
	--workflow-id reconcile-recording --input '{"pageSize":1}' >/dev/null

# 4. The paused payout: once it has waited for PayoutRecoveryAge (2m), a
# recovery scan wakes its workflow during the pause; then wait for the
# pause to end (BlockedPayoutRetryInterval after it began).
blocked_user() { sql "SELECT user_id FROM payouts WHERE status = 'requested' ORDER BY created_at LIMIT 1"; }
settled() { [[ $(sql "SELECT count(DISTINCT user_id) FROM payouts WHERE status = 'requested'") == 1 ]]; }
wait_for "every payout but the refused one to settle" settled
blocked=$(blocked_user)
# 5. Operator actions on another user's paid payout: a hold and a release,
# then a cancel and a retry the payout's state refuses (409). The run
# they reach goes idle and completes during the pause below.
acted=$(sql "SELECT user_id FROM payouts WHERE status = 'paid' AND user_id <> '$blocked' ORDER BY created_at LIMIT 1")
acted_payout=$(sql "SELECT transaction_id FROM payouts WHERE status = 'paid' AND user_id = '$acted' ORDER BY created_at LIMIT 1")
action() { curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/api/users/$acted/$1" -H 'Content-Type: application/json' ${2:+-d "$2"}; }
for step in "payouts:hold 200 {\"reason\":\"recorded\"}" "payouts:release 200" "payouts/$acted_payout:cancel 409" "payouts/$acted_payout:retry 409"; do
	read -r route want body <<<"$step"
	got=$(action "$route" "$body")
	[[ $got == "$want" ]] || { echo "record-histories: POST $route answered $got, not $want" >&2; exit 1; }
done
log "user $acted: held, released, a cancel and a retry refused (payout-$acted)"
log "user $blocked's payout waits for an operator (payout-$blocked); a recovery scan in two minutes"
sleep $((2 * 60 + 10)) & # PayoutRecoveryAge; the schedule's own scans run every minute too
wait $!
tctl schedule trigger --schedule-id payouts-recovery >/dev/null
pause_over() {
	[[ $(sql "SELECT count(*) FROM payouts WHERE user_id = '$blocked' AND status = 'requested'") == 0 ]] &&
		{ [[ -n $(executions PayoutWorkflow ContinuedAsNew "WorkflowId='payout-$blocked'") ]] ||
			[[ -z $(executions PayoutWorkflow Running "WorkflowId='payout-$blocked'") ]]; }
}
wait_for "the operator pause to end (ten minutes after it began)" pause_over
reconciled() { [[ -n $(executions ReconcileWorkflow Completed "WorkflowId='reconcile-recording'") ]]; }
wait_for "the reconciliation of a page per user" reconciled

# Features: what each history shows, as workflows/replay_coverage_test.go
# defines it. Each jq program prints a history's features, one per line.
# shellcheck disable=SC2016 # jq, not shell, expands these
jqlib='
def scheduled: reduce (.events[] | select(.activityTaskScheduledEventAttributes)) as $e ({};
	.[$e.eventId] = $e.activityTaskScheduledEventAttributes.activityType.name);
def closed: .activityTaskCompletedEventAttributes // .activityTaskFailedEventAttributes //
	.activityTaskTimedOutEventAttributes // .activityTaskCanceledEventAttributes;
def results($name): scheduled as $s | .events[] | .activityTaskCompletedEventAttributes |
	select(. != null and $s[.scheduledEventId] == $name) | .result.payloads[0].data // empty | @base64d | fromjson;
def signaled_during_activity($name): scheduled as $s | reduce .events[] as $e ({open: {}, hit: false};
	if $s[$e.eventId] == $name then .open[$e.eventId] = true
	elif ($e | closed) != null then del(.open[($e | closed).scheduledEventId])
	elif $e.eventType == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" and (.open | length) > 0 then .hit = true
	else . end) | .hit;
def signaled_during_timer($timeout): reduce .events[] as $e ({open: {}, hit: false};
	if $e.timerStartedEventAttributes and ($timeout == null or $e.timerStartedEventAttributes.startToFireTimeout == $timeout) then
		.open[$e.timerStartedEventAttributes.timerId] = true
	elif ($e.timerFiredEventAttributes // $e.timerCanceledEventAttributes) then
		del(.open[($e.timerFiredEventAttributes // $e.timerCanceledEventAttributes).timerId])
	elif $e.eventType == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" and (.open | length) > 0 then .hit = true
	else . end) | .hit;
def has($type): any(.events[]; .eventType == "EVENT_TYPE_" + $type);
def common:
	(if has("WORKFLOW_EXECUTION_CONTINUED_AS_NEW") then "continued-as-new" else empty end),
	(if (.events[0].workflowExecutionStartedEventAttributes.continuedExecutionRunId // "") != "" then "started-from-continue-as-new" else empty end);
'
sync_features='common,
	(if any(results("ApplyPage"); true) then "fetched-pages" else empty end),
	(if any(results("PlanPage", "FetchPage"); .leaseLost == true) then "lost-lease" else empty end),
	(if signaled_during_activity("FetchPage") then "signal-during-fetch" else empty end),
	(if signaled_during_timer(null) then "signal-during-sleep" else empty end),
	(if has("WORKFLOW_EXECUTION_COMPLETED") and any(scheduled[]; . == "ReleaseFetcher") then "completed" else empty end),
	(if signaled_during_activity("AwaitSync") then "signal-while-joined" else empty end),
	(if has("SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED") and any(scheduled[]; . == "AwaitSync") then "joined-fetcher" else empty end)'
# shellcheck disable=SC2016
payout_features='common,
	(if any(results("SendPayout"); .status == "paid") then "paid" else empty end),
	(if any(results("SendPayout"); .status == "failed") then "rejected-422" else empty end),
	([.events[] | .timerStartedEventAttributes | select(.startToFireTimeout == "600s") | .timerId] as $ids |
	 if any(.events[]; .timerFiredEventAttributes.timerId as $t | $t != null and any($ids[]; . == $t)) then "operator-pause" else empty end),
	(if signaled_during_timer("600s") then "signal-during-pause" else empty end),
	(if has("WORKFLOW_EXECUTION_COMPLETED") then "completed" else empty end),
	(.events[] | .workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest.input.name // empty | "update-" + .)'
recovery_features='(if any(results("RecoverPayouts"); .notified > 0) then "woke-payouts" else empty end)'
reconcile_features='common, (if has("WORKFLOW_EXECUTION_COMPLETED") then "completed" else empty end),
	(if any(results("ReconcilePage"); true) then "reconciled" else empty end)'

# candidates TYPE JQ_FEATURES FEATURE… saves closed runs of TYPE small
# enough into $work/cand/TYPE, oldest first, until they show every
# FEATURE between them (or there are no more), and lists them in
# $work/cand/TYPE.tsv as "bytes<TAB>file<TAB>workflowId<TAB>feature,…".
candidates() {
	local type=$1 filter=$2 id run f size feats n=0 seen=, all feat
	shift 2
	mkdir -p "$work/cand/$type"
	: >"$work/cand/$type.tsv"
	while read -r id run; do
		[[ -n $id ]] || continue
		n=$((n + 1))
		f=$work/cand/$type/$run.json
		history "$id" "$run" >"$f"
		size=$(wc -c <"$f")
		if ((size > MAX_BYTES)); then
			log "skipping $id: its history has $size bytes, more than $MAX_BYTES"
			continue
		fi
		feats=$(jq -r "$jqlib $filter" "$f" | paste -sd, -)
		printf '%s\t%s\t%s\t%s\n' "$size" "$f" "$id" "$feats" >>"$work/cand/$type.tsv"
		seen+=$feats,
		all=true
		for feat in "$@"; do [[ $seen == *",$feat,"* ]] || all=false; done
		if $all; then break; fi
	done < <(tctl workflow list --limit 5000 -o json \
		--query "WorkflowType='$type' AND ExecutionStatus IN ('Completed', 'ContinuedAsNew')" |
		jq -r 'if type == "array" then . else [.] end | sort_by(.startTime)[] | "\(.execution.workflowId) \(.execution.runId)"')
	log "$type: exported $n closed runs"
}

# choose TYPE FEATURE… prints the fewest, smallest candidates of TYPE that
# together show every FEATURE (greedy: most missing features, then
# fewest bytes), or fails naming the features none shows.
choose() {
	local type=$1
	shift
	awk -F'\t' -v want="$*" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) missing[w[i]] = 1; left = n }
		{ size[NR] = $1; file[NR] = $2; id[NR] = $3; feats[NR] = $4; rows = NR }
		END {
			while (left > 0) {
				best = 0; bestc = 0
				for (r = 1; r <= rows; r++) {
					if (taken[r]) continue
					c = 0; m = split(feats[r], f, ",")
					for (i = 1; i <= m; i++) if (f[i] in missing) c++
					if (c > bestc || (c == bestc && c > 0 && size[r] < size[best])) { best = r; bestc = c }
				}
				if (bestc == 0) break
				taken[best] = 1
				m = split(feats[best], f, ",")
				for (i = 1; i <= m; i++) if (f[i] in missing) { delete missing[f[i]]; left-- }
				print file[best] "\t" id[best] "\t" feats[best]
			}
			if (left > 0) {
				s = ""; for (k in missing) s = s " " k
				print "record-histories: no recorded history shows:" s > "/dev/stderr"
				exit 1
			}
		}' "$work/cand/$type.tsv" || { echo "record-histories: $type is missing a path; run the recording again" >&2; return 1; }
}

sync_paths=(continued-as-new started-from-continue-as-new completed fetched-pages lost-lease
	signal-during-fetch signal-during-sleep signal-while-joined joined-fetcher)
payout_paths=(continued-as-new started-from-continue-as-new completed paid rejected-422 operator-pause signal-during-pause
	update-hold update-release update-cancel update-retry)
recovery_paths=(woke-payouts)
reconcile_paths=(continued-as-new started-from-continue-as-new completed reconciled)
log "exporting histories until they show every path"
candidates SyncWorkflow "$sync_features" "${sync_paths[@]}"
candidates PayoutWorkflow "$payout_features" "${payout_paths[@]}"
candidates PayoutRecoveryWorkflow "$recovery_features" "${recovery_paths[@]}"
candidates ReconcileWorkflow "$reconcile_features" "${reconcile_paths[@]}"
{
	choose SyncWorkflow "${sync_paths[@]}"
	choose PayoutWorkflow "${payout_paths[@]}"
	choose PayoutRecoveryWorkflow "${recovery_paths[@]}"
	choose ReconcileWorkflow "${reconcile_paths[@]}"
} >"$work/chosen.tsv"

# The sources must be those the binary was built from.
if ! sources | cmp -s - "$work/SOURCES.sha256"; then
	echo "record-histories: workflows/*.go changed during the recording; record again" >&2
	exit 1
fi

# next_file TYPE prints the first unused OUT/TYPE-<n>.json.
next_file() {
	local n=1
	while [[ -e "$OUT/$1-$n.json" ]]; do n=$((n + 1)); done
	echo "$OUT/$1-$n.json"
}

mkdir -p "$OUT"
[[ -e $OUT/README.md ]] || printf '# Recorded histories\n\nWritten by scripts/record-histories.sh (docs/versioning.md): what each file shows.\n\n' >"$OUT/README.md"
# The code recorded: the commit, and whether workflows/ differed from it.
release="$(date -u +%Y-%m-%d), at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
mapfile -t recorded < <(awk '{ print $2 }' "$work/SOURCES.sha256")
git diff --quiet HEAD -- "${recorded[@]}" 2>/dev/null || release+=" with uncommitted changes to workflows/"
while IFS=$'\t' read -r f id feats; do
	type=$(jq -r '.events[0].workflowExecutionStartedEventAttributes.workflowType.name' "$f")
	dest=$(next_file "$type")
	cp "$f" "$dest"
	echo "- \`$(basename "$dest")\` ($release): $id, ${feats//,/, }" >>"$OUT/README.md"
	log "$id -> ${dest#"$ROOT"/} ($(wc -c <"$dest") bytes, $(jq '.events | length' "$dest") events): ${feats//,/, }"
done <"$work/chosen.tsv"
cp "$work/SOURCES.sha256" "$OUT/SOURCES.sha256"
log "wrote ${OUT#"$ROOT"/}/SOURCES.sha256"
log "done in $((SECONDS - started))s"
