#!/bin/bash
# bench-upsert.sh -- append against --mode upsert (into an empty table, into one holding every
# row, with --on-conflict nothing, with --delete-missing), RUNS times each, seconds per run.
#
#   scripts/bench-upsert.sh PGFEED FILE CONNINFO [RUNS]
#   e.g. build-rel/gen-names --rows 500000 --seed 1 > /tmp/names.tsv
#        scripts/bench-upsert.sh build-rel/pgfeed /tmp/names.tsv "host=/tmp/pg dbname=bench" 3
#
# Drops and recreates the table names (primary key on nconst) in CONNINFO's database.
set -eu
pgfeed=$1 file=$2 db=$3 runs=${4:-3}
sql() { psql -qtAX -d "$db" -c "$1" >/dev/null; }
fresh()
{
    sql "DROP TABLE IF EXISTS names; CREATE TABLE names (nconst varchar(255) PRIMARY KEY,
         primary_name varchar(255), birth_year varchar(4), death_year varchar(4) DEFAULT '',
         primary_professions varchar[], known_for_titles varchar[])"
}
timed()
{
    sql "CHECKPOINT"
    local s e
    s=$(date +%s.%N)
    "$pgfeed" -q -d "$db" -t names --no-checkpoint "$@" "$file" || echo "FAILED: $*" >&2
    e=$(date +%s.%N)
    echo "$e - $s" | bc
}
for i in $(seq "$runs"); do
    fresh
    a=$(timed)
    fresh
    ue=$(timed --mode upsert)
    uf=$(timed --mode upsert)
    un=$(timed --mode upsert --on-conflict nothing)
    ud=$(timed --mode upsert --delete-missing)
    echo "run $i: append-empty $a upsert-empty $ue upsert-full $uf nothing-full $un" \
        "delete-missing-full $ud"
done
