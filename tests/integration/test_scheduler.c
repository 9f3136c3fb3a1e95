/* Scheduler service tests: timers fire exactly once through a kill -9 in the middle
 * of firing, timers Redis never had fire from the PostgreSQL sweep, and the SLA chain
 * (reminder -> escalation -> reassign request), stale clocks, contacted leads and
 * follow-ups record the same rows and events as before the batch firing. Leads and
 * timers are written with SQL so the scheduler is tested alone. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "../support/harness.h"
#include "lf/db.h"

TestSuite(scheduler, .fini = lf_h_fini);

/* n leads L<first>.. owned by wang.fang (manager li.ming), grade B, new, not
 * contacted, each with a first-contact timer (step 0) due in `secs` seconds. */
static void s_leads_with_timers(lf_h_t *h, int first, int n, const char *grade,
                                double secs) {
    char q[1024];
    snprintf(q, sizeof q,
             "WITH l AS (INSERT INTO leads (id, channel, phone, grade, owner, stage,"
             " assigned_at) SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, "
             "'0'))::uuid, 'web_form', '137' || lpad(g::text, 8, '0'),"
             " '%s', 'wang.fang', 'new', now() FROM generate_series(%d, %d) g"
             " RETURNING id)"
             " INSERT INTO timers (lead_id, kind, step, due_at) SELECT id,"
             " 'sla_first_contact', 0, now() + make_interval(secs => %f) FROM l"
             " RETURNING 1",
             grade, first, first + n - 1, secs);
    free(lf_h_sql(h, q));
    snprintf(q, sizeof q,
             "SELECT count(*) FROM timers WHERE lead_id IN"
             " (SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid FROM "
             "generate_series(%d, %d) g)",
             first, first + n - 1);
    cr_assert_eq(lf_h_sql_long(h, q), n, "test leads not created");
}

static long s_zcard(lf_h_t *h) {
    char cmd[256], line[32] = "";
    snprintf(cmd, sizeof cmd, "redis-cli -p %d ZCARD '%stimers'", lf_h_redis_port(h),
             lf_h_redis_prefix(h));
    FILE *p = popen(cmd, "r");
    if (p && fgets(line, sizeof line, p)) {
        pclose(p);
        return atol(line);
    }
    if (p)
        pclose(p);
    return -1;
}

/* Every fired first-contact timer has exactly one reminder, one timeline entry, one
 * outbox event and one escalation timer. */
static void s_expect_each_fired_once(lf_h_t *h, int n) {
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE step = 0"
                                  " AND state = 'fired'"),
                 n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notifications"
                                  " WHERE kind = 'sla_reminder'"),
                 n, "notifications != fired timers");
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(DISTINCT lead_id) FROM notifications"
                               " WHERE kind = 'sla_reminder' AND rep_id = 'wang.fang'"),
                 n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_events"
                                  " WHERE type = 'sla_reminder' AND actor = 'scheduler'"),
                 n);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'sla.reminded'"), n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE step = 1"
                                  " AND state = 'pending'"),
                 n, "one escalation timer per reminder");
}

/* 0057: the 'timer.fired' event of every timer of a burst is written with two index
 * entries, its seq (the outbox's primary key) and its transaction (outbox_xid); its
 * random event id has none (with one, each event descended at a random leaf of an
 * index as large as the outbox, and a burst after a checkpoint wrote most of its
 * leaves to the WAL whole: docs/benchmarks.md, "Scheduler, fifth pass"). No writer
 * reuses an id, each draws it from gen_random_uuid(), so nothing checks them. */
Test(scheduler, a_fired_timer_s_event_is_indexed_by_seq_and_transaction_only) {
    lf_h_t *h = lf_h_new(0, 0);
    char *idx = lf_h_sql(h, "SELECT string_agg(indexname, ',' ORDER BY indexname)"
                            " FROM pg_indexes WHERE tablename = 'outbox'");
    cr_expect_str_eq(idx, "outbox_pkey,outbox_xid");
    free(idx);
    free(lf_h_sql(h, "INSERT INTO outbox (event_id, type) VALUES"
                     " ('019ad735-0000-7000-8000-000000000001', 'timer.fired'),"
                     " ('019ad735-0000-7000-8000-000000000001', 'timer.fired')"));
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE event_id ="
                                  " '019ad735-0000-7000-8000-000000000001'"),
                 2);
    lf_h_destroy(&h);
}

Test(scheduler, kill9_while_firing_then_every_timer_fires_exactly_once, .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    const int n = 8000;
    /* Small batches: many statements in flight when the kill comes. */
    lf_h_env(h, "LEADFLOW_TIMER_BATCH", "100");
    s_leads_with_timers(h, 1, n, "B", 3);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) > 0 FROM timers WHERE state = 'fired'",
                            "t", 20000),
              "nothing fired");
    lf_h_stop(h, LF_H_SCHEDULER, 0, 1);
    /* A statement the killed scheduler had sent still runs to its end (commit or
     * not) in its backend; wait for those to finish before counting. */
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND application_name LIKE"
                            " 'leadflow-scheduler%'",
                            "0", 20000));
    long fired = lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE state = 'fired'");
    long indexed = s_zcard(h);
    long escalations = lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE step = 1");
    cr_log_info("killed at fired=%ld; claimed from Redis but never committed=%ld", fired,
                (n - fired) - (indexed - escalations));
    cr_assert_lt(fired, n, "the kill came too late to test anything");
    /* What was committed is whole: one timer.fired event per fired timer, no more;
     * its effects (the reminder) may still be owed, never more than one per timer. */
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'timer.fired'"), fired,
        "a fired timer without its timer.fired event, or the reverse");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM (SELECT 1 FROM outbox o"
                                  " JOIN timers t ON t.id = (o.payload->>'timer')::bigint"
                                  " WHERE o.type = 'timer.fired' AND t.state = 'fired'"
                                  " GROUP BY t.id HAVING count(*) = 1) x"),
                 fired, "a timer.fired event for a timer that did not fire once");
    cr_expect_leq(lf_h_sql_long(h, "SELECT count(*) FROM notifications"), fired,
                  "a notification for a timer that did not fire");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char want[32];
    snprintf(want, sizeof want, "%d", n);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM notifications", want, 60000),
              "not every due timer fired after the restart");
    sleep(3); /* a sweep or a second claim would double-fire now */
    s_expect_each_fired_once(h, n);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE state = 'pending'"
                                  " AND due_at < now()"),
                 0);
    lf_h_destroy(&h);
}

/* The number a scheduler's log says it fired when it stopped ("stopped fired=N"). */
static long s_fired_in_log(lf_h_t *h, int instance) {
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/scheduler.%d.log", lf_h_dir(h), instance);
    FILE *f = fopen(path, "r");
    long n = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "stopped fired=");
        if (p)
            n = atol(p + strlen("stopped fired="));
    }
    if (f)
        fclose(f);
    return n;
}

Test(scheduler, two_schedulers_fire_each_timer_once_in_effect, .timeout = 180) {
    lf_h_t *h = lf_h_new(0, 1);
    const int n = 6000;
    /* Small batches, so both claim from Redis while the other fires. */
    lf_h_env(h, "LEADFLOW_TIMER_BATCH", "100");
    lf_h_env(h, "LEADFLOW_LOG_LEVEL", "info");
    /* Due 8 s from now: both schedulers are up before the first is due, even when a
     * loaded machine takes seconds to start each (a start waits for "ready"). */
    s_leads_with_timers(h, 1, n, "B", 8);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 1);
    char want[32];
    snprintf(want, sizeof want, "%d", n);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM notifications", want, 60000),
              "not every timer's reminder was written");
    sleep(3); /* a double fire or a second effect would show by now */
    lf_h_stop(h, LF_H_SCHEDULER, 0, 0);
    lf_h_stop(h, LF_H_SCHEDULER, 1, 0);
    s_expect_each_fired_once(h, n);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE type = 'timer.fired'"), n,
        "one timer.fired event per timer");
    long a = s_fired_in_log(h, 0), b = s_fired_in_log(h, 1);
    cr_log_info("fired by scheduler 0: %ld, by scheduler 1: %ld", a, b);
    cr_expect_eq(a + b, n, "the schedulers' own counts add up to more or less than n");
    cr_expect(a > 0 && b > 0, "one scheduler fired everything: the test proves nothing");
    lf_h_destroy(&h);
}

/* A batch whose statement waits - here on a row lock another session holds, in
 * production a loaded machine or a slow commit - does not hold up the timers that come
 * due after it: they are claimed onto a free lane and fire while it still waits. (The
 * firing thread used to wait for every batch in flight to end before it claimed again,
 * so they fired only once the lock was gone.) */
Test(scheduler, a_stuck_batch_does_not_hold_up_the_timers_due_after_it, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    s_leads_with_timers(h, 1, 1, "B", 6);   /* the one that will wait */
    s_leads_with_timers(h, 2, 10, "B", 12); /* due 6 s after it */
    PGconn *lock = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(lock) == CONNECTION_OK, "%s", PQerrorMessage(lock));
    PGresult *r = PQexec(lock, "BEGIN; SELECT 1 FROM timers WHERE lead_id ="
                               " '00000000-0000-7000-8000-000000000001' FOR UPDATE");
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s",
              PQerrorMessage(lock));
    PQclear(r);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    const char *stuck = "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND application_name ="
                        " 'leadflow-scheduler-fire' AND wait_event_type = 'Lock'";
    cr_assert(lf_h_wait_sql(h, stuck, "1", 30000),
              "the first timer's batch never waited");
    int fired = lf_h_wait_sql(h,
                              "SELECT count(*) FROM timers WHERE state = 'fired'"
                              " AND lead_id <> '00000000-0000-7000-8000-000000000001'",
                              "10", 12000);
    long still = lf_h_sql_long(h, stuck);
    r = PQexec(lock, "ROLLBACK");
    PQclear(r);
    PQfinish(lock);
    cr_expect(fired, "the timers due after the stuck batch did not fire while it waited");
    cr_expect_eq(still, 1, "the first batch stopped waiting before the others fired");
    char want[8];
    snprintf(want, sizeof want, "%d", 11);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM notifications", want, 30000),
              "not every timer's reminder was written once the lock was gone");
    sleep(2); /* a second firing or a second effect would show by now */
    s_expect_each_fired_once(h, 11);
    lf_h_destroy(&h);
}

Test(scheduler, timers_redis_never_had_fire_from_the_sweep_once, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    /* Written behind the scheduler's back: PostgreSQL has them, Redis does not. */
    s_leads_with_timers(h, 1, 500, "B", 0);
    cr_expect_eq(s_zcard(h), 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM notifications", "500", 20000),
              "the PostgreSQL sweep did not fire the timers Redis lost");
    sleep(2);
    s_expect_each_fired_once(h, 500);
    lf_h_destroy(&h);
}

/* The index is rebuilt at start a page of 10,000 timers at a time (timers.c): 25,001
 * pending timers (three pages, the last of one) are all indexed, once each, and the
 * fired ones between them are not. */
Test(scheduler, the_rebuild_indexes_every_pending_timer_page_after_page, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    s_leads_with_timers(h, 1, 25001, "B", 3600);
    /* Fired timers among them, in every page: the rebuild skips them. */
    free(lf_h_sql(h, "UPDATE timers SET state = 'fired', fired_at = now()"
                     " WHERE id % 1000 = 7 RETURNING 1"));
    long pending =
        lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE state = 'pending'");
    cr_assert_gt(pending, 24900);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    char path[1024], line[64];
    snprintf(path, sizeof path, "%s/scheduler.0.log", lf_h_dir(h));
    snprintf(line, sizeof line, "pending=%ld", pending);
    for (int i = 0; i < 200 && lf_h_file_count(path, 0, line) == 0; i++)
        usleep(50 * 1000);
    cr_expect_eq(lf_h_file_count(path, 0, line), 1, "no rebuild of %ld timers logged",
                 pending);
    cr_expect_eq(s_zcard(h), pending, "Redis indexes every pending timer, once");
    lf_h_destroy(&h);
}

Test(scheduler, sla_chain_and_follow_ups_record_what_they_did_before, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    /* Grade B reassigns, grade C never does. */
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"escalate_after_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"reassign_after_seconds\":{\"B\":1}}");
    s_leads_with_timers(h, 1, 1, "B", 0.5); /* L1: the full chain */
    s_leads_with_timers(h, 2, 1, "C", 0.5); /* L2: escalation, no reassign */
    s_leads_with_timers(h, 3, 1, "B", 0.5); /* L3: contacted before its timer */
    free(lf_h_sql(h, "UPDATE leads SET first_contact_at = now() WHERE id = "
                     "'00000000-0000-7000-8000-000000000003'"
                     " RETURNING 1"));
    s_leads_with_timers(h, 4, 1, "B", 3600); /* L4: a stale clock of round 1 */
    free(lf_h_sql(h, "INSERT INTO timers (lead_id, kind, step, due_at)"
                     " VALUES ('00000000-0000-7000-8000-000000000004', "
                     "'sla_first_contact', 10, now()) RETURNING 1"));
    /* L5: a follow-up for its activity 1; L6: a follow-up on a lead nobody owns. */
    s_leads_with_timers(h, 5, 2, "B", 3600);
    free(lf_h_sql(h, "UPDATE leads SET owner = NULL WHERE id = "
                     "'00000000-0000-7000-8000-000000000006' RETURNING 1"));
    free(lf_h_sql(h, "INSERT INTO lead_events (lead_id, type, actor, data) VALUES"
                     " ('00000000-0000-7000-8000-000000000005', 'activity', 'wang.fang', "
                     "'{\"seq\": 1, \"activity\": "
                     "\"call\", \"outcome\": \"interested\", \"note\": \"send the "
                     "brochure\"}') RETURNING 1"));
    free(lf_h_sql(h, "INSERT INTO timers (lead_id, kind, step, due_at) VALUES"
                     " ('00000000-0000-7000-8000-000000000005', 'follow_up', 1, now()), "
                     "('00000000-0000-7000-8000-000000000006', 'follow_up', 1, now())"
                     " RETURNING 1"));
    lf_h_start(h, LF_H_SCHEDULER, 0);

    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM outbox WHERE type = 'lead.reassign'"
                            " AND lead_id = '00000000-0000-7000-8000-000000000001'",
                            "1", 20000),
              "no reassign request after the escalation");
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notifications WHERE lead_id = "
                            "'00000000-0000-7000-8000-000000000002'",
                            "2", 20000));
    sleep(2);
    char *s = lf_h_sql(
        h, "SELECT string_agg(kind || ':' || rep_id, ',' ORDER BY id)"
           " FROM notifications WHERE lead_id = '00000000-0000-7000-8000-000000000001'");
    cr_expect_str_eq(s, "sla_reminder:wang.fang,sla_escalation:li.ming");
    free(s);
    s = lf_h_sql(h, "SELECT message FROM notifications WHERE lead_id = "
                    "'00000000-0000-7000-8000-000000000001'"
                    " AND kind = 'sla_escalation'");
    cr_expect_str_eq(s, "升级提醒: grade B lead 00000000-0000-7000-8000-000000000001 "
                        "owned by wang.fang is still not "
                        "contacted after the reminder.");
    free(s);
    s = lf_h_sql(h,
                 "SELECT string_agg(type || ':' || payload::text, ' ' ORDER BY id)"
                 " FROM outbox WHERE lead_id = '00000000-0000-7000-8000-000000000001'");
    cr_expect_str_eq(s, "sla.reminded:{\"to\": \"wang.fang\", \"kind\": \"sla_reminder\","
                        " \"step\": 0} sla.escalated:{\"to\": \"li.ming\", \"kind\": "
                        "\"sla_escalation\", \"step\": 1} lead.reassign:{\"reason\": "
                        "\"sla_missed\", \"exclude\": [\"wang.fang\"]}");
    free(s);
    s = lf_h_sql(h,
                 "SELECT string_agg(step || ':' || state, ',' ORDER BY step) FROM timers"
                 " WHERE lead_id = '00000000-0000-7000-8000-000000000001'");
    cr_expect_str_eq(s, "0:fired,1:fired,2:fired");
    free(s);
    s = lf_h_sql(
        h,
        "SELECT string_agg(type || ':' || (data->>'to') || ':' ||"
        " (data->>'notification' = n.id::text), ',' ORDER BY e.id)"
        " FROM lead_events e JOIN notifications n ON n.lead_id = e.lead_id"
        " AND n.kind = e.type WHERE e.lead_id = '00000000-0000-7000-8000-000000000001'");
    cr_expect_str_eq(s, "sla_reminder:wang.fang:true,sla_escalation:li.ming:true");
    free(s);
    /* Grade C: reminded and escalated, no reassign timer. */
    s = lf_h_sql(h,
                 "SELECT string_agg(step || ':' || state, ',' ORDER BY step) FROM timers"
                 " WHERE lead_id = '00000000-0000-7000-8000-000000000002'");
    cr_expect_str_eq(s, "0:fired,1:fired");
    free(s);
    /* Contacted lead and stale clock: the timer ends, nothing is recorded. */
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE lead_id IN "
                         "('00000000-0000-7000-8000-000000000003', "
                         "'00000000-0000-7000-8000-000000000004') AND state = 'fired'"),
        2);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notifications WHERE lead_id IN "
                                  "('00000000-0000-7000-8000-000000000003', "
                                  "'00000000-0000-7000-8000-000000000004')"),
                 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE lead_id IN "
                                  "('00000000-0000-7000-8000-000000000003', "
                                  "'00000000-0000-7000-8000-000000000004')"),
                 0);
    /* Follow-ups: the owner is reminded with what the activity said; nobody to
     * remind for an unowned lead. */
    s = lf_h_sql(h, "SELECT rep_id || '|' || message FROM notifications"
                    " WHERE lead_id = '00000000-0000-7000-8000-000000000005' AND kind = "
                    "'follow_up_reminder'");
    cr_expect_str_eq(s, "wang.fang|跟进提醒 follow-up reminder: lead "
                        "00000000-0000-7000-8000-000000000005 is due for its next "
                        "action after the call (interested): send the brochure");
    free(s);
    s = lf_h_sql(h,
                 "SELECT (data->>'activity_seq') || ':' || (data->>'to') FROM lead_events"
                 " WHERE lead_id = '00000000-0000-7000-8000-000000000005' AND type = "
                 "'follow_up_reminder'");
    cr_expect_str_eq(s, "1:wang.fang");
    free(s);
    s = lf_h_sql(h, "SELECT payload::text FROM outbox WHERE lead_id = "
                    "'00000000-0000-7000-8000-000000000005'");
    cr_expect_str_eq(s, "{\"to\": \"wang.fang\", \"kind\": \"follow_up_reminder\", "
                        "\"activity_seq\": 1}");
    free(s);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notifications WHERE lead_id = "
                                  "'00000000-0000-7000-8000-000000000006'"),
                 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE lead_id = "
                                  "'00000000-0000-7000-8000-000000000006'"
                                  " AND kind = 'follow_up' AND state = 'fired'"),
                 1);
    lf_h_destroy(&h);
}

/* Entries the system writes on its own (reminders, escalations, follow-up reminders,
 * overdue notices, stale warnings, digests) leave leads.updated_at where it was, so a CRM
 * syncing by updated_at is not sent every reminded lead again; entries that record what
 * a person did (an activity, a stage move, a reassignment) still move it. */
Test(scheduler, reminders_leave_updated_at_and_activities_move_it, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1},"
                "\"escalate_after_seconds\":{\"A\":1,\"B\":1,\"C\":1,\"D\":1}}");
    s_leads_with_timers(h, 1, 3, "C", 0.5);
    free(lf_h_sql(h, "UPDATE leads SET updated_at = '2026-01-01T00:00:00Z'"
                     " RETURNING 1"));
    lf_h_start(h, LF_H_SCHEDULER, 0);
    /* Reminder and escalation of each of the three leads. */
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM lead_events WHERE type IN"
                            " ('sla_reminder', 'sla_escalation')",
                            "6", 20000),
              "the reminders and escalations were not written");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"
                                  " WHERE updated_at = '2026-01-01T00:00:00Z'"),
                 3, "a reminder or escalation moved updated_at");
    /* The other entries the system writes on its own, as the keep-alive clocks write
     * them. */
    free(lf_h_sql(h,
                  "INSERT INTO lead_events (lead_id, type, actor, data)"
                  " SELECT '00000000-0000-7000-8000-000000000001', t, 'scheduler', '{}'"
                  " FROM unnest(ARRAY['follow_up_reminder', 'follow_up_overdue',"
                  " 'stale_warning', 'digest']) t RETURNING 1"));
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"
                                  " WHERE updated_at = '2026-01-01T00:00:00Z'"),
                 3, "a system notice moved updated_at");
    /* A rep's activity on L1 and a stage move on L2 move theirs, in the same statement
     * as a reminder on L3 (which does not). */
    free(lf_h_sql(h, "INSERT INTO lead_events (lead_id, type, actor, data) VALUES"
                     " ('00000000-0000-7000-8000-000000000001', 'activity', 'wang.fang',"
                     " '{\"seq\": 1, \"activity\": \"call\"}'),"
                     " ('00000000-0000-7000-8000-000000000002', 'stage_changed', "
                     "'wang.fang', '{\"from\": \"new\", \"to\": \"contacted\"}'),"
                     " ('00000000-0000-7000-8000-000000000003', 'sla_reminder', "
                     "'scheduler', '{}') RETURNING 1"));
    char *s = lf_h_sql(h, "SELECT string_agg(right(id::text, 1) || ':' ||"
                          " (updated_at > now() - interval '1 minute'), ',' ORDER BY id)"
                          " FROM leads");
    cr_expect_str_eq(s, "1:true,2:true,3:false");
    free(s);
    /* A reassignment moves it too (the move writes the lead; its 'reassigned' entry). */
    free(lf_h_sql(
        h, "INSERT INTO reps (id, name) VALUES ('zhao.test', 'Zhao Test') RETURNING 1"));
    s = lf_h_sql(h,
                 "SELECT status FROM lf_move_lead("
                 "'00000000-0000-7000-8000-000000000003', 'zhao.test', 'admin', 'assign',"
                 " 'test', NULL, NULL, false, false)");
    cr_expect_str_eq(s, "moved");
    free(s);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"
                                  " WHERE updated_at > now() - interval '1 minute'"),
                 3);
    lf_h_destroy(&h);
}

/* A webhook that takes a second per request and counts the reminders it got. */
typedef struct {
    int fd, port, stop;
    int reminders;
} s_hook_t;

static void *s_hook_main(void *arg) {
    s_hook_t *k = arg;
    while (!k->stop) {
        int c = accept(k->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[8192];
        ssize_t n = recv(c, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            if (strstr(buf, "sla_reminder"))
                __atomic_add_fetch(&k->reminders, 1, __ATOMIC_SEQ_CST);
        }
        sleep(1);
        const char *ok =
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ssize_t w = send(c, ok, strlen(ok), MSG_NOSIGNAL);
        (void)w;
        close(c);
    }
    return NULL;
}

Test(scheduler, a_slow_webhook_does_not_hold_up_firing, .timeout = 120) {
    s_hook_t k = {0};
    k.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(k.fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(k.fd, (struct sockaddr *)&a, &len);
    k.port = ntohs(a.sin_port);
    cr_assert_eq(listen(k.fd, 64), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(k.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_t th;
    pthread_create(&th, NULL, s_hook_main, &k);

    lf_h_t *h = lf_h_new(0, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", k.port);
    lf_h_env(h, "LEADFLOW_WEBHOOK_URL", url);
    lf_h_env(h, "LEADFLOW_NOTIFY_MERGE_MAX", "1"); /* one request per notification */
    s_leads_with_timers(h, 1, 150, "B", 2);
    s_leads_with_timers(h, 151, 150, "B", 5);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) >= 150 FROM notifications", "t", 20000));
    /* Delivering the first 150 takes 150 s; the second 150 are due a few seconds
     * later and must fire all the same, long before that (30 s: a loaded machine). */
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM notifications", "300", 30000),
              "firing waited for the webhook");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM timers WHERE step = 0 AND"
                                  " fired_at > due_at + interval '3 seconds'"),
                 0, "timers fired late behind webhook deliveries");
    cr_expect(lf_h_wait_sql(h,
                            "SELECT count(*) >= 2 FROM notify_deliveries"
                            " WHERE state = 'sent' AND attempts = 1",
                            "t", 20000),
              "nothing was delivered");
    cr_expect_geq(__atomic_load_n(&k.reminders, __ATOMIC_SEQ_CST), 2);
    lf_h_destroy(&h); /* the delivery thread stops between two requests */
    k.stop = 1;
    pthread_join(th, NULL);
    close(k.fd);
}

Test(scheduler, bad_settings_are_refused_with_a_clear_error, .timeout = 30) {
    char cmd[512];
    const char *bin = getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin";
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_TIMER_LANES=9 %s/leadflow-scheduler 2>&1 | grep -q"
             " 'LEADFLOW_TIMER_LANES=\"9\" is not an integer from 0 to 4'",
             bin);
    cr_expect_eq(system(cmd), 0, "a bad lane count was not refused clearly");
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_TIMER_BATCH=0 %s/leadflow-scheduler >/dev/null 2>&1", bin);
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "a zero batch size was accepted");
}

/* The consumer's batch path (lf_timers_on_events): the first-contact SLA of every
 * assignment of a batch is armed with a few statements for the whole batch, and leaves
 * what arming them one by one left: a lead assigned twice keeps the timer of its first
 * assignment and the deadline of its last one; a reassignment to a rep arms round r's
 * timer (step 10r, r = reassignments so far) and moves the lead's deadline; a
 * reassignment to a queue and an assignment without a grade arm nothing. The reports'
 * deadlines (v_lead_outcomes.sla_due_at) are each lead's last assignment's.
 * The stale clocks of the same events: started for a deal in a watched stage (L5),
 * left alone where none runs (L6: the batch skips its statements; the others go event
 * by event), stopped where one ran (L7).
 * All ten events are in the outbox before the scheduler starts, so its first sweep
 * hands them over as one batch. Wall clock, so the deadlines are plain sums. */
/* The first-contact timers: "<lead's last digit>:<step> <due> <escalate_at>
 * <reassign_at>" (times of day, UTC), by lead and step. */
static char *s_sla_timers(lf_h_t *h) {
    return lf_h_sql(
        h, "SELECT string_agg(right(lead_id::text, 1) || ':' || step || ' ' ||"
           " to_char(due_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') || ' ' ||"
           " coalesce(to_char((data->>'escalate_at')::timestamptz AT TIME ZONE 'UTC',"
           " 'HH24:MI:SS.MS'), '-') || ' ' ||"
           " coalesce(to_char((data->>'reassign_at')::timestamptz AT TIME ZONE 'UTC',"
           " 'HH24:MI:SS.MS'), '-'), ', ' ORDER BY lead_id, step)"
           " FROM timers WHERE kind = 'sla_first_contact'");
}

/* The SLA (one minute to first contact, escalation at two, reassignment of B at five)
 * and keep-alive settings of the assignment tests. */
static void s_sla_config(lf_h_t *h) {
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"B\":60,\"C\":60},"
                "\"escalate_after_seconds\":{\"B\":120,\"C\":120},"
                "\"reassign_after_seconds\":{\"B\":300}}");
    lf_h_config(h, "keepalive.json",
                "{\"clock\": \"wall\", \"stale\": {\"thresholds\": {\"contacted\":"
                " \"3d\"}, \"warn_manager_after\": \"1d\", \"recycle_after\": \"1d\","
                " \"cooldown\": \"30d\", \"restart_on\": [\"call\"]}}");
}

Test(scheduler, sla_of_a_batch_of_assignments_as_one_by_one, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    s_sla_config(h);
    free(lf_h_sql(h,
                  "INSERT INTO leads (id, channel, phone, grade, owner, stage,"
                  " assigned_at) SELECT ('0000001a-0000-7000-8000-' || lpad(g::text, 12,"
                  " '0'))::uuid, 'web_form', '139' || lpad(g::text, 8, '0'), 'C',"
                  " 'wang.fang', CASE g WHEN 5 THEN 'contacted' ELSE 'new' END, now()"
                  " FROM generate_series(1, 8) g RETURNING 1"));
    free(lf_h_sql(h, "UPDATE leads SET first_contact_due_at = '2030-01-01T00:00:00Z'"
                     " WHERE id = '0000001a-0000-7000-8000-000000000008' RETURNING 1"));
    free(lf_h_sql(h,
                  "UPDATE leads SET stale_gen = 3, stale_since = '2030-01-01T00:00:00Z'"
                  " WHERE id = '0000001a-0000-7000-8000-000000000007' RETURNING 1"));
    free(lf_h_sql(h, "INSERT INTO assignments (lead_id, reason, kind) VALUES"
                     " ('0000001a-0000-7000-8000-000000000002', 'test', 'reassign')"
                     " RETURNING 1"));
    free(lf_h_sql(
        h,
        "INSERT INTO outbox (event_id, type, lead_id, at, payload)"
        " SELECT gen_random_uuid(), e.type, ('0000001a-0000-7000-8000-' ||"
        " lpad(e.l::text, 12, '0'))::uuid, e.at::timestamptz, e.pl::jsonb FROM (VALUES"
        " (1, 'lead.assigned', 1, '2030-01-07T10:00:00.250Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
        " (2, 'lead.assigned', 2, '2030-01-07T10:00:01Z',"
        "  '{\"grade\":\"B\",\"owner\":\"wang.fang\"}'),"
        " (3, 'lead.assigned', 1, '2030-01-07T10:05:00.250Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
        " (4, 'lead.reassigned', 2, '2030-01-07T10:10:00Z',"
        "  '{\"grade\":\"B\",\"owner\":\"li.ming\"}'),"
        " (5, 'lead.reassigned', 3, '2030-01-07T10:00:00Z', '{\"grade\":\"C\"}'),"
        " (6, 'lead.assigned', 4, '2030-01-07T10:00:00Z', '{\"owner\":\"wang.fang\"}'),"
        " (7, 'lead.assigned', 5, '2030-01-07T10:00:00Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
        " (8, 'lead.assigned', 6, '2030-01-07T10:00:00Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
        " (9, 'lead.assigned', 7, '2030-01-07T10:00:00Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
        " (10, 'lead.assigned', 8, '2030-01-07T10:00:00Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'))"
        " e(n, type, l, at, pl) ORDER BY e.n RETURNING 1"));
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM consumer_acked WHERE consumer = "
                            "'scheduler' AND event_id IN (SELECT id FROM outbox WHERE "
                            "lead_id::text LIKE '0000001a-%')",
                            "10", 30000),
              "the scheduler did not consume the ten events");
    char *s = s_sla_timers(h);
    cr_expect_str_eq(s, "1:0 10:01:00.250 10:03:00.250 -, "
                        "2:0 10:01:01.000 10:03:01.000 10:08:01.000, "
                        "2:10 10:11:00.000 10:13:00.000 10:18:00.000, "
                        "5:0 10:01:00.000 10:03:00.000 -, "
                        "6:0 10:01:00.000 10:03:00.000 -, "
                        "7:0 10:01:00.000 10:03:00.000 -, "
                        "8:0 10:01:00.000 10:03:00.000 -");
    free(s);
    /* The deadlines the SLA reports judge against: each lead's last assignment's (kept
     * in lead_first_contact, not on the lead row). Lead 8 carried a deadline on the lead
     * from before 0047: its new clock replaces it. Leads 3 and 4 armed nothing: the
     * assignment plus the grade's SLA of the configuration ("config"). */
    s = lf_h_sql(
        h, "SELECT string_agg(right(lead_id::text, 1) || ' ' || CASE WHEN"
           " sla_due_at = assigned_at + make_interval(secs => sla_seconds) THEN"
           " 'config' ELSE coalesce(to_char(sla_due_at AT TIME ZONE 'UTC',"
           " 'HH24:MI:SS.MS'), '-') END, ', ' ORDER BY lead_id) FROM v_lead_outcomes");
    cr_expect_str_eq(s, "1 10:06:00.250, 2 10:11:00.000, 3 config, 4 config, "
                        "5 10:01:00.000, 6 10:01:00.000, 7 10:01:00.000, 8 10:01:00.000");
    free(s);
    s = lf_h_sql(h,
                 "SELECT string_agg(right(id::text, 1) || ' ' || to_char("
                 "first_contact_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ', ' ORDER BY"
                 " id) FROM leads WHERE first_contact_due_at IS NOT NULL");
    cr_expect_str_eq(s, "8 2030-01-01", "the clocks wrote the wide lead row");
    free(s);
    s = lf_h_sql(
        h, "SELECT string_agg(right(id::text, 1) || ' ' || stale_gen || ' ' ||"
           " coalesce(to_char(stale_since AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), '-')"
           " || ' ' || (SELECT count(*) FROM timers t WHERE t.lead_id = l.id"
           " AND t.kind = 'stale' AND t.state = 'pending'), ', ' ORDER BY id)"
           " FROM leads l");
    cr_expect_str_eq(s, "1 0 - 0, 2 0 - 0, 3 0 - 0, 4 0 - 0, 5 1 01-07 10:00 3, 6 0 - 0, "
                        "7 4 - 0, 8 0 - 0");
    free(s);
    /* They were armed on the batch path, not event by event after a failed batch. */
    char path[1024], cmd[1200];
    snprintf(path, sizeof path, "%s/scheduler.0.log", lf_h_dir(h));
    snprintf(cmd, sizeof cmd, "grep -q 'handling it event by event' '%s'", path);
    cr_expect_neq(system(cmd), 0, "the batch fell back to event by event");
    lf_h_destroy(&h);
}

/* A test whose scheduler may try an event `attempts` times: five assigned leads of
 * grade C (ids ...3c-...1 to 5) with their lead.assigned events in the outbox, and a
 * session of the test's own (*stuck: the caller rolls it back and destroys it) that
 * holds lead 3 (FOR UPDATE) and never lets go: every scheduler batch holding lead 3's
 * event waits for it in its on_begin hook (the leads of a batch are locked before any
 * event is applied). */
static lf_h_t *s_stuck_lead(const char *attempts, const char *timeout_ms,
                            lf_db_t **stuck_p) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_env(h, "LEADFLOW_CONSUMER_ATTEMPTS", attempts);
    lf_h_env(h, "LEADFLOW_STATEMENT_TIMEOUT_MS", timeout_ms);
    lf_h_env(h, "LEADFLOW_CONSUMER_BACKOFF_MS", "200");
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"C\":3600},"
                "\"escalate_after_seconds\":{\"C\":7200}}");
    free(lf_h_sql(h, "INSERT INTO leads (id, channel, phone, grade, owner, stage,"
                     " assigned_at) SELECT ('0000003c-0000-7000-8000-' || lpad(g::text, "
                     "12, '0'))::uuid, 'web_form', '139' || lpad(g::text, 8, '0'), 'C',"
                     " 'wang.fang', 'new', now() FROM generate_series(1, 5) g"
                     " RETURNING 1"));
    free(lf_h_sql(h, "INSERT INTO outbox (event_id, type, lead_id, payload)"
                     " SELECT gen_random_uuid(), 'lead.assigned', ('0000003c-0000-7000-"
                     "8000-' || lpad(g::text, 12, '0'))::uuid,"
                     " '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'"
                     " FROM generate_series(1, 5) g ORDER BY g RETURNING 1"));
    lf_db_t *stuck = lf_db_connect(lf_h_db_url(h), "stuck");
    cr_assert(!stuck->err, "%s", stuck->errstr);
    cr_assert(lf_db_cmd(stuck, "SET idle_in_transaction_session_timeout = 0", 0, NULL) >=
              0);
    cr_assert(lf_db_begin(stuck) >= 0);
    PGresult *res = lf_db_exec(stuck,
                               "SELECT 1 FROM leads WHERE id ="
                               " '0000003c-0000-7000-8000-000000000003' FOR UPDATE",
                               0, NULL);
    cr_assert(res && PQntuples(res) == 1, "%s", stuck->errstr);
    PQclear(res);
    *stuck_p = stuck;
    return h;
}

static const char *const s_stuck_timed =
    "SELECT string_agg(right(lead_id::text, 1), ',' ORDER BY lead_id) FROM timers"
    " WHERE kind = 'sla_first_contact' AND lead_id::text LIKE '0000003c-%'";

/* Waits up to wait_ms for one event to be parked, expects it to be `expect` ("type
 * attempts sqlstate lead", the lead by its last digit, "-" for no SQLSTATE), and the
 * four other leads to be timed once. */
static void s_expect_parked(lf_h_t *h, int wait_ms, const char *expect) {
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM consumer_parked", "1", wait_ms),
              "lead 3's event is not parked");
    char *s = lf_h_sql(h, "SELECT k.type || ' ' || attempts || ' ' || coalesce(sqlstate,"
                          " '-') || ' ' || right(o.lead_id::text, 1) FROM consumer_parked"
                          " k JOIN outbox o ON o.id = k.event_id");
    cr_expect_str_eq(s, expect);
    free(s);
    cr_expect(lf_h_wait_sql(h, s_stuck_timed, "1,2,4,5", 20000),
              "the events beside it are applied once");
}

/* Kills the scheduler (kill -9) while its consumer's backend waits for the stuck
 * lead. The backend notices that its client is gone within a second
 * (client_connection_check_interval, common/db.c) and ends, as a crashed service's
 * would. */
static void s_kill_while_waiting(lf_h_t *h) {
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM pg_stat_activity WHERE usename ="
                            " 'leadflow_scheduler' AND wait_event_type = 'Lock'",
                            "1", 20000),
              "the scheduler does not wait for the stuck lead");
    lf_h_stop(h, LF_H_SCHEDULER, 0, 1);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM pg_stat_activity WHERE usename ="
                            " 'leadflow_scheduler'",
                            "0", 20000));
}

/* An event that takes its consumer down with it at every try - here the scheduler is
 * killed (kill -9) each time it handles lead 3's assignment - is tried a bounded
 * number of times across restarts, then parked without another try, and the events
 * beside it are applied once. The tries are counted in PostgreSQL: after the first
 * kill the restarted scheduler counts the try that was cut short for every event that
 * may have been in flight, tries the events that have a counted try one at a time,
 * counting each try before it begins, and parks lead 3's after 3 (the setting). The
 * old scheduler counted tries in memory: every restart started again at zero, and
 * lead 3's batch was tried for ever. */
/* The assignments arrive over ZeroMQ (the test plays the router on its PUB port; the
 * sweep is held off), where the scheduler reads of a lead.assigned only its seq, type,
 * lead, "at", grade and owner (lf/event_head.h): the deadlines and the stale clock
 * count from each event's "at", minutes before the scheduler saw it, as when the
 * sweep hands it whole; a lead.reassigned arrives whole. */
Test(scheduler, assignments_read_light_from_zeromq_count_from_their_time, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_env(h, "LEADFLOW_SWEEP_MS", "600000");
    s_sla_config(h);
    free(lf_h_sql(h,
                  "INSERT INTO leads (id, channel, phone, grade, owner, stage,"
                  " assigned_at) SELECT ('0000002a-0000-7000-8000-' || lpad(g::text, 12,"
                  " '0'))::uuid, 'web_form', '139' || lpad(g::text, 8, '0'), 'C',"
                  " 'wang.fang', CASE g WHEN 3 THEN 'contacted' ELSE 'new' END, now()"
                  " FROM generate_series(1, 3) g RETURNING 1"));
    free(lf_h_sql(h, "INSERT INTO assignments (lead_id, reason, kind) VALUES"
                     " ('0000002a-0000-7000-8000-000000000002', 'test', 'reassign')"
                     " RETURNING 1"));
    void *ctx = zmq_ctx_new(), *pub = zmq_socket(ctx, ZMQ_PUB);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", lf_h_zmq_port(h, LF_H_ROUTER));
    cr_assert_eq(zmq_bind(pub, ep), 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    usleep(500 * 1000); /* its subscription reaches this publisher */
    PGconn *pg = PQconnectdb(lf_h_db_url(h));
    PGresult *r = PQexec(
        pg,
        "WITH e AS (INSERT INTO outbox (event_id, type, lead_id, at, payload)"
        " SELECT gen_random_uuid(), e.type, ('0000002a-0000-7000-8000-' ||"
        " lpad(e.l::text, 12, '0'))::uuid, e.at::timestamptz, e.pl::jsonb FROM (VALUES"
        " (1, 'lead.assigned', 1, '2030-01-07T10:00:00.250Z',"
        "  '{\"grade\":\"C\",\"score\":40,\"owner\":\"wang.fang\",\"team\":\"x\"}'),"
        " (2, 'lead.assigned', 2, '2030-01-07T10:00:01Z',"
        "  '{\"grade\":\"B\",\"owner\":\"wang.fang\",\"queue\":null}'),"
        " (3, 'lead.reassigned', 2, '2030-01-07T10:10:00Z',"
        "  '{\"grade\":\"B\",\"owner\":\"li.ming\"}'),"
        " (4, 'lead.assigned', 3, '2030-01-07T10:00:00Z',"
        "  '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'))"
        " e(n, type, l, at, pl) ORDER BY e.n RETURNING *)"
        " SELECT type, lf_envelope(id, event_id, type, lead_id, at, version,"
        " payload)::text FROM e ORDER BY id");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_eq(PQntuples(r), 4);
    for (int i = 0; i < PQntuples(r); i++) {
        zmq_send(pub, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)), ZMQ_SNDMORE);
        zmq_send(pub, PQgetvalue(r, i, 1), strlen(PQgetvalue(r, i, 1)), 0);
    }
    PQclear(r);
    PQfinish(pg);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM consumer_acked WHERE consumer = "
                            "'scheduler' AND event_id IN (SELECT id FROM outbox WHERE "
                            "lead_id::text LIKE '0000002a-%')",
                            "4", 30000),
              "the scheduler did not take the four events from the socket");
    char *s = s_sla_timers(h);
    cr_expect_str_eq(s, "1:0 10:01:00.250 10:03:00.250 -, "
                        "2:0 10:01:01.000 10:03:01.000 10:08:01.000, "
                        "2:10 10:11:00.000 10:13:00.000 10:18:00.000, "
                        "3:0 10:01:00.000 10:03:00.000 -");
    free(s);
    s = lf_h_sql(h, "SELECT string_agg(right(id::text, 1) || ' ' || stale_gen || ' ' ||"
                    " coalesce(to_char(stale_since AT TIME ZONE 'UTC', 'MM-DD HH24:MI'),"
                    " '-'), ', ' ORDER BY id) FROM leads");
    cr_expect_str_eq(s, "1 0 -, 2 0 -, 3 1 01-07 10:00",
                     "the contacted lead's stale clock starts at its event's time");
    free(s);
    char path[1024];
    snprintf(path, sizeof path, "%s/scheduler.0.log", lf_h_dir(h));
    cr_expect_eq(lf_h_file_count(path, 0, "sweep recovered events"), 0,
                 "the events came from the outbox, not the socket");
    zmq_close(pub);
    zmq_ctx_term(ctx);
    lf_h_destroy(&h);
}

Test(scheduler, an_event_that_kills_the_scheduler_at_every_try_is_parked_across_restarts,
     .timeout = 150) {
    lf_db_t *stuck;
    /* No try may end by the statement timeout before the test kills it, however
     * slowly the machine runs: at 15 s, under the whole suite's load, one did (the
     * event was parked with SQLSTATE 57014 instead of as killed). */
    lf_h_t *h = s_stuck_lead("3", "600000", &stuck);
    for (int kill = 1; kill <= 3; kill++) {
        lf_h_start(h, LF_H_SCHEDULER, 0);
        s_kill_while_waiting(h);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_parked"), 0,
                 "nothing parked while tries are left");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    s_expect_parked(h, 20000, "lead.assigned 3 - 3");
    cr_expect(lf_h_wait_sql(h, "SELECT count(*) FROM consumer_attempts", "0", 20000),
              "no count is left once the events are done");
    char log[600];
    snprintf(log, sizeof log, "%s/scheduler.0.log", lf_h_dir(h));
    cr_expect_geq(
        lf_h_file_count(log, 0, "started after an unclean exit consumer=scheduler"), 1);
    cr_expect_eq(lf_h_file_count(log, 0, "event parked consumer=scheduler "), 1);
    /* The stuck session ends; a replay gives lead 3 its timer, once. */
    lf_db_rollback(stuck);
    lf_db_destroy(&stuck);
    free(lf_h_sql(h,
                  "UPDATE consumer_parked SET replay_requested_at = now() RETURNING 1"));
    cr_expect(lf_h_wait_sql(h, s_stuck_timed, "1,2,3,4,5", 20000),
              "lead 3 is timed on replay");
    lf_h_stop(h, LF_H_SCHEDULER, 0, 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_instances"), 0,
                 "a clean exit leaves no instance behind");
    lf_h_destroy(&h);
}

/* A batch that fails as a whole - a lead held by a stuck session makes the lead locks
 * taken before any event time out (LEADFLOW_STATEMENT_TIMEOUT_MS, 3 s here) - is not
 * tried again as a whole for ever: its events count a try and go one at a time, the
 * others are applied, and the one that waits for the stuck lead is parked after its tries
 * (2 here), with the statement timeout's SQLSTATE. The old consumer rolled the batch back
 * at every try, without a bound: no lead of the batch was ever timed. */
Test(scheduler, a_batch_blocked_by_a_stuck_lead_falls_back_to_one_event_at_a_time,
     .timeout = 150) {
    lf_db_t *stuck;
    lf_h_t *h = s_stuck_lead("2", "3000", &stuck);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    s_expect_parked(h, 60000, "lead.assigned 2 57014 3");
    char log[600];
    snprintf(log, sizeof log, "%s/scheduler.0.log", lf_h_dir(h));
    cr_expect_eq(lf_h_file_count(log, 0,
                                 "tried again one event at a time consumer="
                                 "scheduler events=5"),
                 1);
    lf_db_rollback(stuck);
    lf_db_destroy(&stuck);
    lf_h_destroy(&h);
}

/* One bad event in a batch, two kinds of bad. Lead 3's assignment makes the SLA
 * statement time out every time (a trigger raises SQLSTATE 57014, as a statement that
 * never finishes in time would), and an activity whose next_action_at is hostile text
 * with a phone number in it is refused by the handler (not an RFC 3339 time; it used
 * to reach a cast whose error, 22007, quoted the text). Both are in the scheduler's
 * first batch: the batch path fails, the batch falls back to event by event, the good
 * assignments get their timer once, the activity is parked at once and lead 3's
 * assignment after 3 tries with a pause; each is logged once, without the phone
 * number (in PostgreSQL's log neither), and counted in /metrics. Once the cause is
 * gone, a replay gives lead 3 its timer, once, and the activity, still bad, stays
 * parked. The old scheduler rolled the batch back for ever (no timer for anyone) and
 * logged the phone number. */
Test(scheduler, a_bad_event_in_a_batch_is_parked_and_the_rest_applied_once,
     .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_config(h, "sla.json",
                "{\"first_contact_seconds\":{\"C\":3600},"
                "\"escalate_after_seconds\":{\"C\":7200}}");
    lf_h_env(h, "LEADFLOW_CONSUMER_ATTEMPTS", "3");
    lf_h_env(h, "LEADFLOW_CONSUMER_BACKOFF_MS", "200");
    free(lf_h_sql(h, "INSERT INTO leads (id, channel, phone, grade, owner, stage,"
                     " assigned_at) SELECT ('0000002b-0000-7000-8000-' || lpad(g::text, "
                     "12, '0'))::uuid, 'web_form', '139' || lpad(g::text, 8, '0'), 'C',"
                     " 'wang.fang', 'new', now() FROM generate_series(1, 5) g"
                     " RETURNING 1"));
    free(lf_h_sql(h, "CREATE FUNCTION test_time_out() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$ BEGIN IF NEW.lead_id = '0000002b-0000-7000-8000-000000000003'"
                     " THEN RAISE EXCEPTION 'canceling statement due to statement"
                     " timeout' USING ERRCODE = '57014'; END IF; RETURN NEW; END $$"));
    free(lf_h_sql(h, "CREATE TRIGGER test_time_out BEFORE INSERT ON timers"
                     " FOR EACH ROW EXECUTE FUNCTION test_time_out()"));
    free(lf_h_sql(h,
                  "INSERT INTO outbox (event_id, type, lead_id, payload)"
                  " SELECT gen_random_uuid(), e.type, ('0000002b-0000-7000-8000-' ||"
                  " lpad(e.l::text, 12, '0'))::uuid, e.pl::jsonb FROM (VALUES"
                  " (1, 'lead.assigned', 1, '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
                  " (2, 'lead.assigned', 2, '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
                  " (3, 'lead.assigned', 3, '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
                  " (4, 'activity.logged', 2, '{\"kind\":\"call\",\"seq\":1,"
                  "   \"next_action_at\":\"call me on 13912345678 tomorrow\"}'),"
                  " (5, 'lead.assigned', 4, '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'),"
                  " (6, 'lead.assigned', 5, '{\"grade\":\"C\",\"owner\":\"wang.fang\"}'))"
                  " e(n, type, l, pl) ORDER BY e.n RETURNING 1"));
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM consumer_parked", "2", 30000),
              "the two bad events are parked");
    const char *timed = "SELECT string_agg(right(lead_id::text, 1), ',' ORDER BY lead_id)"
                        " FROM timers WHERE kind = 'sla_first_contact'";
    char *s = lf_h_sql(h, timed);
    cr_expect_str_eq(s, "1,2,4,5", "the good assignments are timed, once each");
    free(s);
    s = lf_h_sql(h,
                 "SELECT string_agg(type || ' ' || attempts || ' ' ||"
                 " coalesce(sqlstate, '-'), ', ' ORDER BY event_id) FROM consumer_parked"
                 " WHERE consumer = 'scheduler'");
    cr_expect_str_eq(s, "lead.assigned 3 57014, activity.logged 1 -");
    free(s);
    char log[600];
    snprintf(log, sizeof log, "%s/scheduler.0.log", lf_h_dir(h));
    cr_expect_geq(
        lf_h_file_count(log, 0, "handling it event by event consumer=scheduler "), 1,
        "the batch path fell back to event by event");
    cr_expect_eq(lf_h_file_count(log, 0, "event parked consumer=scheduler "), 2,
                 "each parked event is logged once");
    cr_expect_eq(lf_h_file_count(log, 0, "13912345678"), 0,
                 "the log has the phone number");
    lf_h_start(h, LF_H_INTAKE, 0);
    char *body = NULL;
    cr_assert_eq(lf_h_http(h, "GET", "/metrics", NULL, NULL, 0, &body), 200);
    cr_expect(strstr(body, "leadflow_consumer_parked_events{consumer=\"scheduler\"} 2\n"),
              "%s", body);
    free(body);
    /* The operator removes the cause and asks for both to be replayed. */
    free(lf_h_sql(h, "DROP TRIGGER test_time_out ON timers"));
    free(lf_h_sql(h, "UPDATE consumer_parked SET replay_requested_at = now()"
                     " WHERE consumer = 'scheduler' RETURNING 1"));
    cr_expect(lf_h_wait_sql(h, timed, "1,2,3,4,5", 20000), "lead 3 is timed on replay");
    cr_expect(lf_h_wait_sql(h,
                            "SELECT string_agg(type || ' ' || attempts || ' ' ||"
                            " (replay_requested_at IS NULL), ', ') FROM consumer_parked",
                            "activity.logged 2 true", 20000),
              "the activity, still bad, stays parked");
    cr_expect_eq(lf_h_file_count(log, 0, "parked event replayed consumer=scheduler "), 1);
    /* A restart sweeps from the cursor: nothing is applied twice. */
    lf_h_stop(h, LF_H_SCHEDULER, 0, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    usleep(1500 * 1000);
    s = lf_h_sql(h, timed);
    cr_expect_str_eq(s, "1,2,3,4,5", "each lead timed once after the restart");
    free(s);
    cr_expect_eq(lf_h_file_count(log, 0, "13912345678"), 0);
    const char *pglog = getenv("LF_TEST_PG_LOG"); /* set by scripts/test.sh */
    if (pglog)
        cr_expect_eq(lf_h_file_count(pglog, 0, "13912345678"), 0,
                     "PostgreSQL's log has the phone number");
    body = NULL;
    cr_assert_eq(lf_h_http(h, "GET", "/metrics", NULL, NULL, 0, &body), 200);
    cr_expect(strstr(body, "leadflow_consumer_parked_events{consumer=\"scheduler\"} 1\n"),
              "%s", body);
    free(body);
    lf_h_destroy(&h);
}
