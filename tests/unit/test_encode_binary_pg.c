/*
 * test_encode_binary_pg.c -- encode_binary.c against a real PostgreSQL server.
 *
 * Skipped unless PGFEED_TEST_DB holds a conninfo string (a database where temporary tables
 * may be made). Three checks:
 *
 * 1. Values one at a time, fixed tricky ones and random ones for every kind: the server's
 *    text input (SELECT <type>send($1::<type>), which runs the same input function as text
 *    COPY) and encode_binary.c must agree on accepting it, then on the exact bytes (the
 *    server's dscale of an infinity is ignored: it is leftover header bits), or else on the
 *    message and SQLSTATE.
 * 2. Arrays: SELECT array_send(string_to_array($1, ',')::<type>[]) (split at every comma,
 *    '' is an empty array, as pgfeed does) against the encoded field, byte for byte.
 * 3. Tables: the same tsv rows (every kind, arrays, NULLs, empty arrays, unicode, typmods
 *    char(n), varchar(n), numeric(p,s)) COPYed as text (encode_copy.c) into one table and as
 *    binary (encode_binary.c, with the file header and trailer) into another, then compared
 *    row by row as text in both directions with EXCEPT ALL; each row is then read back from
 *    the server as text and turned into an input line with pgfeed__bin_row_as_input from
 *    the binary tuple, which must match the server's text of the same row.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

#define S(lit) lit, sizeof(lit) - 1

static PGconn *conn;

static uint64_t rng = 0x243F6A8885A308D3u;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int exec_ok(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        tap_note("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

/* ---- 1 and 2: one value ---- */

struct kind {
    struct pgfeed_bin_field f;
    const char *sql; /* SELECT ... with $1 */
};

static const struct kind kinds[] = {
    {{PGFEED_BIN_INT2, 0, 0}, "SELECT int2send($1::int2)"},
    {{PGFEED_BIN_INT4, 0, 0}, "SELECT int4send($1::int4)"},
    {{PGFEED_BIN_INT8, 0, 0}, "SELECT int8send($1::int8)"},
    {{PGFEED_BIN_BOOL, 0, 0}, "SELECT boolsend($1::bool)"},
    {{PGFEED_BIN_NUMERIC, 0, 0}, "SELECT numeric_send($1::numeric)"},
    {{PGFEED_BIN_TEXT, 0, 0}, "SELECT textsend($1::text)"},
    {{PGFEED_BIN_TEXT, 1, 25}, "SELECT array_send(string_to_array($1, ',')::text[])"},
    {{PGFEED_BIN_TEXT, 1, 1043}, "SELECT array_send(string_to_array($1, ',')::varchar[])"},
    {{PGFEED_BIN_TEXT, 1, 1042}, "SELECT array_send(string_to_array($1, ',')::bpchar[])"},
    {{PGFEED_BIN_INT2, 1, 21}, "SELECT array_send(string_to_array($1, ',')::int2[])"},
    {{PGFEED_BIN_INT4, 1, 23}, "SELECT array_send(string_to_array($1, ',')::int4[])"},
    {{PGFEED_BIN_INT8, 1, 20}, "SELECT array_send(string_to_array($1, ',')::int8[])"},
    {{PGFEED_BIN_BOOL, 1, 16}, "SELECT array_send(string_to_array($1, ',')::bool[])"},
    {{PGFEED_BIN_NUMERIC, 1, 1700}, "SELECT array_send(string_to_array($1, ',')::numeric[])"},
};
enum {
    K_INT2,
    K_INT4,
    K_INT8,
    K_BOOL,
    K_NUM,
    K_TEXT,
    K_ATEXT,
    K_AVARCHAR,
    K_ABPCHAR,
    K_AINT2,
    K_AINT4,
    K_AINT8,
    K_ABOOL,
    K_ANUM,
    NKINDS
};

struct tally {
    long runs, accepted, refused, bad;
};

/* A numeric's binary form with the dscale of an infinity or NaN cleared. */
static void normalize_numeric(char *p, size_t n)
{
    if (n >= 8 && ((unsigned char)p[4] & 0xC0) == 0xC0)
        p[6] = p[7] = 0;
}

/* Array elements of numerics: normalize each. */
static void normalize(int k, char *p, size_t n)
{
    if (k == K_NUM) {
        normalize_numeric(p, n);
    } else if (k == K_ANUM && n >= 20) {
        size_t at = 20;
        while (at + 4 <= n) {
            uint32_t len = (uint32_t)(unsigned char)p[at] << 24 |
                           (uint32_t)(unsigned char)p[at + 1] << 16 |
                           (uint32_t)(unsigned char)p[at + 2] << 8 | (unsigned char)p[at + 3];
            at += 4;
            if (len > n - at)
                break;
            normalize_numeric(p + at, len);
            at += len;
        }
    }
}

static void check_value(int k, const char *v, size_t n, struct tally *t)
{
    const struct pgfeed_bin_field *f = &kinds[k].f;
    char *mine = malloc(PGFEED_ENCODE_BIN_FIELD_MAX(n));
    struct pgfeed_bin_error err = {0};
    char *e = pgfeed__encode_bin_field(mine, v, n, f, &err);

    char *param = malloc(n + 1);
    memcpy(param, v, n);
    param[n] = '\0';
    const char *values[1] = {param};
    PGresult *r = PQexecParams(conn, kinds[k].sql, 1, NULL, values, NULL, NULL, 1);
    int server_ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    t->runs++;
    int agree;
    if (server_ok && e != NULL) {
        t->accepted++;
        size_t sn = (size_t)PQgetlength(r, 0, 0);
        char *sv = PQgetvalue(r, 0, 0);
        size_t mn = (size_t)(e - mine) - 4;
        normalize(k, sv, sn);
        normalize(k, mine + 4, mn);
        agree = sn == mn && memcmp(sv, mine + 4, mn) == 0;
        if (!agree && t->bad < 10)
            tap_note("kind %d \"%s\": bytes differ (%zu vs %zu)", k, param, mn, sn);
    } else if (!server_ok && e == NULL) {
        t->refused++;
        char *m = pgfeed__bin_error_message(&err);
        const char *sm = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        agree = m && sm && ss && strcmp(m, sm) == 0 &&
                strcmp(pgfeed__bin_error_sqlstate(&err), ss) == 0;
        if (!agree && t->bad < 10)
            tap_note("kind %d \"%s\": server %s \"%s\", we %s \"%s\"", k, param, ss ? ss : "?",
                     sm ? sm : "?", pgfeed__bin_error_sqlstate(&err), m ? m : "?");
        free(m);
    } else {
        agree = 0;
        if (t->bad < 10)
            tap_note("kind %d \"%s\": server %s (%s), we %s", k, param,
                     server_ok ? "accepts" : "refuses",
                     server_ok ? "" : PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                     e ? "accept" : "refuse");
    }
    t->bad += !agree;
    PQclear(r);
    free(param);
    free(mine);
}

static const char *const fixed_values[] = {"0",
                                           "-0",
                                           "+0",
                                           "1",
                                           "-1",
                                           " 1",
                                           "1 ",
                                           "\t\n\v\f\r1\r\n",
                                           "1 2",
                                           "",
                                           " ",
                                           "+",
                                           "-",
                                           "x",
                                           "1.0",
                                           "1e3",
                                           "0x10",
                                           "1_000",
                                           "--1",
                                           "00000000000000000000000000042",
                                           "32767",
                                           "32768",
                                           "-32768",
                                           "-32769",
                                           "2147483647",
                                           "2147483648",
                                           "-2147483648",
                                           "-2147483649",
                                           "2147483648x",
                                           "99999999999x",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775808",
                                           "-9223372036854775809",
                                           "9223372036854775808 x",
                                           "99999999999999999999999999",
                                           "１",
                                           "12\xc2\xa0",
                                           "t",
                                           "T",
                                           "true",
                                           "TRUE",
                                           "tRu",
                                           "yes",
                                           " y ",
                                           "on",
                                           "ON",
                                           "of",
                                           "off",
                                           "o",
                                           "f",
                                           "false",
                                           "fal",
                                           "n",
                                           "no",
                                           "nO",
                                           "truex",
                                           "tru e",
                                           "onn",
                                           "offf",
                                           "10",
                                           "00",
                                           "2",
                                           "NaN",
                                           " nan ",
                                           "NaNx",
                                           "-nan",
                                           "Infinity",
                                           "+infinity",
                                           "-Infinity",
                                           "inf",
                                           "+INF",
                                           "-inf",
                                           "infinit",
                                           "Infinityy",
                                           "in",
                                           ".",
                                           "-.",
                                           ".5",
                                           "5.",
                                           "..5",
                                           "1..",
                                           "1.2.3",
                                           "1e",
                                           "1e+",
                                           "1e--5",
                                           "1e5.5",
                                           "1 e5",
                                           "1e 5",
                                           "1e +5",
                                           "1e5 x",
                                           "1,5",
                                           "0.000",
                                           "-0.000",
                                           "0e5",
                                           "0.00e1",
                                           "1e-5",
                                           "123456789.123456789",
                                           "1e20",
                                           "000123.4500",
                                           "-12.5",
                                           "1.5e3",
                                           "99999999.99999999",
                                           "0.0001",
                                           "10000",
                                           "12345678901234567890",
                                           " -1.2E-3 ",
                                           "+5",
                                           "2.5E+2",
                                           "0e-16383",
                                           "1e-16383",
                                           "1e-16384",
                                           "0e-16384",
                                           "1e131071",
                                           "1e131072",
                                           "-1e131072",
                                           "9.9999e131071",
                                           "1e1073741822",
                                           "0e1073741822",
                                           "1e1073741823",
                                           "1e-1073741823",
                                           "1e99999999999999999999",
                                           "1e-99999999999999999999x",
                                           "1e-40000x",
                                           "0x1F",
                                           "a,,b",
                                           ",",
                                           "a,",
                                           ",a",
                                           " x ,\\N,NULL",
                                           "1,2,x",
                                           "1, 2 ,-3",
                                           "t,off,YES",
                                           "1.5,NaN,-0",
                                           "1,1e999999",
                                           "NULL",
                                           "{1}",
                                           "\"1\"",
                                           "é€,黒澤",
                                           "a\\b",
                                           "say \"hi\"",
                                           "{x},}{"};

static char rand_char(const char *set)
{
    return set[rnd() % strlen(set)];
}

/* A random string made to be close to valid input of kind k. */
static size_t random_value(int k, char *o)
{
    static const char *const spaces = " \t\n\v\f\r";
    size_t n = 0;
    int base = k;
    if (k >= K_AINT2) /* the element kinds are in the same order */
        base = K_INT2 + (k - K_AINT2);
    else if (k >= K_ATEXT)
        base = K_TEXT;
    int elems = k >= K_ATEXT ? (int)(rnd() % 4) + (rnd() % 8 == 0 ? 0 : 1) : 1;
    for (int el = 0; el < elems; el++) {
        if (el > 0)
            o[n++] = ',';
        if (rnd() % 6 == 0)
            o[n++] = rand_char(spaces);
        switch (base) {
        case K_INT2:
        case K_INT4:
        case K_INT8: {
            static const char *const edges[] = {"32767",
                                                "32768",
                                                "2147483647",
                                                "2147483648",
                                                "4294967296",
                                                "9223372036854775807",
                                                "9223372036854775808"};
            if (rnd() % 3)
                o[n++] = rand_char("+-");
            if (rnd() % 3 == 0) {
                const char *s = edges[rnd() % 7];
                memcpy(o + n, s, strlen(s));
                n += strlen(s);
            } else {
                size_t d = rnd() % 22;
                for (size_t i = 0; i < d; i++)
                    o[n++] = (char)('0' + rnd() % 10);
            }
            if (rnd() % 8 == 0)
                o[n++] = rand_char("x.e 9_");
            break;
        }
        case K_BOOL: {
            static const char *const words[] = {"true", "false", "yes", "no", "on", "off",
                                                "1",    "0",     "t",   "f",  "o",  "TrUe"};
            const char *w = words[rnd() % 12];
            size_t len = strlen(w);
            size_t take = rnd() % 2 ? len : rnd() % (len + 2);
            for (size_t i = 0; i < take; i++)
                o[n++] = i < len ? w[i] : rand_char("xen");
            break;
        }
        case K_NUM: {
            if (rnd() % 12 == 0) {
                static const char *const sp[] = {"NaN",  "Infinity", "-Infinity", "inf",
                                                 "-INF", "+inf",     "nan",       "Infinit"};
                const char *s = sp[rnd() % 8];
                memcpy(o + n, s, strlen(s));
                n += strlen(s);
                break;
            }
            if (rnd() % 3)
                o[n++] = rand_char("+-");
            size_t di = rnd() % (rnd() % 10 ? 12 : 300), df = rnd() % (rnd() % 10 ? 12 : 300);
            int zeros = rnd() % 3 == 0;
            for (size_t i = 0; i < di; i++)
                o[n++] = zeros && rnd() % 6 ? '0' : (char)('0' + rnd() % 10);
            if (df || rnd() % 4 == 0)
                o[n++] = '.';
            for (size_t i = 0; i < df; i++)
                o[n++] = zeros && rnd() % 6 ? '0' : (char)('0' + rnd() % 10);
            if (rnd() % 3 == 0) {
                static const long edges[] = {131071,     131072,     131068, 16383, 16384, 16380,
                                             1073741822, 1073741823, 5,      20,    0,     1};
                long e = rnd() % 2 ? edges[rnd() % 12] : (long)(rnd() % 200);
                n += (size_t)sprintf(o + n, "%c%s%ld", rand_char("eE"),
                                     rnd() % 2   ? "-"
                                     : rnd() % 3 ? ""
                                                 : "+",
                                     e);
            }
            if (rnd() % 10 == 0)
                o[n++] = rand_char(".ex 1");
            break;
        }
        default: { /* text */
            static const char *const bits[] = {"a", "Z", " ",  "\\",   "\"",  "{", "}",   "'",
                                               "é", "€", "黒", "NULL", "\\N", "😀", "\x7f"};
            size_t m = rnd() % 6;
            for (size_t i = 0; i < m; i++) {
                const char *s = bits[rnd() % 15];
                memcpy(o + n, s, strlen(s));
                n += strlen(s);
            }
            if (k == K_TEXT && rnd() % 4 == 0)
                o[n++] = ',';
            break;
        }
        }
        if (rnd() % 6 == 0)
            o[n++] = rand_char(spaces);
    }
    return n;
}

static void values_test(void)
{
    struct tally t[NKINDS] = {{0}};
    for (int k = 0; k < NKINDS; k++)
        for (size_t i = 0; i < sizeof fixed_values / sizeof fixed_values[0]; i++)
            check_value(k, fixed_values[i], strlen(fixed_values[i]), &t[k]);
    char v[2000];
    for (int k = 0; k < NKINDS; k++)
        for (int i = 0; i < 1500; i++)
            check_value(k, v, random_value(k, v), &t[k]);
    for (int k = 0; k < NKINDS; k++)
        ASSERT_TRUE(t[k].bad == 0,
                    "server and encoder agree on %s%s (oid %u): %ld values, %ld accepted with "
                    "the same bytes, %ld refused with the same message (%ld differ)",
                    k == K_INT2   ? "int2"
                    : k == K_INT4 ? "int4"
                    : k == K_INT8 ? "int8"
                    : k == K_BOOL ? "bool"
                    : k == K_NUM  ? "numeric"
                                  : "text",
                    kinds[k].f.is_array ? "[]" : "", kinds[k].f.elem_oid, t[k].runs, t[k].accepted,
                    t[k].refused, t[k].bad);
}

/* ---- 3: tables through COPY ---- */

#define NCOLS 18
static const char *const table_cols =
    "(id int, t text, v varchar(20), c char(5), i2 smallint, i4 int, i8 bigint, b bool, "
    "n numeric, n2 numeric(12,3), ta text[], va varchar(10)[], ca char(2)[], i2a int2[], "
    "i4a int4[], i8a int8[], ba bool[], na numeric[])";
static const struct pgfeed_bin_field cols[NCOLS] = {
    {PGFEED_BIN_INT4, 0, 0},    {PGFEED_BIN_TEXT, 0, 0},  {PGFEED_BIN_TEXT, 0, 0},
    {PGFEED_BIN_TEXT, 0, 0},    {PGFEED_BIN_INT2, 0, 0},  {PGFEED_BIN_INT4, 0, 0},
    {PGFEED_BIN_INT8, 0, 0},    {PGFEED_BIN_BOOL, 0, 0},  {PGFEED_BIN_NUMERIC, 0, 0},
    {PGFEED_BIN_NUMERIC, 0, 0}, {PGFEED_BIN_TEXT, 1, 25}, {PGFEED_BIN_TEXT, 1, 1043},
    {PGFEED_BIN_TEXT, 1, 1042}, {PGFEED_BIN_INT2, 1, 21}, {PGFEED_BIN_INT4, 1, 23},
    {PGFEED_BIN_INT8, 1, 20},   {PGFEED_BIN_BOOL, 1, 16}, {PGFEED_BIN_NUMERIC, 1, 1700},
};
static const int col_kind[NCOLS] = {K_INT4,  K_TEXT,  K_TEXT,  K_TEXT,  K_INT2,  K_INT4,
                                    K_INT8,  K_BOOL,  K_NUM,   K_NUM,   K_ATEXT, K_ATEXT,
                                    K_ATEXT, K_AINT2, K_AINT4, K_AINT8, K_ABOOL, K_ANUM};

static const char *const fixed_rows[] = {
    "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
    "\t\t\t1\t1\t1\tt\t0\t0\t\t\t\t\t\t\t\t",
    ("Miklós Rózsa 黒澤 明 😀\tvarchar\tab\t-32768\t-2147483648\t-9223372036854775808\tFALSE\t"
     "123456789.123456789\t-1234.5678\ta,,b\tx,y\tab,c\t1,-2\t 3 ,4\t9223372036854775807\t"
     "t,f,yes\t1.5,NaN,-0,1e-5"),
    ("a\\b \"q\" {x},}{ NULL\t\\\\N\t\t32767\t2147483647\t9223372036854775807\t on \t"
     "-0.000\t0.0005\tNULL,\\N,\"\",{}, sp \t\t\t\t\t\t\t"),
    "x\ty\tz\t0\t0\t0\t1\tNaN\tNaN\t\\\tq\t\t0\t0\t0\t0\tInfinity,-Infinity",
    "x\ty\tz\t0\t0\t0\t0\t-Infinity\t1e3\ta\tq\tz\t0\t0\t0\toff\t1e20,0.000,000123.4500",
    "x\ty\tz\t0\t0\t0\tn\t1e131071\t99999.9999\ta\tq\tz\t0\t0\t0\toff\t1e-16383",
};

/* Appends a random valid value of the column to b. */
static void random_field(struct pgfeed_buf *b, int c)
{
    char v[2000];
    for (int tries = 0;; tries++) {
        size_t n = random_value(col_kind[c], v);
        if (c == 2 && n > 15) /* varchar(20) */
            n = 15;
        if (c == 3 && n > 5) /* char(5): a longer value must be spaces past 5 */
            n = 5;
        if (c == 9) { /* numeric(12,3): at most 9 digits before the point */
            n = (size_t)sprintf(v, "%s%llu.%0*llu", rnd() % 2 ? "-" : "",
                                (unsigned long long)(rnd() % 100000000), (int)(rnd() % 8),
                                (unsigned long long)(rnd() % 10000000));
        }
        /* whole characters only (the cuts above), no tab or newline: it is a tsv field */
        while ((c == 2 || c == 3) && n > 0 && ((unsigned char)v[n - 1] & 0xC0) == 0x80)
            n--;
        while ((c == 2 || c == 3) && n > 0 && (unsigned char)v[n - 1] >= 0xC0)
            n--;
        int clean = 1;
        for (size_t i = 0; i < n; i++)
            clean &= v[i] != '\t' && v[i] != '\n' && v[i] != '\r';
        if (c == 11 || c == 12) /* varchar(10)[] and char(2)[]: short elements */
            for (size_t i = 0, run = 0; i < n; i++, run++) {
                if (v[i] == ',')
                    run = 0;
                if (run >= (c == 11 ? 8 : 2) || (unsigned char)v[i] >= 0x80)
                    clean = 0;
            }
        struct pgfeed_bin_error err;
        char *tmp = malloc(PGFEED_ENCODE_BIN_FIELD_MAX(n));
        int ok = pgfeed__encode_bin_field(tmp, v, n, &cols[c], &err) != NULL;
        free(tmp);
        if ((ok && clean && !(n == 2 && v[0] == '\\' && v[1] == 'N')) || tries > 1000) {
            pgfeed__buf_append(b, v, n);
            return;
        }
    }
}

/* COPY rows (text or binary) into table; 0 or -1. */
static int copy_in(const char *sql, const char *data, size_t n)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok) {
        tap_note("%s: %s", sql, PQerrorMessage(conn));
        return -1;
    }
    for (size_t at = 0; at < n; at += 65536) {
        size_t k = n - at < 65536 ? n - at : 65536;
        if (PQputCopyData(conn, data + at, (int)k) != 1)
            return -1;
    }
    if (PQputCopyEnd(conn, NULL) != 1)
        return -1;
    r = PQgetResult(conn);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        tap_note("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(conn)) != NULL)
        PQclear(r);
    return ok ? 0 : -1;
}

static long count(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    long v =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    if (v < 0)
        tap_note("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return v;
}

static void tables_test(void)
{
    char sql[600];
    snprintf(sql, sizeof sql, "CREATE TEMP TABLE via_text %s; CREATE TEMP TABLE via_bin %s",
             table_cols, table_cols);
    if (!exec_ok(sql)) {
        ASSERT_TRUE(0, "temporary tables");
        return;
    }
    int is_array[NCOLS];
    for (int c = 0; c < NCOLS; c++)
        is_array[c] = cols[c].is_array;
    struct pgfeed_row_spec spec = {'\t', "\\N", 2, NCOLS, is_array};
    struct pgfeed_buf text = {0}, bin = {0}, line = {0};
    pgfeed__buf_append(&bin, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
    size_t nrows = 0, bad = 0;
    size_t nfixed = sizeof fixed_rows / sizeof fixed_rows[0];
    for (size_t r = 0; r < nfixed + 3000; r++) {
        line.len = 0;
        char id[24];
        pgfeed__buf_append(&line, id, (size_t)snprintf(id, sizeof id, "%zu\t", r + 1));
        if (r < nfixed) {
            pgfeed__buf_append(&line, fixed_rows[r], strlen(fixed_rows[r]));
        } else {
            for (int c = 1; c < NCOLS; c++) {
                if (c > 1)
                    pgfeed__buf_append(&line, "\t", 1);
                if (rnd() % 10 == 0)
                    pgfeed__buf_append(&line, "\\N", 2);
                else
                    random_field(&line, c);
            }
        }
        pgfeed__buf_reserve(&text, PGFEED_ENCODE_ROW_MAX(line.len, NCOLS));
        pgfeed__buf_reserve(&bin, PGFEED_ENCODE_BIN_ROW_MAX(line.len, NCOLS));
        char *to = text.data + text.len, *bo = bin.data + bin.len;
        struct pgfeed_bin_error err;
        size_t ft = pgfeed__encode_row(&to, line.data, line.len, &spec);
        size_t fb = pgfeed__encode_bin_row(&bo, line.data, line.len, &spec, cols, &err);
        if (ft != NCOLS || fb != NCOLS || err.code != 0) {
            if (bad++ < 5)
                tap_note("row %zu not encoded: %zu/%zu fields, error %d in field %zu", r + 1, ft,
                         fb, err.code, err.field);
            continue;
        }
        text.len = (size_t)(to - text.data);
        bin.len = (size_t)(bo - bin.data);
        nrows++;
    }
    pgfeed__buf_append(&bin, "\377\377", 2);
    ASSERT_EQ_INT(bad, 0, "every test row encodes both ways");
    ASSERT_EQ_INT(copy_in("COPY via_text FROM STDIN", text.data, text.len), 0,
                  "COPY text of the rows");
    ASSERT_EQ_INT(copy_in("COPY via_bin FROM STDIN WITH (FORMAT binary)", bin.data, bin.len), 0,
                  "COPY binary of the rows");
    ASSERT_EQ_INT(count("SELECT count(*) FROM via_bin"), nrows, "binary: every row landed");
    ASSERT_EQ_INT(count("SELECT count(*) FROM (SELECT t::text FROM via_text t EXCEPT ALL "
                        "SELECT t::text FROM via_bin t) x"),
                  0, "no row of text COPY is missing from binary COPY (as text, dscale and all)");
    ASSERT_EQ_INT(count("SELECT count(*) FROM (SELECT t::text FROM via_bin t EXCEPT ALL "
                        "SELECT t::text FROM via_text t) x"),
                  0, "no row of binary COPY is missing from text COPY");
    PGresult *res = PQexec(conn, "SELECT count(*) FROM via_bin WHERE n = 'NaN' OR "
                                 "n2 IS NOT NULL AND scale(n2) = 3 OR c ~ ' $' OR "
                                 "ta = '{}' OR 'NULL' = ANY(ta)");
    ASSERT_TRUE(PQresultStatus(res) == PGRES_TUPLES_OK && atol(PQgetvalue(res, 0, 0)) > 10,
                "the rows hold NaN, numeric(12,3) at scale 3, padded char(5), {} and 'NULL'");
    PQclear(res);

    /*
     * Each binary tuple back to an input line, against the server's text of the row: arrays
     * joined by commas, NULL as \N. char(n) values come back from the server padded, so
     * char columns (c, ca) and typmod'ed numerics (n2) are left out of this comparison.
     */
    res = PQexec(
        conn,
        "SELECT coalesce(id::text, '\\N'), coalesce(t, '\\N'), "
        "coalesce(v, '\\N'), coalesce(i2::text, '\\N'), "
        "coalesce(i4::text, '\\N'), coalesce(i8::text, '\\N'), "
        "coalesce(CASE WHEN b THEN 't' WHEN NOT b THEN 'f' END, '\\N'), coalesce(n::text, '\\N'), "
        "coalesce(array_to_string(ta, ','), '\\N'), "
        "coalesce(array_to_string(va, ','), '\\N'), "
        "coalesce(array_to_string(i2a, ','), '\\N'), "
        "coalesce(array_to_string(i4a, ','), '\\N'), "
        "coalesce(array_to_string(i8a, ','), '\\N'), "
        "coalesce(array_to_string(ba, ','), '\\N'), "
        "coalesce(array_to_string(na, ','), '\\N') "
        "FROM via_bin ORDER BY id");
    static const int shown[] = {0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 13, 14, 15, 16, 17};
    size_t differ = 0, checked = 0;
    const char *p = bin.data + 19, *end = bin.data + bin.len - 2;
    struct pgfeed_buf back = {0}, server = {0};
    for (int row = 0; PQresultStatus(res) == PGRES_TUPLES_OK && row < PQntuples(res); row++) {
        size_t tl = pgfeed__bin_tuple_len(p, (size_t)(end - p));
        back.len = server.len = 0;
        if (tl == 0 || pgfeed__bin_row_as_input(&back, p, tl, cols, NCOLS, '\t', "\\N", 0) != 0) {
            differ++;
            break;
        }
        p += tl;
        /* keep the shown columns of our line */
        struct pgfeed_buf ours = {0};
        const char *f = back.data, *bend = back.data + back.len;
        for (int c = 0, s = 0; c < NCOLS; c++) {
            const char *d = memchr(f, '\t', (size_t)(bend - f));
            if (d == NULL)
                d = bend;
            if (s < 15 && shown[s] == c) {
                if (s++)
                    pgfeed__buf_append(&ours, "\t", 1);
                pgfeed__buf_append(&ours, f, (size_t)(d - f));
            }
            f = d + 1;
        }
        for (int c = 0; c < 15; c++) {
            if (c)
                pgfeed__buf_append(&server, "\t", 1);
            pgfeed__buf_append(&server, PQgetvalue(res, row, c), (size_t)PQgetlength(res, row, c));
        }
        checked++;
        if (ours.len != server.len || memcmp(ours.data, server.data, ours.len) != 0) {
            if (differ++ < 3)
                tap_note("row %d back as input:\n  ours   %.*s\n  server %.*s", row + 1,
                         (int)ours.len, ours.data, (int)server.len, server.data);
        }
        pgfeed__buf_free(&ours);
    }
    PQclear(res);
    ASSERT_TRUE(checked == nrows && differ == 0,
                "every tuple back as input is the server's text of the row (%zu rows, %zu differ)",
                checked, differ);
    pgfeed__buf_free(&back);
    pgfeed__buf_free(&server);
    pgfeed__buf_free(&text);
    pgfeed__buf_free(&bin);
    pgfeed__buf_free(&line);
}

int main(void)
{
    const char *db = getenv("PGFEED_TEST_DB");
    if (db == NULL || *db == '\0') {
        printf("1..0 # SKIP PGFEED_TEST_DB is not set (a conninfo string)\n");
        return 0;
    }
    conn = PQconnectdb(db);
    if (PQstatus(conn) != CONNECTION_OK) {
        ASSERT_TRUE(0, "connect to PGFEED_TEST_DB: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return tap_done();
    }
    tap_note("server %d", PQserverVersion(conn));
    exec_ok("SET client_encoding = 'UTF8'");
    exec_ok("SET client_min_messages = warning");
    values_test();
    tables_test();
    PQfinish(conn);
    return tap_done();
}
