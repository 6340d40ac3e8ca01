"""--encoding against the real server: latin1 and windows-1252 files arriving as the right
characters in a UTF8 database through text COPY, binary COPY and csv; bytes the encoding
leaves undefined going to the rejects file as they were; UTF-16 input and unknown names
refused with a clear message; a resume under another encoding refused.
"""

import json
import os
import re

from harness import check, eq, test

DDL = 'CREATE TABLE people (id int, name text, "città" varchar(20), tags text[]);'

PEOPLE = [
    (1, "José Müller", "São Paulo", ["café", "crème brûlée"]),
    (2, "Zoë Ångström", "Köln", []),
    (3, "Ægir Øst", "Reykjavík", ["à", "ß"]),
]

QUOTES = [
    (1, "“curly” and ‘single’", "€5 – €10", ["naïve…", "Œuvre™"]),
    (2, "plain", "Š ž Ÿ", ["„low“"]),
]


def people(ctx):
    out = ctx.sql('SELECT json_build_array(id, name, "città", tags) FROM people ORDER BY id;')
    return [tuple(json.loads(ln)) for ln in out.split("\n") if ln]


def tsv(rows):
    lines = ["id\tname\tcittà\ttags"]
    lines += [f"{i}\t{n}\t{c}\t{','.join(t)}" for i, n, c, t in rows]
    return "\n".join(lines) + "\n"


def csv(rows):
    lines = ['id,name,"città",tags']
    lines += [f'{i},"{n}",{c},"{",".join(t)}"' for i, n, c, t in rows]
    return "\r\n".join(lines) + "\r\n"


def load_each_way(ctx, rows, codec, encoding):
    """The same rows as tsv (text and binary COPY) and csv, encoded with codec."""
    ctx.sql(DDL)
    for name, text, fmt in (("p.tsv", tsv(rows), "tsv"), ("p.csv", csv(rows), "csv")):
        path = ctx.write(name, text.encode(codec))
        for copy in ("text", "binary"):
            ctx.sql("TRUNCATE people;")
            res = ctx.pgfeed("-t", "people", "--encoding", encoding, "--copy-format", copy,
                             "--no-checkpoint", "-f", fmt, path)
            ctx.expect_rc(res, 0)
            eq(people(ctx), rows, f"{name}, COPY {copy}, --encoding {encoding}")


@test()
def test_encoding_latin1_accents(ctx):
    """Accented letters in every column, the header's "città" mapped to its column."""
    load_each_way(ctx, PEOPLE, "latin-1", "latin1")


@test()
def test_encoding_windows1252_quotes_and_euro(ctx):
    """The bytes 0x80..0x9F that windows-1252 uses for € “ ” ‘ ’ – … ™ Œ Š Ÿ."""
    load_each_way(ctx, QUOTES, "cp1252", "windows-1252")


@test()
def test_encoding_default_is_utf8(ctx):
    """Without --encoding a latin1 file is invalid UTF-8, as before."""
    ctx.sql(DDL)
    res = ctx.pgfeed("-t", "people", ctx.write("l1.tsv", tsv(PEOPLE).encode("latin-1")))
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'invalid byte sequence for encoding "UTF8"')
    ctx.expect_err(res, r"--encoding")


@test()
def test_encoding_undefined_bytes_rejected_as_they_were(ctx):
    """0x81 and 0x9D are undefined in windows-1252: those rows are rejected by pgfeed and
    written to the rejects file byte for byte; a row the server refuses (text COPY: "1é" is
    no integer) keeps its windows-1252 bytes there too."""
    ctx.sql(DDL)
    good = ["1\tJos\xe9\tK\xf6ln\t\x80", "4\tok\tx\t"]
    bad_client = [b"2\tbad\x81byte\tx\ty", b"3\tx\ty\t\x9d"]
    bad_server = b"5\xe9\tname\tcity\t"
    data = b"id\tname\tcitt\xe0\ttags\n" + b"\n".join(
        [good[0].encode("latin-1"), bad_client[0], bad_client[1], good[1].encode("latin-1"),
         bad_server]) + b"\n"
    rejects = ctx.tmp / "rej.tsv"
    res = ctx.pgfeed("-t", "people", "--encoding", "WIN1252", "--copy-format", "text",
                     "--max-rejects", "5", "--rejects", str(rejects), ctx.write("w.tsv", data))
    ctx.expect_rc(res, 0)
    eq(people(ctx), [(1, "José", "Köln", ["€"]), (4, "ok", "x", [])], "rows imported")
    lines = rejects.read_bytes().split(b"\n")[:-1]
    eq(len(lines), 3, "rejects")
    eq([ln.split(b"\t", 2)[2] for ln in lines],
       [bad_client[0], bad_client[1], bad_server], "original rows")
    check(b'encoding "WIN1252"' in lines[0] and b"0x81" in lines[0], f"reason: {lines[0]!r}")


@test()
def test_encoding_utf16_refused(ctx):
    """A UTF-16 file (here with its byte order mark) is one clear error naming --encoding."""
    ctx.sql(DDL)
    path = ctx.write("u16.tsv", tsv(PEOPLE).encode("utf-16"))
    res = ctx.pgfeed("-t", "people", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: input is in UTF-16, which pgfeed cannot read$", re.M)
    ctx.expect_err(res, r"byte order mark")
    ctx.expect_err(res, r"iconv -f UTF-16 -t UTF-8.*--encoding")
    eq(ctx.count("people"), 0, "rows")


@test()
def test_encoding_names_refused(ctx):
    """Unknown names and encodings pgfeed cannot read: usage errors (2) before connecting."""
    path = ctx.write("x.tsv", b"1\tx\tx\t\n")
    res = ctx.pgfeed("-t", "people", "--encoding", "latin-1x", path)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'unknown encoding "latin-1x"')
    ctx.expect_err(res, r"LATIN1.*WIN1252")
    res = ctx.pgfeed("-t", "people", "--encoding", "Shift_JIS", path)
    ctx.expect_rc(res, 2)
    ctx.expect_err(res, r'cannot read input in encoding "SJIS"')
    ctx.expect_err(res, r"backslash")


@test()
def test_encoding_resume_needs_the_same_encoding(ctx):
    """A checkpoint records the encoding: --resume under another one is refused, under
    another name for the same one (latin1 / ISO-8859-1) it goes on."""
    ctx.create_names()
    data = ctx.gen(3000, seed=5)
    lines = data.split(b"\n")
    lines[2500] = lines[2500].replace(b"\t", b" ", 1)  # one field short, same size
    bad = ctx.write("enc-bad.tsv", b"\n".join(lines))
    st = os.stat(bad)
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--encoding", "latin1", bad)
    ctx.expect_rc(res, 1)
    eq(ctx.count(), 2000, "rows before the bad line")
    bad.write_bytes(data)  # fixed in place: same size and time, so the source matches
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    for other in ([], ["--encoding", "UTF8"], ["--encoding", "WIN1252"]):
        res = ctx.pgfeed("-t", "names", "-b", "1000", "--resume", *other, bad)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"cannot resume: the format options differ")
        ctx.expect_err(res, r"encoding=LATIN1")
        eq(ctx.count(), 2000, f"rows after the refused resume {other}")
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--resume", "--encoding", "ISO-8859-1", bad)
    ctx.expect_rc(res, 0)
    eq(ctx.count(), 3000, "rows after the resume")
    eq(ctx.sql("SELECT count(DISTINCT nconst) FROM names;").strip(), "3000", "distinct rows")
    # The UTF-8 bytes of gen-names were read as latin1: each byte one character.
    first = data.split(b"\n")[1].split(b"\t")
    eq(ctx.sql(f"SELECT primary_name FROM names WHERE nconst = '{first[0].decode()}';").strip(),
       first[1].decode("latin-1"), "a row read as latin1")
