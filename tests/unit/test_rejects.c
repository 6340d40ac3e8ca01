/*
 * test_rejects.c -- the rejects file (rejects.c) on a context of the test's own.
 *
 * Rows are added, flushed up to a line as a batch commit would, and the file is compared
 * byte for byte (tabs, line ends and NUL bytes in messages and rows); rows past the line
 * stay pending, dropped rows are never written. --max-rejects: the row past it fails the
 * import with its message, position and a detail that counts. Where the file goes: the
 * default name from the table (as the server splits and folds it), an existing file (refused
 * unless resuming, which appends), a symbolic link, a directory, /dev/null, a file created
 * between the check and the first write, a path that cannot be opened, and a device that
 * refuses writes (/dev/full), whose failure must leave the pending rows consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define S(lit) lit, sizeof(lit) - 1

static char dir[64];
static uv_loop_t loop;
static struct pgfeed_options opt;
static struct pgfeed_ctx ctx;
static unsigned failed_calls;

static void hook_failed(void *owner, int code)
{
    (void)owner;
    (void)code;
    failed_calls++;
}

static void ctx_reset(uint64_t max_rejects, const char *path, int resume)
{
    pgfeed__ctx_free(&ctx);
    memset(&ctx, 0, sizeof ctx);
    pgfeed_options_init(&opt);
    opt.table = "t";
    opt.max_rejects = max_rejects;
    opt.rejects_path = path;
    opt.resume = resume;
    ctx.opt = &opt;
    ctx.loop = &loop;
    ctx.hooks.failed = hook_failed;
    failed_calls = 0;
}

/* The check and the flush run on the threadpool: each waits here for its callback. */
static int done, done_status;

static void done_cb(void *arg, int status)
{
    (void)arg;
    done = 1;
    done_status = status;
}

static int wait_done(int rc)
{
    if (rc == 1)
        return 0; /* nothing to wait for */
    while (rc == 0 && !done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT); /* the request's own end */
    return rc != 0 ? rc : done_status;
}

static int check(struct pgfeed_rejects *rj)
{
    done = 0;
    int rc = pgfeed__rejects_choose(rj, &ctx);
    return rc != 0 ? rc : wait_done(pgfeed__rejects_check(rj, done_cb, NULL));
}

static int flush(struct pgfeed_rejects *rj, uint64_t from, uint64_t upto)
{
    done = 0;
    return wait_done(pgfeed__rejects_flush(rj, from, upto, done_cb, NULL));
}

/* The file's contents (NUL bytes kept) in *n; NULL when it cannot be read. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = malloc(1 << 16);
    *n = fread(p, 1, 1 << 16, f);
    fclose(f);
    return p;
}

static void check_file(const char *path, const char *want, size_t wn, const char *what)
{
    size_t n = 0;
    char *got = slurp(path, &n);
    ASSERT_TRUE(got != NULL, "%s: the file exists", what);
    if (got)
        ASSERT_EQ_MEM(got, n, want, wn, what);
    free(got);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static struct pgfeed_reject row(uint64_t line, const char *message, const char *column_name,
                                const char *detail, const char *raw, size_t raw_len)
{
    return (struct pgfeed_reject){.stage = "parser",
                                  .line = line,
                                  .decoded_offset = line * 100,
                                  .column = column_name ? 2 : 0,
                                  .column_name = column_name,
                                  .message = message,
                                  .detail = detail,
                                  .raw = raw,
                                  .raw_len = raw_len};
}

/* The three lines below, as they are written. */
static const char line2[] = "2\twrong number of fields: Expected 3 fields, found 2.\ta\tb\n";
static const char line5[] = "5\tinvalid\\tUTF-8 (column na\\tme)\tx\\ny\\rz\n";
static const char line9[] = "9\tvalue too long (column c): Line one.\\nLine two.\tp\0q\n";

static void add_three(struct pgfeed_rejects *rj)
{
    struct pgfeed_reject r[3] = {
        row(2, "wrong number of fields", NULL, "Expected 3 fields, found 2.", S("a\tb")),
        row(5, "invalid\tUTF-8", "na\tme", NULL, S("x\ny\rz")),
        row(9, "value too long", "c", "Line one.\nLine two.", S("p\0q")),
    };
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(pgfeed__rejects_add(rj, &ctx, &r[i]), 0, "add a row");
}

/* Rows are written when their batch commits, in order, each once. */
static void test_write_and_flush(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/rows.tsv", dir);
    ctx_reset(3, path, 0);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "check: an absent file");
    ASSERT_EQ_STR(rj.path, path, "check: --rejects is the path");
    add_three(&rj);
    ASSERT_EQ_INT(ctx.stats.rows_rejected, 3, "rows_rejected counts the rows");
    ASSERT_EQ_INT(rj.n, 3, "three rows pending");
    ASSERT_TRUE(pgfeed__rejects_written(&rj) == NULL, "nothing written yet");

    ASSERT_EQ_INT(flush(&rj, 0, 1), 0, "flush up to line 1");
    ASSERT_TRUE(!exists(path), "no row up to line 1: no file made");
    ASSERT_TRUE(pgfeed__rejects_written(&rj) == NULL, "still nothing written");

    ASSERT_EQ_INT(flush(&rj, 0, 5), 0, "flush up to line 5");
    char want[256];
    size_t wn = 0;
    memcpy(want + wn, line2, sizeof line2 - 1);
    wn += sizeof line2 - 1;
    memcpy(want + wn, line5, sizeof line5 - 1);
    wn += sizeof line5 - 1;
    check_file(path, want, wn, "lines 2 and 5 written, escaped");
    ASSERT_EQ_STR(pgfeed__rejects_written(&rj), path, "written: the path");
    ASSERT_EQ_INT(rj.n, 1, "line 9 pending");

    ASSERT_EQ_INT(flush(&rj, 0, 5), 0, "flush up to line 5 again");
    check_file(path, want, wn, "nothing written twice");
    ASSERT_EQ_INT(flush(&rj, 0, 100), 0, "flush up to line 100");
    memcpy(want + wn, line9, sizeof line9 - 1);
    wn += sizeof line9 - 1;
    check_file(path, want, wn, "line 9 written, its NUL byte kept");
    ASSERT_EQ_INT(rj.n, 0, "nothing pending");
    ASSERT_EQ_INT(failed_calls, 0, "no failure");

    /* The next row would be the fourth. */
    struct pgfeed_reject r = row(12, "bad row", "c", "It is bad.", S("z"));
    r.hint = "Fix it.";
    ctx.stats.bytes_read = 777;
    ASSERT_EQ_INT(pgfeed__rejects_add(&rj, &ctx, &r), PGFEED_EPARSE, "the 4th row fails");
    const struct pgfeed_error *e = &ctx.err.pub;
    ASSERT_EQ_STR(e->stage, "parser", "limit: stage");
    ASSERT_EQ_STR(e->message, "bad row", "limit: the row's message");
    ASSERT_EQ_STR(e->detail,
                  "It is bad. This is rejected row 4; --max-rejects allows 3. The batch in flight "
                  "was rolled back.",
                  "limit: detail");
    ASSERT_EQ_STR(e->hint, "Fix it.", "limit: the row's hint");
    ASSERT_TRUE(e->line == 12 && e->column == 2 && e->decoded_offset == 1200 &&
                    e->raw_offset == 777,
                "limit: position %llu, %d, %llu, %llu", (unsigned long long)e->line, e->column,
                (unsigned long long)e->decoded_offset, (unsigned long long)e->raw_offset);
    ASSERT_EQ_STR(e->column_name, "c", "limit: column name");
    ASSERT_EQ_INT(ctx.stats.rows_rejected, 3, "limit: not counted as rejected");
    ASSERT_EQ_INT(rj.n, 0, "limit: not kept");
    pgfeed__rejects_free(&rj);
    check_file(path, want, wn, "free leaves the file as it was");
    unlink(path);
}

/* The first bad row fails the import when no rejects are allowed; a sink row too. */
static void test_no_rejects_allowed(void)
{
    static const struct {
        const char *stage, *hint, *want_hint;
        int code;
    } cases[] = {
        {"parser", NULL, "Fix the row, or allow bad rows to be skipped with --max-rejects.",
         PGFEED_EPARSE},
        {"parser", "Quote it.", "Quote it.", PGFEED_EPARSE},
        {"sink", NULL, "Fix the row, or allow bad rows to be skipped with --max-rejects.",
         PGFEED_ESERVER},
        {NULL, NULL, "Fix the row, or allow bad rows to be skipped with --max-rejects.",
         PGFEED_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "max 0, %s row", cases[i].stage ? cases[i].stage : "no stage");
        ctx_reset(0, NULL, 0);
        struct pgfeed_rejects rj = {0};
        ASSERT_EQ_INT(check(&rj), 0, what);
        ASSERT_TRUE(rj.path == NULL, "%s: no file chosen", what);
        struct pgfeed_reject r = row(3, "bad", NULL, "Detail.", S("x"));
        r.stage = cases[i].stage;
        r.hint = cases[i].hint;
        ASSERT_EQ_INT(pgfeed__rejects_add(&rj, &ctx, &r), cases[i].code, what);
        ASSERT_EQ_STR(ctx.err.pub.stage, cases[i].stage ? cases[i].stage : "parser", what);
        ASSERT_EQ_STR(ctx.err.pub.detail, "Detail.", what);
        ASSERT_EQ_STR(ctx.err.pub.hint, cases[i].want_hint, what);
        ASSERT_EQ_INT(failed_calls, 1, what);
        pgfeed__rejects_free(&rj);
    }
}

/* Rows of a batch rolled back are forgotten: a retry reads them again. */
static void test_drop_pending(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/dropped.tsv", dir);
    ctx_reset(10, path, 0);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "drop: check");
    add_three(&rj);
    ASSERT_EQ_INT(pgfeed__rejects_drop_pending(&rj), 3, "drop: three rows forgotten");
    ASSERT_EQ_INT(flush(&rj, 0, 100), 0, "drop: flush");
    ASSERT_TRUE(!exists(path), "drop: nothing written, no file");
    ASSERT_EQ_INT(pgfeed__rejects_drop_pending(&rj), 0, "drop: none left");
    pgfeed__rejects_free(&rj);
}

/* --resume appends to the interrupted import's file (file holds one old row); /dev/null
 * takes rows in any case. */
static void test_writes_where_allowed(const char *file)
{
    /* --resume appends to the interrupted import's file. */
    ctx_reset(5, file, 1);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "resume: check");
    add_three(&rj);
    ASSERT_EQ_INT(flush(&rj, 0, 2), 0, "resume: flush");
    char want[256];
    memcpy(want, "1\told\trow\n", 10);
    memcpy(want + 10, line2, sizeof line2 - 1);
    check_file(file, want, 10 + sizeof line2 - 1, "resume: appended after the old rows");
    pgfeed__rejects_free(&rj);

    /* /dev/null takes rows, new import or not. */
    ctx_reset(5, "/dev/null", 0);
    ASSERT_EQ_INT(check(&rj), 0, "/dev/null: check");
    add_three(&rj);
    ASSERT_EQ_INT(flush(&rj, 0, 100), 0, "/dev/null: flush");
    ASSERT_EQ_STR(pgfeed__rejects_written(&rj), "/dev/null", "/dev/null: written");
    pgfeed__rejects_free(&rj);
}

/* What is at the path before anything runs, with and without --resume. */
static void test_check_existing(void)
{
    char file[128], link[128], sub[128], msg[256];
    snprintf(file, sizeof file, "%s/old.tsv", dir);
    snprintf(link, sizeof link, "%s/link.tsv", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    FILE *f = fopen(file, "w");
    fputs("1\told\trow\n", f);
    fclose(f);
    symlink(file, link);
    mkdir(sub, 0700);
    const struct {
        const char *path;
        int resume, code;
        const char *message; /* after "rejects file \"PATH\"" */
    } cases[] = {
        {file, 0, UV_EEXIST, " already exists"},
        {file, 1, 0, NULL},
        {link, 0, UV_ELOOP, " is a symbolic link"},
        {link, 1, UV_ELOOP, " is a symbolic link"},
        {sub, 0, UV_EINVAL, " is not a regular file"},
        {sub, 1, UV_EINVAL, " is not a regular file"},
        {"/dev/null", 0, 0, NULL},
        {"/dev/null", 1, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[200];
        snprintf(what, sizeof what, "check %s%s", cases[i].path, cases[i].resume ? ", resume" : "");
        ctx_reset(5, cases[i].path, cases[i].resume);
        struct pgfeed_rejects rj = {0};
        ASSERT_EQ_INT(check(&rj), cases[i].code, what);
        if (cases[i].message) {
            snprintf(msg, sizeof msg, "rejects file \"%s\"%s", cases[i].path, cases[i].message);
            ASSERT_EQ_STR(ctx.err.pub.message, msg, what);
            ASSERT_EQ_STR(ctx.err.pub.stage, "job", what);
            ASSERT_TRUE(ctx.err.pub.hint != NULL, "%s: a hint", what);
        } else {
            ASSERT_EQ_INT(ctx.err.pub.code, 0, what);
        }
        pgfeed__rejects_free(&rj);
    }

    test_writes_where_allowed(file);
    unlink(link);
    unlink(file);
    rmdir(sub);
}

/* A file that appeared between the check and the first write is not written into. */
static void test_created_since_check(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/late.tsv", dir);
    ctx_reset(5, path, 0);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "late: check");
    FILE *f = fopen(path, "w");
    fputs("someone else's\n", f);
    fclose(f);
    add_three(&rj);
    ASSERT_EQ_INT(flush(&rj, 0, 100), UV_EEXIST, "late: flush refused");
    check_file(path, S("someone else's\n"), "late: the file is untouched");
    ASSERT_TRUE(pgfeed__rejects_written(&rj) == NULL, "late: nothing written");
    pgfeed__rejects_free(&rj);
    unlink(path);
}

/* A path that cannot be opened: the import fails at the first write, rows stay pending. */
static void test_unwritable_path(void)
{
    char path[128], msg[256];
    snprintf(path, sizeof path, "%s/no/such/dir/r.tsv", dir);
    ctx_reset(5, path, 0);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "unwritable: check lets open say why");
    add_three(&rj);
    ASSERT_EQ_INT(flush(&rj, 0, 5), PGFEED_ESOURCE, "unwritable: flush");
    snprintf(msg, sizeof msg, "could not open the rejects file \"%s\"", path);
    ASSERT_EQ_STR(ctx.err.pub.message, msg, "unwritable: message");
    ASSERT_EQ_STR(ctx.err.pub.detail, "The system said: No such file or directory.",
                  "unwritable: detail");
    ASSERT_EQ_STR(ctx.err.pub.hint, "Choose another place with --rejects.", "unwritable: hint");
    ASSERT_EQ_INT(rj.n, 3, "unwritable: the rows stay pending");
    ASSERT_TRUE(pgfeed__rejects_written(&rj) == NULL, "unwritable: nothing written");
    pgfeed__rejects_free(&rj); /* frees the pending rows (LeakSanitizer checks) */
}

/*
 * A device that refuses every write. A short row stays in stdio's buffer and fails at the
 * flush; a long one fails in fwrite, after rows of later lines were moved up the pending
 * list: what stays pending must still be each row once.
 */
static void test_write_fails(void)
{
    ctx_reset(10, "/dev/full", 0);
    struct pgfeed_rejects rj = {0};
    ASSERT_EQ_INT(check(&rj), 0, "/dev/full: check");
    struct pgfeed_reject r = row(1, "short", NULL, NULL, S("x"));
    ASSERT_EQ_INT(pgfeed__rejects_add(&rj, &ctx, &r), 0, "/dev/full: add");
    ASSERT_EQ_INT(flush(&rj, 0, 1), PGFEED_ESOURCE, "/dev/full: short row");
    ASSERT_EQ_STR(ctx.err.pub.message, "could not write the rejects file \"/dev/full\"",
                  "/dev/full: message");
    pgfeed__rejects_free(&rj);

    ctx_reset(10, "/dev/full", 0);
    ASSERT_EQ_INT(check(&rj), 0, "/dev/full: check");
    size_t big = 1 << 16;
    char *raw = malloc(big);
    memset(raw, 'r', big);
    struct pgfeed_reject rows[3] = {row(1, "short", NULL, NULL, S("x")),
                                    row(5, "later", NULL, NULL, S("y")),
                                    row(2, "long", NULL, NULL, raw, big)};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(pgfeed__rejects_add(&rj, &ctx, &rows[i]), 0, "/dev/full: add");
    ASSERT_EQ_INT(flush(&rj, 0, 3), PGFEED_ESOURCE, "/dev/full: long row");
    int once = 1;
    for (size_t i = 0; i < rj.n; i++)
        for (size_t k = i + 1; k < rj.n; k++)
            once &= rj.pending[i].text != rj.pending[k].text;
    ASSERT_TRUE(once, "/dev/full: each pending row once (%zu pending)", rj.n);
    int has_later = 0;
    for (size_t i = 0; i < rj.n; i++)
        has_later |= rj.pending[i].line == 5;
    ASSERT_TRUE(has_later, "/dev/full: the later line's row still pending");
    pgfeed__rejects_free(&rj);
    free(raw);
}

/* The default file name: the table as the server reads it, made safe for a file name. */
static void test_default_path(void)
{
    char a70[71], a63[64];
    memset(a70, 'a', 70);
    a70[70] = '\0';
    memset(a63, 'a', 63);
    a63[63] = '\0';
    char want70[96];
    snprintf(want70, sizeof want70, "%s.rejects.tsv", a63);
    const struct {
        const char *table, *want;
    } cases[] = {
        {"t", "t.rejects.tsv"},
        {"Names", "names.rejects.tsv"},
        {"public.names", "public.names.rejects.tsv"},
        {"db.s.t", "s.t.rejects.tsv"},
        {" s . t ", "s.t.rejects.tsv"},
        {"\"My Schema\".T", "My_Schema.t.rejects.tsv"},
        {"\"a/b\"", "a_b.rejects.tsv"},
        {"\"x\"\"y\"", "x_y.rejects.tsv"},
        {"\"..x\"", "_.x.rejects.tsv"},
        {"../etc/passwd", "__etc_passwd.rejects.tsv"},
        {"Zo\xc3\xab", "zo\xc3\xab.rejects.tsv"},
        {"t\x01", "t_.rejects.tsv"},
        {"a.b.c.d", "a.b.c.d.rejects.tsv"},
        {"\"unterminated", "_unterminated.rejects.tsv"},
        {a70, want70},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx_reset(1, NULL, 0);
        opt.table = cases[i].table;
        struct pgfeed_rejects rj = {0};
        ASSERT_EQ_INT(check(&rj), 0, cases[i].want);
        ASSERT_EQ_STR(rj.path, cases[i].want, cases[i].want);
        pgfeed__rejects_free(&rj);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/unit-rejects-XXXXXX");
    if (mkdtemp(dir) == NULL || chdir(dir) != 0) {
        perror(dir);
        return 1;
    }
    uv_loop_init(&loop);
    test_write_and_flush();
    test_no_rejects_allowed();
    test_drop_pending();
    test_check_existing();
    test_created_since_check();
    test_unwritable_path();
    test_write_fails();
    test_default_path();
    pgfeed__ctx_free(&ctx);
    ASSERT_EQ_INT(rmdir(dir), 0, "every file made was removed");
    return tap_done();
}
