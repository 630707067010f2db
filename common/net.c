/* net: see net.h. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int net_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl);
}

int net_set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -1;
    fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, fl);
}

int net_adopt_listener(int fd, char *err, size_t errlen)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        snprintf(err, errlen, "inherited fd %d: %s", fd, strerror(errno));
        return -1;
    }
    len = sizeof(listening);
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening) {
        snprintf(err, errlen, "inherited fd %d is not a listening TCP socket", fd);
        return -1;
    }
    if (net_set_nonblock(fd, 1) < 0 || net_set_cloexec(fd, 1) < 0) {
        snprintf(err, errlen, "inherited fd %d: fcntl: %s", fd, strerror(errno));
        return -1;
    }
    return fd;
}

int net_listen(const struct addr_listen *a, int backlog, int flags, char *err, size_t errlen)
{
    struct addr_listen any4;
    const struct addr_listen *use = a;
    int one = 1, zero = 0;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && errno == EAFNOSUPPORT && a->dual_stack) {
        /* No IPv6 in this kernel: the wildcard still means "every address". */
        struct sockaddr_in *s4 = (struct sockaddr_in *)&any4.ss;
        memset(&any4, 0, sizeof(any4));
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_port = ((const struct sockaddr_in6 *)&a->ss)->sin6_port;
        any4.len = sizeof(*s4);
        use = &any4;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "setsockopt(SO_REUSEADDR): %s", strerror(errno));
        goto fail;
    }
    if ((flags & NET_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "setsockopt(SO_REUSEPORT): %s", strerror(errno));
        goto fail;
    }
    if (use->ss.ss_family == AF_INET6 && use->dual_stack &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) {
        snprintf(err, errlen, "setsockopt(IPV6_V6ONLY): %s", strerror(errno));
        goto fail;
    }
    /* Accepted sockets inherit TCP_NODELAY from the listener: small answers
     * (echo, keep-alive responses) leave at once instead of waiting for the
     * peer's delayed ACK, at no per-connection cost. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "setsockopt(TCP_NODELAY): %s", strerror(errno));
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&use->ss, use->len) < 0) {
        char where[ADDR_STRLEN];
        addr_format_wild((const struct sockaddr *)&use->ss, where, sizeof(where));
        snprintf(err, errlen, "bind %s: %s", where, strerror(errno));
        goto fail;
    }
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}
