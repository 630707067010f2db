/* fdpass: see fdpass.h. */
#include "fdpass.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(FDPASS_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds > FDPASS_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

static void close_all(int *fds, size_t *nfds)
{
    for (size_t i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

ssize_t fdpass_recv(int sock, void *buf, size_t cap, int *fds, size_t maxfds, size_t *nfds,
                    size_t *got)
{
    /* Room for FDPASS_MAX_FDS plus one more, so a sender that attaches too
     * many is seen as "too many" rather than silently truncated by us. */
    union {
        char buf[CMSG_SPACE((FDPASS_MAX_FDS + 1) * sizeof(int)) + CMSG_SPACE(64)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
    *nfds = 0;
    if (got != NULL)
        *got = 0;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return -1;

    bool bad = false;
    /* Collect every SCM_RIGHTS fd first, whatever else is wrong, so that
     * nothing the kernel installed can escape unclosed. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            bad = true;
            continue;
        }
        if (c->cmsg_len < CMSG_LEN(0)) {
            bad = true;
            continue;
        }
        size_t bytes = c->cmsg_len - CMSG_LEN(0);
        if (bytes % sizeof(int) != 0)
            bad = true;
        size_t k = bytes / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (*nfds < maxfds)
                fds[(*nfds)++] = fd;
            else {
                close(fd);
                bad = true;
            }
        }
    }
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC))
        bad = true;
    /* On a SOCK_SEQPACKET socket 0 bytes is also a zero-length datagram,
     * which may even carry fds: only a peer that has hung up is the end
     * of the stream. */
    if (n == 0 && !bad) {
        struct pollfd p = { .fd = sock, .events = POLLRDHUP };
        if (*nfds > 0 || poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP)))
            bad = true;
    }
    if (bad) {
        close_all(fds, nfds);
        if (got != NULL)
            *got = (size_t)n < cap ? (size_t)n : cap;
        errno = EPROTO;
        return -1;
    }
    return n;
}
