/* leadflow-scheduler - first-contact SLA reminders and escalations on Redis timers,
 * and the delivery of every notification to where people work.
 *
 * Reads lead.assigned events (ZeroMQ from the router, plus the outbox sweep),
 * creates timers in PostgreSQL and indexes them in Redis, and fires them on time.
 * Delivery worker threads (deliver.c) send notifications on connections of their
 * own, so a slow or dead destination never holds up firing. */
#include <curl/curl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "deliver.h"
#include "lf/netguard.h"
#include "lf/secret_stored.h"
#include "lf/teams.h"
#include "lf/util.h"
#include "clocks.h"
#include "effects.h"
#include "timers.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    LF_CFG_LOOP,
    LF_CFG_SECRET_KEY,
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
     "a generic webhook that gets every notification, besides the reps' and teams' "
     "own destinations (unset: none)"},
    {"LEADFLOW_WEBHOOK_SECRET", LF_CFG_STR, NULL, 0, 0,
     "signing secret of LEADFLOW_WEBHOOK_URL (X-Leadflow-Signature; unset: unsigned)"},
    {"LEADFLOW_NOTIFY_WORKERS", LF_CFG_INT, "2", 0, 16,
     "notification delivery threads (0: this scheduler delivers nothing)"},
    {"LEADFLOW_NOTIFY_TIMEOUT_MS", LF_CFG_INT, "10000", 100, 120000,
     "longest wait for one destination to answer"},
    {"LEADFLOW_NOTIFY_MERGE_MAX", LF_CFG_INT, "100", 1, 1000,
     "notifications waiting for one destination merged into one message"},
    {"LEADFLOW_NOTIFY_MAX_LINES", LF_CFG_INT, "10", 1, 50,
     "notifications a merged chat message lists before \"另有 N 条\""},
    {"LEADFLOW_NOTIFY_MAX_AGE_S", LF_CFG_INT, "86400", 1, 2592000,
     "a notification not delivered within this many seconds is dead"},
    {"LEADFLOW_NOTIFY_BACKOFF_MS", LF_CFG_INT, "2000", 10, 3600000,
     "first retry delay; doubles with each attempt, with jitter"},
    {"LEADFLOW_NOTIFY_BACKOFF_MAX_MS", LF_CFG_INT, "900000", 10, 86400000,
     "longest retry delay (before jitter)"},
    {"LEADFLOW_NOTIFY_PAUSE_AFTER_S", LF_CFG_INT, "1800", 1, 604800,
     "a destination failing (3 messages or more) with nothing delivered for this "
     "many seconds is paused and its owner's manager told"},
    {"LEADFLOW_NOTIFY_PAUSE_S", LF_CFG_INT, "3600", 1, 604800,
     "how long a failing destination stays paused"},
    {"LEADFLOW_NOTIFY_ROBOT_PER_MINUTE", LF_CFG_INT, "20", 1, 600,
     "messages per minute one WeCom, DingTalk or Feishu robot is sent"},
    {"LEADFLOW_NOTIFY_POLL_MS", LF_CFG_INT, "500", 10, 10000,
     "idle wait of a delivery thread between looks for due notifications"},
    {"LEADFLOW_NOTIFY_ALLOW_PRIVATE", LF_CFG_STR, "none", 0, 0,
     "none, loopback or private: destinations on such addresses are refused unless "
     "allowed here"},
    {"LEADFLOW_LINK_TEMPLATE", LF_CFG_STR, NULL, 0, 0,
     "link to a lead in notifications, {lead_id} replaced (unset: no link)"},
    {"LEADFLOW_SMTP_URL", LF_CFG_STR, NULL, 0, 0,
     "SMTP server for e-mail destinations, smtp://host:587 or smtps://host:465"},
    {"LEADFLOW_SMTP_FROM", LF_CFG_STR, NULL, 0, 0, "sender address of e-mail"},
    {"LEADFLOW_SMTP_USER", LF_CFG_STR, NULL, 0, 0, "SMTP login (unset: none)"},
    {"LEADFLOW_SMTP_PASSWORD", LF_CFG_STR, NULL, 0, 0, "SMTP password"},
    {"LEADFLOW_SMTP_TLS", LF_CFG_STR, "require", 0, 0,
     "STARTTLS: require, try (when offered) or off"},
    /* 5 s, not the router's 1 s: each sweep walks the events above the consumer's
     * cursor and probes an ack for each, so at 1 s nearly every event was read again,
     * at about the cost of its first-contact clock (docs/benchmarks.md); what ZeroMQ
     * drops is a timer set a few seconds later, due in minutes. A sweep that finds
     * work goes on at once (lf/loop.h). */
    {"LEADFLOW_SWEEP_MS", LF_CFG_INT, "5000", 10, 600000,
     "outbox sweep interval (events ZeroMQ dropped, fired timers never handed over)"},
    {"LEADFLOW_TICK_MS", LF_CFG_INT, "100", 5, 10000,
     "longest wait between timer checks"},
    {"LEADFLOW_TIMER_BATCH", LF_CFG_INT, "2000", 1, 20000,
     "due timers claimed from Redis and fired in one statement (and fired timers whose "
     "effects are derived in one transaction)"},
    {"LEADFLOW_TIMER_LANES", LF_CFG_INT, "4", 0, 4,
     "PostgreSQL connections firing batches concurrently (0 = on the main one)"},
    {NULL, 0, NULL, 0, 0, NULL}};

/* Not lead.created: a new inquiry is linked to its customer's lost deal when the lead
 * is first assigned (lead.assigned, which every new lead gets from the router, to a rep
 * or to a pool). Taking every lead.created for that - an envelope, an ack and its
 * pruning, the sweep's probe - cost the scheduler about as much as the lead's
 * first-contact clock, in a stack where nearly no inquiry has a lost deal
 * (docs/benchmarks.md). stale.restarted is the scheduler's own (a stale timer that found
 * a restart no event had armed from, 42_lf_keepalive.sql): no socket carries it, the
 * outbox sweep finds it. */
static const char *const s_types[] = {"lead.assigned",
                                      "lead.reassigned",
                                      "activity.logged",
                                      "stage.changed",
                                      "deal.lost",
                                      "stale.restarted",
                                      NULL};

/* What the handlers read of a lead.assigned (nearly every event the scheduler takes):
 * its seq, type, lead, "at" (the SLA's start), and the payload's grade and owner
 * (timers.c, clock.c, stale.c, reactivate.c). The loop reads those from the text
 * alone (lf/event_head.h); a handler that reads more of an assignment must name it
 * here. Other events arrive whole. */
static const char *const s_assigned_top[] = {"at", NULL};
static const char *const s_assigned_payload[] = {"grade", "owner", NULL};
static const lf_head_keep_t s_assigned_keep = {"lead.assigned", s_assigned_top,
                                               s_assigned_payload};

/* Does the key open the notification secrets stored sealed? Messages to destinations
 * whose secret it cannot open are not sent (each records why); the rest of the
 * scheduler works as usual. */
static void s_check_secret_key(lf_db_t *db, const lf_secret_key_t *key) {
    char why[200] = "";
    int rc = db->err ? -1 : lf_secret_check_stored(db, key, why, sizeof why);
    if (rc > 0)
        lf_error("LEADFLOW_SECRET_KEY: %s; messages to destinations with such a secret "
                 "are not sent until the scheduler runs with the key they were encrypted "
                 "with",
                 why);
    else if (rc < 0 && !db->err)
        lf_warn("the stored notification secrets could not be checked against "
                "LEADFLOW_SECRET_KEY: %s",
                db->errstr);
    if (!key)
        lf_warn("LEADFLOW_SECRET_KEY is not set: team destinations' secrets are stored "
                "in plain text (docs/configuration.md)");
}

/* Reads the notification settings and config (routing.json teams, notify.json
 * templates), copies the team destinations to PostgreSQL and starts the delivery
 * threads. The caller owns *tpl (notify.json) and *routing; they and teams (the teams'
 * calendars, borrowed) must outlive the deliverer. Returns 0, or -1 after logging why. */
static int s_start_delivery(lf_config_t *cfg, lf_db_t *db, json_t **tpl, json_t **routing,
                            const lf_teams_t *teams, const lf_secret_key_t *key,
                            lf_deliver_t **out) {
    char path[1024], why[512];
    json_error_t jerr;
    int policy = lf_net_policy_parse(lf_config_str(cfg, "LEADFLOW_NOTIFY_ALLOW_PRIVATE"));
    const char *tls = lf_config_str(cfg, "LEADFLOW_SMTP_TLS");
    int tlsmode = !strcmp(tls, "require") ? 2
                  : !strcmp(tls, "try")   ? 1
                  : !strcmp(tls, "off")   ? 0
                                          : -1;
    if (policy < 0 || tlsmode < 0) {
        lf_error("%s", policy < 0 ? "LEADFLOW_NOTIFY_ALLOW_PRIVATE must be none, "
                                    "loopback or private"
                                  : "LEADFLOW_SMTP_TLS must be require, try or off");
        return -1;
    }
    lf_service_config_path(cfg, "notify.json", path, sizeof path);
    if (access(path, F_OK) == 0) {
        *tpl = json_load_file(path, 0, &jerr);
        json_t *tt = json_object_get(*tpl, "templates");
        if (!json_is_object(*tpl) || (tt && !json_is_object(tt))) {
            lf_error("bad notification configuration %s: %s", path,
                     *tpl ? "templates must be an object" : jerr.text);
            return -1;
        }
    }
    lf_service_config_path(cfg, "routing.json", path, sizeof path);
    *routing = json_load_file(path, 0, &jerr);
    if (!*routing) {
        lf_error("bad routing configuration %s: %s", path, jerr.text);
        return -1;
    }
    int rc = lf_deliver_sync_teams(
        db, *routing, teams, lf_config_str(cfg, "LEADFLOW_WEBHOOK_URL"),
        lf_config_str(cfg, "LEADFLOW_WEBHOOK_SECRET"), key, why, sizeof why);
    if (rc < 0) {
        /* A database that is not up yet is not fatal: the previous copy is used. */
        if (strstr(why, "not saved"))
            lf_warn("%s", why);
        else {
            lf_error("bad team destinations in %s: %s", path, why);
            return -1;
        }
    }
    lf_deliver_cfg_t dc = {
        .db_url = lf_config_str(cfg, "LEADFLOW_DATABASE_URL"),
        .workers = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_WORKERS"),
        .timeout_ms = lf_config_int(cfg, "LEADFLOW_NOTIFY_TIMEOUT_MS"),
        .merge_max = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_MERGE_MAX"),
        .max_lines = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_MAX_LINES"),
        .max_age_s = lf_config_int(cfg, "LEADFLOW_NOTIFY_MAX_AGE_S"),
        .backoff_ms = lf_config_int(cfg, "LEADFLOW_NOTIFY_BACKOFF_MS"),
        .backoff_max_ms = lf_config_int(cfg, "LEADFLOW_NOTIFY_BACKOFF_MAX_MS"),
        .pause_after_s = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_PAUSE_AFTER_S"),
        .pause_s = lf_config_int(cfg, "LEADFLOW_NOTIFY_PAUSE_S"),
        .robot_per_minute = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_ROBOT_PER_MINUTE"),
        .poll_ms = (int)lf_config_int(cfg, "LEADFLOW_NOTIFY_POLL_MS"),
        .net_policy = policy,
        .link = lf_config_str(cfg, "LEADFLOW_LINK_TEMPLATE"),
        .templates = json_object_get(*tpl, "templates"),
        .smtp = {.url = lf_config_str(cfg, "LEADFLOW_SMTP_URL"),
                 .from = lf_config_str(cfg, "LEADFLOW_SMTP_FROM"),
                 .user = lf_config_str(cfg, "LEADFLOW_SMTP_USER"),
                 .password = lf_config_str(cfg, "LEADFLOW_SMTP_PASSWORD"),
                 .tls = tlsmode,
                 .timeout_ms = lf_config_int(cfg, "LEADFLOW_NOTIFY_TIMEOUT_MS")},
        .routing = *routing,
        .teams = teams,
        .global_url = lf_config_str(cfg, "LEADFLOW_WEBHOOK_URL"),
        .global_secret = lf_config_str(cfg, "LEADFLOW_WEBHOOK_SECRET"),
        .secret_key = key,
    };
    *out = lf_deliver_start(&dc);
    return *out ? 0 : -1;
}

int main(int argc, char **argv) {
    int code = 0;
    lf_config_t *cfg = lf_service_init("scheduler", s_cfg, argc, argv, &code);
    if (!cfg)
        return code;
    /* Idle memory (docs/benchmarks.md: 16 MiB): glibc gives every thread that
     * allocates an arena of its own (9 threads here), and what a busy moment leaves in
     * them stays resident; two arenas are enough for threads that mostly wait for
     * PostgreSQL. libcurl starts with the first notification to send (deliver.c). */
    mallopt(M_ARENA_MAX, 2);
    int rc = 1;
    char path[1024];
    void *zctx = zmq_ctx_new(), *sub = NULL, *pub = NULL;
    lf_db_t *db = NULL;
    lf_redis_t *redis = NULL;
    lf_consumer_t *consumer = NULL;
    lf_deliver_t *deliver = NULL;
    lf_effects_t *effects = NULL;
    json_t *notify_tpl = NULL, *routing = NULL;
    lf_timers_t t;
    memset(&t, 0, sizeof t);
    int nlanes = 0;
    lf_pipeline_t *pipeline = NULL;
    lf_keepalive_t *ka = NULL;
    lf_teams_t *teams = NULL;
    lf_digests_t *digests = NULL;
    lf_secret_key_t *secret_key = NULL;

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
    /* The fire lanes connect when the firing thread starts (timers.c, s_fire_main). */
    t.db_url = lf_config_str(cfg, "LEADFLOW_DATABASE_URL");
    t.nlanes = nlanes;
    snprintf(t.zkey, sizeof t.zkey, "%stimers",
             lf_config_str(cfg, "LEADFLOW_REDIS_PREFIX"));
    snprintf(t.epoch_key, sizeof t.epoch_key, "%stimers:epoch",
             lf_config_str(cfg, "LEADFLOW_REDIS_PREFIX"));
    /* The index is rebuilt from PostgreSQL at every start: cheap, and it repairs
     * whatever happened to Redis while we were down. */
    lf_timers_rebuild(&t);
    /* What fired timers mean is derived in a thread of its own (effects.c). */
    lf_effects_cfg_t ec = {
        .db_url = lf_config_str(cfg, "LEADFLOW_DATABASE_URL"),
        .redis_host = lf_config_str(cfg, "LEADFLOW_REDIS_HOST"),
        .redis_port = (int)lf_config_int(cfg, "LEADFLOW_REDIS_PORT"),
        .zkey = t.zkey,
        .sla_text = t.sla_text,
        /* At most 500 events' effects per transaction: a stop waits for the batch in
         * flight (with 2,000 it took up to 3 s under load, and a restart then fired
         * late); smaller batches cost ~15% more CPU per effect. */
        .batch = t.claim_batch < 500 ? t.claim_batch : 500,
        .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
        .max_attempts = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_ATTEMPTS"),
        .backoff_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_BACKOFF_MS"),
    };
    /* As many effects threads as fire lanes: the effects of a batch cost several
     * times its firing, and two connections use both cores. */
    effects = lf_effects_start(&ec, nlanes > 0 ? nlanes : 1);
    if (!effects)
        goto out;
    t.effects = effects;
    if (lf_secret_key_parse(lf_config_str(cfg, "LEADFLOW_SECRET_KEY"), &secret_key, err,
                            sizeof err) < 0) {
        lf_error("bad configuration: %s", err);
        rc = 2;
        goto out;
    }
    s_check_secret_key(db, secret_key);
    if (s_start_delivery(cfg, db, &notify_tpl, &routing, teams, secret_key, &deliver) < 0)
        goto out;
    /* Firing in a thread of its own (timers.c), after the rebuild. */
    if (lf_timers_fire_start(&t, lf_config_str(cfg, "LEADFLOW_REDIS_HOST"),
                             (int)lf_config_int(cfg, "LEADFLOW_REDIS_PORT"),
                             (int)lf_config_int(cfg, "LEADFLOW_TICK_MS")) < 0)
        goto out;
    consumer = lf_consumer_new(db, "scheduler", s_types, lf_timers_on_event, &t);
    lf_consumer_set_batch_fn(consumer, lf_timers_on_events, 0);
    lf_consumer_on_batch(consumer, lf_timers_on_batch);
    lf_consumer_on_begin(consumer, lf_timers_on_begin);
    lf_info("ready events=%s redis=%s:%ld", endpoints[0],
            lf_config_str(cfg, "LEADFLOW_REDIS_HOST"),
            lf_config_int(cfg, "LEADFLOW_REDIS_PORT"));
    lf_loop_t loop = {
        .consumer = consumer,
        .sub = sub,
        .pub = pub,
        .batch = 256,
        .linger_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_LINGER_MS"),
        .max_attempts = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_ATTEMPTS"),
        .backoff_ms = (int)lf_config_int(cfg, "LEADFLOW_CONSUMER_BACKOFF_MS"),
        .sweep_ms = (int)lf_config_int(cfg, "LEADFLOW_SWEEP_MS"),
        .tick_ms = (int)lf_config_int(cfg, "LEADFLOW_TICK_MS"),
        .tick = lf_timers_tick,
        .tick_arg = &t,
        .cfg = cfg,
        .keep = &s_assigned_keep,
    };
    rc = lf_loop_run(&loop);
    lf_timers_fire_stop(&t);
    lf_info("stopped fired=%ld effects=%ld keepalive_warnings=%ld", atomic_load(&t.fired),
            lf_effects_applied(effects), atomic_load(&t.reminders));
out:
    lf_timers_fire_stop(&t); /* it hands over to the effects threads */
    lf_effects_stop(&effects);
    lf_deliver_stop(&deliver);
    lf_secret_key_destroy(&secret_key);
    json_decref(notify_tpl);
    json_decref(routing);
    for (int i = 0; i < nlanes; i++)
        lf_db_destroy(&t.lanes[i]);
    free(t.sla_text);
    free(t.pending);
    PQclear(t.locked);
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
