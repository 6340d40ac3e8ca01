/*
 * codec_xz.c -- the xz codec behind decode_codec.h: an .xz stream read block by block.
 *
 * It owns one lzma_stream and the parsing of one .xz stream at a time
 * (`cat a.xz b.xz` writes several; xz -T writes one stream of several
 * blocks): the stream header, each block header (lzma_block_header_decode),
 * each block (lzma_block_decoder), the index and the stream footer. Reading
 * the blocks itself rather than through lzma_stream_decoder lets it stop at
 * each block boundary (io->boundary) and start again there (resume): blocks
 * are independent, a block needs only the stream's check type. It leaves
 * what comes between streams (the next stream's magic, stream padding: zero
 * bytes in multiples of four), offsets and messages to the decoder
 * (decode_gzip.c).
 *
 * Checks, read from the stream's start: the stream header's CRC-32, each
 * block header's CRC-32 and each block's check (CRC-32, CRC-64 or SHA-256)
 * and sizes (liblzma), the index against the blocks read (lzma_index_hash:
 * count, sizes), the footer's magic and CRC-32, its flags against the
 * header's and its index size against the index's. Resumed at a block: the
 * same, except that the index is checked only in itself (its CRC-32 and its
 * size against the footer's), not against the blocks, the blocks before the
 * restart point being unread; and the check type comes from the restart
 * point, compared with the footer's. Any mismatch, like any damage, is
 * CODEC_CORRUPT.
 *
 * The window limit: a block's memory is mostly its dictionary (8 MiB for
 * xz -6, 64 MiB for -9, up to 1.5 GiB with --lzma2=dict=); a block whose
 * filters need more than max_window plus 16 MiB (liblzma's estimate) is
 * refused before it is allocated, and so is an index needing more than that
 * when read in itself (resumed).
 *
 * Buffers: liblzma's (a block's dictionary, at most the limit; the index of
 * the blocks read, a few bytes each), and one block header (at most 1 KiB).
 */
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"

#define OVERHEAD ((uint64_t)16 << 20) /* memory besides the dictionary we allow */

enum xz_seq { X_HEADER, X_BLOCK_HEADER, X_BLOCK, X_INDEX, X_FOOTER };

struct decode_codec {
    lzma_stream s;
    uint64_t memlimit;
    enum xz_seq seq;
    int mid;      /* resumed at a block: the index is read in itself */
    int announce; /* a block boundary is next: say so before taking its header */
    lzma_stream_flags flags;
    lzma_index_hash *ih; /* the blocks read, for the index (not mid) */
    lzma_index *idx;     /* mid: the index read */
    lzma_block block;
    lzma_filter filters[LZMA_FILTERS_MAX + 1];
    size_t need, have; /* buf: bytes wanted, bytes there */
    unsigned char buf[1024];
};

static int xz_magic(const unsigned char *p, size_t n)
{
    static const unsigned char magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};

    return memcmp(p, magic, n) == 0;
}

static void filters_free(struct decode_codec *c)
{
    for (size_t i = 0; i < LZMA_FILTERS_MAX && c->filters[i].id != LZMA_VLI_UNKNOWN; i++) {
        free(c->filters[i].options);
        c->filters[i].options = NULL;
    }
    c->filters[0].id = LZMA_VLI_UNKNOWN;
}

static struct decode_codec *xz_create(uint64_t max_window)
{
    struct decode_codec *c = calloc(1, sizeof *c);
    lzma_stream init = LZMA_STREAM_INIT;

    if (c) {
        c->s = init;
        c->memlimit = max_window + OVERHEAD;
        c->filters[0].id = LZMA_VLI_UNKNOWN;
    }
    return c;
}

static int xz_reset(struct decode_codec *c, char *msg)
{
    (void)msg;
    filters_free(c);
    if (!(c->ih = lzma_index_hash_init(c->ih, NULL)))
        return CODEC_NOMEM;
    c->seq = X_HEADER;
    c->need = LZMA_STREAM_HEADER_SIZE;
    c->have = 0;
    c->mid = c->announce = 0;
    return CODEC_OK;
}

/* Reads on at the block header the input starts with, in a stream of check type at->info. */
static int xz_resume(struct decode_codec *c, const struct codec_at *at, char *msg)
{
    uint32_t info = at->info;

    if (info > LZMA_CHECK_ID_MAX) {
        snprintf(msg, CODEC_MSG, "check type %u is not an xz check", (unsigned)info);
        return CODEC_INTERNAL;
    }
    filters_free(c);
    memset(&c->flags, 0, sizeof c->flags);
    c->flags.check = (lzma_check)info;
    c->flags.backward_size = LZMA_VLI_UNKNOWN;
    c->seq = X_BLOCK_HEADER;
    c->have = 0;
    c->mid = 1;
    c->announce = 0;
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

/* liblzma answered rc (not OK): the failure to report. */
static int xz_fail(struct decode_codec *c, lzma_ret rc, struct codec_io *io)
{
    switch (rc) {
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

/* Adds input to buf until it holds c->need bytes: 1 then, else 0 (input used up). */
static int gather(struct decode_codec *c, struct codec_io *io)
{
    size_t n = c->need - c->have < io->src_left ? c->need - c->have : io->src_left;

    memcpy(c->buf + c->have, io->src, n);
    c->have += n;
    io->src += n;
    io->src_left -= n;
    return c->have == c->need;
}

/* Runs liblzma's coder on io: rc; io advanced, made counted. */
static lzma_ret run(struct decode_codec *c, struct codec_io *io)
{
    lzma_ret rc;

    c->s.next_in = io->src;
    c->s.avail_in = io->src_left;
    c->s.next_out = io->out + io->made;
    c->s.avail_out = io->out_cap - io->made;
    rc = lzma_code(&c->s, LZMA_RUN);
    io->src = c->s.next_in;
    io->src_left = c->s.avail_in;
    io->made = io->out_cap - c->s.avail_out;
    return rc;
}

/* buf holds a whole block header: its block decoder set up, within the memory limit. */
static int block_start(struct decode_codec *c, struct codec_io *io)
{
    lzma_ret rc;
    uint64_t need;

    memset(&c->block, 0, sizeof c->block);
    c->block.version = 1;
    c->block.check = c->flags.check;
    c->block.filters = c->filters;
    c->block.header_size = (uint32_t)c->need;
    if ((rc = lzma_block_header_decode(&c->block, NULL, c->buf)) != LZMA_OK) {
        c->filters[0].id = LZMA_VLI_UNKNOWN; /* liblzma freed them */
        return xz_fail(c, rc, io);
    }
    need = lzma_raw_decoder_memusage(c->filters);
    if (need == UINT64_MAX)
        return xz_fail(c, LZMA_OPTIONS_ERROR, io);
    if (need > c->memlimit) {
        io->window = need;
        snprintf(io->msg, CODEC_MSG, "memory usage limit reached");
        return CODEC_WINDOW;
    }
    if ((rc = lzma_block_decoder(&c->s, &c->block)) != LZMA_OK)
        return xz_fail(c, rc, io);
    c->seq = X_BLOCK;
    return CODEC_OK;
}

/* X_BLOCK_HEADER: the index indicator, or a block header (announced first). 1: go on. */
static int block_header(struct decode_codec *c, struct codec_io *io, int *rc)
{
    lzma_ret r;

    if (c->have == 0) {
        if (io->src[0] == 0x00) {
            c->seq = X_INDEX;
            if (c->mid && (r = lzma_index_decoder(&c->s, &c->idx, c->memlimit)) != LZMA_OK) {
                *rc = xz_fail(c, r, io);
                return 0;
            }
            return 1;
        }
        if (c->announce) {
            c->announce = 0;
            io->boundary = 1;
            io->at.info = (uint32_t)c->flags.check;
            return 0;
        }
        c->need = lzma_block_header_size_decode(io->src[0]);
    }
    if (!gather(c, io))
        return 0;
    c->have = 0;
    *rc = block_start(c, io);
    return *rc == CODEC_OK;
}

/* X_BLOCK: decodes until the block ends (1), or out is full or src used up (0). */
static int block_data(struct decode_codec *c, struct codec_io *io, int *rc)
{
    lzma_ret r = run(c, io);

    if (r == LZMA_OK) {
        io->more_out = io->made == io->out_cap;
        return 0;
    }
    if (r != LZMA_STREAM_END) {
        *rc = xz_fail(c, r, io);
        return 0;
    }
    filters_free(c);
    if (!c->mid && (r = lzma_index_hash_append(c->ih, lzma_block_unpadded_size(&c->block),
                                               c->block.uncompressed_size)) != LZMA_OK) {
        *rc = xz_fail(c, r, io);
        return 0;
    }
    c->seq = X_BLOCK_HEADER;
    c->announce = 1;
    return 1;
}

/* X_INDEX: reads the index (checked against the blocks unless mid). 1: it ended. */
static int index_read(struct decode_codec *c, struct codec_io *io, int *rc)
{
    lzma_ret r;

    if (c->mid) {
        if ((r = run(c, io)) == LZMA_STREAM_END) {
            c->flags.backward_size = lzma_index_size(c->idx);
            lzma_index_end(c->idx, NULL);
            c->idx = NULL;
        }
    } else {
        size_t pos = 0;
        r = lzma_index_hash_decode(c->ih, io->src, &pos, io->src_left);
        io->src += pos;
        io->src_left -= pos;
        if (r == LZMA_STREAM_END)
            c->flags.backward_size = lzma_index_hash_size(c->ih);
    }
    if (r != LZMA_OK && r != LZMA_STREAM_END)
        *rc = xz_fail(c, r, io);
    if (r != LZMA_STREAM_END)
        return 0;
    c->seq = X_FOOTER;
    c->need = LZMA_STREAM_HEADER_SIZE;
    c->have = 0;
    return 1;
}

/* X_HEADER, X_FOOTER: the stream's first or last 12 bytes. 1: go on (the header read). */
static int header_footer(struct decode_codec *c, struct codec_io *io, int *rc)
{
    lzma_stream_flags footer;
    lzma_ret r;

    if (!gather(c, io))
        return 0;
    c->have = 0;
    if (c->seq == X_HEADER) {
        if ((r = lzma_stream_header_decode(&c->flags, c->buf)) != LZMA_OK) {
            *rc = xz_fail(c, r, io);
            return 0;
        }
        c->seq = X_BLOCK_HEADER;
        return 1;
    }
    if ((r = lzma_stream_footer_decode(&footer, c->buf)) != LZMA_OK ||
        (r = lzma_stream_flags_compare(&c->flags, &footer)) != LZMA_OK) {
        *rc = xz_fail(c, r, io);
        return 0;
    }
    io->ended = 1;
    return 0;
}

static int xz_step(struct decode_codec *c, struct codec_io *io)
{
    int rc = CODEC_OK, go = 1;

    io->made = 0;
    while (go && rc == CODEC_OK) {
        if (c->seq == X_BLOCK ? io->made == io->out_cap : io->src_left == 0) {
            io->more_out = c->seq == X_BLOCK;
            break;
        }
        switch (c->seq) {
        case X_BLOCK_HEADER:
            go = block_header(c, io, &rc);
            break;
        case X_BLOCK:
            go = block_data(c, io, &rc);
            break;
        case X_INDEX:
            go = index_read(c, io, &rc);
            break;
        default:
            go = header_footer(c, io, &rc);
            break;
        }
    }
    if (rc != CODEC_OK || io->ended || io->boundary)
        io->more_out = 0;
    return rc;
}

static void xz_destroy(struct decode_codec *c)
{
    if (c) {
        filters_free(c);
        lzma_index_end(c->idx, NULL);
        lzma_index_hash_end(c->ih, NULL);
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
    .resume = xz_resume,
    .step = xz_step,
    .destroy = xz_destroy,
};
