"""What a person reads after a run: a failure ends with its error, after a short account of
what is committed (no rates and no zeros); the SIGINT notice starts a line of its own when a
progress bar is drawn; a changed source shows its times as UTC dates; input that is not
text is named as such, with its first bytes; IMDb's header maps by name onto a table whose
columns are the snake_case of its names; --help's first line names CSV."""

import fcntl
import gzip
import os
import pty
import random
import re
import select
import signal
import subprocess
import termios
import time

from harness import LIVE, check, clean_env, eq, test

SUMMARY_OF_A_RUN = ("rate:", "elapsed:", "bytes read:", "bytes inflated:", "waited on:",
                    "rows rejected:")


def error_is_last(res):
    """The lines after "pgfeed: error:" are only the error's own (detail, context, hint,
    sqlstate); returns the lines before it."""
    lines = res.err.rstrip("\n").split("\n")
    at = [i for i, ln in enumerate(lines) if ln.startswith("pgfeed: error: ")]
    check(at, f"no error line:\n{res.describe()}")
    tail = lines[at[0] + 1:]
    check(all(re.match(r"pgfeed: (detail|context|hint|sqlstate): ", ln) for ln in tail),
          f"the error is not the last thing printed:\n{res.describe()}")
    return lines[:at[0]]


def no_run_summary(res):
    for word in SUMMARY_OF_A_RUN:
        check(word not in res.err, f"a failure printed the run's summary ({word!r}):\n"
                                   f"{res.describe()}")


@test(name="failure_with_nothing_committed_prints_the_error_alone")
def test_nothing_committed(ctx):
    path = ctx.write("n.tsv", ctx.gen(100, seed=3))
    res = ctx.pgfeed("-t", "nosuch", path)
    ctx.expect_rc(res, 1)
    before = error_is_last(res)
    no_run_summary(res)
    eq(before, ['pgfeed: rows imported:     0 into "nosuch"; nothing was committed'],
       "lines before the error")
    ctx.expect_err(res, r'^pgfeed: error: relation "nosuch" does not exist$', re.M)


@test(name="failure_after_committed_batches_says_what_stays_and_how_to_resume")
def test_committed_then_failed(ctx):
    ctx.create_names()
    path = ctx.write("bad.tsv", ctx.gen(3000, seed=5, bad_line=2500))
    res = ctx.pgfeed("-t", "names", "-b", "1000", path)
    ctx.expect_rc(res, 1)
    eq(ctx.count(), 2000, "rows committed")
    before = error_is_last(res)
    no_run_summary(res)
    check('pgfeed: rows imported:     2000 into "names" in 2 committed batches, which stay'
          in before, f"no line saying 2000 rows in 2 batches stay:\n{res.describe()}")
    check(any("--resume" in ln for ln in before), f"no word on --resume:\n{res.describe()}")
    check(len(before) <= 4, f"more than a short account before the error:\n{res.describe()}")
    # --progress json keeps its last line with the outcome
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--progress", "json", path)
    ctx.expect_rc(res, 1)
    last = [ln for ln in res.err.split("\n") if ln.startswith("{")][-1]
    check('"done":true' in last and '"status":"failed"' in last and '"exit_code":1' in last,
          f"last JSON line: {last}")


@test(name="changed_source_shows_its_times_as_utc_dates")
def test_changed_source_times(ctx):
    ctx.create_names()
    data = ctx.gen(3000, seed=6)
    path = ctx.write("changing.tsv", ctx.gen(3000, seed=6, bad_line=2500))
    os.utime(path, ns=(1796283578_348893991, 1796283578_348893991))
    res = ctx.pgfeed("-t", "names", "-b", "1000", path)
    ctx.expect_rc(res, 1)
    path.write_bytes(data)
    os.utime(path, ns=(1796290000_000000001, 1796290000_000000001))
    res = ctx.pgfeed("-t", "names", "-b", "1000", "--resume", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"^pgfeed: error: the source changed since the checkpoint$", re.M)
    ctx.expect_err(res, r"modified 2026-12-03T07:39:38\.348893991Z; it now has \d+ bytes, "
                        r"modified 2026-12-03T09:26:40\.000000001Z\.")
    check("1796283578" not in res.err, f"a raw epoch in the message:\n{res.describe()}")


def not_text(ctx, name, data, *want):
    res = ctx.pgfeed("-t", "names", ctx.write(name, data))
    ctx.expect_rc(res, 1)
    error_is_last(res)
    ctx.expect_err(res, r"^pgfeed: error: the input does not look like text$", re.M)
    for w in want:
        ctx.expect_err(res, w)
    ctx.expect_err(res, r"^pgfeed: hint: .*unzip -p", re.M)
    check("Header fields not found" not in res.err, f"a header message:\n{res.describe()}")
    return res


@test(name="input_that_is_not_text_is_named_with_its_first_bytes")
def test_not_text(ctx):
    ctx.create_names()
    rnd = random.Random(20).randbytes(4096)
    rnd = b"\xb0" + rnd[1:]  # not a gzip or zlib header, not UTF-8 at byte 1
    not_text(ctx, "random.gz", rnd, r"begins with 0xb0 0x", r"not valid UTF-8 at byte 1\b",
             r"not compressed with gzip or zlib")
    zip_ = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + rnd[:200]
    not_text(ctx, "names.zip", zip_, r"zero byte at byte 6\b",
             r"begins with 0x50 0x4b 0x03 0x04 0x14 0x00 0x00 0x00, the signature of a zip")
    # gzip around binary: it inflates, and what came out is said to be the gzip's content
    tar = b"name.basics.tsv\x00\x00\x00" + bytes(200)
    not_text(ctx, "names.tar.gz", gzip.compress(tar, mtime=0), r"is gzip data whose inflated "
             r"bytes begin with 0x6e 0x61 0x6d 0x65", r"zero byte at byte 16\b")
    # UTF-16 text is text in an encoding pgfeed cannot read: said as such, naming iconv
    res = ctx.pgfeed("-t", "names", ctx.write("utf16.tsv",
                                              "nconst\tprimaryName\n".encode("utf-16")))
    ctx.expect_rc(res, 1)
    error_is_last(res)
    ctx.expect_err(res, r"^pgfeed: error: input is in UTF-16, which pgfeed cannot read$", re.M)
    ctx.expect_err(res, r"^pgfeed: hint: .*iconv -f UTF-16", re.M)
    # a latin1 header is text all the same: the encoding is named, not "not text"
    res = ctx.pgfeed("-t", "names", ctx.write("latin1.tsv",
                                              "nconst\tprimaryName\u00e9\n".encode("latin-1")))
    ctx.expect_rc(res, 1)
    error_is_last(res)
    ctx.expect_err(res, r'^pgfeed: error: invalid byte sequence for encoding "UTF8" in the '
                   r"header$", re.M)
    ctx.expect_err(res, r"^pgfeed: hint: .*--encoding LATIN1", re.M)


@test(name="imdb_header_maps_by_name_onto_snake_case_columns_without_a_notice")
def test_snake_case_no_notice(ctx):
    ctx.sql("CREATE TABLE people (nconst text PRIMARY KEY, primary_name text, birth_year int, "
            "death_year int, primary_profession text[], known_for_titles text[]);")
    res = ctx.pgfeed("-t", "people", ctx.sample())
    ctx.expect_rc(res, 0)
    check("notice" not in res.err and "position" not in res.err,
          f"a notice for a table whose columns are the header's snake_case:\n{res.describe()}")
    eq(ctx.sql("SELECT birth_year, death_year, primary_profession[1] FROM people "
               "WHERE nconst = 'nm0000001';").strip(), "1899|1987|soundtrack", "nm0000001")


@test(name="help_first_line_names_csv")
def test_help_names_csv(ctx):
    first = ctx.cfg.help_text().split("\n")[0]
    check("CSV" in first and "TSV" in first, f"--help's first line: {first!r}")


def screen_lines(raw):
    """What a terminal shows for raw output: \\r returns to column 0, ESC [ K erases to the
    end of the line, \\n ends the line."""
    lines, cur, col = [], [], 0
    i = 0
    while i < len(raw):
        if raw.startswith("\033[K", i):
            del cur[col:]
            i += 3
            continue
        c = raw[i]
        i += 1
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        else:
            if col < len(cur):
                cur[col] = c
            else:
                cur.append(c)
            col += 1
    lines.append("".join(cur))
    return lines


@test(name="sigint_notice_starts_a_line_of_its_own_after_the_bar")
def test_sigint_notice_after_bar(ctx):
    from test_http import hold_lock
    ctx.create_names()
    path = ctx.gen_file(200_000, seed=71)
    _, release = hold_lock(ctx)  # the import stalls with its bar on the screen
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x78\x00\x00\x00\x00\x00")  # 24 x 120
    try:
        p = subprocess.Popen(ctx.argv(["-t", "names", "-b", "50000", path]),
                             stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env=clean_env(), start_new_session=True)
        LIVE.add(p)
        os.close(slave)
        raw = b""
        deadline = time.monotonic() + 60
        sent = False
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break  # EIO: every writer closed the terminal
                if not chunk:
                    break
                raw += chunk
            if not sent and re.search(rb"\d+%", raw):
                p.send_signal(signal.SIGINT)
                sent = True
                release()
        p.wait(30)
        LIVE.discard(p)
    finally:
        os.close(master)
        release()
    check(sent, f"no progress bar was drawn:\n{raw!r}")
    eq(p.returncode, 130, "exit status")
    text = raw.decode("utf-8", "replace")
    lines = screen_lines(text)
    hit = [ln for ln in lines if "SIGINT received" in ln]
    check(hit and all(ln.startswith("pgfeed: SIGINT received") for ln in hit),
          f"the SIGINT notice shares a line with the bar: {hit}\nraw: {text!r}")
