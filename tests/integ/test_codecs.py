"""zstd, bzip2 and xz input (issue 16): detection, streaming, errors, resume.

Fixtures are made here with Debian's command-line tools (zstd, bzip2, pbzip2, xz): one
stream, and several concatenated (split into pieces compressed one by one, which is what
pzstd and pbzip2 write; xz -T with --block-size writes one stream of several blocks).
Each loads the same table from a file, stdin and HTTP; a kill -9 mid-file then --resume
ends with every row once, from a file and over HTTP with and without Range support; a
multi-stream file restarts at a stream boundary (the checkpoint's raw offset is past 0),
a single-stream multi-block xz file (xz -T2 --block-size) or a single bzip2 stream (bzip2 -1:
100 kB blocks) at a block boundary inside its stream, a single-stream zstd one re-reads from
byte 0 and skips. Damaged files fail with one message and keep the batches committed before,
also when the damage comes after a restart inside a bzip2 stream.
"""

import signal
import subprocess

from harness import check, test
from test_signals import wait_for_rows

ROWS = 400_000
BATCH = 20_000
PIECE = 512 << 10  # bytes of TSV per stream of a multi-stream fixture (a point per MiB)

# name -> (command for one stream from stdin to stdout, pieces: several streams)
VARIANTS = {
    "zstd": (["zstd", "-q", "-3", "-c"], False),
    "zstd-frames": (["zstd", "-q", "-3", "-c"], True),
    "bzip2": (["bzip2", "-1", "-c"], False),
    "bzip2-streams": (["bzip2", "-1", "-c"], True),
    "xz": (["xz", "-1", "-c"], False),
    "xz-blocks": (["xz", "-1", "-T2", "--block-size=1MiB", "-c"], False),
    "xz-streams": (["xz", "-1", "-c"], True),
    "xz-blocks-512k": (["xz", "-1", "-T2", "--block-size=512KiB", "-c"], False),
}
# restart points inside the file: stream (frame) boundaries, or xz and bzip2 block boundaries
MULTI = {"zstd-frames", "bzip2-streams", "xz-streams", "xz-blocks", "xz-blocks-512k", "bzip2"}


def compressed(ctx, variant, rows=ROWS, seed=61):
    """The generated TSV compressed as variant (cached for the run); returns (tsv, file)."""
    tsv = ctx.gen_file(rows, seed=seed)
    path = ctx.cfg.workdir / f"codecs-{rows}-{seed}.{variant}"
    if not path.exists():
        cmd, pieces = VARIANTS[variant]
        data = tsv.read_bytes()
        parts = [data[i:i + PIECE] for i in range(0, len(data), PIECE)] if pieces else [data]
        out = b"".join(subprocess.run(cmd, input=p, capture_output=True, check=True).stdout
                       for p in parts)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(out)
        tmp.rename(path)
    return tsv, path


def load(ctx, src, *extra, stdin_path=None):
    res = ctx.pgfeed("-t", "names", "--truncate", "--restart", "-b", str(BATCH), *extra,
                     "-" if stdin_path else src, stdin_path=stdin_path)
    ctx.expect_rc(res, 0)
    return res


@test(slow=True)
def test_codecs_load_the_same_table_from_file_stdin_and_http(ctx):
    from test_http import Httpd

    srv = Httpd(ctx.cfg.workdir)
    try:
        ctx.create_names()
        for variant in VARIANTS:
            tsv, path = compressed(ctx, variant, rows=100_000, seed=62)
            want = tsv.read_bytes()
            load(ctx, path)
            ctx.expect_table(want, what=f"{variant} from a file")
            load(ctx, None, stdin_path=path)
            ctx.expect_table(want, what=f"{variant} from stdin")
            load(ctx, srv.url(path.name))
            ctx.expect_table(want, what=f"{variant} over HTTP")
    finally:
        srv.stop()


def kill_then_resume(ctx, variant, src, tsv):
    """kill -9 once a batch is in, then --resume: every row once. Returns the restart offset."""
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-b", str(BATCH), src)
    wait_for_rows(ctx, p, errpath)
    p.send_signal(signal.SIGKILL)
    res = ctx.finish(p, errpath, timeout=60)
    ctx.expect_rc(res, -9)
    n = ctx.count()
    check(0 < n < ROWS and n % BATCH == 0, f"{variant}: {n} rows committed, want whole batches")
    restart = int(ctx.sql("SELECT raw_offset FROM pgfeed_checkpoints;").strip())
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", src)
    ctx.expect_rc(res, 0)
    ctx.expect_err(res, rf"rows imported:\s+{ROWS - n}\b")
    ctx.expect_table(tsv.read_bytes(), what=f"{variant}: table after kill -9 and --resume")
    return restart


@test(slow=True)
def test_codecs_kill9_then_resume_from_a_file(ctx):
    for variant in ("zstd", "zstd-frames", "bzip2-streams", "xz-blocks", "xz-streams",
                    "xz-blocks-512k", "bzip2"):
        tsv, path = compressed(ctx, variant)
        restart = kill_then_resume(ctx, variant, path, tsv)
        if variant in MULTI:
            check(restart > 0, f"{variant}: the checkpoint restarts at byte 0, want a boundary")
        else:
            check(restart == 0, f"{variant}: one stream restarts at {restart}, want 0 (re-read)")
        ctx.sql("DROP TABLE pgfeed_checkpoints; DROP TABLE names;")


@test(slow=True)
def test_codecs_kill9_then_resume_over_http(ctx):
    from test_http import Httpd, range_starts

    srv = Httpd(ctx.cfg.workdir)
    try:
        for variant in ("zstd-frames", "bzip2-streams", "xz-streams", "xz-blocks-512k", "bzip2"):
            tsv, path = compressed(ctx, variant)
            for faults in ({}, {"norange": 1}):
                url = srv.url(path.name, **faults)
                srv.log(clear=True)
                restart = kill_then_resume(ctx, variant, url, tsv)
                starts = range_starts(srv.log())
                if variant in MULTI:
                    check(restart > 0, f"{variant}: restart point at 0")
                    check(starts and starts[-1] == restart,
                          f"{variant} {faults}: the resumed run should ask for bytes={restart}-,"
                          f" the server saw {starts}")
                else:
                    check(restart == 0, f"{variant}: one stream restarts at {restart}")
                ctx.sql("DROP TABLE pgfeed_checkpoints; DROP TABLE names;")
    finally:
        srv.stop()


@test(slow=True)
def test_codecs_damage_fails_with_offsets_and_keeps_batches(ctx):
    tsv, frames = compressed(ctx, "zstd-frames")
    _, streams = compressed(ctx, "bzip2-streams")
    _, xz = compressed(ctx, "xz-streams")
    cut = ctx.tmp / "cut.zst"
    cut.write_bytes(frames.read_bytes()[: frames.stat().st_size * 2 // 3])
    garbage = ctx.tmp / "garbage.bz2"
    garbage.write_bytes(streams.read_bytes() + b"garbage\n")
    flipped = ctx.tmp / "flipped.xz"
    data = bytearray(xz.read_bytes())
    data[len(data) * 3 // 4] ^= 0x55
    flipped.write_bytes(bytes(data))
    cases = [
        (cut, "unexpected end of compressed input",
         rf"The zstd stream ends at compressed byte {cut.stat().st_size} before its end marker"),
        (garbage, "trailing garbage after compressed data",
         rf"The bzip2 data ends at compressed byte {streams.stat().st_size}, but the byte at "
         rf"{streams.stat().st_size} \(0x67\) does not start another bzip2 stream"),
        (flipped, "corrupt xz data", r"liblzma reported .* at compressed byte \d+, decoded byte"),
    ]
    for path, message, detail in cases:
        ctx.create_names()
        res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--restart", path)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, rf"error: {message}\n")
        ctx.expect_err(res, detail)
        n = ctx.count()
        check(n > 0 and n % BATCH == 0, f"{path.name}: {n} rows kept; want whole batches")
        ctx.expect_table(tsv.read_bytes(), limit=n, what=f"{path.name}: the batches before")
        ctx.sql("DROP TABLE pgfeed_checkpoints; DROP TABLE names;")


@test(slow=True)
def test_codecs_bzip2_damage_after_a_block_restart_fails(ctx):
    import os
    import re

    tsv, orig = compressed(ctx, "bzip2")
    path = ctx.tmp / "damaged.bz2"
    path.write_bytes(orig.read_bytes())
    ctx.create_names()
    p, errpath = ctx.spawn("-t", "names", "-b", str(BATCH), path)
    wait_for_rows(ctx, p, errpath)
    p.send_signal(signal.SIGKILL)
    ctx.expect_rc(ctx.finish(p, errpath, timeout=60), -9)
    n = ctx.count()
    restart = int(ctx.sql("SELECT raw_offset FROM pgfeed_checkpoints;").strip())
    check(restart > 0, f"the checkpoint restarts at {restart}, want a block boundary past 0")
    # Damage a block after the restart point; size and mtime as before, so the resume goes on.
    st = path.stat()
    data = bytearray(path.read_bytes())
    at = restart + (len(data) - restart) // 2
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "-v", "--resume", path)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, rf"restarting at byte {restart} of the source")
    ctx.expect_err(res, r"error: corrupt bzip2 data\n")
    ctx.expect_err(res, rf"The damaged member starts at compressed byte {restart}, decoded byte")
    m = re.search(r'libbz2 reported "[^"]*" at compressed byte (\d+), decoded byte', res.err)
    check(m and restart < int(m.group(1)) <= len(data),
          f"the error should be placed after the restart point {restart}: {res.err[-500:]}")
    kept = ctx.count()
    check(kept >= n and kept % BATCH == 0, f"{kept} rows kept; want whole batches, at least {n}")
    ctx.expect_table(tsv.read_bytes(), limit=kept, what="the batches before the damage")


@test()
def test_codecs_zstd_window_limit(ctx):
    data = ctx.gen(2000, seed=63)
    src = ctx.tmp / "long.zst"
    # From a pipe zstd does not know the size, so the frame keeps its 256 MiB window.
    src.write_bytes(subprocess.run(["zstd", "-q", "--long=28", "-c"], input=data,
                                   capture_output=True, check=True).stdout)
    ctx.create_names()
    res = ctx.pgfeed("-t", "names", src)
    ctx.expect_rc(res, 1)
    ctx.expect_err(res, r"error: cannot decompress zstd data with a window larger than the limit")
    ctx.expect_err(res, r"needs 268435456 bytes for its window, more than the limit of "
                        r"134217728 bytes")
    ctx.expect_err(res, r"hint: Raise the limit with --max-window")
    check(ctx.count() == 0, "rows from a refused frame")
    res = ctx.pgfeed("-t", "names", "--restart", "--max-window", "268435456", src)
    ctx.expect_rc(res, 0)
    ctx.expect_table(data, what="zstd --long=28 with --max-window 256 MiB")


@test()
def test_codecs_named_in_version(ctx):
    res = ctx.pgfeed("--version", db=False)
    ctx.expect_rc(res, 0)
    for name in ("zstd: libzstd", "bzip2: libbz2", "xz: liblzma"):
        check(name in res.out, f"--version does not say {name!r}: {res.out!r}")
