/*
 * decode_gzip.c -- the decoder stage: turns the source's bytes into plain text.
 *
 * It owns compression detection, gzip members and their trailers, the zlib
 * inflate stream, the access points it records, and the inflated bytes until
 * the parser has taken them. It leaves reading (and bytes_read) to the
 * source, lines and fields to the parser, the scheduling of resume() to the
 * context (ctx.c), the restart point blob and the ring of access points to
 * restart_point.c, and gzip members' deflate data, when the build has a
 * faster engine, to it (decode_engine.h, inflate_isal.c).
 *
 * Detection looks at the first two bytes, never at a name: 1f 8b is gzip; a
 * zlib header (CM 8, CINFO <= 7, no preset dictionary, (CMF << 8 | FLG) % 31
 * == 0) is zlib; anything else, including an input of 0 or 1 byte, is plain
 * and goes downstream untouched (same pointer, no copy), except an input that
 * is the single byte 1f: a gzip file cut after its first byte, reported as
 * truncated. A first write of one byte (a pipe) is held until the second byte
 * arrives. Some text happens to start with a valid zlib header (e.g. "X\t",
 * "80", "x^"); such a file is taken for zlib and fails as corrupt.
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
 * The ring of access points (restart_point.c) and an engine have their own.
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
 *
 * Access points (zlib's examples/zran.c technique; restart_point.c says what
 * a point holds), so that a resumed job need not re-read the compressed file
 * from the start. Once the span (1 MiB) of decoded bytes has passed since
 * the previous point, input is inflated with Z_BLOCK (until then with
 * Z_NO_FLUSH, as each return costs zlib a window update), which makes inflate
 * return at each deflate block boundary (data_type & 128), also right after
 * a gzip/zlib header, so inputs of many small members (bgzip, pigz -i) have
 * points too. At the first boundary that does not end a member's last block
 * (!(data_type & 64)) we record one (zlib keeps the running CRC-32 /
 * Adler-32 in zs.adler for free; the window comes from inflateGetDictionary,
 * taken only then). For plain input every offset is a point.
 *   restart_from() sets a fresh decoder up from a point: raw inflate (-15),
 *   inflatePrime with the unused bits, inflateSetDictionary with the window,
 *   counters at the point's, and (decoded - point) bytes to skip, as for a
 *   re-read. The source then delivers bytes from the partial byte on (from
 *   the point's raw offset when it has no unused bits); that first byte must
 *   equal the one recorded (else PGFEED_ECHANGED). The resumed member is
 *   inflated raw, so zlib checks neither its trailer nor its length: we do
 *   (state CHECK), with the check value carried in the point and continued
 *   over the rest of that member. The next gzip member is read with
 *   windowBits 15+16 again (inflateReset2). bytes_inflated stays equal to
 *   dec_off, the absolute decoded offset: a restart adds the point's decoded
 *   offset to it (the sink uses it as the offset of the last batch's end).
 *
 * Engines (decode_engine.h): with ISA-L (inflate_isal.c) the deflate data of
 * gzip members goes through it; zlib still reads every gzip header (Z_BLOCK
 * stops it right after one), so header errors keep zlib's words and offsets,
 * and zlib streams stay with zlib. The engine inflates raw, so we keep the
 * member's CRC-32 and read its trailer (state CHECK) as for a resumed member.
 * A point means the same with either engine (restart_point.c has the blob).
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "decode_engine.h"
#include "internal.h"

enum dec_state { ST_SNIFF, ST_PLAIN, ST_INFLATE, ST_CHECK, ST_TRAIL, ST_DONE, ST_FAILED };
enum dec_kind { KIND_PLAIN, KIND_GZIP, KIND_ZLIB };

#define SPAN    ((size_t)1 << 20) /* decoded bytes at least between two access points */
#define WINSIZE PGFEED_RP_WINSIZE

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

    /* Restart points. */
    struct pgfeed_rp_ring ring;
    size_t span;             /* SPAN, or a test's */
    unsigned char last_byte; /* the last input byte inflate consumed */
    uint64_t member_raw;     /* where the current gzip member (zlib stream) starts */
    uint64_t member_no;
    /*
     * A member resumed from a restart point is inflated raw: zlib then keeps
     * no check value and does not read the trailer, so we do (ST_CHECK).
     */
    int raw_member;
    uint32_t check;       /* raw_member: CRC-32 / Adler-32 of the member so far */
    uint64_t mlen_base;   /* the member's decoded bytes before zs.total_out began */
    unsigned char trl[8]; /* ST_CHECK: the trailer so far */
    unsigned trl_n;
    int resumed;     /* raw_member, resumed from a restart point (else: an engine's member) */
    int expect_byte; /* restarted: the first input byte must be expected */
    unsigned char expected;
    int restarted;
    int began;                               /* the kind is known (begin() ran) */
    const struct decode_engine_ops *engine;  /* for gzip deflate data, or NULL: zlib */
    const struct decode_engine_ops *eng_ops; /* the one that made eng */
    struct decode_engine *eng;
    int hdr_pending;      /* zlib is reading a gzip header; the engine takes over after it */
    int in_engine;        /* the current member's deflate data goes through the engine */
    uint64_t engine_made; /* the member's bytes the engine inflated */
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
    pgfeed__fail(d->base.ctx, "decoder", code, detail, hint, "%s", msg);
    pgfeed__fail_at(d->base.ctx, 0, 0, NULL, dec_at, raw_at);
    free(detail);
    return set_failed(d, code);
}

static int fail_nomem(struct decoder *d)
{
    return fail(d, UV_ENOMEM, NULL, NULL, "out of memory", d->dec_off, d->raw_off);
}

/* "corrupt gzip data": lib ("zlib", "ISA-L") reported what at raw_at. */
static int fail_corrupt(struct decoder *d, const char *lib, const char *what, uint64_t raw_at,
                        uint64_t dec_at)
{
    char *detail;
    char msg[64];

    snprintf(msg, sizeof msg, "corrupt %s data", kind_name(d));
    if (strstr(what, "incorrect data check") || strstr(what, "incorrect length check"))
        pgfeed__ctx_damaged_member(d->base.ctx); /* its rows may be committed already */
    detail =
        pgfeed__strdup_printf("%s reported \"%s\" at compressed byte %llu, decoded byte %llu.", lib,
                              what, (unsigned long long)raw_at, (unsigned long long)dec_at);
    return fail(d, PGFEED_EDECODE, detail,
                d->kind == KIND_GZIP
                    ? "Download the file again; \"gzip -t\" checks a copy before it is imported."
                    : "Download the file again.",
                msg, dec_at, raw_at);
}

static int fail_zlib(struct decoder *d, int zret, uint64_t dec_at)
{
    char *detail;

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
    return fail_corrupt(d, "zlib", d->zs.msg ? d->zs.msg : zError(zret), d->raw_off, dec_at);
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

/* The whole input is one byte, 1f: no text file is that, a gzip file cut short is. */
static int fail_lone_magic(struct decoder *d)
{
    return fail(
        d, PGFEED_EDECODE,
        pgfeed__strdup_printf(
            "The input is a single byte, 0x1f, the first of the two that begin gzip data; the file is probably truncated."),
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
    pgfeed__ctx_stats(d->base.ctx)->bytes_inflated += k;
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
    d->last_byte = d->held;
    if (zret != Z_OK)
        return fail_zlib(d, zret, d->dec_off);
    if (d->zs.avail_in != 0 || d->zs.avail_out != d->out_cap) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "zlib did not take a header byte");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    return 0;
}

static const struct access_point *newest_point(const struct decoder *d)
{
    return pgfeed__rp_ring_newest(&d->ring);
}

/* The current member's decoded bytes so far. */
static uint64_t member_len(const struct decoder *d)
{
    return d->mlen_base + d->zs.total_out + d->engine_made;
}

/* raw_member: the check value goes on over out[from, to). Returns to. */
static size_t check_out(struct decoder *d, size_t from, size_t to)
{
    const unsigned char *p = (const unsigned char *)d->out + from;

    if (to <= from)
        return to;
    if (d->kind == KIND_GZIP && d->engine) { /* the same CRC-32, faster */
        d->check = d->engine->crc32(d->check, p, to - from);
        return to;
    }
    d->check = (uint32_t)(d->kind == KIND_GZIP ? crc32(d->check, p, (uInt)(to - from))
                                               : adler32(d->check, p, (uInt)(to - from)));
    return to;
}

/* Stores a point of the current member, its window already in the ring's next slot. */
static void push_point(struct decoder *d, uint64_t raw, uint64_t dec, uint64_t mlen, uint32_t check,
                       unsigned bits, unsigned char byte, unsigned wlen)
{
    struct access_point p = {.raw = raw,
                             .dec = dec,
                             .member_raw = d->member_raw,
                             .member_no = d->member_no,
                             .mlen = mlen,
                             .check = check,
                             .bits = (unsigned char)bits,
                             .byte = bits ? byte : 0,
                             .wlen = wlen};

    pgfeed__rp_ring_push(&d->ring, &p);
}

/* At a deflate block boundary: records an access point at decoded offset dec. */
static void record_point(struct decoder *d, uint64_t dec)
{
    unsigned char *w = pgfeed__rp_ring_window(&d->ring);
    uInt wlen = 0;

    /* Without memory for it, or (cannot happen) a window, no point: a resume re-reads more. */
    if (!w || inflateGetDictionary(&d->zs, w, &wlen) != Z_OK || wlen > WINSIZE)
        return;
    push_point(d, d->raw_off, dec, member_len(d), d->raw_member ? d->check : (uint32_t)d->zs.adler,
               (unsigned)(d->zs.data_type & 7), d->last_byte, wlen);
}

/* Decoded bytes made (out[0, made)): those still to skip are dropped, the rest await downstream. */
static void take_output(struct decoder *d, size_t made)
{
    if (d->skip > 0 && made > 0) {
        size_t k = made < d->skip ? made : (size_t)d->skip;
        count_skipped(d, k);
        made -= k;
        if (made > 0)
            memmove(d->out, d->out + k, made);
    }
    d->out_len = made;
}

static int engine_start(struct decoder *d);
static int engine_step(struct decoder *d);

/*
 * Inflates src into out until out is full, src is used up, or the stream
 * ends, recording access points at block boundaries on the way. 0 or the
 * failure code.
 */
static int inflate_step(struct decoder *d)
{
    uInt avail = d->src_left > UINT_MAX ? UINT_MAX : (uInt)d->src_left;
    uint64_t dec_at = d->dec_off; /* decoded offset of out[0] */
    size_t used, made, checked = 0;
    int zret;
    int hdr = d->hdr_pending; /* zlib reads the header, the engine the rest */

    if (d->in_engine)
        return engine_step(d);

    d->zs.next_in = d->src;
    d->zs.avail_in = avail;
    d->zs.next_out = (unsigned char *)d->out;
    d->zs.avail_out = (uInt)d->out_cap;
    for (;;) {
        uInt before = d->zs.avail_in;
        /*
         * Z_BLOCK only once a point is due: it returns at every block
         * boundary, and each return costs zlib a window update.
         */
        made = d->out_cap - d->zs.avail_out;
        int due = dec_at + made - newest_point(d)->dec >= d->span;

        zret = inflate(&d->zs, due || hdr ? Z_BLOCK : Z_NO_FLUSH);
        if (d->zs.avail_in != before) {
            d->raw_off += before - d->zs.avail_in;
            d->last_byte = d->zs.next_in[-1];
        }
        /* Z_BLOCK returns at each block end: go on unless out or src ran out. */
        if (zret != Z_OK || !(d->zs.data_type & 128))
            break;
        made = d->out_cap - d->zs.avail_out;
        if (!(d->zs.data_type & 64) && dec_at + made - newest_point(d)->dec >= d->span) {
            if (d->raw_member)
                checked = check_out(d, checked, made);
            record_point(d, dec_at + made);
        }
        if (hdr || d->zs.avail_in == 0 || d->zs.avail_out == 0)
            break;
    }
    used = avail - d->zs.avail_in;
    made = d->out_cap - d->zs.avail_out;
    d->src += used;
    d->src_left -= used;
    d->more_out = d->zs.avail_out == 0;
    if (d->raw_member)
        check_out(d, checked, made);
    take_output(d, made);
    switch (zret) {
    case Z_OK:
        if (hdr && (d->zs.data_type & 128)) /* the header is read */
            return engine_start(d);
        return 0;
    case Z_STREAM_END:
        d->more_out = 0;
        if (d->raw_member) { /* zlib leaves the trailer to us */
            d->state = ST_CHECK;
            d->trl_n = 0;
            return 0;
        }
        d->state = ST_TRAIL;
        d->padding = 0;
        d->stream_end = d->raw_off;
        return 0;
    case Z_BUF_ERROR: /* no progress possible: zlib needs more input */
        d->more_out = 0;
        if (used == 0 && made == 0 && d->src_left > 0) {
            pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                         "zlib made no progress");
            return set_failed(d, PGFEED_EINTERNAL);
        }
        return 0;
    default:
        return fail_zlib(d, zret, dec_at + (d->out_cap - d->zs.avail_out));
    }
}

static uint32_t get32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get32le(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/*
 * ST_CHECK, after a member inflated raw (resumed from a restart point, or by
 * an engine): reads its trailer from src (trl may hold its first bytes already)
 * and checks it as zlib would have.
 */
static int check_trailer(struct decoder *d)
{
    unsigned need = d->kind == KIND_GZIP ? 8 : 4;
    uint32_t check, want;
    uint64_t at; /* the compressed offset of the field found wrong */
    char *detail;

    while (d->trl_n < need && d->src_left > 0) {
        d->trl[d->trl_n++] = *d->src++;
        d->src_left--;
        d->raw_off++;
    }
    at = d->raw_off - d->trl_n;
    if (!d->resumed) {
        /* Read from its start: zlib's words, and its offsets (just past the field). */
        uint64_t dec = d->dec_off + d->out_len;
        check = d->trl_n < 4 ? 0 : d->kind == KIND_GZIP ? get32le(d->trl) : get32be(d->trl);
        if (d->trl_n >= 4 && check != d->check) /* zlib checks it before the length comes */
            return fail_corrupt(d, "zlib", "incorrect data check", at + 4, dec);
        if (d->trl_n < need)
            return 0;
        if (d->kind == KIND_GZIP && get32le(d->trl + 4) != (uint32_t)member_len(d))
            return fail_corrupt(d, "zlib", "incorrect length check", at + 8, dec);
        goto good;
    }
    if (d->trl_n < need)
        return 0;
    check = d->kind == KIND_GZIP ? get32le(d->trl) : get32be(d->trl);
    if (check != d->check) {
        detail = pgfeed__strdup_printf(
            "The %s stored at compressed byte %llu is %08lx, but the data decoded to %08lx (the %s was resumed from a checkpoint).",
            d->kind == KIND_GZIP ? "CRC-32" : "Adler-32", (unsigned long long)at,
            (unsigned long)check, (unsigned long)d->check,
            d->kind == KIND_GZIP ? "member" : "stream");
        goto bad;
    }
    want = (uint32_t)member_len(d);
    if (d->kind == KIND_GZIP && (check = get32le(d->trl + 4)) != want) {
        detail = pgfeed__strdup_printf(
            "The length stored at compressed byte %llu is %lu, but the member decoded to %lu bytes (mod 2^32; it was resumed from a checkpoint).",
            (unsigned long long)(at + 4), (unsigned long)check, (unsigned long)want);
        at += 4;
        goto bad;
    }
good:
    d->state = ST_TRAIL;
    d->padding = 0;
    d->stream_end = d->raw_off;
    return 0;
bad:
    return fail(d, PGFEED_EDECODE, detail,
                d->kind == KIND_GZIP
                    ? "Download the file again; \"gzip -t\" checks a copy before it is imported."
                    : "Download the file again.",
                d->kind == KIND_GZIP ? "corrupt gzip data" : "corrupt zlib data", d->dec_off, at);
}

/* Hands the deflate data of the member to the engine, from raw_off on. 0 or UV_ENOMEM (failed). */
static int engine_start(struct decoder *d)
{
    if (!d->eng) {
        if (!(d->eng = d->engine->create()))
            return fail_nomem(d);
        d->eng_ops = d->engine;
    }
    d->eng_ops->reset(d->eng, d->raw_off);
    d->hdr_pending = 0;
    d->in_engine = 1;
    d->raw_member = 1;
    d->check = 0;
    d->engine_made = 0;
    return 0;
}

static int engine_due(struct engine_io *io, uint64_t dec)
{
    struct decoder *d = io->arg;

    return dec - newest_point(d)->dec >= d->span;
}

/*
 * The engine sits at a block boundary, io->made bytes into out: the check
 * value catches up, and p, unless it is NULL or no use, becomes an access
 * point. 1 when recorded.
 */
static int engine_boundary(struct engine_io *io, const struct engine_point *p)
{
    struct decoder *d = io->arg;
    const struct access_point *last = newest_point(d);
    uint64_t mlen = member_len(d) + io->made;
    size_t tail;
    unsigned char *w;

    io->checked = check_out(d, io->checked, io->made);
    if (!p || (!last->start && last->raw == p->raw && last->bits == p->bits)) /* the same */
        return 0;
    if (p->wlen != (mlen < WINSIZE ? mlen : WINSIZE))
        return 0;
    if (!(w = pgfeed__rp_ring_window(&d->ring)))
        return 0;
    memcpy(w, p->window, p->wlen);
    tail = io->made < p->wlen ? io->made : p->wlen;
    if (memcmp(w + p->wlen - tail, d->out + io->made - tail, tail) != 0)
        return 0;
    push_point(d, p->raw, io->dec_at + io->made, mlen, d->check, p->bits, p->byte, p->wlen);
    return 1;
}

/*
 * inflate_step for a member's deflate data with the engine: inflates src
 * into out until out is full, src is used up or the deflate data ends (then
 * on to its trailer), recording access points when they are due. 0 or the
 * failure.
 */
static int engine_step(struct decoder *d)
{
    struct engine_io io = {
        .src = d->src,
        .src_left = d->src_left,
        .raw_off = d->raw_off,
        .out = (unsigned char *)d->out,
        .out_cap = d->out_cap,
        .dec_at = d->dec_off,
        .span = d->span,
        .due = engine_due,
        .at_boundary = engine_boundary,
        .arg = d,
    };
    int rc = d->eng_ops->step(d->eng, &io);

    d->src = io.src;
    d->src_left = io.src_left;
    d->raw_off = io.raw_off;
    d->engine_made += io.made;
    if (rc == ENGINE_CORRUPT)
        return fail_corrupt(d, d->eng_ops->name, io.msg, d->raw_off, d->dec_off + io.made);
    if (rc != ENGINE_OK) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL, "%s", io.msg);
        return set_failed(d, PGFEED_EINTERNAL);
    }
    d->more_out = io.more_out;
    check_out(d, io.checked, io.made);
    take_output(d, io.made);
    if (!io.ended)
        return 0;
    d->state = ST_CHECK;
    memcpy(d->trl, io.trl, io.trl_n);
    d->trl_n = io.trl_n;
    /* Read from its start, a bad trailer fails before the output goes, as with zlib. */
    return d->resumed ? 0 : check_trailer(d);
}

/* ST_TRAIL: consumes padding, or starts the next member, from src. */
static int trail(struct decoder *d)
{
    while (d->src_left > 0) {
        unsigned char b = *d->src;

        if (d->has_held) { /* a 1f after a member end */
            if (b != 0x8b)
                return fail_garbage(d, d->raw_off - 1, d->held);
            /* windowBits again: a member resumed raw may end here. */
            if (inflateReset2(&d->zs, 15 + 16) != Z_OK) {
                pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                             "could not reset zlib for the next gzip member");
                return set_failed(d, PGFEED_EINTERNAL);
            }
            d->state = ST_INFLATE;
            d->raw_member = 0;
            d->resumed = 0;
            d->mlen_base = 0;
            d->in_engine = 0;
            d->engine_made = 0;
            d->hdr_pending = d->engine != NULL;
            d->member_raw = d->raw_off - 1;
            d->member_no++;
            pgfeed__ctx_member_start(d->base.ctx, d->dec_off, d->member_raw);
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
        if (d->state == ST_CHECK) {
            if (d->src_left == 0)
                return 0;
            if ((rc = check_trailer(d)) != 0)
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

/* window_bits 0: as the kind says (15 + 16 or 15); -15 for a restart point. */
static int begin(struct decoder *d, enum dec_kind kind, int window_bits)
{
    int zret;

    d->kind = kind;
    d->began = 1;
    if (kind == KIND_PLAIN) {
        d->state = ST_PLAIN;
        return 0;
    }
    d->in = malloc(d->out_cap);
    if (!d->in)
        return fail_nomem(d);
    d->in_cap = d->out_cap;
    if (window_bits == 0)
        window_bits = kind == KIND_GZIP ? 15 + 16 : 15;
    zret = inflateInit2(&d->zs, window_bits);
    if (zret == Z_MEM_ERROR)
        return fail_nomem(d);
    if (zret != Z_OK) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "could not initialize zlib: %s", zError(zret));
        return set_failed(d, PGFEED_EINTERNAL);
    }
    d->zinit = 1;
    d->state = ST_INFLATE;
    d->hdr_pending = d->engine && window_bits == 15 + 16;
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
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL, "input after its end");
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
        rc = begin(d, d->has_held ? sniff(d->held, u[0]) : sniff(u[0], u[1]), 0);
        if (rc < 0)
            return rc;
    }
    if (d->expect_byte) { /* restarted with unused bits: the partial byte comes first */
        if (u[0] != d->expected) {
            char *detail = pgfeed__strdup_printf(
                "The source byte at %llu is 0x%02x, but the checkpoint recorded 0x%02x there.",
                (unsigned long long)d->raw_off, u[0], d->expected);
            return fail(d, PGFEED_ECHANGED, detail,
                        "The source seems to have changed; run with --restart to import it again.",
                        "the source differs from the checkpoint", d->dec_off, d->raw_off);
        }
        d->expect_byte = 0;
        d->raw_off++;
        p++;
        u++;
        if (--n == 0)
            return 0;
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
    if (d->state == ST_INFLATE || d->state == ST_CHECK || (d->state == ST_TRAIL && d->has_held))
        return fail_truncated(d);
    if (d->state == ST_SNIFF && d->has_held && d->held == 0x1f)
        return fail_lone_magic(d);
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
    if ((d->state == ST_INFLATE || d->state == ST_CHECK || d->state == ST_TRAIL) &&
        pump(d) == PGFEED_EAGAIN)
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
    if (d->eng)
        d->eng_ops->destroy(d->eng);
    free(d->in);
    free(d->out);
    pgfeed__rp_ring_free(&d->ring);
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

int pgfeed__decoder_new(struct pgfeed_ctx *ctx, size_t out_chunk, struct pgfeed_stage **out)
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
    d->base.ctx = ctx;
    d->state = ST_SNIFF;
    d->span = SPAN;
    pgfeed__rp_ring_init(&d->ring, NULL); /* the start of the input */
    d->engine = PGFEED_GZIP_ENGINE;
    *out = &d->base;
    return 0;
}

void pgfeed__decoder_set_span(struct pgfeed_stage *s, size_t span)
{
    container_of(s, struct decoder, base)->span = span;
}

int pgfeed__decoder_use_isal(struct pgfeed_stage *s, int on)
{
    container_of(s, struct decoder, base)->engine = on ? PGFEED_GZIP_ENGINE : NULL;
    return PGFEED_GZIP_ENGINE_BUILT;
}

int pgfeed__decoder_restart_point(struct pgfeed_stage *s, uint64_t decoded, struct pgfeed_buf *out,
                                  uint64_t *raw_offset)
{
    struct decoder *d = container_of(s, struct decoder, base);
    struct access_point plain;

    if (d->kind == KIND_PLAIN && (d->began || d->state == ST_PLAIN || d->state == ST_DONE)) {
        /* Plain: every offset is a point. */
        memset(&plain, 0, sizeof plain);
        plain.raw = plain.dec = decoded;
        *raw_offset = decoded;
        return pgfeed__rp_encode(&plain, PGFEED_RP_PLAIN, NULL, out);
    }
    return pgfeed__rp_ring_blob(
        &d->ring, decoded, d->kind == KIND_GZIP ? PGFEED_RP_GZIP : PGFEED_RP_ZLIB, out, raw_offset);
}

/* restart_from: inflating goes on from point p, its window in slot 0. 0 or the failure. */
static int prime(struct decoder *d, const struct access_point *p, enum pgfeed_rp_mode mode)
{
    if (mode == PGFEED_RP_GZIP && d->engine) {
        /* The engine inflates the member; zlib stays ready for the next one's header. */
        struct engine_point ep = {p->raw, p->bits, p->byte, d->ring.windows, p->wlen};
        int rc = engine_start(d);
        if (rc != 0)
            return rc;
        if (d->eng_ops->prime(d->eng, &ep) != 0) {
            pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                         "%s refused a restart point", d->eng_ops->name);
            return set_failed(d, PGFEED_EINTERNAL);
        }
        return 0;
    }
    if ((p->bits && inflatePrime(&d->zs, p->bits, p->byte >> (8 - p->bits)) != Z_OK) ||
        (p->wlen && inflateSetDictionary(&d->zs, d->ring.windows, p->wlen) != Z_OK)) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "zlib refused a restart point");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    return 0;
}

static int fail_blob(struct decoder *d, uint64_t decoded, char *detail)
{
    return fail(d, PGFEED_ECHECKPOINT, detail,
                "Run with --restart to import the source again from its start.",
                "the checkpoint's decoder restart point is not usable", decoded, 0);
}

int pgfeed__decoder_restart_from(struct pgfeed_stage *s, const void *blob, size_t n,
                                 uint64_t decoded)
{
    struct decoder *d = container_of(s, struct decoder, base);
    struct access_point p;
    enum pgfeed_rp_mode mode;
    char *detail;
    int rc;

    if (d->state != ST_SNIFF || d->has_held || d->raw_off != 0 || d->restarted) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "restart point set after input or twice");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    if ((rc = pgfeed__rp_decode(blob, n, decoded, &p, &mode, &detail)) != 0)
        return fail_blob(d, decoded, detail);

    d->restarted = 1;
    switch (mode) {
    case PGFEED_RP_START: /* what a re-read does */
        break;
    case PGFEED_RP_PLAIN:
        begin(d, KIND_PLAIN, 0);
        d->raw_off = p.raw;
        break;
    default:
        if ((rc = begin(d, mode == PGFEED_RP_GZIP ? KIND_GZIP : KIND_ZLIB, -15)) != 0)
            return rc;
        if (!(d->ring.windows = malloc((size_t)PGFEED_RP_RING * WINSIZE)))
            return fail_nomem(d);
        if ((rc = pgfeed__rp_window(blob, &p, d->ring.windows, &detail)) == UV_ENOMEM)
            return fail_nomem(d);
        if (rc != 0)
            return fail_blob(d, decoded, detail);
        if ((rc = prime(d, &p, mode)) != 0)
            return rc;
        d->raw_member = 1;
        d->resumed = 1;
        d->check = p.check;
        d->mlen_base = p.mlen;
        d->member_raw = p.member_raw;
        d->member_no = p.member_no;
        pgfeed__ctx_member_start(d->base.ctx, p.dec - p.mlen, p.member_raw);
        d->raw_off = p.raw - (p.bits ? 1 : 0);
        d->expect_byte = p.bits != 0;
        d->expected = p.byte;
        d->stream_end = p.raw;
        /* The point is the restarted decoder's first: slot 0, window included. */
        pgfeed__rp_ring_init(&d->ring, &p);
        break;
    }
    d->dec_off = p.dec;
    pgfeed__ctx_stats(d->base.ctx)->bytes_inflated += p.dec;
    d->skip = decoded - p.dec;
    d->skip_total = decoded;
    return 0;
}
