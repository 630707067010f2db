/* test_ops: what an operator does to a running server: reload (SIGHUP),
 * binary upgrade (SIGUSR2), log rotation (SIGUSR1), pid file, config file
 * and privilege drop. Under a steady stream of clients, none may fail. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct server srv;

static void ops_fini(void)
{
    if (srv.pid > 0)
        server_stop(&srv, SIGKILL, 5000, NULL);
}

TestSuite(ops, .fini = ops_fini, .timeout = 60);

/* A child process that makes whoami connections back to back for MS
 * milliseconds; its exit status is the number of failed ones (capped). */
static pid_t client_loop(int port, int ms)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int failed = 0, done = 0;
    uint64_t until = now_ms() + (uint64_t)ms;
    while (now_ms() < until) {
        int fd = tcp_connect(NULL, "127.0.0.1", port);
        char line[256];
        if (fd < 0 || read_line(fd, line, sizeof(line), 3000) <= 0)
            failed++;
        if (fd >= 0)
            close(fd);
        done++;
    }
    _exit(done == 0 ? 255 : (failed > 200 ? 200 : failed));
}

static int client_wait(pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 254;
}

static int count_in_log(const struct server *s, const char *needle)
{
    char *buf = server_log_read(s);
    int k = 0;
    for (char *p = buf; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        k++;
    free(buf);
    return k;
}

static bool wait_log(const struct server *s, const char *needle, int times, int ms)
{
    uint64_t until = now_ms() + (uint64_t)ms;
    while (now_ms() < until) {
        if (count_in_log(s, needle) >= times)
            return true;
        usleep(10000);
    }
    return false;
}

Test(ops, reloads_under_load_refuse_nothing_and_replace_every_worker)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    /* --pass-delay-conns 0: every worker counts as busy, so fds are held
     * back (--pass-delay-us) throughout, and reloads retire workers with
     * fds waiting in their queues. */
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol", "whoami",
                           "--admin", "off", "--pass-delay-conns", "0", NULL };
    cr_assert_eq(server_start(&srv, args), 0);
    pid_t before[4];
    cr_assert_eq(proc_children(srv.pid, before, 4), 2);
    pid_t clients[2] = { client_loop(srv.port, 2500), client_loop(srv.port, 2500) };
    for (int i = 0; i < 5; i++) {
        usleep(300000);
        kill(srv.pid, SIGHUP);
        cr_assert(wait_log(&srv, "reload complete", i + 1, 3000), "reload %d incomplete", i + 1);
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(client_wait(clients[i]), 0, "client %d saw failures", i);
    cr_assert(proc_wait_children(srv.pid, 2, 3000), "old generation did not exit");
    pid_t after[4];
    cr_assert_eq(proc_children(srv.pid, after, 4), 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            cr_assert_neq(after[i], before[j], "worker %d survived the reloads", (int)before[j]);
    int st;
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert(server_log_contains(&srv, "refused 0, lost 0"), "connections refused or lost");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(ops, reload_reads_the_config_file_and_a_bad_one_changes_nothing)
{
    char cfg[] = "/tmp/handoff-ops-XXXXXX";
    int fd = mkstemp(cfg);
    close(fd);
    write_file(cfg, "# handoffd settings\n[handoffd]\nprotocol = whoami\nworkers = 2\n");
    const char *args[] = { "--config", cfg, "--listen", "127.0.0.1:0", "--admin", "off", NULL };
    cr_assert_eq(server_start(&srv, args), 0);
    cr_assert(strstr(srv.line, "workers=2 protocol=whoami") != NULL, "%s", srv.line);

    /* A broken file: refused, the same workers go on. */
    pid_t kids[4];
    cr_assert_eq(proc_children(srv.pid, kids, 4), 2);
    write_file(cfg, "protocol = gopher\n");
    kill(srv.pid, SIGHUP);
    cr_assert(wait_log(&srv, "reload failed", 1, 3000));
    cr_assert(server_log_contains(&srv, "--protocol: unknown 'gopher'"));
    pid_t same[4];
    usleep(100000);
    cr_assert_eq(proc_children(srv.pid, same, 4), 2);
    cr_assert((same[0] == kids[0] || same[0] == kids[1]) && (same[1] == kids[0] || same[1] == kids[1]));

    /* A good change: the new generation speaks echo. */
    write_file(cfg, "protocol = echo\nworkers = 1\n");
    kill(srv.pid, SIGHUP);
    cr_assert(wait_log(&srv, "reload complete", 1, 3000));
    cr_assert(proc_wait_children(srv.pid, 1, 3000));
    int c = tcp_connect(NULL, "127.0.0.1", srv.port);
    cr_assert_eq(write_all(c, "ping\n", 5), 0);
    char line[64];
    cr_assert(read_line(c, line, sizeof(line), 3000) > 0);
    cr_assert_str_eq(line, "ping");
    close(c);
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, NULL), 0);
    unlink(cfg);
}

Test(ops, binary_upgrade_hands_over_without_refusing_anyone)
{
    if (under_checker())
        cr_skip_test("exec of /proc/self/exe; skipped under a checker");
    /* The new master is the old one's child: once the old one exits it is
     * reparented here, so this test can stop and reap it. */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char pidfile[] = "/tmp/handoff-ops-pid-XXXXXX";
    close(mkstemp(pidfile));
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol", "whoami",
                           "--admin", "127.0.0.1:0", "--pid-file", pidfile, NULL };
    cr_assert_eq(server_start(&srv, args), 0);
    pid_t old = srv.pid;
    pid_t client = client_loop(srv.port, 2000);
    usleep(500000);
    kill(old, SIGUSR2);
    cr_assert(wait_log(&srv, "handoffd: listening", 2, 5000), "no start-up line from the new master");
    int st;
    for (uint64_t until = now_ms() + 5000; now_ms() < until;)
        if (waitpid(old, &st, WNOHANG) == old)
            break;
        else
            usleep(10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "old master did not exit cleanly");
    cr_assert_eq(client_wait(client), 0, "clients were refused during the upgrade");

    /* The pid file names the new master, which serves through its workers. */
    FILE *f = fopen(pidfile, "r");
    int newpid = 0;
    cr_assert(f != NULL && fscanf(f, "%d", &newpid) == 1);
    fclose(f);
    cr_assert(newpid > 0 && newpid != old);
    srv.pid = newpid;
    pid_t kids[4];
    cr_assert(proc_wait_children(newpid, 2, 3000));
    cr_assert_eq(proc_children(newpid, kids, 4), 2);
    int c = tcp_connect(NULL, "127.0.0.1", srv.port);
    char line[256], want[32];
    cr_assert(read_line(c, line, sizeof(line), 3000) > 0);
    snprintf(want, sizeof(want), "pid=%d", (int)kids[0]);
    bool mine = strstr(line, want) != NULL;
    snprintf(want, sizeof(want), "pid=%d", (int)kids[1]);
    cr_assert(mine || strstr(line, want) != NULL, "served by %s", line);
    close(c);
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert(access(pidfile, F_OK) != 0, "pid file left behind");
}

Test(ops, pid_file_and_log_reopen_on_sigusr1)
{
    char dir[] = "/tmp/handoff-ops-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pidfile[128], log[128], rotated[128];
    snprintf(pidfile, sizeof(pidfile), "%s/handoffd.pid", dir);
    snprintf(log, sizeof(log), "%s/handoffd.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/handoffd.log.1", dir);
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "1", "--admin", "off",
                           "--pid-file", pidfile, "--log-file", log, NULL };
    cr_assert_eq(server_start(&srv, args), 0);
    FILE *f = fopen(pidfile, "r");
    int pid = 0;
    cr_assert(f != NULL && fscanf(f, "%d", &pid) == 1);
    fclose(f);
    cr_assert_eq(pid, srv.pid);
    cr_assert_eq(rename(log, rotated), 0);
    kill(srv.pid, SIGUSR1);
    bool reopened = false;
    for (uint64_t until = now_ms() + 3000; !reopened && now_ms() < until; usleep(10000))
        reopened = access(log, F_OK) == 0;
    cr_assert(reopened, "log not reopened after SIGUSR1");
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, NULL), 0);
    cr_assert(access(pidfile, F_OK) != 0, "pid file not removed at exit");
    char buf[4096] = "";
    int fd = open(log, O_RDONLY);
    cr_assert(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    cr_assert(strstr(buf, "stopping") != NULL, "new log lacks later lines: %s", buf);
    unlink(log);
    unlink(rotated);
    rmdir(dir);
}

static long status_field(pid_t pid, const char *key)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, key);
    return p != NULL ? strtol(p + strlen(key), NULL, key[0] == 'C' ? 16 : 10) : -1;
}

Test(ops, user_drops_workers_privileges_after_a_low_port_bind)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL)
        cr_skip_test("no user 'nobody'");
    /* A port below 1024 that is free, the seed's 21 if possible. */
    int started = -1;
    char where[32];
    for (int port = 21; port < 1024 && started != 0; port += 97) {
        snprintf(where, sizeof(where), "127.0.0.1:%d", port);
        const char *args[] = { "--listen", where, "--workers", "2", "--protocol", "whoami",
                               "--admin", "off", "--user", "nobody", NULL };
        started = server_start(&srv, args);
    }
    cr_assert_eq(started, 0, "could not start on a low port");
    cr_assert(srv.port < 1024);
    pid_t kids[4];
    cr_assert_eq(proc_children(srv.pid, kids, 4), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(status_field(kids[i], "Uid:\t"), (long)pw->pw_uid);
        cr_assert_eq(status_field(kids[i], "Gid:\t"), (long)pw->pw_gid);
        cr_assert_eq(status_field(kids[i], "CapEff:\t"), 0);
    }
    /* The master keeps setuid, setgid, kill and bind-service only. */
    cr_assert_eq(status_field(srv.pid, "CapEff:\t"), 0x4e0);
    int c = tcp_connect(NULL, "127.0.0.1", srv.port);
    char line[256];
    cr_assert(read_line(c, line, sizeof(line), 3000) > 0);
    close(c);
    /* A worker killed now is respawned as nobody too. */
    kill(kids[0], SIGKILL);
    pid_t now[4];
    bool replaced = false;
    for (uint64_t until = now_ms() + 5000; !replaced && now_ms() < until; usleep(10000))
        replaced = proc_children(srv.pid, now, 4) == 2 && now[0] != kids[0] && now[1] != kids[0];
    cr_assert(replaced, "killed worker not replaced");
    for (int i = 0; i < 2; i++)
        cr_assert_eq(status_field(now[i], "Uid:\t"), (long)pw->pw_uid);
    int st;
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Exit status of handoffd ARGS (stdio to /dev/null). */
static int run_status(const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 1);
        dup2(devnull, 2);
        const char *argv[16] = { getenv("HANDOFFD") ? getenv("HANDOFFD") : "build/handoffd" };
        for (int i = 0; args[i] != NULL && i < 14; i++)
            argv[i + 1] = args[i];
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ops, check_config_validates_and_exits)
{
    char cfg[] = "/tmp/handoff-ops-XXXXXX";
    close(mkstemp(cfg));
    const char *args[] = { "--config", cfg, "--check-config", NULL };
    write_file(cfg, "listen = 127.0.0.1:0\nworkers = 3\nproxy-protocol = yes\n");
    cr_assert_eq(run_status(args), 0);
    static const char *const bad[] = {
        "workers = 0\n", "no-such-key = 1\n", "[elsewhere]\nworkers = 2\n",
        "proxy-protocol = maybe\n", "listen = [::1\n", "this is not ini\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(cfg, bad[i]);
        cr_assert_eq(run_status(args), 2, "accepted: %s", bad[i]);
    }
    /* The command line overrides the file. */
    write_file(cfg, "workers = 0\n");
    const char *over[] = { "--config", cfg, "--workers", "2", "--check-config", NULL };
    cr_assert_eq(run_status(over), 2, "a bad file is an error even when overridden");
    write_file(cfg, "workers = 3\n");
    const char *over2[] = { "--config", cfg, "--workers", "x", "--check-config", NULL };
    cr_assert_eq(run_status(over2), 2);
    const char *missing[] = { "--config", "/nonexistent/handoffd.ini", "--check-config", NULL };
    cr_assert_eq(run_status(missing), 2);
    unlink(cfg);
}

static const char *bench_path(void)
{
    static char path[512];
    const char *b = getenv("HANDOFF_BENCH");
    if (b != NULL)
        return b;
    const char *h = getenv("HANDOFFD") ? getenv("HANDOFFD") : "build/handoffd";
    snprintf(path, sizeof(path), "%.*shandoff-bench",
             (int)(strrchr(h, '/') ? strrchr(h, '/') - h + 1 : 0), h);
    return path;
}

Test(ops, http_keepalive_clients_see_no_error_across_reloads)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol", "http",
                           "--admin", "off", NULL };
    cr_assert_eq(server_start(&srv, args), 0);
    char target[64], out[] = "/tmp/handoff-ops-bench-XXXXXX";
    snprintf(target, sizeof(target), "127.0.0.1:%d", srv.port);
    int ofd = mkstemp(out);
    pid_t bench = fork();
    if (bench == 0) {
        dup2(ofd, 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(bench_path(), "handoff-bench", "-m", "keepalive", "--proto", "http", "-c", "50",
              "-d", "3", "-q", "--json", "-t", target, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 5; i++) {
        usleep(400000);
        kill(srv.pid, SIGHUP);
        cr_assert(wait_log(&srv, "reload complete", i + 1, 3000), "reload %d incomplete", i + 1);
    }
    cr_assert_eq(client_wait(bench), 0, "handoff-bench failed");
    char json[8192] = "";
    cr_assert(pread(ofd, json, sizeof(json) - 1, 0) > 0);
    close(ofd);
    unlink(out);
    /* Keep-alive clients reconnect after "Connection: close" from a
     * draining worker: no error, every answer a 2xx. */
    const char *e = strstr(json, "\"errors\":{\"total\":");
    cr_assert(e != NULL, "%s", json);
    cr_assert_eq(atol(e + strlen("\"errors\":{\"total\":")), 0, "%s", json);
    const char *r = strstr(json, "\"requests\":");
    const char *ok = strstr(json, "\"2xx\":");
    cr_assert(r != NULL && ok != NULL);
    cr_assert(atol(r + 11) > 1000, "%s", json);
    cr_assert_eq(strstr(json, "\"4xx\":0") != NULL && strstr(json, "\"5xx\":0") != NULL, true,
                 "%s", json);
    cr_assert_eq(server_stop(&srv, SIGTERM, 15000, NULL), 0);
}
