/*
 * decode_codec.h -- the interface between the decoder (decode_gzip.c) and the
 * codecs it runs for zstd (codec_zstd.c), bzip2 (codec_bzip2.c) and xz
 * (codec_xz.c), each built only when its library is found.
 *
 * A codec owns its library's decompression state for one stream (a zstd
 * frame, a bzip2 or xz stream) at a time. The decoder keeps detection, what
 * may come between and after streams (the next stream's magic bytes, xz's
 * stream padding), offsets, restart points and every error message: a codec
 * reports a failure as a code and a few words in msg.
 */
#ifndef PGFEED_DECODE_CODEC_H
#define PGFEED_DECODE_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct decode_codec; /* a codec's state, one per decoder */

#define CODEC_MSG 96 /* bytes of a codec's msg */

/*
 * A block boundary inside a stream, where a codec can start again (resume).
 * xz reports it at the end of a step (the block's header at the input taken
 * so far) and needs only info; bzip2's blocks start at any bit, and it
 * decides that a place is a boundary some bytes later: it says where (placed).
 */
struct codec_at {
    uint64_t raw;  /* placed: the next whole input byte, from the codec's first input byte */
    uint64_t dec;  /* placed: decoded bytes before the boundary, from its first output byte */
    uint32_t info; /* xz: the stream's check type; bzip2: the combined CRC of the blocks before */
    unsigned char bits;   /* bzip2: the block's first bits, the low bits of byte (0: none) */
    unsigned char byte;   /* bzip2: the input byte before raw, when bits */
    unsigned char level;  /* bzip2: the stream's block size digit, 1-9 */
    unsigned char placed; /* raw and dec are set; else the boundary is where the step stopped */
};

/* One step(): what the decoder lends, and what the codec reports back. */
struct codec_io {
    const unsigned char *src; /* input; advanced over what the codec took */
    size_t src_left;
    unsigned char *out; /* output buffer, out_cap bytes */
    size_t out_cap;
    size_t made;  /* out[0, made): made in this step */
    int ended;    /* the stream (frame) ended with its last input byte taken */
    int more_out; /* out is full: the codec may hold more output */
    int boundary; /* stopped at a block boundary inside the stream (xz: src starts with the block)
                   */
    struct codec_at at;  /* boundary: where it is, and what resume() needs to start there */
    uint64_t window;     /* CODEC_WINDOW: the bytes the stream asks for (0: unknown) */
    char msg[CODEC_MSG]; /* CODEC_CORRUPT: the library's words; CODEC_INTERNAL: the message */
};

enum { CODEC_OK, CODEC_CORRUPT, CODEC_WINDOW, CODEC_NOMEM, CODEC_INTERNAL };

struct decode_codec_ops {
    const char *name; /* "zstd": the format, in messages */
    const char *lib;  /* "libzstd": who reported a failure */
    size_t magic_len; /* bytes that begin every stream (frame) */
    uint64_t padding; /* zero padding allowed between and after streams: its unit (0: none) */
    /* p[0, n), n <= magic_len, may begin a stream: 1, else 0. */
    int (*magic)(const unsigned char *p, size_t n);
    /* A codec that refuses a stream needing more than max_window bytes. NULL: no memory. */
    struct decode_codec *(*create)(uint64_t max_window);
    /* Reads a new stream from its first byte on. CODEC_OK, CODEC_NOMEM or CODEC_INTERNAL. */
    int (*reset)(struct decode_codec *c, char *msg);
    /*
     * Reads on from a block boundary inside a stream (one step() reported
     * as io->at): the input starts with the block (bzip2: with the byte
     * after at->byte, whose low at->bits bits begin the block). NULL for a
     * codec without such boundaries. CODEC_OK, CODEC_NOMEM or CODEC_INTERNAL.
     */
    int (*resume)(struct decode_codec *c, const struct codec_at *at, char *msg);
    /*
     * Decompresses io->src into io->out until out is full, src is used up or
     * the stream ends (ended: src then starts right after it), or, for a codec
     * with resume(), a block boundary comes (boundary). CODEC_OK or a
     * failure; io->msg says more.
     */
    int (*step)(struct decode_codec *c, struct codec_io *io);
    void (*destroy)(struct decode_codec *c); /* c may be NULL */
};

#ifdef PGFEED_HAVE_ZSTD
extern const struct decode_codec_ops pgfeed__zstd_codec;
#endif
#ifdef PGFEED_HAVE_BZIP2
extern const struct decode_codec_ops pgfeed__bzip2_codec;
#endif
#ifdef PGFEED_HAVE_XZ
extern const struct decode_codec_ops pgfeed__xz_codec;
#endif

#endif
