/* test_fdpass: SCM_RIGHTS hand-off and control-message validation over real
 * socketpairs: good messages deliver the same socket, bad ones are rejected
 * with every received fd closed (checked by counting open fds). */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fdpass.h"
#include "fdutil.h"

static int chan[2];

static void chan_open(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
}

static void chan_close(void)
{
    close(chan[0]);
    close(chan[1]);
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

TestSuite(fdpass, .init = chan_open, .fini = chan_close);

Test(fdpass, one_fd_arrives_as_the_same_socket)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    uint64_t stamp = 42;
    cr_assert_eq(ctl_send_pass(chan[0], &sp[0], &stamp, 1), 0);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost;
    cr_assert_eq(ctl_recv(chan[1], &m, fds, &n, &why, &lost), 1);
    cr_assert_eq(m.hdr.type, CTL_PASS);
    cr_assert_eq(n, 1);
    cr_assert_eq(m.stamp[0], 42);
    cr_assert(fds[0] != sp[0]);
    cr_assert(same_file(fds[0], sp[0]));
    /* The received copy works: bytes written through it reach the peer. */
    cr_assert_eq(write(fds[0], "x", 1), 1);
    char c;
    cr_assert_eq(read(sp[1], &c, 1), 1);
    close(fds[0]);
    close(sp[0]);
    close(sp[1]);
}

Test(fdpass, batch_of_fds_in_one_message)
{
    int pairs[CTL_MAX_FDS][2], send[CTL_MAX_FDS];
    uint64_t stamps[CTL_MAX_FDS];
    for (int i = 0; i < CTL_MAX_FDS; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]), 0);
        send[i] = pairs[i][0];
        stamps[i] = (uint64_t)i;
    }
    cr_assert_eq(ctl_send_pass(chan[0], send, stamps, CTL_MAX_FDS), 0);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost;
    cr_assert_eq(ctl_recv(chan[1], &m, fds, &n, &why, &lost), 1);
    cr_assert_eq(n, CTL_MAX_FDS);
    for (int i = 0; i < CTL_MAX_FDS; i++) {
        cr_assert(same_file(fds[i], send[i]), "fd %d differs", i);
        cr_assert_eq(m.stamp[i], (uint64_t)i);
        close(fds[i]);
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
}

/* Send raw bytes with NFDS copies of a socket attached, expect rejection
 * and no fd left behind in the receiver. */
/* sendmsg without fdpass_send's own limit, to play a misbehaving peer. */
static void raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
    union {
        char b[CMSG_SPACE((CTL_MAX_FDS + 8) * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.b;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    cr_assert_eq(sendmsg(sock, &msg, 0), (ssize_t)len);
}

static void expect_rejected(const void *buf, size_t len, size_t nfds)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int attach[CTL_MAX_FDS + 8];
    for (size_t i = 0; i < nfds; i++)
        attach[i] = sp[0];
    int before = fdutil_count_open();
    raw_send(chan[0], buf, len, attach, nfds);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n = 99;
    const char *why = NULL;
    uint32_t lost;
    errno = 0;
    cr_assert_eq(ctl_recv(chan[1], &m, fds, &n, &why, &lost), -1);
    cr_assert_eq(errno, EPROTO);
    cr_assert(why != NULL);
    cr_assert_eq(n, 0);
    cr_assert_eq(fdutil_count_open(), before, "fds leaked: %d -> %d", before,
                 fdutil_count_open());
    close(sp[0]);
    close(sp[1]);
}

Test(fdpass, truncated_message_rejected_without_leak)
{
    struct ctl_hdr h = { .magic = CTL_MAGIC, .type = CTL_PASS, .nfds = 2 };
    /* header claims two fds and stamps, but only one stamp follows */
    unsigned char buf[sizeof(h) + 8];
    memcpy(buf, &h, sizeof(h));
    memset(buf + sizeof(h), 0, 8);
    expect_rejected(buf, sizeof(buf), 2);
    expect_rejected(buf, 3, 1); /* shorter than a header */
}

Test(fdpass, wrong_type_and_bad_magic_rejected_without_leak)
{
    struct ctl_hdr h = { .magic = CTL_MAGIC, .type = 99, .nfds = 1 };
    unsigned char buf[sizeof(h) + 8] = { 0 };
    memcpy(buf, &h, sizeof(h));
    expect_rejected(buf, sizeof(buf), 1);
    h.type = CTL_PASS;
    h.magic = 0xdeadbeef;
    memcpy(buf, &h, sizeof(h));
    expect_rejected(buf, sizeof(buf), 1);
    /* a CTL_CLOSED report must never carry fds */
    struct ctl_hdr c = { .magic = CTL_MAGIC, .type = CTL_CLOSED, .count = 1 };
    expect_rejected(&c, sizeof(c), 1);
}

Test(fdpass, extra_fds_and_oversized_message_rejected_without_leak)
{
    /* header says one fd, three are attached */
    struct ctl_hdr h = { .magic = CTL_MAGIC, .type = CTL_PASS, .nfds = 1 };
    unsigned char buf[sizeof(h) + 8] = { 0 };
    memcpy(buf, &h, sizeof(h));
    expect_rejected(buf, sizeof(buf), 3);
    /* more fds than the receiver accepts: the kernel truncates (MSG_CTRUNC) */
    expect_rejected(buf, sizeof(buf), FDPASS_MAX_FDS + 4);
    /* more bytes than the largest valid message */
    unsigned char big[sizeof(struct ctl_msg) + 64];
    memset(big, 0, sizeof(big));
    memcpy(big, &h, sizeof(h));
    expect_rejected(big, sizeof(big), 1);
}

Test(fdpass, end_of_stream_is_reported)
{
    close(chan[0]);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost;
    cr_assert_eq(ctl_recv(chan[1], &m, fds, &n, &why, &lost), 0);
    chan[0] = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* keep fini's close valid */
}

Test(fdpass, reports_round_trip)
{
    cr_assert_eq(ctl_send(chan[1], CTL_CLOSED, 7, 2), 0);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost;
    cr_assert_eq(ctl_recv(chan[0], &m, fds, &n, &why, &lost), 1);
    cr_assert_eq(m.hdr.type, CTL_CLOSED);
    cr_assert_eq(m.hdr.count, 7);
    cr_assert_eq(m.hdr.aux, 2);
    cr_assert_eq(n, 0);
    cr_assert_not_null(ctl_check(&m.hdr, sizeof(m.hdr) - 1, 0));
    struct ctl_hdr bad = { .magic = CTL_MAGIC, .type = CTL_CLOSED, .count = 1, .aux = 2 };
    cr_assert_not_null(ctl_check(&bad, sizeof(bad), 0));
}

Test(fdpass, connections_dropped_for_want_of_fds_are_counted)
{
    /* A valid two-connection message whose fds cannot all be installed
     * (here: more than the receiver takes, as when it is out of fds). */
    struct {
        struct ctl_hdr h;
        uint64_t stamp[2];
    } msg = { { .magic = CTL_MAGIC, .type = CTL_PASS, .nfds = 2 }, { 1, 2 } };
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int attach[FDPASS_MAX_FDS + 4];
    for (size_t i = 0; i < FDPASS_MAX_FDS + 4; i++)
        attach[i] = sp[0];
    int before = fdutil_count_open();
    raw_send(chan[0], &msg, sizeof(msg), attach, FDPASS_MAX_FDS + 4);
    struct ctl_msg m;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost = 0;
    cr_assert_eq(ctl_recv(chan[1], &m, fds, &n, &why, &lost), -1);
    cr_assert_eq(errno, EPROTO);
    cr_assert_eq(lost, 2);
    cr_assert_eq(fdutil_count_open(), before);
    close(sp[0]);
    close(sp[1]);
}
