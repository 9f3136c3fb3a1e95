/* rollup.h - folding events into the analytics tables. */
#ifndef LF_ANALYTICS_ROLLUP_H
#define LF_ANALYTICS_ROLLUP_H

#include "lf/consumer.h"

typedef struct {
    long folded; /* events folded by this process */
} lf_rollup_t;

/* Consumer callback: lead.assigned counts one lead for its creation day (in
 * Asia/Shanghai, the sales team's calendar), channel and grade. Returns 0 or -1. */
int lf_rollup_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

/* Consumer callback for the pipeline's events (stage.changed, deal.won, deal.lost):
 * rollup_stage_daily and rollup_outcomes_daily. lf_rollup_on_event hands these
 * types to it. Returns 0 or -1. */
int lf_rollup_on_deal_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

#endif
