/* model_prefork: pre-forked workers that accept for themselves, supervised
 * by master.c like model pass (same spawn, respawn back-off, stop sequence
 * and channel for READY/DRAIN/CLOSED; the channel carries no fds here).
 *   accept     one listening socket, opened by the master before any fork;
 *              every worker registers its copy in its own event loop
 *              (Apache prefork, nginx without accept_mutex).
 *   reuseport  one SO_REUSEPORT socket per worker slot; the kernel spreads
 *              new connections over the group by a hash of the 4-tuple.
 * --max-conns applies per worker: a full worker stops accepting (worker.c)
 * and new clients go to another worker or wait in the backlog.
 *
 * Thundering herd (model accept). libevent 2.1's epoll backend builds the
 * epoll_event mask from EV_READ/EV_WRITE/EV_ET only, so EPOLLEXCLUSIVE
 * cannot be asked for through event_new or evconnlistener. We register the
 * shared socket in every worker and accept the herd: each new connection
 * wakes every idle worker's epoll_wait; level-triggered epoll re-polls the
 * socket before returning, so the losers mostly go back to sleep inside
 * the kernel and only a few see EAGAIN (evconnlistener ignores it). The
 * cost is a context switch per idle worker per connection, measured in
 * README.md ("Models"). Rejected alternatives:
 *   - EPOLLEXCLUSIVE on a private inner epoll fd that libevent watches:
 *     measured on Linux 6.x, every process still wakes, because an
 *     exclusive wake-up only counts when a thread sleeps on that inner fd
 *     itself, not when another epoll polls it;
 *   - an accept mutex (nginx accept_mutex): shared-memory lock plus
 *     enabling and disabling the listener, adds accept latency; nginx has
 *     it off by default since EPOLLEXCLUSIVE and reuseport exist;
 *   - blocking accept4 (wakes one sleeper): a worker blocked in accept4
 *     cannot serve its other connections.
 * The herd-free design is model reuseport.
 *
 * Where reuseport sockets are bound: in the master, before the first fork,
 * one per slot; a worker inherits only its own. Because the master keeps
 * its copy, the port stays reserved while a worker is respawned (no other
 * process can take it even if every worker dies), connections the kernel
 * already queued on a dead worker's socket wait there for its successor
 * instead of being reset, and --listen port 0 works: the first socket
 * learns the kernel's port and the others join it. Binding in each worker
 * after fork would reset that queue on every crash and leave the port
 * free while no worker runs. The price: while slot K is being respawned,
 * new connections hashed to its socket wait up to the respawn delay.
 *
 * fd ownership: the master owns its copy of every listening socket in
 * struct prefork, from open() until stop() or close(). Each worker is
 * forked holding copies; it keeps the one for its slot and its
 * evconnlistener owns that (LEV_OPT_CLOSE_ON_FREE).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "log.h"
#include "master_model.h"
#include "net.h"

/* The master's listening sockets (m->model_state). */
struct prefork {
    int *fds; /* owned here; -1 once closed */
    int nfds; /* 1 for accept, one per slot for reuseport */
};

static void prefork_set_port(struct addr_listen *a, int port)
{
    if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
}

static int prefork_open(struct master *m)
{
    const struct config *cfg = m->cfg;
    bool reuseport = cfg->model == MODEL_REUSEPORT;
    struct addr_listen where = cfg->listen;
    char err[512];
    struct prefork *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        log_err("out of memory");
        return -1;
    }
    m->model_state = p;
    p->nfds = reuseport ? cfg->workers : 1;
    p->fds = malloc((size_t)p->nfds * sizeof(*p->fds));
    if (p->fds == NULL) {
        p->nfds = 0;
        log_err("out of memory");
        return -1;
    }
    for (int i = 0; i < p->nfds; i++)
        p->fds[i] = -1;
    if (cfg->inherit_listen_fd >= 0 && reuseport) {
        log_err("binary upgrade: --model reuseport has a socket per worker; restart instead");
        return -1;
    }
    for (int i = 0; i < p->nfds; i++) {
        if (cfg->inherit_listen_fd >= 0)
            p->fds[i] = net_adopt_listener(cfg->inherit_listen_fd, err, sizeof(err));
        else
            p->fds[i] = net_listen(&where, cfg->backlog, reuseport ? NET_REUSEPORT : 0, err,
                                   sizeof(err));
        if (p->fds[i] < 0) {
            log_err("%s", err);
            return -1;
        }
        if (i == 0) {
            /* With port 0 the kernel picked one; the group joins it. */
            int port = addr_bound_port(p->fds[0]);
            if (port <= 0) {
                log_err("getsockname on the listening socket: %s", strerror(errno));
                return -1;
            }
            prefork_set_port(&where, port);
        }
    }
    m->listen_fd = p->fds[0];
    return 0;
}

static int prefork_worker_listen_fd(const struct master *m, const struct slot *s)
{
    const struct prefork *p = m->model_state;
    /* Slots [0, W) and, after a reload, [W, 2W) share the W sockets. */
    return p->fds[s->index % p->nfds];
}

static void prefork_update(struct master *m)
{
    (void)m; /* each worker pauses its own listener at --max-conns */
}

static void prefork_slot_writable(struct master *m, struct slot *s)
{
    /* Only CTL_DRAIN is ever waiting here: no fds go over the channel. */
    if (s->drain_pending && slot_alive(s))
        slot_send_drain(m, s);
}

static void prefork_slot_gone(struct master *m, struct slot *s)
{
    /* Nothing to re-place: connections queued on the listening socket stay
     * there (we hold it) for the other workers or this slot's successor. */
    (void)m;
    (void)s;
}

static void prefork_close_fds(struct master *m)
{
    struct prefork *p = m->model_state;
    if (p == NULL)
        return;
    for (int i = 0; i < p->nfds; i++) {
        if (p->fds[i] >= 0)
            close(p->fds[i]);
        p->fds[i] = -1;
    }
    m->listen_fd = -1;
}

static void prefork_stop(struct master *m)
{
    /* Workers close their copies when they drain; the port is free once
     * the last one has. */
    prefork_close_fds(m);
}

static void prefork_close(struct master *m)
{
    struct prefork *p = m->model_state;
    if (p == NULL)
        return;
    prefork_close_fds(m);
    free(p->fds);
    free(p);
    m->model_state = NULL;
}

const struct master_model model_prefork = {
    .open = prefork_open,
    .worker_listen_fd = prefork_worker_listen_fd,
    .update = prefork_update,
    .slot_writable = prefork_slot_writable,
    .slot_gone = prefork_slot_gone,
    .stop = prefork_stop,
    .close = prefork_close,
};
