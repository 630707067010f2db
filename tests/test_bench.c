/* test_bench: handoff-bench. The histogram and the answer parsers are tested
 * directly; the tool itself is run as a binary (see bench_path) against the
 * real handoffd (echo, unp, whoami) and, for http, against fixture servers
 * forked here: an evhttp server and a raw server sending canned bytes. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "harness.h"
#include "hist.h"
#include "req.h"
#include "stats.h"

/* ---- histogram ---------------------------------------------------------- */

/* Percentiles are bucket upper bounds: never below the exact value and at
 * most 1/HIST_SUB above it. */
static void expect_close(uint64_t got, uint64_t exact)
{
    cr_expect(got >= exact && (double)got <= (double)exact * (1.0 + 1.0 / HIST_SUB) + 1,
              "got %llu, exact %llu", (unsigned long long)got, (unsigned long long)exact);
}

Test(bench_hist, buckets_cover_every_value_tightly)
{
    uint64_t vals[] = { 0, 1, 31, 32, 33, 63, 64, 65, 1000, 4095, 4096, 123456789,
                        1ull << 40, (1ull << 63) - 1, 1ull << 63, UINT64_MAX };
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        uint64_t v = vals[k];
        size_t b = hist_bucket_of(v);
        cr_assert(b < HIST_BUCKETS, "bucket %zu for %llu", b, (unsigned long long)v);
        cr_expect(hist_bucket_low(b) <= v && v <= hist_bucket_high(b), "v=%llu",
                  (unsigned long long)v);
        uint64_t width = hist_bucket_high(b) - hist_bucket_low(b);
        cr_expect(width <= v / HIST_SUB, "bucket of %llu is %llu wide", (unsigned long long)v,
                  (unsigned long long)width);
    }
    /* Consecutive buckets tile the range with no gap or overlap. */
    for (size_t b = 1; b < HIST_BUCKETS; b++)
        cr_assert_eq(hist_bucket_low(b), hist_bucket_high(b - 1) + 1, "gap at bucket %zu", b);
    cr_expect_eq(hist_bucket_high(HIST_BUCKETS - 1), UINT64_MAX);
}

Test(bench_hist, percentiles_of_known_data)
{
    struct hist h;
    hist_init(&h);
    cr_expect_eq(hist_percentile(&h, 50), 0, "empty histogram");
    /* 1..10000 µs in ns, shuffled by a stride coprime to 10000. */
    for (uint64_t i = 0; i < 10000; i++)
        hist_record(&h, ((i * 7919) % 10000 + 1) * 1000);
    cr_assert_eq(h.count, 10000);
    cr_expect_eq(h.min, 1000);
    cr_expect_eq(h.max, 10000000);
    expect_close(hist_percentile(&h, 50), 5000000);
    expect_close(hist_percentile(&h, 90), 9000000);
    expect_close(hist_percentile(&h, 99), 9900000);
    expect_close(hist_percentile(&h, 99.9), 9990000);
    cr_expect_eq(hist_percentile(&h, 100), 10000000, "p100 is the max");
    cr_expect(hist_mean(&h) > 5000499 && hist_mean(&h) < 5000501, "mean %f", hist_mean(&h));
    cr_expect_null(hist_check(&h));

    /* Small values are exact; a lone outlier is the max but not p99. */
    struct hist s;
    hist_init(&s);
    for (uint64_t v = 1; v <= 20; v++)
        for (int k = 0; k < 5; k++)
            hist_record(&s, v);
    hist_record(&s, 1000000);
    cr_expect_eq(hist_percentile(&s, 50), 11, "rank 51 of 101");
    cr_expect_eq(hist_percentile(&s, 99), 20);
    cr_expect_eq(hist_percentile(&s, 100), 1000000);
}

Test(bench_hist, merge_equals_recording_together_and_check_catches_damage)
{
    static struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    for (uint64_t i = 1; i <= 3000; i++) {
        uint64_t v = i * i * 37;
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    cr_assert_eq(a.count, all.count);
    cr_expect_eq(a.min, all.min);
    cr_expect_eq(a.max, all.max);
    cr_expect(memcmp(a.bucket, all.bucket, sizeof(a.bucket)) == 0);
    for (double p = 1; p <= 100; p += 7.3)
        cr_expect_eq(hist_percentile(&a, p), hist_percentile(&all, p), "p%g", p);

    cr_expect_null(hist_check(&a));
    a.bucket[5]++;
    cr_expect_not_null(hist_check(&a), "count mismatch must be caught");
    a.bucket[5]--;
    a.min = a.max + 1;
    cr_expect_not_null(hist_check(&a), "min above max must be caught");
    a.min = all.min;
    a.bucket[HIST_BUCKETS - 1] = 1;
    a.count++;
    cr_expect_not_null(hist_check(&a), "bucket past max must be caught");
}

Test(bench_stats, report_messages_are_validated)
{
    static struct stats_msg m;
    memset(&m, 0, sizeof(m));
    m.hdr.magic = STATS_MAGIC;
    m.hdr.type = STATS_MSG_FINAL;
    m.hdr.len = sizeof(m) - sizeof(m.hdr);
    hist_init(&m.latency);
    hist_init(&m.connect);
    m.st.conn_attempts = m.st.connected = m.st.requests = m.st.ok = 2;
    hist_record(&m.latency, 5);
    hist_record(&m.connect, 7);
    cr_assert_eq(stats_msg_size(&m.hdr), sizeof(m));
    cr_expect_null(stats_msg_check(&m, sizeof(m)));
    m.st.ok = 3;
    cr_expect_not_null(stats_msg_check(&m, sizeof(m)), "ok > requests");
    m.st.ok = 2;
    m.hdr.len = 12;
    cr_expect_eq(stats_msg_size(&m.hdr), 0, "wrong length for the type");
    m.hdr.len = sizeof(m) - sizeof(m.hdr);
    m.hdr.magic ^= 1;
    cr_expect_eq(stats_msg_size(&m.hdr), 0, "bad magic");
}

/* ---- answer parsing ------------------------------------------------------- */

static enum req_rc feed_bytewise(struct req_ctx *c, struct req_state *s, const char *text)
{
    struct evbuffer *in = evbuffer_new();
    uint64_t used = 0;
    enum req_rc rc = REQ_MORE;
    for (size_t i = 0; text[i] != '\0' && rc == REQ_MORE; i++) {
        evbuffer_add(in, text + i, 1);
        rc = req_feed(c, s, in, &used);
    }
    evbuffer_free(in);
    return rc;
}

static enum req_rc feed_whole(struct req_ctx *c, struct req_state *s, const char *text)
{
    struct evbuffer *in = evbuffer_new();
    uint64_t used = 0;
    evbuffer_add(in, text, strlen(text));
    enum req_rc rc = req_feed(c, s, in, &used);
    evbuffer_free(in);
    return rc;
}

static void http_ctx(struct req_ctx *c)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.proto = OPTS_HTTP;
    snprintf(o.path, sizeof(o.path), "/x");
    snprintf(o.host, sizeof(o.host), "h");
    cr_assert_eq(req_ctx_init(c, &o, false), 0);
    cr_expect(strstr(c->msg, "GET /x HTTP/1.1\r\nHost: h\r\n") == c->msg, "%s", c->msg);
    cr_expect(strstr(c->msg, "Connection: keep-alive\r\n\r\n") != NULL, "%s", c->msg);
}

Test(bench_req, http_answers_split_anywhere)
{
    struct req_ctx c;
    struct req_state s;
    http_ctx(&c);

    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
                 REQ_DONE);
    cr_expect(s.keep_alive);
    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
                 REQ_DONE);
    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
                 REQ_STATUS);
    cr_expect_eq(s.status, 503);
    req_begin(&c, &s);
    cr_expect_eq(feed_whole(&c, &s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"),
                 REQ_BAD, "a byte past the end");
    req_begin(&c, &s);
    cr_expect_eq(feed_whole(&c, &s, "HTTP/1.1 204 No Content\r\n\r\n"), REQ_DONE);
    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "SMTP ready\r\n"), REQ_BAD);
    /* A body read until close completes at the close; a cut one does not. */
    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "HTTP/1.0 200 OK\r\n\r\nbody"), REQ_MORE);
    cr_expect_eq(req_eof(&c, &s), REQ_DONE);
    cr_expect_not(s.keep_alive);
    req_begin(&c, &s);
    cr_expect_eq(feed_bytewise(&c, &s, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbo"),
                 REQ_MORE);
    cr_expect_eq(req_eof(&c, &s), REQ_SHORT);
    req_begin(&c, &s);
    cr_expect_eq(req_eof(&c, &s), REQ_CLOSED);
    req_ctx_free(&c);
}

/* ---- running the tool --------------------------------------------------- */

#define OUT_MAX 16384

struct bench_run {
    pid_t pid;              /* the tool (parent of its client processes) */
    int out_fd, err_fd;     /* its stdout and stderr, read here */
    char out[OUT_MAX];      /* stdout */
    char err[OUT_MAX];      /* stderr */
    int status;             /* wait status */
    uint64_t elapsed_ms;    /* start to exit */
    uint64_t started_ms;
};

/* $HANDOFF_BENCH, else the handoff-bench beside $HANDOFFD (so the ASan
 * suite runs the ASan bench), else build/handoff-bench. */
static const char *bench_path(void)
{
    static char path[4096];
    const char *p = getenv("HANDOFF_BENCH");
    const char *d = getenv("HANDOFFD");
    if (p != NULL)
        return p;
    const char *slash = d != NULL ? strrchr(d, '/') : NULL;
    if (slash == NULL || (size_t)(slash - d) + 16 > sizeof(path))
        return "build/handoff-bench";
    snprintf(path, sizeof(path), "%.*s/handoff-bench", (int)(slash - d), d);
    return path;
}

static void bench_spawn(struct bench_run *r, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    int out[2], err[2];
    memset(r, 0, sizeof(*r));
    argv[n++] = bench_path();
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    r->started_ms = now_ms();
    r->pid = fork();
    cr_assert(r->pid >= 0);
    if (r->pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    r->out_fd = out[0];
    r->err_fd = err[0];
}

/* Collect output until exit, killing the tool after TIMEOUT_MS. */
static void bench_wait(struct bench_run *r, int timeout_ms)
{
    size_t no = 0, ne = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while ((r->out_fd >= 0 || r->err_fd >= 0) && now_ms() < deadline) {
        struct pollfd p[2] = { { r->out_fd, POLLIN, 0 }, { r->err_fd, POLLIN, 0 } };
        if (poll(p, 2, 100) <= 0)
            continue;
        int *fds[2] = { &r->out_fd, &r->err_fd };
        char *bufs[2] = { r->out, r->err };
        size_t *lens[2] = { &no, &ne };
        for (int k = 0; k < 2; k++) {
            if (*fds[k] < 0 || p[k].revents == 0)
                continue;
            char scratch[4096];
            size_t room = OUT_MAX - 1 - *lens[k];
            ssize_t got = read(*fds[k], room > 0 ? bufs[k] + *lens[k] : scratch,
                               room > 0 ? room : sizeof(scratch));
            if (got <= 0) {
                close(*fds[k]);
                *fds[k] = -1;
            } else if (room > 0) {
                *lens[k] += (size_t)got;
            }
        }
    }
    r->out[no] = '\0';
    r->err[ne] = '\0';
    if (r->out_fd >= 0 || r->err_fd >= 0) {
        kill(r->pid, SIGKILL);
        if (r->out_fd >= 0)
            close(r->out_fd);
        if (r->err_fd >= 0)
            close(r->err_fd);
    }
    waitpid(r->pid, &r->status, 0);
    r->elapsed_ms = now_ms() - r->started_ms;
}

static void bench_run(struct bench_run *r, const char *const *args, int timeout_ms)
{
    bench_spawn(r, args);
    bench_wait(r, timeout_ms);
}

static int exit_code(const struct bench_run *r)
{
    return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

/* A number from the JSON: KEY inside the object named SECTION (NULL: the
 * top level, i.e. the first occurrence). Fails the test when absent. */
static double jnum(const char *json, const char *section, const char *key)
{
    char pat[80];
    const char *p = json;
    if (section != NULL) {
        snprintf(pat, sizeof(pat), "\"%s\":{", section);
        p = strstr(json, pat);
        cr_assert_not_null(p, "no section %s in %s", section, json);
    }
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);
    cr_assert_not_null(p, "no key %s in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

static void expect_completed(const struct bench_run *r)
{
    cr_assert_eq(exit_code(r), 0, "exit %d, stderr:\n%s", exit_code(r), r->err);
    cr_assert(r->out[0] == '{', "no JSON on stdout: %s\nstderr:\n%s", r->out, r->err);
}

static void start_server(struct server *s, const char *proto)
{
    const char *args[] = { "--listen", "0", "--workers", "2", "--protocol", proto, NULL };
    cr_assert_eq(server_start(s, args), 0, "server (%s) did not start", proto);
}

static void stop_server(struct server *s)
{
    server_stop(s, SIGTERM, 10000, NULL);
}

#define TARGET(buf, port) snprintf(buf, sizeof(buf), "127.0.0.1:%d", port)

/* Run the tool with ARGS plus "-t TARGET --json" and check it completed. */
static void run_json(const char *target, const char *const *args, struct bench_run *r)
{
    const char *argv[40];
    size_t n = 0;
    for (; args[n] != NULL && n < 36; n++)
        argv[n] = args[n];
    argv[n++] = "-t";
    argv[n++] = target;
    argv[n++] = "--json";
    argv[n] = NULL;
    bench_run(r, argv, 30000);
    expect_completed(r);
}

/* run_json against a fresh handoffd speaking PROTO. */
static void run_on_server(const char *proto, const char *const *args, struct bench_run *r)
{
    struct server s;
    char t[64];
    start_server(&s, proto);
    TARGET(t, s.port);
    run_json(t, args, r);
    stop_server(&s);
}

Test(bench_run, churn_echo_counts_every_connection, .timeout = 60)
{
    struct bench_run r;
    const char *args[] = { "-m", "churn", "-N", "200", "-c", "8", "-s", "100", NULL };
    run_on_server("echo", args, &r);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 200);
    cr_expect_eq(jnum(r.out, NULL, "connected"), 200);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 200);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "bytes_received"), 200 * 100);
    cr_expect_eq(jnum(r.out, "latency_us", "count"), 200);
    cr_expect_eq(jnum(r.out, "connect_us", "count"), 200);
    cr_expect(jnum(r.out, "latency_us", "p50") > 0);
    cr_expect(jnum(r.out, "latency_us", "p99") <= jnum(r.out, "latency_us", "max"));
    cr_expect(strstr(r.out, "\"stopped\":\"count\"") != NULL, "%s", r.out);
    /* The human summary still goes to stderr with --json. */
    cr_expect(strstr(r.err, "mode=churn") != NULL, "%s", r.err);
}

Test(bench_run, keepalive_reuses_connections, .timeout = 60)
{
    struct bench_run r;
    const char *args[] = { "-m", "keepalive", "-n", "1000", "-c", "4", "-p", "2", "-s",
                           "3000", NULL };
    run_on_server("echo", args, &r);
    cr_expect_eq(jnum(r.out, NULL, "requests"), 1000);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 1000);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 4, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "bytes_received"), 1000 * 3000);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "processes"), 2);
}

Test(bench_run, unp_processes_times_loops, .timeout = 60)
{
    struct bench_run r;
    const char *args[] = { "-m", "unp", "-p", "3", "-l", "20", "-b", "5000", NULL };
    run_on_server("unp", args, &r);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 60, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 60);
    cr_expect_eq(jnum(r.out, NULL, "bytes_received"), 60 * 5000);
    cr_expect_eq(jnum(r.out, NULL, "bytes_sent"), 60 * 5, "\"5000\\n\" per request");
    cr_expect_eq(jnum(r.out, "errors", "total"), 0, "%s", r.out);

    /* Several requests per connection. */
    const char *args2[] = { "-m", "unp", "-p", "2", "-l", "5", "-r", "3", "-b", "70000", NULL };
    run_on_server("unp", args2, &r);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 10, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "requests"), 30);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 30);
    cr_expect_eq(jnum(r.out, NULL, "bytes_received"), 30 * 70000);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0, "%s", r.out);
}

Test(bench_run, ipv6_target, .timeout = 60)
{
    struct server s;
    struct bench_run r;
    char t[64];
    start_server(&s, "echo");
    int fd = tcp_connect(NULL, "::1", s.port);
    if (fd < 0) {
        stop_server(&s);
        cr_skip_test("no IPv6 loopback here");
    }
    close(fd);
    snprintf(t, sizeof(t), "[::1]:%d", s.port);
    const char *args[] = { "-m", "churn", "-N", "50", "-c", "2", NULL };
    run_json(t, args, &r);
    stop_server(&s);
    cr_expect(strstr(r.out, t) != NULL, "target %s in %s", t, r.out);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 50, "%s", r.out);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0);
}

/* Established client sockets to PORT in /proc/net/tcp: how many, and how
 * many distinct 127.x source addresses they use. The file is not a
 * snapshot (a socket may be listed twice while the table changes), so
 * sockets are counted by their distinct local address and port. */
static int count_client_sockets(int port, int *sources)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    char line[512];
    static uint64_t socks[8192];
    static uint32_t seen[4096];
    int n = 0, ns = 0;
    *sources = 0;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned la, lp, ra, rp, st;
        if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X", &la, &lp, &ra, &rp, &st) != 5)
            continue;
        if (rp != (unsigned)port || st != 1 /* ESTABLISHED */)
            continue;
        uint32_t host = ntohl(la); /* printed as the raw network-order word */
        uint64_t key = (uint64_t)host << 16 | lp;
        int k;
        for (k = 0; k < n && socks[k] != key; k++)
            ;
        if (k < n || n == 8192)
            continue;
        socks[n++] = key;
        for (k = 0; k < ns && seen[k] != host; k++)
            ;
        if (k == ns && ns < 4096 && (host >> 24) == 127)
            seen[ns++] = host;
    }
    fclose(f);
    *sources = ns;
    return n;
}

/* Poll until WANT client sockets to PORT are established (up to 15 s). */
static int wait_client_sockets(int port, int want, int *sources)
{
    int n = 0;
    uint64_t deadline = now_ms() + 15000;
    while (now_ms() < deadline && (n = count_client_sockets(port, sources)) < want)
        usleep(50000);
    return n;
}

Test(bench_run, hold_spreads_sources_and_processes_until_signalled, .timeout = 60)
{
    struct server s;
    struct bench_run r;
    char t[64];
    start_server(&s, "whoami");
    TARGET(t, s.port);
    const char *args[] = { "-m", "hold", "-t", t, "-N", "300", "-p", "2", "-S", "8",
                           "-d", "0", "--json", NULL };
    bench_spawn(&r, args);
    int sources = 0;
    int n = wait_client_sockets(s.port, 300, &sources);
    cr_expect_eq(n, 300, "established client sockets");
    cr_expect_eq(sources, 8, "distinct 127.x source addresses");
    pid_t kids[8];
    cr_expect_eq(proc_children(r.pid, kids, 8), 2, "client processes");
    usleep(300000); /* they stay open */
    cr_expect_eq(count_client_sockets(s.port, &sources), 300);
    kill(r.pid, SIGINT);
    bench_wait(&r, 15000);
    stop_server(&s);
    expect_completed(&r);
    cr_expect_eq(jnum(r.out, "hold", "established"), 300, "%s", r.out);
    cr_expect_eq(jnum(r.out, "hold", "open_at_end"), 300);
    cr_expect_eq(jnum(r.out, "hold", "closed_by_server"), 0);
    cr_expect_eq(jnum(r.out, NULL, "processes"), 2);
    cr_expect(strstr(r.out, "\"stopped\":\"signal\"") != NULL, "%s", r.out);
    /* Every whoami greeting was read: at least "{127.0.0.1:P, 127.0.0.1:P}". */
    cr_expect(jnum(r.out, NULL, "bytes_received") >= 300 * 30, "%s", r.out);
}

Test(bench_run, hold_notices_server_closing, .timeout = 60)
{
    struct server s;
    struct bench_run r;
    char t[64];
    const char *sargs[] = { "--listen", "0", "--workers", "2", "--protocol", "echo",
                            "--drain-timeout", "0.2", NULL };
    cr_assert_eq(server_start(&s, sargs), 0);
    TARGET(t, s.port);
    const char *args[] = { "-m", "hold", "-t", t, "-N", "100", "-d", "20", "--json", NULL };
    bench_spawn(&r, args);
    int sources = 0;
    cr_expect_eq(wait_client_sockets(s.port, 100, &sources), 100, "established client sockets");
    usleep(200000);
    stop_server(&s);
    /* Everything closed: the hold ends long before its 20 s. */
    bench_wait(&r, 15000);
    expect_completed(&r);
    cr_expect_eq(jnum(r.out, "hold", "established"), 100, "%s", r.out);
    cr_expect_eq(jnum(r.out, "hold", "closed_by_server"), 100);
    cr_expect_eq(jnum(r.out, "hold", "open_at_end"), 0);
    cr_expect(r.elapsed_ms < 12000, "took %llu ms", (unsigned long long)r.elapsed_ms);
}

/* A loopback port with nothing listening: bind, read the port, close. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(bench_run, connect_errors_are_counted_not_fatal, .timeout = 60)
{
    struct bench_run r;
    char t[64];
    TARGET(t, closed_port());
    const char *args[] = { "-m", "churn", "-N", "50", NULL };
    run_json(t, args, &r);
    cr_expect_eq(jnum(r.out, "errors", "connect"), 50, "%s", r.out);
    cr_expect_eq(jnum(r.out, "errors", "total"), 50);
    cr_expect_eq(jnum(r.out, NULL, "connected"), 0);
    cr_expect(r.elapsed_ms < 10000, "took %llu ms", (unsigned long long)r.elapsed_ms);
}

Test(bench_run, silent_server_gives_timeouts, .timeout = 60)
{
    /* Listening but never accepting: connects succeed, answers never come. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 64) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    struct bench_run r;
    char t[64];
    TARGET(t, ntohs(a.sin_port));
    const char *args[] = { "-m", "churn", "-N", "4", "-c", "2", "-T", "0.3", NULL };
    run_json(t, args, &r);
    close(fd);
    cr_expect_eq(jnum(r.out, "errors", "timeout"), 4, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 0);
    cr_expect(r.elapsed_ms < 10000, "took %llu ms", (unsigned long long)r.elapsed_ms);
}

Test(bench_run, duration_bounds_an_uncounted_run, .timeout = 60)
{
    struct server s;
    struct bench_run r;
    char t[64];
    start_server(&s, "echo");
    TARGET(t, s.port);
    const char *args[] = { "-m", "keepalive", "-t", t, "-c", "2", "-d", "1.6", NULL };
    bench_run(&r, args, 30000);
    stop_server(&s);
    cr_assert_eq(exit_code(&r), 0, "%s", r.err);
    cr_expect(strstr(r.out, "mode=keepalive") == r.out, "summary line: %s", r.out);
    cr_expect(strstr(r.out, "stopped=time") != NULL, "%s", r.out);
    cr_expect(strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "one line: %s", r.out);
    cr_expect(strstr(r.err, "handoff-bench: [") != NULL, "progress line: %s", r.err);
    cr_expect(r.elapsed_ms >= 1500 && r.elapsed_ms < 8000, "took %llu ms",
              (unsigned long long)r.elapsed_ms);
}

Test(bench_run, bad_arguments_exit_2)
{
    static const char *const cases[][8] = {
        { "-c", "0", NULL },
        { "--mode", "nope", NULL },
        { "--proto", "smtp", NULL },
        { "--target", "127.0.0.1", NULL },
        { "--target", "example:80x", NULL },
        { "--target", "0.0.0.0:80", NULL },
        { "-m", "hold", NULL },
        { "-m", "hold", "-N", "10", "-n", "5", NULL },
        { "-l", "3", "-N", "5", NULL },
        { "-d", "0", NULL },
        { "-d", "-1", NULL },
        { "-m", "churn", "-r", "5", NULL },
        { "-S", "4", "--target", "[::1]:80", NULL },
        { "-p", "4", "-c", "2", NULL },
        { "--path", "nope", NULL },
        { "-n", NULL },
        { "stray", NULL },
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct bench_run r;
        bench_run(&r, cases[k], 10000);
        cr_expect_eq(exit_code(&r), 2, "case %zu (%s): exit %d", k, cases[k][0], exit_code(&r));
        cr_expect(strncmp(r.err, "handoff-bench: ", 15) == 0, "case %zu: %s", k, r.err);
        cr_expect_eq(r.out[0], '\0', "case %zu printed %s", k, r.out);
    }
    struct bench_run r;
    const char *help[] = { "--help", NULL };
    bench_run(&r, help, 10000);
    cr_expect_eq(exit_code(&r), 0);
    cr_expect(strstr(r.out, "--mode") != NULL);
}

/* ---- http fixtures ------------------------------------------------------ */

static void fixture_http_cb(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *body = evbuffer_new();
    if (strcmp(uri, "/missing") == 0) {
        evbuffer_add_printf(body, "no\n");
        evhttp_send_reply(req, 404, "Not Found", body);
    } else if (strcmp(uri, "/chunked") == 0) {
        evhttp_send_reply_start(req, 200, "OK");
        for (int i = 0; i < 3; i++) {
            evbuffer_add_printf(body, "chunk %d\n", i);
            evhttp_send_reply_chunk(req, body);
        }
        evhttp_send_reply_end(req);
    } else {
        evbuffer_add_printf(body, "hello world\n");
        evhttp_send_reply(req, 200, "OK", body);
    }
    evbuffer_free(body);
}

/* Fork a fixture server on 127.0.0.1:0; RAW NULL runs evhttp, otherwise
 * every connection gets RAW after its request head, then a close. The
 * child dies with the test (PDEATHSIG) and after 30 s at most. */
static pid_t fixture_start(const char *raw, int *port)
{
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(30);
        close(p[0]);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &l) < 0)
            _exit(1);
        int pt = ntohs(a.sin_port);
        if (write(p[1], &pt, sizeof(pt)) != sizeof(pt))
            _exit(1);
        close(p[1]);
        if (raw == NULL) {
            struct event_base *base = event_base_new();
            struct evhttp *http = evhttp_new(base);
            evutil_make_socket_nonblocking(fd);
            if (base == NULL || http == NULL || evhttp_accept_socket(http, fd) < 0)
                _exit(1);
            evhttp_set_gencb(http, fixture_http_cb, NULL);
            event_base_dispatch(base);
            _exit(0);
        }
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c < 0)
                continue;
            char buf[4096];
            size_t n = 0;
            while (n < sizeof(buf) - 1) {
                ssize_t got = read(c, buf + n, sizeof(buf) - 1 - n);
                if (got <= 0)
                    break;
                n += (size_t)got;
                buf[n] = '\0';
                if (strstr(buf, "\r\n\r\n") != NULL)
                    break;
            }
            if (write(c, raw, strlen(raw)) < 0)
                _exit(1);
            close(c);
        }
    }
    close(p[1]);
    cr_assert_eq(read(p[0], port, sizeof(*port)), (ssize_t)sizeof(*port), "fixture port");
    close(p[0]);
    return pid;
}

static void fixture_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

Test(bench_http, keepalive_churn_status_and_chunked, .timeout = 60)
{
    int port;
    pid_t fx = fixture_start(NULL, &port);
    struct bench_run r;
    char t[64];
    TARGET(t, port);

    const char *ka[] = { "-m", "keepalive", "--proto", "http", "-c", "3", "-n", "300", NULL };
    run_json(t, ka, &r);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 300, "%s", r.out);
    cr_expect_eq(jnum(r.out, "http_status", "2xx"), 300);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 3, "keep-alive honoured: %s", r.out);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0);

    const char *churn[] = { "-m", "churn", "--proto", "http", "-N", "50", NULL };
    run_json(t, churn, &r);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 50, "%s", r.out);
    cr_expect_eq(jnum(r.out, NULL, "connections"), 50);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0);

    const char *missing[] = { "-m", "keepalive", "--proto", "http", "--path", "/missing",
                              "-n", "20", "-c", "2", NULL };
    run_json(t, missing, &r);
    cr_expect_eq(jnum(r.out, "errors", "http_status"), 20, "%s", r.out);
    cr_expect_eq(jnum(r.out, "http_status", "4xx"), 20);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 0);

    const char *chunked[] = { "-m", "keepalive", "--proto", "http", "--path", "/chunked",
                              "-n", "30", "-c", "1", NULL };
    run_json(t, chunked, &r);
    fixture_stop(fx);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 30, "%s", r.out);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0);
}

/* Run churn http against a raw fixture answering CANNED; return the JSON. */
static void run_canned(const char *canned, struct bench_run *r)
{
    int port;
    char t[64];
    pid_t fx = fixture_start(canned, &port);
    TARGET(t, port);
    const char *args[] = { "-m", "churn", "--proto", "http", "-N", "5", "-c", "1", "-T", "2",
                           NULL };
    run_json(t, args, r);
    fixture_stop(fx);
}

Test(bench_http, broken_answers_are_classified, .timeout = 60)
{
    struct bench_run r;
    run_canned("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", &r);
    cr_expect_eq(jnum(r.out, "errors", "short_read"), 5, "%s", r.out);
    run_canned("220 smtp.example ESMTP\r\n", &r);
    cr_expect_eq(jnum(r.out, "errors", "bad_response"), 5, "%s", r.out);
    run_canned("", &r);
    cr_expect_eq(jnum(r.out, "errors", "closed"), 5, "%s", r.out);
    run_canned("HTTP/1.0 200 OK\r\n\r\nbody until close", &r);
    cr_expect_eq(jnum(r.out, NULL, "ok"), 5, "%s", r.out);
    cr_expect_eq(jnum(r.out, "errors", "total"), 0, "%s", r.out);
}
