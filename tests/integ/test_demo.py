"""scripts/demo.sh unattended: it finishes with stdin from /dev/null, and on a terminal that
has no size (where psql would page and less would wait for a key); it shows the commands it
runs, -d included, and ends with the commands to run next on one's own database.

The demo runs with this run's binaries (PGFEED, GEN_NAMES: no build) and imports into the
test's own database (PGFEED_DEMO_DB) instead of starting a server of its own."""

import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time

from harness import LIVE, REPO, check, clean_env, eq, test

DEMO = REPO / "scripts" / "demo.sh"
ROWS = 20000


def demo_env(ctx):
    env = clean_env({"PGFEED_NO_INSTALL": "1", "PGFEED": str(ctx.cfg.pgfeed),
                     "GEN_NAMES": str(ctx.cfg.gen_names), "PGFEED_DEMO_DB": ctx.conninfo,
                     "PAGER": "less", "TERM": "xterm"})
    env.pop("PSQL_PAGER", None)
    return env


def check_output(ctx, out):
    """The commands shown, the rows landed, the next steps printed."""
    check(re.search(r"^\$ \S*pgfeed -d '" + re.escape(ctx.conninfo) + r"' -t names -b 100000 "
                    r"http://127\.0\.0\.1:\d+/name\.basics\.tsv\.gz\r?$", out, re.M),
          f"the pgfeed command with its -d is not shown:\n{out}")
    check(re.search(r"^\$ psql -X -P pager=off .*-d '" + re.escape(ctx.conninfo) + "'", out,
                    re.M), f"the psql commands are not shown:\n{out}")
    nxt = out[out.find("== next"):] if "== next" in out else ""
    check(nxt, f"no next steps:\n{out}")
    for want in ("createdb imdb", "psql -d imdb -c \"CREATE TABLE names (",
                 "-d postgres:///imdb -t names https://datasets.imdbws.com/name.basics.tsv.gz"):
        check(want in nxt, f"the next steps lack {want!r}:\n{nxt}")
    eq(ctx.count(), ROWS, "rows the demo imported")


@test(name="demo_runs_unattended_with_stdin_from_dev_null")
def test_demo_dev_null(ctx):
    p = subprocess.run(["bash", str(DEMO), str(ROWS)], stdin=subprocess.DEVNULL,
                       capture_output=True, env=demo_env(ctx), timeout=120, cwd="/")
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    eq(p.returncode, 0, f"demo.sh exit status\n{out}")
    check("\033[" not in p.stdout.decode(), f"escape codes on a pipe:\n{out!r}")
    check_output(ctx, out)


def run_on_terminal_without_size(argv, env, timeout):
    """argv with stdin, stdout and stderr on a new pty (0 x 0, its controlling terminal);
    returns (exit status or None when it was still running at timeout, output)."""
    master, slave = pty.openpty()

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/",
                         start_new_session=True, preexec_fn=take_terminal)
    LIVE.add(p)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process let go of the terminal
                break
            if not chunk:
                break
            out += chunk
        try:
            rc = p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            rc = None
    finally:
        LIVE.discard(p)
        os.close(master)
    return rc, out.decode("utf-8", "replace")


@test(name="demo_never_waits_on_a_terminal_without_a_size")
def test_demo_terminal_without_size(ctx):
    rc, out = run_on_terminal_without_size(["bash", str(DEMO), str(ROWS)], demo_env(ctx), 90)
    check(rc is not None, f"demo.sh was still running after 90 s (waiting for input?):\n"
                          f"{out[-1500:]}")
    eq(rc, 0, f"demo.sh exit status\n{out}")
    check("(END)" not in out, f"a pager was started:\n{out[-1500:]}")
    check_output(ctx, out)
