/*
 * parse_record.c -- one record, once it is found: its line numbers and decoded offset, the
 * header or a data record, the client-side checks, and its row appended to `out`.
 *
 * Leaves to parse_dsv.c finding the record in the input (to parse_csv.c for csv), to
 * parse_header.c what a header record becomes, to parse_report.c the wording of each
 * rejection, to parse_batch.c where the batch ends, and the escaping to encode_copy.c
 * (pgfeed__encode_row turns a tsv line into a COPY row in one pass) or, for binary COPY
 * (tsv and csv), to encode_binary.c, whose values the server would refuse are rejected here.
 *
 * Checks: every data record must be valid in the input's encoding (UTF-8 unless --encoding
 * says otherwise: the sink sets client_encoding to it) without a zero byte (PostgreSQL never
 * takes 0x00 in text); it is checked before it is encoded, a buffer at a time rather than a
 * record at a time (utf8_record), with the fast path of pgfeed__utf8_check (parse_utf8.c) or
 * pgfeed__encoding_check (encoding.c). Then the field count. A record that fails either is
 * refused with pgfeed__ctx_reject and the next one parsed; a line too long for max_line, "\."
 * followed by more data (text), a failed header and a first line in UTF-16 are errors that
 * stop the import.
 *
 * Records in the line ranges of batches an earlier run committed past its prefix
 * (pgfeed_parse_config.skip, on --resume) are found and counted as lines, then dropped.
 *
 * Lines: a record's line is the physical line (LF-ended) where it starts; quoted newlines
 * advance the count, so lines_read counts physical lines and a batch's last_line is where
 * its last record ends. rows_read counts every data record, rejected ones included (so rows
 * imported + rows rejected = rows read); rows_sent (parse_batch.c) only those handed to the
 * sink.
 *
 * Buffers: nothing is allocated per row: a row reserves its worst case in `out` once.
 * `scratch` (a csv value unquoted) is released after a record that grew it past BUF_KEEP.
 */
#include <stdint.h>

#include "parse_internal.h"

#define ROW_DONE SIZE_MAX /* an encoding step dealt with the record itself: *rc says how */

/*
 * The first byte of the record (in `in`) that is 0x00 or not valid in the input's encoding,
 * else n. The input is checked a buffer at a time, from the record on to the end of what is
 * buffered, and the checked end kept, so most records need no call: a record boundary is an
 * ASCII LF, so no sequence crosses one, and one that the end of the buffer cuts only stops
 * the check there.
 */
static size_t utf8_record(struct parser *P, const char *rec, size_t n)
{
    size_t a = (size_t)(rec - P->in.data), b = a + n;
    if (b <= P->u8_end)
        return n;
    size_t from = a > P->u8_end ? a : P->u8_end;
    const char *s = P->in.data + from;
    P->u8_end = from + (P->enc ? pgfeed__encoding_check(P->enc, s, P->in.len - from)
                               : pgfeed__utf8_check(s, P->in.len - from));
    return P->u8_end < b ? P->u8_end - a : n;
}

/* ---- one data record as a row ---- */

/* The record at lineno is in a batch an earlier run committed (neither read nor sent). */
static int committed_earlier(struct parser *P, uint64_t lineno)
{
    while (P->skip_i < P->nskip && P->skip[P->skip_i].last < lineno)
        P->skip_i++;
    return P->skip_i < P->nskip && P->skip[P->skip_i].first <= lineno;
}

/*
 * text: counts the fields the way COPY FROM will (a backslash takes the next byte with it)
 * and passes the line on. Two things COPY would do silently are refused here: "\." ends the
 * data wherever it stands (the rest of the batch would be dropped; PostgreSQL 18 rejects it
 * after data), and a backslash before the line end joins two lines into one row. Returns the
 * number of fields, or 0 with *why set.
 */
static size_t text_row(struct parser *P, char *o, const char *line, size_t n, int *why)
{
    const char *p = line, *end = line + n;
    size_t found = 1;
    for (;;) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        const char *stop = bs ? bs : end;
        while ((p = memchr(p, P->delim, (size_t)(stop - p))) != NULL) {
            found++;
            p++;
        }
        if (bs == NULL)
            break;
        if (bs + 1 == end) {
            *why = 1;
            return 0;
        }
        if (bs[1] == '.') {
            *why = 2;
            return 0;
        }
        p = bs + 2; /* the escaped byte, delimiter or not, is data */
    }
    if (found == P->spec.nfields) {
        memcpy(o, line, n);
        o[n] = '\n';
    }
    return found;
}

/* text: the line as it is at *o, once text_row counted its fields. */
static size_t encode_text(struct parser *P, char **o, const char *rec, size_t n, uint64_t lineno,
                          uint64_t off, int *rc)
{
    int why = 0;
    size_t found = text_row(P, *o, rec, n, &why);
    if (why != 0) {
        *rc = pgfeed__parse_reject_text(P, rec, n, lineno, off, why);
        return ROW_DONE;
    }
    *o += n + 1;
    return found;
}

/* csv with a quote character: the row at *o (pgfeed__csv_row). */
static size_t encode_csv(struct parser *P, char **o, const char *rec, size_t n, int *rc)
{
    P->scratch.len = 0;
    if (P->spec.is_array && pgfeed__buf_reserve(&P->scratch, n) != 0) {
        *rc = pgfeed__parse_nomem(P);
        return ROW_DONE;
    }
    size_t found = pgfeed__csv_row(P, o, rec, n);
    if (P->scratch.cap > BUF_KEEP)
        pgfeed__buf_free(&P->scratch);
    return found;
}

/* Binary COPY (tsv or csv, never text): the record as a tuple at *o. */
static size_t encode_bin(struct parser *P, char **o, const char *rec, size_t n, int quoted,
                         uint64_t lineno, uint64_t off, int *rc)
{
    struct pgfeed_bin_error be;
    size_t found;
    if (quoted) {
        P->scratch.len = 0;
        if (pgfeed__buf_reserve(&P->scratch, n) != 0) {
            *rc = pgfeed__parse_nomem(P);
            return ROW_DONE;
        }
        found = pgfeed__csv_bin_row(P, o, rec, n, &be);
    } else {
        found = pgfeed__encode_bin_row(o, rec, n, &P->spec, P->bin, &be);
    }
    if (found == P->spec.nfields && be.code != 0) {
        *rc = pgfeed__parse_reject_value(P, rec, n, lineno, off, &be); /* be may be in scratch */
        found = ROW_DONE;
    }
    if (P->scratch.cap > BUF_KEEP)
        pgfeed__buf_free(&P->scratch);
    return found;
}

/*
 * One data record (no line end) that starts at line lineno and decoded offset off; quoted:
 * csv, it has a quote character. 0 (sent or rejected) or a failure.
 */
static int data_row(struct parser *P, const char *rec, size_t n, uint64_t lineno, uint64_t off,
                    int quoted)
{
    if (committed_earlier(P, lineno))
        return 0;
    P->stats->rows_read++;
    size_t bad = utf8_record(P, rec, n);
    if (bad != n)
        return pgfeed__parse_reject_encoding(P, rec, n, bad, lineno, off);

    size_t nf = P->spec.nfields;
    size_t need = P->format == PGFEED_FORMAT_TEXT ? n + 1
                  : P->bin                        ? PGFEED_ENCODE_BIN_ROW_MAX(n, nf)
                                                  : PGFEED_ENCODE_ROW_MAX(n, nf);
    if (P->out.cap - P->out.len < need && pgfeed__buf_reserve(&P->out, need) != 0)
        return pgfeed__parse_nomem(P);
    char *o = P->out.data + P->out.len;
    int rc = 0;
    size_t found;
    if (P->bin)
        found = encode_bin(P, &o, rec, n, quoted, lineno, off, &rc);
    else if (P->format == PGFEED_FORMAT_TEXT)
        found = encode_text(P, &o, rec, n, lineno, off, &rc);
    else if (quoted)
        found = encode_csv(P, &o, rec, n, &rc);
    else
        found = pgfeed__encode_row(&o, rec, n, &P->spec);
    if (found == ROW_DONE)
        return rc;
    if (found != nf)
        return pgfeed__parse_reject_count(P, rec, n, found, lineno, off);
    size_t bytes = (size_t)(o - P->out.data) - P->out.len;
    P->out.len += bytes;
    pgfeed__parse_row_sent(P, lineno, bytes);
    return 0;
}

/* ---- records: line numbers, then the header or a data row ---- */

int pgfeed__parse_line(struct parser *P, const char *line, size_t n, size_t eol)
{
    /* Before counting the line, as when it is found too long before its end arrives. */
    if (n > P->max_line)
        return pgfeed__parse_too_long(P, line, n, P->lineno + 1, P->line_off);
    uint64_t lineno = ++P->lineno, off = P->line_off;
    P->line_off += n + eol;
    P->stats->lines_read++;
    const char *utf16 = lineno == 1 ? pgfeed__encoding_utf16(line, n) : NULL;
    if (utf16)
        return pgfeed__parse_utf16(P, line, utf16);
    if (lineno == 1 && !P->enc && n >= 3 && memcmp(line, UTF8_BOM, 3) == 0) {
        line += 3;
        n -= 3;
    }
    if (P->want_header)
        return pgfeed__parse_header(P, line, n);
    if (P->text_ended)
        return pgfeed__parse_after_marker(P, line, n, lineno, off);
    if (P->format == PGFEED_FORMAT_TEXT && n == 2 && line[0] == '\\' && line[1] == '.') {
        P->text_ended = 1; /* not a row */
        return 0;
    }
    return data_row(P, line, n, lineno, off, 0);
}

int pgfeed__parse_record(struct parser *P, const char *r, size_t n, size_t eol, int quoted)
{
    if (n > P->max_line)
        return pgfeed__parse_too_long(P, r, n, P->lineno + 1, P->line_off);
    uint64_t lineno = P->lineno + 1, off = P->line_off;
    uint64_t lines = 1 + (quoted ? count_lf(r, n) : 0); /* quoted newlines */
    P->lineno += lines;
    P->stats->lines_read += lines;
    P->line_off += n + eol;
    const char *utf16 = lineno == 1 ? pgfeed__encoding_utf16(r, n) : NULL;
    if (utf16)
        return pgfeed__parse_utf16(P, r, utf16);
    if (P->want_header)
        return pgfeed__parse_header(P, r, n);
    return data_row(P, r, n, lineno, off, quoted);
}

int pgfeed__parse_open_at_end(struct parser *P, const char *start, size_t n)
{
    uint64_t lineno = P->lineno + 1, off = P->line_off;
    uint64_t lines = count_lf(start, n) + (start[n - 1] != '\n'); /* n > 0 */
    P->lineno += lines;
    P->stats->lines_read += lines;
    P->line_off += n;
    int header = P->want_header;
    P->want_header = 0;
    if (!header)
        P->stats->rows_read++;
    return pgfeed__parse_unterminated(P, start, n, lineno, off, header);
}
