/*
 * test_push.c -- push jobs (pgfeed_options.push, pgfeed_job_write), through pgfeed.h only.
 *
 * Without a server: the write contract's refusals (not a push job, after the end, after a
 * cancel, a push job without a name, a job pgfeed_job_new refused) and the bound before
 * the start (taken up to 4 x chunk_size, then EAGAIN), and a job closed with a write
 * pending: no callback, the loop closes.
 *
 * With PGFEED_TEST_DB (skipped without it): a plain and a gzipped TSV written in writes of
 * seeded random sizes (1 byte to 64 KiB) land exactly as the same file imported by path;
 * EAGAIN happens and each one is followed by exactly one drain_cb, never from inside
 * pgfeed_job_write(); while a second connection holds a lock on the table, the job stops
 * taking writes and no drain_cb runs until the lock is gone; a canceled job refuses
 * writes with PGFEED_ECANCELED; rejected rows go to the rejects file, one too many fails
 * the job and the next write returns its code; a job closed while its host waits for
 * drain_cb closes cleanly (the ASan build checks the memory); and a canceled push import
 * resumed with the stream written again from its start has every row once.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pgfeed.h"
#include "tap.h"

static char dir[64];
static const char *db;

/* ---------------------------------------------------------------- the host */

static struct host {
    const char *name;
    uv_loop_t loop;
    pgfeed_job_t *job;
    const char *data;
    size_t len, pos, max_write;
    uint64_t rng;
    int in_write; /* inside pgfeed_job_write */
    int waiting;  /* the last write was refused with EAGAIN */
    unsigned eagains, drains, drains_in_write, drains_not_waiting;
    unsigned done_calls, close_calls;
    int status;
    int last_write_rc; /* what the write that stopped the host returned */
    int ended;
    int hold;         /* do not write on drain (the test writes itself) */
    int cancel_after; /* progress_cb cancels once this many batches are committed */
    int close_on_eagain;
    int no_end; /* never call pgfeed_job_write_end (the job must stop by itself) */
    struct pgfeed_stats last;
} H;

static const char *lbl(const char *check)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s: %s", H.name, check);
    return buf;
}

static uint64_t next_rand(void)
{
    H.rng ^= H.rng >> 12;
    H.rng ^= H.rng << 25;
    H.rng ^= H.rng >> 27;
    return H.rng * 2685821657736338717ull;
}

static int do_write(const void *p, size_t n)
{
    H.in_write = 1;
    int rc = pgfeed_job_write(H.job, p, n);
    H.in_write = 0;
    return rc;
}

static void close_cb(pgfeed_job_t *job)
{
    (void)job;
    H.close_calls++;
}

/* Writes random-sized pieces until EAGAIN, a refusal, or the end (then write_end). */
static void pump(void)
{
    while (!H.ended && !H.waiting) {
        if (H.pos == H.len) {
            if (H.no_end)
                return;
            H.last_write_rc = pgfeed_job_write_end(H.job);
            H.ended = 1;
            return;
        }
        size_t n = 1 + (size_t)(next_rand() % H.max_write);
        if (n > H.len - H.pos)
            n = H.len - H.pos;
        int rc = do_write(H.data + H.pos, n);
        if (rc == PGFEED_EAGAIN) {
            H.eagains++;
            H.waiting = 1;
            if (H.close_on_eagain)
                pgfeed_job_close(H.job, close_cb);
            return;
        }
        if (rc != 0) {
            H.last_write_rc = rc;
            H.ended = 1;
            return;
        }
        H.pos += n;
    }
}

static void drain_cb(pgfeed_job_t *job, void *arg)
{
    ASSERT_TRUE(job == H.job && arg == &H, "%s: drain_cb gets the job and its arg", H.name);
    H.drains++;
    H.drains_in_write += H.in_write;
    H.drains_not_waiting += !H.waiting;
    H.waiting = 0;
    if (!H.hold)
        pump();
}

static void done_cb(pgfeed_job_t *job, int status)
{
    H.done_calls++;
    H.status = status;
    pgfeed_job_stats(job, &H.last);
}

static void progress_cb(void *arg, const struct pgfeed_stats *st)
{
    (void)arg;
    if (H.cancel_after && !st->done && st->batches_committed >= (uint64_t)H.cancel_after) {
        H.cancel_after = 0;
        pgfeed_job_cancel(H.job);
        int rc = do_write("x", 1);
        ASSERT_EQ_INT(rc, PGFEED_ECANCELED, lbl("a write after the cancel"));
    }
}

static void begin(const char *name, const char *data, size_t len, uint64_t seed)
{
    memset(&H, 0, sizeof H);
    H.name = name;
    H.data = data;
    H.len = len;
    H.max_write = 65536;
    H.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    uv_loop_init(&H.loop);
}

static void push_options(struct pgfeed_options *o, const char *conninfo, const char *table)
{
    pgfeed_options_init(o);
    o->push = 1;
    o->source = "unit-stream.tsv";
    o->table = table;
    o->conninfo = conninfo;
    o->header = PGFEED_HEADER_NONE;
    o->drain_cb = drain_cb;
    o->drain_arg = &H;
}

static void end_case(unsigned want_done)
{
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(H.done_calls, want_done, lbl("done_cb calls"));
    ASSERT_EQ_INT(H.close_calls, 1, lbl("close_cb once"));
    ASSERT_EQ_INT(uv_loop_close(&H.loop), 0, lbl("the loop closes: no handle left"));
}

/* -------------------------------------------------------- without a server */

static void test_refusals(void)
{
    begin("refusals", NULL, 0, 1);
    struct pgfeed_options o;
    pgfeed_options_init(&o);
    o.source = "/dev/null";
    o.table = "t";
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("a file job"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "a", 1), UV_EINVAL, lbl("write to a file job"));
    ASSERT_EQ_INT(pgfeed_job_write_end(H.job), UV_EINVAL, lbl("write_end of a file job"));
    pgfeed_job_close(H.job, close_cb);
    end_case(0);

    begin("push without a name", NULL, 0, 1);
    push_options(&o, "host=/nonexistent", "t");
    o.source = NULL;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), PGFEED_EUSAGE, lbl("new refused"));
    ASSERT_EQ_STR(pgfeed_job_error(H.job)->message, "no name given for the pushed input",
                  lbl("message"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "a", 1), UV_EINVAL, lbl("write to a refused job"));
    pgfeed_job_close(H.job, close_cb);
    end_case(0);

    begin("end and cancel before the start", NULL, 0, 1);
    push_options(&o, "host=/nonexistent", "t");
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "1\ta\n", 4), 0, lbl("a write before the start"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, NULL, 0), 0, lbl("an empty write"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, NULL, 1), UV_EINVAL, lbl("NULL with a length"));
    ASSERT_EQ_INT(pgfeed_job_write_end(H.job), 0, lbl("write_end"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "a", 1), UV_EINVAL, lbl("a write after the end"));
    ASSERT_EQ_INT(pgfeed_job_write_end(H.job), UV_EINVAL, lbl("a second write_end"));
    pgfeed_job_close(H.job, close_cb);
    end_case(0);

    begin("canceled before the start", NULL, 0, 1);
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    pgfeed_job_cancel(H.job);
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "a", 1), PGFEED_ECANCELED, lbl("a write"));
    ASSERT_EQ_INT(pgfeed_job_write_end(H.job), PGFEED_ECANCELED, lbl("write_end"));
    pgfeed_job_close(H.job, close_cb);
    end_case(0);
}

/* The bound before the start: 4 x chunk_size, then EAGAIN; a larger write when below it. */
static void test_bound_before_start(void)
{
    static char big[20000];
    begin("bound before the start", NULL, 0, 1);
    struct pgfeed_options o;
    push_options(&o, "host=/nonexistent", "t");
    o.chunk_size = 4096;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(do_write(big, 16383), 0, lbl("16383 bytes taken"));
    ASSERT_EQ_INT(do_write(big, sizeof big), 0, lbl("one more write while below 16384"));
    ASSERT_EQ_INT(do_write(big, 1), PGFEED_EAGAIN, lbl("then EAGAIN"));
    ASSERT_EQ_INT(do_write(big, 1), PGFEED_EAGAIN, lbl("EAGAIN again"));
    pgfeed_job_close(H.job, close_cb); /* a write pending: no callback, nothing left */
    end_case(0);
    ASSERT_EQ_INT(H.drains, 0, lbl("no drain_cb for a job never started"));
}

/* ----------------------------------------------------------- with a server */

static PGconn *conn;
static char schema[64];

static void exec_sql(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ASSERT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                "%s (%s)", sql, PQerrorMessage(conn));
    PQclear(r);
}

static char *query_text(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                  ? strdup(PQgetvalue(r, 0, 0))
                  : NULL;
    if (v == NULL)
        tap_note("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

/* count and md5 of a table's rows in id order, as one string */
static char *digest(const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || md5(coalesce(string_agg(id || ':' || "
             "coalesce(name, '<null>'), E'\\n' ORDER BY id), '')) FROM %s.%s",
             schema, table);
    return query_text(conn, sql);
}

static void reset_tables(void)
{
    char sql[512];
    snprintf(sql, sizeof sql, "TRUNCATE %s.t_push; DELETE FROM %s.state", schema, schema);
    exec_sql(sql);
}

static void server_push_options(struct pgfeed_options *o, const char *table)
{
    static char qualified[128], state[128];
    snprintf(qualified, sizeof qualified, "%s.%s", schema, table);
    snprintf(state, sizeof state, "%s.state", schema);
    push_options(o, db, qualified);
    o->state_table = state;
    o->progress_cb = progress_cb;
    o->progress_interval_ms = 1;
}

/* The same file imported by path into t_file: the reference. */
static void import_file(const char *path)
{
    char sql[256];
    snprintf(sql, sizeof sql, "TRUNCATE %s.t_file", schema);
    exec_sql(sql);
    begin("file import", NULL, 0, 1);
    struct pgfeed_options o;
    server_push_options(&o, "t_file");
    o.push = 0;
    o.source = path;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(H.status, 0, lbl("imported"));
    pgfeed_job_close(H.job, close_cb);
    end_case(1);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *p = malloc(*len ? *len : 1);
    if (fread(p, 1, *len, f) != *len)
        *len = 0;
    fclose(f);
    return p;
}

/* Pushes data into t_push in random writes; chunk_size 4096 and batches of 500 rows so
 * that the pipeline fills and EAGAIN comes. */
static void push_all(const char *name, const char *data, size_t len, uint64_t seed)
{
    begin(name, data, len, seed);
    struct pgfeed_options o;
    server_push_options(&o, "t_push");
    o.chunk_size = 4096;
    o.batch_rows = 500;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    pump();
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(H.status, 0, lbl("imported"));
    ASSERT_EQ_INT(H.pos, len, lbl("every byte written"));
    ASSERT_EQ_INT(H.last_write_rc, 0, lbl("write_end"));
    ASSERT_TRUE(H.eagains > 0, "%s: EAGAIN happened (%u times)", name, H.eagains);
    ASSERT_EQ_INT(H.drains, H.eagains, lbl("one drain_cb per EAGAIN"));
    ASSERT_EQ_INT(H.drains_in_write, 0, lbl("drain_cb never from inside pgfeed_job_write"));
    ASSERT_EQ_INT(H.drains_not_waiting, 0, lbl("drain_cb only after an EAGAIN"));
    ASSERT_EQ_INT(H.last.bytes_read, len, lbl("bytes_read counts what was written"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "x", 1), UV_EINVAL, lbl("a write after the end"));
    pgfeed_job_close(H.job, close_cb);
    end_case(1);
}

#define ROWS 20000

static void test_same_as_file(const char *path, int gz)
{
    const char *what = gz ? "gzipped tsv" : "plain tsv";
    import_file(path); /* first: it makes the state table */
    size_t len;
    char *data = read_all(path, &len);
    for (uint64_t seed = 1; seed <= 2; seed++) {
        char name[64];
        snprintf(name, sizeof name, "%s, seed %llu", what, (unsigned long long)seed);
        reset_tables();
        push_all(name, data, len, seed);
        char *a = digest("t_push"), *b = digest("t_file");
        ASSERT_EQ_STR(a, b, lbl("the rows equal the file import's"));
        ASSERT_TRUE(b && strncmp(b, "20000 ", 6) == 0, "%s: %d rows in the reference (%s)", name,
                    ROWS, b ? b : "?");
        free(a);
        free(b);
    }
    free(data);
}

/* A second connection holds ACCESS EXCLUSIVE on t_push: the COPY waits, the inbox fills. */
static void on_lock_check(uv_timer_t *t);
/* locker holds the lock in its open transaction; watcher reads pg_stat_activity outside
 * any transaction (inside one, the server keeps the first reading of it until the end). */
static PGconn *locker, *watcher;
static int lock_seen, close_under_lock;
static uint64_t lock_deadline;

/* close_instead: the job is closed while the COPY waits and the host waits for drain_cb. */
static void test_backpressure_from_a_lock(const char *data, size_t len, int close_instead)
{
    reset_tables();
    locker = PQconnectdb(db);
    watcher = PQconnectdb(db);
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE %s.t_push IN ACCESS EXCLUSIVE MODE", schema);
    PGresult *r = PQexec(locker, sql);
    ASSERT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK, "lock: %s", PQerrorMessage(locker));
    PQclear(r);
    begin(close_instead ? "closed while the COPY waits on a lock" : "a locked table", data, len, 3);
    struct pgfeed_options o;
    server_push_options(&o, "t_push");
    o.chunk_size = 4096;
    o.batch_rows = 0;
    /* batches of 64 KiB: the parser holds at most one beyond the COPY that waits on the lock
     * (the input is several times that), so the refusal reaches the host whatever the timing */
    o.batch_bytes = 64 * 1024;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    pump();
    uv_timer_t check;
    uv_timer_init(&H.loop, &check);
    lock_seen = 0;
    lock_deadline = uv_now(&H.loop) + 60000;
    close_under_lock = close_instead;
    uv_timer_start(&check, on_lock_check, 10, 10);
    if (close_instead) {
        end_case(0);
        ASSERT_TRUE(lock_seen, "%s: closed while the COPY waited", H.name);
        ASSERT_EQ_INT(H.drains, H.eagains - 1, lbl("no drain_cb after the close"));
        PQfinish(locker);
        PQfinish(watcher);
        return;
    }
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_TRUE(lock_seen, "%s: the COPY waited on the lock with writes refused", H.name);
    ASSERT_EQ_INT(H.status, 0, lbl("imported once the lock was gone"));
    ASSERT_EQ_INT(H.last.rows_committed, ROWS, lbl("rows committed"));
    pgfeed_job_close(H.job, close_cb);
    end_case(1);
    PQfinish(locker);
    PQfinish(watcher);
}

/* Polls (from the loop, so the job keeps running) until the job's backend waits on the lock
 * and the host waits for drain_cb; asserts no drain came meanwhile; then unlocks. */
static void on_lock_check(uv_timer_t *t)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfeed' AND "
             "wait_event_type = 'Lock' AND pid <> pg_backend_pid()");
    char *n = query_text(watcher, sql);
    int blocked = n && strcmp(n, "0") != 0;
    free(n);
    if ((!blocked || !H.waiting) && !H.ended && !H.done_calls && uv_now(&H.loop) < lock_deadline)
        return;
    /* not both within 60 s, the host wrote everything, or the job ended (it failed: a server
     * out of connections, say): fail rather than poll forever */
    ASSERT_EQ_INT(H.done_calls, 0, lbl("the job still runs while the table is locked"));
    if (H.done_calls)
        tap_note("%s: the job ended: %s", H.name, pgfeed_job_error(H.job)->message);
    if (!blocked) {
        /* what the job and the server were doing instead, for the failure's report */
        struct pgfeed_stats st;
        pgfeed_job_stats(H.job, &st);
        tap_note("%s: bytes_read %llu, rows_read %llu, rows_sent %llu, server wait %.2f s", H.name,
                 (unsigned long long)st.bytes_read, (unsigned long long)st.rows_read,
                 (unsigned long long)st.rows_sent, st.wait_server_s);
        char *a = query_text(watcher, "SELECT string_agg(state || ' ' || coalesce(wait_event_type,"
                                      " '-') || ' ' || left(query, 80), ' | ') FROM"
                                      " pg_stat_activity WHERE application_name = 'pgfeed'");
        tap_note("%s: pgfeed backends: %s", H.name, a ? a : "?");
        free(a);
    }
    ASSERT_TRUE(blocked && H.waiting,
                "%s: the COPY waits on the lock (%d) while the host waits "
                "for drain_cb (%d; input ended: %d)",
                H.name, blocked, H.waiting, H.ended);
    /* The job's input is full while the server waits: the refused write is still pending. */
    struct pgfeed_stats st;
    pgfeed_job_stats(H.job, &st);
    ASSERT_EQ_INT(st.rows_committed, 0, lbl("nothing committed under the lock"));
    ASSERT_TRUE(H.drains < H.eagains, "%s: no drain_cb while the COPY waits (%u of %u)", H.name,
                H.drains, H.eagains);
    ASSERT_TRUE(H.pos < H.len, "%s: the host could not write everything (%zu of %zu)", H.name,
                H.pos, H.len);
    lock_seen = 1;
    if (close_under_lock)
        pgfeed_job_close(H.job, close_cb);
    PQclear(PQexec(locker, "ROLLBACK"));
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(const char *data, size_t len)
{
    reset_tables();
    begin("canceled mid-import", data, len, 4);
    struct pgfeed_options o;
    server_push_options(&o, "t_push");
    o.chunk_size = 4096;
    o.batch_rows = 500;
    H.cancel_after = 1;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    pump();
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(H.status, PGFEED_ECANCELED, lbl("status"));
    ASSERT_EQ_INT(pgfeed_job_write(H.job, "x", 1), PGFEED_ECANCELED, lbl("a write after done"));
    ASSERT_EQ_INT(pgfeed_job_write_end(H.job), PGFEED_ECANCELED, lbl("write_end after done"));
    uint64_t committed = H.last.rows_committed;
    ASSERT_TRUE(committed > 0 && committed < ROWS, "%s: canceled mid-run (%llu rows)", H.name,
                (unsigned long long)committed);
    pgfeed_job_close(H.job, close_cb);
    end_case(1);

    /* The stream written again from its start with resume: every row once. */
    begin("resumed after the cancel", data, len, 5);
    server_push_options(&o, "t_push");
    o.chunk_size = 4096;
    o.batch_rows = 500;
    o.resume = 1;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    pump();
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(H.status, 0, lbl("resumed"));
    ASSERT_EQ_INT(H.last.rows_committed, ROWS - committed, lbl("rows committed by the resume"));
    pgfeed_job_close(H.job, close_cb);
    end_case(1);
    char *a = digest("t_push"), *b = digest("t_file");
    ASSERT_EQ_STR(a, b, lbl("every row once"));
    free(a);
    free(b);
}

static void test_rejects(void)
{
    static const char bad[] = "1\tone\n2\ttwo\textra\n3\tthree\nnot a number\tfour\n5\tfive\n";
    char path[128];
    snprintf(path, sizeof path, "%s/push.rejects.tsv", dir);
    for (int limit = 2; limit >= 1; limit--) {
        reset_tables();
        unlink(path);
        begin(limit == 2 ? "rejects within max_rejects" : "one reject too many", bad,
              sizeof bad - 1, 6);
        H.max_write = 3;
        H.no_end = limit == 1; /* the failure must stop it: no write_end */
        struct pgfeed_options o;
        server_push_options(&o, "t_push");
        o.max_rejects = (uint64_t)limit;
        o.rejects_path = path;
        ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
        ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
        pump();
        uv_run(&H.loop, UV_RUN_DEFAULT);
        if (limit == 2) {
            ASSERT_EQ_INT(H.status, 0, lbl("imported"));
            ASSERT_EQ_INT(H.last.rows_committed, 3, lbl("rows committed"));
            ASSERT_EQ_INT(H.last.rows_rejected, 2, lbl("rows rejected"));
            ASSERT_EQ_STR(pgfeed_job_rejects_path(H.job), path, lbl("rejects path"));
            size_t n;
            char *text = read_all(path, &n);
            int ok = n > 0 && strncmp(text, "2\t", 2) == 0 && strstr(text, "\n4\t") != NULL &&
                     strstr(text, "2\ttwo\textra\n") && strstr(text, "not a number\tfour");
            ASSERT_TRUE(ok, "%s: lines 2 and 4, as read, in the rejects file", H.name);
            if (!ok)
                tap_note("rejects file: %.*s", (int)n, text);
            free(text);
        } else {
            ASSERT_TRUE(H.status == PGFEED_EPARSE || H.status == PGFEED_ESERVER,
                        "%s: the second bad row fails the job (%s)", H.name,
                        pgfeed_err_name(H.status));
            ASSERT_EQ_INT(pgfeed_job_write(H.job, "x", 1), H.status,
                          lbl("a write after the failure returns its code"));
        }
        pgfeed_job_close(H.job, close_cb);
        end_case(1);
    }
    unlink(path);
}

/* The host's first writes fill the inbox before the job has connected; it closes the job. */
static void test_close_while_waiting(const char *data, size_t len)
{
    reset_tables();
    begin("closed while waiting for drain_cb", data, len, 7);
    struct pgfeed_options o;
    server_push_options(&o, "t_push");
    o.chunk_size = 4096;
    o.batch_rows = 0;
    H.close_on_eagain = 1;
    ASSERT_EQ_INT(pgfeed_job_new(&H.loop, &o, &H.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(H.job, done_cb), 0, lbl("start"));
    pump(); /* fills the inbox before the job connects: EAGAIN, then close */
    ASSERT_EQ_INT(H.eagains, 1, lbl("EAGAIN"));
    end_case(0);
    ASSERT_EQ_INT(H.drains, 0, lbl("no drain_cb after the close"));
}

static void write_inputs(const char *plain, const char *gz)
{
    FILE *f = fopen(plain, "w");
    gzFile g = gzopen(gz, "wb6");
    for (int i = 1; i <= ROWS; i++) {
        char line[128];
        int n = i % 97 == 0 ? snprintf(line, sizeof line, "%d\t\\N\n", i)
                            : snprintf(line, sizeof line, "%d\tname %d with a \\ backslash\n", i,
                                       i * 7919 % 100003);
        fwrite(line, 1, (size_t)n, f);
        gzwrite(g, line, (unsigned)n);
    }
    fclose(f);
    gzclose(g);
}

static void test_with_server(void)
{
    if (db == NULL || *db == '\0') {
        tap_skip("imports need PGFEED_TEST_DB (a conninfo string)");
        return;
    }
    conn = PQconnectdb(db);
    if (PQstatus(conn) != CONNECTION_OK) {
        ASSERT_TRUE(0, "connect to PGFEED_TEST_DB: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return;
    }
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    snprintf(schema, sizeof schema, "pgfeed_unit_push_%ld", (long)getpid());
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE SCHEMA %s; CREATE TABLE %s.t_push (id int, name text); "
             "CREATE TABLE %s.t_file (id int, name text)",
             schema, schema, schema);
    exec_sql(sql);
    char plain[128], gz[128];
    snprintf(plain, sizeof plain, "%s/rows.tsv", dir);
    snprintf(gz, sizeof gz, "%s/rows.tsv.gz", dir);
    write_inputs(plain, gz);
    test_same_as_file(plain, 0);
    test_same_as_file(gz, 1);
    size_t len;
    char *data = read_all(plain, &len);
    test_backpressure_from_a_lock(data, len, 0);
    test_backpressure_from_a_lock(data, len, 1);
    test_cancel(data, len);
    test_rejects();
    test_close_while_waiting(data, len);
    free(data);
    unlink(plain);
    unlink(gz);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    exec_sql(sql);
    PQfinish(conn);
}

int main(void)
{
    db = getenv("PGFEED_TEST_DB");
    snprintf(dir, sizeof dir, "/tmp/unit-push-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (pgfeed_library_init() != 0)
        return 1;
    test_refusals();
    test_bound_before_start();
    test_with_server();
    pgfeed_library_cleanup();
    rmdir(dir);
    return tap_done();
}
