/*
 * parse_header.c -- the header record and the fields it maps to: hands the header to the
 * job's on_header, and takes back the expected fields (pgfeed__parser_set_fields: count,
 * array flags, names for messages; pgfeed__parser_set_binary: binary COPY kinds).
 *
 * Mapping the header to table columns is the job's (mapping.c, through on_header); when the
 * record is the header, its line numbers and where it ends are parse_record.c's.
 * tsv and text hand the header line as it is; csv hands its fields unquoted (doubled
 * quotes undone) and joined by the delimiter, built in a buffer of the record's length
 * that is freed before returning. Input in another encoding than UTF-8 is handed
 * converted to UTF-8 (encoding.c), in a buffer freed before returning. A UTF-8 header with
 * a zero byte or bytes that are not UTF-8 fails the import as input that is not text
 * (worded in parse_report.c).
 */
#include "parse_internal.h"

/*
 * The header h[0..n) to on_header, in UTF-8: in another encoding it is checked (a bad byte
 * fails the import) and converted, so that its names meet the catalog's.
 */
static int give_header(struct parser *P, const char *h, size_t n)
{
    if (P->on_header == NULL)
        return 0;
    if (P->enc == NULL)
        return P->on_header(P->on_header_arg, h, n);
    size_t bad = pgfeed__encoding_check(P->enc, h, n);
    if (bad != n)
        return pgfeed__parse_bad_header(P, h, n, bad);
    struct pgfeed_buf u = {0};
    int rc = pgfeed__encoding_to_utf8(P->enc, h, n, &u);
    rc = rc == 0 ? P->on_header(P->on_header_arg, u.data, u.len) : pgfeed__parse_nomem(P);
    pgfeed__buf_free(&u);
    return rc;
}

/* csv: the header's fields unquoted, joined by the delimiter, to on_header. */
static int csv_header(struct parser *P, const char *r, size_t n)
{
    struct pgfeed_buf h = {0};
    const char *p = r, *end = r + n;
    int rc = pgfeed__buf_reserve(&h, n + 1);
    for (;;) {
        p = pgfeed__csv_field(P, p, end, &h, &rc);
        if (p == end)
            break;
        p++;
        if (pgfeed__buf_append(&h, &P->delim, 1) != 0)
            rc = UV_ENOMEM;
    }
    if (rc == 0)
        rc = give_header(P, h.data, h.len);
    else
        rc = pgfeed__parse_nomem(P);
    pgfeed__buf_free(&h);
    return rc;
}

int pgfeed__parse_header(struct parser *P, const char *r, size_t n)
{
    P->want_header = 0;
    /* A zero byte or bytes that are not UTF-8 in the first line: most likely not text at
     * all (an archive, an image, a format pgfeed does not decompress), said as such. In
     * another encoding, give_header names the byte that encoding refuses. */
    size_t bad = P->enc ? n : pgfeed__utf8_check(r, n);
    if (bad < n)
        return pgfeed__parse_not_text(P, r, n, bad);
    if (P->format == PGFEED_FORMAT_CSV)
        return csv_header(P, r, n);
    return give_header(P, r, n);
}

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
