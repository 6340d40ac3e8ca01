"""-j / --connections: batches COPY on several connections at once, each committing as soon
as its COPY ends.

The ordering tests hold batch 0 back with a trigger that waits on an advisory lock the
test holds, so what the other connections do meanwhile is observed (polled, never slept
on): they finish their batches and commit them past the held one, at most --connections
batches past the committed prefix. Interrupted there -- an error in the held batch,
SIGINT, kill -9, its backend terminated -- the checkpoint holds the prefix and the batches
past it, and --resume (or the run's own retry) fills the gap: every row exactly once.
"""

import contextlib
import re
import signal
import subprocess
import time

from harness import LIVE, Failure, check, eq, psql_env, test
from test_rejects import INT_DDL, nums_tsv, rejects_lines, table_ids
from test_resume import BATCH, ROWS, big_file, checkpoint, checkpoint_rows
from test_signals import wait_for_rows

GATE_KEY = 4242


def nconst_of_row(data, n):
    """The nconst of data row n (1-based; the header is line 1)."""
    return data.split(b"\n", n + 1)[n].split(b"\t", 1)[0].decode()


def gate_row(ctx, data, n=20_000, fail=False):
    """A trigger that makes data row n (the last of batch 0 by default: all of the batch
    has been sent by then) wait for the test's advisory lock, then, with fail, raise."""
    nconst = nconst_of_row(data, n)
    ctx.sql(f"""
CREATE TABLE gate_flag (fail boolean NOT NULL);
INSERT INTO gate_flag VALUES ({'true' if fail else 'false'});
CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
  IF (SELECT fail FROM gate_flag) THEN
    RAISE EXCEPTION 'gate refused %', NEW.nconst USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER gate BEFORE INSERT ON names FOR EACH ROW
  WHEN (NEW.nconst = '{nconst}') EXECUTE FUNCTION gate();
""")


def hold_gate(ctx):
    """A psql session holding the advisory lock; returns release()."""
    p = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", ctx.conninfo], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=psql_env())
    LIVE.add(p)
    p.stdin.write(f"SELECT pg_advisory_lock({GATE_KEY});\nSELECT 'locked';\n".encode())
    p.stdin.flush()
    out = p.stdout.readline().strip()
    if out == b"":
        out = p.stdout.readline().strip()
    eq(out, b"locked", "advisory lock holder")

    def release():
        if p.poll() is None:
            try:
                p.stdin.write(f"SELECT pg_advisory_unlock({GATE_KEY});\n".encode())
                p.stdin.close()
                p.wait(30)
            except Exception:
                p.kill()
                p.wait()
        LIVE.discard(p)

    return release


def activity(ctx):
    """(backends waiting on the advisory lock, backends idle in a transaction) of pgfeed."""
    out = ctx.sql("SELECT count(*) FILTER (WHERE wait_event = 'advisory'),"
                  " count(*) FILTER (WHERE state = 'idle in transaction')"
                  " FROM pg_stat_activity WHERE application_name = 'pgfeed' AND datname = current_database();").strip()
    a, b = out.split("|")
    return int(a), int(b)


def wait_until(p, errpath, probe, want, what, timeout=60):
    """Polls probe() until it returns `want`; fails if pgfeed exits first or time runs out."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) early:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        got = probe()
        if got == want:
            return
        time.sleep(0.05)
    raise Failure(f"{what} never showed {want}; last {got}")


def wait_for_count(ctx, p, errpath, want, timeout=60):
    """count(*) of names reaches `want` (batches committed past the held one)."""
    wait_until(p, errpath, ctx.count, want, "the table's row count", timeout)


def wait_for_activity(ctx, p, errpath, want, timeout=60):
    """pg_stat_activity shows `want` (backends waiting on the gate, idle in a transaction)."""
    wait_until(p, errpath, lambda: activity(ctx), want,
               "pg_stat_activity (waiting, idle in transaction)", timeout)


@test()
def test_connections_usage_errors(ctx):
    for bad in ("0", "17", "two", "-1"):
        res = ctx.pgfeed("-t", "names", "-j", bad, "x.tsv")
        ctx.expect_rc(res, 2)
        ctx.expect_err(res, r"--connections")
    check("--connections" in ctx.cfg.help_text(), "--help lists --connections")


@test()
def test_two_connections_exact(ctx):
    data = ctx.gen(60_000, seed=61)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-j", "2", "-b", "7000", ctx.write("n.tsv.gz", data, gz=True))
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"rows imported:\s+60000\b")
    ctx.expect_err(res, r"batches committed:\s+9\b")
    ctx.expect_table(data)
    eq(checkpoint(ctx), ["60000", "t"], "checkpoint")


@test()
def test_tiny_input_with_many_connections_finishes(ctx):
    """One batch on -j 16: it commits while other connections may still be connecting; the
    run must finish (not wait for connections that never get a batch)."""
    data = ctx.gen(3, seed=68)
    ctx.create_names()
    path = ctx.write("n.tsv", data)
    for i in range(3):
        if i:
            ctx.sql("TRUNCATE names; DELETE FROM pgfeed_checkpoints;")
        res = ctx.pgfeed("-t", "names", "-j", "16", path, timeout=60)
        ctx.expect_rc(res, 0)
        ctx.expect_table(data)
        eq(checkpoint(ctx), ["3", "t"], "checkpoint")


@contextlib.contextmanager
def gated_import(ctx, seed, jobs, want, fail=False, rows=60_000, committed=None):
    """Starts a -j `jobs` import of `rows` rows in batches of 20,000 whose batch 0 is held
    back at its last row, and yields (data, p, errpath) once pg_stat_activity shows `want`
    (backends waiting on the gate, backends idle in a transaction) and, with `committed`,
    the table holds that many rows; the gate opens when the block ends, also on failure."""
    data = ctx.gen(rows, seed=seed)
    ctx.create_names()
    gate_row(ctx, data, fail=fail)
    release = hold_gate(ctx)
    try:
        p, errpath = ctx.spawn("-t", "names", "-j", str(jobs), "-b", "20000",
                               ctx.write("n.tsv", data))
        if committed is not None:
            wait_for_count(ctx, p, errpath, committed)
        wait_for_activity(ctx, p, errpath, want)
        yield data, p, errpath
    finally:
        release()


def past_prefix_rows(ctx):
    """The checkpoint's rows for batches committed past the prefix (key JOB\nFIRST_LINE)."""
    out = ctx.sql("SELECT split_part(job_key, E'\\n', 2), rows_committed, lines_committed"
                  " FROM pgfeed_checkpoints WHERE job_key LIKE E'%\\n%' ORDER BY 1::int;")
    return [ln.split("|") for ln in out.split("\n") if ln]


@test()
def test_later_batches_commit_while_an_earlier_one_is_held(ctx):
    """Batch 1 commits while batch 0 is held back; batch 2 waits (two connections allow
    one batch past the prefix); all commit after, the checkpoint folded into one row."""
    with gated_import(ctx, 62, jobs=2, want=(1, 0), committed=20_000) as (data, p, errpath):
        eq(past_prefix_rows(ctx), [["20002", "20000", "40001"]], "rows past the prefix")
        eq(ctx.count(), 20_000, "rows while batch 0 is held back")
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"batches committed:\s+3\b")
    ctx.expect_table(data)
    eq(checkpoint(ctx), ["60000", "t"], "checkpoint")


@test()
def test_one_connection_does_not_start_a_second_batch(ctx):
    """The same gate with -j1: nothing else runs while batch 0 waits (the test can fail)."""
    with gated_import(ctx, 62, jobs=1, want=(1, 0)) as (data, p, errpath):
        n = ctx.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfeed' AND datname = current_database();")
        eq(n.strip(), "1", "pgfeed backends with -j1")
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)


@test()
def test_failed_batch_leaves_later_batches_then_resume_fills_the_gap(ctx):
    """Batch 0 fails after batch 1 committed: batch 1 stays, the checkpoint says so (an
    empty prefix and one batch past it), and --resume imports batches 0 and 2 only."""
    with gated_import(ctx, 63, jobs=2, want=(1, 0), fail=True, committed=20_000) as (data, p,
                                                                                      errpath):
        pass
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"gate refused")
    ctx.expect_err(res, r"line 20001\b")
    eq(ctx.count(), 20_000, "rows committed after batch 0 failed: batch 1's")
    eq(checkpoint_rows(ctx), 20_000, "rows the checkpoint counts")
    res = ctx.pgfeed("-t", "names", "-j", "2", "-b", "20000", ctx.tmp / "n.tsv")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"an unfinished import of this source")
    ctx.sql("DROP TRIGGER gate ON names;")
    res = ctx.pgfeed("-t", "names", "-j", "2", "-b", "20000", "--resume", ctx.tmp / "n.tsv")
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"rows imported:\s+40000\b")
    ctx.expect_err(res, r"lines 20002 to 40001 were committed past that line; they are skipped")
    ctx.expect_table(data)
    eq(checkpoint(ctx), ["60000", "t"], "checkpoint after --resume")


def held_then(ctx, seed, action, want_rc, jobs=4, rows=100_000):
    """-j `jobs` with batch 0 held and batches 1..jobs-1 committed past it; action(p) then
    interrupts the run. Returns (data, result)."""
    committed = (jobs - 1) * 20_000
    with gated_import(ctx, seed, jobs=jobs, want=(1, 0), rows=rows,
                      committed=committed) as (data, p, errpath):
        eq(len(past_prefix_rows(ctx)), jobs - 1, "batches past the prefix")
        action(p)
        if want_rc != 0:
            res = ctx.finish(p, errpath, timeout=60)
    if want_rc == 0:
        res = ctx.finish(p, errpath, timeout=120)
    ctx.expect_rc(res, want_rc)
    return data, res


def resume_exact(ctx, data, jobs, done_before):
    ctx.sql("DROP TRIGGER IF EXISTS gate ON names;")
    eq(checkpoint_rows(ctx), done_before, "rows the checkpoint counts")
    res = ctx.pgfeed("-t", "names", "-j", str(jobs), "-b", "20000", "--resume",
                     ctx.tmp / "n.tsv")
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf"rows imported:\s+{100_000 - done_before}\b")
    ctx.expect_table(data, what="table after --resume")
    eq(checkpoint(ctx), ["100000", "t"], "checkpoint after --resume")


@test()
def test_sigint_with_batches_past_a_held_one_then_resume(ctx):
    data, _ = held_then(ctx, 64, lambda p: p.send_signal(signal.SIGINT), 130)
    eq(ctx.count(), 60_000, "rows committed by the interrupted run: batches 1 to 3")
    resume_exact(ctx, data, 4, 60_000)


@test()
def test_sigkill_with_batches_past_a_held_one_then_resume(ctx):
    data, _ = held_then(ctx, 66, lambda p: p.send_signal(signal.SIGKILL), -9)
    eq(ctx.count(), 60_000, "rows committed before kill -9: batches 1 to 3")
    resume_exact(ctx, data, 3, 60_000)


@test()
def test_held_batch_backend_terminated_is_retried_exactly(ctx):
    """The backend of the held batch 0 is terminated while batches 1 to 3 are committed
    past it: the run retries from its checkpoint, skips them, and ends exact."""
    def terminate(p):
        n = ctx.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'pgfeed' AND wait_event = 'advisory'"
                    " AND datname = current_database();").strip()
        eq(n, "1", "backends terminated")
    data, res = held_then(ctx, 67, terminate, 0)
    ctx.expect_err(res, r"retries:\s+1\b")
    ctx.expect_table(data, what="table after the held batch's backend was terminated")
    eq(checkpoint(ctx), ["100000", "t"], "checkpoint")


@test(slow=True)
def test_sigkill_leaves_a_prefix_then_resume(ctx):
    data_path, gz = big_file(ctx)
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-j", "2", "-b", str(BATCH), gz)
    wait_for_rows(ctx, p, errpath)
    p.send_signal(signal.SIGKILL)
    ctx.finish(p, errpath, timeout=60)
    n = ctx.count()
    check(0 < n < ROWS and n % BATCH == 0, f"{n} rows committed: want whole batches, not all")
    eq(checkpoint_rows(ctx), n, "rows the checkpoint counts after kill -9")
    data = data_path.read_bytes()
    res = ctx.pgfeed("-t", "names", "-j", "3", "-b", str(BATCH), "--resume", gz)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf"rows imported:\s+{ROWS - n}\b")
    ctx.expect_table(data, what="table after kill -9 and --resume with -j3")


@test(slow=True)
def test_one_of_two_backends_terminated_is_retried(ctx):
    data_path, gz = big_file(ctx)
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-j", "2", "-b", str(BATCH), "--retries", "3", gz)
    wait_for_rows(ctx, p, errpath)
    killed = ctx.sql("SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM"
                     " pg_stat_activity WHERE application_name = 'pgfeed' AND datname = current_database() ORDER BY pid DESC"
                     " LIMIT 1) s;").strip()
    eq(killed, "1", "backends terminated")
    res = ctx.finish(p, errpath, timeout=120)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"retries:\s+1\b")
    ctx.expect_table(data_path.read_bytes(), what="table after one backend was terminated")


@test()
def test_refused_rows_in_several_batches(ctx):
    ctx.sql(INT_DDL)
    bad = {5: "5\tfive\tbad", 1234: "1234\t\\N\tnull n", 2500: "2500\t1\tok",
           2501: "2500\t2\tduplicate id", 3999: "3999\t99999999999\tout of range"}
    data = nums_tsv(4000, bad=bad)
    path = ctx.write("nums.tsv", data)
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "nums", "-j", "3", "-b", "500", "--max-rejects", "10",
                     "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"rows rejected:\s+4\b")
    ids = table_ids(ctx)
    want = [i for i in range(1, 4001) if i not in (5, 1234, 2501, 3999)]
    eq(ids, want, "ids imported")
    lines = rejects_lines(rej)
    eq(sorted(int(ln[0]) for ln in lines), [6, 1235, 2502, 4000], "rejected input lines")
    check(all(re.search(r"\S", ln[1]) for ln in lines), "every reject has a reason")


@test()
def test_connection_limit_reached_fails_clearly(ctx):
    data = ctx.gen(1000, seed=65)
    ctx.create_names()
    ctx.sql("DROP ROLE IF EXISTS pgfeed_lim; CREATE ROLE pgfeed_lim LOGIN CONNECTION LIMIT 1;"
            " GRANT ALL ON names TO pgfeed_lim; GRANT ALL ON SCHEMA public TO pgfeed_lim;")
    try:
        db = re.sub(r"user=\S+", "user=pgfeed_lim", ctx.conninfo)
        res = ctx.pgfeed("-d", db, "-t", "names", "-j", "2", ctx.write("n.tsv", data), db=False)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"too many connections")
        ctx.expect_err(res, r"hint: .*--connections")
        eq(ctx.count(), 0, "rows committed")
        res = ctx.pgfeed("-d", db, "-t", "names", "-j", "1", ctx.tmp / "n.tsv", db=False)
        ctx.expect_rc(res, 0)
        ctx.expect_table(data)
    finally:
        ctx.sql("DROP OWNED BY pgfeed_lim; DROP ROLE pgfeed_lim;")
