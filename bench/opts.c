/* opts: command-line parsing with getopt_long; see opts.h. */
#include "opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "0.1.0"
#endif

#define DEFAULT_TARGET "127.0.0.1:8080"
#define DEFAULT_CONCURRENCY 10    /* churn, keepalive */
#define DEFAULT_HOLD_WINDOW 256   /* hold: connects in flight */
#define DEFAULT_HOLD_SOURCES 64   /* hold: 127.x source addresses */
#define DEFAULT_DURATION 10.0     /* seconds, when no count limit is given */
#define DEFAULT_COUNT_CAP 60.0    /* seconds, safety cap with a count limit */
#define DEFAULT_TIMEOUT 5.0
#define DEFAULT_SIZE 64
#define DEFAULT_UNP_BYTES 4096
#define MAX_PROCESSES 1024
#define MAX_CONCURRENCY 10000000
#define MAX_SIZE (64L << 20)
#define MAX_SOURCES (254 * 256)
#define MAX_COUNT (1LL << 48)

static const char *const mode_names[] = { "churn", "keepalive", "unp", "hold" };
static const char *const proto_names[] = { "echo", "http", "unp" };

const char *opts_mode_name(enum opts_mode m) { return mode_names[m]; }
const char *opts_proto_name(enum opts_proto p) { return proto_names[p]; }

static void usage(FILE *out)
{
    fprintf(out,
"usage: handoff-bench [options]\n"
"  -m, --mode MODE          churn | keepalive | unp | hold (default keepalive)\n"
"                           churn: connect, one request, close, repeat\n"
"                           keepalive: -c connections, requests back to back\n"
"                           unp: -p processes each making -l connections\n"
"                           hold: open --connections idle connections, keep them\n"
"                             for --duration (0: until SIGINT/SIGTERM), report how\n"
"                             many stayed open\n"
"      --proto PROTO        echo | http | unp (default echo; unp for --mode unp)\n"
"  -t, --target HOST:PORT   numeric IPv4 or [IPv6] (default " DEFAULT_TARGET ")\n"
"  -c, --concurrency N      connections at once over all processes (default %d;\n"
"                           unp: one per process; hold: connects in flight, %d)\n"
"  -p, --processes N        client processes, 1-%d (default 1; hold: as many as\n"
"                           the fd limit needs)\n"
"  -d, --duration SECONDS   stop after this long (default %g, or %g as a cap when\n"
"                           a count limit is given; hold: time to hold, %g)\n"
"  -n, --requests N         stop after N requests in all\n"
"  -N, --connections N      stop after N connections in all (hold: how many)\n"
"  -l, --loops L            connections per process (sets -N to L x processes)\n"
"  -r, --conn-requests R    requests per connection before closing, 0 = no limit\n"
"                           (churn 1, keepalive 0, unp 1)\n"
"  -s, --size BYTES         echo payload size (default %d)\n"
"  -b, --bytes B            unp: bytes asked for per request (default %d)\n"
"      --path PATH          http: request path (default /)\n"
"      --host HOST          http: Host header (default the target)\n"
"  -T, --timeout SECONDS    connect timeout and idle I/O timeout per socket\n"
"                           (default %g)\n"
"  -S, --sources K          bind sockets to K source addresses 127.0.0.1,\n"
"                           127.0.0.2, ... round robin (IPv4 loopback target only;\n"
"                           default 0 = kernel's choice, hold %d)\n"
"      --json               one JSON object on stdout instead of the summary line\n"
"  -q, --quiet              no progress lines on stderr\n"
"  -h, --help, -V, --version\n"
"exit status: 0 run completed (errors are counted, not fatal), 1 set-up failure,\n"
"2 bad arguments\n",
            DEFAULT_CONCURRENCY, DEFAULT_HOLD_WINDOW, MAX_PROCESSES, DEFAULT_DURATION,
            DEFAULT_COUNT_CAP, DEFAULT_DURATION, DEFAULT_SIZE, DEFAULT_UNP_BYTES,
            DEFAULT_TIMEOUT, DEFAULT_HOLD_SOURCES);
}

static int parse_ll(const char *name, const char *s, long long lo, long long hi,
                    long long *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        snprintf(err, errlen, "--%s: '%s' is not a whole number in %lld..%lld", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *name, const char *s, double lo, double hi, double *out,
                         char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        snprintf(err, errlen, "--%s: '%s' is not a number of seconds in %g..%g", name, s, lo,
                 hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int pick(const char *name, const char *s, const char *const *names, int n, int *out,
                char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 names[i]);
    snprintf(err, errlen, "--%s: unknown '%s' (%s)", name, s, list);
    return -1;
}

/* Text that goes into a request line or header: printable, no spaces for
 * the path, no CR/LF anywhere. */
static bool header_safe(const char *s, bool allow_space)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x21 || *p == 0x7f)
            if (!(allow_space && *p == ' '))
                return false;
    return true;
}

static int parse_target(struct opts *o, const char *text, char *err, size_t errlen)
{
    struct addr_listen a;
    char why[256];
    if (strchr(text, ':') == NULL) {
        snprintf(err, errlen, "--target: '%s' is not HOST:PORT", text);
        return -1;
    }
    if (addr_parse_listen(text, &a, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--target: %s", why);
        return -1;
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a.ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a.ss;
    bool wildcard = (a.ss.ss_family == AF_INET && s4->sin_addr.s_addr == htonl(INADDR_ANY)) ||
                    (a.ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr));
    unsigned port = a.ss.ss_family == AF_INET ? ntohs(s4->sin_port) : ntohs(s6->sin6_port);
    if (wildcard || port == 0) {
        snprintf(err, errlen, "--target: '%s' needs a host and a non-zero port (HOST:PORT)",
                 text);
        return -1;
    }
    memcpy(&o->target, &a.ss, sizeof(o->target));
    o->target_len = a.len;
    if (addr_format((struct sockaddr *)&o->target, o->target_text, sizeof(o->target_text)) < 0) {
        snprintf(err, errlen, "--target: cannot format '%s'", text);
        return -1;
    }
    return 0;
}

static bool target_is_v4_loopback(const struct opts *o)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&o->target;
    return o->target.ss_family == AF_INET && (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
}

enum {
    OPT_PROTO = 256, OPT_PATH, OPT_HOST, OPT_JSON,
};

static const struct option long_opts[] = {
    { "mode", required_argument, NULL, 'm' },
    { "proto", required_argument, NULL, OPT_PROTO },
    { "target", required_argument, NULL, 't' },
    { "concurrency", required_argument, NULL, 'c' },
    { "processes", required_argument, NULL, 'p' },
    { "duration", required_argument, NULL, 'd' },
    { "requests", required_argument, NULL, 'n' },
    { "connections", required_argument, NULL, 'N' },
    { "loops", required_argument, NULL, 'l' },
    { "conn-requests", required_argument, NULL, 'r' },
    { "size", required_argument, NULL, 's' },
    { "bytes", required_argument, NULL, 'b' },
    { "path", required_argument, NULL, OPT_PATH },
    { "host", required_argument, NULL, OPT_HOST },
    { "timeout", required_argument, NULL, 'T' },
    { "sources", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Which options were given, for defaults that depend on the mode. */
struct given {
    bool proto, concurrency, duration, conn_requests, sources, target;
};

/* Mode-dependent defaults and cross-option checks, after all options. */
static int opts_finish(struct opts *o, const struct given *g, char *err, size_t errlen)
{
    if (!g->target && parse_target(o, DEFAULT_TARGET, err, errlen) < 0)
        return -1;
    if (!g->proto)
        o->proto = o->mode == OPTS_UNP ? OPTS_UNPREQ : OPTS_ECHO;
    if (o->loops > 0 && o->connections != OPTS_UNLIMITED) {
        snprintf(err, errlen, "--loops and --connections both set the connection count; "
                              "give one");
        return -1;
    }
    if (o->loops > 0)
        o->connections = o->loops * (uint64_t)o->processes;

    switch (o->mode) {
    case OPTS_CHURN:
        if (g->conn_requests && o->conn_requests != 1) {
            snprintf(err, errlen, "--conn-requests: churn makes exactly one request per "
                                  "connection (use keepalive or unp for more)");
            return -1;
        }
        o->conn_requests = 1;
        break;
    case OPTS_KEEPALIVE:
        if (!g->conn_requests)
            o->conn_requests = 0;
        break;
    case OPTS_UNP:
        if (!g->conn_requests)
            o->conn_requests = 1;
        if (!g->concurrency)
            o->concurrency = o->processes;
        break;
    case OPTS_HOLD:
        if (o->requests != OPTS_UNLIMITED || g->conn_requests) {
            snprintf(err, errlen, "--mode hold makes no requests: drop --requests and "
                                  "--conn-requests");
            return -1;
        }
        if (o->connections == OPTS_UNLIMITED || o->connections == 0) {
            snprintf(err, errlen, "--mode hold needs --connections N (or --loops L)");
            return -1;
        }
        if (!g->concurrency)
            o->concurrency = DEFAULT_HOLD_WINDOW;
        if (!g->sources && target_is_v4_loopback(o))
            o->sources = DEFAULT_HOLD_SOURCES;
        break;
    }
    if (o->concurrency < o->processes) {
        if (g->concurrency) {
            snprintf(err, errlen, "--concurrency %d is below --processes %d: every process "
                                  "needs at least one connection", o->concurrency,
                     o->processes);
            return -1;
        }
        o->concurrency = o->processes;
    }
    if (o->sources > 0 && !target_is_v4_loopback(o)) {
        snprintf(err, errlen, "--sources binds to 127.x.y.z and needs an IPv4 loopback "
                              "target (127.0.0.0/8), not %s", o->target_text);
        return -1;
    }
    bool counted = o->requests != OPTS_UNLIMITED || o->connections != OPTS_UNLIMITED;
    if (!g->duration)
        o->duration = (counted && o->mode != OPTS_HOLD) ? DEFAULT_COUNT_CAP : DEFAULT_DURATION;
    else if (o->duration == 0 && !counted && o->mode != OPTS_HOLD) {
        snprintf(err, errlen, "--duration 0 (no time limit) needs --requests or "
                              "--connections so the run ends on its own");
        return -1;
    }
    if (o->host[0] == '\0')
        snprintf(o->host, sizeof(o->host), "%s", o->target_text);
    return 0;
}

enum opts_rc opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errlen)
{
    struct given g = { 0 };
    long long v;
    int k;
    memset(o, 0, sizeof(*o));
    o->mode = OPTS_KEEPALIVE;
    o->processes = 1;
    o->concurrency = DEFAULT_CONCURRENCY;
    o->requests = OPTS_UNLIMITED;
    o->connections = OPTS_UNLIMITED;
    o->timeout = DEFAULT_TIMEOUT;
    o->size = DEFAULT_SIZE;
    o->bytes = DEFAULT_UNP_BYTES;
    snprintf(o->path, sizeof(o->path), "/");

    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":m:t:c:p:d:n:N:l:r:s:b:T:S:qhV", long_opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'm':
            if (pick("mode", optarg, mode_names, 4, &k, err, errlen) < 0)
                return OPTS_ERROR;
            o->mode = (enum opts_mode)k;
            break;
        case OPT_PROTO:
            if (pick("proto", optarg, proto_names, 3, &k, err, errlen) < 0)
                return OPTS_ERROR;
            o->proto = (enum opts_proto)k;
            g.proto = true;
            break;
        case 't':
            if (parse_target(o, optarg, err, errlen) < 0)
                return OPTS_ERROR;
            g.target = true;
            break;
        case 'c':
            if (parse_ll("concurrency", optarg, 1, MAX_CONCURRENCY, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->concurrency = (int)v;
            g.concurrency = true;
            break;
        case 'p':
            if (parse_ll("processes", optarg, 1, MAX_PROCESSES, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->processes = (int)v;
            break;
        case 'd':
            if (parse_seconds("duration", optarg, 0, 86400, &o->duration, err, errlen) < 0)
                return OPTS_ERROR;
            g.duration = true;
            break;
        case 'n':
            if (parse_ll("requests", optarg, 1, MAX_COUNT, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->requests = (uint64_t)v;
            break;
        case 'N':
            if (parse_ll("connections", optarg, 1, MAX_COUNT, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->connections = (uint64_t)v;
            break;
        case 'l':
            if (parse_ll("loops", optarg, 1, MAX_COUNT / MAX_PROCESSES, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->loops = (uint64_t)v;
            break;
        case 'r':
            if (parse_ll("conn-requests", optarg, 0, MAX_COUNT, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->conn_requests = (uint64_t)v;
            g.conn_requests = true;
            break;
        case 's':
            if (parse_ll("size", optarg, 1, MAX_SIZE, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->size = (size_t)v;
            break;
        case 'b':
            if (parse_ll("bytes", optarg, 1, 1LL << 40, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->bytes = (uint64_t)v;
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strlen(optarg) >= sizeof(o->path) ||
                !header_safe(optarg, false)) {
                snprintf(err, errlen, "--path: '%s' must start with '/', hold no spaces or "
                                      "control characters and be under %d bytes", optarg,
                         OPTS_PATH_MAX);
                return OPTS_ERROR;
            }
            snprintf(o->path, sizeof(o->path), "%s", optarg);
            break;
        case OPT_HOST:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(o->host) ||
                !header_safe(optarg, false)) {
                snprintf(err, errlen, "--host: '%s' must be non-empty, printable and under "
                                      "%d bytes", optarg, OPTS_HOST_MAX);
                return OPTS_ERROR;
            }
            snprintf(o->host, sizeof(o->host), "%s", optarg);
            break;
        case 'T':
            if (parse_seconds("timeout", optarg, 0.001, 3600, &o->timeout, err, errlen) < 0)
                return OPTS_ERROR;
            break;
        case 'S':
            if (parse_ll("sources", optarg, 0, MAX_SOURCES, &v, err, errlen) < 0)
                return OPTS_ERROR;
            o->sources = (int)v;
            g.sources = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return OPTS_EXIT_OK;
        case 'V':
            printf("handoff-bench %s\n", HANDOFF_VERSION);
            return OPTS_EXIT_OK;
        case ':':
            snprintf(err, errlen, "option '%s' needs a value; see --help", argv[optind - 1]);
            return OPTS_ERROR;
        case '?':
        default:
            snprintf(err, errlen, "unknown option '%s'; see --help", argv[optind - 1]);
            return OPTS_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'; see --help", argv[optind]);
        return OPTS_ERROR;
    }
    return opts_finish(o, &g, err, errlen) < 0 ? OPTS_ERROR : OPTS_OK;
}

int opts_fit_fds(struct opts *o, uint64_t fd_cap, int *added, char *err, size_t errlen)
{
    *added = 0;
    if (fd_cap == 0) {
        snprintf(err, errlen, "no file descriptors left for sockets");
        return -1;
    }
    if (o->mode == OPTS_HOLD) {
        uint64_t need = (o->connections + fd_cap - 1) / fd_cap;
        if (need > MAX_PROCESSES) {
            snprintf(err, errlen, "--connections %llu needs %llu processes at %llu fds each "
                                  "(most %d)", (unsigned long long)o->connections,
                     (unsigned long long)need, (unsigned long long)fd_cap, MAX_PROCESSES);
            return -1;
        }
        if ((uint64_t)o->processes < need) {
            *added = (int)need - o->processes;
            o->processes = (int)need;
        }
        if (o->concurrency < o->processes)
            o->concurrency = o->processes;
        return 0;
    }
    uint64_t per = opts_split((uint64_t)o->concurrency, o->processes, 0);
    if (per > fd_cap) {
        snprintf(err, errlen, "--concurrency %d gives %llu connections per process but the "
                              "fd limit allows %llu: add --processes", o->concurrency,
                 (unsigned long long)per, (unsigned long long)fd_cap);
        return -1;
    }
    return 0;
}

uint64_t opts_split(uint64_t total, int parts, int i)
{
    if (total == OPTS_UNLIMITED)
        return OPTS_UNLIMITED;
    uint64_t p = (uint64_t)parts;
    return total / p + ((uint64_t)i < total % p ? 1 : 0);
}

uint32_t opts_source_addr(int i)
{
    uint32_t u = (uint32_t)i;
    return (127u << 24) | (((u / 254) % 65536) << 8) | (1 + u % 254);
}
