/*
 * fuzz_parse.c -- the parser stage (parse_dsv.c) in every format on arbitrary input.
 *
 * Input: 8 configuration bytes, then the binary field kinds when binary is on (one byte per
 * field), then the decoded text.
 *   byte 0  bits 0-1 format (tsv, text, csv, tsv), bits 2-3 header (none, one, one that
 *           on_header refuses, none), bit 4 binary COPY (pgfeed__parser_set_binary), bit 5
 *           start at line 7, decoded byte 1000 (pgfeed__parser_set_position)
 *   byte 1  fields 1 .. 8          byte 2  which of them are arrays
 *   byte 3  delimiter, quote and null marker (from short lists, defaults included)
 *   byte 4  rows per batch, bytes per batch, --max-rejects
 *   byte 5  max_line, EAGAIN from the fake sink, the largest piece a write gets
 *   byte 6  seed of the piece sizes and of the EAGAINs
 *   byte 7  bits 0-1 the input's encoding (UTF-8 by default, LATIN1, WIN1252, UTF8 by name)
 * The run is repeated whole without EAGAIN: output, batches, the rows' start lines (asked at
 * each batch end, as the sink does), error and counters must be the same. The output is then
 * checked for its form: binary tuples of the right field count that pgfeed__bin_row_as_input can
 * print back, or COPY text rows of the right field count with only COPY's escapes; COPY text
 * (and text format) output must also be valid in the input's encoding, every byte of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAXF 8

struct cfg {
    struct pgfeed_parse_config pc;
    int header_fails, binary, position;
    size_t nfields;
    int is_array[MAXF];
    const char *names[MAXF];
    struct pgfeed_bin_field bin[MAXF];
    uint64_t max_rejects;
    unsigned eagain;
    size_t max_piece;
    uint64_t seed;
};

struct result {
    int rc;
    struct pgfeed_buf out, batches;
    struct pgfeed_buf lines; /* uint64_t: every batch's rows' start lines, as the sink asks */
    struct pgfeed_stats stats;
    int code, column;
    uint64_t line, decoded_offset;
    char *message, *detail;
};

struct ctx {
    const struct cfg *g;
    struct pgfeed_stage *parser;
};

static int on_header(void *arg, const char *line, size_t n)
{
    pgfeed_job_t *job = arg;
    struct ctx *c = pgfeed_job_get_data(job);
    (void)line;
    (void)n;
    if (c->g->header_fails)
        return pgfeed__fail(pgfeed__job_ctx(job), "job", PGFEED_EHEADER, NULL, NULL,
                            "header refused");
    pgfeed__parser_set_fields(c->parser, c->g->nfields, c->g->is_array, c->g->names);
    return 0;
}

/* At each batch end the sink asks where each of its rows starts (the server's COPY line N). */
static void row_lines(struct fuzz_sink *k, const struct pgfeed_batch_info *bi)
{
    struct result *r = k->arg;
    uint64_t prev = 0;
    for (uint64_t i = 1; i <= bi->rows && i <= 1000; i++) {
        uint64_t line = pgfeed__parser_row_line(k->base.prev, bi->seq, i);
        if (line == 0 || line <= prev || line < bi->first_line || line > bi->last_line ||
            (i == 1 && line != bi->first_line))
            fuzz_die("batch %llu row %llu: line %llu (previous %llu, batch lines %llu..%llu)",
                     (unsigned long long)bi->seq, (unsigned long long)i, (unsigned long long)line,
                     (unsigned long long)prev, (unsigned long long)bi->first_line,
                     (unsigned long long)bi->last_line);
        prev = line;
        if (pgfeed__buf_append(&r->lines, &line, sizeof line) != 0)
            fuzz_die("out of memory");
    }
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* 1 when the run could be made (the configuration is valid), else 0. */
static int run(const struct cfg *g, const uint8_t *in, size_t n, size_t max_piece, unsigned eagain,
               struct result *r)
{
    pgfeed_job_t *job = fuzz_job_new(g->max_rejects);
    struct ctx c = {g, NULL};
    struct fuzz_sink k;
    uint64_t rng = g->seed;

    memset(r, 0, sizeof *r);
    pgfeed_job_set_data(job, &c);
    struct pgfeed_parse_config pc = g->pc;
    pc.on_header_arg = job;
    if (pgfeed__parser_new(pgfeed__job_ctx(job), &pc, &c.parser) != 0) {
        fuzz_job_close(job);
        return 0;
    }
    if (g->binary)
        pgfeed__parser_set_binary(c.parser, g->bin);
    if (g->position)
        pgfeed__parser_set_position(c.parser, 7, 1000);
    fuzz_sink_init(&k, job, eagain, g->seed ^ 0xabcdef);
    k.on_end_batch = row_lines;
    k.arg = r;
    c.parser->next = &k.base;
    k.base.prev = c.parser;

    r->rc = fuzz_feed(c.parser, &k, in, n, max_piece, &rng);
    if (r->rc != 0 && (c.parser->ops->write(c.parser, "x\n", 2) != r->rc ||
                       c.parser->ops->finish(c.parser) != r->rc))
        fuzz_die("the parser's failure is not sticky");
    if (r->rc == 0 && !k.finished)
        fuzz_die("finish succeeded but did not reach the sink");
    const struct pgfeed_error *e = pgfeed_job_error(job);
    r->code = e->code;
    r->column = e->column;
    r->line = e->line;
    r->decoded_offset = e->decoded_offset;
    r->message = dup_str(e->message);
    r->detail = dup_str(e->detail);
    pgfeed_job_stats(job, &r->stats);
    r->out = k.got;
    r->batches = k.batches;
    k.got.data = k.batches.data = NULL;
    fuzz_sink_free(&k);
    c.parser->ops->destroy(c.parser);
    fuzz_job_close(job);
    return 1;
}

static void result_free(struct result *r)
{
    pgfeed__buf_free(&r->out);
    pgfeed__buf_free(&r->batches);
    pgfeed__buf_free(&r->lines);
    free(r->message);
    free(r->detail);
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void compare(const struct result *a, const struct result *b)
{
    if (a->rc != b->rc)
        fuzz_die("pieces and whole: results differ: %s and %s (%s / %s)", pgfeed_err_name(a->rc),
                 pgfeed_err_name(b->rc), a->message ? a->message : "-",
                 b->message ? b->message : "-");
    if (a->out.len != b->out.len || (a->out.len && memcmp(a->out.data, b->out.data, a->out.len)))
        fuzz_die("pieces and whole: output differs (%zu and %zu bytes)", a->out.len, b->out.len);
    if (a->batches.len != b->batches.len ||
        (a->batches.len && memcmp(a->batches.data, b->batches.data, a->batches.len)))
        fuzz_die("pieces and whole: batches differ");
    if (a->lines.len != b->lines.len ||
        (a->lines.len && memcmp(a->lines.data, b->lines.data, a->lines.len)))
        fuzz_die("pieces and whole: the rows' start lines differ");
    if (a->code != b->code || a->column != b->column || a->line != b->line ||
        a->decoded_offset != b->decoded_offset || !same_str(a->message, b->message) ||
        !same_str(a->detail, b->detail))
        fuzz_die("pieces and whole: errors differ: \"%s\" (%s) line %llu column %d offset %llu, "
                 "and \"%s\" (%s) line %llu column %d offset %llu",
                 a->message ? a->message : "-", a->detail ? a->detail : "-",
                 (unsigned long long)a->line, a->column, (unsigned long long)a->decoded_offset,
                 b->message ? b->message : "-", b->detail ? b->detail : "-",
                 (unsigned long long)b->line, b->column, (unsigned long long)b->decoded_offset);
    if (a->stats.rows_read != b->stats.rows_read || a->stats.rows_sent != b->stats.rows_sent ||
        a->stats.lines_read != b->stats.lines_read ||
        a->stats.rows_rejected != b->stats.rows_rejected)
        fuzz_die("pieces and whole: counters differ");
}

/* Binary output: whole tuples of nfields fields, each printable as an input line. */
static void check_binary(const struct cfg *g, const struct result *r)
{
    struct pgfeed_buf line = {0};
    size_t at = 0, rows = 0;
    while (at < r->out.len) {
        size_t t = pgfeed__bin_tuple_len(r->out.data + at, r->out.len - at);
        if (t == 0)
            fuzz_die("binary output: no whole tuple at byte %zu of %zu", at, r->out.len);
        line.len = 0;
        int rc = pgfeed__bin_row_as_input(&line, r->out.data + at, t, g->bin, g->nfields, '\t',
                                          "\\N", 0);
        if (rc != 0)
            fuzz_die("binary output: tuple %zu (%zu bytes) cannot be printed back: %s", rows, t,
                     pgfeed_err_name(rc));
        at += t;
        rows++;
    }
    if (rows != r->stats.rows_sent)
        fuzz_die("binary output: %zu tuples, %llu rows sent", rows,
                 (unsigned long long)r->stats.rows_sent);
    pgfeed__buf_free(&line);
}

/* tsv and csv as COPY text: rows of nfields fields with COPY's escapes only. */
static void check_text(const struct cfg *g, const struct result *r)
{
    const char *p = r->out.data, *end = p + r->out.len;
    size_t rows = 0;
    while (p < end) {
        size_t tabs = 0;
        int field_start = 1;
        for (;; p++) {
            if (p == end)
                fuzz_die("COPY text output: the last row has no newline");
            if (*p == '\n')
                break;
            if (*p == '\r')
                fuzz_die("COPY text output: a raw CR in row %zu", rows);
            if (*p == '\t') {
                tabs++;
                field_start = 1;
                continue;
            }
            if (*p == '\\') {
                char e = p + 1 < end ? p[1] : 0;
                if (e == 'N' && !(field_start && (p + 2 == end || p[2] == '\t' || p[2] == '\n')))
                    fuzz_die("COPY text output: \\N inside a field in row %zu", rows);
                if (e != '\\' && e != 't' && e != 'n' && e != 'r' && e != 'N')
                    fuzz_die("COPY text output: a backslash before 0x%02x in row %zu",
                             (unsigned char)e, rows);
                p++;
            }
            field_start = 0;
        }
        if (tabs + 1 != g->nfields)
            fuzz_die("COPY text output: row %zu has %zu fields, not %zu", rows, tabs + 1,
                     g->nfields);
        p++;
        rows++;
    }
    if (rows != r->stats.rows_sent)
        fuzz_die("COPY text output: %zu rows, %llu sent", rows,
                 (unsigned long long)r->stats.rows_sent);
}

/* COPY text rows go to the server as they are: every byte valid in the input's encoding. */
static void check_encoding(const struct cfg *g, const struct result *r)
{
    size_t bad = pgfeed__encoding_check(g->pc.encoding, r->out.data, r->out.len);
    if (bad != r->out.len)
        fuzz_die("COPY text output: byte 0x%02x at %zu is not valid %s",
                 (unsigned char)r->out.data[bad], bad,
                 g->pc.encoding ? g->pc.encoding->name : "UTF-8");
}

static void check_batches(const struct result *r)
{
    const struct pgfeed_batch_info *bi = (const void *)r->batches.data;
    size_t nb = r->batches.len / sizeof *bi;
    uint64_t rows = 0;
    for (size_t i = 0; i < nb; i++) {
        struct pgfeed_batch_info b;
        memcpy(&b, bi + i, sizeof b);
        if (b.seq != i || b.rows == 0 || b.first_line > b.last_line)
            fuzz_die("batch %zu: seq %llu, %llu rows, lines %llu..%llu", i,
                     (unsigned long long)b.seq, (unsigned long long)b.rows,
                     (unsigned long long)b.first_line, (unsigned long long)b.last_line);
        rows += b.rows;
    }
    if (rows > r->stats.rows_sent)
        fuzz_die("batches hold %llu rows, %llu sent", (unsigned long long)rows,
                 (unsigned long long)r->stats.rows_sent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = {0, '\t', ',', '|', ';', ' ', 'x', '\\'};
    static const char quotes[] = {0, '"', '\'', '|'};
    static const char *const nulls[] = {NULL, "", "\\N", "NULL", "x", "a,b", "\\", "\""};
    static const uint64_t batch_rows[] = {0, 1, 2, 3, 5, 10, 100, 1000};
    static const size_t batch_bytes[] = {0, 1, 50, 4096};
    static const uint64_t rejects[] = {0, 1, 5, 1000000};
    static const size_t max_lines[] = {1u << 20, 8, 64, 1000};
    static const size_t pieces[] = {0, 1, 2, 3, 7, 64, 300, 4096};
    static const uint32_t elem_oids[] = {25, 21, 23, 20, 16, 1700};
    static const char *const names[MAXF] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    struct fuzz_in in = {data, size};
    unsigned b[8];
    struct cfg g;

    for (int i = 0; i < 8; i++)
        b[i] = fuzz_take(&in);
    memset(&g, 0, sizeof g);
    pgfeed_format_t formats[] = {PGFEED_FORMAT_TSV, PGFEED_FORMAT_TEXT, PGFEED_FORMAT_CSV,
                                 PGFEED_FORMAT_TSV};
    g.pc.format = formats[b[0] & 3];
    g.pc.has_header = ((b[0] >> 2) & 3) == 1 || ((b[0] >> 2) & 3) == 2;
    g.header_fails = ((b[0] >> 2) & 3) == 2;
    g.binary = (b[0] >> 4) & 1;
    g.position = (b[0] >> 5) & 1;
    g.nfields = 1 + (b[1] & 7);
    for (size_t i = 0; i < g.nfields; i++) {
        g.is_array[i] = (b[2] >> i) & 1;
        g.names[i] = names[i];
    }
    if (g.binary)
        for (size_t i = 0; i < g.nfields; i++) {
            unsigned kind = fuzz_take(&in) % 6;
            g.bin[i].kind = (int)kind;
            g.bin[i].is_array = g.is_array[i];
            g.bin[i].elem_oid = elem_oids[kind];
        }
    g.pc.delimiter = delims[b[3] & 7];
    g.pc.quote = quotes[(b[3] >> 3) & 3];
    g.pc.null_marker = nulls[b[3] >> 5];
    g.pc.batch_rows = batch_rows[b[4] & 7];
    g.pc.batch_bytes = batch_bytes[(b[4] >> 3) & 3];
    g.max_rejects = rejects[(b[4] >> 5) & 3];
    g.pc.max_line = max_lines[b[5] & 3];
    g.eagain = ((b[5] >> 2) & 7) ? 1 + ((b[5] >> 2) & 7) : 0;
    g.max_piece = pieces[b[5] >> 5];
    g.seed = b[6] * 2654435761u + 1;
    static const char *const encodings[] = {NULL, "LATIN1", "WIN1252", "UTF8"};
    g.pc.encoding = encodings[b[7] & 3] ? pgfeed__encoding_find(encodings[b[7] & 3]) : NULL;
    g.pc.on_header = on_header;
    if (!g.pc.has_header) {
        g.pc.nfields = g.nfields;
        g.pc.is_array = g.is_array;
        g.pc.field_names = g.names;
    }

    struct result a, w;
    if (!run(&g, in.p, in.n, g.max_piece, g.eagain, &a))
        return 0; /* a configuration the parser refuses (quote equal to the delimiter...) */
    run(&g, in.p, in.n, 0, 0, &w);
    compare(&a, &w);
    check_batches(&w);
    if (g.binary && g.pc.format != PGFEED_FORMAT_TEXT)
        check_binary(&g, &w);
    else if (g.pc.format != PGFEED_FORMAT_TEXT)
        check_text(&g, &w);
    if (!(g.binary && g.pc.format != PGFEED_FORMAT_TEXT))
        check_encoding(&g, &w);
    result_free(&a);
    result_free(&w);
    return 0;
}
