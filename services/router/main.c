/* leadflow-router - grades new leads and assigns them to reps.
 *
 * Reads lead.created events (ZeroMQ from intake, and the outbox sweep for anything
 * missed), writes grade, owner and the reasons to PostgreSQL, and publishes
 * lead.assigned for the scheduler and analytics. */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "route.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    {"LEADFLOW_INTAKE_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "intake's event endpoint to connect to"},
    {"LEADFLOW_ROUTER_EVENTS_BIND", LF_CFG_STR, "tcp://127.0.0.1:7102", 0, 0,
     "ZeroMQ PUB endpoint the router binds for its events"},
    {"LEADFLOW_ROUTER_BATCH", LF_CFG_INT, "128", 1, 10000, "most leads per transaction"},
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "1000", 10, 600000, "outbox sweep interval"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const char *const s_types[] = {"lead.created", NULL};

int main(int argc, char **argv) {
    int code = 0;
    lf_config_t *cfg = lf_service_init("router", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    int rc = 1;
    char path[1024], err[256];
    lf_router_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    void *zctx = zmq_ctx_new(), *sub = NULL, *pub = NULL;
    lf_db_t *db = NULL;
    lf_consumer_t *consumer = NULL;

    lf_service_config_path(cfg, "scorecard.json", path, sizeof path);
    ctx.scorecard = lf_scorecard_load(path, err, sizeof err);
    if (!ctx.scorecard) {
        lf_error("bad scorecard: %s", err);
        goto out;
    }
    lf_service_config_path(cfg, "routing.json", path, sizeof path);
    ctx.routing = lf_routing_load(path, err, sizeof err);
    if (!ctx.routing) {
        lf_error("bad routing rules: %s", err);
        goto out;
    }
    const char *endpoints[] = {lf_config_str(cfg, "LEADFLOW_INTAKE_EVENTS"), NULL};
    sub = lf_zmq_sub(zctx, endpoints, s_types);
    pub = lf_zmq_pub(zctx, lf_config_str(cfg, "LEADFLOW_ROUTER_EVENTS_BIND"));
    if (!sub || !pub)
        goto out;
    db = lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-router");
    if (db->err)
        lf_warn("PostgreSQL not reachable yet, will retry: %s", db->errstr);
    consumer = lf_consumer_new(db, "router", s_types, lf_route_event, &ctx);
    lf_info("ready events=%s", endpoints[0]);
    lf_loop_t loop = {
        .consumer = consumer,
        .sub = sub,
        .pub = pub,
        .batch = (int)lf_config_int(cfg, "LEADFLOW_ROUTER_BATCH"),
        .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
        .cfg = cfg,
    };
    rc = lf_loop_run(&loop);
    lf_info("stopped routed=%ld", ctx.routed);
out:
    lf_consumer_destroy(&consumer);
    lf_db_destroy(&db);
    if (sub)
        zmq_close(sub);
    if (pub)
        zmq_close(pub);
    zmq_ctx_term(zctx);
    json_decref(ctx.routing);
    lf_scorecard_destroy(&ctx.scorecard);
    lf_config_destroy(&cfg);
    return rc;
}
