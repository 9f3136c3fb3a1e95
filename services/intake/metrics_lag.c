/* metrics_lag.c - how far behind each outbox consumer is, for intake's /metrics.
 *
 * Consumers (router, scheduler, analytics) serve no HTTP of their own; their state is in
 * PostgreSQL, so intake reports it. A consumer's cursor (consumer_cursors.safe_xid,
 * common/consumer.c) stops at the oldest transaction still running, so a writing
 * transaction left open anywhere shows here first: the oldest event above a cursor
 * ages, and so does the oldest writing transaction. */
#include "metrics_lag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

/* One consumer's pending events and lag. The cursor goes in as parameters (not a
 * correlated subquery), so the planner walks the outbox_xid index; the count stops at
 * a million. Returns 0 or -1. */
static int s_lag(lf_db_t *db, const char *xid, const char *id, char count[24],
                 char secs[32]) {
    const char *p[] = {xid, id};
    PGresult *res = lf_db_exec(
        db,
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox o WHERE o.xid >= $1::xid8"
        "  AND o.id > $2::bigint LIMIT 1000000) x),"
        " coalesce(extract(epoch FROM now() - (SELECT min(o.at) FROM outbox o"
        "  WHERE o.xid >= $1::xid8 AND o.id > $2::bigint)), 0)::float8",
        2, p);
    if (!res)
        return -1;
    lf_strlcpy(count, PQgetvalue(res, 0, 0), 24);
    lf_strlcpy(secs, PQgetvalue(res, 0, 1), 32);
    PQclear(res);
    return 0;
}

/* Appends one gauge family, leadflow_consumer_<name>, with a value per consumer (the
 * consumers are the rows of res, their names in column 0). */
static void s_family(char *out, size_t *len, size_t cap, const char *name,
                     const char *help, PGresult *res, const char *const *values) {
    *len += (size_t)snprintf(out + *len, cap - *len,
                             "# HELP leadflow_consumer_%s %s\n"
                             "# TYPE leadflow_consumer_%s gauge\n",
                             name, help, name);
    for (int i = 0; i < PQntuples(res); i++)
        *len += (size_t)snprintf(out + *len, cap - *len,
                                 "leadflow_consumer_%s{consumer=\"%s\"} %s\n", name,
                                 PQgetvalue(res, i, 0), values[i]);
}

char *lf_metrics_lag(lf_db_t *db) {
    PGresult *res =
        lf_db_exec(db,
                   "SELECT consumer, safe_xid::text, safe_id,"
                   " coalesce(extract(epoch FROM now() - advanced_at), -1)::float8,"
                   " (SELECT count(*) FROM consumer_parked k"
                   "  WHERE k.consumer = c.consumer)"
                   " FROM consumer_cursors c ORDER BY consumer",
                   0, NULL);
    if (!res)
        return NULL;
    int n = PQntuples(res);
    char(*count)[24] = lf_calloc((size_t)n + 1, sizeof *count);
    char(*secs)[32] = lf_calloc((size_t)n + 1, sizeof *secs);
    for (int i = 0; i < n; i++) {
        if (s_lag(db, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), count[i], secs[i]) <
            0) {
            free(count);
            free(secs);
            PQclear(res);
            return NULL;
        }
    }
    PGresult *tx =
        lf_db_exec(db,
                   "SELECT coalesce(extract(epoch FROM now() - min(xact_start)),"
                   " 0)::float8 FROM pg_stat_activity"
                   " WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
                   0, NULL);
    size_t cap = 1280 + (size_t)n * 500, len = 0;
    char *out = lf_malloc(cap);
    const char **v = lf_calloc((size_t)n + 1, sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = count[i];
    s_family(out, &len, cap, "pending_events",
             "Outbox events above the consumer's cursor (not yet known done).", res, v);
    for (int i = 0; i < n; i++)
        v[i] = secs[i];
    s_family(out, &len, cap, "lag_seconds",
             "Age of the oldest outbox event above the consumer's cursor.", res, v);
    for (int i = 0; i < n; i++)
        v[i] = PQgetvalue(res, i, 3);
    s_family(out, &len, cap, "cursor_age_seconds",
             "Time since the consumer last moved its cursor (-1: never).", res, v);
    for (int i = 0; i < n; i++)
        v[i] = PQgetvalue(res, i, 4);
    s_family(out, &len, cap, "parked_events",
             "Events the consumer gave up on, waiting for an operator (consumer_parked).",
             res, v);
    free(v);
    if (tx && PQntuples(tx) == 1)
        snprintf(out + len, cap - len,
                 "# HELP leadflow_oldest_write_transaction_seconds Age of the oldest "
                 "transaction that holds a transaction id (it holds every consumer's "
                 "cursor).\n"
                 "# TYPE leadflow_oldest_write_transaction_seconds gauge\n"
                 "leadflow_oldest_write_transaction_seconds %s\n",
                 PQgetvalue(tx, 0, 0));
    PQclear(tx);
    PQclear(res);
    free(count);
    free(secs);
    return out;
}
