/* conn: see conn.h. Ownership: conn_open takes the fd and struct conn owns
 * it from then on; conn_free is the single place it is closed. The
 * bufferevent is a transient I/O helper, created without
 * BEV_OPT_CLOSE_ON_FREE when the connection becomes active and freed when
 * it parks. Protocol callbacks never free the connection; they return a
 * proto_rc and this file acts on it after they return.
 *
 * I/O: the bufferevent holds the buffers and writes what cannot be written
 * at once, but reading is done here, with one recv(2) per readiness event:
 * libevent's own read asks FIONREAD first, one more system call per read.
 * Output is written directly after each protocol callback; the
 * bufferevent's write event is on only while output is left over.
 *
 * Parking: a parked connection is struct conn alone. Its read event is
 * embedded and carries the protocol timer's deadline as its timeout, so an
 * idle connection costs no allocation beyond struct conn and libevent's
 * per-fd entry. A parked read goes to a stack buffer first, so a wake-up
 * with nothing to read allocates nothing. */
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

static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

struct evbuffer *conn_input(struct conn *c)
{
    return c->bev != NULL ? bufferevent_get_input(c->bev) : NULL;
}

struct evbuffer *conn_output(struct conn *c)
{
    return c->bev != NULL ? bufferevent_get_output(c->bev) : NULL;
}

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

static struct timeval conn_ms_tv(unsigned ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

/* Watch the socket for input, or stop (active: rev has no timeout). */
static int conn_want_read(struct conn *c, bool on)
{
    if (on == c->reading)
        return 0;
    if ((on ? event_add(&c->rev, NULL) : event_del(&c->rev)) < 0)
        return -1;
    c->reading = on;
    return 0;
}

/* Start rev afresh: added when ON, with a timeout of MS (0: none).
 * Re-assigned rather than re-added because a persistent event keeps the
 * timeout of its last add, and an active connection's rev must have none. */
static int conn_rev_reset(struct conn *c, unsigned ms, bool on)
{
    event_del(&c->rev);
    event_assign(&c->rev, c->w->base, c->fd, EV_READ | EV_PERSIST, conn_readable_cb, c);
    c->reading = false;
    if (!on)
        return 0;
    struct timeval tv = conn_ms_tv(ms);
    if (event_add(&c->rev, ms != 0 ? &tv : NULL) < 0)
        return -1;
    c->reading = true;
    return 0;
}

/* Milliseconds until EV's timeout (at least 1), or 0 when none is set. */
static unsigned conn_timeout_left(struct conn *c, const struct event *ev)
{
    struct timeval at, now;
    if (ev == NULL || !event_pending(ev, EV_TIMEOUT, &at))
        return 0;
    /* event_pending reports the deadline on the clock the base's cached
     * time uses. */
    event_base_gettimeofday_cached(c->w->base, &now);
    long long ms = ((long long)at.tv_sec - now.tv_sec) * 1000 + (at.tv_usec - now.tv_usec) / 1000;
    return ms < 1 ? 1 : ms > UINT32_MAX ? UINT32_MAX : (unsigned)ms;
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
    if (c->bev == NULL)
        return 0; /* parked: nothing queued */
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
    if (rc == PROTO_ABORT || (rc == PROTO_CLOSE && c->bev == NULL)) {
        conn_free(c); /* parked: nothing queued, so closing is immediate */
        return false;
    }
    if (c->bev == NULL)
        return true;
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
    if (p->unpark != NULL && p->unpark(c) < 0) {
        conn_free(c);
        return false;
    }
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
 * A parked connection reads into the stack first, so that a wake-up with
 * nothing to read (the first try of a silent client) allocates nothing;
 * only bytes make it active. Returns false when the connection is gone. */
static bool conn_read_some(struct conn *c)
{
    char stack[CONN_READ_MAX];
    struct evbuffer_iovec v = { .iov_base = stack, .iov_len = sizeof(stack) };
    bool parked = c->bev == NULL;
    ssize_t n = -1;
    int err = ENOMEM;
    if (parked || evbuffer_reserve_space(conn_input(c), CONN_READ_MAX, &v, 1) == 1) {
        n = recv(c->fd, v.iov_base, v.iov_len, 0);
        err = errno;
    }
    if (!parked) {
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(conn_input(c), &v, n > 0 ? 1 : 0);
    } else if (n > 0 && (conn_unpark(c) < 0 || evbuffer_add(conn_input(c), stack, (size_t)n) < 0)) {
        log_err("out of memory for a connection's buffers");
        conn_free(c);
        return false;
    }
    c->io_gen = c->w->sweep_gen;
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

/* The deadline riding on a parked connection's rev passed. */
static void conn_parked_timeout(struct conn *c)
{
    const struct proto *p = c->w->cfg->proto;
    if (c->proxy_wait) {
        log_debug("no PROXY header within %g s", c->w->cfg->proxy_timeout);
        conn_free(c);
        return;
    }
    if (p->timeout == NULL) {
        conn_free(c);
        return;
    }
    /* A persistent event re-arms its timeout as it fires: drop it, then
     * give the protocol its buffers for whatever it answers. */
    if (conn_rev_reset(c, 0, true) < 0 || conn_unpark(c) < 0) {
        log_err("could not wake a parked connection");
        conn_free(c);
        return;
    }
    conn_apply(c, p->timeout(c));
}

/* Run once, activated by conn_open. By the time a connection is handed
 * over, the client's first request has usually arrived: read it at once
 * instead of registering the socket and waiting for the loop to report it.
 * An exchange that closes after one answer then never touches epoll. */
static void conn_start(struct conn *c)
{
    c->started = true;
    if (c->closing || !conn_read_some(c))
        return;
    if (c->bev == NULL) {
        /* Nothing yet: wait parked, with the deadline asked for so far. */
        unsigned ms = c->start_ms;
        c->start_ms = 0;
        if (conn_rev_reset(c, ms, true) < 0) {
            log_err("event_add failed for a connection");
            conn_free(c);
        }
        return;
    }
    if (c->closing)
        return;
    if (conn_want_read(c, !c->read_paused) < 0) {
        log_err("event_add failed for a connection");
        conn_free(c);
    }
}

static void conn_readable_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    if (!c->started)
        conn_start(c);
    else if (c->bev == NULL && (what & EV_TIMEOUT))
        conn_parked_timeout(c);
    else
        conn_read_some(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    const struct proto *p = c->w->cfg->proto;
    enum proto_rc rc = PROTO_OK;
    if (c->proxy_wait)
        return; /* nothing written yet; the protocol is not open */
    c->io_gen = c->w->sweep_gen;
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
    if (c->bev == NULL) {
        /* Parked: the deadline rides on rev (or waits for rev's first add,
         * which conn_start does, so that a one-exchange connection never
         * registers with epoll). */
        if (!c->reading) {
            c->start_ms = ms;
            return 0;
        }
        return conn_rev_reset(c, ms, true);
    }
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
    struct timeval tv = conn_ms_tv(ms);
    return evtimer_add(c->timer, &tv);
}

int conn_unpark(struct conn *c)
{
    if (c->bev != NULL)
        return 0;
    struct worker *w = c->w;
    const struct proto *p = w->cfg->proto;
    unsigned left = c->reading ? conn_timeout_left(c, &c->rev) : c->start_ms;
    c->start_ms = 0;
    c->bev = bufferevent_socket_new(w->base, c->fd, 0); /* the fd stays ours */
    if (c->bev == NULL) {
        log_err("bufferevent_socket_new failed");
        return -1;
    }
    bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, w->cfg->max_output / 2, 0);
    /* The bufferevent freezes the input's end against everyone but its own
     * reads; here reads are ours. */
    evbuffer_unfreeze(conn_input(c), 0);
    /* EV_WRITE (on by default in a new bufferevent) only when output is
     * left over: see conn_flush. */
    bufferevent_disable(c->bev, EV_WRITE);
    scoreboard_conn_watch(c->bev);
    worker_conn_activity(w, c, true);
    c->io_gen = w->sweep_gen;
    /* The deadline moves from rev to the protocol timer; rev stays added,
     * without a timeout. (Not before the first read: conn_start may be
     * pending on rev, and rev carries nothing yet.) */
    if (c->reading && conn_rev_reset(c, 0, true) < 0)
        return -1;
    if (left != 0 && conn_timer_set(c, left) < 0)
        return -1;
    if (!c->proxy_wait && p->unpark != NULL && p->unpark(c) < 0)
        return -1;
    return 0;
}

bool conn_park_idle(struct conn *c, uint32_t gen)
{
    const struct proto *p = c->w->cfg->proto;
    if (c->bev == NULL || c->io_gen == gen || !c->started || c->closing || c->proxy_wait ||
        c->writing || c->read_paused || !c->reading || p->park == NULL ||
        evbuffer_get_length(conn_input(c)) != 0 || evbuffer_get_length(conn_output(c)) != 0)
        return true;
    if (!p->park(c))
        return true;
    if (c->w->draining) {
        /* Idle for a whole sweep period at a boundary: closing loses nothing. */
        conn_free(c);
        return false;
    }
    unsigned left = conn_timeout_left(c, c->timer);
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    bufferevent_free(c->bev); /* does not close the socket */
    c->bev = NULL;
    worker_conn_activity(c->w, c, false);
    if (conn_rev_reset(c, left, true) < 0) {
        log_err("event_add failed for a parked connection");
        conn_free(c);
        return false;
    }
    return true;
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
    /* From here c owns fd; conn_free closes it. */
    c->w = w;
    c->fd = fd;
    c->accepted_ns = accepted_ns;
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, conn_readable_cb, c);
    worker_conn_added(w, c);
    c->sb_row = scoreboard_conn_open(fd, NULL, accepted_ns);
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
    /* conn_start runs from the loop, just after the current callback, so
     * the connection is never freed inside conn_open. rev is not added
     * yet: activating it does not register the socket with epoll. */
    if (!c->closing)
        event_active(&c->rev, EV_READ, 1);
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
    if (c->bev == NULL) {
        conn_free(c); /* parked means at a boundary: the protocol said so */
        return;
    }
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
    event_del(&c->rev);
    scoreboard_conn_close(c->sb_row);
    worker_conn_removed(c->w, c); /* before the bev goes: it counts active ones */
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    close(c->fd); /* the one place the socket is closed */
    c->fd = -1;
    free(c->proxied);
    free(c);
}
