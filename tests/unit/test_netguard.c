/* netguard: which addresses notification destinations may reach, per policy. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "lf/netguard.h"

static int s_ok(const char *ip, int policy) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        cr_assert_fail("bad test address %s", ip);
    return lf_net_addr_allowed((struct sockaddr *)&ss, policy);
}

Test(netguard, public_addresses_only_by_default) {
    const char *refused[] = {"127.0.0.1",
                             "127.8.9.10",
                             "10.0.0.1",
                             "172.16.0.1",
                             "172.31.255.1",
                             "192.168.1.1",
                             "169.254.169.254",
                             "100.64.0.1",
                             "0.0.0.0",
                             "224.0.0.1",
                             "255.255.255.255",
                             "192.0.0.8",
                             "198.18.0.1",
                             "::1",
                             "::",
                             "fc00::1",
                             "fd12::1",
                             "fe80::1",
                             "ff02::1",
                             "::ffff:10.0.0.1",
                             "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_expect_eq(s_ok(refused[i], LF_NET_PUBLIC), 0, "%s allowed", refused[i]);
    const char *allowed[] = {"1.1.1.1", "172.15.0.1",   "172.32.0.1",    "100.128.0.1",
                             "8.8.8.8", "2400:3200::1", "::ffff:8.8.8.8"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        cr_expect_eq(s_ok(allowed[i], LF_NET_PUBLIC), 1, "%s refused", allowed[i]);
}

Test(netguard, loopback_and_private_policies) {
    cr_expect_eq(s_ok("127.0.0.1", LF_NET_LOOPBACK), 1);
    cr_expect_eq(s_ok("::1", LF_NET_LOOPBACK), 1);
    cr_expect_eq(s_ok("10.0.0.1", LF_NET_LOOPBACK), 0);
    cr_expect_eq(s_ok("169.254.169.254", LF_NET_LOOPBACK), 0);
    cr_expect_eq(s_ok("10.0.0.1", LF_NET_PRIVATE), 1);
    cr_expect_eq(lf_net_policy_parse("none"), LF_NET_PUBLIC);
    cr_expect_eq(lf_net_policy_parse("loopback"), LF_NET_LOOPBACK);
    cr_expect_eq(lf_net_policy_parse("private"), LF_NET_PRIVATE);
    cr_expect_eq(lf_net_policy_parse("all"), -1);
}

Test(netguard, urls_are_checked_by_their_host) {
    char why[256];
    cr_expect_eq(
        lf_net_url_allowed("http://127.0.0.1:9/x", LF_NET_PUBLIC, why, sizeof why), -1);
    cr_expect(strstr(why, "127.0.0.1"), "%s", why);
    cr_expect_eq(
        lf_net_url_allowed("http://127.0.0.1:9/x", LF_NET_LOOPBACK, why, sizeof why), 0);
    cr_expect_eq(lf_net_url_allowed("http://[::1]:9/x", LF_NET_PUBLIC, why, sizeof why),
                 -1);
    cr_expect_eq(lf_net_url_allowed("http://localhost/x", LF_NET_PUBLIC, why, sizeof why),
                 -1);
    cr_expect_eq(
        lf_net_url_allowed("https://8.8.8.8/hook", LF_NET_PUBLIC, why, sizeof why), 0);
    cr_expect_eq(lf_net_url_allowed("ftp://8.8.8.8/x", LF_NET_PUBLIC, why, sizeof why),
                 -1);
    cr_expect_eq(
        lf_net_url_allowed("http://user:pw@8.8.8.8/x", LF_NET_PUBLIC, why, sizeof why),
        -1);
    cr_expect_eq(lf_net_url_allowed("http:///x", LF_NET_PUBLIC, why, sizeof why), -1);
    cr_expect_eq(lf_net_url_allowed("http://10.0.0.1/x", LF_NET_PRIVATE, why, sizeof why),
                 0);
}
