"""Bad rows isolated instead of fatal: --max-rejects, the rejects file, and the batch
split that finds the rows the server refuses. Every test checks the exact accounting:
rows imported + rows rejected = rows read, each good row committed exactly once.
"""

import os
import re
import signal
import time

from harness import check, eq, test

INT_DDL = "CREATE TABLE nums (id int PRIMARY KEY, n int NOT NULL, label text);"


def nums_tsv(count, bad=None, header=True):
    """id, n, label rows; bad maps a 1-based data row to a replacement line."""
    out = ["id\tn\tlabel"] if header else []
    for i in range(1, count + 1):
        out.append(bad.get(i, f"{i}\t{i * 7}\tlabel {i}") if bad else f"{i}\t{i * 7}\tlabel {i}")
    return ("\n".join(out) + "\n").encode()


def rejects_lines(path):
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    return [ln.split("\t", 2) for ln in text.split("\n") if ln]


def table_ids(ctx):
    out = ctx.sql("SELECT id FROM nums ORDER BY id;")
    return [int(x) for x in out.split()]


@test()
def test_server_refused_value_in_big_batch(ctx):
    """'abcd' for an int in the middle of a 10,000-row batch: only that row is rejected."""
    ctx.sql(INT_DDL)
    data = nums_tsv(10_000, bad={4321: "4321\tabcd\tbad value"})
    path = ctx.write("nums.tsv", data)
    rej = ctx.tmp / "nums.rejects.tsv"
    res = ctx.pgfeed("-t", "nums", "-b", "10000", "--max-rejects", "5", "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    ids = table_ids(ctx)
    eq(len(ids), 9999, "rows imported")
    check(4321 not in ids and ids == sorted(set(ids)), "row 4321 absent, the others once each")
    ctx.expect_err(res, r"rows rejected:\s+1\b")
    lines = rejects_lines(rej)
    eq(len(lines), 1, "reject lines")
    eq(lines[0][0], "4322", "rejected input line (header is line 1)")
    check(re.search(r"invalid input syntax for type integer", lines[0][1]), f"reason {lines[0][1]}")
    eq(lines[0][2], "4321\tabcd\tbad value", "original row")


@test()
def test_unique_violation_and_several_bad_rows(ctx):
    ctx.sql(INT_DDL)
    bad = {10: "10\t70\tfirst", 11: "10\t77\tduplicate id", 500: "500\t\\N\tnull n",
           501: "501\t99999999999\tout of range", 2000: "2000\t1\tlast"}
    data = nums_tsv(2000, bad=bad)
    path = ctx.write("nums.tsv", data)
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "nums", "-b", "700", "--max-rejects", "3", "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    ids = table_ids(ctx)
    eq(len(ids), 1997, "rows imported")
    check(ids == sorted(set(ids)), "each row once")
    got = sorted(int(ln[0]) for ln in rejects_lines(rej))
    eq(got, [12, 501, 502], "rejected lines (duplicate id, NOT NULL, out of range)")
    ctx.expect_err(res, r"rows imported:\s+1997\b")
    ctx.expect_err(res, r"rows rejected:\s+3\b")


@test()
def test_max_rejects_exceeded_keeps_failing_batch_out(ctx):
    ctx.sql(INT_DDL)
    bad = {150: "150\tx\ta", 250: "250\ty\tb", 260: "260\tz\tc"}
    path = ctx.write("nums.tsv", nums_tsv(400, bad=bad))
    rej = ctx.tmp / "r.tsv"
    # Text COPY: the server refuses the rows, so each batch is 200 rows as read. (In binary
    # mode pgfeed refuses them itself, before they count toward a batch.)
    res = ctx.pgfeed("-t", "nums", "-b", "200", "--max-rejects", "2", "--rejects", rej,
                     "--copy-format", "text", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: invalid input syntax for type integer", re.M)
    ctx.expect_err(res, r"max-rejects")
    ctx.expect_err(res, r"\b261\b")  # the third bad row, input line 261
    ids = table_ids(ctx)
    eq(ids, [i for i in range(1, 201) if i != 150], "only the first batch, minus its bad row")
    eq([ln[0] for ln in rejects_lines(rej)], ["151"], "rejects of committed batches only")


@test()
def test_default_first_bad_row_fails(ctx):
    ctx.sql(INT_DDL)
    path = ctx.write("nums.tsv", nums_tsv(300, bad={120: "120\tnope\tx"}))
    res = ctx.pgfeed("-t", "nums", "-b", "100", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"\b121\b")
    ctx.expect_err(res, r"birth_year|column \"n\"|\bn\b")
    eq(table_ids(ctx), list(range(1, 101)), "the batches before the bad row")
    check(not (ctx.tmp / "nums.rejects.tsv").exists(), "no rejects file without --max-rejects")


@test()
def test_client_side_rejects_and_refeed(ctx):
    """Wrong field count, invalid UTF-8 and a NUL byte are rejected before the server; the
    rejects file, fixed, imports the rest."""
    ctx.sql(INT_DDL)
    rows = nums_tsv(1000).split(b"\n")
    rows[100] = b"100\t700"                      # data row 100: 2 fields
    rows[200] = b"200\t1400\tbad \xff utf8"      # invalid UTF-8
    rows[300] = b"300\t2100\tnul \x00 byte"      # NUL
    path = ctx.write("nums.tsv", b"\n".join(rows))
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "nums", "-b", "250", "--max-rejects", "10", "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    eq(len(table_ids(ctx)), 997, "rows imported")
    lines = rejects_lines(rej)
    eq([ln[0] for ln in lines], ["101", "201", "301"], "rejected lines")
    check(re.search(r"field", lines[0][1], re.I), f"reason {lines[0][1]}")
    check(re.search(r"UTF-?8", lines[1][1]) and "\\xff" in lines[1][1], f"reason {lines[1][1]}")
    eq(lines[1][2].encode("utf-8", "surrogateescape"), b"200\t1400\tbad \xff utf8", "row as read")
    eq(lines[2][2].encode("utf-8", "surrogateescape"), b"300\t2100\tnul \x00 byte", "NUL kept")
    # Fix the rows (the third column of the rejects file is the row as read) and feed them back.
    fixed = "\n".join(f"{int(ln[0]) - 1}\t{(int(ln[0]) - 1) * 7}\tlabel {int(ln[0]) - 1}"
                      for ln in lines) + "\n"
    path2 = ctx.write("fixed.tsv", fixed)
    res = ctx.pgfeed("-t", "nums", "--header", "none", path2)
    ctx.expect_rc(res, 0)
    eq(table_ids(ctx), list(range(1, 1001)), "every row once after re-feeding the fixed rejects")


@test()
def test_rejects_with_names_arrays_round_trip(ctx):
    """A refused name.basics row comes back in the rejects file exactly as it was read."""
    ctx.create_names()
    data = ctx.gen(3000, seed=44).split(b"\n")
    f = data[1500].split(b"\t")
    f[2] = b"12345"  # too long for varchar(4)
    data[1500] = b"\t".join(f)
    path = ctx.write("n.tsv", b"\n".join(data))
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "names", "--max-rejects", "1", "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    lines = rejects_lines(rej)
    eq(len(lines), 1, "one reject")
    eq(lines[0][0], "1501", "its line")
    eq(lines[0][2].encode(), data[1500], "the row exactly as read")
    eq(ctx.count(), 2999, "the other rows")


@test()
def test_batch_bytes_bounds_kept_batches(ctx):
    """With rejects allowed a batch is kept in memory to find bad rows; --batch-bytes ends
    batches early so that stays bounded, and the accounting stays exact."""
    ctx.sql(INT_DDL)
    path = ctx.write("nums.tsv", nums_tsv(5000, bad={2500: "2500\tbad\tx"}))
    rej = ctx.tmp / "r.tsv"
    res = ctx.pgfeed("-t", "nums", "--max-rejects", "1", "--batch-bytes", "8192",
                     "--rejects", rej, path)
    ctx.expect_rc(res, 0)
    m = re.search(r"batches committed:\s+(\d+)", res.err)
    check(m and int(m.group(1)) >= 10, f"want many small batches:\n{res.err}")
    eq(len(table_ids(ctx)), 4999, "rows imported")
    eq([ln[0] for ln in rejects_lines(rej)], ["2501"], "rejected line")


REQUOTE_DDL = ("CREATE SCHEMA {s}; CREATE TABLE {s}.rq (id int PRIMARY KEY, a text, b varchar(12), "
               "tags text[], note text NOT NULL CHECK (note <> 'bad'));")

# (name, options, input, {line: the row as the rejects file holds it}). In each, the server
# refuses a duplicate id (line 3), a CHECK (line 4), a NOT NULL and a varchar(12); the csv
# rows have quoted delimiters, doubled quotes, a quoted newline (the file escapes it as \n),
# NULLs and empty strings; one row has too few fields and is refused before the server.
REQUOTE_CASES = [
    ("tsv", [],
     "id\ta\tb\ttags\tnote\n1\tplain\tx\tp,q\tok\n"
     '1\tback\\slash "q"\t\\N\ta\\b,"c"\tok\n2\t\t,\t\tbad\n3\tx\ty\tz\t\\N\n'
     "4\tok\tthirteen chars\tx,\tok\n5\tlast\ty\t\\N\tok\n",
     {3: '1\tback\\slash "q"\t\\N\ta\\b,"c"\tok', 4: "2\t\t,\t\tbad", 5: "3\tx\ty\tz\t\\N",
      6: "4\tok\tthirteen chars\tx,\tok"}),
    ("csv", ["-f", "csv"],
     'id,a,b,tags,note\n1,plain,x,"p,q",ok\n1,"dup, comma","say ""hi""","a,b",ok\n'
     '2,"two\nlines",,"",bad\n3,"",\'single\',",",\n4,ok,thirteen chars,x,ok\n9,too,few\n'
     "5,last,y,,ok\n",
     {3: '1,"dup, comma","say ""hi""","a,b",ok', 4: '2,"two\\nlines",,"",bad',
      6: "3,\"\",'single',\",\",", 7: "4,ok,thirteen chars,x,ok", 8: "9,too,few"}),
    ("csv_quote", ["-f", "csv", "--quote", "'"],
     "id,a,b,tags,note\n1,plain,x,'p,q',ok\n1,'dup, comma','say \"hi\"','a,b',ok\n"
     "2,'it''s\ntwo',,'',bad\n3,'','\"dq\"',',',\n4,ok,'thirteen chars',x,ok\n5,last,y,,ok\n",
     {3: "1,'dup, comma',say \"hi\",'a,b',ok", 4: "2,'it''s\\ntwo',,'',bad",
      6: "3,'',\"dq\",',',", 7: "4,ok,thirteen chars,x,ok"}),
    ("csv_null", ["-f", "csv", "--null", "NULL"],
     'id,a,b,tags,note\n1,plain,x,"p,q",ok\n1,NULL,"NULL",,ok\n2,"",,NULL,bad\n'
     "3,x,y,z,NULL\n4,ok,thirteen chars,x,ok\n5,last,y,,ok\n",
     {3: '1,NULL,"NULL",,ok', 4: "2,,,NULL,bad", 5: "3,x,y,z,NULL",
      6: "4,ok,thirteen chars,x,ok"}),
]


@test()
def test_rejects_same_for_text_and_binary_copy(ctx):
    """A refused row is written back in input form the same way whether it travelled as
    COPY text or as a binary tuple: for tsv and csv, with --quote and --null, the two
    rejects files are the same bytes and hold each refused row as it was read (quoting
    that the parser does not need aside)."""
    for name, opts, data, want in REQUOTE_CASES:
        path = ctx.write(f"{name}.in", data)
        files = {}
        for fmt in ("text", "binary"):
            schema = f"{name}_{fmt}"
            ctx.sql(REQUOTE_DDL.format(s=schema))
            rej = ctx.tmp / f"{schema}.rej"
            res = ctx.pgfeed("-t", f"{schema}.rq", "--copy-format", fmt, "-v", "--max-rejects",
                             "10", "--rejects", rej, *opts, path)
            ctx.expect_rc(res, 0)
            check(fmt == "text" or "using text COPY" not in res.err, f"{name}: fell back to text")
            ctx.expect_err(res, rf"rows rejected:\s+{len(want)}\b")
            eq(ctx.sql(f"SELECT array_agg(id ORDER BY id) FROM {schema}.rq;").strip(),
               "{1,5}", f"{name}, {fmt}: rows imported")
            files[fmt] = rej.read_bytes()
        eq(files["binary"], files["text"], f"{name}: rejects file, binary vs text COPY")
        got = {int(ln[0]): ln[2] for ln in rejects_lines(rej)}
        eq(got, want, f"{name}: refused rows in input form")


@test()
def test_rejects_file_that_cannot_be_written_fails_before_commit(ctx):
    """/dev/full takes the open and refuses every write (ENOSPC), as a full disk does: the
    batch holding the rejected row is not committed, the batch before it is, and the error
    says why, before the COMMIT that would have lost the row."""
    ctx.sql(INT_DDL)
    data = nums_tsv(300, bad={150: "150\tabcd\tbad value"})
    path = ctx.write("nums.tsv", data)
    res = ctx.pgfeed("-t", "nums", "-b", "100", "--max-rejects", "5", "--rejects", "/dev/full",
                     path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'^pgfeed: error: could not write the rejects file "/dev/full"$', re.M)
    ctx.expect_err(res, r"^pgfeed: detail: The system said: No space left on device\.", re.M)
    eq(table_ids(ctx), list(range(1, 101)), "only the batch before the rejected row")


@test()
def test_rejects_of_a_batch_on_disk_when_it_commits(ctx):
    """The rejects of a batch are in the file once its commit is visible: pgfeed is killed
    (-9) as soon as the checkpoint shows the batch committed, while it waits for more input
    on a FIFO, and the file still holds the batch's rejected row."""
    ctx.sql(INT_DDL)
    fifo = ctx.tmp / "in.fifo"
    os.mkfifo(fifo)
    rej = ctx.tmp / "r.tsv"
    p, errpath = ctx.spawn("-t", "nums", "-b", "100", "--max-rejects", "5", "--rejects", rej,
                           fifo)
    w = os.open(fifo, os.O_WRONLY)
    try:
        os.write(w, nums_tsv(150, bad={42: "42\tabcd\tbad value"}))
        deadline = time.monotonic() + 30
        while ctx.sql("SELECT count(*) FROM nums;").strip() != "100":  # a batch: 100 good rows
            check(time.monotonic() < deadline and p.poll() is None, "the first batch commits")
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(20)
    finally:
        os.close(w)
    lines = rejects_lines(rej)
    eq([ln[0] for ln in lines], ["43"], "the committed batch's reject (line 43) is in the file")
    eq(lines[0][2], "42\tabcd\tbad value", "original row")


@test(name="rejects_file_name_made_durable_with_its_directory")
def test_rejects_dir_synced(ctx):
    """A rejects file the import creates is fdatasync()ed, then its directory fsync()ed (its
    name as durable as its rows). Watched with strace (system calls, not timing)."""
    import re as _re
    import shutil
    import subprocess

    from harness import Skip, clean_env

    if shutil.which("strace") is None:
        raise Skip("strace not installed")
    data = ctx.gen(3000, seed=71, bad_line=100)
    ctx.create_names()
    path = ctx.write("bad.tsv", data)
    rj = ctx.tmp / "out" / "rj.tsv"
    rj.parent.mkdir()
    log = ctx.tmp / "strace.txt"

    def traced(*args):
        argv = ["strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync", "-o", str(log),
                *ctx.argv(["-t", "names", "--max-rejects", "5", "--rejects", str(rj), "-q",
                           *args, path])]
        # LeakSanitizer cannot run under ptrace
        p = subprocess.run(argv, capture_output=True, timeout=120,
                           env=clean_env({"ASAN_OPTIONS": "detect_leaks=0"}))
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr.decode()}")
        return log.read_text()

    out = traced()
    fd = _re.search(rf'openat\(AT_FDCWD, "{_re.escape(str(rj))}", [^)]*O_EXCL[^)]*\) = (\d+)', out)
    dfd = _re.search(rf'openat\(AT_FDCWD, "{_re.escape(str(rj.parent))}", [^)]*O_DIRECTORY[^)]*\) = (\d+)', out)
    check(fd and dfd, f"the rejects file and its directory were not both opened:\n{out[-3000:]}")
    a = out.find(f"fdatasync({fd.group(1)})")
    b = out.find(f"fsync({dfd.group(1)})")
    check(0 <= a < b, f"want fdatasync of the file, then fsync of its directory:\n{out[-3000:]}")
    check(rj.read_text().startswith("100\t"), "the rejected row is in the file")
