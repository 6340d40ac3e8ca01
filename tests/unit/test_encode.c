/*
 * test_encode.c -- COPY text escaping of fields and array literals (encode_copy.c).
 *
 * Fixed cases check exact bytes; a randomized part decodes what the encoder wrote the way
 * the server does (COPY text unescaping, then array_in for quoted elements) and checks that
 * the original field, or its comma-separated elements, come back. Inputs end at a PROT_NONE
 * page, and the _to variants write into exactly their documented bound, so an over-read or
 * an overflow of the bound crashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

/*
 * The portable block scanner (SWAR), compiled here a second time under other names so that
 * it is tested on x86-64 too, where the library itself uses SSE2.
 */
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

#define S(lit) lit, sizeof(lit) - 1

/* "kind \"input\"" with control bytes and backslashes escaped, so TAP stays one line. */
static const char *describe(char *buf, size_t cap, const char *kind, const char *in, size_t n)
{
    size_t o = (size_t)snprintf(buf, cap, "%s \"", kind);
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\\' || c < 0x20)
            o += (size_t)snprintf(buf + o, cap - o, c == '\\' ? "\\\\" : "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    snprintf(buf + o, cap - o, "\"");
    return buf;
}

static void check_field(const char *in, size_t n, const char *want, size_t wn)
{
    struct pgfeed_buf b = {0};
    pgfeed__buf_reserve(&b, 1); /* data is never NULL, even for no output */
    char *g = tap_guard(in, n);
    ASSERT_EQ_INT(pgfeed__encode_field(&b, g, n), 0, "encode_field returns 0");
    char what[200];
    ASSERT_EQ_MEM(b.data, b.len, want, wn, describe(what, sizeof what, "field", in, n));
    pgfeed__buf_free(&b);
}

static void check_array(const char *in, size_t n, const char *want, size_t wn)
{
    struct pgfeed_buf b = {0};
    pgfeed__buf_reserve(&b, 1); /* data is never NULL, even for no output */
    char *g = tap_guard(in, n);
    ASSERT_EQ_INT(pgfeed__encode_array(&b, g, n), 0, "encode_array returns 0");
    char what[200];
    ASSERT_EQ_MEM(b.data, b.len, want, wn, describe(what, sizeof what, "array", in, n));
    pgfeed__buf_free(&b);
}

static void test_fields(void)
{
    check_field(S(""), S(""));
    check_field(S("abc"), S("abc"));
    check_field(S("\\"), S("\\\\"));
    check_field(S("\\\\"), S("\\\\\\\\"));
    check_field(S("a\tb"), S("a\\tb"));
    check_field(S("a\nb"), S("a\\nb"));
    check_field(S("a\rb"), S("a\\rb"));
    check_field(S("\r\n"), S("\\r\\n"));
    check_field(S("\\\t\n\r"), S("\\\\\\t\\n\\r"));
    check_field(S("\\N"), S("\\\\N")); /* literal text: the parser decides what is NULL */
    check_field(S("\\."), S("\\\\."));
    check_field(S("C:\\dir\\"), S("C:\\\\dir\\\\"));
    check_field(S("Miklós Rózsa"), S("Miklós Rózsa"));
    check_field(S("黒澤 明"), S("黒澤 明"));
    check_field(S("say \"hi\", {x}"), S("say \"hi\", {x}"));
    check_field(S("a\0b"), S("a\0b")); /* passed on; the server will refuse it */

    /* Appends after what is already there. */
    struct pgfeed_buf b = {0};
    pgfeed__buf_append(&b, "x\t", 2);
    pgfeed__encode_field(&b, S("1\\2"));
    ASSERT_EQ_MEM(b.data, b.len, "x\t1\\\\2", 6, "field appended to existing bytes");
    pgfeed__buf_free(&b);
}

static void test_arrays(void)
{
    check_array(S(""), S("{}"));
    check_array(S("a"), S("{\"a\"}"));
    check_array(S("actor,writer"), S("{\"actor\",\"writer\"}"));
    check_array(S("a,,b"), S("{\"a\",\"\",\"b\"}"));
    check_array(S(","), S("{\"\",\"\"}"));
    check_array(S("a,"), S("{\"a\",\"\"}"));
    check_array(S(",a"), S("{\"\",\"a\"}"));
    check_array(S(",,,"), S("{\"\",\"\",\"\",\"\"}"));
    /* '"' is \" for array_in, and COPY doubles the backslash: \\" in the stream. */
    check_array(S("say \"hi\""), S("{\"say \\\\\"hi\\\\\"\"}"));
    /* '\' is \\ for array_in, \\\\ in the stream. */
    check_array(S("a\\b"), S("{\"a\\\\\\\\b\"}"));
    check_array(S("\\"), S("{\"\\\\\\\\\"}"));
    check_array(S("\\N"), S("{\"\\\\\\\\N\"}")); /* an element is never NULL */
    check_array(S("{x},}{"), S("{\"{x}\",\"}{\"}"));
    check_array(S(" a , b "), S("{\" a \",\" b \"}"));
    check_array(S("NULL"), S("{\"NULL\"}"));
    check_array(S("null,NULL,Null"), S("{\"null\",\"NULL\",\"Null\"}"));
    check_array(S("a\tb,c\rd"), S("{\"a\\tb\",\"c\\rd\"}"));
    check_array(S("x\ny"), S("{\"x\\ny\"}"));
    check_array(S("tt0053137,tt0031983,tt0050419"),
                S("{\"tt0053137\",\"tt0031983\",\"tt0050419\"}"));
    check_array(S("Rózsa,黒澤"), S("{\"Rózsa\",\"黒澤\"}"));
}

/* ---- the server's side, for round trips ---- */

/* COPY text unescaping of the escapes the encoder writes; returns length or -1. */
static long copy_unescape(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
            return -1; /* raw: would split the field or the row */
        if (p[i] != '\\') {
            out[o++] = p[i];
            continue;
        }
        if (++i == n)
            return -1;
        switch (p[i]) {
        case 't':
            out[o++] = '\t';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case '\\':
            out[o++] = '\\';
            break;
        default:
            return -1; /* the encoder never writes another escape */
        }
    }
    return (long)o;
}

/*
 * array_in for a literal whose elements are all quoted: writes the elements joined by
 * commas (so that it can be compared with the input field); returns length or -1.
 */
static long array_unquote(const char *p, size_t n, char *out)
{
    size_t i = 0, o = 0;
    if (n < 2 || p[0] != '{' || p[n - 1] != '}')
        return -1;
    i = 1;
    if (n == 2)
        return 0;
    for (;;) {
        if (p[i++] != '"')
            return -1;
        for (;;) {
            if (i >= n - 1)
                return -1;
            char c = p[i++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (i >= n - 1)
                    return -1;
                c = p[i++];
            }
            out[o++] = c;
        }
        if (i == n - 1)
            return (long)o;
        if (p[i++] != ',')
            return -1;
        out[o++] = ',';
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A region that ends at a PROT_NONE page; place(r, n) returns n bytes ending there. */
struct guarded {
    char *end;
};

static struct guarded guarded_new(size_t cap)
{
    char *zeros = calloc(1, cap);
    struct guarded r = {tap_guard(zeros, cap) + cap};
    free(zeros);
    return r;
}

static char *place(struct guarded r, const void *p, size_t n)
{
    if (n && p)
        memcpy(r.end - n, p, n);
    return r.end - n;
}

static void test_round_trip(void)
{
    static const char alphabet[] = "\\\t\n\r,\"{} aN.\xc3\xb3";
    enum { MAXN = 300, ROUNDS = 20000 };
    char in[MAXN], dec[4 * MAXN + 8], dec2[4 * MAXN + 8];
    int bad_field = 0, bad_array = 0, bad_bound = 0;
    struct guarded gin = guarded_new(MAXN), gf = guarded_new(2 * MAXN),
                   ga = guarded_new(4 * MAXN + 4);
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = (size_t)(rnd() % MAXN);
        for (size_t i = 0; i < n; i++)
            in[i] = alphabet[rnd() % (sizeof alphabet - 1)];
        if (r % 7 == 0) /* worst cases for the bounds */
            memset(in, r % 2 ? '\\' : ',', n);
        const char *g = place(gin, in, n);

        /* Each output ends exactly at its bound, next to the PROT_NONE page. */
        size_t fb = PGFEED_ENCODE_FIELD_MAX(n);
        char *fo = place(gf, NULL, fb);
        char *fe = pgfeed__encode_field_to(fo, g, n);
        bad_bound += fe > fo + fb;
        long dn = copy_unescape(fo, (size_t)(fe - fo), dec);
        int bad = dn != (long)n || memcmp(dec, in, n) != 0;
        if (bad && !bad_field)
            tap_note("field round trip failed for %zu bytes: %.*s", n, (int)n, in);
        bad_field += bad;

        size_t ab = PGFEED_ENCODE_ARRAY_MAX(n);
        char *ao = place(ga, NULL, ab);
        char *ae = pgfeed__encode_array_to(ao, g, n);
        bad_bound += ae > ao + ab;
        dn = copy_unescape(ao, (size_t)(ae - ao), dec);
        long en = dn < 0 ? -1 : array_unquote(dec, (size_t)dn, dec2);
        bad = en != (long)n || memcmp(dec2, in, n) != 0;
        if (bad && !bad_array)
            tap_note("array round trip failed for %zu bytes: %.*s", n, (int)n, in);
        bad_array += bad;
    }
    ASSERT_EQ_INT(bad_bound, 0, "random fields stay within PGFEED_ENCODE_*_MAX");
    ASSERT_EQ_INT(bad_field, 0, "random fields decode back to themselves (COPY text)");
    ASSERT_EQ_INT(bad_array, 0, "random arrays decode back to their elements (COPY + array_in)");
}

/* encode_row as the parser's first version did it: split, then one field at a time. */
static size_t reference_row(struct pgfeed_buf *out, const char *line, size_t n,
                            const struct pgfeed_row_spec *sp)
{
    const char *p = line, *end = line + n;
    size_t found = 1;
    for (const char *q = line; (q = memchr(q, sp->delimiter, (size_t)(end - q))) != NULL; q++)
        found++;
    if (found != sp->nfields)
        return found;
    for (size_t i = 0;; i++) {
        const char *q = memchr(p, sp->delimiter, (size_t)(end - p));
        size_t len = (size_t)((q ? q : end) - p);
        if (len == sp->null_len && memcmp(p, sp->null_marker, len) == 0)
            pgfeed__buf_append(out, "\\N", 2);
        else if (sp->is_array && sp->is_array[i])
            pgfeed__encode_array(out, p, len);
        else
            pgfeed__encode_field(out, p, len);
        if (q == NULL)
            break;
        pgfeed__buf_append(out, "\t", 1);
        p = q + 1;
    }
    pgfeed__buf_append(out, "\n", 1);
    return found;
}

typedef size_t (*row_fn)(char **, const char *, size_t, const struct pgfeed_row_spec *);

static void test_rows(const char *name, row_fn encode_row)
{
    static const char *const nulls[] = {"\\N", "", "NULL", "\\"};
    static const char delims[] = {'\t', '\t', '|', ',', '\\', '"', '\x01', '\x0b'};
    static const char alphabet[] = "\\\\\t\n\r,,\"{} aaN|\x01\x0b\xc3\xb3";
    static const char *const pieces[] = {"\\N", "NULL", "actor", "tt0053137", "Miklós Rózsa", ""};
    enum { MAXN = 200, MAXF = 9, ROUNDS = 30000 };
    char line[MAXN + 64];
    int arrays[MAXF];
    int bad = 0, bad_count = 0, bad_bound = 0, mismatch = 0;
    struct guarded gin = guarded_new(MAXN + 64),
                   gout = guarded_new(PGFEED_ENCODE_ROW_MAX(MAXN + 64, MAXF));
    struct pgfeed_buf want = {0};
    for (int r = 0; r < ROUNDS; r++) {
        struct pgfeed_row_spec sp;
        sp.delimiter = delims[rnd() % sizeof delims];
        sp.null_marker = nulls[rnd() % 4];
        sp.null_len = strlen(sp.null_marker);
        sp.nfields = (size_t)(rnd() % MAXF);
        int any = 0;
        for (size_t i = 0; i < MAXF; i++)
            any |= arrays[i] = (int)(rnd() % 3 == 0);
        sp.is_array = any ? arrays : NULL;
        /* fields of random bytes or known pieces, mostly as many as expected */
        size_t nfields = rnd() % 4 ? sp.nfields : (size_t)(rnd() % MAXF) + 1, n = 0;
        if (nfields == 0)
            nfields = 1;
        for (size_t f = 0; f < nfields && n < MAXN; f++) {
            if (f)
                line[n++] = sp.delimiter;
            if (rnd() % 3 == 0) {
                const char *pc = rnd() % 4 ? pieces[rnd() % 6] : sp.null_marker;
                size_t pl = strlen(pc);
                memcpy(line + n, pc, pl);
                n += pl;
            } else {
                size_t len = (size_t)(rnd() % (rnd() % 5 ? 12 : 60));
                for (size_t k = 0; k < len && n < MAXN; k++) {
                    char c = alphabet[rnd() % (sizeof alphabet - 1)];
                    line[n++] = c == sp.delimiter ? 'x' : c;
                }
            }
        }
        const char *g = place(gin, line, n);
        want.len = 0;
        size_t want_found = reference_row(&want, line, n, &sp);

        size_t room = PGFEED_ENCODE_ROW_MAX(n, sp.nfields);
        char *out = place(gout, NULL, room), *o = out;
        size_t found = encode_row(&o, g, n, &sp);
        bad_count += found != want_found;
        if (found == sp.nfields) {
            bad_bound += o > out + room;
            int diff = (size_t)(o - out) != want.len || memcmp(out, want.data, want.len) != 0;
            if (diff && !mismatch++) {
                char what[400];
                tap_note("%s: delimiter 0x%02x, null \"%s\", %zu fields: %s", name,
                         (unsigned char)sp.delimiter, sp.null_marker, sp.nfields,
                         describe(what, sizeof what, "line", line, n));
                ASSERT_EQ_MEM(out, (size_t)(o - out), want.data, want.len, "first mismatch");
            }
            bad += diff;
        } else {
            bad += o != out; /* nothing claimed when the count is wrong */
        }
    }
    pgfeed__buf_free(&want);
    char what[120];
    snprintf(what, sizeof what, "%s: %d random rows encode as field by field", name, ROUNDS);
    ASSERT_EQ_INT(bad, 0, what);
    snprintf(what, sizeof what, "%s: field counts agree with a plain split", name);
    ASSERT_EQ_INT(bad_count, 0, what);
    snprintf(what, sizeof what, "%s: rows stay within PGFEED_ENCODE_ROW_MAX", name);
    ASSERT_EQ_INT(bad_bound, 0, what);
}

static void test_row_examples(void)
{
    static const int arr[] = {0, 0, 0, 0, 1, 1};
    struct pgfeed_row_spec sp = {'\t', "\\N", 2, 6, arr};
    const char in[] = "nm0000001\tFred Astaire\t1899\t\\N\tsoundtrack,actor\t";
    const char want[] = "nm0000001\tFred Astaire\t1899\t\\N\t{\"soundtrack\",\"actor\"}\t{}\n";
    char buf[PGFEED_ENCODE_ROW_MAX(sizeof in, 6)], *o = buf;
    ASSERT_EQ_INT(pgfeed__encode_row(&o, in, sizeof in - 1, &sp), 6, "row: 6 fields");
    ASSERT_EQ_MEM(buf, (size_t)(o - buf), want, sizeof want - 1, "row: name.basics line");
    o = buf;
    ASSERT_EQ_INT(pgfeed__encode_row(&o, "a\tb", 3, &sp), 2, "row: 2 fields found");
    ASSERT_TRUE(o == buf, "row: nothing claimed for a short row");
    ASSERT_EQ_INT(pgfeed__encode_row(&o, "1\t2\t3\t4\t5\t6\t7\t8", 15, &sp), 8,
                  "row: 8 fields found");
}

int main(void)
{
    test_fields();
    test_arrays();
    test_round_trip();
    test_row_examples();
    test_rows("encode_row", pgfeed__encode_row);
    test_rows("encode_row (SWAR)", swar_encode_row);
    return tap_done();
}
