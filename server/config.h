/* config: every option handoffd takes, its default and its limits, parsed
 * from the command line. One struct config is filled in by the master
 * before anything forks and is read-only afterwards. */
#ifndef HANDOFF_CONFIG_H
#define HANDOFF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

enum dispatch_mode { DISPATCH_LEAST = 0, DISPATCH_RR = 1 };

enum model {
    MODEL_PASS = 0,      /* master accepts, hands fds to pre-forked workers */
    MODEL_FORK = 1,      /* one child per connection (UNP §2.10) */
    MODEL_ACCEPT = 2,    /* pre-forked workers accept on a shared socket */
    MODEL_REUSEPORT = 3, /* one SO_REUSEPORT listener per worker */
    MODEL_ITERATIVE = 4, /* one connection at a time */
};

struct config {
    char listen_text[300];        /* --listen as given */
    struct addr_listen listen;    /* --listen parsed */
    int backlog;                  /* --backlog: listen(2) queue length */
    int workers;                  /* --workers: pre-forked worker processes */
    enum dispatch_mode dispatch;  /* --dispatch least|rr */
    enum model model;             /* --model */
    const struct proto *proto;    /* --protocol */
    double drain_timeout;         /* --drain-timeout: seconds to finish on stop */
    int max_batch;                /* --max-batch: fds per control message */
    int pass_delay_us;            /* --pass-delay-us: least gap between messages to a worker */
    int pass_delay_conns;         /* --pass-delay-conns: ... for workers this busy */
    int max_queued;               /* --max-queued: accepted fds waiting per worker */
    int max_conns;                /* --max-conns: live connections per worker */
    int max_children;             /* --max-children: live children (model fork) */
    size_t max_output;            /* --max-output-bytes: per-connection send buffer */
    uint64_t unp_max_bytes;       /* --unp-max-bytes: largest unp request */
    int accept_pause_ms;          /* --accept-pause-ms: pause after EMFILE/ENFILE */
    char log_file[4096];          /* --log-file; empty = stderr */
    /* protocol http (0 seconds disables a timeout) */
    size_t http_max_header;       /* --max-header-bytes: request line + fields, else 431 */
    size_t http_max_uri;          /* --max-uri-bytes: request target, else 414 */
    uint64_t http_max_body;       /* --max-body-bytes: discarded request body, else 413 */
    double http_header_timeout;   /* --header-timeout: first byte to end of header, else 408 */
    double http_idle_timeout;     /* --idle-timeout: between requests, and body reads */
    double http_write_timeout;    /* --write-timeout: output queued but none sent */
    double http_linger_timeout;   /* --linger-timeout: input drained after an error close */
    uint64_t http_max_requests;   /* --max-requests-per-conn: 0 = no limit */
    char http_root[4096];         /* --root: static files from here; empty = fixed body */
    char http_access_log[4096];   /* --access-log: common log format; empty = off */
    int log_level;                /* --log-level */
    bool proxy_protocol;          /* --proxy-protocol: expect a PROXY v1/v2 header */
    double proxy_timeout;         /* --proxy-timeout: seconds to receive that header */
    char config_file[4096];       /* --config; empty = none */
    bool check_config;            /* --check-config: validate and exit */
    char pid_file[4096];          /* --pid-file; empty = none */
    char user[64];                /* --user; empty = stay as started */
    uid_t uid;                    /* --user's uid and primary gid */
    gid_t gid;
    int inherit_listen_fd;        /* binary upgrade: listening socket from the old
                                     master ($HANDOFF_LISTEN_FD), else -1 */
    int inherit_admin_fd;         /* ... its admin socket ($HANDOFF_ADMIN_FD), else -1 */
    int ready_fd;                 /* ... pipe to tell it we are up ($HANDOFF_READY_FD) */
    int argc;                     /* the command line, kept for reloads */
    char **argv;
    /* --admin: the status/metrics HTTP listener (server/admin.c) */
    bool admin_enabled;           /* --admin is not "off" */
    bool admin_explicit;          /* --admin given: failing to bind it is fatal */
    struct addr_listen admin;     /* --admin parsed (default 127.0.0.1:9090) */
    int admin_timeout;            /* --admin-timeout: seconds per admin request */
    int status_conns;             /* --status-conns-per-worker: scoreboard rows */
};

enum config_rc { CONFIG_OK = 0, CONFIG_EXIT_OK = 1, CONFIG_ERROR = 2 };

/* Fill CFG from defaults and ARGV. Returns CONFIG_OK, CONFIG_EXIT_OK after
 * --help/--version (output already printed) or CONFIG_ERROR with a message
 * in err. Never exits. */
enum config_rc config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Parse the configuration again for SIGHUP (the same command line, the
 * config file re-read) into NEXT, and refuse what a running server cannot
 * change (listen address, model, backlog, user). Returns CONFIG_OK or
 * CONFIG_ERROR with the reason in err; CUR is untouched. */
enum config_rc config_reload(const struct config *cur, struct config *next, char *err,
                             size_t errlen);

/* Connections one process's RLIMIT_NOFILE leaves room for (the limit less
 * the fds reserved for the process itself), or -1 when unlimited: the
 * default --max-conns. */
long config_conn_capacity(void);

const char *config_model_name(enum model m);
const char *config_dispatch_name(enum dispatch_mode d);

#endif
