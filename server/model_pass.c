/* model_pass: the master accepts and hands each fd to a pre-forked worker
 * (the default model). Moved out of master.c unchanged apart from the hook
 * functions at the end; master.c supervises the workers.
 *
 * fd ownership here:
 *   - the listening socket: the evconnlistener (LEV_OPT_CLOSE_ON_FREE);
 *   - an accepted fd: the master, from accept4 until ctl_send_pass succeeds,
 *     sitting meanwhile in its worker slot's queue. After a successful send
 *     the kernel holds the in-flight reference and the master closes its
 *     copy at once. If the worker dies first, queued fds are handed to
 *     another worker, or closed and counted when none can take them.
 * Messages already sent but not yet read by a worker that dies are dropped
 * by the kernel with the worker's socket, which closes those connections;
 * they are counted as lost with that worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "ctl.h"
#include "dispatch.h"
#include "log.h"
#include "master_model.h"
#include "net.h"
#include "scoreboard.h"

static void slot_flush(struct master *m, struct slot *s);
static void master_flush_cb(evutil_socket_t fd, short what, void *arg);
static void master_listener_update(struct master *m);

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

/* Every message wakes its worker, and an idle vCPU's wake-up (an IPI, on a
 * VM an exit to the hypervisor) costs more than the hand-off itself. So,
 * as in Nagle's algorithm, a busy worker that was sent fds less than
 * --pass-delay-us ago gets the next ones only once that much time has
 * passed (or --max-batch are waiting), all in one message. Under churn
 * this caps the messages, and wake-ups, at one per worker per delay.
 *
 * Busy means at least --pass-delay-conns live connections: then the
 * worker has other clients to serve while a few wait. With fewer, the
 * clients are few, holding one back idles the worker and every client
 * waiting on it, and the fds go at the end of the accept burst as usual;
 * so does a lone client's. Returns when S's queue may go: 0 for now. */
static uint64_t slot_due_ns(const struct master *m, const struct slot *s, uint64_t now)
{
    uint64_t due = s->sent_ns + (uint64_t)m->cfg->pass_delay_us * 1000u;
    if (due <= now || s->live < (uint64_t)m->cfg->pass_delay_conns || m->stopping)
        return 0;
    return due;
}

/* delay_ev fired. libevent's clock (cached at the top of the loop) may
 * run slightly behind ours: a queue not due yet by ours is waited for again. */
static void master_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    m->delay_at_ns = 0;
    master_flush_cb(fd, what, arg);
}

/* Have delay_ev fire by AT (NOW is the current time). */
static void master_delay_until(struct master *m, uint64_t at, uint64_t now)
{
    if (m->delay_at_ns != 0 && m->delay_at_ns <= at)
        return;
    uint64_t wait_us = (at - now + 999) / 1000;
    struct timeval tv = { (time_t)(wait_us / 1000000u), (suseconds_t)(wait_us % 1000000u) };
    event_add(m->delay_ev, &tv);
    m->delay_at_ns = at;
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
    if (s->q_len >= (size_t)m->cfg->max_batch) {
        slot_flush(m, s);
        return;
    }
    uint64_t now = ctl_now_ns(), due = slot_due_ns(m, s, now);
    if (due == 0)
        event_active(m->flush_ev, EV_TIMEOUT, 0); /* at the end of this accept burst */
    else
        master_delay_until(m, due, now);
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
        s->sent_ns = ctl_now_ns();
        s->live += n;
        s->total += n;
        m->handed += n;
        scoreboard_count(SCOREBOARD_HANDED, n);
    }
    if (s->q_len == 0 && s->drain_pending && slot_alive(s))
        slot_send_drain(m, s);
}

/* Send every queue whose delay is over; wait for the rest. */
static void master_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)what;
    uint64_t now = ctl_now_ns(), next = 0;
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        if (s->q_len == 0)
            continue;
        uint64_t due = slot_due_ns(m, s, now);
        if (due == 0)
            slot_flush(m, s);
        else if (next == 0 || due < next)
            next = due;
    }
    if (next != 0)
        master_delay_until(m, next, now);
    master_listener_update(m);
}

static void pass_slot_writable(struct master *m, struct slot *s)
{
    slot_flush(m, s);
    master_listener_update(m);
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

static int pass_open(struct master *m)
{
    const struct config *cfg = m->cfg;
    char err[512];
    m->dispatch.mode = cfg->dispatch;
    m->dispatch.cursor = (unsigned)cfg->workers - 1;
    /* After a binary upgrade the old master's socket is ours: no gap in
     * which a client could be refused. */
    int fd = cfg->inherit_listen_fd >= 0 ? net_adopt_listener(cfg->inherit_listen_fd, err, sizeof(err))
                                         : net_listen(&cfg->listen, cfg->backlog, 0, err, sizeof(err));
    if (fd < 0) {
        log_err("%s", err);
        return -1;
    }
    /* Created disabled: accepting starts once every worker is ready. */
    m->lev = evconnlistener_new(m->base, master_accept_cb, m,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                                0, fd);
    if (m->lev == NULL) {
        log_err("evconnlistener_new failed");
        close(fd);
        return -1;
    }
    m->listen_fd = fd;
    evconnlistener_set_error_cb(m->lev, master_accept_error_cb);

    m->load_scratch = calloc((size_t)m->nslots, sizeof(*m->load_scratch));
    m->elig_scratch = calloc((size_t)m->nslots, sizeof(*m->elig_scratch));
    m->flush_ev = evtimer_new(m->base, master_flush_cb, m);
    m->delay_ev = evtimer_new(m->base, master_delay_cb, m);
    m->pause_ev = evtimer_new(m->base, master_pause_end_cb, m);
    if (m->load_scratch == NULL || m->elig_scratch == NULL || m->flush_ev == NULL ||
        m->delay_ev == NULL || m->pause_ev == NULL) {
        log_err("out of memory");
        return -1;
    }
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        s->q_fd = calloc((size_t)cfg->max_queued, sizeof(int));
        s->q_stamp = calloc((size_t)cfg->max_queued, sizeof(uint64_t));
        if (s->q_fd == NULL || s->q_stamp == NULL) {
            log_err("out of memory");
            return -1;
        }
    }
    return 0;
}

static int pass_worker_listen_fd(const struct master *m, const struct slot *s)
{
    (void)m;
    (void)s;
    return -1; /* workers get their connections over the channel */
}

static void pass_slot_gone(struct master *m, struct slot *s)
{
    /* Fds accepted for this worker but never sent go to another one. */
    slot_close_queue(m, s, !m->stopping);
}

static void pass_stop(struct master *m)
{
    if (m->lev != NULL) {
        evconnlistener_free(m->lev); /* closes the listening socket */
        m->lev = NULL;
        m->listen_fd = -1;
    }
    /* What is queued still goes out, ahead of the drain request. */
    for (int i = 0; i < m->nslots; i++)
        if (slot_alive(&m->slots[i]))
            slot_flush(m, &m->slots[i]);
}

static void pass_close(struct master *m)
{
    for (int i = 0; i < m->nslots; i++) {
        struct slot *s = &m->slots[i];
        if (s->q_fd != NULL)
            slot_close_queue(m, s, false);
        free(s->q_fd);
        free(s->q_stamp);
        s->q_fd = NULL;
        s->q_stamp = NULL;
    }
    free(m->load_scratch);
    free(m->elig_scratch);
    m->load_scratch = NULL;
    m->elig_scratch = NULL;
    if (m->lev != NULL) {
        evconnlistener_free(m->lev);
        m->lev = NULL;
        m->listen_fd = -1;
    }
    if (m->flush_ev != NULL) {
        event_free(m->flush_ev);
        m->flush_ev = NULL;
    }
    if (m->pause_ev != NULL) {
        event_free(m->pause_ev);
        m->pause_ev = NULL;
    }
    if (m->delay_ev != NULL) {
        event_free(m->delay_ev);
        m->delay_ev = NULL;
    }
}

const struct master_model model_pass = {
    .open = pass_open,
    .worker_listen_fd = pass_worker_listen_fd,
    .update = master_listener_update,
    .slot_writable = pass_slot_writable,
    .slot_gone = pass_slot_gone,
    .stop = pass_stop,
    .close = pass_close,
};
