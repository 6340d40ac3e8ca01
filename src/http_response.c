/*
 * http_response.c -- each response of the http source: reading its status line and the
 * headers we need, then judging it once its headers end, before its body is accepted
 * (status, Content-Encoding, Content-Range against the Range asked for, and the
 * validators: ETag, Last-Modified and length must match the first response's); and the
 * validators in and out (the seek and validators ops).
 *
 * Leaves the request and what to do after a refused response to http_retry.c (a
 * transient status only marks the attempt for a retry here), and the body to
 * source_http.c.
 *
 * Exactly-once delivery: `delivered` counts the bytes the decoder accepted.
 * A retry asks for Range: bytes=<delivered>- guarded by If-Range; a 206 must
 * start at <delivered>; a 200 (Range ignored, or If-Range mismatch) is read
 * again from byte 0 and its first <delivered> bytes are discarded, but only
 * when its validators (ETag, Last-Modified, length) match the first response.
 *
 * Buffers: the current response's ETag and Last-Modified (malloc'd, reset at each
 * status line), its reason phrase (64 bytes) and Content-Encoding (32 bytes), cut.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

static int transient_status(long st)
{
    return st == 408 || st == 429 || (st >= 500 && st <= 599 && st != 501);
}

/* Matches "Name:" case-insensitively; on success v and vn hold the trimmed value. */
static int header_is(const char *line, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return 0;
    const char *p = line + k + 1, *e = line + n;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *v = p;
    *vn = (size_t)(e - p);
    return 1;
}

static int64_t parse_i64(const char *p, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL || strcmp(a, b) == 0;
}

void pgfeed__http_reset_response(struct http_source *src)
{
    src->status = 0;
    src->reason[0] = '\0';
    free(src->cur_etag);
    free(src->cur_lm);
    src->cur_etag = src->cur_lm = NULL;
    src->cur_encoding[0] = '\0';
    src->cur_clen = -1;
    src->cr_start = src->cr_total = -1;
    src->cur_location = 0;
    src->cur_retry_after_ms = -1;
}

void pgfeed__http_fail_changed(struct http_source *src, const char *why)
{
    char *msg = pgfeed__strdup_printf(src->delivered == src->seek_offset && src->seek_offset > 0
                                          ? "the source \"%s\" changed since the interrupted import"
                                          : "the source \"%s\" changed during the download",
                                      src->shown);
    char *detail = pgfeed__strdup_printf(
        "%s %" PRIu64 " bytes of the old version were already imported and cannot be mixed with "
        "the new one.",
        why, src->delivered);
    src_fail(src, PGFEED_ECHANGED, detail,
             "Run the import again from the start (with --restart or --truncate as needed).",
             msg ? msg : "the source changed during the download");
    free(msg);
    free(detail);
}

/* ---- judging a final response once its headers ended ---- */

/* A status that carries no file: fails with it, its hint and where a redirect led. */
static void refuse_status(struct http_source *src, long st)
{
    char *msg =
        pgfeed__strdup_printf("cannot download \"%s\": HTTP status %ld%s%s%s", src->shown, st,
                              src->reason[0] ? " (" : "", src->reason, src->reason[0] ? ")" : "");
    const char *hint = NULL;
    if (st == 401 || st == 403)
        hint =
            "Check the credentials (in the URL or in ~/.netrc) and the access rights for this URL.";
    else if (st == 404 || st == 410)
        hint = "Check the URL.";
    else if (st >= 300 && st < 400)
        hint = "The server sent a redirect without a Location header.";
    char *eff = NULL;
    char *detail = NULL;
    if (curl_easy_getinfo(src->xfer.easy, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff) {
        char *e = pgfeed__url_strip_credentials(eff);
        if (e && strcmp(e, src->shown) != 0)
            detail = pgfeed__strdup_printf("The request was redirected to \"%s\".", e);
        free(e);
    }
    src_fail(src, PGFEED_EHTTP, detail, hint, msg ? msg : "HTTP error");
    free(msg);
    free(detail);
}

/* Returns 1 (and fails the source) for a Content-Encoding the decoder cannot undo. */
static int refuse_encoding(struct http_source *src)
{
    if (!src->cur_encoding[0] || strcasecmp(src->cur_encoding, "identity") == 0 ||
        strcasecmp(src->cur_encoding, "gzip") == 0 ||
        strcasecmp(src->cur_encoding, "x-gzip") == 0 ||
        strcasecmp(src->cur_encoding, "deflate") == 0)
        return 0;
    char *msg = pgfeed__strdup_printf("cannot download \"%s\": unsupported Content-Encoding \"%s\"",
                                      src->shown, src->cur_encoding);
    src_fail(src, PGFEED_EHTTP, "Only gzip and deflate encodings can be decoded.", NULL,
             msg ? msg : "unsupported Content-Encoding");
    free(msg);
    return 1;
}

/* A 416 to our Range: the file was complete (1, its body is ignored), or it shrank (0). */
static int judge_416(struct http_source *src)
{
    /* We asked for bytes from req_start on and there are none: complete, or shrunk. */
    int64_t full = src->cr_total >= 0 ? src->cr_total : src->length;
    if (src->length >= 0 && full == src->length && (uint64_t)full == src->req_start) {
        src->range_done = 1;
        src->total = full;
        src->hdr_ok = 1;
        return 1;
    }
    pgfeed__http_fail_changed(src, "The server has no bytes past the ones already read.");
    return 0;
}

/* A 206 must answer our Range from its start: the full length in *full (or -1), or 0. */
static int partial_length(struct http_source *src, int64_t *full)
{
    char buf[512];
    if (src->req_start == 0) {
        snprintf(buf, sizeof buf, "cannot download \"%s\": unexpected partial response",
                 src->shown);
        src_fail(src, PGFEED_EHTTP, "The server answered 206 to a request without Range.", NULL,
                 buf);
        return 0;
    }
    if (src->cr_start < 0 || (uint64_t)src->cr_start != src->req_start) {
        char *detail = pgfeed__strdup_printf(
            "Asked for bytes from %" PRIu64 " on, the server sent a range starting at %" PRId64 ".",
            src->req_start, src->cr_start);
        snprintf(buf, sizeof buf, "cannot resume the download of \"%s\"", src->shown);
        src_fail(src, PGFEED_EHTTP, detail, NULL, buf);
        free(detail);
        return 0;
    }
    *full = src->cr_total >= 0
                ? src->cr_total
                : (src->cur_clen >= 0 ? (int64_t)src->req_start + src->cur_clen : -1);
    return 1;
}

/* With bytes delivered: the validators (and full length) must be the first response's. */
static int check_unchanged(struct http_source *src, int64_t full)
{
    char buf[512];
    if (!same_str(src->etag, src->cur_etag)) {
        snprintf(buf, sizeof buf, "Its ETag was %.100s and is now %.100s.", src->etag,
                 src->cur_etag);
        pgfeed__http_fail_changed(src, buf);
        return 0;
    }
    if (!same_str(src->last_modified, src->cur_lm)) {
        snprintf(buf, sizeof buf, "It was last modified %.60s and is now %.60s.",
                 src->last_modified, src->cur_lm);
        pgfeed__http_fail_changed(src, buf);
        return 0;
    }
    if (src->length >= 0 && full >= 0 && full != src->length) {
        snprintf(buf, sizeof buf, "Its length was %" PRId64 " bytes and is now %" PRId64 ".",
                 src->length, full);
        pgfeed__http_fail_changed(src, buf);
        return 0;
    }
    return 1;
}

/* The response is accepted: keep the first one's validators, plan the skip of a 200. */
static void accept_response(struct http_source *src, int64_t full)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    if (src->delivered > 0 && ((!src->etag && !src->last_modified && src->length < 0) ||
                               (!src->cur_etag && !src->cur_lm && full < 0)))
        pgfeed__log(ctx, PGFEED_LOG_INFO,
                    "\"%s\" has no ETag, Last-Modified or length: cannot check that it is "
                    "unchanged",
                    src->shown);
    if (src->delivered == 0 || !src->have_first) {
        /* Nothing delivered yet (or resumed without validators): this response defines the source.
         */
        free(src->etag);
        free(src->last_modified);
        src->etag = src->cur_etag;
        src->last_modified = src->cur_lm;
        src->cur_etag = src->cur_lm = NULL;
        src->length = full;
        src->have_first = 1;
    }
    if (src->status == 200 && src->delivered > 0) {
        pgfeed__log(ctx, PGFEED_LOG_INFO,
                    "the server ignored the Range request: reading \"%s\" again and skipping "
                    "the %" PRIu64 " bytes already imported",
                    src->shown, src->delivered);
        src->skip = src->delivered;
    }
    src->total = full;
    if (full >= 0)
        pgfeed__ctx_stats(ctx)->bytes_total = full;
    src->hdr_ok = 1;
}

/* Returns 1 when the body may be delivered, 0 to abort the transfer. */
static int check_response(struct http_source *src)
{
    long st = src->status;

    if (transient_status(st)) {
        /* Abort now rather than read an error body; the done handler retries. */
        src->retry_status = st;
        src->retry_after_ms = src->cur_retry_after_ms;
        src->aborted = 1;
        return 0;
    }
    if (st != 200 && st != 206 && !(st == 416 && src->req_start > 0)) {
        refuse_status(src, st);
        return 0;
    }
    if (refuse_encoding(src))
        return 0;
    if (st == 416)
        return judge_416(src);

    int64_t full = src->cur_clen;
    if (st == 206 && !partial_length(src, &full))
        return 0;
    if (src->delivered > 0 && src->have_first && !check_unchanged(src, full))
        return 0;
    accept_response(src, full);
    return 1;
}

/* ---- header callback: checks each final response before its body is accepted ---- */

/* "HTTP/1.1 206 Partial Content": a new response begins. */
static void read_status_line(struct http_source *src, const char *p, size_t n)
{
    pgfeed__http_reset_response(src);
    const char *q = memchr(p, ' ', n);
    if (q == NULL)
        return;
    const char *e = p + n;
    q++;
    src->status = strtol(q, NULL, 10);
    while (q < e && isdigit((unsigned char)*q))
        q++;
    while (q < e && *q == ' ')
        q++;
    size_t rn = 0;
    while (q + rn < e && q[rn] != '\r' && q[rn] != '\n' && rn < sizeof src->reason - 1)
        rn++;
    memcpy(src->reason, q, rn);
    src->reason[rn] = '\0';
}

/* One header line of the current response: keeps the fields the judgement needs. */
static void read_header(struct http_source *src, const char *p, size_t n)
{
    const char *v;
    size_t vn;
    if (header_is(p, n, "ETag", &v, &vn)) {
        free(src->cur_etag);
        src->cur_etag = pgfeed__strdup_printf("%.*s", (int)vn, v);
    } else if (header_is(p, n, "Last-Modified", &v, &vn)) {
        free(src->cur_lm);
        src->cur_lm = pgfeed__strdup_printf("%.*s", (int)vn, v);
    } else if (header_is(p, n, "Content-Length", &v, &vn)) {
        src->cur_clen = parse_i64(v, vn);
    } else if (header_is(p, n, "Content-Encoding", &v, &vn)) {
        snprintf(src->cur_encoding, sizeof src->cur_encoding, "%.*s", (int)vn, v);
    } else if (header_is(p, n, "Location", &v, &vn)) {
        src->cur_location = vn > 0;
    } else if (header_is(p, n, "Retry-After", &v, &vn)) {
        int64_t s = parse_i64(v, vn);
        src->cur_retry_after_ms = s >= 0 && s < 3600 ? (long)s * 1000 : -1;
    } else if (header_is(p, n, "Content-Range", &v, &vn)) {
        /* bytes START-END/TOTAL, or bytes * /TOTAL with a 416 */
        if (vn > 6 && strncasecmp(v, "bytes ", 6) == 0) {
            const char *s = v + 6, *e = v + vn;
            const char *dash = memchr(s, '-', (size_t)(e - s));
            const char *slash = memchr(s, '/', (size_t)(e - s));
            if (dash && (!slash || dash < slash))
                src->cr_start = parse_i64(s, (size_t)(dash - s));
            if (slash)
                src->cr_total = parse_i64(slash + 1, (size_t)(e - slash - 1));
        }
    }
}

size_t pgfeed__http_header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_source *src = arg;
    size_t n = size * nmemb;

    if (src->stopped || src->state != SRC_RUNNING || src->aborted)
        return 0;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        read_status_line(src, p, n);
        return n;
    }
    if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        /* End of this response's headers. */
        if (src->status < 200)
            return n; /* 1xx */
        if (src->status >= 300 && src->status < 400 && src->cur_location)
            return n; /* libcurl follows it and skips its body */
        return check_response(src) ? n : 0;
    }
    read_header(src, p, n);
    return n;
}

/* ---- the validators in (seek) and out ---- */

/* Before start: begin at raw_offset of a source whose earlier version had these validators. */
int pgfeed__http_seek(struct pgfeed_stage *s, uint64_t raw_offset,
                      const struct pgfeed_validators *expect)
{
    struct http_source *src = container_of(s, struct http_source, base);
    if (src->state != SRC_IDLE || src->started)
        return UV_EINVAL;
    src->delivered = raw_offset;
    src->seek_offset = raw_offset;
    free(src->etag);
    free(src->last_modified);
    src->etag = src->last_modified = NULL;
    src->length = -1;
    src->have_first = 0;
    if (expect) {
        if (expect->etag && expect->etag[0] && (src->etag = strdup(expect->etag)) == NULL)
            return UV_ENOMEM;
        if (expect->last_modified && expect->last_modified[0] &&
            (src->last_modified = strdup(expect->last_modified)) == NULL)
            return UV_ENOMEM;
        src->length = expect->size;
        src->have_first = src->etag || src->last_modified || src->length >= 0;
    }
    return 0;
}

/* The first response's validators (a weak ETag is left out), or NULL before it arrived. */
const struct pgfeed_validators *pgfeed__http_validators(struct pgfeed_stage *s)
{
    struct http_source *src = container_of(s, struct http_source, base);
    if (!src->have_first)
        return NULL;
    src->v.etag = src->etag && strncmp(src->etag, "W/", 2) != 0 ? src->etag : NULL;
    src->v.last_modified = src->last_modified;
    src->v.size = src->length;
    return &src->v;
}
