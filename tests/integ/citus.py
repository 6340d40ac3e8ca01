"""A throw-away Citus cluster for the integration tests: a coordinator and two workers.

Citus is not packaged by Debian 12: a build for its PostgreSQL 15 lives beside the repository,
in ../shared/tools/citus-13.2.2-pg15.tar.gz (not part of the project). When the extension is
not installed yet and we are root (CI), the tarball is unpacked into a temp dir and its
install.sh copies the extension into PostgreSQL's directories, as ../shared/tools/README.md
says. Without the tarball, root or PostgreSQL 15, every Citus test skips with the reason; so
does it when citus.so does not load (that build needs PostgreSQL 15.20 or later).

The three clusters are made by initdb as the postgres user (initdb refuses root), each in its
own temp dir with its Unix socket there and a TCP port on 127.0.0.1 (the coordinator reaches
the workers, and itself, over loopback TCP). shared_preload_libraries = 'citus'. They are
started once per run, on first use, and stopped when the test process exits.
"""

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import harness
from harness import Skip, psql

TARBALL = harness.REPO.parent / "shared" / "tools" / "citus-13.2.2-pg15.tar.gz"
PG_CONFIG = Path(harness.PG_BINDIR) / "pg_config"


def _installed():
    p = subprocess.run([str(PG_CONFIG), "--sharedir"], capture_output=True, text=True)
    return p.returncode == 0 and Path(p.stdout.strip(), "extension", "citus.control").exists()


def _install():
    """Installs the tarball's build when Citus is missing; a reason to skip, or None."""
    if not (Path(harness.PG_BINDIR) / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({harness.PG_BINDIR}/initdb missing)"
    if _installed():
        return None
    if not TARBALL.exists():
        return f"Citus is not installed and {TARBALL} is missing"
    if os.geteuid() != 0:
        return f"Citus is not installed and installing {TARBALL.name} needs root"
    tmp = tempfile.mkdtemp(prefix="pgfeed-citus-inst.", dir="/tmp")
    try:
        subprocess.run(["tar", "-xzf", str(TARBALL), "-C", tmp], check=True, capture_output=True)
        p = subprocess.run([f"{tmp}/citus-13.2.2-pg15/install.sh"], capture_output=True, text=True)
        if p.returncode != 0:
            return f"installing {TARBALL.name} failed: {p.stdout}{p.stderr}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None if _installed() else f"{TARBALL.name} installed no citus.control"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg(dir_, *argv, timeout=120):
    """Runs argv as the user the servers run as (scripts/lib.sh's _pgfeed_as_pg)."""
    return subprocess.run(["bash", "-c", '. "$1"; shift; _pgfeed_as_pg "$@"', "bash",
                           str(harness.LIB_SH), dir_, *argv],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


class Node:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"pgfeed-citus-{name}.", dir="/tmp")
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o755)

    def conninfo(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={db} user=postgres"

    def start(self):
        bindir = harness.PG_BINDIR
        p = _as_pg(self.dir, f"{bindir}/initdb", "-D", f"{self.dir}/data", "-U", "postgres",
                   "-A", "trust", "-E", "UTF8", "--locale=C")
        if p.returncode != 0:
            raise RuntimeError(f"initdb for the Citus {self.name} failed: {p.stdout}{p.stderr}")
        with open(f"{self.dir}/data/postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "shared_preload_libraries = 'citus'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n"
                    "shared_buffers = 32MB\nlog_min_messages = warning\n"
                    "citus.log_distributed_deadlock_detection = off\n")
        p = _as_pg(self.dir, f"{bindir}/pg_ctl", "-D", f"{self.dir}/data", "-l",
                   f"{self.dir}/server.log", "-w", "-t", "60", "start")
        if p.returncode != 0:
            log = Path(self.dir, "server.log")
            raise RuntimeError(f"the Citus {self.name} did not start: {p.stdout}{p.stderr}"
                               f"{log.read_text() if log.exists() else ''}")

    def stop(self):
        if Path(self.dir, "data", "postmaster.pid").exists():
            _as_pg(self.dir, f"{harness.PG_BINDIR}/pg_ctl", "-D", f"{self.dir}/data", "-m",
                   "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    def __init__(self):
        self.coord = Node("coord")
        self.workers = [Node("w1"), Node("w2")]
        self.nodes = [self.coord] + self.workers

    def start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            psql(n.conninfo(), "CREATE EXTENSION citus;")
        psql(self.coord.conninfo(),
             f"SELECT citus_set_coordinator_host('127.0.0.1', {self.coord.port});" +
             "".join(f"SELECT citus_add_node('127.0.0.1', {w.port});" for w in self.workers))

    def stop(self):
        for n in self.nodes:
            n.stop()

    def reset(self):
        """Drops what a test left in the coordinator's postgres database (cascading to the
        shards on the workers)."""
        psql(self.coord.conninfo(),
             "DROP TABLE IF EXISTS names, pgfeed_checkpoints, pgfeed_state.pgfeed_checkpoints"
             " CASCADE; DROP SCHEMA IF EXISTS pgfeed_state CASCADE;")


_STATE = {"cluster": None, "skip": None}


def cluster():
    """The run's Citus cluster, started on first use; raises Skip with the reason when
    Citus cannot be installed or started here."""
    if _STATE["skip"]:
        raise Skip(_STATE["skip"])
    if _STATE["cluster"] is None:
        why = _install()
        if why:
            _STATE["skip"] = why
            raise Skip(why)
        if _STATE.get("error"):
            raise harness.Failure(_STATE["error"])
        c = Cluster()
        atexit.register(c.stop)
        try:
            c.start()
        except Exception as e:
            c.stop()
            m = re.search(r"could not load library [^\n]*", str(e))
            if m:  # e.g. a build for a newer PostgreSQL 15 minor than the one installed
                _STATE["skip"] = f"Citus does not load into this PostgreSQL: {m.group(0)}"
                raise Skip(_STATE["skip"])
            _STATE["error"] = f"the Citus cluster did not start: {e}"
            raise
        _STATE["cluster"] = c
    c = _STATE["cluster"]
    c.reset()
    return c


def wait_for(cond, what, timeout=60, step=0.05):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise harness.Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
