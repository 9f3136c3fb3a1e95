/* api_leads.c - POST /v1/leads and GET /v1/leads/{id}.
 *
 * POST validates and normalizes the whole submission first (every broken field in
 * one 422, nothing stored), then hands the canonical row to the group committer and
 * suspends the connection. The answer - 201, 200 for a retry, 503 when the database
 * could not take it - is sent when the committer resumes us. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "intake.h"
#include "lf/lead.h"
#include "lf/util.h"

static void s_resume(lf_job_t *job) {
    MHD_resume_connection((struct MHD_Connection *)job->done_arg);
}

/* Flattens the canonical lead into the columns of the leads table. */
static json_t *s_row(const json_t *lead, const char *id, const json_t *raw,
                     const char *idem) {
    json_t *row = json_deep_copy(lead);
    json_object_set_new(row, "id", json_string(id));
    const json_t *b = json_object_get(lead, "budget");
    if (json_is_object(b)) {
        json_object_set(row, "budget_min", json_object_get(b, "min"));
        json_object_set(row, "budget_max", json_object_get(b, "max"));
        json_object_set(row, "currency", json_object_get(b, "currency"));
        json_object_set(row, "budget_raw", json_object_get(b, "raw"));
    }
    json_object_del(row, "budget");
    json_object_set(row, "raw", (json_t *)raw);
    json_object_set_new(row, "idempotency_key", idem ? json_string(idem) : json_null());
    return row;
}

static enum MHD_Result s_finish(lf_intake_t *in, lf_req_t *req) {
    lf_job_t *job = &req->job;
    if (job->status == 503)
        return lf_reply_error(in, req->conn, 503, "unavailable",
                              "the lead could not be stored right now; retry later",
                              NULL);
    return lf_reply_json(
        in, req->conn, (unsigned)job->status,
        json_pack("{s:s, s:s}", "id", job->result_id, "status", job->result));
}

static enum MHD_Result s_post_lead(lf_intake_t *in, lf_req_t *req,
                                   const lf_auth_t *auth) {
    if (req->job_active)
        return s_finish(in, req);
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))
        return lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                              "send application/json", NULL);
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        return lf_reply_error(in, req->conn, 400, "bad_request", msg, NULL);
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 400, "bad_request",
                              "body must be a JSON object", NULL);
    }
    json_t *errors = json_array();
    json_t *lead = lf_lead_canonical(
        body, auth->channel[0] ? auth->channel : "api",
        (auth->channel[0] && !auth->is_admin) ? auth->channel : NULL, errors);
    if (!lead) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the lead breaks one or more rules; nothing was stored",
                              errors);
    }
    json_decref(errors);
    char idem[320];
    const char *ik =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (ik && strlen(ik) > 200) {
        json_decref(body);
        json_decref(lead);
        return lf_reply_error(in, req->conn, 400, "bad_request",
                              "Idempotency-Key must be at most 200 characters", NULL);
    }
    if (ik && *ik)
        snprintf(idem, sizeof idem, "%s:%s", auth->key_id, ik);
    lf_job_t *job = &req->job;
    lf_uuid7(job->lead_id);
    job->row = s_row(lead, job->lead_id, body, (ik && *ik) ? idem : NULL);
    json_decref(lead);
    json_decref(body);
    job->done_fn = s_resume;
    job->done_arg = req->conn;
    req->job_active = 1;
    /* Suspend before queueing, so the committer can never resume a connection that
     * is not suspended yet. */
    MHD_suspend_connection(req->conn);
    if (lf_committer_submit(in->committer, job) < 0) {
        job->status = 503;
        atomic_store(&job->done, 1);
        MHD_resume_connection(req->conn);
    }
    return MHD_YES;
}

static int s_valid_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* The lead as API.md shows it, built by PostgreSQL in one query. */
static const char *s_get_sql =
    "SELECT json_build_object("
    " 'id', l.id, 'channel', l.channel, 'source', l.source, 'name', l.name,"
    " 'company', l.company, 'email', l.email, 'phone', l.phone,"
    " 'budget', CASE WHEN l.budget_min IS NULL AND l.budget_max IS NULL THEN NULL"
    "   ELSE json_build_object('min', l.budget_min, 'max', l.budget_max,"
    "   'currency', l.currency, 'raw', l.budget_raw) END,"
    " 'urgency', l.urgency, 'decision_maker', l.decision_maker, 'region', l.region,"
    " 'industry', l.industry, 'need', l.need, 'external_id', l.external_id,"
    " 'extra', l.extra, 'created_at', lf_rfc3339(l.created_at),"
    " 'grade', l.grade, 'score', l.score,"
    " 'score_breakdown', coalesce(l.score_breakdown, '[]'::jsonb),"
    " 'owner', l.owner, 'assignment_reason', l.assignment_reason, 'queue', l.queue,"
    " 'stage', l.stage, 'stage_changed_at', lf_rfc3339(l.stage_changed_at),"
    " 'first_contact_at', lf_rfc3339(l.first_contact_at),"
    " 'timeline', (SELECT coalesce(json_agg(jsonb_build_object('at', lf_rfc3339(e.at),"
    "   'type', e.type, 'actor', e.actor) || e.data ORDER BY e.id), '[]'::json)"
    "   FROM lead_events e WHERE e.lead_id = l.id)"
    ")::text FROM leads l WHERE l.id = $1";

static enum MHD_Result s_get_lead(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    lf_db_t *db = lf_intake_db(in);
    const char *p[] = {id};
    PGresult *res = lf_db_exec(db, s_get_sql, 1, p);
    if (!res)
        return lf_reply_error(in, req->conn, 503, "unavailable",
                              "the database cannot be reached", NULL);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    }
    json_t *lead = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!lead)
        return lf_reply_error(in, req->conn, 500, "internal", "lead could not be read",
                              NULL);
    return lf_reply_json(in, req->conn, 200, lead);
}

const lf_route_t lf_routes_leads[] = {
    {"POST", "/v1/leads", s_post_lead, 1, 0},
    {"GET", "/v1/leads/{}", s_get_lead, 1, 0},
    {NULL, NULL, NULL, 0, 0},
};
