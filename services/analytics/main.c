/* leadflow-analytics - folds events into the rollup tables BI tools read. */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/pipeline.h"
#include "lf/service.h"
#include "rollup.h"
#include "sweep.h"

/* Rollups read by BI tools can be a tenth of a second late: analytics lingers 100 ms
 * for more events (the other consumers 5), so that a stack that keeps up folds batches
 * of hundreds, not of the dozen a 5 ms linger gathers at a few thousand leads/s. Each
 * fold and its acks cost about 1 ms of backend whatever the batch's size: 23-32 ->
 * 15-18 us of analytics' backend per lead in the whole stack (docs/benchmarks.md). */
static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    LF_CFG_LOOP_LINGER("100"),
    {"LEADFLOW_INTAKE_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "intake's event endpoint"},
    {"LEADFLOW_ROUTER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7102", 0, 0,
     "router's event endpoint"},
    {"LEADFLOW_SCHEDULER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7103", 0, 0,
     "scheduler's event endpoint"},
    /* 5 s, as the scheduler: each sweep reads again every event above the cursor (the
     * cursor moves every 5 s), and at 1 s that read cost analytics' backend about as
     * much as folding the events (docs/benchmarks.md). What ZeroMQ drops reaches the
     * rollups a few seconds later; a sweep that finds work goes on at once, so a
     * backlog (an outage, a restart) is folded as fast as before. */
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "5000", 10, 600000,
     "outbox sweep interval (events the ZeroMQ feed dropped)"},
    {"LEADFLOW_ANALYTICS_BATCH", LF_CFG_INT, "5000", 1, 100000,
     "most events per transaction"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const char *const s_types[] = {
    "lead.assigned", "stage.changed",    "deal.won", "deal.lost",
    "lead.recycled", "deal.reactivated", NULL};

/* Loads config/pipeline.json (validated as intake does) and config/sla.json for the
 * stages and SLA tables. Returns 0 or -1. */
static int s_load_config(const lf_config_t *cfg, lf_rollup_t *r) {
    char path[1024], err[512];
    lf_service_config_path(cfg, "pipeline.json", path, sizeof path);
    lf_pipeline_t *p = lf_pipeline_load(path, err, sizeof err);
    if (!p) {
        lf_error("bad pipeline configuration: %s", err);
        return -1;
    }
    lf_pipeline_destroy(&p);
    json_error_t jerr;
    r->pipeline = json_load_file(path, 0, &jerr);
    lf_service_config_path(cfg, "sla.json", path, sizeof path);
    r->sla = json_load_file(path, 0, &jerr);
    if (!r->pipeline || !r->sla ||
        !json_is_object(json_object_get(r->sla, "first_contact_seconds"))) {
        lf_error("bad SLA configuration %s: %s", path,
                 r->sla ? "no first_contact_seconds" : jerr.text);
        return -1;
    }
    return 0;
}

typedef struct {
    lf_rollup_t *r;
    lf_db_t *db;
} s_tick_t;

/* Until the configuration tables are synced, try every tick. */
static int s_tick(void *arg) {
    s_tick_t *t = arg;
    if (!t->r->synced)
        lf_rollup_sync_config(t->r, t->db);
    return -1;
}

int main(int argc, char **argv) {
    int code = 0;
    lf_config_t *cfg = lf_service_init("analytics", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    int rc = 1;
    lf_rollup_t r = {0};
    if (s_load_config(cfg, &r) < 0) {
        json_decref(r.pipeline);
        json_decref(r.sla);
        lf_config_destroy(&cfg);
        return 1;
    }
    void *zctx = zmq_ctx_new();
    const char *endpoints[] = {lf_config_str(cfg, "LEADFLOW_INTAKE_EVENTS"),
                               lf_config_str(cfg, "LEADFLOW_ROUTER_EVENTS"),
                               lf_config_str(cfg, "LEADFLOW_SCHEDULER_EVENTS"), NULL};
    void *sub = lf_zmq_sub(zctx, endpoints, s_types);
    lf_db_t *db =
        lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-analytics");
    if (db->err)
        lf_warn("PostgreSQL not reachable yet, will retry: %s", db->errstr);
    lf_consumer_t *consumer =
        lf_consumer_new(db, "analytics", s_types, lf_rollup_on_event, &r);
    lf_consumer_set_batch_fn(consumer, lf_rollup_on_batch, LF_BATCH_SEQ_ONLY);
    if (!db->err)
        lf_rollup_sync_config(&r, db);
    s_tick_t tick = {&r, db};
    /* The sweep acknowledges and folds a window in one statement (sweep.c); events
     * that come over ZeroMQ go through the consumer as before. */
    lf_sweep_t sweep = {.db = db,
                        .consumer = consumer,
                        .rollup = &r,
                        /* s_types as a PostgreSQL text[] literal */
                        .types = "{lead.assigned,stage.changed,deal.won,deal.lost,"
                                 "lead.recycled,deal.reactivated}"};
    if (sub) {
        lf_info("ready");
        lf_loop_t loop = {
            .consumer = consumer,
            .sub = sub,
            .batch = (int)lf_config_int(cfg, "LEADFLOW_ANALYTICS_BATCH"),
            .linger_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_LINGER_MS"),
            .max_attempts = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_ATTEMPTS"),
            .backoff_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_BACKOFF_MS"),
            .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
            .tick_ms = 5000,
            .tick = s_tick,
            .tick_arg = &tick,
            .sweep = lf_sweep_run,
            .sweep_arg = &sweep,
            .cfg = cfg,
        };
        rc = lf_loop_run(&loop);
        lf_info("stopped folded=%ld batches=%ld", r.folded, r.batches);
    }
    lf_consumer_destroy(&consumer);
    lf_db_destroy(&db);
    if (sub)
        zmq_close(sub);
    zmq_ctx_term(zctx);
    json_decref(r.pipeline);
    json_decref(r.sla);
    lf_config_destroy(&cfg);
    return rc;
}
