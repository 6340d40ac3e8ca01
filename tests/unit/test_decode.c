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
 */
#define ZLIB_CONST
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"
#include "tap.h"

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
static void add_deflated(struct bytes *b, const void *p, size_t n, int window_bits, int level,
                         int with_header)
{
    static unsigned char name[] = "name.basics.tsv";
    static unsigned char comment[] = "made by test_decode";
    static unsigned char extra[] = "XY\4\0abcd";
    z_stream zs;
    gz_header h;

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
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
    return m && (strcmp(m, "unexpected end of compressed input") == 0 ||
                 strcmp(m, "trailing garbage after compressed data") == 0 ||
                 strcmp(m, "corrupt gzip data") == 0 || strcmp(m, "corrupt zlib data") == 0);
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
    struct pgfeed_stats *st = pgfeed__job_stats(job);
    struct pgfeed_stage *dec = NULL;
    struct fake f;
    uint64_t rng = g->seed * 2654435761u + 1;
    const char *first_slot = NULL;
    size_t pos = 0;
    int first = 1, rc = 0, in_finish = 0;
    const char *result = why;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.job = job;
    f.eagain = g->eagain;
    f.finish_eagains = g->finish_eagains;
    f.rng = g->seed + 7;

    rc = pgfeed__decoder_new(job, g->out_chunk, &dec);
    FAIL_IF(rc != 0 || !dec, "pgfeed__decoder_new: %s", pgfeed_err_name(rc));
    dec->next = &f.base;
    f.base.prev = dec;
    if (c->skip)
        pgfeed__decoder_skip_output(dec, c->skip);
    f.up.ops = &up_ops;
    f.up.job = job;
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
        FAIL_IF(f.got.n != want_n || (want_n && memcmp(f.got.p, c->want + c->skip, want_n) != 0),
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
        if (want_msg)
            FAIL_IF(!e->message || strcmp(e->message, want_msg) != 0, "message \"%s\", want \"%s\"",
                    e->message ? e->message : "-", want_msg);
        else if (c->outcome == OUT_CORRUPT)
            FAIL_IF(!e->message || strncmp(e->message, "corrupt ", 8) != 0, "message \"%s\"",
                    e->message ? e->message : "-");
        else
            FAIL_IF(!is_decoder_message(e->message), "message \"%s\"",
                    e->message ? e->message : "-");
        FAIL_IF(!e->detail || !e->hint, "no detail or hint");
        FAIL_IF(e->raw_offset < c->raw_lo || e->raw_offset > c->raw_hi,
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
    f.base.job = job;
    ASSERT_EQ_INT(pgfeed__decoder_new(job, 4096, &dec), 0, "decoder_new");
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

    ASSERT_EQ_INT(pgfeed__decoder_new(job, 0, &dec), UV_EINVAL, "out_chunk 0 is refused");
    ASSERT_TRUE(dec == NULL, "*out is NULL on failure");
    ASSERT_EQ_INT(pgfeed__decoder_new(job, 4096, &dec), 0, "decoder_new");
    ASSERT_EQ_STR(dec->ops->name, "decoder", "ops name");
    ASSERT_TRUE(dec->ops->write && dec->ops->finish && dec->ops->resume && dec->ops->destroy,
                "ops are set");
    ASSERT_TRUE(dec->job == job && dec->next == NULL && dec->prev == NULL, "base is initialised");

    /* Input after finish is a caller bug: an error, never a crash. */
    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.job = job;
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
    f.base.job = job;
    ASSERT_EQ_INT(pgfeed__decoder_new(job, 4096, &dec), 0, "decoder_new");
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
 * even when the output buffer was full as the input ran out.
 */
static void test_prompt(const struct bytes *in, int window_bits, size_t out_chunk)
{
    pgfeed_job_t *job = new_job();
    struct pgfeed_stage *dec;
    struct fake f;
    z_stream ref;
    struct bytes all = {0};
    unsigned late = 0, writes = 0;

    memset(&f, 0, sizeof f);
    f.base.ops = &fake_ops;
    f.base.job = job;
    memset(&ref, 0, sizeof ref);
    inflateInit2(&ref, window_bits);
    bytes_fill(&all, 0, 1u << 20);
    ref.next_out = all.p;
    ref.avail_out = (uInt)all.n;
    ASSERT_EQ_INT(pgfeed__decoder_new(job, out_chunk, &dec), 0, "decoder_new");
    dec->next = &f.base;
    for (size_t pos = 0; pos < in->n; pos += 777) {
        size_t len = in->n - pos < 777 ? in->n - pos : 777;
        if (dec->ops->write(dec, place(in->p + pos, len), len) != 0)
            break;
        writes++;
        ref.next_in = in->p + pos;
        ref.avail_in = (uInt)len;
        inflate(&ref, Z_NO_FLUSH);
        if (f.got.n != ref.total_out && late++ == 0)
            tap_note("after %zu bytes in: %zu out, zlib gives %lu", pos + len, f.got.n,
                     ref.total_out);
    }
    ASSERT_EQ_INT(dec->ops->finish(dec), 0, "prompt output: finish");
    ASSERT_TRUE(late == 0, "prompt output, out_chunk %zu: %u of %u writes left output behind",
                out_chunk, late, writes);
    inflateEnd(&ref);
    dec->ops->destroy(dec);
    free(f.got.p);
    free(all.p);
    close_job(job);
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
        probe.job = job;
        probe.prev = &f.up;
        pgfeed__stage_resume_upstream(&probe);
        strict_resume = f.up_resumes == 1;
        close_job(job);
        if (!strict_resume)
            tap_note("pgfeed__stage_resume_upstream() is a no-op for a job that is not running: "
                     "the decoder's resumes of its upstream are not checked");
    }

    test_api();

    test_prompt(&gz, 31, 61);
    test_prompt(&gz, 31, 4096);
    test_prompt(&zl, 15, 64);

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
            {"\x1f", "1 byte 1f"},
            {"\x78", "1 byte 78"},
            {"\x1f\x00zz", "1f not followed by 8b"},
            {"x\xbbhello", "zlib-like header with a preset dictionary"},
            {"\x88\x1ctext", "zlib-like header with a 64 KiB window"},
        };
        static const size_t lens[] = {1, 1, 1, 4, 7, 6};
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
        static const size_t skips[] = {1, 1000, 200000, 200001};
        for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
            char name[80];
            snprintf(name, sizeof name, "two-member gzip, skip %zu", skips[i]);
            c = ok_case(name, &two, &two_want);
            c.skip = skips[i];
            battery(&c);
        }
        c = ok_case("plain, skip 70000", &text, &text);
        c.skip = 70000;
        battery(&c);
        c = ok_case("plain, skip all", &text, &text);
        c.skip = text.n;
        battery(&c);
        c = ok_case("small gzip, skip 700", &sgz, &small);
        c.skip = 700;
        battery(&c);
        c = ok_case("small zlib, skip all", &szl, &small);
        c.skip = small.n;
        battery(&c);
        struct bytes one = {0};
        bytes_add(&one, "x", 1);
        c = ok_case("1 byte, skip 1", &one, &one);
        c.skip = 1;
        battery(&c);
        test_short(&sgz, small.n + 1);
        test_short(&one, 2);
        test_short(&empty, 1);
        free(one.p);
    }

    /* ---- trailing bytes ---- */
    {
        struct bytes b = {0};
        bytes_add(&b, sgz.p, sgz.n);
        bytes_add(&b, "garbage\n", 8);
        battery((c = err_case("gzip + garbage", &b, &small, OUT_GARBAGE, sgz.n, sgz.n), &c));
        char detail[300];
        snprintf(
            detail, sizeof detail,
            "The gzip data ends at compressed byte %zu, but the byte at %zu (0x67) starts neither another gzip member nor zero padding.",
            sgz.n, sgz.n);
        check_wording("gzip + garbage", &b, "trailing garbage after compressed data", detail,
                      sgz.n);
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        bytes_fill(&b, 0, 100);
        bytes_add(&b, "x", 1);
        battery((c = err_case("gzip + zeros + garbage", &b, &small, OUT_GARBAGE, sgz.n + 100,
                              sgz.n + 100),
                 &c));
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        bytes_add(&b, "\x1f\x00", 2);
        battery((c = err_case("gzip + 1f 00", &b, &small, OUT_GARBAGE, sgz.n, sgz.n), &c));
        b.n = 0;
        bytes_add(&b, sgz.p, sgz.n);
        bytes_fill(&b, 0, 10);
        bytes_add(&b, sgz.p, sgz.n);
        battery((c = err_case("gzip + zeros + another member", &b, &small, OUT_GARBAGE, sgz.n + 10,
                              sgz.n + 10),
                 &c));
        b.n = 0;
        bytes_add(&b, szl.p, szl.n);
        bytes_add(&b, szl.p, szl.n);
        battery((c = err_case("zlib + another zlib stream", &b, &small, OUT_GARBAGE, szl.n, szl.n),
                 &c));
        free(b.p);
    }

    /* ---- truncation ---- */
    {
        struct family fm;
        struct bytes b = {0};
        memset(&fm, 0, sizeof fm);
        fm.what = "cut at every byte from 2";
        for (size_t cut = 2; cut < sgz_hdr.n; cut++) {
            b.n = 0;
            bytes_add(&b, sgz_hdr.p, cut);
            c = err_case("truncated small gzip", &b, &small, OUT_TRUNCATED, cut, cut);
            quick(&fm, &c, cut);
        }
        fam_end(&fm, "truncated small gzip with header fields");

        memset(&fm, 0, sizeof fm);
        fm.what = "cut at every byte from 2";
        for (size_t cut = 2; cut < szl.n; cut++) {
            b.n = 0;
            bytes_add(&b, szl.p, cut);
            c = err_case("truncated small zlib", &b, &small, OUT_TRUNCATED, cut, cut);
            quick(&fm, &c, cut);
        }
        fam_end(&fm, "truncated small zlib");

        memset(&fm, 0, sizeof fm);
        fm.what = "cut at every byte of the later members";
        for (size_t cut = three_m1 + 1; cut < three.n; cut++) {
            b.n = 0;
            bytes_add(&b, three.p, cut);
            if (cut == three_m1 + gz_empty.n)
                continue; /* a whole number of members: well-formed */
            c = err_case("truncated three members", &b, &three_want, OUT_TRUNCATED, cut, cut);
            quick(&fm, &c, cut);
        }
        fam_end(&fm, "truncated three members");

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
        memset(&fm, 0, sizeof fm);
        fm.what = "every byte after the header flipped";
        for (size_t at = 10; at < sgz.n; at++) {
            b.n = 0;
            bytes_add(&b, sgz.p, sgz.n);
            b.p[at] ^= 0xff;
            c = err_case("gzip, one byte flipped", &b, &small, OUT_ANY_DECODE, at + 1, b.n);
            quick(&fm, &c, at);
        }
        fam_end(&fm, "small gzip");
        memset(&fm, 0, sizeof fm);
        fm.what = "every byte after the header flipped";
        for (size_t at = 2; at < szl.n; at++) {
            b.n = 0;
            bytes_add(&b, szl.p, szl.n);
            b.p[at] ^= 0xff;
            c = err_case("zlib, one byte flipped", &b, &small, OUT_ANY_DECODE, at + 1, b.n);
            quick(&fm, &c, at);
        }
        fam_end(&fm, "small zlib");
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
        free(b.p);
    }

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
