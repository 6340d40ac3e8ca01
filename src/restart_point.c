/*
 * restart_point.c -- the restart point blob: a decoder's access point as bytes.
 *
 * It owns the blob's format: writing an access point out (with its window
 * compressed when that makes it smaller), reading one back with every check
 * of magic, version, length, CRC-32 and field consistency; and the ring of
 * the last points a decoder recorded. It leaves choosing the points (the
 * inflater, inflater.c, at its engines' block boundaries), setting a decoder
 * up from one (decode_gzip.c and the inflater), and storing the blob to the
 * checkpoint (sink and job).
 *
 * An access point is a place in the compressed input where inflating can
 * start over: the raw offset of the next whole input byte, the unused bits
 * of the byte before it and that byte, the decoded offset, the member's
 * decoded length and check value so far, and the 32 KiB window. Only the
 * last PGFEED_RP_RING points are kept: the decoder runs a few MiB at most
 * ahead of the rows the sink commits. The start of the input (raw 0,
 * decoded 0) is the first point of the ring; it is evicted like the others.
 * The first point of a restarted decoder is the restart point itself, window
 * included, so it can hand out restart points before it records any new one.
 * Batches ending between the same two points share one blob (cache).
 *
 * Format, version 1 (integers big-endian). A blob must stay readable by every
 * later pgfeed: checkpoints of older runs resume with it.
 *    0  4  magic "PGFR"
 *    4  1  version 1
 *    5  1  mode: 0 start of the input (detect as usual, skip from there),
 *          1 plain, 2 gzip, 3 zlib; 4 zstd, 5 bzip2, 6 xz: a frame (stream)
 *          boundary, the next one starting at the raw offset (no bits, no
 *          window, member raw offset = raw offset; added later in version 1:
 *          older pgfeeds refuse such a blob, this one reads every older blob);
 *          7 xz block: a block boundary inside the xz stream starting at the
 *          member raw offset (at least its 12-byte header before the raw
 *          offset), the next block's header at the raw offset; the check
 *          field holds the stream's check type (0..15), no bits, no window
 *          (added after 4-6, likewise);
 *          8 bzip2 block: a block boundary inside the bzip2 stream starting
 *          at the member raw offset (its 4-byte header and a block's magic
 *          and CRC before); the block's first bits are the unused bits of
 *          the partial byte (none: it starts at the raw offset); the check
 *          field holds the combined CRC of the stream's blocks before it,
 *          the member length field the stream's block size digit (1..9); no
 *          window (added after 7, likewise: pgfeeds before it refuse the
 *          blob as inconsistent, mode 8)
 *    6  1  unused bits in the partial byte, 0..7 (gzip, zlib, bzip2 block; else 0)
 *    7  1  the partial byte (the source byte at raw offset - 1), 0 without bits
 *    8  1  window encoding: 0 stored, 1 raw deflate (level 1)
 *    9  3  reserved, 0
 *   12  8  raw offset of the point: the first source byte the engine has not consumed
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
 * A point means the same whichever engine recorded it: a blob written by a
 * zlib-only build resumes in an ISA-L build and the other way round.
 *
 * Buffers: writing reserves the header, deflateBound(window) and the CRC in
 * the caller's buffer; reading inflates the window into the caller's
 * PGFEED_RP_WINSIZE bytes. The ring's windows, PGFEED_RP_RING *
 * PGFEED_RP_WINSIZE bytes, are allocated with its first window; its cache
 * holds the last blob made.
 */
#define ZLIB_CONST
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

#define RP_MAGIC   "PGFR"
#define RP_VERSION 1
#define RP_HEAD    64

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

static uint32_t get32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64be(const unsigned char *p)
{
    return (uint64_t)get32be(p) << 32 | get32be(p + 4);
}

int pgfeed__rp_encode(const struct access_point *p, enum pgfeed_rp_mode mode,
                      const unsigned char *window, struct pgfeed_buf *out)
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

int pgfeed__rp_decode(const void *blob, size_t n, uint64_t decoded, struct access_point *p,
                      enum pgfeed_rp_mode *mode, char **detail)
{
    const unsigned char *b = blob;
    unsigned enc;
    size_t wenc_len;

    *detail = NULL;
    if (n < RP_HEAD + 4 || memcmp(b, RP_MAGIC, 4) != 0) {
        *detail = pgfeed__strdup_printf("It is %zu bytes long and does not start with \"%s\".", n,
                                        RP_MAGIC);
        return PGFEED_ECHECKPOINT;
    }
    if (b[4] != RP_VERSION) {
        *detail = pgfeed__strdup_printf(
            "Its format version is %u; this pgfeed reads version %u only.", b[4], RP_VERSION);
        return PGFEED_ECHECKPOINT;
    }
    wenc_len = get32be(b + 60);
    if (wenc_len > n - RP_HEAD - 4 || n != RP_HEAD + wenc_len + 4) {
        *detail =
            pgfeed__strdup_printf("It is %zu bytes long, but says %zu.", n, RP_HEAD + wenc_len + 4);
        return PGFEED_ECHECKPOINT;
    }
    if (get32be(b + n - 4) != (uint32_t)crc32(0, b, (uInt)(n - 4))) {
        *detail = pgfeed__strdup_printf("Its CRC-32 does not match: it is damaged.");
        return PGFEED_ECHECKPOINT;
    }
    memset(p, 0, sizeof *p);
    *mode = (enum pgfeed_rp_mode)b[5];
    p->bits = b[6];
    p->byte = b[7];
    enc = b[8];
    p->raw = get64be(b + 12);
    p->dec = get64be(b + 20);
    p->member_raw = get64be(b + 28);
    p->member_no = get64be(b + 36);
    p->mlen = get64be(b + 44);
    p->check = get32be(b + 52);
    p->wlen = get32be(b + 56);
    if (b[5] > PGFEED_RP_BZIP2_BLOCK || p->bits > 7 || (p->bits == 0 && p->byte != 0) || enc > 1 ||
        b[9] | b[10] | b[11] || p->wlen > PGFEED_RP_WINSIZE || p->wlen > p->mlen ||
        (enc == 0 && wenc_len != p->wlen) || (p->wlen == 0 && wenc_len != 0) ||
        (*mode == PGFEED_RP_START && (p->raw | p->dec | p->bits | p->wlen) != 0) ||
        (*mode == PGFEED_RP_PLAIN && (p->raw != p->dec || p->bits || p->wlen)) ||
        ((*mode == PGFEED_RP_GZIP || *mode == PGFEED_RP_ZLIB) &&
         (p->raw < p->member_raw || p->raw - (p->bits ? 1 : 0) < 2 || p->dec < p->mlen)) ||
        (*mode >= PGFEED_RP_ZSTD && *mode <= PGFEED_RP_XZ &&
         (p->bits || p->wlen || p->mlen || p->check || p->raw != p->member_raw)) ||
        (*mode == PGFEED_RP_XZ_BLOCK &&
         (p->bits || p->wlen || p->mlen || p->check > 15 || p->member_raw > UINT64_MAX - 12 ||
          p->raw < p->member_raw + 12)) ||
        (*mode == PGFEED_RP_BZIP2_BLOCK &&
         (p->wlen || p->mlen < 1 || p->mlen > 9 || p->member_raw > UINT64_MAX - 15 ||
          p->raw < p->member_raw + 14 + (p->bits ? 1 : 0)))) {
        *detail = pgfeed__strdup_printf("Its fields are inconsistent (mode %u, raw offset "
                                        "%llu, %u bits, window %u bytes).",
                                        b[5], (unsigned long long)p->raw, p->bits, p->wlen);
        return PGFEED_ECHECKPOINT;
    }
    if (decoded < p->dec) {
        *detail = pgfeed__strdup_printf(
            "The checkpoint's decoded offset %llu is before the restart point's, %llu.",
            (unsigned long long)decoded, (unsigned long long)p->dec);
        return PGFEED_ECHECKPOINT;
    }
    return 0;
}

int pgfeed__rp_window(const void *blob, const struct access_point *p, unsigned char *window,
                      char **detail)
{
    const unsigned char *b = blob;
    size_t wenc_len = get32be(b + 60);
    z_stream z;
    int zret, ok;

    *detail = NULL;
    if (p->wlen == 0)
        return 0;
    if (b[8] == 0) {
        memcpy(window, b + RP_HEAD, p->wlen);
        return 0;
    }
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return UV_ENOMEM;
    z.next_in = b + RP_HEAD;
    z.avail_in = (uInt)wenc_len;
    z.next_out = window;
    z.avail_out = PGFEED_RP_WINSIZE;
    zret = inflate(&z, Z_FINISH);
    ok = zret == Z_STREAM_END && z.total_out == p->wlen && z.avail_in == 0;
    inflateEnd(&z);
    if (zret == Z_MEM_ERROR)
        return UV_ENOMEM;
    if (!ok) {
        *detail = pgfeed__strdup_printf("Its window does not decompress.");
        return PGFEED_ECHECKPOINT;
    }
    return 0;
}

void pgfeed__rp_ring_init(struct pgfeed_rp_ring *r, const struct access_point *p)
{
    if (p)
        r->pt[0] = *p;
    else {
        memset(&r->pt[0], 0, sizeof r->pt[0]);
        r->pt[0].start = 1;
    }
    r->pt[0].seq = r->seq = 1;
    r->next = 1;
}

const struct access_point *pgfeed__rp_ring_newest(const struct pgfeed_rp_ring *r)
{
    return &r->pt[(r->next + PGFEED_RP_RING - 1) % PGFEED_RP_RING];
}

unsigned char *pgfeed__rp_ring_window(struct pgfeed_rp_ring *r)
{
    if (!r->windows && !(r->windows = malloc((size_t)PGFEED_RP_RING * PGFEED_RP_WINSIZE)))
        return NULL;
    return r->windows + (size_t)r->next * PGFEED_RP_WINSIZE;
}

void pgfeed__rp_ring_push(struct pgfeed_rp_ring *r, const struct access_point *p)
{
    r->pt[r->next] = *p;
    r->pt[r->next].seq = ++r->seq;
    r->next = (r->next + 1) % PGFEED_RP_RING;
}

int pgfeed__rp_ring_blob(struct pgfeed_rp_ring *r, uint64_t decoded, enum pgfeed_rp_mode mode,
                         struct pgfeed_buf *out, uint64_t *raw_offset)
{
    const struct access_point *p = NULL;
    unsigned slot = 0;
    int rc;

    for (unsigned i = 1; i <= PGFEED_RP_RING; i++) {
        slot = (r->next + PGFEED_RP_RING - i) % PGFEED_RP_RING;
        if (r->pt[slot].seq == 0)
            break;
        if (r->pt[slot].dec <= decoded) {
            p = &r->pt[slot];
            break;
        }
    }
    if (!p)
        return 1;
    *raw_offset = p->raw - (p->bits ? 1 : 0);
    if (p->seq == r->cache_seq)
        return pgfeed__buf_append(out, r->cache.data, r->cache.len);
    size_t start = out->len;
    if (mode == PGFEED_RP_XZ && p->raw != p->member_raw)
        mode = PGFEED_RP_XZ_BLOCK; /* inside the stream: a block boundary */
    if (mode == PGFEED_RP_BZIP2 && p->raw != p->member_raw)
        mode = PGFEED_RP_BZIP2_BLOCK;
    rc = pgfeed__rp_encode(p, p->start ? PGFEED_RP_START : mode,
                           r->windows ? r->windows + (size_t)slot * PGFEED_RP_WINSIZE : NULL, out);
    if (rc != 0)
        return rc;
    /* Batches ending between the same two points share their blob. */
    r->cache.len = 0;
    r->cache_seq = 0;
    if (pgfeed__buf_append(&r->cache, out->data + start, out->len - start) == 0)
        r->cache_seq = p->seq;
    return 0;
}

void pgfeed__rp_ring_free(struct pgfeed_rp_ring *r)
{
    free(r->windows);
    pgfeed__buf_free(&r->cache);
}
