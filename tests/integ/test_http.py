"""HTTP sources against tests/httpd.py (a real loopback server that misbehaves on request)
and the real PostgreSQL: exact imports, Range retries that heal dropped connections, servers
that ignore Range, HTTP errors, redirects, refused connections, backpressure from a locked
table with flat memory, --timeout, and credentials that never show.

Run alone with:  /usr/bin/python3 tests/integ/test_http.py [-k http_...]
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, LIVE, Failure, Skip, check, eq, parse_dsv, psql_env, rows_eq, test  # noqa: E402

HTTPD = REPO / "tests" / "httpd.py"
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


class Httpd:
    """tests/httpd.py serving one directory; the port comes from its first stdout line."""

    def __init__(self, root):
        self.p = subprocess.Popen([PYTHON, str(HTTPD), str(root)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        LIVE.add(self.p)
        line = self.p.stdout.readline().decode()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            err = self.p.stderr.read().decode() if self.p.poll() is not None else ""
            self.stop()
            raise Failure(f"httpd.py did not report its port: {line!r} {err}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path, **faults):
        q = "&".join(f"{k}={v}" for k, v in faults.items())
        return f"{self.base}/{path}" + (f"?{q}" if q else "")

    def log(self, clear=False):
        with urllib.request.urlopen(f"{self.base}/__log" + ("?clear=1" if clear else ""),
                                    timeout=10) as r:
            return [e for e in json.load(r) if e["method"] == "GET"]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        LIVE.discard(self.p)


def setup(ctx, rows=50000, seed=7, name="names.tsv.gz"):
    """A gzipped generated file served over HTTP; returns (server, expected rows, size)."""
    data = ctx.gen(rows, seed=seed)
    path = ctx.write(name, data, gz=True)
    ctx.create_names()
    srv = Httpd(ctx.tmp)
    return srv, sorted(parse_dsv(data, nfields=6)), path.stat().st_size


def run(ctx, srv, url, *args, **kw):
    return ctx.pgfeed("-t", "names", *args, url, **kw)


def exact(ctx, res, want):
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), want, "names")


def no_rows(ctx):
    eq(ctx.count(), 0, "rows in names")


def with_server(fn):
    """Stops the test's server however the test ends."""

    def wrapped(ctx):
        ctx.srv = None
        try:
            fn(ctx)
        finally:
            if ctx.srv:
                ctx.srv.stop()

    wrapped.__name__ = fn.__name__
    return wrapped


def serve(ctx, **kw):
    srv, want, size = setup(ctx, **kw)
    ctx.srv = srv
    return srv, want, size


# ---------------------------------------------------------------- exact imports


@test(name="http_gzip_exact")
@with_server
def test_http_gzip_exact(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz"), "--progress", "none")
    exact(ctx, res, want)
    log = srv.log()
    eq(len(log), 1, f"GET requests ({log})")
    check(log[0]["user_agent"].startswith("pgfeed/"), f"User-Agent names pgfeed: {log[0]}")
    eq(log[0]["range"], None, "Range on the first request")


@test(name="http_chunked_exact")
@with_server
def test_http_chunked_exact(ctx):
    srv, want, size = serve(ctx)
    exact(ctx, run(ctx, srv, srv.url("names.tsv.gz", chunked=1)), want)


@test(name="http_plain_tsv_exact")
@with_server
def test_http_plain_tsv_exact(ctx):
    data = ctx.gen(20000, seed=3)
    ctx.write("plain.tsv", data)
    ctx.create_names()
    ctx.srv = Httpd(ctx.tmp)
    exact(ctx, run(ctx, ctx.srv, ctx.srv.url("plain.tsv")), sorted(parse_dsv(data, nfields=6)))


@test(name="http_file_url_exact")
def test_http_file_url_exact(ctx):
    data = ctx.gen(20000, seed=4)
    path = ctx.write("f.tsv.gz", data, gz=True)
    ctx.create_names()
    exact(ctx, ctx.pgfeed("-t", "names", f"file://{path}"), sorted(parse_dsv(data, nfields=6)))
    # percent-escapes, localhost and a query are read as a URL parser reads them; a file:// URL
    # naming another host is refused (it used to become the relative path "host/...")
    spaced = ctx.write("a b.tsv.gz", data, gz=True)
    ctx.sql("TRUNCATE names; DROP TABLE pgfeed_checkpoints;")
    url = "file://localhost" + str(spaced).replace(" ", "%20") + "?x=1"
    exact(ctx, ctx.pgfeed("-t", "names", url), sorted(parse_dsv(data, nfields=6)))
    res = ctx.pgfeed("-t", "names", f"file://otherhost{path}")
    ctx.expect_rc(res, (1, 2))
    ctx.expect_err(res, r'file URL "file://otherhost/')


# ---------------------------------------------------------------- retries


def range_starts(log):
    out = []
    for e in log:
        m = re.match(r"bytes=(\d+)-", e["range"] or "")
        out.append(int(m.group(1)) if m else None)
    return out


@test(name="http_drop_healed_by_range")
@with_server
def test_http_drop_healed_by_range(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", drop=size // 3), "-v")
    exact(ctx, res, want)
    log = srv.log()
    starts = range_starts(log)
    check(len(log) >= 2 and starts[0] is None and any(s and s > 0 for s in starts[1:]),
          f"no Range request past byte 0 after the drop: {log}")
    # exactly once: the resumed request starts where the first one stopped being read
    eq(log[1]["status"], 206, "status of the Range request")
    check(log[1]["if_range"] and log[1]["if_range"].startswith('"'),
          f"Range not guarded by If-Range with the strong ETag: {log[1]}")
    check(re.search(r"retry", res.err, re.I), f"the retry is not logged with -v:\n{res.describe()}")
    # without -v too, and counted with the database's retries in the progress output
    ctx.sql("TRUNCATE names; DROP TABLE pgfeed_checkpoints;")
    res = run(ctx, srv, srv.url("names.tsv.gz", drop=size // 2), "--progress", "json")
    exact(ctx, res, want)
    ctx.expect_err(res, r"^pgfeed: warning: could not download .*retry 1 of", re.M)
    last = [l for l in res.err.splitlines() if l.startswith("{")][-1]
    check('"retries":1' in last.replace(" ", ""), f"retries not counted: {last}")


@test(name="http_ignored_range_rereads_and_discards")
@with_server
def test_http_ignored_range_rereads_and_discards(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", norange=1, drop=size // 2))
    exact(ctx, res, want)
    log = srv.log()
    check(len(log) >= 2 and log[1]["range"] and log[1]["status"] == 200,
          f"expected a Range request answered 200: {log}")


@test(name="http_weak_etag_uses_last_modified")
@with_server
def test_http_weak_etag_uses_last_modified(ctx):
    srv, want, size = serve(ctx)
    exact(ctx, run(ctx, srv, srv.url("names.tsv.gz", weak=1, drop=size // 2)), want)
    log = srv.log()
    check(len(log) >= 2 and log[1]["if_range"] and not log[1]["if_range"].startswith("W/"),
          f"If-Range must not carry a weak ETag: {log}")


@test(name="http_short_body_retried_with_range")
@with_server
def test_http_short_body_retried_with_range(ctx):
    srv, want, size = serve(ctx)
    exact(ctx, run(ctx, srv, srv.url("names.tsv.gz", short=size // 2)), want)
    starts = range_starts(srv.log())
    check(any(s and s > 0 for s in starts), f"no Range retry: {srv.log()}")


@test(name="http_short_body_no_retries_fails")
@with_server
def test_http_short_body_no_retries_fails(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", short=size // 2), "--retries", "0",
              "--batch-rows", "0")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"closed after \d+ of \d+ bytes|before the end")
    no_rows(ctx)


@test(name="http_source_changed_fails")
@with_server
def test_http_source_changed_fails(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", change=1, drop=size // 2), "--batch-rows", "0")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"changed")
    no_rows(ctx)


@test(name="http_503_then_200")
@with_server
def test_http_503_then_200(ctx):
    srv, want, size = serve(ctx)
    exact(ctx, run(ctx, srv, srv.url("names.tsv.gz", status=503, times=2)), want)
    eq([e["status"] for e in srv.log()], [503, 503, 200], "statuses")


@test(name="http_500_gives_up_after_retries")
@with_server
def test_http_500_gives_up_after_retries(ctx):
    srv, want, size = serve(ctx)
    url = srv.url("names.tsv.gz", status=500)
    res = run(ctx, srv, url, "--retries", "2")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"500")
    ctx.expect_err(res, re.escape(url))
    eq(len(srv.log()), 3, "requests (1 + 2 retries)")
    no_rows(ctx)


def reported_retries(res):
    """stats.retries as the CLI reports it: the summary's "retries:" line (left out when 0)
    and the last --progress json line."""
    m = re.search(r"^pgfeed: retries:\s+(\d+)$", res.err, re.M)
    lines = [ln for ln in res.err.splitlines() if ln.startswith("{")]
    check(lines, f"no --progress json line:\n{res.describe()}")
    return {"summary": int(m.group(1)) if m else 0, "json": json.loads(lines[-1])["retries"]}


@test(name="http_retries_counted_when_given_up")
@with_server
def test_http_retries_counted_when_given_up(ctx):
    """Two drops, each after new bytes (a retry that brings bytes restarts the --retries
    budget of failures in a row), then a 500 every time: with --retries 1 the download
    retries twice and gives up on the 500. The detail, the summary and the progress JSON
    all say 2, the requests made past the first."""
    srv, want, size = serve(ctx)
    url = srv.url("names.tsv.gz", drop=size // 4, times=2, then=500)
    res = run(ctx, srv, url, "--retries", "1", "--progress", "json")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: could not download .*HTTP status 500", re.M)
    eq([e["status"] for e in srv.log()], [200, 206, 500], "statuses")
    made = len(srv.log()) - 1
    m = re.search(r"^pgfeed: detail: Gave up after (\d+) retr", res.err, re.M)
    check(m, f"no \"Gave up after N retries\" detail:\n{res.describe()}")
    eq(int(m.group(1)), made, "retries in the detail")
    eq(reported_retries(res), {"summary": made, "json": made}, "retries reported")
    no_rows(ctx)


@test(name="http_retries_counted_when_healed")
@with_server
def test_http_retries_counted_when_healed(ctx):
    """Two drops healed by Range requests: exit 0, and the summary and the progress JSON
    count both retries (the requests made past the first)."""
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", drop=size // 4, times=2), "--progress", "json")
    exact(ctx, res, want)
    eq([e["status"] for e in srv.log()], [200, 206, 206], "statuses")
    made = len(srv.log()) - 1
    eq(len(re.findall(r"^pgfeed: warning: could not download .*; retry \d+ of", res.err, re.M)),
       made, "retries logged")
    eq(reported_retries(res), {"summary": made, "json": made}, "retries reported")


@test(name="http_404_fails_fast")
@with_server
def test_http_404_fails_fast(ctx):
    srv, want, size = serve(ctx)
    url = srv.url("missing.tsv.gz")
    res = run(ctx, srv, url)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"404")
    ctx.expect_err(res, re.escape(url))
    eq(len(srv.log()), 1, "requests (a 404 is not retried)")
    no_rows(ctx)


@test(name="http_redirect_followed")
@with_server
def test_http_redirect_followed(ctx):
    srv, want, size = serve(ctx)
    exact(ctx, run(ctx, srv, srv.url("old", redirect="/names.tsv.gz")), want)


@test(name="http_redirect_loop_fails")
@with_server
def test_http_redirect_loop_fails(ctx):
    srv, want, size = serve(ctx)
    res = run(ctx, srv, srv.url("names.tsv.gz", loop=1))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"redirect")
    check(len(srv.log()) <= 12, f"redirects are bounded: {len(srv.log())} requests")
    no_rows(ctx)


@test(name="http_connection_refused")
def test_http_connection_refused(ctx):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ctx.create_names()
    url = f"http://127.0.0.1:{port}/names.tsv.gz"
    res = ctx.pgfeed("-t", "names", url)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"connect")
    ctx.expect_err(res, re.escape(url))
    check(res.elapsed < 10, f"a refused connection should fail fast ({res.elapsed:.1f} s)")


@test(name="http_credentials_never_printed")
@with_server
def test_http_credentials_never_printed(ctx):
    srv, want, size = serve(ctx)
    for path in ("missing.tsv.gz", "names.tsv.gz?status=500"):
        url = f"http://alice:s3cr3tpw@127.0.0.1:{srv.port}/{path}"
        res = ctx.pgfeed("-t", "names", "-v", "--retries", "1", url)
        ctx.expect_rc(res, 1)
        check("s3cr3tpw" not in res.err and "s3cr3tpw" not in res.out,
              f"the password was printed:\n{res.describe()}")
        ctx.expect_err(res, re.escape(f"http://127.0.0.1:{srv.port}/{path}"))


# ---------------------------------------------------------------- backpressure and time


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


def asan_build(binary):
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return "libasan" in p.stdout


def run_sampled(ctx, *args, while_running=None):
    """Runs pgfeed in the background, sampling VmHWM; returns (Result, peak KiB)."""
    p, errpath = ctx.spawn(*args)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set() and p.poll() is None:
            v = vm_hwm_kib(p.pid)
            if v:
                peak[0] = max(peak[0], v)
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        if while_running:
            while_running(p)
        res = ctx.finish(p, errpath, timeout=300)
    finally:
        stop.set()
        t.join()
    return res, peak[0]


@test(name="http_locked_table_memory_flat", slow=True)
@with_server
def test_http_locked_table_memory_flat(ctx):
    rows = 400000
    data_path = ctx.gen_file(rows, seed=11)
    gz = ctx.tmp / "big.tsv.gz"
    with open(data_path, "rb") as fin, open(gz, "wb") as fout:
        subprocess.run(["gzip", "-1", "-c"], stdin=fin, stdout=fout, check=True)
    ctx.create_names()
    ctx.srv = srv = Httpd(ctx.tmp)
    big = gz.stat().st_size

    # baseline: a small import through the same path
    small = ctx.gen(2000, seed=12)
    ctx.write("small.tsv.gz", small, gz=True)
    ctx.sql("CREATE TABLE small (LIKE names INCLUDING ALL);")
    res0, base = run_sampled(ctx, "-t", "small", srv.url("small.tsv.gz"))
    ctx.expect_rc(res0, 0)

    locker = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", ctx.conninfo],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=psql_env())
    LIVE.add(locker)
    waited = [False]
    try:
        locker.stdin.write(b"BEGIN;\nLOCK TABLE names IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
        locker.stdin.flush()
        eq(locker.stdout.readline().strip(), b"locked", "lock holder")

        def hold(p):
            # keep the lock for 3 s after pgfeed starts waiting on it
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and p.poll() is None:
                n = ctx.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                            "WHERE c.relname = 'names' AND NOT l.granted;").strip()
                if n != "0":
                    waited[0] = True
                    break
                time.sleep(0.1)
            time.sleep(3)
            locker.stdin.write(b"COMMIT;\n")
            locker.stdin.close()
            locker.wait(30)

        res, peak = run_sampled(ctx, "-t", "names", "--batch-rows", "100000",
                                srv.url("big.tsv.gz", rate=40 << 20), while_running=hold)
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait()
        LIVE.discard(locker)
    ctx.expect_rc(res, 0)
    check(waited[0], "pgfeed never waited for the lock: the test did not exercise backpressure")
    eq(ctx.count(), rows, "rows imported")
    # content: the whole file, compared in the database against a second, lock-free copy
    check(peak > 0, "could not sample VmHWM")
    limit = base + 24 * 1024
    msg = (f"peak RSS {peak // 1024} MiB with a {big >> 20} MiB download held back by a lock; "
           f"baseline {base // 1024} MiB")
    check(peak <= limit, msg)
    if not asan_build(ctx.cfg.pgfeed):
        check(peak < 64 * 1024, msg)
    want = parse_dsv(open(data_path, "rb").read(), nfields=6)
    want.sort()
    rows_eq(ctx.rows(), want, "names")


@test(name="http_timeout_keeps_whole_batches", slow=True)
@with_server
def test_http_timeout_keeps_whole_batches(ctx):
    srv, want, size = serve(ctx, rows=50000)
    # about 60 KB/s: several 1000-row batches commit, the whole file would take ~25 s
    res = run(ctx, srv, srv.url("names.tsv.gz", rate=60000), "--timeout", "3",
              "--batch-rows", "1000")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"time")
    n = ctx.count()
    check(n % 1000 == 0 and n < len(want), f"{n} rows committed: want whole batches only")
    got = ctx.rows()
    # the committed rows are the file's first n rows
    first = sorted(parse_dsv(ctx.gen(50000, seed=7), nfields=6)[:n])
    rows_eq(got, first, "committed rows")


def hold_lock(ctx):
    """A psql session holding ACCESS EXCLUSIVE on names; returns (Popen, release())."""
    locker = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", ctx.conninfo],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=psql_env())
    LIVE.add(locker)
    locker.stdin.write(b"BEGIN;\nLOCK TABLE names IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
    locker.stdin.flush()
    eq(locker.stdout.readline().strip(), b"locked", "lock holder")

    def release():
        if locker.poll() is None:
            try:
                locker.stdin.write(b"ROLLBACK;\n")
                locker.stdin.close()
                locker.wait(30)
            except Exception:
                locker.kill()
                locker.wait()
        LIVE.discard(locker)

    return locker, release


def wait_until_blocked_on_lock(ctx, timeout=60):
    """Polls pg_stat_activity until pgfeed's backend waits on a lock (bounded, no sleep-as-sync)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = ctx.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfeed' AND datname = current_database()"
                    " AND wait_event_type = 'Lock';").strip()
        if n == "1":
            return
        time.sleep(0.05)
    raise Failure("pgfeed never waited on the lock")


@test(name="http_timeout_while_paused", slow=True)
@with_server
def test_http_timeout_while_paused(ctx):
    # the table stays locked: the transfer is paused by backpressure when --timeout fires
    srv, want, size = serve(ctx, rows=200000, seed=13)
    locker, release = hold_lock(ctx)
    try:
        res = run(ctx, srv, srv.url("names.tsv.gz"), "--timeout", "3", timeout=60)
    finally:
        release()
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"time")
    check(res.elapsed < 20, f"pgfeed took {res.elapsed:.1f} s to stop after --timeout 3")
    no_rows(ctx)


@test(name="http_sigint_during_backoff", slow=True)
@with_server
def test_http_sigint_during_backoff(ctx):
    import signal

    srv, want, size = serve(ctx, rows=1000)
    p, errpath = ctx.spawn("-t", "names", "--retries", "8", srv.url("names.tsv.gz", status=503))
    deadline = time.monotonic() + 30
    while len(srv.log()) < 3 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    check(p.poll() is None, "pgfeed ended before the retries")
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    res = ctx.finish(p, errpath, timeout=30)
    ctx.expect_rc(res, 130)
    check(time.monotonic() - t0 < 5, "SIGINT during a retry backoff should stop pgfeed at once")
    no_rows(ctx)


@test(name="http_resume_after_interrupt", slow=True)
@with_server
def test_http_resume_after_interrupt(ctx):
    import signal

    if not ctx.supports("--resume"):
        raise Skip("pgfeed has no --resume yet")
    srv, want, size = serve(ctx, rows=50000, seed=17)
    url = srv.url("names.tsv.gz", rate=150000, times=1)  # only the first request is slow
    p, errpath = ctx.spawn("-t", "names", "--batch-rows", "2000", url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None and ctx.count() < 6000:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 130)
    n = ctx.count()
    check(0 < n < len(want), f"{n} rows committed before the interrupt")
    # With a saved restart point the resumed run asks for the rest with Range (else it
    # re-reads from byte 0 and skips what was committed; exact() checks both).
    restart = ctx.sql("SELECT max(raw_offset) FROM pgfeed_checkpoints;") if ctx.sql(
        "SELECT to_regclass('pgfeed_checkpoints') IS NOT NULL;").strip() == "t" else ""
    srv.log(clear=True)
    res = run(ctx, srv, url, "--resume", "--batch-rows", "2000")
    exact(ctx, res, want)
    log = srv.log()
    if restart.strip() not in ("", "0"):
        starts = range_starts(log)
        check(starts and starts[0] and starts[0] > 0,
              f"the resumed run should start with a Range request past byte 0: {log}")


if __name__ == "__main__":
    sys.modules.setdefault("test_http", sys.modules["__main__"])  # run.py may import us too
    import run as runner  # noqa: E402

    sys.exit(runner.main())
