/*
 * test_decode.c -- the decoder stage (decode_gzip.c) driven into a fake downstream.
 *
 * Fixtures are made here with zlib from deterministic TSV-like text plus
 * incompressible bytes. Each one is fed whole, one byte at a time, split at
 * many offsets (every offset for small ones) and in random slices, each slice
 * ending right before a PROT_NONE page (tap_guard) and poisoned once the
 * decoder has taken it. The fake downstream answers EAGAIN on request; the
 * driver then plays job.c: it calls the decoder's resume op and offers the
 * same bytes (or finish) again. Every run checks the output byte for byte, so
 * a byte delivered twice or skipped shows, and checks the contract: no write
 * or finish downstream while a resume is owed, EAGAIN upstream only while
 * downstream owes a resume, finish passed on exactly once, bytes_inflated,
 * error messages and offsets. Also: output as prompt as zlib allows, and
 * pgfeed__decoder_skip_output() for resumed jobs.
 *
 * Restart points (test_restart_points): a decode of a few MB of rows
 * (gzip in one, two, four and forty members, zlib, plain) hands out restart
 * points at ~50 batch ends as the output passes them; a fresh decoder
 * restarted from each, fed the source from the point's raw offset (whole and
 * in random slices, with EAGAIN), must give the original output from the
 * batch end on, byte for byte, and hand out restart points itself; damaged
 * blobs, a changed source and a bad trailer of the resumed member fail
 * cleanly; an offset older than the ring is refused.
 *
 * Built with ISA-L, all of it runs with ISA-L inflating gzip members; then
 * restart points taken with zlib alone resume with ISA-L and the other way
 * round, as checkpoints carried from one build to the other would. A gzip
 * restart point written byte by byte in version 1's layout (as pgfeed wrote
 * them before zstd, bzip2 and xz came) resumes.
 *
 * zstd, bzip2, xz (test_codecs, those the build reads; fixtures made here
 * with libzstd, libbz2 and liblzma): one stream, streams of 50000 bytes,
 * empty streams, a skip, garbage, a partial magic, cut at every byte, every
 * byte flipped, a bad checksum, zstd skippable frames, zstd windows above and
 * at --max-window, an xz dictionary above the limit, xz -T's blocks; and
 * restart points at stream boundaries (test_codec_restart_points), as for
 * gzip above, plus a changed source at the restart point; and at block
 * boundaries inside one xz stream and inside one bzip2 stream (which start
 * at any bit: the same points whatever the input's slices, resumed one byte
 * at a time, damage after the point, a changed partial byte).
 */
#define ZLIB_CONST
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"
#include "tap.h"

static int isal_build; /* pgfeed was built with ISA-L */

/*
 * ASan's memmove, which ISA-L's uninstrumented code calls too, copies a byte
 * at a time, and isal_inflate moves its 32 KiB history on every call: feeding
 * big inputs a byte at a time then takes minutes, so ASan builds with ISA-L
 * feed them so in half the configurations only.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif
static int use_isal = 1; /* what run_case's and collect's decoders use */

/* ------------------------------------------------------------ fixtures */

struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void bytes_fill(struct bytes *b, unsigned char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bytes_add(b, &c, 1);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* name.basics-like rows: compressible, but not trivially. */
static void add_text(struct bytes *b, size_t target, uint64_t seed)
{
    static const char *const first[] = {"Fred",    "Lauren", "Ingrid",    "Toshiro", "Amitabh",
                                        "Marlene", "Zoë",    "Kazimierz", "Ngozi",   "Oscar"};
    static const char *const last[] = {"Astaire",  "Bacall",  "Bergman", "Mifune", "Bachchan",
                                       "Dietrich", "Kravitz", "Kutz",    "Okonjo", "Wilde"};
    static const char *const prof[] = {"actor",    "actress",  "director",        "writer",
                                       "producer", "composer", "cinematographer", "soundtrack"};
    char line[256];
    uint64_t s = seed;
    const char *header =
        "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles\n";

    bytes_add(b, header, strlen(header));
    for (unsigned id = 1; b->n < target; id++) {
        uint64_t r = rng_next(&s);
        unsigned born = 1850 + (unsigned)(r % 170);
        int n = snprintf(line, sizeof line, "nm%07u\t%s %s\t%u\t", id, first[r % 10],
                         last[(r >> 8) % 10], born);
        bytes_add(b, line, (size_t)n);
        if ((r >> 16) % 3)
            n = snprintf(line, sizeof line, "%u\t", born + 20 + (unsigned)((r >> 20) % 70));
        else
            n = snprintf(line, sizeof line, "\\N\t");
        bytes_add(b, line, (size_t)n);
        n = snprintf(line, sizeof line, "%s,%s\ttt%07u,tt%07u\n", prof[(r >> 28) % 8],
                     prof[(r >> 32) % 8], (unsigned)((r >> 36) % 9999999),
                     (unsigned)((r >> 12) % 9999999));
        bytes_add(b, line, (size_t)n);
    }
}

static void add_random(struct bytes *b, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(rng_next(&s) >> 24);
        bytes_add(b, &c, 1);
    }
}

/* Appends p compressed: window_bits 31 for gzip, 15 for zlib. */
static void add_deflated_strategy(struct bytes *b, const void *p, size_t n, int window_bits,
                                  int level, int with_header, int strategy)
{
    static unsigned char name[] = "name.basics.tsv";
    static unsigned char comment[] = "made by test_decode";
    static unsigned char extra[] = "XY\4\0abcd";
    z_stream zs;
    gz_header h;

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, strategy) != Z_OK)
        abort();
    if (with_header) {
        memset(&h, 0, sizeof h);
        h.name = name;
        h.comment = comment;
        h.extra = extra;
        h.extra_len = 8;
        h.hcrc = 1;
        h.time = 1700000000;
        if (deflateSetHeader(&zs, &h) != Z_OK)
            abort();
    }
    size_t bound = deflateBound(&zs, (uLong)n) + 256;
    struct bytes tmp = {0};
    bytes_fill(&tmp, 0, bound);
    zs.next_in = p;
    zs.avail_in = (uInt)n;
    zs.next_out = tmp.p;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        abort();
    bytes_add(b, tmp.p, bound - zs.avail_out);
    deflateEnd(&zs);
    free(tmp.p);
}

static void add_deflated(struct bytes *b, const void *p, size_t n, int window_bits, int level,
                         int with_header)
{
    add_deflated_strategy(b, p, n, window_bits, level, with_header, Z_DEFAULT_STRATEGY);
}

/* --------------------------------------------------- the guarded input slot */

static char *arena_end; /* a slice is copied to end here, right before a PROT_NONE page */
static size_t arena_cap;

static char *place(const unsigned char *p, size_t n)
{
    char *slot = arena_end - n;
    if (n > arena_cap)
        abort();
    if (n)
        memcpy(slot, p, n);
    return slot;
}

/* ----------------------------------------------------- the fake downstream */

enum { EAGAIN_NEVER = 0, EAGAIN_RANDOM = 1000 };

struct fake {
    struct pgfeed_stage base;
    struct pgfeed_stage up; /* a fake upstream too: the decoder's prev, to count its resumes */
    unsigned up_resumes;
    int in_call; /* inside the decoder's write or finish */
    struct bytes got;
    unsigned eagain;         /* EAGAIN_NEVER, every k-th call (k >= 2), or EAGAIN_RANDOM */
    unsigned finish_eagains; /* finish answers EAGAIN this many times before it takes it */
    uint64_t rng;
    unsigned calls;
    int owe; /* answered EAGAIN; the decoder's resume is owed */
    unsigned eagains;
    unsigned finish_calls, finished;
    const char *first_p;
    const char *violation;
    /* When set, output is compared with expect as it comes instead of kept (big cases). */
    const unsigned char *expect;
    size_t expect_n;
    int differs;
};

static struct fake *fake_of(struct pgfeed_stage *s)
{
    return container_of(s, struct fake, base);
}

static int fake_eagain(struct fake *f)
{
    f->calls++;
    if (f->eagain == EAGAIN_RANDOM)
        return rng_next(&f->rng) % 3 == 0;
    return f->eagain != EAGAIN_NEVER && f->calls % f->eagain == 0;
}

static int fake_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct fake *f = fake_of(s);
    if (f->owe && !f->violation)
        f->violation = "write downstream before the owed resume";
    if (f->finished && !f->violation)
        f->violation = "write downstream after finish";
    if (fake_eagain(f)) {
        f->owe = 1;
        f->eagains++;
        return PGFEED_EAGAIN;
    }
    if (!f->first_p)
        f->first_p = p;
    if (f->expect) {
        if (f->got.n + n > f->expect_n || memcmp(f->expect + f->got.n, p, n) != 0)
            f->differs = 1;
        f->got.n += n;
        return 0;
    }
    bytes_add(&f->got, p, n);
    return 0;
}

static int fake_finish(struct pgfeed_stage *s)
{
    struct fake *f = fake_of(s);
    f->finish_calls++;
    if (f->owe && !f->violation)
        f->violation = "finish downstream before the owed resume";
    if (f->finished && !f->violation)
        f->violation = "finish downstream twice";
    if (f->finish_eagains > 0) {
        f->finish_eagains--;
        f->owe = 1;
        return PGFEED_EAGAIN;
    }
    f->finished++;
    return 0;
}

static void fake_resume(struct pgfeed_stage *s)
{
    struct fake *f = fake_of(s);
    if (!f->violation)
        f->violation = "the decoder resumed its downstream";
}

static void fake_destroy(struct pgfeed_stage *s)
{
    (void)s;
}

static void up_resume(struct pgfeed_stage *s)
{
    struct fake *f = container_of(s, struct fake, up);
    if (f->in_call && !f->violation)
        f->violation = "the decoder resumed upstream from inside its write or finish";
    f->up_resumes++;
}

static const struct pgfeed_stage_ops fake_ops = {
    .name = "fake",
    .write = fake_write,
    .finish = fake_finish,
    .resume = fake_resume,
    .stop = NULL,
    .destroy = fake_destroy,
};

static const struct pgfeed_stage_ops up_ops = {
    .name = "source",
    .write = fake_write,
    .finish = fake_finish,
    .resume = up_resume,
    .stop = NULL,
    .destroy = fake_destroy,
};

/*
 * pgfeed__stage_resume_upstream() may do nothing for a job that is not
 * running (job.c's guard), and our jobs never start. If it does reach the
 * upstream, the driver waits for the decoder's resume before offering bytes
 * again, as a real source does; if not, it offers them after each resume it
 * gives the decoder.
 */
static int strict_resume;

/* ---------------------------------------------------------------- driver */

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_AT, SPLIT_RANDOM };

struct cfg {
    size_t out_chunk;
    enum split split;
    size_t at;        /* SPLIT_AT */
    size_t max_slice; /* SPLIT_RANDOM */
    unsigned eagain;
    unsigned finish_eagains;
    uint64_t seed;
};

/*
 * OUT_ANY_DECODE: a flipped byte. Any of the decoder's errors, or success with
 * the original output: a flip can be invisible (a byte zlib never looks at,
 * or code lengths of symbols never used), and then the checksum agrees too.
 */
enum outcome { OUT_OK, OUT_TRUNCATED, OUT_GARBAGE, OUT_CORRUPT, OUT_ANY_DECODE };

struct tcase {
    const char *name;
    const unsigned char *in;
    size_t in_n;
    const unsigned char *want; /* the output; for errors, what it must be a prefix of (NULL: any) */
    size_t want_n;
    enum outcome outcome;
    uint64_t raw_lo, raw_hi; /* errors: the range raw_offset must fall in */
    int zero_copy;           /* plain: the first whole write goes down as the same pointer */
    uint64_t skip;           /* OUT_OK: pgfeed__decoder_skip_output(); want is before the skip */
    const void *blob;        /* a restart point: restart_from(blob, skip) instead of skip_output */
    size_t blob_n;
    uint64_t max_window; /* pgfeed__decoder_set_max_window (0: the default) */
    int window_error;    /* the error is a window above the limit */
};

#define HUNG                                                                                       \
    (-999999) /* the decoder said EAGAIN with no resume owed to it: it would wait forever */

static uv_loop_t loop;

/* Plays job.c: the downstream has room again, so the decoder's resume runs. */
static int settle(struct fake *f, struct pgfeed_stage *dec)
{
    if (!f->owe)
        return HUNG;
    f->owe = 0;
    dec->ops->resume(dec);
    return 0;
}

/* The decoder answered EAGAIN: wait until it resumes us (or, lenient, resume it once). */
static int wait_for_room(struct fake *f, struct pgfeed_stage *dec)
{
    if (!strict_resume)
        return settle(f, dec);
    while (f->up_resumes == 0) {
        int rc = settle(f, dec);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Offers the same bytes until the decoder takes them or fails. */
static int offer(struct pgfeed_stage *dec, struct fake *f, const char *p, size_t n)
{
    for (unsigned tries = 0; tries < 1000000; tries++) {
        f->up_resumes = 0;
        f->in_call = 1;
        int rc = dec->ops->write(dec, p, n);
        f->in_call = 0;
        if (rc != PGFEED_EAGAIN)
            return rc;
        if ((rc = wait_for_room(f, dec)) != 0)
            return rc;
    }
    return HUNG;
}

static int finish_all(struct pgfeed_stage *dec, struct fake *f)
{
    for (unsigned tries = 0; tries < 1000000; tries++) {
        f->up_resumes = 0;
        f->in_call = 1;
        int rc = dec->ops->finish(dec);
        f->in_call = 0;
        if (rc != PGFEED_EAGAIN)
            return rc;
        if ((rc = wait_for_room(f, dec)) != 0)
            return rc;
    }
    return HUNG;
}

static const char *outcome_message(enum outcome o)
{
    switch (o) {
    case OUT_TRUNCATED:
        return "unexpected end of compressed input";
    case OUT_GARBAGE:
        return "trailing garbage after compressed data";
    default:
        return NULL;
    }
}

static int is_decoder_message(const char *m)
{
    return m &&
           (strcmp(m, "unexpected end of compressed input") == 0 ||
            strcmp(m, "trailing garbage after compressed data") == 0 ||
            strcmp(m, "corrupt gzip data") == 0 || strcmp(m, "corrupt zlib data") == 0 ||
            strcmp(m, "corrupt zstd data") == 0 || strcmp(m, "corrupt bzip2 data") == 0 ||
            strcmp(m, "corrupt xz data") == 0 ||
            strcmp(m, "cannot decompress zstd data with a window larger than the limit") == 0 ||
            strcmp(m, "cannot decompress xz data with a window larger than the limit") == 0);
}

static pgfeed_job_t *new_job(void)
{
    struct pgfeed_options o;
    pgfeed_job_t *job = NULL;
    pgfeed_options_init(&o);
    o.source = "-";
    o.table = "t";
    if (pgfeed_job_new(&loop, &o, &job) != 0) {
        fprintf(stderr, "pgfeed_job_new failed\n");
        abort();
    }
    return job;
}

static void close_job(pgfeed_job_t *job)
{
    pgfeed_job_close(job, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static char why[1024];
static unsigned undetected_flips;

#define FAIL_IF(cond, ...)                                                                         \
    do {                                                                                           \
        if (cond) {                                                                                \
            snprintf(why, sizeof why, __VA_ARGS__);                                                \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* One run of one case under one configuration: NULL when all is well, else why not. */
static const char *run_case(const struct tcase *c, const struct cfg *g)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stats *st = pgfeed__ctx_stats(pgfeed__job_ctx(job));
    struct pgfeed_stage *dec = NULL;
    struct fake f;
    uint64_t rng = g->seed * 2654435761u + 1;
    const char *first_slot = NULL;
    size_t pos = 0;
    int first = 1, rc = 0, in_finish = 0;
    const char *result = why;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    f.eagain = g->eagain;
    f.finish_eagains = g->finish_eagains;
    f.rng = g->seed + 7;
    if (c->blob) {
        f.expect = c->want + c->skip;
        f.expect_n = c->want_n - (size_t)c->skip;
    }

    rc = pgfeed__decoder_new(pgfeed__job_ctx(job), g->out_chunk, &dec);
    FAIL_IF(rc != 0 || !dec, "pgfeed__decoder_new: %s", pgfeed_err_name(rc));
    pgfeed__decoder_use_isal(dec, use_isal);
    if (c->max_window)
        pgfeed__decoder_set_max_window(dec, c->max_window);
    dec->next = &f.base;
    f.base.prev = dec;
    if (c->blob) {
        rc = pgfeed__decoder_restart_from(dec, c->blob, c->blob_n, c->skip);
        FAIL_IF(rc != 0, "restart_from: %s: %s", pgfeed_err_name(rc),
                pgfeed_job_error(job)->detail ? pgfeed_job_error(job)->detail : "-");
    } else if (c->skip)
        pgfeed__decoder_skip_output(dec, c->skip);
    f.up.ops = &up_ops;
    f.up.ctx = pgfeed__job_ctx(job);
    f.up.next = dec;
    dec->prev = &f.up;

    for (;;) {
        size_t left = c->in_n - pos, len;
        if (!first && left == 0)
            break;
        switch (g->split) {
        case SPLIT_WHOLE:
            len = left;
            break;
        case SPLIT_BYTES:
            len = left ? 1 : 0;
            break;
        case SPLIT_AT:
            len = first ? (g->at < left ? g->at : left) : left;
            break;
        default:
            len = 1 + (size_t)(rng_next(&rng) % g->max_slice);
            len = len < left ? len : left;
            break;
        }
        char *slot = place(c->in + pos, len);
        if (first)
            first_slot = slot;
        first = 0;
        rc = offer(dec, &f, slot, len);
        memset(slot, 0xA5, len); /* the decoder must not look at a slice it has taken */
        if (rc != 0)
            break;
        pos += len;
        /* Sometimes the room comes back before the next write, sometimes after. */
        if (f.owe && (rng_next(&rng) & 1))
            settle(&f, dec);
    }
    if (rc == 0) {
        in_finish = 1;
        rc = finish_all(dec, &f);
    }

    FAIL_IF(rc == HUNG, "the decoder answered EAGAIN and %s (at %zu%s)",
            strict_resume ? "never resumed upstream" : "no resume was owed to it", pos,
            in_finish ? ", finish" : "");
    FAIL_IF(f.violation, "contract: %s", f.violation);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    FAIL_IF(st->bytes_inflated != f.got.n + c->skip, "bytes_inflated %llu, delivered %zu",
            (unsigned long long)st->bytes_inflated, f.got.n);
    FAIL_IF(st->bytes_read != 0, "the decoder touched bytes_read");

    if (c->outcome == OUT_OK || (c->outcome == OUT_ANY_DECODE && rc == 0)) {
        if (c->outcome == OUT_ANY_DECODE)
            undetected_flips++;
        FAIL_IF(rc != 0, "failed with %s: %s (%s)", pgfeed_err_name(rc),
                e->message ? e->message : "-", e->detail ? e->detail : "-");
        FAIL_IF(e->code != 0, "job error set: %s", e->message);
        size_t want_n = c->want_n - (size_t)c->skip;
        FAIL_IF(f.got.n != want_n || f.differs ||
                    (!f.expect && want_n && memcmp(f.got.p, c->want + c->skip, want_n) != 0),
                "output differs: %zu bytes, want %zu", f.got.n, want_n);
        FAIL_IF(f.finished != 1, "downstream finished %u times", f.finished);
        unsigned calls = f.finish_calls;
        FAIL_IF(dec->ops->finish(dec) != 0 || f.finish_calls != calls,
                "a second finish was not a no-op");
        FAIL_IF(c->zero_copy && g->split == SPLIT_WHOLE && f.first_p != first_slot,
                "plain input was copied");
    } else {
        FAIL_IF(rc != PGFEED_EDECODE, "ended with %s, want PGFEED_EDECODE", pgfeed_err_name(rc));
        FAIL_IF(e->code != PGFEED_EDECODE, "job error code %d", e->code);
        FAIL_IF(!e->stage || strcmp(e->stage, "decoder") != 0, "stage %s", e->stage);
        const char *want_msg = outcome_message(c->outcome);
        int window = e->message && strncmp(e->message, "cannot decompress ", 18) == 0;
        FAIL_IF(c->window_error && !window, "message \"%s\", want a window error",
                e->message ? e->message : "-");
        if (c->window_error)
            ;
        else if (want_msg)
            FAIL_IF(!e->message || strcmp(e->message, want_msg) != 0, "message \"%s\", want \"%s\"",
                    e->message ? e->message : "-", want_msg);
        else if (c->outcome == OUT_CORRUPT)
            FAIL_IF(!e->message || strncmp(e->message, "corrupt ", 8) != 0, "message \"%s\"",
                    e->message ? e->message : "-");
        else
            FAIL_IF(!is_decoder_message(e->message), "message \"%s\"",
                    e->message ? e->message : "-");
        FAIL_IF(!e->detail || !e->hint, "no detail or hint");
        /* A window is refused at its stream's start, before any later flipped byte. */
        FAIL_IF((e->raw_offset < c->raw_lo && !(window && c->outcome == OUT_ANY_DECODE)) ||
                    e->raw_offset > c->raw_hi,
                "raw_offset %llu not in [%llu, %llu]", (unsigned long long)e->raw_offset,
                (unsigned long long)c->raw_lo, (unsigned long long)c->raw_hi);
        if (c->outcome == OUT_TRUNCATED || c->outcome == OUT_GARBAGE)
            FAIL_IF(e->decoded_offset != f.got.n, "decoded_offset %llu, delivered %zu",
                    (unsigned long long)e->decoded_offset, f.got.n);
        if (c->outcome == OUT_TRUNCATED || c->outcome == OUT_GARBAGE)
            FAIL_IF(f.got.n > c->want_n || (f.got.n && memcmp(f.got.p, c->want, f.got.n) != 0),
                    "output (%zu bytes) is not a prefix of the expected %zu", f.got.n, c->want_n);
        if (c->outcome == OUT_GARBAGE)
            FAIL_IF(f.got.n != c->want_n, "garbage: output %zu bytes, want all %zu", f.got.n,
                    c->want_n);
        FAIL_IF(f.finished != 0, "finish went downstream after an error");
        FAIL_IF(dec->ops->write(dec, "x", 1) != rc || dec->ops->finish(dec) != rc,
                "the error is not sticky");
    }
    result = NULL;
out:
    if (dec)
        dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
    return result;
}

/* --------------------------------------------------------- test families */

struct family {
    const char *what;
    unsigned runs, fails;
    char first[1200];
};

static void fam_run(struct family *fm, const struct tcase *c, const struct cfg *g)
{
    const char *w = run_case(c, g);
    fm->runs++;
    if (w && fm->fails++ == 0)
        snprintf(fm->first, sizeof fm->first,
                 "%s [out_chunk %zu, split %d at %zu, eagain %u, finish_eagains %u, seed %llu]", w,
                 g->out_chunk, (int)g->split, g->at, g->eagain, g->finish_eagains,
                 (unsigned long long)g->seed);
}

static void fam_end(struct family *fm, const char *name)
{
    ASSERT_TRUE(fm->fails == 0, "%s: %s (%u runs)", name, fm->what, fm->runs);
    if (fm->fails)
        tap_note("%u failed; first: %s", fm->fails, fm->first);
}

static const unsigned eagain_modes[] = {EAGAIN_NEVER, 2, 3, EAGAIN_RANDOM};

/*
 * Whole, byte by byte, at offsets (all of them when small), in random slices.
 * Big fixtures get fewer runs, and tiny output chunks only with some of them,
 * to stay fast under ASan.
 */
static void battery(const struct tcase *c)
{
    static const size_t chunks[] = {1, 7, 4096, 1u << 17};
    int big = c->in_n > 4000 || c->want_n > 50000;
    struct family fm;
    struct cfg g;

    memset(&fm, 0, sizeof fm);
    fm.what = "whole";
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
        for (size_t k = 0; k < 4; k++)
            for (unsigned fe = 0; fe <= 2; fe += 2) {
                if (big && chunks[i] < 64 && (k != 3 || fe != 0))
                    continue;
                memset(&g, 0, sizeof g);
                g.out_chunk = chunks[i];
                g.split = SPLIT_WHOLE;
                g.eagain = eagain_modes[k];
                g.finish_eagains = fe;
                g.seed = i * 8 + k;
                fam_run(&fm, c, &g);
            }
    fam_end(&fm, c->name);

    memset(&fm, 0, sizeof fm);
    fm.what = "one byte at a time";
    for (unsigned k = 0; k < 4; k++) {
        if (big && ASAN && isal_build && (k == 1 || k == 2))
            continue;
        memset(&g, 0, sizeof g);
        g.out_chunk = k & 1 ? 4096 : 61;
        g.split = SPLIT_BYTES;
        g.eagain = k < 2 ? EAGAIN_NEVER : EAGAIN_RANDOM;
        g.finish_eagains = k & 1;
        g.seed = k;
        fam_run(&fm, c, &g);
    }
    fam_end(&fm, c->name);

    memset(&fm, 0, sizeof fm);
    fm.what = big ? "split at 24 offsets" : "split at every offset";
    size_t nsplits = big ? 24 : c->in_n + 1;
    for (size_t i = 0; i < nsplits; i++) {
        memset(&g, 0, sizeof g);
        g.split = SPLIT_AT;
        if (!big) {
            g.at = i;
            g.out_chunk = i % 5 == 4 ? 1 : 97;
        } else {
            if (i < 4)
                g.at = i;
            else if (i < 8)
                g.at = c->in_n - (i - 4);
            else
                g.at = (i - 8) * c->in_n / 15;
            g.out_chunk = i % 3 == 0 ? 97 : i % 3 == 1 ? 4096 : 65536;
        }
        g.eagain = eagain_modes[i % 4];
        g.finish_eagains = (unsigned)(i % 2);
        g.seed = i;
        fam_run(&fm, c, &g);
    }
    fam_end(&fm, c->name);

    memset(&fm, 0, sizeof fm);
    fm.what = "random slices";
    for (unsigned k = 0; k < (big ? 6u : 12u); k++) {
        memset(&g, 0, sizeof g);
        g.out_chunk = k % 3 == 0 ? 512 : k % 3 == 1 ? 65536 : 13;
        g.split = SPLIT_RANDOM;
        g.max_slice = k % 2 ? 40 : 3000;
        g.eagain = k % 4 == 3 ? EAGAIN_NEVER : EAGAIN_RANDOM;
        g.finish_eagains = k % 2;
        g.seed = 100 + k;
        fam_run(&fm, c, &g);
    }
    fam_end(&fm, c->name);
}

/* A short battery for cases run many times (every cut point, every flipped byte). */
static void quick(struct family *fm, const struct tcase *c, uint64_t seed)
{
    struct cfg g;
    memset(&g, 0, sizeof g);
    g.out_chunk = 97;
    g.split = SPLIT_WHOLE;
    g.eagain = 2;
    g.seed = seed;
    fam_run(fm, c, &g);
    if (seed % 2 == 0) {
        g.split = SPLIT_AT;
        g.at = c->in_n / 2;
        g.eagain = EAGAIN_RANDOM;
        g.finish_eagains = 1;
        fam_run(fm, c, &g);
    }
    if (seed % 8 == 1) {
        g.split = SPLIT_BYTES;
        g.out_chunk = 4096;
        g.eagain = 3;
        fam_run(fm, c, &g);
    }
}

static struct tcase ok_case(const char *name, const struct bytes *in, const struct bytes *want)
{
    struct tcase c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.in = in->p;
    c.in_n = in->n;
    c.want = want ? want->p : NULL;
    c.want_n = want ? want->n : 0;
    c.outcome = OUT_OK;
    return c;
}

static struct tcase err_case(const char *name, const struct bytes *in, const struct bytes *want,
                             enum outcome o, uint64_t lo, uint64_t hi)
{
    struct tcase c = ok_case(name, in, want);
    c.outcome = o;
    c.raw_lo = lo;
    c.raw_hi = hi;
    return c;
}

/* ------------------------------------------------------------- specifics */

/* The error's wording, for one run fed whole. */
static void check_wording(const char *name, const struct bytes *in, const char *message,
                          const char *detail, size_t raw)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec), 0, "decoder_new");
    dec->next = &f.base;
    int rc = dec->ops->write(dec, place(in->p, in->n), in->n);
    if (rc == 0)
        rc = dec->ops->finish(dec);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    ASSERT_EQ_INT(rc, PGFEED_EDECODE, name);
    ASSERT_EQ_STR(e->message, message, name);
    if (detail[0] == '^')
        ASSERT_TRUE(e->detail && strncmp(e->detail, detail + 1, strlen(detail + 1)) == 0,
                    "%s: detail starts with %s", name, detail + 1);
    else
        ASSERT_EQ_STR(e->detail, detail, name);
    ASSERT_TRUE(e->hint && e->hint[strlen(e->hint) - 1] == '.', "%s: hint is a sentence", name);
    ASSERT_EQ_INT(e->raw_offset, raw, name);
    ASSERT_TRUE(e->message && e->message[strlen(e->message) - 1] != '.', "%s: no final period",
                name);
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
}

static void test_api(void)
{
    pgfeed_job_t *job = new_job();
    static struct pgfeed_stage sentinel;
    struct pgfeed_stage *dec = &sentinel;
    struct fake f;

    ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), 0, &dec), UV_EINVAL,
                  "out_chunk 0 is refused");
    ASSERT_TRUE(dec == NULL, "*out is NULL on failure");
    ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec), 0, "decoder_new");
    ASSERT_EQ_STR(dec->ops->name, "decoder", "ops name");
    ASSERT_TRUE(dec->ops->write && dec->ops->finish && dec->ops->resume && dec->ops->destroy,
                "ops are set");
    ASSERT_TRUE(dec->ctx == pgfeed__job_ctx(job) && dec->next == NULL && dec->prev == NULL,
                "base is initialised");

    /* Input after finish is a caller bug: an error, never a crash. */
    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    dec->next = &f.base;
    ASSERT_EQ_INT(dec->ops->write(dec, place((const unsigned char *)"abc", 3), 3), 0, "write");
    ASSERT_EQ_INT(dec->ops->finish(dec), 0, "finish");
    ASSERT_TRUE(dec->ops->write(dec, place((const unsigned char *)"d", 1), 1) < 0,
                "write after finish fails");
    ASSERT_TRUE(pgfeed_job_error(job)->code != 0, "and sets the job's error");
    ASSERT_EQ_MEM(f.got.p, f.got.n, "abc", 3, "output before that");
    if (dec->ops->stop)
        dec->ops->stop(dec);
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
}

/* Input that ends before the bytes to skip: the source changed. */
static void test_short(const struct bytes *in, uint64_t skip)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    int rc;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec), 0, "decoder_new");
    dec->next = &f.base;
    pgfeed__decoder_skip_output(dec, skip);
    rc = dec->ops->write(dec, place(in->p, in->n), in->n);
    if (rc == 0)
        rc = dec->ops->finish(dec);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    ASSERT_EQ_INT(rc, PGFEED_ECHANGED, "skip past the end");
    ASSERT_EQ_STR(e->message, "input ends before the resume point", "skip past the end: message");
    ASSERT_EQ_INT(e->decoded_offset, skip - 1, "skip past the end: decoded_offset");
    ASSERT_EQ_INT(f.got.n + f.finished, 0, "skip past the end: nothing went downstream");
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
}

/*
 * Output comes as soon as the input allows: after each write that met no
 * EAGAIN, downstream has all that zlib can inflate from the input so far,
 * even when the output buffer was full as the input ran out. ISA-L decodes
 * up to three literals in one table lookup and waits for the last one's
 * code: it may be two bytes behind zlib, never ahead.
 */
static void test_prompt(const struct bytes *in, int window_bits, size_t out_chunk, size_t step)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    z_stream ref;
    struct bytes all = {0};
    unsigned late = 0, writes = 0;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    memset(&ref, 0, sizeof ref);
    inflateInit2(&ref, window_bits);
    bytes_fill(&all, 0, 1u << 20);
    ref.next_out = all.p;
    ref.avail_out = (uInt)all.n;
    ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), out_chunk, &dec), 0, "decoder_new");
    size_t slack = window_bits == 31 && pgfeed__decoder_use_isal(dec, 1) ? 2 : 0;
    size_t behind = 0, lag = 0;
    dec->next = &f.base;
    for (size_t pos = 0; pos < in->n; pos += step) {
        size_t len = in->n - pos < step ? in->n - pos : step;
        if (dec->ops->write(dec, place(in->p + pos, len), len) != 0)
            break;
        writes++;
        ref.next_in = in->p + pos;
        ref.avail_in = (uInt)len;
        inflate(&ref, Z_NO_FLUSH);
        lag = f.got.n <= ref.total_out ? ref.total_out - f.got.n : SIZE_MAX;
        behind += lag > 0;
        if (lag > slack && late++ == 0)
            tap_note("after %zu bytes in: %zu out, zlib gives %lu", pos + len, f.got.n,
                     ref.total_out);
    }
    ASSERT_EQ_INT(dec->ops->finish(dec), 0, "prompt output: finish");
    ASSERT_TRUE(late == 0,
                "prompt output, out_chunk %zu, writes of %zu: %u of %u writes left more than %zu "
                "bytes behind",
                out_chunk, step, late, writes, slack);
    if (slack)
        tap_note("%zu of %u writes left a byte or two behind", behind, writes);
    inflateEnd(&ref);
    dec->ops->destroy(dec);
    free(f.got.p);
    free(all.p);
    close_job(job);
}

/* ------------------------------------------------------ restart points */

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Fields of a blob (format in decode_gzip.c). */
enum { RP_HEAD = 64 };
#define RP_MODE(b)   ((b)[5])
#define RP_BITS(b)   ((b)[6])
#define RP_RAW(b)    be64((b) + 12)
#define RP_DEC(b)    be64((b) + 20)
#define RP_MEMBER(b) be64((b) + 36)
#define RP_WLEN(b)   be32((b) + 56)

/* Rewrites a blob's trailing CRC-32 after an edit. */
static void reseal(struct bytes *b)
{
    uint32_t c = (uint32_t)crc32(0, b->p, (uInt)(b->n - 4));
    for (int i = 0; i < 4; i++)
        b->p[b->n - 4 + i] = (unsigned char)(c >> (24 - 8 * i));
}

struct rpoint {
    uint64_t target; /* the decoded offset asked for (a batch end) */
    int rc;          /* restart_point's answer */
    uint64_t raw;
    struct bytes blob;
};

struct rp_fixture {
    const char *name;
    const struct bytes *in;   /* the source */
    const struct bytes *want; /* its decoded bytes */
    size_t span;              /* 0: the decoder's default */
    int every_block;          /* span 0: every block boundary */
    int stored;               /* stored blocks only: every boundary is byte-aligned */
    int sparse; /* ISA-L seldom stops at its boundaries (fixed-code blocks): few points, if any */
    int no_window;    /* zstd, bzip2, xz: points at stream boundaries, without bits or windows */
    size_t max_slice; /* collect: input slices of 1 to this many bytes (0: 40000) */
};

static void rpoints_free(struct rpoint *pts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pts[i].blob.p);
}

/* Asks for restart points at the targets from next on up to upto; returns the next one. */
static size_t ask_points(struct pgfeed_stage *dec, struct rpoint *pts, size_t npts, size_t next,
                         uint64_t upto, struct pgfeed_buf *buf)
{
    for (; next < npts && pts[next].target <= upto; next++) {
        struct rpoint *p = &pts[next];
        buf->len = 0;
        p->rc = pgfeed__decoder_restart_point(dec, p->target, buf, &p->raw);
        p->blob.n = 0;
        if (p->rc == 0)
            bytes_add(&p->blob, buf->data, buf->len);
    }
    return next;
}

/*
 * Plays an import: decodes fx->in from raw_start (after restart_from(blob,
 * start) when blob) in slices into a downstream that sometimes answers
 * EAGAIN, and asks for a restart point at each target as soon as the
 * output delivered passes it, as the sink does at each batch end. Checks
 * the output. At the end, when the ring must have moved on from the start
 * (evicted), checks that offset 0 is refused with 1.
 */
static int collect(const struct rp_fixture *fx, const struct bytes *blob, uint64_t start,
                   uint64_t raw_start, struct rpoint *pts, size_t npts, int evicted, uint64_t seed)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    struct pgfeed_buf buf = {0};
    uint64_t rng = seed * 77 + 5;
    size_t pos = raw_start, next = 0;
    int rc = 0, ok = 1;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    f.eagain = EAGAIN_RANDOM;
    f.rng = seed;
    f.expect = fx->want->p + start;
    f.expect_n = fx->want->n - start;
    f.up.ops = &up_ops;
    f.up.ctx = pgfeed__job_ctx(job);
    if (pgfeed__decoder_new(pgfeed__job_ctx(job), 65536, &dec) != 0)
        abort();
    pgfeed__decoder_use_isal(dec, use_isal);
    dec->next = &f.base;
    f.base.prev = dec;
    f.up.next = dec;
    dec->prev = &f.up;
    if (fx->span || fx->every_block)
        pgfeed__decoder_set_span(dec, fx->span);
    if (blob && (rc = pgfeed__decoder_restart_from(dec, blob->p, blob->n, start)) != 0) {
        tap_note("%s: restart_from: %s", fx->name, pgfeed_err_name(rc));
        ok = 0;
        goto out;
    }
    for (;;) {
        /* Ask for the targets the output has passed, in order. */
        next = ask_points(dec, pts, npts, next, start + f.got.n, &buf);
        if (pos == fx->in->n)
            break;
        size_t len = 1 + (size_t)(rng_next(&rng) % (fx->max_slice ? fx->max_slice : 40000));
        len = len < fx->in->n - pos ? len : fx->in->n - pos;
        rc = offer(dec, &f, place(fx->in->p + pos, len), len);
        if (rc != 0)
            break;
        pos += len;
        if (f.owe && (rng_next(&rng) & 1))
            settle(&f, dec);
    }
    if (rc == 0)
        rc = finish_all(dec, &f);
    if (rc == 0) /* the last batch ends at finish */
        ask_points(dec, pts, npts, next, UINT64_MAX, &buf);
    if (rc != 0 || f.violation) {
        tap_note("%s: decoding from %llu: %s %s", fx->name, (unsigned long long)start,
                 pgfeed_err_name(rc), f.violation ? f.violation : "");
        ok = 0;
    } else if (f.got.n != fx->want->n - start || f.differs) {
        tap_note("%s: output from %llu differs", fx->name, (unsigned long long)start);
        ok = 0;
    }
    if (ok && evicted) {
        uint64_t raw = 12345;
        buf.len = 0;
        if (pgfeed__decoder_restart_point(dec, 0, &buf, &raw) != 1 || buf.len != 0 ||
            raw != 12345) {
            tap_note("%s: offset 0 is still served after the ring moved on", fx->name);
            ok = 0;
        }
    }
out:
    pgfeed__buf_free(&buf);
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
    return ok;
}

/* ~50 batch ends: 0, the end, and offsets spread over the output. */
static size_t make_targets(struct rpoint *pts, uint64_t total, uint64_t seed)
{
    size_t n = 0;
    uint64_t rng = seed;
    memset(pts, 0, 52 * sizeof *pts);
    pts[n++].target = 0;
    for (size_t i = 1; i <= 50; i++)
        pts[n++].target = (i - 1) * total / 50 + rng_next(&rng) % (total / 50);
    pts[n++].target = total;
    return n;
}

/* Restarts from every point under a few configurations; output must equal want from target. */
static void restart_all(const struct rp_fixture *fx, struct rpoint *pts, size_t npts,
                        const char *gen, int light)
{
    struct family fm;
    char name[160];
    memset(&fm, 0, sizeof fm);
    fm.what = "restart at each batch end";
    for (size_t i = 0; i < npts; i++) {
        struct rpoint *p = &pts[i];
        if (p->rc != 0)
            continue;
        struct tcase c = ok_case(fx->name, fx->in, fx->want);
        c.in = fx->in->p + p->raw;
        c.in_n = fx->in->n - p->raw;
        c.skip = p->target;
        c.blob = p->blob.p;
        c.blob_n = p->blob.n;
        struct cfg g;
        memset(&g, 0, sizeof g);
        g.out_chunk = 65536;
        g.split = SPLIT_WHOLE;
        g.seed = i;
        fam_run(&fm, &c, &g);
        if (light)
            continue;
        g.out_chunk = 4096;
        g.split = SPLIT_RANDOM;
        g.max_slice = 20000;
        g.eagain = EAGAIN_RANDOM;
        g.finish_eagains = 1;
        fam_run(&fm, &c, &g);
        if (i % 7 == 3) {
            g.split = SPLIT_RANDOM;
            g.max_slice = 300;
            g.out_chunk = 1000;
            g.eagain = 3;
            g.finish_eagains = 0;
            fam_run(&fm, &c, &g);
        }
        if (i % 3 == 1) { /* exactly at the point: nothing to skip */
            c.skip = RP_DEC(p->blob.p);
            g.split = SPLIT_AT;
            g.at = c.in_n / 3;
            g.out_chunk = 65536;
            g.eagain = 2;
            fam_run(&fm, &c, &g);
        }
    }
    snprintf(name, sizeof name, "%s, %s", fx->name, gen);
    fam_end(&fm, name);
}

/*
 * The whole round: a straight decode handing out restart points at ~50
 * batch ends, a restart from each, and (chain) restarts from points that a
 * restarted decoder handed out. Returns the first-generation points.
 */
static void restart_round(const struct rp_fixture *fx, struct rpoint *pts, size_t *npts, int chain,
                          uint64_t seed)
{
    size_t n = make_targets(pts, fx->want->n, seed);
    unsigned served = 0, mid = 0, bits = 0, windows = 0, monotone = 1, far_start = 0;
    uint64_t span = fx->every_block ? 0 : fx->span ? fx->span : 1u << 20;
    uint64_t max_member = 0, last_raw = 0;
    int sparse = fx->sparse && isal_build && use_isal;
    int evicted = fx->in != fx->want && !sparse &&
                  (fx->every_block || fx->want->n > 12 * (fx->span ? fx->span : (1u << 20)));

    *npts = n;
    ASSERT_TRUE(collect(fx, NULL, 0, 0, pts, n, evicted, seed),
                "%s: straight decode handing out restart points%s", fx->name,
                evicted ? ", the start evicted at the end" : "");
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = pts[i].blob.p;
        if (pts[i].rc != 0)
            continue;
        served++;
        /* Past two spans (and a deflate block or two), the start is no longer the latest point. */
        if (fx->in != fx->want && RP_MODE(b) == 0 && pts[i].target > 2 * span + 300000)
            far_start++;
        if (RP_MODE(b) >= 2) {
            mid++;
            bits += RP_BITS(b) != 0;
            windows += RP_WLEN(b) > 0;
            max_member = RP_MEMBER(b) > max_member ? RP_MEMBER(b) : max_member;
        }
        if (pts[i].raw < last_raw || RP_DEC(b) > pts[i].target ||
            pts[i].raw != RP_RAW(b) - (RP_BITS(b) ? 1 : 0) ||
            (RP_MODE(b) == 1 && pts[i].raw != pts[i].target))
            monotone = 0;
        last_raw = pts[i].raw;
    }
    ASSERT_TRUE(served == n, "%s: every batch end got a restart point (%u of %zu)", fx->name,
                served, n);
    ASSERT_TRUE(monotone,
                "%s: restart offsets grow with the batch ends; points are at or before them",
                fx->name);
    tap_note(
        "%s: %u points: %u mid-stream (%u with unused bits, %u with a window), last member %llu",
        fx->name, served, mid, bits, windows, (unsigned long long)max_member);
    if (sparse)
        tap_note("%s: with ISA-L, %u points past the first spans are the start", fx->name,
                 far_start);
    else if (fx->in != fx->want) {
        ASSERT_TRUE(far_start == 0 && mid > 0,
                    "%s: restart points past the first spans are mid-stream (%u are not)", fx->name,
                    far_start);
        if (!fx->every_block &&
            !fx->no_window) /* 64 KiB members are single blocks: points at their starts only */
            ASSERT_TRUE((bits > 0 || fx->stored) && windows > 0,
                        "%s: points with unused bits and windows", fx->name);
    }
    restart_all(fx, pts, n, "first generation", 0);

    if (!chain)
        return;
    /* A restarted decoder hands out restart points too: from its seed point, then its own. */
    for (size_t k = 5; k < n; k += 25) {
        struct rpoint later[52];
        size_t m = 0;
        if (pts[k].rc != 0)
            continue;
        memset(later, 0, sizeof later);
        for (size_t i = k; i < n; i++)
            later[m++].target = pts[i].target;
        ASSERT_TRUE(collect(fx, &pts[k].blob, pts[k].target, pts[k].raw, later, m, 0, seed + k),
                    "%s: decode restarted at %llu handing out restart points", fx->name,
                    (unsigned long long)pts[k].target);
        ASSERT_TRUE(later[0].rc == 0 && later[0].raw == pts[k].raw,
                    "%s: the restart point itself is served at once", fx->name);
        restart_all(fx, later, m, "second generation", 1);
        rpoints_free(later, m);
    }
}

/* One restart_from that must fail with the blob's error; nothing may go downstream. */
static void expect_bad_blob(const char *what, const void *blob, size_t n, uint64_t decoded,
                            const char *detail_part)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    if (pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec) != 0)
        abort();
    dec->next = &f.base;
    int rc = pgfeed__decoder_restart_from(dec, blob, n, decoded);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    int ok = rc == PGFEED_ECHECKPOINT && e->code == PGFEED_ECHECKPOINT && e->stage &&
             strcmp(e->stage, "decoder") == 0 && e->message &&
             strcmp(e->message, "the checkpoint's decoder restart point is not usable") == 0 &&
             e->detail && e->hint && (!detail_part || strstr(e->detail, detail_part));
    ok = ok && dec->ops->write(dec, "\x1f\x8b", 2) == rc && dec->ops->finish(dec) == rc &&
         f.got.n == 0 && f.finished == 0;
    ASSERT_TRUE(ok, "%s: a clean PGFEED_ECHECKPOINT", what);
    if (!ok)
        tap_note("  rc %s, message %s, detail %s", pgfeed_err_name(rc),
                 e->message ? e->message : "-", e->detail ? e->detail : "-");
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
}

static void test_bad_blobs(const struct rpoint *p)
{
    struct bytes b = {0};
    const unsigned char *o = p->blob.p;
    size_t n = p->blob.n;
    unsigned wrong = 0, tried = 0;

    expect_bad_blob("empty blob", "", 0, p->target, NULL);
    expect_bad_blob("blob cut short", o, RP_HEAD + 3, p->target, NULL);
    expect_bad_blob("blob missing its last byte", o, n - 1, p->target, NULL);
    bytes_add(&b, o, n);
    bytes_add(&b, "", 1);
    expect_bad_blob("blob with a byte too many", b.p, b.n, p->target, NULL);
    /* Every bit of the header and the CRC, and bits across the window. */
    for (size_t i = 0; i < n; i += i < RP_HEAD || i >= n - 8 ? 1 : 97) {
        for (int bit = 0; bit < 8; bit += i < RP_HEAD ? 1 : 3) {
            b.n = 0;
            bytes_add(&b, o, n);
            b.p[i] ^= (unsigned char)(1u << bit);
            pgfeed_job_t *job = new_job();
            struct pgfeed_stage *dec;
            if (pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec) != 0)
                abort();
            tried++;
            int rc = pgfeed__decoder_restart_from(dec, b.p, b.n, p->target);
            const struct pgfeed_error *e = pgfeed_job_error(job);
            if (rc != PGFEED_ECHECKPOINT || e->code != PGFEED_ECHECKPOINT || !e->detail ||
                strstr(e->detail, i < 4    ? "does not start"
                                  : i == 4 ? "version"
                                           : "") == NULL) {
                if (wrong++ == 0)
                    tap_note("byte %zu bit %d flipped: %s (%s)", i, bit, pgfeed_err_name(rc),
                             e->detail ? e->detail : "-");
            }
            dec->ops->destroy(dec);
            close_job(job);
        }
    }
    ASSERT_TRUE(wrong == 0, "a flipped bit anywhere in a blob is PGFEED_ECHECKPOINT (%u of %u not)",
                wrong, tried);

    /* Well sealed, but not what this pgfeed reads or writes. */
    b.n = 0;
    bytes_add(&b, o, n);
    b.p[4] = 2;
    reseal(&b);
    expect_bad_blob("format version 2", b.p, b.n, p->target, "version is 2");
    b.p[4] = 1;
    b.p[6] = 8;
    reseal(&b);
    expect_bad_blob("8 unused bits", b.p, b.n, p->target, "inconsistent");
    b.p[6] = o[6];
    b.p[5] = 9;
    reseal(&b);
    expect_bad_blob("mode 9", b.p, b.n, p->target, "inconsistent");
    b.p[5] = o[5];
    if (b.p[8] == 1) {
        b.p[RP_HEAD] ^= 0xff;
        b.p[RP_HEAD + 1] ^= 0xff;
        reseal(&b);
        expect_bad_blob("window that does not inflate", b.p, b.n, p->target, "window");
    }
    expect_bad_blob("checkpoint before its restart point", o, n, RP_DEC(o) - 1, "before");
    free(b.p);
}

/* Restarted, the source does not match: first byte, trailer check value, length. */
static void restart_expect(const char *what, const struct bytes *in, const struct rpoint *p,
                           int want_rc, const char *message, const char *detail_prefix,
                           uint64_t raw_at)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.ctx = pgfeed__job_ctx(job);
    if (pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec) != 0)
        abort();
    dec->next = &f.base;
    int rc = pgfeed__decoder_restart_from(dec, p->blob.p, p->blob.n, p->target);
    for (size_t pos = p->raw; rc == 0 && pos < in->n; pos += 5000) {
        size_t len = in->n - pos < 5000 ? in->n - pos : 5000;
        rc = dec->ops->write(dec, place(in->p + pos, len), len);
    }
    if (rc == 0)
        rc = dec->ops->finish(dec);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    ASSERT_EQ_INT(rc, want_rc, what);
    ASSERT_EQ_STR(e->message, message, what);
    ASSERT_TRUE(e->detail && strncmp(e->detail, detail_prefix, strlen(detail_prefix)) == 0,
                "%s: detail \"%s\"", what, e->detail ? e->detail : "-");
    if (raw_at != UINT64_MAX) /* UINT64_MAX: anywhere after the point */
        ASSERT_EQ_INT(e->raw_offset, raw_at, what);
    else
        ASSERT_TRUE(e->raw_offset > p->raw, "%s: placed at %llu, after the restart point %llu",
                    what, (unsigned long long)e->raw_offset, (unsigned long long)p->raw);
    ASSERT_TRUE(f.finished == 0, "%s: not finished downstream", what);
    dec->ops->destroy(dec);
    free(f.got.p);
    close_job(job);
}

/* A point with unused bits, or any mid-stream one when bits is 0 (-1: none). */
static const struct rpoint *pick_point(const struct rpoint *pts, size_t n, int bits)
{
    for (size_t i = 0; i < n; i++)
        if (pts[i].rc == 0 && RP_MODE(pts[i].blob.p) >= 2 && RP_WLEN(pts[i].blob.p) > 0 &&
            (!bits || RP_BITS(pts[i].blob.p) != 0))
            return &pts[i];
    return NULL;
}

/* ------------------------------------------------- zstd, bzip2, xz (issue 16) */

#ifdef PGFEED_HAVE_ZSTD
#include <zstd.h>
/* One zstd frame of p[0, n) with a checksum; window_log 0: the level's, else that, unsized. */
static void add_zstd(struct bytes *b, const void *p, size_t n, int level, int window_log)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(n) + 64, rc;
    ZSTD_outBuffer out;
    ZSTD_inBuffer in = {p, n, 0};

    bytes_add(b, NULL, 0);
    if (b->n + cap > b->cap) {
        b->cap = b->n + cap;
        b->p = realloc(b->p, b->cap);
    }
    out = (ZSTD_outBuffer){b->p + b->n, cap, 0};
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    if (window_log) {
        ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    }
    /* Told the size up front (e_end at once), libzstd would shrink the window to it. */
    if (window_log && ZSTD_isError(ZSTD_compressStream2(c, &out, &in, ZSTD_e_continue)))
        abort();
    do
        rc = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
    while (rc > 0 && !ZSTD_isError(rc));
    if (ZSTD_isError(rc))
        abort();
    b->n += out.pos;
    ZSTD_freeCCtx(c);
}
#endif

#ifdef PGFEED_HAVE_BZIP2
#include <bzlib.h>
static void add_bzip2(struct bytes *b, const void *p, size_t n, int level)
{
    unsigned cap = (unsigned)(n + n / 100 + 700);
    bytes_add(b, NULL, 0);
    if (b->n + cap > b->cap) {
        b->cap = b->n + cap;
        b->p = realloc(b->p, b->cap);
    }
    if (BZ2_bzBuffToBuffCompress((char *)b->p + b->n, &cap, (char *)(uintptr_t)p, (unsigned)n,
                                 level, 0, 0) != BZ_OK)
        abort();
    b->n += cap;
}
#endif

#ifdef PGFEED_HAVE_XZ
#include <lzma.h>
/* One xz stream; block_size > 0: blocks of that many bytes (what xz -T writes). */
static void add_xz(struct bytes *b, const void *p, size_t n, uint32_t preset, uint64_t block_size)
{
    lzma_stream s = LZMA_STREAM_INIT;
    lzma_mt mt = {
        .threads = 1, .block_size = block_size, .preset = preset, .check = LZMA_CHECK_CRC64};
    size_t cap = lzma_stream_buffer_bound(n) + 64;
    lzma_ret rc;

    bytes_add(b, NULL, 0);
    if (b->n + cap > b->cap) {
        b->cap = b->n + cap;
        b->p = realloc(b->p, b->cap);
    }
    rc = block_size ? lzma_stream_encoder_mt(&s, &mt)
                    : lzma_easy_encoder(&s, preset, LZMA_CHECK_CRC64);
    if (rc != LZMA_OK)
        abort();
    s.next_in = p;
    s.avail_in = n;
    s.next_out = b->p + b->n;
    s.avail_out = cap;
    while ((rc = lzma_code(&s, LZMA_FINISH)) == LZMA_OK)
        ;
    if (rc != LZMA_STREAM_END)
        abort();
    b->n += cap - s.avail_out;
    lzma_end(&s);
}
#endif

enum codec_id { C_ZSTD, C_BZIP2, C_XZ, C_N };
static const char *const codec_names[C_N] = {"zstd", "bzip2", "xz"};

static int codec_built(enum codec_id c)
{
    switch (c) {
#ifdef PGFEED_HAVE_ZSTD
    case C_ZSTD:
        return 1;
#endif
#ifdef PGFEED_HAVE_BZIP2
    case C_BZIP2:
        return 1;
#endif
#ifdef PGFEED_HAVE_XZ
    case C_XZ:
        return 1;
#endif
    default:
        return 0;
    }
}

/* One stream (frame) of p[0, n) in codec c; a fast level. */
static void add_stream(struct bytes *b, enum codec_id c, const void *p, size_t n)
{
#ifdef PGFEED_HAVE_ZSTD
    if (c == C_ZSTD)
        add_zstd(b, p, n, 3, 0);
#endif
#ifdef PGFEED_HAVE_BZIP2
    if (c == C_BZIP2)
        add_bzip2(b, p, n, 1);
#endif
#ifdef PGFEED_HAVE_XZ
    if (c == C_XZ)
        add_xz(b, p, n, 1, 0);
#endif
}

/* Streams of `each` decoded bytes (the last shorter), as pzstd and pbzip2 write them. */
static void add_streams(struct bytes *b, enum codec_id c, const struct bytes *data, size_t each)
{
    for (size_t at = 0; at < data->n; at += each)
        add_stream(b, c, data->p + at, data->n - at < each ? data->n - at : each);
}

static const size_t magic_lens[C_N] = {4, 4, 6};

/* Every byte from the magic on flipped, and every cut: errors with their offsets. */
static void codec_damage(enum codec_id id, const struct bytes *in, const struct bytes *want)
{
    char name[100];
    struct family fm;
    struct bytes b = {0};
    struct tcase c;

    memset(&fm, 0, sizeof fm);
    fm.what = "cut at every byte";
    for (size_t cut = 1; cut < in->n; cut++) {
        b.n = 0;
        bytes_add(&b, in->p, cut);
        snprintf(name, sizeof name, "truncated small %s", codec_names[id]);
        c = err_case(name, &b, want, cut < 2 ? OUT_OK : OUT_TRUNCATED, cut, cut);
        if (cut < magic_lens[id] || (id == C_BZIP2 && cut < 10)) /* too short to tell: plain */
            c = ok_case(name, &b, &b);
        quick(&fm, &c, cut);
    }
    snprintf(name, sizeof name, "truncated small %s", codec_names[id]);
    fam_end(&fm, name);

    memset(&fm, 0, sizeof fm);
    fm.what = "every byte after the magic flipped";
    for (size_t at = magic_lens[id]; at < in->n; at++) {
        b.n = 0;
        bytes_add(&b, in->p, in->n);
        b.p[at] ^= 0xff;
        snprintf(name, sizeof name, "%s, one byte flipped", codec_names[id]);
        c = err_case(name, &b, want, OUT_ANY_DECODE, at, b.n);
        if (id == C_BZIP2 && at < 10) /* no longer bzip2's magic: plain */
            c = ok_case(name, &b, &b);
        quick(&fm, &c, at);
    }
    snprintf(name, sizeof name, "small %s", codec_names[id]);
    fam_end(&fm, name);
    tap_note("%u runs with a flipped byte decoded to the original output", undetected_flips);
    free(b.p);
}

static void test_codec(enum codec_id id, const struct bytes *text, const struct bytes *small,
                       const struct bytes *tiny)
{
    struct bytes one = {0}, multi = {0}, sm = {0}, empty_s = {0}, empty = {0}, b = {0};
    const char *nm = codec_names[id];
    char name[120], detail[300];
    struct tcase c;

    add_stream(&one, id, text->p, text->n);
    add_streams(&multi, id, text, 50000);
    add_stream(&sm, id, small->p, small->n);
    add_stream(&empty_s, id, "", 0);
    snprintf(name, sizeof name, "%s", nm);
    battery((c = ok_case(name, &one, text), &c));
    snprintf(name, sizeof name, "%s, streams of 50000 bytes", nm);
    battery((c = ok_case(name, &multi, text), &c));
    snprintf(name, sizeof name, "small %s", nm);
    battery((c = ok_case(name, &sm, small), &c));
    snprintf(name, sizeof name, "empty %s stream", nm);
    battery((c = ok_case(name, &empty_s, &empty), &c));
    /* Small, empty, small again: three streams. */
    b.n = 0;
    bytes_add(&b, sm.p, sm.n);
    bytes_add(&b, empty_s.p, empty_s.n);
    add_stream(&b, id, tiny->p, tiny->n);
    {
        struct bytes want = {0};
        bytes_add(&want, small->p, small->n);
        bytes_add(&want, tiny->p, tiny->n);
        snprintf(name, sizeof name, "three %s streams, one empty", nm);
        battery((c = ok_case(name, &b, &want), &c));
        free(want.p);
    }
    /* A skip on resume (re-read from the start). */
    c = ok_case(nm, &multi, text);
    c.skip = 123457;
    battery(&c);

    /* Trailing garbage, at the byte after the data. */
    b.n = 0;
    bytes_add(&b, sm.p, sm.n);
    bytes_add(&b, "garbage\n", 8);
    snprintf(name, sizeof name, "%s + garbage", nm);
    battery((c = err_case(name, &b, small, OUT_GARBAGE, sm.n, sm.n), &c));
    snprintf(
        detail, sizeof detail,
        "The %s data ends at compressed byte %zu, but the byte at %zu (0x67) does not start another %s%s.",
        nm, sm.n, sm.n,
        id == C_ZSTD ? "zstd frame"
        : id == C_XZ ? "xz stream"
                     : "bzip2 stream",
        id == C_XZ ? " or stream padding" : "");
    check_wording(name, &b, "trailing garbage after compressed data", detail, sm.n);
    /* A partial magic after the data: garbage where it breaks, truncation at the end. */
    b.n = sm.n;
    bytes_add(&b, one.p, 2);
    bytes_add(&b, "\x01", 1);
    snprintf(name, sizeof name, "%s + 2 bytes of a magic + 01", nm);
    battery((c = err_case(name, &b, small, OUT_GARBAGE, sm.n, sm.n), &c));
    b.n = sm.n + 2;
    snprintf(name, sizeof name, "%s + 2 bytes of a magic", nm);
    battery((c = err_case(name, &b, small, OUT_TRUNCATED, sm.n + 2, sm.n + 2), &c));
    snprintf(
        detail, sizeof detail,
        "The %s stream ends at compressed byte %zu before its end marker; the file is probably truncated.",
        nm, sm.n + 2);
    check_wording(name, &b, "unexpected end of compressed input", detail, sm.n + 2);
    if (id == C_XZ) { /* stream padding between and after streams */
        b.n = 0;
        bytes_add(&b, sm.p, sm.n);
        bytes_fill(&b, 0, 8);
        bytes_add(&b, empty_s.p, empty_s.n);
        bytes_fill(&b, 0, 4);
        battery((c = ok_case("xz streams with stream padding", &b, small), &c));
    } else {
        b.n = 0;
        bytes_add(&b, sm.p, sm.n);
        bytes_fill(&b, 0, 4);
        snprintf(name, sizeof name, "%s + zeros", nm);
        battery((c = err_case(name, &b, small, OUT_GARBAGE, sm.n, sm.n), &c));
    }
    codec_damage(id, &sm, small);

    /* A bad checksum: the library's words, with offsets. */
    b.n = 0;
    bytes_add(&b, sm.p, sm.n);
    if (id == C_ZSTD) {
        b.p[b.n - 1] ^= 1; /* the frame's content checksum */
        check_wording(
            "zstd, bad checksum", &b, "corrupt zstd data",
            "^libzstd reported \"Restored data doesn't match checksum\" at compressed byte", sm.n);
    } else if (id == C_BZIP2) {
        b.p[10] ^= 1; /* the first block's CRC */
        check_wording("bzip2, bad block CRC", &b, "corrupt bzip2 data",
                      "^libbz2 reported \"data integrity (CRC) error in data\" at compressed byte",
                      sm.n);
    }
    free(one.p);
    free(multi.p);
    free(sm.p);
    free(empty_s.p);
    free(b.p);
}

#ifdef PGFEED_HAVE_ZSTD
/* A frame whose window is above the limit is refused before it is allocated; at the limit, read. */
static void test_zstd_window(const struct bytes *small)
{
    struct bytes big = {0}, huge = {0};
    struct tcase c;
    char detail[300];

    add_zstd(&big, small->p, small->n, 3, 21); /* declares a 2 MiB window */
    c = err_case("zstd, 2 MiB window, limit 1 MiB", &big, NULL, OUT_CORRUPT, 0, 0);
    c.max_window = 1u << 20;
    c.window_error = 1;
    battery(&c);
    c = ok_case("zstd, 2 MiB window, limit 2 MiB", &big, small);
    c.max_window = 2u << 20;
    battery(&c);
    /* 256 MiB, above the default limit of 128 MiB: the 2 MiB frame's window descriptor patched. */
    bytes_add(&huge, big.p, big.n);
    ASSERT_TRUE(huge.p[4] >> 5 == 0 && huge.p[5] == (21 - 10) << 3, "zstd: a window descriptor");
    huge.p[5] = (28 - 10) << 3;
    snprintf(
        detail, sizeof detail,
        "The zstd frame starting at compressed byte 0 needs 268435456 bytes for its window, more than the limit of 134217728 bytes.");
    check_wording("zstd, 256 MiB window", &huge,
                  "cannot decompress zstd data with a window larger than the limit", detail, 0);
    free(big.p);
    free(huge.p);
}

/* Skippable frames (pzstd writes one before each frame) are read over. */
static void test_zstd_skippable(const struct bytes *small)
{
    struct bytes b = {0};
    struct tcase c;
    static const unsigned char skip_hdr[8] = {0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0};

    bytes_add(&b, skip_hdr, 8);
    bytes_add(&b, "hello", 5);
    add_zstd(&b, small->p, 700, 3, 0);
    bytes_add(&b, skip_hdr, 8);
    b.p[b.n - 8] = 0x5e;
    bytes_add(&b, "world", 5);
    add_zstd(&b, small->p + 700, small->n - 700, 3, 0);
    battery((c = ok_case("zstd with skippable frames", &b, small), &c));
    free(b.p);
}
#endif

#ifdef PGFEED_HAVE_XZ
/* xz -T: one stream, blocks; and a dictionary above the limit (its block header patched). */
static void test_xz_blocks(const struct bytes *text, const struct bytes *small)
{
    struct bytes b = {0};
    struct tcase c;

    add_xz(&b, text->p, text->n, 1, 65536);
    battery((c = ok_case("xz, one stream of 64 KiB blocks", &b, text), &c));
    b.n = 0;
    add_xz(&b, small->p, small->n, 1, 0);
    /* Block header at 12: size, flags, filter id 21, props size 1, the dictionary's size. */
    ASSERT_TRUE(b.p[14] == 0x21 && b.p[15] == 1, "xz: the block header has LZMA2's properties");
    b.p[16] = 40; /* 4 GiB - 1 */
    size_t hlen = (b.p[12] + 1u) * 4;
    uint32_t crc = (uint32_t)crc32(0, b.p + 12, (uInt)(hlen - 4));
    for (int i = 0; i < 4; i++)
        b.p[12 + hlen - 4 + i] = (unsigned char)(crc >> (8 * i));
    c = err_case("xz, 4 GiB dictionary", &b, NULL, OUT_CORRUPT, 0, 0);
    c.window_error = 1;
    battery(&c);
    free(b.p);
}
#endif

static void test_codecs(const struct bytes *text, const struct bytes *small,
                        const struct bytes *tiny)
{
    for (int id = 0; id < C_N; id++) {
        if (!codec_built((enum codec_id)id)) {
            tap_note("%s: not built", codec_names[id]);
            continue;
        }
        test_codec((enum codec_id)id, text, small, tiny);
    }
#ifdef PGFEED_HAVE_ZSTD
    test_zstd_window(small);
    test_zstd_skippable(small);
#endif
#ifdef PGFEED_HAVE_XZ
    test_xz_blocks(text, small);
#endif
}

/* Multi-stream files restart at the last stream boundary before the batch end. */
static void test_codec_restart_points(const struct bytes *data)
{
    struct rpoint pts[52];
    size_t n;
    struct bytes in[C_N];
    struct rp_fixture fx;

    for (int id = 0; id < C_N; id++) {
        if (!codec_built((enum codec_id)id))
            continue;
        memset(&in[id], 0, sizeof in[id]);
        add_streams(&in[id], (enum codec_id)id, data, id == C_ZSTD ? 65536 : 262144);
        memset(&fx, 0, sizeof fx);
        char name[80];
        snprintf(name, sizeof name, "restart: %s, %s", codec_names[id],
                 id == C_ZSTD ? "64 KiB frames" : "256 KiB streams");
        fx.name = name;
        fx.in = &in[id];
        fx.want = data;
        fx.every_block = 1;
        fx.no_window = 1;
        restart_round(&fx, pts, &n, 1, 2000 + (uint64_t)id);
        const struct rpoint *p = NULL;
        for (size_t i = 0; i < n && !p; i++)
            if (pts[i].rc == 0 && RP_MODE(pts[i].blob.p) >= 4 && i > 10)
                p = &pts[i];
        ASSERT_TRUE(p != NULL, "%s: a point at a stream boundary", name);
        if (p) {
            struct bytes bad = {0};
            bytes_add(&bad, in[id].p, in[id].n);
            bad.p[p->raw] ^= 0x40;
            restart_expect(name, &bad, p, PGFEED_ECHANGED, "the source differs from the checkpoint",
                           "The source byte at", p->raw);
            free(bad.p);
        }
        rpoints_free(pts, n);
        free(in[id].p);
    }
}

#ifdef PGFEED_HAVE_XZ
/* The first point at or after index from, at an xz block boundary (mode 7); NULL: none. */
static const struct rpoint *xz_block_point(const struct rpoint *pts, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++)
        if (pts[i].rc == 0 && RP_MODE(pts[i].blob.p) == 7)
            return &pts[i];
    return NULL;
}

/* Damage at in[at] after the restart point p: an error, never the rest of the rows. */
static void xz_damage_after(const char *what, const struct bytes *in, const struct rpoint *p,
                            size_t at)
{
    struct bytes bad = {0};

    bytes_add(&bad, in->p, in->n);
    bad.p[at] ^= 0x10;
    restart_expect(what, &bad, p, PGFEED_EDECODE, "corrupt xz data", "liblzma reported",
                   UINT64_MAX);
    free(bad.p);
}

/*
 * xz -T2 --block-size=64KiB: one stream of 64 KiB blocks. Each batch end past
 * the first block restarts at the last block boundary before it (mode 7),
 * inside the stream, and decoding from there gives exactly the rest; damage
 * after such a restart (a block, a block header, the index, the footer)
 * still fails.
 */
static void test_xz_block_restart_points(const struct bytes *data)
{
    struct bytes in = {0};
    struct rpoint pts[52];
    struct rp_fixture fx;
    size_t n;
    unsigned at_block = 0, past = 0;

    add_xz(&in, data->p, data->n, 1, 65536);
    memset(&fx, 0, sizeof fx);
    fx.name = "restart: xz, one stream of 64 KiB blocks";
    fx.in = &in;
    fx.want = data;
    fx.every_block = 1;
    fx.no_window = 1;
    restart_round(&fx, pts, &n, 1, 2100);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = pts[i].blob.p;
        if (pts[i].rc != 0 || pts[i].target < 65536 || pts[i].target == data->n)
            continue;
        past++;
        /* The last boundary at or before the batch end; the first block is read from 0. */
        at_block += RP_MODE(b) == 7 && pts[i].raw > 12 && RP_DEC(b) % 65536 == 0 &&
                    pts[i].target - RP_DEC(b) < 65536;
    }
    ASSERT_TRUE(past > 40 && at_block == past,
                "%s: %u of %u batch ends past the first block restart at the block before them",
                fx.name, at_block, past);
    const struct rpoint *p = xz_block_point(pts, n, 10);
    ASSERT_TRUE(p != NULL, "%s: a point at a block boundary", fx.name);
    if (p) {
        xz_damage_after("xz block restart, a block's data damaged", &in, p, p->raw + 300);
        xz_damage_after("xz block restart, the next block header damaged", &in, p, p->raw + 1);
        xz_damage_after("xz block restart, the index damaged", &in, p, in.n - 12 - 6);
        xz_damage_after("xz block restart, the footer damaged", &in, p, in.n - 1);
    }
    rpoints_free(pts, n);
    free(in.p);
}
#endif

#ifdef PGFEED_HAVE_BZIP2
/* Damage at in[at] after the bzip2 restart point p: an error, never the rest of the rows. */
static void bzip2_damage_after(const char *what, const struct bytes *in, const struct rpoint *p,
                               size_t at, unsigned char flip)
{
    struct bytes bad = {0};

    bytes_add(&bad, in->p, in->n);
    bad.p[at] ^= flip;
    restart_expect(what, &bad, p, PGFEED_EDECODE, "corrupt bzip2 data", "libbz2 reported",
                   UINT64_MAX);
    free(bad.p);
}

/*
 * bzip2 -1: one stream of 100 kB blocks, which start at any bit. Each batch
 * end past the first block restarts at the last block boundary before it
 * (mode 8), inside the stream, and decoding from there gives exactly the
 * rest (whole, in slices, split at every offset near the point, one byte at
 * a time); the points are the same whatever the input's slices (found in
 * slices of 1 to 7 bytes); damage after such a restart (the block, the next
 * block, the stream's combined CRC) still fails, and a changed partial byte
 * is a changed source.
 */
static void test_bzip2_block_restart_points(const struct bytes *data)
{
    struct bytes in = {0};
    struct rpoint pts[52], fine[52];
    struct rp_fixture fx;
    size_t n, m;
    unsigned at_block = 0, past = 0, with_bits = 0, same = 0;
    const struct rpoint *p = NULL;

    add_bzip2(&in, data->p, data->n, 1);
    memset(&fx, 0, sizeof fx);
    fx.name = "restart: bzip2, one stream of 100 kB blocks";
    fx.in = &in;
    fx.want = data;
    fx.every_block = 1;
    fx.no_window = 1;
    restart_round(&fx, pts, &n, 1, 2200);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = pts[i].blob.p;
        if (pts[i].rc != 0 || pts[i].target < 100000 || pts[i].target == data->n)
            continue;
        past++;
        /* The last boundary at or before the batch end; the first block is read from 0. */
        at_block += RP_MODE(b) == 8 && RP_DEC(b) <= pts[i].target &&
                    pts[i].target - RP_DEC(b) < 100000 && RP_MEMBER(b) == 0;
        with_bits += RP_MODE(b) == 8 && RP_BITS(b) != 0;
        if (RP_MODE(b) == 8 && RP_BITS(b) != 0)
            p = &pts[i];
    }
    ASSERT_TRUE(past > 40 && at_block == past,
                "%s: %u of %u batch ends past the first block restart at the block before them",
                fx.name, at_block, past);
    ASSERT_TRUE(with_bits > past / 2, "%s: %u points start inside a byte", fx.name, with_bits);

    m = make_targets(fine, data->n, 2200);
    fx.max_slice = 7;
    ASSERT_TRUE(collect(&fx, NULL, 0, 0, fine, m, 0, 2201), "%s: decoded in slices of 1-7 bytes",
                fx.name);
    for (size_t i = 0; i < m; i++)
        same += fine[i].rc == pts[i].rc && fine[i].raw == pts[i].raw &&
                fine[i].blob.n == pts[i].blob.n &&
                memcmp(fine[i].blob.p, pts[i].blob.p, pts[i].blob.n) == 0;
    ASSERT_TRUE(same == m, "%s: the same points in slices of 1-7 bytes (%u of %zu)", fx.name, same,
                m);
    rpoints_free(fine, m);

    ASSERT_TRUE(p != NULL, "%s: a point inside a byte", fx.name);
    if (p) {
        struct family fm;
        memset(&fm, 0, sizeof fm);
        fm.what = "the last point with unused bits";
        struct tcase c = ok_case(fx.name, &in, data);
        c.in = in.p + p->raw;
        c.in_n = in.n - p->raw;
        c.skip = p->target;
        c.blob = p->blob.p;
        c.blob_n = p->blob.n;
        struct cfg g;
        memset(&g, 0, sizeof g);
        g.out_chunk = 4096;
        g.split = SPLIT_BYTES;
        fam_run(&fm, &c, &g);
        g.split = SPLIT_AT;
        for (g.at = 1; g.at < 64; g.at++)
            fam_run(&fm, &c, &g);
        fam_end(&fm, "bzip2 block restart: one byte at a time, split at each of the first 64");

        bzip2_damage_after("bzip2 block restart, the block's data damaged", &in, p, p->raw + 3000,
                           0x10);
        bzip2_damage_after("bzip2 block restart, the stream's combined CRC damaged", &in, p,
                           in.n - 2, 0x01);
        struct bytes bad = {0};
        bytes_add(&bad, in.p, in.n);
        bad.p[p->raw] ^= 0x80; /* the partial byte's bits of the block before */
        restart_expect("bzip2 block restart, the partial byte changed", &bad, p, PGFEED_ECHANGED,
                       "the source differs from the checkpoint", "The source byte at", p->raw);
        free(bad.p);
    }
    rpoints_free(pts, n);
    free(in.p);
}
#endif

/*
 * A gzip restart point written byte by byte in the format of version 1 as
 * pgfeed wrote it before zstd, bzip2 and xz came (mode 2, at the first
 * deflate block of the second member): checkpoints of that pgfeed resume.
 */
static void test_blob_v1_gzip(const struct bytes *gz2, size_t member2, const struct bytes *data)
{
    struct bytes blob = {0};
    unsigned char h[RP_HEAD];
    uint64_t fields[6] = {member2 + 10, 900000, member2, 1, 0};
    struct tcase c;

    memset(h, 0, sizeof h);
    memcpy(h, "PGFR\1\2", 6); /* magic, version 1, mode 2 (gzip); no bits, stored window */
    for (int f = 0; f < 5; f++)
        for (int i = 0; i < 8; i++)
            h[12 + 8 * f + i] = (unsigned char)(fields[f] >> (56 - 8 * i));
    /* check 0 (CRC-32 of nothing), window length 0, encoded length 0 */
    bytes_add(&blob, h, RP_HEAD);
    bytes_add(&blob, "\0\0\0\0", 4);
    reseal(&blob);
    c = ok_case("a version 1 gzip blob made by hand", gz2, data);
    c.in = gz2->p + member2 + 10;
    c.in_n = gz2->n - member2 - 10;
    c.skip = 900000 + 12345;
    c.blob = blob.p;
    c.blob_n = blob.n;
    battery(&c);
    free(blob.p);
}

static void test_restart_points(void)
{
    struct bytes data = {0}, gz = {0}, gz2 = {0}, gz3 = {0}, many = {0}, zl = {0};
    struct bytes gz_empty = {0}, smallgz = {0}, small = {0}, stored = {0}, fixed = {0};
    struct rpoint pts[52];
    size_t n;

    /* ~2.6 MB of rows with 100 KB of noise (stored blocks) in between. */
    add_text(&data, 1200000, 11);
    add_random(&data, 100000, 12);
    add_text(&data, data.n + 1300000, 13);
    add_deflated(&gz, data.p, data.n, 31, 6, 0);
    /* Two members of different sizes and levels, then zero padding. */
    add_deflated(&gz2, data.p, 900000, 31, 6, 0);
    size_t member2 = gz2.n;
    add_deflated(&gz2, data.p + 900000, data.n - 900000, 31, 1, 0);
    bytes_fill(&gz2, 0, 1000);
    /* Four: small, big with header fields, empty, the rest. */
    add_deflated(&gz_empty, "", 0, 31, 6, 0);
    add_deflated(&gz3, data.p, 300000, 31, 9, 0);
    add_deflated(&gz3, data.p + 300000, 1700000, 31, 6, 1);
    bytes_add(&gz3, gz_empty.p, gz_empty.n);
    add_deflated(&gz3, data.p + 2000000, data.n - 2000000, 31, 2, 0);
    /* bgzip-like: 64 KiB members, each one deflate block or a few. */
    for (size_t at = 0; at < data.n; at += 65536)
        add_deflated(&many, data.p + at, data.n - at < 65536 ? data.n - at : 65536, 31, 6, 0);
    add_deflated(&zl, data.p, data.n, 15, 6, 0);
    bytes_fill(&zl, 0, 3);
    /* Stored blocks only, and fixed-code blocks only. */
    add_deflated(&stored, data.p, data.n, 31, 0, 0);
    add_deflated_strategy(&fixed, data.p, data.n, 31, 6, 0, Z_FIXED);

    struct rp_fixture fx[] = {
        {"restart: gzip", &gz, &data, 65536, 0, 0, 0},
        {"restart: two gzip members + padding, default span", &gz2, &data, 0, 0, 0, 0},
        {"restart: four gzip members, one empty", &gz3, &data, 100000, 0, 0, 0},
        {"restart: 64 KiB gzip members, every block", &many, &data, 0, 1, 0, 0},
        {"restart: zlib + padding", &zl, &data, 32768, 0, 0, 0},
        {"restart: plain", &data, &data, 0, 0, 0, 0},
        {"restart: gzip, stored blocks only", &stored, &data, 65536, 0, 1, 0},
        {"restart: gzip, fixed codes only", &fixed, &data, 65536, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        restart_round(&fx[i], pts, &n, i == 2 || i == 4 || i == 3, 1000 + i);
        if (i == 0) {
            const struct rpoint *p = pick_point(pts, n, 1);
            ASSERT_TRUE(p != NULL, "gzip: a point with unused bits and a window");
            if (p) {
                struct bytes bad = {0};
                test_bad_blobs(p);
                /* The partial byte differs: the source changed. */
                bytes_add(&bad, gz.p, gz.n);
                bad.p[p->raw] ^= 0x40;
                restart_expect("restarted gzip, partial byte changed", &bad, p, PGFEED_ECHANGED,
                               "the source differs from the checkpoint", "The source byte at",
                               p->raw);
                /* The trailer of the resumed member is checked. */
                bad.p[p->raw] ^= 0x40;
                bad.p[gz.n - 7] ^= 1;
                restart_expect("restarted gzip, CRC-32 changed", &bad, p, PGFEED_EDECODE,
                               "corrupt gzip data", "The CRC-32 stored at compressed byte",
                               gz.n - 8);
                bad.p[gz.n - 7] ^= 1;
                bad.p[gz.n - 2] ^= 1;
                restart_expect("restarted gzip, length changed", &bad, p, PGFEED_EDECODE,
                               "corrupt gzip data", "The length stored at compressed byte",
                               gz.n - 4);
                bad.n = gz.n - 3;
                restart_expect("restarted gzip, trailer cut", &bad, p, PGFEED_EDECODE,
                               "unexpected end of compressed input", "The gzip stream ends",
                               gz.n - 3);
                free(bad.p);
            }
        }
        if (i == 4) {
            const struct rpoint *p = pick_point(pts, n, 0);
            if (p) {
                struct bytes bad = {0};
                bytes_add(&bad, zl.p, zl.n);
                bad.p[zl.n - 3 - 2] ^= 4;
                restart_expect("restarted zlib, Adler-32 changed", &bad, p, PGFEED_EDECODE,
                               "corrupt zlib data", "The Adler-32 stored at compressed byte",
                               zl.n - 3 - 4);
                free(bad.p);
            }
        }
        rpoints_free(pts, n);
    }

    /*
     * Checkpoints carried from one build to the other: points taken with zlib
     * alone resume with ISA-L, and ISA-L's with zlib alone (output checked byte
     * for byte, the resumed member's trailer included).
     */
    if (isal_build) {
        static const size_t cross[] = {0, 2, 3, 6, 7};
        for (size_t c = 0; c < sizeof cross / sizeof cross[0]; c++)
            for (int maker = 0; maker < 2; maker++) {
                const struct rp_fixture *f = &fx[cross[c]];
                unsigned mid = 0;
                use_isal = maker;
                n = make_targets(pts, f->want->n, 2000 + c);
                ASSERT_TRUE(collect(f, NULL, 0, 0, pts, n, 0, 2000 + c),
                            "%s: decode with %s handing out restart points", f->name,
                            maker ? "ISA-L" : "zlib alone");
                for (size_t i = 0; i < n; i++)
                    mid += pts[i].rc == 0 && RP_MODE(pts[i].blob.p) >= 2;
                tap_note("%s: %u mid-stream points from %s", f->name, mid,
                         maker ? "ISA-L" : "zlib alone");
                use_isal = !maker;
                restart_all(f, pts, n,
                            maker ? "ISA-L's points resumed by zlib alone"
                                  : "zlib's points resumed by ISA-L",
                            0);
                use_isal = 1;
                rpoints_free(pts, n);
            }
    }

    /* Under the default span a small input keeps only its start: restart = re-read + skip. */
    add_text(&small, 200000, 14);
    add_deflated(&smallgz, small.p, small.n, 31, 6, 0);
    {
        struct rp_fixture f1 = {"restart: small gzip, default span", &smallgz, &small, 0, 0, 0, 0};
        n = make_targets(pts, small.n, 77);
        ASSERT_TRUE(collect(&f1, NULL, 0, 0, pts, n, 0, 3), "%s: decode", f1.name);
        int all_start = 1;
        for (size_t i = 0; i < n; i++)
            if (pts[i].rc != 0 || RP_MODE(pts[i].blob.p) != 0 || pts[i].raw != 0 ||
                pts[i].blob.n != RP_HEAD + 4)
                all_start = 0;
        ASSERT_TRUE(all_start, "small gzip: every point is the start of the input (mode 0, raw 0)");
        restart_all(&f1, pts, n, "from the start", 0);
        rpoints_free(pts, n);
    }

    /* The API's edges. */
    {
        pgfeed_job_t *job = new_job();
        struct pgfeed_stage *dec;
        struct fake f;
        struct pgfeed_buf buf = {0};
        uint64_t raw = 99;
        memset(&f, 0, sizeof f);
        f.base.ops = &fake_ops;
        f.base.ctx = pgfeed__job_ctx(job);
        ASSERT_EQ_INT(pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec), 0, "decoder_new");
        dec->next = &f.base;
        pgfeed__buf_append(&buf, "xyz", 3);
        ASSERT_EQ_INT(pgfeed__decoder_restart_point(dec, 0, &buf, &raw), 0,
                      "a restart point before any input");
        ASSERT_TRUE(buf.len == 3 + RP_HEAD + 4 && memcmp(buf.data, "xyz", 3) == 0 &&
                        memcmp(buf.data + 3, "PGFR\1\0", 6) == 0 && raw == 0,
                    "it is appended, the start of the input");
        ASSERT_EQ_INT(dec->ops->write(dec, place(smallgz.p, 100), 100), 0, "write");
        ASSERT_EQ_INT(pgfeed__decoder_restart_from(dec, buf.data + 3, buf.len - 3, 0),
                      PGFEED_EINTERNAL, "restart_from after input is refused");
        pgfeed__buf_free(&buf);
        dec->ops->destroy(dec);
        free(f.got.p);
        close_job(job);
    }

    {
        struct bytes gz2_nopad = {0};
        bytes_add(&gz2_nopad, gz2.p, gz2.n);
        test_blob_v1_gzip(&gz2_nopad, member2, &data);
        free(gz2_nopad.p);
    }
    test_codec_restart_points(&data);
#ifdef PGFEED_HAVE_XZ
    test_xz_block_restart_points(&data);
#endif
#ifdef PGFEED_HAVE_BZIP2
    test_bzip2_block_restart_points(&data);
#endif

    free(data.p);
    free(gz.p);
    free(gz2.p);
    free(gz3.p);
    free(many.p);
    free(zl.p);
    free(stored.p);
    free(fixed.p);
    free(gz_empty.p);
    free(small.p);
    free(smallgz.p);
}

int main(void)
{
    struct bytes text = {0}, small = {0}, tiny = {0};
    struct bytes gz = {0}, zl = {0}, two = {0}, two_want = {0}, pad = {0}, sgz = {0}, szl = {0};
    struct bytes sgz_hdr = {0}, sgz_stored = {0}, three = {0}, three_want = {0}, spad = {0};
    struct bytes sz_pad = {0}, empty = {0}, gz_empty = {0}, zl_empty = {0};

    uv_loop_init(&loop);

    /* ~330 KB: rows, 64 KB of noise in the middle (stored blocks), more rows. */
    add_text(&text, 150000, 1);
    add_random(&text, 65536, 2);
    add_text(&text, text.n + 120000, 3);
    add_text(&small, 1200, 4);
    add_random(&small, 200, 5);
    add_text(&tiny, 300, 6);

    add_deflated(&gz, text.p, text.n, 31, 6, 0);
    add_deflated(&zl, text.p, text.n, 15, 6, 0);
    add_deflated(&sgz, small.p, small.n, 31, 9, 0);
    add_deflated(&szl, small.p, small.n, 15, 1, 0);
    add_deflated(&sgz_hdr, small.p, small.n, 31, 6, 1);
    add_deflated(&sgz_stored, tiny.p, tiny.n, 31, 0, 0);
    add_deflated(&gz_empty, "", 0, 31, 6, 0);
    add_deflated(&zl_empty, "", 0, 15, 6, 0);

    /* Two members, as `cat a.gz b.gz` or pigz make. */
    add_deflated(&two, text.p, 200000, 31, 6, 0);
    add_deflated(&two, text.p + 200000, text.n - 200000, 31, 1, 0);
    /* Three small ones, the middle one empty, one with header fields. */
    add_deflated(&three, small.p, 700, 31, 6, 0);
    size_t three_m1 = three.n;
    bytes_add(&three, gz_empty.p, gz_empty.n);
    add_deflated(&three, small.p + 700, small.n - 700, 31, 6, 1);
    bytes_add(&two_want, text.p, text.n);
    bytes_add(&three_want, small.p, small.n);
    /* Zero padding after the last member. */
    bytes_add(&pad, gz.p, gz.n);
    bytes_fill(&pad, 0, 10000);
    bytes_add(&spad, sgz.p, sgz.n);
    bytes_fill(&spad, 0, 517);
    bytes_add(&sz_pad, szl.p, szl.n);
    bytes_fill(&sz_pad, 0, 3);

    size_t arena_need = pad.n > text.n ? pad.n : text.n;
    if (arena_need < (4u << 20))
        arena_need = 4u << 20; /* test_restart_points' fixtures */
    arena_cap = arena_need + 64;
    {
        struct bytes z = {0};
        bytes_fill(&z, 0, arena_cap);
        arena_end = tap_guard(z.p, arena_cap) + arena_cap;
        free(z.p);
    }

    {
        /* Does pgfeed__stage_resume_upstream() reach the upstream of a job that never started? */
        pgfeed_job_t *job = new_job();
        struct fake f;
        struct pgfeed_stage probe;
        memset(&f, 0, sizeof f);
        memset(&probe, 0, sizeof probe);
        f.up.ops = &up_ops;
        probe.ops = &fake_ops;
        probe.ctx = pgfeed__job_ctx(job);
        probe.prev = &f.up;
        pgfeed__stage_resume_upstream(&probe);
        strict_resume = f.up_resumes == 1;
        close_job(job);
        job = new_job();
        struct pgfeed_stage *dec;
        if (pgfeed__decoder_new(pgfeed__job_ctx(job), 64, &dec) != 0)
            abort();
        isal_build = pgfeed__decoder_use_isal(dec, 1);
        dec->ops->destroy(dec);
        close_job(job);
        tap_note("gzip members are inflated by %s",
                 isal_build ? "ISA-L, their headers read by zlib" : "zlib");
        if (!strict_resume)
            tap_note("pgfeed__stage_resume_upstream() is a no-op for a job that is not running: "
                     "the decoder's resumes of its upstream are not checked");
    }

    test_api();

    test_prompt(&gz, 31, 61, 777);
    test_prompt(&gz, 31, 4096, 777);
    test_prompt(&gz, 31, 65536, 1);
    test_prompt(&zl, 15, 64, 777);

    /* ---- well-formed input ---- */
    struct tcase c;
    c = ok_case("plain", &text, &text);
    c.zero_copy = 1;
    battery(&c);
    c = ok_case("plain small", &small, &small);
    c.zero_copy = 1;
    battery(&c);
    battery((c = ok_case("gzip", &gz, &text), &c));
    battery((c = ok_case("zlib", &zl, &text), &c));
    battery((c = ok_case("two-member gzip", &two, &two_want), &c));
    battery((c = ok_case("gzip + zero padding", &pad, &text), &c));
    battery((c = ok_case("small gzip", &sgz, &small), &c));
    battery((c = ok_case("small zlib", &szl, &small), &c));
    battery((c = ok_case("small zlib + zero padding", &sz_pad, &small), &c));
    battery(
        (c = ok_case("small gzip with name, comment, extra, header CRC", &sgz_hdr, &small), &c));
    battery((c = ok_case("small gzip, stored blocks", &sgz_stored, &tiny), &c));
    battery((c = ok_case("three members, one empty", &three, &three_want), &c));
    battery((c = ok_case("small gzip + zero padding", &spad, &small), &c));
    battery((c = ok_case("empty input", &empty, &empty), &c));
    battery((c = ok_case("empty gzip member", &gz_empty, &empty), &c));
    battery((c = ok_case("empty zlib stream", &zl_empty, &empty), &c));

    {
        /* Inputs too short to decide on, or that only look compressed: plain. */
        static const char *const plains[][2] = {
            {"x", "1 byte"},
            {"\x78", "1 byte 78"},
            {"\x1f\x00zz", "1f not followed by 8b"},
            {"x\xbbhello", "zlib-like header with a preset dictionary"},
            {"\x88\x1ctext", "zlib-like header with a 64 KiB window"},
        };
        static const size_t lens[] = {1, 1, 4, 7, 6};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            struct bytes b = {0};
            bytes_add(&b, plains[i][0], lens[i]);
            c = ok_case(plains[i][1], &b, &b);
            c.zero_copy = lens[i] > 1;
            battery(&c);
            free(b.p);
        }
    }

    /* ---- a resume that re-reads the source skips what was imported ---- */
    {
        struct bytes one = {0};
        bytes_add(&one, "x", 1);
        const struct {
            const char *name;
            const struct bytes *in, *want;
            uint64_t skip;
        } skips[] = {
            {"two-member gzip, skip 1", &two, &two_want, 1},
            {"two-member gzip, skip 1000", &two, &two_want, 1000},
            {"two-member gzip, skip 200000", &two, &two_want, 200000},
            {"two-member gzip, skip 200001", &two, &two_want, 200001},
            {"plain, skip 70000", &text, &text, 70000},
            {"plain, skip all", &text, &text, text.n},
            {"small gzip, skip 700", &sgz, &small, 700},
            {"small zlib, skip all", &szl, &small, small.n},
            {"1 byte, skip 1", &one, &one, 1},
        };
        for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
            c = ok_case(skips[i].name, skips[i].in, skips[i].want);
            c.skip = skips[i].skip;
            battery(&c);
        }
        test_short(&sgz, small.n + 1);
        test_short(&one, 2);
        test_short(&empty, 1);
        free(one.p);
    }

    /* ---- trailing bytes: the error is where the well-formed data and its padding end ---- */
    {
        const struct {
            const char *name;
            const struct bytes *head; /* well-formed */
            size_t zeros;             /* then zero padding */
            const struct bytes *again;
            const char *tail; /* then these bytes, or a second stream */
            size_t tail_n;
        } trailing[] = {
            {"gzip + garbage", &sgz, 0, NULL, "garbage\n", 8},
            {"gzip + zeros + garbage", &sgz, 100, NULL, "x", 1},
            {"gzip + 1f 00", &sgz, 0, NULL, "\x1f\x00", 2},
            {"gzip + zeros + another member", &sgz, 10, &sgz, NULL, 0},
            {"zlib + another zlib stream", &szl, 0, &szl, NULL, 0},
        };
        struct bytes b = {0};
        for (size_t i = 0; i < sizeof trailing / sizeof trailing[0]; i++) {
            size_t at = trailing[i].head->n + trailing[i].zeros;
            b.n = 0;
            bytes_add(&b, trailing[i].head->p, trailing[i].head->n);
            bytes_fill(&b, 0, trailing[i].zeros);
            if (trailing[i].again)
                bytes_add(&b, trailing[i].again->p, trailing[i].again->n);
            bytes_add(&b, trailing[i].tail, trailing[i].tail_n);
            battery((c = err_case(trailing[i].name, &b, &small, OUT_GARBAGE, at, at), &c));
        }
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        bytes_add(&b, "garbage\n", 8);
        char detail[300];
        snprintf(
            detail, sizeof detail,
            "The gzip data ends at compressed byte %zu, but the byte at %zu (0x67) starts neither another gzip member nor zero padding.",
            sgz.n, sgz.n);
        check_wording("gzip + garbage", &b, "trailing garbage after compressed data", detail,
                      sgz.n);
        free(b.p);
    }

    /* ---- truncation ---- */
    {
        const struct {
            const char *family, *name, *what;
            const struct bytes *in, *want;
            size_t from;
            size_t whole; /* a cut here leaves whole members: well-formed, not cut (0: none) */
        } cut_families[] = {
            {"truncated small gzip with header fields", "truncated small gzip",
             "cut at every byte from 2", &sgz_hdr, &small, 2, 0},
            {"truncated small zlib", "truncated small zlib", "cut at every byte from 2", &szl,
             &small, 2, 0},
            {"truncated three members", "truncated three members",
             "cut at every byte of the later members", &three, &three_want, three_m1 + 1,
             three_m1 + gz_empty.n},
        };
        struct family fm;
        struct bytes b = {0};
        for (size_t i = 0; i < sizeof cut_families / sizeof cut_families[0]; i++) {
            memset(&fm, 0, sizeof fm);
            fm.what = cut_families[i].what;
            for (size_t cut = cut_families[i].from; cut < cut_families[i].in->n; cut++) {
                if (cut == cut_families[i].whole)
                    continue;
                b.n = 0;
                bytes_add(&b, cut_families[i].in->p, cut);
                c = err_case(cut_families[i].name, &b, cut_families[i].want, OUT_TRUNCATED, cut,
                             cut);
                quick(&fm, &c, cut);
            }
            fam_end(&fm, cut_families[i].family);
        }

        static const size_t big_cuts[] = {2, 3, 10, 11, 5000, 40000, 70000, 100000};
        for (size_t i = 0; i < sizeof big_cuts / sizeof big_cuts[0] + 3; i++) {
            size_t cut = i < 8 ? big_cuts[i] : gz.n - (i == 8 ? 1 : i == 9 ? 4 : 8);
            b.n = 0;
            bytes_add(&b, gz.p, cut);
            char name[64];
            snprintf(name, sizeof name, "gzip cut at %zu of %zu", cut, gz.n);
            c = err_case(name, &b, &text, OUT_TRUNCATED, cut, cut);
            c.name = name;
            if (i == 4 || i == 9)
                battery(&c);
            else {
                memset(&fm, 0, sizeof fm);
                fm.what = "quick";
                quick(&fm, &c, i);
                fam_end(&fm, name);
            }
        }
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        bytes_add(&b, "\x1f", 1);
        battery(
            (c = err_case("gzip + lone 1f", &b, &small, OUT_TRUNCATED, sgz.n + 1, sgz.n + 1), &c));
        b.n = 0;
        bytes_add(&b, "\x1f\x8b", 2);
        battery((c = err_case("just 1f 8b", &b, &empty, OUT_TRUNCATED, 2, 2), &c));
        /* One byte, 1f: a .gz cut after its first byte, not a text file (issue 11). */
        b.n = 0;
        bytes_add(&b, "\x1f", 1);
        battery((c = err_case("just 1f", &b, &empty, OUT_TRUNCATED, 1, 1), &c));
        check_wording(
            "just 1f", &b, "unexpected end of compressed input",
            "The input is a single byte, 0x1f, the first of the two that begin gzip data; the file is probably truncated.",
            1);

        b.n = 0;
        bytes_add(&b, sgz.p, 100);
        char detail[200];
        snprintf(
            detail, sizeof detail,
            "The gzip stream ends at compressed byte 100 before its end marker; the file is probably truncated.");
        check_wording("truncated gzip", &b, "unexpected end of compressed input", detail, 100);
        b.n = 0;
        bytes_add(&b, szl.p, 50);
        check_wording(
            "truncated zlib", &b, "unexpected end of compressed input",
            "The zlib stream ends at compressed byte 50 before its end marker; the file is probably truncated.",
            50);
        free(b.p);
    }

    /* ---- corruption ---- */
    {
        struct family fm;
        struct bytes b = {0};
        bytes_add(&b, sgz.p, sgz.n);
        size_t mid = sgz.n / 2;
        b.p[mid] ^= 0x55;
        battery((c = err_case("gzip, byte flipped in the middle", &b, &small, OUT_ANY_DECODE,
                              mid + 1, b.n),
                 &c));
        const struct {
            const char *family, *name;
            const struct bytes *in;
            size_t header; /* bytes before the first one flipped */
        } flip_families[] = {
            {"small gzip", "gzip, one byte flipped", &sgz, 10},
            {"small zlib", "zlib, one byte flipped", &szl, 2},
        };
        for (size_t i = 0; i < sizeof flip_families / sizeof flip_families[0]; i++) {
            const struct bytes *in = flip_families[i].in;
            memset(&fm, 0, sizeof fm);
            fm.what = "every byte after the header flipped";
            for (size_t at = flip_families[i].header; at < in->n; at++) {
                b.n = 0;
                bytes_add(&b, in->p, in->n);
                b.p[at] ^= 0xff;
                c = err_case(flip_families[i].name, &b, &small, OUT_ANY_DECODE, at + 1, b.n);
                quick(&fm, &c, at);
            }
            fam_end(&fm, flip_families[i].family);
        }
        tap_note("%u runs with a flipped byte decoded to the original output", undetected_flips);

        b.n = 0;
        bytes_add(&b, gz.p, gz.n);
        b.p[gz.n / 3] ^= 0x10;
        battery(
            (c = err_case("big gzip, byte flipped", &b, &text, OUT_ANY_DECODE, gz.n / 3 + 1, b.n),
             &c));

        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        b.p[2] = 7; /* compression method */
        battery((c = err_case("gzip, unknown method", &b, NULL, OUT_CORRUPT, 4, 4), &c));
        check_wording(
            "gzip, unknown method", &b, "corrupt gzip data",
            "zlib reported \"unknown compression method\" at compressed byte 4, decoded byte 0.",
            4);
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        b.p[sgz.n - 6] ^= 1; /* CRC-32 */
        check_wording("gzip, bad CRC", &b, "corrupt gzip data",
                      "^zlib reported \"incorrect data check\" at compressed byte", sgz.n - 4);
        /* The whole wording, the same with ISA-L, which leaves the trailer to the decoder. */
        char detail[200];
        snprintf(detail, sizeof detail,
                 "zlib reported \"incorrect data check\" at compressed byte %zu, decoded byte %zu.",
                 sgz.n - 4, small.n);
        check_wording("gzip, bad CRC", &b, "corrupt gzip data", detail, sgz.n - 4);
        b.n = sgz.n - 4; /* the CRC-32 is checked before the length comes */
        check_wording("gzip, bad CRC, then cut", &b, "corrupt gzip data", detail, sgz.n - 4);
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        b.p[sgz.n - 2] ^= 1; /* ISIZE */
        snprintf(
            detail, sizeof detail,
            "zlib reported \"incorrect length check\" at compressed byte %zu, decoded byte %zu.",
            sgz.n, small.n);
        check_wording("gzip, bad length", &b, "corrupt gzip data", detail, sgz.n);
        b.n = 0; /* the second of three members */
        bytes_add(&b, three.p, three.n);
        b.p[three.n - 7] ^= 0x80;
        snprintf(detail, sizeof detail,
                 "zlib reported \"incorrect data check\" at compressed byte %zu, decoded byte %zu.",
                 three.n - 4, small.n);
        check_wording("three members, bad CRC in the last", &b, "corrupt gzip data", detail,
                      three.n - 4);
        free(b.p);
    }

    test_codecs(&text, &small, &tiny);
    test_restart_points();

    free(text.p);
    free(small.p);
    free(tiny.p);
    free(gz.p);
    free(zl.p);
    free(two.p);
    free(two_want.p);
    free(pad.p);
    free(sgz.p);
    free(szl.p);
    free(sgz_hdr.p);
    free(sgz_stored.p);
    free(three.p);
    free(three_want.p);
    free(spad.p);
    free(sz_pad.p);
    free(gz_empty.p);
    free(zl_empty.p);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0, "uv_loop_close");
    return tap_done();
}
