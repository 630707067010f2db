/* net: socket helpers in the anet style: each returns an fd or -1 and fills
 * an error buffer naming the failed call; the caller decides what to do. */
#ifndef HANDOFF_NET_H
#define HANDOFF_NET_H

#include <stddef.h>

#include "addr.h"

#define NET_REUSEPORT 0x1 /* set SO_REUSEPORT before bind */

/* A listening TCP socket, non-blocking and close-on-exec, with SO_REUSEADDR
 * and, for the [::] wildcard, IPV6_V6ONLY off so IPv4 clients reach it.
 * Falls back to 0.0.0.0 when the kernel has no IPv6. The caller owns the fd. */
int net_listen(const struct addr_listen *a, int backlog, int flags, char *err, size_t errlen);

/* Take over a listening socket inherited across exec (binary upgrade):
 * checks it is a listening TCP socket and makes it non-blocking and
 * close-on-exec. Returns FD, or -1 with the reason in err. */
int net_adopt_listener(int fd, char *err, size_t errlen);

/* Set or clear O_NONBLOCK / FD_CLOEXEC. */
int net_set_nonblock(int fd, int on);
int net_set_cloexec(int fd, int on);

#endif
