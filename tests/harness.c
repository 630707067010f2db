/* harness: see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *handoffd_path(void)
{
    const char *p = getenv("HANDOFFD");
    return p != NULL ? p : "build/handoffd";
}

char *server_log_read(const struct server *s)
{
    FILE *f = fopen(s->log_path, "re");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

bool server_log_contains(const struct server *s, const char *needle)
{
    char *buf = server_log_read(s);
    bool found = buf != NULL && strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

/* Servers started and not yet stopped, so a test that fails half way
 * still leaves no process behind (see server_kill_leftovers). */
static pid_t harness_live[16];
static pid_t harness_owner; /* the process that started them */

static void harness_track(pid_t pid, bool on)
{
    for (size_t i = 0; i < sizeof(harness_live) / sizeof(harness_live[0]); i++) {
        if (on && harness_live[i] == 0) {
            harness_live[i] = pid;
            return;
        }
        if (!on && harness_live[i] == pid) {
            harness_live[i] = 0;
            return;
        }
    }
}

void server_kill_leftovers(void)
{
    if (getpid() != harness_owner)
        return; /* a forked helper exiting: the servers are not its own */
    for (size_t i = 0; i < sizeof(harness_live) / sizeof(harness_live[0]); i++) {
        pid_t pid = harness_live[i];
        if (pid <= 0)
            continue;
        pid_t kids[64];
        int n = proc_children(pid, kids, 64);
        for (int k = 0; k < n; k++) {
            kill(kids[k], SIGKILL); /* also a worker a test stopped */
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        harness_live[i] = 0;
    }
}

bool under_checker(void)
{
    const char *wrap = getenv("HANDOFFD_WRAPPER");
    return wrap != NULL && wrap[0] != '\0';
}

bool server_log_has_reports(const struct server *s)
{
    char *buf = server_log_read(s);
    if (buf == NULL)
        return false;
    bool bad = strstr(buf, "Sanitizer") != NULL || strstr(buf, "runtime error:") != NULL;
    /* valgrind: any error, or an fd other than stdio open at exit. */
    for (char *p = buf; !bad && (p = strstr(p, "ERROR SUMMARY: ")) != NULL; p++)
        bad = atoi(p + 15) != 0;
    for (char *p = buf; !bad && (p = strstr(p, "FILE DESCRIPTORS: ")) != NULL; p++) {
        int open_fds = 0, std = 0;
        if (sscanf(p, "FILE DESCRIPTORS: %d open (%d std)", &open_fds, &std) == 2 &&
            open_fds != std)
            bad = true;
    }
    free(buf);
    return bad;
}

int server_start(struct server *s, const char *const *args)
{
    return server_start_limited(s, args, 0);
}

int server_start_limited(struct server *s, const char *const *args, int nofile)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->log_path, sizeof(s->log_path), "/tmp/handoff-test-XXXXXX");
    int logfd = mkstemp(s->log_path);
    if (logfd < 0)
        return -1;
    const char *argv[64];
    size_t n = 0;
    argv[n++] = handoffd_path();
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        dup2(logfd, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        /* The server inherits nothing of the test process but stdio. */
        close_range(3, ~0U, 0);
        if (nofile > 0) {
            struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        /* HANDOFFD_WRAPPER (e.g. "valgrind --track-fds=yes") runs the
         * server under a checker: its words go before argv. */
        const char *wrap = getenv("HANDOFFD_WRAPPER");
        if (wrap != NULL && wrap[0] != '\0') {
            static char words[1024];
            const char *wargv[96];
            size_t k = 0;
            snprintf(words, sizeof(words), "%s", wrap);
            for (char *save, *t = strtok_r(words, " ", &save); t != NULL && k < 32;
                 t = strtok_r(NULL, " ", &save))
                wargv[k++] = t;
            for (size_t i = 0; i <= n; i++)
                wargv[k + i] = argv[i];
            execvp(wargv[0], (char *const *)wargv);
            _exit(127);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    s->pid = pid;
    static bool registered;
    harness_owner = getpid();
    if (!registered) {
        atexit(server_kill_leftovers);
        registered = true;
    }
    harness_track(pid, true);
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        char buf[8192];
        int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
        ssize_t r = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (r > 0) {
            buf[r] = '\0';
            char *l = strstr(buf, "handoffd: listening ");
            char *nl = l ? strchr(l, '\n') : NULL;
            if (l != NULL && nl != NULL) {
                *nl = '\0';
                snprintf(s->line, sizeof(s->line), "%s", l);
                char *p = strstr(l, ":");
                /* "{HOST:PORT, *:*}": the port follows the last ':' before ',' */
                char *comma = strchr(l, ',');
                for (p = comma; p > l && p[-1] != ':'; p--)
                    ;
                s->port = atoi(p);
                return s->port > 0 ? 0 : -1;
            }
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return -1;
}

int server_stop(struct server *s, int sig, int timeout_ms, int *status)
{
    int st = 0;
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < deadline) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            if (status)
                *status = st;
            harness_track(s->pid, false);
            s->pid = 0;
            /* Workers' sanitizer reports land in the same log: a stop is
             * only clean if none of the server's processes reported. */
            usleep(50000);
            if (server_log_has_reports(s))
                return -2;
            return 0;
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    if (status)
        *status = st;
    harness_track(s->pid, false);
    s->pid = 0;
    return -1;
}

bool proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int proc_children(pid_t pid, pid_t *out, int max)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int k = 0;
    char *save, *tok = strtok_r(buf, " \n", &save);
    while (tok != NULL && k < max) {
        pid_t c = (pid_t)atoi(tok);
        if (proc_alive(c))
            out[k++] = c;
        tok = strtok_r(NULL, " \n", &save);
    }
    return k;
}

bool proc_wait_children(pid_t pid, int n, int timeout_ms)
{
    pid_t kids[1024];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    do {
        if (proc_children(pid, kids, 1024) == n)
            return true;
        usleep(10000);
    } while (now_ms() < deadline);
    return false;
}

int tcp_connect(const char *src, const char *dst, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, dst, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, dst, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        sl = sizeof(*s6);
    } else
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (src != NULL) {
        struct sockaddr_storage b;
        memset(&b, 0, sizeof(b));
        struct sockaddr_in *b4 = (struct sockaddr_in *)&b;
        struct sockaddr_in6 *b6 = (struct sockaddr_in6 *)&b;
        socklen_t bl;
        if (inet_pton(AF_INET, src, &b4->sin_addr) == 1) {
            b4->sin_family = AF_INET;
            bl = sizeof(*b4);
        } else if (inet_pton(AF_INET6, src, &b6->sin6_addr) == 1) {
            b6->sin6_family = AF_INET6;
            bl = sizeof(*b6);
        } else {
            close(fd);
            return -1;
        }
        if (bind(fd, (struct sockaddr *)&b, bl) < 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_readable(int fd, uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline)
        return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, (int)(deadline - now));
    return r > 0 ? 0 : -1;
}

ssize_t read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t n = 0;
    while (n + 1 < len) {
        if (wait_readable(fd, deadline) < 0)
            return -1;
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r <= 0)
            return -1;
        if (ch == '\n') {
            buf[n] = '\0';
            return (ssize_t)n;
        }
        buf[n++] = ch;
    }
    return -1;
}

int read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t n = 0;
    while (n < len) {
        if (wait_readable(fd, deadline) < 0)
            return -1;
        ssize_t r = read(fd, (char *)buf + n, len - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    return 0;
}

ssize_t read_to_eof(int fd, void *buf, size_t len, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t n = 0;
    for (;;) {
        if (wait_readable(fd, deadline) < 0)
            return -1;
        char scratch[4096];
        char *dst = n < len ? (char *)buf + n : scratch;
        size_t room = n < len ? len - n : sizeof(scratch);
        ssize_t r = read(fd, dst, room);
        if (r == 0)
            return (ssize_t)(n < len ? n : len);
        if (r < 0)
            return errno == ECONNRESET ? (ssize_t)(n < len ? n : len) : -1;
        n += (size_t)r;
    }
}

int write_all(int fd, const void *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        ssize_t w = write(fd, (const char *)buf + n, len - n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        n += (size_t)w;
    }
    return 0;
}

int client_pair_as_server_sees(int fd, char *buf, size_t len)
{
    struct sockaddr_storage l, p;
    socklen_t ll = sizeof(l), pl = sizeof(p);
    if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 ||
        getpeername(fd, (struct sockaddr *)&p, &pl) < 0)
        return -1;
    return addr_format_pair((struct sockaddr *)&p, (struct sockaddr *)&l, buf, len);
}
