/* api_leads.c - POST /v1/leads and GET /v1/leads/{id}.
 *
 * POST takes JSON (API clients, fetch() from a web form), a form post
 * (application/x-www-form-urlencoded, a plain HTML form) and partner documents in their
 * own field names (?partner=acme or X-Leadflow-Partner, mapped by config/channels.json).
 * It validates and normalizes the whole submission first (every broken field in one
 * 422, nothing stored), then hands the canonical row to the group committer and
 * suspends the connection. The answer - 201, 200 for a retry or a merged repeat
 * inquiry, 503 when the database could not take it - is sent when the committer
 * resumes us. A web-form submission whose honeypot field is filled is answered like a
 * success and dropped: a bot learns nothing. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "intake.h"
#include "lead_view.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/util.h"
#include "parse.h"

static void s_resume(lf_job_t *job) {
    MHD_resume_connection((struct MHD_Connection *)job->done_arg);
}

/* Flattens the canonical lead into the columns of the leads table, in place: the
 * lead becomes the row (the caller's reference is taken over), so a lead is not copied
 * into a second object of the same keys only to be freed (building and freeing jansson
 * trees was about a sixth of intake's CPU: docs/benchmarks.md). A lead someone else
 * still holds is copied (shallow: its values are shared and never modified). */
json_t *lf_lead_row(json_t *lead, const char *id, const json_t *raw, const char *idem) {
    json_t *row = lead;
    if (lead->refcount > 1) {
        row = json_copy(lead);
        json_decref(lead);
    }
    json_object_set_new(row, "id", json_string(id));
    const json_t *b = json_object_get(row, "budget");
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

enum MHD_Result lf_job_answer(lf_intake_t *in, lf_req_t *req) {
    lf_job_t *job = &req->job;
    if (job->status == 503 && job->result && !strcmp(job->result, "busy"))
        return lf_reply_error_retry(
            in, req->conn, 503, "busy",
            "too many leads are waiting for the database; nothing was stored, retry "
            "after Retry-After seconds",
            lf_committer_retry_after(in->committer));
    if (job->status == 503)
        return lf_reply_error(in, req->conn, 503, "unavailable",
                              "the lead could not be stored right now; retry later",
                              NULL);
    return lf_reply_json(
        in, req->conn, (unsigned)job->status,
        json_pack("{s:s, s:s}", "id", job->result_id, "status", job->result));
}

static int s_queue_job(void *arg) {
    lf_req_t *req = arg;
    return lf_committer_submit(req->in->committer, &req->job);
}

enum MHD_Result lf_job_submit(lf_intake_t *in, lf_req_t *req) {
    lf_job_t *job = &req->job;
    job->done_fn = s_resume;
    job->done_arg = req->conn;
    /* What the queued job holds: the canonical row and the raw body it keeps. */
    job->bytes = 2 * req->len + 1024;
    req->job_active = 1;
    req->in = in;
    if (lf_req_hand_off(req, s_queue_job, req) < 0) {
        job->status = 503;
        atomic_store(&job->done, 1);
    }
    return MHD_YES;
}

json_t *lf_body_parse(lf_intake_t *in, lf_req_t *req, int allow_form, int *form,
                      enum MHD_Result *answered) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[96], charset[32];
    *form = 0;
    int ok =
        lf_parse_content_type(ct, media, sizeof media, charset, sizeof charset) == 0 &&
        (!charset[0] || !strcmp(charset, "utf-8") || !strcmp(charset, "utf8"));
    if (ok && !strcmp(media, "application/x-www-form-urlencoded") && allow_form)
        *form = 1;
    else if (!ok || strcmp(media, "application/json") != 0) {
        *answered =
            lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                           allow_form ? "send application/json or "
                                        "application/x-www-form-urlencoded (UTF-8)"
                                      : "send application/json (UTF-8)",
                           NULL);
        return NULL;
    }
    const char *why = NULL;
    char detail[320];
    json_t *body =
        *form ? lf_parse_form(req->body, req->len, &why)
              : lf_parse_json_object(req->body, req->len, &why, detail, sizeof detail);
    if (!body) {
        *answered = lf_reply_error(
            in, req->conn, 400, "bad_request",
            *form ? (why ? why : "form body cannot be parsed") : detail, NULL);
        return NULL;
    }
    return body;
}

int lf_idempotency(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth, char *out,
                   size_t outsz, enum MHD_Result *answered) {
    const char *ik =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (ik && strlen(ik) > 200) {
        *answered =
            lf_reply_error(in, req->conn, 400, "bad_request",
                           "Idempotency-Key must be at most 200 characters", NULL);
        return -1;
    }
    if (!ik || !*ik)
        return 0;
    snprintf(out, outsz, "%s:%s", auth->key_id, ik);
    return 1;
}

static enum MHD_Result s_post_lead(lf_intake_t *in, lf_req_t *req,
                                   const lf_auth_t *auth) {
    if (req->job_active)
        return lf_job_answer(in, req);
    enum MHD_Result answered = MHD_NO;
    int form = 0;
    json_t *body = lf_body_parse(in, req, 1, &form, &answered);
    if (!body)
        return answered;
    /* Web-form plumbing fields never reach the lead. */
    const char *hp = json_string_value(json_object_get(body, "leadflow_hp"));
    if (hp && *hp) {
        /* Honeypot: a field people never see was filled in, so a bot sent this. It
         * gets the answer a person would get and nothing is stored. */
        lf_info("web-form submission dropped: honeypot filled key=%s", auth->key_id);
        json_decref(body);
        char fake[37];
        lf_uuid7(fake);
        return lf_reply_json(in, req->conn, 201,
                             json_pack("{s:s, s:s}", "id", fake, "status", "created"));
    }
    json_object_del(body, "leadflow_hp");
    json_object_del(body, "leadflow_key");
    /* A partner's own document, mapped to our field names. */
    const char *partner =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "partner");
    if (!partner)
        partner =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Leadflow-Partner");
    json_t *input = json_incref(body);
    if (partner) {
        json_decref(input);
        input = lf_mapping_apply(in->mapping, partner, body);
        if (!input) {
            json_decref(body);
            json_t *errors = json_array();
            lf_field_error(errors, "partner", "unknown",
                           "no such partner in config/channels.json");
            return lf_reply_error(in, req->conn, 422, "validation_failed",
                                  "the lead breaks one or more rules; nothing was stored",
                                  errors);
        }
    }
    char idem[320];
    int has_idem = lf_idempotency(in, req, auth, idem, sizeof idem, &answered);
    if (has_idem < 0) {
        json_decref(input);
        json_decref(body);
        return answered;
    }
    json_t *errors = json_array();
    const char *dflt = auth->channel[0] ? auth->channel : "api";
    if (form && !auth->channel[0])
        dflt = "web_form";
    json_t *lead = lf_lead_canonical(
        input, dflt, (auth->channel[0] && !auth->is_admin) ? auth->channel : NULL,
        errors);
    json_decref(input);
    if (!lead) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the lead breaks one or more rules; nothing was stored",
                              errors);
    }
    json_decref(errors);
    lf_job_t *job = &req->job;
    lf_uuid7(job->lead_id);
    job->row = lf_lead_row(lead, job->lead_id, body, has_idem ? idem : NULL);
    json_decref(body);
    return lf_job_submit(in, req);
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

/* The lead as the API shows it (docs/openapi.yaml), built by PostgreSQL in one query.
 * The timeline is the lead's lead_events rows, each as the entries it stands for
 * (lf_timeline_entries), preceded by the 'created' entry of a lead intake made, which
 * intake does not store (db/functions/21_lf_intake_commit.sql): the lead's own
 * created_at, channel and source, as the stored entry had them, for a lead marked
 * intake_open (true or false: every lead intake made) without a stored one (leads made
 * before 2026-12-02 have theirs). */
static const char *s_get_sql =
    "SELECT json_build_object(" LF_LEAD_VIEW_FIELDS ","
    " 'timeline', (SELECT coalesce(json_agg(t.entry ORDER BY t.id, t.k), '[]'::json)"
    "  FROM (SELECT 0::bigint AS id, 0 AS k, jsonb_build_object("
    "          'at', lf_rfc3339(l.created_at), 'type', 'created', 'actor', NULL,"
    "          'channel', l.channel, 'source', l.source) AS entry"
    "         WHERE l.intake_open IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lead_events c"
    "           WHERE c.lead_id = l.id AND c.type = 'created')"
    "        UNION ALL"
    "        SELECT e.id, x.k, jsonb_build_object('at', lf_rfc3339(e.at), 'type', x.type,"
    "          'actor', e.actor) || lf_timeline_data(x.data)"
    "         FROM lead_events e CROSS JOIN LATERAL lf_timeline_entries(e.type, e.data) x"
    "         WHERE e.lead_id = l.id) t)"
    ")::text FROM leads l WHERE l.id = $1 AND lf_caller_sees($2, $3, l.owner)";

static enum MHD_Result s_get_lead(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    lf_db_t *db = lf_intake_db(in);
    /* A lead the caller may not see is "no such lead" (access.h). */
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(db, s_get_sql, 3, p);
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
    {"POST", "/v1/leads", s_post_lead, 1, 0, 0},
    {"GET", "/v1/leads/{}", s_get_lead, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
