/* metrics_lag.h - each outbox consumer's lag, as Prometheus text for /metrics. */
#ifndef LF_INTAKE_METRICS_LAG_H
#define LF_INTAKE_METRICS_LAG_H

#include "lf/db.h"

/* The gauges leadflow_consumer_pending_events, leadflow_consumer_lag_seconds,
 * leadflow_consumer_cursor_age_seconds and leadflow_consumer_parked_events per
 * consumer, and
 * leadflow_oldest_write_transaction_seconds. Returns the text (caller frees), or NULL
 * when the database cannot be read. */
char *lf_metrics_lag(lf_db_t *db);

#endif
