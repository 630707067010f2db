/* test_reliability_lib: see test_reliability.h. */
#include "test_reliability.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

bool soak_full(void)
{
    const char *v = getenv("HANDOFF_SOAK");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

long soak_pick(long short_v, long full_v)
{
    return soak_full() ? full_v : short_v;
}

/* Tabs and newlines would break the row; the report is for people. */
static void put_field(FILE *f, const char *s)
{
    for (; *s != '\0'; s++)
        fputc(*s == '\t' || *s == '\n' ? ' ' : *s, f);
    fputc('\t', f);
}

void soak_report(const struct soak_row *row)
{
    const char *path = getenv("HANDOFF_SOAK_REPORT");
    if (path == NULL || path[0] == '\0')
        return;
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return;
    put_field(f, row->scenario);
    put_field(f, row->load);
    put_field(f, row->faults);
    fprintf(f, "%llu\t%llu\t%llu\t", (unsigned long long)row->attempted,
            (unsigned long long)row->failed, (unsigned long long)row->lost);
    if (row->fds_leaked >= 0)
        fprintf(f, "%ld\t", row->fds_leaked);
    else
        fputs("-\t", f);
    if (row->p99_ms >= 0)
        fprintf(f, "%.3f\t", row->p99_ms);
    else
        fputs("-\t", f);
    put_field(f, row->note);
    fputc('\n', f);
    fclose(f);
}

/* ---- clean-up after a failed assertion -------------------------------------- */

/* Processes this test started: servers' masters, tools, forked workers. */
static pid_t tracked[16];

void track_pid(pid_t pid)
{
    for (size_t i = 0; i < sizeof(tracked) / sizeof(tracked[0]); i++)
        if (tracked[i] <= 0) {
            tracked[i] = pid;
            return;
        }
}

void reliability_fini(void)
{
    for (size_t i = 0; i < sizeof(tracked) / sizeof(tracked[0]); i++) {
        pid_t pid = tracked[i];
        tracked[i] = 0;
        /* Only a child of ours not yet waited for: a pid that was reaped
         * may already belong to someone else. */
        if (pid <= 0 || waitpid(pid, NULL, WNOHANG) != 0)
            continue;
        pid_t kids[64];
        int n = proc_children(pid, kids, 64);
        kill(pid, SIGKILL);
        for (int k = 0; k < n; k++)
            kill(kids[k], SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

int server_start_tracked(struct server *s, const char *const *args, int nofile)
{
    int rc = server_start_limited(s, args, nofile);
    if (rc == 0)
        track_pid(s->pid);
    return rc;
}

/* ---- handoff-bench --------------------------------------------------------- */

static void bench_tool(char *path, size_t len)
{
    const char *b = getenv("HANDOFF_BENCH");
    const char *d = getenv("HANDOFFD");
    const char *slash = d != NULL ? strrchr(d, '/') : NULL;
    if (b != NULL)
        snprintf(path, len, "%s", b);
    else if (slash != NULL)
        snprintf(path, len, "%.*s/handoff-bench", (int)(slash - d), d);
    else
        snprintf(path, len, "build/handoff-bench");
}

int job_start(struct bench_job *j, const char *tool, const char *const *args)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->out_path, sizeof(j->out_path), "/tmp/handoff-soak-out-XXXXXX");
    snprintf(j->err_path, sizeof(j->err_path), "/tmp/handoff-soak-err-XXXXXX");
    int out = mkstemp(j->out_path);
    int err = mkstemp(j->err_path);
    if (out < 0 || err < 0)
        goto fail;
    const char *argv[48] = { tool };
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    j->pid = fork();
    if (j->pid < 0)
        goto fail;
    if (j->pid > 0)
        track_pid(j->pid);
    if (j->pid == 0) {
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        close_range(3, ~0U, 0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out);
    close(err);
    return 0;
fail:
    if (out >= 0)
        close(out);
    if (err >= 0)
        close(err);
    return -1;
}

int bench_job_start(struct bench_job *j, const char *const *args)
{
    static char tool[4096];
    bench_tool(tool, sizeof(tool));
    return job_start(j, tool, args);
}

bool job_done(struct bench_job *j)
{
    if (!j->reaped && waitpid(j->pid, &j->status, WNOHANG) == j->pid)
        j->reaped = true;
    return j->reaped;
}

int bench_job_finish(struct bench_job *j, int timeout_ms, char *out, size_t len)
{
    int rc = -1;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (!job_done(j) && now_ms() < deadline)
        usleep(20000);
    if (!j->reaped) {
        kill(j->pid, SIGKILL);
        waitpid(j->pid, &j->status, 0);
    } else if (WIFEXITED(j->status)) {
        rc = WEXITSTATUS(j->status);
    }
    out[0] = '\0';
    int fd = open(j->out_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, out, len - 1);
        out[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    j->err_tail[0] = '\0';
    fd = open(j->err_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        off_t room = (off_t)sizeof(j->err_tail) - 1, end = lseek(fd, 0, SEEK_END);
        off_t from = end > room ? end - room : 0;
        ssize_t n = pread(fd, j->err_tail, sizeof(j->err_tail) - 1, from);
        j->err_tail[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    unlink(j->out_path);
    unlink(j->err_path);
    j->pid = 0;
    return rc;
}

double wrk_p99_ms(const char *out)
{
    const char *p = strstr(out, "Latency Distribution");
    if (p == NULL || (p = strstr(p, "99%")) == NULL)
        return -1;
    char unit[8] = "";
    double v;
    if (sscanf(p + 3, " %lf%7[a-z]", &v, unit) != 2)
        return -1;
    if (strcmp(unit, "us") == 0)
        return v / 1000;
    if (strcmp(unit, "ms") == 0)
        return v;
    if (strcmp(unit, "s") == 0)
        return v * 1000;
    if (strcmp(unit, "m") == 0)
        return v * 60000;
    return -1;
}

void load_start(struct bench_job *j, const char *proto, int port, int conns, int secs)
{
    char target[64], c[16], d[16];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    snprintf(c, sizeof(c), "%d", conns);
    snprintf(d, sizeof(d), "%d", secs);
    /* Progress lines (errors so far, once a second) end up in err_tail. */
    const char *args[] = { "-m", "keepalive", "--proto", proto, "-c", c, "-d", d, "-t", target,
                           "-T", "5", "--json", NULL };
    cr_assert_eq(bench_job_start(j, args), 0, "cannot run handoff-bench");
}

double json_num(const char *json, const char *section, const char *key)
{
    char pat[96];
    const char *p = json;
    if (section != NULL) {
        snprintf(pat, sizeof(pat), "\"%s\":{", section);
        if ((p = strstr(json, pat)) == NULL)
            return -1;
    }
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    if ((p = strstr(p, pat)) == NULL)
        return -1;
    return strtod(p + strlen(pat), NULL);
}

/* ---- /proc ------------------------------------------------------------------ */

/* Read /proc/PID/NAME into BUF; returns its length or -1. */
static ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

int proc_sockets(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[384], target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t k = readlink(path, target, sizeof(target) - 1);
        if (k > 0) {
            target[k] = '\0';
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

long proc_rss_kib(pid_t pid)
{
    char buf[4096];
    if (proc_read(pid, "status", buf, sizeof(buf)) < 0)
        return -1;
    const char *p = strstr(buf, "VmRSS:");
    return p != NULL ? strtol(p + 6, NULL, 10) : -1;
}

double proc_cpu_s(pid_t pid)
{
    char buf[128];
    if (proc_read(pid, "schedstat", buf, sizeof(buf)) < 0)
        return -1;
    return (double)strtoull(buf, NULL, 10) / 1e9;
}

long log_sum_after(const char *path, const char *prefix, int *count)
{
    long sum = 0;
    *count = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, prefix);
        if (p != NULL) {
            sum += strtol(p + strlen(prefix), NULL, 10);
            (*count)++;
        }
    }
    fclose(f);
    return sum;
}

/* ---- servers and clients ------------------------------------------------------ */

int workers_of(const struct server *s, pid_t *kids, int n)
{
    cr_assert(proc_wait_children(s->pid, n, 5000), "not %d workers", n);
    return proc_children(s->pid, kids, n);
}

void stop_clean(struct server *s)
{
    int st;
    cr_assert_eq(server_stop(s, SIGTERM, 20000, &st), 0, "no clean exit (log %s)", s->log_path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

double server_cpu_over(const struct server *s, int ms)
{
    pid_t p[16];
    int n = proc_children(s->pid, p + 1, 15) + 1;
    p[0] = s->pid;
    double before[16], used = 0;
    for (int i = 0; i < n; i++)
        before[i] = proc_cpu_s(p[i]);
    usleep((useconds_t)ms * 1000u);
    for (int i = 0; i < n; i++) {
        double d = proc_cpu_s(p[i]) - before[i];
        used = d > used ? d : used;
    }
    return used;
}

int connect_small_buffers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rcv = 4096, snd = 8192;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

void send_until_stalled(const int *fds, int n, uint64_t *sent, stream_fill_fn fill)
{
    static unsigned char chunk[65536];
    uint64_t last_progress = now_ms(), deadline = now_ms() + 20000;
    cr_assert(n <= 64);
    while (now_ms() - last_progress < 500 && now_ms() < deadline) {
        struct pollfd p[64];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & POLLOUT))
                continue;
            fill(i, sent[i], chunk, sizeof(chunk));
            ssize_t w = send(fds[i], chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                sent[i] += (uint64_t)w;
                last_progress = now_ms();
            }
        }
    }
}

void stall_measure(const struct server *s, struct stall *st, int n, stream_fill_fn fill)
{
    pid_t w;
    cr_assert(n <= 64);
    cr_assert_eq(proc_children(s->pid, &w, 1), 1);
    memset(st, 0, sizeof(*st));
    st->n = n;
    long rss0 = proc_rss_kib(w);
    for (int i = 0; i < n; i++)
        st->fds[i] = connect_small_buffers(s->port);
    send_until_stalled(st->fds, n, st->sent, fill);
    st->rss_kib = (double)(proc_rss_kib(w) - rss0) / n;
    st->cpu_s = server_cpu_over(s, 1000);
}

double rss_bound_kib(double data_bytes)
{
#ifdef __SANITIZE_ADDRESS__
    const double sanitizer = 1.25;
#else
    const double sanitizer = 1.0;
#endif
    return (2 * data_bytes / 1024 + 64) * sanitizer;
}

void asan_quarantine_off(void)
{
#ifdef __SANITIZE_ADDRESS__
    char opts[512];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
             old != NULL ? old : "", old != NULL && old[0] != '\0' ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
}

int read_until_closed(int *fds, int n, int timeout_ms, chunk_fn on_data, void *arg,
                      bool *clean)
{
    static unsigned char buf[65536];
    struct pollfd p[128];
    int open_left = n;
    cr_assert(n <= 128);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (open_left > 0 && now_ms() < deadline) {
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        if (poll(p, (nfds_t)n, 500) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0 || p[i].revents == 0)
                continue;
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r > 0) {
                on_data(i, buf, (size_t)r, arg);
                continue;
            }
            clean[i] = r == 0;
            close(fds[i]);
            fds[i] = -1;
            open_left--;
        }
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            clean[i] = false;
            close(fds[i]);
            fds[i] = -1;
        }
    return open_left;
}
