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

/* ---- row maps ---- */

static void rowmap_add(struct parser *P, struct rowmap *m, uint64_t line)
{
    uint64_t r = ++m->rows;
    if (r == 1) {
        m->first = line;
        m->nex = 0;
        m->lost = 0;
        return;
    }
    if (m->lost)
        return;
    uint64_t delta = line - m->first - (r - 1);
    if (delta == (m->nex ? m->ex[m->nex - 1].delta : 0))
        return;
    if (r > UINT32_MAX || delta > UINT32_MAX) {
        m->lost = r;
        return;
    }
    if (m->nex == m->cap) {
        size_t limit = ROWMAP_MAX;
        if (P->batch_rows != 0 && P->batch_rows < limit)
            limit = (size_t)P->batch_rows;
        size_t cap = m->cap ? 2 * m->cap : 64;
        if (cap > limit)
            cap = limit;
        void *ex = cap > m->cap ? realloc(m->ex, cap * sizeof *m->ex) : NULL;
        if (ex == NULL) { /* out of entries: later rows of this batch have no known line */
            m->lost = r;
            return;
        }
        m->ex = ex;
        m->cap = cap;
    }
    m->ex[m->nex].row = (uint32_t)r;
    m->ex[m->nex].delta = (uint32_t)delta;
    m->nex++;
}

static uint64_t rowmap_line(const struct rowmap *m, uint64_t r)
{
    if (r == 0 || r > m->rows || (m->lost && r >= m->lost))
        return 0;
    size_t lo = 0, hi = m->nex; /* entries [0, lo) have row <= r */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ex[mid].row <= r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return m->first + r - 1 + (lo ? m->ex[lo - 1].delta : 0);
}

uint64_t pgfeed__parser_row_line(struct pgfeed_stage *s, uint64_t seq, uint64_t batch_row)
{
    struct parser *P = parser_of(s);
    const struct rowmap *m = &P->maps[seq % ROWMAP_RING];
    return m->seq == seq && seq <= P->seq ? rowmap_line(m, batch_row) : 0;
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
        struct rowmap *m = &P->maps[++P->seq % ROWMAP_RING];
        m->seq = P->seq;
        m->rows = 0;
    }
    return 0;
}

void pgfeed__parser_pending_batch(struct pgfeed_stage *s, struct pgfeed_batch_info *bi)
{
    struct parser *P = parser_of(s);
    bi->rows = P->batch_n;
    bi->first_line = P->batch_n ? P->batch_first : 0;
    bi->last_line = P->lineno;
    bi->end_decoded = P->line_off;
    bi->end_raw = P->stats->bytes_read;
    bi->seq = P->seq;
}
