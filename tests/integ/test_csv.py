"""CSV input against the real server: RFC 4180 files as spreadsheets and exporters write
them, the format chosen from the name, NULL versus empty string, arrays, and errors that
name the line where the bad record starts.
"""

import csv

import io
import re

from harness import check, eq, test

DDL = "CREATE TABLE people (id int, name text, note text, tags text[]);"


def rows(ctx):
    out = ctx.sql("SELECT json_build_array(id, name, note, tags) FROM people ORDER BY id;")
    import json
    return [tuple(json.loads(ln)) for ln in out.split("\n") if ln]


@test()
def test_csv_rfc4180_edge_cases(ctx):
    ctx.sql(DDL)
    data = (
        "\ufeffid,name,note,tags\r\n"            # BOM, CRLF
        "1,\"Smith, John\",\"He said \"\"hi\"\"\",\"a,b\"\r\n"
        "2,,\"\",\r\n"                             # NULL name, empty note, NULL tags
        "3,\"multi\r\nline\",plain,\"\"\r\n"       # quoted CRLF kept; empty array
        "4,Zoë,it's 5\" tall,x\r\n"                # quote inside an unquoted field
        "5,last,no newline,\"y,,z\""               # no final newline
    ).encode()
    path = ctx.write("people.csv", data)
    res = ctx.pgfeed("-t", "people", path)  # .csv: csv format from the name
    ctx.expect_rc(res, 0)
    eq(rows(ctx), [
        (1, "Smith, John", 'He said "hi"', ["a", "b"]),
        (2, None, "", None),
        (3, "multi\r\nline", "plain", []),
        (4, "Zoë", 'it\'s 5" tall', ["x"]),
        (5, "last", "no newline", ["y", "", "z"]),
    ], "table")


@test()
def test_csv_gz_by_name_and_python_writer(ctx):
    """A file written by Python's csv module (quotes where needed), gzipped, named .csv.gz."""
    ctx.sql(DDL)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "name", "note", "tags"])
    want = []
    for i in range(1, 3001):
        name = f"name {i}" + (', jr.' if i % 7 == 0 else "") + ('\n2nd line' if i % 11 == 0 else "")
        note = 'say "x"' if i % 5 == 0 else f"note {i}"
        tags = ",".join(f"t{j}" for j in range(i % 4))
        w.writerow([i, name, note, tags])
        want.append((i, name, note, tags.split(",") if tags else None))
    path = ctx.write("w.csv.gz", buf.getvalue().encode(), gz=True)
    res = ctx.pgfeed("-t", "people", "-b", "700", path)
    ctx.expect_rc(res, 0)
    # An unquoted empty field is NULL in csv: the writer leaves empty tags unquoted.
    eq(rows(ctx), want, "table")


@test()
def test_csv_errors_name_the_record_start_line(ctx):
    ctx.sql(DDL)
    data = b'id,name,note,tags\n1,"a\nb",c,d\n2,only,three\n3,x,y,z\n'
    res = ctx.pgfeed("-t", "people", ctx.write("bad.csv", data))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"\bline 4\b")  # record 2 starts on line 4 (record 1 spans 2-3)
    eq(ctx.count("people"), 0, "rows committed")

    data = b'id,name,note,tags\n1,a,b,c\n2,"never closed,x,y\n3,a,b,c\n'
    res = ctx.pgfeed("-t", "people", ctx.write("open.csv", data))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: unterminated quoted field", re.M)
    ctx.expect_err(res, r"\bline 3\b")
    ctx.expect_err(res, r"--quote")


@test()
def test_csv_rejects_keep_going(ctx):
    ctx.sql(DDL)
    data = b'id,name,note,tags\n1,a,b,c\n2,x\n3,abc,d,e\nfour,f,g,h\n5,i,j,k\n'
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "people", "--max-rejects", "5", "--rejects", rej,
                     ctx.write("r.csv", data))
    ctx.expect_rc(res, 0)
    eq([r[0] for r in rows(ctx)], [1, 3, 5], "imported ids")
    lines = [ln.split("\t", 2) for ln in rej.read_text().splitlines()]
    eq([ln[0] for ln in lines], ["3", "5"], "rejected lines")
    eq(lines[1][2], "four,f,g,h", "the refused record as read")
    ctx.expect_err(res, r"rows imported:\s+3\b")
    ctx.expect_err(res, r"rows rejected:\s+2\b")


@test()
def test_csv_custom_delimiter_quote_null(ctx):
    ctx.sql(DDL)
    data = b"id;name;note;tags\n1;'a;b';NA;'x,y'\n2;NA;'NA';\n"
    res = ctx.pgfeed("-t", "people", "--format", "csv", "--delimiter", ";", "--quote", "'",
                     "--null", "NA", ctx.write("d.txt", data))
    ctx.expect_rc(res, 0)
    eq(rows(ctx), [(1, "a;b", None, ["x", "y"]), (2, None, "NA", [])], "table")

