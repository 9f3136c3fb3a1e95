/* rollup.c - analytics rollups.
 *
 * Exactly-once counting comes from the consumer's acks, written in the same
 * transaction as the increments: a redelivered event finds its ack and adds nothing.
 * The folding itself is SQL (lf_analytics_fold in 0007_analytics.sql): it reads the
 * events by seq from the outbox, the system of record, and updates each rollup with
 * one grouped upsert, so a batch of a thousand events costs a handful of statements
 * and the per-event fallback runs exactly the same code. The day of a lead is its
 * creation day in the sales team's time zone (Asia/Shanghai); the day of a stage move
 * or a closed deal is the day it happened there. */
#include "rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/pgarray.h"
#include "lf/util.h"

static const char *const s_fold_sql = "SELECT lf_analytics_fold($1::bigint[])";

static int s_fold(lf_db_t *db, lf_rollup_t *r, const char *seqs) {
    const char *p[] = {seqs};
    PGresult *res = lf_db_exec_prepared(db, "lf_analytics_fold", s_fold_sql, 1, p);
    if (!res)
        return -1;
    r->folded += atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int lf_rollup_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    (void)c;
    char seqs[32];
    snprintf(seqs, sizeof seqs, "{%lld}", lf_event_seq(env));
    return s_fold(db, arg, seqs);
}

int lf_rollup_on_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                       void *arg) {
    (void)c;
    lf_rollup_t *r = arg;
    lf_pgarray_t seqs;
    lf_pgarray_init(&seqs);
    for (size_t i = 0; i < n; i++)
        lf_pgarray_add_int(&seqs, lf_event_seq(envs[i]));
    int rc = s_fold(db, r, lf_pgarray_end(&seqs));
    lf_pgarray_free(&seqs);
    if (rc == 0)
        r->batches++;
    return rc;
}

int lf_rollup_sync_config(lf_rollup_t *r, lf_db_t *db) {
    char *pl = json_dumps(r->pipeline, JSON_COMPACT);
    char *sla = json_dumps(r->sla, JSON_COMPACT);
    const char *p[] = {pl, sla};
    long rc =
        lf_db_cmd(db, "SELECT lf_analytics_sync_config($1::jsonb, $2::jsonb)", 2, p);
    free(pl);
    free(sla);
    if (rc < 0) {
        lf_warn("could not sync stages and SLA tables, will retry: %s", db->errstr);
        return -1;
    }
    r->synced = 1;
    lf_info("stages, loss reasons and SLA tables synced from the configuration");
    return 0;
}
