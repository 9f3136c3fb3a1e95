/* timers.h - durable timers: PostgreSQL holds each timer, a Redis sorted set holds
 * the index by due time. */
#ifndef LF_SCHEDULER_TIMERS_H
#define LF_SCHEDULER_TIMERS_H

#include <jansson.h>
#include <stdint.h>

#include "lf/consumer.h"
#include "lf/db.h"
#include "lf/redis.h"

typedef struct {
    lf_db_t *db;        /* borrowed: the scheduler's connection */
    lf_redis_t *redis;  /* borrowed */
    char zkey[96];      /* the sorted set: <prefix>timers */
    char epoch_key[96]; /* present while the index is complete: <prefix>timers:epoch */
    json_t *sla;        /* borrowed: config/sla.json */
    int claim_batch;    /* timers claimed per Lua call */
    long fired, reminders, escalations, rebuilt;
    const char *webhook_url; /* borrowed, NULL = notifications only recorded */
} lf_timers_t;

/* Consumer callback for lead.assigned: creates the first-contact SLA timer (once)
 * and indexes it in Redis. Returns 0, or -1 on a database error. */
int lf_timers_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);
/* Periodic work: rebuild the Redis index if it was lost, claim due timers from
 * Redis, fire them in PostgreSQL, fire due timers Redis forgot, deliver
 * notifications. Returns the milliseconds until the next due timer (capped). */
int lf_timers_tick(void *arg);
/* Loads every pending timer into Redis and marks the index complete. Returns the
 * number indexed, or -1. */
long lf_timers_rebuild(lf_timers_t *t);

#endif
