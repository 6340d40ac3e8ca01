/*
 * error.c -- error codes, their names and texts, and message helpers.
 *
 * Owns the PGFEED_ERRNO_MAP tables and the small string helpers the stages
 * use to build PostgreSQL-style messages; the job's stored error lives in
 * job.c, which these helpers fill through pgfeed__fail.
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
    return "inflate: ISA-L igzip (zlib for headers and zlib streams)";
#else
    return "inflate: zlib";
#endif
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
    char *o = out;
    for (size_t i = 0; i < take; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\x%02x", c);
        } else if (c >= 0x80) {
            /* Copy a valid UTF-8 sequence; escape a byte that does not start one. */
            size_t len = utf8_len(p + i, take - i);
            if (len == 0) {
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
    if (take < n) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}
