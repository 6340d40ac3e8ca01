/*
 * cli.h -- what the pgfeed command's two files share. The CLI is the only
 * code in pgfeed that prints.
 */
#ifndef PGFEED_CLI_H
#define PGFEED_CLI_H

#include <stdio.h>

#include "pgfeed.h"

enum { PROGRESS_AUTO, PROGRESS_NONE, PROGRESS_BAR, PROGRESS_JSON };

struct cli {
    const char *table;
    int quiet;
    int verbose;
    int signal_received; /* SIGINT or SIGTERM that canceled the job, else 0 */
    int progress;        /* PROGRESS_NONE, _BAR, _JSON */
    int bar_drawn;       /* a bar line is on the screen */
};

/* On stderr: prefix, s with control characters escaped (as \xNN), suffix. */
void cli_put(const char *prefix, const char *s, const char *suffix);
void cli_print_error(const struct pgfeed_error *e);
void cli_print_summary(const struct cli *c, const struct pgfeed_stats *st, int status);
void cli_log_cb(void *arg, int level, const char *msg);
/* progress.c */
void cli_bar_text(const struct pgfeed_stats *st, int width, char *line, size_t cap);
void cli_progress_bar(const struct pgfeed_stats *st);
void cli_progress_clear(void);
void cli_progress_status(const struct pgfeed_stats *st);
/* status NULL: an interim line; else the last line, with "done": true. */
void cli_progress_json(const struct pgfeed_stats *st, const char *status, int exit_code);

void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
