/*
 * sink_pg.c -- libpq nonblocking COPY FROM STDIN, one transaction per batch.
 *
 * Owns the PGconns (1..N, --connections), the uv_poll on each socket and
 * its timers. Takes COPY rows (text or binary tuples) from the parser and
 * leaves parsing, encoding and batch sizing to it. Reaches the rest of the
 * import only through its context (ctx.c: failing, logging, counters,
 * rejects) and the events it was given at creation (struct
 * pgfeed_sink_events: table described, checkpoint read, done, and what it
 * asks of other stages: validators, restart point, row lines); it calls
 * neither job.c nor the parser.
 *
 * States: CONNECTING (PQconnectPoll on uv_poll; the socket may change after
 * every poll call) -> SETUP (session settings) -> CATALOG (column query) ->
 * READY (no transaction) -> STARTING ("BEGIN; COPY ..." sent) -> COPY_IN ->
 * ENDING (PQputCopyEnd sent) -> COMMITTING -> READY ... -> FINISHED.
 *
 * Backpressure: only the sink decides to stop. After each PQputCopyData it
 * calls PQflush; when that returns 1 the sink is "blocked": it takes nothing
 * more (EAGAIN) and waits for the socket to be writable (and readable: the
 * server may stop reading while it sends us notices), flushing until 0, then
 * schedules the parser's resume. libpq's own output buffer is unbounded, so
 * this keeps at most one write (the parser's ~256 KiB) queued in it.
 *
 * Errors are invisible during COPY_IN (libpq parses an ErrorResponse only
 * after PQputCopyEnd), so a failing batch is detected at its end; the server
 * has dropped its rows by then and the job stops with the server's message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "internal.h"

enum sink_state {
    S_NEW,
    S_CONNECTING,
    S_SETUP,
    S_CATALOG,
    S_STATE_CREATE, /* CREATE TABLE IF NOT EXISTS state table */
    S_STATE_READ,   /* SELECT the job's checkpoint */
    S_FORGET,       /* DELETE it (--restart) */
    S_READY,
    S_STARTING,
    S_COPY_IN,
    S_ENDING,
    S_WAIT_TURN,  /* COPY done; an earlier batch has not committed yet */
    S_TURN_CHECK, /* waiting, and asking the server what blocks the batch whose turn it is */
    S_CHECKPOINT, /* the batch's checkpoint upsert, inside its transaction */
    S_COMMITTING,
    S_MARK_FINISHED, /* UPDATE ... SET finished when no batch was open at the end */
    /* Isolating the rows the server refused (only with --max-rejects > 0): */
    S_SPLIT_ROLLBACK, /* ROLLBACK of the failed batch sent */
    S_SPLIT_BEGIN,    /* BEGIN of its second try sent */
    S_SPLIT_STARTING, /* "SAVEPOINT; COPY" for one range of its rows sent */
    S_SPLIT_COPYING,  /* sending that range */
    S_SPLIT_ENDING,   /* its COPY end sent */
    S_SPLIT_UNDO,     /* ROLLBACK TO SAVEPOINT sent after the range failed */
    S_SPLIT_REFUSED,  /* a COPY was refused: roll back once its results are all read */
    S_TRUNCATING,
    S_FINISHED,
    S_ABORTING, /* stop requested: CopyFail sent or a COMMIT awaited, then close */
    S_CLOSED
};

struct sink_pg;

/* The stage: what every connection shares, and which connection takes which batch. */
struct sink {
    struct pgfeed_stage base;
    struct pgfeed_sink_events ev; /* what the sink reports, and asks of other stages */
    struct sink_pg *conns[PGFEED_MAX_CONNECTIONS]; /* conns[0] also reads the catalog etc. */
    size_t nconns;
    struct sink_pg *cur; /* the connection taking the current batch's rows, or NULL */
    uint64_t commit_seq; /* the batch whose turn it is to commit (they commit in order) */
    int eof;             /* finish() was called */
    int stop_requested;
    int any_batch;         /* a batch transaction has been started */
    int any_end;           /* end_batch has been called */
    uint64_t ended;        /* batches ended (end_batch calls taken) */
    size_t queue_budget;   /* COPY bytes a connection may queue in libpq before it blocks */
    uv_timer_t turn_timer; /* while a batch waits for its turn: is the turn's holder stuck? */
    int turn_timer_inited;

    char *qualified; /* regclass::text: the table's name as the server quotes it */
    struct pgfeed_column *cols;
    size_t ncols;
    char *copy_sql; /* "COPY t (a, b) FROM STDIN" */
    char *state_table;
    char *key, *source_name, *options, *others;
    struct pgfeed_checkpoint ckpt; /* as read at start */
    int retain;                    /* keep each batch's rows (--max-rejects > 0) */
    size_t *target_idx;            /* the COPY's columns, for turning a row back into input */
    size_t ntargets;
    const struct pgfeed_bin_field *bin; /* COPY binary: the targets' kinds; NULL: text */
    uint64_t next_first_line; /* first line of the next batch when the parser has no info */
};

/* One connection to the server, with the batch it is working on. */
struct sink_pg {
    struct sink *sh;
    size_t idx; /* in sh->conns */
    enum sink_state state;
    PGconn *conn;
    int sock;
    uv_poll_t *poll; /* on the current socket; NULL when none. Allocated per socket,
                      * since a closing handle for an old socket may still be pending */
    int poll_events;
    uv_timer_t connect_timer;
    int timer_inited;
    uv_timer_t kick_timer; /* 0 ms: handle what libpq already holds (see sink_watch) */
    int kick_inited;
    int blocked;      /* PQflush returned 1: waiting for writable */
    int last;         /* its batch is the input's last */
    int holding_ref;  /* a stopping sink still talks to the server: the job must wait */
    int blocks_turn;  /* TURN_CHECK: this batch holds a lock the turn's batch waits for */
    int trailer_sent; /* COPY binary: this COPY's trailer is queued */
    size_t queued;    /* bytes put since PQflush last sent everything (an upper bound) */

    /*
     * With --max-rejects > 0 the batch's COPY data is kept (at most
     * --batch-bytes) so that a batch the server refuses can be tried again
     * without the rows it names, each range of rows under a savepoint.
     */
    int batch_truncates;    /* this batch's transaction starts with TRUNCATE */
    struct pgfeed_buf kept; /* the batch's COPY rows */
    size_t *row_off;        /* nrows + 1 row starts in kept */
    size_t nrows, cap_rows;
    struct split_range {
        size_t a, b; /* rows [a, b) of the batch */
    } * stack;
    size_t nstack, cap_stack;
    struct split_range cur; /* the range being tried */
    size_t send_pos;        /* next byte of kept to send for cur */
    int savepoint;          /* a savepoint exists in the retry transaction */
    int split_first;        /* the refused COPY was the batch's first try */

    struct pgfeed_batch_info batch; /* the batch being ended */
    uint64_t ckpt_raw;              /* its checkpoint's raw_offset (0: no restart point) */
    uint64_t batch_rows_base;       /* rows_sent when the current batch started */
};

static void sink_poll_cb(uv_poll_t *h, int status, int events);
static void kick_cb(uv_timer_t *t);
static void turn_timer_cb(uv_timer_t *t);
static void sink_process(struct sink_pg *k);
static int sink_watch(struct sink_pg *k, int events);
static int fail_conn(struct sink_pg *k, const char *what);
static int mark_finished(struct sink_pg *k);
static void close_all(struct sink_pg *k);
static int send_checkpoint(struct sink_pg *k);

/* How long a stopping sink waits for the server to confirm a CopyFail or a COMMIT. */
#define ABORT_WAIT_MS 5000
/* How often a batch waiting for its turn checks that it does not block that turn's holder. */
#define TURN_CHECK_MS 1000

static struct sink *sink_of(struct pgfeed_stage *s)
{
    return container_of(s, struct sink, base);
}

static struct pgfeed_ctx *ctx_of(struct sink_pg *k)
{
    return k->sh->base.ctx;
}

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
    pgfeed__ctx_handle_closing(ctx_of(k));
    k->poll->data = ctx_of(k);
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
static int sink_watch(struct sink_pg *k, int events)
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
        int rc = uv_poll_init_socket(pgfeed__ctx_loop(ctx_of(k)), p, fd);
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
        return uv_poll_start(k->poll, events, sink_poll_cb);
    }
    return 0;
}

/* -------------------------------------------------------------- errors */

static int fail_conn(struct sink_pg *k, const char *what)
{
    /* It was up, or the import ran before this attempt: a restart or a cut, worth retrying
     * (a server restarting refuses connections, or answers 57P03, for a while). */
    if (k->conn == NULL || k->sh->stop_requested)
        return PGFEED_ECANCELED; /* closed by a stop: nothing went wrong on the wire */
    if ((k->state != S_CONNECTING && k->state != S_NEW) || pgfeed__ctx_retrying(ctx_of(k)))
        pgfeed__ctx_transient(ctx_of(k));
    const char *m = PQerrorMessage(k->conn);
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", m && *m ? m : "no further information");
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
    return pgfeed__fail(ctx_of(k), "sink", PGFEED_ECONNECT, detail, hint, "%s", what);
}

/* "COPY names, line 3, column birth_year: ..." -> 3 and "birth_year". */
static uint64_t copy_context_line(const char *ctx, char *col, size_t colcap)
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

static int fail_result(struct sink_pg *k, PGresult *r, int in_batch)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *sdetail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *shint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
    const char *sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *context = PQresultErrorField(r, PG_DIAG_CONTEXT);
    char col[128];
    uint64_t cline = copy_context_line(context, col, sizeof col);
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
        line =
            k->sh->ev.row_line ? k->sh->ev.row_line(k->sh->ev.arg, k->batch.seq, cline) : 0;
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
    if (sqlstate && (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P0", 4) == 0 ||
                     strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0))
        pgfeed__ctx_transient(ctx); /* connection trouble, shutdown, serialization, deadlock */
    if (sqlstate && strcmp(sqlstate, "42P01") == 0) {
        code = PGFEED_ETABLE;
        hint = "Create the table first, or check --table and the search_path.";
    } else if (sqlstate && strncmp(sqlstate, "42", 2) == 0 && k->state == S_CATALOG) {
        code = PGFEED_ETABLE;
    }
    pgfeed__fail(ctx, "sink", code, detail[0] ? detail : NULL, hint, "%s",
                 primary ? primary : PQresultErrorMessage(r));
    pgfeed__fail_sqlstate(ctx, sqlstate);
    if (in_batch)
        pgfeed__fail_count_committed(ctx);
    if (line)
        pgfeed__fail_at(ctx, line, 0, col[0] ? col : NULL, 0, 0);
    return code;
}

/* ------------------------------------------------------------ the stage */

static int send_query(struct sink_pg *k, const char *sql, enum sink_state next)
{
    if (!PQsendQuery(k->conn, sql))
        return fail_conn(k, "could not send a query to the server");
    k->state = next;
    int f = PQflush(k->conn);
    if (f < 0)
        return fail_conn(k, "lost the connection to the server");
    return sink_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static int start_batch(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx_of(k));
    char *sql;
    if (o->truncate && !sh->any_batch)
        sql = pgfeed__strdup_printf("BEGIN; TRUNCATE %s; %s", sh->qualified, sh->copy_sql);
    else
        sql = pgfeed__strdup_printf("BEGIN; %s", sh->copy_sql);
    if (sql == NULL)
        return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->batch_truncates = o->truncate && !sh->any_batch;
    sh->any_batch = 1;
    k->batch_rows_base = pgfeed__ctx_stats(ctx_of(k))->rows_sent;
    k->kept.len = 0;
    k->nrows = 0;
    k->last = 0;
    k->batch.seq = sh->ended; /* batches are read one after another */
    int rc = send_query(k, sql, S_STARTING);
    free(sql);
    if (rc == 0)
        sh->cur = k;
    return rc;
}

/* A connection with no transaction open, or NULL when every one is busy (or still connecting). */
static struct sink_pg *idle_conn(struct sink *sh)
{
    for (size_t i = 0; i < sh->nconns; i++)
        if (sh->conns[i] && sh->conns[i]->state == S_READY)
            return sh->conns[i];
    return NULL;
}

/* No connection has a batch in flight (all are READY). */
static int all_idle(struct sink *sh)
{
    for (size_t i = 0; i < sh->nconns; i++)
        if (sh->conns[i] == NULL || sh->conns[i]->state != S_READY)
            return 0;
    return 1;
}

/*
 * The connection that takes the current batch's rows, starting a batch on an
 * idle one when there is none; NULL (with EAGAIN, ECANCELED after a stop, or an error in *rc) until
 * one is in COPY_IN and not blocked.
 */
static struct sink_pg *copy_conn(struct sink *sh, int *rc)
{
    struct sink_pg *k = sh->cur;
    *rc = PGFEED_EAGAIN;
    if (sh->stop_requested) {
        *rc = PGFEED_ECANCELED;
        return NULL;
    }
    if (k == NULL) {
        k = idle_conn(sh);
        if (k == NULL) {
            pgfeed__ctx_server_wait(sh->base.ctx, 1);
            return NULL;
        }
        int r = start_batch(k);
        if (r != 0)
            *rc = r;
        else
            pgfeed__ctx_server_wait(sh->base.ctx, 1);
        return NULL;
    }
    if (k->state != S_COPY_IN || k->blocked) {
        pgfeed__ctx_server_wait(sh->base.ctx, 1);
        return NULL;
    }
    *rc = 0;
    return k;
}

static int sink_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct sink *sh = sink_of(s);
    int rc;
    struct sink_pg *k = copy_conn(sh, &rc);
    if (k == NULL)
        return rc;
    if (n == 0)
        return 0;
    if (sh->retain && pgfeed__buf_append(&k->kept, p, n) != 0)
        return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int r = PQputCopyData(k->conn, p, (int)n);
    if (r == 0) {
        if (sh->retain)
            k->kept.len -= n;
        return PGFEED_EAGAIN;
    }
    if (r < 0)
        return fail_conn(k, "could not send COPY data to the server");
    int f = PQflush(k->conn);
    if (f < 0)
        return fail_conn(k, "could not send COPY data to the server");
    if (f == 0)
        k->queued = 0;
    if (f == 1) {
        /*
         * With several connections each may queue up to queue_budget bytes in libpq
         * before it holds the parser back: while the next batch goes to another
         * connection, this one's server still has data to work on.
         */
        k->queued += n;
        k->blocked = k->queued >= sh->queue_budget;
        if (k->blocked)
            pgfeed__ctx_server_wait(ctx_of(k), 1);
        rc = sink_watch(k, UV_READABLE | UV_WRITABLE);
        if (rc != 0)
            return pgfeed__fail(ctx_of(k), "sink", rc, NULL, NULL,
                                "could not watch the connection: %s", uv_strerror(rc));
    }
    return 0;
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
        return fail_conn(k, "could not send COPY data to the server");
    return 0;
}

static int copy_binary_trailer(struct sink_pg *k)
{
    if (!k->sh->bin || k->trailer_sent)
        return 0;
    if (PQputCopyData(k->conn, "\377\377", 2) != 1)
        return fail_conn(k, "could not send COPY data to the server");
    k->trailer_sent = 1;
    return 0;
}

static int end_copy(struct sink_pg *k)
{
    if (copy_binary_trailer(k) != 0)
        return -1;
    int r = PQputCopyEnd(k->conn, NULL);
    if (r < 0)
        return fail_conn(k, "could not end COPY");
    if (r == 0)
        return PGFEED_EAGAIN;
    k->state = S_ENDING;
    if (k->sh->cur == k)
        k->sh->cur = NULL; /* the next batch may go to another connection */
    int f = PQflush(k->conn);
    if (f < 0)
        return fail_conn(k, "could not end COPY");
    k->blocked = f == 1;
    return sink_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static int sink_end_batch(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi)
{
    struct sink *sh = sink_of(s);
    int rc;
    struct sink_pg *k = copy_conn(sh, &rc);
    if (k == NULL)
        return rc;
    k->batch = *bi;
    sh->ended = bi->seq + 1;
    sh->next_first_line = bi->last_line + 1;
    sh->any_end = 1;
    return end_copy(k);
}

static int sink_finish(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    if (sh->stop_requested)
        return PGFEED_ECANCELED;
    struct sink_pg *k = sh->cur;
    if (k != NULL) {
        if (k->state != S_COPY_IN || k->blocked) {
            pgfeed__ctx_server_wait(sh->base.ctx, 1);
            return PGFEED_EAGAIN;
        }
        /* The last, partial batch: no end_batch for it; the parser says where it is. */
        const struct pgfeed_stats *st = pgfeed__ctx_stats(ctx_of(k));
        sh->eof = 1;
        k->last = 1;
        if (sh->ev.pending_batch(sh->ev.arg, &k->batch) == 0)
            return end_copy(k);
        k->batch.seq = sh->ended;
        k->batch.rows = st->rows_sent - k->batch_rows_base;
        k->batch.last_line = st->lines_read;
        /* After a full batch the next starts on the following line; before any, one row
         * per line (tsv, text) puts the first at lines_read - rows + 1. */
        k->batch.first_line =
            sh->any_end ? sh->next_first_line : st->lines_read - k->batch.rows + 1;
        k->batch.end_decoded = st->bytes_inflated;
        return end_copy(k);
    }
    if (!all_idle(sh)) {
        /* Earlier batches are still committing: called again after resume. */
        pgfeed__ctx_server_wait(sh->base.ctx, 1);
        return PGFEED_EAGAIN;
    }
    sh->eof = 1;
    k = sh->conns[0];
    k->last = 1;
    const struct pgfeed_options *o = pgfeed__ctx_options(sh->base.ctx);
    if (o->truncate && !sh->any_batch) {
        /* An empty input with --truncate still empties the table. */
        char *sql = pgfeed__strdup_printf("TRUNCATE %s", sh->qualified);
        if (sql == NULL)
            return pgfeed__fail(sh->base.ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
        sh->any_batch = 1;
        int rc = send_query(k, sql, S_TRUNCATING);
        free(sql);
        return rc;
    }
    return mark_finished(k);
}

static void sink_resume(struct pgfeed_stage *s)
{
    pgfeed__stage_resume_upstream(s);
}

/* Runs after each state change that frees room for the parser. */
static void wake_upstream(struct sink_pg *k)
{
    pgfeed__ctx_server_wait(ctx_of(k), 0);
    if (k->sh->base.prev)
        pgfeed__ctx_schedule_resume(ctx_of(k), k->sh->base.prev);
}

/*
 * The batch's COPY went through (or its refused rows were set aside): write
 * its checkpoint and commit when every earlier batch has committed, else wait
 * for that turn. Batches commit in the order they were read, so the state
 * table's row always describes a prefix of the input: no gaps to remember.
 */
static int checkpoint_when_turn(struct sink_pg *k)
{
    if (k->batch.seq != k->sh->commit_seq) {
        k->state = S_WAIT_TURN;
        if (k->sh->turn_timer_inited && !uv_is_active((uv_handle_t *)&k->sh->turn_timer))
            uv_timer_start(&k->sh->turn_timer, turn_timer_cb, TURN_CHECK_MS, TURN_CHECK_MS);
        return 0;
    }
    if (send_checkpoint(k) != 0)
        return -1;
    k->state = S_CHECKPOINT;
    return 0;
}

/*
 * A batch waiting for its turn may itself hold up the batch whose turn it is:
 * a row of the later batch took a unique key that a row of the earlier one
 * wants too, and the server makes the earlier wait for the later's end, which
 * never comes. Every TURN_CHECK_MS a waiting connection asks the server
 * (pg_blocking_pids) whether one of ours blocks the turn's holder.
 */
static void turn_timer_cb(uv_timer_t *t)
{
    struct sink *sh = t->data;
    struct sink_pg *holder = NULL, *asker = NULL;
    for (size_t i = 0; i < sh->nconns; i++) {
        struct sink_pg *c = sh->conns[i];
        if (c->state == S_WAIT_TURN && asker == NULL)
            asker = c;
        else if (c->batch.seq == sh->commit_seq && c->state >= S_STARTING &&
                 c->state != S_FINISHED && c->state < S_TRUNCATING && c->conn)
            holder = c;
    }
    if (asker == NULL) {
        uv_timer_stop(t);
        return;
    }
    if (holder == NULL || sh->stop_requested)
        return;
    char pid[24];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(holder->conn));
    const char *params[1] = {pid};
    if (!PQsendQueryParams(asker->conn, "SELECT unnest(pg_blocking_pids($1::int))", 1, NULL, params,
                           NULL, NULL, 0)) {
        fail_conn(asker, "could not query the server");
        return;
    }
    asker->state = S_TURN_CHECK;
    asker->blocks_turn = 0;
    int f = PQflush(asker->conn);
    if (f < 0)
        fail_conn(asker, "lost the connection to the server");
    else
        sink_watch(asker, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

/* TURN_CHECK's answer, one blocking pid per row: is one of them a backend of ours? */
static void turn_check_result(struct sink_pg *k, PGresult *r)
{
    struct sink *sh = k->sh;
    for (int i = 0; i < PQntuples(r); i++) {
        int pid = atoi(PQgetvalue(r, i, 0));
        for (size_t j = 0; j < sh->nconns; j++)
            if (sh->conns[j]->conn && sh->conns[j]->state == S_WAIT_TURN &&
                PQbackendPID(sh->conns[j]->conn) == pid)
                k->blocks_turn = (int)j + 1;
        if (pid == PQbackendPID(k->conn))
            k->blocks_turn = (int)k->idx + 1;
    }
}

/* TURN_CHECK done: wait on (or commit, if the turn came meanwhile), or give up on a deadlock. */
static int turn_check_done(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    k->state = S_WAIT_TURN;
    if (k->blocks_turn) {
        struct sink_pg *b = sh->conns[k->blocks_turn - 1];
        char detail[512];
        snprintf(detail, sizeof detail,
                 "Batches are loaded on %zu connections and commit in input order; a row of "
                 "the batch of lines %llu to %llu conflicts with one of the earlier batch (a "
                 "duplicate unique key, say), so the server holds the earlier one back until "
                 "the later one ends. The later batch is rolled back.",
                 sh->nconns, (unsigned long long)b->batch.first_line,
                 (unsigned long long)b->batch.last_line);
        pgfeed__ctx_transient(ctx_of(k)); /* retried from the checkpoint, as for a deadlock */
        pgfeed__fail(ctx_of(k), "sink", PGFEED_ESERVER, detail,
                     "Input whose rows may repeat a unique key loads with -j 1.",
                     "the batch whose turn it is to commit waits for a lock held by a later batch");
        pgfeed__fail_sqlstate(ctx_of(k), "40P01");
        return -1;
    }
    return checkpoint_when_turn(k);
}

/* A batch committed: the connection holding the next one in order may go on. */
static void next_turn(struct sink *sh)
{
    sh->commit_seq++;
    for (size_t i = 0; i < sh->nconns; i++) {
        struct sink_pg *c = sh->conns[i];
        if (c && c->state == S_WAIT_TURN && c->batch.seq == sh->commit_seq) {
            if (checkpoint_when_turn(c) == 0) {
                int f = PQflush(c->conn);
                if (f < 0)
                    fail_conn(c, "lost the connection to the server");
                else
                    sink_watch(c, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
            }
            return;
        }
    }
}

/* ------------------------------------------------------------ results */

static int handle_result_catalog(struct sink_pg *k, PGresult *r)
{
    int nt = PQntuples(r);
    if (nt == 0) {
        return pgfeed__fail(ctx_of(k), "sink", PGFEED_ETABLE,
                            "A table without columns cannot be loaded.", NULL,
                            "table \"%s\" has no columns", pgfeed__ctx_options(ctx_of(k))->table);
    }
    k->sh->cols = calloc((size_t)nt, sizeof *k->sh->cols);
    if (k->sh->cols == NULL)
        return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->sh->ncols = (size_t)nt;
    for (int i = 0; i < nt; i++) {
        k->sh->cols[i].name = strdup(PQgetvalue(r, i, 1));
        k->sh->cols[i].is_array = PQgetvalue(r, i, 2)[0] == 't';
        k->sh->cols[i].type_oid = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
        k->sh->cols[i].elem_oid = (uint32_t)strtoul(PQgetvalue(r, i, 4), NULL, 10);
        k->sh->cols[i].type_name = strdup(PQgetvalue(r, i, 5));
        if (k->sh->cols[i].name == NULL || k->sh->cols[i].type_name == NULL)
            return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    k->sh->qualified = strdup(PQgetvalue(r, 0, 0));
    if (k->sh->qualified == NULL)
        return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    return 0;
}

static char *u64s(char *buf, size_t cap, uint64_t v)
{
    snprintf(buf, cap, "%llu", (unsigned long long)v);
    return buf;
}

/*
 * The batch's checkpoint: sent after its COPY succeeded and before COMMIT,
 * in the same transaction, so the row and the data commit together.
 */
static int send_checkpoint(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
    const struct pgfeed_stats *st = pgfeed__ctx_stats(ctx);
    const struct pgfeed_validators *v = k->sh->ev.validators(k->sh->ev.arg);
    uint64_t base_rows, base_batches;
    k->sh->ev.committed_base(k->sh->ev.arg, &base_rows, &base_batches);
    char rows[24], batches[24], lines[24], dec[24], raw[24], size[24];
    u64s(rows, sizeof rows, base_rows + st->rows_committed + k->batch.rows);
    u64s(batches, sizeof batches, base_batches + st->batches_committed + 1);
    u64s(lines, sizeof lines, k->batch.last_line);
    u64s(dec, sizeof dec, k->batch.end_decoded);
    /* Where a resume can restart reading: the decoder's access point before the batch end. */
    struct pgfeed_buf blob = {0}, hex = {0};
    uint64_t raw_offset = 0;
    int have_point = k->sh->ev.restart_point(k->sh->ev.arg, k->batch.end_decoded, &blob, &raw_offset) == 0;
    if (have_point && pgfeed__buf_reserve(&hex, 2 * blob.len + 3) == 0) {
        static const char digits[] = "0123456789abcdef";
        hex.data[hex.len++] = '\\';
        hex.data[hex.len++] = 'x';
        for (size_t i = 0; i < blob.len; i++) {
            hex.data[hex.len++] = digits[(unsigned char)blob.data[i] >> 4];
            hex.data[hex.len++] = digits[(unsigned char)blob.data[i] & 15];
        }
        hex.data[hex.len] = '\0';
    } else {
        have_point = 0;
        raw_offset = 0;
    }
    pgfeed__buf_free(&blob);
    k->ckpt_raw = raw_offset;
    u64s(raw, sizeof raw, raw_offset);
    int have_size = v && v->size >= 0;
    if (have_size)
        snprintf(size, sizeof size, "%lld", (long long)v->size);
    const char *params[14] = {k->sh->key,
                              k->sh->source_name,
                              k->sh->qualified,
                              k->sh->options ? k->sh->options : "",
                              v ? v->etag : NULL,
                              v ? v->last_modified : NULL,
                              have_size ? size : NULL,
                              rows,
                              batches,
                              lines,
                              dec,
                              raw,
                              k->last ? "t" : "f",
                              have_point ? hex.data : NULL};
    char *sql = pgfeed__strdup_printf(
        "INSERT INTO %s AS c (job_key, source, target, options, etag, last_modified, size,"
        " rows_committed, batches, lines_committed, decoded_offset, raw_offset, restart, finished,"
        " started_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $13, now(), now())"
        " ON CONFLICT (job_key) DO UPDATE SET source = EXCLUDED.source, target = EXCLUDED.target,"
        " options = EXCLUDED.options, etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,"
        " size = EXCLUDED.size, rows_committed = EXCLUDED.rows_committed,"
        " batches = EXCLUDED.batches, lines_committed = EXCLUDED.lines_committed,"
        " decoded_offset = EXCLUDED.decoded_offset, raw_offset = EXCLUDED.raw_offset,"
        " restart = EXCLUDED.restart, finished = EXCLUDED.finished,"
        " started_at = CASE WHEN c.finished THEN now() ELSE c.started_at END,"
        " updated_at = now()",
        k->sh->state_table);
    if (sql == NULL) {
        pgfeed__buf_free(&hex);
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    int ok = PQsendQueryParams(k->conn, sql, 14, NULL, params, NULL, NULL, 0);
    free(sql);
    pgfeed__buf_free(&hex);
    if (!ok)
        return fail_conn(k, "could not write the checkpoint");
    return 0;
}

static int mark_finished(struct sink_pg *k)
{
    int rc = pgfeed__ctx_flush_rejects(ctx_of(k), UINT64_MAX);
    if (rc != 0)
        return rc;
    char *sql = pgfeed__strdup_printf(
        "UPDATE %s SET finished = true, updated_at = now() WHERE job_key = $1", k->sh->state_table);
    const char *params[1] = {k->sh->key};
    if (sql == NULL)
        return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int ok = PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0);
    free(sql);
    if (!ok)
        return fail_conn(k, "could not mark the checkpoint finished");
    k->state = S_MARK_FINISHED;
    int f = PQflush(k->conn);
    if (f < 0)
        return fail_conn(k, "lost the connection to the server");
    return sink_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static char *dup_value(PGresult *r, int col)
{
    if (PQgetisnull(r, 0, col))
        return NULL;
    return strdup(PQgetvalue(r, 0, col));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int read_checkpoint(struct sink_pg *k, PGresult *r)
{
    struct pgfeed_checkpoint *c = &k->sh->ckpt;
    pgfeed__checkpoint_clear(c);
    c->found = 1;
    c->rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    c->batches = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    c->lines = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
    c->decoded_offset = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    c->raw_offset = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
    if (!PQgetisnull(r, 0, 5)) {
        const char *hex = PQgetvalue(r, 0, 5);
        size_t n = strlen(hex) / 2;
        c->restart = malloc(n ? n : 1);
        if (c->restart == NULL)
            return pgfeed__fail(ctx_of(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
        for (size_t i = 0; i < n; i++)
            c->restart[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        c->restart_len = n;
    }
    c->finished = PQgetvalue(r, 0, 6)[0] == 't';
    c->options = dup_value(r, 7);
    c->etag = dup_value(r, 8);
    c->last_modified = dup_value(r, 9);
    c->size = PQgetisnull(r, 0, 10) ? -1 : strtoll(PQgetvalue(r, 0, 10), NULL, 10);
    c->updated_at = dup_value(r, 11);
    if (PQgetvalue(r, 0, 12)[0] != 't') {
        c->found = 0; /* another job's: only its numbers are of interest */
        c->other = 1;
    }
    return 0;
}

/* ------------------------------------------------- isolating refused rows */

/* Class 22 (data exception) and 23 (integrity constraint violation): one row's fault. */
static int is_data_error(const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st && (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0);
}

/* Row starts in kept: each COPY text row ends with the only unescaped LF it holds; binary
 * tuples say their lengths. */
static int index_rows(struct sink_pg *k)
{
    k->nrows = 0;
    size_t pos = 0;
    for (;;) {
        if (k->nrows + 2 > k->cap_rows) {
            size_t cap = k->cap_rows ? k->cap_rows * 2 : 1024;
            size_t *p = realloc(k->row_off, cap * sizeof *p);
            if (p == NULL)
                return UV_ENOMEM;
            k->row_off = p;
            k->cap_rows = cap;
        }
        k->row_off[k->nrows] = pos;
        if (pos >= k->kept.len)
            break;
        if (k->sh->bin) {
            size_t len = pgfeed__bin_tuple_len(k->kept.data + pos, k->kept.len - pos);
            pos = len ? pos + len : k->kept.len;
        } else {
            const char *nl = memchr(k->kept.data + pos, '\n', k->kept.len - pos);
            pos = nl ? (size_t)(nl - k->kept.data) + 1 : k->kept.len;
        }
        k->nrows++;
    }
    return 0;
}

static int push_range(struct sink_pg *k, size_t a, size_t b)
{
    if (a >= b)
        return 0;
    if (k->nstack == k->cap_stack) {
        size_t cap = k->cap_stack ? k->cap_stack * 2 : 16;
        struct split_range *p = realloc(k->stack, cap * sizeof *p);
        if (p == NULL)
            return UV_ENOMEM;
        k->stack = p;
        k->cap_stack = cap;
    }
    k->stack[k->nstack].a = a;
    k->stack[k->nstack].b = b;
    k->nstack++;
    return 0;
}

/* Undoes COPY text escaping of one field into out (tsv: backslashes are data again). */
static int unescape_field(struct pgfeed_buf *out, const char *p, size_t n)
{
    if (pgfeed__buf_reserve(out, n) != 0)
        return UV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[++i];
            c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
        }
        out->data[out->len++] = c;
    }
    return 0;
}

/* {"a","b\"c"} (already COPY-unescaped) -> a,b"c: the array back to its input form. */
static int unarray(struct pgfeed_buf *out, const char *p, size_t n)
{
    if (n < 2 || p[0] != '{' || p[n - 1] != '}')
        return pgfeed__buf_append(out, p, n);
    if (pgfeed__buf_reserve(out, n) != 0)
        return UV_ENOMEM;
    int inq = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = p[i];
        if (c == '"') {
            inq = !inq;
            continue;
        }
        if (c == '\\' && inq && i + 2 < n)
            c = p[++i];
        out->data[out->len++] = c;
    }
    return 0;
}

/*
 * The input form of row i, for the rejects file: tsv fields unescaped, NULL
 * as the null marker, arrays as comma lists (the exact line that was read,
 * CR of a CRLF aside); text rows as they are; csv rows re-quoted as needed.
 */
static int row_as_input(struct sink_pg *k, size_t i, struct pgfeed_buf *out)
{
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx_of(k));
    const char *p = k->kept.data + k->row_off[i];
    size_t n = k->row_off[i + 1] - k->row_off[i];
    if (k->sh->bin) {
        int csv = o->format == PGFEED_FORMAT_CSV;
        const char *null = o->null_marker ? o->null_marker : csv ? "" : "\\N";
        int rc = pgfeed__bin_row_as_input(out, p, n, k->sh->bin, k->sh->ntargets, o->delimiter,
                                          null, csv ? (o->quote ? o->quote : '"') : 0);
        return rc == UV_EINVAL ? pgfeed__buf_append(out, "?", 1) : rc;
    }
    if (n && p[n - 1] == '\n')
        n--;
    if (o->format == PGFEED_FORMAT_TEXT)
        return pgfeed__buf_append(out, p, n);
    const char *null = o->null_marker ? o->null_marker : "\\N";
    int csv = o->format == PGFEED_FORMAT_CSV;
    char delim = o->delimiter ? o->delimiter : '\t';
    struct pgfeed_buf f = {0}, g = {0};
    int rc = 0;
    size_t field = 0, start = 0;
    for (size_t j = 0; j <= n && rc == 0; j++) {
        if (j < n && p[j] != '\t')
            continue;
        if (field)
            rc |= pgfeed__buf_append(out, &delim, 1);
        const char *fp = p + start;
        size_t fn = j - start;
        if (fn == 2 && fp[0] == '\\' && fp[1] == 'N') {
            rc |= pgfeed__buf_append(out, null, strlen(null));
        } else {
            f.len = g.len = 0;
            rc |= unescape_field(&f, fp, fn);
            int is_array =
                field < k->sh->ntargets && k->sh->cols[k->sh->target_idx[field]].is_array;
            struct pgfeed_buf *v = &f;
            if (is_array && rc == 0) {
                rc |= unarray(&g, f.data, f.len);
                v = &g;
            }
            int quote = csv && v->len > 0 &&
                        (memchr(v->data, delim, v->len) || memchr(v->data, '"', v->len) ||
                         memchr(v->data, '\n', v->len) || memchr(v->data, '\r', v->len));
            if (csv && v->len == 0 && strlen(null) == 0)
                quote = 1; /* an empty string, not NULL */
            if (quote) {
                rc |= pgfeed__buf_append(out, "\"", 1);
                for (size_t q = 0; q < v->len && rc == 0; q++)
                    rc |= pgfeed__buf_append(out, v->data[q] == '"' ? "\"\"" : &v->data[q],
                                             v->data[q] == '"' ? 2 : 1);
                rc |= pgfeed__buf_append(out, "\"", 1);
            } else if (v->len) {
                rc |= pgfeed__buf_append(out, v->data, v->len);
            }
        }
        field++;
        start = j + 1;
    }
    pgfeed__buf_free(&f);
    pgfeed__buf_free(&g);
    return rc;
}

/* Rejects row i (0-based in the batch) with the server's error. 0, or <0: the import fails. */
static int reject_row(struct sink_pg *k, size_t i, const PGresult *r)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
    uint64_t line = 0;
    if (k->sh->base.prev)
        line = k->sh->ev.row_line(k->sh->ev.arg, k->batch.seq, i + 1);
    if (line == 0)
        line = k->batch.first_line + i;
    char col[128];
    copy_context_line(PQresultErrorField(r, PG_DIAG_CONTEXT), col, sizeof col);
    struct pgfeed_buf raw = {0};
    if (row_as_input(k, i, &raw) != 0) {
        pgfeed__buf_free(&raw);
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    struct pgfeed_reject rj = {
        .stage = "sink",
        .line = line,
        .column_name = col[0] ? col : NULL,
        .message = primary ? primary : "the server refused the row",
        .detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL),
        .hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT),
        .raw = raw.data,
        .raw_len = raw.len,
    };
    int rc = pgfeed__ctx_reject(ctx, &rj);
    if (rc != 0)
        pgfeed__fail_sqlstate(ctx, PQresultErrorField(r, PG_DIAG_SQLSTATE));
    pgfeed__buf_free(&raw);
    if (rc == 0)
        k->batch.rows--; /* committed rows of this batch */
    return rc;
}

/*
 * The server refused the batch (or one range of it). The row its context
 * names is rejected and the rows on either side are tried again; without a
 * row number the range is halved, down to single rows.
 */
static int split_refused(struct sink_pg *k, const PGresult *r)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
    int first = k->state == S_ENDING;
    if (first) {
        if (index_rows(k) != 0)
            return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
        k->nstack = 0;
        k->cur.a = 0;
        k->cur.b = k->nrows;
        pgfeed__log(ctx, PGFEED_LOG_INFO,
                    "the server refused the batch of lines %llu to %llu; isolating the bad rows",
                    (unsigned long long)k->batch.first_line,
                    (unsigned long long)k->batch.last_line);
    }
    char col[128];
    uint64_t cline = copy_context_line(PQresultErrorField(r, PG_DIAG_CONTEXT), col, sizeof col);
    size_t a = k->cur.a, b = k->cur.b;
    int rc = 0;
    if (cline >= 1 && cline <= b - a) {
        size_t bad = a + (size_t)cline - 1;
        rc = reject_row(k, bad, r);
        if (rc == 0)
            rc = push_range(k, bad + 1, b) | push_range(k, a, bad); /* [a, bad) first */
    } else if (b - a == 1) {
        rc = reject_row(k, a, r);
    } else {
        size_t mid = a + (b - a) / 2;
        rc = push_range(k, mid, b) | push_range(k, a, mid);
    }
    if (rc != 0) {
        if (rc == UV_ENOMEM)
            pgfeed__fail(ctx, "sink", rc, NULL, NULL, "out of memory");
        return rc; /* the job stops; the aborted transaction dies with the connection */
    }
    /* The rollback is sent once libpq has handed over the last result (NULL). */
    k->split_first = first;
    k->state = S_SPLIT_REFUSED;
    return 0;
}

/* Tries the next range under a savepoint, or commits the batch when none is left. */
static int split_next(struct sink_pg *k)
{
    if (k->nstack == 0)
        return checkpoint_when_turn(k);
    k->cur = k->stack[--k->nstack];
    char *sql = pgfeed__strdup_printf("%sSAVEPOINT pgfeed_split; %s",
                                      k->savepoint ? "RELEASE SAVEPOINT pgfeed_split; " : "",
                                      k->sh->copy_sql);
    int ok = sql && PQsendQuery(k->conn, sql);
    free(sql);
    if (!ok)
        return fail_conn(k, "could not retry the batch");
    k->savepoint = 1;
    k->send_pos = k->row_off[k->cur.a];
    k->state = S_SPLIT_STARTING;
    return 0;
}

/* Sends the current range's rows; ends its COPY when all are queued. */
static void split_send(struct sink_pg *k)
{
    size_t end = k->row_off[k->cur.b];
    while (k->send_pos < end) {
        size_t n = end - k->send_pos;
        if (n > (256u << 10))
            n = 256u << 10;
        int r = PQputCopyData(k->conn, k->kept.data + k->send_pos, (int)n);
        if (r < 0) {
            fail_conn(k, "could not send COPY data to the server");
            return;
        }
        if (r == 0)
            break;
        k->send_pos += n;
        int f = PQflush(k->conn);
        if (f < 0) {
            fail_conn(k, "could not send COPY data to the server");
            return;
        }
        if (f == 1) {
            sink_watch(k, UV_READABLE | UV_WRITABLE);
            return; /* continued from the poll callback */
        }
    }
    if (k->send_pos < end) {
        sink_watch(k, UV_READABLE | UV_WRITABLE);
        return;
    }
    if (copy_binary_trailer(k) != 0)
        return;
    if (PQputCopyEnd(k->conn, NULL) < 0) {
        fail_conn(k, "could not end COPY");
        return;
    }
    k->state = S_SPLIT_ENDING;
    int f = PQflush(k->conn);
    if (f < 0) {
        fail_conn(k, "could not end COPY");
        return;
    }
    sink_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

/* Consumes every available result; advances the state machine. */
static void sink_process(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
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
            if (k->state == S_SPLIT_STARTING) {
                k->state = S_SPLIT_COPYING;
                split_send(k);
                return;
            }
            k->state = S_COPY_IN;
            k->blocked = 0;
            sink_watch(k, UV_READABLE);
            wake_upstream(k);
            return;
        }
        if (r && (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)) {
            if (k->state == S_ABORTING) {
                PQclear(r);
                continue; /* the CopyFail we sent, or a statement after it */
            }
            if (k->sh->retain && (k->state == S_ENDING || k->state == S_SPLIT_ENDING) &&
                is_data_error(r)) {
                int rc = split_refused(k, r);
                PQclear(r);
                if (rc != 0)
                    return;
                continue;
            }
            fail_result(k, r, k->state == S_ENDING || k->state == S_STARTING);
            PQclear(r);
            if (k->sh->stop_requested) {
                k->state = S_CLOSED;
                close_all(k);
            }
            return;
        }
        if (r) {
            if (k->state == S_CATALOG && st == PGRES_TUPLES_OK) {
                if (handle_result_catalog(k, r) != 0) {
                    PQclear(r);
                    return;
                }
            }
            if (k->state == S_TURN_CHECK && st == PGRES_TUPLES_OK)
                turn_check_result(k, r);
            if (k->state == S_STATE_READ && st == PGRES_TUPLES_OK && PQntuples(r) == 1) {
                if (read_checkpoint(k, r) != 0) {
                    PQclear(r);
                    return;
                }
            }
            PQclear(r);
            continue;
        }
        /* r == NULL: the current command string is complete. */
        switch (k->state) {
        case S_SETUP:
            if (k->idx != 0) {
                /* Another connection for batches: conns[0] does the rest. */
                k->state = S_READY;
                wake_upstream(k);
                return;
            }
            {
                const char *params[1] = {pgfeed__ctx_options(ctx)->table};
                if (!PQsendQueryParams(
                        k->conn,
                        "SELECT a.attrelid::regclass::text, a.attname, t.typcategory = 'A',"
                        " a.atttypid::int8, t.typelem::int8, format_type(a.atttypid, a.atttypmod)"
                        " FROM pg_catalog.pg_attribute a"
                        " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
                        " WHERE a.attrelid = $1::regclass AND a.attnum > 0"
                        " AND NOT a.attisdropped AND a.attgenerated = ''"
                        " ORDER BY a.attnum",
                        1, NULL, params, NULL, NULL, 0)) {
                    fail_conn(k, "could not query the table's columns");
                    return;
                }
                k->state = S_CATALOG;
                break;
            }
        case S_CATALOG: {
            if (k->sh->ev.table_described(k->sh->ev.arg) != 0)
                return;
            char *sql = pgfeed__strdup_printf(
                "CREATE TABLE IF NOT EXISTS %s (job_key text PRIMARY KEY, source text NOT NULL,"
                " target text NOT NULL, options text NOT NULL, etag text, last_modified text,"
                " size bigint, rows_committed bigint NOT NULL, batches bigint NOT NULL,"
                " lines_committed bigint NOT NULL, decoded_offset bigint NOT NULL,"
                " raw_offset bigint NOT NULL, restart bytea, finished boolean NOT NULL,"
                " started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
                k->sh->state_table);
            if (sql == NULL || !PQsendQuery(k->conn, sql)) {
                free(sql);
                fail_conn(k, "could not create the checkpoint table");
                return;
            }
            free(sql);
            k->state = S_STATE_CREATE;
            break;
        }
        case S_STATE_CREATE: {
            char *sql = pgfeed__strdup_printf(
                "SELECT rows_committed, batches, lines_committed, decoded_offset, raw_offset,"
                " encode(restart, 'hex'), finished, options, etag, last_modified, size,"
                " to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS TZ'), job_key = $1 FROM %s"
                " WHERE job_key = $1 OR (job_key LIKE $2 AND NOT finished)"
                " ORDER BY job_key = $1 DESC, updated_at DESC LIMIT 1",
                k->sh->state_table);
            const char *params[2] = {k->sh->key, k->sh->others};
            if (sql == NULL || !PQsendQueryParams(k->conn, sql, 2, NULL, params, NULL, NULL, 0)) {
                free(sql);
                fail_conn(k, "could not read the checkpoint table");
                return;
            }
            free(sql);
            k->state = S_STATE_READ;
            break;
        }
        case S_STATE_READ:
            k->state = S_READY;
            if (k->sh->ev.checkpoint_read(k->sh->ev.arg) != 0)
                return;
            if (k->state != S_READY)
                break; /* the job asked for a DELETE: flush it below */
            return;
        case S_FORGET:
            k->state = S_READY;
            wake_upstream(k);
            return;
        case S_ENDING:
            if (checkpoint_when_turn(k) != 0)
                return;
            break;
        case S_TURN_CHECK:
            if (turn_check_done(k) != 0)
                return;
            break;
        case S_CHECKPOINT:
            /* Rejects of this batch go to the file before its rows commit: a crash
             * in between may repeat them on resume, but never loses one. */
            if (pgfeed__ctx_flush_rejects(ctx, k->last ? UINT64_MAX : k->batch.last_line) != 0)
                return;
            if (!PQsendQuery(k->conn, "COMMIT")) {
                fail_conn(k, "could not commit");
                return;
            }
            k->state = S_COMMITTING;
            break;
        case S_MARK_FINISHED:
            k->state = S_FINISHED;
            k->sh->ev.done(k->sh->ev.arg, 0);
            return;
        case S_SPLIT_ROLLBACK: {
            char *sql = k->batch_truncates
                            ? pgfeed__strdup_printf("BEGIN; TRUNCATE %s", k->sh->qualified)
                            : strdup("BEGIN");
            int ok = sql && PQsendQuery(k->conn, sql);
            free(sql);
            if (!ok) {
                fail_conn(k, "could not begin a transaction");
                return;
            }
            k->savepoint = 0;
            k->state = S_SPLIT_BEGIN;
            break;
        }
        case S_SPLIT_REFUSED: {
            const char *sql = k->split_first ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT pgfeed_split";
            if (!PQsendQuery(k->conn, sql)) {
                fail_conn(k, "could not roll back");
                return;
            }
            k->state = k->split_first ? S_SPLIT_ROLLBACK : S_SPLIT_UNDO;
            break;
        }
        case S_SPLIT_BEGIN:
        case S_SPLIT_ENDING: /* the range went in */
        case S_SPLIT_UNDO:   /* the range was rolled back; its pieces are on the stack */
            if (split_next(k) != 0)
                return;
            break;
        case S_COMMITTING:
        case S_TRUNCATING: {
            struct pgfeed_stats *stats = pgfeed__ctx_stats(ctx);
            if (k->state == S_COMMITTING) {
                stats->rows_committed += k->batch.rows;
                stats->batches_committed++;
                pgfeed__ctx_batch_committed(ctx, &k->batch, k->ckpt_raw);
                pgfeed__log(ctx, PGFEED_LOG_DEBUG, "committed lines %llu to %llu (%llu rows)",
                            (unsigned long long)k->batch.first_line,
                            (unsigned long long)k->batch.last_line,
                            (unsigned long long)k->batch.rows);
            }
            int was_truncating = k->state == S_TRUNCATING;
            k->state = S_READY;
            if (k->sh->stop_requested) {
                k->state = S_CLOSED;
                close_all(k);
                return;
            }
            if (!was_truncating)
                next_turn(k->sh);
            if (k->last) {
                if (was_truncating) {
                    if (mark_finished(k) != 0)
                        return;
                    break;
                }
                k->state = S_FINISHED;
                k->sh->ev.done(k->sh->ev.arg, 0);
                return;
            }
            wake_upstream(k);
            return;
        }
        case S_ABORTING: /* only a COPY ended with CopyFail gets here: nothing committed */
            k->state = S_CLOSED;
            close_all(k);
            return;
        default:
            return;
        }
        if (k->state == S_CLOSED || k->conn == NULL)
            return; /* the job stopped the sink from the call above (nothing left to resume) */
        int f = PQflush(k->conn);
        if (f < 0) {
            fail_conn(k, "lost the connection to the server");
            return;
        }
        sink_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
    }
}

static void connect_step(struct sink_pg *k);

/* Reads what the server sent and acts on every complete result. */
static void conn_readable(struct sink_pg *k)
{
    if (!PQconsumeInput(k->conn)) {
        fail_conn(k, "lost the connection to the server");
        if (k->sh->stop_requested) {
            k->state = S_CLOSED;
            close_all(k);
        }
        return;
    }
    sink_process(k);
}

static void sink_poll_cb(uv_poll_t *h, int status, int events)
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
            fail_conn(k, "lost the connection to the server");
            if (k->sh->stop_requested) {
                k->state = S_CLOSED;
                close_all(k);
            }
            return;
        }
        if (f == 0)
            k->queued = 0;
        if (f == 0 && k->state == S_SPLIT_COPYING) {
            split_send(k);
        } else if (f == 0) {
            sink_watch(k, UV_READABLE);
            if (k->blocked) {
                k->blocked = 0;
                if (k->state == S_COPY_IN || k->state == S_ENDING)
                    wake_upstream(k);
            }
        }
    }
    if (events & UV_READABLE)
        conn_readable(k);
}

/* A pass over libpq's buffer that no socket event announces (see sink_watch). */
static void kick_cb(uv_timer_t *t)
{
    struct sink_pg *k = t->data;
    if (k->conn == NULL || k->state == S_CLOSED || k->state == S_CONNECTING ||
        k->state == S_NEW || k->state == S_COPY_IN)
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
    pgfeed__log(ctx_of(k),
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
             pgfeed__ctx_options(ctx_of(k))->connect_timeout_s);
    if (pgfeed__ctx_retrying(ctx_of(k)))
        pgfeed__ctx_transient(ctx_of(k));
    pgfeed__fail(ctx_of(k), "sink", PGFEED_ECONNECT, detail,
                 "Check --db and that the server is reachable.",
                 "could not connect to the database server");
}

static void connect_step(struct sink_pg *k)
{
    PostgresPollingStatusType ps = PQconnectPoll(k->conn);
    int rc = 0;
    switch (ps) {
    case PGRES_POLLING_READING:
        rc = sink_watch(k, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = sink_watch(k, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        uv_timer_stop(&k->connect_timer);
        if (PQsetnonblocking(k->conn, 1) != 0) {
            fail_conn(k, "could not set the connection to nonblocking mode");
            return;
        }
        PQsetNoticeReceiver(k->conn, notice_cb, k);
        /* A bulk load waits on the network by design: no statement or idle timeouts. */
        k->state = S_CONNECTING; /* for send_query's state argument below */
        rc = send_query(k,
                        "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0;"
                        " SET client_encoding = 'UTF8'",
                        S_SETUP);
        break;
    default:
        fail_conn(k, "could not connect to the database server");
        return;
    }
    if (rc != 0 && ctx_of(k)->err.pub.code == 0)
        pgfeed__fail(ctx_of(k), "sink", rc, NULL, NULL, "could not watch the connection: %s",
                     uv_strerror(rc));
}

/* Starts connection k; conninfo was checked by pgfeed__sink_connect. */
static int conn_start(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = ctx_of(k);
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {o->conninfo ? o->conninfo : "", "pgfeed", NULL};
    k->conn = PQconnectStartParams(keys, vals, 1);
    if (k->conn == NULL)
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->state = S_CONNECTING;
    if (PQstatus(k->conn) == CONNECTION_BAD)
        return fail_conn(k, "could not connect to the database server");
    uv_timer_init(pgfeed__ctx_loop(ctx), &k->connect_timer);
    k->connect_timer.data = k;
    k->timer_inited = 1;
    uv_timer_init(pgfeed__ctx_loop(ctx), &k->kick_timer);
    k->kick_timer.data = k;
    k->kick_inited = 1;
    if (o->connect_timeout_s > 0)
        uv_timer_start(&k->connect_timer, connect_timer_cb,
                       (uint64_t)(o->connect_timeout_s * 1000.0), 0);
    int rc = sink_watch(k, UV_WRITABLE);
    if (rc != 0)
        return pgfeed__fail(ctx, "sink", rc, NULL, NULL, "could not watch the connection: %s",
                            uv_strerror(rc));
    return 0;
}

int pgfeed__sink_connect(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    const struct pgfeed_options *o = pgfeed__ctx_options(s->ctx);
    if (o->conninfo && (strchr(o->conninfo, '=') || strstr(o->conninfo, "://"))) {
        /* Say "invalid", not "could not connect", for a string libpq cannot read. */
        char *err = NULL;
        PQconninfoOption *parsed = PQconninfoParse(o->conninfo, &err);
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
                s->ctx, "sink", PGFEED_ECONNECT, detail,
                "Give --db a conninfo string such as \"host=/run/postgresql dbname=imdb\" or a URI such as postgresql://user@host/db.",
                "invalid connection string");
        }
        PQconninfoFree(parsed);
    }
    if (sh->nconns > 1) {
        uv_timer_init(pgfeed__ctx_loop(s->ctx), &sh->turn_timer);
        sh->turn_timer.data = sh;
        sh->turn_timer_inited = 1;
    }
    for (size_t i = 0; i < sh->nconns; i++) {
        int rc = conn_start(sh->conns[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const struct pgfeed_column *pgfeed__sink_columns(struct pgfeed_stage *s, size_t *n)
{
    struct sink *k = sink_of(s);
    *n = k->ncols;
    return k->cols;
}

int pgfeed__sink_set_targets(struct pgfeed_stage *s, const size_t *idx, size_t n,
                             const struct pgfeed_bin_field *bin)
{
    struct sink *sh = sink_of(s);
    struct sink_pg *k = sh->conns[0];
    sh->bin = bin;
    struct pgfeed_buf b = {0};
    int rc = 0;
    char *head = pgfeed__strdup_printf("COPY %s (", k->sh->qualified);
    if (head == NULL || pgfeed__buf_append(&b, head, strlen(head)) != 0)
        rc = UV_ENOMEM;
    free(head);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *q =
            PQescapeIdentifier(k->conn, k->sh->cols[idx[i]].name, strlen(k->sh->cols[idx[i]].name));
        if (q == NULL || (i && pgfeed__buf_append(&b, ", ", 2) != 0) ||
            pgfeed__buf_append(&b, q, strlen(q)) != 0)
            rc = UV_ENOMEM;
        PQfreemem(q);
    }
    const char *tail = bin ? ") FROM STDIN WITH (FORMAT binary)" : ") FROM STDIN";
    if (rc == 0)
        rc = pgfeed__buf_append(&b, tail, strlen(tail));
    const struct pgfeed_options *o = pgfeed__ctx_options(s->ctx);
    const char *null = o->null_marker ? o->null_marker : "\\N";
    if (rc == 0 && !bin && o->format == PGFEED_FORMAT_TEXT &&
        (o->delimiter != '\t' || strcmp(null, "\\N"))) {
        /* text rows go through unchanged: the server must split them as the file does. */
        char d[2] = {o->delimiter, 0};
        char *ld = PQescapeLiteral(k->conn, d, 1),
             *ln = PQescapeLiteral(k->conn, null, strlen(null));
        char *opts =
            ld && ln ? pgfeed__strdup_printf(" WITH (DELIMITER %s, NULL %s)", ld, ln) : NULL;
        if (opts == NULL || pgfeed__buf_append(&b, opts, strlen(opts)) != 0)
            rc = UV_ENOMEM;
        free(opts);
        PQfreemem(ld);
        PQfreemem(ln);
    }
    if (rc == 0)
        rc = pgfeed__buf_append(&b, "", 1);
    if (rc != 0) {
        pgfeed__buf_free(&b);
        return pgfeed__fail(s->ctx, "sink", rc, NULL, NULL, "out of memory");
    }
    free(k->sh->copy_sql);
    k->sh->copy_sql = b.data;
    size_t *t = malloc((n ? n : 1) * sizeof *t);
    if (t == NULL)
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    memcpy(t, idx, n * sizeof *t);
    free(k->sh->target_idx);
    k->sh->target_idx = t;
    k->sh->ntargets = n;
    return 0;
}

const struct pgfeed_checkpoint *pgfeed__sink_checkpoint(struct pgfeed_stage *s)
{
    return &sink_of(s)->ckpt;
}

const char *pgfeed__sink_table(struct pgfeed_stage *s)
{
    return sink_of(s)->qualified;
}

int pgfeed__sink_set_identity(struct pgfeed_stage *s, const struct pgfeed_ckpt_identity *id)
{
    struct sink *k = sink_of(s);
    char *key = strdup(id->key), *src = strdup(id->source);
    char *opts = id->options ? strdup(id->options) : NULL;
    if (!key || !src || (id->options && !opts)) {
        free(key);
        free(src);
        free(opts);
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    char *others = id->others ? strdup(id->others) : NULL;
    if (id->others && !others) {
        free(key);
        free(src);
        free(opts);
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    free(k->key);
    free(k->source_name);
    free(k->options);
    free(k->others);
    k->key = key;
    k->source_name = src;
    k->options = opts;
    k->others = others;
    return 0;
}

int pgfeed__sink_forget_checkpoint(struct pgfeed_stage *s)
{
    struct sink_pg *k = sink_of(s)->conns[0];
    char *sql = pgfeed__strdup_printf("DELETE FROM %s WHERE job_key = $1", k->sh->state_table);
    const char *params[1] = {k->sh->key};
    if (sql == NULL)
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int ok = PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0);
    free(sql);
    if (!ok)
        return fail_conn(k, "could not delete the checkpoint");
    k->state = S_FORGET;
    return 0;
}

static void timer_close_cb(uv_handle_t *h)
{
    struct sink_pg *k = h->data;
    pgfeed__ctx_handle_closed(ctx_of(k));
}

/* Closes the socket's poll and the timer; libpq's connection goes in destroy. */
static void close_all(struct sink_pg *k)
{
    poll_stop_close(k);
    if (k->timer_inited) {
        k->timer_inited = 0;
        uv_timer_stop(&k->connect_timer);
        pgfeed__ctx_handle_closing(ctx_of(k));
        uv_close((uv_handle_t *)&k->connect_timer, timer_close_cb);
    }
    if (k->kick_inited) {
        k->kick_inited = 0;
        uv_timer_stop(&k->kick_timer);
        pgfeed__ctx_handle_closing(ctx_of(k));
        uv_close((uv_handle_t *)&k->kick_timer, timer_close_cb);
    }
    if (k->holding_ref) {
        /* Dropped after the closes above were counted, so the job cannot finish here. */
        k->holding_ref = 0;
        pgfeed__ctx_handle_closed(ctx_of(k));
    }
}

/* The server did not answer our CopyFail or COMMIT in time: hang up. */
static void abort_timer_cb(uv_timer_t *t)
{
    struct sink_pg *k = t->data;
    pgfeed__log(ctx_of(k), PGFEED_LOG_WARNING,
                "the server did not answer within %d ms; closing the connection", ABORT_WAIT_MS);
    k->state = S_CLOSED;
    close_all(k);
}

/*
 * Stop: roll back what is in flight and close. A COPY in progress is ended
 * with CopyFail so the server discards the batch; a COMMIT already sent is
 * awaited so the counters say what really happened. Everything else just
 * closes: the server rolls back an open transaction when the connection goes.
 */
static void conn_stop(struct sink_pg *k)
{
    if (k->timer_inited)
        uv_timer_stop(&k->connect_timer);
    if (k->conn == NULL || k->state == S_CLOSED) {
        close_all(k);
        return;
    }
    int wait = 0;
    if (k->state == S_COPY_IN && PQstatus(k->conn) == CONNECTION_OK) {
        if (PQputCopyEnd(k->conn, "import canceled by pgfeed") == 1) {
            PQflush(k->conn);
            wait = 1;
        }
    } else if ((k->state == S_ENDING || k->state == S_CHECKPOINT || k->state == S_COMMITTING) &&
               k->batch.seq == k->sh->commit_seq && PQstatus(k->conn) == CONNECTION_OK && k->poll &&
               k->timer_inited) {
        /*
         * A whole batch is on its way to COMMIT: it was complete before the
         * failure or cancel, so let it commit (the state machine carries on and
         * closes afterwards), within ABORT_WAIT_MS.
         */
        k->holding_ref = 1;
        pgfeed__ctx_handle_closing(ctx_of(k));
        uv_timer_start(&k->connect_timer, abort_timer_cb, ABORT_WAIT_MS, 0);
        return;
    }
    /* Anything else (a BEGIN; COPY perhaps stuck behind a lock) is rolled back by
     * the server when we hang up. */
    if (wait && k->poll && k->timer_inited) {
        k->state = S_ABORTING;
        k->holding_ref = 1;
        pgfeed__ctx_handle_closing(ctx_of(k));
        sink_watch(k, UV_READABLE | UV_WRITABLE);
        uv_timer_start(&k->connect_timer, abort_timer_cb, ABORT_WAIT_MS, 0);
        return;
    }
    k->state = S_CLOSED;
    close_all(k);
    if (k->conn && k->sh->nconns > 1) {
        /* Hang up now (the poll is closed): a later batch waiting for its turn may hold
         * locks the batch still committing on another connection needs. */
        PQfinish(k->conn);
        k->conn = NULL;
    }
}

static void sink_stop(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    sh->stop_requested = 1;
    if (sh->turn_timer_inited) {
        sh->turn_timer_inited = 0;
        uv_timer_stop(&sh->turn_timer);
        pgfeed__ctx_handle_closing(s->ctx);
        sh->turn_timer.data = s->ctx;
        uv_close((uv_handle_t *)&sh->turn_timer, pgfeed__ctx_close_cb);
    }
    /* Only the batch whose turn it is may still commit; later ones are rolled back. */
    for (size_t i = 0; i < sh->nconns; i++)
        if (sh->conns[i])
            conn_stop(sh->conns[i]);
}

static void sink_destroy(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    for (size_t i = 0; i < sh->nconns; i++) {
        struct sink_pg *k = sh->conns[i];
        if (k == NULL)
            continue;
        if (k->conn)
            PQfinish(k->conn);
        pgfeed__buf_free(&k->kept);
        free(k->row_off);
        free(k->stack);
        free(k);
    }
    for (size_t i = 0; i < sh->ncols; i++) {
        free(sh->cols[i].name);
        free(sh->cols[i].type_name);
    }
    free(sh->cols);
    free(sh->qualified);
    free(sh->copy_sql);
    free(sh->state_table);
    free(sh->key);
    free(sh->source_name);
    free(sh->options);
    free(sh->others);
    pgfeed__checkpoint_clear(&sh->ckpt);
    free(sh->target_idx);
    free(sh);
}

static const struct pgfeed_stage_ops sink_ops = {
    .name = "sink",
    .write = sink_write,
    .finish = sink_finish,
    .resume = sink_resume,
    .stop = sink_stop,
    .destroy = sink_destroy,
    .end_batch = sink_end_batch,
};

int pgfeed__sink_new(struct pgfeed_ctx *ctx, const struct pgfeed_sink_events *ev,
                     struct pgfeed_stage **out)
{
    struct sink *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return UV_ENOMEM;
    sh->base.ops = &sink_ops;
    sh->base.ctx = ctx;
    sh->ev = *ev;
    sh->next_first_line = 1;
    *out = &sh->base;
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    size_t n = o->connections ? o->connections : 1;
    if (n > PGFEED_MAX_CONNECTIONS)
        n = PGFEED_MAX_CONNECTIONS;
    /* One connection: block as soon as the socket is full (at most one parser write queued).
     * Several: up to a batch each (--batch-bytes), or they would take turns, not overlap. */
    sh->queue_budget = n == 1 ? 0 : o->batch_bytes ? o->batch_bytes : (size_t)16 << 20;
    for (size_t i = 0; i < n; i++) {
        struct sink_pg *k = calloc(1, sizeof *k);
        if (k == NULL)
            return UV_ENOMEM;
        k->sh = sh;
        k->idx = i;
        k->sock = -1;
        sh->conns[sh->nconns++] = k;
    }
    const char *st = o->state_table;
    sh->retain = o->max_rejects > 0;
    sh->state_table = strdup(st && *st ? st : "pgfeed_checkpoints");
    if (sh->state_table == NULL)
        return UV_ENOMEM;
    for (const char *p = sh->state_table; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '"'))
            return pgfeed__fail(
                ctx, "sink", PGFEED_EUSAGE, NULL,
                "Use letters, digits, underscores, and a dot before the table name.",
                "invalid state table name \"%s\"", sh->state_table);
    return 0;
}
