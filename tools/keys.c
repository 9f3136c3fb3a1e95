/* leadflow-keys - creates, lists and revokes API keys (table api_keys).
 *
 *   leadflow-keys create --scope intake --channel web_form --origin https://example.com
 *   leadflow-keys create --scope rep --rep wang.fang
 *   leadflow-keys create --scope manager --rep li.ming
 *   leadflow-keys create --scope admin
 *   leadflow-keys list
 *   leadflow-keys revoke ID
 *
 * Only the SHA-256 of a key is stored, so `create` prints the key once and it cannot
 * be shown again (common/apikey.c, shared with intake's POST /v1/keys). Intake hears
 * of a new or revoked key at once (NOTIFY leadflow_keys). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/apikey.h"
#include "lf/config.h"
#include "lf/db.h"
#include "lf/log.h"
#include "lf/util.h"

static const lf_cfg_def_t s_cfg[] = {LF_CFG_COMMON, {NULL, 0, NULL, 0, 0, NULL}};

static void s_usage(void) {
    fprintf(stderr,
            "usage: leadflow-keys create [--scope intake|rep|manager|admin]\n"
            "                            [--channel CHANNEL] [--origin URL]...\n"
            "                            [--rep REP_ID] [--rate PER_MINUTE]\n"
            "       leadflow-keys list\n"
            "       leadflow-keys revoke ID\n"
            "scopes: intake (creates leads; --channel, web_form keys also --origin),\n"
            "        rep and manager (--rep), admin (everything; --admin is the same)\n"
            "channels: web_form, phone, trade_show, partner, api, referral, any\n"
            "Without --scope: admin with --admin, rep with --rep, intake otherwise.\n");
}

static int s_create(lf_db_t *db, int argc, char **argv) {
    const char *scope = NULL, *channel = NULL, *rep = NULL;
    long rate = 600;
    int admin = 0;
    json_t *origins = json_array();
    int rc = 2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--admin")) {
            admin = 1;
        } else if (v && !strcmp(a, "--scope")) {
            scope = v, i++;
        } else if (v && !strcmp(a, "--channel")) {
            channel = v, i++;
        } else if (v && !strcmp(a, "--origin")) {
            json_array_append_new(origins, json_string(v)), i++;
        } else if (v && !strcmp(a, "--rep")) {
            rep = v, i++;
        } else if (v && !strcmp(a, "--rate")) {
            char *end;
            rate = strtol(v, &end, 10);
            if (*end || rate < 0 || rate > 10000000) {
                fprintf(stderr,
                        "ERROR --rate must be 0 (unlimited) .. 10000000 per minute\n");
                goto out;
            }
            i++;
        } else {
            s_usage();
            goto out;
        }
    }
    if (admin && scope && strcmp(scope, "admin")) {
        fprintf(stderr, "ERROR --admin and --scope %s contradict each other\n", scope);
        goto out;
    }
    if (!scope)
        scope = admin ? "admin" : rep ? "rep" : "intake";
    if (!strcmp(scope, "intake") && !channel) {
        fprintf(stderr, "ERROR an intake key needs --channel (web_form, phone, "
                        "trade_show, partner, api, referral or any)\n");
        goto out;
    }
    if (channel && !strcmp(channel, "web_form") && json_array_size(origins) == 0)
        fprintf(stderr,
                "WARN a web_form key without --origin cannot be used from a browser "
                "on another site\n");
    lf_apikey_spec_t spec = {.scope = scope,
                             .channel = channel,
                             .rep = rep,
                             .origins = json_array_size(origins) ? origins : NULL,
                             .rate_per_minute = (int)rate,
                             .created_by = "leadflow-keys"};
    char id[24], key[72], why[160];
    int r = lf_apikey_create(db, &spec, id, key, why, sizeof why);
    if (r == LF_APIKEY_DB) {
        fprintf(stderr, "ERROR key not created: %s\n", db->err ? db->errstr : why);
        rc = 1;
        goto out;
    }
    if (r != LF_APIKEY_OK) {
        fprintf(stderr, "ERROR key not created: %s\n", why);
        goto out;
    }
    printf("id:    %s\nscope: %s\nkey:   %s\n", id, scope, key);
    fprintf(stderr,
            "Store the key now: only its hash is kept, it cannot be shown again.\n");
    rc = 0;
out:
    json_decref(origins);
    return rc;
}

static int s_list(lf_db_t *db) {
    PGresult *res =
        lf_db_exec(db,
                   "SELECT k.id, CASE WHEN k.scope = 'intake' THEN coalesce(k.channel, "
                   "'any') ELSE '-' END, coalesce(k.rep_id, '-'), k.scope,"
                   " k.rate_per_minute, coalesce(array_to_string(k.allowed_origins, ','),"
                   " ''), CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked ' ||"
                   " lf_rfc3339(k.revoked_at) WHEN r.id IS NOT NULL AND NOT r.active"
                   " THEN 'disabled (rep inactive)' ELSE 'active' END,"
                   " lf_rfc3339(k.created_at), coalesce(lf_rfc3339(k.last_used_at), '-')"
                   " FROM api_keys k LEFT JOIN reps r ON r.id = k.rep_id"
                   " ORDER BY k.created_at, k.id",
                   0, NULL);
    if (!res) {
        fprintf(stderr, "ERROR %s\n", db->errstr);
        return 1;
    }
    printf("%-16s %-8s %-10s %-12s %-8s %-24s %-24s %s\n", "ID", "SCOPE", "CHANNEL",
           "REP", "RATE/MIN", "CREATED", "LAST USED", "ORIGINS / STATE");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-16s %-8s %-10s %-12s %-8s %-24s %-24s %s %s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 3), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 7), PQgetvalue(res, i, 8),
               PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    PQclear(res);
    return 0;
}

static int s_revoke(lf_db_t *db, const char *id) {
    const char *p[] = {id};
    long n = lf_db_cmd(
        db,
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS "
        "NULL",
        1, p);
    if (n < 0) {
        fprintf(stderr, "ERROR %s\n", db->errstr);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "ERROR no active key %s\n", id);
        return 1;
    }
    printf("revoked %s (intake refuses it from the next request)\n", id);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        s_usage();
        lf_config_usage(s_cfg);
        return argc < 2 ? 2 : 0;
    }
    char err[256];
    lf_config_t *cfg = lf_config_load(s_cfg, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ERROR %s\n", err);
        return 2;
    }
    lf_log_init("keys", LF_LOG_WARN);
    lf_db_set_statement_timeout(lf_config_int(cfg, "LEADFLOW_STATEMENT_TIMEOUT_MS"));
    lf_db_t *db =
        lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-keys");
    int rc = 1;
    if (db->err) {
        fprintf(stderr, "ERROR cannot connect to PostgreSQL: %s\n", db->errstr);
    } else if (!strcmp(argv[1], "create")) {
        rc = s_create(db, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "list")) {
        rc = s_list(db);
    } else if (!strcmp(argv[1], "revoke") && argc == 3) {
        rc = s_revoke(db, argv[2]);
    } else {
        s_usage();
        rc = 2;
    }
    lf_db_destroy(&db);
    lf_config_destroy(&cfg);
    return rc;
}
