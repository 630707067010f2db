/* test_addr: --listen parsing (every accepted form and each bad one) and
 * the socket-pair notation for IPv4, IPv6 and IPv4-mapped addresses. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

static unsigned port_of(const struct addr_listen *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void parse_ok(const char *text, int family, bool dual, unsigned port, const char *shown)
{
    struct addr_listen a;
    char err[256] = "", buf[ADDR_STRLEN];
    cr_assert_eq(addr_parse_listen(text, &a, err, sizeof(err)), 0, "%s: %s", text, err);
    cr_assert_eq(a.ss.ss_family, family, "%s family", text);
    cr_assert_eq(a.dual_stack, dual, "%s dual", text);
    cr_assert_eq(port_of(&a), port, "%s port", text);
    cr_assert(addr_format_wild((struct sockaddr *)&a.ss, buf, sizeof(buf)) > 0);
    cr_assert_str_eq(buf, shown, "%s shown as %s", text, buf);
}

Test(addr, accepted_forms)
{
    parse_ok("8080", AF_INET6, true, 8080, "*:8080");
    parse_ok("0", AF_INET6, true, 0, "*:0");
    parse_ok("*:21", AF_INET6, true, 21, "*:21");
    parse_ok("0.0.0.0:80", AF_INET, false, 80, "*:80");
    parse_ok("[::]:443", AF_INET6, true, 443, "*:443");
    parse_ok("127.0.0.3:9000", AF_INET, false, 9000, "127.0.0.3:9000");
    parse_ok("[::1]:65535", AF_INET6, false, 65535, "[::1]:65535");
    parse_ok("localhost:7", AF_INET, false, 7, "127.0.0.1:7");
}

Test(addr, bad_forms_rejected_with_reason)
{
    static const char *const bad[] = {
        "", "65536", "-1", "80a", "*:", ":80", "[::1]", "[::1]80", "[]:80", "::1:80",
        "1.2.3.4:99999", "[zz::]:80", "host:port", "123456", "*:+80", "[::1]:",
        "no-such-host.invalid:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct addr_listen a;
        char err[256] = "";
        cr_assert_eq(addr_parse_listen(bad[i], &a, err, sizeof(err)), -1, "'%s' accepted", bad[i]);
        cr_assert(err[0] != '\0', "'%s' gave no reason", bad[i]);
    }
}

Test(addr, pair_notation)
{
    struct sockaddr_in l4 = { .sin_family = AF_INET, .sin_port = htons(21) };
    struct sockaddr_in p4 = { .sin_family = AF_INET, .sin_port = htons(1500) };
    inet_pton(AF_INET, "206.168.112.219", &l4.sin_addr);
    inet_pton(AF_INET, "198.69.10.2", &p4.sin_addr);
    char buf[ADDR_PAIRLEN];
    cr_assert(addr_format_pair((struct sockaddr *)&l4, (struct sockaddr *)&p4, buf, sizeof(buf)) > 0);
    cr_assert_str_eq(buf, "{206.168.112.219:21, 198.69.10.2:1500}");

    struct sockaddr_in6 l6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
    struct sockaddr_in6 p6 = { .sin6_family = AF_INET6, .sin6_port = htons(40000) };
    inet_pton(AF_INET6, "::1", &l6.sin6_addr);
    inet_pton(AF_INET6, "2001:db8::5", &p6.sin6_addr);
    cr_assert(addr_format_pair((struct sockaddr *)&l6, (struct sockaddr *)&p6, buf, sizeof(buf)) > 0);
    cr_assert_str_eq(buf, "{[::1]:8080, [2001:db8::5]:40000}");

    /* IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d */
    inet_pton(AF_INET6, "::ffff:127.0.0.3", &l6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:127.0.0.2", &p6.sin6_addr);
    cr_assert(addr_format_pair((struct sockaddr *)&l6, (struct sockaddr *)&p6, buf, sizeof(buf)) > 0);
    cr_assert_str_eq(buf, "{127.0.0.3:8080, 127.0.0.2:40000}");

    struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(21) };
    cr_assert(addr_format_listen((struct sockaddr *)&any, buf, sizeof(buf)) > 0);
    cr_assert_str_eq(buf, "{*:21, *:*}");
    cr_assert_eq(addr_format_pair((struct sockaddr *)&l4, (struct sockaddr *)&p4, buf, 10), -1);
}
