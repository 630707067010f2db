/* opts: handoff-bench's command line. Every limit is an option with a named
 * range; a value outside it, a conflicting combination or an unknown word is
 * an error (main exits 2), never silently adjusted. */
#ifndef HANDOFF_BENCH_OPTS_H
#define HANDOFF_BENCH_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"

enum opts_mode {
    OPTS_CHURN = 0,     /* connect, one request, close, repeat */
    OPTS_KEEPALIVE = 1, /* long-lived connections, requests back to back */
    OPTS_UNP = 2,       /* UNP ch.30 client: P processes x L connections */
    OPTS_HOLD = 3,      /* open N idle connections and keep them */
};

enum opts_proto {
    OPTS_ECHO = 0, /* send a payload, read it back, compare */
    OPTS_HTTP = 1, /* GET, parse status line, headers and body */
    OPTS_UNPREQ = 2, /* send "B\n", read exactly B bytes */
};

enum opts_rc { OPTS_OK = 0, OPTS_EXIT_OK = 1, OPTS_ERROR = 2 };

/* "Unlimited" for the count limits. */
#define OPTS_UNLIMITED UINT64_MAX

#define OPTS_PATH_MAX 1024
#define OPTS_HOST_MAX 256

struct opts {
    enum opts_mode mode;
    enum opts_proto proto;
    struct sockaddr_storage target;   /* where to connect */
    socklen_t target_len;             /* length of target in use */
    char target_text[ADDR_STRLEN];    /* target as "1.2.3.4:80" / "[::1]:80" */
    int processes;                    /* client processes (hold: at least) */
    int concurrency;                  /* connections at once, all processes;
                                         hold: connects in flight */
    uint64_t requests;                /* request limit, all processes */
    uint64_t connections;             /* connection limit, all processes */
    uint64_t loops;                   /* connections per process (0: unset) */
    double duration;                  /* seconds; 0 = no time limit */
    double timeout;                   /* seconds: connect and idle I/O */
    uint64_t conn_requests;           /* requests per connection, 0 = no limit */
    size_t size;                      /* echo payload bytes */
    uint64_t bytes;                   /* unp: bytes asked for per request */
    char path[OPTS_PATH_MAX];         /* http: request path */
    char host[OPTS_HOST_MAX];         /* http: Host header */
    int sources;                      /* 127.x source addresses; 0: kernel's */
    bool json;                        /* JSON on stdout instead of the line */
    bool quiet;                       /* no progress lines */
};

/* Fill O from ARGV. OPTS_EXIT_OK after --help/--version (already
 * printed); OPTS_ERROR with a message in ERR. */
enum opts_rc opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errlen);

/* Check O against FD_CAP, the descriptors one process may use for sockets:
 * hold mode adds processes until each one's share fits (returning how many
 * were added through *added); other modes fail when one process's
 * concurrency does not fit. Returns 0, or -1 with a message in ERR. */
int opts_fit_fds(struct opts *o, uint64_t fd_cap, int *added, char *err, size_t errlen);

/* Part I of TOTAL split over PARTS as evenly as possible (the first
 * TOTAL % PARTS parts get one more). OPTS_UNLIMITED stays unlimited. */
uint64_t opts_split(uint64_t total, int parts, int i);

/* The i-th source address of --sources: 127.0.0.1, 127.0.0.2, ...,
 * 127.0.0.254, 127.0.1.1, ... (host byte order). */
uint32_t opts_source_addr(int i);

const char *opts_mode_name(enum opts_mode m);
const char *opts_proto_name(enum opts_proto p);

#endif
