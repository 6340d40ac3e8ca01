"""Checkpoints and --resume / --restart against the real server.

Each test interrupts a real import (SIGINT or SIGKILL once a first batch is visible,
found by polling count(*), never by sleeping), then checks what the next run does:
the table must end up equal to the source exactly, no row missing and none twice.
"""

import re
import signal
import subprocess
import time

from harness import check, test
from test_signals import wait_for_rows

ROWS = 400_000
BATCH = 20_000


def big_file(ctx, gz=True):
    path = ctx.gen_file(ROWS, seed=91)
    if not gz:
        return path, path
    gzpath = ctx.cfg.workdir / "resume-big.tsv.gz"
    if not gzpath.exists():
        part = ctx.cfg.workdir / "resume-big.tsv.gz.part"
        with open(path, "rb") as f, open(part, "wb") as g:
            subprocess.run(["gzip", "-1", "-c"], stdin=f, stdout=g, check=True)
        part.rename(gzpath)
    return path, gzpath


def interrupt(ctx, src, sig, *extra, stdin_path=None):
    """Starts an import, sends sig once a batch is committed; returns rows committed."""
    args = ["-t", "names", "-b", str(BATCH), *extra]
    args.append("-" if stdin_path else src)
    p, errpath = ctx.spawn(*args, stdin_path=stdin_path)
    wait_for_rows(ctx, p, errpath)
    p.send_signal(sig)
    res = ctx.finish(p, errpath, timeout=60)
    ctx.expect_rc(res, {signal.SIGINT: 130, signal.SIGKILL: -9}[sig])
    n = ctx.count()
    check(0 < n < ROWS, f"{n} rows committed; want some, not all")
    check(n % BATCH == 0, f"{n} rows: not whole batches")
    return n


def checkpoint(ctx):
    out = ctx.sql("SELECT rows_committed, finished FROM pgfeed_checkpoints;").strip()
    return out.split("|")


def checkpoint_rows(ctx):
    """Rows the checkpoint counts: its prefix row and those of batches committed past it."""
    return int(ctx.sql("SELECT coalesce(sum(rows_committed), 0) FROM pgfeed_checkpoints;"))


@test(slow=True)
def test_sigint_guard_then_resume(ctx):
    data_path, gz = big_file(ctx)
    ctx.create_names()
    n = interrupt(ctx, gz, signal.SIGINT)
    check(checkpoint(ctx) == [str(n), "f"], f"checkpoint {checkpoint(ctx)}, want [{n}, f]")

    # Without --resume: refused, saying how many rows are committed, nothing added.
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), gz)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"unfinished import")
    ctx.expect_err(res, rf"\b{n} rows\b")
    ctx.expect_err(res, r"--resume")
    check(ctx.count() == n, f"the refused run changed the table: {ctx.count()} rows, want {n}")

    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", gz)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf"rows imported:\s+{ROWS - n}\b")
    ctx.expect_table(data_path.read_bytes(), what="table after --resume")
    check(checkpoint(ctx) == [str(ROWS), "t"], f"checkpoint {checkpoint(ctx)}, want finished")

    # Resuming a finished import does nothing.
    res = ctx.pgfeed("-t", "names", "--resume", gz)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"nothing to resume")
    check(ctx.count() == ROWS, f"{ctx.count()} rows after a no-op resume, want {ROWS}")


@test(slow=True)
def test_sigkill_then_resume(ctx):
    data_path, gz = big_file(ctx)
    ctx.create_names()
    n = interrupt(ctx, gz, signal.SIGKILL)
    row = checkpoint(ctx)
    check(row == [str(n), "f"], f"after kill -9 the checkpoint says {row}, table has {n}")
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", gz)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data_path.read_bytes(), what="table after kill -9 and --resume")


@test(slow=True)
def test_resume_plain_file_and_stdin(ctx):
    data_path, _ = big_file(ctx)
    ctx.create_names()
    # stdin has no validators; resume re-reads it and discards the committed part.
    n = interrupt(ctx, None, signal.SIGINT, stdin_path=data_path)
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", "-", stdin_path=data_path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf"rows imported:\s+{ROWS - n}\b")
    ctx.expect_table(data_path.read_bytes(), what="table after resuming stdin")


@test(slow=True)
def test_changed_source_refused(ctx):
    data_path, _ = big_file(ctx)
    src = ctx.tmp / "changing.tsv"
    src.write_bytes(data_path.read_bytes())
    ctx.create_names()
    n = interrupt(ctx, src, signal.SIGINT)
    with open(src, "ab") as f:
        f.write(b"nm9999999\tLate Addition\t1970\t\\N\tactor\ttt0000001\n")
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", src)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"source changed")
    check(ctx.count() == n, f"a refused resume changed the table: {ctx.count()} rows, want {n}")


@test(slow=True)
def test_restart(ctx):
    data_path, gz = big_file(ctx)
    ctx.create_names()
    n = interrupt(ctx, gz, signal.SIGINT)
    # --restart without --truncate: the committed rows stay, the import starts over.
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--restart", gz)
    ctx.expect_rc(res, 0)
    check(ctx.count() == n + ROWS, f"{ctx.count()} rows, want {n} kept + {ROWS}")
    # Interrupt again, then --restart --truncate: exactly the file.
    ctx.sql("TRUNCATE names;")
    ctx.sql("DELETE FROM pgfeed_checkpoints;")
    n = interrupt(ctx, gz, signal.SIGINT)
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--restart", "--truncate", gz)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data_path.read_bytes(), what="table after --restart --truncate")


@test()
def test_resume_with_other_options_refused(ctx):
    data = ctx.gen(3000, seed=5)
    ctx.create_names()
    # A run that fails at line 2001 leaves a checkpoint after 2 batches.
    bad = ctx.write("small-bad.tsv", ctx.gen(3000, seed=5, bad_line=2500))
    res = ctx.pgfeed("-t", "names", "-b", "1000", bad)
    ctx.expect_rc(res, 1)
    check(ctx.count() == 2000, f"{ctx.count()} rows, want the 2 batches before line 2500")
    # Same job key needs the same path: fix the file in place and resume with another null.
    bad.write_bytes(data)
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--resume", "--null", "NULL", bad)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"options differ|source changed")
    check(ctx.count() == 2000, "the refused resume changed the table")


@test()
def test_resume_after_bad_line_fixed_in_place(ctx):
    """The documented way to recover from a bad row: fix the file, --restart is not needed
    when the file keeps its size; here the fix changes the size, so the resume is refused
    and --restart --truncate imports the fixed file exactly."""
    data = ctx.gen(3000, seed=6)
    bad = ctx.write("fixme.tsv", ctx.gen(3000, seed=6, bad_line=2500))
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "1000", bad)
    ctx.expect_rc(res, 1)
    bad.write_bytes(data)
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--resume", bad)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"source changed")
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--restart", "--truncate", bad)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data, what="fixed file after --restart --truncate")
    check(ctx.sql("SELECT finished FROM pgfeed_checkpoints;").strip() == "t",
          "checkpoint not marked finished")


@test(slow=True)
def test_backend_terminated_mid_import_is_retried(ctx):
    """pg_terminate_backend of pgfeed's backend: the run reconnects, resumes from its last
    checkpoint and still ends with exactly the source's rows."""
    data_path, gz = big_file(ctx)
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-b", str(BATCH), "--retries", "3", gz)
    wait_for_rows(ctx, p, errpath)
    killed = ctx.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = 'pgfeed' AND datname = current_database();").strip()
    check(killed == "1", f"terminated {killed} backends, want 1")
    res = ctx.finish(p, errpath, timeout=120)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"retrying in")
    ctx.expect_err(res, r"retries:\s+1\b")
    ctx.expect_err(res, rf"rows imported:\s+{ROWS}\b")
    ctx.expect_table(data_path.read_bytes(), what="table after a terminated backend")


@test()
def test_backend_terminated_without_retries_fails(ctx):
    from test_http import hold_lock, wait_until_blocked_on_lock

    data = ctx.gen(50_000, seed=92)
    path = ctx.write("t.tsv", data)
    ctx.create_names()
    # Hold a lock so the import is surely connected and waiting when its backend goes.
    _, release = hold_lock(ctx)
    try:
        p, errpath = ctx.spawn("-t", "names", "--retries", "0", path)
        wait_until_blocked_on_lock(ctx)
        ctx.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'pgfeed' AND datname = current_database();")
        res = ctx.finish(p, errpath, timeout=60)
    finally:
        release()
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: .*(connection|terminat)", re.M)
    check(ctx.count() == 0, "rows committed by a failed run")


def http_resume(ctx, **faults):
    """Interrupts an HTTP import of the big gzip file, resumes it; returns (log, restart)."""
    from test_http import Httpd, range_starts

    data_path, gz = big_file(ctx)
    (ctx.tmp / "big.tsv.gz").write_bytes(gz.read_bytes())
    ctx.create_names()
    srv = Httpd(ctx.tmp)
    try:
        url = srv.url("big.tsv.gz", **faults)
        n = interrupt(ctx, url, signal.SIGINT)
        restart = int(ctx.sql("SELECT raw_offset FROM pgfeed_checkpoints;").strip())
        srv.log(clear=True)
        res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", url)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, rf"rows imported:\s+{ROWS - n}\b")
        ctx.expect_table(data_path.read_bytes(), what="table after resuming over HTTP")
        return range_starts(srv.log()), restart
    finally:
        srv.stop()


@test(slow=True)
def test_http_resume_mid_stream_with_range(ctx):
    """The resumed run asks only for the rest: Range from the checkpoint's restart point."""
    starts, restart = http_resume(ctx)
    check(restart > 0, "the checkpoint has no restart point past byte 0")
    check(starts and starts[0] == restart,
          f"the resumed run should ask for bytes={restart}-, the server saw {starts}")


@test(slow=True)
def test_http_resume_when_server_ignores_range(ctx):
    """A server that answers 200 to the Range request: read again, drop, still exact."""
    starts, restart = http_resume(ctx, norange=1)
    check(restart > 0, "the checkpoint has no restart point past byte 0")
    check(starts and starts[0] == restart, f"a Range request was expected first: {starts}")


@test(slow=True)
def test_http_resume_refuses_changed_source(ctx):
    """The file behind the URL was republished between the runs: --resume refuses it."""
    from test_http import Httpd

    data_path, gz = big_file(ctx)
    served = ctx.tmp / "big.tsv.gz"
    served.write_bytes(gz.read_bytes())
    ctx.create_names()
    srv = Httpd(ctx.tmp)
    try:
        url = srv.url("big.tsv.gz")
        n = interrupt(ctx, url, signal.SIGINT)
        other = ctx.gen(ROWS // 2, seed=93)  # a new version: other bytes, other ETag
        served.write_bytes(__import__("gzip").compress(other, compresslevel=1, mtime=0))
        res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", url)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"chang")
        check(ctx.count() == n, f"the refused resume changed the table: {ctx.count()} rows, want {n}")
    finally:
        srv.stop()
