#!/usr/bin/python3
"""Runs pgfeed's integration tests against a real PostgreSQL and prints TAP.

  /usr/bin/python3 tests/integ/run.py [--pgfeed PATH] [--gen-names PATH] [--quick]
                                       [-k SUBSTRING]... [--list] [--keep]

The binaries come from --pgfeed / --gen-names, else $PGFEED / $GEN_NAMES, else build/.
A throw-away cluster is started (and stopped at the end, also on failure or Ctrl-C) unless
PGFEED_TEST_PGHOST names the socket directory of a running one. --quick leaves out the
slow tests (used for the ASan build when time is short). Exit status: 0 when nothing
failed, 1 otherwise, 2 when the harness itself could not run.
"""

import argparse
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

# Registration order is run order: these first, then any other tests/integ/test_*.py in
# name order, then the signal tests (the slowest) last.
FIRST = ["test_cli", "test_import", "test_options", "test_errors"]
LAST = ["test_signals"]


def load_tests():
    here = Path(__file__).resolve().parent
    others = sorted(p.stem for p in here.glob("test_*.py") if p.stem not in FIRST + LAST)
    for mod in FIRST + others + LAST:
        if not (here / f"{mod}.py").exists():
            continue
        try:
            importlib.import_module(mod)  # a module run as __main__ aliases itself first
        except Exception:
            # one broken file must not hide the others' results: it becomes a failing test
            err = traceback.format_exc()

            def broken(ctx, err=err):
                raise harness.Failure(f"could not import:\n{err}")

            harness.TESTS.append({"name": f"import_{mod}", "fn": broken, "slow": False})


load_tests()


def default_bin(env, name):
    if os.environ.get(env):
        return os.environ[env]
    for d in ("build", "build-ci"):
        p = harness.REPO / d / name
        if p.exists():
            return str(p)
    return str(harness.REPO / "build" / name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pgfeed", default=default_bin("PGFEED", "pgfeed"))
    ap.add_argument("--gen-names", default=default_bin("GEN_NAMES", "gen-names"))
    ap.add_argument("--quick", action="store_true", help="leave out slow tests")
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep databases and files")
    ap.add_argument("--tag", default=os.environ.get("PGFEED_TEST_TAG", "run"),
                    help="database name prefix (lets several runs share one cluster)")
    a = ap.parse_args()

    tests = [t for t in harness.TESTS
             if (not a.quick or not t["slow"]) and (not a.k or any(k in t["name"] for k in a.k))]
    if a.list:
        for t in tests:
            print(t["name"] + (" (slow)" if t["slow"] else ""))
        return 0

    for label, path in (("pgfeed", a.pgfeed), ("gen-names", a.gen_names)):
        if not os.access(path, os.X_OK):
            print(f"Bail out! {label} binary not found or not executable: {path}")
            return 2
    a.pgfeed = str(Path(a.pgfeed).resolve())
    a.gen_names = str(Path(a.gen_names).resolve())

    harness.install_signal_handlers()
    cluster = harness.Cluster()
    workdir = tempfile.mkdtemp(prefix="pgfeed-integ.", dir="/tmp")
    print(f"# pgfeed {a.pgfeed}\n# gen-names {a.gen_names}\n# work dir {workdir}")
    try:
        try:
            cluster.start()
        except Exception as e:
            print(f"Bail out! {e}")
            return 2
        print(f"# PostgreSQL socket dir {cluster.dir}", flush=True)
        cfg = harness.Config(a.pgfeed, a.gen_names, workdir, cluster, a.tag)
        passed, failed, skipped = harness.run(tests, cfg, keep=a.keep)
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("Bail out! interrupted")
        return 130
    finally:
        harness.kill_live()
        cluster.stop()
        if not a.keep:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
