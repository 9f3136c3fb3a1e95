/* leadflow-intake - the front door: HTTP in, durable leads and events out.
 *
 * main() reads the configuration table, binds the event PUB socket, starts the
 * group committer and the HTTP server, then waits for SIGINT/SIGTERM. Shutdown is
 * in order: stop accepting connections, let the committer finish and answer every
 * queued lead (refusing new ones), stop HTTP, free the committer, close sockets and
 * connections. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "intake.h"
#include "lf/db.h"
#include "lf/event.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/phone.h"
#include "lf/secret_stored.h"
#include "lf/util.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    {"LEADFLOW_INTAKE_PORT", LF_CFG_INT, "8080", 1, 65535, "HTTP port"},
    {"LEADFLOW_INTAKE_ADDR", LF_CFG_STR, "127.0.0.1", 0, 0,
     "address intake listens on (0.0.0.0 or :: for every interface)"},
    {"LEADFLOW_ADMIN_KEY", LF_CFG_STR, NULL, 0, 0,
     "key that may do everything (at least 16 characters)"},
    {"LEADFLOW_ALLOW_SHORT_ADMIN_KEY", LF_CFG_INT, "0", 0, 1,
     "1 accepts an admin key shorter than 16 characters (development only)"},
    {"LEADFLOW_TRUSTED_PROXIES", LF_CFG_STR, "", 0, 0,
     "reverse proxies (addresses or CIDR blocks, comma-separated) whose "
     "X-Forwarded-For is believed"},
    {"LEADFLOW_MAX_CONNECTIONS_PER_ADDR", LF_CFG_INT, "256", 0, 100000,
     "connections one client address may hold open at once (0: no cap)"},
    {"LEADFLOW_RATE_PER_ADDR", LF_CFG_INT, "12000", 0, 100000000,
     "requests per minute from one client address, any key or none (0: no limit)"},
    {"LEADFLOW_HTTP_IDLE_TIMEOUT", LF_CFG_INT, "30", 1, 3600,
     "seconds a connection may stay silent before it is closed"},
    {"LEADFLOW_HTTP_REQUEST_TIMEOUT", LF_CFG_INT, "120", 0, 86400,
     "seconds a request body may take to arrive before the connection is closed (0: no "
     "limit)"},
    {"LEADFLOW_IMPORT_MAX_ROWS", LF_CFG_INT, "100000", 1, 10000000,
     "most rows one import may have (more is answered 413)"},
    {"LEADFLOW_INTAKE_EVENTS_BIND", LF_CFG_STR, "tcp://127.0.0.1:7101", 0, 0,
     "ZeroMQ PUB endpoint intake binds for its events"},
    {"LEADFLOW_MAX_BODY", LF_CFG_INT, "65536", 1024, 16777216,
     "largest single-lead body"},
    {"LEADFLOW_MAX_IMPORT", LF_CFG_INT, "16777216", 65536, 1073741824,
     "largest import body"},
    {"LEADFLOW_HTTP_THREADS", LF_CFG_INT, "2", 1, 64, "HTTP worker threads"},
    {"LEADFLOW_DB_WORKERS", LF_CFG_INT, "4", 1, 64,
     "threads (and PostgreSQL connections) for the database work of stage moves, "
     "activities, reps, keys, reads and /metrics"},
    {"LEADFLOW_COMMITTERS", LF_CFG_INT, "3", 1, 32,
     "group-commit threads (PostgreSQL connections)"},
    {"LEADFLOW_COMMIT_BATCH", LF_CFG_INT, "256", 1, 5000, "most leads per commit"},
    {"LEADFLOW_COMMIT_RUNNING", LF_CFG_INT, "2", 1, 32,
     "batch statements running at once while no full batch waits (what arrives "
     "meanwhile becomes the next batch)"},
    {"LEADFLOW_COMMIT_QUEUE", LF_CFG_INT, "2048", 1, 1000000,
     "leads waiting for commit before intake answers 503 with Retry-After"},
    {"LEADFLOW_COMMIT_QUEUE_BYTES", LF_CFG_INT, "16777216", 65536, 1073741824,
     "bytes of leads waiting for commit before intake answers 503 with Retry-After"},
    {"LEADFLOW_COMMIT_LINGER_US", LF_CFG_INT, "1000", 0, 100000,
     "microseconds a committer waits for its batch to fill before it commits fewer "
     "than LEADFLOW_COMMIT_BATCH leads (0: never waits)"},
    {"LEADFLOW_BUSY_RETRY_AFTER", LF_CFG_INT, "1", 1, 3600,
     "Retry-After seconds of a 503 answered because the commit queue is full"},
    {"LEADFLOW_KEYS_REFRESH_MS", LF_CFG_INT, "5000", 100, 3600000,
     "longest a key change goes unseen should the change listener be disconnected "
     "(normally a revoked key is refused from the next request)"},
    {"LEADFLOW_KEYS_USED_FLUSH_MS", LF_CFG_INT, "2000", 100, 3600000,
     "how often the keys' last-used times are written to api_keys"},
    {"LEADFLOW_IMPORT_WINDOW", LF_CFG_INT, "512", 1, 100000,
     "rows of one import handed to the committer at a time"},
    {"LEADFLOW_TWILIO_AUTH_TOKEN", LF_CFG_STR, NULL, 0, 0,
     "when set, Twilio form posts to /v1/calls must carry a valid X-Twilio-Signature"},
    {"LEADFLOW_PUBLIC_URL", LF_CFG_STR, "http://127.0.0.1:8080", 0, 0,
     "the base URL Twilio calls (https://leads.example.com); signatures cover it"},
    {"LEADFLOW_XLSX_MAX_UNPACKED", LF_CFG_INT, "67108864", 1048576, 1073741824,
     "bytes an .xlsx import may unpack to, all its parts together (zip bombs stop here)"},
    {"LEADFLOW_PHONE_REGION", LF_CFG_STR, "CN", 0, 0,
     "ISO 3166 region of phone numbers written without +86 / + (CN, HK, US, ...)"},
    {"LEADFLOW_PHONE_KEEP_UNVERIFIED", LF_CFG_STR, "", 0, 0,
     "channels (comma-separated, e.g. phone,trade_show) that keep a number "
     "libphonenumber "
     "does not validate, flagged phone_unverified, instead of answering 422"},
    {"LEADFLOW_NOTIFY_ALLOW_PRIVATE", LF_CFG_STR, "none", 0, 0,
     "none, loopback or private: notification destinations on such addresses are "
     "refused unless allowed here"},
    LF_CFG_SECRET_KEY,
    {NULL, 0, NULL, 0, 0, NULL}};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig) {
    (void)sig;
    s_stop = 1;
}

/* Does the key open the secrets stored before? A key that does not (or none, when
 * some are stored sealed) would store secrets the scheduler cannot read, or none at
 * all: intake still starts (leads must come in), logs why, and refuses new secrets
 * (503) until it is restarted with the right key. */
static void s_check_secret_key(lf_intake_t *in) {
    lf_db_t *db = lf_db_connect(in->db_url, "leadflow-intake");
    char why[200] = "";
    int rc = db->err ? -1 : lf_secret_check_stored(db, in->secret_key, why, sizeof why);
    if (rc < 0)
        lf_warn("the stored notification secrets could not be checked against "
                "LEADFLOW_SECRET_KEY: %s",
                db->errstr);
    else if (rc > 0) {
        snprintf(in->secret_problem, sizeof in->secret_problem, "%s", why);
        lf_error("LEADFLOW_SECRET_KEY: %s; new notification secrets are refused until "
                 "intake runs with the key they were encrypted with",
                 why);
    } else if (!in->secret_key)
        lf_warn("LEADFLOW_SECRET_KEY is not set: notification destinations with a "
                "secret cannot be saved (docs/configuration.md)");
    lf_db_destroy(&db);
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: leadflow-intake\n");
        lf_config_usage(s_cfg);
        return 0;
    }
    char err[256];
    lf_intake_t in;
    memset(&in, 0, sizeof in);
    in.cfg = lf_config_load(s_cfg, err, sizeof err);
    if (!in.cfg) {
        fprintf(stderr, "ERROR bad configuration: %s\n", err);
        return 2;
    }
    int lvl = lf_log_parse_level(lf_config_str(in.cfg, "LEADFLOW_LOG_LEVEL"));
    if (lvl < 0) {
        fprintf(stderr,
                "ERROR bad configuration: LEADFLOW_LOG_LEVEL must be debug, info, "
                "warn or error\n");
        lf_config_destroy(&in.cfg);
        return 2;
    }
    lf_log_init("intake", (lf_log_level_t)lvl);
    lf_db_set_statement_timeout(lf_config_int(in.cfg, "LEADFLOW_STATEMENT_TIMEOUT_MS"));
    const char *region = lf_config_str(in.cfg, "LEADFLOW_PHONE_REGION");
    if (lf_phone_set_default_region(region) != 0) {
        fprintf(stderr, "ERROR bad configuration: LEADFLOW_PHONE_REGION must be a region "
                        "libphonenumber knows, such as CN or HK\n");
        lf_config_destroy(&in.cfg);
        return 2;
    }
    if (lf_lead_keep_unverified_phones(
            lf_config_str(in.cfg, "LEADFLOW_PHONE_KEEP_UNVERIFIED")) != 0) {
        fprintf(stderr,
                "ERROR bad configuration: LEADFLOW_PHONE_KEEP_UNVERIFIED must list "
                "channels: web_form, phone, trade_show, partner, api, referral\n");
        lf_config_destroy(&in.cfg);
        return 2;
    }
    in.db_url = lf_config_str(in.cfg, "LEADFLOW_DATABASE_URL");
    in.admin_key = lf_config_str(in.cfg, "LEADFLOW_ADMIN_KEY");
    in.max_body = (size_t)lf_config_int(in.cfg, "LEADFLOW_MAX_BODY");
    in.max_import = (size_t)lf_config_int(in.cfg, "LEADFLOW_MAX_IMPORT");
    in.twilio_token = lf_config_str(in.cfg, "LEADFLOW_TWILIO_AUTH_TOKEN");
    in.public_url = lf_config_str(in.cfg, "LEADFLOW_PUBLIC_URL");
    in.import_window = (int)lf_config_int(in.cfg, "LEADFLOW_IMPORT_WINDOW");
    in.xlsx_max_unpacked = (size_t)lf_config_int(in.cfg, "LEADFLOW_XLSX_MAX_UNPACKED");
    in.import_max_rows = (int)lf_config_int(in.cfg, "LEADFLOW_IMPORT_MAX_ROWS");
    in.request_timeout_ms =
        1000 * (int)lf_config_int(in.cfg, "LEADFLOW_HTTP_REQUEST_TIMEOUT");
    if (in.admin_key && strlen(in.admin_key) < 16 &&
        !lf_config_int(in.cfg, "LEADFLOW_ALLOW_SHORT_ADMIN_KEY")) {
        lf_error("bad configuration: LEADFLOW_ADMIN_KEY has %zu characters; an admin key "
                 "needs at least 16 (openssl rand -hex 32 makes one), or set "
                 "LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 for a development machine",
                 strlen(in.admin_key));
        lf_config_destroy(&in.cfg);
        return 2;
    }
    in.limits =
        lf_limits_new((int)lf_config_int(in.cfg, "LEADFLOW_MAX_CONNECTIONS_PER_ADDR"),
                      (int)lf_config_int(in.cfg, "LEADFLOW_RATE_PER_ADDR"),
                      lf_config_str(in.cfg, "LEADFLOW_TRUSTED_PROXIES"), err, sizeof err);
    if (!in.limits) {
        lf_error("bad configuration: %s", err);
        lf_config_destroy(&in.cfg);
        return 2;
    }
    char chpath[1024];
    if (lf_path_join(chpath, sizeof chpath, lf_config_str(in.cfg, "LEADFLOW_CONFIG_DIR"),
                     "channels.json") < 0 ||
        !(in.mapping = lf_mapping_load(chpath, err, sizeof err))) {
        lf_error("bad channels configuration: %s", err);
        lf_limits_destroy(&in.limits);
        lf_config_destroy(&in.cfg);
        return 2;
    }
    if (lf_secret_key_parse(lf_config_str(in.cfg, "LEADFLOW_SECRET_KEY"), &in.secret_key,
                            err, sizeof err) < 0) {
        lf_error("bad configuration: %s", err);
        lf_mapping_destroy(&in.mapping);
        lf_secret_key_destroy(&in.secret_key);
        lf_limits_destroy(&in.limits);
        lf_config_destroy(&in.cfg);
        return 2;
    }
    s_check_secret_key(&in);
    in.keys = lf_keys_new((int)lf_config_int(in.cfg, "LEADFLOW_KEYS_REFRESH_MS"));
    lf_keys_watch(in.keys, in.db_url,
                  (int)lf_config_int(in.cfg, "LEADFLOW_KEYS_USED_FLUSH_MS"));
    if (!in.admin_key)
        lf_warn("LEADFLOW_ADMIN_KEY is not set: only channel keys can call the API");
    pthread_mutex_init(&in.pub_lock, NULL);
    pthread_mutex_init(&in.dbs_lock, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct MHD_Daemon *httpd = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/pipeline.json",
             lf_config_str(in.cfg, "LEADFLOW_CONFIG_DIR"));
    in.pipeline = lf_pipeline_load(path, err, sizeof err);
    if (!in.pipeline) {
        lf_error("bad pipeline configuration: %s", err);
        rc = 2;
        goto out;
    }
    in.teams =
        lf_teams_load(lf_config_str(in.cfg, "LEADFLOW_CONFIG_DIR"), err, sizeof err);
    if (!in.teams) {
        lf_error("bad team settings: %s", err);
        rc = 2;
        goto out;
    }
    lf_teams_check(in.teams, (int64_t)time(NULL));
    in.zctx = zmq_ctx_new();
    in.pub = lf_zmq_pub(in.zctx, lf_config_str(in.cfg, "LEADFLOW_INTAKE_EVENTS_BIND"));
    if (!in.pub)
        goto out;
    lf_committer_cfg_t ccfg = {
        .threads = (int)lf_config_int(in.cfg, "LEADFLOW_COMMITTERS"),
        .max_batch = (int)lf_config_int(in.cfg, "LEADFLOW_COMMIT_BATCH"),
        .max_queue = lf_config_int(in.cfg, "LEADFLOW_COMMIT_QUEUE"),
        .max_bytes = lf_config_int(in.cfg, "LEADFLOW_COMMIT_QUEUE_BYTES"),
        .linger_us = lf_config_int(in.cfg, "LEADFLOW_COMMIT_LINGER_US"),
        .max_running = (int)lf_config_int(in.cfg, "LEADFLOW_COMMIT_RUNNING"),
        .retry_after_s = lf_config_int(in.cfg, "LEADFLOW_BUSY_RETRY_AFTER"),
    };
    in.committer = lf_committer_new(in.db_url, &ccfg, lf_intake_publish, &in);
    if (!in.committer)
        goto out;
    in.workers = lf_workers_new((int)lf_config_int(in.cfg, "LEADFLOW_DB_WORKERS"), 4096);
    if (!in.workers)
        goto out;
    int port = (int)lf_config_int(in.cfg, "LEADFLOW_INTAKE_PORT");
    const char *addr = lf_config_str(in.cfg, "LEADFLOW_INTAKE_ADDR");
    httpd = lf_http_start(&in, addr, port,
                          (int)lf_config_int(in.cfg, "LEADFLOW_HTTP_IDLE_TIMEOUT"));
    if (!httpd) {
        lf_error("cannot listen on HTTP %s port %d", addr ? addr : "*", port);
        goto out;
    }
    lf_info("listening addr=%s port=%d events=%s", addr ? addr : "*", port,
            lf_config_str(in.cfg, "LEADFLOW_INTAKE_EVENTS_BIND"));
    const char *health = lf_config_str(in.cfg, "LEADFLOW_HEALTH_FILE");
    while (!s_stop) {
        usleep(200 * 1000);
        if (health && lf_intake_healthy(&in)) {
            FILE *f = fopen(health, "w");
            if (f)
                fclose(f);
        }
    }
    lf_info("shutting down: no new connections, finishing queued commits");
    rc = 0;
out:
    /* Order: no new connections; the committer and the database workers answer and
     * resume every queued request and refuse new ones (503); the HTTP daemon stops
     * (its threads may still call both until then); only then are they freed. */
    lf_http_close(&in);
    lf_committer_stop(in.committer);
    lf_workers_stop(in.workers);
    if (httpd)
        MHD_stop_daemon(httpd);
    lf_workers_destroy(&in.workers);
    lf_committer_destroy(&in.committer);
    if (in.pub)
        zmq_close(in.pub);
    if (in.zctx)
        zmq_ctx_term(in.zctx);
    lf_pipeline_destroy(&in.pipeline);
    lf_teams_destroy(&in.teams);
    for (int i = 0; i < in.ndbs; i++)
        lf_db_destroy(&in.dbs[i]);
    pthread_mutex_destroy(&in.pub_lock);
    pthread_mutex_destroy(&in.dbs_lock);
    lf_keys_destroy(&in.keys);
    lf_limits_destroy(&in.limits);
    lf_mapping_destroy(&in.mapping);
    lf_secret_key_destroy(&in.secret_key);
    lf_config_destroy(&in.cfg);
    return rc;
}
