/* leadflow-analytics against a real PostgreSQL: the rollups say exactly what the
 * system of record says (leads, lead_events), once, even when events come again; a
 * batch with a poison event falls back to event-by-event folding and sets only that
 * event aside; the BI views (0007_analytics.sql) give the right numbers for a small
 * dataset worked out by hand. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../services/analytics/rollup.h"
#include "../../services/analytics/sweep.h"
#include "../support/harness.h"
#include "lf/consumer.h"
#include "lf/event.h"

TestSuite(analytics, .fini = lf_h_fini);

static const char *const s_types[] = {"lead.assigned", "stage.changed", "deal.won",
                                      "deal.lost", NULL};

/* The same consumer leadflow-analytics builds (services/analytics/main.c). */
static lf_consumer_t *s_consumer(lf_db_t *db, lf_rollup_t *r) {
    lf_consumer_t *c = lf_consumer_new(db, "analytics", s_types, lf_rollup_on_event, r);
    lf_consumer_set_batch_fn(c, lf_rollup_on_batch, LF_BATCH_SEQ_ONLY);
    return c;
}

/* Writes n lead.assigned events of made-up leads (…-<i>) into envs; the event at
 * index `bad` (none if -1) carries a creation time no one can read. */
static void s_add_assigned(lf_db_t *db, json_t **envs, int n, int bad) {
    for (int i = 0; i < n; i++) {
        json_t *pl =
            json_pack("{s:s, s:s, s:s}", "grade", "A", "channel", "api", "created_at",
                      i == bad ? "yesterday-ish" : "2026-03-01T02:00:00.000Z");
        char lead[40];
        snprintf(lead, sizeof lead, "00000000-0000-7000-8000-%012d", i);
        envs[i] = lf_outbox_add(db, "lead.assigned", lead, pl);
        cr_assert(envs[i], "%s", db->errstr);
        json_decref(pl);
    }
}

static int s_move(lf_h_t *h, const char *id, const char *json, const char *actor) {
    char path[256], hdr[128];
    snprintf(path, sizeof path, "/v1/leads/%s/stage", id);
    snprintf(hdr, sizeof hdr, "X-Leadflow-Actor: %s", actor);
    const char *headers[] = {"Content-Type: application/json", hdr, NULL};
    char *body = NULL;
    int st = lf_h_http(h, "POST", path, headers, json, strlen(json), &body);
    free(body);
    return st;
}

/* Each rollup against the same figure computed from leads and lead_events: every
 * query is 't' when they agree. */
static const char *const s_agree[] = {
    /* leads per Asia/Shanghai creation day, channel, grade */
    "SELECT (SELECT string_agg(d || channel || grade || ':' || n, ',' ORDER BY d, "
    "channel,"
    " grade) FROM (SELECT day::text d, channel, grade, sum(leads) n FROM "
    "rollup_leads_daily"
    " GROUP BY 1, 2, 3) r) IS NOT DISTINCT FROM (SELECT string_agg(d || channel || grade"
    " || ':' || n, ',' ORDER BY d, channel, grade) FROM (SELECT ((created_at AT TIME ZONE"
    " 'Asia/Shanghai')::date)::text d, channel, grade::text grade, count(*) n FROM leads"
    " WHERE assigned_at IS NOT NULL GROUP BY 1, 2, 3) l)",
    /* stage entries per stage */
    "SELECT (SELECT string_agg(stage || ':' || n, ',' ORDER BY stage) FROM (SELECT stage,"
    " sum(moves) n FROM rollup_stage_daily GROUP BY 1) r) IS NOT DISTINCT FROM"
    " (SELECT string_agg(s || ':' || n, ',' ORDER BY s) FROM (SELECT data->>'to' s,"
    " count(*) n FROM lead_events WHERE type = 'stage_changed' GROUP BY 1) l)",
    /* closed deals per outcome and loss reason (a reopened deal stays counted) */
    "SELECT (SELECT string_agg(outcome || loss_reason || ':' || n, ',' ORDER BY outcome,"
    " loss_reason) FROM (SELECT outcome, loss_reason, sum(deals) n FROM"
    " rollup_outcomes_daily GROUP BY 1, 2) r) IS NOT DISTINCT FROM (SELECT"
    " string_agg(o || lr || ':' || n, ',' ORDER BY o, lr) FROM (SELECT data->>'to' o,"
    " CASE data->>'to' WHEN 'won' THEN '' ELSE coalesce(data->>'loss_reason', 'other')"
    " END lr, count(*) n FROM lead_events WHERE type = 'stage_changed' AND data->>'to' IN"
    " ('won', 'lost') GROUP BY 1, 2) l)",
    /* the funnel: deals in each stage now, with their amounts */
    "SELECT (SELECT string_agg(stage || ':' || deals_now || '/' || "
    "amount_now::numeric(14,2),"
    " ',' ORDER BY stage) FROM v_funnel WHERE deals_now <> 0) IS NOT DISTINCT FROM"
    " (SELECT string_agg(stage || ':' || n || '/' || a, ',' ORDER BY stage) FROM (SELECT"
    " stage, count(*) n, coalesce(sum(amount), 0)::numeric(14,2) a FROM leads GROUP BY "
    "1) l)",
    /* the funnel: deals that ever reached each stage, each deal once per stage (0004
     * counted a reopened deal twice in 'new') */
    "SELECT (SELECT string_agg(stage || ':' || deals_reached, ',' ORDER BY stage) FROM"
    " v_funnel WHERE deals_reached > 0) IS NOT DISTINCT FROM (SELECT string_agg(s || ':' "
    "||"
    " n, ',' ORDER BY s) FROM (SELECT s, count(*) n FROM (SELECT data->>'to' s, lead_id"
    " FROM lead_events WHERE type = 'stage_changed' UNION SELECT 'new', id FROM leads) x"
    " GROUP BY 1) l)",
    NULL};

static void s_expect_agree(lf_h_t *h, const char *when) {
    for (int i = 0; s_agree[i]; i++) {
        char *got = lf_h_sql(h, s_agree[i]);
        cr_expect_str_eq(got, "t", "%s: rollup check %d disagrees with leads/lead_events",
                         when, i);
        free(got);
    }
}

static const char *const s_acked_all =
    "SELECT (SELECT count(*) FROM consumer_acked WHERE consumer = 'analytics') ="
    " (SELECT count(*) FROM outbox WHERE type IN ('lead.assigned', 'stage.changed',"
    " 'deal.won', 'deal.lost'))";

Test(analytics, rollups_equal_the_record_after_an_outage_and_redelivery_adds_nothing,
     .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 1);
    /* The stages table comes from this copy of the configuration. */
    json_t *pl = json_load_file("config/pipeline.json", 0, NULL);
    cr_assert(pl);
    json_t *st = json_object_get(pl, "stages");
    for (size_t i = 0; i < json_array_size(st); i++) {
        json_t *s = json_array_get(st, i);
        if (!strcmp(json_string_value(json_object_get(s, "id")), "quote"))
            json_object_set_new(s, "probability", json_real(0.65));
    }
    char *text = json_dumps(pl, JSON_INDENT(2));
    lf_h_config(h, "pipeline.json", text);
    free(text);
    json_decref(pl);
    free(lf_h_sql(h, "UPDATE reps SET capacity = 1000"));

    /* Analytics is down while leads arrive and deals move. */
    enum { N = 24 };
    char ids[N][40], owners[N][64];
    for (int i = 0; i < N; i++) {
        char body[160];
        snprintf(body, sizeof body,
                 "{\"name\":\"客户%d\",\"phone\":\"1390000%04d\",\"region\":\"east\","
                 "\"source\":\"%s\"}",
                 i, i, i % 2 ? "expo" : "seo");
        json_t *out = NULL;
        cr_assert_eq(lf_h_post_json(h, "/v1/leads", body, &out), 201);
        snprintf(ids[i], sizeof ids[i], "%s",
                 json_string_value(json_object_get(out, "id")));
        json_decref(out);
    }
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE owner IS NOT NULL", "24",
                            15000),
              "all leads assigned");
    for (int i = 0; i < N; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT owner FROM leads WHERE id = '%.39s'", ids[i]);
        char *o = lf_h_sql(h, q);
        snprintf(owners[i], sizeof owners[i], "%.63s", o);
        free(o);
    }
    /* i % 6: 0 stays new; 1 contacted; 2 qualified; 3 lost (price) from contacted;
     * 4 walks to won; 5 qualified, back to contacted, lost (competitor), reopened. */
    for (int i = 0; i < N; i++) {
        const char *walk[8] = {NULL};
        switch (i % 6) {
        case 1:
            walk[0] = "{\"to\":\"contacted\"}";
            break;
        case 2:
            walk[0] = "{\"to\":\"contacted\"}";
            walk[1] = "{\"to\":\"qualified\"}";
            break;
        case 3:
            walk[0] = "{\"to\":\"contacted\"}";
            walk[1] = "{\"to\":\"lost\",\"loss_reason\":\"price\"}";
            break;
        case 4:
            walk[0] = "{\"to\":\"contacted\"}";
            walk[1] = "{\"to\":\"qualified\"}";
            walk[2] = "{\"to\":\"proposal\"}";
            walk[3] = "{\"to\":\"quote\",\"amount\":50000}";
            walk[4] = "{\"to\":\"negotiation\"}";
            walk[5] = i == 4 ? "{\"to\":\"won\",\"amount\":48000}"
                             : "{\"to\":\"won\",\"amount\":50000}";
            break;
        case 5:
            walk[0] = "{\"to\":\"contacted\"}";
            walk[1] = "{\"to\":\"qualified\"}";
            walk[2] = "{\"to\":\"contacted\",\"reason\":\"budget unclear\"}";
            walk[3] = "{\"to\":\"lost\",\"loss_reason\":\"competitor\"}";
            walk[4] = "{\"to\":\"new\",\"reason\":\"they called back\"}";
            break;
        }
        for (int k = 0; walk[k]; k++)
            cr_assert_eq(s_move(h, ids[i], walk[k], owners[i]), 200, "%s %s", ids[i],
                         walk[k]);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acked"
                                  " WHERE consumer = 'analytics'"),
                 0, "analytics was down");

    /* Analytics comes up: the sweep folds the backlog. */
    lf_h_start(h, LF_H_ANALYTICS, 0);
    cr_assert(lf_h_wait_sql(h, s_acked_all, "t", 20000), "backlog folded");
    s_expect_agree(h, "after the outage");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acks WHERE error IS NOT"
                                  " NULL"),
                 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT (probability * 100)::int FROM stages"
                                  " WHERE id = 'quote'"),
                 65, "stages synced from the configuration file");
    /* Known figures: 24 leads, 4 won (48000 + 3 x 50000), 4 + 4 lost, then 4 reopened. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_now FROM v_funnel WHERE stage = 'won'"),
                 4);
    cr_expect_eq(lf_h_sql_long(h, "SELECT amount_now FROM v_funnel WHERE stage = 'won'"),
                 198000);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_now FROM v_funnel WHERE stage = 'new'"),
                 8);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT deals_reached FROM v_funnel WHERE stage = 'lost'"), 8);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals FROM v_loss_reasons WHERE loss_reason ="
                                  " 'competitor'"),
                 4);

    /* Redelivery: every event again through the real fold, as a second delivery over
     * ZeroMQ or a twin instance would bring them. Nothing changes. */
    lf_h_stop(h, LF_H_ANALYTICS, 0, 0);
    char *before = lf_h_sql(
        h, "SELECT (SELECT sum(leads) FROM rollup_leads_daily) || '/' || (SELECT"
           " sum(moves) FROM rollup_stage_daily) || '/' || (SELECT sum(deals) FROM"
           " rollup_outcomes_daily) || '/' || (SELECT string_agg(stage || deals_now ||"
           " deals_reached, ',' ORDER BY stage) FROM rollup_funnel)");
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    PGresult *res =
        lf_db_exec(db,
                   "SELECT lf_envelope(id, event_id, type, lead_id, at, version,"
                   " payload)::text FROM outbox WHERE type IN ('lead.assigned',"
                   " 'stage.changed', 'deal.won', 'deal.lost') ORDER BY id",
                   0, NULL);
    cr_assert(res, "%s", db->errstr);
    int n = PQntuples(res);
    json_t **envs = calloc((size_t)n, sizeof *envs);
    for (int i = 0; i < n; i++)
        envs[i] = json_loads(PQgetvalue(res, i, 0), 0, NULL);
    PQclear(res);
    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    cr_expect_eq(lf_consumer_handle(c, envs, (size_t)n), 0, "redelivered: nothing new");
    cr_expect_eq(lf_consumer_handle(c, envs, (size_t)n / 2), 0);
    cr_expect_eq(lf_consumer_sweep(c, 1000), 0, "nothing left to sweep");
    cr_expect_eq(r.folded, 0);
    char *after = lf_h_sql(
        h, "SELECT (SELECT sum(leads) FROM rollup_leads_daily) || '/' || (SELECT"
           " sum(moves) FROM rollup_stage_daily) || '/' || (SELECT sum(deals) FROM"
           " rollup_outcomes_daily) || '/' || (SELECT string_agg(stage || deals_now ||"
           " deals_reached, ',' ORDER BY stage) FROM rollup_funnel)");
    cr_expect_str_eq(after, before);
    free(before);
    free(after);
    lf_consumer_destroy(&c);
    for (int i = 0; i < n; i++)
        json_decref(envs[i]);
    free(envs);
    lf_db_destroy(&db);

    /* Back up, live: new moves arrive over ZeroMQ and are folded once. */
    lf_h_start(h, LF_H_ANALYTICS, 0);
    cr_assert_eq(s_move(h, ids[0], "{\"to\":\"contacted\"}", owners[0]), 200);
    cr_assert_eq(
        s_move(h, ids[1], "{\"to\":\"lost\",\"loss_reason\":\"no_budget\"}", owners[1]),
        200);
    cr_assert(lf_h_wait_sql(h, s_acked_all, "t", 10000));
    s_expect_agree(h, "live");
    lf_h_destroy(&h);
}

Test(analytics, a_poison_event_in_a_batch_is_set_aside_and_the_rest_folded,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_allow_orphans(h); /* events of made-up leads */
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    json_t *envs[8];
    int k = 0;
    for (int i = 0; i < 6; i++) {
        char lead[40];
        snprintf(lead, sizeof lead, "00000000-0000-7000-8000-%012d", i);
        /* Event 3 carries a creation time no one can read: the batch statement fails
         * on it. */
        json_t *pl = json_pack("{s:s, s:s, s:s, s:s}", "grade", i % 2 ? "A" : "B",
                               "owner", "wang.fang", "channel", "web_form", "created_at",
                               i == 3 ? "yesterday-ish" : "2026-03-01T02:00:00.000Z");
        envs[k] = lf_outbox_add(db, "lead.assigned", lead, pl);
        cr_assert(envs[k++], "%s", db->errstr);
        json_decref(pl);
    }
    json_t *pl = json_pack("{s:s, s:s}", "from", "new", "to", "contacted");
    envs[k] =
        lf_outbox_add(db, "stage.changed", "00000000-0000-7000-8000-000000000000", pl);
    cr_assert(envs[k++]);
    json_decref(pl);
    pl = json_pack("{s:s, s:s, s:i}", "from", "new", "to", "won", "amount", 900);
    envs[k] = lf_outbox_add(db, "deal.won", "00000000-0000-7000-8000-000000000001", pl);
    cr_assert(envs[k++]);
    json_decref(pl);

    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    cr_expect_eq(lf_consumer_handle(c, envs, 8), 7, "all but the poison event applied");
    cr_expect_eq(r.batches, 0, "the batch statement failed; event by event took over");
    char *err = lf_h_sql(h, "SELECT error FROM consumer_acks WHERE error IS NOT NULL");
    /* why, without the value it choked on (event data: docs/operations.md) */
    cr_expect(strstr(err, "timestamp with time zone: \"***\"") &&
                  !strstr(err, "yesterday"),
              "the ack says why: %s", err);
    free(err);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acked WHERE consumer ="
                                  " 'analytics'"),
                 8);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"
                                  " WHERE day = '2026-03-01'"),
                 5, "day in Asia/Shanghai: 02:00Z is 10:00 there");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM rollup_leads_daily"), 2,
                 "grades A and B, nothing from the poison event");
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_now FROM rollup_funnel WHERE stage ="
                                  " 'contacted'"),
                 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT amount FROM rollup_outcomes_daily"), 900);
    /* Again, as a redelivery: nothing, and the poison event stays set aside. */
    cr_expect_eq(lf_consumer_handle(c, envs, 8), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"), 5);
    /* A clean batch afterwards goes the set-based way. */
    json_t *more[3];
    for (int i = 0; i < 3; i++) {
        pl = json_pack("{s:s, s:s, s:s}", "grade", "C", "channel", "phone", "created_at",
                       "2026-03-02T01:00:00.000Z");
        more[i] = lf_outbox_add(db, "lead.assigned",
                                "00000000-0000-7000-8000-000000000009", pl);
        json_decref(pl);
    }
    cr_expect_eq(lf_consumer_handle(c, more, 3), 3);
    cr_expect_eq(r.batches, 1);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT leads FROM rollup_leads_daily WHERE grade = 'C'"), 3);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_reached FROM rollup_funnel WHERE stage ="
                                  " 'new'"),
                 6, "L-0, L-1, L-2, L-4, L-5 and L-9 (the poison L-3 never counted)");
    for (int i = 0; i < 3; i++)
        json_decref(more[i]);
    for (int i = 0; i < 8; i++)
        json_decref(envs[i]);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

Test(analytics, views_give_the_figures_worked_out_by_hand, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    /* Eight grade-B leads (SLA 3600 s) of two channels, assigned an hour ago (or two
     * days ago) to wang.fang, with the stage each is in now and its history. */
    free(lf_h_sql(
        h, "ALTER TABLE lead_events DISABLE TRIGGER USER;"
           "INSERT INTO leads (id, channel, source, phone, grade, owner, created_at,"
           " assigned_at, first_contact_at, stage, amount, loss_reason) VALUES"
           " ('0000000a-0000-7000-8000-000000000001','web_form','seo','1',  "
           "'B','wang.fang', now()-'2 days'::interval,"
           "  now()-'2 days'::interval, now()-'2 days'::interval+'600 s'::interval, "
           "'won', 1000, NULL),"
           " ('0000000a-0000-7000-8000-000000000002','web_form','seo','2',  "
           "'B','wang.fang', now()-'2 days'::interval,"
           "  now()-'2 days'::interval, now()-'2 days'::interval+'7200 s'::interval, "
           "'lost', NULL,"
           "  'price'),"
           " ('0000000a-0000-7000-8000-000000000003','web_form','seo','3',  "
           "'B','wang.fang', now()-'2 days'::interval,"
           "  now()-'2 days'::interval, NULL, 'new', NULL, NULL),"
           " ('0000000a-0000-7000-8000-000000000004','phone',NULL,'4',      "
           "'B','wang.fang', now()-'1 hour'::interval,"
           "  now()-'1 hour'::interval, now()-'1 hour'::interval+'1200 s'::interval, "
           "'quote',"
           "  2000, NULL),"
           " ('0000000a-0000-7000-8000-000000000005','phone',NULL,'5',      "
           "'B','wang.fang', now()-'10 minutes'::interval,"
           "  now()-'10 minutes'::interval, NULL, 'new', NULL, NULL),"
           " ('0000000a-0000-7000-8000-000000000006','phone',NULL,'6',      "
           "'B','wang.fang', now()-'1 hour'::interval,"
           "  now()-'1 hour'::interval, now()-'1 hour'::interval+'1800 s'::interval, "
           "'lost', 500,"
           "  'competitor'),"
           " ('0000000a-0000-7000-8000-000000000007','phone',NULL,'7',      "
           "'B','wang.fang', now()-'1 hour'::interval,"
           "  now()-'1 hour'::interval, now()-'1 hour'::interval+'300 s'::interval, "
           "'contacted',"
           "  NULL, NULL),"
           " ('0000000a-0000-7000-8000-000000000008','phone',NULL,'8',      "
           "'B','wang.fang', now()-'1 hour'::interval,"
           "  now()-'1 hour'::interval, now()-'1 hour'::interval+'3000 s'::interval,"
           "  'proposal', NULL, NULL)"));
    /* The events analytics would have received, folded by the real consumer. */
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    static const char *const moves[][2] = {
        {"0000000a-0000-7000-8000-000000000001", "contacted"},
        {"0000000a-0000-7000-8000-000000000001", "qualified"},
        {"0000000a-0000-7000-8000-000000000001", "proposal"},
        {"0000000a-0000-7000-8000-000000000001", "quote"},
        {"0000000a-0000-7000-8000-000000000001", "negotiation"},
        {"0000000a-0000-7000-8000-000000000001", "won"},
        {"0000000a-0000-7000-8000-000000000002", "contacted"},
        {"0000000a-0000-7000-8000-000000000002", "lost"},
        {"0000000a-0000-7000-8000-000000000004", "contacted"},
        {"0000000a-0000-7000-8000-000000000004", "qualified"},
        {"0000000a-0000-7000-8000-000000000004", "proposal"},
        {"0000000a-0000-7000-8000-000000000004", "quote"},
        {"0000000a-0000-7000-8000-000000000006", "contacted"},
        {"0000000a-0000-7000-8000-000000000006", "qualified"},
        {"0000000a-0000-7000-8000-000000000006", "proposal"},
        {"0000000a-0000-7000-8000-000000000006", "quote"},
        {"0000000a-0000-7000-8000-000000000006", "lost"},
        {"0000000a-0000-7000-8000-000000000007", "contacted"},
        {"0000000a-0000-7000-8000-000000000008", "contacted"},
        {"0000000a-0000-7000-8000-000000000008", "qualified"},
        {"0000000a-0000-7000-8000-000000000008", "proposal"}};
    json_t *envs[40];
    size_t n = 0;
    for (int i = 1; i <= 8; i++) {
        char id[40];
        snprintf(id, sizeof id, "0000000a-0000-7000-8000-%012d", i);
        json_t *pl = json_pack("{s:s, s:s, s:s, s:s}", "grade", "B", "owner", "wang.fang",
                               "channel", i <= 3 ? "web_form" : "phone", "created_at",
                               "2026-03-01T02:00:00.000Z");
        envs[n++] = lf_outbox_add(db, "lead.assigned", id, pl);
        json_decref(pl);
    }
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        json_t *pl = json_pack("{s:s}", "to", moves[i][1]);
        if (!strcmp(moves[i][1], "quote"))
            json_object_set_new(
                pl, "amount",
                json_integer(
                    !strcmp(moves[i][0], "0000000a-0000-7000-8000-000000000004") ? 2000
                    : !strcmp(moves[i][0], "0000000a-0000-7000-8000-000000000006")
                        ? 500
                        : 1000));
        envs[n++] = lf_outbox_add(db, "stage.changed", moves[i][0], pl);
        if (!strcmp(moves[i][1], "won") || !strcmp(moves[i][1], "lost")) {
            json_t *deal = json_pack(
                "{s:s, s:i}", "to", moves[i][1], "amount",
                !strcmp(moves[i][0], "0000000a-0000-7000-8000-000000000001") ? 1000
                                                                             : 500);
            if (!strcmp(moves[i][1], "lost"))
                json_object_set_new(
                    deal, "loss_reason",
                    json_string(
                        !strcmp(moves[i][0], "0000000a-0000-7000-8000-000000000002")
                            ? "price"
                            : "competitor"));
            envs[n++] =
                lf_outbox_add(db, !strcmp(moves[i][1], "won") ? "deal.won" : "deal.lost",
                              moves[i][0], deal);
            json_decref(deal);
        }
        json_decref(pl);
    }
    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    cr_assert_eq(lf_consumer_handle(c, envs, n), (int)n);
    for (size_t i = 0; i < n; i++)
        json_decref(envs[i]);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    /* Funnel: reached new 8, contacted 6, qualified 4, proposal 4, quote 3,
     * negotiation 1, won 1, lost 2. Now: new 2, contacted 1, proposal 1, quote 1,
     * won 1, lost 2. */
    char *f = lf_h_sql(h, "SELECT string_agg(stage || ':' || deals_now || '/' ||"
                          " deals_reached, ',' ORDER BY stage_order) FROM v_funnel");
    cr_expect_str_eq(f, "new:2/8,contacted:1/6,qualified:0/4,proposal:1/4,quote:1/3,"
                        "negotiation:0/1,won:1/1,lost:2/2");
    free(f);
    cr_expect_eq(lf_h_sql_long(h, "SELECT (conversion * 1000)::int FROM v_funnel"
                                  " WHERE stage = 'quote'"),
                 375, "3 of 8");
    /* Pipeline value: quote 2000 x 0.60 = 1200 (a4); proposal has no amount. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT weighted_amount FROM v_pipeline_value"
                                  " WHERE stage IS NULL"),
                 1200);
    cr_expect_eq(lf_h_sql_long(h, "SELECT amount_now FROM v_funnel WHERE stage = 'lost'"),
                 500, "a6 lost with its quote of 500");
    /* Win/loss: 1 won, 2 lost (price, competitor). */
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT (win_rate * 1000)::int FROM v_win_loss LIMIT 1"), 333);
    cr_expect_eq(lf_h_sql_long(h, "SELECT (share * 100)::int FROM v_loss_reasons"
                                  " WHERE loss_reason = 'price'"),
                 50);
    /* First response, SLA 3600 s for B: web_form: a1 600 s met, a2 7200 s missed,
     * a3 never and 2 days late: missed -> 1/3. phone: a4 1200, a6 1800, a7 300, a8 3000
     * met; a5 only 10 minutes old: no verdict yet -> 4/4; average (1200+1800+300+3000)/4
     * = 1575 s. */
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT (sum(sla_met) * 100 / sum(sla_met + sla_missed))"
                               " FROM v_first_response WHERE channel = 'web_form'"),
                 33);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT sum(sla_met)::text || sum(sla_missed) || sum(leads) ||"
                         " sum(contacted) FROM v_first_response"
                         " WHERE channel = 'phone'"),
        4054);
    cr_expect_eq(lf_h_sql_long(h, "SELECT avg_response_seconds FROM v_first_response"
                                  " WHERE channel = 'phone'"),
                 1575);
    /* Conversion per channel: web_form 1 won of 3 leads, win rate 1/2; phone none won. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT (win_rate * 100)::int FROM v_conversion"
                                  " WHERE channel = 'web_form'"),
                 50);
    cr_expect_eq(lf_h_sql_long(h, "SELECT (conversion * 1000)::int FROM v_conversion"
                                  " WHERE channel = 'web_form'"),
                 333);
    cr_expect_eq(lf_h_sql_long(h, "SELECT weighted_pipeline FROM v_conversion"
                                  " WHERE channel = 'phone'"),
                 1200, "a4's quote 2000 x 0.60 from leads");
    cr_expect_eq(lf_h_sql_long(h, "SELECT (to_next * 100)::int FROM v_stage_conversion"
                                  " WHERE stage = 'qualified'"),
                 100, "4 qualified, 4 reached proposal");
    lf_h_destroy(&h);
}

Test(analytics, the_sweep_finds_an_event_lost_behind_acknowledged_ones, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_allow_orphans(h); /* events of made-up leads */
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    json_t *envs[12];
    s_add_assigned(db, envs, 12, -1);
    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    /* The wire lost event 10 (index 9): windows of 3 are all acknowledged before it. */
    json_t *got[11];
    for (int i = 0, k = 0; i < 12; i++)
        if (i != 9)
            got[k++] = envs[i];
    cr_expect_eq(lf_consumer_handle(c, got, 11), 11);
    cr_expect_eq(lf_consumer_sweep(c, 3), 1, "found behind three acknowledged windows");
    cr_expect_eq(lf_consumer_sweep(c, 3), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"), 12);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_reached FROM rollup_funnel"), 12);
    for (int i = 0; i < 12; i++)
        json_decref(envs[i]);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* The service's own sweep (sweep.c: the window, its acks and its fold in one
 * statement): it folds a backlog exactly once alongside the ZeroMQ path, finds an event
 * lost behind acknowledged windows, and a window holding a poison event goes through
 * the framework, which sets only that event aside. */
Test(analytics, the_one_statement_sweep_folds_each_event_once, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    free(lf_h_sql(h,
                  "INSERT INTO leads (id, channel, phone)"
                  " SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,"
                  " 'api', '1390000' || lpad(g::text, 4, '0')"
                  " FROM generate_series(0, 11) g RETURNING 1"));
    json_t *envs[12];
    /* Event 7 (index 6) carries a creation time no one can read. */
    s_add_assigned(db, envs, 12, 6);
    json_t *pl =
        json_pack("{s:s, s:s, s:i}", "from", "new", "to", "proposal", "amount", 500);
    json_t *move =
        lf_outbox_add(db, "stage.changed", "00000000-0000-7000-8000-000000000000", pl);
    json_decref(pl);
    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    lf_sweep_t sw = {.db = db,
                     .consumer = c,
                     .rollup = &r,
                     .types = "{lead.assigned,stage.changed,deal.won,deal.lost}"};
    /* Events 1-3 came over ZeroMQ already (the consumer's batch path). */
    cr_expect_eq(lf_consumer_handle(c, envs, 3), 3);
    /* Windows of 3: events 1-3 are acknowledged (skipped), 4-6 folded. */
    cr_expect_eq(lf_sweep_run(&sw, 3), 3);
    /* 7-9 hold the poison event: the framework takes that window, event by event. */
    int n = 0, got;
    for (int i = 0; i < 10 && (got = lf_sweep_run(&sw, 3)) != 0; i++)
        n += got > 0 ? got : 0;
    cr_expect_eq(n, 6, "events 7-13 but the poison one: %d", n);
    cr_expect_eq(lf_sweep_run(&sw, 3), 0, "nothing left");
    cr_expect_eq(lf_consumer_handle(c, envs, 12), 0, "a redelivery adds nothing");
    char *err = lf_h_sql(h, "SELECT error FROM consumer_acks WHERE error IS NOT NULL");
    cr_expect(err && strstr(err, "timestamp with time zone: \"***\"") &&
                  !strstr(err, "yesterday"),
              "the ack says why, without the value: %s", err);
    free(err);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acked"), 13);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"), 11);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_reached FROM rollup_funnel"
                                  " WHERE stage = 'new'"),
                 11);
    cr_expect_eq(lf_h_sql_long(h, "SELECT deals_now FROM rollup_funnel"
                                  " WHERE stage = 'proposal'"),
                 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT amount_now FROM rollup_funnel"
                                  " WHERE stage = 'proposal'"),
                 500);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(moves) FROM rollup_stage_daily"), 1);
    for (int i = 0; i < 12; i++)
        json_decref(envs[i]);
    json_decref(move);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

static void *s_sweep_thread(void *arg) {
    lf_sweep_t *sw = arg;
    sw->from = lf_sweep_run(sw, 10); /* the result, in a field the test no longer needs */
    return NULL;
}

/* The one-statement sweep meets a twin that has acknowledged one of its window's events
 * in a transaction still open: the sweep's snapshot cannot see that ack, so its insert
 * of the window's ack row waits for the twin (the acks' exclusion constraint) and, once
 * the twin committed, inserts nothing; the sweep reads the window again and folds the
 * other five events, not the twin's. Without the constraint it folded all six. */
Test(analytics, the_one_statement_sweep_leaves_out_an_event_a_twin_acknowledged,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_allow_orphans(h); /* events of made-up leads */
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "sweeper");
    lf_db_t *twin = lf_db_connect(lf_h_db_url(h), "twin");
    cr_assert(!db->err && !twin->err);
    json_t *envs[6];
    s_add_assigned(db, envs, 6, -1);
    free(lf_h_sql(h, "INSERT INTO consumer_cursors (consumer) VALUES ('analytics')"));
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", lf_event_seq(envs[2]));
    const char *p[] = {seq};
    cr_assert_eq(lf_db_begin(twin), 0);
    cr_assert_geq(
        lf_db_cmd(twin,
                  "INSERT INTO consumer_acks (consumer, seqs, top_xid) "
                  "SELECT 'analytics', int8multirange(int8range(id, id, '[]')), "
                  "xid FROM outbox WHERE id = $1::bigint",
                  1, p),
        0, "%s", twin->errstr);
    lf_rollup_t r = {0};
    lf_consumer_t *c = s_consumer(db, &r);
    lf_sweep_t sw = {.db = db,
                     .consumer = c,
                     .rollup = &r,
                     .types = "{lead.assigned,stage.changed,deal.won,deal.lost}"};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_sweep_thread, &sw), 0);
    int waited =
        lf_h_wait_sql(h,
                      "SELECT count(*) FROM pg_stat_activity WHERE "
                      "application_name = 'sweeper' AND wait_event_type = 'Lock'",
                      "1", 5000);
    cr_expect_eq(lf_db_commit(twin), 0);
    pthread_join(th, NULL);
    cr_expect(waited, "the sweep did not wait for the twin's ack");
    cr_expect_eq(sw.from, 5, "the sweep folded %lld events, not the twin's", sw.from);
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(leads) FROM rollup_leads_daily"), 5);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acked"), 6);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acks"), 2,
                 "the twin's ack row and the sweep's");
    for (int i = 0; i < 6; i++)
        json_decref(envs[i]);
    lf_consumer_destroy(&c);
    lf_db_destroy(&twin);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}
