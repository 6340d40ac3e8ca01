/*
 * imports_show.c -- how several imports of a manifest look: a block of lines redrawn in
 * place on a terminal (one per running import, then a total), the SIGUSR1 status of each,
 * and the summary table with a row per import and a total.
 *
 * Each import's line is progress.c's bar text (cli_bar_text) after the import's name,
 * fitted to the terminal's width (re-read at every draw); the block is at most the
 * terminal's height less one line, the imports that do not fit counted on the total
 * line. Redrawing moves the cursor up to the block's first line ("\033[NA"), rewrites
 * each line ("\r" text "\033[K") and erases what a longer block left ("\033[J").
 */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

#define NAME_MAX_SHOWN 24

static void terminal_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col > 0)
            *cols = ws.ws_col;
        if (ws.ws_row > 0)
            *rows = ws.ws_row;
    }
}

void cli_imports_total(const struct cli_manifest *m, struct pgfeed_stats *t)
{
    memset(t, 0, sizeof *t);
    int all_known = 1;
    for (size_t i = 0; i < m->n; i++) {
        const struct pgfeed_stats *s = &m->imports[i].st;
        t->bytes_read += s->bytes_read;
        t->bytes_inflated += s->bytes_inflated;
        t->rows_read += s->rows_read;
        t->rows_sent += s->rows_sent;
        t->rows_committed += s->rows_committed;
        t->rows_rejected += s->rows_rejected;
        t->batches_committed += s->batches_committed;
        t->lines_read += s->lines_read;
        t->retries += s->retries;
        if (m->imports[i].state == IMPORT_RUNNING) { /* an ended one's last rate is not now */
            t->rate_rows_s += s->rate_rows_s;
            t->rate_bytes_s += s->rate_bytes_s;
            t->rate_inflated_s += s->rate_inflated_s;
        }
        t->wait_server_s += s->wait_server_s;
        t->wait_source_s += s->wait_source_s;
        if (s->elapsed_s > t->elapsed_s)
            t->elapsed_s = s->elapsed_s;
        if (s->bytes_total >= 0)
            t->bytes_total += s->bytes_total;
        else
            all_known = 0;
    }
    if (!all_known)
        t->bytes_total = -1;
    t->eta_s = -1;
    if (all_known && t->rate_bytes_s > 0 && t->bytes_total >= (int64_t)t->bytes_read)
        t->eta_s = (double)(t->bytes_total - (int64_t)t->bytes_read) / t->rate_bytes_s;
}

/* "name" cut to NAME_MAX_SHOWN characters, padded to width w. */
static void name_cell(char *out, size_t cap, const char *name, int w)
{
    char cut[NAME_MAX_SHOWN + 1];
    snprintf(cut, sizeof cut, "%s", name);
    if (strlen(name) > NAME_MAX_SHOWN)
        memcpy(cut + NAME_MAX_SHOWN - 3, "...", 4);
    snprintf(out, cap, "%-*s", w, cut);
}

static int name_width(const struct cli_manifest *m)
{
    int w = 5; /* "total" */
    for (size_t i = 0; i < m->n; i++) {
        int n = (int)strlen(m->imports[i].name);
        if (n > w)
            w = n;
    }
    return w > NAME_MAX_SHOWN ? NAME_MAX_SHOWN : w;
}

/* One line: the name cell, two spaces, the bar text for what width is left. */
static void line_for(char *line, size_t cap, const char *name, int nw,
                     const struct pgfeed_stats *st, int cols)
{
    char cell[NAME_MAX_SHOWN + 8], bar[512];
    name_cell(cell, sizeof cell, name, nw);
    int room = cols - nw - 2;
    if (room < 12) {
        snprintf(line, cap, "%.*s", cols > 1 ? cols - 1 : 1, cell);
        return;
    }
    cli_bar_text(st, room, bar, sizeof bar);
    snprintf(line, cap, "%s  %s", cell, bar);
}

static void count_states(const struct cli_manifest *m, int *running, int *done, int *waiting)
{
    *running = *done = *waiting = 0;
    for (size_t i = 0; i < m->n; i++) {
        int s = m->imports[i].state;
        *running += s == IMPORT_RUNNING;
        *done += s == IMPORT_DONE;
        *waiting += s == IMPORT_WAITING;
    }
}

void cli_imports_draw(const struct cli_manifest *m, int *lines)
{
    int cols, rows;
    terminal_size(&cols, &rows);
    int nw = name_width(m), shown = 0, hidden = 0;
    char line[700];
    if (*lines > 1)
        fprintf(stderr, "\r\033[%dA", *lines - 1);
    for (size_t i = 0; i < m->n; i++) {
        const struct cli_import *im = &m->imports[i];
        if (im->state != IMPORT_RUNNING)
            continue;
        if (shown + 2 > rows - 1) {
            hidden++;
            continue;
        }
        line_for(line, sizeof line, im->name, nw, &im->st, cols);
        cli_put("\r", line, "\033[K\n");
        shown++;
    }
    int running, done, waiting;
    count_states(m, &running, &done, &waiting);
    struct pgfeed_stats t;
    cli_imports_total(m, &t);
    char head[96];
    int n = snprintf(head, sizeof head, "total: %d running, %d done, %d waiting", running, done,
                     waiting);
    if (hidden)
        snprintf(head + n, sizeof head - (size_t)n, " (%d not shown)", hidden);
    char bar[512];
    int room = cols - (int)strlen(head) - 3;
    if (room >= 12) {
        cli_bar_text(&t, room, bar, sizeof bar);
        fprintf(stderr, "\r%s  %s\033[K\033[J", head, bar);
    } else {
        fprintf(stderr, "\r%.*s\033[K\033[J", cols > 1 ? cols - 1 : 1, head);
    }
    fflush(stderr);
    *lines = shown + 1;
}

void cli_imports_clear(int *lines)
{
    if (*lines > 1)
        fprintf(stderr, "\r\033[%dA", *lines - 1);
    fprintf(stderr, "\r\033[J");
    fflush(stderr);
    *lines = 0;
}

static const char *state_word(const struct cli_import *im)
{
    switch (im->state) {
    case IMPORT_WAITING:
        return "waiting";
    case IMPORT_RUNNING:
        return "running";
    case IMPORT_NOT_STARTED:
        return "not started";
    default:
        return im->exit_code == 0 ? "imported" : im->exit_code >= 128 ? "interrupted" : "failed";
    }
}

void cli_imports_status(const struct cli_manifest *m)
{
    char line[700];
    int nw = name_width(m);
    for (size_t i = 0; i < m->n; i++) {
        const struct cli_import *im = &m->imports[i];
        if (im->state == IMPORT_RUNNING) {
            line_for(line, sizeof line, im->name, nw, &im->st, 400);
        } else {
            char cell[NAME_MAX_SHOWN + 8];
            name_cell(cell, sizeof cell, im->name, nw);
            snprintf(line, sizeof line, "%s  %s", cell, state_word(im));
        }
        cli_put("pgfeed: status: ", line, "\n");
    }
    struct pgfeed_stats t;
    cli_imports_total(m, &t);
    line_for(line, sizeof line, "total", nw, &t, 400);
    cli_put("pgfeed: status: ", line, "\n");
}

static void summary_row(const char *name, int nw, const char *what, const struct pgfeed_stats *s)
{
    char cell[NAME_MAX_SHOWN + 8];
    name_cell(cell, sizeof cell, name, nw);
    double t = s->elapsed_s > 0 ? s->elapsed_s : 1e-9;
    cli_put("pgfeed: ", cell, "");
    fprintf(stderr, "  %-11s %12llu %9llu %8llu %8.2f %10.0f\n", what,
            (unsigned long long)s->rows_committed, (unsigned long long)s->rows_rejected,
            (unsigned long long)s->batches_committed, s->elapsed_s, (double)s->rows_committed / t);
}

void cli_imports_summary(const struct cli *c, const struct cli_manifest *m, double wall_s)
{
    if (c->quiet)
        return;
    int nw = name_width(m), failed = 0, interrupted = 0;
    fprintf(stderr, "pgfeed: %-*s  %-11s %12s %9s %8s %8s %10s\n", nw, "import", "status", "rows",
            "rejected", "batches", "seconds", "rows/s");
    for (size_t i = 0; i < m->n; i++) {
        const struct cli_import *im = &m->imports[i];
        summary_row(im->name, nw, state_word(im), &im->st);
        interrupted += im->state == IMPORT_DONE && im->exit_code >= 128;
        failed += im->state != IMPORT_DONE || (im->exit_code != 0 && im->exit_code < 128);
    }
    struct pgfeed_stats t;
    cli_imports_total(m, &t);
    t.elapsed_s = wall_s; /* imports waiting for --max-jobs count too */
    char what[32];
    if (failed)
        snprintf(what, sizeof what, "%d failed", failed);
    else if (interrupted)
        snprintf(what, sizeof what, "%d stopped", interrupted);
    else
        snprintf(what, sizeof what, "all %zu", m->n);
    summary_row("total", nw, what, &t);
    for (size_t i = 0; i < m->n; i++) {
        const struct cli_import *im = &m->imports[i];
        if (im->state != IMPORT_DONE || im->exit_code != 0) {
            cli_put("pgfeed: not imported: \"", im->name, "\"");
            fprintf(stderr, " (line %u, %s)\n", im->line, state_word(im));
        }
        if (im->a.cli.mode && strcmp(im->a.cli.mode, "upsert") == 0 &&
            im->st.batches_committed + im->st.rows_deleted > 0) {
            cli_put("pgfeed: upsert of \"", im->name, "\": ");
            fprintf(
                stderr, "%llu inserted, %llu updated, %llu unchanged, %llu deleted\n",
                (unsigned long long)im->st.rows_inserted, (unsigned long long)im->st.rows_updated,
                (unsigned long long)im->st.rows_unchanged, (unsigned long long)im->st.rows_deleted);
        }
        if (im->rejects) {
            cli_put("pgfeed: rejects file of \"", im->name, "\": ");
            cli_put("", im->rejects, "\n");
        }
    }
}
