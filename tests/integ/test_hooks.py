"""Load hooks (--before SQL, --after SQL, @FILE) against the real server: the before hook
makes the table, the after hook adds keys once the rows are in and runs in the transaction
that marks the import finished; a failing hook names itself, and --resume runs a failed
after hook again without loading a row twice.

Each hook also writes a row to hook_log, so the tests count how often each one ran.
"""


from harness import NAMES_DDL, check, eq, kill_9_after_a_batch, test

LOG = "CREATE TABLE IF NOT EXISTS hook_log (hook text, at timestamptz DEFAULT now());"
BEFORE = (LOG + NAMES_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS") + ";\n"
          "INSERT INTO hook_log (hook) VALUES ('before');\n"
          "-- a comment on the last line, without a newline")
AFTER = ("ALTER TABLE names ADD PRIMARY KEY (nconst);\n"
         "CREATE INDEX names_name_idx ON names (primary_name);\n"
         "INSERT INTO hook_log (hook) VALUES ('after');")


def hook_runs(ctx, hook):
    return int(ctx.sql(f"SELECT count(*) FROM hook_log WHERE hook = '{hook}';").strip())


def indexes(ctx):
    return ctx.sql("SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'names'::regclass"
                   " ORDER BY indexrelid::regclass::text;").split()


def finished(ctx):
    return ctx.sql("SELECT finished FROM pgfeed_checkpoints WHERE target = 'names';").split()


@test()
def hooks_before_creates_the_table_and_after_adds_the_keys(ctx):
    data = ctx.gen(30_000, seed=21)
    path = ctx.write("in.tsv.gz", data, gz=True)
    before = ctx.write("before.sql", BEFORE)
    res = ctx.pgfeed("-t", "names", "-b", "7000", "--before", f"@{before}", "--after", AFTER,
                     "-v", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    eq(indexes(ctx), ["names_name_idx", "names_pkey"], "indexes made by the after hook")
    eq((hook_runs(ctx, "before"), hook_runs(ctx, "after")), (1, 1), "hook runs")
    eq(finished(ctx), ["t"], "checkpoint finished")
    ctx.expect_err(res, r"running the before hook")
    ctx.expect_err(res, r"running the after hook")
    # A finished import with --resume loads nothing and runs neither hook again.
    res = ctx.pgfeed("-t", "names", "--before", f"@{before}", "--after", AFTER, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"already finished")
    eq((hook_runs(ctx, "before"), hook_runs(ctx, "after")), (1, 1), "hook runs after --resume")
    ctx.expect_table(data)


@test()
def a_failing_before_hook_names_itself_and_imports_nothing(ctx):
    path = ctx.write("in.tsv", ctx.gen(100, seed=22))
    res = ctx.pgfeed("-t", "names", "--before",
                     NAMES_DDL + "; SELECT no_such_column FROM names;", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'pgfeed: error: before hook failed: column "no_such_column" does not '
                        r'exist\n')
    ctx.expect_err(res, r"detail: The before hook's transaction was rolled back; no row was "
                        r"imported")
    ctx.expect_err(res, r"sqlstate: 42703")
    # The hook's transaction is rolled back whole: its CREATE TABLE too.
    eq(ctx.sql("SELECT to_regclass('names') IS NULL;").strip(), "t", "table rolled back")


@test()
def a_failing_after_hook_keeps_the_rows_and_resume_runs_it_again(ctx):
    data = ctx.gen(20_000, seed=23)
    path = ctx.write("in.tsv", data)
    bad_after = AFTER.replace("(primary_name)", "(no_such_column)")
    res = ctx.pgfeed("-t", "names", "-b", "6000", "--before", BEFORE, "--after", bad_after, path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'error: after hook failed: column "no_such_column" does not exist')
    ctx.expect_err(res, r"--resume runs the after hook again")
    ctx.expect_table(data)  # every row committed
    eq(finished(ctx), ["f"], "checkpoint not finished")
    eq(indexes(ctx), [], "the after hook's transaction rolled back (its primary key too)")
    eq(hook_runs(ctx, "after"), 0, "after hook runs")
    # Without --resume the unfinished import is refused, and the before hook (which runs
    # first) is harmless because it is written to run again.
    res = ctx.pgfeed("-t", "names", "--before", BEFORE, "--after", AFTER, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"before hook is not run again when resuming")
    ctx.expect_table(data)  # nothing loaded twice
    eq(indexes(ctx), ["names_name_idx", "names_pkey"], "indexes")
    eq((hook_runs(ctx, "before"), hook_runs(ctx, "after")), (1, 1), "hook runs")
    eq(finished(ctx), ["t"], "checkpoint finished")


@test()
def hook_after_with_mode_replace_sees_the_new_table(ctx):
    ctx.create_names()
    ctx.sql("INSERT INTO names (nconst) VALUES ('old1'), ('old2');")
    data = ctx.gen(5_000, seed=24)
    path = ctx.write("in.tsv", data)
    res = ctx.pgfeed("-t", "names", "--mode", "replace", "--after",
                     "CREATE TABLE counted AS SELECT count(*) AS n FROM names;", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    eq(ctx.sql("SELECT n FROM counted;").strip(), "5000", "rows the after hook saw")


@test()
def hook_file_errors_are_usage_errors(ctx):
    path = ctx.write("in.tsv", ctx.gen(10, seed=25))
    res = ctx.pgfeed("-t", "names", "--after", f"@{ctx.tmp}/missing.sql", path)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'could not read file ".*missing\.sql" for --after: No such file')
    res = ctx.pgfeed("-t", "names", "--before", "", path)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'invalid value "" for --before: give SQL or @FILE')
    check(ctx.sql("SELECT to_regclass('names') IS NULL;").strip() == "t", "nothing ran")


@test()
def hooks_without_checkpoints(ctx):
    data = ctx.gen(3_000, seed=26)
    path = ctx.write("in.tsv", data)
    res = ctx.pgfeed("-t", "names", "--no-checkpoint", "-b", "1000", "--before", BEFORE,
                     "--after", AFTER, path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    eq(indexes(ctx), ["names_name_idx", "names_pkey"], "indexes")
    eq((hook_runs(ctx, "before"), hook_runs(ctx, "after")), (1, 1), "hook runs")
    eq(ctx.sql("SELECT to_regclass('pgfeed_checkpoints') IS NULL;").strip(), "t", "no state table")



@test()
def hook_after_with_upsert_delete_missing_sees_the_pruned_table_once_across_a_kill(ctx):
    """The after hook runs in --delete-missing's final transaction, after the delete: it
    counts the file's rows (not the 50 rows the delete removes), and it runs once although
    the first run is killed with -9 mid-import and the second resumes."""
    ctx.create_names()
    ctx.sql("ALTER TABLE names ADD PRIMARY KEY (nconst);"
            "INSERT INTO names (nconst, primary_name) SELECT 'old' || i, 'gone'"
            " FROM generate_series(1, 50) i;" + LOG)
    rows = 60_000
    path = ctx.gen_file(rows, seed=27)
    after = ("INSERT INTO hook_log (hook) SELECT 'after ' || count(*) FROM names;\n"
             "INSERT INTO hook_log (hook) SELECT 'keys ' || (to_regclass('names_pgfeed_keys')"
             " IS NULL);")
    args = ["-t", "names", "--mode", "upsert", "--delete-missing", "-j", "2", "-b", "2000",
            "--after", after]
    kill_9_after_a_batch(ctx, args, path, rows)
    eq(ctx.sql("SELECT count(*) FROM hook_log;").strip(), "0", "after hook runs before --resume")
    res = ctx.pgfeed(*args, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(path.read_bytes())
    eq(ctx.sql("SELECT hook FROM hook_log ORDER BY hook;").strip().split("\n"),
       [f"after {rows}", "keys true"], "what the after hook saw (once)")
    eq(finished(ctx), ["t"], "checkpoint finished")
    eq(ctx.sql("SELECT to_regclass('names_pgfeed_keys') IS NULL;").strip(), "t", "keys table gone")
    # Finished: a further --resume loads nothing and runs the hook no more.
    res = ctx.pgfeed(*args, "--resume", path)
    ctx.expect_rc(res, 0)
    eq(ctx.sql("SELECT count(*) FROM hook_log;").strip(), "2", "after hook runs in all")
