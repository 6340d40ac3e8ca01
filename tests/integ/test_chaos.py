"""Chaos rounds: imports disrupted at a random moment, then finished the way a user would,
each round ending with a table equal to a clean import of its input exactly.

A round is fully described by its seed (an integer): the source (file, HTTP with Range,
HTTP without Range, stdin), the disruption (SIGKILL, SIGINT, the backend terminated, the
server restarted, the HTTP connection dropped mid-body), -j 1 or 2, --copy-format text or
binary, the input (gen-names rows, gzip in one or several members, with or without a
header), the batch size, the moment of the disruption and whether the --resume runs that
follow are killed too. Consecutive seeds cycle through every source x disruption pair
(the source is seed mod 4, the disruption seed mod 5; a dropped connection needs HTTP, so
for file and stdin sources the seed picks another disruption).

The disruption waits for an event, not for time: a counter of `--progress json` on stderr
(rows_read or rows_committed) reaching a value drawn from the seed. Then:
  SIGKILL, SIGINT      exit -9 / 130 (or 0 if the import finished first); run again with
                       --resume until it exits 0, those runs sometimes killed as well;
  terminated backend,  pgfeed retries within the run and exits 0; a stdin import may
  server restart       instead fail with exit 1 and a hint to re-pipe with --resume,
                       which is then done with the same bytes;
  dropped connection   (HTTP only) retried within the run, exit 0.
After every interrupted run the table must hold whole batches that are the first rows of
the input and agree with the checkpoint; after exit 0 it must equal the input exactly:
count, count(distinct nconst) and an md5 of every row (COPY TO text of the table ordered by
nconst against the same text computed here from the input, harness.copy_text_lines).

The rounds use a throw-away cluster of their own (even when PGFEED_TEST_PGHOST names a
shared one), so that terminating backends and restarting the server disturb nothing else.

  PGFEED_CHAOS_SEED=S     first round's seed (default 1000, the same in every CI run)
  PGFEED_CHAOS_ROUNDS=N   number of rounds, seeds S, S+1, ... (default 20, 10 in an ASan
                          build, and no new round after 200 s; with N set, no such bound)
  PGFEED_CHAOS_KEEP=1     leave the rounds' cluster running (its socket dir is printed)
Replay one round:  PGFEED_CHAOS_SEED=S PGFEED_CHAOS_ROUNDS=1 tests/integ/run.py -k chaos
"""

import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

from harness import (LIVE, NAMES_DDL, SANITIZER_MARKERS, Cluster, Failure, Result, TimeLimit,
                     clean_env, copy_text_lines, psql, sanitizer_check, short, test)
from test_http import Httpd, asan_build

CI_SEED = 1000
CI_ROUNDS = 20          # the normal build: every source x disruption pair once
CI_ROUNDS_ASAN = 10     # a sanitized build runs pgfeed several times slower
CI_BUDGET_S = 200       # CI stops starting rounds after this long (a slow machine)
RUN_TIMEOUT_S = 60      # a pgfeed run that takes longer is a hang (x3 under ASan)

SOURCES = ("file", "http", "http-norange", "stdin")
DISRUPTIONS = ("sigkill", "sigint", "terminate", "restart", "drop")

ENV_SEED = os.environ.get("PGFEED_CHAOS_SEED")
ENV_ROUNDS = os.environ.get("PGFEED_CHAOS_ROUNDS")


def _time_limit():
    n = int(ENV_ROUNDS) if ENV_ROUNDS and ENV_ROUNDS.isdigit() else 0
    return max(300, 30 + 90 * n)


# ---------------------------------------------------------------- a round's plan


def plan(seed):
    """Everything a round does, drawn from its seed alone (never from timing)."""
    r = random.Random(f"pgfeed-chaos/{seed}")
    source = SOURCES[seed % len(SOURCES)]
    disruption = DISRUPTIONS[seed % len(DISRUPTIONS)]
    if disruption == "drop" and not source.startswith("http"):
        disruption = r.choice(DISRUPTIONS[:4])
    rows = r.randrange(20_000, 250_001)
    p = {
        "seed": seed,
        "source": source,
        "disruption": disruption,
        "jobs": r.choice((1, 2)),
        "copy_format": r.choice(("text", "binary")),
        "rows": rows,
        "data_seed": r.randrange(1, 1 << 30),
        "header": r.random() < 0.8,
        "members": r.choice((1, 1, 1, 2, 3, 7)),
        "level": r.choice((1, 1, 3)),
        "batch": r.randrange(max(500, rows // 40), max(1000, rows // 4)),
        # the event that triggers the disruption: a counter reaching a fraction of the rows
        "counter": r.choice(("rows_read", "rows_committed")),
        "at": [0.0 if r.random() < 0.15 else r.uniform(0.02, 0.85) for _ in range(2)],
        "repeat": r.choice((1, 1, 2)),              # terminate / restart once or twice
        "double_sigint": r.random() < 0.2,
        "terminate_one": r.random() < 0.5,          # -j 2: one backend, else all of them
        "drop_at": r.uniform(0.03, 0.97),           # fraction of the compressed bytes
        "drops": r.choice((1, 1, 2)),
        # --resume runs: killed again (signal, counter, fraction of the rest) or not
        "resume_kills": [(r.choice(("sigkill", "sigint")), r.choice(("rows_read", "rows_committed")),
                          r.uniform(0.0, 0.9)) if r.random() < 0.35 else None for _ in range(3)],
    }
    return p


def describe(p):
    bits = [p["source"], p["disruption"], f"-j {p['jobs']}", p["copy_format"],
            f"rows={p['rows']}", f"batch={p['batch']}", f"members={p['members']}"]
    if not p["header"]:
        bits.append("no header")
    if p["disruption"] == "drop":
        bits.append(f"drop at {p['drop_at']:.2f} x{p['drops']}")
    elif p["disruption"] in ("sigkill", "sigint", "terminate", "restart"):
        n = p["repeat"] if p["disruption"] in ("terminate", "restart") else 1
        bits.append(f"at {p['counter']} " + ", ".join(f"{a:.2f}" for a in p["at"][:n]))
    return " ".join(bits)


# ---------------------------------------------------------------- input and oracle


def make_input(cfg, p, path):
    """Writes the round's gzip input; returns its COPY-text lines (the oracle)."""
    argv = [cfg.gen_names, "--rows", str(p["rows"]), "--seed", str(p["data_seed"])]
    if not p["header"]:
        argv.append("--no-header")
    g = subprocess.run(argv, capture_output=True, timeout=120)
    if g.returncode != 0:
        raise Failure(f"gen-names failed: {argv}: {g.stderr.decode()}")
    data = g.stdout
    r = random.Random(f"pgfeed-chaos-members/{p['seed']}")
    cuts = sorted(r.sample(range(1, len(data)), p["members"] - 1))  # anywhere, mid-line too
    with open(path, "wb") as f:
        for a, b in zip([0] + cuts, cuts + [len(data)]):
            f.write(gzip.compress(data[a:b], compresslevel=p["level"], mtime=0))
    return data, copy_text_lines(data, header=p["header"])


def md5_lines(lines):
    h = hashlib.md5()
    for ln in lines:
        h.update(ln.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- one pgfeed run


def quiet_tail(lines, n):
    """The last n lines of stderr without the progress JSON, except its last line."""
    js = [i for i, ln in enumerate(lines) if ln.startswith("{")]
    keep = [ln for i, ln in enumerate(lines) if not ln.startswith("{") or (js and i == js[-1])]
    return keep[-n:]


class Run:
    """pgfeed in the background: stderr read live (progress JSON parsed into counters),
    stdin fed from bytes by a thread (a real pipe, as with zcat | pgfeed)."""

    def __init__(self, argv, stdin_bytes=None):
        self.argv = argv
        self.lines = []
        self.prog = {}
        self.eof = False
        self.cond = threading.Condition()
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_bytes is not None
                                  else subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=clean_env())
        LIVE.add(self.p)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.writer = None
        if stdin_bytes is not None:
            self.writer = threading.Thread(target=self._write, args=(stdin_bytes,), daemon=True)
            self.writer.start()

    def _read(self):
        for raw in self.p.stderr:
            ln = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(ln)
                if ln.startswith("{"):
                    try:
                        o = json.loads(ln)
                    except ValueError:
                        o = {}
                    for k, v in o.items():
                        if isinstance(v, int) and not isinstance(v, bool):
                            self.prog[k] = max(v, self.prog.get(k, 0))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _write(self, data):
        try:
            view = memoryview(data)
            for i in range(0, len(view), 1 << 16):
                self.p.stdin.write(view[i:i + (1 << 16)])
            self.p.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def wait_for(self, counter, value, timeout):
        """True once progress shows counter >= value; False if pgfeed ended first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.prog.get(counter, -1) >= value:
                    return True
                if self.eof:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    self.p.kill()
                    raise RoundFailed(f"HANG: no progress line with {counter} >= {value} within "
                                      f"{timeout} s (last {self.prog}); pgfeed killed; command: "
                                      f"{' '.join(self.argv)}\nstderr:\n{self.tail()}")
                self.cond.wait(min(left, 0.5))

    def tail(self, n=25):
        with self.cond:
            return "\n".join(quiet_tail(self.lines, n))

    def finish(self, timeout):
        hung = False
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            hung = True
            self.p.kill()
            self.p.wait()
        finally:
            LIVE.discard(self.p)
        self.reader.join(10)
        if self.writer:
            self.writer.join(10)
        err = "\n".join(self.lines)
        res = Result(self.argv, self.p.returncode, "", err, time.monotonic() - self.t0)
        res.hung = hung
        with self.cond:
            res.prog = dict(self.prog)
        return res


# ---------------------------------------------------------------- the suite


class RoundFailed(Exception):
    pass


class Chaos:
    def __init__(self, ctx):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.asan = asan_build(ctx.cfg.pgfeed)
        self.run_timeout = RUN_TIMEOUT_S * (3 if self.asan else 1)
        self.cluster = None
        self.httpd = None
        self.www = ctx.tmp / "www"
        self.www.mkdir(exist_ok=True)

    def start(self):
        self.cluster = Cluster()
        self.cluster.start(own=True)
        self.httpd = Httpd(self.www)

    def stop(self):
        if self.httpd:
            self.httpd.stop()
        if self.cluster and not os.environ.get("PGFEED_CHAOS_KEEP"):
            self.cluster.stop()
        elif self.cluster:
            print(f"# chaos: cluster kept running on {self.cluster.dir}", flush=True)

    def admin(self, sql, db="postgres"):
        return psql(self.cluster.conninfo(db), sql, timeout=60)

    def replay(self, seed):
        return (f"PGFEED_CHAOS_SEED={seed} PGFEED_CHAOS_ROUNDS=1 /usr/bin/python3 "
                f"tests/integ/run.py --pgfeed {self.cfg.pgfeed} --gen-names {self.cfg.gen_names}"
                f" -k chaos")

    # ---- one round

    def round(self, seed):
        p = plan(seed)
        self.p = p
        self.notes = []
        self.db = f"chaos_{seed}"
        self.admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE);\n'
                   f'CREATE DATABASE "{self.db}" STRATEGY FILE_COPY;')
        self.conninfo = self.cluster.conninfo(self.db)
        self.admin(NAMES_DDL + ";", self.db)
        path = self.www / f"r{seed}.tsv.gz"
        _, self.want = make_input(self.cfg, p, path)
        self.nrows = len(self.want)
        self.stdin_bytes = None
        if p["source"] == "file":
            src = str(path)
        elif p["source"] == "stdin":
            src = "-"
            self.stdin_bytes = path.read_bytes()
        else:
            faults = {}
            if p["source"] == "http-norange":
                faults["norange"] = 1
            if p["disruption"] == "drop":
                faults["drop"] = max(1, int(path.stat().st_size * p["drop_at"]))
                faults["times"] = p["drops"]
            src = self.httpd.url(path.name, **faults)
        self.args = ["-d", self.conninfo, "-t", "names", "-b", str(p["batch"]),
                     "-j", str(p["jobs"]), "--copy-format", p["copy_format"],
                     "--progress", "json", "--progress-interval", "0.05"]
        if not p["header"]:
            self.args += ["--header", "none"]
        self.src = src
        try:
            self.first_run()
            if p["source"].startswith("http"):
                log = [e for e in self.httpd.log() if f"/{path.name}" in e["path"]]
                self.notes.append("HTTP " + " ".join(
                    f"{e['status']}{'@' + e['range'][6:] if e['range'] else ''}:{e['sent']}"
                    for e in log))
        finally:
            path.unlink(missing_ok=True)
        self.admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE);')

    def spawn(self, resume=False):
        argv = [self.cfg.pgfeed] + self.args + (["--resume"] if resume else []) + [self.src]
        return Run(argv, self.stdin_bytes)

    def fail(self, what, res=None):
        msg = what
        if res is not None:
            msg += (f"\n  command: {' '.join(res.argv)}\n  exit: {res.rc}"
                    f"\n  stderr (last lines, progress JSON but the last left out):\n"
                    + "\n".join("    " + ln for ln in quiet_tail(res.err.split("\n"), 25)))
        raise RoundFailed(msg)

    def finish(self, run):
        res = run.finish(self.run_timeout)
        try:
            sanitizer_check(res)
        except Failure:
            lines = res.err.split("\n")
            at = next(i for i, ln in enumerate(lines)
                      if any(m in ln for m in SANITIZER_MARKERS))
            raise RoundFailed(f"SANITIZER REPORT (exit {res.rc}):\n  command: {' '.join(res.argv)}\n"
                              + "\n".join("    " + ln for ln in lines[at:at + 20]))
        if res.hung:
            state = self.table_state()
            self.fail(f"HANG: pgfeed did not exit within {self.run_timeout} s (killed); "
                      f"table then: {state}", res)
        return res

    def target(self, counter, frac, base=0):
        return base + int(frac * max(0, self.nrows - base))

    def first_run(self):
        p = self.p
        d = p["disruption"]
        run = self.spawn()
        if d in ("sigkill", "sigint"):
            tgt = self.target(p["counter"], p["at"][0])
            if run.wait_for(p["counter"], tgt, self.run_timeout):
                sig = signal.SIGKILL if d == "sigkill" else signal.SIGINT
                run.p.send_signal(sig)
                if d == "sigint" and p["double_sigint"]:
                    run.p.send_signal(signal.SIGINT)
                self.notes.append(f"{d} at {p['counter']}>={tgt}")
                quiet = False
            else:
                self.notes.append(f"pgfeed ended before {p['counter']} reached {tgt}")
                quiet = True
            res = self.finish(run)
            want = {-9} if d == "sigkill" else {130}
            self.after(res, want | {0}, "first run", quiet=quiet)
        elif d in ("terminate", "restart"):
            base = 0
            for i in range(p["repeat"]):
                tgt = self.target(p["counter"], p["at"][i], base)
                if not run.wait_for(p["counter"], tgt, self.run_timeout):
                    self.notes.append(f"pgfeed ended before {p['counter']} reached {tgt}")
                    break
                if d == "terminate":
                    q = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'pgfeed'")
                    if p["jobs"] > 1 and p["terminate_one"]:
                        q = ("SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM "
                             "pg_stat_activity WHERE application_name = 'pgfeed' "
                             "ORDER BY pid DESC LIMIT 1) s")
                    n = self.admin(q + ";").strip()
                    self.notes.append(f"terminated {n} backend(s) at {p['counter']}>={tgt}")
                else:
                    t0 = time.monotonic()
                    self.cluster.restart()
                    self.notes.append(f"restarted the server at {p['counter']}>={tgt} "
                                      f"({time.monotonic() - t0:.1f} s)")
                base = tgt
            res = self.finish(run)
            self.after(res, {0}, "first run", stdin_may_fail=True)
        else:  # drop: the server itself resets the connection at the planned byte
            res = self.finish(run)
            self.after(res, {0}, "first run")

    def after(self, res, ok, what, stdin_may_fail=False, kills=0, quiet=False):
        """Checks a finished run and does what a user would do next. quiet: nothing
        disturbed this run, so it must not have retried anything either."""
        retries = res.prog.get("retries", 0)
        if res.rc == 0:
            self.notes.append(f"{what}: exit 0 ({res.elapsed:.1f} s"
                              + (f", {retries} retries)" if retries else ")"))
            self.check_exact(res)
            if quiet and retries:
                self.fail(f"{what}: {retries} retries in a run that nothing disturbed", res)
            return
        interrupted = res.rc in ok
        if res.rc == -signal.SIGINT and 130 in ok and '"done":true' in res.err:
            # SIGINT landed after the import had ended, while pgfeed was exiting (its
            # handler gone): the default action, which a shell reports as 130 too
            interrupted = True
        piped = False
        if not interrupted and stdin_may_fail and self.p["source"] == "stdin" and res.rc == 1:
            if "--resume" not in res.err:
                self.fail(f"{what}: a stdin import failed after a lost connection without "
                          "saying how to finish it (--resume)", res)
            interrupted = piped = True
        if not interrupted:
            self.fail(f"{what}: exit {res.rc}, want {' or '.join(map(str, sorted(ok)))}", res)
        n = self.check_prefix(res, what)
        if piped:
            # the message says what is committed: n rows, or the line they end at
            said = " ".join(ln for ln in res.err.split("\n")
                            if re.match(r"pgfeed: (error|detail|hint):", ln))
            nums = {int(x) for x in re.findall(r"\b\d+\b", said)}
            if not nums & {n, n + 1, n + 2}:
                self.fail(f"{what}: the stdin failure does not say what is committed ({n} rows)",
                          res)
        self.notes.append(f"{what}: exit {res.rc} with {n} rows committed ({res.elapsed:.1f} s)")
        if kills >= len(self.p["resume_kills"]) + 3:
            self.fail(f"still not finished after {kills} --resume runs", res)
        self.resume(kills, n)

    def resume(self, k, committed):
        plan_kill = self.p["resume_kills"][k] if k < len(self.p["resume_kills"]) else None
        run = self.spawn(resume=True)
        ok = {0}
        quiet = True
        if plan_kill:
            sig, counter, frac = plan_kill
            # the counters of a resumed run count its own rows (from 0)
            tgt = int(frac * (self.nrows - committed))
            if run.wait_for(counter, tgt, self.run_timeout):
                run.p.send_signal(signal.SIGKILL if sig == "sigkill" else signal.SIGINT)
                self.notes.append(f"--resume #{k + 1}: {sig} at {counter}>={tgt}")
                ok = {-9 if sig == "sigkill" else 130}
                quiet = False
        res = self.finish(run)
        self.after(res, ok, f"--resume #{k + 1}", kills=k + 1, quiet=quiet)

    # ---- checks

    def table_state(self):
        try:
            out = self.admin("SELECT count(*), count(DISTINCT nconst), coalesce(max(nconst COLLATE "
                             "\"C\"), '') FROM names;", self.db).strip()
            ck = self.admin("SELECT coalesce(string_agg(rows_committed || '/' || finished, ' '), "
                            "'none') FROM pgfeed_checkpoints;", self.db).strip() \
                if self.has_checkpoints() else "no checkpoint table"
            return f"count|distinct|max nconst = {out}; checkpoints {ck}"
        except Exception as e:  # the server may be the problem
            return f"(could not read: {e})"

    def has_checkpoints(self):
        return self.admin("SELECT to_regclass('pgfeed_checkpoints') IS NOT NULL;",
                          self.db).strip() == "t"

    def checkpoints(self):
        if not self.has_checkpoints():
            return []
        out = self.admin("SELECT rows_committed, finished FROM pgfeed_checkpoints;", self.db)
        return [tuple(ln.split("|")) for ln in out.split("\n") if ln]

    def check_prefix(self, res, what):
        """After an interrupted run: whole batches, the first rows of the input, and the
        checkpoint agrees. Returns the rows committed."""
        out = self.admin("SELECT count(*), count(DISTINCT nconst), coalesce(max(nconst COLLATE "
                         "\"C\"), '') FROM names;", self.db).strip()
        n, distinct, top = out.split("|")
        n, distinct = int(n), int(distinct)
        ck = self.checkpoints()
        if ck == [(str(self.nrows), "t")]:
            # the signal came as the import ended: it must be complete (a --resume then
            # has nothing to do, which the next run checks)
            self.check_exact(res)
            return n
        if n == 0:
            if any(int(c[0]) != 0 for c in ck):
                self.fail(f"{what}: no rows but checkpoint {ck}", res)
            return 0
        # One connection: one row, the prefix. Several: batches commit as their COPY ends,
        # so the checkpoint is the prefix row plus one row per batch committed past it.
        if (sum(int(c[0]) for c in ck) != n or any(c[1] != "f" for c in ck)
                or (self.p["jobs"] == 1 and len(ck) != 1)):
            self.fail(f"{what}: {n} rows committed but the checkpoint says {ck} "
                      "(want unfinished checkpoint rows with the same count)", res)
        if n > self.nrows or distinct != n:
            self.fail(f"{what}: {n} rows, {distinct} distinct nconst, of {self.nrows}", res)
        if self.p["jobs"] == 1 and n % self.p["batch"] != 0 and n != self.nrows:
            self.fail(f"{what}: {n} rows committed: not whole batches of {self.p['batch']}", res)
        if self.p["jobs"] == 1:
            want_top = self.want[n - 1].split("\t", 1)[0]
            if top != want_top:
                self.fail(f"{what}: {n} rows but max(nconst) {top}, want {want_top}: the "
                          "committed rows are not the first rows of the input", res)
        else:
            self.check_whole_batches(res, what)
        return n

    def check_whole_batches(self, res, what):
        """Every batch of the input (in input order) is in the table entirely or not at all
        (the last, short one too: with several connections it may commit before others)."""
        out = self.admin("SELECT nconst FROM names;", self.db)
        have = set(out.split("\n")) - {""}
        b = self.p["batch"]
        for start in range(0, self.nrows, b):
            keys = [ln.split("\t", 1)[0] for ln in self.want[start:start + b]]
            got = sum(k in have for k in keys)
            if got not in (0, len(keys)):
                self.fail(f"{what}: {got} of the {len(keys)} rows of the batch starting at data "
                          f"row {start + 1} are committed: a batch committed in part", res)

    def check_exact(self, res):
        out = self.admin("SELECT count(*), count(DISTINCT nconst) FROM names;", self.db).strip()
        n, distinct = map(int, out.split("|"))
        cp = subprocess.run(
            ["psql", "-X", "-q", "-At", "-d", self.conninfo, "-c",
             "COPY (SELECT * FROM names ORDER BY nconst COLLATE \"C\") TO STDOUT"],
            capture_output=True, timeout=120, env=clean_env({"PGCLIENTENCODING": "UTF8"}))
        if cp.returncode != 0:
            raise Failure(f"COPY TO failed: {cp.stderr.decode()}")
        got = cp.stdout.decode("utf-8").split("\n")[:-1]
        ck = self.checkpoints()
        problems = []
        if n != self.nrows:
            problems.append(f"count {n}, want {self.nrows}")
        if distinct != self.nrows:
            problems.append(f"count(distinct nconst) {distinct}, want {self.nrows}")
        if md5_lines(got) != md5_lines(self.want):
            for i, (g, w) in enumerate(zip(got, self.want)):
                if g != w:
                    problems.append(f"md5 differs; first difference at row {i + 1}:\n"
                                    f"    got  {short(g, 300)}\n    want {short(w, 300)}")
                    break
            else:
                problems.append("md5 differs (one table is a prefix of the other)")
        if ck != [(str(self.nrows), "t")]:
            problems.append(f"checkpoint {ck}, want [({self.nrows}, t)]")
        if problems:
            self.fail("EXIT 0 WITH A WRONG TABLE: " + "; ".join(problems), res)


def rounds_to_run():
    seed = int(ENV_SEED) if ENV_SEED else CI_SEED
    n = int(ENV_ROUNDS) if ENV_ROUNDS else None
    return seed, n


@test(slow=True, name="chaos_rounds", time_limit=_time_limit())
def test_chaos_rounds(ctx):
    c = Chaos(ctx)
    seed0, n = rounds_to_run()
    budget = None
    if n is None:
        n = CI_ROUNDS_ASAN if c.asan else CI_ROUNDS
        budget = CI_BUDGET_S
    failures = []
    t_all = time.monotonic()
    c.start()
    ran = 0
    seed = None
    try:
        for i in range(n):
            if budget and time.monotonic() - t_all > budget:
                print(f"# chaos: time budget of {budget} s reached after {ran} rounds", flush=True)
                break
            seed = seed0 + i
            p = plan(seed)
            print(f"# chaos round {i + 1}/{n} seed={seed}: {describe(p)}", flush=True)
            t0 = time.monotonic()
            ran += 1
            try:
                c.round(seed)
                print(f"#   ok ({time.monotonic() - t0:.1f} s): {'; '.join(c.notes)}", flush=True)
            except RoundFailed as e:
                failures.append((seed, p, str(e), list(c.notes)))
                print(f"#   FAILED ({time.monotonic() - t0:.1f} s) seed={seed}: "
                      f"{str(e).splitlines()[0]}", flush=True)
                try:
                    c.cluster.wait_ready(timeout=60)
                except Exception as e2:
                    raise Failure(f"the cluster does not answer after round seed={seed}: {e2}")
    except TimeLimit:
        failures.append((seed, plan(seed), "the test's time limit came during this round",
                         list(c.notes)))
    finally:
        c.stop()
    print(f"# chaos: {ran} rounds from seed {seed0}, {len(failures)} failed, "
          f"{time.monotonic() - t_all:.1f} s", flush=True)
    if failures:
        out = [f"{len(failures)} of {ran} chaos rounds failed:"]
        for seed, p, msg, notes in failures:
            out.append(f"round seed={seed}: {describe(p)}")
            out.append(f"  what happened: {'; '.join(notes)}")
            out.append("  " + msg.replace("\n", "\n  "))
            out.append(f"  replay: {c.replay(seed)}")
        raise Failure("\n".join(out))
