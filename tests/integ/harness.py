"""Integration test harness for pgfeed: a real PostgreSQL, the real binary, TAP output.

Runs under /usr/bin/python3 with its standard library only.

- Cluster: a throw-away PostgreSQL 15 started by scripts/lib.sh (pgfeed_pg_start /
  pgfeed_pg_stop, the one implementation shared with scripts/test.sh and scripts/demo.sh),
  on a Unix socket in a temp dir, or an already running one named by PGFEED_TEST_PGHOST
  (a socket directory; test.sh starts one cluster for both of its builds).
- Ctx: what one test gets: its own database, a scratch dir, and helpers to run pgfeed,
  psql and gen-names and to compare table contents with rows computed here from the input.
- A test is a function decorated with @test; it fails by raising Failure (via the check
  helpers), skips by raising Skip. Every pgfeed run is checked for sanitizer reports.
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIB_SH = REPO / "scripts" / "lib.sh"
SAMPLE = REPO.parent / "shared" / "data" / "name.basics.sample.tsv"
PG_BINDIR = os.environ.get("PGFEED_PG_BINDIR", "/usr/lib/postgresql/15/bin")

NAMES_COLS = "nconst, primary_name, birth_year, death_year, primary_professions, known_for_titles"
NAMES_DDL = (
    "CREATE TABLE names (nconst varchar(255), primary_name varchar(255), "
    "birth_year varchar(4), death_year varchar(4) DEFAULT '', "
    "primary_professions varchar[], known_for_titles varchar[])"
)
HEADER = ["nconst", "primaryName", "birthYear", "deathYear", "primaryProfession", "knownForTitles"]

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "UndefinedBehaviorSanitizer",
)


class Failure(Exception):
    pass


class Skip(Exception):
    pass


class TimeLimit(Failure):
    pass


def _time_limit_cb(signum, frame):
    raise TimeLimit("the test ran past its time limit")


# ---------------------------------------------------------------- registry

TESTS = []


TEST_TIME_LIMIT = 180  # seconds a test may take in all, unless it says otherwise


def test(slow=False, name=None, time_limit=None):
    """Registers a test function; slow tests are left out by --quick. A test that runs
    longer than time_limit seconds fails (and its processes are killed)."""

    def deco(fn):
        TESTS.append({"name": name or fn.__name__.removeprefix("test_"), "fn": fn, "slow": slow,
                      "time_limit": time_limit or TEST_TIME_LIMIT})
        return fn

    return deco


# ---------------------------------------------------------------- checks


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: got {got!r}, want {want!r}")


def short(s, n=2000):
    s = s if isinstance(s, str) else repr(s)
    return s if len(s) <= n else s[:n] + f"... ({len(s) - n} more chars)"


def rows_eq(got, want, what):
    """Compares two row lists and reports the first difference, not the whole lists."""
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise Failure(
                f"{what}: {len(got)} rows, want {len(want)}; first difference at row {i}:\n"
                f"  got  {g!r}\n  want {w!r}"
            )
    extra = got[len(want):] if len(got) > len(want) else want[len(got):]
    raise Failure(
        f"{what}: {len(got)} rows, want {len(want)}; "
        f"{'unexpected' if len(got) > len(want) else 'missing'} rows start with {extra[:2]!r}"
    )


# ---------------------------------------------------------------- expected rows


def parse_dsv(data, header=True, null="\\N", delim="\t", arrays=(4, 5), nfields=None):
    """Rows of pgfeed's tsv format as PostgreSQL should store them: the null marker is
    NULL, a field for an array column is split on every comma (empty field: empty array),
    everything else is literal (backslashes included)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if header:
        lines = lines[1:]
    out = []
    for ln in lines:
        f = ln.split(delim)
        if nfields is not None and len(f) != nfields:
            raise ValueError(f"bad test input line {ln!r}")
        row = []
        for i, v in enumerate(f):
            if v == null:
                row.append(None)
            elif i in arrays:
                row.append([] if v == "" else v.split(","))
            else:
                row.append(v)
        out.append(tuple(row))
    return out


_ARRAY_QUOTE = re.compile(r'[{}",\\ \t\n\r\v\f]')  # array_out's quoting (ASCII spaces only)
_COPY_ESC = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                           "\b": "\\b", "\f": "\\f", "\v": "\\v"})


def array_out(elems):
    """PostgreSQL's text output of a text[] value (array_out)."""
    out = []
    for e in elems:
        if e == "" or e.lower() == "null" or _ARRAY_QUOTE.search(e):
            e = '"' + e.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(e)
    return "{" + ",".join(out) + "}"


def copy_text_lines(data, header=True, null="\\N", delim="\t", arrays=(4, 5), limit=None):
    """What `COPY (SELECT ...) TO STDOUT` prints for the rows of a tsv input, one string per
    row: the same oracle as parse_dsv, in the server's output format, so that large tables
    can be compared as text (much faster than parsing the rows back)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if header:
        lines = lines[1:]
    if limit is not None:
        lines = lines[:limit]
    out = []
    for ln in lines:
        f = ln.split(delim)
        for i, v in enumerate(f):
            if v == null:
                f[i] = "\\N"
            elif i in arrays:
                if v == "":
                    f[i] = "{}"
                elif _ARRAY_QUOTE.search(v.replace(",", "")) or ",null," in "," + v.lower() + "," \
                        or ",," in "," + v + ",":
                    f[i] = array_out(v.split(",")).translate(_COPY_ESC)
                else:
                    f[i] = "{" + v + "}"
            else:
                f[i] = v.translate(_COPY_ESC)
        out.append("\t".join(f))
    return out


def read_prefix(path, nlines):
    """The first nlines lines of a (large) file, as bytes."""
    out = []
    with open(path, "rb") as f:
        for _ in range(nlines):
            ln = f.readline()
            if not ln:
                break
            out.append(ln)
    return b"".join(out)


# ---------------------------------------------------------------- processes


class Result:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed

    def describe(self):
        return (
            f"command: {' '.join(map(str, self.argv))}\nexit: {self.rc}\n"
            f"stdout: {short(self.out)}\nstderr: {short(self.err)}"
        )


def clean_env(extra=None):
    """The environment for pgfeed: no PG* or DATABASE_URL leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


LIVE = set()  # Popen objects to kill if the run is interrupted


def kill_live():
    for p in list(LIVE):
        try:
            p.kill()
            p.wait(5)
        except Exception:
            pass
    LIVE.clear()


def sanitizer_check(res):
    for m in SANITIZER_MARKERS:
        if m in res.err:
            raise Failure(f"sanitizer report ({m}):\n{res.describe()}")


def psql_env():
    env = clean_env()
    env["PGCLIENTENCODING"] = "UTF8"
    return env


def psql(conninfo, sql, timeout=120, check_rc=True):
    """Runs sql through psql -At; returns stdout. Raises Failure on an SQL error."""
    p = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"],
        input=sql.encode(),
        capture_output=True,
        timeout=timeout,
        env=psql_env(),
    )
    if check_rc and p.returncode != 0:
        raise Failure(f"psql failed ({p.returncode}) on {short(sql, 300)!r}:\n{p.stderr.decode()}")
    return p.stdout.decode("utf-8")


# ---------------------------------------------------------------- cluster


class Cluster:
    """A throw-away cluster from scripts/lib.sh, or an existing one (PGFEED_TEST_PGHOST)."""

    def __init__(self):
        self.dir = None
        self.owned = False

    def start(self, own=False):
        """own: start a throw-away cluster even when PGFEED_TEST_PGHOST names one (for a
        test that restarts its server and must not disturb anyone else's)."""
        existing = None if own else os.environ.get("PGFEED_TEST_PGHOST")
        if existing:
            self.dir = existing
            self.wait_ready()
            return
        # short path under /tmp: socket paths are limited to ~107 bytes, and the postgres
        # user must be able to enter it
        self.dir = tempfile.mkdtemp(prefix="pgfeed-integ-pg.", dir="/tmp")
        self.owned = True
        p = subprocess.run(
            ["bash", "-c", '. "$1" && pgfeed_pg_start "$2"', "bash", str(LIB_SH), self.dir],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if p.returncode != 0:
            self.stop()
            raise RuntimeError(f"could not start PostgreSQL in {self.dir}:\n{p.stdout}{p.stderr}")
        self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            p = subprocess.run(
                [f"{PG_BINDIR}/pg_isready", "-q", "-h", self.dir, "-p", "5432", "-U", "postgres"],
                capture_output=True,
            )
            if p.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {self.dir} not ready after {timeout} s")
            time.sleep(0.1)

    def stop(self):
        if not self.owned or not self.dir:
            return
        subprocess.run(
            ["bash", "-c", '. "$1" && pgfeed_pg_stop "$2"', "bash", str(LIB_SH), self.dir],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(self.dir, ignore_errors=True)
        self.owned = False

    def conninfo(self, db="postgres"):
        return f"host={self.dir} port=5432 dbname={db} user=postgres"

    def restart(self, mode="fast", timeout=60):
        """pg_ctl restart -m MODE, as the user the server runs as, then waits until it
        accepts connections. Only for a cluster this process started: one named by
        PGFEED_TEST_PGHOST may serve other runs."""
        if not self.owned:
            raise Failure(f"refusing to restart the cluster on {self.dir}: not started here")
        p = subprocess.run(
            ["bash", "-c", '. "$1" && _pgfeed_as_pg "$2" "$PGFEED_PG_BINDIR/pg_ctl" -D "$2/data"'
             ' -l "$2/server.log" -m "$3" -w -t "$4" restart', "bash", str(LIB_SH), self.dir,
             mode, str(timeout)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout + 30,
        )
        if p.returncode != 0:
            raise Failure(f"pg_ctl restart failed ({p.returncode}): {p.stdout.decode()}")
        self.wait_ready()


# ---------------------------------------------------------------- per-test context


class Config:
    def __init__(self, pgfeed, gen_names, workdir, cluster, tag):
        self.pgfeed = pgfeed
        self.gen_names = gen_names
        self.workdir = Path(workdir)
        self.cluster = cluster
        self.tag = tag
        self.gen_cache = {}
        self.to_drop = []
        self._help = None

    def help_text(self):
        if self._help is None:
            p = subprocess.run([self.pgfeed, "--help"], capture_output=True, text=True,
                               timeout=30, env=clean_env())
            self._help = p.stdout + p.stderr
        return self._help


class Ctx:
    def __init__(self, cfg, name):
        self.cfg = cfg
        self.name = name
        self.db = re.sub(r"[^a-z0-9_]", "_", f"t_{cfg.tag}_{name}".lower())[:60]
        self.tmp = cfg.workdir / name
        self.tmp.mkdir(parents=True, exist_ok=True)
        # one psql run: drop what the last passing test left, make this test's database
        # (psql's start-up is the cost here, not the SQL)
        drops = "".join(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE);\n' for d in cfg.to_drop)
        cfg.to_drop.clear()
        psql(cfg.cluster.conninfo(), f'{drops}DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE);\n'
             f'CREATE DATABASE "{self.db}" STRATEGY FILE_COPY;')
        self.conninfo = cfg.cluster.conninfo(self.db)

    def cleanup(self, keep=False):
        if not keep:
            self.cfg.to_drop.append(self.db)
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- SQL

    def sql(self, q):
        return psql(self.conninfo, q)

    def count(self, table="names"):
        return int(self.sql(f"SELECT count(*) FROM {table};").strip())

    def rows(self, table="names", cols=NAMES_COLS, order="nconst"):
        """Table contents, one tuple per row (arrays as lists, NULL as None), ordered
        bytewise by `order`."""
        out = self.sql(
            f'SELECT json_build_array({cols}) FROM {table} ORDER BY {order} COLLATE "C";'
        )
        return [tuple(json.loads(ln)) for ln in out.split("\n") if ln]

    def copy_text(self, table="names", cols=NAMES_COLS, order='nconst COLLATE "C"'):
        """Table contents as `COPY ... TO STDOUT` prints them, one string per row."""
        out = self.sql(f"COPY (SELECT {cols} FROM {table} ORDER BY {order}) TO STDOUT;")
        return out.split("\n")[:-1] if out else []

    def expect_table(self, data, header=True, limit=None, table="names", cols=NAMES_COLS,
                     null="\\N", delim="\t", order='nconst COLLATE "C"', arrays=(4, 5),
                     what=None):
        """The table holds exactly the (first `limit`) rows of the tsv input `data`, in
        `order`, which must sort like the input (nm%07d does)."""
        want = copy_text_lines(data, header=header, null=null, delim=delim, arrays=arrays,
                               limit=limit)
        rows_eq(self.copy_text(table, cols, order), want, what or table)

    def create_names(self, table="names"):
        self.sql(NAMES_DDL.replace("TABLE names", f"TABLE {table}") + ";")

    # ---- files

    def gen(self, rows, seed=1, header=True, bad_line=None):
        """Bytes from gen-names, cached for the whole run."""
        key = (rows, seed, header, bad_line)
        if key not in self.cfg.gen_cache:
            argv = [self.cfg.gen_names, "--rows", str(rows), "--seed", str(seed)]
            if not header:
                argv.append("--no-header")
            if bad_line is not None:
                argv += ["--bad-line", str(bad_line)]
            p = subprocess.run(argv, capture_output=True, timeout=300)
            if p.returncode != 0:
                raise Failure(f"gen-names failed: {argv}: {p.stderr.decode()}")
            self.cfg.gen_cache[key] = p.stdout
        return self.cfg.gen_cache[key]

    def gen_file(self, rows, seed=1, header=True, bad_line=None, name=None):
        """A generated file on disk, shared by the run (for inputs too large to keep)."""
        name = name or f"gen-{rows}-{seed}-{int(header)}-{bad_line}.tsv"
        path = self.cfg.workdir / name
        if not path.exists():
            argv = [self.cfg.gen_names, "--rows", str(rows), "--seed", str(seed)]
            if not header:
                argv.append("--no-header")
            if bad_line is not None:
                argv += ["--bad-line", str(bad_line)]
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                p = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, timeout=600)
            if p.returncode != 0:
                raise Failure(f"gen-names failed: {argv}: {p.stderr.decode()}")
            tmp.rename(path)
        return path

    def write(self, name, data, gz=False):
        path = self.tmp / name
        if isinstance(data, str):
            data = data.encode("utf-8")
        if gz:
            data = gzip.compress(data, compresslevel=6, mtime=0)
        path.write_bytes(data)
        return path

    def sample(self):
        if not SAMPLE.exists():
            raise Skip(f"{SAMPLE} not found (the real IMDb sample lives outside the repo)")
        return SAMPLE

    # ---- pgfeed

    def supports(self, option):
        return option in self.cfg.help_text()

    def argv(self, args, db=True):
        argv = [self.cfg.pgfeed]
        if db:
            argv += ["-d", self.conninfo]
        return argv + [str(a) for a in args]

    def pgfeed(self, *args, db=True, input=None, stdin_path=None, timeout=150, env=None):
        """Runs pgfeed to completion. input: bytes for stdin; stdin_path: a file for it."""
        argv = self.argv(args, db)
        t0 = time.monotonic()
        stdin = open(stdin_path, "rb") if stdin_path else (subprocess.PIPE if input is not None
                                                           else subprocess.DEVNULL)
        try:
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=clean_env(env))
            LIVE.add(p)
            try:
                out, err = p.communicate(input=input, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                raise Failure(
                    f"pgfeed did not finish within {timeout} s: {' '.join(argv)}\n"
                    f"stderr: {short(err.decode('utf-8', 'replace'))}"
                )
            finally:
                LIVE.discard(p)
        finally:
            if stdin_path:
                stdin.close()
        res = Result(argv, p.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"), time.monotonic() - t0)
        sanitizer_check(res)
        return res

    def spawn(self, *args, db=True, stdin_path=None, env=None):
        """Starts pgfeed in the background; stderr goes to a file. Returns (Popen, errpath)."""
        argv = self.argv(args, db)
        errpath = self.tmp / f"stderr-{time.monotonic_ns()}.txt"
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        with open(errpath, "wb") as errf:
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=errf,
                                 env=clean_env(env))
        if stdin_path:
            stdin.close()
        p.argv = argv
        LIVE.add(p)
        return p, errpath

    def finish(self, p, errpath, timeout=120):
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure(f"pgfeed did not exit within {timeout} s: {' '.join(p.argv)}\n"
                          f"stderr: {short(errpath.read_text('utf-8', 'replace'))}")
        finally:
            LIVE.discard(p)
        res = Result(p.argv, p.returncode, "", errpath.read_text("utf-8", "replace"), 0)
        sanitizer_check(res)
        return res

    def expect_rc(self, res, rc):
        if isinstance(rc, int):
            rc = (rc,)
        if res.rc not in rc:
            raise Failure(f"exit status {res.rc}, want {' or '.join(map(str, rc))}\n{res.describe()}")

    def expect_err(self, res, pattern, flags=re.I):
        if not re.search(pattern, res.err, flags):
            raise Failure(f"stderr does not match /{pattern}/\n{res.describe()}")


# ---------------------------------------------------------------- runner


def run(tests, cfg, keep=False, out=sys.stdout):
    """Runs tests, printing TAP. Returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    n = 0
    for t in tests:
        n += 1
        t0 = time.monotonic()
        ctx = None
        status, diag = "ok", None
        limit = t.get("time_limit", TEST_TIME_LIMIT)
        old_handler = signal.signal(signal.SIGALRM, _time_limit_cb)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            try:
                ctx = Ctx(cfg, t["name"])
                t["fn"](ctx)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
        except TimeLimit:
            status, diag = "fail", f"still running after {limit} s: stopped"
        except Skip as e:
            status, diag = "skip", str(e)
        except Failure as e:
            status, diag = "fail", str(e)
        except KeyboardInterrupt:
            raise
        except Exception:
            status, diag = "fail", traceback.format_exc()
        finally:
            kill_live()
        dt = time.monotonic() - t0
        if status == "ok":
            passed += 1
            print(f"ok {n} - {t['name']} ({dt:.1f} s)", file=out)
        elif status == "skip":
            skipped += 1
            print(f"ok {n} - {t['name']} # SKIP {diag}", file=out)
        else:
            failed += 1
            print(f"not ok {n} - {t['name']} ({dt:.1f} s)", file=out)
            for ln in diag.rstrip("\n").split("\n"):
                print(f"#   {ln}", file=out)
        out.flush()
        if ctx is not None:
            try:
                ctx.cleanup(keep=keep or status == "fail")
            except Exception:
                pass
    print(f"1..{n}", file=out)
    print(f"# {passed} passed, {failed} failed, {skipped} skipped", file=out)
    return passed, failed, skipped


def install_signal_handlers():
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so the finally blocks stop the cluster."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
    # a shell without job control starts background commands with SIGINT ignored, and
    # Python then leaves it ignored: take it back so that `kill -INT` cleans up too
    signal.signal(signal.SIGINT, signal.default_int_handler)


def committed_rows(ctx):
    """Rows committed by every checkpoint in the test's database (0 before the table exists)."""
    try:
        return int(ctx.sql("SELECT coalesce(sum(rows_committed), 0) FROM pgfeed_checkpoints;")
                   .strip())
    except Failure:
        return 0


def kill_9_after_a_batch(ctx, args, path, rows):
    """Runs pgfeed ARGS PATH, SIGKILLs it once a batch is committed (polling the checkpoint,
    bounded at 120 s) and returns the rows committed, checked to be some but not all."""
    p, errpath = ctx.spawn(*args, path)
    deadline = time.monotonic() + 120
    while committed_rows(ctx) == 0:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) before the kill:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise Failure("no batch committed within 120 s")
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    ctx.finish(p, errpath, timeout=60)
    done = committed_rows(ctx)
    check(0 < done < rows, f"{done} rows committed before the kill; want some, not all")
    return done
