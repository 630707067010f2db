/* config: command-line parsing with getopt_long. Each numeric option has a
 * named range; a value outside it is an error, never silently clamped. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "0.1.0"
#endif

#define DEFAULT_LISTEN "[::]:8080"
/* Loopback only: the admin pages show client addresses. */
#define DEFAULT_ADMIN "127.0.0.1:9090"
/* fds a worker keeps for itself (channel, epoll, log, signal pipe, ...). */
#define FD_RESERVE 64

static const char *const model_names[] = { "pass", "fork", "accept", "reuseport", "iterative" };

const char *config_model_name(enum model m) { return model_names[m]; }

const char *config_dispatch_name(enum dispatch_mode d)
{
    return d == DISPATCH_RR ? "rr" : "least";
}

static void usage(FILE *out)
{
    fprintf(out,
"usage: handoffd [options]\n"
"  --listen ADDR            PORT, *:PORT, 0.0.0.0:PORT, [::]:PORT, HOST:PORT, [V6]:PORT\n"
"                           (default " DEFAULT_LISTEN ", dual-stack; port 0 picks one)\n"
"  --backlog N              listen queue length (default 4096)\n"
"  --workers N              pre-forked workers (default: online CPUs)\n"
"  --model NAME             pass, fork, accept, reuseport, iterative (default pass)\n"
"  --dispatch least|rr      worker choice for model pass (default least)\n"
"  --protocol NAME          %s (default http)\n"
"  --drain-timeout SECONDS  time workers get to finish on SIGTERM (default 10)\n"
"  --max-conns N            live connections per worker (default: fd limit - %d)\n"
"  --max-children N         live children for model fork (default 1024)\n"
"  --max-batch N            fds per hand-off message, 1-%d (default 32)\n"
"  --max-queued N           accepted fds waiting for one worker (default 1024)\n"
"  --pass-delay-us N        model pass: a worker sent fds less than N us ago gets the\n"
"                           next ones N us after it, in one message (0-1000000,\n"
"                           default 250; 0: at the end of each accept burst)\n"
"  --pass-delay-conns N     ... only for workers with at least N live connections\n"
"                           (default 16)\n"
"  --max-output-bytes N     per-connection send buffer before reading pauses (default 262144)\n"
"  --unp-max-bytes N        largest byte count a unp client may ask for (default 1073741824)\n"
"  --accept-pause-ms N      listener pause after EMFILE/ENFILE (default 100)\n"
"  --log-file FILE          log here instead of stderr\n"
"  --log-level LEVEL        error, warn, info, debug (default info)\n"
"  --config FILE            INI file of settings (key = long option name); flags given\n"
"                           on the command line override it; re-read on SIGHUP\n"
"  --check-config           validate the configuration and exit\n"
"  --pid-file FILE          write the master's pid here\n"
"  --user NAME              workers run as NAME (the master binds first, as root)\n"
"  --proxy-protocol         every connection starts with a PROXY v1/v2 header (from a\n"
"                           balancer); its addresses replace the socket's\n"
"  --proxy-timeout SECONDS  time a connection gets to send that header (default 5)\n"
"  --admin ADDR|off         status/metrics HTTP listener, same notation as --listen\n"
"                           (default " DEFAULT_ADMIN "; port 0 picks one)\n"
"  --admin-timeout SECONDS  admin request read/write timeout, 1-3600 (default 5)\n"
"  --status-conns-per-worker N  live connections listed per worker on /status,\n"
"                           0-65536 (default 1024; 56 bytes of shared memory each)\n"
"  --help, --version\n"
"protocol http (a timeout of 0 disables it):\n"
"  --root DIR               serve static files from DIR (default: a fixed body)\n"
"  --access-log FILE        append a common-log-format line per request (default off)\n"
"  --max-header-bytes N     request line + header fields, else 431 (default 16384)\n"
"  --max-uri-bytes N        request target, else 414 (default 8192)\n"
"  --max-body-bytes N       request body (read and discarded), else 413 (default 1048576)\n"
"  --max-requests-per-conn N  requests per connection, 0 = no limit (default 10000)\n"
"  --header-timeout SECONDS whole request header, else 408 (default 10)\n"
"  --idle-timeout SECONDS   keep-alive wait and body reads (default 60)\n"
"  --write-timeout SECONDS  queued output making no progress (default 30)\n"
"  --linger-timeout SECONDS input drained after closing on an error (default 2)\n",
            proto_names(), FD_RESERVE, 64);
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out, char *err,
                      size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        snprintf(err, errlen, "--%s: '%s' is not a whole number in %ld..%ld", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *name, const char *s, double hi, double *out, char *err,
                         size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= hi)) {
        snprintf(err, errlen, "--%s: '%s' is not a number of seconds in 0..%g", name, s, hi);
        return -1;
    }
    *out = v;
    return 0;
}

long config_conn_capacity(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    return (long)rl.rlim_cur - FD_RESERVE;
}

static int default_max_conns(void)
{
    long n = config_conn_capacity();
    if (n < 0)
        return 1024;
    return n < 16 ? 16 : (int)(n > 10000000 ? 10000000 : n);
}

enum {
    OPT_LISTEN = 256, OPT_BACKLOG, OPT_WORKERS, OPT_MODEL, OPT_DISPATCH, OPT_PROTOCOL,
    OPT_DRAIN, OPT_MAX_CONNS, OPT_MAX_CHILDREN, OPT_MAX_BATCH, OPT_MAX_QUEUED, OPT_PASS_DELAY, OPT_PASS_DELAY_CONNS,
    OPT_MAX_OUTPUT, OPT_UNP_MAX, OPT_ACCEPT_PAUSE, OPT_LOG_FILE, OPT_LOG_LEVEL,
    OPT_HELP, OPT_VERSION, OPT_PROXY, OPT_PROXY_TIMEOUT, OPT_CONFIG, OPT_CHECK_CONFIG,
    OPT_PID_FILE, OPT_USER,
    OPT_ADMIN, OPT_ADMIN_TIMEOUT, OPT_STATUS_CONNS,
    OPT_HTTP_ROOT, OPT_HTTP_ACCESS_LOG, OPT_HTTP_MAX_HEADER, OPT_HTTP_MAX_URI,
    OPT_HTTP_MAX_BODY, OPT_HTTP_MAX_REQUESTS, OPT_HTTP_HEADER_TIMEOUT, OPT_HTTP_IDLE_TIMEOUT,
    OPT_HTTP_WRITE_TIMEOUT, OPT_HTTP_LINGER_TIMEOUT,
};

static const struct option long_opts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "backlog", required_argument, NULL, OPT_BACKLOG },
    { "workers", required_argument, NULL, OPT_WORKERS },
    { "model", required_argument, NULL, OPT_MODEL },
    { "dispatch", required_argument, NULL, OPT_DISPATCH },
    { "protocol", required_argument, NULL, OPT_PROTOCOL },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN },
    { "max-conns", required_argument, NULL, OPT_MAX_CONNS },
    { "max-children", required_argument, NULL, OPT_MAX_CHILDREN },
    { "max-batch", required_argument, NULL, OPT_MAX_BATCH },
    { "max-queued", required_argument, NULL, OPT_MAX_QUEUED },
    { "pass-delay-us", required_argument, NULL, OPT_PASS_DELAY },
    { "pass-delay-conns", required_argument, NULL, OPT_PASS_DELAY_CONNS },
    { "max-output-bytes", required_argument, NULL, OPT_MAX_OUTPUT },
    { "unp-max-bytes", required_argument, NULL, OPT_UNP_MAX },
    { "accept-pause-ms", required_argument, NULL, OPT_ACCEPT_PAUSE },
    { "log-file", required_argument, NULL, OPT_LOG_FILE },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "root", required_argument, NULL, OPT_HTTP_ROOT },
    { "access-log", required_argument, NULL, OPT_HTTP_ACCESS_LOG },
    { "max-header-bytes", required_argument, NULL, OPT_HTTP_MAX_HEADER },
    { "max-uri-bytes", required_argument, NULL, OPT_HTTP_MAX_URI },
    { "max-body-bytes", required_argument, NULL, OPT_HTTP_MAX_BODY },
    { "max-requests-per-conn", required_argument, NULL, OPT_HTTP_MAX_REQUESTS },
    { "header-timeout", required_argument, NULL, OPT_HTTP_HEADER_TIMEOUT },
    { "idle-timeout", required_argument, NULL, OPT_HTTP_IDLE_TIMEOUT },
    { "write-timeout", required_argument, NULL, OPT_HTTP_WRITE_TIMEOUT },
    { "linger-timeout", required_argument, NULL, OPT_HTTP_LINGER_TIMEOUT },
    { "proxy-protocol", no_argument, NULL, OPT_PROXY },
    { "proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT },
    { "config", required_argument, NULL, OPT_CONFIG },
    { "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
    { "pid-file", required_argument, NULL, OPT_PID_FILE },
    { "user", required_argument, NULL, OPT_USER },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { "admin", required_argument, NULL, OPT_ADMIN },
    { "admin-timeout", required_argument, NULL, OPT_ADMIN_TIMEOUT },
    { "status-conns-per-worker", required_argument, NULL, OPT_STATUS_CONNS },
    { NULL, 0, NULL, 0 },
};

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_text, sizeof(cfg->listen_text), "%s", DEFAULT_LISTEN);
    cfg->backlog = 4096;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus > 0 ? (int)(cpus > 1024 ? 1024 : cpus) : 1;
    cfg->dispatch = DISPATCH_LEAST;
    cfg->model = MODEL_PASS;
    cfg->proto = proto_find("http");
    cfg->drain_timeout = 10;
    cfg->max_batch = 32;
    cfg->max_queued = 1024;
    cfg->pass_delay_us = 250;
    cfg->pass_delay_conns = 16;
    cfg->max_conns = default_max_conns();
    cfg->max_children = 1024;
    cfg->max_output = 256 * 1024;
    cfg->unp_max_bytes = 1ull << 30;
    cfg->accept_pause_ms = 100;
    cfg->log_level = LOG_INFO;
    cfg->http_max_header = 16384;
    cfg->http_max_uri = 8192;
    cfg->http_max_body = 1 << 20;
    cfg->http_max_requests = 10000;
    cfg->http_header_timeout = 10;
    cfg->http_idle_timeout = 60;
    cfg->http_write_timeout = 30;
    cfg->http_linger_timeout = 2;
    cfg->proxy_timeout = 5;
    cfg->admin_enabled = addr_parse_listen(DEFAULT_ADMIN, &cfg->admin, NULL, 0) == 0;
    cfg->admin_timeout = 5;
    cfg->status_conns = 1024;
}

/* --root and --access-log are checked here, before anything forks, so a
 * typo is a start-up error rather than a log line per request. */
static int http_check_paths(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->http_root[0] != '\0') {
        struct stat st;
        if (stat(cfg->http_root, &st) < 0) {
            snprintf(err, errlen, "--root %s: %s", cfg->http_root, strerror(errno));
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--root %s: not a directory", cfg->http_root);
            return -1;
        }
    }
    if (cfg->http_access_log[0] != '\0') {
        int fd = open(cfg->http_access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "--access-log %s: %s", cfg->http_access_log, strerror(errno));
            return -1;
        }
        close(fd);
    }
    return 0;
}

static int copy_path(const char *name, const char *arg, char *dst, size_t len, char *err,
                     size_t errlen)
{
    if (arg[0] == '\0' || strlen(arg) >= len) {
        snprintf(err, errlen, "--%s: path empty or too long", name);
        return -1;
    }
    snprintf(dst, len, "%s", arg);
    return 0;
}

/* Apply options from ARGV (the command line, or a config file turned into
 * one) on top of what CFG holds. */
static enum config_rc config_apply(struct config *cfg, int argc, char **argv, char *err,
                                   size_t errlen)
{
    long v;
    optind = 0; /* 0, not 1: glibc then resets its state between vectors */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", long_opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case OPT_LISTEN:
            if (strlen(optarg) >= sizeof(cfg->listen_text)) {
                snprintf(err, errlen, "--listen: address too long");
                return CONFIG_ERROR;
            }
            snprintf(cfg->listen_text, sizeof(cfg->listen_text), "%s", optarg);
            break;
        case OPT_BACKLOG:
            if (parse_long("backlog", optarg, 1, 65535, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->backlog = (int)v;
            break;
        case OPT_WORKERS:
            if (parse_long("workers", optarg, 1, 1024, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->workers = (int)v;
            break;
        case OPT_MODEL: {
            size_t i, n = sizeof(model_names) / sizeof(model_names[0]);
            for (i = 0; i < n; i++)
                if (strcmp(optarg, model_names[i]) == 0)
                    break;
            if (i == n) {
                snprintf(err, errlen,
                         "--model: unknown '%s' (pass, fork, accept, reuseport, iterative)",
                         optarg);
                return CONFIG_ERROR;
            }
            cfg->model = (enum model)i;
            break;
        }
        case OPT_DISPATCH:
            if (strcmp(optarg, "least") == 0)
                cfg->dispatch = DISPATCH_LEAST;
            else if (strcmp(optarg, "rr") == 0)
                cfg->dispatch = DISPATCH_RR;
            else {
                snprintf(err, errlen, "--dispatch: unknown '%s' (least, rr)", optarg);
                return CONFIG_ERROR;
            }
            break;
        case OPT_PROTOCOL:
            cfg->proto = proto_find(optarg);
            if (cfg->proto == NULL) {
                snprintf(err, errlen, "--protocol: unknown '%s' (%s)", optarg, proto_names());
                return CONFIG_ERROR;
            }
            break;
        case OPT_DRAIN:
            if (parse_seconds("drain-timeout", optarg, 86400, &cfg->drain_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_MAX_CONNS:
            if (parse_long("max-conns", optarg, 1, 10000000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->max_conns = (int)v;
            break;
        case OPT_MAX_CHILDREN:
            if (parse_long("max-children", optarg, 1, 100000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->max_children = (int)v;
            break;
        case OPT_MAX_BATCH:
            if (parse_long("max-batch", optarg, 1, 64, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->max_batch = (int)v;
            break;
        case OPT_MAX_QUEUED:
            if (parse_long("max-queued", optarg, 1, 1000000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->max_queued = (int)v;
            break;
        case OPT_PASS_DELAY:
            if (parse_long("pass-delay-us", optarg, 0, 1000000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->pass_delay_us = (int)v;
            break;
        case OPT_PASS_DELAY_CONNS:
            if (parse_long("pass-delay-conns", optarg, 0, 10000000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->pass_delay_conns = (int)v;
            break;
        case OPT_MAX_OUTPUT:
            if (parse_long("max-output-bytes", optarg, 1024, 1L << 30, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->max_output = (size_t)v;
            break;
        case OPT_UNP_MAX:
            if (parse_long("unp-max-bytes", optarg, 1, 1L << 40, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->unp_max_bytes = (uint64_t)v;
            break;
        case OPT_ACCEPT_PAUSE:
            if (parse_long("accept-pause-ms", optarg, 1, 60000, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->accept_pause_ms = (int)v;
            break;
        case OPT_LOG_FILE:
            if (strlen(optarg) >= sizeof(cfg->log_file)) {
                snprintf(err, errlen, "--log-file: path too long");
                return CONFIG_ERROR;
            }
            snprintf(cfg->log_file, sizeof(cfg->log_file), "%s", optarg);
            break;
        case OPT_LOG_LEVEL: {
            static const char *const levels[] = { "error", "warn", "info", "debug" };
            int i;
            for (i = 0; i < 4; i++)
                if (strcmp(optarg, levels[i]) == 0)
                    break;
            if (i == 4) {
                snprintf(err, errlen, "--log-level: unknown '%s' (error, warn, info, debug)",
                         optarg);
                return CONFIG_ERROR;
            }
            cfg->log_level = i;
            break;
        }
        case OPT_HTTP_ROOT:
            if (copy_path("root", optarg, cfg->http_root, sizeof(cfg->http_root), err,
                          errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_HTTP_ACCESS_LOG:
            if (copy_path("access-log", optarg, cfg->http_access_log,
                          sizeof(cfg->http_access_log), err, errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_HTTP_MAX_HEADER:
            if (parse_long("max-header-bytes", optarg, 256, 1L << 20, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->http_max_header = (size_t)v;
            break;
        case OPT_HTTP_MAX_URI:
            if (parse_long("max-uri-bytes", optarg, 16, 1L << 20, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->http_max_uri = (size_t)v;
            break;
        case OPT_HTTP_MAX_BODY:
            if (parse_long("max-body-bytes", optarg, 0, 1L << 40, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->http_max_body = (uint64_t)v;
            break;
        case OPT_HTTP_MAX_REQUESTS:
            if (parse_long("max-requests-per-conn", optarg, 0, 1L << 40, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->http_max_requests = (uint64_t)v;
            break;
        case OPT_HTTP_HEADER_TIMEOUT:
            if (parse_seconds("header-timeout", optarg, 86400, &cfg->http_header_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_HTTP_IDLE_TIMEOUT:
            if (parse_seconds("idle-timeout", optarg, 86400, &cfg->http_idle_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_HTTP_WRITE_TIMEOUT:
            if (parse_seconds("write-timeout", optarg, 86400, &cfg->http_write_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_HTTP_LINGER_TIMEOUT:
            if (parse_seconds("linger-timeout", optarg, 3600, &cfg->http_linger_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            break;
        case OPT_PROXY:
            cfg->proxy_protocol = true;
            break;
        case OPT_PROXY_TIMEOUT:
            if (parse_seconds("proxy-timeout", optarg, 3600, &cfg->proxy_timeout, err,
                              errlen) < 0)
                return CONFIG_ERROR;
            if (cfg->proxy_timeout < 0.001) {
                snprintf(err, errlen, "--proxy-timeout: must be at least 0.001 seconds");
                return CONFIG_ERROR;
            }
            break;
        case OPT_CONFIG:
            break; /* read before the command line, see config_parse */
        case OPT_CHECK_CONFIG:
            cfg->check_config = true;
            break;
        case OPT_PID_FILE:
            if (strlen(optarg) >= sizeof(cfg->pid_file)) {
                snprintf(err, errlen, "--pid-file: path too long");
                return CONFIG_ERROR;
            }
            snprintf(cfg->pid_file, sizeof(cfg->pid_file), "%s", optarg);
            break;
        case OPT_USER:
            if (strlen(optarg) >= sizeof(cfg->user)) {
                snprintf(err, errlen, "--user: name too long");
                return CONFIG_ERROR;
            }
            snprintf(cfg->user, sizeof(cfg->user), "%s", optarg);
            break;
        case OPT_ADMIN: {
            char why[256];
            cfg->admin_explicit = true;
            cfg->admin_enabled = strcmp(optarg, "off") != 0;
            if (cfg->admin_enabled &&
                addr_parse_listen(optarg, &cfg->admin, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "--admin: %s (or 'off')", why);
                return CONFIG_ERROR;
            }
            break;
        }
        case OPT_ADMIN_TIMEOUT:
            if (parse_long("admin-timeout", optarg, 1, 3600, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->admin_timeout = (int)v;
            break;
        case OPT_STATUS_CONNS:
            if (parse_long("status-conns-per-worker", optarg, 0, 65536, &v, err, errlen) < 0)
                return CONFIG_ERROR;
            cfg->status_conns = (int)v;
            break;
        case OPT_HELP:
            usage(stdout);
            return CONFIG_EXIT_OK;
        case OPT_VERSION:
            printf("handoffd %s\n", HANDOFF_VERSION);
            return CONFIG_EXIT_OK;
        case '?':
        default:
            if (optopt != 0 || argv[optind - 1] == NULL)
                snprintf(err, errlen, "option '%s' needs a value or is unknown; see --help",
                         argv[optind - 1]);
            else
                snprintf(err, errlen, "unknown option '%s'; see --help", argv[optind - 1]);
            return CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'; see --help", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* A config file, turned into an argument vector for config_apply so that
 * file and command line share every check. */
struct config_file {
    char *words[512];   /* "handoffd", "--key", "value", ... (owned) */
    int n;              /* words in use */
    char err[256];      /* why the handler refused a line */
};

static const struct option *config_option(const char *name)
{
    for (const struct option *o = long_opts; o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

static int config_file_word(struct config_file *f, const char *a, const char *b)
{
    if (f->n + 2 >= (int)(sizeof(f->words) / sizeof(f->words[0]))) {
        snprintf(f->err, sizeof(f->err), "too many settings");
        return 0;
    }
    f->words[f->n] = strdup(a);
    if (f->words[f->n] == NULL)
        return 0;
    f->n++;
    if (b != NULL) {
        f->words[f->n] = strdup(b);
        if (f->words[f->n] == NULL)
            return 0;
        f->n++;
    }
    return 1;
}

/* inih callback: one "key = value" line. Returns 0 to stop with an error. */
static int config_file_line(void *user, const char *section, const char *name,
                            const char *value)
{
    struct config_file *f = user;
    if (section[0] != '\0' && strcmp(section, "handoffd") != 0) {
        snprintf(f->err, sizeof(f->err), "unknown section [%s] (only [handoffd])", section);
        return 0;
    }
    const struct option *o = config_option(name);
    if (o == NULL || o->val == OPT_CONFIG || o->val == OPT_HELP || o->val == OPT_VERSION ||
        o->val == OPT_CHECK_CONFIG) {
        snprintf(f->err, sizeof(f->err), "unknown setting '%s'", name);
        return 0;
    }
    char flag[80];
    snprintf(flag, sizeof(flag), "--%s", name);
    if (o->has_arg == no_argument) {
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 ||
            strcmp(value, "1") == 0)
            return config_file_word(f, flag, NULL);
        if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
            strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
            return 1;
        snprintf(f->err, sizeof(f->err), "'%s' takes true or false, not '%s'", name, value);
        return 0;
    }
    return config_file_word(f, flag, value);
}

static enum config_rc config_load_file(struct config *cfg, const char *path, char *err,
                                       size_t errlen)
{
    struct config_file f;
    enum config_rc rc = CONFIG_ERROR;
    memset(&f, 0, sizeof(f));
    if (config_file_word(&f, "handoffd", NULL) == 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int line = ini_parse(path, config_file_line, &f);
    if (line < 0) {
        snprintf(err, errlen, "--config %s: %s", path, line == -1 ? strerror(errno) : "out of memory");
        goto out;
    }
    if (line > 0) {
        snprintf(err, errlen, "%s:%d: %s", path, line, f.err[0] ? f.err : "syntax error");
        goto out;
    }
    char why[512];
    rc = config_apply(cfg, f.n, f.words, why, sizeof(why));
    if (rc == CONFIG_ERROR)
        snprintf(err, errlen, "%s: %s", path, why);
    else if (rc == CONFIG_EXIT_OK)
        rc = CONFIG_ERROR; /* help/version are refused above; defensive */
out:
    for (int i = 0; i < f.n; i++)
        free(f.words[i]);
    return rc;
}

/* The --config path in ARGV, if any (read before the rest of ARGV so the
 * command line overrides the file). */
static const char *config_path(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

/* An fd named by environment variable NAME (binary upgrade), or -1. The
 * variable is removed so that nothing started later inherits it. */
static int config_env_fd(const char *name, int *out, char *err, size_t errlen)
{
    *out = -1;
    const char *v = getenv(name);
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    long fd = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || fd < 3 || fd > 1 << 20 ||
        fcntl((int)fd, F_GETFD) < 0) {
        snprintf(err, errlen, "$%s: '%s' is not an open file descriptor", name, v);
        return -1;
    }
    *out = (int)fd;
    unsetenv(name);
    return 0;
}

enum config_rc config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(cfg);
    cfg->argc = argc;
    cfg->argv = argv;
    if (config_env_fd("HANDOFF_LISTEN_FD", &cfg->inherit_listen_fd, err, errlen) < 0 ||
        config_env_fd("HANDOFF_ADMIN_FD", &cfg->inherit_admin_fd, err, errlen) < 0 ||
        config_env_fd("HANDOFF_READY_FD", &cfg->ready_fd, err, errlen) < 0)
        return CONFIG_ERROR;
    const char *path = config_path(argc, argv);
    if (path != NULL) {
        if (strlen(path) >= sizeof(cfg->config_file)) {
            snprintf(err, errlen, "--config: path too long");
            return CONFIG_ERROR;
        }
        snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", path);
        enum config_rc rc = config_load_file(cfg, path, err, errlen);
        if (rc != CONFIG_OK)
            return rc;
    }
    enum config_rc rc = config_apply(cfg, argc, argv, err, errlen);
    if (rc != CONFIG_OK)
        return rc;
    char why[256];
    if (addr_parse_listen(cfg->listen_text, &cfg->listen, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--listen: %s", why);
        return CONFIG_ERROR;
    }
    if (http_check_paths(cfg, err, errlen) < 0)
        return CONFIG_ERROR;
    if (cfg->user[0] != '\0') {
        struct passwd *pw = getpwnam(cfg->user);
        if (pw == NULL) {
            snprintf(err, errlen, "--user: no such user '%s'", cfg->user);
            return CONFIG_ERROR;
        }
        cfg->uid = pw->pw_uid;
        cfg->gid = pw->pw_gid;
    }
    return CONFIG_OK;
}

enum config_rc config_reload(const struct config *cur, struct config *next, char *err,
                             size_t errlen)
{
    enum config_rc rc = config_parse(next, cur->argc, cur->argv, err, errlen);
    if (rc != CONFIG_OK)
        return CONFIG_ERROR;
    /* What the running master has already bound or built cannot change. */
    if (strcmp(next->listen_text, cur->listen_text) != 0)
        snprintf(err, errlen, "--listen changed (%s -> %s): that needs a restart",
                 cur->listen_text, next->listen_text);
    else if (next->model != cur->model)
        snprintf(err, errlen, "--model changed: that needs a restart");
    else if (next->backlog != cur->backlog)
        snprintf(err, errlen, "--backlog changed: that needs a restart");
    else if (next->model == MODEL_REUSEPORT && next->workers != cur->workers)
        snprintf(err, errlen, "--workers changed under --model reuseport (one socket per "
                              "worker): that needs a restart");
    else if (strcmp(next->user, cur->user) != 0)
        snprintf(err, errlen, "--user changed: that needs a restart");
    else
        return CONFIG_OK;
    return CONFIG_ERROR;
}
