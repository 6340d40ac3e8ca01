"""Push jobs (pgfeed_options.push) through tests/tools/push-feed.c, a libuv host that writes a
file into a job in seeded random-size writes, honouring EAGAIN and drain_cb, and prints one
JSON line when the job is done.

- The table holds what the CLI imports from the same file (gzipped, random writes).
- kill -9 of the host mid-import, then the stream written again from its start with
  --resume: every row exactly once.
- pg_terminate_backend of the job's backend mid-import: the job retries from the replay it
  kept of the pushed bytes, every row exactly once.

push-feed is looked for next to the pgfeed binary (meson builds both), or in $PUSH_FEED.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from harness import LIVE, Failure, check, clean_env, eq, test

ROWS = 200_000
BATCH = 10_000


def push_feed(ctx):
    path = os.environ.get("PUSH_FEED") or str(Path(ctx.cfg.pgfeed).parent / "push-feed")
    if not os.access(path, os.X_OK):
        raise Failure(f"push-feed not found at {path} (meson builds it next to pgfeed)")
    return path


def argv(ctx, src, *extra):
    return [push_feed(ctx), "-d", ctx.conninfo, "-t", "names", "--name", "names-stream",
            *map(str, extra), str(src)]


def run(ctx, src, *extra, timeout=150):
    """Runs push-feed to the end; returns (rc, result dict or None, stderr)."""
    p = subprocess.run(argv(ctx, src, *extra), capture_output=True, timeout=timeout,
                       env=clean_env())
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(m not in err, f"sanitizer report from push-feed:\n{err[-3000:]}")
    lines = [ln for ln in out.split("\n") if ln.startswith("{")]
    return p.returncode, json.loads(lines[-1]) if lines else None, err


def gz_input(ctx):
    path = ctx.gen_file(ROWS, seed=131)
    gz = ctx.cfg.workdir / "push-big.tsv.gz"
    if not gz.exists():
        part = gz.with_suffix(".part")
        with open(path, "rb") as f, open(part, "wb") as g:
            subprocess.run(["gzip", "-1", "-c"], stdin=f, stdout=g, check=True)
        part.rename(gz)
    return path, gz


def wait_for_rows(ctx, p, timeout=120):
    """Polls count(*) until a batch is committed; fails if the host exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check(p.poll() is None, f"push-feed exited ({p.returncode}) before a batch committed")
        if ctx.count() > 0:
            return
        time.sleep(0.02)
    raise Failure(f"no batch committed within {timeout} s")


@test()
def test_push_same_as_cli(ctx):
    """The same gzipped file, pushed in random writes and imported by the CLI: same table."""
    data = ctx.gen(30_000, seed=132)
    gz = ctx.write("in.tsv.gz", data, gz=True)
    ctx.create_names()
    rc, res, err = run(ctx, gz, "-b", 4000, "--seed", 5)
    eq(rc, 0, f"push-feed exit status ({err[-2000:]})")
    eq(res["rows_committed"], 30_000, "rows committed")
    check(res["eagain"] > 0 and res["drains"] == res["eagain"],
          f"EAGAIN then one drain each: {res}")
    pushed = ctx.copy_text()
    ctx.sql("TRUNCATE names; DROP TABLE pgfeed_checkpoints;")
    cli = ctx.pgfeed("-t", "names", "-b", "4000", gz)
    ctx.expect_rc(cli, 0)
    eq(len(pushed), 30_000, "rows pushed")
    check(pushed == ctx.copy_text(), "the pushed table differs from the CLI's")
    ctx.expect_table(data, what="table after the CLI")


@test()
def test_push_rejects(ctx):
    """--max-rejects and the rejects file, as for a file."""
    data = ctx.gen(5000, seed=133, bad_line=1200)
    path = ctx.write("in.tsv", data)
    ctx.create_names()
    rejects = ctx.tmp / "r.tsv"
    rc, res, err = run(ctx, path, "--max-rejects", 1, "--rejects", rejects, "--max-write", 777)
    eq(rc, 0, f"push-feed exit status ({err[-2000:]})")
    eq(res["rows_rejected"], 1, "rows rejected")
    eq(res["rows_committed"], 4999, "rows committed (5000 rows, one bad)")
    text = rejects.read_text("utf-8", "replace")
    check(text.startswith("1200\t") and text.count("\n") == 1, f"rejects file: {text!r}")


@test(slow=True)
def test_push_kill9_then_resume(ctx):
    """kill -9 of the host mid-import; the stream written again with --resume: exactly once."""
    path, gz = gz_input(ctx)
    ctx.create_names()
    p = subprocess.Popen(argv(ctx, gz, "-b", BATCH, "--seed", 6), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=clean_env())
    LIVE.add(p)
    try:
        wait_for_rows(ctx, p)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        LIVE.discard(p)
    n = ctx.count()
    check(0 < n < ROWS and n % BATCH == 0, f"{n} rows after kill -9: want whole batches, not all")
    key = ctx.sql("SELECT job_key FROM pgfeed_checkpoints;").strip()
    eq(key, "push:names-stream -> names", "the checkpoint's job key")
    rc, res, err = run(ctx, gz)
    eq(rc, 1, "without --resume the unfinished import is refused")
    check("unfinished import" in (res or {}).get("message", ""), f"refusal: {res}")
    rc, res, err = run(ctx, gz, "-b", BATCH, "--seed", 7, "--resume")
    eq(rc, 0, f"push-feed --resume exit status ({err[-2000:]})")
    eq(res["rows_committed"], ROWS - n, "rows committed by the resume")
    check("resuming after input line" in err, f"the resume says where: {err[-1500:]}")
    check("restarting at byte" in err, f"the resume restarts mid-stream: {err[-1500:]}")
    ctx.expect_table(path.read_bytes(), what="table after kill -9 and --resume")


@test(slow=True)
def test_push_backend_terminated_replays(ctx):
    """pg_terminate_backend mid-import: the retry replays the pushed bytes it kept."""
    path, gz = gz_input(ctx)
    ctx.create_names()
    p = subprocess.Popen(argv(ctx, gz, "-b", BATCH, "--seed", 8, "--retries", 3),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    LIVE.add(p)
    try:
        wait_for_rows(ctx, p)
        killed = ctx.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'pgfeed' AND datname = current_database();")
        eq(killed.strip(), "1", "backends terminated")
        out, err = p.communicate(timeout=120)
    finally:
        LIVE.discard(p)
    err = err.decode("utf-8", "replace")
    for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(m not in err, f"sanitizer report from push-feed:\n{err[-3000:]}")
    res = json.loads([ln for ln in out.decode().split("\n") if ln.startswith("{")][-1])
    eq(p.returncode, 0, f"push-feed exit status ({err[-2000:]})")
    eq(res["retries"], 1, "retries")
    eq(res["rows_committed"], ROWS, "rows committed")
    check("retrying in" in err, f"the retry is logged: {err[-1500:]}")
    ctx.expect_table(path.read_bytes(), what="table after a terminated backend")
