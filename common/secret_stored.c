/* secret_stored.c - sealing the notification secrets already stored, checking that a
 * key opens them and moving them to another key (lf/secret_stored.h). leadflow-migrate
 * seals and rotates; intake and the scheduler check their key at start. */
#include "lf/secret_stored.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"

long lf_secret_seal_list(const lf_secret_key_t *key, json_t *list) {
    size_t i;
    json_t *d;
    long n = 0;
    json_array_foreach(list, i, d) {
        const char *s = json_string_value(json_object_get(d, "secret"));
        if (!s || lf_secret_is_sealed(s))
            continue;
        char *sealed = lf_secret_seal(key, s);
        if (!sealed)
            return -1;
        json_object_set_new(d, "secret", json_string(sealed));
        free(sealed);
        n++;
    }
    return n;
}

/* The destination lists of one table (reps or notify_teams, keyed by `id`) that hold
 * a plain secret: each sealed and written back unless the row changed meanwhile. */
static long s_lists(lf_db_t *db, const lf_secret_key_t *key, const char *table,
                    const char *id) {
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT %s, notify::text FROM %s WHERE jsonb_typeof(notify) = 'array'"
             " AND EXISTS (SELECT 1 FROM jsonb_array_elements(notify) d"
             "  WHERE jsonb_typeof(d -> 'secret') = 'string'"
             "   AND NOT starts_with(d ->> 'secret', '" LF_SECRET_PREFIX "'))",
             id, table);
    PGresult *res = lf_db_exec(db, sql, 0, NULL);
    if (!res)
        return -1;
    long total = 0;
    snprintf(sql, sizeof sql,
             "UPDATE %s SET notify = $2::jsonb WHERE %s = $1 AND notify = $3::jsonb",
             table, id);
    for (int r = 0; r < PQntuples(res); r++) {
        const char *was = PQgetvalue(res, r, 1);
        json_t *list = json_loads(was, 0, NULL);
        long n = list ? lf_secret_seal_list(key, list) : 0;
        if (n < 0) {
            json_decref(list);
            PQclear(res);
            snprintf(db->errstr, sizeof db->errstr, "a secret could not be encrypted");
            return -1;
        }
        char *now = n > 0 ? json_dumps(list, JSON_COMPACT) : NULL;
        json_decref(list);
        if (!now)
            continue;
        const char *p[] = {PQgetvalue(res, r, 0), now, was};
        long done = lf_db_cmd(db, sql, 3, p);
        free(now);
        if (done < 0) {
            PQclear(res);
            return -1;
        }
        total += done > 0 ? n : 0;
    }
    PQclear(res);
    return total;
}

long lf_secret_seal_stored(lf_db_t *db, const lf_secret_key_t *key) {
    if (!key)
        return 0;
    long reps = s_lists(db, key, "reps", "id");
    long teams = reps < 0 ? -1 : s_lists(db, key, "notify_teams", "team");
    if (teams < 0)
        return -1;
    PGresult *res =
        lf_db_exec(db,
                   "SELECT key, secret FROM notify_dests WHERE secret IS NOT"
                   " NULL AND NOT starts_with(secret, '" LF_SECRET_PREFIX "')",
                   0, NULL);
    if (!res)
        return -1;
    long dests = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        char *sealed = lf_secret_seal(key, PQgetvalue(res, r, 1));
        if (!sealed) {
            PQclear(res);
            snprintf(db->errstr, sizeof db->errstr, "a secret could not be encrypted");
            return -1;
        }
        const char *p[] = {PQgetvalue(res, r, 0), sealed, PQgetvalue(res, r, 1)};
        long done = lf_db_cmd(db,
                              "UPDATE notify_dests SET secret = $2 WHERE key = $1"
                              " AND secret = $3",
                              3, p);
        free(sealed);
        if (done < 0) {
            PQclear(res);
            return -1;
        }
        dests += done;
    }
    PQclear(res);
    return reps + teams + dests;
}

/* Stored secrets of every kind, as one column "s". */
#define S_ALL_SECRETS                                                                    \
    "(SELECT d ->> 'secret' AS s FROM reps, jsonb_array_elements(CASE WHEN"              \
    "  jsonb_typeof(notify) = 'array' THEN notify ELSE '[]' END) d"                      \
    " WHERE jsonb_typeof(d -> 'secret') = 'string'"                                      \
    " UNION ALL SELECT d ->> 'secret' FROM notify_teams, jsonb_array_elements(CASE WHEN" \
    "  jsonb_typeof(notify) = 'array' THEN notify ELSE '[]' END) d"                      \
    " WHERE jsonb_typeof(d -> 'secret') = 'string'"                                      \
    " UNION ALL SELECT secret FROM notify_dests WHERE secret IS NOT NULL) x"

long lf_secret_count_plain(lf_db_t *db) {
    PGresult *res = lf_db_exec(db,
                               "SELECT count(*) FROM " S_ALL_SECRETS
                               " WHERE NOT starts_with(x.s, '" LF_SECRET_PREFIX "')",
                               0, NULL);
    if (!res)
        return -1;
    long n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

int lf_secret_check_stored(lf_db_t *db, const lf_secret_key_t *key, char *err,
                           size_t errsz) {
    PGresult *res = lf_db_exec(db,
                               "SELECT x.s FROM " S_ALL_SECRETS
                               " WHERE starts_with(x.s, '" LF_SECRET_PREFIX "') LIMIT 1",
                               0, NULL);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        char *plain = NULL;
        if (lf_secret_open(key, PQgetvalue(res, 0, 0), &plain, err, errsz) < 0)
            rc = 1;
        else
            free(plain);
    }
    PQclear(res);
    return rc;
}

/* One stored value under the new key: *out is the value to store instead (caller
 * frees), NULL when it stays as it is. Returns 0, or -1 when neither key opens it
 * (or OpenSSL failed to seal). */
static int s_reseal(const lf_secret_key_t *old_key, const lf_secret_key_t *new_key,
                    const char *stored, char **out, lf_secret_rotation_t *st) {
    char err[256], *plain = NULL;
    *out = NULL;
    if (!lf_secret_is_sealed(stored)) {
        *out = lf_secret_seal(new_key, stored);
        st->sealed_plain++;
        return *out ? 0 : -1;
    }
    if (lf_secret_open(new_key, stored, &plain, err, sizeof err) == 0) {
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
        st->already++;
        return 0;
    }
    if (lf_secret_open(old_key, stored, &plain, err, sizeof err) < 0)
        return -1;
    *out = lf_secret_seal(new_key, plain);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    st->resealed++;
    return *out ? 0 : -1;
}

/* The destination lists of one table (reps or notify_teams, keyed by `id`) that hold
 * a secret, locked, each rewritten under the new key when any of its secrets changed.
 * Returns 0, 1 (err names the row) or -1. */
static int s_rotate_lists(lf_db_t *db, const lf_secret_key_t *old_key,
                          const lf_secret_key_t *new_key, const char *table,
                          const char *id, lf_secret_rotation_t *st, char *err,
                          size_t errsz) {
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT %s, notify::text FROM %s WHERE jsonb_typeof(notify) = 'array'"
             " AND EXISTS (SELECT 1 FROM jsonb_array_elements(notify) d"
             "  WHERE jsonb_typeof(d -> 'secret') = 'string')"
             " ORDER BY %s FOR NO KEY UPDATE",
             id, table, id);
    PGresult *res = lf_db_exec(db, sql, 0, NULL);
    if (!res)
        return -1;
    snprintf(sql, sizeof sql, "UPDATE %s SET notify = $2::jsonb WHERE %s = $1", table,
             id);
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        json_t *list = json_loads(PQgetvalue(res, r, 1), 0, NULL), *d;
        size_t i;
        int changed = 0;
        json_array_foreach(list, i, d) {
            const char *s = json_string_value(json_object_get(d, "secret"));
            char *now = NULL;
            if (!s)
                continue;
            if (s_reseal(old_key, new_key, s, &now, st) < 0) {
                snprintf(err, errsz,
                         "the secret of %s %s (destination %zu) opens with neither the "
                         "old key nor the new one",
                         table, PQgetvalue(res, r, 0), i + 1);
                rc = 1;
                break;
            }
            if (now) {
                json_object_set_new(d, "secret", json_string(now));
                free(now);
                changed = 1;
            }
        }
        char *text = rc == 0 && changed ? json_dumps(list, JSON_COMPACT) : NULL;
        json_decref(list);
        if (text) {
            const char *p[] = {PQgetvalue(res, r, 0), text};
            if (lf_db_cmd(db, sql, 2, p) != 1)
                rc = -1;
            free(text);
        }
    }
    PQclear(res);
    return rc;
}

int lf_secret_rotate_stored(lf_db_t *db, const lf_secret_key_t *old_key,
                            const lf_secret_key_t *new_key, lf_secret_rotation_t *out,
                            char *err, size_t errsz) {
    lf_secret_rotation_t st = {0, 0, 0};
    *out = st;
    if (!old_key || !new_key) {
        snprintf(err, errsz, "both keys are needed");
        return 1;
    }
    /* It locks several reps rows: under the routing lock, like every writer that does
     * (docs/reliability.md section 4), then reps, notify_teams and notify_dests rows. */
    if (lf_db_begin(db) < 0)
        return -1;
    int rc = lf_db_cmd(db, "SELECT pg_advisory_xact_lock(727002)", 0, NULL) < 0 ? -1 : 0;
    if (rc == 0)
        rc = s_rotate_lists(db, old_key, new_key, "reps", "id", &st, err, errsz);
    if (rc == 0)
        rc =
            s_rotate_lists(db, old_key, new_key, "notify_teams", "team", &st, err, errsz);
    PGresult *res =
        rc == 0 ? lf_db_exec(db,
                             "SELECT key, secret FROM notify_dests WHERE secret IS NOT"
                             " NULL ORDER BY key FOR NO KEY UPDATE",
                             0, NULL)
                : NULL;
    if (rc == 0 && !res)
        rc = -1;
    for (int r = 0; res && r < PQntuples(res) && rc == 0; r++) {
        char *now = NULL;
        if (s_reseal(old_key, new_key, PQgetvalue(res, r, 1), &now, &st) < 0) {
            snprintf(err, errsz,
                     "the secret of notify_dests %s opens with neither the old key nor "
                     "the new one",
                     PQgetvalue(res, r, 0));
            rc = 1;
        } else if (now) {
            const char *p[] = {PQgetvalue(res, r, 0), now};
            if (lf_db_cmd(db, "UPDATE notify_dests SET secret = $2 WHERE key = $1", 2,
                          p) != 1)
                rc = -1;
        }
        free(now);
    }
    PQclear(res);
    if (rc == 0 && lf_db_commit(db) == 0) {
        *out = st;
        return 0;
    }
    lf_db_rollback(db);
    return rc == 0 ? -1 : rc;
}
