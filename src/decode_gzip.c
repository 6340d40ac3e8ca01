/*
 * decode_gzip.c -- the decoder stage: turns the source's bytes into plain text.
 *
 * It owns compression detection, the zlib inflate stream and the inflated
 * bytes until the parser has taken them. It leaves reading (and bytes_read)
 * to the source, lines and fields to the parser, and the scheduling of
 * resume() to job.c.
 *
 * Detection looks at the first two bytes, never at a name: 1f 8b is gzip; a
 * zlib header (CM 8, CINFO <= 7, no preset dictionary, (CMF << 8 | FLG) % 31
 * == 0) is zlib; anything else, including an input of 0 or 1 byte, is plain
 * and goes downstream untouched (same pointer, no copy). A first write of one
 * byte (a pipe) is held until the second byte arrives. Some text happens to
 * start with a valid zlib header (e.g. "X\t", "80", "x^"); such a file is
 * taken for zlib and fails as corrupt.
 *
 * gzip is inflated with windowBits 15+16, zlib with 15. What may follow the
 * end of a stream (Z_STREAM_END), our policy, stricter than gzread()'s:
 *   gzip  another member (1f 8b: inflateReset and go on, as pigz, bgzip and
 *         `cat a.gz b.gz` produce), or zero bytes up to the end (tape or dd
 *         padding). Anything else, a member after the padding included, is
 *         "trailing garbage after compressed data" at the first offending
 *         byte.
 *   zlib  one stream, then only zero padding.
 * Input that ends inside a member, or after a lone 1f following a member, is
 * truncation, reported by finish(). zlib checks each member's CRC-32 (or the
 * Adler-32) only at its end, after earlier bytes went downstream.
 *
 * Buffers, sized at creation, never per chunk:
 *   out   out_chunk bytes, one inflate output buffer, handed downstream in one
 *         write when full and at the end of each input; kept while downstream
 *         answers EAGAIN.
 *   in    allocated when the input turns out to be compressed, out_chunk
 *         bytes (the source never writes more), grown once if a larger write
 *         comes: the unconsumed part of a write cut short by downstream's
 *         EAGAIN.
 *   held  one byte: the first byte before detection, or a 1f after a member.
 *
 * States: SNIFF -> PLAIN | INFLATE; INFLATE -> TRAIL at each stream end;
 * TRAIL -> INFLATE at the next member; TRAIL may be in padding (only zeros
 * from there on); finish accepted downstream -> DONE; any -> FAILED (the job's
 * error is set; its code is returned from then on). Across states, a backlog
 * (pending out, unconsumed input, zlib output not yet drained) or a
 * downstream EAGAIN not yet followed by resume() makes write() and finish()
 * answer EAGAIN; resume() drains it, then resumes upstream if we answered
 * EAGAIN to it (also when draining failed, so that its next call
 * gets the error).
 *
 * Offsets for errors: raw_off counts compressed bytes consumed (held bytes
 * included), dec_off the decoded bytes handed downstream or skipped.
 *
 * A resumed job that re-reads its source from the start asks us to skip the
 * decoded bytes it already imported (pgfeed__decoder_skip_output): they are
 * inflated and counted in dec_off and bytes_inflated, but not handed on. An
 * input that ends before they are all skipped is PGFEED_ECHANGED.
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

enum dec_state { ST_SNIFF, ST_PLAIN, ST_INFLATE, ST_TRAIL, ST_DONE, ST_FAILED };
enum dec_kind { KIND_PLAIN, KIND_GZIP, KIND_ZLIB };

struct decoder {
    struct pgfeed_stage base;
    enum dec_state state;
    enum dec_kind kind;
    int err;          /* ST_FAILED: the code every call returns */
    int zinit;        /* inflateInit2 succeeded: inflateEnd on destroy */
    int down_blocked; /* downstream answered EAGAIN and has not resumed us yet */
    int up_blocked;   /* we answered EAGAIN upstream and owe it a resume */
    int more_out;     /* the last inflate filled out: zlib may have more */
    int padding;      /* ST_TRAIL: zero padding began; only zeros may follow */
    int has_held;
    unsigned char held;
    z_stream zs;
    char *out;
    size_t out_cap;
    size_t out_len; /* inflated bytes in out not yet taken downstream */
    unsigned char *in;
    size_t in_cap;
    const unsigned char *src; /* input not yet consumed: the caller's during a write, else in */
    size_t src_left;
    uint64_t raw_off; /* compressed bytes consumed */
    uint64_t dec_off; /* decoded bytes taken downstream or skipped */
    uint64_t skip;    /* decoded bytes still to drop (a resume re-reading the source) */
    uint64_t skip_total;
    uint64_t stream_end; /* raw_off at the last stream end */
};

static const char *kind_name(const struct decoder *d)
{
    return d->kind == KIND_GZIP ? "gzip" : "zlib";
}

static int set_failed(struct decoder *d, int rc)
{
    d->state = ST_FAILED;
    d->err = rc;
    return rc;
}

/* Records the job's error at the given positions; detail and hint are copied. */
static int fail(struct decoder *d, int code, char *detail, const char *hint, const char *msg,
                uint64_t dec_at, uint64_t raw_at)
{
    pgfeed__fail(d->base.job, "decoder", code, detail, hint, "%s", msg);
    pgfeed__fail_at(d->base.job, 0, 0, NULL, dec_at, raw_at);
    free(detail);
    return set_failed(d, code);
}

static int fail_nomem(struct decoder *d)
{
    return fail(d, UV_ENOMEM, NULL, NULL, "out of memory", d->dec_off, d->raw_off);
}

static int fail_zlib(struct decoder *d, int zret, uint64_t dec_at)
{
    char *detail;
    char msg[64];

    if (zret == Z_MEM_ERROR)
        return fail_nomem(d);
    if (zret == Z_NEED_DICT) {
        detail = pgfeed__strdup_printf(
            "The zlib stream asks at compressed byte %llu for a preset dictionary, which is not part of the file.",
            (unsigned long long)d->raw_off);
        return fail(d, PGFEED_EDECODE, detail, NULL,
                    "cannot decompress zlib data that needs a preset dictionary", dec_at,
                    d->raw_off);
    }
    snprintf(msg, sizeof msg, "corrupt %s data", kind_name(d));
    detail =
        pgfeed__strdup_printf("zlib reported \"%s\" at compressed byte %llu, decoded byte %llu.",
                              d->zs.msg ? d->zs.msg : zError(zret), (unsigned long long)d->raw_off,
                              (unsigned long long)dec_at);
    return fail(d, PGFEED_EDECODE, detail,
                d->kind == KIND_GZIP
                    ? "Download the file again; \"gzip -t\" checks a copy before it is imported."
                    : "Download the file again.",
                msg, dec_at, d->raw_off);
}

static int fail_truncated(struct decoder *d)
{
    char *detail = pgfeed__strdup_printf(
        "The %s stream ends at compressed byte %llu before its end marker; the file is probably truncated.",
        kind_name(d), (unsigned long long)d->raw_off);
    return fail(d, PGFEED_EDECODE, detail,
                "Download the file again, and check that the transfer completed.",
                "unexpected end of compressed input", d->dec_off, d->raw_off);
}

static int fail_garbage(struct decoder *d, uint64_t at, unsigned char b)
{
    char *detail;

    if (d->kind == KIND_GZIP)
        detail = pgfeed__strdup_printf(
            "The gzip data ends at compressed byte %llu, but the byte at %llu (0x%02x) starts neither another gzip member nor zero padding.",
            (unsigned long long)d->stream_end, (unsigned long long)at, b);
    else
        detail = pgfeed__strdup_printf(
            "The zlib data ends at compressed byte %llu, but the byte at %llu (0x%02x) is not zero padding.",
            (unsigned long long)d->stream_end, (unsigned long long)at, b);
    return fail(
        d, PGFEED_EDECODE, detail,
        "Remove what follows the compressed data, or download the file again if it is damaged.",
        "trailing garbage after compressed data", d->dec_off, at);
}

/* Decoded bytes downstream has taken. */
static void count_taken(struct decoder *d, size_t k)
{
    d->dec_off += k;
    pgfeed__job_stats(d->base.job)->bytes_inflated += k;
}

/* Decoded bytes dropped for a resume: they count as decoded too. */
static void count_skipped(struct decoder *d, size_t k)
{
    d->skip -= k;
    count_taken(d, k);
}

static int fail_short(struct decoder *d)
{
    char *detail = pgfeed__strdup_printf(
        "The decoded input ends at byte %llu, but the checkpoint being resumed is at byte %llu.",
        (unsigned long long)d->dec_off, (unsigned long long)d->skip_total);
    return fail(d, PGFEED_ECHANGED, detail,
                "The source seems to have changed; run with --restart to import it again.",
                "input ends before the resume point", d->dec_off, d->raw_off);
}

static int busy(const struct decoder *d)
{
    return d->down_blocked || d->out_len > 0 || d->src_left > 0 || d->more_out;
}

/* Hands out downstream. 0 when taken, EAGAIN (kept), or the failure code. */
static int flush_out(struct decoder *d)
{
    struct pgfeed_stage *next = d->base.next;
    int rc = next->ops->write(next, d->out, d->out_len);

    if (rc == PGFEED_EAGAIN) {
        d->down_blocked = 1;
        return rc;
    }
    if (rc < 0)
        return set_failed(d, rc);
    count_taken(d, d->out_len);
    d->out_len = 0;
    return 0;
}

/* Gives zlib the held byte, a header byte that yields no output. */
static int feed_held(struct decoder *d)
{
    int zret;

    d->zs.next_in = &d->held;
    d->zs.avail_in = 1;
    d->zs.next_out = (unsigned char *)d->out;
    d->zs.avail_out = (uInt)d->out_cap;
    zret = inflate(&d->zs, Z_NO_FLUSH);
    d->has_held = 0;
    if (zret != Z_OK)
        return fail_zlib(d, zret, d->dec_off);
    if (d->zs.avail_in != 0 || d->zs.avail_out != d->out_cap) {
        pgfeed__fail(d->base.job, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "zlib did not take a header byte");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    return 0;
}

/* One inflate call over src into out. 0 or the failure code. */
static int inflate_step(struct decoder *d)
{
    uInt avail = d->src_left > UINT_MAX ? UINT_MAX : (uInt)d->src_left;
    size_t used, made;
    int zret;

    d->zs.next_in = d->src;
    d->zs.avail_in = avail;
    d->zs.next_out = (unsigned char *)d->out;
    d->zs.avail_out = (uInt)d->out_cap;
    /*
     * Access points for resuming mid-file (zlib's examples/zran.c) go here,
     * later: inflate with Z_BLOCK instead of Z_NO_FLUSH; when zs.data_type &
     * 128 (end of a deflate block; & 64: it was the last), record raw_off, the
     * unused bit count (data_type & 7), dec_off + made and the last 32 KiB of
     * output. Not implemented yet.
     */
    zret = inflate(&d->zs, Z_NO_FLUSH);
    used = avail - d->zs.avail_in;
    made = d->out_cap - d->zs.avail_out;
    d->src += used;
    d->src_left -= used;
    d->raw_off += used;
    d->more_out = d->zs.avail_out == 0;
    if (d->skip > 0 && made > 0) {
        size_t k = made < d->skip ? made : (size_t)d->skip;
        count_skipped(d, k);
        made -= k;
        if (made > 0)
            memmove(d->out, d->out + k, made);
    }
    d->out_len = made;
    switch (zret) {
    case Z_OK:
        return 0;
    case Z_STREAM_END:
        d->state = ST_TRAIL;
        d->more_out = 0;
        d->padding = 0;
        d->stream_end = d->raw_off;
        return 0;
    case Z_BUF_ERROR: /* no progress possible: zlib needs more input */
        d->more_out = 0;
        if (used == 0 && made == 0 && d->src_left > 0) {
            pgfeed__fail(d->base.job, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                         "zlib made no progress");
            return set_failed(d, PGFEED_EINTERNAL);
        }
        return 0;
    default:
        return fail_zlib(d, zret, d->dec_off + made);
    }
}

/* ST_TRAIL: consumes padding, or starts the next member, from src. */
static int trail(struct decoder *d)
{
    while (d->src_left > 0) {
        unsigned char b = *d->src;

        if (d->has_held) { /* a 1f after a member end */
            if (b != 0x8b)
                return fail_garbage(d, d->raw_off - 1, d->held);
            if (inflateReset(&d->zs) != Z_OK) {
                pgfeed__fail(d->base.job, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                             "could not reset zlib for the next gzip member");
                return set_failed(d, PGFEED_EINTERNAL);
            }
            d->state = ST_INFLATE;
            return feed_held(d); /* b stays in src for inflate */
        }
        if (b == 0)
            d->padding = 1;
        else if (b == 0x1f && d->kind == KIND_GZIP && !d->padding) {
            d->held = b;
            d->has_held = 1;
        } else
            return fail_garbage(d, d->raw_off, b);
        d->src++;
        d->src_left--;
        d->raw_off++;
    }
    return 0;
}

/*
 * Inflates src and hands out downstream until src is used up and zlib has
 * nothing more to give (0, out empty), downstream answers EAGAIN (EAGAIN; out
 * and src keep the rest) or something fails.
 */
static int pump(struct decoder *d)
{
    for (;;) {
        int rc;

        if (d->out_len > 0 && (rc = flush_out(d)) != 0)
            return rc;
        if (d->state == ST_TRAIL) {
            if (d->src_left == 0)
                return 0;
            if ((rc = trail(d)) != 0)
                return rc;
            continue;
        }
        if (d->src_left == 0 && !d->more_out)
            return 0;
        if ((rc = inflate_step(d)) != 0)
            return rc;
    }
}

static enum dec_kind sniff(unsigned char b0, unsigned char b1)
{
    if (b0 == 0x1f && b1 == 0x8b)
        return KIND_GZIP;
    if ((b0 & 0x0f) == 8 && (b0 >> 4) <= 7 && !(b1 & 0x20) && ((unsigned)b0 << 8 | b1) % 31 == 0)
        return KIND_ZLIB;
    return KIND_PLAIN;
}

static int begin(struct decoder *d, enum dec_kind kind)
{
    int zret;

    d->kind = kind;
    if (kind == KIND_PLAIN) {
        d->state = ST_PLAIN;
        return 0;
    }
    d->in = malloc(d->out_cap);
    if (!d->in)
        return fail_nomem(d);
    d->in_cap = d->out_cap;
    zret = inflateInit2(&d->zs, kind == KIND_GZIP ? 15 + 16 : 15);
    if (zret == Z_MEM_ERROR)
        return fail_nomem(d);
    if (zret != Z_OK) {
        pgfeed__fail(d->base.job, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "could not initialize zlib: %s", zError(zret));
        return set_failed(d, PGFEED_EINTERNAL);
    }
    d->zinit = 1;
    d->state = ST_INFLATE;
    return d->has_held ? feed_held(d) : 0;
}

static int write_plain(struct decoder *d, const char *p, size_t n)
{
    struct pgfeed_stage *next = d->base.next;
    size_t k;
    int rc = 0;

    if (d->has_held && d->skip > 0) {
        d->has_held = 0;
        count_skipped(d, 1);
    }
    if (d->has_held) {
        rc = next->ops->write(next, (const char *)&d->held, 1);
        if (rc == 0) {
            d->has_held = 0;
            count_taken(d, 1);
        }
    }
    /* A resume drops what was imported, still without a copy. */
    k = n < d->skip ? n : (size_t)d->skip;
    if (rc == 0 && n > k)
        rc = next->ops->write(next, p + k, n - k);
    if (rc == 0) {
        count_skipped(d, k);
        count_taken(d, n - k);
        d->raw_off += n;
    } else if (rc == PGFEED_EAGAIN) {
        d->down_blocked = 1;
        d->up_blocked = 1;
    } else if (rc < 0)
        set_failed(d, rc);
    return rc;
}

static int dec_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct decoder *d = container_of(s, struct decoder, base);
    const unsigned char *u = (const unsigned char *)p;
    int rc;

    if (d->state == ST_FAILED)
        return d->err;
    if (d->state == ST_DONE) {
        pgfeed__fail(d->base.job, "decoder", PGFEED_EINTERNAL, NULL, NULL, "input after its end");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    if (busy(d)) {
        d->up_blocked = 1;
        return PGFEED_EAGAIN;
    }
    if (n == 0)
        return 0;
    if (d->state == ST_SNIFF) {
        if (!d->has_held && n == 1) {
            d->held = u[0];
            d->has_held = 1;
            d->raw_off = 1;
            return 0;
        }
        rc = begin(d, d->has_held ? sniff(d->held, u[0]) : sniff(u[0], u[1]));
        if (rc < 0)
            return rc;
    }
    if (d->state == ST_PLAIN)
        return write_plain(d, p, n);

    if (n > d->in_cap) { /* larger than the source ever writes; keep room for all of it */
        unsigned char *bigger = malloc(n);
        if (!bigger)
            return fail_nomem(d);
        free(d->in);
        d->in = bigger;
        d->in_cap = n;
    }
    d->src = u;
    d->src_left = n;
    rc = pump(d);
    if (rc == PGFEED_EAGAIN) {
        /* We took the bytes: keep the unconsumed rest, then answer EAGAIN until drained. */
        if (d->src_left > 0)
            memcpy(d->in, d->src, d->src_left);
        d->src = d->in;
        return 0;
    }
    return rc;
}

static int dec_finish(struct pgfeed_stage *s)
{
    struct decoder *d = container_of(s, struct decoder, base);
    struct pgfeed_stage *next = d->base.next;
    int rc;

    if (d->state == ST_FAILED)
        return d->err;
    if (d->state == ST_DONE)
        return 0;
    if (busy(d)) {
        d->up_blocked = 1;
        return PGFEED_EAGAIN;
    }
    if (d->state == ST_INFLATE || (d->state == ST_TRAIL && d->has_held))
        return fail_truncated(d);
    if (d->state == ST_SNIFF) /* 0 or 1 byte in all */
        d->state = ST_PLAIN;
    if (d->state == ST_PLAIN && d->has_held && d->skip > 0) {
        d->has_held = 0;
        count_skipped(d, 1);
    }
    if (d->skip > 0)
        return fail_short(d);
    if (d->state == ST_PLAIN && d->has_held && (rc = write_plain(d, NULL, 0)) != 0)
        return rc;
    rc = next->ops->finish(next);
    if (rc == PGFEED_EAGAIN) {
        d->down_blocked = 1;
        d->up_blocked = 1;
        return rc;
    }
    if (rc < 0)
        return set_failed(d, rc);
    d->state = ST_DONE;
    return 0;
}

static void dec_resume(struct pgfeed_stage *s)
{
    struct decoder *d = container_of(s, struct decoder, base);

    d->down_blocked = 0;
    if (d->state == ST_FAILED || d->state == ST_DONE)
        return;
    /*
     * EAGAIN: downstream resumes us again later. After a failure (the job is
     * stopping) upstream is still woken, so its next call gets the error.
     */
    if ((d->state == ST_INFLATE || d->state == ST_TRAIL) && pump(d) == PGFEED_EAGAIN)
        return;
    if (d->up_blocked) {
        d->up_blocked = 0;
        pgfeed__stage_resume_upstream(s);
    }
}

static void dec_destroy(struct pgfeed_stage *s)
{
    struct decoder *d = container_of(s, struct decoder, base);

    if (d->zinit)
        inflateEnd(&d->zs);
    free(d->in);
    free(d->out);
    free(d);
}

static const struct pgfeed_stage_ops decoder_ops = {
    .name = "decoder",
    .write = dec_write,
    .finish = dec_finish,
    .resume = dec_resume,
    .stop = NULL,
    .destroy = dec_destroy,
};

void pgfeed__decoder_skip_output(struct pgfeed_stage *s, uint64_t n)
{
    struct decoder *d = container_of(s, struct decoder, base);

    d->skip += n;
    d->skip_total += n;
}

int pgfeed__decoder_new(struct pgfeed_job *job, size_t out_chunk, struct pgfeed_stage **out)
{
    struct decoder *d;

    *out = NULL;
    if (out_chunk == 0 || out_chunk > UINT_MAX)
        return UV_EINVAL;
    d = calloc(1, sizeof *d);
    if (!d)
        return UV_ENOMEM;
    d->out = malloc(out_chunk);
    if (!d->out) {
        free(d);
        return UV_ENOMEM;
    }
    d->out_cap = out_chunk;
    d->base.ops = &decoder_ops;
    d->base.job = job;
    d->state = ST_SNIFF;
    *out = &d->base;
    return 0;
}
