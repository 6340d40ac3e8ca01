/*
 * options.c -- the pgfeed command line: one table of options, the parsers of
 * their values, --help and --version, and the passwords blanked in argv.
 *
 * Turns argv into struct cli_args (the library's struct pgfeed_options plus
 * the CLI's own settings); running the job and printing its outcome are
 * main.c's. Each row of `options` is one option: its names, the name of its
 * value in --help, the parser for that kind of value, the field it sets, and
 * its help lines, so adding an option is adding a row. Every usage error
 * prints "pgfeed: error: ..." plus the --help hint and makes the exit status 2.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

/* A parser's answer: the value was stored, was refused, or ends the run (--help). */
enum { OPT_STORED, OPT_INVALID, OPT_EXIT_OK, OPT_FAILED /* said why already */ };

struct cli_option;
typedef int (*cli_parse_fn)(const struct cli_option *o, char *value, struct cli_args *a);

/* A word an option accepts and the enum value it stands for. */
struct word {
    const char *word;
    int value;
};

struct cli_option {
    const char *name;         /* --name */
    const char *alias;        /* another --name for the same option, not shown in --help */
    char letter;              /* -x, or 0 */
    const char *arg;          /* the value's name in --help; NULL: the option takes no value */
    cli_parse_fn parse;       /* stores the value at `off` */
    size_t off, size;         /* the field of struct cli_args it sets (see TO) */
    uint64_t min, max;        /* parse_uint: accepted range */
    const struct word *words; /* parse_word: accepted words, ending with {NULL} */
    const char *want;         /* ends the usage error: invalid value "V" for --NAME: WANT */
    const char *help;         /* lines after the option in --help, separated by '\n' */
    int global;               /* the whole run's: the command line only, not a manifest line */
};

/*
 * A row of `options`, by kind of value: l the letter (0: none), n the long name, a the
 * value's name in --help, f the field it sets, h the help lines, w the end of the usage
 * error for a bad value. TO(f) is f's offset in struct cli_args and its size, which the
 * parsers check.
 */
#define TO(f) .off = offsetof(struct cli_args, f), .size = sizeof(((struct cli_args *)0)->f)

#define ACTION(l, n, p, h)      .letter = l, .name = n, .parse = p, .help = h
#define FLAG(l, n, f, h)        ACTION(l, n, parse_flag, h), TO(f)
#define VALUE(p, l, n, a, f, h) ACTION(l, n, p, h), .arg = a, TO(f)
#define STRING(l, n, a, f, h)   VALUE(parse_string, l, n, a, f, h)
#define UINT(l, n, a, f, lo, hi, w, h)                                                             \
    VALUE(parse_uint, l, n, a, f, h), .min = lo, .max = hi, .want = w
#define WORD(l, n, a, f, ws, w, h) VALUE(parse_word, l, n, a, f, h), .words = ws, .want = w
#define CHAR(p, n, f, h)           VALUE(p, 0, n, "C", f, h), .want = "give one character"
#define SECONDS(n, f, h)                                                                           \
    VALUE(parse_seconds, 0, n, "SECONDS", f, h), .want = "give a positive number of seconds"

static int parse_string(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_conninfo(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_flag(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_uint(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_seconds(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_word(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_char(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_delimiter(const struct cli_option *o, char *value, struct cli_args *a);
static int parse_sql(const struct cli_option *o, char *value, struct cli_args *a);
static int show_version(const struct cli_option *o, char *value, struct cli_args *a);
static int show_help(const struct cli_option *o, char *value, struct cli_args *a);

static const struct word formats[] = {{"tsv", PGFEED_FORMAT_TSV},
                                      {"text", PGFEED_FORMAT_TEXT},
                                      {"csv", PGFEED_FORMAT_CSV},
                                      {NULL, 0}};
static const struct word header_modes[] = {{"auto", PGFEED_HEADER_AUTO},
                                           {"match", PGFEED_HEADER_MATCH},
                                           {"skip", PGFEED_HEADER_SKIP},
                                           {"none", PGFEED_HEADER_NONE},
                                           {NULL, 0}};
static const struct word modes[] = {{"append", PGFEED_MODE_APPEND},
                                    {"replace", PGFEED_MODE_REPLACE},
                                    {"upsert", PGFEED_MODE_UPSERT},
                                    {NULL, 0}};
static const struct word on_conflicts[] = {
    {"update", PGFEED_ON_CONFLICT_UPDATE}, {"nothing", PGFEED_ON_CONFLICT_NOTHING}, {NULL, 0}};
static const struct word copy_formats[] = {{"text", PGFEED_COPY_TEXT},
                                           {"binary", PGFEED_COPY_BINARY},
                                           {"auto", PGFEED_COPY_AUTO},
                                           {NULL, 0}};
static const struct word progress_modes[] = {
    {"auto", PROGRESS_AUTO}, {"auto-json", PROGRESS_AUTO_JSON}, {"bar", PROGRESS_BAR},
    {"json", PROGRESS_JSON}, {"none", PROGRESS_NONE},           {NULL, 0}};

/* In --help's order. */
static const struct cli_option options[] = {
    {VALUE(parse_conninfo, 'd', "db", "CONNINFO", opt.conninfo,
           "libpq conninfo string or postgres:// URI\n"
           "(default: $DATABASE_URL, else libpq's PG* environment)")},
    {STRING('t', "table", "NAME", opt.table,
            "target table, optionally schema-qualified (required)")},
    {STRING('c', "columns", "A,B,...", opt.columns,
            "target columns, in the order of the input fields")},
    {WORD('f', "format", "FMT", opt.format, formats, "use tsv, csv or text",
          "tsv | csv | text (default: csv if the source's path ends in\n"
          ".csv or .csv.gz, else tsv)")},
    {WORD(0, "header", "MODE", opt.header, header_modes, "use auto, match, skip or none",
          "auto | match | skip | none (default auto)")},
    {STRING(0, "null", "STR", opt.null_marker,
            "null marker (default \\N; csv: an unquoted empty field)")},
    {CHAR(parse_delimiter, "delimiter", opt.delimiter,
          "field delimiter (default tab; csv: comma)")},
    {CHAR(parse_char, "quote", opt.quote, "csv quote character (default \")")},
    {STRING(0, "encoding", "NAME", opt.encoding,
            "the input's encoding, by PostgreSQL's names: UTF8 (default), LATIN1,\n"
            "LATIN9, WIN1252, WIN1251, KOI8R... (also ISO-8859-1, windows-1252)")},
    {UINT('b', "batch-rows", "N", opt.batch_rows, 0, UINT64_MAX, "give a whole number",
          "rows per transaction (default 100000; 0 = one transaction)")},
    {UINT('j', "connections", "N", opt.connections, 1, 16, "give a number from 1 to 16",
          "parallel COPY connections, 1 to 16 (default 1)")},
    {WORD(0, "copy-format", "F", opt.copy_format, copy_formats, "use auto, text or binary",
          "auto | binary | text: how rows travel to the server (default\n"
          "auto: binary where the columns' types allow, else text)")},
    {FLAG(0, "truncate", opt.truncate, "empty the table in the first batch's transaction")},
    {WORD(0, "mode", "MODE", opt.mode, modes, "use append, replace or upsert",
          "append | replace | upsert (default append): replace loads\n"
          "TABLE_pgfeed_new and swaps it in when every row is in; readers\n"
          "never see a mix; upsert merges each batch by key")},
    {FLAG(0, "keep-old", opt.keep_old, "--mode replace: keep the old rows as TABLE_pgfeed_old")},
    {STRING(0, "key", "COL,...", opt.key,
            "--mode upsert: the key (default: the primary key, else the only\n"
            "unique index)")},
    {WORD(0, "on-conflict", "WHAT", opt.on_conflict, on_conflicts, "use update or nothing",
          "--mode upsert: update | nothing, for a key already there\n"
          "(default update)")},
    {FLAG(0, "delete-missing", opt.delete_missing,
          "--mode upsert: at the end, delete the rows whose key the file\n"
          "does not have")},
    {STRING(0, "manifest", "FILE", manifest,
            "run the imports FILE lists (one command line each, without\n"
            "\"pgfeed\"; the options given here are their defaults)"),
     .global = 1},
    {UINT(0, "max-jobs", "N", max_jobs, 1, 1000, "give a number from 1 to 1000",
          "--manifest: at most N imports at once (default: all)"),
     .global = 1},
    {FLAG(0, "fail-fast", fail_fast, "--manifest: stop every import when one fails"), .global = 1},
    {VALUE(parse_sql, 0, "before", "SQL", opt.before_sql,
           "SQL run before the import, in its own transaction (before the\n"
           "table is read, so it may create it); @FILE reads FILE"),
     .want = "give SQL or @FILE"},
    {VALUE(parse_sql, 0, "after", "SQL", opt.after_sql,
           "SQL run once every row is committed, in the transaction that\n"
           "marks the import finished; @FILE reads FILE"),
     .want = "give SQL or @FILE"},
    {UINT(0, "max-rejects", "N", opt.max_rejects, 0, UINT64_MAX, "give a whole number",
          "rows that may be rejected before the import fails (default 0)")},
    {STRING(0, "rejects", "FILE", opt.rejects_path,
            "where rejected rows go (default TABLE.rejects.tsv, made only if needed;\n"
            "a new file unless --resume)")},
    {UINT(0, "batch-bytes", "N", opt.batch_bytes, 4096, (uint64_t)1 << 40,
          "give a number of bytes from 4096 up",
          "also end a batch at N bytes of COPY data (default 16777216)")},
    {UINT(0, "max-window", "N", opt.max_window, 1024, (uint64_t)1 << 31,
          "give a number of bytes from 1024 to 2147483648",
          "largest zstd window (xz: dictionary) to accept, in bytes\n"
          "(default 134217728, 128 MiB)")},
    {FLAG(0, "resume", opt.resume,
          "continue an interrupted import of the same source into the same table")},
    {FLAG(0, "restart", opt.restart, "forget an interrupted import's checkpoint and start over")},
    {STRING(0, "state-table", "NAME", opt.state_table,
            "where checkpoints are kept (default pgfeed_checkpoints; made if missing)")},
    {FLAG(0, "no-checkpoint", opt.no_checkpoint,
          "keep no checkpoints (no state table; no --resume, no retry)")},
    {SECONDS("timeout", opt.timeout_s, "give up after this long (default: no limit)")},
    {UINT(0, "retries", "N", opt.retries, 0, 100, "give a number from 0 to 100",
          "retries for transient network failures (default 5)")},
    {SECONDS("wait-for-db", opt.wait_for_db_s,
             "keep trying a database server that is not up yet this long")},
    {STRING(0, "cacert", "FILE", opt.ca_file,
            "CA bundle for https (default: the system's); also --ca-file"),
     .alias = "ca-file"},
    {STRING(0, "capath", "DIR", opt.ca_path, "CA directory for https; also --ca-path"),
     .alias = "ca-path"},
    {SECONDS("connect-timeout", opt.connect_timeout_s,
             "give up connecting after this long (default 30)")},
    {SECONDS("low-speed-time", opt.low_speed_time_s,
             "retry a download stalled this long (default 60)")},
    {FLAG('k', "insecure", opt.insecure, "do not verify the server's TLS certificate")},
    {WORD(0, "progress", "MODE", cli.progress, progress_modes,
          "use auto, auto-json, bar, json or none",
          "auto | auto-json | bar | json | none (default $PGFEED_PROGRESS,\n"
          "else auto: bar when stderr is a terminal, else none; auto-json:\n"
          "bar on a terminal, else json); json: one object per line on stderr"),
     .global = 1},
    {SECONDS("progress-interval", progress_interval,
             "how often progress is shown (default 0.25 bar, 1 json)"),
     .global = 1},
    {FLAG('q', "quiet", cli.quiet, "print errors only"), .global = 1},
    {FLAG('v', "verbose", cli.verbose, "print progress details"), .global = 1},
    {ACTION(0, "version", show_version, "print the version and exit"), .global = 1},
    {ACTION('h', "help", show_help, "print this help and exit"), .global = 1},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static const char help_head[] =
    "pgfeed streams a (gzipped) TSV, CSV or COPY text file into a PostgreSQL table with COPY.\n"
    "\n"
    "Usage:\n"
    "  pgfeed [OPTIONS] SOURCE\n"
    "  pgfeed [OPTIONS] --manifest FILE\n"
    "\n"
    "SOURCE is a path, a file://, http:// or https:// URL, or - for standard input.\n"
    "Compression (gzip, zlib or none) is detected from the first bytes.\n"
    "\n"
    "Options:\n";
static const char help_tail[] =
    "\n"
    "Exit status: 0 imported, 1 import failed, 2 usage error, 130 SIGINT, 143 SIGTERM.\n";

/* ------------------------------------------------------------- storing values */

static void *target(const struct cli_option *o, struct cli_args *a)
{
    return (char *)a + o->off;
}

/* Integers of every width the table uses (int, enums, char, size_t, uint64_t). */
static void store_uint(const struct cli_option *o, struct cli_args *a, uint64_t v)
{
    uint8_t v8 = (uint8_t)v;
    uint32_t v32 = (uint32_t)v;
    switch (o->size) {
    case 1:
        memcpy(target(o, a), &v8, 1);
        break;
    case 4:
        memcpy(target(o, a), &v32, 4);
        break;
    default:
        assert(o->size == sizeof v);
        memcpy(target(o, a), &v, sizeof v);
    }
}

static int parse_string(const struct cli_option *o, char *value, struct cli_args *a)
{
    const char *s = value;
    assert(o->size == sizeof s);
    memcpy(target(o, a), &s, sizeof s);
    return OPT_STORED;
}

static int parse_flag(const struct cli_option *o, char *value, struct cli_args *a)
{
    store_uint(o, a, 1);
    return OPT_STORED;
}

/* A whole number in [min, max]: digits only, no sign. */
static int parse_uint(const struct cli_option *o, char *value, struct cli_args *a)
{
    char *end;
    if (value[0] == '-' || value[0] == '\0')
        return OPT_INVALID;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || *end || v < o->min || v > o->max)
        return OPT_INVALID;
    store_uint(o, a, v);
    return OPT_STORED;
}

/* A positive number of seconds, up to 1e9. */
static int parse_seconds(const struct cli_option *o, char *value, struct cli_args *a)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || *end || end == value || !(v > 0) || v > 1e9)
        return OPT_INVALID;
    assert(o->size == sizeof v);
    memcpy(target(o, a), &v, sizeof v);
    return OPT_STORED;
}

static int parse_word(const struct cli_option *o, char *value, struct cli_args *a)
{
    for (const struct word *w = o->words; w->word; w++)
        if (strcmp(value, w->word) == 0) {
            store_uint(o, a, (uint64_t)w->value);
            return OPT_STORED;
        }
    return OPT_INVALID;
}

static int parse_char(const struct cli_option *o, char *value, struct cli_args *a)
{
    if (strlen(value) != 1)
        return OPT_INVALID;
    store_uint(o, a, (unsigned char)value[0]);
    return OPT_STORED;
}

/* "\t", "tab", "\\t" or one character. */
static int parse_delimiter(const struct cli_option *o, char *value, struct cli_args *a)
{
    if (strcmp(value, "\\t") == 0 || strcmp(value, "tab") == 0 || strcmp(value, "\t") == 0) {
        store_uint(o, a, '\t');
        return OPT_STORED;
    }
    return parse_char(o, value, a);
}

static int show_version(const struct cli_option *o, char *value, struct cli_args *a)
{
    printf("pgfeed %s (%s)\n", pgfeed_version(), pgfeed_build_info());
    return OPT_EXIT_OK;
}

/*
 * Each option's names start in column 2, its help in column 26; when the names are too
 * long for that, 2 spaces after them, aligned with the row before if it was long too.
 */
static int show_help(const struct cli_option *unused, char *value, struct cli_args *a)
{
    int col = 26;
    fputs(help_head, stdout);
    for (const struct cli_option *o = options; o < options + N_OPTIONS; o++) {
        int n = o->letter ? printf("  -%c, ", o->letter) : printf("      ");
        n += printf("--%s", o->name);
        if (o->arg)
            n += printf(" %s", o->arg);
        if (n + 2 <= 26)
            col = 26;
        else if (col == 26 || n + 2 > col)
            col = n + 2;
        printf("%*s", col - n, "");
        for (const char *h = o->help; *h; h++)
            if (*h == '\n')
                printf("\n%26s", "");
            else
                putchar(*h);
        putchar('\n');
    }
    fputs(help_tail, stdout);
    return OPT_EXIT_OK;
}

/*
 * --before / --after: SQL, or @FILE for the SQL in FILE (a relative FILE is read from
 * a->base_dir when set: a manifest's directory). The text read is kept in a->sql_copies.
 */
static int parse_sql(const struct cli_option *o, char *value, struct cli_args *a)
{
    const char *sql = value;
    if (value[0] == '@') {
        char *text = cli_read_sql_file(a, value + 1, o->name);
        if (text == NULL)
            return OPT_FAILED;
        sql = text;
    }
    if (*sql == '\0')
        return OPT_INVALID;
    assert(o->size == sizeof sql);
    memcpy(target(o, a), &sql, sizeof sql);
    return OPT_STORED;
}

/* ------------------------------------------------------------- secrets in argv */

/*
 * Passwords on the command line. Any user can read another's /proc/PID/cmdline, so,
 * as database clients do, pgfeed copies the options it needs and then overwrites the
 * secret part of each argument in place (with 'x's, keeping the rest readable):
 * password=... in a conninfo string, the password of a postgres:// URI (in its
 * user:password@ or its ?password= parameter), and the password of an http(s) URL.
 * The copies are what the import uses.
 */
static void blank(char *p, char *end)
{
    for (; p < end; p++)
        *p = 'x';
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* scheme://user:password@host... : the password; the authority ends at one of `stops`. */
static void hide_userinfo_password(char *s, const char *stops)
{
    char *auth = strstr(s, "://");
    if (auth == NULL)
        return;
    auth += 3;
    char *end = auth + strcspn(auth, stops);
    char *at = NULL;
    for (char *q = auth; q < end; q++)
        if (*q == '@')
            at = q; /* the last one: a password may hold an unescaped '@' */
    if (at == NULL)
        return;
    char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon)
        blank(colon + 1, at);
}

/* postgres[ql]://user:password@host/db?password=... */
static void hide_uri_password(char *s)
{
    hide_userinfo_password(s, "/?");
    char *q = strchr(s, '?');
    while (q) {
        q++;
        size_t n = strcspn(q, "&");
        if (strncmp(q, "password=", 9) == 0)
            blank(q + 9, q + n);
        q = q[n] ? q + n : NULL;
    }
}

/* "host=h password='s e c r e t' dbname=d", or a URI. */
static void hide_conninfo_password(char *s)
{
    if (has_prefix(s, "postgresql://") || has_prefix(s, "postgres://")) {
        hide_uri_password(s);
        return;
    }
    char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            return;
        char *key = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        size_t klen = (size_t)(p - key);
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != '=')
            return; /* not a conninfo string libpq accepts; it will say so */
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        char *val = p, *val_end;
        if (*p == '\'') {
            val = ++p;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            val_end = p;
            if (*p)
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            val_end = p;
        }
        if (klen == 8 && strncmp(key, "password", 8) == 0)
            blank(val, val_end);
        else if (klen == 6 && strncmp(key, "dbname", 6) == 0 &&
                 (has_prefix(val, "postgresql://") || has_prefix(val, "postgres://"))) {
            char saved = *val_end;
            *val_end = '\0';
            hide_uri_password(val);
            *val_end = saved;
        }
    }
}

static void hide_url_password(char *s)
{
    if (has_prefix(s, "http://") || has_prefix(s, "https://"))
        hide_userinfo_password(s, "/?#");
}

/* A copy of an argument for the import, the argument itself with its password blanked. */
static const char *take_secret_arg(char *arg, void (*hide)(char *), char **copy)
{
    free(*copy);
    *copy = strdup(arg);
    if (*copy == NULL) {
        fprintf(stderr, "pgfeed: error: out of memory\n");
        exit(CLI_EXIT_FAILED);
    }
    hide(arg);
    return *copy;
}

static int parse_conninfo(const struct cli_option *o, char *value, struct cli_args *a)
{
    const char *s = take_secret_arg(value, hide_conninfo_password, &a->conninfo_copy);
    assert(o->size == sizeof s);
    memcpy(target(o, a), &s, sizeof s);
    return OPT_STORED;
}

/* ------------------------------------------------------------- the command line */

/* getopt_long's val for an option: its letter, else 256 + its row. */
static int option_val(const struct cli_option *o)
{
    return o->letter ? o->letter : 256 + (int)(o - options);
}

static const struct cli_option *option_by_val(int val)
{
    for (const struct cli_option *o = options; o < options + N_OPTIONS; o++)
        if (option_val(o) == val)
            return o;
    return NULL;
}

/* getopt_long's tables, made from `options`: ":d:t:...", and one entry per name. */
static void getopt_tables(char *shorts, struct option *longs)
{
    *shorts++ = ':'; /* a missing value returns ':', so it gets its own message */
    for (const struct cli_option *o = options; o < options + N_OPTIONS; o++) {
        int has_arg = o->arg ? required_argument : no_argument;
        if (o->letter) {
            *shorts++ = o->letter;
            if (o->arg)
                *shorts++ = ':';
        }
        *longs++ = (struct option){o->name, has_arg, NULL, option_val(o)};
        if (o->alias)
            *longs++ = (struct option){o->alias, has_arg, NULL, option_val(o)};
    }
    *shorts = '\0';
    *longs = (struct option){NULL, 0, NULL, 0};
}

/* A usage error, after "FILE:LINE: " when a manifest line is being read. */
static void __attribute__((format(printf, 2, 3)))
usage(const struct cli_args *a, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_usage_error("%s%s", a->where ? a->where : "", msg);
}

/*
 * getopt's complaints, in our format. optopt is the option's val: a letter is named
 * as -x (also for its long name); an option without a letter, or one getopt did not
 * know (optopt 0), as it was written.
 */
static int getopt_error(const struct cli_args *a, int c, char **argv)
{
    if (c == ':') {
        if (optopt > 0 && optopt < 256)
            usage(a, "option -%c needs an argument", optopt);
        else
            usage(a, "option \"%s\" needs an argument", argv[optind - 1]);
    } else {
        if (optopt > 0 && optopt < 256)
            usage(a, "unknown option -%c", optopt);
        else
            usage(a, "unknown option \"%s\"", argv[optind - 1]);
    }
    return CLI_EXIT_USAGE;
}

/* How progress is shown, once the options are all read (the command line's only). */
static void resolve_progress(struct cli_args *a)
{
    if (a->cli.progress == PROGRESS_AUTO || a->cli.progress == PROGRESS_AUTO_JSON) {
        int tty = isatty(STDERR_FILENO) && !a->cli.quiet;
        a->cli.progress = tty                                     ? PROGRESS_BAR
                          : a->cli.progress == PROGRESS_AUTO_JSON ? PROGRESS_JSON
                                                                  : PROGRESS_NONE;
    }
    if (a->cli.progress != PROGRESS_NONE) {
        double interval = a->progress_interval;
        if (interval <= 0)
            interval = a->cli.progress == PROGRESS_BAR ? 0.25 : 1.0;
        a->opt.progress_interval_ms = (uint64_t)(interval * 1000.0);
        if (a->opt.progress_interval_ms == 0)
            a->opt.progress_interval_ms = 1;
    }
}

/* What the options leave to the operands and to each other: SOURCE, --table. */
static int finish_import(struct cli_args *a, int argc, char **argv)
{
    if (optind >= argc) {
        usage(a, "no source given");
        return CLI_EXIT_USAGE;
    }
    if (argc - optind > 1) {
        usage(a, "too many arguments: \"%s\" after the source", argv[optind + 1]);
        return CLI_EXIT_USAGE;
    }
    a->opt.source = take_secret_arg(argv[optind], hide_url_password, &a->source_copy);
    if (a->opt.table == NULL) {
        usage(a, "no target table given: use --table");
        return CLI_EXIT_USAGE;
    }
    a->cli.table = a->opt.table;
    a->cli.mode = a->opt.mode == PGFEED_MODE_REPLACE  ? "replace"
                  : a->opt.mode == PGFEED_MODE_UPSERT ? "upsert"
                                                      : "append";
    return CLI_RUN;
}

/* The command line: one import, or with --manifest the defaults of its imports. */
static int finish_args(struct cli_args *a, int argc, char **argv)
{
    resolve_progress(a);
    if (a->manifest == NULL && (a->max_jobs || a->fail_fast)) {
        usage(a, "%s applies to --manifest only", a->max_jobs ? "--max-jobs" : "--fail-fast");
        return CLI_EXIT_USAGE;
    }
    if (a->manifest == NULL)
        return finish_import(a, argc, argv);
    if (optind < argc) {
        usage(a, "a source cannot be given with --manifest: \"%s\"", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    return CLI_RUN;
}

/* PGFEED_PROGRESS: --progress's default (a container image sets it; --progress wins). */
static int progress_from_env(struct cli_args *a)
{
    const char *v = getenv("PGFEED_PROGRESS");
    if (v == NULL || *v == '\0')
        return 0;
    for (const struct word *w = progress_modes; w->word; w++)
        if (strcmp(v, w->word) == 0) {
            a->cli.progress = w->value;
            return 0;
        }
    cli_usage_error("invalid value \"%s\" for PGFEED_PROGRESS: use auto, auto-json, bar, json "
                    "or none",
                    v);
    return -1;
}

/* getopt_long over argv into *a; in_manifest: refuse the whole run's options. */
static int parse_options(struct cli_args *a, int argc, char **argv, int in_manifest)
{
    char shorts[2 + 2 * N_OPTIONS];
    struct option longs[2 * N_OPTIONS + 1];
    getopt_tables(shorts, longs);
    int c;
    opterr = 0; /* we print getopt's complaints ourselves, in our own format */
    optind = 0; /* glibc: start again (a manifest parses many argument lists) */
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const struct cli_option *o = option_by_val(c);
        if (o == NULL)
            return getopt_error(a, c, argv);
        if (in_manifest && o->global) {
            usage(a, "--%s applies to the whole run: give it on the command line", o->name);
            return CLI_EXIT_USAGE;
        }
        switch (o->parse(o, optarg, a)) {
        case OPT_STORED:
            break;
        case OPT_EXIT_OK:
            return 0;
        case OPT_FAILED:
            return CLI_EXIT_USAGE;
        default:
            usage(a, "invalid value \"%s\" for --%s: %s", optarg, o->name, o->want);
            return CLI_EXIT_USAGE;
        }
    }
    return CLI_RUN;
}

int cli_parse_args(struct cli_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    pgfeed_options_init(&a->opt);
    a->opt.conninfo = getenv("DATABASE_URL");
    if (progress_from_env(a) != 0)
        return CLI_EXIT_USAGE;
    int rc = parse_options(a, argc, argv, 0);
    return rc != CLI_RUN ? rc : finish_args(a, argc, argv);
}

int cli_parse_import(struct cli_args *a, const struct cli_args *defaults, int argc, char **argv,
                     const char *where, const char *base_dir)
{
    *a = *defaults;
    a->conninfo_copy = a->source_copy = NULL; /* the defaults' own */
    a->sql_copies = NULL;
    a->nsql = 0;
    a->manifest = NULL;
    a->where = where;
    a->base_dir = base_dir;
    int rc = parse_options(a, argc, argv, 1);
    if (rc == CLI_RUN)
        rc = finish_import(a, argc, argv);
    a->where = NULL;
    return rc;
}

static int keep_sql(struct cli_args *a, char *text)
{
    char **more = realloc(a->sql_copies, (a->nsql + 1) * sizeof *more);
    if (more == NULL)
        return -1;
    a->sql_copies = more;
    a->sql_copies[a->nsql++] = text;
    return 0;
}

char *cli_read_sql_file(struct cli_args *a, const char *path, const char *option)
{
    char full[4096];
    if (a->base_dir && path[0] != '/')
        snprintf(full, sizeof full, "%s/%s", a->base_dir, path);
    else
        snprintf(full, sizeof full, "%s", path);
    size_t len = 0;
    char *text = NULL;
    FILE *f = fopen(full, "rb");
    int err = errno;
    if (f != NULL) {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            char *more = realloc(text, len + n + 1);
            if (more == NULL)
                break;
            text = more;
            memcpy(text + len, buf, n);
            len += n;
        }
        err = ferror(f) ? EIO : 0;
        fclose(f);
    }
    if (f == NULL || err != 0) {
        free(text);
        usage(a, "could not read file \"%s\" for --%s: %s", full, option, strerror(err));
        return NULL;
    }
    if (text == NULL)
        text = calloc(1, 1);
    else
        text[len] = '\0';
    if (text == NULL || keep_sql(a, text) != 0) {
        free(text);
        usage(a, "out of memory");
        return NULL;
    }
    return text;
}

void cli_args_free(struct cli_args *a)
{
    free(a->conninfo_copy);
    free(a->source_copy);
    a->conninfo_copy = a->source_copy = NULL;
    for (size_t i = 0; i < a->nsql; i++)
        free(a->sql_copies[i]);
    free(a->sql_copies);
    a->sql_copies = NULL;
    a->nsql = 0;
}
