#!/usr/bin/env bash
# tests/container/compose.sh IMAGE WORKDIR — docker/compose.yml with podman-compose: the
# postgres service (a local stand-in for postgres:15, tests/container/postgres/) comes up
# and turns healthy, its init script makes the names table, and the one-shot pgfeed
# service (IMAGE) imports a generated file into it; exit 0 when the table holds every row.
# Run by tests/container/run.sh when PGFEED_TEST_COMPOSE=1, with its podman configuration
# in the environment; WORKDIR is its temp dir (holds data/compose.tsv.gz).
#
# podman-compose 1.0.3 (Debian 12) starts services in dependency order but does not wait
# for `condition: service_healthy`: one `up -d` starts both, and the pgfeed service's
# --wait-for-db carries it over PostgreSQL's initialisation (the test checks that it
# waited). The source comes from a file mounted by an override file: the containers sit on
# a bridge network and cannot reach a loopback HTTP server (run.sh tests HTTP).
set -euo pipefail
IMAGE=$1
W=$2
cd "$(dirname "$0")/../.."
PROJECT=pgfeedtest
PG_IMAGE=localhost/pgfeed-test-postgres:15
ROWS=50000

echo "building $PG_IMAGE"
podman build --pull=never --layers=false -q -t "$PG_IMAGE" tests/container/postgres >/dev/null

"$GEN_NAMES" --rows $ROWS --seed 11 | gzip -c >"$W/data/compose.tsv.gz"
cat >"$W/compose.override.yml" <<EOF
services:
  pgfeed:
    volumes:
      - $W/data:/in:ro
EOF
export PGFEED_PG_IMAGE=$PG_IMAGE PGFEED_IMAGE=$IMAGE PGFEED_URL=/in/compose.tsv.gz
pc=(podman-compose -p "$PROJECT" -f docker/compose.yml -f "$W/compose.override.yml")
down() { "${pc[@]}" down -v >/dev/null 2>&1 || true; }
trap down EXIT

echo "up (both services at once)"
"${pc[@]}" up -d --no-build >"$W/compose-up.log" 2>&1 || { cat "$W/compose-up.log"; exit 1; }
pg=${PROJECT}_postgres_1
feed=${PROJECT}_pgfeed_1
st=$(podman wait "$feed") || { cat "$W/compose-up.log"; exit 1; }
podman logs "$feed" 2>&1 | grep -v '^{' | tail -n 12
if podman logs "$feed" 2>&1 | grep -q 'waiting for the database server'; then
    echo "pgfeed waited for PostgreSQL (--wait-for-db)"
else
    echo "pgfeed found PostgreSQL up at once (no wait seen)"
fi
rows=$(podman exec "$pg" psql -X -At -U postgres -d imdb -c "SELECT count(*) FROM names")
echo "pgfeed exit status $st, $rows rows in names"
[ "$st" = 0 ] && [ "$rows" = $ROWS ]
