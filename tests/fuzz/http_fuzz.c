/* http_fuzz: libFuzzer entry into handoffd's HTTP request handling. The
 * bytes go through http_session_feed over evbuffers exactly as proto_http
 * drives it from a connection, minus the socket: arbitrary input, split at
 * arbitrary points into separate buffer segments, with the output read or
 * left unread, the clock moved on, the session parked between requests
 * and the worker draining at random.
 *
 * Input layout: byte 0 selects the set-up, byte 1 seeds the splits, the
 * rest is what a client would send.
 *   bit 0  serve --root (a small tree with symlinks pointing out of it)
 *   bit 1  a small max_output (exercises the pause on full output)
 *   bit 2  drain the worker part-way through
 *   bit 3  access log on (to /dev/null)
 *   bit 4  a slow reader: the output is taken only every 1 + 8 * (bits 5-7)
 *          steps, so unparsed input piles up in many segments
 *
 * Besides the sanitizers, it checks what must always hold:
 *   - nothing from outside the root is ever sent;
 *   - queued output stays within max_output plus one response;
 *   - after the session says close, it adds nothing more. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <event2/buffer.h>

#include "http_session.h"
#include "http_static.h"

#define SECRET "SECRET-outside-the-root"
/* The largest single response this set-up can produce (files are tiny). */
#define RESPONSE_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_opts opts_fixed, opts_root;
static int devnull = -1;

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/handoff-fuzz-XXXXXX";
    char p[256];
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(p, sizeof(p), "%s/secret.txt", dir);
    put_file(p, SECRET "\n");
    snprintf(p, sizeof(p), "%s/root", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/root/index.html", dir);
    put_file(p, "<p>index</p>\n");
    snprintf(p, sizeof(p), "%s/root/a.txt", dir);
    put_file(p, "a\n");
    snprintf(p, sizeof(p), "%s/root/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/root/sub/index.html", dir);
    put_file(p, "<p>sub</p>\n");
    snprintf(p, sizeof(p), "%s/root/out", dir);
    symlink("../secret.txt", p);
    snprintf(p, sizeof(p), "%s/root/up", dir);
    symlink("..", p);
    snprintf(p, sizeof(p), "%s/root/abs", dir);
    symlink(dir, p);
    snprintf(p, sizeof(p), "%s/root", dir);

    struct http_opts base = {
        .max_uri = 256,
        .max_header = 1024,
        .max_body = 4096,
        .max_output = 64 * 1024,
        .max_requests = 50,
        .header_timeout = 10000,
        .idle_timeout = 60000,
        .root_fd = -1,
        .log_fd = -1,
    };
    opts_fixed = base;
    opts_root = base;
    opts_root.root_fd = http_static_open_root(p);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (opts_root.root_fd < 0 || devnull < 0)
        abort();
    return 0;
}

static int fuzz_whoami(void *arg, char *buf, size_t len)
{
    (void)arg;
    int n = snprintf(buf, len, "{127.0.0.1:80, 127.0.0.1:5555} worker=0 pid=1");
    return n < 0 || (size_t)n >= len ? -1 : n;
}

/* A tiny deterministic generator for split sizes and choices. */
static uint32_t rng_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* The client reads the output: check it and throw it away. */
static void take_output(struct evbuffer *out)
{
    if (evbuffer_get_length(out) == 0)
        return;
    /* Searching reads file segments into memory, which is the point. */
    struct evbuffer_ptr hit = evbuffer_search(out, SECRET, sizeof(SECRET) - 1, NULL);
    if (hit.pos >= 0) {
        fprintf(stderr, "http_fuzz: a file outside the root was served\n");
        abort();
    }
    evbuffer_drain(out, evbuffer_get_length(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t setup = data[0];
    uint32_t x = 0x9e3779b9u ^ data[1];
    data += 2;
    size -= 2;

    struct http_opts opts = (setup & 1) ? opts_root : opts_fixed;
    if (setup & 2)
        opts.max_output = 512;
    if (setup & 8)
        opts.log_fd = devnull;
    struct evbuffer *in = evbuffer_new();
    struct evbuffer *out = evbuffer_new();
    if (in == NULL || out == NULL)
        abort();
    struct http_session s;
    uint64_t now_ms = 1000000;
    time_t now = 1700000000;
    http_session_init(&s, &opts, fuzz_whoami, NULL, now_ms, now);

    unsigned read_every = (setup & 0x10) ? 1u + 8u * (setup >> 5) : 0;
    unsigned step = 0;
    size_t pos = 0;
    bool closed = false;
    while (pos < size && !closed) {
        step++;
        uint32_t r = rng_next(&x);
        size_t n = (r & 63) == 0 ? size - pos : 1 + (r >> 8) % 64;
        if (n > size - pos)
            n = size - pos;
        /* By reference: each piece is its own segment, so the parser sees
         * requests cut at every possible place across iovecs. */
        if ((r & 4) ? evbuffer_add_reference(in, data + pos, n, NULL, NULL) < 0
                    : evbuffer_add(in, data + pos, n) < 0)
            abort();
        pos += n;
        if ((setup & 4) && pos > size / 2)
            s.draining = true;
        if (r & 0x10000) {
            now_ms += r % 3000;
            now += (time_t)(r % 3);
        }
        uint64_t deadline = http_session_deadline(&s);
        enum http_next nx;
        if (deadline != 0 && now_ms >= deadline)
            nx = http_session_expire(&s, out, now);
        else
            nx = http_session_feed(&s, in, out, now_ms, now);
        if (evbuffer_get_length(out) > opts.max_output + RESPONSE_MAX) {
            fprintf(stderr, "http_fuzz: %zu bytes queued, over the bound\n",
                    evbuffer_get_length(out));
            abort();
        }
        if (nx == HTTP_NEXT_CLOSE || nx == HTTP_NEXT_LINGER) {
            closed = true;
            break;
        }
        /* The connection went idle and parked: the request scratch is
         * freed, and the next feed allocates it again. */
        if ((r & 0x40000) && evbuffer_get_length(in) == 0)
            http_session_park(&s);
        if (read_every != 0 ? step % read_every == 0
                            : (r & 0x20000) || nx == HTTP_NEXT_OUTPUT)
            take_output(out); /* else the client is not reading: input piles up */
    }
    /* The client reads everything now: requests left waiting for output
     * space are answered. */
    for (int i = 0; i < 10000 && !closed && evbuffer_get_length(in) > 0; i++) {
        take_output(out);
        enum http_next nx = http_session_feed(&s, in, out, now_ms, now);
        closed = nx == HTTP_NEXT_CLOSE || nx == HTTP_NEXT_LINGER;
        if (nx == HTTP_NEXT_READ)
            break; /* a partial request: the client would have to send more */
    }
    if (closed) {
        /* Whatever else arrives goes unanswered. */
        take_output(out);
        evbuffer_add(in, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 28);
        http_session_feed(&s, in, out, now_ms, now);
        if (evbuffer_get_length(out) != 0) {
            fprintf(stderr, "http_fuzz: output after close\n");
            abort();
        }
    }
    take_output(out);
    http_session_fini(&s);
    evbuffer_free(in);
    evbuffer_free(out);
    return 0;
}
