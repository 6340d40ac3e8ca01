/*
 * test_encoding.c -- encoding.c: PostgreSQL's names and aliases, the check of a buffer for a
 * single-byte encoding, a header's conversion to UTF-8 and the UTF-16 sniffing.
 *
 * With PGFEED_TEST_DB (a conninfo string for a UTF8 database) every byte 0x80..0xFF of every
 * single-byte encoding is also checked against the server's own convert_from: pgfeed must
 * refuse exactly the bytes the server refuses and convert the others to the same character.
 * Without it that part is skipped (the tables were generated from it: scripts/gen-encodings).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *const single_byte[] = {
    "LATIN1",  "LATIN2",  "LATIN3",  "LATIN4",     "LATIN5",     "LATIN6",     "LATIN7",
    "LATIN8",  "LATIN9",  "LATIN10", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7", "ISO_8859_8",
    "WIN866",  "WIN874",  "WIN1250", "WIN1251",    "WIN1252",    "WIN1253",    "WIN1254",
    "WIN1255", "WIN1256", "WIN1257", "WIN1258",    "KOI8R",      "KOI8U"};
#define N_SB (sizeof single_byte / sizeof single_byte[0])

static const char *name_of(const char *alias)
{
    const struct pgfeed_encoding *e = pgfeed__encoding_find(alias);
    return e ? e->name : "(none)";
}

static void names(void)
{
    static const char *const pairs[][2] = {
        {"latin1", "LATIN1"},
        {"LATIN1", "LATIN1"},
        {"ISO-8859-1", "LATIN1"},
        {"iso_8859_1", "LATIN1"},
        {"windows-1252", "WIN1252"},
        {"WIN1252", "WIN1252"},
        {"Windows_1252", "WIN1252"},
        {"win-1251", "WIN1251"},
        {"UTF-8", "UTF8"},
        {"unicode", "UTF8"},
        {"utf8", "UTF8"},
        {"koi8-r", "KOI8R"},
        {"KOI8", "KOI8R"},
        {"iso-8859-15", "LATIN9"},
        {"ISO_8859_5", "ISO_8859_5"},
        {"iso8859-9", "LATIN5"},
        {"alt", "WIN866"},
        {"TCVN", "WIN1258"},
        {"Shift_JIS", "SJIS"},
        {"win932", "SJIS"},
        {"euc-jp", "EUC_JP"},
        {"SQL_ASCII", "SQL_ASCII"},
        {"cp1252", "(none)"},
        {"latin11", "(none)"},
        {"", "(none)"},
        {"-", "(none)"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        ASSERT_EQ_STR(name_of(pairs[i][0]), pairs[i][1], pairs[i][0]);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_TRUE(pgfeed__encoding_find(longname) == NULL, "a 199-letter name is no encoding");
    for (size_t i = 0; i < N_SB; i++) {
        const struct pgfeed_encoding *e = pgfeed__encoding_find(single_byte[i]);
        ASSERT_TRUE(e && strcmp(e->name, single_byte[i]) == 0 && e->sb && !e->refused &&
                        !pgfeed__encoding_is_utf8(e),
                    "%s: found by its own name, single-byte, read", single_byte[i]);
    }
    static const char *const refused[] = {
        "SJIS",   "SHIFT_JIS_2004", "BIG5",   "GBK",    "UHC",    "GB18030",   "JOHAB",
        "EUC_JP", "EUC_JIS_2004",   "EUC_CN", "EUC_KR", "EUC_TW", "SQL_ASCII", "MULE_INTERNAL"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const struct pgfeed_encoding *e = pgfeed__encoding_find(refused[i]);
        ASSERT_TRUE(e && e->refused && e->iconv, "%s: known, refused with a reason", refused[i]);
    }
    ASSERT_TRUE(pgfeed__encoding_is_utf8(NULL) &&
                    pgfeed__encoding_is_utf8(pgfeed__encoding_find("utf8")),
                "NULL and UTF8 are UTF-8");
}

/* The first invalid byte of p[0..n) for encoding name, the buffer ending at a guard page. */
static size_t check(const char *name, const char *p, size_t n)
{
    static char *end; /* one guarded area for every call: its last byte is before the guard */
    if (end == NULL) {
        char zeros[64] = {0};
        end = tap_guard(zeros, sizeof zeros) + sizeof zeros;
    }
    if (n)
        memcpy(end - n, p, n);
    return pgfeed__encoding_check(pgfeed__encoding_find(name), end - n, n);
}

static void checks(void)
{
    int bad = 0;
    for (unsigned c = 0; c < 256; c++) {
        char b = (char)c;
        int win_undefined = c == 0 || c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D;
        bad += check("WIN1252", &b, 1) != (win_undefined ? 0u : 1u);
        bad += check("LATIN1", &b, 1) != (c == 0 ? 0u : 1u);
        bad += check("KOI8R", &b, 1) != (c == 0 ? 0u : 1u);
    }
    ASSERT_EQ_INT(bad, 0,
                  "every byte alone: WIN1252 refuses 00 81 8D 8F 90 9D, LATIN1 and KOI8R 00");
    ASSERT_EQ_INT(check("WIN1252", S("caf\xE9 \x80 \x93q\x94")), 10,
                  "WIN1252: accents, euro, quotes");
    ASSERT_EQ_INT(check("WIN1252", S("ab\x81"
                                     "cd")),
                  2, "WIN1252: 0x81 at 2");
    ASSERT_EQ_INT(check("LATIN1", S("ab\0cd")), 2, "LATIN1: a zero byte at 2");
    ASSERT_EQ_INT(check("LATIN3", S("x\xA5")), 1, "LATIN3: 0xA5 is undefined");
    ASSERT_EQ_INT(check("WIN1252", "", 0), 0, "empty buffer");
    ASSERT_EQ_INT(check("UTF8", S("caf\xC3\xA9 \xE9")), 6, "UTF8 goes to the UTF-8 check");
}

/* The check a byte at a time, for comparison. */
static size_t ref_check(const struct pgfeed_encoding *e, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || (p[i] >= 0x80 && e->sb[p[i] - 0x80] == 0))
            return i;
    return n;
}

/* Random buffers (mostly ASCII; high, undefined and zero bytes here and there) of 0 to 40
 * bytes, each ending at a guard page: the 8-byte path agrees with the byte-wise check. */
static void random_checks(void)
{
    static const char *const names[] = {"WIN1252", "LATIN1", "LATIN3", "ISO_8859_8"};
    uint64_t x = 88172645463325252u;
    long bad = 0, runs = 0;
    for (int r = 0; r < 200000; r++) {
        unsigned char buf[40];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % 41);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned k = (unsigned)(x % 64);
            buf[i] = k < 58   ? (unsigned char)('a' + k % 26)
                     : k < 63 ? (unsigned char)(0x80 + x % 128)
                              : 0;
        }
        const struct pgfeed_encoding *e = pgfeed__encoding_find(names[r % 4]);
        runs++;
        bad += check(e->name, (const char *)buf, n) != ref_check(e, buf, n);
    }
    ASSERT_TRUE(bad == 0, "random buffers: the 8-byte path agrees (%ld runs, %ld differ)", runs,
                bad);
}

static void to_utf8(const char *name, const char *in, size_t n, const char *want, const char *what)
{
    struct pgfeed_buf out = {0};
    int rc = pgfeed__encoding_to_utf8(pgfeed__encoding_find(name), in, n, &out);
    ASSERT_EQ_INT(rc, 0, what);
    ASSERT_EQ_MEM(out.data, out.len, want, strlen(want), what);
    pgfeed__buf_free(&out);
}

static void conversions(void)
{
    to_utf8("WIN1252", S("\x80 \x93q\x94 caf\xE9"),
            "\xE2\x82\xAC \xE2\x80\x9Cq\xE2\x80\x9D caf\xC3\xA9",
            "WIN1252: euro, curly quotes, e acute");
    to_utf8("LATIN1", S("na\xEFve\tS\xE3o"), "na\xC3\xAFve\tS\xC3\xA3o", "LATIN1: two accents");
    to_utf8("KOI8R", S("\xF0\xD2\xC9"), "\xD0\x9F\xD1\x80\xD0\xB8", "KOI8R: Cyrillic");
    to_utf8("WIN1252", S("a\x81z"), "a\xEF\xBF\xBDz", "WIN1252: an undefined byte is U+FFFD");
    to_utf8("UTF8", S("\xC3\xA9"), "\xC3\xA9", "UTF8: copied");
}

static void utf16(void)
{
    ASSERT_EQ_STR(pgfeed__encoding_utf16(S("\xFF\xFEi\0d\0")), "UTF-16LE", "LE byte order mark");
    ASSERT_EQ_STR(pgfeed__encoding_utf16(S("\xFE\xFF\0i\0d")), "UTF-16BE", "BE byte order mark");
    ASSERT_EQ_STR(pgfeed__encoding_utf16(S("i\0d\0")), "UTF-16LE", "LE without a mark");
    ASSERT_EQ_STR(pgfeed__encoding_utf16(S("\0i\0d")), "UTF-16BE", "BE without a mark");
    ASSERT_TRUE(pgfeed__encoding_utf16(S("id\tname")) == NULL, "ASCII is not UTF-16");
    ASSERT_TRUE(pgfeed__encoding_utf16(S("\xEF\xBB\xBFid")) == NULL, "a UTF-8 BOM is not UTF-16");
    ASSERT_TRUE(pgfeed__encoding_utf16(S("\xFF")) == NULL, "one byte is not UTF-16");
    ASSERT_TRUE(pgfeed__encoding_utf16(S("a\0b")) == NULL, "three bytes are not UTF-16");
}

/* Every byte 0x80..0xFF of every single-byte encoding against the server's convert_from. */
static void against_server(void)
{
    const char *db = getenv("PGFEED_TEST_DB");
    if (db == NULL || db[0] == '\0') {
        tap_skip("PGFEED_TEST_DB is not set: tables not compared with the server");
        return;
    }
    PGconn *conn = PQconnectdb(db);
    if (PQstatus(conn) != CONNECTION_OK) {
        ASSERT_TRUE(0, "connect to PGFEED_TEST_DB: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return;
    }
    PQclear(PQexec(conn, "SET client_encoding = 'UTF8'"));
    for (size_t i = 0; i < N_SB; i++) {
        const struct pgfeed_encoding *e = pgfeed__encoding_find(single_byte[i]);
        int differ = 0;
        for (unsigned c = 0x80; c <= 0xFF; c++) {
            char hex[3], b = (char)c;
            snprintf(hex, sizeof hex, "%02x", c);
            const char *params[] = {hex, e->name};
            PGresult *r = PQexecParams(conn, "SELECT convert_from(decode($1, 'hex'), $2)", 2, NULL,
                                       params, NULL, NULL, 0);
            int server_ok = PQresultStatus(r) == PGRES_TUPLES_OK;
            int ours_ok = pgfeed__encoding_check(e, &b, 1) == 1;
            struct pgfeed_buf u = {0};
            pgfeed__encoding_to_utf8(e, &b, 1, &u);
            if (server_ok != ours_ok ||
                (server_ok && (strlen(PQgetvalue(r, 0, 0)) != u.len ||
                               memcmp(PQgetvalue(r, 0, 0), u.data, u.len) != 0))) {
                if (differ++ == 0)
                    tap_note("%s 0x%02x: server %s, pgfeed %s", e->name, c,
                             server_ok ? "converts" : "refuses", ours_ok ? "accepts" : "refuses");
            }
            pgfeed__buf_free(&u);
            PQclear(r);
        }
        ASSERT_EQ_INT(differ, 0, e->name);
    }
    PQfinish(conn);
}

int main(void)
{
    names();
    checks();
    random_checks();
    conversions();
    utf16();
    against_server();
    return tap_done();
}
