/*
 * source_once.c -- what the sources whose bytes come only once share: a pipe or
 * terminal (source_file.c) and the embedder's writes (source_push.c).
 *
 * Two things, both positions in the stream (offsets count from its first byte):
 * on a --resume the stream comes again from its start, and the bytes up to the
 * checkpoint's restart point are dropped as they come (`discard`); on an in-run retry
 * the bytes the context kept (ctx.c's replay) are read first, from the restart point
 * on, before the source's own. Reading the stream and keeping its bytes for a replay
 * (pgfeed__ctx_replay_keep) stay with each source.
 *
 * No buffer of its own: a replay is read in place from the context's.
 */
#include "internal.h"

void pgfeed__once_init(struct pgfeed_once *o, struct pgfeed_ctx *ctx, const char *name)
{
    o->ctx = ctx;
    o->name = name;
    o->discard = 0;
    o->replaying = 0;
    o->replay_pos = 0;
}

static int replay_gone(struct pgfeed_once *o)
{
    o->replaying = 0;
    return pgfeed__fail(o->ctx, "source", PGFEED_ESOURCE, NULL, NULL,
                        "could not read \"%s\" again: the bytes to retry from are gone", o->name);
}

int pgfeed__once_seek(struct pgfeed_once *o, uint64_t raw_offset)
{
    if (o->replaying) {
        /* A retry: the context kept the bytes from the last restart point on. */
        const char *p;
        size_t n;
        if (pgfeed__ctx_replay_get(o->ctx, raw_offset, &p, &n) == 0) {
            o->replay_pos = raw_offset;
            pgfeed__ctx_stats(o->ctx)->bytes_read = raw_offset;
            return 0;
        }
        /* Not read that far yet: an attempt that ended before its checkpoint was read (a
         * resume that waited for the server) kept the stream from its start; replay that,
         * dropping up to the restart point, then the source's own bytes as for a resume. */
        if (pgfeed__ctx_replay_get(o->ctx, 0, &p, &n) != 0 || raw_offset <= n)
            return replay_gone(o);
        o->replay_pos = 0;
        o->discard = raw_offset;
        pgfeed__ctx_stats(o->ctx)->bytes_read = raw_offset;
        return 0;
    }
    if (raw_offset == 0)
        return 0;
    /* The bytes before the restart point count as read: progress starts where it stopped. */
    pgfeed__ctx_stats(o->ctx)->bytes_read = raw_offset;
    o->discard = raw_offset;
    return 0;
}

int pgfeed__once_replay(struct pgfeed_once *o, const char **p, size_t *n)
{
    *n = 0;
    if (!o->replaying)
        return 0;
    if (pgfeed__ctx_replay_get(o->ctx, o->replay_pos, p, n) != 0)
        return replay_gone(o);
    if (*n == 0)
        o->replaying = 0; /* all replayed: on with the source's own bytes */
    return 0;
}

void pgfeed__once_replayed(struct pgfeed_once *o, size_t n)
{
    o->replay_pos += n;
}

size_t pgfeed__once_drop(struct pgfeed_once *o, size_t n)
{
    size_t drop = o->discard < (uint64_t)n ? (size_t)o->discard : n;
    o->discard -= drop;
    return drop;
}

int pgfeed__once_end(struct pgfeed_once *o)
{
    if (o->discard == 0)
        return 0;
    return pgfeed__fail(o->ctx, "source", PGFEED_ECHANGED, NULL,
                        "Use --restart if the input is meant to be a new version.",
                        "\"%s\" ends before the checkpoint's position", o->name);
}
