/*
 * sink_refused.c -- with --max-rejects > 0, finding the rows the server refused in a
 * batch and rebuilding each as the input line it came from, for the rejects file.
 *
 * The connection keeps its batch's COPY data (kept, at most --batch-bytes). When the
 * server refuses the batch with a data error (class 22 or 23, or on Citus a row a worker
 * refused, re-raised by the coordinator as XX000), the batch's transaction
 * is rolled back and begun again, and the batch is sent once more range by range, each
 * range under a savepoint: the row the error's context names is rejected and the rows
 * on either side are tried again; without a row number the range is halved, down to
 * single rows. States: SPLIT_REFUSED (wait for the result's end) -> SPLIT_ROLLBACK ->
 * SPLIT_BEGIN, then per range SPLIT_STARTING -> SPLIT_COPYING -> SPLIT_ENDING, or
 * SPLIT_REFUSED -> SPLIT_UNDO (ROLLBACK TO SAVEPOINT) when it fails again.
 *
 * Leaves to sink_pg.c the checkpoint and commit once no range is left (split_step
 * returns 1), to pg_conn.c the socket and the errors, to encode_binary.c a binary tuple's
 * values, to rejects.c how each field is written back (delimiter, NULL, csv quoting), and
 * to the context (ctx.c) the rejects file and the --max-rejects count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

/*
 * Citus re-raises a row a worker refused as XX000 with the worker's message and detail only
 * (not its SQLSTATE, context or constraint field). PostgreSQL's messages for class 23 all say
 * "violates ... constraint" (unique, check, not-null, foreign key, exclusion); a message
 * in another language, or any other worker error, is not taken for a row's fault.
 */
static int citus_row_refused(const struct sink_pg *k, const PGresult *r, const char *st)
{
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    return k->sh->citus_names && strcmp(st, "XX000") == 0 && m && strstr(m, " violates ") &&
           strstr(m, "constraint");
}

/* Class 22 (data exception) and 23 (integrity constraint violation): one row's fault. */
int pgfeed__split_takes(struct sink_pg *k, const PGresult *r)
{
    if (!k->sh->retain || (k->state != S_ENDING && k->state != S_SPLIT_ENDING))
        return 0;
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st &&
           (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0 || citus_row_refused(k, r, st));
}

/* names (one a line) holds q[0..n) minus a "_DIGITS" suffix: the length of that name, or 0. */
static size_t shard_suffixed(const char *names, const char *q, size_t n)
{
    size_t d = n;
    while (d > 0 && q[d - 1] >= '0' && q[d - 1] <= '9')
        d--;
    if (d == n || d < 2 || q[d - 1] != '_')
        return 0;
    for (const char *p = names; *p;) {
        size_t len = strcspn(p, "\n");
        if (len == d - 1 && memcmp(p, q, len) == 0)
            return len;
        p += len + (p[len] == '\n');
    }
    return 0;
}

/*
 * A worker's message names the shard's copy of a constraint, index or table ("names_pkey_102009"):
 * each quoted name that is one of the table's own plus "_" and digits loses the suffix, and
 * the message ends with the shard ("... constraint "names_pkey" (shard 102009)").
 */
static int unshard_message(const char *names, const char *m, struct pgfeed_buf *out)
{
    const char *shard = NULL;
    size_t shard_len = 0;
    int rc = 0;
    while (*m && rc == 0) {
        const char *q = strchr(m, '"');
        const char *e = q ? strchr(q + 1, '"') : NULL;
        if (e == NULL)
            break;
        size_t keep = shard_suffixed(names, q + 1, (size_t)(e - q - 1));
        if (keep == 0) {
            rc = pgfeed__buf_append(out, m, (size_t)(e + 1 - m));
        } else {
            rc = pgfeed__buf_append(out, m, (size_t)(q + 1 + keep - m)) |
                 pgfeed__buf_append(out, "\"", 1);
            shard = q + 2 + keep;
            shard_len = (size_t)(e - shard);
        }
        m = e + 1;
    }
    rc |= pgfeed__buf_append(out, m, strlen(m));
    if (shard && rc == 0) {
        char tail[48];
        int n = snprintf(tail, sizeof tail, " (shard %.*s)", (int)shard_len, shard);
        rc = pgfeed__buf_append(out, tail, n < (int)sizeof tail ? (size_t)n : sizeof tail - 1);
    }
    return rc ? rc : pgfeed__buf_append(out, "", 1);
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

/* One COPY text field (p[0..n), not \N) of target field i as its value in out. */
static int copy_field_value(struct sink_pg *k, size_t i, const char *p, size_t n,
                            struct pgfeed_buf *f, struct pgfeed_buf *out)
{
    int is_array = i < k->sh->ntargets && k->sh->cols[k->sh->target_idx[i]].is_array;
    if (!is_array)
        return unescape_field(out, p, n);
    f->len = 0;
    int rc = unescape_field(f, p, n);
    return rc ? rc : unarray(out, f->data, f->len);
}

/* A COPY text row (p[0..n), without its LF) as tsv or csv fields, written as form says. */
static int copy_row_as_input(struct sink_pg *k, const char *p, size_t n,
                             const struct pgfeed_input_form *form, struct pgfeed_buf *out)
{
    struct pgfeed_buf f = {0}, v = {0};
    int rc = 0;
    size_t field = 0, start = 0;
    for (size_t j = 0; j <= n && rc == 0; j++) {
        if (j < n && p[j] != '\t')
            continue;
        const char *fp = p + start;
        size_t fn = j - start;
        if (fn == 2 && fp[0] == '\\' && fp[1] == 'N') {
            rc = pgfeed__rejects_field(out, form, field, NULL, 0);
        } else {
            v.len = 0;
            rc = copy_field_value(k, field, fp, fn, &f, &v);
            if (rc == 0)
                rc = pgfeed__rejects_field(out, form, field, v.len ? v.data : "", v.len);
        }
        field++;
        start = j + 1;
    }
    pgfeed__buf_free(&f);
    pgfeed__buf_free(&v);
    return rc;
}

/*
 * The input form of row i, for the rejects file: tsv fields unescaped, NULL
 * as the null marker, arrays as comma lists (the exact line that was read,
 * CR of a CRLF aside); text rows as they are; csv rows re-quoted as needed.
 * COPY text rows and binary tuples give the same line (pgfeed__rejects_field).
 */
static int row_as_input(struct sink_pg *k, size_t i, struct pgfeed_buf *out)
{
    const struct pgfeed_options *o = pgfeed__ctx_options(sink_ctx(k));
    const char *p = k->kept.data + k->row_off[i];
    size_t n = k->row_off[i + 1] - k->row_off[i];
    /* The options are resolved (options.c): no default is decided here. */
    const struct pgfeed_input_form form = {
        .delimiter = o->delimiter,
        .quote = o->format == PGFEED_FORMAT_CSV ? o->quote : 0,
        .null_marker = o->null_marker,
    };
    if (k->sh->bin) {
        int rc = pgfeed__bin_row_as_input(out, p, n, k->sh->bin, k->sh->ntargets, form.delimiter,
                                          form.null_marker, form.quote);
        return rc == UV_EINVAL ? pgfeed__buf_append(out, "?", 1) : rc;
    }
    if (n && p[n - 1] == '\n')
        n--;
    if (o->format == PGFEED_FORMAT_TEXT)
        return pgfeed__buf_append(out, p, n);
    return copy_row_as_input(k, p, n, &form, out);
}

/* Rejects row i (0-based in the batch) with the server's error. 0, or <0: the import fails. */
static int reject_row(struct sink_pg *k, size_t i, const PGresult *r)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
    uint64_t line = 0;
    if (k->sh->base.prev)
        line = pgfeed__rowmap_line(k->batch.rowmap, i + 1);
    if (line == 0)
        line = k->batch.first_line + i;
    char col[128];
    pgfeed__copy_context_line(PQresultErrorField(r, PG_DIAG_CONTEXT), col, sizeof col);
    struct pgfeed_buf raw = {0};
    if (row_as_input(k, i, &raw) != 0) {
        pgfeed__buf_free(&raw);
        return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    struct pgfeed_buf msg = {0};
    if (primary && st && citus_row_refused(k, r, st)) {
        if (unshard_message(k->sh->citus_names, primary, &msg) != 0) {
            pgfeed__buf_free(&raw);
            pgfeed__buf_free(&msg);
            return pgfeed__fail(ctx, "sink", UV_ENOMEM, NULL, NULL, "out of memory");
        }
        primary = msg.data;
    }
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
    pgfeed__buf_free(&msg);
    if (rc == 0)
        k->batch.rows--; /* committed rows of this batch */
    return rc;
}

/*
 * The server refused the batch (or one range of it). The row its context
 * names is rejected and the rows on either side are tried again; without a
 * row number the range is halved, down to single rows.
 */
int pgfeed__split_refused(struct sink_pg *k, const PGresult *r)
{
    struct pgfeed_ctx *ctx = sink_ctx(k);
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
    uint64_t cline =
        pgfeed__copy_context_line(PQresultErrorField(r, PG_DIAG_CONTEXT), col, sizeof col);
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

/* Tries the next range under a savepoint; 1 when none is left. */
static int split_next(struct sink_pg *k)
{
    if (k->nstack == 0)
        return 1;
    k->cur = k->stack[--k->nstack];
    char *sql = pgfeed__strdup_printf("%sSAVEPOINT pgfeed_split; %s",
                                      k->savepoint ? "RELEASE SAVEPOINT pgfeed_split; " : "",
                                      k->sh->copy_sql);
    int ok = sql && PQsendQuery(k->conn, sql);
    free(sql);
    if (!ok)
        return pgfeed__conn_fail(k, "could not retry the batch");
    k->savepoint = 1;
    k->send_pos = k->row_off[k->cur.a];
    k->state = S_SPLIT_STARTING;
    return 0;
}

/* Sends the current range's rows; ends its COPY when all are queued. */
void pgfeed__split_send(struct sink_pg *k)
{
    size_t end = k->row_off[k->cur.b];
    while (k->send_pos < end) {
        size_t n = end - k->send_pos;
        if (n > (256u << 10))
            n = 256u << 10;
        int r = PQputCopyData(k->conn, k->kept.data + k->send_pos, (int)n);
        if (r < 0) {
            pgfeed__conn_fail(k, "could not send COPY data to the server");
            return;
        }
        if (r == 0)
            break;
        k->send_pos += n;
        int f = PQflush(k->conn);
        if (f < 0) {
            pgfeed__conn_fail(k, "could not send COPY data to the server");
            return;
        }
        if (f == 1) {
            pgfeed__conn_watch(k, UV_READABLE | UV_WRITABLE);
            return; /* continued from the poll callback */
        }
    }
    if (k->send_pos < end) {
        pgfeed__conn_watch(k, UV_READABLE | UV_WRITABLE);
        return;
    }
    if (pgfeed__conn_copy_trailer(k) != 0)
        return;
    if (PQputCopyEnd(k->conn, NULL) < 0) {
        pgfeed__conn_fail(k, "could not end COPY");
        return;
    }
    k->state = S_SPLIT_ENDING;
    pgfeed__conn_flush(k, "could not end COPY");
}

/* A SPLIT_* state's command string is complete. */
int pgfeed__split_step(struct sink_pg *k)
{
    switch (k->state) {
    case S_SPLIT_REFUSED: {
        const char *sql = k->split_first ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT pgfeed_split";
        if (!PQsendQuery(k->conn, sql))
            return pgfeed__conn_fail(k, "could not roll back");
        k->state = k->split_first ? S_SPLIT_ROLLBACK : S_SPLIT_UNDO;
        return 0;
    }
    case S_SPLIT_ROLLBACK: {
        char *sql = k->batch_truncates
                        ? pgfeed__strdup_printf("BEGIN; TRUNCATE %s", k->sh->qualified)
                        : strdup("BEGIN");
        int ok = sql && PQsendQuery(k->conn, sql);
        free(sql);
        if (!ok)
            return pgfeed__conn_fail(k, "could not begin a transaction");
        k->savepoint = 0;
        k->state = S_SPLIT_BEGIN;
        return 0;
    }
    default: /* SPLIT_BEGIN; SPLIT_ENDING: the range went in; SPLIT_UNDO: it was rolled
              * back, its pieces are on the stack */
        return split_next(k);
    }
}
