"""--wait-for-db: a batch job started together with its database (compose, Kubernetes) keeps
trying the first connection while the server is not up yet, and only then.

The server "comes up" for pgfeed when its socket appears: pgfeed gets a socket directory that
is empty, and the test links the real cluster's socket into it once pgfeed has said it waits
(read from its stderr, not timed). A server that never comes fails after the window with the
usual error; a failure that is no server-not-up-yet (an unknown role) is final at once; and
without the option the first failure is final, as before.
"""

import json
import os
import subprocess
import time

from harness import LIVE, check, clean_env, test

WAITING = "notice: waiting for the database server"


def db_in(ctx, sockdir):
    return f"host={sockdir} dbname={ctx.db} user=postgres"


def data(ctx):
    d = ctx.gen(20000, seed=91)
    ctx.create_names()
    return d, ctx.write("n.tsv.gz", d, gz=True)


@test(name="wait_for_db_until_the_server_socket_appears")
def test_wait_until_up(ctx):
    d, path = data(ctx)
    sockdir = ctx.tmp / "sock"
    sockdir.mkdir()
    argv = ctx.argv(["-d", db_in(ctx, sockdir), "-t", "names", "-b", "5000", "--wait-for-db", "60",
                     "--progress", "json", path], db=False)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    LIVE.add(p)
    err = []
    try:
        for raw in p.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            err.append(line)
            if WAITING in line:
                break
        check(any(WAITING in ln for ln in err), "pgfeed never said it waits:\n" + "\n".join(err))
        os.symlink(f"{ctx.cfg.cluster.dir}/.s.PGSQL.5432", sockdir / ".s.PGSQL.5432")
        _, rest = p.communicate(timeout=120)
        err += rest.decode("utf-8", "replace").splitlines()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        LIVE.discard(p)
    check(p.returncode == 0, f"exit {p.returncode}:\n" + "\n".join(err))
    ctx.expect_table(d)
    lines = [json.loads(ln) for ln in err if ln.startswith("{")]
    check(lines, "no JSON progress:\n" + "\n".join(err))
    last = lines[-1]
    check(last["retries"] == 0 and last["rows_committed"] == 20000,
          f"the wait is no retry: {last}")


@test(name="wait_for_db_gives_up_after_the_window")
def test_wait_gives_up(ctx):
    d, path = data(ctx)
    t0 = time.monotonic()
    res = ctx.pgfeed("-d", db_in(ctx, ctx.tmp / "never"), "-t", "names", "--wait-for-db", "1.5",
                     path, db=False)
    took = time.monotonic() - t0
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, WAITING)
    ctx.expect_err(res, r"error: could not connect to the database server")
    check(took >= 1.5, f"gave up after {took:.2f} s, before the 1.5 s window")
    # without the option the first failure is final
    res = ctx.pgfeed("-d", db_in(ctx, ctx.tmp / "never"), "-t", "names", path, db=False)
    ctx.expect_rc(res, 1)
    check(WAITING not in res.err, f"waited without --wait-for-db:\n{res.err}")


@test(name="wait_for_db_does_not_wait_on_a_refusal")
def test_wait_not_on_auth(ctx):
    d, path = data(ctx)
    t0 = time.monotonic()
    res = ctx.pgfeed("-d", f"host={ctx.cfg.cluster.dir} dbname={ctx.db} user=no_such_role_x",
                     "-t", "names", "--wait-for-db", "60", path, db=False)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'role "no_such_role_x" does not exist')
    check(WAITING not in res.err and time.monotonic() - t0 < 30,
          f"waited on a role that does not exist:\n{res.err}")


def start_waiting(ctx, argv, stdin):
    """pgfeed started with stdin; returns (Popen, stderr lines so far) once it says it waits."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=clean_env())
    LIVE.add(p)
    err = []
    for raw in p.stderr:
        err.append(raw.decode("utf-8", "replace").rstrip("\n"))
        if WAITING in err[-1]:
            break
    check(any(WAITING in ln for ln in err), "pgfeed never said it waits:\n" + "\n".join(err))
    return p, err


@test(name="wait_for_db_then_resume_a_pipe")
def test_wait_then_resume_pipe(ctx):
    """A pipe resumed with --wait-for-db: the attempt that waited had read stdin's first
    bytes already; the next one replays them, drops up to the checkpoint's restart point
    (well past those bytes) and reads the rest from the pipe: every row exactly once."""
    d = ctx.gen(60000, seed=92)
    ctx.create_names()
    # a first run over a pipe, killed once a batch is committed
    p = subprocess.Popen(ctx.argv(["-t", "names", "-b", "5000", "--progress", "none", "-"]),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=clean_env())
    LIVE.add(p)
    try:
        p.stdin.write(d[:len(d) // 2])
        p.stdin.flush()
        deadline = time.monotonic() + 60
        while ctx.count() == 0:
            check(p.poll() is None and time.monotonic() < deadline, "no batch committed")
            time.sleep(0.05)
        p.kill()
        p.wait()
    finally:
        LIVE.discard(p)
    n = ctx.count()
    check(0 < n < 60000 and n % 5000 == 0, f"{n} rows committed by the first run")
    # the resume, over a pipe, against a server that comes up only after pgfeed waited
    sockdir = ctx.tmp / "sock"
    sockdir.mkdir()
    src = ctx.write("n.tsv", d)
    feeder = subprocess.Popen(["cat", str(src)], stdout=subprocess.PIPE)  # a pipe, not a file
    LIVE.add(feeder)
    argv = ctx.argv(["-d", db_in(ctx, sockdir), "-t", "names", "-b", "5000", "--resume",
                     "--wait-for-db", "60", "--progress", "none", "-"], db=False)
    p = None
    try:
        p, err = start_waiting(ctx, argv, feeder.stdout)
        feeder.stdout.close()
        os.symlink(f"{ctx.cfg.cluster.dir}/.s.PGSQL.5432", sockdir / ".s.PGSQL.5432")
        _, rest = p.communicate(timeout=120)
        err += rest.decode("utf-8", "replace").splitlines()
    finally:
        for q in (p, feeder):
            if q is not None and q.poll() is None:
                q.kill()
                q.wait()
            LIVE.discard(q)
    check(p.returncode == 0, f"exit {p.returncode}:\n" + "\n".join(err))
    ctx.expect_table(d, what="table after a pipe resumed with a wait for the server")
