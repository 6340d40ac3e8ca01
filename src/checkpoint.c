/*
 * checkpoint.c -- the state table's SQL (its CREATE TABLE IF NOT EXISTS, the SELECT of a
 * job's checkpoint, the per-batch upsert, the finish and the DELETE of --restart) and
 * reading its row back into struct pgfeed_checkpoint.
 *
 * Leaves sending the statements, and their parameters ($1 the job key...), to the sink
 * (sink_pg.c), which runs the upsert inside each batch's transaction so that the row and
 * the data commit together; deciding what a checkpoint means (resume, refuse, restart) is
 * the job's. The restart point travels as bytea, sent and read as hex text.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "internal.h"

char *pgfeed__checkpoint_sql_create(const char *table)
{
    return pgfeed__strdup_printf(
        "CREATE TABLE IF NOT EXISTS %s (job_key text PRIMARY KEY, source text NOT NULL,"
        " target text NOT NULL, options text NOT NULL, etag text, last_modified text,"
        " size bigint, rows_committed bigint NOT NULL, batches bigint NOT NULL,"
        " lines_committed bigint NOT NULL, decoded_offset bigint NOT NULL,"
        " raw_offset bigint NOT NULL, restart bytea, finished boolean NOT NULL,"
        " started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
        table);
}

/* Its columns are the ones pgfeed__checkpoint_read reads, in this order. */
char *pgfeed__checkpoint_sql_select(const char *table)
{
    return pgfeed__strdup_printf(
        "SELECT rows_committed, batches, lines_committed, decoded_offset, raw_offset,"
        " encode(restart, 'hex'), finished, options, etag, last_modified, size,"
        " to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS TZ'), job_key = $1 FROM %s"
        " WHERE job_key = $1 OR (job_key LIKE $2 AND NOT finished)"
        " ORDER BY job_key = $1 DESC, updated_at DESC LIMIT 1",
        table);
}

char *pgfeed__checkpoint_sql_upsert(const char *table)
{
    return pgfeed__strdup_printf(
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
        table);
}

char *pgfeed__checkpoint_sql_finish(const char *table)
{
    return pgfeed__strdup_printf(
        "UPDATE %s SET finished = true, updated_at = now() WHERE job_key = $1", table);
}

char *pgfeed__checkpoint_sql_forget(const char *table)
{
    return pgfeed__strdup_printf("DELETE FROM %s WHERE job_key = $1", table);
}

int pgfeed__checkpoint_hex(struct pgfeed_buf *out, const char *blob, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (pgfeed__buf_reserve(out, 2 * n + 3) != 0)
        return UV_ENOMEM;
    out->data[out->len++] = '\\';
    out->data[out->len++] = 'x';
    for (size_t i = 0; i < n; i++) {
        out->data[out->len++] = digits[(unsigned char)blob[i] >> 4];
        out->data[out->len++] = digits[(unsigned char)blob[i] & 15];
    }
    out->data[out->len] = '\0';
    return 0;
}

void pgfeed__checkpoint_clear(struct pgfeed_checkpoint *c)
{
    free(c->restart);
    free(c->options);
    free(c->etag);
    free(c->last_modified);
    free(c->updated_at);
    memset(c, 0, sizeof *c);
    c->size = -1;
}

static char *dup_value(const PGresult *r, int col)
{
    if (PQgetisnull(r, 0, col))
        return NULL;
    return strdup(PQgetvalue(r, 0, col));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The restart column as encode(restart, 'hex') gives it: an even number of hex digits. */
static int read_restart(struct pgfeed_checkpoint *c, const char *hex, struct pgfeed_ctx *ctx)
{
    size_t len = strlen(hex), bad = len;
    for (size_t i = 0; i < len && bad == len; i++)
        if (hexval(hex[i]) < 0)
            bad = i;
    if (bad < len || len % 2) {
        char *q = pgfeed__quote_input(hex, len);
        char detail[256];
        if (bad < len)
            snprintf(
                detail, sizeof detail,
                "The state table's restart column holds \"%s\", which is not hexadecimal at character %zu.",
                q ? q : "", bad + 1);
        else
            snprintf(
                detail, sizeof detail,
                "The state table's restart column holds \"%s\", an odd number (%zu) of hex digits.",
                q ? q : "", len);
        free(q);
        return pgfeed__fail(ctx, "sink", PGFEED_ECHECKPOINT, detail,
                            "Run with --restart to import the source again from its start.",
                            "the checkpoint's decoder restart point is damaged");
    }
    size_t n = len / 2;
    c->restart = malloc(n ? n : 1);
    if (c->restart == NULL)
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        c->restart[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
    c->restart_len = n;
    return 0;
}

int pgfeed__checkpoint_read(struct pgfeed_checkpoint *c, const struct pg_result *r,
                            struct pgfeed_ctx *ctx)
{
    pgfeed__checkpoint_clear(c);
    c->found = 1;
    c->rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    c->batches = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    c->lines = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
    c->decoded_offset = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    c->raw_offset = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
    if (!PQgetisnull(r, 0, 5) && read_restart(c, PQgetvalue(r, 0, 5), ctx) != 0)
        return -1;
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
