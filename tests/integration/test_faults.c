/* Fault tests: kill -9 of services under load, PostgreSQL and Redis restarts.
 * Run with a PostgreSQL of their own (LF_TEST_PG_DIR), one test at a time. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(faults, .fini = lf_h_fini);

typedef struct {
    lf_h_t *h;
    int first, count;   /* phone numbers first..first+count-1 */
    int acked, refused; /* 2xx and 5xx/none answers */
    char (*ids)[40];    /* ids of acknowledged leads */
} s_load_t;

/* Posts `count` leads, retrying each with its Idempotency-Key until it is acknowledged
 * (as a well-behaved client does after a 503 or a dropped connection), at most 60
 * tries each. */
static void *s_load(void *arg) {
    s_load_t *l = arg;
    for (int i = 0; i < l->count; i++) {
        char body[128], key[64];
        snprintf(body, sizeof body, "{\"phone\":\"139%08d\",\"region\":\"east\"}",
                 l->first + i);
        snprintf(key, sizeof key, "Idempotency-Key: load-%d", l->first + i);
        const char *hdr[] = {"Content-Type: application/json", key, NULL};
        for (int attempt = 0; attempt < 60; attempt++) {
            char *resp = NULL;
            int st = lf_h_http(l->h, "POST", "/v1/leads", hdr, body, strlen(body), &resp);
            if (st == 200 || st == 201) {
                json_t *j = json_loads(resp, 0, NULL);
                snprintf(l->ids[l->acked], 40, "%s",
                         json_string_value(json_object_get(j, "id")));
                json_decref(j);
                free(resp);
                l->acked++;
                break;
            }
            free(resp);
            l->refused++;
            usleep(100 * 1000);
        }
    }
    return NULL;
}

static void s_start_load(pthread_t *t, s_load_t *l, lf_h_t *h, int first, int count) {
    memset(l, 0, sizeof *l);
    l->h = h;
    l->first = first;
    l->count = count;
    l->ids = calloc((size_t)count, sizeof *l->ids);
    pthread_create(t, NULL, s_load, l);
}

static void s_check_acked_stored(lf_h_t *h, s_load_t *l) {
    for (int i = 0; i < l->acked; i++) {
        char q[160];
        snprintf(q, sizeof q, "SELECT count(*) FROM leads WHERE id = '%s'", l->ids[i]);
        cr_expect_eq(lf_h_sql_long(h, q), 1, "acknowledged lead %s is not stored",
                     l->ids[i]);
    }
}

Test(faults, kill9_router_under_load_assigns_each_lead_exactly_once, .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_ALL, 1);
    free(lf_h_sql(
        h, "UPDATE reps SET capacity = 1000")); /* nobody is full: all 300 assigned */
    pthread_t t;
    s_load_t l;
    s_start_load(&t, &l, h, 1000, 300);
    for (int round = 0; round < 3; round++) {
        usleep(400 * 1000);
        lf_h_stop(h, LF_H_ROUTER, 0, 1); /* kill -9, mid-transaction or not */
        usleep(200 * 1000);
        lf_h_start(h, LF_H_ROUTER, 0);
    }
    pthread_join(t, NULL);
    cr_assert_eq(l.acked, 300, "every lead is eventually acknowledged");
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NULL",
                            "0", 20000),
              "some leads were never assigned after the router restarts");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 300);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM assignments"), 300,
                 "a lead was assigned twice");
    cr_expect_eq(lf_h_sql_long(h, "SELECT sum(open_count) FROM reps"), 300);
    cr_assert(lf_h_wait_sql(h, "SELECT coalesce(sum(leads),0) FROM rollup_leads_daily",
                            "300", 20000),
              "analytics did not count every lead exactly once");
    s_check_acked_stored(h, &l);
    free(l.ids);
    lf_h_destroy(&h);
}

Test(faults, kill9_intake_under_load_loses_no_acknowledged_lead, .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 1);
    pthread_t t[2];
    s_load_t l[2];
    s_start_load(&t[0], &l[0], h, 2000, 200);
    s_start_load(&t[1], &l[1], h, 3000, 200);
    for (int round = 0; round < 3; round++) {
        usleep(300 * 1000);
        lf_h_stop(h, LF_H_INTAKE, 0, 1);
        usleep(200 * 1000);
        lf_h_start(h, LF_H_INTAKE, 0);
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    cr_assert_eq(l[0].acked + l[1].acked, 400);
    s_check_acked_stored(h, &l[0]);
    s_check_acked_stored(h, &l[1]);
    /* Retries after a kill reuse the Idempotency-Key: no lead exists twice. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 400);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT phone) FROM leads"), 400);
    /* Every committed lead has its event, and the router gets them all. */
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'lead.created'"), 400);
    cr_expect(lf_h_wait_sql(h, "SELECT count(*) FROM assignments", "400", 20000));
    free(l[0].ids);
    free(l[1].ids);
    lf_h_destroy(&h);
}

Test(faults, postgres_restart_answers_503_then_recovers, .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_ALL, 1);
    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"phone\":\"13700000001\"}", &out),
                 201);
    json_decref(out);
    lf_h_pg_stop(h);
    char *body = NULL;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    const char *lead = "{\"phone\":\"13700000002\"}";
    int st = lf_h_http(h, "POST", "/v1/leads", hdr, lead, strlen(lead), &body);
    cr_expect_eq(st, 503, "a lead that cannot be committed must get 503, got %d", st);
    json_t *err = json_loads(body, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(err, "error")), "unavailable");
    json_decref(err);
    free(body);
    sleep(1);
    cr_expect_eq(lf_h_http(h, "GET", "/healthz", NULL, NULL, 0, NULL), 503);
    lf_h_pg_start(h);
    /* Services reconnect by themselves. */
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = lf_h_post_json(h, "/v1/leads", lead, &out) == 201;
        json_decref(out);
        out = NULL;
        if (!ok)
            usleep(100 * 1000);
    }
    cr_assert(ok, "intake did not recover after PostgreSQL came back");
    int healthy = 0;
    for (int i = 0; i < 30 && !healthy; i++) {
        healthy = lf_h_http(h, "GET", "/healthz", NULL, NULL, 0, NULL) == 200;
        if (!healthy)
            usleep(100 * 1000);
    }
    cr_expect(healthy, "/healthz did not turn 200 again");
    cr_expect(lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE assigned_at IS NOT NULL",
                            "2", 15000),
              "the router did not recover");
    cr_expect(lf_h_wait_sql(h, "SELECT count(*) FROM timers", "2", 15000),
              "scheduler did not recover");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 2,
                 "the refused lead was not stored");
    lf_h_destroy(&h);
}

static int s_redis_start(const char *dir, int port) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "redis-server --port %d --bind 127.0.0.1 --dir %s --daemonize yes --save '' "
             "--appendonly no --logfile %s/redis-%d.log >/dev/null && sleep 0.3",
             port, dir, dir, port);
    return system(cmd);
}

static void s_redis_kill(int port) {
    char cmd[128];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d shutdown nosave >/dev/null 2>&1; sleep 0.3", port);
    if (system(cmd) != 0) {
        /* already gone */
    }
}

Test(faults, redis_flush_and_restart_lose_no_timer, .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    int port = lf_h_free_port();
    cr_assert_eq(s_redis_start(lf_h_dir(h), port), 0);
    lf_h_use_redis(h, port);
    /* A long SLA for the first leads: they stay pending through the flush. */
    lf_h_config(
        h, "sla.json",
        "{\"first_contact_seconds\":{\"A\":3600,\"B\":3600,\"C\":3600,\"D\":3600},"
        "\"escalate_after_seconds\":{\"A\":3600,\"B\":3600,\"C\":3600,\"D\":3600}}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    for (int i = 0; i < 20; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"phone\":\"1360000%04d\"}", i);
        cr_assert_eq(lf_h_post_json(h, "/v1/leads", body, NULL), 201);
    }
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM timers WHERE state = 'pending'",
                            "20", 15000));
    char cmd[256], *zcard = NULL;
    snprintf(cmd, sizeof cmd, "redis-cli -p %d FLUSHALL >/dev/null", port);
    cr_assert_eq(system(cmd), 0);
    /* The scheduler notices the lost index and rebuilds it from PostgreSQL. */
    int rebuilt = 0;
    for (int i = 0; i < 50 && !rebuilt; i++) {
        usleep(100 * 1000);
        snprintf(cmd, sizeof cmd, "redis-cli -p %d ZCARD '%stimers'", port,
                 lf_h_redis_prefix(h));
        FILE *p = popen(cmd, "r");
        char line[32] = "";
        if (p && fgets(line, sizeof line, p))
            rebuilt = atoi(line) == 20;
        if (p)
            pclose(p);
    }
    free(zcard);
    cr_expect(rebuilt, "the timer index was not rebuilt after FLUSHALL");

    /* Now short timers, and Redis dies before they are due: they fire anyway (the
     * PostgreSQL sweep), and the Redis restart is survived. */
    free(lf_h_sql(h, "UPDATE timers SET due_at = now() + interval '1 second'"));
    s_redis_kill(port);
    cr_expect(
        lf_h_wait_sql(h, "SELECT count(*) FROM notifications WHERE kind = 'sla_reminder'",
                      "20", 15000),
        "due timers did not fire while Redis was down");
    cr_assert_eq(s_redis_start(lf_h_dir(h), port), 0);
    sleep(1);
    /* Fired once in effect: notifications.timer_id is unique, so counting them says
     * nothing; each lead must have exactly one reminder on its timeline and one
     * sla.reminded event, and each of the 20 timers must be fired. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE state = 'fired'"
                                  " AND kind = 'sla_first_contact' AND step = 0"),
                 20, "a due timer did not fire");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                                  " LEFT JOIN lead_events e ON e.lead_id = l.id"
                                  " AND e.type = 'sla_reminder' GROUP BY l.id"
                                  " HAVING count(e.id) <> 1) x"),
                 0, "a lead's reminder is missing from or twice on its timeline");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                                  " LEFT JOIN outbox o ON o.lead_id = l.id"
                                  " AND o.type = 'sla.reminded' GROUP BY l.id"
                                  " HAVING count(o.id) <> 1) x"),
                 0, "a lead's sla.reminded event is missing or doubled");
    lf_h_destroy(&h);
    s_redis_kill(port);
}
