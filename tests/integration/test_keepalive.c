/* Keeping deals alive, against the real services on a real PostgreSQL and Redis, with
 * second-scale thresholds in a config folder of each test's own: closing a deal stops
 * its clocks, the whole stale ladder over HTTP (warn the owner, warn the manager,
 * recycle; the stage unchanged), the previous owners kept away during the cool-down,
 * which activities restart the clock, and a kill -9 in the middle of a recycle batch. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(keepalive, .fini = lf_h_fini);

static char *s_new_lead(lf_h_t *h, const char *body) {
    json_t *out = NULL;
    int st = lf_h_post_json(h, "/v1/leads", body, &out);
    cr_assert_eq(st, 201, "POST /v1/leads answered %d", st);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

/* POSTs JSON to /v1/leads/{id}/<what> as the admin key (on behalf of actor when not
 * NULL). Returns the status. */
static int s_post(lf_h_t *h, const char *id, const char *what, const char *json,
                  const char *actor) {
    char path[256], hdr[128];
    snprintf(path, sizeof path, "/v1/leads/%s/%s", id, what);
    snprintf(hdr, sizeof hdr, "X-Leadflow-Actor: %s", actor ? actor : "");
    const char *headers[] = {"Content-Type: application/json", actor ? hdr : NULL, NULL};
    char *body = NULL;
    int st = lf_h_http(h, "POST", path, headers, json, strlen(json), &body);
    if (st >= 300)
        cr_log_warn("POST %s %s -> %d %s", path, json, st, body ? body : "");
    free(body);
    return st;
}

static char *s_wait_owner(lf_h_t *h, const char *id) {
    char q[256];
    snprintf(q, sizeof q, "SELECT owner IS NOT NULL FROM leads WHERE id = '%s'", id);
    cr_assert(lf_h_wait_sql(h, q, "t", 10000), "lead was not assigned");
    snprintf(q, sizeof q, "SELECT owner FROM leads WHERE id = '%s'", id);
    return lf_h_sql(h, q);
}

static long s_long(lf_h_t *h, const char *fmt, const char *a, const char *b) {
    char q[1024];
    snprintf(q, sizeof q, fmt, a, b ? b : "");
    return lf_h_sql_long(h, q);
}

static char *s_str(lf_h_t *h, const char *fmt, const char *a, const char *b) {
    char q[1024];
    snprintf(q, sizeof q, fmt, a, b ? b : "");
    return lf_h_sql(h, q);
}

static int s_wait(lf_h_t *h, const char *fmt, const char *a, const char *expect, int ms) {
    char q[1024];
    snprintf(q, sizeof q, fmt, a);
    return lf_h_wait_sql(h, q, expect, ms);
}

/* Today a won or lost deal kept its pending follow-up (and first-contact) timers and
 * its owner was reminded about a closed deal. Closing cancels them in the same
 * transaction as the move. */
Test(keepalive, closing_a_deal_cancels_its_follow_up_and_sla_clocks, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":4,\"B\":4,\"C\":4,\"D\":4},"
                "\"escalate_after_seconds\":{\"A\":600,\"B\":600,\"C\":600,\"D\":600}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char *lost = s_new_lead(h, "{\"phone\":\"13800138101\",\"region\":\"east\"}");
    char *won = s_new_lead(h, "{\"phone\":\"13800138102\",\"region\":\"east\"}");
    char *owner = s_wait_owner(h, lost);
    free(s_wait_owner(h, won));
    /* The first-contact clock of each is running. */
    cr_assert(s_wait(h,
                     "SELECT count(*) FROM timers WHERE lead_id = '%s'"
                     " AND kind = 'sla_first_contact' AND state = 'pending'",
                     won, "1", 10000));
    /* `lost` gets a follow-up three seconds out; wait until its timer exists. */
    char *next = lf_h_sql(h, "SELECT lf_rfc3339(now() + interval '3 seconds')");
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"call\",\"next_action_at\":\"%s\"}", next);
    cr_assert_eq(s_post(h, lost, "activities", body, NULL), 201);
    cr_assert(s_wait(h,
                     "SELECT count(*) FROM timers WHERE lead_id = '%s'"
                     " AND kind = 'follow_up' AND state = 'pending'",
                     lost, "1", 10000),
              "the follow-up timer was not set");
    cr_assert_eq(
        s_post(h, lost, "stage", "{\"to\":\"lost\",\"loss_reason\":\"价格\"}", NULL),
        200);
    cr_assert_eq(s_post(h, won, "stage", "{\"to\":\"contacted\"}", NULL), 200);
    cr_assert_eq(
        s_post(h, won, "stage", "{\"to\":\"lost\",\"loss_reason\":\"price\"}", NULL),
        200);
    /* In the same transaction: nothing of theirs is pending any more. */
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM timers WHERE lead_id IN ('%s', '%s')"
                        " AND state = 'pending' AND kind <> 'reactivate'",
                        lost, won),
                 0, "a closed deal kept a clock");
    sleep(6); /* past the follow-up and the first-contact deadlines */
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM notifications WHERE lead_id IN ('%s', '%s')"
                        " AND kind IN ('follow_up_reminder', 'sla_reminder')",
                        lost, won),
                 0, "the owner %s was reminded about a closed deal", owner);
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM timers WHERE lead_id = '%s'"
                        " AND kind = 'follow_up' AND state = 'cancelled'",
                        lost, NULL),
                 1);
    free(next);
    free(owner);
    free(won);
    free(lost);
    lf_h_destroy(&h);
}

/* The ladder, second-scale: warn the owner at 2 s, the manager 2 s later, recycle 2 s
 * after that. */
static const char *S_LADDER =
    "{\"clock\": \"wall\", \"stale\": {\"thresholds\": {\"contacted\": \"2s\"},"
    " \"warn_manager_after\": \"2s\", \"recycle_after\": \"2s\", \"cooldown\": \"1h\"}}";

Test(keepalive, stale_ladder_warns_owner_then_manager_then_recycles_over_http,
     .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "keepalive.json", S_LADDER);
    /* Every demo rep may take any lead, so a recycled deal has somewhere to go. */
    free(lf_h_sql(h, "UPDATE reps SET grades = '{}', skills = '{}', regions = '{}'"
                     " RETURNING 1"));
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char *id = s_new_lead(h, "{\"name\":\"赵六\",\"phone\":\"13800138111\","
                             "\"region\":\"east\",\"industry\":\"medical\"}");
    char *first = s_wait_owner(h, id);
    char *manager =
        s_str(h, "SELECT coalesce(manager, id) FROM reps WHERE id = '%s'%s", first, NULL);
    cr_assert_eq(s_post(h, id, "stage", "{\"to\":\"contacted\"}", NULL), 200);
    cr_assert(s_wait(h, "SELECT count(*) FROM lead_recycles WHERE lead_id = '%s'", id,
                     "1", 30000),
              "the deal was not recycled");
    /* The router hands it to someone else: never its previous owner. */
    char q[512];
    snprintf(q, sizeof q,
             "SELECT owner IS DISTINCT FROM '%s' AND owner IS NOT NULL FROM leads"
             " WHERE id = '%s'",
             first, id);
    if (!lf_h_wait_sql(h, q, "t", 15000)) {
        char *why = s_str(h,
                          "SELECT coalesce(owner, '-') || ' ' || coalesce(queue, '-') || ' '"
                          " || coalesce((SELECT string_agg(type || ' ' || data::text, E'\\n'"
                          " ORDER BY id) FROM lead_events WHERE lead_id = '%s'), '')"
                          " FROM leads WHERE id = '%s'",
                          id, id);
        cr_assert_fail("the recycled deal was not routed again: %s", why);
    }
    char *second = s_str(h, "SELECT owner FROM leads WHERE id = '%s'%s", id, NULL);
    cr_log_info("first owner %s, manager %s, then %s", first, manager, second);

    /* One warning to the owner, one to the manager, one recycle notice to the owner. */
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
                        " AND kind = 'stale_warning' AND rep_id = '%s'",
                        id, first),
                 strcmp(first, manager) ? 1 : 2);
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
                        " AND kind = 'stale_warning' AND rep_id = '%s'",
                        id, manager),
                 strcmp(first, manager) ? 1 : 2);
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
                        " AND kind = 'recycled' AND rep_id = '%s'",
                        id, first),
                 1);
    /* The stage did not change; the timeline tells the story in order. */
    char *stage = s_str(h, "SELECT stage FROM leads WHERE id = '%s'%s", id, NULL);
    cr_expect_str_eq(stage, "contacted");
    free(stage);
    char *story =
        s_str(h,
              "SELECT string_agg(type || coalesce(':' || (data->>'level'), ''),"
              " ',' ORDER BY id) FROM lead_events WHERE lead_id = '%s' AND type IN"
              " ('stage_changed', 'stale_warning', 'recycled', 'reassigned')%s",
              id, NULL);
    cr_expect_str_eq(story, "stage_changed,stale_warning:owner,stale_warning:manager,"
                            "recycled:recycle,reassigned");
    free(story);
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM outbox WHERE lead_id = '%s'"
                        " AND type = 'lead.recycled' AND payload->>'from' = '%s'",
                        id, first),
                 1);
    /* The recycle is on the lead's timeline over HTTP too. */
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    size_t i;
    json_t *e;
    int seen_recycled = 0, seen_warnings = 0;
    json_array_foreach(json_object_get(lead, "timeline"), i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        seen_recycled += type && !strcmp(type, "recycled");
        seen_warnings += type && !strcmp(type, "stale_warning");
    }
    cr_expect_eq(seen_recycled, 1);
    cr_expect_eq(seen_warnings, 2);
    json_decref(lead);

    /* The new owner's clock runs in turn; when it recycles again, neither the new owner
     * nor the first one (still in the cool-down) gets the deal. */
    cr_assert(s_wait(h, "SELECT count(*) FROM lead_recycles WHERE lead_id = '%s'", id,
                     "2", 30000),
              "the second owner's clock did not run");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM outbox WHERE lead_id = '%s' AND type = 'lead.reassign'"
             " AND payload->'exclude' @> '[\"%s\", \"%s\"]'",
             id, first, second);
    cr_expect(lf_h_wait_sql(h, q, "1", 5000),
              "the second recycle did not exclude both owners in their cool-down");
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM assignments WHERE lead_id = '%s' AND kind = 'reassign'",
        id);
    cr_assert(lf_h_wait_sql(h, q, "2", 15000));
    char *third = s_str(
        h, "SELECT coalesce(owner, '(pool)') FROM leads WHERE id = '%s'%s", id, NULL);
    cr_log_info("after the second recycle: %s", third);
    cr_expect_str_neq(third, first, "the first owner got it back during the cool-down");
    cr_expect_str_neq(third, second);
    free(third);
    free(second);
    free(manager);
    free(first);
    free(id);
    lf_h_destroy(&h);
}

/* A call restarts the clock; a note does not (restart_on lists call and visit). The
 * clock a deal runs on is stored (stale_since, stale_due_at), so this is read from the
 * database, not from how fast anything fired. */
Test(keepalive, a_call_restarts_the_clock_and_a_note_does_not, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(
        h, "keepalive.json",
        "{\"clock\": \"wall\", \"stale\": {\"thresholds\": {\"contacted\": \"3s\"},"
        " \"warn_manager_after\": \"1h\", \"recycle_after\": \"1h\","
        " \"restart_on\": [\"call\", \"visit\"]}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char *called = s_new_lead(h, "{\"phone\":\"13800138121\",\"region\":\"east\"}");
    char *noted = s_new_lead(h, "{\"phone\":\"13800138122\",\"region\":\"east\"}");
    free(s_wait_owner(h, called));
    free(s_wait_owner(h, noted));
    cr_assert_eq(s_post(h, called, "stage", "{\"to\":\"contacted\"}", NULL), 200);
    cr_assert_eq(s_post(h, noted, "stage", "{\"to\":\"contacted\"}", NULL), 200);
    usleep(1500 * 1000);
    cr_assert_eq(s_post(h, called, "activities", "{\"type\":\"call\"}", NULL), 201);
    cr_assert_eq(
        s_post(h, noted, "activities", "{\"type\":\"note\",\"note\":\"n\"}", NULL), 201);
    const char *warned = "SELECT count(*) FROM notifications WHERE lead_id = '%s'"
                         " AND kind = 'stale_warning'";
    cr_assert(s_wait(h, warned, called, "1", 15000));
    cr_assert(s_wait(h, warned, noted, "1", 15000));
    /* The called deal's clock started at the call, the noted one's at its stage move. */
    cr_expect_eq(
        s_long(h,
               "SELECT count(*) FROM leads l JOIN lead_events e ON e.lead_id = l.id"
               " AND e.type = 'activity' WHERE l.id = '%s'"
               " AND abs(extract(epoch FROM l.stale_since - e.at)) < 0.01"
               " AND l.stale_due_at = l.stale_since + interval '3 seconds'%s",
               called, NULL),
        1, "the call did not restart the clock");
    cr_expect_eq(
        s_long(h,
               "SELECT count(*) FROM leads l JOIN lead_events e ON e.lead_id = l.id"
               " AND e.type = 'stage_changed' WHERE l.id = '%s'"
               " AND abs(extract(epoch FROM l.stale_since - e.at)) < 0.01%s",
               noted, NULL),
        1, "the note restarted the clock");
    /* Each warning fired from the timer of the clock that was running. */
    cr_expect_eq(s_long(h,
                        "SELECT count(*) FROM timers t JOIN leads l ON l.id = t.lead_id"
                        " WHERE t.lead_id IN ('%s', '%s') AND t.kind = 'stale'"
                        " AND t.state = 'fired' AND t.due_at = l.stale_due_at",
                        called, noted),
                 2);
    cr_expect_eq(
        s_long(h,
               "SELECT count(*) FROM timers WHERE lead_id = '%s' AND kind = 'stale'"
               " AND state = 'cancelled'",
               called, NULL),
        3, "the call cancelled the first clock's three timers");
    free(noted);
    free(called);
    lf_h_destroy(&h);
}

/* n deals of wang.fang in proposal whose recycle timer (phase 2 of generation 1) is
 * due in `secs` seconds. */
static void s_stale_deals(lf_h_t *h, int n, double secs) {
    char q[1024];
    snprintf(q, sizeof q,
             "WITH l AS (INSERT INTO leads (id, channel, phone, grade, owner, stage,"
             " assigned_at, stale_gen, stale_since) SELECT 'S' || g, 'web_form',"
             " '136' || lpad(g::text, 8, '0'), 'B', 'wang.fang', 'proposal', now(), 1,"
             " now() FROM generate_series(1, %d) g RETURNING id)"
             " INSERT INTO timers (lead_id, kind, step, due_at, rep_id, data) SELECT id,"
             " 'stale', 12, now() + make_interval(secs => %f), 'wang.fang',"
             " '{\"cooldown_s\": 3600}' FROM l RETURNING 1",
             n, secs);
    free(lf_h_sql(h, q));
    cr_assert_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE kind = 'stale'"), n);
}

Test(keepalive, kill9_in_a_recycle_batch_recycles_each_deal_once, .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    const int n = 3000;
    lf_h_env(h, "LEADFLOW_TIMER_BATCH", "50");
    s_stale_deals(h, n, 3);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) > 0 FROM lead_recycles", "t", 20000),
              "nothing was recycled");
    lf_h_stop(h, LF_H_SCHEDULER, 0, 1);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND application_name LIKE"
                            " 'leadflow-scheduler%'",
                            "0", 20000));
    long done = lf_h_sql_long(h, "SELECT count(*) FROM lead_recycles");
    cr_log_info("killed with %ld of %d deals recycled", done, n);
    cr_assert_lt(done, n, "the kill came too late to test anything");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE kind = 'stale'"
                                  " AND state = 'fired'"),
                 done, "a fired timer without its recycle, or the reverse");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char want[32];
    snprintf(want, sizeof want, "%d", n);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM lead_recycles", want, 60000),
              "not every deal was recycled after the restart");
    sleep(3); /* a sweep or a second claim would recycle twice now */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT lead_id) FROM lead_recycles"),
                 n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_recycles"), n);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.recycled'"), n);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM outbox WHERE type = 'lead.reassign'"
                               " AND payload->>'reason' = 'stale'"),
                 n);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM notifications WHERE kind = 'recycled'"),
        n);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM lead_events WHERE type = 'recycled'"), n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE stage <> 'proposal'"),
                 0, "recycling changed a stage");
    lf_h_destroy(&h);
}
