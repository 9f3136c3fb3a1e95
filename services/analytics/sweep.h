/* sweep.h - the analytics consumer's outbox sweep in one statement per window. */
#ifndef LF_ANALYTICS_SWEEP_H
#define LF_ANALYTICS_SWEEP_H

#include "lf/consumer.h"
#include "lf/db.h"
#include "rollup.h"

typedef struct {
    lf_db_t *db;             /* borrowed: the consumer's connection */
    lf_consumer_t *consumer; /* borrowed: the framework's sweep, when ours fails */
    lf_rollup_t *rollup;     /* borrowed: counters */
    const char *types;       /* the folded event types as a text[] literal (static) */
    long long from;          /* where the last full window ended (0: the cursor) */
} lf_sweep_t;

/* lf_loop_t.sweep: acknowledges and folds up to `limit` unacknowledged events per
 * window with lf_analytics_sweep() (53_lf_analytics_sweep.sql), one transaction per
 * window; windows whose events all had acks are skipped, up to 20 per call. When the
 * statement fails (a malformed event), the same window is swept through the consumer
 * framework instead, which folds event by event and sets the culprit aside. Returns
 * the number of events folded, or -1. */
int lf_sweep_run(void *arg, int limit);

#endif
