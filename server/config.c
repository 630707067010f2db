/* config: command-line parsing with getopt_long. Each numeric option has a
 * named range; a value outside it is an error, never silently clamped. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
"  --protocol NAME          %s (default echo)\n"
"  --drain-timeout SECONDS  time workers get to finish on SIGTERM (default 10)\n"
"  --max-conns N            live connections per worker (default: fd limit - %d)\n"
"  --max-children N         live children for model fork (default 1024)\n"
"  --max-batch N            fds per hand-off message, 1-%d (default 32)\n"
"  --max-queued N           accepted fds waiting for one worker (default 1024)\n"
"  --max-output-bytes N     per-connection send buffer before reading pauses (default 262144)\n"
"  --unp-max-bytes N        largest byte count a unp client may ask for (default 1073741824)\n"
"  --accept-pause-ms N      listener pause after EMFILE/ENFILE (default 100)\n"
"  --log-file FILE          log here instead of stderr\n"
"  --log-level LEVEL        error, warn, info, debug (default info)\n"
"  --admin ADDR|off         status/metrics HTTP listener, same notation as --listen\n"
"                           (default " DEFAULT_ADMIN "; port 0 picks one)\n"
"  --admin-timeout SECONDS  admin request read/write timeout, 1-3600 (default 5)\n"
"  --status-conns-per-worker N  live connections listed per worker on /status,\n"
"                           0-65536 (default 1024; 56 bytes of shared memory each)\n"
"  --help, --version\n",
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

static int default_max_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1024;
    long n = (long)rl.rlim_cur - FD_RESERVE;
    return n < 16 ? 16 : (int)(n > 10000000 ? 10000000 : n);
}

enum {
    OPT_LISTEN = 256, OPT_BACKLOG, OPT_WORKERS, OPT_MODEL, OPT_DISPATCH, OPT_PROTOCOL,
    OPT_DRAIN, OPT_MAX_CONNS, OPT_MAX_CHILDREN, OPT_MAX_BATCH, OPT_MAX_QUEUED,
    OPT_MAX_OUTPUT, OPT_UNP_MAX, OPT_ACCEPT_PAUSE, OPT_LOG_FILE, OPT_LOG_LEVEL,
    OPT_HELP, OPT_VERSION,
    OPT_ADMIN, OPT_ADMIN_TIMEOUT, OPT_STATUS_CONNS,
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
    { "max-output-bytes", required_argument, NULL, OPT_MAX_OUTPUT },
    { "unp-max-bytes", required_argument, NULL, OPT_UNP_MAX },
    { "accept-pause-ms", required_argument, NULL, OPT_ACCEPT_PAUSE },
    { "log-file", required_argument, NULL, OPT_LOG_FILE },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
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
    cfg->proto = proto_find("echo");
    cfg->drain_timeout = 10;
    cfg->max_batch = 32;
    cfg->max_queued = 1024;
    cfg->max_conns = default_max_conns();
    cfg->max_children = 1024;
    cfg->max_output = 256 * 1024;
    cfg->unp_max_bytes = 1ull << 30;
    cfg->accept_pause_ms = 100;
    cfg->log_level = LOG_INFO;
    cfg->admin_enabled = addr_parse_listen(DEFAULT_ADMIN, &cfg->admin, NULL, 0) == 0;
    cfg->admin_timeout = 5;
    cfg->status_conns = 1024;
}

enum config_rc config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    long v;
    config_defaults(cfg);
    optind = 1;
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
    char why[256];
    if (addr_parse_listen(cfg->listen_text, &cfg->listen, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--listen: %s", why);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
