/* test_limits: backpressure and descriptor exhaustion. A full server leaves
 * clients in the kernel backlog; a master out of fds pauses its listener
 * instead of spinning; a worker out of fds refuses the connections it
 * cannot take without disturbing the channel. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"

static double proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

TestSuite(limits, .fini = server_kill_leftovers);

Test(limits, listener_pauses_at_capacity_and_resumes, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "1", "--protocol", "whoami",
                           "--max-conns", "5", NULL };
    cr_assert_eq(server_start(&s, args), 0);
    int fds[5];
    char line[256];
    for (int i = 0; i < 5; i++) {
        fds[i] = tcp_connect(NULL, "127.0.0.1", s.port);
        cr_assert(read_line(fds[i], line, sizeof(line), 5000) > 0);
    }
    /* The sixth completes its handshake in the backlog but is not served. */
    int extra = tcp_connect(NULL, "127.0.0.1", s.port);
    cr_assert(extra >= 0);
    cr_assert_eq(read_line(extra, line, sizeof(line), 500), -1, "served beyond capacity");
    close(fds[0]);
    cr_assert(read_line(extra, line, sizeof(line), 3000) > 0, "not served after a slot freed");
    cr_assert(server_log_contains(&s, "listener paused"));
    for (int i = 1; i < 5; i++)
        close(fds[i]);
    close(extra);
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
}

static int connect_nb(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                               .sin_addr.s_addr = htonl(0x7f000001) };
    connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    return fd;
}

Test(limits, out_of_fds_pauses_without_spinning_and_recovers, .timeout = 60)
{
    enum { N = 800 };
    struct server s;
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "1", "--protocol", "whoami",
                           "--max-batch", "1", "--max-conns", "100000", "--accept-pause-ms",
                           "100", NULL };
    cr_assert_eq(server_start_limited(&s, args, 64), 0);
    pid_t kids[4];
    cr_assert_eq(proc_children(s.pid, kids, 4), 1);
    pid_t worker = kids[0];
    /* A stopped worker stops draining its channel; the master's queue then
     * grows until the master runs out of descriptors. */
    cr_assert_eq(kill(worker, SIGSTOP), 0);
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_nb(s.port);
    usleep(500000);
    cr_assert(server_log_contains(&s, "pausing the listener"), "no EMFILE pause logged");
    double c0 = proc_cpu_seconds(s.pid);
    usleep(1500000);
    double used = proc_cpu_seconds(s.pid) - c0;
    cr_expect(used < 0.3, "master used %.2f s CPU in 1.5 s while out of fds", used);
    cr_assert_eq(kill(worker, SIGCONT), 0);

    /* Every client is either served or closed; none hangs. */
    int done = 0, served = 0;
    uint64_t deadline = now_ms() + 30000;
    while (done < N && now_ms() < deadline) {
        struct pollfd p[N];
        int map[N], k = 0;
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0) {
                p[k].fd = fds[i];
                p[k].events = POLLIN;
                map[k++] = i;
            }
        if (poll(p, (nfds_t)k, 200) <= 0)
            continue;
        for (int j = 0; j < k; j++) {
            if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[256];
            ssize_t r = recv(p[j].fd, buf, sizeof(buf), 0);
            if (r > 0)
                served++;
            close(p[j].fd);
            fds[map[j]] = -1;
            done++;
        }
    }
    cr_assert_eq(done, N, "%d of %d clients neither served nor closed", N - done, N);
    cr_assert(served > 0);
    /* The channel survived: the same worker serves new connections once its
     * closes have caught up (until then a new fd may still be dropped). */
    char line[256] = "";
    bool ok = false;
    for (uint64_t until = now_ms() + 5000; !ok && now_ms() < until;) {
        int fd = tcp_connect(NULL, "127.0.0.1", s.port);
        ok = fd >= 0 && read_line(fd, line, sizeof(line), 1000) > 0;
        if (fd >= 0)
            close(fd);
        if (!ok)
            usleep(50000);
    }
    cr_assert(ok, "not served after recovery");
    char want[32];
    snprintf(want, sizeof(want), "pid=%d", (int)worker);
    cr_assert(strstr(line, want) != NULL, "worker replaced: %s", line);
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
