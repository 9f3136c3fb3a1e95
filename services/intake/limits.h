/* limits.h - per-address limits of intake's HTTP front: connections at once and
 * requests per minute for each client address, and which address a request comes
 * from when intake sits behind a reverse proxy.
 *
 * The client address is the TCP peer. Only when the peer is one of the configured
 * trusted proxies (LEADFLOW_TRUSTED_PROXIES: addresses or CIDR blocks, IPv4 or IPv6)
 * is X-Forwarded-For read: from its right end, the first address that is not itself
 * a trusted proxy. Anyone else's X-Forwarded-For is ignored, so a client cannot pick
 * the address it is limited as. A trusted proxy's own connections are not counted
 * against the per-address connection cap (it carries many clients). */
#ifndef LF_INTAKE_LIMITS_H
#define LF_INTAKE_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct lf_limits lf_limits_t;

/* Creates the limits: max_conns connections per address at once (0: no cap),
 * per_minute requests per address and minute (0: no limit; burst = one minute's
 * worth), trusted: comma-separated addresses or CIDR blocks, or NULL/"" for none.
 * Returns NULL with a one-line reason in err when trusted cannot be parsed. Caller
 * owns the result. */
lf_limits_t *lf_limits_new(int max_conns, int per_minute, const char *trusted, char *err,
                           size_t errsz);
void lf_limits_destroy(lf_limits_t **self_p);

/* Accept policy: 1 when a connection from addr may be accepted (under the cap),
 * 0 when the address has max_conns open already. */
int lf_limits_accept(lf_limits_t *self, const struct sockaddr *addr);
/* Counts a connection opened (delta 1) or closed (delta -1). */
void lf_limits_count(lf_limits_t *self, const struct sockaddr *addr, int delta);

/* Writes the client address of a request (peer, or X-Forwarded-For when the peer is
 * a trusted proxy) into out as text. */
void lf_limits_client(const lf_limits_t *self, const struct sockaddr *peer,
                      const char *xff, char *out, size_t outsz);

/* Token bucket of a client address. Returns 0 when the request may go on, otherwise
 * the seconds to wait (>= 1) for Retry-After. */
int lf_limits_rate(lf_limits_t *self, const char *client, int64_t now_ms);

#endif
