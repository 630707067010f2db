/* http_date: see http_date.h. gmtime_r and fixed tables instead of strftime
 * and strptime: the result must not depend on the locale, and the
 * formatter runs on the response path. */
#include "http_date.h"

#include <string.h>

static const char wday_names[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char month_names[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* 1970-01-01, for times gmtime_r cannot express. */
static void tm_epoch(struct tm *tm)
{
    memset(tm, 0, sizeof(*tm));
    tm->tm_mday = 1;
    tm->tm_year = 70;
    tm->tm_wday = 4;
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

static void put4(char *p, int v)
{
    put2(p, v / 100);
    put2(p + 2, v % 100);
}

/* "DD.Mon.YYYY,HH:MM:SS" (20 bytes) with SEP for '.' and AT for ',': the
 * middle of both the IMF-fixdate and the common log format's time. */
static void put_date_time(char *p, const struct tm *tm, char sep, char at)
{
    put2(p, tm->tm_mday);
    p[2] = sep;
    memcpy(p + 3, month_names[tm->tm_mon], 3);
    p[6] = sep;
    put4(p + 7, tm->tm_year + 1900);
    p[11] = at;
    put2(p + 12, tm->tm_hour);
    p[14] = ':';
    put2(p + 15, tm->tm_min);
    p[17] = ':';
    put2(p + 18, tm->tm_sec);
}

void http_date_format(time_t t, char *out)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        tm_epoch(&tm);
    memcpy(out, wday_names[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    put_date_time(out + 5, &tm, ' ', ' ');
    memcpy(out + 25, " GMT", 4);
}

/* Digits at S[0..N) as a number, or -1. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int month_index(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(s, month_names[i], 3) == 0)
            return i;
    return -1;
}

/* "HH:MM:SS" at S into TM. */
static int parse_clock(const char *s, struct tm *tm)
{
    if (s[2] != ':' || s[5] != ':')
        return -1;
    tm->tm_hour = digits(s, 2);
    tm->tm_min = digits(s + 3, 2);
    tm->tm_sec = digits(s + 6, 2);
    if (tm->tm_hour < 0 || tm->tm_hour > 23 || tm->tm_min < 0 || tm->tm_min > 59 ||
        tm->tm_sec < 0 || tm->tm_sec > 60)
        return -1;
    return 0;
}

int http_date_parse(const char *s, size_t len, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *comma = memchr(s, ',', len < 10 ? len : 10);
    if (len == HTTP_DATE_LEN && comma == s + 3) {
        /* Sun, 06 Nov 1994 08:49:37 GMT */
        if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) != 0)
            return -1;
        tm.tm_mday = digits(s + 5, 2);
        tm.tm_mon = month_index(s + 8);
        tm.tm_year = digits(s + 12, 4) - 1900;
        if (parse_clock(s + 17, &tm) < 0)
            return -1;
    } else if (comma != NULL && len >= 30 && len - (size_t)(comma - s) == 24) {
        /* Sunday, 06-Nov-94 08:49:37 GMT */
        const char *p = comma + 1;
        if (p[0] != ' ' || p[3] != '-' || p[7] != '-' || p[10] != ' ' ||
            memcmp(p + 19, " GMT", 4) != 0)
            return -1;
        tm.tm_mday = digits(p + 1, 2);
        tm.tm_mon = month_index(p + 4);
        int yy = digits(p + 8, 2);
        if (yy < 0)
            return -1;
        /* RFC 9110: a two-digit year more than 50 years ahead is in the past. */
        tm.tm_year = yy < 70 ? yy + 100 : yy;
        if (parse_clock(p + 11, &tm) < 0)
            return -1;
    } else if (len == 24 && comma == NULL) {
        /* Sun Nov  6 08:49:37 1994 */
        if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
            return -1;
        tm.tm_mon = month_index(s + 4);
        tm.tm_mday = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
        tm.tm_year = digits(s + 20, 4) - 1900;
        if (parse_clock(s + 11, &tm) < 0)
            return -1;
    } else {
        return -1;
    }
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_mon < 0 || tm.tm_year < 70)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t;
    return 0;
}

bool http_date_update(struct http_date_cache *cache, time_t now)
{
    if (cache->sec == now && cache->imf[0] != '\0')
        return false;
    cache->sec = now;
    http_date_format(now, cache->imf);
    cache->imf[HTTP_DATE_LEN] = '\0';
    /* The access log uses UTC too: one clock for every line, no tz lookups. */
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        tm_epoch(&tm);
    put_date_time(cache->clf, &tm, '/', ':');
    memcpy(cache->clf + 20, " +0000", 6);
    cache->clf[HTTP_DATE_CLF_LEN] = '\0';
    return true;
}
