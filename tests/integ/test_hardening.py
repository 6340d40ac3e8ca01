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


# ---------------------------------------------------------------- b) rejects file


@test(name="hardening_rejects_file_created_new")
def test_rejects_file_created_new(ctx):
    """A fresh run refuses an existing rejects file up front (no row committed), never
    writes through a symbolic link, and appends only with --resume; --restart is fresh."""
    ctx.sql(INT_DDL)
    data = nums_tsv(50, bad={10: "10\tbad\tx"})
    path = ctx.write("nums.tsv", data)
    rej = ctx.tmp / "r.tsv"
    old = b"1\tan earlier run's reject\told row\n"
    rej.write_bytes(old)
    for extra in ([], ["--restart"]):
        res = ctx.pgfeed("-t", "nums", "--max-rejects", "5", "--rejects", rej, *extra, path)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r'^pgfeed: error: rejects file ".*r\.tsv" already exists$', re.M)
        ctx.expect_err(res, r"^pgfeed: hint: Remove the file, choose another with --rejects, "
                            r"or use --resume", re.M)
        eq(ctx.count("nums"), 0, f"rows committed {extra}")
        eq(rej.read_bytes(), old, f"the existing file after a refused run {extra}")

    # a symbolic link: refused fresh and with --resume, its target untouched
    target = ctx.tmp / "target.txt"
    target.write_bytes(b"keep me\n")
    link = ctx.tmp / "link.tsv"
    link.symlink_to(target)
    dangling = ctx.tmp / "dangling.tsv"
    dangling.symlink_to(ctx.tmp / "nowhere.tsv")
    for lk, extra in ((link, []), (link, ["--resume"]), (dangling, [])):
        res = ctx.pgfeed("-t", "nums", "--max-rejects", "5", "--rejects", lk, *extra, path)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r'^pgfeed: error: rejects file ".*" is a symbolic link$', re.M)
        eq(ctx.count("nums"), 0, f"rows committed ({lk.name} {extra})")
    eq(target.read_bytes(), b"keep me\n", "the link's target")
    check(not (ctx.tmp / "nowhere.tsv").exists(), "a dangling link's target was created")

    # --resume appends to the interrupted run's file
    res = ctx.pgfeed("-t", "nums", "--max-rejects", "5", "--rejects", rej, "--resume", path)
    ctx.expect_rc(res, 0)
    eq(ctx.count("nums"), 49, "rows imported with --resume")
    lines = rej.read_bytes().split(b"\n")
    eq(lines[0] + b"\n", old, "the earlier line kept")
    check(lines[1].startswith(b"11\t"), f"the new reject appended: {lines!r}")

    # a new file: created, and the default name follows the same rule
    ctx.sql("TRUNCATE nums; DROP TABLE pgfeed_checkpoints;")
    fresh = ctx.tmp / "fresh.tsv"
    res = ctx.pgfeed("-t", "nums", "--max-rejects", "5", "--rejects", fresh, path)
    ctx.expect_rc(res, 0)
    check(fresh.read_bytes().startswith(b"11\t"), "the new rejects file")
    work = ctx.tmp / "work"
    work.mkdir()
    (work / "nums.rejects.tsv").write_bytes(old)
    ctx.sql("TRUNCATE nums; DROP TABLE pgfeed_checkpoints;")
    res = run_in(ctx, work, "-t", "nums", "--max-rejects", "5", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r'rejects file "nums\.rejects\.tsv" already exists')
    eq(ctx.count("nums"), 0, "rows committed with the default file present")
    eq((work / "nums.rejects.tsv").read_bytes(), old, "the default file untouched")
    # /dev/null stays usable for throwing rejects away
    res = ctx.pgfeed("-t", "nums", "--max-rejects", "5", "--rejects", "/dev/null", path)
    ctx.expect_rc(res, 0)
    eq(ctx.count("nums"), 49, "rows imported with --rejects /dev/null")


# ---------------------------------------------------------------- c) default rejects path


@test(name="hardening_default_rejects_path_from_table_name")
def test_default_rejects_path_from_table_name(ctx):
    """The default rejects file is named from the unquoted table name (schema.relation),
    path characters replaced: it stays one file in the working directory."""
    ctx.sql('CREATE SCHEMA "a/../../b"; CREATE TABLE "a/../../b".t (id int, n int, label text);'
            'CREATE TABLE "We ird" (id int, n int, label text);'
            'CREATE TABLE ".hidden" (id int, n int, label text);' + INT_DDL)
    path = ctx.write("nums.tsv", nums_tsv(20, bad={5: "5\tbad\tx"}))
    work = ctx.tmp / "w1" / "w2"
    work.mkdir(parents=True)
    cases = [('"a/../../b".t', "a_.._.._b.t.rejects.tsv", '"a/../../b".t'),
             ('public."We ird"', "public.We_ird.rejects.tsv", '"We ird"'),
             ('".hidden"', "_hidden.rejects.tsv", '".hidden"'),
             ("NUMS", "nums.rejects.tsv", "nums")]
    for table, want, sql_name in cases:
        before = set(p for p in ctx.tmp.rglob("*"))
        res = run_in(ctx, work, "-t", table, "--max-rejects", "1", path)
        ctx.expect_rc(res, 0)
        eq(int(ctx.sql(f"SELECT count(*) FROM {sql_name};")), 19, f"rows in {table}")
        made = sorted(str(p.relative_to(ctx.tmp)) for p in set(ctx.tmp.rglob("*")) - before)
        eq(made, [f"w1/w2/{want}"], f"files made for -t {table}")
        check((work / want).read_bytes().startswith(b"6\t"), f"the reject in {want}")
        ctx.expect_err(res, rf"^pgfeed: rejects file:\s+{re.escape(want)}$", re.M)


# ---------------------------------------------------------------- d) secrets in argv


def hold_names_lock(ctx):
    from test_http import hold_lock
    return hold_lock(ctx)


def waiting_backends(ctx):
    return set(ctx.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgfeed' AND datname = current_database()"
                       " AND wait_event_type = 'Lock';").split())


def wait_blocked(ctx, p, errpath, before=frozenset(), timeout=60):
    """Until a new backend of pgfeed (not in `before`: a killed client's backend waits on
    the lock until it is granted) waits on the lock. Bounded; says what it saw if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if waiting_backends(ctx) - set(before):
            return
        if p.poll() is not None:
            break
        time.sleep(0.05)
    act = ctx.sql("SELECT application_name, state, wait_event_type, left(query, 80) "
                  "FROM pg_stat_activity WHERE datname = current_database();")
    raise Failure(f"pgfeed never waited on the lock (exit {p.poll()}); sessions:\n{act}\n"
                  f"stderr: {errpath.read_text('utf-8', 'replace')}")


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


def stop(ctx, p, errpath):
    p.terminate()
    res = ctx.finish(p, errpath)
    ctx.expect_rc(res, 143)
    return res


@test(name="hardening_passwords_hidden_from_cmdline")
def test_passwords_hidden_from_cmdline(ctx):
    """While pgfeed runs, /proc/PID/cmdline shows no password given in -d (conninfo or
    URI) or in an http URL: the secret part is overwritten, the rest is as typed."""
    from test_http import Httpd
    ctx.create_names()
    data = ctx.gen(2000, seed=3)
    src = ctx.write("names.tsv", data)
    ctx.write("names.tsv.gz", data, gz=True)
    srv = Httpd(ctx.tmp)
    _, release = hold_names_lock(ctx)
    try:
        # conninfo keyword, quoted value with a space; file source
        conn = ctx.conninfo + " password='s3cr3t pw' connect_timeout=30"
        before = waiting_backends(ctx)
        p, errpath = ctx.spawn("-d", conn, "-t", "names", src, db=False)
        wait_blocked(ctx, p, errpath, before)
        args = cmdline(p.pid)
        stop(ctx, p, errpath)
        check(not any(b"s3cr3t" in a for a in args), f"password in cmdline: {args!r}")
        want = (ctx.conninfo + " password='xxxxxxxxx' connect_timeout=30").encode()
        eq(args[1:], [b"-d", want, b"-t", b"names", str(src).encode()], "cmdline")

        # URI with user:password@ and ?password=, given as --db=...; an http URL with
        # user:password@ (the server ignores them)
        host = ctx.cfg.cluster.dir.replace("/", "%2F")
        uri = f"postgresql://postgres:ur1pw@/{ctx.db}?host={host}&password=qu3rypw&port=5432"
        url = f"http://alice:h77ppw@127.0.0.1:{srv.port}/names.tsv.gz"
        before = waiting_backends(ctx)
        p, errpath = ctx.spawn(f"--db={uri}", "-t", "names", url, db=False)
        wait_blocked(ctx, p, errpath, before)
        args = cmdline(p.pid)
        stop(ctx, p, errpath)
        for secret in (b"ur1pw", b"qu3rypw", b"h77ppw"):
            check(not any(secret in a for a in args), f"{secret!r} in cmdline: {args!r}")
        eq(args[1:], [f"--db=postgresql://postgres:xxxxx@/{ctx.db}?host={host}"
                      f"&password=xxxxxxx&port=5432".encode(), b"-t", b"names",
                      f"http://alice:xxxxxx@127.0.0.1:{srv.port}/names.tsv.gz".encode()],
           "cmdline")
        release()
        # the copies kept for the import are intact: it connects and downloads
        res = ctx.pgfeed("--db=" + uri, "-t", "names", url, db=False)
        ctx.expect_rc(res, 0)
        ctx.expect_table(data)
    finally:
        release()
        srv.stop()


class AuthHandler(BaseHTTPRequestHandler):
    """Serves the server's body to requests with the right Basic credentials only."""

    def do_GET(self):
        srv = self.server
        srv.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != srv.want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="pgfeed-test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(srv.body)))
        self.end_headers()
        self.wfile.write(srv.body)

    def log_message(self, *a):
        pass


@test(name="hardening_http_credentials_from_netrc")
def test_http_credentials_from_netrc(ctx):
    """No password on the command line: ~/.netrc gives it for the host."""
    ctx.create_names()
    data = ctx.gen(300, seed=5)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), AuthHandler)
    httpd.body = data
    httpd.want = "Basic " + base64.b64encode(b"alice:n3trcpw").decode()
    httpd.seen = []
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/names.tsv"
        home = ctx.tmp / "home"
        home.mkdir()
        res = ctx.pgfeed("-t", "names", "--retries", "0", url, env={"HOME": str(home)})
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"HTTP status 401")
        netrc = home / ".netrc"
        netrc.write_text('machine 127.0.0.1 login alice password n3trcpw\n')
        netrc.chmod(0o600)
        res = ctx.pgfeed("-t", "names", "--retries", "0", url, env={"HOME": str(home)})
        ctx.expect_rc(res, 0)
        ctx.expect_table(data)
        check("n3trc" not in res.err, f"the password was printed:\n{res.describe()}")
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- e) empty input


@test(name="hardening_empty_input_warns")
def test_empty_input_warns(ctx):
    """0 bytes, a header only, an empty .gz, empty stdin: exit 0 with a warning."""
    ctx.sql(INT_DDL)
    cases = [("empty.tsv", b"", False, "it is empty", []),
             ("header.tsv", b"id\tn\tlabel\n", False, "it holds only a header line", []),
             ("empty.tsv.gz", b"", True, "it is empty", []),
             ("header.csv", b"id,n,label\r\n", False, "it holds only a header line", [])]
    for name, body, gz, why, extra in cases:
        path = ctx.write(name, body, gz=gz)
        res = ctx.pgfeed("-t", "nums", *extra, path)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, rf"^pgfeed: warning: the input has no rows: {why}$", re.M)
    res = ctx.pgfeed("-t", "nums", "-q", "-", input=b"")
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, r"^pgfeed: warning: the input has no rows: it is empty$", re.M)
    res = ctx.pgfeed("-t", "nums", ctx.write("one.tsv", nums_tsv(1)))
    ctx.expect_rc(res, 0)
    check("no rows" not in res.err, f"a warning for an input with a row:\n{res.describe()}")
    eq(ctx.count("nums"), 1, "rows")


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
