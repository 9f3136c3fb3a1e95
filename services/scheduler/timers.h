/* timers.h - durable timers: PostgreSQL holds each timer, a Redis sorted set holds
 * the index by due time. */
#ifndef LF_SCHEDULER_TIMERS_H
#define LF_SCHEDULER_TIMERS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
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
    /* owned: extra connections that fire batches concurrently, opened when a drain
     * first needs each (so an idle scheduler holds none but the first); with nlanes 0,
     * batches fire one at a time on db */
    lf_db_t *lanes[LF_TIMERS_LANES_MAX];
    int nlanes;
    const char *db_url; /* borrowed: where the lanes connect */
    lf_redis_t *redis;  /* borrowed */
    char zkey[96];      /* the sorted set: <prefix>timers */
    char epoch_key[96]; /* present while the index is complete: <prefix>timers:epoch */
    json_t *sla;        /* borrowed: config/sla.json */
    char *sla_text;     /* owned: sla as compact JSON, passed to lf_fire_timers() */
    int claim_batch;    /* timers claimed per Lua call (and fired per statement) */
    atomic_long fired, reminders, escalations; /* written by the firing thread */
    long rebuilt;
    int64_t next_pg_sweep;      /* monotonic ms of the next PostgreSQL sweep */
    long trim_mark;             /* work done when malloc was last trimmed */
    int64_t next_trim;          /* monotonic ms before which it is not trimmed again */
    long batches, trim_batches; /* event batches ended; at the main thread's last trim */
    int64_t next_main_trim;     /* monotonic ms of its next trim at the earliest */
    /* The firing thread (lf_timers_fire_start), with a Redis connection of its own: */
    const char *redis_host; /* borrowed */
    int redis_port;
    int tick_ms; /* longest wait between looks at the index */
    pthread_t fire_thread;
    int fire_started;
    pthread_mutex_t fire_mu; /* with fire_cv: wakes the thread to stop */
    pthread_cond_t fire_cv;
    atomic_int fire_stop;
    const lf_keepalive_t *ka; /* borrowed: config/keepalive.json (clocks.h) */
    const lf_teams_t *teams;  /* borrowed: teams and their calendars (routing.json) */
    lf_digests_t *digests;    /* borrowed: team digest schedules (clocks.h), or NULL */
    /* borrowed: the thread that derives what fired timers mean (effects.h), or NULL */
    lf_effects_t *effects;
    /* "due_ms id ..." of the timers the open consumer batch wrote: indexed in Redis
     * once it commits (lf_timers_on_batch), never while its transaction is open. */
    char *pending;
    size_t pending_len, pending_cap;
    /* owned: what lf_timers_on_begin read of the open batch's leads as it locked them
     * (id, team, stage, grade, open and owned, stale clock idle; in id order), for
     * lf_clock_sla_arm_batch; NULL outside a batch, or when the batch locked none */
    PGresult *locked;
} lf_timers_t;

/* Consumer callback for lead.assigned: creates the first-contact SLA timer (once)
 * and indexes it in Redis. Returns 0, or -1 on a database error. */
int lf_timers_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);
/* The consumer's batch path (lf_consumer_set_batch_fn): the events of a batch in one
 * transaction with one ack statement, the first-contact SLA timers of its assignments
 * and the lost-deal links of its new leads in a few statements for the whole batch,
 * the rarer kinds through the per-event handlers. When it fails, the batch is rolled
 * back and handled event by event (lf_timers_on_event), so a poison event is parked
 * alone. Returns 0, or -1. */
int lf_timers_on_events(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                        void *arg);
/* lf_consumer_on_begin hook: takes the leads the batch's handlers will write, in id
 * order, before any is written (the lock order of docs/reliability.md section 4), and
 * keeps what the first-contact clock reads of them (t->locked) until the batch ends.
 * The handlers write each event's lead in seq order; the router takes its batch's
 * leads in id order (a lead.created delivered again after it was assigned among
 * them), and the two deadlocked. A lead.created (the scheduler no longer subscribes
 * to them; an old queue's) is left out: taking every new lead would make the router
 * wait for the scheduler. Returns 0, or -1 on a database error. */
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
 * forgets them when the batch rolled back; drops t->locked. */
void lf_timers_on_batch(void *arg, int committed);
/* Starts the thread that fires due timers: it claims them from Redis (its own
 * connection to redis_host:redis_port) and fires them on the lanes (a batch per
 * statement, up to nlanes batches in flight), and fires the due timers Redis forgot,
 * looking again when the next is due or after tick_ms at most. Firing so never waits
 * for the main thread's event handling. With nlanes 0 no thread starts and the tick
 * fires on the main connection. Returns 0, or -1 when the thread could not start. */
int lf_timers_fire_start(lf_timers_t *t, const char *redis_host, int redis_port,
                         int tick_ms);
/* Stops the firing thread (the drain in flight ends first) and joins it. */
void lf_timers_fire_stop(lf_timers_t *t);
/* Periodic work of the main thread: rebuild the Redis index if it was lost, the team
 * digests' timers, and, without a firing thread, the firing itself. Returns the
 * milliseconds until it wants to run again. */
int lf_timers_tick(void *arg);
/* ZADD of many timers to zkey in one command. pairs: "due_ms id due_ms id ..."
 * (modified in place). Not fatal when Redis is away (logged): the PostgreSQL sweep
 * fires them later. For any thread with its own Redis connection. */
void lf_timers_zadd(lf_redis_t *redis, const char *zkey, char *pairs);
/* Loads every pending timer into Redis, a page of them at a time, and marks the index
 * complete. Returns the number indexed, or -1. */
long lf_timers_rebuild(lf_timers_t *t);
#endif
