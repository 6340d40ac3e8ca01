/*
 * test_job_close.c -- the job's close order, through the public API (pgfeed.h) only.
 *
 * Each case runs on a loop of its own and ends with uv_run until the loop has no handle
 * left: uv_loop_close must then return 0, close_cb must have run exactly once and never
 * from inside pgfeed_job_close, and done_cb exactly once when the job was started and not
 * closed before it finished (never otherwise). Cases: a job never started; one whose
 * options were refused; a start refused after a cancel; a start that fails on a bad
 * connection string (unparseable, or a server that is not there) or a missing source,
 * closed after done_cb, from inside done_cb, or while still running; a rejects file (or a
 * symbolic link) made between new and start, in a directory that did not exist at new,
 * refused through done_cb (pgfeed_job_new makes no filesystem call). With PGFEED_TEST_DB
 * (skipped without it): a local file imported whole, then canceled after its first
 * committed batch, and closed while running from a progress callback: the rows committed
 * are what the table and the checkpoint row hold.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgfeed.h"
#include "tap.h"

static char dir[64], data_path[128];
static const char *db;

/* ---------------------------------------------------------------- harness */

static struct run {
    const char *name;
    uv_loop_t loop;
    pgfeed_job_t *job;
    unsigned done_calls, close_calls;
    int status;
    int in_close;          /* inside pgfeed_job_close */
    int close_in_done;     /* done_cb closes the job */
    int cancel_after;      /* progress_cb cancels once this many batches are committed (0: never) */
    int close_in_progress; /* ... and closes it too */
    struct pgfeed_stats last; /* the stats done_cb saw */
    char message[256];
} R;

static const char *lbl(const char *check)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s: %s", R.name, check);
    return buf;
}

static void close_cb(pgfeed_job_t *job)
{
    ASSERT_TRUE(job == R.job, "%s: close_cb gets the job", R.name);
    ASSERT_TRUE(!R.in_close, "%s: close_cb not from inside pgfeed_job_close", R.name);
    R.close_calls++;
}

static void do_close(void)
{
    R.in_close = 1;
    pgfeed_job_close(R.job, close_cb);
    R.in_close = 0;
}

static void done_cb(pgfeed_job_t *job, int status)
{
    R.done_calls++;
    R.status = status;
    pgfeed_job_stats(job, &R.last);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    snprintf(R.message, sizeof R.message, "%s", e->message ? e->message : "");
    if (R.close_in_done)
        do_close();
}

static void progress_cb(void *arg, const struct pgfeed_stats *st)
{
    (void)arg;
    if (R.cancel_after && st->batches_committed >= (uint64_t)R.cancel_after && !st->done) {
        R.cancel_after = 0;
        pgfeed_job_cancel(R.job);
        pgfeed_job_cancel(R.job); /* any number of times */
        if (R.close_in_progress)
            do_close();
    }
}

static void begin(const char *name)
{
    memset(&R, 0, sizeof R);
    R.name = name;
    uv_loop_init(&R.loop);
}

/* Runs the loop dry, then checks the close order and closes the loop. */
static void finish_case(unsigned want_done)
{
    uv_run(&R.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(R.done_calls, want_done, lbl("done_cb calls"));
    ASSERT_EQ_INT(R.close_calls, 1, lbl("close_cb once"));
    ASSERT_EQ_INT(uv_loop_close(&R.loop), 0, lbl("the loop closes: no handle left"));
}

static void options(struct pgfeed_options *o, const char *source, const char *conninfo)
{
    pgfeed_options_init(o);
    o->source = source;
    o->table = "t";
    o->conninfo = conninfo;
    o->header = PGFEED_HEADER_NONE;
}

/* -------------------------------------------------------- without a server */

static void test_never_started(void)
{
    begin("never started");
    struct pgfeed_options o;
    options(&o, data_path, "host=/nonexistent");
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new"));
    do_close();
    ASSERT_EQ_INT(R.close_calls, 0, lbl("close_cb comes from the loop"));
    finish_case(0);
}

static void test_refused_options(void)
{
    begin("options refused");
    struct pgfeed_options o;
    options(&o, data_path, NULL);
    o.table = NULL;
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), PGFEED_EUSAGE, lbl("new"));
    ASSERT_TRUE(R.job != NULL, "%s: the job is there to close", R.name);
    ASSERT_EQ_STR(pgfeed_job_error(R.job)->message, "no target table given", lbl("message"));
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), UV_EINVAL, lbl("start refused"));
    do_close();
    finish_case(0);
}

static void test_canceled_before_start(void)
{
    begin("canceled before start");
    struct pgfeed_options o;
    options(&o, data_path, "host=/nonexistent");
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new"));
    pgfeed_job_cancel(R.job);
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), PGFEED_ECANCELED, lbl("start refused"));
    ASSERT_EQ_INT(pgfeed_job_error(R.job)->code, PGFEED_ECANCELED, lbl("error"));
    do_close();
    finish_case(0);
}

enum when { CLOSE_AFTER_DONE, CLOSE_IN_DONE, CLOSE_RUNNING };

static const struct fail_case {
    const char *name;
    int missing_source;
    const char *conninfo;
    int status;
    const char *message; /* NULL: any (libpq's words) */
} fail_cases[] = {
    {"unparseable conninfo", 0, "host=/tmp nosuchoption=1", PGFEED_ECONNECT,
     "invalid connection string"},
    {"no server there", 0, "host=/nonexistent-pgfeed-unit port=1 connect_timeout=5",
     PGFEED_ECONNECT, NULL},
    {"missing source", 1, "host=/nonexistent-pgfeed-unit port=1", PGFEED_ESOURCE, NULL},
};

static void test_failed_start(const struct fail_case *c, enum when when)
{
    static const char *const whens[] = {"closed after done", "closed in done_cb",
                                        "closed while running"};
    char name[128], missing[160];
    snprintf(name, sizeof name, "%s, %s", c->name, whens[when]);
    snprintf(missing, sizeof missing, "%s/missing.tsv", dir);
    begin(name);
    R.close_in_done = when == CLOSE_IN_DONE;
    struct pgfeed_options o;
    options(&o, c->missing_source ? missing : data_path, c->conninfo);
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), 0, lbl("start"));
    ASSERT_EQ_INT(R.done_calls, 0, lbl("done_cb comes from the loop"));
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), UV_EINVAL, lbl("a second start"));
    if (when == CLOSE_RUNNING) {
        do_close();
        finish_case(0);
        return;
    }
    uv_run(&R.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(R.done_calls, 1, lbl("done_cb once"));
    ASSERT_EQ_INT(R.status, c->status, lbl("status"));
    if (c->message)
        ASSERT_EQ_STR(R.message, c->message, lbl("message"));
    ASSERT_TRUE(R.last.done == 1, "%s: stats say done", name);
    if (when == CLOSE_AFTER_DONE) {
        ASSERT_EQ_INT(pgfeed_job_error(R.job)->code, c->status, lbl("the error stays readable"));
        do_close();
    }
    finish_case(1);
}

/*
 * pgfeed_job_new makes no filesystem call: a rejects file that appears between new and
 * start (in a directory that did not exist at new) is found at the start and refused
 * through done_cb, with the code and message pgfeed_job_new used to return; a symbolic
 * link likewise. Nothing is imported (no server is reachable, and none is asked).
 */
static void test_rejects_checked_at_start(int symlink_there)
{
    char sub[128], path[192], msg[256];
    snprintf(sub, sizeof sub, "%s/later-%d", dir, symlink_there);
    snprintf(path, sizeof path, "%s/r.tsv", sub);
    begin(symlink_there ? "rejects file a symlink made after new"
                        : "rejects file made after new, in a new directory");
    struct pgfeed_options o;
    options(&o, data_path, "host=/nonexistent-pgfeed-unit port=1");
    o.max_rejects = 5;
    o.rejects_path = path;
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new: no filesystem call"));
    ASSERT_EQ_INT(mkdir(sub, 0700), 0, lbl("the directory did not exist at new"));
    if (symlink_there) {
        ASSERT_EQ_INT(symlink(data_path, path), 0, lbl("symlink"));
    } else {
        FILE *f = fopen(path, "w");
        fputs("1\told\trow\n", f);
        fclose(f);
    }
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), 0, lbl("start"));
    ASSERT_EQ_INT(R.done_calls, 0, lbl("done_cb comes from the loop"));
    uv_run(&R.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(R.done_calls, 1, lbl("done_cb once"));
    ASSERT_EQ_INT(R.status, symlink_there ? UV_ELOOP : UV_EEXIST, lbl("status"));
    snprintf(msg, sizeof msg, "rejects file \"%s\" %s", path,
             symlink_there ? "is a symbolic link" : "already exists");
    ASSERT_EQ_STR(R.message, msg, lbl("message"));
    ASSERT_EQ_INT(pgfeed_job_error(R.job)->code, R.status, lbl("the error's code"));
    ASSERT_EQ_INT(R.last.rows_committed, 0, lbl("nothing imported"));
    do_close();
    finish_case(1);
    unlink(path);
    rmdir(sub);
}

/* ----------------------------------------------------------- with a server */

static PGconn *conn;
static char schema[64], table[96], state[96];

static long long query_int(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    long long v =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        tap_note("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return v;
}

static void exec_sql(const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ASSERT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK, "%s (%s)", sql, PQerrorMessage(conn));
    PQclear(r);
}

#define ROWS 200000

static void server_options(struct pgfeed_options *o)
{
    options(o, data_path, db);
    o->table = table;
    o->state_table = state;
    o->batch_rows = 1000;
    o->progress_cb = progress_cb;
    o->progress_interval_ms = 1;
}

static void test_imported(void)
{
    begin("imported whole");
    char sql[256];
    snprintf(sql, sizeof sql, "TRUNCATE %s", table);
    exec_sql(sql);
    struct pgfeed_options o;
    server_options(&o);
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), 0, lbl("start"));
    uv_run(&R.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(R.status, 0, lbl("imported"));
    ASSERT_EQ_INT(R.last.rows_committed, ROWS, lbl("rows committed"));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    ASSERT_EQ_INT(query_int(sql), ROWS, lbl("rows in the table"));
    do_close();
    finish_case(1);
}

static void test_canceled(int close_in_progress)
{
    begin(close_in_progress ? "closed from a progress callback mid-run"
                            : "canceled after the first batch");
    char sql[256];
    snprintf(sql, sizeof sql, "TRUNCATE %s; DELETE FROM %s", table, state);
    exec_sql(sql);
    struct pgfeed_options o;
    server_options(&o);
    R.cancel_after = 1;
    R.close_in_progress = close_in_progress;
    ASSERT_EQ_INT(pgfeed_job_new(&R.loop, &o, &R.job), 0, lbl("new"));
    ASSERT_EQ_INT(pgfeed_job_start(R.job, done_cb), 0, lbl("start"));
    if (close_in_progress) {
        finish_case(0);
    } else {
        uv_run(&R.loop, UV_RUN_DEFAULT);
        ASSERT_EQ_INT(R.done_calls, 1, lbl("done_cb once"));
        ASSERT_EQ_INT(R.status, PGFEED_ECANCELED, lbl("status"));
        ASSERT_EQ_STR(R.message, "import canceled", lbl("message"));
        ASSERT_TRUE(R.last.rows_committed > 0 && R.last.rows_committed < ROWS,
                    "%s: canceled mid-run (%llu rows committed)", R.name,
                    (unsigned long long)R.last.rows_committed);
        do_close();
        finish_case(1);
    }
    /* Committed batches stay, the one in flight is rolled back: table and checkpoint agree. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    long long rows = query_int(sql);
    snprintf(sql, sizeof sql, "SELECT rows_committed FROM %s WHERE NOT finished", state);
    long long ckpt = query_int(sql);
    ASSERT_TRUE(rows > 0 && rows < ROWS && rows % 1000 == 0,
                "%s: whole batches in the table (%lld rows)", R.name, rows);
    ASSERT_EQ_INT(ckpt, rows, lbl("the checkpoint counts the rows in the table"));
    if (!close_in_progress)
        ASSERT_EQ_INT(rows, R.last.rows_committed, lbl("the stats count them too"));
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
    snprintf(schema, sizeof schema, "pgfeed_unit_job_%ld", (long)getpid());
    snprintf(table, sizeof table, "%s.t", schema);
    snprintf(state, sizeof state, "%s.state", schema);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s; CREATE TABLE %s (id int, name text)", schema,
             table);
    exec_sql(sql);
    test_imported();
    test_canceled(0);
    test_canceled(1);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    exec_sql(sql);
    PQfinish(conn);
}

int main(void)
{
    db = getenv("PGFEED_TEST_DB");
    snprintf(dir, sizeof dir, "/tmp/unit-job-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(data_path, sizeof data_path, "%s/rows.tsv", dir);
    FILE *f = fopen(data_path, "w");
    for (int i = 1; i <= ROWS; i++)
        fprintf(f, "%d\tname %d\n", i, i);
    fclose(f);
    if (pgfeed_library_init() != 0)
        return 1;

    test_never_started();
    test_refused_options();
    test_canceled_before_start();
    for (size_t i = 0; i < sizeof fail_cases / sizeof fail_cases[0]; i++)
        for (int w = CLOSE_AFTER_DONE; w <= CLOSE_RUNNING; w++)
            test_failed_start(&fail_cases[i], (enum when)w);
    test_rejects_checked_at_start(0);
    test_rejects_checked_at_start(1);
    test_with_server();

    pgfeed_library_cleanup();
    unlink(data_path);
    rmdir(dir);
    return tap_done();
}
