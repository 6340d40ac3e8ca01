"""Command-line surface: --help, --version and usage errors (exit 2, before any connection).

Usage errors run with --db pointing at a socket directory with no server, so a CLI that
tried to connect instead of rejecting the options would exit 1, not 2.
"""

import re

from harness import check, test


def nowhere(ctx):
    d = ctx.tmp / "no-server"
    d.mkdir(exist_ok=True)
    return f"host={d} dbname=x user=postgres connect_timeout=5"


def usage_error(ctx, *args, what):
    res = ctx.pgfeed("-d", nowhere(ctx), *args, db=False, timeout=60)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r"^pgfeed: error: ", re.M)
    return res


@test()
def test_help(ctx):
    res = ctx.pgfeed("--help", db=False)
    ctx.expect_rc(res, 0)
    for opt in ("--table", "--db", "--columns", "--format", "--header", "--batch-rows"):
        check(opt in res.out, f"--help output lacks {opt}:\n{res.describe()}")
    res = ctx.pgfeed("-h", db=False)
    ctx.expect_rc(res, 0)
    check("--table" in res.out, f"-h output lacks --table:\n{res.describe()}")


@test()
def test_version(ctx):
    res = ctx.pgfeed("--version", db=False)
    ctx.expect_rc(res, 0)
    check(re.search(r"\b\d+\.\d+\.\d+\b", res.out), f"no version number on stdout:\n{res.describe()}")
    check("pgfeed" in res.out, f"--version does not name the program:\n{res.describe()}")


@test()
def test_usage_unknown_option(ctx):
    res = usage_error(ctx, "-t", "names", "--no-such-option", "x.tsv", what="unknown option")
    check("no-such-option" in res.err, f"message does not name the option:\n{res.describe()}")


@test()
def test_usage_missing_table(ctx):
    res = usage_error(ctx, "x.tsv", what="missing --table")
    check("table" in res.err.lower(), f"message does not mention --table:\n{res.describe()}")


@test()
def test_usage_missing_source(ctx):
    usage_error(ctx, "-t", "names", what="missing SOURCE")


@test()
def test_usage_two_sources(ctx):
    usage_error(ctx, "-t", "names", "a.tsv", "b.tsv", what="two SOURCEs")


@test()
def test_usage_missing_option_argument(ctx):
    usage_error(ctx, "x.tsv", "-t", what="-t without a value")


@test()
def test_usage_bad_format(ctx):
    res = usage_error(ctx, "-t", "names", "-f", "xml", "x.tsv", what="--format xml")
    check("xml" in res.err, f"message does not quote the bad value:\n{res.describe()}")
    usage_error(ctx, "-t", "names", "--format=parquet", "x.tsv", what="--format=parquet")


@test()
def test_usage_bad_batch_rows(ctx):
    for v in ("abc", "-5", "10x", "", "99999999999999999999999"):
        usage_error(ctx, "-t", "names", "-b", v, "x.tsv", what=f"--batch-rows {v!r}")
    usage_error(ctx, "-t", "names", "--batch-rows=1.5", "x.tsv", what="--batch-rows=1.5")


@test()
def test_usage_bad_header_mode(ctx):
    res = usage_error(ctx, "-t", "names", "--header", "sometimes", "x.tsv", what="--header")
    check("sometimes" in res.err, f"message does not quote the bad value:\n{res.describe()}")


@test()
def test_usage_bad_delimiter(ctx):
    usage_error(ctx, "-t", "names", "--delimiter", "ab", "x.tsv", what="--delimiter ab")
