/*
 * decode_engine.h -- the interface between decode_gzip.c and an engine that
 * inflates the deflate data of gzip members faster than zlib does.
 *
 * The engine owns its inflate state and what it needs to find block
 * boundaries. decode_gzip.c keeps detection, gzip headers (read by zlib),
 * trailers, check values, the access point ring and every error message;
 * an engine reports a failure as a code and a few words in io->msg.
 * The engine inflates raw: decode_gzip.c keeps the member's CRC-32 (with the
 * engine's crc32) and reads its trailer.
 */
#ifndef PGFEED_DECODE_ENGINE_H
#define PGFEED_DECODE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct decode_engine; /* an engine's state, one per decoder */

/* A block boundary the engine stopped at, or a restart point to go on from. */
struct engine_point {
    uint64_t raw;                /* the first input byte not wholly consumed */
    unsigned bits;               /* unused bits of the byte at raw - 1 */
    unsigned char byte;          /* that byte (0 without bits) */
    const unsigned char *window; /* the last wlen bytes decoded */
    uint32_t wlen;
};

/* One step(): what decode_gzip.c lends, and what the engine reports back. */
struct engine_io {
    const unsigned char *src; /* input; advanced over what the engine took */
    size_t src_left;
    uint64_t raw_off;   /* compressed offset of src[0]; advanced with it */
    unsigned char *out; /* output buffer, out_cap bytes */
    size_t out_cap;
    size_t made;     /* out[0, made): made in this step, also during at_boundary() */
    uint64_t dec_at; /* decoded offset of out[0] */
    size_t span;     /* decoded bytes between two access points */
    size_t checked;  /* out[0, checked) is in the check value (decode_gzip.c's) */
    int ended;       /* the deflate data ended; its trailer follows trl[0, trl_n), then src */
    int more_out;    /* the engine may hold more output for another step */
    unsigned char trl[8];
    unsigned trl_n;
    char msg[64]; /* ENGINE_CORRUPT: what was wrong; ENGINE_INTERNAL: the message */
    /* Whether an access point is due at decoded offset dec. */
    int (*due)(struct engine_io *io, uint64_t dec);
    /* The engine sits at a block boundary (p), or could not describe it (NULL); 1: recorded. */
    int (*at_boundary)(struct engine_io *io, const struct engine_point *p);
    void *arg; /* the decoder */
};

enum { ENGINE_OK, ENGINE_CORRUPT, ENGINE_INTERNAL };

struct decode_engine_ops {
    const char *name;                      /* in error details: "ISA-L reported ..." */
    struct decode_engine *(*create)(void); /* NULL: no memory */
    /* Starts a member's deflate data at compressed offset raw_off. */
    void (*reset)(struct decode_engine *e, uint64_t raw_off);
    /* After reset: goes on from restart point p instead. 0, or -1 when refused. */
    int (*prime)(struct decode_engine *e, const struct engine_point *p);
    /*
     * Inflates io->src into io->out until out is full, src is used up or the
     * deflate data ends, calling at_boundary when a point is due there.
     * ENGINE_OK, ENGINE_CORRUPT or ENGINE_INTERNAL (io->msg says more).
     */
    int (*step)(struct decode_engine *e, struct engine_io *io);
    uint32_t (*crc32)(uint32_t crc, const unsigned char *p, size_t n); /* gzip's CRC-32 */
    void (*destroy)(struct decode_engine *e);
};

/* The build's engine (inflate_isal.c with -Disal), or NULL: zlib alone. */
#ifdef PGFEED_HAVE_ISAL
extern const struct decode_engine_ops pgfeed__isal_engine;
#define PGFEED_GZIP_ENGINE       (&pgfeed__isal_engine)
#define PGFEED_GZIP_ENGINE_BUILT 1
#else
#define PGFEED_GZIP_ENGINE       ((const struct decode_engine_ops *)NULL)
#define PGFEED_GZIP_ENGINE_BUILT 0
#endif

#endif
