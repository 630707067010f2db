/* conn: one client connection inside a worker: the bufferevent that owns the
 * socket, the protocol state, and the glue that turns bufferevent callbacks
 * into proto callbacks with backpressure applied uniformly. */
#ifndef HANDOFF_CONN_H
#define HANDOFF_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct worker;
struct evbuffer;
struct proxy_pair;

struct conn {
    struct conn *prev, *next;  /* the worker's list of live connections */
    struct worker *w;          /* the worker serving this connection */
    struct bufferevent *bev;   /* owns the socket (BEV_OPT_CLOSE_ON_FREE) */
    struct event *timer;       /* protocol timer, created on first use */
    struct event *rev;         /* socket readable (conn.c reads, not the bev) */
    uint64_t accepted_ns;      /* master's accept time (CLOCK_MONOTONIC) */
    struct proxy_pair *proxied;/* {DST, SRC} from a PROXY header, owned here;
                                  NULL: the socket's own pair (no allocation) */
    int fd;                    /* the socket, for addresses; closed by bev */
    bool closing;              /* flushing output, then closing */
    bool read_paused;          /* output or unconsumed input at max_output */
    bool reading;              /* rev is added */
    bool writing;              /* write event on: output waits for the socket */
    bool started;              /* first read done (conn_start_cb) */
    bool proxy_wait;           /* --proxy-protocol: header not in yet, so the
                                  protocol has not been opened */
    int sb_row;                /* scoreboard row listing it, -1 if unlisted */
    _Alignas(16) unsigned char state[]; /* proto->state_size bytes */
};

/* Take ownership of FD (a connected, non-blocking socket) and start the
 * protocol. Returns the connection, or NULL after closing FD. */
struct conn *conn_open(struct worker *w, int fd, uint64_t accepted_ns);
/* Close now: the protocol's close hook runs, the socket is closed. */
void conn_free(struct conn *c);
/* Ask the protocol whether it can close at a boundary (worker draining). */
void conn_drain(struct conn *c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
static inline void *conn_state(struct conn *c) { return c->state; }
/* Worker slot and pid for whoami lines. */
int conn_worker_slot(const struct conn *c);
/* "{LOCAL, PEER}": the PROXY header's {DST, SRC} when there was one, else
 * the socket's. What every report of a client's address should print.
 * Returns the length or -1. */
int conn_format_pair(struct conn *c, char *buf, size_t len);
/* "{LOCAL, PEER} worker=K pid=PID" without a newline; returns length or -1. */
int conn_whoami(struct conn *c, char *buf, size_t len);
/* Arm the protocol timer MS milliseconds from now (0 disarms). */
int conn_timer_set(struct conn *c, unsigned ms);
/* Write queued output now (the connection layer also does this after every
 * protocol callback). Returns 0, or -1 on a socket error: the caller should
 * then return PROTO_ABORT. */
int conn_write_now(struct conn *c);
/* Whether output is above the high watermark, so producers should wait
 * for the proto write callback. */
bool conn_output_full(struct conn *c);

#endif
