"""A damaged checkpoint: the state table's restart column altered by hand.

--resume must refuse it as a damaged checkpoint (exit 1, the restart point named, the
hint to --restart) and change nothing: neither the table nor the checkpoint row. The
column is bytea, read as encode(restart, 'hex'), so the damage reaches pgfeed as bytes
that are not a restart point; text that is not hex (checkpoint.c's read_restart) is
refused with the same error before any decoding.
"""

import signal

from harness import check, test
from test_resume import BATCH, big_file, interrupt


def restart_row(ctx):
    return ctx.sql(
        "SELECT rows_committed, finished, encode(restart, 'hex') FROM pgfeed_checkpoints;"
    ).strip()


@test(slow=True)
def test_damaged_restart_column_refused(ctx):
    _, gz = big_file(ctx)
    ctx.create_names()
    n = interrupt(ctx, gz, signal.SIGINT)
    real = restart_row(ctx).split("|")[2]
    check(real != "", "the checkpoint has no restart point")
    # Not a restart point at all, then the real one cut in half.
    half = real[: len(real) // 4 * 2]
    for damage in ("'\\x00'::bytea", f"decode('{half}', 'hex')"):
        ctx.sql(f"UPDATE pgfeed_checkpoints SET restart = {damage};")
        before = restart_row(ctx)
        res = ctx.pgfeed("-t", "names", "-b", str(BATCH), "--resume", gz)
        ctx.expect_rc(res, 1)
        ctx.expect_err(res, r"error: the checkpoint's decoder restart point is (not usable|damaged)")
        ctx.expect_err(res, r"hint: Run with --restart")
        check(ctx.count() == n, f"a refused resume changed the table: {ctx.count()} rows, want {n}")
        check(restart_row(ctx) == before, f"a refused resume changed the checkpoint: {restart_row(ctx)}")
