/* engine: see engine.h.
 *
 * Ownership: each client's socket belongs to its bufferevent
 * (BEV_OPT_CLOSE_ON_FREE) from the moment bufferevent_socket_new succeeds,
 * and client_close is the one place it is freed; before that, client_connect
 * closes the fd itself on failure. Callbacks may free their own bufferevent
 * (libevent 2.1 defers the real release) but never touch it afterwards.
 *
 * Counting: every connection claimed from the budget counts once in
 * conn_attempts and ends as connected, a connect-phase error or cancelled;
 * every request counts once in requests and ends as ok, an error or
 * cancelled. Latency is recorded for every complete answer. */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "hist.h"
#include "log.h"
#include "req.h"
#include "stats.h"

#define RETRY_DELAY_US 10000 /* after a local set-up failure (EMFILE, no port) */
/* Counters go to the parent this often, so its once-a-second progress line
 * is never more than this stale. */
#define REPORT_INTERVAL_US 250000

enum client_state {
    CL_IDLE = 0,    /* no connection; waiting to start one */
    CL_CONNECTING,  /* connect in progress */
    CL_BUSY,        /* request sent, answer incomplete */
    CL_HELD,        /* hold: connected and idle */
    CL_DONE,        /* finished for this run */
};

struct engine;

struct client {
    struct engine *e;          /* the process's engine */
    struct bufferevent *bev;   /* owns the socket; NULL when none */
    struct event *kick;        /* request modes: deferred client_step */
    enum client_state state;   /* see enum client_state */
    uint64_t t0;               /* connect or request start, CLOCK_MONOTONIC ns */
    uint64_t nreq;             /* requests made on this connection */
    struct req_state rs;       /* progress through the current answer */
};

struct engine {
    const struct opts *o;      /* the run */
    int index;                 /* this process's number */
    int report_fd;             /* pipe to the parent (owned by the caller) */
    struct event_base *base;   /* this process's loop */
    struct req_ctx req;        /* the request, shared by all clients */
    struct client *clients;    /* nclients slots */
    size_t nclients;           /* request modes: concurrency; hold: connections */
    size_t active;             /* request modes: clients not yet CL_DONE */
    uint64_t conns_left;       /* connection budget (OPTS_UNLIMITED: none) */
    uint64_t reqs_left;        /* request budget (OPTS_UNLIMITED: none) */
    size_t hold_next;          /* hold: next client to connect */
    size_t hold_window;        /* hold: connects allowed in flight */
    size_t hold_inflight;      /* hold: connects in flight */
    struct timeval timeout;    /* --timeout for connect and idle I/O */
    unsigned next_source;      /* --sources: next address to bind */
    uint64_t start_ns;         /* when the run started */
    bool stopping;             /* engine_stop ran */
    struct stats st;           /* counters */
    struct hist latency;       /* per answer, ns */
    struct hist connect;       /* connect() to established, ns */
    struct event *deadline_ev; /* --duration (hold: armed once all connected) */
    struct event *progress_ev; /* every REPORT_INTERVAL_US: report to the parent */
    struct event *sig_ev[2];   /* SIGINT, SIGTERM */
};

static void client_step(struct client *cl);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timeval seconds_tv(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void count_err(struct engine *e, enum stats_err k) { e->st.err[k]++; }

/* ---- stopping -------------------------------------------------------- */

static void client_close(struct client *cl)
{
    if (cl->bev == NULL)
        return;
    if (cl->state != CL_CONNECTING)
        cl->e->st.open--;
    bufferevent_free(cl->bev); /* closes the socket */
    cl->bev = NULL;
}

/* Stop the run: cancel what is in flight, close everything, end the loop.
 * Safe to call from any callback, once or many times. */
static void engine_stop(struct engine *e, enum stats_stop why)
{
    if (e->stopping)
        return;
    e->stopping = true;
    e->st.stopped = why;
    e->st.elapsed_ns = now_ns() - e->start_ns;
    uint64_t held = 0;
    for (size_t i = 0; i < e->nclients; i++) {
        struct client *cl = &e->clients[i];
        if (cl->state == CL_CONNECTING || cl->state == CL_BUSY)
            e->st.cancelled++;
        if (cl->state == CL_HELD)
            held++;
        client_close(cl);
        cl->state = CL_DONE;
    }
    /* Hold reports what was still open at the end; the others end at 0. */
    e->st.open = held;
    event_base_loopexit(e->base, NULL);
}

static void client_finish(struct client *cl)
{
    struct engine *e = cl->e;
    client_close(cl);
    if (cl->state == CL_DONE)
        return;
    cl->state = CL_DONE;
    if (--e->active == 0)
        engine_stop(e, STATS_STOP_COUNT);
}

/* ---- connecting -------------------------------------------------------- */

static enum stats_err connect_err_kind(int err)
{
    switch (err) {
    case EADDRNOTAVAIL:
    case EADDRINUSE:
        return STATS_ERR_ADDR;
    case ETIMEDOUT:
        return STATS_ERR_CONNECT_TIMEOUT;
    default:
        return STATS_ERR_CONNECT;
    }
}

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

/* Start a connect for CL. Returns 0 when it is in progress, or -1 with the
 * error already counted (nothing left open). */
static int client_connect(struct client *cl)
{
    struct engine *e = cl->e;
    const struct opts *o = e->o;
    e->st.conn_attempts++;
    int fd = socket(o->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_err(e, STATS_ERR_SOCKET);
        return -1;
    }
    if (o->sources > 0) {
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(opts_source_addr((int)(e->next_source++ % (unsigned)o->sources)));
        /* Let connect pick the port per destination instead of bind
         * reserving one per address: more connections per source. */
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            count_err(e, connect_err_kind(errno) == STATS_ERR_ADDR ? STATS_ERR_ADDR
                                                                  : STATS_ERR_SOCKET);
            close(fd);
            return -1;
        }
    }
    cl->bev = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cl->bev == NULL) {
        count_err(e, STATS_ERR_SOCKET);
        close(fd);
        return -1;
    }
    /* From here the bufferevent owns fd. */
    bufferevent_setcb(cl->bev, client_read_cb, NULL, client_event_cb, cl);
    bufferevent_set_timeouts(cl->bev, &e->timeout, &e->timeout);
    cl->state = CL_CONNECTING;
    cl->nreq = 0;
    cl->t0 = now_ns();
    if (bufferevent_socket_connect(cl->bev, (struct sockaddr *)&o->target,
                                   (int)o->target_len) < 0) {
        /* Refusals arrive through the event callback; this is local. */
        count_err(e, connect_err_kind(errno));
        bufferevent_free(cl->bev);
        cl->bev = NULL;
        cl->state = CL_IDLE;
        return -1;
    }
    return 0;
}

static void hold_fill(struct engine *e);

/* A hold-mode connect finished (either way). */
static void hold_connect_done(struct engine *e)
{
    e->hold_inflight--;
    hold_fill(e);
}

/* Keep the connect window full; once every connect has finished, start
 * the hold clock (or stop at once when nothing is open to hold). */
static void hold_fill(struct engine *e)
{
    while (!e->stopping && e->hold_inflight < e->hold_window && e->hold_next < e->nclients) {
        struct client *cl = &e->clients[e->hold_next++];
        if (client_connect(cl) == 0)
            e->hold_inflight++;
        else
            cl->state = CL_DONE;
    }
    if (e->stopping || e->hold_inflight > 0 || e->hold_next < e->nclients)
        return;
    e->st.establish_ns = now_ns() - e->start_ns;
    if (e->st.open == 0)
        engine_stop(e, STATS_STOP_COUNT);
    else if (e->o->duration > 0) {
        struct timeval tv = seconds_tv(e->o->duration);
        event_add(e->deadline_ev, &tv);
    }
}

/* ---- requests ---------------------------------------------------------- */

static void client_send(struct client *cl)
{
    struct engine *e = cl->e;
    if (e->reqs_left != OPTS_UNLIMITED)
        e->reqs_left--;
    e->st.requests++;
    e->st.bytes_out += e->req.msg_len;
    cl->nreq++;
    cl->state = CL_BUSY;
    req_begin(&e->req, &cl->rs);
    cl->t0 = now_ns();
    /* The request bytes live as long as the engine: no copy. */
    if (evbuffer_add_reference(bufferevent_get_output(cl->bev), e->req.msg, e->req.msg_len,
                               NULL, NULL) < 0) {
        count_err(e, STATS_ERR_SOCKET);
        client_close(cl);
        cl->state = CL_IDLE;
    }
}

/* Schedule client_step after DELAY_US (0: next loop iteration). */
static void client_kick(struct client *cl, long delay_us)
{
    struct timeval tv = { delay_us / 1000000, delay_us % 1000000 };
    event_add(cl->kick, &tv);
}

/* Decide what CL does next: another request on its connection, a new
 * connection, or nothing (budget spent). */
static void client_step(struct client *cl)
{
    struct engine *e = cl->e;
    const struct opts *o = e->o;
    if (e->stopping || cl->state == CL_DONE)
        return;
    if (cl->bev != NULL && (o->conn_requests == 0 || cl->nreq < o->conn_requests) &&
        e->reqs_left > 0) {
        client_send(cl);
        if (cl->state == CL_BUSY)
            return;
    }
    client_close(cl);
    cl->state = CL_IDLE;
    if (e->conns_left == 0 || e->reqs_left == 0) {
        client_finish(cl);
        return;
    }
    if (e->conns_left != OPTS_UNLIMITED)
        e->conns_left--;
    if (client_connect(cl) < 0)
        client_kick(cl, RETRY_DELAY_US);
}

static void client_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_step(arg);
}

/* The current request ended with RC: count it and move on. */
static void client_answered(struct client *cl, enum req_rc rc)
{
    struct engine *e = cl->e;
    bool keep = true;
    if (rc == REQ_DONE || rc == REQ_STATUS) {
        hist_record(&e->latency, now_ns() - cl->t0);
        if (e->req.proto == OPTS_HTTP) {
            unsigned cls = cl->rs.status / 100;
            e->st.status[cls < 6 ? cls : 0]++;
            keep = cl->rs.keep_alive;
            if (!keep && (e->o->conn_requests == 0 || cl->nreq < e->o->conn_requests))
                e->st.server_closes++;
        }
    }
    switch (rc) {
    case REQ_DONE:
        e->st.ok++;
        break;
    case REQ_STATUS:
        count_err(e, STATS_ERR_HTTP_STATUS);
        break;
    case REQ_CLOSED:
        count_err(e, STATS_ERR_CLOSED);
        keep = false;
        break;
    case REQ_SHORT:
        count_err(e, STATS_ERR_SHORT_READ);
        keep = false;
        break;
    case REQ_BAD:
    case REQ_MORE:
        count_err(e, STATS_ERR_BAD_RESPONSE);
        keep = false;
        break;
    }
    cl->state = CL_IDLE;
    if (!keep)
        client_close(cl);
    client_step(cl);
}

/* ---- bufferevent callbacks --------------------------------------------- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (cl->state != CL_BUSY) {
        /* Hold (whoami greets, say) or stray bytes: count and drop. */
        cl->e->st.bytes_in += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    enum req_rc rc = req_feed(&cl->e->req, &cl->rs, in, &cl->e->st.bytes_in);
    if (rc != REQ_MORE)
        client_answered(cl, rc);
}

static void client_connected(struct client *cl)
{
    struct engine *e = cl->e;
    hist_record(&e->connect, now_ns() - cl->t0);
    e->st.connected++;
    e->st.open++;
    int one = 1;
    setsockopt(bufferevent_getfd(cl->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
    if (e->o->mode == OPTS_HOLD) {
        cl->state = CL_HELD;
        bufferevent_set_timeouts(cl->bev, NULL, NULL); /* idle is the point */
        hold_connect_done(e);
        return;
    }
    cl->state = CL_IDLE;
    client_step(cl);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    struct engine *e = cl->e;
    int err = EVUTIL_SOCKET_ERROR();
    (void)bev;
    switch (cl->state) {
    case CL_CONNECTING:
        if (what & BEV_EVENT_CONNECTED) {
            client_connected(cl);
            return;
        }
        count_err(e, (what & BEV_EVENT_TIMEOUT) ? STATS_ERR_CONNECT_TIMEOUT
                                                : connect_err_kind(err));
        client_close(cl);
        cl->state = CL_IDLE;
        if (e->o->mode == OPTS_HOLD) {
            cl->state = CL_DONE;
            hold_connect_done(e);
        } else {
            client_step(cl);
        }
        return;
    case CL_HELD:
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
            e->st.held_closed++;
            client_close(cl);
            cl->state = CL_DONE;
            if (e->st.open == 0 && e->hold_next == e->nclients && e->hold_inflight == 0)
                engine_stop(e, STATS_STOP_COUNT); /* nothing left to hold */
        }
        return;
    case CL_BUSY:
        if (what & BEV_EVENT_EOF) {
            /* Bytes that came with the FIN are still in the input. */
            struct evbuffer *in = bufferevent_get_input(bev);
            enum req_rc rc = evbuffer_get_length(in) > 0
                                 ? req_feed(&e->req, &cl->rs, in, &e->st.bytes_in)
                                 : REQ_MORE;
            if (rc == REQ_MORE)
                rc = req_eof(&e->req, &cl->rs);
            client_answered(cl, rc);
            return;
        }
        count_err(e, (what & BEV_EVENT_TIMEOUT) ? STATS_ERR_TIMEOUT : STATS_ERR_RESET);
        client_close(cl);
        cl->state = CL_IDLE;
        client_step(cl);
        return;
    case CL_IDLE:
    case CL_DONE:
        /* A connection between requests closed by the server. */
        client_close(cl);
        return;
    }
}

/* ---- timers, signals, reports ------------------------------------------ */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    engine_stop(arg, STATS_STOP_TIME);
}

static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    engine_stop(arg, STATS_STOP_SIGNAL);
}

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
    struct engine *e = arg;
    (void)fd;
    (void)what;
    e->st.elapsed_ns = now_ns() - e->start_ns;
    if (stats_send(e->report_fd, STATS_MSG_PROGRESS, &e->st, NULL, NULL) < 0) {
        /* Nobody to report to: finishing would be wasted load. */
        log_err("write(report pipe): %s", strerror(errno));
        engine_stop(e, STATS_STOP_SIGNAL);
    }
}

/* ---- set-up ------------------------------------------------------------ */

static int engine_setup(struct engine *e)
{
    const struct opts *o = e->o;
    int P = o->processes, i = e->index;
    e->timeout = seconds_tv(o->timeout);
    e->next_source = (unsigned)i;
    hist_init(&e->latency);
    hist_init(&e->connect);
    e->base = event_base_new();
    if (e->base == NULL) {
        log_err("event_base_new failed");
        return -1;
    }
    /* http asks the server to close when the connection carries one
     * request, so the server's close is expected, not a failure. */
    if (req_ctx_init(&e->req, o, o->conn_requests == 1) < 0) {
        log_err("malloc: %s", strerror(errno));
        return -1;
    }
    if (o->mode == OPTS_HOLD) {
        e->nclients = (size_t)opts_split(o->connections, P, i);
        e->hold_window = (size_t)opts_split((uint64_t)o->concurrency, P, i);
    } else {
        e->nclients = (size_t)opts_split((uint64_t)o->concurrency, P, i);
        e->conns_left = opts_split(o->connections, P, i);
        e->reqs_left = opts_split(o->requests, P, i);
    }
    e->clients = calloc(e->nclients ? e->nclients : 1, sizeof(*e->clients));
    if (e->clients == NULL) {
        log_err("calloc(%zu clients): %s", e->nclients, strerror(errno));
        return -1;
    }
    for (size_t k = 0; k < e->nclients; k++) {
        e->clients[k].e = e;
        if (o->mode != OPTS_HOLD) {
            e->clients[k].kick = evtimer_new(e->base, client_kick_cb, &e->clients[k]);
            if (e->clients[k].kick == NULL) {
                log_err("evtimer_new failed");
                return -1;
            }
        }
    }
    e->deadline_ev = evtimer_new(e->base, deadline_cb, e);
    e->progress_ev = event_new(e->base, -1, EV_PERSIST, progress_cb, e);
    e->sig_ev[0] = evsignal_new(e->base, SIGINT, signal_cb, e);
    e->sig_ev[1] = evsignal_new(e->base, SIGTERM, signal_cb, e);
    if (e->deadline_ev == NULL || e->progress_ev == NULL || e->sig_ev[0] == NULL ||
        e->sig_ev[1] == NULL) {
        log_err("event_new failed");
        return -1;
    }
    struct timeval every = { 0, REPORT_INTERVAL_US };
    if (event_add(e->progress_ev, &every) < 0 || event_add(e->sig_ev[0], NULL) < 0 ||
        event_add(e->sig_ev[1], NULL) < 0) {
        log_err("event_add failed");
        return -1;
    }
    return 0;
}

static void engine_free(struct engine *e)
{
    if (e->clients != NULL) {
        for (size_t k = 0; k < e->nclients; k++) {
            client_close(&e->clients[k]);
            if (e->clients[k].kick != NULL)
                event_free(e->clients[k].kick);
        }
        free(e->clients);
        e->clients = NULL;
    }
    struct event *evs[] = { e->deadline_ev, e->progress_ev, e->sig_ev[0], e->sig_ev[1] };
    for (size_t k = 0; k < sizeof(evs) / sizeof(evs[0]); k++)
        if (evs[k] != NULL)
            event_free(evs[k]);
    /* After the bufferevents: frees their deferred finalizers too. */
    if (e->base != NULL)
        event_base_free(e->base);
    e->base = NULL;
    req_ctx_free(&e->req);
}

int engine_run(const struct opts *o, int index, int report_fd)
{
    struct engine *e = calloc(1, sizeof(*e));
    int rc = -1;
    if (e == NULL) {
        log_err("calloc: %s", strerror(errno));
        return -1;
    }
    e->o = o;
    e->index = index;
    e->report_fd = report_fd;
    if (engine_setup(e) < 0)
        goto out;
    e->start_ns = now_ns();
    if (o->mode == OPTS_HOLD) {
        hold_fill(e);
    } else {
        if (o->duration > 0) {
            struct timeval tv = seconds_tv(o->duration);
            event_add(e->deadline_ev, &tv);
        }
        e->active = e->nclients;
        for (size_t k = 0; k < e->nclients; k++)
            client_kick(&e->clients[k], 0);
        if (e->nclients == 0)
            engine_stop(e, STATS_STOP_COUNT);
    }
    if (!e->stopping && event_base_dispatch(e->base) < 0) {
        log_err("event_base_dispatch failed");
        goto out;
    }
    if (!e->stopping)
        engine_stop(e, STATS_STOP_COUNT);
    if (stats_send(report_fd, STATS_MSG_FINAL, &e->st, &e->latency, &e->connect) < 0) {
        log_err("write(report pipe): %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    engine_free(e);
    free(e);
    return rc;
}
