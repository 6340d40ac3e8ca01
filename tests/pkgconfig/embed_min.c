/*
 * embed_min.c -- the smallest embedder, built outside meson with the flags of
 * `pkg-config --cflags --libs pgfeed` alone (tests/pkgconfig/run.sh links it against the
 * installed libpgfeed.so, then against libpgfeed.a).
 *
 * On a loop of its own: pgfeed_library_init; a job with an empty source, which
 * pgfeed_job_new refuses (PGFEED_EUSAGE) with the reason in pgfeed_job_error; the job
 * closed; the loop run dry; close_cb run exactly once; uv_loop_close returning 0;
 * pgfeed_library_cleanup. Exits 0 if every check held, else 1 after naming the first
 * that did not on stderr. No server and no file are needed.
 */
#include <stdio.h>
#include <string.h>

#include <pgfeed.h>

static int close_calls;

static int check(int ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "embed_min: failed: %s\n", what);
    return ok;
}

static void close_cb(pgfeed_job_t *job)
{
    (void)job;
    close_calls++;
}

/* The refusal, as an embedder sees it: a code, a job to close, and the message. */
static int refused_job(uv_loop_t *loop)
{
    struct pgfeed_options opt;
    pgfeed_options_init(&opt);
    opt.source = "";
    opt.table = "t";
    pgfeed_job_t *job = NULL;
    int rc = pgfeed_job_new(loop, &opt, &job);
    if (!check(rc == PGFEED_EUSAGE, "pgfeed_job_new refuses an empty source") ||
        !check(job != NULL, "a refused job is there to close"))
        return 0;
    const struct pgfeed_error *e = pgfeed_job_error(job);
    int ok = check(e->code == PGFEED_EUSAGE, "pgfeed_job_error has the code") &&
             check(e->message != NULL && strcmp(e->message, "no source given") == 0,
                   "pgfeed_job_error says \"no source given\"");
    pgfeed_job_close(job, close_cb);
    return ok;
}

int main(void)
{
    uv_loop_t loop;
    if (!check(pgfeed_library_init() == 0, "pgfeed_library_init") ||
        !check(uv_loop_init(&loop) == 0, "uv_loop_init"))
        return 1;
    printf("embed_min: pgfeed %s (%s), libuv %s\n", pgfeed_version(), pgfeed_build_info(),
           uv_version_string());
    int ok = refused_job(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok = check(close_calls == 1, "close_cb ran once") && ok;
    ok = check(uv_loop_close(&loop) == 0, "uv_loop_close returns 0: no handle left") && ok;
    pgfeed_library_cleanup();
    return ok ? 0 : 1;
}
