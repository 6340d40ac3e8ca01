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
#define PGFEED_STRERROR_CASE(name, val, desc)                                                     \
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
#define PGFEED_ERRNAME_CASE(name, val, desc)                                                      \
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
