"""SIGINT / SIGTERM in the middle of a large import: exit 130 / 143, the batch in flight
rolled back, the committed batches kept, and those are exactly the first rows of the file.

The signal is sent once a first batch is visible (a bounded poll of count(*), not a
sleep), so the test does not depend on the machine's speed.
"""

import signal
import subprocess
import time

from harness import Failure, check, read_prefix, test

ROWS = 2_000_000
BATCH = 10_000


def count_or_none(ctx):
    try:
        return ctx.count()
    except Failure:
        return None


def wait_for_rows(ctx, p, errpath, timeout=120):
    """Polls count(*) until a batch is committed. Fails if pgfeed exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) before the signal could be sent:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        n = count_or_none(ctx)
        if n:
            return n
        time.sleep(0.02)
    raise Failure(f"no batch committed within {timeout} s")


def interrupted_import(ctx, signals, want_rc, gz=False):
    path = ctx.gen_file(ROWS, seed=77)
    src = path
    if gz:
        src = ctx.cfg.workdir / "big.tsv.gz"
        if not src.exists():
            with open(path, "rb") as f, open(str(src) + ".part", "wb") as g:
                subprocess.run(["gzip", "-1", "-c"], stdin=f, stdout=g, check=True)
            (ctx.cfg.workdir / "big.tsv.gz.part").rename(src)
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-b", str(BATCH), src)
    wait_for_rows(ctx, p, errpath)
    for s in signals:
        p.send_signal(s)
    t0 = time.monotonic()
    res = ctx.finish(p, errpath, timeout=60)
    ctx.expect_rc(res, want_rc)
    n = ctx.count()
    check(0 < n < ROWS, f"{n} rows committed; want some, not all (signal came too late?)")
    check(n % BATCH == 0, f"{n} rows committed: not a whole number of {BATCH}-row batches")
    ctx.expect_table(read_prefix(path, n + 1), limit=n, what="committed rows")
    return res, n, time.monotonic() - t0


@test(slow=True)
def test_sigint_keeps_whole_batches(ctx):
    res, n, dt = interrupted_import(ctx, [signal.SIGINT], 130)
    # no connection is left behind holding the rolled-back batch. pgfeed has hung up when it
    # exits, but the backend ends on its own a moment later: await that, for at most 10 s
    deadline = time.monotonic() + 10
    while True:
        left = ctx.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid();").strip()
        if left == "0" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check(left == "0", f"{left} server sessions left 10 s after pgfeed exited")


@test(slow=True)
def test_sigterm_keeps_whole_batches(ctx):
    interrupted_import(ctx, [signal.SIGTERM], 143)


@test(slow=True)
def test_sigint_gzip_source(ctx):
    interrupted_import(ctx, [signal.SIGINT], 130, gz=True)


@test(slow=True)
def test_second_sigint_exits_at_once(ctx):
    # the second SIGINT ends the process at once; whatever was committed is whole batches
    res, n, dt = interrupted_import(ctx, [signal.SIGINT, signal.SIGINT], 130)
    check(dt < 10, f"took {dt:.1f} s to exit after the second SIGINT")
