#!/usr/bin/env bash
# The end-to-end fault suite in full (make chaos): every scenario of
# e2e/chaos_test.go on the real system, then the table of violations
# (all 0 when the invariants hold). E2E_SEED=<n> repeats a run's random
# choices; each run prints the seed it used.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
CHAOS=full go test -count=1 -timeout 90m -run '^TestChaos$' -v ./e2e/ >"$out" 2>&1 || status=$?
grep -E 'E2E_SEED|violation:|^\s*--- (PASS|FAIL)|^\| ' "$out" || true
if [ "$status" -ne 0 ]; then
	echo "chaos suite failed (exit $status); full output:" >&2
	tail -n 200 "$out" >&2
fi
exit "$status"
