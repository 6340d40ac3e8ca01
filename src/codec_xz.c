/*
 * codec_xz.c -- the xz codec behind decode_codec.h: liblzma's .xz stream decoder.
 *
 * It owns one lzma_stream, set up anew for each .xz stream (`cat a.xz b.xz`
 * writes several; xz -T writes one stream of several blocks). It leaves
 * what comes between streams (the next stream's magic, stream padding: zero
 * bytes in multiples of four), offsets and messages to the decoder
 * (decode_gzip.c).
 *
 * liblzma checks each block's check (CRC-32, CRC-64 or SHA-256) and the
 * index, and reports a mismatch, like any damage, as LZMA_DATA_ERROR.
 *
 * The window limit: a stream's memory is mostly its dictionary (8 MiB for
 * xz -6, 64 MiB for -9, up to 1.5 GiB with --lzma2=dict=); liblzma's memlimit
 * is max_window plus 16 MiB for the rest (the index of many blocks), and a
 * stream needing more is refused before it is allocated (LZMA_MEMLIMIT_ERROR).
 *
 * Buffers: liblzma's (its dictionary, at most the limit).
 */
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"

#define OVERHEAD ((uint64_t)16 << 20) /* memory besides the dictionary we allow */

struct decode_codec {
    lzma_stream s;
    uint64_t memlimit;
};

static int xz_magic(const unsigned char *p, size_t n)
{
    static const unsigned char magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};

    return memcmp(p, magic, n) == 0;
}

static struct decode_codec *xz_create(uint64_t max_window)
{
    struct decode_codec *c = calloc(1, sizeof *c);
    lzma_stream init = LZMA_STREAM_INIT;

    if (c) {
        c->s = init;
        c->memlimit = max_window + OVERHEAD;
    }
    return c;
}

static int xz_reset(struct decode_codec *c, char *msg)
{
    lzma_ret rc = lzma_stream_decoder(&c->s, c->memlimit, 0);

    if (rc == LZMA_MEM_ERROR)
        return CODEC_NOMEM;
    if (rc != LZMA_OK) {
        snprintf(msg, CODEC_MSG, "liblzma refused to start a stream (%d)", (int)rc);
        return CODEC_INTERNAL;
    }
    return CODEC_OK;
}

static const char *xz_words(lzma_ret rc)
{
    switch (rc) {
    case LZMA_FORMAT_ERROR:
        return "file format not recognized";
    case LZMA_OPTIONS_ERROR:
        return "unsupported options";
    case LZMA_DATA_ERROR:
        return "compressed data is corrupt";
    case LZMA_BUF_ERROR:
        return "unexpected end of input";
    case LZMA_UNSUPPORTED_CHECK:
        return "unsupported integrity check";
    default:
        return "unexpected error";
    }
}

static int xz_step(struct decode_codec *c, struct codec_io *io)
{
    lzma_ret rc;

    c->s.next_in = io->src;
    c->s.avail_in = io->src_left;
    c->s.next_out = io->out;
    c->s.avail_out = io->out_cap;
    rc = lzma_code(&c->s, LZMA_RUN);
    io->src = c->s.next_in;
    io->src_left = c->s.avail_in;
    io->made = io->out_cap - c->s.avail_out;
    switch (rc) {
    case LZMA_OK:
    case LZMA_STREAM_END:
        io->ended = rc == LZMA_STREAM_END;
        io->more_out = !io->ended && c->s.avail_out == 0;
        return CODEC_OK;
    case LZMA_MEM_ERROR:
        return CODEC_NOMEM;
    case LZMA_MEMLIMIT_ERROR:
        io->window = lzma_memusage(&c->s);
        snprintf(io->msg, CODEC_MSG, "memory usage limit reached");
        return CODEC_WINDOW;
    default:
        snprintf(io->msg, CODEC_MSG, "%s", xz_words(rc));
        return rc == LZMA_PROG_ERROR ? CODEC_INTERNAL : CODEC_CORRUPT;
    }
}

static void xz_destroy(struct decode_codec *c)
{
    if (c) {
        lzma_end(&c->s);
        free(c);
    }
}

const struct decode_codec_ops pgfeed__xz_codec = {
    .name = "xz",
    .lib = "liblzma",
    .magic_len = 6,
    .padding = 4,
    .magic = xz_magic,
    .create = xz_create,
    .reset = xz_reset,
    .step = xz_step,
    .destroy = xz_destroy,
};
