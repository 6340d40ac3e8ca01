/*
 * fuzz_encode_binary.c -- binary COPY tuples (encode_binary.c) for each kind, and the way back.
 *
 * Input: 4 configuration bytes, one kind byte per field, then the line (or tuple).
 *   byte 0  bits 0-2 fields - 1; bit 3: the rest is a tuple to read, not a line to encode;
 *           bits 4-5 the null marker ("", \N, NULL, \); bit 6 csv for the way back; bit 7
 *           (with bit 3): the rest describes the tuple's values, which are put together
 *           with the right lengths (build_tuple)
 *   byte 1  which fields are arrays
 *   byte 2  the delimiter (tab , | ; space \ x)
 *   byte 3  unused
 * Encoding: pgfeed__encode_bin_row (SSE2 on x86-64) and its plain twin compiled here
 * (PGFEED_NO_SIMD) must agree with each other and with pgfeed__encode_bin_field per field:
 * the same field count, the same first refused field and error, the same bytes. Every
 * output buffer is exactly its documented bound in its own allocation. A refused value
 * gets a message; a tuple is one tuple for pgfeed__bin_tuple_len (and none when cut), and
 * pgfeed__bin_row_as_input prints it back to a line that encodes to the same tuple.
 * Reading: arbitrary bytes as a tuple, for pgfeed__bin_tuple_len and
 * pgfeed__bin_row_as_input, which must refuse what is not nfields fields of those kinds;
 * or a tuple whose lengths are right and whose values are arbitrary (numerics with any
 * digits, weight, sign and scale; arrays of any element count), so that the checks behind
 * the lengths are reached.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define PGFEED_NO_SIMD             1
#define pgfeed__encode_bin_field   plain_encode_bin_field
#define pgfeed__encode_bin_row     plain_encode_bin_row
#define pgfeed__bin_tuple_len      plain_bin_tuple_len
#define pgfeed__bin_error_message  plain_bin_error_message
#define pgfeed__bin_error_sqlstate plain_bin_error_sqlstate
#define pgfeed__bin_row_as_input   plain_bin_row_as_input
char *plain_encode_bin_field(char *dst, const char *p, size_t n, const struct pgfeed_bin_field *f,
                             struct pgfeed_bin_error *err);
size_t plain_encode_bin_row(char **dst, const char *line, size_t n,
                            const struct pgfeed_row_spec *spec, const struct pgfeed_bin_field *f,
                            struct pgfeed_bin_error *err);
size_t plain_bin_tuple_len(const char *p, size_t n);
char *plain_bin_error_message(const struct pgfeed_bin_error *err);
const char *plain_bin_error_sqlstate(const struct pgfeed_bin_error *err);
int plain_bin_row_as_input(struct pgfeed_buf *out, const char *tuple, size_t n,
                           const struct pgfeed_bin_field *f, size_t nfields, char delimiter,
                           const char *null_marker, char quote);
#include "encode_binary.c"
#undef pgfeed__encode_bin_field
#undef pgfeed__encode_bin_row
#undef pgfeed__bin_tuple_len
#undef pgfeed__bin_error_message
#undef pgfeed__bin_error_sqlstate
#undef pgfeed__bin_row_as_input

#define MAXF 8

struct enc {
    size_t found;
    struct pgfeed_bin_error err;
    char *buf;
    size_t len; /* bytes written when the row is complete */
};

static void encode(int plain, const char *line, size_t n, const struct pgfeed_row_spec *sp,
                   const struct pgfeed_bin_field *f, struct enc *e)
{
    size_t cap = PGFEED_ENCODE_BIN_ROW_MAX(n, sp->nfields);
    char *o;
    memset(e, 0, sizeof *e);
    e->buf = o = malloc(cap);
    if (!o)
        fuzz_die("out of memory");
    e->found = plain ? plain_encode_bin_row(&o, line, n, sp, f, &e->err)
                     : pgfeed__encode_bin_row(&o, line, n, sp, f, &e->err);
    if ((size_t)(o - e->buf) > cap)
        fuzz_die("a row encoded past its bound");
    if (e->found == sp->nfields && e->err.code == 0)
        e->len = (size_t)(o - e->buf);
    else if (o != e->buf)
        fuzz_die("encode_bin_row moved *dst for a row it did not complete");
}

static void read_tuple(const char *p, size_t n, const struct pgfeed_bin_field *f, size_t nf,
                       char delim, const char *null, char quote)
{
    size_t t = pgfeed__bin_tuple_len(p, n);
    if (t != plain_bin_tuple_len(p, n))
        fuzz_die("the two bin_tuple_len differ");
    if (t > n || (t > 0 && t < 2))
        fuzz_die("bin_tuple_len %zu of %zu bytes", t, n);
    if (t == 0)
        return;
    struct pgfeed_buf a = {0}, b = {0};
    int ra = pgfeed__bin_row_as_input(&a, p, t, f, nf, delim, null, quote);
    int rb = plain_bin_row_as_input(&b, p, t, f, nf, delim, null, quote);
    if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        fuzz_die("the two bin_row_as_input differ");
    if (ra != 0 && ra != UV_EINVAL)
        fuzz_die("bin_row_as_input: %s", pgfeed_err_name(ra));
    pgfeed__buf_free(&a);
    pgfeed__buf_free(&b);
}

static void put_be(struct pgfeed_buf *b, uint64_t v, unsigned bytes)
{
    char x[8];
    for (unsigned i = 0; i < bytes; i++)
        x[i] = (char)(v >> (8 * (bytes - 1 - i)));
    if (pgfeed__buf_append(b, x, bytes) != 0)
        fuzz_die("out of memory");
}

/* One value of kind, its bytes drawn from in, with its int32 length in front. */
static void build_value(struct pgfeed_buf *b, int kind, struct fuzz_in *in)
{
    static const unsigned sizes[] = {0, 2, 4, 8, 1};
    size_t at = b->len;
    put_be(b, 0, 4);
    if (kind == PGFEED_BIN_NUMERIC) {
        unsigned nd = fuzz_take(in);
        put_be(b, nd, 2);
        put_be(b, fuzz_take_n(in, 2), 2); /* weight */
        unsigned s = fuzz_take(in);       /* sign: mostly a valid one */
        put_be(b, s < 0xf0 ? (uint64_t)(s & 3) << 14 : fuzz_take_n(in, 2), 2);
        put_be(b, fuzz_take_n(in, 2), 2); /* dscale */
        for (unsigned i = 0; i < nd; i++)
            put_be(b, fuzz_take_n(in, 2), 2);
    } else {
        size_t n = kind == PGFEED_BIN_TEXT ? fuzz_take(in) : sizes[kind];
        if (fuzz_take(in) == 0xff) /* now and then a wrong length */
            n = fuzz_take(in) % 12;
        for (size_t i = 0; i < n; i++) {
            char c = (char)fuzz_take(in);
            if (pgfeed__buf_append(b, &c, 1) != 0)
                fuzz_die("out of memory");
        }
    }
    uint32_t len = (uint32_t)(b->len - at - 4);
    for (int i = 0; i < 4; i++)
        b->data[at + (size_t)i] = (char)(len >> (24 - 8 * i));
}

/* A tuple of nf fields of f whose lengths are right: NULLs, values, arrays of values. */
static void build_tuple(struct pgfeed_buf *b, const struct pgfeed_bin_field *f, size_t nf,
                        struct fuzz_in *in)
{
    put_be(b, nf, 2);
    for (size_t i = 0; i < nf; i++) {
        unsigned how = fuzz_take(in);
        if (how == 0xff) {
            put_be(b, UINT32_MAX, 4); /* NULL */
            continue;
        }
        if (!f[i].is_array) {
            build_value(b, f[i].kind, in);
            continue;
        }
        size_t at = b->len;
        put_be(b, 0, 4);
        unsigned k = how % 16;
        put_be(b, how & 0x80 ? 0 : 1, 4); /* ndim */
        put_be(b, 0, 4);
        put_be(b, f[i].elem_oid, 4);
        if (!(how & 0x80)) {
            put_be(b, k, 4);
            put_be(b, 1, 4);
            for (unsigned j = 0; j < k; j++)
                build_value(b, f[i].kind, in);
        }
        uint32_t len = (uint32_t)(b->len - at - 4);
        for (int j = 0; j < 4; j++)
            b->data[at + (size_t)j] = (char)(len >> (24 - 8 * j));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const nulls[] = {"", "\\N", "NULL", "\\"};
    static const char delims[] = {'\t', ',', '|', ';', ' ', '\\', 'x', '\t'};
    static const uint32_t elem_oids[] = {25, 21, 23, 20, 16, 1700};
    struct fuzz_in in = {data, size};
    unsigned b0 = fuzz_take(&in), b1 = fuzz_take(&in), b2 = fuzz_take(&in);
    (void)fuzz_take(&in);
    size_t nf = 1 + (b0 & 7);
    const char *null = nulls[(b0 >> 4) & 3];
    char delim = delims[b2 & 7], quote = (b0 & 64) ? '"' : 0;
    struct pgfeed_bin_field f[MAXF];
    for (size_t i = 0; i < nf; i++) {
        unsigned kind = fuzz_take(&in) % 6;
        f[i].kind = (int)kind;
        f[i].is_array = (b1 >> i) & 1;
        f[i].elem_oid = elem_oids[kind];
    }
    const char *line = (const char *)in.p;
    size_t n = in.n;
    if ((b0 & 0x88) == 0x88) {
        struct pgfeed_buf t = {0};
        build_tuple(&t, f, nf, &in);
        char *exact = malloc(t.len); /* so that reading past it is a report */
        if (!exact)
            fuzz_die("out of memory");
        memcpy(exact, t.data, t.len);
        read_tuple(exact, t.len, f, nf, delim, null, quote);
        free(exact);
        pgfeed__buf_free(&t);
        return 0;
    }
    if (b0 & 8) {
        read_tuple(line, n, f, nf, delim, null, quote);
        return 0;
    }
    struct pgfeed_row_spec sp = {delim, null, strlen(null), nf, NULL};

    struct enc a, b;
    encode(0, line, n, &sp, f, &a);
    encode(1, line, n, &sp, f, &b);
    if (a.found != b.found || a.err.code != b.err.code || a.len != b.len ||
        memcmp(a.buf, b.buf, a.len) != 0 ||
        (a.err.code && (a.err.field != b.err.field || a.err.value != b.err.value ||
                        a.err.value_len != b.err.value_len || a.err.kind != b.err.kind)))
        fuzz_die("SSE2 and plain encode_bin_row differ: %zu/%zu fields, codes %d/%d", a.found,
                 b.found, a.err.code, b.err.code);

    /* The reference: split, then one field at a time. */
    struct pgfeed_buf ref = {0};
    struct pgfeed_bin_error ferr = {0};
    size_t found = 0, bad = SIZE_MAX;
    const char *p = line, *end = line + n;
    char nfb[2] = {(char)(nf >> 8), (char)nf};
    if (pgfeed__buf_append(&ref, nfb, 2) != 0)
        fuzz_die("out of memory");
    for (;;) {
        const char *d = memchr(p, delim, (size_t)(end - p));
        d = d ? d : end;
        size_t len = (size_t)(d - p);
        if (found < nf && bad == SIZE_MAX) {
            if (len == sp.null_len && memcmp(p, null, len) == 0) {
                if (pgfeed__buf_append(&ref, "\xff\xff\xff\xff", 4) != 0)
                    fuzz_die("out of memory");
            } else {
                size_t cap = PGFEED_ENCODE_BIN_FIELD_MAX(len);
                char *fb = malloc(cap), *fe;
                if (!fb)
                    fuzz_die("out of memory");
                fe = pgfeed__encode_bin_field(fb, p, len, &f[found], &ferr);
                if (fe == NULL) {
                    bad = found;
                    if (ferr.code == 0 || ferr.value < p || ferr.value + ferr.value_len > d)
                        fuzz_die("a refused value without an error inside the field");
                } else if ((size_t)(fe - fb) > cap) {
                    fuzz_die("a field encoded past its bound");
                } else if (pgfeed__buf_append(&ref, fb, (size_t)(fe - fb)) != 0) {
                    fuzz_die("out of memory");
                }
                free(fb);
            }
        }
        found++;
        if (d == end)
            break;
        p = d + 1;
    }
    if (a.found != found)
        fuzz_die("encode_bin_row counted %zu fields, a split %zu", a.found, found);
    if (found == nf) {
        if ((bad != SIZE_MAX) != (a.err.code != 0))
            fuzz_die("encode_bin_row and encode_bin_field disagree on whether the row is good");
        if (bad != SIZE_MAX && (a.err.field != bad || a.err.code != ferr.code ||
                                a.err.value != ferr.value || a.err.value_len != ferr.value_len))
            fuzz_die("encode_bin_row refused field %zu (code %d), encode_bin_field %zu (code %d)",
                     a.err.field, a.err.code, bad, ferr.code);
        if (bad != SIZE_MAX) {
            char *msg = pgfeed__bin_error_message(&a.err);
            if (!msg || !msg[0] || (msg[0] >= 'A' && msg[0] <= 'Z'))
                fuzz_die("error message \"%s\"", msg ? msg : "(null)");
            free(msg);
            if (strlen(pgfeed__bin_error_sqlstate(&a.err)) != 5)
                fuzz_die("bad SQLSTATE");
        } else {
            if (a.len != ref.len || memcmp(a.buf, ref.data, a.len) != 0)
                fuzz_die("encode_bin_row: %zu bytes differ from the per-field %zu", a.len, ref.len);
            if (pgfeed__bin_tuple_len(a.buf, a.len) != a.len ||
                pgfeed__bin_tuple_len(a.buf, a.len - 1) != 0)
                fuzz_die("bin_tuple_len does not see exactly one tuple");
            /* Back to a line, which encodes to the same tuple. */
            struct pgfeed_buf back = {0};
            int rc = pgfeed__bin_row_as_input(&back, a.buf, a.len, f, nf, delim, null, 0);
            if (rc != 0)
                fuzz_die("bin_row_as_input refused a tuple encode_bin_row made: %s",
                         pgfeed_err_name(rc));
            struct enc c;
            encode(0, back.len ? back.data : "", back.len, &sp, f, &c);
            if (c.len != a.len || memcmp(c.buf, a.buf, a.len) != 0)
                fuzz_die("printed back as \"%.*s\", the row encodes differently",
                         (int)(back.len < 200 ? back.len : 200), back.data ? back.data : "");
            free(c.buf);
            back.len = 0;
            if (quote && pgfeed__bin_row_as_input(&back, a.buf, a.len, f, nf, ',', "", quote))
                fuzz_die("bin_row_as_input (csv) refused a tuple encode_bin_row made");
            pgfeed__buf_free(&back);
        }
    }
    pgfeed__buf_free(&ref);
    free(a.buf);
    free(b.buf);
    return 0;
}
