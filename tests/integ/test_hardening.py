"""Hardening (issue 11, item 8): what reaches the terminal is escaped, the rejects file is
made new and never through a symbolic link, its default name cannot leave the working
directory, passwords do not stay in /proc/PID/cmdline, HTTP credentials can come from a
netrc file, an input without rows says so, and long header errors are cut with "...".
"""

import base64
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import LIVE, Failure, Result, check, clean_env, eq, sanitizer_check, test

INT_DDL = "CREATE TABLE nums (id int, n int, label text);"
ESC = "\x1b"


def nums_tsv(count, header="id\tn\tlabel", bad=None):
    out = [header] if header is not None else []
    for i in range(1, count + 1):
        out.append((bad or {}).get(i, f"{i}\t{i * 7}\tlabel {i}"))
    return ("\n".join(out) + "\n").encode()


def run_in(ctx, cwd, *args, db=True, input=None, env=None, timeout=120):
    """ctx.pgfeed, but from the directory cwd (where a default rejects file goes)."""
    argv = ctx.argv(args, db)
    p = subprocess.run(argv, cwd=cwd, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, env=clean_env(env), timeout=timeout)
    res = Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                 p.stderr.decode("utf-8", "replace"), 0)
    sanitizer_check(res)
    return res


def no_raw_controls(res):
    """stderr holds no control character but the line ends (and no C1 control)."""
    bad = sorted({c for c in res.err if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) < 0xa0})
    check(not bad, f"raw control characters {bad!r} on stderr:\n{res.describe()}")


def table_ids(ctx, table="nums"):
    return [int(x) for x in ctx.sql(f"SELECT id FROM {table} ORDER BY id;").split()]


# ---------------------------------------------------------------- a) escaping


@test(name="hardening_control_chars_escaped")
def test_control_chars_escaped(ctx):
    """ESC and other control bytes from the header, the data (via the server's message), -t
    and an option value come out as \\xNN, escaped once, in notices, errors and usage."""
    ctx.sql(INT_DDL)
    # header names that do not match but count right: a notice, mapping by position
    path = ctx.write("pos.tsv", nums_tsv(3, header=f"id\tn{ESC}[31mRED\tla\x9bbel\x07"))
    res = ctx.pgfeed("-t", "nums", path)
    ctx.expect_rc(res, 0)
    no_raw_controls(res)
    ctx.expect_err(res, r'^pgfeed: notice: header names "n\\x1b\[31mRED", "la\\xc2\\x9bbel\\x07"',
                   re.M)
    # not matching, field count differs: the error's detail
    path = ctx.write("bad.tsv", nums_tsv(0, header=f"id\tz{ESC}z") + b"1\t2\n")
    res = ctx.pgfeed("-t", "nums", path)
    ctx.expect_rc(res, 1)
    no_raw_controls(res)
    ctx.expect_err(res, r'^pgfeed: detail: Header fields not found .*"z\\x1bz"', re.M)
    # a value the server refuses: its message quotes the value
    path = ctx.write("val.tsv", nums_tsv(2, bad={2: f"2\tx{ESC}]0;pwned\x07y\tl"}))
    res = ctx.pgfeed("-t", "nums", "--copy-format", "text", path)
    ctx.expect_rc(res, 1)
    no_raw_controls(res)
    ctx.expect_err(res, r'^pgfeed: error: invalid input syntax for type integer: '
                        r'"x\\x1b\]0;pwned\\x07y"', re.M)
    # the table name, in the server's error and in the summary
    res = ctx.pgfeed("-t", f"nu{ESC}ms", path)
    ctx.expect_rc(res, 1)
    no_raw_controls(res)
    ctx.expect_err(res, r'relation "nu\\x1bms" does not exist')
    ctx.expect_err(res, r'rows imported:\s+0 into "nu\\x1bms"')
    # an option value in a usage error
    res = ctx.pgfeed("-t", "nums", "--format", f"{ESC}[2J", path)
    ctx.expect_rc(res, 2)
    no_raw_controls(res)
    ctx.expect_err(res, r'^pgfeed: error: invalid value "\\x1b\[2J" for --format', re.M)


# ---------------------------------------------------------------- f) long header errors


@test(name="hardening_long_header_error_cut")
def test_long_header_error_cut(ctx):
    """A long header name is cut at 100 bytes with "...", and a long list of names says how
    many more there are instead of stopping mid-name."""
    ctx.sql(INT_DDL)
    long_name = "x" * 300
    names = [long_name] + [f"unknown_field_number_{i:02d}_{'y' * 40}" for i in range(40)]
    path = ctx.write("h.tsv", ("\t".join(names) + "\n" + "\t".join(["1"] * 41) + "\n").encode())
    res = ctx.pgfeed("-t", "nums", path)
    ctx.expect_rc(res, 1)
    detail = re.search(r"^pgfeed: detail: (.*)$", res.err, re.M)
    check(detail, f"no detail:\n{res.describe()}")
    detail = detail.group(1)
    check("x" * 101 not in detail and f'"{"x" * 100}..."' in detail,
          f"the long name is not cut at 100 bytes with ...:\n{detail}")
    check(re.search(r'"unknown_field_number_08_y+", and 31 more\. The file has 41 fields; the '
                    r'table has 3 columns: "id", "n", "label"\.$', detail),
          f"the list does not end with how many more:\n{detail}")
    # the notice of a by-position mapping cuts the same way
    path = ctx.write("p.tsv", (f"id\t{long_name}\tlabel\n1\t2\t3\n").encode())
    res = ctx.pgfeed("-t", "nums", path)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf'^pgfeed: notice: header names "{"x" * 100}\.\.\." do not match', re.M)
