/*
 * job.c -- one import: assembles source -> decoder -> parser -> sink and runs its
 * lifecycle (start, retry after a transient failure, cancel, shutdown, close).
 *
 * Owns the resolved options (options.c), the stages, the context they share (ctx.c), the
 * counters of earlier attempts and the rates (stats.c), the rejects file (rejects.c) and
 * the field-to-column targets (mapping.c), a push job's inbox (source_push.c), and five
 * timers: `defer` (0 ms: deferred resumes and the shutdown step, so that no stage is
 * resumed or torn down inside its own callback), `progress`, `timeout`, `retry` and `drain`
 * (0 ms: a push job's drain_cb, never run from inside a stage's work). Stages own their own
 * handles; every handle close goes through pgfeed__ctx_handle_closing()/pgfeed__ctx_close_cb so the
 * job knows when the last one is gone.
 *
 * It answers the sink's events: the table described (targets from --columns or the
 * table), the checkpoint read (weighed in checkpoint.c; then the parser is made, the
 * source seeked and the decoder primed), done. The header line comes to it from the
 * parser, as it needs both the table's columns and that line.
 *
 * States: NEW -> RUNNING -> STOPPING (stages stopped, waiting for closes)
 *   -> DONE (done_cb called; only the inactive timers remain)
 *   -> CLOSING (pgfeed_job_close: timers closing) -> freed in the last close cb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "internal.h"

enum job_state { JOB_NEW, JOB_RUNNING, JOB_STOPPING, JOB_DONE, JOB_CLOSING };

#define MAX_DEFERRED 8
#define SAMPLE_MS    250

struct pgfeed_job {
    struct pgfeed_ctx ctx; /* what the stages share: error, counters, closes, retry state */
    uv_loop_t *loop;
    struct pgfeed_options opt; /* resolved (options.c); its strings are in own */
    struct pgfeed_option_copies own;

    enum job_state state;
    int status;
    int cancel_requested;
    int close_requested;
    pgfeed_done_cb done_cb;
    pgfeed_close_cb close_cb;
    void *data;

    struct pgfeed_stage *source_stage, *decoder, *parser, *sink;

    uv_timer_t defer, progress, timeout, retry, drain;
    int retrying;              /* stages are closing for a retry, or its backoff is running */
    double retry_delay_s;      /* the backoff before the next attempt */
    struct pgfeed_stats carry; /* counters of the runs before a retry */
    struct pgfeed_stage *deferred[MAX_DEFERRED];
    size_t ndeferred;
    int shutdown_pending;

    uint64_t start_ns;

    struct pgfeed_rates rates; /* sampled every SAMPLE_MS (stats.c) */
    uint64_t last_progress_ns;

    uint64_t base_rows, base_batches; /* committed before this run (resume) */
    char stdin_id[32];                /* stdin: "stdin:" + a hash of its first bytes, once read */

    struct pgfeed_rejects rejects; /* the rejects file and the rows not yet written to it */

    /* Target columns, in input field order. */
    struct pgfeed_targets targets; /* the table column of each input field (mapping.c) */

    struct pgfeed_push_inbox push; /* push jobs: what pgfeed_job_write() took, not yet read */
};

/* What a push job holds of the host's writes before it answers EAGAIN, in chunks. */
#define PUSH_BOUND_CHUNKS 4

static void job_shutdown(struct pgfeed_job *job);
static void ctx_failed(void *arg, int code);
static void ctx_closed(void *arg);
static void schedule_resume(void *arg, struct pgfeed_stage *s);
static int reject(void *arg, const struct pgfeed_reject *r);
static int flush_rejects(void *arg, uint64_t from, uint64_t upto, void (*cb)(void *arg, int status),
                         void *cb_arg);
static void batch_ending(void *arg, struct pgfeed_batch_info *bi);
static void sink_done(void *arg, int status);

/* The state, and the context's view of it: stages resume one another only while it runs. */
static void set_state(struct pgfeed_job *job, enum job_state st)
{
    job->state = st;
    job->ctx.running = st == JOB_RUNNING;
}
static void schedule_retry(struct pgfeed_job *job);
static int update_identity(struct pgfeed_job *job);
static void job_check_closed(struct pgfeed_job *job);
static void finish_damaged_member(struct pgfeed_job *job);
static void fail_not_rereadable(struct pgfeed_job *job);
static void push_room(void *arg);

/* ------------------------------------------------------------ making one */

int pgfeed_job_new(uv_loop_t *loop, const struct pgfeed_options *opt, pgfeed_job_t **out)
{
    *out = NULL;
    if (loop == NULL || opt == NULL)
        return UV_EINVAL;
    struct pgfeed_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return UV_ENOMEM;
    if (pgfeed__options_copy(&job->opt, &job->own, opt) != 0) {
        free(job);
        return UV_ENOMEM;
    }
    job->loop = loop;
    job->ctx.stats.bytes_total = -1;
    job->ctx.loop = loop;
    job->ctx.opt = &job->opt;
    job->ctx.display = job->own.display;
    job->ctx.user_resume = job->opt.resume;
    job->ctx.hooks = (struct pgfeed_ctx_hooks){.owner = job,
                                               .failed = ctx_failed,
                                               .closed = ctx_closed,
                                               .schedule_resume = schedule_resume,
                                               .reject = reject,
                                               .flush_rejects = flush_rejects,
                                               .batch_ending = batch_ending};

    uv_timer_init(loop, &job->defer);
    uv_timer_init(loop, &job->progress);
    uv_timer_init(loop, &job->timeout);
    uv_timer_init(loop, &job->retry);
    uv_timer_init(loop, &job->drain);
    job->defer.data = job->progress.data = job->timeout.data = job->retry.data = job;
    job->drain.data = job;
    pgfeed__push_init(&job->push, job->opt.chunk_size * PUSH_BOUND_CHUNKS, push_room, job);
    *out = job;

    /* A refusal leaves a job that reports its error and can only be closed. */
    int rc = pgfeed__options_resolve(&job->ctx, &job->opt);
    if (rc == 0)
        rc = pgfeed__rejects_choose(&job->rejects, &job->ctx); /* no filesystem call */
    return rc;
}

/* ------------------------------------------------------------- accessors */

struct pgfeed_ctx *pgfeed__job_ctx(pgfeed_job_t *job)
{
    return &job->ctx;
}

void pgfeed_job_set_data(pgfeed_job_t *job, void *data)
{
    job->data = data;
}

void *pgfeed_job_get_data(const pgfeed_job_t *job)
{
    return job->data;
}

const struct pgfeed_error *pgfeed_job_error(const pgfeed_job_t *job)
{
    return &job->ctx.err.pub;
}

static double elapsed_s(const struct pgfeed_job *job)
{
    if (job->start_ns == 0)
        return 0;
    return (double)(uv_hrtime() - job->start_ns) / 1e9;
}

void pgfeed_job_stats(const pgfeed_job_t *job, struct pgfeed_stats *out)
{
    *out = job->ctx.stats;
    pgfeed__stats_merge(out, &job->carry, &job->ctx.stats);
    if (job->state == JOB_RUNNING || job->state == JOB_STOPPING)
        out->elapsed_s = elapsed_s(job);
    pgfeed__stats_derive(&job->rates, &job->ctx, out);
}

//* The detail as it stands when the job ends (see pgfeed__fail_count_committed). */
static void finish_error_detail(struct pgfeed_job *job)
{
    if (!job->ctx.err_count_committed)
        return;
    job->ctx.err_count_committed = 0;
    struct pgfeed_err_store *e = &job->ctx.err;
    char *d = pgfeed__strdup_printf(
        "%s%s%llu rows in %llu earlier batches are committed.", e->detail ? e->detail : "",
        e->detail ? "; " : "",
        (unsigned long long)(job->carry.rows_committed + job->ctx.stats.rows_committed),
        (unsigned long long)(job->carry.batches_committed + job->ctx.stats.batches_committed));
    if (d == NULL)
        return;
    free(e->detail);
    e->detail = d;
    e->pub.detail = d;
}

/* ------------------------------------------------------- context hooks */

/* A stage failed (pgfeed__fail): the first failure of a running import stops it. */
static void ctx_failed(void *arg, int code)
{
    struct pgfeed_job *job = arg;
    if (job->state == JOB_RUNNING) {
        job->status = job->status ? job->status : code;
        job_shutdown(job);
    }
}

/* A handle close finished: the lifecycle may go on. */
static void ctx_closed(void *arg)
{
    job_check_closed(arg);
}

/* ---------------------------------------------------- deferred execution */

static void defer_cb(uv_timer_t *t)
{
    struct pgfeed_job *job = t->data;
    if (job->shutdown_pending) {
        job->shutdown_pending = 0;
        job->ndeferred = 0;
        /* Balances the reference taken in job_shutdown. */
        job->ctx.pending_closes--;
        job_check_closed(job);
        return;
    }
    /* Resume in the order scheduled; a resume may schedule more (handled next tick). */
    struct pgfeed_stage *run[MAX_DEFERRED];
    size_t n = job->ndeferred;
    memcpy(run, job->deferred, n * sizeof run[0]);
    job->ndeferred = 0;
    for (size_t i = 0; i < n && job->state == JOB_RUNNING; i++)
        if (run[i]->ops->resume)
            run[i]->ops->resume(run[i]);
}

static void schedule_resume(void *arg, struct pgfeed_stage *s)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING)
        return;
    for (size_t i = 0; i < job->ndeferred; i++)
        if (job->deferred[i] == s)
            return;
    if (job->ndeferred < MAX_DEFERRED)
        job->deferred[job->ndeferred++] = s;
    if (!uv_is_active((uv_handle_t *)&job->defer))
        uv_timer_start(&job->defer, defer_cb, 0, 0);
}

/* ------------------------------------------------------------- lifecycle */

static void free_job(struct pgfeed_job *job)
{
    struct pgfeed_stage *stages[4] = {job->source_stage, job->decoder, job->parser, job->sink};
    for (int i = 0; i < 4; i++)
        if (stages[i] && stages[i]->ops->destroy)
            stages[i]->ops->destroy(stages[i]);
    pgfeed__err_clear(&job->ctx.err);
    pgfeed__targets_free(&job->targets);
    pgfeed__options_free(&job->own);
    pgfeed__rejects_free(&job->rejects);
    pgfeed__buf_free(&job->ctx.replay.buf);
    pgfeed__push_free(&job->push);
    free(job);
}

/* The failure being handled is one to try again: a wait for the server, or a retry left. */
static int retry_allowed(const struct pgfeed_job *job)
{
    return job->ctx.transient && (job->ctx.waiting_db || job->ctx.attempts < job->opt.retries);
}

/* The job is stopping for a transient failure it will retry (if the source allows). */
static int will_retry(const struct pgfeed_job *job)
{
    return job->state == JOB_STOPPING && retry_allowed(job) && !job->cancel_requested &&
           !job->close_requested;
}

static void job_check_closed(struct pgfeed_job *job)
{
    if (job->ctx.pending_closes != 0)
        return;
    if (job->state == JOB_CLOSING) {
        /* Like libuv's close callbacks: the last moment the job is valid. */
        if (job->close_cb)
            job->close_cb(job);
        free_job(job);
        return;
    }
    if (will_retry(job)) {
        struct pgfeed_stage *src = job->source_stage;
        int started = job->ctx.stats.bytes_read > 0 || job->carry.bytes_read > 0;
        if (!started || src == NULL || src->ops->rereadable == NULL || src->ops->rereadable(src)) {
            schedule_retry(job);
            return;
        }
        fail_not_rereadable(job);
    }
    if (job->state == JOB_STOPPING) {
        finish_error_detail(job);
        finish_damaged_member(job);
        uv_timer_stop(&job->progress); /* kept running by job_shutdown for a retry */
        uv_timer_stop(&job->timeout);
        uv_timer_stop(&job->drain);
        set_state(job, JOB_DONE);
        job->ctx.stats.elapsed_s = elapsed_s(job);
        job->ctx.stats.done = 1;
        if (job->close_requested) {
            pgfeed_job_close(job, job->close_cb);
            return;
        }
        pgfeed__ctx_server_wait(&job->ctx, 0);
        if (job->opt.progress_cb) {
            struct pgfeed_stats st;
            pgfeed_job_stats(job, &st);
            job->opt.progress_cb(job->opt.progress_arg, &st);
        }
        if (job->done_cb)
            job->done_cb(job, job->status);
    }
}

/* The job's own timers, closed only by pgfeed_job_close. */
static void job_timer_close_cb(uv_handle_t *h)
{
    struct pgfeed_job *job = h->data;
    job->ctx.pending_closes--;
    job_check_closed(job);
}

/*
 * Stops every stage (each closes its handles, counted in pending_closes) and
 * the job's timers. A reference of our own, dropped from the defer timer,
 * makes sure done_cb is never called from inside the failing stage's call.
 */
static void job_shutdown(struct pgfeed_job *job)
{
    if (job->state != JOB_RUNNING)
        return;
    set_state(job, JOB_STOPPING);
    uv_timer_stop(&job->retry);
    if (!retry_allowed(job)) {
        uv_timer_stop(&job->progress);
        uv_timer_stop(&job->timeout);
    }
    job->ctx.pending_closes++;
    job->shutdown_pending = 1;
    uv_timer_start(&job->defer, defer_cb, 0, 0);
    pgfeed__rejects_cancel(&job->rejects);
    struct pgfeed_stage *stages[4] = {job->source_stage, job->decoder, job->parser, job->sink};
    for (int i = 0; i < 4; i++)
        if (stages[i] && stages[i]->ops->stop)
            stages[i]->ops->stop(stages[i]);
}

/* A finished import that read no row at all says so: it is seldom what was meant. */
static void warn_no_rows(struct pgfeed_job *job)
{
    struct pgfeed_stats st = job->ctx.stats;
    pgfeed__stats_merge(&st, &job->carry, &job->ctx.stats);
    if (job->parser == NULL || job->base_batches > 0 || st.rows_read > 0)
        return; /* nothing to resume, or resumed: the rows are counted elsewhere */
    pgfeed__log(&job->ctx, PGFEED_LOG_WARNING, "the input has no rows: %s",
                st.bytes_inflated == 0                  ? "it is empty"
                : job->opt.header != PGFEED_HEADER_NONE ? "it holds only a header line"
                                                        : "it holds no data line");
}

static void sink_done(void *arg, int status)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING)
        return;
    if (status != 0 && job->status == 0)
        job->status = status;
    if (job->status == 0)
        warn_no_rows(job);
    job_shutdown(job);
}

static void take_sample(struct pgfeed_job *job)
{
    struct pgfeed_stats st = job->ctx.stats;
    pgfeed__stats_merge(&st, &job->carry, &job->ctx.stats);
    pgfeed__rates_sample(&job->rates, &st);
}

/* Samples the counters for the rates; calls progress_cb every progress_interval_ms. */
static void progress_cb(uv_timer_t *t)
{
    struct pgfeed_job *job = t->data;
    take_sample(job);
    if (job->opt.progress_cb == NULL || job->opt.progress_interval_ms == 0)
        return;
    uint64_t now = uv_hrtime();
    if (now - job->last_progress_ns + 5000000 < job->opt.progress_interval_ms * 1000000)
        return;
    job->last_progress_ns = now;
    struct pgfeed_stats st;
    pgfeed_job_stats(job, &st);
    job->rates.last_wait_source = st.wait_source_s;
    job->opt.progress_cb(job->opt.progress_arg, &st);
}

static void timeout_cb(uv_timer_t *t)
{
    struct pgfeed_job *job = t->data;
    pgfeed__fail(&job->ctx, "job", PGFEED_ETIMEDOUT,
                 "The batch in flight was rolled back; committed batches stay.",
                 "Raise --timeout, or leave it out for no limit.",
                 "time limit of %g seconds reached", job->opt.timeout_s);
}

/* How much of stdin identifies the stream (its checkpoint's key). */
#define STDIN_ID_BYTES (64u << 10)

/* FNV-1a, 64 bits: a name for a stream's first bytes, not a defence against forgery. */
static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* A start step failed with rc (0: it did not): the error, unless a stage set a better one. */
static void start_failed(struct pgfeed_job *job, int rc)
{
    if (rc != 0 && job->ctx.err.pub.code == 0)
        pgfeed__fail(&job->ctx, "job", rc, NULL, NULL, "could not start the import: %s",
                     pgfeed_strerror(rc));
}

/* stdin's first bytes are in: name the stream by them, then look up its checkpoint. */
static void stdin_prefetched(void *arg, const char *p, size_t n)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING)
        return;
    snprintf(job->stdin_id, sizeof job->stdin_id, "stdin:%016llx",
             (unsigned long long)(fnv1a64(p, n) ^ (uint64_t)n));
    int rc = pgfeed__sink_connect(job->sink);
    start_failed(job, rc);
}

static int table_ready(void *arg);
static int checkpoint_ready(void *arg);

static const struct pgfeed_sink_events sink_events = {
    .arg = NULL, /* the job, set when the sink is made */
    .table_described = table_ready,
    .checkpoint_read = checkpoint_ready,
    .done = sink_done,
};

/* The source is ready to read: stdin's first bytes, then the connection. */
static int connect_sink(struct pgfeed_job *job)
{
    pgfeed__ctx_server_wait(&job->ctx, 1); /* until the table is known */
    if (!job->opt.push && strcmp(job->opt.source, "-") == 0 && job->stdin_id[0] == '\0')
        return pgfeed__source_file_prefetch(job->source_stage, STDIN_ID_BYTES, stdin_prefetched,
                                            job);
    return pgfeed__sink_connect(job->sink);
}

/* The source's open op is done (its files opened on the threadpool): on with the start. */
static void source_opened(void *arg, int status)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING)
        return;
    int rc = status != 0 ? status : connect_sink(job);
    start_failed(job, rc);
    if (rc != 0)
        job_shutdown(job);
}

/*
 * Makes source, decoder and sink and opens the source (its filesystem work runs on
 * libuv's threadpool), then starts connecting; the parser comes with the table.
 */
static int build_pipeline(struct pgfeed_job *job)
{
    int rc;
    if (job->opt.push) {
        rc = pgfeed__source_push_new(&job->ctx, &job->push, &job->source_stage);
    } else if (pgfeed__url_is_http(job->opt.source)) {
        rc = pgfeed__source_http_new(&job->ctx, job->opt.source, job->opt.http, &job->source_stage);
    } else if (strcmp(job->opt.source, "-") == 0) {
        rc = pgfeed__source_file_new(&job->ctx, NULL, job->opt.source_fd, &job->source_stage);
    } else if (pgfeed__url_is(job->opt.source, "file://")) {
        char *path = NULL;
        rc = pgfeed__url_file_path(&job->ctx, job->opt.source, &path);
        if (rc == 0)
            rc = pgfeed__source_file_new(&job->ctx, path, -1, &job->source_stage);
        free(path);
    } else {
        rc = pgfeed__source_file_new(&job->ctx, job->opt.source, -1, &job->source_stage);
    }
    if (rc == 0)
        rc = pgfeed__decoder_new(&job->ctx, job->opt.chunk_size * 2, &job->decoder);
    if (rc == 0)
        pgfeed__decoder_set_max_window(job->decoder, job->opt.max_window);
    {
        struct pgfeed_sink_events ev = sink_events;
        ev.arg = job;
        if (rc == 0)
            rc = pgfeed__sink_new(&job->ctx, &ev, &job->sink);
    }
    if (rc == 0) {
        job->source_stage->next = job->decoder;
        job->decoder->prev = job->source_stage;
        struct pgfeed_stage *src = job->source_stage;
        rc = src->ops->open ? src->ops->open(src, source_opened, job) : connect_sink(job);
    }
    start_failed(job, rc);
    return rc;
}

/* What is at the rejects file's path allows the import: on with the pipeline. */
static void rejects_checked(void *arg, int status)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING)
        return;
    if (status != 0 || build_pipeline(job) != 0)
        job_shutdown(job);
}

int pgfeed_job_start(pgfeed_job_t *job, pgfeed_done_cb done_cb)
{
    if (job->state != JOB_NEW || job->ctx.err.pub.code != 0)
        return job->cancel_requested ? PGFEED_ECANCELED : UV_EINVAL;
    job->done_cb = done_cb;
    set_state(job, JOB_RUNNING);
    job->start_ns = uv_hrtime();
    if (job->opt.wait_for_db_s > 0)
        job->ctx.wait_db_until = job->start_ns + (uint64_t)(job->opt.wait_for_db_s * 1e9);
    take_sample(job);
    job->last_progress_ns = job->start_ns;
    {
        uint64_t period = SAMPLE_MS;
        if (job->opt.progress_cb && job->opt.progress_interval_ms &&
            job->opt.progress_interval_ms < period)
            period = job->opt.progress_interval_ms;
        uv_timer_start(&job->progress, progress_cb, period, period);
    }
    if (job->opt.timeout_s > 0)
        uv_timer_start(&job->timeout, timeout_cb, (uint64_t)(job->opt.timeout_s * 1000.0), 0);
    /* The rejects file first (an lstat on the threadpool), then the pipeline. */
    int rc = pgfeed__rejects_check(&job->rejects, rejects_checked, job);
    if (rc == 1)
        rc = build_pipeline(job);
    if (rc < 0)
        job_shutdown(job); /* reported through done_cb, from the loop */
    return 0;
}

/*
 * A gzip member failed its check after batches with its rows committed (streaming
 * cannot check a CRC before the member's end): say which lines, and how to redo them.
 */
static void finish_damaged_member(struct pgfeed_job *job)
{
    struct pgfeed_err_store *e = &job->ctx.err;
    if (!job->ctx.member.damaged || e->pub.code != PGFEED_EDECODE)
        return;
    job->ctx.member.damaged = 0;
    char *d;
    if (job->ctx.member.batches == 0)
        d = pgfeed__strdup_printf(
            "%s%sThe damaged member starts at compressed byte %llu, decoded byte %llu; none of "
            "its rows were committed.",
            e->detail ? e->detail : "", e->detail ? " " : "",
            (unsigned long long)job->ctx.member.raw_start,
            (unsigned long long)job->ctx.member.dec_start);
    else
        d = pgfeed__strdup_printf(
            "%s%sThe damaged member starts at compressed byte %llu, decoded byte %llu, and its "
            "checksum is known only at its end: %llu batches holding its data were committed "
            "before, input lines %llu to %llu (%llu rows, the first batch's earliest rows may "
            "come from the member before). Their values may be altered.",
            e->detail ? e->detail : "", e->detail ? " " : "",
            (unsigned long long)job->ctx.member.raw_start,
            (unsigned long long)job->ctx.member.dec_start,
            (unsigned long long)job->ctx.member.batches,
            (unsigned long long)job->ctx.member.first_line,
            (unsigned long long)job->ctx.member.last_line,
            (unsigned long long)job->ctx.member.rows);
    char *h = job->ctx.member.batches == 0
                  ? NULL
                  : strdup("Download the file again and import it with --restart --truncate, "
                           "which replaces every row; \"gzip -t\" checks a copy before an "
                           "import.");
    if (d == NULL || (job->ctx.member.batches && h == NULL)) {
        free(d);
        free(h);
        return;
    }
    free(e->detail);
    e->detail = d;
    e->pub.detail = d;
    if (h) {
        free(e->hint);
        e->hint = h;
        e->pub.hint = h;
    }
}

/*
 * A retry would have to read the source again from the checkpoint, and this one
 * (a pipe) gives its bytes once: fail now, saying what is committed and how to finish,
 * rather than skip bytes never imported (issue 11).
 */
static void fail_not_rereadable(struct pgfeed_job *job)
{
    struct pgfeed_err_store *e = &job->ctx.err;
    unsigned long long rows = job->carry.rows_committed + job->ctx.stats.rows_committed;
    unsigned long long batches = job->carry.batches_committed + job->ctx.stats.batches_committed;
    int push = job->opt.push;
    char *detail = pgfeed__strdup_printf(
        "The import stopped with \"%s\"%s%s %s is kept in memory for a retry up to "
        "%zu bytes past the last commit ((connections + 1) x --batch-bytes), and more was not "
        "committed yet. Rows committed by this run: %llu in %llu batches; the checkpoint covers "
        "input lines 1 to %llu (the header included), and the batch in flight was rolled back.",
        e->message ? e->message : "the connection was lost", e->detail ? ": " : ".",
        e->detail ? e->detail : "", push ? "Pushed input" : "Standard input",
        pgfeed__ctx_replay_cap(&job->ctx), rows, batches,
        (unsigned long long)job->ctx.lines_committed);
    char *hint = strdup(
        push ? "Write the same input from its start into a new job with resume set: it drops the "
               "committed part and imports the rest."
             : "Pipe the same input into pgfeed again with --resume: it skips the committed lines "
               "(checking that the input starts as before) and imports the rest.");
    char *msg = strdup(push ? "could not retry the import: pushed input cannot be written again"
                            : "could not retry the import: standard input cannot be read again");
    /* message and detail were escaped when stored: one line each already */
    if (detail == NULL || hint == NULL || msg == NULL) {
        free(detail);
        free(hint);
        free(msg);
        return; /* keep the original error */
    }
    free(e->message);
    free(e->detail);
    free(e->hint);
    e->message = msg;
    e->detail = detail;
    e->hint = hint;
    e->pub.message = msg;
    e->pub.detail = detail;
    e->pub.hint = hint;
    job->ctx.err_count_committed = 0;
}

static void retry_cb(uv_timer_t *t)
{
    struct pgfeed_job *job = t->data;
    job->retrying = 0;
    if (job->state != JOB_RUNNING)
        return;
    if (build_pipeline(job) != 0)
        job_shutdown(job);
}

/*
 * All handles of the failed attempt are closed: drop its stages, keep what
 * it committed in carry, and start again after a backoff. The new attempt
 * reads the checkpoint the server holds and resumes from it, exactly as
 * --resume does (never --restart or --truncate again).
 */
static void schedule_retry(struct pgfeed_job *job)
{
    struct pgfeed_stage *stages[4] = {job->source_stage, job->decoder, job->parser, job->sink};
    for (int i = 0; i < 4; i++)
        if (stages[i] && stages[i]->ops->destroy)
            stages[i]->ops->destroy(stages[i]);
    job->source_stage = job->decoder = job->parser = job->sink = NULL;

    /* Rejects of uncommitted batches come back when their rows are read again. */
    job->ctx.stats.rows_rejected -= pgfeed__rejects_drop_pending(&job->rejects);
    struct pgfeed_stats merged = job->carry;
    pgfeed__stats_merge(&merged, &job->carry, &job->ctx.stats);
    merged.bytes_total = job->ctx.stats.bytes_total;
    job->carry = merged;
    int64_t total = job->ctx.stats.bytes_total;
    memset(&job->ctx.stats, 0, sizeof job->ctx.stats);
    job->ctx.stats.bytes_total = total;
    job->base_rows = job->base_batches = 0;
    uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)job;
    double jitter = (double)(seed % 1000) / 1000.0;
    const struct pgfeed_error *e = &job->ctx.err.pub;
    if (job->ctx.waiting_db) {
        /* Nothing was done yet: the same options again, resume and restart as given. */
        double delay =
            pgfeed__backoff((unsigned)job->ctx.waits++, 0.5, 2, jitter, PGFEED_BACKOFF_LIMIT_DELAY);
        pgfeed__log(&job->ctx, PGFEED_LOG_NOTICE,
                    "waiting for the database server: %s%s%s; trying again in %.1f s",
                    e->message ? e->message : "not up", e->detail ? ": " : "",
                    e->detail ? e->detail : "", delay);
        job->retry_delay_s = delay;
    } else {
        job->carry.retries++;
        job->ctx.attempts++;
        double delay = pgfeed__backoff((unsigned)job->ctx.attempts - 1, 0.2, 30, jitter,
                                       PGFEED_BACKOFF_LIMIT_DELAY);
        pgfeed__log(&job->ctx, PGFEED_LOG_WARNING, "%s%s%s; retrying in %.1f s (retry %d of %d)",
                    e->message ? e->message : "connection lost", e->detail ? ": " : "",
                    e->detail ? e->detail : "", delay, job->ctx.attempts, job->opt.retries);
        job->retry_delay_s = delay;
        job->opt.resume = 1;
        job->opt.restart = 0;
    }
    pgfeed__err_clear(&job->ctx.err);
    job->ctx.err_count_committed = 0;
    job->status = 0;
    job->ctx.transient = 0;
    job->ctx.waiting_db = 0;
    job->retrying = 1;
    set_state(job, JOB_RUNNING);
    uv_timer_start(&job->retry, retry_cb, (uint64_t)(job->retry_delay_s * 1000.0), 0);
}

void pgfeed_job_cancel(pgfeed_job_t *job)
{
    if (job->cancel_requested)
        return;
    job->cancel_requested = 1;
    job->ctx.canceled = 1;
    if (job->state == JOB_RUNNING) {
        char detail[256];
        snprintf(
            detail, sizeof detail,
            "The batch in flight was rolled back; %llu rows in %llu batches are committed.",
            (unsigned long long)(job->carry.rows_committed + job->ctx.stats.rows_committed),
            (unsigned long long)(job->carry.batches_committed + job->ctx.stats.batches_committed));
        pgfeed__fail(&job->ctx, "job", PGFEED_ECANCELED, detail, NULL, "import canceled");
    } else if (job->state == JOB_NEW && job->ctx.err.pub.code == 0) {
        job->ctx.err.pub.code = PGFEED_ECANCELED;
        job->ctx.err.message = strdup("import canceled");
        job->ctx.err.pub.message = job->ctx.err.message ? job->ctx.err.message : "import canceled";
    }
}

void pgfeed_job_close(pgfeed_job_t *job, pgfeed_close_cb close_cb)
{
    if (job == NULL)
        return;
    job->close_cb = close_cb;
    if (job->state == JOB_RUNNING || job->state == JOB_STOPPING) {
        job->close_requested = 1;
        if (job->state == JOB_RUNNING)
            pgfeed_job_cancel(job);
        return;
    }
    if (job->state == JOB_CLOSING)
        return;
    set_state(job, JOB_CLOSING);
    uv_timer_t *timers[5] = {&job->defer, &job->progress, &job->timeout, &job->retry, &job->drain};
    for (int i = 0; i < 5; i++) {
        job->ctx.pending_closes++;
        uv_close((uv_handle_t *)timers[i], job_timer_close_cb);
    }
}

/* ---------------------------------------------------------- pushed input */

/* Still taking input: not stopped (a refused job never runs), or stopping to retry. */
static int takes_input(const struct pgfeed_job *job)
{
    if (job->cancel_requested)
        return 0;
    if (job->state == JOB_NEW)
        return job->ctx.err.pub.code == 0;
    return job->state == JOB_RUNNING || will_retry(job);
}

/* Why a write or its end is refused, or 0. */
static int write_refused(const struct pgfeed_job *job)
{
    if (!job->opt.push || job->push.ended)
        return UV_EINVAL;
    if (takes_input(job))
        return 0;
    if (job->cancel_requested)
        return PGFEED_ECANCELED;
    if (job->state == JOB_NEW)
        return UV_EINVAL; /* refused by pgfeed_job_new */
    return job->status ? job->status : UV_EPIPE;
}

int pgfeed_job_write(pgfeed_job_t *job, const void *buf, size_t len)
{
    int rc = write_refused(job);
    if (rc == 0 && buf == NULL && len > 0)
        rc = UV_EINVAL;
    return rc != 0 ? rc : pgfeed__push_write(&job->push, buf, len);
}

int pgfeed_job_write_end(pgfeed_job_t *job)
{
    int rc = write_refused(job);
    if (rc == 0)
        pgfeed__push_end(&job->push);
    return rc;
}

static void drain_timer_cb(uv_timer_t *t)
{
    struct pgfeed_job *job = t->data;
    if (takes_input(job) && !job->push.ended && job->opt.drain_cb)
        job->opt.drain_cb(job, job->opt.drain_arg);
}

/* The inbox took a write again after an EAGAIN: drain_cb from a timer of its own. */
static void push_room(void *arg)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_CLOSING)
        uv_timer_start(&job->drain, drain_timer_cb, 0, 0);
}

/* ---------------------------------------------------------- rejected rows */

/* The context's reject hook: set the row aside (rejects.c) while the import runs. */
static int reject(void *arg, const struct pgfeed_reject *r)
{
    struct pgfeed_job *job = arg;
    if (job->state != JOB_RUNNING && job->state != JOB_NEW) /* NEW: parser unit tests */
        return job->status ? job->status : PGFEED_ECANCELED;
    return pgfeed__rejects_add(&job->rejects, &job->ctx, r);
}

static int flush_rejects(void *arg, uint64_t from, uint64_t upto, void (*cb)(void *arg, int status),
                         void *cb_arg)
{
    struct pgfeed_job *job = arg;
    return pgfeed__rejects_flush(&job->rejects, from, upto, cb, cb_arg);
}

const char *pgfeed_job_rejects_path(const pgfeed_job_t *job)
{
    return pgfeed__rejects_written(&job->rejects);
}

/* --------------------------------------------------------- library init */

int pgfeed_library_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : PGFEED_EINTERNAL;
}

void pgfeed_library_cleanup(void)
{
    curl_global_cleanup();
}

/* --------------------------------------------------------- header mapping */

/* The targets (mapping.c) to the sink's COPY and, once it exists, the parser. */
static int set_targets(struct pgfeed_job *job, const size_t *idx, size_t n)
{
    size_t ncols;
    const struct pgfeed_column *cols = pgfeed__sink_columns(job->sink, &ncols);
    struct pgfeed_targets *t = &job->targets;
    int rc = pgfeed__targets_set(t, &job->ctx, cols, idx, n);
    if (rc == 0)
        rc = pgfeed__sink_set_targets(job->sink, t->idx, n, t->bin);
    if (rc == 0 && job->parser) {
        /* The header was just mapped: the checkpoint records the targets too. */
        pgfeed__parser_set_fields(job->parser, n, t->is_array, t->names);
        pgfeed__parser_set_binary(job->parser, t->bin);
        rc = update_identity(job);
    }
    return rc;
}

/* The parser's header line: mapped to the table's columns (mapping.c), or only dropped. */
static int on_header(void *arg, const char *line, size_t n)
{
    struct pgfeed_job *job = arg;
    struct pgfeed_targets *t = &job->targets;
    if (job->opt.header == PGFEED_HEADER_SKIP || job->opt.columns != NULL) {
        /* Targets were chosen from --columns or the table; the line is only dropped. */
        pgfeed__parser_set_fields(job->parser, t->n, t->is_array, t->names);
        pgfeed__parser_set_binary(job->parser, t->bin);
        return 0;
    }
    size_t ncols, *idx = NULL, nidx = 0;
    const struct pgfeed_column *cols = pgfeed__sink_columns(job->sink, &ncols);
    int rc = pgfeed__map_header(&job->ctx, cols, ncols, line, n, &idx, &nidx);
    if (rc == 0)
        rc = set_targets(job, idx, nidx);
    free(idx);
    return rc;
}

/* The sink's checkpoint row: key "SOURCE -> TABLE", options text, other stdin streams. */
static int update_identity(struct pgfeed_job *job)
{
    int is_stdin = !job->opt.push && strcmp(job->opt.source, "-") == 0;
    const char *table = pgfeed__sink_table(job->sink);
    struct pgfeed_stage *st = job->source_stage;
    const char *real = st && st->ops->real_path ? st->ops->real_path(st) : NULL;
    /* A push job is its stream's name: "push:" sets it apart from paths, URLs and stdin. */
    char *src = job->opt.push
                    ? pgfeed__strdup_printf("push:%s", job->opt.source)
                    : pgfeed__checkpoint_source_id(&job->ctx, job->opt.source, job->stdin_id, real);
    char *key = src ? pgfeed__strdup_printf("%s -> %s", src, table) : NULL;
    char *opts = pgfeed__checkpoint_options_text(&job->opt, &job->targets);
    char *others = is_stdin ? pgfeed__checkpoint_stdin_others(table) : NULL;
    int rc = UV_ENOMEM;
    if (src && key && opts && (others || !is_stdin)) {
        struct pgfeed_ckpt_identity id = {
            .key = key, .source = src, .options = opts, .others = others};
        rc = pgfeed__sink_set_identity(job->sink, &id);
    }
    free(src);
    free(key);
    free(opts);
    free(others);
    if (rc == UV_ENOMEM)
        return pgfeed__fail(&job->ctx, "job", rc, NULL, NULL, "out of memory");
    return rc;
}

static const struct pgfeed_validators *source_validators(struct pgfeed_job *job)
{
    struct pgfeed_stage *src = job->source_stage;
    if (src == NULL || src->ops->validators == NULL)
        return NULL;
    return src->ops->validators(src);
}

/* The parser ends a batch: the decoder's restart point and the source's validators go
 * with it to the sink, for its checkpoint row. */
static void batch_ending(void *arg, struct pgfeed_batch_info *bi)
{
    struct pgfeed_job *job = arg;
    bi->validators = source_validators(job);
    bi->rowmap = job->parser ? pgfeed__parser_rowmap(job->parser, bi->seq) : NULL;
    bi->restart = (struct pgfeed_buf){0};
    bi->restart_raw = 0;
    bi->has_restart =
        job->decoder && pgfeed__decoder_restart_point(job->decoder, bi->end_decoded, &bi->restart,
                                                      &bi->restart_raw) == 0;
    if (!bi->has_restart) {
        pgfeed__buf_free(&bi->restart);
        bi->restart_raw = 0;
    }
}

static int table_ready(void *arg)
{
    struct pgfeed_job *job = arg;
    pgfeed__ctx_server_wait(&job->ctx, 0);
    size_t ncols;
    pgfeed__sink_columns(job->sink, &ncols);
    int rc;
    size_t *idx = NULL, n = 0;
    if (job->opt.columns) {
        const struct pgfeed_column *cols = pgfeed__sink_columns(job->sink, &ncols);
        rc = pgfeed__map_columns_option(&job->ctx, cols, ncols, &idx, &n);
        if (rc != 0)
            return rc;
    } else {
        n = ncols;
        idx = malloc((n ? n : 1) * sizeof *idx);
        if (idx == NULL)
            return pgfeed__fail(&job->ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
    }
    rc = set_targets(job, idx, n);
    free(idx);
    if (rc == 0)
        rc = update_identity(job); /* the checkpoint is looked up by it next */
    return rc;
}

/* Batches committed past the prefix (several connections): said, as their lines are skipped. */
static void log_skipped(struct pgfeed_job *job, const struct pgfeed_checkpoint *c)
{
    for (size_t i = 0; i < c->nahead; i++)
        pgfeed__log(&job->ctx, PGFEED_LOG_NOTICE,
                    "lines %llu to %llu were committed past that line; they are skipped",
                    (unsigned long long)c->ahead[i].first, (unsigned long long)c->ahead[i].last);
}

/* The targets stored with the checkpoint, when it has them, replace the options' mapping. */
static int targets_from_checkpoint(struct pgfeed_job *job, const char *opts)
{
    size_t ncols, n, *idx;
    const struct pgfeed_column *cols = pgfeed__sink_columns(job->sink, &ncols);
    int rc = pgfeed__checkpoint_targets(&job->ctx, opts, cols, ncols, &idx, &n);
    if (rc == 0 && idx != NULL)
        rc = set_targets(job, idx, n);
    free(idx);
    return rc;
}

/* A checkpoint to resume from: its targets, its counts, and --truncate set aside. */
static int resume_from(struct pgfeed_job *job, const struct pgfeed_checkpoint *c)
{
    int rc = targets_from_checkpoint(job, c->options);
    if (rc != 0)
        return rc;
    job->base_rows = c->rows;
    job->base_batches = c->batches;
    if (c->lines > job->ctx.lines_committed)
        job->ctx.lines_committed = c->lines;
    if (job->opt.truncate) {
        /* The committed rows are part of this import: emptying the table would lose them. */
        if (job->ctx.attempts == 0)
            pgfeed__log(&job->ctx, PGFEED_LOG_NOTICE, "--truncate is ignored when resuming");
        job->opt.truncate = 0;
    }
    pgfeed__log(&job->ctx, PGFEED_LOG_NOTICE,
                "resuming after input line %llu: %llu rows in %llu batches are already committed",
                (unsigned long long)c->lines, (unsigned long long)c->rows,
                (unsigned long long)c->batches);
    log_skipped(job, c);
    return 0;
}

/* The parser, now that the targets are known; c: the checkpoint resumed from, or NULL. */
static int make_parser(struct pgfeed_job *job, const struct pgfeed_checkpoint *c)
{
    struct pgfeed_parse_config pc = {
        .format = job->opt.format,
        .delimiter = job->opt.delimiter,
        .quote = job->opt.quote,
        .null_marker = job->opt.null_marker,
        .max_line = job->opt.max_line,
        .batch_rows = job->opt.batch_rows,
        /* The byte bound matters where a batch is kept for finding refused rows. */
        .batch_bytes =
            job->opt.max_rejects > 0 && job->opt.batch_rows != 0 ? job->opt.batch_bytes : 0,
        /* A prefix of line 0 (only later batches committed) reads the header again. */
        .has_header = !(c && c->lines > 0) && job->opt.header != PGFEED_HEADER_NONE,
        .skip = c ? c->ahead : NULL,
        .nskip = c ? c->nahead : 0,
        .on_header = on_header,
        .on_header_arg = job,
        .nfields = job->targets.n,
        .is_array = job->targets.is_array,
        .field_names = job->targets.names,
        .encoding = job->opt.encoding ? pgfeed__encoding_find(job->opt.encoding) : NULL,
    };
    int rc = pgfeed__parser_new(&job->ctx, &pc, &job->parser);
    if (rc != 0)
        return pgfeed__fail(&job->ctx, "job", rc, NULL, NULL, "could not create the parser: %s",
                            pgfeed_strerror(rc));
    pgfeed__parser_set_binary(job->parser, job->targets.bin);
    job->decoder->next = job->parser;
    job->parser->prev = job->decoder;
    job->parser->next = job->sink;
    job->sink->prev = job->parser;
    return 0;
}

/* Source, decoder and parser positioned just after the checkpoint's prefix. */
static int seek_to(struct pgfeed_job *job, const struct pgfeed_checkpoint *c)
{
    struct pgfeed_stage *src = job->source_stage;
    struct pgfeed_validators expect = {c->etag, c->last_modified, c->size};
    int rc = 0;
    if (c->restart && c->restart_len && src->ops->seek) {
        /* Mid-stream: read the source from the restart point on (Range, lseek). */
        rc = src->ops->seek(src, c->raw_offset, &expect);
        if (rc == 0)
            rc = pgfeed__decoder_restart_from(job->decoder, c->restart, c->restart_len,
                                              c->decoded_offset);
        if (rc != 0)
            return rc;
        pgfeed__log(&job->ctx, PGFEED_LOG_INFO, "restarting at byte %llu of the source",
                    (unsigned long long)c->raw_offset);
    } else {
        /* Re-read from the start and discard what is committed. */
        if (src->ops->seek && (rc = src->ops->seek(src, 0, &expect)) != 0)
            return rc;
        pgfeed__decoder_skip_output(job->decoder, c->decoded_offset);
    }
    pgfeed__parser_set_position(job->parser, c->lines + 1, c->decoded_offset);
    return 0;
}

/* The sink read the checkpoint: weigh it, then start reading where it says. */
static int checkpoint_ready(void *arg)
{
    struct pgfeed_job *job = arg;
    const struct pgfeed_checkpoint *c = pgfeed__sink_checkpoint(job->sink);
    int decision = pgfeed__checkpoint_weigh(&job->ctx, c, source_validators(job));
    if (decision < 0)
        return decision;
    if (decision == PGFEED_CKPT_FINISHED) {
        sink_done(job, 0);
        return 0;
    }
    int rc = 0;
    if (decision == PGFEED_CKPT_FORGET)
        rc = pgfeed__sink_forget_checkpoint(job->sink); /* then a fresh start */
    int resume = decision == PGFEED_CKPT_RESUME;
    if (rc == 0 && resume)
        rc = resume_from(job, c);
    if (rc == 0)
        rc = update_identity(job);
    if (rc == 0)
        rc = make_parser(job, resume ? c : NULL);
    if (rc == 0 && resume && c->lines > 0)
        rc = seek_to(job, c);
    return rc != 0 ? rc : job->source_stage->ops->start(job->source_stage);
}
