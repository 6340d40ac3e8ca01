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
