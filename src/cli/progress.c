/*
 * progress.c -- what the pgfeed command shows while it runs: a one-line bar
 * redrawn in place on a terminal, or one JSON object per line for scripts,
 * and the one-line status SIGUSR1 (SIGINFO where it exists) asks for.
 *
 * The bar is drawn with "\r" + text + "\033[K" (erase to end of line), never
 * wider than the terminal (re-read with TIOCGWINSZ at every draw, so a
 * resize is followed), dropping its least important parts first when narrow.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

static void fmt_bytes(char *out, size_t cap, double b)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000.0 && u < 4) {
        b /= 1000.0;
        u++;
    }
    snprintf(out, cap,
             u == 0    ? "%.0f %s"
             : b < 10  ? "%.2f %s"
             : b < 100 ? "%.1f %s"
                       : "%.0f %s",
             b, units[u]);
}

static void fmt_count(char *out, size_t cap, double n)
{
    if (n < 10000)
        snprintf(out, cap, "%.0f", n);
    else if (n < 1e6)
        snprintf(out, cap, "%.1fk", n / 1e3);
    else if (n < 1e9)
        snprintf(out, cap, "%.2fM", n / 1e6);
    else
        snprintf(out, cap, "%.2fG", n / 1e9);
}

static void fmt_duration(char *out, size_t cap, double s)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(out, cap, "--:--");
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%lu:%02lu", t / 60, t % 60);
}

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* Appends part to line if it fits in width; returns 1 if it did. */
static int add_part(char *line, size_t cap, int width, const char *part)
{
    size_t len = strlen(line), plen = strlen(part);
    size_t sep = len ? 2 : 0;
    if ((int)(len + sep + plen) > width || len + sep + plen + 1 > cap)
        return 0;
    if (sep)
        strcat(line, "  ");
    strcat(line, part);
    return 1;
}

/* Builds the bar's text for a terminal width; the status line uses it too. */
void cli_bar_text(const struct pgfeed_stats *st, int width, char *line, size_t cap)
{
    char read[32], total[32], rows[32], rate[32], mbs[32], eta[32], el[32];
    char pct[16] = "", bar[128] = "", part[96];
    int known = st->bytes_total > 0;
    double frac = known ? (double)st->bytes_read / (double)st->bytes_total : 0;
    if (frac > 1)
        frac = 1;
    fmt_bytes(read, sizeof read, (double)st->bytes_read);
    fmt_bytes(total, sizeof total, (double)st->bytes_total);
    fmt_count(rows, sizeof rows, (double)st->rows_read);
    fmt_count(rate, sizeof rate, st->rate_rows_s);
    fmt_bytes(mbs, sizeof mbs, st->rate_bytes_s);
    fmt_duration(eta, sizeof eta, st->eta_s);
    fmt_duration(el, sizeof el, st->elapsed_s);
    line[0] = '\0';
    if (width < 10)
        width = 10;
    width -= 1; /* never write into the last column: some terminals wrap there */

    /* In order of importance; each part is shown only if it still fits. */
    if (known) {
        snprintf(pct, sizeof pct, "%3.0f%%", floor(frac * 100));
        add_part(line, cap, width, pct);
        if (width >= 60) {
            int w = width / 5 > 30 ? 30 : width / 5;
            int fill = (int)(frac * w);
            bar[0] = '[';
            for (int i = 0; i < w; i++)
                bar[1 + i] = i < fill ? '#' : '.';
            bar[1 + w] = ']';
            bar[2 + w] = '\0';
            add_part(line, cap, width, bar);
        }
    }
    snprintf(part, sizeof part, "%s rows", rows);
    add_part(line, cap, width, part);
    snprintf(part, sizeof part, "%s rows/s", rate);
    add_part(line, cap, width, part);
    if (known) {
        snprintf(part, sizeof part, "ETA %s", eta);
        add_part(line, cap, width, part);
        snprintf(part, sizeof part, "%s/%s", read, total);
        add_part(line, cap, width, part);
    } else {
        add_part(line, cap, width, read);
        add_part(line, cap, width, el);
    }
    snprintf(part, sizeof part, "%s/s", mbs);
    add_part(line, cap, width, part);
    fmt_count(rows, sizeof rows, (double)st->rows_committed);
    snprintf(part, sizeof part, "%s committed", rows);
    add_part(line, cap, width, part);
}

void cli_progress_bar(const struct pgfeed_stats *st)
{
    char line[512];
    cli_bar_text(st, terminal_width(), line, sizeof line);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
}

void cli_progress_clear(void)
{
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

void cli_progress_status(const struct pgfeed_stats *st)
{
    char line[512];
    cli_bar_text(st, 400, line, sizeof line);
    fprintf(stderr, "pgfeed: status: %s; waited %.1f s on the server, %.1f s on input\n", line,
            st->wait_server_s, st->wait_source_s);
}

static void json_num(FILE *f, const char *key, double v, int last)
{
    if (!isfinite(v))
        v = 0;
    fprintf(f, "\"%s\":%.3f%s", key, v, last ? "" : ",");
}

/* "key":"value", with value's quotes, backslashes and control characters escaped. */
static void json_string(FILE *f, const char *key, const char *v)
{
    fprintf(f, "\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputs("\",", f);
}

void cli_progress_json(const struct cli *c, const struct pgfeed_stats *st, const char *status,
                       int exit_code)
{
    FILE *f = stderr;
    fprintf(f, "{\"mode\":\"%s\",", c->mode ? c->mode : "append");
    if (c->import_name)
        json_string(f, "import", c->import_name);
    fprintf(f,
            "\"rows_read\":%llu,\"rows_sent\":%llu,\"rows_committed\":%llu,\"rows_rejected\":%llu,",
            (unsigned long long)st->rows_read, (unsigned long long)st->rows_sent,
            (unsigned long long)st->rows_committed, (unsigned long long)st->rows_rejected);
    fprintf(f, "\"batches_committed\":%llu,\"lines_read\":%llu,\"bytes_read\":%llu,",
            (unsigned long long)st->batches_committed, (unsigned long long)st->lines_read,
            (unsigned long long)st->bytes_read);
    if (c->mode && strcmp(c->mode, "upsert") == 0)
        fprintf(f,
                "\"rows_inserted\":%llu,\"rows_updated\":%llu,\"rows_unchanged\":%llu,"
                "\"rows_deleted\":%llu,",
                (unsigned long long)st->rows_inserted, (unsigned long long)st->rows_updated,
                (unsigned long long)st->rows_unchanged, (unsigned long long)st->rows_deleted);
    if (st->bytes_total >= 0)
        fprintf(f, "\"bytes_total\":%lld,", (long long)st->bytes_total);
    else
        fprintf(f, "\"bytes_total\":null,");
    fprintf(f, "\"bytes_inflated\":%llu,\"retries\":%llu,", (unsigned long long)st->bytes_inflated,
            (unsigned long long)st->retries);
    json_num(f, "elapsed_s", st->elapsed_s, 0);
    json_num(f, "rate_rows_s", st->rate_rows_s, 0);
    json_num(f, "rate_bytes_s", st->rate_bytes_s, 0);
    json_num(f, "rate_inflated_s", st->rate_inflated_s, 0);
    if (st->eta_s >= 0)
        json_num(f, "eta_s", st->eta_s, 0);
    else
        fprintf(f, "\"eta_s\":null,");
    json_num(f, "wait_server_s", st->wait_server_s, 0);
    json_num(f, "wait_source_s", st->wait_source_s, 0);
    if (status)
        fprintf(f, "\"status\":\"%s\",\"exit_code\":%d,\"done\":true}\n", status, exit_code);
    else
        fprintf(f, "\"done\":false}\n");
    fflush(f);
}
