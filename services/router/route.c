/* route.c - one lead through the scorecard and the assignment pool, durably.
 *
 * Several router instances may run against one database. Assignment reads and moves
 * shared state (who is next in the rotation, each rep's open count against their
 * capacity), so it runs under a transaction-scoped advisory lock: instances take
 * turns, a rep is never pushed over capacity and the rotation never skips or
 * repeats. The lock is held only for the time of one batch of decisions. The pool
 * is rebuilt from the reps table inside the lock, so edits to reps (capacity, leave,
 * new hires) take effect on the next lead without a restart. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

#define S_ROUTING_LOCK "727002"

/* Webmail domains say nothing about the company, so they never make a customer
 * "known" by e-mail domain. */
static const char *const s_public_domains[] = {
    "qq.com",      "163.com",    "126.com",  "sina.com",  "sohu.com",    "yeah.net",
    "foxmail.com", "aliyun.com", "139.com",  "gmail.com", "outlook.com", "hotmail.com",
    "yahoo.com",   "icloud.com", "live.com", NULL};

static const char *s_company_domain(const json_t *lead) {
    const char *email = json_string_value(json_object_get(lead, "email"));
    const char *at = email ? strchr(email, '@') : NULL;
    if (!at)
        return NULL;
    for (const char *const *d = s_public_domains; *d; d++)
        if (strcmp(at + 1, *d) == 0)
            return NULL;
    return at + 1;
}

/* The owner of the most recent assigned lead from the same company or e-mail
 * domain: a known customer goes back to the rep who knows them. */
static char *s_sticky_owner(lf_db_t *db, const char *lead_id, const json_t *lead) {
    const char *company = json_string_value(json_object_get(lead, "company"));
    const char *domain = s_company_domain(lead);
    if (!company && !domain)
        return NULL;
    const char *p[] = {lead_id, company, domain};
    PGresult *res =
        lf_db_exec(db,
                   "SELECT owner FROM leads WHERE owner IS NOT NULL AND id <> $1 AND ("
                   " ($2::text IS NOT NULL AND lower(company) = lower($2)) OR"
                   " ($3::text IS NOT NULL AND email LIKE '%@' || $3))"
                   " ORDER BY created_at DESC LIMIT 1",
                   3, p);
    char *owner = NULL;
    if (res && PQntuples(res) == 1)
        owner = lf_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return owner;
}

static json_t *s_query_json(lf_db_t *db, const char *sql, int n, const char *const *p) {
    PGresult *res = lf_db_exec(db, sql, n, p);
    if (!res)
        return NULL;
    json_t *out = NULL;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return out;
}

int lf_route_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_router_ctx_t *ctx = arg;
    const char *lead_id = lf_event_lead(env);
    if (!lead_id)
        return 0; /* nothing to route; the ack records that we saw it */
    int rc = -1;
    json_t *lead = NULL, *reps = NULL, *ledger = NULL, *breakdown = NULL;
    lf_pool_t *pool = NULL;
    lf_assign_result_t res;
    memset(&res, 0, sizeof res);
    char *sticky = NULL, *bd_text = NULL, *cand_text = NULL, *ledger_text = NULL;

    if (lf_db_cmd(db, "SELECT pg_advisory_xact_lock(" S_ROUTING_LOCK ")", 0, NULL) < 0)
        goto out;
    const char *p1[] = {lead_id};
    lead =
        s_query_json(db,
                     "SELECT CASE WHEN l.assigned_at IS NULL THEN lf_lead_canonical(l) "
                     "END::text FROM leads l WHERE l.id = $1 FOR UPDATE",
                     1, p1);
    if (db->err)
        goto out;
    if (!lead) {
        rc = 0; /* already assigned, or unknown lead: nothing to do */
        goto out;
    }
    int score = 0;
    char grade = 'D';
    if (lf_scorecard_grade(ctx->scorecard, lead, &score, &grade, &breakdown) < 0)
        goto out;

    reps = s_query_json(db,
                        "SELECT coalesce(jsonb_agg(lf_rep_json(r) ORDER BY r.id), "
                        "'[]')::text FROM reps r",
                        0, NULL);
    ledger = s_query_json(db, "SELECT state::text FROM routing_ledger WHERE team = '*'",
                          0, NULL);
    if (db->err || !reps)
        goto out;
    char err[256];
    pool = lf_pool_from_json(reps, ctx->routing, err, sizeof err);
    if (!pool) {
        lf_error("cannot build the assignment pool: %s", err);
        goto out;
    }
    if (ledger)
        lf_pool_restore_ledger(pool, ledger);
    sticky = s_sticky_owner(db, lead_id, lead);
    if (db->err)
        goto out;
    lf_assign_req_t req = {
        .industry = json_string_value(json_object_get(lead, "industry")),
        .region = json_string_value(json_object_get(lead, "region")),
        .team = NULL,
        .grade = grade,
        .preferred_owner = sticky,
        .exclude = NULL,
        .now = time(NULL),
    };
    if (lf_pool_assign(pool, &req, &res) < 0)
        goto out;

    char score_s[16], grade_s[2] = {grade, '\0'};
    snprintf(score_s, sizeof score_s, "%d", score);
    bd_text = json_dumps(breakdown, JSON_COMPACT);
    cand_text = json_dumps(res.candidates, JSON_COMPACT);
    json_t *new_ledger = lf_pool_ledger(pool);
    ledger_text = json_dumps(new_ledger, JSON_COMPACT);
    json_decref(new_ledger);
    const char *owner = res.rep_id[0] ? res.rep_id : NULL;
    const char *queue = res.queue[0] ? res.queue : NULL;
    const char *p2[] = {lead_id,    grade_s, score_s,   bd_text,    owner,
                        res.reason, queue,   cand_text, ledger_text};
    /* One round trip records the whole decision. */
    PGresult *r = lf_db_exec(
        db,
        "WITH upd AS (UPDATE leads SET grade = $2, score = $3::int, score_breakdown = "
        "$4::jsonb,"
        "  graded_at = now(), owner = $5, assignment_reason = $6, queue = $7,"
        "  assigned_at = now(), updated_at = now() WHERE id = $1"
        "  RETURNING channel, created_at),"
        " rep AS (UPDATE reps SET open_count = open_count + 1,"
        "  assigned_total = assigned_total + 1 WHERE id = $5 RETURNING id),"
        " led AS (INSERT INTO routing_ledger (team, state, updated_at) VALUES ('*', "
        "$9::jsonb,"
        "  now()) ON CONFLICT (team) DO UPDATE SET state = EXCLUDED.state,"
        "  updated_at = now() RETURNING team),"
        " asg AS (INSERT INTO assignments (lead_id, rep_id, queue, reason, candidates)"
        "  VALUES ($1, $5, $7, $6, $8::jsonb) RETURNING id),"
        " tl AS (INSERT INTO lead_events (lead_id, type, actor, data) VALUES"
        "  ($1, 'graded', 'router', jsonb_build_object('grade', $2, 'score', $3::int,"
        "   'breakdown', $4::jsonb)),"
        "  ($1, CASE WHEN $5::text IS NULL THEN 'queued' ELSE 'assigned' END, 'router',"
        "   jsonb_build_object('owner', $5, 'queue', $7, 'reason', $6,"
        "   'candidates', $8::jsonb)))"
        " SELECT upd.channel, lf_rfc3339(upd.created_at), (SELECT count(*) FROM rep),"
        "  (SELECT count(*) FROM led), (SELECT count(*) FROM asg) FROM upd",
        9, p2);
    if (!r)
        goto out;
    json_t *payload =
        json_pack("{s:s, s:i, s:s?, s:s?, s:s, s:s, s:s}", "grade", grade_s, "score",
                  score, "owner", owner, "queue", queue, "reason", res.reason, "channel",
                  PQgetvalue(r, 0, 0), "created_at", PQgetvalue(r, 0, 1));
    PQclear(r);
    json_t *ev = lf_outbox_add(db, "lead.assigned", lead_id, payload);
    json_decref(payload);
    if (!ev)
        goto out;
    lf_consumer_publish_after_commit(c, ev);
    ctx->routed++;
    rc = 0;
out:
    free(sticky);
    free(bd_text);
    free(cand_text);
    free(ledger_text);
    json_decref(res.candidates);
    json_decref(breakdown);
    json_decref(lead);
    json_decref(reps);
    json_decref(ledger);
    lf_pool_destroy(&pool);
    return rc;
}
