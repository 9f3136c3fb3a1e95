/* netguard.c - see netguard.h. Addresses that are never "the internet": loopback,
 * RFC 1918, carrier-grade NAT, link-local (cloud metadata lives at 169.254.169.254),
 * unique-local and link-local IPv6, multicast, reserved and unspecified ranges, and
 * IPv4 addresses mapped into IPv6. */
#include "lf/netguard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int lf_net_policy_parse(const char *s) {
    if (!s || !strcmp(s, "none"))
        return LF_NET_PUBLIC;
    if (!strcmp(s, "loopback"))
        return LF_NET_LOOPBACK;
    if (!strcmp(s, "private"))
        return LF_NET_PRIVATE;
    return -1;
}

/* 0 public, 1 loopback, 2 other non-public. */
static int s_class_v4(uint32_t a) {
    if ((a >> 24) == 127)
        return 1;
    if ((a >> 24) == 0 || (a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) ||
        (a >> 16) == (192u << 8 | 168) || (a >> 22) == (100u << 2 | 1) ||
        (a >> 16) == (169u << 8 | 254) || (a >> 8) == (192u << 16) ||
        (a >> 17) == (198u << 7 | 18 >> 1) || (a >> 28) >= 14)
        return 2;
    return 0;
}

int lf_net_addr_allowed(const struct sockaddr *sa, int policy) {
    int cls;
    if (policy == LF_NET_PRIVATE)
        return 1;
    if (sa->sa_family == AF_INET) {
        cls = s_class_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    } else if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char loop[16] = {[15] = 1}, any[16] = {0};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        if (!memcmp(b, loop, 16))
            cls = 1;
        else if (!memcmp(b, mapped, 12))
            cls = s_class_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                             (uint32_t)b[14] << 8 | b[15]);
        else if (!memcmp(b, any, 16) || (b[0] & 0xfe) == 0xfc ||
                 (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff)
            cls = 2;
        else
            cls = 0;
    } else {
        return 0;
    }
    return cls == 0 || (cls == 1 && policy == LF_NET_LOOPBACK);
}

int lf_net_url_allowed(const char *url, int policy, char *why, size_t whysz) {
    const char *p;
    if (!url || (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7))) {
        snprintf(why, whysz, "must be an http:// or https:// URL");
        return -1;
    }
    p = strstr(url, "://") + 3;
    size_t n = strcspn(p, "/?#");
    char host[256];
    if (n == 0 || n >= sizeof host) {
        snprintf(why, whysz, "has no host");
        return -1;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    if (strchr(host, '@')) {
        snprintf(why, whysz, "must not carry credentials before the host");
        return -1;
    }
    char *port = NULL;
    char *h = host;
    if (*h == '[') { /* [v6]:port */
        char *close = strchr(h, ']');
        if (!close) {
            snprintf(why, whysz, "has a broken IPv6 host");
            return -1;
        }
        *close = '\0';
        h++;
        if (close[1] == ':')
            port = close + 2;
    } else if ((port = strchr(h, ':'))) {
        *port++ = '\0';
    }
    if (policy == LF_NET_PRIVATE)
        return 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(h, port && *port ? port : NULL, &hints, &res);
    if (rc != 0) {
        snprintf(why, whysz, "host %s cannot be resolved (%s)", h, gai_strerror(rc));
        return -1;
    }
    int ok = 1;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (!lf_net_addr_allowed(a->ai_addr, policy))
            ok = 0;
    freeaddrinfo(res);
    if (!ok) {
        snprintf(why, whysz,
                 "host %s is a private, loopback or reserved address (refused unless "
                 "LEADFLOW_NOTIFY_ALLOW_PRIVATE allows it)",
                 h);
        return -1;
    }
    return 0;
}
