/*
 * pg_conn.c -- one libpq connection of the sink: connecting (PQconnectStartParams and
 * PQconnectPoll on a uv_poll, the socket may change after every call), watching its
 * socket, the result pump, the errors libpq and the server report, and the abort.
 *
 * Leaves every decision about what to send next to the stage (sink_pg.c): the pump hands
 * each result to the handlers in struct sink_handlers and flushes what they sent. Calls
 * nothing of sink_pg.c or sink_refused.c directly; reaches the import only through its
 * context (ctx.c).
 *
 * Handles per connection: a uv_poll_t on the current socket (allocated, since a closing
 * poll for an old socket may still be pending), connect_timer (--connect-timeout, then
 * the abort's ABORT_WAIT_MS) and kick_timer (0 ms, see pgfeed__conn_watch).
 *
 * Errors are invisible during COPY_IN (libpq parses an ErrorResponse only after
 * PQputCopyEnd), so a failing batch is detected at its end; the server has dropped its
 * rows by then.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

/* How long a stopping sink waits for the server to confirm a CopyFail or a COMMIT. */
#define ABORT_WAIT_MS 5000

static void poll_cb(uv_poll_t *h, int status, int events);
static void kick_cb(uv_timer_t *t);

/* ------------------------------------------------------------ poll handling */

static void poll_close_cb(uv_handle_t *h)
{
    struct pgfeed_ctx *ctx = h->data;
    free(h);
    pgfeed__ctx_handle_closed(ctx);
}

static void poll_stop_close(struct sink_pg *k)
{
    if (k->poll == NULL)
        return;
    uv_poll_stop(k->poll);
    pgfeed__ctx_handle_closing(sink_ctx(k));
    k->poll->data = sink_ctx(k);
    uv_close((uv_handle_t *)k->poll, poll_close_cb);
    k->poll = NULL;
}

/*
 * Watches the connection's current socket for events; re-creates the poll if the socket changed.
 *
 * The error-path rule (internal.h): a state that waits for the server also handles what
 * libpq has already read. PQputCopyData and PQflush read the socket whenever it is full
 * (to avoid a deadlock with a server that is sending), so the server's answer -- an
 * ErrorResponse in the middle of a COPY, say -- can sit in libpq's buffer with nothing
 * left in the kernel's: a level-triggered poll then never fires, and both sides wait for
 * each other forever. So every watch outside COPY_IN also schedules one pass over libpq's
 * buffer on the next loop turn (kick_cb), outside the callback that sent.
 */
int pgfeed__conn_watch(struct sink_pg *k, int events)
{
    if (k->state == S_CLOSED)
        return 0; /* stopped from inside a callback: nothing more to watch */
    if (k->kick_inited && k->state != S_COPY_IN && k->state != S_CONNECTING &&
        k->state != S_SPLIT_COPYING && !uv_is_active((uv_handle_t *)&k->kick_timer))
        uv_timer_start(&k->kick_timer, kick_cb, 0, 0);
    int fd = PQsocket(k->conn);
    if (fd < 0)
        return PGFEED_ECONNECT;
    if (k->poll && fd != k->sock) {
        /* libpq opened a new socket (another host, SSL/GSS fallback). */
        poll_stop_close(k);
    }
    if (k->poll == NULL) {
        uv_poll_t *p = malloc(sizeof *p);
        if (p == NULL)
            return UV_ENOMEM;
        int rc = uv_poll_init_socket(pgfeed__ctx_loop(sink_ctx(k)), p, fd);
        if (rc != 0) {
            free(p);
            return rc;
        }
        p->data = k;
        k->poll = p;
        k->sock = fd;
        k->poll_events = 0;
    }
    if (events != k->poll_events) {
        k->poll_events = events;
        if (events == 0)
            return uv_poll_stop(k->poll);
        return uv_poll_start(k->poll, events, poll_cb);
    }
    return 0;
}

/* -------------------------------------------------------------- errors */

/* libpq's words for a server that is not there yet: refused, no socket file, starting up,
 * not yet accepting connections, no answer in time. */
static int not_up_yet(const char *m)
{
    static const char *const words[] = {"Connection refused",
                                        "Is the server running", /* no socket file (yet) */
                                        "the database system is starting up",
                                        "not yet accepting connections",
                                        "Connection timed out",
                                        "timeout expired"};
    for (size_t i = 0; m && i < sizeof words / sizeof words[0]; i++)
        if (strstr(m, words[i]))
            return 1;
    return 0;
}

int pgfeed__conn_fail(struct sink_pg *k, const char *what)
{
    if (k->conn == NULL || k->sh->stop_requested)
        return PGFEED_ECANCELED; /* closed by a stop: nothing went wrong on the wire */
    struct pgfeed_ctx *ctx = sink_ctx(k);
    const char *m = PQerrorMessage(k->conn);
    int connecting = k->state == S_CONNECTING || k->state == S_NEW;
    /* It was up, or the import ran before this attempt: a restart or a cut, worth retrying
     * (a server restarting refuses connections, or answers 57P03, for a while). A first
     * connection to a server not up yet waits for it with --wait-for-db. */
    if (connecting)
        pgfeed__ctx_connect_failed(ctx, not_up_yet(m));
    else
        pgfeed__ctx_transient(ctx);
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", m && *m ? m : "no further information");
    pgfeed__resolve_name_hosts(k->sh, detail, sizeof detail);
    size_t n = strlen(detail);
    while (n && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
        detail[--n] = '\0';
    if (n && !strchr(".?!", detail[n - 1]) && n + 1 < sizeof detail) {
        detail[n] = '.';
        detail[n + 1] = '\0';
    }
    if (n && islower((unsigned char)detail[0]))
        detail[0] = (char)toupper((unsigned char)detail[0]);
    const char *hint = NULL;
    if (k->state == S_CONNECTING && k->sh->nconns > 1)
        hint = "With --connections N pgfeed opens N connections: check the server's "
               "max_connections and the role's connection limit, or use fewer.";
    else if (k->state == S_CONNECTING)
        hint = "Check --db (or DATABASE_URL and the PG* variables) and that the server is running.";
    return pgfeed__fail(sink_ctx(k), "sink", PGFEED_ECONNECT, detail, hint, "%s", what);
}

/* "COPY names, line 3, column birth_year: ..." -> 3 and "birth_year". */
uint64_t pgfeed__copy_context_line(const char *ctx, char *col, size_t colcap)
{
    col[0] = '\0';
    if (ctx == NULL)
        return 0;
    const char *p = strstr(ctx, ", line ");
    if (p == NULL)
        return 0;
    uint64_t line = strtoull(p + 7, NULL, 10);
    const char *c = strstr(p, ", column ");
    if (c) {
        c += 9;
        size_t n = strcspn(c, ":\n");
        if (n >= colcap)
            n = colcap - 1;
        memcpy(col, c, n);
        col[n] = '\0';
    }
    return line;
}

int pgfeed__conn_fail_result(struct sink_pg *k, PGresult *r, int in_batch)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *sdetail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *shint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
    const char *sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *context = PQresultErrorField(r, PG_DIAG_CONTEXT);
    char col[128];
    uint64_t cline = pgfeed__copy_context_line(context, col, sizeof col);
    uint64_t line = 0;
    char detail[2048];
    size_t dl = 0;
    detail[0] = '\0';
    if (sdetail)
        dl += (size_t)snprintf(detail, sizeof detail, "%s ", sdetail);
    /* A COPY's context names the line it was reading, whatever stopped it: a shutdown, a
     * lost connection, a deadlock or a full disk is not that line's fault. */
    static const char *const not_the_row[] = {"08", "40", "53", "55", "57", "58", "XX"};
    int row_fault = 1;
    for (size_t i = 0; sqlstate && i < sizeof not_the_row / sizeof not_the_row[0]; i++)
        if (strncmp(sqlstate, not_the_row[i], 2) == 0)
            row_fault = 0;
    if (in_batch && cline > 0 && row_fault) {
        /* The parser knows where row N of the batch started (csv records span lines). */
        line = pgfeed__rowmap_line(k->batch.rowmap, cline);
        if (line == 0)
            line = k->batch.first_line + cline - 1;
        dl += (size_t)snprintf(
            detail + dl, sizeof detail - dl, "The server refused input line %llu%s%s%s. ",
            (unsigned long long)line, col[0] ? " (column \"" : "", col, col[0] ? "\")" : "");
    }
    if (in_batch && dl < sizeof detail)
        snprintf(detail + dl, sizeof detail - dl, "The batch of lines %llu to %llu was rolled back",
                 (unsigned long long)k->batch.first_line, (unsigned long long)k->batch.last_line);
    int code = PGFEED_ESERVER;
    const char *hint = shint;
    int transient =
        sqlstate && (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P0", 4) == 0 ||
                     strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0);
    if (transient)
        pgfeed__ctx_transient(ctx); /* connection trouble, shutdown, serialization, deadlock */
    int state_table = k->state >= S_STATE_CHECK && k->state <= S_AHEAD_READ;
    int hook = k->state == S_BEFORE || k->state == S_AFTER;
    if (hook) {
        if (dl < sizeof detail)
            snprintf(detail + dl, sizeof detail - dl, "%s",
                     k->state == S_BEFORE
                         ? "The before hook's transaction was rolled back; no row was imported."
                         : "The after hook's transaction was rolled back. Every row is "
                           "committed, but the import is not marked finished: --resume runs "
                           "the after hook again.");
    } else if (state_table && sqlstate && strncmp(sqlstate, "42", 2) == 0) {
        code = PGFEED_ECHECKPOINT;
        hint = k->state == S_STATE_CREATE
                   ? "pgfeed creates its state table only when it is missing: have it created "
                     "once by a role that may (see the README), name one in a schema you may "
                     "create tables in with --state-table, or import without checkpoints "
                     "(--no-checkpoint)."
                   : "Grant this role SELECT, INSERT, UPDATE and DELETE on the state table, name "
                     "another with --state-table, or import without checkpoints "
                     "(--no-checkpoint).";
    } else if (sqlstate && strcmp(sqlstate, "42P01") == 0) {
        code = PGFEED_ETABLE;
        hint = "Create the table first, or check --table and the search_path.";
    } else if (sqlstate && strncmp(sqlstate, "42", 2) == 0 && k->state == S_CATALOG) {
        code = PGFEED_ETABLE;
    } else if (sqlstate && strcmp(sqlstate, "55000") == 0 &&
               (k->state == S_SHADOW_PREP || k->state == S_SWAP)) {
        code = PGFEED_ETABLE; /* --mode replace refused (sink_replace.c) */
    } else if (sqlstate && (strcmp(sqlstate, "55000") == 0 || strcmp(sqlstate, "42703") == 0) &&
               k->state == S_UPSERT_PREP) {
        code = PGFEED_ETABLE; /* --mode upsert's key refused (sink_upsert.c) */
    } else if (k->state == S_MERGE && hint == NULL) {
        hint = "--mode upsert merges each batch after its COPY; a row the table refuses there "
               "(a foreign key, another unique index, a trigger) fails its batch, even with "
               "--max-rejects. Fix the row or the table, then run again with --resume.";
    }
    int writing =
        k->state == S_CHECKPOINT || k->state == S_MARK_FINISHED || k->state == S_SWAP_MARK;
    if (writing && !transient && hint == NULL)
        hint = "Check that this role can write the state table (--state-table names it) "
               "and that the server accepts the statement there, or import without "
               "checkpoints (--no-checkpoint).";
    if (hook)
        pgfeed__fail(ctx, "sink", code, detail, hint, "%s hook failed: %s",
                     k->state == S_BEFORE ? "before" : "after",
                     primary ? primary : PQresultErrorMessage(r));
    else if (state_table || writing)
        pgfeed__fail(ctx, "sink", code, detail[0] ? detail : NULL, hint, "cannot %s \"%s\": %s",
                     writing                      ? "write the checkpoint into the state table"
                     : k->state == S_STATE_CREATE ? "create the checkpoint table"
                                                  : "use the checkpoint table",
                     k->sh->state_table, primary ? primary : PQresultErrorMessage(r));
    else
        pgfeed__fail(ctx, "sink", code, detail[0] ? detail : NULL, hint, "%s",
                     primary ? primary : PQresultErrorMessage(r));
    pgfeed__fail_sqlstate(ctx, sqlstate);
    if (in_batch)
        pgfeed__fail_count_committed(ctx);
    if (line)
        pgfeed__fail_at(ctx, line, 0, col[0] ? col : NULL, 0, 0);
    return code;
}

int pgfeed__conn_send(struct sink_pg *k, const char *sql, enum sink_state next)
{
    if (!PQsendQuery(k->conn, sql))
        return pgfeed__conn_fail(k, "could not send a query to the server");
    k->state = next;
    int f = PQflush(k->conn);
    if (f < 0)
        return pgfeed__conn_fail(k, "lost the connection to the server");
    return pgfeed__conn_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

int pgfeed__conn_flush(struct sink_pg *k, const char *what)
{
    int f = PQflush(k->conn);
    if (f < 0)
        return pgfeed__conn_fail(k, what);
    return pgfeed__conn_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

/*
 * COPY binary: the file header before a COPY's first tuple and the trailer
 * (int16 -1) after its last, each sent once per COPY statement.
 */
static int copy_binary_header(struct sink_pg *k)
{
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    k->trailer_sent = 0;
    if (k->sh->bin && PQputCopyData(k->conn, header, (int)sizeof header) != 1)
        return pgfeed__conn_fail(k, "could not send COPY data to the server");
    return 0;
}

int pgfeed__conn_copy_trailer(struct sink_pg *k)
{
    if (!k->sh->bin || k->trailer_sent)
        return 0;
    if (PQputCopyData(k->conn, "\377\377", 2) != 1)
        return pgfeed__conn_fail(k, "could not send COPY data to the server");
    k->trailer_sent = 1;
    return 0;
}

/* ------------------------------------------------------------ the result pump */

/* Consumes every available result and hands it to the stage; flushes what that sent. */
static void conn_pump(struct sink_pg *k)
{
    const struct sink_handlers *on = k->sh->on;
    for (;;) {
        if (k->state == S_COPY_IN || k->state == S_CLOSED)
            return;
        if (PQisBusy(k->conn))
            return;
        PGresult *r = PQgetResult(k->conn);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_EMPTY_QUERY;
        if (r && st == PGRES_COPY_IN) {
            PQclear(r);
            if (k->state == S_ABORTING) {
                PQputCopyEnd(k->conn, "import canceled by pgfeed");
                PQflush(k->conn);
                continue;
            }
            if (copy_binary_header(k) != 0)
                return;
            on->copy_in(k);
            return;
        }
        if (r && (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)) {
            if (k->state == S_ABORTING) {
                PQclear(r);
                continue; /* the CopyFail we sent, or a statement after it */
            }
            int rc = on->failed(k, r);
            PQclear(r);
            if (rc != 0)
                return;
            continue;
        }
        if (r) {
            int rc = st == PGRES_TUPLES_OK ? on->tuples(k, r) : 0;
            PQclear(r);
            if (rc != 0)
                return;
            continue;
        }
        /* r == NULL: the current command string is complete. */
        if (k->state == S_ABORTING) {
            /* Only a COPY ended with CopyFail gets here: nothing committed. */
            k->state = S_CLOSED;
            pgfeed__conn_close(k);
            return;
        }
        if (on->done(k) != 0)
            return;
        if (k->state == S_CLOSED || k->conn == NULL)
            return; /* the job stopped the sink from the call above (nothing left to resume) */
        pgfeed__conn_flush(k, "lost the connection to the server");
    }
}

static void connect_step(struct sink_pg *k);

/* Reads what the server sent and acts on every complete result. */
static void conn_readable(struct sink_pg *k)
{
    if (!PQconsumeInput(k->conn)) {
        pgfeed__conn_fail(k, "lost the connection to the server");
        if (k->sh->stop_requested) {
            k->state = S_CLOSED;
            pgfeed__conn_close(k);
        }
        return;
    }
    conn_pump(k);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sink_pg *k = h->data;
    if (k->state == S_CLOSED || h != k->poll)
        return;
    if (k->state == S_CONNECTING) {
        connect_step(k);
        return;
    }
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE; /* let libpq find out what is wrong */
    if (events & UV_WRITABLE) {
        int f = PQflush(k->conn);
        if (f < 0) {
            pgfeed__conn_fail(k, "lost the connection to the server");
            if (k->sh->stop_requested) {
                k->state = S_CLOSED;
                pgfeed__conn_close(k);
            }
            return;
        }
        if (f == 0) {
            k->queued = 0;
            k->sh->on->drained(k);
        }
    }
    if (events & UV_READABLE)
        conn_readable(k);
}

/* A pass over libpq's buffer that no socket event announces (see pgfeed__conn_watch). */
static void kick_cb(uv_timer_t *t)
{
    struct sink_pg *k = t->data;
    if (k->conn == NULL || k->state == S_CLOSED || k->state == S_CONNECTING || k->state == S_NEW ||
        k->state == S_COPY_IN)
        return;
    conn_readable(k);
}

static void notice_cb(void *arg, const PGresult *r)
{
    struct sink_pg *k = arg;
    const char *sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (sqlstate && strcmp(sqlstate, "42P07") == 0)
        return; /* "relation ... already exists, skipping": our CREATE TABLE IF NOT EXISTS */
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    pgfeed__log(sink_ctx(k),
                sev && strcmp(sev, "WARNING") == 0 ? PGFEED_LOG_WARNING : PGFEED_LOG_NOTICE,
                "server: %s", msg ? msg : "");
}

static void connect_timer_cb(uv_timer_t *t)
{
    struct sink_pg *k = t->data;
    if (k->state != S_CONNECTING)
        return;
    char detail[128];
    snprintf(detail, sizeof detail, "No connection was established within %g seconds.",
             pgfeed__ctx_options(sink_ctx(k))->connect_timeout_s);
    pgfeed__ctx_connect_failed(sink_ctx(k), 1);
    pgfeed__fail(sink_ctx(k), "sink", PGFEED_ECONNECT, detail,
                 "Check --db and that the server is reachable.",
                 "could not connect to the database server");
}

static void connect_step(struct sink_pg *k)
{
    PostgresPollingStatusType ps = PQconnectPoll(k->conn);
    int rc = 0;
    /* While connecting, libpq may close its socket and open another (the next host or
     * address, an SSL or GSS fallback) that gets the same descriptor number: the kernel
     * dropped the old one from epoll with its close, so a poll kept for "the same" fd
     * would never fire. Watch each step's socket with a fresh poll. */
    if (ps == PGRES_POLLING_READING || ps == PGRES_POLLING_WRITING)
        poll_stop_close(k);
    switch (ps) {
    case PGRES_POLLING_READING:
        rc = pgfeed__conn_watch(k, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = pgfeed__conn_watch(k, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        uv_timer_stop(&k->connect_timer);
        sink_ctx(k)->connected = 1; /* from now on a server that goes away is no wait */
        if (PQsetnonblocking(k->conn, 1) != 0) {
            pgfeed__conn_fail(k, "could not set the connection to nonblocking mode");
            return;
        }
        PQsetNoticeReceiver(k->conn, notice_cb, k);
        /* A bulk load waits on the network by design: no statement or idle timeouts. */
        k->state = S_CONNECTING; /* for pgfeed__conn_send's state argument below */
        rc = pgfeed__conn_send(
            k,
            "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0;"
            " SET client_encoding = 'UTF8'",
            S_SETUP);
        break;
    default:
        pgfeed__conn_fail(k, "could not connect to the database server");
        return;
    }
    if (rc != 0 && sink_ctx(k)->err.pub.code == 0)
        pgfeed__fail(sink_ctx(k), "sink", rc, NULL, NULL, "could not watch the connection: %s",
                     uv_strerror(rc));
}

/* Starts connection k; conninfo was checked by pgfeed__conn_check_conninfo, and its host
 * names looked up (pg_resolve.c) when sh->conn_hostaddr is set. */
int pgfeed__conn_start(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    /* Later keys override what dbname expands to; NULL values are skipped. */
    const char *keys[] = {"dbname", "host", "port", "hostaddr", "fallback_application_name", NULL};
    const char *vals[] = {o->conninfo ? o->conninfo : "", k->sh->conn_host, k->sh->conn_port,
                          k->sh->conn_hostaddr,           "pgfeed",         NULL};
    k->conn = PQconnectStartParams(keys, vals, 1);
    if (k->conn == NULL)
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->state = S_CONNECTING;
    if (PQstatus(k->conn) == CONNECTION_BAD)
        return pgfeed__conn_fail(k, "could not connect to the database server");
    uv_timer_init(pgfeed__ctx_loop(ctx), &k->connect_timer);
    k->connect_timer.data = k;
    k->timer_inited = 1;
    uv_timer_init(pgfeed__ctx_loop(ctx), &k->kick_timer);
    k->kick_timer.data = k;
    k->kick_inited = 1;
    if (o->connect_timeout_s > 0)
        uv_timer_start(&k->connect_timer, connect_timer_cb,
                       (uint64_t)(o->connect_timeout_s * 1000.0), 0);
    int rc = pgfeed__conn_watch(k, UV_WRITABLE);
    if (rc != 0)
        return pgfeed__fail(ctx, "sink", rc, NULL, NULL, "could not watch the connection: %s",
                            uv_strerror(rc));
    return 0;
}

int pgfeed__conn_check_conninfo(struct pgfeed_ctx *ctx, const char *conninfo)
{
    if (conninfo == NULL || !(strchr(conninfo, '=') || strstr(conninfo, "://")))
        return 0;
    /* Say "invalid", not "could not connect", for a string libpq cannot read. */
    char *err = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &err);
    if (parsed == NULL) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", err ? err : "libpq could not parse it.");
        size_t n = strlen(detail);
        while (n && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
            detail[--n] = '\0';
        if (n && islower((unsigned char)detail[0]))
            detail[0] = (char)toupper((unsigned char)detail[0]);
        if (n && !strchr(".?!", detail[n - 1]) && n + 1 < sizeof detail)
            memcpy(detail + n, ".", 2);
        PQfreemem(err);
        return pgfeed__fail(
            ctx, "sink", PGFEED_ECONNECT, detail,
            "Give --db a conninfo string such as \"host=/run/postgresql dbname=imdb\" or a URI such as postgresql://user@host/db.",
            "invalid connection string");
    }
    PQconninfoFree(parsed);
    return 0;
}

static void timer_close_cb(uv_handle_t *h)
{
    struct sink_pg *k = h->data;
    pgfeed__ctx_handle_closed(sink_ctx(k));
}

/* Closes the socket's poll and the timers; libpq's connection goes in the sink's destroy. */
void pgfeed__conn_close(struct sink_pg *k)
{
    poll_stop_close(k);
    if (k->timer_inited) {
        k->timer_inited = 0;
        uv_timer_stop(&k->connect_timer);
        pgfeed__ctx_handle_closing(sink_ctx(k));
        uv_close((uv_handle_t *)&k->connect_timer, timer_close_cb);
    }
    if (k->kick_inited) {
        k->kick_inited = 0;
        uv_timer_stop(&k->kick_timer);
        pgfeed__ctx_handle_closing(sink_ctx(k));
        uv_close((uv_handle_t *)&k->kick_timer, timer_close_cb);
    }
    if (k->holding_ref) {
        /* Dropped after the closes above were counted, so the job cannot finish here. */
        k->holding_ref = 0;
        pgfeed__ctx_handle_closed(sink_ctx(k));
    }
}

/* The server did not answer our CopyFail or COMMIT in time: hang up. */
static void abort_timer_cb(uv_timer_t *t)
{
    struct sink_pg *k = t->data;
    pgfeed__log(sink_ctx(k), PGFEED_LOG_WARNING,
                "the server did not answer within %d ms; closing the connection", ABORT_WAIT_MS);
    k->state = S_CLOSED;
    pgfeed__conn_close(k);
}

/*
 * Stop: roll back what is in flight and close. A COPY in progress is ended
 * with CopyFail so the server discards the batch; a COMMIT already sent is
 * awaited so the counters say what really happened. Everything else just
 * closes: the server rolls back an open transaction when the connection goes.
 */
void pgfeed__conn_stop(struct sink_pg *k)
{
    if (k->timer_inited)
        uv_timer_stop(&k->connect_timer);
    if (k->conn == NULL || k->state == S_CLOSED) {
        pgfeed__conn_close(k);
        return;
    }
    int wait = 0;
    if (k->state == S_COPY_IN && PQstatus(k->conn) == CONNECTION_OK) {
        if (PQputCopyEnd(k->conn, "import canceled by pgfeed") == 1) {
            PQflush(k->conn);
            wait = 1;
        }
    } else if ((k->state == S_ENDING || k->state == S_MERGE || k->state == S_CHECKPOINT ||
                k->state == S_REJECTS_SYNC || k->state == S_COMMITTING) &&
               PQstatus(k->conn) == CONNECTION_OK && k->poll && k->timer_inited) {
        /*
         * A whole batch is on its way to COMMIT: it was complete before the
         * failure or cancel, so let it commit with its checkpoint row (the state
         * machine carries on and closes afterwards), within ABORT_WAIT_MS.
         */
        k->holding_ref = 1;
        pgfeed__ctx_handle_closing(sink_ctx(k));
        uv_timer_start(&k->connect_timer, abort_timer_cb, ABORT_WAIT_MS, 0);
        return;
    }
    /* Anything else (a BEGIN; COPY perhaps stuck behind a lock) is rolled back by
     * the server when we hang up. */
    if (wait && k->poll && k->timer_inited) {
        k->state = S_ABORTING;
        k->holding_ref = 1;
        pgfeed__ctx_handle_closing(sink_ctx(k));
        pgfeed__conn_watch(k, UV_READABLE | UV_WRITABLE);
        uv_timer_start(&k->connect_timer, abort_timer_cb, ABORT_WAIT_MS, 0);
        return;
    }
    k->state = S_CLOSED;
    pgfeed__conn_close(k);
    if (k->conn && k->sh->nconns > 1) {
        /* Hang up now (the poll is closed): the server rolls this batch back at once and
         * releases its locks, which a batch still committing on another connection may
         * be waiting for. */
        PQfinish(k->conn);
        k->conn = NULL;
    }
}
