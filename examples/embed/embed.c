/*
 * embed.c -- a libuv service that runs pgfeed imports on its own loop, next to its own work.
 *
 * What a service embedding libpgfeed looks like: one loop, one thread. Beside the imports the
 * loop runs a 10 ms timer that records how late each tick is, and a tiny TCP echo server on
 * 127.0.0.1 with a client of its own that sends one ping a tick and times the echo. At once,
 * on that loop and sharing one HTTP context:
 *
 *   file    --file PATH     a local file                                  into PREFIX_file
 *   url     --url URL       an HTTP(S) URL                                into PREFIX_url
 *   push    --push PATH     bytes the service already has, written into    into PREFIX_push
 *                           the job with pgfeed_job_write() (here read
 *                           from PATH with uv_fs_read(), as an upload
 *                           would arrive), honouring EAGAIN and drain_cb
 *   cancel  --cancel SRC    a fourth import (path or URL), canceled        into PREFIX_cancel
 *                           --cancel-after-ms after the start
 *
 * Any of them may be left out. When every import has ended, the program closes everything,
 * runs the loop dry, closes it and prints one JSON line: each import's status, rows and
 * error; the timer's ticks and worst lateness; the echo pings and worst round trip. It
 * exits 0 when the loop closed cleanly and every import ended as asked (the first three
 * imported, the fourth canceled), else 1. Build: meson builds it as examples/embed/embed;
 * outside meson, `cc embed.c $(pkg-config --cflags --libs pgfeed)`.
 *
 *   embed --db CONNINFO [--prefix embed] [--file PATH] [--url URL] [--push PATH]
 *         [--cancel SRC --cancel-after-ms N] [--batch-rows N] [--connections N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pgfeed.h>

#define TICK_MS    10
#define PUSH_CHUNK (64 * 1024)

enum { IMP_FILE, IMP_URL, IMP_PUSH, IMP_CANCEL, NIMPORTS };
static const char *const imp_names[NIMPORTS] = {"file", "url", "push", "cancel"};

struct app;

struct import {
    struct app *app;
    const char *name;
    const char *source;
    char table[128];
    pgfeed_job_t *job;
    int started, ended, closed;
    int status;
    struct pgfeed_stats st;
    char error[512];
    /* push: the bytes come from a file read with uv_fs_read, one chunk at a time */
    uv_fs_t fs;
    uv_file fd;
    char *chunk;
    size_t chunk_len; /* bytes read and not yet taken by the job */
    int reading, eof, waiting_drain;
};

struct app {
    uv_loop_t loop;
    const char *db;
    uint64_t batch_rows;
    int connections;
    uint64_t cancel_after_ms;
    pgfeed_http_t *http;
    struct import imp[NIMPORTS];
    int running; /* imports not ended */

    uv_timer_t tick;
    uint64_t last_tick_ns, ticks, worst_late_ns;
    uint64_t last_cpu_ns, worst_busy_ns; /* the loop thread's CPU time between two ticks */
    uv_timer_t cancel_timer;

    uv_tcp_t server, client, served;
    int served_open;
    uv_connect_t connect_req;
    uint64_t ping_sent_ns, pings, worst_rtt_ns;
    int ping_out; /* a ping is on its way */
    char rbuf[64];
};

/* ------------------------------------------------------------ the service's own work */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Lateness: how much longer than 10 ms the gap since the last tick was (the loop was held,
 * by work or by a blocking call, or the machine did not run us). Busy: the CPU time the
 * loop's thread spent between the two ticks, which no other process's load inflates: the
 * longest the loop was held by work alone.
 */
static void tick_cb(uv_timer_t *t)
{
    struct app *a = t->data;
    uint64_t now = uv_hrtime(), cpu = thread_cpu_ns();
    if (a->last_tick_ns) {
        uint64_t gap = now - a->last_tick_ns, want = (uint64_t)TICK_MS * 1000000;
        if (gap > want && gap - want > a->worst_late_ns)
            a->worst_late_ns = gap - want;
        if (cpu - a->last_cpu_ns > a->worst_busy_ns)
            a->worst_busy_ns = cpu - a->last_cpu_ns;
    }
    a->last_tick_ns = now;
    a->last_cpu_ns = cpu;
    a->ticks++;
    if (!a->ping_out && a->client.data) {
        static char ping[] = "ping";
        uv_buf_t b = uv_buf_init(ping, 4);
        if (uv_try_write((uv_stream_t *)&a->client, &b, 1) == 4) {
            a->ping_out = 1;
            a->ping_sent_ns = now;
        }
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct app *a = h->data;
    (void)suggested;
    *buf = uv_buf_init(a->rbuf, sizeof a->rbuf);
}

/* The server's side: whatever comes in goes straight back. */
static void served_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        uv_read_stop(s);
        return;
    }
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
    uv_try_write(s, &b, 1); /* 4 bytes into an idle socket: taken whole */
}

/* The client's side: the echo of our ping. */
static void client_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct app *a = s->data;
    (void)buf;
    if (n <= 0 || !a->ping_out)
        return;
    uint64_t rtt = uv_hrtime() - a->ping_sent_ns;
    if (rtt > a->worst_rtt_ns)
        a->worst_rtt_ns = rtt;
    a->pings++;
    a->ping_out = 0;
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct app *a = server->data;
    if (status != 0 || a->served_open)
        return;
    uv_tcp_init(&a->loop, &a->served);
    a->served.data = a;
    a->served_open = 1;
    if (uv_accept(server, (uv_stream_t *)&a->served) == 0)
        uv_read_start((uv_stream_t *)&a->served, alloc_cb, served_read_cb);
}

static void connected_cb(uv_connect_t *req, int status)
{
    struct app *a = req->data;
    if (status == 0) {
        a->client.data = a;
        uv_read_start((uv_stream_t *)&a->client, alloc_cb, client_read_cb);
    }
}

static int echo_start(struct app *a)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&a->loop, &a->server);
    uv_tcp_init(&a->loop, &a->client);
    a->server.data = a;
    a->client.data = NULL; /* set once connected */
    int rc = uv_tcp_bind(&a->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->server, 4, connection_cb);
    if (rc == 0)
        rc = uv_tcp_getsockname(&a->server, (struct sockaddr *)&bound, &len);
    if (rc == 0) {
        a->connect_req.data = a;
        rc = uv_tcp_connect(&a->connect_req, &a->client, (const struct sockaddr *)&bound,
                            connected_cb);
    }
    return rc;
}

/* ------------------------------------------------------------ the imports */

static void log_cb(void *arg, int level, const char *msg)
{
    struct import *im = arg;
    if (level <= PGFEED_LOG_WARNING)
        fprintf(stderr, "embed: %s: %s\n", im->name, msg);
}

static void all_ended(struct app *a);

static void done_cb(pgfeed_job_t *job, int status)
{
    struct import *im = pgfeed_job_get_data(job);
    im->status = status;
    im->ended = 1;
    pgfeed_job_stats(job, &im->st);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    if (status != 0 && e->message)
        snprintf(im->error, sizeof im->error, "%s", e->message);
    if (--im->app->running == 0)
        all_ended(im->app);
}

static void cancel_cb(uv_timer_t *t)
{
    struct app *a = t->data;
    struct import *im = &a->imp[IMP_CANCEL];
    if (im->started && !im->ended)
        pgfeed_job_cancel(im->job);
}

/* ------------------------------------------------------------ pushed bytes */

/*
 * The push import: the service has the bytes (here it reads them from a file with uv_fs_read,
 * as an upload would arrive) and writes each chunk into the job. A write is all or nothing:
 * on PGFEED_EAGAIN the chunk is kept and written again from drain_cb; the next read starts
 * only once the job has taken the last chunk, so the service holds one chunk at most.
 */
static void push_read_next(struct import *im);

static void push_offer(struct import *im)
{
    int rc = im->eof ? pgfeed_job_write_end(im->job)
                     : pgfeed_job_write(im->job, im->chunk, im->chunk_len);
    if (rc == PGFEED_EAGAIN)
        im->waiting_drain = 1; /* drain_cb comes back here with the same chunk */
    else if (rc == 0 && !im->eof)
        push_read_next(im);
    /* else the input has ended, or the job stopped (done_cb says how) */
}

static void push_read_cb(uv_fs_t *req)
{
    struct import *im = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    im->reading = 0;
    if (im->ended)
        return; /* the job stopped meanwhile */
    if (n < 0) {
        fprintf(stderr, "embed: push: read failed: %s\n", uv_strerror((int)n));
        pgfeed_job_cancel(im->job);
        return;
    }
    im->chunk_len = (size_t)n;
    im->eof = n == 0;
    push_offer(im);
}

static void push_read_next(struct import *im)
{
    uv_buf_t b = uv_buf_init(im->chunk, PUSH_CHUNK);
    im->fs.data = im;
    if (uv_fs_read(&im->app->loop, &im->fs, im->fd, &b, 1, -1, push_read_cb) == 0)
        im->reading = 1;
}

static void drain_cb(pgfeed_job_t *job, void *arg)
{
    struct import *im = arg;
    (void)job;
    if (im->waiting_drain) {
        im->waiting_drain = 0;
        push_offer(im);
    }
}

/* Opens the file the pushed bytes come from (synchronously: before the loop runs). */
static int push_open(struct import *im)
{
    uv_fs_t req;
    im->fd = uv_fs_open(&im->app->loop, &req, im->source, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (im->fd < 0) {
        fprintf(stderr, "embed: push: %s: %s\n", im->source, uv_strerror(im->fd));
        return im->fd;
    }
    im->chunk = malloc(PUSH_CHUNK);
    return im->chunk ? 0 : UV_ENOMEM;
}

static void push_close(struct import *im)
{
    uv_fs_t req;
    if (im->fd > 0)
        uv_fs_close(&im->app->loop, &req, im->fd, NULL);
    free(im->chunk);
}

static int import_start(struct app *a, struct import *im)
{
    struct pgfeed_options opt;
    pgfeed_options_init(&opt);
    opt.source = im->source;
    opt.conninfo = a->db;
    opt.table = im->table;
    opt.http = a->http;
    opt.restart = 1; /* a leftover checkpoint of an earlier run is forgotten */
    opt.log_cb = log_cb;
    opt.log_arg = im;
    opt.log_level = PGFEED_LOG_WARNING;
    opt.connections = a->connections;
    if (a->batch_rows)
        opt.batch_rows = a->batch_rows;
    if (im == &a->imp[IMP_PUSH]) {
        int rc = push_open(im);
        if (rc != 0)
            return rc;
        opt.push = 1; /* source is then the stream's name: messages, checkpoint key */
        opt.drain_cb = drain_cb;
        opt.drain_arg = im;
    }
    int rc = pgfeed_job_new(&a->loop, &opt, &im->job);
    if (rc == 0) {
        pgfeed_job_set_data(im->job, im);
        rc = pgfeed_job_start(im->job, done_cb);
    }
    if (rc != 0) {
        const struct pgfeed_error *e = im->job ? pgfeed_job_error(im->job) : NULL;
        fprintf(stderr, "embed: %s: %s\n", im->name,
                e && e->message ? e->message : pgfeed_strerror(rc));
        return rc;
    }
    im->started = 1;
    a->running++;
    if (opt.push)
        push_read_next(im);
    return 0;
}

/* ------------------------------------------------------------ the end */

static void job_closed_cb(pgfeed_job_t *job)
{
    struct import *im = pgfeed_job_get_data(job);
    im->closed = 1;
}

/* Every import has ended: close the jobs, the HTTP context and the service's handles. */
static void all_ended(struct app *a)
{
    for (int i = 0; i < NIMPORTS; i++)
        if (a->imp[i].job)
            pgfeed_job_close(a->imp[i].job, job_closed_cb);
    pgfeed_http_close(a->http, NULL);
    uv_close((uv_handle_t *)&a->tick, NULL);
    uv_close((uv_handle_t *)&a->cancel_timer, NULL);
    uv_close((uv_handle_t *)&a->server, NULL);
    uv_close((uv_handle_t *)&a->client, NULL);
    if (a->served_open)
        uv_close((uv_handle_t *)&a->served, NULL);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void report(const struct app *a, int loop_closed)
{
    printf("{\"imports\":[");
    int first = 1;
    for (int i = 0; i < NIMPORTS; i++) {
        const struct import *im = &a->imp[i];
        if (!im->source)
            continue;
        printf("%s{\"name\":\"%s\",\"status\":", first ? "" : ",", im->name);
        json_string(im->started ? pgfeed_err_name(im->status) : "not started");
        printf(",\"code\":%d,\"rows_committed\":%" PRIu64 ",\"rows_read\":%" PRIu64
               ",\"closed\":%s,\"error\":",
               im->status, im->st.rows_committed, im->st.rows_read, im->closed ? "true" : "false");
        json_string(im->error);
        putchar('}');
        first = 0;
    }
    printf("],\"timer\":{\"ticks\":%" PRIu64 ",\"worst_late_ms\":%.3f,\"worst_busy_ms\":%.3f},"
           "\"echo\":{\"pings\":%" PRIu64 ",\"worst_rtt_ms\":%.3f},\"loop_closed\":%s}\n",
           a->ticks, a->worst_late_ns / 1e6, a->worst_busy_ns / 1e6, a->pings,
           a->worst_rtt_ns / 1e6, loop_closed ? "true" : "false");
    fflush(stdout);
}

static int outcome_ok(const struct app *a)
{
    for (int i = 0; i < NIMPORTS; i++) {
        const struct import *im = &a->imp[i];
        int want = i == IMP_CANCEL ? PGFEED_ECANCELED : 0;
        if (im->source && (!im->started || !im->closed || im->status != want))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ main */

static int usage(void)
{
    fprintf(stderr, "usage: embed --db CONNINFO [--prefix P] [--file PATH] [--url URL] "
                    "[--push PATH] [--cancel SRC] [--cancel-after-ms N] [--batch-rows N] "
                    "[--connections N]\n");
    return 2;
}

static int parse_args(struct app *a, const char **prefix, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(k, "--db") == 0)
            a->db = v;
        else if (strcmp(k, "--prefix") == 0)
            *prefix = v;
        else if (strcmp(k, "--file") == 0)
            a->imp[IMP_FILE].source = v;
        else if (strcmp(k, "--url") == 0)
            a->imp[IMP_URL].source = v;
        else if (strcmp(k, "--push") == 0)
            a->imp[IMP_PUSH].source = v;
        else if (strcmp(k, "--cancel") == 0)
            a->imp[IMP_CANCEL].source = v;
        else if (strcmp(k, "--cancel-after-ms") == 0)
            a->cancel_after_ms = strtoull(v, NULL, 10);
        else if (strcmp(k, "--batch-rows") == 0)
            a->batch_rows = strtoull(v, NULL, 10);
        else if (strcmp(k, "--connections") == 0)
            a->connections = atoi(v);
        else
            return -1;
    }
    return a->db ? 0 : -1;
}

int main(int argc, char **argv)
{
    static struct app app;
    struct app *a = &app;
    const char *prefix = "embed";
    a->connections = 1;
    if (parse_args(a, &prefix, argc, argv) != 0)
        return usage();
    if (pgfeed_library_init() != 0 || uv_loop_init(&a->loop) != 0 ||
        pgfeed_http_new(&a->loop, &a->http) != 0) {
        fprintf(stderr, "embed: could not initialise\n");
        return 1;
    }
    uv_timer_init(&a->loop, &a->tick);
    uv_timer_init(&a->loop, &a->cancel_timer);
    a->tick.data = a->cancel_timer.data = a;
    uv_timer_start(&a->tick, tick_cb, TICK_MS, TICK_MS);
    if (echo_start(a) != 0)
        fprintf(stderr, "embed: the echo server did not start\n");

    for (int i = 0; i < NIMPORTS; i++) {
        struct import *im = &a->imp[i];
        im->app = a;
        im->name = imp_names[i];
        snprintf(im->table, sizeof im->table, "%s_%s", prefix, im->name);
        if (im->source && import_start(a, im) != 0)
            break;
    }
    if (a->imp[IMP_CANCEL].started)
        uv_timer_start(&a->cancel_timer, cancel_cb, a->cancel_after_ms, 0);
    if (a->running == 0)
        all_ended(a); /* nothing started: close and report */

    uv_run(&a->loop, UV_RUN_DEFAULT);
    push_close(&a->imp[IMP_PUSH]);
    int loop_closed = uv_loop_close(&a->loop) == 0;
    report(a, loop_closed);
    pgfeed_library_cleanup();
    return loop_closed && outcome_ok(a) ? 0 : 1;
}
