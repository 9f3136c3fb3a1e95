/* effects.h - what a fired SLA or follow-up timer means (its reminder, escalation or
 * reassign request, the notification, timeline entry, outbox event and next timer),
 * derived off the firing path by an exactly-once consumer of 'timer.fired' events in
 * a thread of its own. */
#ifndef LF_SCHEDULER_EFFECTS_H
#define LF_SCHEDULER_EFFECTS_H

#include <stddef.h>

typedef struct lf_effects lf_effects_t;

/* Threads that derive effects at most (twins of one consumer). */
#define LF_EFFECTS_WORKERS_MAX 4

typedef struct {
    const char *db_url;     /* borrowed: the thread has its own connection */
    const char *redis_host; /* borrowed: and its own Redis connection */
    int redis_port;
    const char *zkey;     /* borrowed: the timers' sorted set (next steps go there) */
    const char *sla_text; /* borrowed: config/sla.json as compact JSON */
    int batch;            /* events applied per transaction */
    int sweep_ms;         /* how often the outbox is swept for events not handed over */
    int max_attempts;     /* lf_consumer_set_retry (0: the consumer's defaults) */
    int backoff_ms;
} lf_effects_cfg_t;

/* Sets up `workers` threads (1 to LF_EFFECTS_WORKERS_MAX), twins of the one consumer
 * with a connection each: hand-overs go to them in turn, so two batches' effects are
 * derived at once on two cores; the first also sweeps the outbox. The first starts
 * now, each other one with the first hand-over that comes its way (an idle scheduler
 * holds one thread and its connections). cfg is copied; what it borrows must outlive
 * the result. Returns the handle (caller owns), or NULL when the first thread could not
 * start. */
lf_effects_t *lf_effects_start(const lf_effects_cfg_t *cfg, int workers);
/* Hands over the outbox seqs of 'timer.fired' events that just committed, as a
 * PostgreSQL array literal "{1,2,3}" (borrowed). Never blocks on the database: the
 * seqs are queued, and what does not fit in the queue is left to the thread's sweep
 * of the outbox. One thread (the firing one) hands over. */
void lf_effects_push(lf_effects_t *self, const char *seqs);
/* While on, the effects threads start no new batch and the first one does not sweep
 * (for at most a few seconds from when it went on): firing a backlog of due timers
 * gets the cores first, its effects follow. One thread (the firing one) sets it. */
void lf_effects_hold(lf_effects_t *self, int on);
/* Events applied so far (committed). */
long lf_effects_applied(lf_effects_t *self);
/* Stops the thread (the batch in flight ends first), joins it, frees. Accepts NULL. */
void lf_effects_stop(lf_effects_t **self_p);

#endif
