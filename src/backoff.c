/*
 * backoff.c -- the delay before a retry, one formula for the download's retries
 * (http_retry.c) and the import's (job.c): `first`, doubled once per earlier attempt
 * (at most 8 times: 0.2 s x 256 = 51.2 s, past the 30 s limit both use), +-25 % jitter.
 *
 * Leaves counting attempts, the random draw (u) and the unit (first and limit are in
 * the caller's: ms or s) to the callers, and Retry-After to the download.
 */
#include "internal.h"

#define MAX_DOUBLINGS 8

double pgfeed__backoff(unsigned attempt, double first, double limit, double u,
                       enum pgfeed_backoff_limit where)
{
    double d = first;
    for (unsigned i = 0; i < attempt && i < MAX_DOUBLINGS; i++)
        d *= 2;
    if (where == PGFEED_BACKOFF_LIMIT_BASE && d > limit)
        d = limit;
    d *= 0.75 + 0.5 * u;
    if (where == PGFEED_BACKOFF_LIMIT_DELAY && d > limit)
        d = limit;
    return d;
}
