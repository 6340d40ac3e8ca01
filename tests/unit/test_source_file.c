/*
 * test_source_file.c -- the file source (source_file.c) on a real libuv loop.
 *
 * The source reads into a fake decoder that keeps every byte, answers EAGAIN on request
 * (the room comes back from a 0 ms timer, as job.c's deferred resume does) and checks the
 * stage contract: a refused chunk is offered again unchanged, nothing is written while a
 * resume is owed or after finish, finish is taken once. The context is the test's own
 * struct pgfeed_ctx, with hooks that count failures and closes, stop the source on a
 * failure (as job.c does) and run deferred resumes from a timer.
 *
 * Regular files: sizes around the chunk size, empty, EAGAIN on writes and on finish, a
 * failure downstream that stops reading, at most READS_PER_TICK chunks per loop turn, the
 * validators; seek for a resume (a path) and for a retry (a descriptor already read to its
 * end); a missing path and a directory. Pipes, fed by a writer on the same loop or written
 * beforehand: all bytes then EOF, the prefetch (stdin's fingerprint) and a seek after it, a
 * resumed pipe that reads and drops the committed bytes and one that ends too soon, the
 * bytes kept for a retry and the retry that replays them before reading on, a replay whose
 * bytes were given up. /dev/null, which epoll refuses. Every case stops the source, waits
 * for its one handle close, and the loop closes cleanly at the end.
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

#define READS_PER_TICK 8 /* source_file.c's */

static uv_loop_t loop;
static char dir[64];
static char what[256];

/* A label for the next assertion: "case: check". */
static const char *lbl(const char *name, const char *check)
{
    snprintf(what, sizeof what, "%s: %s", name, check);
    return what;
}

/* Deterministic bytes with every value in them, line ends included. */
static char *make_data(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    uint32_t x = 2463534242u + seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)(i % 61 == 60 ? '\n' : x >> 24);
    }
    return p;
}

static void write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* ------------------------------------------------------------ the context */

static struct pgfeed_options opt;
static struct pgfeed_ctx ctx;
static unsigned failed_calls, closed_calls;
static struct pgfeed_stage *running_source; /* stopped by a failure, as job.c does */
static uv_timer_t defer;
static struct pgfeed_stage *deferred;

static void hook_failed(void *owner, int code)
{
    (void)owner;
    (void)code;
    failed_calls++;
    if (running_source)
        running_source->ops->stop(running_source);
}

static void hook_closed(void *owner)
{
    (void)owner;
    closed_calls++;
}

static void defer_cb(uv_timer_t *t)
{
    (void)t;
    struct pgfeed_stage *s = deferred;
    deferred = NULL;
    if (s && s->ops->resume)
        s->ops->resume(s);
}

static void hook_schedule_resume(void *owner, struct pgfeed_stage *s)
{
    (void)owner;
    deferred = s;
    uv_timer_start(&defer, defer_cb, 0, 0);
}

/* A fresh context (a job's, not started), chunk_size bytes per read. */
static void ctx_reset(size_t chunk)
{
    pgfeed__ctx_free(&ctx);
    memset(&ctx, 0, sizeof ctx);
    pgfeed_options_init(&opt);
    opt.chunk_size = chunk;
    opt.batch_bytes = 16u << 20; /* job.c's default: the replay bound is 2 x this */
    ctx.loop = &loop;
    ctx.opt = &opt;
    ctx.display = "test";
    ctx.stats.bytes_total = -1;
    ctx.running = 1;
    ctx.hooks = (struct pgfeed_ctx_hooks){
        .failed = hook_failed, .closed = hook_closed, .schedule_resume = hook_schedule_resume};
    failed_calls = closed_calls = 0;
}

/* The source made and opened (its open op runs on the threadpool): 0 or the failure. */
static int open_status;
static int open_done;

static void opened_cb(void *arg, int status)
{
    (void)arg;
    open_status = status;
    open_done = 1;
}

static int source_new(const char *path, int fd, struct pgfeed_stage **out)
{
    int rc = pgfeed__source_file_new(&ctx, path, fd, out);
    if (rc != 0)
        return rc;
    open_done = 0;
    rc = (*out)->ops->open(*out, opened_cb, NULL);
    while (rc == 0 && !open_done)
        uv_run(&loop, UV_RUN_ONCE);
    return rc != 0 ? rc : open_status;
}

/* ----------------------------------------------------- the fake decoder */

static struct fake {
    struct pgfeed_stage base;
    char *got;
    size_t got_n, got_cap;
    unsigned writes;         /* write calls, refused ones included */
    unsigned eagains;        /* EAGAIN answers, finish's included */
    unsigned eagain_every;   /* refuse every k-th write (0: never) */
    unsigned finish_eagains; /* refuse finish this many times first */
    size_t fail_after;       /* fail the write that would take more than this (0: never) */
    int failed;
    unsigned finish_calls, finished;
    size_t max_write;
    int owe; /* answered EAGAIN: the source's resume is owed */
    char *refused;
    size_t refused_n;
    const char *violation;
} fk;
static uv_timer_t room; /* gives the room back: resumes the source */

static void violate(const char *v)
{
    if (fk.violation == NULL)
        fk.violation = v;
}

static void room_cb(uv_timer_t *t)
{
    (void)t;
    fk.owe = 0;
    pgfeed__stage_resume_upstream(&fk.base);
}

static int refuse(void)
{
    fk.owe = 1;
    fk.eagains++;
    uv_timer_start(&room, room_cb, 0, 0);
    return PGFEED_EAGAIN;
}

static int fake_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    (void)s;
    fk.writes++;
    if (fk.owe)
        violate("write while a resume is owed");
    if (fk.finished)
        violate("write after finish");
    if (fk.failed)
        violate("write after the failure");
    if (n == 0)
        violate("empty write");
    if (n > fk.max_write)
        fk.max_write = n;
    if (fk.refused) {
        if (n != fk.refused_n || memcmp(p, fk.refused, n) != 0)
            violate("the refused chunk did not come again unchanged");
        free(fk.refused);
        fk.refused = NULL;
    } else if (fk.eagain_every && fk.writes % fk.eagain_every == 0) {
        fk.refused = malloc(n);
        memcpy(fk.refused, p, n);
        fk.refused_n = n;
        return refuse();
    }
    if (fk.fail_after && fk.got_n + n > fk.fail_after) {
        fk.failed = 1;
        return pgfeed__fail(&ctx, "decoder", PGFEED_EDECODE, NULL, NULL, "refused by the test");
    }
    if (fk.got_n + n > fk.got_cap) {
        fk.got_cap = (fk.got_n + n) * 2;
        fk.got = realloc(fk.got, fk.got_cap);
    }
    memcpy(fk.got + fk.got_n, p, n);
    fk.got_n += n;
    return 0;
}

static int fake_finish(struct pgfeed_stage *s)
{
    (void)s;
    fk.finish_calls++;
    if (fk.owe)
        violate("finish while a resume is owed");
    if (fk.finished)
        violate("finish taken twice");
    if (fk.finish_eagains > 0) {
        fk.finish_eagains--;
        return refuse();
    }
    fk.finished++;
    return 0;
}

static void fake_resume(struct pgfeed_stage *s)
{
    (void)s;
    violate("the source resumed its downstream");
}

static const struct pgfeed_stage_ops fake_ops = {
    .name = "decoder",
    .write = fake_write,
    .finish = fake_finish,
    .resume = fake_resume,
};

static void fake_reset(void)
{
    free(fk.got);
    free(fk.refused);
    memset(&fk, 0, sizeof fk);
    fk.got_cap = 64;
    fk.got = malloc(fk.got_cap); /* never NULL, for memcmp */
    fk.base.ops = &fake_ops;
    fk.base.ctx = &ctx;
}

/* ------------------------------------------------------------- driving */

static unsigned ticks; /* loop turns, counted by an unreferenced check handle */
static uv_check_t tick;

static void tick_cb(uv_check_t *h)
{
    (void)h;
    ticks++;
}

/* Links s to the fake, as job.c links it to the decoder. */
static void attach(struct pgfeed_stage *s)
{
    s->next = &fk.base;
    fk.base.prev = s;
    running_source = s;
}

/*
 * Stops s (a failure may have stopped it already), waits for its closes (a pipe's or
 * device's one handle; a regular file has none, only the close reference a read still in
 * flight holds), none pending, destroys it.
 */
static void close_source(const char *name, struct pgfeed_stage *s)
{
    s->ops->stop(s);
    s->ops->stop(s); /* twice is harmless */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (ctx.stats.bytes_total < 0) /* not a regular file */
        ASSERT_EQ_INT(closed_calls, 1, lbl(name, "one handle closed"));
    else
        ASSERT_TRUE(closed_calls <= 1, "%s: no handle, at most a read's close (%u)", name,
                    closed_calls);
    closed_calls = 0;
    ASSERT_EQ_INT(ctx.pending_closes, 0, lbl(name, "no close pending"));
    uv_timer_stop(&defer);
    deferred = NULL;
    running_source = NULL;
    s->ops->destroy(s);
}

/* Starts s and runs the loop until nothing is active (read to the end, or failed). */
static void run(const char *name, struct pgfeed_stage *s)
{
    attach(s);
    ticks = 0;
    ASSERT_EQ_INT(s->ops->start(s), 0, lbl(name, "start"));
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* The fake got want[0, n) and one finish, without breaking the contract. */
static void check_got(const char *name, const char *want, size_t n)
{
    ASSERT_EQ_MEM(fk.got, fk.got_n, want, n, lbl(name, "bytes delivered in order, once"));
    ASSERT_EQ_INT(fk.finished, 1, lbl(name, "finish taken once"));
    ASSERT_TRUE(fk.violation == NULL, "%s: contract kept (%s)", name,
                fk.violation ? fk.violation : "ok");
    ASSERT_EQ_INT(failed_calls, 0, lbl(name, "no failure"));
}

/* -------------------------------------------------------- regular files */

static const struct file_case {
    const char *name;
    size_t size, chunk;
    unsigned eagain_every, finish_eagains;
} file_cases[] = {
    {"empty file", 0, 4096, 0, 0},
    {"empty file, finish refused twice", 0, 4096, 0, 2},
    {"one byte", 1, 4096, 0, 0},
    {"exactly one chunk", 4096, 4096, 0, 0},
    {"chunks and a tail", 100003, 4096, 0, 0},
    {"24 whole chunks", 24 * 4096, 4096, 0, 0},
    {"EAGAIN on every 3rd write", 100003, 4096, 3, 0},
    {"EAGAIN on every write", 50000, 1000, 1, 0},
    {"EAGAIN on writes and finish", 20000, 777, 2, 3},
};

static void test_regular_file(const struct file_case *c)
{
    char path[128];
    snprintf(path, sizeof path, "%s/regular.tsv", dir);
    char *data = make_data(c->size, (unsigned)c->size);
    write_file(path, data, c->size);
    struct stat st;
    stat(path, &st);
    char mtime[64];
    snprintf(mtime, sizeof mtime, "%lld.%09ld", (long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec);

    ctx_reset(c->chunk);
    fake_reset();
    fk.eagain_every = c->eagain_every;
    fk.finish_eagains = c->finish_eagains;
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(path, -1, &s), 0, lbl(c->name, "new"));
    ASSERT_EQ_INT(ctx.stats.bytes_total, c->size, lbl(c->name, "bytes_total is the size"));
    const struct pgfeed_validators *v = s->ops->validators(s);
    ASSERT_TRUE(v && v->size == (int64_t)c->size && v->etag == NULL, "%s: validators size",
                c->name);
    ASSERT_EQ_STR(v ? v->last_modified : NULL, mtime, lbl(c->name, "validators mtime"));
    ASSERT_EQ_INT(s->ops->rereadable(s), 1, lbl(c->name, "a file can be read again"));
    run(c->name, s);
    check_got(c->name, data, c->size);
    size_t chunks = (c->size + c->chunk - 1) / c->chunk;
    ASSERT_EQ_INT(fk.writes, chunks + (fk.eagains - (fk.finish_calls - 1)),
                  lbl(c->name, "one write per chunk, plus each refused one again"));
    ASSERT_EQ_INT(fk.finish_calls, 1 + c->finish_eagains, lbl(c->name, "finish calls"));
    ASSERT_TRUE(fk.max_write <= c->chunk, "%s: no write above the chunk size (%zu)", c->name,
                fk.max_write);
    if (c->eagain_every && chunks)
        ASSERT_TRUE(fk.eagains >= chunks / c->eagain_every, "%s: EAGAIN was answered (%u)", c->name,
                    fk.eagains);
    if (!c->eagain_every)
        ASSERT_TRUE(ticks >= chunks / READS_PER_TICK, "%s: the loop turned %u times for %zu chunks",
                    c->name, ticks, chunks);
    ASSERT_EQ_INT(ctx.stats.bytes_read, c->size, lbl(c->name, "bytes_read"));
    close_source(c->name, s);
    free(data);
}

/* A failure downstream: the source stops reading at once and nothing else comes. */
static void test_failure_stops_reading(void)
{
    const char *name = "failure downstream";
    char path[128];
    snprintf(path, sizeof path, "%s/fail.tsv", dir);
    size_t n = 100000;
    char *data = make_data(n, 7);
    write_file(path, data, n);
    ctx_reset(4096);
    fake_reset();
    fk.fail_after = 10000;
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(path, -1, &s), 0, lbl(name, "new"));
    run(name, s);
    ASSERT_EQ_INT(failed_calls, 1, lbl(name, "failed once"));
    ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_EDECODE, lbl(name, "the downstream's error stays"));
    ASSERT_EQ_MEM(fk.got, fk.got_n, data, 8192, lbl(name, "the chunks before it delivered"));
    ASSERT_EQ_INT(fk.finish_calls, 0, lbl(name, "no finish"));
    ASSERT_TRUE(fk.violation == NULL, "%s: nothing after the failure (%s)", name,
                fk.violation ? fk.violation : "ok");
    ASSERT_EQ_INT(ctx.stats.bytes_read, 8192, lbl(name, "bytes_read counts delivered bytes"));
    close_source(name, s);
    free(data);
}

/* A resume reads a file from the checkpoint's byte on. */
static void test_file_seek(void)
{
    static const size_t offsets[] = {0, 1, 4095, 4096, 5000, 99999, 100000, 100001, 200000};
    char path[128];
    snprintf(path, sizeof path, "%s/seek.tsv", dir);
    size_t n = 100001;
    char *data = make_data(n, 3);
    write_file(path, data, n);
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        size_t k = offsets[i];
        char name[64];
        snprintf(name, sizeof name, "file seek to %zu", k);
        ctx_reset(4096);
        fake_reset();
        fk.eagain_every = 5;
        struct pgfeed_stage *s = NULL;
        ASSERT_EQ_INT(source_new(path, -1, &s), 0, lbl(name, "new"));
        ASSERT_EQ_INT(s->ops->seek(s, k, NULL), 0, lbl(name, "seek"));
        ASSERT_EQ_INT(ctx.stats.bytes_read, k, lbl(name, "bytes before the offset count as read"));
        run(name, s);
        size_t from = k < n ? k : n;
        check_got(name, data + from, n - from);
        ASSERT_EQ_INT(ctx.stats.bytes_read, n > k ? n : k, lbl(name, "bytes_read at the end"));
        close_source(name, s);
    }
    free(data);
}

/* ------------------------------------------- regular files on the threadpool */

/* Holds libuv's threadpool (one thread: UV_THREADPOOL_SIZE=1, set in main) until released. */
static uv_sem_t pool_sem;
static uv_work_t pool_work;
static int pool_held;

static void pool_work_cb(uv_work_t *w)
{
    (void)w;
    uv_sem_wait(&pool_sem);
}

static void pool_done_cb(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    pool_held = 0;
}

static void pool_hold(void)
{
    pool_held = 1;
    uv_queue_work(&loop, &pool_work, pool_work_cb, pool_done_cb);
}

static void pool_release(void)
{
    uv_sem_post(&pool_sem);
}

/* Turns the loop without waiting: timers, idle handles and landed requests run. */
static void turn_loop(unsigned n)
{
    while (n-- > 0)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/*
 * Every read of a regular file goes through the threadpool: while the pool is held, the
 * loop turns and nothing comes; released, all of it does. Then a stop while a read waits
 * in the pool: it is cancelled, holds one close until it returns, delivers nothing.
 */
static void test_file_on_threadpool(void)
{
    const char *name = "file read on the threadpool";
    char path[128];
    snprintf(path, sizeof path, "%s/pool.tsv", dir);
    size_t n = 50000;
    char *data = make_data(n, 29);
    write_file(path, data, n);
    ctx_reset(4096);
    fake_reset();
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(path, -1, &s), 0, lbl(name, "new"));
    pool_hold();
    attach(s);
    ASSERT_EQ_INT(s->ops->start(s), 0, lbl(name, "start"));
    turn_loop(50);
    ASSERT_EQ_INT(fk.writes + fk.finish_calls, 0, lbl(name, "nothing while the pool is held"));
    pool_release();
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(pool_held, 0, lbl(name, "the pool was released"));
    check_got(name, data, n);
    ASSERT_EQ_INT(fk.writes, (n + 4095) / 4096, lbl(name, "one write per chunk"));
    close_source(name, s);

    name = "stop during a pending read";
    ctx_reset(4096);
    fake_reset();
    ASSERT_EQ_INT(source_new(path, -1, &s), 0, lbl(name, "new"));
    pool_hold();
    attach(s);
    ASSERT_EQ_INT(s->ops->start(s), 0, lbl(name, "start"));
    turn_loop(5);
    s->ops->stop(s);
    ASSERT_EQ_INT(ctx.pending_closes, 1, lbl(name, "the read in flight holds a close"));
    ASSERT_EQ_INT(closed_calls, 0, lbl(name, "not returned yet"));
    pool_release();
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(closed_calls, 1, lbl(name, "the read returned its close"));
    ASSERT_EQ_INT(fk.writes + fk.finish_calls, 0, lbl(name, "nothing delivered after the stop"));
    ASSERT_EQ_INT(failed_calls, 0, lbl(name, "no failure"));
    closed_calls = 0;
    close_source(name, s); /* stop again: nothing more to close */
    ASSERT_EQ_INT(closed_calls, 0, lbl(name, "no second close"));
    unlink(path);
    free(data);
}

/* The reader on its own: a seek while a read is in flight reads from the new offset. */
static struct pgfeed_reader rd;
static unsigned landed;

static void rd_landed(struct pgfeed_reader *r)
{
    (void)r;
    landed++;
}

static void test_reader_seek_in_flight(void)
{
    const char *name = "reader: seek with a read in flight";
    char path[128];
    snprintf(path, sizeof path, "%s/reader.tsv", dir);
    size_t n = 20000, at = 12345;
    char *data = make_data(n, 31);
    write_file(path, data, n);
    int fd = open(path, O_RDONLY);
    ctx_reset(4096);
    ASSERT_EQ_INT(pgfeed__reader_init(&rd, &ctx, fd, 4096, 0, rd_landed), 0, lbl(name, "init"));
    pool_hold();
    landed = 0;
    ASSERT_EQ_INT(pgfeed__reader_start(&rd), 0, lbl(name, "start"));
    pgfeed__reader_seek(&rd, at);
    pool_release();
    char *buf = malloc(4096), *got = malloc(n);
    size_t got_n = 0;
    int end = 0;
    while (!end) {
        size_t k;
        int rc = pgfeed__reader_take(&rd, &buf, &k, &end);
        if (rc == 1) {
            uv_run(&loop, UV_RUN_ONCE);
            continue;
        }
        ASSERT_EQ_INT(rc, 0, lbl(name, "take"));
        if (rc != 0)
            break;
        memcpy(got + got_n, buf, k);
        got_n += k;
    }
    ASSERT_EQ_MEM(got, got_n, data + at, n - at, lbl(name, "the bytes from the new offset"));
    ASSERT_EQ_INT(landed, (n - at) / 4096 + 1,
                  lbl(name, "one landing per chunk, the end with the last"));
    pgfeed__reader_stop(&rd);
    ASSERT_EQ_INT(ctx.pending_closes, 0, lbl(name, "nothing in flight at the end"));
    uv_run(&loop, UV_RUN_DEFAULT);
    pgfeed__reader_free(&rd);
    free(buf);
    free(got);
    close(fd);
    unlink(path);
    free(data);
}

/* stdin from a file: a retry reads the same descriptor again from its start. */
static void test_fd_retry(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/stdin.tsv", dir);
    size_t n = 30000;
    char *data = make_data(n, 11);
    write_file(path, data, n);
    int fd = open(path, O_RDONLY);

    const char *name = "descriptor, first run";
    ctx_reset(4096);
    fake_reset();
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(NULL, fd, &s), 0, lbl(name, "new"));
    ASSERT_TRUE(s->ops->validators(s) == NULL, "%s: no validators for a descriptor", name);
    ASSERT_EQ_INT(ctx.stats.bytes_total, n, lbl(name, "bytes_total is the file's size"));
    run(name, s);
    check_got(name, data, n);
    close_source(name, s);
    ASSERT_EQ_INT(lseek(fd, 0, SEEK_CUR), n, lbl(name, "the descriptor is left at its end"));

    name = "descriptor at its end, not a retry";
    ctx_reset(4096);
    fake_reset();
    ASSERT_EQ_INT(source_new(NULL, fd, &s), 0, lbl(name, "new"));
    run(name, s);
    check_got(name, "", 0);
    close_source(name, s);

    /* -1: a retry with nothing committed (the job does not seek) */
    static const int64_t offsets[] = {-1, 0, 12345};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        char nm[64];
        size_t from = offsets[i] > 0 ? (size_t)offsets[i] : 0;
        snprintf(nm, sizeof nm, "descriptor, retry from %lld", (long long)offsets[i]);
        ctx_reset(4096);
        ctx.attempts = 1;
        fake_reset();
        ASSERT_EQ_INT(source_new(NULL, fd, &s), 0, lbl(nm, "new"));
        if (offsets[i] >= 0)
            ASSERT_EQ_INT(s->ops->seek(s, (uint64_t)offsets[i], NULL), 0, lbl(nm, "seek"));
        run(nm, s);
        check_got(nm, data + from, n - from);
        ASSERT_EQ_INT(ctx.stats.bytes_read, n, lbl(nm, "bytes_read"));
        close_source(nm, s);
    }
    ASSERT_TRUE(fcntl(fd, F_GETFD) != -1, "the source never closes a descriptor it was given");
    close(fd);
    free(data);
}

static const struct open_case {
    const char *name;
    const char *file;           /* under dir; "" is dir itself */
    const char *before, *after; /* the message: before, the path, after */
    const char *detail, *hint;
} open_cases[] = {
    {"missing file", "/missing.tsv", "could not open \"", "\"",
     "The system said: No such file or directory.",
     "Check the path, or give - to read standard input."},
    {"directory", "", "could not read \"", "\": it is a directory", NULL, NULL},
};

static void test_open_fails(const struct open_case *c)
{
    char path[128], msg[256];
    snprintf(path, sizeof path, "%s%s", dir, c->file);
    snprintf(msg, sizeof msg, "%s%s%s", c->before, path, c->after);
    ctx_reset(4096);
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(path, -1, &s), PGFEED_ESOURCE, lbl(c->name, "new"));
    ASSERT_EQ_INT(failed_calls, 1, lbl(c->name, "failed once"));
    ASSERT_EQ_STR(ctx.err.pub.stage, "source", lbl(c->name, "stage"));
    ASSERT_EQ_STR(ctx.err.pub.message, msg, lbl(c->name, "message"));
    ASSERT_TRUE(c->detail ? ctx.err.pub.detail && strcmp(ctx.err.pub.detail, c->detail) == 0
                          : ctx.err.pub.detail == NULL,
                "%s: detail %s", c->name, ctx.err.pub.detail ? ctx.err.pub.detail : "(none)");
    ASSERT_TRUE(c->hint ? ctx.err.pub.hint && strcmp(ctx.err.pub.hint, c->hint) == 0
                        : ctx.err.pub.hint == NULL,
                "%s: hint %s", c->name, ctx.err.pub.hint ? ctx.err.pub.hint : "(none)");
    ASSERT_TRUE(s != NULL, "%s: *out is set, for destroy", c->name);
    if (s) {
        s->ops->stop(s); /* no handle was made: nothing to close */
        ASSERT_EQ_INT(ctx.pending_closes, 0, lbl(c->name, "no close pending"));
        s->ops->destroy(s);
    }
}

/* ------------------------------------------------------------------ pipes */

/* Writes p[0, n) into a non-blocking pipe from the loop, step bytes at a time. */
static struct writer {
    uv_poll_t poll;
    int fd;
    const char *p;
    size_t n, off, step;
    int close_fd; /* close the write end after the last byte: EOF */
    int done;
} wr;

static void writer_closed(uv_handle_t *h)
{
    (void)h;
    if (wr.close_fd)
        close(wr.fd);
    wr.done = 1;
}

static void writer_cb(uv_poll_t *h, int status, int events)
{
    (void)events;
    size_t k = wr.n - wr.off < wr.step ? wr.n - wr.off : wr.step;
    ssize_t r = status == 0 && k ? write(wr.fd, wr.p + wr.off, k) : 0;
    if (r > 0)
        wr.off += (size_t)r;
    if (wr.off == wr.n || status < 0) {
        uv_poll_stop(h);
        uv_close((uv_handle_t *)h, writer_closed);
    }
}

static void writer_start(int fd, const char *p, size_t n, size_t step, int close_fd)
{
    memset(&wr, 0, sizeof wr);
    wr.fd = fd;
    wr.p = p;
    wr.n = n;
    wr.step = step;
    wr.close_fd = close_fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(&loop, &wr.poll, fd);
    uv_poll_start(&wr.poll, UV_WRITABLE, writer_cb);
}

static void make_pipe(int p[2])
{
    if (pipe(p) != 0) {
        perror("pipe");
        abort();
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    if (write(fd, p, n) != (ssize_t)n)
        abort();
}

static const struct pipe_case {
    const char *name;
    size_t size, chunk, step;
    unsigned eagain_every;
} pipe_cases[] = {
    {"pipe, empty", 0, 4096, 1000, 0},
    {"pipe, small", 10, 4096, 3, 0},
    {"pipe, 200 kB", 200000, 4096, 3000, 0},
    {"pipe, 200 kB, EAGAIN every 2nd write", 200000, 4096, 3000, 2},
    {"pipe, 100 kB, chunks larger than the writes", 100000, 65536, 777, 3},
};

static void test_pipe(const struct pipe_case *c)
{
    char *data = make_data(c->size, 5);
    int p[2];
    make_pipe(p);
    ctx_reset(c->chunk);
    fake_reset();
    fk.eagain_every = c->eagain_every;
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(c->name, "new"));
    ASSERT_EQ_INT(ctx.stats.bytes_total, -1, lbl(c->name, "a pipe's size is unknown"));
    ASSERT_TRUE(s->ops->validators(s) == NULL, "%s: no validators", c->name);
    writer_start(p[1], data, c->size, c->step, 1);
    run(c->name, s);
    ASSERT_TRUE(wr.done, "%s: the writer wrote everything", c->name);
    check_got(c->name, data, c->size);
    ASSERT_TRUE(fk.max_write <= c->chunk, "%s: no write above the chunk size", c->name);
    ASSERT_EQ_INT(ctx.stats.bytes_read, c->size, lbl(c->name, "bytes_read"));
    /* What a retry would read again: every byte, none committed yet. */
    const char *kept = NULL;
    size_t kept_n = 0;
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, 0, &kept, &kept_n), 0, lbl(c->name, "replay get"));
    ASSERT_EQ_MEM(kept_n ? kept : "", kept_n, data, c->size,
                  lbl(c->name, "every byte is kept for a retry"));
    ASSERT_EQ_INT(s->ops->rereadable(s), 1, lbl(c->name, "rereadable from what is kept"));
    close_source(c->name, s);
    ASSERT_TRUE((fcntl(p[0], F_GETFL) & O_NONBLOCK) == 0, "%s: O_NONBLOCK taken back", c->name);
    close(p[0]);
    free(data);
}

/* stdin's first bytes, read before start; then a resume's seek; then the rest. */
static struct {
    struct pgfeed_stage *s;
    unsigned calls;
    char got[256];
    size_t got_n;
    int64_t seek; /* before start, from the loop; -1: none */
    int seek_rc;
    uv_timer_t later;
} pf;

static void prefetch_later(uv_timer_t *t)
{
    (void)t;
    pf.seek_rc = pf.seek >= 0 ? pf.s->ops->seek(pf.s, (uint64_t)pf.seek, NULL) : 0;
    if (pf.seek_rc == 0)
        pf.s->ops->start(pf.s);
}

static void prefetched(void *arg, const char *p, size_t n)
{
    ASSERT_TRUE(arg == &pf, "prefetch: its argument");
    pf.calls++;
    pf.got_n = n < sizeof pf.got ? n : sizeof pf.got;
    memcpy(pf.got, p, pf.got_n);
    uv_timer_start(&pf.later, prefetch_later, 0, 0); /* the job starts the source later */
}

static const struct prefetch_case {
    const char *name;
    int file; /* stdin is a regular file, not a pipe */
    size_t size, want;
    int64_t seek;
    int fails; /* the input ends before the seek's offset */
} prefetch_cases[] = {
    {"pipe: prefetch 100 of 50000", 0, 50000, 100, -1, 0},
    {"pipe: prefetch 100 of 60", 0, 60, 100, -1, 0},
    {"pipe: prefetch of nothing", 0, 0, 100, -1, 0},
    {"pipe: prefetch 100, resume at 0", 0, 50000, 100, 0, 0},
    {"pipe: prefetch 100, resume at 40", 0, 50000, 100, 40, 0},
    {"pipe: prefetch 100, resume at 100", 0, 50000, 100, 100, 0},
    {"pipe: prefetch 100, resume at 30000", 0, 50000, 100, 30000, 0},
    {"pipe: prefetch 100 of 60, resume at 80", 0, 60, 100, 80, 1},
    {"pipe: prefetch 100 of 5000, resume at 6000", 0, 5000, 100, 6000, 1},
    {"file: prefetch 100 of 50000", 1, 50000, 100, -1, 0},
    {"file: prefetch 100, resume at 0", 1, 50000, 100, 0, 0},
    {"file: prefetch 100, resume at 40", 1, 50000, 100, 40, 0},
    {"file: prefetch 100, resume at 5000", 1, 50000, 100, 5000, 0},
};

static void test_prefetch(const struct prefetch_case *c)
{
    char *data = make_data(c->size, 9);
    int fd;
    if (c->file) {
        char path[128];
        snprintf(path, sizeof path, "%s/prefetch.tsv", dir);
        write_file(path, data, c->size);
        fd = open(path, O_RDONLY);
    } else {
        int p[2];
        make_pipe(p);
        write_all(p[1], data, c->size); /* all of it fits in the pipe */
        close(p[1]);
        fd = p[0];
    }
    ctx_reset(4096);
    fake_reset();
    memset(&pf, 0, sizeof pf);
    uv_timer_init(&loop, &pf.later);
    pf.seek = c->seek;
    ASSERT_EQ_INT(source_new(NULL, fd, &pf.s), 0, lbl(c->name, "new"));
    attach(pf.s);
    ASSERT_EQ_INT(pgfeed__source_file_prefetch(pf.s, c->want, prefetched, &pf), 0,
                  lbl(c->name, "prefetch"));
    ASSERT_EQ_INT(pf.calls, 0, lbl(c->name, "the callback comes from the loop"));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(pf.calls, 1, lbl(c->name, "prefetch callback once"));
    size_t first = c->size < c->want ? c->size : c->want;
    ASSERT_EQ_MEM(pf.got, pf.got_n, data, first, lbl(c->name, "the first bytes"));
    if (c->fails) {
        ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_ECHANGED, lbl(c->name, "the input is too short"));
        ASSERT_EQ_STR(ctx.err.pub.message,
                      "\"standard input\" ends before the checkpoint's position",
                      lbl(c->name, "message"));
        ASSERT_EQ_STR(ctx.err.pub.hint, "Use --restart if the input is meant to be a new version.",
                      lbl(c->name, "hint"));
        ASSERT_EQ_INT(fk.finish_calls, 0, lbl(c->name, "no finish"));
    } else {
        size_t from = c->seek > 0 ? (size_t)c->seek : 0;
        ASSERT_EQ_INT(pf.seek_rc, 0, lbl(c->name, "seek"));
        check_got(c->name, data + from, c->size - from);
        ASSERT_EQ_INT(ctx.stats.bytes_read, c->size, lbl(c->name, "bytes_read"));
    }
    close_source(c->name, pf.s);
    uv_close((uv_handle_t *)&pf.later, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(fd);
    free(data);
}

/* A resumed pipe (no retry): the committed bytes are read again and dropped. */
static void test_pipe_resume(void)
{
    static const struct {
        size_t size;
        uint64_t seek;
        int fails;
    } cases[] = {
        {60000, 1, 0},     {60000, 4096, 0}, {60000, 50000, 0},
        {60000, 60000, 0}, {1000, 5000, 1},  {1000, 1001, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[80];
        snprintf(name, sizeof name, "pipe of %zu resumed at %llu", cases[i].size,
                 (unsigned long long)cases[i].seek);
        char *data = make_data(cases[i].size, 13);
        int p[2];
        make_pipe(p);
        write_all(p[1], data, cases[i].size);
        close(p[1]);
        ctx_reset(4096);
        fake_reset();
        struct pgfeed_stage *s = NULL;
        ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(name, "new"));
        ASSERT_EQ_INT(s->ops->seek(s, cases[i].seek, NULL), 0, lbl(name, "seek"));
        run(name, s);
        if (cases[i].fails) {
            ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_ECHANGED, lbl(name, "ends too soon"));
            ASSERT_EQ_STR(ctx.err.pub.message,
                          "\"standard input\" ends before the checkpoint's position",
                          lbl(name, "message"));
            ASSERT_EQ_INT(fk.got_n + fk.finish_calls, 0, lbl(name, "nothing delivered"));
        } else {
            check_got(name, data + cases[i].seek, cases[i].size - cases[i].seek);
            ASSERT_EQ_INT(ctx.stats.bytes_read, cases[i].size, lbl(name, "bytes_read"));
        }
        close_source(name, s);
        close(p[0]);
        free(data);
    }
}

/*
 * A pipe read in part, its run failed; a batch committed up to byte `committed`; the retry
 * reads the same descriptor: first the kept bytes from the committed one on, then new ones.
 */
static void test_pipe_retry(void)
{
    const char *name = "pipe, first run";
    size_t na = 60000, nb = 3000, committed = 10000;
    char *a = make_data(na, 17), *b = make_data(nb, 19);
    int p[2];
    make_pipe(p);
    write_all(p[1], a, na);
    ctx_reset(4096);
    fake_reset();
    fk.fail_after = 20000;
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(name, "new"));
    run(name, s);
    ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_EDECODE, lbl(name, "failed downstream"));
    const char *kept = NULL;
    size_t kept_n = 0;
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, 0, &kept, &kept_n), 0, lbl(name, "replay get"));
    ASSERT_TRUE(kept_n >= 20000 && kept_n <= na, "%s: what was read is kept (%zu)", name, kept_n);
    ASSERT_EQ_MEM(kept, kept_n, a, kept_n, lbl(name, "kept bytes"));
    close_source(name, s);

    struct pgfeed_batch_info bi = {0};
    uint64_t prefix_raw = committed; /* a commit of the prefix row, restarting there */
    pgfeed__ctx_batch_committed(&ctx, &bi, &prefix_raw);
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, committed - 1, &kept, &kept_n), UV_ENOENT,
                  "after a commit: the bytes before it are gone");
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, committed, &kept, &kept_n), 0,
                  "after a commit: the bytes from it on stay");
    ASSERT_EQ_MEM(kept, kept_n, a + committed, kept_n, "after a commit: kept bytes");

    name = "pipe, retry";
    pgfeed__err_clear(&ctx.err);
    ctx.attempts = 1;
    ctx.stats.bytes_read = 0;
    failed_calls = 0;
    fake_reset();
    ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(name, "new"));
    ASSERT_EQ_INT(s->ops->seek(s, committed, NULL), 0, lbl(name, "seek to the committed byte"));
    writer_start(p[1], b, nb, 1000, 1); /* the stream goes on, then ends */
    run(name, s);
    size_t nwant = na - committed + nb;
    char *want = malloc(nwant);
    memcpy(want, a + committed, na - committed);
    memcpy(want + na - committed, b, nb);
    check_got(name, want, nwant);
    ASSERT_EQ_INT(ctx.stats.bytes_read, na + nb, lbl(name, "bytes_read"));
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, committed, &kept, &kept_n), 0,
                  lbl(name, "replay get"));
    ASSERT_EQ_MEM(kept, kept_n, want, nwant, lbl(name, "the new bytes are kept too"));
    close_source(name, s);
    close(p[0]);
    free(want);
    free(a);
    free(b);
}

/* More than the replay bound read and not committed: no retry can read the pipe again. */
static void test_pipe_replay_lost(void)
{
    const char *name = "pipe, replay bound passed";
    size_t n = 5000;
    char *data = make_data(n, 23);
    int p[2];
    make_pipe(p);
    write_all(p[1], data, n);
    close(p[1]);
    ctx_reset(1024);
    opt.batch_bytes = 1000; /* the bound: (1 connection + 1) x 1000 bytes */
    fake_reset();
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(name, "new"));
    run(name, s);
    check_got(name, data, n);
    ASSERT_EQ_INT(s->ops->rereadable(s), 0, lbl(name, "not rereadable"));
    const char *kept;
    size_t kept_n;
    ASSERT_EQ_INT(pgfeed__ctx_replay_get(&ctx, 0, &kept, &kept_n), UV_ENOENT,
                  lbl(name, "nothing kept"));
    close_source(name, s);

    name = "pipe, retry without the bytes";
    ctx.attempts = 1;
    fake_reset();
    ASSERT_EQ_INT(source_new(NULL, p[0], &s), 0, lbl(name, "new"));
    ASSERT_EQ_INT(s->ops->seek(s, 0, NULL), PGFEED_ESOURCE, lbl(name, "seek refused"));
    ASSERT_EQ_STR(ctx.err.pub.message,
                  "could not read \"standard input\" again: the bytes to retry from are gone",
                  lbl(name, "message"));
    close_source(name, s);
    close(p[0]);
    free(data);
}

/* A character device epoll refuses is read like a file: at once at its end. */
static void test_dev_null(void)
{
    const char *name = "/dev/null";
    int fd = open("/dev/null", O_RDONLY);
    ctx_reset(4096);
    fake_reset();
    struct pgfeed_stage *s = NULL;
    ASSERT_EQ_INT(source_new(NULL, fd, &s), 0, lbl(name, "new"));
    run(name, s);
    check_got(name, "", 0);
    ASSERT_EQ_INT(fk.writes, 0, lbl(name, "no write"));
    close_source(name, s);
    ASSERT_TRUE((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "%s: left blocking", name);
    close(fd);
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "1", 1); /* pool_hold() holds all of it */
    uv_sem_init(&pool_sem, 0);
    snprintf(dir, sizeof dir, "/tmp/unit-source-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    uv_loop_init(&loop);
    uv_timer_init(&loop, &defer);
    uv_timer_init(&loop, &room);
    uv_check_init(&loop, &tick);
    uv_check_start(&tick, tick_cb);
    uv_unref((uv_handle_t *)&tick);

    for (size_t i = 0; i < sizeof file_cases / sizeof file_cases[0]; i++)
        test_regular_file(&file_cases[i]);
    test_failure_stops_reading();
    test_file_seek();
    test_file_on_threadpool();
    test_reader_seek_in_flight();
    test_fd_retry();
    for (size_t i = 0; i < sizeof open_cases / sizeof open_cases[0]; i++)
        test_open_fails(&open_cases[i]);
    for (size_t i = 0; i < sizeof pipe_cases / sizeof pipe_cases[0]; i++)
        test_pipe(&pipe_cases[i]);
    for (size_t i = 0; i < sizeof prefetch_cases / sizeof prefetch_cases[0]; i++)
        test_prefetch(&prefetch_cases[i]);
    test_pipe_resume();
    test_pipe_retry();
    test_pipe_replay_lost();
    test_dev_null();

    fake_reset();
    pgfeed__ctx_free(&ctx);
    uv_close((uv_handle_t *)&defer, NULL);
    uv_close((uv_handle_t *)&room, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0, "uv_loop_close");
    char path[128];
    static const char *const files[] = {"regular.tsv", "fail.tsv", "seek.tsv", "stdin.tsv",
                                        "prefetch.tsv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return tap_done();
}
