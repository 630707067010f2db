/* fuzz_ctl: libFuzzer entry into the control channel's receive side: the
 * pure validator ctl_check over arbitrary bytes and fd counts, and the real
 * path a worker or the master runs, ctl_recv -> fdpass_recv, over a
 * SOCK_SEQPACKET socketpair with the bytes sent as one datagram carrying
 * any number of fds.
 *
 * Input layout: byte 0 chooses the set-up, byte 1 is the fd count given to
 * ctl_check, the rest is the datagram.
 *   bits 0-6  fds attached to the datagram (0..127; past FDPASS_MAX_FDS + 1
 *             the kernel truncates them, MSG_CTRUNC)
 *   bit 7     receive on a socket with SO_PASSCRED, so every datagram also
 *             carries foreign control data (SCM_CREDENTIALS)
 *
 * Besides the sanitizers, it checks what must always hold:
 *   - ctl_check accepts only messages whose length, type and fd count agree;
 *   - ctl_recv returns a message only when ctl_check accepts it, with
 *     exactly the announced fds, and never reports end of stream while the
 *     peer is open;
 *   - a rejected message leaves no received fd open: the lowest free fd
 *     number is unchanged, and every 4096 runs /proc/self/fd holds no copy
 *     of the attached memfd but the original. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"
#include "fdpass.h"

#define ATTACH_MAX 127 /* bits 0-6 of byte 0 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Channels and the fd every attachment copies; opened once, owned here
 * for the fuzzer's life. plain[0] sends to plain[1]; cred[1] has SO_PASSCRED. */
static int plain[2] = { -1, -1 }, cred[2] = { -1, -1 };
static int attach_src = -1;
static char attach_name[256]; /* its /proc/self/fd link target */
static unsigned long runs;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_ctl: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int one = 1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, plain) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cred) < 0 ||
        setsockopt(cred[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
        fail("socketpair");
    /* Big enough for the largest datagram plus its fds, so sendmsg never
     * blocks and every message sent is received in the same run. */
    int sz = 1 << 20;
    setsockopt(plain[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(cred[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    attach_src = memfd_create("fuzz_ctl-attached", MFD_CLOEXEC);
    if (attach_src < 0)
        fail("memfd_create");
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", attach_src);
    ssize_t n = readlink(path, attach_name, sizeof(attach_name) - 1);
    if (n <= 0)
        fail("readlink");
    attach_name[n] = '\0';
    return 0;
}

/* Open fds that are copies of attach_src (the fuzzer's own fds change
 * under it, so a plain count would not do). */
static int attach_copies(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        fail("opendir /proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[sizeof(attach_name)];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, target, sizeof(target) - 1);
        if (k > 0) {
            target[k] = '\0';
            n += strcmp(target, attach_name) == 0;
        }
    }
    closedir(d);
    return n;
}

/* The lowest fd number not in use: a received fd left open takes it. */
static int lowest_free_fd(void)
{
    int fd = dup(attach_src);
    if (fd < 0)
        fail("dup");
    close(fd);
    return fd;
}

/* sendmsg with K copies of attach_src, bypassing fdpass_send's own limit
 * to play a peer that sends anything. Returns sendmsg's result. */
static ssize_t send_raw(int sock, const uint8_t *buf, size_t len, size_t k)
{
    union {
        char b[CMSG_SPACE(ATTACH_MAX * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (k > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.b;
        msg.msg_controllen = CMSG_SPACE(k * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(k * sizeof(int));
        for (size_t i = 0; i < k; i++)
            memcpy(CMSG_DATA(c) + i * sizeof(int), &attach_src, sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* What ctl_check must mean when it accepts. */
static void check_accepted(const uint8_t *buf, size_t len, size_t nfds)
{
    struct ctl_hdr h;
    if (len < sizeof(h))
        fail("accepted a message shorter than the header");
    memcpy(&h, buf, sizeof(h));
    if (h.magic != CTL_MAGIC)
        fail("accepted a bad magic");
    if (h.type == CTL_PASS) {
        if (h.nfds == 0 || h.nfds > CTL_MAX_FDS || nfds != h.nfds ||
            len != sizeof(h) + h.nfds * sizeof(uint64_t))
            fail("accepted a CTL_PASS whose length or fds disagree");
    } else if (h.type == CTL_DRAIN || h.type == CTL_READY || h.type == CTL_CLOSED) {
        if (nfds != 0 || h.nfds != 0 || len != sizeof(h))
            fail("accepted fds or payload on a message that carries none");
        if (h.type == CTL_CLOSED && (h.count == 0 || h.aux > h.count))
            fail("accepted impossible CTL_CLOSED counts");
    } else {
        fail("accepted an unknown type");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t attach = data[0] & 0x7f;
    bool passcred = (data[0] & 0x80) != 0;
    size_t check_nfds = data[1];
    const uint8_t *msg = data + 2;
    size_t len = size - 2;

    if (ctl_check(msg, len, check_nfds) == NULL)
        check_accepted(msg, len, check_nfds);

    int *chan = passcred ? cred : plain;
    int free_before = lowest_free_fd();
    if (send_raw(chan[0], msg, len, attach) < 0) {
        if (errno == EMSGSIZE || errno == ETOOMANYREFS)
            return 0;
        fail("sendmsg");
    }
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t nfds = 99;
    const char *why = NULL;
    uint32_t lost = 99;
    errno = 0;
    int rc = ctl_recv(chan[1], &m, fds, &nfds, &why, &lost);
    if (rc == 0)
        fail("end of stream reported while the peer is open");
    if (rc == 1) {
        if (passcred)
            fail("accepted a message with foreign control data");
        if (ctl_check(msg, len, nfds) != NULL || memcmp(&m, msg, len) != 0)
            fail("returned a message other than the one ctl_check accepts");
        check_accepted(msg, len, nfds);
        if (nfds != attach || lost != 0 || why != NULL)
            fail("fd count or loss wrong on an accepted message");
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
    } else {
        if (errno != EPROTO || why == NULL || nfds != 0)
            fail("rejection without EPROTO, a reason, or with fds handed out");
        if (lost > CTL_MAX_FDS)
            fail("lost count beyond what a message can announce");
    }
    if (lowest_free_fd() != free_before)
        fail("a received fd was left open");
    if (++runs % 4096 == 0 && attach_copies() != 1)
        fail("a copy of the attached fd is still open");
    return 0;
}
