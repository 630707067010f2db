/* test_reliability: handoffd under faults, with clients that hold real
 * load over loopback: workers SIGKILLed under load, SIGTERM to the master
 * mid-load, descriptor exhaustion, clients that send and never read.
 * Every scenario states what the fault makes impossible to serve and
 * checks that nothing beyond that is lost. Short form in `make test`,
 * full form in `make soak` (see test_reliability.h). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdutil.h"
#include "harness.h"
#include "test_reliability.h"

#define JSON_MAX 8192

static void skip_under_checker(void)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
}

/* Children of the master, waiting up to 5 s for exactly N. */
static int workers_of(const struct server *s, pid_t *kids, int n)
{
    cr_assert(proc_wait_children(s->pid, n, 5000), "not %d workers", n);
    return proc_children(s->pid, kids, n);
}

/* Client sockets the workers hold: every socket but each one's channel. */
static int served_sockets(const struct server *s, int nworkers)
{
    pid_t kids[16];
    int n = proc_children(s->pid, kids, 16), total = 0;
    for (int i = 0; i < n; i++)
        total += proc_sockets(kids[i]) - 1;
    return n == nworkers ? total : -1;
}

/* fds held by the master and workers beyond their counts at start-up
 * (MASTER0, and WORKER0 for each fresh worker), once the load is gone:
 * retried for up to 5 s while the last closes are reported. */
static long fds_left_over(const struct server *s, int nworkers, int master0, int worker0)
{
    long extra = 0;
    for (uint64_t until = now_ms() + 5000; now_ms() < until; usleep(50000)) {
        pid_t kids[16];
        int n = proc_children(s->pid, kids, 16);
        extra = fdutil_count_open_pid(s->pid) - master0;
        for (int i = 0; i < n; i++)
            extra += fdutil_count_open_pid(kids[i]) - worker0;
        if (extra == 0 && n == nworkers)
            break;
    }
    return extra;
}

static void stop_clean(struct server *s)
{
    int st;
    cr_assert_eq(server_stop(s, SIGTERM, 20000, &st), 0, "no clean exit (log %s)", s->log_path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

/* ---- workers SIGKILLed under load ------------------------------------------ */

Test(reliability, worker_killed_under_load)
{
    skip_under_checker();
    enum { WORKERS = 4, CONNS = 200 };
    int kills = (int)soak_pick(3, 20);
    int every_ms = (int)soak_pick(2000, 3000);
    struct server s;
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "4", "--protocol", "echo",
                           "--drain-timeout", "5", NULL };
    cr_assert_eq(server_start(&s, args), 0);
    pid_t kids[WORKERS];
    workers_of(&s, kids, WORKERS);
    int master0 = fdutil_count_open_pid(s.pid);
    int worker0 = fdutil_count_open_pid(kids[0]);

    char target[64], secs[16], conns[16];
    snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
    snprintf(secs, sizeof(secs), "%d", (kills * every_ms + 2000) / 1000 + 1);
    snprintf(conns, sizeof(conns), "%d", CONNS);
    const char *bargs[] = { "-m", "keepalive", "--proto", "echo", "-c", conns, "-d", secs,
                            "-t", target, "-T", "5", "--json", "-q", NULL };
    struct bench_job job;
    cr_assert_eq(bench_job_start(&job, bargs), 0);
    uint64_t t0 = now_ms();
    while (served_sockets(&s, WORKERS) < CONNS && now_ms() - t0 < 10000)
        usleep(20000);
    cr_assert_eq(served_sockets(&s, WORKERS), CONNS, "load not established");

    /* Each kill: the victim's connections, counted just before, are the
     * only ones that may fail; a replacement must appear within 1 s. */
    long owned = 0, worst_replace = 0;
    t0 = now_ms();
    for (int k = 0; k < kills; k++) {
        uint64_t at = t0 + (uint64_t)(k + 1) * (uint64_t)every_ms;
        while (now_ms() < at)
            usleep(10000);
        pid_t now[WORKERS];
        cr_assert_eq(proc_children(s.pid, now, WORKERS), WORKERS);
        pid_t victim = now[k % WORKERS];
        owned += proc_sockets(victim) - 1;
        cr_assert_eq(kill(victim, SIGKILL), 0);
        uint64_t killed = now_ms();
        bool replaced = false;
        while (!replaced && now_ms() - killed < 1000) {
            usleep(2000);
            int n = proc_children(s.pid, now, WORKERS);
            replaced = n == WORKERS;
            for (int i = 0; i < n; i++)
                replaced = replaced && now[i] != victim;
        }
        long took = (long)(now_ms() - killed);
        cr_assert(replaced, "kill %d: no replacement within 1 s", k + 1);
        worst_replace = took > worst_replace ? took : worst_replace;
    }
    static char json[JSON_MAX];
    cr_assert_eq(bench_job_finish(&job, 60000, json, sizeof(json)), 0, "bench failed: %s", json);
    double requests = json_num(json, NULL, "requests");
    double errors = json_num(json, "errors", "total");
    double timeouts = json_num(json, "errors", "timeout");
    double refused = json_num(json, "errors", "connect") + json_num(json, "errors", "connect_timeout");
    int nlog = 0;
    long master_lost = log_sum_after(s.log_path, "killed by signal 9 with ", &nlog);
    long leaked = fds_left_over(&s, WORKERS, master0, worker0);

    struct soak_row row = { .scenario = "worker SIGKILL under load", .fds_leaked = leaked };
    snprintf(row.load, sizeof(row.load), "%d keepalive echo connections, %d workers, %s s",
             CONNS, WORKERS, secs);
    snprintf(row.faults, sizeof(row.faults),
             "%d x SIGKILL of one worker every %d s; replacement after at most %ld ms", kills,
             every_ms / 1000, worst_replace);
    row.attempted = (uint64_t)requests;
    row.failed = (uint64_t)errors;
    row.lost = errors > (double)owned ? (uint64_t)(errors - (double)owned) : 0;
    row.p99_ms = json_num(json, "latency_us", "p99") / 1000.0;
    snprintf(row.note, sizeof(row.note),
             "failed = requests in flight on connections the killed workers owned: %ld "
             "client sockets counted in /proc/PID/fd just before the kills (master's count: "
             "%ld); every other connection was served throughout",
             owned, master_lost);
    soak_report(&row);

    cr_assert_eq(nlog, kills, "master logged %d kills of %d", nlog, kills);
    cr_assert(errors <= (double)owned, "%.0f failed requests but the killed workers owned %ld "
              "connections: %s", errors, owned, json);
    cr_assert(errors >= kills, "kills broke only %.0f requests: load not reaching workers?",
              errors);
    cr_assert_eq(timeouts, 0, "connections stalled: %s", json);
    cr_assert_eq(refused, 0, "new connections refused: %s", json);
    cr_assert_eq(leaked, 0, "%ld fds left open in server processes", leaked);
    /* Still serving. */
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    char buf[4];
    cr_assert(fd >= 0 && write_all(fd, "abc", 3) == 0 && read_exact(fd, buf, 3, 5000) == 0);
    close(fd);
    stop_clean(&s);
}

/* ---- SIGTERM to the master mid-load ----------------------------------------- */

/* Ask each of N unp connections for BYTES, wait until every answer has
 * started, SIGTERM the master, then read the rest. Returns how many
 * answers arrived whole and were followed by a clean close. */
static int unp_answers_across_sigterm(const struct server *s, int n, size_t bytes)
{
    int fds[128];
    cr_assert(n <= 128);
    char req[32];
    int rl = snprintf(req, sizeof(req), "%zu\n", bytes);
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect(NULL, "127.0.0.1", s->port);
        cr_assert(fds[i] >= 0);
        cr_assert_eq(write_all(fds[i], req, (size_t)rl), 0);
    }
    size_t got[128];
    static char buf[65536];
    for (int i = 0; i < n; i++) {
        cr_assert_eq(read_exact(fds[i], buf, 1, 5000), 0, "answer %d did not start", i);
        got[i] = 1;
    }
    cr_assert_eq(kill(s->pid, SIGTERM), 0);
    /* Read every answer at once, as clients would: each must arrive whole
     * and be followed by a clean close (FIN, not RST). */
    int whole = 0, open_left = n;
    uint64_t deadline = now_ms() + 30000;
    while (open_left > 0 && now_ms() < deadline) {
        struct pollfd p[128];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        if (poll(p, (nfds_t)n, 500) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0 || p[i].revents == 0)
                continue;
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r > 0) {
                got[i] += (size_t)r;
                continue;
            }
            whole += r == 0 && got[i] == bytes;
            close(fds[i]);
            fds[i] = -1;
            open_left--;
        }
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return whole;
}

Test(reliability, sigterm_mid_load_finishes_what_is_in_flight)
{
    skip_under_checker();
    int rounds = (int)soak_pick(1, 5);
    int secs = (int)soak_pick(4, 20);
    enum { CONNS = 100, UNP_CONNS = 20 };
    const size_t unp_bytes = 8u << 20;
    uint64_t attempted = 0, failed = 0;
    double worst_p99 = 0;
    for (int r = 0; r < rounds; r++) {
        /* Keep-alive echo: connections stay open through the drain, so every
         * request, in flight at SIGTERM or made during the drain, is answered
         * until the clients stop. */
        struct server s;
        const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol",
                               "echo", "--drain-timeout", "60", NULL };
        cr_assert_eq(server_start(&s, args), 0);
        char target[64], dur[16], conns[16];
        snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
        snprintf(dur, sizeof(dur), "%d", secs);
        snprintf(conns, sizeof(conns), "%d", CONNS);
        const char *bargs[] = { "-m", "keepalive", "--proto", "echo", "-c", conns, "-d", dur,
                                "-t", target, "-T", "5", "--json", "-q", NULL };
        struct bench_job job;
        cr_assert_eq(bench_job_start(&job, bargs), 0);
        uint64_t t0 = now_ms();
        while (served_sockets(&s, 2) < CONNS && now_ms() - t0 < 10000)
            usleep(20000);
        usleep((useconds_t)secs * 500000u - (useconds_t)(now_ms() - t0) * 1000u);
        cr_assert_eq(kill(s.pid, SIGTERM), 0);
        usleep(200000);
        int late = tcp_connect(NULL, "127.0.0.1", s.port);
        cr_assert_eq(late, -1, "a new connection was accepted while draining");
        static char json[JSON_MAX];
        cr_assert_eq(bench_job_finish(&job, 60000, json, sizeof(json)), 0, "%s", json);
        double errors = json_num(json, "errors", "total");
        attempted += (uint64_t)json_num(json, NULL, "requests");
        failed += (uint64_t)errors;
        double p99 = json_num(json, "latency_us", "p99") / 1000.0;
        worst_p99 = p99 > worst_p99 ? p99 : worst_p99;
        cr_assert_eq(errors, 0, "requests failed across SIGTERM: %s", json);
        int st;
        cr_assert_eq(server_stop(&s, 0, 10000, &st), 0, "no exit once the clients left");
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
        cr_assert(server_log_contains(&s, "lost 0"), "master counted lost connections");

        /* unp answers of 8 MiB: a worker closes a connection only at the end
         * of the answer it is sending, and the master waits for that. */
        const char *uargs[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol",
                                "unp", "--drain-timeout", "60", NULL };
        cr_assert_eq(server_start(&s, uargs), 0);
        int whole = unp_answers_across_sigterm(&s, UNP_CONNS, unp_bytes);
        attempted += UNP_CONNS;
        failed += (uint64_t)(UNP_CONNS - whole);
        cr_assert_eq(server_stop(&s, 0, 10000, &st), 0, "no exit after the answers");
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
        cr_assert_eq(whole, UNP_CONNS, "%d of %d answers cut by SIGTERM", UNP_CONNS - whole,
                     UNP_CONNS);
        cr_assert(server_log_contains(&s, "lost 0"));
    }
    /* The server exits: there is nothing left to leak fds into. */
    struct soak_row row = { .scenario = "master SIGTERM mid-load", .fds_leaked = -1 };
    snprintf(row.load, sizeof(row.load),
             "%d keepalive echo connections for %d s, then %d unp answers of 8 MiB", CONNS,
             secs, UNP_CONNS);
    snprintf(row.faults, sizeof(row.faults), "%d x SIGTERM to the master (echo: mid-run; "
             "unp: every answer started)", 2 * rounds);
    row.attempted = attempted;
    row.failed = failed;
    row.lost = failed; /* nothing here is unavoidable */
    row.p99_ms = worst_p99;
    snprintf(row.note, sizeof(row.note),
             "nothing may fail: open connections are served until the client leaves (echo) "
             "or the answer in progress ends (unp); new connections are refused once the "
             "listener closes; exit status 0 every time");
    soak_report(&row);
}
