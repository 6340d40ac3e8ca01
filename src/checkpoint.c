/*
 * checkpoint.c -- the checkpoint: the state table's SQL (its CREATE TABLE IF NOT EXISTS, the
 * SELECT of a job's checkpoint, the per-batch upsert, the finish and the DELETE of
 * --restart), reading its row back into struct pgfeed_checkpoint, the job's identity (the
 * key's source part, the options text a resume must match, the stored targets) and the
 * weighing of a found checkpoint against this run's options and source (resume, start
 * fresh, forget, nothing to do, or refuse).
 *
 * Leaves sending the statements, and their parameters ($1 the job key...), to the sink
 * (sink_pg.c), which runs the upsert inside each batch's transaction so that the row and
 * the data commit together; acting on the weighing (seeking the source, priming the
 * decoder and the parser) to the job. The restart point travels as bytea, sent and read
 * as hex text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The rows of batches committed past the prefix: "JOB_KEY\nFIRST_LINE" (a key of its own that
 * no other job's key or LIKE pattern can match, as those end with the table's name). */
#define AHEAD_OF_KEY "left(job_key, length($1::text) + 1) = $1::text || E'\\n'"

/*
 * No function in DO UPDATE SET: Citus refuses any that is not IMMUTABLE there when the state
 * table is a distributed or reference table, so the times come from EXCLUDED (the now() of
 * the row that was to be inserted, the same value).
 *
 * The prefix row. Its batch's rows and batch count ($8, $9) are added to what the row
 * holds (or replace it after a finished import), together with the rows past the prefix
 * that the new prefix ($10, the batch's last line) now covers, which are deleted.
 */
char *pgfeed__checkpoint_sql_upsert(const char *table)
{
    return pgfeed__strdup_printf(
        "WITH gone AS (DELETE FROM %s WHERE " AHEAD_OF_KEY " AND lines_committed <= $10::bigint"
        " RETURNING rows_committed, batches)"
        " INSERT INTO %s AS c (job_key, source, target, options, etag, last_modified, size,"
        " rows_committed, batches, lines_committed, decoded_offset, raw_offset, restart, finished,"
        " started_at, updated_at)"
        " SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint,"
        " $8::bigint + coalesce(sum(gone.rows_committed), 0),"
        " $9::bigint + coalesce(sum(gone.batches), 0), $10::bigint, $11::bigint, $12::bigint,"
        " $14::bytea, $13::boolean, now(), now() FROM gone"
        " ON CONFLICT (job_key) DO UPDATE SET source = EXCLUDED.source, target = EXCLUDED.target,"
        " options = EXCLUDED.options, etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,"
        " size = EXCLUDED.size,"
        " rows_committed = EXCLUDED.rows_committed"
        " + CASE WHEN c.finished THEN 0 ELSE c.rows_committed END,"
        " batches = EXCLUDED.batches + CASE WHEN c.finished THEN 0 ELSE c.batches END,"
        " lines_committed = EXCLUDED.lines_committed,"
        " decoded_offset = EXCLUDED.decoded_offset, raw_offset = EXCLUDED.raw_offset,"
        " restart = EXCLUDED.restart, finished = EXCLUDED.finished,"
        " started_at = CASE WHEN c.finished THEN EXCLUDED.started_at ELSE c.started_at END,"
        " updated_at = EXCLUDED.updated_at",
        table, table);
}

/*
 * A batch committed past the prefix: its own row, keyed by its first line ($15). The
 * prefix row is made too if there is none yet (an empty prefix: line 0, no rows), or
 * emptied if it is a finished import's, so that the job's checkpoint is found, and
 * unfinished, whichever batch commits first.
 */
char *pgfeed__checkpoint_sql_ahead(const char *table)
{
    return pgfeed__strdup_printf(
        "WITH prefix AS (INSERT INTO %s AS c (job_key, source, target, options, etag,"
        " last_modified, size, rows_committed, batches, lines_committed, decoded_offset,"
        " raw_offset, finished, started_at, updated_at)"
        " VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint, 0, 0,"
        " 0, 0, 0, false, now(), now())"
        " ON CONFLICT (job_key) DO UPDATE SET rows_committed = 0, batches = 0,"
        " lines_committed = 0, decoded_offset = 0, raw_offset = 0, restart = NULL,"
        " finished = false, started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at"
        " WHERE c.finished)"
        " INSERT INTO %s (job_key, source, target, options, etag, last_modified, size,"
        " rows_committed, batches, lines_committed, decoded_offset, raw_offset, restart, finished,"
        " started_at, updated_at)"
        " VALUES ($1::text || E'\\n' || $15::text, $2::text, $3::text, $4::text, $5::text,"
        " $6::text, $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint,"
        " $14::bytea, $13::boolean, now(), now())",
        table, table);
}

/* The job's batches past its prefix: first line, last line, rows, batches. */
char *pgfeed__checkpoint_sql_select_ahead(const char *table)
{
    return pgfeed__strdup_printf(
        "SELECT substr(job_key, length($1::text) + 2)::bigint, lines_committed, rows_committed,"
        " batches FROM %s WHERE " AHEAD_OF_KEY " ORDER BY 1",
        table);
}

/* Every batch is in: the rows past the prefix fold into it, and it is finished. */
char *pgfeed__checkpoint_sql_finish(const char *table)
{
    return pgfeed__strdup_printf(
        "WITH gone AS (DELETE FROM %s WHERE " AHEAD_OF_KEY
        " RETURNING rows_committed, batches, lines_committed)"
        " UPDATE %s SET finished = true, updated_at = now(),"
        " rows_committed = rows_committed + (SELECT coalesce(sum(rows_committed), 0) FROM gone),"
        " batches = batches + (SELECT coalesce(sum(batches), 0) FROM gone),"
        " lines_committed = greatest(lines_committed,"
        " (SELECT coalesce(max(lines_committed), 0) FROM gone))"
        " WHERE job_key = $1::text",
        table, table);
}

char *pgfeed__checkpoint_sql_forget(const char *table)
{
    return pgfeed__strdup_printf("DELETE FROM %s WHERE job_key = $1::text OR " AHEAD_OF_KEY, table);
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
    free(c->ahead);
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

int pgfeed__checkpoint_read_ahead(struct pgfeed_checkpoint *c, const struct pg_result *r)
{
    int n = PQntuples(r);
    free(c->ahead);
    c->ahead = NULL;
    c->nahead = 0;
    if (n <= 0)
        return 0;
    c->ahead = calloc((size_t)n, sizeof *c->ahead);
    if (c->ahead == NULL)
        return UV_ENOMEM;
    for (int i = 0; i < n; i++) {
        struct pgfeed_line_range *a = &c->ahead[c->nahead];
        a->first = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        a->last = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        if (a->last <= c->lines)
            continue; /* below the prefix: counted in it already (not left by pgfeed) */
        c->nahead++;
        c->rows += strtoull(PQgetvalue(r, i, 2), NULL, 10);
        c->batches += strtoull(PQgetvalue(r, i, 3), NULL, 10);
    }
    return 0;
}

/* ------------------------------------------------------ the job's identity */

char *pgfeed__checkpoint_source_id(struct pgfeed_ctx *ctx, const char *src, const char *stdin_id,
                                   const char *real_path)
{
    if (strcmp(src, "-") == 0)
        return strdup(stdin_id && stdin_id[0] ? stdin_id : "stdin");
    if (pgfeed__url_is_http(src))
        return pgfeed__url_strip_credentials(src);
    if (real_path)
        return strdup(real_path);
    char *path = NULL;
    if (pgfeed__url_is(src, "file://")) {
        if (pgfeed__url_file_path(ctx, src, &path) != 0)
            return NULL;
    } else {
        path = strdup(src);
    }
    return path;
}

char *pgfeed__checkpoint_options_text(const struct pgfeed_options *o,
                                      const struct pgfeed_targets *t)
{
    static const char *const formats[] = {"auto", "tsv", "text", "csv"};
    static const char *const headers[] = {"auto", "match", "skip", "none"};
    struct pgfeed_buf b = {0};
    /* The mode and the encoding go first (and only when not append and not UTF8, so older
     * checkpoints still match): their text never starts with an append UTF-8 run's. An
     * upsert's key, on-conflict and delete-missing follow the mode: a resume must merge as
     * it did. */
    char *mode =
        o->mode == PGFEED_MODE_UPSERT
            ? pgfeed__strdup_printf(
                  "mode=upsert%s%s%s%s ", o->key ? " key=" : "", o->key ? o->key : "",
                  o->on_conflict == PGFEED_ON_CONFLICT_NOTHING ? " on-conflict=nothing" : "",
                  o->delete_missing ? " delete-missing" : "")
            : strdup(o->mode == PGFEED_MODE_REPLACE ? "mode=replace " : "");
    int other_encoding = o->encoding && strcmp(o->encoding, "UTF8") != 0;
    char *head = mode ? pgfeed__strdup_printf(
                            "%s%s%s%sformat=%s delimiter=%d quote=%d null=%s header=%s", mode,
                            other_encoding ? "encoding=" : "", other_encoding ? o->encoding : "",
                            other_encoding ? " " : "", formats[o->format & 3], o->delimiter,
                            o->format == PGFEED_FORMAT_CSV ? o->quote : 0, o->null_marker,
                            headers[o->header & 3])
                      : NULL;
    free(mode);
    if (head == NULL)
        return NULL;
    int rc = pgfeed__buf_append(&b, head, strlen(head));
    free(head);
    if (t && t->n) {
        rc |= pgfeed__buf_append(&b, " targets=", 9);
        for (size_t i = 0; i < t->n; i++) {
            if (i)
                rc |= pgfeed__buf_append(&b, ",", 1);
            rc |= pgfeed__buf_append(&b, t->names[i], strlen(t->names[i]));
        }
    }
    rc |= pgfeed__buf_append(&b, "", 1);
    if (rc != 0) {
        pgfeed__buf_free(&b);
        return NULL;
    }
    return b.data;
}

char *pgfeed__checkpoint_stdin_others(const char *table)
{
    struct pgfeed_buf b = {0};
    int bad = pgfeed__buf_append(&b, "stdin% -> ", 10);
    for (const char *t = table; *t && !bad; t++) {
        if (*t == '%' || *t == '_' || *t == '\\')
            bad |= pgfeed__buf_append(&b, "\\", 1);
        bad |= pgfeed__buf_append(&b, t, 1);
    }
    bad |= pgfeed__buf_append(&b, "", 1);
    if (bad) {
        pgfeed__buf_free(&b);
        return NULL;
    }
    return b.data;
}

int pgfeed__checkpoint_targets(struct pgfeed_ctx *ctx, const char *opts,
                               const struct pgfeed_column *cols, size_t ncols, size_t **out,
                               size_t *nout)
{
    *out = NULL;
    *nout = 0;
    const char *t = opts ? strstr(opts, " targets=") : NULL;
    if (t == NULL)
        return 0; /* nothing stored: keep the mapping made from the options */
    t += 9;
    size_t n = 1;
    for (const char *p = t; *p; p++)
        n += *p == ',';
    size_t *idx = calloc(n, sizeof *idx);
    if (idx == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    for (size_t k = 0; k < n; k++) {
        size_t len = strcspn(t, ",");
        long c = -1;
        for (size_t i = 0; i < ncols; i++)
            if (strlen(cols[i].name) == len && memcmp(cols[i].name, t, len) == 0)
                c = (long)i;
        if (c < 0) {
            free(idx);
            return pgfeed__fail(ctx, "job", PGFEED_ECHECKPOINT,
                                "The checkpoint names a column that the table no longer has.",
                                "Run with --restart to start over.",
                                "cannot resume the import into \"%s\": column \"%.*s\" is gone",
                                ctx->opt->table, (int)len, t);
        }
        idx[k] = (size_t)c;
        t += len + (t[len] == ',');
    }
    *out = idx;
    *nout = n;
    return 0;
}

/* ------------------------------------------------------------- weighing */

static int source_changed(const struct pgfeed_checkpoint *c, const struct pgfeed_validators *v)
{
    return v && ((c->size >= 0 && v->size >= 0 && c->size != v->size) ||
                 (c->etag && v->etag && strcmp(c->etag, v->etag) != 0) ||
                 (c->last_modified && v->last_modified &&
                  strcmp(c->last_modified, v->last_modified) != 0));
}

static int refuse_other_stream(struct pgfeed_ctx *ctx, const struct pgfeed_checkpoint *c)
{
    char detail[1024];
    snprintf(detail, sizeof detail,
             "An unfinished import of standard input into \"%s\" has %llu rows committed, "
             "the last at %s, up to input line %llu; this input's first bytes differ from "
             "that stream's, so its lines are not the ones the checkpoint counts.",
             ctx->opt->table, (unsigned long long)c->rows,
             c->updated_at ? c->updated_at : "an unknown time", (unsigned long long)c->lines);
    return pgfeed__fail(
        ctx, "job", PGFEED_ECHANGED, detail,
        "Pipe the same input as the interrupted run with --resume, or leave out --resume to import this input as a new import.",
        "cannot resume: standard input is not the stream the interrupted import read");
}

/* A finished import of this source: nothing to do, a new import, or a refusal. */
static int weigh_finished(struct pgfeed_ctx *ctx, const struct pgfeed_checkpoint *c, int changed)
{
    const struct pgfeed_options *o = ctx->opt;
    if (o->resume && !changed) {
        pgfeed__log(
            ctx, PGFEED_LOG_NOTICE,
            "the import of this source into \"%s\" already finished (%llu rows); nothing to resume",
            o->table, (unsigned long long)c->rows);
        return PGFEED_CKPT_FINISHED;
    }
    if (changed || o->restart || o->truncate || o->mode != PGFEED_MODE_APPEND)
        return PGFEED_CKPT_FRESH;
    /* The same, unchanged source again: appending would duplicate every row
     * (--truncate empties the table first, --mode replace swaps in a new one and
     * --mode upsert merges by key, so they may). */
    char detail[1024];
    snprintf(detail, sizeof detail,
             "Its checkpoint says the import finished at %s with %llu rows in %llu "
             "batches, and the source has not changed since%s.",
             c->updated_at ? c->updated_at : "an unknown time", (unsigned long long)c->rows,
             (unsigned long long)c->batches,
             strcmp(o->source, "-") == 0 ? " (standard input: its first 64 kB are the same)" : "");
    return pgfeed__fail(
        ctx, "job", PGFEED_ECHECKPOINT, detail,
        "Use --restart to import it again (with --truncate to replace the rows already there).",
        "this source was already imported into \"%s\"", o->table);
}

/*
 * A file's mtime as the checkpoint keeps it ("SECONDS.NANOSECONDS", source_file.c) as UTC
 * ISO 8601 in buf ("2026-12-03T17:45:53.348893991Z"); any other validator (an HTTP
 * Last-Modified date) as it is.
 */
static const char *shown_mtime(const char *v, char *buf, size_t cap)
{
    char *end;
    long long sec = strtoll(v, &end, 10);
    struct tm tm;
    time_t t = (time_t)sec;
    char day[32];
    if (end == v || *end != '.' || strlen(end + 1) != 9 || strspn(end + 1, "0123456789") != 9 ||
        gmtime_r(&t, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return v;
    snprintf(buf, cap, "%s.%sZ", day, end + 1);
    return buf;
}

/* --resume of an unfinished import: the same format options and an unchanged source. */
static int weigh_resume(struct pgfeed_ctx *ctx, const struct pgfeed_checkpoint *c,
                        const struct pgfeed_validators *v, int changed)
{
    char detail[1024];
    char *mine = pgfeed__checkpoint_options_text(ctx->opt, NULL);
    if (mine == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    size_t ml = strlen(mine);
    int same = c->options && strncmp(c->options, mine, ml) == 0 &&
               (c->options[ml] == '\0' || c->options[ml] == ' ');
    if (!same) {
        snprintf(detail, sizeof detail,
                 "The checkpoint was made with \"%s\"; this run uses \"%s\".",
                 c->options ? c->options : "", mine);
        free(mine);
        return pgfeed__fail(
            ctx, "job", PGFEED_ECHECKPOINT, detail,
            "Resume with the options of the interrupted run, or use --restart.",
            "cannot resume: the format options differ from the interrupted import's");
    }
    free(mine);
    if (changed) {
        char was[48], now[48];
        snprintf(
            detail, sizeof detail,
            "The checkpoint was made for a source of %lld bytes%s%s; it now has %lld bytes%s%s. Resuming would mix two versions of the data.",
            (long long)c->size, c->last_modified ? ", modified " : "",
            c->last_modified ? shown_mtime(c->last_modified, was, sizeof was) : "",
            (long long)v->size, v->last_modified ? ", modified " : "",
            v->last_modified ? shown_mtime(v->last_modified, now, sizeof now) : "");
        return pgfeed__fail(ctx, "job", PGFEED_ECHANGED, detail,
                            "Use --restart (with --truncate to replace the rows already imported).",
                            "the source changed since the checkpoint");
    }
    return PGFEED_CKPT_RESUME;
}

int pgfeed__checkpoint_weigh(struct pgfeed_ctx *ctx, const struct pgfeed_checkpoint *c,
                             const struct pgfeed_validators *v)
{
    const struct pgfeed_options *o = ctx->opt;
    int changed = source_changed(c, v);
    if (!c->found && c->other && o->resume && !o->restart)
        return refuse_other_stream(ctx, c);
    if (!c->found)
        return PGFEED_CKPT_FRESH;
    if (c->finished)
        return weigh_finished(ctx, c, changed);
    if (o->restart) {
        pgfeed__log(
            ctx, PGFEED_LOG_NOTICE,
            "forgetting the unfinished import's checkpoint; its %llu committed rows stay in \"%s\"%s",
            (unsigned long long)c->rows, o->table,
            o->mode == PGFEED_MODE_REPLACE ? "'s shadow table, which is dropped"
            : o->truncate                  ? " until the first batch truncates the table"
                                           : "");
        return PGFEED_CKPT_FORGET;
    }
    if (!o->resume) {
        char detail[1024];
        snprintf(detail, sizeof detail,
                 "%llu rows in %llu batches were committed, the last at %s, up to input line %llu.",
                 (unsigned long long)c->rows, (unsigned long long)c->batches,
                 c->updated_at ? c->updated_at : "an unknown time", (unsigned long long)c->lines);
        return pgfeed__fail(
            ctx, "job", PGFEED_ECHECKPOINT, detail,
            "Run again with --resume to continue it, or with --restart to start over (add --truncate to also empty the table).",
            "an unfinished import of this source into \"%s\" exists", o->table);
    }
    return weigh_resume(ctx, c, v, changed);
}
