/*
 * fuzz_encode_copy.c -- COPY text rows and fields (encode_copy.c) on arbitrary lines.
 *
 * Input: 4 configuration bytes, then the null marker (0 .. 3 bytes), then the line.
 *   byte 0  the delimiter (low 7 bits; NUL, LF and CR, which the parser refuses, become tab)
 *   byte 1  bits 0-2: fields - 1 (bit 3 set: 0 fields); bits 4-5 the null marker's length
 *   byte 2  which fields are arrays;  byte 3  unused
 * pgfeed__encode_row (the library's, SSE2 on x86-64) and its portable twin compiled here
 * (PGFEED_NO_SIMD) must give the field count of a plain split and, when it is right, the
 * bytes of the per-field functions (\N for the null marker, encode_array for arrays, else
 * encode_field) joined by tabs. Every output buffer is exactly its documented bound, in its
 * own allocation, so writing past it is an ASan report. What was written is then decoded
 * as the server would (COPY text unescaping, then array_in) and must give the fields back.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define PGFEED_NO_SIMD          1
#define pgfeed__encode_field    swar_encode_field
#define pgfeed__encode_array    swar_encode_array
#define pgfeed__encode_field_to swar_encode_field_to
#define pgfeed__encode_array_to swar_encode_array_to
#define pgfeed__encode_row      swar_encode_row
int swar_encode_field(struct pgfeed_buf *out, const char *p, size_t n);
int swar_encode_array(struct pgfeed_buf *out, const char *p, size_t n);
char *swar_encode_field_to(char *dst, const char *p, size_t n);
char *swar_encode_array_to(char *dst, const char *p, size_t n);
size_t swar_encode_row(char **dst, const char *line, size_t n, const struct pgfeed_row_spec *spec);
#include "encode_copy.c"
#undef pgfeed__encode_field
#undef pgfeed__encode_array
#undef pgfeed__encode_field_to
#undef pgfeed__encode_array_to
#undef pgfeed__encode_row

#define MAXF 8

/* COPY text unescaping of one field (no tab or newline in it): appended to out. */
static void copy_unescape(struct pgfeed_buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\t' || c == '\n')
            fuzz_die("a raw tab or newline inside an encoded field");
        if (c == '\\') {
            if (++i == n)
                fuzz_die("a backslash ends an encoded field");
            switch (p[i]) {
            case '\\':
                c = '\\';
                break;
            case 't':
                c = '\t';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            default:
                fuzz_die("an encoded field has the escape \\%c", p[i]);
            }
        }
        if (pgfeed__buf_append(out, &c, 1) != 0)
            fuzz_die("out of memory");
    }
}

/* array_in of what encode_array wrote (COPY-unescaped): its elements joined by commas. */
static void array_back(struct pgfeed_buf *out, const char *p, size_t n)
{
    if (n == 2 && p[0] == '{' && p[1] == '}')
        return;
    if (n < 4 || p[0] != '{' || p[1] != '"' || p[n - 2] != '"' || p[n - 1] != '}')
        fuzz_die("an array literal is not {\"...\"}");
    for (size_t i = 2; i < n - 2; i++) {
        char c = p[i];
        if (c == '\\') {
            c = p[++i];
            if (i >= n - 2)
                fuzz_die("a backslash ends an array element");
        } else if (c == '"') {
            if (i + 2 >= n - 2 || p[i + 1] != ',' || p[i + 2] != '"')
                fuzz_die("an unescaped quote inside an array element");
            c = ',';
            i += 2;
        }
        if (pgfeed__buf_append(out, &c, 1) != 0)
            fuzz_die("out of memory");
    }
}

/* Decodes a COPY row (without its newline) and compares each field with the line's. */
static void check_decoded(const char *row, size_t rn, const char *line, size_t n, char delim,
                          const char *null, size_t null_len, const int *is_array, size_t nf)
{
    struct pgfeed_buf a = {0}, b = {0};
    const char *p = row, *end = row + rn, *l = line, *lend = line + n;
    for (size_t i = 0; i < nf; i++) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        const char *d = memchr(l, delim, (size_t)(lend - l));
        t = t ? t : end;
        d = d ? d : lend;
        size_t fl = (size_t)(d - l);
        if (fl == null_len && memcmp(l, null, fl) == 0) {
            if (t - p != 2 || p[0] != '\\' || p[1] != 'N')
                fuzz_die("field %zu equals the null marker but is not \\N", i);
        } else {
            a.len = b.len = 0;
            copy_unescape(&a, p, (size_t)(t - p));
            if (is_array[i])
                array_back(&b, a.data, a.len);
            const struct pgfeed_buf *v = is_array[i] ? &b : &a;
            if (v->len != fl || (fl && memcmp(v->data, l, fl) != 0))
                fuzz_die("field %zu does not decode to the input", i);
        }
        p = t + 1;
        l = d + 1;
    }
    pgfeed__buf_free(&a);
    pgfeed__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    unsigned b0 = fuzz_take(&in), b1 = fuzz_take(&in), b2 = fuzz_take(&in);
    (void)fuzz_take(&in);
    char delim = (char)(b0 & 0x7f);
    if (delim == 0 || delim == '\n' || delim == '\r')
        delim = '\t';
    size_t nf = (b1 & 8) ? 0 : 1 + (b1 & 7);
    char null[4] = {0};
    for (unsigned i = 0; i < ((b1 >> 4) & 3); i++) {
        null[i] = (char)fuzz_take(&in);
        if (null[i] == 0)
            null[i] = 'N';
    }
    int is_array[MAXF] = {0};
    for (size_t i = 0; i < nf; i++)
        is_array[i] = (b2 >> i) & 1;
    const char *line = (const char *)in.p;
    size_t n = in.n;
    struct pgfeed_row_spec spec = {delim, null, strlen(null), nf, (b2 & 0xff) ? is_array : NULL};

    /* The reference: split at every delimiter, encode each field on its own. */
    struct pgfeed_buf ref = {0};
    size_t found = 0;
    const char *p = line, *end = line + n;
    for (;;) {
        const char *d = memchr(p, delim, (size_t)(end - p));
        d = d ? d : end;
        size_t len = (size_t)(d - p);
        if (found < nf) {
            if (found && pgfeed__buf_append(&ref, "\t", 1) != 0)
                fuzz_die("out of memory");
            int rc;
            if (len == spec.null_len && memcmp(p, null, len) == 0)
                rc = pgfeed__buf_append(&ref, "\\N", 2);
            else if (is_array[found])
                rc = pgfeed__encode_array(&ref, p, len);
            else
                rc = pgfeed__encode_field(&ref, p, len);
            if (rc != 0)
                fuzz_die("out of memory");
            /* The _to variants into exactly their bound. */
            size_t cap =
                is_array[found] ? PGFEED_ENCODE_ARRAY_MAX(len) : PGFEED_ENCODE_FIELD_MAX(len);
            char *f = malloc(cap ? cap : 1), *fe;
            if (!f)
                fuzz_die("out of memory");
            fe = is_array[found] ? pgfeed__encode_array_to(f, p, len)
                                 : pgfeed__encode_field_to(f, p, len);
            if ((size_t)(fe - f) > cap)
                fuzz_die("a field encoded to %zu bytes, bound %zu", (size_t)(fe - f), cap);
            char *s = malloc(cap ? cap : 1), *se;
            if (!s)
                fuzz_die("out of memory");
            se =
                is_array[found] ? swar_encode_array_to(s, p, len) : swar_encode_field_to(s, p, len);
            if (se - s != fe - f || memcmp(s, f, (size_t)(fe - f)) != 0)
                fuzz_die("field %zu: the portable encoder differs", found);
            free(f);
            free(s);
        }
        found++;
        if (d == end)
            break;
        p = d + 1;
    }
    if (nf && found == nf && pgfeed__buf_append(&ref, "\n", 1) != 0)
        fuzz_die("out of memory");

    size_t cap = PGFEED_ENCODE_ROW_MAX(n, nf);
    for (int variant = 0; variant < 2; variant++) {
        char *buf = malloc(cap), *o = buf;
        if (!buf)
            fuzz_die("out of memory");
        size_t got =
            variant ? swar_encode_row(&o, line, n, &spec) : pgfeed__encode_row(&o, line, n, &spec);
        if (got != found)
            fuzz_die("%s encode_row counted %zu fields, a split %zu", variant ? "portable" : "SSE2",
                     got, found);
        if (got == nf && nf > 0) {
            size_t len = (size_t)(o - buf);
            if (len != ref.len || memcmp(buf, ref.data, len) != 0)
                fuzz_die("%s encode_row: %zu bytes differ from the per-field %zu",
                         variant ? "portable" : "SSE2", len, ref.len);
            if (len == 0 || buf[len - 1] != '\n')
                fuzz_die("a row does not end with a newline");
            check_decoded(buf, len - 1, line, n, delim, null, spec.null_len, is_array, nf);
        } else if (o != buf) {
            fuzz_die("encode_row moved *dst for a row with the wrong field count");
        }
        free(buf);
    }
    pgfeed__buf_free(&ref);
    return 0;
}
