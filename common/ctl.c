/* ctl: see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"

uint64_t ctl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ctl_send_pass(int sock, const int *fds, const uint64_t *stamps, size_t n)
{
    struct ctl_msg m;
    if (n == 0 || n > CTL_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    memset(&m.hdr, 0, sizeof(m.hdr));
    m.hdr.magic = CTL_MAGIC;
    m.hdr.type = CTL_PASS;
    m.hdr.nfds = (uint16_t)n;
    memcpy(m.stamp, stamps, n * sizeof(uint64_t));
    size_t len = sizeof(m.hdr) + n * sizeof(uint64_t);
    return fdpass_send(sock, &m, len, fds, n) == (ssize_t)len ? 0 : -1;
}

int ctl_send(int sock, enum ctl_type type, uint32_t count, uint32_t aux)
{
    struct ctl_hdr h = { .magic = CTL_MAGIC, .type = (uint16_t)type, .nfds = 0,
                         .count = count, .aux = aux };
    return fdpass_send(sock, &h, sizeof(h), NULL, 0) == (ssize_t)sizeof(h) ? 0 : -1;
}

const char *ctl_check(const void *buf, size_t len, size_t nfds)
{
    struct ctl_hdr h;
    if (len < sizeof(h))
        return "short message";
    memcpy(&h, buf, sizeof(h));
    if (h.magic != CTL_MAGIC)
        return "bad magic";
    switch (h.type) {
    case CTL_PASS:
        if (h.nfds == 0 || h.nfds > CTL_MAX_FDS)
            return "bad fd count";
        if (len != sizeof(h) + (size_t)h.nfds * sizeof(uint64_t))
            return "length does not match fd count";
        if (nfds != h.nfds)
            return "attached fds do not match header";
        if (h.count != 0 || h.aux != 0)
            return "unexpected fields set";
        return NULL;
    case CTL_CLOSED:
        if (len != sizeof(h) || h.nfds != 0 || nfds != 0)
            return "unexpected payload or fds";
        if (h.count == 0 || h.aux > h.count)
            return "bad counts";
        return NULL;
    case CTL_DRAIN:
    case CTL_READY:
        if (len != sizeof(h) || h.nfds != 0 || nfds != 0)
            return "unexpected payload or fds";
        if (h.count != 0 || h.aux != 0)
            return "unexpected fields set";
        return NULL;
    default:
        return "unknown type";
    }
}

/* Connections a CTL_PASS message announces, when its data part is intact. */
static uint32_t ctl_announced(const void *buf, size_t len)
{
    struct ctl_hdr h;
    if (len < sizeof(h))
        return 0;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != CTL_MAGIC || h.type != CTL_PASS || h.nfds > CTL_MAX_FDS ||
        len != sizeof(h) + (size_t)h.nfds * sizeof(uint64_t))
        return 0;
    return h.nfds;
}

int ctl_recv(int sock, struct ctl_msg *m, int *fds, size_t *nfds, const char **why,
             uint32_t *lost)
{
    /* One byte more than the largest valid message, so an oversized one
     * shows up as a length error rather than as silent truncation. */
    unsigned char buf[sizeof(struct ctl_msg) + 1];
    size_t got = 0;
    *why = NULL;
    *lost = 0;
    ssize_t n = fdpass_recv(sock, buf, sizeof(buf), fds, CTL_MAX_FDS, nfds, &got);
    if (n == 0)
        return 0;
    if (n < 0) {
        if (errno == EPROTO) {
            *why = "truncated or foreign control data";
            *lost = ctl_announced(buf, got);
        }
        return -1;
    }
    const char *bad = ctl_check(buf, (size_t)n, *nfds);
    if (bad != NULL) {
        for (size_t i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        *why = bad;
        *lost = ctl_announced(buf, (size_t)n);
        errno = EPROTO;
        return -1;
    }
    memcpy(m, buf, (size_t)n);
    return 1;
}
