/* ctl: the typed control message exchanged between the master and a worker
 * over their SOCK_SEQPACKET socketpair (one message per datagram).
 *
 *   master -> worker  CTL_PASS    n accepted connections, fds attached
 *   master -> worker  CTL_DRAIN   stop taking connections, finish, exit
 *   worker -> master  CTL_READY   worker finished start-up
 *   worker -> master  CTL_CLOSED  `count` connections ended since last report,
 *                                 `aux` of them refused on arrival
 *
 * Only CTL_PASS carries fds, and then exactly `nfds` of them. */
#ifndef HANDOFF_CTL_H
#define HANDOFF_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MAGIC 0x48444f46u /* "HDOF": catches a peer speaking something else */
#define CTL_MAX_FDS 64        /* fds per CTL_PASS; the kernel allows 253 */

enum ctl_type {
    CTL_PASS = 1,
    CTL_DRAIN = 2,
    CTL_READY = 3,
    CTL_CLOSED = 4,
};

struct ctl_hdr {
    uint32_t magic; /* CTL_MAGIC */
    uint16_t type;  /* enum ctl_type */
    uint16_t nfds;  /* CTL_PASS: fds attached, 1..CTL_MAX_FDS; else 0 */
    uint32_t count; /* CTL_CLOSED: connections closed; else 0 */
    uint32_t aux;   /* CTL_CLOSED: of those, refused on arrival; else 0 */
};

struct ctl_msg {
    struct ctl_hdr hdr;
    /* CTL_PASS: per fd, the master's CLOCK_MONOTONIC accept time in ns, so
     * the worker can measure hand-off latency. Only nfds entries are sent. */
    uint64_t stamp[CTL_MAX_FDS];
};

/* Send CTL_PASS with N fds (1..CTL_MAX_FDS) and their accept stamps.
 * Returns 0 or -1 with errno (EAGAIN when the worker's queue is full).
 * Ownership: on success the fds are in flight and the caller closes its
 * copies; on failure nothing was sent and the caller still owns them. */
int ctl_send_pass(int sock, const int *fds, const uint64_t *stamps, size_t n);
/* Send a message without fds (DRAIN, READY, CLOSED). */
int ctl_send(int sock, enum ctl_type type, uint32_t count, uint32_t aux);

/* Receive and validate one message. Returns 1 with *m filled and, for
 * CTL_PASS, the fds in FDS (*nfds set, owned by the caller); 0 at end of
 * stream; -1 with errno EAGAIN/EINTR, or EPROTO for a malformed message,
 * with *why naming the defect and every received fd already closed. On
 * EPROTO, *lost is the number of connections a well-formed CTL_PASS header
 * announced but that could not be taken (the kernel drops fds a receiver
 * out of descriptors cannot install, flagging MSG_CTRUNC); else 0. */
int ctl_recv(int sock, struct ctl_msg *m, int *fds, size_t *nfds, const char **why,
             uint32_t *lost);

/* Validate a received message body and fd count; pure, for tests and the
 * fuzzer. Returns NULL when valid or the reason it is not. */
const char *ctl_check(const void *buf, size_t len, size_t nfds);

uint64_t ctl_now_ns(void);

#endif
