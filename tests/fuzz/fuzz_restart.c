/*
 * fuzz_restart.c -- the checkpoint's restart point reader (pgfeed__decoder_restart_from).
 *
 * A checkpoint row keeps the decoder's restart point as opaque bytes (decode_gzip.c's top
 * comment has the format); a resume hands them, and the checkpoint's decoded offset, to a
 * fresh decoder, and the source then delivers its bytes from the point's raw offset on.
 * Input:
 *   byte 0    bit 0: set the blob's window length field and CRC-32 to match its length (so
 *             that mutations reach the fields behind them); bit 1: set magic and version;
 *             bit 2: ISA-L off
 *   byte 1    EAGAIN from the fake downstream (never, or one call in 2 .. 8)
 *   byte 2    the largest piece a write gets; byte 3 the decoded offset past the point's
 *   bytes 4-5 the blob's length (little-endian), then the blob, then the source's bytes
 * A blob is refused with PGFEED_ECHECKPOINT (or out of memory), never with a crash; one
 * that is taken decodes what follows without a crash, leak or hang, and a failure sticks.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"

static void put32be(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[] = {0, 1, 2, 3, 17, 100, 1000, 5000};
    struct fuzz_in in = {data, size};
    unsigned b0 = fuzz_take(&in), b1 = fuzz_take(&in), b2 = fuzz_take(&in), b3 = fuzz_take(&in);
    size_t len = (size_t)fuzz_take_n(&in, 2);
    if (len > in.n)
        len = in.n;
    unsigned char *blob = malloc(len ? len : 1);
    if (!blob)
        fuzz_die("out of memory");
    if (len)
        memcpy(blob, in.p, len);
    in.p += len;
    in.n -= len;
    if ((b0 & 2) && len >= 5) {
        memcpy(blob, "PGFR", 4);
        blob[4] = 1;
    }
    if ((b0 & 1) && len >= 68) {
        put32be(blob + 60, (uint32_t)(len - 68));
        put32be(blob + len - 4, (uint32_t)crc32(0, blob, (uInt)(len - 4)));
    }
    uint64_t decoded = b3;
    if (len >= 28) {
        uint64_t point = 0;
        for (int i = 0; i < 8; i++)
            point = point << 8 | blob[20 + i];
        decoded += point;
    }

    pgfeed_job_t *job = fuzz_job_new(0);
    struct pgfeed_stage *dec = NULL;
    struct fuzz_sink k;
    uint64_t rng = b2 * 2654435761u + b1 + 1;
    if (pgfeed__decoder_new(pgfeed__job_ctx(job), 4096, &dec) != 0)
        fuzz_die("pgfeed__decoder_new failed");
    pgfeed__decoder_use_isal(dec, !(b0 & 4));
    fuzz_sink_init(&k, job, (b1 & 7) ? 1 + (b1 & 7) : 0, rng);
    k.limit = (size_t)1 << 18;
    dec->next = &k.base;
    k.base.prev = dec;
    int rc = pgfeed__decoder_restart_from(dec, blob, len, decoded);
    if (rc != 0 && rc != PGFEED_ECHECKPOINT && rc != UV_ENOMEM)
        fuzz_die("restart_from refused a blob with %s: %s", pgfeed_err_name(rc),
                 pgfeed_job_error(job)->message ? pgfeed_job_error(job)->message : "-");
    if (rc != 0 && pgfeed_job_error(job)->code != rc)
        fuzz_die("restart_from failed without setting the job's error");
    if (rc == 0) {
        rc = fuzz_feed(dec, &k, in.p, in.n, pieces[b2 & 7], &rng);
        if (rc != 0 && (dec->ops->write(dec, "x", 1) != rc || dec->ops->finish(dec) != rc))
            fuzz_die("the decoder's failure is not sticky");
        if (rc == 0 && !k.finished)
            fuzz_die("finish succeeded but did not reach downstream");
    }
    fuzz_sink_free(&k);
    dec->ops->destroy(dec);
    fuzz_job_close(job);
    free(blob);
    return 0;
}
