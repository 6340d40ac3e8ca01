/*
 * parse_dsv.c -- the parser stage: decoded bytes in, COPY rows (text or binary) out, in
 * batches. This
 * file is the stage itself (write, finish, resume, destroy, creation), the input buffer and
 * the loop that finds each record in it and hands it on.
 *
 * The rest of the parser, private to it through parse_internal.h: parse_record.c takes one
 * record (line numbers, header or data, the checks, the row in `out`), parse_header.c the
 * header record and the expected fields, parse_csv.c the csv grammar, parse_batch.c batch
 * boundaries and the row maps, parse_report.c the wording of rejections and errors, and
 * parse_utf8.c the UTF-8 check. Escaping is encode_copy.c's or, for binary COPY
 * (pgfeed__parser_set_binary; tsv and csv), encode_binary.c's; mapping the header to
 * columns is mapping.c's (the job hands it the line, on_header); transactions and
 * checkpoints are the sink's, the rejects file rejects.c's; the sink learns where each
 * batch ends through end_batch, with the batch's row map attached (rowmap.c).
 *
 * Formats: tsv splits on the delimiter with no quoting, backslashes are data, a field equal
 * to the null marker is NULL, array fields become array literals. text is PostgreSQL's own
 * COPY text format; a line is passed on unchanged once its fields are counted (a backslash
 * escapes the next byte, so "\<delimiter>" does not split). In both, a record is a line: LF,
 * or CRLF whose CR is dropped (COPY text has no raw CR in data, and mixed line ends would
 * make COPY fail). csv is RFC 4180, with quoted fields that may hold line ends (parse_csv.c).
 * A UTF-8 BOM at the start of UTF-8 input is skipped; input in UTF-16 is an error.
 *
 * Buffers: `in` holds the partial last record plus the chunk being parsed (the input is
 * copied once; at most max_line + 1 plus one chunk, fixed by the configuration). `out`
 * collects COPY rows and goes to the sink when it reaches OUT_FLUSH, when a batch ends and
 * at finish.
 *
 * Backpressure: when the sink answers PGFEED_EAGAIN the parser keeps `out`, the pending
 * end_batch and the unparsed rest of `in`, answers EAGAIN to every write and finish, and
 * drains all that in resume before it resumes upstream. States: running -> blocked ->
 * running ...; finish sets at_eof (the last record is parsed once), then finished. The
 * record search keeps its place (scanned; csv: cstate) between writes, so input may stop at
 * any byte.
 */
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

/*
 * Finds the next complete record in `in`: 1 with *n and *eol, 0 when more input is needed,
 * or a failure.
 */
static int next_record(struct parser *P, size_t *n, size_t *eol)
{
    if (P->format == PGFEED_FORMAT_CSV) {
        if (P->bom_pending && pgfeed__csv_bom(P, 0) == 0)
            return 0;
        size_t avail = P->in.len - P->pos;
        if (avail == 0)
            return 0;
        const char *start = P->in.data + P->pos;
        int rc = pgfeed__csv_scan(P, start, avail, 0, n, eol);
        if (rc == CSV_LONG)
            return pgfeed__parse_too_long(P, start, *n, P->lineno + 1, P->line_off);
        return rc;
    }
    size_t avail = P->in.len - P->pos;
    char *start = P->in.data + P->pos;
    char *lf = avail > P->scanned ? memchr(start + P->scanned, '\n', avail - P->scanned) : NULL;
    if (lf == NULL) {
        P->scanned = avail;
        /* One more byte may be the CR of a CRLF. */
        if (avail > P->max_line + 1)
            return pgfeed__parse_too_long(P, start, avail, P->lineno + 1, P->line_off);
        return 0;
    }
    *n = (size_t)(lf - start);
    *eol = 1;
    if (*n > 0 && start[*n - 1] == '\r') {
        --*n;
        *eol = 2;
    }
    return 1;
}

/* Parses every complete record in `in`, draining as needed: 0, PGFEED_EAGAIN or an error. */
static int pump(struct parser *P)
{
    int rc;
    for (;;) {
        size_t n = 0, eol = 0;
        if (P->in.len == P->pos || (rc = next_record(P, &n, &eol)) == 0)
            return 0;
        if (rc < 0)
            return rc;
        const char *start = P->in.data + P->pos;
        int quoted = P->csaw_quote;
        /* Consume the record before anything can answer EAGAIN, so it is parsed once. */
        P->pos += n + eol;
        P->scanned = 0;
        P->csaw_quote = 0;
        if (P->format == PGFEED_FORMAT_CSV)
            rc = pgfeed__parse_record(P, start, n, eol, quoted);
        else
            rc = pgfeed__parse_line(P, start, n, eol);
        if (rc != 0)
            return rc;
        if (P->end_pending || P->out.len >= OUT_FLUSH)
            if ((rc = pgfeed__parse_drain(P)) != 0)
                return rc;
    }
}

/* The end of input, not blocked: every complete record has been parsed. */
static int take_rest(struct parser *P)
{
    if (P->format == PGFEED_FORMAT_CSV && P->bom_pending)
        pgfeed__csv_bom(P, 1);
    size_t n = P->in.len - P->pos, eol = 0;
    if (n == 0)
        return 0;
    const char *start = P->in.data + P->pos;
    P->pos = P->in.len;
    if (P->format != PGFEED_FORMAT_CSV) {
        P->scanned = 0;
        return pgfeed__parse_line(P, start, n, 0);
    }
    size_t avail = n;
    int rc = pgfeed__csv_scan(P, start, avail, 1, &n, &eol);
    int quoted = P->csaw_quote;
    P->scanned = 0;
    P->csaw_quote = 0;
    if (rc == CSV_OPEN) {
        if (avail > P->max_line)
            return pgfeed__parse_too_long(P, start, avail, P->lineno + 1, P->line_off);
        rc = pgfeed__parse_open_at_end(P, start, avail);
        P->cstate = CSV_UNQUOTED;
        return rc;
    }
    return pgfeed__parse_record(P, start, n, eol, quoted);
}

/* Moves the unparsed tail of `in` to the front, and lets go of memory a long line took. */
static void compact(struct parser *P)
{
    size_t rest = P->in.len - P->pos;
    if (P->pos != 0) {
        memmove(P->in.data, P->in.data + P->pos, rest);
        P->in.len = rest;
        P->u8_end = P->u8_end > P->pos ? P->u8_end - P->pos : 0;
        P->pos = 0;
    }
    if (P->in.cap > BUF_KEEP && rest < BUF_KEEP / 4) {
        char *d = realloc(P->in.data, BUF_KEEP / 4);
        if (d != NULL) {
            P->in.data = d;
            P->in.cap = BUF_KEEP / 4;
        }
    }
}

static int settle(struct parser *P, int rc)
{
    if (rc == PGFEED_EAGAIN)
        P->blocked = 1;
    else if (rc < 0)
        P->err = rc;
    return rc;
}

static int parser_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct parser *P = parser_of(s);
    if (P->err)
        return P->err;
    if (P->blocked)
        return PGFEED_EAGAIN;
    if (P->at_eof)
        return settle(P, pgfeed__fail(s->ctx, "parser", PGFEED_EINTERNAL, NULL, NULL,
                                      "input written after its end"));
    if (n == 0)
        return 0;
    compact(P);
    if (pgfeed__buf_append(&P->in, p, n) != 0)
        return settle(P, pgfeed__parse_nomem(P));
    int rc = settle(P, pump(P));
    /* The bytes are ours even when the sink stopped us partway: they wait in `in`. */
    return rc == PGFEED_EAGAIN ? 0 : rc;
}

static int parser_finish(struct pgfeed_stage *s)
{
    struct parser *P = parser_of(s);
    if (P->err)
        return P->err;
    if (P->finished)
        return 0;
    if (P->blocked)
        return PGFEED_EAGAIN;
    if (!P->at_eof) {
        P->at_eof = 1;
        int rc = take_rest(P);
        if (rc != 0)
            return settle(P, rc);
    }
    int rc = pgfeed__parse_drain(P);
    if (rc == 0)
        rc = pgfeed__parse_last_batch(P);
    if (rc == 0)
        rc = s->next->ops->finish(s->next);
    if (rc == 0)
        P->finished = 1;
    return settle(P, rc);
}

static void parser_resume(struct pgfeed_stage *s)
{
    struct parser *P = parser_of(s);
    if (P->err || !P->blocked)
        return;
    int rc = pgfeed__parse_drain(P);
    if (rc == 0)
        rc = pump(P);
    if (rc != 0) {
        settle(P, rc);
        return;
    }
    P->blocked = 0;
    pgfeed__stage_resume_upstream(s);
}

static void parser_destroy(struct pgfeed_stage *s)
{
    struct parser *P = parser_of(s);
    pgfeed__buf_free(&P->in);
    pgfeed__buf_free(&P->out);
    pgfeed__buf_free(&P->scratch);
    for (size_t i = 0; i < ROWMAP_RING; i++)
        free(P->maps[i].ex);
    pgfeed__buf_free(&P->bi.restart);
    free(P->skip);
    free(P);
}

static const struct pgfeed_stage_ops parser_ops = {
    .name = "parser",
    .write = parser_write,
    .finish = parser_finish,
    .resume = parser_resume,
    .destroy = parser_destroy,
};

static int bad_char(char c)
{
    return c == '\0' || c == '\n' || c == '\r' || (unsigned char)c >= 0x80;
}

int pgfeed__parser_new(struct pgfeed_ctx *ctx, const struct pgfeed_parse_config *cfg,
                       struct pgfeed_stage **out)
{
    *out = NULL;
    char delim = cfg->delimiter, quote = cfg->quote;
    const char *null_marker = cfg->null_marker;
    pgfeed__format_defaults(cfg->format, &delim, &quote, &null_marker);
    if (bad_char(delim) ||
        (cfg->format == PGFEED_FORMAT_CSV && (bad_char(quote) || quote == delim)))
        return UV_EINVAL;
    struct parser *P = calloc(1, sizeof *P);
    if (P == NULL)
        return UV_ENOMEM;
    P->base.ops = &parser_ops;
    P->base.ctx = ctx;
    P->stats = pgfeed__ctx_stats(ctx);
    P->format = cfg->format;
    P->delim = delim;
    P->quote = quote;
    P->spec.delimiter = P->delim;
    P->spec.null_marker = null_marker;
    P->spec.null_len = strlen(P->spec.null_marker);
    P->max_line = cfg->max_line ? cfg->max_line : (size_t)64 << 20;
    if (P->max_line > SIZE_MAX / 16) /* keeps PGFEED_ENCODE_*ROW_MAX from overflowing */
        P->max_line = SIZE_MAX / 16;
    P->batch_rows = cfg->batch_rows;
    P->batch_bytes = cfg->batch_bytes;
    P->on_header = cfg->on_header;
    P->on_header_arg = cfg->on_header_arg;
    P->want_header = cfg->has_header;
    P->enc = pgfeed__encoding_is_utf8(cfg->encoding) ? NULL : cfg->encoding;
    P->bom_pending = cfg->format == PGFEED_FORMAT_CSV && P->enc == NULL;
    pgfeed__parser_set_fields(&P->base, cfg->nfields, cfg->is_array, cfg->field_names);
    if (cfg->nskip && (P->skip = malloc(cfg->nskip * sizeof *P->skip)) != NULL) {
        memcpy(P->skip, cfg->skip, cfg->nskip * sizeof *P->skip);
        P->nskip = cfg->nskip;
    }
    if ((cfg->nskip && P->skip == NULL) ||
        pgfeed__buf_reserve(&P->out, OUT_FLUSH + OUT_FLUSH / 4) != 0) {
        free(P->skip);
        free(P);
        return UV_ENOMEM;
    }
    *out = &P->base;
    return 0;
}

void pgfeed__parser_set_position(struct pgfeed_stage *s, uint64_t line, uint64_t decoded_offset)
{
    struct parser *P = parser_of(s);
    P->lineno = line > 0 ? line - 1 : 0;
    P->line_off = decoded_offset;
    P->want_header = 0;
    P->bom_pending = P->bom_pending && P->lineno == 0 && decoded_offset == 0;
}
