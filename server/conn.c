/* conn: see conn.h. Ownership: conn_open takes the fd; from then on the
 * bufferevent owns it (BEV_OPT_CLOSE_ON_FREE) and conn_free is the single
 * place it is closed. Protocol callbacks never free the connection; they
 * return a proto_rc and this file acts on it after they return. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "log.h"
#include "proxy.h"
#include "scoreboard.h"
#include "worker.h"

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

struct evbuffer *conn_input(struct conn *c) { return bufferevent_get_input(c->bev); }
struct evbuffer *conn_output(struct conn *c) { return bufferevent_get_output(c->bev); }
int conn_worker_slot(const struct conn *c) { return c->w->slot; }

bool conn_output_full(struct conn *c)
{
    return evbuffer_get_length(conn_output(c)) >= c->w->cfg->max_output;
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

/* Act on a protocol's answer. Returns false when the connection is gone. */
static bool conn_apply(struct conn *c, enum proto_rc rc)
{
    if (rc == PROTO_ABORT) {
        conn_free(c);
        return false;
    }
    if (rc == PROTO_CLOSE && !c->closing) {
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ);
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
     * bound. Stop reading until the write callback sees the queue drain. */
    if (conn_output_full(c)) {
        if (!c->read_paused) {
            c->read_paused = true;
            bufferevent_disable(c->bev, EV_READ);
        }
    } else if (c->read_paused) {
        c->read_paused = false;
        bufferevent_enable(c->bev, EV_READ);
    }
    return true;
}

/* --proxy-protocol: take the header off the front of the input, keep its
 * addresses, then start the protocol as if the connection had just come. */
static void conn_proxy_read(struct conn *c)
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
        return;
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
        return;
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
        return;
    if (!c->closing && !c->read_paused && evbuffer_get_length(in) > 0)
        conn_apply(c, p->read(c));
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->proxy_wait) {
        conn_proxy_read(c);
        return;
    }
    if (c->closing) {
        /* Input after we decided to close is not going to be answered. */
        evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
        return;
    }
    conn_apply(c, c->w->cfg->proto->read(c));
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    const struct proto *p = c->w->cfg->proto;
    enum proto_rc rc = PROTO_OK;
    if (c->proxy_wait)
        return; /* nothing written yet; the protocol is not open */
    if (!c->closing && p->write != NULL)
        rc = p->write(c);
    if (!conn_apply(c, rc))
        return;
    /* Input that arrived while reading was paused is still waiting. */
    if (!c->closing && !c->read_paused && evbuffer_get_length(conn_input(c)) > 0)
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
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, w->cfg->max_output / 2, 0);
    bufferevent_setwatermark(c->bev, EV_READ, 0, w->cfg->max_output);
    worker_conn_added(w, c);
    c->sb_row = scoreboard_conn_open(fd, c->bev, accepted_ns);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
        log_err("bufferevent_enable failed");
        conn_free(c);
        return NULL;
    }
    if (w->cfg->proxy_protocol) {
        /* The protocol opens once the header is in (conn_proxy_read); the
         * timer is the header's deadline. */
        c->proxy_wait = true;
        if (conn_timer_set(c, (unsigned)(w->cfg->proxy_timeout * 1000 + 0.5)) < 0) {
            log_err("evtimer_new failed");
            conn_free(c);
            return NULL;
        }
        return c;
    }
    if (p->open != NULL && !conn_apply(c, p->open(c)))
        return NULL;
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
    scoreboard_conn_close(c->sb_row);
    bufferevent_free(c->bev); /* closes the socket */
    c->bev = NULL;
    worker_conn_removed(c->w, c);
    free(c->proxied);
    free(c);
}
