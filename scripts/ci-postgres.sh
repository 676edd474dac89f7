#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at 127.0.0.1:$CI_PG_PORT with a
# password login role that may create databases, and print the
# TEST_POSTGRES_URL for it on stdout (nothing else goes to stdout; progress
# goes to stderr). .ci/run calls it; it works from a bare Debian machine:
#
#   - a server already answering pg_isready on the port is used as it is;
#   - else, PostgreSQL installed but stopped: the cluster on the port is
#     started (pg_ctlcluster), or created first (pg_createcluster);
#   - else PostgreSQL is installed with apt-get, then started as above.
#
# Then the role CI_PG_USER (CREATEDB, password CI_PG_PASSWORD) and its
# database CI_PG_DB are created or updated as the postgres OS user over the
# local socket (peer auth, Debian's default), and a password login over TCP
# is checked: that is what a default scram-sha-256 server accepts, and a
# trust server accepts it too. Running it again changes nothing.
#
# If TEST_POSTGRES_URL is already set, it is checked and printed unchanged.
# Every failure is one line starting with "ci: ", and a non-zero exit.
#
# Settings (environment): CI_PG_PORT (5432), CI_PG_CLUSTER (main: the
# cluster to create when none uses the port), CI_PG_USER (scorekeeper_ci),
# CI_PG_PASSWORD (a fixed password: the role is for local tests only),
# CI_PG_DB (scorekeeper_ci).
set -uo pipefail

port=${CI_PG_PORT:-5432}
cluster=${CI_PG_CLUSTER:-main}
role=${CI_PG_USER:-scorekeeper_ci}
password=${CI_PG_PASSWORD:-scorekeeper-ci-local}
dbname=${CI_PG_DB:-scorekeeper_ci}
host=127.0.0.1

# stdout is the answer; everything else, ours and the tools', goes to stderr.
exec 3>&1 1>&2

die() {
	echo "ci: $*" >&2
	exit 1
}
say() { echo "postgres: $*" >&2; }
mask() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:xxxxx@#'; }

# Connection settings from the caller's environment must not redirect the
# checks below; URLs and flags name everything explicitly.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGSSLMODE PGOPTIONS
export PGCONNECT_TIMEOUT=10

[[ $port =~ ^[0-9]+$ ]] || die "CI_PG_PORT=$port is not a port number"
[[ $role =~ ^[a-z_][a-z0-9_]*$ ]] || die "CI_PG_USER=$role: want lower-case letters, digits and _ only"
[[ $dbname =~ ^[a-z_][a-z0-9_]*$ ]] || die "CI_PG_DB=$dbname: want lower-case letters, digits and _ only"
[[ $password =~ ^[A-Za-z0-9._~-]+$ ]] || die "CI_PG_PASSWORD: want URL-safe characters only (A-Z a-z 0-9 . _ ~ -)"

# as_root runs a command as root: directly, or through sudo without a
# prompt. Without fd 3: a server it starts would inherit it and hold the
# caller's $(...) open for as long as it runs.
as_root() {
	if [[ $(id -u) == 0 ]]; then
		"$@" 3>&-
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@" 3>&-
	else
		return 126
	fi
}
need_root() {
	[[ $(id -u) == 0 ]] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } ||
		die "$1 needs root (run as root, or with password-less sudo)"
}

ready() { command -v pg_isready >/dev/null && pg_isready -q -h "$host" -p "$port"; }

wait_ready() {
	local _
	for _ in $(seq 1 60); do
		ready && return 0
		sleep 1
	done
	return 1
}

# --- TEST_POSTGRES_URL given: use it as it is -----------------------------
if [[ -n ${TEST_POSTGRES_URL:-} ]]; then
	shown=$(mask <<<"$TEST_POSTGRES_URL")
	command -v psql >/dev/null || die "TEST_POSTGRES_URL is set but psql is not installed to check it"
	psql -X "$TEST_POSTGRES_URL" -Atqc 'select 1' >/dev/null </dev/null ||
		die "TEST_POSTGRES_URL=$shown is set but does not accept a connection"
	say "using the given TEST_POSTGRES_URL=$shown"
	echo "$TEST_POSTGRES_URL" >&3
	exit 0
fi

# --- a server at host:port -------------------------------------------------
server_bins() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

if ready; then
	say "server at $host:$port answers"
else
	if ! server_bins; then
		need_root "installing PostgreSQL"
		command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available to install it"
		say "PostgreSQL is not installed: installing it with apt-get"
		as_root apt-get update </dev/null || die "apt-get update failed (needed to install PostgreSQL)"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql </dev/null ||
			die "apt-get install postgresql failed"
		server_bins || die "apt-get installed postgresql but no server binaries are in /usr/lib/postgresql/*/bin"
	fi
	if ready; then
		say "server at $host:$port answers (started by its package)"
	else
		for tool in pg_lsclusters pg_ctlcluster pg_createcluster; do
			command -v "$tool" >/dev/null ||
				die "PostgreSQL server binaries are present but $tool (Debian package postgresql-common) is not"
		done
		need_root "starting PostgreSQL"
		# ver cluster port status owner datadir logfile
		read -r ver name _ status _ _ log < <(pg_lsclusters -h | awk -v p="$port" '$3 == p { print; exit }')
		if [[ -z ${ver:-} ]]; then
			ver=$(for b in /usr/lib/postgresql/*/bin/postgres; do b=${b#/usr/lib/postgresql/}; echo "${b%%/*}"; done | sort -V | tail -n1)
			other=$(pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c { print $3; exit }')
			[[ -z $other ]] ||
				die "no PostgreSQL cluster uses port $port and cluster $ver/$cluster already uses port $other (set CI_PG_PORT=$other, or CI_PG_CLUSTER to a new name)"
			say "no cluster uses port $port: creating cluster $ver/$cluster"
			as_root pg_createcluster "$ver" "$cluster" -p "$port" </dev/null ||
				die "pg_createcluster $ver $cluster -p $port failed"
			name=$cluster status=down
			log=$(pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c { print $7; exit }')
		fi
		if [[ $status == down ]]; then
			say "starting cluster $ver/$name"
			as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null ||
				die "could not start PostgreSQL cluster $ver/$name on port $port (log: ${log:-unknown})"
		fi
		wait_ready ||
			die "PostgreSQL cluster $ver/$name runs but does not answer at $host:$port within 60 s (check listen_addresses; log: ${log:-unknown})"
		say "server at $host:$port answers"
	fi
fi
command -v psql >/dev/null || die "psql is not installed (Debian package postgresql-client)"

# --- the role and its database ----------------------------------------------
# admin_psql runs psql as a superuser: as the postgres OS user on the local
# socket (peer auth), else as postgres over TCP (a trust server).
admin_psql() {
	if getent passwd postgres >/dev/null && as_root true 2>/dev/null &&
		(cd / && as_root runuser -u postgres -- psql -X -p "$port" -d postgres -Atqc 'select 1' </dev/null) >/dev/null 2>&1; then
		(cd / && as_root runuser -u postgres -- psql -p "$port" -d postgres -X -q -v ON_ERROR_STOP=1 "$@")
	elif psql -X "postgres://postgres@$host:$port/postgres?sslmode=disable" -Atqc 'select 1' </dev/null >/dev/null 2>&1; then
		psql "postgres://postgres@$host:$port/postgres?sslmode=disable" -X -q -v ON_ERROR_STOP=1 "$@"
	else
		return 125
	fi
}

url="postgres://$role:$password@$host:$port/$dbname?sslmode=disable"
admin_psql -v role="$role" -v password="$password" -v dbname="$dbname" <<'SQL'
SELECT format('CREATE ROLE %I', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'dbname', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \gexec
SQL
case $? in
0) say "role $role (LOGIN CREATEDB, with a password) and database $dbname are in place" ;;
125)
	# No superuser access, but an earlier run's role may be in place.
	psql -X "$url" -Atqc 'select 1' >/dev/null 2>&1 </dev/null ||
		die "cannot act as a PostgreSQL superuser on port $port: neither psql as the postgres OS user on the local socket nor postgres over TCP without a password works"
	say "no superuser access; using the role $role already in place, unchanged"
	;;
*) die "could not create or update the role $role and database $dbname on port $port" ;;
esac

psql -X "$url" -Atqc 'select 1' >/dev/null </dev/null ||
	die "password login as $role to $host:$port failed (check the host lines of pg_hba.conf)"
say "TEST_POSTGRES_URL=$(mask <<<"$url")"
echo "$url" >&3
