/* Router service tests: the reps API, known customers, the fallback queue, pausing,
 * re-grading, reassignment, the fairness ledger across restarts, two router
 * instances under concurrent load, and the read-only replay. Real intake and router
 * binaries on a real PostgreSQL. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/envelope.h"
#include "../support/harness.h"

TestSuite(router, .fini = lf_h_fini);

static const char *const s_json_hdr[] = {"Content-Type: application/json", NULL};

static int s_send(lf_h_t *h, const char *method, const char *path, const char *body,
                  json_t **out) {
    char *resp = NULL;
    int st = lf_h_http(h, method, path, s_json_hdr, body, body ? strlen(body) : 0, &resp);
    if (out)
        *out = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return st;
}

static void s_rep(lf_h_t *h, const char *json) {
    json_t *out = NULL;
    int st = s_send(h, "POST", "/v1/reps", json, &out);
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    cr_assert_eq(st, 201, "POST /v1/reps %s answered %d: %s", json, st, text ? text : "");
    free(text);
    json_decref(out);
}

/* Posts a lead and waits until the router has decided about it. Caller frees. */
static char *s_lead(lf_h_t *h, const char *body) {
    json_t *out = NULL;
    int st = lf_h_post_json(h, "/v1/leads", body, &out);
    cr_assert_eq(st, 201, "POST /v1/leads answered %d", st);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    char q[256];
    snprintf(q, sizeof q, "SELECT assigned_at IS NOT NULL FROM leads WHERE id = '%s'",
             id);
    cr_assert(lf_h_wait_sql(h, q, "t", 10000), "lead %s not routed within 10 s", id);
    return id;
}

static char *s_owner(lf_h_t *h, const char *id) {
    char q[256];
    snprintf(q, sizeof q, "SELECT coalesce(owner, '') FROM leads WHERE id = '%s'", id);
    return lf_h_sql(h, q);
}

static int s_has_field_error(const json_t *body, const char *field) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(body, "fields"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "field")), field))
            return 1;
    }
    return 0;
}

Test(router, reps_api_validates_creates_and_merge_patches, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    json_t *out = NULL;
    cr_assert_eq(
        s_send(
            h, "POST", "/v1/reps",
            "{\"id\":\"wang.fang\",\"name\":\"王芳\",\"team\":\"east\",\"manager\":\"li."
            "ming\","
            "\"skills\":[\"medical\"],\"regions\":[\"east\"],\"grades\":[\"A\",\"B\"],"
            "\"capacity\":30,\"weight\":2,\"active\":true,\"timezone\":\"Asia/Shanghai\","
            "\"work_hours\":{\"mon\":[\"09:00\",\"18:00\"],\"sat\":[\"22:00\",\"06:00\"]}"
            ","
            "\"out_of_office\":[{\"from\":\"2026-05-01T00:00:00+08:00\","
            "\"to\":\"2026-05-06T00:00:00+08:00\"}]}",
            &out),
        201);
    cr_expect_str_eq(json_string_value(json_object_get(out, "team")), "east");
    cr_expect_eq(json_integer_value(json_object_get(out, "weight")), 2);
    cr_expect_eq(json_integer_value(json_object_get(out, "open_count")), 0);
    cr_expect_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(out, "out_of_office"), 0), "from")),
        "2026-04-30T16:00:00.000Z");
    json_decref(out);
    /* Stored the way the router's pool reads it: epoch pairs. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT (out_of_office->0->>0)::bigint FROM reps"),
                 1777564800L);

    cr_expect_eq(
        s_send(h, "POST", "/v1/reps", "{\"id\":\"wang.fang\",\"name\":\"x\"}", &out),
        409);
    cr_expect_str_eq(json_string_value(json_object_get(out, "error")), "rep_exists");
    json_decref(out);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE name = 'x'"), 0);
    /* Every broken field at once; nothing stored. */
    cr_assert_eq(
        s_send(
            h, "POST", "/v1/reps",
            "{\"id\":\"bad id\",\"capacity\":-1,\"weight\":0,\"timezone\":\"Mars/Base\","
            "\"grades\":[\"E\"],\"work_hours\":{\"mon\":[\"09:00\",\"09:00\"],"
            "\"xyz\":[\"09:00\",\"10:00\"]},\"out_of_office\":[{\"from\":\"tomorrow\","
            "\"to\":\"2026-05-06T00:00:00Z\"},{\"from\":\"2026-05-06T00:00:00Z\","
            "\"to\":\"2026-05-01T00:00:00Z\"}],\"active\":\"yes\",\"open_count\":3,"
            "\"foo\":1}",
            &out),
        422);
    const char *fields[] = {"id",
                            "name",
                            "capacity",
                            "weight",
                            "timezone",
                            "grades",
                            "work_hours.mon",
                            "work_hours.xyz",
                            "out_of_office[0]",
                            "out_of_office[1]",
                            "active",
                            "open_count",
                            "foo",
                            NULL};
    for (const char **f = fields; *f; f++)
        cr_expect(s_has_field_error(out, *f), "no error listed for %s", *f);
    json_decref(out);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM reps"), 1);
    cr_expect_eq(s_send(h, "POST", "/v1/reps", "[1]", NULL), 400);
    cr_expect_eq(s_send(h, "POST", "/v1/reps", "{\"id\":", NULL), 400);

    /* Merge patch: named members change, null resets, objects merge. */
    cr_assert_eq(s_send(h, "PATCH", "/v1/reps/wang.fang",
                        "{\"capacity\":5,\"manager\":null,\"work_hours\":{\"sat\":null,"
                        "\"tue\":[\"22:00\",\"06:00\"]}}",
                        &out),
                 200);
    cr_expect_eq(json_integer_value(json_object_get(out, "capacity")), 5);
    cr_expect(json_is_null(json_object_get(out, "manager")));
    cr_expect_str_eq(json_string_value(json_object_get(out, "name")), "王芳");
    json_t *wh = json_object_get(out, "work_hours");
    cr_expect(json_object_get(wh, "mon") && json_object_get(wh, "tue"));
    cr_expect(!json_object_get(wh, "sat"));
    cr_expect_eq(json_array_size(json_object_get(out, "out_of_office")), 1);
    json_decref(out);
    /* A bad patch changes nothing. */
    cr_expect_eq(s_send(h, "PATCH", "/v1/reps/wang.fang",
                        "{\"capacity\":1,\"timezone\":\"Nowhere/Land\"}", &out),
                 422);
    cr_expect(s_has_field_error(out, "timezone"));
    json_decref(out);
    cr_expect_eq(s_send(h, "PATCH", "/v1/reps/wang.fang", "{\"id\":\"other\"}", NULL),
                 422);
    cr_expect_eq(s_send(h, "PATCH", "/v1/reps/wang.fang", "{\"name\":null}", NULL), 422);
    cr_expect_eq(lf_h_sql_long(h, "SELECT capacity FROM reps WHERE id = 'wang.fang'"), 5);
    cr_expect_eq(s_send(h, "PATCH", "/v1/reps/nobody", "{\"capacity\":1}", NULL), 404);
    cr_expect_eq(s_send(h, "GET", "/v1/reps/nobody", NULL, NULL), 404);

    s_rep(h,
          "{\"id\":\"zhang.wei\",\"name\":\"张伟\",\"team\":\"north\",\"active\":false}");
    cr_assert_eq(lf_h_get_json(h, "/v1/reps", &out), 200);
    cr_expect_eq(json_array_size(json_object_get(out, "reps")), 2);
    json_decref(out);
    cr_assert_eq(lf_h_get_json(h, "/v1/reps?team=north", &out), 200);
    cr_expect_eq(json_array_size(json_object_get(out, "reps")), 1);
    json_decref(out);
    cr_assert_eq(lf_h_get_json(h, "/v1/reps/zhang.wei", &out), 200);
    cr_expect(json_is_false(json_object_get(out, "active")));
    cr_expect_str_eq(json_string_value(json_object_get(out, "timezone")),
                     "Asia/Shanghai");
    json_decref(out);
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps", (const char *[]){"Authorization:", NULL},
                           NULL, 0, NULL),
                 401);
    lf_h_destroy(&h);
}

#define S_REP(id)                                                                        \
    "{\"id\":\"" id "\",\"name\":\"" id "\",\"ignore_shift\":true,\"capacity\":10}"

Test(router, known_customer_goes_to_its_owner, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    char *l1 = s_lead(h, "{\"phone\":\"13800000001\",\"company\":\"Acme\"}");
    char *l2 = s_lead(h, "{\"phone\":\"13800000002\"}");
    char *l3 = s_lead(h, "{\"phone\":\"13800000003\"}");
    char *o1 = s_owner(h, l1), *o2 = s_owner(h, l2), *o3 = s_owner(h, l3);
    cr_assert_str_neq(o1, o2, "round robin alternates");
    cr_assert_str_eq(o1, o3);
    /* Round robin would now pick o2; the known customer goes to o1. */
    char *l4 = s_lead(h, "{\"phone\":\"13800000004\",\"company\":\"ACME\"}");
    char *o4 = s_owner(h, l4);
    cr_expect_str_eq(o4, o1, "same company goes to its owner");
    /* The same e-mail domain counts too; a webmail domain does not. */
    char *l5 = s_lead(h, "{\"email\":\"x@acme.cn\",\"company\":\"Acme Shanghai\"}");
    char *l6 = s_lead(h, "{\"email\":\"y@acme.cn\"}");
    char *o5 = s_owner(h, l5), *o6 = s_owner(h, l6);
    cr_expect_str_eq(o6, o5, "same e-mail domain goes to its owner");
    char *l7 = s_lead(h, "{\"email\":\"p@qq.com\"}");
    char *l8 = s_lead(h, "{\"email\":\"q@qq.com\"}");
    char *o7 = s_owner(h, l7), *o8 = s_owner(h, l8);
    cr_expect_str_neq(o7, o8, "webmail domains are not a customer");
    free(l1), free(l2), free(l3), free(l4), free(l5), free(l6), free(l7), free(l8);
    free(o1), free(o2), free(o3), free(o4), free(o5), free(o6), free(o7), free(o8);
    lf_h_destroy(&h);
}

Test(router, nobody_eligible_goes_to_the_queue_visibly, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true,\"grades\":[\"A\"]}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"capacity\":0}");
    char *id = s_lead(h, "{\"phone\":\"13800000001\"}");
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    cr_expect(json_is_null(json_object_get(lead, "owner")));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "queue")), "unassigned");
    cr_expect(json_string_length(json_object_get(lead, "assignment_reason")) > 0);
    json_t *tl = json_object_get(lead, "timeline"), *queued = NULL, *e;
    size_t i;
    json_array_foreach(tl, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "type")), "queued"))
            queued = e;
    }
    cr_assert(queued, "the timeline shows the lead was queued");
    cr_expect_eq(json_array_size(json_object_get(queued, "candidates")), 2);
    json_decref(lead);
    /* And SQL says why each rep was skipped. */
    char q[256];
    snprintf(q, sizeof q,
             "SELECT string_agg(rep || '=' || skip, ',' ORDER BY rep) FROM "
             "assignment_explanations WHERE lead_id = '%s'",
             id);
    char *why = lf_h_sql(h, q);
    cr_expect_str_eq(why, "a=grade,b=paused");
    free(why);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), 0);
    free(id);
    lf_h_destroy(&h);
}

/* The router writes its lead.assigned payloads and envelopes as JSON text in C (no
 * lf_envelope() in the write statement): what it publishes must be what lf_envelope()
 * gives for the outbox row, for a queued lead (owner null) and an assigned one. */
Test(router, published_envelopes_equal_lf_envelope_of_their_outbox_row, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true,\"grades\":[\"A\"]}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"capacity\":0}");
    lf_h_sub_t sub = lf_h_sub_open(h, LF_H_ROUTER, "lead.assigned", 10000);
    char *queued = s_lead(h, "{\"phone\":\"13800000001\",\"name\":\"王 \\\"Q\\\"\"}");
    cr_assert_eq(s_send(h, "PATCH", "/v1/reps/b", "{\"capacity\":10}", NULL), 200);
    char *assigned = s_lead(h, "{\"phone\":\"13800000002\",\"source\":\"官网\"}");
    const char *leads[] = {queued, assigned};
    for (int i = 0; i < 2; i++) {
        json_t *e = lf_h_recv_outbox_envelope(h, &sub, "lead.assigned");
        cr_expect_str_eq(json_string_value(json_object_get(e, "lead_id")), leads[i],
                         "envelope %d is lead %s's", i, leads[i]);
        json_t *pl = json_object_get(e, "payload");
        cr_expect(i == 0 ? json_is_null(json_object_get(pl, "owner"))
                         : json_is_string(json_object_get(pl, "owner")),
                  "payload of envelope %d", i);
        json_decref(e);
    }
    lf_h_sub_close(&sub);
    free(queued);
    free(assigned);
    lf_h_destroy(&h);
}

Test(router, capacity_zero_pauses_without_side_effects, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    free(s_lead(h, "{\"phone\":\"13800000001\"}"));
    free(s_lead(h, "{\"phone\":\"13800000002\"}"));
    cr_assert_eq(s_send(h, "PATCH", "/v1/reps/a", "{\"capacity\":0}", NULL), 200);
    for (int i = 0; i < 4; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"phone\":\"1390000000%d\"}", i);
        char *id = s_lead(h, body);
        char *o = s_owner(h, id);
        cr_expect_str_eq(o, "b", "a paused rep gets nothing (lead %d)", i);
        free(o);
        free(id);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'a'"), 1,
                 "pausing keeps the rep's open leads");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner = 'a'"), 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignment_explanations "
                                  "WHERE rep = 'a' AND skip = 'paused'"),
                 4);
    /* Back to work without a router restart. */
    cr_assert_eq(s_send(h, "PATCH", "/v1/reps/a", "{\"capacity\":10}", NULL), 200);
    char *id = s_lead(h, "{\"phone\":\"13700000000\"}");
    char *o = s_owner(h, id);
    cr_expect_str_eq(o, "a", "least recently chosen rep is next once unpaused");
    free(o);
    free(id);
    lf_h_destroy(&h);
}

Test(router, patching_facts_regrades_without_reassigning, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    char *id = s_lead(h, "{\"phone\":\"13800000001\"}");
    char *owner = s_owner(h, id);
    char q[256], path[128];
    snprintf(q, sizeof q, "SELECT grade FROM leads WHERE id = '%s'", id);
    char *before = lf_h_sql(h, q);
    cr_assert_str_eq(before, "D");
    free(before);
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *out = NULL;
    /* Bad input: listed, nothing changed. */
    cr_expect_eq(
        s_send(h, "PATCH", path, "{\"urgency\":\"whenever\",\"phone\":\"1\"}", &out),
        422);
    cr_expect(s_has_field_error(out, "urgency") && s_has_field_error(out, "phone"));
    json_decref(out);
    cr_expect_eq(s_send(h, "PATCH", path, "{}", NULL), 422);
    cr_expect_eq(s_send(h, "PATCH", "/v1/leads/no-such-lead", "{\"need\":\"x\"}", NULL),
                 404);
    snprintf(q, sizeof q, "SELECT count(*) FROM lead_events WHERE lead_id = '%s'", id);
    long events = lf_h_sql_long(h, q);

    cr_assert_eq(
        s_send(h, "PATCH", path,
               "{\"budget\":\"200万\",\"urgency\":\"high\",\"decision_maker\":true,"
               "\"industry\":\"medical\",\"company\":\"华东医疗\",\"name\":\"王芳\"}",
               &out),
        200);
    char *dbg = json_dumps(out, JSON_COMPACT);
    cr_expect(json_object_get(json_object_get(out, "changes"), "urgency"), "%s", dbg);
    free(dbg);
    json_decref(out);
    snprintf(q, sizeof q, "SELECT grade FROM leads WHERE id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "A", 20000), "lead was not re-graded to A");
    char *after = s_owner(h, id);
    cr_expect_str_eq(after, owner, "re-grading keeps the owner");
    snprintf(q, sizeof q, "SELECT count(*) FROM assignments WHERE lead_id = '%s'", id);
    cr_expect_eq(lf_h_sql_long(h, q), 1);
    snprintf(
        q, sizeof q,
        "SELECT string_agg(type, ',' ORDER BY id) FROM lead_events WHERE lead_id = '%s' "
        "AND type IN ('updated', 'regraded')",
        id);
    char *types = lf_h_sql(h, q);
    cr_expect_str_eq(types, "updated,regraded");
    free(types);
    snprintf(q, sizeof q, "SELECT count(*) FROM lead_events WHERE lead_id = '%s'", id);
    cr_expect_eq(lf_h_sql_long(h, q), events + 2);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), 1);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    cr_expect_eq(
        json_number_value(json_object_get(json_object_get(lead, "budget"), "min")),
        2000000.0);
    cr_expect_str_eq(json_string_value(json_object_get(lead, "company")), "华东医疗");
    json_decref(lead);
    free(after);
    free(owner);
    free(id);
    lf_h_destroy(&h);
}

static void s_reassign(lf_h_t *h, const char *id, const char *exclude_json) {
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO outbox (event_id, type, lead_id, payload) VALUES "
             "(gen_random_uuid(), 'lead.reassign', '%s', '{\"reason\": \"sla_missed\", "
             "\"exclude\": %s}') RETURNING id",
             id, exclude_json);
    free(lf_h_sql(h, q));
}

Test(router, reassign_excludes_every_previous_owner, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    s_rep(h, S_REP("c"));
    char *id = s_lead(h, "{\"phone\":\"13800000001\"}");
    char *first = s_owner(h, id);
    /* The event also names a rep to skip: the third rep is the only choice. */
    const char *other = strcmp(first, "a") ? "a" : "b";
    const char *third = strcmp(first, "c") && strcmp(other, "c") ? "c" : "b";
    char ex[64], q[256];
    snprintf(ex, sizeof ex, "[\"%s\"]", other);
    s_reassign(h, id, ex);
    snprintf(q, sizeof q, "SELECT count(*) FROM assignments WHERE lead_id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "2", 20000), "no reassignment within 20 s");
    char *second = s_owner(h, id);
    cr_expect_str_eq(second, third);
    snprintf(q, sizeof q, "SELECT open_count FROM reps WHERE id = '%s'", first);
    cr_expect_eq(lf_h_sql_long(h, q), 0, "the old owner's open count moved");
    snprintf(q, sizeof q, "SELECT open_count FROM reps WHERE id = '%s'", second);
    cr_expect_eq(lf_h_sql_long(h, q), 1);
    /* Next time: both previous owners are excluded by the history alone. */
    s_reassign(h, id, "[]");
    snprintf(q, sizeof q, "SELECT count(*) FROM assignments WHERE lead_id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "3", 20000));
    char *last = s_owner(h, id);
    cr_expect_str_eq(last, other);
    /* Nobody left: the lead goes to the queue, visibly. */
    s_reassign(h, id, "[]");
    cr_assert(lf_h_wait_sql(h, q, "4", 20000));
    snprintf(q, sizeof q,
             "SELECT coalesce(owner, '-') || '/' || queue FROM leads WHERE id = '%s'",
             id);
    char *where = lf_h_sql(h, q);
    cr_expect_str_eq(where, "-/unassigned");
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), 0);
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM assignments WHERE lead_id = '%s' AND kind = 'reassign'",
        id);
    cr_expect_eq(lf_h_sql_long(h, q), 3);
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND type = 'reassigned'",
        id);
    cr_expect_eq(lf_h_sql_long(h, q), 3);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.reassigned'"),
        3);
    free(where), free(last), free(second), free(first), free(id);
    lf_h_destroy(&h);
}

Test(router, rotation_survives_router_restart, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    s_rep(h, S_REP("c"));
    char *l1 = s_lead(h, "{\"phone\":\"13800000001\"}");
    char *l2 = s_lead(h, "{\"phone\":\"13800000002\"}");
    lf_h_stop(h, LF_H_ROUTER, 0, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    char *l3 = s_lead(h, "{\"phone\":\"13800000003\"}");
    char *o1 = s_owner(h, l1), *o2 = s_owner(h, l2), *o3 = s_owner(h, l3);
    cr_expect_str_neq(o3, o1, "the rotation continues after a restart");
    cr_expect_str_neq(o3, o2);
    /* A new hire joins the pool without a restart; the ledger keeps its place. */
    s_rep(h, S_REP("d"));
    char *l4 = s_lead(h, "{\"phone\":\"13800000004\"}");
    char *o4 = s_owner(h, l4);
    cr_expect_str_eq(o4, "d");
    free(l1), free(l2), free(l3), free(l4), free(o1), free(o2), free(o3), free(o4);
    lf_h_destroy(&h);
}

typedef struct {
    lf_h_t *h;
    int from, to;
    int ok;
} s_poster_t;

static void *s_poster(void *arg) {
    s_poster_t *p = arg;
    for (int i = p->from; i < p->to; i++) {
        char body[96];
        /* No region: team rules would send "east" to the east team, and these reps
         * are in no team. */
        snprintf(body, sizeof body, "{\"phone\":\"1360000%04d\"}", i);
        if (lf_h_post_json(p->h, "/v1/leads", body, NULL) == 201)
            p->ok++;
    }
    return NULL;
}

Test(router, two_routers_never_assign_twice_nor_overfill, .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    /* 5 reps x 50 = 250 seats for 300 leads: the last 50 must queue. */
    for (int i = 0; i < 5; i++) {
        char rep[160];
        snprintf(rep, sizeof rep,
                 "{\"id\":\"r%d\",\"name\":\"r%d\",\"ignore_shift\":true,\"capacity\":50,"
                 "\"weight\":%d}",
                 i, i, i + 1);
        s_rep(h, rep);
    }
    lf_h_env(h, "LEADFLOW_ROUTER_BATCH", "16");
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_ROUTER, 1);
    enum { N = 300, T = 6 };
    pthread_t th[T];
    s_poster_t ps[T];
    for (int t = 0; t < T; t++) {
        ps[t] = (s_poster_t){h, t * N / T, (t + 1) * N / T, 0};
        pthread_create(&th[t], NULL, s_poster, &ps[t]);
    }
    int ok = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ok += ps[t].ok;
    }
    cr_assert_eq(ok, N, "only %d of %d leads were accepted", ok, N);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            "300", 60000),
              "not every lead was routed");
    sleep(1); /* let any late duplicate show itself */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments"), N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT lead_id) FROM assignments"), N);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE open_count > capacity"), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"),
                 lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IS NOT NULL"));
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IS NOT NULL"),
                 250);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE queue = 'unassigned'"), 50);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.assigned'"), N);
    /* Their decisions add up to one per lead (the log line at shutdown). */
    lf_h_stop(h, LF_H_ROUTER, 0, 0);
    lf_h_stop(h, LF_H_ROUTER, 1, 0);
    long total = 0;
    for (int i = 0; i < 2; i++) {
        char path[512], line[1024];
        snprintf(path, sizeof path, "%s/router.%d.log", lf_h_dir(h), i);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no log %s", path);
        long routed = -1;
        while (fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "stopped routed=");
            if (p)
                routed = atol(p + 15);
        }
        fclose(f);
        cr_log_info("router %d routed %ld leads", i, routed);
        cr_expect_geq(routed, 0);
        total += routed;
    }
    cr_expect_eq(total, N);
    lf_h_destroy(&h);
}

/* Posts n leads; body i from fmt with i. Asserts every one was accepted. */
static void s_post_n(lf_h_t *h, int n, const char *const *bodies) {
    for (int i = 0; i < n; i++)
        cr_assert_eq(lf_h_post_json(h, "/v1/leads", bodies[i], NULL), 201,
                     "lead %d not accepted", i);
}

/* A backlog is decided as sets (one write per batch, not per lead): the decisions are
 * those of the lead-by-lead path - capacity, the queue when everyone is full, a known
 * customer decided earlier in the same batch - and readers see the same explanations. */
Test(router, a_backlog_is_decided_as_sets_with_the_same_outcome, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true,\"capacity\":6}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"capacity\":6}");
    s_rep(h, "{\"id\":\"c\",\"name\":\"c\",\"ignore_shift\":true,\"capacity\":0}");
    /* 20 leads while no router runs: 12 seats, two pairs of one company each. */
    enum { N = 20 };
    char bodies[N][128];
    const char *bp[N];
    for (int i = 0; i < N; i++) {
        if (i == 3 || i == 9)
            snprintf(bodies[i], sizeof bodies[i],
                     "{\"phone\":\"1380000%04d\",\"company\":\"Acme %s\"}", i,
                     i == 3 ? "Shanghai" : "上海");
        else
            snprintf(bodies[i], sizeof bodies[i], "{\"phone\":\"1380000%04d\"}", i);
        bp[i] = bodies[i];
    }
    s_post_n(h, N, bp);
    lf_h_env(h, "LEADFLOW_ROUTER_BATCH", "64");
    lf_h_start(h, LF_H_ROUTER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            "20", 30000),
              "not every lead was routed");
    /* Set-based: fewer explanation rows (one per written batch) than leads. */
    long batches = lf_h_sql_long(h, "SELECT count(*) FROM route_explanations");
    cr_expect(batches >= 1 && batches < N, "%ld explanation rows for %d leads", batches,
              N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments WHERE cand IS NULL"),
                 0, "every decision took the set path");
    /* The events' ids, made by the router (lf_uuid4), are random UUIDs (version 4),
     * each different, as gen_random_uuid() made them in the statement before. */
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(DISTINCT event_id) FROM outbox"
                         " WHERE type = 'lead.assigned'"
                         " AND substr(event_id::text, 15, 1) = '4'"
                         " AND substr(event_id::text, 20, 1) IN ('8', '9', 'a', 'b')"),
        N, "the lead.assigned events' ids are not %d distinct v4 UUIDs", N);
    /* A decision moves updated_at (a CRM syncing by updated_at sees the lead again): set
     * by the router's own statement, since the timeline's touch trigger leaves the
     * router's entries alone. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE updated_at <> "
                                  "assigned_at OR updated_at <= created_at"),
                 0, "a routed lead's updated_at is not the time of its decision");
    /* Capacity: 12 seats, the rest queued; counts equal a recount. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IS NOT NULL"),
                 12);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE queue = 'unassigned'"), 8);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM reps r WHERE open_count <> (SELECT "
                               "count(*) FROM leads l WHERE l.owner = r.id)"),
                 0);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE open_count > capacity"), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT assigned_total FROM reps WHERE id = 'a'") +
                     lf_h_sql_long(h, "SELECT assigned_total FROM reps WHERE id = 'b'"),
                 12);
    /* The known customer decided earlier in the batch keeps its owner. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT owner) FROM leads"
                                  " WHERE company IN ('Acme Shanghai', 'Acme 上海')"),
                 1);
    /* One decision, one event, two timeline entries per lead, stored as one row. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments"), N);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.assigned'"), N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_events e CROSS JOIN LATERAL"
                                  " lf_timeline_entries(e.type, e.data) x WHERE x.type IN"
                                  " ('graded', 'assigned', 'queued')"),
                 2 * N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_events WHERE type IN "
                                  "('graded', 'assigned', 'queued')"),
                 N);
    /* Explanations: every candidate, one chosen per assigned lead (its owner), the
     * skip reasons of the queued ones. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignment_explanations"), 3 * N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignment_explanations e JOIN "
                                  "leads l ON l.id = e.lead_id WHERE e.chosen AND "
                                  "e.rep = l.owner AND e.eligible"),
                 12);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM assignment_explanations"
                               " WHERE rep = 'c' AND skip = 'paused' AND NOT eligible"),
                 N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignment_explanations"
                                  " WHERE skip = 'at_capacity' AND assigned_to IS NULL"),
                 2 * 8);
    /* The API's timeline shows the candidates of a queued lead, as before. */
    char *queued = lf_h_sql(h, "SELECT id FROM leads WHERE owner IS NULL LIMIT 1");
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", queued);
    json_t *lead = NULL, *e, *entry = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    size_t i;
    json_array_foreach(json_object_get(lead, "timeline"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "type")), "queued"))
            entry = e;
    }
    cr_assert(entry, "the timeline shows the lead was queued");
    cr_expect(!json_object_get(entry, "assignment"));
    json_t *cands = json_object_get(entry, "candidates");
    cr_assert_eq(json_array_size(cands), 3);
    json_array_foreach(cands, i, e) {
        const char *rep = json_string_value(json_object_get(e, "rep"));
        const char *skip = json_string_value(json_object_get(e, "skip"));
        cr_assert(rep && skip);
        cr_expect_str_eq(skip, !strcmp(rep, "c") ? "paused" : "at_capacity");
        cr_expect(json_is_false(json_object_get(e, "eligible")));
        cr_expect(json_is_false(json_object_get(e, "chosen")));
    }
    json_decref(lead);
    free(queued);
    lf_h_destroy(&h);
}

/* The breakdown of `path`'s lead and that of its 'graded' timeline entry, which must be
 * equal; returns the lead's (caller owns it) and sets *score. */
static json_t *s_breakdowns(lf_h_t *h, const char *path, int *score) {
    json_t *lead = NULL, *e, *graded = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    size_t i;
    json_array_foreach(json_object_get(lead, "timeline"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "type")), "graded"))
            graded = e;
    }
    cr_assert(graded, "the timeline shows the lead was graded");
    cr_expect(!json_object_get(graded, "breakdown_codes") &&
                  !json_object_get(graded, "breakdown_dict"),
              "the timeline shows codes");
    json_t *bd = json_object_get(lead, "score_breakdown");
    char *a = json_dumps(bd, JSON_COMPACT | JSON_SORT_KEYS);
    char *b =
        json_dumps(json_object_get(graded, "breakdown"), JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(a, b, "the lead's breakdown and the graded entry's differ");
    free(a), free(b);
    *score = (int)json_integer_value(json_object_get(lead, "score"));
    json_incref(bd);
    json_decref(lead);
    return bd;
}

/* The batch path stores a breakdown as codes against the batch's rule dictionary, once
 * in the lead and once in the 'graded' entry; readers see exactly the JSON the
 * lead-by-lead path stores for the same facts (a re-grade writes it). */
Test(router, a_batch_breakdown_is_stored_as_codes_and_read_as_json, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    s_rep(h, S_REP("a"));
    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"phone\":\"13800000001\",\"name\":\"王芳\","
                                "\"company\":\"华东医疗\",\"urgency\":\"high\","
                                "\"decision_maker\":true,\"budget\":\"200万\","
                                "\"industry\":\"medical\",\"need\":\"CT\"}",
                                &out),
                 201);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"phone\":\"13800000002\"}", NULL),
                 201);
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"email\":\"x@example.org\"}", NULL),
                 201);
    lf_h_env(h, "LEADFLOW_ROUTER_BATCH", "64");
    lf_h_start(h, LF_H_ROUTER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            "3", 30000),
              "not every lead was routed");
    /* Stored once, as codes, by the set path. */
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM leads WHERE score_breakdown IS NULL"
                               " AND breakdown_codes IS NOT NULL"
                               " AND breakdown_dict IS NOT NULL"),
                 3);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_events"
                                  " WHERE type IN ('assigned', 'queued')"
                                  " AND data -> 'graded' ? 'breakdown_codes'"
                                  " AND NOT data -> 'graded' ? 'breakdown'"),
                 3);
    /* Read back, every breakdown sums to its score, in the lead and the timeline. */
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM leads l WHERE l.score <> (SELECT"
                               " sum((x ->> 'points')::int) FROM jsonb_array_elements("
                               "lf_score_breakdown(l.breakdown_dict, l.breakdown_codes))"
                               " x)"),
                 0);
    /* The decoding of negative points (a penalty, a clamp), which the default scorecard
     * does not produce: -5 for rule 1 and 20 for rule 0 (points * 4096 + rule). */
    char *dict = lf_h_sql(h, "INSERT INTO route_explanations (reps, rules)"
                             " VALUES ('{}', '{\"a\\\"q\", clamp_to_100}') RETURNING id");
    char q0[256];
    snprintf(q0, sizeof q0,
             "SELECT lf_score_breakdown(%s, ARRAY[-5 * 4096 + 1, 20 * 4096,"
             " -4095 * 4096 + 1])::text",
             dict);
    char *neg = lf_h_sql(h, q0);
    free(dict);
    cr_expect_str_eq(
        neg, "[{\"rule\": \"clamp_to_100\", \"points\": -5}, {\"rule\": \"a\\\"q\","
             " \"points\": 20}, {\"rule\": \"clamp_to_100\", \"points\": -4095}]");
    free(neg);
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    int score = 0;
    json_t *codes = s_breakdowns(h, path, &score);
    cr_assert_gt(json_array_size(codes), 5, "a rich lead has a long breakdown");
    /* A re-grade on the same facts (the name is not graded, only its presence) goes
     * through the lead-by-lead path, which stores JSON: the same breakdown. */
    cr_assert_eq(s_send(h, "PATCH", path, "{\"name\":\"李雷\"}", NULL), 200);
    char q[256];
    snprintf(q, sizeof q,
             "SELECT score_breakdown IS NOT NULL AND breakdown_codes IS NULL"
             " FROM leads WHERE id = '%s'",
             id);
    cr_assert(lf_h_wait_sql(h, q, "t", 10000), "the lead was not re-graded");
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    char *a = json_dumps(codes, JSON_COMPACT);
    char *b = json_dumps(json_object_get(lead, "score_breakdown"), JSON_COMPACT);
    cr_expect_str_eq(a, b, "the breakdown read from codes is not the one stored as JSON");
    cr_expect_eq(json_integer_value(json_object_get(lead, "score")), score);
    free(a), free(b);
    json_decref(lead);
    json_decref(codes);
    free(id);
    lf_h_destroy(&h);
}

/* One batch mixing events: a lead created, then reassigned (handled alone, after the
 * decisions before it were written), then a lead of the same company: it must see the
 * reassigned owner as its known customer's, as lead by lead - the batch reads its leads
 * again after an event handled alone. */
Test(router, a_batch_mixing_events_decides_as_lead_by_lead, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    s_rep(h, S_REP("c"));
    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"phone\":\"13800000001\",\"company\":\"Acme\"}", &out),
                 201);
    char *y = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"phone\":\"13800000002\"}", NULL),
                 201);
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO outbox (event_id, type, lead_id, payload) VALUES"
             " (gen_random_uuid(), 'lead.reassign', '%s',"
             " '{\"reason\": \"test\", \"exclude\": []}')",
             y);
    free(lf_h_sql(h, q));
    cr_assert_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"phone\":\"13800000003\",\"company\":\"Acme\"}", &out),
                 201);
    char *z = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    lf_h_env(h, "LEADFLOW_ROUTER_BATCH", "64");
    lf_h_start(h, LF_H_ROUTER, 0);
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM assignments WHERE lead_id = '%s' AND kind = 'reassign'", y);
    cr_assert(lf_h_wait_sql(h, q, "1", 30000), "lead y was not reassigned");
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            "3", 30000));
    snprintf(q, sizeof q,
             "SELECT rep_id FROM assignments WHERE lead_id = '%s' AND kind = 'initial'",
             y);
    char *first = lf_h_sql(h, q);
    char *oy = s_owner(h, y), *oz = s_owner(h, z);
    cr_expect_str_neq(oy, first, "the reassignment excludes the first owner");
    cr_expect_str_eq(oz, oy, "the same company follows the owner it has now");
    /* Both forms of explanations read alike: one chosen candidate, the owner. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM (SELECT assignment_id FROM"
                                  " assignment_explanations GROUP BY assignment_id"
                                  " HAVING count(*) FILTER (WHERE chosen) = 1"
                                  " AND bool_and(rep IS NOT NULL)) x"),
                 4);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignment_explanations e JOIN"
                                  " assignments a ON a.id = e.assignment_id"
                                  " WHERE e.chosen AND e.rep = a.rep_id"),
                 4);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM reps r WHERE open_count <> (SELECT"
                               " count(*) FROM leads l WHERE l.owner = r.id)"),
                 0);
    free(first), free(oy), free(oz), free(y), free(z);
    lf_h_destroy(&h);
}

/* The capacity guard in SQL: when the database says a rep is full while the cached
 * pool thinks otherwise (a change the pool's fingerprint cannot see), the batch is
 * rolled back and routed again on a pool read from the database; nobody goes over. */
Test(router, the_batch_capacity_guard_catches_a_pool_that_is_out_of_date,
     .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true,\"capacity\":5}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"capacity\":50}");
    free(s_lead(h, "{\"phone\":\"13800000001\"}")); /* the pool is cached now */
    /* Rep a fills up behind the pool's back: with the version trigger off, the
     * fingerprint the router checks does not move. */
    free(lf_h_sql(h, "ALTER TABLE reps DISABLE TRIGGER reps_touch;"
                     " UPDATE reps SET open_count = 5 WHERE id = 'a';"
                     " ALTER TABLE reps ENABLE TRIGGER reps_touch; SELECT 1"));
    long before = lf_h_sql_long(h, "SELECT count(*) FROM leads");
    const char *bp[8];
    char bodies[8][64];
    for (int i = 0; i < 8; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"phone\":\"1390000%04d\"}", i);
        bp[i] = bodies[i];
    }
    s_post_n(h, 8, bp);
    char want[24];
    snprintf(want, sizeof want, "%ld", before + 8);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            want, 30000),
              "not every lead was routed");
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE open_count > capacity"), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'a'"), 5,
                 "a full rep got nothing more");
    lf_h_destroy(&h);
}

Test(router, replay_reports_without_changing_anything, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"capacity\":1}");
    for (int i = 0; i < 6; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"phone\":\"1350000000%d\"}", i);
        free(s_lead(h, body));
    }
    const char *snap =
        "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM ("
        " SELECT l::text AS t FROM leads l UNION ALL SELECT r::text FROM reps r"
        " UNION ALL SELECT a::text FROM assignments a"
        " UNION ALL SELECT o::text FROM outbox o"
        " UNION ALL SELECT g::text FROM routing_ledger g) s";
    char *before = lf_h_sql(h, snap);
    /* Draft: every lead is an A, and only b takes A leads. */
    char draft[512];
    snprintf(draft, sizeof draft, "%s/draft.json", lf_h_dir(h));
    FILE *f = fopen(draft, "w");
    cr_assert(f);
    fputs("{\"scorecard\": {\"base\": 80, \"thresholds\": {\"A\": 70, \"B\": 45, \"C\": "
          "25}},"
          " \"routing\": {\"default_policy\": \"round_robin\"}}",
          f);
    fclose(f);
    free(lf_h_sql(h, "UPDATE reps SET grades = '{B,C,D}' WHERE id = 'a'"));
    free(before);
    before = lf_h_sql(h, snap);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_CONFIG_DIR=config %s/leadflow-router "
             "--replay "
             "--since 1d --config %s --json",
             lf_h_db_url(h), getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin",
             draft);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "replay failed: %s", buf);
    json_t *rep = json_loads(buf, 0, NULL);
    cr_assert(rep, "replay --json printed: %s", buf);
    cr_expect_eq(json_integer_value(json_object_get(rep, "leads")), 6);
    json_t *draft_g = json_object_get(json_object_get(rep, "grades"), "draft");
    cr_expect_eq(json_integer_value(json_object_get(draft_g, "A")), 6);
    cr_expect_eq(json_integer_value(json_object_get(rep, "grade_changed")), 6);
    /* b takes one A lead (capacity 1), the other five find nobody. */
    cr_expect_eq(json_integer_value(json_object_get(rep, "no_eligible")), 5);
    json_decref(rep);
    char *after = lf_h_sql(h, snap);
    cr_expect_str_eq(after, before, "replay changed the database");
    /* The text report says the same. */
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_CONFIG_DIR=config %s/leadflow-router "
             "--replay "
             "--since 1d --config %s",
             lf_h_db_url(h), getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin",
             draft);
    p = popen(cmd, "r");
    cr_assert(p);
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "replay failed: %s", buf);
    cr_expect(strstr(buf, "replay of 6 leads"), "%s", buf);
    cr_expect(strstr(buf, "no eligible rep: draft 5, current 0"), "%s", buf);
    /* Bad arguments fail with a clear message. */
    snprintf(
        cmd, sizeof cmd,
        "LEADFLOW_DATABASE_URL='%s' %s/leadflow-router --replay --since forever 2>&1",
        lf_h_db_url(h), getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin");
    p = popen(cmd, "r");
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(buf, "--since"), "message: %s", buf);
    free(before);
    free(after);
    lf_h_destroy(&h);
}

Test(router, sla_miss_after_escalation_reassigns_to_another_rep, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"escalate_after_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"reassign_after_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    s_rep(h, S_REP("a"));
    s_rep(h, S_REP("b"));
    char *id = s_lead(h, "{\"phone\":\"13800000001\"}");
    char *first = s_owner(h, id);
    char q[256];
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM assignments WHERE lead_id = '%s' AND kind = 'reassign'",
        id);
    cr_assert(lf_h_wait_sql(h, q, "1", 15000), "no reassignment after the SLA miss");
    snprintf(
        q, sizeof q,
        "SELECT coalesce(rep_id, '') FROM assignments WHERE lead_id = '%s' AND kind = "
        "'reassign' ORDER BY id LIMIT 1",
        id);
    char *second = lf_h_sql(h, q);
    cr_expect_str_neq(second, first);
    cr_expect_str_neq(second, "");
    snprintf(q, sizeof q,
             "SELECT data->>'cause' FROM lead_events WHERE lead_id = '%s' AND type = "
             "'reassigned' ORDER BY id LIMIT 1",
             id);
    char *cause = lf_h_sql(h, q);
    cr_expect_str_eq(cause, "sla_missed");
    snprintf(
        q, sizeof q,
        "SELECT string_agg(kind || ':' || rep_id, ',' ORDER BY id) FROM (SELECT * FROM "
        "notifications WHERE lead_id = '%s' ORDER BY id LIMIT 5) n",
        id);
    char *kinds = lf_h_sql(h, q);
    char want[256];
    /* Told of the lead, reminded, escalated, then the lead moved: the new owner is
     * told it is theirs, the old one that it left. */
    snprintf(want, sizeof want,
             "lead_assigned:%s,sla_reminder:%s,sla_escalation:%s,lead_assigned:%s,"
             "lead_reassigned:%s",
             first, first, first, second, first);
    cr_expect_str_eq(kinds, want);
    /* The new owner gets a first-contact clock of their own... */
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind = "
             "'sla_reminder' AND rep_id = '%s'",
             id, second);
    cr_expect(lf_h_wait_sql(h, q, "1", 15000), "the new owner was never reminded");
    /* ...and when they miss it too, with nobody left who has not had the lead, it
     * goes to the queue, visibly. */
    snprintf(q, sizeof q,
             "SELECT owner IS NULL AND queue IS NOT NULL FROM leads WHERE id = '%s'", id);
    cr_expect(lf_h_wait_sql(h, q, "t", 15000), "the lead did not end in the queue");
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), 0);
    free(kinds), free(cause), free(second), free(first), free(id);
    lf_h_destroy(&h);
}

/* A rep row the pool refuses (written around the API) is left out, not fatal. */
Test(router, a_bad_rep_row_does_not_stop_routing, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, S_REP("good"));
    free(lf_h_sql(
        h, "INSERT INTO reps (id, name, timezone) VALUES ('bad', 'bad', 'Mars/Base') "
           "RETURNING id"));
    for (int i = 0; i < 3; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"phone\":\"1380000000%d\"}", i);
        char *id = s_lead(h, body);
        char *o = s_owner(h, id);
        cr_expect_str_eq(o, "good");
        free(o);
        free(id);
    }
    lf_h_destroy(&h);
}
