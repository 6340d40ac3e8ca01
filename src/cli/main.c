/*
 * main.c -- the pgfeed command: options, signals, exit status.
 *
 * Turns the command line into struct pgfeed_options, runs one job on the
 * default loop, and maps its outcome to the contract's exit statuses
 * (0 imported, 1 failed, 2 usage, 130 SIGINT, 143 SIGTERM). SIGINT and
 * SIGTERM cancel the job through uv_signal; a second SIGINT exits at once.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define EXIT_IMPORT_FAILED 1
#define EXIT_USAGE         2

static const char usage_text[] =
    "pgfeed streams a (gzipped) TSV or text file into a PostgreSQL table with COPY.\n"
    "\n"
    "Usage:\n"
    "  pgfeed [OPTIONS] SOURCE\n"
    "\n"
    "SOURCE is a path, a file://, http:// or https:// URL, or - for standard input.\n"
    "Compression (gzip, zlib or none) is detected from the first bytes.\n"
    "\n"
    "Options:\n"
    "  -d, --db CONNINFO       libpq conninfo string or postgres:// URI\n"
    "                          (default: $DATABASE_URL, else libpq's PG* environment)\n"
    "  -t, --table NAME        target table, optionally schema-qualified (required)\n"
    "  -c, --columns A,B,...   target columns, in the order of the input fields\n"
    "  -f, --format FMT        tsv | csv | text (default: csv if the source's path ends in\n"
    "                          .csv or .csv.gz, else tsv)\n"
    "      --header MODE       auto | match | skip | none (default auto)\n"
    "      --null STR          null marker (default \\N; csv: an unquoted empty field)\n"
    "      --delimiter C       field delimiter (default tab; csv: comma)\n"
    "      --quote C           csv quote character (default \")\n"
    "  -b, --batch-rows N      rows per transaction (default 100000; 0 = one transaction)\n"
    "  -j, --connections N     parallel COPY connections, 1 to 16 (default 1)\n"
    "      --copy-format F     auto | binary | text: how rows travel to the server (default\n"
    "                          auto: binary where the columns' types allow, else text)\n"
    "      --truncate          empty the table in the first batch's transaction\n"
    "      --max-rejects N     rows that may be rejected before the import fails (default 0)\n"
    "      --rejects FILE      where rejected rows go (default TABLE.rejects.tsv, made only if needed;\n"
    "                          a new file unless --resume)\n"
    "      --batch-bytes N     also end a batch at N bytes of COPY data (default 16777216)\n"
    "      --resume            continue an interrupted import of the same source into the same table\n"
    "      --restart           forget an interrupted import's checkpoint and start over\n"
    "      --state-table NAME  where checkpoints are kept (default pgfeed_checkpoints)\n"
    "      --timeout SECONDS   give up after this long (default: no limit)\n"
    "      --retries N         retries for transient network failures (default 5)\n"
    "      --cacert FILE       CA bundle for https (default: the system's); also --ca-file\n"
    "      --capath DIR        CA directory for https; also --ca-path\n"
    "      --connect-timeout SECONDS  give up connecting after this long (default 30)\n"
    "      --low-speed-time SECONDS   retry a download stalled this long (default 60)\n"
    "  -k, --insecure          do not verify the server's TLS certificate\n"
    "      --progress MODE     auto | bar | json | none (default auto: bar when stderr is a\n"
    "                          terminal); json: one object per line on stderr\n"
    "      --progress-interval SECONDS  how often progress is shown (default 0.25 bar, 1 json)\n"
    "  -q, --quiet             print errors only\n"
    "  -v, --verbose           print progress details\n"
    "      --version           print the version and exit\n"
    "  -h, --help              print this help and exit\n"
    "\n"
    "Exit status: 0 imported, 1 import failed, 2 usage error, 130 SIGINT, 143 SIGTERM.\n";

enum {
    OPT_HEADER = 256,
    OPT_NULL,
    OPT_DELIMITER,
    OPT_QUOTE,
    OPT_TRUNCATE,
    OPT_RESUME,
    OPT_MAX_REJECTS,
    OPT_REJECTS,
    OPT_BATCH_BYTES,
    OPT_RESTART,
    OPT_STATE_TABLE,
    OPT_TIMEOUT,
    OPT_RETRIES,
    OPT_CACERT,
    OPT_CAPATH,
    OPT_CONNECT_TIMEOUT,
    OPT_LOW_SPEED_TIME,
    OPT_PROGRESS,
    OPT_PROGRESS_INTERVAL,
    OPT_COPY_FORMAT,
    OPT_VERSION
};

static const struct option long_options[] = {
    {"db", required_argument, NULL, 'd'},
    {"table", required_argument, NULL, 't'},
    {"columns", required_argument, NULL, 'c'},
    {"format", required_argument, NULL, 'f'},
    {"header", required_argument, NULL, OPT_HEADER},
    {"null", required_argument, NULL, OPT_NULL},
    {"delimiter", required_argument, NULL, OPT_DELIMITER},
    {"quote", required_argument, NULL, OPT_QUOTE},
    {"batch-rows", required_argument, NULL, 'b'},
    {"connections", required_argument, NULL, 'j'},
    {"truncate", no_argument, NULL, OPT_TRUNCATE},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"max-rejects", required_argument, NULL, OPT_MAX_REJECTS},
    {"rejects", required_argument, NULL, OPT_REJECTS},
    {"batch-bytes", required_argument, NULL, OPT_BATCH_BYTES},
    {"restart", no_argument, NULL, OPT_RESTART},
    {"state-table", required_argument, NULL, OPT_STATE_TABLE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"capath", required_argument, NULL, OPT_CAPATH},
    {"ca-file", required_argument, NULL, OPT_CACERT},
    {"ca-path", required_argument, NULL, OPT_CAPATH},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"low-speed-time", required_argument, NULL, OPT_LOW_SPEED_TIME},
    {"insecure", no_argument, NULL, 'k'},
    {"progress", required_argument, NULL, OPT_PROGRESS},
    {"progress-interval", required_argument, NULL, OPT_PROGRESS_INTERVAL},
    {"copy-format", required_argument, NULL, OPT_COPY_FORMAT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct run {
    struct cli cli;
    pgfeed_job_t *job;
    uv_signal_t sigint, sigterm, sigusr1;
    int status;
    int finished;
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] == '-' || s[0] == '\0')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v > 0) || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

/* "\t", "tab", "\\t" or one character. */
static int parse_delimiter(const char *s, char *out)
{
    if (strcmp(s, "\\t") == 0 || strcmp(s, "tab") == 0 || strcmp(s, "\t") == 0) {
        *out = '\t';
        return 0;
    }
    if (strlen(s) != 1)
        return -1;
    *out = s[0];
    return 0;
}

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

/* A copy of an argument for the import, the argument itself with its password blanked. */
static const char *take_secret_arg(char *arg, void (*hide)(char *), char **copy)
{
    free(*copy);
    *copy = strdup(arg);
    if (*copy == NULL) {
        fprintf(stderr, "pgfeed: error: out of memory\n");
        exit(EXIT_IMPORT_FAILED);
    }
    hide(arg);
    return *copy;
}

static void hide_url_password(char *s)
{
    if (has_prefix(s, "http://") || has_prefix(s, "https://"))
        hide_userinfo_password(s, "/?#");
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    if (r->cli.signal_received) {
        /* Second signal: the user means it. The server rolls back the open transaction. */
        if (signum == SIGINT || r->cli.signal_received == SIGINT) {
            fprintf(stderr, "pgfeed: interrupted again; exiting at once\n");
            _exit(130);
        }
        return;
    }
    r->cli.signal_received = signum;
    if (!r->cli.quiet)
        fprintf(stderr, "pgfeed: %s received; rolling back the batch in flight\n",
                signum == SIGINT ? "SIGINT" : "SIGTERM");
    pgfeed_job_cancel(r->job);
}

static void progress_cb(void *arg, const struct pgfeed_stats *st)
{
    struct run *r = arg;
    if (st->done)
        return; /* main prints the last line, with the outcome */
    if (r->cli.progress == PROGRESS_BAR) {
        cli_progress_bar(st);
        r->cli.bar_drawn = 1;
    } else if (r->cli.progress == PROGRESS_JSON) {
        cli_progress_json(st, NULL, 0);
    }
}

/* SIGUSR1 (and SIGINFO where it exists): one status line, the import goes on. */
static void status_cb(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    struct pgfeed_stats st;
    pgfeed_job_stats(r->job, &st);
    if (r->cli.bar_drawn) {
        cli_progress_clear();
        r->cli.bar_drawn = 0;
    }
    cli_progress_status(&st);
}

static void done_cb(pgfeed_job_t *job, int status)
{
    struct run *r = pgfeed_job_get_data(job);
    r->status = status;
    r->finished = 1;
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_signal_stop(&r->sigusr1);
}

/* Everything but freeing the copies of secret arguments, which main does on every path. */
static int run_cli(int argc, char **argv, char **conninfo_copy, char **source_copy)
{
    struct pgfeed_options opt;
    struct run r;
    memset(&r, 0, sizeof r);
    pgfeed_options_init(&opt);
    opt.conninfo = getenv("DATABASE_URL");
    opt.log_cb = cli_log_cb;
    opt.log_arg = &r.cli;
    opt.log_level = PGFEED_LOG_DEBUG;

    double progress_interval = 0;
    int c;
    opterr = 0; /* we print getopt's complaints ourselves, in our own format */
    while ((c = getopt_long(argc, argv, ":d:t:c:f:b:j:kqvh", long_options, NULL)) != -1) {
        switch (c) {
        case 'd':
            opt.conninfo = take_secret_arg(optarg, hide_conninfo_password, conninfo_copy);
            break;
        case 't':
            opt.table = optarg;
            break;
        case 'c':
            opt.columns = optarg;
            break;
        case OPT_COPY_FORMAT:
            if (strcmp(optarg, "text") == 0)
                opt.copy_format = PGFEED_COPY_TEXT;
            else if (strcmp(optarg, "binary") == 0)
                opt.copy_format = PGFEED_COPY_BINARY;
            else if (strcmp(optarg, "auto") == 0)
                opt.copy_format = PGFEED_COPY_AUTO;
            else {
                cli_usage_error("invalid value \"%s\" for --copy-format: use auto, text or binary",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case 'f':
            if (strcmp(optarg, "tsv") == 0)
                opt.format = PGFEED_FORMAT_TSV;
            else if (strcmp(optarg, "text") == 0)
                opt.format = PGFEED_FORMAT_TEXT;
            else if (strcmp(optarg, "csv") == 0)
                opt.format = PGFEED_FORMAT_CSV;
            else {
                cli_usage_error("invalid value \"%s\" for --format: use tsv, csv or text", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_HEADER:
            if (strcmp(optarg, "auto") == 0)
                opt.header = PGFEED_HEADER_AUTO;
            else if (strcmp(optarg, "match") == 0)
                opt.header = PGFEED_HEADER_MATCH;
            else if (strcmp(optarg, "skip") == 0)
                opt.header = PGFEED_HEADER_SKIP;
            else if (strcmp(optarg, "none") == 0)
                opt.header = PGFEED_HEADER_NONE;
            else {
                cli_usage_error("invalid value \"%s\" for --header: use auto, match, skip or none",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_NULL:
            opt.null_marker = optarg;
            break;
        case OPT_QUOTE:
            if (strlen(optarg) != 1) {
                cli_usage_error("invalid value \"%s\" for --quote: give one character", optarg);
                return EXIT_USAGE;
            }
            opt.quote = optarg[0];
            break;
        case OPT_DELIMITER:
            if (parse_delimiter(optarg, &opt.delimiter) != 0) {
                cli_usage_error("invalid value \"%s\" for --delimiter: give one character", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'j': {
            uint64_t n;
            if (parse_u64(optarg, &n) != 0 || n < 1 || n > 16) {
                cli_usage_error(
                    "invalid value \"%s\" for --connections: give a number from 1 to 16", optarg);
                return EXIT_USAGE;
            }
            opt.connections = (int)n;
            break;
        }
        case 'b':
            if (parse_u64(optarg, &opt.batch_rows) != 0) {
                cli_usage_error("invalid value \"%s\" for --batch-rows: give a whole number",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_TRUNCATE:
            opt.truncate = 1;
            break;
        case OPT_RESUME:
            opt.resume = 1;
            break;
        case OPT_MAX_REJECTS:
            if (parse_u64(optarg, &opt.max_rejects) != 0) {
                cli_usage_error("invalid value \"%s\" for --max-rejects: give a whole number",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_REJECTS:
            opt.rejects_path = optarg;
            break;
        case OPT_BATCH_BYTES: {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v < 4096 || v > ((uint64_t)1 << 40)) {
                cli_usage_error(
                    "invalid value \"%s\" for --batch-bytes: give a number of bytes from 4096 up",
                    optarg);
                return EXIT_USAGE;
            }
            opt.batch_bytes = (size_t)v;
            break;
        }
        case OPT_RESTART:
            opt.restart = 1;
            break;
        case OPT_STATE_TABLE:
            opt.state_table = optarg;
            break;
        case OPT_TIMEOUT:
            if (parse_seconds(optarg, &opt.timeout_s) != 0) {
                cli_usage_error(
                    "invalid value \"%s\" for --timeout: give a positive number of seconds",
                    optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_RETRIES: {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v > 100) {
                cli_usage_error("invalid value \"%s\" for --retries: give a number from 0 to 100",
                                optarg);
                return EXIT_USAGE;
            }
            opt.retries = (int)v;
            break;
        }
        case OPT_CACERT:
            opt.ca_file = optarg;
            break;
        case OPT_CAPATH:
            opt.ca_path = optarg;
            break;
        case 'k':
            opt.insecure = 1;
            break;
        case OPT_CONNECT_TIMEOUT:
        case OPT_LOW_SPEED_TIME: {
            double v;
            if (parse_seconds(optarg, &v) != 0) {
                cli_usage_error("invalid value \"%s\" for --%s: give a positive number of seconds",
                                optarg,
                                c == OPT_CONNECT_TIMEOUT ? "connect-timeout" : "low-speed-time");
                return EXIT_USAGE;
            }
            if (c == OPT_CONNECT_TIMEOUT)
                opt.connect_timeout_s = v;
            else
                opt.low_speed_time_s = v;
            break;
        }
        case OPT_PROGRESS:
            if (strcmp(optarg, "auto") == 0)
                r.cli.progress = PROGRESS_AUTO;
            else if (strcmp(optarg, "bar") == 0)
                r.cli.progress = PROGRESS_BAR;
            else if (strcmp(optarg, "json") == 0)
                r.cli.progress = PROGRESS_JSON;
            else if (strcmp(optarg, "none") == 0)
                r.cli.progress = PROGRESS_NONE;
            else {
                cli_usage_error("invalid value \"%s\" for --progress: use auto, bar, json or none",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_PROGRESS_INTERVAL:
            if (parse_seconds(optarg, &progress_interval) != 0) {
                cli_usage_error(
                    "invalid value \"%s\" for --progress-interval: give a positive number of seconds",
                    optarg);
                return EXIT_USAGE;
            }
            break;
        case 'q':
            r.cli.quiet = 1;
            break;
        case 'v':
            r.cli.verbose = 1;
            break;
        case OPT_VERSION:
            printf("pgfeed %s (%s)\n", pgfeed_version(), pgfeed_build_info());
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            if (optopt)
                cli_usage_error("option -%c needs an argument", optopt);
            else
                cli_usage_error("option \"%s\" needs an argument", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (optopt)
                cli_usage_error("unknown option -%c", optopt);
            else
                cli_usage_error("unknown option \"%s\"", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_usage_error("no source given");
        return EXIT_USAGE;
    }
    if (argc - optind > 1) {
        cli_usage_error("too many arguments: \"%s\" after the source", argv[optind + 1]);
        return EXIT_USAGE;
    }
    opt.source = take_secret_arg(argv[optind], hide_url_password, source_copy);
    if (opt.table == NULL) {
        cli_usage_error("no target table given: use --table");
        return EXIT_USAGE;
    }
    r.cli.table = opt.table;
    if (r.cli.progress == PROGRESS_AUTO)
        r.cli.progress = isatty(STDERR_FILENO) && !r.cli.quiet ? PROGRESS_BAR : PROGRESS_NONE;
    if (r.cli.progress != PROGRESS_NONE) {
        opt.progress_cb = progress_cb;
        opt.progress_arg = &r;
        if (progress_interval <= 0)
            progress_interval = r.cli.progress == PROGRESS_BAR ? 0.25 : 1.0;
        opt.progress_interval_ms = (uint64_t)(progress_interval * 1000.0);
        if (opt.progress_interval_ms == 0)
            opt.progress_interval_ms = 1;
    }

    signal(SIGPIPE, SIG_IGN);
    if (pgfeed_library_init() != 0) {
        fprintf(stderr, "pgfeed: error: could not initialise libcurl\n");
        return EXIT_IMPORT_FAILED;
    }
    uv_loop_t *loop = uv_default_loop();
    int rc = pgfeed_job_new(loop, &opt, &r.job);
    if (rc != 0) {
        if (r.job) {
            cli_print_error(pgfeed_job_error(r.job));
            pgfeed_job_close(r.job, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
        } else {
            fprintf(stderr, "pgfeed: error: %s\n", pgfeed_strerror(rc));
        }
        pgfeed_library_cleanup();
        return rc == PGFEED_EUSAGE ? EXIT_USAGE : EXIT_IMPORT_FAILED;
    }
    pgfeed_job_set_data(r.job, &r);
    uv_signal_init(loop, &r.sigint);
    uv_signal_init(loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, signal_cb, SIGINT);
    uv_signal_start(&r.sigterm, signal_cb, SIGTERM);
    uv_signal_init(loop, &r.sigusr1);
    r.sigusr1.data = &r;
#ifdef SIGINFO
    uv_signal_start(&r.sigusr1, status_cb, SIGINFO);
#else
    uv_signal_start(&r.sigusr1, status_cb, SIGUSR1);
#endif

    rc = pgfeed_job_start(r.job, done_cb);
    if (rc != 0) {
        fprintf(stderr, "pgfeed: error: could not start: %s\n", pgfeed_strerror(rc));
        r.status = rc;
        uv_signal_stop(&r.sigint);
        uv_signal_stop(&r.sigterm);
        uv_signal_stop(&r.sigusr1);
    } else {
        uv_run(loop, UV_RUN_DEFAULT);
    }

    struct pgfeed_stats st;
    pgfeed_job_stats(r.job, &st);
    const struct pgfeed_error *e = pgfeed_job_error(r.job);
    int exit_code = 0;
    if (r.cli.signal_received && r.status == PGFEED_ECANCELED) {
        exit_code = 128 + r.cli.signal_received;
        if (!r.cli.quiet)
            fprintf(stderr, "pgfeed: interrupted: %llu rows in %llu batches are committed\n",
                    (unsigned long long)st.rows_committed,
                    (unsigned long long)st.batches_committed);
    } else if (r.status != 0) {
        exit_code = r.status == PGFEED_EUSAGE ? EXIT_USAGE : EXIT_IMPORT_FAILED;
    }
    if (r.cli.bar_drawn)
        cli_progress_clear();
    if (r.status != 0 && exit_code < 128)
        cli_print_error(e);
    if (r.cli.progress == PROGRESS_JSON)
        cli_progress_json(&st,
                          exit_code == 0     ? "imported"
                          : exit_code >= 128 ? "interrupted"
                                             : "failed",
                          exit_code);
    cli_print_summary(&r.cli, &st, r.status);
    if (!r.cli.quiet && pgfeed_job_rejects_path(r.job))
        cli_put("pgfeed: rejects file:      ", pgfeed_job_rejects_path(r.job), "\n");

    uv_close((uv_handle_t *)&r.sigint, NULL);
    uv_close((uv_handle_t *)&r.sigterm, NULL);
    uv_close((uv_handle_t *)&r.sigusr1, NULL);
    pgfeed_job_close(r.job, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0 && r.cli.verbose)
        fprintf(stderr, "pgfeed: debug: the loop still had open handles at exit\n");
    pgfeed_library_cleanup();
    return exit_code;
}

int main(int argc, char **argv)
{
    char *conninfo_copy = NULL, *source_copy = NULL;
    int rc = run_cli(argc, argv, &conninfo_copy, &source_copy);
    free(conninfo_copy);
    free(source_copy);
    return rc;
}
