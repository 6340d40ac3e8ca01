"""--mode replace against the real server: the shadow table, the swap, what is carried over,
what is refused, and a kill -9 during the load followed by --resume.

A reader in a second connection (one persistent psql) counts the table while a replace
runs: it must only ever see the old row count or the new one.
"""

import signal
import subprocess
import threading
import time

from harness import Failure, check, test

OLD = 3  # rows in the table before the replace


def names_with_extras(ctx):
    """names with a primary key, an index, a default, a grant, a comment, and OLD old rows."""
    ctx.create_names()
    ctx.sql(
        "ALTER TABLE names ADD PRIMARY KEY (nconst);"
        "CREATE INDEX names_name_idx ON names (primary_name);"
        "ALTER TABLE names ALTER COLUMN birth_year SET DEFAULT '1900';"
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgfeed_reader')"
        " THEN CREATE ROLE pgfeed_reader; END IF; END $$;"
        "GRANT SELECT ON names TO pgfeed_reader;"
        "COMMENT ON TABLE names IS 'people';"
        "INSERT INTO names (nconst) SELECT 'old' || i FROM generate_series(1, 3) i;"
    )


def relations(ctx):
    out = ctx.sql("SELECT relname FROM pg_class WHERE relname LIKE 'names%' AND relkind = 'r'"
                  " ORDER BY 1;")
    return out.split()


@test()
def replace_gives_exactly_the_files_rows_and_keeps_the_tables_shape(ctx):
    names_with_extras(ctx)
    data = ctx.gen(20_000, seed=5)
    path = ctx.write("in.tsv", data)
    res = ctx.pgfeed("-t", "names", "--mode", "replace", "-b", "5000", "--progress", "json",
                     path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    ctx.expect_err(res, r"mode:\s+replace \(the new table is in place\)")
    modes = {ln.split(",", 1)[0] for ln in res.err.splitlines() if ln.startswith("{")}
    check(modes == {'{"mode":"replace"'}, f"JSON lines' mode: {modes}")
    check(relations(ctx) == ["names"], f"tables left: {relations(ctx)}")
    idx = ctx.sql("SELECT indexrelid::regclass, indisprimary FROM pg_index"
                  " WHERE indrelid = 'names'::regclass ORDER BY indexrelid::regclass::text;").split()
    check(idx == ["names_name_idx|f", "names_pkey|t"], f"indexes: {idx}")
    con = ctx.sql("SELECT conname FROM pg_constraint WHERE conrelid = 'names'::regclass"
                  " AND contype = 'p';").strip()
    check(con == "names_pkey", f"primary key constraint: {con!r}")
    dflt = ctx.sql("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef"
                   " WHERE adrelid = 'names'::regclass ORDER BY adnum;").split("\n")
    check(any("1900" in d for d in dflt), f"defaults: {dflt}")
    check(ctx.sql("SELECT has_table_privilege('pgfeed_reader', 'names', 'SELECT');").strip()
          == "t", "the grant to pgfeed_reader is gone")
    check(ctx.sql("SELECT obj_description('names'::regclass, 'pg_class');").strip() == "people",
          "the table's comment is gone")
    fin = ctx.sql("SELECT finished FROM pgfeed_checkpoints;").strip()
    check(fin == "t", f"checkpoint finished: {fin!r}")


@test()
def replace_with_keep_old_keeps_the_old_rows(ctx):
    names_with_extras(ctx)
    data = ctx.gen(2_000, seed=6)
    res = ctx.pgfeed("-t", "names", "--mode", "replace", "--keep-old", ctx.write("in.tsv", data))
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    check(ctx.count("names_pgfeed_old") == OLD, "the old rows are not in names_pgfeed_old")
    check(relations(ctx) == ["names", "names_pgfeed_old"], f"tables: {relations(ctx)}")


class Reader(threading.Thread):
    """One psql session counting names again and again until stopped."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.p = subprocess.Popen(["psql", "-XAtq", "-v", "ON_ERROR_STOP=0", ctx.conninfo],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.seen = {}
        self.stop = threading.Event()

    def once(self):
        self.p.stdin.write("SELECT count(*) FROM names;\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        self.seen[line] = self.seen.get(line, 0) + 1

    def run(self):
        while not self.stop.is_set():
            self.once()

    def close(self):
        self.stop.set()
        self.join(60)
        self.p.stdin.close()
        self.p.wait(30)


@test(slow=True)
def replace_reader_sees_the_old_count_or_the_new_one_never_another(ctx):
    names_with_extras(ctx)
    rows = 200_000
    path = ctx.gen_file(rows, seed=8)
    reader = Reader(ctx)
    reader.once()
    reader.start()
    try:
        res = ctx.pgfeed("-t", "names", "--mode", "replace", "-b", "20000", path)
        reader.once()  # at least one count after the swap
    finally:
        reader.close()
    ctx.expect_rc(res, 0)
    seen = set(reader.seen)
    check(seen == {str(OLD), str(rows)}, f"the reader saw {reader.seen}")
    check(ctx.count() == rows, "wrong row count after the swap")


@test()
def replace_of_a_table_with_a_dependent_view_is_refused_unchanged(ctx):
    names_with_extras(ctx)
    ctx.sql("CREATE VIEW names_v AS SELECT nconst FROM names;")
    res = ctx.pgfeed("-t", "names", "--mode", "replace", ctx.write("in.tsv", ctx.gen(100)))
    check(res.rc != 0, "a replace under a dependent view succeeded")
    ctx.expect_err(res, r"cannot be replaced: these views depend on it: names_v")
    ctx.expect_err(res, r"hint: .*--mode append")
    check(ctx.count() == OLD, "the table changed")
    check(relations(ctx) == ["names"], f"tables: {relations(ctx)}")


@test()
def replace_refuses_truncate(ctx):
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--mode", "replace", "--truncate",
                     ctx.write("in.tsv", ctx.gen(10)))
    check(res.rc != 0, "--truncate with --mode replace was taken")
    ctx.expect_err(res, r"--truncate cannot be used with --mode replace")


@test()
def replace_leftover_shadow_is_refused_and_restart_drops_it(ctx):
    names_with_extras(ctx)
    ctx.sql("CREATE TABLE names_pgfeed_new (x int); INSERT INTO names_pgfeed_new VALUES (1);")
    data = ctx.gen(1_000, seed=9)
    path = ctx.write("in.tsv", data)
    res = ctx.pgfeed("-t", "names", "--mode", "replace", path)
    check(res.rc != 0, "a replace over a leftover shadow succeeded")
    ctx.expect_err(res, r"names_pgfeed_new is left from an earlier --mode replace import")
    ctx.expect_err(res, r"--restart")
    check(ctx.count() == OLD, "the table changed")
    res = ctx.pgfeed("-t", "names", "--mode", "replace", "--restart", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    check(relations(ctx) == ["names"], f"tables: {relations(ctx)}")


def wait_for_shadow_rows(ctx, p, errpath, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) before the kill:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        try:
            if ctx.count("names_pgfeed_new") > 0:
                return
        except Failure:
            pass
        time.sleep(0.02)
    raise Failure(f"no batch committed into the shadow within {timeout} s")


@test(slow=True)
def replace_kill_9_during_the_load_then_resume_gives_exactly_the_files_rows(ctx):
    names_with_extras(ctx)
    rows = 300_000
    path = ctx.gen_file(rows, seed=10)
    args = ["-t", "names", "--mode", "replace", "-b", "10000"]
    p, errpath = ctx.spawn(*args, path)
    wait_for_shadow_rows(ctx, p, errpath)
    p.send_signal(signal.SIGKILL)
    ctx.finish(p, errpath, timeout=60)
    n = ctx.count("names_pgfeed_new")
    check(0 < n < rows, f"{n} rows in the shadow; want some, not all")
    check(ctx.count() == OLD, "the target changed before the swap")
    res = ctx.pgfeed(*args, path)
    check(res.rc != 0, "a new run over the unfinished replace was taken without --resume")
    res = ctx.pgfeed(*args, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(path.read_bytes())
    check(relations(ctx) == ["names"], f"tables: {relations(ctx)}")


@test()
def replace_with_2_connections_in_binary_and_text(ctx):
    data = ctx.gen(30_000, seed=11)
    path = ctx.write("in.tsv", data)
    for fmt in ("binary", "text"):
        ctx.sql("DROP TABLE IF EXISTS names; DROP TABLE IF EXISTS pgfeed_checkpoints;")
        names_with_extras(ctx)
        res = ctx.pgfeed("-t", "names", "--mode", "replace", "-j", "2", "-b", "3000",
                         "--copy-format", fmt, path)
        ctx.expect_rc(res, 0)
        ctx.expect_table(data, what=f"names after a replace with -j 2 ({fmt})")
        check(relations(ctx) == ["names"], f"tables ({fmt}): {relations(ctx)}")


def swap_waiting_on_a_lock(ctx, p, errpath, timeout=120):
    """Waits until pgfeed's swap (the DO block naming the shadow) waits for a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) before the kill:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        # (pg_stat_activity keeps the query's first 1 kB: the swap is the DO block after BEGIN)
        n = ctx.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'BEGIN; DO $pgfeed$%';").strip()
        if n != "0":
            return
        time.sleep(0.02)
    raise Failure(f"the swap did not wait on the lock within {timeout} s")


@test(slow=True)
def replace_kill_9_during_the_swap_leaves_the_old_table_then_resume_swaps(ctx):
    names_with_extras(ctx)
    data = ctx.gen(20_000, seed=12)
    path = ctx.write("in.tsv", data)
    args = ["-t", "names", "--mode", "replace", "-b", "5000"]
    # a reader's open transaction holds the swap at its LOCK TABLE, after the index build
    locker = subprocess.Popen(["psql", "-XAtq", ctx.conninfo], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1)
    try:
        locker.stdin.write("BEGIN; SELECT count(*) FROM names;\n")
        locker.stdin.flush()
        check(locker.stdout.readline().strip() == str(OLD), "the reader's count")
        p, errpath = ctx.spawn(*args, path)
        swap_waiting_on_a_lock(ctx, p, errpath)
        p.send_signal(signal.SIGKILL)
        ctx.finish(p, errpath, timeout=60)
        locker.stdin.write("COMMIT;\n")
        locker.stdin.flush()
    finally:
        locker.stdin.close()
        locker.wait(30)
    # the killed client's backend takes the lock, runs the rest of the swap, then finds
    # its client gone and rolls the whole transaction back
    deadline = time.monotonic() + 60
    while ctx.sql("SELECT count(*) FROM pg_stat_activity"
                  " WHERE query LIKE 'BEGIN; DO $pgfeed$%';").strip() != "0":
        check(time.monotonic() < deadline, "the killed swap's backend is still there")
        time.sleep(0.05)
    check(ctx.count() == OLD, "the target is not the old table after the kill")
    check(ctx.count("names_pgfeed_new") == 20_000, "the shadow lost rows")
    check(relations(ctx) == ["names", "names_pgfeed_new"], f"tables: {relations(ctx)}")
    res = ctx.pgfeed(*args, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    check(relations(ctx) == ["names"], f"tables: {relations(ctx)}")
