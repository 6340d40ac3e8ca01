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
 * or both fail. After a success, a restart point for a decoded offset chosen by the input
 * must resume (in a fresh decoder, with either engine, fed from its raw offset in pieces)
 * to the same output from that offset on.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define LIMIT ((size_t)1 << 18) /* decoded bytes a run may deliver */

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
};

static void restart_check(struct pgfeed_stage *dec, const struct cfg *g, const uint8_t *in,
                          size_t n, const struct run *r);

static void decode(const struct cfg *g, const uint8_t *in, size_t n, struct run *r)
{
    pgfeed_job_t *job = fuzz_job_new(0);
    struct pgfeed_stage *dec = NULL;
    struct fuzz_sink k;
    uint64_t rng = g->seed;

    if (pgfeed__decoder_new(job, g->out_chunk, &dec) != 0)
        fuzz_die("pgfeed__decoder_new failed");
    pgfeed__decoder_use_isal(dec, g->isal);
    if (g->span_set)
        pgfeed__decoder_set_span(dec, g->span);
    if (g->skip)
        pgfeed__decoder_skip_output(dec, g->skip);
    fuzz_sink_init(&k, job, g->eagain, g->seed ^ 0x5555);
    k.limit = LIMIT;
    dec->next = &k.base;
    k.base.prev = dec;

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
    if (r->rc == 0 && pgfeed__job_stats(job)->bytes_inflated != k.got.len + g->skip)
        fuzz_die("bytes_inflated %llu, delivered %zu + skipped %llu",
                 (unsigned long long)pgfeed__job_stats(job)->bytes_inflated, k.got.len,
                 (unsigned long long)g->skip);
    r->out = k.got;
    k.got.data = NULL;
    if (r->rc == 0 && g->restart && !r->over)
        restart_check(dec, g, in, n, r);
    fuzz_sink_free(&k);
    dec->ops->destroy(dec);
    fuzz_job_close(job);
}

/* r: a successful run of dec, whose output starts at decoded offset g->skip. */
static void restart_check(struct pgfeed_stage *dec, const struct cfg *g, const uint8_t *in,
                          size_t n, const struct run *r)
{
    uint64_t total = g->skip + r->out.len, at = g->skip + g->pick % (r->out.len + 1), raw = 0;
    struct pgfeed_buf blob = {0};
    int rc = pgfeed__decoder_restart_point(dec, at, &blob, &raw);
    if (rc == 1 || rc == UV_ENOMEM) {
        pgfeed__buf_free(&blob);
        return;
    }
    if (rc != 0)
        fuzz_die("restart_point returned %d", rc);
    if (raw > n)
        fuzz_die("restart point at raw offset %llu of a %zu-byte input", (unsigned long long)raw,
                 n);

    pgfeed_job_t *job = fuzz_job_new(0);
    struct pgfeed_stage *d2 = NULL;
    struct fuzz_sink k;
    uint64_t rng = g->seed * 31 + 7;
    if (pgfeed__decoder_new(job, g->out_chunk, &d2) != 0)
        fuzz_die("pgfeed__decoder_new failed");
    pgfeed__decoder_use_isal(d2, (int)(g->pick >> 20) & 1); /* either engine reads the blob */
    fuzz_sink_init(&k, job, g->eagain, rng);
    k.limit = LIMIT;
    d2->next = &k.base;
    k.base.prev = d2;
    rc = pgfeed__decoder_restart_from(d2, blob.data, blob.len, at);
    if (rc != 0)
        fuzz_die("a restart point the decoder made is refused: %s: %s", pgfeed_err_name(rc),
                 pgfeed_job_error(job)->detail ? pgfeed_job_error(job)->detail : "-");
    rc = fuzz_feed(d2, &k, in + raw, n - (size_t)raw, g->max_piece, &rng);
    if (rc != 0)
        fuzz_die("resumed at decoded %llu (raw %llu): %s: %s", (unsigned long long)at,
                 (unsigned long long)raw, pgfeed_err_name(rc),
                 pgfeed_job_error(job)->message ? pgfeed_job_error(job)->message : "-");
    if (k.got.len != total - at ||
        memcmp(k.got.data, r->out.data + (at - g->skip), (size_t)(total - at)) != 0)
        fuzz_die("resumed at decoded %llu (raw %llu): %zu bytes differ from the %llu expected",
                 (unsigned long long)at, (unsigned long long)raw, k.got.len,
                 (unsigned long long)(total - at));
    fuzz_sink_free(&k);
    d2->ops->destroy(d2);
    fuzz_job_close(job);
    pgfeed__buf_free(&blob);
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
