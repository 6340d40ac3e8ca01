"""--copy-format binary: rows travel in COPY's binary format and land exactly as text COPY
puts them; bad values are refused client-side with the server's own words; other column
types fall back to text COPY with a notice.
"""

import re

from harness import check, eq, test
from test_rejects import rejects_lines

TYPES_DDL = """CREATE TABLE {t} (id int PRIMARY KEY, small smallint, big bigint, flag boolean,
  amount numeric(12,3), free numeric, label text, code char(5), tags varchar(10)[],
  ints int[], nums numeric[], flags boolean[])"""

TYPES_ROWS = [
    "1\t-32768\t-9223372036854775808\tt\t0\t0\tplain\tab\ta,b\t1,2,3\t1.5,-2\tt,f",
    "2\t32767\t9223372036854775807\tFALSE\t-0.0005\t123456789012345678901234567890.000001\t"
    "tab\\tback\\\\slash\tabcde\t\t\t\t",
    "3\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
    "4\t 42 \t+7\t yes \t1e3\t-1.5E-10\tüñí ☃ 𝄞\tx\t,,\t-1\tNaN,Infinity,-Infinity\ton,off",
    "5\t0\t0\t1\t99999999.9995\t0.000\t\"quoted\" 'single'\t\tlong-enou,z\t0,-0\t00012.3400\tn",
]


def types_tsv(rows=TYPES_ROWS):
    head = "id\tsmall\tbig\tflag\tamount\tfree\tlabel\tcode\ttags\tints\tnums\tflags"
    return ("\n".join([head] + rows) + "\n").encode()


def dump(ctx, table):
    return ctx.sql(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT;")


@test()
def test_binary_names_exact(ctx):
    data = ctx.gen(30_000, seed=71)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--copy-format", "binary", "-b", "7000", "-v",
                     ctx.write("n.tsv.gz", data, gz=True))
    ctx.expect_rc(res, 0)
    check("using text COPY" not in res.err, "binary mode fell back to text for names")
    ctx.expect_err(res, r"rows imported:\s+30000\b")
    ctx.expect_table(data)


@test()
def test_binary_two_connections_exact(ctx):
    data = ctx.gen(40_000, seed=72)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--copy-format", "binary", "-j", "2", "-b", "5000",
                     ctx.write("n.tsv", data))
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)


@test()
def test_binary_types_equal_text_copy(ctx):
    """Every kind, NULLs, empty arrays, whitespace, exponents, NaN/Infinity, unicode and
    typmods: the binary import equals the text import, value for value."""
    ctx.sql(TYPES_DDL.format(t="tb") + ";" + TYPES_DDL.format(t="tt") + ";")
    path = ctx.write("types.tsv", types_tsv())
    res = ctx.pgfeed("-t", "tb", "--copy-format", "binary", "-v", path)
    ctx.expect_rc(res, 0)
    check("using text COPY" not in res.err, "fell back to text")
    res = ctx.pgfeed("-t", "tt", "--copy-format", "text", path)
    ctx.expect_rc(res, 0)
    got, want = dump(ctx, "tb"), dump(ctx, "tt")
    eq(got, want, "binary import vs text import")
    eq(len(got.splitlines()), len(TYPES_ROWS), "rows")


@test()
def test_binary_csv_equal_text_copy(ctx):
    ctx.sql(TYPES_DDL.format(t="tb") + ";" + TYPES_DDL.format(t="tt") + ";")
    csv = ("id,small,big,flag,amount,free,label,code,tags,ints,nums,flags\n"
           '1,1,2,true,3.5,4,"with, comma","q""q","a,""b""",1,2,t\n'
           '2,,,,,,"",,"",,,\n'
           '3,-1,-2,f,-3.25,1e-3,"line\nbreak",zz,"x,y,z","4,5","6,7.5","f,t"\n')
    path = ctx.write("types.csv", csv)
    for t, fmt in (("tb", "binary"), ("tt", "text")):
        res = ctx.pgfeed("-t", t, "--copy-format", fmt, path)
        ctx.expect_rc(res, 0)
    eq(dump(ctx, "tb"), dump(ctx, "tt"), "csv: binary import vs text import")
    eq(ctx.sql("SELECT label IS NULL, label = '' FROM tb WHERE id = 2;").strip(), "f|t",
       "quoted empty csv field is an empty string")


@test()
def test_binary_bad_values_rejected_with_server_messages(ctx):
    ctx.sql(TYPES_DDL.format(t="tb") + ";" + TYPES_DDL.format(t="tt") + ";")
    rows = list(TYPES_ROWS) + [
        "6\t40000\t0\tt\t0\t0\tx\tx\t\t\t\t",       # smallint out of range
        "7\t1\tbig\tt\t0\t0\tx\tx\t\t\t\t",          # not a bigint
        "8\t1\t1\tmaybe\t0\t0\tx\tx\t\t\t\t",        # not a boolean
        "9\t1\t1\tt\t1.2.3\t0\tx\tx\t\t\t\t",        # not a numeric
        "10\t1\t1\tt\t0\t0\tx\tx\t\t1,two\t\t",      # a bad array element
    ]
    path = ctx.write("bad.tsv", types_tsv(rows))
    # The same rows through text COPY: the server's own messages, one per rejected row.
    rej_t, rej_b = ctx.tmp / "t.rej", ctx.tmp / "b.rej"
    res = ctx.pgfeed("-t", "tt", "--max-rejects", "10", "--rejects", rej_t, path)
    ctx.expect_rc(res, 0)
    res = ctx.pgfeed("-t", "tb", "--copy-format", "binary", "--max-rejects", "10",
                     "--rejects", rej_b, path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"rows rejected:\s+5\b")
    eq(dump(ctx, "tb"), dump(ctx, "tt"), "rows imported")
    want = {int(ln[0]): ln for ln in rejects_lines(rej_t)}
    got = {int(ln[0]): ln for ln in rejects_lines(rej_b)}
    eq(sorted(got), [7, 8, 9, 10, 11], "rejected lines")
    eq(sorted(want), sorted(got), "rejected lines, text vs binary")
    for line, (_, reason, row) in got.items():
        primary = want[line][1].split(":")[0]
        check(reason.startswith(primary), f"line {line}: binary says {reason!r}, "
              f"the server says {want[line][1]!r}")
        eq(row, want[line][2], f"line {line}: row as read")


@test()
def test_binary_bad_value_fails_without_rejects(ctx):
    ctx.sql(TYPES_DDL.format(t="tb") + ";")
    rows = list(TYPES_ROWS) + ["6\t1\tbig\tt\t0\t0\tx\tx\t\t\t\t"]
    res = ctx.pgfeed("-t", "tb", "--copy-format", "binary", ctx.write("b.tsv", types_tsv(rows)))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'invalid input syntax for type bigint: "big"')
    ctx.expect_err(res, r"line 7\b")
    ctx.expect_err(res, r"\bbig\b")
    eq(ctx.count("tb"), 0, "rows committed")


@test()
def test_binary_server_refusal_isolated(ctx):
    """varchar(10) too long and a duplicate key are found by the server: the binary batch
    is split by tuple lengths and the refused rows written back in input form."""
    ctx.sql(TYPES_DDL.format(t="tb") + ";")
    rows = list(TYPES_ROWS) + [
        "6\t1\t1\tt\t1\t1\tx\tx\tfar-too-long-tag\t\t\t",
        "1\t1\t1\tt\t1\t1\tdup\tx\t\t\t\t",
        "7\t1\t1\tt\t1\t1\tlast\tx\ta\t1\t1\tt",
    ]
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "tb", "--copy-format", "binary", "--max-rejects", "5",
                     "--rejects", rej, ctx.write("b.tsv", types_tsv(rows)))
    ctx.expect_rc(res, 0)
    eq(ctx.sql("SELECT array_agg(id ORDER BY id) FROM tb;").strip(), "{1,2,3,4,5,7}", "ids")
    lines = rejects_lines(rej)
    eq([ln[0] for ln in lines], ["7", "8"], "rejected lines")
    check(re.search(r"too long", lines[0][1]), f"reason {lines[0][1]}")
    check(re.search(r"duplicate key", lines[1][1]), f"reason {lines[1][1]}")
    eq(lines[0][2], rows[5], "refused row in input form")
    eq(lines[1][2], rows[6], "refused row in input form")


@test()
def test_binary_falls_back_to_text_for_other_types(ctx):
    ctx.sql("CREATE TABLE ev (id int, at date, score float8);")
    path = ctx.write("ev.tsv", b"id\tat\tscore\n1\t2024-02-29\t1.5\n2\t\\N\t-0\n")
    res = ctx.pgfeed("-t", "ev", "--copy-format", "binary", path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r'using text COPY: column "at" has type date')
    eq(ctx.sql("SELECT count(*) FROM ev WHERE at = '2024-02-29';").strip(), "1", "date row")
    # the same file again: --restart, since its first import finished
    res = ctx.pgfeed("-t", "ev", "--copy-format", "binary", "-f", "text", "--restart", path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"using text COPY: format text")


@test()
def test_copy_format_usage_error(ctx):
    res = ctx.pgfeed("-t", "names", "--copy-format", "json", "x.tsv")
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r"--copy-format")
