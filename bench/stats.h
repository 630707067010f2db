/* stats: what one client process counts (requests, connections, errors by
 * kind, latency histograms), how counts from several processes are merged,
 * and the framed message that carries them from a child to the parent over
 * a pipe. The receiver validates every message (magic, type, length, sane
 * counters and histograms) before merging it. */
#ifndef HANDOFF_BENCH_STATS_H
#define HANDOFF_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

/* Error kinds; each failed attempt counts exactly once. */
enum stats_err {
    STATS_ERR_CONNECT = 0,      /* connect refused or failed */
    STATS_ERR_CONNECT_TIMEOUT,  /* no answer to the SYN within --timeout */
    STATS_ERR_ADDR,             /* no source port/address (EADDRNOTAVAIL, EADDRINUSE) */
    STATS_ERR_SOCKET,           /* socket()/bind() failed (EMFILE, ENOBUFS, ...) */
    STATS_ERR_TIMEOUT,          /* an answer stalled for --timeout */
    STATS_ERR_RESET,            /* ECONNRESET, EPIPE and other I/O errors */
    STATS_ERR_CLOSED,           /* peer closed before any byte of the answer */
    STATS_ERR_SHORT_READ,       /* peer closed in the middle of the answer */
    STATS_ERR_BAD_RESPONSE,     /* wrong bytes, unparsable or excess answer */
    STATS_ERR_HTTP_STATUS,      /* complete HTTP answer with a non-2xx status */
    STATS_ERR_COUNT
};

/* Why a process stopped; when merged, the highest value wins. */
enum stats_stop {
    STATS_STOP_COUNT = 0,  /* every count limit reached */
    STATS_STOP_TIME = 1,   /* --duration elapsed */
    STATS_STOP_SIGNAL = 2, /* SIGINT/SIGTERM */
};

struct stats {
    uint64_t elapsed_ns;     /* time from start to stop (max when merged) */
    uint64_t establish_ns;   /* hold: time until every connect finished (max) */
    uint64_t conn_attempts;  /* connects started */
    uint64_t connected;      /* connects that succeeded */
    uint64_t requests;       /* requests started */
    uint64_t ok;             /* answers complete and valid (http: 2xx) */
    uint64_t cancelled;      /* requests or connects cut off by the stop */
    uint64_t server_closes;  /* http: server asked to close after an answer */
    uint64_t bytes_out;      /* request bytes queued */
    uint64_t bytes_in;       /* answer bytes consumed */
    uint64_t open;           /* connections open now (hold: at the end) */
    uint64_t held_closed;    /* hold: established, then closed by the server */
    uint64_t status[6];      /* http: answers by status class, [1]..[5] */
    uint64_t err[STATS_ERR_COUNT]; /* failed attempts by kind */
    uint32_t stopped;        /* enum stats_stop */
    uint32_t pad;            /* keeps the layout free of holes */
};

/* Short names for JSON keys and the summary line. */
const char *stats_err_name(enum stats_err e);
const char *stats_stop_name(enum stats_stop s);
uint64_t stats_errors(const struct stats *s);
/* Add SRC into DST (gauges add too; elapsed, establish and stop take max). */
void stats_merge(struct stats *dst, const struct stats *src);

enum stats_msg_type {
    STATS_MSG_PROGRESS = 1, /* counters so far, a few times a second */
    STATS_MSG_FINAL = 2,    /* last message: counters and histograms */
};

#define STATS_MAGIC 0x48424e43u /* "HBNC" */

struct stats_hdr {
    uint32_t magic;  /* STATS_MAGIC */
    uint16_t type;   /* enum stats_msg_type */
    uint16_t pad;    /* 0 */
    uint32_t len;    /* bytes after the header: exact per type */
    uint32_t pad2;   /* 0 */
};

struct stats_msg {
    struct stats_hdr hdr;
    struct stats st;        /* both types */
    struct hist latency;    /* FINAL: per request, ns */
    struct hist connect;    /* FINAL: connect() to established, ns */
};

/* Write one message on FD (blocking, whole). PROGRESS sends only the
 * counters. Returns 0 or -1 with errno. */
int stats_send(int fd, enum stats_msg_type type, const struct stats *st,
               const struct hist *latency, const struct hist *connect);

/* Bytes of a complete message starting with HDR, or 0 when HDR is not a
 * valid header (bad magic, type or length). */
size_t stats_msg_size(const struct stats_hdr *hdr);
/* Validate a complete message of LEN bytes. Returns NULL when valid, else
 * what is wrong. */
const char *stats_msg_check(const struct stats_msg *m, size_t len);

#endif
