/*
 * cli.h -- what the pgfeed command's files share. The CLI is the only
 * code in pgfeed that prints.
 */
#ifndef PGFEED_CLI_H
#define PGFEED_CLI_H

#include <stdio.h>

#include "pgfeed.h"

enum { PROGRESS_AUTO, PROGRESS_NONE, PROGRESS_BAR, PROGRESS_JSON, PROGRESS_AUTO_JSON };

struct cli {
    const char *table;
    const char *mode; /* --mode as a word: "append", "replace", "upsert" */
    int quiet;
    int verbose;
    int signal_received;     /* SIGINT or SIGTERM that canceled the job, else 0 */
    int progress;            /* PROGRESS_NONE, _BAR, _JSON */
    int bar_drawn;           /* a bar line is on the screen */
    int no_checkpoint;       /* --no-checkpoint: nothing to --resume after a failure */
    const char *import_name; /* a manifest's import: its name (its table), else NULL */
};

/* Exit statuses besides 0 and 128 + signal; CLI_RUN: the command line asks for an import. */
#define CLI_RUN         (-1)
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE  2

/* What the command line says (options.c). */
struct cli_args {
    struct pgfeed_options opt; /* conninfo from $DATABASE_URL unless --db; no callbacks set */
    struct cli cli;            /* table, quiet, verbose, progress (never PROGRESS_AUTO*) */
    double progress_interval;  /* --progress-interval seconds; 0: not given */
    char *conninfo_copy;       /* the copies of arguments blanked in argv, which opt points to */
    char *source_copy;
    char **sql_copies; /* the hooks' SQL read from @FILE values, which opt points to */
    size_t nsql;
    const char *base_dir; /* where a relative @FILE is read from; NULL: the working directory */
    const char *where;    /* "FILE:LINE: " before usage errors while a manifest line is read */
    const char *manifest; /* --manifest FILE, or NULL */
    unsigned max_jobs;    /* --max-jobs; 0: all at once */
    int fail_fast;        /* --fail-fast */
};

/*
 * One import of a manifest: *a = *defaults (the command line's, from cli_parse_args) with
 * argv's options over them; argv[optind..] is the SOURCE. where: "FILE:LINE: " for usage
 * errors; base_dir: where a relative @FILE is read from. Returns CLI_RUN or CLI_EXIT_USAGE
 * (said). a points into argv and defaults: keep them; cli_args_free(a) in every case.
 */
int cli_parse_import(struct cli_args *a, const struct cli_args *defaults, int argc, char **argv,
                     const char *where, const char *base_dir);

/* The text of a --before/--after @FILE (kept in a->sql_copies), or NULL after a usage error
 * naming the file (option: the option's name, for the message). */
char *cli_read_sql_file(struct cli_args *a, const char *path, const char *option);

/*
 * Fills *a from argv, blanking passwords in argv. Returns CLI_RUN, or the exit status when
 * the command ends here: 0 after --help or --version, CLI_EXIT_USAGE after printing a usage
 * error. Call cli_args_free(a) in every case.
 */
int cli_parse_args(struct cli_args *a, int argc, char **argv);
void cli_args_free(struct cli_args *a);

/* ---- manifests (manifest.c) and running their imports (imports.c, imports_show.c) */

/* One import of a manifest. */
struct cli_import {
    struct cli_args a;      /* its options: the command line's, its line's over them */
    const char *name;       /* its name in progress and the summary: its --table */
    unsigned line;          /* in the manifest */
    char where[300];        /* "FILE:LINE: " */
    char *text;             /* the line, split in place into argv's words */
    char *argv[256 + 2];    /* "pgfeed", the words, NULL */
    pgfeed_job_t *job;      /* while it runs (imports.c) */
    struct pgfeed_stats st; /* its last progress, or its end */
    int state;              /* IMPORT_WAITING, _RUNNING, _DONE, _NOT_STARTED */
    int status;             /* done: the job's status */
    int exit_code;          /* done: what the command would have exited with */
    char *rejects;          /* done: its rejects file, or NULL */
    int closing;            /* its job's close was asked for */
    void *owner;            /* imports.c's run */
};
enum { IMPORT_WAITING, IMPORT_RUNNING, IMPORT_DONE, IMPORT_NOT_STARTED };

struct cli_manifest {
    const char *path; /* as given */
    char *dir;        /* its directory: relative @FILE values are read from there */
    struct cli_import *imports;
    size_t n, cap;
};

/* Reads defaults->manifest into *m (every import's options checked). Returns CLI_RUN, or
 * CLI_EXIT_USAGE after a usage error naming FILE:LINE. cli_manifest_free(m) in every case. */
int cli_manifest_read(struct cli_manifest *m, const struct cli_args *defaults);
void cli_manifest_free(struct cli_manifest *m);
/* Runs a manifest's imports (imports.c); returns the exit status. */
int cli_run_manifest(struct cli_args *defaults);

/* imports_show.c: several imports on the screen. */
/* Redraws one line per running import plus a total line in place (bar mode); lines: how
 * many lines the last draw left (0 at first), updated. */
void cli_imports_draw(const struct cli_manifest *m, int *lines);
void cli_imports_clear(int *lines);
/* SIGUSR1: one status line per import and the total. */
void cli_imports_status(const struct cli_manifest *m);
/* The summary: a row per import and a total over wall_s seconds (unless quiet). */
void cli_imports_summary(const struct cli *c, const struct cli_manifest *m, double wall_s);
/* The counters of all imports added up (rates and ETA too; elapsed: the longest). */
void cli_imports_total(const struct cli_manifest *m, struct pgfeed_stats *t);

/* On stderr: prefix, s with control characters escaped (as \xNN), suffix. */
void cli_put(const char *prefix, const char *s, const char *suffix);
void cli_print_error(const struct pgfeed_error *e);
/* After an import: rows, batches, bytes, time, rates, waits, retries, the mode. */
void cli_print_summary(const struct cli *c, const struct pgfeed_stats *st);
/* After a failure (before its error) or an interruption: what is committed, how to go on. */
void cli_print_unfinished(const struct cli *c, const struct pgfeed_stats *st, int interrupted);
void cli_log_cb(void *arg, int level, const char *msg);
/* progress.c */
void cli_bar_text(const struct pgfeed_stats *st, int width, char *line, size_t cap);
void cli_progress_bar(const struct pgfeed_stats *st);
void cli_progress_clear(void);
void cli_progress_status(const struct pgfeed_stats *st);
/* status NULL: an interim line; else the last line, with "done": true. */
void cli_progress_json(const struct cli *c, const struct pgfeed_stats *st, const char *status,
                       int exit_code);

void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
