/*
 * rowmap.c -- a batch's row map: the input line each of its rows starts at, kept in a few
 * bytes per batch. The parser records each row as it goes into a batch; the sink looks up
 * the line of a row the server refused (its number in the batch is all the server says).
 *
 * At most one entry per row and `limit` entries per map; none for a tsv file without
 * rejections, where every row is one line after the previous.
 */
#include <stdlib.h>

#include "internal.h"

void pgfeed__rowmap_add(struct pgfeed_rowmap *m, uint64_t line, size_t limit)
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

uint64_t pgfeed__rowmap_line(const struct pgfeed_rowmap *m, uint64_t r)
{
    if (m == NULL || r == 0 || r > m->rows || (m->lost && r >= m->lost))
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
