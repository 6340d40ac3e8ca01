/*
 * simd.h -- the block scanning both row encoders (encode_copy.c, encode_binary.c) share: a
 * line read a block at a time, a mask with one lane per byte that matches, and the
 * zero-padded copy of a line's last bytes so that no block is read past the line.
 *
 * Leaves to the encoders which bytes matter (escapes, the delimiter, commas) and what they
 * write; parse_dsv.c scans with its own. Static inline functions only, no state.
 *
 * A block is 16 bytes with SSE2 (every x86-64; PGFEED_SIMD_SSE2 is then 1), else 8 bytes in
 * a 64-bit word (SWAR). block_t holds a block's bytes or a byte mask of them; lanes_t one
 * bit (SSE2) or one lane's high bit (SWAR) per byte. PGFEED_NO_SIMD, defined before the
 * first include, asks for the SWAR form, so that tests build it on x86-64 too.
 */
#ifndef PGFEED_SIMD_H
#define PGFEED_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && !defined(PGFEED_NO_SIMD)
#include <emmintrin.h>

#define PGFEED_SIMD_SSE2 1
#define BLOCK            16
typedef __m128i block_t;
typedef uint32_t lanes_t;

static inline block_t load_block(const char *src)
{
    return _mm_loadu_si128((const __m128i *)(const void *)src);
}

static inline void copy_block(char *o, const char *src)
{
    _mm_storeu_si128((__m128i *)(void *)o, load_block(src));
}

static inline block_t bytes_eq(block_t v, char c)
{
    return _mm_cmpeq_epi8(v, _mm_set1_epi8(c));
}

/* Bytes below c (unsigned), for 1 <= c <= 0x80. */
static inline block_t bytes_below(block_t v, unsigned char c)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8((char)(c - 1))), v);
}

static inline block_t bytes_or(block_t a, block_t b)
{
    return _mm_or_si128(a, b);
}

static inline lanes_t lanes_of(block_t m)
{
    return (lanes_t)_mm_movemask_epi8(m);
}

static inline size_t first_lane(lanes_t m)
{
    return (size_t)__builtin_ctz(m);
}

static inline int lane_set(lanes_t m, size_t k)
{
    return (int)(m >> k & 1);
}

static inline lanes_t lanes_below(size_t n) /* n <= BLOCK */
{
    return ((lanes_t)1 << n) - 1;
}

static inline lanes_t lanes_above(lanes_t m, size_t k)
{
    return m & ~(((lanes_t)2 << k) - 1);
}

#else /* SWAR */

#define PGFEED_SIMD_SSE2 0
#define BLOCK            8
typedef uint64_t block_t;
typedef uint64_t lanes_t;
#define ONES             0x0101010101010101u
#define HIGHS            0x8080808080808080u

/* Words hold bytes in memory order from the low end (big-endian machines swap). */
static inline block_t load_block(const char *src)
{
    uint64_t v;
    memcpy(&v, src, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void copy_block(char *o, const char *src)
{
    memcpy(o, src, 8);
}

/* The high bit of each lane that equals c (exact: no carry crosses a lane). */
static inline block_t bytes_eq(block_t v, char c)
{
    uint64_t x = v ^ (ONES * (unsigned char)c);
    return ~(((x & ~HIGHS) + ~HIGHS) | x) & HIGHS;
}

/* Bytes below c (unsigned), for 1 <= c <= 0x80. */
static inline block_t bytes_below(block_t v, unsigned char c)
{
    return ~(((v & ~HIGHS) + ONES * (0x80u - c)) | v) & HIGHS;
}

static inline block_t bytes_or(block_t a, block_t b)
{
    return a | b;
}

static inline lanes_t lanes_of(block_t m)
{
    return m;
}

static inline size_t first_lane(lanes_t m)
{
    return (size_t)__builtin_ctzll(m) >> 3;
}

static inline int lane_set(lanes_t m, size_t k)
{
    return (int)(m >> (8 * k + 7) & 1);
}

static inline lanes_t lanes_below(size_t n) /* n <= BLOCK */
{
    return n >= 8 ? ~(lanes_t)0 : ((lanes_t)1 << (8 * n)) - 1;
}

static inline lanes_t lanes_above(lanes_t m, size_t k)
{
    return k >= 7 ? 0 : m & (~(lanes_t)0 << (8 * k + 8));
}
#endif

/* How many of the line's bytes the block at p holds: BLOCK, or fewer at its end. */
static inline size_t lanes_left(const char *p, const char *end)
{
    return (size_t)(end - p) < BLOCK ? (size_t)(end - p) : BLOCK;
}

/*
 * Encoders read a block past the current one (to copy the rest of a block out after an
 * escape), so the last bytes of a line, less than two blocks, are read from a zero-padded
 * copy in tb (TAIL_BYTES), taken once p gets there. Returns where to read the block at p
 * from: p itself, or its place in the copy; *tail is the line byte copied to tb[0], NULL
 * (as the caller sets it for a new line) until the copy is taken.
 */
#define TAIL_BYTES (3 * BLOCK)
static inline const char *block_src(const char *p, const char *end, const char **tail, char *tb)
{
    if (*tail == NULL && (size_t)(end - p) < 2 * BLOCK) {
        memset(tb, 0, TAIL_BYTES);
        memcpy(tb, p, (size_t)(end - p));
        *tail = p;
    }
    return *tail ? tb + (p - *tail) : p;
}

#endif
