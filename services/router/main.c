/* leadflow-router - grades new leads and assigns them to reps.
 *
 * Reads lead.created, lead.updated, lead.merged (intake) and lead.reassign (the
 * scheduler, on an SLA miss) over ZeroMQ, and the outbox sweep for anything missed;
 * writes grade, owner and the reasons to PostgreSQL and publishes lead.assigned,
 * lead.regraded and lead.reassigned.
 *
 * `leadflow-router --replay [--since 30d] [--config draft.json] [--json]` instead
 * replays stored leads against draft rules in a read-only transaction and prints
 * the outcome (replay.c). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "batch.h"
#include "replay.h"
#include "route.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    LF_CFG_LOOP,
    {"LEADFLOW_INTAKE_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "intake's event endpoint to connect to"},
    {"LEADFLOW_SCHEDULER_EVENTS", LF_CFG_STR, "tcp://127.0.0.1:7103", 0, 0,
     "the scheduler's event endpoint to connect to (lead.reassign)"},
    {"LEADFLOW_ROUTER_EVENTS_BIND", LF_CFG_STR, "tcp://127.0.0.1:7102", 0, 0,
     "ZeroMQ PUB endpoint the router binds for its events"},
    {"LEADFLOW_ROUTER_BATCH", LF_CFG_INT, "128", 1, 10000, "most leads per transaction"},
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "1000", 10, 600000, "outbox sweep interval"},
    {"LEADFLOW_POOL_TICK_MS", LF_CFG_INT, "2000", 100, 600000,
     "how often pool leads are routed again when someone became eligible, and pool SLAs"
     " checked"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const char *const s_types[] = {"lead.created", "lead.updated", "lead.merged",
                                      "lead.reassign", NULL};

/* Parses the replay flags. Returns 1 for a replay run, 0 for the service, -1 on a
 * bad argument (usage printed). */
static int s_args(int argc, char **argv, lf_replay_opts_t *o) {
    int replay = 0;
    o->since = "30d";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--replay"))
            replay = 1;
        else if (!strcmp(argv[i], "--json"))
            o->json = 1;
        else if (!strcmp(argv[i], "--since") && i + 1 < argc)
            o->since = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            o->draft = argv[++i];
        else if (strcmp(argv[i], "--help") && strcmp(argv[i], "-h")) {
            fprintf(stderr,
                    "ERROR unknown argument %s\nusage: leadflow-router [--replay "
                    "[--since 30d] [--config draft.json] [--json]]\n",
                    argv[i]);
            return -1;
        }
    }
    if (!replay && (o->draft || o->json)) {
        fprintf(stderr, "ERROR --config and --json only go with --replay\n");
        return -1;
    }
    return replay;
}

int main(int argc, char **argv) {
    lf_replay_opts_t ropts;
    memset(&ropts, 0, sizeof ropts);
    int mode = s_args(argc, argv, &ropts);
    if (mode < 0)
        return 2;
    int code = 0;
    lf_config_t *cfg = lf_service_init("router", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    if (mode == 1) {
        ropts.db_url = lf_config_str(cfg, "LEADFLOW_DATABASE_URL");
        ropts.config_dir = lf_config_str(cfg, "LEADFLOW_CONFIG_DIR");
        int rrc = lf_replay_run(&ropts, stdout);
        lf_config_destroy(&cfg);
        return rrc == 0 ? 0 : 1;
    }
    int rc = 1;
    char path[1024], err[256];
    lf_router_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    lf_router_ctx_init(&ctx);
    void *zctx = zmq_ctx_new(), *sub = NULL, *pub = NULL;
    lf_db_t *db = NULL;
    lf_consumer_t *consumer = NULL;
    lf_teams_t *teams = NULL;

    lf_service_config_path(cfg, "scorecard.json", path, sizeof path);
    ctx.scorecard = lf_scorecard_load(path, err, sizeof err);
    if (!ctx.scorecard) {
        lf_error("bad scorecard: %s", err);
        goto out;
    }
    lf_service_config_path(cfg, "routing.json", path, sizeof path);
    ctx.routing = lf_routing_load(path, err, sizeof err);
    json_t *none = json_array();
    lf_pool_t *check =
        ctx.routing ? lf_pool_from_json(none, ctx.routing, err, sizeof err) : NULL;
    json_decref(none);
    if (!check) {
        lf_error("bad routing rules: %s", err);
        goto out;
    }
    lf_pool_destroy(&check);
    teams = lf_teams_load(lf_config_str(cfg, "LEADFLOW_CONFIG_DIR"), err, sizeof err);
    if (!teams) {
        lf_error("bad team settings: %s", err);
        goto out;
    }
    lf_teams_check(teams, (int64_t)time(NULL));
    ctx.teams = teams;
    const char *endpoints[] = {lf_config_str(cfg, "LEADFLOW_INTAKE_EVENTS"),
                               lf_config_str(cfg, "LEADFLOW_SCHEDULER_EVENTS"), NULL};
    sub = lf_zmq_sub(zctx, endpoints, s_types);
    pub = lf_zmq_pub(zctx, lf_config_str(cfg, "LEADFLOW_ROUTER_EVENTS_BIND"));
    if (!sub || !pub)
        goto out;
    /* Custom plans: the batch's lock, prelude and write each kept a generic plan made on
     * the first batches, which on a new installation read all of leads per batch once
     * it had grown (a sequential scan planned for a table of a few pages): 3-5 times
     * the router's usual backend CPU until autovacuum analyzed the table. Planning
     * them at every call cost nothing measurable (docs/benchmarks.md). */
    db = lf_db_connect_custom_plans(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"),
                                    "leadflow-router");
    if (db->err)
        lf_warn("PostgreSQL not reachable yet, will retry: %s", db->errstr);
    consumer = lf_consumer_new(db, "router", s_types, lf_route_event, &ctx);
    lf_consumer_on_begin(consumer, lf_route_on_begin);
    lf_consumer_on_batch(consumer, lf_route_on_batch);
    lf_consumer_before_commit(consumer, lf_route_before_commit);
    /* The sweep hands the batch path light envelopes (seq, type, lead_id): the router
     * reads the lead itself, and a lead.reassign's payload by seq (lf_route_event). */
    lf_consumer_set_batch_fn(consumer, lf_route_batch, LF_BATCH_SEQ_ONLY);
    ctx.db = db;
    ctx.pub = pub;
    lf_info("ready events=%s,%s", endpoints[0], endpoints[1]);
    lf_loop_t loop = {
        .consumer = consumer,
        .sub = sub,
        .pub = pub,
        .batch = (int)lf_config_int(cfg, "LEADFLOW_ROUTER_BATCH"),
        .linger_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_LINGER_MS"),
        .max_attempts = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_ATTEMPTS"),
        .backoff_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_BACKOFF_MS"),
        .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
        .tick_ms = (int)lf_config_int(cfg, "LEADFLOW_POOL_TICK_MS"),
        .tick = lf_route_pool_tick,
        .tick_arg = &ctx,
        .cfg = cfg,
    };
    rc = lf_loop_run(&loop);
    lf_info("stopped routed=%ld regraded=%ld reassigned=%ld pool_rebuilds=%ld "
            "pool_routed=%ld pool_escalated=%ld",
            ctx.routed, ctx.regraded, ctx.reassigned, ctx.rebuilds, ctx.pooled_routed,
            ctx.pool_escalated);
out:
    lf_consumer_destroy(&consumer);
    lf_db_destroy(&db);
    if (sub)
        zmq_close(sub);
    if (pub)
        zmq_close(pub);
    zmq_ctx_term(zctx);
    lf_router_ctx_fini(&ctx);
    json_decref(ctx.routing);
    lf_teams_destroy(&teams);
    lf_scorecard_destroy(&ctx.scorecard);
    lf_config_destroy(&cfg);
    return rc;
}
