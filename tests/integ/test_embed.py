"""examples/embed/embed.c as the test suite runs it: a libuv service with a 10 ms timer and a
TCP echo server (with its own client) on its loop, importing a file, a URL and pushed bytes at
once into a real PostgreSQL from a real loopback HTTP server, and canceling a fourth import.

Asserted: every import ended as asked (the three imported exactly, the fourth canceled with
whole batches only), the loop closed with nothing left on it, the timer kept ticking and the
echo kept answering, and neither the timer's worst lateness nor the echo's worst round trip
went over LATE_BOUND_MS -- also while the database's and the HTTP server's host names took
SLOW s to resolve (in a private network namespace with its own DNS responder, dnsns.py; no
lookup leaves the machine). Under valgrind (non-ASan builds): no error and no definite or
indirect leak after a normal end, a cancel and a failure.

LATE_BOUND_MS is a stall detector, not a speed claim: a blocking DNS lookup, connect or file
call would show as >= 1 s here. The figures pgfeed reaches on an idle machine are in the
README (Library).

The example is found next to the pgfeed binary given to run.py (BUILDDIR/examples/embed/embed).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dnsns  # noqa: E402
from harness import Failure, Skip, check, clean_env, parse_dsv, sanitizer_check, test  # noqa: E402
from harness import Result  # noqa: E402
from test_dns import ns_run  # noqa: E402
from test_http import Httpd  # noqa: E402

LATE_BOUND_MS = 250
SLOW = 2.0
TABLES = ("file", "url", "push", "cancel")


def example(ctx):
    exe = Path(ctx.cfg.pgfeed).parent / "examples" / "embed" / "embed"
    if not exe.exists():
        raise Failure(f"{exe} not built (meson builds examples/embed with pgfeed)")
    return str(exe)


def is_asan(exe):
    p = subprocess.run(["ldd", exe], capture_output=True, text=True)
    return "libasan" in p.stdout


def setup(ctx, rows=60000, seed=21):
    """The input (gzipped, and a bigger one for the import that is canceled) and the four
    tables; returns the expected rows."""
    data = ctx.gen(rows, seed=seed)
    ctx.write("names.tsv.gz", data, gz=True)
    ctx.write("big.tsv.gz", ctx.gen(400000, seed=seed + 1), gz=True)
    for t in TABLES:
        ctx.create_names(f"embed_{t}")
    return sorted(parse_dsv(data, nfields=6))


def run_example(ctx, argv, timeout=180, env=None):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=clean_env(env))
    res = Result(argv, p.returncode, p.stdout.decode(), p.stderr.decode(), 0)
    sanitizer_check(res)
    return res


def report(res):
    lines = [ln for ln in res.out.splitlines() if ln.startswith("{")]
    check(lines, f"no JSON report\n{res.describe()}")
    return json.loads(lines[-1])


def imports(rep):
    return {i["name"]: i for i in rep["imports"]}


def expect_outcome(ctx, res, want, batch_rows, what):
    rep = report(res)
    check(res.rc == 0, f"{what}: the example says an import did not end as asked\n"
          f"{res.describe()}")
    check(rep["loop_closed"], f"{what}: uv_loop_close found something left on the loop")
    got = imports(rep)
    for name in ("file", "url", "push"):
        if name in got:
            check(got[name]["status"] == "OK" and got[name]["rows_committed"] == len(want),
                  f"{what}: {name}: {got[name]}")
            check(sorted(map(tuple, ctx.rows(f"embed_{name}"))) == want,
                  f"{what}: table embed_{name} differs from the input")
    if "cancel" in got:
        c = got["cancel"]
        check(c["status"] == "PGFEED_ECANCELED", f"{what}: cancel: {c}")
        n = ctx.count("embed_cancel")
        check(n == c["rows_committed"] and n % batch_rows == 0 and n < 400000,
              f"{what}: canceled import left {n} rows (committed {c['rows_committed']}, "
              f"batches of {batch_rows})")
    t, e = rep["timer"], rep["echo"]
    check(t["ticks"] >= 10 and e["pings"] >= 5,
          f"{what}: the service's own work did not run: {t} {e}")
    check(t["worst_late_ms"] <= LATE_BOUND_MS and e["worst_rtt_ms"] <= LATE_BOUND_MS,
          f"{what}: the loop stalled: timer {t}, echo {e} (bound {LATE_BOUND_MS} ms)")
    return rep


@test(name="embed_file_url_push_and_cancel_on_one_loop")
def test_embed_all(ctx):
    want = setup(ctx)
    srv = Httpd(ctx.tmp)
    try:
        argv = [example(ctx), "--db", ctx.conninfo, "--batch-rows", "10000",
                "--file", str(ctx.tmp / "names.tsv.gz"),
                "--url", srv.url("names.tsv.gz"),
                "--push", str(ctx.tmp / "names.tsv.gz"),
                "--cancel", srv.url("big.tsv.gz", rate=2000000),
                "--cancel-after-ms", "400"]
        res = run_example(ctx, argv)
    finally:
        srv.stop()
    expect_outcome(ctx, res, want, 10000, "one loop")


@test(name="embed_slow_dns_for_database_and_http")
def test_embed_slow_dns(ctx):
    why = dnsns.available()
    if why:
        raise Skip(why)
    want = setup(ctx)
    db = f"host=db.pgfeed.test port={{pgport}} dbname={ctx.db} user=postgres"
    argv = [example(ctx), "--db", db, "--batch-rows", "10000",
            "--file", str(ctx.tmp / "names.tsv.gz"),
            "--url", "http://web.pgfeed.test:{port}/names.tsv.gz",
            "--push", str(ctx.tmp / "names.tsv.gz"),
            "--cancel", "http://never.pgfeed.test:{port}/big.tsv.gz",
            "--cancel-after-ms", "500"]
    cfg = {"names": {"db.pgfeed.test": SLOW, "web.pgfeed.test": SLOW},
           "never": ["never.pgfeed.test"], "httpd_root": str(ctx.tmp), "argv": argv,
           "env": {k: v for k, v in clean_env().items() if "proxy" not in k.lower()},
           "pg_socket": f"{ctx.cfg.cluster.dir}/.s.PGSQL.5432", "timeout": 120}
    rep = ns_run(argv, cfg, 120)
    res = rep["res"]
    out = expect_outcome(ctx, res, want, 10000, "slow DNS")
    check(rep["elapsed"] >= SLOW, f"finished in {rep['elapsed']} s: the lookups were not slow")
    # the timer ran all through the lookups: about one tick per 10 ms
    check(out["timer"]["ticks"] >= SLOW * 1000 / 10 * 0.5,
          f"{out['timer']['ticks']} ticks in {rep['elapsed']} s: the loop was held")


VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            "--track-fds=no", "-q"]


def valgrind_run(ctx, args, want_rc):
    exe = example(ctx)
    if shutil.which("valgrind") is None:
        raise Skip("valgrind not installed")
    if is_asan(exe):
        raise Skip("ASan build: valgrind runs on the build without sanitizers")
    env = {"DEBUGINFOD_URLS": ""}
    res = run_example(ctx, VALGRIND + [exe, "--db", ctx.conninfo] + args, timeout=300,
                      env=env)
    check(res.rc != 99, f"valgrind found errors or leaks\n{res.describe()}")
    check(res.rc == want_rc, f"want exit {want_rc}\n{res.describe()}")
    return report(res)


@test(name="embed_valgrind_clean_after_end_cancel_and_failure")
def test_embed_valgrind(ctx):
    data = ctx.gen(3000, seed=5)
    ctx.write("small.tsv.gz", data, gz=True)
    ctx.write("big.tsv.gz", ctx.gen(200000, seed=6), gz=True)
    for t in TABLES:
        ctx.create_names(f"embed_{t}")
    srv = Httpd(ctx.tmp)
    try:
        # a normal end and a cancel, on one loop
        rep = valgrind_run(ctx, ["--batch-rows", "1000",
                                 "--file", str(ctx.tmp / "small.tsv.gz"),
                                 "--url", srv.url("small.tsv.gz"),
                                 "--push", str(ctx.tmp / "small.tsv.gz"),
                                 "--cancel", srv.url("big.tsv.gz", rate=500000),
                                 "--cancel-after-ms", "1500"], 0)
        got = imports(rep)
        check(got["file"]["rows_committed"] == 3000 and got["cancel"]["status"] ==
              "PGFEED_ECANCELED", f"end and cancel: {rep}")
        # failures: a file that is not there, a URL that answers 404
        rep = valgrind_run(ctx, ["--file", str(ctx.tmp / "missing.tsv.gz"),
                                 "--url", srv.url("missing.tsv.gz")], 1)
        got = imports(rep)
        check(got["file"]["status"] == "PGFEED_ESOURCE" and got["url"]["status"] != "OK",
              f"failures: {rep}")
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.modules.setdefault("test_embed", sys.modules["__main__"])
    import run as runner  # noqa: E402

    sys.exit(runner.main())
