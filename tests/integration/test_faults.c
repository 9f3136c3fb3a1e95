/* Fault tests: kill -9 of every service at random moments under load, PostgreSQL
 * restarted under load, Redis flushed and restarted, an event held back longer than
 * the consumers' cursor window, SIGTERM under load. Run with a PostgreSQL of their own
 * (LF_TEST_PG_DIR), one test at a time, on loopback, every loop bounded.
 *
 * Each test keeps a ledger of every lead that got a 2xx and checks at the end, against
 * the system of record: each is stored once; graded and assigned once (one initial
 * assignment, one "graded" entry, one lead.assigned event, open counts equal to a
 * recount); every due first-contact timer fired once in effect (fired, one reminder on
 * the timeline, one sla.reminded event); every rollup equal to a recount from leads and
 * the timeline. docs/reliability.md lists what each test proves. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../support/harness.h"

TestSuite(faults, .fini = lf_h_fini);

/* A first-contact SLA that comes due during a test (2 s), and an escalation that
 * does not (an hour): each lead's timer fires exactly once in effect. */
static const char *s_short_sla =
    "{\"first_contact_seconds\":{\"A\":2,\"B\":2,\"C\":2,\"D\":2},"
    "\"escalate_after_seconds\":{\"A\":3600,\"B\":3600,\"C\":3600,\"D\":3600}}";

/* ---- the load and its ledger ------------------------------------------------------ */

typedef struct {
    lf_h_t *h;
    int first, count;   /* phone numbers first..first+count-1 */
    int acked;          /* leads answered 2xx (the ledger) */
    int refused;        /* answers other than 2xx, and failed connections */
    int unavailable;    /* 503 answers among them */
    int pace_ms;        /* pause between leads */
    char (*ids)[40];    /* ids of acknowledged leads */
    volatile int *stop; /* set: give up retrying (the test failed) */
} s_load_t;

typedef struct {
    char *data;
    size_t len;
} s_buf_t;

static size_t s_collect(char *p, size_t size, size_t n, void *arg) {
    s_buf_t *b = arg;
    size_t add = size * n;
    if (b->len + add < 4096) {
        memcpy(b->data + b->len, p, add);
        b->len += add;
        b->data[b->len] = '\0';
    }
    return add;
}

/* Posts `count` leads on one keep-alive connection (reopened when it breaks),
 * retrying each with its Idempotency-Key until it is acknowledged - as a well-behaved
 * client does after a 503 or a dropped connection - at most 80 tries, 100 ms apart. */
static void *s_load(void *arg) {
    s_load_t *l = arg;
    CURL *c = curl_easy_init();
    char url[128], buf[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/leads", lf_h_http_port(l->h));
    for (int i = 0; i < l->count && !*l->stop; i++) {
        char body[160], key[64];
        snprintf(body, sizeof body,
                 "{\"phone\":\"139%08d\",\"region\":\"east\",\"industry\":\"software\"}",
                 l->first + i);
        snprintf(key, sizeof key, "Idempotency-Key: load-%d", l->first + i);
        struct curl_slist *hdr = NULL;
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        hdr = curl_slist_append(hdr, "Authorization: Bearer test-admin-key");
        hdr = curl_slist_append(hdr, "Expect:");
        hdr = curl_slist_append(hdr, key);
        for (int attempt = 0; attempt < 80 && !*l->stop; attempt++) {
            s_buf_t b = {buf, 0};
            buf[0] = '\0';
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
            long st = 0;
            if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
            if (st == 200 || st == 201) {
                json_t *j = json_loads(buf, 0, NULL);
                snprintf(l->ids[l->acked], 40, "%s",
                         json_string_value(json_object_get(j, "id")));
                json_decref(j);
                l->acked++;
                break;
            }
            l->refused++;
            if (st == 503)
                l->unavailable++;
            usleep(100 * 1000);
        }
        curl_slist_free_all(hdr);
        if (l->pace_ms)
            usleep((useconds_t)l->pace_ms * 1000);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static volatile int s_give_up;

static void s_start_load(pthread_t *t, s_load_t *l, lf_h_t *h, int first, int count,
                         int pace_ms) {
    memset(l, 0, sizeof *l);
    l->h = h;
    l->first = first;
    l->count = count;
    l->pace_ms = pace_ms;
    l->stop = &s_give_up;
    l->ids = calloc((size_t)count, sizeof *l->ids);
    cr_assert_eq(pthread_create(t, NULL, s_load, l), 0);
}

/* What s_check_ledger checks besides storage; S_REPEATS: some leads share a phone (a
 * customer's new lead after a closed one), so phones are not counted. */
enum { S_ROUTED = 1, S_TIMERS = 2, S_ROLLUPS = 4, S_ALL = 7, S_REPEATS = 8 };

static long s_q(lf_h_t *h, const char *sql) {
    return lf_h_sql_long(h, sql);
}

/* Waits for `sql` to give `want`; fails the test with `what` when it does not within
 * timeout_ms. */
static void s_wait(lf_h_t *h, const char *sql, long want, int timeout_ms,
                   const char *what) {
    char w[32];
    snprintf(w, sizeof w, "%ld", want);
    if (!lf_h_wait_sql(h, sql, w, timeout_ms))
        cr_expect_fail("%s: %s gave %ld, expected %ld", what, sql, s_q(h, sql), want);
}

/* The end-of-test ledger check (see the file's comment). `n` loads, all finished. */
static void s_check_ledger(lf_h_t *h, s_load_t *loads, int n, int checks) {
    long total = 0, sent = 0;
    for (int i = 0; i < n; i++) {
        total += loads[i].acked;
        sent += loads[i].count;
    }
    cr_expect_eq(total, sent, "only %ld of %ld leads were ever acknowledged", total,
                 sent);
    /* Stored once: every acknowledged id exists, nothing else does. */
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < loads[i].acked; k++) {
            char q[160];
            snprintf(q, sizeof q, "SELECT count(*) FROM leads WHERE id = '%s'",
                     loads[i].ids[k]);
            cr_expect_eq(s_q(h, q), 1, "acknowledged lead %s is not stored",
                         loads[i].ids[k]);
        }
    }
    cr_expect_eq(s_q(h, "SELECT count(*) FROM leads"), total, "leads stored != ledger");
    if (!(checks & S_REPEATS))
        cr_expect_eq(s_q(h, "SELECT count(DISTINCT phone) FROM leads"), total,
                     "a lead is stored twice");
    cr_expect_eq(s_q(h, "SELECT count(*) FROM outbox WHERE type = 'lead.created'"), total,
                 "lead.created events != leads");
    if (checks & S_ROUTED) {
        s_wait(h, "SELECT count(*) FROM leads WHERE assigned_at IS NULL", 0, 40000,
               "leads never routed");
        cr_expect_eq(s_q(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                            " LEFT JOIN assignments a ON a.lead_id = l.id"
                            " AND a.kind = 'initial' GROUP BY l.id"
                            " HAVING count(a.id) <> 1) x"),
                     0, "a lead was assigned other than once");
        /* Graded once as the timeline shows it: a 'graded' row (lead by lead) or the
         * grade carried by the decision's row (the batch path). */
        cr_expect_eq(s_q(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                            " LEFT JOIN (lead_events e CROSS JOIN LATERAL"
                            " lf_timeline_entries(e.type, e.data) t)"
                            " ON e.lead_id = l.id AND t.type = 'graded' GROUP BY l.id"
                            " HAVING count(e.id) <> 1) x"),
                     0, "a lead was graded other than once");
        cr_expect_eq(s_q(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                            " LEFT JOIN outbox o ON o.lead_id = l.id"
                            " AND o.type = 'lead.assigned' GROUP BY l.id"
                            " HAVING count(o.id) <> 1) x"),
                     0, "a lead has other than one lead.assigned event");
        cr_expect_eq(s_q(h, "SELECT count(*) FROM reps r WHERE r.open_count <>"
                            " (SELECT count(*) FROM leads l WHERE l.owner = r.id"
                            "  AND l.stage NOT IN ('won', 'lost'))"),
                     0, "a rep's open count differs from a recount");
    }
    if (checks & S_TIMERS) {
        s_wait(h,
               "SELECT count(*) FROM timers WHERE kind = 'sla_first_contact'"
               " AND step = 0 AND state = 'fired'",
               total, 40000, "due first-contact timers not fired");
        cr_expect_eq(s_q(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                            " LEFT JOIN timers t ON t.lead_id = l.id"
                            " AND t.kind = 'sla_first_contact' AND t.step = 0"
                            " GROUP BY l.id HAVING count(t.id) <> 1) x"),
                     0, "a lead has other than one first-contact timer");
        s_wait(h,
               "SELECT count(*) FROM (SELECT l.id FROM leads l"
               " LEFT JOIN lead_events e ON e.lead_id = l.id AND e.type = 'sla_reminder'"
               " GROUP BY l.id HAVING count(e.id) <> 1) x",
               0, 10000, "a due timer fired other than once in effect (timeline)");
        cr_expect_eq(s_q(h, "SELECT count(*) FROM (SELECT l.id FROM leads l"
                            " LEFT JOIN outbox o ON o.lead_id = l.id"
                            " AND o.type = 'sla.reminded' GROUP BY l.id"
                            " HAVING count(o.id) <> 1) x"),
                     0, "a due timer fired other than once in effect (events)");
    }
    if (checks & S_ROLLUPS) {
        s_wait(h, "SELECT coalesce(sum(leads), 0) FROM rollup_leads_daily", total, 40000,
               "the daily rollup does not count every lead once");
        /* Equal to a recount, cell by cell. */
        cr_expect_eq(
            s_q(h, "SELECT count(*) FROM rollup_leads_daily r FULL JOIN (SELECT"
                   " (created_at AT TIME ZONE 'Asia/Shanghai')::date AS day, channel,"
                   " grade::text AS grade, count(*) AS n FROM leads"
                   " WHERE assigned_at IS NOT NULL GROUP BY 1, 2, 3) c"
                   " ON c.day = r.day AND c.channel = r.channel AND c.grade = r.grade"
                   " WHERE r.leads IS DISTINCT FROM c.n"),
            0, "rollup_leads_daily differs from a recount of leads");
        cr_expect_eq(
            s_q(h,
                "SELECT count(*) FROM rollup_stage_daily r FULL JOIN (SELECT"
                " (at AT TIME ZONE 'Asia/Shanghai')::date AS day, data->>'to' AS stage,"
                " count(*) AS n FROM lead_events WHERE type = 'stage_changed'"
                " GROUP BY 1, 2) c ON c.day = r.day AND c.stage = r.stage"
                " WHERE r.moves IS DISTINCT FROM c.n"),
            0, "rollup_stage_daily differs from a recount of the timeline");
    }
}

static void s_join(pthread_t *t, s_load_t *l, int n) {
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

static void s_free(s_load_t *l, int n) {
    for (int i = 0; i < n; i++)
        free(l[i].ids);
}

/* A stack with the short SLA, every rep with room, all services running. */
static lf_h_t *s_stack(void) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json", s_short_sla);
    free(lf_h_sql(h, "UPDATE reps SET capacity = 100000"));
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    return h;
}

static int s_rand(unsigned *seed, int lo, int hi) {
    return lo + (int)(rand_r(seed) % (unsigned)(hi - lo + 1));
}

/* ---- kill -9 -------------------------------------------------------------------- */

/* Every service is killed with SIGKILL at random moments while leads pour in, and
 * started again: mid-transaction, mid-batch, between a commit and its publish. */
Test(faults, kill9_each_service_at_random_moments_under_load, .timeout = 240) {
    lf_h_t *h = s_stack();
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "kill -9 schedule seed %u\n", seed);
    pthread_t t[2];
    s_load_t l[2];
    s_start_load(&t[0], &l[0], h, 1000, 150, 10);
    s_start_load(&t[1], &l[1], h, 2000, 150, 10);
    const int svc[] = {LF_H_ROUTER, LF_H_SCHEDULER, LF_H_ANALYTICS, LF_H_INTAKE};
    for (int round = 0; round < 8; round++) {
        usleep((useconds_t)s_rand(&seed, 150, 700) * 1000);
        int s = svc[(round + s_rand(&seed, 0, 3)) % 4];
        lf_h_stop(h, s, 0, 1);
        usleep((useconds_t)s_rand(&seed, 50, 400) * 1000);
        lf_h_start(h, s, 0);
    }
    s_join(t, l, 2);
    s_check_ledger(h, l, 2, S_ALL);
    s_free(l, 2);
    lf_h_destroy(&h);
}

/* ---- PostgreSQL restart ------------------------------------------------------------ */

/* PostgreSQL stops under load: intake answers 503 (never a 2xx it cannot keep) and
 * /healthz says 503; when it is back every service recovers by itself and the clients'
 * retries land once. */
Test(faults, postgres_restart_under_load_503_then_everything_recovers, .timeout = 240) {
    lf_h_t *h = s_stack();
    pthread_t t[2];
    s_load_t l[2];
    s_start_load(&t[0], &l[0], h, 3000, 120, 15);
    s_start_load(&t[1], &l[1], h, 4000, 120, 15);
    usleep(700 * 1000);
    lf_h_pg_stop(h);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    const char *lead = "{\"phone\":\"13700000002\"}";
    char *body = NULL;
    int st = lf_h_http(h, "POST", "/v1/leads", hdr, lead, strlen(lead), &body);
    cr_expect_eq(st, 503, "a lead that cannot be committed must get 503, got %d", st);
    json_t *err = json_loads(body ? body : "", 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(err, "error")), "unavailable");
    json_decref(err);
    free(body);
    usleep(1200 * 1000);
    cr_expect_eq(lf_h_http(h, "GET", "/healthz", NULL, NULL, 0, NULL), 503);
    lf_h_pg_start(h);
    s_join(t, l, 2);
    cr_expect_gt(l[0].unavailable + l[1].unavailable, 0,
                 "the clients never saw a 503 while PostgreSQL was down");
    int healthy = 0;
    for (int i = 0; i < 50 && !healthy; i++) {
        healthy = lf_h_http(h, "GET", "/healthz", NULL, NULL, 0, NULL) == 200;
        if (!healthy)
            usleep(100 * 1000);
    }
    cr_expect(healthy, "/healthz did not turn 200 again");
    cr_expect_eq(s_q(h, "SELECT count(*) FROM leads WHERE phone = '+8613700000002'"), 0,
                 "the refused lead was stored");
    s_check_ledger(h, l, 2, S_ALL);
    s_free(l, 2);
    lf_h_destroy(&h);
}

/* ---- Redis ------------------------------------------------------------------------ */

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

static long s_zcard(lf_h_t *h, int port) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d ZCARD '%stimers'", port,
             lf_h_redis_prefix(h));
    FILE *p = popen(cmd, "r");
    char line[32] = "";
    long n = -1;
    if (p && fgets(line, sizeof line, p))
        n = atol(line);
    if (p)
        pclose(p);
    return n;
}

/* Redis is flushed (the index is rebuilt from PostgreSQL), then killed before the
 * timers are due (they fire from the PostgreSQL sweep), then started again: every
 * timer fires once in effect. */
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
    lf_h_start(h, LF_H_ANALYTICS, 0);
    pthread_t t;
    s_load_t l;
    s_start_load(&t, &l, h, 5000, 20, 0);
    s_join(&t, &l, 1);
    s_wait(h, "SELECT count(*) FROM timers WHERE state = 'pending'", 20, 15000,
           "timers not created");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d FLUSHALL >/dev/null", port);
    cr_assert_eq(system(cmd), 0);
    /* The scheduler notices the lost index and rebuilds it from PostgreSQL. */
    int rebuilt = 0;
    for (int i = 0; i < 50 && !rebuilt; i++) {
        usleep(100 * 1000);
        rebuilt = s_zcard(h, port) == 20;
    }
    cr_expect(rebuilt, "the timer index was not rebuilt after FLUSHALL");

    /* Now the timers come due, and Redis dies before they are: they fire anyway (the
     * PostgreSQL sweep), and the Redis restart is survived. */
    free(lf_h_sql(h, "UPDATE timers SET due_at = now() + interval '1 second'"));
    s_redis_kill(port);
    s_wait(h, "SELECT count(*) FROM notifications WHERE kind = 'sla_reminder'", 20, 15000,
           "due timers did not fire while Redis was down");
    cr_assert_eq(s_redis_start(lf_h_dir(h), port), 0);
    sleep(1);
    s_check_ledger(h, &l, 1, S_ALL);
    s_free(&l, 1);
    lf_h_destroy(&h);
    s_redis_kill(port);
}

/* ---- an event held back ------------------------------------------------------------ */

/* A transaction that wrote a lead and its event long ago (its events' `at`: five
 * minutes back) and commits only now, while later leads were routed, counted and
 * passed by every cursor: the lead is still routed, timed and counted once. */
Test(faults, a_transaction_that_commits_late_is_still_delivered, .timeout = 180) {
    lf_h_t *h = s_stack();
    PGconn *held = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(held) == CONNECTION_OK);
    PQclear(PQexec(held, "BEGIN"));
    PGresult *r = PQexec(
        held, "WITH l AS (INSERT INTO leads (id, channel, phone, region, created_at)"
              " VALUES ('0000000b-0000-7000-8000-000000000001', 'api', '+8613900000001', "
              "'east',"
              " now() - interval '5 minutes') RETURNING id, created_at)"
              " INSERT INTO outbox (event_id, type, lead_id, at, payload)"
              " SELECT gen_random_uuid(), 'lead.created', l.id, l.created_at,"
              " '{\"channel\":\"api\"}' FROM l");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(held));
    PQclear(r);
    r = PQexec(held, "SELECT pg_current_xact_id()");
    char held_xid[32];
    snprintf(held_xid, sizeof held_xid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pthread_t t;
    s_load_t l;
    s_start_load(&t, &l, h, 6000, 40, 0);
    s_join(&t, &l, 1);
    s_wait(h, "SELECT count(*) FROM leads WHERE assigned_at IS NULL", 0, 30000,
           "the later leads were not routed");
    /* Long enough for every consumer to try to move its cursor past them. */
    sleep(6);
    /* router, scheduler, analytics and the scheduler's effects consumer. */
    cr_expect_eq(s_q(h, "SELECT count(*) FROM consumer_cursors"), 4);
    char q[160];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM consumer_cursors WHERE safe_xid > '%s'::xid8",
             held_xid);
    cr_expect_eq(s_q(h, q), 0, "a cursor passed the running transaction");
    /* /metrics shows the held transaction and the consumers waiting behind it. */
    char *metrics = NULL;
    cr_expect_eq(lf_h_http(h, "GET", "/metrics", NULL, NULL, 0, &metrics), 200);
    cr_expect(metrics &&
                  strstr(metrics, "leadflow_consumer_lag_seconds{consumer=\"router\"}"),
              "no router lag in /metrics");
    const char *old =
        metrics ? strstr(metrics, "\nleadflow_oldest_write_transaction_seconds ") : NULL;
    cr_expect(old && atof(old + 43) >= 5.0,
              "the held transaction (older than 5 s) is not in /metrics");
    const char *pend =
        metrics
            ? strstr(metrics, "leadflow_consumer_pending_events{consumer=\"analytics\"} ")
            : NULL;
    cr_expect(pend && atol(pend + 55) > 0, "analytics shows no pending events");
    free(metrics);
    PQclear(PQexec(held, "COMMIT"));
    PQfinish(held);
    s_wait(h,
           "SELECT count(*) FROM leads WHERE id = '0000000b-0000-7000-8000-000000000001' "
           "AND assigned_at IS NOT NULL",
           1, 20000, "the late lead was never routed");
    /* The ledger: the 40 acknowledged leads plus the held-back one. */
    l.ids = realloc(l.ids, 41 * sizeof *l.ids);
    snprintf(l.ids[l.acked++], 40, "0000000b-0000-7000-8000-000000000001");
    l.count++;
    s_check_ledger(h, &l, 1, S_ALL);
    s_free(&l, 1);
    lf_h_destroy(&h);
}

/* Envelopes that waited in a queue while the consumers' cursors passed their events
 * (their acks pruned) are delivered late over ZeroMQ: nothing is applied or counted
 * again. The old consumer inserted a fresh ack for each and counted it twice. */
Test(faults, an_envelope_delivered_after_the_cursor_passed_changes_nothing,
     .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json", s_short_sla);
    free(lf_h_sql(h, "UPDATE reps SET capacity = 100000"));
    /* No scheduler: the test plays it on its PUB port, the consumers connect to it. */
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    void *ctx = zmq_ctx_new(), *pub = zmq_socket(ctx, ZMQ_PUB);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", lf_h_zmq_port(h, LF_H_SCHEDULER));
    cr_assert_eq(zmq_bind(pub, ep), 0);
    pthread_t t;
    s_load_t l;
    s_start_load(&t, &l, h, 7000, 30, 0);
    s_join(&t, &l, 1);
    s_wait(h, "SELECT coalesce(sum(leads), 0) FROM rollup_leads_daily", 30, 30000,
           "not counted");
    /* Old enough for any cursor rule; then wait for the acks to be pruned. */
    free(lf_h_sql(h, "UPDATE outbox SET at = now() - interval '5 minutes'"));
    s_wait(h,
           "SELECT count(*) FROM consumer_acked a JOIN outbox o ON o.id = a.event_id"
           " WHERE o.type IN ('lead.created', 'lead.assigned')",
           0, 45000, "the cursors did not pass the events");
    /* The held-back envelopes, as they were published. */
    PGconn *pg = PQconnectdb(lf_h_db_url(h));
    PGresult *r = PQexec(pg, "SELECT type, lf_envelope(id, event_id, type, lead_id, at,"
                             " version, payload)::text FROM outbox WHERE type IN"
                             " ('lead.created', 'lead.assigned') ORDER BY id");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    usleep(300 * 1000); /* the subscriptions reach the new publisher */
    for (int i = 0; i < PQntuples(r); i++) {
        zmq_send(pub, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)), ZMQ_SNDMORE);
        zmq_send(pub, PQgetvalue(r, i, 1), strlen(PQgetvalue(r, i, 1)), 0);
    }
    PQclear(r);
    PQfinish(pg);
    sleep(2);
    cr_expect_eq(s_q(h, "SELECT count(*) FROM consumer_acks"), 0,
                 "acks were inserted below the cursor");
    s_check_ledger(h, &l, 1, S_ROUTED | S_ROLLUPS);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    s_free(&l, 1);
    lf_h_destroy(&h);
}

/* ---- SIGTERM ----------------------------------------------------------------------- */

/* Each service in turn gets SIGTERM while leads pour in on keep-alive connections: it
 * drains and exits 0 within its grace period (the harness allows 20 s and fails on a
 * crash or a sanitizer report), is started again, and nothing is lost or doubled. */
Test(faults, sigterm_under_load_each_service_drains, .timeout = 240) {
    lf_h_t *h = s_stack();
    pthread_t t[3];
    s_load_t l[3];
    s_start_load(&t[0], &l[0], h, 8000, 100, 15);
    s_start_load(&t[1], &l[1], h, 9000, 100, 15);
    s_start_load(&t[2], &l[2], h, 10000, 100, 15);
    const int svc[] = {LF_H_INTAKE, LF_H_ROUTER, LF_H_SCHEDULER, LF_H_ANALYTICS,
                       LF_H_INTAKE};
    for (int i = 0; i < 5; i++) {
        usleep(400 * 1000);
        lf_h_stop(h, svc[i], 0, 0);
        usleep(100 * 1000);
        lf_h_start(h, svc[i], 0);
    }
    s_join(t, l, 3);
    s_check_ledger(h, l, 3, S_ALL);
    s_free(l, 3);
    lf_h_destroy(&h);
}

/* ---- a stage move racing a repeat inquiry ------------------------------------------ */

typedef struct {
    lf_h_t *h;
    pthread_barrier_t *go;
    char (*ids)[40];     /* the open leads */
    char (*answers)[40]; /* what each inquiry was answered with: the lead id */
    int n, moved, inquiries_ok, failed;
} s_racer_t;

static void *s_race_moves(void *arg) {
    s_racer_t *r = arg;
    for (int i = 0; i < r->n; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/leads/%s/stage", r->ids[i]);
        const char *body = "{\"to\":\"lost\",\"loss_reason\":\"no_budget\"}";
        const char *hdr[] = {"Content-Type: application/json", NULL};
        pthread_barrier_wait(r->go);
        int st = lf_h_http(r->h, "POST", path, hdr, body, strlen(body), NULL);
        if (st == 200)
            r->moved++;
        else
            r->failed++;
    }
    return NULL;
}

static void *s_race_inquiries(void *arg) {
    s_racer_t *r = arg;
    for (int i = 0; i < r->n; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"phone\":\"1350000%04d\",\"name\":\"again\"}", i);
        pthread_barrier_wait(r->go);
        json_t *out = NULL;
        int st = lf_h_post_json(r->h, "/v1/leads", body, &out);
        if (st == 200 || st == 201) {
            r->inquiries_ok++;
            snprintf(r->answers[i], 40, "%s",
                     json_string_value(json_object_get(out, "id")));
        } else {
            r->failed++;
        }
        json_decref(out);
    }
    return NULL;
}

/* A deal is closed (stage move to lost) at the moment a repeat inquiry from the same
 * customer arrives. Either the inquiry is merged before the close (its timeline entry
 * comes first) or it sees the deal closed and becomes a new lead, routed and timed.
 * The old merge read the open lead without a lock and attached the inquiry to a deal
 * that was being closed: no new lead, no SLA. */
Test(faults, a_stage_move_racing_a_repeat_inquiry, .timeout = 180) {
    lf_h_t *h = s_stack();
    enum { N = 30 };
    s_racer_t r = {.h = h, .n = N};
    r.ids = calloc(N, sizeof *r.ids);
    r.answers = calloc(N, sizeof *r.answers);
    s_load_t first = {.h = h, .count = N, .acked = N, .ids = r.ids};
    for (int i = 0; i < N; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1350000%04d\",\"region\":\"east\"}", i);
        json_t *out = NULL;
        cr_assert_eq(lf_h_post_json(h, "/v1/leads", body, &out), 201);
        snprintf(r.ids[i], 40, "%s", json_string_value(json_object_get(out, "id")));
        json_decref(out);
    }
    s_wait(h, "SELECT count(*) FROM leads WHERE owner IS NULL", 0, 20000, "not routed");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    r.go = &go;
    pthread_t a, b;
    pthread_create(&a, NULL, s_race_moves, &r);
    pthread_create(&b, NULL, s_race_inquiries, &r);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&go);
    cr_expect_eq(r.failed, 0, "%d requests failed (503: a deadlock?)", r.failed);
    cr_expect_eq(r.moved, N);
    cr_expect_eq(r.inquiries_ok, N);
    cr_expect_eq(s_q(h, "SELECT count(*) FROM lead_events i JOIN lead_events s"
                        " ON s.lead_id = i.lead_id WHERE i.type = 'inquiry'"
                        " AND s.type = 'stage_changed' AND s.data->>'to' = 'lost'"
                        " AND i.id > s.id"),
                 0, "an inquiry was merged into a deal after it was closed");
    /* The ledger: the first leads, plus the inquiries that became leads. */
    s_load_t second = {.h = h, .ids = calloc(N, sizeof *second.ids)};
    int merged = 0;
    for (int i = 0; i < N; i++) {
        if (strcmp(r.answers[i], r.ids[i]) == 0) {
            merged++;
            continue;
        }
        snprintf(second.ids[second.acked++], 40, "%s", r.answers[i]);
    }
    second.count = second.acked;
    fprintf(stderr, "race: %d inquiries merged before the close, %d new leads\n", merged,
            second.acked);
    s_load_t both[] = {first, second};
    s_check_ledger(h, both, 2, S_ROUTED | S_ROLLUPS | S_REPEATS);
    /* The new leads are timed like any other. */
    s_wait(h,
           "SELECT count(*) FROM leads l WHERE l.stage = 'new' AND NOT EXISTS"
           " (SELECT 1 FROM timers t WHERE t.lead_id = l.id)",
           0, 20000, "a new lead from an inquiry has no SLA timer");
    free(second.ids);
    free(r.answers);
    free(r.ids);
    lf_h_destroy(&h);
}

/* ---- no transaction across a network call ------------------------------------------ */

/* Redis stalls (CLIENT PAUSE) while the scheduler takes new leads: its timers are
 * indexed in Redis only after their transaction commits, so no scheduler transaction
 * stays open waiting for Redis (an open writing transaction holds every consumer's
 * cursor). The old scheduler called ZADD inside the consumer's transaction and sat
 * "idle in transaction" for the whole Redis timeout. */
Test(faults, a_stalled_redis_holds_no_transaction_open, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    int port = lf_h_free_port();
    cr_assert_eq(s_redis_start(lf_h_dir(h), port), 0);
    lf_h_use_redis(h, port);
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d CLIENT PAUSE 4000 ALL >/dev/null", port);
    cr_assert_eq(system(cmd), 0);
    usleep(200 * 1000);
    pthread_t t;
    s_load_t l;
    s_start_load(&t, &l, h, 11000, 10, 0);
    long held = 0;
    for (int i = 0; i < 60 && !held; i++) {
        held = s_q(h, "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                      " 'leadflow-scheduler' AND state = 'idle in transaction'"
                      " AND now() - state_change > interval '500 milliseconds'");
        usleep(50 * 1000);
    }
    cr_expect_eq(held, 0, "a scheduler transaction stayed open while Redis stalled");
    s_join(&t, &l, 1);
    sleep(4);
    s_check_ledger(h, &l, 1, S_ROUTED);
    s_wait(h, "SELECT count(*) FROM timers WHERE step = 0", 10, 15000, "timers missing");
    s_free(&l, 1);
    lf_h_destroy(&h);
    s_redis_kill(port);
}

/* ---- the scheduler and the router waiting for each other ----------------------------
 */

/* Two assigned leads A < B (ids) whose lead.assigned events come B first. The router
 * holds lead A - it takes its batch's leads in id order, and a lead.created delivered
 * again (over ZeroMQ after the sweep, or the other way round) brings an assigned lead
 * into its batch - while the scheduler's batch times B and then A; the router then
 * asks for B. The old scheduler wrote each event's lead in seq order: it held B while
 * it waited for A, PostgreSQL found the cycle and failed the scheduler's statement,
 * and the consumer set the lead.assigned event aside as poison - lead A never got its
 * first-contact timer (sigterm_under_load_each_service_drains saw it: 299 of 300).
 * Now the scheduler takes the batch's leads in id order before writing any, so it
 * holds nothing while it waits for A; and an event whose handler loses such a race is
 * tried again, never set aside. The interleaving is driven exactly: the test plays
 * the router on its own connection. */
Test(faults, the_scheduler_and_the_router_never_wait_for_each_other, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json", s_short_sla);
    /* The scheduler's sessions look for a deadlock after 5 s of waiting, the test's
     * after a minute: in the old code the scheduler, as in the failed run, is the side
     * PostgreSQL fails. */
    free(lf_h_sql(h, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout"
                     " = ''5s''', current_database()); END $$"));
    const char *a = "0000000c-0000-7000-8000-00000000000a",
               *b = "0000000c-0000-7000-8000-00000000000b";
    char q[1024];
    snprintf(q, sizeof q,
             "INSERT INTO leads (id, channel, phone, region, grade, owner, stage,"
             " assigned_at) VALUES ('%s', 'api', '+8613900000010', 'east', 'B',"
             " 'wang.fang', 'new', now()), ('%s', 'api', '+8613900000011', 'east', 'B',"
             " 'wang.fang', 'new', now())",
             a, b);
    free(lf_h_sql(h, q));
    lf_h_start(h, LF_H_SCHEDULER, 0);
    PGconn *router = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(router) == CONNECTION_OK);
    PQclear(PQexec(router, "SET deadlock_timeout = '60s'"));
    PQclear(PQexec(router, "BEGIN"));
    snprintf(q, sizeof q, "SELECT 1 FROM leads WHERE id = '%s' FOR NO KEY UPDATE", a);
    PGresult *r = PQexec(router, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(router));
    PQclear(r);
    /* B's event first (the lower seq), in one transaction: one scheduler batch. */
    snprintf(q, sizeof q,
             "INSERT INTO outbox (event_id, type, lead_id, payload) SELECT"
             " gen_random_uuid(), 'lead.assigned', x.id::uuid, '{\"grade\":\"B\","
             "\"owner\":\"wang.fang\",\"channel\":\"api\"}' FROM (VALUES (1, '%s'),"
             " (2, '%s')) x(n, id) ORDER BY x.n",
             b, a);
    free(lf_h_sql(h, q));
    s_wait(h,
           "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
           " AND application_name = 'leadflow-scheduler' AND wait_event_type = 'Lock'",
           1, 20000, "the scheduler never waited for lead A");
    /* The router asks for B. In id order, nobody holds it. */
    snprintf(q, sizeof q,
             "SELECT 1 FROM leads WHERE id = '%s' FOR NO KEY UPDATE SKIP LOCKED", b);
    r = PQexec(router, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(router));
    int free_b = PQntuples(r);
    PQclear(r);
    cr_expect_eq(free_b, 1,
                 "the scheduler holds lead B while it waits for lead A: its batch does"
                 " not take its leads in id order");
    if (!free_b) {
        /* The cycle itself: PostgreSQL fails the scheduler's statement. */
        snprintf(q, sizeof q, "SELECT 1 FROM leads WHERE id = '%s' FOR NO KEY UPDATE", b);
        PQclear(PQexec(router, q));
    }
    PQclear(PQexec(router, "COMMIT"));
    PQfinish(router);
    s_wait(h, "SELECT count(*) FROM timers WHERE kind = 'sla_first_contact' AND step = 0",
           2, 20000, "a lead.assigned event ended without its first-contact timer");
    cr_expect_eq(s_q(h, "SELECT count(*) FROM consumer_acks WHERE error IS NOT NULL"), 0,
                 "an event was set aside");
    lf_h_destroy(&h);
}
