/* proto_http: HTTP/1.1 (the default protocol) on the connection layer.
 * The protocol proper lives in http_session.c, which knows nothing of
 * sockets; this file feeds it the connection's buffers and turns its
 * answers into proto_rc values, timers and the lingering close.
 *
 * Per process (opened on the first connection, closed at exit):
 *   - the --root directory, an O_PATH fd owned by this file;
 *   - the --access-log file, an O_APPEND fd owned by this file.
 *
 * Memory: an idle keep-alive connection is parked by the connection layer
 * (http_park): only struct http_conn stays, the request scratch and the
 * buffers are freed, and the idle deadline rides on the parked read event.
 *
 * Timers: one per connection (conn_timer_set) for the header, idle and
 * linger deadlines. It is re-armed lazily: a request that moves the idle
 * deadline later leaves the armed timer alone, and when it fires early it
 * is simply set again for the rest. So keep-alive requests cost no timer
 * operations. The write timeout is libevent's own on the bufferevent,
 * because it must restart on every successful write, which only the
 * bufferevent sees. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn.h"
#include "http_session.h"
#include "http_static.h"
#include "log.h"
#include "proxy.h"
#include "scoreboard.h"
#include "worker.h"

struct http_conn {
    struct http_session s; /* the protocol proper */
    uint64_t timer_at;     /* monotonic ms the armed timer fires at; 0: none */
    bool lingering;        /* last response queued: discard input until EOF */
    bool shut;             /* shutdown(SHUT_WR) done; linger timer running */
};

enum setup_state { SETUP_NOT_YET = 0, SETUP_DONE, SETUP_FAILED };

static struct http_opts opts; /* this process's settings, from the config */
static enum setup_state setup_state;
static struct timeval write_timeout; /* from --write-timeout */
static unsigned linger_ms;          /* from --linger-timeout */

static uint64_t seconds_ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)(s * 1000 + 0.5) > 0 ? (uint64_t)(s * 1000 + 0.5) : 1;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    /* Coarse (a few ms) is plenty for second-scale deadlines and is read
     * without a system call or a TSC read. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static time_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts.tv_sec;
}

/* Once per process, in the worker: libevent-free settings and the fds. */
static int http_setup(const struct config *cfg)
{
    if (setup_state != SETUP_NOT_YET)
        return setup_state == SETUP_DONE ? 0 : -1;
    setup_state = SETUP_FAILED;
    opts.max_uri = cfg->http_max_uri;
    opts.max_header = cfg->http_max_header;
    opts.max_body = cfg->http_max_body;
    opts.max_output = cfg->max_output;
    opts.max_requests = cfg->http_max_requests;
    opts.header_timeout = seconds_ms(cfg->http_header_timeout);
    opts.idle_timeout = seconds_ms(cfg->http_idle_timeout);
    opts.root_fd = -1;
    opts.log_fd = -1;
    uint64_t wt = seconds_ms(cfg->http_write_timeout);
    write_timeout.tv_sec = (time_t)(wt / 1000);
    write_timeout.tv_usec = (suseconds_t)(wt % 1000 * 1000);
    linger_ms = (unsigned)seconds_ms(cfg->http_linger_timeout);
    if (cfg->http_root[0] != '\0') {
        opts.root_fd = http_static_open_root(cfg->http_root);
        if (opts.root_fd < 0) {
            log_err("open(--root %s): %s", cfg->http_root, strerror(errno));
            return -1;
        }
    }
    if (cfg->http_access_log[0] != '\0') {
        opts.log_fd = open(cfg->http_access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        /* Serving goes on without the log (say, a --user that may not
         * write the file the master checked). */
        if (opts.log_fd < 0)
            log_err("open(--access-log %s): %s; not logging requests", cfg->http_access_log,
                    strerror(errno));
    }
    setup_state = SETUP_DONE;
    return 0;
}

static int http_whoami(void *arg, char *buf, size_t len)
{
    return conn_whoami(arg, buf, len);
}

/* The client's address without the port, for the access log: the PROXY
 * header's source when there was one, else the socket's peer. */
static void peer_host(struct conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (c->proxied != NULL)
        memcpy(&ss, &c->proxied->src, sizeof(c->proxied->src));
    else if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    } else if (ss.ss_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)len);
        else
            inet_ntop(AF_INET6, a, buf, (socklen_t)len);
    }
}

/* Arm the timer for the session's deadline unless it already fires
 * earlier. */
static void timer_update(struct conn *c, struct http_conn *hc)
{
    uint64_t want = http_session_deadline(&hc->s);
    if (want == 0 || (hc->timer_at != 0 && hc->timer_at <= want))
        return;
    uint64_t now = mono_ms();
    uint64_t ms = want > now ? want - now : 1;
    if (ms > UINT32_MAX)
        ms = UINT32_MAX;
    if (conn_timer_set(c, (unsigned)ms) < 0) {
        log_err("conn_timer_set failed");
        return;
    }
    hc->timer_at = now + ms;
}

/* The session will not read again: once the output is out, half-close so
 * the peer sees the end, and give it linger_ms to stop sending. */
static enum proto_rc linger_step(struct conn *c, struct http_conn *hc)
{
    if (hc->shut)
        return PROTO_OK;
    if (conn_write_now(c) < 0)
        return PROTO_ABORT;
    if (evbuffer_get_length(conn_output(c)) > 0)
        return PROTO_OK; /* the write callback brings us back */
    hc->shut = true;
    if (shutdown(c->fd, SHUT_WR) < 0)
        return PROTO_ABORT; /* peer already gone */
    if (linger_ms == 0)
        return PROTO_ABORT;
    if (conn_timer_set(c, linger_ms) < 0)
        return PROTO_ABORT;
    hc->timer_at = mono_ms() + linger_ms;
    return PROTO_OK;
}

static enum proto_rc http_next_rc(struct conn *c, struct http_conn *hc, enum http_next nx)
{
    switch (nx) {
    case HTTP_NEXT_READ:
    case HTTP_NEXT_OUTPUT:
        /* OUTPUT: the connection layer has stopped reading too, and its
         * write callback brings us back once the output drains. */
        timer_update(c, hc);
        return PROTO_OK;
    case HTTP_NEXT_CLOSE:
        return PROTO_CLOSE;
    case HTTP_NEXT_LINGER:
        hc->lingering = true;
        return linger_step(c, hc);
    }
    return PROTO_ABORT;
}

/* The connection starts parked: the session and its idle deadline only.
 * The buffers and the request scratch come with the first bytes. */
static enum proto_rc http_open(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    if (http_setup(c->w->cfg) < 0)
        return PROTO_ABORT;
    http_session_init(&hc->s, &opts, http_whoami, c, mono_ms(), wall_now());
    hc->s.on_status = scoreboard_request;
    timer_update(c, hc);
    return PROTO_OK;
}

/* Buffers are back: the write timeout lives on the bufferevent, the peer
 * string in the request scratch. */
static int http_unpark(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    if (write_timeout.tv_sec != 0 || write_timeout.tv_usec != 0)
        bufferevent_set_timeouts(c->bev, NULL, &write_timeout);
    if (http_session_wake(&hc->s) < 0)
        return -1;
    if (opts.log_fd >= 0)
        peer_host(c, hc->s.req->peer, sizeof(hc->s.req->peer));
    return 0;
}

/* Between requests, with nothing owed: drop the scratch and park. */
static bool http_park(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    return !hc->lingering && http_session_park(&hc->s);
}

static enum proto_rc http_read(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    struct evbuffer *in = conn_input(c);
    if (hc->lingering) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return PROTO_OK;
    }
    hc->s.draining = c->w->draining;
    return http_next_rc(c, hc, http_session_feed(&hc->s, in, conn_output(c), mono_ms(),
                                                 wall_now()));
}

static enum proto_rc http_write(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    /* Otherwise nothing to do: the connection layer calls http_read next
     * if input is waiting, which resumes a session paused on output. */
    return hc->lingering ? linger_step(c, hc) : PROTO_OK;
}

static enum proto_rc http_timeout(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    hc->timer_at = 0;
    if (hc->lingering)
        return hc->shut ? PROTO_ABORT : PROTO_OK; /* before shut, the write timeout rules */
    uint64_t want = http_session_deadline(&hc->s);
    uint64_t now = mono_ms();
    if (want == 0)
        return PROTO_OK;
    if (now < want) {
        timer_update(c, hc); /* fired for an earlier deadline that moved */
        return PROTO_OK;
    }
    if (http_session_idle(&hc->s) && evbuffer_get_length(conn_output(c)) > 0) {
        /* Not idle: the peer is slow to take our answers, which is the
         * write timeout's business. Look again later. */
        hc->s.phase_since = now;
        timer_update(c, hc);
        return PROTO_OK;
    }
    return http_next_rc(c, hc, http_session_expire(&hc->s, conn_output(c), wall_now()));
}

static enum proto_rc http_drain(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    hc->s.draining = true;
    /* The next response says "Connection: close" and ends the connection.
     * One between requests is not closed here: a busy client's next
     * request may already be on its way, and closing under it is the
     * error a reload must not cause. The worker's sweep closes those
     * that stay idle (conn_park_idle), as it would have parked them. */
    return PROTO_OK;
}

static void http_close(struct conn *c)
{
    struct http_conn *hc = conn_state(c);
    http_session_fini(&hc->s);
}

const struct proto proto_http = {
    .name = "http",
    .state_size = sizeof(struct http_conn),
    .open = http_open,
    .read = http_read,
    .write = http_write,
    .drain = http_drain,
    .timeout = http_timeout,
    .close = http_close,
    .park = http_park,
    .unpark = http_unpark,
};
