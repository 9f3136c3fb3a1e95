/* netguard.h - which addresses outgoing notifications may reach. A destination URL is
 * typed in by a rep; without a guard it could point the scheduler at the database,
 * the metadata service of a cloud or anything else on the private network. Intake
 * checks a URL when it is set, the scheduler checks the address it really connects
 * to (DNS may have changed in between). */
#ifndef LF_NETGUARD_H
#define LF_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

typedef enum {
    LF_NET_PUBLIC = 0, /* public addresses only (the default; compose) */
    LF_NET_LOOPBACK,   /* also 127.0.0.0/8 and ::1 (make run, tests) */
    LF_NET_PRIVATE     /* anything, private ranges included (an intranet robot) */
} lf_net_policy_t;

/* "none" -> LF_NET_PUBLIC, "loopback", "private"; -1 when unknown. */
int lf_net_policy_parse(const char *s);
/* 1 when the policy lets us connect to sa, 0 otherwise. */
int lf_net_addr_allowed(const struct sockaddr *sa, int policy);
/* Checks an http(s) URL: scheme, host present, and every address the host resolves
 * to allowed by the policy. Returns 0, or -1 with the reason in why. */
int lf_net_url_allowed(const char *url, int policy, char *why, size_t whysz);

#endif
