/* addr: listen-address parsing and the socket-pair notation used by whoami,
 * the start-up line and the admin pages: "{LOCAL, FOREIGN}" with IPv4 plain,
 * IPv6 in brackets, IPv4-mapped IPv6 shown as IPv4 and "*" for a wildcard. */
#ifndef HANDOFF_ADDR_H
#define HANDOFF_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Room for "[v6addr%zone]:65535" plus NUL. */
#define ADDR_STRLEN 80
/* Room for "{" ADDR ", " ADDR "}". */
#define ADDR_PAIRLEN (2 * ADDR_STRLEN + 8)

/* A parsed --listen value. */
struct addr_listen {
    struct sockaddr_storage ss; /* address to bind */
    socklen_t len;              /* length of ss in use */
    bool dual_stack;            /* [::] wildcard that also takes IPv4 */
};

/* Parse PORT, *:PORT, 0.0.0.0:PORT, [::]:PORT, HOST:PORT or [V6]:PORT.
 * Returns 0, or -1 with a reason in err. Names are resolved numerically
 * first and with getaddrinfo only when that fails. */
int addr_parse_listen(const char *text, struct addr_listen *out, char *err, size_t errlen);

/* "1.2.3.4:80", "[::1]:80"; returns the length written or -1. */
int addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* As addr_format but a wildcard address prints as "*". */
int addr_format_wild(const struct sockaddr *sa, char *buf, size_t len);
/* "{LOCAL, PEER}". */
int addr_format_pair(const struct sockaddr *local, const struct sockaddr *peer, char *buf,
                     size_t len);
/* The listening socket in the seed's notation: "{*:8080, *:*}". */
int addr_format_listen(const struct sockaddr *sa, char *buf, size_t len);
/* getsockname + getpeername of a connected fd, formatted as a pair. */
int addr_format_fd_pair(int fd, char *buf, size_t len);
/* Port of a bound socket, or -1. */
int addr_bound_port(int fd);

#endif
