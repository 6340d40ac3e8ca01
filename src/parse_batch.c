/*
 * parse_batch.c -- batches and the rows in them: where a batch ends (batch_rows rows or
 * batch_bytes COPY bytes), handing `out` and end_batch to the sink, and the row maps that
 * tell the sink the input line each row of a batch starts at (pgfeed__parser_row_line).
 *
 * Leaves to parse_record.c the rows themselves (it calls pgfeed__parse_row_sent once a row
 * is in `out`), to parse_dsv.c when to drain (a full `out`, a batch's end, finish, resume)
 * and to the sink what a batch is in the server (transactions, checkpoints).
 *
 * Buffers: `out` goes to the sink whole; one that a long line grew past BUF_KEEP is
 * released after. Row maps, one per batch in a ring of ROWMAP_RING (the batches the sink's
 * connections may still be working on, and the one being built), keep the start lines of
 * the rows that are not one line after the previous row: at most one entry per row, at most
 * ROWMAP_MAX per batch, none for a tsv file without rejections. States: a batch is being
 * built, then end_pending (bi ready, end_batch not yet accepted), then the next one (seq+1).
 */
#include <stdlib.h>

#include "parse_internal.h"

#define ROWMAP_MAX (1u << 18) /* row map entries per batch (8 bytes each) */

/* ---- row maps (rowmap.c) ---- */

static void rowmap_add(struct parser *P, struct pgfeed_rowmap *m, uint64_t line)
{
    size_t limit = ROWMAP_MAX;
    if (P->batch_rows != 0 && P->batch_rows < limit)
        limit = (size_t)P->batch_rows;
    pgfeed__rowmap_add(m, line, limit);
}

const struct pgfeed_rowmap *pgfeed__parser_rowmap(struct pgfeed_stage *s, uint64_t seq)
{
    struct parser *P = parser_of(s);
    const struct pgfeed_rowmap *m = &P->maps[seq % ROWMAP_RING];
    return m->seq == seq && seq <= P->seq ? m : NULL;
}

uint64_t pgfeed__parser_row_line(struct pgfeed_stage *s, uint64_t seq, uint64_t batch_row)
{
    struct parser *P = parser_of(s);
    const struct pgfeed_rowmap *m = &P->maps[seq % ROWMAP_RING];
    return m->seq == seq && seq <= P->seq ? pgfeed__rowmap_line(m, batch_row) : 0;
}

/* ---- batches ---- */

void pgfeed__parse_row_sent(struct parser *P, uint64_t lineno, size_t bytes)
{
    P->out_rows++;
    rowmap_add(P, &P->maps[P->seq % ROWMAP_RING], lineno);
    if (P->batch_n++ == 0) {
        P->batch_first = lineno;
        P->batch_size = 0;
    }
    P->batch_size += bytes;
    /* A batch ends at batch_rows rows or batch_bytes bytes of COPY data, whichever is first. */
    if ((P->batch_rows != 0 && P->batch_n == P->batch_rows) ||
        (P->batch_bytes != 0 && P->batch_size >= P->batch_bytes)) {
        P->bi.rows = P->batch_n;
        P->bi.first_line = P->batch_first;
        P->bi.last_line = P->lineno; /* where the record ends */
        P->bi.end_decoded = P->line_off;
        P->bi.end_raw = P->stats->bytes_read;
        P->bi.seq = P->seq;
        pgfeed__ctx_batch_ending(P->base.ctx, &P->bi);
        P->end_pending = 1;
        P->batch_n = 0;
    }
}

int pgfeed__parse_drain(struct parser *P)
{
    struct pgfeed_stage *next = P->base.next;
    if (P->out.len != 0) {
        int rc = next->ops->write(next, P->out.data, P->out.len);
        if (rc != 0)
            return rc;
        P->stats->rows_sent += P->out_rows;
        P->out_rows = 0;
        P->out.len = 0;
        if (P->out.cap > BUF_KEEP)
            pgfeed__buf_free(&P->out);
    }
    if (P->end_pending) {
        int rc = next->ops->end_batch ? next->ops->end_batch(next, &P->bi) : 0;
        if (rc != 0)
            return rc;
        P->end_pending = 0;
        pgfeed__buf_free(&P->bi.restart); /* the sink keeps a copy */
        P->bi.has_restart = 0;
        struct pgfeed_rowmap *m = &P->maps[++P->seq % ROWMAP_RING];
        m->seq = P->seq;
        m->rows = 0;
    }
    return 0;
}

int pgfeed__parse_last_batch(struct parser *P)
{
    struct pgfeed_stage *next = P->base.next;
    if (P->last_given || next->ops->last_batch == NULL || P->batch_n == 0)
        return 0;
    struct pgfeed_batch_info bi;
    pgfeed__parser_pending_batch(&P->base, &bi);
    pgfeed__ctx_batch_ending(P->base.ctx, &bi);
    int rc = next->ops->last_batch(next, &bi);
    pgfeed__buf_free(&bi.restart); /* the sink keeps a copy */
    if (rc == 0)
        P->last_given = 1;
    return rc;
}

void pgfeed__parser_pending_batch(struct pgfeed_stage *s, struct pgfeed_batch_info *bi)
{
    struct parser *P = parser_of(s);
    *bi = (struct pgfeed_batch_info){0};
    bi->rows = P->batch_n;
    bi->first_line = P->batch_n ? P->batch_first : 0;
    bi->last_line = P->lineno;
    bi->end_decoded = P->line_off;
    bi->end_raw = P->stats->bytes_read;
    bi->seq = P->seq;
}
