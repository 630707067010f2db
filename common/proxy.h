/* proxy: a strict parser for the PROXY protocol header (versions 1 and 2)
 * that a load balancer such as HAProxy puts in front of a TCP stream to
 * name the real client. A pure function over bytes: it never reads past the
 * length it is given, keeps no state between calls, and rejects anything
 * the specification does not allow. */
#ifndef HANDOFF_PROXY_H
#define HANDOFF_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Longest version 1 header: "PROXY UNKNOWN <39> <39> 65535 65535\r\n". */
#define PROXY_V1_MAX 107
/* Fixed part of a version 2 header: signature, ver/cmd, family, length. */
#define PROXY_V2_HDR 16
/* Longest version 2 header the format can express. */
#define PROXY_V2_MAX (PROXY_V2_HDR + 65535)
/* Longest header of either version: what a caller may have to buffer. */
#define PROXY_MAX PROXY_V2_MAX

/* One endpoint: AF_INET or AF_INET6, small enough to keep per connection. */
union proxy_addr {
    struct sockaddr sa;      /* sa_family tells which member is in use */
    struct sockaddr_in v4;   /* AF_INET */
    struct sockaddr_in6 v6;  /* AF_INET6 */
};

/* The endpoints a header names, in socket-pair order {LOCAL, PEER}. */
struct proxy_pair {
    union proxy_addr dst;    /* where the client connected (the balancer's side) */
    union proxy_addr src;    /* the client itself */
};

enum proxy_rc {
    PROXY_ERROR = -1, /* malformed: close the connection */
    PROXY_MORE = 0,   /* a valid prefix so far: wait for more bytes */
    PROXY_DONE = 1,   /* a whole header: see struct proxy_hdr */
};

/* A parsed header. */
struct proxy_hdr {
    size_t len;              /* PROXY_DONE: bytes the header took, the stream
                                follows; PROXY_MORE: the header's whole length
                                once known (v2 after 16 bytes), else 0 */
    int version;             /* 1 or 2 */
    bool local;              /* v1 UNKNOWN, v2 LOCAL or v2 UNSPEC: no addresses,
                                the connection's own endpoints stand */
    struct proxy_pair pair;  /* addresses when !local */
};

/* Parse the start of a stream, BUF[0..LEN). On PROXY_DONE *out is filled;
 * on PROXY_MORE only out->len; on PROXY_ERROR *why names the fault (a
 * static string). A header is recognised from its first byte, so garbage
 * fails at once rather than after a timeout. */
enum proxy_rc proxy_parse(const void *buf, size_t len, struct proxy_hdr *out, const char **why);

#endif
