/*
 * test_checkpoint.c -- the state table's SQL and its row read back (checkpoint.c).
 *
 * Without a server: the restart point's bytea hex input (pgfeed__checkpoint_hex), the
 * options text a resume must match, the stored targets read back, and the weighing of a
 * found checkpoint against the run's options and source (pgfeed__checkpoint_weigh), each
 * decision and each refusal's code and message.
 * With PGFEED_TEST_DB (a conninfo string; the checks that need it are skipped without it):
 * pgfeed__checkpoint_read on real PGresults, a SELECT of literal values in the columns the
 * select statement reads, for each shape of the restart column (hex of either case, empty,
 * NULL, not hex, an odd count of digits) and of the others (NULLs, another job's row); then
 * every statement against a schema made for the test: create (twice), upsert (insert, then
 * update, with a restart point holding every byte value, which must come back the same),
 * select (this job's row, another job's unfinished one by the LIKE pattern), finish and
 * forget, with the server's row checked after each.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

static PGconn *conn;
static struct pgfeed_options opt;
static struct pgfeed_ctx ctx;

static void ctx_reset(void)
{
    pgfeed__ctx_free(&ctx);
    memset(&ctx, 0, sizeof ctx);
    pgfeed_options_init(&opt);
    ctx.opt = &opt;
}

/* ------------------------------------------------------- the hex input */

static void test_hex(void)
{
    static const struct {
        const char *prefix, *blob;
        size_t n;
        const char *want;
    } cases[] = {
        {"", "", 0, "\\x"},
        {"", "\x00", 1, "\\x00"},
        {"", "\x00\x0a\xff\x10\x7f\x80", 6, "\\x000aff107f80"},
        {"abc", "\xab\xcd", 2, "abc\\xabcd"}, /* appended after what is there */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pgfeed_buf b = {0};
        pgfeed__buf_append(&b, cases[i].prefix, strlen(cases[i].prefix));
        ASSERT_EQ_INT(pgfeed__checkpoint_hex(&b, cases[i].blob, cases[i].n), 0, cases[i].want);
        ASSERT_EQ_MEM(b.data, b.len, cases[i].want, strlen(cases[i].want), cases[i].want);
        ASSERT_TRUE(b.cap > b.len && b.data[b.len] == '\0', "%s: NUL-terminated", cases[i].want);
        pgfeed__buf_free(&b);
    }
}

/* ------------------------------------------------ the job's options text */

static void test_options_text(void)
{
    pgfeed_options_init(&opt);
    opt.format = PGFEED_FORMAT_CSV;
    opt.delimiter = ';';
    opt.quote = '\'';
    opt.null_marker = "NULL";
    opt.header = PGFEED_HEADER_SKIP;
    const char *names[] = {"a", "b c"};
    struct pgfeed_targets t = {.n = 2, .names = names};
    char *text = pgfeed__checkpoint_options_text(&opt, &t);
    ASSERT_EQ_STR(text, "format=csv delimiter=59 quote=39 null=NULL header=skip targets=a,b c",
                  "options text with targets");
    free(text);
    opt.format = PGFEED_FORMAT_TSV;
    text = pgfeed__checkpoint_options_text(&opt, NULL);
    ASSERT_EQ_STR(text, "format=tsv delimiter=59 quote=0 null=NULL header=skip",
                  "tsv: no quote; without targets");
    free(text);
}

static void test_targets_back(void)
{
    static const struct pgfeed_column cols[] = {{.name = "a"}, {.name = "b c"}, {.name = "d"}};
    ctx_reset();
    opt.table = "t";
    size_t *idx = NULL, n = 9;
    ASSERT_EQ_INT(pgfeed__checkpoint_targets(&ctx, "format=tsv", cols, 3, &idx, &n), 0,
                  "no targets stored");
    ASSERT_TRUE(idx == NULL && n == 0, "no targets stored: none read");
    ASSERT_EQ_INT(pgfeed__checkpoint_targets(&ctx, "format=tsv targets=d,b c,a", cols, 3, &idx, &n),
                  0, "targets stored");
    ASSERT_TRUE(idx && n == 3 && idx[0] == 2 && idx[1] == 1 && idx[2] == 0,
                "targets d, b c, a -> columns 2, 1, 0");
    free(idx);
    ASSERT_EQ_INT(pgfeed__checkpoint_targets(&ctx, "format=tsv targets=a,gone", cols, 3, &idx, &n),
                  PGFEED_ECHECKPOINT, "a stored column the table lost");
    ASSERT_EQ_STR(ctx.err.pub.message,
                  "cannot resume the import into \"t\": column \"gone\" is gone",
                  "the lost column's message");
}

/* ------------------------------------------------------------- weighing */

enum { RESUME = 1, RESTART = 2, TRUNCATE = 4 };

static const struct weigh_case {
    const char *what;
    int flags; /* RESUME, RESTART, TRUNCATE */
    int found, finished, other;
    const char *options; /* stored; NULL: this run's */
    int64_t size_now;    /* the source's size now (the checkpoint's: 1000) */
    int want;            /* a decision, or the failure code */
    const char *message; /* the failure's message, or NULL */
} weigh_cases[] = {
    {"none", 0, 0, 0, 0, NULL, 1000, PGFEED_CKPT_FRESH, NULL},
    {"none, --resume", RESUME, 0, 0, 0, NULL, 1000, PGFEED_CKPT_FRESH, NULL},
    {"another stream's, --resume", RESUME, 0, 0, 1, NULL, 1000, PGFEED_ECHANGED,
     "cannot resume: standard input is not the stream the interrupted import read"},
    {"another stream's, no --resume", 0, 0, 0, 1, NULL, 1000, PGFEED_CKPT_FRESH, NULL},
    {"unfinished, --resume", RESUME, 1, 0, 0, NULL, 1000, PGFEED_CKPT_RESUME, NULL},
    {"unfinished, no flag", 0, 1, 0, 0, NULL, 1000, PGFEED_ECHECKPOINT,
     "an unfinished import of this source into \"t\" exists"},
    {"unfinished, --restart", RESTART, 1, 0, 0, NULL, 1000, PGFEED_CKPT_FORGET, NULL},
    {"unfinished, --resume, other options", RESUME, 1, 0, 0, "format=csv delimiter=44", 1000,
     PGFEED_ECHECKPOINT, "cannot resume: the format options differ from the interrupted import's"},
    {"unfinished, --resume, stored targets", RESUME, 1, 0, 0, "+ targets=a,b", 1000,
     PGFEED_CKPT_RESUME, NULL},
    {"unfinished, --resume, source changed", RESUME, 1, 0, 0, NULL, 2000, PGFEED_ECHANGED,
     "the source changed since the checkpoint"},
    {"finished, --resume", RESUME, 1, 1, 0, NULL, 1000, PGFEED_CKPT_FINISHED, NULL},
    {"finished, --resume, source changed", RESUME, 1, 1, 0, NULL, 2000, PGFEED_CKPT_FRESH, NULL},
    {"finished, no flag", 0, 1, 1, 0, NULL, 1000, PGFEED_ECHECKPOINT,
     "this source was already imported into \"t\""},
    {"finished, --restart", RESTART, 1, 1, 0, NULL, 1000, PGFEED_CKPT_FRESH, NULL},
    {"finished, --truncate", TRUNCATE, 1, 1, 0, NULL, 1000, PGFEED_CKPT_FRESH, NULL},
    {"finished, source changed", 0, 1, 1, 0, NULL, 2000, PGFEED_CKPT_FRESH, NULL},
};

static void test_weigh(void)
{
    for (size_t i = 0; i < sizeof weigh_cases / sizeof weigh_cases[0]; i++) {
        const struct weigh_case *w = &weigh_cases[i];
        ctx_reset();
        opt.source = "/data/x.tsv";
        opt.table = "t";
        opt.format = PGFEED_FORMAT_TSV;
        opt.delimiter = '\t';
        opt.null_marker = "\\N";
        opt.resume = (w->flags & RESUME) != 0;
        opt.restart = (w->flags & RESTART) != 0;
        opt.truncate = (w->flags & TRUNCATE) != 0;
        char *mine = pgfeed__checkpoint_options_text(&opt, NULL);
        char stored[256];
        if (w->options && w->options[0] == '+')
            snprintf(stored, sizeof stored, "%s%s", mine, w->options + 1);
        else
            snprintf(stored, sizeof stored, "%s", w->options ? w->options : mine);
        free(mine);
        struct pgfeed_checkpoint c = {.found = w->found,
                                      .finished = w->finished,
                                      .other = w->other,
                                      .rows = 70,
                                      .batches = 7,
                                      .lines = 71,
                                      .options = stored,
                                      .size = 1000};
        struct pgfeed_validators v = {.size = w->size_now};
        int got = pgfeed__checkpoint_weigh(&ctx, &c, &v);
        ASSERT_EQ_INT(got, w->want, w->what);
        if (w->message)
            ASSERT_EQ_STR(ctx.err.pub.message, w->message, w->what);
        else
            ASSERT_TRUE(ctx.err.pub.code == 0, "%s: no error", w->what);
    }
}

/* ---------------------------------------------------- reading a row back */

/* The select's columns, in its order, as literals; $1 the restart column's hex text. */
static const char read_sql[] =
    "SELECT 11::bigint, 2::bigint, 30::bigint, 4000::bigint, 500::bigint, $1::text, true,"
    " 'opts'::text, '\"e1\"'::text, '1700000000.000000001'::text, 123::bigint,"
    " '2024-01-02 03:04:05 UTC'::text, true";
static const char read_sql_nulls[] =
    "SELECT 9223372036854775807::bigint, 0::bigint, 1::bigint, 0::bigint, 0::bigint, NULL::text,"
    " false, 'o'::text, NULL::text, NULL::text, NULL::bigint, 'u'::text, false";

static PGresult *query(const char *sql, int nparams, const char *const *params)
{
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        tap_note("%s: %s", sql, PQerrorMessage(conn));
    return r;
}

static const struct restart_case {
    const char *hex; /* NULL: SQL NULL */
    const char *bytes;
    size_t n;
    const char *detail; /* NULL: accepted */
} restart_cases[] = {
    {"00ff10", "\x00\xff\x10", 3, NULL},
    {"ABcdeF09", "\xab\xcd\xef\x09", 4, NULL},
    {"", "", 0, NULL},
    {NULL, NULL, 0, NULL},
    {"0g", NULL, 0,
     "The state table's restart column holds \"0g\", which is not hexadecimal at character 2."},
    {"zz", NULL, 0,
     "The state table's restart column holds \"zz\", which is not hexadecimal at character 1."},
    {"\\x00", NULL, 0,
     "The state table's restart column holds \"\\\\x00\", which is not hexadecimal at character "
     "1."},
    {"abc", NULL, 0,
     "The state table's restart column holds \"abc\", an odd number (3) of hex digits."},
};

static void test_read_restart(const struct restart_case *c)
{
    char what[160];
    snprintf(what, sizeof what, "read restart %s", c->hex ? c->hex : "NULL");
    const char *params[1] = {c->hex};
    PGresult *r = query(read_sql, 1, params);
    ctx_reset();
    struct pgfeed_checkpoint ck = {0};
    int rc = pgfeed__checkpoint_read(&ck, r, &ctx);
    if (c->detail == NULL) {
        ASSERT_EQ_INT(rc, 0, what);
        ASSERT_TRUE(ck.found && !ck.other && ck.finished, "%s: found, this job's, finished", what);
        ASSERT_TRUE(ck.rows == 11 && ck.batches == 2 && ck.lines == 30 &&
                        ck.decoded_offset == 4000 && ck.raw_offset == 500 && ck.size == 123,
                    "%s: numbers", what);
        ASSERT_EQ_STR(ck.options, "opts", what);
        ASSERT_EQ_STR(ck.etag, "\"e1\"", what);
        ASSERT_EQ_STR(ck.last_modified, "1700000000.000000001", what);
        ASSERT_EQ_STR(ck.updated_at, "2024-01-02 03:04:05 UTC", what);
        if (c->bytes) {
            ASSERT_TRUE(ck.restart != NULL, "%s: a restart point", what);
            ASSERT_EQ_MEM(ck.restart ? ck.restart : "", ck.restart_len, c->bytes, c->n, what);
        } else {
            ASSERT_TRUE(ck.restart == NULL && ck.restart_len == 0, "%s: no restart point", what);
        }
    } else {
        ASSERT_TRUE(rc != 0, "%s: refused (%d)", what, rc);
        ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_ECHECKPOINT, what);
        ASSERT_EQ_STR(ctx.err.pub.stage, "sink", what);
        ASSERT_EQ_STR(ctx.err.pub.message, "the checkpoint's decoder restart point is damaged",
                      what);
        ASSERT_EQ_STR(ctx.err.pub.detail, c->detail, what);
        ASSERT_EQ_STR(ctx.err.pub.hint,
                      "Run with --restart to import the source again from its start.", what);
        ASSERT_TRUE(ck.restart == NULL, "%s: no restart point kept", what);
    }
    pgfeed__checkpoint_clear(&ck);
    ASSERT_TRUE(ck.restart == NULL && ck.options == NULL && ck.size == -1 && !ck.found,
                "%s: cleared", what);
    PQclear(r);
}

static void test_read_nulls(void)
{
    PGresult *r = query(read_sql_nulls, 0, NULL);
    ctx_reset();
    struct pgfeed_checkpoint ck = {0};
    ASSERT_EQ_INT(pgfeed__checkpoint_read(&ck, r, &ctx), 0, "read another job's row");
    ASSERT_TRUE(!ck.found && ck.other && !ck.finished, "another job's row: other, not found");
    ASSERT_TRUE(ck.rows == 9223372036854775807u && ck.batches == 0 && ck.lines == 1,
                "another job's row: its numbers");
    ASSERT_TRUE(ck.etag == NULL && ck.last_modified == NULL && ck.size == -1 && ck.restart == NULL,
                "NULL columns: NULL strings, size -1, no restart point");
    pgfeed__checkpoint_clear(&ck);
    PQclear(r);
}

/* ------------------------------------------------------ the statements */

static char schema[64], table[96];

static int exec_ok(const char *sql, int nparams, const char *const *params, const char *what)
{
    PGresult *r = query(sql, nparams, params);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    ASSERT_TRUE(ok, "%s: the server accepts it", what);
    int n = ok ? atoi(PQcmdTuples(r)) : -1;
    PQclear(r);
    return n;
}

/* The select's row for key (others: the LIKE pattern) read into ck; 0 rows: found 0. */
static int select_row(struct pgfeed_checkpoint *ck, const char *key, const char *others)
{
    char *sql = pgfeed__checkpoint_sql_select(table);
    const char *params[2] = {key, others};
    PGresult *r = query(sql, 2, params);
    free(sql);
    int n = PQntuples(r);
    pgfeed__checkpoint_clear(ck);
    if (n == 1) {
        ctx_reset();
        ASSERT_EQ_INT(pgfeed__checkpoint_read(ck, r, &ctx), 0, "read the selected row");
    }
    PQclear(r);
    return n;
}

static char *started_at(const char *key)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT started_at::text FROM %s WHERE job_key = $1", table);
    const char *params[1] = {key};
    PGresult *r = query(sql, 1, params);
    char *s = PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return s;
}

/* Upsert of key with these counters, finished flag and restart point (NULL: none). */
static int upsert(const char *key, const char *rows, const char *finished, const char *hex)
{
    char *sql = pgfeed__checkpoint_sql_upsert(table);
    const char *params[14] = {key,  "/data/x.tsv", "public.t", "format=tsv", NULL,   "1.5",    "99",
                              rows, "3",           "42",       "4096",       "1024", finished, hex};
    int n = exec_ok(sql, 14, params, "upsert");
    free(sql);
    return n;
}

static struct pgfeed_checkpoint ck = {.size = -1};
static char *first_start; /* k1's started_at after its first upsert */

/* Insert then update: the row read back, the restart point byte for byte, started_at. */
static void test_insert_update(void)
{
    char blob[256];
    for (int i = 0; i < 256; i++)
        blob[i] = (char)i;
    struct pgfeed_buf hex = {0};
    pgfeed__checkpoint_hex(&hex, blob, sizeof blob);
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 0, "select before any upsert: no row");
    ASSERT_EQ_INT(upsert("k1", "10", "f", hex.data), 1, "upsert inserts one row");
    pgfeed__buf_free(&hex);
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 1, "select: one row");
    ASSERT_TRUE(ck.found && !ck.other && !ck.finished && ck.rows == 10 && ck.batches == 3 &&
                    ck.lines == 42 && ck.decoded_offset == 4096 && ck.raw_offset == 1024 &&
                    ck.size == 99,
                "select: the upserted numbers");
    ASSERT_EQ_STR(ck.options, "format=tsv", "select: options");
    ASSERT_TRUE(ck.etag == NULL, "select: no etag");
    ASSERT_EQ_STR(ck.last_modified, "1.5", "select: last_modified");
    ASSERT_TRUE(ck.updated_at && strlen(ck.updated_at) > 10, "select: updated_at %s",
                ck.updated_at ? ck.updated_at : "(null)");
    ASSERT_EQ_MEM(ck.restart ? ck.restart : "", ck.restart_len, blob, sizeof blob,
                  "the restart point comes back byte for byte");

    first_start = started_at("k1");
    ASSERT_EQ_INT(upsert("k1", "20", "f", NULL), 1, "upsert updates the row");
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 1, "select after the update");
    ASSERT_TRUE(ck.rows == 30 && ck.batches == 6 && ck.restart == NULL && !ck.finished,
                "the update adds its batch's rows and batches; no restart point");
    char *t1 = started_at("k1");
    ASSERT_EQ_STR(t1, first_start, "an unfinished import keeps its started_at");
    free(t1);
}

/* Another job of the same kind, unfinished: found by the pattern, not as this job. */
static void test_other_job(void)
{
    ASSERT_EQ_INT(upsert("stdin:aaaa -> t", "7", "f", NULL), 1, "upsert another job");
    ASSERT_EQ_INT(select_row(&ck, "stdin:bbbb -> t", "stdin:% -> t"), 1,
                  "select by the pattern: the other job's row");
    ASSERT_TRUE(!ck.found && ck.other && ck.rows == 7, "the other job's row is not this job's");
    ASSERT_EQ_INT(select_row(&ck, "k1", "stdin:% -> t"), 1, "this job's row comes first");
    ASSERT_TRUE(ck.found && !ck.other && ck.rows == 30, "this job's row, not the other's");
}

static void test_finish_forget(void)
{
    char *finish = pgfeed__checkpoint_sql_finish(table);
    const char *key_other[1] = {"stdin:aaaa -> t"};
    ASSERT_EQ_INT(exec_ok(finish, 1, key_other, "finish"), 1, "finish marks one row");
    ASSERT_EQ_INT(select_row(&ck, "stdin:bbbb -> t", "stdin:% -> t"), 0,
                  "a finished job is no other job's checkpoint");
    const char *key1[1] = {"k1"};
    ASSERT_EQ_INT(exec_ok(finish, 1, key1, "finish"), 1, "finish k1");
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 1, "select the finished row");
    ASSERT_TRUE(ck.found && ck.finished, "finished");
    free(finish);

    ASSERT_EQ_INT(upsert("k1", "5", "f", NULL), 1, "upsert over a finished import");
    char *t2 = started_at("k1");
    ASSERT_TRUE(first_start && t2 && strcmp(t2, first_start) != 0,
                "a new import after a finished one starts anew");
    free(t2);
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 1, "select the new import");
    ASSERT_TRUE(ck.rows == 5 && !ck.finished, "the new import's row");

    char *forget = pgfeed__checkpoint_sql_forget(table);
    ASSERT_EQ_INT(exec_ok(forget, 1, key1, "forget"), 1, "forget deletes one row");
    ASSERT_EQ_INT(exec_ok(forget, 1, key1, "forget"), 0, "forget again deletes nothing");
    ASSERT_EQ_INT(select_row(&ck, "k1", "nothing%"), 0, "no row after forget");
    free(forget);
}

/* A batch committed past the prefix: (key, first line, last line, rows). */
static int ahead(const char *key, const char *first, const char *last, const char *rows)
{
    char *sql = pgfeed__checkpoint_sql_ahead(table);
    const char *params[15] = {key, "/data/x.tsv", "public.t", "format=tsv", NULL, "1.5", "99", rows,
                              "1", last,          "4096",     "0",          "f",  NULL,  first};
    int n = exec_ok(sql, 15, params, "ahead");
    free(sql);
    return n;
}

/* The prefix row of key at last line `lines`, adding `rows` rows in one batch. */
static int prefix_at(const char *key, const char *rows, const char *lines)
{
    char *sql = pgfeed__checkpoint_sql_upsert(table);
    const char *params[14] = {key,  "/data/x.tsv", "public.t", "format=tsv", NULL,   "1.5", "99",
                              rows, "1",           lines,      "4096",       "1024", "f",   NULL};
    int n = exec_ok(sql, 14, params, "prefix");
    free(sql);
    return n;
}

/* select + select_ahead of key into ck; returns the rows past the prefix. */
static size_t read_job(const char *key)
{
    select_row(&ck, key, "nothing%");
    char *sql = pgfeed__checkpoint_sql_select_ahead(table);
    const char *params[1] = {key};
    PGresult *r = query(sql, 1, params);
    free(sql);
    ASSERT_EQ_INT(pgfeed__checkpoint_read_ahead(&ck, r), 0, "read the rows past the prefix");
    PQclear(r);
    return ck.nahead;
}

/* Batches committed out of order: rows of their own, folded by the prefix and the finish. */
static void test_past_prefix(void)
{
    ASSERT_EQ_INT(ahead("k3", "101", "150", "50"), 1, "a batch past the prefix: its row");
    ASSERT_EQ_INT(read_job("k3"), 1, "one batch past the prefix");
    ASSERT_TRUE(ck.found && !ck.finished && ck.lines == 0 && ck.rows == 50 && ck.batches == 1,
                "an empty prefix is made; rows and batches count the batch past it");
    ASSERT_TRUE(ck.ahead[0].first == 101 && ck.ahead[0].last == 150, "its lines: 101 to 150");
    ASSERT_EQ_INT(ahead("k3", "201", "250", "40"), 1, "a second batch past the prefix");
    ASSERT_EQ_INT(prefix_at("k3", "100", "150"), 1, "the prefix reaches line 150");
    ASSERT_EQ_INT(read_job("k3"), 1, "the batch the prefix covers is folded into it");
    ASSERT_TRUE(ck.lines == 150 && ck.rows == 190 && ck.batches == 3 && ck.ahead[0].first == 201,
                "prefix 150 with 150 rows in 2 batches, and lines 201 to 250 past it");
    char *finish = pgfeed__checkpoint_sql_finish(table);
    const char *key3[1] = {"k3"};
    ASSERT_EQ_INT(exec_ok(finish, 1, key3, "finish"), 1, "finish k3");
    free(finish);
    ASSERT_EQ_INT(read_job("k3"), 0, "nothing past the prefix after the finish");
    ASSERT_TRUE(ck.finished && ck.rows == 190 && ck.batches == 3 && ck.lines == 250,
                "the finish folds the last batch in");
    ASSERT_EQ_INT(ahead("k3", "1", "10", "9"), 1, "a new import's first batch past the prefix");
    ASSERT_EQ_INT(read_job("k3"), 1, "it empties the finished import's row");
    ASSERT_TRUE(!ck.finished && ck.lines == 0 && ck.rows == 9, "an empty, unfinished prefix");
    char *forget = pgfeed__checkpoint_sql_forget(table);
    ASSERT_EQ_INT(exec_ok(forget, 1, key3, "forget"), 2, "forget deletes both rows");
    free(forget);
}

/* Every statement against a schema of the test's own. */
static void test_statements(void)
{
    snprintf(schema, sizeof schema, "pgfeed_unit_ckpt_%ld", (long)getpid());
    snprintf(table, sizeof table, "%s.state", schema);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    exec_ok(sql, 0, NULL, "create the test's schema");
    char *create = pgfeed__checkpoint_sql_create(table);
    exec_ok(create, 0, NULL, "create");
    exec_ok(create, 0, NULL, "create when it exists");
    free(create);

    test_insert_update();
    test_other_job();
    test_finish_forget();
    test_past_prefix();

    pgfeed__checkpoint_clear(&ck);
    free(first_start);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    exec_ok(sql, 0, NULL, "drop the test's schema");
}

int main(void)
{
    test_hex();
    test_options_text();
    test_targets_back();
    test_weigh();
    const char *db = getenv("PGFEED_TEST_DB");
    if (db == NULL || *db == '\0') {
        tap_skip("reading a row and the statements need PGFEED_TEST_DB (a conninfo string)");
        return tap_done();
    }
    conn = PQconnectdb(db);
    if (PQstatus(conn) != CONNECTION_OK) {
        ASSERT_TRUE(0, "connect to PGFEED_TEST_DB: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return tap_done();
    }
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    for (size_t i = 0; i < sizeof restart_cases / sizeof restart_cases[0]; i++)
        test_read_restart(&restart_cases[i]);
    test_read_nulls();
    test_statements();
    pgfeed__ctx_free(&ctx);
    PQfinish(conn);
    return tap_done();
}
