/* api_pipeline.c - the HTTP API for stage moves, activities and the pipeline definition.
 */
#include "access.h"
#include "intake.h"

/*
 * A stage move or an activity is one short transaction on the calling thread's
 * connection: the lead row is locked (SELECT ... FOR NO KEY UPDATE), the rules of
 * common/pipeline.c are asked, and everything the change means is written before the
 * commit - the lead's new state, an append-only timeline entry naming who did it, the
 * playbook notification for the owner, the owner's open-deal count, the customer on a
 * win, and the outbox events. The events go out on ZeroMQ only after the commit; if
 * that send is lost the consumers find them in the outbox.
 *
 * The row lock serializes concurrent moves of one lead: of several identical moves
 * racing, the first one wins and the others find the lead already in that stage, which
 * the rules forbid (409). No move is lost and none is recorded twice. It is the weakest
 * mode that serializes writers of the row (FOR UPDATE also blocked the foreign-key
 * checks of the rows that referenced the lead, which carry no foreign key since
 * migration 0040). A repeat inquiry merged into this lead takes FOR NO KEY UPDATE on
 * it too, so it waits for a move that may close the deal and then sees the new stage.
 *
 * Lock order (docs/reliability.md): the lead, then its owner's reps row. The router
 * takes the same order for a whole batch (every lead of the batch, by id, then reps),
 * so a stage move and a routing batch never wait for each other in a cycle.
 *
 * Who is acting: a rep key acts as that rep on the deals it owns, a manager key on
 * those of the reps it reaches (access.h; any other deal is "no such lead"); the
 * admin key acts as the admin, or - with the header X-Leadflow-Actor: <rep id> - on
 * behalf of that rep, whose permissions then apply and whose id goes into the
 * timeline (with via: admin). Intake keys never move deals (403, access.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf/consumer.h"
#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

#define S_ACTIVITY_TYPES "call, visit, email, meeting, note"

static const char *const s_activity_types[] = {"call",    "visit", "email",
                                               "meeting", "note",  NULL};

/* Who acts, resolved from the key and the X-Leadflow-Actor header. */
typedef struct {
    lf_actor_t actor; /* what the permission rule sees */
    char name[64];    /* recorded as the timeline actor: a rep id or "admin" */
    int on_behalf;    /* the admin key acting for the rep in name */
} s_who_t;

static int s_valid_id(const char *id) {
    size_t n = strlen(id);
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

static json_t *s_field(const char *field, const char *code, const char *message) {
    return json_pack("{s:s, s:s, s:s}", "field", field, "code", code, "message", message);
}

static enum MHD_Result s_unavailable(lf_intake_t *in, lf_req_t *req, lf_db_t *db) {
    lf_warn("pipeline request failed: %s", db->errstr);
    lf_db_rollback(db);
    return lf_reply_error(in, req->conn, 503, "unavailable",
                          "the database cannot be reached; nothing was changed", NULL);
}

/* Parses the JSON object body. Returns it (caller owns) or NULL after replying. An
 * empty body is an empty object. */
static json_t *s_body(lf_intake_t *in, lf_req_t *req, enum MHD_Result *rc) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (req->len > 0 && (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
                         (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))) {
        *rc = lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                             "send application/json", NULL);
        return NULL;
    }
    if (req->len == 0)
        return json_object();
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        char msg[256];
        if (body)
            snprintf(msg, sizeof msg, "body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "body is not valid JSON: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        json_decref(body);
        *rc = lf_reply_error(in, req->conn, 400, "bad_request", msg, NULL);
        return NULL;
    }
    return body;
}

/* Resolves who acts. Returns 0, or -1 after replying (403 for the header without
 * the admin key, 422 for a malformed rep id). Whether the rep exists is checked in
 * the transaction. */
static int s_who(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth, s_who_t *who,
                 enum MHD_Result *rc) {
    memset(who, 0, sizeof *who);
    const char *as =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Leadflow-Actor");
    if (as && *as) {
        if (!auth->is_admin) {
            *rc = lf_reply_error(in, req->conn, 403, "forbidden",
                                 "X-Leadflow-Actor is accepted only with the admin key",
                                 NULL);
            return -1;
        }
        if (!s_valid_id(as)) {
            *rc = lf_reply_error(
                in, req->conn, 422, "validation_failed",
                "X-Leadflow-Actor is not a rep id",
                json_pack("[o]", s_field("X-Leadflow-Actor", "invalid",
                                         "must be a rep id (letters, digits, . _ -)")));
            return -1;
        }
        lf_strlcpy(who->name, as, sizeof who->name);
        who->actor.rep_id = who->name;
        who->on_behalf = 1;
    } else if (auth->rep_id[0]) {
        lf_strlcpy(who->name, auth->rep_id, sizeof who->name);
        who->actor.rep_id = who->name;
        who->actor.is_admin = auth->is_admin;
    } else {
        lf_strlcpy(who->name, auth->is_admin ? "admin" : auth->key_id, sizeof who->name);
        who->actor.is_admin = auth->is_admin;
    }
    return 0;
}

/* The locked lead: stage, owner, the owner's manager, whether first contact is still
 * pending. Returns 1 found, 0 no such lead, -1 database error. */
typedef struct {
    char stage[40];
    char owner[72];
    char manager[72];
    int has_owner, has_manager, no_contact_yet;
    int visible; /* the key may see it (access.h); when not, it is "no such lead" */
} s_lead_t;

static int s_lock_lead(lf_db_t *db, const char *id, const lf_auth_t *auth, s_lead_t *l) {
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res =
        lf_db_exec(db,
                   "SELECT l.stage, l.owner, r.manager, l.first_contact_at IS NULL,"
                   " lf_caller_sees($2, $3, l.owner)"
                   " FROM leads l LEFT JOIN reps r ON r.id = l.owner"
                   " WHERE l.id = $1 FOR NO KEY UPDATE OF l",
                   3, p);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        memset(l, 0, sizeof *l);
        lf_strlcpy(l->stage, PQgetvalue(res, 0, 0), sizeof l->stage);
        l->has_owner = !PQgetisnull(res, 0, 1);
        lf_strlcpy(l->owner, PQgetvalue(res, 0, 1), sizeof l->owner);
        l->has_manager = !PQgetisnull(res, 0, 2);
        lf_strlcpy(l->manager, PQgetvalue(res, 0, 2), sizeof l->manager);
        l->no_contact_yet = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        l->visible = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    }
    PQclear(res);
    return found;
}

/* 1 when the rep exists, 0 when not, -1 on a database error. */
static int s_rep_exists(lf_db_t *db, const char *rep) {
    const char *p[] = {rep};
    PGresult *res = lf_db_exec(db, "SELECT 1 FROM reps WHERE id = $1", 1, p);
    if (!res)
        return -1;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1;
}

/* Adds an outbox event to `out` (its envelope). Returns 0 or -1. */
static int s_event(lf_db_t *db, json_t *out, const char *type, const char *lead_id,
                   const json_t *payload) {
    json_t *env = lf_outbox_add(db, type, lead_id, payload);
    if (!env)
        return -1;
    json_array_append_new(out, env);
    return 0;
}

/* Sends the committed envelopes; a dropped send is swept from the outbox. */
static void s_publish(lf_intake_t *in, const json_t *envs) {
    size_t i;
    const json_t *env;
    json_array_foreach(envs, i, env) {
        char *text = json_dumps(env, JSON_COMPACT);
        if (text)
            lf_intake_publish(in, lf_event_type(env), text, strlen(text));
        free(text);
    }
}

/* Checks the lock result and the acting rep, then the permission. Returns 0 to go
 * on, or -1 after rolling back and replying. */
static int s_admit(lf_intake_t *in, lf_req_t *req, lf_db_t *db, int found,
                   const s_who_t *who, const s_lead_t *l, enum MHD_Result *rc) {
    if (found < 0) {
        *rc = s_unavailable(in, req, db);
        return -1;
    }
    if (found == 0 || !l->visible) {
        lf_db_rollback(db);
        *rc = lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
        return -1;
    }
    if (who->on_behalf) {
        int ok = s_rep_exists(db, who->name);
        if (ok < 0) {
            *rc = s_unavailable(in, req, db);
            return -1;
        }
        if (!ok) {
            lf_db_rollback(db);
            *rc = lf_reply_error(in, req->conn, 422, "validation_failed",
                                 "X-Leadflow-Actor names no rep",
                                 json_pack("[o]", s_field("X-Leadflow-Actor", "unknown",
                                                          "no rep has this id")));
            return -1;
        }
    }
    /* The key's own reach was settled by visible; the admin acting for a rep gets
     * that rep's permissions. */
    if (who->on_behalf &&
        !lf_pipeline_may_move(&who->actor, l->has_owner ? l->owner : NULL,
                              l->has_manager ? l->manager : NULL)) {
        lf_db_rollback(db);
        *rc = lf_reply_error(in, req->conn, 403, "forbidden",
                             l->has_owner
                                 ? "only the deal's owner, the owner's manager or an "
                                   "admin may change this deal"
                                 : "this deal has no owner yet: only an admin may "
                                   "change it",
                             NULL);
        return -1;
    }
    return 0;
}

/* ---- POST /v1/leads/{id}/stage ------------------------------------------------- */

static enum MHD_Result s_post_stage(lf_intake_t *in, lf_req_t *req,
                                    const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    enum MHD_Result rc = MHD_NO;
    json_t *body = s_body(in, req, &rc);
    if (!body)
        return rc;
    const lf_pipeline_t *p = in->pipeline;
    const char *to = json_string_value(json_object_get(body, "to"));
    if (!to || lf_pipeline_is_open(p, to) < 0) {
        json_t *stages = json_array();
        json_t *def = lf_pipeline_to_json(p);
        size_t i;
        json_t *st;
        json_array_foreach(json_object_get(def, "stages"), i, st)
            json_array_append(stages, json_object_get(st, "id"));
        json_decref(def);
        char *list = json_dumps(stages, JSON_COMPACT);
        json_decref(stages);
        char msg[512];
        snprintf(msg, sizeof msg, "%s; one of %s",
                 to ? "not a stage" : "the target stage", list ? list : "[]");
        free(list);
        json_decref(body);
        return lf_reply_error(
            in, req->conn, 422, "validation_failed",
            "the move breaks one or more rules; nothing was changed",
            json_pack("[o]", s_field("to", to ? "invalid" : "required", msg)));
    }
    s_who_t who;
    if (s_who(in, req, auth, &who, &rc) < 0) {
        json_decref(body);
        return rc;
    }

    lf_db_t *db = lf_intake_db(in);
    json_t *allowed = NULL, *fields = NULL, *norm = NULL, *envs = json_array(),
           *data = NULL, *deal_amount = NULL;
    char *data_text = NULL;
    s_lead_t l;
    if (lf_db_begin(db) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    if (s_admit(in, req, db, s_lock_lead(db, id, auth, &l), &who, &l, &rc) < 0)
        goto out;
    const char *from = l.stage;
    lf_move_verdict_t v = lf_pipeline_check(p, from, to, body, &allowed, &fields, &norm);
    if (v == LF_MOVE_UNKNOWN_STAGE) {
        lf_db_rollback(db);
        lf_error("lead %s is in stage '%s', which config/pipeline.json does not define",
                 id, from);
        rc = lf_reply_error(
            in, req->conn, 500, "internal",
            "the lead's stored stage is not in the pipeline configuration", NULL);
        goto out;
    }
    if (v == LF_MOVE_FORBIDDEN) {
        lf_db_rollback(db);
        char msg[256];
        snprintf(msg, sizeof msg, "a deal in stage %s cannot move to %s", from, to);
        json_t *err = json_pack("{s:s, s:s, s:s, s:O}", "error", "transition_not_allowed",
                                "message", msg, "stage", from, "allowed", allowed);
        rc = lf_reply_json(in, req->conn, 409, err);
        goto out;
    }
    if (v == LF_MOVE_MISSING) {
        lf_db_rollback(db);
        rc = lf_reply_error(in, req->conn, 422, "validation_failed",
                            "the move breaks one or more rules; nothing was changed",
                            json_incref(fields));
        goto out;
    }

    /* The move is allowed: record everything it means. */
    int was_open = lf_pipeline_is_open(p, from) == 1,
        now_open = lf_pipeline_is_open(p, to) == 1;
    int won = lf_pipeline_is_won(p, to) == 1, lost = !now_open && !won;
    int first_contact = l.no_contact_yet && lf_pipeline_stops_first_contact(p, to) == 1;
    const json_t *amount = json_object_get(norm, "amount");
    const char *loss_reason = json_string_value(json_object_get(norm, "loss_reason"));
    const char *reason = json_string_value(json_object_get(norm, "reason"));
    char *amount_text = amount ? json_dumps(amount, JSON_ENCODE_ANY) : NULL;
    const char *owner = l.has_owner ? l.owner : NULL;
    const char *pu[] = {id,
                        to,
                        first_contact ? "t" : "f",
                        amount_text,
                        lost ? loss_reason : NULL,
                        now_open ? "f" : "t"};
    PGresult *res = lf_db_exec(
        db,
        "UPDATE leads SET stage = $2, stage_changed_at = now(), updated_at = now(),"
        " first_contact_at = CASE WHEN $3::boolean THEN coalesce(first_contact_at, now())"
        "   ELSE first_contact_at END,"
        " amount = coalesce($4::numeric, amount), loss_reason = $5,"
        " closed_at = CASE WHEN $6::boolean THEN now() END"
        " WHERE id = $1 RETURNING lf_rfc3339(stage_changed_at), amount::text",
        6, pu);
    free(amount_text);
    if (!res) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    char at[40];
    lf_strlcpy(at, PQgetvalue(res, 0, 0), sizeof at);
    /* The deal's amount as stored (the last quote when a lost move carries none),
     * for the outcome rollup. */
    if (!PQgetisnull(res, 0, 1))
        deal_amount = json_loads(PQgetvalue(res, 0, 1), JSON_DECODE_ANY, NULL);
    PQclear(res);

    long long customer_id = 0;
    if (won) {
        /* Winning makes the company a customer with this owner; later leads from it
         * are linked to it (trigger leads_link_customer). */
        const char *pc[] = {id};
        res = lf_db_exec(
            db,
            "WITH c AS (INSERT INTO customers (key, company, email_domain, owner, won_at)"
            "  SELECT lf_customer_key(l.company_key, l.email, l.phone), "
            "nullif(btrim(l.company), ''),"
            "  lf_email_domain(l.email), l.owner, now() FROM leads l WHERE l.id = $1"
            "  ON CONFLICT (key) DO UPDATE SET owner = coalesce(EXCLUDED.owner, "
            "customers.owner),"
            "  won_at = EXCLUDED.won_at RETURNING id)"
            " UPDATE leads SET customer_id = c.id FROM c WHERE leads.id = $1 RETURNING "
            "c.id",
            1, pc);
        if (!res) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
        customer_id = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
        PQclear(res);
    }

    const char *playbook = lf_pipeline_playbook(p, to);
    long long notification = 0;
    if (owner && playbook) {
        const char *pn[] = {id, owner, playbook};
        res = lf_db_exec(db,
                         "INSERT INTO notifications (lead_id, rep_id, kind, message)"
                         " VALUES ($1, $2, 'playbook', $3) RETURNING id",
                         3, pn);
        if (!res) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
        notification = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (owner && was_open != now_open) {
        /* A closed deal stops counting against the owner's capacity; a reopened one
         * counts again - only while the owner has room for it. */
        const char *po[] = {owner, now_open ? "1" : "-1"};
        long n =
            lf_db_cmd(db,
                      "UPDATE reps SET open_count = greatest(open_count + $2::int, 0),"
                      " updated_at = now() WHERE id = $1"
                      " AND ($2::int < 0 OR open_count < capacity)",
                      2, po);
        if (n < 0) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
        if (n == 0 && now_open && s_rep_exists(db, owner) == 1) {
            lf_db_rollback(db);
            char msg[256];
            snprintf(msg, sizeof msg,
                     "the owner %s has no capacity for another open deal: raise their "
                     "capacity or reassign the deal first",
                     owner);
            rc = lf_reply_json(in, req->conn, 409,
                               json_pack("{s:s, s:s, s:s}", "error", "owner_at_capacity",
                                         "message", msg, "stage", from));
            goto out;
        }
    }

    if (was_open != now_open) {
        /* Closing stops the clocks that no longer apply (first-contact SLA, follow-ups,
         * stale); reopening stops the reactivation: db/functions/42_lf_keepalive.sql. */
        const char *pk[] = {id, now_open ? "t" : "f"};
        if (lf_db_cmd(db, "SELECT lf_keepalive_on_move($1, $2::boolean)", 2, pk) < 0) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
    }

    data = json_pack("{s:s, s:s}", "from", from, "to", to);
    if (reason)
        json_object_set_new(data, "reason", json_string(reason));
    if (amount)
        json_object_set(data, "amount", (json_t *)amount);
    if (lost && loss_reason)
        json_object_set_new(data, "loss_reason", json_string(loss_reason));
    if (first_contact)
        json_object_set_new(data, "first_contact", json_true());
    if (who.on_behalf)
        json_object_set_new(data, "via", json_string("admin"));
    if (notification)
        json_object_set_new(data, "playbook_notification", json_integer(notification));
    if (customer_id)
        json_object_set_new(data, "customer_id", json_integer(customer_id));
    data_text = json_dumps(data, JSON_COMPACT);
    const char *pe[] = {id, who.name, data_text};
    if (lf_db_cmd(db,
                  "INSERT INTO lead_events (lead_id, type, actor, data)"
                  " VALUES ($1, 'stage_changed', $2, $3::jsonb)",
                  3, pe) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    json_object_set_new(data, "actor", json_string(who.name));
    json_object_set_new(data, "owner", owner ? json_string(owner) : json_null());
    if (s_event(db, envs, "stage.changed", id, data) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    if (won || lost) {
        json_t *deal = json_copy(data);
        if (deal_amount)
            json_object_set(deal, "amount", deal_amount);
        int erc = s_event(db, envs, won ? "deal.won" : "deal.lost", id, deal);
        json_decref(deal);
        if (erc < 0) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
    }
    if (lf_db_commit(db) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    s_publish(in, envs);

    json_t *reply =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s?, s:s?, s:s?}, s:s?, s:o}", "id", id,
                  "from", from, "stage", to, "stage_changed_at", at, "playbook", "stage",
                  to, "text", playbook, "zh", lf_pipeline_playbook_lang(p, to, "zh"),
                  "en", lf_pipeline_playbook_lang(p, to, "en"), "notified", owner,
                  "allowed", lf_pipeline_allowed(p, to));
    if (customer_id)
        json_object_set_new(reply, "customer_id", json_integer(customer_id));
    if (first_contact)
        json_object_set_new(reply, "first_contact", json_true());
    rc = lf_reply_json(in, req->conn, 200, reply);
out:
    free(data_text);
    json_decref(deal_amount);
    json_decref(data);
    json_decref(envs);
    json_decref(allowed);
    json_decref(fields);
    json_decref(norm);
    json_decref(body);
    return rc;
}

/* ---- POST /v1/leads/{id}/activities -------------------------------------------- */

/* Checks an optional string field; appends an error to `errors` when it is not a
 * string or longer than max bytes. Returns the string or NULL. */
static const char *s_opt_text(const json_t *body, const char *key, size_t max,
                              json_t *errors) {
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        json_array_append_new(errors, s_field(key, "invalid", "must be a string"));
        return NULL;
    }
    if (json_string_length(v) > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "must be at most %zu bytes", max);
        json_array_append_new(errors, s_field(key, "too_long", msg));
        return NULL;
    }
    return json_string_value(v);
}

static enum MHD_Result s_post_activity(lf_intake_t *in, lf_req_t *req,
                                       const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    enum MHD_Result rc = MHD_NO;
    json_t *body = s_body(in, req, &rc);
    if (!body)
        return rc;
    json_t *errors = json_array(), *envs = json_array(), *data = NULL;
    char *data_text = NULL;
    lf_db_t *db = lf_intake_db(in);

    /* Every broken field in one 422, before anything is locked. */
    const json_t *tv = json_object_get(body, "type");
    const char *type = json_string_value(tv);
    if (!tv || json_is_null(tv))
        json_array_append_new(errors,
                              s_field("type", "required", "one of " S_ACTIVITY_TYPES));
    else {
        int ok = 0;
        for (const char *const *t = s_activity_types; type && *t; t++)
            ok |= strcmp(type, *t) == 0;
        if (!ok) {
            json_array_append_new(errors,
                                  s_field("type", "invalid", "one of " S_ACTIVITY_TYPES));
            type = NULL;
        }
    }
    const char *outcome = s_opt_text(body, "outcome", 1000, errors);
    const char *note = s_opt_text(body, "note", 4000, errors);
    const char *by = s_opt_text(body, "by", 64, errors);
    const char *next = s_opt_text(body, "next_action_at", 64, errors);
    if (by && !s_valid_id(by)) {
        json_array_append_new(errors, s_field("by", "invalid", "must be a rep id"));
        by = NULL;
    }
    char next_at[40] = "";
    if (next && !lf_rfc3339_shape(next))
        json_array_append_new(
            errors,
            s_field("next_action_at", "invalid",
                    "must be an RFC 3339 time such as 2026-05-01T09:30:00+08:00"));
    else if (next) {
        const char *pt[] = {next};
        PGresult *res = lf_db_exec(
            db, "SELECT $1::timestamptz > now(), lf_rfc3339($1::timestamptz)", 1, pt);
        if (!res && strncmp(lf_db_sqlstate(db), "22", 2) != 0) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
        if (!res)
            json_array_append_new(errors, s_field("next_action_at", "invalid",
                                                  "is not a valid date and time"));
        else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
            json_array_append_new(
                errors, s_field("next_action_at", "past", "must be in the future"));
        else
            lf_strlcpy(next_at, PQgetvalue(res, 0, 1), sizeof next_at);
        PQclear(res);
    }
    if (json_array_size(errors) > 0) {
        rc = lf_reply_error(in, req->conn, 422, "validation_failed",
                            "the activity breaks one or more rules; nothing was stored",
                            json_incref(errors));
        goto out;
    }
    s_who_t who;
    if (s_who(in, req, auth, &who, &rc) < 0)
        goto out;
    /* A rep logs their own activities; the admin may name any rep. */
    if (who.actor.rep_id && !who.actor.is_admin && by &&
        strcmp(by, who.actor.rep_id) != 0) {
        rc = lf_reply_error(in, req->conn, 403, "forbidden",
                            "a rep can only log activities as themselves", NULL);
        goto out;
    }
    if (!by && who.actor.rep_id)
        by = who.actor.rep_id;

    s_lead_t l;
    if (lf_db_begin(db) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    if (s_admit(in, req, db, s_lock_lead(db, id, auth, &l), &who, &l, &rc) < 0)
        goto out;
    if (by) {
        int ok = s_rep_exists(db, by);
        if (ok < 0) {
            rc = s_unavailable(in, req, db);
            goto out;
        }
        if (!ok) {
            lf_db_rollback(db);
            rc = lf_reply_error(
                in, req->conn, 422, "validation_failed",
                "the activity breaks one or more rules; nothing was stored",
                json_pack("[o]", s_field("by", "unknown", "no rep has this id")));
            goto out;
        }
    }
    if (!by && l.has_owner)
        by = l.owner; /* the admin logging for the deal: the owner did it */
    /* The activity's number on this lead: unique under the row lock, and the key of
     * its follow-up timer. */
    const char *pl[] = {id};
    PGresult *res = lf_db_exec(db,
                               "WITH u AS (UPDATE leads SET first_contact_at = "
                               "coalesce(first_contact_at, now()),"
                               " updated_at = now() WHERE id = $1 RETURNING 1)"
                               " SELECT count(*) + 1, lf_rfc3339(now()) FROM lead_events"
                               " WHERE lead_id = $1 AND type = 'activity'",
                               1, pl);
    if (!res) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    long long seq = atoll(PQgetvalue(res, 0, 0));
    char at[40];
    lf_strlcpy(at, PQgetvalue(res, 0, 1), sizeof at);
    PQclear(res);
    int first_contact = l.no_contact_yet;

    data = json_pack("{s:I, s:s, s:s?, s:s?, s:s?, s:s?}", "seq", seq, "activity", type,
                     "outcome", outcome, "note", note, "by", by, "next_action_at",
                     next_at[0] ? next_at : NULL);
    if (first_contact)
        json_object_set_new(data, "first_contact", json_true());
    if (who.on_behalf)
        json_object_set_new(data, "via", json_string("admin"));
    data_text = json_dumps(data, JSON_COMPACT);
    const char *pe[] = {id, who.name, data_text};
    if (lf_db_cmd(db,
                  "INSERT INTO lead_events (lead_id, type, actor, data)"
                  " VALUES ($1, 'activity', $2, $3::jsonb)",
                  3, pe) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    json_object_set_new(data, "actor", json_string(who.name));
    json_object_set_new(data, "owner", l.has_owner ? json_string(l.owner) : json_null());
    if (s_event(db, envs, "activity.logged", id, data) < 0 || lf_db_commit(db) < 0) {
        rc = s_unavailable(in, req, db);
        goto out;
    }
    s_publish(in, envs);
    json_object_del(data, "owner");
    json_object_set_new(data, "at", json_string(at));
    json_t *reply = json_pack("{s:s, s:O, s:b}", "id", id, "activity", data,
                              "first_contact", first_contact);
    rc = lf_reply_json(in, req->conn, 201, reply);
out:
    free(data_text);
    json_decref(data);
    json_decref(envs);
    json_decref(errors);
    json_decref(body);
    return rc;
}

/* ---- GET /v1/pipeline, GET /v1/customers/{id} ------------------------------------ */

static enum MHD_Result s_get_pipeline(lf_intake_t *in, lf_req_t *req,
                                      const lf_auth_t *auth) {
    return lf_reply_json(in, req->conn, 200, lf_pipeline_to_json(in->pipeline));
}

static enum MHD_Result s_get_customer(lf_intake_t *in, lf_req_t *req,
                                      const lf_auth_t *auth) {
    const char *id = req->params[0];
    size_t n = strlen(id);
    if (n == 0 || n > 18 || strspn(id, "0123456789") != n)
        return lf_reply_error(in, req->conn, 404, "not_found", "no such customer", NULL);
    lf_db_t *db = lf_intake_db(in);
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(
        db,
        "SELECT json_build_object('id', c.id, 'company', c.company, 'email_domain',"
        " c.email_domain, 'owner', c.owner, 'created_at', lf_rfc3339(c.created_at),"
        " 'won_at', lf_rfc3339(c.won_at), 'deals', (SELECT coalesce(json_agg("
        "  json_build_object('id', l.id, 'stage', l.stage, 'owner', l.owner, 'amount',"
        "  l.amount, 'created_at', lf_rfc3339(l.created_at)) ORDER BY l.created_at, "
        "l.id),"
        "  '[]') FROM leads l WHERE l.customer_id = c.id"
        "  AND lf_caller_sees($2, $3, l.owner)))::text"
        " FROM customers c WHERE c.id = $1::bigint AND (lf_caller_sees($2, $3, c.owner)"
        "  OR EXISTS (SELECT 1 FROM leads l WHERE l.customer_id = c.id"
        "  AND lf_caller_sees($2, $3, l.owner)))",
        3, p);
    if (!res)
        return lf_reply_error(in, req->conn, 503, "unavailable",
                              "the database cannot be reached", NULL);
    json_t *c = PQntuples(res) ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    if (!c)
        return lf_reply_error(in, req->conn, 404, "not_found", "no such customer", NULL);
    return lf_reply_json(in, req->conn, 200, c);
}

const lf_route_t lf_routes_pipeline[] = {
    {"POST", "/v1/leads/{}/stage", s_post_stage, 1, 0, 1},
    {"POST", "/v1/leads/{}/activities", s_post_activity, 1, 0, 1},
    {"GET", "/v1/pipeline", s_get_pipeline, 1, 0, 0},
    {"GET", "/v1/customers/{}", s_get_customer, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
