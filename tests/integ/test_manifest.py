"""pgfeed --manifest against the real server and tests/httpd.py: several imports on one
loop (one HTTP context), --max-jobs, --fail-fast, per-import progress lines and summary
rows, exit statuses, manifest usage errors naming FILE:LINE, and kill -9 then --resume
(an import that had finished is not redone, its hooks not run again).
"""

import json
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import NAMES_DDL, Failure, check, eq, test  # noqa: E402
from test_http import Httpd  # noqa: E402

DDL = NAMES_DDL.replace("CREATE TABLE names", "CREATE TABLE IF NOT EXISTS {t}")


def names_like(t):
    return f'--before "{DDL.format(t=t)}"'


def json_lines(err):
    return [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]


def with_server(fn):
    def wrapped(ctx):
        ctx.srv = Httpd(ctx.tmp)
        try:
            fn(ctx)
        finally:
            ctx.srv.stop()

    wrapped.__name__ = fn.__name__
    return wrapped


def files(ctx, spec):
    """spec: {table: (rows, seed)} -> {table: data}, each written gzipped as TABLE.tsv.gz."""
    out = {}
    for t, (rows, seed) in spec.items():
        out[t] = ctx.gen(rows, seed=seed)
        ctx.write(f"{t}.tsv.gz", out[t], gz=True)
    return out


def manifest(ctx, lines, name="imports.manifest"):
    return ctx.write(name, "# pgfeed manifest\n\n" + "\n".join(lines) + "\n")


@test()
@with_server
def manifest_runs_imports_concurrently_each_exact(ctx):
    data = files(ctx, {"m_a": (40_000, 31), "m_b": (25_000, 32), "m_c": (30_000, 33)})
    plain = ctx.write("m_d.tsv", ctx.gen(10_000, seed=34))
    # slowed down so that they overlap on the loop
    lines = [f"{ctx.srv.url(f'{t}.tsv.gz', rate=400000)} -t {t} {names_like(t)}"
             for t in ("m_a", "m_b", "m_c")]
    lines.append(f"{plain} --table m_d -b 3000 {names_like('m_d')}"
                 " --after 'CREATE INDEX m_d_idx ON m_d (nconst)'")
    m = manifest(ctx, lines)
    res = ctx.pgfeed("--manifest", m, "-b", "5000", "--progress", "json",
                     "--progress-interval", "0.1")
    ctx.expect_rc(res, 0)
    for t, d in data.items():
        ctx.expect_table(d, table=t)
    ctx.expect_table(ctx.gen(10_000, seed=34), table="m_d")
    eq(ctx.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'm_d_idx';").strip(), "1",
       "the after hook's index")
    js = json_lines(res.err)
    check(all(list(j)[:2] == ["mode", "import"] for j in js), "every JSON line: mode, import")
    last = {j["import"]: j for j in js if j["done"]}
    eq(sorted(last), ["m_a", "m_b", "m_c", "m_d"], "imports with a last JSON line")
    check(all(j["status"] == "imported" for j in last.values()), f"statuses: {last}")
    eq(last["m_b"]["rows_committed"], 25_000, "m_b rows in its last line")
    # concurrently: an interim line of each HTTP import came before any of them ended (the
    # local m_d may end before the first progress tick on a loaded machine)
    first_done = min(i for i, j in enumerate(js) if j["done"] and j["import"] != "m_d")
    early = {j["import"] for j in js[:first_done]}
    check({"m_a", "m_b", "m_c"} <= early, f"imports seen running before the first ended: {early}")
    # the summary: a row per import and the total
    for t, n in (("m_a", 40_000), ("m_b", 25_000), ("m_c", 30_000), ("m_d", 10_000)):
        ctx.expect_err(res, rf"pgfeed: {t}\s+imported\s+{n}\s")
    ctx.expect_err(res, r"pgfeed: total\s+all 4\s+105000\s")


@test()
@with_server
def manifest_one_failure_does_not_stop_the_others(ctx):
    data = files(ctx, {"f_a": (20_000, 41), "f_b": (15_000, 42)})
    lines = [f"{ctx.srv.url('f_a.tsv.gz')} -t f_a {names_like('f_a')}",
             f"{ctx.srv.url('nothing-here.tsv.gz')} -t f_x {names_like('f_x')}",
             f"{ctx.srv.url('f_b.tsv.gz')} -t f_b {names_like('f_b')}"]
    res = ctx.pgfeed("--manifest", manifest(ctx, lines), "--max-jobs", "1", "--progress", "json")
    ctx.expect_rc(res, 1)
    ctx.expect_table(data["f_a"], table="f_a")
    ctx.expect_table(data["f_b"], table="f_b")
    ctx.expect_err(res, r'pgfeed: import "f_x" \(.*imports\.manifest line 4\) failed:\n'
                        r"pgfeed: error: .*404")
    ctx.expect_err(res, r"pgfeed: f_x\s+failed\s+0\s")
    ctx.expect_err(res, r"pgfeed: total\s+1 failed\s+35000\s")
    ctx.expect_err(res, r'pgfeed: not imported: "f_x" \(line 4, failed\)')
    # --max-jobs 1: each import ends before the next one's first line
    order = [j["import"] for j in json_lines(res.err)]
    runs = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    eq(runs, ["f_a", "f_x", "f_b"], "imports one after another")


@test()
@with_server
def manifest_fail_fast_stops_every_import(ctx):
    files(ctx, {"s_a": (200_000, 51)})
    # s_a's table exists beforehand: the 404 of s_x may stop s_a before its --before hook
    # has run, and then s_a must have no rows at all rather than a missing table
    ctx.sql(DDL.format(t="s_a") + ";")
    lines = [f"{ctx.srv.url('s_a.tsv.gz', rate=200000)} -t s_a {names_like('s_a')}",
             f"{ctx.srv.url('gone.tsv.gz', status=404)} -t s_x",
             f"{ctx.srv.url('s_a.tsv.gz')} -t s_later {names_like('s_later')}"]
    res = ctx.pgfeed("--manifest", manifest(ctx, lines), "--max-jobs", "2", "--fail-fast",
                     "-b", "5000")
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'--fail-fast: stopping every import after "s_x" failed')
    ctx.expect_err(res, r"pgfeed: s_later\s+not started\s+0\s")
    ctx.expect_err(res, r'not imported: "s_a"')
    n = ctx.count("s_a")
    check(n < 200_000 and n % 5000 == 0, f"s_a stopped with whole batches: {n}")
    eq(ctx.sql("SELECT to_regclass('s_later') IS NULL;").strip(), "t", "s_later never started")


@test()
@with_server
def manifest_kill_9_then_resume_redoes_only_the_unfinished(ctx):
    data = files(ctx, {"r_big": (150_000, 61), "r_small": (5_000, 62)})
    ctx.sql("CREATE TABLE hook_log (hook text);")
    after = "--after \"INSERT INTO hook_log VALUES ('after {t}')\""
    lines = [f"{ctx.srv.url('r_big.tsv.gz', rate=300000)} -t r_big {names_like('r_big')} "
             + after.format(t="r_big"),
             f"{ctx.srv.url('r_small.tsv.gz')} -t r_small {names_like('r_small')} "
             + after.format(t="r_small")]
    m = manifest(ctx, lines)
    p, errpath = ctx.spawn("--manifest", m, "-b", "10000", "--progress", "json",
                           "--progress-interval", "0.1")
    deadline = time.monotonic() + 60
    while True:  # until r_small is done and r_big has committed a batch
        js = json_lines(errpath.read_text("utf-8", "replace"))
        small_done = any(j["import"] == "r_small" and j["done"] for j in js)
        big = [j["rows_committed"] for j in js if j["import"] == "r_big"]
        if small_done and big and big[-1] > 0:
            break
        if p.poll() is not None or time.monotonic() > deadline:
            raise Failure(f"the run ended or stalled first: {errpath.read_text()[-2000:]}")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    ctx.finish(p, errpath)
    n = ctx.count("r_big")
    check(0 < n < 150_000, f"r_big has {n} rows after kill -9")
    res = ctx.pgfeed("--manifest", m, "-b", "10000", "--resume", "-v")
    ctx.expect_rc(res, 0)
    ctx.expect_table(data["r_big"], table="r_big")
    ctx.expect_table(data["r_small"], table="r_small")
    ctx.expect_err(res, r"r_small: the import of this source .* already finished")
    ctx.expect_err(res, r"r_big: resuming after input line")
    log = sorted(ctx.sql("SELECT hook FROM hook_log;").split("\n")[:-1])
    eq(log, ["after r_big", "after r_small"], "each after hook ran once")


@test()
def manifest_sigint_stops_all_and_exits_130(ctx):
    big = ctx.gen_file(400_000, seed=71)
    lines = [f"{big} -t i_a {names_like('i_a')}", f"{big} -t i_b {names_like('i_b')}"]
    p, errpath = ctx.spawn("--manifest", manifest(ctx, lines), "-b", "20000", "--progress",
                           "json", "--progress-interval", "0.1")
    deadline = time.monotonic() + 60
    while not any(j["rows_committed"] > 0
                  for j in json_lines(errpath.read_text("utf-8", "replace"))):
        if p.poll() is not None or time.monotonic() > deadline:
            raise Failure(f"no batch committed first: {errpath.read_text()[-2000:]}")
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 130)
    ctx.expect_err(res, r"SIGINT received; rolling back the batches in flight")
    ctx.expect_err(res, r"pgfeed: i_a\s+interrupted")
    for t in ("i_a", "i_b"):
        check(ctx.count(t) % 20_000 == 0, f"{t}: whole batches only")


@test()
def manifest_errors_are_usage_errors_naming_the_line(ctx):
    src = ctx.write("x.tsv", ctx.gen(10, seed=81))
    cases = [
        ([f"{src} -t a", f"{src} -t b --tabel c"], r'm\.manifest:4: unknown option "--tabel"'),
        ([f"{src} -t a -b lots"], r'm\.manifest:3: invalid value "lots" for --batch-rows'),
        ([f"{src} -t a", "", f"{src} -t A"],
         r'm\.manifest:5: table "A" is already loaded by line 3'),
        ([f"{src} -t a --before @nope.sql"], r'm\.manifest:3: could not read file ".*nope\.sql"'),
        ([f"{src} -t a --progress json"], r"m\.manifest:3: --progress applies to the whole run"),
        ([f"{src} -t 'a"], r"m\.manifest:3: unterminated quoted string"),
        ([f"{src}"], r"m\.manifest:3: no target table given"),
        (["- -t a", "- -t b"], r"m\.manifest:4: only one import may read standard input"),
        ([f"{src} -t a --truncate --mode replace"], r'context: the import on line 3 of ".*m\.manifest"'),
        (["# nothing"], r'manifest ".*m\.manifest" lists no import'),
    ]
    for lines, pattern in cases:
        m = manifest(ctx, lines, name="m.manifest")
        res = ctx.pgfeed("--manifest", m)
        ctx.expect_rc(res, 2)
        ctx.expect_err(res, pattern)
    res = ctx.pgfeed("--manifest", ctx.tmp / "missing.manifest")
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'could not open manifest ".*missing\.manifest": No such file')
    res = ctx.pgfeed("--manifest", m, src)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r"a source cannot be given with --manifest")
    res = ctx.pgfeed("-t", "a", "--max-jobs", "2", src)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r"--max-jobs applies to --manifest only")
    # nothing ran: no table, no checkpoint table
    eq(ctx.sql("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'pgfeed_checkpoints');")
       .strip(), "0", "relations made")
    check(not re.search(r"rows imported", res.err), "no summary after a usage error")


@test()
def manifest_bar_on_a_terminal_one_line_per_import_and_a_total(ctx):
    """Two imports held on a table lock: the screen shows a line for each and a total line,
    all narrower than the terminal; SIGUSR1 prints a status line per import; once the lock
    goes, the block is erased and the summary table printed."""
    import shlex
    import shutil
    import subprocess

    from harness import LIVE, Skip, psql_env
    from test_progress import capture, tmux, wait_screen

    if shutil.which("tmux") is None:
        raise Skip("tmux is not installed")
    big = ctx.gen_file(300_000, seed=72)
    for t in ("bar_first_import", "bar_second_import"):
        ctx.sql(NAMES_DDL.replace("TABLE names", f"TABLE {t}") + ";")
    locker = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", ctx.conninfo],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=psql_env())
    LIVE.add(locker)
    locker.stdin.write(b"BEGIN; LOCK TABLE bar_first_import, bar_second_import;\n"
                       b"SELECT 'locked';\n")
    locker.stdin.flush()
    eq(locker.stdout.readline().strip(), b"locked", "lock holder")
    m = manifest(ctx, [f"{big} -t bar_first_import", f"{big} -t bar_second_import"])
    done, pidfile = ctx.tmp / "exit-status", ctx.tmp / "pid"
    cmd = shlex.join(ctx.argv(["--manifest", str(m), "-b", "50000"]))
    width = 72
    tmux("kill-server", check_rc=False)
    try:
        tmux("new-session", "-d", "-s", "bar", "-x", str(width), "-y", "20",
             f"echo $$ > {pidfile}; {cmd}; echo $? > {done}; sleep 600")
        screen = wait_screen(lambda s: "total: 2 running" in s and "bar_second_import" in s
                             and "bar_first_import" in s, "a line per import and a total")
        lines = [ln for ln in screen.splitlines() if ln.strip()]
        eq(len([ln for ln in lines if ln.startswith("bar_")]), 2, f"import lines:\n{screen}")
        block = [ln for ln in lines if ln.startswith(("bar_", "total: "))]
        check(all(len(ln.rstrip()) < width for ln in block), f"a line too wide:\n{screen}")
        check(lines[-1].startswith("total: 2 running, 0 done, 0 waiting"), f"last:\n{screen}")
        # the shell exec'd nothing: pgfeed is the shell's child
        pid = subprocess.run(["pgrep", "-P", pidfile.read_text().strip()], capture_output=True,
                             text=True).stdout.split()
        eq(len(pid), 1, "pgfeed's pid")
        subprocess.run(["kill", "-USR1", pid[0]], check=True)
        wait_screen(lambda s: s.count("pgfeed: status:") >= 3, "status lines after SIGUSR1")
    finally:
        if locker.poll() is None:
            locker.stdin.write(b"ROLLBACK;\n")
            locker.stdin.close()
            locker.wait(30)
        LIVE.discard(locker)
    try:
        screen = wait_screen(lambda s: done.exists() and "pgfeed: total" in s, "the summary",
                             timeout=180)
        eq(done.read_text().strip(), "0", "exit status")
        check("total: " not in capture(), f"the progress block was left:\n{screen}")
        check(re.search(r"pgfeed: total\s+all 2\s+600000\s", screen), f"summary:\n{screen}")
    finally:
        tmux("kill-server", check_rc=False)


@test()
def manifest_lines_take_upsert_and_encoding(ctx):
    """Options main has beside the manifest's: an upsert --delete-missing import (its counts
    in the summary and its JSON lines, its after hook seeing the pruned table) next to a
    LATIN1 --encoding import, both from one manifest."""
    ctx.sql("CREATE TABLE kv (id int PRIMARY KEY, name text);"
            "INSERT INTO kv VALUES (1, 'one'), (2, 'two'), (9, 'nine');"
            "CREATE TABLE lat (id int, name text);")
    kv = ctx.write("kv.tsv", "id\tname\n1\tONE\n2\ttwo\n3\tthree\n")
    lat = ctx.write("lat.tsv", "id\tname\n1\tcittà\n2\tJosé\n".encode("latin-1"))
    m = manifest(ctx, [
        f"{kv} -t kv --mode upsert --key id --delete-missing"
        " --after 'CREATE TABLE kv_seen AS SELECT count(*) AS n FROM kv'",
        f"{lat} -t lat --encoding LATIN1",
    ])
    res = ctx.pgfeed("--manifest", m, "--progress", "json")
    ctx.expect_rc(res, 0)
    eq(ctx.sql("SELECT id, name FROM kv ORDER BY id;").strip().split("\n"),
       ["1|ONE", "2|two", "3|three"], "kv merged and pruned")
    eq(ctx.sql("SELECT n FROM kv_seen;").strip(), "3", "rows the after hook saw")
    eq(ctx.sql("SELECT name FROM lat ORDER BY id;").strip().split("\n"), ["città", "José"], "lat")
    ctx.expect_err(res, r'pgfeed: upsert of "kv": 1 inserted, 1 updated, 1 unchanged, '
                        r'1 deleted\n')
    last = {j["import"]: j for j in json_lines(res.err) if j["done"]}
    eq((last["kv"]["mode"], last["kv"]["rows_inserted"], last["kv"]["rows_deleted"]),
       ("upsert", 1, 1), "kv's last JSON line")
    eq(last["lat"]["mode"], "append", "lat's mode")
    check("rows_inserted" not in last["lat"], "no upsert counts for an append")
