#!/bin/sh
# The official image's first-run steps, reduced to what docker/compose.yml needs: initdb
# with a password for postgres, POSTGRES_DB, the init scripts against a server that listens
# on its Unix socket only, then the real server on all addresses.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pw=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >"$pw"
    initdb -D "$PGDATA" -U postgres --pwfile="$pw" -A scram-sha-256 --auth-local=trust \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pw"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    db=${POSTGRES_DB:-postgres}
    [ "$db" = postgres ] || psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres \
        -c "CREATE DATABASE \"$db\""
    for f in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$f" ] || continue
        echo "running $f"
        psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$db" -f "$f"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "init done"
fi
[ "$1" = postgres ] && shift && exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
exec "$@"
