#!/usr/bin/python3
"""A loopback HTTP/1.1 file server that can misbehave, for pgfeed's tests (stdlib only).

  /usr/bin/python3 tests/httpd.py DIR [--port N]

Serves the files under DIR on 127.0.0.1 (port 0: the kernel picks one) and prints
"PORT <n>" as its first line on stdout once it accepts connections, so a test reads that
line instead of sleeping. Ctrl-C or SIGTERM stops it.

Every file answer has a strong ETag derived from the content, Last-Modified, Accept-Ranges
and Content-Length; GET and HEAD; a single Range (bytes=N-, N-M, -S) gives 206 with
Content-Range, or 416 past the end; If-Range (ETag or date) that does not match gives 200.

Faults are chosen by query parameters of the request URL, so a client retrying the same URL
meets the same plan. Counters are kept per full URL (path and query): "the first n times".

  status=CODE       answer CODE (no body from the file) ...
  times=N           ... only for the first N requests of this URL (default: every time);
                    also limits rate= (default: every time), drop= and short= (default: once)
  retry_after=S     add Retry-After: S to a status fault
  drop=N            send N body bytes, wait until the client has read them, then reset the
                    connection (RST)
  short=N           send N body bytes of a full Content-Length, then close cleanly (FIN)
  then=CODE         once drop= or short= is used up (after its times), answer CODE every time:
                    a download that makes progress, then fails without any
  rate=BYTES        throttle the body to BYTES per second
  norange=1         ignore Range and If-Range (always 200, no Accept-Ranges)
  chunked=1         Transfer-Encoding: chunked instead of Content-Length
  weak=1            weak ETag (W/"...")
  noetag=1          no ETag;   nolm=1  no Last-Modified
  change=1          from the second request of this URL on, new ETag and Last-Modified (the
                    bytes stay the same: only the validators say "changed")
  redirect=TARGET   302 to TARGET (with the rest of the query dropped)
  loop=1            302 to this same URL, forever

  GET /__log        the request log as JSON: [{"method", "path", "range", "if_range",
                    "accept_encoding", "user_agent", "status", "sent"}]
  GET /__log?clear=1  returns the log and empties it
"""

import argparse
import email.utils
import hashlib
import json
import os
import socket
import struct
import sys
import termios
import threading
import time
import fcntl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOCK = threading.Lock()
LOG = []
COUNTS = {}
ETAGS = {}  # (path, size, mtime_ns) -> hex digest


def content_etag(path, st):
    key = (path, st.st_size, st.st_mtime_ns)
    with LOCK:
        if key in ETAGS:
            return ETAGS[key]
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    d = h.hexdigest()[:20]
    with LOCK:
        ETAGS[key] = d
    return d


def parse_range(value, size):
    """(start, end) inclusive for a single satisfiable range, "unsatisfiable", or None
    (absent, malformed or several ranges: ignored)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    spec = value[6:].strip()
    a, sep, b = spec.partition("-")
    if not sep:
        return None
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1)
        start = int(a)
        end = int(b) if b else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return (start, min(end, size - 1))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pgfeed-test-httpd/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def log_entry(self, status):
        e = {
            "method": self.command,
            "path": self.path,
            "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
            "accept_encoding": self.headers.get("Accept-Encoding"),
            "user_agent": self.headers.get("User-Agent"),
            "status": status,
            "sent": 0,
        }
        with LOCK:
            LOG.append(e)
        return e

    def do_HEAD(self):
        self.handle_request(head=True)

    def do_GET(self):
        self.handle_request(head=False)

    def simple(self, status, body=b"", headers=(), head=False):
        self.log_entry(status)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def handle_request(self, head):
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if u.path == "/__log":
            with LOCK:
                body = json.dumps(LOG).encode()
                if q.get("clear"):
                    LOG.clear()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return

        with LOCK:
            n = COUNTS.get(self.path, 0) + 1
            COUNTS[self.path] = n
        times = int(q["times"]) if "times" in q else None

        if q.get("loop"):
            self.simple(302, b"loop\n", [("Location", self.path)], head)
            return
        if "redirect" in q:
            self.simple(302, b"moved\n", [("Location", q["redirect"])], head)
            return
        if "status" in q and (times is None or n <= times):
            code = int(q["status"])
            hdrs = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
            self.simple(code, f"fault {code}\n".encode(), hdrs, head)
            return

        if "then" in q and ("drop" in q or "short" in q) and n > (times or 1):
            self.simple(int(q["then"]), f"fault {q['then']}\n".encode(), (), head)
            return

        rel = unquote(u.path).lstrip("/")
        path = os.path.realpath(os.path.join(self.server.root, rel))
        if not path.startswith(self.server.root + os.sep) or not os.path.isfile(path):
            self.simple(404, b"not found\n", (), head)
            return

        st = os.stat(path)
        size = st.st_size
        changed = q.get("change") and n > 1
        etag = '"%s%s"' % (content_etag(path, st), "-v2" if changed else "")
        if q.get("weak"):
            etag = "W/" + etag
        mtime = st.st_mtime + (86400 if changed else 0)
        lastmod = email.utils.formatdate(mtime, usegmt=True)
        norange = bool(q.get("norange"))

        rng = None if norange else parse_range(self.headers.get("Range"), size)
        if rng is not None and not norange:
            ir = self.headers.get("If-Range")
            if ir is not None:
                ok = (ir == etag and not ir.startswith("W/")) if ir.startswith(('"', "W/")) \
                    else (ir == lastmod and not q.get("nolm"))
                if not ok:
                    rng = None
        if rng == "unsatisfiable":
            self.simple(416, b"", [("Content-Range", f"bytes */{size}")], head)
            return

        if rng is None:
            status, start, end = 200, 0, size - 1
        else:
            status, (start, end) = 206, rng
        length = end - start + 1 if size else 0
        chunked = bool(q.get("chunked"))

        entry = self.log_entry(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if not q.get("noetag"):
            self.send_header("ETag", etag)
        if not q.get("nolm"):
            self.send_header("Last-Modified", lastmod)
        if not norange:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return

        once = times if times is not None else 1
        drop = int(q["drop"]) if "drop" in q and n <= once else None
        short = int(q["short"]) if "short" in q and n <= once else None
        rate = float(q["rate"]) if "rate" in q and (times is None or n <= times) else None
        limit = length
        if drop is not None:
            limit = min(limit, drop)
        if short is not None:
            limit = min(limit, short)

        try:
            self.send_body(path, start, limit, rate, chunked, entry)
            if drop is not None and limit < length:
                self.reset_connection()
                return
            if short is not None and limit < length:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                return
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def send_body(self, path, start, limit, rate, chunked, entry):
        piece = 64 << 10
        if rate:
            piece = max(1, min(piece, int(rate / 20)))
        t0 = time.monotonic()
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while sent < limit:
                data = f.read(min(piece, limit - sent))
                if not data:
                    break
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
                entry["sent"] = sent
                if rate:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)

    def reset_connection(self):
        """Waits (at most 10 s) until the client has read what was sent, then RST."""
        sock = self.connection
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            if struct.unpack("i", buf)[0] == 0:
                break
            time.sleep(0.01)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        sock.close()  # the fd really closes (with RST) when the handler's files close


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client going away mid-body is routine here


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.root = os.path.realpath(a.root)
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
