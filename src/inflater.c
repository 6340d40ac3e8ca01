/*
 * inflater.c -- the decoder's inflater: runs the engines and records access points.
 *
 * It owns which engine inflates which part of the input, the check value of
 * a member inflated raw, and the access points recorded at the engines'
 * block boundaries (kept in the ring, restart_point.c's). It leaves
 * detection, gzip members' starts and ends, trailers, skipping, buffers and
 * every error message to decode_gzip.c (through inflater.h), and inflating
 * itself to the engines behind decode_engine.h.
 *
 * Engines: zlib (inflate_zlib.c) reads zlib streams and gzip members whole,
 * or, with a faster engine (ISA-L, inflate_isal.c), only each gzip header:
 * the faster engine then inflates the member's deflate data raw. A member
 * inflated raw, by that engine or by zlib when resumed from a restart point,
 * has its check value kept here over the output (with the faster engine's
 * crc32 when there is one); decode_gzip.c compares it with the trailer.
 *
 * Access points (zlib's examples/zran.c technique; restart_point.c says what
 * a point holds), so that a resumed job need not re-read the compressed file
 * from the start: once the span (1 MiB) of decoded bytes has passed since
 * the previous point, the engine describes the next deflate block boundary it
 * stops at (inflate_zlib.c and inflate_isal.c say how). We keep it unless it
 * is the newest point already or its window is not the member's last
 * min(length, 32 KiB) decoded bytes. A point means the same with either
 * engine. A restart primes the engine that will inflate the rest of the
 * member with the point's unused bits and window, and the point becomes the
 * ring's first, window included.
 *
 * Buffers: the engines' own, and the ring's windows, allocated with the first
 * point recorded (or the restart point).
 */
#define ZLIB_CONST
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h> /* adler32, for a zlib stream resumed raw */

#include "inflater.h"

#define WINSIZE PGFEED_RP_WINSIZE

void pgfeed__inflater_init(struct inflater *f, const struct decode_engine_ops *engine, size_t span)
{
    memset(f, 0, sizeof *f);
    f->engine = engine;
    f->span = span;
    pgfeed__rp_ring_init(&f->ring, NULL); /* the start of the input */
}

void pgfeed__inflater_free(struct inflater *f)
{
    if (f->zlib.e)
        f->zlib.ops->destroy(f->zlib.e);
    if (f->fast.e)
        f->fast.ops->destroy(f->fast.e);
    pgfeed__rp_ring_free(&f->ring);
}

uint64_t pgfeed__inflater_member_len(const struct inflater *f)
{
    return f->mlen_base + f->member_made;
}

/* ENGINE_RAW: the check value goes on over out[from, to). Returns to. */
static size_t check_out(struct inflater *f, const unsigned char *out, size_t from, size_t to)
{
    if (to <= from)
        return to;
    if (f->gzip) /* the faster engine's CRC-32 when there is one */
        f->check =
            (f->engine ? f->engine : &pgfeed__zlib_engine)->crc32(f->check, out + from, to - from);
    else
        f->check = (uint32_t)adler32(f->check, out + from, (uInt)(to - from));
    return to;
}

static int due(struct engine_io *io, uint64_t dec)
{
    struct inflater *f = io->arg;

    return dec - pgfeed__rp_ring_newest(&f->ring)->dec >= f->span;
}

/* p, at decoded offset dec, becomes the newest point; its window is in the ring's next slot. */
static void push_point(struct inflater *f, const struct engine_point *p, uint64_t dec,
                       uint64_t mlen)
{
    struct access_point a = {.raw = p->raw,
                             .dec = dec,
                             .member_raw = f->member_raw,
                             .member_no = f->member_no,
                             .mlen = mlen,
                             .check = f->mode == ENGINE_RAW ? f->check : p->check,
                             .bits = (unsigned char)p->bits,
                             .byte = p->bits ? p->byte : 0,
                             .wlen = p->wlen};

    pgfeed__rp_ring_push(&f->ring, &a);
}

/*
 * The engine sits at a block boundary, io->made bytes into out: the check
 * value catches up, and p, unless it is NULL or no use, becomes an access
 * point, its window in the ring's next slot. 1 when recorded.
 */
static int at_boundary(struct engine_io *io, const struct engine_point *p)
{
    struct inflater *f = io->arg;
    const struct access_point *last = pgfeed__rp_ring_newest(&f->ring);
    uint64_t mlen = pgfeed__inflater_member_len(f) + io->made;
    size_t tail;
    unsigned char *w;

    if (f->mode == ENGINE_RAW)
        io->checked = check_out(f, io->out, io->checked, io->made);
    if (!p || (!last->start && last->raw == p->raw && last->bits == p->bits)) /* the same */
        return 0;
    if (p->wlen != (mlen < WINSIZE ? mlen : WINSIZE))
        return 0;
    if (!(w = pgfeed__rp_ring_window(&f->ring)))
        return 0;
    memcpy(w, p->window, p->wlen);
    tail = io->made < p->wlen ? io->made : p->wlen;
    if (memcmp(w + p->wlen - tail, io->out + io->made - tail, tail) != 0)
        return 0;
    push_point(f, p, io->dec_at + io->made, mlen);
    return 1;
}

/* s's engine goes on reading mode from compressed offset raw_off. */
static int engine_reset(struct inflater *f, struct inflater_slot *s, enum engine_mode mode,
                        uint64_t raw_off, char *msg)
{
    f->cur = s;
    f->mode = mode;
    f->member_made = 0;
    return s->ops->reset(s->e, mode, raw_off, msg);
}

/* The member's deflate data goes to the faster engine from raw_off on. */
static int start_fast(struct inflater *f, uint64_t raw_off, char *msg)
{
    if (!f->fast.e) {
        if (!(f->fast.e = f->engine->create()))
            return ENGINE_NOMEM;
        f->fast.ops = f->engine;
    }
    f->check = 0;
    return engine_reset(f, &f->fast, ENGINE_RAW, raw_off, msg);
}

int pgfeed__inflater_begin(struct inflater *f, int gzip, int raw, char *msg)
{
    enum engine_mode mode = !gzip ? ENGINE_ZLIB : f->engine ? ENGINE_GZIP_HEADER : ENGINE_GZIP;

    f->gzip = gzip;
    if (!(f->zlib.e = pgfeed__zlib_engine.create()))
        return ENGINE_NOMEM;
    f->zlib.ops = &pgfeed__zlib_engine;
    return engine_reset(f, &f->zlib, raw ? ENGINE_RAW : mode, 0, msg);
}

int pgfeed__inflater_next_member(struct inflater *f, uint64_t member_raw, char *msg)
{
    /* Header mode again: a member resumed raw may end here. */
    int rc =
        engine_reset(f, &f->zlib, f->engine ? ENGINE_GZIP_HEADER : ENGINE_GZIP, member_raw, msg);

    if (rc != ENGINE_OK)
        return rc;
    f->mlen_base = 0;
    f->member_raw = member_raw;
    f->member_no++;
    return ENGINE_OK;
}

unsigned char *pgfeed__inflater_restart_window(struct inflater *f)
{
    if (!f->ring.windows)
        f->ring.windows = malloc((size_t)PGFEED_RP_RING * WINSIZE);
    return f->ring.windows; /* slot 0, the restart point's in the ring */
}

int pgfeed__inflater_prime(struct inflater *f, const struct access_point *p, char *msg)
{
    struct engine_point ep = {.raw = p->raw,
                              .bits = p->bits,
                              .byte = p->byte,
                              .window = f->ring.windows,
                              .wlen = p->wlen};
    int rc;

    /* The faster engine inflates the member; zlib stays ready for the next one's header. */
    if (f->gzip && f->engine && (rc = start_fast(f, p->raw - (p->bits ? 1 : 0), msg)) != ENGINE_OK)
        return rc;
    if (f->cur->ops->prime(f->cur->e, &ep) != 0) {
        snprintf(msg, ENGINE_MSG, "%s refused a restart point", f->cur->ops->name);
        return ENGINE_INTERNAL;
    }
    f->check = p->check;
    f->mlen_base = p->mlen;
    f->member_raw = p->member_raw;
    f->member_no = p->member_no;
    pgfeed__rp_ring_init(&f->ring, p); /* slot 0, window included */
    return ENGINE_OK;
}

int pgfeed__inflater_step(struct inflater *f, struct engine_io *io)
{
    int rc;

    io->span = f->span;
    io->due = due;
    io->at_boundary = at_boundary;
    io->arg = f;
    rc = f->cur->ops->step(f->cur->e, io);
    f->member_made += io->made;
    if (rc != ENGINE_OK)
        return rc;
    if (f->mode == ENGINE_RAW)
        check_out(f, io->out, io->checked, io->made);
    if (io->ended && f->mode == ENGINE_GZIP_HEADER) { /* zlib read the header */
        io->ended = 0;
        return start_fast(f, io->raw_off, io->msg);
    }
    return ENGINE_OK;
}
