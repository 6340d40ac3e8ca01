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
 *
 * No filesystem call runs on the loop's thread: the check at the job's start (lstat), the
 * open, the writes and the fdatasync are uv_fs_* requests on libuv's threadpool, one at a
 * time on one uv_fs_t, each holding a close reference of the job until it returns. A flush
 * moves its rows to `out`; the next write takes all of `out` (swapped with `inflight`), so
 * bytes go to the file in the order the batches asked. A flush that added bytes waits
 * (its callback) until they are written and synced: the sink sends COMMIT only then, and
 * a failed write or sync fails the import before that COMMIT.
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

int pgfeed__rejects_choose(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx)
{
    const struct pgfeed_options *opt = ctx->opt;
    rj->ctx = ctx;
    if (opt->max_rejects == 0)
        return 0; /* the first bad row fails the import: nothing is ever written */
    rj->path = opt->rejects_path ? strdup(opt->rejects_path) : default_rejects_path(opt->table);
    if (rj->path == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    return 0;
}

/* A request on rj->req is in flight: it holds a close reference until it returns. */
static void req_begin(struct pgfeed_rejects *rj)
{
    rj->busy = 1;
    pgfeed__ctx_handle_closing(rj->ctx);
}

/* Its end, the last thing a callback does (the job may be freed by it). */
static void req_end(struct pgfeed_rejects *rj)
{
    pgfeed__ctx_handle_closed(rj->ctx);
}

static int fail_system(struct pgfeed_rejects *rj, int err, const char *what, const char *hint)
{
    char detail[512];
    snprintf(detail, sizeof detail, "The system said: %s.", strerror(-err));
    return pgfeed__fail(rj->ctx, "job", PGFEED_ESOURCE, detail, hint, "could not %s \"%s\"", what,
                        rj->path);
}

/* What lstat found at the path decides (see pgfeed__rejects_check). */
static int weigh_path(struct pgfeed_rejects *rj, ssize_t res, const uv_stat_t *st)
{
    const struct pgfeed_options *opt = rj->ctx->opt;
    if (res < 0)
        return 0; /* absent (or unreachable: opening it says why) */
    if (S_ISLNK(st->st_mode))
        return fail_rejects_symlink(rj, rj->ctx);
    rj->is_dev = S_ISCHR(st->st_mode);
    if (rj->is_dev || (opt->resume && S_ISREG(st->st_mode)))
        return 0;
    if (S_ISREG(st->st_mode))
        return fail_rejects_exists(rj, rj->ctx);
    return pgfeed__fail(rj->ctx, "job", UV_EINVAL, NULL,
                        "Name a regular file (or /dev/null) with --rejects.",
                        "rejects file \"%s\" is not a regular file", rj->path);
}

static void check_cb(uv_fs_t *req)
{
    struct pgfeed_rejects *rj = container_of(req, struct pgfeed_rejects, req);
    ssize_t res = req->result;
    uv_stat_t st = req->statbuf;
    uv_fs_req_cleanup(req);
    rj->busy = 0;
    if (res != UV_ECANCELED)
        rj->check_cb(rj->check_arg, weigh_path(rj, res, &st));
    req_end(rj);
}

/*
 * A new import (no --resume; --restart is one too) writes a new file, so a file that
 * exists is refused before a row is committed, rather than mixed into or overwritten;
 * --resume appends to the interrupted import's file. A symbolic link is never
 * followed. A character device (/dev/null) may be named in any case.
 */
int pgfeed__rejects_check(struct pgfeed_rejects *rj, void (*cb)(void *arg, int status), void *arg)
{
    if (rj->path == NULL)
        return 1;
    rj->check_cb = cb;
    rj->check_arg = arg;
    int rc = uv_fs_lstat(rj->ctx->loop, &rj->req, rj->path, check_cb);
    if (rc != 0)
        return fail_system(rj, rc, "inspect the rejects file", NULL);
    req_begin(rj);
    return 0;
}

void pgfeed__rejects_cancel(struct pgfeed_rejects *rj)
{
    if (rj->busy && rj->req.fs_type == UV_FS_LSTAT)
        uv_cancel((uv_req_t *)&rj->req);
}

static void kick(struct pgfeed_rejects *rj);
static int take(struct pgfeed_rejects *rj);

/* The waiters whose rows are all on disk (or all of them, on a failure) are answered. */
static void notify(struct pgfeed_rejects *rj, int status)
{
    struct pgfeed_rejects_waiter ready[PGFEED_REJECTS_WAITERS];
    size_t n = 0, keep = 0;
    for (size_t i = 0; i < rj->nwait; i++) {
        if (status != 0 || (rj->wait[i].taken && rj->wait[i].upto <= rj->synced))
            ready[n++] = rj->wait[i];
        else
            rj->wait[keep++] = rj->wait[i];
    }
    rj->nwait = keep;
    for (size_t i = 0; i < n; i++)
        ready[i].cb(ready[i].arg, status);
}

/* A request failed (the error set): no batch whose rejects are not on disk commits. */
static void failed(struct pgfeed_rejects *rj, int rc)
{
    rj->failed = rc;
    notify(rj, rc);
}

static int open_failed(struct pgfeed_rejects *rj, int err)
{
    if (err == UV_EEXIST)
        return fail_rejects_exists(rj, rj->ctx);
    if (err == UV_ELOOP)
        return fail_rejects_symlink(rj, rj->ctx);
    return fail_system(rj, err, "open the rejects file", "Choose another place with --rejects.");
}

/* One finished request: open -> fstat (still what the check allowed?) -> writes -> sync. */
static int step_done(struct pgfeed_rejects *rj, uv_fs_type type, ssize_t res, const uv_stat_t *st)
{
    const struct pgfeed_options *opt = rj->ctx->opt;
    if (type == UV_FS_OPEN && rj->dir_state == 1) {
        if (res < 0)
            return fail_system(rj, (int)res, "write the rejects file", NULL);
        rj->dir_fd = (int)res;
        rj->dir_state = 2;
        return 0; /* its fsync next */
    }
    if (type == UV_FS_OPEN) {
        if (res < 0)
            return open_failed(rj, (int)res);
        rj->fd = (int)res;
        rj->opened = 1;
        return 0; /* fstat next */
    }
    if (type == UV_FS_FSTAT) {
        int ok = res == 0 && (S_ISREG(st->st_mode) || (rj->is_dev && S_ISCHR(st->st_mode))) &&
                 !(S_ISREG(st->st_mode) && !opt->resume && rj->is_dev);
        if (!ok) /* swapped for something else since the check */
            return open_failed(rj, S_ISREG(st->st_mode) ? UV_EEXIST : UV_EINVAL);
        rj->checked = 1;
        rj->sync = S_ISREG(st->st_mode);
        rj->dir_state = rj->sync && !opt->resume ? 0 : 3; /* created by us: O_EXCL */
        return take(rj);
    }
    if (type == UV_FS_WRITE) {
        if (res < 0)
            return fail_system(rj, (int)res, "write the rejects file", NULL);
        rj->inflight_off += (size_t)res;
        rj->written += (uint64_t)res;
        if (rj->inflight_off == rj->inflight.len)
            rj->inflight.len = rj->inflight_off = 0;
        return 0;
    }
    if (type == UV_FS_FDATASYNC && res >= 0 && rj->dir_state == 0) {
        rj->dir_state = 1; /* the file's name too, once: its directory next (kick) */
        return 0;
    }
    if (type == UV_FS_FSYNC && rj->dir_state == 2)
        close(rj->dir_fd); /* a directory's descriptor: nothing to flush, no disk wait */
    if (res < 0)           /* fdatasync, or the directory's open or fsync */
        return fail_system(rj, (int)res, "write the rejects file", NULL);
    rj->dir_state = 3;
    rj->synced = rj->syncing;
    notify(rj, 0);
    return 0;
}

static void step_cb(uv_fs_t *req);

/* The directory of a rejects file this import created: opened, then fsync()ed, so that
 * the file's name is as durable as its rows before the first COMMIT that needs them. */
static int sync_dir(struct pgfeed_rejects *rj, uv_loop_t *loop)
{
    if (rj->dir_state == 2)
        return uv_fs_fsync(loop, &rj->req, rj->dir_fd, step_cb);
    char *dir = strdup(rj->path);
    if (dir == NULL)
        return UV_ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else
        slash[slash == dir] = '\0'; /* "/x" -> "/" */
    int rc = uv_fs_open(loop, &rj->req, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, step_cb);
    free(dir);
    return rc;
}

static void step_cb(uv_fs_t *req)
{
    struct pgfeed_rejects *rj = container_of(req, struct pgfeed_rejects, req);
    uv_fs_type type = req->fs_type;
    ssize_t res = req->result;
    uv_stat_t st = req->statbuf;
    uv_fs_req_cleanup(req);
    rj->busy = 0;
    int rc = step_done(rj, type, res, &st);
    if (rc != 0)
        failed(rj, rc);
    else
        kick(rj);
    req_end(rj);
}

/*
 * The next request, when none is in flight: open (O_EXCL for a new import, O_APPEND
 * with --resume or for a device, never through a symbolic link; O_NONBLOCK so that a
 * FIFO put there since the check does not hold a thread), fstat, then the bytes in
 * order with one write at a time, then fdatasync (not for a device).
 */
static void kick(struct pgfeed_rejects *rj)
{
    uv_loop_t *loop = rj->ctx->loop;
    if (rj->busy || rj->failed || (rj->checked && rj->synced == rj->appended) || rj->nwait == 0)
        return;
    int rc;
    int append = rj->ctx->opt->resume || rj->is_dev;
    if (!rj->opened) {
        rc = uv_fs_open(loop, &rj->req, rj->path,
                        O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                            (append ? O_APPEND : O_EXCL),
                        0666, step_cb);
    } else if (!rj->checked) {
        rc = uv_fs_fstat(loop, &rj->req, rj->fd, step_cb);
    } else if (rj->written < rj->appended) {
        if (rj->inflight.len == 0) {
            struct pgfeed_buf t = rj->inflight; /* the next bytes to write: all taken so far */
            rj->inflight = rj->out;
            rj->out = t;
        }
        uv_buf_t b = uv_buf_init(rj->inflight.data + rj->inflight_off,
                                 (unsigned)(rj->inflight.len - rj->inflight_off));
        rc = uv_fs_write(loop, &rj->req, rj->fd, &b, 1, -1, step_cb);
    } else if (!rj->sync) {
        rj->synced = rj->written; /* a device: nothing to make durable */
        notify(rj, 0);
        return;
    } else if (rj->dir_state == 1 || rj->dir_state == 2) {
        rc = sync_dir(rj, loop);
    } else {
        rj->syncing = rj->written;
        rc = uv_fs_fdatasync(loop, &rj->req, rj->fd, step_cb);
    }
    if (rc == 0)
        req_begin(rj);
    else
        failed(rj, fail_system(rj, rc, "write the rejects file", NULL));
}

/*
 * Once the file is open and checked: the pending rows of every waiting flush, in the
 * order the flushes came, go to `out`. Until then they stay pending, so a file that
 * cannot be opened leaves them where they were.
 */
static int take(struct pgfeed_rejects *rj)
{
    for (size_t w = 0; w < rj->nwait; w++) {
        struct pgfeed_rejects_waiter *wt = &rj->wait[w];
        if (wt->taken)
            continue;
        size_t keep = 0;
        int rc = 0;
        for (size_t i = 0; i < rj->n; i++) {
            struct pgfeed_pending_reject *pr = &rj->pending[i];
            if (pr->line >= wt->from && pr->line <= wt->upto_line && rc == 0 &&
                (rc = pgfeed__buf_append(&rj->out, pr->text, pr->len)) == 0) {
                rj->appended += pr->len;
                free(pr->text);
                continue;
            }
            rj->pending[keep++] = *pr;
        }
        rj->n = keep;
        if (rc != 0)
            return pgfeed__fail(rj->ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
        wt->upto = rj->appended;
        wt->taken = 1;
    }
    return 0;
}

/*
 * Asks for the pending rejects of lines from..upto (the batch about to commit) in the
 * rejects file, opened (created) on first use. Rejects of a batch that is rolled back
 * are never written: resuming reads those rows again.
 */
int pgfeed__rejects_flush(struct pgfeed_rejects *rj, uint64_t from, uint64_t upto,
                          void (*cb)(void *arg, int status), void *arg)
{
    size_t mine = 0;
    for (size_t i = 0; i < rj->n; i++)
        mine += rj->pending[i].line >= from && rj->pending[i].line <= upto;
    if (mine == 0)
        return 1;         /* no row of this batch: nothing to wait for */
    if (rj->path == NULL) /* max_rejects 0: never here */
        return pgfeed__fail(rj->ctx, "job", PGFEED_EINTERNAL, NULL, NULL,
                            "a row was rejected with no rejects file chosen");
    if (rj->failed)
        return rj->failed;
    if (rj->nwait == PGFEED_REJECTS_WAITERS)
        return pgfeed__fail(rj->ctx, "job", PGFEED_EINTERNAL, NULL, NULL,
                            "too many batches wait for the rejects file");
    rj->wait[rj->nwait++] =
        (struct pgfeed_rejects_waiter){.from = from, .upto_line = upto, .cb = cb, .arg = arg};
    int rc = rj->checked ? take(rj) : 0;
    if (rc != 0) {
        rj->nwait--;
        return rc;
    }
    kick(rj);
    return rj->failed ? rj->failed : 0;
}

const char *pgfeed__rejects_written(const struct pgfeed_rejects *rj)
{
    return rj->opened ? rj->path : NULL;
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
    if (rj->opened)
        close(rj->fd); /* everything written is synced already: close() does not wait */
    if (rj->dir_state == 2)
        close(rj->dir_fd); /* a stop between the directory's open and its fsync */
    pgfeed__buf_free(&rj->out);
    pgfeed__buf_free(&rj->inflight);
    free(rj->path);
    memset(rj, 0, sizeof *rj);
}
