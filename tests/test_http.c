/* test_http: the HTTP/1.1 protocol end to end, over real sockets against
 * the real handoffd: keep-alive, pipelining, HEAD, 405, every limit and
 * timeout, request smuggling, path escapes under --root, static files,
 * 304, /whoami, Connection: close and HTTP/1.0, chunked bodies,
 * --max-requests-per-conn, the access log, backpressure from a client that
 * never reads, draining, and Expect: 100-continue. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"

#define FIXED_BODY "hello from handoff\n"
#define SECRET "TOPSECRET-outside-the-root"

/* One parsed response. */
struct resp {
    int status;          /* status code */
    char head[8192];     /* status line and fields, NUL-terminated */
    char body[65536];    /* body (NUL-terminated for convenience) */
    size_t body_len;     /* bytes in body */
};

/* The master the running test started, or 0. A failed assertion abandons
 * the test's frame, so the pid is kept here for the suite's fini hook. */
static pid_t live_pid;

static void http_fini(void)
{
    pid_t kids[16];
    if (live_pid <= 0)
        return;
    int n = proc_children(live_pid, kids, 16);
    kill(live_pid, SIGKILL);
    waitpid(live_pid, NULL, 0);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    live_pid = 0;
}

TestSuite(http, .fini = http_fini);

/* server_start, remembering the server for http_fini. */
static int start_args(struct server *s, const char *const *args)
{
    int rc = server_start(s, args);
    live_pid = rc == 0 ? s->pid : 0;
    return rc;
}

/* Start handoffd on port 0 with one worker, protocol http and EXTRA. */
static void start(struct server *s, const char *const *extra)
{
    const char *args[40] = { "--listen", "0", "--workers", "1", "--protocol", "http",
                             "--admin", "off" };
    size_t n = 8;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert_eq(start_args(s, args), 0, "server did not start");
}

/* server_stop with SIG; asserts a clean exit (no sanitizer report). */
static void stop_with(struct server *s, int sig)
{
    int st;
    int rc = server_stop(s, sig, 15000, &st);
    live_pid = 0;
    cr_assert_eq(rc, 0, "server did not stop cleanly (%d)", rc);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit status %d", st);
}

static void stop(struct server *s)
{
    stop_with(s, SIGTERM);
}

static int dial(const struct server *s)
{
    int fd = tcp_connect(NULL, "127.0.0.1", s->port);
    cr_assert(fd >= 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_str(int fd, const char *req)
{
    cr_assert_eq(write_all(fd, req, strlen(req)), 0, "write: %s", strerror(errno));
}

/* The start of file PATH into BUF (NUL-terminated); returns bytes read. */
static size_t slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* Value of field NAME in R's head (up to the CR), or NULL. */
static const char *field(const struct resp *r, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 2 + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= len)
                vl = len - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* Read one response; HEAD_REQ: it answers a HEAD (no body follows).
 * Returns 0, or -1 on EOF, timeout or a malformed head. */
static int read_resp(int fd, struct resp *r, bool head_req)
{
    size_t n = 0;
    memset(r, 0, sizeof(*r));
    while (n < 4 || memcmp(r->head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n + 1 >= sizeof(r->head) || read_exact(fd, r->head + n, 1, 5000) < 0)
            return -1;
        n++;
    }
    r->head[n] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
        return -1;
    char v[64];
    if (!head_req && r->status != 304 && field(r, "Content-Length", v, sizeof(v)) != NULL) {
        r->body_len = strtoul(v, NULL, 10);
        if (r->body_len >= sizeof(r->body) ||
            (r->body_len > 0 && read_exact(fd, r->body, r->body_len, 5000) < 0))
            return -1;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* Whether the server closes FD within TIMEOUT_MS (EOF or reset), after
 * any bytes still in flight. */
static bool closed_within(int fd, int timeout_ms)
{
    char buf[4096];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            return false;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

/* Send REQ on a new connection and read one response. */
static void exchange(const struct server *s, const char *req, struct resp *r, bool head_req)
{
    int fd = dial(s);
    send_str(fd, req);
    cr_assert_eq(read_resp(fd, r, head_req), 0, "no response to %s", req);
    close(fd);
}

/* Send REQ, expect STATUS and the connection closed after it. */
static void expect_status_close(const struct server *s, const char *req, int status)
{
    struct resp r;
    int fd = dial(s);
    send_str(fd, req);
    cr_assert_eq(read_resp(fd, &r, false), 0, "no response to %.60s", req);
    cr_assert_eq(r.status, status, "got %d, want %d for %.60s", r.status, status, req);
    char v[64];
    cr_assert(field(&r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0,
              "no Connection: close on %d", status);
    cr_assert(closed_within(fd, 5000), "connection not closed after %d", status);
    close(fd);
}

/* ---- a document root ---------------------------------------------------- */

struct tree {
    char dir[64];   /* temp dir holding root/ and secret.txt */
    char root[96];  /* the --root */
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "fopen %s", path);
    fputs(text, f);
    fclose(f);
}

static void tree_make(struct tree *t)
{
    char p[256];
    snprintf(t->dir, sizeof(t->dir), "/tmp/handoff-http-XXXXXX");
    cr_assert(mkdtemp(t->dir) != NULL);
    snprintf(t->root, sizeof(t->root), "%s/root", t->dir);
    cr_assert_eq(mkdir(t->root, 0755), 0);
    snprintf(p, sizeof(p), "%s/secret.txt", t->dir);
    write_file(p, SECRET "\n");
    snprintf(p, sizeof(p), "%s/index.html", t->root);
    write_file(p, "<p>root index</p>\n");
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(p, sizeof(p), "%s/f%d.txt", t->root, i);
        snprintf(text, sizeof(text), "file number %d\n", i);
        write_file(p, text);
    }
    snprintf(p, sizeof(p), "%s/style.css", t->root);
    write_file(p, "p { color: red }\n");
    snprintf(p, sizeof(p), "%s/blob", t->root);
    write_file(p, "no extension\n");
    snprintf(p, sizeof(p), "%s/sub", t->root);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/sub/index.html", t->root);
    write_file(p, "<p>sub index</p>\n");
    /* Symlinks: one staying inside, two leading out. */
    snprintf(p, sizeof(p), "%s/link-in.txt", t->root);
    cr_assert_eq(symlink("f1.txt", p), 0);
    snprintf(p, sizeof(p), "%s/link-out.txt", t->root);
    cr_assert_eq(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof(p), "%s/link-dir", t->root);
    cr_assert_eq(symlink(t->dir, p), 0);
}

static void tree_remove(struct tree *t)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    cr_expect_eq(system(cmd), 0);
}

/* ---- tests --------------------------------------------------------------- */

Test(http, keep_alive_fixed_body_and_headers, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    int fd = dial(&s);
    char v[128];
    for (int i = 0; i < 5; i++) {
        struct resp r;
        send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        cr_assert_eq(read_resp(fd, &r, false), 0, "request %d on the same connection", i);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, FIXED_BODY);
        cr_assert(field(&r, "Content-Type", v, sizeof(v)) != NULL &&
                  strncmp(v, "text/plain", 10) == 0);
        cr_assert(field(&r, "Date", v, sizeof(v)) != NULL);
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cr_assert(end != NULL && *end == '\0', "Date '%s' is not an IMF-fixdate", v);
        time_t t = timegm(&tm);
        cr_assert(t > time(NULL) - 5 && t < time(NULL) + 5, "Date '%s' is off", v);
        cr_assert(field(&r, "Connection", v, sizeof(v)) == NULL, "keep-alive needs no header");
    }
    close(fd);
    stop(&s);
}

Test(http, head_and_405_with_allow, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    int fd = dial(&s);
    struct resp r;
    char v[64];
    /* HEAD then GET pipelined: HEAD's head must not be followed by a body. */
    send_str(fd, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, true), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(field(&r, "Content-Length", v, sizeof(v)) != NULL &&
              atoi(v) == (int)strlen(FIXED_BODY), "HEAD Content-Length is GET's");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_str_eq(r.body, FIXED_BODY, "HEAD leaked a body into the next response");
    /* POST with a body: 405, Allow, and the connection stays usable. */
    send_str(fd, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                 "DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(read_resp(fd, &r, false), 0);
        cr_assert_eq(r.status, 405);
        cr_assert(field(&r, "Allow", v, sizeof(v)) != NULL && strcmp(v, "GET, HEAD") == 0);
    }
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 200, "the body of the POST was not discarded exactly");
    close(fd);
    stop(&s);
}

Test(http, chunked_body_is_discarded, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    int fd = dial(&s);
    struct resp r;
    send_str(fd, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 405);
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, FIXED_BODY);
    /* A GET may carry a body too; it is skipped the same way. */
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_str_eq(r.body, FIXED_BODY);
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert(r.body[0] == '{', "second request misparsed: %s", r.body);
    close(fd);
    stop(&s);
}

Test(http, whoami_line_with_and_without_root, .timeout = 30)
{
    struct tree t;
    tree_make(&t);
    for (int with_root = 0; with_root < 2; with_root++) {
        struct server s;
        const char *extra[] = { "--root", t.root, NULL };
        start(&s, with_root ? extra : NULL);
        int fd = dial(&s);
        struct resp r;
        char want[ADDR_PAIRLEN];
        send_str(fd, "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
        cr_assert_eq(read_resp(fd, &r, false), 0);
        cr_assert_eq(r.status, 200);
        cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
        cr_assert(strncmp(r.body, want, strlen(want)) == 0, "got '%s' want '%s'", r.body, want);
        cr_assert(strstr(r.body, " worker=0 pid=") != NULL, "%s", r.body);
        cr_assert(r.body[r.body_len - 1] == '\n');
        close(fd);
        stop(&s);
    }
    tree_remove(&t);
}

Test(http, pipelined_requests_answered_in_order, .timeout = 30)
{
    struct tree t;
    tree_make(&t);
    struct server s;
    const char *extra[] = { "--root", t.root, NULL };
    start(&s, extra);
    int fd = dial(&s);
    enum { N = 200 };
    static char reqs[N * 64];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(reqs + len, sizeof(reqs) - len,
                                "GET /f%d.txt HTTP/1.1\r\nHost: t\r\n\r\n", i % 10);
    cr_assert_eq(write_all(fd, reqs, len), 0, "one write of %d requests", N);
    for (int i = 0; i < N; i++) {
        struct resp r;
        char want[32];
        cr_assert_eq(read_resp(fd, &r, false), 0, "response %d", i);
        snprintf(want, sizeof(want), "file number %d\n", i % 10);
        cr_assert_str_eq(r.body, want, "response %d out of order", i);
    }
    close(fd);
    stop(&s);
    tree_remove(&t);
}

Test(http, pipelined_burst_larger_than_the_output_limit, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--max-output-bytes", "4096", "--max-requests-per-conn", "0", NULL };
    start(&s, extra);
    int fd = dial(&s);
    struct resp r;
    /* Every fixed answer has the same size (the Date field is fixed-width). */
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    size_t each = strlen(r.head) + r.body_len;
    /* Far more answers than the output may hold: the server must pause
     * parsing, and resume once the output drains, with no new input to
     * wake it. */
    enum { N = 5000 };
    static const char one[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    static char reqs[N * (sizeof(one) - 1)];
    for (int i = 0; i < N; i++)
        memcpy(reqs + (size_t)i * (sizeof(one) - 1), one, sizeof(one) - 1);
    cr_assert_eq(write_all(fd, reqs, sizeof(reqs)), 0);
    static char got[N * 256];
    cr_assert(each * N <= sizeof(got));
    cr_assert_eq(read_exact(fd, got, each * N, 10000), 0, "not all %d answers arrived", N);
    size_t count = 0;
    for (const char *p = got; (p = memmem(p, got + each * N - p, "HTTP/1.1 200 OK", 15)) != NULL;
         p += 15)
        count++;
    cr_assert_eq(count, N);
    close(fd);
    stop(&s);
}

Test(http, static_files_mime_index_and_304, .timeout = 30)
{
    struct tree t;
    tree_make(&t);
    struct server s;
    const char *extra[] = { "--root", t.root, NULL };
    start(&s, extra);
    struct resp r;
    char v[128];
    static const struct {
        const char *path, *body, *type;
    } cases[] = {
        { "/", "<p>root index</p>\n", "text/html" },
        { "/index.html", "<p>root index</p>\n", "text/html" },
        { "/sub/", "<p>sub index</p>\n", "text/html" },
        { "/sub", "<p>sub index</p>\n", "text/html" },
        { "/style.css", "p { color: red }\n", "text/css" },
        { "/f3.txt?query=1", "file number 3\n", "text/plain" },
        { "/blob", "no extension\n", "application/octet-stream" },
        { "/link-in.txt", "file number 1\n", "text/plain" },
        { "/./sub//index.html", "<p>sub index</p>\n", "text/html" },
        { "/%66%32.txt", "file number 2\n", "text/plain" },
        { "http://t/f4.txt", "file number 4\n", "text/plain" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i].path);
        exchange(&s, req, &r, false);
        cr_assert_eq(r.status, 200, "%s: %d", cases[i].path, r.status);
        cr_assert_str_eq(r.body, cases[i].body, "%s", cases[i].path);
        cr_assert(field(&r, "Content-Type", v, sizeof(v)) != NULL &&
                  strncmp(v, cases[i].type, strlen(cases[i].type)) == 0,
                  "%s: Content-Type %s", cases[i].path, v);
    }
    exchange(&s, "GET /nothing.html HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    cr_assert_eq(r.status, 404);

    /* Conditional GET: Last-Modified back as If-Modified-Since gives 304. */
    exchange(&s, "GET /f5.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    char lm[64], req[256];
    cr_assert(field(&r, "Last-Modified", lm, sizeof(lm)) != NULL);
    snprintf(req, sizeof(req), "GET /f5.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n",
             lm);
    int fd = dial(&s);
    send_str(fd, req);
    send_str(fd, "GET /f6.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 304);
    cr_assert(field(&r, "Content-Length", v, sizeof(v)) == NULL, "304 carries no body length");
    cr_assert_eq(read_resp(fd, &r, false), 0, "304 must not be followed by a body");
    cr_assert_str_eq(r.body, "file number 6\n");
    close(fd);
    exchange(&s,
             "GET /f5.txt HTTP/1.1\r\nHost: t\r\n"
             "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n\r\n",
             &r, false);
    cr_assert_eq(r.status, 200, "older If-Modified-Since must give the file");
    /* The two obsolete date forms count too; a malformed date is ignored. */
    static const char *const ims[] = { "Sunday, 06-Nov-44 08:49:37 GMT",
                                       "Sun Nov  6 08:49:37 2044", "Sun, 06 Nov 2044 08:49:37 GMT",
                                       "yesterday" };
    for (int i = 0; i < 4; i++) {
        snprintf(req, sizeof(req),
                 "GET /f5.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", ims[i]);
        exchange(&s, req, &r, false);
        cr_assert_eq(r.status, i < 3 ? 304 : 200, "If-Modified-Since: %s gave %d", ims[i],
                     r.status);
    }
    exchange(&s, "HEAD /f5.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r, true);
    cr_assert(r.status == 200 && field(&r, "Content-Length", v, sizeof(v)) != NULL &&
              atoi(v) == 14);
    stop(&s);
    tree_remove(&t);
}

Test(http, paths_escaping_the_root_are_refused, .timeout = 30)
{
    struct tree t;
    tree_make(&t);
    struct server s;
    const char *extra[] = { "--root", t.root, NULL };
    start(&s, extra);
    static const char *const paths[] = {
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/%2e%2e/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/link-out.txt",
        "/link-dir/secret.txt",
        "/f1.txt%00.html",
        "/%00",
        "http://t/../secret.txt",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct resp r;
        char req[256];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
        exchange(&s, req, &r, false);
        cr_assert(r.status == 403 || r.status == 404, "%s: got %d", paths[i], r.status);
        cr_assert(strstr(r.body, "TOPSECRET") == NULL, "%s leaked the secret", paths[i]);
    }
    /* A raw NUL byte in the request line is not HTTP at all. */
    static const char nul_req[] = "GET /f1.txt\0.html HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = dial(&s);
    cr_assert_eq(write_all(fd, nul_req, sizeof(nul_req) - 1), 0);
    struct resp r;
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 400);
    close(fd);
    stop(&s);
    tree_remove(&t);
}

Test(http, smuggling_framing_is_rejected, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    static const char *const reqs[] = {
        /* Content-Length and Transfer-Encoding together */
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        "0\r\n\r\n",
        /* duplicate, equal */
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        /* conflicting */
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        /* a list in one field */
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
        /* a transfer coding whose end cannot be found */
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        /* malformed */
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\n Host: t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n", /* HTTP/1.1 without Host */
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        expect_status_close(&s, reqs[i], 400);
    expect_status_close(&s, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    stop(&s);
}

Test(http, size_limits_431_414_413, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--max-header-bytes", "1024", "--max-uri-bytes", "64",
                            "--max-body-bytes", "100", NULL };
    start(&s, extra);
    char req[4096], pad[2048];
    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad);
    expect_status_close(&s, req, 431);
    snprintf(req, sizeof(req), "GET /%.*s HTTP/1.1\r\nHost: t\r\n\r\n", 100, pad);
    expect_status_close(&s, req, 414);
    /* Just under the limits is fine. */
    struct resp r;
    snprintf(req, sizeof(req), "GET /%.*s HTTP/1.1\r\nHost: t\r\n\r\n", 60, pad);
    exchange(&s, req, &r, false);
    cr_assert_eq(r.status, 200);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n%.*s",
             100, pad);
    exchange(&s, req, &r, false);
    cr_assert_eq(r.status, 200);
    /* Declared too long: refused before the body is read. */
    expect_status_close(&s, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n", 413);
    /* Chunked, found too long while reading. */
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "40\r\n%.*s\r\n40\r\n%.*s\r\n0\r\n\r\n", 64, pad, 64, pad);
    expect_status_close(&s, req, 413);
    stop(&s);
}

Test(http, header_timeout_is_a_deadline_for_trickling_clients, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--header-timeout", "1", NULL };
    start(&s, extra);
    int fd = dial(&s);
    uint64_t t0 = now_ms();
    send_str(fd, "GET / HTTP/1.1\r\n");
    /* One byte every 100 ms keeps a per-read timer alive forever; the
     * deadline for the whole header must still fire. */
    bool answered = false;
    for (int i = 0; i < 40 && !answered; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) > 0) {
            answered = true;
            break;
        }
        if (write(fd, "X", 1) != 1)
            break; /* server closed: the read below will say */
    }
    struct resp r;
    cr_assert_eq(read_resp(fd, &r, false), 0, "no 408");
    uint64_t took = now_ms() - t0;
    cr_assert_eq(r.status, 408);
    cr_assert(took >= 900 && took < 3000, "408 after %llu ms", (unsigned long long)took);
    cr_assert(closed_within(fd, 5000), "not closed after 408");
    close(fd);
    stop(&s);
}

Test(http, idle_timeout_closes_silent_and_keep_alive_connections, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--idle-timeout", "1", NULL };
    start(&s, extra);
    int quiet = dial(&s);
    int used = dial(&s);
    uint64_t t0 = now_ms();
    struct resp r;
    send_str(used, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(used, &r, false), 0);
    cr_assert(closed_within(quiet, 4000), "a connection that never sent stayed open");
    cr_assert(closed_within(used, 4000), "an idle keep-alive connection stayed open");
    uint64_t took = now_ms() - t0;
    cr_assert(took >= 900, "closed after only %llu ms", (unsigned long long)took);
    close(quiet);
    close(used);
    stop(&s);
}

Test(http, write_timeout_drops_a_client_that_stopped_reading, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--write-timeout", "1", "--max-output-bytes", "4096",
                            "--max-requests-per-conn", "0", NULL };
    start(&s, extra);
    int fd = dial(&s);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static const char one[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    /* Enough requests for far more answers than the socket buffers hold;
     * stop when the server stops taking them. */
    uint64_t t0 = now_ms();
    for (int i = 0; i < 200000 && now_ms() - t0 < 5000; i++) {
        if (write(fd, one, sizeof(one) - 1) < 0) {
            cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "write: %s", strerror(errno));
            break;
        }
    }
    /* Read nothing for longer than the write timeout. */
    sleep(2);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    static char sink[1 << 20];
    ssize_t got = read_to_eof(fd, sink, sizeof(sink), 5000);
    cr_assert(got >= 0, "the server kept the stalled connection open");
    close(fd);
    stop(&s);
}

Test(http, connection_close_and_http10, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    struct resp r;
    char v[64];
    int fd = dial(&s);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert(field(&r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0);
    cr_assert(closed_within(fd, 3000));
    close(fd);

    fd = dial(&s);
    send_str(fd, "GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_str_eq(r.body, FIXED_BODY);
    cr_assert(field(&r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0);
    cr_assert(closed_within(fd, 3000), "HTTP/1.0 without keep-alive stayed open");
    close(fd);

    fd = dial(&s);
    for (int i = 0; i < 3; i++) {
        send_str(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        cr_assert_eq(read_resp(fd, &r, false), 0, "HTTP/1.0 keep-alive request %d", i);
        cr_assert(field(&r, "Connection", v, sizeof(v)) != NULL &&
                  strcasecmp(v, "keep-alive") == 0);
    }
    close(fd);
    stop(&s);
}

Test(http, max_requests_per_conn, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--max-requests-per-conn", "3", NULL };
    start(&s, extra);
    int fd = dial(&s);
    struct resp r;
    char v[64];
    for (int i = 1; i <= 3; i++) {
        send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        cr_assert_eq(read_resp(fd, &r, false), 0);
        bool closing = field(&r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0;
        cr_assert_eq(closing, i == 3, "request %d: Connection: close %s", i,
                     closing ? "too early" : "missing");
    }
    cr_assert(closed_within(fd, 3000));
    close(fd);
    stop(&s);
}

Test(http, access_log_common_format, .timeout = 30)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/handoff-access-XXXXXX");
    int lfd = mkstemp(path);
    cr_assert(lfd >= 0);
    close(lfd);
    struct server s;
    const char *extra[] = { "--access-log", path, NULL };
    start(&s, extra);
    struct resp r;
    exchange(&s, "GET /some/where?x=\"1\" HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    exchange(&s, "HEAD / HTTP/1.0\r\n\r\n", &r, true);
    exchange(&s, "PUT /p HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r, false);
    char buf[4096] = { 0 };
    uint64_t deadline = now_ms() + 3000;
    while (now_ms() < deadline) {
        slurp(path, buf, sizeof(buf));
        if (strstr(buf, "PUT") != NULL)
            break;
        usleep(20000);
    }
    stop(&s);
    unlink(path);
    char *l1 = strstr(buf, "127.0.0.1 - - [");
    cr_assert(l1 != NULL, "log: %s", buf);
    /* [dd/Mon/yyyy:hh:mm:ss +0000] */
    cr_assert(l1[17] == '/' && l1[21] == '/' && l1[26] == ':' && strncmp(l1 + 35, " +0000] ", 8) == 0,
              "timestamp: %s", l1);
    cr_assert(strstr(buf, "\"GET /some/where?x=\\x221\\x22 HTTP/1.1\" 200 19\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"HEAD / HTTP/1.0\" 200 -\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"PUT /p HTTP/1.1\" 405 23\n") != NULL, "%s", buf);
}

/* Bytes of /proc/PID/status's VmRSS. */
static long rss_kb(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    slurp(path, buf, sizeof(buf));
    char *p = strstr(buf, "VmRSS:");
    return p != NULL ? strtol(p + 6, NULL, 10) : -1;
}

Test(http, client_that_never_reads_cannot_grow_the_server, .timeout = 60)
{
    struct server s;
    const char *extra[] = { "--max-output-bytes", "65536", "--max-requests-per-conn", "0", NULL };
    start(&s, extra);
    pid_t kids[4];
    cr_assert(proc_wait_children(s.pid, 1, 5000));
    cr_assert_eq(proc_children(s.pid, kids, 4), 1);
    long rss0 = rss_kb(kids[0]);
    int fd = dial(&s);
    /* A small receive buffer so the kernel does not soak up megabytes of
     * responses on our behalf. */
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char chunk[64 * 1024];
    static const char one[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t per = sizeof(one) - 1, n = 0;
    while (n + per <= sizeof(chunk)) {
        memcpy(chunk + n, one, per);
        n += per;
    }
    /* Send pipelined requests without reading. If the server kept reading
     * and answering, the send would never block; cap at 256 MiB. */
    const uint64_t cap = 256ull << 20;
    uint64_t sent = 0, blocked_since = 0, t0 = now_ms();
    size_t off = 0;
    bool blocked = false;
    while (sent < cap && now_ms() - t0 < 30000) {
        ssize_t w = write(fd, chunk + off, n - off);
        if (w > 0) {
            sent += (uint64_t)w;
            off = (off + (size_t)w) % n;
            blocked_since = 0;
            continue;
        }
        cr_assert(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "write: %s",
                  strerror(errno));
        if (blocked_since == 0)
            blocked_since = now_ms();
        else if (now_ms() - blocked_since > 1000) {
            blocked = true;
            break;
        }
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        poll(&p, 1, 50);
    }
    long rss1 = rss_kb(kids[0]);
    cr_log_info("never-reading client: sent %llu bytes before blocking; worker RSS %ld -> %ld kB",
                (unsigned long long)sent, rss0, rss1);
    cr_assert(blocked, "sent %llu bytes and the server kept reading",
              (unsigned long long)sent);
    cr_assert(sent < (64ull << 20), "server took %llu bytes before pushing back",
              (unsigned long long)sent);
#if defined(__SANITIZE_ADDRESS__)
    const long rss_limit = 512 * 1024; /* ASan's quarantine keeps freed memory */
#else
    const long rss_limit = 64 * 1024;
#endif
    cr_assert(rss1 > 0 && rss1 - rss0 < rss_limit, "worker RSS grew from %ld to %ld kB", rss0,
              rss1);
    /* The server is still fine, and the stuck client gets real answers. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    for (int i = 0; i < 10; i++) {
        struct resp r;
        cr_assert_eq(read_resp(fd, &r, false), 0);
        cr_assert_str_eq(r.body, FIXED_BODY);
    }
    close(fd);
    struct resp r;
    exchange(&s, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    cr_assert_eq(r.status, 200);
    stop(&s);
}

Test(http, drain_closes_idle_and_finishes_in_flight, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    struct resp r;
    int idle = dial(&s);
    send_str(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(idle, &r, false), 0);
    int busy = dial(&s);
    send_str(busy, "GET / HTTP/1.1\r\nHost: t\r\n");
    /* Let the worker see the half request before the stop. */
    usleep(200000);
    kill(s.pid, SIGTERM);
    cr_assert(closed_within(idle, 3000), "idle keep-alive connection not closed on drain");
    send_str(busy, "\r\n");
    cr_assert_eq(read_resp(busy, &r, false), 0, "in-flight request not answered");
    cr_assert_eq(r.status, 200);
    char v[64];
    cr_assert(field(&r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0);
    cr_assert(closed_within(busy, 3000));
    close(idle);
    close(busy);
    /* Signal 0: already stopping; just wait for the exit. */
    stop_with(&s, 0);
}

/* The admin port from the server's "handoffd: admin http://127.0.0.1:PORT". */
static int admin_port_of(const struct server *s)
{
    static const char tag[] = "handoffd: admin http://127.0.0.1:";
    char buf[8192];
    slurp(s->log_path, buf, sizeof(buf));
    const char *l = strstr(buf, tag);
    return l != NULL ? atoi(l + sizeof(tag) - 1) : -1;
}

/* Value of the sample NAME in the admin /metrics page, or -1. */
static long metric(int port, const char *name)
{
    static char page[1 << 16];
    int fd = tcp_connect(NULL, "127.0.0.1", port);
    if (fd < 0)
        return -1;
    send_str(fd, "GET /metrics HTTP/1.0\r\n\r\n");
    ssize_t n = read_to_eof(fd, page, sizeof(page) - 1, 5000);
    close(fd);
    page[n > 0 ? n : 0] = '\0';
    const char *p = page;
    size_t nl = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        if ((p == page || p[-1] == '\n') && p[nl] == ' ')
            return strtol(p + nl + 1, NULL, 10);
        p += nl;
    }
    return -1;
}

Test(http, responses_are_counted_by_class_on_the_admin_page, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "1", "--admin", "127.0.0.1:0", NULL };
    cr_assert_eq(start_args(&s, args), 0);
    int port = admin_port_of(&s);
    cr_assert(port > 0, "no admin line in the log");
    struct resp r;
    for (int i = 0; i < 3; i++)
        exchange(&s, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    exchange(&s, "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
    expect_status_close(&s, "GARBAGE\r\n\r\n", 400);
    cr_assert_eq(metric(port, "handoff_requests_total{class=\"2xx\"}"), 3);
    cr_assert_eq(metric(port, "handoff_requests_total{class=\"4xx\"}"), 2);
    stop(&s);
}

Test(http, bad_options_are_start_up_errors, .timeout = 30)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--root", "/nonexistent/handoff", NULL };
    cr_assert_neq(server_start(&s, args), 0, "--root to nowhere must fail");
    const char *args2[] = { "--listen", "0", "--max-header-bytes", "12", NULL };
    cr_assert_neq(server_start(&s, args2), 0, "--max-header-bytes 12 must fail");
    const char *args3[] = { "--listen", "0", "--idle-timeout", "-1", NULL };
    cr_assert_neq(server_start(&s, args3), 0, "negative timeout must fail");
}

/* ---- Expect: 100-continue ------------------------------------------------ */

#define CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

/* Read the interim 100 within 2 s, as a client holding back its body would
 * wait for it. */
static void read_continue(int fd, const char *what)
{
    char buf[sizeof(CONTINUE)] = { 0 };
    cr_assert_eq(read_exact(fd, buf, sizeof(CONTINUE) - 1, 2000), 0, "no 100 for %s", what);
    cr_assert_str_eq(buf, CONTINUE, "not a bare 100 Continue for %s", what);
}

/* Whether nothing at all arrives on FD for MS ms. */
static bool silent_for(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 0;
}

/* Send HEAD (a header section) alone, check that no 100 comes while the
 * body is held back, then send BODY; returns the status of the response. */
static int status_without_continue(const struct server *s, const char *head, const char *body)
{
    struct resp r;
    int fd = dial(s);
    send_str(fd, head);
    cr_assert(silent_for(fd, 300), "something was sent before the body: %.60s", head);
    send_str(fd, body);
    cr_assert_eq(read_resp(fd, &r, false), 0, "no response to %.60s", head);
    close(fd);
    return r.status;
}

Test(http, expect_100_continue_comes_before_the_body, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    struct resp r;
    int fd = dial(&s);
    /* POST gets 405 once its body is read, as without Expect; the 100 comes
     * first, while the client holds the body back. */
    send_str(fd, "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    read_continue(fd, "POST");
    send_str(fd, "hello");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 405);
    /* Same connection: a GET with a body, the value in another case and
     * with OWS, split over two Expect fields with an empty member. */
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue ,\r\nexpect: ,\r\n"
                 "Content-Length: 3\r\n\r\n");
    read_continue(fd, "GET with a body");
    send_str(fd, "abc");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, FIXED_BODY, "the body was not skipped exactly");
    /* A chunked body. */
    send_str(fd, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Expect: 100-continue\r\n\r\n");
    read_continue(fd, "a chunked POST");
    send_str(fd, "5\r\nhello\r\n0\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 405);
    /* No body to ask for: the final answer straight away. */
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 200, "a GET without a body got %d", r.status);
    /* Body sent along with the header section: it is under way, no 100. */
    send_str(fd, "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
                 "hello");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 405, "got %d for a body that came with its header section", r.status);
    close(fd);
    stop(&s);
}

Test(http, expect_with_a_body_over_the_limit_gets_413_and_no_100, .timeout = 30)
{
    struct server s;
    const char *extra[] = { "--max-body-bytes", "100", NULL };
    start(&s, extra);
    /* The first response must be the 413, then the close. */
    expect_status_close(&s, "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                            "Content-Length: 101\r\n\r\n", 413);
    /* At the limit the body is wanted. */
    int fd = dial(&s);
    send_str(fd, "PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n");
    read_continue(fd, "a body at the limit");
    close(fd);
    stop(&s);
}

Test(http, no_100_for_http10_or_without_expect, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    cr_assert_eq(status_without_continue(&s, "POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
                                             "Content-Length: 5\r\n\r\n", "hello"), 405);
    /* HTTP/1.0 ignores Expect altogether: an unknown one is no 417. */
    cr_assert_eq(status_without_continue(&s, "POST / HTTP/1.0\r\nExpect: fancy\r\n"
                                             "Content-Length: 5\r\n\r\n", "hello"), 405);
    cr_assert_eq(status_without_continue(&s, "POST / HTTP/1.1\r\nHost: t\r\n"
                                             "Content-Length: 5\r\n\r\n", "hello"), 405);
    stop(&s);
}

Test(http, unknown_expectation_gets_417_and_a_close, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    expect_status_close(&s, "POST / HTTP/1.1\r\nHost: t\r\nExpect: fancy\r\n"
                            "Content-Length: 5\r\n\r\n", 417);
    expect_status_close(&s, "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue, fancy\r\n"
                            "Content-Length: 5\r\n\r\n", 417);
    expect_status_close(&s, "GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue-please\r\n\r\n",
                        417);
    /* Too long to keep is still refused, not taken for 100-continue. */
    expect_status_close(&s, "GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue,"
                            "                                        100-continue\r\n\r\n",
                        417);
    stop(&s);
}

Test(http, pipelined_expect_gets_its_100_after_the_earlier_response, .timeout = 30)
{
    struct server s;
    start(&s, NULL);
    struct resp r;
    int fd = dial(&s);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 200, "the first response is not the GET's");
    cr_assert_str_eq(r.body, FIXED_BODY);
    read_continue(fd, "the second pipelined request");
    send_str(fd, "hello" "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert_eq(r.status, 405);
    cr_assert_eq(read_resp(fd, &r, false), 0);
    cr_assert(r.status == 200 && r.body[0] == '{', "third request misparsed: %s", r.body);
    close(fd);
    stop(&s);
}
