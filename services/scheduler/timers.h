/* timers.h - durable timers: PostgreSQL holds each timer, a Redis sorted set holds
 * the index by due time. */
#ifndef LF_SCHEDULER_TIMERS_H
#define LF_SCHEDULER_TIMERS_H

#include <jansson.h>
#include <stdint.h>

#include "lf/consumer.h"
#include "lf/db.h"
#include "lf/keepalive.h"
#include "lf/teams.h"
#include "lf/redis.h"

/* Connections that fire claimed batches concurrently (one batch each in flight). */
#define LF_TIMERS_LANES_MAX 4

typedef struct lf_digests lf_digests_t;
typedef struct lf_effects lf_effects_t;

typedef struct {
    lf_db_t *db; /* borrowed: the scheduler's connection */
    /* borrowed: extra connections that fire batches concurrently; with none, batches
     * fire one at a time on db */
    lf_db_t *lanes[LF_TIMERS_LANES_MAX];
    int nlanes;
    lf_redis_t *redis;  /* borrowed */
    char zkey[96];      /* the sorted set: <prefix>timers */
    char epoch_key[96]; /* present while the index is complete: <prefix>timers:epoch */
    json_t *sla;        /* borrowed: config/sla.json */
    char *sla_text;     /* owned: sla as compact JSON, passed to lf_fire_timers() */
    int claim_batch;    /* timers claimed per Lua call (and fired per statement) */
    long fired, reminders, escalations, rebuilt;
    int64_t next_pg_sweep;    /* monotonic ms of the next PostgreSQL sweep */
    const lf_keepalive_t *ka; /* borrowed: config/keepalive.json (clocks.h) */
    const lf_teams_t *teams;  /* borrowed: teams and their calendars (routing.json) */
    lf_digests_t *digests;    /* borrowed: team digest schedules (clocks.h), or NULL */
    /* borrowed: the thread that derives what fired timers mean (effects.h), or NULL */
    lf_effects_t *effects;
    /* "due_ms id ..." of the timers the open consumer batch wrote: indexed in Redis
     * once it commits (lf_timers_on_batch), never while its transaction is open. */
    char *pending;
    size_t pending_len, pending_cap;
} lf_timers_t;

/* Consumer callback for lead.assigned: creates the first-contact SLA timer (once)
 * and indexes it in Redis. Returns 0, or -1 on a database error. */
int lf_timers_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);
/* lf_consumer_on_begin hook: takes the leads the batch's handlers will write, in id
 * order, before any is written (the lock order of docs/reliability.md section 4).
 * The handlers write each event's lead in seq order; the router takes its batch's
 * leads in id order (a lead.created delivered again after it was assigned among
 * them), and the two deadlocked. lead.created events are left out: their handler
 * writes the lead only when it links a lost deal, and taking every new lead would
 * make the router wait for the scheduler. Returns 0, or -1 on a database error. */
int lf_timers_on_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n);
/* Indexes committed timers in Redis now: pairs is "due_ms id due_ms id ..." (modified
 * in place). For work outside a consumer batch (ticks). Not fatal when Redis is away:
 * the sweep fires them. */
void lf_timers_index(lf_timers_t *t, char *pairs);
/* The same for timers written inside the open consumer batch (handlers): pairs
 * (borrowed) are queued and indexed when the batch commits (lf_timers_on_batch) - no
 * Redis call inside a transaction, which would hold it open (and every consumer's
 * cursor with it) for as long as Redis takes to answer - and dropped when it rolls
 * back. */
void lf_timers_index_after_commit(lf_timers_t *t, const char *pairs);
/* lf_consumer_on_batch hook: indexes the committed batch's timers in one ZADD, or
 * forgets them when the batch rolled back. */
void lf_timers_on_batch(void *arg, int committed);
/* Periodic work: rebuild the Redis index if it was lost, claim due timers from
 * Redis, fire them in PostgreSQL (a batch per statement, up to nlanes batches in
 * flight), fire due timers Redis forgot. Returns the milliseconds until the next due
 * timer (capped). */
int lf_timers_tick(void *arg);
/* ZADD of many timers to zkey in one command. pairs: "due_ms id due_ms id ..."
 * (modified in place). Not fatal when Redis is away (logged): the PostgreSQL sweep
 * fires them later. For any thread with its own Redis connection. */
void lf_timers_zadd(lf_redis_t *redis, const char *zkey, char *pairs);
/* Loads every pending timer into Redis and marks the index complete. Returns the
 * number indexed, or -1. */
long lf_timers_rebuild(lf_timers_t *t);
#endif
