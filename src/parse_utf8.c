/*
 * parse_utf8.c -- UTF-8 validation for the parser: pgfeed__utf8_check finds the first byte
 * of a buffer that is 0x00 or not valid UTF-8, a block of 16 bytes (SSE2) or 8 at a time.
 *
 * Knows nothing of records or of the parser's state: parse_record.c decides which bytes to
 * check and keeps the checked end (utf8_record), parse_report.c words the rejection.
 * No buffers: the tail shorter than a block is checked from a 16-byte copy on the stack.
 */
#include <string.h>

#include "internal.h"

#if defined(__SSE2__) && !defined(PGFEED_NO_SIMD)
#include <emmintrin.h>
#endif

/*
 * Length of the valid UTF-8 sequence at p[0] (not ASCII), or 0. Unicode's table 3-7: no
 * overlong forms (C0, C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing past
 * U+10FFFF (F4 90.., F5..FF).
 */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*
 * 16 bytes at a time (SSE2), else 8: a block without a byte >= 0x80 or == 0x00 is skipped
 * whole; the tail is checked from a copy padded with spaces, so nothing past p + n is read.
 * u8_flags is nonzero when the block has such a byte; u8_first says where the first is.
 *
 * With SSE2 the loop takes 32 bytes (then 16) at a time whenever they are ASCII or whole
 * two-byte sequences (C2..DF then 80..BF: accented Latin, Greek, Cyrillic...), with no
 * branch on which: an accent every few dozen bytes would make a "any byte >= 0x80?" branch
 * mispredict at every one. A block always starts at a sequence boundary, so a lead byte in
 * its last lane or a continuation byte in its first sends it to the byte-wise path, which
 * also takes three- and four-byte sequences and finds the bad byte.
 */
#if defined(__SSE2__) && !defined(PGFEED_NO_SIMD)
#define U8_BLOCK 16
static inline unsigned u8_flags(const unsigned char *b)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)b);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())));
}
/* Masks of the high, zero, continuation and two-byte lead bytes of a block (b, 16 bytes). */
static inline void u8_masks(const unsigned char *b, unsigned *high, unsigned *cont, unsigned *lead)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)b);
    *high = (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())));
    /* As signed bytes: continuation 80..BF is -128..-65, lead C2..DF is -62..-33. */
    *cont = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(-64)));
    *lead = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(-63)),
                                                      _mm_cmplt_epi8(v, _mm_set1_epi8(-32))));
}
/* n blocks (1 or 2) of ASCII and whole two-byte sequences, none cut at the end? */
static inline int u8_easy(const unsigned char *b, int n)
{
    unsigned h0, c0, l0, h1 = 0, c1 = 0, l1 = 0;
    u8_masks(b, &h0, &c0, &l0);
    if (n == 2)
        u8_masks(b + 16, &h1, &c1, &l1);
    uint64_t high = h0 | (uint64_t)h1 << 16, cont = c0 | (uint64_t)c1 << 16;
    uint64_t lead = l0 | (uint64_t)l1 << 16;
    return (cont | lead) == high && lead << 1 == cont; /* high has the zero bytes too */
}
static inline size_t u8_first(unsigned m, const unsigned char *b)
{
    (void)b;
    return (size_t)__builtin_ctz(m);
}
#else
static inline int u8_easy(const unsigned char *b, int n)
{
    (void)b, (void)n;
    return 0;
}
#define U8_BLOCK 8
static inline uint64_t u8_flags(const unsigned char *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    return (v | ((v - ones) & ~v)) & highs; /* right as a yes or no, whatever the byte order */
}
static inline size_t u8_first(uint64_t m, const unsigned char *b)
{
    size_t k = 0;
    (void)m;
    while (b[k] != 0 && b[k] < 0x80)
        k++;
    return k;
}
#endif

size_t pgfeed__utf8_check(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        size_t k;
        while (n - i >= U8_BLOCK) {
            const unsigned char *b = p + i;
            if (n - i >= 2 * U8_BLOCK && u8_easy(b, 2)) {
                i += 2 * U8_BLOCK;
                continue;
            }
            if (u8_flags(b) == 0 || u8_easy(b, 1)) {
                i += U8_BLOCK;
                continue;
            }
            k = u8_first(u8_flags(b), b);
            goto found;
        }
        if (i == n)
            return n;
        {
            unsigned char tb[U8_BLOCK];
            memset(tb, ' ', sizeof tb);
            memcpy(tb, p + i, n - i);
            if (u8_flags(tb) == 0)
                return n;
            k = u8_first(u8_flags(tb), tb);
        }
    found:
        i += k;
        if (p[i] == 0)
            return i;
        /* Most non-ASCII text is short runs (accents): take sequences until ASCII again. */
        do {
            if (p[i] - 0xC2u < 0x1Eu && n - i >= 2 && (p[i + 1] & 0xC0) == 0x80) {
                i += 2; /* U+0080..U+07FF, most accented letters */
                continue;
            }
            size_t len = utf8_seq(p + i, n - i);
            if (len == 0)
                return i;
            i += len;
        } while (i < n && p[i] >= 0x80);
    }
}
