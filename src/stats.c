/*
 * stats.c -- the counters an import reports: merging the counters of the attempts before
 * a retry with the live ones, and the derived figures (time waiting for the server and
 * for the source, rates over the last 10 s of samples, the ETA).
 *
 * Leaves counting to the stages (through their context's pgfeed_stats) and sampling's
 * timer to the job.
 */
#include "internal.h"

void pgfeed__stats_merge(struct pgfeed_stats *out, const struct pgfeed_stats *carry,
                         const struct pgfeed_stats *live)
{
#define MAXC(f) out->f = carry->f > live->f ? carry->f : live->f
#define SUMC(f) out->f = carry->f + live->f
    MAXC(bytes_read);
    MAXC(bytes_inflated);
    MAXC(lines_read);
    MAXC(rows_read);
    MAXC(rows_sent);
    SUMC(rows_committed);
    SUMC(batches_committed);
    SUMC(rows_rejected);
    SUMC(retries);
    SUMC(rows_inserted);
    SUMC(rows_updated);
    SUMC(rows_unchanged);
    SUMC(rows_deleted);
#undef MAXC
#undef SUMC
}

void pgfeed__rates_sample(struct pgfeed_rates *r, const struct pgfeed_stats *merged)
{
    struct pgfeed_rate_sample *sm = &r->s[r->head];
    sm->t_ns = uv_hrtime();
    sm->rows = merged->rows_read;
    sm->bytes = merged->bytes_read;
    sm->inflated = merged->bytes_inflated;
    r->head = (r->head + 1) % PGFEED_RATE_RING;
    if (r->n < PGFEED_RATE_RING)
        r->n++;
}

/* Rates between the oldest and the newest sample. */
static void rates(const struct pgfeed_rates *r, struct pgfeed_stats *out)
{
    out->rate_rows_s = out->rate_bytes_s = out->rate_inflated_s = 0;
    if (r->n < 2)
        return;
    size_t newest = (r->head + PGFEED_RATE_RING - 1) % PGFEED_RATE_RING;
    size_t oldest = (r->head + PGFEED_RATE_RING - r->n) % PGFEED_RATE_RING;
    const struct pgfeed_rate_sample *a = &r->s[oldest], *b = &r->s[newest];
    double dt = (double)(b->t_ns - a->t_ns) / 1e9;
    if (dt > 0) {
        out->rate_rows_s = (double)(b->rows - a->rows) / dt;
        out->rate_bytes_s = (double)(b->bytes - a->bytes) / dt;
        out->rate_inflated_s = (double)(b->inflated - a->inflated) / dt;
    }
}

/* Seconds left at the recent byte rate (the whole run's when there is none yet); -1 unknown. */
static void eta(struct pgfeed_stats *out)
{
    out->eta_s = -1;
    if (out->done) {
        out->eta_s = 0;
    } else if (out->bytes_total >= 0) {
        double left = (double)out->bytes_total - (double)out->bytes_read;
        double rate = out->rate_bytes_s;
        if (rate <= 0 && out->elapsed_s > 0)
            rate = (double)out->bytes_read / out->elapsed_s;
        if (left <= 0)
            out->eta_s = 0;
        else if (rate > 0)
            out->eta_s = left / rate;
    }
}

void pgfeed__stats_derive(const struct pgfeed_rates *r, const struct pgfeed_ctx *ctx,
                          struct pgfeed_stats *out)
{
    uint64_t server = ctx->server_wait_ns;
    if (ctx->server_wait_since)
        server += uv_hrtime() - ctx->server_wait_since;
    out->wait_server_s = (double)server / 1e9;
    double src = out->elapsed_s - out->wait_server_s - (double)ctx->busy_ns / 1e9;
    out->wait_source_s = src > r->last_wait_source ? src : r->last_wait_source;
    rates(r, out);
    eta(out);
}
