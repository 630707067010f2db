/* test_deploy: handoffd as it is deployed. sd_notify messages on a fake
 * NOTIFY_SOCKET; `make install` and the installed binary; the systemd unit
 * (systemd-analyze verify), compose.yaml (docker-compose config) and the
 * Dockerfile / Kubernetes manifests (docker/check_deploy.py), each also fed
 * a broken copy to show the check can fail; and the compose topology on
 * loopback: Debian's haproxy with docker/haproxy.cfg in front of three
 * handoffd --proxy-protocol instances. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"

/* ---- running commands -------------------------------------------------------- */

/* Run ARGV (PATH searched) with ENV ("NAME=VALUE", NULL-terminated, may be
 * NULL) added, stdout and stderr captured into OUT. Killed (with its process
 * group) after TIMEOUT_MS. Returns the wait status, or -1 when it could not
 * run or timed out. */
static int run(const char *const *argv, const char *const *env, char *out, size_t outlen,
               int timeout_ms)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        /* A make started from `make test` must not join its jobserver. */
        unsetenv("MAKEFLAGS");
        unsetenv("MFLAGS");
        unsetenv("MAKELEVEL");
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    bool timed_out = false;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        char scratch[4096];
        char *dst = n + 1 < outlen ? out + n : scratch;
        size_t room = n + 1 < outlen ? outlen - 1 - n : sizeof(scratch);
        ssize_t r = read(p[0], dst, room);
        if (r <= 0)
            break;
        if (dst != scratch)
            n += (size_t)r;
    }
    close(p[0]);
    out[n] = '\0';
    int st = -1;
    if (timed_out)
        kill(-pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return timed_out ? -1 : st;
}

static bool exited(int st, int code)
{
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static void remove_tree(const char *dir)
{
    char out[256];
    const char *rm[] = { "rm", "-rf", dir, NULL };
    run(rm, NULL, out, sizeof(out), 10000);
}

/* The test's scratch directory; each test runs in its own process, and its
 * .fini hook removes the directory even after a failed assertion. */
static char tmp_dir[64];

static const char *make_tmpdir(const char *what)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/handoff-%s-XXXXXX", what);
    cr_assert(mkdtemp(tmp_dir) != NULL, "mkdtemp: %s", strerror(errno));
    return tmp_dir;
}

static void tmp_cleanup(void)
{
    if (tmp_dir[0] != '\0')
        remove_tree(tmp_dir);
    tmp_dir[0] = '\0';
}

static const char *handoffd_bin(void)
{
    const char *p = getenv("HANDOFFD");
    return p != NULL ? p : "build/handoffd";
}

/* ---- options ------------------------------------------------------------------- */

Test(deploy, proxy_options_are_checked, .timeout = 30)
{
    char out[8192];
    const char *bin = handoffd_bin();
    static const char *const bad[] = { "0", "-1", "abc", "3601", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = { bin, "--proxy-protocol", "--proxy-timeout", bad[i], NULL };
        int st = run(argv, NULL, out, sizeof(out), 10000);
        cr_assert(exited(st, 2), "--proxy-timeout '%s' accepted (status %d)", bad[i], st);
        cr_assert(strstr(out, "--proxy-timeout") != NULL, "no clear error: %s", out);
    }
    const char *help[] = { bin, "--help", NULL };
    cr_assert(exited(run(help, NULL, out, sizeof(out), 10000), 0));
    cr_assert(strstr(out, "--proxy-protocol") != NULL && strstr(out, "--proxy-timeout") != NULL,
              "--help does not document the PROXY options");
}

/* ---- sd_notify -------------------------------------------------------------------- */

/* Next datagram on FD within TIMEOUT_MS, with the sender's pid. */
static int notify_recv(int fd, char *buf, size_t len, pid_t *pid, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } ctrl;
    struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
                         .msg_controllen = sizeof(ctrl.buf) };
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
            c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof(u));
            *pid = u.pid;
        }
    }
    return 0;
}

static void expect_notify(int fd, const char *state, pid_t master)
{
    char msg[512];
    pid_t from;
    cr_assert(notify_recv(fd, msg, sizeof(msg), &from, 5000) == 0, "no %s within 5 s", state);
    cr_assert(strncmp(msg, state, strlen(state)) == 0 && msg[strlen(state)] == '\n',
              "got '%s', want '%s'", msg, state);
    cr_assert_eq(from, master, "%s sent by pid %d, not the master %d", state, (int)from,
                 (int)master);
}

Test(notify, ready_reloading_and_stopping_reach_the_notify_socket, .timeout = 30,
     .fini = tmp_cleanup)
{
    char path[96];
    const char *dir = make_tmpdir("notify");
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "bind: %s", strerror(errno));
    int on = 1;
    cr_assert(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
    cr_assert(setenv("NOTIFY_SOCKET", path, 1) == 0);

    struct server s;
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol", "whoami",
                           NULL };
    cr_assert_eq(server_start(&s, args), 0, "server did not start");
    expect_notify(fd, "READY=1", s.pid);
    /* Ready means serving: a connection is answered. */
    int c = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    char line[256];
    cr_assert(c >= 0 && read_line(c, line, sizeof(line), 5000) > 0);
    close(c);

    kill(s.pid, SIGHUP);
    expect_notify(fd, "RELOADING=1", s.pid);
    expect_notify(fd, "READY=1", s.pid);

    int st;
    pid_t master = s.pid;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    expect_notify(fd, "STOPPING=1", master);
    char msg[512];
    pid_t from;
    cr_assert(notify_recv(fd, msg, sizeof(msg), &from, 200) < 0, "unexpected '%s'", msg);
    close(fd);
}

/* ---- make install / make docker ------------------------------------------------- */

Test(deploy, make_install_honours_destdir_and_the_binary_runs, .timeout = 120,
     .fini = tmp_cleanup)
{
    char out[16384], path[256];
    const char *dir = make_tmpdir("install");
    char destdir[128];
    snprintf(destdir, sizeof(destdir), "DESTDIR=%s", dir);
    const char *mk[] = { "make", "-s", "install", destdir, "PREFIX=/opt/handoff", NULL };
    int st = run(mk, NULL, out, sizeof(out), 100000);
    cr_assert(exited(st, 0), "make install failed (%d): %s", st, out);

    snprintf(path, sizeof(path), "%s/opt/handoff/bin/handoffd", dir);
    const char *ver[] = { path, "--version", NULL };
    st = run(ver, NULL, out, sizeof(out), 10000);
    cr_assert(exited(st, 0) && strncmp(out, "handoffd ", 9) == 0,
              "installed binary: status %d, '%s'", st, out);

    snprintf(path, sizeof(path), "%s/opt/handoff/lib/systemd/system/handoffd.service", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "no unit at %s", path);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert(strstr(out, "\nExecStart=/opt/handoff/bin/handoffd ") != NULL,
              "unit's ExecStart does not follow PREFIX");
}

Test(deploy, systemd_unit_verifies, .timeout = 120, .fini = tmp_cleanup)
{
    char out[16384], unit[256], prefix[128];
    const char *dir = make_tmpdir("unit");
    /* Installed with PREFIX (no DESTDIR) so ExecStart names a real file,
     * which systemd-analyze insists on. */
    snprintf(prefix, sizeof(prefix), "PREFIX=%s", dir);
    const char *mk[] = { "make", "-s", "install", prefix, NULL };
    int st = run(mk, NULL, out, sizeof(out), 100000);
    cr_assert(exited(st, 0), "make install failed: %s", out);
    snprintf(unit, sizeof(unit), "%s/lib/systemd/system/handoffd.service", dir);
    const char *verify[] = { "systemd-analyze", "verify", "--man=no", unit, NULL };
    st = run(verify, NULL, out, sizeof(out), 30000);
    if (exited(st, 127))
        cr_skip_test("systemd-analyze cannot run here (Debian package systemd): "
                     "deploy/handoffd.service NOT verified");
    /* verify exits 0 on unknown values ("...ignoring"), so output counts too. */
    cr_assert(exited(st, 0) && out[0] == '\0', "systemd-analyze verify (%d):\n%s", st, out);

    /* The same check on a broken copy must complain. */
    char bad[256], cmd[1024];
    snprintf(bad, sizeof(bad), "%s/broken.service", dir);
    snprintf(cmd, sizeof(cmd), "sed 's/^Type=notify$/Type=notfy/' '%s' > '%s'", unit, bad);
    const char *sh[] = { "sh", "-c", cmd, NULL };
    cr_assert(exited(run(sh, NULL, out, sizeof(out), 10000), 0));
    const char *verify_bad[] = { "systemd-analyze", "verify", "--man=no", bad, NULL };
    run(verify_bad, NULL, out, sizeof(out), 30000);
    cr_assert(strstr(out, "notfy") != NULL, "broken unit passed: %s", out);
}

Test(deploy, make_docker_without_an_engine_says_so, .timeout = 60)
{
    char out[4096];
    /* `false` stands in for a docker CLI whose `docker info` fails. */
    const char *mk[] = { "make", "-s", "docker", "DOCKER=false", NULL };
    int st = run(mk, NULL, out, sizeof(out), 50000);
    cr_assert(exited(st, 0), "make docker failed (%d): %s", st, out);
    cr_assert(strstr(out, "no Docker engine available") != NULL, "%s", out);
}

/* ---- compose, Dockerfile, Kubernetes -------------------------------------------- */

Test(deploy, compose_file_is_valid, .timeout = 60, .fini = tmp_cleanup)
{
    char out[8192];
    const char *cfg[] = { "docker-compose", "-f", "docker/compose.yaml", "config", "-q", NULL };
    int st = run(cfg, NULL, out, sizeof(out), 50000);
    cr_assert(!exited(st, 127), "docker-compose missing (Debian package docker-compose)");
    cr_assert(exited(st, 0) && out[0] == '\0', "docker-compose config (%d):\n%s", st, out);

    char cmd[512];
    const char *dir = make_tmpdir("compose");
    snprintf(cmd, sizeof(cmd),
             "sed 's/^  stop_grace_period:/  stop_grace_perod:/' docker/compose.yaml > '%s/c.yaml'",
             dir);
    const char *sh[] = { "sh", "-c", cmd, NULL };
    cr_assert(exited(run(sh, NULL, out, sizeof(out), 10000), 0));
    snprintf(cmd, sizeof(cmd), "%s/c.yaml", dir);
    const char *bad[] = { "docker-compose", "-f", cmd, "config", "-q", NULL };
    st = run(bad, NULL, out, sizeof(out), 50000);
    cr_assert(!exited(st, 0) && strstr(out, "stop_grace_perod") != NULL,
              "broken compose file passed: %s", out);
}

Test(deploy, dockerfile_compose_haproxy_and_k8s_pass_static_checks, .timeout = 60,
     .fini = tmp_cleanup)
{
    char out[16384];
    const char *chk[] = { "/usr/bin/python3", "docker/check_deploy.py", "--binary",
                          handoffd_bin(), NULL };
    int st = run(chk, NULL, out, sizeof(out), 50000);
    cr_assert(exited(st, 0), "check_deploy (%d):\n%s", st, out);
    cr_assert(strstr(out, ", 0 did not") != NULL, "%s", out);

    /* A copy with one replica and a root user must fail on exactly those. */
    char cmd[1024];
    const char *dir = make_tmpdir("manifests");
    snprintf(cmd, sizeof(cmd),
             "cp -r docker '%s/' && sed -i 's/^  replicas: 3$/  replicas: 1/' "
             "'%s/docker/k8s/deployment.yaml' && sed -i 's/^USER 10001:10001$/USER root/' "
             "'%s/docker/Dockerfile'", dir, dir, dir);
    const char *sh[] = { "sh", "-c", cmd, NULL };
    cr_assert(exited(run(sh, NULL, out, sizeof(out), 10000), 0));
    const char *bad[] = { "/usr/bin/python3", "docker/check_deploy.py", "--root", dir, NULL };
    st = run(bad, NULL, out, sizeof(out), 50000);
    cr_assert(exited(st, 1), "broken copy passed (%d): %s", st, out);
    cr_assert(strstr(out, "replicas is not 3") != NULL, "%s", out);
    cr_assert(strstr(out, "non-root USER") != NULL, "%s", out);
}

/* ---- the compose topology on loopback ------------------------------------------- */

/* What the test started, for the fini hook to stop even after a failure. */
static struct server lb_servers[3];
static pid_t lb_haproxy;

static void lb_cleanup(void)
{
    if (lb_haproxy > 0) {
        kill(lb_haproxy, SIGKILL);
        waitpid(lb_haproxy, NULL, 0);
        lb_haproxy = 0;
    }
    for (int i = 0; i < 3; i++)
        if (lb_servers[i].pid > 0)
            server_stop(&lb_servers[i], SIGKILL, 2000, NULL);
    tmp_cleanup();
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    int port = addr_bound_port(fd);
    close(fd);
    return port;
}

/* "show stat" over HAProxy's runtime API; the status of server NAME in
 * backend "handoff" into STATUS. Returns 0, or -1. */
static int haproxy_status(const char *sock, const char *name, char *status, size_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        write_all(fd, "show stat\n", 10) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static char csv[65536];
    ssize_t n = read_to_eof(fd, csv, sizeof(csv) - 1, 2000);
    close(fd);
    if (n <= 0)
        return -1;
    csv[n] = '\0';
    /* Header "# pxname,svname,...": find the status column by name. */
    int col = -1, i = 0;
    char *nl = strchr(csv, '\n');
    if (nl == NULL)
        return -1;
    *nl = '\0';
    for (char *p = csv + 2, *save, *t = strtok_r(p, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save), i++)
        if (strcmp(t, "status") == 0)
            col = i;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "handoff,%s,", name);
    char *row = strstr(nl + 1, prefix);
    if (col < 0 || row == NULL)
        return -1;
    for (i = 0; i < col && row != NULL; i++) {
        row = strchr(row, ',');
        row = row != NULL ? row + 1 : NULL;
    }
    if (row == NULL)
        return -1;
    size_t k = strcspn(row, ",\n");
    snprintf(status, len, "%.*s", (int)k, row);
    return 0;
}

static bool haproxy_wait_status(const char *sock, const char *name, const char *want,
                                int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char st[64] = "";
    do {
        if (haproxy_status(sock, name, st, sizeof(st)) == 0 && strcmp(st, want) == 0)
            return true;
        usleep(50000);
    } while (now_ms() < deadline);
    cr_log_warn("server %s: status '%s', want '%s'", name, st, want);
    return false;
}

/* One connection through HAProxy from SRC: the whoami line must name this
 * very connection (the PROXY header carried the client's address and port);
 * returns the index of the instance whose worker answered, or -1. */
static int lb_request(int port, const char *src)
{
    int fd = tcp_connect(src, "127.0.0.1", port);
    cr_assert(fd >= 0, "connect to haproxy from %s", src);
    char line[256], want[ADDR_PAIRLEN];
    cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0, "no whoami line through haproxy");
    close(fd);
    cr_assert(strncmp(line, want, strlen(want)) == 0 && line[strlen(want)] == ' ',
              "through haproxy: got '%s', want the client's own pair '%s'", line, want);
    int pid = 0;
    const char *p = strstr(line, " pid=");
    cr_assert(p != NULL && sscanf(p, " pid=%d", &pid) == 1, "%s", line);
    for (int i = 0; i < 3; i++) {
        pid_t kids[8];
        int n = lb_servers[i].pid > 0 ? proc_children(lb_servers[i].pid, kids, 8) : 0;
        for (int k = 0; k < n; k++)
            if (kids[k] == pid)
                return i;
    }
    return -1;
}

/* The admin port from "handoffd: admin http://127.0.0.1:PORT", or -1. */
static int lb_admin_port(const struct server *s)
{
    static const char tag[] = "handoffd: admin http://127.0.0.1:";
    char *log = server_log_read(s);
    const char *l = log != NULL ? strstr(log, tag) : NULL;
    int port = l != NULL ? atoi(l + sizeof(tag) - 1) : -1;
    free(log);
    return port;
}

/* Health checks as compose runs them: HAProxy sends GET /healthz to each
 * instance's admin port and wants 200. */
Test(balancer, haproxy_spreads_load_keeps_client_address_and_drops_a_dead_instance,
     .timeout = 60, .fini = lb_cleanup)
{
    static const char *const args[] = { "--listen", "127.0.0.1:0", "--workers", "1",
                                         "--protocol", "whoami", "--proxy-protocol",
                                         "--proxy-timeout", "2", "--admin", "127.0.0.1:0",
                                         NULL };
    for (int i = 0; i < 3; i++)
        cr_assert_eq(server_start(&lb_servers[i], args), 0, "handoffd %d did not start", i);
    for (int i = 0; i < 3; i++)
        cr_assert(proc_wait_children(lb_servers[i].pid, 1, 5000));

    const char *dir = make_tmpdir("haproxy");
    char sock[96], logp[128];
    snprintf(sock, sizeof(sock), "%s/stats.sock", dir);
    snprintf(logp, sizeof(logp), "%s/haproxy.log", dir);
    int hport = free_port();
    static char env[9][160];
    snprintf(env[0], sizeof(env[0]), "HANDOFF_FRONTEND=127.0.0.1:%d", hport);
    for (int i = 0; i < 3; i++) {
        snprintf(env[1 + i], sizeof(env[1 + i]), "HANDOFF_B%d=127.0.0.1:%d", i + 1,
                 lb_servers[i].port);
        int aport = lb_admin_port(&lb_servers[i]);
        cr_assert(aport > 0, "no admin port for handoffd %d", i);
        snprintf(env[4 + i], sizeof(env[4 + i]), "HANDOFF_B%d_CHECK=%d", i + 1, aport);
    }
    snprintf(env[7], sizeof(env[7]), "HANDOFF_STATS_SOCKET=%s", sock);
    snprintf(env[8], sizeof(env[8]), "HANDOFF_CHECK_INTER=200ms");

    lb_haproxy = fork();
    cr_assert(lb_haproxy >= 0);
    if (lb_haproxy == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        for (int i = 0; i < 9; i++)
            putenv(env[i]);
        execlp("haproxy", "haproxy", "-db", "-f", "docker/haproxy.cfg", (char *)NULL);
        execl("/usr/sbin/haproxy", "haproxy", "-db", "-f", "docker/haproxy.cfg", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "h%d", i + 1);
        cr_assert(haproxy_wait_status(sock, name, "UP", 5000),
                  "haproxy not up with %s (Debian package haproxy; log in %s)", name, logp);
    }

    /* Balanced, and every instance sees the real client through PROXY v2. */
    static const char *const srcs[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3" };
    int seen[3] = { 0 };
    for (int i = 0; i < 30; i++) {
        int k = lb_request(hport, srcs[i % 3]);
        cr_assert(k >= 0, "answer from no known instance");
        seen[k]++;
    }
    cr_log_info("leastconn spread over 30 requests: %d/%d/%d", seen[0], seen[1], seen[2]);
    for (int k = 0; k < 3; k++)
        cr_assert(seen[k] >= 5, "leastconn spread %d/%d/%d over 30", seen[0], seen[1], seen[2]);

    /* Instance 2 dies (master and worker): requests keep succeeding, at
     * once through retry + redispatch, then because checks removed it. */
    pid_t kids[8];
    int nk = proc_children(lb_servers[1].pid, kids, 8);
    cr_assert_eq(server_stop(&lb_servers[1], SIGKILL, 2000, NULL), 0);
    for (int k = 0; k < nk; k++)
        kill(kids[k], SIGKILL);
    uint64_t killed = now_ms();
    for (int i = 0; i < 6; i++) {
        int k = lb_request(hport, srcs[i % 3]);
        cr_assert(k == 0 || k == 2, "request %d right after the kill: instance %d", i, k);
    }
    cr_assert(haproxy_wait_status(sock, "h2", "DOWN", 5000), "h2 not marked down");
    cr_log_info("h2 marked DOWN %llu ms after the kill", (unsigned long long)(now_ms() - killed));
    cr_assert(haproxy_wait_status(sock, "h1", "UP", 100) &&
              haproxy_wait_status(sock, "h3", "UP", 100));
    int after[3] = { 0 };
    for (int i = 0; i < 20; i++) {
        int k = lb_request(hport, srcs[i % 3]);
        cr_assert(k == 0 || k == 2, "request %d answered by instance %d", i, k);
        after[k]++;
    }
    cr_assert(after[0] >= 5 && after[2] >= 5, "spread after failover %d/%d", after[0],
              after[2]);

    kill(lb_haproxy, SIGTERM);
    uint64_t deadline = now_ms() + 5000;
    int st;
    while (now_ms() < deadline) {
        if (waitpid(lb_haproxy, &st, WNOHANG) == lb_haproxy) {
            lb_haproxy = 0;
            break;
        }
        usleep(20000);
    }
    for (int i = 0; i < 3; i++) {
        if (lb_servers[i].pid <= 0)
            continue;
        cr_assert_eq(server_stop(&lb_servers[i], SIGTERM, 15000, &st), 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}
