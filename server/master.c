/* master: supervision of the pre-forked workers and signals, shared by the
 * models pass, accept and reuseport. Who accepts is the model's business
 * (m->model: model_pass.c or model_prefork.c, see master_model.h).
 *
 * fd ownership in the master:
 *   - listening sockets and accepted fds: the model (see its file);
 *   - each slot's channel end `chan`: the master, closed when the worker
 *     exits. The worker's end is closed in the master right after fork.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "ctl.h"
#include "fdutil.h"
#include "net.h"
#include "child.h"
#include "log.h"
#include "master_model.h"
#include "model.h"
#include "notify.h"
#include "priv.h"
#include "scoreboard.h"
#include "worker.h"

/* Reachable from a global so that a forked child, which never returns to
 * the master's frames, does not report the master's memory as leaked. */
static struct master *master_self;

static int slot_spawn(struct master *m, struct slot *s);

bool slot_alive(const struct slot *s)
{
    return s->pid > 0 && s->chan >= 0;
}

void slot_send_drain(struct master *m, struct slot *s)
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

static void master_announce(struct master *m)
{
    admin_announce(m->admin); /* before the readiness line tests wait for */
    model_announce(m->cfg, m->listen_fd, m->nactive);
    if (m->cfg->ready_fd >= 0) {
        /* We were started by a binary upgrade: the old master hands over. */
        if (write(m->cfg->ready_fd, "R", 1) != 1)
            log_err("telling the old master we are ready: %s", strerror(errno));
        close(m->cfg->ready_fd);
        m->cfg_mut->ready_fd = -1;
    }
    notify_ready();
    m->announced = true;
    m->model->update(m);
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
            scoreboard_slot_set(s->index, s->pid,
                                s->state == SLOT_RUNNING ? SCOREBOARD_RUNNING
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
    if ((!m->announced || m->reloading) && !m->stopping) {
        bool all = true;
        for (int i = 0; i < m->nslots; i++)
            all = all && (!m->slots[i].active || m->slots[i].state == SLOT_RUNNING);
        if (all && !m->announced)
            master_announce(m);
        else if (all) {
            m->reloading = false;
            log_info("reload complete: %d workers of the new generation running", m->nactive);
            notify_ready();
        }
    }
    m->model->update(m);
}

/* The channel has room again: queued fds or a CTL_DRAIN can go. */
void slot_send_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    (void)fd;
    (void)what;
    master_self->model->slot_writable(master_self, s);
}

/* Respawn timer of an active slot; drain deadline of a retired one. */
static void slot_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    (void)fd;
    (void)what;
    if (s->retired) {
        if (s->pid > 0) {
            log_warn("worker %d (pid %d) still draining after %g s: killing it", s->index,
                     (int)s->pid, master_self->cfg->drain_timeout);
            kill(s->pid, SIGKILL);
        }
        return;
    }
    if (master_self->stopping || s->pid > 0 || !s->active)
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
    bool retired = s->retired;
    if (retired)
        log_info("worker %d (pid %d) of the previous generation finished draining", s->index,
                 (int)s->pid);
    else if (!m->stopping) {
        if (WIFSIGNALED(status))
            log_warn("worker %d (pid %d) killed by signal %d with %llu connections", s->index,
                     (int)s->pid, WTERMSIG(status), (unsigned long long)s->live);
        else
            log_warn("worker %d (pid %d) exited with status %d", s->index, (int)s->pid,
                     WEXITSTATUS(status));
    }
    m->lost += s->live;
    scoreboard_count(SCOREBOARD_LOST, s->live);
    scoreboard_slot_set(s->index, 0, SCOREBOARD_EMPTY);
    s->live = 0;
    s->pid = 0;
    s->state = SLOT_EMPTY;
    s->drain_pending = false;
    slot_release(s);
    s->retired = false;
    if (s->respawn_ev != NULL)
        event_del(s->respawn_ev);
    m->model->slot_gone(m, s);
    if (m->stopping) {
        master_maybe_finish(m);
        return;
    }
    if (retired || !s->active) {
        m->model->update(m);
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
    m->model->update(m);
}

static void master_reap(struct master *m)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (pid == m->upgrade_pid) {
            /* The new master died before it was ready (the pipe says so too). */
            m->upgrade_pid = 0;
            continue;
        }
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
    notify_stopping();
    log_info("stopping: no new connections, draining workers (up to %g s)",
             m->cfg->drain_timeout);
    m->model->stop(m);
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        if (s->respawn_ev != NULL)
            event_del(s->respawn_ev);
        if (!slot_alive(s))
            continue;
        slot_send_drain(m, s);
    }
    /* Workers stop themselves at the drain timeout; the master's deadline,
     * a little later, is for a worker that does not. */
    double t = m->cfg->drain_timeout + 1.0;
    struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    event_add(m->stop_ev, &tv);
    master_maybe_finish(m);
}

/* SIGHUP: re-read the configuration and replace every worker with a new
 * generation while the listening socket stays open, so no client is
 * refused. The old workers are told to drain: they take no new
 * connections, finish what they have and exit (killed after
 * --drain-timeout). A configuration that fails to parse, or asks for what
 * only a restart can change, leaves everything as it was. */
static void master_reload(struct master *m)
{
    char err[512];
    struct config next;
    if (m->stopping)
        return;
    notify_reloading();
    log_info("SIGHUP: reloading%s%s", m->cfg->config_file[0] ? " " : "", m->cfg->config_file);
    if (config_reload(m->cfg, &next, err, sizeof(err)) != CONFIG_OK) {
        log_err("reload failed, keeping the current workers: %s", err);
        notify_ready();
        return;
    }
    if (next.max_queued != m->cfg->max_queued) {
        log_err("reload failed, keeping the current workers: --max-queued changed: that "
                "needs a restart");
        notify_ready();
        return;
    }
    /* The new generation needs free slots: ones whose process (of the
     * generation before last) has exited. */
    int nfree = 0;
    for (int i = 0; i < m->nslots; i++)
        if (!m->slots[i].active && m->slots[i].pid == 0)
            nfree++;
    if (next.workers > nfree) {
        log_err("reload failed, keeping the current workers: %d workers asked for, %d slots "
                "free (at most %d; workers of an earlier reload still draining?)",
                next.workers, nfree, m->nslots / 2);
        notify_ready();
        return;
    }
    *m->cfg_mut = next;
    log_set_level((enum log_level)next.log_level);
    admin_update(m->admin, m->cfg);
    /* Retire the current generation... */
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        if (!s->active)
            continue;
        s->active = false;
        event_del(s->respawn_ev);
        if (!slot_alive(s))
            continue;
        s->retired = true;
        slot_send_drain(m, s);
        double t = m->cfg->drain_timeout + 1.0;
        struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
        event_add(s->respawn_ev, &tv);
    }
    /* ...and start the next one in free slots. */
    m->nactive = 0;
    for (int i = 0; i < m->nslots && m->nactive < next.workers; i++) {
        struct slot *s = &m->slots[i];
        if (s->active || s->pid != 0)
            continue;
        s->active = true;
        s->backoff_ms = 0;
        m->nactive++;
        if (slot_spawn(m, s) < 0) {
            struct timeval tv = { 1, 0 };
            event_add(s->respawn_ev, &tv);
        }
    }
    m->reloading = true;
    m->model->update(m);
}

static void master_upgrade_end(struct master *m)
{
    if (m->upgrade_ev != NULL) {
        event_free(m->upgrade_ev);
        m->upgrade_ev = NULL;
    }
    if (m->upgrade_fd >= 0) {
        close(m->upgrade_fd);
        m->upgrade_fd = -1;
    }
}

/* The new master wrote "R" (ready) or closed the pipe (it died first). */
static void master_upgrade_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    char c;
    (void)what;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    pid_t pid = m->upgrade_pid;
    master_upgrade_end(m);
    if (n == 1 && c == 'R') {
        log_info("binary upgrade: new master (pid %d) is ready; this one drains and exits",
                 (int)pid);
        m->upgrade_pid = 0; /* no longer ours to watch */
        master_stop(m);
        return;
    }
    log_err("binary upgrade failed: the new master (pid %d) exited before it was ready; "
            "this one keeps serving", (int)pid);
}

/* SIGUSR2 (nginx style): exec a new handoffd binary that inherits the
 * listening and admin sockets through the environment; both masters accept
 * until the new one reports ready, then this one drains and exits. */
static void master_upgrade(struct master *m)
{
    int ready[2];
    if (m->stopping || m->upgrade_pid > 0 || m->upgrade_fd >= 0) {
        log_warn("SIGUSR2: a binary upgrade or a stop is already under way");
        return;
    }
    if (m->cfg->model == MODEL_REUSEPORT) {
        log_err("SIGUSR2: --model reuseport has a socket per worker; restart instead");
        return;
    }
    if (pipe2(ready, O_CLOEXEC) < 0) {
        log_err("SIGUSR2: pipe2: %s", strerror(errno));
        return;
    }
    int admin_fd = admin_listen_fd(m->admin);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_err("SIGUSR2: fork: %s", strerror(errno));
        close(ready[0]);
        close(ready[1]);
        return;
    }
    if (pid == 0) {
        /* Only stdio, the sockets and the pipe's write end cross the exec. */
        char v[3][16];
        int keep[] = { 0, 1, 2, m->listen_fd, admin_fd, ready[1] };
        if (fdutil_close_except(keep, sizeof(keep) / sizeof(keep[0])) < 0 || net_set_cloexec(m->listen_fd, 0) < 0 ||
            net_set_cloexec(ready[1], 0) < 0 || (admin_fd >= 0 && net_set_cloexec(admin_fd, 0) < 0))
            _exit(127);
        snprintf(v[0], sizeof(v[0]), "%d", m->listen_fd);
        snprintf(v[1], sizeof(v[1]), "%d", admin_fd);
        snprintf(v[2], sizeof(v[2]), "%d", ready[1]);
        setenv("HANDOFF_LISTEN_FD", v[0], 1);
        if (admin_fd >= 0)
            setenv("HANDOFF_ADMIN_FD", v[1], 1);
        setenv("HANDOFF_READY_FD", v[2], 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* /proc/self/exe: the binary now at our path, even if ours was
         * replaced on disk, which is the point of an upgrade. */
        execv("/proc/self/exe", m->cfg->argv);
        log_err("SIGUSR2: execv: %s", strerror(errno));
        _exit(127);
    }
    close(ready[1]);
    m->upgrade_pid = pid;
    m->upgrade_fd = ready[0];
    m->upgrade_ev = event_new(m->base, ready[0], EV_READ | EV_PERSIST, master_upgrade_cb, m);
    if (m->upgrade_ev == NULL || event_add(m->upgrade_ev, NULL) < 0) {
        log_err("SIGUSR2: event_new failed; the new master is on its own");
        master_upgrade_end(m);
        return;
    }
    log_info("SIGUSR2: started new master pid %d; waiting for it to be ready", (int)pid);
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
    case SIGHUP:
        master_reload(m); /* READY=1 goes when the new workers are up */
        break;
    case SIGUSR2:
        master_upgrade(m);
        break;
    case SIGUSR1:
        /* Log rotation: reopen ours, and have every worker reopen its own. */
        if (log_reopen() < 0)
            log_err("reopening the log: %s", strerror(errno));
        else
            log_info("SIGUSR1: log reopened");
        master_kill_all(m, SIGUSR1);
        break;
    case SIGQUIT:
        notify_stopping();
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
        /* Child: keep stdio, the log, our channel end and the socket we
         * accept on, if the model has us accept; nothing else of the
         * master's (its listener, other channels, queued client fds, the
         * master's epoll and signal pipe) survives. */
        char role[32];
        snprintf(role, sizeof(role), "worker %d", s->index);
        int keep[2] = { sv[1], m->model->worker_listen_fd(m, s) };
        struct event_base *parent = m->base;
        m->base = NULL;
        if (child_detach(parent, keep, 2, role) < 0 || child_drop_privileges(m->cfg) < 0)
            _exit(1);
        /* The child's main decision: its status is the worker's. */
        exit(worker_run(m->cfg, s->index, keep[0], keep[1]));
    }
    close(sv[1]);
    s->chan = sv[0];
    s->pid = pid;
    s->state = SLOT_STARTING;
    s->started_ns = ctl_now_ns();
    scoreboard_slot_set(s->index, pid, SCOREBOARD_STARTING);
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
    if (m->model != NULL && m->slots != NULL)
        m->model->close(m);
    for (int i = 0; i < m->nslots && m->slots != NULL; i++) {
        struct slot *s = &m->slots[i];
        slot_release(s);
        if (s->respawn_ev != NULL)
            event_free(s->respawn_ev);
    }
    free(m->slots);
    for (size_t i = 0; i < sizeof(m->sig_ev) / sizeof(m->sig_ev[0]); i++)
        if (m->sig_ev[i] != NULL)
            event_free(m->sig_ev[i]);
    if (m->stop_ev != NULL)
        event_free(m->stop_ev);
    master_upgrade_end(m);
    admin_free(m->admin);
    m->admin = NULL;
    if (m->base != NULL)
        event_base_free(m->base);
    master_self = NULL;
}

int master_run(struct config *cfg)
{
    struct master m;
    int status = 1;
    memset(&m, 0, sizeof(m));
    master_self = &m;
    m.cfg = cfg;
    m.cfg_mut = cfg;
    m.upgrade_fd = -1;
    m.model = cfg->model == MODEL_PASS ? &model_pass : &model_prefork;
    m.listen_fd = -1;
    /* Room for a second generation while the first drains (SIGHUP). */
    m.nslots = 2 * cfg->workers;
    m.nactive = cfg->workers;
    log_set_role("master");
    signal(SIGPIPE, SIG_IGN);
    long fit = config_conn_capacity();
    if (fit >= 0 && cfg->max_conns > fit)
        /* Each worker has its own fd table, so the total scales with
         * --workers; one worker past its limit fails accepts with EMFILE. */
        log_warn("--max-conns %d does not fit: RLIMIT_NOFILE leaves each worker room for %ld "
                 "connections; raise the limit (ulimit -n) or add --workers",
                 cfg->max_conns, fit);

    /* Model pass holds fds back for --pass-delay-us, a fraction of a
     * millisecond: epoll_wait's own timeout counts whole milliseconds, so
     * the loop's timers run on a timerfd instead. */
    struct event_config *ecfg = event_config_new();
    if (ecfg != NULL && cfg->model == MODEL_PASS)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    m.base = ecfg != NULL ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg != NULL)
        event_config_free(ecfg);
    if (m.base == NULL) {
        log_err("event_base_new failed");
        goto out;
    }
    m.slots = calloc((size_t)m.nslots, sizeof(*m.slots));
    m.stop_ev = evtimer_new(m.base, master_stop_deadline_cb, &m);
    if (m.slots == NULL || m.stop_ev == NULL) {
        log_err("out of memory");
        goto out;
    }
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
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
        s->respawn_ev = evtimer_new(m.base, slot_respawn_cb, s);
        if (s->respawn_ev == NULL) {
            log_err("out of memory");
            goto out;
        }
    }
    if (m.model->open(&m) < 0)
        goto out;
    if (admin_start(&m.admin, m.base, cfg, m.listen_fd, m.nslots) < 0)
        goto out;
    if (cfg->user[0] != '\0' && geteuid() == 0) {
        /* Sockets are bound: what is left of root is starting and
         * signalling workers that run as --user. */
        char err[256];
        if (priv_limit_master(err, sizeof(err)) < 0) {
            log_err("limiting the master's privileges: %s", err);
            goto out;
        }
    }
    for (int i = 0; i < m.nactive; i++) {
        m.slots[i].active = true;
        if (slot_spawn(&m, &m.slots[i]) < 0)
            goto out;
    }
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
