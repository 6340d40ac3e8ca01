/*
 * options.c -- an import's options: the public defaults (pgfeed_options_init), the job's
 * own copies of the caller's strings, and every default that depends on another option
 * (the format from the source's name; delimiter, quote and NULL marker per format; the
 * byte and size floors; one connection), resolved once, with the checks that refuse a
 * combination before anything runs.
 *
 * Stages read the resolved options through their context and default nothing
 * themselves; pgfeed__format_defaults is the one place that says what each format's
 * delimiter, quote and NULL marker are (the parser uses it too, for callers that build a
 * parser without a job).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void pgfeed_options_init(struct pgfeed_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->source_fd = 0;
    opt->format = PGFEED_FORMAT_AUTO;
    opt->header = PGFEED_HEADER_AUTO;
    opt->batch_rows = 100000;
    opt->connections = 1;
    opt->copy_format = PGFEED_COPY_AUTO;
    opt->max_line = 64u << 20;
    opt->chunk_size = 128u << 10;
    opt->max_window = (uint64_t)128 << 20;
    opt->log_level = PGFEED_LOG_INFO;
    opt->progress_interval_ms = 1000;
    opt->retries = 5;
    opt->connect_timeout_s = 30;
    opt->low_speed_time_s = 60;
}

void pgfeed__format_defaults(pgfeed_format_t format, char *delimiter, char *quote,
                             const char **null_marker)
{
    int csv = format == PGFEED_FORMAT_CSV;
    if (*delimiter == 0)
        *delimiter = csv ? ',' : '\t';
    if (*quote == 0)
        *quote = '"';
    if (*null_marker == NULL)
        *null_marker = csv ? "" : "\\N"; /* csv: an unquoted empty field */
}

void pgfeed__options_free(struct pgfeed_option_copies *c)
{
    char **s[] = {&c->source,       &c->conninfo, &c->table,      &c->columns,
                  &c->null_marker,  &c->ca_file,  &c->ca_path,    &c->state_table,
                  &c->rejects_path, &c->display,  &c->before_sql, &c->after_sql};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        free(*s[i]);
        *s[i] = NULL;
    }
    free(c->encoding);
    c->encoding = NULL;
}

/* *copy = a copy of orig (NULL stays NULL); 0, or -1 when out of memory. */
static int dup_into(char **copy, const char *orig)
{
    *copy = orig ? strdup(orig) : NULL;
    return orig != NULL && *copy == NULL ? -1 : 0;
}

int pgfeed__options_copy(struct pgfeed_options *dst, struct pgfeed_option_copies *c,
                         const struct pgfeed_options *src)
{
    memset(c, 0, sizeof *c);
    *dst = *src;
    int bad = dup_into(&c->source, src->source) | dup_into(&c->conninfo, src->conninfo) |
              dup_into(&c->table, src->table) | dup_into(&c->columns, src->columns) |
              dup_into(&c->null_marker, src->null_marker) | dup_into(&c->ca_file, src->ca_file) |
              dup_into(&c->ca_path, src->ca_path) | dup_into(&c->state_table, src->state_table) |
              dup_into(&c->rejects_path, src->rejects_path) |
              dup_into(&c->encoding, src->encoding) | dup_into(&c->before_sql, src->before_sql) |
              dup_into(&c->after_sql, src->after_sql);
    if (!bad && c->source && (c->display = pgfeed__url_strip_credentials(c->source)) == NULL)
        bad = 1;
    if (bad) {
        pgfeed__options_free(c);
        return UV_ENOMEM;
    }
    dst->source = c->source;
    dst->conninfo = c->conninfo;
    dst->table = c->table;
    dst->columns = c->columns;
    dst->null_marker = c->null_marker;
    dst->ca_file = c->ca_file;
    dst->ca_path = c->ca_path;
    dst->state_table = c->state_table;
    dst->rejects_path = c->rejects_path;
    dst->encoding = c->encoding;
    dst->before_sql = c->before_sql;
    dst->after_sql = c->after_sql;
    /* Floors that hold even for an import refused below. */
    if (dst->batch_bytes == 0)
        dst->batch_bytes = 16u << 20;
    if (dst->chunk_size < 4096)
        dst->chunk_size = 4096;
    if (dst->chunk_size > (size_t)64 << 20)
        dst->chunk_size = (size_t)64 << 20; /* reads and writes stay far below 4 GiB */
    if (dst->max_line < 1024)
        dst->max_line = 1024;
    return 0;
}

/* The format's characters: ASCII, and none that would make a line ambiguous. */
static int check_characters(struct pgfeed_ctx *ctx, const struct pgfeed_options *o)
{
    int csv = o->format == PGFEED_FORMAT_CSV;
    if (csv && (o->quote == o->delimiter || o->quote == '\n' || o->quote == '\r'))
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, NULL,
                            "the quote character must differ from the delimiter and line ends");
    if (o->format != PGFEED_FORMAT_TSV && o->format != PGFEED_FORMAT_TEXT && !csv)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, NULL, "unknown format %d",
                            (int)o->format);
    if (o->delimiter == '\n' || o->delimiter == '\r' || o->delimiter == '\\' ||
        (unsigned char)o->delimiter >= 0x80)
        return pgfeed__fail(
            ctx, "job", PGFEED_EUSAGE, NULL, "Give one ASCII character.",
            "the delimiter cannot be a newline, carriage return, backslash or non-ASCII byte");
    if (csv && (unsigned char)o->quote >= 0x80)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, "Give one ASCII character.",
                            "the quote character must be ASCII");
    return 0;
}

/* The input's encoding: one pgfeed reads, by PostgreSQL's name from now on. */
static int check_encoding(struct pgfeed_ctx *ctx, struct pgfeed_options *o)
{
    if (o->encoding == NULL)
        return 0;
    const struct pgfeed_encoding *e = pgfeed__encoding_find(o->encoding);
    if (e == NULL)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Use one of PostgreSQL's encoding names, such as UTF8, LATIN1 "
                            "(ISO-8859-1), LATIN9 (ISO-8859-15), WIN1252 (windows-1252), WIN1251 "
                            "or KOI8R.",
                            "unknown encoding \"%s\"", o->encoding);
    if (e->refused) {
        char *hint = pgfeed__strdup_printf(
            "Convert the input to UTF-8 first, for example with iconv -f %s -t UTF-8, and leave "
            "out --encoding.",
            e->iconv);
        int rc = pgfeed__fail(ctx, "job", PGFEED_EUSAGE, e->refused, hint,
                              "cannot read input in encoding \"%s\"", e->name);
        free(hint);
        return rc;
    }
    o->encoding = e->name;
    return 0;
}

/* --mode and what goes with it. */
static int check_mode(struct pgfeed_ctx *ctx, const struct pgfeed_options *o)
{
    if (o->mode != PGFEED_MODE_APPEND && o->mode != PGFEED_MODE_REPLACE &&
        o->mode != PGFEED_MODE_UPSERT)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, "Use append, replace or upsert.",
                            "unknown mode %d", (int)o->mode);
    if (o->mode == PGFEED_MODE_REPLACE && o->truncate)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE,
                            "--mode replace loads a new table and swaps it in at the end.",
                            "Leave out --truncate.",
                            "--truncate cannot be used with --mode replace");
    if (o->keep_old && o->mode != PGFEED_MODE_REPLACE)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, "Use --keep-old with --mode replace.",
                            "--keep-old only goes with --mode replace");
    const char *upsert_only = o->key                ? "--key"
                              : o->on_conflict != 0 ? "--on-conflict"
                              : o->delete_missing   ? "--delete-missing"
                                                    : NULL;
    if (upsert_only && o->mode != PGFEED_MODE_UPSERT) {
        char hint[64];
        snprintf(hint, sizeof hint, "Use %s with --mode upsert.", upsert_only);
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, hint,
                            "%s only goes with --mode upsert", upsert_only);
    }
    if (o->delete_missing && o->max_rejects > 0)
        return pgfeed__fail(
            ctx, "job", PGFEED_EUSAGE,
            "A row set aside would leave its key unseen, and --delete-missing would "
            "delete the table's row with that key.",
            "Leave out --max-rejects, or run without --delete-missing.",
            "--delete-missing cannot be used with --max-rejects");
    if (o->on_conflict != PGFEED_ON_CONFLICT_UPDATE && o->on_conflict != PGFEED_ON_CONFLICT_NOTHING)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, "Use update or nothing.",
                            "unknown on_conflict %d", (int)o->on_conflict);
    if (o->key && (o->key[0] == '\0' || strstr(o->key, ",,") || o->key[0] == ',' ||
                   o->key[strlen(o->key) - 1] == ','))
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Name the key's columns separated by commas: --key a,b.",
                            "invalid key \"%s\"", o->key);
    return 0;
}

int pgfeed__options_resolve(struct pgfeed_ctx *ctx, struct pgfeed_options *o)
{
    if (o->push && (o->source == NULL || o->source[0] == '\0'))
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Set source to a name for the pushed stream: messages and the "
                            "checkpoint know the import by it.",
                            "no name given for the pushed input");
    if (o->source == NULL || o->source[0] == '\0')
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Give a path, a URL, or - for standard input.", "no source given");
    if (o->table == NULL || o->table[0] == '\0')
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, "Name the target table with --table.",
                            "no target table given");
    if (o->format == PGFEED_FORMAT_AUTO)
        o->format = (pgfeed__url_path_ends_with(o->source, ".csv") ||
                     pgfeed__url_path_ends_with(o->source, ".csv.gz"))
                        ? PGFEED_FORMAT_CSV
                        : PGFEED_FORMAT_TSV;
    if (o->no_checkpoint && (o->resume || o->restart))
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Leave out --no-checkpoint to resume or restart an import.",
                            "--%s needs checkpoints, and --no-checkpoint turns them off",
                            o->resume ? "resume" : "restart");
    if (o->resume && o->restart)
        return pgfeed__fail(
            ctx, "job", PGFEED_EUSAGE, NULL,
            "Use --resume to continue the interrupted import, or --restart to start over.",
            "--resume and --restart cannot be used together");
    int rc = check_mode(ctx, o);
    if (rc == 0)
        rc = check_encoding(ctx, o);
    if (rc != 0)
        return rc;
    pgfeed__format_defaults(o->format, &o->delimiter, &o->quote, &o->null_marker);
    rc = check_characters(ctx, o);
    if (rc != 0)
        return rc;
    if (o->copy_format != PGFEED_COPY_TEXT && o->copy_format != PGFEED_COPY_BINARY &&
        o->copy_format != PGFEED_COPY_AUTO)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL, NULL, "unknown COPY format %d",
                            (int)o->copy_format);
    if (o->connections == 0)
        o->connections = 1;
    if (o->connections < 1 || o->connections > PGFEED_MAX_CONNECTIONS)
        return pgfeed__fail(ctx, "job", PGFEED_EUSAGE, NULL,
                            "Give a number of connections from 1 to 16.",
                            "invalid number of connections: %d", o->connections);
    return 0;
}
