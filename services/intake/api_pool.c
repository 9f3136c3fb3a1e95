/* api_pool.c - the team pool (公海 / 待分配) and moving leads between people:
 *   GET  /v1/pool?team=              the leads the caller may claim, oldest first
 *   POST /v1/leads/{id}/claim        a rep (or manager) takes a pool lead for itself
 *   POST /v1/leads/{id}/assign       a manager or the admin gives a lead to a rep, or
 *                                    ({"rep": null}) has the router route it again
 *   POST /v1/reps/{id}/handover      a rep's open leads to another rep, or routed again
 *
 * Every move is one call of a SQL function (db/functions/80_lf_team_moves.sql) that
 * takes the router's routing lock, checks the lead under its row lock and writes the
 * owner, the counts, the fairness ledger, the timeline (who and why), the
 * notifications and the lead.reassigned event in one transaction: two reps claiming the
 * same lead at once get one 200 and one 409, never two owners. Routing "by the rules"
 * stays the router's job: intake only writes the lead.reassign event it acts on.
 *
 * Who may do what is access.c's route table (403) and, per lead, lf_caller_sees /
 * lf_caller_sees_pool in SQL (404 for a lead outside the caller's reach). The team's
 * claim rules (daily limit, cool-down) come from config/routing.json (lf/teams.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "intake.h"
#include "lead_view.h"
#include "lf/log.h"
#include "lf/util.h"

static enum MHD_Result s_unavailable(lf_intake_t *in, lf_req_t *req) {
    return lf_reply_error_retry(in, req->conn, 503, "unavailable",
                                "the database cannot be reached", 1);
}

static int s_valid_id(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The name a move records as "by": the caller's rep, or "admin". */
static const char *s_by(const lf_auth_t *auth) {
    return auth->rep_id[0] ? auth->rep_id : "admin";
}

/* Publishes the envelopes in column 0 of res (moves already committed). */
static void s_publish_rows(lf_intake_t *in, PGresult *res, int col) {
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, col))
            continue;
        const char *env = PQgetvalue(res, i, col);
        json_t *e = json_loads(env, 0, NULL);
        const char *type = json_string_value(json_object_get(e, "type"));
        if (type)
            lf_intake_publish(in, type, env, strlen(env));
        json_decref(e);
    }
}

/* The lead as the API shows it (no timeline) into a reply. */
static enum MHD_Result s_reply_lead(lf_intake_t *in, lf_req_t *req, unsigned status,
                                    const char *id) {
    const char *p[] = {id};
    PGresult *res = lf_db_exec(lf_intake_db(in),
                               "SELECT json_build_object(" LF_LEAD_VIEW_FIELDS
                               ")::text FROM leads l WHERE l.id = $1",
                               1, p);
    if (!res)
        return s_unavailable(in, req);
    json_t *lead = PQntuples(res) ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    if (!lead)
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    return lf_reply_json(in, req->conn, status, lead);
}

/* ---- GET /v1/pool ---- */

static enum MHD_Result s_pool(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *team =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "team");
    const char *limit_s =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    char *end = NULL;
    long limit = limit_s ? strtol(limit_s, &end, 10) : 200;
    if (limit_s && (!*limit_s || *end || limit < 1 || limit > 500))
        return lf_reply_error(
            in, req->conn, 422, "validation_failed", "limit must be 1..500",
            json_pack("[{s:s, s:s, s:s}]", "field", "limit", "code", "invalid", "message",
                      "an integer from 1 to 500"));
    char limit_buf[24];
    snprintf(limit_buf, sizeof limit_buf, "%ld", limit);
    const char *p[] = {lf_access_scope_param(auth), lf_access_rep_param(auth), team,
                       limit_buf};
    PGresult *res = lf_db_exec(
        lf_intake_db(in),
        "SELECT json_build_object('leads', coalesce(json_agg(j ORDER BY ps, id), '[]'))"
        "::text FROM (SELECT json_build_object(" LF_LEAD_VIEW_FIELDS
        ") AS j, l.pool_since AS ps, l.id"
        "  FROM leads l WHERE l.pool_reason IS NOT NULL AND l.stage NOT IN ('won', "
        "'lost')"
        "   AND ($3::text IS NULL OR l.team = $3)"
        "   AND lf_caller_sees_pool($1, $2, l.team)"
        "  ORDER BY l.pool_since, l.id LIMIT $4::int) x",
        4, p);
    if (!res)
        return s_unavailable(in, req);
    json_t *out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return lf_reply_json(in, req->conn, 200, out);
}

/* ---- POST /v1/leads/{id}/claim ---- */

static const char *s_why_not(const char *status) {
    static const struct {
        const char *status, *why;
    } msgs[] = {
        {"not_in_pool", "the lead is no longer in the pool"},
        {"closed", "the lead is won or lost"},
        {"at_capacity", "you are at capacity: close or hand over a lead first"},
        {"inactive", "your rep record is not active"},
        {"daily_limit", "you reached your team's daily claim limit"},
        {"cooldown", "you lost this lead recently; the team's cool-down has not passed"},
        {"same_owner", "you already own this lead"},
        {"no_rep", "your key's rep does not exist"},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++)
        if (!strcmp(msgs[i].status, status))
            return msgs[i].why;
    return "the lead cannot be claimed";
}

static enum MHD_Result s_claim(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!auth->rep_id[0])
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "only a rep or manager key claims, for its own rep; the "
                              "admin gives leads with /assign",
                              NULL);
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    lf_db_t *db = lf_intake_db(in);
    /* Whose pool is it: a lead of a team whose pool the caller reads (or its own). */
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(db,
                               "SELECT l.team FROM leads l WHERE l.id = $1 AND"
                               " (lf_caller_sees_pool($2, $3, l.team)"
                               "  OR lf_caller_sees($2, $3, l.owner))",
                               3, p);
    if (!res)
        return s_unavailable(in, req);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    }
    const lf_team_t *team =
        lf_teams_get(in->teams, PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
    PQclear(res);
    int64_t now = (int64_t)time(NULL);
    char day_start[40], limit[16], cooldown[24];
    lf_rfc3339(lf_bizcal_day_start(team->calendar, now) * 1000, day_start,
               sizeof day_start);
    snprintf(limit, sizeof limit, "%d", team->claim_daily_limit);
    snprintf(cooldown, sizeof cooldown, "%lld", (long long)team->claim_cooldown_secs);
    const char *q[] = {id, auth->rep_id, day_start, limit, cooldown};
    res = lf_db_exec(db,
                     "SELECT status, envelope FROM lf_claim_lead($1, $2, $3::timestamptz,"
                     " $4::int, $5::bigint)",
                     5, q);
    if (!res)
        return s_unavailable(in, req);
    char status[32];
    lf_strlcpy(status, PQgetvalue(res, 0, 0), sizeof status);
    if (strcmp(status, "moved")) {
        PQclear(res);
        if (!strcmp(status, "not_found"))
            return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
        return lf_reply_error(in, req->conn, 409, "not_claimable", s_why_not(status),
                              NULL);
    }
    s_publish_rows(in, res, 1);
    PQclear(res);
    lf_info("lead claimed lead=%s rep=%s", id, auth->rep_id);
    return s_reply_lead(in, req, 200, id);
}

/* ---- POST /v1/leads/{id}/assign ---- */

static json_t *s_field(const char *field, const char *msg) {
    return json_pack("[{s:s, s:s, s:s}]", "field", field, "code", "invalid", "message",
                     msg);
}

/* Appends one field error to `errors`. */
static void s_bad(json_t *errors, const char *field, const char *msg) {
    json_t *one = s_field(field, msg);
    json_array_extend(errors, one);
    json_decref(one);
}

/* The body of assign / handover: an object, or NULL after answering. */
static json_t *s_body(lf_intake_t *in, lf_req_t *req, enum MHD_Result *rc) {
    int form = 0;
    return lf_body_parse(in, req, 0, &form, rc);
}

/* Checks that `rep` is a rep the caller may give leads to (reaches it; active).
 * Returns NULL when fine, else the reason. */
static const char *s_target_bad(lf_db_t *db, const lf_auth_t *auth, const char *rep,
                                int *db_err) {
    const char *p[] = {rep, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(db,
                               "SELECT r.active, lf_caller_reaches($2, $3, r.id)"
                               " FROM reps r WHERE r.id = $1",
                               3, p);
    *db_err = !res;
    if (!res)
        return "database";
    const char *why = NULL;
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 1)[0] != 't')
        why = "no such rep among the reps you manage";
    else if (PQgetvalue(res, 0, 0)[0] != 't')
        why = "the rep is not active";
    PQclear(res);
    return why;
}

static enum MHD_Result s_assign(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *id = req->params[0];
    enum MHD_Result rc;
    json_t *body = s_body(in, req, &rc);
    if (!body)
        return rc;
    json_t *rep_v = json_object_get(body, "rep"),
           *reason_v = json_object_get(body, "reason");
    json_t *errors = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "rep") && strcmp(k, "reason"))
            s_bad(errors, k, "unknown field (rep, reason)");
    }
    if (!rep_v || (!json_is_null(rep_v) && !s_valid_id(json_string_value(rep_v))))
        s_bad(errors, "rep", "a rep id, or null to route by the rules");
    if (reason_v && !json_is_null(reason_v) &&
        (!json_is_string(reason_v) || json_string_length(reason_v) > 500))
        s_bad(errors, "reason", "text of at most 500 bytes");
    const char *rep = json_string_value(rep_v);
    const char *reason = json_string_value(reason_v);
    lf_db_t *db = lf_intake_db(in);
    enum MHD_Result out;
    if (json_array_size(errors)) {
        out = lf_reply_error(in, req->conn, 422, "validation_failed",
                             "the assignment breaks one or more rules; nothing changed",
                             errors);
        errors = NULL;
        goto done;
    }
    /* The lead: one the caller sees, or one in a pool it reads. */
    const char *p[] = {s_valid_id(id) ? id : "", lf_access_scope_param(auth),
                       lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(db,
                               "SELECT l.owner, l.stage IN ('won', 'lost') FROM leads l"
                               " WHERE l.id = $1 AND (lf_caller_sees($2, $3, l.owner) OR"
                               " (l.pool_reason IS NOT NULL AND"
                               "  lf_caller_sees_pool($2, $3, l.team)))",
                               3, p);
    if (!res) {
        out = s_unavailable(in, req);
        goto done;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        out = lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
        goto done;
    }
    char owner[64] = "";
    if (!PQgetisnull(res, 0, 0))
        lf_strlcpy(owner, PQgetvalue(res, 0, 0), sizeof owner);
    int closed = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (closed) {
        out = lf_reply_error(in, req->conn, 409, "closed",
                             "the lead is won or lost; reopen it before assigning", NULL);
        goto done;
    }
    if (!rep) {
        /* Route again by the rules, without the current owner: the router's job. */
        json_t *pl =
            json_pack("{s:s, s:s, s:[s?], s:s?}", "reason", "assign", "by", s_by(auth),
                      "exclude", owner[0] ? owner : NULL, "note", reason);
        char *pl_text = json_dumps(pl, JSON_COMPACT);
        json_decref(pl);
        const char *q[] = {id, pl_text};
        res =
            lf_db_exec(db,
                       "INSERT INTO outbox (event_id, type, lead_id, payload)"
                       " VALUES (gen_random_uuid(), 'lead.reassign', $1, $2::jsonb)"
                       " RETURNING lf_envelope(id, event_id, type, lead_id, at, version,"
                       " payload)::text",
                       2, q);
        free(pl_text);
        if (!res) {
            out = s_unavailable(in, req);
            goto done;
        }
        s_publish_rows(in, res, 0);
        PQclear(res);
        out = lf_reply_json(in, req->conn, 202,
                            json_pack("{s:s, s:s}", "id", id, "status", "routing"));
        goto done;
    }
    int db_err = 0;
    const char *bad = s_target_bad(db, auth, rep, &db_err);
    if (db_err) {
        out = s_unavailable(in, req);
        goto done;
    }
    if (bad) {
        out = lf_reply_error(in, req->conn, 422, "validation_failed", bad,
                             s_field("rep", bad));
        goto done;
    }
    const char *q[] = {id, rep, s_by(auth), reason};
    res = lf_db_exec(db,
                     "SELECT status, envelope FROM lf_move_lead($1, $2, $3, 'assign', $4,"
                     " NULL, NULL, false, false)",
                     4, q);
    if (!res) {
        out = s_unavailable(in, req);
        goto done;
    }
    const char *status = PQgetvalue(res, 0, 0);
    if (!strcmp(status, "moved")) {
        s_publish_rows(in, res, 1);
        PQclear(res);
        lf_info("lead assigned lead=%s rep=%s by=%s", id, rep, s_by(auth));
        out = s_reply_lead(in, req, 200, id);
        goto done;
    }
    out = !strcmp(status, "same_owner")
              ? lf_reply_error(in, req->conn, 409, "already_owner",
                               "the rep already owns this lead", NULL)
              : lf_reply_error(in, req->conn, 409, "not_assignable", status, NULL);
    PQclear(res);
done:
    json_decref(errors);
    json_decref(body);
    return out;
}

/* ---- POST /v1/reps/{id}/handover ---- */

static enum MHD_Result s_handover(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *from = req->params[0];
    enum MHD_Result rc;
    json_t *body = s_body(in, req, &rc);
    if (!body)
        return rc;
    json_t *to_v = json_object_get(body, "to"), *stages = json_object_get(body, "stages"),
           *reason_v = json_object_get(body, "reason");
    json_t *errors = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "to") && strcmp(k, "stages") && strcmp(k, "reason"))
            s_bad(errors, k, "unknown field (to, stages, reason)");
    }
    if (!to_v || (!json_is_null(to_v) && !s_valid_id(json_string_value(to_v))))
        s_bad(errors, "to", "a rep id, or null to route by the rules");
    if (stages && !json_is_null(stages)) {
        size_t i;
        json_t *s;
        int ok = json_is_array(stages) && json_array_size(stages) > 0;
        json_array_foreach(stages, i, s) {
            const char *st = json_string_value(s);
            if (!st || lf_pipeline_is_open(in->pipeline, st) != 1)
                ok = 0;
        }
        if (!ok)
            s_bad(errors, "stages", "a non-empty list of open stages");
    }
    if (reason_v && !json_is_null(reason_v) &&
        (!json_is_string(reason_v) || json_string_length(reason_v) > 500))
        s_bad(errors, "reason", "text of at most 500 bytes");
    const char *to = json_string_value(to_v);
    lf_db_t *db = lf_intake_db(in);
    enum MHD_Result out;
    if (json_array_size(errors)) {
        out = lf_reply_error(in, req->conn, 422, "validation_failed",
                             "the handover breaks one or more rules; nothing changed",
                             errors);
        errors = NULL;
        goto done;
    }
    /* The rep whose leads move: one the caller reaches (not itself, for a rep). */
    const char *p[] = {s_valid_id(from) ? from : "", lf_access_scope_param(auth),
                       lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(
        db, "SELECT 1 FROM reps r WHERE r.id = $1 AND lf_caller_reaches($2, $3, r.id)", 3,
        p);
    if (!res) {
        out = s_unavailable(in, req);
        goto done;
    }
    int found = PQntuples(res) == 1;
    PQclear(res);
    if (!found) {
        out = lf_reply_error(in, req->conn, 404, "not_found", "no such rep", NULL);
        goto done;
    }
    if (to) {
        int db_err = 0;
        const char *bad = !strcmp(to, from) ? "the leads are already that rep's"
                                            : s_target_bad(db, auth, to, &db_err);
        if (db_err) {
            out = s_unavailable(in, req);
            goto done;
        }
        if (bad) {
            out = lf_reply_error(in, req->conn, 422, "validation_failed", bad,
                                 s_field("to", bad));
            goto done;
        }
    }
    char *stages_text =
        stages && !json_is_null(stages) ? json_dumps(stages, JSON_COMPACT) : NULL;
    const char *q[] = {from, to, stages_text, s_by(auth), json_string_value(reason_v)};
    res = lf_db_exec(db,
                     "SELECT e FROM lf_handover($1, $2, (SELECT array_agg(x) FROM"
                     " jsonb_array_elements_text($3::jsonb) x), $4, $5) e",
                     5, q);
    free(stages_text);
    if (!res) {
        out = s_unavailable(in, req);
        goto done;
    }
    int moved = PQntuples(res);
    s_publish_rows(in, res, 0);
    PQclear(res);
    lf_info("handover from=%s to=%s leads=%d by=%s", from, to ? to : "(rules)", moved,
            s_by(auth));
    out = lf_reply_json(
        in, req->conn, 200,
        json_pack("{s:i, s:s}", "moved", moved, "to", to ? to : "routed by the rules"));
done:
    json_decref(errors);
    json_decref(body);
    return out;
}

const lf_route_t lf_routes_pool[] = {
    {"GET", "/v1/pool", s_pool, 1, 0, 1},
    {"POST", "/v1/leads/{}/claim", s_claim, 1, 0, 1},
    {"POST", "/v1/leads/{}/assign", s_assign, 1, 0, 1},
    {"POST", "/v1/reps/{}/handover", s_handover, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
