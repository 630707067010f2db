/* test_core: the hand-off server end to end: whoami socket pairs from many
 * source addresses, echo round trips, worker respawn, graceful stop. */
#include <criterion/criterion.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"

TestSuite(core, .fini = server_kill_leftovers);

Test(core, whoami_pairs_match_clients_and_spread_over_workers, .timeout = 60)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "4", "--protocol", "whoami", NULL };
    cr_assert_eq(server_start(&s, args), 0, "server did not start");
    cr_assert(strstr(s.line, "{*:") != NULL, "start-up line: %s", s.line);
    cr_assert(strstr(s.line, "model=pass workers=4 protocol=whoami") != NULL, "%s", s.line);

    static const char *const srcs[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" };
    int seen[4] = { 0 };
    for (int i = 0; i < 200; i++) {
        const char *src = srcs[i % 4];
        int fd = tcp_connect(src, src, s.port);
        cr_assert(fd >= 0, "connect %s", src);
        char line[256], want[ADDR_PAIRLEN];
        cr_assert(read_line(fd, line, sizeof(line), 5000) > 0, "no whoami line");
        cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
        cr_assert(strncmp(line, want, strlen(want)) == 0, "got '%s' want '%s'", line, want);
        int k = -1;
        const char *w = strstr(line, " worker=");
        cr_assert(w != NULL && sscanf(w, " worker=%d", &k) == 1 && k >= 0 && k < 4, "%s", line);
        seen[k]++;
        close(fd);
    }
    for (int k = 0; k < 4; k++)
        cr_expect(seen[k] > 0, "worker %d served nothing", k);
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void start(struct server *s, const char *proto, const char *workers)
{
    const char *args[] = { "--listen", "0", "--workers", workers, "--protocol", proto,
                           "--drain-timeout", "5", NULL };
    cr_assert_eq(server_start(s, args), 0, "server did not start");
}

static void stop_ok(struct server *s)
{
    pid_t kids[64];
    int n = proc_children(s->pid, kids, 64);
    int st;
    cr_assert_eq(server_stop(s, SIGTERM, 15000, &st), 0, "no exit after SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < 100 && proc_alive(kids[i]); t++)
            usleep(10000);
        cr_assert(!proc_alive(kids[i]), "worker %d left behind", (int)kids[i]);
    }
}

/* Write LEN bytes and read them back, interleaved so neither side's socket
 * buffer has to hold the whole payload. */
static void echo_round_trip(int fd, size_t len)
{
    unsigned char *out = malloc(len), *in = malloc(len);
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    size_t sent = 0, got = 0;
    uint64_t deadline = now_ms() + 20000;
    while (got < len && now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0) };
        cr_assert(poll(&p, 1, 1000) >= 0);
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t w = send(fd, out + sent, len - sent > 65536 ? 65536 : len - sent,
                             MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, in + got, len - got, MSG_DONTWAIT);
            cr_assert(r > 0, "echo connection closed early after %zu bytes", got);
            got += (size_t)r;
        }
    }
    cr_assert_eq(got, len, "echoed %zu of %zu bytes", got, len);
    cr_assert(memcmp(in, out, len) == 0, "echo corrupted data");
    free(out);
    free(in);
}

Test(core, echo_small_and_larger_than_socket_buffers, .timeout = 60)
{
    struct server s;
    start(&s, "echo", "2");
    for (int i = 0; i < 20; i++) {
        int fd = tcp_connect(NULL, i % 2 ? "::1" : "127.0.0.1", s.port);
        cr_assert(fd >= 0);
        echo_round_trip(fd, 1 + (size_t)i * 100);
        close(fd);
    }
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    echo_round_trip(fd, 8u << 20);
    /* Half-close: what was sent still comes back before the server closes. */
    cr_assert_eq(write_all(fd, "tail", 4), 0);
    shutdown(fd, SHUT_WR);
    char buf[16];
    cr_assert_eq(read_to_eof(fd, buf, sizeof(buf), 5000), 4);
    cr_assert(memcmp(buf, "tail", 4) == 0);
    close(fd);
    stop_ok(&s);
}

Test(core, whoami_over_ipv6_loopback, .timeout = 30)
{
    struct server s;
    start(&s, "whoami", "1");
    int fd = tcp_connect("::1", "::1", s.port);
    cr_assert(fd >= 0);
    char line[256], want[ADDR_PAIRLEN];
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0);
    cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
    cr_assert(strncmp(line, "{[::1]:", 7) == 0, "%s", line);
    cr_assert(strncmp(line, want, strlen(want)) == 0, "got '%s' want '%s'", line, want);
    char pidstr[32];
    pid_t kids[4];
    cr_assert_eq(proc_children(s.pid, kids, 4), 1);
    snprintf(pidstr, sizeof(pidstr), " worker=0 pid=%d", (int)kids[0]);
    cr_assert(strstr(line, pidstr) != NULL, "%s lacks%s", line, pidstr);
    close(fd);
    stop_ok(&s);
}

Test(core, unp_sends_exactly_the_bytes_asked_for, .timeout = 30)
{
    struct server s;
    start(&s, "unp", "2");
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    static const size_t sizes[] = { 1, 4000, 3u << 20, 10 };
    static char buf[3u << 20];
    for (size_t i = 0; i < 4; i++) {
        char req[32];
        int n = snprintf(req, sizeof(req), "%zu\n", sizes[i]);
        cr_assert_eq(write_all(fd, req, (size_t)n), 0);
        cr_assert_eq(read_exact(fd, buf, sizes[i], 10000), 0, "short answer for %zu", sizes[i]);
    }
    /* Nothing more than asked for arrives. */
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 200), 0);
    /* A malformed count closes the connection. */
    cr_assert_eq(write_all(fd, "12x\n", 4), 0);
    cr_assert_eq(read_to_eof(fd, buf, 16, 5000), 0);
    close(fd);
    stop_ok(&s);
}

Test(core, discard_answers_nothing, .timeout = 30)
{
    struct server s;
    start(&s, "discard", "1");
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    static char junk[1 << 20];
    cr_assert_eq(write_all(fd, junk, sizeof(junk)), 0);
    shutdown(fd, SHUT_WR);
    char buf[16];
    cr_assert_eq(read_to_eof(fd, buf, sizeof(buf), 5000), 0);
    close(fd);
    stop_ok(&s);
}

Test(core, killed_worker_is_replaced_and_service_continues, .timeout = 30)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    struct server s;
    start(&s, "whoami", "2");
    pid_t kids[8];
    cr_assert_eq(proc_children(s.pid, kids, 8), 2);
    pid_t victim = kids[0];
    cr_assert_eq(kill(victim, SIGKILL), 0);
    uint64_t t0 = now_ms();
    bool replaced = false;
    while (now_ms() - t0 < 1000 && !replaced) {
        pid_t now[8];
        int n = proc_children(s.pid, now, 8);
        replaced = n == 2 && now[0] != victim && now[1] != victim;
        usleep(5000);
    }
    cr_assert(replaced, "no replacement worker within 1 s");
    for (int i = 0; i < 20; i++) {
        int fd = tcp_connect(NULL, "127.0.0.1", s.port);
        char line[256];
        cr_assert(fd >= 0);
        cr_assert(read_line(fd, line, sizeof(line), 5000) > 0, "connection %d not served", i);
        close(fd);
    }
    cr_assert(server_log_contains(&s, "killed by signal 9"));
    stop_ok(&s);
}

/* Milliseconds from connecting to the whoami answer; -1 if none in 5 s. */
static long whoami_ms(int port, int *fd_out)
{
    uint64_t t0 = now_ms();
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    char line[256];
    if (fd < 0)
        return -1;
    ssize_t n = read_line(fd, line, sizeof(line), 5000);
    if (fd_out != NULL)
        *fd_out = fd;
    else
        close(fd);
    return n > 0 ? (long)(now_ms() - t0) : -1;
}

/* --pass-delay-us (here 400 ms, so that timing cannot blur it): a worker
 * sent nothing lately, or with fewer than --pass-delay-conns connections,
 * gets its fd at once; a busy one sent fds less than the delay ago gets the
 * next ones when the delay ends, together. */
Test(core, pass_delay_holds_fds_only_for_a_busy_worker_after_a_recent_message, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "1", "--protocol", "whoami",
                           "--pass-delay-us", "400000", "--pass-delay-conns", "2", NULL };
    cr_assert_eq(server_start(&s, args), 0);
    int held[2];
    long first = whoami_ms(s.port, &held[0]);
    cr_assert(first >= 0 && first < 300, "a lone client waited %ld ms", first);
    /* Sent fds a moment ago, but with 1 connection the worker is not busy. */
    long second = whoami_ms(s.port, &held[1]);
    cr_assert(second >= 0 && second < 300, "a client of an idle worker waited %ld ms", second);
    /* Now 2 connections, and a message just went: held until 400 ms after
     * it. Two clients that arrive meanwhile are answered together. */
    uint64_t t0 = now_ms();
    int a = tcp_connect(NULL, "127.0.0.1", s.port), b = tcp_connect(NULL, "127.0.0.1", s.port);
    char line[256];
    cr_assert(a >= 0 && b >= 0);
    cr_assert(read_line(a, line, sizeof(line), 5000) > 0);
    long ta = (long)(now_ms() - t0);
    cr_assert(read_line(b, line, sizeof(line), 5000) > 0);
    long tb = (long)(now_ms() - t0);
    cr_assert(ta >= 200, "held for only %ld ms", ta);
    cr_assert(tb - ta < 150, "the two held fds went %ld ms apart", tb - ta);
    close(a);
    close(b);
    close(held[0]);
    close(held[1]);
    /* Once the worker has been sent nothing for longer than the delay, a
     * client is served at once again. */
    usleep(600000);
    long later = whoami_ms(s.port, NULL);
    cr_assert(later >= 0 && later < 300, "a client after a quiet spell waited %ld ms", later);
    stop_ok(&s);
}

Test(core, sigterm_lets_open_connections_finish, .timeout = 30)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    struct server s;
    start(&s, "echo", "2");
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    echo_round_trip(fd, 100);
    pid_t master = s.pid;
    kill(master, SIGTERM);
    usleep(200000);
    /* Still served while draining; new connections are refused. */
    echo_round_trip(fd, 1000);
    cr_assert_eq(tcp_connect(NULL, "127.0.0.1", s.port), -1);
    uint64_t t0 = now_ms();
    close(fd);
    int st;
    cr_assert_eq(server_stop(&s, 0, 4000, &st), 0, "did not exit once the client left");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert(now_ms() - t0 < 4000);
}

Test(core, drain_timeout_bounds_a_stuck_client, .timeout = 30)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "1", "--protocol", "echo",
                           "--drain-timeout", "0.5", NULL };
    cr_assert_eq(server_start(&s, args), 0);
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    echo_round_trip(fd, 10);
    uint64_t t0 = now_ms();
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 5000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert(now_ms() - t0 < 3000, "took %llu ms", (unsigned long long)(now_ms() - t0));
    char buf[4];
    cr_assert_eq(read_to_eof(fd, buf, sizeof(buf), 2000), 0, "client not closed");
    close(fd);
}

Test(core, sigquit_stops_at_once, .timeout = 30)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    struct server s;
    start(&s, "echo", "2");
    pid_t kids[8];
    int n = proc_children(s.pid, kids, 8);
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    echo_round_trip(fd, 10);
    uint64_t t0 = now_ms();
    int st;
    cr_assert_eq(server_stop(&s, SIGQUIT, 3000, &st), 0);
    cr_assert(now_ms() - t0 < 2000);
    for (int i = 0; i < n; i++)
        cr_assert(!proc_alive(kids[i]));
    close(fd);
}

/* Run handoffd with ARGS and return its exit status; stdout+stderr in OUT. */
static int run_cli(const char *const *args, char *out, size_t len)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        const char *argv[16] = { getenv("HANDOFFD") ? getenv("HANDOFFD") : "build/handoffd" };
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    ssize_t n = read_to_eof(p[0], out, len - 1, 5000);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(core, command_line_errors_exit_2_with_a_message)
{
    static const char *const cases[][4] = {
        { "--workers", "0", NULL }, { "--workers", "x", NULL }, { "--listen", "[::1", NULL },
        { "--listen", "99999", NULL }, { "--protocol", "gopher", NULL }, { "--bogus", NULL },
        { "--dispatch", "random", NULL }, { "--backlog", NULL }, { "stray", NULL },
        { "--max-batch", "65", NULL }, { "--drain-timeout", "-1", NULL },
        { "--pass-delay-us", "1000001", NULL }, { "--pass-delay-us", "-1", NULL },
        { "--pass-delay-conns", "-1", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[4096];
        int rc = run_cli(cases[i], out, sizeof(out));
        cr_expect_eq(rc, 2, "%s %s: exit %d", cases[i][0], cases[i][1] ? cases[i][1] : "", rc);
        cr_expect(strstr(out, "handoffd: ") != NULL, "no message for %s: %s", cases[i][0], out);
    }
    char out[8192];
    const char *help[] = { "--help", NULL };
    cr_assert_eq(run_cli(help, out, sizeof(out)), 0);
    cr_assert(strstr(out, "--listen") && strstr(out, "--dispatch"));
    const char *ver[] = { "--version", NULL };
    cr_assert_eq(run_cli(ver, out, sizeof(out)), 0);
    cr_assert(strncmp(out, "handoffd ", 9) == 0);
}

/* Hold 400 connections: both policies must give every worker 100. */
static void held_spread(const char *policy)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "4", "--protocol", "whoami",
                           "--dispatch", policy, NULL };
    cr_assert_eq(server_start(&s, args), 0);
    int fds[400], count[4] = { 0 };
    for (int i = 0; i < 400; i++) {
        fds[i] = tcp_connect("127.0.0.6", "127.0.0.1", s.port);
        cr_assert(fds[i] >= 0);
        char line[256];
        cr_assert(read_line(fds[i], line, sizeof(line), 5000) > 0);
        int k = -1;
        sscanf(strstr(line, " worker="), " worker=%d", &k);
        cr_assert(k >= 0 && k < 4);
        count[k]++;
    }
    for (int k = 0; k < 4; k++)
        cr_expect_eq(count[k], 100, "%s: worker %d got %d of 400", policy, k, count[k]);
    for (int i = 0; i < 400; i++)
        close(fds[i]);
    stop_ok(&s);
}

Test(core, least_spreads_held_connections_evenly, .timeout = 60) { held_spread("least"); }
Test(core, rr_spreads_held_connections_evenly, .timeout = 60) { held_spread("rr"); }

/* Wait for slot 0's process to be replaced; returns the new pid or -1. */
static pid_t wait_new_child(pid_t master, pid_t old, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < deadline) {
        pid_t kids[4];
        if (proc_children(master, kids, 4) == 1 && kids[0] != old)
            return kids[0];
        usleep(2000);
    }
    return -1;
}

Test(core, crash_loop_respawns_with_growing_back_off, .timeout = 30)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    struct server s;
    start(&s, "echo", "1");
    pid_t kids[4];
    cr_assert_eq(proc_children(s.pid, kids, 4), 1);
    pid_t cur = kids[0];
    usleep(1100000); /* the first worker lived long enough: no back-off */
    kill(cur, SIGKILL);
    cur = wait_new_child(s.pid, cur, 1000);
    cr_assert(cur > 0, "not respawned within 1 s");
    /* Each later worker dies at once: the delays must grow. */
    uint64_t gaps[3];
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = now_ms();
        kill(cur, SIGKILL);
        cur = wait_new_child(s.pid, cur, 5000);
        cr_assert(cur > 0);
        gaps[i] = now_ms() - t0;
    }
    cr_assert(gaps[0] >= 90 && gaps[1] >= 190 && gaps[2] >= 390, "gaps %llu %llu %llu",
              (unsigned long long)gaps[0], (unsigned long long)gaps[1],
              (unsigned long long)gaps[2]);
    cr_assert(server_log_contains(&s, "respawning in 400 ms"));
    stop_ok(&s);
}
