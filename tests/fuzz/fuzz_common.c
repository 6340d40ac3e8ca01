/* fuzz_common.c -- see fuzz.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static uv_loop_t loop;
static int loop_ready;

unsigned fuzz_take(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint64_t fuzz_take_n(struct fuzz_in *in, unsigned k)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < k && i < 8; i++)
        v |= (uint64_t)fuzz_take(in) << (8 * i);
    return v;
}

uint64_t fuzz_rng(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

void fuzz_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

pgfeed_job_t *fuzz_job_new(uint64_t max_rejects)
{
    struct pgfeed_options o;
    pgfeed_job_t *job = NULL;
    if (!loop_ready) {
        if (uv_loop_init(&loop) != 0)
            fuzz_die("uv_loop_init failed");
        loop_ready = 1;
    }
    pgfeed_options_init(&o);
    o.source = "-";
    o.table = "t";
    o.max_rejects = max_rejects;
    if (pgfeed_job_new(&loop, &o, &job) != 0)
        fuzz_die("pgfeed_job_new failed");
    return job;
}

void fuzz_job_close(pgfeed_job_t *job)
{
    pgfeed_job_close(job, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static struct fuzz_sink *sink_of(struct pgfeed_stage *s)
{
    return container_of(s, struct fuzz_sink, base);
}

/* Every call from above: the contract, then maybe EAGAIN. 0 or PGFEED_EAGAIN. */
static int gate(struct fuzz_sink *k, int kind, const void *p, size_t n)
{
    if (k->owe)
        fuzz_die("%s called downstream again before it was resumed", k->base.prev->ops->name);
    if (k->finished)
        fuzz_die("%s called downstream after finish", k->base.prev->ops->name);
    if (k->refused_kind) {
        if (kind != k->refused_kind || n != k->refused.len ||
            (n && memcmp(p, k->refused.data, n) != 0))
            fuzz_die("%s did not offer the refused %s again unchanged (kind %d, %zu bytes, "
                     "refused %zu)",
                     k->base.prev->ops->name,
                     k->refused_kind == FUZZ_WRITE ? "write" : "end_batch or finish", kind, n,
                     k->refused.len);
        k->refused_kind = 0;
    }
    if (k->eagain && fuzz_rng(&k->rng) % k->eagain == 0) {
        k->owe = 1;
        k->refused_kind = kind;
        k->refused.len = 0;
        if (pgfeed__buf_append(&k->refused, p, n) != 0)
            fuzz_die("out of memory");
        return PGFEED_EAGAIN;
    }
    return 0;
}

static int sink_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct fuzz_sink *k = sink_of(s);
    int rc = gate(k, FUZZ_WRITE, p, n);
    if (rc != 0)
        return rc;
    if (k->limit && k->got.len + n > k->limit) {
        k->over_limit = 1;
        return pgfeed__fail(s->ctx, "sink", UV_E2BIG, NULL, NULL, "fuzz output limit");
    }
    if (pgfeed__buf_append(&k->got, p, n) != 0)
        fuzz_die("out of memory");
    if (k->on_write)
        k->on_write(k);
    return 0;
}

static int sink_end_batch(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi)
{
    struct fuzz_sink *k = sink_of(s);
    int rc = gate(k, FUZZ_END_BATCH, bi, sizeof *bi);
    if (rc == 0 && pgfeed__buf_append(&k->batches, bi, sizeof *bi) != 0)
        fuzz_die("out of memory");
    if (rc == 0 && k->on_end_batch)
        k->on_end_batch(k, bi);
    return rc;
}

static int sink_finish(struct pgfeed_stage *s)
{
    struct fuzz_sink *k = sink_of(s);
    int rc = gate(k, FUZZ_FINISH, NULL, 0);
    if (rc == 0)
        k->finished = 1;
    return rc;
}

static void sink_resume(struct pgfeed_stage *s)
{
    fuzz_die("%s resumed its downstream", s->prev->ops->name);
}

static const struct pgfeed_stage_ops sink_ops = {
    .name = "sink",
    .write = sink_write,
    .finish = sink_finish,
    .resume = sink_resume,
    .end_batch = sink_end_batch,
};

void fuzz_sink_init(struct fuzz_sink *k, pgfeed_job_t *job, unsigned eagain, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->base.ops = &sink_ops;
    k->base.ctx = pgfeed__job_ctx(job);
    k->eagain = eagain;
    k->rng = seed;
    if (pgfeed__buf_reserve(&k->got, 1) != 0) /* data never NULL */
        fuzz_die("out of memory");
}

void fuzz_sink_free(struct fuzz_sink *k)
{
    pgfeed__buf_free(&k->got);
    pgfeed__buf_free(&k->batches);
    pgfeed__buf_free(&k->refused);
}

int fuzz_sink_settle(struct fuzz_sink *k, struct pgfeed_stage *s)
{
    if (!k->owe)
        return -1;
    k->owe = 0;
    s->ops->resume(s);
    return 0;
}

int fuzz_feed(struct pgfeed_stage *s, struct fuzz_sink *k, const uint8_t *in, size_t n,
              size_t max_piece, uint64_t *rng)
{
    size_t pos = 0;
    int rc = 0;
    while (pos < n) {
        size_t len = n - pos;
        if (max_piece && len > 1) {
            size_t want = 1 + (size_t)(fuzz_rng(rng) % max_piece);
            len = want < len ? want : len;
        }
        char *piece = malloc(len);
        if (!piece)
            fuzz_die("out of memory");
        memcpy(piece, in + pos, len);
        for (unsigned tries = 0;; tries++) {
            rc = s->ops->write(s, piece, len);
            if (rc != PGFEED_EAGAIN)
                break;
            if (tries > 100000 || fuzz_sink_settle(k, s) != 0)
                fuzz_die("%s answered EAGAIN to a write with no resume owed to it: it would "
                         "wait forever (at byte %zu)",
                         s->ops->name, pos);
        }
        free(piece); /* the stage must not keep pointers into it */
        if (rc != 0)
            return rc;
        pos += len;
        /* Sometimes the room comes back before the next write, sometimes after. */
        if (k->owe && (fuzz_rng(rng) & 1))
            fuzz_sink_settle(k, s);
    }
    for (unsigned tries = 0;; tries++) {
        rc = s->ops->finish(s);
        if (rc != PGFEED_EAGAIN)
            return rc;
        if (tries > 100000 || fuzz_sink_settle(k, s) != 0)
            fuzz_die("%s answered EAGAIN to finish with no resume owed to it: it would wait "
                     "forever",
                     s->ops->name);
    }
}
