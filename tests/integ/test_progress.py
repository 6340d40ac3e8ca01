"""Progress people can watch and scripts can read: --progress json, the bar under a
real terminal (tmux), the summary, and SIGUSR1's status line.
"""

import json
import re
import signal
import shlex
import shutil
import subprocess
import time

from harness import Failure, Skip, check, test

ROWS = 200_000


def gz_file(ctx, rows=ROWS, seed=33):
    path = ctx.gen_file(rows, seed=seed)
    gz = ctx.cfg.workdir / f"progress-{rows}-{seed}.tsv.gz"
    if not gz.exists():
        with open(path, "rb") as f, open(str(gz) + ".part", "wb") as g:
            subprocess.run(["gzip", "-6", "-c"], stdin=f, stdout=g, check=True)
        (ctx.cfg.workdir / (gz.name + ".part")).rename(gz)
    return path, gz


COUNTERS = ["rows_read", "rows_sent", "rows_committed", "rows_rejected", "batches_committed",
            "bytes_read", "bytes_inflated", "lines_read", "retries"]


@test()
def test_json_lines_monotonic_and_exact(ctx):
    path, gz = gz_file(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "20000", "--progress", "json",
                     "--progress-interval", "0.05", gz)
    ctx.expect_rc(res, 0)
    lines = [ln for ln in res.err.splitlines() if ln.startswith("{")]
    check(len(lines) >= 2, f"want several JSON lines, got {len(lines)}:\n{res.err[-2000:]}")
    objs = []
    for ln in lines:
        try:
            objs.append(json.loads(ln))
        except ValueError as e:
            raise Failure(f"not JSON: {ln!r}: {e}")
    for k in COUNTERS + ["bytes_total", "elapsed_s", "done", "eta_s", "wait_server_s",
                         "wait_source_s", "rate_rows_s"]:
        check(all(k in o for o in objs), f"field {k} missing")
    for a, b in zip(objs, objs[1:]):
        for k in COUNTERS + ["elapsed_s", "wait_server_s", "wait_source_s"]:
            check(b[k] >= a[k], f"{k} decreased: {a[k]} -> {b[k]}")
    check(all(o["done"] is False for o in objs[:-1]), "done before the last line")
    last = objs[-1]
    check(last["done"] is True and last["status"] == "imported" and last["exit_code"] == 0,
          f"last line {last}")
    n = ctx.count()
    check(last["rows_committed"] == n == ROWS, f"last rows_committed {last['rows_committed']}, table {n}")
    check(last["rows_read"] == ROWS, f"rows_read {last['rows_read']}")
    size = gz.stat().st_size
    check(last["bytes_read"] == size and last["bytes_total"] == size,
          f"bytes_read {last['bytes_read']} / total {last['bytes_total']}, file {size}")
    check(last["bytes_inflated"] == path.stat().st_size, "bytes_inflated != the TSV's size")
    check(last["batches_committed"] == ROWS // 20000, f"batches {last['batches_committed']}")


@test()
def test_json_unknown_total_on_stdin(ctx):
    path, gz = gz_file(ctx, rows=20_000, seed=34)
    ctx.create_names()
    data = gz.read_bytes()
    res = ctx.pgfeed("-t", "names", "--progress", "json", "-", input=data)
    ctx.expect_rc(res, 0)
    last = json.loads([ln for ln in res.err.splitlines() if ln.startswith("{")][-1])
    check(last["bytes_total"] is None, f"bytes_total {last['bytes_total']} for a pipe")
    check(last["rows_committed"] == 20_000 == ctx.count(), "rows")


@test()
def test_json_failure_line(ctx):
    bad = ctx.write("bad.tsv", ctx.gen(5000, seed=35, bad_line=4001))
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--progress", "json", bad)
    ctx.expect_rc(res, 1)
    last = json.loads([ln for ln in res.err.splitlines() if ln.startswith("{")][-1])
    check(last["done"] is True and last["status"] == "failed" and last["exit_code"] == 1,
          f"last line {last}")
    check(last["rows_committed"] == ctx.count() == 3000, f"committed {last['rows_committed']}")


@test()
def test_summary_matches_table(ctx):
    path, gz = gz_file(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "30000", gz)
    ctx.expect_rc(res, 0)
    n = ctx.count()
    ctx.expect_err(res, rf"rows imported:\s+{n} ")
    ctx.expect_err(res, r"rows rejected:\s+0\b")
    ctx.expect_err(res, rf"batches committed:\s+{-(-ROWS // 30000)}\b")
    ctx.expect_err(res, rf"bytes read:\s+{gz.stat().st_size}\b")
    ctx.expect_err(res, rf"bytes inflated:\s+{path.stat().st_size}\b")
    ctx.expect_err(res, r"waited on:\s+server [0-9.]+ s, input [0-9.]+ s")


def tmux(*args, check_rc=True):
    return subprocess.run(["tmux", "-L", "pgfeedtest", *args], capture_output=True, text=True,
                          check=check_rc, timeout=30)


def capture():
    return tmux("capture-pane", "-p", "-t", "bar").stdout


def wait_screen(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture()
        if pred(screen):
            return screen
        time.sleep(0.05)
    raise Failure(f"screen never showed {what}:\n{screen}")


def bar_at_width(ctx, width, env=""):
    if shutil.which("tmux") is None:
        raise Skip("tmux is not installed")
    path, gz = gz_file(ctx)
    ctx.create_names()
    from test_http import hold_lock

    # Hold the table locked so the import stalls with a bar on the screen.
    _, release = hold_lock(ctx)
    done = ctx.tmp / "exit-status"
    cmd = env + shlex.join(ctx.argv(["-t", "names", "-b", "50000", str(gz)]))
    tmux("kill-server", check_rc=False)
    try:
        tmux("new-session", "-d", "-s", "bar", "-x", str(width), "-y", "20",
             f"{cmd}; echo $? > {done}; sleep 600")
        screen = wait_screen(lambda s: re.search(r"\d+%", s) and "rows" in s, "a progress bar")
        bar_lines = [ln for ln in screen.splitlines() if re.search(r"\d+%", ln)]
        check(len(bar_lines) == 1, f"want one bar line, got:\n{screen}")
        check(len(bar_lines[0].rstrip()) < width, f"bar wider than {width}: {bar_lines[0]!r}")
        check("{" not in screen, f"JSON on a terminal:\n{screen}")
        if width >= 60:
            check(re.search(r"\[#*\.*\]", bar_lines[0]), f"no [###...] bar at {width}: {bar_lines[0]!r}")
        release()
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(done.exists(), "pgfeed did not finish")
        check(done.read_text().strip() == "0", f"exit status {done.read_text()}")
        screen = wait_screen(lambda s: "rows imported" in s, "the summary")
        check(not re.search(r"\d+%", screen), f"the bar was left on the screen:\n{screen}")
        check(re.search(rf"rows imported:\s+{ROWS}\b", screen), f"summary:\n{screen}")
        check(ctx.count() == ROWS, "rows")
    finally:
        tmux("kill-server", check_rc=False)
        release()


@test()
def test_bar_wide_terminal(ctx):
    bar_at_width(ctx, 120)


@test()
def test_bar_narrow_terminal(ctx):
    bar_at_width(ctx, 44)


@test(name="progress_auto_json_draws_the_bar_on_a_terminal")
def test_bar_auto_json(ctx):
    bar_at_width(ctx, 100, env="PGFEED_PROGRESS=auto-json ")


def json_lines(res):
    return [json.loads(ln) for ln in res.err.splitlines() if ln.startswith("{")]


@test(name="progress_mode_from_environment")
def test_progress_env(ctx):
    path, gz = gz_file(ctx, rows=20000)
    ctx.create_names()
    # stderr is a pipe here: auto-json and PGFEED_PROGRESS=json print JSON, auto nothing
    for how, env, args, want in [
            ("--progress auto-json", None, ["--progress", "auto-json"], True),
            ("PGFEED_PROGRESS=json", {"PGFEED_PROGRESS": "json"}, [], True),
            ("PGFEED_PROGRESS=auto-json", {"PGFEED_PROGRESS": "auto-json"}, [], True),
            ("PGFEED_PROGRESS=json, --progress none", {"PGFEED_PROGRESS": "json"},
             ["--progress", "none"], False),
            ("no setting", None, [], False)]:
        ctx.sql("TRUNCATE names;")
        res = ctx.pgfeed("-t", "names", "--restart", *args, gz, env=env)
        ctx.expect_rc(res, 0)
        objs = json_lines(res)
        if want:
            check(objs and objs[-1]["done"] is True and objs[-1]["rows_committed"] == 20000,
                  f"{how}: want JSON lines ending with done\n{res.describe()}")
        else:
            check(not objs, f"{how}: want no JSON\n{res.describe()}")
    res = ctx.pgfeed("-t", "names", gz, env={"PGFEED_PROGRESS": "yes"})
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'error: invalid value "yes" for PGFEED_PROGRESS: use auto, auto-json')


@test()
def test_sigusr1_status_line(ctx):
    from test_http import hold_lock, wait_until_blocked_on_lock

    path, gz = gz_file(ctx)
    ctx.create_names()
    _, release = hold_lock(ctx)
    try:
        p, errpath = ctx.spawn("-t", "names", gz)
        # The job waits on the lock once it has sent its BEGIN; COPY: the server shows it.
        wait_until_blocked_on_lock(ctx)
        p.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while "status:" not in errpath.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        check("pgfeed: status:" in errpath.read_text(), "no status line after SIGUSR1")
        check(p.poll() is None, "SIGUSR1 ended the import")
    finally:
        release()
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 0)
    check(ctx.count() == ROWS, "rows")
    line = [ln for ln in res.err.splitlines() if "status:" in ln][0]
    check(re.search(r"waited [0-9.]+ s on the server", line), f"status line: {line}")
