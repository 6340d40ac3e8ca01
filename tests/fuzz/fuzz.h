/*
 * fuzz.h -- what the libFuzzer targets in tests/fuzz/ share (fuzz_common.c).
 *
 * Each target reads a few configuration bytes from the front of its input (fuzz_take), then
 * drives one stage the way its unit test does: no loop running, a fake neighbour that
 * answers PGFEED_EAGAIN when the input says so, and the driver playing job.c (it calls the
 * stage's resume op once the neighbour has room). A broken contract or two runs that should
 * agree and do not end in fuzz_die(), which aborts, so libFuzzer saves the input.
 */
#ifndef PGFEED_FUZZ_H
#define PGFEED_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, consumed from the front. */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};
/* The next byte, or 0 once the input is used up. */
unsigned fuzz_take(struct fuzz_in *in);
/* The next k bytes (fewer at the end) as a little-endian number. */
uint64_t fuzz_take_n(struct fuzz_in *in, unsigned k);

/* xorshift64; a zero state is replaced by a constant. */
uint64_t fuzz_rng(uint64_t *s);

/* Prints what went wrong and aborts. */
_Noreturn void fuzz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A job that is never started, on one loop shared by every input (loop not running). */
pgfeed_job_t *fuzz_job_new(uint64_t max_rejects);
/* Closes it and runs the loop until its handles are closed. */
void fuzz_job_close(pgfeed_job_t *job);

/*
 * The fake downstream: collects what it is given, answers EAGAIN when rng says so (eagain
 * 0: never, else about one call in eagain), and checks the write contract from below: no call
 * while a resume is owed to the stage above, the refused call offered again unchanged, nothing
 * after finish. end_batch records batch infos. limit: a write past that many bytes in all
 * fails hard (UV_E2BIG), which stops inputs that inflate without end.
 */
enum { FUZZ_WRITE = 1, FUZZ_END_BATCH, FUZZ_FINISH };
struct fuzz_sink {
    struct pgfeed_stage base;
    struct pgfeed_buf got;
    struct pgfeed_buf batches; /* struct pgfeed_batch_info after one another */
    size_t limit;
    int over_limit;
    unsigned eagain;
    uint64_t rng;
    int owe;                   /* answered EAGAIN; the stage above has not been resumed */
    int refused_kind;          /* what was refused, to be offered again */
    struct pgfeed_buf refused; /* its bytes */
    int finished;
    /* Optional, called after a write or end_batch was taken (the stage above is still
     * inside its call, as when the real sink asks the job for a restart point). */
    void (*on_write)(struct fuzz_sink *k);
    void (*on_end_batch)(struct fuzz_sink *k, const struct pgfeed_batch_info *bi);
    void *arg;
};
void fuzz_sink_init(struct fuzz_sink *k, pgfeed_job_t *job, unsigned eagain, uint64_t seed);
void fuzz_sink_free(struct fuzz_sink *k);
/* The stage above has room again (what job.c does): resumes it. 0, or -1 when none was owed. */
int fuzz_sink_settle(struct fuzz_sink *k, struct pgfeed_stage *s);

/*
 * Feeds in[0, n) to stage s (whose next is k) in pieces of 1..max_piece bytes chosen by
 * *rng (max_piece 0: whole), each copied to its own allocation that is freed as soon as the
 * stage took it, then finish. Re-offers refused pieces after settling; a stage that answers
 * EAGAIN with no resume owed to it would hang: fuzz_die. Returns the first non-EAGAIN result
 * other than 0, or finish's.
 */
int fuzz_feed(struct pgfeed_stage *s, struct fuzz_sink *k, const uint8_t *in, size_t n,
              size_t max_piece, uint64_t *rng);

#endif
