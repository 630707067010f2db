/* http_session: see http_session.h.
 *
 * Memory: struct http_session is what a connection keeps for its life;
 * struct http_request, the scratch a request is read into, exists only
 * while the connection is active. The driver parks a session between
 * requests (http_session_park frees the scratch) and the next feed
 * allocates it again: once per wake-up, never per request.
 *
 * The hot path, a keep-alive GET without --root, costs: one evbuffer_peek,
 * one http_parser_execute over the bytes where they lie, a copy of the
 * request target into a per-connection buffer, one evbuffer_add of a
 * response prebuilt once a second, and one evbuffer_drain. No allocation.
 *
 * Responses are produced at the end of each request, from
 * on_message_complete. The parser pauses itself there when the connection
 * is to close, or when the output has reached max_output: the rest of the
 * input then waits, unparsed, until the driver calls again, so a client
 * that pipelines without reading cannot make the server queue without
 * bound.
 *
 * Expect (RFC 9110 §10.1.1), as nginx does it: an HTTP/1.1 request with
 * "Expect: 100-continue" and a body gets "100 Continue" when its header
 * section has been checked, unless its body has already begun to arrive;
 * a declared body over max_body gets its 413 instead, and no 100. Any other
 * expectation gets 417 and a close, like the other header-time errors
 * (nginx would ignore it). HTTP/1.0 requests have Expect ignored. */
#include "http_session.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "http_date.h"
#include "http_static.h"
#include "log.h"

#define FIXED_BODY "hello from handoff\n"
#define SERVER_LINE "Server: handoff\r\n"
/* The interim response to "Expect: 100-continue". */
#define CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"
/* Room for any response head this file builds (the longest is ~300). */
#define HEAD_MAX 512
/* Request targets longer than this are cut short in the access log. */
#define LOG_URL_MAX 2048

/* Header fields a request's handling depends on. */
enum field {
    FIELD_OTHER = 0,
    FIELD_CONTENT_LENGTH,
    FIELD_TRANSFER_ENCODING,
    FIELD_HOST,
    FIELD_IF_MODIFIED_SINCE,
    FIELD_EXPECT,
};

/* What a request's Expect fields ask for (RFC 9110 §10.1.1). */
enum expect {
    EXPECT_NONE = 0, /* no field, or only empty list members */
    EXPECT_CONTINUE, /* 100-continue, and nothing else */
    EXPECT_OTHER,    /* anything else: 417 */
};

/* What the parser tolerates in a header section but RFC 9112 says to reject,
 * because two parties could read it differently (request smuggling): a bare
 * LF or CR as a line end (§2.2), obs-fold (§5.2), and a request line that is
 * not exactly METHOD SP TARGET SP VERSION with a visible-ASCII target (§3).
 * The parser checks the rest. Empty lines before the request line are
 * allowed (§2.2). */
enum head_scan {
    HS_LEAD = 0,      /* before the request line */
    HS_LEAD_CR,       /* CR of an empty leading line */
    HS_METHOD,        /* in the method */
    HS_TARGET_START,  /* just after the SP before the target */
    HS_TARGET,        /* in the target */
    HS_VERSION_START, /* just after the SP before the version */
    HS_VERSION,       /* in the version */
    HS_LINE_CR,       /* CR ending the request line or a field line */
    HS_FIELD_START,   /* at the start of a field line, or the empty line */
    HS_FIELD,         /* in a field line */
    HS_END_CR,        /* CR of the empty line ending the section */
    HS_BODY,          /* past the section, until the message ends */
};

/* What the Connection header of a response says. */
enum conn_hdr {
    CONN_NONE = 0,   /* HTTP/1.1 keep-alive: implied */
    CONN_KEEP_ALIVE, /* HTTP/1.0 client that asked to keep the connection */
    CONN_CLOSE,      /* this is the last response */
    CONN_VARIANTS,
};

/* A response head to build. */
struct resp {
    int status;           /* status code */
    const char *type;     /* Content-Type, or NULL for none (304) */
    uint64_t length;      /* Content-Length (when type is set) */
    time_t last_modified; /* Last-Modified, or -1 */
    bool allow;           /* add "Allow: GET, HEAD" (405) */
    enum conn_hdr conn;   /* Connection header */
};

/* The fixed answer, whole (head + body) for each Connection variant, so a
 * hot-path response is one evbuffer_add. Rebuilt when the second changes. */
struct prebuilt {
    char buf[HEAD_MAX + sizeof(FIXED_BODY)]; /* head, then body */
    size_t head_len;                          /* bytes of head */
    size_t len;                               /* bytes of head + body */
};

/* Per process: the clock strings and the answers that embed them. */
static struct http_date_cache date_cache;
static struct prebuilt fixed[CONN_VARIANTS];

static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Append S (N bytes) at B + *LEN if it fits in CAP; otherwise mark the
 * buffer overflowed by setting *LEN past CAP, where it stays. */
static void put(char *b, size_t *len, size_t cap, const char *s, size_t n)
{
    if (*len > cap || n > cap - *len) {
        *len = cap + 1;
        return;
    }
    memcpy(b + *len, s, n);
    *len += n;
}
#define PUT_LIT(b, len, cap, lit) put(b, len, cap, lit, sizeof(lit) - 1)

/* Build the head of R into BUF. Returns its length, or 0 if it did not fit. */
static size_t head_build(char *buf, size_t cap, const struct resp *r)
{
    char num[24];
    size_t n = 0;
    const char *reason = http_status_str((enum http_status)r->status);
    PUT_LIT(buf, &n, cap, "HTTP/1.1 ");
    put(buf, &n, cap, num, put_u64(num, (uint64_t)r->status));
    PUT_LIT(buf, &n, cap, " ");
    put(buf, &n, cap, reason, strlen(reason));
    PUT_LIT(buf, &n, cap, "\r\n" SERVER_LINE "Date: ");
    put(buf, &n, cap, date_cache.imf, HTTP_DATE_LEN);
    PUT_LIT(buf, &n, cap, "\r\n");
    if (r->type != NULL) {
        PUT_LIT(buf, &n, cap, "Content-Type: ");
        put(buf, &n, cap, r->type, strlen(r->type));
        PUT_LIT(buf, &n, cap, "\r\nContent-Length: ");
        put(buf, &n, cap, num, put_u64(num, r->length));
        PUT_LIT(buf, &n, cap, "\r\n");
    }
    if (r->last_modified != (time_t)-1) {
        char date[HTTP_DATE_LEN];
        http_date_format(r->last_modified, date);
        PUT_LIT(buf, &n, cap, "Last-Modified: ");
        put(buf, &n, cap, date, sizeof(date));
        PUT_LIT(buf, &n, cap, "\r\n");
    }
    if (r->allow)
        PUT_LIT(buf, &n, cap, "Allow: GET, HEAD\r\n");
    if (r->conn == CONN_CLOSE)
        PUT_LIT(buf, &n, cap, "Connection: close\r\n");
    else if (r->conn == CONN_KEEP_ALIVE)
        PUT_LIT(buf, &n, cap, "Connection: keep-alive\r\n");
    PUT_LIT(buf, &n, cap, "\r\n");
    return n <= cap ? n : 0;
}

static void clock_update(time_t now)
{
    if (!http_date_update(&date_cache, now))
        return;
    for (int v = 0; v < CONN_VARIANTS; v++) {
        struct prebuilt *p = &fixed[v];
        struct resp r = { .status = 200, .type = "text/plain; charset=utf-8",
                          .length = sizeof(FIXED_BODY) - 1, .last_modified = -1,
                          .conn = (enum conn_hdr)v };
        p->head_len = head_build(p->buf, HEAD_MAX, &r);
        memcpy(p->buf + p->head_len, FIXED_BODY, sizeof(FIXED_BODY) - 1);
        p->len = p->head_len + sizeof(FIXED_BODY) - 1;
    }
}

/* ---- access log ---------------------------------------------------------- */

/* One common-log-format line per response:
 *   host - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 2326
 * written with one write(2) on an O_APPEND fd, so lines from different
 * workers never interleave. */
static void access_log(const struct http_session *s, bool have_request, int status,
                       uint64_t bytes)
{
    char line[LOG_URL_MAX * 4 + 256];
    size_t n = 0, cap = sizeof(line);
    char num[24];
    put(line, &n, cap, s->req->peer, strlen(s->req->peer));
    PUT_LIT(line, &n, cap, " - - [");
    put(line, &n, cap, date_cache.clf, HTTP_DATE_CLF_LEN);
    PUT_LIT(line, &n, cap, "] \"");
    if (have_request) {
        const char *m = http_method_str((enum http_method)s->parser.method);
        put(line, &n, cap, m, strlen(m));
        PUT_LIT(line, &n, cap, " ");
        size_t ulen = s->req->url_len < LOG_URL_MAX ? s->req->url_len : LOG_URL_MAX;
        for (size_t i = 0; i < ulen; i++) {
            unsigned char ch = (unsigned char)s->req->url[i];
            if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
                static const char hex[] = "0123456789abcdef";
                char esc[4] = { '\\', 'x', hex[ch >> 4], hex[ch & 15] };
                put(line, &n, cap, esc, 4);
            } else {
                put(line, &n, cap, &s->req->url[i], 1);
            }
        }
        if (ulen < s->req->url_len)
            PUT_LIT(line, &n, cap, "...");
        PUT_LIT(line, &n, cap, " HTTP/");
        put(line, &n, cap, num, put_u64(num, s->parser.http_major % 10));
        PUT_LIT(line, &n, cap, ".");
        put(line, &n, cap, num, put_u64(num, s->parser.http_minor % 10));
    } else {
        PUT_LIT(line, &n, cap, "-");
    }
    PUT_LIT(line, &n, cap, "\" ");
    put(line, &n, cap, num, put_u64(num, (uint64_t)status));
    PUT_LIT(line, &n, cap, " ");
    if (bytes == 0)
        PUT_LIT(line, &n, cap, "-");
    else
        put(line, &n, cap, num, put_u64(num, bytes));
    PUT_LIT(line, &n, cap, "\n");
    if (n > cap)
        return; /* cannot happen: the target is cut to LOG_URL_MAX above */
    ssize_t w = write(s->opts->log_fd, line, n);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        static bool warned; /* once per process, not once per request */
        if (!warned)
            log_err("write(access log): %s", strerror(errno));
        warned = true;
    }
}

/* A response is queued: log and count it. */
static void finished(const struct http_session *s, bool have_request, int status, uint64_t bytes)
{
    if (s->opts->log_fd >= 0)
        access_log(s, have_request, status, bytes);
    if (s->on_status != NULL)
        s->on_status(status);
}

/* ---- responses ----------------------------------------------------------- */

/* Queue a head and, unless HEAD_ONLY, the short BODY. Returns 0 or -1. */
static int respond_small(struct http_session *s, const struct resp *r, bool head_only,
                         const char *body, size_t body_len)
{
    char buf[HEAD_MAX + 128];
    size_t n = head_build(buf, HEAD_MAX, r);
    if (n == 0)
        return -1;
    if (!head_only && body_len > 0) {
        if (body_len > sizeof(buf) - n)
            return -1;
        memcpy(buf + n, body, body_len);
        n += body_len;
    }
    return evbuffer_add(s->req->out, buf, n);
}

/* A status with a one-line text body ("404 Not Found\n"). */
static int respond_status(struct http_session *s, int status, enum conn_hdr conn, bool head_only,
                          uint64_t *bytes)
{
    char body[96];
    int blen = snprintf(body, sizeof(body), "%d %s\n", status,
                        http_status_str((enum http_status)status));
    if (blen < 0 || (size_t)blen >= sizeof(body))
        return -1;
    struct resp r = { .status = status, .type = "text/plain; charset=utf-8",
                      .length = (uint64_t)blen, .last_modified = -1,
                      .allow = status == 405, .conn = conn };
    *bytes = head_only ? 0 : (uint64_t)blen;
    return respond_small(s, &r, head_only, body, (size_t)blen);
}

static int respond_whoami(struct http_session *s, enum conn_hdr conn, bool head_only,
                          int *status, uint64_t *bytes)
{
    char line[256];
    int n = s->whoami != NULL ? s->whoami(s->whoami_arg, line, sizeof(line) - 1) : -1;
    if (n < 0) {
        *status = 500;
        return respond_status(s, 500, conn, head_only, bytes);
    }
    line[n++] = '\n';
    struct resp r = { .status = 200, .type = "text/plain; charset=utf-8",
                      .length = (uint64_t)n, .last_modified = -1, .conn = conn };
    *status = 200;
    *bytes = head_only ? 0 : (uint64_t)n;
    return respond_small(s, &r, head_only, line, (size_t)n);
}

/* If-Modified-Since of the current request, or -1. */
static time_t request_ims(const struct http_session *s)
{
    time_t t;
    if (s->req->ims_len == 0 || s->req->ims_len > sizeof(s->req->ims))
        return (time_t)-1;
    /* Trailing blanks are allowed by the grammar and sent by some clients. */
    size_t n = s->req->ims_len;
    while (n > 0 && (s->req->ims[n - 1] == ' ' || s->req->ims[n - 1] == '\t'))
        n--;
    return http_date_parse(s->req->ims, n, &t) == 0 ? t : (time_t)-1;
}

static int respond_file(struct http_session *s, const char *path, size_t path_len,
                        enum conn_hdr conn, bool head_only, int *status, uint64_t *bytes)
{
    struct http_file f;
    int st = http_static_resolve(s->opts->root_fd, path, path_len, &f);
    if (st != 200) {
        *status = st;
        return respond_status(s, st, conn, head_only, bytes);
    }
    /* f.fd is ours from here: closed below or owned by the file segment. */
    struct resp r = { .status = 200, .type = f.mime, .length = (uint64_t)f.size,
                      .last_modified = f.mtime, .conn = conn };
    time_t ims = request_ims(s);
    if (ims != (time_t)-1 && f.mtime <= ims) {
        close(f.fd);
        r.status = 304;
        r.type = NULL;
        *status = 304;
        *bytes = 0;
        return respond_small(s, &r, true, NULL, 0);
    }
    struct evbuffer_file_segment *seg = NULL;
    if (!head_only && f.size > 0) {
        /* Sent with sendfile(2) when the output is written to the socket. */
        seg = evbuffer_file_segment_new(f.fd, 0, f.size, EVBUF_FS_CLOSE_ON_FREE);
        if (seg == NULL) {
            close(f.fd);
            *status = 500;
            return respond_status(s, 500, conn, head_only, bytes);
        }
    } else {
        close(f.fd);
    }
    *status = 200;
    *bytes = seg != NULL ? (uint64_t)f.size : 0;
    int rc = respond_small(s, &r, true, NULL, 0);
    if (seg != NULL) {
        if (rc == 0)
            rc = evbuffer_add_file_segment(s->req->out, seg, 0, f.size);
        evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
    }
    return rc;
}

/* The path of the request target: origin-form as is, absolute-form
 * ("http://host/p") reduced to its path. Returns false when there is none
 * a GET could name. */
static bool request_path(const struct http_session *s, const char **path, size_t *len)
{
    if (s->req->url_len > 0 && s->req->url[0] == '/') {
        *path = s->req->url;
        *len = s->req->url_len;
        return true;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(s->req->url, s->req->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
        return false;
    if (!(u.field_set & (1 << UF_PATH))) {
        *path = "/";
        *len = 1;
        return true;
    }
    /* The path runs on through the query, as an origin-form target would. */
    *path = s->req->url + u.field_data[UF_PATH].off;
    *len = s->req->url_len - u.field_data[UF_PATH].off;
    return true;
}

static bool path_is(const char *path, size_t len, const char *want)
{
    size_t n = strlen(want);
    return len >= n && memcmp(path, want, n) == 0 &&
           (len == n || path[n] == '?' || path[n] == '#');
}

/* Answer the request that just ended. Returns 0, or -1 when the output
 * could not be queued. */
static int answer(struct http_session *s, enum conn_hdr conn)
{
    http_parser *p = &s->parser;
    bool head_only = p->method == HTTP_HEAD;
    int status = 200;
    uint64_t bytes = 0;
    int rc;
    const char *path;
    size_t path_len;
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        status = 405;
        rc = respond_status(s, status, conn, false, &bytes);
    } else if (!request_path(s, &path, &path_len)) {
        status = 400;
        rc = respond_status(s, status, conn, head_only, &bytes);
    } else if (path_is(path, path_len, "/whoami")) {
        rc = respond_whoami(s, conn, head_only, &status, &bytes);
    } else if (s->opts->root_fd < 0) {
        const struct prebuilt *f = &fixed[conn];
        bytes = head_only ? 0 : sizeof(FIXED_BODY) - 1;
        rc = evbuffer_add(s->req->out, f->buf, head_only ? f->head_len : f->len);
    } else {
        rc = respond_file(s, path, path_len, conn, head_only, &status, &bytes);
    }
    finished(s, true, status, bytes);
    return rc;
}

/* ---- parser callbacks ---------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    struct http_session *s = p->data;
    s->phase = HTTP_HEADER;
    s->phase_since = s->req->now_ms;
    s->req->error = 0;
    s->req->head_done = false;
    s->req->body_bytes = 0;
    s->req->content_lengths = 0;
    s->req->transfer_encoding = false;
    s->req->host = false;
    s->req->host_twice = false;
    s->req->in_value = false;
    s->req->field = FIELD_OTHER;
    s->req->name_len = 0;
    s->req->ims_len = 0;
    s->req->expect_len = 0;
    s->req->continue_due = false;
    s->req->url_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    if (len > s->opts->max_uri - s->req->url_len) {
        s->req->error = 414;
        return -1;
    }
    if (s->req->url_len + len > s->req->url_cap) {
        /* Rare: a target longer than url_small. Grows once per connection
         * to at most max_uri. */
        size_t cap = s->req->url_cap * 2;
        while (cap < s->req->url_len + len)
            cap *= 2;
        if (cap > s->opts->max_uri)
            cap = s->opts->max_uri;
        char *heap = s->req->url == s->req->url_small ? NULL : s->req->url;
        char *nu = realloc(heap, cap);
        if (nu == NULL) {
            s->req->error = 500;
            return -1;
        }
        if (heap == NULL)
            memcpy(nu, s->req->url_small, s->req->url_len);
        s->req->url = nu;
        s->req->url_cap = cap;
    }
    memcpy(s->req->url + s->req->url_len, at, len);
    s->req->url_len += len;
    return 0;
}

/* Append AT (LEN bytes) to a value kept in BUF (CAP bytes, *N used); one
 * that does not fit leaves *N past CAP, where it stays. */
static void value_keep(char *buf, size_t cap, size_t *n, const char *at, size_t len)
{
    if (*n <= cap && len <= cap - *n) {
        memcpy(buf + *n, at, len);
        *n += len;
    } else {
        *n = cap + 1;
    }
}

/* The name of the current field is complete: classify it. */
static void field_named(struct http_session *s)
{
    static const struct {
        const char *name;
        enum field field;
    } known[] = {
        { "content-length", FIELD_CONTENT_LENGTH },
        { "transfer-encoding", FIELD_TRANSFER_ENCODING },
        { "host", FIELD_HOST },
        { "if-modified-since", FIELD_IF_MODIFIED_SINCE },
        { "expect", FIELD_EXPECT },
    };
    s->req->field = FIELD_OTHER;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (s->req->name_len == strlen(known[i].name) &&
            memcmp(s->req->name, known[i].name, s->req->name_len) == 0)
            s->req->field = known[i].field;
    switch (s->req->field) {
    case FIELD_CONTENT_LENGTH:
        s->req->content_lengths++;
        break;
    case FIELD_TRANSFER_ENCODING:
        s->req->transfer_encoding = true;
        break;
    case FIELD_HOST:
        s->req->host_twice = s->req->host;
        s->req->host = true;
        break;
    case FIELD_IF_MODIFIED_SINCE:
        s->req->ims_len = 0; /* the last one counts */
        break;
    case FIELD_EXPECT:
        /* Fields of a list are one list (RFC 9110 §5.3). */
        if (s->req->expect_len > 0)
            value_keep(s->req->expect, sizeof(s->req->expect), &s->req->expect_len, ",", 1);
        break;
    case FIELD_OTHER:
        break;
    }
    s->req->name_len = 0;
    s->req->in_value = true;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    if (s->req->in_value)
        s->req->in_value = false; /* a new field starts */
    for (size_t i = 0; i < len; i++, s->req->name_len++) {
        /* The parser tolerates blanks in names ("Content-Length : 5"), which
         * RFC 9112 says to reject: two parties could read it differently. */
        if (!is_tchar((unsigned char)at[i])) {
            s->req->error = 400;
            return -1;
        }
        if (s->req->name_len < sizeof(s->req->name))
            s->req->name[s->req->name_len] = (char)tolower((unsigned char)at[i]);
    }
    if (s->req->name_len > sizeof(s->req->name))
        s->req->name_len = sizeof(s->req->name) + 1; /* too long to be one we know */
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    if (!s->req->in_value)
        field_named(s);
    if (s->req->field == FIELD_IF_MODIFIED_SINCE)
        value_keep(s->req->ims, sizeof(s->req->ims), &s->req->ims_len, at, len);
    else if (s->req->field == FIELD_EXPECT)
        value_keep(s->req->expect, sizeof(s->req->expect), &s->req->expect_len, at, len);
    return 0;
}

/* Read the Expect list: members are case-insensitive, OWS around them and
 * empty members are allowed (RFC 9110 §5.6.1). */
static enum expect expect_parse(const struct http_request *r)
{
    static const char want[] = "100-continue";
    enum expect e = EXPECT_NONE;
    if (r->expect_len > sizeof(r->expect))
        return EXPECT_OTHER; /* too long to be 100-continue alone */
    for (size_t i = 0; i < r->expect_len; i++) {
        size_t end = i;
        while (end < r->expect_len && r->expect[end] != ',')
            end++;
        while (i < end && (r->expect[i] == ' ' || r->expect[i] == '\t'))
            i++;
        size_t last = end;
        while (last > i && (r->expect[last - 1] == ' ' || r->expect[last - 1] == '\t'))
            last--;
        if (last > i) {
            if (last - i != sizeof(want) - 1 || strncasecmp(r->expect + i, want, last - i) != 0)
                return EXPECT_OTHER;
            e = EXPECT_CONTINUE;
        }
        i = end;
    }
    return e;
}

static int on_headers_complete(http_parser *p)
{
    struct http_session *s = p->data;
    s->req->head_done = true;
    if (!s->req->in_value && s->req->name_len > 0)
        field_named(s); /* a last field without a value callback */
    if (p->http_major != 1) {
        s->req->error = 505;
        return -1;
    }
    if ((p->http_minor >= 1 && !s->req->host) || s->req->host_twice) {
        s->req->error = 400; /* RFC 9112 §3.2: exactly one Host (HTTP/1.1 requires it) */
        return -1;
    }
    /* Request smuggling: the parser rejects most of these itself; these
     * checks make the rule explicit and independent of its version. */
    if (s->req->content_lengths > 1 || (s->req->content_lengths > 0 && s->req->transfer_encoding)) {
        s->req->error = 400;
        return -1;
    }
    if (s->req->transfer_encoding && !(p->flags & F_CHUNKED)) {
        s->req->error = 400; /* a body whose end cannot be found */
        return -1;
    }
    if (s->req->content_lengths > 0 && p->content_length > s->opts->max_body) {
        s->req->error = 413;
        return -1;
    }
    /* Expect is an HTTP/1.1 field: HTTP/1.0 requests have theirs ignored
     * (RFC 9110 §10.1.1). Checked after the limits so that a body too
     * long gets its 413 at once, and no 100. */
    enum expect expect = EXPECT_NONE;
    if (s->req->expect_len > 0 && p->http_minor >= 1) {
        expect = expect_parse(s->req);
        if (expect == EXPECT_OTHER) {
            s->req->error = 417; /* the same closing path as every 4xx here */
            return -1;
        }
    }
    if ((p->flags & F_CHUNKED) || (s->req->content_lengths > 0 && p->content_length > 0)) {
        s->phase = HTTP_BODY;
        s->phase_since = s->req->now_ms;
        /* Every request is answered after its body is read (a 405 too), so
         * every body is wanted; the feed loop sends the 100 when this
         * returns, unless the body has started arriving already. */
        s->req->continue_due = expect == EXPECT_CONTINUE;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    (void)at; /* discarded: no handler here takes a body */
    s->req->body_bytes += len;
    if (s->req->body_bytes > s->opts->max_body) {
        s->req->error = 413;
        return -1;
    }
    s->phase_since = s->req->now_ms; /* progress restarts the idle clock */
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_session *s = p->data;
    s->served++;
    bool keep = http_should_keep_alive(p) && !s->draining && !p->upgrade &&
                (s->opts->max_requests == 0 || s->served < s->opts->max_requests);
    enum conn_hdr conn = !keep ? CONN_CLOSE : p->http_minor == 0 ? CONN_KEEP_ALIVE : CONN_NONE;
    if (answer(s, conn) < 0) {
        s->req->error = 500; /* output could not be queued: give up on the peer */
        return -1;
    }
    s->phase = keep ? HTTP_IDLE : HTTP_DONE;
    s->phase_since = s->req->now_ms;
    s->req->head_done = false;
    /* Stop at every request end, so that the next header section is
     * checked (head_check) before the parser sees it. */
    s->req->head_scan = HS_LEAD;
    http_parser_pause(p, 1);
    s->paused = true;
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- header-section syntax ----------------------------------------------- */

static bool is_visible(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f;
}

/* Check B (LEN bytes) against the rules at enum head_scan, up to and
 * including the end of the header section. Returns the bytes checked, or -1
 * on a violation. */
static ssize_t head_check(struct http_session *s, const unsigned char *b, size_t len)
{
    size_t i = 0;
    for (; i < len && s->req->head_scan != HS_BODY; i++) {
        unsigned char ch = b[i];
        int next;
        switch ((enum head_scan)s->req->head_scan) {
        case HS_LEAD:
            next = ch == '\r' ? HS_LEAD_CR : is_visible(ch) ? HS_METHOD : -1;
            break;
        case HS_LEAD_CR:
            next = ch == '\n' ? HS_LEAD : -1;
            break;
        case HS_METHOD:
            next = ch == ' ' ? HS_TARGET_START : is_visible(ch) ? HS_METHOD : -1;
            break;
        case HS_TARGET_START: /* a second SP, a CTL or a byte that is not ASCII: no */
        case HS_TARGET:
            next = is_visible(ch) ? HS_TARGET
                   : ch == ' ' && s->req->head_scan == HS_TARGET ? HS_VERSION_START : -1;
            break;
        case HS_VERSION_START:
        case HS_VERSION:
            next = is_visible(ch) ? HS_VERSION
                   : ch == '\r' && s->req->head_scan == HS_VERSION ? HS_LINE_CR : -1;
            break;
        case HS_LINE_CR: /* a bare CR */
            next = ch == '\n' ? HS_FIELD_START : -1;
            break;
        case HS_FIELD_START: /* SP or HT here is obs-fold; LF a bare LF */
            next = ch == '\r' ? HS_END_CR : ch == ' ' || ch == '\t' || ch == '\n' ? -1 : HS_FIELD;
            break;
        case HS_FIELD:
            next = ch == '\r' ? HS_LINE_CR : ch == '\n' ? -1 : HS_FIELD;
            break;
        case HS_END_CR:
            next = ch == '\n' ? HS_BODY : -1;
            break;
        default:
            next = HS_BODY;
            break;
        }
        if (next < 0)
            return -1;
        s->req->head_scan = next;
    }
    return (ssize_t)i;
}

/* ---- driving ------------------------------------------------------------- */

void http_session_init(struct http_session *s, const struct http_opts *opts,
                       http_whoami_fn whoami, void *whoami_arg, uint64_t now_ms, time_t now)
{
    (void)now;
    memset(s, 0, sizeof(*s));
    http_parser_init(&s->parser, HTTP_REQUEST);
    s->parser.data = s;
    s->opts = opts;
    s->whoami = whoami;
    s->whoami_arg = whoami_arg;
    s->phase = HTTP_IDLE;
    s->phase_since = now_ms;
    /* The library's own cap on header bytes is process-wide; make it ours.
     * Headers over max_header then fail as HPE_HEADER_OVERFLOW: 431. */
    http_parser_set_max_header_size((uint32_t)opts->max_header);
}

int http_session_wake(struct http_session *s)
{
    if (s->req != NULL)
        return 0;
    struct http_request *r = malloc(sizeof(*r));
    if (r == NULL)
        return -1;
    /* Only what outlives a request is set here; on_message_begin resets
     * the rest for each request. */
    memset(r, 0, offsetof(struct http_request, url_small));
    r->peer[0] = '-';
    r->peer[1] = '\0';
    r->url = r->url_small;
    r->url_cap = sizeof(r->url_small);
    s->req = r;
    return 0;
}

void http_session_fini(struct http_session *s)
{
    if (s->req == NULL)
        return;
    if (s->req->url != s->req->url_small)
        free(s->req->url);
    free(s->req);
    s->req = NULL;
}

bool http_session_park(struct http_session *s)
{
    if (s->phase != HTTP_IDLE)
        return false;
    http_session_fini(s);
    return true;
}

/* The request cannot go on: answer STATUS, close, and stop reading. */
static enum http_next fail(struct http_session *s, struct evbuffer *in, int status)
{
    uint64_t bytes;
    s->phase = HTTP_DONE;
    evbuffer_drain(in, evbuffer_get_length(in));
    if (status == 500 && s->req->error == 500 && evbuffer_get_length(s->req->out) > 0)
        return HTTP_NEXT_CLOSE; /* out of memory mid-response: nothing sane to add */
    if (respond_status(s, status, CONN_CLOSE, false, &bytes) < 0)
        return HTTP_NEXT_CLOSE;
    finished(s, s->req->head_done, status, bytes);
    return HTTP_NEXT_LINGER;
}

enum http_next http_session_feed(struct http_session *s, struct evbuffer *in,
                                 struct evbuffer *out, uint64_t now_ms, time_t now)
{
    if (http_session_wake(s) < 0) {
        s->phase = HTTP_DONE; /* no memory to read a request with */
        evbuffer_drain(in, evbuffer_get_length(in));
        return HTTP_NEXT_CLOSE;
    }
    s->req->now_ms = now_ms;
    s->req->now = now;
    s->req->out = out;
    clock_update(now);
    if (s->phase == HTTP_DONE) {
        /* Whatever arrives after the last response goes unanswered. */
        evbuffer_drain(in, evbuffer_get_length(in));
        return HTTP_NEXT_LINGER;
    }
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return HTTP_NEXT_READ;
        /* Responses only start at request ends, so this check between
         * requests bounds the output to max_output plus one response. */
        if (s->phase == HTTP_IDLE && evbuffer_get_length(out) >= s->opts->max_output)
            return HTTP_NEXT_OUTPUT;
        struct evbuffer_iovec v[16];
        int nv = evbuffer_peek(in, -1, NULL, v, 16);
        if (nv > 16)
            nv = 16; /* peek may count extents it did not fill; the rest next turn */
        size_t used = 0;
        s->paused = false;
        for (int i = 0; i < nv && !s->paused; i++) {
            /* A header section goes to the parser only once checked, up to
             * its end; the rest of the extent waits for the next turn. */
            size_t n = v[i].iov_len;
            if (s->req->head_scan != HS_BODY) {
                ssize_t h = head_check(s, v[i].iov_base, n);
                if (h < 0)
                    return fail(s, in, 400);
                if ((size_t)h < n)
                    nv = i + 1;
                n = (size_t)h;
            }
            size_t k = http_parser_execute(&s->parser, &parser_settings, v[i].iov_base, n);
            used += k;
            if (s->req->continue_due) {
                /* The header section ended at the end of what was parsed
                 * (head_check stops there). Input beyond it is the body
                 * under way: the client has stopped waiting, so no 100.
                 * Earlier responses are already queued on OUT: in order. */
                s->req->continue_due = false;
                if (used == avail && evbuffer_add(out, CONTINUE_LINE, sizeof(CONTINUE_LINE) - 1) < 0)
                    return fail(s, in, 500);
            }
            enum http_errno e = HTTP_PARSER_ERRNO(&s->parser);
            if (e == HPE_PAUSED) {
                http_parser_pause(&s->parser, 0);
            } else if (e == HPE_HEADER_OVERFLOW) {
                return fail(s, in, 431);
            } else if (e != HPE_OK) {
                return fail(s, in, s->req->error != 0 ? s->req->error : 400);
            } else if (k != n) {
                /* Only an upgrade stops the parser early without an error,
                 * and on_message_complete has closed the session for it. */
                if (s->phase != HTTP_DONE)
                    return fail(s, in, 400);
                break;
            }
        }
        evbuffer_drain(in, used);
        if (s->phase == HTTP_DONE) {
            /* Linger even when nothing is left here: a pipelining peer may
             * still be sending, its next request in the socket or on the
             * way, and closing with input unread resets the connection and
             * throws away the responses still in our socket buffer. */
            evbuffer_drain(in, evbuffer_get_length(in));
            return HTTP_NEXT_LINGER;
        }
    }
}

uint64_t http_session_deadline(const struct http_session *s)
{
    uint64_t limit = 0;
    switch (s->phase) {
    case HTTP_IDLE:
    case HTTP_BODY:
        limit = s->opts->idle_timeout;
        break;
    case HTTP_HEADER:
        limit = s->opts->header_timeout;
        break;
    case HTTP_DONE:
        break;
    }
    return limit != 0 ? s->phase_since + limit : 0;
}

enum http_next http_session_expire(struct http_session *s, struct evbuffer *out, time_t now)
{
    enum http_phase was = s->phase;
    s->phase = HTTP_DONE;
    if (was != HTTP_HEADER && was != HTTP_BODY)
        return HTTP_NEXT_CLOSE; /* idle: nothing to answer */
    if (http_session_wake(s) < 0)
        return HTTP_NEXT_CLOSE;
    uint64_t bytes;
    s->req->out = out;
    s->req->now = now;
    clock_update(now);
    if (respond_status(s, 408, CONN_CLOSE, false, &bytes) < 0)
        return HTTP_NEXT_CLOSE;
    finished(s, false, 408, bytes);
    return HTTP_NEXT_LINGER;
}
