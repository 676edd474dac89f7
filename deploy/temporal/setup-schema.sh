#!/bin/sh
# Creates Temporal's two databases on the stack's Postgres and brings their
# schemas to the version the admin-tools image ships (the server's own
# version): the temporal-schema one-shot of docker-compose.yml, run with
# temporalio/admin-tools before the server starts.
#
# Idempotent, so it runs on every `docker compose up`: create-database
# ignores a database that exists, setup-schema -v 0.0 only creates the
# version tables when they are missing (and leaves a higher version alone),
# and update-schema applies only the versions above the recorded one. After
# an image upgrade it is what upgrades the schema, before the new server
# starts.
#
# Environment (the server's own variables, so both read the same):
#   DB                 SQL plugin: postgres12
#   POSTGRES_SEEDS     Postgres host
#   DB_PORT            Postgres port
#   POSTGRES_USER      role that owns the databases (CREATEDB)
#   POSTGRES_PWD       its password (passed to the tool as SQL_PASSWORD, never
#                      on the command line)
#   DBNAME             the persistence database (temporal)
#   VISIBILITY_DBNAME  the SQL visibility database (temporal_visibility)
#   TEMPORAL_SCHEMA_DIR  optional; default /etc/temporal/schema, as in the image
set -eu

: "${DB:?set DB (postgres12)}"
: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS (the Postgres host)}"
: "${DB_PORT:?set DB_PORT}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${POSTGRES_PWD:?set POSTGRES_PWD}"
: "${DBNAME:?set DBNAME}"
: "${VISIBILITY_DBNAME:?set VISIBILITY_DBNAME}"

case "$DB" in
postgres12 | postgres12_pgx) ;;
*)
	echo "setup-schema: DB=$DB: this script sets up PostgreSQL only (postgres12)" >&2
	exit 1
	;;
esac

# temporal-sql-tool reads the password from SQL_PASSWORD: kept out of the
# process list.
SQL_PASSWORD=$POSTGRES_PWD
export SQL_PASSWORD
versioned=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema}/postgresql/v12

sql() {
	temporal-sql-tool --plugin "$DB" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

# setup DATABASE SCHEMA: SCHEMA is temporal or visibility.
setup() {
	echo "setup-schema: database $1 ($2 schema)"
	sql --db "$1" create-database
	sql --db "$1" setup-schema -v 0.0
	sql --db "$1" update-schema -d "$versioned/$2/versioned"
}

setup "$DBNAME" temporal
setup "$VISIBILITY_DBNAME" visibility
echo "setup-schema: $DBNAME and $VISIBILITY_DBNAME are at the image's schema versions"
