/* test_buf.c -- the growable buffer and the message helpers of error.c. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

int main(void)
{
    struct pgfeed_buf b = {0};
    for (int i = 0; i < 1000; i++)
        ASSERT_TRUE(pgfeed__buf_append(&b, "abc", 3) == 0 || i > 0, "append %d", i);
    ASSERT_EQ_INT(b.len, 3000, "length after 1000 appends");
    ASSERT_TRUE(b.cap >= b.len, "capacity covers the length");
    ASSERT_TRUE(memcmp(b.data + 2997, "abc", 3) == 0, "last bytes");
    ASSERT_EQ_INT(pgfeed__buf_reserve(&b, SIZE_MAX), UV_ENOMEM, "absurd reserve fails cleanly");
    pgfeed__buf_free(&b);
    ASSERT_TRUE(b.data == NULL && b.len == 0 && b.cap == 0, "free resets");

    char *q = pgfeed__quote_input("a\tb\\c\x01", 6);
    ASSERT_EQ_STR(q, "a\\tb\\\\c\\x01", "unprintables escaped");
    free(q);
    char longline[300];
    memset(longline, 'x', sizeof longline);
    q = pgfeed__quote_input(longline, sizeof longline);
    ASSERT_EQ_INT(strlen(q), 103, "cut to 100 bytes plus ...");
    ASSERT_TRUE(strcmp(q + 100, "...") == 0, "ends with ...");
    free(q);
    /* A cut never splits a UTF-8 sequence: 99 x then a 2-byte char straddling byte 100. */
    char utf[120];
    memset(utf, 'x', 99);
    memcpy(utf + 99, "\xc3\xa9", 2);
    memset(utf + 101, 'y', 19);
    q = pgfeed__quote_input(utf, sizeof utf);
    ASSERT_EQ_INT(strlen(q), 102, "cut before the split character");
    free(q);

    q = pgfeed__quote_input("caf\xc3\xa9 \xff\xed\xa0\x80 \xf0\x9f\x98\x80", 15);
    ASSERT_EQ_STR(q, "caf\xc3\xa9 \\xff\\xed\\xa0\\x80 \xf0\x9f\x98\x80",
                  "valid UTF-8 kept, invalid bytes and surrogates escaped");
    free(q);

    ASSERT_EQ_STR(pgfeed_err_name(PGFEED_EPARSE), "PGFEED_EPARSE", "error name");
    ASSERT_EQ_STR(pgfeed_strerror(PGFEED_ECANCELED), "import canceled", "error text");
    ASSERT_EQ_STR(pgfeed_err_name(UV_ENOMEM), "ENOMEM", "libuv codes pass through");
    return tap_done();
}
