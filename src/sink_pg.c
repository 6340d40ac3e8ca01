/*
 * sink_pg.c -- the sink stage: COPY FROM STDIN over a pool of libpq connections
 * (--connections, 1..PGFEED_MAX_CONNECTIONS), one transaction per batch, each committed
 * with its checkpoint row as soon as its COPY ends.
 *
 * Takes COPY rows (text or binary tuples) from the parser and leaves parsing, encoding and
 * batch sizing to it. Leaves to pg_conn.c one connection's socket, result pump, errors
 * and abort; to pg_resolve.c the host names' lookup before connecting; to sink_refused.c the search
 * for refused rows (--max-rejects); to checkpoint.c the state table's SQL. Reaches the rest of the
 * import only through its context (ctx.c: failing, logging, counters, rejects) and the events it
 * was given at creation (struct pgfeed_sink_events: table described, checkpoint read, done); what a
 * batch needs from other stages (the restart point, the source's validators, the row map)
 * comes attached to it. It calls neither job.c nor the parser.
 *
 * States (sink_internal.h lists them all): every connection connects (pg_conn.c) and
 * sets its session up (SETUP); conns[0] then reads the table's columns and the
 * checkpoint -- CATALOG, STATE_CREATE, STATE_READ, AHEAD_READ, FORGET --, then every
 * connection takes batches: READY -> STARTING ("BEGIN; COPY ...") -> COPY_IN -> ENDING ->
 * CHECKPOINT -> COMMITTING -> READY ... -> MARK_FINISHED (or TRUNCATING, an empty input
 * with --truncate) -> FINISHED; a stop: ABORTING -> CLOSED. The SPLIT_ states are
 * sink_refused.c's. Each state whose command string is complete has its handler
 * (on_done[]). --mode replace's and --mode upsert's SQL (the shadow and its swap; the key,
 * the staging table, each batch's merge, --delete-missing) is sink_replace.c's and
 * sink_upsert.c's; the states that send it are here.
 *
 * Several connections: nothing waits for another batch, so no lock a batch holds can
 * wait on ours (--mode upsert's merges wait for the earlier batches' commits, holding no
 * lock those need: see send_merge). The checkpoint is a prefix plus the batches committed past it:
 * the batch that follows the committed prefix writes the prefix row (folding in, and deleting, the
 * rows of later batches its end now covers), any other writes a row of its own keyed by
 * its first line. A resume restarts at the prefix and skips the lines of those rows; the
 * finish folds what is left. At most --connections batches are past the prefix, so what a
 * retry must read again stays bounded as with one connection.
 *
 * Backpressure: only the sink decides to stop. After each PQputCopyData it calls
 * PQflush; when that returns 1 and the connection has queued queue_budget bytes (0 with
 * one connection, --batch-bytes with several) it is "blocked": it takes nothing more
 * (EAGAIN) and waits for the socket to be writable (and readable: the server may stop
 * reading while it sends us notices), flushing until 0, then schedules the parser's resume.
 *
 * A batch the server refuses fails the job with the server's message (the server has
 * dropped its rows), unless --max-rejects lets sink_refused.c set its bad rows aside.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

static int mark_finished(struct sink_pg *k);
static int send_checkpoint(struct sink_pg *k);
static int prepare_target(struct sink *sh);
static int checkpoint_merged(struct sink_pg *k);
static int send_catalog(struct sink_pg *k);

static struct sink *sink_of(struct pgfeed_stage *s)
{
    return container_of(s, struct sink, base);
}

/* A load hook's SQL (pgfeed_options.before_sql / after_sql), or NULL when there is none. */
static const char *hook_sql(const struct sink *sh, int after)
{
    const struct pgfeed_options *o = pgfeed__ctx_options(sh->base.ctx);
    const char *sql = after ? o->after_sql : o->before_sql;
    return sql && *sql ? sql : NULL;
}

/* The last batch writes finished in its own checkpoint row (else a later statement does). */
static int finishes_in_row(const struct sink_pg *k)
{
    return k->last && k->prefix && !k->sh->final_txn && hook_sql(k->sh, 1) == NULL;
}

/* ------------------------------------------------------------ batches */

static int start_batch(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    const struct pgfeed_options *o = pgfeed__ctx_options(sink_ctx(k));
    char *sql;
    if (o->truncate && !sh->any_batch)
        sql = pgfeed__strdup_printf("BEGIN; TRUNCATE %s; %s", sh->qualified, sh->copy_sql);
    else
        sql = pgfeed__strdup_printf("BEGIN; %s", sh->copy_sql);
    if (sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->batch_truncates = o->truncate && !sh->any_batch;
    sh->any_batch = 1;
    k->batch_rows_base = pgfeed__ctx_stats(sink_ctx(k))->rows_sent;
    k->kept.len = 0;
    k->nrows = 0;
    k->last = 0;
    k->batch.seq = sh->ended; /* batches are read one after another */
    int rc = pgfeed__conn_send(k, sql, S_STARTING);
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

/* A batch is between its BEGIN and its COMMIT's result on some connection. */
static int batch_in_flight(const struct sink *sh)
{
    for (size_t i = 0; i < sh->nconns; i++) {
        enum sink_state st = sh->conns[i] ? sh->conns[i]->state : S_NEW;
        if ((st >= S_STARTING && st <= S_COMMITTING) ||
            (st >= S_SPLIT_ROLLBACK && st <= S_SPLIT_REFUSED))
            return 1;
    }
    return 0;
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
    if (k == NULL && (sh->replace || sh->upsert) && !sh->prepared) {
        *rc = prepare_target(sh);
        return NULL;
    }
    if (k == NULL) {
        /* A batch past the prefix + nconns - 1 waits for the prefix to move; the first
         * waits for every connection, so that one the server refuses (a connection
         * limit) fails the import before anything is committed. */
        k = sh->ended < sh->prefix_seq + sh->nconns && (sh->any_batch || all_idle(sh))
                ? idle_conn(sh)
                : NULL;
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
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int r = PQputCopyData(k->conn, p, (int)n);
    if (r == 0) {
        if (sh->retain)
            k->kept.len -= n;
        return PGFEED_EAGAIN;
    }
    if (r < 0)
        return pgfeed__conn_fail(k, "could not send COPY data to the server");
    int f = PQflush(k->conn);
    if (f < 0)
        return pgfeed__conn_fail(k, "could not send COPY data to the server");
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
            pgfeed__ctx_server_wait(sink_ctx(k), 1);
        rc = pgfeed__conn_watch(k, UV_READABLE | UV_WRITABLE);
        if (rc != 0)
            return pgfeed__fail(sink_ctx(k), "sink", rc, NULL, NULL,
                                "could not watch the connection: %s", uv_strerror(rc));
    }
    return 0;
}

/* *dst = *src with a copy of its restart point (dst's own freed first): 0 or UV_ENOMEM. */
static int keep_batch(struct pgfeed_batch_info *dst, const struct pgfeed_batch_info *src)
{
    pgfeed__buf_free(&dst->restart);
    *dst = *src;
    dst->restart = (struct pgfeed_buf){0};
    if (src->has_restart && pgfeed__buf_append(&dst->restart, src->restart.data, src->restart.len))
        return UV_ENOMEM;
    return 0;
}

static int end_copy(struct sink_pg *k)
{
    if (pgfeed__conn_copy_trailer(k) != 0)
        return -1;
    int r = PQputCopyEnd(k->conn, NULL);
    if (r < 0)
        return pgfeed__conn_fail(k, "could not end COPY");
    if (r == 0)
        return PGFEED_EAGAIN;
    k->state = S_ENDING;
    if (k->sh->cur == k)
        k->sh->cur = NULL; /* the next batch may go to another connection */
    int f = PQflush(k->conn);
    if (f < 0)
        return pgfeed__conn_fail(k, "could not end COPY");
    k->blocked = f == 1;
    return pgfeed__conn_watch(k, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static int sink_end_batch(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi)
{
    struct sink *sh = sink_of(s);
    int rc;
    struct sink_pg *k = copy_conn(sh, &rc);
    if (k == NULL)
        return rc;
    if (keep_batch(&k->batch, bi) != 0)
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    sh->ended = bi->seq + 1;
    sh->next_first_line = bi->last_line + 1;
    sh->any_end = 1;
    return end_copy(k);
}

/* The rows written since the last end_batch, as the parser ends the input. */
static int sink_last_batch(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi)
{
    struct sink *sh = sink_of(s);
    if (keep_batch(&sh->last_bi, bi) != 0)
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    sh->have_last = 1;
    return 0;
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
        const struct pgfeed_stats *st = pgfeed__ctx_stats(sink_ctx(k));
        sh->eof = 1;
        k->last = 1;
        if (sh->have_last) {
            if (keep_batch(&k->batch, &sh->last_bi) != 0)
                return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
            return end_copy(k);
        }
        pgfeed__buf_free(&k->batch.restart);
        k->batch = (struct pgfeed_batch_info){0};
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
    if ((sh->replace || sh->upsert) && !sh->prepared)
        return prepare_target(sh); /* no batch (an empty input, or all committed before) */
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
        int rc = pgfeed__conn_send(k, sql, S_TRUNCATING);
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
    pgfeed__ctx_server_wait(sink_ctx(k), 0);
    if (k->sh->base.prev)
        pgfeed__ctx_schedule_resume(sink_ctx(k), k->sh->base.prev);
}

/*
 * The batch's COPY went through (or its refused rows were set aside): its checkpoint row
 * goes in its transaction, then COMMIT. Whether it is the prefix row is decided now: a
 * batch that commits before an earlier one writes its own row.
 */
static int checkpoint_written(struct sink_pg *k);

/*
 * Upsert: batches merge in file order, so that the last row of a key in the file wins.
 * One whose COPY ended before an earlier batch committed waits (MERGE_WAIT) holding at
 * most an ACCESS SHARE lock on the target (its COPY went to its own temporary table, made
 * LIKE the target), which no merge waits for; that batch's commit sends this merge
 * (merge_next). So merges never overlap, and no batch waits for a later one.
 */
static int send_merge(struct sink_pg *k)
{
    if (!PQsendQuery(k->conn, k->sh->merge_sql))
        return pgfeed__conn_fail(k, "could not merge the batch");
    k->state = S_MERGE;
    return 0;
}

static int checkpoint_batch(struct sink_pg *k)
{
    if (!k->sh->upsert)
        return checkpoint_merged(k);
    if (k->batch.seq == k->sh->prefix_seq)
        return send_merge(k);
    if (k->sh->stop_requested) {
        k->state = S_CLOSED; /* the earlier batch will not commit now: roll this one back */
        pgfeed__conn_close(k);
        return SINK_WAIT;
    }
    k->state = S_MERGE_WAIT;
    return SINK_WAIT;
}

/* A batch committed: the batch that follows it may merge now, if its COPY is done. */
static void merge_next(struct sink *sh)
{
    for (size_t i = 0; i < sh->nconns; i++) {
        struct sink_pg *c = sh->conns[i];
        if (c && c->state == S_MERGE_WAIT && c->batch.seq == sh->prefix_seq && send_merge(c) == 0)
            pgfeed__conn_flush(c, "lost the connection to the server");
    }
}

/* Upsert: the merge's one row: the rows it inserted, updated, and the keys it merged. */
static void merge_counted(struct sink_pg *k, const PGresult *r)
{
    k->merged_ins = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    k->merged_upd = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    k->merged_keys = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
}

/*
 * Upsert's counts of a committed batch (its rows: batch.rows, keys: merged_keys). A row
 * whose key comes again later in the batch counts as updated (with nothing: unchanged), as
 * if the rows were merged one by one; a key whose row equals the table's is unchanged.
 */
static void count_merged(struct sink_pg *k, struct pgfeed_stats *stats)
{
    uint64_t rows = k->batch.rows, ins = k->merged_ins, upd = k->merged_upd;
    uint64_t keys = k->merged_keys < rows ? k->merged_keys : rows;
    if (ins + upd > keys)
        ins = upd = 0; /* cannot be: never count more rows than the batch's */
    stats->rows_inserted += ins;
    if (pgfeed__ctx_options(sink_ctx(k))->on_conflict == PGFEED_ON_CONFLICT_NOTHING ||
        k->sh->nkey == k->sh->ntargets) {
        stats->rows_unchanged += rows - ins;
    } else {
        stats->rows_updated += upd + (rows - keys);
        stats->rows_unchanged += keys - ins - upd;
    }
    k->merged_ins = k->merged_upd = k->merged_keys = 0;
}

static int checkpoint_merged(struct sink_pg *k)
{
    k->prefix = k->batch.seq == k->sh->prefix_seq;
    if (pgfeed__ctx_options(sink_ctx(k))->no_checkpoint)
        return checkpoint_written(k); /* straight to COMMIT */
    if (send_checkpoint(k) != 0)
        return -1;
    k->state = S_CHECKPOINT;
    return 0;
}

/* k's batch committed: move the prefix past it and the batches committed after it. */
static void note_committed(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    uint64_t off = k->batch.seq - sh->prefix_seq;
    if (off < 32)
        sh->past_prefix |= (uint32_t)1 << off;
    while (sh->past_prefix & 1) {
        sh->past_prefix >>= 1;
        sh->prefix_seq++;
    }
}

/* ------------------------------------------------ the catalog, the checkpoint row */

static int handle_result_catalog(struct sink_pg *k, PGresult *r)
{
    int nt = PQntuples(r);
    if (nt == 0) {
        return pgfeed__fail(sink_ctx(k), "sink", PGFEED_ETABLE,
                            "A table without columns cannot be loaded.", NULL,
                            "table \"%s\" has no columns", pgfeed__ctx_options(sink_ctx(k))->table);
    }
    k->sh->cols = calloc((size_t)nt, sizeof *k->sh->cols);
    if (k->sh->cols == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    k->sh->ncols = (size_t)nt;
    for (int i = 0; i < nt; i++) {
        k->sh->cols[i].name = strdup(PQgetvalue(r, i, 1));
        k->sh->cols[i].is_array = PQgetvalue(r, i, 2)[0] == 't';
        k->sh->cols[i].type_oid = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
        k->sh->cols[i].elem_oid = (uint32_t)strtoul(PQgetvalue(r, i, 4), NULL, 10);
        k->sh->cols[i].type_name = strdup(PQgetvalue(r, i, 5));
        if (k->sh->cols[i].name == NULL || k->sh->cols[i].type_name == NULL)
            return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    k->sh->qualified = strdup(PQgetvalue(r, 0, 0));
    k->sh->shadow = strdup(PQgetvalue(r, 0, 6));
    if (!PQgetisnull(r, 0, 7) && (k->sh->citus_names = strdup(PQgetvalue(r, 0, 7))) == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    if (k->sh->qualified == NULL || k->sh->shadow == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
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
    struct pgfeed_ctx *ctx = sink_ctx(k);
    const struct pgfeed_validators *v = k->batch.validators;
    char rows[24], lines[24], dec[24], raw[24], size[24], first[24];
    u64s(rows, sizeof rows, k->batch.rows);
    u64s(lines, sizeof lines, k->batch.last_line);
    u64s(first, sizeof first, k->batch.first_line);
    u64s(dec, sizeof dec, k->batch.end_decoded);
    /* Where a resume can restart reading: the decoder's access point before the batch end. */
    struct pgfeed_buf hex = {0};
    uint64_t raw_offset = k->batch.restart_raw;
    int have_point = k->batch.has_restart &&
                     pgfeed__checkpoint_hex(&hex, k->batch.restart.data, k->batch.restart.len) == 0;
    if (!have_point)
        raw_offset = 0;
    pgfeed__buf_free(&k->batch.restart);
    k->batch.has_restart = 0;
    k->ckpt_raw = raw_offset;
    u64s(raw, sizeof raw, raw_offset);
    int have_size = v && v->size >= 0;
    if (have_size)
        snprintf(size, sizeof size, "%lld", (long long)v->size);
    const char *params[15] = {k->sh->key, k->sh->source_name, k->sh->qualified,
                              k->sh->options ? k->sh->options : "", v ? v->etag : NULL,
                              v ? v->last_modified : NULL, have_size ? size : NULL, rows, "1",
                              lines, dec, raw,
                              /* replace, --delete-missing, an after hook: finished at the end */
                              finishes_in_row(k) ? "t" : "f", have_point ? hex.data : NULL, first};
    char *sql = k->prefix ? pgfeed__checkpoint_sql_upsert(k->sh->state_table)
                          : pgfeed__checkpoint_sql_ahead(k->sh->state_table);
    if (sql == NULL) {
        pgfeed__buf_free(&hex);
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    int ok = PQsendQueryParams(k->conn, sql, k->prefix ? 14 : 15, NULL, params, NULL, NULL, 0);
    free(sql);
    pgfeed__buf_free(&hex);
    if (!ok)
        return pgfeed__conn_fail(k, "could not write the checkpoint");
    return 0;
}

/* Every batch is in: the checkpoint says so (a statement sent), or, without checkpoints,
 * the sink is done at once (state FINISHED). */
static int send_finish(struct sink_pg *k);
static void final_rejects_synced(void *arg, int status);

static int mark_finished(struct sink_pg *k)
{
    /* Rejects of no batch (rows after the last one): on disk before the end is marked. */
    k->state = S_FINAL_REJECTS;
    int rc = pgfeed__ctx_flush_rejects(sink_ctx(k), 0, UINT64_MAX, final_rejects_synced, k);
    if (rc < 0)
        return rc;
    return rc == 1 ? send_finish(k) : 0;
}

static void final_rejects_synced(void *arg, int status)
{
    struct sink_pg *k = arg;
    if (k->state != S_FINAL_REJECTS)
        return; /* stopped meanwhile */
    if (status != 0) {
        k->state = S_CLOSED; /* the failure (rejects.c's) stops the import */
        pgfeed__conn_close(k);
        return;
    }
    send_finish(k); /* sent and flushed, or done; a failure is recorded */
}

static int send_swap(struct sink_pg *k);

/* The state table's row for this job marked finished (its own statement); next: state. */
static int send_mark_finished(struct sink_pg *k, enum sink_state next)
{
    char *sql = pgfeed__checkpoint_sql_finish(k->sh->state_table);
    const char *params[1] = {k->sh->key};
    if (sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int ok = PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0);
    free(sql);
    if (!ok)
        return pgfeed__conn_fail(k, "could not mark the checkpoint finished");
    k->state = next;
    return 0;
}

static int send_delete_missing(struct sink_pg *k);
static int send_after(struct sink_pg *k, const char *begin);

static int send_finish(struct sink_pg *k)
{
    if (k->sh->replace)
        return send_swap(k);
    if (pgfeed__ctx_options(sink_ctx(k))->delete_missing)
        return send_delete_missing(k);
    if (hook_sql(k->sh, 1)) {
        int rc = send_after(k, "BEGIN;\n");
        return rc != 0 ? rc : pgfeed__conn_flush(k, "lost the connection to the server");
    }
    if (pgfeed__ctx_options(sink_ctx(k))->no_checkpoint) {
        k->state = S_FINISHED;
        k->sh->ev.done(k->sh->ev.arg, 0);
        return 0;
    }
    int rc = send_mark_finished(k, S_MARK_FINISHED);
    if (rc != 0)
        return rc;
    return pgfeed__conn_flush(k, "lost the connection to the server");
}
/* ------------------------------------------------------------ --mode replace */

/*
 * Before the first batch (or the finish, when there is none), with every connection idle:
 * the checks and the shadow table, on conns[0]. A resume finds the shadow its checkpoint's
 * rows are in; --restart (which deleted the checkpoint) drops a leftover one.
 */
static int prepare_target(struct sink *sh)
{
    struct sink_pg *k = sh->conns[0];
    pgfeed__ctx_server_wait(sh->base.ctx, 1);
    if (k->state != S_READY || !all_idle(sh))
        return PGFEED_EAGAIN;
    const struct pgfeed_options *o = pgfeed__ctx_options(sh->base.ctx);
    int resume = sh->ckpt.found && !sh->ckpt.finished && !sh->forgot;
    char *sql =
        sh->replace
            ? pgfeed__replace_sql_prepare(k->conn, sh->qualified, resume, o->restart, o->keep_old)
            : pgfeed__upsert_sql_prepare(k->conn, sh->qualified, o->key, o->delete_missing, resume,
                                         o->restart || o->no_checkpoint);
    if (sql == NULL)
        return pgfeed__fail(sh->base.ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int rc = pgfeed__conn_send(k, sql, sh->replace ? S_SHADOW_PREP : S_UPSERT_PREP);
    free(sql);
    return rc != 0 ? rc : PGFEED_EAGAIN;
}

static int shadow_prepared(struct sink_pg *k)
{
    k->sh->prepared = 1;
    pgfeed__log(sink_ctx(k), PGFEED_LOG_INFO, "loading into %s, to replace %s when every row is in",
                k->sh->shadow, k->sh->qualified);
    k->state = S_READY;
    wake_upstream(k);
    return SINK_WAIT;
}

/* Every row is in the shadow: its indexes, then the swap, in one transaction with the
 * checkpoint's finish. */
static int send_swap(struct sink_pg *k)
{
    const struct pgfeed_options *o = pgfeed__ctx_options(sink_ctx(k));
    char *body = pgfeed__replace_sql_swap(k->conn, k->sh->qualified, o->keep_old);
    char *sql = body ? pgfeed__strdup_printf("BEGIN; %s", body) : NULL;
    free(body);
    if (sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    pgfeed__log(sink_ctx(k), PGFEED_LOG_INFO, "building the indexes of %s, then swapping it in",
                k->sh->shadow);
    int rc = pgfeed__conn_send(k, sql, S_SWAP);
    free(sql);
    return rc;
}

/* The after hook, in the transaction the finish commits in; begin: "BEGIN;\n" or "". A
 * newline ends the hook, so a final "--" comment cannot swallow what follows. */
/* Sends a hook's statement (sql, made by the caller, freed here), logging which one runs. */
static int send_hook(struct sink_pg *k, char *sql, const char *which, enum sink_state next)
{
    if (sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    pgfeed__log(sink_ctx(k), PGFEED_LOG_INFO, "running the %s hook", which);
    int rc = pgfeed__conn_send(k, sql, next);
    free(sql);
    return rc;
}

static int send_after(struct sink_pg *k, const char *begin)
{
    return send_hook(k, pgfeed__strdup_printf("%s%s\n", begin, hook_sql(k->sh, 1)), "after",
                     S_AFTER);
}

static int swapped(struct sink_pg *k)
{
    if (hook_sql(k->sh, 1) && (k->state == S_SWAP || k->state == S_DELETE_MISSING))
        return send_after(k, "");
    if (pgfeed__ctx_options(sink_ctx(k))->no_checkpoint)
        return pgfeed__conn_send(k, "COMMIT", S_SWAP_COMMIT);
    return send_mark_finished(k, S_SWAP_MARK);
}

static int swap_marked(struct sink_pg *k)
{
    return pgfeed__conn_send(k, "COMMIT", S_SWAP_COMMIT);
}

/* ------------------------------------------------------------ --mode upsert */

/* UPSERT_PREP's rows: the key's columns, and the table of keys seen. */
static int upsert_key_read(struct sink_pg *k, const PGresult *r)
{
    struct sink *sh = k->sh;
    int n = PQntuples(r);
    sh->key_cols = calloc(n > 0 ? (size_t)n : 1, sizeof *sh->key_cols);
    if (sh->key_cols == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        sh->key_cols[sh->nkey] = strdup(PQgetvalue(r, i, 0));
        if (sh->key_cols[sh->nkey++] == NULL)
            return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    free(sh->keys_table);
    sh->keys_table = n > 0 ? strdup(PQgetvalue(r, 0, 1)) : NULL;
    return 0;
}

/* The names of the columns the file fills (borrowed from cols), or NULL. */
static char **target_names(struct sink *sh)
{
    char **names = calloc(sh->ntargets ? sh->ntargets : 1, sizeof *names);
    for (size_t i = 0; names && i < sh->ntargets; i++)
        names[i] = sh->cols[sh->target_idx[i]].name;
    return names;
}

/* The key is known: each of its columns must be one the file fills; then the merge's SQL. */
static int upsert_prepared(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    const struct pgfeed_options *o = pgfeed__ctx_options(sink_ctx(k));
    char **names = target_names(sh);
    if (names == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    for (size_t i = 0; i < sh->nkey; i++) {
        size_t j = 0;
        while (j < sh->ntargets && strcmp(names[j], sh->key_cols[i]) != 0)
            j++;
        if (j == sh->ntargets) {
            free(names);
            return pgfeed__fail(
                sink_ctx(k), "sink", PGFEED_ETABLE,
                "--mode upsert merges the file's rows by the key, so the file must fill it.",
                "Map a field of the file to the column (--columns, or the header), or choose "
                "another key with --key.",
                "key column \"%s\" of table %s is not among the columns the file fills",
                sh->key_cols[i], sh->qualified);
        }
    }
    free(sh->merge_sql);
    sh->merge_sql = pgfeed__upsert_sql_merge(
        k->conn, sh->qualified, o->delete_missing ? sh->keys_table : NULL, names, sh->ntargets,
        sh->key_cols, sh->nkey, o->on_conflict == PGFEED_ON_CONFLICT_NOTHING,
        sh->citus_names == NULL);
    free(names);
    if (sh->merge_sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    sh->prepared = 1;
    pgfeed__log(sink_ctx(k), PGFEED_LOG_INFO, "merging into %s by its key (%zu column%s)",
                sh->qualified, sh->nkey, sh->nkey == 1 ? "" : "s");
    k->state = S_READY;
    wake_upstream(k);
    return SINK_WAIT;
}

/* --delete-missing: the final transaction deletes the rows whose key the file lacks, drops
 * the table of keys seen, and marks the checkpoint finished (swapped, swap_marked). */
static int send_delete_missing(struct sink_pg *k)
{
    struct sink *sh = k->sh;
    char *del =
        pgfeed__upsert_sql_delete(k->conn, sh->qualified, sh->keys_table, sh->key_cols, sh->nkey);
    char *sql = del ? pgfeed__strdup_printf("BEGIN; %s", del) : NULL;
    free(del);
    if (sql == NULL)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    pgfeed__log(sink_ctx(k), PGFEED_LOG_INFO, "deleting the rows of %s whose key was not seen",
                sh->qualified);
    int rc = pgfeed__conn_send(k, sql, S_DELETE_MISSING);
    free(sql);
    return rc;
}

/* The final transaction committed: what it deleted counts now. */
static int final_committed(struct sink_pg *k)
{
    pgfeed__ctx_stats(sink_ctx(k))->rows_deleted += k->sh->deleted;
    k->sh->deleted = 0;
    k->state = S_FINISHED;
    k->sh->ev.done(k->sh->ev.arg, 0);
    return SINK_WAIT;
}

/* ------------------------------------------------------------ the phases */

/*
 * What the result pump (pg_conn.c) hands over. The handler of each state whose command
 * string is complete returns 0 when it sent the next command (the pump flushes it and
 * reads on), SINK_WAIT when nothing more comes until another event, <0 on failure.
 */

/* The before hook in its own transaction (a newline ends it, as with the after hook). */
static int send_before(struct sink_pg *k)
{
    return send_hook(k, pgfeed__strdup_printf("BEGIN;\n%s\n;\nCOMMIT", hook_sql(k->sh, 0)),
                     "before", S_BEFORE);
}

/* Session set up: conns[0] runs the before hook (see pgfeed_options.before_sql for when) and
 * reads the catalog, the others wait for batches. */
static int setup_done(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
    if (k->idx != 0) {
        k->state = S_READY;
        wake_upstream(k);
        return SINK_WAIT;
    }
    if (hook_sql(k->sh, 0) == NULL || ctx->before_ran)
        return send_catalog(k);
    if (!ctx->user_resume)
        return send_before(k);
    const char *params[1] = {pgfeed__ctx_options(ctx)->table};
    if (!PQsendQueryParams(k->conn, "SELECT to_regclass($1) IS NULL", 1, NULL, params, NULL, NULL,
                           0))
        return pgfeed__conn_fail(k, "could not look for the table");
    k->state = S_BEFORE_CHECK;
    return 0;
}

static int before_checked(struct sink_pg *k)
{
    if (k->sh->table_missing)
        return send_before(k);
    pgfeed__log(sink_ctx(k), PGFEED_LOG_NOTICE,
                "the before hook is not run again when resuming: the table exists");
    return send_catalog(k);
}

static int before_done(struct sink_pg *k)
{
    sink_ctx(k)->before_ran = 1;
    return send_catalog(k);
}

static int send_catalog(struct sink_pg *k)
{
    const char *params[1] = {pgfeed__ctx_options(sink_ctx(k))->table};
    if (!PQsendQueryParams(
            k->conn,
            "SELECT a.attrelid::regclass::text, a.attname, t.typcategory = 'A',"
            " a.atttypid::int8, t.typelem::int8, format_type(a.atttypid, a.atttypmod),"
            " (SELECT format('%I.%I', n.nspname, c.relname || '_pgfeed_new')"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.oid = a.attrelid),"
            /* Citus: the names a worker suffixes with the shard's id in its messages */
            " CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')"
            " THEN (SELECT string_agg(n, E'\\n') FROM (SELECT relname::text FROM"
            " pg_catalog.pg_class WHERE oid = a.attrelid UNION SELECT conname::text FROM"
            " pg_catalog.pg_constraint WHERE conrelid = a.attrelid UNION SELECT i.relname::text"
            " FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = a.attrelid) s(n)) END"
            " FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = $1::regclass AND a.attnum > 0"
            " AND NOT a.attisdropped AND a.attgenerated = ''"
            " ORDER BY a.attnum",
            1, NULL, params, NULL, NULL, 0))
        return pgfeed__conn_fail(k, "could not query the table's columns");
    k->state = S_CATALOG;
    return 0;
}

static int ahead_read(struct sink_pg *k);

/* The table is known: look for the state table (or, without checkpoints, go on). */
static int catalog_done(struct sink_pg *k)
{
    if (k->sh->ev.table_described(k->sh->ev.arg) != 0)
        return -1;
    if (pgfeed__ctx_options(sink_ctx(k))->no_checkpoint)
        return ahead_read(k); /* no checkpoint found: a new import */
    const char *params[1] = {k->sh->state_table};
    if (!PQsendQueryParams(k->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, params, NULL,
                           NULL, 0))
        return pgfeed__conn_fail(k, "could not look for the checkpoint table");
    k->state = S_STATE_CHECK;
    return 0;
}

static int state_created(struct sink_pg *k);

/* Used as it is when it exists (a role may write it without CREATE on its schema). */
static int state_checked(struct sink_pg *k)
{
    if (k->sh->state_exists)
        return state_created(k);
    char *sql = pgfeed__checkpoint_sql_create(k->sh->state_table);
    if (sql == NULL || !PQsendQuery(k->conn, sql)) {
        free(sql);
        return pgfeed__conn_fail(k, "could not create the checkpoint table");
    }
    free(sql);
    k->state = S_STATE_CREATE;
    return 0;
}

static int state_created(struct sink_pg *k)
{
    char *sql = pgfeed__checkpoint_sql_select(k->sh->state_table);
    const char *params[2] = {k->sh->key, k->sh->others};
    if (sql == NULL || !PQsendQueryParams(k->conn, sql, 2, NULL, params, NULL, NULL, 0)) {
        free(sql);
        return pgfeed__conn_fail(k, "could not read the checkpoint table");
    }
    free(sql);
    k->state = S_STATE_READ;
    return 0;
}

static int state_read(struct sink_pg *k)
{
    char *sql = pgfeed__checkpoint_sql_select_ahead(k->sh->state_table);
    const char *params[1] = {k->sh->key};
    if (sql == NULL || !PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0)) {
        free(sql);
        return pgfeed__conn_fail(k, "could not read the checkpoint table");
    }
    free(sql);
    k->state = S_AHEAD_READ;
    return 0;
}

static int ahead_read(struct sink_pg *k)
{
    k->state = S_READY;
    if (k->sh->ev.checkpoint_read(k->sh->ev.arg) != 0)
        return -1;
    return k->state != S_READY ? 0 : SINK_WAIT; /* not READY: the job asked for a DELETE */
}

static int forgotten(struct sink_pg *k)
{
    k->state = S_READY;
    wake_upstream(k);
    return SINK_WAIT;
}

static int send_commit(struct sink_pg *k)
{
    if (!PQsendQuery(k->conn, "COMMIT"))
        return pgfeed__conn_fail(k, "could not commit");
    k->state = S_COMMITTING;
    return 0;
}

/* The batch's rejected rows are on disk (0), or could not be written (rejects.c failed the
 * import): COMMIT, or hang up so the server rolls the batch back. */
static void rejects_synced(void *arg, int status)
{
    struct sink_pg *k = arg;
    if (k->state != S_REJECTS_SYNC)
        return; /* closed meanwhile (a stop that waited too long): nothing to commit */
    if (status != 0) {
        k->state = S_CLOSED;
        pgfeed__conn_close(k);
        return;
    }
    if (send_commit(k) == 0)
        pgfeed__conn_flush(k, "lost the connection to the server");
}

static int checkpoint_written(struct sink_pg *k)
{
    /* Rejects of this batch go to the file, synced, before its rows commit (REJECTS_SYNC
     * until then): a crash in between may repeat them on resume, but never loses one. */
    k->state = S_REJECTS_SYNC;
    int rc =
        pgfeed__ctx_flush_rejects(sink_ctx(k), k->batch.first_line,
                                  k->last ? UINT64_MAX : k->batch.last_line, rejects_synced, k);
    if (rc < 0)
        return -1;
    return rc == 1 ? send_commit(k) : SINK_WAIT;
}

/* mark_finished as a handler's answer: sent (0), done already (SINK_WAIT), or failed. */
static int finish_sent(struct sink_pg *k)
{
    if (mark_finished(k) != 0)
        return -1;
    return k->state == S_FINISHED ? SINK_WAIT : 0;
}

/* COMMITTING or TRUNCATING done. */
static int committed(struct sink_pg *k)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
    int was_truncating = k->state == S_TRUNCATING;
    if (!was_truncating) {
        struct pgfeed_stats *stats = pgfeed__ctx_stats(ctx);
        stats->rows_committed += k->batch.rows;
        stats->batches_committed++;
        pgfeed__ctx_batch_committed(ctx, &k->batch, k->prefix ? &k->ckpt_raw : NULL);
        note_committed(k);
        if (finishes_in_row(k))
            k->sh->finished_in_row = 1;
        if (k->sh->upsert) {
            count_merged(k, stats);
            merge_next(k->sh);
        }
        pgfeed__log(ctx, PGFEED_LOG_DEBUG, "committed lines %llu to %llu (%llu rows)",
                    (unsigned long long)k->batch.first_line, (unsigned long long)k->batch.last_line,
                    (unsigned long long)k->batch.rows);
    }
    k->state = S_READY;
    if (k->sh->stop_requested) {
        k->state = S_CLOSED;
        pgfeed__conn_close(k);
        return SINK_WAIT;
    }
    if (k->last && was_truncating)
        return finish_sent(k);
    if (k->sh->eof) {
        /* The last of the batches still committing finishes (a connection still
         * connecting, never given a batch, does not count). */
        if (batch_in_flight(k->sh))
            return SINK_WAIT;
        if (!k->sh->finished_in_row)
            return finish_sent(k); /* folds the rows past the prefix */
        k->state = S_FINISHED;
        k->sh->ev.done(k->sh->ev.arg, 0);
        return SINK_WAIT;
    }
    wake_upstream(k);
    return SINK_WAIT;
}

static int finished(struct sink_pg *k)
{
    k->state = S_FINISHED;
    k->sh->ev.done(k->sh->ev.arg, 0);
    return SINK_WAIT;
}

/* A SPLIT_* command is complete: the next range, or the batch's commit when none is left. */
static int split_done(struct sink_pg *k)
{
    int rc = pgfeed__split_step(k);
    return rc == 1 ? checkpoint_batch(k) : rc;
}

/* clang-format off */
static int (*const on_done[S_CLOSED + 1])(struct sink_pg *k) = {
    [S_SETUP] = setup_done,
    [S_BEFORE_CHECK] = before_checked,
    [S_BEFORE] = before_done,
    [S_CATALOG] = catalog_done,
    [S_STATE_CHECK] = state_checked,
    [S_STATE_CREATE] = state_created,
    [S_STATE_READ] = state_read,
    [S_AHEAD_READ] = ahead_read,
    [S_FORGET] = forgotten,
    [S_ENDING] = checkpoint_batch,
    [S_CHECKPOINT] = checkpoint_written,
    [S_COMMITTING] = committed,
    [S_TRUNCATING] = committed,
    [S_MARK_FINISHED] = finished,
    [S_SHADOW_PREP] = shadow_prepared,
    [S_SWAP] = swapped,
    [S_SWAP_MARK] = swap_marked,
    [S_AFTER] = swapped,
    [S_SWAP_COMMIT] = final_committed,
    [S_MERGE] = checkpoint_merged,
    [S_UPSERT_PREP] = upsert_prepared,
    [S_DELETE_MISSING] = swapped,
    [S_SPLIT_REFUSED] = split_done,
    [S_SPLIT_ROLLBACK] = split_done,
    [S_SPLIT_BEGIN] = split_done,
    [S_SPLIT_ENDING] = split_done,
    [S_SPLIT_UNDO] = split_done,
};
/* clang-format on */

static int on_command_done(struct sink_pg *k)
{
    return on_done[k->state] ? on_done[k->state](k) : SINK_WAIT;
}

static int on_tuples(struct sink_pg *k, PGresult *r)
{
    if (k->state == S_CATALOG)
        return handle_result_catalog(k, r);
    if (k->state == S_STATE_READ && PQntuples(r) == 1)
        return pgfeed__checkpoint_read(&k->sh->ckpt, r, sink_ctx(k));
    if (k->state == S_STATE_CHECK && PQntuples(r) == 1)
        k->sh->state_exists = PQgetvalue(r, 0, 0)[0] == 't';
    if (k->state == S_UPSERT_PREP)
        return upsert_key_read(k, r);
    if (k->state == S_MERGE && PQntuples(r) == 1)
        merge_counted(k, r);
    if (k->state == S_DELETE_MISSING && PQntuples(r) == 1)
        k->sh->deleted = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (k->state == S_BEFORE_CHECK && PQntuples(r) == 1)
        k->sh->table_missing = PQgetvalue(r, 0, 0)[0] == 't';
    if (k->state == S_AHEAD_READ && pgfeed__checkpoint_read_ahead(&k->sh->ckpt, r) != 0)
        return pgfeed__fail(sink_ctx(k), "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    return 0;
}

/*
 * Another import made the state table between our look and our CREATE TABLE IF NOT EXISTS
 * (jobs started together on a fresh database): PostgreSQL's check for an existing table is
 * not atomic with the create, so the loser gets a unique violation on pg_type (23505) or
 * "already exists" (42P07, 42710). The table is there: read it as if we had made it.
 */
static int created_meanwhile(const struct sink_pg *k, const PGresult *r)
{
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return k->state == S_STATE_CREATE && s &&
           (strcmp(s, "23505") == 0 || strcmp(s, "42P07") == 0 || strcmp(s, "42710") == 0);
}

static int on_failed(struct sink_pg *k, PGresult *r)
{
    if (created_meanwhile(k, r)) {
        pgfeed__log(sink_ctx(k), PGFEED_LOG_DEBUG,
                    "the checkpoint table was created by another import meanwhile");
        return 0; /* the command's end reads it (state_created) */
    }
    if (pgfeed__split_takes(k, r))
        return pgfeed__split_refused(k, r);
    pgfeed__conn_fail_result(k, r,
                             k->state == S_ENDING || k->state == S_STARTING || k->state == S_MERGE);
    if (k->sh->stop_requested) {
        k->state = S_CLOSED;
        pgfeed__conn_close(k);
    }
    return -1;
}

static void on_copy_in(struct sink_pg *k)
{
    if (k->state == S_SPLIT_STARTING) {
        k->state = S_SPLIT_COPYING;
        pgfeed__split_send(k);
        return;
    }
    k->state = S_COPY_IN;
    k->blocked = 0;
    pgfeed__conn_watch(k, UV_READABLE);
    wake_upstream(k);
}

static void on_drained(struct sink_pg *k)
{
    if (k->state == S_SPLIT_COPYING) {
        pgfeed__split_send(k);
        return;
    }
    pgfeed__conn_watch(k, UV_READABLE);
    if (k->blocked) {
        k->blocked = 0;
        if (k->state == S_COPY_IN || k->state == S_ENDING)
            wake_upstream(k);
    }
}

static const struct sink_handlers handlers = {
    .copy_in = on_copy_in,
    .failed = on_failed,
    .tuples = on_tuples,
    .done = on_command_done,
    .drained = on_drained,
};

/* ------------------------------------------------------------ the stage's interface */
static int connect_all(struct sink *sh)
{
    int rc = 0;
    for (size_t i = 0; i < sh->nconns && rc == 0; i++)
        rc = pgfeed__conn_start(sh->conns[i]);
    return rc;
}

/* The host names are looked up (or failed, recorded): connect every connection. */
static void resolved_cb(struct sink *sh, int rc)
{
    if (rc == 0 && !sh->stop_requested)
        connect_all(sh);
}

int pgfeed__sink_connect(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    const struct pgfeed_options *o = pgfeed__ctx_options(s->ctx);
    int rc = pgfeed__conn_check_conninfo(s->ctx, o->conninfo);
    int started = 0;
    if (rc == 0)
        rc = pgfeed__resolve_start(sh, resolved_cb, &started);
    if (rc != 0 || started)
        return rc;
    return connect_all(sh);
}

const struct pgfeed_column *pgfeed__sink_columns(struct pgfeed_stage *s, size_t *n)
{
    struct sink *k = sink_of(s);
    *n = k->ncols;
    return k->cols;
}

/*
 * Input in another encoding than UTF-8 (--encoding, PostgreSQL's name, resolved): the COPY
 * in b runs with client_encoding set to it, so that the server converts its rows -- binary
 * ones too, whose text values textrecv converts (COPY's own ENCODING option leaves those
 * alone) -- and the session is back in UTF8 for the checkpoint's row. SET LOCAL: a COPY
 * that fails (or a ROLLBACK TO SAVEPOINT, sink_refused.c) never runs the second SET, and
 * its transaction's end undoes the first.
 */
static int with_encoding(struct pgfeed_buf *b, const char *encoding)
{
    if (encoding == NULL || strcmp(encoding, "UTF8") == 0)
        return 0;
    char *sql = pgfeed__strdup_printf("SET LOCAL client_encoding = '%s'; %.*s; "
                                      "SET LOCAL client_encoding = 'UTF8'",
                                      encoding, (int)b->len, b->data);
    if (sql == NULL)
        return UV_ENOMEM;
    b->len = 0;
    int rc = pgfeed__buf_append(b, sql, strlen(sql));
    free(sql);
    return rc;
}

int pgfeed__sink_set_targets(struct pgfeed_stage *s, const size_t *idx, size_t n,
                             const struct pgfeed_bin_field *bin)
{
    struct sink *sh = sink_of(s);
    struct sink_pg *k = sh->conns[0];
    sh->bin = bin;
    struct pgfeed_buf b = {0};
    int rc = 0;
    char *head = NULL;
    if (sh->upsert) {
        char **names = calloc(n ? n : 1, sizeof *names);
        for (size_t i = 0; names && i < n; i++)
            names[i] = sh->cols[idx[i]].name;
        head = names ? pgfeed__upsert_sql_stage(k->conn, sh->qualified, names, n) : NULL;
        free(names);
    } else {
        head = pgfeed__strdup_printf("COPY %s (", sh->replace ? sh->shadow : sh->qualified);
    }
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
    const char *null = o->null_marker; /* resolved (options.c) */
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
        rc = with_encoding(&b, o->encoding);
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
    char *sql = pgfeed__checkpoint_sql_forget(k->sh->state_table);
    const char *params[1] = {k->sh->key};
    if (sql == NULL)
        return pgfeed__fail(s->ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    int ok = PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0);
    free(sql);
    if (!ok)
        return pgfeed__conn_fail(k, "could not delete the checkpoint");
    k->state = S_FORGET;
    k->sh->forgot = 1;
    return 0;
}

static void sink_stop(struct pgfeed_stage *s)
{
    struct sink *sh = sink_of(s);
    sh->stop_requested = 1;
    pgfeed__resolve_stop(sh);
    /* A batch on its way to COMMIT may still commit; the others are rolled back. */
    for (size_t i = 0; i < sh->nconns; i++)
        if (sh->conns[i])
            pgfeed__conn_stop(sh->conns[i]);
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
        pgfeed__buf_free(&k->batch.restart);
        free(k);
    }
    for (size_t i = 0; i < sh->ncols; i++) {
        free(sh->cols[i].name);
        free(sh->cols[i].type_name);
    }
    free(sh->cols);
    free(sh->conn_host);
    free(sh->conn_port);
    free(sh->conn_hostaddr);
    free(sh->qualified);
    free(sh->shadow);
    for (size_t i = 0; i < sh->nkey; i++)
        free(sh->key_cols[i]);
    free(sh->key_cols);
    free(sh->keys_table);
    free(sh->merge_sql);
    free(sh->citus_names);
    free(sh->copy_sql);
    free(sh->state_table);
    free(sh->key);
    free(sh->source_name);
    free(sh->options);
    free(sh->others);
    pgfeed__checkpoint_clear(&sh->ckpt);
    pgfeed__buf_free(&sh->last_bi.restart);
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
    .last_batch = sink_last_batch,
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
    sh->on = &handlers;
    sh->next_first_line = 1;
    *out = &sh->base;
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    sh->replace = o->mode == PGFEED_MODE_REPLACE;
    sh->upsert = o->mode == PGFEED_MODE_UPSERT;
    sh->final_txn = sh->replace || (sh->upsert && o->delete_missing);
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
