/*
 * inflater.h -- the interface between decode_gzip.c and its inflater (inflater.c).
 *
 * decode_gzip.c embeds a struct inflater and reads mode, cur, check and ring
 * (and sets engine and span before the first write); everything else in it
 * is inflater.c's. Functions that can fail return an engine code
 * (decode_engine.h): ENGINE_OK, or a failure that decode_gzip.c words, with
 * msg (ENGINE_MSG bytes) for ENGINE_INTERNAL.
 */
#ifndef PGFEED_INFLATER_H
#define PGFEED_INFLATER_H

#include "decode_engine.h"
#include "internal.h"

struct inflater_slot {
    const struct decode_engine_ops *ops; /* the one that made e */
    struct decode_engine *e;
};

struct inflater {
    const struct decode_engine_ops *engine; /* the faster one for gzip deflate data, or NULL */
    struct inflater_slot zlib, fast;
    struct inflater_slot *cur; /* the one inflating now */
    enum engine_mode mode;     /* what cur reads */
    int gzip;                  /* gzip members (CRC-32), else a zlib stream (Adler-32) */
    struct pgfeed_rp_ring ring;
    size_t span;          /* decoded bytes at least between two access points */
    uint64_t member_raw;  /* where the current gzip member (zlib stream) starts */
    uint64_t member_no;   /* from 0 */
    uint32_t check;       /* ENGINE_RAW: CRC-32 / Adler-32 of the member so far */
    uint64_t mlen_base;   /* the member's decoded bytes before member_made (a restart point's) */
    uint64_t member_made; /* the member's decoded bytes since the last reset */
};

/* No engine yet; the ring holds the start of the input. */
void pgfeed__inflater_init(struct inflater *f, const struct decode_engine_ops *engine, size_t span);
void pgfeed__inflater_free(struct inflater *f);
/* The input is a gzip file (gzip = 1) or a zlib stream: zlib reads it, raw from a restart point. */
int pgfeed__inflater_begin(struct inflater *f, int gzip, int raw, char *msg);
/* The next gzip member starts at compressed offset member_raw: zlib reads its header. */
int pgfeed__inflater_next_member(struct inflater *f, uint64_t member_raw, char *msg);
/* After begin(raw): the window of the restart point goes here (WINSIZE bytes); NULL: no memory. */
unsigned char *pgfeed__inflater_restart_window(struct inflater *f);
/* Then: inflating goes on from point p, which becomes the ring's only point. */
int pgfeed__inflater_prime(struct inflater *f, const struct access_point *p, char *msg);
/*
 * One engine step over io (src, src_left, raw_off, out, out_cap and dec_at
 * set; the rest zero), recording access points on the way. io->ended: the
 * stream, or with ENGINE_RAW the deflate data, ended (never the header: the
 * faster engine then takes over).
 */
int pgfeed__inflater_step(struct inflater *f, struct engine_io *io);
/* The current member's decoded bytes so far. */
uint64_t pgfeed__inflater_member_len(const struct inflater *f);

#endif
