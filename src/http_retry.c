/*
 * http_retry.c -- the http source's attempts, one after another: setting each request
 * up (Range and If-Range from the first undelivered byte), judging how a transfer ended,
 * retrying a dropped one after a backoff (--retries failures in a row) and the
 * deferred unpause, which shares the source's timer with the backoff.
 *
 * Leaves judging each response to http_response.c, the body to source_http.c and the
 * multi (adds, removals, pauses inside libcurl) to http_multi.c.
 *
 * A transfer ends in CURLMSG_DONE (pgfeed__http_transfer_done): complete, or a failure
 * that is retried (a transient status, a dropped or stalled connection, a body cut short)
 * or final. DONE_PAUSED is judged on the next unpause: the held chunk came (complete) or
 * libcurl lost it (retried from the exact byte delivered).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/*
 * First retry after about RETRY_BASE_MS, doubling, +-25 % jitter, at most
 * RETRY_MAX_MS. Short enough for tests; a proposed option could override it.
 */
#define RETRY_BASE_MS 200
#define RETRY_MAX_MS  30000

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: per-source state, no global PRNG */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The limit applies before the jitter (up to 37.5 s); a longer Retry-After is cut to it. */
static uint64_t backoff_ms(struct http_source *src, int k)
{
    double u = (double)(rng_next(&src->rng) >> 11) / 9007199254740992.0; /* [0,1) */
    double d =
        pgfeed__backoff((unsigned)k, RETRY_BASE_MS, RETRY_MAX_MS, u, PGFEED_BACKOFF_LIMIT_BASE);
    if (src->retry_after_ms > d)
        d = src->retry_after_ms > RETRY_MAX_MS ? RETRY_MAX_MS : (double)src->retry_after_ms;
    return (uint64_t)d;
}

/* ---- attempts ---- */

int pgfeed__http_setopt_fail(struct http_source *src, CURLcode rc, const char *what)
{
    char buf[256];
    snprintf(buf, sizeof buf, "could not set up the download of \"%s\"", src->shown);
    char *detail = pgfeed__strdup_printf("libcurl: %s: %s.", what, curl_easy_strerror(rc));
    src_fail(src, PGFEED_EINTERNAL, detail, NULL, buf);
    free(detail);
    return PGFEED_EINTERNAL;
}

/* The request's headers: Accept-Encoding, and If-Range with a Range. NULL: ENOMEM. */
static struct curl_slist *attempt_headers(struct http_source *src)
{
    /*
     * Accept-Encoding: identity. Byte offsets (Range, the skip after a 200,
     * checkpoints) must refer to a representation that is the same on every
     * request. A server compressing on the fly for "Accept-Encoding: gzip"
     * sends a new encoding each time, usually with a weak ETag and no Range
     * support, so a retry could neither resume nor check what it skips.
     * Stored .gz files come as they are either way; an object stored with
     * Content-Encoding: gzip (S3) still arrives encoded, and since content
     * decoding is off it reaches the decoder, which sniffs the gzip magic.
     * The cost: a plain .tsv is never compressed on the wire.
     */
    struct curl_slist *hl = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (hl == NULL || src->req_start == 0)
        return hl;
    snprintf(src->range, sizeof src->range, "%" PRIu64 "-", src->req_start);
    /* If-Range needs a strong ETag (RFC 9110 13.1.5), else the exact date. */
    char *ir = NULL;
    if (src->etag && strncmp(src->etag, "W/", 2) != 0)
        ir = pgfeed__strdup_printf("If-Range: %s", src->etag);
    else if (src->last_modified)
        ir = pgfeed__strdup_printf("If-Range: %s", src->last_modified);
    if (ir == NULL)
        return hl;
    struct curl_slist *t = curl_slist_append(hl, ir);
    free(ir);
    if (t == NULL)
        curl_slist_free_all(hl);
    return t;
}

static int configure_attempt(struct http_source *src)
{
    src->req_start = src->delivered;
    src->attempt_start = src->delivered;
    src->skip = 0;
    src->hdr_ok = 0;
    src->range_done = 0;
    src->paused = 0;
    src->aborted = 0;
    src->retry_status = 0;
    src->retry_after_ms = -1;
    src->total = -1;
    src->errbuf[0] = '\0';
    pgfeed__http_reset_response(src);

    struct curl_slist *hl = attempt_headers(src);
    if (hl == NULL)
        return UV_ENOMEM;
    CURL *easy = src->xfer.easy;
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hl);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_RANGE, src->req_start > 0 ? src->range : NULL);
    curl_slist_free_all(src->headers);
    src->headers = hl;
    if (rc != CURLE_OK)
        return pgfeed__http_setopt_fail(src, rc, "CURLOPT_RANGE");
    return 0;
}

void pgfeed__http_start_attempt(struct http_source *src)
{
    int rc = configure_attempt(src);
    if (rc != 0) {
        if (src->state != SRC_FAILED)
            src_fail(src, rc, NULL, NULL, "out of memory");
        return;
    }
    if (src->req_start > 0)
        pgfeed__log(src->base.ctx, PGFEED_LOG_DEBUG, "GET %s (Range: bytes=%s)", src->shown,
                    src->range);
    else
        pgfeed__log(src->base.ctx, PGFEED_LOG_DEBUG, "GET %s", src->shown);
    src->state = SRC_RUNNING;
    CURLMcode mc = pgfeed__http_add(src->h, &src->xfer);
    if (mc != CURLM_OK) {
        char buf[256];
        snprintf(buf, sizeof buf, "could not start the download of \"%s\"", src->shown);
        char *detail = pgfeed__strdup_printf("libcurl: %s.", curl_multi_strerror(mc));
        src_fail(src, PGFEED_EINTERNAL, detail, NULL, buf);
        free(detail);
    }
}

/* ---- retries ---- */

/*
 * The detail of a download given up on. It counts every retry of the download, as
 * stats.retries does, and, when an attempt that brought new bytes restarted the --retries
 * budget (failures in a row), how many retries came after the last such attempt.
 */
static char *give_up_detail(const struct http_source *src)
{
    if (src->retries_made > src->retries_used)
        return pgfeed__strdup_printf(
            "Gave up after %d retries (the last %d brought no new bytes), %" PRIu64
            " bytes imported.",
            src->retries_made, src->retries_used, src->delivered);
    return pgfeed__strdup_printf("Gave up after %d %s, %" PRIu64 " bytes imported.",
                                 src->retries_made, src->retries_made == 1 ? "retry" : "retries",
                                 src->delivered);
}

static void give_up(struct http_source *src, const char *why)
{
    char *msg = pgfeed__strdup_printf("could not download \"%s\": %s", src->shown, why);
    char *detail = src->retries_made > 0 ? give_up_detail(src) : NULL;
    src_fail(src, PGFEED_EHTTP, detail,
             src->retries_made > 0 ? "Try again later, or raise --retries."
                                   : "Raise --retries to retry.",
             msg ? msg : why);
    free(msg);
    free(detail);
}

static void schedule_retry(struct http_source *src, const char *why)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    const struct pgfeed_options *opt = pgfeed__ctx_options(ctx);
    if (src->delivered > src->attempt_start)
        src->retries_used = 0; /* progress was made: the budget counts failures in a row */
    int max = opt->retries > 0 ? opt->retries : 0;
    if (src->retries_used >= max) {
        give_up(src, why);
        return;
    }
    uint64_t ms = backoff_ms(src, src->retries_used);
    src->retries_used++;
    src->retries_made++;
    pgfeed__ctx_stats(ctx)->retries++; /* one count for every retry, download or database */
    pgfeed__log(ctx, PGFEED_LOG_WARNING,
                "could not download \"%s\": %s; retry %d of %d in %.1f s from byte %" PRIu64,
                src->shown, why, src->retries_used, max, (double)ms / 1000.0, src->delivered);
    src->state = SRC_BACKOFF;
    uv_timer_start(&src->timer, pgfeed__http_tick_cb, ms, 0);
}

/* ---- how a transfer ended ---- */

/* libcurl's CURLE_OK: the whole body delivered (finish downstream), or a retry. */
static void complete_ok(struct http_source *src)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    char why[128];
    if (!src->hdr_ok) {
        /* e.g. a 3xx that libcurl did not follow: never take an empty body for a file */
        char *msg = pgfeed__strdup_printf("cannot download \"%s\": HTTP status %ld%s%s%s",
                                          src->shown, src->status, src->reason[0] ? " (" : "",
                                          src->reason, src->reason[0] ? ")" : "");
        src_fail(src, PGFEED_EHTTP, "The response carried no file.", NULL,
                 msg ? msg : "HTTP error");
        free(msg);
        return;
    }
    if (src->skip > 0) {
        pgfeed__http_fail_changed(src, "It is now shorter than the part already imported.");
        return;
    }
    if (src->total >= 0 && src->delivered < (uint64_t)src->total) {
        /* Only after a pause lost the chunk libcurl held for us (7.88). */
        snprintf(why, sizeof why, "the body ended after %" PRIu64 " of %" PRId64 " bytes",
                 src->delivered, src->total);
        schedule_retry(src, why);
        return;
    }
    src->state = SRC_FINISHING;
    pgfeed__log(ctx, PGFEED_LOG_DEBUG, "downloaded %" PRIu64 " bytes from %s", src->delivered,
                src->shown);
    struct pgfeed_stage *next = src->base.next;
    int frc = next->ops->finish(next);
    if (frc == 0)
        src->state = SRC_FINISHED;
    else if (frc != PGFEED_EAGAIN)
        src->state = SRC_FAILED; /* error already set downstream */
}

/*
 * What went wrong, in why (the message's end), with a hint or NULL in *hint.
 * Returns 1 when a retry may help.
 */
static int describe_failure(struct http_source *src, CURLcode rc, char *why, size_t cap,
                            const char **hint)
{
    const char *eb = src->errbuf[0] ? src->errbuf : curl_easy_strerror(rc);
    *hint = NULL;
    switch (rc) {
    case CURLE_PARTIAL_FILE:
        if (src->total >= 0)
            snprintf(why, cap, "the connection closed after %" PRIu64 " of %" PRId64 " bytes",
                     src->delivered, src->total);
        else
            snprintf(why, cap, "the connection closed before the end of the body");
        return 1;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(why, cap, "connection lost (%s)", eb);
        return 1;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(why, cap, "timed out (%s)", eb);
        return 1;
    case CURLE_COULDNT_CONNECT:
        /* Fails fast on the first attempt (contract); a reconnect after a drop may be a restart. */
        snprintf(why, cap, "could not connect to the server (%s)", eb);
        *hint = "Check that the server is running and accepts connections on that port.";
        return src->delivered > 0 || src->retries_used > 0;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(why, cap, "could not resolve the host name (%s)", eb);
        *hint = "Check the host name in the URL and the DNS or proxy settings.";
        return 0;
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(why, cap, "could not resolve the proxy (%s)", eb);
        *hint = "Check the proxy environment variables (http_proxy, https_proxy, no_proxy).";
        return 0;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(why, cap, "TLS certificate verification failed (%s)", eb);
        *hint = "Give the CA that signed the server's certificate with --ca-file or --ca-path, "
                "or skip verification with --insecure.";
        return 0;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(why, cap, "TLS handshake failed (%s)", eb);
        return 0;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(why, cap, "more than %d redirects", HTTP_MAX_REDIRECTS);
        *hint = "The server is probably redirecting in a loop.";
        return 0;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(why, cap, "unsupported protocol (%s)", eb);
        *hint = "Use an http:// or https:// URL; redirects may only lead to http or https.";
        return 0;
    default:
        snprintf(why, cap, "%s", eb);
        return 0;
    }
}

/* The transfer ended (CURLMSG_DONE, or a judged DONE_PAUSED); the easy handle is out. */
static void src_complete(struct http_source *src, CURLcode rc)
{
    char why[CURL_ERROR_SIZE + 128];
    const char *hint = NULL;

    if (src->stopped || src->state == SRC_FAILED)
        return;
    if (rc == CURLE_OK) {
        complete_ok(src);
        return;
    }
    if (src->retry_status) {
        snprintf(why, sizeof why, "HTTP status %ld%s%s%s", src->retry_status,
                 src->reason[0] ? " (" : "", src->reason, src->reason[0] ? ")" : "");
        schedule_retry(src, why);
        return;
    }
    if (describe_failure(src, rc, why, sizeof why, &hint)) {
        schedule_retry(src, why);
        return;
    }
    char *msg = pgfeed__strdup_printf("could not download \"%s\": %s", src->shown, why);
    src_fail(src, PGFEED_EHTTP, NULL, hint, msg ? msg : why);
    free(msg);
}

void pgfeed__http_transfer_done(struct http_xfer *x, CURLcode rc)
{
    struct http_source *src = container_of(x, struct http_source, xfer);
    if (src->stopped || src->state != SRC_RUNNING) {
        pgfeed__http_remove(src->h, x);
        return;
    }
    if (rc == CURLE_OK && src->paused) {
        /* libcurl 7.88 can finish a transfer whose last chunk it still holds for us. */
        src->state = SRC_DONE_PAUSED;
        src->done_rc = rc;
        pgfeed__log(src->base.ctx, PGFEED_LOG_DEBUG,
                    "transfer finished while paused: delivering its last chunk on resume");
        return;
    }
    pgfeed__http_remove(src->h, x);
    src_complete(src, rc);
}

/* ---- the deferred unpause ---- */

/* curl_easy_pause failed: the held chunk was not delivered; what we have is exact, so
 * reconnect from there. */
static void unpause_failed(struct http_source *src, CURLcode rc)
{
    pgfeed__http_remove(src->h, &src->xfer);
    pgfeed__http_after(src->h);
    if (!src->stopped && src->state == SRC_RUNNING) {
        char why[128];
        snprintf(why, sizeof why, "could not resume the paused transfer (%s)",
                 curl_easy_strerror(rc));
        schedule_retry(src, why);
    }
}

/* DONE_PAUSED, unpaused: the held chunk came (offers moved on) or libcurl dropped it. */
static void judge_done_paused(struct http_source *src, uint64_t offers)
{
    pgfeed__http_remove(src->h, &src->xfer);
    src->state = SRC_RUNNING;
    if (src->offers == offers) {
        /* The held chunk is gone: what we have is exact, fetch the rest. */
        pgfeed__log(src->base.ctx, PGFEED_LOG_DEBUG,
                    "libcurl finished the transfer without the chunk it held for us");
        schedule_retry(src, "the transfer ended while paused");
    } else {
        src_complete(src, src->done_rc);
    }
}

void pgfeed__http_tick_cb(uv_timer_t *t)
{
    struct http_source *src = container_of(t, struct http_source, timer);
    if (src->stopped)
        return;
    if (src->state == SRC_BACKOFF) {
        pgfeed__http_start_attempt(src);
        return;
    }
    if ((src->state != SRC_RUNNING && src->state != SRC_DONE_PAUSED) || !src->paused)
        return;
    src->paused = 0;
    uint64_t offers = src->offers;
    CURLcode rc = pgfeed__http_unpause(src->h, &src->xfer); /* may call the write callback */
    if (rc != CURLE_OK && !src->stopped && src->state == SRC_RUNNING && !src->aborted) {
        unpause_failed(src, rc);
        return;
    }
    if (!src->stopped && src->state == SRC_DONE_PAUSED && !src->paused)
        judge_done_paused(src, offers);
    pgfeed__http_after(src->h);
}
