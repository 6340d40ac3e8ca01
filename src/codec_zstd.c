/*
 * codec_zstd.c -- the zstd codec behind decode_codec.h: libzstd's streaming decoder.
 *
 * It owns one ZSTD_DCtx and the frame header of the frame being read. It
 * leaves what comes between frames (the next frame's magic, trailing
 * garbage), offsets and messages to the decoder (decode_gzip.c).
 *
 * The window limit: a frame's header says how much history (its window) the
 * decoder must keep, up to 2 GiB (zstd --long=31); libzstd would allocate it
 * as asked, up to its own windowLogMax. We hold each frame's header back
 * (at most 18 bytes) until it is whole, read its window size ourselves
 * (RFC 8878 3.1.1.1: the window descriptor, or the content size of a
 * single-segment frame) and refuse one above max_window before libzstd sees
 * it; libzstd's own limit is raised to its maximum so that it never refuses
 * first with less to say. Skippable frames (magic 0x184D2A50-5F) have no
 * window and go to libzstd as they are.
 *
 * Buffers: libzstd's (its window, at most max_window, and one block of at most
 * 128 KiB), and hdr, 18 bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "decode_codec.h"

#define HDR_MAX 18 /* magic, descriptor, window, dictionary id, content size */

struct decode_codec {
    ZSTD_DCtx *z;
    uint64_t max_window;
    unsigned char hdr[HDR_MAX]; /* the frame header held back, hdr_n bytes so far */
    size_t hdr_n;
    int in_frame; /* the header went to libzstd */
};

static int zstd_magic(const unsigned char *p, size_t n)
{
    static const unsigned char frame[4] = {0x28, 0xb5, 0x2f, 0xfd};
    static const unsigned char skip[4] = {0x50, 0x2a, 0x4d, 0x18};

    if (memcmp(p, frame, n) == 0)
        return 1;
    return n == 0 || ((p[0] & 0xf0) == 0x50 && memcmp(p + 1, skip + 1, n - 1) == 0);
}

static struct decode_codec *zstd_create(uint64_t max_window)
{
    struct decode_codec *c = calloc(1, sizeof *c);
    ZSTD_bounds b = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);

    if (!c || !(c->z = ZSTD_createDCtx())) {
        free(c);
        return NULL;
    }
    if (!ZSTD_isError(b.error))
        ZSTD_DCtx_setParameter(c->z, ZSTD_d_windowLogMax, b.upperBound);
    c->max_window = max_window;
    return c;
}

static int zstd_reset(struct decode_codec *c, char *msg)
{
    size_t rc = ZSTD_DCtx_reset(c->z, ZSTD_reset_session_only);

    c->hdr_n = 0;
    c->in_frame = 0;
    if (ZSTD_isError(rc)) {
        snprintf(msg, CODEC_MSG, "libzstd: %s", ZSTD_getErrorName(rc));
        return CODEC_INTERNAL;
    }
    return CODEC_OK;
}

static uint64_t get_le(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;

    while (n--)
        v = v << 8 | p[n];
    return v;
}

/* The header's length once hdr_n >= 5 (0: a skippable frame, whose 8 bytes go as they are). */
static size_t header_len(const struct decode_codec *c)
{
    static const unsigned did_len[4] = {0, 1, 2, 4};
    unsigned fhd = c->hdr[4], single = fhd >> 5 & 1, fcs = fhd >> 6;
    unsigned fcs_len = fcs == 0 ? single : 1u << fcs;

    if (c->hdr[0] != 0x28)
        return 0;
    return 5 + !single + did_len[fhd & 3] + fcs_len;
}

/* The window a whole header asks for (RFC 8878 3.1.1.1.2). */
static uint64_t header_window(const struct decode_codec *c)
{
    static const unsigned did_len[4] = {0, 1, 2, 4};
    unsigned fhd = c->hdr[4], single = fhd >> 5 & 1, fcs = fhd >> 6;
    unsigned fcs_len = fcs == 0 ? single : 1u << fcs;
    uint64_t base, v;

    if (single) {
        v = get_le(c->hdr + 5 + did_len[fhd & 3], fcs_len);
        return fcs_len == 2 ? v + 256 : v;
    }
    base = (uint64_t)1 << (10 + (c->hdr[5] >> 3));
    return base + base / 8 * (c->hdr[5] & 7);
}

static int zstd_error(size_t rc, struct codec_io *io)
{
    snprintf(io->msg, CODEC_MSG, "%s", ZSTD_getErrorName(rc));
    if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation)
        return CODEC_NOMEM;
    return CODEC_CORRUPT;
}

/*
 * Holds the frame header back from io->src until it is whole: 1 while it is
 * not, 0 when hdr is ready to go to libzstd, or a failure (negative).
 */
static int take_header(struct decode_codec *c, struct codec_io *io)
{
    size_t want = c->hdr_n < 5 ? 5 : header_len(c);

    if (want == 0) /* a skippable frame: no window to weigh */
        return 0;
    while (c->hdr_n < want && io->src_left > 0) {
        c->hdr[c->hdr_n++] = *io->src++;
        io->src_left--;
        if (c->hdr_n == 5 && (want = header_len(c)) == 0)
            return 0;
    }
    if (c->hdr_n < want)
        return 1;
    if (header_window(c) > c->max_window) {
        io->window = header_window(c);
        snprintf(io->msg, CODEC_MSG, "window of %llu bytes", (unsigned long long)io->window);
        return -CODEC_WINDOW;
    }
    return 0;
}

static int zstd_step(struct decode_codec *c, struct codec_io *io)
{
    ZSTD_outBuffer out = {io->out, io->out_cap, 0};
    ZSTD_inBuffer in;
    size_t rc;

    if (!c->in_frame) {
        int t = take_header(c, io);
        if (t > 0)
            return CODEC_OK;
        if (t < 0)
            return -t;
        c->in_frame = 1;
        in = (ZSTD_inBuffer){c->hdr, c->hdr_n, 0};
        rc = ZSTD_decompressStream(c->z, &out, &in);
        if (ZSTD_isError(rc))
            return zstd_error(rc, io);
        if (in.pos != in.size) {
            snprintf(io->msg, CODEC_MSG, "libzstd did not take a frame header");
            return CODEC_INTERNAL;
        }
    }
    in = (ZSTD_inBuffer){io->src, io->src_left, 0};
    rc = ZSTD_decompressStream(c->z, &out, &in);
    io->src += in.pos;
    io->src_left -= in.pos;
    io->made = out.pos;
    if (ZSTD_isError(rc))
        return zstd_error(rc, io);
    io->ended = rc == 0;
    io->more_out = !io->ended && out.pos == out.size;
    return CODEC_OK;
}

static void zstd_destroy(struct decode_codec *c)
{
    if (c) {
        ZSTD_freeDCtx(c->z);
        free(c);
    }
}

const struct decode_codec_ops pgfeed__zstd_codec = {
    .name = "zstd",
    .lib = "libzstd",
    .magic_len = 4,
    .padding = 0,
    .magic = zstd_magic,
    .create = zstd_create,
    .reset = zstd_reset,
    .step = zstd_step,
    .destroy = zstd_destroy,
};
