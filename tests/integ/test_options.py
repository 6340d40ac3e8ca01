"""Options that shape the mapping and the values: --columns, --header modes, --truncate,
--null, --format text, --delimiter, header names mapped by name in any order, extra table
columns, connection defaults (DATABASE_URL, PG* environment, URIs), schema-qualified
tables, and the escaping edge cases of array and scalar fields."""

import re
import urllib.parse

from harness import check, eq, parse_dsv, rows_eq, test

SNAKE = ["nconst", "primary_name", "birth_year", "death_year", "primary_profession",
         "known_for_titles"]


def create_text6(ctx, table="t6"):
    ctx.sql(f"CREATE TABLE {table} (a text, b text, c text, d text, e text, f text);")


def text6_rows(ctx, table="t6"):
    return ctx.rows(table, "a, b, c, d, e, f", order="a")


def raw_fields(data, header):
    """Rows as plain strings (no array splitting), \\N still NULL: what text columns hold."""
    return sorted(parse_dsv(data, header=header, arrays=()))


@test()
def test_columns_headerless(ctx):
    data = ctx.gen(3000, seed=11, header=False)
    ctx.sql("CREATE TABLE people (id serial, note text DEFAULT 'n/a', "
            "known_for_titles varchar[], nconst varchar(255), primary_name varchar(255), "
            "birth_year varchar(4), death_year varchar(4), primary_professions varchar[]);")
    res = ctx.pgfeed("-t", "people", "--header", "none", "-c",
                     "nconst,primary_name,birth_year,death_year,primary_professions,known_for_titles",
                     ctx.write("nohdr.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("people"), parse_dsv(data, header=False, nfields=6), "people")
    eq(ctx.sql("SELECT count(DISTINCT id), min(note), max(note) FROM people;").strip(),
       "3000|n/a|n/a", "defaults of the columns not listed")


@test()
def test_columns_with_header_skip(ctx):
    data = ctx.gen(1000, seed=12)
    ctx.sql("CREATE TABLE t (x text, nconst text, y text, birth_year text, z text, "
            "death_year text, primary_professions text[], known_for_titles text[], "
            "primary_name text);")
    res = ctx.pgfeed("-t", "t", "--header", "skip", "--columns",
                     "nconst,primary_name,birth_year,death_year,primary_professions,known_for_titles",
                     ctx.write("skip.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("t"), parse_dsv(data, nfields=6), "t")
    eq(ctx.sql("SELECT count(*) FROM t WHERE x IS NULL AND y IS NULL AND z IS NULL;").strip(),
       "1000", "unlisted columns")


@test()
def test_columns_unknown_column(ctx):
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--header", "skip", "-c",
                     "nconst,primary_name,no_such_column,death_year,primary_professions,known_for_titles",
                     ctx.write("x.tsv", ctx.gen(10)))
    ctx.expect_rc(res, (1, 2))
    ctx.expect_err(res, r"^pgfeed: error: ", re.M)
    check("no_such_column" in res.err, f"message does not name the column:\n{res.describe()}")
    eq(ctx.count(), 0, "row count")


@test()
def test_header_none_positional(ctx):
    data = ctx.gen(2000, seed=13, header=False)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--header", "none", ctx.write("n.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, header=False, nfields=6), "names")


@test()
def test_header_none_keeps_first_line(ctx):
    data = ctx.gen(300, seed=14)
    create_text6(ctx)
    res = ctx.pgfeed("-t", "t6", "--header", "none", ctx.write("h.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(text6_rows(ctx), raw_fields(data, header=False), "t6")
    eq(ctx.count("t6"), 301, "rows including the header line")


@test()
def test_header_skip_positional(ctx):
    data = ctx.gen(300, seed=14)
    create_text6(ctx)
    res = ctx.pgfeed("-t", "t6", "--header", "skip", ctx.write("h.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(text6_rows(ctx), raw_fields(data, header=True), "t6")


@test()
def test_header_auto_unrelated_names_positional(ctx):
    data = ctx.gen(300, seed=14)
    create_text6(ctx)
    res = ctx.pgfeed("-t", "t6", ctx.write("h.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(text6_rows(ctx), raw_fields(data, header=True), "t6")
    check("position" in res.err.lower(), f"no word about mapping by position:\n{res.describe()}")


def reordered(data, order):
    """The generated file with its columns in another order (header included)."""
    out = []
    for ln in data.decode().rstrip("\n").split("\n"):
        f = ln.split("\t")
        out.append("\t".join(f[i] for i in order))
    return ("\n".join(out) + "\n").encode()


@test()
def test_header_camelcase_by_name_reordered(ctx):
    data = ctx.gen(5000, seed=15)
    order = [5, 0, 3, 1, 4, 2]  # knownForTitles nconst deathYear primaryName primaryProfession birthYear
    ctx.sql("CREATE TABLE names (nconst varchar(255), primary_name varchar(255), "
            "birth_year varchar(4), death_year varchar(4), primary_profession varchar[], "
            "known_for_titles varchar[]);")
    path = ctx.write("reordered.tsv", reordered(data, order))
    want = parse_dsv(data, nfields=6)
    cols = ", ".join(SNAKE)
    for mode in ("auto", "match"):
        res = ctx.pgfeed("-t", "names", "--truncate", "--header", mode, path)
        ctx.expect_rc(res, 0)
        rows_eq(ctx.rows("names", cols), want, f"names (--header {mode})")
        check("position" not in res.err.lower(),
              f"--header {mode}: names matched, yet stderr talks of positions:\n{res.describe()}")


@test()
def test_header_auto_exact_names_reordered_extra_columns(ctx):
    # exact (snake_case) header names, another order, a table with more columns
    data = ctx.gen(2000, seed=16)
    order = [1, 0, 2, 3, 5, 4]
    lines = reordered(data, order).split(b"\n", 1)
    snake_hdr = "\t".join(SNAKE[i] for i in order).encode()
    ctx.sql("CREATE TABLE names (id bigserial, nconst text, primary_name text, birth_year text, "
            "death_year text, primary_profession text[], known_for_titles text[], "
            "loaded_at text DEFAULT 'today');")
    res = ctx.pgfeed("-t", "names", ctx.write("x.tsv", snake_hdr + b"\n" + lines[1]))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("names", ", ".join(SNAKE)), parse_dsv(data, nfields=6), "names")
    eq(ctx.sql("SELECT count(DISTINCT id), min(loaded_at), max(loaded_at) FROM names;").strip(),
       "2000|today|today", "extra columns get their defaults")


@test()
def test_header_match_fails_on_unmatched(ctx):
    ctx.create_names()  # primaryProfession has no primary_profession column here
    res = ctx.pgfeed("-t", "names", "--header", "match", ctx.write("m.tsv", ctx.gen(100)))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: ", re.M)
    check("primaryProfession" in res.err, f"unmatched name not reported:\n{res.describe()}")
    eq(ctx.count(), 0, "row count")


@test()
def test_header_auto_fails_when_neither_names_nor_count(ctx):
    ctx.sql("CREATE TABLE wide (u text, v text, w text, x text, y text, z text, extra text);")
    res = ctx.pgfeed("-t", "wide", ctx.write("w.tsv", ctx.gen(100)))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: ", re.M)
    ctx.expect_err(res, r"^pgfeed: hint: ", re.M)
    check("primaryName" in res.err, f"unmatched names not reported:\n{res.describe()}")
    eq(ctx.count("wide"), 0, "row count")


@test()
def test_truncate(ctx):
    data = ctx.gen(1500, seed=17)
    want = parse_dsv(data, nfields=6)
    ctx.create_names()
    ctx.sql("INSERT INTO names (nconst, primary_name) VALUES ('zz0000001', 'old row'), "
            "('aa0000001', 'older row');")
    path = ctx.write("t.tsv", data)
    res = ctx.pgfeed("-t", "names", path)  # without --truncate the old rows stay
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 1502, "rows after an appending import")
    res = ctx.pgfeed("-t", "names", "--truncate", "-b", "400", path)
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), want, "names after --truncate")


@test()
def test_truncate_rolled_back_with_failed_first_batch(ctx):
    # "--truncate empties the table in the first batch's transaction": if that batch
    # fails, the old rows are still there
    ctx.create_names()
    ctx.sql("INSERT INTO names (nconst, primary_name) VALUES ('zz0000001', 'old row');")
    res = ctx.pgfeed("-t", "names", "--truncate", "-b", "100",
                     ctx.write("bad.tsv", ctx.gen(500, bad_line=50)))
    ctx.expect_rc(res, 1)
    eq(ctx.sql("SELECT nconst FROM names;").strip(), "zz0000001", "table after failed first batch")


@test()
def test_null_marker(ctx):
    data = ctx.gen(3000, seed=18)
    text = data.decode()
    lines = ["\t".join("NA" if f == "\\N" else f for f in ln.split("\t"))
             for ln in text.rstrip("\n").split("\n")]
    custom = ("\n".join(lines) + "\n").encode()
    check(b"\tNA\t" in custom, "no NA in the test input")
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--null", "NA", ctx.write("na.tsv", custom))
    ctx.expect_rc(res, 0)
    # NA is NULL; a literal \N inside a name ("\N Junior", "Kid\Nova") stays literal
    rows_eq(ctx.rows(), parse_dsv(custom, null="NA", nfields=6), "names")


@test()
def test_null_marker_empty(ctx):
    ctx.sql("CREATE TABLE e (id text, v text, tags text[]);")
    body = "1\t\t\n2\tx\ta,b\n3\t\\N\t\\N\n"
    res = ctx.pgfeed("-t", "e", "--header", "none", "--null", "", ctx.write("e.tsv", body))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("e", "id, v, tags", order="id"),
            [("1", None, None), ("2", "x", ["a", "b"]), ("3", "\\N", ["\\N"])], "e")


@test()
def test_delimiter(ctx):
    data = ctx.gen(2000, seed=19)
    piped = data.replace(b"\t", b"|")
    check(b"|" not in data, "generated data has a | of its own")
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "--delimiter", "|", "--header", "skip",
                     ctx.write("p.tsv", piped))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_format_tsv_forced_on_csv_name(ctx):
    data = ctx.gen(500, seed=20)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-f", "tsv", ctx.write("names.csv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")
    res = ctx.pgfeed("-t", "names", "--format=tsv", "--truncate",
                     ctx.write("names.csv.gz", data, gz=True))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names (gz)")


def copy_text_escape(v):
    return (v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


@test()
def test_format_text_passthrough(ctx):
    rows = [
        ("nm1", "plain", "1900", None, ["actor", "writer"], ["tt1"]),
        ("nm2", "tab\there", None, "2000", [], None),
        ("nm3", "new\nline and \\ backslash", "1950", "1999", ["a b", 'q"uote'], ["tt2", "tt3"]),
        ("nm4", "\\N", "1901", None, None, []),
        ("nm5", "Łódź 東京 \r cr", "1902", None, ["NULL"], ["x,y"]),
    ]

    def arr(a):
        if a is None:
            return "\\N"
        return "{" + ",".join('"' + e.replace("\\", "\\\\").replace('"', '\\"') + '"'
                              for e in a) + "}"

    lines = []
    for r in rows:
        f = ["\\N" if v is None else copy_text_escape(v) for v in r[:4]]
        f += ["\\N" if a is None else copy_text_escape(arr(a)) for a in r[4:6]]
        lines.append("\t".join(f))
    body = "\n".join(lines) + "\n"
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-f", "text", "--header", "none", ctx.write("t.txt", body))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), [tuple(r) for r in rows], "names")


@test()
def test_format_text_field_count(ctx):
    ctx.create_names()
    body = "nm1\ta\t\\N\t\\N\t{}\t{}\nnm2\tb\t\\N\t\\N\t{}\nnm3\tc\t\\N\t\\N\t{}\t{}\n"
    res = ctx.pgfeed("-t", "names", "-f", "text", "--header", "none", ctx.write("t.txt", body))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: ", re.M)
    ctx.expect_err(res, r"\bline 2\b")
    eq(ctx.count(), 0, "row count")


@test()
def test_array_edge_cases(ctx):
    cases = [
        ("a,,b", ["a", "", "b"]),
        (",", ["", ""]),
        ("NULL", ["NULL"]),
        ("null,Null", ["null", "Null"]),
        ('x"y', ['x"y']),
        ("a\\b", ["a\\b"]),
        ("a\\", ["a\\"]),
        ("{x}", ["{x}"]),
        (" a ,b ", [" a ", "b "]),
        ("\\N", None),
        ("", []),
        ("\\N,x", ["\\N", "x"]),
        ("é,日本,ß", ["é", "日本", "ß"]),
        ("\\\\,\\\\N", ["\\\\", "\\\\N"]),
        ("'q'", ["'q'"]),
    ]
    ctx.sql("CREATE TABLE arr (id int, tags text[], vtags varchar(20)[]);")
    body = "".join(f"{i}\t{src}\t{src}\n" for i, (src, _) in enumerate(cases))
    res = ctx.pgfeed("-t", "arr", "--header", "none", ctx.write("arr.tsv", body))
    ctx.expect_rc(res, 0)
    got = ctx.rows("arr", "id, tags, vtags", order="id::text")
    want = sorted(((i, w, w) for i, (_, w) in enumerate(cases)), key=lambda r: str(r[0]))
    rows_eq(got, want, "arr")
    # the same through the text oracle that the large comparisons use
    ctx.expect_table(body, header=False, table="arr", cols="id, tags, vtags", order="id",
                     arrays=(1, 2))


@test()
def test_scalar_edge_cases(ctx):
    values = ["a\\tb", "\\\\", "\\.", "\\n", '"quoted"', "NULL", "", "\\r", "é", "x\\",
              "\\N\\N", " lead", "trail ", "\\0", "\\x41"]
    ctx.sql("CREATE TABLE s (id int, v text);")
    body = "".join(f"{i}\t{v}\n" for i, v in enumerate(values)) + f"{len(values)}\t\\N\n"
    res = ctx.pgfeed("-t", "s", "--header", "none", ctx.write("s.tsv", body))
    ctx.expect_rc(res, 0)
    got = ctx.rows("s", "id, v", order="id::text")
    want = sorted([(i, v) for i, v in enumerate(values)] + [(len(values), None)],
                  key=lambda r: str(r[0]))
    rows_eq(got, want, "s")


@test()
def test_copy_end_marker_line(ctx):
    # a line that is just \. ends COPY text data; in tsv it is an ordinary value
    ctx.sql("CREATE TABLE one (v text);")
    body = "before\n\\.\nafter\n"
    res = ctx.pgfeed("-t", "one", "--header", "none", ctx.write("one.tsv", body))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("one", "v", order="v"), sorted([("before",), ("\\.",), ("after",)]), "one")


@test()
def test_db_from_database_url(ctx):
    data = ctx.gen(200, seed=21)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("d.tsv", data), db=False,
                     env={"DATABASE_URL": ctx.conninfo})
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_db_from_pg_environment(ctx):
    data = ctx.gen(200, seed=22)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", ctx.write("d.tsv", data), db=False,
                     env={"PGHOST": ctx.cfg.cluster.dir, "PGPORT": "5432",
                          "PGDATABASE": ctx.db, "PGUSER": "postgres"})
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_db_uri(ctx):
    data = ctx.gen(200, seed=23)
    ctx.create_names()
    uri = (f"postgresql://postgres@/{ctx.db}?host="
           + urllib.parse.quote(ctx.cfg.cluster.dir, safe="") + "&port=5432")
    res = ctx.pgfeed("-d", uri, "-t", "names", ctx.write("d.tsv", data), db=False)
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")


@test()
def test_schema_qualified_table(ctx):
    data = ctx.gen(300, seed=24)
    ctx.sql("CREATE SCHEMA imdb;")
    ctx.create_names("imdb.names")
    ctx.create_names()  # a public.names that must stay empty
    res = ctx.pgfeed("-t", "imdb.names", ctx.write("s.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows("imdb.names"), parse_dsv(data, nfields=6), "imdb.names")
    eq(ctx.count("public.names"), 0, "public.names")


@test()
def test_header_is_mapped_once_per_file_not_per_batch(ctx):
    # a header is one line of the file, not of every batch (timescaledb-parallel-copy#17)
    data = ctx.gen(1000, seed=25)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", "-b", "7", ctx.write("b.tsv", data))
    ctx.expect_rc(res, 0)
    rows_eq(ctx.rows(), parse_dsv(data, nfields=6), "names")
