/* addr: see addr.h. Everything here is pure formatting and parsing except the
 * getaddrinfo fallback for host names, so it is unit-tested directly. */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, unsigned *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

static void set_any6(struct addr_listen *out, unsigned port)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
    memset(out, 0, sizeof(*out));
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons((unsigned short)port);
    out->len = sizeof(*s6);
    out->dual_stack = true;
}

static int resolve(const char *host, unsigned port, bool v6_only, struct addr_listen *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct in_addr a4;
    struct in6_addr a6;
    if (!v6_only && inet_pton(AF_INET, host, &a4) == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
        s4->sin_family = AF_INET;
        s4->sin_addr = a4;
        s4->sin_port = htons((unsigned short)port);
        out->len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = a6;
        s6->sin6_port = htons((unsigned short)port);
        out->len = sizeof(*s6);
        out->dual_stack = IN6_IS_ADDR_UNSPECIFIED(&a6);
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = v6_only ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int addr_parse_listen(const char *text, struct addr_listen *out, char *err, size_t errlen)
{
    char buf[300];
    unsigned port;
    if (text == NULL || text[0] == '\0') {
        snprintf(err, errlen, "empty address");
        return -1;
    }
    if (strlen(text) >= sizeof(buf)) {
        snprintf(err, errlen, "address too long");
        return -1;
    }
    strcpy(buf, text);

    if (strchr(buf, ':') == NULL) {
        if (parse_port(buf, &port) < 0) {
            snprintf(err, errlen, "bad port '%s' (expected 0-65535)", text);
            return -1;
        }
        set_any6(out, port);
        return 0;
    }
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "bad address '%s' (expected [V6ADDR]:PORT)", text);
            return -1;
        }
        *close = '\0';
        if (parse_port(close + 2, &port) < 0) {
            snprintf(err, errlen, "bad port in '%s' (expected 0-65535)", text);
            return -1;
        }
        if (buf[1] == '\0') {
            snprintf(err, errlen, "empty IPv6 address in '%s'", text);
            return -1;
        }
        return resolve(buf + 1, port, true, out, err, errlen);
    }
    char *colon = strrchr(buf, ':');
    *colon = '\0';
    if (strchr(buf, ':') != NULL) {
        snprintf(err, errlen, "bad address '%s' (IPv6 addresses need brackets: [V6ADDR]:PORT)",
                 text);
        return -1;
    }
    if (parse_port(colon + 1, &port) < 0) {
        snprintf(err, errlen, "bad port in '%s' (expected 0-65535)", text);
        return -1;
    }
    if (buf[0] == '\0') {
        snprintf(err, errlen, "empty host in '%s'", text);
        return -1;
    }
    if (strcmp(buf, "*") == 0) {
        set_any6(out, port);
        return 0;
    }
    return resolve(buf, port, false, out, err, errlen);
}

static int format(const struct sockaddr *sa, char *buf, size_t len, bool wild)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        port = ntohs(s4->sin_port);
        if (wild && s4->sin_addr.s_addr == htonl(INADDR_ANY))
            return snprintf(buf, len, "*:%u", port);
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        n = snprintf(buf, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(s6->sin6_port);
        if (wild && IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            return snprintf(buf, len, "*:%u", port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host, sizeof(host));
            n = snprintf(buf, len, "%s:%u", host, port);
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
            n = snprintf(buf, len, "[%s]:%u", host, port);
        }
    } else {
        n = snprintf(buf, len, "?:?");
    }
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

int addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    return format(sa, buf, len, false);
}

int addr_format_wild(const struct sockaddr *sa, char *buf, size_t len)
{
    return format(sa, buf, len, true);
}

int addr_format_pair(const struct sockaddr *local, const struct sockaddr *peer, char *buf,
                     size_t len)
{
    char l[ADDR_STRLEN], p[ADDR_STRLEN];
    if (format(local, l, sizeof(l), false) < 0 || format(peer, p, sizeof(p), false) < 0)
        return -1;
    int n = snprintf(buf, len, "{%s, %s}", l, p);
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

int addr_format_listen(const struct sockaddr *sa, char *buf, size_t len)
{
    char l[ADDR_STRLEN];
    if (format(sa, l, sizeof(l), true) < 0)
        return -1;
    int n = snprintf(buf, len, "{%s, *:*}", l);
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

int addr_format_fd_pair(int fd, char *buf, size_t len)
{
    struct sockaddr_storage l, p;
    socklen_t ll = sizeof(l), pl = sizeof(p);
    if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 ||
        getpeername(fd, (struct sockaddr *)&p, &pl) < 0)
        return -1;
    return addr_format_pair((struct sockaddr *)&l, (struct sockaddr *)&p, buf, len);
}

int addr_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
