/* fleet: see fleet.h.
 *
 * fd ownership: the parent owns the read end of each child's pipe and
 * closes it at end of stream or when the child misbehaves; each child owns
 * its write end (its only descriptor besides stdio) and the parent closes
 * its copy right after fork.
 *
 * Signals: the parent blocks SIGINT and SIGTERM and takes them only inside
 * ppoll, so a signal can never slip in between checking the flag and
 * sleeping. Children restore the mask and the default actions; their
 * engines install libevent handlers of their own. */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fdutil.h"
#include "hist.h"
#include "log.h"
#include "net.h"
#include "report.h"
#include "stats.h"

#define WATCHDOG_GRACE_S 10.0  /* past every limit before children are told to stop */
#define WATCHDOG_KILL_S 5.0    /* after that, before they are killed */

struct fleet_child {
    pid_t pid;              /* 0 once reaped */
    int fd;                 /* read end of its report pipe; -1 once closed */
    size_t have;            /* bytes of msg assembled */
    struct stats_msg msg;   /* message being assembled */
    struct stats last;      /* latest counters received */
    bool final_seen;        /* the FINAL message arrived and was merged */
    bool failed;            /* died, or sent something invalid */
};

struct fleet {
    const struct opts *o;        /* the run */
    struct fleet_child *kids;    /* o->processes entries */
    int nkids;                   /* children forked so far */
    struct stats total;          /* merged finals */
    struct hist latency;         /* merged finals */
    struct hist connect;         /* merged finals */
};

static volatile sig_atomic_t fleet_signal; /* last SIGINT/SIGTERM, 0 if none */

static void fleet_on_signal(int sig) { fleet_signal = sig; }

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int fleet_raise_nofile(uint64_t *cap)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_err("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
                     strerror(errno));
            if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -1;
        }
    }
    uint64_t n = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
    *cap = n > FLEET_FD_RESERVE ? n - FLEET_FD_RESERVE : 0;
    return 0;
}

/* In the child after fork: keep stdio and the pipe, run, never return. */
__attribute__((noreturn))
static void fleet_child_main(const struct opts *o, int index, int wfd, const sigset_t *mask)
{
    int keep[] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, wfd };
    char role[32];
    snprintf(role, sizeof(role), "handoff-bench %d", index);
    log_set_role(role);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (fdutil_close_except(keep, 4) < 0) {
        log_err("close_except: %s", strerror(errno));
        _exit(1);
    }
    int rc = engine_run(o, index, wfd);
    /* This is the child's main: it decides the exit status. stdio was
     * flushed before fork, so exit() (which lets LeakSanitizer check the
     * child) writes nothing of the parent's twice. */
    exit(rc == 0 ? 0 : 1);
}

static int fleet_spawn(struct fleet *f, const sigset_t *mask)
{
    for (int i = 0; i < f->o->processes; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            log_err("pipe2: %s", strerror(errno));
            return -1;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            log_err("fork: %s", strerror(errno));
            close(p[0]);
            close(p[1]);
            return -1;
        }
        if (pid == 0)
            fleet_child_main(f->o, i, p[1], mask);
        close(p[1]);
        /* Read whatever is there without blocking on a half-sent message. */
        if (net_set_nonblock(p[0], 1) < 0)
            log_warn("fcntl(O_NONBLOCK) on report pipe: %s", strerror(errno));
        f->kids[i].pid = pid;
        f->kids[i].fd = p[0];
        f->nkids = i + 1;
    }
    return 0;
}

static void fleet_kill(struct fleet *f, int sig)
{
    for (int i = 0; i < f->nkids; i++)
        if (f->kids[i].pid > 0)
            kill(f->kids[i].pid, sig);
}

static void child_fail(struct fleet_child *c, int index, const char *why)
{
    log_err("process %d: %s", index, why);
    c->failed = true;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->pid > 0)
        kill(c->pid, SIGKILL);
}

/* A complete, validated message from child I. */
static void fleet_take(struct fleet *f, int i)
{
    struct fleet_child *c = &f->kids[i];
    const char *why = stats_msg_check(&c->msg, c->have);
    if (why == NULL && c->final_seen)
        why = "message after the final report";
    if (why != NULL) {
        child_fail(c, i, why);
        return;
    }
    c->last = c->msg.st;
    if (c->msg.hdr.type == STATS_MSG_FINAL) {
        c->final_seen = true;
        stats_merge(&f->total, &c->msg.st);
        hist_merge(&f->latency, &c->msg.latency);
        hist_merge(&f->connect, &c->msg.connect);
    }
}

/* Read what child I has sent. */
static void fleet_read(struct fleet *f, int i)
{
    struct fleet_child *c = &f->kids[i];
    for (;;) {
        size_t want = sizeof(c->msg.hdr);
        if (c->have >= want) {
            want = stats_msg_size(&c->msg.hdr);
            if (want == 0) {
                child_fail(c, i, "bad report header");
                return;
            }
        }
        ssize_t r = read(c->fd, (char *)&c->msg + c->have, want - c->have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            child_fail(c, i, strerror(errno));
            return;
        }
        if (r == 0) {
            close(c->fd);
            c->fd = -1;
            if (c->have != 0 || !c->final_seen)
                child_fail(c, i, "ended without a final report");
            return;
        }
        c->have += (size_t)r;
        if (c->have == want && want > sizeof(c->msg.hdr)) {
            fleet_take(f, i);
            c->have = 0;
            if (c->fd < 0)
                return;
        }
    }
}

/* Seconds after the start when children are overdue, or 0 for never
 * (a run the user asked to be unbounded in time). */
static double fleet_watchdog(const struct opts *o)
{
    if (o->duration <= 0)
        return 0;
    double t = o->duration + o->timeout + WATCHDOG_GRACE_S;
    if (o->mode == OPTS_HOLD) {
        /* Connects run a window at a time, each bounded by the timeout. */
        uint64_t n = opts_split(o->connections, o->processes, 0);
        uint64_t w = opts_split((uint64_t)o->concurrency, o->processes, 0);
        t += o->timeout * (double)((n + w - 1) / (w ? w : 1));
    }
    return t;
}

static void fleet_progress(struct fleet *f, double elapsed, uint64_t *prev_done, double *prev_t)
{
    struct stats sum;
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < f->nkids; i++)
        stats_merge(&sum, &f->kids[i].last);
    uint64_t done = report_done(f->o, &sum);
    double dt = elapsed - *prev_t;
    double now = dt > 0 ? (double)(done - *prev_done) / dt : 0;
    report_progress(stderr, f->o, &sum, elapsed, now);
    *prev_done = done;
    *prev_t = elapsed;
}

/* Read reports until every pipe is closed. */
static void fleet_loop(struct fleet *f, const sigset_t *waitmask)
{
    const struct opts *o = f->o;
    double start = mono_s(), next_tick = start + 1.0;
    double watchdog = fleet_watchdog(o), killed_at = 0;
    uint64_t prev_done = 0;
    double prev_t = 0;
    struct pollfd *pfd = calloc((size_t)f->nkids, sizeof(*pfd));
    int *who = calloc((size_t)f->nkids, sizeof(*who));
    if (pfd == NULL || who == NULL) {
        log_err("calloc: %s", strerror(errno));
        for (int i = 0; i < f->nkids; i++)
            child_fail(&f->kids[i], i, "parent out of memory");
        goto out;
    }
    for (;;) {
        nfds_t n = 0;
        for (int i = 0; i < f->nkids; i++) {
            if (f->kids[i].fd >= 0) {
                pfd[n].fd = f->kids[i].fd;
                pfd[n].events = POLLIN;
                who[n++] = i;
            }
        }
        if (n == 0)
            break;
        double now = mono_s();
        if (fleet_signal != 0) {
            fleet_kill(f, SIGTERM);
            fleet_signal = 0;
        }
        if (watchdog > 0 && now - start > watchdog) {
            if (killed_at == 0) {
                log_err("processes still running %.0f s past every limit: stopping them",
                        WATCHDOG_GRACE_S);
                fleet_kill(f, SIGTERM);
                killed_at = now;
            } else if (now - killed_at > WATCHDOG_KILL_S) {
                fleet_kill(f, SIGKILL);
            }
        }
        if (now >= next_tick) {
            if (!o->quiet)
                fleet_progress(f, now - start, &prev_done, &prev_t);
            while (next_tick <= now)
                next_tick += 1.0;
        }
        double wait = next_tick - now;
        struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
        int r = ppoll(pfd, n, &ts, waitmask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_err("ppoll: %s", strerror(errno));
            for (int i = 0; i < f->nkids; i++)
                child_fail(&f->kids[i], i, "parent cannot wait for reports");
            break;
        }
        for (nfds_t k = 0; k < n; k++)
            if (pfd[k].revents != 0)
                fleet_read(f, who[k]);
    }
out:
    free(pfd);
    free(who);
}

/* Reap every child; a non-zero exit or a signal death fails it. */
static void fleet_reap(struct fleet *f)
{
    for (int i = 0; i < f->nkids; i++) {
        struct fleet_child *c = &f->kids[i];
        int st;
        if (c->pid <= 0)
            continue;
        while (waitpid(c->pid, &st, 0) < 0) {
            if (errno != EINTR) {
                log_err("waitpid(%d): %s", (int)c->pid, strerror(errno));
                st = -1;
                break;
            }
        }
        c->pid = 0;
        if (st == -1)
            c->failed = true;
        else if (WIFSIGNALED(st)) {
            if (!c->failed)
                log_err("process %d killed by signal %d", i, WTERMSIG(st));
            c->failed = true;
        } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
            if (!c->failed)
                log_err("process %d exited with status %d", i, WEXITSTATUS(st));
            c->failed = true;
        }
    }
}

int fleet_run(const struct opts *o)
{
    struct fleet f;
    int rc = -1;
    memset(&f, 0, sizeof(f));
    f.o = o;
    hist_init(&f.latency);
    hist_init(&f.connect);
    f.kids = calloc((size_t)o->processes, sizeof(*f.kids));
    if (f.kids == NULL) {
        log_err("calloc: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < o->processes; i++)
        f.kids[i].fd = -1;

    sigset_t block, old, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fleet_on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    waitmask = old;
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);

    if (fleet_spawn(&f, &old) < 0) {
        fleet_kill(&f, SIGKILL);
        for (int i = 0; i < f.nkids; i++)
            if (f.kids[i].fd >= 0)
                close(f.kids[i].fd);
        fleet_reap(&f);
        goto out;
    }
    fleet_loop(&f, &waitmask);
    fleet_reap(&f);
    rc = 0;
    for (int i = 0; i < f.nkids; i++)
        if (f.kids[i].failed || !f.kids[i].final_seen)
            rc = -1;
    if (rc == 0) {
        if (o->json) {
            report_json(stdout, o, &f.total, &f.latency, &f.connect);
            report_summary(stderr, o, &f.total, &f.latency, &f.connect);
        } else {
            report_summary(stdout, o, &f.total, &f.latency, &f.connect);
        }
    }
out:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(f.kids);
    return rc;
}
