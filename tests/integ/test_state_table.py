"""The state table: used as it is when it exists, created only when missing, a clear error
when it can be neither, and --no-checkpoint for running without one.

A role without CREATE on the schema (PostgreSQL 15 gives PUBLIC none on public) imports
through a state table an administrator made and granted; without one it gets the error with
its hint, and with --no-checkpoint it imports and leaves no state table behind.
"""

import re

from harness import check, eq, test

ROLE = "pgfeed_nocreate"


def role_db(ctx):
    return re.sub(r"user=\S+", f"user={ROLE}", ctx.conninfo)


def make_role(ctx):
    ctx.sql(f"DROP ROLE IF EXISTS {ROLE}; CREATE ROLE {ROLE} LOGIN;"
            f" REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {ROLE};"
            f" GRANT SELECT, INSERT, TRUNCATE ON names TO {ROLE};")


def drop_role(ctx):
    ctx.sql(f"DROP OWNED BY {ROLE}; DROP ROLE {ROLE};")


def state_table_exists(ctx):
    return ctx.sql("SELECT to_regclass('pgfeed_checkpoints') IS NOT NULL;").strip() == "t"


@test()
def test_existing_state_table_used_without_create_privilege(ctx):
    data = ctx.gen(5000, seed=81)
    ctx.create_names()
    path = ctx.write("n.tsv", data)
    # An administrator makes the state table once (pgfeed's own statement) and grants it.
    res = ctx.pgfeed("-t", "names", "-b", "1000", path)
    ctx.expect_rc(res, 0)
    ctx.sql("TRUNCATE names; DELETE FROM pgfeed_checkpoints;")
    make_role(ctx)
    try:
        ctx.sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON pgfeed_checkpoints TO {ROLE};")
        res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", "-b", "1000", path, db=False)
        ctx.expect_rc(res, 0)
        ctx.expect_table(data)
        eq(ctx.sql("SELECT rows_committed, finished FROM pgfeed_checkpoints;").strip(), "5000|t",
           "the checkpoint the role wrote")
    finally:
        drop_role(ctx)


@test()
def test_state_table_that_cannot_be_made_says_what_to_do(ctx):
    data = ctx.gen(100, seed=82)
    ctx.create_names()
    make_role(ctx)
    try:
        check(not state_table_exists(ctx), "no state table before")
        res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", ctx.write("n.tsv", data), db=False)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r'error: cannot create the checkpoint table "pgfeed_checkpoints": '
                            r"permission denied for schema public")
        ctx.expect_err(res, r"hint: .*--state-table.*--no-checkpoint")
        eq(ctx.count(), 0, "rows imported")
        # The table exists but the role may not read it: the other hint.
        ctx.sql("CREATE TABLE pgfeed_checkpoints (job_key text PRIMARY KEY, source text NOT NULL,"
                " target text NOT NULL, options text NOT NULL, etag text, last_modified text,"
                " size bigint, rows_committed bigint NOT NULL, batches bigint NOT NULL,"
                " lines_committed bigint NOT NULL, decoded_offset bigint NOT NULL,"
                " raw_offset bigint NOT NULL, restart bytea, finished boolean NOT NULL,"
                " started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);")
        res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", ctx.tmp / "n.tsv", db=False)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r'error: cannot use the checkpoint table "pgfeed_checkpoints": '
                            r"permission denied for table pgfeed_checkpoints")
        ctx.expect_err(res, r"hint: Grant this role SELECT, INSERT, UPDATE and DELETE")
        eq(ctx.count(), 0, "rows imported")
    finally:
        drop_role(ctx)


@test()
def test_no_checkpoint_imports_without_a_state_table(ctx):
    data = ctx.gen(3000, seed=83)
    ctx.create_names()
    make_role(ctx)
    try:
        path = ctx.write("n.tsv", data)
        for jobs in ("1", "3"):
            ctx.sql("TRUNCATE names;")
            res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", "-b", "500", "-j", jobs,
                             "--no-checkpoint", path, db=False)
            ctx.expect_rc(res, 0)
            ctx.expect_err(res, r"batches committed:\s+6\b")
            ctx.expect_table(data, what=f"-j {jobs} --no-checkpoint")
        check(not state_table_exists(ctx), "--no-checkpoint made a state table")
        for flag in ("--resume", "--restart"):
            res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", "--no-checkpoint", flag, path,
                             db=False)
            ctx.expect_rc(res, 2)
            ctx.expect_err(res, rf"error: {flag} needs checkpoints, and --no-checkpoint turns "
                                r"them off")
        check("--no-checkpoint" in ctx.cfg.help_text(), "--help lists --no-checkpoint")
    finally:
        drop_role(ctx)


@test(name="state_table_created_by_another_import_meanwhile")
def test_state_table_made_meanwhile(ctx):
    """Two imports start together on a fresh database: both find no state table, both create
    it; PostgreSQL's CREATE TABLE IF NOT EXISTS is not atomic with its check, so the second
    gets a unique violation on pg_type (23505), which must not fail its import. Made
    deterministic: a session creates the table (pgfeed's own columns, LIKE a model table
    pgfeed made) and holds its transaction open until pgfeed's CREATE waits on it."""
    import subprocess
    import time

    from harness import LIVE, Failure, clean_env, psql_env

    data = ctx.gen(3000, seed=82)
    ctx.create_names()
    path = ctx.write("n.tsv", data)
    ctx.expect_rc(ctx.pgfeed("-t", "names", "--state-table", "ckpt_model", path), 0)
    ctx.sql("TRUNCATE names;")
    holder = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", ctx.conninfo],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=psql_env())
    LIVE.add(holder)
    p = None
    try:
        holder.stdin.write(b"BEGIN;\nCREATE TABLE pgfeed_checkpoints (LIKE ckpt_model INCLUDING ALL);"
                           b"\nSELECT 'made';\n")
        holder.stdin.flush()
        eq(holder.stdout.readline().strip(), b"made", "the other session's CREATE")
        p = subprocess.Popen(ctx.argv(["-t", "names", "-b", "1000", path]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        LIVE.add(p)
        deadline = time.monotonic() + 60
        while True:
            n = ctx.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfeed'"
                        " AND datname = current_database() AND wait_event_type = 'Lock';").strip()
            if n == "1":
                break
            if p.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"pgfeed never waited on the other CREATE (exit {p.poll()}): "
                              f"{p.stderr.read().decode() if p.poll() is not None else ''}")
            time.sleep(0.05)
        holder.stdin.write(b"COMMIT;\n")
        holder.stdin.close()
        holder.wait(30)
        out, err = p.communicate(timeout=120)
        check(p.returncode == 0, f"exit {p.returncode}: {err.decode()}")
        ctx.expect_table(data)
        eq(ctx.sql("SELECT rows_committed, finished FROM pgfeed_checkpoints;").strip(), "3000|t",
           "the checkpoint in the table the other session made")
    finally:
        for q in (holder, p):
            if q is not None and q.poll() is None:
                q.kill()
                q.wait()
            LIVE.discard(q)


@test()
def test_checkpoint_write_error_says_it_is_the_checkpoint(ctx):
    """A state table the role may read and insert into but not update or delete from: the
    first batch's checkpoint fails, and the error says it was writing the checkpoint."""
    data = ctx.gen(2000, seed=84)
    ctx.create_names()
    path = ctx.write("n.tsv", data)
    res = ctx.pgfeed("-t", "names", "-b", "1000", path)
    ctx.expect_rc(res, 0)
    ctx.sql("TRUNCATE names; DELETE FROM pgfeed_checkpoints;")
    make_role(ctx)
    try:
        ctx.sql(f"GRANT SELECT, INSERT ON pgfeed_checkpoints TO {ROLE};")
        res = ctx.pgfeed("-d", role_db(ctx), "-t", "names", "-b", "1000", path, db=False)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r'error: cannot write the checkpoint into the state table '
                            r'"pgfeed_checkpoints": permission denied for table pgfeed_checkpoints')
        ctx.expect_err(res, r"hint: Check that this role can write the state table")
        eq(ctx.count(), 0, "rows imported (the batch and its checkpoint are one transaction)")
    finally:
        drop_role(ctx)
