/*
 * tap.h -- a tiny TAP producer for the unit tests.
 *
 * ASSERT_* print both sides on failure and count a failed check; a test
 * program ends with `return tap_done();`, which prints the plan and returns
 * non-zero if anything failed; tap_skip() reports a check that cannot run
 * here. Guarded buffers put data right before a PROT_NONE page so an
 * over-read crashes at once (picohttpparser's trick).
 */
#ifndef PGFEED_TAP_H
#define PGFEED_TAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

void tap_ok(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void tap_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One check not run, counted as passed: "ok N # SKIP why" (meson shows the test as skipped
 * when every check was). */
void tap_skip(const char *why);
int tap_done(void);
int tap_failed(void);

/* Copies n bytes so that they end exactly at a PROT_NONE page; returns the copy. */
char *tap_guard(const void *p, size_t n);
void tap_guard_free(char *p);

#define ASSERT_TRUE(c, ...) tap_ok(!!(c), __FILE__, __LINE__, __VA_ARGS__)
#define ASSERT_EQ_INT(a, b, what)                                                                  \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        tap_ok(a_ == b_, __FILE__, __LINE__, "%s: %lld == %lld", (what), a_, b_);                  \
    } while (0)
#define ASSERT_EQ_MEM(a, an, b, bn, what)                                                          \
    do {                                                                                           \
        size_t an_ = (an), bn_ = (bn);                                                             \
        int ok_ = an_ == bn_ && memcmp((a), (b), an_) == 0;                                        \
        tap_ok(ok_, __FILE__, __LINE__, "%s", (what));                                             \
        if (!ok_)                                                                                  \
            tap_note("  got %zu bytes: %.*s\n  want %zu bytes: %.*s", an_,                         \
                     (int)(an_ > 300 ? 300 : an_), (const char *)(a), bn_,                         \
                     (int)(bn_ > 300 ? 300 : bn_), (const char *)(b));                             \
    } while (0)
#define ASSERT_EQ_STR(a, b, what)                                                                  \
    do {                                                                                           \
        const char *as_ = (a), *bs_ = (b);                                                         \
        int ok_ = as_ && bs_ && strcmp(as_, bs_) == 0;                                             \
        tap_ok(ok_, __FILE__, __LINE__, "%s", (what));                                             \
        if (!ok_)                                                                                  \
            tap_note("  got:  %s\n  want: %s", as_ ? as_ : "(null)", bs_ ? bs_ : "(null)");        \
    } while (0)

#endif
