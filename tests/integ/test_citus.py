"""Citus as a target: a coordinator and two workers on loopback (tests/integ/citus.py), a
32-shard distributed `names` table and a reference table.

Loads at -j 1 and -j 4, text and binary COPY, each compared row for row with the source;
SIGKILL mid-import then --resume with the state table as a reference table; the
coordinator backend terminated mid-import (retried within the run); --max-rejects with
values the coordinator refuses (too long, bad integer) and duplicate keys a worker refuses
(Citus re-raises those as XX000 with the shard's constraint name); a worker holding a lock
on a shard with -j 4 (pgfeed waits, visibly in citus_lock_waits, and --timeout ends the wait
with its message); --mode replace refused with its reason. Mid-import events are found by
polling the state table, never by sleeping.

Small by default (200,000 rows); PGFEED_TEST_CITUS_LONG=1 loads 2,000,000 and adds -j 16.
Every test skips, with the reason, where Citus cannot be installed or started.
"""

import os
import re
import signal
import subprocess

import citus
from harness import LIVE, check, copy_text_lines, eq, psql, psql_env, rows_eq, test

LONG = os.environ.get("PGFEED_TEST_CITUS_LONG") == "1"
ROWS = 2_000_000 if LONG else 200_000
KILL_ROWS = ROWS // 2  # the interrupted imports
BATCH = 20_000
NAMES_DDL = ("CREATE TABLE names (nconst varchar(255) PRIMARY KEY, primary_name varchar(255),"
             " birth_year varchar(4), death_year varchar(4) DEFAULT '',"
             " primary_professions varchar[], known_for_titles varchar[]);")
COLS = "nconst, primary_name, birth_year, death_year, primary_professions, known_for_titles"
# pgfeed's own statement (checkpoint.c), made before pgfeed runs so it can be distributed
STATE_DDL = ("CREATE TABLE pgfeed_checkpoints (job_key text PRIMARY KEY, source text NOT NULL,"
             " target text NOT NULL, options text NOT NULL, etag text, last_modified text,"
             " size bigint, rows_committed bigint NOT NULL, batches bigint NOT NULL,"
             " lines_committed bigint NOT NULL, decoded_offset bigint NOT NULL,"
             " raw_offset bigint NOT NULL, restart bytea, finished boolean NOT NULL,"
             " started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);")


def setup(ctx, kind="distributed", state_reference=False):
    """The cluster, emptied, with names made `kind`; returns it."""
    c = citus.cluster()
    make = ("SELECT create_distributed_table('names', 'nconst', shard_count => 32);"
            if kind == "distributed" else "SELECT create_reference_table('names');")
    sql = NAMES_DDL + make
    if state_reference:
        sql += STATE_DDL + "SELECT create_reference_table('pgfeed_checkpoints');"
    psql(c.coord.conninfo(), sql)
    return c


def run(ctx, c, *args, timeout=300):
    return ctx.pgfeed("-d", c.coord.conninfo(), "-t", "names", *args, db=False, timeout=timeout)


def spawn(ctx, c, *args):
    return ctx.spawn("-d", c.coord.conninfo(), "-t", "names", *args, db=False)


def sql(c, q):
    return psql(c.coord.conninfo(), q)


def expect_exact(ctx, c, path, what):
    """The table holds exactly the source's rows: the count, then every row compared."""
    data = path.read_bytes()
    want = copy_text_lines(data)
    eq(int(sql(c, "SELECT count(*) FROM names;")), len(want), f"{what}: rows")
    got = sql(c, f'COPY (SELECT {COLS} FROM names ORDER BY nconst COLLATE "C") TO STDOUT;')
    rows_eq(got.split("\n")[:-1], want, what)


def committed(c):
    out = sql(c, "SELECT coalesce(sum(rows_committed), 0), bool_or(finished)"
                 " FROM pgfeed_checkpoints;").strip()
    n, fin = out.split("|")
    return int(n), fin == "t"


def wait_for_batches(c, p, errpath, rows):
    """Polls the state table until `rows` are committed (or pgfeed ended)."""
    def ready():
        if p.poll() is not None:
            raise citus.harness.Failure(
                f"pgfeed ended ({p.returncode}) before {rows} rows were committed:\n"
                f"{errpath.read_text('utf-8', 'replace')}")
        exists = sql(c, "SELECT to_regclass('pgfeed_checkpoints') IS NOT NULL;").strip()
        return exists == "t" and committed(c)[0] >= rows
    citus.wait_for(ready, f"{rows} rows committed", timeout=240)


def source(ctx, rows=ROWS):
    return ctx.gen_file(rows, seed=191)


@test(time_limit=600)
def test_citus_distributed_text_and_binary(ctx):
    c = setup(ctx)
    path = source(ctx)
    combos = [("1", "text"), ("4", "binary")] + ([("16", "binary")] if LONG else [])
    for jobs, fmt in combos:
        sql(c, "TRUNCATE names; DROP TABLE IF EXISTS pgfeed_checkpoints;")
        res = run(ctx, c, "-j", jobs, "--copy-format", fmt, "-b", BATCH, path)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, rf"rows imported:\s+{ROWS}\b")
        expect_exact(ctx, c, path, f"distributed table, -j {jobs}, {fmt}")
        eq(committed(c), (ROWS, True), "checkpoint")


@test(time_limit=600)
def test_citus_reference_table(ctx):
    c = setup(ctx, "reference")
    path = ctx.gen_file(50_000, seed=192)
    for jobs, fmt in (("1", "binary"), ("4", "text")):
        sql(c, "TRUNCATE names; DROP TABLE IF EXISTS pgfeed_checkpoints;")
        res = run(ctx, c, "-j", jobs, "--copy-format", fmt, "-b", "10000", path)
        ctx.expect_rc(res, 0)
        expect_exact(ctx, c, path, f"reference table, -j {jobs}, {fmt}")
    # the rows are on both workers
    for w in c.workers:
        n = psql(w.conninfo(), "SET citus.override_table_visibility TO off;"
                               " SELECT count(*) FROM pg_catalog.pg_class"
                               " WHERE relname LIKE 'names\\_%' AND relkind = 'r';").strip()
        check(n.endswith("1"), f"reference table's shard on worker {w.port}: {n!r}")


@test(time_limit=600)
def test_citus_sigkill_then_resume_with_reference_state_table(ctx):
    """-j 1 with the state table where pgfeed makes it (a local table on the coordinator),
    -j 4 with it made a reference table beforehand: the checkpoint's upsert and finish run
    on Citus (no volatile function in DO UPDATE SET)."""
    path = source(ctx, KILL_ROWS)
    for jobs, reference in (("1", False), ("4", True)):
        c = setup(ctx, state_reference=reference)
        p, errpath = spawn(ctx, c, "-j", jobs, "-b", "10000", path)
        wait_for_batches(c, p, errpath, 20_000)
        p.send_signal(signal.SIGKILL)
        ctx.expect_rc(ctx.finish(p, errpath, timeout=60), -9)
        n, fin = committed(c)
        check(0 < n < KILL_ROWS and not fin, f"checkpoint after kill -9: {n} rows, finished {fin}")
        eq(int(sql(c, "SELECT count(*) FROM names;")), n, "rows committed = rows checkpointed")
        res = run(ctx, c, "-j", jobs, "-b", "10000", "--resume", path)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, rf"rows imported:\s+{KILL_ROWS - n}\b")
        expect_exact(ctx, c, path, f"-j {jobs} after kill -9 and --resume")
        eq(committed(c), (KILL_ROWS, True), "checkpoint after --resume")
        if reference:
            eq(sql(c, "SELECT partmethod FROM pg_dist_partition"
                      " WHERE logicalrelid = 'pgfeed_checkpoints'::regclass;").strip(), "n",
               "the state table is still a reference table")


@test(time_limit=600)
def test_citus_coordinator_backend_terminated(ctx):
    c = setup(ctx)
    path = source(ctx, KILL_ROWS)
    p, errpath = spawn(ctx, c, "-j", "4", "-b", "10000", path)
    wait_for_batches(c, p, errpath, 20_000)
    n = sql(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
               " WHERE application_name = 'pgfeed';").strip()
    check(int(n) >= 1, f"{n} pgfeed backends terminated")
    res = ctx.finish(p, errpath, timeout=300)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"retries:\s+[1-9]")
    expect_exact(ctx, c, path, "after the coordinator backends were terminated")
    eq(committed(c), (KILL_ROWS, True), "checkpoint")


def people_input():
    """1200 rows for people(id, name varchar(12), born int) with, at known lines: a name too
    long and a bad integer (the coordinator refuses them), a key the table already holds and
    a key repeated within the input (a worker refuses them). lines[i] is input line i + 1."""
    lines, bad = ["id\tname\tborn"], {}
    for i in range(1, 1201):
        lines.append(f"p{i:05d}\tname {i}\t{1900 + i % 100}")
    lines[50] = "p00050\tfar too long a name\t1950"
    bad[51] = r"value too long for type character varying\(12\)"
    lines[300] = "p00300\tname 300\tnineteen"
    bad[301] = r'invalid input syntax for type integer: "nineteen"'
    bad[601] = (r'duplicate key value violates unique constraint "people_pkey" \(shard \d+\):'
                 r" Key \(id\)=\(p00600\) already exists\.")
    lines[1100] = "p00005\tagain\t1990"
    bad[1101] = (r'duplicate key value violates unique constraint "people_pkey" \(shard \d+\):'
                 r" Key \(id\)=\(p00005\) already exists\.")
    return "\n".join(lines) + "\n", bad


@test(time_limit=600)
def test_citus_max_rejects_coordinator_and_worker(ctx):
    c = citus.cluster()
    data, bad = people_input()
    path = ctx.write("people.tsv", data)
    for jobs, fmt in (("1", "text"), ("4", "binary")):
        sql(c, "DROP TABLE IF EXISTS people, pgfeed_checkpoints;"
               " CREATE TABLE people (id text PRIMARY KEY, name varchar(12), born int);"
               " SELECT create_distributed_table('people', 'id', shard_count => 32);"
               " INSERT INTO people VALUES ('p00600', 'before', 1900);")
        rejects = ctx.tmp / f"rejects-{jobs}.tsv"
        res = ctx.pgfeed("-d", c.coord.conninfo(), "-t", "people", "-j", jobs, "--copy-format",
                         fmt, "-b", "400", "--max-rejects", "10", "--rejects", rejects, path,
                         db=False, timeout=300)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, r"rows rejected:\s+4\b")
        got = {}
        for ln in rejects.read_text("utf-8").splitlines():
            line, reason, _ = ln.split("\t", 2)
            got[int(line)] = reason
        want = dict(bad)
        if jobs != "1" and 6 in got:
            # batches commit independently: the batch with line 1101 may commit first, and
            # then line 6, the key's first row, is the one refused
            want[6] = want.pop(1101)
        eq(sorted(got), sorted(want), f"-j {jobs} {fmt}: rejected lines")
        for line, pattern in want.items():
            check(re.search(pattern, got[line]),
                  f"-j {jobs} {fmt}: reason of line {line}: {got[line]!r}, want /{pattern}/")
        eq(sql(c, "SELECT count(*), count(*) FILTER (WHERE name = 'before') FROM people;")
           .strip(), "1197|1", f"-j {jobs} {fmt}: rows in people")
    # without --max-rejects the worker's refusal fails the import, with its message
    sql(c, "TRUNCATE people; INSERT INTO people VALUES ('p00600', 'before', 1900);"
           " DROP TABLE pgfeed_checkpoints;")
    clean = ctx.write("people-clean.tsv", "\n".join(
        ln for i, ln in enumerate(data.splitlines()) if i not in (50, 300, 1100)) + "\n")
    res = ctx.pgfeed("-d", c.coord.conninfo(), "-t", "people", "-b", "400", clean, db=False)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: duplicate key value violates unique constraint")


class Locker:
    """A psql session on a worker holding SHARE (COPY waits, SELECT does not) on one shard of names."""

    def __init__(self, c):
        w = c.workers[0]
        shard = sql(c, "SELECT shard_name FROM citus_shards WHERE table_name = 'names'::regclass"
                       f" AND nodeport = {w.port} ORDER BY shardid LIMIT 1;").strip()
        self.p = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", w.conninfo()],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=psql_env())
        LIVE.add(self.p)
        self.p.stdin.write(f"SET citus.enable_manual_changes_to_shards TO on; BEGIN;"
                           f" LOCK TABLE {shard} IN SHARE MODE;"
                           f" SELECT pg_backend_pid();\n".encode())
        self.p.stdin.flush()
        self.pid = self.p.stdout.readline().strip().decode()
        check(self.pid.isdigit(), f"the lock holder on the worker: {self.pid!r}")

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write(b"ROLLBACK;\n")
            self.p.stdin.close()
            self.p.wait(30)
        LIVE.discard(self.p)


@test(time_limit=600)
def test_citus_lock_held_on_a_worker(ctx):
    """-j 4 while a worker's session holds a lock on one shard: pgfeed waits (the wait shows
    in citus_lock_waits on the coordinator, not in its pg_locks), --timeout ends it with its
    message, and once the lock goes a --resume finishes exactly."""
    c = setup(ctx)
    path = ctx.gen_file(20_000, seed=193)
    locker = Locker(c)
    try:
        res = run(ctx, c, "-j", "4", "-b", "2000", "--timeout", "5", path, timeout=120)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"error: time limit of 5 seconds reached")
        check(res.elapsed < 60, f"pgfeed took {res.elapsed:.1f} s to stop after --timeout 5")
        eq(int(sql(c, "SELECT count(*) FROM names;")), 0, "rows committed while locked")
        # without a limit it waits for the lock, as for any lock; the wait is seen on the
        # coordinator only through Citus's view
        p, errpath = spawn(ctx, c, "-j", "4", "-b", "2000", "--resume", path)
        citus.wait_for(lambda: sql(c, "SELECT count(*) FROM citus_lock_waits"
                                      f" WHERE blocking_gpid % 10000000000 = {locker.pid};")
                       .strip() not in ("", "0"), "pgfeed's wait in citus_lock_waits")
    finally:
        locker.release()
    res = ctx.finish(p, errpath, timeout=240)
    ctx.expect_rc(res, 0)
    expect_exact(ctx, c, path, "-j 4 after the worker's lock was released")


@test()
def test_citus_mode_replace_refused(ctx):
    c = setup(ctx)
    path = ctx.gen_file(1000, seed=194)
    res = run(ctx, c, "--mode", "replace", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: table names cannot be replaced: it is a Citus distributed table")
    ctx.expect_err(res, r"hint: Use --mode append \(with --truncate")
    eq(int(sql(c, "SELECT count(*) FROM names;")), 0, "rows")
    eq(sql(c, "SELECT count(*) FROM pg_dist_partition"
              " WHERE logicalrelid = 'names'::regclass;").strip(), "1", "names still distributed")


@test(time_limit=600)
def test_citus_mode_upsert_distributed(ctx):
    """--mode upsert into a distributed table: the staging table is a local temporary one on
    the coordinator, the merge an INSERT ... SELECT ... ON CONFLICT that Citus routes to the
    shards. A second file with the same keys and other values, merged with -j 2 and binary
    COPY, leaves exactly its rows, counted as updated."""
    c = setup(ctx)
    first, second = ctx.gen_file(20_000, seed=195), ctx.gen_file(20_000, seed=196)
    res = run(ctx, c, "--mode", "upsert", "-b", "5000", first)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"mode:\s+upsert \(20000 inserted, 0 updated")
    expect_exact(ctx, c, first, "upsert into an empty distributed table")
    res = run(ctx, c, "--mode", "upsert", "-j", "2", "--copy-format", "binary", "-b", "5000",
              second)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"mode:\s+upsert \(0 inserted, \d+ updated, \d+ unchanged")
    expect_exact(ctx, c, second, "upsert of the same keys with other values")
