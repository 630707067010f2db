/* http_date: HTTP dates (IMF-fixdate, RFC 9110 §5.6.7) and the common log
 * format's timestamp. Formatting is locale-free and the "now" strings are
 * cached, so a busy worker formats them at most once a second. */
#ifndef HANDOFF_HTTP_DATE_H
#define HANDOFF_HTTP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* "Sun, 06 Nov 1994 08:49:37 GMT" is 29 characters. */
#define HTTP_DATE_LEN 29
/* "06/Nov/1994:08:49:37 +0000" is 26 characters. */
#define HTTP_DATE_CLF_LEN 26

/* Write T as an IMF-fixdate into OUT (HTTP_DATE_LEN bytes, no NUL). */
void http_date_format(time_t t, char *out);
/* Parse an IMF-fixdate, or the obsolete RFC 850 and asctime forms, of LEN
 * bytes. Returns 0 and sets *OUT, or -1 for anything else. */
int http_date_parse(const char *s, size_t len, time_t *out);

/* Cache of the current second, one per process. */
struct http_date_cache {
    time_t sec;                         /* second the strings describe */
    char imf[HTTP_DATE_LEN + 1];        /* IMF-fixdate, NUL-terminated */
    char clf[HTTP_DATE_CLF_LEN + 1];    /* common log format, NUL-terminated */
};

/* Bring CACHE up to NOW. Returns true when the strings changed, so callers
 * holding prebuilt responses know to patch them. */
bool http_date_update(struct http_date_cache *cache, time_t now);

#endif
