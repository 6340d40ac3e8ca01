/*
 * test_url.c -- the SOURCE string (url.c), table-driven: its kind, the URL without its
 * user:password@ for messages, the path's ending (the format default), and a file:// URL's
 * local path, with the URLs that must be refused rather than read as a relative or
 * another machine's path. libcurl parses file:// URLs; where its versions word a refusal
 * differently, the table asserts what every version gives (the code, no path, the URL
 * quoted in the message, the hint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

static const struct kind_case {
    const char *src;
    int http, file;
} kind_cases[] = {
    {"http://example.com/a.tsv", 1, 0},
    {"https://example.com/a.tsv", 1, 0},
    {"HTTPS://EXAMPLE.COM/", 1, 0},
    {"HtTp://x", 1, 0},
    {"http:/x", 0, 0},
    {"httpx://x", 0, 0},
    {"ftp://x/a", 0, 0},
    {"file:///a", 0, 1},
    {"FILE://localhost/a", 0, 1},
    {"file:/a", 0, 0},
    {"/tmp/http://x", 0, 0},
    {"-", 0, 0},
    {"", 0, 0},
};

static void test_kinds(void)
{
    for (size_t i = 0; i < sizeof kind_cases / sizeof kind_cases[0]; i++) {
        const struct kind_case *c = &kind_cases[i];
        ASSERT_EQ_INT(pgfeed__url_is_http(c->src), c->http, c->src);
        ASSERT_EQ_INT(pgfeed__url_is(c->src, "file://"), c->file, c->src);
    }
}

static const struct strip_case {
    const char *url, *want;
} strip_cases[] = {
    {"http://user:pass@example.com/a.tsv", "http://example.com/a.tsv"},
    {"https://user@example.com/a.tsv", "https://example.com/a.tsv"},
    {"https://user:pass@example.com:8443/a?b=c#d", "https://example.com:8443/a?b=c#d"},
    {"HTTP://u:p@h/", "HTTP://h/"},
    {"http://u:p@ss@example.com/x", "http://example.com/x"}, /* the last '@' ends it */
    {"http://:@h/x", "http://h/x"},
    {"http://@h/x", "http://h/x"},
    {"http://u:p@h", "http://h"},
    {"http://u:p@h?q", "http://h?q"},
    {"http://example.com/path@x", "http://example.com/path@x"}, /* after the authority */
    {"http://example.com?x=a@b", "http://example.com?x=a@b"},
    {"http://example.com#a@b", "http://example.com#a@b"},
    {"http://example.com/a.tsv", "http://example.com/a.tsv"},
    {"http://", "http://"},
    {"file://u:p@localhost/x", "file://u:p@localhost/x"}, /* only http(s) */
    {"ftp://u:p@h/x", "ftp://u:p@h/x"},
    {"/data/user:pass@x.tsv", "/data/user:pass@x.tsv"},
    {"-", "-"},
    {"", ""},
};

static void test_strip_credentials(void)
{
    for (size_t i = 0; i < sizeof strip_cases / sizeof strip_cases[0]; i++) {
        char *got = pgfeed__url_strip_credentials(strip_cases[i].url);
        ASSERT_EQ_STR(got, strip_cases[i].want, strip_cases[i].url);
        free(got);
    }
}

static const struct ends_case {
    const char *src, *suffix;
    int want;
} ends_cases[] = {
    {"a.csv", ".csv", 1},
    {"A.CSV", ".csv", 1},
    {"/d/x.Csv.GZ", ".csv.gz", 1},
    {"x.csv.gz", ".csv", 0},
    {"x.tsv", ".csv", 0},
    {"csv", ".csv", 0},
    {".csv", ".csv", 1},
    {"", ".csv", 0},
    {"http://h/a.csv?x=1", ".csv", 1},
    {"https://h/a.csv#top", ".csv", 1},
    {"http://h/a.tsv?f=.csv", ".csv", 0},
    {"http://h/a.tsv#.csv", ".csv", 0},
    {"file:///a.csv?x", ".csv", 1},
    {"file:///a.csv.gz#f", ".csv.gz", 1},
    {"/tmp/a.csv?x", ".csv", 0}, /* a path: '?' is part of the name */
    {"/tmp/a?.csv", ".csv", 1},
};

static void test_path_ends_with(void)
{
    for (size_t i = 0; i < sizeof ends_cases / sizeof ends_cases[0]; i++) {
        const struct ends_case *c = &ends_cases[i];
        char what[128];
        snprintf(what, sizeof what, "\"%s\" ends with %s", c->src, c->suffix);
        ASSERT_EQ_INT(pgfeed__url_path_ends_with(c->src, c->suffix), c->want, what);
    }
}

static struct pgfeed_options opt;
static struct pgfeed_ctx ctx;

static const struct file_case {
    const char *url;
    const char *path; /* NULL: refused */
} file_cases[] = {
    {"file:///abs/path.tsv", "/abs/path.tsv"},
    {"file://localhost/abs/x.tsv", "/abs/x.tsv"},
    {"FILE://LocalHost/abs", "/abs"},
    {"file:///", "/"},
    {"file:///a%20b/c%2Fd.tsv", "/a b/c/d.tsv"}, /* percent-decoded */
    {"file:///d/x%C3%A9.tsv", "/d/x\xc3\xa9.tsv"},
    {"file:///a.tsv?x=1#frag", "/a.tsv"}, /* no query, no fragment */
    {"file:///a.tsv#frag", "/a.tsv"},
    {"file:///a/../b.tsv", "/b.tsv"},
    {"file:////double", "//double"},
    /* Another machine, or no path: never a relative path or a guess. */
    {"file://host/x", NULL},
    {"file://x.tsv", NULL},
    {"file://./x", NULL},
    {"file://../x", NULL},
    {"file://[::1]/x", NULL},
    {"file://localhost:8080/x", NULL},
    {"file://user@localhost/x", NULL},
    {"file://", NULL},
    {"file://localhost", NULL},
    {"file:///a%00b", NULL}, /* a NUL would cut the path short */
};

static void test_file_path(void)
{
    pgfeed_options_init(&opt);
    ctx.opt = &opt;
    for (size_t i = 0; i < sizeof file_cases / sizeof file_cases[0]; i++) {
        const struct file_case *c = &file_cases[i];
        char *out = (char *)"unset";
        int rc = pgfeed__url_file_path(&ctx, c->url, &out);
        char what[160];
        snprintf(what, sizeof what, "%s: %s", c->url, c->path ? c->path : "refused");
        if (c->path) {
            ASSERT_EQ_INT(rc, 0, what);
            ASSERT_EQ_STR(out, c->path, what);
            ASSERT_EQ_INT(ctx.err.pub.code, 0, what);
            free(out);
        } else {
            char quoted[128];
            snprintf(quoted, sizeof quoted, "file URL \"%s\"", c->url);
            ASSERT_EQ_INT(rc, PGFEED_EUSAGE, what);
            ASSERT_TRUE(out == NULL, "%s: no path", c->url);
            ASSERT_EQ_INT(ctx.err.pub.code, PGFEED_EUSAGE, what);
            ASSERT_TRUE(ctx.err.pub.message && strstr(ctx.err.pub.message, quoted),
                        "%s: the message quotes it: %s", c->url,
                        ctx.err.pub.message ? ctx.err.pub.message : "(none)");
            ASSERT_EQ_STR(ctx.err.pub.hint, "Write it as file:///absolute/path.", what);
            ASSERT_EQ_STR(ctx.err.pub.stage, "source", what);
        }
        pgfeed__err_clear(&ctx.err);
    }
}

int main(void)
{
    test_kinds();
    test_strip_credentials();
    test_path_ends_with();
    test_file_path();
    return tap_done();
}
