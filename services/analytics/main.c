/* leadflow-analytics - folds events into the rollup tables BI tools read. */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "rollup.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    {"LEADFLOW_INTAKE_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "intake's event endpoint"},
    {"LEADFLOW_ROUTER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7102", 0, 0,
     "router's event endpoint"},
    {"LEADFLOW_SCHEDULER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7103", 0, 0,
     "scheduler's event endpoint"},
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "1000", 10, 600000, "outbox sweep interval"},
    {"LEADFLOW_ANALYTICS_BATCH", LF_CFG_INT, "1000", 1, 100000,
     "most events per transaction"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const char *const s_types[] = {"lead.assigned", "stage.changed", "deal.won",
                                      "deal.lost", NULL};

int main(int argc, char **argv) {
    int code = 0;
    lf_config_t *cfg = lf_service_init("analytics", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    int rc = 1;
    lf_rollup_t r = {0};
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
    if (sub) {
        lf_info("ready");
        lf_loop_t loop = {
            .consumer = consumer,
            .sub = sub,
            .batch = (int)lf_config_int(cfg, "LEADFLOW_ANALYTICS_BATCH"),
            .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
            .cfg = cfg,
        };
        rc = lf_loop_run(&loop);
        lf_info("stopped folded=%ld", r.folded);
    }
    lf_consumer_destroy(&consumer);
    lf_db_destroy(&db);
    if (sub)
        zmq_close(sub);
    zmq_ctx_term(zctx);
    lf_config_destroy(&cfg);
    return rc;
}
