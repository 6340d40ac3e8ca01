/*
 * parse_dsv.c -- the parser stage: decoded bytes in, COPY text rows out, in batches.
 *
 * Owns record splitting, the header record, the client-side row checks (field count, UTF-8,
 * zero bytes, unterminated quotes, turned into rejections through pgfeed__ctx_reject), line
 * numbers and decoded offsets, and batch boundaries. Escaping is encode_copy.c's
 * (pgfeed__encode_row turns a tsv line into a COPY row in one pass), or, for binary COPY
 * (pgfeed__parser_set_binary; tsv and csv), encode_binary.c's, whose values the server would
 * refuse are rejected here with the server's own message; mapping the header to
 * columns is the job's (on_header); transactions, checkpoints and the rejects file are the
 * sink's and the job's; the sink learns where each batch ends through end_batch and where
 * its rows start through pgfeed__parser_row_line.
 *
 * Formats: tsv splits on the delimiter with no quoting, backslashes are data, a field equal
 * to the null marker is NULL, array fields become array literals. text is PostgreSQL's own
 * COPY text format; a line is passed on unchanged once its fields are counted (a backslash
 * escapes the next byte, so "\<delimiter>" does not split). In both, a record is a line: LF,
 * or CRLF whose CR is dropped (COPY text has no raw CR in data, and mixed line ends would
 * make COPY fail). csv is RFC 4180: a field that starts with the quote character runs to the
 * next quote not doubled, and holds delimiters, LF, CRLF and lone CR as data; a record ends
 * at an LF outside quotes (a CR just before it is dropped, and so is a CR at the very end of
 * the input); a lone CR outside quotes is data. Leniency as most readers: a quote inside an
 * unquoted field is a literal character, and so is anything after a closing quote up to the
 * delimiter ("ab"c is abc). An unquoted field equal to the null marker (default: empty) is
 * NULL, a quoted one never is. A UTF-8 BOM at the start of the input is skipped.
 *
 * Checks: every data record must be valid UTF-8 without a zero byte (the sink sets
 * client_encoding UTF8, and PostgreSQL never takes 0x00 in text); it is checked before it is
 * encoded, a buffer at a time rather than a record at a time (utf8_record), with the
 * fast path of pgfeed__utf8_check. Then the field count. A record that fails either is
 * refused with pgfeed__ctx_reject and the next one parsed; a line too long for max_line,
 * "\." followed by more data (text) and a failed header are errors that stop the import.
 *
 * Lines: a record's line is the physical line (LF-ended) where it starts; quoted newlines
 * advance the count, so lines_read counts physical lines and a batch's last_line is where
 * its last record ends. rows_read counts every data record, rejected ones included (so rows
 * imported + rows rejected = rows read); rows_sent only those handed to the sink.
 *
 * Buffers: `in` holds the partial last record plus the chunk being parsed (the input is
 * copied once; at most max_line + 1 plus one chunk, fixed by the configuration). `out`
 * collects COPY rows and goes to the sink when it reaches OUT_FLUSH, when a batch ends and
 * at finish. Nothing is allocated per row: a row reserves its worst case in `out` once.
 * `scratch` holds a quoted csv array value whose doubled quotes had to be undone (at most
 * one record's length).
 * Row maps, one per batch in a ring of ROWMAP_RING (the batches the sink's connections may
 * still be working on, and the one being built), keep the start lines of the rows that are
 * not one line after the previous row: at most one entry per row, at most ROWMAP_MAX per
 * batch, none for a tsv file without rejections.
 *
 * Backpressure: when the sink answers PGFEED_EAGAIN the parser keeps `out`, the pending
 * end_batch and the unparsed rest of `in`, answers EAGAIN to every write and finish, and
 * drains all that in resume before it resumes upstream. States: running -> blocked ->
 * running ...; finish sets at_eof (the last record is parsed once), then finished. The csv
 * scanner keeps its place (scanned, cstate) between writes, so input may stop at any byte:
 * inside quotes, between the two quotes of a doubled quote, between CR and LF.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__SSE2__) && !defined(PGFEED_NO_SIMD)
#include <emmintrin.h>
#endif

#define OUT_FLUSH   (256u * 1024) /* hand rows to the sink in pieces of about this size */
#define BUF_KEEP    (4u << 20)    /* a buffer a long line grew past this is released after */
#define NAMES_MAX   16            /* field names listed in a field-count message */
#define ROWMAP_MAX  (1u << 18)    /* row map entries per batch (8 bytes each) */
#define ROWMAP_RING (PGFEED_MAX_CONNECTIONS + 1) /* batches in flight, and the one being built */

static const char utf8_bom[3] = {'\xEF', '\xBB', '\xBF'};

enum { CSV_UNQUOTED, CSV_QUOTED };
#define CSV_OPEN 2 /* csv_scan at the end of input: a quoted field is still open */

/*
 * Start lines of a batch's rows. Row r (1-based) starts at first + r - 1 + delta, with delta
 * from the last entry whose row is <= r (0 before the first): an entry is added only where
 * a row does not start on the line after the previous one (a multi-line csv record, a
 * rejected row in between). Rows from `lost` on are unknown (entries ran out).
 */
struct rowmap {
    uint64_t seq; /* the batch (0-based, in this run) whose rows these are */
    uint64_t first, rows, lost;
    struct rowmap_ex {
        uint32_t row, delta;
    } * ex;
    size_t nex, cap;
};

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
    struct pgfeed_batch_info bi;

    struct rowmap maps[ROWMAP_RING]; /* maps[seq % ROWMAP_RING]: batch seq's rows */
    uint64_t seq;                    /* the batch being built: end_batch calls taken */

    int blocked;    /* the sink said EAGAIN; we said or will say EAGAIN upstream */
    int at_eof;     /* finish() was called and the last record parsed */
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
    return pgfeed__fail(P->base.ctx, "parser", UV_ENOMEM, NULL, NULL, "out of memory");
}

/* The first c in [p, end), or end. */
static inline const char *find(const char *p, const char *end, char c)
{
    const char *q = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
    return q ? q : end;
}

static uint64_t count_lf(const char *p, size_t n)
{
    const char *end = p + n;
    uint64_t k = 0;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* ---- UTF-8 ---- */

/*
 * Length of the valid UTF-8 sequence at p[0] (not ASCII), or 0. Unicode's table 3-7: no
 * overlong forms (C0, C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing past
 * U+10FFFF (F4 90.., F5..FF).
 */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*
 * 16 bytes at a time (SSE2), else 8: a block without a byte >= 0x80 or == 0x00 is skipped
 * whole; the tail is checked from a copy padded with spaces, so nothing past p + n is read.
 * u8_flags is nonzero when the block has such a byte; u8_first says where the first is.
 *
 * With SSE2 the loop takes 32 bytes (then 16) at a time whenever they are ASCII or whole
 * two-byte sequences (C2..DF then 80..BF: accented Latin, Greek, Cyrillic...), with no
 * branch on which: an accent every few dozen bytes would make a "any byte >= 0x80?" branch
 * mispredict at every one. A block always starts at a sequence boundary, so a lead byte in
 * its last lane or a continuation byte in its first sends it to the byte-wise path, which
 * also takes three- and four-byte sequences and finds the bad byte.
 */
#if defined(__SSE2__) && !defined(PGFEED_NO_SIMD)
#define U8_BLOCK 16
static inline unsigned u8_flags(const unsigned char *b)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)b);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())));
}
/* Masks of the high, zero, continuation and two-byte lead bytes of a block (b, 16 bytes). */
static inline void u8_masks(const unsigned char *b, unsigned *high, unsigned *cont, unsigned *lead)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)b);
    *high = (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())));
    /* As signed bytes: continuation 80..BF is -128..-65, lead C2..DF is -62..-33. */
    *cont = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(-64)));
    *lead = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(-63)),
                                                      _mm_cmplt_epi8(v, _mm_set1_epi8(-32))));
}
/* n blocks (1 or 2) of ASCII and whole two-byte sequences, none cut at the end? */
static inline int u8_easy(const unsigned char *b, int n)
{
    unsigned h0, c0, l0, h1 = 0, c1 = 0, l1 = 0;
    u8_masks(b, &h0, &c0, &l0);
    if (n == 2)
        u8_masks(b + 16, &h1, &c1, &l1);
    uint64_t high = h0 | (uint64_t)h1 << 16, cont = c0 | (uint64_t)c1 << 16;
    uint64_t lead = l0 | (uint64_t)l1 << 16;
    return (cont | lead) == high && lead << 1 == cont; /* high has the zero bytes too */
}
static inline size_t u8_first(unsigned m, const unsigned char *b)
{
    (void)b;
    return (size_t)__builtin_ctz(m);
}
#else
static inline int u8_easy(const unsigned char *b, int n)
{
    (void)b, (void)n;
    return 0;
}
#define U8_BLOCK 8
static inline uint64_t u8_flags(const unsigned char *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    return (v | ((v - ones) & ~v)) & highs; /* right as a yes or no, whatever the byte order */
}
static inline size_t u8_first(uint64_t m, const unsigned char *b)
{
    size_t k = 0;
    (void)m;
    while (b[k] != 0 && b[k] < 0x80)
        k++;
    return k;
}
#endif

size_t pgfeed__utf8_check(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        size_t k;
        while (n - i >= U8_BLOCK) {
            const unsigned char *b = p + i;
            if (n - i >= 2 * U8_BLOCK && u8_easy(b, 2)) {
                i += 2 * U8_BLOCK;
                continue;
            }
            if (u8_flags(b) == 0 || u8_easy(b, 1)) {
                i += U8_BLOCK;
                continue;
            }
            k = u8_first(u8_flags(b), b);
            goto found;
        }
        if (i == n)
            return n;
        {
            unsigned char tb[U8_BLOCK];
            memset(tb, ' ', sizeof tb);
            memcpy(tb, p + i, n - i);
            if (u8_flags(tb) == 0)
                return n;
            k = u8_first(u8_flags(tb), tb);
        }
    found:
        i += k;
        if (p[i] == 0)
            return i;
        /* Most non-ASCII text is short runs (accents): take sequences until ASCII again. */
        do {
            if (p[i] - 0xC2u < 0x1Eu && n - i >= 2 && (p[i + 1] & 0xC0) == 0x80) {
                i += 2; /* U+0080..U+07FF, most accented letters */
                continue;
            }
            size_t len = utf8_seq(p + i, n - i);
            if (len == 0)
                return i;
            i += len;
        } while (i < n && p[i] >= 0x80);
    }
}

/* ---- fields ---- */

/*
 * The csv field that starts at p, in a record that ends at end: returns where it ends (at
 * its delimiter, or end) and appends its value to dec when dec is not NULL (UV_ENOMEM goes
 * to *rc, which may be NULL when dec has room for end - p more bytes). A quote still open at
 * end closes there.
 */
static const char *csv_field(const struct parser *P, const char *p, const char *end,
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

/* The 1-based field of the record (n bytes) that holds byte x. */
static int field_at(const struct parser *P, const char *r, size_t n, size_t x)
{
    const char *end = r + n, *p = r, *at = r + x;
    int f = 1;
    if (P->format == PGFEED_FORMAT_CSV) {
        for (;;) {
            const char *e = csv_field(P, p, end, NULL, NULL);
            if (at <= e || e == end)
                return f;
            p = e + 1;
            f++;
        }
    }
    for (; p < at; p++) {
        if (*p == P->delim)
            f++;
        else if (*p == '\\' && P->format == PGFEED_FORMAT_TEXT)
            p++; /* the escaped byte is data */
    }
    return f;
}

/* ---- messages ---- */

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

static const char *field_name(const struct parser *P, int column)
{
    return column > 0 && (size_t)column <= P->spec.nfields && P->names ? P->names[column - 1]
                                                                       : NULL;
}

/* " (\"name\")" for messages, into buf. */
static const char *paren_name(const struct parser *P, int column, char *buf, size_t cap)
{
    const char *name = field_name(P, column);
    if (name == NULL)
        return "";
    snprintf(buf, cap, " (\"%s\")", name);
    return buf;
}

static const char *unit(const struct parser *P)
{
    return P->format == PGFEED_FORMAT_CSV ? "record" : "line";
}

/*
 * Refuses one data record: 0 when the job took the rejection (the caller goes on with the
 * next record), or the job's failure code (--max-rejects reached; its error is set).
 */
static int reject(struct parser *P, const char *raw, size_t n, uint64_t lineno, uint64_t off,
                  int column, const char *message, const char *detail, const char *hint)
{
    struct pgfeed_reject r = {
        .stage = "parser",
        .line = lineno,
        .decoded_offset = off,
        .column = column,
        .column_name = field_name(P, column),
        .message = message,
        .detail = detail,
        .hint = hint,
        .raw = raw,
        .raw_len = n,
    };
    return pgfeed__ctx_reject(P->base.ctx, &r);
}

static int reject_field_count(struct parser *P, const char *line, size_t n, size_t found,
                              uint64_t lineno, uint64_t off)
{
    size_t nf = P->spec.nfields;
    char *names = join_names(P);
    char *quoted = pgfeed__quote_input(line, n);
    char *detail =
        pgfeed__strdup_printf("Expected %zu field%s%s%s%s, found %zu. The %s is \"%s\".", nf,
                              nf == 1 ? "" : "s", names ? " (" : "", names ? names : "",
                              names ? ")" : "", found, unit(P), quoted ? quoted : "");
    const char *hint =
        P->delim == '\t' ? "Check --delimiter and --columns, or whether the file is really "
                           "tab-separated."
        : P->format == PGFEED_FORMAT_CSV ? "Check --delimiter, --quote and --columns."
                                         : "Check --delimiter and --columns.";
    char msg[64];
    snprintf(msg, sizeof msg, "wrong number of fields in line %llu", (unsigned long long)lineno);
    /* Too few: point at the first missing field; too many: at the first extra one. */
    size_t col = found < nf ? found + 1 : nf + 1;
    int rc = reject(P, line, n, lineno, off, (int)col, msg, detail, hint);
    free(names);
    free(quoted);
    free(detail);
    return rc;
}

/* A zero byte or bytes that are not UTF-8 at line[bad]. */
static int reject_encoding(struct parser *P, const char *line, size_t n, size_t bad,
                           uint64_t lineno, uint64_t off)
{
    int col = field_at(P, line, n, bad);
    char nb[160], msg[80], seq[40];
    const char *name = paren_name(P, col, nb, sizeof nb);
    char *quoted = pgfeed__quote_input(line, n);
    char *detail;
    const char *hint;
    if (line[bad] == 0) {
        snprintf(msg, sizeof msg, "zero byte (0x00) in line %llu", (unsigned long long)lineno);
        detail = pgfeed__strdup_printf(
            "Field %d%s has a zero byte at byte %zu of the %s; PostgreSQL does not accept zero "
            "bytes in text. The %s is \"%s\".",
            col, name, bad + 1, unit(P), unit(P), quoted ? quoted : "");
        hint = "Remove the zero bytes, for example with tr -d '\\000'. A file with a zero byte "
               "after every character is UTF-16: convert it with iconv -f UTF-16 -t UTF-8.";
    } else {
        /* The bytes PostgreSQL would show: as many as the first one announces. */
        unsigned char c = (unsigned char)line[bad];
        size_t want = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        size_t k = 0;
        for (size_t i = 0; i < want && bad + i < n; i++)
            k += (size_t)snprintf(seq + k, sizeof seq - k, "%s0x%02x", i ? " " : "",
                                  (unsigned char)line[bad + i]);
        snprintf(msg, sizeof msg, "invalid byte sequence for encoding \"UTF8\" in line %llu",
                 (unsigned long long)lineno);
        detail = pgfeed__strdup_printf(
            "Field %d%s has the invalid byte sequence %s at byte %zu of the %s. The %s is \"%s\".",
            col, name, seq, bad + 1, unit(P), unit(P), quoted ? quoted : "");
        hint = "The input must be UTF-8. Convert it first, for example with iconv -f WINDOWS-1252 "
               "-t UTF-8 if it is Windows-1252.";
    }
    int rc = reject(P, line, n, lineno, off, col, msg, detail, hint);
    free(quoted);
    free(detail);
    return rc;
}

/* text format: one line's problem that COPY would not report, or would report wrongly. */
static int reject_line(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off,
                       const char *what, const char *why, const char *hint)
{
    char *quoted = pgfeed__quote_input(line, n);
    char *detail = pgfeed__strdup_printf("%s The line is \"%s\".", why, quoted ? quoted : "");
    char msg[120];
    snprintf(msg, sizeof msg, "%s in line %llu", what, (unsigned long long)lineno);
    int rc = reject(P, line, n, lineno, off, 0, msg, detail, hint);
    free(quoted);
    free(detail);
    return rc;
}

static int fail_line(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off,
                     const char *what, const char *why, const char *hint)
{
    char *quoted = pgfeed__quote_input(line, n);
    char *detail = pgfeed__strdup_printf("%s The line is \"%s\".", why, quoted ? quoted : "");
    int rc = pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail, hint, "%s in line %llu",
                          what, (unsigned long long)lineno);
    pgfeed__fail_at(P->base.ctx, lineno, 0, NULL, off, P->stats->bytes_read);
    free(quoted);
    free(detail);
    return rc;
}

/* line and n: the record (possibly incomplete) starting at input line lineno. */
static int fail_too_long(struct parser *P, const char *line, size_t n, uint64_t lineno,
                         uint64_t off)
{
    /* The same bytes whether the line end was seen yet or not. */
    char *quoted = pgfeed__quote_input(line, n < P->max_line + 1 ? n : P->max_line + 1);
    char *detail, nb[160];
    const char *hint = "Check that the input is line-oriented text with LF or CRLF line ends, "
                       "or raise the max_line option.";
    if (P->format == PGFEED_FORMAT_CSV && P->cstate == CSV_QUOTED) {
        int col = field_at(P, line, n, P->copen);
        detail = pgfeed__strdup_printf(
            "The limit is %zu bytes; the record begins \"%s\". The quote opened at line %llu, "
            "column %d%s, is still open.",
            P->max_line, quoted ? quoted : "",
            (unsigned long long)(lineno + count_lf(line, P->copen)), col,
            paren_name(P, col, nb, sizeof nb));
        hint = "Check that the quotes in the file are balanced, set --quote if the file uses "
               "another quote character, or raise the max_line option.";
    } else {
        detail = pgfeed__strdup_printf("The limit is %zu bytes; the %s begins \"%s\".", P->max_line,
                                       unit(P), quoted ? quoted : "");
    }
    int rc = pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail, hint,
                          P->format == PGFEED_FORMAT_CSV ? "CSV record in line %llu is too long"
                                                         : "input line %llu is too long",
                          (unsigned long long)lineno);
    pgfeed__fail_at(P->base.ctx, lineno, 0, NULL, off, P->stats->bytes_read);
    free(quoted);
    free(detail);
    return rc;
}

/* ---- row map ---- */

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

/* ---- records ---- */

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

/*
 * csv: one complete record (no line end) with at least one quote character, as a COPY row
 * at *dst (room reserved for PGFEED_ENCODE_ROW_MAX). Returns its number of fields; only when
 * that is nfields is the row complete and *dst moved past it. The same grammar as csv_scan
 * and csv_field. A scalar value in pieces (doubled quotes, text after the closing quote) is
 * escaped piece by piece; a quoted array value is unquoted into `scratch` first (room for n
 * bytes reserved by the caller when there are array fields).
 */
static size_t csv_row(struct parser *P, char **dst, const char *r, size_t n)
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
            const char *q = memchr(p + 1, Q, (size_t)(end - p - 1));
            if (q && (q + 1 == end || q[1] == D)) { /* one piece: "a,b" */
                o = pgfeed__encode_array_to(o, p + 1, (size_t)(q - p - 1));
                d = q + 1;
            } else {
                P->scratch.len = 0;
                d = csv_field(P, p, end, &P->scratch, NULL);
                o = pgfeed__encode_array_to(o, P->scratch.data, P->scratch.len);
            }
        } else if (p < end && *p == Q) {
            const char *s = p + 1;
            for (;;) {
                const char *q = memchr(s, Q, (size_t)(end - s));
                if (q == NULL) /* not after csv_scan: a quote open at end closes there */
                    q = end;
                int dbl = q + 1 < end && q[1] == Q;
                if (emit) /* a doubled quote keeps one */
                    o = pgfeed__encode_field_to(o, s, (size_t)(q + dbl - s));
                if (!dbl) {
                    p = q < end ? q + 1 : end;
                    break;
                }
                s = q + 2;
            }
            d = find(p, end, D); /* text after the closing quote is data */
            if (emit)
                o = pgfeed__encode_field_to(o, p, (size_t)(d - p));
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

/*
 * csv_row for binary COPY: the record as a tuple at *dst (room reserved for
 * PGFEED_ENCODE_BIN_ROW_MAX). A quoted value in one piece is encoded where it stands, one
 * in pieces is unquoted into `scratch` first (room for n bytes reserved by the caller). The
 * first value encode_binary.c refuses stops the encoding (err says which; `scratch` may
 * hold it) and the rest of the record is only counted.
 */
static size_t csv_bin_row(struct parser *P, char **dst, const char *r, size_t n,
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
            d = csv_field(P, p, end, NULL, NULL);
        } else if (p < end && *p == Q) {
            const char *v = p + 1, *q = memchr(p + 1, Q, (size_t)(end - p - 1));
            size_t len;
            if (q && (q + 1 == end || q[1] == D)) { /* one piece: "a,b" */
                len = (size_t)(q - v);
                d = q + 1;
            } else {
                P->scratch.len = 0;
                d = csv_field(P, p, end, &P->scratch, NULL);
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

/*
 * Binary COPY: a value the server would refuse, refused here instead with the server's
 * message (and, when this fails the import, its SQLSTATE).
 */
static int reject_value(struct parser *P, const char *rec, size_t n, uint64_t lineno, uint64_t off,
                        const struct pgfeed_bin_error *err)
{
    char *msg = pgfeed__bin_error_message(err);
    if (msg == NULL)
        return fail_nomem(P);
    int rc = reject(P, rec, n, lineno, off, (int)err->field + 1, msg, NULL, NULL);
    if (rc != 0) {
        const struct pgfeed_error *e = (&P->base.ctx->err.pub);
        if (e->sqlstate == NULL && e->message && strcmp(e->message, msg) == 0)
            pgfeed__fail_sqlstate(P->base.ctx, pgfeed__bin_error_sqlstate(err));
    }
    free(msg);
    return rc;
}

/*
 * The first byte of the record (in `in`) that is 0x00 or not UTF-8, else n. The input is
 * checked a buffer at a time, from the record on to the end of what is buffered, and the
 * checked end kept, so most records need no call: a record boundary is an ASCII LF, so no
 * sequence crosses one, and one that the end of the buffer cuts only stops the check there.
 */
static size_t utf8_record(struct parser *P, const char *rec, size_t n)
{
    size_t a = (size_t)(rec - P->in.data), b = a + n;
    if (b <= P->u8_end)
        return n;
    size_t from = a > P->u8_end ? a : P->u8_end;
    P->u8_end = from + pgfeed__utf8_check(P->in.data + from, P->in.len - from);
    return P->u8_end < b ? P->u8_end - a : n;
}

/* A row went into out. */
static void row_sent(struct parser *P, uint64_t lineno, size_t bytes)
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

/*
 * One data record (no line end) that starts at line lineno and decoded offset off; quoted:
 * csv, it has a quote character. 0 (sent or rejected) or a failure.
 */
static int data_row(struct parser *P, const char *rec, size_t n, uint64_t lineno, uint64_t off,
                    int quoted)
{
    P->stats->rows_read++;
    size_t bad = utf8_record(P, rec, n);
    if (bad != n)
        return reject_encoding(P, rec, n, bad, lineno, off);

    size_t nf = P->spec.nfields;
    size_t need = P->format == PGFEED_FORMAT_TEXT ? n + 1
                  : P->bin                        ? PGFEED_ENCODE_BIN_ROW_MAX(n, nf)
                                                  : PGFEED_ENCODE_ROW_MAX(n, nf);
    if (P->out.cap - P->out.len < need && pgfeed__buf_reserve(&P->out, need) != 0)
        return fail_nomem(P);
    char *o = P->out.data + P->out.len;
    size_t found;
    if (P->bin) { /* tsv or csv (never text) as binary tuples */
        struct pgfeed_bin_error be;
        if (quoted) {
            P->scratch.len = 0;
            if (pgfeed__buf_reserve(&P->scratch, n) != 0)
                return fail_nomem(P);
            found = csv_bin_row(P, &o, rec, n, &be);
        } else {
            found = pgfeed__encode_bin_row(&o, rec, n, &P->spec, P->bin, &be);
        }
        if (found == nf && be.code != 0) {
            int rc = reject_value(P, rec, n, lineno, off, &be);
            if (P->scratch.cap > BUF_KEEP)
                pgfeed__buf_free(&P->scratch);
            return rc;
        }
        if (P->scratch.cap > BUF_KEEP)
            pgfeed__buf_free(&P->scratch);
    } else if (P->format == PGFEED_FORMAT_TEXT) {
        int why = 0;
        found = text_row(P, o, rec, n, &why);
        if (why == 1)
            return reject_line(P, rec, n, lineno, off, "backslash at end of line",
                               "In COPY text format a backslash escapes the next character, so "
                               "this one would join the line to the next.",
                               "Write a backslash in data as \\\\ and a newline as \\n.");
        if (why == 2)
            return reject_line(P, rec, n, lineno, off, "end-of-copy marker inside data",
                               "In COPY text format \\. ends the data and may only stand alone "
                               "on a line.",
                               "Write a backslash in data as \\\\.");
        o += n + 1;
    } else if (quoted) {
        P->scratch.len = 0;
        if (P->spec.is_array && pgfeed__buf_reserve(&P->scratch, n) != 0)
            return fail_nomem(P);
        found = csv_row(P, &o, rec, n);
        if (P->scratch.cap > BUF_KEEP)
            pgfeed__buf_free(&P->scratch);
    } else {
        found = pgfeed__encode_row(&o, rec, n, &P->spec);
    }
    if (found != nf)
        return reject_field_count(P, rec, n, found, lineno, off);
    size_t bytes = (size_t)(o - P->out.data) - P->out.len;
    P->out.len += bytes;
    row_sent(P, lineno, bytes);
    return 0;
}

/* tsv, text: one line (n bytes, no line end; eol bytes of line end follow it in the input). */
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
        return P->on_header ? P->on_header(P->on_header_arg, line, n) : 0;
    }
    if (P->text_ended)
        return fail_line(P, line, n, lineno, off, "data after the end-of-copy marker",
                         "An earlier line holds only \\., which ends COPY text data, and this "
                         "line follows it.",
                         "Remove the marker line, or the lines after it.");
    if (P->format == PGFEED_FORMAT_TEXT && n == 2 && line[0] == '\\' && line[1] == '.') {
        P->text_ended = 1; /* not a row */
        return 0;
    }
    return data_row(P, line, n, lineno, off, 0);
}

/* csv: the header's fields unquoted, joined by the delimiter, to on_header. */
static int csv_header(struct parser *P, const char *r, size_t n)
{
    struct pgfeed_buf h = {0};
    const char *p = r, *end = r + n;
    int rc = pgfeed__buf_reserve(&h, n + 1);
    for (;;) {
        p = csv_field(P, p, end, &h, &rc);
        if (p == end)
            break;
        p++;
        if (pgfeed__buf_append(&h, &P->delim, 1) != 0)
            rc = UV_ENOMEM;
    }
    if (rc == 0)
        rc = P->on_header ? P->on_header(P->on_header_arg, h.data, h.len) : 0;
    else
        rc = fail_nomem(P);
    pgfeed__buf_free(&h);
    return rc;
}

/* csv: one complete record (n bytes, no line end; eol bytes of line end follow it). */
static int take_record(struct parser *P, const char *r, size_t n, size_t eol, int quoted)
{
    if (n > P->max_line)
        return fail_too_long(P, r, n, P->lineno + 1, P->line_off);
    uint64_t lineno = P->lineno + 1, off = P->line_off;
    uint64_t lines = 1 + (quoted ? count_lf(r, n) : 0); /* quoted newlines */
    P->lineno += lines;
    P->stats->lines_read += lines;
    P->line_off += n + eol;
    if (P->want_header) {
        P->want_header = 0;
        return csv_header(P, r, n);
    }
    return data_row(P, r, n, lineno, off, quoted);
}

/*
 * csv: the end of the record at start. Returns 1 with *n (bytes before its line end) and
 * *eol (bytes of line end), 0 when more input is needed, CSV_OPEN at the end of input with a
 * quoted field still open, or a failure (too long). The scan resumes at P->scanned in state
 * P->cstate: a quote that ends the available input is looked at again with the next byte.
 */
static int csv_scan(struct parser *P, const char *start, size_t avail, int at_eof, size_t *n,
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
            const char *q = memchr(p, Q, (size_t)(end - p));
            if (q == NULL) {
                p = end;
                break;
            }
            if (q + 1 == end && !at_eof) {
                p = q; /* closing, or the first of two */
                break;
            }
            if (q + 1 < end && q[1] == Q) {
                p = q + 2;
                continue;
            }
            P->cstate = CSV_UNQUOTED;
            p = q + 1;
            continue;
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
    if (avail > P->max_line + 1) /* one more byte may be the CR of a CRLF */
        return fail_too_long(P, start, avail, P->lineno + 1, P->line_off);
    return 0;
}

/* csv: skips a UTF-8 BOM at the start of the input. 0 when more input is needed, else 1. */
static int csv_bom(struct parser *P, int at_eof)
{
    size_t avail = P->in.len - P->pos, k = avail < 3 ? avail : 3;
    if (k == 0 && !at_eof)
        return 0;
    if (k > 0 && memcmp(P->in.data + P->pos, utf8_bom, k) == 0) {
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

/* csv, at the end of input: a quote is still open in the record at start. */
static int csv_unterminated(struct parser *P, const char *start, size_t n)
{
    uint64_t lineno = P->lineno + 1, off = P->line_off;
    uint64_t lines = count_lf(start, n) + (start[n - 1] != '\n'); /* n > 0 */
    P->lineno += lines;
    P->stats->lines_read += lines;
    P->line_off += n;
    int col = field_at(P, start, n, P->copen);
    char nb[160], msg[96];
    char *detail = pgfeed__strdup_printf(
        "The quote opened at line %llu, column %d%s, decoded byte %llu, is still open at end of "
        "input.",
        (unsigned long long)(lineno + count_lf(start, P->copen)), col,
        paren_name(P, col, nb, sizeof nb), (unsigned long long)(off + P->copen));
    const char *hint = "Set --quote if the file uses another quote character.";
    int rc;
    if (P->want_header) {
        P->want_header = 0;
        rc = pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail, hint,
                          "unterminated quoted field in the CSV header");
        pgfeed__fail_at(P->base.ctx, lineno, col, NULL, off, P->stats->bytes_read);
    } else {
        P->stats->rows_read++;
        snprintf(msg, sizeof msg, "unterminated quoted field in CSV input in line %llu",
                 (unsigned long long)lineno);
        rc = reject(P, start, n, lineno, off, col, msg, detail, hint);
    }
    free(detail);
    return rc;
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
        struct rowmap *m = &P->maps[++P->seq % ROWMAP_RING];
        m->seq = P->seq;
        m->rows = 0;
    }
    return 0;
}

/*
 * Finds the next complete record in `in`: 1 with *n and *eol, 0 when more input is needed,
 * or a failure.
 */
static int next_record(struct parser *P, size_t *n, size_t *eol)
{
    if (P->format == PGFEED_FORMAT_CSV) {
        if (P->bom_pending && csv_bom(P, 0) == 0)
            return 0;
        size_t avail = P->in.len - P->pos;
        return avail ? csv_scan(P, P->in.data + P->pos, avail, 0, n, eol) : 0;
    }
    size_t avail = P->in.len - P->pos;
    char *start = P->in.data + P->pos;
    char *lf = avail > P->scanned ? memchr(start + P->scanned, '\n', avail - P->scanned) : NULL;
    if (lf == NULL) {
        P->scanned = avail;
        /* One more byte may be the CR of a CRLF. */
        if (avail > P->max_line + 1)
            return fail_too_long(P, start, avail, P->lineno + 1, P->line_off);
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
            rc = take_record(P, start, n, eol, quoted);
        else
            rc = take_line(P, start, n, eol);
        if (rc != 0)
            return rc;
        if (P->end_pending || P->out.len >= OUT_FLUSH)
            if ((rc = drain(P)) != 0)
                return rc;
    }
}

/* The end of input, not blocked: every complete record has been parsed. */
static int take_rest(struct parser *P)
{
    if (P->format == PGFEED_FORMAT_CSV && P->bom_pending)
        csv_bom(P, 1);
    size_t n = P->in.len - P->pos, eol = 0;
    if (n == 0)
        return 0;
    const char *start = P->in.data + P->pos;
    P->pos = P->in.len;
    if (P->format != PGFEED_FORMAT_CSV) {
        P->scanned = 0;
        return take_line(P, start, n, 0);
    }
    size_t avail = n;
    int rc = csv_scan(P, start, avail, 1, &n, &eol);
    int quoted = P->csaw_quote;
    P->scanned = 0;
    P->csaw_quote = 0;
    if (rc == CSV_OPEN) {
        if (avail > P->max_line)
            return fail_too_long(P, start, avail, P->lineno + 1, P->line_off);
        rc = csv_unterminated(P, start, avail);
        P->cstate = CSV_UNQUOTED;
        return rc;
    }
    return take_record(P, start, n, eol, quoted);
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
        P->at_eof = 1;
        int rc = take_rest(P);
        if (rc != 0)
            return settle(P, rc);
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
    pgfeed__buf_free(&P->scratch);
    for (size_t i = 0; i < ROWMAP_RING; i++)
        free(P->maps[i].ex);
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

void pgfeed__parser_set_binary(struct pgfeed_stage *s, const struct pgfeed_bin_field *fields)
{
    struct parser *P = parser_of(s);
    P->bin = P->format == PGFEED_FORMAT_TEXT ? NULL : fields; /* text is COPY text already */
}

static int bad_char(char c)
{
    return c == '\0' || c == '\n' || c == '\r' || (unsigned char)c >= 0x80;
}

int pgfeed__parser_new(struct pgfeed_ctx *ctx, const struct pgfeed_parse_config *cfg,
                       struct pgfeed_stage **out)
{
    *out = NULL;
    char delim = cfg->delimiter ? cfg->delimiter : cfg->format == PGFEED_FORMAT_CSV ? ',' : '\t';
    char quote = cfg->quote ? cfg->quote : '"';
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
    P->spec.null_marker = cfg->null_marker                   ? cfg->null_marker
                          : cfg->format == PGFEED_FORMAT_CSV ? ""
                                                             : "\\N";
    P->spec.null_len = strlen(P->spec.null_marker);
    P->max_line = cfg->max_line ? cfg->max_line : (size_t)64 << 20;
    if (P->max_line > SIZE_MAX / 16) /* keeps PGFEED_ENCODE_*ROW_MAX from overflowing */
        P->max_line = SIZE_MAX / 16;
    P->batch_rows = cfg->batch_rows;
    P->batch_bytes = cfg->batch_bytes;
    P->on_header = cfg->on_header;
    P->on_header_arg = cfg->on_header_arg;
    P->want_header = cfg->has_header;
    P->bom_pending = cfg->format == PGFEED_FORMAT_CSV;
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
    P->bom_pending = P->bom_pending && P->lineno == 0 && decoded_offset == 0;
}

uint64_t pgfeed__parser_row_line(struct pgfeed_stage *s, uint64_t seq, uint64_t batch_row)
{
    struct parser *P = parser_of(s);
    const struct rowmap *m = &P->maps[seq % ROWMAP_RING];
    return m->seq == seq && seq <= P->seq ? rowmap_line(m, batch_row) : 0;
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
