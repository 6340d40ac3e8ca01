/*
 * error.c -- error codes, their names and texts, and message helpers.
 *
 * Owns the PGFEED_ERRNO_MAP tables, the version strings (pgfeed_version,
 * pgfeed_build_info) and the small string helpers the stages use to build
 * PostgreSQL-style messages; the job's stored error lives in the context
 * (ctx.c), which pgfeed__fail fills.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *pgfeed_strerror(int err)
{
    switch (err) {
#define PGFEED_STRERROR_CASE(name, val, desc)                                                      \
    case PGFEED_##name:                                                                            \
        return desc;
        PGFEED_ERRNO_MAP(PGFEED_STRERROR_CASE)
#undef PGFEED_STRERROR_CASE
    case 0:
        return "success";
    default:
        return uv_strerror(err);
    }
}

const char *pgfeed_err_name(int err)
{
    switch (err) {
#define PGFEED_ERRNAME_CASE(name, val, desc)                                                       \
    case PGFEED_##name:                                                                            \
        return "PGFEED_" #name;
        PGFEED_ERRNO_MAP(PGFEED_ERRNAME_CASE)
#undef PGFEED_ERRNAME_CASE
    case 0:
        return "OK";
    default:
        return uv_err_name(err);
    }
}

const char *pgfeed_version(void)
{
    return PGFEED_VERSION_STRING;
}

const char *pgfeed_build_info(void)
{
#ifdef PGFEED_HAVE_ISAL
#define PGFEED_INFLATE "inflate: ISA-L igzip (zlib for headers and zlib streams)"
#else
#define PGFEED_INFLATE "inflate: zlib"
#endif
#ifdef PGFEED_HAVE_ZSTD
#define PGFEED_ZSTD ", zstd: libzstd"
#else
#define PGFEED_ZSTD ", zstd: no"
#endif
#ifdef PGFEED_HAVE_BZIP2
#define PGFEED_BZIP2 ", bzip2: libbz2"
#else
#define PGFEED_BZIP2 ", bzip2: no"
#endif
#ifdef PGFEED_HAVE_XZ
#define PGFEED_XZ ", xz: liblzma"
#else
#define PGFEED_XZ ", xz: no"
#endif
    return PGFEED_INFLATE PGFEED_ZSTD PGFEED_BZIP2 PGFEED_XZ;
}

char *pgfeed__strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* PostgreSQL's copyfrom.c cuts quoted input at 100 bytes (CopyLimitPrintoutLength). */
#define QUOTE_LIMIT 100

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one. */
static size_t utf8_len(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t len;
    unsigned min;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = u[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (u[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * Writes p[0..n) to out, which has room for 4 * n + 1 bytes, with every byte a terminal
 * could act on escaped as \xNN: C0 controls, DEL, the C1 controls U+0080..U+009F and
 * bytes that are not valid UTF-8. quote (input being quoted): a tab is \t and a
 * backslash \\, so that the escapes are unambiguous. Otherwise (a whole message) each
 * run of tabs, CRs and LFs becomes one space (libpq's "...\n\tThis probably means...")
 * and a backslash stays as it is, so that text escaped once comes out unchanged.
 * Returns the length written (out is NUL-terminated).
 */
static size_t escape_into(char *out, const char *p, size_t n, int quote)
{
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!quote && (c == '\t' || c == '\n' || c == '\r')) {
            while (i + 1 < n && (p[i + 1] == '\t' || p[i + 1] == '\n' || p[i + 1] == '\r'))
                i++;
            if (o > out && o[-1] != ' ' && i + 1 < n)
                *o++ = ' ';
        } else if (quote && c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (quote && c == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\x%02x", c);
        } else if (c >= 0x80) {
            /* Copy a valid UTF-8 sequence; escape a byte that does not start one, and C1. */
            size_t len = utf8_len(p + i, n - i);
            if (len == 0 || (c == 0xC2 && (unsigned char)p[i + 1] < 0xA0)) {
                o += sprintf(o, "\\x%02x", c);
            } else {
                memcpy(o, p + i, len);
                o += len;
                i += len - 1;
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

char *pgfeed__quote_input(const char *p, size_t n)
{
    size_t take = n > QUOTE_LIMIT ? QUOTE_LIMIT : n;
    /* Do not cut a UTF-8 sequence in half. */
    if (take < n)
        while (take > 0 && ((unsigned char)p[take] & 0xC0) == 0x80)
            take--;
    char *out = malloc(take * 4 + 4);
    if (out == NULL)
        return NULL;
    size_t len = escape_into(out, p, take, 1);
    if (take < n)
        memcpy(out + len, "...", 4);
    return out;
}

char *pgfeed__escape_text(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 4 + 1);
    if (out == NULL)
        return NULL;
    escape_into(out, s, n, 0);
    return out;
}

size_t pgfeed__utf8_len(const char *p, size_t n)
{
    return utf8_len(p, n);
}
