/*
 * inflate_isal.c -- the ISA-L engine: gzip members' deflate data through isal_inflate.
 *
 * It owns ISA-L's inflate state, the search for block boundaries where access
 * points can be recorded, and the last input bytes ISA-L took. It leaves gzip
 * headers (the zlib engine, inflate_zlib.c, reads them, so header errors keep
 * zlib's words and offsets) and zlib streams to zlib, the CRC-32 and the
 * access point ring to the inflater (inflater.c), the trailer checks and
 * every error message to decode_gzip.c; it talks to the inflater through
 * decode_engine.h. Built only when meson finds ISA-L (-Disal, which defines
 * PGFEED_HAVE_ISAL).
 *
 * isal_inflate with its CRC-32 takes about a third of the CPU time zlib
 * 1.2.13 does (points included). ISA-L inflates raw, so the inflater keeps
 * the member's CRC-32 and decode_gzip.c reads its trailer (state CHECK) as
 * for a resumed member, failing in zlib's words at zlib's offsets ("incorrect
 * data check" once the CRC-32 is in) when the member was read from its start.
 * ISA-L reads up to 8 bytes ahead into its bit buffer (read_in); at the end
 * of the deflate data the whole bytes in it are the trailer's first bytes: we
 * hand them back to src, or take them from hist when they came with an
 * earlier write. raw_off counts the bytes ISA-L took, so a corruption's
 * offset is at most 8 + 328 bytes late. Its data errors are worded "ISA-L
 * reported ...". ISA-L decodes up to three literals per table lookup and
 * waits for the last one's code: until more input comes, out may be two bytes
 * short of what zlib would give.
 *
 * Access points: ISA-L never stops at a block boundary by itself, but when a
 * call ends between a block's end-of-block code and the end of the next
 * block's header it waits in ISAL_BLOCK_NEW_HDR or ISAL_BLOCK_HDR, read_in
 * holding the bits after the boundary and tmp_in_buffer the bytes after
 * those: that gives the point's raw offset and unused bits; the partial byte
 * comes from hist, the window from the end of ISA-L's tmp_out_buffer
 * (checked against out by the inflater). So once a point is due we feed it
 * PROBE_IN bytes per call, after copying its state (snap); when the block
 * type or the Huffman codes changed during a probe, a boundary went by: we
 * put the copy back and go through the same bytes STEP_IN at a time, and a
 * dynamic block's header, longer than that, is seen. A stored block is fed
 * right to its end. Boundaries between fixed-code blocks (same codes, a 3-bit
 * header) are seldom seen; after STEP_CAP bytes without a point we stop
 * looking until 1, 2, 4 ... 64 spans later, so such input gets few points (a
 * resume re-reads more). Resuming from a point primes read_in with its unused
 * bits and sets the window with isal_inflate_set_dict.
 *
 * Buffers, allocated with the first gzip member:
 *   st    ISA-L's struct inflate_state, 87 KB with its own 64 KiB of output
 *         history and 328 bytes of input; snap, a copy, with the first probe
 *         for a point.
 *   hist  HIST bytes: the input bytes ISA-L took last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>

#include "decode_engine.h"

#define PROBE_IN    2048u        /* input bytes per call while looking for a block boundary */
#define STEP_IN     64u          /* per call when a probe passed one (header longer than this) */
#define STEP_CAP    (256u << 10) /* bytes of steps before giving up until later */
#define HIST        512u         /* input kept: a boundary is at most 8 + 328 bytes back */
#define ISAL_MAX_IN (1u << 30)   /* input per isal_inflate call (avail_in is 32 bits) */

struct decode_engine {
    struct inflate_state st;
    struct inflate_state *snap; /* st before a probe (see isal_step) */
    size_t fine_left;           /* input to go through in steps after a probe */
    uint64_t stepped;           /* input fed in steps since a point fell due */
    uint64_t step_retry;        /* after giving up: no steps before this decoded offset */
    unsigned backoff;           /* give-ups since the last point */
    uint64_t hist_lo, hist_hi;  /* hist holds the input bytes [hist_lo, hist_hi) */
    unsigned char hist[HIST];
};

/* ISA-L took p[0, n), the input bytes at at on: the last HIST of them are kept. */
static void hist_push(struct decode_engine *e, uint64_t at, const unsigned char *p, size_t n)
{
    if (e->hist_hi != at) /* cannot happen: starts over */
        e->hist_lo = e->hist_hi = at;
    if (n > HIST) {
        at += n - HIST;
        p += n - HIST;
        n = HIST;
    }
    size_t i = (size_t)(at % HIST), first = n < HIST - i ? n : HIST - i;
    memcpy(e->hist + i, p, first);
    memcpy(e->hist, p + first, n - first);
    e->hist_hi = at + n;
    if (e->hist_hi - e->hist_lo > HIST)
        e->hist_lo = e->hist_hi - HIST;
}

/* The input byte at raw offset at, if kept: 1, else 0. */
static int hist_byte(const struct decode_engine *e, uint64_t at, unsigned char *b)
{
    if (at < e->hist_lo || at >= e->hist_hi)
        return 0;
    *b = e->hist[at % HIST];
    return 1;
}

static struct decode_engine *isal_create(void)
{
    struct decode_engine *e = calloc(1, sizeof *e); /* isal_passed reads its codes */

    if (e)
        isal_inflate_init(&e->st);
    return e;
}

/* mode is ENGINE_RAW: zlib reads every other. */
static int isal_reset(struct decode_engine *e, enum engine_mode mode, uint64_t raw_off, char *msg)
{
    isal_inflate_reset(&e->st);
    e->st.crc_flag = ISAL_DEFLATE; /* raw: the CRC-32 and the trailer are the decoder's */
    e->st.hist_bits = 0;           /* a 32 KiB window */
    e->hist_lo = e->hist_hi = raw_off;
    return ENGINE_OK;
}

static int isal_prime(struct decode_engine *e, const struct engine_point *p)
{
    e->st.read_in = p->bits ? (uint64_t)(p->byte >> (8 - p->bits)) : 0;
    e->st.read_in_length = (int32_t)p->bits;
    if (p->wlen &&
        isal_inflate_set_dict(&e->st, (uint8_t *)(uintptr_t)p->window, p->wlen) != COMP_OK)
        return -1;
    /* The partial byte comes first (the decoder checks it): then it is input ISA-L took. */
    e->hist_lo = e->hist_hi = p->raw - (p->bits ? 1 : 0);
    if (p->bits)
        e->hist[e->hist_hi++ % HIST] = p->byte;
    return 0;
}

/* ISA-L stopped between two blocks, with all it inflated handed out. */
static int isal_at_boundary(const struct inflate_state *st)
{
    return (st->block_state == ISAL_BLOCK_NEW_HDR || st->block_state == ISAL_BLOCK_HDR) &&
           st->tmp_out_processed == st->tmp_out_valid && st->write_overflow_len == 0 &&
           st->copy_overflow_length == 0;
}

static int isal_due(struct decode_engine *e, struct engine_io *io, uint64_t dec)
{
    return io->due(io, dec) && dec >= e->step_retry;
}

/* At a block boundary (isal_at_boundary): describes it to the decoder, which may record it. */
static void isal_point(struct decode_engine *e, struct engine_io *io)
{
    const struct inflate_state *st = &e->st;
    /* Past the boundary: the bits in read_in, then the bytes in tmp_in_buffer. */
    uint64_t ahead = (uint64_t)st->tmp_in_size + (uint64_t)st->read_in_length / 8;
    struct engine_point p = {.bits = (unsigned)st->read_in_length % 8};
    /* ISA-L keeps the last 32 KiB it inflated (or all) at the end of tmp_out_buffer. */
    uint32_t valid = (uint32_t)st->tmp_out_valid;

    p.raw = io->raw_off - ahead;
    p.wlen = valid < 32768u ? valid : 32768u;
    p.window = st->tmp_out_buffer + valid - p.wlen;
    if (st->read_in_length < 0 || st->tmp_in_size < 0 || ahead > io->raw_off ||
        (p.bits && !hist_byte(e, p.raw - 1, &p.byte))) {
        io->at_boundary(io, NULL);
        return;
    }
    if (io->at_boundary(io, &p)) {
        e->stepped = 0;
        e->backoff = 0;
        e->fine_left = 0;
    }
}

/*
 * Before a probe: copies ISA-L's state (up to the output history it holds)
 * to snap. Returns the bytes copied, 0 without memory (then steps only).
 */
static size_t isal_snapshot(struct decode_engine *e)
{
    size_t n = offsetof(struct inflate_state, tmp_out_buffer) + (size_t)e->st.tmp_out_valid;

    if (e->st.tmp_out_valid < 0 || n > sizeof e->st)
        return 0;
    if (!e->snap && !(e->snap = calloc(1, sizeof *e->snap)))
        return 0;
    memcpy(e->snap, &e->st, n);
    return n;
}

/*
 * Whether a block boundary went by since snapshot a: the block type, the
 * last-block bit or the Huffman codes changed. Blind to one between blocks
 * with the same codes (fixed-code blocks).
 */
static int isal_passed(const struct inflate_state *a, const struct inflate_state *b)
{
    return a->block_state != b->block_state || a->bfinal != b->bfinal ||
           memcmp(&a->lit_huff_code, &b->lit_huff_code, sizeof a->lit_huff_code) != 0 ||
           memcmp(&a->dist_huff_code, &b->dist_huff_code, sizeof a->dist_huff_code) != 0;
}

/*
 * The member's last block ended in a call that was given buf and moved
 * next_in by took (negative when a later ISA-L hands back bytes of an
 * earlier write): sets src and raw_off to the end of the deflate data, or
 * puts the trailer bytes that came before buf into trl.
 */
static int isal_end(struct decode_engine *e, struct engine_io *io, const unsigned char *buf,
                    ptrdiff_t took)
{
    struct inflate_state *st = &e->st;
    ptrdiff_t keep = took - st->read_in_length / 8; /* bytes of buf before the trailer */

    io->trl_n = 0;
    if (keep >= 0) {
        hist_push(e, io->raw_off, buf, (size_t)keep);
        io->src += keep;
        io->src_left -= (size_t)keep;
        io->raw_off += (uint64_t)keep;
    } else {
        for (uint64_t at = io->raw_off - (uint64_t)-keep; at < io->raw_off; at++)
            if (io->trl_n == sizeof io->trl || !hist_byte(e, at, &io->trl[io->trl_n++])) {
                snprintf(io->msg, sizeof io->msg, "ISA-L read %ld bytes past the deflate data",
                         -(long)keep);
                return ENGINE_INTERNAL;
            }
    }
    st->read_in = 0;
    st->read_in_length = 0;
    return ENGINE_OK;
}

static int isal_corrupt(struct engine_io *io, int ret)
{
    switch (ret) {
    case ISAL_INVALID_BLOCK:
        snprintf(io->msg, sizeof io->msg, "invalid deflate block");
        break;
    case ISAL_INVALID_SYMBOL:
        snprintf(io->msg, sizeof io->msg, "invalid deflate symbol");
        break;
    case ISAL_INVALID_LOOKBACK:
        snprintf(io->msg, sizeof io->msg, "invalid lookback distance");
        break;
    default:
        snprintf(io->msg, sizeof io->msg, "error %d", ret);
        break;
    }
    return ENGINE_CORRUPT;
}

static int isal_step(struct decode_engine *e, struct engine_io *io)
{
    struct inflate_state *st = &e->st;
    size_t made = 0;
    int first = 1, rc;

    io->made = 0;
    io->ended = 0;
    st->next_out = io->out;
    st->avail_out = (uint32_t)io->out_cap;
    for (;;) {
        int due = isal_due(e, io, io->dec_at + made);
        if (due && isal_at_boundary(st)) {
            isal_point(e, io);
            due = isal_due(e, io, io->dec_at + made);
        }
        /* Once at least: ISA-L may hold output for a full out. */
        if (!first && (io->src_left == 0 || st->avail_out == 0))
            break;
        first = 0;

        const unsigned char *buf = io->src;
        size_t give = io->src_left < ISAL_MAX_IN ? io->src_left : ISAL_MAX_IN, before = made;
        size_t snap = 0;
        if (due) {
            size_t k = STEP_IN;
            if (st->block_state == ISAL_BLOCK_TYPE0) { /* a stored block: right to its end */
                int64_t rest = (int64_t)st->type0_block_len - st->read_in_length / 8;
                k = rest > 0 ? (size_t)rest : 1;
            } else if (e->fine_left == 0 && (snap = isal_snapshot(e)) > 0)
                k = PROBE_IN;
            give = give < k ? give : k;
        }
        st->next_in = (uint8_t *)(uintptr_t)buf;
        st->avail_in = (uint32_t)give;
        int ret = isal_inflate(st);
        ptrdiff_t took = st->next_in - buf;
        made = io->out_cap - st->avail_out;
        if (snap && ret == ISAL_DECOMP_OK && took > 0 && st->block_state != ISAL_BLOCK_FINISH &&
            !isal_at_boundary(st) && isal_passed(e->snap, st)) {
            /* A boundary went by in the probe: back, and through those bytes in steps. */
            memcpy(st, e->snap, snap);
            made = before;
            e->fine_left = (size_t)took;
            continue;
        }
        io->made = made;
        if (ret == ISAL_DECOMP_OK && st->block_state == ISAL_BLOCK_FINISH) {
            if ((rc = isal_end(e, io, buf, took)) != ENGINE_OK)
                return rc;
            io->ended = 1;
            break;
        }
        if (took > 0) {
            hist_push(e, io->raw_off, buf, (size_t)took);
            io->src += took;
            io->src_left -= (size_t)took;
            io->raw_off += (uint64_t)took;
        }
        if (ret != ISAL_DECOMP_OK)
            return isal_corrupt(io, ret);
        if (took == 0 && made == before && io->src_left > 0 && st->avail_out > 0) {
            snprintf(io->msg, sizeof io->msg, "ISA-L made no progress");
            return ENGINE_INTERNAL;
        }
        if (took > 0 && e->fine_left > 0)
            e->fine_left -= (size_t)took < e->fine_left ? (size_t)took : e->fine_left;
        if (due && (e->stepped += (uint64_t)took) >= STEP_CAP && !isal_at_boundary(st)) {
            /* No boundary seen (fixed-code blocks?): stop looking for a while. */
            e->stepped = 0;
            e->step_retry =
                io->dec_at + made + ((uint64_t)io->span << (e->backoff < 6 ? e->backoff : 6));
            e->backoff++;
        }
    }
    io->more_out = !io->ended && (st->avail_out == 0 || st->tmp_out_processed != st->tmp_out_valid);
    return ENGINE_OK;
}

/* With carry-less multiply: several times zlib 1.2's speed. */
static uint32_t isal_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    return crc32_gzip_refl(crc, p, n);
}

static void isal_destroy(struct decode_engine *e)
{
    if (e)
        free(e->snap);
    free(e);
}

const struct decode_engine_ops pgfeed__isal_engine = {
    .name = "ISA-L",
    .create = isal_create,
    .reset = isal_reset,
    .prime = isal_prime,
    .step = isal_step,
    .crc32 = isal_crc32,
    .destroy = isal_destroy,
};
