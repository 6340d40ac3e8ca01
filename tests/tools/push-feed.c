/*
 * push-feed.c -- a small host for pgfeed's push source, for the integration tests: runs one
 * push job on a libuv loop and writes a file into it as an embedder would write bytes it
 * receives, in writes of seeded random sizes, honouring EAGAIN and drain_cb.
 *
 *   push-feed [options] FILE
 *     -d CONNINFO  -t TABLE  --name NAME (default: FILE)  --seed N (default 1)
 *     --max-write N (largest write, default 65536; sizes are 1..N)  -b ROWS
 *     --resume  --restart  --max-rejects N  --rejects PATH  --retries N
 *     --state-table NAME  --before-start (write until EAGAIN before pgfeed_job_start)
 *
 * The file is read whole into memory first (test inputs are small). Prints one JSON line
 * on stdout when the job is done: status, error, rows committed and rejected, bytes and
 * writes made, EAGAIN answers and drain calls, retries; log lines go to stderr. Exits 0
 * when the import succeeded, 1 when it failed, 2 on bad usage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfeed.h"

static struct host {
    char *data;
    size_t len, pos;
    uint64_t rng;
    size_t max_write;
    uint64_t writes, eagains, drains;
    int waiting_drain, ended, status;
    pgfeed_job_t *job;
} H;

static uint64_t next_rand(void)
{
    /* xorshift64* */
    H.rng ^= H.rng >> 12;
    H.rng ^= H.rng << 25;
    H.rng ^= H.rng >> 27;
    return H.rng * 2685821657736338717ull;
}

/* Writes until EAGAIN or the end of the file; ends the input after the last byte. */
static void pump(void)
{
    while (!H.ended) {
        if (H.pos == H.len) {
            int rc = pgfeed_job_write_end(H.job);
            if (rc != 0)
                fprintf(stderr, "push-feed: write_end: %s\n", pgfeed_err_name(rc));
            H.ended = 1;
            return;
        }
        size_t n = 1 + (size_t)(next_rand() % H.max_write);
        if (n > H.len - H.pos)
            n = H.len - H.pos;
        int rc = pgfeed_job_write(H.job, H.data + H.pos, n);
        if (rc == PGFEED_EAGAIN) {
            H.eagains++;
            H.waiting_drain = 1;
            return;
        }
        if (rc != 0) {
            fprintf(stderr, "push-feed: write: %s\n", pgfeed_err_name(rc));
            H.ended = 1; /* the job stopped: done_cb says why */
            return;
        }
        H.writes++;
        H.pos += n;
    }
}

static void drain_cb(pgfeed_job_t *job, void *arg)
{
    (void)job;
    (void)arg;
    H.drains++;
    if (!H.waiting_drain)
        fprintf(stderr, "push-feed: drain_cb without a refused write\n");
    H.waiting_drain = 0;
    pump();
}

static void log_cb(void *arg, int level, const char *msg)
{
    (void)arg;
    (void)level;
    fprintf(stderr, "pgfeed: %s\n", msg);
}

/* A JSON string of s (NULL: null). */
static void json_str(const char *s)
{
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
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

static void done_cb(pgfeed_job_t *job, int status)
{
    struct pgfeed_stats st;
    pgfeed_job_stats(job, &st);
    const struct pgfeed_error *e = pgfeed_job_error(job);
    H.status = status;
    printf("{\"status\": %d, \"error\": ", status);
    json_str(status ? pgfeed_err_name(status) : NULL);
    fputs(", \"message\": ", stdout);
    json_str(e->message);
    fputs(", \"detail\": ", stdout);
    json_str(e->detail);
    printf(", \"rows_committed\": %llu, \"rows_rejected\": %llu, \"batches_committed\": %llu, "
           "\"retries\": %llu, \"bytes_written\": %zu, \"writes\": %llu, \"eagain\": %llu, "
           "\"drains\": %llu, \"rejects_path\": ",
           (unsigned long long)st.rows_committed, (unsigned long long)st.rows_rejected,
           (unsigned long long)st.batches_committed, (unsigned long long)st.retries, H.pos,
           (unsigned long long)H.writes, (unsigned long long)H.eagains,
           (unsigned long long)H.drains);
    json_str(pgfeed_job_rejects_path(job));
    puts("}");
    fflush(stdout);
    pgfeed_job_close(job, NULL);
}

static int read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16;
    H.data = malloc(cap);
    size_t n;
    while (H.data && (n = fread(H.data + H.len, 1, cap - H.len, f)) > 0) {
        H.len += n;
        if (H.len == cap)
            H.data = realloc(H.data, cap *= 2);
    }
    fclose(f);
    return H.data ? 0 : -1;
}

static int usage(const char *why)
{
    fprintf(stderr, "push-feed: %s\nusage: push-feed -d CONNINFO -t TABLE [options] FILE\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    struct pgfeed_options o;
    pgfeed_options_init(&o);
    o.push = 1;
    o.drain_cb = drain_cb;
    o.log_cb = log_cb;
    o.log_level = PGFEED_LOG_INFO;
    H.rng = 1;
    H.max_write = 65536;
    const char *file = NULL;
    int before_start = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--resume") == 0)
            o.resume = 1;
        else if (strcmp(a, "--restart") == 0)
            o.restart = 1;
        else if (strcmp(a, "--before-start") == 0)
            before_start = 1;
        else if (a[0] == '-' && a[1] != '\0' && v == NULL)
            return usage("an option needs a value");
        else if (strcmp(a, "-d") == 0 && ++i)
            o.conninfo = v;
        else if (strcmp(a, "-t") == 0 && ++i)
            o.table = v;
        else if (strcmp(a, "--name") == 0 && ++i)
            o.source = v;
        else if (strcmp(a, "--seed") == 0 && ++i)
            H.rng = strtoull(v, NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
        else if (strcmp(a, "--max-write") == 0 && ++i)
            H.max_write = strtoull(v, NULL, 10);
        else if (strcmp(a, "-b") == 0 && ++i)
            o.batch_rows = strtoull(v, NULL, 10);
        else if (strcmp(a, "--max-rejects") == 0 && ++i)
            o.max_rejects = strtoull(v, NULL, 10);
        else if (strcmp(a, "--rejects") == 0 && ++i)
            o.rejects_path = v;
        else if (strcmp(a, "--retries") == 0 && ++i)
            o.retries = atoi(v);
        else if (strcmp(a, "--state-table") == 0 && ++i)
            o.state_table = v;
        else if (a[0] == '-')
            return usage("unknown option");
        else
            file = a;
    }
    if (file == NULL || H.max_write == 0)
        return usage("no FILE given, or --max-write 0");
    if (o.source == NULL)
        o.source = file;
    if (read_file(file) != 0 || pgfeed_library_init() != 0)
        return 1;
    uv_loop_t *loop = uv_default_loop();
    int rc = pgfeed_job_new(loop, &o, &H.job);
    if (rc == 0 && before_start)
        pump();
    if (rc == 0)
        rc = pgfeed_job_start(H.job, done_cb);
    if (rc != 0) {
        const struct pgfeed_error *e = H.job ? pgfeed_job_error(H.job) : NULL;
        fprintf(stderr, "push-feed: %s\n", e && e->message ? e->message : pgfeed_strerror(rc));
        if (H.job)
            pgfeed_job_close(H.job, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        return 1;
    }
    if (!before_start)
        pump();
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    pgfeed_library_cleanup();
    free(H.data);
    return H.status == 0 ? 0 : 1;
}
