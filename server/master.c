/* master: listener, hand-off, supervision and signals.
 *
 * fd ownership in the master:
 *   - the listening socket: the evconnlistener (LEV_OPT_CLOSE_ON_FREE);
 *   - an accepted fd: the master, from accept4 until ctl_send_pass succeeds,
 *     sitting meanwhile in its worker slot's queue. After a successful send
 *     the kernel holds the in-flight reference and the master closes its
 *     copy at once. If the worker dies first, queued fds are handed to
 *     another worker, or closed and counted when none can take them;
 *   - each slot's channel end `chan`: the master, closed when the worker
 *     exits. The worker's end is closed in the master right after fork.
 * Messages already sent but not yet read by a worker that dies are dropped
 * by the kernel with the worker's socket, which closes those connections;
 * they are counted as lost with that worker.
 */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "addr.h"
#include "admin.h"
#include "ctl.h"
#include "dispatch.h"
#include "child.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "scoreboard.h"
#include "worker.h"

enum slot_state { SLOT_EMPTY = 0, SLOT_STARTING, SLOT_RUNNING, SLOT_DRAINING };

/* The master's view of one worker. */
struct slot {
    int index;               /* worker=K */
    pid_t pid;               /* 0 when no process runs in this slot */
    int chan;                /* master's channel end, owned here; -1 when none */
    enum slot_state state;   /* lifecycle */
    struct event *chan_ev;   /* channel readable: reports from the worker */
    struct event *send_ev;   /* channel writable again after EAGAIN */
    struct event *respawn_ev;/* back-off before the next start */
    uint64_t live;           /* handed to the worker and not reported closed */
    uint64_t total;          /* connections handed to this slot, all lives */
    uint64_t restarts;       /* processes started after the first */
    uint64_t started_ns;     /* when the current process was forked */
    unsigned backoff_ms;     /* next respawn delay after a quick death */
    bool drain_pending;      /* CTL_DRAIN must follow the queued fds */
    int *q_fd;               /* accepted fds waiting to be sent (ring) */
    uint64_t *q_stamp;       /* their accept times */
    size_t q_head, q_len;    /* ring position and fill */
};

struct master {
    const struct config *cfg;
    struct event_base *base;
    struct evconnlistener *lev;   /* owns the listening socket */
    struct admin *admin;          /* --admin listener; NULL when off */
    int listen_fd;                /* same socket, for getsockname */
    struct slot *slots;
    int nslots;
    struct dispatch dispatch;
    uint64_t *load_scratch;       /* dispatch_pick inputs, nslots each */
    bool *elig_scratch;
    struct event *flush_ev;       /* send queued fds after an accept burst */
    struct event *pause_ev;       /* EMFILE back-off */
    struct event *stop_ev;        /* drain deadline */
    struct event *sig_ev[6];
    bool listening;               /* listener currently enabled */
    bool paused_fds;              /* paused after EMFILE/ENFILE */
    bool stopping;
    bool announced;               /* start-up line printed */
    int exit_status;
    /* counters */
    uint64_t accepted, handed, closed, refused, lost, emfile_pauses, full_pauses;
};

/* Reachable from a global so that a forked child, which never returns to
 * the master's frames, does not report the master's memory as leaked. */
static struct master *master_self;

static int slot_spawn(struct master *m, struct slot *s);
static void slot_flush(struct master *m, struct slot *s);
static void master_listener_update(struct master *m);
static void slot_send_cb(evutil_socket_t fd, short what, void *arg);

static bool slot_alive(const struct slot *s)
{
    return s->pid > 0 && s->chan >= 0;
}

static bool slot_eligible(const struct master *m, const struct slot *s)
{
    return slot_alive(s) && s->state != SLOT_DRAINING && !s->drain_pending &&
           s->q_len < (size_t)m->cfg->max_queued &&
           s->live + s->q_len < (uint64_t)m->cfg->max_conns;
}

static int master_pick(struct master *m)
{
    for (int i = 0; i < m->nslots; i++) {
        m->load_scratch[i] = m->slots[i].live + m->slots[i].q_len;
        m->elig_scratch[i] = slot_eligible(m, &m->slots[i]);
    }
    return dispatch_pick(&m->dispatch, m->load_scratch, m->elig_scratch, m->nslots);
}

static bool master_has_capacity(const struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        if (slot_eligible(m, &m->slots[i]))
            return true;
    return false;
}

/* Enable the listener exactly when there is somewhere to put a connection:
 * a full server leaves new clients in the kernel backlog, not dropped. */
static void master_listener_update(struct master *m)
{
    if (m->lev == NULL)
        return;
    bool want = !m->stopping && !m->paused_fds && m->announced && master_has_capacity(m);
    if (want == m->listening)
        return;
    if (want)
        evconnlistener_enable(m->lev);
    else {
        evconnlistener_disable(m->lev);
        if (!m->stopping && !m->paused_fds && m->announced) {
            m->full_pauses++;
            scoreboard_count(SCOREBOARD_FULL_PAUSES, 1);
            log_info("all workers at capacity: listener paused");
        }
    }
    m->listening = want;
    scoreboard_listener_paused(!want);
}

static void slot_queue_push(struct slot *s, int fd, uint64_t stamp, size_t cap)
{
    size_t at = (s->q_head + s->q_len) % cap;
    s->q_fd[at] = fd;
    s->q_stamp[at] = stamp;
    s->q_len++;
}

/* Give a queued fd to some live worker, or close it and count it. */
static void master_place(struct master *m, int fd, uint64_t stamp)
{
    int k = m->stopping ? -1 : master_pick(m);
    if (k < 0) {
        close(fd);
        m->refused++;
        scoreboard_count(SCOREBOARD_REFUSED, 1);
        return;
    }
    struct slot *s = &m->slots[k];
    slot_queue_push(s, fd, stamp, (size_t)m->cfg->max_queued);
    if (s->q_len >= (size_t)m->cfg->max_batch)
        slot_flush(m, s);
    else
        event_active(m->flush_ev, EV_TIMEOUT, 0);
}

static void slot_close_queue(struct master *m, struct slot *s, bool redispatch)
{
    size_t cap = (size_t)m->cfg->max_queued;
    while (s->q_len > 0) {
        int fd = s->q_fd[s->q_head];
        uint64_t stamp = s->q_stamp[s->q_head];
        s->q_head = (s->q_head + 1) % cap;
        s->q_len--;
        if (redispatch)
            master_place(m, fd, stamp);
        else {
            close(fd);
            m->refused++;
            scoreboard_count(SCOREBOARD_REFUSED, 1);
        }
    }
}

static void slot_send_drain(struct master *m, struct slot *s)
{
    (void)m;
    if (s->q_len > 0 || (s->send_ev != NULL && event_pending(s->send_ev, EV_WRITE, NULL))) {
        s->drain_pending = true; /* goes after the queued fds */
        return;
    }
    if (ctl_send(s->chan, CTL_DRAIN, 0, 0) < 0) {
        if (errno == EAGAIN) {
            s->drain_pending = true;
            event_add(s->send_ev, NULL);
            return;
        }
        log_err("sendmsg(CTL_DRAIN) to worker %d: %s", s->index, strerror(errno));
        kill(s->pid, SIGTERM); /* the worker drains on SIGTERM as well */
    }
    s->drain_pending = false;
    s->state = SLOT_DRAINING;
    scoreboard_slot_set(s->index, s->pid, SCOREBOARD_DRAINING);
}

/* Send queued fds in batches of up to --max-batch per message. */
static void slot_flush(struct master *m, struct slot *s)
{
    size_t cap = (size_t)m->cfg->max_queued;
    while (s->q_len > 0 && slot_alive(s)) {
        int fds[CTL_MAX_FDS];
        uint64_t stamps[CTL_MAX_FDS];
        size_t n = s->q_len < (size_t)m->cfg->max_batch ? s->q_len : (size_t)m->cfg->max_batch;
        for (size_t i = 0; i < n; i++) {
            fds[i] = s->q_fd[(s->q_head + i) % cap];
            stamps[i] = s->q_stamp[(s->q_head + i) % cap];
        }
        if (ctl_send_pass(s->chan, fds, stamps, n) < 0) {
            if (errno == EAGAIN || errno == ENOBUFS) {
                /* The worker is behind; resume when its queue has room. */
                event_add(s->send_ev, NULL);
                return;
            }
            if (errno == ETOOMANYREFS) {
                /* Too many fds in flight for this user: the channel is
                 * writable, so waiting for EV_WRITE would spin; retry soon. */
                struct timeval tv = { 0, 10000 };
                event_base_once(m->base, -1, EV_TIMEOUT, slot_send_cb, s, &tv);
                return;
            }
            /* Worker gone or channel broken: SIGCHLD will re-place the queue. */
            log_warn("sendmsg(CTL_PASS) to worker %d: %s", s->index, strerror(errno));
            return;
        }
        /* In flight: the kernel holds the reference, our copies go. */
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        s->q_head = (s->q_head + n) % cap;
        s->q_len -= n;
        s->live += n;
        s->total += n;
        m->handed += n;
        scoreboard_count(SCOREBOARD_HANDED, n);
    }
    if (s->q_len == 0 && s->drain_pending && slot_alive(s))
        slot_send_drain(m, s);
}

static void master_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].q_len > 0)
            slot_flush(m, &m->slots[i]);
    master_listener_update(m);
}

static void slot_send_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    (void)fd;
    (void)what;
    slot_flush(master_self, s);
    master_listener_update(master_self);
}

static void master_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                             struct sockaddr *sa, int salen, void *arg)
{
    struct master *m = arg;
    (void)lev;
    (void)sa;
    (void)salen;
    m->accepted++;
    scoreboard_count(SCOREBOARD_ACCEPTED, 1);
    master_place(m, fd, ctl_now_ns());
    if (!master_has_capacity(m))
        master_listener_update(m);
}

static void master_pause_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)what;
    m->paused_fds = false;
    master_listener_update(m);
}

static void master_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct master *m = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)lev;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of fds: the socket stays readable, so retrying at once would
         * spin. Pause, let connections close, try again. */
        if (!m->paused_fds) {
            m->emfile_pauses++;
            scoreboard_count(SCOREBOARD_EMFILE_PAUSES, 1);
            log_warn("accept4: %s; pausing the listener for %d ms", strerror(err),
                     m->cfg->accept_pause_ms);
        }
        m->paused_fds = true;
        master_listener_update(m);
        struct timeval tv = { m->cfg->accept_pause_ms / 1000,
                              (m->cfg->accept_pause_ms % 1000) * 1000 };
        event_add(m->pause_ev, &tv);
        return;
    }
    log_err("accept4: %s", strerror(err));
}

static void master_announce(struct master *m)
{
    char where[ADDR_PAIRLEN];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(m->listen_fd, (struct sockaddr *)&ss, &sl) < 0 ||
        addr_format_listen((struct sockaddr *)&ss, where, sizeof(where)) < 0)
        snprintf(where, sizeof(where), "{?, *:*}");
    admin_announce(m->admin); /* before the readiness line tests wait for */
    fprintf(stderr, "handoffd: listening %s model=%s workers=%d protocol=%s pid=%d\n", where,
            config_model_name(m->cfg->model), m->nslots, m->cfg->proto->name, (int)getpid());
    fflush(stderr);
    m->announced = true;
    master_listener_update(m);
}

static void slot_chan_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    struct master *m = master_self;
    (void)what;
    for (;;) {
        struct ctl_msg msg;
        int fds[CTL_MAX_FDS];
        size_t nfds = 0;
        const char *why;
        uint32_t lost;
        int rc = ctl_recv(fd, &msg, fds, &nfds, &why, &lost);
        if (rc == 0) {
            /* Worker exiting; SIGCHLD does the bookkeeping. */
            event_del(s->chan_ev);
            return;
        }
        if (rc < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            if (errno == EPROTO) {
                log_err("worker %d sent a bad control message: %s", s->index, why);
                continue;
            }
            log_err("recvmsg from worker %d: %s", s->index, strerror(errno));
            break;
        }
        switch (msg.hdr.type) {
        case CTL_READY:
            if (s->state == SLOT_STARTING)
                s->state = SLOT_RUNNING;
            scoreboard_slot_set(s->index, s->pid, s->state == SLOT_RUNNING ? SCOREBOARD_RUNNING
                                                                           : SCOREBOARD_DRAINING);
            break;
        case CTL_CLOSED: {
            uint64_t n = msg.hdr.count < s->live ? msg.hdr.count : s->live;
            s->live -= n;
            m->closed += msg.hdr.count;
            m->refused += msg.hdr.aux;
            scoreboard_count(SCOREBOARD_CLOSED, msg.hdr.count);
            scoreboard_count(SCOREBOARD_REFUSED, msg.hdr.aux);
            break;
        }
        default:
            log_err("worker %d sent unexpected message type %u", s->index, msg.hdr.type);
            break;
        }
    }
    if (!m->announced && !m->stopping) {
        bool all = true;
        for (int i = 0; i < m->nslots; i++)
            all = all && m->slots[i].state == SLOT_RUNNING;
        if (all)
            master_announce(m);
    }
    master_listener_update(m);
}

static void slot_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    (void)fd;
    (void)what;
    if (master_self->stopping || s->pid > 0)
        return;
    if (slot_spawn(master_self, s) < 0) {
        struct timeval tv = { 1, 0 };
        event_add(s->respawn_ev, &tv);
    }
}

static void slot_release(struct slot *s)
{
    if (s->chan_ev != NULL) {
        event_free(s->chan_ev);
        s->chan_ev = NULL;
    }
    if (s->send_ev != NULL) {
        event_free(s->send_ev);
        s->send_ev = NULL;
    }
    if (s->chan >= 0) {
        close(s->chan);
        s->chan = -1;
    }
}

static void master_maybe_finish(struct master *m)
{
    if (!m->stopping)
        return;
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].pid > 0)
            return;
    event_base_loopexit(m->base, NULL);
}

static void slot_exited(struct master *m, struct slot *s, int status)
{
    uint64_t now = ctl_now_ns();
    uint64_t lived_ms = (now - s->started_ns) / 1000000u;
    if (!m->stopping) {
        if (WIFSIGNALED(status))
            log_warn("worker %d (pid %d) killed by signal %d with %llu connections", s->index,
                     (int)s->pid, WTERMSIG(status), (unsigned long long)s->live);
        else
            log_warn("worker %d (pid %d) exited with status %d", s->index, (int)s->pid,
                     WEXITSTATUS(status));
    }
    m->lost += s->live;
    scoreboard_count(SCOREBOARD_LOST, s->live);
    s->live = 0;
    s->pid = 0;
    s->state = SLOT_EMPTY;
    scoreboard_slot_set(s->index, 0, SCOREBOARD_EMPTY);
    s->drain_pending = false;
    slot_release(s);
    /* Fds accepted for this worker but never sent go to another one. */
    slot_close_queue(m, s, !m->stopping);
    if (m->stopping) {
        master_maybe_finish(m);
        return;
    }
    /* Respawn at once after a worker that ran a while; back off after one
     * that died right after starting, so a crash loop does not spin. */
    unsigned delay = 0;
    if (lived_ms < 1000) {
        s->backoff_ms = s->backoff_ms == 0 ? 100 : s->backoff_ms * 2;
        if (s->backoff_ms > 10000)
            s->backoff_ms = 10000;
        delay = s->backoff_ms;
        log_warn("worker %d died %llu ms after start; respawning in %u ms", s->index,
                 (unsigned long long)lived_ms, delay);
    } else {
        s->backoff_ms = 0;
    }
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    event_add(s->respawn_ev, &tv);
    master_listener_update(m);
}

static void master_reap(struct master *m)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (int i = 0; i < m->nslots; i++) {
            if (m->slots[i].pid == pid) {
                slot_exited(m, &m->slots[i], status);
                break;
            }
        }
    }
}

static void master_kill_all(struct master *m, int sig)
{
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, sig);
}

static void master_stop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)what;
    log_warn("drain timeout: killing remaining workers");
    master_kill_all(m, SIGKILL);
}

static void master_stop(struct master *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    log_info("stopping: no new connections, draining workers (up to %g s)",
             m->cfg->drain_timeout);
    if (m->lev != NULL) {
        evconnlistener_free(m->lev); /* closes the listening socket */
        m->lev = NULL;
        m->listen_fd = -1;
    }
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        if (s->respawn_ev != NULL)
            event_del(s->respawn_ev);
        if (!slot_alive(s))
            continue;
        slot_flush(m, s);
        slot_send_drain(m, s);
    }
    /* Workers stop themselves at the drain timeout; the master's deadline,
     * a little later, is for a worker that does not. */
    double t = m->cfg->drain_timeout + 1.0;
    struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    event_add(m->stop_ev, &tv);
    master_maybe_finish(m);
}

static void master_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;
    (void)what;
    switch (sig) {
    case SIGCHLD:
        master_reap(m);
        break;
    case SIGTERM:
    case SIGINT:
        master_stop(m);
        break;
    case SIGQUIT:
        log_info("SIGQUIT: stopping now");
        m->stopping = true;
        master_kill_all(m, SIGKILL);
        for (int i = 0; i < m->nslots; i++) {
            if (m->slots[i].pid > 0)
                waitpid(m->slots[i].pid, NULL, 0);
            m->slots[i].pid = 0;
        }
        event_base_loopexit(m->base, NULL);
        break;
    default:
        break;
    }
}

/* Start a worker process in slot S with a fresh socketpair. */
static int slot_spawn(struct master *m, struct slot *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        log_err("socketpair: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_err("fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* Child: keep stdio, the log and our channel end; nothing else of
         * the master's (listener, other channels, queued client fds, the
         * master's epoll and signal pipe) survives. */
        char role[32];
        snprintf(role, sizeof(role), "worker %d", s->index);
        struct event_base *parent = m->base;
        m->base = NULL;
        if (child_detach(parent, &sv[1], 1, role) < 0)
            _exit(1);
        /* The child's main decision: its status is the worker's. */
        exit(worker_run(m->cfg, s->index, sv[1], -1));
    }
    close(sv[1]);
    s->chan = sv[0];
    s->pid = pid;
    s->state = SLOT_STARTING;
    scoreboard_slot_set(s->index, pid, SCOREBOARD_STARTING);
    s->started_ns = ctl_now_ns();
    s->chan_ev = event_new(m->base, s->chan, EV_READ | EV_PERSIST, slot_chan_cb, s);
    s->send_ev = event_new(m->base, s->chan, EV_WRITE, slot_send_cb, s);
    if (s->chan_ev == NULL || s->send_ev == NULL || event_add(s->chan_ev, NULL) < 0) {
        log_err("event_new for worker %d channel failed", s->index);
        kill(pid, SIGKILL); /* reaped and respawned through SIGCHLD */
        return 0;
    }
    log_debug("worker %d started, pid %d", s->index, (int)pid);
    return 0;
}

static void master_free(struct master *m)
{
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        slot_close_queue(m, s, false);
        slot_release(s);
        if (s->respawn_ev != NULL)
            event_free(s->respawn_ev);
        free(s->q_fd);
        free(s->q_stamp);
    }
    free(m->slots);
    free(m->load_scratch);
    free(m->elig_scratch);
    admin_free(m->admin);
    if (m->lev != NULL)
        evconnlistener_free(m->lev);
    for (size_t i = 0; i < sizeof(m->sig_ev) / sizeof(m->sig_ev[0]); i++)
        if (m->sig_ev[i] != NULL)
            event_free(m->sig_ev[i]);
    if (m->flush_ev != NULL)
        event_free(m->flush_ev);
    if (m->pause_ev != NULL)
        event_free(m->pause_ev);
    if (m->stop_ev != NULL)
        event_free(m->stop_ev);
    if (m->base != NULL)
        event_base_free(m->base);
    master_self = NULL;
}

int master_run(const struct config *cfg)
{
    struct master m;
    char err[512];
    int status = 1;
    memset(&m, 0, sizeof(m));
    master_self = &m;
    m.cfg = cfg;
    m.listen_fd = -1;
    m.nslots = cfg->workers;
    m.dispatch.mode = cfg->dispatch;
    m.dispatch.cursor = (unsigned)cfg->workers - 1;
    log_set_role("master");
    signal(SIGPIPE, SIG_IGN);

    m.base = event_base_new();
    if (m.base == NULL) {
        log_err("event_base_new failed");
        goto out;
    }
    int fd = net_listen(&cfg->listen, cfg->backlog, 0, err, sizeof(err));
    if (fd < 0) {
        log_err("%s", err);
        goto out;
    }
    /* Created disabled: accepting starts once every worker is ready. */
    m.lev = evconnlistener_new(m.base, master_accept_cb, &m,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                               0, fd);
    if (m.lev == NULL) {
        log_err("evconnlistener_new failed");
        close(fd);
        goto out;
    }
    m.listen_fd = fd;
    evconnlistener_set_error_cb(m.lev, master_accept_error_cb);

    m.slots = calloc((size_t)m.nslots, sizeof(*m.slots));
    m.load_scratch = calloc((size_t)m.nslots, sizeof(*m.load_scratch));
    m.elig_scratch = calloc((size_t)m.nslots, sizeof(*m.elig_scratch));
    m.flush_ev = evtimer_new(m.base, master_flush_cb, &m);
    m.pause_ev = evtimer_new(m.base, master_pause_end_cb, &m);
    m.stop_ev = evtimer_new(m.base, master_stop_deadline_cb, &m);
    if (m.slots == NULL || m.load_scratch == NULL || m.elig_scratch == NULL ||
        m.flush_ev == NULL || m.pause_ev == NULL || m.stop_ev == NULL) {
        log_err("out of memory");
        goto out;
    }
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        m.sig_ev[i] = evsignal_new(m.base, sigs[i], master_signal_cb, &m);
        if (m.sig_ev[i] == NULL || event_add(m.sig_ev[i], NULL) < 0) {
            log_err("evsignal_new(%d) failed", sigs[i]);
            goto out;
        }
    }
    for (int i = 0; i < m.nslots; i++) {
        struct slot *s = &m.slots[i];
        s->index = i;
        s->chan = -1;
        s->q_fd = calloc((size_t)cfg->max_queued, sizeof(int));
        s->q_stamp = calloc((size_t)cfg->max_queued, sizeof(uint64_t));
        s->respawn_ev = evtimer_new(m.base, slot_respawn_cb, s);
        if (s->q_fd == NULL || s->q_stamp == NULL || s->respawn_ev == NULL) {
            log_err("out of memory");
            goto out;
        }
    }
    if (admin_start(&m.admin, m.base, cfg, m.listen_fd) < 0)
        goto out;
    for (int i = 0; i < m.nslots; i++)
        if (slot_spawn(&m, &m.slots[i]) < 0)
            goto out;
    if (event_base_dispatch(m.base) < 0) {
        log_err("event_base_dispatch failed");
        goto out;
    }
    log_info("stopped: accepted %llu, handed %llu, closed %llu, refused %llu, lost %llu",
             (unsigned long long)m.accepted, (unsigned long long)m.handed,
             (unsigned long long)m.closed, (unsigned long long)m.refused,
             (unsigned long long)m.lost);
    status = 0;
out:
    if (status != 0 && m.slots != NULL) {
        m.stopping = true;
        master_kill_all(&m, SIGKILL);
        for (int i = 0; i < m.nslots; i++)
            if (m.slots[i].pid > 0)
                waitpid(m.slots[i].pid, NULL, 0);
    }
    master_free(&m);
    return status;
}
