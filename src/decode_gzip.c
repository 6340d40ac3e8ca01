/*
 * decode_gzip.c -- the decoder stage: turns the source's bytes into plain text.
 *
 * It owns compression detection, gzip members and their trailers, what comes
 * between zstd frames and bzip2 and xz streams, and the decoded bytes until
 * the parser has taken them. It leaves reading (and
 * bytes_read) to the source, lines and fields to the parser, the scheduling
 * of resume() to the context (ctx.c), running the engines, the member's check
 * value and the access points to the inflater (inflater.c), decompressing
 * zstd, bzip2 and xz to their codecs (decode_codec.h), and the restart point
 * blob to restart_point.c.
 *
 * Detection looks at the first two bytes, never at a name: 1f 8b is gzip; a
 * zlib header (CM 8, CINFO <= 7, no preset dictionary, (CMF << 8 | FLG) % 31
 * == 0) is zlib; anything else, including an input of 0 or 1 byte, is plain
 * and goes downstream untouched (same pointer, no copy), except an input that
 * is the single byte 1f: a gzip file cut after its first byte, reported as
 * truncated. A first write of one byte (a pipe) is held until the second byte
 * arrives. Some text happens to start with a valid zlib header (e.g. "X\t",
 * "80", "x^"); such a file is taken for zlib and fails as corrupt. Then
 * zstd (28 b5 2f fd, or a skippable frame's 5x 2a 4d 18), xz (fd 37 7a 58 5a
 * 00) and bzip2 ("BZh", the level 1-9, and the magic of a block or of the
 * stream's end: 10 bytes, since text may well start with "BZh"): the first
 * bytes are held (at most SNIFF_MAX) while they may still begin one of them;
 * an input that ends first is plain. A format the build lacks fails with a
 * message naming it.
 *
 * zstd, bzip2, xz: the codec reads one stream (frame) at a time; between
 * streams (ST_TRAIL) we hold the next one's magic until it is whole, so that
 * anything else is "trailing garbage" at its first byte; xz alone allows zero
 * padding between and after streams. The libraries check their own
 * checksums and do not say where in a step's input they found damage: such
 * errors are placed at the end of the input given to that step. Each stream
 * end is a restart point (when the span has passed): the next stream needs
 * nothing of the ones before, so a restart reads from there with a fresh
 * codec (ST_TRAIL, expecting a magic; anything else is a changed source).
 * Inside an xz stream, each block boundary the codec reports (io.boundary)
 * is one too (mode xz block, with the stream's check type): a restart has
 * the codec read on from that block (resume). So is each block boundary
 * inside a bzip2 stream, which the codec places itself (io.at: a bit
 * offset, as raw offset and partial byte, the combined CRC so far and the
 * level; mode bzip2 block): a restart reads from the partial byte, which
 * must be the recorded one (as for gzip), and the codec reads on from the
 * block (resume). Any other single stream (zstd, xz of one block) restarts
 * from the input's start (skip), as stdin does.
 *
 * What may follow the end of a stream, our policy, stricter than gzread()'s:
 *   gzip  another member (1f 8b: zlib reads its header and it goes on, as
 *         pigz, bgzip and `cat a.gz b.gz` produce), or zero bytes up to the
 *         end (tape or dd padding). Anything else, a member after the padding
 *         included, is "trailing garbage after compressed data" at the first
 *         offending byte.
 *   zlib  one stream, then only zero padding.
 * Input that ends inside a member, or after a lone 1f following a member, is
 * truncation, reported by finish(). Each member's CRC-32 (or the Adler-32) is
 * checked only at its end, after earlier bytes went downstream: by zlib, or,
 * for a member inflated raw (by a faster engine, or resumed from a restart
 * point), here (state CHECK), in zlib's words at zlib's offsets when the
 * member was read from its start.
 *
 * Buffers, sized at creation, never per chunk:
 *   out   out_chunk bytes, one inflate output buffer, handed downstream in one
 *         write when full and at the end of each input; kept while downstream
 *         answers EAGAIN.
 *   in    allocated when the input turns out to be compressed, out_chunk
 *         bytes (the source never writes more), grown once if a larger write
 *         comes: the unconsumed part of a write cut short by downstream's
 *         EAGAIN.
 *   held  SNIFF_MAX bytes: the first bytes before detection, a 1f after a
 *         member, or the next stream's magic after a zstd/bzip2/xz stream.
 * The inflater (its engines, the ring of access points) has its own.
 *
 * States: SNIFF -> PLAIN | INFLATE; INFLATE -> TRAIL at each stream end
 * (through CHECK, the trailer, for a member inflated raw); TRAIL -> INFLATE at
 * the next member; TRAIL may be in padding (only zeros from there on); finish
 * accepted downstream -> DONE; any -> FAILED (the job's error is set; its code
 * is returned from then on). Across states, a backlog (pending out,
 * unconsumed input, engine output not yet drained) or a downstream EAGAIN not
 * yet followed by resume() makes write() and finish() answer EAGAIN; resume()
 * drains it, then resumes upstream if we answered EAGAIN to it (also when
 * draining failed, so that its next call gets the error).
 *
 * Offsets for errors: raw_off counts compressed bytes consumed (held bytes
 * included), dec_off the decoded bytes handed downstream or skipped.
 *
 * A resumed job that re-reads its source from the start asks us to skip the
 * decoded bytes it already imported (pgfeed__decoder_skip_output): they are
 * inflated and counted in dec_off and bytes_inflated, but not handed on. An
 * input that ends before they are all skipped is PGFEED_ECHANGED.
 *
 * A resumed job that need not re-read the compressed file from its start
 * (the inflater's first comment has the access points) sets a fresh decoder
 * up from a restart point (restart_from): the inflater primed from it,
 * counters at the point's, and (decoded - point) bytes to skip, as for a
 * re-read. The source then delivers bytes from the point's partial byte on
 * (from its raw offset when it has no unused bits); that first byte must
 * equal the one recorded (else PGFEED_ECHANGED). bytes_inflated stays equal
 * to dec_off, the absolute decoded offset: a restart adds the point's decoded
 * offset to it (the sink uses it as the offset of the last batch's end). For
 * plain input every offset is a point.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"
#include "inflater.h"

enum dec_state { ST_SNIFF, ST_PLAIN, ST_INFLATE, ST_CHECK, ST_TRAIL, ST_DONE, ST_FAILED };
enum dec_kind { KIND_PLAIN, KIND_GZIP, KIND_ZLIB, KIND_ZSTD, KIND_BZIP2, KIND_XZ, KIND_UNDECIDED };

#define SPAN       ((size_t)1 << 20) /* decoded bytes at least between two access points */
#define SNIFF_MAX  10                /* bytes detection may need: bzip2's magic and first block's */
#define MAX_WINDOW ((uint64_t)128 << 20) /* default limit of a zstd frame's window */

struct decoder {
    struct pgfeed_stage base;
    enum dec_state state;
    enum dec_kind kind;
    int err;          /* ST_FAILED: the code every call returns */
    int down_blocked; /* downstream answered EAGAIN and has not resumed us yet */
    int up_blocked;   /* we answered EAGAIN upstream and owe it a resume */
    int more_out;     /* the last step filled out: the engine may have more */
    int padding;      /* ST_TRAIL: zero padding began; only zeros may follow */
    size_t held_n;
    unsigned char held[SNIFF_MAX]; /* before detection, or the next stream's first bytes */
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
    uint64_t stream_end;  /* raw_off at the last stream end */
    struct inflater inf;  /* engines, check value, access points */
    unsigned char trl[8]; /* ST_CHECK: the trailer so far */
    unsigned trl_n;
    int resumed;     /* the member was resumed from a restart point (else read from its start) */
    int expect_byte; /* restarted: the first input byte must be expected */
    unsigned char expected;
    int restarted;
    int began;                            /* the kind is known (begin() ran) */
    const struct decode_codec_ops *codec; /* zstd, bzip2, xz: the codec, else NULL */
    struct decode_codec *cx;
    uint64_t max_window;
    int fresh; /* restarted at a stream boundary, and no stream begun since */
    uint64_t cx_raw,
        cx_dec; /* where the codec's input and output began: its stream, or a restart */
};

static const char *kind_name(const struct decoder *d)
{
    static const char *const names[] = {"plain", "gzip", "zlib", "zstd", "bzip2", "xz"};

    return d->kind < KIND_UNDECIDED ? names[d->kind] : "undecided";
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

/* Something that cannot happen did: msg, without positions. */
static int fail_internal(struct decoder *d, const char *msg)
{
    pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL, "%s", msg);
    return set_failed(d, PGFEED_EINTERNAL);
}

/* "corrupt gzip data": lib ("zlib", "ISA-L") reported what at raw_at. */
static int fail_corrupt(struct decoder *d, const char *lib, const char *what, uint64_t raw_at,
                        uint64_t dec_at)
{
    char *detail;
    char msg[64], hint[100];

    snprintf(msg, sizeof msg, "corrupt %s data", kind_name(d));
    /* Its rows may be committed already: a codec's checks may come at a block's or stream's end. */
    if (strstr(what, "incorrect data check") || strstr(what, "incorrect length check") || d->codec)
        pgfeed__ctx_damaged_member(d->base.ctx);
    detail =
        pgfeed__strdup_printf("%s reported \"%s\" at compressed byte %llu, decoded byte %llu.", lib,
                              what, (unsigned long long)raw_at, (unsigned long long)dec_at);
    if (d->kind == KIND_ZLIB)
        snprintf(hint, sizeof hint, "Download the file again.");
    else
        snprintf(hint, sizeof hint,
                 "Download the file again; \"%s -t\" checks a copy before it is imported.",
                 kind_name(d));
    return fail(d, PGFEED_EDECODE, detail, hint, msg, dec_at, raw_at);
}

/* The inflater failed with rc (not ENGINE_OK) at decoded offset dec_at. */
static int inflate_failed(struct decoder *d, int rc, const char *msg, uint64_t dec_at)
{
    char *detail;

    switch (rc) {
    case ENGINE_NOMEM:
        return fail_nomem(d);
    case ENGINE_NEED_DICT:
        detail = pgfeed__strdup_printf(
            "The zlib stream asks at compressed byte %llu for a preset dictionary, which is not part of the file.",
            (unsigned long long)d->raw_off);
        return fail(d, PGFEED_EDECODE, detail, NULL,
                    "cannot decompress zlib data that needs a preset dictionary", dec_at,
                    d->raw_off);
    case ENGINE_CORRUPT:
        return fail_corrupt(d, d->inf.cur->ops->name, msg, d->raw_off, dec_at);
    default:
        return fail_internal(d, msg);
    }
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

    if (d->codec)
        detail = pgfeed__strdup_printf(
            "The %s data ends at compressed byte %llu, but the byte at %llu (0x%02x) does not start another %s%s.",
            kind_name(d), (unsigned long long)d->stream_end, (unsigned long long)at, b,
            d->kind == KIND_ZSTD ? "zstd frame"
            : d->kind == KIND_XZ ? "xz stream"
                                 : "bzip2 stream",
            d->codec->padding ? " or stream padding" : "");
    else if (d->kind == KIND_GZIP)
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

/* A step of the inflater over src[0, n), the compressed bytes at raw_off on, into out. */
static void step_io(struct decoder *d, struct engine_io *io, const unsigned char *src, size_t n,
                    uint64_t raw_off)
{
    memset(io, 0, sizeof *io);
    io->src = src;
    io->src_left = n;
    io->raw_off = raw_off;
    io->out = (unsigned char *)d->out;
    io->out_cap = d->out_cap;
    io->dec_at = d->dec_off;
}

static int codec_failed(struct decoder *d, int rc, const struct codec_io *io, uint64_t dec_at,
                        uint64_t raw_at);

/*
 * Gives the engine or codec the held bytes (before raw_off, counted already):
 * header bytes that yield no output.
 */
static int feed_held(struct decoder *d)
{
    struct engine_io io;
    struct codec_io cio;
    int rc;

    if (d->codec) {
        if (d->held_n == 0)
            return 0;
        memset(&cio, 0, sizeof cio);
        cio.src = d->held;
        cio.src_left = d->held_n;
        cio.out = (unsigned char *)d->out;
        cio.out_cap = d->out_cap;
        d->held_n = 0;
        if ((rc = d->codec->step(d->cx, &cio)) != CODEC_OK)
            return codec_failed(d, rc, &cio, d->dec_off, d->raw_off);
        if (cio.src_left != 0 || cio.made != 0 || cio.ended)
            return fail_internal(d, "a codec did not take a stream's first bytes");
        return 0;
    }
    step_io(d, &io, d->held, d->held_n, d->raw_off - d->held_n);
    rc = pgfeed__inflater_step(&d->inf, &io);
    d->held_n = 0;
    if (rc != ENGINE_OK)
        return inflate_failed(d, rc, io.msg, d->dec_off);
    if (io.src_left != 0 || io.made != 0)
        return fail_internal(d, "zlib did not take a header byte");
    return 0;
}

static uint32_t get32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get32le(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The stream (member) ended with its trailer: on to what may follow it. */
static int stream_done(struct decoder *d)
{
    d->state = ST_TRAIL;
    d->padding = 0;
    d->stream_end = d->raw_off;
    return 0;
}

/* The trailer of a member read from its start: zlib's words, and its offsets (just past the field).
 */
static int check_trailer_as_zlib(struct decoder *d, unsigned need, uint64_t at)
{
    uint64_t dec = d->dec_off + d->out_len;
    uint32_t check = d->trl_n < 4 ? 0 : d->kind == KIND_GZIP ? get32le(d->trl) : get32be(d->trl);

    if (d->trl_n >= 4 && check != d->inf.check) /* zlib checks it before the length comes */
        return fail_corrupt(d, "zlib", "incorrect data check", at + 4, dec);
    if (d->trl_n < need)
        return 0;
    if (d->kind == KIND_GZIP &&
        get32le(d->trl + 4) != (uint32_t)pgfeed__inflater_member_len(&d->inf))
        return fail_corrupt(d, "zlib", "incorrect length check", at + 8, dec);
    return stream_done(d);
}

/*
 * ST_CHECK, after a member inflated raw (resumed from a restart point, or by
 * the faster engine): reads its trailer from src (trl may hold its first
 * bytes already) and checks it as zlib would have.
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
    if (!d->resumed)
        return check_trailer_as_zlib(d, need, at);
    if (d->trl_n < need)
        return 0;
    check = d->kind == KIND_GZIP ? get32le(d->trl) : get32be(d->trl);
    want = (uint32_t)pgfeed__inflater_member_len(&d->inf);
    if (check != d->inf.check)
        detail = pgfeed__strdup_printf(
            "The %s stored at compressed byte %llu is %08lx, but the data decoded to %08lx (the %s was resumed from a checkpoint).",
            d->kind == KIND_GZIP ? "CRC-32" : "Adler-32", (unsigned long long)at,
            (unsigned long)check, (unsigned long)d->inf.check,
            d->kind == KIND_GZIP ? "member" : "stream");
    else if (d->kind == KIND_GZIP && (check = get32le(d->trl + 4)) != want) {
        at += 4;
        detail = pgfeed__strdup_printf(
            "The length stored at compressed byte %llu is %lu, but the member decoded to %lu bytes (mod 2^32; it was resumed from a checkpoint).",
            (unsigned long long)at, (unsigned long)check, (unsigned long)want);
    } else
        return stream_done(d);
    return fail(d, PGFEED_EDECODE, detail,
                d->kind == KIND_GZIP
                    ? "Download the file again; \"gzip -t\" checks a copy before it is imported."
                    : "Download the file again.",
                d->kind == KIND_GZIP ? "corrupt gzip data" : "corrupt zlib data", d->dec_off, at);
}

/*
 * The stream ended, its trailer checked by the engine, or the deflate data of
 * a member inflated raw did, whose trailer comes next (its first bytes in io->trl).
 */
static int stream_ended(struct decoder *d, const struct engine_io *io)
{
    if (d->inf.mode != ENGINE_RAW)
        return stream_done(d);
    d->state = ST_CHECK;
    memcpy(d->trl, io->trl, io->trl_n);
    d->trl_n = io->trl_n;
    /* Read from its start, a bad trailer fails before the output goes, as with zlib. */
    return d->resumed ? 0 : check_trailer(d);
}

/*
 * Inflates src into out with the current engine until out is full, src is
 * used up, or what the mode reads ends, recording access points at block
 * boundaries on the way. 0 or the failure code.
 */
static int inflate_step(struct decoder *d)
{
    struct engine_io io;
    uint64_t dec_at = d->dec_off; /* decoded offset of out[0] */
    int rc;

    step_io(d, &io, d->src, d->src_left, d->raw_off);
    rc = pgfeed__inflater_step(&d->inf, &io);
    d->src = io.src;
    d->src_left = io.src_left;
    d->raw_off = io.raw_off;
    /* As it always was: output made before a failure is taken (skips counted) from zlib only. */
    if (rc != ENGINE_OK && d->inf.cur == &d->inf.fast)
        return inflate_failed(d, rc, io.msg, dec_at + io.made);
    d->more_out = io.more_out;
    take_output(d, io.made);
    if (rc != ENGINE_OK)
        return inflate_failed(d, rc, io.msg, dec_at + io.made);
    return io.ended ? stream_ended(d, &io) : 0;
}

/* A 1f after a member end, then b: 1f 8b starts the next gzip member (b stays in src). */
static int next_member(struct decoder *d, unsigned char b)
{
    char msg[ENGINE_MSG] = "";
    int rc;

    if (b != 0x8b)
        return fail_garbage(d, d->raw_off - 1, d->held[0]);
    if ((rc = pgfeed__inflater_next_member(&d->inf, d->raw_off - 1, msg)) != ENGINE_OK)
        return inflate_failed(d, rc, msg, d->dec_off);
    d->state = ST_INFLATE;
    d->resumed = 0;
    pgfeed__ctx_member_start(d->base.ctx, d->dec_off, d->raw_off - 1);
    return feed_held(d);
}

/* ST_TRAIL: consumes padding, or starts the next member, from src. */
static int trail(struct decoder *d)
{
    while (d->src_left > 0) {
        unsigned char b = *d->src;

        if (d->held_n)
            return next_member(d, b);
        if (b == 0)
            d->padding = 1;
        else if (b == 0x1f && d->kind == KIND_GZIP && !d->padding) {
            d->held[0] = b;
            d->held_n = 1;
        } else
            return fail_garbage(d, d->raw_off, b);
        d->src++;
        d->src_left--;
        d->raw_off++;
    }
    return 0;
}

/* ---- zstd, bzip2, xz: a codec (decode_codec.h) reads each stream; we read between them ---- */

/* The stream starting at raw_at needs more memory for its window than max_window allows. */
static int fail_window(struct decoder *d, uint64_t need, uint64_t raw_at)
{
    uint64_t limit = d->max_window + (d->kind == KIND_XZ ? (uint64_t)16 << 20 : 0);
    char *detail = pgfeed__strdup_printf(
        "The %s %s starting at compressed byte %llu needs %llu bytes for its window, more than the limit of %llu bytes%s.",
        kind_name(d), d->kind == KIND_ZSTD ? "frame" : "stream", (unsigned long long)raw_at,
        (unsigned long long)need, (unsigned long long)limit,
        d->kind == KIND_XZ ? " (the window limit plus 16 MiB)" : "");
    char msg[80];

    snprintf(msg, sizeof msg, "cannot decompress %s data with a window larger than the limit",
             kind_name(d));
    return fail(d, PGFEED_EDECODE, detail,
                "Raise the limit with --max-window if the machine has the memory.", msg, d->dec_off,
                raw_at);
}

/* A restarted decoder meets something else than a stream where its restart point is. */
static int fail_changed_stream(struct decoder *d, uint64_t at, unsigned char b)
{
    char *detail = pgfeed__strdup_printf(
        "The source byte at %llu is 0x%02x, but the checkpoint recorded the start of a %s %s there.",
        (unsigned long long)at, b, kind_name(d), d->kind == KIND_ZSTD ? "frame" : "stream");
    return fail(d, PGFEED_ECHANGED, detail,
                "The source seems to have changed; run with --restart to import it again.",
                "the source differs from the checkpoint", d->dec_off, at);
}

/*
 * The codec failed in a step given input up to compressed offset raw_at: the
 * libraries do not say where in it (libzstd checks a whole frame at once when
 * it can), so errors are placed at the end of what they were given.
 */
static int codec_failed(struct decoder *d, int rc, const struct codec_io *io, uint64_t dec_at,
                        uint64_t raw_at)
{
    switch (rc) {
    case CODEC_NOMEM:
        return fail_nomem(d);
    case CODEC_WINDOW:
        return fail_window(d, io->window, d->stream_end);
    case CODEC_CORRUPT:
        return fail_corrupt(d, d->codec->lib, io->msg, raw_at, dec_at);
    default:
        return fail_internal(d, io->msg);
    }
}

/*
 * Where a restart point is due, the boundary at raw_off, decoded offset dec,
 * becomes one: no window, the next stream (or xz block) needs nothing of what
 * came before. A stream boundary has member_raw = raw_off; an xz block
 * boundary inside the stream starting at member_raw has the stream's check
 * type as check.
 */
static int point_due(const struct decoder *d, uint64_t dec)
{
    const struct access_point *last = pgfeed__rp_ring_newest(&d->inf.ring);

    return dec - last->dec >= d->inf.span && (dec != last->dec || last->start);
}

static void codec_point(struct decoder *d, uint64_t dec, uint64_t member_raw, uint64_t member_no,
                        uint32_t check)
{
    struct access_point a;

    memset(&a, 0, sizeof a);
    a.raw = d->raw_off;
    a.member_raw = member_raw;
    a.dec = dec;
    a.member_no = member_no;
    a.check = check;
    pgfeed__rp_ring_push(&d->inf.ring, &a);
}

/* A bzip2 block boundary the codec placed: a point (mode bzip2 block) where one is due. */
static void codec_block_point(struct decoder *d, const struct codec_at *at)
{
    struct access_point a;

    memset(&a, 0, sizeof a);
    a.dec = d->cx_dec + at->dec;
    if (!point_due(d, a.dec))
        return;
    a.raw = d->cx_raw + at->raw;
    a.bits = at->bits;
    a.byte = at->byte;
    a.member_raw = d->stream_end;
    a.member_no = d->inf.member_no;
    a.mlen = at->level;
    a.check = at->info;
    pgfeed__rp_ring_push(&d->inf.ring, &a);
}

/* A stream ended at raw_off, decoded offset dec: between streams now. */
static void codec_stream_end(struct decoder *d, uint64_t dec)
{
    d->state = ST_TRAIL;
    d->stream_end = d->raw_off;
    if (point_due(d, dec))
        codec_point(d, dec, d->raw_off, ++d->inf.member_no, 0);
}

/* The codec decompresses src into out until out is full, src is used up or the stream ends. */
static int codec_step(struct decoder *d)
{
    struct codec_io io;
    uint64_t dec_at = d->dec_off; /* out is empty: pump flushed it */
    int rc;

    memset(&io, 0, sizeof io);
    io.src = d->src;
    io.src_left = d->src_left;
    io.out = (unsigned char *)d->out;
    io.out_cap = d->out_cap;
    rc = d->codec->step(d->cx, &io);
    d->raw_off += d->src_left - io.src_left;
    d->src = io.src;
    d->src_left = io.src_left;
    d->more_out = io.more_out;
    take_output(d, io.made);
    if (rc != CODEC_OK)
        return codec_failed(d, rc, &io, dec_at + io.made, d->raw_off + d->src_left);
    if (io.ended)
        codec_stream_end(d, dec_at + io.made);
    else if (io.boundary && io.at.placed)
        codec_block_point(d, &io.at);
    else if (io.boundary && point_due(d, dec_at + io.made)) /* an xz block's header at raw_off */
        codec_point(d, dec_at + io.made, d->stream_end, d->inf.member_no, io.at.info);
    return 0;
}

/* The held bytes are a whole magic: the next stream starts with them. */
static int next_stream(struct decoder *d)
{
    char msg[CODEC_MSG] = "";
    int rc;

    if ((rc = d->codec->reset(d->cx, msg)) != CODEC_OK) {
        struct codec_io io;
        memset(&io, 0, sizeof io);
        memcpy(io.msg, msg, sizeof msg);
        return codec_failed(d, rc, &io, d->dec_off, d->raw_off);
    }
    d->state = ST_INFLATE;
    d->stream_end = d->raw_off - d->held_n; /* where this stream starts, for a window error */
    d->cx_raw = d->stream_end;
    d->cx_dec = d->dec_off;
    d->fresh = 0;
    pgfeed__ctx_member_start(d->base.ctx, d->dec_off, d->stream_end);
    return feed_held(d);
}

/*
 * ST_TRAIL after a codec's stream: zero padding where the format allows it
 * (xz), else the next stream's magic, held until whole; anything else is
 * trailing garbage at its first byte (or, just restarted, a changed source).
 */
static int trail_codec(struct decoder *d)
{
    while (d->src_left > 0) {
        unsigned char b = *d->src;

        if (b == 0 && d->held_n == 0 && d->codec->padding) {
            d->src++;
            d->src_left--;
            d->raw_off++;
            continue;
        }
        d->held[d->held_n] = b;
        if (!d->codec->magic(d->held, d->held_n + 1)) {
            uint64_t at = d->raw_off - d->held_n;
            return d->fresh ? fail_changed_stream(d, at, d->held[0])
                            : fail_garbage(d, at, d->held[0]);
        }
        d->held_n++;
        d->src++;
        d->src_left--;
        d->raw_off++;
        if (d->held_n == d->codec->magic_len)
            return next_stream(d);
    }
    return 0;
}

/*
 * Inflates src and hands out downstream until src is used up and the engine
 * has nothing more to give (0, out empty), downstream answers EAGAIN (EAGAIN; out
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
            if ((rc = d->codec ? trail_codec(d) : trail(d)) != 0)
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
        if ((rc = d->codec ? codec_step(d) : inflate_step(d)) != 0)
            return rc;
    }
}

/* 2 when p[0, n) starts with m[0, len), 1 when it is a shorter part of it, else 0. */
static int match(const unsigned char *p, size_t n, const char *m, size_t len)
{
    if (memcmp(p, m, n < len ? n : len) != 0)
        return 0;
    return n >= len ? 2 : 1;
}

/* p[0, n) against zstd's, xz's and bzip2's magic: a kind, KIND_UNDECIDED, or KIND_PLAIN. */
static enum dec_kind sniff_long(const unsigned char *p, size_t n)
{
    int zstd = match(p, n, "\x28\xb5\x2f\xfd", 4), xz = match(p, n,
                                                              "\xfd"
                                                              "7zXZ\0",
                                                              6);
    int skippable = (p[0] & 0xf0) == 0x50 ? match(p + 1, n - 1, "\x2a\x4d\x18", 3) : 0;
    int bz = match(p, n, "BZh", 3); /* then the level, then a block's magic or the end's */

    if (bz == 2 && n == 3)
        bz = 1;
    else if (bz == 2)
        bz = p[3] < '1' || p[3] > '9' ? 0
             : n == 4                 ? 1
                      : match(p + 4, n - 4, "1AY&SY", 6) | match(p + 4, n - 4, "\x17rE8P\x90", 6);
    if (zstd == 2 || skippable == 2)
        return KIND_ZSTD;
    if (xz == 2)
        return KIND_XZ;
    if (bz == 2)
        return KIND_BZIP2;
    return zstd || skippable || xz || bz ? KIND_UNDECIDED : KIND_PLAIN;
}

/* The first n bytes of the input: KIND_UNDECIDED until enough are there to tell. */
static enum dec_kind sniff(const unsigned char *p, size_t n)
{
    if (n < 2)
        return KIND_UNDECIDED;
    if (p[0] == 0x1f && p[1] == 0x8b)
        return KIND_GZIP;
    if ((p[0] & 0x0f) == 8 && (p[0] >> 4) <= 7 && !(p[1] & 0x20) &&
        ((unsigned)p[0] << 8 | p[1]) % 31 == 0)
        return KIND_ZLIB;
    return sniff_long(p, n);
}

static const struct decode_codec_ops *codec_of(enum dec_kind kind)
{
    switch (kind) {
#ifdef PGFEED_HAVE_ZSTD
    case KIND_ZSTD:
        return &pgfeed__zstd_codec;
#endif
#ifdef PGFEED_HAVE_BZIP2
    case KIND_BZIP2:
        return &pgfeed__bzip2_codec;
#endif
#ifdef PGFEED_HAVE_XZ
    case KIND_XZ:
        return &pgfeed__xz_codec;
#endif
    default:
        return NULL;
    }
}

/* zstd, bzip2, xz: the codec made; the first stream begins with the held bytes, or, restarting,
 * the next stream comes at the restart point. */
static int begin_codec(struct decoder *d, int restart)
{
    char *detail;
    char msg[80];

    if (!(d->codec = codec_of(d->kind))) {
        detail = pgfeed__strdup_printf(
            "The input starts with the magic bytes of %s data, and this pgfeed was built without %s support (pgfeed --version lists what it reads).",
            kind_name(d), kind_name(d));
        snprintf(msg, sizeof msg, "cannot decompress %s data", kind_name(d));
        return fail(d, PGFEED_EDECODE, detail,
                    "Decompress the file first, or use a pgfeed built with that library.", msg,
                    d->dec_off, 0);
    }
    if (!(d->cx = d->codec->create(d->max_window)))
        return fail_nomem(d);
    d->state = ST_TRAIL;
    d->fresh = restart;
    return restart ? 0 : next_stream(d);
}

/* restart: the first member is resumed from a restart point, inflated raw. */
static int begin(struct decoder *d, enum dec_kind kind, int restart)
{
    char msg[ENGINE_MSG] = "";
    int rc;

    d->kind = kind;
    d->began = 1;
    d->base.ctx->compression = kind == KIND_PLAIN ? NULL : kind_name(d);
    if (kind == KIND_PLAIN) {
        d->state = ST_PLAIN;
        return 0;
    }
    d->in = malloc(d->out_cap);
    if (!d->in)
        return fail_nomem(d);
    d->in_cap = d->out_cap;
    if (kind != KIND_GZIP && kind != KIND_ZLIB)
        return begin_codec(d, restart);
    if ((rc = pgfeed__inflater_begin(&d->inf, kind == KIND_GZIP, restart, msg)) != ENGINE_OK)
        return inflate_failed(d, rc, msg, d->dec_off);
    d->state = ST_INFLATE;
    return d->held_n ? feed_held(d) : 0;
}

static int write_plain(struct decoder *d, const char *p, size_t n)
{
    struct pgfeed_stage *next = d->base.next;
    size_t k;
    int rc = 0;

    if (d->held_n && d->skip > 0) {
        k = d->held_n < d->skip ? d->held_n : (size_t)d->skip;
        count_skipped(d, k);
        d->held_n -= k;
        memmove(d->held, d->held + k, d->held_n);
    }
    if (d->held_n) {
        rc = next->ops->write(next, (const char *)d->held, d->held_n);
        if (rc == 0) {
            count_taken(d, d->held_n);
            d->held_n = 0;
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

/* Restarted: b, the first byte, must be the one the restart point recorded. */
static int take_expected(struct decoder *d, unsigned char b)
{
    char *detail;

    if (b != d->expected) {
        detail = pgfeed__strdup_printf(
            "The source byte at %llu is 0x%02x, but the checkpoint recorded 0x%02x there.",
            (unsigned long long)d->raw_off, b, d->expected);
        return fail(d, PGFEED_ECHANGED, detail,
                    "The source seems to have changed; run with --restart to import it again.",
                    "the source differs from the checkpoint", d->dec_off, d->raw_off);
    }
    d->expect_byte = 0;
    d->raw_off++;
    return 0;
}

/* Compressed input: inflated and handed downstream as far as it takes it, the rest kept. */
static int write_compressed(struct decoder *d, const unsigned char *u, size_t n)
{
    int rc;

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

static int dec_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct decoder *d = container_of(s, struct decoder, base);
    const unsigned char *u = (const unsigned char *)p;
    int rc;

    if (d->state == ST_FAILED)
        return d->err;
    if (d->state == ST_DONE)
        return fail_internal(d, "input after its end");
    if (busy(d)) {
        d->up_blocked = 1;
        return PGFEED_EAGAIN;
    }
    if (n == 0)
        return 0;
    if (d->state == ST_SNIFF) {
        unsigned char look[SNIFF_MAX];
        size_t k = n < SNIFF_MAX - d->held_n ? n : SNIFF_MAX - d->held_n;
        enum dec_kind kind;

        memcpy(look, d->held, d->held_n);
        memcpy(look + d->held_n, u, k);
        if ((kind = sniff(look, d->held_n + k)) == KIND_UNDECIDED) { /* then all of u fits */
            memcpy(d->held + d->held_n, u, n);
            d->held_n += n;
            d->raw_off += n;
            return 0;
        }
        if ((rc = begin(d, kind, 0)) < 0)
            return rc;
    }
    if (d->expect_byte) { /* restarted with unused bits: the partial byte comes first */
        if ((rc = take_expected(d, u[0])) != 0)
            return rc;
        p++;
        u++;
        if (--n == 0)
            return 0;
    }
    if (d->state == ST_PLAIN)
        return write_plain(d, p, n);
    return write_compressed(d, u, n);
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
    if (d->state == ST_INFLATE || d->state == ST_CHECK || (d->state == ST_TRAIL && d->held_n))
        return fail_truncated(d);
    if (d->state == ST_SNIFF && d->held_n == 1 && d->held[0] == 0x1f)
        return fail_lone_magic(d);
    if (d->state == ST_SNIFF) { /* too short to tell: plain */
        d->state = ST_PLAIN;
        d->kind = KIND_PLAIN;
        d->began = 1;
    }
    if (d->state == ST_PLAIN && d->held_n && d->skip > 0 && (rc = write_plain(d, NULL, 0)) != 0)
        return rc;
    if (d->skip > 0)
        return fail_short(d);
    if (d->state == ST_PLAIN && d->held_n && (rc = write_plain(d, NULL, 0)) != 0)
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

    pgfeed__inflater_free(&d->inf);
    if (d->codec)
        d->codec->destroy(d->cx);
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
    d->max_window = MAX_WINDOW;
    pgfeed__inflater_init(&d->inf, PGFEED_GZIP_ENGINE, SPAN);
    *out = &d->base;
    return 0;
}

void pgfeed__decoder_set_span(struct pgfeed_stage *s, size_t span)
{
    container_of(s, struct decoder, base)->inf.span = span;
}

void pgfeed__decoder_set_max_window(struct pgfeed_stage *s, uint64_t bytes)
{
    container_of(s, struct decoder, base)->max_window = bytes ? bytes : MAX_WINDOW;
}

static enum pgfeed_rp_mode rp_mode(enum dec_kind kind)
{
    static const enum pgfeed_rp_mode modes[] = {PGFEED_RP_PLAIN, PGFEED_RP_GZIP,  PGFEED_RP_ZLIB,
                                                PGFEED_RP_ZSTD,  PGFEED_RP_BZIP2, PGFEED_RP_XZ};
    return modes[kind];
}

int pgfeed__decoder_use_isal(struct pgfeed_stage *s, int on)
{
    container_of(s, struct decoder, base)->inf.engine = on ? PGFEED_GZIP_ENGINE : NULL;
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
    return pgfeed__rp_ring_blob(&d->inf.ring, decoded, rp_mode(d->kind), out, raw_offset);
}

static int fail_blob(struct decoder *d, uint64_t decoded, char *detail)
{
    return fail(d, PGFEED_ECHECKPOINT, detail,
                "Run with --restart to import the source again from its start.",
                "the checkpoint's decoder restart point is not usable", decoded, 0);
}

/* restart_from for a gzip member or zlib stream: inflating goes on from p, raw. */
static int restart_inflate(struct decoder *d, const void *blob, const struct access_point *p,
                           enum pgfeed_rp_mode mode, uint64_t decoded)
{
    char msg[ENGINE_MSG] = "";
    unsigned char *window;
    char *detail;
    int rc;

    if ((rc = begin(d, mode == PGFEED_RP_GZIP ? KIND_GZIP : KIND_ZLIB, 1)) != 0)
        return rc;
    if (!(window = pgfeed__inflater_restart_window(&d->inf)))
        return fail_nomem(d);
    if ((rc = pgfeed__rp_window(blob, p, window, &detail)) == UV_ENOMEM)
        return fail_nomem(d);
    if (rc != 0)
        return fail_blob(d, decoded, detail);
    if ((rc = pgfeed__inflater_prime(&d->inf, p, msg)) != ENGINE_OK)
        return inflate_failed(d, rc, msg, d->dec_off);
    d->resumed = 1;
    pgfeed__ctx_member_start(d->base.ctx, p->dec - p->mlen, p->member_raw);
    d->raw_off = p->raw - (p->bits ? 1 : 0);
    d->expect_byte = p->bits != 0;
    d->expected = p->byte;
    d->stream_end = p->raw;
    return 0;
}

/*
 * restart_from at an xz or bzip2 block boundary: the codec reads on from the
 * block at p.raw (bzip2: whose first bits are the low p.bits bits of the
 * byte before, which must come first and be p.byte).
 */
static int restart_block(struct decoder *d, const struct access_point *p, enum dec_kind kind)
{
    struct codec_at at;
    char msg[CODEC_MSG] = "";
    int rc;

    memset(&at, 0, sizeof at);
    at.info = p->check;
    at.bits = p->bits;
    at.byte = p->byte;
    at.level = (unsigned char)p->mlen;
    if ((rc = begin(d, kind, 1)) != 0)
        return rc;
    if ((rc = d->codec->resume(d->cx, &at, msg)) != CODEC_OK) {
        struct codec_io io;
        memset(&io, 0, sizeof io);
        memcpy(io.msg, msg, sizeof msg);
        return codec_failed(d, rc, &io, p->dec, p->raw);
    }
    d->state = ST_INFLATE;
    d->fresh = 0;
    d->raw_off = p->raw - (p->bits ? 1 : 0);
    d->expect_byte = p->bits != 0;
    d->expected = p->byte;
    d->cx_raw = p->raw;
    d->cx_dec = p->dec;
    d->stream_end = p->member_raw;
    d->inf.member_no = p->member_no;
    pgfeed__rp_ring_init(&d->inf.ring, p);
    /* The stream's decoded start is not recorded: messages name where this run began it. */
    pgfeed__ctx_member_start(d->base.ctx, p->dec, p->raw - (p->bits ? 1 : 0));
    return 0;
}

int pgfeed__decoder_restart_from(struct pgfeed_stage *s, const void *blob, size_t n,
                                 uint64_t decoded)
{
    struct decoder *d = container_of(s, struct decoder, base);
    struct access_point p;
    enum pgfeed_rp_mode mode;
    char *detail;
    int rc;

    if (d->state != ST_SNIFF || d->held_n || d->raw_off != 0 || d->restarted)
        return fail_internal(d, "restart point set after input or twice");
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
    case PGFEED_RP_ZSTD:
    case PGFEED_RP_BZIP2:
    case PGFEED_RP_XZ: /* at a stream boundary: the next stream starts at p.raw */
        if ((rc = begin(d, (enum dec_kind)(KIND_ZSTD + (mode - PGFEED_RP_ZSTD)), 1)) != 0)
            return rc;
        d->raw_off = d->stream_end = p.raw;
        d->inf.member_no = p.member_no;
        pgfeed__rp_ring_init(&d->inf.ring, &p);
        break;
    case PGFEED_RP_XZ_BLOCK:
    case PGFEED_RP_BZIP2_BLOCK:
        if ((rc = restart_block(d, &p, mode == PGFEED_RP_XZ_BLOCK ? KIND_XZ : KIND_BZIP2)) != 0)
            return rc;
        break;
    default:
        if ((rc = restart_inflate(d, blob, &p, mode, decoded)) != 0)
            return rc;
        break;
    }
    d->dec_off = p.dec;
    pgfeed__ctx_stats(d->base.ctx)->bytes_inflated += p.dec;
    d->skip = decoded - p.dec;
    d->skip_total = decoded;
    return 0;
}
