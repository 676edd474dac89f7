#!/usr/bin/env bash
# Starts the Temporal dev server (Web UI on :8233) and `scorekeeper dev` on
# the embedded defaults; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
TEMPORAL="${TEMPORAL_CLI:-.tools/bin/temporal}"

"$TEMPORAL" server start-dev \
	--ip 127.0.0.1 --port 7233 --ui-port 8233 \
	--db-filename data/temporal.db \
	--search-attribute UserId=Keyword \
	--dynamic-config-value matching.numTaskqueueReadPartitions=1 \
	--dynamic-config-value matching.numTaskqueueWritePartitions=1 \
	--log-level warn >data/temporal.log 2>&1 &
temporal_pid=$!
trap 'kill $temporal_pid 2>/dev/null; wait $temporal_pid 2>/dev/null' EXIT

for _ in $(seq 1 100); do
	if "$TEMPORAL" operator cluster health --address 127.0.0.1:7233 >/dev/null 2>&1; then break; fi
	sleep 0.3
done
echo "Temporal Web UI: http://127.0.0.1:8233  (server log: data/temporal.log)"
echo "REST API:        HTTP_ADDR=${HTTP_ADDR:-:3000}  (e.g. curl http://127.0.0.1:3000/api/users/268297/summary once the first sync ran, about a minute)"
./bin/scorekeeper dev
