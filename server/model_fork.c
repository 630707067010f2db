/* model_fork: the classic concurrent server of UNP §2.10. The parent
 * accepts and forks one child per connection; the child detaches from
 * everything of the parent's (child_detach keeps only stdio, the log and
 * the connection), serves that one connection through the same connection
 * layer and protocol as every other model (worker_serve_one, a small event
 * loop of its own) and exits. whoami shows worker=K, the child's sequence
 * number (1, 2, 3, ...), and the child's pid. The start-up line says
 * workers=0: nothing is pre-forked; the limit is --max-children.
 *
 * The parent reaps on SIGCHLD with a waitpid(WNOHANG) loop, so no child
 * stays a zombie, and caps live children at --max-children: at the cap it
 * disables the listener until a child exits, so new clients wait in the
 * kernel backlog rather than being refused. A failed fork closes that one
 * connection and pauses accepting for --accept-pause-ms, as EMFILE does.
 *
 * Stop: SIGTERM/SIGINT close the listening socket and send SIGTERM to every
 * child, which finishes its connection at a protocol boundary or at
 * --drain-timeout; the parent SIGKILLs stragglers a second later and exits
 * 0 once all are reaped. SIGQUIT kills the children at once. A child that
 * gets SIGTERM between fork and setting up its event loop dies without
 * draining its just-accepted connection.
 *
 * fd ownership: the listening socket belongs to the evconnlistener
 * (LEV_OPT_CLOSE_ON_FREE). An accepted fd belongs to the parent only until
 * fork returns: the parent closes its copy at once and keeps no fd of any
 * child; the child's worker owns it from then on.
 */
#include "model.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "child.h"
#include "log.h"
#include "net.h"
#include "notify.h"
#include "worker.h"

/* The parent of model fork. */
struct fork_server {
    const struct config *cfg;
    struct event_base *base;
    struct evconnlistener *lev; /* owns the listening socket; NULL once stopping */
    int listen_fd;              /* same socket, for the start-up line */
    pid_t *pids;                /* live children, unordered, --max-children room */
    int nlive;                  /* entries of pids in use */
    int seq;                    /* worker=K of the last child forked */
    struct event *sig_ev[6];    /* SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 */
    struct event *pause_ev;     /* end of an accept pause */
    struct event *stop_ev;      /* drain deadline */
    bool listening;             /* listener currently enabled */
    bool paused;                /* after EMFILE/ENFILE or a failed fork */
    bool stopping;
    uint64_t forked, fork_failed, killed; /* counters for the stop line */
};

/* Reachable from a global so that a child, which never returns to the
 * parent's frames, does not report the parent's memory as leaked. */
static struct fork_server *fork_self;

/* Accept exactly when a child may be started. */
static void fork_listener_update(struct fork_server *f)
{
    if (f->lev == NULL)
        return;
    bool want = !f->stopping && !f->paused && f->nlive < f->cfg->max_children;
    if (want == f->listening)
        return;
    if (want)
        evconnlistener_enable(f->lev);
    else
        evconnlistener_disable(f->lev);
    if (!want && !f->paused)
        log_debug("%d children: at --max-children, listener paused", f->nlive);
    f->listening = want;
}

static void fork_pause(struct fork_server *f, const char *what, int err)
{
    if (!f->paused)
        log_warn("%s: %s; pausing the listener for %d ms", what, strerror(err),
                 f->cfg->accept_pause_ms);
    f->paused = true;
    fork_listener_update(f);
    struct timeval tv = { f->cfg->accept_pause_ms / 1000,
                          (f->cfg->accept_pause_ms % 1000) * 1000 };
    event_add(f->pause_ev, &tv);
}

static void fork_pause_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fork_server *f = arg;
    (void)fd;
    (void)what;
    f->paused = false;
    fork_listener_update(f);
}

static void fork_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                           struct sockaddr *sa, int salen, void *arg)
{
    struct fork_server *f = arg;
    (void)lev;
    (void)sa;
    (void)salen;
    int seq = f->seq == INT_MAX ? 1 : f->seq + 1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(fd); /* the client sees the connection closed */
        f->fork_failed++;
        fork_pause(f, "fork", err);
        return;
    }
    if (pid == 0) {
        char role[32];
        snprintf(role, sizeof(role), "child %d", seq);
        struct event_base *parent = f->base;
        f->base = NULL;
        if (child_detach(parent, &fd, 1, role) < 0 || child_drop_privileges(f->cfg) < 0)
            _exit(1);
        /* The child's main decision: its status is the connection's. */
        exit(worker_serve_one(f->cfg, seq, fd));
    }
    close(fd); /* the child's now */
    f->seq = seq;
    f->forked++;
    f->pids[f->nlive++] = pid;
    log_debug("child %d (pid %d) started, %d live", seq, (int)pid, f->nlive);
    fork_listener_update(f);
}

static void fork_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct fork_server *f = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)lev;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* The socket stays readable: retrying at once would spin. */
        fork_pause(f, "accept4", err);
        return;
    }
    log_err("accept4: %s", strerror(err));
}

static void fork_kill_all(struct fork_server *f, int sig)
{
    for (int i = 0; i < f->nlive; i++)
        kill(f->pids[i], sig);
}

static void fork_reap(struct fork_server *f)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (int i = 0; i < f->nlive; i++) {
            if (f->pids[i] == pid) {
                f->pids[i] = f->pids[--f->nlive];
                break;
            }
        }
        if (WIFSIGNALED(status) && !f->stopping)
            log_warn("child pid %d killed by signal %d", (int)pid, WTERMSIG(status));
        else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            log_warn("child pid %d exited with status %d", (int)pid, WEXITSTATUS(status));
    }
    if (f->stopping && f->nlive == 0)
        event_base_loopexit(f->base, NULL);
    fork_listener_update(f);
}

static void fork_stop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fork_server *f = arg;
    (void)fd;
    (void)what;
    log_warn("drain timeout: killing %d remaining children", f->nlive);
    f->killed += (uint64_t)f->nlive;
    fork_kill_all(f, SIGKILL);
}

static void fork_stop(struct fork_server *f)
{
    if (f->stopping)
        return;
    f->stopping = true;
    notify_stopping();
    log_info("stopping: no new connections, %d children draining (up to %g s)", f->nlive,
             f->cfg->drain_timeout);
    if (f->lev != NULL) {
        evconnlistener_free(f->lev); /* closes the listening socket */
        f->lev = NULL;
        f->listen_fd = -1;
    }
    fork_kill_all(f, SIGTERM); /* each child drains its connection */
    /* Children stop themselves at the drain timeout; this deadline, a
     * little later, is for one that does not. */
    double t = f->cfg->drain_timeout + 1.0;
    struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    event_add(f->stop_ev, &tv);
    if (f->nlive == 0)
        event_base_loopexit(f->base, NULL);
}

static void fork_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct fork_server *f = arg;
    (void)what;
    switch (sig) {
    case SIGCHLD:
        fork_reap(f);
        break;
    case SIGTERM:
    case SIGINT:
        fork_stop(f);
        break;
    case SIGQUIT:
        notify_stopping();
        log_info("SIGQUIT: stopping now");
        f->stopping = true;
        fork_kill_all(f, SIGKILL);
        for (int i = 0; i < f->nlive; i++)
            waitpid(f->pids[i], NULL, 0);
        f->nlive = 0;
        event_base_loopexit(f->base, NULL);
        break;
    case SIGHUP:
        /* As the master does: a reload has nothing to change here yet. */
        notify_reloading();
        notify_ready();
        break;
    default:
        break; /* SIGUSR1: nothing to reopen here yet */
    }
}

static void fork_free(struct fork_server *f)
{
    if (f->lev != NULL)
        evconnlistener_free(f->lev);
    for (size_t i = 0; i < sizeof(f->sig_ev) / sizeof(f->sig_ev[0]); i++)
        if (f->sig_ev[i] != NULL)
            event_free(f->sig_ev[i]);
    if (f->pause_ev != NULL)
        event_free(f->pause_ev);
    if (f->stop_ev != NULL)
        event_free(f->stop_ev);
    if (f->base != NULL)
        event_base_free(f->base);
    free(f->pids);
    memset(f, 0, sizeof(*f));
    fork_self = NULL;
}

int model_fork_run(const struct config *cfg)
{
    struct fork_server f;
    char err[512];
    int status = 1;
    memset(&f, 0, sizeof(f));
    fork_self = &f;
    f.cfg = cfg;
    f.listen_fd = -1;
    log_set_role("parent");
    signal(SIGPIPE, SIG_IGN);

    f.base = event_base_new();
    f.pids = calloc((size_t)cfg->max_children, sizeof(*f.pids));
    if (f.base == NULL || f.pids == NULL) {
        log_err("event_base_new or calloc failed");
        goto out;
    }
    f.pause_ev = evtimer_new(f.base, fork_pause_end_cb, &f);
    f.stop_ev = evtimer_new(f.base, fork_stop_deadline_cb, &f);
    if (f.pause_ev == NULL || f.stop_ev == NULL) {
        log_err("out of memory");
        goto out;
    }
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        f.sig_ev[i] = evsignal_new(f.base, sigs[i], fork_signal_cb, &f);
        if (f.sig_ev[i] == NULL || event_add(f.sig_ev[i], NULL) < 0) {
            log_err("evsignal_new(%d) failed", sigs[i]);
            goto out;
        }
    }
    int fd = net_listen(&cfg->listen, cfg->backlog, 0, err, sizeof(err));
    if (fd < 0) {
        log_err("%s", err);
        goto out;
    }
    f.lev = evconnlistener_new(f.base, fork_accept_cb, &f,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                               0, fd);
    if (f.lev == NULL) {
        log_err("evconnlistener_new failed");
        close(fd);
        goto out;
    }
    f.listen_fd = fd;
    evconnlistener_set_error_cb(f.lev, fork_accept_error_cb);
    model_announce(cfg, f.listen_fd, 0);
    notify_ready();
    fork_listener_update(&f);
    if (event_base_dispatch(f.base) < 0) {
        log_err("event_base_dispatch failed");
        goto out;
    }
    log_info("stopped: forked %llu children, %llu forks failed, %llu killed at the deadline",
             (unsigned long long)f.forked, (unsigned long long)f.fork_failed,
             (unsigned long long)f.killed);
    status = 0;
out:
    if (status != 0 && f.pids != NULL) {
        fork_kill_all(&f, SIGKILL);
        for (int i = 0; i < f.nlive; i++)
            waitpid(f.pids[i], NULL, 0);
    }
    fork_free(&f);
    return status;
}
