/* api_keys.c - POST /v1/keys, GET /v1/keys and DELETE /v1/keys/{id}.
 *
 * The admin makes keys of every scope; a manager makes `rep` keys for the reps it
 * reaches (itself included) and lists and revokes theirs. A new key is shown once, in
 * the 201 answer; only its SHA-256 is stored (common/apikey.c, shared with
 * leadflow-keys). A revoked key is refused from the next request on: this process
 * drops its cache at once, and the other intakes hear of it through PostgreSQL
 * (NOTIFY leadflow_keys). A rep that does not exist and one the manager does not
 * reach get the same answer, so a manager cannot probe for reps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "intake.h"
#include "lf/apikey.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/util.h"

/* A key as the API shows it: never its hash. */
#define S_KEY_JSON                                                                       \
    "json_build_object('id', k.id, 'scope', k.scope, 'channel', k.channel,"              \
    " 'rep', k.rep_id, 'origins', to_json(k.allowed_origins),"                           \
    " 'rate_per_minute', k.rate_per_minute, 'created_at', lf_rfc3339(k.created_at),"     \
    " 'created_by', k.created_by, 'last_used_at', lf_rfc3339(k.last_used_at),"           \
    " 'revoked_at', lf_rfc3339(k.revoked_at),"                                           \
    " 'state', CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'"                        \
    "  WHEN r.id IS NOT NULL AND NOT r.active THEN 'disabled' ELSE 'active' END)"

static enum MHD_Result s_unavailable(lf_intake_t *in, lf_req_t *req, lf_db_t *db) {
    lf_warn("keys request failed: %s", db->errstr);
    return lf_reply_error(in, req->conn, 503, "unavailable",
                          "the database cannot be reached; nothing was changed", NULL);
}

static enum MHD_Result s_invalid(lf_intake_t *in, lf_req_t *req, const char *field,
                                 const char *code, const char *msg) {
    json_t *errors = json_array();
    lf_field_error(errors, field, code, msg);
    return lf_reply_error(in, req->conn, 422, "validation_failed",
                          "the key breaks one or more rules; nothing was stored", errors);
}

static const char *s_str(const json_t *body, const char *k, int *bad) {
    const json_t *v = json_object_get(body, k);
    if (v && !json_is_string(v) && !json_is_null(v))
        *bad = 1;
    return json_string_value(v);
}

static enum MHD_Result s_post_key(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    enum MHD_Result answered = MHD_NO;
    int form = 0;
    json_t *body = lf_body_parse(in, req, 0, &form, &answered);
    if (!body)
        return answered;
    static const char *const known[] = {"scope",   "channel",         "rep",
                                        "origins", "rate_per_minute", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(known[i], k);
        if (!ok) {
            json_decref(body);
            return s_invalid(in, req, k, "unknown", "is not a key field");
        }
    }
    int bad = 0;
    lf_apikey_spec_t spec = {
        .scope = s_str(body, "scope", &bad),
        .channel = s_str(body, "channel", &bad),
        .rep = s_str(body, "rep", &bad),
        .origins = json_object_get(body, "origins"),
        .rate_per_minute = 600,
        .created_by = auth->key_id,
    };
    if (json_is_null(spec.origins))
        spec.origins = NULL;
    const json_t *rate = json_object_get(body, "rate_per_minute");
    if (rate && !json_is_integer(rate))
        bad = 1;
    else if (rate)
        spec.rate_per_minute =
            (int)(json_integer_value(rate) > 10000001 ? 10000001
                  : json_integer_value(rate) < -1     ? -1
                                                      : json_integer_value(rate));
    if (bad) {
        json_decref(body);
        return s_invalid(
            in, req, "body", "type",
            "scope, channel and rep are strings, rate_per_minute an integer");
    }
    if (!spec.scope) {
        json_decref(body);
        return s_invalid(in, req, "scope", "required",
                         "scope is intake, rep, manager or admin");
    }
    char why[160];
    if (lf_apikey_check(&spec, why, sizeof why) != LF_APIKEY_OK) {
        json_decref(body);
        return s_invalid(in, req, "key", "invalid", why);
    }
    lf_db_t *db = lf_intake_db(in);
    if (auth->scope == LF_SCOPE_MANAGER) {
        if (strcmp(spec.scope, "rep") != 0) {
            json_decref(body);
            return lf_reply_error(in, req->conn, 403, "forbidden",
                                  "a manager makes rep keys only (for the reps it "
                                  "reaches); other keys are made by the admin",
                                  NULL);
        }
        const char *p[] = {lf_access_scope_param(auth), lf_access_rep_param(auth),
                           spec.rep};
        PGresult *res = lf_db_exec(db, "SELECT lf_caller_reaches($1, $2, $3)", 3, p);
        if (!res) {
            json_decref(body);
            return s_unavailable(in, req, db);
        }
        int reach = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!reach) {
            json_decref(body);
            return s_invalid(in, req, "rep", "unknown", "no such rep");
        }
    }
    char id[24], key[72];
    int rc = lf_apikey_create(db, &spec, id, key, why, sizeof why);
    if (rc != LF_APIKEY_OK) {
        json_decref(body);
        if (rc == LF_APIKEY_DB)
            return s_unavailable(in, req, db);
        return s_invalid(in, req, "rep", rc == LF_APIKEY_NO_REP ? "unknown" : "inactive",
                         why);
    }
    lf_keys_invalidate(in->keys);
    const char *p[] = {id};
    PGresult *res = lf_db_exec(db,
                               "SELECT " S_KEY_JSON "::text FROM api_keys k"
                               " LEFT JOIN reps r ON r.id = k.rep_id WHERE k.id = $1",
                               1, p);
    json_t *out = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL)
                                             : json_object();
    PQclear(res);
    json_object_set_new(out, "id", json_string(id));
    json_object_set_new(out, "key", json_string(key));
    char masked[16];
    lf_info("key created id=%s scope=%s rep=%s by=%s key=%s", id, spec.scope,
            spec.rep ? spec.rep : "-", auth->key_id,
            lf_mask_key(key, masked, sizeof masked));
    memset(key, 0, sizeof key);
    json_decref(body);
    return lf_reply_json(in, req->conn, 201, out);
}

static enum MHD_Result s_list_keys(lf_intake_t *in, lf_req_t *req,
                                   const lf_auth_t *auth) {
    const char *rep =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "rep");
    const char *p[] = {lf_access_scope_param(auth), lf_access_rep_param(auth), rep};
    lf_db_t *db = lf_intake_db(in);
    PGresult *res = lf_db_exec(
        db,
        "SELECT json_build_object('keys', coalesce(json_agg(" S_KEY_JSON
        " ORDER BY k.created_at, k.id), '[]'))::text"
        " FROM api_keys k LEFT JOIN reps r ON r.id = k.rep_id"
        " WHERE ($1 = 'admin' OR (k.rep_id IS NOT NULL AND lf_caller_reaches($1, $2, "
        "k.rep_id)))"
        " AND ($3::text IS NULL OR k.rep_id = $3)",
        3, p);
    if (!res)
        return s_unavailable(in, req, db);
    json_t *out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return lf_reply_json(in, req->conn, 200, out ? out : json_pack("{s:[]}", "keys"));
}

static enum MHD_Result s_delete_key(lf_intake_t *in, lf_req_t *req,
                                    const lf_auth_t *auth) {
    const char *id = req->params[0];
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    lf_db_t *db = lf_intake_db(in);
    /* Revoking twice is not an error: the answer is the same. */
    PGresult *res = lf_db_exec(
        db,
        "WITH k AS (SELECT k.id FROM api_keys k WHERE k.id = $1 AND ($2 = 'admin' OR"
        "  (k.rep_id IS NOT NULL AND lf_caller_reaches($2, $3, k.rep_id)))),"
        " upd AS (UPDATE api_keys a SET revoked_at = coalesce(a.revoked_at, now())"
        "  FROM k WHERE a.id = k.id RETURNING a.id, a.revoked_at)"
        " SELECT json_build_object('id', id, 'state', 'revoked', 'revoked_at',"
        "  lf_rfc3339(revoked_at))::text FROM upd",
        3, p);
    if (!res)
        return s_unavailable(in, req, db);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such key", NULL);
    }
    json_t *out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    lf_keys_invalidate(in->keys);
    lf_info("key revoked id=%s by=%s", id, auth->key_id);
    return lf_reply_json(in, req->conn, 200, out ? out : json_object());
}

const lf_route_t lf_routes_keys[] = {
    {"POST", "/v1/keys", s_post_key, 1, 0, 1},
    {"GET", "/v1/keys", s_list_keys, 1, 0, 1},
    {"DELETE", "/v1/keys/{}", s_delete_key, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
