/*
 * codec_bzip2.c -- the bzip2 codec behind decode_codec.h: libbz2's streaming decoder, and
 * the block boundaries inside a stream.
 *
 * It owns one bz_stream, set up anew for each stream (pbzip2 and `cat a.bz2
 * b.bz2` write several), and finding the boundaries between a stream's
 * blocks, where a restart can begin (resume). It leaves what comes between
 * streams, offsets and messages to the decoder (decode_gzip.c).
 *
 * libbz2 checks each block's CRC and the stream's combined CRC and reports a
 * mismatch, like any damage, as BZ_DATA_ERROR. Its window is one block, at
 * most 900 kB (the level, 1-9, in the header): max_window does not concern it.
 *
 * Block boundaries. A block starts with the 48-bit magic 31 41 59 26 53 59
 * at any bit; the same bits may also occur inside a block's Huffman data.
 * We scan every bit of the input for the magic (a candidate at bit c) and
 * give libbz2 the input only up to the byte before the one where the magic
 * ends, then let it make all the output it can (a sample). libbz2 outputs a
 * block only once it has read all of it, and a block is far longer than its
 * magic: at a true boundary the sample has the whole block before it (the
 * output moved since the last boundary), inside a block it has not (no
 * move). The magic overlaps itself only 45 bits on: a candidate with
 * another 45 bits after it cannot be told from it, and the stream gets no
 * more boundaries (lost), like a candidate before the stream's first block.
 * A candidate is decided 93 bits on (its block CRC read, no candidate at
 * +45). The first block (bit 32) needs no sample. A boundary carries the
 * combined CRC of the blocks before it, folded from the stored block CRCs
 * (libbz2 checked each against its data).
 *
 * Resuming at a boundary: libbz2 cannot start mid-stream, so we give it a
 * stream of our own: "BZh", the level, one block we make (libbz2's
 * compressor, level 1) of a few bytes whose CRC is the saved combined CRC,
 * then the original bits from the boundary on. The made block's bit length
 * is chosen (by its content's length) so that the original bytes follow it
 * byte-aligned, the first one's high bits replaced: the input goes to
 * libbz2 as it comes, libbz2 ends the stream where it ends, and its check of
 * the combined CRC covers the whole stream (rotated in from the made
 * block's CRC). The made block's output is dropped.
 *
 * Buffers: libbz2's, about 3.6 MiB for a level 9 stream (not the small mode:
 * twice as slow for 2.3 MiB less); making the block, libbz2's compressor for
 * level 1 (about 1.1 MiB, freed at once); the made stream's start (PRE_MAX).
 */
#include <bzlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"

#define BLOCK_MAGIC 0x314159265359ull
#define END_MAGIC   0x177245385090ull
#define MASK48      0xffffffffffffull
#define DECIDE      93  /* a candidate is decided this many bits after its first */
#define PRE_MAX     256 /* the made stream's start: header, made block, the partial byte */
#define FILL_MAX    64  /* content lengths tried for the made block */

struct decode_codec {
    bz_stream bz;
    int live; /* BZ2_bzDecompressInit ran, BZ2_bzDecompressEnd not yet */
    /* the scanner, over the bytes libbz2 reads (resumed: the made start, then the input) */
    uint64_t sh;   /* the last 64 bits scanned */
    uint64_t hist; /* the 8 bytes scanned before the current one */
    uint64_t pos;  /* bits scanned */
    size_t ahead;  /* bytes of the current input scanned, not yet given to libbz2 */
    int sample;    /* a candidate ended in the last byte scanned: sample before giving it */
    int pending;   /* a candidate waits for its decision */
    uint64_t cand_at, cand_out;
    unsigned char cand_byte; /* the byte its first bit is in */
    int report;              /* a boundary waits to be reported (rep) */
    struct codec_at rep;
    /* blocks */
    int started;       /* the stream's first block was seen */
    int lost;          /* no more boundaries in this stream */
    uint64_t last_out; /* libbz2's output at the last boundary */
    uint32_t crc_cur;  /* the stored CRC of the block that began there */
    uint32_t combined; /* the combined CRC of the blocks before it */
    unsigned char level;
    /* resumed: the made stream's start, and its block's output to drop */
    unsigned char pre[PRE_MAX];
    size_t pre_n, pre_at;
    uint64_t fake, drop;
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
    memset(c, 0, sizeof *c);
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

/* ---- the made block: a CRC forged into its content ---- */

/* bzip2's CRC-32 (MSB first, polynomial 04c11db7), one byte on from register r. */
static uint32_t crc_byte(uint32_t r, unsigned b)
{
    r ^= (uint32_t)b << 24;
    for (int i = 0; i < 8; i++)
        r = r & 0x80000000u ? r << 1 ^ 0x04c11db7u : r << 1;
    return r;
}

/*
 * p[n, n + 4) such that the CRC of p[0, n + 4) is crc: the four table
 * entries are found backwards from the register wanted (the low bytes of
 * the entries are all different), then the bytes that pick them forwards.
 */
static void forge_crc(unsigned char *p, size_t n, uint32_t crc)
{
    uint32_t r = 0xffffffffu, want = ~crc;
    unsigned idx[4];

    for (size_t i = 0; i < n; i++)
        r = crc_byte(r, p[i]);
    for (int k = 3; k >= 0; k--) {
        unsigned i = 0;
        while ((crc_byte(0, i) & 0xff) != (want & 0xff))
            i++;
        idx[k] = i;
        want = (want ^ crc_byte(0, i)) >> 8;
    }
    for (int k = 0; k < 4; k++) {
        p[n + k] = (unsigned char)(idx[k] ^ r >> 24);
        r = crc_byte(r, p[n + k]);
    }
}

static uint64_t get_bits(const unsigned char *p, uint64_t at, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++, at++)
        v = v << 1 | ((p[at >> 3] >> (7 - (at & 7))) & 1);
    return v;
}

static void put_bits(unsigned char *p, uint64_t *at, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0; (*at)++) {
        unsigned char m = (unsigned char)(0x80 >> (*at & 7));
        p[*at >> 3] = (unsigned char)((v >> i) & 1 ? p[*at >> 3] | m : p[*at >> 3] & ~m);
    }
}

/*
 * One stream of n + 4 bytes compressed into z (zn bytes) whose block has
 * the CRC crc: the block's bits [32, *end). 0, or a CODEC_ failure.
 */
static int made_stream(unsigned char *z, unsigned *zn, size_t n, uint32_t crc, uint64_t *end,
                       char *msg)
{
    unsigned char content[FILL_MAX + 4];
    int rc;

    for (size_t i = 0; i < n; i++)
        content[i] = (unsigned char)('a' + i % 26);
    forge_crc(content, n, crc);
    rc = BZ2_bzBuffToBuffCompress((char *)z, zn, (char *)content, (unsigned)n + 4, 1, 0, 0);
    if (rc == BZ_MEM_ERROR)
        return CODEC_NOMEM;
    for (unsigned pad = 0; rc == BZ_OK && pad < 8 && 8ull * *zn >= 32 + 80 + pad; pad++) {
        uint64_t e = 8ull * *zn - 80 - pad;
        if (get_bits(z, e, 48) == END_MAGIC && get_bits(z, e + 48, 32) == crc) {
            *end = e;
            return CODEC_OK;
        }
    }
    snprintf(msg, CODEC_MSG, "could not make a bzip2 block to resume with (%d)", rc);
    return CODEC_INTERNAL;
}

/*
 * The made stream's start: "BZh", the level, a block of CRC crc whose bit
 * length puts the original input byte-aligned after the low bits bits of byte.
 */
static int made_start(struct decode_codec *c, const struct codec_at *at, char *msg)
{
    unsigned char z[2 * PRE_MAX];

    for (size_t n = 0; n <= FILL_MAX; n++) {
        unsigned zn = sizeof z;
        uint64_t end, w = 0;
        int rc = made_stream(z, &zn, n, at->info, &end, msg);

        if (rc != CODEC_OK)
            return rc;
        if ((end + at->bits) % 8 != 0 || (end + at->bits) / 8 > PRE_MAX)
            continue;
        put_bits(c->pre, &w, 0x425a6830u + at->level, 32); /* "BZh" and the level */
        for (uint64_t i = 32; i < end; i++)
            put_bits(c->pre, &w, get_bits(z, i, 1), 1);
        put_bits(c->pre, &w, at->byte, at->bits); /* the low bits */
        c->pre_n = (size_t)(w / 8);
        c->fake = c->drop = n + 4;
        return CODEC_OK;
    }
    snprintf(msg, CODEC_MSG, "could not make a bzip2 block of the length wanted");
    return CODEC_INTERNAL;
}

/* Reads on from the block whose first at->bits bits are the low bits of at->byte. */
static int bzip2_resume(struct decode_codec *c, const struct codec_at *at, char *msg)
{
    int rc;

    if (at->level < 1 || at->level > 9 || at->bits > 7) {
        snprintf(msg, CODEC_MSG, "level %u, %u bits: not a bzip2 block boundary", at->level,
                 at->bits);
        return CODEC_INTERNAL;
    }
    if ((rc = bzip2_reset(c, msg)) != CODEC_OK)
        return rc;
    return made_start(c, at, msg);
}

/* ---- finding block boundaries ---- */

static uint32_t rotl1(uint32_t v)
{
    return v << 1 | v >> 31;
}

/* The candidate at cand_at, now 93 bits on: a boundary (reported), or nothing. */
static void decide(struct decode_codec *c)
{
    uint32_t crc = (uint32_t)(c->sh >> (c->pos - (c->cand_at + 80)));
    uint64_t at = c->cand_at;

    c->pending = 0;
    if (!c->started) { /* the first block: at bit 32 */
        c->started = 1;
        c->crc_cur = crc;
        return;
    }
    if (c->cand_out <= c->last_out) /* inside a block */
        return;
    c->combined = rotl1(c->combined) ^ c->crc_cur;
    c->crc_cur = crc;
    c->last_out = c->cand_out;
    if (c->cand_out <= c->fake) /* resumed: the boundary resumed at */
        return;
    memset(&c->rep, 0, sizeof c->rep);
    c->rep.bits = (unsigned char)(at & 7 ? 8 - (at & 7) : 0);
    c->rep.byte = c->rep.bits ? c->cand_byte : 0;
    c->rep.raw = (at >> 3) + (c->rep.bits ? 1 : 0) - c->pre_n;
    c->rep.dec = c->cand_out - c->fake;
    c->rep.info = c->combined;
    c->rep.level = c->level;
    c->rep.placed = 1;
    c->report = 1;
}

/* A candidate ended in byte b, its first bit at: pending, or the stream is lost. */
static void candidate(struct decode_codec *c, uint64_t at, unsigned char b)
{
    uint64_t back = (c->pos - 1) / 8 - at / 8; /* bytes before the current one */

    if ((c->pending && at - c->cand_at < 48) || (!c->started && at != 32)) {
        c->lost = 1;
        c->pending = 0;
        return;
    }
    if (c->pending)
        decide(c);
    c->pending = 1;
    c->cand_at = at;
    c->cand_byte = back == 0 ? b : (unsigned char)(c->hist >> (8 * (back - 1)));
    c->sample = c->started;
}

/* Scans p[0, n) until a candidate needs a sample or a boundary is to be reported. */
static void scan(struct decode_codec *c, const unsigned char *p, size_t n)
{
    while (c->ahead < n && !c->sample && !c->report) {
        unsigned char b = p[c->ahead++];

        c->sh = c->sh << 8 | b;
        c->pos += 8;
        if (c->pos == 32)
            c->level = (unsigned char)(b - '0');
        if (c->lost) {
            c->ahead = n;
            return;
        }
        for (int s = 7; s >= 0 && c->pos >= 48u + (unsigned)s; s--)
            if (((c->sh >> s) & MASK48) == BLOCK_MAGIC) {
                candidate(c, c->pos - (unsigned)s - 48, b);
                break;
            }
        if (c->pending && !c->sample && c->pos >= c->cand_at + DECIDE)
            decide(c);
        c->hist = c->hist << 8 | b;
    }
}

/* ---- decompressing ---- */

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

/* libbz2 reads p[0, n) (n <= 1 GiB) into io->out after io->made; the made block's output dropped.
 */
static int run(struct decode_codec *c, struct codec_io *io, const unsigned char *p, size_t n,
               size_t *used)
{
    unsigned room = (unsigned)(io->out_cap - io->made), made;
    int rc;

    c->bz.next_in = (char *)(uintptr_t)p;
    c->bz.avail_in = (unsigned)n;
    c->bz.next_out = (char *)io->out + io->made;
    c->bz.avail_out = room;
    rc = BZ2_bzDecompress(&c->bz);
    *used = n - c->bz.avail_in;
    made = room - c->bz.avail_out;
    if (c->drop > 0) {
        unsigned k = c->drop < made ? (unsigned)c->drop : made;
        memmove(io->out + io->made, io->out + io->made + k, made - k);
        made -= k;
        c->drop -= k;
    }
    io->made += made;
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

static uint64_t total_out(const struct decode_codec *c)
{
    return (uint64_t)c->bz.total_out_hi32 << 32 | c->bz.total_out_lo32;
}

/*
 * The made start first, then io->src: scanned ahead of libbz2, which gets
 * the bytes up to a candidate's last byte, then a sample is taken.
 */
static int bzip2_step(struct decode_codec *c, struct codec_io *io)
{
    for (;;) {
        int pre = c->pre_at < c->pre_n;
        const unsigned char *p = pre ? c->pre + c->pre_at : io->src;
        size_t n = pre ? c->pre_n - c->pre_at : io->src_left, give, used;
        int rc;

        if (c->report) {
            c->report = 0;
            io->boundary = 1;
            io->at = c->rep;
            return CODEC_OK;
        }
        if (n > 1u << 30)
            n = 1u << 30;
        scan(c, p, n);
        give = c->ahead - (c->sample ? 1 : 0);
        rc = run(c, io, p, give, &used);
        c->ahead -= used;
        if (pre)
            c->pre_at += used;
        else {
            io->src += used;
            io->src_left -= used;
        }
        if (rc != CODEC_OK || io->ended || io->more_out)
            return rc;
        if (c->sample) { /* libbz2 made all it can from the bytes before the candidate's last */
            c->sample = 0;
            c->cand_out = total_out(c);
        } else if (!c->report && !pre && io->src_left == 0)
            return CODEC_OK;
    }
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
    .resume = bzip2_resume,
    .step = bzip2_step,
    .destroy = bzip2_destroy,
};
