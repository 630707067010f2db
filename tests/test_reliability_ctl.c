/* test_reliability_ctl: a live worker against a hostile channel. The real
 * worker code (worker_run, after the same child_detach the master uses)
 * runs in a forked child on one end of a SOCK_SEQPACKET socketpair; this
 * test plays the master on the other end and sends it malformed control
 * messages with fds attached. The worker must stay up, close every fd
 * that came with a bad message, report the connections a well-formed
 * header announced as refused, and still serve and drain afterwards.
 * (test_fdpass checks ctl_recv itself; tests/fuzz/fuzz_ctl.c fuzzes it.) */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "config.h"
#include "ctl.h"
#include "fdpass.h"
#include "fdutil.h"
#include "harness.h"
#include "test_reliability.h"
#include "worker.h"

/* The test's side of one worker. */
struct fake_master {
    pid_t pid;          /* the worker process */
    int chan;           /* our channel end, owned here */
    char log_path[64];  /* the worker's stderr */
};

static struct config cfg; /* read by the forked worker for its life */

TestSuite(reliability_ctl, .fini = reliability_fini);

static void worker_start(struct fake_master *fm)
{
    char err[256];
    char *argv[] = { "handoffd", "--protocol", "echo", "--workers", "1", NULL };
    cr_assert_eq(config_parse(&cfg, 5, argv, err, sizeof(err)), CONFIG_OK, "%s", err);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    snprintf(fm->log_path, sizeof(fm->log_path), "/tmp/handoff-ctl-XXXXXX");
    int logfd = mkstemp(fm->log_path);
    cr_assert(logfd >= 0);
    fm->pid = fork();
    cr_assert(fm->pid >= 0);
    if (fm->pid == 0) {
        dup2(logfd, STDERR_FILENO);
        /* As the master's fork does: keep stdio and the channel only. */
        if (child_detach(NULL, &sv[1], 1, "worker 0") < 0)
            _exit(1);
        _exit(worker_run(&cfg, 0, sv[1], -1));
    }
    track_pid(fm->pid);
    close(logfd);
    close(sv[1]);
    fm->chan = sv[0];
}

/* Receive one message within TIMEOUT_MS; returns ctl_recv's result. */
static int recv_within(int chan, struct ctl_msg *m, int timeout_ms)
{
    struct pollfd p = { .fd = chan, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    int fds[CTL_MAX_FDS];
    size_t n;
    const char *why;
    uint32_t lost;
    int rc = ctl_recv(chan, m, fds, &n, &why, &lost);
    cr_assert(rc != 1 || n == 0, "the worker sent fds");
    return rc;
}

/* Collect CTL_CLOSED reports until AUX refusals have been counted (or the
 * time is up), then a little longer to catch any excess. */
static void expect_closed(int chan, uint32_t count, uint32_t aux)
{
    uint32_t got_count = 0, got_aux = 0;
    uint64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline && (got_count < count || got_aux < aux)) {
        struct ctl_msg m;
        if (recv_within(chan, &m, 100) == 1 && m.hdr.type == CTL_CLOSED) {
            got_count += m.hdr.count;
            got_aux += m.hdr.aux;
        }
    }
    struct ctl_msg m;
    while (recv_within(chan, &m, 200) == 1)
        if (m.hdr.type == CTL_CLOSED) {
            got_count += m.hdr.count;
            got_aux += m.hdr.aux;
        }
    cr_assert_eq(got_count, count, "closed %u, want %u", got_count, count);
    cr_assert_eq(got_aux, aux, "refused %u, want %u", got_aux, aux);
}

static bool log_has(const struct fake_master *fm, const char *needle)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    snprintf(s.log_path, sizeof(s.log_path), "%s", fm->log_path);
    return server_log_contains(&s, needle);
}

static int worker_wait_exit(struct fake_master *fm, int timeout_ms)
{
    int st = -1;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < deadline) {
        if (waitpid(fm->pid, &st, WNOHANG) == fm->pid)
            return st;
        usleep(5000);
    }
    kill(fm->pid, SIGKILL);
    waitpid(fm->pid, &st, 0);
    cr_assert_fail("worker did not exit within %d ms", timeout_ms);
    return st;
}

/* One malformed message and what the worker owes the master for it. */
struct bad_msg {
    const char *what;
    unsigned char buf[sizeof(struct ctl_msg) + 64];
    size_t len;
    size_t nfds;      /* fds attached */
    uint32_t refused; /* connections the header announced */
};

static size_t put_hdr(unsigned char *buf, uint32_t magic, uint16_t type, uint16_t nfds,
                      uint32_t count)
{
    struct ctl_hdr h = { .magic = magic, .type = type, .nfds = nfds, .count = count };
    memcpy(buf, &h, sizeof(h));
    return sizeof(h);
}

static size_t bad_msgs(struct bad_msg *b)
{
    size_t n = 0, h = sizeof(struct ctl_hdr);
    memset(b, 0, 16 * sizeof(*b));
    b[n] = (struct bad_msg){ .what = "bad magic", .nfds = 1 };
    b[n].len = put_hdr(b[n].buf, 0xdeadbeef, CTL_PASS, 1, 0) + 8;
    n++;
    b[n] = (struct bad_msg){ .what = "shorter than a header", .len = 3, .nfds = 1 };
    n++;
    b[n] = (struct bad_msg){ .what = "more fds than announced", .nfds = 3, .refused = 2 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_PASS, 2, 0) + 16;
    n++;
    b[n] = (struct bad_msg){ .what = "fewer stamps than fds", .nfds = 2 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_PASS, 2, 0) + 8;
    n++;
    b[n] = (struct bad_msg){ .what = "fields set on CTL_PASS", .nfds = 64, .refused = 64 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_PASS, 64, 7) + 64 * 8;
    n++;
    b[n] = (struct bad_msg){ .what = "CTL_PASS without fds" };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_PASS, 0, 0);
    n++;
    b[n] = (struct bad_msg){ .what = "unknown type", .nfds = 1 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, 99, 1, 0) + 8;
    n++;
    b[n] = (struct bad_msg){ .what = "CTL_CLOSED sent to a worker" };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_CLOSED, 0, 1);
    n++;
    b[n] = (struct bad_msg){ .what = "CTL_READY sent to a worker" };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_READY, 0, 0);
    n++;
    b[n] = (struct bad_msg){ .what = "CTL_DRAIN with an fd", .nfds = 1 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_DRAIN, 0, 0);
    n++;
    b[n] = (struct bad_msg){ .what = "larger than any message", .nfds = 1 };
    b[n].len = put_hdr(b[n].buf, CTL_MAGIC, CTL_PASS, 1, 0) + sizeof(struct ctl_msg) + 64 - h;
    n++;
    b[n] = (struct bad_msg){ .what = "empty datagram with an fd", .nfds = 1 };
    n++;
    b[n] = (struct bad_msg){ .what = "empty datagram" };
    n++;
    return n;
}

Test(reliability_ctl, live_worker_survives_garbage_on_its_channel)
{
    struct fake_master fm;
    worker_start(&fm);
    struct ctl_msg m;
    cr_assert_eq(recv_within(fm.chan, &m, 5000), 1, "no CTL_READY");
    cr_assert_eq(m.hdr.type, CTL_READY);
    int base_fds = fdutil_count_open_pid(fm.pid);
    cr_assert(base_fds > 0);

    static struct bad_msg bad[16];
    size_t nbad = bad_msgs(bad);
    int rounds = (int)soak_pick(1, 100);
    uint32_t refused = 0, attached = 0;
    for (int r = 0; r < rounds; r++) {
        uint32_t round_refused = 0;
        static int peers[16][CTL_MAX_FDS];
        for (size_t i = 0; i < nbad; i++) {
            /* Each attached fd is its own socketpair end: the peer we keep
             * sees EOF only once the worker has closed what it received. */
            int send_fds[CTL_MAX_FDS];
            for (size_t k = 0; k < bad[i].nfds; k++) {
                int sp[2];
                cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
                send_fds[k] = sp[0];
                peers[i][k] = sp[1];
            }
            cr_assert_eq(fdpass_send(fm.chan, bad[i].buf, bad[i].len, send_fds, bad[i].nfds),
                         (ssize_t)bad[i].len, "%s: %s", bad[i].what, strerror(errno));
            for (size_t k = 0; k < bad[i].nfds; k++)
                close(send_fds[k]);
            round_refused += bad[i].refused;
            attached += (uint32_t)bad[i].nfds;
            cr_assert(proc_alive(fm.pid), "worker died on: %s", bad[i].what);
        }
        expect_closed(fm.chan, round_refused, round_refused);
        refused += round_refused;
        for (size_t i = 0; i < nbad; i++) {
            for (size_t k = 0; k < bad[i].nfds; k++) {
                char c;
                struct pollfd p = { .fd = peers[i][k], .events = POLLIN };
                cr_assert_eq(poll(&p, 1, 2000), 1, "%s: fd %zu still open in the worker",
                             bad[i].what, k);
                cr_assert_eq(read(peers[i][k], &c, 1), 0, "%s: fd %zu", bad[i].what, k);
                close(peers[i][k]);
            }
        }
    }
    cr_assert(proc_alive(fm.pid));
    cr_assert_eq(fdutil_count_open_pid(fm.pid), base_fds, "worker holds %d fds, had %d",
                 fdutil_count_open_pid(fm.pid), base_fds);
    cr_assert(log_has(&fm, "rejected"), "bad messages not logged");
    cr_assert(log_has(&fm, "unexpected control message type"));

    /* Still a worker: a good hand-off is served, its close reported. */
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    uint64_t stamp = ctl_now_ns();
    cr_assert_eq(ctl_send_pass(fm.chan, &sp[0], &stamp, 1), 0);
    close(sp[0]);
    cr_assert_eq(write_all(sp[1], "ping", 4), 0);
    char buf[8];
    cr_assert_eq(read_exact(sp[1], buf, 4, 5000), 0, "no echo after the garbage");
    cr_assert(memcmp(buf, "ping", 4) == 0);
    close(sp[1]);
    expect_closed(fm.chan, 1, 0);

    cr_assert_eq(ctl_send(fm.chan, CTL_DRAIN, 0, 0), 0);
    int st = worker_wait_exit(&fm, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker status %d", st);
    close(fm.chan);
    unlink(fm.log_path);

    struct soak_row row = { .scenario = "control channel abuse (live worker)", .p99_ms = -1 };
    snprintf(row.load, sizeof(row.load), "a live worker (worker_run) on a socketpair, "
             "this test as its master");
    snprintf(row.faults, sizeof(row.faults), "%d x %zu malformed control messages carrying "
             "%u fds in all", rounds, nbad, attached);
    row.attempted = (uint64_t)rounds * nbad + 1;
    row.failed = (uint64_t)rounds * nbad;
    row.fds_leaked = 0; /* asserted above: every attached fd closed, count back to base */
    snprintf(row.note, sizeof(row.note), "failed = the malformed messages, all rejected; every "
             "fd they carried was closed by the worker (each peer saw EOF), the %u connections "
             "well-formed headers announced were reported refused to the master; the worker "
             "stayed up, served the next hand-off and drained with exit 0", refused);
    soak_report(&row);
}

Test(reliability_ctl, worker_drains_and_exits_when_the_master_hangs_up)
{
    struct fake_master fm;
    worker_start(&fm);
    struct ctl_msg m;
    cr_assert_eq(recv_within(fm.chan, &m, 5000), 1, "no CTL_READY");
    /* A connection in progress is finished, not cut, when the master goes. */
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    uint64_t stamp = ctl_now_ns();
    cr_assert_eq(ctl_send_pass(fm.chan, &sp[0], &stamp, 1), 0);
    close(sp[0]);
    close(fm.chan);
    usleep(100000);
    cr_assert(proc_alive(fm.pid), "worker left with a connection open");
    char buf[4];
    cr_assert_eq(write_all(sp[1], "abc", 3), 0);
    cr_assert_eq(read_exact(sp[1], buf, 3, 5000), 0);
    close(sp[1]);
    int st = worker_wait_exit(&fm, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker status %d", st);
    cr_assert(log_has(&fm, "master closed the channel"));
    unlink(fm.log_path);
}

Test(reliability_ctl, empty_datagram_is_not_end_of_stream)
{
    int sv[2], sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    int before = fdutil_count_open();
    for (size_t nfds = 0; nfds <= 2; nfds++) {
        int attach[2] = { sp[0], sp[0] };
        cr_assert_eq(fdpass_send(sv[0], "", 0, attach, nfds), 0);
        unsigned char buf[64];
        int got_fds[4];
        size_t n = 99, got = 99;
        errno = 0;
        cr_assert_eq(fdpass_recv(sv[1], buf, sizeof(buf), got_fds, 4, &n, &got), -1,
                     "%zu fds: taken for the end of the stream", nfds);
        cr_assert(errno == EPROTO && n == 0 && got == 0, "errno %d, %zu fds, %zu bytes", errno,
                  n, got);
        cr_assert_eq(fdutil_count_open(), before, "received fds leaked");
    }
    /* (A real hang-up still reads as the end of the stream: test_fdpass.) */
    close(sv[0]);
    close(sv[1]);
    close(sp[0]);
    close(sp[1]);
}
