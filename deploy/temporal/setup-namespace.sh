#!/bin/sh
# Creates what scorekeeper needs in the Temporal server once its frontend is
# healthy: the namespace, and in it the UserId Keyword search attribute
# (payout workflows are searchable by user; the worker refuses a namespace
# without it). The temporal-setup one-shot of docker-compose.yml, run with
# temporalio/admin-tools (its `temporal` CLI); web and worker start once it
# exited 0.
#
# Idempotent, so it runs on every `docker compose up`: an existing namespace
# is left as it is (its retention too: change that with `temporal operator
# namespace update --retention`), and an existing UserId of type Keyword is
# kept (one of another type is an error). Each step is retried while the
# server is coming up; it exits 0 only once UserId is listed, so the worker's
# start-up check finds it.
#
# Environment:
#   TEMPORAL_ADDRESS    the frontend, host:port
#   TEMPORAL_NAMESPACE  the namespace scorekeeper uses
#   TEMPORAL_RETENTION  retention of closed workflows when the namespace is
#                       created (e.g. 72h)
#   SETUP_ATTEMPTS, SETUP_PAUSE  optional: tries per step (60) and seconds
#                       between them (2)
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS (host:port of the frontend)}"
: "${TEMPORAL_NAMESPACE:?set TEMPORAL_NAMESPACE}"
: "${TEMPORAL_RETENTION:?set TEMPORAL_RETENTION (e.g. 72h)}"
attempts=${SETUP_ATTEMPTS:-60}
pause=${SETUP_PAUSE:-2}

t() {
	temporal --address "$TEMPORAL_ADDRESS" "$@"
}

# retry WHAT COMMAND...: runs COMMAND until it succeeds, at most $attempts
# times.
retry() {
	what=$1
	shift
	n=1
	until "$@"; do
		if [ "$n" -ge "$attempts" ]; then
			echo "setup-namespace: $what: still failing after $n attempts, giving up" >&2
			return 1
		fi
		echo "setup-namespace: $what: not yet (attempt $n of $attempts), again in ${pause}s" >&2
		n=$((n + 1))
		sleep "$pause"
	done
}

ensure_namespace() {
	if t operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
		echo "setup-namespace: namespace $TEMPORAL_NAMESPACE exists"
		return 0
	fi
	t operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION" \
		--description "scorekeeper (created by deploy/temporal/setup-namespace.sh)"
}

# The CLI's table lists each attribute as "<name> <type>".
userid_listed() {
	t operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" |
		grep -Eq '(^|[[:space:]])UserId[[:space:]]+Keyword([[:space:]]|$)'
}

ensure_userid() {
	if userid_listed; then
		echo "setup-namespace: search attribute UserId (Keyword) exists"
		return 0
	fi
	# Fails when UserId exists with another type: fix that by hand.
	t operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name UserId --type Keyword
}

retry "frontend health ($TEMPORAL_ADDRESS)" t operator cluster health
retry "namespace $TEMPORAL_NAMESPACE" ensure_namespace
retry "search attribute UserId" ensure_userid
retry "search attribute UserId listed" userid_listed
echo "setup-namespace: namespace $TEMPORAL_NAMESPACE is ready (UserId Keyword)"
