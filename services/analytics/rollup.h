/* rollup.h - folding events into the analytics tables. */
#ifndef LF_ANALYTICS_ROLLUP_H
#define LF_ANALYTICS_ROLLUP_H

#include <jansson.h>

#include "lf/consumer.h"

typedef struct {
    long folded;      /* events folded by this process (committed or not) */
    long batches;     /* batches folded on the set-based path */
    json_t *pipeline; /* owned: config/pipeline.json as parsed, for the stages table */
    json_t *sla;      /* owned: config/sla.json as parsed */
    int synced;       /* 1 once the configuration tables were rewritten */
} lf_rollup_t;

/* Consumer callback for one event (the per-event path, and the fallback that isolates
 * a poison event): lead.assigned, stage.changed, deal.won and deal.lost are folded by
 * SQL lf_analytics_fold (db/migrations/0007_analytics.sql), exactly as in a batch.
 * Returns 0 or -1. */
int lf_rollup_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

/* Batch callback (lf_consumer_set_batch_fn): folds all `envs` with one call of
 * lf_analytics_fold, one statement per rollup table. Returns 0 or -1. */
int lf_rollup_on_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                       void *arg);

/* Rewrites the stages, loss_reasons and sla_first_contact tables from r->pipeline and
 * r->sla (outside any transaction). Returns 0 or -1 (retry later). */
int lf_rollup_sync_config(lf_rollup_t *r, lf_db_t *db);

#endif
