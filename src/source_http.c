/*
 * source_http.c -- http:// and https:// sources on libcurl's multi interface.
 *
 * Owns the shared transfer context (struct pgfeed_http: one CURLM, one
 * uv_timer_t for libcurl's timeout, one uv_poll_t per socket libcurl asks us
 * to watch) and, per ctx, one easy handle and one uv_timer_t (deferred
 * unpause and retry backoff). Leaves decompression to the decoder (bytes are
 * passed on exactly as the server sent them) and deciding when to pause to
 * the stages downstream: a write that answers EAGAIN pauses the transfer,
 * the resume op unpauses it from our own timer tick.
 *
 * Buffers: none of our own. libcurl hands over at most CURL_MAX_WRITE_SIZE
 * (16 KiB) per write callback and keeps a refused chunk until we unpause.
 *
 * Exactly-once delivery: `delivered` counts the bytes the decoder accepted.
 * A retry asks for Range: bytes=<delivered>- guarded by If-Range; a 206 must
 * start at <delivered>; a 200 (Range ignored, or If-Range mismatch) is read
 * again from byte 0 and its first <delivered> bytes are discarded, but only
 * when its validators (ETag, Last-Modified, length) match the first response.
 *
 * Source states: IDLE -> RUNNING (easy in the multi; maybe paused) ->
 *   BACKOFF (easy out, timer armed) -> RUNNING ... -> FINISHING (body complete,
 *   the decoder's finish answered EAGAIN) -> FINISHED; or FAILED. `stopped` is
 *   set (whatever the state) once the stop op ran. DONE_PAUSED: libcurl 7.88 may report a transfer
 * done while its last chunk is still held for a paused write; we unpause once more before judging
 * the transfer.
 *
 * Re-entrancy: libcurl forbids calling the multi API from its callbacks, and
 * pgfeed__fail() stops the job (and so calls our stop op) synchronously, even
 * from inside a write or header callback. So every call into libcurl is
 * bracketed by in_curl++/--; a removal requested while in_curl > 0 is queued
 * and done by http_after() once the outermost libcurl call has returned.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "internal.h"

/*
 * First retry after about RETRY_BASE_MS, doubling, +-25 % jitter, at most
 * RETRY_MAX_MS. Short enough for tests; a proposed option could override it.
 */
#define RETRY_BASE_MS 200
#define RETRY_MAX_MS  30000
#define MAX_REDIRECTS 10

/* ------------------------------------------------ shared transfer context */

struct http_sock {
    uv_poll_t poll;
    struct pgfeed_http *h;
    curl_socket_t fd;
    int closing;
    struct http_sock *next, *prev; /* h->socks: open and closing */
};

struct http_source;

struct pgfeed_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;        /* libcurl's single timeout */
    struct http_sock *socks; /* every poll context not yet freed */
    unsigned handles;        /* uv handles not yet closed: timer + socks */
    unsigned users;          /* sources attached (started, not yet stopped) */
    int in_curl;             /* depth of calls into libcurl on the stack */
    int in_after;            /* http_after() is running */
    int close_requested;
    int closing;
    struct http_source *pending; /* sources whose easy handle awaits removal */
    void (*close_cb)(pgfeed_http_t *h);
    struct http_source *owner; /* private context: the source that made it */
};

static void http_after(struct pgfeed_http *h);
static void http_begin_close(struct pgfeed_http *h);

static void http_maybe_closed(struct pgfeed_http *h)
{
    if (!h->closing || h->handles != 0)
        return;
    void (*cb)(pgfeed_http_t *) = h->close_cb;
    if (cb)
        cb(h);
    free(h);
}

static void sock_close_cb(uv_handle_t *handle)
{
    struct http_sock *c = container_of((uv_poll_t *)handle, struct http_sock, poll);
    struct pgfeed_http *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->socks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    h->handles--;
    http_maybe_closed(h);
}

static void sock_close(struct http_sock *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, sock_close_cb);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct http_sock *c = container_of(p, struct http_sock, poll);
    struct pgfeed_http *h = c->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR; /* libuv stopped polling it; libcurl decides what next */
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    if (h->closing)
        return;
    int running;
    h->in_curl++;
    curl_multi_socket_action(h->multi, c->fd, flags, &running);
    h->in_curl--;
    http_after(h);
}

/* CURLMOPT_SOCKETFUNCTION: only uv calls here, never libcurl's (bar curl_multi_assign). */
static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct pgfeed_http *h = userp;
    struct http_sock *c = socketp;
    if (what == CURL_POLL_REMOVE || h->closing) {
        /* REMOVE may come late, after the fd was closed: uv_poll_stop tolerates that. */
        if (c) {
            if (!h->closing)
                curl_multi_assign(h->multi, fd, NULL);
            sock_close(c);
        }
        return 0;
    }
    if (c == NULL) {
        /*
         * A context still open for the same fd number means libcurl closed
         * that socket without telling us (late REMOVE) and the number came
         * back: retire the stale one first, libuv allows one poll per fd.
         */
        for (struct http_sock *o = h->socks; o; o = o->next)
            if (!o->closing && o->fd == fd)
                sock_close(o);
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &c->poll, fd) != 0) {
            free(c);
            return -1;
        }
        c->h = h;
        c->fd = fd;
        c->next = h->socks;
        if (h->socks)
            h->socks->prev = c;
        h->socks = c;
        h->handles++;
        curl_multi_assign(h->multi, fd, c);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (uv_poll_start(&c->poll, events, poll_cb) != 0)
        return -1;
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct pgfeed_http *h = container_of(t, struct pgfeed_http, timer);
    if (h->closing)
        return;
    int running;
    h->in_curl++;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    h->in_curl--;
    http_after(h);
}

/* CURLMOPT_TIMERFUNCTION: one timer, replaced on each call; 0 means "soon", never now. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    struct pgfeed_http *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

int pgfeed_http_new(uv_loop_t *loop, pgfeed_http_t **out)
{
    *out = NULL;
    if (loop == NULL)
        return UV_EINVAL;
    struct pgfeed_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return UV_ENOMEM;
    h->loop = loop;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return PGFEED_EINTERNAL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(loop, &h->timer);
    h->handles = 1;
    *out = h;
    return 0;
}

static void http_timer_close_cb(uv_handle_t *handle)
{
    struct pgfeed_http *h = container_of((uv_timer_t *)handle, struct pgfeed_http, timer);
    h->handles--;
    http_maybe_closed(h);
}

/* All users are gone and nothing is in libcurl: tear down. Completes in close callbacks. */
static void http_begin_close(struct pgfeed_http *h)
{
    if (h->closing)
        return;
    h->closing = 1;
    uv_timer_stop(&h->timer);
    /* cleanup may still call socket_fn (pooled connections); it only closes polls now. */
    h->in_curl++;
    curl_multi_cleanup(h->multi);
    h->in_curl--;
    h->multi = NULL;
    for (struct http_sock *c = h->socks; c; c = c->next)
        sock_close(c);
    uv_close((uv_handle_t *)&h->timer, http_timer_close_cb);
}

void pgfeed_http_close(pgfeed_http_t *h, void (*close_cb)(pgfeed_http_t *h))
{
    if (h == NULL || h->close_requested)
        return;
    h->close_requested = 1;
    h->close_cb = close_cb;
    if (h->users == 0 && h->in_curl == 0 && !h->in_after)
        http_begin_close(h);
}

/* -------------------------------------------------------------- the source */

enum src_state {
    SRC_IDLE,
    SRC_RUNNING,
    SRC_DONE_PAUSED,
    SRC_BACKOFF,
    SRC_FINISHING,
    SRC_FINISHED,
    SRC_FAILED
};

struct http_source {
    struct pgfeed_stage base;
    struct pgfeed_http *h;
    int own_h;   /* h is private: closed with the source */
    int started; /* timer initialised, attached to h */
    int stopped; /* the stop op ran: nothing more goes downstream */
    enum src_state state;
    CURL *easy;
    int attached; /* easy is in h->multi */
    int removing; /* queued on h->pending */
    struct http_source *next_pending;
    int close_counted; /* stop registered our timer with the job */
    uv_timer_t timer;  /* deferred unpause (0 ms) or retry backoff; data = job */
    char *url;         /* as given: used for requests */
    char *shown;       /* without user:password@: used in messages */
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char range[32];

    /* Whole download. */
    uint64_t delivered; /* bytes the decoder accepted: the next byte to deliver */
    int retries_used;
    uint64_t rng;
    char *etag, *last_modified; /* validators of the first response */
    int64_t length;             /* full length from the first response, or -1 */
    int have_first;             /* the fields above are set */
    uint64_t seek_offset;       /* where the seek op told us to begin */
    struct pgfeed_validators v; /* what the validators op hands out */

    /* Current attempt. */
    uint64_t req_start;     /* Range start asked for (0: no Range) */
    uint64_t skip;          /* bytes still to discard (200 after a Range request) */
    uint64_t attempt_start; /* delivered when this attempt began */
    int hdr_ok;             /* the final response was checked; body goes downstream */
    int range_done;         /* 416 for a complete file: ignore the body */
    int paused;             /* the last write returned CURL_WRITEFUNC_PAUSE */
    uint64_t offers;        /* write callbacks so far */
    int aborted;            /* our callback returned an error on purpose */
    CURLcode done_rc;       /* result held in SRC_DONE_PAUSED */
    long retry_status;      /* transient HTTP status seen, or 0 */
    long retry_after_ms;    /* Retry-After of that response, or -1 */
    int64_t total;          /* full length as the current response tells it, or -1 */

    /* Current response's headers (reset at each status line). */
    long status;
    char reason[64];
    char *cur_etag, *cur_lm;
    char cur_encoding[32];
    int64_t cur_clen;
    int64_t cr_start, cr_total;
    int cur_location;
    long cur_retry_after_ms;
};

static struct http_source *src_of(struct pgfeed_stage *s)
{
    return container_of(s, struct http_source, base);
}

static void start_attempt(struct http_source *src);
static void src_detach(struct http_source *src);
static void src_transfer_done(struct http_source *src, CURLcode rc);
static void src_complete(struct http_source *src, CURLcode rc);

/* ---- small helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: per-source state, no global PRNG */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t backoff_ms(struct http_source *src, int k)
{
    double d = RETRY_BASE_MS;
    for (int i = 0; i < k && d < RETRY_MAX_MS; i++)
        d *= 2;
    if (d > RETRY_MAX_MS)
        d = RETRY_MAX_MS;
    double u = (double)(rng_next(&src->rng) >> 11) / 9007199254740992.0; /* [0,1) */
    d *= 0.75 + 0.5 * u;
    if (src->retry_after_ms > d)
        d = src->retry_after_ms > RETRY_MAX_MS ? RETRY_MAX_MS : (double)src->retry_after_ms;
    return (uint64_t)d;
}

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

static void reset_response(struct http_source *src)
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

/* ---- failing ---- */

static void src_fail(struct http_source *src, int code, const char *detail, const char *hint,
                     const char *what)
{
    src->state = SRC_FAILED;
    src->aborted = 1;
    pgfeed__fail(src->base.ctx, "source", code, detail, hint, "%s", what);
}

/* The source changed: bytes already imported cannot be mixed with the new version. */
static void fail_changed(struct http_source *src, const char *why)
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

/* ---- header callback: checks each final response before its body is accepted ---- */

/* Returns 1 when the body may be delivered, 0 to abort the transfer. */
static int check_response(struct http_source *src)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    long st = src->status;
    char buf[512];

    if (transient_status(st)) {
        /* Abort now rather than read an error body; the done handler retries. */
        src->retry_status = st;
        src->retry_after_ms = src->cur_retry_after_ms;
        src->aborted = 1;
        return 0;
    }
    if (st != 200 && st != 206 && !(st == 416 && src->req_start > 0)) {
        char *msg = pgfeed__strdup_printf("cannot download \"%s\": HTTP status %ld%s%s%s",
                                          src->shown, st, src->reason[0] ? " (" : "", src->reason,
                                          src->reason[0] ? ")" : "");
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
        if (curl_easy_getinfo(src->easy, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff) {
            char *e = pgfeed__url_strip_credentials(eff);
            if (e && strcmp(e, src->shown) != 0)
                detail = pgfeed__strdup_printf("The request was redirected to \"%s\".", e);
            free(e);
        }
        src_fail(src, PGFEED_EHTTP, detail, hint, msg ? msg : "HTTP error");
        free(msg);
        free(detail);
        return 0;
    }
    if (src->cur_encoding[0] && strcasecmp(src->cur_encoding, "identity") != 0 &&
        strcasecmp(src->cur_encoding, "gzip") != 0 &&
        strcasecmp(src->cur_encoding, "x-gzip") != 0 &&
        strcasecmp(src->cur_encoding, "deflate") != 0) {
        char *msg =
            pgfeed__strdup_printf("cannot download \"%s\": unsupported Content-Encoding \"%s\"",
                                  src->shown, src->cur_encoding);
        src_fail(src, PGFEED_EHTTP, "Only gzip and deflate encodings can be decoded.", NULL,
                 msg ? msg : "unsupported Content-Encoding");
        free(msg);
        return 0;
    }

    if (st == 416) {
        /* We asked for bytes from req_start on and there are none: complete, or shrunk. */
        int64_t full = src->cr_total >= 0 ? src->cr_total : src->length;
        if (src->length >= 0 && full == src->length && (uint64_t)full == src->req_start) {
            src->range_done = 1;
            src->total = full;
            src->hdr_ok = 1;
            return 1;
        }
        fail_changed(src, "The server has no bytes past the ones already read.");
        return 0;
    }

    int64_t full = -1;
    if (st == 206) {
        if (src->req_start == 0) {
            snprintf(buf, sizeof buf, "cannot download \"%s\": unexpected partial response",
                     src->shown);
            src_fail(src, PGFEED_EHTTP, "The server answered 206 to a request without Range.", NULL,
                     buf);
            return 0;
        }
        if (src->cr_start < 0 || (uint64_t)src->cr_start != src->req_start) {
            char *detail =
                pgfeed__strdup_printf("Asked for bytes from %" PRIu64
                                      " on, the server sent a range starting at %" PRId64 ".",
                                      src->req_start, src->cr_start);
            snprintf(buf, sizeof buf, "cannot resume the download of \"%s\"", src->shown);
            src_fail(src, PGFEED_EHTTP, detail, NULL, buf);
            free(detail);
            return 0;
        }
        full = src->cr_total >= 0
                   ? src->cr_total
                   : (src->cur_clen >= 0 ? (int64_t)src->req_start + src->cur_clen : -1);
    } else {
        full = src->cur_clen;
    }

    if (src->delivered > 0 && src->have_first) {
        if (!same_str(src->etag, src->cur_etag)) {
            snprintf(buf, sizeof buf, "Its ETag was %.100s and is now %.100s.", src->etag,
                     src->cur_etag);
            fail_changed(src, buf);
            return 0;
        }
        if (!same_str(src->last_modified, src->cur_lm)) {
            snprintf(buf, sizeof buf, "It was last modified %.60s and is now %.60s.",
                     src->last_modified, src->cur_lm);
            fail_changed(src, buf);
            return 0;
        }
        if (src->length >= 0 && full >= 0 && full != src->length) {
            snprintf(buf, sizeof buf, "Its length was %" PRId64 " bytes and is now %" PRId64 ".",
                     src->length, full);
            fail_changed(src, buf);
            return 0;
        }
    }
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
    if (st == 200 && src->delivered > 0) {
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
    return 1;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_source *src = arg;
    size_t n = size * nmemb;
    const char *v;
    size_t vn;

    if (src->stopped || src->state != SRC_RUNNING || src->aborted)
        return 0;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        reset_response(src);
        const char *q = memchr(p, ' ', n);
        if (q) {
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
    return n;
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

/* ---- attempts, retries and completion ---- */

static int set_fail(struct http_source *src, CURLcode rc, const char *what)
{
    char buf[256];
    snprintf(buf, sizeof buf, "could not set up the download of \"%s\"", src->shown);
    char *detail = pgfeed__strdup_printf("libcurl: %s: %s.", what, curl_easy_strerror(rc));
    src_fail(src, PGFEED_EINTERNAL, detail, NULL, buf);
    free(detail);
    return PGFEED_EINTERNAL;
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
    reset_response(src);

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
    if (hl == NULL)
        return UV_ENOMEM;
    if (src->req_start > 0) {
        snprintf(src->range, sizeof src->range, "%" PRIu64 "-", src->req_start);
        /* If-Range needs a strong ETag (RFC 9110 13.1.5), else the exact date. */
        char *ir = NULL;
        if (src->etag && strncmp(src->etag, "W/", 2) != 0)
            ir = pgfeed__strdup_printf("If-Range: %s", src->etag);
        else if (src->last_modified)
            ir = pgfeed__strdup_printf("If-Range: %s", src->last_modified);
        if (ir) {
            struct curl_slist *t = curl_slist_append(hl, ir);
            free(ir);
            if (t == NULL) {
                curl_slist_free_all(hl);
                return UV_ENOMEM;
            }
            hl = t;
        }
    }
    CURLcode rc = curl_easy_setopt(src->easy, CURLOPT_HTTPHEADER, hl);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(src->easy, CURLOPT_RANGE, src->req_start > 0 ? src->range : NULL);
    curl_slist_free_all(src->headers);
    src->headers = hl;
    if (rc != CURLE_OK)
        return set_fail(src, rc, "CURLOPT_RANGE");
    return 0;
}

static void start_attempt(struct http_source *src)
{
    struct pgfeed_http *h = src->h;
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
    h->in_curl++;
    CURLMcode mc = curl_multi_add_handle(h->multi, src->easy);
    h->in_curl--;
    if (mc != CURLM_OK) {
        char buf[256];
        snprintf(buf, sizeof buf, "could not start the download of \"%s\"", src->shown);
        char *detail = pgfeed__strdup_printf("libcurl: %s.", curl_multi_strerror(mc));
        src_fail(src, PGFEED_EINTERNAL, detail, NULL, buf);
        free(detail);
        return;
    }
    src->attached = 1;
    http_after(h);
}

/* Takes the easy handle out of the multi now, or once libcurl has returned. */
static void src_remove_easy(struct http_source *src)
{
    struct pgfeed_http *h = src->h;
    if (!src->attached || src->removing)
        return;
    if (h->in_curl > 0) {
        src->removing = 1;
        src->next_pending = h->pending;
        h->pending = src;
        return;
    }
    h->in_curl++;
    curl_multi_remove_handle(h->multi, src->easy);
    h->in_curl--;
    src->attached = 0;
}

static void timer_tick_cb(uv_timer_t *t);

static void schedule_retry(struct http_source *src, const char *why)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    const struct pgfeed_options *opt = pgfeed__ctx_options(ctx);
    if (src->delivered > src->attempt_start)
        src->retries_used = 0; /* progress was made: the budget counts failures in a row */
    int max = opt->retries > 0 ? opt->retries : 0;
    if (src->retries_used >= max) {
        char *msg = pgfeed__strdup_printf("could not download \"%s\": %s", src->shown, why);
        char *detail = NULL;
        if (max > 0)
            detail = pgfeed__strdup_printf("Gave up after %d %s, %" PRIu64 " bytes imported.", max,
                                           max == 1 ? "retry" : "retries", src->delivered);
        src_fail(src, PGFEED_EHTTP, detail,
                 max > 0 ? "Try again later, or raise --retries." : "Raise --retries to retry.",
                 msg ? msg : why);
        free(msg);
        free(detail);
        return;
    }
    uint64_t ms = backoff_ms(src, src->retries_used);
    src->retries_used++;
    pgfeed__ctx_stats(ctx)->retries++; /* one count for every retry, download or database */
    pgfeed__log(ctx, PGFEED_LOG_WARNING,
                "could not download \"%s\": %s; retry %d of %d in %.1f s from byte %" PRIu64,
                src->shown, why, src->retries_used, max, (double)ms / 1000.0, src->delivered);
    src->state = SRC_BACKOFF;
    uv_timer_start(&src->timer, timer_tick_cb, ms, 0);
}

/* The transfer ended (CURLMSG_DONE, or a judged DONE_PAUSED); the easy handle is out. */
static void src_complete(struct http_source *src, CURLcode rc)
{
    struct pgfeed_ctx *ctx = src->base.ctx;
    char why[CURL_ERROR_SIZE + 128];
    const char *hint = NULL;
    int transient = 0;

    if (src->stopped || src->state == SRC_FAILED)
        return;
    if (rc == CURLE_OK) {
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
            fail_changed(src, "It is now shorter than the part already imported.");
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
        return;
    }
    if (src->retry_status) {
        snprintf(why, sizeof why, "HTTP status %ld%s%s%s", src->retry_status,
                 src->reason[0] ? " (" : "", src->reason, src->reason[0] ? ")" : "");
        schedule_retry(src, why);
        return;
    }
    const char *eb = src->errbuf[0] ? src->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_PARTIAL_FILE:
        if (src->total >= 0)
            snprintf(why, sizeof why,
                     "the connection closed after %" PRIu64 " of %" PRId64 " bytes", src->delivered,
                     src->total);
        else
            snprintf(why, sizeof why, "the connection closed before the end of the body");
        transient = 1;
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(why, sizeof why, "connection lost (%s)", eb);
        transient = 1;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(why, sizeof why, "timed out (%s)", eb);
        transient = 1;
        break;
    case CURLE_COULDNT_CONNECT:
        /* Fails fast on the first attempt (contract); a reconnect after a drop may be a restart. */
        snprintf(why, sizeof why, "could not connect to the server (%s)", eb);
        transient = src->delivered > 0 || src->retries_used > 0;
        hint = "Check that the server is running and accepts connections on that port.";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(why, sizeof why, "could not resolve the host name (%s)", eb);
        hint = "Check the host name in the URL and the DNS or proxy settings.";
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(why, sizeof why, "could not resolve the proxy (%s)", eb);
        hint = "Check the proxy environment variables (http_proxy, https_proxy, no_proxy).";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(why, sizeof why, "TLS certificate verification failed (%s)", eb);
        hint = "Give the CA that signed the server's certificate with --ca-file or --ca-path, "
               "or skip verification with --insecure.";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(why, sizeof why, "TLS handshake failed (%s)", eb);
        break;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(why, sizeof why, "more than %d redirects", MAX_REDIRECTS);
        hint = "The server is probably redirecting in a loop.";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(why, sizeof why, "unsupported protocol (%s)", eb);
        hint = "Use an http:// or https:// URL; redirects may only lead to http or https.";
        break;
    case CURLE_FILE_COULDNT_READ_FILE:
        snprintf(why, sizeof why, "%s", eb);
        break;
    default:
        snprintf(why, sizeof why, "%s", eb);
        break;
    }
    if (transient) {
        schedule_retry(src, why);
        return;
    }
    char *msg = pgfeed__strdup_printf("could not download \"%s\": %s", src->shown, why);
    src_fail(src, PGFEED_EHTTP, NULL, hint, msg ? msg : why);
    free(msg);
}

/* CURLMSG_DONE for our easy handle (called from http_after, not inside libcurl). */
static void src_transfer_done(struct http_source *src, CURLcode rc)
{
    if (src->stopped || src->state != SRC_RUNNING) {
        src_remove_easy(src);
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
    src_remove_easy(src);
    src_complete(src, rc);
}

/* Our timer: the deferred unpause, or the end of a backoff. */
static void timer_tick_cb(uv_timer_t *t)
{
    struct http_source *src = container_of(t, struct http_source, timer);
    struct pgfeed_http *h = src->h;
    if (src->stopped)
        return;
    if (src->state == SRC_BACKOFF) {
        start_attempt(src);
        return;
    }
    if ((src->state != SRC_RUNNING && src->state != SRC_DONE_PAUSED) || !src->paused)
        return;
    src->paused = 0;
    uint64_t offers = src->offers;
    h->in_curl++;
    CURLcode rc = curl_easy_pause(src->easy, CURLPAUSE_CONT); /* may call write_cb */
    h->in_curl--;
    if (rc != CURLE_OK && !src->stopped && src->state == SRC_RUNNING && !src->aborted) {
        /* The held chunk was not delivered: what we have is exact, so reconnect from there. */
        src_remove_easy(src);
        http_after(h);
        if (!src->stopped && src->state == SRC_RUNNING) {
            char why[128];
            snprintf(why, sizeof why, "could not resume the paused transfer (%s)",
                     curl_easy_strerror(rc));
            schedule_retry(src, why);
        }
        return;
    }
    if (!src->stopped && src->state == SRC_DONE_PAUSED && !src->paused) {
        src_remove_easy(src);
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
    http_after(h);
}

/* Runs queued removals and reads finished transfers; only when no libcurl call is on the stack. */
static void http_after(struct pgfeed_http *h)
{
    if (h->in_curl > 0 || h->in_after)
        return;
    h->in_after = 1;
    for (;;) {
        if (h->pending) {
            struct http_source *src = h->pending;
            h->pending = src->next_pending;
            src->removing = 0;
            src_remove_easy(src);
            if (src->stopped)
                src_detach(src);
            continue;
        }
        CURLMsg *m;
        int left;
        if (h->closing || h->multi == NULL || (m = curl_multi_info_read(h->multi, &left)) == NULL)
            break;
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        if (priv)
            src_transfer_done((struct http_source *)(void *)priv, rc);
    }
    h->in_after = 0;
    if (h->close_requested && h->users == 0 && !h->closing)
        http_begin_close(h);
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
        uv_timer_start(&src->timer, timer_tick_cb, 0, 0);
}

static void own_h_closed_cb(pgfeed_http_t *h)
{
    struct http_source *src = h->owner;
    uv_close((uv_handle_t *)&src->timer, pgfeed__ctx_close_cb);
}

/* The easy handle is out of the multi: let go of the context and close our timer. */
static void src_detach(struct http_source *src)
{
    struct pgfeed_http *h = src->h;
    if (!src->started || src->attached)
        return;
    src->started = 0;
    h->users--;
    if (src->own_h) {
        /* Our timer closes after the private context; the job counted it in stop. */
        pgfeed_http_close(h, own_h_closed_cb);
    } else {
        uv_close((uv_handle_t *)&src->timer, pgfeed__ctx_close_cb);
        if (h->close_requested && h->users == 0 && h->in_curl == 0 && !h->in_after)
            http_begin_close(h);
    }
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
    src_remove_easy(src);
    if (!src->attached)
        src_detach(src);
    /* else: queued; http_after removes it and detaches once libcurl returns. */
}

static void http_destroy(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    if (src->easy)
        curl_easy_cleanup(src->easy);
    curl_slist_free_all(src->headers);
    reset_response(src);
    free(src->etag);
    free(src->last_modified);
    free(src->url);
    free(src->shown);
    free(src);
}

/* Before start: begin at raw_offset of a source whose earlier version had these validators. */
static int http_seek(struct pgfeed_stage *s, uint64_t raw_offset,
                     const struct pgfeed_validators *expect)
{
    struct http_source *src = src_of(s);
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
static const struct pgfeed_validators *http_validators(struct pgfeed_stage *s)
{
    struct http_source *src = src_of(s);
    if (!src->have_first)
        return NULL;
    src->v.etag = src->etag && strncmp(src->etag, "W/", 2) != 0 ? src->etag : NULL;
    src->v.last_modified = src->last_modified;
    src->v.size = src->length;
    return &src->v;
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
        src->h->owner = src;
    }
    uv_timer_init(pgfeed__ctx_loop(ctx), &src->timer);
    src->timer.data = ctx; /* pgfeed__ctx_close_cb finds the job there */
    src->started = 1;
    src->h->users++;
    start_attempt(src);
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
    .seek = http_seek,
    .validators = http_validators,
};

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode setopt_rc_ = curl_easy_setopt(src->easy, opt, val);                               \
        if (setopt_rc_ != CURLE_OK) {                                                              \
            rc = set_fail(src, setopt_rc_, #opt);                                                  \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

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
    const struct pgfeed_options *opt = pgfeed__ctx_options(ctx);
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
    src->easy = curl_easy_init();
    if (src->url == NULL || src->shown == NULL || src->easy == NULL) {
        rc = UV_ENOMEM;
        pgfeed__fail(ctx, "source", rc, NULL, NULL, "out of memory");
        goto fail;
    }

    char ua[64];
    snprintf(ua, sizeof ua, "pgfeed/%s", PGFEED_VERSION_STRING);
    SETOPT(CURLOPT_URL, src->url);
    SETOPT(CURLOPT_PRIVATE, (void *)src);
    SETOPT(CURLOPT_ERRORBUFFER, src->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Read the socket in the pipeline's chunk size, not curl's 16 KiB default: 8x fewer
     * recv calls and write callbacks (the decoder takes a write of any size). */
    SETOPT(CURLOPT_BUFFERSIZE,
           (long)(pgfeed__ctx_options(ctx)->chunk_size > 0 ? pgfeed__ctx_options(ctx)->chunk_size
                                                           : 128u * 1024));
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, (void *)src);
    SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(CURLOPT_HEADERDATA, (void *)src);
    SETOPT(CURLOPT_USERAGENT, ua);
    /* HTTP/2 keeps receiving into a paused stream's window; 1.1 stops at the socket. */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    /* Bytes pass through as sent: decoder sniffs gzip; a decoding libcurl holds inflated chunks. */
    SETOPT(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SETOPT(CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    SETOPT(CURLOPT_FAILONERROR, 0L); /* statuses are judged in header_cb */
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

    *out = &src->base;
    return 0;

fail:
    if (src->easy)
        curl_easy_cleanup(src->easy);
    free(src->url);
    free(src->shown);
    free(src);
    return rc;
}
