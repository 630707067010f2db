/* test_reliability_http: handoffd's HTTP protocol against hostile clients:
 * a corpus of malformed requests (tests/corpus/http), slowloris clients
 * trickling header bytes, connections that never send anything, and
 * clients that pipeline requests and never read. Short form in `make
 * test`; full form (2,000 slow connections, wrk's p99 with and without
 * them) under `make soak` (see test_reliability.h). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "test_reliability.h"

TestSuite(reliability_http, .fini = reliability_fini);

/* Start handoffd speaking http with ARGS appended; skips the test when the
 * binary has no http protocol. */
static void http_start(struct server *s, const char *const *extra)
{
    const char *args[32] = { "--listen", "127.0.0.1:0", "--protocol", "http" };
    size_t n = 4;
    for (size_t i = 0; extra[i] != NULL && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (server_start_tracked(s, args, 0) == 0)
        return;
    if (server_log_contains(s, "protocol"))
        cr_skip_test("this handoffd has no http protocol");
    cr_assert_fail("server did not start (log %s)", s->log_path);
}

/* GET / on a new connection answers 200 within 5 s. */
static bool get_ok(int port)
{
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    char line[128];
    bool ok = fd >= 0 && write_all(fd, req, sizeof(req) - 1) == 0 &&
              read_line(fd, line, sizeof(line), 5000) > 0 &&
              strncmp(line, "HTTP/1.1 200", 12) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- malformed requests -------------------------------------------------------- */

/* The corpus directory, beside this source file. */
static void corpus_dir(char *buf, size_t len)
{
    const char *slash = strrchr(__FILE__, '/');
    snprintf(buf, len, "%.*s/corpus/http", slash != NULL ? (int)(slash - __FILE__) : 1,
             slash != NULL ? __FILE__ : ".");
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What became of one malformed request. */
enum verdict { V_REJECTED, V_CLOSED, V_ACCEPTED, V_HUNG };

/* Send LEN bytes of DATA (in pieces of 1-7 bytes when PIECES, to split the
 * request at every kind of boundary) and wait up to WAIT_MS for an answer
 * or a close. *STATUS gets the status code of an answer. */
static enum verdict corpus_case(int port, const unsigned char *data, size_t len, bool pieces,
                                int wait_ms, int *status)
{
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    cr_assert(fd >= 0);
    *status = 0;
    /* The server may answer and close before it has read everything: a
     * failed send is then expected, not an error. */
    for (size_t off = 0, k = 0; off < len; k++) {
        size_t n = pieces ? 1 + k % 7 : len - off;
        n = n < len - off ? n : len - off;
        ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char buf[64];
    size_t got = 0;
    enum verdict v = V_HUNG;
    uint64_t deadline = now_ms() + (uint64_t)wait_ms;
    while (now_ms() < deadline && got < sizeof(buf) - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0) {
            v = V_CLOSED;
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0) {
        *status = atoi(buf + 9);
        /* 505: the answer to a protocol version the server does not speak. */
        v = (*status >= 400 && *status < 500) || *status == 505 ? V_REJECTED : V_ACCEPTED;
    } else if (got > 0) {
        v = V_ACCEPTED; /* bytes that are no HTTP answer */
    }
    close(fd);
    return v;
}

Test(reliability_http, malformed_corpus_gets_4xx_or_close)
{
    struct server s;
    const char *extra[] = { "--workers", "1", "--header-timeout", "2", "--idle-timeout", "2",
                            "--linger-timeout", "1", "--max-body-bytes", "65536", NULL };
    http_start(&s, extra);
    pid_t worker;
    workers_of(&s, &worker, 1);

    char dir[512];
    corpus_dir(dir, sizeof(dir));
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no corpus at %s", dir);
    static char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 512) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".req") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_name);
    cr_assert(n >= 60, "only %zu cases in %s", n, dir);

    /* Timeouts are 2 s; an answer later than 6 s is a hang. Under a checker
     * everything is slower. */
    int wait_ms = under_checker() ? 30000 : 6000;
    int rounds = (int)soak_pick(1, 10);
    static char failures[8192];
    size_t flen = 0;
    unsigned rejected = 0, closed = 0, bad = 0;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            cr_assert(fd >= 0);
            static unsigned char data[1 << 18];
            ssize_t len = read(fd, data, sizeof(data));
            close(fd);
            cr_assert(len >= 0 && (size_t)len < sizeof(data), "%s", names[i]);
            /* Odd rounds split each request, small ones into 1-7 byte pieces. */
            bool pieces = r % 2 == 1 && len < 4096;
            int status;
            enum verdict v = corpus_case(s.port, data, (size_t)len, pieces, wait_ms, &status);
            rejected += v == V_REJECTED;
            closed += v == V_CLOSED;
            if (v == V_ACCEPTED || v == V_HUNG) {
                bad++;
                flen += (size_t)snprintf(failures + flen, sizeof(failures) - flen,
                                         "  %s%s: %s %d\n", names[i], pieces ? " (pieces)" : "",
                                         v == V_HUNG ? "no answer and no close" : "answered",
                                         status);
                cr_assert(flen < sizeof(failures) - 200, "too many failures:\n%s", failures);
            }
            pid_t now;
            cr_assert_eq(proc_children(s.pid, &now, 1), 1, "no worker after %s", names[i]);
            cr_assert_eq(now, worker, "worker replaced after %s", names[i]);
        }
    }
    cr_assert(get_ok(s.port), "not serving after the corpus");
    struct soak_row row = { .scenario = "malformed HTTP corpus", .p99_ms = -1,
                            .fds_leaked = -1 };
    snprintf(row.load, sizeof(row.load), "%zu malformed requests (tests/corpus/http), one "
             "connection each, 1 worker", n);
    snprintf(row.faults, sizeof(row.faults), "%d rounds, odd ones split into 1-7 byte pieces",
             rounds);
    row.attempted = (uint64_t)rounds * n;
    row.failed = rejected + closed;
    row.lost = bad;
    snprintf(row.note, sizeof(row.note), "failed = rejected by design: %u answered 4xx/505, "
             "%u closed without an answer; lost = accepted or hung (must be 0): %u; the "
             "worker kept its pid throughout%s%.300s", rejected, closed, bad,
             bad ? "; " : "", bad ? failures : "");
    soak_report(&row);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    stop_clean(&s);
    cr_assert_eq(bad, 0, "cases neither rejected nor closed:\n%s", failures);
}

/* ---- slow and silent clients --------------------------------------------------- */

/* One client of a slowloris or idle flood. */
struct slow {
    int fd;              /* -1 once closed */
    uint64_t first_ms;   /* when its first byte went (or it connected, if silent) */
    uint64_t next_ms;    /* when it sends its next byte */
    uint64_t closed_ms;  /* when the server closed it (0: still open) */
    size_t sent;         /* bytes of the trickle sent so far */
    bool answered;       /* a response (408) arrived before the close */
};

static const char slow_head[] = "GET / HTTP/1.1\r\nHost: t\r\n";
static const char slow_tail[] = "X-Slow: a\r\n"; /* repeated a byte at a time */

/* Open client I: a request line and Host at once when TRICKLE_MS > 0 (the
 * header clock starts), nothing at all otherwise. Spread over one interval. */
static void slow_open(struct slow *c, int port, int trickle_ms, int i, int n)
{
    c->fd = tcp_connect(NULL, "127.0.0.1", port);
    cr_assert(c->fd >= 0, "connect: %s", strerror(errno));
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->first_ms = now_ms();
    c->closed_ms = 0;
    c->sent = 0;
    c->answered = false;
    if (trickle_ms > 0) {
        cr_assert_eq(send(c->fd, slow_head, sizeof(slow_head) - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof(slow_head) - 1);
        c->next_ms = c->first_ms + (uint64_t)trickle_ms * (uint64_t)(i + 1) / (uint64_t)n;
    } else {
        c->next_ms = UINT64_MAX;
    }
}

/* Drive N clients for RUN_MS: trickle a byte to each every TRICKLE_MS
 * (0: silent), note when the server closes each one and, when REOPEN,
 * replace it by a new one. CLOSE_MS gets each close's age (from the first
 * byte) for the first MAX closes; returns how many closes were seen. */
static int slow_drive(struct slow *c, int n, int port, int trickle_ms, uint64_t run_ms,
                      bool reopen, double *close_s, int max, int *answered)
{
    int closes = 0;
    uint64_t end = now_ms() + run_ms;
    static struct pollfd p[4096];
    cr_assert(n <= 4096);
    while (now_ms() < end) {
        uint64_t now = now_ms();
        int open = 0;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
            open += c[i].fd >= 0;
            if (c[i].fd >= 0 && trickle_ms > 0 && now >= c[i].next_ms) {
                char b = slow_tail[c[i].sent++ % (sizeof(slow_tail) - 1)];
                send(c[i].fd, &b, 1, MSG_NOSIGNAL);
                c[i].next_ms = now + (uint64_t)trickle_ms;
            }
        }
        if (open == 0 && !reopen)
            break;
        if (poll(p, (nfds_t)n, 20) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (c[i].fd < 0 || p[i].revents == 0)
                continue;
            char buf[512];
            ssize_t r = recv(c[i].fd, buf, sizeof(buf), 0);
            if (r > 0) {
                c[i].answered = true;
                continue;
            }
            if (r < 0 && errno == EAGAIN)
                continue;
            if (closes < max)
                close_s[closes] = (double)(now_ms() - c[i].first_ms) / 1000.0;
            closes++;
            *answered += c[i].answered;
            close(c[i].fd);
            c[i].fd = -1;
            if (reopen)
                slow_open(&c[i], port, trickle_ms, i, n);
        }
    }
    return closes;
}

static void slow_close_all(struct slow *c, int n)
{
    for (int i = 0; i < n; i++)
        if (c[i].fd >= 0) {
            close(c[i].fd);
            c[i].fd = -1;
        }
}

/* Closes whose age lies outside [LIMIT - 0.2, LIMIT + SLACK] seconds. */
static int out_of_window(const double *close_s, int n, double limit, double slack,
                         double *lo, double *hi)
{
    int bad = 0;
    *lo = 1e9;
    *hi = 0;
    for (int i = 0; i < n; i++) {
        *lo = close_s[i] < *lo ? close_s[i] : *lo;
        *hi = close_s[i] > *hi ? close_s[i] : *hi;
        bad += close_s[i] < limit - 0.2 || close_s[i] > limit + slack;
    }
    return bad;
}

/* wrk -t1 -c50 for SECS against PORT, in the background. */
static void wrk_start(struct bench_job *j, int port, int secs)
{
    char url[64], dur[16];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(dur, sizeof(dur), "%ds", secs);
    const char *args[] = { "-t1", "-c50", "-d", dur, "--latency", url, NULL };
    cr_assert_eq(job_start(j, "wrk", args), 0);
}

static double wrk_finish(struct bench_job *j, int secs)
{
    static char out[8192];
    int rc = bench_job_finish(j, (secs + 30) * 1000, out, sizeof(out));
    cr_assert_eq(rc, 0, "wrk failed (is it installed? .ci/deps.sh bench): %s", out);
    cr_assert_null(strstr(out, "Socket errors"), "wrk saw errors: %s", out);
    cr_assert_null(strstr(out, "Non-2xx"), "wrk saw failures: %s", out);
    double p99 = wrk_p99_ms(out);
    cr_assert(p99 > 0, "no p99 in wrk's output: %s", out);
    return p99;
}

Test(reliability_http, slowloris_closed_at_header_timeout_while_others_are_served)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    const int n = (int)soak_pick(200, 2000);
    const int timeout_s = (int)soak_pick(2, 10);
    const int trickle_ms = (int)soak_pick(500, 3000);
    const int wrk_s = 10;
    enum { WRK_ROUNDS = 3 };
    double base_r[WRK_ROUNDS], attack_r[WRK_ROUNDS];
    char ht[16];
    snprintf(ht, sizeof(ht), "%d", timeout_s);
    struct server s;
    const char *extra[] = { "--workers", "2", "--header-timeout", ht, "--idle-timeout", "60",
                            NULL };
    http_start(&s, extra);
    static struct slow c[4096];
    static double close_s[65536];
    int closes = 0, answered = 0;
    double base_p99 = -1, attack_p99 = -1, p99 = -1;
    uint64_t attempted = 0, failed = 0;

    if (soak_full()) {
        /* wrk's p99 alone and with N slow connections held open throughout
         * (each one the server closes is replaced at once), in alternating
         * rounds; the best round of each counts, so that a burst of load
         * from another user of the machine does not decide the ratio. */
        struct bench_job w;
        for (int r = 0; r < WRK_ROUNDS; r++) {
            wrk_start(&w, s.port, wrk_s);
            base_r[r] = wrk_finish(&w, wrk_s);
            /* Opened at a steady rate over one trickle interval, as attack
             * tools do (not all in the same millisecond, which would also
             * time them all out together). */
            for (int k = 0; k < 30; k++) {
                for (int i = n * k / 30; i < n * (k + 1) / 30; i++)
                    slow_open(&c[i], s.port, trickle_ms, i, n);
                closes += slow_drive(c, n * (k + 1) / 30, s.port, trickle_ms,
                                     (uint64_t)trickle_ms / 30, true, close_s + closes,
                                     65536 - closes, &answered);
            }
            wrk_start(&w, s.port, wrk_s);
            while (!job_done(&w))
                closes += slow_drive(c, n, s.port, trickle_ms, 500, true, close_s + closes,
                                     65536 - closes, &answered);
            attack_r[r] = wrk_finish(&w, wrk_s);
            slow_close_all(c, n);
            base_p99 = r == 0 || base_r[r] < base_p99 ? base_r[r] : base_p99;
            attack_p99 = r == 0 || attack_r[r] < attack_p99 ? attack_r[r] : attack_p99;
            p99 = attack_r[r] > p99 ? attack_r[r] : p99;
        }
    }
    for (int i = 0; i < n; i++)
        slow_open(&c[i], s.port, trickle_ms, i, n);
    /* Normal clients meanwhile: handoff-bench keep-alive over http. */
    struct bench_job b;
    load_start(&b, "http", s.port, 20, timeout_s + 1);
    /* The last slow connections, left to the header timeout. */
    closes += slow_drive(c, n, s.port, trickle_ms, (uint64_t)(timeout_s + 5) * 1000, false,
                         close_s + closes, 65536 - closes, &answered);
    static char json[8192];
    cr_assert_eq(bench_job_finish(&b, 30000, json, sizeof(json)), 0, "%s", json);
    double errors = json_num(json, "errors", "total");
    attempted += (uint64_t)json_num(json, NULL, "requests");
    failed += (uint64_t)errors;
    double bench_p99 = json_num(json, "latency_us", "p99") / 1000.0;
    p99 = p99 > bench_p99 ? p99 : bench_p99;
    int still_open = 0;
    for (int i = 0; i < n; i++)
        still_open += c[i].fd >= 0;
    slow_close_all(c, n);
    double lo, hi, slack = soak_full() ? 3.0 : 1.5;
    int outside = out_of_window(close_s, closes < 65536 ? closes : 65536, timeout_s, slack,
                                &lo, &hi);
    cr_assert(get_ok(s.port));
    stop_clean(&s);

    struct soak_row row = { .scenario = "slowloris", .fds_leaked = -1, .p99_ms = p99 };
    snprintf(row.load, sizeof(row.load), "%d connections trickling a header byte every %d ms "
             "(--header-timeout %d s)%s; handoff-bench keep-alive http at 20 connections",
             n, trickle_ms, timeout_s,
             soak_full() ? ", opened over 3 s and kept at that count; wrk -c50, 3 x 10 s "
                           "alone and 3 x 10 s under attack, alternating" : "");
    snprintf(row.faults, sizeof(row.faults), "%d slow connections closed at %.2f-%.2f s after "
             "their first byte (%d with a 408 first)", closes, lo, hi, answered);
    row.attempted = attempted;
    row.failed = failed;
    row.lost = failed;
    if (soak_full())
        snprintf(row.note, sizeof(row.note), "wrk -c50 p99 alone %.2f/%.2f/%.2f ms, under "
                 "attack %.2f/%.2f/%.2f ms; best of each %.2f and %.2f ms (x%.2f, limit x2); "
                 "normal requests must all succeed; every slow connection is closed at the "
                 "header timeout", base_r[0], base_r[1], base_r[2], attack_r[0], attack_r[1],
                 attack_r[2], base_p99, attack_p99, attack_p99 / base_p99);
    else
        snprintf(row.note, sizeof(row.note), "normal requests must all succeed; every slow "
                 "connection is closed at the header timeout");
    soak_report(&row);

    cr_assert_eq(errors, 0, "normal requests failed during the attack: %s", json);
    cr_assert_eq(still_open, 0, "%d slow connections never closed", still_open);
    cr_assert(closes >= n, "%d of %d slow connections closed", closes, n);
    cr_assert_eq(outside, 0, "%d closes outside %d s (-0.2, +%.1f): %.2f..%.2f s", outside,
                 timeout_s, slack, lo, hi);
    if (soak_full())
        cr_assert(attack_p99 <= 2 * base_p99, "p99 %.2f ms under attack, %.2f ms without",
                  attack_p99, base_p99);
}

Test(reliability_http, idle_connections_closed_at_idle_timeout)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    const int n = (int)soak_pick(300, 2000);
    const int idle_s = (int)soak_pick(2, 5);
    char idle[16];
    snprintf(idle, sizeof(idle), "%d", idle_s);
    struct server s;
    const char *extra[] = { "--workers", "2", "--idle-timeout", idle, NULL };
    http_start(&s, extra);
    static struct slow c[4096];
    static double close_s[4096];
    for (int i = 0; i < n; i++)
        slow_open(&c[i], s.port, 0, i, n);
    int answered = 0;
    struct bench_job b;
    load_start(&b, "http", s.port, 20, idle_s + 1);
    int closes = slow_drive(c, n, s.port, 0, (uint64_t)(idle_s + 5) * 1000, false, close_s,
                            4096, &answered);
    static char json[8192];
    cr_assert_eq(bench_job_finish(&b, 30000, json, sizeof(json)), 0, "%s", json);
    double errors = json_num(json, "errors", "total");
    int still_open = 0;
    for (int i = 0; i < n; i++)
        still_open += c[i].fd >= 0;
    slow_close_all(c, n);
    double lo, hi, slack = soak_full() ? 3.0 : 1.5;
    int outside = out_of_window(close_s, closes, idle_s, slack, &lo, &hi);
    cr_assert(get_ok(s.port));
    stop_clean(&s);

    struct soak_row row = { .scenario = "idle flood", .fds_leaked = -1 };
    snprintf(row.load, sizeof(row.load), "%d connections that never send a byte "
             "(--idle-timeout %d s)", n, idle_s);
    snprintf(row.faults, sizeof(row.faults), "%d closed at %.2f-%.2f s after connecting, %d "
             "with an answer first", closes, lo, hi, answered);
    snprintf(row.load + strlen(row.load), sizeof(row.load) - strlen(row.load),
             "; handoff-bench keep-alive http at 20 connections");
    row.attempted = (uint64_t)json_num(json, NULL, "requests");
    row.failed = (uint64_t)errors;
    row.lost = row.failed;
    row.p99_ms = json_num(json, "latency_us", "p99") / 1000.0;
    snprintf(row.note, sizeof(row.note), "attempted = normal requests during the flood, all "
             "must succeed; the idle connections asked for nothing and are closed silently "
             "at the idle timeout");
    soak_report(&row);

    cr_assert_eq(errors, 0, "normal requests failed during the idle flood: %s", json);
    cr_assert_eq(still_open, 0, "%d idle connections never closed", still_open);
    cr_assert_eq(outside, 0, "%d closes outside %d s (-0.2, +%.1f): %.2f..%.2f s", outside,
                 idle_s, slack, lo, hi);
}

/* ---- pipelining clients that never read ------------------------------------------ */

static const char pipe_req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
#define PIPE_REQ_LEN (sizeof(pipe_req) - 1)

static void pipe_fill(int conn, uint64_t off, unsigned char *buf, size_t len)
{
    (void)conn;
    for (size_t k = 0; k < len; k++)
        buf[k] = (unsigned char)pipe_req[(off + k) % PIPE_REQ_LEN];
}

/* Read until WANT status lines "HTTP/1.1 200 " have arrived on FD (the
 * matcher restarts only on 'H', which the pattern holds just once), the
 * server closes or TIMEOUT_MS passes. *RESET (if not NULL) tells whether
 * the connection was reset. */
static uint64_t count_answers(int fd, uint64_t want, int timeout_ms, bool *reset)
{
    static const char pat[] = "HTTP/1.1 200 ";
    static char buf[65536];
    uint64_t seen = 0;
    size_t m = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (seen < want && now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0) {
            if (reset != NULL)
                *reset = r < 0;
            break;
        }
        for (ssize_t k = 0; k < r; k++) {
            m = buf[k] == pat[m] ? m + 1 : (buf[k] == 'H' ? 1 : 0);
            if (m == sizeof(pat) - 1) {
                seen++;
                m = 0;
            }
        }
    }
    return seen;
}

/* Per pipelining connection, how much the worker's RSS grew (KiB); *LOST
 * gets the complete requests that got no answer once the clients read. */
static double stalled_pipeline_kib(const char *max_output, int n, uint64_t *requests,
                                   uint64_t *lost, double *cpu)
{
    struct server s;
    const char *extra[] = { "--workers", "1", "--max-output-bytes", max_output,
                            "--max-requests-per-conn", "0", NULL };
    http_start(&s, extra);
    pid_t w;
    workers_of(&s, &w, 1);
    for (int i = 0; i < 8; i++)
        cr_assert(get_ok(s.port));
    static struct stall st;
    stall_measure(&s, &st, n, pipe_fill);
    *cpu = st.cpu_s;
    *requests = *lost = 0;
    for (int i = 0; i < n; i++) {
        uint64_t want = st.sent[i] / PIPE_REQ_LEN;
        *requests += want;
        *lost += want - count_answers(st.fds[i], want, 30000, NULL);
        close(st.fds[i]);
    }
    stop_clean(&s);
    return st.rss_kib;
}

/* The documented bound for a pipelining client that never reads: unread
 * requests stop being read once --max-output-bytes of them wait, and no new
 * response starts once that much output is queued: twice the option in
 * data. */
#define pipeline_bound_kib(max_output) rss_bound_kib(2 * (max_output))

Test(reliability_http, memory_per_pipelining_connection_is_bounded)
{
    if (under_checker())
        cr_skip_test("timing-sensitive; skipped under a checker");
    asan_quarantine_off();
    enum { N = 50 };
    static const int sizes[2] = { 262144, 65536 };
    double kib[2], worst_cpu = 0;
    uint64_t requests = 0, lost = 0;
    for (int k = 0; k < 2; k++) {
        char arg[16];
        uint64_t req_k, lost_k;
        double cpu;
        snprintf(arg, sizeof(arg), "%d", sizes[k]);
        kib[k] = stalled_pipeline_kib(arg, N, &req_k, &lost_k, &cpu);
        requests += req_k;
        lost += lost_k;
        worst_cpu = cpu > worst_cpu ? cpu : worst_cpu;
    }
    struct soak_row row = { .scenario = "clients that pipeline and never read",
                            .fds_leaked = -1, .p99_ms = -1 };
    snprintf(row.load, sizeof(row.load), "%d http connections pipelining GET / until stalled, "
             "never reading (client buffers 4/8 KiB), 1 worker", N);
    snprintf(row.faults, sizeof(row.faults), "--max-output-bytes 256 KiB: %.0f KiB RSS per "
             "connection; 64 KiB: %.0f KiB (bounds %.0f and %.0f KiB); worker CPU while "
             "stalled %.3f s/s", kib[0], kib[1], pipeline_bound_kib(sizes[0]),
             pipeline_bound_kib(sizes[1]), worst_cpu);
    row.attempted = requests;
    row.failed = lost;
    row.lost = lost;
    snprintf(row.note, sizeof(row.note), "attempted = complete requests the clients pipelined; "
             "each must be answered once the client reads");
    soak_report(&row);
    for (int k = 0; k < 2; k++)
        cr_assert(kib[k] <= pipeline_bound_kib(sizes[k]), "%.0f KiB per connection with "
                  "--max-output-bytes %d, bound %.0f", kib[k], sizes[k],
                  pipeline_bound_kib(sizes[k]));
    cr_assert(worst_cpu < 0.1, "worker used %.2f s CPU in 1 s with every reader stalled",
              worst_cpu);
    cr_assert_eq(lost, 0, "%llu of %llu pipelined requests never answered",
                 (unsigned long long)lost, (unsigned long long)requests);
}

/* A client that is still pipelining when the server reaches
 * --max-requests-per-conn: the answers the server gave must all arrive,
 * followed by a clean close, however the requests were split. Closing with
 * the client's later requests unread would reset the connection and throw
 * away answers still in the server's socket buffer. */
Test(reliability_http, answers_before_the_request_limit_survive_a_client_still_sending)
{
    enum { LIMIT = 100, MORE = 900 };
    struct server s;
    const char *extra[] = { "--workers", "1", "--max-requests-per-conn", "100",
                            "--linger-timeout", "2", NULL };
    http_start(&s, extra);
    int rounds = (int)soak_pick(2, 20);
    uint64_t answered = 0, resets = 0;
    static char reqs[(LIMIT + MORE) * PIPE_REQ_LEN];
    pipe_fill(0, 0, (unsigned char *)reqs, sizeof(reqs));
    for (int r = 0; r < rounds; r++) {
        /* Even rounds: exactly the limit first, so nothing is left unread
         * in the server's buffer when it decides to close. */
        size_t first = (r % 2 == 0 ? LIMIT : LIMIT + 1 + (size_t)r) * PIPE_REQ_LEN;
        int fd = connect_small_buffers(s.port);
        cr_assert_eq(write_all(fd, reqs, first), 0);
        usleep(200000);
        send(fd, reqs + first, sizeof(reqs) - first, MSG_NOSIGNAL | MSG_DONTWAIT);
        usleep(200000);
        bool reset = false;
        uint64_t got = count_answers(fd, LIMIT, 5000, &reset);
        char c;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        bool fin = !reset && poll(&p, 1, 5000) == 1 && recv(fd, &c, 1, 0) == 0;
        answered += got;
        resets += !fin;
        close(fd);
    }
    cr_assert(get_ok(s.port));
    stop_clean(&s);
    struct soak_row row = { .scenario = "request limit reached mid-pipeline",
                            .fds_leaked = -1, .p99_ms = -1 };
    snprintf(row.load, sizeof(row.load), "%d connections pipelining %d requests (the first "
             "%d, then the rest 0.2 s later) with --max-requests-per-conn %d, reading slowly "
             "(4 KiB receive buffer)", rounds, LIMIT + MORE, LIMIT, LIMIT);
    snprintf(row.faults, sizeof(row.faults), "the server closes after request %d while the "
             "client is still sending", LIMIT);
    row.attempted = (uint64_t)rounds * LIMIT;
    row.failed = row.attempted - answered;
    row.lost = row.failed;
    snprintf(row.note, sizeof(row.note), "attempted = requests the server answered before its "
             "limit; every answer must reach the client, then a FIN (resets seen: %llu); the "
             "requests past the limit are refused by design (Connection: close)",
             (unsigned long long)resets);
    soak_report(&row);
    cr_assert_eq(answered, (uint64_t)rounds * LIMIT, "%llu of %d answers arrived, %llu resets",
                 (unsigned long long)answered, rounds * LIMIT, (unsigned long long)resets);
    cr_assert_eq(resets, 0, "%llu connections reset instead of closed",
                 (unsigned long long)resets);
}
