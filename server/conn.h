/* conn: one client connection inside a worker: the socket, the protocol
 * state, and the glue that turns socket readiness and bufferevent callbacks
 * into proto callbacks with backpressure applied uniformly.
 *
 * A connection is either ACTIVE (a bufferevent with its two evbuffers holds
 * the I/O in flight) or PARKED (no bufferevent, no buffers, no protocol
 * scratch: struct conn with its embedded read event and the protocol's small
 * persistent state, a few hundred bytes). Connections start parked; the
 * first bytes make them active, and the worker's sweep parks those that
 * stayed idle for CONN_PARK_MS at a protocol boundary. */
#ifndef HANDOFF_CONN_H
#define HANDOFF_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "proto.h"

struct worker;
struct evbuffer;
struct proxy_pair;

/* An active connection with no I/O for one sweep period (between this and
 * twice this) is parked. The worker's sweep timer runs at this period. */
#define CONN_PARK_MS 1000

struct conn {
    struct conn *prev, *next;  /* the worker's list: active ones first */
    struct worker *w;          /* the worker serving this connection */
    struct bufferevent *bev;   /* I/O buffers while active, NULL while parked;
                                  never owns the socket (no CLOSE_ON_FREE) */
    struct event *timer;       /* protocol timer while active, created on first
                                  use; NULL while parked (the deadline then
                                  rides on rev's timeout) */
    struct event rev;          /* socket readable (conn.c reads, not the bev);
                                  embedded: parked or active, no allocation */
    uint64_t accepted_ns;      /* master's accept time (CLOCK_MONOTONIC) */
    struct proxy_pair *proxied;/* {DST, SRC} from a PROXY header, owned here;
                                  NULL: the socket's own pair (no allocation) */
    int fd;                    /* the socket: owned here, closed by conn_free */
    int sb_row;                /* scoreboard row listing it, -1 if unlisted */
    uint32_t io_gen;           /* worker's sweep generation at the last I/O */
    uint32_t start_ms;         /* timer asked for before rev was first added
                                  (parked, not started); 0: none */
    bool closing;              /* flushing output, then closing */
    bool read_paused;          /* output or unconsumed input at max_output */
    bool reading;              /* rev is added */
    bool writing;              /* write event on: output waits for the socket */
    bool started;              /* first read done (conn_start) */
    bool proxy_wait;           /* --proxy-protocol: header not in yet, so the
                                  protocol has not been opened */
    _Alignas(16) unsigned char state[]; /* proto->state_size bytes */
};

/* Take ownership of FD (a connected, non-blocking socket) and start the
 * protocol. Returns the connection, or NULL after closing FD. */
struct conn *conn_open(struct worker *w, int fd, uint64_t accepted_ns);
/* Close now: the protocol's close hook runs, the socket is closed. */
void conn_free(struct conn *c);
/* Ask the protocol whether it can close at a boundary (worker draining). */
void conn_drain(struct conn *c);

/* The connection's buffers; NULL while parked. Every proto callback but
 * open runs on an active connection. */
struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
/* Make a parked connection active (a no-op when it is): for a protocol's
 * open callback that writes. Returns 0, or -1 when out of memory (the
 * callback should then return PROTO_ABORT). */
int conn_unpark(struct conn *c);
/* The worker's sweep: park C if it is active, had no I/O since the sweep
 * generation GEN began, and is at a boundary (nothing buffered, nothing
 * owed, the protocol's park hook agrees); a draining worker closes it
 * instead. Returns false when C is gone. */
bool conn_park_idle(struct conn *c, uint32_t gen);
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
