/*
 * source_file.c -- reads a local path or a file descriptor (stdin) in chunks.
 *
 * Owns the descriptor (when it opened it) and one read buffer of chunk_size bytes. A
 * regular file is read on libuv's threadpool by source_regular.c (uv_fs_read at an
 * offset, the next chunk read ahead into a second buffer), so a cold file, a slow disk or
 * NFS never holds the loop; its chunks land in buf and go down as if just read. Other
 * descriptors get one handle: a uv_poll_t for those epoll can watch (pipes, FIFOs,
 * sockets, terminals, most character devices), else a uv_idle_t that read()s them
 * (/dev/null). Leaves decompression to the decoder, and for a pipe the dropping of a
 * resume's committed part and a retry's replay to source_once.c; counts bytes_read.
 *
 * Opening (the open op, before anything else): open, fstat and realpath run as
 * uv_fs_* requests on libuv's threadpool, one after another on one uv_fs_t, so a
 * slow disk, NFS or a FIFO never holds the loop. A stop while one is pending
 * cancels it if it has not begun and keeps a close reference until it returns.
 *
 * Flow control: a chunk the decoder refuses (EAGAIN) is kept and offered
 * again on resume; reading stops until then (a regular file's read ahead still lands and
 * waits). A regular file goes down one chunk per landed read; an idle-read descriptor at
 * most READS_PER_TICK chunks per idle callback, so the loop keeps turning.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define READS_PER_TICK 8

struct source_file {
    struct pgfeed_stage base;
    int fd;
    int owns_fd;
    int restore_flags; /* original O_NONBLOCK state to restore, or -1 */
    int use_poll;
    union {
        uv_poll_t poll;
        uv_idle_t idle;
    } h;
    int h_inited;
    int reading; /* the handle is started */
    int stopped;
    char *buf;
    size_t cap;
    size_t pending; /* bytes in buf the decoder refused */
    int eof;        /* read returned 0 */
    int finished;   /* the decoder's finish returned 0 */
    char *name;     /* for messages */
    struct pgfeed_validators v;
    char mtime[48];
    int regular; /* a regular file: read through rd at an offset */
    struct pgfeed_reader rd;
    size_t prefetch; /* > 0: reading the first bytes into buf, nothing pushed yet */
    pgfeed_prefetch_cb prefetch_cb;
    void *prefetch_arg;
    uv_fs_t fsreq; /* open, fstat, realpath: one at a time */
    int fs_active; /* fsreq is in flight */
    int fs_ref;    /* a stop took a close reference for it */
    char *real;    /* realpath of the path, once opened */
    void (*open_cb)(void *arg, int status);
    void *open_arg;
    struct pgfeed_once once; /* a pipe: dropping a resume's committed part, a retry's replay */
};

static struct source_file *src_of(struct pgfeed_stage *s)
{
    return container_of(s, struct source_file, base);
}

static void start_reading(struct source_file *f);
static void stop_reading(struct source_file *f);

static int fail_errno(struct source_file *f, int err, const char *what)
{
    char detail[512];
    snprintf(detail, sizeof detail, "The system said: %s.", strerror(err));
    return pgfeed__fail(f->base.ctx, "source", PGFEED_ESOURCE, detail, NULL, "could not %s \"%s\"",
                        what, f->name);
}

/* Offers the pending chunk, then at EOF the finish. 0: carry on; EAGAIN: wait; <0: failed. */
static int push(struct source_file *f)
{
    struct pgfeed_stage *next = f->base.next;
    if (f->pending) {
        uint64_t t0 = uv_hrtime();
        int rc = next->ops->write(next, f->buf, f->pending);
        pgfeed__ctx_busy(f->base.ctx, t0);
        if (rc != 0)
            return rc;
        pgfeed__ctx_stats(f->base.ctx)->bytes_read += f->pending;
        f->pending = 0;
    }
    if (f->eof && !f->finished) {
        uint64_t t0 = uv_hrtime();
        int rc = next->ops->finish(next);
        pgfeed__ctx_busy(f->base.ctx, t0);
        if (rc != 0)
            return rc;
        f->finished = 1;
    }
    return 0;
}

/*
 * The next bytes into buf at off (at most max): from the job's replay while a
 * retry re-reads a pipe, then from the descriptor. A pipe's bytes are kept for a later
 * retry as they are read. Returns what read() would, with errno; a replay that lost
 * the bytes it needs fails the job (returns -1 with errno 0).
 */
static ssize_t fill(struct source_file *f, size_t off, size_t max)
{
    if (f->once.replaying) {
        const char *p;
        size_t n;
        if (pgfeed__once_replay(&f->once, &p, &n) != 0) {
            errno = 0;
            return -1;
        }
        if (n > 0) {
            if (n > max)
                n = max;
            memcpy(f->buf + off, p, n);
            pgfeed__once_replayed(&f->once, n);
            return (ssize_t)n;
        }
    }
    ssize_t n = read(f->fd, f->buf + off, max);
    if (n > 0 && !f->regular)
        pgfeed__ctx_replay_keep(f->base.ctx, f->buf + off, (size_t)n);
    return n;
}

/* Prefetch: reads into buf after what is there until `prefetch` bytes or end of input. */
static void pump_prefetch(struct source_file *f)
{
    while (!f->stopped && f->pending < f->prefetch && !f->eof) {
        ssize_t n = fill(f, f->pending, f->prefetch - f->pending);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* the poll will tell us */
            stop_reading(f);
            if (errno != 0)
                fail_errno(f, errno, "read");
            return;
        }
        if (n == 0)
            f->eof = 1;
        f->pending += (size_t)n;
    }
    if (f->stopped)
        return;
    stop_reading(f);
    f->prefetch = 0;
    f->prefetch_cb(f->prefetch_arg, f->buf, f->pending);
}

/* Reads and pushes up to `rounds` chunks. */
static void pump(struct source_file *f, int rounds)
{
    if (f->prefetch) {
        pump_prefetch(f);
        return;
    }
    while (rounds-- > 0 && !f->stopped) {
        int rc = push(f);
        if (rc == PGFEED_EAGAIN) {
            stop_reading(f);
            return;
        }
        if (rc < 0 || f->finished) {
            stop_reading(f);
            return;
        }
        ssize_t n = fill(f, 0, f->cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* the poll will tell us */
            stop_reading(f);
            if (errno != 0)
                fail_errno(f, errno, "read");
            return;
        }
        if (n == 0)
            f->eof = 1;
        f->pending = (size_t)n;
        /* A resumed pipe: what was committed is read again and dropped here. */
        size_t drop = pgfeed__once_drop(&f->once, (size_t)n);
        if (drop) {
            memmove(f->buf, f->buf + drop, (size_t)n - drop);
            f->pending -= drop;
        }
        if (f->eof && pgfeed__once_end(&f->once) != 0) {
            stop_reading(f);
            return;
        }
    }
    /* Out of rounds: deliver what was read last so nothing sits unoffered. */
    if (!f->stopped) {
        int rc = push(f);
        if (rc == PGFEED_EAGAIN || rc < 0 || f->finished)
            stop_reading(f);
        else if (f->once.replaying)
            pgfeed__ctx_schedule_resume(f->base.ctx, &f->base); /* no poll event announces it */
    }
}

/* A regular file: the chunk that landed into buf. 1 when none has yet, 0, or <0 (failed). */
static int take(struct source_file *f)
{
    size_t n;
    int end;
    int rc = pgfeed__reader_take(&f->rd, &f->buf, &n, &end);
    if (rc < 0) {
        stop_reading(f);
        return fail_errno(f, -rc, "read");
    }
    if (rc == 0) {
        f->pending = n;
        f->eof = end;
        if (end && !f->owns_fd)
            lseek(f->fd, (off_t)f->rd.pos, SEEK_SET); /* stdin left at its end, as read() does */
    }
    return rc;
}

/*
 * A regular file, while the decoder takes bytes: offers the pending chunk, then takes the
 * next (which starts the read after it) and offers that, until a read is still in flight.
 * Runs from the read's callback and from resume.
 */
static void pump_regular(struct source_file *f)
{
    if (f->prefetch) {
        if (take(f) != 0)
            return;
        size_t want = f->prefetch; /* a chunk is at least this much, unless the file ends */
        stop_reading(f);
        f->prefetch = 0;
        f->prefetch_cb(f->prefetch_arg, f->buf, f->pending < want ? f->pending : want);
        return;
    }
    while (f->reading && !f->stopped) {
        int rc = push(f);
        if (rc != 0 || f->finished) {
            stop_reading(f);
            return;
        }
        if (take(f) != 0)
            return;
    }
}

static void landed_cb(struct pgfeed_reader *r)
{
    struct source_file *f = container_of(r, struct source_file, rd);
    if (f->reading)
        pump_regular(f); /* else it waits in the reader for resume */
}

static void start_regular(struct source_file *f)
{
    if (f->rd.ready || f->eof) {
        /* Nothing will land to call back: offer what is there from the loop. */
        pgfeed__ctx_schedule_resume(f->base.ctx, &f->base);
        return;
    }
    int rc = pgfeed__reader_start(&f->rd);
    if (rc < 0) {
        stop_reading(f);
        fail_errno(f, -rc, "read");
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct source_file *f = h->data;
    if (status < 0) {
        stop_reading(f);
        pgfeed__fail(f->base.ctx, "source", PGFEED_ESOURCE, NULL, NULL, "could not read \"%s\": %s",
                     f->name, uv_strerror(status));
        return;
    }
    pump(f, 1);
}

static void idle_cb(uv_idle_t *h)
{
    pump(h->data, READS_PER_TICK);
}

static void start_reading(struct source_file *f)
{
    if (f->reading || f->stopped || f->finished)
        return;
    f->reading = 1;
    if (f->regular)
        start_regular(f);
    else if (f->use_poll)
        uv_poll_start(&f->h.poll, UV_READABLE, poll_cb);
    else
        uv_idle_start(&f->h.idle, idle_cb);
}

static void stop_reading(struct source_file *f)
{
    if (!f->reading)
        return;
    f->reading = 0;
    if (f->regular)
        return; /* a read in flight lands in the reader and waits */
    if (f->use_poll)
        uv_poll_stop(&f->h.poll);
    else
        uv_idle_stop(&f->h.idle);
}

static int source_start(struct pgfeed_stage *s)
{
    struct source_file *f = src_of(s);
    start_reading(f);
    if (f->once.replaying)
        pgfeed__ctx_schedule_resume(s->ctx, s); /* the pipe may stay silent meanwhile */
    return 0;
}

static void source_resume(struct pgfeed_stage *s)
{
    struct source_file *f = src_of(s);
    if (f->stopped || f->finished)
        return;
    if (f->regular) {
        f->reading = 1;
        pump_regular(f);
        return;
    }
    if (f->once.replaying) {
        pump(f, READS_PER_TICK);
        if (!f->stopped && !f->finished && f->pending == 0)
            start_reading(f);
        return;
    }
    int rc = push(f);
    if (rc == 0 && !f->finished)
        start_reading(f);
}

static void close_cb(uv_handle_t *h)
{
    struct source_file *f = h->data;
    pgfeed__ctx_handle_closed(f->base.ctx);
}

static void source_stop(struct pgfeed_stage *s)
{
    struct source_file *f = src_of(s);
    if (f->stopped)
        return;
    stop_reading(f);
    f->stopped = 1;
    if (f->regular)
        pgfeed__reader_stop(&f->rd); /* a read in flight holds a close reference */
    if (f->fs_active && !f->fs_ref) {
        f->fs_ref = 1;
        pgfeed__ctx_handle_closing(s->ctx);
        uv_cancel((uv_req_t *)&f->fsreq); /* UV_EBUSY once a thread runs it: it returns soon */
    }
    if (f->h_inited) {
        f->h_inited = 0;
        pgfeed__ctx_handle_closing(s->ctx);
        uv_close((uv_handle_t *)&f->h, close_cb);
    }
}

static void source_destroy(struct pgfeed_stage *s)
{
    struct source_file *f = src_of(s);
    if (f->restore_flags >= 0)
        fcntl(f->fd, F_SETFL, f->restore_flags);
    if (f->owns_fd && f->fd >= 0)
        close(f->fd);
    pgfeed__reader_free(&f->rd);
    free(f->buf);
    free(f->name);
    free(f->real);
    free(f);
}

/* Before start: begin reading at byte raw_offset (validators were compared by the job). */
static int source_seek(struct pgfeed_stage *s, uint64_t raw_offset,
                       const struct pgfeed_validators *expect)
{
    struct source_file *f = src_of(s);
    (void)expect;
    if (raw_offset == 0 && f->regular && !f->owns_fd && f->pending == 0)
        pgfeed__reader_seek(&f->rd, 0); /* stdin from a file, on a retry */
    if (!f->regular) {
        /* A pipe: a retry replays from raw_offset, a resume drops what comes before it. */
        int rc = pgfeed__once_seek(&f->once, raw_offset);
        if (rc == 0 && f->pending) {
            /* Prefetched bytes come first: drop what they hold of the committed part. */
            size_t drop = pgfeed__once_drop(&f->once, f->pending);
            memmove(f->buf, f->buf + drop, f->pending - drop);
            f->pending -= drop;
            if (f->eof)
                rc = pgfeed__once_end(&f->once);
        }
        return rc;
    }
    if (raw_offset == 0)
        return 0;
    /* The bytes before the restart point count as read: progress starts where it stopped. */
    pgfeed__ctx_stats(s->ctx)->bytes_read = raw_offset;
    pgfeed__reader_seek(&f->rd, raw_offset);
    f->pending = 0; /* prefetched bytes are before the offset, or read again */
    f->eof = 0;
    return 0;
}

int pgfeed__source_file_prefetch(struct pgfeed_stage *s, size_t want, pgfeed_prefetch_cb cb,
                                 void *arg)
{
    struct source_file *f = src_of(s);
    if (want > f->cap)
        want = f->cap;
    f->prefetch = want ? want : 1;
    f->prefetch_cb = cb;
    f->prefetch_arg = arg;
    start_reading(f);
    return 0;
}

static const struct pgfeed_validators *source_validators(struct pgfeed_stage *s)
{
    struct source_file *f = src_of(s);
    return f->owns_fd ? &f->v : NULL; /* stdin: nothing identifies its contents */
}

/* A pipe or terminal gives its bytes once: read again from what the job kept of them. */
static int source_rereadable(struct pgfeed_stage *s)
{
    return src_of(s)->regular || pgfeed__ctx_replay_ok(s->ctx);
}

static int source_open(struct pgfeed_stage *s, void (*cb)(void *arg, int status), void *arg);

static const char *source_real_path(struct pgfeed_stage *s)
{
    return src_of(s)->real;
}

static const struct pgfeed_stage_ops source_file_ops = {
    .open = source_open,
    .real_path = source_real_path,
    .name = "source",
    .rereadable = source_rereadable,
    .validators = source_validators,
    .seek = source_seek,
    .resume = source_resume,
    .stop = source_stop,
    .destroy = source_destroy,
    .start = source_start,
};

int pgfeed__source_file_new(struct pgfeed_ctx *ctx, const char *path, int fd,
                            struct pgfeed_stage **out)
{
    const struct pgfeed_options *o = pgfeed__ctx_options(ctx);
    struct source_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return UV_ENOMEM;
    f->base.ops = &source_file_ops;
    f->base.ctx = ctx;
    f->fd = path ? -1 : fd;
    f->owns_fd = path != NULL;
    f->restore_flags = -1;
    f->cap = o->chunk_size;
    f->buf = malloc(f->cap);
    f->name = strdup(path ? path : "standard input");
    f->fsreq.data = f;
    pgfeed__once_init(&f->once, ctx, f->name);
    *out = &f->base;
    if (f->buf == NULL || f->name == NULL)
        return pgfeed__fail(ctx, "source", UV_ENOMEM, NULL, NULL, "out of memory");
    return 0;
}

/* The descriptor's kind is known: validators, and the handle that will read it. */
static int set_up(struct source_file *f, const uv_stat_t *st)
{
    struct pgfeed_ctx *ctx = f->base.ctx;
    if (S_ISDIR(st->st_mode))
        return pgfeed__fail(ctx, "source", PGFEED_ESOURCE, NULL, NULL,
                            "could not read \"%s\": it is a directory", f->name);
    uv_loop_t *loop = pgfeed__ctx_loop(ctx);
    f->v.size = -1;
    if (S_ISREG(st->st_mode)) {
        /* stdin from a file is read on from where it stands; a retry reads it from its start. */
        off_t pos = f->owns_fd || pgfeed__ctx_retrying(ctx) ? 0 : lseek(f->fd, 0, SEEK_CUR);
        if (pgfeed__reader_init(&f->rd, ctx, f->fd, f->cap, pos > 0 ? (uint64_t)pos : 0,
                                landed_cb) != 0)
            return pgfeed__fail(ctx, "source", UV_ENOMEM, NULL, NULL, "out of memory");
        f->regular = 1;
        pgfeed__ctx_stats(ctx)->bytes_total = (int64_t)st->st_size;
        f->v.size = (int64_t)st->st_size;
        snprintf(f->mtime, sizeof f->mtime, "%lld.%09ld", (long long)st->st_mtim.tv_sec,
                 (long)st->st_mtim.tv_nsec);
        f->v.last_modified = f->mtime;
    } else {
        /* a pipe: a retry reads from the job's replay first (seek says where) */
        f->once.replaying = pgfeed__ctx_retrying(ctx);
        int flags = fcntl(f->fd, F_GETFL);
        if (flags >= 0 && !(flags & O_NONBLOCK) && fcntl(f->fd, F_SETFL, flags | O_NONBLOCK) == 0)
            f->restore_flags = flags;
        if (uv_poll_init(loop, &f->h.poll, f->fd) == 0) {
            f->use_poll = 1;
        } else if (f->restore_flags >= 0) {
            /* epoll refuses it (e.g. /dev/null): read it like a file. */
            fcntl(f->fd, F_SETFL, f->restore_flags);
            f->restore_flags = -1;
        } else if (f->owns_fd && flags >= 0) {
            fcntl(f->fd, F_SETFL, flags & ~O_NONBLOCK); /* opened so above; read it like a file */
        }
    }
    if (f->regular)
        return 0; /* no handle: the reader's requests */
    if (!f->use_poll)
        uv_idle_init(loop, &f->h.idle);
    f->h.poll.data = f; /* same offset in both union members */
    f->h_inited = 1;
    return 0;
}

static int fail_open(struct source_file *f, int err)
{
    char detail[512];
    snprintf(detail, sizeof detail, "The system said: %s.", strerror(err));
    return pgfeed__fail(f->base.ctx, "source", PGFEED_ESOURCE, detail,
                        err == ENOENT ? "Check the path, or give - to read standard input." : NULL,
                        "could not open \"%s\"", f->name);
}

static void fs_cb(uv_fs_t *req);

/*
 * One finished step of the opening (req already cleaned up: its result, stat and real
 * path copied): open -> fstat -> realpath for a path, fstat for a descriptor. Returns 1
 * when the next request is in flight, 0 when done, <0 on failure (error set).
 */
static int open_step(struct source_file *f, uv_fs_type type, ssize_t res, const uv_stat_t *st)
{
    uv_loop_t *loop = pgfeed__ctx_loop(f->base.ctx);
    if (type == UV_FS_OPEN) {
        if (res < 0)
            return fail_open(f, (int)-res);
        f->fd = (int)res;
        return uv_fs_fstat(loop, &f->fsreq, f->fd, fs_cb) == 0 ? 1 : fail_errno(f, EIO, "inspect");
    }
    if (type == UV_FS_FSTAT) {
        if (res < 0)
            return fail_errno(f, (int)-res, "inspect");
        int rc = set_up(f, st);
        if (rc != 0 || !f->owns_fd)
            return rc;
        /* The checkpoint's key names the file by its canonical path. */
        return uv_fs_realpath(loop, &f->fsreq, f->name, fs_cb) == 0 ? 1 : 0;
    }
    return 0; /* realpath: none is no error (the key keeps the path as given) */
}

static void fs_cb(uv_fs_t *req)
{
    struct source_file *f = req->data;
    uv_fs_type type = req->fs_type;
    ssize_t res = req->result;
    uv_stat_t st = req->statbuf;
    int nomem = 0;
    if (type == UV_FS_REALPATH && res == 0 && req->ptr)
        nomem = (f->real = strdup(req->ptr)) == NULL;
    uv_fs_req_cleanup(req);
    f->fs_active = 0;
    if (f->stopped) {
        if (type == UV_FS_OPEN && res >= 0)
            f->fd = (int)res; /* closed by destroy */
        if (f->fs_ref) {
            f->fs_ref = 0;
            pgfeed__ctx_handle_closed(f->base.ctx); /* may destroy f: the last use */
        }
        return;
    }
    int rc = nomem ? pgfeed__fail(f->base.ctx, "source", UV_ENOMEM, NULL, NULL, "out of memory")
                   : open_step(f, type, res, &st); /* a failure stops the stage first */
    if (rc == 1)
        f->fs_active = 1;
    else
        f->open_cb(f->open_arg, rc);
}

static int source_open(struct pgfeed_stage *s, void (*cb)(void *arg, int status), void *arg)
{
    struct source_file *f = src_of(s);
    uv_loop_t *loop = pgfeed__ctx_loop(s->ctx);
    f->open_cb = cb;
    f->open_arg = arg;
    /* O_NONBLOCK: a FIFO without a writer yet opens at once (the poll then waits for
     * one); a regular file ignores it. */
    int rc = f->owns_fd
                 ? uv_fs_open(loop, &f->fsreq, f->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0, fs_cb)
                 : uv_fs_fstat(loop, &f->fsreq, f->fd, fs_cb);
    if (rc != 0)
        return fail_errno(f, -rc, f->owns_fd ? "open" : "inspect");
    f->fs_active = 1;
    return 0;
}
