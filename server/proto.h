/* proto: the protocol plug-in interface. A protocol is a struct proto with a
 * name and callbacks; the connection layer (conn.c) owns the socket and its
 * bufferevent and calls these. Adding a protocol is one file under server/
 * and one line in proto.c's table. */
#ifndef HANDOFF_PROTO_H
#define HANDOFF_PROTO_H

#include <stdbool.h>
#include <stddef.h>

struct conn;

/* What a callback asks the connection layer to do next. */
enum proto_rc {
    PROTO_OK = 0,    /* keep going */
    PROTO_CLOSE = 1, /* stop reading, flush what is queued, then close */
    PROTO_ABORT = 2, /* close now, dropping unsent output */
};

struct proto {
    const char *name;
    size_t state_size; /* per-connection state, zeroed, reached by conn_state() */
    /* Connection arrived. It is parked (no buffers): a protocol that writes
     * here calls conn_unpark first. Optional. */
    enum proto_rc (*open)(struct conn *c);
    /* Input is waiting in conn_input(c). Required. */
    enum proto_rc (*read)(struct conn *c);
    /* Output drained below the low watermark; more may be produced. Optional. */
    enum proto_rc (*write)(struct conn *c);
    /* The worker is draining: return PROTO_CLOSE when the connection is at a
     * boundary where closing loses nothing. NULL means "wait for the peer". */
    enum proto_rc (*drain)(struct conn *c);
    /* A timer set with conn_timer_set fired. Optional. */
    enum proto_rc (*timeout)(struct conn *c);
    /* The connection is going away; release protocol resources. Optional. */
    void (*close)(struct conn *c);
    /* The connection is idle with nothing buffered: return true when the
     * protocol is at a boundary (nothing owed, no request half-read), having
     * released its per-request memory, so the connection may park without
     * buffers. NULL: never parks once active. */
    bool (*park)(struct conn *c);
    /* A parked connection got its buffers back (before the read or timeout
     * callback that needs them): re-apply per-buffer settings. Returns 0, or
     * -1 to close. Optional. */
    int (*unpark)(struct conn *c);
};

/* A park hook for protocols with no state between reads (echo, discard,
 * whoami): always at a boundary. */
bool proto_park_always(struct conn *c);

/* Look a protocol up by name; NULL when unknown. */
const struct proto *proto_find(const char *name);
/* Comma-separated list of protocol names, for --help and errors. */
const char *proto_names(void);

extern const struct proto proto_echo;
extern const struct proto proto_discard;
extern const struct proto proto_whoami;
extern const struct proto proto_unp;
extern const struct proto proto_http;

#endif
