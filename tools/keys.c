/* leadflow-keys - creates, lists and revokes API keys (table api_keys).
 *
 *   leadflow-keys create --channel web_form --origin https://example.com
 *                        [--origin ...] [--rep wang.fang] [--admin] [--rate 60]
 *   leadflow-keys list
 *   leadflow-keys revoke ID
 *
 * Only the SHA-256 of a key is stored, so `create` prints the key once and it cannot
 * be shown again. Keys come from the kernel's random source (32 bytes, hex). Intake
 * picks up a new or revoked key within LEADFLOW_KEYS_REFRESH_MS. */
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/config.h"
#include "lf/db.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/util.h"

static const lf_cfg_def_t s_cfg[] = {LF_CFG_COMMON, {NULL, 0, NULL, 0, 0, NULL}};

static void s_usage(void) {
    fprintf(
        stderr,
        "usage: leadflow-keys create --channel CHANNEL [--origin URL]... [--rep REP_ID]\n"
        "                            [--admin] [--rate PER_MINUTE]\n"
        "       leadflow-keys list\n"
        "       leadflow-keys revoke ID\n"
        "channels: web_form, phone, trade_show, partner, api, referral, any\n");
}

static void s_hex(const unsigned char *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int s_create(lf_db_t *db, int argc, char **argv) {
    const char *channel = NULL, *rep = NULL, *rate = "600";
    int admin = 0;
    json_t *origins = json_array();
    int rc = 2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--admin")) {
            admin = 1;
        } else if (v && !strcmp(a, "--channel")) {
            channel = v, i++;
        } else if (v && !strcmp(a, "--origin")) {
            if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
                fprintf(stderr, "ERROR --origin must look like https://example.com\n");
                goto out;
            }
            size_t n = strlen(v);
            if (n > 1 && v[n - 1] == '/') {
                fprintf(stderr,
                        "ERROR --origin has no path: https://example.com, not %s\n", v);
                goto out;
            }
            json_array_append_new(origins, json_string(v)), i++;
        } else if (v && !strcmp(a, "--rep")) {
            rep = v, i++;
        } else if (v && !strcmp(a, "--rate")) {
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 0 || r > 10000000) {
                fprintf(stderr,
                        "ERROR --rate must be 0 (unlimited) .. 10000000 per minute\n");
                goto out;
            }
            rate = v, i++;
        } else {
            s_usage();
            goto out;
        }
    }
    if (!channel && !admin) {
        fprintf(stderr, "ERROR --channel is required (or --admin)\n");
        goto out;
    }
    if (channel && !strcmp(channel, "any"))
        channel = NULL;
    if (channel && !lf_lead_channel_valid(channel)) {
        fprintf(stderr, "ERROR unknown channel %s\n", channel);
        goto out;
    }
    if (channel && !strcmp(channel, "web_form") && json_array_size(origins) == 0)
        fprintf(stderr,
                "WARN a web_form key without --origin cannot be used from a browser "
                "on another site\n");
    unsigned char raw[32], idr[6];
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(idr, sizeof idr) != 1) {
        fprintf(stderr, "ERROR no random bytes\n");
        rc = 1;
        goto out;
    }
    char key[80] = "lf_", id[20] = "key_", hash[65];
    s_hex(raw, sizeof raw, key + 3);
    s_hex(idr, sizeof idr, id + 4);
    unsigned char md[32];
    SHA256((const unsigned char *)key, strlen(key), md);
    s_hex(md, sizeof md, hash);
    char *olist = json_dumps(origins, JSON_COMPACT);
    const char *p[] = {id, hash, channel, rep, admin ? "t" : "f", olist, rate};
    long n =
        lf_db_cmd(db,
                  "INSERT INTO api_keys (id, key_hash, channel, rep_id, is_admin,"
                  " allowed_origins, rate_per_minute)"
                  " SELECT $1, $2, $3, $4, $5::boolean,"
                  " coalesce(array(SELECT jsonb_array_elements_text($6::jsonb)), '{}'),"
                  " $7::integer",
                  7, p);
    free(olist);
    if (n != 1) {
        fprintf(stderr, "ERROR key not created: %s\n", db->errstr);
        rc = 1;
        goto out;
    }
    printf("id:  %s\nkey: %s\n", id, key);
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
                   "SELECT id, coalesce(channel, 'any'), coalesce(rep_id, '-'),"
                   " CASE WHEN is_admin THEN 'admin' ELSE '-' END, rate_per_minute,"
                   " coalesce(array_to_string(allowed_origins, ','), ''),"
                   " CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked ' || "
                   "lf_rfc3339(revoked_at) END,"
                   " lf_rfc3339(created_at) FROM api_keys ORDER BY created_at, id",
                   0, NULL);
    if (!res) {
        fprintf(stderr, "ERROR %s\n", db->errstr);
        return 1;
    }
    printf("%-16s %-10s %-12s %-5s %-8s %-26s %s\n", "ID", "CHANNEL", "REP", "ADMIN",
           "RATE/MIN", "CREATED", "ORIGINS / STATE");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-16s %-10s %-12s %-5s %-8s %-26s %s %s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 7), PQgetvalue(res, i, 5),
               PQgetvalue(res, i, 6));
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
    printf("revoked %s (intake stops accepting it within LEADFLOW_KEYS_REFRESH_MS)\n",
           id);
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
