/*
 * parse_csv.c -- the csv grammar: where a record ends (a scan that can stop and resume at
 * any byte), where a field ends and what its value is, and a record as a COPY text row or a
 * binary tuple.
 *
 * Leaves to parse_record.c the line numbers, the checks and what happens to a record once it
 * is found, to parse_dsv.c the failure when a record is too long (CSV_LONG), and the
 * escaping of each value to encode_copy.c and encode_binary.c.
 *
 * RFC 4180: a field that starts with the quote character runs to the next quote not
 * doubled, and holds delimiters, LF, CRLF and lone CR as data; a record ends at an LF
 * outside quotes (a CR just before it is dropped, and so is a CR at the very end of the
 * input); a lone CR outside quotes is data. Leniency as most readers: a quote inside an
 * unquoted field is a literal character, and so is anything after a closing quote up to the
 * delimiter ("ab"c is abc). An unquoted field equal to the null marker (default: empty) is
 * NULL, a quoted one never is. A UTF-8 BOM at the start of the input is skipped.
 *
 * States: the scanner keeps its place in the parser (scanned, cstate: CSV_UNQUOTED or
 * CSV_QUOTED, copen, csaw_quote) between writes, so input may stop at any byte: inside
 * quotes, between the two quotes of a doubled quote, between CR and LF. Buffers: `scratch`
 * holds a quoted value whose doubled quotes had to be undone (at most one record's length).
 */
#include "parse_internal.h"

const char *pgfeed__csv_field(const struct parser *P, const char *p, const char *end,
                              struct pgfeed_buf *dec, int *rc)
{
    const char Q = P->quote;
    if (p < end && *p == Q) {
        const char *s = p + 1;
        for (;;) {
            const char *q = memchr(s, Q, (size_t)(end - s));
            if (q == NULL) {
                if (dec && pgfeed__buf_append(dec, s, (size_t)(end - s)) != 0 && rc)
                    *rc = UV_ENOMEM;
                return end;
            }
            int dbl = q + 1 < end && q[1] == Q;
            if (dec && pgfeed__buf_append(dec, s, (size_t)(q + dbl - s)) != 0 && rc)
                *rc = UV_ENOMEM;
            if (!dbl) {
                p = q + 1;
                break;
            }
            s = q + 2;
        }
    }
    const char *d = memchr(p, P->delim, (size_t)(end - p));
    if (d == NULL)
        d = end;
    if (dec && pgfeed__buf_append(dec, p, (size_t)(d - p)) != 0 && rc)
        *rc = UV_ENOMEM;
    return d;
}

/* ---- records as COPY text rows ---- */

/*
 * A quoted array value at p (*p is the quote) as an array literal at *o. In one piece
 * ("a,b") it is encoded where it stands, else unquoted into `scratch` first. Returns the end
 * of the field (its delimiter, or end).
 */
static const char *quoted_array_to(struct parser *P, char **o, const char *p, const char *end)
{
    const char *q = memchr(p + 1, P->quote, (size_t)(end - p - 1));
    if (q && (q + 1 == end || q[1] == P->delim)) {
        *o = pgfeed__encode_array_to(*o, p + 1, (size_t)(q - p - 1));
        return q + 1;
    }
    P->scratch.len = 0;
    const char *d = pgfeed__csv_field(P, p, end, &P->scratch, NULL);
    *o = pgfeed__encode_array_to(*o, P->scratch.data, P->scratch.len);
    return d;
}

/*
 * A quoted scalar value at p (*p is the quote) at *o when emit: the pieces between doubled
 * quotes and the text after the closing quote are escaped one by one. Returns the end of
 * the field (its delimiter, or end).
 */
static const char *quoted_to(const struct parser *P, char **o, const char *p, const char *end,
                             int emit)
{
    const char Q = P->quote;
    const char *s = p + 1;
    for (;;) {
        const char *q = memchr(s, Q, (size_t)(end - s));
        if (q == NULL) /* not after csv_scan: a quote open at end closes there */
            q = end;
        int dbl = q + 1 < end && q[1] == Q;
        if (emit) /* a doubled quote keeps one */
            *o = pgfeed__encode_field_to(*o, s, (size_t)(q + dbl - s));
        if (!dbl) {
            p = q < end ? q + 1 : end;
            break;
        }
        s = q + 2;
    }
    const char *d = find(p, end, P->delim); /* text after the closing quote is data */
    if (emit)
        *o = pgfeed__encode_field_to(*o, p, (size_t)(d - p));
    return d;
}

/* The same grammar as pgfeed__csv_scan and pgfeed__csv_field. */
size_t pgfeed__csv_row(struct parser *P, char **dst, const char *r, size_t n)
{
    const char Q = P->quote, D = P->delim;
    const struct pgfeed_row_spec *sp = &P->spec;
    const size_t nf = sp->nfields;
    const char *p = r, *end = r + n;
    char *o = *dst;
    size_t f = 0;
    for (;;) {
        int emit = f < nf;
        int arr = emit && sp->is_array && sp->is_array[f];
        const char *d;
        if (arr && p < end && *p == Q) {
            d = quoted_array_to(P, &o, p, end);
        } else if (p < end && *p == Q) {
            d = quoted_to(P, &o, p, end, emit);
        } else {
            d = find(p, end, D);
            size_t len = (size_t)(d - p);
            if (emit && len == sp->null_len && memcmp(p, sp->null_marker, len) == 0) {
                o[0] = '\\';
                o[1] = 'N';
                o += 2;
            } else if (arr) {
                o = pgfeed__encode_array_to(o, p, len);
            } else if (emit) {
                o = pgfeed__encode_field_to(o, p, len);
            }
        }
        f++;
        if (d == end)
            break;
        p = d + 1;
        if (f < nf)
            *o++ = '\t';
    }
    if (f == nf) {
        *o++ = '\n';
        *dst = o;
    }
    return f;
}

/* ---- records as binary tuples ---- */

/*
 * A quoted value in one piece is encoded where it stands, one in pieces is unquoted into
 * `scratch` first; when encode_binary.c refuses a value, `scratch` may hold it.
 */
size_t pgfeed__csv_bin_row(struct parser *P, char **dst, const char *r, size_t n,
                           struct pgfeed_bin_error *err)
{
    const char Q = P->quote, D = P->delim;
    const struct pgfeed_row_spec *sp = &P->spec;
    const size_t nf = sp->nfields;
    const char *p = r, *end = r + n;
    char *o = *dst;
    size_t f = 0;
    err->code = 0;
    if (nf > 0) {
        o[0] = (char)(nf >> 8);
        o[1] = (char)nf;
        o += 2;
    }
    for (;;) {
        const char *d;
        if (f >= nf || err->code != 0) {
            d = pgfeed__csv_field(P, p, end, NULL, NULL);
        } else if (p < end && *p == Q) {
            const char *v = p + 1, *q = memchr(p + 1, Q, (size_t)(end - p - 1));
            size_t len;
            if (q && (q + 1 == end || q[1] == D)) { /* one piece: "a,b" */
                len = (size_t)(q - v);
                d = q + 1;
            } else {
                P->scratch.len = 0;
                d = pgfeed__csv_field(P, p, end, &P->scratch, NULL);
                v = P->scratch.data;
                len = P->scratch.len;
            }
            o = pgfeed__encode_bin_field(o, v, len, &P->bin[f], err);
        } else {
            d = find(p, end, D);
            size_t len = (size_t)(d - p);
            if (len == sp->null_len && memcmp(p, sp->null_marker, len) == 0) {
                memset(o, 0xFF, 4); /* length -1: NULL */
                o += 4;
            } else {
                o = pgfeed__encode_bin_field(o, p, len, &P->bin[f], err);
            }
        }
        if (f < nf && err->code != 0 && o == NULL) {
            err->field = f;
            o = *dst; /* not NULL again: only counting from here */
        }
        f++;
        if (d == end)
            break;
        p = d + 1;
    }
    if (f == nf && err->code == 0)
        *dst = o;
    return f;
}

/* ---- where a record ends ---- */

/*
 * Inside a quoted field at *pp: 1 with *pp past its closing quote, or 0 with *pp where the
 * scan stops for more input (the end, or a quote that ends the input: closing, or the
 * first of two).
 */
static int skip_quoted(const char **pp, const char *end, char Q, int at_eof)
{
    const char *p = *pp;
    for (;;) {
        const char *q = memchr(p, Q, (size_t)(end - p));
        if (q == NULL) {
            *pp = end;
            return 0;
        }
        if (q + 1 == end && !at_eof) {
            *pp = q; /* closing, or the first of two */
            return 0;
        }
        if (q + 1 < end && q[1] == Q) {
            p = q + 2;
            continue;
        }
        *pp = q + 1;
        return 1;
    }
}

/* A quote that ends the available input is looked at again with the next byte. */
int pgfeed__csv_scan(struct parser *P, const char *start, size_t avail, int at_eof, size_t *n,
                     size_t *eol)
{
    const char Q = P->quote, D = P->delim;
    /*
     * Past max_line + 1 bytes (one more may be the CR of a CRLF) without a line end the
     * record is too long: look no further, so that what the error says (a quote still open)
     * is the state at that byte whether the input came whole or in pieces.
     */
    if (!at_eof && avail > P->max_line + 2)
        avail = P->max_line + 2;
    const char *end = start + avail, *p = start + P->scanned, *lf = NULL;
    int lf_known = 0;
    for (;;) {
        if (P->cstate == CSV_QUOTED) {
            if (!skip_quoted(&p, end, Q, at_eof))
                break;
            P->cstate = CSV_UNQUOTED;
        }
        if (!lf_known || (lf != NULL && lf < p)) { /* none yet, or that one was quoted */
            lf = memchr(p, '\n', (size_t)(end - p));
            lf_known = 1;
        }
        const char *lim = lf ? lf : end;
        const char *q = memchr(p, Q, (size_t)(lim - p));
        if (q == NULL) {
            if (lf == NULL) {
                p = end;
                break;
            }
            size_t len = (size_t)(lf - start);
            *eol = 1;
            if (len > 0 && start[len - 1] == '\r') {
                len--;
                *eol = 2;
            }
            *n = len;
            return 1;
        }
        P->csaw_quote = 1;
        if (q == start || q[-1] == D) { /* at a field start: quoted; else a literal quote */
            P->cstate = CSV_QUOTED;
            P->copen = (size_t)(q - start);
        }
        p = q + 1;
    }
    P->scanned = (size_t)(p - start);
    if (at_eof) {
        if (P->cstate == CSV_QUOTED)
            return CSV_OPEN;
        size_t len = avail;
        *eol = 0;
        if (len > 0 && start[len - 1] == '\r') { /* a CRLF cut short */
            len--;
            *eol = 1;
        }
        *n = len;
        return 1;
    }
    if (avail > P->max_line + 1) { /* one more byte may be the CR of a CRLF */
        *n = avail;
        return CSV_LONG;
    }
    return 0;
}

int pgfeed__csv_bom(struct parser *P, int at_eof)
{
    size_t avail = P->in.len - P->pos, k = avail < 3 ? avail : 3;
    if (k == 0 && !at_eof)
        return 0;
    if (k > 0 && memcmp(P->in.data + P->pos, UTF8_BOM, k) == 0) {
        if (k < 3 && !at_eof)
            return 0;
        if (k == 3) {
            P->pos += 3;
            P->line_off += 3;
        }
    }
    P->bom_pending = 0;
    return 1;
}
