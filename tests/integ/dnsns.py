"""A private network for name-resolution tests: pgfeed runs in its own mount and network
namespace (unshare -m -n, as root) where only loopback exists, /etc/resolv.conf names
127.0.0.1, and a tiny DNS responder on 127.0.0.1:53 answers the test names late, or never.
Nothing is sent beyond this machine and the machine's own resolver is never asked.

Used two ways:
- from a test: run_in_ns(ctx, cfg) starts `unshare -m -n --propagation private python3
  dnsns.py CONFIG_JSON` and returns what the inner run reports (a dict, see inner_main);
- as that inner script (as __main__): bind-mounts a private resolv.conf (nameserver
  127.0.0.1), nsswitch.conf (hosts: files dns) and hosts (localhost only) over /etc, brings
  lo up, starts the DNS responder (a thread) and tests/httpd.py, runs the pgfeed command, and
  prints one JSON object on stdout. PostgreSQL stays reachable: its Unix socket is a path,
  and with pg_socket a forwarder (a thread) takes TCP on 127.0.0.1:{pgport} to it.

The responder: an A query for a name in "names" is answered with 127.0.0.1 after that name's
delay in seconds; its AAAA query gets an empty answer (NOERROR, no records) after the same
delay, so that getaddrinfo (which asks both at once) returns after the delay and not before.
A name in "never" gets no answer at all, to either query; any other name gets NXDOMAIN at once.
glibc keeps its defaults for the never-answered name (timeout 5 s, 2 attempts).
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HTTPD = HERE.parent / "httpd.py"
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

# ---------------------------------------------------------------- outer side (the test)


def available():
    """None when the rig can run here, else why not (for Skip)."""
    if os.geteuid() != 0:
        return "name-resolution tests need root (unshare -m -n)"
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    p = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True)
    if p.returncode != 0:
        return f"unshare -m -n failed: {p.stderr.decode().strip()}"
    return None


def run_in_ns(cfg, timeout=120):
    """Runs the inner script under unshare with cfg (see inner_main); returns its report."""
    argv = ["unshare", "-m", "-n", "--propagation", "private", PYTHON, str(Path(__file__)),
            json.dumps(cfg)]
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError(f"dnsns.py failed ({p.returncode}):\n{out}\n"
                           f"{p.stderr.decode('utf-8', 'replace')}")
    return json.loads(out)


# ---------------------------------------------------------------- DNS responder

QTYPE_A, QTYPE_AAAA = 1, 28


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) of a query, or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    i, labels = 12, []
    while i < len(msg) and msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    if i + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, i + 4


def answer(msg, q, rcode, addr=None):
    qid, flags, _name, _qtype, qend = q
    rd = flags & 0x0100
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1,
                      1 if addr else 0, 0, 0)
    out = hdr + msg[12:qend]
    if addr:
        out += struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, 60, 4) + socket.inet_aton(addr)
    return out


class Dns:
    def __init__(self, names, never, t0):
        self.names = {k.lower(): float(v) for k, v in names.items()}
        self.never = {k.lower() for k in never}
        self.t0 = t0
        self.queries = []  # [seconds since t0, name, qtype]
        self.first_query = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            msg, peer = self.sock.recvfrom(4096)
            q = parse_question(msg)
            if q is None:
                continue
            name, qtype = q[2], q[3]
            self.queries.append([round(time.monotonic() - self.t0, 3), name, qtype])
            if name in self.never:
                self.first_query.set()
                continue
            if name not in self.names:
                self.sock.sendto(answer(msg, q, 3), peer)  # NXDOMAIN
                continue
            self.first_query.set()
            addr = "127.0.0.1" if qtype == QTYPE_A else None
            reply = answer(msg, q, 0, addr)
            threading.Timer(self.names[name], self.sock.sendto, (reply, peer)).start()


# ---------------------------------------------------------------- inner side (in the namespace)


def private_etc(tmp):
    files = {
        "resolv.conf": "nameserver 127.0.0.1\n",
        "nsswitch.conf": "hosts: files dns\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    }
    for name, text in files.items():
        path = Path(tmp) / name
        path.write_text(text)
        subprocess.run(["mount", "--bind", str(path), f"/etc/{name}"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def start_httpd(root):
    p = subprocess.Popen([PYTHON, str(HTTPD), root], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    if not line.startswith("PORT "):
        p.kill()
        raise RuntimeError(f"httpd.py did not report its port: {line!r}")
    return p, int(line.split()[1])


class PgForward:
    """127.0.0.1:PORT -> PostgreSQL's Unix socket, so that a --db host name (resolved to
    127.0.0.1 by the responder) reaches the test cluster, which listens on a socket only.
    One thread accepts; two per connection splice bytes until either side closes."""

    def __init__(self, socket_path):
        self.path = socket_path
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.lsock.accept()
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(self.path)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.splice, args=(a, b), daemon=True).start()

    @staticmethod
    def splice(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read_lines(f, t0, into):
    for raw in iter(f.readline, b""):
        into.append([round(time.monotonic() - t0, 3), raw.decode("utf-8", "replace").rstrip("\n")])


def inner_main(cfg):
    """cfg: names {name: delay s}, never [names], httpd_root, pg_socket (PostgreSQL's socket
    file: forwarded from 127.0.0.1:{pgport}), argv (with {port}, {pgport}), env (the
    whole environment for argv; ours when absent),
    sigint_after_query (s after the first query for a test name; or None), timeout.
    Prints {rc, elapsed, sigint_at, exit_after_sigint, stdout, stderr: [[t, line]],
    queries: [[t, name, qtype]]}; every time in seconds since pgfeed started."""
    tmp = tempfile.mkdtemp(prefix="pgfeed-dnsns.")
    httpd = None
    try:
        private_etc(tmp)
        t0 = time.monotonic()
        dns = Dns(cfg.get("names", {}), cfg.get("never", []), t0)
        port = 0
        if cfg.get("httpd_root"):
            httpd, port = start_httpd(cfg["httpd_root"])
        pgport = PgForward(cfg["pg_socket"]).port if cfg.get("pg_socket") else 0
        argv = [a.replace("{port}", str(port)).replace("{pgport}", str(pgport))
                for a in cfg["argv"]]
        env = cfg.get("env") or dict(os.environ)
        dns.t0 = t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        err, out = [], []
        readers = [threading.Thread(target=read_lines, args=(p.stderr, t0, err)),
                   threading.Thread(target=read_lines, args=(p.stdout, t0, out))]
        for r in readers:
            r.start()
        sigint_at = None
        delay = cfg.get("sigint_after_query")
        if delay is not None and dns.first_query.wait(cfg.get("timeout", 60)):
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                sigint_at = time.monotonic() - t0
        try:
            rc = p.wait(cfg.get("timeout", 60))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        t_exit = time.monotonic() - t0
        for r in readers:
            r.join()
        report = {
            "rc": rc, "elapsed": round(t_exit, 3),
            "sigint_at": None if sigint_at is None else round(sigint_at, 3),
            "exit_after_sigint": None if sigint_at is None else round(t_exit - sigint_at, 3),
            "stdout": "\n".join(ln for _, ln in out), "stderr": err,
            "queries": dns.queries, "port": port,
        }
        print(json.dumps(report))
    finally:
        if httpd is not None:
            httpd.terminate()
            httpd.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    inner_main(json.loads(sys.argv[1]))
