/*
 * url.c -- what pgfeed reads from a SOURCE string, in one place: its kind
 * (http(s)://, file://, a path, "-"), the URL without its user:password@ for
 * messages and checkpoints, a file:// URL's local path, and the path's ending
 * (the format default: .csv, .csv.gz).
 *
 * Leaves fetching to source_http.c and reading to source_file.c; libcurl's URL
 * parser (curl_url) does the parsing of file:// URLs, as it does for the
 * transfers.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "internal.h"

int pgfeed__url_is(const char *s, const char *scheme)
{
    return strncasecmp(s, scheme, strlen(scheme)) == 0;
}

int pgfeed__url_is_http(const char *s)
{
    return pgfeed__url_is(s, "http://") || pgfeed__url_is(s, "https://");
}

/*
 * The authority ends at the first '/', '?' or '#'; the user information ends at its
 * last '@' (a password may hold one that a client did not percent-encode).
 */
char *pgfeed__url_strip_credentials(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL || !pgfeed__url_is_http(url))
        return strdup(url);
    const char *auth = p + 3;
    size_t hostlen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *q = auth; q < auth + hostlen; q++)
        if (*q == '@')
            at = q;
    if (at == NULL)
        return strdup(url);
    return pgfeed__strdup_printf("%.*s%s", (int)(auth - url), url, at + 1);
}

int pgfeed__url_path_ends_with(const char *src, const char *suffix)
{
    size_t n = strlen(src);
    if (pgfeed__url_is_http(src) || pgfeed__url_is(src, "file://"))
        n = strcspn(src, "?#"); /* a URL's query and fragment are not its path */
    size_t k = strlen(suffix);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)src[n - k + i]) != suffix[i])
            return 0;
    return 1;
}

/*
 * file:///a%20b -> "/a b": percent-decoded, without query or fragment. Only an empty
 * host or "localhost" is this machine; another host, or a URL libcurl cannot parse, is
 * a usage error.
 */
int pgfeed__url_file_path(struct pgfeed_ctx *ctx, const char *url, char **out)
{
    char *host = NULL, *path = NULL;
    int rc = 0;
    *out = NULL;
    CURLU *u = curl_url();
    if (u == NULL)
        return pgfeed__fail(ctx, "source", UV_ENOMEM, NULL, NULL, "out of memory");
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
    if (uc != CURLUE_OK) {
        rc = pgfeed__fail(ctx, "source", PGFEED_EUSAGE, NULL, "Write it as file:///absolute/path.",
                          "invalid file URL \"%s\": %s", url, curl_url_strerror(uc));
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] &&
               strcasecmp(host, "localhost") != 0) {
        rc =
            pgfeed__fail(ctx, "source", PGFEED_EUSAGE, NULL, "Write it as file:///absolute/path.",
                         "cannot read file URL \"%s\": host \"%s\" is not this machine", url, host);
    } else {
        *out = strdup(path);
        if (*out == NULL)
            rc = pgfeed__fail(ctx, "source", UV_ENOMEM, NULL, NULL, "out of memory");
    }
    curl_free(host);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}
