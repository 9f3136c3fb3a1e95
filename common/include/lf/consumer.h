/* consumer.h - exactly-once processing of outbox events.
 *
 * The guarantee: a consumer applies each outbox event of its types exactly once in
 * effect, whatever the wire does (loss, duplicates, delay), whatever crashes, and
 * however many instances of it run. It holds because
 *   - every event is a row of the outbox, written in the transaction of the change it
 *     announces (lf_outbox_add, or the producers' SQL functions);
 *   - applying an event acknowledges it (consumer_acks: one row per consumer and
 *     batch, holding the batch's outbox seqs) in the same transaction as the event's
 *     effect, so an event is either applied and acknowledged or neither; a second
 *     delivery finds the ack and does nothing, and a second transaction acknowledging
 *     the same event at the same time (a twin instance) waits for the first and then
 *     leaves it out (no two ack rows of a consumer share a seq: an exclusion
 *     constraint);
 *   - the sweep reads the outbox for events of the consumer's types without an ack,
 *     which brings back whatever the wire or a crash lost;
 *   - the cursor (consumer_cursors.safe_xid, a transaction id) keeps the acks small:
 *     it never passes the oldest transaction still running
 *     (pg_snapshot_xmin(pg_current_snapshot())) nor an unacknowledged event, acks
 *     below it are pruned, and no ack is ever inserted below it (such an event is
 *     done; it can only come from a stale queue).
 *
 * Limits: a writing transaction that stays open holds every cursor (the acks grow,
 * the sweep reads more); services bound theirs (lf/db.h: statement and
 * idle-in-transaction timeouts) and intake's /metrics shows each consumer's lag.
 * Handlers must be deterministic in effect: a batch that rolls back is applied again.
 * Handlers make no network call (HTTP, Redis) inside the transaction: they queue the
 * work and do it once the batch committed (lf_consumer_on_batch,
 * lf_consumer_publish_after_commit), so a slow peer cannot hold the transaction - and
 * every cursor - open. Locks: take them in the project's one order (leads by id, then
 * reps rows; docs/reliability.md), all of a batch up front in lf_consumer_on_begin.
 *
 * Writing a consumer:
 *   c = lf_consumer_new(db, "mine", types, fn, arg);   one name per kind of consumer
 *   and the loop of lf/loop.h, which calls lf_consumer_handle for ZeroMQ envelopes,
 *   lf_consumer_sweep every sweep interval and lf_consumer_advance every few seconds.
 * fn runs inside the batch's transaction on `db`: it writes its effect with db and
 * returns 0, or -1 to have the event parked (lf_consumer_set_retry) - unless its
 * failing statement lost a race (a deadlock, a lock or statement timeout: see
 * lf_event_fn), which rolls the batch back for the event to be tried again, a bounded
 * number of times. Two twin
 * instances of a consumer share its name and cooperate. Never delete a
 * consumer_cursors row: the cursor's position is what says the pruned events are
 * done. */
#ifndef LF_CONSUMER_H
#define LF_CONSUMER_H

#include <jansson.h>
#include <stddef.h>

#include "lf/db.h"

typedef struct lf_consumer lf_consumer_t;

/* Applies one event inside the consumer's open transaction (on db). Returns 0 when
 * applied, -1 on a failure: the event's changes are rolled back to a savepoint.
 * If the connection is still good the event is parked (a poison event must not block
 * the ones behind it); if the connection broke, or the failing statement's SQLSTATE
 * says the transaction lost a race or the server went short (classes 40, 57, 08, 53
 * and 55P03: a deadlock, a serialization failure, a lock or statement timeout), the
 * whole batch is rolled back and the event tried again after a backoff, while the
 * others go on; after lf_consumer_set_retry's number of tries it is parked too. */
typedef int (*lf_event_fn)(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

/* Borrows db (the consumer's own connection) and types (NULL-terminated, static).
 * Caller owns the result. */
lf_consumer_t *lf_consumer_new(lf_db_t *db, const char *name, const char *const *types,
                               lf_event_fn fn, void *arg);
/* A clean exit: deletes this instance's consumer_instances row (when its connection
 * is up and no transaction is open), so the next start counts no try as cut short. */
void lf_consumer_destroy(lf_consumer_t **self_p);
/* Processes a batch of envelopes (borrowed) in one transaction, in seq order; events
 * already acknowledged, parked or below the cursor are skipped. Events with a counted
 * failed try (lf_consumer_set_retry) are not in that transaction: each goes alone, in
 * one of its own, after it. Returns the number of events newly applied, or -1 when a
 * transaction failed and nothing was applied (the sweep will bring them back). */
int lf_consumer_handle(lf_consumer_t *self, json_t *const *envs, size_t n);
/* Reads up to `limit` unprocessed events of this consumer's types from the outbox
 * and handles them. Returns the number applied, or -1. */
int lf_consumer_sweep(lf_consumer_t *self, int limit);
/* Moves the consumer's cursor up to the oldest transaction still running or the
 * oldest unacknowledged event of its types, whichever is lower, and prunes the ack
 * rows whose events all lie below it. Runs outside a batch (its own statements). Returns
 * 0 or -1. */
int lf_consumer_advance(lf_consumer_t *self);
/* The cursor (safe_xid, as text) after the last successful lf_consumer_advance, "" before
 * it. Borrowed: valid until the next advance. */
const char *lf_consumer_cursor(const lf_consumer_t *self);
/* Called after each batch with committed = 1 when it committed, 0 when it rolled
 * back, so handlers can keep counters that only count what became durable. */
void lf_consumer_on_batch(lf_consumer_t *self, void (*fn)(void *arg, int committed));
/* Called inside each batch's transaction just before it commits, to write what the
 * handlers accumulated over the batch. Returning -1 rolls the whole batch back (the
 * events come back with the sweep), as does leaving db->err set. */
void lf_consumer_before_commit(lf_consumer_t *self, int (*fn)(void *arg, lf_db_t *db));
/* Called first in each batch's transaction - after the cursor's share lock, before any
 * ack - with the batch's envelopes (borrowed, in seq order, duplicates possible), on
 * the per-event and on the batch path alike. For taking the locks the handlers will
 * need in one documented order up front, instead of one by one as events come (which
 * interleaves them: lead 1, rep A, lead 2 - a cycle with anyone taking lead 2 then rep
 * A). Returning -1, or leaving db->err set, rolls the batch back. */
void lf_consumer_on_begin(lf_consumer_t *self, int (*fn)(void *arg, lf_db_t *db,
                                                         json_t *const *envs, size_t n));
/* Set-based alternative to lf_event_fn: applies the events `envs` (borrowed, in seq
 * order, each new to this consumer: their acks were just inserted in the open
 * transaction) with a few statements for the whole batch. Returns 0 when applied, -1 on
 * a failure: the batch is then rolled back and handled again event by event with the
 * lf_event_fn, so a poison event is parked alone. */
typedef int (*lf_batch_fn)(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                           void *arg);
/* Flags of lf_consumer_set_batch_fn. */
enum {
    /* The handlers read what they need from the outbox by seq themselves: the sweep
     * then hands them envelopes holding only "seq", "type" and "lead_id" (building
     * and parsing full envelopes would cost more than the fold). The loop of lf/loop.h
     * reads the events that arrive over ZeroMQ the same way (lf_event_recv_head): the
     * handlers of such a consumer see only those three fields on every path. */
    LF_BATCH_SEQ_ONLY = 1
};
/* Opt in to the batch path: lf_consumer_handle then acknowledges the new events of a
 * batch with one row, in one statement, and hands only those events to fn (arg as given
 * to lf_consumer_new); lf_consumer_sweep pages forward through a backlog instead of
 * re-reading it from the safe cursor. flags: 0 or LF_BATCH_SEQ_ONLY. Consumers that
 * never call this keep the per-event path unchanged. */
void lf_consumer_set_batch_fn(lf_consumer_t *self, lf_batch_fn fn, int flags);
/* For a handler: queue an envelope (stolen) to publish once the batch commits. */
void lf_consumer_publish_after_commit(lf_consumer_t *self, json_t *env);
/* The same for an envelope the handler already wrote as JSON text (borrowed, copied),
 * of event type `type`: it is sent as it is, never parsed or serialized again. */
void lf_consumer_publish_text_after_commit(lf_consumer_t *self, const char *type,
                                           const char *text);
/* Takes the envelopes queued by the last committed batch. Returns a new array
 * (caller owns), possibly empty: each entry an envelope object, or a [type, text] pair
 * for one queued as text (the loop of lf/loop.h sends either). */
json_t *lf_consumer_take_published(lf_consumer_t *self);
const char *lf_consumer_name(const lf_consumer_t *self);
/* 1 when the consumer's handlers take light envelopes (LF_BATCH_SEQ_ONLY), else 0. */
int lf_consumer_seq_only(const lf_consumer_t *self);

/* Bounded retries (docs/reliability.md section 2). A handler whose statement lost a
 * race (see lf_event_fn) has its event tried again at once, then after backoff_ms,
 * twice that, and so on (a minute at most), while the other events go on; after
 * max_attempts tries - or at once for any other failure - the event is parked: a
 * failed ack (no path applies it again) and a row of consumer_parked, which an
 * operator reads and replays (docs/operations.md, "Parked events"), logged once
 * without personal data. A batch that fails as a whole (its on_begin or before_commit
 * hook, its commit; not the server going away) counts a try of each of its events.
 * The tries are counted in consumer_attempts, so they survive a restart: an event
 * with a counted try is tried alone, its try counted before it begins, so one that
 * kills the process at every try is parked all the same; after an unclean exit (an
 * instance that died without lf_consumer_destroy) the events that may have been in
 * flight count the try that was cut short. A batch that applies its events writes
 * nothing there. Defaults: LF_CONSUMER_ATTEMPTS tries, LF_CONSUMER_BACKOFF_MS; the
 * loop of lf/loop.h sets them from LEADFLOW_CONSUMER_ATTEMPTS and
 * LEADFLOW_CONSUMER_BACKOFF_MS. */
#define LF_CONSUMER_ATTEMPTS 5
#define LF_CONSUMER_BACKOFF_MS 1000
void lf_consumer_set_retry(lf_consumer_t *self, int max_attempts, int backoff_ms);
/* The events this process parked since it started. */
long lf_consumer_parked(const lf_consumer_t *self);
/* Replays the parked events of this consumer whose replay was asked for
 * (consumer_parked.replay_requested_at set), each in a transaction of its own with
 * lf_event_fn: applied and un-parked together, exactly once; one that fails again
 * stays parked with the request cleared. Returns the number replayed, or -1. */
int lf_consumer_replay(lf_consumer_t *self);

/* Inserts an outbox event inside the caller's transaction and returns its envelope
 * (new reference, caller owns) or NULL on failure. payload is borrowed. */
json_t *lf_outbox_add(lf_db_t *db, const char *type, const char *lead_id,
                      const json_t *payload);

#endif
