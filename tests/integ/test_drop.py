"""When the server connection drops after the import started: what each kind of source
guarantees. A source that can be read again (a path, stdin from a file, HTTP) is retried in the
run and ends exact; a pipe cannot be read again, so the run fails loudly with what is committed
and re-piping the same bytes with --resume finishes it exactly. The identity of a stdin stream
(a hash of its first bytes) keeps unrelated streams apart, and an import that finished is not
appended again by accident."""

import gzip
import re
import subprocess
import time

from harness import (LIVE, Failure, Result, check, clean_env, copy_text_lines, eq, rows_eq,
                     sanitizer_check, test)


def wait_for(what, cond, timeout=60, every=0.05):
    """Polls cond() until it is true (the event awaited), failing after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


COMMITTED_SQL = ("SELECT CASE WHEN to_regclass('pgfeed_checkpoints') IS NULL THEN 0 ELSE "
                 "(SELECT coalesce(max(rows_committed), 0) FROM pgfeed_checkpoints) END;")


def committed_rows(ctx):
    return int(ctx.sql(COMMITTED_SQL).strip() or 0)


class SecondBatchGate:
    """Holds every COPY into names back once `rows` rows are in (a statement trigger that waits
    for an advisory lock this object's psql session holds), so that a disruption lands in the
    middle of the import however fast the machine is. open() lets them through."""

    def __init__(self, conninfo, rows):
        self.conninfo = conninfo
        self.sql(f"""
            CREATE FUNCTION pgfeed_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT count(*) FROM names) >= {rows} THEN
                    PERFORM pg_advisory_xact_lock_shared(4242);
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER pgfeed_gate BEFORE INSERT ON names
                FOR EACH STATEMENT EXECUTE FUNCTION pgfeed_gate();""")
        self.p = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", conninfo],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=clean_env())
        LIVE.add(self.p)
        self.p.stdin.write(b"SELECT pg_advisory_lock(4242);\nSELECT 'held';\n")
        self.p.stdin.flush()
        self.p.stdout.readline()
        eq(self.p.stdout.readline().strip(), b"held", "gate lock")

    def sql(self, q):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d",
                            self.conninfo, "-c", q], env=clean_env(), capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise Failure(f"psql: {r.stderr}")
        return r.stdout.strip()

    def wait_held(self, p):
        """Until a pgfeed backend waits at the gate (or pgfeed p exits)."""
        wait_for("pgfeed waiting at the gate", lambda: p.poll() is not None or self.sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") != "0")
        check(p.poll() is None, "pgfeed ended before reaching the gate")

    def open(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        LIVE.discard(self.p)


def terminate_pgfeed_backends(ctx):
    return ctx.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   f"WHERE application_name = 'pgfeed' AND datname = '{ctx.db}';").strip()


def run_piped(ctx, args, chunks, between=None, timeout=120):
    """Runs pgfeed reading a real pipe that this process writes: chunks[0], then between()
    (which may wait for an event), then the rest. Returns the Result."""
    argv = ctx.argv(list(args) + ["-"])
    errpath = ctx.tmp / f"stderr-{time.monotonic_ns()}.txt"
    with open(errpath, "wb") as errf:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=errf, env=clean_env())
    LIVE.add(p)
    try:
        try:
            p.stdin.write(chunks[0])
            p.stdin.flush()
            if between:
                between(p)
            for c in chunks[1:]:
                p.stdin.write(c)
            p.stdin.close()
        except BrokenPipeError:
            pass  # pgfeed stopped reading: it failed, which the caller checks
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure(f"pgfeed did not exit within {timeout} s: {' '.join(argv)}\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
    finally:
        LIVE.discard(p)
    res = Result(argv, p.returncode, "", errpath.read_text("utf-8", "replace"), 0)
    sanitizer_check(res)
    return res


def drop_after_first_commit(ctx, rows):
    def between(p):
        wait_for("a committed batch", lambda: committed_rows(ctx) >= rows or p.poll() is not None)
        check(p.poll() is None, "pgfeed ended before the connection could be dropped")
        check(terminate_pgfeed_backends(ctx) != "0", "no pgfeed backend to terminate")
    return between


@test(time_limit=300)
def test_stdin_pipe_dropped_connection_retried_from_memory(ctx):
    # issue 11.2: the in-run retry used to skip the checkpoint's byte offset of *new* pipe data
    # (exit 0 with rows missing, or a misaligned row). The bytes since the last commit are kept,
    # so the retry reads them again and the import ends exact.
    data = ctx.gen(60000, seed=51)
    gz = gzip.compress(data, compresslevel=1, mtime=0)
    half = len(gz) // 2
    ctx.create_names()
    for extra in ((), ("-j", "2")):
        ctx.sql("TRUNCATE names; DROP TABLE IF EXISTS pgfeed_checkpoints;")
        res = run_piped(ctx, ("-t", "names", "-b", "5000", "--progress", "none") + extra,
                        [gz[:half], gz[half:]], between=drop_after_first_commit(ctx, 5000))
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, r"retrying in")
        ctx.expect_table(data, what=f"names after a retry from memory ({' '.join(extra) or '-j 1'})")


@test(time_limit=300)
def test_stdin_pipe_beyond_replay_memory_fails_loudly_then_resume_is_exact(ctx):
    # More uncommitted input than (connections + 1) x --batch-bytes: the retry cannot read it
    # again, so the run fails at once saying what is committed; the same bytes piped again with
    # --resume finish the import exactly.
    data = ctx.gen(60000, seed=58)  # plain tsv: a 5000-row batch is ~350 kB, over 2 x 100 kB
    half = len(data) // 2
    ctx.create_names()
    res = run_piped(ctx, ("-t", "names", "-b", "5000", "--batch-bytes", "100000", "--progress",
                          "none"), [data[:half], data[half:]],
                    between=drop_after_first_commit(ctx, 5000))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: could not retry the import: standard input cannot "
                        r"be read again", flags=re.M)
    ctx.expect_err(res, r"^pgfeed: hint: .*--resume", flags=re.M)
    n = ctx.count()
    check(n > 0 and n % 5000 == 0, f"{n} rows committed: not whole 5000-row batches")
    ctx.expect_table(data, limit=n, what="committed prefix")
    ctx.expect_err(res, rf"covers input lines 1 to {n + 1}\b")
    res = run_piped(ctx, ("-t", "names", "-b", "5000", "--resume"), [data])
    ctx.expect_rc(res, 0)
    ctx.expect_table(data, what="names after --resume")


@test(time_limit=300)
def test_stdin_from_file_dropped_connection_retried_in_run(ctx):
    # stdin redirected from a regular file can be read again: the run retries and ends exact
    data = ctx.gen(200000, seed=52)
    path = ctx.write("in.tsv.gz", data, gz=True)
    ctx.create_names()
    gate = SecondBatchGate(ctx.conninfo, 20000)  # the drop lands mid-import, whatever the speed
    try:
        p, errpath = ctx.spawn("-t", "names", "-b", "20000", "--progress", "none", "-",
                               stdin_path=path)
        gate.wait_held(p)
        check(terminate_pgfeed_backends(ctx) != "0", "no pgfeed backend to terminate")
    finally:
        gate.open()
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"retrying in")
    ctx.expect_table(data, what="names after an in-run retry")


@test()
def test_stdin_streams_have_their_own_checkpoints(ctx):
    # issue 11.7: every stdin import into a table used to share one checkpoint
    a = ctx.gen(3000, seed=53)
    b = ctx.gen(2000, seed=54, header=False)
    ctx.create_names()
    # an interrupted import of stream a: kill it after its first batch
    res = run_piped(ctx, ("-t", "names", "-b", "1000", "--progress", "none"),
                    [a[: len(a) // 2], a[len(a) // 2:]],
                    between=lambda p: (wait_for("a batch", lambda: committed_rows(ctx) >= 1000),
                                       p.kill()))
    check(res.rc != 0, "the killed import exited 0")
    n_a = ctx.count()
    # an unrelated stream is a new import, not "an unfinished import of this source"
    res = run_piped(ctx, ("-t", "names", "--header", "none"), [b])
    ctx.expect_rc(res, 0)
    eq(ctx.count(), n_a + 2000, "rows after an unrelated stream")
    # --resume with yet another stream is refused: its lines are not the checkpoint's
    res = run_piped(ctx, ("-t", "names", "--resume"), [ctx.gen(3000, seed=55)])
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"standard input is not the stream the interrupted import read")
    eq(ctx.count(), n_a + 2000, "rows after a refused resume")
    # the first stream resumes exactly
    res = run_piped(ctx, ("-t", "names", "-b", "1000", "--resume"), [a])
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 3000 + 2000, "rows after the resume")
    # every row of a and of b exactly once (their nconst values overlap: gen-names numbers rows)
    want = sorted(copy_text_lines(a) + copy_text_lines(b, header=False))
    rows_eq(sorted(ctx.copy_text()), want, "names after both streams")


@test()
def test_finished_import_not_appended_again(ctx):
    # issue 11.7: the same unchanged source again used to append every row a second time
    data = ctx.gen(1500, seed=56)
    path = ctx.write("once.tsv", data)
    ctx.create_names()
    ctx.expect_rc(ctx.pgfeed("-t", "names", path), 0)
    res = ctx.pgfeed("-t", "names", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"this source was already imported into \"names\"")
    ctx.expect_err(res, r"^pgfeed: hint: .*--restart", flags=re.M)
    eq(ctx.count(), 1500, "rows after a refused second import")
    # --resume of a finished import has nothing to do, with several connections too (it used
    # to take the closing second connection for a lost one and retry five times)
    for j in ("1", "2"):
        res = ctx.pgfeed("-t", "names", "-j", j, "--resume", path)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, r"already finished .*nothing to resume")
        check("retrying" not in res.err, f"-j {j}: a retry after nothing to resume:\n{res.err}")
    eq(ctx.count(), 1500, "rows after --resume of a finished import")
    # the same from stdin
    ctx.sql("TRUNCATE names; DROP TABLE pgfeed_checkpoints;")
    ctx.expect_rc(ctx.pgfeed("-t", "names", "-", input=data), 0)
    res = ctx.pgfeed("-t", "names", "-", input=data)
    ctx.expect_rc(res, 1)
    eq(ctx.count(), 1500, "rows after a refused second stdin import")
    # --restart imports it again on purpose; --truncate replaces the rows; a changed file is new
    ctx.expect_rc(ctx.pgfeed("-t", "names", "--restart", "-", input=data), 0)
    eq(ctx.count(), 3000, "rows after --restart")
    ctx.expect_rc(ctx.pgfeed("-t", "names", "--truncate", "-", input=data), 0)
    eq(ctx.count(), 1500, "rows after --truncate")
    path.write_bytes(data + b"nm9999999\tNew Name\t1990\t\\N\tactor\ttt0000001\n")
    ctx.expect_rc(ctx.pgfeed("-t", "names", path), 0)
    eq(ctx.count(), 3001, "rows after importing a changed file")


@test(time_limit=300)
def test_server_restart_is_ridden_out(ctx):
    # issue 11.3: after `pg_ctl restart -m fast` the first reconnect meets a missing socket or
    # "the database system is shutting down"; that is transient once the import has started
    from harness import LIB_SH, Cluster
    cl = Cluster()
    cl.start(own=True)
    try:
        conninfo = cl.conninfo()
        subprocess.run(["psql", "-X", "-q", "-d", conninfo, "-c",
                        "CREATE TABLE names (nconst varchar(255), primary_name varchar(255), "
                        "birth_year varchar(4), death_year varchar(4) DEFAULT '', "
                        "primary_professions varchar[], known_for_titles varchar[])"],
                       check=True, env=clean_env(), capture_output=True)
        gate = SecondBatchGate(conninfo, 20000)
        data = ctx.gen(300000, seed=57)
        path = ctx.write("big.tsv.gz", data, gz=True)
        argv = [ctx.cfg.pgfeed, "-d", conninfo, "-t", "names", "-b", "20000", "--progress",
                "none", "--retries", "8", str(path)]
        errpath = ctx.tmp / "restart-stderr.txt"

        def q(sql):
            r = subprocess.run(["psql", "-X", "-q", "-At", "-d", conninfo, "-c", sql],
                               env=clean_env(), capture_output=True, text=True)
            return r.stdout.strip() if r.returncode == 0 else ""

        with open(errpath, "wb") as errf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=errf, env=clean_env())
        LIVE.add(p)
        def pg_ctl(*args):
            r = subprocess.run(
                ["bash", "-c", '. "$1" && shift && d=$1 && shift && '
                 '_pgfeed_as_pg "$d" "$PGFEED_PG_BINDIR/pg_ctl" -D "$d/data" -l "$d/server.log" '
                 '-w -t 60 "$@"', "bash", str(LIB_SH), cl.dir, *args],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, f"pg_ctl {' '.join(args)}: {r.stdout}{r.stderr}")

        try:
            gate.wait_held(p)
            # the server goes away (ending the gate's session too) and stays away until pgfeed
            # has failed to reconnect at least once: that failure must be retried, not final
            pg_ctl("-m", "fast", "stop")
            gate.open()
            wait_for("a failed reconnect", lambda: p.poll() is not None or re.search(
                r"\(retry [2-9] of", errpath.read_text("utf-8", "replace")))
            check(p.poll() is None, "pgfeed gave up while the server was down:\n"
                  + errpath.read_text("utf-8", "replace")[-1500:])
            pg_ctl("start")
            p.wait(180)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            LIVE.discard(p)
        res = Result(argv, p.returncode, "", errpath.read_text("utf-8", "replace"), 0)
        sanitizer_check(res)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, r"retrying in")
        eq(q("SELECT count(*), count(DISTINCT nconst) FROM names"), "300000|300000",
           "rows and distinct keys after a server restart")
    finally:
        cl.stop()
