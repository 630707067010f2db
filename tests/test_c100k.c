/* test_c100k: many idle connections, reduced from bench/c100k.sh to fit
 * the suite. Two client processes (the test's own fd limit is one
 * process's) hold C100K_CONNS keep-alive HTTP connections from several
 * 127.x sources against 4 workers, and the test checks, from the real
 * processes' VmRSS:
 *   - the admin /status live total reaches every connection;
 *   - held idle, they cost at most C100K_BYTES_MAX bytes each;
 *   - every one of them is then answered (each wakes from parked);
 *   - the sweep parks them again (memory back near the held level);
 *   - once the clients close, summed RSS returns near its start.
 * Under ASan (or a checker) the memory bounds do not hold and are skipped;
 * the connections still run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define C100K_PROCS 2         /* client processes */
#define C100K_PER_PROC 10000  /* connections each (the fd limit is 20000) */
#define C100K_CONNS (C100K_PROCS * C100K_PER_PROC)
#define C100K_SOURCES 8       /* 127.100+K.0.S source addresses per process */
/* The goal is 512 bytes per idle connection; the margin covers what is
 * not per connection but grows with the count and is measured in pages:
 * libevent's per-fd arrays and timer heap (power-of-two growth, about
 * 16 bytes per fd on average) and RSS page rounding on five processes. */
#define C100K_BYTES_MAX (512 + 64)
/* After the clients leave, summed RSS is back within this much of its
 * start (the brief's goal is 10%). */
#define C100K_BACK_PCT 10

#if defined(__SANITIZE_ADDRESS__)
#define C100K_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define C100K_ASAN 1
#endif
#endif
#ifndef C100K_ASAN
#define C100K_ASAN 0
#endif

static pid_t started_pid;
static pid_t clients[C100K_PROCS];

static void c100k_teardown(void)
{
    for (int i = 0; i < C100K_PROCS; i++) {
        if (clients[i] > 0) {
            kill(clients[i], SIGKILL);
            waitpid(clients[i], NULL, 0);
        }
        clients[i] = 0;
    }
    if (started_pid > 0 && waitpid(started_pid, NULL, WNOHANG) == 0) {
        kill(started_pid, SIGKILL);
        waitpid(started_pid, NULL, 0);
    }
    started_pid = 0;
}

TestSuite(c100k, .fini = c100k_teardown);

/* Summed VmRSS (KiB) of the master and its workers. */
static long rss_kib(pid_t master)
{
    pid_t pids[64];
    int n = proc_children(master, pids + 1, 63);
    pids[0] = master;
    long sum = 0;
    for (int i = 0; i <= n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        long v;
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
                sum += v;
        fclose(f);
    }
    return sum;
}

/* One read of up to LEN-1 bytes within TIMEOUT_MS; NUL-terminated. */
static ssize_t read_some(int fd, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* A GET on a fresh connection; the whole answer in BUF. */
static ssize_t http_get(int port, const char *target, char *buf, size_t len)
{
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    if (fd < 0)
        return -1;
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                     target);
    ssize_t got = -1;
    if (write_all(fd, req, (size_t)n) == 0)
        got = read_to_eof(fd, buf, len - 1, 5000);
    buf[got > 0 ? got : 0] = '\0';
    close(fd);
    return got;
}

/* "live" from the admin /status JSON, or -1. */
static long status_live(int admin)
{
    static char buf[1 << 16];
    if (http_get(admin, "/status?format=json&limit=0", buf, sizeof(buf)) <= 0)
        return -1;
    const char *l = strstr(buf, "\n\"live\":");
    return l != NULL ? atol(l + 8) : -1;
}

/* A client process: open C100K_PER_PROC connections, report how many, and
 * at each byte on GO: first send one request on every connection and
 * report how many were answered 200, then close them all and exit. */
static void client_main(int idx, int port, int report, int go)
{
    static int fds[C100K_PER_PROC];
    int opened = 0;
    for (int i = 0; i < C100K_PER_PROC; i++) {
        char src[32];
        snprintf(src, sizeof(src), "127.%d.0.%d", 100 + idx, 1 + i % C100K_SOURCES);
        fds[i] = tcp_connect(src, "127.0.0.1", port);
        opened += fds[i] >= 0;
    }
    char b;
    if (write(report, &opened, sizeof(opened)) != sizeof(opened) || read(go, &b, 1) != 1)
        _exit(1);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    int served = 0;
    for (int i = 0; i < C100K_PER_PROC; i++)
        if (fds[i] >= 0 && write_all(fds[i], req, sizeof(req) - 1) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    for (int i = 0; i < C100K_PER_PROC; i++) {
        char buf[512];
        if (fds[i] >= 0 && read_some(fds[i], buf, sizeof(buf), 5000) > 0 &&
            strncmp(buf, "HTTP/1.1 200 ", 13) == 0)
            served++;
    }
    if (write(report, &served, sizeof(served)) != sizeof(served) || read(go, &b, 1) != 1)
        _exit(1);
    for (int i = 0; i < C100K_PER_PROC; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    _exit(0);
}

/* Read one int from each client within TIMEOUT_MS; returns their sum. */
static int clients_report(const int *report, int timeout_ms)
{
    int sum = 0;
    for (int i = 0; i < C100K_PROCS; i++) {
        struct pollfd p = { report[i], POLLIN, 0 };
        cr_assert_eq(poll(&p, 1, timeout_ms), 1, "client %d did not report", i);
        int v;
        cr_assert_eq(read(report[i], &v, sizeof(v)), (ssize_t)sizeof(v));
        sum += v;
    }
    return sum;
}

static void clients_go(const int *go)
{
    for (int i = 0; i < C100K_PROCS; i++)
        cr_assert_eq(write(go[i], "g", 1), 1);
}

/* Wait up to TIMEOUT_MS for summed RSS to fall to at most LIMIT KiB;
 * returns the last reading. */
static long rss_wait_below(pid_t master, long limit, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    long r = rss_kib(master);
    while (r > limit && now_ms() < end) {
        usleep(200 * 1000);
        r = rss_kib(master);
    }
    return r;
}

Test(c100k, idle_connections_are_small_and_all_served, .timeout = 90)
{
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "4", "--protocol", "http",
                           "--admin", "127.0.0.1:0", "--idle-timeout", "120", NULL };
    struct server s;
    cr_assert(server_start(&s, args) == 0, "server did not start");
    started_pid = s.pid;
    char *log = server_log_read(&s);
    const char *al = log != NULL ? strstr(log, "handoffd: admin http://127.0.0.1:") : NULL;
    int admin = al != NULL ? atoi(al + strlen("handoffd: admin http://127.0.0.1:")) : -1;
    free(log);
    cr_assert(admin > 0, "no admin line");
    cr_assert(proc_wait_children(s.pid, 4, 10000));
    bool check_memory = !C100K_ASAN && !under_checker();

    /* Warm up: every worker runs the request path once, so code pages
     * faulted in on first use are not charged to the connections. */
    char buf[4096];
    for (int i = 0; i < 16; i++)
        cr_assert(http_get(s.port, "/", buf, sizeof(buf)) > 0 && strstr(buf, " 200 ") != NULL);
    usleep(300 * 1000);
    long rss0 = rss_kib(s.pid);

    int report[C100K_PROCS], go[C100K_PROCS];
    for (int i = 0; i < C100K_PROCS; i++) {
        int rp[2], gp[2];
        cr_assert(pipe2(rp, O_CLOEXEC) == 0 && pipe2(gp, O_CLOEXEC) == 0);
        clients[i] = fork();
        cr_assert(clients[i] >= 0);
        if (clients[i] == 0) {
            close(rp[0]);
            close(gp[1]);
            client_main(i, s.port, rp[1], gp[0]);
        }
        close(rp[1]);
        close(gp[0]);
        report[i] = rp[0];
        go[i] = gp[1];
    }
    int opened = clients_report(report, 30000);
    cr_assert_eq(opened, C100K_CONNS, "clients opened %d of %d", opened, C100K_CONNS);

    /* Every connection accepted, handed off and counted live. */
    uint64_t end = now_ms() + 20000;
    long live = status_live(admin);
    while (live != C100K_CONNS && now_ms() < end) {
        usleep(100 * 1000);
        live = status_live(admin);
    }
    cr_assert_eq(live, C100K_CONNS, "/status live %ld of %d", live, C100K_CONNS);
    long rss1 = rss_kib(s.pid);
    long per = (rss1 - rss0) * 1024 / C100K_CONNS;
    cr_log_info("c100k: RSS %ld -> %ld KiB holding %d: %ld bytes per connection%s", rss0, rss1,
                C100K_CONNS, per, check_memory ? "" : " (not checked here)");
    if (check_memory)
        cr_expect_leq(per, C100K_BYTES_MAX, "%ld bytes per idle connection (RSS %ld -> %ld KiB)",
                      per, rss0, rss1);

    /* Each parked connection wakes for its request and is answered. */
    clients_go(go);
    int served = clients_report(report, 30000);
    cr_expect_eq(served, C100K_CONNS, "%d of %d connections answered", served, C100K_CONNS);

    /* Idle again: the sweep parks them (within two periods) and trims. */
    if (check_memory) {
        long limit = rss0 + (long)C100K_BYTES_MAX * C100K_CONNS / 1024;
        long rss2 = rss_wait_below(s.pid, limit, 4000);
        cr_log_info("c100k: RSS after serving all, idle again: %ld KiB", rss2);
        cr_expect_leq(rss2, limit, "not parked again: RSS %ld KiB, held idle %ld KiB", rss2,
                      rss1);
    }

    clients_go(go);
    for (int i = 0; i < C100K_PROCS; i++) {
        int st;
        cr_assert_eq(waitpid(clients[i], &st, 0), clients[i]);
        clients[i] = 0;
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed", i);
        close(report[i]);
        close(go[i]);
    }
    end = now_ms() + 10000;
    live = status_live(admin);
    while (live != 0 && now_ms() < end) {
        usleep(100 * 1000);
        live = status_live(admin);
    }
    cr_expect_eq(live, 0, "/status live %ld after the clients left", live);
    if (check_memory) {
        long limit = rss0 + rss0 * C100K_BACK_PCT / 100;
        long rss3 = rss_wait_below(s.pid, limit, 5000);
        cr_log_info("c100k: RSS after the clients left %ld KiB (start %ld)", rss3, rss0);
        cr_expect_leq(rss3, limit, "RSS %ld KiB after the clients left; start %ld KiB", rss3,
                      rss0);
    }
    int st;
    cr_expect_eq(server_stop(&s, SIGTERM, 10000, &st), 0);
    started_pid = 0;
}
