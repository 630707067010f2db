/* proxy: see proxy.h. Follows haproxy's doc/proxy-protocol.txt. Every check
 * that can be made on a prefix is made on it, so a peer that is not a
 * balancer is refused on its first bytes; the rest is checked once the
 * whole header is present. */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static const char v1_sig[] = "PROXY ";
#define V1_SIGLEN (sizeof(v1_sig) - 1)
static const unsigned char v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* Version 2 fields (byte 12: version and command; byte 13: family and
 * transport). */
enum {
    V2_VERSION = 0x2,
    V2_CMD_LOCAL = 0x0,
    V2_CMD_PROXY = 0x1,
    V2_AF_UNSPEC = 0x0,
    V2_AF_INET = 0x1,
    V2_AF_INET6 = 0x2,
    V2_AF_UNIX = 0x3,
    V2_STREAM = 0x1,
    V2_DGRAM = 0x2,
    V2_INET_LEN = 12,  /* 2 x 4-byte address + 2 x port */
    V2_INET6_LEN = 36, /* 2 x 16-byte address + 2 x port */
    V2_TLV_HDR = 3,    /* type, 16-bit length */
};

static enum proxy_rc fail(const char **why, const char *reason)
{
    *why = reason;
    return PROXY_ERROR;
}

/* Decimal port, 0..65535, no sign, no leading zero. */
static int v1_port(const char *s, size_t n, in_port_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = htons((in_port_t)v);
    return 0;
}

/* One numeric address of FAMILY; the token is copied so inet_pton sees a
 * NUL-terminated string of bounded length. */
static int v1_addr(const char *s, size_t n, int family, union proxy_addr *out)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    /* inet_pton would stop at an embedded NUL and accept the prefix. */
    for (size_t i = 0; i < n; i++)
        if (strchr("0123456789abcdefABCDEF.:", s[i]) == NULL || s[i] == '\0')
            return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        out->v4.sin_family = AF_INET;
        return inet_pton(AF_INET, tmp, &out->v4.sin_addr) == 1 ? 0 : -1;
    }
    out->v6.sin6_family = AF_INET6;
    return inet_pton(AF_INET6, tmp, &out->v6.sin6_addr) == 1 ? 0 : -1;
}

static void set_port(union proxy_addr *a, in_port_t port)
{
    if (a->sa.sa_family == AF_INET)
        a->v4.sin_port = port;
    else
        a->v6.sin6_port = port;
}

/* "TCP4 SRC DST SPORT DPORT" (after "PROXY "), exactly one space apart. */
static enum proxy_rc v1_tcp(const char *p, const char *end, struct proxy_hdr *out,
                            const char **why)
{
    int family = p[3] == '4' ? AF_INET : AF_INET6;
    const char *field[4];
    size_t flen[4];
    p += 4;
    for (int i = 0; i < 4; i++) {
        if (p >= end || *p != ' ')
            return fail(why, "v1: expected a single space between fields");
        p++;
        field[i] = p;
        while (p < end && *p != ' ')
            p++;
        flen[i] = (size_t)(p - field[i]);
        if (flen[i] == 0)
            return fail(why, "v1: empty field");
    }
    if (p != end)
        return fail(why, "v1: trailing data after the destination port");
    if (v1_addr(field[0], flen[0], family, &out->pair.src) < 0 ||
        v1_addr(field[1], flen[1], family, &out->pair.dst) < 0)
        return fail(why, family == AF_INET ? "v1: bad TCP4 address" : "v1: bad TCP6 address");
    in_port_t sport, dport;
    if (v1_port(field[2], flen[2], &sport) < 0 || v1_port(field[3], flen[3], &dport) < 0)
        return fail(why, "v1: bad port (decimal 0-65535, no leading zero)");
    set_port(&out->pair.src, sport);
    set_port(&out->pair.dst, dport);
    return PROXY_DONE;
}

static enum proxy_rc v1_parse(const char *b, size_t len, struct proxy_hdr *out, const char **why)
{
    size_t n = len < V1_SIGLEN ? len : V1_SIGLEN;
    if (memcmp(b, v1_sig, n) != 0)
        return fail(why, "not a PROXY protocol header");
    /* Look for CRLF in at most PROXY_V1_MAX bytes; a lone CR or LF is bad. */
    size_t lim = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    size_t eol = 0;
    for (size_t i = 0; i < lim; i++) {
        if (b[i] == '\n')
            return fail(why, "v1: LF without CR");
        if (b[i] == '\r') {
            if (i + 1 == len)
                break; /* the LF may be on its way */
            if (i + 1 >= PROXY_V1_MAX || b[i + 1] != '\n')
                return fail(why, "v1: CR without LF");
            eol = i;
            break;
        }
    }
    if (eol == 0) {
        if (len >= PROXY_V1_MAX)
            return fail(why, "v1: no CRLF within 107 bytes");
        return PROXY_MORE;
    }
    if (eol < V1_SIGLEN)
        return fail(why, "v1: truncated signature");
    const char *p = b + V1_SIGLEN, *end = b + eol;
    size_t rest = (size_t)(end - p);
    memset(out, 0, sizeof(*out));
    out->version = 1;
    out->len = eol + 2;
    if (rest >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (rest == 7 || p[7] == ' ')) {
        /* The sender could not name the endpoints; what follows is ignored. */
        out->local = true;
        return PROXY_DONE;
    }
    if (rest >= 4 && (memcmp(p, "TCP4", 4) == 0 || memcmp(p, "TCP6", 4) == 0))
        return v1_tcp(p, end, out, why);
    return fail(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* Type-length-value records must exactly fill what follows the addresses. */
static int v2_tlvs_ok(const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (n < V2_TLV_HDR)
            return -1;
        size_t vlen = get16(p + 1);
        if (vlen > n - V2_TLV_HDR)
            return -1;
        p += V2_TLV_HDR + vlen;
        n -= V2_TLV_HDR + vlen;
    }
    return 0;
}

static enum proxy_rc v2_parse(const unsigned char *b, size_t len, struct proxy_hdr *out,
                              const char **why)
{
    size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(b, v2_sig, n) != 0)
        return fail(why, "not a PROXY protocol header");
    if (len <= 12)
        return PROXY_MORE;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0x0f;
    if (ver != V2_VERSION)
        return fail(why, "v2: version is not 2");
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return fail(why, "v2: command is not LOCAL or PROXY");
    if (len < PROXY_V2_HDR)
        return PROXY_MORE;
    unsigned fam = b[13] >> 4, proto = b[13] & 0x0f;
    size_t blen = get16(b + 14), need = 0;
    if (cmd == V2_CMD_PROXY) {
        switch (fam) {
        case V2_AF_UNSPEC:
            if (proto != 0)
                return fail(why, "v2: UNSPEC family with a transport");
            break;
        case V2_AF_INET:
            need = V2_INET_LEN;
            break;
        case V2_AF_INET6:
            need = V2_INET6_LEN;
            break;
        case V2_AF_UNIX:
            return fail(why, "v2: AF_UNIX endpoints are not supported on a TCP server");
        default:
            return fail(why, "v2: unknown address family");
        }
        if (need > 0 && proto != V2_STREAM)
            return fail(why, proto == V2_DGRAM ? "v2: DGRAM is not supported on a TCP server"
                                               : "v2: unknown transport");
        if (blen < need)
            return fail(why, "v2: length too short for the address family");
    }
    if (len < PROXY_V2_HDR + blen) {
        out->len = PROXY_V2_HDR + blen; /* the caller may wait for all of it */
        return PROXY_MORE;
    }
    const unsigned char *body = b + PROXY_V2_HDR;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->len = PROXY_V2_HDR + blen;
    /* LOCAL (a balancer's own health check) and UNSPEC carry no endpoints
     * we use; the block, family included, is skipped as the spec says. */
    out->local = cmd == V2_CMD_LOCAL || fam == V2_AF_UNSPEC;
    if (out->local)
        return PROXY_DONE;
    if (v2_tlvs_ok(body + need, blen - need) < 0)
        return fail(why, "v2: TLV records overrun the header");
    struct proxy_pair *pp = &out->pair;
    if (fam == V2_AF_INET) {
        pp->src.v4.sin_family = pp->dst.v4.sin_family = AF_INET;
        memcpy(&pp->src.v4.sin_addr, body, 4);
        memcpy(&pp->dst.v4.sin_addr, body + 4, 4);
        memcpy(&pp->src.v4.sin_port, body + 8, 2);
        memcpy(&pp->dst.v4.sin_port, body + 10, 2);
    } else {
        pp->src.v6.sin6_family = pp->dst.v6.sin6_family = AF_INET6;
        memcpy(&pp->src.v6.sin6_addr, body, 16);
        memcpy(&pp->dst.v6.sin6_addr, body + 16, 16);
        memcpy(&pp->src.v6.sin6_port, body + 32, 2);
        memcpy(&pp->dst.v6.sin6_port, body + 34, 2);
    }
    return PROXY_DONE;
}

enum proxy_rc proxy_parse(const void *buf, size_t len, struct proxy_hdr *out, const char **why)
{
    const unsigned char *b = buf;
    *why = NULL;
    out->len = 0;
    if (len == 0)
        return PROXY_MORE;
    if (b[0] == 'P')
        return v1_parse(buf, len, out, why);
    if (b[0] == v2_sig[0])
        return v2_parse(b, len, out, why);
    return fail(why, "not a PROXY protocol header");
}
