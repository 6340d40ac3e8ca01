/*
 * manifest.c -- the --manifest file: one import per line, each line the arguments of one
 * pgfeed command line (without "pgfeed"), read into one struct cli_import each.
 *
 * Splitting a line into words (shell-style: blanks separate, '...' keeps everything,
 * "..." keeps everything but \" and \\, a backslash outside quotes keeps the next
 * character, adjacent parts join) is this file's; what the words mean is options.c's,
 * over the command line's options as defaults. Running the imports is imports.c's.
 * Blank lines and lines whose first non-blank character is '#' are skipped. Every error
 * is a usage error naming FILE:LINE. A line is at most MAX_LINE bytes.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define MAX_LINE  65536
#define MAX_WORDS 256

/* Splits line (changed in place: the words are its bytes, each ending in '\0') into words.
 * Returns the count, or -1 for an unterminated quote, -2 for too many words. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *r = line, *w = line;
    for (;;) {
        while (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n')
            r++;
        if (*r == '\0')
            return n;
        if (n == max)
            return -2;
        words[n++] = w;
        while (*r && *r != ' ' && *r != '\t' && *r != '\r' && *r != '\n') {
            char q = *r;
            if (q == '\'' || q == '"') {
                r++;
                while (*r && *r != q) {
                    if (q == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\'))
                        r++;
                    *w++ = *r++;
                }
                if (*r != q)
                    return -1;
                r++;
            } else {
                if (q == '\\' && r[1])
                    r++;
                *w++ = *r++;
            }
        }
        /* The writer is never past the reader, so this ends the word without losing a
         * character still to read (a separator, or the line's end). */
        int end = *r == '\0';
        *w++ = '\0';
        if (end)
            return n;
        r++;
    }
}

/* The table's name for comparing: quoted parts as they are, the rest lower case. */
static int same_table(const char *a, const char *b)
{
    if (strchr(a, '"') || strchr(b, '"'))
        return strcmp(a, b) == 0;
    return strcasecmp(a, b) == 0;
}

static int add_import(struct cli_manifest *m, const struct cli_args *defaults, char *line,
                      unsigned lineno)
{
    struct cli_import *im = &m->imports[m->n];
    memset(im, 0, sizeof *im);
    im->line = lineno;
    snprintf(im->where, sizeof im->where, "%s:%u: ", m->path, lineno);
    im->text = line;
    im->argv[0] = "pgfeed";
    m->n++; /* from here on cli_manifest_free frees it */
    int n = split_words(line, im->argv + 1, MAX_WORDS);
    if (n < 0) {
        cli_usage_error("%s%s", im->where,
                        n == -1 ? "unterminated quoted string" : "too many words (256 at most)");
        return CLI_EXIT_USAGE;
    }
    im->argv[n + 1] = NULL;
    int rc = cli_parse_import(&im->a, defaults, n + 1, im->argv, im->where, m->dir);
    if (rc != CLI_RUN)
        return rc == 0 ? CLI_EXIT_USAGE : rc;
    for (size_t i = 0; i + 1 < m->n; i++) {
        if (strcmp(im->a.opt.source, "-") == 0 && strcmp(m->imports[i].a.opt.source, "-") == 0) {
            cli_usage_error("%sonly one import may read standard input (line %u does)", im->where,
                            m->imports[i].line);
            return CLI_EXIT_USAGE;
        }
        if (same_table(m->imports[i].a.opt.table, im->a.opt.table)) {
            cli_usage_error("%stable \"%s\" is already loaded by line %u", im->where,
                            im->a.opt.table, m->imports[i].line);
            return CLI_EXIT_USAGE;
        }
    }
    im->name = im->a.opt.table;
    im->a.cli.import_name = im->name;
    im->a.cli.no_checkpoint = im->a.opt.no_checkpoint;
    return CLI_RUN;
}

/* One line of f into a new buffer (without its '\n'); NULL at the end; *too_long when it
 * is longer than MAX_LINE. */
static char *read_line(FILE *f, int *too_long)
{
    char *buf = malloc(MAX_LINE + 2);
    if (buf == NULL || fgets(buf, MAX_LINE + 2, f) == NULL) {
        free(buf);
        return NULL;
    }
    size_t len = strlen(buf);
    *too_long = len > MAX_LINE;
    if (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    return buf;
}

static int is_blank_or_comment(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return *s == '\0' || *s == '#';
}

static int read_lines(struct cli_manifest *m, FILE *f, const struct cli_args *defaults)
{
    unsigned lineno = 0;
    int too_long = 0;
    char *line;
    while ((line = read_line(f, &too_long)) != NULL) {
        lineno++;
        if (too_long) {
            free(line);
            cli_usage_error("%s:%u: line longer than %d bytes", m->path, lineno, MAX_LINE);
            return CLI_EXIT_USAGE;
        }
        if (is_blank_or_comment(line)) {
            free(line);
            continue;
        }
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 8;
            struct cli_import *more = realloc(m->imports, cap * sizeof *more);
            if (more == NULL) {
                free(line);
                cli_usage_error("out of memory");
                return CLI_EXIT_USAGE;
            }
            m->imports = more;
            m->cap = cap;
        }
        int rc = add_import(m, defaults, line, lineno);
        if (rc != CLI_RUN)
            return rc;
    }
    if (ferror(f)) {
        cli_usage_error("could not read manifest \"%s\": %s", m->path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (m->n == 0) {
        cli_usage_error("manifest \"%s\" lists no import", m->path);
        return CLI_EXIT_USAGE;
    }
    return CLI_RUN;
}

int cli_manifest_read(struct cli_manifest *m, const struct cli_args *defaults)
{
    memset(m, 0, sizeof *m);
    m->path = defaults->manifest;
    char *copy = strdup(m->path);
    m->dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    if (m->dir == NULL) {
        cli_usage_error("out of memory");
        return CLI_EXIT_USAGE;
    }
    FILE *f = fopen(m->path, "r");
    if (f == NULL) {
        cli_usage_error("could not open manifest \"%s\": %s", m->path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    int rc = read_lines(m, f, defaults);
    fclose(f);
    return rc;
}

void cli_manifest_free(struct cli_manifest *m)
{
    for (size_t i = 0; i < m->n; i++) {
        cli_args_free(&m->imports[i].a);
        free(m->imports[i].text);
    }
    free(m->imports);
    free(m->dir);
    memset(m, 0, sizeof *m);
}
