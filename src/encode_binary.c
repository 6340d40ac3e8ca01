/*
 * encode_binary.c -- fields and rows in PostgreSQL's binary COPY format.
 *
 * Owns the binary tuple (int16 field count, then per field an int32 length, -1 for NULL, and
 * the bytes; network byte order), the binary form of each kind pgfeed sends (text as it is,
 * int2/int4/int8, bool, numeric, and one-dimensional arrays of them), and the input rules the
 * server would otherwise apply to the text form: PostgreSQL 15's pg_strtoint16/32/64, boolin
 * and numeric_in, with their exact messages, so that a value it would refuse is refused here
 * with the same words. The parser decides what a field is and which fields are NULL; the
 * sink writes the file header and trailer, knows the column types and applies nothing: the
 * server applies typmods (varchar(n), char(n), numeric(p,s)) on receive, as for text.
 *
 * No state and no allocation on the encoding side: the caller reserves
 * PGFEED_ENCODE_BIN_FIELD_MAX / PGFEED_ENCODE_BIN_ROW_MAX once and each function returns the
 * end of what it wrote. pgfeed__encode_bin_row, the parser's hot path, takes a tsv line a
 * block at a time (SSE2; else a memchr per field): text and text-array bytes are copied
 * block by block and a delimiter or comma only writes a length; other kinds are parsed from
 * the line where they stand (an integer of plain digits is one short loop). About 0.85 GB/s
 * of name.basics on one core, against 1 GB/s for the COPY text encoder, for 1.6 times the
 * output bytes (arrays carry 20 bytes of header and 4 per element). The way back
 * (pgfeed__bin_row_as_input, for the rejects file) allocates, but runs only for rows the
 * server refused; it prints each value and leaves the line's delimiters, NULLs and csv
 * quoting to rejects.c (pgfeed__rejects_field), as sink_refused.c does for COPY text rows.
 *
 * Arrays: the field is split at every comma, elements are never NULL and never trimmed, as
 * encode_copy.c does for text COPY; an empty field is an empty array (ndim 0). array_recv
 * insists on the element type's OID, so each field carries it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "simd.h"

#define NUMERIC_POS        0x0000
#define NUMERIC_NEG        0x4000
#define NUMERIC_NAN        0xC000
#define NUMERIC_PINF       0xD000
#define NUMERIC_NINF       0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF     /* numeric.c: NUMERIC_DSCALE_MASK */
#define EXPONENT_LIMIT     1073741823 /* INT_MAX / 2: numeric_in's limit on an exponent */

static inline char *put16(char *o, uint32_t v)
{
    o[0] = (char)(v >> 8);
    o[1] = (char)v;
    return o + 2;
}

static inline char *put32(char *o, uint32_t v)
{
    o[0] = (char)(v >> 24);
    o[1] = (char)(v >> 16);
    o[2] = (char)(v >> 8);
    o[3] = (char)v;
    return o + 4;
}

static inline char *put64(char *o, uint64_t v)
{
    put32(o, (uint32_t)(v >> 32));
    return put32(o + 4, (uint32_t)v);
}

static inline uint32_t get16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 8 | u[1];
}

static inline uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* isspace() in the C locale, which is what the server's input functions call. */
static inline int pg_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline int pg_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* ---- integers: pg_strtoint16/32/64 ---- */

/*
 * PostgreSQL 15's rules: spaces, a sign, decimal digits, spaces. The value is accumulated
 * as a magnitude up to that of the type's minimum, so that an overflow is found at the digit
 * that causes it (before any trailing junk: "99999999999x" is out of range) while the
 * minimum's magnitude without a minus sign is out of range only once the rest is known to be
 * valid ("2147483648x" is a syntax error).
 */
static int parse_int(const char *p, size_t n, uint64_t max, int64_t *out)
{
    if (n - 1 < 18) { /* 1..18 bytes: plain digits need no more */
        uint64_t v = 0;
        size_t i = 0;
        while (i < n && pg_digit(p[i]))
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == n) {
            if (v > max)
                return PGFEED_BIN_ERANGE;
            *out = (int64_t)v;
            return 0;
        }
    }
    const char *end = p + n;
    while (p < end && pg_space(*p))
        p++;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    if (p == end || !pg_digit(*p))
        return PGFEED_BIN_ESYNTAX;
    uint64_t acc = 0, lim = max + 1;
    while (p < end && pg_digit(*p)) {
        unsigned d = (unsigned)(*p++ - '0');
        if (acc > (lim - d) / 10)
            return PGFEED_BIN_ERANGE;
        acc = acc * 10 + d;
    }
    while (p < end && pg_space(*p))
        p++;
    if (p != end)
        return PGFEED_BIN_ESYNTAX;
    if (!neg && acc == lim)
        return PGFEED_BIN_ERANGE;
    *out = neg ? -(int64_t)(acc - 1) - 1 : (int64_t)acc;
    return 0;
}

/* ---- booleans: boolin ---- */

/* p[0..len) is a prefix of word, at least min bytes long, ignoring ASCII case. */
static int word_prefix(const char *p, size_t len, const char *word, size_t min)
{
    size_t wl = strlen(word);
    if (len < min || len > wl)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (lower(p[i]) != word[i])
            return 0;
    return 1;
}

/* boolin and parse_bool_with_len: 1, 0, or -1 for invalid. */
static int parse_bool(const char *p, size_t n)
{
    while (n > 0 && pg_space(*p))
        p++, n--;
    while (n > 0 && pg_space(p[n - 1]))
        n--;
    if (n == 0)
        return -1;
    switch (lower(p[0])) {
    case 't':
        return word_prefix(p, n, "true", 1) ? 1 : -1;
    case 'f':
        return word_prefix(p, n, "false", 1) ? 0 : -1;
    case 'y':
        return word_prefix(p, n, "yes", 1) ? 1 : -1;
    case 'n':
        return word_prefix(p, n, "no", 1) ? 0 : -1;
    case 'o': /* "o" alone is on or off: two letters at least */
        return word_prefix(p, n, "on", 2) ? 1 : word_prefix(p, n, "off", 2) ? 0 : -1;
    case '1':
        return n == 1 ? 1 : -1;
    case '0':
        return n == 1 ? 0 : -1;
    default:
        return -1;
    }
}

/* ---- numeric: numeric_in, then numeric_send ---- */

/* [p, end) begins with word (lower case), ignoring ASCII case; pg_strncasecmp(p, word, len). */
static int starts_ci(const char *p, const char *end, const char *word)
{
    size_t wl = strlen(word);
    if ((size_t)(end - p) < wl)
        return 0;
    for (size_t i = 0; i < wl; i++)
        if (lower(p[i]) != word[i])
            return 0;
    return 1;
}

/*
 * Writes numeric_send's form of the value at o (int16 ndigits, int16 weight, uint16 sign,
 * uint16 dscale, ndigits base-10000 digits) and sets *end past it; returns 0 or an error.
 * The steps are set_var_from_str's: decimal digits and weight, the exponent, base-10000
 * digits aligned on the decimal point, leading and trailing zero digits stripped (a zero is
 * positive with weight 0), and make_result's check that weight and dscale fit.
 */
static int encode_numeric(char *o, const char *p, size_t n, char **endp)
{
    const char *end = p + n;
    while (p < end && pg_space(*p))
        p++;
    uint32_t special = 0;
    size_t skip = 0;
    static const struct {
        const char *word;
        uint32_t sign;
    } specials[] = {
        {"nan", NUMERIC_NAN},        {"infinity", NUMERIC_PINF}, {"+infinity", NUMERIC_PINF},
        {"-infinity", NUMERIC_NINF}, {"inf", NUMERIC_PINF},      {"+inf", NUMERIC_PINF},
        {"-inf", NUMERIC_NINF},
    };
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        if (starts_ci(p, end, specials[i].word)) {
            special = specials[i].sign;
            skip = strlen(specials[i].word);
            break;
        }
    if (special) {
        for (p += skip; p < end; p++)
            if (!pg_space(*p))
                return PGFEED_BIN_ESYNTAX;
        o = put16(o, 0);
        o = put16(o, 0);
        o = put16(o, special);
        *endp = put16(o, 0);
        return 0;
    }

    uint32_t sign = NUMERIC_POS;
    if (p < end && (*p == '+' || *p == '-'))
        sign = *p++ == '-' ? NUMERIC_NEG : NUMERIC_POS;
    const char *ds = p; /* the digits, with at most one '.' among them */
    int have_dp = 0;
    if (p < end && *p == '.') {
        have_dp = 1;
        p++;
    }
    if (p == end || !pg_digit(*p))
        return PGFEED_BIN_ESYNTAX;
    int64_t dweight = -1, dscale = 0, ddigits = 0;
    for (; p < end; p++) {
        if (pg_digit(*p)) {
            ddigits++;
            if (have_dp)
                dscale++;
            else
                dweight++;
        } else if (*p == '.') {
            if (have_dp)
                return PGFEED_BIN_ESYNTAX;
            have_dp = 1;
        } else {
            break;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        /* strtol(): spaces, a sign, digits; a value past long's range saturates */
        p++;
        while (p < end && pg_space(*p))
            p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end || !pg_digit(*p))
            return PGFEED_BIN_ESYNTAX;
        int64_t e = 0;
        for (; p < end && pg_digit(*p); p++)
            if (e <= EXPONENT_LIMIT)
                e = e * 10 + (*p - '0');
        if (e >= EXPONENT_LIMIT)
            return PGFEED_BIN_EOVERFLOW;
        if (eneg)
            e = -e;
        dweight += e;
        dscale -= e;
        if (dscale < 0)
            dscale = 0;
    }
    for (; p < end; p++)
        if (!pg_space(*p))
            return PGFEED_BIN_ESYNTAX;

    /* offset: decimal zeros before the first digit that align it in its base-10000 digit */
    int64_t weight = dweight >= 0 ? (dweight + 4) / 4 - 1 : -((-dweight - 1) / 4 + 1);
    int64_t offset = (weight + 1) * 4 - (dweight + 1);
    int64_t groups = (ddigits + offset + 3) / 4;
    char *digits = o + 8, *w = digits;
    const char *c = ds;
    /* idx: the decimal digit due next (negative: alignment zeros); nz: digits written up to
     * the last nonzero one, so trailing zero digits are left out */
    int64_t idx = -offset, nz = 0;
    for (int64_t g = 0; g < groups; g++) {
        unsigned v = 0;
        for (int k = 0; k < 4; k++, idx++) {
            unsigned d = 0;
            if (idx >= 0 && idx < ddigits) {
                if (*c == '.')
                    c++;
                d = (unsigned)(*c++ - '0');
            }
            v = v * 10 + d;
        }
        if (v == 0 && w == digits) { /* a leading zero digit */
            weight--;
            continue;
        }
        w = put16(w, v);
        if (v != 0)
            nz = (w - digits) / 2;
    }
    if (nz == 0) {
        sign = NUMERIC_POS;
        weight = 0;
    }
    if (weight > INT16_MAX || weight < INT16_MIN || dscale > NUMERIC_DSCALE_MAX)
        return PGFEED_BIN_EOVERFLOW;
    put16(o, (uint32_t)nz);
    put16(o + 2, (uint32_t)(uint16_t)(int16_t)weight);
    put16(o + 4, sign);
    put16(o + 6, (uint32_t)dscale);
    *endp = digits + 2 * nz;
    return 0;
}

/* ---- fields ---- */

static const int value_size[] = {
    [PGFEED_BIN_INT2] = 2,
    [PGFEED_BIN_INT4] = 4,
    [PGFEED_BIN_INT8] = 8,
};
static const uint64_t value_max[] = {
    [PGFEED_BIN_INT2] = INT16_MAX,
    [PGFEED_BIN_INT4] = INT32_MAX,
    [PGFEED_BIN_INT8] = INT64_MAX,
};

static char *fail(struct pgfeed_bin_error *err, int code, int kind, const char *p, size_t n)
{
    err->code = code;
    err->kind = kind;
    err->value = p;
    err->value_len = n;
    return NULL;
}

/* One value of kind (not an array) as int32 length + bytes at o. */
static inline char *encode_value(char *o, const char *p, size_t n, int kind,
                                 struct pgfeed_bin_error *err)
{
    int rc;
    switch (kind) {
    case PGFEED_BIN_TEXT:
        o = put32(o, (uint32_t)n);
        memcpy(o, p, n);
        return o + n;
    case PGFEED_BIN_INT2:
    case PGFEED_BIN_INT4:
    case PGFEED_BIN_INT8: {
        int64_t v = 0;
        if ((rc = parse_int(p, n, value_max[kind], &v)) != 0)
            return fail(err, rc, kind, p, n);
        o = put32(o, (uint32_t)value_size[kind]);
        if (kind == PGFEED_BIN_INT2)
            return put16(o, (uint32_t)(uint16_t)v);
        if (kind == PGFEED_BIN_INT4)
            return put32(o, (uint32_t)v);
        return put64(o, (uint64_t)v);
    }
    case PGFEED_BIN_BOOL:
        if ((rc = parse_bool(p, n)) < 0)
            return fail(err, PGFEED_BIN_ESYNTAX, kind, p, n);
        o = put32(o, 1);
        *o = (char)rc;
        return o + 1;
    case PGFEED_BIN_NUMERIC: {
        char *e;
        if ((rc = encode_numeric(o + 4, p, n, &e)) != 0)
            return fail(err, rc, kind, p, n);
        put32(o, (uint32_t)(e - o - 4));
        return e;
    }
    default:
        return fail(err, PGFEED_BIN_EKIND, kind, p, n);
    }
}

char *pgfeed__encode_bin_field(char *dst, const char *p, size_t n, const struct pgfeed_bin_field *f,
                               struct pgfeed_bin_error *err)
{
    if (!f->is_array)
        return encode_value(dst, p, n, f->kind, err);
    /* array_send: ndim, flags (1: has NULLs), element OID, per dimension size and lbound */
    char *o = dst + 4;
    if (n == 0) {
        o = put32(o, 0);
        o = put32(o, 0);
        o = put32(o, f->elem_oid);
    } else {
        o = put32(o, 1);
        o = put32(o, 0);
        o = put32(o, f->elem_oid);
        char *dim = o;
        o = put32(o + 4, 1);
        const char *end = p + n;
        uint32_t k = 0;
        for (;;) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            if (c == NULL)
                c = end;
            if ((o = encode_value(o, p, (size_t)(c - p), f->kind, err)) == NULL)
                return NULL;
            k++;
            if (c == end)
                break;
            p = c + 1;
        }
        put32(dim, k);
    }
    put32(dst, (uint32_t)(o - dst - 4));
    return o;
}

/* ---- rows ---- */

/* A field equal to the null marker. */
static inline int is_null(const struct pgfeed_row_spec *sp, const char *p, size_t len)
{
    return len == sp->null_len &&
           (len == 0 || (p[0] == sp->null_marker[0] && memcmp(p, sp->null_marker, len) == 0));
}

#if PGFEED_SIMD_SSE2

/*
 * The row a block of 16 bytes at a time (simd.h), as encode_copy.c does: a text field's bytes are
 * copied a block at a time to where they belong, before anyone knows where the field ends
 * (the copy may run 16 bytes past it: PGFEED_ENCODE_BIN_ROW_MAX has room), and each
 * delimiter, or comma in a text array, found in the block's mask closes a field or an
 * element by writing its length in front of it. Other fields are found the same way and
 * then encoded from the input by pgfeed__encode_bin_field. The last bytes of the line (less
 * than two blocks) are worked on from a zero-padded copy, so nothing past it is read.
 */
enum { M_TEXT, M_ARRAY, M_PARSE }; /* a text field, a text array, anything else */

struct cursor {
    char *lenp; /* the field's int32 length */
    char *elp;  /* text array: the current element's int32 length */
    uint32_t nel;
    int mode;
};

/* Sets c up for field f starting at lenp; returns where its first byte goes. */
static inline char *start_field(struct cursor *c, const struct pgfeed_bin_field *f, char *lenp)
{
    c->lenp = lenp;
    if (f->kind != PGFEED_BIN_TEXT) {
        c->mode = M_PARSE;
        return lenp + 4;
    }
    if (!f->is_array) {
        c->mode = M_TEXT;
        return lenp + 4;
    }
    c->mode = M_ARRAY; /* ndim 1, no NULLs, dim filled in at the end, lower bound 1 */
    put32(lenp + 4, 1);
    put32(lenp + 8, 0);
    put32(lenp + 12, f->elem_oid);
    put32(lenp + 20, 1);
    c->elp = lenp + 24;
    c->nel = 0;
    return lenp + 28;
}

/*
 * Closes the field [fs, fe) whose last element began at es; o is where byte fe would have
 * gone (text modes). Returns the end of the field, or NULL with err set.
 */
static inline char *end_field(struct cursor *c, const struct pgfeed_row_spec *sp,
                              const struct pgfeed_bin_field *f, const char *fs, const char *fe,
                              const char *es, char *o, struct pgfeed_bin_error *err)
{
    size_t len = (size_t)(fe - fs);
    if (is_null(sp, fs, len)) {
        put32(c->lenp, UINT32_MAX); /* -1: NULL */
        return c->lenp + 4;
    }
    switch (c->mode) {
    case M_TEXT:
        put32(c->lenp, (uint32_t)len);
        return o;
    case M_ARRAY:
        if (len == 0) { /* an empty array: ndim 0 */
            put32(c->lenp, 12);
            put32(c->lenp + 4, 0);
            return c->lenp + 16;
        }
        put32(c->elp, (uint32_t)(fe - es));
        put32(c->lenp + 16, c->nel + 1);
        put32(c->lenp, (uint32_t)(o - c->lenp - 4));
        return o;
    default:
        return pgfeed__encode_bin_field(c->lenp, fs, len, f, err);
    }
}

size_t pgfeed__encode_bin_row(char **dst, const char *line, size_t n,
                              const struct pgfeed_row_spec *sp, const struct pgfeed_bin_field *f,
                              struct pgfeed_bin_error *err)
{
    const char delim = sp->delimiter;
    const size_t nf = sp->nfields;
    const char *p = line, *end = line + n, *fs = line, *es = line;
    const char *tail = NULL; /* where the copy in tb starts, once p has reached it */
    char tb[TAIL_BYTES];
    struct cursor c;
    size_t i = 0;
    err->code = 0;
    if (nf == 0)
        return pgfeed__count_fields(line, end, delim);
    char *o = start_field(&c, &f[0], put16(*dst, (uint32_t)nf));
    while (p < end) {
        const char *src = block_src(p, end, &tail, tb); /* BLOCK readable bytes past the block */
        size_t lanes = lanes_left(p, end);
        block_t v = load_block(src);
        lanes_t keep = lanes_below(lanes);
        lanes_t dm = lanes_of(bytes_eq(v, delim)) & keep, cm = lanes_of(bytes_eq(v, ',')) & keep;
        lanes_t m = dm | (c.mode == M_ARRAY ? cm : 0);
        if (c.mode != M_PARSE)
            copy_block(o, src);
        size_t done = 0; /* lanes of this block accounted for in o */
        while (m != 0) {
            size_t k = first_lane(m);
            o += k - done; /* o is meaningless, and unused, in M_PARSE */
            done = k + 1;
            if (lane_set(dm, k)) {
                if ((o = end_field(&c, sp, &f[i], fs, p + k, es, o, err)) == NULL) {
                    err->field = i;
                    return i + 1 + pgfeed__count_fields(p + k + 1, end, delim);
                }
                if (++i == nf) /* one field too many at least: count them all */
                    return nf + pgfeed__count_fields(p + k + 1, end, delim);
                fs = es = p + k + 1;
                o = start_field(&c, &f[i], o);
            } else { /* a comma in a text array: the element ends */
                put32(c.elp, (uint32_t)(p + k - es));
                c.nel++;
                c.elp = o;
                o += 4;
                es = p + k + 1;
            }
            if (c.mode != M_PARSE && done < lanes)
                copy_block(o, src + done);
            m = lanes_above(dm | (c.mode == M_ARRAY ? cm : 0), k);
        }
        o += lanes - done;
        p += lanes;
    }
    if ((o = end_field(&c, sp, &f[i], fs, end, es, o, err)) == NULL) {
        err->field = i;
        return i + 1;
    }
    if (i + 1 != nf)
        return i + 1;
    *dst = o;
    return nf;
}

#else /* one memchr per field */

size_t pgfeed__encode_bin_row(char **dst, const char *line, size_t n,
                              const struct pgfeed_row_spec *sp, const struct pgfeed_bin_field *f,
                              struct pgfeed_bin_error *err)
{
    const char delim = sp->delimiter;
    const size_t nf = sp->nfields;
    const char *p = line, *end = line + n;
    char *o = *dst;
    err->code = 0;
    if (nf == 0)
        return pgfeed__count_fields(line, end, delim);
    o = put16(o, (uint32_t)nf);
    for (size_t i = 0;; i++) {
        const char *d = memchr(p, delim, (size_t)(end - p));
        if (d == NULL)
            d = end;
        size_t len = (size_t)(d - p);
        if (is_null(sp, p, len)) {
            o = put32(o, UINT32_MAX); /* -1: NULL */
        } else if (f[i].kind == PGFEED_BIN_TEXT && !f[i].is_array) {
            o = put32(o, (uint32_t)len);
            memcpy(o, p, len);
            o += len;
        } else if ((o = pgfeed__encode_bin_field(o, p, len, &f[i], err)) == NULL) {
            err->field = i;
            return d == end ? i + 1 : i + 1 + pgfeed__count_fields(d + 1, end, delim);
        }
        if (d == end) {
            if (i + 1 != nf)
                return i + 1;
            *dst = o;
            return nf;
        }
        if (i + 1 == nf) /* one field too many at least: count them all */
            return nf + pgfeed__count_fields(d + 1, end, delim);
        p = d + 1;
    }
}
#endif

size_t pgfeed__bin_tuple_len(const char *p, size_t n)
{
    if (n < 2)
        return 0;
    int16_t nf = (int16_t)get16(p);
    size_t at = 2;
    if (nf < 0)
        return 0;
    for (int i = 0; i < nf; i++) {
        if (n - at < 4)
            return 0;
        int32_t len = (int32_t)get32(p + at);
        at += 4;
        if (len == -1)
            continue;
        if (len < 0 || n - at < (size_t)len)
            return 0;
        at += (size_t)len;
    }
    return at;
}

/* ---- messages ---- */

char *pgfeed__bin_error_message(const struct pgfeed_bin_error *err)
{
    static const char *const type_name[] = {
        [PGFEED_BIN_TEXT] = "text",    [PGFEED_BIN_INT2] = "smallint",
        [PGFEED_BIN_INT4] = "integer", [PGFEED_BIN_INT8] = "bigint",
        [PGFEED_BIN_BOOL] = "boolean", [PGFEED_BIN_NUMERIC] = "numeric",
    };
    const char *type =
        err->kind >= 0 && err->kind <= PGFEED_BIN_NUMERIC ? type_name[err->kind] : "unknown";
    int len = (int)(err->value_len < INT32_MAX ? err->value_len : INT32_MAX);
    switch (err->code) {
    case PGFEED_BIN_ESYNTAX:
        return pgfeed__strdup_printf("invalid input syntax for type %s: \"%.*s\"", type, len,
                                     err->value);
    case PGFEED_BIN_ERANGE:
        return pgfeed__strdup_printf("value \"%.*s\" is out of range for type %s", len, err->value,
                                     type);
    case PGFEED_BIN_EOVERFLOW:
        return pgfeed__strdup_printf("value overflows numeric format");
    default:
        return pgfeed__strdup_printf("no binary form for a value of kind %d", err->kind);
    }
}

const char *pgfeed__bin_error_sqlstate(const struct pgfeed_bin_error *err)
{
    switch (err->code) {
    case PGFEED_BIN_ESYNTAX:
        return "22P02"; /* invalid_text_representation */
    case PGFEED_BIN_ERANGE:
    case PGFEED_BIN_EOVERFLOW:
        return "22003"; /* numeric_value_out_of_range */
    default:
        return "XX000";
    }
}

/* ---- back to an input line ---- */

/* numeric_out of numeric_send's bytes (len of them at d). */
static int numeric_text(struct pgfeed_buf *b, const char *d, size_t len)
{
    if (len < 8)
        return UV_EINVAL;
    size_t nd = get16(d);
    int weight = (int16_t)get16(d + 2);
    uint32_t sign = get16(d + 4);
    int dscale = (int)get16(d + 6);
    if (len != 8 + 2 * nd)
        return UV_EINVAL;
    const char *word = sign == NUMERIC_NAN    ? "NaN"
                       : sign == NUMERIC_PINF ? "Infinity"
                       : sign == NUMERIC_NINF ? "-Infinity"
                                              : NULL;
    if (word)
        return pgfeed__buf_append(b, word, strlen(word));
    if (sign != NUMERIC_POS && sign != NUMERIC_NEG)
        return UV_EINVAL;
    /* numeric_recv's checks: the room below counts 4 characters per base-10000 digit */
    if (dscale > NUMERIC_DSCALE_MAX)
        return UV_EINVAL;
    for (size_t i = 0; i < nd; i++)
        if (get16(d + 8 + 2 * i) > 9999)
            return UV_EINVAL;
    /* sign, integer part, point, 4 per fractional digit, rounded up */
    size_t need = 2 + (weight >= 0 ? 4 * (size_t)weight + 4 : 1) + 1 + (size_t)dscale + 4;
    if (pgfeed__buf_reserve(b, need) != 0)
        return UV_ENOMEM;
    char *o = b->data + b->len;
    if (sign == NUMERIC_NEG)
        *o++ = '-';
    if (weight < 0) {
        *o++ = '0';
    } else {
        for (int i = 0; i <= weight; i++) {
            unsigned v = (size_t)i < nd ? get16(d + 8 + 2 * (size_t)i) : 0;
            o += i == 0 ? sprintf(o, "%u", v) : sprintf(o, "%04u", v);
        }
    }
    if (dscale > 0) {
        *o++ = '.';
        char *frac = o;
        for (int i = weight + 1; o - frac < dscale; i++) {
            unsigned v = i >= 0 && (size_t)i < nd ? get16(d + 8 + 2 * (size_t)i) : 0;
            o += sprintf(o, "%04u", v);
        }
        o = frac + dscale;
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

/* One non-NULL value of kind (len bytes at d) as text. */
static int value_text(struct pgfeed_buf *b, int kind, const char *d, size_t len)
{
    char num[24];
    int k;
    switch (kind) {
    case PGFEED_BIN_TEXT:
        return pgfeed__buf_append(b, d, len);
    case PGFEED_BIN_INT2:
        if (len != 2)
            return UV_EINVAL;
        k = snprintf(num, sizeof num, "%d", (int)(int16_t)get16(d));
        return pgfeed__buf_append(b, num, (size_t)k);
    case PGFEED_BIN_INT4:
        if (len != 4)
            return UV_EINVAL;
        k = snprintf(num, sizeof num, "%ld", (long)(int32_t)get32(d));
        return pgfeed__buf_append(b, num, (size_t)k);
    case PGFEED_BIN_INT8:
        if (len != 8)
            return UV_EINVAL;
        k = snprintf(num, sizeof num, "%lld",
                     (long long)(int64_t)((uint64_t)get32(d) << 32 | get32(d + 4)));
        return pgfeed__buf_append(b, num, (size_t)k);
    case PGFEED_BIN_BOOL:
        if (len != 1)
            return UV_EINVAL;
        return pgfeed__buf_append(b, d[0] ? "t" : "f", 1);
    case PGFEED_BIN_NUMERIC:
        return numeric_text(b, d, len);
    default:
        return UV_EINVAL;
    }
}

/* An array field (len bytes at d) as its comma-separated elements. */
static int array_text(struct pgfeed_buf *b, int kind, const char *d, size_t len)
{
    if (len < 12)
        return UV_EINVAL;
    int32_t ndim = (int32_t)get32(d);
    if (ndim == 0)
        return len == 12 ? 0 : UV_EINVAL;
    if (ndim != 1 || len < 20)
        return UV_EINVAL;
    uint32_t k = get32(d + 12);
    size_t at = 20;
    for (uint32_t i = 0; i < k; i++) {
        if (len - at < 4)
            return UV_EINVAL;
        int32_t el = (int32_t)get32(d + at);
        at += 4;
        if (i > 0 && pgfeed__buf_append(b, ",", 1) != 0)
            return UV_ENOMEM;
        if (el == -1)
            continue;
        if (el < 0 || len - at < (size_t)el)
            return UV_EINVAL;
        int rc = value_text(b, kind, d + at, (size_t)el);
        if (rc != 0)
            return rc;
        at += (size_t)el;
    }
    return at == len ? 0 : UV_EINVAL;
}

int pgfeed__bin_row_as_input(struct pgfeed_buf *out, const char *tuple, size_t n,
                             const struct pgfeed_bin_field *f, size_t nfields, char delimiter,
                             const char *null_marker, char quote)
{
    size_t t = pgfeed__bin_tuple_len(tuple, n);
    if (t == 0 || t != n || get16(tuple) != nfields)
        return UV_EINVAL;
    const struct pgfeed_input_form form = {delimiter, quote, null_marker};
    size_t start = out->len, at = 2;
    struct pgfeed_buf v = {0};
    int rc = 0;
    for (size_t i = 0; i < nfields && rc == 0; i++) {
        int32_t len = (int32_t)get32(tuple + at);
        at += 4;
        if (len == -1) {
            rc = pgfeed__rejects_field(out, &form, i, NULL, 0);
            continue;
        }
        v.len = 0;
        rc = f[i].is_array ? array_text(&v, f[i].kind, tuple + at, (size_t)len)
                           : value_text(&v, f[i].kind, tuple + at, (size_t)len);
        at += (size_t)len;
        if (rc == 0)
            rc = pgfeed__rejects_field(out, &form, i, v.len ? v.data : "", v.len);
    }
    pgfeed__buf_free(&v);
    if (rc != 0)
        out->len = start;
    return rc;
}
