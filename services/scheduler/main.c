/* leadflow-scheduler - first-contact SLA reminders and escalations on Redis timers.
 *
 * Reads lead.assigned events (ZeroMQ from the router, plus the outbox sweep),
 * creates timers in PostgreSQL and indexes them in Redis, and fires them on time. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "lf/util.h"
#include "clocks.h"
#include "timers.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    {"LEADFLOW_REDIS_HOST", LF_CFG_STR, "127.0.0.1", 0, 0, "Redis host (timer index)"},
    {"LEADFLOW_REDIS_PORT", LF_CFG_INT, "56379", 1, 65535, "Redis port"},
    {"LEADFLOW_REDIS_PREFIX", LF_CFG_STR, "lf:", 0, 0, "prefix of leadflow's Redis keys"},
    {"LEADFLOW_ROUTER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7102", 0, 0,
     "router's event endpoint to connect to"},
    {"LEADFLOW_INTAKE_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "intake's event endpoint to connect to"},
    {"LEADFLOW_SCHEDULER_EVENTS_BIND", LF_CFG_STR, "tcp://127.0.0.1:7103", 0, 0,
     "ZeroMQ PUB endpoint the scheduler binds for its events"},
    {"LEADFLOW_WEBHOOK_URL", LF_CFG_STR, NULL, 0, 0,
     "where notifications are POSTed as JSON (unset: only recorded)"},
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "1000", 10, 600000, "outbox sweep interval"},
    {"LEADFLOW_TICK_MS", LF_CFG_INT, "100", 5, 10000,
     "longest wait between timer checks"},
    {"LEADFLOW_TIMER_BATCH", LF_CFG_INT, "2000", 1, 20000,
     "due timers claimed from Redis and fired in one statement"},
    {"LEADFLOW_TIMER_LANES", LF_CFG_INT, "2", 0, 4,
     "PostgreSQL connections firing batches concurrently (0 = on the main one)"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const char *const s_types[] = {"lead.assigned",
                                      "lead.reassigned",
                                      "activity.logged",
                                      "stage.changed",
                                      "deal.lost",
                                      "lead.created",
                                      NULL};

int main(int argc, char **argv) {
    int code = 0;
    lf_config_t *cfg = lf_service_init("scheduler", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 1;
    char path[1024];
    void *zctx = zmq_ctx_new(), *sub = NULL, *pub = NULL;
    lf_db_t *db = NULL;
    lf_redis_t *redis = NULL;
    lf_consumer_t *consumer = NULL;
    lf_timers_t t;
    memset(&t, 0, sizeof t);
    int nlanes = 0;
    lf_pipeline_t *pipeline = NULL;
    lf_keepalive_t *ka = NULL;
    lf_teams_t *teams = NULL;
    lf_digests_t *digests = NULL;

    lf_service_config_path(cfg, "sla.json", path, sizeof path);
    json_error_t jerr;
    t.sla = json_load_file(path, 0, &jerr);
    if (!t.sla || !json_is_object(json_object_get(t.sla, "first_contact_seconds"))) {
        lf_error("bad SLA configuration %s: %s", path,
                 t.sla ? "no first_contact_seconds" : jerr.text);
        goto out;
    }
    /* Keep-alive clocks (config/keepalive.json), checked against the pipeline's stages
     * and loss reasons. */
    char err[512];
    lf_service_config_path(cfg, "pipeline.json", path, sizeof path);
    pipeline = lf_pipeline_load(path, err, sizeof err);
    if (!pipeline) {
        lf_error("bad pipeline configuration: %s", err);
        goto out;
    }
    lf_service_config_path(cfg, "keepalive.json", path, sizeof path);
    ka = lf_keepalive_load(path, pipeline, err, sizeof err);
    if (!ka) {
        lf_error("bad keep-alive configuration: %s", err);
        goto out;
    }
    t.ka = ka;
    /* The teams' business calendars: every keep-alive clock and the first-contact SLA
     * count in the lead's team calendar. */
    teams = lf_teams_load(lf_config_str(cfg, "LEADFLOW_CONFIG_DIR"), err, sizeof err);
    if (!teams) {
        lf_error("bad team configuration: %s", err);
        goto out;
    }
    lf_teams_check(teams, (int64_t)time(NULL));
    t.teams = teams;
    digests = lf_digests_new(lf_config_str(cfg, "LEADFLOW_CONFIG_DIR"));
    t.digests = digests;
    const char *endpoints[] = {lf_config_str(cfg, "LEADFLOW_ROUTER_EVENTS"),
                               lf_config_str(cfg, "LEADFLOW_INTAKE_EVENTS"), NULL};
    sub = lf_zmq_sub(zctx, endpoints, s_types);
    pub = lf_zmq_pub(zctx, lf_config_str(cfg, "LEADFLOW_SCHEDULER_EVENTS_BIND"));
    if (!sub || !pub)
        goto out;
    db = lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-scheduler");
    if (db->err)
        lf_warn("PostgreSQL not reachable yet, will retry: %s", db->errstr);
    redis = lf_redis_connect(lf_config_str(cfg, "LEADFLOW_REDIS_HOST"),
                             (int)lf_config_int(cfg, "LEADFLOW_REDIS_PORT"));
    if (redis->err)
        lf_warn("Redis not reachable yet, will retry: %s", redis->errstr);
    t.db = db;
    t.redis = redis;
    t.sla_text = json_dumps(t.sla, JSON_COMPACT);
    t.claim_batch = (int)lf_config_int(cfg, "LEADFLOW_TIMER_BATCH");
    nlanes = (int)lf_config_int(cfg, "LEADFLOW_TIMER_LANES");
    for (int i = 0; i < nlanes; i++)
        t.lanes[i] = lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"),
                                   "leadflow-scheduler-fire");
    t.nlanes = nlanes;
    t.webhook_url = lf_config_str(cfg, "LEADFLOW_WEBHOOK_URL");
    snprintf(t.zkey, sizeof t.zkey, "%stimers",
             lf_config_str(cfg, "LEADFLOW_REDIS_PREFIX"));
    snprintf(t.epoch_key, sizeof t.epoch_key, "%stimers:epoch",
             lf_config_str(cfg, "LEADFLOW_REDIS_PREFIX"));
    /* The index is rebuilt from PostgreSQL at every start: cheap, and it repairs
     * whatever happened to Redis while we were down. */
    lf_timers_rebuild(&t);
    if (lf_timers_deliver_start(&t, lf_config_str(cfg, "LEADFLOW_DATABASE_URL")) < 0)
        goto out;
    consumer = lf_consumer_new(db, "scheduler", s_types, lf_timers_on_event, &t);
    lf_consumer_on_batch(consumer, lf_timers_on_batch);
    lf_info("ready events=%s redis=%s:%ld", endpoints[0],
            lf_config_str(cfg, "LEADFLOW_REDIS_HOST"),
            lf_config_int(cfg, "LEADFLOW_REDIS_PORT"));
    lf_loop_t loop = {
        .consumer = consumer,
        .sub = sub,
        .pub = pub,
        .batch = 256,
        .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
        .tick_ms = (int)lf_config_int(cfg, "LEADFLOW_TICK_MS"),
        .tick = lf_timers_tick,
        .tick_arg = &t,
        .cfg = cfg,
    };
    rc = lf_loop_run(&loop);
    lf_info("stopped fired=%ld reminders=%ld escalations=%ld", t.fired, t.reminders,
            t.escalations);
out:
    lf_timers_deliver_stop(&t);
    for (int i = 0; i < nlanes; i++)
        lf_db_destroy(&t.lanes[i]);
    free(t.sla_text);
    free(t.pending);
    lf_consumer_destroy(&consumer);
    lf_redis_destroy(&redis);
    lf_db_destroy(&db);
    if (sub)
        zmq_close(sub);
    if (pub)
        zmq_close(pub);
    zmq_ctx_term(zctx);
    json_decref(t.sla);
    lf_keepalive_destroy(&ka);
    lf_teams_destroy(&teams);
    lf_digests_destroy(&digests);
    lf_pipeline_destroy(&pipeline);
    curl_global_cleanup();
    lf_config_destroy(&cfg);
    return rc;
}
