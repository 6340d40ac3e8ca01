/*
 * imports.c -- pgfeed --manifest: runs a manifest's imports concurrently on the one loop,
 * at most --max-jobs at a time, sharing one HTTP context, and maps their outcomes to one
 * exit status.
 *
 * Takes the imports from manifest.c (every job is made, so every import's options are
 * checked, before the first starts); leaves how they look on the screen to
 * imports_show.c, and errors, log lines and JSON progress lines to print.c and
 * progress.c. Each import is its own job (own connections, batches, checkpoint, rejects
 * file). One failing import does not stop the others unless --fail-fast, which cancels
 * the running ones and starts no more. SIGINT and SIGTERM cancel every running import
 * and start no more; a second SIGINT exits at once. SIGUSR1 prints every import's status.
 *
 * States of an import: WAITING -> RUNNING -> DONE, or WAITING -> NOT_STARTED (a stop).
 * Each job is closed from its done_cb (a waiting one at the stop or the end); the HTTP
 * context once every job is closed; the loop runs until that close is done.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct runner {
    struct cli cli; /* the whole run's: quiet, verbose, progress, the signal received */
    struct cli_manifest m;
    uv_loop_t *loop;
    pgfeed_http_t *http;
    uv_signal_t sigint, sigterm, sigusr1;
    uv_timer_t draw; /* bar: redraws every --progress-interval */
    size_t running, open_jobs;
    unsigned max_jobs;
    int fail_fast;
    int stopping;    /* no import starts any more (a signal, --fail-fast) */
    int lines;       /* bar lines on the screen (imports_show.c) */
    int http_closed; /* the end: the HTTP context's close was asked for */
};

static void start_more(struct runner *r);
static void all_done_check(struct runner *r);

static struct runner *runner_of(const struct cli_import *im)
{
    return im->owner;
}

static void bar_off(struct runner *r)
{
    if (r->lines)
        cli_imports_clear(&r->lines);
}

/* Log lines, with the import's name. */
static void log_cb(void *arg, int level, const char *msg)
{
    struct cli_import *im = arg;
    struct runner *r = runner_of(im);
    if ((r->cli.quiet && level > PGFEED_LOG_WARNING) ||
        (!r->cli.verbose && level > PGFEED_LOG_NOTICE))
        return;
    bar_off(r);
    char line[2048];
    snprintf(line, sizeof line, "%s: %s", im->name, msg);
    cli_log_cb(&r->cli, level, line);
}

static void progress_cb(void *arg, const struct pgfeed_stats *st)
{
    struct cli_import *im = arg;
    if (st->done)
        return; /* done_cb prints the last line, with the outcome */
    im->st = *st;
    if (runner_of(im)->cli.progress == PROGRESS_JSON)
        cli_progress_json(&im->a.cli, st, NULL, 0);
}

static void draw_cb(uv_timer_t *t)
{
    struct runner *r = t->data;
    cli_imports_draw(&r->m, &r->lines);
}

static void job_closed_cb(pgfeed_job_t *job)
{
    struct cli_import *im = pgfeed_job_get_data(job);
    struct runner *r = runner_of(im);
    im->job = NULL;
    r->open_jobs--;
    all_done_check(r);
}

/* An import's outcome, as the single-import command would exit. */
static int exit_code_of(const struct runner *r, int status)
{
    if (status == 0)
        return 0;
    if (status == PGFEED_ECANCELED && r->cli.signal_received)
        return 128 + r->cli.signal_received;
    return status == PGFEED_EUSAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

static void stop_all(struct runner *r)
{
    r->stopping = 1;
    for (size_t i = 0; i < r->m.n; i++) {
        struct cli_import *im = &r->m.imports[i];
        if (im->state == IMPORT_RUNNING)
            pgfeed_job_cancel(im->job);
        else if (im->state == IMPORT_WAITING)
            im->state = IMPORT_NOT_STARTED;
    }
}

static void done_cb(pgfeed_job_t *job, int status)
{
    struct cli_import *im = pgfeed_job_get_data(job);
    struct runner *r = runner_of(im);
    im->state = IMPORT_DONE;
    im->status = status;
    im->exit_code = exit_code_of(r, status);
    pgfeed_job_stats(job, &im->st);
    const char *rejects = pgfeed_job_rejects_path(job);
    im->rejects = rejects ? strdup(rejects) : NULL;
    bar_off(r);
    if (status != 0 && im->exit_code < 128 && !(status == PGFEED_ECANCELED && r->stopping)) {
        cli_put("pgfeed: import \"", im->name, "\"");
        fprintf(stderr, " (%s line %u) failed:\n", r->m.path, im->line);
        cli_print_error(pgfeed_job_error(job));
    }
    if (r->cli.progress == PROGRESS_JSON)
        cli_progress_json(&im->a.cli, &im->st,
                          im->exit_code == 0     ? "imported"
                          : im->exit_code >= 128 ? "interrupted"
                                                 : "failed",
                          im->exit_code);
    r->running--;
    im->closing = 1;
    pgfeed_job_close(job, job_closed_cb);
    if (status != 0 && r->fail_fast && !r->stopping) {
        if (!r->cli.quiet)
            cli_put("pgfeed: --fail-fast: stopping every import after \"", im->name, "\" failed\n");
        stop_all(r);
    }
    start_more(r);
}

static int start_one(struct runner *r, struct cli_import *im)
{
    int rc = pgfeed_job_start(im->job, done_cb);
    if (rc == 0) {
        im->state = IMPORT_RUNNING;
        r->running++;
        return 0;
    }
    cli_put("pgfeed: error: could not start import \"", im->name, "\": ");
    fprintf(stderr, "%s\n", pgfeed_strerror(rc));
    im->state = IMPORT_DONE;
    im->status = rc;
    im->exit_code = CLI_EXIT_FAILED;
    im->closing = 1;
    pgfeed_job_close(im->job, job_closed_cb);
    return rc;
}

/* Starts waiting imports while fewer than --max-jobs run. */
static void start_more(struct runner *r)
{
    for (size_t i = 0; i < r->m.n && !r->stopping; i++) {
        if (r->max_jobs && r->running >= r->max_jobs)
            break;
        struct cli_import *im = &r->m.imports[i];
        if (im->state == IMPORT_WAITING)
            start_one(r, im);
    }
    all_done_check(r);
}

static void signals_stop(struct runner *r)
{
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_signal_stop(&r->sigusr1);
    uv_timer_stop(&r->draw);
}

/* Every import is done (or will not start): close what is left, then the HTTP context. */
static void all_done_check(struct runner *r)
{
    if (r->running)
        return;
    for (size_t i = 0; i < r->m.n; i++) {
        struct cli_import *im = &r->m.imports[i];
        if (im->state == IMPORT_WAITING)
            return;
        if (im->state == IMPORT_NOT_STARTED && im->job && !im->closing) {
            im->closing = 1;
            pgfeed_job_close(im->job, job_closed_cb);
        }
    }
    signals_stop(r);
    if (r->open_jobs == 0 && r->http && !r->http_closed) {
        r->http_closed = 1; /* asked: its handles close within a few loop turns */
        pgfeed_http_close(r->http, NULL);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    if (r->cli.signal_received) {
        if (signum == SIGINT || r->cli.signal_received == SIGINT) {
            fprintf(stderr, "pgfeed: interrupted again; exiting at once\n");
            _exit(130);
        }
        return;
    }
    r->cli.signal_received = signum;
    bar_off(r);
    if (!r->cli.quiet)
        fprintf(stderr, "pgfeed: %s received; rolling back the batches in flight\n",
                signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop_all(r);
    all_done_check(r);
}

static void status_cb(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    bar_off(r);
    for (size_t i = 0; i < r->m.n; i++) {
        struct cli_import *im = &r->m.imports[i];
        if (im->state == IMPORT_RUNNING)
            pgfeed_job_stats(im->job, &im->st);
    }
    cli_imports_status(&r->m);
}

static void handles_start(struct runner *r, const struct cli_args *defaults)
{
    uv_signal_init(r->loop, &r->sigint);
    uv_signal_init(r->loop, &r->sigterm);
    uv_signal_init(r->loop, &r->sigusr1);
    uv_timer_init(r->loop, &r->draw);
    r->sigint.data = r->sigterm.data = r->sigusr1.data = r->draw.data = r;
    uv_signal_start(&r->sigint, signal_cb, SIGINT);
    uv_signal_start(&r->sigterm, signal_cb, SIGTERM);
#ifdef SIGINFO
    uv_signal_start(&r->sigusr1, status_cb, SIGINFO);
#else
    uv_signal_start(&r->sigusr1, status_cb, SIGUSR1);
#endif
    if (r->cli.progress == PROGRESS_BAR) {
        uint64_t ms = defaults->opt.progress_interval_ms ? defaults->opt.progress_interval_ms : 250;
        uv_timer_start(&r->draw, draw_cb, ms, ms);
    }
}

static void handles_close(struct runner *r)
{
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigusr1, NULL);
    uv_close((uv_handle_t *)&r->draw, NULL);
}

/* Every job made before any starts, so a refused option stops the run first (exit 2). */
static int make_jobs(struct runner *r)
{
    for (size_t i = 0; i < r->m.n; i++) {
        struct cli_import *im = &r->m.imports[i];
        struct pgfeed_options *o = &im->a.opt;
        im->owner = r;
        o->http = r->http;
        o->log_cb = log_cb;
        o->log_arg = im;
        o->log_level = PGFEED_LOG_DEBUG;
        if (r->cli.progress != PROGRESS_NONE) {
            o->progress_cb = progress_cb;
            o->progress_arg = im;
        }
        im->st.bytes_total = -1;
        int rc = pgfeed_job_new(r->loop, o, &im->job);
        if (im->job) {
            r->open_jobs++;
            pgfeed_job_set_data(im->job, im);
        }
        if (rc != 0) {
            if (im->job)
                cli_print_error(pgfeed_job_error(im->job));
            else
                fprintf(stderr, "pgfeed: error: %s\n", pgfeed_strerror(rc));
            cli_put("pgfeed: context: the import on line ", "", "");
            fprintf(stderr, "%u of ", im->line);
            cli_put("\"", r->m.path, "\"\n");
            return rc == PGFEED_EUSAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
        }
    }
    return 0;
}

/* The exit status: the signal's, else 1 if any import failed, else 0. */
static int outcome(const struct runner *r)
{
    if (r->cli.signal_received)
        return 128 + r->cli.signal_received;
    int code = 0;
    for (size_t i = 0; i < r->m.n; i++) {
        const struct cli_import *im = &r->m.imports[i];
        if (im->state != IMPORT_DONE || im->exit_code != 0)
            code = CLI_EXIT_FAILED;
    }
    return code;
}

/*
 * Runs the loop until every job is closed and the HTTP context's close was asked for, then
 * the few turns that close its handles and ours. Not until the loop is empty: a host name
 * lookup a canceled job let go of may hold libuv's threadpool for the resolver's timeouts
 * (as in main.c); 1 is returned then, and the caller leaves without waiting for it.
 */
static int run_loop(struct runner *r)
{
    while (!(r->http_closed && r->open_jobs == 0))
        if (uv_run(r->loop, UV_RUN_ONCE) == 0 && !(r->http_closed && r->open_jobs == 0))
            break; /* nothing left that could change it */
    handles_close(r);
    for (int i = 0; i < 16 && uv_run(r->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    return uv_loop_close(r->loop) != 0;
}

static int run(struct runner *r, const struct cli_args *defaults)
{
    r->loop = uv_default_loop();
    int rc = pgfeed_http_new(r->loop, &r->http);
    if (rc != 0) {
        fprintf(stderr, "pgfeed: error: could not make the HTTP context: %s\n",
                pgfeed_strerror(rc));
        return CLI_EXIT_FAILED;
    }
    uint64_t t0 = uv_hrtime();
    handles_start(r, defaults);
    int code = make_jobs(r);
    if (code != 0) {
        r->cli.quiet = 1; /* no summary: nothing ran */
        stop_all(r);
    }
    start_more(r);
    int busy = run_loop(r);
    bar_off(r);
    if (code == 0) {
        cli_imports_summary(&r->cli, &r->m, (double)(uv_hrtime() - t0) / 1e9);
        code = outcome(r);
    }
    if (busy) {
        fflush(stdout);
        fflush(stderr);
        _exit(code); /* a host name lookup let go of still holds the threadpool */
    }
    return code;
}

int cli_run_manifest(struct cli_args *defaults)
{
    struct runner r;
    memset(&r, 0, sizeof r);
    r.cli = defaults->cli;
    r.max_jobs = defaults->max_jobs;
    r.fail_fast = defaults->fail_fast;
    int code = cli_manifest_read(&r.m, defaults);
    if (code == CLI_RUN) {
        signal(SIGPIPE, SIG_IGN);
        if (pgfeed_library_init() != 0) {
            fprintf(stderr, "pgfeed: error: could not initialise libcurl\n");
            code = CLI_EXIT_FAILED;
        } else {
            code = run(&r, defaults);
            pgfeed_library_cleanup();
        }
    }
    for (size_t i = 0; i < r.m.n; i++)
        free(r.m.imports[i].rejects);
    cli_manifest_free(&r.m);
    return code;
}
