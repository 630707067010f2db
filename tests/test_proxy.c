/* test_proxy: the PROXY protocol parser on its own (every header is placed
 * right before a PROT_NONE page, so reading one byte too far crashes), then
 * handoffd --proxy-protocol over real sockets: the header's pair reaches
 * whoami, bytes after the header reach the protocol, and a missing, slow or
 * malformed header closes the connection. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"
#include "proxy.h"

/* ---- parser ---------------------------------------------------------------- */

static unsigned char *guard_base; /* first byte of the PROT_NONE page */
static size_t guard_room;         /* readable bytes right before it */

/* A copy of BUF[0..LEN) ending exactly where an unreadable page starts. */
static const unsigned char *guarded(const void *buf, size_t len)
{
    if (guard_base == NULL) {
        size_t guard_page = (size_t)sysconf(_SC_PAGESIZE);
        size_t span = ((PROXY_MAX + 64 + guard_page - 1) / guard_page + 1) * guard_page;
        guard_base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        cr_assert(guard_base != MAP_FAILED);
        cr_assert(mprotect(guard_base + span - guard_page, guard_page, PROT_NONE) == 0);
        guard_base += span - guard_page;
        guard_room = span - guard_page;
    }
    cr_assert(len <= guard_room);
    unsigned char *p = guard_base - len;
    memcpy(p, buf, len);
    return p;
}

static enum proxy_rc parse(const void *buf, size_t len, struct proxy_hdr *h, const char **why)
{
    return proxy_parse(guarded(buf, len), len, h, why);
}

static void pair_str(const struct proxy_hdr *h, char *out, size_t len)
{
    cr_assert(addr_format_pair(&h->pair.dst.sa, &h->pair.src.sa, out, len) > 0);
}

/* Every proper prefix of a valid header asks for more; the whole header,
 * with or without bytes after it, is DONE and consumes exactly LEN. */
static void expect_valid(const void *hdr, size_t len, struct proxy_hdr *h)
{
    const char *why;
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(parse(hdr, i, h, &why), PROXY_MORE, "prefix of %zu/%zu bytes: %s", i,
                     len, why ? why : "");
    cr_assert_eq(parse(hdr, len, h, &why), PROXY_DONE, "whole header: %s", why ? why : "");
    cr_assert_eq(h->len, len);
    unsigned char more[PROXY_V2_MAX + 8];
    cr_assert(len + 8 <= sizeof(more));
    memcpy(more, hdr, len);
    memcpy(more + len, "payload!", 8);
    cr_assert_eq(parse(more, len + 8, h, &why), PROXY_DONE);
    cr_assert_eq(h->len, len, "consumed %zu of %zu", h->len, len);
}

static void expect_error(const void *hdr, size_t len, const char *label)
{
    struct proxy_hdr h;
    const char *why = NULL;
    cr_assert_eq(parse(hdr, len, &h, &why), PROXY_ERROR, "%s: not rejected", label);
    cr_assert(why != NULL && why[0] != '\0', "%s: no reason", label);
}

#define V1(s) (s), (sizeof(s) - 1)

Test(proxy_parse, v1_tcp4)
{
    struct proxy_hdr h;
    char pair[ADDR_PAIRLEN];
    expect_valid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), &h);
    cr_assert_eq(h.version, 1);
    cr_assert(!h.local);
    pair_str(&h, pair, sizeof(pair));
    cr_assert_str_eq(pair, "{198.51.100.2:443, 192.0.2.1:56324}");
    expect_valid(V1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), &h);
    pair_str(&h, pair, sizeof(pair));
    cr_assert_str_eq(pair, "{255.255.255.255:65535, 0.0.0.0:0}");
}

Test(proxy_parse, v1_tcp6)
{
    struct proxy_hdr h;
    char pair[ADDR_PAIRLEN];
    expect_valid(V1("PROXY TCP6 2001:db8::1 2001:db8::ff 1 8080\r\n"), &h);
    pair_str(&h, pair, sizeof(pair));
    cr_assert_str_eq(pair, "{[2001:db8::ff]:8080, [2001:db8::1]:1}");
    /* The longest TCP6 line (the spec's 107 counts "UNKNOWN" in its place). */
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(strlen(longest), PROXY_V1_MAX - 3);
    expect_valid(longest, strlen(longest), &h);
}

Test(proxy_parse, v1_unknown)
{
    struct proxy_hdr h;
    expect_valid(V1("PROXY UNKNOWN\r\n"), &h);
    cr_assert(h.local);
    /* Whatever follows UNKNOWN is ignored, up to the 107-byte limit. */
    expect_valid(V1("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), &h);
    cr_assert(h.local);
    char line[PROXY_V1_MAX + 1];
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + PROXY_V1_MAX - 2, "\r\n", 2);
    expect_valid(line, PROXY_V1_MAX, &h);
    memcpy(line + PROXY_V1_MAX - 2, "x\r\n", 3);
    expect_error(line, PROXY_V1_MAX + 1, "108-byte v1 line");
}

Test(proxy_parse, v1_malformed)
{
    static const char *const bad[] = {
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY TCP4\r\n",
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
        "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",
        "PROXY TCP6 [::1] ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY TCP4 host.example 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n",
        "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "GET / HTTP/1.1\r\n",
        "SSH-2.0-OpenSSH\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i], strlen(bad[i]), bad[i]);
    /* An embedded NUL must not end an address early. */
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    expect_error(nul, sizeof(nul) - 1, "embedded NUL");
    static const char nul2[] = "PROXY TCP4 1.2.3.4 5.6.7.8\0 1 2\r\n";
    expect_error(nul2, sizeof(nul2) - 1, "embedded NUL (dst)");
}

Test(proxy_parse, v1_too_long_and_early_rejection)
{
    char line[PROXY_V1_MAX + 10];
    memset(line, '1', sizeof(line));
    memcpy(line, "PROXY TCP4 ", 11);
    struct proxy_hdr h;
    const char *why;
    /* No CRLF yet: waiting up to 106 bytes, refused at 107. */
    cr_assert_eq(parse(line, PROXY_V1_MAX - 1, &h, &why), PROXY_MORE);
    expect_error(line, PROXY_V1_MAX, "107 bytes without CRLF");
    expect_error(line, sizeof(line), "117 bytes without CRLF");
    /* Not a PROXY header: refused on the first byte that cannot match. */
    expect_error("G", 1, "first byte G");
    expect_error("PROXX", 5, "PROXX");
    expect_error("\r\n\r\n\0\r\nQUIT!", 12, "v2 signature, last byte wrong");
    expect_error("\r\n\r\n\1", 5, "v2 signature, fifth byte wrong");
    cr_assert_eq(parse("PRO", 3, &h, &why), PROXY_MORE);
    cr_assert_eq(parse("", 0, &h, &why), PROXY_MORE);
}

/* ---- version 2 -------------------------------------------------------------- */

static const unsigned char sig2[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* Header with VERCMD, FAM and BODY of BLEN bytes; length field = LENFIELD. */
static size_t v2(unsigned char *out, unsigned vercmd, unsigned fam, const void *body,
                 size_t blen, size_t lenfield)
{
    memcpy(out, sig2, 12);
    out[12] = (unsigned char)vercmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(lenfield >> 8);
    out[15] = (unsigned char)(lenfield & 0xff);
    if (blen > 0)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

/* Addresses and ports of a TCP4 body, then TLVS of TLEN bytes. */
static size_t inet_body(unsigned char *b, const char *src, const char *dst, unsigned sport,
                        unsigned dport, const void *tlvs, size_t tlen)
{
    cr_assert(inet_pton(AF_INET, src, b) == 1);
    cr_assert(inet_pton(AF_INET, dst, b + 4) == 1);
    b[8] = (unsigned char)(sport >> 8), b[9] = (unsigned char)sport;
    b[10] = (unsigned char)(dport >> 8), b[11] = (unsigned char)dport;
    memcpy(b + 12, tlvs, tlen);
    return 12 + tlen;
}

/* PP2_TYPE_AUTHORITY "example.test", then a 5-byte PP2_TYPE_NOOP. */
static const unsigned char tlvs[] = { 0x02, 0x00, 0x0c, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.',
                                      't', 'e', 's', 't', 0x04, 0x00, 0x05, 0, 0, 0, 0, 0 };

Test(proxy_parse, v2_tcp4_with_tlvs)
{
    unsigned char body[64], hdr[128];
    struct proxy_hdr h;
    char pair[ADDR_PAIRLEN];
    size_t bl = inet_body(body, "192.0.2.10", "203.0.113.5", 50001, 8080, tlvs, sizeof(tlvs));
    size_t n = v2(hdr, 0x21, 0x11, body, bl, bl);
    expect_valid(hdr, n, &h);
    cr_assert_eq(h.version, 2);
    /* Short of the whole header, the length it will need is known. */
    const char *why;
    cr_assert_eq(parse(hdr, 16, &h, &why), PROXY_MORE);
    cr_assert_eq(h.len, n);
    cr_assert_eq(parse(hdr, 15, &h, &why), PROXY_MORE);
    cr_assert_eq(h.len, 0);
    cr_assert(!h.local);
    pair_str(&h, pair, sizeof(pair));
    cr_assert_str_eq(pair, "{203.0.113.5:8080, 192.0.2.10:50001}");
    /* Without TLVs. */
    bl = inet_body(body, "10.0.0.1", "10.0.0.2", 1, 2, "", 0);
    expect_valid(hdr, v2(hdr, 0x21, 0x11, body, bl, bl), &h);
}

Test(proxy_parse, v2_tcp6)
{
    unsigned char body[64], hdr[128];
    cr_assert(inet_pton(AF_INET6, "2001:db8::10", body) == 1);
    cr_assert(inet_pton(AF_INET6, "2001:db8::20", body + 16) == 1);
    body[32] = 0xc3, body[33] = 0x50; /* 50000 */
    body[34] = 0x01, body[35] = 0xbb; /* 443 */
    memcpy(body + 36, tlvs, sizeof(tlvs));
    size_t bl = 36 + sizeof(tlvs);
    struct proxy_hdr h;
    char pair[ADDR_PAIRLEN];
    expect_valid(hdr, v2(hdr, 0x21, 0x21, body, bl, bl), &h);
    pair_str(&h, pair, sizeof(pair));
    cr_assert_str_eq(pair, "{[2001:db8::20]:443, [2001:db8::10]:50000}");
}

Test(proxy_parse, v2_local_and_unspec)
{
    unsigned char body[64], hdr[128];
    struct proxy_hdr h;
    /* LOCAL, as a balancer's health check sends it: no addresses. */
    expect_valid(hdr, v2(hdr, 0x20, 0x00, NULL, 0, 0), &h);
    cr_assert(h.local);
    /* LOCAL with TLVs, and LOCAL with an address block: both skipped. */
    expect_valid(hdr, v2(hdr, 0x20, 0x00, tlvs, sizeof(tlvs), sizeof(tlvs)), &h);
    cr_assert(h.local);
    size_t bl = inet_body(body, "1.1.1.1", "2.2.2.2", 1, 2, tlvs, sizeof(tlvs));
    expect_valid(hdr, v2(hdr, 0x20, 0x11, body, bl, bl), &h);
    cr_assert(h.local);
    /* PROXY over UNSPEC: the connection's own endpoints stand. */
    expect_valid(hdr, v2(hdr, 0x21, 0x00, NULL, 0, 0), &h);
    cr_assert(h.local);
}

Test(proxy_parse, v2_longest_header)
{
    static unsigned char hdr[PROXY_V2_MAX];
    unsigned char body[16];
    size_t tl = 65535 - 12 - 3; /* one NOOP TLV filling the rest */
    inet_body(body, "1.2.3.4", "5.6.7.8", 9, 10, "", 0);
    memcpy(hdr + 16, body, 12);
    hdr[28] = 0x04, hdr[29] = (unsigned char)(tl >> 8), hdr[30] = (unsigned char)tl;
    v2(hdr, 0x21, 0x11, NULL, 0, 65535);
    struct proxy_hdr h;
    const char *why;
    cr_assert_eq(parse(hdr, PROXY_V2_MAX - 1, &h, &why), PROXY_MORE);
    cr_assert_eq(parse(hdr, PROXY_V2_MAX, &h, &why), PROXY_DONE, "%s", why ? why : "");
    cr_assert_eq(h.len, PROXY_V2_MAX);
}

Test(proxy_parse, v2_malformed)
{
    unsigned char body[64], hdr[128];
    size_t bl = inet_body(body, "1.2.3.4", "5.6.7.8", 1, 2, "", 0);
    struct { unsigned vercmd, fam; size_t lenfield; const char *label; } bad[] = {
        { 0x11, 0x11, 12, "version 1" },
        { 0x31, 0x11, 12, "version 3" },
        { 0x01, 0x11, 12, "version 0" },
        { 0x22, 0x11, 12, "command 2" },
        { 0x2f, 0x11, 12, "command 15" },
        { 0x21, 0x12, 12, "INET over DGRAM" },
        { 0x21, 0x10, 12, "INET over UNSPEC transport" },
        { 0x21, 0x13, 12, "INET over transport 3" },
        { 0x21, 0x31, 12, "AF_UNIX" },
        { 0x21, 0x41, 12, "family 4" },
        { 0x21, 0xf1, 12, "family 15" },
        { 0x21, 0x01, 12, "UNSPEC with a transport" },
        { 0x21, 0x11, 11, "INET length 11" },
        { 0x21, 0x11, 0, "INET length 0" },
        { 0x21, 0x21, 12, "INET6 length 12" },
        { 0x21, 0x21, 35, "INET6 length 35" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* Refused as soon as the fixed 16 bytes are in, whatever follows. */
        v2(hdr, bad[i].vercmd, bad[i].fam, body, bl, bad[i].lenfield);
        expect_error(hdr, 16, bad[i].label);
        expect_error(hdr, 16 + bl, bad[i].label);
    }
    /* Version and command are judged on byte 13 alone. */
    v2(hdr, 0x11, 0x11, body, bl, bl);
    expect_error(hdr, 13, "version 1, 13 bytes");

    /* TLVs that do not exactly fill the header. */
    static const unsigned char overrun[] = { 0x02, 0x00, 0x05, 'a', 'b' };
    static const unsigned char stub[] = { 0x02, 0x00 };
    static const unsigned char trail[] = { 0x04, 0x00, 0x00, 0x04 };
    const struct { const unsigned char *t; size_t n; const char *label; } tl[] = {
        { overrun, sizeof(overrun), "TLV longer than the header" },
        { stub, sizeof(stub), "2-byte TLV stub" },
        { trail, sizeof(trail), "byte after the last TLV" },
    };
    for (size_t i = 0; i < sizeof(tl) / sizeof(tl[0]); i++) {
        bl = inet_body(body, "1.2.3.4", "5.6.7.8", 1, 2, tl[i].t, tl[i].n);
        expect_error(hdr, v2(hdr, 0x21, 0x11, body, bl, bl), tl[i].label);
    }
}

/* ---- handoffd --proxy-protocol ----------------------------------------------- */

static void start(struct server *s, const char *proto)
{
    const char *args[] = { "--listen", "127.0.0.1:0", "--workers", "2", "--protocol", proto,
                           "--proxy-protocol", "--proxy-timeout", "1", NULL };
    cr_assert_eq(server_start(s, args), 0, "server did not start");
}

static void stop(struct server *s)
{
    int st;
    cr_assert_eq(server_stop(s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

/* Send HDR (in two writes PAUSE_MS apart when SPLIT > 0) and return the
 * whoami line. */
static void whoami_via(int port, const void *hdr, size_t len, size_t split, int pause_ms,
                       char *line, size_t linelen)
{
    int fd = tcp_connect("127.0.0.1", "127.0.0.1", port);
    cr_assert(fd >= 0);
    if (split > 0) {
        cr_assert(write_all(fd, hdr, split) == 0);
        usleep((useconds_t)pause_ms * 1000);
    }
    cr_assert(write_all(fd, (const char *)hdr + split, len - split) == 0);
    cr_assert(read_line(fd, line, linelen, 5000) > 0, "no whoami line");
    close(fd);
}

static void expect_pair(const char *line, const char *pair)
{
    cr_assert(strncmp(line, pair, strlen(pair)) == 0 && line[strlen(pair)] == ' ',
              "got '%s', want '%s ...'", line, pair);
    cr_assert(strstr(line, " worker=") != NULL, "%s", line);
}

Test(proxy_server, whoami_shows_the_headers_pair, .timeout = 30)
{
    struct server s;
    char line[256];
    start(&s, "whoami");
    static const char v1[] = "PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\n";
    whoami_via(s.port, v1, strlen(v1), 0, 0, line, sizeof(line));
    expect_pair(line, "{198.51.100.9:443, 192.0.2.7:40000}");
    static const char v1_6[] = "PROXY TCP6 2001:db8::7 2001:db8::9 40001 8443\r\n";
    whoami_via(s.port, v1_6, strlen(v1_6), 20, 100, line, sizeof(line));
    expect_pair(line, "{[2001:db8::9]:8443, [2001:db8::7]:40001}");

    unsigned char body[64], hdr[128];
    size_t bl = inet_body(body, "203.0.113.77", "198.51.100.1", 61000, 80, tlvs, sizeof(tlvs));
    size_t n = v2(hdr, 0x21, 0x11, body, bl, bl);
    whoami_via(s.port, hdr, n, 0, 0, line, sizeof(line));
    expect_pair(line, "{198.51.100.1:80, 203.0.113.77:61000}");
    /* Split inside the fixed part and again inside the addresses. */
    whoami_via(s.port, hdr, n, 7, 100, line, sizeof(line));
    expect_pair(line, "{198.51.100.1:80, 203.0.113.77:61000}");

    /* LOCAL (a health check) and UNKNOWN keep the socket's own pair. */
    int fd = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    char want[ADDR_PAIRLEN];
    cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
    cr_assert(write_all(fd, hdr, v2(hdr, 0x20, 0x00, NULL, 0, 0)) == 0);
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0);
    close(fd);
    expect_pair(line, want);
    fd = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
    cr_assert(write_all(fd, "PROXY UNKNOWN\r\n", 15) == 0);
    cr_assert(read_line(fd, line, sizeof(line), 5000) > 0);
    close(fd);
    expect_pair(line, want);
    stop(&s);
}

Test(proxy_server, bytes_after_the_header_reach_the_protocol, .timeout = 30)
{
    struct server s;
    start(&s, "echo");
    /* Header and request in one segment: the protocol must get the rest. */
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nhello\n");
    int fd = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    cr_assert(write_all(fd, msg, (size_t)n) == 0);
    char got[32];
    cr_assert(read_line(fd, got, sizeof(got), 5000) > 0);
    cr_assert_str_eq(got, "hello");
    cr_assert(write_all(fd, "again\n", 6) == 0);
    cr_assert(read_line(fd, got, sizeof(got), 5000) > 0);
    cr_assert_str_eq(got, "again");
    close(fd);

    /* A v2 header with 3000 bytes of TLVs, in pieces, the request glued to
     * the last piece. */
    static unsigned char big[16 + 12 + 3 + 3000 + 6];
    size_t tl = 3000;
    inet_body(big + 16, "192.0.2.1", "192.0.2.2", 1000, 2000, "", 0);
    big[28] = 0x04, big[29] = (unsigned char)(tl >> 8), big[30] = (unsigned char)tl;
    size_t hlen = v2(big, 0x21, 0x11, NULL, 0, 12 + 3 + tl) + 12 + 3 + tl;
    memcpy(big + hlen, "hello\n", 6);
    fd = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    static const size_t cuts[] = { 10, 200, 1500, sizeof(big) };
    for (size_t i = 0, at = 0; i < 4; at = cuts[i++]) {
        cr_assert(write_all(fd, big + at, cuts[i] - at) == 0);
        usleep(30000);
    }
    cr_assert(read_line(fd, got, sizeof(got), 5000) > 0);
    cr_assert_str_eq(got, "hello");
    close(fd);
    stop(&s);
}

/* Connect, send DATA (may be empty), and measure how long until the server
 * closes without having written anything. Returns ms, or -1. */
static long closed_after(int port, const void *data, size_t len)
{
    int fd = tcp_connect("127.0.0.1", "127.0.0.1", port);
    cr_assert(fd >= 0);
    uint64_t t0 = now_ms();
    if (len > 0)
        cr_assert(write_all(fd, data, len) == 0);
    char buf[64];
    ssize_t r = read_to_eof(fd, buf, sizeof(buf), 5000);
    close(fd);
    cr_assert_eq(r, 0, "server wrote %zd bytes before closing (or never closed)", r);
    return (long)(now_ms() - t0);
}

Test(proxy_server, missing_slow_or_malformed_header_closes, .timeout = 40)
{
    struct server s;
    start(&s, "whoami");
    /* Nothing sent: closed at the 1 s --proxy-timeout. */
    long ms = closed_after(s.port, "", 0);
    cr_assert(ms >= 900 && ms < 3000, "no header: closed after %ld ms", ms);
    /* Malformed: closed at once, well before the deadline. */
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1000 70000\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1000\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\n",
        "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0b",  /* INET with 11 bytes */
        "\r\n\r\n\0\r\nQUIT\n\x12\x11\x00\x0c",  /* version 1 */
    };
    static const size_t bad_len[] = { 0, 0, 0, 0, 16, 16 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = bad_len[i] ? bad_len[i] : strlen(bad[i]);
        ms = closed_after(s.port, bad[i], len);
        cr_assert(ms < 800, "malformed header %zu: closed after %ld ms", i, ms);
    }
    /* A header trickled in never gets more than the deadline in total. */
    int fd = tcp_connect("127.0.0.1", "127.0.0.1", s.port);
    cr_assert(fd >= 0);
    uint64_t t0 = now_ms();
    const char *slow = "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\n";
    bool closed = false;
    for (size_t i = 0; i < strlen(slow) && now_ms() - t0 < 4000; i++) {
        if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1) {
            closed = true;
            break;
        }
        usleep(150000);
    }
    char buf[64];
    if (!closed)
        closed = read_to_eof(fd, buf, sizeof(buf), 3000) == 0;
    ms = (long)(now_ms() - t0);
    close(fd);
    cr_assert(closed && ms < 2500, "trickled header: closed=%d after %ld ms", closed, ms);
    /* The server is still fine. */
    char line[256];
    whoami_via(s.port, slow, strlen(slow), 0, 0, line, sizeof(line));
    expect_pair(line, "{192.0.2.2:2000, 192.0.2.1:1000}");
    stop(&s);
}
