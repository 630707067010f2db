/* worker: the event loop of one worker process.
 *
 * fd ownership in a worker:
 *   - the channel end `chan`: this worker, closed at exit;
 *   - each fd received in CTL_PASS: this worker from the moment recvmsg
 *     returns; conn_open hands it to the connection (struct conn), and on
 *     any failure it is closed here and reported to the master as refused.
 *
 * Memory: the sweep timer parks connections idle for a sweep period (see
 * conn.h), and once the connection count has fallen well below its peak
 * it hands the freed heap back with malloc_trim, so a worker that held
 * many connections returns to its idle size. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "scoreboard.h"

/* Trim the heap after the count falls by at least this many connections
 * and to at most half its peak, or after one sweep parks this many: a
 * worker returning from a crowd gives the memory back, one with a steady
 * load never pays for the trim. */
#define WORKER_TRIM_DROP 1024

static void worker_list_unlink(struct worker *w, struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        w->conns_tail = c->prev;
    c->prev = c->next = NULL;
}

/* Active connections at the head, parked ones at the tail: the sweep then
 * walks only the active ones. */
static void worker_list_insert(struct worker *w, struct conn *c, bool at_head)
{
    if (at_head) {
        c->prev = NULL;
        c->next = w->conns;
        if (w->conns != NULL)
            w->conns->prev = c;
        else
            w->conns_tail = c;
        w->conns = c;
    } else {
        c->next = NULL;
        c->prev = w->conns_tail;
        if (w->conns_tail != NULL)
            w->conns_tail->next = c;
        else
            w->conns = c;
        w->conns_tail = c;
    }
}

void worker_conn_added(struct worker *w, struct conn *c)
{
    worker_list_insert(w, c, false); /* connections start parked */
    w->nconns++;
    w->total++;
    if (w->nconns > w->trim_peak)
        w->trim_peak = w->nconns;
    if (w->nconns > w->loop_peak)
        w->loop_peak = w->nconns;
}

void worker_conn_activity(struct worker *w, struct conn *c, bool active)
{
    worker_list_unlink(w, c);
    worker_list_insert(w, c, active);
    if (active)
        w->nactive++;
    else
        w->nactive--;
}

static void worker_report_soon(struct worker *w);

static void worker_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    /* Active connections stamped with this generation had I/O since the
     * last sweep; the others have been idle at least one period. Parking
     * moves a connection to the tail, so walk only the count active now. */
    if (w->trim_next) {
        malloc_trim(0);
        w->trim_next = false;
    }
    uint32_t gen = w->sweep_gen;
    uint64_t n = w->nactive, before = w->nactive;
    struct conn *c = w->conns;
    while (n-- > 0 && c != NULL && c->bev != NULL) {
        struct conn *next = c->next;
        conn_park_idle(c, gen);
        c = next;
    }
    w->sweep_gen++;
    /* Parking many at once freed their buffers: give the pages back. */
    bool parked_many = before >= w->nactive + WORKER_TRIM_DROP;
    if (w->nconns == 0 && w->loop_peak >= WORKER_TRIM_DROP && w->lev == NULL &&
        !w->draining && !w->exit_when_idle) {
        /* Empty after a crowd: a new loop drops libevent's tables too
         * (worker_rebase), then trims. */
        w->rebase = true;
        event_base_loopbreak(w->base);
        return;
    }
    bool dropped = w->trim_peak >= w->nconns + WORKER_TRIM_DROP && w->nconns <= w->trim_peak / 2;
    if (!dropped && !parked_many)
        return;
    /* Next sweep: libevent frees a bufferevent from the loop after
     * bufferevent_free returns, so what was just released is not free yet. */
    w->trim_peak = w->nconns;
    w->trim_next = true;
}

/* At --max-conns the worker's own listener pauses, so new clients wait in
 * the backlog (or go to another worker) instead of being accepted and
 * closed; it resumes when a connection ends. */
static void worker_listener_update(struct worker *w)
{
    if (w->lev == NULL || w->draining)
        return;
    if (w->nconns >= (uint64_t)w->cfg->max_conns)
        evconnlistener_disable(w->lev);
    else
        evconnlistener_enable(w->lev);
}

static void worker_report_soon(struct worker *w)
{
    if (w->report_ev != NULL && !event_pending(w->report_ev, EV_TIMEOUT, NULL))
        event_active(w->report_ev, EV_TIMEOUT, 0);
}

void worker_conn_removed(struct worker *w, struct conn *c)
{
    worker_list_unlink(w, c);
    if (c->bev != NULL)
        w->nactive--;
    w->nconns--;
    w->closed_unreported++;
    worker_report_soon(w);
    worker_listener_update(w);
    if (w->nconns == 0 && (w->draining || w->exit_when_idle))
        event_base_loopexit(w->base, NULL);
}

/* Tell the master how many connections ended since the last report, once
 * per loop iteration rather than once per close. */
static void worker_report_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    if (w->chan < 0 || w->closed_unreported == 0)
        return;
    if (ctl_send(w->chan, CTL_CLOSED, w->closed_unreported, w->refused_unreported) < 0) {
        if (errno == EAGAIN) {
            /* Master is behind; counts accumulate and go with the next try. */
            struct timeval tv = { 0, 1000 };
            event_add(w->report_ev, &tv);
            return;
        }
        log_err("sendmsg(CTL_CLOSED): %s", strerror(errno));
        return;
    }
    w->closed_unreported = 0;
    w->refused_unreported = 0;
}

static void worker_refuse(struct worker *w, int fd)
{
    close(fd);
    w->closed_unreported++;
    w->refused_unreported++;
    worker_report_soon(w);
}

static void worker_start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    log_debug("draining %llu connections", (unsigned long long)w->nconns);
    if (w->lev != NULL) {
        evconnlistener_free(w->lev);
        w->lev = NULL;
    }
    if (w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv;
    tv.tv_sec = (time_t)w->cfg->drain_timeout;
    tv.tv_usec = (suseconds_t)((w->cfg->drain_timeout - (double)tv.tv_sec) * 1e6);
    event_add(w->drain_ev, &tv);
    /* Each connection closes now if it is at a boundary, or when it gets to one. */
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        conn_drain(c);
        c = next;
    }
}

static void worker_drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    log_info("drain timeout: closing %llu connections", (unsigned long long)w->nconns);
    event_base_loopexit(w->base, NULL);
}

/* A worker out of fds rejects every message until it recovers: say so once
 * a second with a count, not once per message. */
static void worker_log_rejected(struct worker *w, uint32_t lost, const char *why)
{
    uint64_t now = ctl_now_ns();
    w->rejected_msgs++;
    w->rejected_conns += lost;
    if (now - w->rejected_logged_ns < 1000000000ull && w->rejected_logged_ns != 0)
        return;
    log_err("rejected %llu control messages (%llu connections dropped), last: %s",
            (unsigned long long)w->rejected_msgs, (unsigned long long)w->rejected_conns, why);
    w->rejected_logged_ns = now;
    w->rejected_msgs = 0;
    w->rejected_conns = 0;
}

static void worker_chan_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)what;
    for (;;) {
        struct ctl_msg m;
        int fds[CTL_MAX_FDS];
        size_t nfds = 0;
        const char *why;
        uint32_t lost;
        int rc = ctl_recv(fd, &m, fds, &nfds, &why, &lost);
        if (rc == 0) {
            /* The master is gone: nobody will hand us more work. */
            log_warn("master closed the channel; draining");
            event_del(w->chan_ev);
            worker_start_drain(w);
            return;
        }
        if (rc < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == EPROTO) {
                /* fds already closed by ctl_recv; the channel itself is fine.
                 * Connections we could not take are reported as refused so
                 * the master's count stays true. */
                worker_log_rejected(w, lost, why);
                if (lost > 0) {
                    w->closed_unreported += lost;
                    w->refused_unreported += lost;
                    worker_report_soon(w);
                }
                continue;
            }
            log_err("recvmsg: %s", strerror(errno));
            return;
        }
        switch (m.hdr.type) {
        case CTL_PASS:
            for (size_t i = 0; i < nfds; i++) {
                scoreboard_handoff(m.stamp[i]);
                if (w->draining) {
                    worker_refuse(w, fds[i]);
                    continue;
                }
                if (conn_open(w, fds[i], m.stamp[i]) == NULL) {
                    /* conn_open closed the fd; count it as refused. */
                    w->closed_unreported++;
                    w->refused_unreported++;
                    worker_report_soon(w);
                }
            }
            break;
        case CTL_DRAIN:
            worker_start_drain(w);
            break;
        default:
            log_err("unexpected control message type %u from master", m.hdr.type);
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            break;
        }
    }
}

static void worker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    (void)what;
    if (sig == SIGQUIT) {
        event_base_loopbreak(w->base);
        return;
    }
    if (sig == SIGUSR1) {
        /* The master asks after log rotation. */
        if (log_reopen() < 0)
            log_err("reopening the log: %s", strerror(errno));
        return;
    }
    worker_start_drain(w);
}

static void worker_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                             struct sockaddr *sa, int salen, void *arg)
{
    struct worker *w = arg;
    (void)lev;
    (void)sa;
    (void)salen;
    if (w->draining || w->nconns >= (uint64_t)w->cfg->max_conns) {
        close(fd); /* not reached while the listener pauses at the cap */
        return;
    }
    conn_open(w, fd, ctl_now_ns());
    worker_listener_update(w);
}

static const int worker_sigs[4] = { SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };

/* The loop and every event of the worker itself (none of a connection's). */
static int worker_loop_new(struct worker *w)
{
    /* A fresh loop: nothing of the master's event_base is used after fork. */
    w->base = event_base_new();
    if (w->base == NULL) {
        log_err("event_base_new failed");
        return -1;
    }
    w->report_ev = evtimer_new(w->base, worker_report_cb, w);
    w->drain_ev = evtimer_new(w->base, worker_drain_deadline_cb, w);
    w->sweep_ev = event_new(w->base, -1, EV_PERSIST, worker_sweep_cb, w);
    struct timeval sweep_tv = { .tv_sec = CONN_PARK_MS / 1000,
                                .tv_usec = CONN_PARK_MS % 1000 * 1000 };
    if (w->report_ev == NULL || w->drain_ev == NULL || w->sweep_ev == NULL ||
        event_add(w->sweep_ev, &sweep_tv) < 0)
        return -1;
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < 4; i++) {
        w->sig_ev[i] = evsignal_new(w->base, worker_sigs[i], worker_signal_cb, w);
        if (w->sig_ev[i] == NULL || event_add(w->sig_ev[i], NULL) < 0)
            return -1;
        sigaddset(&mask, worker_sigs[i]);
    }
    /* A caller may block these until the handlers exist (model iterative
     * announces before this runs, worker_rebase while it rebuilds); one
     * sent meanwhile is delivered now. */
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    if (w->chan >= 0) {
        w->chan_ev = event_new(w->base, w->chan, EV_READ | EV_PERSIST, worker_chan_cb, w);
        if (w->chan_ev == NULL || event_add(w->chan_ev, NULL) < 0)
            return -1;
    }
    return 0;
}

static void worker_loop_free(struct worker *w)
{
    if (w->chan_ev != NULL)
        event_free(w->chan_ev);
    for (int i = 0; i < 4; i++)
        if (w->sig_ev[i] != NULL)
            event_free(w->sig_ev[i]);
    if (w->report_ev != NULL)
        event_free(w->report_ev);
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    if (w->sweep_ev != NULL)
        event_free(w->sweep_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    w->chan_ev = w->report_ev = w->drain_ev = w->sweep_ev = NULL;
    memset(w->sig_ev, 0, sizeof(w->sig_ev));
    w->base = NULL;
}

/* The worker emptied after a crowd (worker_sweep_cb asked, outside the
 * loop): libevent never shrinks its per-fd tables (an entry per fd number
 * ever watched, the timer heap, epoll's result array), and those entries,
 * interleaved with the freed connections, would pin their pages. A new
 * loop frees them all, and the trim then returns the heap. Signals wait
 * blocked while no handler exists. */
static int worker_rebase(struct worker *w)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < 4; i++)
        sigaddset(&mask, worker_sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    w->rebase = false;
    w->loop_peak = 0;
    w->trim_peak = 0;
    worker_loop_free(w);
    malloc_trim(0);
    if (worker_loop_new(w) < 0)
        return -1;
    worker_report_soon(w); /* a report the old loop had not sent yet */
    return 0;
}

static int worker_init(struct worker *w, const struct config *cfg, int slot, int chan)
{
    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->slot = slot;
    w->chan = chan;
    return worker_loop_new(w);
}

static void worker_fini(struct worker *w)
{
    while (w->conns != NULL)
        conn_free(w->conns);
    /* Closes counted above are moot: the master learns of our exit. */
    if (w->lev != NULL)
        evconnlistener_free(w->lev);
    worker_loop_free(w);
    if (w->chan >= 0)
        close(w->chan);
    memset(w, 0, sizeof(*w));
    w->chan = -1;
}

int worker_run(const struct config *cfg, int slot, int chan, int listen_fd)
{
    struct worker w;
    int status = 1;
    /* A dying process's fds are closed in ascending order. With the channel
     * below every client socket, the master's next hand-off fails (EPIPE;
     * the fds wait for another worker) before any of our clients sees its
     * reset and reconnects: none is handed to a worker already gone. */
    int low = chan > STDERR_FILENO ? fcntl(chan, F_DUPFD_CLOEXEC, STDERR_FILENO + 1) : -1;
    if (low >= 0 && low < chan) {
        close(chan);
        chan = low;
    } else if (low >= 0) {
        close(low);
    }
    if (worker_init(&w, cfg, slot, chan) < 0)
        goto out;
    scoreboard_worker_attach(slot);
    if (listen_fd >= 0) {
        w.lev = evconnlistener_new(w.base, worker_accept_cb, &w,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
        listen_fd = -1; /* owned by the listener now, even on failure below */
        if (w.lev == NULL) {
            log_err("evconnlistener_new failed");
            goto out;
        }
    }
    if (chan >= 0 && ctl_send(chan, CTL_READY, 0, 0) < 0) {
        log_err("sendmsg(CTL_READY): %s", strerror(errno));
        goto out;
    }
    for (;;) {
        if (event_base_dispatch(w.base) < 0) {
            log_err("event_base_dispatch failed");
            goto out;
        }
        if (!w.rebase)
            break;
        if (worker_rebase(&w) < 0) {
            log_err("rebuilding the event loop failed");
            goto out;
        }
    }
    status = 0;
out:
    if (listen_fd >= 0)
        close(listen_fd);
    worker_fini(&w);
    return status;
}

int worker_serve_one(const struct config *cfg, int slot, int fd)
{
    struct worker w;
    int status = 1;
    if (worker_init(&w, cfg, slot, -1) < 0) {
        close(fd);
        goto out;
    }
    w.exit_when_idle = true;
    if (conn_open(&w, fd, ctl_now_ns()) == NULL)
        goto out;
    if (w.nconns > 0 && event_base_dispatch(w.base) < 0)
        goto out;
    status = 0;
out:
    worker_fini(&w);
    return status;
}
