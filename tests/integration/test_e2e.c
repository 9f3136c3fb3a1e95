/* End-to-end: a lead through all four real services, on a real PostgreSQL and Redis. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(e2e, .fini = lf_h_fini);

static const char *s_lead = "{\"name\":\"王芳\",\"company\":\"华东医疗\",\"phone\":\"138 "
                            "0013 8000\",\"budget\":\"50万\","
                            "\"urgency\":\"高\",\"industry\":\"medical\",\"region\":"
                            "\"east\",\"decision_maker\":\"是\","
                            "\"wechat\":\"wf-2024\"}";

static char *s_post(lf_h_t *h, const char *body, int expect) {
    json_t *out = NULL;
    int st = lf_h_post_json(h, "/v1/leads", body, &out);
    cr_assert_eq(st, expect, "POST /v1/leads answered %d, expected %d", st, expect);
    const char *id = json_string_value(json_object_get(out, "id"));
    char *copy = id ? strdup(id) : NULL;
    json_decref(out);
    return copy;
}

Test(e2e, lead_is_stored_graded_assigned_reminded_and_counted, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"escalate_after_seconds\":{\"A\":600,\"B\":600,\"C\":600,\"D\":600}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    char *id = s_post(h, s_lead, 201);
    cr_assert(id);
    char q[512];
    snprintf(q, sizeof q, "SELECT owner IS NOT NULL FROM leads WHERE id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "t", 20000), "lead was not assigned within 20 s");

    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone")), "+8613800138000");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "name")), "王芳");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "urgency")), "high");
    cr_expect(json_is_true(json_object_get(lead, "decision_maker")));
    json_t *budget = json_object_get(lead, "budget");
    cr_expect_eq(json_number_value(json_object_get(budget, "min")), 500000.0);
    cr_expect_str_eq(json_string_value(json_object_get(budget, "currency")), "CNY");
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(lead, "extra"), "wechat")),
        "wf-2024", "unknown fields are kept in extra");
    const char *grade = json_string_value(json_object_get(lead, "grade"));
    cr_assert(grade && strchr("ABCD", grade[0]));
    /* The breakdown explains the score exactly. */
    json_t *bd = json_object_get(lead, "score_breakdown");
    long sum = 0;
    size_t i;
    json_t *e;
    cr_assert(json_array_size(bd) > 0);
    json_array_foreach(bd, i, e) sum += json_integer_value(json_object_get(e, "points"));
    cr_expect_eq(sum, json_integer_value(json_object_get(lead, "score")));
    cr_expect(json_string_value(json_object_get(lead, "owner")));
    cr_expect(json_string_value(json_object_get(lead, "assignment_reason")));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "stage")), "new");
    json_t *tl = json_object_get(lead, "timeline");
    cr_assert_geq(json_array_size(tl), 3);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(tl, 0), "type")),
                     "created");
    json_decref(lead);

    /* The first-contact SLA is 1 s in this test: a reminder is recorded. */
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind = "
             "'sla_reminder'",
             id);
    cr_expect(lf_h_wait_sql(h, q, "1", 20000), "no SLA reminder within 20 s");
    /* Analytics counted it once. */
    cr_expect(lf_h_wait_sql(h, "SELECT coalesce(sum(leads), 0) FROM rollup_leads_daily",
                            "1", 5000));
    free(id);
    lf_h_destroy(&h);
}

Test(e2e, validation_errors_store_nothing, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    json_t *out = NULL;
    int st = lf_h_post_json(h, "/v1/leads",
                            "{\"name\":\"x\",\"email\":\"not-an-email\",\"phone\":\"12\","
                            "\"urgency\":\"whenever\"}",
                            &out);
    cr_assert_eq(st, 422);
    cr_expect_str_eq(json_string_value(json_object_get(out, "error")),
                     "validation_failed");
    json_t *fields = json_object_get(out, "fields");
    cr_expect_eq(json_array_size(fields), 3, "every broken field is listed");
    json_decref(out);
    st = lf_h_post_json(h, "/v1/leads", "{\"name\":\"no contact\"}", &out);
    cr_expect_eq(st, 422);
    json_decref(out);
    st = lf_h_post_json(h, "/v1/leads", "{\"phone\": ", &out);
    cr_expect_eq(st, 400);
    json_decref(out);
    st = lf_h_post_json(h, "/v1/leads", "[1,2]", &out);
    cr_expect_eq(st, 400);
    json_decref(out);
    const char *nokey[] = {"Authorization:", "Content-Type: application/json", NULL};
    const char *body = "{\"phone\":\"13800138000\"}";
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads", nokey, body, strlen(body), NULL), 401);
    const char *badkey[] = {"Authorization: Bearer wrong",
                            "Content-Type: application/json", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads", badkey, body, strlen(body), NULL),
                 401);
    const char *xml[] = {"Content-Type: application/xml", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads", xml, body, strlen(body), NULL), 415);
    size_t big = 70 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    memcpy(huge, "{\"need\":\"", 9);
    const char *js[] = {"Content-Type: application/json", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads", js, huge, big, NULL), 413);
    free(huge);
    cr_expect_eq(lf_h_get_json(h, "/v1/leads/00000000-0000-0000-0000-000000000000", NULL),
                 404);
    cr_expect_eq(lf_h_get_json(h, "/v1/leads/..%2f..%2fetc", NULL), 404);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 0, "nothing was stored");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM outbox"), 0);
    lf_h_destroy(&h);
}

Test(e2e, idempotency_key_and_external_id_return_the_same_lead, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    const char *hdr[] = {"Content-Type: application/json", "Idempotency-Key: retry-1",
                         NULL};
    const char *body = "{\"phone\":\"13800138000\"}";
    char *b1 = NULL, *b2 = NULL;
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads", hdr, body, strlen(body), &b1), 201);
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads", hdr, body, strlen(body), &b2), 200);
    json_t *j1 = json_loads(b1, 0, NULL), *j2 = json_loads(b2, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(j1, "id")),
                     json_string_value(json_object_get(j2, "id")));
    cr_expect_str_eq(json_string_value(json_object_get(j2, "status")), "duplicate");
    json_decref(j1);
    json_decref(j2);
    free(b1);
    free(b2);
    char *a = s_post(
        h,
        "{\"email\":\"a@example.com\",\"channel\":\"partner\",\"external_id\":\"P-1\"}",
        201);
    char *b = s_post(
        h,
        "{\"email\":\"a@example.com\",\"channel\":\"partner\",\"external_id\":\"P-1\"}",
        200);
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 2);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.created'"), 2);
    lf_h_destroy(&h);
}

/* A hop that is down loses nothing: events wait in the outbox. */
Test(e2e, router_and_analytics_down_then_up_assign_and_count_exactly_once,
     .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_SCHEDULER, 1);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"phone\":\"1380013%04d\",\"region\":\"east\"}", i);
        free(s_post(h, body, 201));
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IS NOT NULL"),
                 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    char want[16];
    snprintf(want, sizeof want, "%d", N);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            want, 15000),
              "not every lead was assigned after the router came back");
    cr_assert(lf_h_wait_sql(h, "SELECT coalesce(sum(leads), 0) FROM rollup_leads_daily",
                            want, 15000));
    /* Restart both: the sweep reads again from the cursors; nothing changes. (The
     * cursor's position is what says pruned events are done, so it is kept.) */
    lf_h_stop(h, LF_H_ROUTER, 0, 0);
    lf_h_stop(h, LF_H_ANALYTICS, 0, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    sleep(1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments"), N,
                 "each lead assigned exactly once");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM (SELECT lead_id FROM assignments "
                                  "GROUP BY lead_id HAVING count(*) > 1) d"),
                 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"), N,
                 "each lead counted exactly once");
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers"), N,
                 "one SLA timer per lead");
    lf_h_destroy(&h);
}
