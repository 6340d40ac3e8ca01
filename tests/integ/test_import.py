"""Imports that must land exactly: the real IMDb sample (path, stdin, gzipped stdin), a
generated 200k-row gzip file in batches, one transaction, multi-member gzip, pipes."""

import gzip
import re

from harness import check, eq, parse_dsv, rows_eq, test


def num_re(n):
    """A regex for the number n standing alone, with or without thousands separators."""
    s = str(n)
    head, groups = s[:len(s) % 3 or 3], [s[i:i + 3] for i in range(len(s) % 3 or 3, len(s), 3)]
    return (r"(?<!\d)(?<!\d[.,])" + head + "".join(r"[,' _\u202f]?" + g for g in groups)
            + r"(?!\d|[.,]\d)")


def summary_check(ctx, res, rows, batches=None):
    """The summary on stderr names the row count and, if given, the batch count."""
    check(re.search(num_re(rows), res.err),
          f"summary does not mention {rows} rows:\n{res.describe()}")
    if batches is not None:
        lines = [ln for ln in res.err.split("\n") if re.search(r"batch", ln, re.I)]
        check(any(re.search(num_re(batches), ln) for ln in lines),
              f"summary has no line saying {batches} batches:\n{res.describe()}")


def sample_expected(ctx):
    data = ctx.sample().read_bytes()
    return data, sorted(parse_dsv(data, nfields=6))


def sample_land(ctx, res, want):
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), want, "names")
    summary_check(ctx, res, len(want))
    # primaryProfession does not match primary_professions, the counts do: by position
    check("position" in res.err.lower(),
          f"header mapped by position without saying so:\n{res.describe()}")


@test()
def test_sample_path(ctx):
    data, want = sample_expected(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.sample())
    sample_land(ctx, res, want)
    # spot checks of the conventions, on top of the full comparison
    r = dict((row[0], row) for row in ctx.rows())
    eq(r["nm0000001"][1:], ("Fred Astaire", "1899", "1987", ["soundtrack", "actor", "miscellaneous"],
                            ["tt0053137", "tt0031983", "tt0050419", "tt0072308"]), "nm0000001")
    eq(r["nm0000003"][3], None, "nm0000003 death_year (\\N)")
    eq(ctx.sql("SELECT count(*) FROM names WHERE death_year IS NULL;").strip(),
       str(sum(1 for row in want if row[3] is None)), "NULL death years")
    eq(ctx.sql("SELECT primary_name FROM names WHERE nconst = 'nm0000067';").strip(),
       "Miklós Rózsa", "UTF-8 name")


@test()
def test_sample_stdin(ctx):
    data, want = sample_expected(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-", stdin_path=ctx.sample())
    sample_land(ctx, res, want)


@test()
def test_sample_gzip_stdin(ctx):
    data, want = sample_expected(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-", input=gzip.compress(data, mtime=0))
    sample_land(ctx, res, want)


@test()
def test_sample_gzip_path_named_tsv(ctx):
    # compression comes from the first bytes, never from the name
    data, want = sample_expected(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("sample.tsv", data, gz=True))
    sample_land(ctx, res, want)


@test()
def test_sample_zlib_stdin(ctx):
    import zlib
    data, want = sample_expected(ctx)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-", input=zlib.compress(data))
    sample_land(ctx, res, want)


@test(slow=True)
def test_generated_200k_gzip_batches(ctx):
    data = ctx.gen(200000, seed=42)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "50000", ctx.write("names.tsv.gz", data, gz=True))
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 200000, "row count")
    ctx.expect_table(data)
    summary_check(ctx, res, 200000, batches=4)


@test(slow=True)
def test_generated_200k_gzip_stdin_one_transaction(ctx):
    data = ctx.gen(200000, seed=42)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "0", "-", input=gzip.compress(data, 1, mtime=0))
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    summary_check(ctx, res, 200000, batches=1)


@test()
def test_generated_plain_default_batch(ctx):
    # names with quotes, apostrophes, backslashes (a trailing one, "\N Junior"), empty
    # profession fields and \N lists, imported plain from a path with the default batch size
    data = ctx.gen(20000, seed=7)
    want = parse_dsv(data, nfields=6)
    check(any(r[1].endswith("\\") for r in want), "generator made no trailing backslash")
    check(any(r[4] == [] for r in want), "generator made no empty profession field")
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("names.tsv", data))
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    summary_check(ctx, res, 20000, batches=1)


@test()
def test_multi_member_gzip(ctx):
    # two members split in the middle of a row, as pigz/bgzip-style output can be
    data = ctx.gen(30000, seed=3)
    cut = len(data) // 2 + 17
    check(data[cut - 1:cut] != b"\n", "cut should be mid-row")
    blob = gzip.compress(data[:cut], mtime=0) + gzip.compress(data[cut:], mtime=0)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "7000", ctx.write("two.tsv.gz", blob))
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
    summary_check(ctx, res, 30000, batches=5)


@test()
def test_multi_member_gzip_stdin_three(ctx):
    data = ctx.gen(9000, seed=4)
    cuts = [0, 1000, len(data) - 3, len(data)]  # the last member holds 3 bytes
    blob = b"".join(gzip.compress(data[a:b], mtime=0) for a, b in zip(cuts, cuts[1:]))
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-", input=blob)
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_header_only(ctx):
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("h.tsv", "\t".join(
        ["nconst", "primaryName", "birthYear", "deathYear", "primaryProfession",
         "knownForTitles"]) + "\n"))
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 0, "row count")


@test()
def test_no_final_newline(ctx):
    data = ctx.gen(1000, seed=5)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("nonl.tsv", data.rstrip(b"\n")))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_quiet(ctx):
    # a header that maps by name (nothing to say about positions), so -q leaves stderr empty
    data = ctx.gen(500, seed=6)
    ctx.sql("CREATE TABLE names (nconst text, primary_name text, birth_year text, "
            "death_year text, primary_profession text[], known_for_titles text[]);")
    res = ctx.pgfeed("-q", "-t", "names", ctx.write("q.tsv", data))
    ctx.expect_rc(res, 0)
    eq(res.err, "", "stderr with --quiet")
    eq(ctx.count(), 500, "row count")
    res = ctx.pgfeed("--quiet", "--truncate", "-t", "names", ctx.write("q.tsv", data))
    ctx.expect_rc(res, 0)
    eq(res.err, "", "stderr with --quiet")
    eq(ctx.count(), 500, "row count")


@test()
def test_verbose(ctx):
    data = ctx.gen(500, seed=6)
    ctx.create_names()
    quiet = ctx.pgfeed("-t", "names", ctx.write("v.tsv", data))
    ctx.expect_rc(quiet, 0)
    res = ctx.pgfeed("-v", "--truncate", "-t", "names", ctx.write("v.tsv", data))
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 500, "row count")
    check(len(res.err) > len(quiet.err), f"-v says no more than the default:\n{res.describe()}")
