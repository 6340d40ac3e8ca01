/*
 * cli.h -- what the pgfeed command's two files share. The CLI is the only
 * code in pgfeed that prints.
 */
#ifndef PGFEED_CLI_H
#define PGFEED_CLI_H

#include <stdio.h>

#include "pgfeed.h"

struct cli {
    const char *table;
    int quiet;
    int verbose;
    int signal_received; /* SIGINT or SIGTERM that canceled the job, else 0 */
};

void cli_print_error(const struct pgfeed_error *e);
void cli_print_summary(const struct cli *c, const struct pgfeed_stats *st, int status);
void cli_log_cb(void *arg, int level, const char *msg);
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
