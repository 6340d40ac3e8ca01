/*
 * main.c -- the pgfeed command: signals, the loop, exit status.
 *
 * Takes struct pgfeed_options from the command line (options.c), runs one job
 * on the default loop, and maps its outcome to the contract's exit statuses
 * (0 imported, 1 failed, 2 usage, 130 SIGINT, 143 SIGTERM). SIGINT and
 * SIGTERM cancel the job through uv_signal; a second SIGINT exits at once.
 * How errors, the summary and progress look is print.c's and progress.c's.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct run {
    struct cli cli;
    pgfeed_job_t *job;
    uv_signal_t sigint, sigterm, sigusr1;
    int status;
    int finished;
    int closed; /* the job's close_cb ran */
};

static void signals_stop(struct run *r)
{
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_signal_stop(&r->sigusr1);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    if (r->cli.signal_received) {
        /* Second signal: the user means it. The server rolls back the open transaction. */
        if (signum == SIGINT || r->cli.signal_received == SIGINT) {
            if (r->cli.bar_drawn)
                cli_progress_clear();
            fprintf(stderr, "pgfeed: interrupted again; exiting at once\n");
            _exit(130);
        }
        return;
    }
    r->cli.signal_received = signum;
    if (r->cli.bar_drawn) { /* the notice starts a line of its own, not the bar's end */
        cli_progress_clear();
        r->cli.bar_drawn = 0;
    }
    if (!r->cli.quiet)
        fprintf(stderr, "pgfeed: %s received; rolling back the batch in flight\n",
                signum == SIGINT ? "SIGINT" : "SIGTERM");
    pgfeed_job_cancel(r->job);
}

static void progress_cb(void *arg, const struct pgfeed_stats *st)
{
    struct run *r = arg;
    if (st->done)
        return; /* main prints the last line, with the outcome */
    if (r->cli.progress == PROGRESS_BAR) {
        cli_progress_bar(st);
        r->cli.bar_drawn = 1;
    } else if (r->cli.progress == PROGRESS_JSON) {
        cli_progress_json(&r->cli, st, NULL, 0);
    }
}

/* SIGUSR1 (and SIGINFO where it exists): one status line, the import goes on. */
static void status_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    struct pgfeed_stats st;
    pgfeed_job_stats(r->job, &st);
    if (r->cli.bar_drawn) {
        cli_progress_clear();
        r->cli.bar_drawn = 0;
    }
    cli_progress_status(&st);
}

static void done_cb(pgfeed_job_t *job, int status)
{
    struct run *r = pgfeed_job_get_data(job);
    r->status = status;
    r->finished = 1;
    signals_stop(r);
}

static void job_closed_cb(pgfeed_job_t *job)
{
    struct run *r = pgfeed_job_get_data(job);
    r->closed = 1;
}

/*
 * Runs the loop until *flag is set, not until it is empty: a host name lookup the job
 * let go of (a cancel during a slow DNS answer) may keep libuv's threadpool, and so
 * uv_run(), busy for the resolver's own timeouts; the command does not wait for it.
 */
static void run_until(uv_loop_t *loop, const int *flag)
{
    while (!*flag && uv_run(loop, UV_RUN_ONCE) != 0)
        ;
}

/* Signals on, then the job, then the loop until the job is done. */
static void run_job(struct run *r, uv_loop_t *loop)
{
    pgfeed_job_set_data(r->job, r);
    uv_signal_init(loop, &r->sigint);
    uv_signal_init(loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, signal_cb, SIGINT);
    uv_signal_start(&r->sigterm, signal_cb, SIGTERM);
    uv_signal_init(loop, &r->sigusr1);
    r->sigusr1.data = r;
#ifdef SIGINFO
    uv_signal_start(&r->sigusr1, status_cb, SIGINFO);
#else
    uv_signal_start(&r->sigusr1, status_cb, SIGUSR1);
#endif

    int rc = pgfeed_job_start(r->job, done_cb);
    if (rc != 0) {
        fprintf(stderr, "pgfeed: error: could not start: %s\n", pgfeed_strerror(rc));
        r->status = rc;
        signals_stop(r);
    } else {
        run_until(loop, &r->finished);
    }
}

/*
 * The outcome on stderr; returns the exit status. After an import: the last progress line
 * and the summary. After a failure or an interruption: what is committed and how to go on,
 * in a few lines, with the error last, where the eye lands.
 */
static int report(struct run *r)
{
    struct pgfeed_stats st;
    pgfeed_job_stats(r->job, &st);
    int exit_code = 0;
    if (r->cli.signal_received && r->status == PGFEED_ECANCELED)
        exit_code = 128 + r->cli.signal_received;
    else if (r->status != 0)
        exit_code = r->status == PGFEED_EUSAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    if (r->cli.bar_drawn)
        cli_progress_clear();
    if (r->cli.progress == PROGRESS_JSON)
        cli_progress_json(&r->cli, &st,
                          exit_code == 0     ? "imported"
                          : exit_code >= 128 ? "interrupted"
                                             : "failed",
                          exit_code);
    if (r->status == 0)
        cli_print_summary(&r->cli, &st);
    else
        cli_print_unfinished(&r->cli, &st, exit_code >= 128);
    if (!r->cli.quiet && pgfeed_job_rejects_path(r->job))
        cli_put("pgfeed: rejects file:      ", pgfeed_job_rejects_path(r->job), "\n");
    if (r->status != 0 && exit_code < 128)
        cli_print_error(pgfeed_job_error(r->job));
    return exit_code;
}

/* Closes every handle, the job's too, and the loop; 1 when a request is still under way. */
static int close_all(struct run *r, uv_loop_t *loop)
{
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigusr1, NULL);
    pgfeed_job_close(r->job, job_closed_cb);
    run_until(loop, &r->closed);
    uv_run(loop, UV_RUN_NOWAIT); /* the other close callbacks */
    int busy = uv_loop_close(loop) != 0;
    if (busy && r->cli.verbose)
        fprintf(stderr, "pgfeed: debug: the loop still had open handles or requests at exit\n");
    return busy;
}

/* pgfeed_job_new refused the options: its error if it made a job, else the code's. */
static int job_new_failed(struct run *r, uv_loop_t *loop, int rc)
{
    if (r->job) {
        cli_print_error(pgfeed_job_error(r->job));
        pgfeed_job_close(r->job, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
    } else {
        fprintf(stderr, "pgfeed: error: %s\n", pgfeed_strerror(rc));
    }
    return rc == PGFEED_EUSAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    int rc = cli_parse_args(&a, argc, argv);
    if (rc != CLI_RUN) {
        cli_args_free(&a);
        return rc;
    }
    if (a.manifest) {
        rc = cli_run_manifest(&a); /* imports.c */
        cli_args_free(&a);
        return rc;
    }

    signal(SIGPIPE, SIG_IGN);
    if (pgfeed_library_init() != 0) {
        fprintf(stderr, "pgfeed: error: could not initialise libcurl\n");
        cli_args_free(&a);
        return CLI_EXIT_FAILED;
    }
    struct run r;
    memset(&r, 0, sizeof r);
    r.cli = a.cli;
    r.cli.no_checkpoint = a.opt.no_checkpoint;
    a.opt.log_cb = cli_log_cb;
    a.opt.log_arg = &r.cli;
    a.opt.log_level = PGFEED_LOG_DEBUG;
    if (r.cli.progress != PROGRESS_NONE) {
        a.opt.progress_cb = progress_cb;
        a.opt.progress_arg = &r;
    }
    uv_loop_t *loop = uv_default_loop();
    rc = pgfeed_job_new(loop, &a.opt, &r.job);
    if (rc == 0) {
        run_job(&r, loop);
        rc = report(&r);
        if (close_all(&r, loop)) {
            /* A host name lookup let go of is still in libuv's threadpool, whose exit
             * handler would join it (up to the resolver's timeouts): leave without it. */
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
    } else {
        rc = job_new_failed(&r, loop, rc);
    }
    pgfeed_library_cleanup();
    cli_args_free(&a);
    return rc;
}
