/*
 * print.c -- how the pgfeed command talks: errors in PostgreSQL's client
 * style (pgfeed: error: / detail: / hint:), log lines, and the summary.
 *
 * Every text that can hold something from outside (input, the server, the
 * command line) is printed through cli_put(), which escapes control characters
 * with the library's own escaping (the CLI links libpgfeed statically). The
 * library escapes what it stores the same way, and escaping twice changes
 * nothing, so nothing is escaped twice.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "internal.h" /* pgfeed__escape_text */

void cli_put(const char *prefix, const char *s, const char *suffix)
{
    char *safe = pgfeed__escape_text(s);
    fprintf(stderr, "%s%s%s", prefix, safe ? safe : "(out of memory)", suffix);
    free(safe);
}

void cli_usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);
    cli_put("pgfeed: error: ", msg, "\n");
    fprintf(stderr, "pgfeed: hint: Try \"pgfeed --help\" for more information.\n");
}

void cli_print_error(const struct pgfeed_error *e)
{
    cli_put("pgfeed: error: ", e->message ? e->message : pgfeed_strerror(e->code), "\n");
    if (e->detail)
        cli_put("pgfeed: detail: ", e->detail, "\n");
    if (e->line > 0 || e->decoded_offset > 0 || e->raw_offset > 0) {
        fprintf(stderr, "pgfeed: context: ");
        const char *sep = "";
        if (e->line > 0) {
            fprintf(stderr, "input line %llu", (unsigned long long)e->line);
            sep = ", ";
        }
        if (e->column_name) {
            fprintf(stderr, "%scolumn \"", sep);
            cli_put("", e->column_name, "\"");
        } else if (e->column > 0)
            fprintf(stderr, "%sfield %d", sep, e->column);
        if (e->column_name || e->column > 0)
            sep = ", ";
        if (e->decoded_offset > 0) {
            fprintf(stderr, "%sbyte %llu of the decompressed input", sep,
                    (unsigned long long)e->decoded_offset);
            sep = ", ";
        }
        if (e->raw_offset > 0)
            fprintf(stderr, "%sbyte %llu of the source", sep, (unsigned long long)e->raw_offset);
        fprintf(stderr, "\n");
    }
    if (e->hint)
        cli_put("pgfeed: hint: ", e->hint, "\n");
    if (e->sqlstate)
        cli_put("pgfeed: sqlstate: ", e->sqlstate, "\n");
}

void cli_log_cb(void *arg, int level, const char *msg)
{
    struct cli *c = arg;
    static const char *const names[] = {"error", "warning", "notice", "info", "debug"};
    if (c->quiet && level > PGFEED_LOG_WARNING)
        return;
    if (!c->verbose && level > PGFEED_LOG_NOTICE)
        return;
    if (c->bar_drawn) {
        cli_progress_clear();
        c->bar_drawn = 0;
    }
    fprintf(stderr, "pgfeed: %s: ", names[level < 0 ? 0 : level > 4 ? 4 : level]);
    cli_put("", msg, "\n");
}

static void human_bytes(char *out, size_t cap, double b)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000.0 && u < 4) {
        b /= 1000.0;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* The mode line: upsert's counts so far, replace's outcome (what_replace). */
static void print_mode(const struct cli *c, const struct pgfeed_stats *st, const char *what_replace)
{
    if (c->mode && strcmp(c->mode, "upsert") == 0)
        fprintf(stderr,
                "pgfeed: mode:              upsert (%llu inserted, %llu updated, %llu unchanged, "
                "%llu deleted)\n",
                (unsigned long long)st->rows_inserted, (unsigned long long)st->rows_updated,
                (unsigned long long)st->rows_unchanged, (unsigned long long)st->rows_deleted);
    else if (c->mode && strcmp(c->mode, "append") != 0)
        cli_put("pgfeed: mode:              ", c->mode, what_replace);
}

void cli_print_summary(const struct cli *c, const struct pgfeed_stats *st)
{
    if (c->quiet)
        return;
    char rd[32], inf[32];
    human_bytes(rd, sizeof rd, (double)st->bytes_read);
    human_bytes(inf, sizeof inf, (double)st->bytes_inflated);
    double t = st->elapsed_s > 0 ? st->elapsed_s : 1e-9;
    fprintf(stderr, "pgfeed: rows imported:     %llu into \"",
            (unsigned long long)st->rows_committed);
    cli_put("", c->table, "\"\n");
    fprintf(stderr, "pgfeed: rows rejected:     %llu\n", (unsigned long long)st->rows_rejected);
    fprintf(stderr, "pgfeed: batches committed: %llu\n", (unsigned long long)st->batches_committed);
    fprintf(stderr, "pgfeed: bytes read:        %llu (%s)\n", (unsigned long long)st->bytes_read,
            rd);
    fprintf(stderr, "pgfeed: bytes inflated:    %llu (%s)\n",
            (unsigned long long)st->bytes_inflated, inf);
    fprintf(stderr, "pgfeed: elapsed:           %.2f s\n", st->elapsed_s);
    fprintf(stderr, "pgfeed: rate:              %.0f rows/s, %.1f MB/s\n",
            (double)st->rows_committed / t, (double)st->bytes_inflated / t / 1e6);
    fprintf(stderr, "pgfeed: waited on:         server %.2f s, input %.2f s\n", st->wait_server_s,
            st->wait_source_s);
    if (st->retries)
        fprintf(stderr, "pgfeed: retries:           %llu\n", (unsigned long long)st->retries);
    print_mode(c, st, " (the new table is in place)\n");
}

/*
 * Nothing committed: one line, so that the error after it stands out. Batches committed:
 * how many rows are safely in, the batch rolled back, and how to continue.
 */
void cli_print_unfinished(const struct cli *c, const struct pgfeed_stats *st, int interrupted)
{
    if (c->quiet)
        return;
    unsigned long long rows = st->rows_committed, batches = st->batches_committed;
    if (interrupted) {
        fprintf(stderr, "pgfeed: interrupted: %llu rows in %llu batches are committed\n", rows,
                batches);
    } else {
        fprintf(stderr, "pgfeed: rows imported:     %llu into \"", rows);
        cli_put("", c->table, "\"");
        if (batches)
            fprintf(stderr, " in %llu committed batch%s, which stay\n", batches,
                    batches == 1 ? "" : "es");
        else
            fprintf(stderr, "; nothing was committed\n");
    }
    if (st->retries)
        fprintf(stderr, "pgfeed: retries:           %llu\n", (unsigned long long)st->retries);
    if (batches == 0) {
        if (c->mode && strcmp(c->mode, "replace") == 0)
            print_mode(c, st, " (the table is unchanged)\n");
        return;
    }
    print_mode(c, st, " (the table is unchanged)\n");
    if (st->rows_read > st->rows_committed)
        fprintf(stderr, "pgfeed: rows not committed: %llu (the batch in flight was rolled back)\n",
                (unsigned long long)(st->rows_read - st->rows_committed));
    if (c->no_checkpoint)
        fprintf(stderr, "pgfeed: to continue:       there is no checkpoint (--no-checkpoint): "
                        "import again with --truncate\n");
    else
        fprintf(
            stderr,
            "pgfeed: to continue:       fix the cause, then run the same command with --resume\n");
}
