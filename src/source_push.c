/*
 * source_push.c -- the embedder's bytes as a source (pgfeed_options.push): what
 * pgfeed_job_write() hands over waits in the job's inbox until this stage offers it to
 * the decoder, at most chunk_size bytes a write.
 *
 * The inbox (struct pgfeed_push_inbox) belongs to the job and outlives the stage: a
 * retry makes a new stage that replays what the context kept, then reads on from the same
 * inbox. Its bound is fixed at creation (job.c: 4 x chunk_size): a write is taken whole
 * while fewer bytes than the bound wait, else refused with EAGAIN; the room hook then runs
 * once, from here, when what waits falls below the bound (the job turns it into drain_cb
 * from a timer of its own). So the inbox holds less than the bound plus one write, and a
 * pipeline backpressured by PostgreSQL pushes back on the host as on a socket. Leaves
 * decompression to the decoder, dropping a resume's committed part and a retry's replay
 * to source_once.c; keeps every byte the decoder takes for a replay (ctx.c); counts
 * bytes_read.
 *
 * No handle: the stage runs from resume() only, scheduled by the context (on start,
 * after a write and at the end of input) or called by the decoder when it has room. It
 * offers at most ROUNDS_PER_TURN chunks per resume, then schedules itself again so that
 * the loop keeps turning. The inbox is compacted when what it has handed on is at least
 * as large as what still waits (amortised: each byte is moved at most once on average).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ROUNDS_PER_TURN 8

struct source_push {
    struct pgfeed_stage base;
    struct pgfeed_push_inbox *in;
    struct pgfeed_once once;
    size_t chunk;
    int started, stopped, finished;
};

static struct source_push *src_of(struct pgfeed_stage *s)
{
    return container_of(s, struct source_push, base);
}

/* ---------------------------------------------------------------- the inbox */

void pgfeed__push_init(struct pgfeed_push_inbox *in, size_t bound, void (*room)(void *arg),
                       void *arg)
{
    memset(in, 0, sizeof *in);
    in->bound = bound;
    in->room = room;
    in->room_arg = arg;
}

static size_t waiting(const struct pgfeed_push_inbox *in)
{
    return in->buf.len - in->off;
}

static void wake(struct pgfeed_push_inbox *in)
{
    if (in->reader)
        pgfeed__ctx_schedule_resume(in->reader->ctx, in->reader);
}

int pgfeed__push_write(struct pgfeed_push_inbox *in, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    size_t w = waiting(in);
    if (w >= in->bound) {
        in->want_room = 1;
        return PGFEED_EAGAIN;
    }
    if (w == 0) {
        in->buf.len = in->off = 0;
    } else if (in->off >= w) {
        memmove(in->buf.data, in->buf.data + in->off, w);
        in->buf.len = w;
        in->off = 0;
    }
    if (pgfeed__buf_append(&in->buf, p, n) != 0)
        return UV_ENOMEM;
    wake(in);
    return 0;
}

void pgfeed__push_end(struct pgfeed_push_inbox *in)
{
    in->ended = 1;
    in->want_room = 0;
    wake(in);
}

void pgfeed__push_free(struct pgfeed_push_inbox *in)
{
    pgfeed__buf_free(&in->buf);
    in->off = 0;
}

/* n bytes left the inbox (taken downstream or dropped): kept for a replay; room said. */
static void taken(struct source_push *s, size_t n)
{
    struct pgfeed_push_inbox *in = s->in;
    pgfeed__ctx_replay_keep(s->base.ctx, in->buf.data + in->off, n);
    in->off += n;
    if (in->want_room && waiting(in) < in->bound) {
        in->want_room = 0;
        if (in->room)
            in->room(in->room_arg);
    }
}

/* ---------------------------------------------------------------- the stage */

/* Offers n bytes downstream: 0 taken (counted), EAGAIN, or a failure. */
static int offer(struct source_push *s, const char *p, size_t n)
{
    struct pgfeed_stage *next = s->base.next;
    uint64_t t0 = uv_hrtime();
    int rc = next->ops->write(next, p, n);
    pgfeed__ctx_busy(s->base.ctx, t0);
    if (rc == 0)
        pgfeed__ctx_stats(s->base.ctx)->bytes_read += n;
    return rc;
}

/* The end of input, once everything written went downstream. */
static int finish(struct source_push *s)
{
    int rc = pgfeed__once_end(&s->once);
    if (rc != 0)
        return rc;
    struct pgfeed_stage *next = s->base.next;
    uint64_t t0 = uv_hrtime();
    rc = next->ops->finish(next);
    pgfeed__ctx_busy(s->base.ctx, t0);
    if (rc == 0)
        s->finished = 1;
    return rc;
}

/* A chunk of the replay, then of the inbox. 1: bytes moved, go on; 0: wait (for room or
 * for the host); < 0: failed (error set). */
static int step(struct source_push *s)
{
    const char *p;
    size_t n;
    int rc;
    if (s->once.replaying) {
        if (pgfeed__once_replay(&s->once, &p, &n) != 0)
            return -1;
        if (n > 0) {
            n = n < s->chunk ? n : s->chunk;
            size_t drop = pgfeed__once_drop(&s->once, n); /* replayed, before the restart */
            if (drop) {
                pgfeed__once_replayed(&s->once, drop);
                return 1;
            }
            rc = offer(s, p, n);
            if (rc == 0)
                pgfeed__once_replayed(&s->once, n);
            return rc == 0 ? 1 : rc == PGFEED_EAGAIN ? 0 : rc;
        }
    }
    struct pgfeed_push_inbox *in = s->in;
    n = waiting(in);
    if (n == 0) {
        rc = in->ended ? finish(s) : 0;
        return rc == PGFEED_EAGAIN ? 0 : rc;
    }
    size_t drop = pgfeed__once_drop(&s->once, n); /* a resume: the committed part again */
    if (drop) {
        taken(s, drop);
        return 1;
    }
    n = n < s->chunk ? n : s->chunk;
    rc = offer(s, in->buf.data + in->off, n);
    if (rc == 0)
        taken(s, n);
    return rc == 0 ? 1 : rc == PGFEED_EAGAIN ? 0 : rc;
}

static void source_resume(struct pgfeed_stage *st)
{
    struct source_push *s = src_of(st);
    for (int i = 0; i < ROUNDS_PER_TURN; i++) {
        if (!s->started || s->stopped || s->finished || step(s) <= 0)
            return;
    }
    pgfeed__ctx_schedule_resume(st->ctx, st); /* more may wait: on at the next turn */
}

static int source_start(struct pgfeed_stage *st)
{
    struct source_push *s = src_of(st);
    s->started = 1;
    s->in->reader = st;
    pgfeed__ctx_schedule_resume(st->ctx, st); /* never from inside the sink's callback */
    return 0;
}

static void source_stop(struct pgfeed_stage *st)
{
    struct source_push *s = src_of(st);
    s->stopped = 1;
    if (s->in->reader == st)
        s->in->reader = NULL;
}

static void source_destroy(struct pgfeed_stage *st)
{
    source_stop(st);
    free(src_of(st));
}

static int source_seek(struct pgfeed_stage *st, uint64_t raw_offset,
                       const struct pgfeed_validators *expect)
{
    (void)expect; /* nothing identifies the stream but its name */
    return pgfeed__once_seek(&src_of(st)->once, raw_offset);
}

/* The host writes its bytes once: a retry reads them again from what the context kept. */
static int source_rereadable(struct pgfeed_stage *st)
{
    return pgfeed__ctx_replay_ok(st->ctx);
}

static const struct pgfeed_stage_ops source_push_ops = {
    .name = "source",
    .rereadable = source_rereadable,
    .seek = source_seek,
    .resume = source_resume,
    .stop = source_stop,
    .destroy = source_destroy,
    .start = source_start,
};

int pgfeed__source_push_new(struct pgfeed_ctx *ctx, struct pgfeed_push_inbox *in,
                            struct pgfeed_stage **out)
{
    struct source_push *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL)
        return UV_ENOMEM;
    s->base.ops = &source_push_ops;
    s->base.ctx = ctx;
    s->in = in;
    s->chunk = pgfeed__ctx_options(ctx)->chunk_size;
    pgfeed__once_init(&s->once, ctx, ctx->display);
    s->once.replaying = pgfeed__ctx_retrying(ctx); /* seek says from where */
    *out = &s->base;
    return 0;
}
