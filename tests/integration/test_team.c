/* Sales-team tests over HTTP with the real services: which team a lead belongs to
 * (vocabularies and team rules of the shipped configuration), the team pool (filled
 * at night, drained when a shift starts, the manager told), the pool SLA in business
 * time. The list, claim and move routes are in test_lists.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(team, .fini = lf_h_fini);

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
    cr_assert_eq(st, 201, "POST /v1/reps %s answered %d", json, st);
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

static const char *s_str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(null)";
}

Test(team, jiangsu_lead_goes_to_the_east_team_with_the_shipped_config, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 1);
    char *id = s_lead(h, "{\"name\":\"周敏\",\"company\":\"苏州精密\",\"phone\":"
                         "\"13900139001\",\"region\":\"江苏\",\"industry\":\"医疗器械\","
                         "\"urgency\":\"高\",\"budget\":\"80万\"}");
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    cr_expect_str_eq(s_str(lead, "team"), "east");
    cr_expect_str_eq(s_str(lead, "region"), "east");
    cr_expect_str_eq(s_str(lead, "region_raw"), "江苏");
    cr_expect_str_eq(s_str(lead, "industry"), "medical");
    cr_expect_str_eq(s_str(lead, "industry_raw"), "医疗器械");
    /* East's members: li.ming, wang.fang (medical) and zhang.wei; never chen.jing. */
    const char *owner = s_str(lead, "owner");
    cr_expect(!strcmp(owner, "li.ming") || !strcmp(owner, "wang.fang"), "owner %s",
              owner);
    cr_expect(json_is_null(json_object_get(lead, "pool_reason")));
    cr_expect(json_is_null(json_object_get(lead, "pool_since")));
    cr_expect(json_object_get(lead, "amount") && json_object_get(lead, "loss_reason") &&
              json_object_get(lead, "closed_at") &&
              json_object_get(lead, "customer_id") &&
              json_object_get(lead, "reactivated_from"));
    /* The owner is told. */
    char q[256];
    snprintf(q, sizeof q,
             "SELECT rep_id FROM notifications WHERE lead_id = '%s' AND kind = "
             "'lead_assigned'",
             id);
    char *told = lf_h_sql(h, q);
    cr_expect_str_eq(told, owner);
    free(told);
    json_decref(lead);
    /* A south lead typed as a city goes to the south team. */
    char *id2 = s_lead(h, "{\"phone\":\"13900139002\",\"region\":\"深圳市\"}");
    snprintf(q, sizeof q,
             "SELECT team || '/' || region || '/' || owner FROM leads WHERE id = '%s'",
             id2);
    char *where = lf_h_sql(h, q);
    cr_expect_str_eq(where, "south/south/chen.jing");
    free(where);
    free(id2);
    free(id);
    lf_h_destroy(&h);
}

/* A configuration with one team whose calendar is always open, so business time is wall
 * time and the pool SLA can be a second. */
static const char *s_routing =
    "{\"default_team\": \"night\", \"default_fallback\": {\"queue\": \"unassigned\"},"
    " \"calendars\": {\"always\": {\"timezone\": \"UTC\", \"work_days\": [\"sun\","
    "  \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"], \"hours\": [\"00:00\","
    "  \"24:00\"]}},"
    " \"default_calendar\": \"always\","
    " \"teams\": {\"night\": {\"manager\": \"boss\", \"fallback\": {\"manager\": true},"
    "  \"pool\": {\"sla_business_hours\": %s}}}}";

Test(team, pool_filled_at_night_is_drained_when_a_shift_starts, .timeout = 150) {
    lf_h_t *h = lf_h_new(0, 0);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, s_routing, "0");
    lf_h_config(h, "routing.json", cfg);
    lf_h_env(h, "LEADFLOW_POOL_TICK_MS", "300");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    /* The shift starts at the next full minute (UTC) and lasts two hours. */
    time_t now = time(NULL);
    time_t start = (now / 60 + 1) * 60, end = start + 7200;
    if (start - now < 5) { /* keep a margin to post the night's leads */
        start += 60;
        end += 60;
    }
    static const char *const days[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    struct tm s_tm, e_tm;
    gmtime_r(&start, &s_tm);
    gmtime_r(&end, &e_tm);
    char rep[512];
    snprintf(
        rep, sizeof rep,
        "{\"id\":\"owl\",\"name\":\"owl\",\"team\":\"night\",\"manager\":\"boss\","
        "\"timezone\":\"UTC\",\"work_hours\":{\"%s\":[\"%02d:%02d\",\"%02d:%02d\"]}}",
        days[s_tm.tm_wday], s_tm.tm_hour, s_tm.tm_min, e_tm.tm_hour, e_tm.tm_min);
    s_rep(h, rep);
    s_rep(h, "{\"id\":\"boss\",\"name\":\"boss\",\"team\":\"hq\",\"ignore_shift\":true}");
    char *ids[3];
    for (int i = 0; i < 3; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1370000000%d\"}", i);
        ids[i] = s_lead(h, body);
    }
    cr_assert(time(NULL) < start, "the night ended before the leads were posted");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IS NULL AND"
                                  " pool_reason = 'no_eligible_rep' AND team = 'night'"
                                  " AND pool_since IS NOT NULL"),
                 3, "the night's leads wait in the pool");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notifications WHERE kind ="
                                  " 'pool_waiting' AND rep_id = 'boss'"),
                 3, "the manager is told of each");
    /* Nothing is written while nobody is eligible: no decision per tick. */
    sleep(1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments"), 3);
    /* The shift starts: the pool drains, oldest first. */
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE owner = 'owl'", "3",
                            (int)(start - time(NULL)) * 1000 + 15000),
              "the pool was not drained when the shift started");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE pool_reason IS NOT "
                                  "NULL OR pool_since IS NOT NULL"),
                 0);
    char q[512];
    snprintf(
        q, sizeof q,
        "SELECT string_agg(lead_id::text, ',' ORDER BY id) FROM assignments WHERE kind ="
        " 'reassign'");
    char *order = lf_h_sql(h, q), want[200];
    snprintf(want, sizeof want, "%s,%s,%s", ids[0], ids[1], ids[2]);
    cr_expect_str_eq(order, want, "oldest first");
    free(order);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notifications WHERE kind ="
                                  " 'lead_assigned' AND rep_id = 'owl'"),
                 3);
    snprintf(
        q, sizeof q,
        "SELECT data->>'cause' || '/' || (data->>'from' IS NULL)::text FROM lead_events"
        " WHERE lead_id = '%s' AND type = 'reassigned'",
        ids[0]);
    char *cause = lf_h_sql(h, q);
    cr_expect_str_eq(cause, "pool/true");
    free(cause);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'owl'"), 3);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    lf_h_destroy(&h);
}

Test(team, a_queued_lead_is_escalated_after_the_pool_sla, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, s_routing, "0.0005"); /* 1.8 business seconds */
    lf_h_config(h, "routing.json", cfg);
    lf_h_env(h, "LEADFLOW_POOL_TICK_MS", "300");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"team\":\"night\",\"manager\":\"boss\","
             "\"capacity\":0}");
    s_rep(h, "{\"id\":\"boss\",\"name\":\"boss\",\"team\":\"hq\",\"ignore_shift\":true}");
    char *id = s_lead(h, "{\"phone\":\"13700000009\"}");
    char q[256];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind ="
             " 'sla_escalation' AND rep_id = 'boss'",
             id);
    cr_assert(lf_h_wait_sql(h, q, "1", 15000), "the pool lead was not escalated");
    sleep(1);
    cr_expect_eq(lf_h_sql_long(h, q), 1, "escalated once");
    snprintf(q, sizeof q,
             "SELECT data->>'to' || '/' || (data->>'pool_reason') FROM lead_events WHERE"
             " lead_id = '%s' AND type = 'pool_escalated'",
             id);
    char *ev = lf_h_sql(h, q);
    cr_expect_str_eq(ev, "boss/no_eligible_rep");
    free(ev);
    free(id);
    lf_h_destroy(&h);
}

/* What deactivating a rep does to its open leads, per team: pool, route again, keep. */
Test(team, deactivation_follows_each_teams_policy, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_config(h, "routing.json",
                "{\"default_team\": null, \"teams\": {"
                " \"p\": {\"on_deactivate\": \"pool\","
                "  \"pool\": {\"auto_route\": {\"owner_left\": false}}},"
                " \"r\": {\"on_deactivate\": \"route\"},"
                " \"k\": {\"on_deactivate\": \"keep\"}},"
                " \"team_rules\": [{\"when\": {\"source\": \"p\"}, \"team\": \"p\"},"
                "  {\"when\": {\"source\": \"r\"}, \"team\": \"r\"},"
                "  {\"when\": {\"source\": \"k\"}, \"team\": \"k\"}]}");
    lf_h_env(h, "LEADFLOW_POOL_TICK_MS", "300");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    const char *const teams[3] = {"p", "r", "k"};
    for (int t = 0; t < 3; t++) {
        char rep[200];
        snprintf(rep, sizeof rep,
                 "{\"id\":\"%s1\",\"name\":\"x\",\"team\":\"%s\",\"ignore_shift\":true}",
                 teams[t], teams[t]);
        s_rep(h, rep);
    }
    char *ids[3][2];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2; i++) {
            char body[128];
            snprintf(body, sizeof body, "{\"phone\":\"1371111%d%03d\",\"source\":\"%s\"}",
                     t, i, teams[t]);
            ids[t][i] = s_lead(h, body);
        }
    /* The second rep of team r joins only now, so team r's leads are all r1's. */
    s_rep(h, "{\"id\":\"r2\",\"name\":\"x\",\"team\":\"r\",\"ignore_shift\":true}");
    cr_assert_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner IN ('p1', 'r1',"
                                  " 'k1')"),
                 6);
    for (int t = 0; t < 3; t++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/reps/%s1", teams[t]);
        cr_assert_eq(s_send(h, "PATCH", path, "{\"active\": false}", NULL), 200);
    }
    cr_assert(
        lf_h_wait_sql(h,
                      "SELECT count(*) FROM leads WHERE team = 'p' AND owner IS NULL"
                      " AND pool_reason = 'owner_left'",
                      "2", 15000),
        "team p: the leads did not go to the pool");
    cr_assert(
        lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE owner = 'r2'", "2", 15000),
        "team r: the leads were not routed again");
    sleep(1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE owner = 'k1'"), 2,
                 "team k keeps them");
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'p1'"), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'r1'"), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT open_count FROM reps WHERE id = 'r2'"), 2);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT data->>'cause' || '/' || (data->>'from') || '/' ||"
             " coalesce(data->>'owner', '-') FROM lead_events WHERE lead_id = '%s' AND"
             " type = 'reassigned'",
             ids[0][0]);
    char *ev = lf_h_sql(h, q);
    cr_expect_str_eq(ev, "owner_left/p1/-");
    free(ev);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notifications WHERE lead_id = '%s' AND kind ="
             " 'lead_reassigned' AND rep_id = 'r1'",
             ids[1][0]);
    cr_expect_eq(lf_h_sql_long(h, q), 1, "the old owner is told");
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2; i++)
            free(ids[t][i]);
    lf_h_destroy(&h);
}

/* leadflow-router --replay applies a draft's team rules and vocabularies: leads that
 * went to no team would go to "east" under a draft that maps their typed region. */
Test(team, replay_applies_a_drafts_team_rules, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_config(h, "routing.json", "{\"default_team\": null}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"e\",\"name\":\"e\",\"team\":\"east\",\"ignore_shift\":true}");
    static const char *const regions[] = {"江苏省", "上海", "广东", "华东区"};
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"phone\":\"1376666000%d\",\"region\":\"%s\"}", i,
                 regions[i]);
        free(s_lead(h, body));
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE team IS NULL"), 4,
                 "no rules today: no team");
    char draft[512];
    snprintf(draft, sizeof draft, "%s/draft.json", lf_h_dir(h));
    FILE *f = fopen(draft, "w");
    cr_assert(f);
    fputs("{\"routing\": {\"team_rules\": [{\"when\": {\"region\": \"east\"}, \"team\":"
          " \"east\"}], \"vocabularies\": {\"region\": {\"east\": [\"江苏\", \"上海\","
          " \"华东\"]}}}}",
          f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_CONFIG_DIR=%s/config %s/leadflow-router"
             " --replay --since 1d --config %s --json",
             lf_h_db_url(h), lf_h_dir(h),
             getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin", draft);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "replay failed: %s", buf);
    json_t *rep = json_loads(buf, 0, NULL);
    cr_assert(rep, "replay --json printed: %s", buf);
    json_t *teams = json_object_get(rep, "teams");
    cr_expect_eq(
        json_integer_value(json_object_get(json_object_get(teams, "draft"), "east")), 3,
        "江苏省, 上海 and 华东区 map to east: %s", buf);
    cr_expect_eq(
        json_integer_value(json_object_get(json_object_get(teams, "draft"), "(none)")),
        1);
    cr_expect_eq(
        json_integer_value(json_object_get(json_object_get(teams, "current"), "(none)")),
        4);
    json_t *r;
    size_t i;
    json_array_foreach(json_object_get(rep, "reps"), i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "id")), "e"))
            cr_expect_eq(json_integer_value(json_object_get(r, "draft")), 4,
                         "the east rep takes the east leads and, no team being the "
                         "whole pool, the one of no team");
    }
    json_decref(rep);
    lf_h_destroy(&h);
}
