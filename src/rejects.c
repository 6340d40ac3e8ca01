/*
 * rejects.c -- the rejects file: rows set aside (--max-rejects) until their batch commits,
 * then written, one line each: LINE<TAB>REASON<TAB>ORIGINAL ROW.
 *
 * Owns the pending rows and the file (created new on a new import, appended to with
 * --resume, never through a symbolic link), its default name from the table, and how a
 * refused row's fields are written back in input form (pgfeed__rejects_field: delimiter,
 * null marker, csv quoting), the same for a COPY text row and a binary tuple. Stages
 * hand rows here through the context's reject hook (the job checks it is running); the
 * sink asks for the flush before each COMMIT, so a row is written only once its batch is
 * about to be committed (a crash in between may repeat it on resume, never lose it).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Appends s to b with tabs, CR and LF escaped so that a reject stays one field / one line. */
static int append_escaped(struct pgfeed_buf *b, const char *p, size_t n, int escape_tab)
{
    if (pgfeed__buf_reserve(b, n * 2 + 1) != 0)
        return UV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        char *o = b->data + b->len;
        if (c == '\n' || c == '\r' || (escape_tab && c == '\t')) {
            o[0] = '\\';
            o[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            b->len += 2;
        } else {
            o[0] = c;
            b->len++;
        }
    }
    return 0;
}

/* csv: a value the parser would split, end, unquote or take for NULL. */
static int needs_quotes(const struct pgfeed_input_form *form, const char *v, size_t n)
{
    const char *nm = form->null_marker;
    if (form->quote == 0)
        return 0;
    if (n == strlen(nm) && memcmp(v, nm, n) == 0)
        return 1;
    for (size_t j = 0; j < n; j++)
        if (v[j] == form->delimiter || v[j] == form->quote || v[j] == '\n' || v[j] == '\r')
            return 1;
    return 0;
}

int pgfeed__rejects_field(struct pgfeed_buf *out, const struct pgfeed_input_form *form, size_t i,
                          const char *v, size_t n)
{
    if (i > 0 && pgfeed__buf_append(out, &form->delimiter, 1) != 0)
        return UV_ENOMEM;
    if (v == NULL)
        return pgfeed__buf_append(out, form->null_marker, strlen(form->null_marker));
    if (!needs_quotes(form, v, n))
        return pgfeed__buf_append(out, v, n);
    if (pgfeed__buf_reserve(out, 2 * n + 2) != 0)
        return UV_ENOMEM;
    char *o = out->data + out->len;
    *o++ = form->quote;
    for (size_t j = 0; j < n; j++) {
        if (v[j] == form->quote)
            *o++ = form->quote;
        *o++ = v[j];
    }
    *o++ = form->quote;
    out->len = (size_t)(o - out->data);
    return 0;
}

int pgfeed__rejects_add(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx,
                        const struct pgfeed_reject *r)
{
    const struct pgfeed_options *opt = ctx->opt;
    if (ctx->stats.rows_rejected >= opt->max_rejects) {
        char *detail = NULL;
        if (opt->max_rejects > 0)
            detail = pgfeed__strdup_printf(
                "%s%sThis is rejected row %llu; --max-rejects allows %llu. The batch in flight was rolled back.",
                r->detail ? r->detail : "", r->detail ? " " : "",
                (unsigned long long)ctx->stats.rows_rejected + 1,
                (unsigned long long)opt->max_rejects);
        const char *hint = r->hint;
        if (opt->max_rejects == 0 && hint == NULL)
            hint = "Fix the row, or allow bad rows to be skipped with --max-rejects.";
        int code = r->stage && strcmp(r->stage, "sink") == 0 ? PGFEED_ESERVER : PGFEED_EPARSE;
        pgfeed__fail(ctx, r->stage ? r->stage : "parser", code, detail ? detail : r->detail, hint,
                     "%s", r->message);
        pgfeed__fail_at(ctx, r->line, r->column, r->column_name, r->decoded_offset,
                        ctx->stats.bytes_read);
        free(detail);
        return code;
    }
    struct pgfeed_buf b = {0};
    char num[24];
    int n = snprintf(num, sizeof num, "%llu\t", (unsigned long long)r->line);
    int rc = pgfeed__buf_append(&b, num, (size_t)n);
    rc |= append_escaped(&b, r->message, strlen(r->message), 1);
    if (r->column_name) {
        rc |= pgfeed__buf_append(&b, " (column ", 9);
        rc |= append_escaped(&b, r->column_name, strlen(r->column_name), 1);
        rc |= pgfeed__buf_append(&b, ")", 1);
    }
    if (r->detail) {
        rc |= pgfeed__buf_append(&b, ": ", 2);
        rc |= append_escaped(&b, r->detail, strlen(r->detail), 1);
    }
    rc |= pgfeed__buf_append(&b, "\t", 1);
    rc |= append_escaped(&b, r->raw ? r->raw : "", r->raw ? r->raw_len : 0, 0);
    rc |= pgfeed__buf_append(&b, "\n", 1);
    if (rc == 0 && rj->n == rj->cap) {
        size_t cap = rj->cap ? rj->cap * 2 : 16;
        struct pgfeed_pending_reject *p = realloc(rj->pending, cap * sizeof *p);
        if (p == NULL)
            rc = UV_ENOMEM;
        else {
            rj->pending = p;
            rj->cap = cap;
        }
    }
    if (rc != 0) {
        pgfeed__buf_free(&b);
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    rj->pending[rj->n].line = r->line;
    rj->pending[rj->n].text = b.data;
    rj->pending[rj->n].len = b.len;
    rj->n++;
    ctx->stats.rows_rejected++;
    pgfeed__log(ctx, PGFEED_LOG_INFO, "line %llu rejected: %s", (unsigned long long)r->line,
                r->message);
    return 0;
}

/*
 * Appends one part of a table name to b as a file name may hold it: letters, digits,
 * '_', '-', '.' and printable non-ASCII characters stay; any other byte (a '/', a space,
 * a control character, a byte that is not UTF-8) becomes '_'. At most 63 bytes, as the
 * server keeps of an identifier.
 */
static int append_file_safe(struct pgfeed_buf *b, const char *p, size_t n)
{
    int rc = 0;
    size_t used = 0;
    for (size_t i = 0; i < n && used < 63 && rc == 0;) {
        unsigned char c = (unsigned char)p[i];
        size_t len = c >= 0x80 ? pgfeed__utf8_len(p + i, n - i) : 1;
        int keep = c < 0x80 ? (isalnum(c) || c == '_' || c == '-' || c == '.')
                            : len > 0 && !(c == 0xC2 && (unsigned char)p[i + 1] < 0xA0);
        if (!keep)
            len = 1;
        if (used + len > 63)
            break;
        rc = keep ? pgfeed__buf_append(b, p + i, len) : pgfeed__buf_append(b, "_", 1);
        used += len;
        i += len;
    }
    return rc;
}

/*
 * The default rejects file: the relation name, after the schema when -t names one,
 * joined by '.', then ".rejects.tsv" -- read from -t as the server reads a table name
 * (`"My Schema".T` is the schema `My Schema` and the table `t`), made file-safe by
 * append_file_safe and never starting with '.', so that it is one new file in the
 * working directory whatever -t holds. NULL on ENOMEM.
 */
static char *default_rejects_path(const char *table)
{
    /* Split like the server's SplitIdentifierString: '.' between parts, "..." quoted
     * with "" for a quote, unquoted parts folded to lower case, spaces around parts. */
    struct pgfeed_buf part[3] = {{0}};
    size_t nparts = 0;
    const char *p = table;
    int bad = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        struct pgfeed_buf *b = &part[nparts < 3 ? nparts : 2];
        b->len = 0;
        if (*p == '"') {
            for (p++; *p && !(p[0] == '"' && p[1] != '"'); p++) {
                if (*p == '"')
                    p++; /* "" */
                bad |= pgfeed__buf_append(b, p, 1);
            }
            if (*p != '"') {
                bad |= 2; /* unterminated: the server refuses the name; use it as given */
                break;
            }
            p++;
        } else {
            for (; *p && *p != '.' && *p != ' ' && *p != '\t'; p++) {
                char c = (char)tolower((unsigned char)*p);
                bad |= pgfeed__buf_append(b, &c, 1);
            }
        }
        if (nparts < 3)
            nparts++;
        else {
            /* db.schema.table.more: not a table name the server takes */
            bad |= 2;
            break;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '.')
            break;
        p++;
    }
    if (*p != '\0' || nparts == 0)
        bad |= 2;
    struct pgfeed_buf out = {0};
    if (bad & 2) {
        bad = append_file_safe(&out, table, strlen(table));
    } else {
        /* rel, schema.rel, or db.schema.rel (the database is the connection's) */
        size_t first = nparts == 3 ? 1 : 0;
        for (size_t i = first; i < nparts && !bad; i++) {
            if (i > first)
                bad |= pgfeed__buf_append(&out, ".", 1);
            bad |= append_file_safe(&out, part[i].data ? part[i].data : "", part[i].len);
        }
    }
    for (size_t i = 0; i < 3; i++)
        pgfeed__buf_free(&part[i]);
    if (!bad && out.len > 0 && out.data[0] == '.')
        out.data[0] = '_';
    if (!bad)
        bad = pgfeed__buf_append(&out, ".rejects.tsv", sizeof ".rejects.tsv");
    if (bad) {
        pgfeed__buf_free(&out);
        return NULL;
    }
    return out.data;
}

static int fail_rejects_exists(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx)
{
    return pgfeed__fail(ctx, "job", UV_EEXIST,
                        "Without --resume, rejected rows go to a new file: pgfeed neither appends "
                        "to nor overwrites an existing one.",
                        "Remove the file, choose another with --rejects, or use --resume if it "
                        "belongs to the interrupted import being continued.",
                        "rejects file \"%s\" already exists", rj->path);
}

static int fail_rejects_symlink(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx)
{
    return pgfeed__fail(ctx, "job", UV_ELOOP,
                        "pgfeed does not follow a symbolic link for the rejects file, so that "
                        "rows are written to the file named and nowhere else.",
                        "Give the path of the file itself with --rejects.",
                        "rejects file \"%s\" is a symbolic link", rj->path);
}

/*
 * Decides where rejects go, before anything runs: --rejects FILE, else the default name.
 * A new import (no --resume; --restart is one too) writes a new file, so a file that
 * exists is refused now, before a row is committed, rather than mixed into or
 * overwritten; --resume appends to the interrupted import's file. A symbolic link is
 * never followed. A character device (/dev/null) may be named in any case.
 */
int pgfeed__rejects_check(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx)
{
    const struct pgfeed_options *opt = ctx->opt;
    if (opt->max_rejects == 0)
        return 0; /* the first bad row fails the import: nothing is ever written */
    rj->path = opt->rejects_path ? strdup(opt->rejects_path) : default_rejects_path(opt->table);
    if (rj->path == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    struct stat st;
    if (lstat(rj->path, &st) != 0)
        return 0; /* absent (or unreachable: opening it says why) */
    if (S_ISLNK(st.st_mode))
        return fail_rejects_symlink(rj, ctx);
    if (S_ISCHR(st.st_mode) || (opt->resume && S_ISREG(st.st_mode)))
        return 0;
    if (S_ISREG(st.st_mode))
        return fail_rejects_exists(rj, ctx);
    return pgfeed__fail(ctx, "job", UV_EINVAL, NULL,
                        "Name a regular file (or /dev/null) with --rejects.",
                        "rejects file \"%s\" is not a regular file", rj->path);
}

/* Opens rj->path as rejects_check decided: created new, or appended to. */
static int rejects_open(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx)
{
    const struct pgfeed_options *opt = ctx->opt;
    const char *path = rj->path;
    struct stat st;
    int dev = lstat(path, &st) == 0 && S_ISCHR(st.st_mode);
    int append = opt->resume || dev;
    /* O_NONBLOCK: a FIFO put there since the check must not block the loop in open. */
    int fd = open(path,
                  O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                      (append ? O_APPEND : O_EXCL),
                  0666);
    int err = errno;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || (dev && S_ISCHR(st.st_mode))) ||
                    (S_ISREG(st.st_mode) && !opt->resume && append))) {
        /* Swapped for something else since the check. */
        err = S_ISREG(st.st_mode) ? EEXIST : EINVAL;
        close(fd);
        fd = -1;
    }
    if (fd >= 0)
        rj->file = fdopen(fd, "a");
    if (fd >= 0 && rj->file == NULL) {
        err = errno;
        close(fd);
    }
    if (rj->file != NULL)
        return 0;
    if (err == EEXIST)
        return fail_rejects_exists(rj, ctx);
    if (err == ELOOP)
        return fail_rejects_symlink(rj, ctx);
    char detail[512];
    snprintf(detail, sizeof detail, "The system said: %s.", strerror(err));
    return pgfeed__fail(ctx, "job", PGFEED_ESOURCE, detail, "Choose another place with --rejects.",
                        "could not open the rejects file \"%s\"", path);
}

/*
 * Writes the pending rejects of lines up to `upto` (the batch about to
 * commit) to the rejects file, opened (created) on first use. Rejects of a
 * batch that is rolled back are never written: resuming reads those rows again.
 */
int pgfeed__rejects_flush(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx, uint64_t from,
                          uint64_t upto)
{
    size_t keep = 0;
    for (size_t i = 0; i < rj->n; i++) {
        struct pgfeed_pending_reject *pr = &rj->pending[i];
        if (pr->line < from || pr->line > upto) {
            rj->pending[keep++] = *pr;
            continue;
        }
        if (rj->file == NULL) {
            if (rj->path == NULL) /* max_rejects 0: never here */
                return pgfeed__fail(ctx, "job", PGFEED_EINTERNAL, NULL, NULL,
                                    "a row was rejected with no rejects file chosen");
            int rc = rejects_open(rj, ctx);
            if (rc != 0)
                return rc;
        }
        if (fwrite(pr->text, 1, pr->len, rj->file) != pr->len) {
            /* This row and the ones after it stay pending, behind the rows kept so far. */
            memmove(&rj->pending[keep], pr, (rj->n - i) * sizeof *pr);
            rj->n = keep + (rj->n - i);
            return pgfeed__fail(ctx, "job", PGFEED_ESOURCE, NULL, NULL,
                                "could not write the rejects file \"%s\"", rj->path);
        }
        free(pr->text);
    }
    rj->n = keep;
    if (rj->file && fflush(rj->file) != 0)
        return pgfeed__fail(ctx, "job", PGFEED_ESOURCE, NULL, NULL,
                            "could not write the rejects file \"%s\"", rj->path);
    return 0;
}

const char *pgfeed__rejects_written(const struct pgfeed_rejects *rj)
{
    return rj->file ? rj->path : NULL;
}

size_t pgfeed__rejects_drop_pending(struct pgfeed_rejects *rj)
{
    size_t n = rj->n;
    for (size_t i = 0; i < n; i++)
        free(rj->pending[i].text);
    rj->n = 0;
    return n;
}

void pgfeed__rejects_free(struct pgfeed_rejects *rj)
{
    pgfeed__rejects_drop_pending(rj);
    free(rj->pending);
    if (rj->file)
        fclose(rj->file);
    free(rj->path);
    memset(rj, 0, sizeof *rj);
}
