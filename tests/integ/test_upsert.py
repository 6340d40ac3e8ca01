"""--mode upsert against the real server: keys found or refused, rows merged by key with the
last row of a key in the file winning (also across batches merged by several connections),
the per-mode counts, --delete-missing, rejects in staging and refusals at the merge, and a
kill -9 in the middle followed by --resume.
"""

import json
import random
import re

from harness import Failure, check, eq, kill_9_after_a_batch, test

KV = "CREATE TABLE kv (id int PRIMARY KEY, name text NOT NULL, n int CHECK (n >= 0), extra text DEFAULT 'x');"


def tsv(rows, header=("id", "name", "n")):
    lines = ["\t".join(header)] if header else []
    lines += ["\t".join("\\N" if v is None else str(v) for v in r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def table(ctx, name="kv", cols="id, name, n, extra"):
    out = ctx.sql(f"SELECT {cols} FROM {name} ORDER BY 1;")
    return [tuple(ln.split("|")) for ln in out.split("\n") if ln]


def as_rows(d, extra="x"):
    return [(str(k), v[0], str(v[1]), extra) for k, v in sorted(d.items())]


def counts(res):
    m = re.search(r"mode:\s+upsert \((\d+) inserted, (\d+) updated, (\d+) unchanged, "
                  r"(\d+) deleted\)", res.err)
    if m is None:
        raise Failure(f"no upsert summary line:\n{res.err[-2000:]}")
    return tuple(int(x) for x in m.groups())


def merged(rows, keep_last=True, start=None):
    want = dict(start or {})
    for k, name, n in rows:
        if keep_last or k not in want:
            want[k] = (name, n)
    return want


@test()
def upsert_changes_some_rows_adds_some_and_keeps_the_last_of_a_repeated_key(ctx):
    for fmt in ("text", "binary"):
        ctx.sql(f"DROP TABLE IF EXISTS kv; {KV} DROP TABLE IF EXISTS pgfeed_checkpoints;"
                "INSERT INTO kv (id, name, n) VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3);")
        start = {1: ("one", 1), 2: ("two", 2), 3: ("three", 3)}
        rows = [(2, "TWO", 20), (4, "four", 4), (5, "five", 5), (4, "FOUR", 40), (4, "Four", 41),
                (3, "THREE", 30)]
        res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--copy-format", fmt, "-b", "4",
                         "--progress", "json", ctx.write("in.tsv", tsv(rows)))
        ctx.expect_rc(res, 0)
        eq(table(ctx), as_rows(merged(rows, start=start)), f"kv after the upsert ({fmt})")
        # 4 and 5 are new; 2, 3 were there, and 4 came back twice: 2 inserted, 4 updated
        eq(counts(res), (2, 4, 0, 0), f"summary counts ({fmt})")
        last = [json.loads(ln) for ln in res.err.splitlines() if ln.startswith("{")][-1]
        eq((last["mode"], last["rows_inserted"], last["rows_updated"], last["rows_unchanged"],
            last["rows_deleted"], last["rows_committed"]), ("upsert", 2, 4, 0, 0, 6),
           f"last json line ({fmt})")
        # the same file again: a row equal to the table's is left unchanged; 4's rows differ
        # from the one there (and from each other), so they update it
        res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--copy-format", fmt, "-b", "4",
                         ctx.write("in.tsv", tsv(rows)))
        ctx.expect_rc(res, 0)
        eq(table(ctx), as_rows(merged(rows, start=start)), f"kv after the second run ({fmt})")
        eq(counts(res), (0, 3, 3, 0), f"second run's counts ({fmt})")
        xmin = ctx.sql("SELECT string_agg(xmin::text, ',' ORDER BY id) FROM kv;")
        res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--copy-format", fmt,
                         ctx.write("same.tsv", tsv(as_rows(merged(rows, start=start))[:5][:],
                                                   header=("id", "name", "n", "extra"))))
        ctx.expect_rc(res, 0)
        eq(counts(res), (0, 0, 5, 0), f"an equal file's counts ({fmt})")
        eq(ctx.sql("SELECT string_agg(xmin::text, ',' ORDER BY id) FROM kv;"), xmin,
           f"rows equal to the file's were written again ({fmt})")


@test()
def upsert_on_conflict_nothing_keeps_the_rows_there_and_the_first_of_a_key(ctx):
    ctx.sql(KV + "INSERT INTO kv (id, name, n) VALUES (1, 'one', 1);")
    rows = [(1, "ONE", 10), (2, "two", 2), (2, "TWO", 20)]
    res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--on-conflict", "nothing",
                     ctx.write("in.tsv", tsv(rows)))
    ctx.expect_rc(res, 0)
    eq(table(ctx), as_rows({1: ("one", 1), 2: ("two", 2)}), "kv")
    eq(counts(res), (1, 0, 2, 0), "summary counts")


def repeated_keys(n, keys, seed):
    r = random.Random(seed)
    return [(r.randrange(keys), f"v{i}", i) for i in range(n)]


@test()
def upsert_with_4_connections_merges_batches_in_file_order(ctx):
    # 40000 rows over 500 keys in 200-row batches: each key is in most batches, so a batch
    # merged before an earlier one would leave that earlier batch's value behind
    rows = repeated_keys(40_000, 500, seed=3)
    path = ctx.write("in.tsv", tsv(rows))
    for how, keep_last in (("update", True), ("nothing", False)):
        ctx.sql(f"DROP TABLE IF EXISTS kv; DROP TABLE IF EXISTS pgfeed_checkpoints; {KV}")
        res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--on-conflict", how, "-j", "4", "-b",
                         "200", path)
        ctx.expect_rc(res, 0)
        eq(table(ctx), as_rows(merged(rows, keep_last)), f"kv after -j 4 ({how})")
        want = (500, 39_500, 0, 0) if keep_last else (500, 0, 39_500, 0)
        eq(counts(res), want, f"summary counts ({how})")


@test()
def upsert_without_a_usable_key_is_refused_before_loading(ctx):
    ctx.sql("CREATE TABLE nk (id int, name text, n int); INSERT INTO nk VALUES (9, 'nine', 9);")
    path = ctx.write("in.tsv", tsv([(1, "a", 1)]))
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: table nk has no primary key or unique index")
    ctx.expect_err(res, r"hint: .*--key")
    ctx.sql("CREATE UNIQUE INDEX nk_id ON nk (id); CREATE UNIQUE INDEX nk_name ON nk (name);")
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: table nk has several unique indexes and no primary key")
    ctx.expect_err(res, r"detail: Its unique indexes: nk_id, nk_name\.")
    ctx.expect_err(res, r"hint: Choose the key with --key")
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", "--key", "n", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: no unique index of table nk is on exactly \(n\)")
    ctx.expect_err(res, r"hint: Create one \(CREATE UNIQUE INDEX ON nk \(n\)\)")
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", "--key", "nope", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: key column nope of table nk does not exist")
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", "--key", "name", "-c", "id,n",
                     "--header", "skip", ctx.write("two.tsv", b"id\tn\n1\t1\n"))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'key column "name" of table nk is not among the columns the file fills')
    eq(table(ctx, "nk", "id, name, n"), [("9", "nine", "9")], "nk after the refusals")
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", "--key", " name , id", path)
    ctx.expect_rc(res, 1)  # no index on (name, id)
    res = ctx.pgfeed("-t", "nk", "--mode", "upsert", "--key", "name", path)
    ctx.expect_rc(res, 0)
    eq(table(ctx, "nk", "id, name, n"), [("1", "a", "1"), ("9", "nine", "9")], "nk")


@test()
def upsert_options_without_upsert_are_usage_errors(ctx):
    ctx.sql(KV)
    path = ctx.write("in.tsv", tsv([(1, "a", 1)]))
    for opt in (["--key", "id"], ["--on-conflict", "nothing"], ["--delete-missing"]):
        res = ctx.pgfeed("-t", "kv", *opt, path)
        ctx.expect_rc(res, 2)
        ctx.expect_err(res, rf"error: {opt[0]} only goes with --mode upsert")
    res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--on-conflict", "maybe", path)
    ctx.expect_rc(res, 2)
    # a row set aside would leave its key unseen, and its row would be deleted
    res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--delete-missing", "--max-rejects", "5",
                     path)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r"error: --delete-missing cannot be used with --max-rejects")
    check(ctx.count("kv") == 0, "a refused run loaded rows")


@test()
def upsert_delete_missing_leaves_exactly_the_files_keys(ctx):
    ctx.sql("CREATE TABLE u2 (id int UNIQUE, name text, n int);"
            "INSERT INTO u2 VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3), (NULL, 'nul', 0);")
    rows = [(2, "TWO", 20), (4, "four", 4), (4, "FOUR", 40)]
    path = ctx.write("in.tsv", tsv(rows))
    res = ctx.pgfeed("-t", "u2", "--mode", "upsert", "--delete-missing", "-b", "1", "-j", "2", path)
    ctx.expect_rc(res, 0)
    # 1 and 3 are gone; the row with a NULL key is never matched, so it stays
    eq(table(ctx, "u2", "id, name, n"), [("2", "TWO", "20"), ("4", "FOUR", "40"), ("", "nul", "0")],
       "u2 after --delete-missing")
    eq(counts(res), (1, 2, 0, 2), "summary counts")
    eq(ctx.sql("SELECT to_regclass('u2_pgfeed_keys') IS NULL, bool_and(finished)"
               " FROM pgfeed_checkpoints;").strip(), "t|t", "keys table dropped, finished")
    # a leftover table of keys is refused without --resume / --restart
    ctx.sql("CREATE TABLE u2_pgfeed_keys (id int);")
    res = ctx.pgfeed("-t", "u2", "--mode", "upsert", "--delete-missing", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"u2_pgfeed_keys is left from an earlier --delete-missing import")
    ctx.expect_err(res, r"hint: .*--restart")


@test()
def upsert_rejects_staging_refusals_and_fails_on_a_merge_refusal(ctx):
    ctx.sql(KV)
    rows = [(1, "a", 1), (2, None, 2), (3, "c", -3), (4, "d", "x"), (1, "A", 10)]
    path = ctx.write("in.tsv", tsv(rows))
    for fmt in ("text", "binary"):
        ctx.sql("TRUNCATE kv;")
        rej = ctx.tmp / f"rej-{fmt}.tsv"
        res = ctx.pgfeed("-t", "kv", "--mode", "upsert", "--copy-format", fmt, "--max-rejects",
                         "5", "--rejects", str(rej), "--restart", path)
        ctx.expect_rc(res, 0)
        eq(table(ctx), [("1", "A", "10", "x")], f"kv ({fmt})")
        got = sorted(ln.split("\t")[:2] for ln in rej.read_text().splitlines())
        eq([g[0] for g in got], ["3", "4", "5"], f"rejected lines ({fmt})")
        check(re.search(r'null value in column "name"', got[0][1]), f"reason: {got[0]}")
        check(re.search(r'check constraint "kv_n_check"', got[1][1]), f"reason: {got[1]}")
        check(re.search(r'invalid input syntax for type integer: "x"', got[2][1]),
              f"reason: {got[2]}")
    # a foreign key only the target has: the merge refuses, the import fails with the
    # server's message and the batches before stay
    ctx.sql("CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1), (2);"
            "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent);")
    path = ctx.write("child.tsv", tsv([(1, 1), (2, 2), (3, 7), (4, 1)], header=("id", "p")))
    res = ctx.pgfeed("-t", "child", "--mode", "upsert", "-b", "2", "--max-rejects", "5", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'violates foreign key constraint "child_p_fkey"')
    ctx.expect_err(res, r"detail: .*The batch of lines 4 to 5 was rolled back")
    ctx.expect_err(res, r"hint: --mode upsert merges each batch after its COPY")
    eq(table(ctx, "child", "id, p"), [("1", "1"), ("2", "2")], "child after the refusal")



@test(slow=True)
def upsert_kill_9_then_resume_with_2_connections_gives_exactly_the_files_rows(ctx):
    ctx.create_names()
    ctx.sql("ALTER TABLE names ADD PRIMARY KEY (nconst);"
            "INSERT INTO names (nconst, primary_name) SELECT 'old' || i, 'gone'"
            " FROM generate_series(1, 50) i;"
            "INSERT INTO names (nconst, primary_name) SELECT format('nm%s', lpad(i::text, 7, '0')),"
            " 'stale' FROM generate_series(1, 1000) i;")
    rows = 300_000
    path = ctx.gen_file(rows, seed=21)
    args = ["-t", "names", "--mode", "upsert", "--delete-missing", "-j", "2", "-b", "5000"]
    done = kill_9_after_a_batch(ctx, args, path, rows)
    check(ctx.count() >= 1050, "rows were deleted before the end")
    res = ctx.pgfeed(*args, "--resume", path)
    ctx.expect_rc(res, 0)
    ctx.expect_table(path.read_bytes())
    ins, upd, unch, dele = counts(res)
    check(ins + upd + unch == rows - done,
          f"the resumed run counts {ins} + {upd} + {unch}, want {rows - done}")
    eq(dele, 50, "rows deleted")
    eq(ctx.sql("SELECT to_regclass('names_pgfeed_keys') IS NULL;").strip(), "t", "keys table gone")
