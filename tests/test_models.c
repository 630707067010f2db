/* test_models: every server design (--model) passes the same end-to-end
 * tests against the real binary: start-up line, echo (including a payload
 * larger than the socket buffers), whoami socket pairs and serving process,
 * unp byte counts, capacity limits that queue clients in the backlog, and
 * SIGTERM leaving no process behind. Model-specific checks follow: worker
 * respawn for the pre-forked models, reaping for fork. To cover a new
 * protocol in every model, add a ParameterizedTest over model_cases. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "fdutil.h"
#include "harness.h"

/* How a model serves, for what whoami and the process tree should show. */
enum model_kind {
    KIND_SLOTS,     /* pre-forked workers 0..workers-1 under the master */
    KIND_FORK,      /* a child per connection, worker=1,2,3,... */
    KIND_ITERATIVE, /* the master itself, one connection at a time */
};

/* Criterion runs each test in a re-executed copy of this binary, so the
 * parameters hold their strings inline: no pointers. */
struct model_case {
    char name[16];       /* --model */
    enum model_kind kind;
    int shown_workers;   /* workers= on the start-up line when not a slot model */
    /* Capacity test: with --workers cap_workers and the option below
     * ("": the model's own limit) exactly cap_n connections are served. */
    int cap_workers;
    char cap_opt[16], cap_val[8];
    int cap_n;
};

/* reuseport gets one worker in the capacity test: a client hashed to a
 * full worker's socket waits for that worker, not for any free one. */
static struct model_case model_cases[] = {
    { "pass", KIND_SLOTS, 0, 2, "--max-conns", "1", 2 },
    { "accept", KIND_SLOTS, 0, 2, "--max-conns", "1", 2 },
    { "reuseport", KIND_SLOTS, 0, 1, "--max-conns", "1", 1 },
    { "fork", KIND_FORK, 0, 2, "--max-children", "2", 2 },
    { "iterative", KIND_ITERATIVE, 1, 2, "", "", 1 },
};
#define N_MODELS (sizeof(model_cases) / sizeof(model_cases[0]))
#define N_SLOT_MODELS 3 /* the first three run under the master's supervision */

#define MODEL_PARAMS(test)                                                        \
    ParameterizedTestParameters(models, test)                                     \
    {                                                                             \
        return cr_make_param_array(struct model_case, model_cases, N_MODELS);     \
    }
#define SLOT_MODEL_PARAMS(test)                                                   \
    ParameterizedTestParameters(models, test)                                     \
    {                                                                             \
        return cr_make_param_array(struct model_case, model_cases, N_SLOT_MODELS); \
    }

/* The server the running test started. Static, and stopped by the suite's
 * fini hook, so that a failed assertion (which abandons the test's frame)
 * leaves no server behind. */
static struct server models_srv;

static void models_fini(void)
{
    struct server *s = &models_srv;
    pid_t kids[64];
    if (s->pid <= 0)
        return;
    int n = proc_children(s->pid, kids, 64);
    server_stop(s, SIGTERM, 3000, NULL);
    for (int i = 0; i < n; i++)
        if (proc_alive(kids[i]))
            kill(kids[i], SIGKILL);
}

TestSuite(models, .fini = models_fini);

/* Start MC with WORKERS workers (where that means anything), PROTO, a
 * short drain timeout and up to two more arguments; checks the start-up
 * line. Returns the server (models_srv). */
static struct server *start_model(const struct model_case *mc, const char *proto, int workers,
                                  const char *x1, const char *x2)
{
    struct server *s = &models_srv;
    char nw[16];
    snprintf(nw, sizeof(nw), "%d", workers);
    const char *args[] = { "--listen", "0", "--model", mc->name, "--workers", nw,
                           "--protocol", proto, "--drain-timeout", "1", x1, x2, NULL };
    cr_assert_eq(server_start(s, args), 0, "%s: server did not start", mc->name);
    char want[160];
    snprintf(want, sizeof(want), " model=%s workers=%d protocol=%s pid=%d", mc->name,
             mc->kind == KIND_SLOTS ? workers : mc->shown_workers, proto, (int)s->pid);
    cr_assert(strstr(s->line, "{*:") != NULL && strstr(s->line, want) != NULL,
              "%s: start-up line '%s' lacks '%s'", mc->name, s->line, want);
    return s;
}

static void stop_model(struct server *s, const struct model_case *mc)
{
    int st = 0;
    cr_assert_eq(server_stop(s, SIGTERM, 10000, &st), 0, "%s: no exit after SIGTERM", mc->name);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit status %#x", mc->name, st);
}

/* Parse "{...} worker=K pid=P" after checking the pair is the mirror of
 * the client's own view of FD. */
static void check_whoami(const struct model_case *mc, int fd, int *worker, int *pid)
{
    char line[256], want[ADDR_PAIRLEN];
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0, "%s: no whoami line", mc->name);
    cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
    size_t n = strlen(want);
    cr_assert(strncmp(line, want, n) == 0 && line[n] == ' ', "%s: got '%s' want '%s ...'",
              mc->name, line, want);
    cr_assert(sscanf(line + n, " worker=%d pid=%d", worker, pid) == 2, "%s: '%s'", mc->name,
              line);
}

static bool pid_in(pid_t pid, const pid_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* Children of PID in any state, zombies included (proc_children skips
 * those). Returns the count; *zombies gets how many are zombies. */
static int children_any(pid_t pid, int *zombies)
{
    char path[64];
    int n = 0, child;
    *zombies = 0;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    while (fscanf(f, "%d", &child) == 1) {
        n++;
        *zombies += !proc_alive(child);
    }
    fclose(f);
    return n;
}

/* Send LEN patterned bytes and read them back, interleaved so neither side
 * blocks on a full buffer. Returns 0 when every byte came back in order. */
static int echo_bulk(int fd, size_t len, int timeout_ms)
{
    size_t sent = 0, got = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char buf[65536];
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    while (got < len && now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0) };
        if (poll(&p, 1, 100) < 0)
            return -1;
        if ((p.revents & POLLOUT) && sent < len) {
            size_t n = len - sent < sizeof(buf) ? len - sent : sizeof(buf);
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)((sent + i) * 131 % 251);
            ssize_t w = write(fd, buf, n);
            if (w < 0 && errno != EAGAIN)
                return -1;
            sent += w > 0 ? (size_t)w : 0;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r == 0 || (r < 0 && errno != EAGAIN))
                return -1;
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != (char)((got + (size_t)i) * 131 % 251))
                    return -1;
            got += r > 0 ? (size_t)r : 0;
        }
    }
    return (got == len && fcntl(fd, F_SETFL, fl) == 0) ? 0 : -1;
}

MODEL_PARAMS(echo)
ParameterizedTest(struct model_case *mc, models, echo, .timeout = 60)
{
    struct server *s = start_model(mc, "echo", 2, NULL, NULL);
    int fd = tcp_connect(NULL, "127.0.0.1", s->port);
    cr_assert(fd >= 0, "%s: connect", mc->name);
    char buf[16] = { 0 };
    cr_assert_eq(write_all(fd, "hello\n", 6), 0);
    cr_assert_eq(read_exact(fd, buf, 6, 5000), 0, "%s: no echo", mc->name);
    cr_assert_str_eq(buf, "hello\n", "%s", mc->name);
    /* Larger than both socket buffers together: only backpressure and
     * resumed reading get all of it back. */
    cr_assert_eq(echo_bulk(fd, 8u << 20, 20000), 0, "%s: 8 MiB did not echo back intact",
                 mc->name);
    close(fd);
    stop_model(s, mc);
}

MODEL_PARAMS(whoami)
ParameterizedTest(struct model_case *mc, models, whoami, .timeout = 60)
{
    struct server *s = start_model(mc, "whoami", 2, NULL, NULL);
    static const char *const srcs[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" };
    int fds[4], pids[4];
    for (int i = 0; i < 4; i++) {
        int worker = -1;
        fds[i] = tcp_connect(srcs[i], "127.0.0.1", s->port);
        cr_assert(fds[i] >= 0, "%s: connect from %s", mc->name, srcs[i]);
        check_whoami(mc, fds[i], &worker, &pids[i]);
        pid_t kids[64];
        int nkids = proc_children(s->pid, kids, 64);
        switch (mc->kind) {
        case KIND_SLOTS:
            cr_assert(worker >= 0 && worker < 2, "%s: worker=%d", mc->name, worker);
            cr_assert(pids[i] != s->pid && pid_in(pids[i], kids, nkids),
                      "%s: pid=%d is not a worker of master %d", mc->name, pids[i], (int)s->pid);
            break;
        case KIND_FORK:
            /* Earlier connections are still open: their children too. */
            cr_assert_eq(worker, i + 1, "%s: child sequence number %d, want %d", mc->name,
                         worker, i + 1);
            cr_assert(pids[i] != s->pid && pid_in(pids[i], kids, nkids),
                      "%s: pid=%d is not a child of %d", mc->name, pids[i], (int)s->pid);
            for (int j = 0; j < i; j++)
                cr_assert_neq(pids[i], pids[j], "%s: two connections in pid %d", mc->name,
                              pids[i]);
            break;
        case KIND_ITERATIVE:
            cr_assert(worker == 0 && pids[i] == s->pid, "%s: worker=%d pid=%d, master %d",
                      mc->name, worker, pids[i], (int)s->pid);
            close(fds[i]); /* the next client is served only after this one */
            fds[i] = -1;
            break;
        }
    }
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    stop_model(s, mc);
}

MODEL_PARAMS(unp)
ParameterizedTest(struct model_case *mc, models, unp, .timeout = 60)
{
    struct server *s = start_model(mc, "unp", 2, NULL, NULL);
    int fd = tcp_connect(NULL, "127.0.0.1", s->port);
    cr_assert(fd >= 0, "%s: connect", mc->name);
    static char buf[300000];
    static const size_t asks[] = { 1, 250000, 4096 };
    for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
        char req[32];
        int n = snprintf(req, sizeof(req), "%zu\n", asks[i]);
        cr_assert_eq(write_all(fd, req, (size_t)n), 0);
        cr_assert_eq(read_exact(fd, buf, asks[i], 5000), 0, "%s: short answer to %zu",
                     mc->name, asks[i]);
        for (size_t k = 0; k < asks[i]; k++)
            cr_assert_eq(buf[k], 'x', "%s: byte %zu of %zu", mc->name, k, asks[i]);
    }
    /* Exactly N: after our half-close nothing more arrives before EOF. */
    shutdown(fd, SHUT_WR);
    cr_assert_eq(read_to_eof(fd, buf, sizeof(buf), 5000), 0, "%s: extra bytes", mc->name);
    close(fd);
    stop_model(s, mc);
}

/* With room for cap_n connections all taken, one more client is accepted by
 * the kernel but not served until a connection ends; nobody is dropped. */
MODEL_PARAMS(capacity_queues_in_backlog)
ParameterizedTest(struct model_case *mc, models, capacity_queues_in_backlog, .timeout = 60)
{
    bool opt = mc->cap_opt[0] != '\0';
    struct server *s = start_model(mc, "whoami", mc->cap_workers, opt ? mc->cap_opt : NULL,
                                   opt ? mc->cap_val : NULL);
    int fds[3], worker, pid;
    for (int i = 0; i < mc->cap_n; i++) {
        fds[i] = tcp_connect(NULL, "127.0.0.1", s->port);
        cr_assert(fds[i] >= 0, "%s: connect %d", mc->name, i);
        check_whoami(mc, fds[i], &worker, &pid);
    }
    int extra = tcp_connect(NULL, "127.0.0.1", s->port);
    cr_assert(extra >= 0, "%s: the kernel should accept into the backlog", mc->name);
    struct pollfd p = { .fd = extra, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 300), 0, "%s: served beyond capacity %d", mc->name, mc->cap_n);
    if (mc->kind == KIND_FORK) {
        pid_t kids[8];
        cr_assert_eq(proc_children(s->pid, kids, 8), mc->cap_n, "%s: live children",
                     mc->name);
    }
    close(fds[0]);
    check_whoami(mc, extra, &worker, &pid);
    if (mc->kind == KIND_FORK)
        cr_assert_eq(worker, mc->cap_n + 1, "%s: worker=%d", mc->name, worker);
    for (int i = 1; i < mc->cap_n; i++)
        close(fds[i]);
    close(extra);
    stop_model(s, mc);
}

/* SIGTERM with a connection open: the connection is finished within the
 * drain timeout, the server exits 0 and none of its processes remain. */
MODEL_PARAMS(sigterm_exits_0_leaving_nothing)
ParameterizedTest(struct model_case *mc, models, sigterm_exits_0_leaving_nothing, .timeout = 60)
{
    struct server *s = start_model(mc, "echo", 2, NULL, NULL);
    int fd = tcp_connect(NULL, "127.0.0.1", s->port);
    cr_assert(fd >= 0, "%s: connect", mc->name);
    char buf[8];
    cr_assert_eq(write_all(fd, "ping\n", 5), 0);
    cr_assert_eq(read_exact(fd, buf, 5, 5000), 0, "%s: no echo", mc->name);
    pid_t kids[16];
    int nkids = proc_children(s->pid, kids, 16);
    int want = mc->kind == KIND_SLOTS ? 2 : mc->kind == KIND_FORK ? 1 : 0;
    cr_assert_eq(nkids, want, "%s: %d processes under the master", mc->name, nkids);
    pid_t master = s->pid;
    stop_model(s, mc);
    cr_assert(read_to_eof(fd, buf, sizeof(buf), 3000) >= 0, "%s: connection left open",
              mc->name);
    close(fd);
    cr_assert(!proc_alive(master));
    for (int i = 0; i < nkids; i++)
        cr_assert(!proc_alive(kids[i]), "%s: pid %d outlived the server", mc->name,
                  (int)kids[i]);
}

/* A worker killed outright is replaced within a second and the server goes
 * on serving. For accept and reuseport, clients that connect while the
 * worker is dead are all served too: they wait on a listening socket the
 * master keeps. (pass loses fds it sent into the dying worker's channel
 * before the death was noticed, as master.c documents; for it the clients
 * connect once the worker is replaced.) */
SLOT_MODEL_PARAMS(killed_worker_respawns)
ParameterizedTest(struct model_case *mc, models, killed_worker_respawns, .timeout = 60)
{
    struct server *s = start_model(mc, "whoami", 2, NULL, NULL);
    pid_t kids[8], now[8];
    cr_assert(proc_wait_children(s->pid, 2, 5000), "%s: two workers", mc->name);
    cr_assert_eq(proc_children(s->pid, kids, 8), 2);
    bool during = strcmp(mc->name, "pass") != 0;
    kill(kids[0], SIGKILL);
    enum { N = 16 };
    int fds[N];
    for (int round = 0; round < 2; round++) {
        if (round == (during ? 1 : 0)) {
            uint64_t deadline = now_ms() + 1500;
            int n = 0;
            do {
                n = proc_children(s->pid, now, 8);
                if (n == 2 && !pid_in(kids[0], now, n))
                    break;
                usleep(10000);
            } while (now_ms() < deadline);
            cr_assert(n == 2 && pid_in(kids[1], now, n) && !pid_in(kids[0], now, n),
                      "%s: worker not replaced within 1.5 s", mc->name);
            continue;
        }
        for (int i = 0; i < N; i++) {
            fds[i] = tcp_connect(NULL, "127.0.0.1", s->port);
            cr_assert(fds[i] >= 0, "%s: connect %d", mc->name, i);
        }
        for (int i = 0; i < N; i++) {
            int worker, pid;
            check_whoami(mc, fds[i], &worker, &pid);
            cr_assert_neq(pid, kids[0], "%s: served by the killed worker", mc->name);
            close(fds[i]);
        }
    }
    cr_assert(server_log_contains(s, "killed by signal 9"), "%s: death not logged", mc->name);
    stop_model(s, mc);
}

/* Model fork reaps every child (after many short connections none is left,
 * alive or zombie) and keeps no fd of theirs. */
Test(models, fork_reaps_children_and_keeps_no_fds, .timeout = 60)
{
    const struct model_case *mc = &model_cases[3];
    cr_assert_str_eq(mc->name, "fork");
    struct server *s = start_model(mc, "echo", 2, NULL, NULL);
    int idle_fds = fdutil_count_open_pid(s->pid);
    int fds[20];
    char buf[4];
    for (int i = 0; i < 20; i++) {
        fds[i] = tcp_connect(NULL, "127.0.0.1", s->port);
        cr_assert(fds[i] >= 0, "connect %d", i);
        cr_assert_eq(write_all(fds[i], "abc", 3), 0);
        cr_assert_eq(read_exact(fds[i], buf, 3, 5000), 0, "no echo on connection %d", i);
    }
    cr_assert(proc_wait_children(s->pid, 20, 2000), "20 children while 20 clients are open");
    cr_assert_eq(fdutil_count_open_pid(s->pid), idle_fds, "parent fds with 20 children");
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    int all = 0, zombies = 0;
    uint64_t deadline = now_ms() + 3000;
    do {
        all = children_any(s->pid, &zombies);
        if (all == 0)
            break;
        usleep(10000);
    } while (now_ms() < deadline);
    cr_assert_eq(all, 0, "%d children left, %d of them zombies", all, zombies);
    stop_model(s, mc);
}
