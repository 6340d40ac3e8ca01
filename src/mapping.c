/*
 * mapping.c -- which table column each input field goes to, and in which COPY format.
 *
 * Owns the header rules of the contract (by name: exact, then camelCase -> snake_case
 * and case-insensitive; else by position when the counts agree under --header auto),
 * --columns, and the choice of binary COPY from the columns' types (pgfeed_bin_kind per
 * type OID). Works on the catalog's columns the sink read; the job hands the result to
 * the sink (the COPY's column list) and the parser (fields, arrays, binary kinds).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* primaryName -> primary_name; lower-cases everything. */
static void snake_case(const char *in, size_t n, char *out, size_t outcap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 2 < outcap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isupper(c)) {
            if (i > 0 && o > 0 && out[o - 1] != '_' &&
                (islower((unsigned char)in[i - 1]) || isdigit((unsigned char)in[i - 1])))
                out[o++] = '_';
            out[o++] = (char)tolower(c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static long find_column(const struct pgfeed_column *cols, size_t ncols, const char *name, size_t n)
{
    for (size_t i = 0; i < ncols; i++)
        if (strlen(cols[i].name) == n && memcmp(cols[i].name, name, n) == 0)
            return (long)i;
    char snake[512];
    snake_case(name, n, snake, sizeof snake);
    for (size_t i = 0; i < ncols; i++)
        if (strcasecmp(cols[i].name, snake) == 0)
            return (long)i;
    for (size_t i = 0; i < ncols; i++)
        if (strlen(cols[i].name) == n && strncasecmp(cols[i].name, name, n) == 0)
            return (long)i;
    return -1;
}

/* The binary kind of a type OID, or -1 for a type binary COPY does not encode here. */
static int bin_kind(uint32_t oid)
{
    switch (oid) {
    case 25:   /* text */
    case 1043: /* varchar */
    case 1042: /* bpchar */
        return PGFEED_BIN_TEXT;
    case 21:
        return PGFEED_BIN_INT2;
    case 23:
        return PGFEED_BIN_INT4;
    case 20:
        return PGFEED_BIN_INT8;
    case 16:
        return PGFEED_BIN_BOOL;
    case 1700:
        return PGFEED_BIN_NUMERIC;
    default:
        return -1;
    }
}

/*
 * --copy-format binary / auto: the targets' kinds in t->bin when every target's type has
 * one (and the input is tsv or csv); else NULL and one notice saying why.
 */
static int choose_copy_format(struct pgfeed_targets *t, struct pgfeed_ctx *ctx,
                              const struct pgfeed_column *cols)
{
    const struct pgfeed_options *opt = ctx->opt;
    free(t->bin);
    t->bin = NULL;
    if (opt->copy_format != PGFEED_COPY_BINARY && opt->copy_format != PGFEED_COPY_AUTO)
        return 0;
    const char *why = NULL, *col = NULL, *type = NULL;
    if (opt->format == PGFEED_FORMAT_TEXT)
        why = "format text is passed through to the server as it is";
    struct pgfeed_bin_field *b = why ? NULL : calloc(t->n ? t->n : 1, sizeof *b);
    if (why == NULL && b == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    for (size_t i = 0; b && i < t->n; i++) {
        const struct pgfeed_column *c = &cols[t->idx[i]];
        int kind = bin_kind(c->is_array ? c->elem_oid : c->type_oid);
        if (kind < 0) {
            why = "binary COPY does not encode its type here";
            col = c->name;
            type = c->type_name;
            free(b);
            b = NULL;
            break;
        }
        b[i].kind = kind;
        b[i].is_array = c->is_array;
        b[i].elem_oid = c->is_array ? c->elem_oid : 0;
    }
    t->bin = b;
    if (b == NULL && !t->bin_noticed) {
        t->bin_noticed = 1;
        int level = opt->copy_format == PGFEED_COPY_AUTO ? PGFEED_LOG_INFO : PGFEED_LOG_NOTICE;
        if (col)
            pgfeed__log(ctx, level, "using text COPY: column \"%s\" has type %s, which %s", col,
                        type ? type : "?", why);
        else
            pgfeed__log(ctx, level, "using text COPY: %s", why);
    }
    return 0;
}

int pgfeed__targets_set(struct pgfeed_targets *t, struct pgfeed_ctx *ctx,
                        const struct pgfeed_column *cols, const size_t *idx, size_t n)
{
    free(t->idx);
    free(t->is_array);
    free(t->names);
    t->idx = malloc((n ? n : 1) * sizeof *t->idx);
    t->is_array = malloc((n ? n : 1) * sizeof *t->is_array);
    t->names = malloc((n ? n : 1) * sizeof *t->names);
    if (!t->idx || !t->is_array || !t->names)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        t->idx[i] = idx[i];
        t->is_array[i] = cols[idx[i]].is_array;
        t->names[i] = cols[idx[i]].name;
    }
    return choose_copy_format(t, ctx, cols);
}

void pgfeed__targets_free(struct pgfeed_targets *t)
{
    free(t->idx);
    free(t->is_array);
    free(t->names);
    free(t->bin);
    memset(t, 0, sizeof *t);
}

/* How many names a header message lists before "and N more". */
#define NAMES_SHOWN 10

/* Appends a name from the input to a list in a message: quoted, cut, escaped. */
static int append_quoted_name(struct pgfeed_buf *b, size_t nth, const char *p, size_t n)
{
    char *q = pgfeed__quote_input(p, n);
    if (q == NULL)
        return UV_ENOMEM;
    int rc = pgfeed__buf_append(b, nth ? ", \"" : "\"", nth ? 3 : 1);
    rc |= pgfeed__buf_append(b, q, strlen(q));
    rc |= pgfeed__buf_append(b, "\"", 1);
    free(q);
    return rc;
}

/* ", and N more" after a list of NAMES_SHOWN of total names; then the final NUL. */
static int end_list(struct pgfeed_buf *b, size_t total)
{
    char more[48];
    int n = total > NAMES_SHOWN ? snprintf(more, sizeof more, ", and %zu more", total - NAMES_SHOWN)
                                : 0;
    return pgfeed__buf_append(b, more, (size_t)n) | pgfeed__buf_append(b, "", 1);
}

int pgfeed__map_header(struct pgfeed_ctx *ctx, const struct pgfeed_column *cols, size_t ncols,
                       const char *line, size_t n, size_t **out, size_t *nout)
{
    const struct pgfeed_options *opt = ctx->opt;

    size_t nf = 1;
    for (size_t i = 0; i < n; i++)
        nf += line[i] == opt->delimiter;
    size_t *idx = calloc(nf, sizeof *idx);
    struct pgfeed_buf unmatched = {0}; /* the first NAMES_SHOWN names not found, quoted */
    if (idx == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    size_t nbad = 0, f = 0, start = 0;
    int nomem = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != opt->delimiter)
            continue;
        long c = find_column(cols, ncols, line + start, i - start);
        for (size_t k = 0; c >= 0 && k < f; k++)
            if (idx[k] == (size_t)c)
                c = -1; /* two fields for one column: not a name match */
        if (c < 0) {
            if (nbad < NAMES_SHOWN)
                nomem |= append_quoted_name(&unmatched, nbad, line + start, i - start);
            nbad++;
        } else {
            idx[f] = (size_t)c;
        }
        f++;
        start = i + 1;
    }
    nomem |= end_list(&unmatched, nbad);
    if (nomem) {
        free(idx);
        pgfeed__buf_free(&unmatched);
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    int rc = 0;
    if (nbad == 0) {
        pgfeed__log(ctx, PGFEED_LOG_INFO, "header mapped by name to the columns of \"%s\"",
                    opt->table);
    } else if (opt->header == PGFEED_HEADER_AUTO && nf == ncols) {
        for (size_t i = 0; i < ncols; i++)
            idx[i] = i;
        pgfeed__log(
            ctx, PGFEED_LOG_NOTICE,
            "header names %s do not match the columns of \"%s\"; mapping the %zu fields by position",
            unmatched.data, opt->table, nf);
    } else {
        struct pgfeed_buf names = {0};
        for (size_t i = 0; i < ncols && i < NAMES_SHOWN && !nomem; i++)
            nomem |= append_quoted_name(&names, i, cols[i].name, strlen(cols[i].name));
        nomem |= end_list(&names, ncols);
        char *detail = nomem ? NULL
                             : pgfeed__strdup_printf(
                                   "Header fields not found among the columns of \"%s\": %s. The "
                                   "file has %zu fields; the table has %zu columns: %s.",
                                   opt->table, unmatched.data, nf, ncols, names.data);
        pgfeed__buf_free(&names);
        rc = pgfeed__fail(
            ctx, "job", PGFEED_EHEADER, detail,
            "Rename the header fields or the columns, name the target columns in input order with --columns, or use --header skip to map by position.",
            "header of the input does not match table \"%s\"", opt->table);
        pgfeed__fail_at(ctx, 1, 0, NULL, 0, 0);
        free(detail);
    }
    pgfeed__buf_free(&unmatched);
    if (rc != 0) {
        free(idx);
        return rc;
    }
    *out = idx;
    *nout = nf;
    return 0;
}

/* --columns "a,b,c" -> indexes into the table's columns. */
int pgfeed__map_columns_option(struct pgfeed_ctx *ctx, const struct pgfeed_column *cols,
                               size_t ncols, size_t **out, size_t *nout)
{
    const char *s = ctx->opt->columns;
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    size_t *idx = calloc(n, sizeof *idx);
    if (idx == NULL)
        return pgfeed__fail(ctx, "job", UV_ENOMEM, NULL, NULL, "out of memory");
    size_t k = 0;
    while (k < n) {
        size_t len = strcspn(s, ",");
        const char *name = s;
        size_t nl = len;
        while (nl && isspace((unsigned char)*name)) {
            name++;
            nl--;
        }
        while (nl && isspace((unsigned char)name[nl - 1]))
            nl--;
        long c = -1;
        for (size_t i = 0; i < ncols; i++)
            if (strlen(cols[i].name) == nl && memcmp(cols[i].name, name, nl) == 0)
                c = (long)i;
        if (c < 0)
            c = find_column(cols, ncols, name, nl);
        if (c < 0) {
            struct pgfeed_buf names = {0};
            int nomem = 0;
            for (size_t i = 0; i < ncols && i < NAMES_SHOWN && !nomem; i++)
                nomem |= append_quoted_name(&names, i, cols[i].name, strlen(cols[i].name));
            nomem |= end_list(&names, ncols);
            char *detail =
                nomem ? NULL : pgfeed__strdup_printf("The table's columns are: %s.", names.data);
            char *q = pgfeed__quote_input(name, nl);
            pgfeed__buf_free(&names);
            free(idx);
            int rc = pgfeed__fail(ctx, "job", PGFEED_EUSAGE, detail, "Check --columns.",
                                  "column \"%s\" of --columns does not exist in table \"%s\"",
                                  q ? q : "?", ctx->opt->table);
            free(detail);
            free(q);
            return rc;
        }
        idx[k++] = (size_t)c;
        s += len + (s[len] == ',');
    }
    *out = idx;
    *nout = n;
    return 0;
}
