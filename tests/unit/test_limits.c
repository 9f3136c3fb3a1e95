/* test_limits.c - per-address limits and the client address behind trusted proxies. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "../../services/intake/limits.h"

static struct sockaddr_in s_v4(const char *ip) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

Test(limits, x_forwarded_for_only_from_trusted_proxies) {
    char err[160], out[64];
    lf_limits_t *l = lf_limits_new(0, 0, "10.0.0.0/8, 192.168.1.5", err, sizeof err);
    cr_assert(l, "%s", err);
    struct sockaddr_in stranger = s_v4("203.0.113.9"), proxy = s_v4("10.1.2.3"),
                       proxy2 = s_v4("192.168.1.5");
    const struct {
        const struct sockaddr_in *peer;
        const char *xff, *expect;
    } cases[] = {
        /* a client's own X-Forwarded-For is ignored */
        {&stranger, "1.2.3.4", "203.0.113.9"},
        {&stranger, NULL, "203.0.113.9"},
        /* through a proxy: the first hop from the right that is not a proxy */
        {&proxy, "198.51.100.7", "198.51.100.7"},
        {&proxy, "6.6.6.6, 198.51.100.7", "198.51.100.7"},
        {&proxy, "198.51.100.7, 192.168.1.5", "198.51.100.7"},
        {&proxy2, " 2001:db8::1 ", "2001:db8::1"},
        /* garbage, or only proxies: the proxy's own address */
        {&proxy, "not-an-ip", "10.1.2.3"},
        {&proxy, "10.9.9.9", "10.1.2.3"},
        {&proxy, "", "10.1.2.3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_limits_client(l, (const struct sockaddr *)cases[i].peer, cases[i].xff, out,
                         sizeof out);
        cr_expect_str_eq(out, cases[i].expect, "case %zu", i);
    }
    lf_limits_destroy(&l);
    cr_expect_null(l);
    cr_expect_null(lf_limits_new(0, 0, "10.0.0.0/33", err, sizeof err));
    cr_expect(strstr(err, "10.0.0.0/33"), "%s", err);
    cr_expect_null(lf_limits_new(0, 0, "proxy.local", err, sizeof err));
}

Test(limits, connections_per_address_are_capped_except_for_proxies) {
    char err[160];
    lf_limits_t *l = lf_limits_new(2, 0, "10.0.0.1", err, sizeof err);
    struct sockaddr_in a = s_v4("203.0.113.9"), b = s_v4("203.0.113.10"),
                       p = s_v4("10.0.0.1");
    for (int i = 0; i < 2; i++) {
        cr_expect(lf_limits_accept(l, (struct sockaddr *)&a));
        lf_limits_count(l, (struct sockaddr *)&a, 1);
    }
    cr_expect_not(lf_limits_accept(l, (struct sockaddr *)&a), "third connection refused");
    cr_expect(lf_limits_accept(l, (struct sockaddr *)&b), "another address is not");
    lf_limits_count(l, (struct sockaddr *)&a, -1);
    cr_expect(lf_limits_accept(l, (struct sockaddr *)&a), "a closed one frees a place");
    for (int i = 0; i < 5; i++)
        lf_limits_count(l, (struct sockaddr *)&p, 1);
    cr_expect(lf_limits_accept(l, (struct sockaddr *)&p),
              "a trusted proxy is not capped");
    lf_limits_destroy(&l);
}

Test(limits, request_rate_per_address) {
    char err[160];
    lf_limits_t *l = lf_limits_new(0, 60, NULL, err, sizeof err); /* one a second */
    int ok = 0, wait = 0;
    for (int i = 0; i < 70; i++) {
        int w = lf_limits_rate(l, "203.0.113.9", 1000);
        ok += w == 0;
        if (w)
            wait = w;
    }
    cr_expect_eq(ok, 60, "a minute's worth at once");
    cr_expect(wait >= 1 && wait <= 2, "Retry-After %d", wait);
    cr_expect_eq(lf_limits_rate(l, "203.0.113.10", 1000), 0, "per address");
    cr_expect_eq(lf_limits_rate(l, "203.0.113.9", 3000), 0, "refilled after two seconds");
    lf_limits_destroy(&l);
    l = lf_limits_new(0, 0, "", err, sizeof err);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(lf_limits_rate(l, "203.0.113.9", 1000), 0, "0 is no limit");
    lf_limits_destroy(&l);
}
