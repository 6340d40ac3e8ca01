/*
 * decode_engine.h -- the interface between the decoder's inflater (inflater.c)
 * and the engines that inflate for it: zlib (inflate_zlib.c, always built)
 * and, when the build has one, a faster engine for gzip members' deflate data
 * (ISA-L, inflate_isal.c).
 *
 * An engine owns its inflate state and what it needs to find block
 * boundaries. The inflater keeps the check value of what is inflated raw and
 * the access point ring; decode_gzip.c keeps detection, gzip members, the
 * trailers of members inflated raw and every error message: an engine
 * reports a failure as a code and a few words in msg. zlib reads every mode;
 * a faster engine reads ENGINE_RAW only: zlib reads each gzip header
 * (ENGINE_GZIP_HEADER), the faster engine the deflate data after it, and the
 * member's CRC-32 is kept with that engine's crc32.
 */
#ifndef PGFEED_DECODE_ENGINE_H
#define PGFEED_DECODE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct decode_engine; /* an engine's state, one per decoder */

/* What an engine reads from reset() on. */
enum engine_mode {
    ENGINE_RAW,         /* deflate data alone: the check value and the trailer are the decoder's */
    ENGINE_GZIP,        /* a gzip member, header to trailer (checked) */
    ENGINE_GZIP_HEADER, /* a gzip member's header only: step() stops right after it */
    ENGINE_ZLIB,        /* a zlib stream, header to trailer (checked) */
};

#define ENGINE_MSG 64 /* bytes of an engine's msg */

/* A block boundary the engine stopped at, or a restart point to go on from. */
struct engine_point {
    uint64_t raw;                /* the first input byte not wholly consumed */
    unsigned bits;               /* unused bits of the byte at raw - 1 */
    unsigned char byte;          /* that byte (0 without bits) */
    uint32_t check;              /* ENGINE_GZIP, ENGINE_ZLIB: the stream's check value so far */
    const unsigned char *window; /* the last wlen bytes decoded */
    uint32_t wlen;
};

/* One step(): what the inflater lends, and what the engine reports back. */
struct engine_io {
    const unsigned char *src; /* input; advanced over what the engine took */
    size_t src_left;
    uint64_t raw_off;   /* compressed offset of src[0]; advanced with it */
    unsigned char *out; /* output buffer, out_cap bytes */
    size_t out_cap;
    size_t made;     /* out[0, made): made in this step, also during at_boundary() */
    uint64_t dec_at; /* decoded offset of out[0] */
    size_t span;     /* decoded bytes between two access points */
    size_t checked;  /* out[0, checked) is in the check value (the inflater's) */
    /*
     * What the mode reads ended: ENGINE_RAW the deflate data (its trailer
     * follows trl[0, trl_n), then src); ENGINE_GZIP, ENGINE_ZLIB the stream,
     * its trailer checked; ENGINE_GZIP_HEADER the header.
     */
    int ended;
    int more_out; /* the engine may hold more output for another step */
    unsigned char trl[8];
    unsigned trl_n;
    char msg[ENGINE_MSG]; /* ENGINE_CORRUPT: what was wrong; ENGINE_INTERNAL: the message */
    /* Whether an access point is due at decoded offset dec. */
    int (*due)(struct engine_io *io, uint64_t dec);
    /* The engine sits at a block boundary (p), or could not describe it (NULL); 1: recorded. */
    int (*at_boundary)(struct engine_io *io, const struct engine_point *p);
    void *arg; /* the inflater */
};

enum { ENGINE_OK, ENGINE_CORRUPT, ENGINE_INTERNAL, ENGINE_NOMEM, ENGINE_NEED_DICT };

struct decode_engine_ops {
    const char *name;                      /* in error details: "ISA-L reported ..." */
    struct decode_engine *(*create)(void); /* NULL: no memory */
    /*
     * Starts reading in mode at compressed offset raw_off. ENGINE_OK,
     * ENGINE_NOMEM, or ENGINE_INTERNAL with the message in msg (ENGINE_MSG bytes).
     */
    int (*reset)(struct decode_engine *e, enum engine_mode mode, uint64_t raw_off, char *msg);
    /* After reset in ENGINE_RAW: goes on from restart point p instead. 0, or -1 when refused. */
    int (*prime)(struct decode_engine *e, const struct engine_point *p);
    /*
     * Inflates io->src into io->out until out is full, src is used up or what
     * the mode reads ends, calling at_boundary when a point is due there.
     * ENGINE_OK, or a failure: ENGINE_CORRUPT or ENGINE_INTERNAL (io->msg says
     * more), ENGINE_NOMEM, ENGINE_NEED_DICT (a zlib stream with a preset dictionary).
     */
    int (*step)(struct decode_engine *e, struct engine_io *io);
    uint32_t (*crc32)(uint32_t crc, const unsigned char *p, size_t n); /* gzip's CRC-32 */
    void (*destroy)(struct decode_engine *e);                          /* e may be NULL */
};

extern const struct decode_engine_ops pgfeed__zlib_engine; /* inflate_zlib.c */

/* The build's faster engine (inflate_isal.c with -Disal), or NULL: zlib alone. */
#ifdef PGFEED_HAVE_ISAL
extern const struct decode_engine_ops pgfeed__isal_engine;
#define PGFEED_GZIP_ENGINE       (&pgfeed__isal_engine)
#define PGFEED_GZIP_ENGINE_BUILT 1
#else
#define PGFEED_GZIP_ENGINE       ((const struct decode_engine_ops *)NULL)
#define PGFEED_GZIP_ENGINE_BUILT 0
#endif

#endif
