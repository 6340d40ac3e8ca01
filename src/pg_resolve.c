/*
 * pg_resolve.c -- the database's host names, looked up off the loop before libpq connects
 * (libpq's own lookup inside PQconnectStartParams/PQconnectPoll blocks): once per sink for
 * all of its connections, each name on a thread of its own, all at once.
 *
 * Leaves connecting to pg_conn.c, which hands libpq the answer as lists: host (kept, for
 * TLS verification, .pgpass and messages), hostaddr (one address per host entry, empty for
 * a Unix socket or a numeric address) and port. A name with several addresses becomes as
 * many entries (at most MAX_ADDRS), so libpq still tries them in the resolver's order; a
 * name that does not resolve is left out, as libpq skips it; none left is an error. Nothing
 * is looked up when the conninfo (or PGHOSTADDR) has hostaddr, names a service, or has no
 * host name, or when its port list does not match its host list (libpq says why).
 *
 * Threads, not uv_getaddrinfo: a getaddrinfo that has started cannot be cancelled, and a
 * pending uv_getaddrinfo request keeps uv_run from returning (the threadpool's four
 * threads are the host's too), so a cancel or a timeout would wait for the resolver's own
 * timeout (10 s with glibc's defaults). A detached thread owns its share of `struct
 * lookups` (refcounted under its mutex) and wakes the loop through uv_async_send only while
 * the sink still listens; a thread still in getaddrinfo after a stop finishes later and
 * frees what is left. The loop side owns a uv_async_t and a uv_timer_t (connect_timeout of
 * the conninfo or PGCONNECT_TIMEOUT, or --connect-timeout, whichever is shorter, taken as
 * given: libpq's minimum of 2 s is for its own attempts).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sink_internal.h"

#define MAX_ADDRS 8  /* addresses of one name handed to libpq */
#define MAX_HOSTS 64 /* host entries looked up; more are left to libpq */
#define ADDR_LEN  46 /* INET6_ADDRSTRLEN */

/* One host entry; its fields after `name` are written by its thread under the mutex. */
struct lookup {
    struct lookups *all;
    char *name;         /* NULL: nothing to look up (socket, numeric address, empty) */
    struct lookup *src; /* the entry whose thread looks the name up: itself, or an earlier */
    int done;
    char reason[128]; /* why it did not resolve */
    char addr[MAX_ADDRS][ADDR_LEN];
    size_t naddrs;
};

/* Shared by the loop and the threads; freed by whoever drops the last reference. */
struct lookups {
    pthread_mutex_t mu;
    int refs;         /* running threads + 1 while the sink listens */
    uv_async_t *wake; /* NULL once the sink stopped listening */
    size_t n;
    struct lookup e[];
};

/* The loop's side. */
struct pg_resolve {
    struct sink *sh;
    pgfeed__resolved_cb done;
    struct lookups *l;
    char **hosts, **ports; /* the conninfo's lists (ports: NULL, or one per host) */
    size_t nhosts, nports;
    double timeout_s;
    uv_async_t wake;
    uv_timer_t timer;
    int closing; /* handles still closing */
};

static void lookups_unref(struct lookups *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&l->mu);
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].name);
    free(l);
}

static void *lookup_thread(void *arg)
{
    struct lookup *e = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(e->name, NULL, &hints, &res);
    struct lookups *l = e->all;
    pthread_mutex_lock(&l->mu);
    if (rc != 0)
        snprintf(e->reason, sizeof e->reason, "%s",
                 rc == EAI_SYSTEM ? "system error" : gai_strerror(rc));
    for (struct addrinfo *a = res; a && e->naddrs < MAX_ADDRS; a = a->ai_next)
        if (getnameinfo(a->ai_addr, a->ai_addrlen, e->addr[e->naddrs], ADDR_LEN, NULL, 0,
                        NI_NUMERICHOST) == 0)
            e->naddrs++;
    e->done = 1;
    if (l->wake)
        uv_async_send(l->wake);
    pthread_mutex_unlock(&l->mu);
    if (res)
        freeaddrinfo(res);
    lookups_unref(l);
    return NULL;
}

/* ------------------------------------------------------------ the conninfo */

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static char **split_list(const char *s, size_t *n)
{
    *n = 0;
    if (s == NULL)
        return NULL;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    for (const char *p = s; v && *n < cap; p++) {
        size_t len = strcspn(p, ",");
        v[*n] = strndup(p, len);
        if (v[(*n)++] == NULL) {
            free_list(v, *n);
            *n = 0;
            return NULL; /* out of memory: libpq looks the names up */
        }
        p += len;
        if (*p == '\0')
            break;
    }
    return v;
}

static int needs_lookup(const char *h)
{
    unsigned char buf[16];
    return h && *h && h[0] != '/' && h[0] != '@' && inet_pton(AF_INET, h, buf) != 1 &&
           inet_pton(AF_INET6, h, buf) != 1;
}

/* The value libpq would use for key: the conninfo's, else its environment default. */
static const char *option(PQconninfoOption *given, PQconninfoOption *defaults, const char *key)
{
    for (PQconninfoOption *o = given; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val && *o->val)
            return o->val;
    for (PQconninfoOption *o = defaults; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val && *o->val)
            return o->val;
    return NULL;
}

/* Fills r's host and port lists and timeout; 0 when there is nothing to look up. */
static size_t read_conninfo(struct pg_resolve *r, const char *conninfo, double cli_timeout_s)
{
    int kv = conninfo && (strchr(conninfo, '=') || strstr(conninfo, "://"));
    PQconninfoOption *given = PQconninfoParse(kv ? conninfo : "", NULL);
    PQconninfoOption *defaults = PQconndefaults();
    size_t found = 0;
    if (given && defaults && !option(given, defaults, "hostaddr") &&
        !option(given, defaults, "service")) {
        r->hosts = split_list(option(given, defaults, "host"), &r->nhosts);
        r->ports = split_list(option(given, defaults, "port"), &r->nports);
        const char *t = option(given, defaults, "connect_timeout");
        double ct = t ? atof(t) : 0;
        r->timeout_s = ct > 0 && (cli_timeout_s <= 0 || ct < cli_timeout_s) ? ct : cli_timeout_s;
    }
    for (size_t i = 0; i < r->nhosts; i++)
        found += needs_lookup(r->hosts[i]);
    if (r->nhosts > MAX_HOSTS || (r->nports > 1 && r->nports != r->nhosts))
        found = 0;
    PQconninfoFree(given);
    PQconninfoFree(defaults);
    return found ? r->nhosts : 0;
}

/* ------------------------------------------------------------ the answer */

static int append(struct pgfeed_buf *b, const char *s, int comma)
{
    return (comma && pgfeed__buf_append(b, ",", 1) != 0) || pgfeed__buf_append(b, s, strlen(s));
}

/* host, port and hostaddr lists for libpq from the answers; 0 entries: none resolved. */
static int build_lists(struct pg_resolve *r, size_t *entries)
{
    struct pgfeed_buf host = {0}, port = {0}, addr = {0};
    int rc = 0;
    *entries = 0;
    for (size_t i = 0; i < r->l->n && rc == 0; i++) {
        struct lookup *e = r->l->e[i].src;
        size_t reps = r->l->e[i].name ? (e->done ? e->naddrs : 0) : 1;
        for (size_t j = 0; j < reps && rc == 0; j++, (*entries)++) {
            rc = append(&host, r->hosts[i], *entries) ||
                 append(&addr, r->l->e[i].name ? e->addr[j] : "", *entries) ||
                 (r->nports > 1 && append(&port, r->ports[i], *entries));
        }
    }
    if (rc == 0)
        rc = pgfeed__buf_append(&host, "", 1) || pgfeed__buf_append(&addr, "", 1) ||
             (r->nports > 1 && pgfeed__buf_append(&port, "", 1));
    if (rc != 0 || *entries == 0) {
        pgfeed__buf_free(&host);
        pgfeed__buf_free(&port);
        pgfeed__buf_free(&addr);
        return rc ? UV_ENOMEM : 0;
    }
    free(r->sh->conn_host); /* an earlier attempt's */
    free(r->sh->conn_port);
    free(r->sh->conn_hostaddr);
    r->sh->conn_host = host.data;
    r->sh->conn_port = port.data;
    r->sh->conn_hostaddr = addr.data;
    return 0;
}

/* No host entry is left: the first name's reason, as libpq would have said it. */
static int fail_unresolved(struct pg_resolve *r)
{
    struct pgfeed_ctx *ctx = r->sh->base.ctx;
    const char *hint = "Check the host name in --db (or DATABASE_URL and the PGHOST variable).";
    if (pgfeed__ctx_retrying(ctx))
        pgfeed__ctx_transient(ctx);
    for (size_t i = 0; i < r->l->n; i++) {
        struct lookup *e = r->l->e[i].src;
        if (e->name == NULL)
            continue;
        if (!e->done) {
            char detail[160];
            snprintf(detail, sizeof detail, "The resolver did not answer within %g seconds.",
                     r->timeout_s);
            return pgfeed__fail(ctx, "sink", PGFEED_ECONNECT, detail, hint,
                                "could not resolve host \"%s\": timed out after %g s", e->name,
                                r->timeout_s);
        }
        char detail[160];
        snprintf(detail, sizeof detail, "%s.", e->reason[0] ? e->reason : "No address found");
        return pgfeed__fail(ctx, "sink", PGFEED_ECONNECT, detail, hint,
                            "could not translate host name \"%s\" to address", e->name);
    }
    return pgfeed__fail(ctx, "sink", PGFEED_ECONNECT, NULL, hint, "could not resolve the host");
}

/* The first `at "ADDR", port` in msg becomes `at "HOST" (ADDR), port`. */
static void name_one(char *msg, size_t cap, const char *h, size_t hl, const char *a, size_t al)
{
    char needle[80], with[400];
    int nn = snprintf(needle, sizeof needle, "at \"%.*s\", port", (int)al, a);
    int wn = snprintf(with, sizeof with, "at \"%.*s\" (%.*s), port", (int)hl, h, (int)al, a);
    char *at = nn > 0 && (size_t)nn < sizeof needle ? strstr(msg, needle) : NULL;
    size_t len = strlen(msg);
    if (at == NULL || wn <= 0 || (size_t)wn >= sizeof with || len - nn + wn >= cap)
        return;
    memmove(at + wn, at + nn, len - (size_t)(at - msg) - nn + 1);
    memcpy(at, with, (size_t)wn);
}

void pgfeed__resolve_name_hosts(const struct sink *sh, char *msg, size_t cap)
{
    const char *h = sh->conn_host, *a = sh->conn_hostaddr;
    while (h && a) {
        size_t hl = strcspn(h, ","), al = strcspn(a, ",");
        if (al > 0)
            name_one(msg, cap, h, hl, a, al);
        if (h[hl] == '\0' || a[al] == '\0')
            break;
        h += hl + 1;
        a += al + 1;
    }
}

/* ------------------------------------------------------------ the loop side */

static void handle_close_cb(uv_handle_t *h)
{
    struct pg_resolve *r = h->data;
    struct pgfeed_ctx *ctx = r->sh->base.ctx;
    if (--r->closing == 0) {
        free_list(r->hosts, r->nhosts);
        free_list(r->ports, r->nports);
        free(r);
    }
    pgfeed__ctx_handle_closed(ctx);
}

/* Stops listening (threads still running finish on their own) and closes the handles;
 * r is freed in the last close callback. */
static void detach(struct pg_resolve *r)
{
    r->sh->resolve = NULL;
    pthread_mutex_lock(&r->l->mu);
    r->l->wake = NULL;
    pthread_mutex_unlock(&r->l->mu);
    uv_timer_stop(&r->timer);
    r->closing = 2;
    pgfeed__ctx_handle_closing(r->sh->base.ctx);
    pgfeed__ctx_handle_closing(r->sh->base.ctx);
    uv_close((uv_handle_t *)&r->wake, handle_close_cb);
    uv_close((uv_handle_t *)&r->timer, handle_close_cb);
}

/* Every name answered, or the time is up: hand over the lists (or the error). */
static void finish(struct pg_resolve *r)
{
    struct sink *sh = r->sh;
    pgfeed__resolved_cb done = r->done;
    size_t entries = 0;
    pthread_mutex_lock(&r->l->mu);
    int rc = build_lists(r, &entries);
    pthread_mutex_unlock(&r->l->mu);
    struct lookups *l = r->l;
    detach(r); /* first: failing stops the sink, which must find nothing to stop here */
    if (rc != 0)
        rc = pgfeed__fail(sh->base.ctx, "sink", rc, NULL, NULL, "out of memory");
    else if (entries == 0)
        rc = fail_unresolved(r);
    lookups_unref(l); /* r itself lives until its handles' close callbacks */
    done(sh, rc);
}

static void wake_cb(uv_async_t *h)
{
    struct pg_resolve *r = h->data;
    int pending = 0;
    pthread_mutex_lock(&r->l->mu);
    for (size_t i = 0; i < r->l->n; i++)
        pending += r->l->e[i].name && !r->l->e[i].src->done;
    pthread_mutex_unlock(&r->l->mu);
    if (pending == 0)
        finish(r);
}

static void timer_cb(uv_timer_t *t)
{
    finish(t->data);
}

/* One detached thread per name, with every signal blocked (the loop's thread takes them). */
static int start_threads(struct lookups *l)
{
    pthread_attr_t attr;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return UV_ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        if (l->e[i].name == NULL || l->e[i].src != &l->e[i])
            continue;
        pthread_t t;
        pthread_mutex_lock(&l->mu);
        l->refs++;
        pthread_mutex_unlock(&l->mu);
        rc = -pthread_create(&t, &attr, lookup_thread, &l->e[i]);
        if (rc != 0)
            lookups_unref(l);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

static struct lookups *lookups_new(char **hosts, size_t n)
{
    struct lookups *l = calloc(1, sizeof *l + n * sizeof l->e[0]);
    if (l == NULL || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        return NULL;
    }
    l->refs = 1;
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        l->e[i].all = l;
        l->e[i].src = &l->e[i];
        if (needs_lookup(hosts[i]) && (l->e[i].name = strdup(hosts[i])) == NULL) {
            lookups_unref(l);
            return NULL;
        }
        for (size_t j = 0; j < i && l->e[i].name; j++)
            if (l->e[j].name && strcmp(l->e[j].name, l->e[i].name) == 0)
                l->e[i].src = l->e[j].src; /* a name given twice is looked up once */
    }
    return l;
}

int pgfeed__resolve_start(struct sink *sh, pgfeed__resolved_cb done, int *started)
{
    struct pgfeed_ctx *ctx = sh->base.ctx;
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    *started = 0;
    struct pg_resolve *r = calloc(1, sizeof *r);
    if (r == NULL)
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    r->sh = sh;
    r->done = done;
    size_t n = read_conninfo(r, o->conninfo, o->connect_timeout_s);
    if (n == 0 || (r->l = lookups_new(r->hosts, n)) == NULL) {
        free_list(r->hosts, r->nhosts);
        free_list(r->ports, r->nports);
        free(r);
        return n == 0 ? 0 : pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    uv_async_init(pgfeed__ctx_loop(ctx), &r->wake, wake_cb);
    uv_timer_init(pgfeed__ctx_loop(ctx), &r->timer);
    r->wake.data = r->timer.data = r;
    r->l->wake = &r->wake;
    sh->resolve = r;
    if (r->timeout_s > 0)
        uv_timer_start(&r->timer, timer_cb, (uint64_t)(r->timeout_s * 1000.0), 0);
    int rc = start_threads(r->l);
    if (rc != 0) {
        struct lookups *l = r->l;
        detach(r);
        lookups_unref(l);
        return pgfeed__fail(ctx, "sink", rc, NULL, NULL, "could not start a host name lookup: %s",
                            uv_strerror(rc));
    }
    *started = 1;
    return 0;
}

void pgfeed__resolve_stop(struct sink *sh)
{
    struct pg_resolve *r = sh->resolve;
    if (r == NULL)
        return;
    struct lookups *l = r->l;
    detach(r);
    lookups_unref(l);
}
