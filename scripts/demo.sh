#!/usr/bin/env bash
# scripts/demo.sh — pgfeed end to end on a fresh Debian 12: installs what is missing
# (apt-get, when root), builds, starts a throw-away PostgreSQL, generates a gzipped
# name.basics-like file of about a million rows, imports it into the `names` table,
# shows the summary and a few rows, cleans everything up again, and prints the
# commands to run next on your own database. It never waits for input (psql's pager
# is off), whatever the terminal, and shows every command it runs.
#
#   scripts/demo.sh [ROWS]        (default 1000000)
#
# Environment:
#   PGFEED_NO_INSTALL=1           do not install packages
#   PGFEED_DEMO_BUILD=DIR         build into DIR (default build)
#   PGFEED=PATH GEN_NAMES=PATH    use these binaries instead of building (both needed)
#   PGFEED_DEMO_DB=CONNINFO       import into this database instead of a throw-away
#                                 server; it must not have a table "names" yet
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
    if [ -t 1 ]; then
        printf '\n\033[1m== %s\033[0m\n' "$*"
    else
        printf '\n== %s\n' "$*"
    fi
}

# One word as a shell would need it typed: bare when safe, else in single quotes, or in
# double quotes when it has single quotes and nothing a shell expands there.
shell_word()
{
    case $1 in
    *\'*) case $1 in
        *[\"\$\`\\!]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
        *) printf '"%s"' "$1" ;;
        esac ;;
    '' | *[!A-Za-z0-9_./:=@,+%-]*) printf "'%s'" "$1" ;;
    *) printf '%s' "$1" ;;
    esac
}

# Prints the command as it could be typed again ("$ cmd args"), then runs it.
run()
{
    local w line='$'
    for w in "$@"; do
        line+=" $(shell_word "$w")"
    done
    printf '%s\n' "$line"
    "$@"
}

# psql that never pages and never reads ~/.psqlrc
PSQL=(psql -X -P pager=off)

step "installing what is missing"
if [ "${PGFEED_NO_INSTALL:-0}" != 1 ]; then
    pgfeed_install_deps "${PGFEED_BUILD_PKGS[@]}" "${PGFEED_RUN_PKGS[@]}"
fi

if [ -n "${PGFEED:-}" ] && [ -n "${GEN_NAMES:-}" ]; then
    step "using $PGFEED and $GEN_NAMES (not building)"
else
    step "building into $BUILD/"
    PGFEED_BUILD_TARGETS="pgfeed gen-names" pgfeed_build "$BUILD"
    PGFEED=$BUILD/pgfeed
    GEN_NAMES=$BUILD/gen-names
fi

WORK=$(mktemp -d /tmp/pgfeed-demo.XXXXXX)
if [ -n "${PGFEED_DEMO_DB:-}" ]; then
    step "using the database PGFEED_DEMO_DB names"
    DB=$PGFEED_DEMO_DB
else
    step "starting a throw-away PostgreSQL 15"
    PGDIR=$(mktemp -d /tmp/pgfeed-pg.XXXXXX)
    pgfeed_pg_start "$PGDIR"
    DB=$(pgfeed_pg_conninfo "$PGDIR" postgres)
fi
echo "conninfo: $DB"

step "generating $ROWS rows of name.basics-like TSV, gzipped"
echo "\$ $(shell_word "$GEN_NAMES") --rows $ROWS --seed 1 | gzip -c >$WORK/name.basics.tsv.gz"
"$GEN_NAMES" --rows "$ROWS" --seed 1 | gzip -c >"$WORK/name.basics.tsv.gz"
ls -l "$WORK/name.basics.tsv.gz"
gzip -dc "$WORK/name.basics.tsv.gz" | head -n 3 || true # head closes the pipe early

step "creating the names table"
NAMES_DDL="CREATE TABLE names (nconst varchar(255), primary_name varchar(255), \
birth_year varchar(4), death_year varchar(4) DEFAULT '', \
primary_professions varchar[], known_for_titles varchar[])"
run "${PSQL[@]}" -q -v ON_ERROR_STOP=1 -d "$DB" -c "$NAMES_DDL"

step "serving it over loopback HTTP (tests/httpd.py)"
# The server prints "PORT n" once it listens: read that line instead of sleeping.
exec 3< <(exec /usr/bin/python3 tests/httpd.py "$WORK")
HTTPD_PID=$!
read -r -u 3 word PORT || { echo "demo.sh: the HTTP server did not start" >&2; exit 1; }
[ "$word" = PORT ] || { echo "demo.sh: unexpected first line from httpd.py: $word $PORT" >&2; exit 1; }
SOURCE=http://127.0.0.1:$PORT/name.basics.tsv.gz
echo "serving $SOURCE"

step "importing"
# The notice about "primaryProfession": the table's column is primary_professions (plural),
# so the header does not match it by name; the six fields are mapped by position.
run "$PGFEED" -d "$DB" -t names -b 100000 "$SOURCE"

step "the result"
run "${PSQL[@]}" -d "$DB" -c "SELECT count(*) AS rows,
    count(*) FILTER (WHERE death_year IS NULL) AS death_year_null,
    count(*) FILTER (WHERE primary_professions IS NULL) AS professions_null FROM names"
run "${PSQL[@]}" -P 'null=(null)' -d "$DB" -c "SELECT * FROM names ORDER BY nconst LIMIT 5"

step "next: the real file into your own database"
cat <<EOF
  createdb imdb
  psql -d imdb -c $(shell_word "$NAMES_DDL")
  $(shell_word "$PGFEED") -d postgres:///imdb -t names https://datasets.imdbws.com/name.basics.tsv.gz
(README.md, "Quick start", explains each step and what the output means.)
EOF

step "done; cleaning up"
