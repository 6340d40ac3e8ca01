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
