/* conn: see conn.h. Ownership: conn_open takes the fd; from then on the
 * bufferevent owns it (BEV_OPT_CLOSE_ON_FREE) and conn_free is the single
 * place it is closed. Protocol callbacks never free the connection; they
 * return a proto_rc and this file acts on it after they return.
 *
 * I/O: the bufferevent holds the buffers and writes what cannot be written
 * at once, but reading is done here, with one recv(2) per readiness event:
 * libevent's own read asks FIONREAD first, one more system call per read.
 * Output is written directly after each protocol callback; the
 * bufferevent's write event is on only while output is left over. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "log.h"
#include "proxy.h"
#include "scoreboard.h"
#include "worker.h"

/* Bytes one read may take from the socket. */
#define CONN_READ_MAX 16384

static void conn_start_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

struct evbuffer *conn_input(struct conn *c) { return bufferevent_get_input(c->bev); }
struct evbuffer *conn_output(struct conn *c) { return bufferevent_get_output(c->bev); }
int conn_worker_slot(const struct conn *c) { return c->w->slot; }

bool conn_output_full(struct conn *c)
{
    return evbuffer_get_length(conn_output(c)) >= c->w->cfg->max_output;
}

/* Unconsumed input at the same bound: stop reading until it is consumed. */
static bool conn_input_full(struct conn *c)
{
    return evbuffer_get_length(conn_input(c)) >= c->w->cfg->max_output;
}

static void conn_readable_cb(evutil_socket_t fd, short what, void *arg);

/* Watch the socket for input, or stop. */
static int conn_want_read(struct conn *c, bool on)
{
    if (on == c->reading)
        return 0;
    if (on && c->rev == NULL) {
        c->rev = event_new(c->w->base, c->fd, EV_READ | EV_PERSIST, conn_readable_cb, c);
        if (c->rev == NULL)
            return -1;
    }
    if ((on ? event_add(c->rev, NULL) : event_del(c->rev)) < 0)
        return -1;
    c->reading = on;
    return 0;
}

int conn_format_pair(struct conn *c, char *buf, size_t len)
{
    if (c->proxied != NULL)
        return addr_format_pair(&c->proxied->dst.sa, &c->proxied->src.sa, buf, len);
    return addr_format_fd_pair(c->fd, buf, len);
}

int conn_whoami(struct conn *c, char *buf, size_t len)
{
    char pair[ADDR_PAIRLEN];
    if (conn_format_pair(c, pair, sizeof(pair)) < 0)
        return -1;
    int n = snprintf(buf, len, "%s worker=%d pid=%d", pair, c->w->slot, (int)getpid());
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

/* Write what the protocol queued now, in the callback that queued it,
 * rather than a loop turn later: one write(2) instead of epoll_ctl, a wake
 * up, write(2) and epoll_ctl again. The bufferevent's write event is only
 * enabled while output is left over because the socket buffer is full. */
int conn_write_now(struct conn *c)
{
    struct evbuffer *out = conn_output(c);
    size_t before = evbuffer_get_length(out);
    if (c->writing || before == 0)
        return 0;
    /* A socket bufferevent keeps the front of its output frozen so that only
     * it drains it; this is the one other place that does, as it does. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, c->fd);
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_debug("write: %s", strerror(errno));
        return -1;
    }
    size_t after = evbuffer_get_length(out);
    if (after > 0) {
        c->writing = true;
        bufferevent_enable(c->bev, EV_WRITE);
    } else if (before > c->w->cfg->max_output / 2) {
        /* Drained past the low watermark here rather than in the
         * bufferevent: a protocol that stopped producing (or reading) for
         * want of room must still get its write callback. Deferred, so it
         * runs after the callback in progress. */
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
    return 0;
}

/* conn_write_now, closing on error. Returns false when the connection is gone. */
static bool conn_flush(struct conn *c)
{
    if (conn_write_now(c) == 0)
        return true;
    conn_free(c);
    return false;
}

/* Act on a protocol's answer. Returns false when the connection is gone. */
static bool conn_apply(struct conn *c, enum proto_rc rc)
{
    if (rc == PROTO_ABORT) {
        conn_free(c);
        return false;
    }
    if (!conn_flush(c))
        return false;
    if (rc == PROTO_CLOSE && !c->closing) {
        c->closing = true;
        conn_want_read(c, false);
        /* Wake up only when everything queued has gone. */
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    }
    if (c->closing) {
        if (evbuffer_get_length(conn_output(c)) == 0) {
            conn_free(c);
            return false;
        }
        return true;
    }
    /* Backpressure: a peer that does not read cannot make us buffer without
     * bound. Stop reading until the write callback sees the queue drain
     * (or, for input, until the protocol consumes it). */
    c->read_paused = conn_output_full(c) || conn_input_full(c);
    if (c->started && conn_want_read(c, !c->read_paused) < 0) {
        log_err("event_add/event_del failed for a connection");
        conn_free(c);
        return false;
    }
    return true;
}

/* --proxy-protocol: take the header off the front of the input, keep its
 * addresses, then start the protocol as if the connection had just come.
 * Returns false when the connection is gone. */
static bool conn_proxy_read(struct conn *c)
{
    const struct proto *p = c->w->cfg->proto;
    struct evbuffer *in = conn_input(c);
    size_t avail = evbuffer_get_length(in);
    /* At most a v1 line's worth first; a longer v2 header is made contiguous
     * only once all of it is here, so a peer trickling bytes cannot make us
     * copy the same bytes again and again. */
    size_t n = avail < PROXY_V1_MAX ? avail : PROXY_V1_MAX;
    const unsigned char *b = evbuffer_pullup(in, (ev_ssize_t)n);
    struct proxy_hdr h;
    const char *why = "out of memory";
    enum proxy_rc rc = b != NULL ? proxy_parse(b, n, &h, &why) : PROXY_ERROR;
    if (rc == PROXY_MORE && h.len > n && avail >= h.len) {
        n = h.len;
        b = evbuffer_pullup(in, (ev_ssize_t)n);
        rc = b != NULL ? proxy_parse(b, n, &h, &why) : PROXY_ERROR;
    }
    if (rc == PROXY_MORE)
        return true;
    if (rc == PROXY_DONE && !h.local) {
        /* Only proxied connections pay for the addresses. */
        c->proxied = malloc(sizeof(*c->proxied));
        if (c->proxied == NULL) {
            rc = PROXY_ERROR;
            why = "out of memory";
        } else {
            *c->proxied = h.pair;
            scoreboard_conn_readdress(c->sb_row, &h.pair.dst.sa, &h.pair.src.sa);
        }
    }
    if (rc == PROXY_ERROR) {
        log_debug("PROXY header refused: %s", why);
        conn_free(c);
        return false;
    }
    evbuffer_drain(in, h.len);
    c->proxy_wait = false;
    /* The header's deadline is over; freed rather than kept idle, since a
     * protocol that wants a timer creates its own on first use. */
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (p->open != NULL && !conn_apply(c, p->open(c)))
        return false;
    if (!c->closing && !conn_output_full(c) && evbuffer_get_length(in) > 0)
        return conn_apply(c, p->read(c));
    return true;
}

/* Input arrived. Returns false when the connection is gone. */
static bool conn_on_input(struct conn *c)
{
    if (c->proxy_wait)
        return conn_proxy_read(c);
    if (c->closing) {
        /* Input after we decided to close is not going to be answered. */
        evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
        return true;
    }
    return conn_apply(c, c->w->cfg->proto->read(c));
}

/* Read once from the socket into the input and hand it to the protocol.
 * Returns false when the connection is gone. */
static bool conn_read_some(struct conn *c)
{
    struct evbuffer *in = conn_input(c);
    struct evbuffer_iovec v;
    ssize_t n = -1;
    int err = ENOMEM;
    if (evbuffer_reserve_space(in, CONN_READ_MAX, &v, 1) == 1) {
        n = recv(c->fd, v.iov_base, v.iov_len, 0);
        err = errno;
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(in, &v, n > 0 ? 1 : 0);
    }
    if (n > 0)
        return conn_on_input(c);
    if (n == 0)
        return conn_apply(c, PROTO_CLOSE); /* the peer finished sending; deliver what we owe */
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
        return true;
    log_debug("recv: %s", strerror(err));
    conn_free(c);
    return false;
}

static void conn_readable_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_read_some(arg);
}

/* Deferred from conn_open. By the time a connection is handed over, the
 * client's first request has usually arrived: read it at once instead of
 * registering the socket and waiting for the loop to report it. An
 * exchange that closes after one answer then never touches epoll. */
static void conn_start_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->started)
        return;
    c->started = true;
    if (c->closing || !conn_read_some(c) || c->closing)
        return;
    if (conn_want_read(c, !c->read_paused) < 0) {
        log_err("event_add failed for a connection");
        conn_free(c);
    }
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    const struct proto *p = c->w->cfg->proto;
    enum proto_rc rc = PROTO_OK;
    if (c->proxy_wait)
        return; /* nothing written yet; the protocol is not open */
    if (evbuffer_get_length(conn_output(c)) == 0) {
        /* All sent: back to writing directly from conn_flush. */
        c->writing = false;
        bufferevent_disable(c->bev, EV_WRITE);
    }
    if (!c->closing && p->write != NULL)
        rc = p->write(c);
    if (!conn_apply(c, rc))
        return;
    /* Input that arrived while output was full is still waiting. (Not
     * read_paused: that is also set by unconsumed input, which this call is
     * what consumes.) */
    if (!c->closing && !conn_output_full(c) && evbuffer_get_length(conn_input(c)) > 0)
        conn_apply(c, p->read(c));
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        log_debug("connection error: %s", strerror(errno));
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* The peer finished sending; deliver what we still owe it. */
        conn_apply(c, PROTO_CLOSE);
    }
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    const struct proto *p = c->w->cfg->proto;
    if (c->proxy_wait) {
        log_debug("no PROXY header within %g s", c->w->cfg->proxy_timeout);
        conn_free(c);
        return;
    }
    conn_apply(c, p->timeout != NULL ? p->timeout(c) : PROTO_ABORT);
}

int conn_timer_set(struct conn *c, unsigned ms)
{
    if (ms == 0) {
        if (c->timer != NULL)
            event_del(c->timer);
        return 0;
    }
    if (c->timer == NULL) {
        c->timer = evtimer_new(c->w->base, conn_timer_cb, c);
        if (c->timer == NULL)
            return -1;
    }
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return evtimer_add(c->timer, &tv);
}

struct conn *conn_open(struct worker *w, int fd, uint64_t accepted_ns)
{
    const struct proto *p = w->cfg->proto;
    struct conn *c = calloc(1, sizeof(*c) + p->state_size);
    if (c == NULL) {
        log_err("calloc: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->accepted_ns = accepted_ns;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        log_err("bufferevent_socket_new failed");
        close(fd);
        free(c);
        return NULL;
    }
    /* From here the bufferevent owns fd. */
    /* The read callback only ever runs once, as conn_start_cb: the
     * bufferevent never reads (its EV_READ stays off), this file does. */
    bufferevent_setcb(c->bev, conn_start_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, w->cfg->max_output / 2, 0);
    /* The bufferevent freezes the input's end against everyone but its own
     * reads; here reads are ours. */
    evbuffer_unfreeze(conn_input(c), 0);
    worker_conn_added(w, c);
    c->sb_row = scoreboard_conn_open(fd, c->bev, accepted_ns);
    /* EV_WRITE (on by default in a new bufferevent) only when output is
     * left over: see conn_flush. */
    bufferevent_disable(c->bev, EV_WRITE);
    if (w->cfg->proxy_protocol) {
        /* The protocol opens once the header is in (conn_proxy_read); the
         * timer is the header's deadline. */
        c->proxy_wait = true;
        if (conn_timer_set(c, (unsigned)(w->cfg->proxy_timeout * 1000 + 0.5)) < 0) {
            log_err("evtimer_new failed");
            conn_free(c);
            return NULL;
        }
    } else if (p->open != NULL && !conn_apply(c, p->open(c))) {
        return NULL;
    }
    /* conn_start_cb runs from the loop, just after the current callback,
     * so the connection is never freed inside conn_open. */
    if (!c->closing)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    return c;
}

void conn_drain(struct conn *c)
{
    const struct proto *p = c->w->cfg->proto;
    if (c->proxy_wait) {
        conn_free(c); /* no request started: closing loses nothing */
        return;
    }
    if (c->closing || p->drain == NULL)
        return;
    conn_apply(c, p->drain(c));
}

void conn_free(struct conn *c)
{
    const struct proto *p = c->w->cfg->proto;
    if (p->close != NULL && !c->proxy_wait)
        p->close(c);
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (c->rev != NULL) {
        event_free(c->rev);
        c->rev = NULL;
    }
    scoreboard_conn_close(c->sb_row);
    bufferevent_free(c->bev); /* closes the socket */
    c->bev = NULL;
    worker_conn_removed(c->w, c);
    free(c->proxied);
    free(c);
}
