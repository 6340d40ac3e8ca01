/*
 * encode_copy.c -- one field, or one comma-separated list, in PostgreSQL's COPY text format.
 *
 * Owns the escaping rules: COPY text escapes backslash, tab, newline and carriage return
 * (COPY docs, "Text Format"); an array literal double-quotes every element and
 * backslash-escapes '"' and '\' inside the quotes (docs §8.15.6), and COPY's escaping then
 * applies on top of that. The parser decides what a field is, which fields are NULL (it
 * writes \N itself) and where rows end.
 *
 * No state, no allocation of its own: pgfeed__encode_field/_array grow the caller's buffer
 * once; the _to variants and pgfeed__encode_row write into room the caller reserved with
 * PGFEED_ENCODE_*_MAX, so the parser reserves once per row.
 *
 * pgfeed__encode_row is the parser's hot path: one pass over a tsv line, a block at a time
 * (simd.h: 16 bytes with SSE2, else 8 in a 64-bit word), copying each block out before
 * looking at it and stopping only at bytes that end a field or need escaping; about 1 GB/s
 * of name.basics on one core. The per-field functions are the plain version of the same
 * rules, which the unit tests compare it with.
 */
#include <string.h>

#include "internal.h"
#include "simd.h"

/* The letter after the backslash for each byte COPY text must escape; 0 = verbatim. */
static const unsigned char copy_escape[256] = {
    ['\\'] = '\\',
    ['\t'] = 't',
    ['\n'] = 'n',
    ['\r'] = 'r',
};

/*
 * Bytes that end a verbatim run inside an array field: the COPY escapes, the element
 * separator, and the two characters array_in wants backslash-escaped inside quotes.
 */
static const unsigned char array_special[256] = {
    ['\\'] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1, ['"'] = 1,
};

char *pgfeed__encode_field_to(char *dst, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *q = p;
        while (q < end && !copy_escape[(unsigned char)*q])
            q++;
        memcpy(dst, p, (size_t)(q - p));
        dst += q - p;
        if (q == end)
            break;
        dst[0] = '\\';
        dst[1] = (char)copy_escape[(unsigned char)*q];
        dst += 2;
        p = q + 1;
    }
    return dst;
}

/*
 * Every element is quoted, so array_in never sees an unquoted NULL, empty string, brace or
 * space. Inside quotes array_in only unescapes '\x' pairs; the COPY level then doubles every
 * backslash: element '\' becomes \\\\ in the stream and '"' becomes \\".
 */
char *pgfeed__encode_array_to(char *dst, const char *p, size_t n)
{
    *dst++ = '{';
    if (n == 0) {
        *dst++ = '}';
        return dst;
    }
    const char *end = p + n;
    *dst++ = '"';
    while (p < end) {
        const char *q = p;
        while (q < end && !array_special[(unsigned char)*q])
            q++;
        memcpy(dst, p, (size_t)(q - p));
        dst += q - p;
        if (q == end)
            break;
        switch (*q) {
        case ',':
            memcpy(dst, "\",\"", 3);
            dst += 3;
            break;
        case '"':
            memcpy(dst, "\\\\\"", 3);
            dst += 3;
            break;
        case '\\':
            memcpy(dst, "\\\\\\\\", 4);
            dst += 4;
            break;
        default: /* tab, newline, carriage return: COPY's escapes only */
            dst[0] = '\\';
            dst[1] = (char)copy_escape[(unsigned char)*q];
            dst += 2;
            break;
        }
        p = q + 1;
    }
    *dst++ = '"';
    *dst++ = '}';
    return dst;
}

/* ---- one row, a block at a time ---- */

/*
 * The bytes of a block (simd.h) that need care: below 0x0e (tab, newline, carriage return,
 * other controls), a backslash, the delimiter; and, in array fields, a comma or a double
 * quote.
 */
static inline lanes_t block_special(const char *src, char delim, int delim_is_ctl)
{
    block_t v = load_block(src);
    block_t m = bytes_or(bytes_below(v, 0x0e), bytes_eq(v, '\\'));
    if (!delim_is_ctl)
        m = bytes_or(m, bytes_eq(v, delim));
    return lanes_of(m);
}

static inline lanes_t block_array(const char *src)
{
    block_t v = load_block(src);
    return lanes_of(bytes_or(bytes_eq(v, ','), bytes_eq(v, '"')));
}

/* Closes the field [fstart, fend) whose output began at ofield and now ends at o. */
static inline char *end_field(const struct pgfeed_row_spec *sp, int arr, const char *fstart,
                              const char *fend, char *ofield, char *o)
{
    size_t len = (size_t)(fend - fstart);
    const char *nm = sp->null_marker;
    if (len == sp->null_len &&
        (len == 0 || (fstart[0] == nm[0] && memcmp(fstart + 1, nm + 1, len - 1) == 0))) {
        ofield[0] = '\\';
        ofield[1] = 'N';
        return ofield + 2;
    }
    if (!arr)
        return o;
    if (len == 0) { /* "{" + "\"" became "{}" */
        ofield[1] = '}';
        return ofield + 2;
    }
    o[0] = '"';
    o[1] = '}';
    return o + 2;
}

/*
 * Each block is copied to the output whole; then every byte in it that needs care is taken
 * in turn from one mask: the bytes before it are already in place, its escape is written
 * over it, and the rest of the block is copied again just after the escape. Copies read a
 * block past the current one, so the last bytes of a line (less than two blocks) are
 * worked on from a zero-padded copy: nothing is read past the line.
 */
size_t pgfeed__encode_row(char **dst, const char *line, size_t n, const struct pgfeed_row_spec *sp)
{
    const char delim = sp->delimiter;
    const int delim_is_ctl = (unsigned char)delim < 0x0e; /* found as a control byte */
    const size_t nf = sp->nfields;
    const int *is_array = sp->is_array;
    const char *p = line, *end = line + n, *fstart = line;
    const char *tail = NULL; /* where the copy in tb starts, once p has reached it */
    char tb[TAIL_BYTES];
    char *o = *dst, *ofield = o;
    size_t i = 0;
    if (nf == 0)
        return pgfeed__count_fields(line, end, delim);
    int arr = is_array && is_array[0];
    if (arr) {
        o[0] = '{';
        o[1] = '"';
        o += 2;
    }
    while (p < end) {
        const char *src = block_src(p, end, &tail, tb); /* BLOCK readable bytes past the block */
        size_t lanes = lanes_left(p, end);
        lanes_t m = block_special(src, delim, delim_is_ctl);
        if (arr)
            m |= block_array(src);
        if (lanes < BLOCK)
            m &= lanes_below(lanes);
        copy_block(o, src);
        size_t done = 0; /* lanes of this block accounted for in o */
        while (m != 0) {
            size_t k = first_lane(m);
            unsigned char c = (unsigned char)src[k];
            o += k - done;
            done = k + 1;
            m &= m - 1;
            if (c == (unsigned char)delim) {
                o = end_field(sp, arr, fstart, p + k, ofield, o);
                if (++i == nf) /* one field too many at least: count them all */
                    return nf + pgfeed__count_fields(p + k + 1, end, delim);
                *o++ = '\t';
                fstart = p + k + 1;
                ofield = o;
                int was = arr;
                arr = is_array && is_array[i];
                if (arr) {
                    o[0] = '{';
                    o[1] = '"';
                    o += 2;
                }
                if (arr != was) { /* commas and quotes matter from here on, or no longer */
                    lanes_t all = block_special(src, delim, delim_is_ctl);
                    if (arr)
                        all |= block_array(src);
                    if (lanes < BLOCK)
                        all &= lanes_below(lanes);
                    m = lanes_above(all, k);
                }
            } else {
                switch (c) {
                case '\\':
                    if (arr) { /* \\ for array_in, each doubled for COPY */
                        memcpy(o, "\\\\\\\\", 4);
                        o += 4;
                    } else {
                        o[0] = o[1] = '\\';
                        o += 2;
                    }
                    break;
                case '\t':
                case '\n':
                case '\r':
                    o[0] = '\\';
                    o[1] = (char)copy_escape[c];
                    o += 2;
                    break;
                case ',': /* array fields only: the element separator */
                    memcpy(o, "\",\"", 3);
                    o += 3;
                    break;
                case '"': /* array fields only */
                    memcpy(o, "\\\\\"", 3);
                    o += 3;
                    break;
                default: /* another control byte: verbatim */
                    *o++ = (char)c;
                    break;
                }
            }
            if (done < lanes)
                copy_block(o, src + done);
        }
        o += lanes - done;
        p += lanes;
    }
    o = end_field(sp, arr, fstart, end, ofield, o);
    if (i + 1 != nf)
        return i + 1;
    *o++ = '\n';
    *dst = o;
    return nf;
}

int pgfeed__encode_field(struct pgfeed_buf *out, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = pgfeed__buf_reserve(out, PGFEED_ENCODE_FIELD_MAX(n));
    if (rc != 0)
        return rc;
    out->len = (size_t)(pgfeed__encode_field_to(out->data + out->len, p, n) - out->data);
    return 0;
}

int pgfeed__encode_array(struct pgfeed_buf *out, const char *p, size_t n)
{
    int rc = pgfeed__buf_reserve(out, PGFEED_ENCODE_ARRAY_MAX(n));
    if (rc != 0)
        return rc;
    out->len = (size_t)(pgfeed__encode_array_to(out->data + out->len, p, n) - out->data);
    return 0;
}
