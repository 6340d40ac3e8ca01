/*
 * source_http.c -- the http:// and https:// source stage: its easy handle and options,
 * the stage ops (start, resume, stop, destroy) and the body's delivery downstream.
 *
 * Leaves the shared transfer context (struct pgfeed_http: one CURLM on libuv, its
 * sockets and timer) to http_multi.c, judging each response and the validators to
 * http_response.c, and the attempts (Range, how a transfer ended, retries, the
 * deferred unpause) to http_retry.c; decompression to the decoder (bytes are passed
 * on exactly as the server sent them) and deciding when to pause to the stages
 * downstream: a write that answers EAGAIN pauses the transfer, the resume op unpauses
 * it from our own timer tick. file:// URLs go to source_file.c.
 *
 * Owns, per source, one easy handle and one uv_timer_t (deferred unpause and retry
 * backoff), and a private transfer context when the job shares none.
 *
 * Buffers: none of our own. libcurl hands over at most CURL_MAX_WRITE_SIZE
 * (16 KiB) per write callback and keeps a refused chunk until we unpause.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

static struct http_source *src_of(struct pgfeed_stage *s)
{
    return container_of(s, struct http_source, base);
}

/* ---- write callback: all or nothing, EAGAIN becomes a pause ---- */

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_source *src = arg;
    struct pgfeed_ctx *ctx = src->base.ctx;
    size_t n = size * nmemb;

    src->offers++;
    if (src->stopped || src->aborted ||
        (src->state != SRC_RUNNING && src->state != SRC_DONE_PAUSED))
        return 0;
    if (!src->hdr_ok)
        return n; /* not the final response's body (never expected: libcurl skips them) */
    if (src->range_done)
        return n;
    /*
     * Discard what was already delivered. State changes only once the rest is
     * accepted: a paused chunk comes again from the same position.
     */
    size_t k = src->skip < n ? (size_t)src->skip : n;
    if (n - k > 0) {
        struct pgfeed_stage *next = src->base.next;
        int rc = next->ops->write(next, p + k, n - k);
        if (rc == PGFEED_EAGAIN) {
            src->paused = 1;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (rc < 0) {
            /* The job's error is set (we may be stopped already); end without another report. */
            src->state = SRC_FAILED;
            src->aborted = 1;
            return 0;
        }
        src->delivered += n - k;
        pgfeed__ctx_stats(ctx)->bytes_read += n - k;
    }
    src->skip -= k;
    return n;
}

/* ---- stage ops ---- */

static void http_resume(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    if (src->stopped)
        return;
    if (src->state == SRC_FINISHING) {
        struct pgfeed_stage *next = s->next;
        int rc = next->ops->finish(next);
        if (rc == 0)
            src->state = SRC_FINISHED;
        else if (rc != PGFEED_EAGAIN)
            src->state = SRC_FAILED;
        return;
    }
    /* Never unpause here: curl_easy_pause may call write_cb before returning. */
    if ((src->state == SRC_RUNNING || src->state == SRC_DONE_PAUSED) && src->paused)
        uv_timer_start(&src->timer, pgfeed__http_tick_cb, 0, 0);
}

static void own_h_closed_cb(pgfeed_http_t *h)
{
    struct http_source *src = pgfeed__http_owner(h);
    uv_close((uv_handle_t *)&src->timer, pgfeed__ctx_close_cb);
}

/* The easy handle is out of the multi: let go of the context and close our timer. */
static void src_detach(struct http_source *src)
{
    struct pgfeed_http *h = src->h;
    if (!src->started || src->xfer.attached)
        return;
    src->started = 0;
    if (src->own_h) {
        /* Our timer closes after the private context; the job counted it in stop. */
        pgfeed__http_user_done(h);
        pgfeed_http_close(h, own_h_closed_cb);
    } else {
        uv_close((uv_handle_t *)&src->timer, pgfeed__ctx_close_cb);
        pgfeed__http_user_done(h);
    }
}

/* The removed_cb of our http_xfer: a removal queued by stop is done. */
static void xfer_removed_cb(struct http_xfer *x)
{
    struct http_source *src = container_of(x, struct http_source, xfer);
    if (src->stopped)
        src_detach(src);
}

static void http_stop(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    if (src->stopped)
        return;
    src->stopped = 1;
    src->aborted = 1;
    if (!src->started)
        return;
    uv_timer_stop(&src->timer);
    pgfeed__ctx_handle_closing(s->ctx); /* our timer; closed by src_detach */
    pgfeed__http_remove(src->h, &src->xfer);
    if (!src->xfer.attached)
        src_detach(src);
    /* else: queued; pgfeed__http_after removes it and detaches once libcurl returns. */
}

static void http_destroy(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    if (src->xfer.easy)
        curl_easy_cleanup(src->xfer.easy);
    curl_slist_free_all(src->headers);
    pgfeed__http_reset_response(src);
    free(src->etag);
    free(src->last_modified);
    free(src->url);
    free(src->shown);
    free(src);
}

static int http_start(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    struct pgfeed_ctx *ctx = s->ctx;
    if (src->stopped)
        return PGFEED_ECANCELED;
    if (src->state != SRC_IDLE)
        return UV_EINVAL;
    if (src->h == NULL) {
        int rc = pgfeed_http_new(pgfeed__ctx_loop(ctx), &src->h);
        if (rc != 0)
            return pgfeed__fail(ctx, "source", rc, NULL, NULL,
                                "could not set up the HTTP transfer context: %s",
                                pgfeed_strerror(rc));
        src->own_h = 1;
        pgfeed__http_set_owner(src->h, src);
    }
    uv_timer_init(pgfeed__ctx_loop(ctx), &src->timer);
    src->timer.data = ctx; /* pgfeed__ctx_close_cb finds the job there */
    src->started = 1;
    pgfeed__http_user_add(src->h);
    pgfeed__http_start_attempt(src);
    if (src->state == SRC_FAILED) {
        int code = ctx->err.pub.code;
        return code ? code : PGFEED_EINTERNAL;
    }
    return 0;
}

static const struct pgfeed_stage_ops http_ops = {
    .name = "source",
    .write = NULL,
    .finish = NULL,
    .resume = http_resume,
    .stop = http_stop,
    .destroy = http_destroy,
    .start = http_start,
    .end_batch = NULL,
    .seek = pgfeed__http_seek,
    .validators = pgfeed__http_validators,
};

/* ---- construction ---- */

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode setopt_rc_ = curl_easy_setopt(src->xfer.easy, opt, val);                          \
        if (setopt_rc_ != CURLE_OK)                                                                \
            return pgfeed__http_setopt_fail(src, setopt_rc_, #opt);                                \
    } while (0)

/*
 * Removing or cleaning up a handle whose lookup is still running (a cancel, or libcurl's
 * own connect timeout inside curl_multi_socket_action) would otherwise join the threaded
 * resolver's thread and stall the loop until getaddrinfo gives up. A libcurl older than
 * 7.87 does not know the option: it then waits, as it always did.
 */
static int set_quick_exit(struct http_source *src)
{
    CURLcode rc = curl_easy_setopt(src->xfer.easy, CURLOPT_QUICK_EXIT, 1L);
    if (rc != CURLE_OK && rc != CURLE_UNKNOWN_OPTION)
        return pgfeed__http_setopt_fail(src, rc, "CURLOPT_QUICK_EXIT");
    return 0;
}

/* The options every request of this source shares (the Range is set per attempt). */
static int set_options(struct http_source *src, const struct pgfeed_options *opt)
{
    char ua[64];
    snprintf(ua, sizeof ua, "pgfeed/%s", PGFEED_VERSION_STRING);
    SETOPT(CURLOPT_URL, src->url);
    SETOPT(CURLOPT_PRIVATE, (void *)&src->xfer);
    SETOPT(CURLOPT_ERRORBUFFER, src->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    if (set_quick_exit(src) != 0)
        return PGFEED_EINTERNAL;
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Read the socket in the pipeline's chunk size, not curl's 16 KiB default: 8x fewer
     * recv calls and write callbacks (the decoder takes a write of any size). */
    SETOPT(CURLOPT_BUFFERSIZE, (long)(opt->chunk_size > 0 ? opt->chunk_size : 128u * 1024));
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, (void *)src);
    SETOPT(CURLOPT_HEADERFUNCTION, pgfeed__http_header_cb);
    SETOPT(CURLOPT_HEADERDATA, (void *)src);
    SETOPT(CURLOPT_USERAGENT, ua);
    /* HTTP/2 keeps receiving into a paused stream's window; 1.1 stops at the socket. */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
    /* Bytes pass through as sent: decoder sniffs gzip; a decoding libcurl holds inflated chunks. */
    SETOPT(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SETOPT(CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    SETOPT(CURLOPT_FAILONERROR, 0L); /* statuses are judged in pgfeed__http_header_cb */
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    if (opt->connect_timeout_s > 0)
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(opt->connect_timeout_s * 1000.0));
    if (opt->low_speed_time_s > 0) {
        /* Paused transfers are exempt from this check (lib/speedcheck.c). */
        SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(CURLOPT_LOW_SPEED_TIME, (long)(opt->low_speed_time_s + 0.5));
    }
    if (opt->insecure) {
        SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (opt->ca_file)
        SETOPT(CURLOPT_CAINFO, opt->ca_file);
    if (opt->ca_path)
        SETOPT(CURLOPT_CAPATH, opt->ca_path);
    /* Proxies: libcurl reads http_proxy, https_proxy and no_proxy itself. Credentials
     * that are not in the URL come from ~/.netrc when it has the host (so that no password
     * needs to be on the command line); a password in the URL wins. */
    SETOPT(CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
    return 0;
}

/*
 * file:// URLs go to source_file.c: libcurl's file protocol reads the whole
 * file inside one libcurl call and cannot pause, so it would block the loop
 * and defeat backpressure. Only an empty host or "localhost" is local.
 */
static int file_url_new(struct pgfeed_ctx *ctx, const char *url, struct pgfeed_stage **out)
{
    char *path = NULL;
    int rc = pgfeed__url_file_path(ctx, url, &path);
    if (rc == 0)
        rc = pgfeed__source_file_new(ctx, path, -1, out);
    free(path);
    return rc;
}

int pgfeed__source_http_new(struct pgfeed_ctx *ctx, const char *url, struct pgfeed_http *shared,
                            struct pgfeed_stage **out)
{
    int rc;
    *out = NULL;
    if (strncasecmp(url, "file:", 5) == 0)
        return file_url_new(ctx, url, out);
    struct http_source *src = calloc(1, sizeof *src);
    if (src == NULL)
        return UV_ENOMEM;
    src->base.ops = &http_ops;
    src->base.ctx = ctx;
    src->h = shared;
    src->state = SRC_IDLE;
    src->length = -1;
    src->total = -1;
    src->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)src;
    src->url = strdup(url);
    src->shown = pgfeed__url_strip_credentials(url);
    src->xfer.easy = curl_easy_init();
    src->xfer.done_cb = pgfeed__http_transfer_done;
    src->xfer.removed_cb = xfer_removed_cb;
    if (src->url == NULL || src->shown == NULL || src->xfer.easy == NULL) {
        rc = UV_ENOMEM;
        pgfeed__fail(ctx, "source", rc, NULL, NULL, "out of memory");
        goto fail;
    }
    rc = set_options(src, pgfeed__ctx_options(ctx));
    if (rc != 0)
        goto fail;
    *out = &src->base;
    return 0;

fail:
    if (src->xfer.easy)
        curl_easy_cleanup(src->xfer.easy);
    free(src->url);
    free(src->shown);
    free(src);
    return rc;
}
