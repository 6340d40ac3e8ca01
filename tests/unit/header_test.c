/* header_test.c -- pgfeed.h compiles on its own, with nothing before it. */
#include "pgfeed.h"

int main(void)
{
    struct pgfeed_options opt;
    (void)opt;
    return PGFEED_EAGAIN < 0 ? 0 : 1;
}
