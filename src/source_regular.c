/*
 * source_regular.c -- reads a regular file ahead for source_file.c on libuv's threadpool.
 *
 * Owns one uv_fs_t and a spare buffer of cap bytes; source_file.c owns the descriptor, the
 * buffer it offers downstream, flow control and the messages. Every read is a uv_fs_read at
 * an explicit offset (the file position is not used, so a seek is a new offset), one in
 * flight at a time: while the decoder works on one chunk the next lands in the spare, and
 * take() swaps the two buffers, so memory stays at two chunks. A chunk is cap bytes except
 * the last: a short read is continued until the buffer is full or a read returns 0.
 *
 * States: idle; reading (req in flight); ready (the spare holds got bytes, or err). A seek
 * while reading marks the read stale: it is read again at the new offset when it lands. A
 * stop while reading cancels it (UV_EBUSY when a thread already runs it) and holds a close
 * reference on the context until its callback, the reader's last use of itself.
 */
#include <stdlib.h>

#include "internal.h"

int pgfeed__reader_init(struct pgfeed_reader *r, struct pgfeed_ctx *ctx, uv_file fd, size_t cap,
                        uint64_t pos, void (*ready_cb)(struct pgfeed_reader *r))
{
    *r = (struct pgfeed_reader){.ctx = ctx, .fd = fd, .cap = cap, .pos = pos, .ready_cb = ready_cb};
    r->req.data = r;
    r->spare = malloc(cap);
    return r->spare ? 0 : UV_ENOMEM;
}

static void read_cb(uv_fs_t *req);

/* Reads into the spare after what it holds, at pos. */
static int issue(struct pgfeed_reader *r)
{
    uv_buf_t b = uv_buf_init(r->spare + r->got, (unsigned)(r->cap - r->got));
    int rc = uv_fs_read(pgfeed__ctx_loop(r->ctx), &r->req, r->fd, &b, 1, (int64_t)r->pos, read_cb);
    if (rc == 0)
        r->reading = 1;
    return rc;
}

static void read_cb(uv_fs_t *req)
{
    struct pgfeed_reader *r = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    r->reading = 0;
    if (r->stopped) {
        if (r->ref) {
            r->ref = 0;
            pgfeed__ctx_handle_closed(r->ctx); /* may free r: the last use */
        }
        return;
    }
    if (r->stale) {
        r->stale = 0; /* a seek came meanwhile: these bytes are from the old offset */
        res = issue(r);
    } else if (res > 0) {
        r->got += (size_t)res;
        r->pos += (uint64_t)res;
        res = r->got < r->cap ? issue(r) : 0;
        if (res == 0 && r->reading)
            return; /* the rest of the chunk is on its way */
    } else if (res == 0) {
        r->eof = 1;
    }
    if (res < 0)
        r->err = (int)res;
    if (r->reading)
        return;
    r->ready = 1;
    r->ready_cb(r);
}

int pgfeed__reader_take(struct pgfeed_reader *r, char **buf, size_t *n, int *end)
{
    if (r->stopped)
        return 1;
    if (!r->ready) {
        if (r->eof) {
            *n = 0; /* taken already; the end again */
            *end = 1;
            return 0;
        }
        int rc = r->reading ? 0 : issue(r);
        return rc < 0 ? rc : 1;
    }
    if (r->err)
        return r->err;
    char *full = r->spare;
    r->spare = *buf;
    *buf = full;
    *n = r->got;
    *end = r->eof;
    r->got = 0;
    r->ready = 0;
    if (!r->eof) {
        /* The next chunk is read while the caller works on this one. */
        int rc = issue(r);
        if (rc < 0) {
            r->err = rc;
            r->ready = 1;
        }
    }
    return 0;
}

void pgfeed__reader_seek(struct pgfeed_reader *r, uint64_t pos)
{
    r->pos = pos;
    r->got = 0;
    r->ready = 0;
    r->eof = 0;
    r->err = 0;
    r->stale = r->reading;
}

void pgfeed__reader_stop(struct pgfeed_reader *r)
{
    if (r->stopped)
        return;
    r->stopped = 1;
    if (r->reading) {
        r->ref = 1;
        pgfeed__ctx_handle_closing(r->ctx);
        uv_cancel((uv_req_t *)&r->req); /* UV_EBUSY once a thread runs it: it returns soon */
    }
}

void pgfeed__reader_free(struct pgfeed_reader *r)
{
    free(r->spare);
    r->spare = NULL;
}

int pgfeed__reader_start(struct pgfeed_reader *r)
{
    if (r->stopped || r->reading || r->ready || r->eof)
        return 0;
    return issue(r);
}
