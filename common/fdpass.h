/* fdpass: sending and receiving file descriptors with SCM_RIGHTS over a
 * Unix-domain socket, one datagram per call. The receive side validates the
 * ancillary data completely and, on any failure, closes every fd the kernel
 * installed, so a malformed message can never leak a descriptor. */
#ifndef HANDOFF_FDPASS_H
#define HANDOFF_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Most fds fdpass_recv accepts in one message; a sender sending more gets
 * its message rejected (MSG_CTRUNC), well under the kernel's SCM_MAX_FD. */
#define FDPASS_MAX_FDS 64

/* Send LEN bytes of BUF with NFDS descriptors attached (NFDS may be 0).
 * Returns bytes sent or -1 with errno (EAGAIN when the peer's queue is full).
 * Ownership: on success the kernel holds a reference to each fd in flight;
 * the caller still owns its own copies and normally closes them. */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* Receive one message into BUF (capacity CAP) and up to MAXFDS descriptors
 * into FDS, setting *NFDS. Returns the byte count, 0 on end of stream (the
 * peer hung up), or -1 with errno: EAGAIN/EINTR as usual, EPROTO for a
 * malformed message (truncated data, truncated or foreign control data, too
 * many fds, an empty datagram from a live peer), in
 * which case every received fd has already been closed, *NFDS is 0 and
 * *GOT (if not NULL) holds the data bytes that did arrive, so the caller
 * can account for what the message announced. Received fds are
 * close-on-exec and owned by the caller. */
ssize_t fdpass_recv(int sock, void *buf, size_t cap, int *fds, size_t maxfds, size_t *nfds,
                    size_t *got);

#endif
