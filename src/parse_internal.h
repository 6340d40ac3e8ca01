/*
 * parse_internal.h -- what the parser's files share: the stage (struct parser), a batch's
 * row map, the buffer limits and the functions one file of the parser offers the others.
 * Private to parse_dsv.c (the stage: write, finish, resume and the record loop),
 * parse_record.c (one record: its line, its checks, its row in `out`), parse_header.c (the
 * header record and the expected fields), parse_report.c (the wording of every rejection
 * and error), parse_csv.c (the csv grammar) and parse_batch.c (batches and row maps).
 * parse_utf8.c needs only internal.h. Nothing else includes it.
 *
 * Calls go one way: parse_dsv.c -> parse_record.c -> parse_header.c -> parse_report.c ->
 * parse_csv.c, with parse_batch.c, parse_utf8.c and encoding.c (the input's encoding, if not
 * UTF-8) below the files that call them.
 */
#ifndef PGFEED_PARSE_INTERNAL_H
#define PGFEED_PARSE_INTERNAL_H

#include <string.h>

#include "internal.h"

#define OUT_FLUSH   (256u * 1024) /* hand rows to the sink in pieces of about this size */
#define BUF_KEEP    (4u << 20)    /* a buffer a long line grew past this is released after */
#define ROWMAP_RING (PGFEED_MAX_CONNECTIONS + 1) /* batches in flight, and the one being built */

#define UTF8_BOM "\xEF\xBB\xBF" /* skipped at the start of the input */

enum { CSV_UNQUOTED, CSV_QUOTED };
/* pgfeed__csv_scan's answers besides 1 (a record), 0 (more input needed) and failures: */
#define CSV_OPEN 2 /* at the end of input: a quoted field is still open */
#define CSV_LONG 3 /* no record end within max_line + 1 bytes: the record is too long */

struct parser {
    struct pgfeed_stage base;
    struct pgfeed_stats *stats;

    pgfeed_format_t format;
    char delim;
    char quote; /* csv */
    size_t max_line;
    uint64_t batch_rows;
    int (*on_header)(void *arg, const char *line, size_t n);
    void *on_header_arg;
    int want_header; /* the next record is the header */
    int bom_pending; /* csv: the input may still begin with a BOM */
    /* The input's encoding when it is not UTF-8 (static), else NULL: u8_end then means
     * "checked for that encoding", and there is no BOM to skip. */
    const struct pgfeed_encoding *enc;

    const char *const *names;    /* spec.nfields names for messages, or NULL */
    struct pgfeed_row_spec spec; /* delimiter, null marker, fields (nfields, is_array) */
    /* binary COPY: spec.nfields fields (pgfeed__parser_set_binary, borrowed), or NULL */
    const struct pgfeed_bin_field *bin;

    struct pgfeed_buf in; /* [pos, in.len): input not parsed yet */
    size_t pos;
    size_t u8_end;     /* in.data[.., u8_end) checked: valid UTF-8 and no zero byte */
    size_t scanned;    /* bytes after pos already scanned (tsv, text: they hold no LF) */
    int cstate;        /* csv: the scanner's state at in[pos + scanned] */
    int csaw_quote;    /* csv: the record scanned so far has a quote character */
    size_t copen;      /* csv, CSV_QUOTED: offset from pos of the quote that opened the field */
    uint64_t line_off; /* decoded offset of in.data[pos] */
    uint64_t lineno;   /* physical lines parsed so far, header included */

    struct pgfeed_buf scratch; /* csv: a quoted array field's value, unquoted */
    struct pgfeed_buf out;     /* COPY rows not yet written to the sink */
    uint64_t out_rows;
    uint64_t batch_n, batch_first;
    size_t batch_bytes; /* 0: no byte limit */
    size_t batch_size;  /* COPY bytes of the batch so far */
    int end_pending;    /* bi is ready; end_batch not yet accepted */
    int last_given;     /* at finish: the last batch went to the sink's last_batch */
    struct pgfeed_batch_info bi;

    struct pgfeed_rowmap maps[ROWMAP_RING]; /* maps[seq % ROWMAP_RING]: batch seq's rows */
    /* Lines of batches an earlier run committed past its prefix: their records are
     * dropped (skip[skip_i] is the first range not yet behind us). */
    struct pgfeed_line_range *skip;
    size_t nskip, skip_i;
    uint64_t seq; /* the batch being built: end_batch calls taken */

    int blocked;    /* the sink said EAGAIN; we said or will say EAGAIN upstream */
    int at_eof;     /* finish() was called and the last record parsed */
    int finished;   /* the sink accepted finish */
    int text_ended; /* text format: the end-of-copy marker line was seen */
    int err;        /* first failure, returned to every later call */
};

static inline struct parser *parser_of(struct pgfeed_stage *s)
{
    return container_of(s, struct parser, base);
}

/* The first c in [p, end), or end. */
static inline const char *find(const char *p, const char *end, char c)
{
    const char *q = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
    return q ? q : end;
}

static inline uint64_t count_lf(const char *p, size_t n)
{
    const char *end = p + n;
    uint64_t k = 0;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* ---- parse_record.c: one record, its line numbers, its checks, its row ---- */

/* tsv, text: one line (n bytes, no line end; eol bytes of line end follow it in the input). */
int pgfeed__parse_line(struct parser *P, const char *line, size_t n, size_t eol);
/* csv: one complete record (n bytes, no line end; eol bytes of line end follow it). */
int pgfeed__parse_record(struct parser *P, const char *r, size_t n, size_t eol, int quoted);
/* csv, at the end of input: the rest (n > 0 bytes) is a record whose quote is still open. */
int pgfeed__parse_open_at_end(struct parser *P, const char *start, size_t n);

/* ---- parse_header.c ---- */

/* The header record (no line end) to on_header; csv: its fields unquoted. */
int pgfeed__parse_header(struct parser *P, const char *r, size_t n);

/* ---- parse_report.c: each returns what pgfeed__ctx_reject or pgfeed__fail returned ---- */

int pgfeed__parse_nomem(struct parser *P);
/* line and n: the record (possibly incomplete) starting at input line lineno. */
int pgfeed__parse_too_long(struct parser *P, const char *line, size_t n, uint64_t lineno,
                           uint64_t off);
/* Rejections of one data record: found fields where spec.nfields were expected. */
int pgfeed__parse_reject_count(struct parser *P, const char *line, size_t n, size_t found,
                               uint64_t lineno, uint64_t off);
/* A zero byte or bytes that are not valid in the input's encoding at line[bad]. */
int pgfeed__parse_reject_encoding(struct parser *P, const char *line, size_t n, size_t bad,
                                  uint64_t lineno, uint64_t off);
/* The UTF-8 header (n bytes) has a zero byte or bytes that are not UTF-8 at r[bad]: not
 * text (a zero byte, control bytes or a known signature), else text in another encoding. */
int pgfeed__parse_not_text(struct parser *P, const char *r, size_t n, size_t bad);
/* text: why 1, a backslash at the end of the line; 2, "\." inside it. */
int pgfeed__parse_reject_text(struct parser *P, const char *line, size_t n, uint64_t lineno,
                              uint64_t off, int why);
/* Binary COPY: a value the server would refuse. */
int pgfeed__parse_reject_value(struct parser *P, const char *rec, size_t n, uint64_t lineno,
                               uint64_t off, const struct pgfeed_bin_error *err);
/* The first line is UTF-16 (pgfeed__encoding_utf16 said which): an error. */
int pgfeed__parse_utf16(struct parser *P, const char *line, const char *which);
/* The header (n bytes) has a byte not valid in the input's encoding at h[bad]: an error. */
int pgfeed__parse_bad_header(struct parser *P, const char *h, size_t n, size_t bad);
/* text: a line after the end-of-copy marker (an error). */
int pgfeed__parse_after_marker(struct parser *P, const char *line, size_t n, uint64_t lineno,
                               uint64_t off);
/* csv: a quote still open at the end of input, in the header (an error) or a data record. */
int pgfeed__parse_unterminated(struct parser *P, const char *start, size_t n, uint64_t lineno,
                               uint64_t off, int header);

/* ---- parse_csv.c: the csv grammar ---- */

/*
 * The csv field that starts at p, in a record that ends at end: returns where it ends (at
 * its delimiter, or end) and appends its value to dec when dec is not NULL (UV_ENOMEM goes
 * to *rc, which may be NULL when dec has room for end - p more bytes). A quote still open at
 * end closes there.
 */
const char *pgfeed__csv_field(const struct parser *P, const char *p, const char *end,
                              struct pgfeed_buf *dec, int *rc);
/*
 * One complete record (no line end) with at least one quote character, as a COPY row at
 * *dst (room reserved for PGFEED_ENCODE_ROW_MAX; room for n bytes in `scratch` when there
 * are array fields). Returns its number of fields; only when that is nfields is the row
 * complete and *dst moved past it.
 */
size_t pgfeed__csv_row(struct parser *P, char **dst, const char *r, size_t n);
/*
 * The same as a binary tuple (room reserved for PGFEED_ENCODE_BIN_ROW_MAX, and for n bytes
 * in `scratch`). The first value encode_binary.c refuses stops the encoding (err says
 * which) and the rest of the record is only counted.
 */
size_t pgfeed__csv_bin_row(struct parser *P, char **dst, const char *r, size_t n,
                           struct pgfeed_bin_error *err);
/*
 * The end of the record at start. Returns 1 with *n (bytes before its line end) and *eol
 * (bytes of line end), 0 when more input is needed, CSV_OPEN at the end of input with a
 * quoted field still open, or CSV_LONG with *n the bytes looked at when the record is too
 * long. The scan resumes at P->scanned in state P->cstate.
 */
int pgfeed__csv_scan(struct parser *P, const char *start, size_t avail, int at_eof, size_t *n,
                     size_t *eol);
/* Skips a UTF-8 BOM at the start of the input. 0 when more input is needed, else 1. */
int pgfeed__csv_bom(struct parser *P, int at_eof);

/* ---- parse_batch.c: batches and row maps ---- */

/* A row of `bytes` COPY bytes that starts at line lineno went into out. */
void pgfeed__parse_row_sent(struct parser *P, uint64_t lineno, size_t bytes);
/* Hands out and a finished batch to the sink: 0, PGFEED_EAGAIN or an error. */
int pgfeed__parse_drain(struct parser *P);
/* At finish, once drained: the rows since the last batch's end to the sink as its last
 * batch (when it takes one). 0 or a failure. */
int pgfeed__parse_last_batch(struct parser *P);

#endif
