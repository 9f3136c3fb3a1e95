/* envelope.h - test support: listen to a service's ZeroMQ events and check that each
 * envelope published is the one lf_envelope() builds for the outbox row it names. */
#ifndef LF_TEST_ENVELOPE_H
#define LF_TEST_ENVELOPE_H

#include <jansson.h>

#include "harness.h"

typedef struct {
    void *ctx; /* the ZeroMQ context */
    void *sub; /* the SUB socket */
} lf_h_sub_t;

/* Subscribes to the events of service (LF_H_INTAKE, LF_H_ROUTER or LF_H_SCHEDULER)
 * whose type starts with prefix ("" for all), receives waiting at most timeout_ms,
 * and waits until the subscription has reached the publisher. */
lf_h_sub_t lf_h_sub_open(lf_h_t *h, int service, const char *prefix, int timeout_ms);
void lf_h_sub_close(lf_h_sub_t *s);
/* Receives the next envelope, checks (cr_expect) that its type is want_type and that it
 * equals, as jsonb, lf_envelope() of the outbox row its "seq" names (cr_assert that the
 * row exists). Returns the parsed envelope (caller owns). */
json_t *lf_h_recv_outbox_envelope(lf_h_t *h, lf_h_sub_t *s, const char *want_type);

#endif
