/* The pipeline over HTTP: stage moves, activities, the timeline, customers and the
 * events they publish, against the real services on a real PostgreSQL and Redis.
 *
 * The expected rule table is written out here from the stage order (one step forward,
 * one step back with a reason, lost from any open stage, lost -> new with a reason,
 * nothing out of won), not taken from common/pipeline.c. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(pipeline_api, .fini = lf_h_fini);

/* Stage order of the shipped config/pipeline.json: six open stages, won, lost. */
static const char *const S_STAGES[] = {"new",   "contacted",   "qualified", "proposal",
                                       "quote", "negotiation", "won",       "lost"};
enum { N_STAGES = 8, WON = 6, LOST = 7 };

/* 0 forbidden, 1 allowed, 2 allowed only with a reason. */
static int s_expect(int from, int to) {
    if (from == WON)
        return 0;
    if (from == LOST)
        return to == 0 ? 2 : 0;
    if (to == from + 1)
        return 1; /* forward one step, the last open stage into won */
    if (to == LOST)
        return 1;
    if (to == from - 1)
        return 2;
    return 0;
}

static char *s_new_lead(lf_h_t *h, const char *body) {
    json_t *out = NULL;
    int st = lf_h_post_json(h, "/v1/leads", body, &out);
    cr_assert_eq(st, 201, "POST /v1/leads answered %d", st);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

/* Puts a lead in a stage with an owner directly (test setup, not an API path). */
static void s_set(lf_h_t *h, const char *id, const char *stage, const char *owner) {
    char q[512];
    snprintf(q, sizeof q, "UPDATE leads SET stage = '%s', owner = %s%s%s WHERE id = '%s'",
             stage, owner ? "'" : "", owner ? owner : "NULL", owner ? "'" : "", id);
    free(lf_h_sql(h, q));
}

/* POSTs a JSON body to /v1/leads/{id}/<what>, as the admin key or on behalf of
 * `actor`. Returns the status; *out (may be NULL) gets the parsed body. */
static int s_post(lf_h_t *h, const char *id, const char *what, const char *json,
                  const char *actor, json_t **out) {
    char path[256], hdr[128];
    snprintf(path, sizeof path, "/v1/leads/%s/%s", id, what);
    snprintf(hdr, sizeof hdr, "X-Leadflow-Actor: %s", actor ? actor : "");
    const char *headers[] = {"Content-Type: application/json", actor ? hdr : NULL, NULL};
    char *body = NULL;
    int st = lf_h_http(h, "POST", path, headers, json, strlen(json), &body);
    if (out)
        *out = json_loads(body, 0, NULL);
    free(body);
    return st;
}

static long s_count(lf_h_t *h, const char *fmt, const char *id) {
    char q[1024];
    snprintf(q, sizeof q, fmt, id);
    return lf_h_sql_long(h, q);
}

static char *s_stage_of(lf_h_t *h, const char *id) {
    char q[256];
    snprintf(q, sizeof q, "SELECT stage FROM leads WHERE id = '%s'", id);
    return lf_h_sql(h, q);
}

/* The expected allowed list from `from`, in pipeline order, as compact JSON. */
static void s_expected_allowed(int from, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    int first = 1;
    for (int j = 0; j < N_STAGES; j++)
        if (s_expect(from, j)) {
            len += (size_t)snprintf(buf + len, n - len, "%s\"%s\"", first ? "" : ",",
                                    S_STAGES[j]);
            first = 0;
        }
    snprintf(buf + len, n - len, "]");
}

Test(pipeline_api, every_move_of_the_rule_table_over_http, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char *id = s_new_lead(h, "{\"phone\":\"13800138000\",\"company\":\"表测试\"}");
    const char *full = "{\"to\":\"%s\",\"amount\":1000,\"loss_reason\":\"price\","
                       "\"reason\":\"table test\"}";
    int allowed = 0, forbidden = 0;
    for (int i = 0; i < N_STAGES; i++)
        for (int j = 0; j < N_STAGES; j++) {
            s_set(h, id, S_STAGES[i], "wang.fang");
            long before =
                s_count(h, "SELECT count(*) FROM lead_events WHERE lead_id = '%s'", id);
            char body[256];
            snprintf(body, sizeof body, full, S_STAGES[j]);
            json_t *out = NULL;
            int st = s_post(h, id, "stage", body, NULL, &out);
            char *now = s_stage_of(h, id);
            long after =
                s_count(h, "SELECT count(*) FROM lead_events WHERE lead_id = '%s'", id);
            if (s_expect(i, j)) {
                allowed++;
                cr_expect_eq(st, 200, "%s -> %s answered %d, expected 200", S_STAGES[i],
                             S_STAGES[j], st);
                cr_expect_str_eq(now, S_STAGES[j]);
                cr_expect_eq(after, before + 1, "one timeline entry per move");
                cr_expect_str_eq(json_string_value(json_object_get(out, "stage")),
                                 S_STAGES[j]);
                cr_expect(json_string_value(
                              json_object_get(json_object_get(out, "playbook"), "text")),
                          "the playbook comes back with the move");
            } else {
                forbidden++;
                cr_expect_eq(st, 409, "%s -> %s answered %d, expected 409", S_STAGES[i],
                             S_STAGES[j], st);
                cr_expect_str_eq(now, S_STAGES[i], "a forbidden move changes nothing");
                cr_expect_eq(after, before);
                cr_expect_str_eq(json_string_value(json_object_get(out, "error")),
                                 "transition_not_allowed");
                char want[256];
                s_expected_allowed(i, want, sizeof want);
                char *got = json_dumps(json_object_get(out, "allowed"), JSON_COMPACT);
                cr_expect_str_eq(got ? got : "(none)", want, "%s -> %s: allowed list",
                                 S_STAGES[i], S_STAGES[j]);
                free(got);
            }
            /* Moves that need a reason are refused without one, and change nothing. */
            if (s_expect(i, j) == 2) {
                s_set(h, id, S_STAGES[i], "wang.fang");
                snprintf(body, sizeof body, "{\"to\":\"%s\"}", S_STAGES[j]);
                json_t *o2 = NULL;
                cr_expect_eq(s_post(h, id, "stage", body, NULL, &o2), 422,
                             "%s -> %s without reason", S_STAGES[i], S_STAGES[j]);
                int has_reason = 0;
                size_t k;
                json_t *f;
                json_array_foreach(json_object_get(o2, "fields"), k, f) {
                    const char *name = json_string_value(json_object_get(f, "field"));
                    has_reason |= name && strcmp(name, "reason") == 0;
                }
                cr_expect(has_reason, "%s -> %s: reason is listed", S_STAGES[i],
                          S_STAGES[j]);
                json_decref(o2);
                char *still = s_stage_of(h, id);
                cr_expect_str_eq(still, S_STAGES[i]);
                free(still);
            }
            free(now);
            json_decref(out);
        }
    cr_expect_eq(allowed, 18, "the default table has 18 moves");
    cr_expect_eq(forbidden, 46);
    free(id);
    lf_h_destroy(&h);
}

Test(pipeline_api, required_fields_unknown_stages_and_bad_bodies, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char *id = s_new_lead(h, "{\"phone\":\"13800138001\"}");
    struct {
        const char *from, *body, *field, *code;
    } cases[] = {
        {"proposal", "{\"to\":\"quote\"}", "amount", "required"},
        {"proposal", "{\"to\":\"quote\",\"amount\":0}", "amount", "invalid"},
        {"proposal", "{\"to\":\"quote\",\"amount\":\"50万\"}", "amount", "invalid"},
        {"negotiation", "{\"to\":\"won\"}", "amount", "required"},
        {"qualified", "{\"to\":\"lost\"}", "loss_reason", "required"},
        {"qualified", "{\"to\":\"lost\",\"loss_reason\":\"too cheap\"}", "loss_reason",
         "invalid"},
        {"new", "{\"to\":\"warp\"}", "to", "invalid"},
        {"new", "{}", "to", "required"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        s_set(h, id, cases[k].from, "wang.fang");
        json_t *out = NULL;
        cr_expect_eq(s_post(h, id, "stage", cases[k].body, NULL, &out), 422, "%s from %s",
                     cases[k].body, cases[k].from);
        json_t *f = json_array_get(json_object_get(out, "fields"), 0);
        cr_expect_str_eq(json_string_value(json_object_get(f, "field")), cases[k].field,
                         "%s", cases[k].body);
        cr_expect_str_eq(json_string_value(json_object_get(f, "code")), cases[k].code,
                         "%s", cases[k].body);
        json_decref(out);
        char *st = s_stage_of(h, id);
        cr_expect_str_eq(st, cases[k].from, "a refused move changes nothing");
        free(st);
    }
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s'"
                         " AND type = 'stage_changed'",
                         id),
                 0);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type <> 'lead.created'"), 0);
    /* The Chinese label of a loss reason is stored as its id. */
    s_set(h, id, "qualified", "wang.fang");
    cr_expect_eq(
        s_post(h, id, "stage", "{\"to\":\"lost\",\"loss_reason\":\"价格\"}", NULL, NULL),
        200);
    cr_expect_eq(
        s_count(h,
                "SELECT count(*) FROM leads WHERE id = '%s' AND loss_reason = 'price'"
                " AND closed_at IS NOT NULL",
                id),
        1);
    cr_expect_eq(
        s_post(h, "0000-no-such-lead", "stage", "{\"to\":\"contacted\"}", NULL, NULL),
        404);
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":", NULL, NULL), 400);
    cr_expect_eq(s_post(h, id, "stage", "[\"won\"]", NULL, NULL), 400);
    const char *xml[] = {"Content-Type: application/xml", NULL};
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s/stage", id);
    cr_expect_eq(lf_h_http(h, "POST", path, xml, "<to/>", 5, NULL), 415);
    const char *nokey[] = {"Authorization:", "Content-Type: application/json", NULL};
    cr_expect_eq(lf_h_http(h, "POST", path, nokey, "{\"to\":\"new\"}", 12, NULL), 401);
    /* GET /v1/pipeline serves the definition. */
    json_t *def = NULL;
    cr_assert_eq(lf_h_get_json(h, "/v1/pipeline", &def), 200);
    cr_expect_eq(json_array_size(json_object_get(def, "stages")), N_STAGES);
    cr_expect_eq(json_array_size(json_object_get(def, "loss_reasons")), 6);
    json_decref(def);
    free(id);
    lf_h_destroy(&h);
}

Test(pipeline_api, only_owner_manager_or_admin_may_move, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char *id = s_new_lead(h, "{\"phone\":\"13800138002\"}");
    s_set(h, id, "new", "wang.fang");
    const char *to_contacted = "{\"to\":\"contacted\"}";
    /* Another rep of the same team, not the owner's manager. */
    cr_expect_eq(s_post(h, id, "stage", to_contacted, "zhang.wei", NULL), 403);
    cr_expect_eq(s_post(h, id, "activities", "{\"type\":\"call\"}", "zhang.wei", NULL),
                 403);
    cr_expect_eq(s_post(h, id, "stage", to_contacted, "nobody.here", NULL), 422);
    char *st = s_stage_of(h, id);
    cr_expect_str_eq(st, "new", "refused moves change nothing");
    free(st);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s'"
                         " AND type <> 'created'",
                         id),
                 0);
    /* The owner, acting through the admin key: recorded as the owner, via admin. */
    cr_expect_eq(s_post(h, id, "stage", to_contacted, "wang.fang", NULL), 200);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND"
                         " type = 'stage_changed' AND actor = 'wang.fang'"
                         " AND data->>'via' = 'admin'",
                         id),
                 1);
    /* The owner's manager. */
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"qualified\"}", "li.ming", NULL), 200);
    /* The admin key itself. */
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"proposal\"}", NULL, NULL), 200);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND"
                         " type = 'stage_changed' AND actor = 'admin'",
                         id),
                 1);
    /* An unassigned deal: only the admin. */
    char *free_lead = s_new_lead(h, "{\"phone\":\"13800138003\"}");
    cr_expect_eq(s_post(h, free_lead, "stage", to_contacted, "wang.fang", NULL), 403);
    cr_expect_eq(s_post(h, free_lead, "stage", to_contacted, NULL, NULL), 200);

    free(id);
    free(free_lead);
    lf_h_destroy(&h);
}

Test(pipeline_api, rep_keys_act_as_their_rep, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    const char *to_contacted = "{\"to\":\"contacted\"}";
    /* Keys that carry a rep identity (api_keys.rep_id, key_hash = hex SHA-256). */
    free(lf_h_sql(
        h, "INSERT INTO api_keys (id, key_hash, rep_id) VALUES ('k-wang',"
           " encode(sha256('rep-key-wang'::bytea), 'hex'), 'wang.fang'),"
           " ('k-zhang', encode(sha256('rep-key-zhang'::bytea), 'hex'), 'zhang.wei')"));
    char *lead2 = s_new_lead(h, "{\"phone\":\"13800138004\"}");
    s_set(h, lead2, "new", "wang.fang");
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s/stage", lead2);
    const char *as_zhang[] = {"Authorization: Bearer rep-key-zhang",
                              "Content-Type: application/json", NULL};
    const char *as_wang[] = {"Authorization: Bearer rep-key-wang",
                             "Content-Type: application/json", NULL};
    const char *as_wang_for_zhang[] = {"Authorization: Bearer rep-key-wang",
                                       "Content-Type: application/json",
                                       "X-Leadflow-Actor: zhang.wei", NULL};
    int st_z =
        lf_h_http(h, "POST", path, as_zhang, to_contacted, strlen(to_contacted), NULL);
    cr_expect_eq(st_z, 404, "a rep key of another rep: the lead is not revealed");
    cr_expect_eq(lf_h_http(h, "POST", path, as_wang_for_zhang, to_contacted,
                           strlen(to_contacted), NULL),
                 403, "X-Leadflow-Actor only with the admin key");
    cr_expect_eq(
        lf_h_http(h, "POST", path, as_wang, to_contacted, strlen(to_contacted), NULL),
        200, "the owner's own key");
    cr_expect_eq(
        s_count(h,
                "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND"
                " type = 'stage_changed' AND actor = 'wang.fang' AND NOT data ? 'via'",
                lead2),
        1, "the move is recorded as the key's rep");
    free(lead2);
    lf_h_destroy(&h);
}

typedef struct {
    lf_h_t *h;
    const char *id;
    const char *body;
    pthread_barrier_t *go;
    int status;
} s_racer_t;

static void *s_race(void *arg) {
    s_racer_t *r = arg;
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s/stage", r->id);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    pthread_barrier_wait(r->go);
    r->status = lf_h_http(r->h, "POST", path, hdr, r->body, strlen(r->body), NULL);
    return NULL;
}

static void s_run_race(lf_h_t *h, const char *id, const char *const *bodies, int n,
                       int *statuses) {
    pthread_t th[8];
    s_racer_t rs[8];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        rs[i] = (s_racer_t){h, id, bodies[i], &go, 0};
        pthread_create(&th[i], NULL, s_race, &rs[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        statuses[i] = rs[i].status;
    }
    pthread_barrier_destroy(&go);
}

Test(pipeline_api, concurrent_moves_on_one_lead_lose_no_update, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_env(h, "LEADFLOW_HTTP_THREADS", "8");
    lf_h_start(h, LF_H_INTAKE, 0);
    char *id = s_new_lead(h, "{\"phone\":\"13800138005\"}");
    s_set(h, id, "new", "wang.fang");
    free(lf_h_sql(h, "UPDATE reps SET open_count = 1 WHERE id = 'wang.fang'"));
    /* Eight identical moves: exactly one wins, seven are told the deal already moved. */
    const char *same[8];
    for (int i = 0; i < 8; i++)
        same[i] = "{\"to\":\"contacted\"}";
    int st[8];
    s_run_race(h, id, same, 8, st);
    int ok = 0, conflict = 0;
    for (int i = 0; i < 8; i++) {
        ok += st[i] == 200;
        conflict += st[i] == 409;
    }
    cr_expect_eq(ok, 1, "exactly one of the racing identical moves wins (got %d)", ok);
    cr_expect_eq(conflict, 7);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s'"
                         " AND type = 'stage_changed'",
                         id),
                 1);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM outbox WHERE lead_id = '%s'"
                         " AND type = 'stage.changed'",
                         id),
                 1);
    /* Mixed race from contacted: four forward, four to lost. Whatever the order, the
     * number of successes equals the timeline entries, every entry starts where the
     * previous one ended, and the lead is where the last one left it. */
    const char *mixed[8];
    for (int i = 0; i < 8; i++)
        mixed[i] = i % 2 ? "{\"to\":\"qualified\"}"
                         : "{\"to\":\"lost\",\"loss_reason\":\"price\"}";
    s_run_race(h, id, mixed, 8, st);
    ok = 0;
    for (int i = 0; i < 8; i++) {
        cr_expect(st[i] == 200 || st[i] == 409, "status %d", st[i]);
        ok += st[i] == 200;
    }
    cr_expect(ok == 1 || ok == 2, "one or two of the mixed moves can succeed, got %d",
              ok);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s'"
                         " AND type = 'stage_changed'",
                         id),
                 1 + ok, "no lost and no phantom update");
    cr_expect_eq(
        s_count(h,
                "SELECT count(*) FROM (SELECT data->>'from' AS f, lag(data->>'to')"
                " OVER (ORDER BY id) AS prev FROM lead_events WHERE lead_id = '%s'"
                " AND type = 'stage_changed') x WHERE prev IS NOT NULL AND f <> prev",
                id),
        0, "each move starts where the previous one ended");
    cr_expect_eq(
        s_count(h,
                "SELECT count(*) FROM leads l WHERE id = '%s' AND stage = (SELECT"
                " data->>'to' FROM lead_events WHERE lead_id = l.id AND"
                " type = 'stage_changed' ORDER BY id DESC LIMIT 1)",
                id),
        1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'wang.fang'"),
                 0, "the deal ended lost once: the owner's open count dropped once");
    free(id);
    lf_h_destroy(&h);
}

/* The owner the router picked, after waiting for the assignment. */
static char *s_wait_owner(lf_h_t *h, const char *id) {
    char q[256];
    snprintf(q, sizeof q, "SELECT owner IS NOT NULL FROM leads WHERE id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "t", 20000), "lead was not assigned");
    snprintf(q, sizeof q, "SELECT owner FROM leads WHERE id = '%s'", id);
    return lf_h_sql(h, q);
}

Test(pipeline_api, walk_new_to_won_then_the_customer_comes_back, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_ALL, 1);
    char *id = s_new_lead(
        h, "{\"name\":\"王芳\",\"company\":\"华东医疗\",\"phone\":\"13800138010\","
           "\"industry\":\"medical\",\"region\":\"east\",\"urgency\":\"高\"}");
    char *owner = s_wait_owner(h, id);
    char q[512];
    snprintf(q, sizeof q, "SELECT open_count FROM reps WHERE id = '%s'", owner);
    cr_expect_eq(lf_h_sql_long(h, q), 1);
    const char *walk[] = {"{\"to\":\"contacted\"}",
                          "{\"to\":\"qualified\",\"reason\":\"BANT confirmed\"}",
                          "{\"to\":\"proposal\"}",
                          "{\"to\":\"quote\",\"amount\":120000}",
                          "{\"to\":\"negotiation\"}",
                          "{\"to\":\"won\",\"amount\":\"115000\"}"};
    for (int i = 0; i < 6; i++) {
        json_t *out = NULL;
        cr_assert_eq(s_post(h, id, "stage", walk[i], owner, &out), 200, "%s", walk[i]);
        json_t *pb = json_object_get(out, "playbook");
        cr_expect_str_eq(json_string_value(json_object_get(pb, "stage")),
                         S_STAGES[i + 1]);
        cr_expect(strlen(json_string_value(json_object_get(pb, "zh"))) > 0);
        cr_expect_str_eq(json_string_value(json_object_get(out, "notified")), owner);
        json_decref(out);
    }
    /* The playbook of every stage entered went to the owner. */
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind = 'playbook'"
        " AND rep_id = '%s'",
        id, owner);
    cr_expect_eq(lf_h_sql_long(h, q), 6);
    snprintf(q, sizeof q, "SELECT open_count FROM reps WHERE id = '%s'", owner);
    cr_expect_eq(lf_h_sql_long(h, q), 0, "a won deal no longer counts as open");
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM leads WHERE id = '%s' AND amount = 115000"
                         " AND closed_at IS NOT NULL AND first_contact_at IS NOT NULL",
                         id),
                 1);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM outbox WHERE lead_id = '%s' AND type ="
                         " 'stage.changed'",
                         id),
                 6);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM outbox WHERE lead_id = '%s' AND type ="
                         " 'deal.won'",
                         id),
                 1);
    /* The company became a customer owned by the winner. */
    snprintf(q, sizeof q,
             "SELECT count(*) FROM customers c JOIN leads l ON l.customer_id = c.id"
             " WHERE l.id = '%s' AND c.owner = '%s' AND c.won_at IS NOT NULL",
             id, owner);
    cr_expect_eq(lf_h_sql_long(h, q), 1);
    /* Analytics folded the moves and the outcome. */
    cr_expect(lf_h_wait_sql(h, "SELECT coalesce(sum(moves), 0) FROM rollup_stage_daily",
                            "6", 8000));
    cr_expect(lf_h_wait_sql(h,
                            "SELECT deals || '/' || amount FROM rollup_outcomes_daily"
                            " WHERE outcome = 'won'",
                            "1/115000", 8000));
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT deals_reached FROM v_funnel WHERE stage = 'won'"), 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT (win_rate * 100)::int FROM v_win_loss"), 100);
    /* Nothing leaves won. */
    json_t *out = NULL;
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"negotiation\",\"reason\":\"oops\"}",
                        owner, &out),
                 409);
    cr_expect_eq(json_array_size(json_object_get(out, "allowed")), 0);
    json_decref(out);

    /* The timeline tells the whole story in order. */
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    json_t *tl = json_object_get(lead, "timeline");
    const char *types[] = {"created",       "graded",        "assigned",
                           "stage_changed", "stage_changed", "stage_changed",
                           "stage_changed", "stage_changed", "stage_changed"};
    size_t nt = 0;
    const char *prev_at = "";
    int moves = 0;
    for (size_t i = 0; i < json_array_size(tl); i++) {
        json_t *e = json_array_get(tl, i);
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *at = json_string_value(json_object_get(e, "at"));
        cr_expect(strcmp(prev_at, at) <= 0, "timeline is in time order (%s after %s)", at,
                  prev_at);
        prev_at = at;
        if (nt < 9 && strcmp(type, types[nt]) == 0)
            nt++;
        if (strcmp(type, "stage_changed") == 0) {
            cr_expect_str_eq(json_string_value(json_object_get(e, "to")),
                             S_STAGES[++moves]);
            cr_expect_str_eq(json_string_value(json_object_get(e, "actor")), owner);
        }
    }
    cr_expect_eq(nt, 9, "created, graded, assigned, then six moves, in that order");
    json_decref(lead);

    /* A new inquiry from the same company is a new deal of the same customer. */
    char *again = s_new_lead(
        h, "{\"name\":\"刘洋\",\"company\":\"华东医疗\",\"phone\":\"13900139000\"}");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM leads a JOIN leads b ON a.customer_id = b.customer_id"
             " WHERE a.id = '%s' AND b.id = '%s' AND b.stage = 'new'",
             id, again);
    cr_expect_eq(lf_h_sql_long(h, q), 1, "the new lead is linked to the customer");
    snprintf(q, sizeof q, "SELECT customer_id FROM leads WHERE id = '%s'", id);
    char *cid = lf_h_sql(h, q);
    snprintf(path, sizeof path, "/v1/customers/%s", cid);
    json_t *cust = NULL;
    cr_expect_eq(lf_h_get_json(h, path, &cust), 200);
    cr_expect_eq(json_array_size(json_object_get(cust, "deals")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(cust, "owner")), owner);
    json_decref(cust);
    /* The timeline is append-only. */
    snprintf(q, sizeof q, "UPDATE lead_events SET type = 'x' WHERE lead_id = '%s'", id);
    cr_expect_null(lf_h_sql(h, q), "rewriting the timeline is refused");
    free(cid);
    free(again);
    free(owner);
    free(id);
    lf_h_destroy(&h);
}

Test(pipeline_api, walk_new_to_lost_and_reopen, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER | LF_H_ANALYTICS, 1);
    char *id = s_new_lead(
        h, "{\"company\":\"南方制造\",\"phone\":\"13800138020\",\"region\":\"south\"}");
    char *owner = s_wait_owner(h, id);
    cr_assert_eq(s_post(h, id, "stage", "{\"to\":\"contacted\"}", owner, NULL), 200);
    cr_assert_eq(s_post(h, id, "stage", "{\"to\":\"qualified\"}", owner, NULL), 200);
    cr_assert_eq(s_post(h, id, "stage", "{\"to\":\"proposal\"}", owner, NULL), 200);
    cr_assert_eq(
        s_post(h, id, "stage", "{\"to\":\"quote\",\"amount\":80000}", owner, NULL), 200);
    json_t *out = NULL;
    cr_assert_eq(
        s_post(h, id, "stage",
               "{\"to\":\"lost\",\"loss_reason\":\"竞品\",\"reason\":\"chose a rival\"}",
               owner, &out),
        200);
    cr_expect_str_eq(json_string_value(json_object_get(out, "stage")), "lost");
    json_decref(out);
    char q[512];
    snprintf(q, sizeof q, "SELECT open_count FROM reps WHERE id = '%s'", owner);
    cr_expect_eq(lf_h_sql_long(h, q), 0);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM leads WHERE id = '%s' AND stage = 'lost'"
                         " AND loss_reason = 'competitor' AND customer_id IS NULL",
                         id),
                 1, "a lost deal makes no customer");
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM outbox WHERE lead_id = '%s' AND type ="
                         " 'deal.lost' AND payload->>'loss_reason' = 'competitor'"
                         " AND (payload->>'amount')::numeric = 80000",
                         id),
                 1, "deal.lost carries the reason and the quoted amount");
    cr_expect(lf_h_wait_sql(h,
                            "SELECT loss_reason || '/' || deals || '/' || amount FROM"
                            " rollup_outcomes_daily WHERE outcome = 'lost'",
                            "competitor/1/80000", 8000));
    cr_expect_eq(lf_h_sql_long(h, "SELECT (win_rate * 100)::int FROM v_win_loss"), 0);
    /* Re-marketing: lost -> new needs a reason, and makes the deal open again. */
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"new\"}", owner, NULL), 422);
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"new\",\"reason\":\"budget is back\"}",
                        owner, NULL),
                 200);
    cr_expect_eq(lf_h_sql_long(h, q), 1);
    cr_expect_eq(
        s_count(h,
                "SELECT count(*) FROM leads WHERE id = '%s' AND loss_reason IS NULL"
                " AND closed_at IS NULL",
                id),
        1);
    free(owner);
    free(id);
    lf_h_destroy(&h);
}

Test(pipeline_api, activity_stops_the_sla_and_schedules_a_follow_up, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"escalate_after_seconds\":{\"A\":600,\"B\":600,\"C\":600,\"D\":600}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    /* The scheduler starts after the activity is logged, so the 1 s SLA cannot race
     * the activity: its timer is due by the time it runs. */
    char *id = s_new_lead(h, "{\"phone\":\"13800138030\",\"region\":\"east\"}");
    char *control = s_new_lead(h, "{\"phone\":\"13800138031\",\"region\":\"east\"}");
    char *owner = s_wait_owner(h, id);
    free(s_wait_owner(h, control));

    /* Bad activities are refused whole and store nothing. */
    json_t *out = NULL;
    cr_expect_eq(s_post(h, id, "activities",
                        "{\"type\":\"fax\",\"next_action_at\":\"2001-01-01T00:00:00Z\","
                        "\"by\":\"ghost\"}",
                        NULL, &out),
                 422);
    cr_expect_eq(json_array_size(json_object_get(out, "fields")), 2,
                 "type and next_action_at are listed together");
    json_decref(out);
    cr_expect_eq(s_post(h, id, "activities",
                        "{\"type\":\"call\",\"next_action_at\":\"tomorrow\"}", NULL,
                        NULL),
                 422);
    cr_expect_eq(s_post(h, id, "activities",
                        "{\"type\":\"call\",\"next_action_at\":\"2026-02-30T10:00:00Z\"}",
                        NULL, NULL),
                 422);
    cr_expect_eq(
        s_post(h, id, "activities", "{\"type\":\"call\",\"by\":\"ghost\"}", NULL, NULL),
        422);
    cr_expect_eq(s_post(h, id, "activities", "{}", NULL, NULL), 422);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM leads WHERE id = '%s'"
                         " AND first_contact_at IS NULL",
                         id),
                 1, "refused activities change nothing");

    /* A call with a next action two seconds from now. */
    char *next = lf_h_sql(h, "SELECT lf_rfc3339(now() + interval '2 seconds')");
    char body[512];
    snprintf(
        body, sizeof body,
        "{\"type\":\"call\",\"outcome\":\"interested\",\"note\":\"send the brochure\","
        "\"next_action_at\":\"%s\"}",
        next);
    cr_assert_eq(s_post(h, id, "activities", body, owner, &out), 201);
    cr_expect(json_is_true(json_object_get(out, "first_contact")));
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(out, "activity"), "by")), owner,
        "by defaults to the acting rep");
    json_decref(out);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM leads WHERE id = '%s'"
                         " AND first_contact_at IS NOT NULL",
                         id),
                 1);

    lf_h_start(h, LF_H_SCHEDULER, 0);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind = "
             "'sla_reminder'",
             control);
    cr_assert(lf_h_wait_sql(h, q, "1", 10000),
              "the lead nobody contacted got its reminder");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
             " AND kind = 'follow_up_reminder' AND rep_id = '%s'"
             " AND message LIKE '%%send the brochure%%'",
             id, owner);
    cr_expect(lf_h_wait_sql(h, q, "1", 10000),
              "the follow-up reminder fired to the owner");
    sleep(1);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
                         " AND kind IN ('sla_reminder', 'sla_escalation')",
                         id),
                 0, "the activity stopped the first-contact SLA");
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM timers WHERE lead_id = '%s'"
                         " AND kind = 'follow_up'",
                         id),
                 1, "one follow-up timer per activity");
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s'"
                         " AND type = 'follow_up_reminder'",
                         id),
                 1);
    /* A second activity without a next action, then the timeline order. */
    cr_expect_eq(s_post(h, id, "activities",
                        "{\"type\":\"note\",\"note\":\"brochure sent\"}", owner, NULL),
                 201);
    snprintf(q, sizeof q,
             "SELECT string_agg(data->>'seq', ',' ORDER BY id) FROM lead_events"
             " WHERE lead_id = '%s' AND type = 'activity'",
             id);
    char *seqs = lf_h_sql(h, q);
    cr_expect_str_eq(seqs, "1,2", "activities are numbered per lead");
    free(seqs);
    snprintf(
        q, sizeof q,
        "SELECT string_agg(type, ',' ORDER BY id) FROM lead_events WHERE lead_id = '%s'"
        " AND type IN ('activity', 'follow_up_reminder')",
        id);
    seqs = lf_h_sql(h, q);
    cr_expect_str_eq(seqs, "activity,follow_up_reminder,activity");
    free(seqs);
    free(next);
    free(owner);
    free(control);
    free(id);
    lf_h_destroy(&h);
}

/* Reopening a lost deal counts against its owner's capacity: with no room left the
 * move is refused (409) and nothing changes. The old code raised the open count past
 * the capacity unchecked. */
Test(pipeline_api, reopening_a_deal_respects_the_owner_capacity, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char *id = s_new_lead(h, "{\"phone\":\"13800138031\"}");
    s_set(h, id, "lost", "chen.jing");
    free(lf_h_sql(h,
                  "UPDATE reps SET capacity = 2, open_count = 2 WHERE id = 'chen.jing'"));
    json_t *out = NULL;
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"new\",\"reason\":\"budget is back\"}",
                        NULL, &out),
                 409);
    cr_expect_str_eq(json_string_value(json_object_get(out, "error")),
                     "owner_at_capacity");
    json_decref(out);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'chen.jing'"),
                 2);
    char *stage = s_stage_of(h, id);
    cr_expect_str_eq(stage, "lost", "nothing changed");
    free(stage);
    free(lf_h_sql(h, "UPDATE reps SET capacity = 3 WHERE id = 'chen.jing'"));
    cr_expect_eq(s_post(h, id, "stage", "{\"to\":\"new\",\"reason\":\"budget is back\"}",
                        NULL, NULL),
                 200);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'chen.jing'"),
                 3);
    free(id);
    lf_h_destroy(&h);
}

typedef struct {
    lf_h_t *h;
    char (*ids)[40];
    int n, ok, unavailable;
} s_mover_t;

/* Moves each lead new -> contacted -> new (with a reason) -> lost, as fast as it
 * can, counting 503s. */
static void *s_mover(void *arg) {
    s_mover_t *m = arg;
    for (int i = 0; i < m->n; i++) {
        const char *moves[] = {"{\"to\":\"contacted\"}",
                               "{\"to\":\"new\",\"reason\":\"wrong number\"}",
                               "{\"to\":\"lost\",\"loss_reason\":\"no_budget\"}"};
        for (int k = 0; k < 3; k++) {
            int st = s_post(m->h, m->ids[i], "stage", moves[k], NULL, NULL);
            if (st == 200)
                m->ok++;
            else if (st == 503)
                m->unavailable++;
        }
    }
    return NULL;
}

/* Stage moves (lead, then the owner's reps row) race the router's batches (which
 * record decisions for many leads and their reps in one transaction): with one lock
 * order on both sides nobody deadlocks, so no move answers 503. The old router took
 * lead 1, rep A, lead 2 ... and a move holding lead 2 while waiting for rep A made a
 * cycle that PostgreSQL broke by failing the move. */
Test(pipeline_api, stage_moves_racing_routing_batches_never_deadlock, .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    /* One rep for everything, so every routing decision and every move meets on the
     * same reps row. */
    free(lf_h_sql(h, "UPDATE reps SET active = false WHERE id <> 'li.ming'"));
    free(lf_h_sql(h, "UPDATE reps SET capacity = 100000 WHERE id = 'li.ming'"));
    enum { MOVED = 60, ROUTED = 600 };
    s_mover_t m = {.h = h, .n = MOVED};
    m.ids = calloc(MOVED, sizeof *m.ids);
    for (int i = 0; i < MOVED; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"phone\":\"1390000%04d\"}", i);
        char *id = s_new_lead(h, body);
        snprintf(m.ids[i], sizeof m.ids[i], "%s", id);
        free(id);
    }
    /* Owned leads to move; the routing backlog is made of new leads that name them
     * in the same batches (lead.updated of a moved lead re-grades it: lead then rep). */
    free(lf_h_sql(
        h, "UPDATE leads SET owner = 'li.ming', assigned_at = now(), grade = 'B'"));
    free(lf_h_sql(h, "UPDATE reps SET open_count = 60 WHERE id = 'li.ming'"));
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO leads (id, channel, phone) SELECT ('000000bb-0000-7000-8000-' "
             "|| lpad(i::text, 12, '0'))::uuid, 'api', "
             "'+86137' || lpad(i::text, 8, '0') FROM generate_series(1, %d) i",
             ROUTED);
    free(lf_h_sql(h, q));
    /* Interleave: a new lead to assign, a moved lead to re-grade (lead.updated). */
    snprintf(
        q, sizeof q,
        "INSERT INTO outbox (event_id, type, lead_id) SELECT gen_random_uuid(), t, l "
        "FROM (SELECT i, 'lead.created' AS t, ('000000bb-0000-7000-8000-' || "
        "lpad(i::text, 12, '0'))::uuid AS l FROM generate_series(1, "
        "%d) i UNION ALL SELECT i, 'lead.updated', (SELECT id FROM leads WHERE phone "
        "LIKE '+86139%%' ORDER BY id OFFSET (i %% %d) LIMIT 1) FROM generate_series(1, "
        "%d) i) x ORDER BY i, t",
        ROUTED, MOVED, ROUTED);
    free(lf_h_sql(h, q));
    lf_h_start(h, LF_H_ROUTER, 0);
    pthread_t t[2];
    s_mover_t m2 = m;
    m2.n = MOVED / 2;
    m.n = MOVED / 2;
    m2.ids = m.ids + MOVED / 2;
    pthread_create(&t[0], NULL, s_mover, &m);
    pthread_create(&t[1], NULL, s_mover, &m2);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    cr_expect_eq(m.unavailable + m2.unavailable, 0,
                 "stage moves answered 503 (deadlock) %d times",
                 m.unavailable + m2.unavailable);
    cr_expect_eq(m.ok + m2.ok, 3 * MOVED);
    cr_expect(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NULL",
                            "0", 60000),
              "the router did not finish");
    long deadlocks = lf_h_sql_long(
        h, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()");
    cr_expect_eq(deadlocks, 0, "PostgreSQL saw %ld deadlocks", deadlocks);
    free(m.ids);
    lf_h_destroy(&h);
}

typedef struct {
    lf_h_t *h;
    const char *id;
    int status;
    volatile int done;
} s_slow_t;

static void *s_slow_move(void *arg) {
    s_slow_t *s = arg;
    s->status = s_post(s->h, s->id, "stage", "{\"to\":\"contacted\"}", NULL, NULL);
    s->done = 1;
    return NULL;
}

/* A stage move waiting for a row lock holds one database worker, not the HTTP thread:
 * with a single HTTP thread, other requests (a database read, the health probe) are
 * answered while the move waits. The old intake ran the move on the HTTP thread, so
 * every other connection of that thread waited for the lock too. */
Test(pipeline_api, a_lock_wait_holds_one_worker_not_the_http_thread, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_env(h, "LEADFLOW_HTTP_THREADS", "1");
    lf_h_start(h, LF_H_INTAKE, 0);
    char *id = s_new_lead(h, "{\"phone\":\"13800138041\"}");
    s_set(h, id, "new", "li.ming");
    PGconn *lock = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(lock) == CONNECTION_OK);
    char q[160];
    snprintf(q, sizeof q, "BEGIN; SELECT 1 FROM leads WHERE id = '%s' FOR UPDATE", id);
    PQclear(PQexec(lock, q));
    s_slow_t slow = {.h = h, .id = id};
    pthread_t t;
    pthread_create(&t, NULL, s_slow_move, &slow);
    cr_expect(lf_h_wait_sql(h,
                            "SELECT count(*) > 0 FROM pg_stat_activity WHERE"
                            " datname = current_database() AND wait_event_type = 'Lock'",
                            "t", 10000),
              "the move never waited for the lock");
    json_t *out = NULL;
    cr_expect_eq(lf_h_get_json(h, "/v1/reps", &out), 200);
    json_decref(out);
    cr_expect_eq(lf_h_http(h, "GET", "/healthz", NULL, NULL, 0, NULL), 200);
    cr_expect(!slow.done, "other requests were answered only after the lock wait ended");
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    pthread_join(t, NULL);
    cr_expect_eq(slow.status, 200, "the move itself went through once the lock was free");
    free(id);
    lf_h_destroy(&h);
}
