/* test_admin: the --admin listener against the real binary. Pages are
 * fetched over HTTP/1.0 from the port the server printed, /status JSON is
 * parsed with jansson, and every figure is checked against connections the
 * test itself opened (their addresses from getsockname, their worker from
 * the whoami line). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"

#define NCLIENTS 10

/* The server this test started. A failed assertion leaves the test body
 * early; the suite's fini then kills the server so no master outlives the
 * test (its workers exit when their channel closes). */
static pid_t started_pid;

static void admin_teardown(void)
{
    if (started_pid > 0 && waitpid(started_pid, NULL, WNOHANG) == 0) {
        kill(started_pid, SIGKILL);
        waitpid(started_pid, NULL, 0);
    }
    started_pid = 0;
}

TestSuite(admin, .fini = admin_teardown);

/* ---- helpers ---------------------------------------------------------------- */

/* The whole server log (NUL-terminated, static buffer). */
static const char *server_log(const struct server *s)
{
    static char buf[65536];
    buf[0] = '\0';
    int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Port from "handoffd: admin http://127.0.0.1:PORT", or -1. */
static int admin_port(const struct server *s)
{
    const char *l = strstr(server_log(s), "handoffd: admin http://127.0.0.1:");
    return l != NULL ? atoi(l + strlen("handoffd: admin http://127.0.0.1:")) : -1;
}

struct reply {
    int status;        /* HTTP status code, -1 when no valid response */
    char head[2048];   /* status line and headers */
    char *body;        /* malloc'ed, NUL-terminated */
};

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* One HTTP/1.0 request; evhttp closes the connection after the response. */
static void http_do(int port, const char *method, const char *target, struct reply *r)
{
    size_t cap = 1 << 20;
    memset(r, 0, sizeof(*r));
    r->status = -1;
    r->body = calloc(1, 1);
    char *raw = malloc(cap + 1);
    cr_assert_not_null(raw);
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    cr_assert(fd >= 0, "connect to admin port %d: %s", port, strerror(errno));
    char req[512];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method,
                     target);
    cr_assert_eq(write_all(fd, req, (size_t)n), 0);
    ssize_t got = read_to_eof(fd, raw, cap, 5000);
    close(fd);
    cr_assert(got > 0, "no response to %s %s", method, target);
    raw[got] = '\0';
    char *sep = strstr(raw, "\r\n\r\n");
    cr_assert_not_null(sep, "no header end in: %s", raw);
    *sep = '\0';
    snprintf(r->head, sizeof(r->head), "%s", raw);
    cr_assert(sscanf(raw, "HTTP/1.%*d %d", &r->status) == 1, "status line: %s", raw);
    free(r->body);
    r->body = strdup(sep + 4);
    free(raw);
}

static void http_get(int port, const char *target, struct reply *r)
{
    http_do(port, "GET", target, r);
}

/* Value of the sample whose name-and-labels is exactly SERIES, or NAN. */
static double metric(const char *body, const char *series)
{
    size_t len = strlen(series);
    for (const char *l = body; l != NULL && *l != '\0';) {
        if (strncmp(l, series, len) == 0 && l[len] == ' ')
            return strtod(l + len + 1, NULL);
        l = strchr(l, '\n');
        if (l != NULL)
            l++;
    }
    return NAN;
}

/* Every sample belongs to a family introduced by "# HELP" and "# TYPE"
 * earlier, each family appears once, and the body ends with a newline. */
static void check_exposition(const char *body)
{
    char types[64][96];
    char kinds[64][16];
    int ntypes = 0;
    bool help_seen = false;
    cr_assert(body[0] != '\0' && body[strlen(body) - 1] == '\n', "must end with a newline");
    char *copy = strdup(body), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char name[96], kind[16];
        if (strncmp(l, "# HELP ", 7) == 0) {
            cr_assert(sscanf(l + 7, "%95s", name) == 1);
            help_seen = true;
            continue;
        }
        if (strncmp(l, "# TYPE ", 7) == 0) {
            cr_assert(sscanf(l + 7, "%95s %15s", name, kind) == 2, "%s", l);
            cr_assert(help_seen, "TYPE without HELP: %s", l);
            cr_assert(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0 ||
                          strcmp(kind, "histogram") == 0, "%s", l);
            for (int i = 0; i < ntypes; i++)
                cr_assert(strcmp(types[i], name) != 0, "family %s twice", name);
            cr_assert(ntypes < 64);
            snprintf(types[ntypes], sizeof(types[0]), "%s", name);
            snprintf(kinds[ntypes], sizeof(kinds[0]), "%s", kind);
            ntypes++;
            help_seen = false;
            continue;
        }
        cr_assert(l[0] != '#', "stray comment: %s", l);
        size_t n = strcspn(l, "{ ");
        cr_assert(n > 0 && n < sizeof(name), "%s", l);
        memcpy(name, l, n);
        name[n] = '\0';
        /* The sample belongs to the last family declared. */
        cr_assert(ntypes > 0, "sample before any TYPE: %s", l);
        const char *fam = types[ntypes - 1];
        size_t fl = strlen(fam);
        bool ok = strcmp(name, fam) == 0;
        if (!ok && strcmp(kinds[ntypes - 1], "histogram") == 0 && strncmp(name, fam, fl) == 0)
            ok = strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                 strcmp(name + fl, "_count") == 0;
        cr_assert(ok, "sample %s outside its family %s", name, fam);
        const char *val = strrchr(l, ' ');
        char *end;
        cr_assert(val != NULL);
        strtod(val + 1, &end);
        cr_assert(*end == '\0' && end != val + 1, "bad value in: %s", l);
    }
    free(copy);
}

/* Cumulative buckets never decrease and +Inf equals _count. */
static void check_histogram(const char *body)
{
    double prev = 0, last = -1;
    int buckets = 0;
    for (const char *l = strstr(body, "handoff_handoff_latency_seconds_bucket{"); l != NULL;
         l = strstr(l + 1, "handoff_handoff_latency_seconds_bucket{")) {
        const char *v = strchr(l, ' ');
        cr_assert_not_null(v);
        last = strtod(v + 1, NULL);
        cr_assert(last >= prev, "bucket decreased: %.40s", l);
        prev = last;
        buckets++;
    }
    cr_assert(buckets > 2);
    cr_assert_eq(last, metric(body, "handoff_handoff_latency_seconds_bucket{le=\"+Inf\"}"));
    cr_assert_eq(last, metric(body, "handoff_handoff_latency_seconds_count"));
}

static double live_sum(const char *metrics, int workers)
{
    double sum = 0;
    for (int k = 0; k < workers; k++) {
        char series[96];
        snprintf(series, sizeof(series), "handoff_worker_live_connections{worker=\"%d\"}", k);
        double v = metric(metrics, series);
        cr_assert(!isnan(v), "missing %s", series);
        sum += v;
    }
    return sum;
}

/* GET /metrics until SERIES equals WANT, up to 5 s. */
static bool metric_becomes(int port, const char *series, double want)
{
    uint64_t deadline = now_ms() + 5000;
    do {
        struct reply r;
        http_get(port, "/metrics", &r);
        double v = metric(r.body, series);
        reply_free(&r);
        if (v == want)
            return true;
        usleep(20000);
    } while (now_ms() < deadline);
    return false;
}

static json_t *status_json(int port, const char *query)
{
    char target[128];
    struct reply r;
    json_error_t jerr;
    snprintf(target, sizeof(target), "/status?format=json%s", query);
    http_get(port, target, &r);
    cr_assert_eq(r.status, 200, "%s: %d %s", target, r.status, r.body);
    cr_assert(strstr(r.head, "Content-Type: application/json") != NULL, "%s", r.head);
    json_t *j = json_loads(r.body, 0, &jerr);
    cr_assert_not_null(j, "invalid JSON at line %d: %s\n%s", jerr.line, jerr.text, r.body);
    reply_free(&r);
    return j;
}

static json_int_t jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static const char *jstr(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

/* Listening TCP sockets held by PID, from /proc/PID/fd and /proc/net/tcp*. */
static int count_listeners(pid_t pid)
{
    unsigned long inodes[256];
    int ninodes = 0, count = 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL && ninodes < 256;) {
        char link[sizeof(path) + sizeof(e->d_name) + 2], target[64];
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (sscanf(target, "socket:[%lu]", &inodes[ninodes]) == 1)
            ninodes++;
    }
    closedir(d);
    static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    for (int t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (f == NULL)
            continue;
        char line[512];
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned st;
            unsigned long ino;
            if (sscanf(line, " %*d: %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &ino) != 2 ||
                st != 0x0A)
                continue;
            for (int i = 0; i < ninodes; i++)
                count += inodes[i] == ino;
        }
        fclose(f);
    }
    return count;
}

/* Start handoffd with ARGS plus "--listen 0 --admin 127.0.0.1:0". */
static int start_with_admin(struct server *s, const char *const *args)
{
    const char *all[40];
    size_t n = 0;
    all[n++] = "--listen";
    all[n++] = "0";
    all[n++] = "--admin";
    all[n++] = "127.0.0.1:0";
    for (size_t i = 0; args[i] != NULL && n < 39; i++)
        all[n++] = args[i];
    all[n] = NULL;
    if (server_start(s, all) < 0)
        return -1;
    started_pid = s->pid;
    return admin_port(s);
}

static void stop(struct server *s)
{
    int st;
    cr_assert_eq(server_stop(s, SIGTERM, 15000, &st), 0, "server did not stop");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

/* A whoami client: its socket and what the server said about it. */
struct client {
    int fd;
    char pair[ADDR_PAIRLEN];   /* "{LOCAL, FOREIGN}" as the server sees it */
    int worker;                /* worker=K */
    int pid;                   /* pid=PID */
    bool matched;              /* found on /status */
};

static void whoami_open(struct client *c, const char *src, int port)
{
    char line[256];
    c->fd = tcp_connect(src, src, port);
    cr_assert(c->fd >= 0, "connect from %s", src);
    cr_assert(read_line(c->fd, line, sizeof(line), 5000) > 0, "no whoami line");
    cr_assert(client_pair_as_server_sees(c->fd, c->pair, sizeof(c->pair)) > 0);
    const char *w = strstr(line, " worker=");
    cr_assert(w != NULL && sscanf(w, " worker=%d pid=%d", &c->worker, &c->pid) == 2, "%s",
              line);
    c->matched = false;
}

/* ---- tests ------------------------------------------------------------------ */

Test(admin, healthz_and_admin_line_before_listening_line, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "2", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0, "no admin line in: %s", server_log(&s));
    const char *log = server_log(&s);
    const char *a = strstr(log, "handoffd: admin "), *l = strstr(log, "handoffd: listening ");
    cr_assert(a != NULL && l != NULL && a < l, "admin line must come first:\n%s", log);

    struct reply r;
    http_get(port, "/healthz", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "ok\n");
    reply_free(&r);
    /* The public listener and the admin one, nothing else. */
    cr_assert_eq(count_listeners(s.pid), 2);
    stop(&s);
}

Test(admin, status_json_lists_the_test_connections, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "2", "--protocol", "whoami", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    struct client cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        whoami_open(&cl[i], "127.0.0.5", s.port);

    json_t *j = status_json(port, "");
    cr_assert_str_eq(jstr(j, "model"), "pass");
    cr_assert_str_eq(jstr(j, "protocol"), "whoami");
    cr_assert_eq(jint(j, "pid"), s.pid);
    /* The listening socket exactly as on the start-up line. */
    const char *want = strchr(s.line, '{');
    const char *close_brace = strchr(s.line, '}');
    cr_assert(want != NULL && close_brace != NULL);
    cr_assert(strncmp(jstr(j, "listening"), want, (size_t)(close_brace - want + 1)) == 0 &&
                  strlen(jstr(j, "listening")) == (size_t)(close_brace - want + 1),
              "listening %s vs %s", jstr(j, "listening"), s.line);

    json_t *workers = json_object_get(j, "workers");
    cr_assert(json_is_array(workers) && json_array_size(workers) == 2);
    pid_t kids[8];
    int nkids = proc_children(s.pid, kids, 8);
    cr_assert_eq(nkids, 2);
    json_int_t live = 0, total = 0;
    for (size_t k = 0; k < 2; k++) {
        json_t *w = json_array_get(workers, k);
        cr_assert_eq(jint(w, "slot"), (json_int_t)k);
        cr_assert_str_eq(jstr(w, "state"), "running");
        cr_assert(jint(w, "pid") == kids[0] || jint(w, "pid") == kids[1]);
        cr_assert_eq(jint(w, "restarts"), 0);
        /* Per worker: exactly the clients whose whoami line named it. */
        json_int_t mine = 0;
        for (int i = 0; i < NCLIENTS; i++)
            mine += cl[i].worker == (int)k;
        cr_assert_eq(jint(w, "live"), mine, "worker %zu", k);
        live += jint(w, "live");
        total += jint(w, "total");
    }
    cr_assert_eq(live, NCLIENTS);
    cr_assert_eq(total, NCLIENTS);
    cr_assert_eq(jint(j, "live"), NCLIENTS);
    cr_assert_eq(jint(json_object_get(j, "counters"), "accepted"), NCLIENTS);

    json_t *conns = json_object_get(j, "connections");
    cr_assert(json_is_array(conns));
    cr_assert_eq(json_array_size(conns), NCLIENTS);
    cr_assert_eq(jint(j, "listed"), NCLIENTS);
    for (size_t r = 0; r < json_array_size(conns); r++) {
        json_t *row = json_array_get(conns, r);
        const char *local = jstr(row, "local"), *foreign = jstr(row, "foreign");
        cr_assert(strncmp(foreign, "127.0.0.5:", 10) == 0, "foreign %s", foreign);
        char pair[ADDR_PAIRLEN];
        snprintf(pair, sizeof(pair), "{%s, %s}", local, foreign);
        cr_assert_str_eq(jstr(row, "pair"), pair);
        int found = -1;
        for (int i = 0; i < NCLIENTS; i++)
            if (strcmp(cl[i].pair, pair) == 0)
                found = i;
        cr_assert(found >= 0, "row %s is none of the test's connections", pair);
        cr_assert(!cl[found].matched, "row %s listed twice", pair);
        cl[found].matched = true;
        cr_assert_eq(jint(row, "pid"), cl[found].pid, "%s", pair);
        cr_assert_eq(jint(row, "worker"), cl[found].worker, "%s", pair);
        json_t *age = json_object_get(row, "age_seconds");
        cr_assert(json_is_number(age) && json_number_value(age) >= 0 &&
                  json_number_value(age) < 30);
    }
    json_decref(j);

    /* The text page names the same socket pairs. */
    struct reply t;
    http_get(port, "/status", &t);
    cr_assert_eq(t.status, 200);
    for (int i = 0; i < NCLIENTS; i++)
        cr_assert(strstr(t.body, cl[i].pair) != NULL, "%s missing from:\n%s", cl[i].pair,
                  t.body);
    reply_free(&t);

    /* Closed connections leave the table. */
    for (int i = 0; i < 4; i++)
        close(cl[i].fd);
    uint64_t deadline = now_ms() + 5000;
    json_int_t listed = -1;
    do {
        j = status_json(port, "");
        listed = jint(j, "listed");
        json_int_t now_live = jint(j, "live");
        json_decref(j);
        if (listed == NCLIENTS - 4 && now_live == NCLIENTS - 4)
            break;
        usleep(20000);
    } while (now_ms() < deadline);
    cr_assert_eq(listed, NCLIENTS - 4);
    for (int i = 4; i < NCLIENTS; i++)
        close(cl[i].fd);
    stop(&s);
}

Test(admin, status_limit_is_honoured_and_validated, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "2", "--protocol", "whoami", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    struct client cl[5];
    for (int i = 0; i < 5; i++)
        whoami_open(&cl[i], "127.0.0.6", s.port);

    static const struct { const char *q; int rows; } cases[] = {
        { "&limit=3", 3 }, { "&limit=0", 0 }, { "&limit=5", 5 }, { "&limit=10000", 5 },
        { "", 5 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = status_json(port, cases[i].q);
        cr_assert_eq(json_array_size(json_object_get(j, "connections")), (size_t)cases[i].rows,
                     "%s", cases[i].q);
        cr_assert_eq(jint(j, "live"), 5);
        json_decref(j);
    }
    struct reply r;
    http_get(port, "/status?limit=2", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "listed 2\n") != NULL, "%s", r.body);
    reply_free(&r);

    static const char *const bad[] = {
        "/status?limit=-1", "/status?limit=abc", "/status?limit=10001", "/status?limit=",
        "/status?limit=1x", "/status?format=xml", "/status?format=json&limit=99999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_get(port, bad[i], &r);
        cr_assert_eq(r.status, 400, "%s gave %d", bad[i], r.status);
        reply_free(&r);
    }
    for (int i = 0; i < 5; i++)
        close(cl[i].fd);
    stop(&s);
}

Test(admin, metrics_counters_move_with_traffic, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "2", "--protocol", "echo", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    struct reply r0, r1;
    http_get(port, "/metrics", &r0);
    cr_assert_eq(r0.status, 200);
    cr_assert(strstr(r0.head, "Content-Type: text/plain; version=0.0.4") != NULL, "%s",
              r0.head);
    check_exposition(r0.body);
    check_histogram(r0.body);

    enum { N = 7, LEN = 100 };
    int fds[N];
    char out[LEN], in[LEN];
    memset(out, 'x', sizeof(out));
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect("127.0.0.7", "127.0.0.7", s.port);
        cr_assert(fds[i] >= 0);
        cr_assert_eq(write_all(fds[i], out, LEN), 0);
        cr_assert_eq(read_exact(fds[i], in, LEN, 5000), 0, "no echo");
    }
#define DELTA(name) (metric(r1.body, name) - metric(r0.body, name))
    /* A worker counts bytes out once write(2) has returned, which can be
     * just after the client read them: let the figures settle. */
    for (uint64_t until = now_ms() + 2000;;) {
        http_get(port, "/metrics", &r1);
        if (DELTA("handoff_bytes_out_total") == N * LEN || now_ms() > until)
            break;
        reply_free(&r1);
        usleep(10000);
    }
    check_exposition(r1.body);
    check_histogram(r1.body);
    cr_assert_eq(DELTA("handoff_connections_accepted_total"), N);
    cr_assert_eq(DELTA("handoff_connections_handed_off_total"), N);
    cr_assert_eq(DELTA("handoff_connections_rejected_total"), 0);
    cr_assert_eq(DELTA("handoff_handoff_latency_seconds_count"), N);
    cr_assert(DELTA("handoff_handoff_latency_seconds_sum") > 0);
    cr_assert_eq(DELTA("handoff_bytes_in_total"), N * LEN);
    cr_assert_eq(DELTA("handoff_bytes_out_total"), N * LEN);
    cr_assert_eq(live_sum(r1.body, 2), N);
    cr_assert_eq(metric(r1.body, "handoff_listener_paused"), 0);
    cr_assert_eq(metric(r1.body, "handoff_workers_running"), 2);
    cr_assert_eq(metric(r1.body, "handoff_worker_restarts_total{worker=\"0\"}"), 0);
    cr_assert_eq(metric(r1.body, "handoff_requests_total{class=\"2xx\"}"), 0);
#undef DELTA
    double closed0 = metric(r0.body, "handoff_connections_closed_total");
    reply_free(&r0);
    reply_free(&r1);

    for (int i = 0; i < N; i++)
        close(fds[i]);
    /* Workers report closes asynchronously: wait, bounded. */
    cr_assert(metric_becomes(port, "handoff_connections_closed_total", closed0 + N));
    http_get(port, "/metrics", &r1);
    cr_assert_eq(live_sum(r1.body, 2), 0);
    reply_free(&r1);
    stop(&s);
}

Test(admin, listener_paused_gauge_follows_capacity, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", "--max-conns", "2", "--protocol", "whoami", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    cr_assert(metric_becomes(port, "handoff_listener_paused", 0));
    struct client cl[2];
    for (int i = 0; i < 2; i++)
        whoami_open(&cl[i], "127.0.0.8", s.port);
    cr_assert(metric_becomes(port, "handoff_listener_paused", 1));
    cr_assert(metric_becomes(port, "handoff_listener_pauses_total{reason=\"full\"}", 1));
    close(cl[0].fd);
    cr_assert(metric_becomes(port, "handoff_listener_paused", 0));
    close(cl[1].fd);
    stop(&s);
}

Test(admin, killed_worker_rows_vanish_and_restart_is_counted, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", "--protocol", "whoami", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    struct client cl[3];
    for (int i = 0; i < 3; i++)
        whoami_open(&cl[i], "127.0.0.9", s.port);
    kill(cl[0].pid, SIGKILL);
    cr_assert(metric_becomes(port, "handoff_worker_restarts_total{worker=\"0\"}", 1));
    cr_assert(metric_becomes(port, "handoff_connections_lost_total", 3));
    cr_assert(metric_becomes(port, "handoff_workers_running", 1));
    json_t *j = status_json(port, "");
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    cr_assert_neq(jint(w, "pid"), cl[0].pid);
    cr_assert_eq(jint(w, "restarts"), 1);
    cr_assert_eq(jint(w, "live"), 0);
    cr_assert_eq(json_array_size(json_object_get(j, "connections")), 0);
    json_decref(j);
    /* The new worker lists its own connections again. */
    struct client again;
    whoami_open(&again, "127.0.0.9", s.port);
    j = status_json(port, "");
    json_t *conns = json_object_get(j, "connections");
    cr_assert_eq(json_array_size(conns), 1);
    cr_assert_str_eq(jstr(json_array_get(conns, 0), "pair"), again.pair);
    cr_assert_eq(jint(json_array_get(conns, 0), "pid"), again.pid);
    json_decref(j);
    close(again.fd);
    for (int i = 0; i < 3; i++)
        close(cl[i].fd);
    stop(&s);
}

Test(admin, healthz_503_while_draining, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", "--protocol", "echo", "--drain-timeout", "10",
                           NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    char b = 'x';
    cr_assert(fd >= 0);
    cr_assert_eq(write_all(fd, &b, 1), 0);
    cr_assert_eq(read_exact(fd, &b, 1, 5000), 0);
    kill(s.pid, SIGTERM);
    /* The echo connection keeps the worker draining; admin still answers. */
    uint64_t deadline = now_ms() + 5000;
    int status = -1;
    do {
        struct reply r;
        http_get(port, "/healthz", &r);
        status = r.status;
        reply_free(&r);
        if (status == 503)
            break;
        usleep(20000);
    } while (now_ms() < deadline);
    cr_assert_eq(status, 503);
    close(fd);
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(admin, unknown_paths_404_and_other_methods_405, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    static const char *const missing[] = { "/", "/nope", "/status/", "/metricsx", "/healthz/x" };
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        struct reply r;
        http_get(port, missing[i], &r);
        cr_assert_eq(r.status, 404, "%s gave %d", missing[i], r.status);
        reply_free(&r);
    }
    static const char *const methods[] = { "POST", "PUT", "DELETE", "HEAD", "OPTIONS" };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct reply r;
        http_do(port, methods[i], "/metrics", &r);
        cr_assert_eq(r.status, 405, "%s gave %d", methods[i], r.status);
        cr_assert(strstr(r.head, "\r\nAllow: GET") != NULL, "%s", r.head);
        reply_free(&r);
    }
    stop(&s);
}

Test(admin, off_means_no_admin_listener, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "1", "--admin", "off", NULL };
    cr_assert_eq(server_start(&s, args), 0);
    started_pid = s.pid;
    cr_assert(strstr(server_log(&s), "handoffd: admin") == NULL, "%s", server_log(&s));
    cr_assert_eq(count_listeners(s.pid), 1);
    stop(&s);
}

/* Run handoffd with ARGS; returns its exit status, stderr in ERR. */
static int run_to_exit(const char *const *args, char *err, size_t errlen)
{
    const char *argv[16];
    size_t n = 0;
    const char *bin = getenv("HANDOFFD");
    argv[n++] = bin != NULL ? bin : "build/handoffd";
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], STDERR_FILENO);
        close_range(3, ~0U, 0); /* the server inherits only stdio */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    ssize_t got = read_to_eof(pfd[0], err, errlen - 1, 5000);
    close(pfd[0]);
    err[got > 0 ? got : 0] = '\0';
    int st = 0;
    uint64_t deadline = now_ms() + 5000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("handoffd did not exit");
        }
        usleep(10000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(admin, bad_admin_options_exit_2, .timeout = 30)
{
    static const char *const cases[][3] = {
        { "--admin", "nonsense", "--admin" },
        { "--admin", "127.0.0.1:70000", "--admin" },
        { "--admin", "[::1", "--admin" },
        { "--admin", "", "--admin" },
        { "--admin", "::1:9090", "--admin" },
        { "--admin-timeout", "0", "--admin-timeout" },
        { "--status-conns-per-worker", "-1", "--status-conns-per-worker" },
        { "--status-conns-per-worker", "65537", "--status-conns-per-worker" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = { "--listen", "0", cases[i][0], cases[i][1], NULL };
        char err[1024];
        int rc = run_to_exit(args, err, sizeof(err));
        cr_assert_eq(rc, 2, "%s '%s' exited %d: %s", cases[i][0], cases[i][1], rc, err);
        cr_assert(strstr(err, cases[i][2]) != NULL, "message names the option: %s", err);
    }
}

Test(admin, explicit_admin_address_in_use_is_fatal, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    char addr[32], err[1024];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    const char *again[] = { "--listen", "0", "--workers", "1", "--admin", addr, NULL };
    cr_assert_eq(run_to_exit(again, err, sizeof(err)), 1, "%s", err);
    cr_assert(strstr(err, "--admin: bind") != NULL, "%s", err);
    stop(&s);
}

Test(admin, proxied_connections_list_the_headers_pair, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--workers", "1", "--protocol", "whoami", "--proxy-protocol", NULL };
    int port = start_with_admin(&s, args);
    cr_assert(port > 0);
    int fd = tcp_connect(NULL, "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    static const char hdr[] = "PROXY TCP4 198.51.100.7 203.0.113.9 40123 8080\r\n";
    cr_assert_eq(write_all(fd, hdr, sizeof(hdr) - 1), 0);
    char line[256];
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0);
    cr_assert(strncmp(line, "{203.0.113.9:8080, 198.51.100.7:40123}", 38) == 0, "%s", line);
    json_t *j = status_json(port, "");
    json_t *conns = json_object_get(j, "connections");
    cr_assert(json_is_array(conns) && json_array_size(conns) == 1);
    json_t *c = json_array_get(conns, 0);
    cr_assert_str_eq(jstr(c, "local"), "203.0.113.9:8080");
    cr_assert_str_eq(jstr(c, "foreign"), "198.51.100.7:40123");
    json_decref(j);
    close(fd);
    stop(&s);
}
