/* secret_stored.c - sealing the notification secrets already stored, checking that a
 * key opens them and moving them to another key (lf/secret_stored.h). leadflow-migrate
 * seals and rotates; intake and the scheduler check their key at start. */
#include "lf/secret_stored.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"

/* One walk over the stored secrets. Sealing (old_key NULL) seals each plain secret with
 * new_key and leaves sealed ones as they are, row by row with no lock: a row changed
 * meanwhile is left alone (its update finds the old value no more). Rotating (old_key
 * set, in the caller's transaction) locks the rows that hold a secret and also moves
 * each sealed one that old_key opens to new_key; one that neither key opens stops the
 * walk, named in err. */
typedef struct {
    const lf_secret_key_t *old_key, *new_key;
    lf_secret_rotation_t st;
    char *err;
    size_t errsz;
} s_walk_t;

/* One stored value under the walk's key: *out is the value to store instead (caller
 * frees), NULL when it stays as it is. Returns 0; -1 when OpenSSL failed to seal; -2
 * when neither key opens it (rotation only). */
static int s_reseal(s_walk_t *w, const char *stored, char **out) {
    char err[256], *plain = NULL;
    *out = NULL;
    if (!lf_secret_is_sealed(stored)) {
        *out = lf_secret_seal(w->new_key, stored);
        w->st.sealed_plain++;
        return *out ? 0 : -1;
    }
    if (!w->old_key)
        return 0; /* sealing: what is sealed stays */
    if (lf_secret_open(w->new_key, stored, &plain, err, sizeof err) == 0) {
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
        w->st.already++;
        return 0;
    }
    if (lf_secret_open(w->old_key, stored, &plain, err, sizeof err) < 0)
        return -2;
    *out = lf_secret_seal(w->new_key, plain);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    w->st.resealed++;
    return *out ? 0 : -1;
}

/* A failed s_reseal as the walk's answer: 1 with the row named in err (no key opens
 * it; dest, from 1, is its place in a list of destinations, 0 for none), or -1 with
 * db->errstr. */
static int s_failed(s_walk_t *w, lf_db_t *db, int why, const char *what, const char *row,
                    size_t dest) {
    if (why != -2) {
        snprintf(db->errstr, sizeof db->errstr, "a secret could not be encrypted");
        return -1;
    }
    char place[40] = "";
    if (dest)
        snprintf(place, sizeof place, " (destination %zu)", dest);
    snprintf(w->err, w->errsz,
             "the secret of %s %s%s opens with neither the old key nor the new one", what,
             row, place);
    return 1;
}

/* Each secret of a list of destinations under the walk's key, in place; *changed says
 * whether any was. Returns 0, or what s_reseal failed with (*at: the destination's
 * index). */
static int s_reseal_list(s_walk_t *w, json_t *list, int *changed, size_t *at) {
    size_t i;
    json_t *d;
    *changed = 0;
    json_array_foreach(list, i, d) {
        const char *v = json_string_value(json_object_get(d, "secret"));
        char *now = NULL;
        int why = v ? s_reseal(w, v, &now) : 0;
        if (why < 0) {
            *at = i;
            return why;
        }
        if (now) {
            json_object_set_new(d, "secret", json_string(now));
            free(now);
            *changed = 1;
        }
    }
    return 0;
}

long lf_secret_seal_list(const lf_secret_key_t *key, json_t *list) {
    s_walk_t w = {.old_key = NULL, .new_key = key};
    int changed;
    size_t at;
    return s_reseal_list(&w, list, &changed, &at) < 0 ? -1 : w.st.sealed_plain;
}

/* Writes one row's new value unless it changed since it was read. A locked row must
 * be written. Returns 1 written, 0 changed meanwhile (sealing only), -1. */
static int s_write(s_walk_t *w, lf_db_t *db, const char *sql, const char *row,
                   const char *now, const char *was) {
    const char *p[] = {row, now, was};
    long done = lf_db_cmd(db, sql, 3, p);
    if (done < 0 || (w->old_key && done != 1))
        return -1;
    return done > 0;
}

/* The destination lists of one table (reps or notify_teams, keyed by `id`) that hold
 * a secret (sealing: a plain one), each rewritten when any of its secrets changed.
 * Returns 0, 1 (err names the row) or -1. */
static int s_walk_lists(s_walk_t *w, lf_db_t *db, const char *table, const char *id) {
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT %s, notify::text FROM %s WHERE jsonb_typeof(notify) = 'array'"
             " AND EXISTS (SELECT 1 FROM jsonb_array_elements(notify) d"
             "  WHERE jsonb_typeof(d -> 'secret') = 'string'%s)"
             " ORDER BY %s%s",
             id, table,
             w->old_key ? ""
                        : " AND NOT starts_with(d ->> 'secret', '" LF_SECRET_PREFIX "')",
             id, w->old_key ? " FOR NO KEY UPDATE" : "");
    PGresult *res = lf_db_exec(db, sql, 0, NULL);
    if (!res)
        return -1;
    snprintf(sql, sizeof sql,
             "UPDATE %s SET notify = $2::jsonb WHERE %s = $1 AND notify = $3::jsonb",
             table, id);
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        const char *row = PQgetvalue(res, r, 0), *was = PQgetvalue(res, r, 1);
        json_t *list = json_loads(was, 0, NULL);
        lf_secret_rotation_t before = w->st;
        size_t at = 0;
        int changed = 0, why = list ? s_reseal_list(w, list, &changed, &at) : 0;
        if (why < 0)
            rc = s_failed(w, db, why, table, row, at + 1);
        char *text = rc == 0 && changed ? json_dumps(list, JSON_COMPACT) : NULL;
        json_decref(list);
        if (text) {
            int done = s_write(w, db, sql, row, text, was);
            free(text);
            if (done < 0)
                rc = -1;
            else if (done == 0)
                w->st = before; /* changed meanwhile: not counted */
        }
    }
    PQclear(res);
    return rc;
}

/* notify_dests.secret, the same way. */
static int s_walk_dests(s_walk_t *w, lf_db_t *db) {
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT key, secret FROM notify_dests WHERE secret IS NOT NULL%s"
             " ORDER BY key%s",
             w->old_key ? "" : " AND NOT starts_with(secret, '" LF_SECRET_PREFIX "')",
             w->old_key ? " FOR NO KEY UPDATE" : "");
    PGresult *res = lf_db_exec(db, sql, 0, NULL);
    if (!res)
        return -1;
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        const char *key = PQgetvalue(res, r, 0), *was = PQgetvalue(res, r, 1);
        lf_secret_rotation_t before = w->st;
        char *now = NULL;
        int why = s_reseal(w, was, &now);
        if (why < 0) {
            rc = s_failed(w, db, why, "notify_dests", key, 0);
        } else if (now) {
            int done = s_write(w, db,
                               "UPDATE notify_dests SET secret = $2 WHERE key = $1"
                               " AND secret = $3",
                               key, now, was);
            if (done < 0)
                rc = -1;
            else if (done == 0)
                w->st = before;
        }
        free(now);
    }
    PQclear(res);
    return rc;
}

long lf_secret_seal_stored(lf_db_t *db, const lf_secret_key_t *key) {
    if (!key)
        return 0;
    char err[256];
    s_walk_t w = {.old_key = NULL, .new_key = key, .err = err, .errsz = sizeof err};
    if (s_walk_lists(&w, db, "reps", "id") != 0 ||
        s_walk_lists(&w, db, "notify_teams", "team") != 0 || s_walk_dests(&w, db) != 0)
        return -1;
    return w.st.sealed_plain;
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

int lf_secret_rotate_stored(lf_db_t *db, const lf_secret_key_t *old_key,
                            const lf_secret_key_t *new_key, lf_secret_rotation_t *out,
                            char *err, size_t errsz) {
    lf_secret_rotation_t none = {0, 0, 0};
    *out = none;
    if (!old_key || !new_key) {
        snprintf(err, errsz, "both keys are needed");
        return 1;
    }
    s_walk_t w = {.old_key = old_key, .new_key = new_key, .err = err, .errsz = errsz};
    /* It locks several reps rows: under the routing lock, like every writer that does
     * (docs/reliability.md section 4), then reps, notify_teams and notify_dests rows. */
    if (lf_db_begin(db) < 0)
        return -1;
    int rc = lf_db_cmd(db, "SELECT pg_advisory_xact_lock(727002)", 0, NULL) < 0 ? -1 : 0;
    if (rc == 0)
        rc = s_walk_lists(&w, db, "reps", "id");
    if (rc == 0)
        rc = s_walk_lists(&w, db, "notify_teams", "team");
    if (rc == 0)
        rc = s_walk_dests(&w, db);
    if (rc == 0 && lf_db_commit(db) == 0) {
        *out = w.st;
        return 0;
    }
    lf_db_rollback(db);
    return rc == 0 ? -1 : rc;
}
