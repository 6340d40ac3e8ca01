#!/usr/bin/env bash
# scripts/demo.sh — pgfeed end to end on a fresh Debian 12: installs what is missing
# (apt-get, when root), builds, starts a throw-away PostgreSQL, generates a gzipped
# name.basics-like file of about a million rows, imports it into the `names` table,
# shows the summary and a few rows, and cleans everything up again.
#
#   scripts/demo.sh [ROWS]        (default 1000000)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
PGFEED_LOG_PREFIX=demo.sh
ROWS=${1:-1000000}
BUILD=${PGFEED_DEMO_BUILD:-build}

PGDIR=
WORK=
HTTPD_PID=
cleanup()
{
    [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
    [ -n "$PGDIR" ] && pgfeed_pg_stop "$PGDIR" && rm -rf "$PGDIR"
    [ -n "$WORK" ] && rm -rf "$WORK"
    return 0
}
trap cleanup EXIT
trap 'echo "demo.sh: failed (line $LINENO): $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

step()
{
    printf '\n\033[1m== %s\033[0m\n' "$*"
}

step "installing what is missing"
if [ "${PGFEED_NO_INSTALL:-0}" != 1 ]; then
    pgfeed_install_deps "${PGFEED_BUILD_PKGS[@]}" "${PGFEED_RUN_PKGS[@]}"
fi

step "building into $BUILD/"
PGFEED_BUILD_TARGETS="pgfeed gen-names" pgfeed_build "$BUILD"
PGFEED=$BUILD/pgfeed

step "starting a throw-away PostgreSQL 15"
WORK=$(mktemp -d /tmp/pgfeed-demo.XXXXXX)
PGDIR=$(mktemp -d /tmp/pgfeed-pg.XXXXXX)
pgfeed_pg_start "$PGDIR"
DB=$(pgfeed_pg_conninfo "$PGDIR" postgres)
echo "conninfo: $DB"

step "generating $ROWS rows of name.basics-like TSV, gzipped"
"$BUILD/gen-names" --rows "$ROWS" --seed 1 | gzip -c >"$WORK/name.basics.tsv.gz"
ls -l "$WORK/name.basics.tsv.gz"
gzip -dc "$WORK/name.basics.tsv.gz" | head -n 3 || true # head closes the pipe early

step "creating the names table"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE TABLE names (nconst varchar(255),
    primary_name varchar(255), birth_year varchar(4), death_year varchar(4) DEFAULT '',
    primary_professions varchar[], known_for_titles varchar[])"

step "serving it over loopback HTTP (tests/httpd.py)"
# The server prints "PORT n" once it listens: read that line instead of sleeping.
exec 3< <(exec /usr/bin/python3 tests/httpd.py "$WORK")
HTTPD_PID=$!
read -r -u 3 word PORT || { echo "demo.sh: the HTTP server did not start" >&2; exit 1; }
[ "$word" = PORT ] || { echo "demo.sh: unexpected first line from httpd.py: $word $PORT" >&2; exit 1; }
SOURCE=http://127.0.0.1:$PORT/name.basics.tsv.gz
echo "serving $SOURCE"

step "importing with: pgfeed -t names -b 100000 $SOURCE"
"$PGFEED" -d "$DB" -t names -b 100000 --progress auto "$SOURCE"

step "the result"
psql -X -d "$DB" -c "SELECT count(*) AS rows,
    count(*) FILTER (WHERE death_year IS NULL) AS death_year_null,
    count(*) FILTER (WHERE primary_professions IS NULL) AS professions_null FROM names"
psql -X -P 'null=(null)' -d "$DB" -c "SELECT * FROM names ORDER BY nconst LIMIT 5"

step "done; cleaning up"
