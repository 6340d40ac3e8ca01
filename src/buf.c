/*
 * buf.c -- the growable byte buffer every stage uses for its own bytes.
 *
 * Owns nothing but the array; a buffer grows geometrically and never shrinks
 * until freed, so steady-state operation allocates nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int pgfeed__buf_reserve(struct pgfeed_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    if (need < b->len)
        return UV_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return UV_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return UV_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pgfeed__buf_append(struct pgfeed_buf *b, const void *p, size_t n)
{
    int rc = pgfeed__buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void pgfeed__buf_free(struct pgfeed_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Shared by the text and binary row encoders (encode_copy.c, encode_binary.c). */
size_t pgfeed__count_fields(const char *p, const char *end, char delim)
{
    size_t n = 1;
    while ((p = memchr(p, delim, (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}
