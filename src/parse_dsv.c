/*
 * parse_dsv.c -- the parser stage: decoded bytes in, COPY text rows out, in batches.
 *
 * Owns line splitting (LF, or CRLF whose CR is dropped), the header line, the field count
 * check, line numbers and decoded offsets, and batch boundaries. Escaping is encode_copy.c's
 * (pgfeed__encode_row turns a tsv line into a COPY row in one pass); mapping the header to
 * columns is the job's (on_header); transactions and checkpoints are the sink's, which is
 * told where each batch ends through end_batch.
 *
 * Formats: tsv splits on the delimiter with no quoting, backslashes are data, a field equal
 * to the null marker is NULL, array fields become array literals. text is PostgreSQL's own
 * COPY text format; a line is passed on unchanged once its fields are counted (a backslash
 * escapes the next byte, so "\<delimiter>" does not split). In both, a CR before the LF is
 * dropped: COPY text has no raw CR in data, and mixed line ends would make COPY fail.
 *
 * Buffers: `in` holds the partial last line plus the chunk being parsed (the input is
 * copied once; at most max_line + 1 plus one chunk, fixed by the configuration). `out`
 * collects COPY rows and goes to the sink when it reaches OUT_FLUSH, when a batch ends and
 * at finish. Nothing is allocated per row: a row reserves its worst case in `out` once.
 *
 * Backpressure: when the sink answers PGFEED_EAGAIN the parser keeps `out`, the pending
 * end_batch and the unparsed rest of `in`, answers EAGAIN to every write and finish, and
 * drains all that in resume before it resumes upstream. States: running -> blocked ->
 * running ...; finish sets at_eof (the last line is parsed once), then finished.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define OUT_FLUSH (256u * 1024) /* hand rows to the sink in pieces of about this size */
#define BUF_KEEP  (4u << 20)    /* a buffer a long line grew past this is released after */
#define NAMES_MAX 16            /* field names listed in a field-count message */

static const char utf8_bom[3] = {'\xEF', '\xBB', '\xBF'};

struct parser {
    struct pgfeed_stage base;
    struct pgfeed_stats *stats;

    pgfeed_format_t format;
    char delim;
    size_t max_line;
    uint64_t batch_rows;
    int (*on_header)(struct pgfeed_job *job, const char *line, size_t n);
    int want_header; /* the next line is the header */

    const char *const *names;    /* spec.nfields names for messages, or NULL */
    struct pgfeed_row_spec spec; /* delimiter, null marker, fields (nfields, is_array) */

    struct pgfeed_buf in; /* [pos, in.len): input not parsed yet */
    size_t pos;
    size_t scanned;    /* bytes after pos known to hold no LF */
    uint64_t line_off; /* decoded offset of in.data[pos] */
    uint64_t lineno;   /* lines parsed so far, header included */

    struct pgfeed_buf out; /* COPY rows not yet written to the sink */
    uint64_t out_rows;
    uint64_t batch_n, batch_first, batch_last;
    int end_pending; /* bi is ready; end_batch not yet accepted */
    struct pgfeed_batch_info bi;

    int blocked;    /* the sink said EAGAIN; we said or will say EAGAIN upstream */
    int at_eof;     /* finish() was called and the last line parsed */
    int finished;   /* the sink accepted finish */
    int text_ended; /* text format: the end-of-copy marker line was seen */
    int err;        /* first failure, returned to every later call */
};

static struct parser *parser_of(struct pgfeed_stage *s)
{
    return container_of(s, struct parser, base);
}

static int fail_nomem(struct parser *P)
{
    return pgfeed__fail(P->base.job, "parser", UV_ENOMEM, NULL, NULL, "out of memory");
}

/* "a, b, c" (at most NAMES_MAX names), or NULL when there are no names or no memory. */
static char *join_names(const struct parser *P)
{
    size_t nf = P->spec.nfields;
    if (P->names == NULL || nf == 0)
        return NULL;
    size_t shown = nf < NAMES_MAX ? nf : NAMES_MAX;
    size_t len = 8;
    for (size_t i = 0; i < shown; i++)
        len += strlen(P->names[i]) + 2;
    char *s = malloc(len), *o = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < shown; i++) {
        size_t n = strlen(P->names[i]);
        if (i) {
            memcpy(o, ", ", 2);
            o += 2;
        }
        memcpy(o, P->names[i], n);
        o += n;
    }
    if (shown < nf) {
        memcpy(o, ", ...", 5);
        o += 5;
    }
    *o = '\0';
    return s;
}

static int fail_field_count(struct parser *P, const char *line, size_t n, size_t found,
                            uint64_t lineno, uint64_t off)
{
    struct pgfeed_job *job = P->base.job;
    size_t nf = P->spec.nfields;
    char *names = join_names(P);
    char *quoted = pgfeed__quote_input(line, n);
    char *detail = pgfeed__strdup_printf(
        "Expected %zu field%s%s%s%s, found %zu. The line is \"%s\".", nf, nf == 1 ? "" : "s",
        names ? " (" : "", names ? names : "", names ? ")" : "", found, quoted ? quoted : "");
    const char *hint = P->delim == '\t'
                           ? "Check --delimiter and --columns, or whether the file is really "
                             "tab-separated."
                           : "Check --delimiter and --columns.";
    int rc = pgfeed__fail(job, "parser", PGFEED_EPARSE, detail, hint,
                          "wrong number of fields in line %llu", (unsigned long long)lineno);
    /* Too few: point at the first missing field; too many: at the first extra one. */
    size_t col = found < nf ? found + 1 : nf + 1;
    const char *col_name = found < nf && P->names ? P->names[found] : NULL;
    pgfeed__fail_at(job, lineno, (int)col, col_name, off, P->stats->bytes_read);
    free(names);
    free(quoted);
    free(detail);
    return rc;
}

static int fail_line(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off,
                     const char *what, const char *why, const char *hint)
{
    char *quoted = pgfeed__quote_input(line, n);
    char *detail = pgfeed__strdup_printf("%s The line is \"%s\".", why, quoted ? quoted : "");
    int rc = pgfeed__fail(P->base.job, "parser", PGFEED_EPARSE, detail, hint, "%s in line %llu",
                          what, (unsigned long long)lineno);
    pgfeed__fail_at(P->base.job, lineno, 0, NULL, off, P->stats->bytes_read);
    free(quoted);
    free(detail);
    return rc;
}

static int fail_too_long(struct parser *P, const char *line, size_t n, uint64_t lineno,
                         uint64_t off)
{
    /* The same bytes whether the line end was seen yet or not. */
    char *quoted = pgfeed__quote_input(line, n < P->max_line + 1 ? n : P->max_line + 1);
    char *detail = pgfeed__strdup_printf("The limit is %zu bytes; the line begins \"%s\".",
                                         P->max_line, quoted ? quoted : "");
    int rc = pgfeed__fail(P->base.job, "parser", PGFEED_EPARSE, detail,
                          "Check that the input is line-oriented text with LF or CRLF line "
                          "ends, or raise the max_line option.",
                          "input line %llu is too long", (unsigned long long)lineno);
    pgfeed__fail_at(P->base.job, lineno, 0, NULL, off, P->stats->bytes_read);
    free(quoted);
    free(detail);
    return rc;
}

/* tsv: one row into out. */
static int tsv_row(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off)
{
    size_t need = PGFEED_ENCODE_ROW_MAX(n, P->spec.nfields);
    if (P->out.cap - P->out.len < need && pgfeed__buf_reserve(&P->out, need) != 0)
        return fail_nomem(P);
    char *o = P->out.data + P->out.len;
    size_t found = pgfeed__encode_row(&o, line, n, &P->spec);
    if (found != P->spec.nfields)
        return fail_field_count(P, line, n, found, lineno, off);
    P->out.len = (size_t)(o - P->out.data);
    return 0;
}

/*
 * text: count the fields the way COPY FROM will (a backslash takes the next byte with it)
 * and pass the line on. Two things COPY would do silently are refused here: "\." ends the
 * data wherever it stands (the rest of the batch would be dropped; PostgreSQL 18 rejects it
 * after data), and a backslash before the line end joins two lines into one row.
 */
static int text_row(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off)
{
    const char *p = line, *end = line + n;
    if (n == 2 && line[0] == '\\' && line[1] == '.') {
        P->text_ended = 1;
        return 1; /* not a row */
    }
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
        if (bs + 1 == end)
            return fail_line(P, line, n, lineno, off, "backslash at end of line",
                             "In COPY text format a backslash escapes the next character, so "
                             "this one would join the line to the next.",
                             "Write a backslash in data as \\\\ and a newline as \\n.");
        if (bs[1] == '.')
            return fail_line(P, line, n, lineno, off, "end-of-copy marker inside data",
                             "In COPY text format \\. ends the data and may only stand alone "
                             "on a line.",
                             "Write a backslash in data as \\\\.");
        p = bs + 2; /* the escaped byte, delimiter or not, is data */
    }
    if (found != P->spec.nfields)
        return fail_field_count(P, line, n, found, lineno, off);
    char *o = P->out.data + P->out.len;
    memcpy(o, line, n);
    o[n] = '\n';
    P->out.len += n + 1;
    return 0;
}

/* One line (n bytes, no line end; eol bytes of line end follow it in the input). */
static int take_line(struct parser *P, const char *line, size_t n, size_t eol)
{
    /* Before counting the line, as when it is found too long before its end arrives. */
    if (n > P->max_line)
        return fail_too_long(P, line, n, P->lineno + 1, P->line_off);
    uint64_t lineno = ++P->lineno, off = P->line_off;
    P->line_off += n + eol;
    P->stats->lines_read++;
    if (lineno == 1 && n >= 3 && memcmp(line, utf8_bom, 3) == 0) {
        line += 3;
        n -= 3;
    }
    if (P->want_header) {
        P->want_header = 0;
        return P->on_header ? P->on_header(P->base.job, line, n) : 0;
    }
    if (P->text_ended)
        return fail_line(P, line, n, lineno, off, "data after the end-of-copy marker",
                         "An earlier line holds only \\., which ends COPY text data, and this "
                         "line follows it.",
                         "Remove the marker line, or the lines after it.");

    int rc;
    if (P->format == PGFEED_FORMAT_TEXT) {
        if ((rc = pgfeed__buf_reserve(&P->out, n + 1)) != 0)
            return fail_nomem(P);
        rc = text_row(P, line, n, lineno, off);
        if (rc == 1)
            return 0;
    } else {
        rc = tsv_row(P, line, n, lineno, off);
    }
    if (rc != 0)
        return rc;

    P->stats->rows_read++;
    P->out_rows++;
    if (P->batch_n++ == 0)
        P->batch_first = lineno;
    P->batch_last = lineno;
    if (P->batch_rows != 0 && P->batch_n == P->batch_rows) {
        P->bi.rows = P->batch_n;
        P->bi.first_line = P->batch_first;
        P->bi.last_line = P->batch_last;
        P->bi.end_decoded = P->line_off;
        P->bi.end_raw = P->stats->bytes_read;
        P->end_pending = 1;
        P->batch_n = 0;
    }
    return 0;
}

/* Hands out and a finished batch to the sink: 0, PGFEED_EAGAIN or an error. */
static int drain(struct parser *P)
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
    }
    return 0;
}

/* Parses every complete line in `in`, draining as needed: 0, PGFEED_EAGAIN or an error. */
static int pump(struct parser *P)
{
    int rc;
    for (;;) {
        size_t avail = P->in.len - P->pos;
        if (avail == 0)
            return 0;
        char *start = P->in.data + P->pos;
        char *lf = avail > P->scanned ? memchr(start + P->scanned, '\n', avail - P->scanned) : NULL;
        if (lf == NULL) {
            P->scanned = avail;
            /* One more byte may be the CR of a CRLF. */
            if (avail > P->max_line + 1)
                return fail_too_long(P, start, avail, P->lineno + 1, P->line_off);
            return 0;
        }
        size_t n = (size_t)(lf - start), eol = 1;
        if (n > 0 && start[n - 1] == '\r') {
            n--;
            eol = 2;
        }
        /* Consume the line before anything can answer EAGAIN, so it is parsed once. */
        P->pos += n + eol;
        P->scanned = 0;
        if ((rc = take_line(P, start, n, eol)) != 0)
            return rc;
        if (P->end_pending || P->out.len >= OUT_FLUSH)
            if ((rc = drain(P)) != 0)
                return rc;
    }
}

/* Moves the unparsed tail of `in` to the front, and lets go of memory a long line took. */
static void compact(struct parser *P)
{
    size_t rest = P->in.len - P->pos;
    if (P->pos != 0) {
        memmove(P->in.data, P->in.data + P->pos, rest);
        P->in.len = rest;
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
        return settle(P, pgfeed__fail(s->job, "parser", PGFEED_EINTERNAL, NULL, NULL,
                                      "input written after its end"));
    if (n == 0)
        return 0;
    compact(P);
    if (pgfeed__buf_append(&P->in, p, n) != 0)
        return settle(P, fail_nomem(P));
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
        /* Not blocked, so every complete line has been parsed: what is left has no LF. */
        P->at_eof = 1;
        size_t n = P->in.len - P->pos;
        if (n != 0) {
            const char *line = P->in.data + P->pos;
            P->pos = P->in.len;
            P->scanned = 0;
            int rc = take_line(P, line, n, 0);
            if (rc != 0)
                return settle(P, rc);
        }
    }
    int rc = drain(P);
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
    int rc = drain(P);
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
    free(P);
}

static const struct pgfeed_stage_ops parser_ops = {
    .name = "parser",
    .write = parser_write,
    .finish = parser_finish,
    .resume = parser_resume,
    .destroy = parser_destroy,
};

void pgfeed__parser_set_fields(struct pgfeed_stage *s, size_t nfields, const int *is_array,
                               const char *const *field_names)
{
    struct parser *P = parser_of(s);
    P->names = field_names;
    P->spec.nfields = nfields;
    P->spec.is_array = NULL;
    for (size_t i = 0; is_array && i < nfields; i++)
        if (is_array[i])
            P->spec.is_array = is_array;
}

int pgfeed__parser_new(struct pgfeed_job *job, const struct pgfeed_parse_config *cfg,
                       struct pgfeed_stage **out)
{
    *out = NULL;
    struct parser *P = calloc(1, sizeof *P);
    if (P == NULL)
        return UV_ENOMEM;
    P->base.ops = &parser_ops;
    P->base.job = job;
    P->stats = pgfeed__job_stats(job);
    P->format = cfg->format;
    P->delim = cfg->delimiter ? cfg->delimiter : '\t';
    P->spec.delimiter = P->delim;
    P->spec.null_marker = cfg->null_marker ? cfg->null_marker : "\\N";
    P->spec.null_len = strlen(P->spec.null_marker);
    P->max_line = cfg->max_line ? cfg->max_line : (size_t)64 << 20;
    if (P->max_line > SIZE_MAX / 8) /* keeps PGFEED_ENCODE_ROW_MAX from overflowing */
        P->max_line = SIZE_MAX / 8;
    P->batch_rows = cfg->batch_rows;
    P->on_header = cfg->on_header;
    P->want_header = cfg->has_header;
    pgfeed__parser_set_fields(&P->base, cfg->nfields, cfg->is_array, cfg->field_names);
    if (pgfeed__buf_reserve(&P->out, OUT_FLUSH + OUT_FLUSH / 4) != 0) {
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
}
