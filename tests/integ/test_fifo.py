"""A FIFO as the source path: opened without waiting for a writer, so the loop keeps turning
(progress, signals) until one comes, and then read like a pipe to the end.

Before, open() blocked inside the job's start until a writer appeared: no progress line,
and SIGINT could not be handled (the signal's callback needs the loop).
"""

import json
import os
import signal
import threading
import time

from harness import check, Failure, eq, test


def wait_for_progress(p, errpath, timeout=30):
    """Polls stderr until a progress JSON line appears (the loop runs); returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure(f"pgfeed exited ({p.returncode}) while waiting for a writer:\n"
                          f"{errpath.read_text('utf-8', 'replace')[-2000:]}")
        for ln in errpath.read_text("utf-8", "replace").split("\n"):
            if ln.startswith("{"):
                return json.loads(ln)
        time.sleep(0.02)
    raise Failure("no progress line while the FIFO had no writer: the loop is not turning")


@test()
def test_fifo_without_writer_keeps_the_loop_turning(ctx):
    ctx.create_names()
    fifo = ctx.tmp / "in.fifo"
    os.mkfifo(fifo)
    # --max-rejects: the rejects file's check (an lstat) runs at the start too, on the
    # threadpool like the FIFO's open; neither may hold the loop.
    rej = ctx.tmp / "in.rejects.tsv"
    p, errpath = ctx.spawn("-t", "names", "--progress", "json", "--progress-interval", "0.05",
                           "--max-rejects", "5", "--rejects", rej, fifo)
    st = wait_for_progress(p, errpath)
    eq(st.get("rows_read", 0), 0, "rows read with no writer")
    p.send_signal(signal.SIGINT)
    res = ctx.finish(p, errpath, timeout=20)
    ctx.expect_rc(res, 130)
    eq(ctx.count(), 0, "rows imported")
    check(not rej.exists(), "no rejects file without a rejected row")


@test()
def test_fifo_writer_coming_later_imports_everything(ctx):
    data = ctx.gen(20_000, seed=91)
    ctx.create_names()
    fifo = ctx.tmp / "in.fifo"
    os.mkfifo(fifo)
    p, errpath = ctx.spawn("-t", "names", "-b", "3000", "--progress", "json",
                           "--progress-interval", "0.05", fifo)
    wait_for_progress(p, errpath)

    def writer():
        with open(fifo, "wb") as w:
            for i in range(0, len(data), 65536):
                w.write(data[i:i + 65536])

    t = threading.Thread(target=writer)
    t.start()
    res = ctx.finish(p, errpath, timeout=60)
    t.join(10)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data)
