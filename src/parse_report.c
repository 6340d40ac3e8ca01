/*
 * parse_report.c -- the wording of the parser's rejections and errors: message, detail,
 * hint, line, column and field name for each problem a record can have.
 *
 * Leaves to parse_record.c and parse_dsv.c when a record is rejected or the import fails
 * (they count the lines and rows first), to the context (pgfeed__ctx_reject, ctx.c) the
 * rejects file and the --max-rejects count, and to error.c the stored error.
 * A rejection returns 0 when the job took it (the caller goes on with the next record), or
 * the job's failure code (--max-rejects reached; its error is set); a failure returns the
 * code pgfeed__fail set. Buffers: each message is built on the stack or in a malloc'd string
 * freed before returning; input is quoted cut to 100 bytes (pgfeed__quote_input), in UTF-8
 * whatever the input's encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

#define NAMES_MAX 16 /* field names listed in a field-count message */

int pgfeed__parse_nomem(struct parser *P)
{
    return pgfeed__fail(P->base.ctx, "parser", UV_ENOMEM, NULL, NULL, "out of memory");
}

/* ---- positions and names ---- */

/* The record quoted for a message (pgfeed__quote_input): in UTF-8, converted from the input's
 * encoding first (only what the quote can show). NULL when out of memory. */
static char *quote(const struct parser *P, const char *line, size_t n)
{
    if (P->enc == NULL)
        return pgfeed__quote_input(line, n);
    struct pgfeed_buf u = {0};
    char *q = NULL;
    if (pgfeed__encoding_to_utf8(P->enc, line, n < 128 ? n : 128, &u) == 0)
        q = pgfeed__quote_input(u.data, u.len);
    pgfeed__buf_free(&u);
    return q;
}

/* The 1-based field of the record (n bytes) that holds byte x. */
static int field_at(const struct parser *P, const char *r, size_t n, size_t x)
{
    const char *end = r + n, *p = r, *at = r + x;
    int f = 1;
    if (P->format == PGFEED_FORMAT_CSV) {
        for (;;) {
            const char *e = pgfeed__csv_field(P, p, end, NULL, NULL);
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

/* ---- rejections ---- */

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

int pgfeed__parse_reject_count(struct parser *P, const char *line, size_t n, size_t found,
                               uint64_t lineno, uint64_t off)
{
    size_t nf = P->spec.nfields;
    char *names = join_names(P);
    char *quoted = quote(P, line, n);
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

int pgfeed__parse_reject_encoding(struct parser *P, const char *line, size_t n, size_t bad,
                                  uint64_t lineno, uint64_t off)
{
    int col = field_at(P, line, n, bad);
    char nb[160], msg[80], seq[40];
    const char *name = paren_name(P, col, nb, sizeof nb);
    char *quoted = quote(P, line, n);
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
    } else if (P->enc) {
        snprintf(msg, sizeof msg, "invalid byte sequence for encoding \"%s\" in line %llu",
                 P->enc->name, (unsigned long long)lineno);
        detail = pgfeed__strdup_printf(
            "Field %d%s has the byte 0x%02x at byte %zu of the %s, which %s leaves undefined. The "
            "%s is \"%s\".",
            col, name, (unsigned char)line[bad], bad + 1, unit(P), P->enc->name, unit(P),
            quoted ? quoted : "");
        hint = "Check --encoding: the input may be in another encoding.";
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
        hint = "The input must be UTF-8 unless --encoding names its encoding, for example "
               "--encoding WIN1252 for Windows-1252.";
    }
    int rc = reject(P, line, n, lineno, off, col, msg, detail, hint);
    free(quoted);
    free(detail);
    return rc;
}

/* ---- input that is not text ---- */

/* What a file is, by its first bytes: formats that are often fed to pgfeed by mistake. */
static const struct {
    const char *magic;
    size_t len;
    const char *what;
} signatures[] = {
    {"PK\x03\x04", 4, "a zip archive (.zip, also .xlsx, .docx, .jar)"},
    {"BZh", 3, "bzip2 data"},
    {"\xfd"
     "7zXZ",
     5, "xz data"},
    {"\x28\xb5\x2f\xfd", 4, "zstd data"},
    {"7z\xbc\xaf\x27\x1c", 6, "a 7-Zip archive"},
    {"Rar!\x1a\x07", 6, "a RAR archive"},
    {"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "an OLE document (.xls, .doc)"},
    {"%PDF", 4, "a PDF document"},
    {"\x89PNG", 4, "a PNG image"},
    {"\x7f"
     "ELF",
     4, "an ELF executable"},
    {"PAR1", 4, "a Parquet file"},
    {"SQLite format 3", 15, "an SQLite database"},
    {"PGDMP", 5, "a pg_dump archive (restore it with pg_restore)"},
    {"\xff\xfe", 2, "UTF-16 text (little-endian)"},
    {"\xfe\xff", 2, "UTF-16 text (big-endian)"},
};

/* ", the signature of WHAT" for a known format, else "". */
static const char *signature_of(const char *r, size_t n)
{
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++)
        if (n >= signatures[i].len && memcmp(r, signatures[i].magic, signatures[i].len) == 0)
            return signatures[i].what;
    return NULL;
}

/* Control bytes other than tab, CR and form feed: what text in any encoding lacks. */
static int has_controls(const char *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r[i];
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\f') || c == 0x7f)
            return 1;
    }
    return 0;
}

int pgfeed__parse_not_text(struct parser *P, const char *r, size_t n, size_t bad)
{
    /* Text all the same (a header in latin1, say): the encoding is what is wrong. */
    if (r[bad] != 0 && !has_controls(r, n) && signature_of(r, n) == NULL)
        return pgfeed__parse_bad_header(P, r, n, bad);
    char hex[8 * 5 + 1] = "";
    size_t k = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        k += (size_t)snprintf(hex + k, sizeof hex - k, "%s0x%02x", i ? " " : "",
                              (unsigned char)r[i]);
    const char *what = signature_of(r, n);
    const char *comp = P->base.ctx->compression;
    char what_s[96] = "";
    if (what)
        snprintf(what_s, sizeof what_s, ", the signature of %s", what);
    const char *where = r[bad] == 0 ? "a zero byte" : "bytes that are not valid UTF-8";
    char *detail =
        comp
            ? pgfeed__strdup_printf("Its first line has %s at byte %zu. The input is %s data whose "
                                    "inflated bytes begin with %s%s.",
                                    where, bad + 1, comp, hex, what_s)
            : pgfeed__strdup_printf("Its first line has %s at byte %zu. The input begins with "
                                    "%s%s; it is not compressed with gzip or zlib either (no 1f "
                                    "8b or zlib header).",
                                    where, bad + 1, hex, what_s);
    int rc = pgfeed__fail(
        P->base.ctx, "parser", PGFEED_EPARSE, detail,
        "pgfeed reads TSV, CSV or COPY text in UTF-8, plain or compressed with gzip or zlib. Unpack other archives first (for example unzip -p FILE.zip | pgfeed ... -), and convert text in another encoding with iconv.",
        "the input does not look like text");
    pgfeed__fail_at(P->base.ctx, 1, 0, NULL, 0, 0);
    free(detail);
    return rc;
}

/* text format: one line's problem that COPY would not report, or would report wrongly. */
static int reject_line(struct parser *P, const char *line, size_t n, uint64_t lineno, uint64_t off,
                       const char *what, const char *why, const char *hint)
{
    char *quoted = quote(P, line, n);
    char *detail = pgfeed__strdup_printf("%s The line is \"%s\".", why, quoted ? quoted : "");
    char msg[120];
    snprintf(msg, sizeof msg, "%s in line %llu", what, (unsigned long long)lineno);
    int rc = reject(P, line, n, lineno, off, 0, msg, detail, hint);
    free(quoted);
    free(detail);
    return rc;
}

int pgfeed__parse_reject_text(struct parser *P, const char *line, size_t n, uint64_t lineno,
                              uint64_t off, int why)
{
    if (why == 1)
        return reject_line(P, line, n, lineno, off, "backslash at end of line",
                           "In COPY text format a backslash escapes the next character, so "
                           "this one would join the line to the next.",
                           "Write a backslash in data as \\\\ and a newline as \\n.");
    return reject_line(P, line, n, lineno, off, "end-of-copy marker inside data",
                       "In COPY text format \\. ends the data and may only stand alone "
                       "on a line.",
                       "Write a backslash in data as \\\\.");
}

/*
 * Binary COPY: a value the server would refuse, refused here instead with the server's
 * message (and, when this fails the import, its SQLSTATE).
 */
int pgfeed__parse_reject_value(struct parser *P, const char *rec, size_t n, uint64_t lineno,
                               uint64_t off, const struct pgfeed_bin_error *err)
{
    char *msg = pgfeed__bin_error_message(err);
    if (msg == NULL)
        return pgfeed__parse_nomem(P);
    int rc = reject(P, rec, n, lineno, off, (int)err->field + 1, msg, NULL, NULL);
    if (rc != 0) {
        const struct pgfeed_error *e = (&P->base.ctx->err.pub);
        if (e->sqlstate == NULL && e->message && strcmp(e->message, msg) == 0)
            pgfeed__fail_sqlstate(P->base.ctx, pgfeed__bin_error_sqlstate(err));
    }
    free(msg);
    return rc;
}

/* ---- errors that stop the import ---- */

int pgfeed__parse_utf16(struct parser *P, const char *line, const char *which)
{
    const unsigned char *u = (const unsigned char *)line;
    char *detail =
        u[0] >= 0xFE
            ? pgfeed__strdup_printf("The input starts with the %s byte order mark (0x%02x 0x%02x).",
                                    which, u[0], u[1])
            : pgfeed__strdup_printf("The input starts with characters of two bytes, one of them "
                                    "zero: it looks like %s.",
                                    which);
    int rc = pgfeed__fail(
        P->base.ctx, "parser", PGFEED_EPARSE, detail,
        "pgfeed reads UTF-16 only once converted: convert the file first, for example with "
        "iconv -f UTF-16 -t UTF-8, or to another encoding that --encoding then names.",
        "input is in UTF-16, which pgfeed cannot read");
    pgfeed__fail_at(P->base.ctx, 1, 0, NULL, 0, P->stats->bytes_read);
    free(detail);
    return rc;
}

int pgfeed__parse_bad_header(struct parser *P, const char *h, size_t n, size_t bad)
{
    const char *name = P->enc ? P->enc->name : "UTF8";
    char *quoted = quote(P, h, n);
    char *detail = pgfeed__strdup_printf(
        "The header has the byte 0x%02x at byte %zu, which %s does not allow. The header is "
        "\"%s\".",
        (unsigned char)h[bad], bad + 1, name, quoted ? quoted : "");
    int rc = pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail,
                          P->enc ? "Check --encoding: the input may be in another encoding."
                                 : "The input is not UTF-8: name its encoding with --encoding "
                                   "(for example --encoding LATIN1 or --encoding WIN1252).",
                          "invalid byte sequence for encoding \"%s\" in the header", name);
    pgfeed__fail_at(P->base.ctx, 1, 0, NULL, 0, P->stats->bytes_read); /* the first line */
    free(quoted);
    free(detail);
    return rc;
}

int pgfeed__parse_after_marker(struct parser *P, const char *line, size_t n, uint64_t lineno,
                               uint64_t off)
{
    const char *why = "An earlier line holds only \\., which ends COPY text data, and this "
                      "line follows it.";
    char *quoted = quote(P, line, n);
    char *detail = pgfeed__strdup_printf("%s The line is \"%s\".", why, quoted ? quoted : "");
    int rc =
        pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail,
                     "Remove the marker line, or the lines after it.",
                     "data after the end-of-copy marker in line %llu", (unsigned long long)lineno);
    pgfeed__fail_at(P->base.ctx, lineno, 0, NULL, off, P->stats->bytes_read);
    free(quoted);
    free(detail);
    return rc;
}

int pgfeed__parse_too_long(struct parser *P, const char *line, size_t n, uint64_t lineno,
                           uint64_t off)
{
    /* The same bytes whether the line end was seen yet or not. */
    char *quoted = quote(P, line, n < P->max_line + 1 ? n : P->max_line + 1);
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

int pgfeed__parse_unterminated(struct parser *P, const char *start, size_t n, uint64_t lineno,
                               uint64_t off, int header)
{
    int col = field_at(P, start, n, P->copen);
    char nb[160], msg[96];
    char *detail = pgfeed__strdup_printf(
        "The quote opened at line %llu, column %d%s, decoded byte %llu, is still open at end of "
        "input.",
        (unsigned long long)(lineno + count_lf(start, P->copen)), col,
        paren_name(P, col, nb, sizeof nb), (unsigned long long)(off + P->copen));
    const char *hint = "Set --quote if the file uses another quote character.";
    int rc;
    if (header) {
        rc = pgfeed__fail(P->base.ctx, "parser", PGFEED_EPARSE, detail, hint,
                          "unterminated quoted field in the CSV header");
        pgfeed__fail_at(P->base.ctx, lineno, col, NULL, off, P->stats->bytes_read);
    } else {
        snprintf(msg, sizeof msg, "unterminated quoted field in CSV input in line %llu",
                 (unsigned long long)lineno);
        rc = reject(P, start, n, lineno, off, col, msg, detail, hint);
    }
    free(detail);
    return rc;
}
