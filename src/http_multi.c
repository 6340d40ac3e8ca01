/*
 * http_multi.c -- the shared transfer context (struct pgfeed_http): libcurl's multi
 * interface on libuv, one CURLM, one uv_timer_t for libcurl's timeout and one uv_poll_t
 * per socket libcurl asks us to watch; adding and removing easy handles, and handing
 * each finished transfer to its owner.
 *
 * Leaves everything about a request (options, responses, retries) to the source
 * (source_http.c, http_response.c, http_retry.c). Calls none of their functions: a
 * source is reached only through the callbacks in its struct http_xfer.
 *
 * Re-entrancy: libcurl forbids calling the multi API from its callbacks, and
 * pgfeed__fail() stops the job (and so a source's stop op) synchronously, even
 * from inside a write or header callback. So every call into libcurl is
 * bracketed by in_curl++/--; a removal requested while in_curl > 0 is queued
 * and done by pgfeed__http_after() once the outermost libcurl call has returned.
 *
 * Close: pgfeed_http_close() only asks; the teardown (curl_multi_cleanup, then the
 * timer and every poll closed) begins once no source uses the context and nothing is in
 * libcurl, and frees the context in the last close callback.
 */
#include <stdlib.h>

#include "http_internal.h"

struct http_sock {
    uv_poll_t poll;
    struct pgfeed_http *h;
    curl_socket_t fd;
    int closing;
    struct http_sock *next, *prev; /* h->socks: open and closing */
};

struct pgfeed_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;        /* libcurl's single timeout */
    struct http_sock *socks; /* every poll context not yet freed */
    unsigned handles;        /* uv handles not yet closed: timer + socks */
    unsigned users;          /* sources attached (started, not yet stopped) */
    int in_curl;             /* depth of calls into libcurl on the stack */
    int in_after;            /* pgfeed__http_after() is running */
    int close_requested;
    int closing;
    struct http_xfer *pending; /* transfers whose easy handle awaits removal */
    void (*close_cb)(pgfeed_http_t *h);
    void *owner; /* private context: the source that made it */
};

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
    pgfeed__http_after(h);
}

/* A new poll context for fd, on h->socks and assigned to fd in the multi; NULL on failure. */
static struct http_sock *sock_open(struct pgfeed_http *h, curl_socket_t fd)
{
    /*
     * A context still open for the same fd number means libcurl closed
     * that socket without telling us (late REMOVE) and the number came
     * back: retire the stale one first, libuv allows one poll per fd.
     */
    for (struct http_sock *o = h->socks; o; o = o->next)
        if (!o->closing && o->fd == fd)
            sock_close(o);
    struct http_sock *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (uv_poll_init_socket(h->loop, &c->poll, fd) != 0) {
        free(c);
        return NULL;
    }
    c->h = h;
    c->fd = fd;
    c->next = h->socks;
    if (h->socks)
        h->socks->prev = c;
    h->socks = c;
    h->handles++;
    curl_multi_assign(h->multi, fd, c);
    return c;
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
    if (c == NULL && (c = sock_open(h, fd)) == NULL)
        return -1;
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
    pgfeed__http_after(h);
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

void pgfeed__http_set_owner(struct pgfeed_http *h, void *owner)
{
    h->owner = owner;
}

void *pgfeed__http_owner(const struct pgfeed_http *h)
{
    return h->owner;
}

void pgfeed__http_user_add(struct pgfeed_http *h)
{
    h->users++;
}

void pgfeed__http_user_done(struct pgfeed_http *h)
{
    h->users--;
    if (h->close_requested && h->users == 0 && h->in_curl == 0 && !h->in_after)
        http_begin_close(h);
}

/* ------------------------------------------------------- the easy handles */

CURLMcode pgfeed__http_add(struct pgfeed_http *h, struct http_xfer *x)
{
    h->in_curl++;
    CURLMcode mc = curl_multi_add_handle(h->multi, x->easy);
    h->in_curl--;
    if (mc != CURLM_OK)
        return mc;
    x->attached = 1;
    pgfeed__http_after(h);
    return CURLM_OK;
}

void pgfeed__http_remove(struct pgfeed_http *h, struct http_xfer *x)
{
    if (!x->attached || x->removing)
        return;
    if (h->in_curl > 0) {
        x->removing = 1;
        x->next_pending = h->pending;
        h->pending = x;
        return;
    }
    h->in_curl++;
    curl_multi_remove_handle(h->multi, x->easy);
    h->in_curl--;
    x->attached = 0;
}

CURLcode pgfeed__http_unpause(struct pgfeed_http *h, struct http_xfer *x)
{
    h->in_curl++;
    CURLcode rc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
    h->in_curl--;
    return rc;
}

void pgfeed__http_after(struct pgfeed_http *h)
{
    if (h->in_curl > 0 || h->in_after)
        return;
    h->in_after = 1;
    for (;;) {
        if (h->pending) {
            struct http_xfer *x = h->pending;
            h->pending = x->next_pending;
            x->removing = 0;
            pgfeed__http_remove(h, x);
            x->removed_cb(x);
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
        if (priv) {
            struct http_xfer *x = (struct http_xfer *)(void *)priv;
            x->done_cb(x, rc);
        }
    }
    h->in_after = 0;
    if (h->close_requested && h->users == 0 && !h->closing)
        http_begin_close(h);
}
