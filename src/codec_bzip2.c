/*
 * codec_bzip2.c -- the bzip2 codec behind decode_codec.h: libbz2's streaming decoder.
 *
 * It owns one bz_stream, set up anew for each stream (pbzip2 and `cat a.bz2
 * b.bz2` write several). It leaves what comes between streams, offsets and
 * messages to the decoder (decode_gzip.c).
 *
 * libbz2 checks each block's CRC and the stream's combined CRC and reports a
 * mismatch, like any damage, as BZ_DATA_ERROR. Its window is one block, at
 * most 900 kB (the level, 1-9, in the header): max_window does not concern it.
 *
 * Buffers: libbz2's, about 3.6 MiB for a level 9 stream (not the small mode:
 * twice as slow for 2.3 MiB less).
 */
#include <bzlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"

struct decode_codec {
    bz_stream bz;
    int live; /* BZ2_bzDecompressInit ran, BZ2_bzDecompressEnd not yet */
};

static int bzip2_magic(const unsigned char *p, size_t n)
{
    return memcmp(p, "BZh", n < 3 ? n : 3) == 0 && (n < 4 || (p[3] >= '1' && p[3] <= '9'));
}

static struct decode_codec *bzip2_create(uint64_t max_window)
{
    return calloc(1, sizeof(struct decode_codec));
}

static void bzip2_end(struct decode_codec *c)
{
    if (c->live)
        BZ2_bzDecompressEnd(&c->bz);
    c->live = 0;
}

static int bzip2_reset(struct decode_codec *c, char *msg)
{
    int rc;

    bzip2_end(c);
    memset(&c->bz, 0, sizeof c->bz);
    rc = BZ2_bzDecompressInit(&c->bz, 0, 0);
    if (rc == BZ_MEM_ERROR)
        return CODEC_NOMEM;
    if (rc != BZ_OK) {
        snprintf(msg, CODEC_MSG, "libbz2 refused to start a stream (%d)", rc);
        return CODEC_INTERNAL;
    }
    c->live = 1;
    return CODEC_OK;
}

static const char *bz_words(int rc)
{
    switch (rc) {
    case BZ_DATA_ERROR_MAGIC:
        return "not a bzip2 stream";
    case BZ_DATA_ERROR:
        return "data integrity (CRC) error in data";
    default:
        return "unexpected error";
    }
}

static int bzip2_step(struct decode_codec *c, struct codec_io *io)
{
    /* avail_in and avail_out are unsigned ints: the decoder's buffers stay far below 4 GiB. */
    unsigned in = io->src_left > 1u << 30 ? 1u << 30 : (unsigned)io->src_left;
    int rc;

    c->bz.next_in = (char *)(uintptr_t)io->src;
    c->bz.avail_in = in;
    c->bz.next_out = (char *)io->out;
    c->bz.avail_out = (unsigned)io->out_cap;
    rc = BZ2_bzDecompress(&c->bz);
    io->src += in - c->bz.avail_in;
    io->src_left -= in - c->bz.avail_in;
    io->made = io->out_cap - c->bz.avail_out;
    if (rc == BZ_MEM_ERROR)
        return CODEC_NOMEM;
    if (rc != BZ_OK && rc != BZ_STREAM_END) {
        snprintf(io->msg, CODEC_MSG, "%s", bz_words(rc));
        return rc == BZ_DATA_ERROR || rc == BZ_DATA_ERROR_MAGIC ? CODEC_CORRUPT : CODEC_INTERNAL;
    }
    io->ended = rc == BZ_STREAM_END;
    io->more_out = !io->ended && c->bz.avail_out == 0;
    return CODEC_OK;
}

static void bzip2_destroy(struct decode_codec *c)
{
    if (c) {
        bzip2_end(c);
        free(c);
    }
}

const struct decode_codec_ops pgfeed__bzip2_codec = {
    .name = "bzip2",
    .lib = "libbz2",
    .magic_len = 4,
    .padding = 0,
    .magic = bzip2_magic,
    .create = bzip2_create,
    .reset = bzip2_reset,
    .step = bzip2_step,
    .destroy = bzip2_destroy,
};
