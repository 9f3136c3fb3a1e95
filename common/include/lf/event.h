/* event.h - the one event envelope every service uses, and the ZeroMQ sockets that
 * carry it.
 *
 * An event is a row of the outbox table in PostgreSQL. On the wire it is two
 * frames: the event type (the SUB topic) and the envelope as compact JSON:
 *   {"v":1,"seq":<outbox id>,"event_id":"<uuid>","type":"lead.created",
 *    "lead_id":"<id>","at":"<RFC 3339>","payload":{...}}
 * The envelope is built by the SQL function lf_envelope() so the sweep path and the
 * live path cannot disagree on its shape. ZeroMQ is only the doorbell: a dropped
 * message is found again by the consumer's sweep of the outbox. */
#ifndef LF_EVENT_H
#define LF_EVENT_H

#include <jansson.h>

#include "lf/event_head.h"

#define LF_EVENT_VERSION 1

/* Binds a PUB socket. High-water mark 100k; LINGER 0 because whatever is still
 * queued at shutdown is in the outbox and will be swept. Returns NULL on error. */
void *lf_zmq_pub(void *ctx, const char *endpoint);
/* Connects a SUB socket to each endpoint in the NULL-terminated list and subscribes
 * to each topic prefix (NULL list = everything). Returns NULL on error. */
void *lf_zmq_sub(void *ctx, const char *const *endpoints, const char *const *topics);

/* Sends an envelope without blocking. A full queue or absent peer drops the
 * message (the outbox keeps it). Returns 0 sent, -1 dropped. */
int lf_event_send(void *sock, const json_t *envelope);
/* Sends a raw envelope text whose type is known. Returns 0 sent, -1 dropped. */
int lf_event_send_raw(void *sock, const char *type, const char *json, size_t len);
/* Receives one event without blocking. Returns a new envelope (caller owns), or
 * NULL when nothing is waiting or the message is malformed (it is discarded and
 * logged: its outbox row will be swept). */
json_t *lf_event_recv(void *sock);
/* The same, read only as far as a consumer needs (lf/event_head.h): seq, type and
 * lead_id (keep NULL: the light envelope the sweep gives a consumer of seqs,
 * LF_BATCH_SEQ_ONLY), and the fields keep names for events of its type. A text the head
 * reader cannot judge, finds malformed (dropped and logged as lf_event_recv does), or of
 * another type than keep's, is parsed whole. */
json_t *lf_event_recv_head(void *sock, const lf_head_keep_t *keep);

/* Accessors that tolerate a malformed envelope (they return NULL / -1). Borrowed. */
const char *lf_event_type(const json_t *env);
const char *lf_event_lead(const json_t *env);
long long lf_event_seq(const json_t *env);
const json_t *lf_event_payload(const json_t *env);

#endif
