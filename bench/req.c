/* req: see req.h. */
#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* The echo payload: not periodic in any small power of two, so a shifted,
 * duplicated or dropped chunk shows up as a mismatch. */
static unsigned char echo_byte(uint64_t i)
{
    return (unsigned char)(i * 131u + (i >> 8) * 7u + 1u);
}

static int req_on_complete(http_parser *p)
{
    struct req_state *s = p->data;
    s->complete = true;
    s->status = p->status_code;
    s->keep_alive = http_should_keep_alive(p) != 0;
    /* Stop here: anything after the answer is not ours to parse. */
    http_parser_pause(p, 1);
    return 0;
}

int req_ctx_init(struct req_ctx *c, const struct opts *o, bool conn_close)
{
    memset(c, 0, sizeof(*c));
    c->proto = o->proto;
    switch (o->proto) {
    case OPTS_ECHO:
        c->msg = malloc(o->size);
        if (c->msg == NULL)
            return -1;
        for (size_t i = 0; i < o->size; i++)
            c->msg[i] = (char)echo_byte(i);
        c->msg_len = o->size;
        c->expect = o->size;
        return 0;
    case OPTS_UNPREQ: {
        char line[32];
        int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)o->bytes);
        c->msg = strdup(line);
        if (c->msg == NULL)
            return -1;
        c->msg_len = (size_t)n;
        c->expect = o->bytes;
        return 0;
    }
    case OPTS_HTTP: {
        const char *fmt = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: handoff-bench\r\n"
                          "Connection: %s\r\n\r\n";
        const char *conn = conn_close ? "close" : "keep-alive";
        int n = snprintf(NULL, 0, fmt, o->path, o->host, conn);
        c->msg = malloc((size_t)n + 1);
        if (c->msg == NULL)
            return -1;
        snprintf(c->msg, (size_t)n + 1, fmt, o->path, o->host, conn);
        c->msg_len = (size_t)n;
        http_parser_settings_init(&c->settings);
        c->settings.on_message_complete = req_on_complete;
        return 0;
    }
    }
    return -1;
}

void req_ctx_free(struct req_ctx *c)
{
    free(c->msg);
    c->msg = NULL;
}

void req_begin(const struct req_ctx *c, struct req_state *s)
{
    s->got = 0;
    s->complete = false;
    s->keep_alive = false;
    s->status = 0;
    if (c->proto == OPTS_HTTP) {
        http_parser_init(&s->hp, HTTP_RESPONSE);
        s->hp.data = s;
    }
}

/* Take up to LEN bytes of a fixed-length answer; echo compares them. */
static enum req_rc feed_fixed(const struct req_ctx *c, struct req_state *s,
                              const unsigned char *p, size_t len, size_t *used)
{
    uint64_t room = c->expect - s->got;
    size_t n = len < room ? len : (size_t)room;
    if (c->proto == OPTS_ECHO && memcmp(p, c->msg + s->got, n) != 0)
        return REQ_BAD;
    s->got += n;
    *used = n;
    if (n < len)
        return REQ_BAD; /* more than we asked for */
    return s->got == c->expect ? REQ_DONE : REQ_MORE;
}

static enum req_rc http_result(const struct req_state *s)
{
    return (s->status >= 200 && s->status <= 299) ? REQ_DONE : REQ_STATUS;
}

static enum req_rc feed_http(const struct req_ctx *c, struct req_state *s,
                             const unsigned char *p, size_t len, size_t *used)
{
    if (s->complete) {
        *used = 0;
        return REQ_BAD; /* bytes after a complete answer */
    }
    size_t n = http_parser_execute(&s->hp, &c->settings, (const char *)p, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&s->hp);
    *used = n;
    s->got += n;
    if (e != HPE_OK && !(e == HPE_PAUSED && s->complete))
        return REQ_BAD;
    if (!s->complete)
        return n == len ? REQ_MORE : REQ_BAD;
    return n < len ? REQ_BAD : http_result(s);
}

enum req_rc req_feed(const struct req_ctx *c, struct req_state *s, struct evbuffer *in,
                     uint64_t *consumed)
{
    enum req_rc rc = REQ_MORE;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t used = 0;
        if (rc != REQ_MORE)
            return REQ_BAD; /* the answer ended but more bytes follow */
        rc = c->proto == OPTS_HTTP ? feed_http(c, s, v.iov_base, v.iov_len, &used)
                                   : feed_fixed(c, s, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        *consumed += used;
        if (rc == REQ_BAD)
            return rc;
    }
    return rc;
}

enum req_rc req_eof(const struct req_ctx *c, struct req_state *s)
{
    if (c->proto == OPTS_HTTP && !s->complete && s->got > 0) {
        /* A body delimited by the close ends here; anything else is cut. */
        http_parser_execute(&s->hp, &c->settings, NULL, 0);
        if (s->complete)
            return http_result(s);
    }
    return s->got == 0 ? REQ_CLOSED : REQ_SHORT;
}
