/*
 * pg_resolve.c -- the database's host names, looked up off the loop before libpq connects
 * (libpq's own lookup inside PQconnectStartParams/PQconnectPoll blocks): once per sink for
 * all of its connections, every name at once, with uv_getaddrinfo on libuv's threadpool.
 *
 * Leaves connecting to pg_conn.c, which hands libpq the answer as lists: host (kept, for
 * TLS verification, .pgpass and messages), hostaddr (one address per host entry, empty for
 * a Unix socket or a numeric address) and port. A name with several addresses becomes as
 * many entries (at most MAX_ADDRS), so libpq still tries them in the resolver's order; a
 * name that does not resolve is left out, as libpq skips it; none left is an error. Nothing
 * is looked up when the conninfo (or PGHOSTADDR) has hostaddr, names a service, or has no
 * host name, or when its port list does not match its host list (libpq says why).
 *
 * A stop or the time limit (connect_timeout of the conninfo or PGCONNECT_TIMEOUT, or
 * --connect-timeout, whichever is shorter, taken as given: libpq's minimum of 2 s is for
 * its own attempts) does not wait for the resolver: a request not yet started is
 * cancelled, one under way is let go (its callback finds no owner and frees it). Such a
 * request still holds a threadpool thread, and keeps uv_run() from returning, until
 * getaddrinfo() gives up on its own (resolv.conf's timeout x attempts per server).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sink_internal.h"

#define MAX_ADDRS 8  /* addresses of one name handed to libpq */
#define MAX_HOSTS 64 /* host entries looked up; more are left to libpq */
#define ADDR_LEN  46 /* INET6_ADDRSTRLEN */

/* One host entry. */
struct lookup {
    char *name;             /* NULL: nothing to look up (socket, numeric address, empty) */
    struct lookup *src;     /* the entry whose request looks the name up: itself, or an earlier */
    struct lookup_req *req; /* the request under way, or NULL */
    int done;
    char reason[128]; /* why it did not resolve */
    char addr[MAX_ADDRS][ADDR_LEN];
    size_t naddrs;
};

/* One uv_getaddrinfo request: owned by the resolver while it listens, by itself after. */
struct lookup_req {
    uv_getaddrinfo_t req;
    struct pg_resolve *r; /* NULL once let go */
    struct lookup *e;
};

struct pg_resolve {
    struct sink *sh;
    pgfeed__resolved_cb done;
    char **hosts, **ports; /* the conninfo's lists (ports: NULL, or one per host) */
    size_t nhosts, nports;
    double timeout_s;
    size_t pending; /* requests under way */
    uv_timer_t timer;
    size_t n;
    struct lookup *e; /* one per host entry */
};

static void finish(struct pg_resolve *r);

/* The resolver's words for a failure, as libpq would quote them (glibc's gai_strerror). */
static const char *lookup_reason(int status)
{
    switch (status) {
    case UV_EAI_NONAME:
        return gai_strerror(EAI_NONAME);
    case UV_EAI_AGAIN:
        return gai_strerror(EAI_AGAIN);
    case UV_EAI_FAIL:
        return gai_strerror(EAI_FAIL);
    default:
        return uv_strerror(status);
    }
}

static void lookup_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lookup_req *q = container_of(req, struct lookup_req, req);
    struct pg_resolve *r = q->r;
    if (r != NULL) {
        struct lookup *e = q->e;
        if (status != 0)
            snprintf(e->reason, sizeof e->reason, "%s", lookup_reason(status));
        for (struct addrinfo *a = res; a && e->naddrs < MAX_ADDRS; a = a->ai_next)
            if (getnameinfo(a->ai_addr, a->ai_addrlen, e->addr[e->naddrs], ADDR_LEN, NULL, 0,
                            NI_NUMERICHOST) == 0)
                e->naddrs++;
        e->done = 1;
        e->req = NULL;
    }
    uv_freeaddrinfo(res);
    free(q);
    if (r != NULL && --r->pending == 0)
        finish(r);
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
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        struct lookup *e = r->e[i].src;
        size_t reps = r->e[i].name ? (e->done ? e->naddrs : 0) : 1;
        for (size_t j = 0; j < reps && rc == 0; j++, (*entries)++) {
            rc = append(&host, r->hosts[i], *entries) ||
                 append(&addr, r->e[i].name ? e->addr[j] : "", *entries) ||
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
    pgfeed__ctx_connect_failed(ctx, 1); /* a name not resolving yet: a server not up yet */
    for (size_t i = 0; i < r->n; i++) {
        struct lookup *e = r->e[i].src;
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

static void resolve_free(struct pg_resolve *r)
{
    free_list(r->hosts, r->nhosts);
    free_list(r->ports, r->nports);
    for (size_t i = 0; r->e && i < r->n; i++)
        free(r->e[i].name);
    free(r->e);
    free(r);
}

static void timer_close_cb(uv_handle_t *h)
{
    struct pg_resolve *r = h->data;
    struct pgfeed_ctx *ctx = r->sh->base.ctx;
    resolve_free(r);
    pgfeed__ctx_handle_closed(ctx);
}

/* Stops listening: requests not started are cancelled, those under way let go (their
 * callbacks free them); r is freed when its timer has closed. */
static void detach(struct pg_resolve *r)
{
    r->sh->resolve = NULL;
    for (size_t i = 0; i < r->n; i++) {
        struct lookup_req *q = r->e[i].req;
        if (q == NULL)
            continue;
        q->r = NULL;
        uv_cancel((uv_req_t *)&q->req); /* fails once started: fine, the callback frees it */
        r->e[i].req = NULL;
    }
    uv_timer_stop(&r->timer);
    pgfeed__ctx_handle_closing(r->sh->base.ctx);
    uv_close((uv_handle_t *)&r->timer, timer_close_cb);
}

/* Every name answered, or the time is up: hand over the lists (or the error). */
static void finish(struct pg_resolve *r)
{
    struct sink *sh = r->sh;
    pgfeed__resolved_cb done = r->done;
    size_t entries = 0;
    int rc = build_lists(r, &entries);
    detach(r); /* first: failing stops the sink, which must find nothing to stop here; r
                * itself lives until its timer's close callback */
    if (rc != 0)
        rc = pgfeed__fail(sh->base.ctx, "sink", rc, NULL, NULL, "out of memory");
    else if (entries == 0)
        rc = fail_unresolved(r);
    done(sh, rc);
}

static void timer_cb(uv_timer_t *t)
{
    finish(t->data);
}

/* One request per distinct name, all at once. */
static int start_lookups(struct pg_resolve *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    uv_loop_t *loop = pgfeed__ctx_loop(r->sh->base.ctx);
    for (size_t i = 0; i < r->n; i++) {
        struct lookup *e = &r->e[i];
        if (e->name == NULL || e->src != e)
            continue;
        struct lookup_req *q = calloc(1, sizeof *q);
        if (q == NULL)
            return UV_ENOMEM;
        q->r = r;
        q->e = e;
        int rc = uv_getaddrinfo(loop, &q->req, lookup_cb, e->name, NULL, &hints);
        if (rc != 0) {
            free(q);
            return rc;
        }
        e->req = q;
        r->pending++;
    }
    return 0;
}

/* The entries, each distinct name marked as the one to look up. */
static int lookups_init(struct pg_resolve *r, size_t n)
{
    if ((r->e = calloc(n, sizeof *r->e)) == NULL)
        return UV_ENOMEM;
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        r->e[i].src = &r->e[i];
        if (needs_lookup(r->hosts[i]) && (r->e[i].name = strdup(r->hosts[i])) == NULL)
            return UV_ENOMEM;
        for (size_t j = 0; j < i && r->e[i].name; j++)
            if (r->e[j].name && strcmp(r->e[j].name, r->e[i].name) == 0)
                r->e[i].src = r->e[j].src; /* a name given twice is looked up once */
    }
    return 0;
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
    if (n == 0 || lookups_init(r, n) != 0) {
        resolve_free(r);
        return n == 0 ? 0 : pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    uv_timer_init(pgfeed__ctx_loop(ctx), &r->timer);
    r->timer.data = r;
    sh->resolve = r;
    if (r->timeout_s > 0)
        uv_timer_start(&r->timer, timer_cb, (uint64_t)(r->timeout_s * 1000.0), 0);
    int rc = start_lookups(r);
    if (rc != 0) {
        detach(r);
        return pgfeed__fail(ctx, "sink", rc, NULL, NULL, "could not start a host name lookup: %s",
                            uv_strerror(rc));
    }
    *started = 1;
    return 0;
}

void pgfeed__resolve_stop(struct sink *sh)
{
    if (sh->resolve != NULL)
        detach(sh->resolve);
}
