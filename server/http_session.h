/* http_session: the HTTP/1.1 server side of one connection, independent of
 * sockets. Request bytes are taken from an input evbuffer (read in place
 * with evbuffer_peek and handed to http_parser, then drained), responses
 * are appended to an output evbuffer. proto_http.c drives a session from a
 * connection's bufferevent; the fuzzer drives the same code from memory. */
#ifndef HANDOFF_HTTP_SESSION_H
#define HANDOFF_HTTP_SESSION_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;

/* Settings shared by every session of a process; read-only once set. */
struct http_opts {
    size_t max_uri;           /* request target longer than this: 414 */
    size_t max_header;        /* request line + header fields longer: 431 */
    uint64_t max_body;        /* request body longer than this: 413 */
    size_t max_output;        /* queued output at which no new response starts */
    uint64_t max_requests;    /* requests served per connection (0: no limit) */
    uint64_t header_timeout;  /* ms from a request's first byte to its blank
                               * line (0: none) */
    uint64_t idle_timeout;    /* ms a connection may sit between requests, or
                               * between body reads (0: none) */
    int root_fd;              /* --root as an O_PATH fd, or -1 for the fixed body;
                               * owned by whoever filled this struct */
    int log_fd;               /* --access-log, or -1; owned likewise */
};

/* Where a session stands. */
enum http_phase {
    HTTP_IDLE = 0, /* between requests: nothing of the next one seen */
    HTTP_HEADER,   /* inside a request line or header fields */
    HTTP_BODY,     /* discarding a request body */
    HTTP_DONE,     /* the last response is queued; no more requests */
};

/* What the session wants from its driver after a call. */
enum http_next {
    HTTP_NEXT_READ = 0, /* more input, please */
    HTTP_NEXT_OUTPUT,   /* output is at max_output: call again once it drains */
    HTTP_NEXT_CLOSE,    /* flush the output, then close */
    HTTP_NEXT_LINGER,   /* flush, half-close, and keep discarding input for a
                         * while: the peer may still be sending, and closing
                         * on unread data would reset the response away */
};

/* Fills BUF with the connection's whoami line (no newline); returns its
 * length or -1. */
typedef int (*http_whoami_fn)(void *arg, char *buf, size_t len);
/* Told the status of every response queued (for counters). */
typedef void (*http_status_fn)(int status);

/* The request being read: scratch that exists only while the connection
 * is active (allocated by the first feed after a park, freed by
 * http_session_park), never per request. */
struct http_request {
    char peer[64];                /* client host for the access log */
    struct evbuffer *out;         /* output of the call in progress */
    uint64_t now_ms;              /* monotonic clock, set by each call */
    time_t now;                   /* wall clock, set by each call */
    int error;                    /* status a callback decided on (4xx), or 0 */
    bool head_done;               /* request line and fields complete */
    uint64_t body_bytes;          /* body bytes seen so far */
    unsigned content_lengths;     /* Content-Length fields seen */
    bool transfer_encoding;       /* a Transfer-Encoding field was seen */
    bool host;                    /* a Host field was seen */
    bool host_twice;              /* ... more than once (400) */
    int head_scan;                /* where the header-section check stands
                                   * (enum head_scan in http_session.c) */
    bool in_value;                /* between a field's value and the next name */
    int field;                    /* which field the current value belongs to */
    char name[24];                /* field name so far, lower-cased */
    size_t name_len;              /* bytes in name (may exceed sizeof: too long) */
    char ims[40];                 /* If-Modified-Since value */
    size_t ims_len;               /* bytes in ims (may exceed sizeof: ignored) */
    char expect[32];              /* Expect values, fields joined by ',' */
    size_t expect_len;            /* bytes in expect (may exceed sizeof: an
                                   * expectation we do not know) */
    bool continue_due;            /* 100 Continue owed unless body bytes are
                                   * already here (set by on_headers_complete) */
    char *url;                    /* request target; url_small or heap */
    size_t url_len;               /* bytes in url */
    size_t url_cap;               /* room in url */
    char url_small[192];          /* most targets fit here: no allocation */
};

/* What a connection keeps for its whole life: small, since an idle
 * keep-alive connection holds only this. */
struct http_session {
    http_parser parser;           /* incremental request parser */
    const struct http_opts *opts; /* process-wide settings */
    http_whoami_fn whoami;        /* answers GET /whoami */
    void *whoami_arg;             /* its argument */
    http_status_fn on_status;     /* counts responses; NULL: none */
    struct http_request *req;     /* scratch while active; NULL when parked */
    uint64_t phase_since;         /* monotonic ms when the phase (or body
                                   * progress) began */
    uint64_t served;              /* requests answered on this connection */
    enum http_phase phase;        /* see enum http_phase */
    bool draining;                /* set by the driver: close after this request */
    bool paused;                  /* the parser stopped itself at a request end */
};

/* Start a session. Never fails. */
void http_session_init(struct http_session *s, const struct http_opts *opts,
                       http_whoami_fn whoami, void *whoami_arg, uint64_t now_ms, time_t now);
/* Release what the session allocated. */
void http_session_fini(struct http_session *s);
/* Make sure the request scratch exists (feed and expire do this too): for
 * a driver that fills req->peer. Returns 0, or -1 when out of memory. */
int http_session_wake(struct http_session *s);
/* Between requests, free the scratch and return true; otherwise (a request
 * in progress, or the session done) keep it and return false. */
bool http_session_park(struct http_session *s);

/* Consume what can be consumed of IN, queueing responses on OUT. NOW_MS
 * (monotonic) and NOW (wall clock) are the current times. */
enum http_next http_session_feed(struct http_session *s, struct evbuffer *in,
                                 struct evbuffer *out, uint64_t now_ms, time_t now);

/* Monotonic ms at which the session's current wait runs out, or 0 when
 * there is none (HTTP_DONE, or that timeout disabled). */
uint64_t http_session_deadline(const struct http_session *s);
/* The deadline passed: answer 408 if a request was half-read. Returns
 * HTTP_NEXT_CLOSE or HTTP_NEXT_LINGER. */
enum http_next http_session_expire(struct http_session *s, struct evbuffer *out, time_t now);

/* Whether closing now loses nothing: no request has been started. */
static inline bool http_session_idle(const struct http_session *s)
{
    return s->phase == HTTP_IDLE;
}

#endif
