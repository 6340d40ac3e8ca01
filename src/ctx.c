/*
 * ctx.c -- the context below every stage: failing, logging, counters, handle
 * counting, deferred resumes, the retry state and what a retry needs kept.
 *
 * Stages call only this (and the stage contract) to reach the rest of the
 * import; the owner of the pipeline (job.c) sets the hooks that turn a
 * failure into a stop, the last handle close into the next lifecycle step,
 * and a reject into a line of the rejects file. No stage calls job.c.
 *
 * Owns: the stored error (first failure wins; later ones are logged at
 * DEBUG), the live counters of the current attempt, the pending-close count,
 * time accounting, a pipe's replay buffer (bounded by (connections + 1) x
 * --batch-bytes) and the damaged-gzip-member bookkeeping.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- errors */

/* vsnprintf into buf; a text too long for it is cut at a character and ends in "...". */
static void PGFEED_PRINTF(3, 0) format_cut(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);
    if (n >= 0 && (size_t)n < cap)
        return;
    size_t end = cap - 4;
    while (end > 0 && ((unsigned char)buf[end] & 0xC0) == 0x80)
        end--;
    memcpy(buf + end, "...", 4);
}

/* A stored copy of a text from anywhere (input, the server, libcurl), safe to print. */
static char *escaped_or_null(const char *s)
{
    return s ? pgfeed__escape_text(s) : NULL;
}

int pgfeed__fail(struct pgfeed_ctx *ctx, const char *stage, int code, const char *detail,
                 const char *hint, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    format_cut(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->err.pub.code != 0) {
        pgfeed__log(ctx, PGFEED_LOG_DEBUG, "later error ignored: %s", msg);
    } else {
        struct pgfeed_err_store *e = &ctx->err;
        e->message = pgfeed__escape_text(msg);
        e->detail = escaped_or_null(detail);
        e->hint = escaped_or_null(hint);
        e->pub.code = code;
        e->pub.stage = stage;
        e->pub.message = e->message ? e->message : "out of memory";
        e->pub.detail = e->detail;
        e->pub.hint = e->hint;
        e->pub.url = ctx->display;
    }
    if (ctx->hooks.failed)
        ctx->hooks.failed(ctx->hooks.owner, code);
    return code;
}

void pgfeed__fail_at(struct pgfeed_ctx *ctx, uint64_t line, int column, const char *column_name,
                     uint64_t decoded_offset, uint64_t raw_offset)
{
    struct pgfeed_err_store *e = &ctx->err;
    e->pub.line = line;
    e->pub.column = column;
    free(e->column_name);
    e->column_name = escaped_or_null(column_name);
    e->pub.column_name = e->column_name;
    e->pub.decoded_offset = decoded_offset;
    e->pub.raw_offset = raw_offset;
}

void pgfeed__fail_sqlstate(struct pgfeed_ctx *ctx, const char *sqlstate)
{
    free(ctx->err.sqlstate);
    ctx->err.sqlstate = sqlstate ? strdup(sqlstate) : NULL;
    ctx->err.pub.sqlstate = ctx->err.sqlstate;
}

void pgfeed__fail_count_committed(struct pgfeed_ctx *ctx)
{
    ctx->err_count_committed = 1;
}

void pgfeed__err_clear(struct pgfeed_err_store *e)
{
    free(e->message);
    free(e->detail);
    free(e->hint);
    free(e->sqlstate);
    free(e->column_name);
    memset(e, 0, sizeof *e);
}

void pgfeed__log(struct pgfeed_ctx *ctx, int level, const char *fmt, ...)
{
    if (ctx->opt->log_cb == NULL || level > ctx->opt->log_level)
        return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    format_cut(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *safe = pgfeed__escape_text(msg);
    ctx->opt->log_cb(ctx->opt->log_arg, level, safe ? safe : msg);
    free(safe);
}

/* ---------------------------------------------------- loop and lifecycle */

uv_loop_t *pgfeed__ctx_loop(struct pgfeed_ctx *ctx)
{
    return ctx->loop;
}

const struct pgfeed_options *pgfeed__ctx_options(struct pgfeed_ctx *ctx)
{
    return ctx->opt;
}

struct pgfeed_stats *pgfeed__ctx_stats(struct pgfeed_ctx *ctx)
{
    return &ctx->stats;
}

void pgfeed__ctx_handle_closing(struct pgfeed_ctx *ctx)
{
    ctx->pending_closes++;
}

void pgfeed__ctx_handle_closed(struct pgfeed_ctx *ctx)
{
    ctx->pending_closes--;
    if (ctx->hooks.closed)
        ctx->hooks.closed(ctx->hooks.owner);
}

void pgfeed__ctx_close_cb(uv_handle_t *h)
{
    pgfeed__ctx_handle_closed(h->data);
}

void pgfeed__stage_resume_upstream(struct pgfeed_stage *s)
{
    if (s->prev && s->prev->ops->resume && s->ctx->running)
        s->prev->ops->resume(s->prev);
}

void pgfeed__ctx_schedule_resume(struct pgfeed_ctx *ctx, struct pgfeed_stage *s)
{
    if (ctx->hooks.schedule_resume)
        ctx->hooks.schedule_resume(ctx->hooks.owner, s);
}

int pgfeed__ctx_reject(struct pgfeed_ctx *ctx, const struct pgfeed_reject *r)
{
    return ctx->hooks.reject(ctx->hooks.owner, r);
}

int pgfeed__ctx_flush_rejects(struct pgfeed_ctx *ctx, uint64_t from, uint64_t upto,
                              void (*cb)(void *arg, int status), void *arg)
{
    return ctx->hooks.flush_rejects(ctx->hooks.owner, from, upto, cb, arg);
}

void pgfeed__ctx_batch_ending(struct pgfeed_ctx *ctx, struct pgfeed_batch_info *bi)
{
    if (ctx->hooks.batch_ending)
        ctx->hooks.batch_ending(ctx->hooks.owner, bi);
}

/* ---------------------------------------------------------------- time */

void pgfeed__ctx_server_wait(struct pgfeed_ctx *ctx, int waiting)
{
    if (waiting && ctx->server_wait_since == 0) {
        ctx->server_wait_since = uv_hrtime();
    } else if (!waiting && ctx->server_wait_since != 0) {
        ctx->server_wait_ns += uv_hrtime() - ctx->server_wait_since;
        ctx->server_wait_since = 0;
    }
}

void pgfeed__ctx_busy(struct pgfeed_ctx *ctx, uint64_t since_ns)
{
    ctx->busy_ns += uv_hrtime() - since_ns;
}

/* ---------------------------------------------------------------- retries */

void pgfeed__ctx_transient(struct pgfeed_ctx *ctx)
{
    if (ctx->opt && ctx->opt->no_checkpoint) {
        /* A retry reads where to go on from the checkpoint: there is none. */
        if (ctx->err.pub.code == 0 && !ctx->canceled)
            pgfeed__log(ctx, PGFEED_LOG_WARNING,
                        "not retrying: without checkpoints (--no-checkpoint) a new attempt "
                        "would not know where to go on");
        return;
    }
    if (ctx->err.pub.code == 0 && !ctx->canceled)
        ctx->transient = 1;
}

int pgfeed__ctx_retrying(const struct pgfeed_ctx *ctx)
{
    return ctx->attempts > 0 || ctx->waits > 0;
}

void pgfeed__ctx_connect_failed(struct pgfeed_ctx *ctx, int not_up_yet)
{
    if (not_up_yet && !ctx->connected && !ctx->canceled && ctx->err.pub.code == 0 &&
        ctx->wait_db_until != 0 && uv_hrtime() < ctx->wait_db_until) {
        ctx->transient = 1;
        ctx->waiting_db = 1;
    } else if (ctx->attempts > 0) {
        pgfeed__ctx_transient(ctx);
    }
}

void pgfeed__ctx_batch_committed(struct pgfeed_ctx *ctx, const struct pgfeed_batch_info *bi,
                                 const uint64_t *prefix_raw)
{
    if (bi->end_decoded > ctx->member.dec_start) {
        /* Batches may commit out of order: the member's committed lines span them all. */
        if (ctx->member.batches++ == 0 || bi->first_line < ctx->member.first_line)
            ctx->member.first_line = bi->first_line;
        if (bi->last_line > ctx->member.last_line)
            ctx->member.last_line = bi->last_line;
        ctx->member.rows += bi->rows;
    }
    if (prefix_raw == NULL)
        return;
    if (bi->last_line > ctx->lines_committed)
        ctx->lines_committed = bi->last_line;
    /* A retry reads from the checkpoint's restart point on: what is before it can go. */
    uint64_t restart_raw = *prefix_raw;
    struct pgfeed_replay *rp = &ctx->replay;
    if (restart_raw > rp->start && !rp->lost && rp->buf.data) {
        uint64_t drop = restart_raw - rp->start;
        if (drop > rp->buf.len)
            drop = rp->buf.len;
        memmove(rp->buf.data, rp->buf.data + drop, rp->buf.len - (size_t)drop);
        rp->buf.len -= (size_t)drop;
        rp->start += drop;
    }
}

size_t pgfeed__ctx_replay_cap(const struct pgfeed_ctx *ctx)
{
    size_t n = ctx->opt->connections ? (size_t)ctx->opt->connections : 1;
    return (n + 1) * ctx->opt->batch_bytes;
}

void pgfeed__ctx_replay_keep(struct pgfeed_ctx *ctx, const char *p, size_t n)
{
    struct pgfeed_replay *rp = &ctx->replay;
    if (rp->lost || n == 0)
        return;
    size_t cap = pgfeed__ctx_replay_cap(ctx);
    if (rp->buf.len + n > cap || pgfeed__buf_append(&rp->buf, p, n) != 0) {
        rp->lost = 1;
        pgfeed__buf_free(&rp->buf);
        pgfeed__log(ctx, PGFEED_LOG_INFO,
                    "more than %zu bytes of input are not committed yet: a lost connection can "
                    "no longer be retried within this run",
                    cap);
    }
}

int pgfeed__ctx_replay_get(struct pgfeed_ctx *ctx, uint64_t offset, const char **p, size_t *n)
{
    struct pgfeed_replay *rp = &ctx->replay;
    if (rp->lost || offset < rp->start || offset > rp->start + rp->buf.len)
        return UV_ENOENT;
    *p = rp->buf.data + (offset - rp->start);
    *n = rp->buf.len - (size_t)(offset - rp->start);
    return 0;
}

int pgfeed__ctx_replay_ok(const struct pgfeed_ctx *ctx)
{
    return !ctx->replay.lost;
}

void pgfeed__ctx_member_start(struct pgfeed_ctx *ctx, uint64_t decoded, uint64_t raw)
{
    if (ctx->member.raw_start == raw && ctx->member.dec_start == decoded)
        return; /* the same member again, after a retry: its committed batches still count */
    memset(&ctx->member, 0, sizeof ctx->member);
    ctx->member.dec_start = decoded;
    ctx->member.raw_start = raw;
}

void pgfeed__ctx_damaged_member(struct pgfeed_ctx *ctx)
{
    ctx->member.damaged = 1;
}

void pgfeed__ctx_free(struct pgfeed_ctx *ctx)
{
    pgfeed__err_clear(&ctx->err);
    pgfeed__buf_free(&ctx->replay.buf);
}
