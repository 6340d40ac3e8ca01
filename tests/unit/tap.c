/* tap.c -- see tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int tap_count;
static int tap_fails;

void tap_ok(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!ok)
        tap_fails++;
    printf("%s %d - ", ok ? "ok" : "not ok", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok)
        printf(" (%s:%d)", file, line);
    printf("\n");
    fflush(stdout);
}

void tap_skip(const char *why)
{
    tap_count++;
    printf("ok %d # SKIP %s\n", tap_count, why);
    fflush(stdout);
}

void tap_note(const char *fmt, ...)
{
    va_list ap;
    char buf[4096];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        printf("# %s\n", line);
    fflush(stdout);
}

int tap_failed(void)
{
    return tap_fails;
}

int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_fails ? 1 : 0;
}

char *tap_guard(const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + page - 1) / page;
    size_t total = (data_pages + 1) * page;
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    if (mprotect(base + data_pages * page, page, PROT_NONE) != 0) {
        perror("mprotect");
        abort();
    }
    char *start = base + data_pages * page - n;
    if (n)
        memcpy(start, p, n);
    return start;
}

void tap_guard_free(char *p)
{
    (void)p; /* test programs are short-lived; mappings go with the process */
}
