/*
 * test_encode_binary.c -- binary COPY encoding of fields and rows (encode_binary.c).
 *
 * Fixed cases check exact bytes (the numeric ones are what PostgreSQL 15's numeric_send
 * gives for the same text, except the dscale the server leaves in its infinities) and every
 * message the input rules can give, word for word as the server's. Inputs end at a
 * PROT_NONE page and every encoder writes into exactly its documented bound, which also
 * ends at one, so an over-read or an overflow of the bound crashes. Randomized parts print
 * encoded values back (pgfeed__bin_row_as_input) and compare with a plain reference of what
 * the server would print; tuples are cut at every length for pgfeed__bin_tuple_len.
 *
 * The server itself is asked in test_binary_pg.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

/*
 * The plain row encoder (one memchr per field), compiled here a second time under other
 * names so that it is tested on x86-64 too, where the library itself uses SSE2, and
 * compared with the block one.
 */
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

#define S(lit) lit, sizeof(lit) - 1
#define AREA   (1u << 20)

/* Inputs and outputs placed so that they end at a PROT_NONE page. */
static char *in_end, *out_end;

static const char *place(const char *p, size_t n)
{
    if (n)
        memcpy(in_end - n, p, n);
    return in_end - n;
}

static char *room(size_t n)
{
    memset(out_end - n, 0xA5, n);
    return out_end - n;
}

static const struct pgfeed_bin_field f_text = {PGFEED_BIN_TEXT, 0, 0};
static const struct pgfeed_bin_field f_int2 = {PGFEED_BIN_INT2, 0, 0};
static const struct pgfeed_bin_field f_int4 = {PGFEED_BIN_INT4, 0, 0};
static const struct pgfeed_bin_field f_int8 = {PGFEED_BIN_INT8, 0, 0};
static const struct pgfeed_bin_field f_bool = {PGFEED_BIN_BOOL, 0, 0};
static const struct pgfeed_bin_field f_num = {PGFEED_BIN_NUMERIC, 0, 0};
static const struct pgfeed_bin_field a_text = {PGFEED_BIN_TEXT, 1, 25};
static const struct pgfeed_bin_field a_varchar = {PGFEED_BIN_TEXT, 1, 1043};
static const struct pgfeed_bin_field a_int2 = {PGFEED_BIN_INT2, 1, 21};
static const struct pgfeed_bin_field a_int4 = {PGFEED_BIN_INT4, 1, 23};
static const struct pgfeed_bin_field a_int8 = {PGFEED_BIN_INT8, 1, 20};
static const struct pgfeed_bin_field a_bool = {PGFEED_BIN_BOOL, 1, 16};
static const struct pgfeed_bin_field a_num = {PGFEED_BIN_NUMERIC, 1, 1700};

/* Hex digits (spaces and '|' ignored) to bytes; returns the length. */
static size_t unhex(const char *h, char *out)
{
    size_t n = 0;
    int hi = -1;
    for (; *h; h++) {
        int v = *h >= '0' && *h <= '9'   ? *h - '0'
                : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10
                : *h >= 'A' && *h <= 'F' ? *h - 'A' + 10
                                         : -1;
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (char)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

static void hexdump(char *buf, size_t cap, const char *p, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 3 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%02x", (unsigned char)p[i]);
}

/* "kind[] \"input\"" with control bytes and backslashes escaped, so TAP stays one line. */
static const char *describe(char *buf, size_t cap, const struct pgfeed_bin_field *f, const char *in,
                            size_t n)
{
    static const char *const names[] = {"text", "int2", "int4", "int8", "bool", "numeric"};
    size_t o = (size_t)snprintf(
        buf, cap, "%s%s \"", f->kind >= 0 && f->kind <= PGFEED_BIN_NUMERIC ? names[f->kind] : "?",
        f->is_array ? "[]" : "");
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\\' || c < 0x20)
            o += (size_t)snprintf(buf + o, cap - o, c == '\\' ? "\\\\" : "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    snprintf(buf + o, cap - o, "%s\"", n > 0 && o + 8 >= cap ? "..." : "");
    return buf;
}

/* The field encodes to int32 length + the bytes in hex (the value, length not included). */
static void check_hex(const struct pgfeed_bin_field *f, const char *in, size_t n, const char *hex)
{
    char want[4096], got[8192], wh[8192];
    size_t wn = unhex(hex, want + 4);
    want[0] = (char)(wn >> 24);
    want[1] = (char)(wn >> 16);
    want[2] = (char)(wn >> 8);
    want[3] = (char)wn;
    wn += 4;
    size_t cap = PGFEED_ENCODE_BIN_FIELD_MAX(n);
    char *o = room(cap);
    struct pgfeed_bin_error err = {0};
    char *e = pgfeed__encode_bin_field(o, place(in, n), n, f, &err);
    size_t gn = e ? (size_t)(e - o) : 0;
    int ok = e != NULL && err.code == 0 && gn == wn && memcmp(o, want, wn) == 0;
    tap_ok(ok, __FILE__, __LINE__, "%s", describe(wh, 100, f, in, n));
    if (!ok) {
        hexdump(got, sizeof got, o, gn);
        hexdump(wh, sizeof wh, want, wn);
        tap_note("  got  %s (error %d)\n  want %s", e ? got : "NULL", err.code, wh);
    }
}
#define HEX(f, lit, hex) check_hex(&(f), S(lit), hex)

/* The field is refused with this message and SQLSTATE. */
static void check_error(const struct pgfeed_bin_field *f, const char *in, size_t n, const char *msg,
                        const char *state)
{
    char *o = room(PGFEED_ENCODE_BIN_FIELD_MAX(n));
    struct pgfeed_bin_error err = {0};
    char *e = pgfeed__encode_bin_field(o, place(in, n), n, f, &err);
    char *m = e == NULL ? pgfeed__bin_error_message(&err) : NULL;
    char what[200];
    describe(what, 100, f, in, n);
    strcat(what, " is refused");
    ASSERT_EQ_STR(m, msg, what);
    ASSERT_EQ_STR(e == NULL ? pgfeed__bin_error_sqlstate(&err) : NULL, state, "  its SQLSTATE");
    free(m);
}
#define SYNTAX(f, lit, type)                                                                       \
    check_error(&(f), S(lit), "invalid input syntax for type " type ": \"" lit "\"", "22P02")
#define RANGE(f, lit, type)                                                                        \
    check_error(&(f), S(lit), "value \"" lit "\" is out of range for type " type, "22003")
#define OVERFLOW(f, lit) check_error(&(f), S(lit), "value overflows numeric format", "22003")

static void test_text(void)
{
    HEX(f_text, "", "");
    HEX(f_text, "abc", "616263");
    HEX(f_text, "a\\b\tc", "615c620963"); /* bytes as they are: no COPY escapes */
    HEX(f_text, "\\N", "5c4e");           /* NULL is the row encoder's business */
    HEX(f_text, "é€", "c3a9e282ac");
    HEX(f_text, " 1 ", "203120");
}

static void test_integers(void)
{
    HEX(f_int2, "0", "0000");
    HEX(f_int2, "-32768", "8000");
    HEX(f_int2, "32767", "7fff");
    HEX(f_int2, " +7 ", "0007");
    HEX(f_int2, "00000000000000000000001", "0001");
    HEX(f_int4, "42", "0000002a");
    HEX(f_int4, "-1", "ffffffff");
    HEX(f_int4, "2147483647", "7fffffff");
    HEX(f_int4, "-2147483648", "80000000");
    HEX(f_int4, "\t\n\v\f\r 12 \r\n", "0000000c");
    HEX(f_int4, "-0", "00000000");
    HEX(f_int4, "1899", "0000076b");
    HEX(f_int8, "9223372036854775807", "7fffffffffffffff");
    HEX(f_int8, "-9223372036854775808", "8000000000000000");
    HEX(f_int8, "123456789012345678", "01b69b4ba630f34e");
    HEX(f_int8, "-1", "ffffffffffffffff");

    SYNTAX(f_int4, "", "integer");
    SYNTAX(f_int4, " ", "integer");
    SYNTAX(f_int4, "x", "integer");
    SYNTAX(f_int4, "+", "integer");
    SYNTAX(f_int4, "-", "integer");
    SYNTAX(f_int4, "1 2", "integer");
    SYNTAX(f_int4, "1.0", "integer");
    SYNTAX(f_int4, "1e3", "integer");
    SYNTAX(f_int4, "0x10", "integer");
    SYNTAX(f_int4, "1_000", "integer"); /* PostgreSQL 16 takes it, 15 does not */
    SYNTAX(f_int4, "--1", "integer");
    SYNTAX(f_int4, "+-1", "integer");
    SYNTAX(f_int4, "１", "integer");
    SYNTAX(f_int4, "12\xc2\xa0", "integer");  /* no-break space is not a space */
    SYNTAX(f_int4, "2147483648x", "integer"); /* the minimum's magnitude: junk first */
    RANGE(f_int4, "99999999999x", "integer"); /* overflow is found at its digit */
    RANGE(f_int4, "99999999999", "integer");
    RANGE(f_int4, "2147483648", "integer");
    RANGE(f_int4, " -2147483649 ", "integer");
    SYNTAX(f_int2, "abc", "smallint");
    RANGE(f_int2, "32768", "smallint");
    RANGE(f_int2, "-32769", "smallint");
    RANGE(f_int2, "100000", "smallint");
    SYNTAX(f_int8, "", "bigint");
    SYNTAX(f_int8, "9223372036854775808 x", "bigint");
    RANGE(f_int8, "9223372036854775808", "bigint");
    RANGE(f_int8, "-9223372036854775809", "bigint");
    RANGE(f_int8, "99999999999999999999999999", "bigint");
}

static void test_booleans(void)
{
    static const char *const yes[] = {"t", "T",  "true", "TRUE", "tRu", " yes ",
                                      "y", "Ye", "on",   "ON",   "1",   "\t1\n"};
    static const char *const no[] = {"f",   "F",  "false", "FaLsE", "fal", "n",  "no",
                                     "NO ", "of", "off",   "OFF",   "0",   " 0 "};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        check_hex(&f_bool, yes[i], strlen(yes[i]), "01");
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        check_hex(&f_bool, no[i], strlen(no[i]), "00");
    SYNTAX(f_bool, "", "boolean");
    SYNTAX(f_bool, "   ", "boolean");
    SYNTAX(f_bool, "x", "boolean");
    SYNTAX(f_bool, "o", "boolean"); /* on or off? */
    SYNTAX(f_bool, "truex", "boolean");
    SYNTAX(f_bool, "tru e", "boolean");
    SYNTAX(f_bool, "onn", "boolean");
    SYNTAX(f_bool, "offf", "boolean");
    SYNTAX(f_bool, "yess", "boolean");
    SYNTAX(f_bool, "10", "boolean");
    SYNTAX(f_bool, "00", "boolean");
    SYNTAX(f_bool, "2", "boolean");
    SYNTAX(f_bool, "-1", "boolean");
    SYNTAX(f_bool, " t x", "boolean");
}

/* ndigits weight sign dscale | digits, as numeric_send writes them. */
static void test_numerics(void)
{
    HEX(f_num, "0", "0000 0000 0000 0000");
    HEX(f_num, "-0", "0000 0000 0000 0000"); /* a zero is positive */
    HEX(f_num, "0.000", "0000 0000 0000 0003");
    HEX(f_num, "-0.000", "0000 0000 0000 0003");
    HEX(f_num, "00000", "0000 0000 0000 0000");
    HEX(f_num, "0e5", "0000 0000 0000 0000");
    HEX(f_num, "0.00e1", "0000 0000 0000 0001");
    HEX(f_num, "0e1073741822", "0000 0000 0000 0000");
    HEX(f_num, "1e-5", "0001 fffe 0000 0005 | 03e8");
    HEX(f_num, "123456789.123456789", "0006 0002 0000 0009 | 0001 0929 1a85 04d2 162e 2328");
    HEX(f_num, "1e20", "0001 0005 0000 0000 | 0001");
    HEX(f_num, "000123.4500", "0002 0000 0000 0004 | 007b 1194");
    HEX(f_num, "-12.5", "0002 0000 4000 0001 | 000c 1388");
    HEX(f_num, "1.5e3", "0001 0000 0000 0000 | 05dc");
    HEX(f_num, "99999999.99999999", "0004 0001 0000 0008 | 270f 270f 270f 270f");
    HEX(f_num, "0.0001", "0001 ffff 0000 0004 | 0001");
    HEX(f_num, "10000", "0001 0001 0000 0000 | 0001");
    HEX(f_num, "12345678901234567890", "0005 0004 0000 0000 | 04d2 162e 2334 0d80 1ed2");
    HEX(f_num, " -1.2E-3 ", "0001 ffff 4000 0004 | 000c");
    HEX(f_num, ".5", "0001 ffff 0000 0001 | 1388");
    HEX(f_num, "5.", "0001 0000 0000 0000 | 0005");
    HEX(f_num, "+5", "0001 0000 0000 0000 | 0005");
    HEX(f_num, "1e 5", "0001 0001 0000 0000 | 000a"); /* strtol skips spaces */
    HEX(f_num, "1e+5", "0001 0001 0000 0000 | 000a");
    HEX(f_num, "2.5E+2", "0001 0000 0000 0000 | 00fa");
    HEX(f_num, "0e-16383", "0000 0000 0000 3fff");
    HEX(f_num, "1e-16383", "0001 f000 0000 3fff | 000a");
    HEX(f_num, "1e131071", "0001 7fff 0000 0000 | 03e8");
    HEX(f_num, "100000000", "0001 0002 0000 0000 | 0001");
    HEX(f_num, "10000.00010000", "0003 0001 0000 0008 | 0001 0000 0001");
    HEX(f_num, "NaN", "0000 0000 c000 0000");
    HEX(f_num, " nan\t", "0000 0000 c000 0000");
    HEX(f_num, "Infinity", "0000 0000 d000 0000");
    HEX(f_num, "+infinity", "0000 0000 d000 0000");
    HEX(f_num, "-Infinity", "0000 0000 f000 0000");
    HEX(f_num, " inf ", "0000 0000 d000 0000");
    HEX(f_num, "+INF", "0000 0000 d000 0000");
    HEX(f_num, "-inf", "0000 0000 f000 0000");

    SYNTAX(f_num, "", "numeric");
    SYNTAX(f_num, "  ", "numeric");
    SYNTAX(f_num, "x", "numeric");
    SYNTAX(f_num, ".", "numeric");
    SYNTAX(f_num, "-", "numeric");
    SYNTAX(f_num, "-.", "numeric");
    SYNTAX(f_num, "..5", "numeric");
    SYNTAX(f_num, "1..", "numeric");
    SYNTAX(f_num, "1.2.3", "numeric");
    SYNTAX(f_num, "1e", "numeric");
    SYNTAX(f_num, "1e+", "numeric");
    SYNTAX(f_num, "1e--5", "numeric");
    SYNTAX(f_num, "1e5.5", "numeric");
    SYNTAX(f_num, "1 e5", "numeric");
    SYNTAX(f_num, "1e5 x", "numeric");
    SYNTAX(f_num, "--1", "numeric");
    SYNTAX(f_num, "1,5", "numeric");
    SYNTAX(f_num, "NaNx", "numeric");
    SYNTAX(f_num, "-nan", "numeric");
    SYNTAX(f_num, "infinit", "numeric");
    SYNTAX(f_num, "Infinityy", "numeric");
    SYNTAX(f_num, "in", "numeric");
    SYNTAX(f_num, "1e-40000x", "numeric"); /* trailing junk before overflow */
    SYNTAX(f_num, "0x1F", "numeric");
    OVERFLOW(f_num, "1e131072");
    OVERFLOW(f_num, "-1e131072");
    OVERFLOW(f_num, "1e-16384");
    OVERFLOW(f_num, "0e-16384");
    OVERFLOW(f_num, "1e1073741823");
    OVERFLOW(f_num, "1e-1073741823");
    OVERFLOW(f_num, "1e99999999999999999999");
    OVERFLOW(f_num, "1e-99999999999999999999x"); /* the exponent's limit comes first */

    /* Many digits: 1000 nines before and after the point, and leading zeros. */
    char big[2100], hex[5000];
    size_t n = 0, h = 0;
    for (int i = 0; i < 60; i++)
        big[n++] = '0';
    for (int i = 0; i < 1000; i++)
        big[n++] = '9';
    big[n++] = '.';
    for (int i = 0; i < 1000; i++)
        big[n++] = '9';
    /* 250 + 250 digits of 9999; weight 249, dscale 1000 */
    h += (size_t)snprintf(hex + h, sizeof hex - h, "01f4 00f9 0000 03e8");
    for (int i = 0; i < 500; i++)
        h += (size_t)snprintf(hex + h, sizeof hex - h, "270f");
    check_hex(&f_num, big, n, hex);
}

static void test_arrays(void)
{
    /* ndim flags elem_oid [dim lbound] elements */
    HEX(a_text, "", "00000000 00000000 00000019");
    HEX(a_text, "a", "00000001 00000000 00000019 00000001 00000001 | 00000001 61");
    HEX(a_text, "a,,b",
        "00000001 00000000 00000019 00000003 00000001 | 00000001 61 | 00000000 | 00000001 62");
    HEX(a_text, ",", "00000001 00000000 00000019 00000002 00000001 | 00000000 | 00000000");
    HEX(a_text, " x ,\\N,NULL",
        "00000001 00000000 00000019 00000003 00000001 | 00000003 207820 | 00000002 5c4e | "
        "00000004 4e554c4c");
    HEX(a_varchar, "tt0053137,tt0031983",
        "00000001 00000000 00000413 00000002 00000001 | 00000009 747430303533313337 | "
        "00000009 747430303331393833");
    HEX(a_int2, "1,-2",
        "00000001 00000000 00000015 00000002 00000001 | 00000002 0001 | "
        "00000002 fffe");
    HEX(a_int4, "1, 2 ,-3",
        "00000001 00000000 00000017 00000003 00000001 | 00000004 00000001 | 00000004 00000002 | "
        "00000004 fffffffd");
    HEX(a_int4, "", "00000000 00000000 00000017");
    HEX(a_int8, "9223372036854775807",
        "00000001 00000000 00000014 00000001 00000001 | 00000008 7fffffffffffffff");
    HEX(a_bool, "t,off,YES",
        "00000001 00000000 00000010 00000003 00000001 | 00000001 01 | "
        "00000001 00 | 00000001 01");
    HEX(a_num, "1.5,NaN,-0",
        "00000001 00000000 000006a4 00000003 00000001 | 0000000c 0002 0000 0000 0001 0001 1388 | "
        "00000008 0000 0000 c000 0000 | 00000008 0000 0000 0000 0000");

    check_error(&a_int4, S("1,x"), "invalid input syntax for type integer: \"x\"", "22P02");
    check_error(&a_int4, S("1,"), "invalid input syntax for type integer: \"\"", "22P02");
    check_error(&a_int4, S(",1"), "invalid input syntax for type integer: \"\"", "22P02");
    check_error(&a_int4, S("1,2147483648,x"),
                "value \"2147483648\" is out of range for type integer", "22003");
    check_error(&a_int2, S("7,40000"), "value \"40000\" is out of range for type smallint",
                "22003");
    check_error(&a_int8, S("1,2,3e"), "invalid input syntax for type bigint: \"3e\"", "22P02");
    check_error(&a_bool, S("t,maybe"), "invalid input syntax for type boolean: \"maybe\"", "22P02");
    check_error(&a_num, S("1,1e999999"), "value overflows numeric format", "22003");
    check_error(&a_num, S("1,NULL"), "invalid input syntax for type numeric: \"NULL\"", "22P02");

    /* The worst cases for the bound: one-digit elements (the output ends at a guard page). */
    char in[2001];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = i % 2 ? ',' : '1';
    const struct pgfeed_bin_field *worst[] = {&a_int8, &a_num, &a_text, &a_bool, &f_int8, &f_num};
    int ok = 1;
    for (size_t k = 0; k < sizeof worst / sizeof worst[0]; k++)
        for (size_t n = 0; n <= sizeof in; n += n < 20 ? 1 : 97) {
            struct pgfeed_bin_error err;
            size_t len = worst[k]->is_array ? n : 1;
            char *o = room(PGFEED_ENCODE_BIN_FIELD_MAX(len));
            char *e = pgfeed__encode_bin_field(o, place(in, len), len, worst[k], &err);
            if (len % 2 == 0 && len > 0 && worst[k]->kind != PGFEED_BIN_TEXT)
                ok &= e == NULL; /* ends with a comma: an empty element */
            else
                ok &= e != NULL && (size_t)(e - o) <= PGFEED_ENCODE_BIN_FIELD_MAX(len);
        }
    ASSERT_TRUE(ok, "arrays of one-digit elements fit PGFEED_ENCODE_BIN_FIELD_MAX");
    /* numeric elements of three bytes take the most room per input byte */
    for (size_t i = 0; i + 4 <= sizeof in; i += 4)
        memcpy(in + i, "1.1,", 4);
    struct pgfeed_bin_error err;
    char *o = room(PGFEED_ENCODE_BIN_FIELD_MAX(1999));
    ASSERT_TRUE(pgfeed__encode_bin_field(o, place(in, 1999), 1999, &a_num, &err) != NULL,
                "numeric array of 1.1 elements fits its bound");
}

/* ---- rows ---- */

static const struct pgfeed_bin_field names_bin[] = {
    {PGFEED_BIN_TEXT, 0, 0}, {PGFEED_BIN_TEXT, 0, 0},    {PGFEED_BIN_INT4, 0, 0},
    {PGFEED_BIN_INT4, 0, 0}, {PGFEED_BIN_TEXT, 1, 1043}, {PGFEED_BIN_TEXT, 1, 1043},
};

static struct pgfeed_row_spec tsv_spec(size_t nf)
{
    struct pgfeed_row_spec sp = {'\t', "\\N", 2, nf, NULL};
    return sp;
}

/* encode_bin_row of a line: returns found, the tuple in *out (when complete) and err. */
static size_t row(const char *line, size_t n, const struct pgfeed_row_spec *sp,
                  const struct pgfeed_bin_field *f, char **tuple, size_t *tn,
                  struct pgfeed_bin_error *err)
{
    size_t cap = PGFEED_ENCODE_BIN_ROW_MAX(n, sp->nfields);
    char *o = room(cap), *start = o;
    size_t found = pgfeed__encode_bin_row(&o, place(line, n), n, sp, f, err);
    *tuple = start;
    *tn = (size_t)(o - start);
    return found;
}

static void test_rows(void)
{
    struct pgfeed_row_spec sp = tsv_spec(6);
    struct pgfeed_bin_error err;
    char *t, want[512], got[1024], wh[1024];
    size_t tn;

    size_t found =
        row(S("nm0000001\tFred Astaire\t1899\t\\N\tactor,writer\t"), &sp, names_bin, &t, &tn, &err);
    size_t wn = unhex("0006 | 00000009 6e6d30303030303031 | 0000000c 4672656420417374616972 65 |"
                      "00000004 0000076b | ffffffff |"
                      "00000027 00000001 00000000 00000413 00000002 00000001 00000005 6163746f72 "
                      "00000006 777269746572 |"
                      "0000000c 00000000 00000000 00000413",
                      want);
    ASSERT_EQ_INT(found, 6, "a name.basics row has 6 fields");
    ASSERT_EQ_INT(err.code, 0, "  and no bad value");
    hexdump(got, sizeof got, t, tn);
    hexdump(wh, sizeof wh, want, wn);
    ASSERT_EQ_STR(got, wh, "  its tuple");

    /* NULL markers: "\N" in every kind, and a custom marker */
    found = row(S("\\N\t\\N\t\\N\t\\N\t\\N\t\\N"), &sp, names_bin, &t, &tn, &err);
    wn = unhex("0006 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff", want);
    ASSERT_TRUE(found == 6 && err.code == 0 && tn == wn && memcmp(t, want, wn) == 0,
                "\\N is NULL in every field, arrays included");
    struct pgfeed_row_spec nul = {',', "", 0, 3, NULL};
    static const struct pgfeed_bin_field three[] = {
        {PGFEED_BIN_INT8, 0, 0}, {PGFEED_BIN_TEXT, 0, 0}, {PGFEED_BIN_BOOL, 1, 16}};
    found = row(S(",,"), &nul, three, &t, &tn, &err);
    wn = unhex("0003 ffffffff ffffffff ffffffff", want);
    ASSERT_TRUE(found == 3 && err.code == 0 && tn == wn && memcmp(t, want, wn) == 0,
                "an empty null marker: empty fields are NULL");
    found = row(S("5,\\N,"), &nul, three, &t, &tn, &err);
    wn = unhex("0003 00000008 0000000000000005 00000002 5c4e ffffffff", want);
    ASSERT_TRUE(found == 3 && err.code == 0 && tn == wn && memcmp(t, want, wn) == 0,
                "  and \\N is text then");

    /* field counts */
    ASSERT_EQ_INT(row(S("a\tb"), &sp, names_bin, &t, &tn, &err), 2, "too few fields: 2");
    ASSERT_EQ_INT(row(S("a\tb\t1\t2\tx\ty\tz\tw"), &sp, names_bin, &t, &tn, &err), 8,
                  "too many fields: 8");
    ASSERT_EQ_INT(row(S(""), &sp, names_bin, &t, &tn, &err), 1, "an empty line is one field");
    struct pgfeed_row_spec one = tsv_spec(1);
    found = row(S(""), &one, names_bin, &t, &tn, &err);
    wn = unhex("0001 00000000", want);
    ASSERT_TRUE(found == 1 && tn == wn && memcmp(t, want, wn) == 0,
                "an empty line is one empty text field");
    struct pgfeed_row_spec none = tsv_spec(0);
    ASSERT_EQ_INT(row(S("a\tb"), &none, names_bin, &t, &tn, &err), 2, "no fields expected: 2");

    /* a bad value: which field, which value; the rest of the line is still counted */
    found = row(S("nm1\tX\t19x9\t\\N\ta\tb"), &sp, names_bin, &t, &tn, &err);
    ASSERT_EQ_INT(found, 6, "a bad year: still 6 fields");
    ASSERT_EQ_INT(err.code, PGFEED_BIN_ESYNTAX, "  a syntax error");
    ASSERT_EQ_INT(err.field, 2, "  in field 3");
    ASSERT_EQ_MEM(err.value, err.value_len, "19x9", 4, "  with its value");
    ASSERT_EQ_INT(tn, 0, "  and nothing written");
    found = row(S("nm1\tX\t19x9\t\\N\ta\tb\tc"), &sp, names_bin, &t, &tn, &err);
    ASSERT_EQ_INT(found, 7, "a bad year and a field too many: 7 fields");
    found = row(S("nm1\tX\t19x9"), &sp, names_bin, &t, &tn, &err);
    ASSERT_EQ_INT(found, 3, "a bad year and fields missing: 3 fields");
    found = row(S("nm1\tX\t1\t99999999999\ta\tb"), &sp, names_bin, &t, &tn, &err);
    ASSERT_TRUE(found == 6 && err.code == PGFEED_BIN_ERANGE && err.field == 3,
                "an out-of-range year in field 4");
    static const struct pgfeed_bin_field last_arr[] = {{PGFEED_BIN_TEXT, 0, 0},
                                                       {PGFEED_BIN_INT4, 1, 23}};
    struct pgfeed_row_spec two = tsv_spec(2);
    found = row(S("a\t1,2,three"), &two, last_arr, &t, &tn, &err);
    ASSERT_TRUE(found == 2 && err.code == PGFEED_BIN_ESYNTAX && err.field == 1 &&
                    err.value_len == 5 && memcmp(err.value, "three", 5) == 0,
                "a bad array element names the element");
}

/* ---- tuple_len ---- */

static void test_tuple_len(void)
{
    struct pgfeed_row_spec sp = tsv_spec(6);
    struct pgfeed_bin_error err;
    char *t, buf[512];
    size_t tn;
    row(S("nm0000001\tFred\t1899\t\\N\tactor,writer\t"), &sp, names_bin, &t, &tn, &err);
    memcpy(buf, t, tn);
    memcpy(buf + tn, buf, tn); /* two tuples */
    int ok = 1;
    for (size_t k = 0; k < tn; k++)
        ok &= pgfeed__bin_tuple_len(place(buf, k), k) == 0;
    ASSERT_TRUE(ok, "tuple_len: every cut tuple is incomplete (0)");
    ASSERT_EQ_INT(pgfeed__bin_tuple_len(place(buf, tn), tn), tn, "tuple_len: the whole tuple");
    ok = 1;
    for (size_t k = tn; k <= 2 * tn; k++)
        ok &= pgfeed__bin_tuple_len(place(buf, k), k) == tn;
    ASSERT_TRUE(ok, "tuple_len: the first of two, cut anywhere in the second");
    char x[16];
    size_t xn = unhex("ffff", x);
    ASSERT_EQ_INT(pgfeed__bin_tuple_len(place(x, xn), xn), 0, "tuple_len: the trailer is not one");
    xn = unhex("0000", x);
    ASSERT_EQ_INT(pgfeed__bin_tuple_len(place(x, xn), xn), 2, "tuple_len: zero fields");
    xn = unhex("0001 fffffffe", x);
    ASSERT_EQ_INT(pgfeed__bin_tuple_len(place(x, xn), xn), 0, "tuple_len: length -2 is invalid");
    xn = unhex("0002 ffffffff 00000001 41", x);
    ASSERT_EQ_INT(pgfeed__bin_tuple_len(place(x, xn), xn), 11, "tuple_len: NULL then 'A'");
}

/* ---- back to input ---- */

static void check_back(const struct pgfeed_row_spec *sp, const struct pgfeed_bin_field *f,
                       const char *line, size_t n, char quote, const char *want)
{
    struct pgfeed_bin_error err;
    char *t;
    size_t tn;
    size_t found = row(line, n, sp, f, &t, &tn, &err);
    struct pgfeed_buf b = {0};
    pgfeed__buf_append(&b, "<", 1);
    int rc = found == sp->nfields && err.code == 0
                 ? pgfeed__bin_row_as_input(&b, t, tn, f, sp->nfields, sp->delimiter,
                                            sp->null_marker, quote)
                 : -1;
    pgfeed__buf_append(&b, ">", 1);
    char w[600];
    snprintf(w, sizeof w, "<%s>", want);
    char what[200], line_desc[160];
    snprintf(what, sizeof what, "as input (%s): %s", quote ? "csv" : "tsv",
             describe(line_desc, sizeof line_desc, &f_text, line, n));
    ASSERT_EQ_INT(rc, 0, what);
    ASSERT_EQ_MEM(b.data, b.len, w, strlen(w), "  gives the line");
    pgfeed__buf_free(&b);
}

static void test_as_input(void)
{
    struct pgfeed_row_spec sp = tsv_spec(6);
    check_back(&sp, names_bin, S("nm0000001\tFred Astaire\t1899\t\\N\tactor,writer\t"), 0,
               "nm0000001\tFred Astaire\t1899\t\\N\tactor,writer\t");
    check_back(&sp, names_bin, S("nm\\1\tA \"B\"\t 7 \t-0\t,,\tx"), 0,
               "nm\\1\tA \"B\"\t7\t0\t,,\tx");

    static const struct pgfeed_bin_field kinds[] = {
        {PGFEED_BIN_INT2, 0, 0},    {PGFEED_BIN_INT8, 0, 0},    {PGFEED_BIN_BOOL, 0, 0},
        {PGFEED_BIN_BOOL, 0, 0},    {PGFEED_BIN_NUMERIC, 0, 0}, {PGFEED_BIN_NUMERIC, 0, 0},
        {PGFEED_BIN_NUMERIC, 0, 0}, {PGFEED_BIN_NUMERIC, 0, 0}, {PGFEED_BIN_NUMERIC, 1, 1700},
        {PGFEED_BIN_INT4, 1, 23},   {PGFEED_BIN_BOOL, 1, 16},
    };
    struct pgfeed_row_spec k = tsv_spec(11);
    check_back(&k, kinds,
               S("-32768\t-9223372036854775808\tTRUE\t off\t000123.4500\t1e-5\t-inf\tnan\t"
                 "1.5e3,-0.000,123456789.123456789,1e20\t 1 ,-2\tt,f"),
               0,
               "-32768\t-9223372036854775808\tt\tf\t123.4500\t0.00001\t-Infinity\tNaN\t"
               "1500,0.000,123456789.123456789,100000000000000000000\t1,-2\tt,f");
    check_back(&k, kinds, S("\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\t"), 0,
               "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\t");
    check_back(&k, kinds, S("0\t0\t1\t0\t-0.0001\t0.00012340\t99999999.99999999\t10000\t\t\t"), 0,
               "0\t0\tt\tf\t-0.0001\t0.00012340\t99999999.99999999\t10000\t\t\t");

    /* csv: quotes where the parser needs them; the empty string is "" when "" is NULL */
    static const struct pgfeed_bin_field csvf[] = {
        {PGFEED_BIN_TEXT, 0, 0}, {PGFEED_BIN_TEXT, 0, 0},  {PGFEED_BIN_TEXT, 0, 0},
        {PGFEED_BIN_TEXT, 0, 0}, {PGFEED_BIN_TEXT, 1, 25}, {PGFEED_BIN_INT4, 0, 0},
    };
    struct pgfeed_row_spec tabs = {'\t', "", 0, 6, NULL};
    check_back(&tabs, csvf, S("a,b\tsay \"hi\"\tx\ry\t\ta,b\t"), '"',
               "a,b\t\"say \"\"hi\"\"\"\t\"x\ry\"\t\ta,b\t");
    struct pgfeed_row_spec commas = {',', "", 0, 6, NULL};
    check_back(&commas, csvf, S("plain,\"\",,\\N,,7"), '"', "plain,\"\"\"\"\"\",,\\N,,7");
    /* the empty string is quoted when "" means NULL: built from a row with a marker */
    struct pgfeed_row_spec marked = {'\t', "NULL", 4, 6, NULL};
    struct pgfeed_bin_error err;
    char *t;
    size_t tn;
    row(S("\tNULL\tx\ny\t \t\t1"), &marked, csvf, &t, &tn, &err);
    struct pgfeed_buf b = {0};
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn, csvf, 6, ',', "", '"'), 0,
                  "csv with an empty null marker");
    ASSERT_EQ_MEM(b.data, b.len, "\"\",,\"x\ny\", ,\"\",1", sizeof("\"\",,\"x\ny\", ,\"\",1") - 1,
                  "  quotes the empty string");
    b.len = 0;
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn, csvf, 6, ',', "NULL", '"'), 0,
                  "csv with the null marker NULL");
    ASSERT_EQ_MEM(b.data, b.len, ",NULL,\"x\ny\", ,,1", sizeof(",NULL,\"x\ny\", ,,1") - 1,
                  "  leaves the empty string alone");
    b.len = 0;
    row(S("NULL\t\\N\t\t\t\t\\N"), &(struct pgfeed_row_spec){'\t', "\\N", 2, 6, NULL}, csvf, &t,
        &tn, &err);
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn, csvf, 6, ',', "NULL", '"'), 0,
                  "csv: text equal to the null marker");
    ASSERT_EQ_MEM(b.data, b.len, "\"NULL\",NULL,,,,NULL", sizeof("\"NULL\",NULL,,,,NULL") - 1,
                  "  is quoted");
    b.len = 0;

    /* not a tuple of these fields */
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn, csvf, 5, ',', "", '"'), UV_EINVAL,
                  "as_input: another field count is EINVAL");
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn - 1, csvf, 6, ',', "", '"'), UV_EINVAL,
                  "as_input: a cut tuple is EINVAL");
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, t, tn, kinds, 6, ',', "", '"'), UV_EINVAL,
                  "as_input: text where an int2 should be is EINVAL");
    ASSERT_EQ_INT(b.len, 0, "  and out is left as it was");

    /*
     * A numeric whose base-10000 digits are not digits (numeric_recv refuses them), or whose
     * scale is past the maximum: EINVAL. Found by fuzzing: digits of 65535 printed as 5
     * characters each, past the room counted for 4, and wrote past the buffer.
     */
    static const struct pgfeed_bin_field num1[] = {{PGFEED_BIN_NUMERIC, 0, 0}};
    struct pgfeed_buf tup = {0};
    size_t nd = 600;
    char head[14] = {0, 1, 0, 0, 0, 0, (char)(nd >> 8), (char)nd, 0x02, 0x57, 0, 0, 0, 0};
    uint32_t vlen = 8 + 2 * (uint32_t)nd;
    head[2] = (char)(vlen >> 24), head[3] = (char)(vlen >> 16), head[4] = (char)(vlen >> 8);
    head[5] = (char)vlen; /* weight 599: every digit before the point */
    pgfeed__buf_append(&tup, head, sizeof head);
    for (size_t i = 0; i < nd; i++)
        pgfeed__buf_append(&tup, "\xff\xff", 2);
    char *g = tap_guard(tup.data, tup.len);
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, g, tup.len, num1, 1, '\t', "\\N", 0), UV_EINVAL,
                  "as_input: numeric digits of 65535 are EINVAL");
    ASSERT_EQ_INT(b.len, 0, "  and out is left as it was");
    g[14] = 0x27, g[15] = 0x10; /* the first digit 10000 */
    memset(g + 16, 0, 2 * (nd - 1));
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, g, tup.len, num1, 1, '\t', "\\N", 0), UV_EINVAL,
                  "as_input: a numeric digit of 10000 is EINVAL");
    g[14] = 0x27, g[15] = 0x0f; /* 9999, then zeros: valid */
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, g, tup.len, num1, 1, '\t', "\\N", 0), 0,
                  "as_input: numeric digits of 9999 and 0 are fine");
    ASSERT_TRUE(b.len == 4 + 4 * (nd - 1) && memcmp(b.data, "9999", 4) == 0,
                "  and print as 4 characters each");
    b.len = 0;
    g[12] = 0x40, g[13] = 0x00; /* dscale 16384 */
    ASSERT_EQ_INT(pgfeed__bin_row_as_input(&b, g, tup.len, num1, 1, '\t', "\\N", 0), UV_EINVAL,
                  "as_input: a numeric scale past 16383 is EINVAL");
    pgfeed__buf_free(&tup);
    pgfeed__buf_free(&b);
}

/* ---- randomized ---- */

static uint64_t rng = 88172645463325252u;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/*
 * numeric_out of the decimal number [sign] I.F e E, the plain way: all digits D = I F with
 * the point after |I| + E of them, dscale max(0, |F| - E), leading zeros gone.
 */
static size_t ref_numeric(char *out, int neg, const char *I, const char *F, long E)
{
    char D[400];
    size_t ni = strlen(I), nfr = strlen(F), nd = ni + nfr;
    memcpy(D, I, ni);
    memcpy(D + ni, F, nfr);
    long pos = (long)ni + E, dscale = (long)nfr - E > 0 ? (long)nfr - E : 0;
    size_t o = 0;
    int zero = 1;
    for (size_t i = 0; i < nd; i++)
        zero &= D[i] == '0';
    if (neg && !zero)
        out[o++] = '-';
    size_t int_start = o;
    for (long i = 0; i < pos; i++) {
        char c = i < (long)nd ? D[i] : '0';
        if (c == '0' && o == int_start)
            continue; /* a leading zero */
        out[o++] = c;
    }
    if (o == int_start)
        out[o++] = '0';
    if (dscale > 0) {
        out[o++] = '.';
        for (long i = pos; i < pos + dscale; i++)
            out[o++] = i >= 0 && i < (long)nd ? D[i] : '0';
    }
    return o;
}

static void test_random(void)
{
    static const struct pgfeed_bin_field nf[] = {{PGFEED_BIN_NUMERIC, 0, 0}};
    struct pgfeed_row_spec sp = tsv_spec(1);
    long runs = 0, bad = 0;
    char in[512], want[1024];
    for (int r = 0; r < 20000; r++) {
        char I[160], F[160];
        size_t ni = rnd() % 40, nfr = rnd() % 40;
        if (ni + nfr == 0)
            ni = 1;
        int zeros = rnd() % 4 == 0; /* mostly zeros, to find stripping bugs */
        for (size_t i = 0; i < ni; i++)
            I[i] = zeros && rnd() % 8 ? '0' : (char)('0' + rnd() % 10);
        for (size_t i = 0; i < nfr; i++)
            F[i] = zeros && rnd() % 8 ? '0' : (char)('0' + rnd() % 10);
        I[ni] = F[nfr] = '\0';
        int neg = rnd() % 2, has_e = rnd() % 3 == 0;
        long E = has_e ? (long)(rnd() % 120) - 60 : 0;
        int n = snprintf(in, sizeof in, "%s%s%s%s",
                         neg         ? "-"
                         : rnd() % 4 ? ""
                                     : "+",
                         I, nfr || rnd() % 2 ? "." : "", F);
        if (has_e)
            n += snprintf(in + n, sizeof in - (size_t)n, "%c%ld", rnd() % 2 ? 'e' : 'E', E);
        size_t wn = ref_numeric(want, neg, I, F, E);

        struct pgfeed_bin_error err;
        char *t;
        size_t tn;
        struct pgfeed_buf b = {0};
        runs++;
        if (row(in, (size_t)n, &sp, nf, &t, &tn, &err) != 1 || err.code != 0 ||
            pgfeed__bin_row_as_input(&b, t, tn, nf, 1, '\t', "\\N", 0) != 0 || b.len != wn ||
            memcmp(b.data, want, wn) != 0) {
            if (bad++ < 5)
                tap_note("numeric \"%.*s\": got \"%.*s\" (error %d), want \"%.*s\"", n, in,
                         (int)b.len, b.data ? b.data : "", err.code, (int)wn, want);
        }
        pgfeed__buf_free(&b);
    }
    ASSERT_TRUE(bad == 0, "random numerics print back as numeric_out would (%ld runs, %ld bad)",
                runs, bad);

    static const struct pgfeed_bin_field i8[] = {{PGFEED_BIN_INT8, 0, 0}};
    runs = bad = 0;
    for (int r = 0; r < 20000; r++) {
        int64_t v = (int64_t)(rnd() >> (1 + rnd() % 63));
        if (rnd() % 2)
            v = -v;
        int n = snprintf(in, sizeof in, "%s%lld%s", rnd() % 4 ? "" : " ", (long long)v,
                         rnd() % 4 ? "" : " \v ");
        int wn = snprintf(want, sizeof want, "%lld", (long long)v);
        struct pgfeed_bin_error err;
        char *t;
        size_t tn;
        struct pgfeed_buf b = {0};
        runs++;
        if (row(in, (size_t)n, &sp, i8, &t, &tn, &err) != 1 || err.code != 0 ||
            pgfeed__bin_row_as_input(&b, t, tn, i8, 1, '\t', "\\N", 0) != 0 ||
            b.len != (size_t)wn || memcmp(b.data, want, (size_t)wn) != 0)
            bad++;
        pgfeed__buf_free(&b);
    }
    ASSERT_TRUE(bad == 0, "random bigints print back (%ld runs, %ld bad)", runs, bad);

    /* Random bytes as every kind: no crash, no write past the bound, a message for refusals */
    static const struct pgfeed_bin_field *all[] = {&f_text, &f_int2, &f_int4, &f_int8, &f_bool,
                                                   &f_num,  &a_text, &a_int4, &a_bool, &a_num};
    static const char alphabet[] = "0123456789+-. eE,tfnoaNIiy\t\xc3\xa9";
    runs = bad = 0;
    for (int r = 0; r < 50000; r++) {
        size_t n = rnd() % 24;
        for (size_t i = 0; i < n; i++)
            in[i] = alphabet[rnd() % (sizeof alphabet - 1)];
        const struct pgfeed_bin_field *f = all[rnd() % (sizeof all / sizeof all[0])];
        struct pgfeed_bin_error err = {0};
        char *o = room(PGFEED_ENCODE_BIN_FIELD_MAX(n));
        char *e = pgfeed__encode_bin_field(o, place(in, n), n, f, &err);
        runs++;
        if (e == NULL) {
            char *m = pgfeed__bin_error_message(&err);
            bad += m == NULL || err.code == 0 || err.value < in_end - n ||
                   err.value + err.value_len > in_end;
            free(m);
        }
    }
    ASSERT_TRUE(bad == 0, "random values of every kind: encoded or refused with a message (%ld)",
                runs);
}

/* The block row encoder against the plain one, on random lines of random fields. */
static void test_block_vs_plain(void)
{
    static const struct pgfeed_bin_field kinds[] = {
        {PGFEED_BIN_TEXT, 0, 0},  {PGFEED_BIN_TEXT, 0, 0},    {PGFEED_BIN_TEXT, 1, 1043},
        {PGFEED_BIN_TEXT, 1, 25}, {PGFEED_BIN_INT4, 0, 0},    {PGFEED_BIN_INT8, 1, 20},
        {PGFEED_BIN_BOOL, 0, 0},  {PGFEED_BIN_NUMERIC, 0, 0}, {PGFEED_BIN_NUMERIC, 1, 1700},
    };
    static const char *const nulls[] = {"\\N", "", "NULL"};
    static const char *const bits[] = {"a",    "xyz",   "\\",        "\\N", ",",   ",,",
                                       "1",    "42",    "-7",        " ",   "t",   "é",
                                       "NULL", "1.5e3", "tt0053137", "\t",  "\x01"};
    struct pgfeed_bin_field f[12];
    char line[700];
    long runs = 0, bad = 0, complete = 0;
    for (int r = 0; r < 200000; r++) {
        size_t nf = 1 + rnd() % 8;
        for (size_t i = 0; i < nf; i++)
            f[i] = kinds[rnd() % (sizeof kinds / sizeof kinds[0])];
        const char *nm = nulls[rnd() % 3];
        char delim = rnd() % 4 ? '\t' : rnd() % 2 ? '|' : ',';
        struct pgfeed_row_spec sp = {delim, nm, strlen(nm), nf, NULL};
        /* field by field, mostly values of the field's kind; now and then a field more or less */
        size_t n = 0, fields = nf + (rnd() % 10 == 0) - (rnd() % 10 == 0 && nf > 1);
        size_t width = r % 10 ? 6 : 60;
        for (size_t i = 0; i < fields; i++) {
            if (i > 0)
                line[n++] = delim;
            int kind = i < nf && rnd() % 5 ? f[i].kind : PGFEED_BIN_TEXT;
            size_t parts = rnd() % width;
            for (size_t j = 0; j < parts && n + 20 < sizeof line; j++) {
                const char *b;
                if (kind == PGFEED_BIN_TEXT)
                    b = bits[rnd() % (sizeof bits / sizeof bits[0] - 1)];
                else if (j > 0 && !f[i].is_array)
                    break;
                else
                    b = kind == PGFEED_BIN_BOOL      ? "t"
                        : kind == PGFEED_BIN_NUMERIC ? "-1.5e3"
                                                     : "42";
                if (j > 0 && kind != PGFEED_BIN_TEXT)
                    line[n++] = ',';
                memcpy(line + n, b, strlen(b));
                n += strlen(b);
            }
        }
        size_t cap = PGFEED_ENCODE_BIN_ROW_MAX(n, nf);
        char *o1 = room(cap), *s1 = o1;
        struct pgfeed_bin_error e1, e2;
        size_t f1 = pgfeed__encode_bin_row(&o1, place(line, n), n, &sp, f, &e1);
        char *copy = malloc(cap ? cap : 1);
        size_t l1 = (size_t)(o1 - s1);
        memcpy(copy, s1, l1);
        char *o2 = room(cap), *s2 = o2;
        size_t f2 = plain_encode_bin_row(&o2, place(line, n), n, &sp, f, &e2);
        size_t l2 = (size_t)(o2 - s2);
        runs++;
        complete += f1 == nf && e1.code == 0;
        int same = f1 == f2 && e1.code == e2.code && l1 == l2 && memcmp(copy, s2, l1) == 0 &&
                   (e1.code == 0 || (e1.field == e2.field && e1.value_len == e2.value_len));
        if (!same && bad++ < 3)
            tap_note("run %d: fields %zu/%zu, error %d/%d, %zu/%zu bytes", r, f1, f2, e1.code,
                     e2.code, l1, l2);
        free(copy);
    }
    ASSERT_TRUE(bad == 0,
                "block and plain row encoders agree on %ld random lines, %ld of them complete "
                "rows (%ld differ)",
                runs, complete, bad);
}

int main(void)
{
    {
        char *zeros = calloc(1, AREA);
        in_end = tap_guard(zeros, AREA) + AREA;
        out_end = tap_guard(zeros, AREA) + AREA;
        free(zeros);
    }
    test_text();
    test_integers();
    test_booleans();
    test_numerics();
    test_arrays();
    test_rows();
    test_tuple_len();
    test_as_input();
    test_random();
    test_block_vs_plain();
    return tap_done();
}
