/* harness: what integration tests share: starting the real handoffd (named
 * by $HANDOFFD) on a free port, learning its port and pid from the start-up
 * line, connecting from chosen loopback source addresses, and reading with
 * deadlines so no test can hang. */
#ifndef HANDOFF_TEST_HARNESS_H
#define HANDOFF_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct server {
    pid_t pid;          /* master pid (from fork, checked against the line) */
    int port;           /* port from the start-up line */
    char line[512];     /* the start-up line */
    char log_path[64];  /* the server's stderr, kept in a temp file */
};

/* Start handoffd with ARGS (NULL-terminated, without argv[0]); waits up to
 * 10 s for the start-up line. Returns 0, or -1 (server killed, log kept). */
int server_start(struct server *s, const char *const *args);
/* As server_start, with RLIMIT_NOFILE set to NOFILE (0: unchanged). */
int server_start_limited(struct server *s, const char *const *args, int nofile);
/* Send SIG (0: just wait) and wait up to TIMEOUT_MS for exit; *status gets
 * the wait status. Returns 0 when it exited cleanly, -1 if it had to be
 * SIGKILLed, -2 if any server process logged a sanitizer report. */
int server_stop(struct server *s, int sig, int timeout_ms, int *status);
/* SIGKILL every server this process started and did not stop, and their
 * workers. Runs at exit; suites also use it as .fini. */
void server_kill_leftovers(void);
/* Whether PID is alive (and not a zombie). */
bool proc_alive(pid_t pid);
/* Child pids of PID, from /proc. Returns the count. */
int proc_children(pid_t pid, pid_t *out, int max);
/* Wait until PID has exactly N children, up to TIMEOUT_MS. */
bool proc_wait_children(pid_t pid, int n, int timeout_ms);
/* Whether the server runs under a checker (HANDOFFD_WRAPPER, e.g. valgrind):
 * timing-sensitive tests skip then. */
bool under_checker(void);
/* Whether any server process logged a sanitizer or valgrind report, or
 * exited with an fd other than stdio still open (valgrind --track-fds). */
bool server_log_has_reports(const struct server *s);
/* The whole server log, NUL-terminated (free it), or NULL. */
char *server_log_read(const struct server *s);
/* Whether the server log contains NEEDLE. */
bool server_log_contains(const struct server *s, const char *needle);

/* Connect to DST:PORT (DST numeric, v4 or v6), binding SRC first when not
 * NULL. 5 s send/receive timeouts are set. Returns fd or -1. */
int tcp_connect(const char *src, const char *dst, int port);
/* Read up to a newline (stripped) within TIMEOUT_MS. Returns length or -1. */
ssize_t read_line(int fd, char *buf, size_t len, int timeout_ms);
/* Read exactly LEN bytes within TIMEOUT_MS. Returns 0 or -1. */
int read_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Read until EOF (or LEN bytes) within TIMEOUT_MS. Returns bytes read or -1. */
ssize_t read_to_eof(int fd, void *buf, size_t len, int timeout_ms);
int write_all(int fd, const void *buf, size_t len);
/* "{LOCAL, PEER}" as seen from the client side of FD: the server's view is
 * the mirror image, so this formats {peer, local} of the client socket. */
int client_pair_as_server_sees(int fd, char *buf, size_t len);
uint64_t now_ms(void);

#endif
