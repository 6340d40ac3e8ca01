/*
 * fuzz_decode.c -- the decoder stage (decode_gzip.c) on arbitrary input.
 *
 * Input: 4 configuration bytes, then the compressed (or plain) bytes.
 *   byte 0  bits 0-2 out_chunk (1 .. 128 KiB), bit 3 ISA-L off, bits 4-5 the span between
 *           access points (default, every block, 100, 5000 bytes), bit 6 skip output
 *   byte 1  EAGAIN from the fake downstream: never, or about one call in 2 .. 8
 *   byte 2  the largest piece a write gets (whole, 1, 2, 3, 17, 100, 1000, 5000 bytes);
 *           bits 3-7 the seed of the piece sizes and of the EAGAINs
 *   byte 3  skip (with bit 6 of byte 0): decoded bytes to skip, times 37
 * The run is then repeated whole, without EAGAIN and with 64 KiB out: result and output
 * must agree (on a failure, the output delivered before it may differ only in length). Built
 * with ISA-L, the whole run is also made with zlib alone: both succeed with the same output,
 * or both fail. Restart points are asked for now and then from inside the decoder's writes
 * (as the sink asks at batch ends) and once after the end, at decoded offsets the input
 * chooses; after a success each must resume (in a fresh decoder, with either engine, fed
 * from its raw offset in pieces) to the same output from its offset on.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

struct run {
    int rc;
    int over;
    struct pgfeed_buf out;
};

struct cfg {
    size_t out_chunk, max_piece;
    int isal;
    size_t span; /* 0: the decoder's default */
    int span_set;
    unsigned eagain;
    uint64_t seed, skip;
    int restart; /* try a restart point after a success */
    uint64_t pick;
    size_t limit; /* decoded bytes a run may deliver: less with tiny out_chunk, which is slow */
};

/* A restart point the decoder handed out: where it was asked for, and its blob. */
struct sample {
    uint64_t at, raw;
    struct pgfeed_buf blob;
};
#define SAMPLES 3

/* Points asked for during the run, from inside the decoder's write, as the sink does. */
struct taker {
    struct pgfeed_stage *dec;
    uint64_t skip, rng;
    int n;
    struct sample s[SAMPLES];
};

static int ask_point(struct pgfeed_stage *dec, uint64_t at, struct sample *sm)
{
    memset(sm, 0, sizeof *sm);
    sm->at = at;
    int rc = pgfeed__decoder_restart_point(dec, at, &sm->blob, &sm->raw);
    if (rc == 0)
        return 1;
    pgfeed__buf_free(&sm->blob);
    if (rc != 1 && rc != UV_ENOMEM)
        fuzz_die("restart_point returned %d", rc);
    return 0;
}

static void take_point(struct fuzz_sink *k)
{
    struct taker *t = k->arg;
    if (t->n == SAMPLES || fuzz_rng(&t->rng) % 16 != 0)
        return;
    uint64_t at = t->skip + fuzz_rng(&t->rng) % (k->got.len + 1);
    t->n += ask_point(t->dec, at, &t->s[t->n]);
}

/*
 * A point taken in a successful run whose output (r, from decoded offset g->skip on) is
 * known: a fresh decoder restarted from it, fed the input from its raw offset, must give
 * the output from sm->at on.
 */
static void verify_point(const struct cfg *g, const uint8_t *in, size_t n, const struct run *r,
                         const struct sample *sm, int isal, int first)
{
    uint64_t total = g->skip + r->out.len;
    if (sm->raw > n || sm->at > total)
        fuzz_die("restart point at raw offset %llu for decoded %llu, of %zu bytes in, %llu out",
                 (unsigned long long)sm->raw, (unsigned long long)sm->at, n,
                 (unsigned long long)total);
    pgfeed_job_t *job = fuzz_job_new(0);
    struct pgfeed_stage *d2 = NULL;
    struct fuzz_sink k;
    uint64_t rng = g->seed * 31 + sm->at;
    if (pgfeed__decoder_new(pgfeed__job_ctx(job), first ? g->out_chunk : 65536, &d2) != 0)
        fuzz_die("pgfeed__decoder_new failed");
    pgfeed__decoder_use_isal(d2, isal); /* either engine reads the blob */
    /* The first point as the run went, the others fast: whole, 64 KiB out. */
    fuzz_sink_init(&k, job, first ? g->eagain : 0, rng);
    k.limit = g->limit;
    d2->next = &k.base;
    k.base.prev = d2;
    int rc = pgfeed__decoder_restart_from(d2, sm->blob.data, sm->blob.len, sm->at);
    if (rc != 0)
        fuzz_die("a restart point the decoder made is refused: %s: %s", pgfeed_err_name(rc),
                 pgfeed_job_error(job)->detail ? pgfeed_job_error(job)->detail : "-");
    rc = fuzz_feed(d2, &k, in + sm->raw, n - (size_t)sm->raw, first ? g->max_piece : 0, &rng);
    if (rc != 0)
        fuzz_die("resumed at decoded %llu (raw %llu): %s: %s", (unsigned long long)sm->at,
                 (unsigned long long)sm->raw, pgfeed_err_name(rc),
                 pgfeed_job_error(job)->message ? pgfeed_job_error(job)->message : "-");
    if (k.got.len != total - sm->at ||
        memcmp(k.got.data, r->out.data + (sm->at - g->skip), (size_t)(total - sm->at)) != 0)
        fuzz_die("resumed at decoded %llu (raw %llu): %zu bytes differ from the %llu expected",
                 (unsigned long long)sm->at, (unsigned long long)sm->raw, k.got.len,
                 (unsigned long long)(total - sm->at));
    fuzz_sink_free(&k);
    d2->ops->destroy(d2);
    fuzz_job_close(job);
}

static void decode(const struct cfg *g, const uint8_t *in, size_t n, struct run *r)
{
    pgfeed_job_t *job = fuzz_job_new(0);
    struct pgfeed_stage *dec = NULL;
    struct fuzz_sink k;
    uint64_t rng = g->seed;

    if (pgfeed__decoder_new(pgfeed__job_ctx(job), g->out_chunk, &dec) != 0)
        fuzz_die("pgfeed__decoder_new failed");
    pgfeed__decoder_use_isal(dec, g->isal);
    if (g->span_set)
        pgfeed__decoder_set_span(dec, g->span);
    if (g->skip)
        pgfeed__decoder_skip_output(dec, g->skip);
    fuzz_sink_init(&k, job, g->eagain, g->seed ^ 0x5555);
    k.limit = g->limit;
    dec->next = &k.base;
    k.base.prev = dec;
    struct taker t = {.dec = dec, .skip = g->skip, .rng = g->pick + 1};
    if (g->restart) {
        k.on_write = take_point;
        k.arg = &t;
    }

    r->rc = fuzz_feed(dec, &k, in, n, g->max_piece, &rng);
    r->over = k.over_limit;
    if (r->rc == 0 && !k.finished)
        fuzz_die("finish succeeded but did not reach downstream");
    if (r->rc != 0 && r->rc != PGFEED_EAGAIN) {
        /* A failure sticks, and its message is in PostgreSQL's style. */
        const struct pgfeed_error *e = pgfeed_job_error(job);
        if (dec->ops->write(dec, "x", 1) != r->rc || dec->ops->finish(dec) != r->rc)
            fuzz_die("the decoder's failure is not sticky");
        if (!e->message || !e->message[0] || (e->message[0] >= 'A' && e->message[0] <= 'Z'))
            fuzz_die("error message \"%s\"", e->message ? e->message : "(null)");
    }
    if (r->rc == 0 && pgfeed_job_error(job)->code != 0)
        fuzz_die("success with the job's error set: %s", pgfeed_job_error(job)->message);
    if (r->rc == 0 &&
        pgfeed__ctx_stats(pgfeed__job_ctx(job))->bytes_inflated != k.got.len + g->skip)
        fuzz_die("bytes_inflated %llu, delivered %zu + skipped %llu",
                 (unsigned long long)pgfeed__ctx_stats(pgfeed__job_ctx(job))->bytes_inflated,
                 k.got.len, (unsigned long long)g->skip);
    r->out = k.got;
    k.got.data = NULL;
    if (r->rc == 0 && g->restart && !r->over) {
        /* One more, asked after the end, then each is resumed from. */
        if (t.n < SAMPLES)
            t.n += ask_point(dec, g->skip + g->pick % (r->out.len + 1), &t.s[t.n]);
        for (int i = 0; i < t.n; i++)
            verify_point(g, in, n, r, &t.s[i], (int)(g->pick >> (20 + i)) & 1, i == 0);
    }
    for (int i = 0; i < t.n; i++)
        pgfeed__buf_free(&t.s[i].blob);
    fuzz_sink_free(&k);
    dec->ops->destroy(dec);
    fuzz_job_close(job);
}

/* Two runs of the same input: the same result, and output that agrees. */
static void compare(const char *what, const struct run *a, const struct run *b, int exact_rc)
{
    if (a->over || b->over)
        return;
    if (exact_rc ? a->rc != b->rc : (a->rc == 0) != (b->rc == 0))
        fuzz_die("%s: results differ: %s and %s", what, pgfeed_err_name(a->rc),
                 pgfeed_err_name(b->rc));
    size_t common = a->out.len < b->out.len ? a->out.len : b->out.len;
    if (a->rc == 0 ? a->out.len != b->out.len || memcmp(a->out.data, b->out.data, common) != 0
                   : memcmp(a->out.data, b->out.data, common) != 0)
        fuzz_die("%s: output differs (%zu and %zu bytes)", what, a->out.len, b->out.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[] = {1, 2, 7, 64, 300, 4096, 65536, 131072};
    static const size_t pieces[] = {0, 1, 2, 3, 17, 100, 1000, 5000};
    static const size_t spans[] = {0, 0, 100, 5000};
    struct fuzz_in in = {data, size};
    unsigned b0 = fuzz_take(&in), b1 = fuzz_take(&in), b2 = fuzz_take(&in), b3 = fuzz_take(&in);
    struct cfg g = {
        .out_chunk = chunks[b0 & 7],
        .isal = !(b0 & 8),
        .span = spans[(b0 >> 4) & 3],
        .span_set = ((b0 >> 4) & 3) != 0,
        .eagain = (b1 & 7) ? 1 + (b1 & 7) : 0,
        .max_piece = pieces[b2 & 7],
        .seed = (uint64_t)(b2 >> 3) * 2654435761u + b1 + 1,
        .skip = (b0 & 64) ? (uint64_t)b3 * 37 : 0,
        .restart = !(b0 & 64),
        .pick = (uint64_t)b3 * 0x10001u + (b1 << 8),
    };
    g.limit = g.out_chunk < 64 ? (size_t)1 << 15 : (size_t)1 << 18;
    struct run a, b, c;

    decode(&g, in.p, in.n, &a);
    struct cfg whole = g;
    whole.out_chunk = 65536;
    whole.max_piece = 0;
    whole.eagain = 0;
    whole.restart = 0;
    decode(&whole, in.p, in.n, &b);
    compare("split and whole", &a, &b, 1);
    if (g.isal) {
        whole.isal = 0;
        decode(&whole, in.p, in.n, &c);
        compare("ISA-L and zlib", &b, &c, 0);
        pgfeed__buf_free(&c.out);
    }
    pgfeed__buf_free(&a.out);
    pgfeed__buf_free(&b.out);
    return 0;
}
