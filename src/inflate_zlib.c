/*
 * inflate_zlib.c -- the zlib engine: zlib's inflate stream behind decode_engine.h.
 *
 * It owns the z_stream, the choice of flush mode, and the block boundaries
 * zlib stops at, with the window it hands out for a point there. It leaves
 * detection, gzip members, the trailers of members inflated raw, the access
 * point ring and every error message to decode_gzip.c; zlib's own words for
 * corrupt data pass through in msg.
 *
 * Modes: ENGINE_GZIP inflates with windowBits 15+16, ENGINE_ZLIB with 15;
 * in both zlib reads the header and checks the trailer (CRC-32 and length,
 * or Adler-32) itself, and its running check value (zs.adler) goes with each
 * point. ENGINE_GZIP_HEADER is ENGINE_GZIP with Z_BLOCK, stopping right after
 * the header, where a faster engine takes the deflate data. ENGINE_RAW
 * inflates with -15: a member resumed from a restart point, primed with
 * inflatePrime (the point's unused bits) and inflateSetDictionary (its
 * window); decode_gzip.c then keeps the check value and reads the trailer.
 * reset() initializes zlib the first time, then resets it (inflateReset2) for
 * each next gzip member.
 *
 * Access points (zlib's examples/zran.c technique): once a point is due
 * (io->due: the span has passed since the last one), input is inflated with
 * Z_BLOCK (until then with Z_NO_FLUSH, as each return costs zlib a window
 * update), which makes inflate return at each deflate block boundary
 * (data_type & 128), also right after a gzip/zlib header, so inputs of many
 * small members (bgzip, pigz -i) have points too. At the first boundary that
 * does not end a stream's last block (!(data_type & 64)) the boundary goes to
 * io->at_boundary: its unused bits (data_type & 7), the last input byte
 * inflate consumed, and the window from inflateGetDictionary, taken only then.
 *
 * Buffers: zlib's state and 32 KiB window (zlib allocates them); win, 32 KiB,
 * a point's window, allocated with the first point.
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "decode_engine.h"

#define WINSIZE 32768u /* deflate's window */

struct decode_engine {
    z_stream zs;
    int init; /* inflateInit2 succeeded: inflateEnd on destroy */
    enum engine_mode mode;
    unsigned char last_byte; /* the last input byte inflate consumed */
    unsigned char *win;      /* a point's window, WINSIZE bytes */
};

static struct decode_engine *zlib_create(void)
{
    return calloc(1, sizeof(struct decode_engine));
}

static int window_bits(enum engine_mode mode)
{
    switch (mode) {
    case ENGINE_RAW:
        return -15;
    case ENGINE_ZLIB:
        return 15;
    default:
        return 15 + 16;
    }
}

static int zlib_reset(struct decode_engine *e, enum engine_mode mode, uint64_t raw_off, char *msg)
{
    int zret;

    e->mode = mode;
    if (e->init) { /* only ever for the next gzip member */
        if (inflateReset2(&e->zs, window_bits(mode)) == Z_OK)
            return ENGINE_OK;
        snprintf(msg, ENGINE_MSG, "could not reset zlib for the next gzip member");
        return ENGINE_INTERNAL;
    }
    zret = inflateInit2(&e->zs, window_bits(mode));
    if (zret == Z_MEM_ERROR)
        return ENGINE_NOMEM;
    if (zret != Z_OK) {
        snprintf(msg, ENGINE_MSG, "could not initialize zlib: %s", zError(zret));
        return ENGINE_INTERNAL;
    }
    e->init = 1;
    return ENGINE_OK;
}

static int zlib_prime(struct decode_engine *e, const struct engine_point *p)
{
    if ((p->bits && inflatePrime(&e->zs, (int)p->bits, p->byte >> (8 - p->bits)) != Z_OK) ||
        (p->wlen && inflateSetDictionary(&e->zs, p->window, p->wlen) != Z_OK))
        return -1;
    return 0;
}

/* At a block boundary: describes it to the decoder, which may record it as a point. */
static void zlib_point(struct decode_engine *e, struct engine_io *io)
{
    struct engine_point p = {.raw = io->raw_off,
                             .bits = (unsigned)(e->zs.data_type & 7),
                             .byte = e->last_byte,
                             .check = (uint32_t)e->zs.adler};
    uInt wlen = 0;

    /* Without memory for it, or (cannot happen) a window, no point: a resume re-reads more. */
    if ((!e->win && !(e->win = malloc(WINSIZE))) ||
        inflateGetDictionary(&e->zs, e->win, &wlen) != Z_OK || wlen > WINSIZE) {
        io->at_boundary(io, NULL);
        return;
    }
    p.window = e->win;
    p.wlen = wlen;
    io->at_boundary(io, &p);
}

/* How the step that ended with zret (after taking used bytes) went. */
static int zlib_result(struct decode_engine *e, struct engine_io *io, int zret, uInt used)
{
    switch (zret) {
    case Z_OK:
        /* Z_BLOCK stops at the first block boundary, right after the header. */
        io->ended = e->mode == ENGINE_GZIP_HEADER && (e->zs.data_type & 128);
        return ENGINE_OK;
    case Z_STREAM_END: /* ENGINE_RAW: the trailer is next in src */
        io->ended = 1;
        return ENGINE_OK;
    case Z_BUF_ERROR: /* no progress possible: zlib needs more input */
        if (used == 0 && io->made == 0 && io->src_left > 0) {
            snprintf(io->msg, sizeof io->msg, "zlib made no progress");
            return ENGINE_INTERNAL;
        }
        return ENGINE_OK;
    case Z_MEM_ERROR:
        return ENGINE_NOMEM;
    case Z_NEED_DICT:
        return ENGINE_NEED_DICT;
    default:
        snprintf(io->msg, sizeof io->msg, "%s", e->zs.msg ? e->zs.msg : zError(zret));
        return ENGINE_CORRUPT;
    }
}

static int zlib_step(struct decode_engine *e, struct engine_io *io)
{
    z_stream *zs = &e->zs;
    uInt avail = io->src_left > UINT_MAX ? UINT_MAX : (uInt)io->src_left, used;
    int hdr = e->mode == ENGINE_GZIP_HEADER; /* Z_BLOCK, to stop right after it */
    int zret;

    io->made = 0;
    io->ended = 0;
    zs->next_in = io->src;
    zs->avail_in = avail;
    zs->next_out = io->out;
    zs->avail_out = (uInt)io->out_cap;
    for (;;) {
        uInt before = zs->avail_in;

        /* Z_BLOCK only once a point is due: each return costs zlib a window update. */
        io->made = io->out_cap - zs->avail_out;
        zret = inflate(zs, hdr || io->due(io, io->dec_at + io->made) ? Z_BLOCK : Z_NO_FLUSH);
        if (zs->avail_in != before) {
            io->raw_off += before - zs->avail_in;
            e->last_byte = zs->next_in[-1];
        }
        /* Z_BLOCK returns at each block end: go on unless out or src ran out. */
        if (zret != Z_OK || !(zs->data_type & 128))
            break;
        io->made = io->out_cap - zs->avail_out;
        if (!(zs->data_type & 64) && io->due(io, io->dec_at + io->made))
            zlib_point(e, io);
        if (hdr || zs->avail_in == 0 || zs->avail_out == 0)
            break;
    }
    used = avail - zs->avail_in;
    io->src += used;
    io->src_left -= used;
    io->made = io->out_cap - zs->avail_out;
    io->more_out = zret == Z_OK && zs->avail_out == 0;
    return zlib_result(e, io, zret, used);
}

static uint32_t zlib_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    return (uint32_t)crc32(crc, p, (uInt)n); /* n is at most out_chunk, which fits */
}

static void zlib_destroy(struct decode_engine *e)
{
    if (!e)
        return;
    if (e->init)
        inflateEnd(&e->zs);
    free(e->win);
    free(e);
}

const struct decode_engine_ops pgfeed__zlib_engine = {
    .name = "zlib",
    .create = zlib_create,
    .reset = zlib_reset,
    .prime = zlib_prime,
    .step = zlib_step,
    .crc32 = zlib_crc32,
    .destroy = zlib_destroy,
};
