/*
 * http_internal.h -- what the http source's files share: one easy handle as the shared
 * transfer context sees it (struct http_xfer), the source (struct http_source) and its
 * states. Private to source_http.c (the stage: options, ops, the body's delivery),
 * http_multi.c (libcurl's multi on libuv: sockets, timer, adds and removals),
 * http_response.c (each response's status and headers, the validators) and http_retry.c
 * (one attempt after another: Range, how a transfer ended, retries, the deferred
 * unpause). Nothing else includes it.
 *
 * Calls go one way, down this list: source_http.c, http_retry.c, http_response.c,
 * http_multi.c (which reaches a source only through the callbacks in its http_xfer).
 */
#ifndef PGFEED_HTTP_INTERNAL_H
#define PGFEED_HTTP_INTERNAL_H

#include <curl/curl.h>

#include "internal.h"

#define HTTP_MAX_REDIRECTS 10

/* ---- http_multi.c: the shared transfer context (struct pgfeed_http) ---- */

/* One easy handle in (or out of) the context's multi. */
struct http_xfer {
    CURL *easy;   /* its CURLOPT_PRIVATE is this struct */
    int attached; /* easy is in the multi */
    int removing; /* queued on the context's pending list */
    struct http_xfer *next_pending;
    /* CURLMSG_DONE, called from pgfeed__http_after (never inside libcurl). */
    void (*done_cb)(struct http_xfer *x, CURLcode rc);
    /* A removal queued while libcurl was on the stack has been done. */
    void (*removed_cb)(struct http_xfer *x);
};

/*
 * Adds x's easy handle to the multi. On success x is attached and finished transfers
 * are read at once (pgfeed__http_after); otherwise libcurl's code is returned.
 */
CURLMcode pgfeed__http_add(struct pgfeed_http *h, struct http_xfer *x);
/* Takes x's easy handle out of the multi now or, while a libcurl call is on the stack,
 * queues it: pgfeed__http_after removes it later and calls x->removed_cb. */
void pgfeed__http_remove(struct pgfeed_http *h, struct http_xfer *x);
/* curl_easy_pause(CURLPAUSE_CONT), which may call the write callback before it returns. */
CURLcode pgfeed__http_unpause(struct pgfeed_http *h, struct http_xfer *x);
/* Runs queued removals and reads finished transfers, only when no libcurl call is on
 * the stack; then begins a requested close once no user is left. */
void pgfeed__http_after(struct pgfeed_http *h);
/* A source attached to the context (started), or gone (its easy handle is out). */
void pgfeed__http_user_add(struct pgfeed_http *h);
void pgfeed__http_user_done(struct pgfeed_http *h);
/* A private context's source, for its close callback. */
void pgfeed__http_set_owner(struct pgfeed_http *h, void *owner);
void *pgfeed__http_owner(const struct pgfeed_http *h);

/* ---- the source ---- */

/*
 * Source states: IDLE -> RUNNING (easy in the multi; maybe paused) ->
 *   BACKOFF (easy out, timer armed) -> RUNNING ... -> FINISHING (body complete,
 *   the decoder's finish answered EAGAIN) -> FINISHED; or FAILED. `stopped` is
 *   set (whatever the state) once the stop op ran. DONE_PAUSED: libcurl 7.88 may report a
 *   transfer done while its last chunk is still held for a paused write; we unpause once
 *   more before judging the transfer.
 */
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
    struct http_xfer xfer; /* the easy handle */
    uv_timer_t timer;      /* deferred unpause (0 ms) or retry backoff; data = job */
    char *url;             /* as given: used for requests */
    char *shown;           /* without user:password@: used in messages */
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char range[32];

    /* Whole download. */
    uint64_t delivered; /* bytes the decoder accepted: the next byte to deliver */
    int retries_used;   /* retries since the last attempt that brought new bytes */
    int retries_made;   /* every retry of this download (each also counts in stats.retries) */
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

/*
 * Fails the import from the source. pgfeed__fail stops the job, and so calls our stop op,
 * synchronously, even from inside a libcurl callback.
 */
static inline void src_fail(struct http_source *src, int code, const char *detail, const char *hint,
                            const char *what)
{
    src->state = SRC_FAILED;
    src->aborted = 1;
    pgfeed__fail(src->base.ctx, "source", code, detail, hint, "%s", what);
}

/* ---- http_response.c: each response's headers, and the validators ---- */

/* CURLOPT_HEADERFUNCTION (userdata: the source). */
size_t pgfeed__http_header_cb(char *p, size_t size, size_t nmemb, void *arg);
/* Forgets the current response's headers (frees its ETag and Last-Modified copies). */
void pgfeed__http_reset_response(struct http_source *src);
/* The source changed: fails with PGFEED_ECHANGED; why is the detail's first sentence. */
void pgfeed__http_fail_changed(struct http_source *src, const char *why);
/* The seek and validators ops (see struct pgfeed_stage_ops). */
int pgfeed__http_seek(struct pgfeed_stage *s, uint64_t raw_offset,
                      const struct pgfeed_validators *expect);
const struct pgfeed_validators *pgfeed__http_validators(struct pgfeed_stage *s);

/* ---- http_retry.c: attempts, how each ended, retries ---- */

/* Sets up and starts the next request (from byte `delivered`); fails the source on error. */
void pgfeed__http_start_attempt(struct http_source *src);
/* The done_cb of the source's http_xfer. */
void pgfeed__http_transfer_done(struct http_xfer *x, CURLcode rc);
/* The source's timer: the deferred unpause, or the end of a backoff. */
void pgfeed__http_tick_cb(uv_timer_t *t);
/* A curl_easy_setopt that failed: fails the source; returns PGFEED_EINTERNAL. */
int pgfeed__http_setopt_fail(struct http_source *src, CURLcode rc, const char *what);

#endif
