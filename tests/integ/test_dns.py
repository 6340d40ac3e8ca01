"""Name resolution never stalls the loop: HTTP sources whose host name answers late or never,
inside the private namespace of dnsns.py (a loopback DNS responder; no traffic leaves the
machine and the machine's resolver is never asked).

- a lookup that takes 3 s: the import succeeds, and --progress json keeps printing during the
  lookup (the loop turns; a gap in the lines is a stall);
- SIGINT during a lookup (one that answers late, and one that never answers): exit 130 at
  once, not when getaddrinfo gives up (cancel must not wait for libcurl's resolver thread);
- --connect-timeout expiring during a lookup: the error comes on time and progress keeps
  printing (libcurl must not join the resolver thread inside the loop).

The bounds, measured with an ASan build on 2 busy cores: progress lines every 0.05 s came at
most 0.064 s apart during a lookup, so a gap over 0.5 s is a stall; exit after SIGINT took
0.03 s, so 1 s (1.5 s when the name never answers) leaves a wide margin. Before
CURLOPT_QUICK_EXIT the same runs took 3.5 s (SIGINT 0.5 s into a 4 s lookup) and 9.6 s (a name
that never answers) to exit after SIGINT, and --connect-timeout 1 froze the loop for 9.0 s
(no progress line) and ended the run at 10.1 s: three of the four cases failed.

The database's host name (dns_db_*, through a forwarder from 127.0.0.1 to the cluster's
socket): a 2 s lookup imports with progress lines <= 0.5 s apart; with -j 4 the name is
asked once (one A query) and the run takes about one delay; connect_timeout=1 during a lookup
that never answers fails with 'could not resolve host "X": timed out after 1 s' within 1.5 s;
NXDOMAIN fails with 'could not translate host name "X" to address'; a host list skips a name
that does not resolve; SIGINT during a lookup exits 130 within 1 s. Before pg_resolve.c all
five of the first cases failed: libpq resolved inside PQconnectPoll, so no progress line came
for 2.0 s, -j 4 asked four times one after another (8.7 s), connect_timeout=1 ended at
10.4 s, the NXDOMAIN message was libpq's under "could not connect to the database server",
and the exit after SIGINT took 3.5 s.

Run alone with:  /usr/bin/python3 tests/integ/test_dns.py [-k dns_...]
"""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dnsns  # noqa: E402
from harness import (Failure, Result, Skip, check, clean_env, parse_dsv, rows_eq,  # noqa: E402
                     sanitizer_check, test)

MAX_GAP = 0.5  # seconds between progress lines while a lookup is pending
SLOW = "slow.pgfeed.test"
NEVER = "never.pgfeed.test"


def ns_run(argv, cfg, timeout):
    """Runs argv in the namespace with cfg (dnsns.inner_main); the report, with rep["res"]
    the run as a harness Result (sanitizer reports checked)."""
    cfg = dict(cfg, argv=argv, timeout=timeout)
    try:
        rep = dnsns.run_in_ns(cfg, timeout=timeout + 30)
    except RuntimeError as e:
        raise Failure(str(e))
    err = "\n".join(ln for _, ln in rep["stderr"])
    res = Result(argv, rep["rc"], rep["stdout"], err, rep["elapsed"])
    sanitizer_check(res)
    rep["res"] = res
    return rep


def in_ns(ctx, host, args, names=None, never=(), sigint_after_query=None, timeout=60):
    """pgfeed -d ... -t names ARGS http://HOST:PORT/names.tsv.gz inside the namespace."""
    why = dnsns.available()
    if why:
        raise Skip(why)
    env = {k: v for k, v in clean_env().items() if "proxy" not in k.lower()}
    url = f"http://{host}:{{port}}/names.tsv.gz"
    argv = ctx.argv(["-t", "names", *args, url])
    cfg = {"names": names or {}, "never": list(never), "httpd_root": str(ctx.tmp),
           "argv": argv, "env": env, "sigint_after_query": sigint_after_query,
           "timeout": timeout}
    return ns_run(argv, cfg, timeout)


def data(ctx, rows=20000, seed=11):
    d = ctx.gen(rows, seed=seed)
    ctx.write("names.tsv.gz", d, gz=True)
    ctx.create_names()
    return sorted(parse_dsv(d, nfields=6))


def first_query(rep, name):
    ts = [t for t, n, _ in rep["queries"] if n == name]
    check(ts, f"no DNS query for {name}: {rep['queries']}")
    return ts[0]


def progress_times(rep):
    return [t for t, ln in rep["stderr"] if ln.startswith("{")]


def expect_no_gap(rep, start, end, what):
    """Progress lines came all through [start, end], none more than MAX_GAP apart."""
    ts = [t for t in progress_times(rep) if start <= t <= end]
    pts = [start] + ts + [end]
    gap = max(b - a for a, b in zip(pts, pts[1:]))
    check(len(ts) >= 2 and gap <= MAX_GAP,
          f"{what}: {len(ts)} progress lines in [{start:.2f}, {end:.2f}] s, longest gap "
          f"{gap:.2f} s (want <= {MAX_GAP}): the loop stalled\n{rep['res'].describe()}")
    return gap


@test(name="dns_slow_lookup_import_and_progress")
def test_dns_slow_lookup(ctx):
    want = data(ctx)
    rep = in_ns(ctx, SLOW, ["--progress", "json", "--progress-interval", "0.05"],
                names={SLOW: 3.0})
    ctx.expect_rc(rep["res"], 0)
    rows_eq(ctx.rows(), want, "names")
    q = first_query(rep, SLOW)
    check(rep["elapsed"] >= q + 3.0, f"finished at {rep['elapsed']} s: the lookup was not slow")
    expect_no_gap(rep, q, q + 3.0, "during the 3 s lookup")


@test(name="dns_sigint_during_slow_lookup")
def test_dns_sigint_slow(ctx):
    data(ctx)
    rep = in_ns(ctx, SLOW, ["--progress", "none"], names={SLOW: 4.0}, sigint_after_query=0.5)
    ctx.expect_rc(rep["res"], 130)
    check(rep["exit_after_sigint"] <= 1.0,
          f"exited {rep['exit_after_sigint']} s after SIGINT (want <= 1.0)")
    check(ctx.count() == 0, "rows landed")


@test(name="dns_sigint_lookup_never_answers")
def test_dns_sigint_never(ctx):
    data(ctx)
    rep = in_ns(ctx, NEVER, ["--progress", "none"], never=[NEVER], sigint_after_query=0.5)
    ctx.expect_rc(rep["res"], 130)
    check(rep["exit_after_sigint"] <= 1.5,
          f"exited {rep['exit_after_sigint']} s after SIGINT (want <= 1.5)")


@test(name="dns_connect_timeout_during_lookup")
def test_dns_connect_timeout(ctx):
    data(ctx)
    rep = in_ns(ctx, NEVER, ["--connect-timeout", "1", "--retries", "0", "--progress", "json",
                             "--progress-interval", "0.05"], never=[NEVER])
    res = rep["res"]
    check(res.rc not in (0, 130), f"want an error exit\n{res.describe()}")
    ctx.expect_err(res, r"resolve|timed? ?out")
    q = first_query(rep, NEVER)
    check(rep["elapsed"] <= q + 2.5,
          f"exited at {rep['elapsed']} s, lookup began at {q} s: the 1 s timeout was late")
    expect_no_gap(rep, q, rep["elapsed"] - 0.1, "until the connect timeout")
    last = json.loads([ln for _, ln in rep["stderr"] if ln.startswith("{")][-1])
    check(last.get("done") is True, f"last progress line {last}")


# ---------------------------------------------------------------- the database's host name

SLOWDB = "slowdb.pgfeed.test"
NXDB = "nx.pgfeed.test"


def db_in_ns(ctx, host, args, conn_extra="", names=None, never=(), sigint_after_query=None,
             timeout=60):
    """pgfeed -d "host=HOST port=PGPORT ..." -t names ARGS names.tsv.gz inside the namespace,
    PGPORT forwarded to the test cluster's socket."""
    why = dnsns.available()
    if why:
        raise Skip(why)
    db = f"host={host} port={{pgport}} dbname={ctx.db} user=postgres {conn_extra}".strip()
    argv = ctx.argv(["-d", db, "-t", "names", *args, str(ctx.tmp / "names.tsv.gz")], db=False)
    cfg = {"names": names or {}, "never": list(never), "argv": argv, "env": clean_env(),
           "pg_socket": f"{ctx.cfg.cluster.dir}/.s.PGSQL.5432",
           "sigint_after_query": sigint_after_query, "timeout": timeout}
    return ns_run(argv, cfg, timeout)


PROGRESS = ["--progress", "json", "--progress-interval", "0.05"]


@test(name="dns_db_slow_lookup_import_and_progress")
def test_dns_db_slow_lookup(ctx):
    want = data(ctx)
    rep = db_in_ns(ctx, SLOWDB, PROGRESS, names={SLOWDB: 2.0})
    ctx.expect_rc(rep["res"], 0)
    rows_eq(ctx.rows(), want, "names")
    q = first_query(rep, SLOWDB)
    check(rep["elapsed"] >= q + 2.0, f"finished at {rep['elapsed']} s: the lookup was not slow")
    expect_no_gap(rep, q, q + 2.0, "during the 2 s lookup of the database host")


@test(name="dns_db_lookup_once_for_all_connections")
def test_dns_db_lookup_once(ctx):
    want = data(ctx)
    rep = db_in_ns(ctx, SLOWDB, ["-j", "4", *PROGRESS], names={SLOWDB: 2.0})
    ctx.expect_rc(rep["res"], 0)
    rows_eq(ctx.rows(), want, "names")
    a = [x for x in rep["queries"] if x[1] == SLOWDB and x[2] == dnsns.QTYPE_A]
    check(len(a) == 1, f"want one A query for {SLOWDB} with -j 4, got {rep['queries']}")
    q = a[0][0]
    check(rep["elapsed"] < q + 2 * 2.0,
          f"finished at {rep['elapsed']} s, lookup began at {q} s: lookups one after another?")
    expect_no_gap(rep, q, q + 2.0, "during the lookup with -j 4")


@test(name="dns_db_connect_timeout_during_lookup")
def test_dns_db_connect_timeout(ctx):
    data(ctx)
    rep = db_in_ns(ctx, NEVER, ["--retries", "0", *PROGRESS], conn_extra="connect_timeout=1",
                   never=[NEVER])
    res = rep["res"]
    check(res.rc not in (0, 130), f"want an error exit\n{res.describe()}")
    ctx.expect_err(res, rf'error: could not resolve host "{NEVER}": timed out after 1 s')
    ctx.expect_err(res, r"hint: Check the host name in --db")
    q = first_query(rep, NEVER)
    check(rep["elapsed"] <= q + 1.5,
          f"exited at {rep['elapsed']} s, lookup began at {q} s: connect_timeout=1 was late")
    expect_no_gap(rep, q, rep["elapsed"] - 0.1, "until connect_timeout")


@test(name="dns_db_nxdomain")
def test_dns_db_nxdomain(ctx):
    data(ctx)
    rep = db_in_ns(ctx, NXDB, ["--retries", "0", "--progress", "none"])
    res = rep["res"]
    check(res.rc not in (0, 130), f"want an error exit\n{res.describe()}")
    ctx.expect_err(res, rf'error: could not translate host name "{NXDB}" to address\n')
    ctx.expect_err(res, r"detail: Name or service not known\.")
    ctx.expect_err(res, r"hint: Check the host name in --db")


@test(name="dns_db_multi_host_skips_unresolved")
def test_dns_db_multi_host(ctx):
    """host=a,b: both looked up at once; a name that does not resolve is skipped, as libpq
    skips it, and the next host is used."""
    want = data(ctx)
    db = f"host={NXDB},{SLOWDB},{SLOWDB} port=1,{{pgport}},2 dbname={ctx.db} user=postgres"
    why = dnsns.available()
    if why:
        raise Skip(why)
    argv = ctx.argv(["-d", db, "-t", "names", "--progress", "none",
                     str(ctx.tmp / "names.tsv.gz")], db=False)
    rep = dnsns.run_in_ns({"names": {SLOWDB: 0.5}, "argv": argv, "env": clean_env(),
                           "pg_socket": f"{ctx.cfg.cluster.dir}/.s.PGSQL.5432", "timeout": 60})
    res = Result(argv, rep["rc"], rep["stdout"], "\n".join(ln for _, ln in rep["stderr"]),
                 rep["elapsed"])
    sanitizer_check(res)
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), want, "names")
    a = [x for x in rep["queries"] if x[1] == SLOWDB and x[2] == dnsns.QTYPE_A]
    check(len(a) == 1, f"want one A query for {SLOWDB} (named twice), got {rep['queries']}")


@test(name="dns_db_sigint_during_lookup")
def test_dns_db_sigint(ctx):
    data(ctx)
    rep = db_in_ns(ctx, SLOWDB, ["--progress", "none"], names={SLOWDB: 4.0},
                   sigint_after_query=0.5)
    ctx.expect_rc(rep["res"], 130)
    check(rep["exit_after_sigint"] <= 1.0,
          f"exited {rep['exit_after_sigint']} s after SIGINT (want <= 1.0)")
    check(ctx.count() == 0, "rows landed")


if __name__ == "__main__":
    sys.modules.setdefault("test_dns", sys.modules["__main__"])  # run.py may import us too
    import run as runner  # noqa: E402

    sys.exit(runner.main())
