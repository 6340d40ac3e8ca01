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
 * and goes downstream untouched (same pointer, no copy), except an input that
 * is the single byte 1f: a gzip file cut after its first byte, reported as
 * truncated. A first write of one byte (a pipe) is held until the second byte
 * arrives. Some text happens to
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
 * With ISA-L (below) also, allocated with the first gzip member:
 *   isal  ISA-L's struct inflate_state, 87 KB with its own 64 KiB of output
 *         history and 328 bytes of input; isal_snap, a copy, with the
 *         first probe for a point.
 *   hist  HIST bytes: the input bytes ISA-L took last.
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
 * Restart points (zlib's examples/zran.c technique), so that a resumed job
 * need not re-read the compressed file from the start:
 *   Access points. Once SPAN decoded bytes have passed since the previous
 *   point, compressed input is inflated with Z_BLOCK (until then with
 *   Z_NO_FLUSH, as each return costs zlib a window update), which makes
 *   inflate return at each deflate block boundary (data_type & 128), also
 *   right after a gzip/zlib header. At the first boundary that does not end
 *   a member's last block (!(data_type & 64)) we record a point: the raw
 *   offset of the next whole input byte, the unused bits of the byte before
 *   it (data_type & 7) and that byte, the decoded offset, the member's
 *   decoded length and
 *   check value so far (zlib keeps the running CRC-32 / Adler-32 in
 *   zs.adler for free), and the 32 KiB window (inflateGetDictionary, taken
 *   only then). Only the last RING points are kept: the decoder runs a few
 *   MiB at most ahead of the rows the sink commits. The start of the input
 *   (raw 0, decoded 0) is the first point of the ring; it is evicted like
 *   the others. For plain input every offset is a point: decoded D is raw D.
 *   The boundary right after each gzip header is a point too, so inputs made
 *   of many small members (bgzip, pigz -i) have points as well.
 *   pgfeed__decoder_restart_point() serializes the latest point at or before
 *   a decoded offset (format below); pgfeed__decoder_restart_from() sets a
 *   fresh decoder up from one: raw inflate (-15), inflatePrime with the
 *   unused bits, inflateSetDictionary with the window, counters at the
 *   point's, and (decoded - point) bytes to skip, as for a re-read. The
 *   source then delivers bytes from the partial byte on (from the point's
 *   raw offset when it has no unused bits); that first byte must equal the
 *   one recorded (else PGFEED_ECHANGED).
 *   The resumed member is inflated raw, so zlib checks neither its trailer
 *   nor its length: we do (state CHECK), with the check value carried in the
 *   point and continued with crc32()/adler32() over the rest of that member
 *   (the same work zlib does for every other member). The next gzip member
 *   is read with windowBits 15+16 again (inflateReset2). The window of the
 *   start point of a restarted decoder is the restart point itself, so it
 *   can hand out restart points before it records any new one.
 *   bytes_inflated stays equal to dec_off, the absolute decoded offset: a
 *   restart adds the point's decoded offset to it (the sink uses it as the
 *   offset of the last batch's end).
 *
 * ISA-L (meson -Disal=enabled defines PGFEED_HAVE_ISAL): the deflate data of
 * gzip members goes through isal_inflate, which with its CRC-32 takes about a
 * third of the CPU time zlib 1.2.13 does (points included). zlib still reads
 * every gzip header (Z_BLOCK stops it right after one), so header errors keep
 * zlib's words and offsets, and zlib streams stay with zlib. ISA-L inflates
 * raw, so we keep the member's CRC-32 and read its trailer (state CHECK) as
 * for a resumed member, failing in zlib's words at zlib's offsets ("incorrect
 * data check" once the CRC-32 is in) when the member was read from its start.
 * ISA-L reads up to 8 bytes ahead into its bit buffer (read_in); at the end
 * of the deflate data the whole bytes in it are the trailer's first bytes: we
 * hand them back to src, or take them from hist when they came with an
 * earlier write. raw_off counts the bytes ISA-L took, so a corruption's
 * offset is at most 8 + 328 bytes late. Its data errors are worded "ISA-L
 * reported ...". ISA-L decodes up to three literals per table lookup and
 * waits for the last one's code: until more input comes, out may be two bytes
 * short of what zlib would give.
 *   ISA-L never stops at a block boundary by itself, but when a call ends
 *   between a block's end-of-block code and the end of the next block's
 *   header it waits in ISAL_BLOCK_NEW_HDR or ISAL_BLOCK_HDR, read_in holding
 *   the bits after the boundary and tmp_in_buffer the bytes after those: that
 *   gives the point's raw offset and unused bits; the partial byte comes from
 *   hist, the window from the end of ISA-L's tmp_out_buffer (checked against
 *   out). So once a point is due we feed it PROBE_IN bytes per call, after
 *   copying its state (isal_snap); when the block type or the Huffman codes
 *   changed during a probe, a boundary went by: we put the copy back and go
 *   through the same bytes STEP_IN at a time, and a dynamic block's header,
 *   longer than that, is seen. A stored block is fed right to its end.
 *   Boundaries between fixed-code blocks (same codes, a 3-bit header) are
 *   seldom seen; after STEP_CAP bytes without a point we stop looking until
 *   1, 2, 4 ... 64 spans later, so such input gets few points (a resume
 *   re-reads more). A point means the same with either engine and the blob
 *   format is unchanged: a checkpoint written by a zlib-only build resumes in
 *   an ISA-L build and the other way round; restart_from primes ISA-L's
 *   read_in with the unused bits and sets the window with
 *   isal_inflate_set_dict.
 *
 * Restart point format, version 1 (integers big-endian):
 *    0  4  magic "PGFR"
 *    4  1  version 1
 *    5  1  mode: 0 start of the input (detect as usual, skip from there),
 *          1 plain, 2 gzip, 3 zlib
 *    6  1  unused bits in the partial byte, 0..7 (gzip, zlib; else 0)
 *    7  1  the partial byte (the source byte at raw offset - 1), 0 without bits
 *    8  1  window encoding: 0 stored, 1 raw deflate (level 1)
 *    9  3  reserved, 0
 *   12  8  raw offset of the point: the first source byte zlib has not consumed
 *   20  8  decoded offset of the point
 *   28  8  raw offset where the point's gzip member or zlib stream starts
 *   36  8  member number, from 0
 *   44  8  decoded bytes of the member before the point (ISIZE: low 32 bits)
 *   52  4  their CRC-32 (gzip) or Adler-32 (zlib)
 *   56  4  window length, at most 32768 (0: member start, or mode 0 or 1)
 *   60  4  encoded window length w
 *   64  w  the window, encoded
 *   64+w 4 CRC-32 of the bytes before it
 * Reading restarts at the raw offset, minus one when there are unused bits.
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef PGFEED_HAVE_ISAL
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#endif

#include "internal.h"

enum dec_state { ST_SNIFF, ST_PLAIN, ST_INFLATE, ST_CHECK, ST_TRAIL, ST_DONE, ST_FAILED };
enum dec_kind { KIND_PLAIN, KIND_GZIP, KIND_ZLIB };

#define SPAN    ((size_t)1 << 20) /* decoded bytes at least between two access points */
#define RING    8                 /* access points kept */
#define WINSIZE 32768u            /* deflate's window */

/* Restart point blobs (format in the comment above). */
#define RP_MAGIC   "PGFR"
#define RP_VERSION 1
#define RP_HEAD    64
enum rp_mode { RP_START, RP_PLAIN, RP_GZIP, RP_ZLIB };

#ifdef PGFEED_HAVE_ISAL
#define PROBE_IN    2048u        /* input bytes per call while looking for a block boundary */
#define STEP_IN     64u          /* per call when a probe passed one (header longer than this) */
#define STEP_CAP    (256u << 10) /* bytes of steps before giving up until later */
#define HIST        512u         /* input kept: a boundary is at most 8 + 328 bytes back */
#define ISAL_MAX_IN (1u << 30)   /* input per isal_inflate call (avail_in is 32 bits) */
#endif

/* A place in the compressed input where inflating can start over. */
struct access_point {
    uint64_t seq;        /* 1, 2, ... in recording order; 0: an empty slot */
    uint64_t raw;        /* the first input byte zlib had not consumed */
    uint64_t dec;        /* decoded offset */
    uint64_t member_raw; /* where its gzip member (zlib stream) starts */
    uint64_t member_no;
    uint64_t mlen;       /* the member's decoded bytes before the point */
    uint32_t check;      /* their CRC-32 (gzip) or Adler-32 (zlib) */
    unsigned char start; /* the start of the input: mode 0, nothing else set */
    unsigned char bits;  /* unused bits in byte, the input byte at raw - 1 */
    unsigned char byte;
    unsigned wlen; /* window bytes, in the slot's part of windows */
};

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
    struct access_point ring[RING];
    unsigned ring_next;      /* the slot the next point goes to */
    uint64_t seq;            /* the last point's seq */
    size_t span;             /* SPAN, or a test's */
    unsigned char *windows;  /* RING * WINSIZE, allocated with the first point */
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
    int resumed;     /* raw_member, resumed from a restart point (else: an ISA-L member) */
    int expect_byte; /* restarted: the first input byte must be expected */
    unsigned char expected;
    int restarted;
    int began;               /* the kind is known (begin() ran) */
    struct pgfeed_buf cache; /* the last blob made, for the point cache_seq */
    uint64_t cache_seq;
#ifdef PGFEED_HAVE_ISAL
    struct inflate_state *isal;
    struct inflate_state *isal_snap; /* isal before a probe (see isal_step) */
    size_t fine_left;                /* input to go through in steps after a probe */
    int use_isal;              /* gzip deflate data goes through ISA-L (a test may turn it off) */
    int hdr_pending;           /* zlib is reading a gzip header; ISA-L takes over after it */
    int in_isal;               /* the current member's deflate data goes through ISA-L */
    uint64_t isal_made;        /* the member's bytes ISA-L inflated */
    uint64_t stepped;          /* input fed in steps since a point fell due */
    uint64_t step_retry;       /* after giving up: no steps before this decoded offset */
    unsigned backoff;          /* give-ups since the last point */
    uint64_t hist_lo, hist_hi; /* hist holds the input bytes [hist_lo, hist_hi) */
    unsigned char hist[HIST];
#endif
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

static struct access_point *newest_point(struct decoder *d)
{
    return &d->ring[(d->ring_next + RING - 1) % RING];
}

/* The current member's decoded bytes so far. */
static uint64_t member_len(const struct decoder *d)
{
#ifdef PGFEED_HAVE_ISAL
    return d->mlen_base + d->zs.total_out + d->isal_made;
#else
    return d->mlen_base + d->zs.total_out;
#endif
}

/* raw_member: the check value goes on over out[from, to). Returns to. */
static size_t check_out(struct decoder *d, size_t from, size_t to)
{
    const unsigned char *p = (const unsigned char *)d->out + from;

    if (to <= from)
        return to;
#ifdef PGFEED_HAVE_ISAL
    if (d->kind == KIND_GZIP) { /* with carry-less multiply: several times zlib 1.2's speed */
        d->check = crc32_gzip_refl(d->check, p, to - from);
        return to;
    }
#endif
    d->check = (uint32_t)(d->kind == KIND_GZIP ? crc32(d->check, p, (uInt)(to - from))
                                               : adler32(d->check, p, (uInt)(to - from)));
    return to;
}

/* At a deflate block boundary: records an access point at decoded offset dec. */
static void record_point(struct decoder *d, uint64_t dec)
{
    struct access_point *p = &d->ring[d->ring_next];
    uInt wlen = 0;

    /* Without memory for it, or (cannot happen) a window, no point: a resume re-reads more. */
    if (!d->windows && !(d->windows = malloc((size_t)RING * WINSIZE)))
        return;
    if (inflateGetDictionary(&d->zs, d->windows + (size_t)d->ring_next * WINSIZE, &wlen) != Z_OK ||
        wlen > WINSIZE)
        return;
    p->raw = d->raw_off;
    p->dec = dec;
    p->member_raw = d->member_raw;
    p->member_no = d->member_no;
    p->mlen = member_len(d);
    p->check = d->raw_member ? d->check : (uint32_t)d->zs.adler;
    p->start = 0;
    p->bits = (unsigned char)(d->zs.data_type & 7);
    p->byte = p->bits ? d->last_byte : 0;
    p->wlen = wlen;
    p->seq = ++d->seq;
    d->ring_next = (d->ring_next + 1) % RING;
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

#ifdef PGFEED_HAVE_ISAL
static int isal_start(struct decoder *d);
static int isal_step(struct decoder *d);
#endif

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
#ifdef PGFEED_HAVE_ISAL
    int hdr = d->hdr_pending; /* zlib reads the header, ISA-L the rest */

    if (d->in_isal)
        return isal_step(d);
#else
    int hdr = 0;
#endif

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
#ifdef PGFEED_HAVE_ISAL
        if (hdr && (d->zs.data_type & 128)) /* the header is read */
            return isal_start(d);
#endif
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
 * ISA-L): reads its trailer from src (trl may hold its first bytes already)
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

#ifdef PGFEED_HAVE_ISAL
/* ISA-L took p[0, n), the input bytes at raw_off on: the last HIST of them are kept. */
static void hist_push(struct decoder *d, const unsigned char *p, size_t n)
{
    uint64_t at = d->raw_off;

    if (d->hist_hi != at) /* cannot happen: starts over */
        d->hist_lo = d->hist_hi = at;
    if (n > HIST) {
        at += n - HIST;
        p += n - HIST;
        n = HIST;
    }
    size_t i = (size_t)(at % HIST), first = n < HIST - i ? n : HIST - i;
    memcpy(d->hist + i, p, first);
    memcpy(d->hist, p + first, n - first);
    d->hist_hi = at + n;
    if (d->hist_hi - d->hist_lo > HIST)
        d->hist_lo = d->hist_hi - HIST;
}

/* The input byte at raw offset at, if kept: 1, else 0. */
static int hist_byte(const struct decoder *d, uint64_t at, unsigned char *b)
{
    if (at < d->hist_lo || at >= d->hist_hi)
        return 0;
    *b = d->hist[at % HIST];
    return 1;
}

/* Hands the deflate data of the member to ISA-L, from raw_off on. 0 or UV_ENOMEM (failed). */
static int isal_start(struct decoder *d)
{
    if (!d->isal) {
        if (!(d->isal = calloc(1, sizeof *d->isal))) /* isal_passed reads its codes */
            return fail_nomem(d);
        isal_inflate_init(d->isal);
    }
    isal_inflate_reset(d->isal);
    d->isal->crc_flag = ISAL_DEFLATE; /* raw: the CRC-32 and the trailer are ours */
    d->isal->hist_bits = 0;           /* a 32 KiB window */
    d->hdr_pending = 0;
    d->in_isal = 1;
    d->raw_member = 1;
    d->check = 0;
    d->isal_made = 0;
    d->hist_lo = d->hist_hi = d->raw_off;
    return 0;
}

/* ISA-L stopped between two blocks, with all it inflated handed out. */
static int isal_at_boundary(const struct inflate_state *st)
{
    return (st->block_state == ISAL_BLOCK_NEW_HDR || st->block_state == ISAL_BLOCK_HDR) &&
           st->tmp_out_processed == st->tmp_out_valid && st->write_overflow_len == 0 &&
           st->copy_overflow_length == 0;
}

static int isal_due(struct decoder *d, uint64_t dec)
{
    return dec - newest_point(d)->dec >= d->span && dec >= d->step_retry;
}

/*
 * ISA-L sits at a block boundary (isal_at_boundary), decoded offset dec:
 * records an access point there. out[0, made) is this step's output.
 */
static void record_isal_point(struct decoder *d, uint64_t dec, size_t made)
{
    const struct inflate_state *st = d->isal;
    const struct access_point *last = newest_point(d);
    struct access_point *p = &d->ring[d->ring_next];
    /* Past the boundary: the bits in read_in, then the bytes in tmp_in_buffer. */
    uint64_t ahead = (uint64_t)st->tmp_in_size + (uint64_t)st->read_in_length / 8;
    unsigned bits = (unsigned)st->read_in_length % 8;
    uint64_t raw = d->raw_off - ahead, mlen = member_len(d);
    uint32_t valid = (uint32_t)st->tmp_out_valid;
    uint32_t wlen = valid < WINSIZE ? valid : WINSIZE;
    unsigned char byte = 0, *w;
    size_t tail;

    if (st->read_in_length < 0 || st->tmp_in_size < 0 || ahead > d->raw_off)
        return;
    if (!last->start && last->raw == raw && last->bits == bits) /* the same boundary */
        return;
    if (bits && !hist_byte(d, raw - 1, &byte))
        return;
    /* ISA-L keeps the last 32 KiB it inflated (or all) at the end of tmp_out_buffer. */
    if (wlen != (mlen < WINSIZE ? mlen : WINSIZE))
        return;
    if (!d->windows && !(d->windows = malloc((size_t)RING * WINSIZE)))
        return;
    w = d->windows + (size_t)d->ring_next * WINSIZE;
    memcpy(w, st->tmp_out_buffer + valid - wlen, wlen);
    tail = made < wlen ? made : wlen;
    if (memcmp(w + wlen - tail, d->out + made - tail, tail) != 0)
        return;
    p->raw = raw;
    p->dec = dec;
    p->member_raw = d->member_raw;
    p->member_no = d->member_no;
    p->mlen = mlen;
    p->check = d->check;
    p->start = 0;
    p->bits = (unsigned char)bits;
    p->byte = byte;
    p->wlen = wlen;
    p->seq = ++d->seq;
    d->ring_next = (d->ring_next + 1) % RING;
    d->stepped = 0;
    d->backoff = 0;
    d->fine_left = 0;
}

/*
 * Before a probe: copies ISA-L's state (up to the output history it holds)
 * to isal_snap. Returns the bytes copied, 0 without memory (then steps only).
 */
static size_t isal_snapshot(struct decoder *d)
{
    size_t n = offsetof(struct inflate_state, tmp_out_buffer) + (size_t)d->isal->tmp_out_valid;

    if (d->isal->tmp_out_valid < 0 || n > sizeof *d->isal)
        return 0;
    if (!d->isal_snap && !(d->isal_snap = calloc(1, sizeof *d->isal_snap)))
        return 0;
    memcpy(d->isal_snap, d->isal, n);
    return n;
}

/*
 * Whether a block boundary went by since snapshot a: the block type, the
 * last-block bit or the Huffman codes changed. Blind to one between blocks
 * with the same codes (fixed-code blocks).
 */
static int isal_passed(const struct inflate_state *a, const struct inflate_state *b)
{
    return a->block_state != b->block_state || a->bfinal != b->bfinal ||
           memcmp(&a->lit_huff_code, &b->lit_huff_code, sizeof a->lit_huff_code) != 0 ||
           memcmp(&a->dist_huff_code, &b->dist_huff_code, sizeof a->dist_huff_code) != 0;
}

/*
 * The member's last block ended in a call that was given buf and moved
 * next_in by took (negative when a later ISA-L hands back bytes of an
 * earlier write): sets src and raw_off to the end of the deflate data, or
 * puts the trailer bytes that came before buf into trl. 0 or the failure.
 */
static int isal_end(struct decoder *d, const unsigned char *buf, ptrdiff_t took)
{
    struct inflate_state *st = d->isal;
    ptrdiff_t keep = took - st->read_in_length / 8; /* bytes of buf before the trailer */

    d->trl_n = 0;
    if (keep >= 0) {
        hist_push(d, buf, (size_t)keep);
        d->src += keep;
        d->src_left -= (size_t)keep;
        d->raw_off += (uint64_t)keep;
    } else {
        for (uint64_t at = d->raw_off - (uint64_t)-keep; at < d->raw_off; at++)
            if (d->trl_n == sizeof d->trl || !hist_byte(d, at, &d->trl[d->trl_n++])) {
                pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                             "ISA-L read %ld bytes past the deflate data", -(long)keep);
                return set_failed(d, PGFEED_EINTERNAL);
            }
    }
    st->read_in = 0;
    st->read_in_length = 0;
    return 0;
}

static int fail_isal(struct decoder *d, int ret, uint64_t dec_at)
{
    char what[48];

    switch (ret) {
    case ISAL_INVALID_BLOCK:
        snprintf(what, sizeof what, "invalid deflate block");
        break;
    case ISAL_INVALID_SYMBOL:
        snprintf(what, sizeof what, "invalid deflate symbol");
        break;
    case ISAL_INVALID_LOOKBACK:
        snprintf(what, sizeof what, "invalid lookback distance");
        break;
    default:
        snprintf(what, sizeof what, "error %d", ret);
        break;
    }
    return fail_corrupt(d, "ISA-L", what, d->raw_off, dec_at);
}

/*
 * inflate_step for a member's deflate data with ISA-L: inflates src into out
 * until out is full, src is used up or the deflate data ends (then on to its
 * trailer), stepping to access points when they are due. 0 or the failure.
 */
static int isal_step(struct decoder *d)
{
    struct inflate_state *st = d->isal;
    uint64_t dec_at = d->dec_off; /* decoded offset of out[0] */
    size_t made = 0, checked = 0;
    int first = 1, ended = 0, rc;

    st->next_out = (uint8_t *)d->out;
    st->avail_out = (uint32_t)d->out_cap;
    for (;;) {
        int due = isal_due(d, dec_at + made);
        if (due && isal_at_boundary(st)) {
            checked = check_out(d, checked, made);
            record_isal_point(d, dec_at + made, made);
            due = isal_due(d, dec_at + made);
        }
        /* Once at least: ISA-L may hold output for a full out. */
        if (!first && (d->src_left == 0 || st->avail_out == 0))
            break;
        first = 0;

        const unsigned char *buf = d->src;
        size_t give = d->src_left < ISAL_MAX_IN ? d->src_left : ISAL_MAX_IN, before = made;
        size_t snap = 0;
        if (due) {
            size_t k = STEP_IN;
            if (st->block_state == ISAL_BLOCK_TYPE0) { /* a stored block: right to its end */
                int64_t rest = (int64_t)st->type0_block_len - st->read_in_length / 8;
                k = rest > 0 ? (size_t)rest : 1;
            } else if (d->fine_left == 0 && (snap = isal_snapshot(d)) > 0)
                k = PROBE_IN;
            give = give < k ? give : k;
        }
        st->next_in = (uint8_t *)(uintptr_t)buf;
        st->avail_in = (uint32_t)give;
        int ret = isal_inflate(st);
        ptrdiff_t took = st->next_in - buf;
        made = d->out_cap - st->avail_out;
        if (snap && ret == ISAL_DECOMP_OK && took > 0 && st->block_state != ISAL_BLOCK_FINISH &&
            !isal_at_boundary(st) && isal_passed(d->isal_snap, st)) {
            /* A boundary went by in the probe: back, and through those bytes in steps. */
            memcpy(st, d->isal_snap, snap);
            made = before;
            d->fine_left = (size_t)took;
            continue;
        }
        d->isal_made += made - before;
        if (ret == ISAL_DECOMP_OK && st->block_state == ISAL_BLOCK_FINISH) {
            if ((rc = isal_end(d, buf, took)) != 0)
                return rc;
            ended = 1;
            break;
        }
        if (took > 0) {
            hist_push(d, buf, (size_t)took);
            d->src += took;
            d->src_left -= (size_t)took;
            d->raw_off += (uint64_t)took;
        }
        if (ret != ISAL_DECOMP_OK)
            return fail_isal(d, ret, dec_at + made);
        if (took == 0 && made == before && d->src_left > 0 && st->avail_out > 0) {
            pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                         "ISA-L made no progress");
            return set_failed(d, PGFEED_EINTERNAL);
        }
        if (took > 0 && d->fine_left > 0)
            d->fine_left -= (size_t)took < d->fine_left ? (size_t)took : d->fine_left;
        if (due && (d->stepped += (uint64_t)took) >= STEP_CAP && !isal_at_boundary(st)) {
            /* No boundary seen (fixed-code blocks?): stop looking for a while. */
            d->stepped = 0;
            d->step_retry =
                dec_at + made + ((uint64_t)d->span << (d->backoff < 6 ? d->backoff : 6));
            d->backoff++;
        }
    }
    d->more_out = !ended && (st->avail_out == 0 || st->tmp_out_processed != st->tmp_out_valid);
    check_out(d, checked, made);
    take_output(d, made);
    if (!ended)
        return 0;
    d->state = ST_CHECK;
    /* Read from its start, a bad trailer fails before the output goes, as with zlib. */
    return d->resumed ? 0 : check_trailer(d);
}
#endif

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
#ifdef PGFEED_HAVE_ISAL
            d->in_isal = 0;
            d->isal_made = 0;
            d->hdr_pending = d->use_isal;
#endif
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
#ifdef PGFEED_HAVE_ISAL
    d->hdr_pending = d->use_isal && window_bits == 15 + 16;
#endif
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
#ifdef PGFEED_HAVE_ISAL
    free(d->isal);
    free(d->isal_snap);
#endif
    free(d->in);
    free(d->out);
    free(d->windows);
    pgfeed__buf_free(&d->cache);
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
    d->ring[0].seq = d->seq = 1; /* the start of the input */
    d->ring[0].start = 1;
    d->ring_next = 1;
#ifdef PGFEED_HAVE_ISAL
    d->use_isal = 1;
#endif
    *out = &d->base;
    return 0;
}

void pgfeed__decoder_set_span(struct pgfeed_stage *s, size_t span)
{
    container_of(s, struct decoder, base)->span = span;
}

int pgfeed__decoder_use_isal(struct pgfeed_stage *s, int on)
{
#ifdef PGFEED_HAVE_ISAL
    container_of(s, struct decoder, base)->use_isal = on;
    return 1;
#else
    return 0;
#endif
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
    return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

static uint64_t get64be(const unsigned char *p)
{
    return (uint64_t)get32be(p) << 32 | get32be(p + 4);
}

/* Appends the blob of point p, in mode mode, to out. 0 or UV_ENOMEM. */
static int serialize(const struct access_point *p, enum rp_mode mode, const unsigned char *window,
                     struct pgfeed_buf *out)
{
    size_t start = out->len, wenc_len = p->wlen;
    unsigned char *h;
    int enc = 0, rc;

    if (p->wlen > 0) {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return UV_ENOMEM;
        size_t bound = deflateBound(&z, p->wlen);
        if ((rc = pgfeed__buf_reserve(out, RP_HEAD + (bound > p->wlen ? bound : p->wlen) + 4))) {
            deflateEnd(&z);
            return rc;
        }
        z.next_in = window;
        z.avail_in = p->wlen;
        z.next_out = (unsigned char *)out->data + start + RP_HEAD;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < p->wlen) {
            enc = 1;
            wenc_len = z.total_out;
        } else
            memcpy(out->data + start + RP_HEAD, window, p->wlen);
        deflateEnd(&z);
    } else if ((rc = pgfeed__buf_reserve(out, RP_HEAD + 4)))
        return rc;
    h = (unsigned char *)out->data + start;
    memcpy(h, RP_MAGIC, 4);
    h[4] = RP_VERSION;
    h[5] = (unsigned char)mode;
    h[6] = p->bits;
    h[7] = p->byte;
    h[8] = (unsigned char)enc;
    h[9] = h[10] = h[11] = 0;
    put64(h + 12, p->raw);
    put64(h + 20, p->dec);
    put64(h + 28, p->member_raw);
    put64(h + 36, p->member_no);
    put64(h + 44, p->mlen);
    put32(h + 52, p->check);
    put32(h + 56, p->wlen);
    put32(h + 60, (uint32_t)wenc_len);
    put32(h + RP_HEAD + wenc_len, (uint32_t)crc32(0, h, (uInt)(RP_HEAD + wenc_len)));
    out->len = start + RP_HEAD + wenc_len + 4;
    return 0;
}

int pgfeed__decoder_restart_point(struct pgfeed_stage *s, uint64_t decoded, struct pgfeed_buf *out,
                                  uint64_t *raw_offset)
{
    struct decoder *d = container_of(s, struct decoder, base);
    struct access_point plain, *p = NULL;
    enum rp_mode mode;
    unsigned slot = 0;
    int rc;

    if (d->kind == KIND_PLAIN && (d->began || d->state == ST_PLAIN || d->state == ST_DONE)) {
        /* Plain: every offset is a point. */
        memset(&plain, 0, sizeof plain);
        plain.raw = plain.dec = decoded;
        *raw_offset = decoded;
        return serialize(&plain, RP_PLAIN, NULL, out);
    }
    for (unsigned i = 1; i <= RING; i++) {
        slot = (d->ring_next + RING - i) % RING;
        if (d->ring[slot].seq == 0)
            break;
        if (d->ring[slot].dec <= decoded) {
            p = &d->ring[slot];
            break;
        }
    }
    if (!p)
        return 1;
    *raw_offset = p->raw - (p->bits ? 1 : 0);
    if (p->seq == d->cache_seq)
        return pgfeed__buf_append(out, d->cache.data, d->cache.len);
    mode = p->start ? RP_START : d->kind == KIND_GZIP ? RP_GZIP : RP_ZLIB;
    size_t start = out->len;
    rc = serialize(p, mode, d->windows ? d->windows + (size_t)slot * WINSIZE : NULL, out);
    if (rc != 0)
        return rc;
    /* Batches ending between the same two points share their blob. */
    d->cache.len = 0;
    d->cache_seq = 0;
    if (pgfeed__buf_append(&d->cache, out->data + start, out->len - start) == 0)
        d->cache_seq = p->seq;
    return 0;
}

/* restart_from: the engine goes on from point p, its window in d->windows. 0 or the failure. */
static int prime(struct decoder *d, const struct access_point *p, enum rp_mode mode)
{
#ifdef PGFEED_HAVE_ISAL
    if (mode == RP_GZIP && d->use_isal) {
        /* ISA-L inflates the member; zlib stays ready for the next one's header. */
        int rc = isal_start(d);
        if (rc != 0)
            return rc;
        d->isal->read_in = p->bits ? (uint64_t)(p->byte >> (8 - p->bits)) : 0;
        d->isal->read_in_length = p->bits;
        if (p->wlen && isal_inflate_set_dict(d->isal, d->windows, p->wlen) != COMP_OK) {
            pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                         "ISA-L refused a restart point");
            return set_failed(d, PGFEED_EINTERNAL);
        }
        /* The partial byte comes first (expect_byte): then it is input ISA-L took. */
        d->hist_lo = d->hist_hi = p->raw - (p->bits ? 1 : 0);
        if (p->bits)
            d->hist[d->hist_hi++ % HIST] = p->byte;
        return 0;
    }
#endif
    if ((p->bits && inflatePrime(&d->zs, p->bits, p->byte >> (8 - p->bits)) != Z_OK) ||
        (p->wlen && inflateSetDictionary(&d->zs, d->windows, p->wlen) != Z_OK)) {
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
    const unsigned char *b = blob;
    struct access_point p;
    unsigned enc;
    size_t wenc_len;
    enum rp_mode mode;
    int rc;

    if (d->state != ST_SNIFF || d->has_held || d->raw_off != 0 || d->restarted) {
        pgfeed__fail(d->base.ctx, "decoder", PGFEED_EINTERNAL, NULL, NULL,
                     "restart point set after input or twice");
        return set_failed(d, PGFEED_EINTERNAL);
    }
    if (n < RP_HEAD + 4 || memcmp(b, RP_MAGIC, 4) != 0)
        return fail_blob(d, decoded,
                         pgfeed__strdup_printf(
                             "It is %zu bytes long and does not start with \"%s\".", n, RP_MAGIC));
    if (b[4] != RP_VERSION)
        return fail_blob(
            d, decoded,
            pgfeed__strdup_printf("Its format version is %u; this pgfeed reads version %u only.",
                                  b[4], RP_VERSION));
    wenc_len = get32be(b + 60);
    if (wenc_len > n - RP_HEAD - 4 || n != RP_HEAD + wenc_len + 4)
        return fail_blob(d, decoded,
                         pgfeed__strdup_printf("It is %zu bytes long, but says %zu.", n,
                                               RP_HEAD + wenc_len + 4));
    if (get32be(b + n - 4) != (uint32_t)crc32(0, b, (uInt)(n - 4)))
        return fail_blob(d, decoded,
                         pgfeed__strdup_printf("Its CRC-32 does not match: it is damaged."));
    memset(&p, 0, sizeof p);
    mode = (enum rp_mode)b[5];
    p.bits = b[6];
    p.byte = b[7];
    enc = b[8];
    p.raw = get64be(b + 12);
    p.dec = get64be(b + 20);
    p.member_raw = get64be(b + 28);
    p.member_no = get64be(b + 36);
    p.mlen = get64be(b + 44);
    p.check = get32be(b + 52);
    p.wlen = get32be(b + 56);
    if (b[5] > RP_ZLIB || p.bits > 7 || (p.bits == 0 && p.byte != 0) || enc > 1 ||
        b[9] | b[10] | b[11] || p.wlen > WINSIZE || p.wlen > p.mlen ||
        (enc == 0 && wenc_len != p.wlen) || (p.wlen == 0 && wenc_len != 0) ||
        (mode == RP_START && (p.raw | p.dec | p.bits | p.wlen) != 0) ||
        (mode == RP_PLAIN && (p.raw != p.dec || p.bits || p.wlen)) ||
        ((mode == RP_GZIP || mode == RP_ZLIB) &&
         (p.raw < p.member_raw || p.raw - (p.bits ? 1 : 0) < 2 || p.dec < p.mlen)))
        return fail_blob(d, decoded,
                         pgfeed__strdup_printf("Its fields are inconsistent (mode %u, raw offset "
                                               "%llu, %u bits, window %u bytes).",
                                               b[5], (unsigned long long)p.raw, p.bits, p.wlen));
    if (decoded < p.dec)
        return fail_blob(
            d, decoded,
            pgfeed__strdup_printf(
                "The checkpoint's decoded offset %llu is before the restart point's, %llu.",
                (unsigned long long)decoded, (unsigned long long)p.dec));

    d->restarted = 1;
    switch (mode) {
    case RP_START: /* what a re-read does */
        break;
    case RP_PLAIN:
        begin(d, KIND_PLAIN, 0);
        d->raw_off = p.raw;
        break;
    default:
        if ((rc = begin(d, mode == RP_GZIP ? KIND_GZIP : KIND_ZLIB, -15)) != 0)
            return rc;
        if (!(d->windows = malloc((size_t)RING * WINSIZE)))
            return fail_nomem(d);
        if (p.wlen > 0) {
            unsigned char *w = d->windows;
            if (enc == 1) {
                z_stream z;
                int zret;
                memset(&z, 0, sizeof z);
                if (inflateInit2(&z, -15) != Z_OK)
                    return fail_nomem(d);
                z.next_in = b + RP_HEAD;
                z.avail_in = (uInt)wenc_len;
                z.next_out = w;
                z.avail_out = WINSIZE;
                zret = inflate(&z, Z_FINISH);
                rc = zret == Z_STREAM_END && z.total_out == p.wlen && z.avail_in == 0;
                inflateEnd(&z);
                if (zret == Z_MEM_ERROR)
                    return fail_nomem(d);
                if (!rc)
                    return fail_blob(d, decoded,
                                     pgfeed__strdup_printf("Its window does not decompress."));
            } else
                memcpy(w, b + RP_HEAD, p.wlen);
        }
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
        p.seq = d->seq = 1;
        d->ring[0] = p;
        d->ring_next = 1;
        break;
    }
    d->dec_off = p.dec;
    pgfeed__ctx_stats(d->base.ctx)->bytes_inflated += p.dec;
    d->skip = decoded - p.dec;
    d->skip_total = decoded;
    return 0;
}
