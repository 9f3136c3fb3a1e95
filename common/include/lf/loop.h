/* loop.h - the poll loop of a consuming service (router, scheduler, analytics).
 *
 * Wait on the SUB socket with a bounded timeout; take every event waiting (up to a
 * batch, lingering linger_ms for more after the first) and apply them in one
 * transaction; publish what the batch produced once it
 * committed; sweep the outbox for anything missed every sweep interval; run the
 * service's own periodic work; stop when a signal arrived. */
#ifndef LF_LOOP_H
#define LF_LOOP_H

#include "lf/config.h"
#include "lf/consumer.h"
#include "lf/event_head.h"

typedef struct {
    lf_consumer_t *consumer; /* borrowed */
    void *sub;               /* borrowed SUB socket */
    void *pub;               /* borrowed PUB socket for produced events, or NULL */
    int batch;               /* most events per transaction */
    /* After the first envelope, how long to wait for more before the batch is handled
     * (LEADFLOW_CONSUMER_LINGER_MS, LF_CFG_LOOP); 0 takes only what is queued. */
    int linger_ms;
    /* Tries of an event whose handler lost a race, and the first backoff
     * (LEADFLOW_CONSUMER_ATTEMPTS, LEADFLOW_CONSUMER_BACKOFF_MS, LF_CFG_LOOP;
     * lf_consumer_set_retry); max_attempts 0 keeps the consumer's defaults. */
    int max_attempts, backoff_ms;
    int sweep_ms; /* outbox sweep interval */
    int tick_ms;  /* interval of tick(), 0 = never */
    /* Periodic work; returns the milliseconds until it wants to run again (capped by
     * tick_ms), or a negative value to keep tick_ms. */
    int (*tick)(void *arg);
    void *tick_arg;
    /* The outbox sweep, when the service has its own (analytics: one statement per
     * window); NULL: lf_consumer_sweep(consumer, limit). Returns the number of events
     * applied, or -1, as lf_consumer_sweep does. */
    int (*sweep)(void *arg, int limit);
    void *sweep_arg;
    const lf_config_t *cfg; /* borrowed: for the health file */
    /* The fields of its events the consumer reads, when it reads few (lf/event_head.h):
     * its events of that type arrive as light envelopes holding only them, the others
     * whole. NULL: whole envelopes, or for a consumer of seqs (LF_BATCH_SEQ_ONLY) light
     * ones of every type. Every handler of such an event reads nothing else of it. */
    const lf_head_keep_t *keep;
} lf_loop_t;

/* The loop's entries of a service's configuration table (lf/config.h), listed after
 * LF_CFG_COMMON by every service that runs lf_loop_run; linger is the default of
 * LEADFLOW_CONSUMER_LINGER_MS (a string: "5" where a hop's latency counts). */
#define LF_CFG_LOOP_LINGER(linger)                                                       \
    {"LEADFLOW_CONSUMER_LINGER_MS",                                                      \
     LF_CFG_INT,                                                                         \
     linger,                                                                             \
     0,                                                                                  \
     100,                                                                                \
     "after the first event, ms to wait for more before a batch is applied (0: only "    \
     "those already queued)"},                                                           \
        {"LEADFLOW_CONSUMER_ATTEMPTS",                                                   \
         LF_CFG_INT,                                                                     \
         "5",                                                                            \
         1,                                                                              \
         100,                                                                            \
         "tries of an event whose handler lost a race (deadlock, lock or statement "     \
         "timeout) before it is parked"},                                                \
    {                                                                                    \
        "LEADFLOW_CONSUMER_BACKOFF_MS", LF_CFG_INT, "1000", 0, 60000,                    \
            "wait before the third try of such an event (the second is at once); "       \
            "doubles after each try (a minute at most)"                                  \
    }
#define LF_CFG_LOOP LF_CFG_LOOP_LINGER("5")

/* How often the loop moves the consumer's cursor (lf_consumer_advance). */
#define LF_LOOP_ADVANCE_MS 5000

/* Runs until SIGINT/SIGTERM. Returns 0. With the advance it also replays the parked
 * events an operator asked to replay (lf_consumer_replay). */
int lf_loop_run(lf_loop_t *loop);

#endif
