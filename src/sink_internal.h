/*
 * sink_internal.h -- what the sink's files share: the stage (struct sink), one
 * connection (struct sink_pg) and its states. Private to sink_pg.c (the stage, the
 * pool, which batch writes the checkpoint's prefix row, and the handler of each phase), pg_conn.c
 * (one libpq connection: connect, watch, result pump, abort), pg_resolve.c (the host names,
 * looked up before connecting) and sink_refused.c (finding the rows
 * the server refused and rebuilding them as input). Nothing else includes it.
 */
#ifndef PGFEED_SINK_INTERNAL_H
#define PGFEED_SINK_INTERNAL_H

#include <libpq-fe.h>

#include "internal.h"

/*
 * A connection's states. Connecting and setting up (pg_conn.c, then the stage's
 * handlers): NEW -> CONNECTING (PQconnectPoll on uv_poll) -> SETUP (session settings);
 * conns[0] then reads the catalog and the state table: CATALOG -> STATE_CHECK (->
 * STATE_CREATE when it is missing) -> STATE_READ -> AHEAD_READ (-> FORGET with --restart)
 * -> READY; with --no-checkpoint, CATALOG -> READY. A batch: READY -> STARTING
 * ("BEGIN; COPY" sent) -> COPY_IN -> ENDING (PQputCopyEnd sent) -> CHECKPOINT ->
 * (REJECTS_SYNC while the batch's rejected rows go to disk) -> COMMITTING -> READY. A refused batch
 * with --max-rejects goes ENDING -> SPLIT_REFUSED -> SPLIT_ROLLBACK -> SPLIT_BEGIN, then per range
 * of rows SPLIT_STARTING -> SPLIT_COPYING -> SPLIT_ENDING (or SPLIT_REFUSED -> SPLIT_UNDO), and on
 * to CHECKPOINT once no range is left. The end: TRUNCATING (empty input with --truncate) and
 * (FINAL_REJECTS ->) MARK_FINISHED -> FINISHED; a stop: ABORTING -> CLOSED. With --mode
 * replace, conns[0] goes READY -> SHADOW_PREP -> READY before the first batch, and the end
 * is (FINAL_REJECTS ->) SWAP -> SWAP_MARK -> SWAP_COMMIT -> FINISHED. With --mode upsert,
 * conns[0] goes READY -> UPSERT_PREP -> READY before the first batch, a batch goes ENDING ->
 * (MERGE_WAIT until every earlier batch committed ->) MERGE -> CHECKPOINT, and with
 * --delete-missing the end is (FINAL_REJECTS ->) DELETE_MISSING -> SWAP_MARK -> SWAP_COMMIT.
 * Load hooks: conns[0] goes SETUP -> (BEFORE_CHECK ->) BEFORE -> CATALOG with a before hook,
 * and ends (FINAL_REJECTS ->) (SWAP or DELETE_MISSING, or BEGIN ->) AFTER -> SWAP_MARK ->
 * SWAP_COMMIT -> FINISHED with an after hook (the batches then never write finished in their
 * own row).
 */
enum sink_state {
    S_NEW,
    S_CONNECTING,
    S_SETUP,
    S_BEFORE_CHECK, /* --resume with a before hook: does the table exist yet? */
    S_BEFORE,       /* the before hook's transaction */
    S_CATALOG,
    S_STATE_CHECK,  /* does the state table exist? */
    S_STATE_CREATE, /* CREATE TABLE IF NOT EXISTS state table (only when missing) */
    S_STATE_READ,   /* SELECT the job's checkpoint */
    S_AHEAD_READ,   /* SELECT its batches committed past the prefix */
    S_FORGET,       /* DELETE it (--restart) */
    S_READY,
    S_STARTING,
    S_COPY_IN,
    S_ENDING,
    S_MERGE_WAIT,   /* upsert: COPY done, waiting for every earlier batch to commit */
    S_MERGE,        /* upsert: the stage merged into the target (sink_upsert.c's SQL) */
    S_CHECKPOINT,   /* the batch's checkpoint upsert, inside its transaction */
    S_REJECTS_SYNC, /* its rejected rows being written and synced (rejects.c), then COMMIT */
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
    S_FINAL_REJECTS, /* the rejects of no batch being synced before MARK_FINISHED */
    /* --mode replace (sink_replace.c's SQL): */
    S_SHADOW_PREP, /* checks, then the shadow created (or found, resuming) */
    S_SWAP,        /* BEGIN; the index build and the swap */
    S_SWAP_MARK,   /* the checkpoint marked finished in the swap's (or after hook's) transaction */
    S_SWAP_COMMIT, /* its COMMIT */
    /* --mode upsert (sink_upsert.c's SQL): */
    S_UPSERT_PREP,    /* the key found and checked, the table of keys seen made (or found) */
    S_DELETE_MISSING, /* BEGIN; --delete-missing's DELETE; then SWAP_MARK and SWAP_COMMIT */
    S_AFTER,          /* the after hook, in the transaction that marks the checkpoint finished */
    S_FINISHED,
    S_ABORTING, /* stop requested: CopyFail sent or a COMMIT awaited, then close */
    S_CLOSED
};

struct sink_pg;

/*
 * What the connection's result pump (pg_conn.c) hands to the stage (sink_pg.c). Each
 * runs from a loop callback of the connection; none is called for a connection that
 * is ABORTING or CLOSED.
 */
struct sink_handlers {
    /* The server awaits COPY data; the binary header is already queued. */
    void (*copy_in)(struct sink_pg *k);
    /* An error result: 0 reads on (the error was dealt with), else stop reading. */
    int (*failed)(struct sink_pg *k, PGresult *r);
    /* A result with rows: 0 reads on, else stop reading. */
    int (*tuples)(struct sink_pg *k, PGresult *r);
    /* The command string is complete. 0: something was sent, flush it and read on;
     * SINK_WAIT: nothing more to read for now; <0: failed (already recorded). */
    int (*done)(struct sink_pg *k);
    /* libpq's output buffer went out after the socket became writable. */
    void (*drained)(struct sink_pg *k);
};
#define SINK_WAIT 1

/* The stage: what every connection shares, and which connection takes which batch. */
struct sink {
    struct pgfeed_stage base;
    struct pgfeed_sink_events ev;   /* what the sink reports, and asks of other stages */
    const struct sink_handlers *on; /* what the result pump hands back (sink_pg.c) */
    struct sink_pg *conns[PGFEED_MAX_CONNECTIONS]; /* conns[0] also reads the catalog etc. */
    size_t nconns;
    struct sink_pg *cur; /* the connection taking the current batch's rows, or NULL */
    /* Batches commit as soon as their COPY ends. prefix_seq: the first batch not known
     * committed; bit i of past_prefix: batch prefix_seq + i is committed too. The batch
     * prefix_seq writes the checkpoint's prefix row, later ones a row of their own; no
     * batch starts at or past prefix_seq + nconns. */
    uint64_t prefix_seq;
    uint32_t past_prefix;
    int finished_in_row; /* the last batch wrote finished = true with its prefix row */
    int state_exists;    /* STATE_CHECK's answer */
    int eof;             /* finish() was called */
    int stop_requested;
    int any_batch;       /* a batch transaction has been started */
    int any_end;         /* end_batch has been called */
    uint64_t ended;      /* batches ended (end_batch calls taken) */
    size_t queue_budget; /* COPY bytes a connection may queue in libpq before it blocks */

    struct pg_resolve *resolve; /* host name lookups under way (pg_resolve.c), or NULL */
    /* What they found, for libpq (NULL: the conninfo's own): host, port, hostaddr lists. */
    char *conn_host, *conn_port, *conn_hostaddr;

    char *qualified; /* regclass::text: the table's name as the server quotes it */
    char *shadow;    /* --mode replace: its shadow table's, which the COPY names */
    int replace;     /* --mode replace */
    int upsert;      /* --mode upsert */
    int final_txn;   /* the end is a transaction of its own: replace, or --delete-missing */
    int prepared;    /* replace: the shadow was made (or found); upsert: the key is known */
    char **key_cols; /* upsert: the key's columns (UPSERT_PREP's answer) */
    size_t nkey;
    char *keys_table; /* --delete-missing: the table of keys seen */
    char *merge_sql;  /* upsert: each batch's merge */
    uint64_t deleted; /* --delete-missing: rows deleted by the final transaction */
    int forgot;       /* the checkpoint was deleted (--restart) */
    /* The database has Citus: the table's name and its constraints' and indexes', one a
     * line, as a worker's message names them with a shard id appended; else NULL. */
    char *citus_names;
    int table_missing; /* BEFORE_CHECK's answer */
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
    uint64_t next_first_line;         /* first line of the next batch when the parser has no info */
    int have_last;                    /* last_batch was called: */
    struct pgfeed_batch_info last_bi; /* the rows since the last end_batch (owned) */
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
    int prefix;       /* its checkpoint is the prefix row (no earlier batch is pending) */
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

    struct pgfeed_batch_info batch;  /* the batch being ended */
    uint64_t ckpt_raw;               /* its checkpoint's raw_offset (0: no restart point) */
    uint64_t batch_rows_base;        /* rows_sent when the current batch started */
    uint64_t merged_ins, merged_upd; /* upsert: rows its merge inserted, updated */
    uint64_t merged_keys;            /* upsert: the keys it merged (the batch's distinct) */
};

static inline struct pgfeed_ctx *sink_ctx(struct sink_pg *k)
{
    return k->sh->base.ctx;
}

/* sink_replace.c: --mode replace's DO blocks for table (regclass text); NULL: no memory. */
char *pgfeed__replace_sql_prepare(PGconn *conn, const char *table, int resume, int restart,
                                  int keep_old);
char *pgfeed__replace_sql_swap(PGconn *conn, const char *table, int keep_old);

/* sink_upsert.c: --mode upsert's SQL; NULL: no memory. The key's columns and the file's
 * (cols) are names as the catalog spells them; tables are quoted names (regclass text). */
char *pgfeed__upsert_sql_prepare(PGconn *conn, const char *table, const char *key,
                                 int delete_missing, int resume, int drop_old);
char *pgfeed__upsert_sql_stage(PGconn *conn, const char *table, char *const *cols, size_t ncols);
char *pgfeed__upsert_sql_merge(PGconn *conn, const char *table, const char *keys_table,
                               char *const *cols, size_t ncols, char *const *key, size_t nkey,
                               int nothing, int compare);
char *pgfeed__upsert_sql_delete(PGconn *conn, const char *table, const char *keys_table,
                                char *const *key, size_t nkey);

/* pg_conn.c: one connection. Every int function returns 0 or an error already recorded
 * with pgfeed__fail (fail: always that error). */
/* An invalid --db string, said before connecting. */
int pgfeed__conn_check_conninfo(struct pgfeed_ctx *ctx, const char *conninfo);
int pgfeed__conn_start(struct sink_pg *k); /* PQconnectStartParams; then SETUP */
/* Watches k's current socket for events (UV_READABLE, UV_WRITABLE); see the rule there. */
int pgfeed__conn_watch(struct sink_pg *k, int events);
/* PQflush, then watch for the answer (and for writable while output is queued). */
int pgfeed__conn_flush(struct sink_pg *k, const char *what);
/* PQsendQuery, state next, flush and watch. */
int pgfeed__conn_send(struct sink_pg *k, const char *sql, enum sink_state next);
int pgfeed__conn_fail(struct sink_pg *k, const char *what); /* libpq's error message */
/* The server's error result; in_batch: say which input line and batch. */
int pgfeed__conn_fail_result(struct sink_pg *k, PGresult *r, int in_batch);
/* "COPY names, line 3, column birth_year: ..." -> 3 and "birth_year" (0 and ""). */
uint64_t pgfeed__copy_context_line(const char *ctx, char *col, size_t colcap);
int pgfeed__conn_copy_trailer(struct sink_pg *k); /* COPY binary: once per COPY */
/* Rolls back what is in flight and closes (a batch on its way to COMMIT may finish). */
void pgfeed__conn_stop(struct sink_pg *k);
void pgfeed__conn_close(struct sink_pg *k); /* closes the poll and timers, state CLOSED */

/* pg_resolve.c: the conninfo's host names, looked up off the loop once for every
 * connection. done runs once from the loop (rc 0: sh->conn_* are set; else the error is
 * recorded) when *started is 1; it never runs after pgfeed__resolve_stop. *started 0 and
 * 0: nothing to look up; <0: failed (recorded), done never runs. */
typedef void (*pgfeed__resolved_cb)(struct sink *sh, int rc);
int pgfeed__resolve_start(struct sink *sh, pgfeed__resolved_cb done, int *started);
void pgfeed__resolve_stop(struct sink *sh); /* no answer wanted any more; returns at once */
/* libpq names only the address it was given: `at "ADDR", port` in msg (libpq's error)
 * becomes `at "HOST" (ADDR), port`, as libpq says it when it looks the name up itself. */
void pgfeed__resolve_name_hosts(const struct sink *sh, char *msg, size_t cap);

/* sink_refused.c: with --max-rejects, a refused batch again without its bad rows. */
/* The error result r is one row's fault and k's batch can be split to find it. */
int pgfeed__split_takes(struct sink_pg *k, const PGresult *r);
/* Rejects the row r names (or halves the range); rollback sent at the result's end. */
int pgfeed__split_refused(struct sink_pg *k, const PGresult *r);
/* A SPLIT_* state's command is complete: sends the next one (0), or 1 when every range
 * went in and the batch may commit. */
int pgfeed__split_step(struct sink_pg *k);
/* SPLIT_COPYING: sends the current range's rows, then ends its COPY. */
void pgfeed__split_send(struct sink_pg *k);

#endif
