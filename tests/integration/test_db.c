/* The libpq wrapper against a real PostgreSQL: reconnecting, and never inside a
 * transaction. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "lf/db.h"

TestSuite(db, .fini = lf_h_fini);

static void s_kill_backend(lf_h_t *h, lf_db_t *db) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(db->conn));
    free(lf_h_sql(h, sql));
}

/* A connection that breaks outside a transaction is re-established by the next
 * call. */
Test(db, a_broken_connection_is_reestablished, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    s_kill_backend(h, db);
    cr_expect_lt(lf_db_cmd(db, "SELECT 1", 0, NULL), 0, "the dead connection fails once");
    cr_expect_geq(lf_db_cmd(db, "SELECT 1", 0, NULL), 0, "then reconnects: %s",
                  db->errstr);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* A connection that breaks inside a transaction is not replaced silently: the
 * statements after it and the COMMIT fail, nothing of the transaction is stored, and
 * after the rollback the handle works again. The old code reconnected at the next
 * statement, ran the rest of the transaction statement by statement outside any
 * transaction and let COMMIT "succeed" (with only half of the work stored). */
Test(db, a_connection_lost_inside_a_transaction_fails_until_rolled_back, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    free(lf_h_sql(h, "CREATE TABLE t (v text)"));
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(lf_db_begin(db), 0);
    cr_assert_eq(lf_db_cmd(db, "INSERT INTO t VALUES ('first')", 0, NULL), 1);
    s_kill_backend(h, db);
    cr_expect_lt(lf_db_cmd(db, "INSERT INTO t VALUES ('second')", 0, NULL), 0);
    cr_expect_lt(lf_db_cmd(db, "INSERT INTO t VALUES ('third')", 0, NULL), 0,
                 "a statement after the break ran on a new connection");
    cr_expect_lt(lf_db_commit(db), 0, "COMMIT of a lost transaction succeeded");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM t"), 0,
                 "part of the lost transaction was stored");
    lf_db_rollback(db);
    cr_expect_eq(lf_db_cmd(db, "INSERT INTO t VALUES ('after')", 0, NULL), 1,
                 "the handle works again after the rollback: %s", db->errstr);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM t"), 1);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* COMMIT of a transaction in which a statement failed rolls back; lf_db_commit says
 * so instead of returning success. */
Test(db, commit_after_a_failed_statement_reports_failure, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    free(lf_h_sql(h, "CREATE TABLE t (v text)"));
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(lf_db_begin(db), 0);
    cr_assert_eq(lf_db_cmd(db, "INSERT INTO t VALUES ('x')", 0, NULL), 1);
    cr_assert_lt(lf_db_cmd(db, "SELECT 1/0", 0, NULL), 0);
    cr_expect_lt(lf_db_commit(db), 0, "a rolled-back transaction reported committed");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM t"), 0);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Expects the settings common/db.c gives every connection, with statement_timeout as
 * given (as PostgreSQL shows it). */
static void s_expect_session(lf_db_t *db, const char *statement_timeout) {
    PGresult *r = lf_db_exec(db,
                             "SELECT current_setting('statement_timeout'), "
                             "current_setting('idle_in_transaction_session_timeout'), "
                             "current_setting('client_connection_check_interval'), "
                             "current_setting('jit')",
                             0, NULL);
    cr_assert(r, "%s", db->errstr);
    cr_expect_str_eq(PQgetvalue(r, 0, 0), statement_timeout);
    cr_expect_str_eq(PQgetvalue(r, 0, 1), "10s");
    cr_expect_str_eq(PQgetvalue(r, 0, 2), "1s");
    /* No JIT compilation: it cost the router's pool tick 0.9 s a call (common/db.c). */
    cr_expect_str_eq(PQgetvalue(r, 0, 3), "off");
    PQclear(r);
}

/* A transaction left idle is ended by the server (idle_in_transaction_session_timeout),
 * so it cannot hold the consumers' cursors for ever. */
Test(db, sessions_carry_the_timeouts_and_no_jit, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    s_expect_session(db, "15s");
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* LEADFLOW_STATEMENT_TIMEOUT_MS (lf_db_set_statement_timeout) sets the timeout of the
 * connections made after it, the other settings unchanged; a statement that outlives it
 * is cancelled with SQLSTATE 57014. */
Test(db, the_statement_timeout_is_a_setting, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_set_statement_timeout(250);
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    lf_db_set_statement_timeout(15000);
    s_expect_session(db, "250ms");
    cr_expect_lt(lf_db_cmd(db, "SELECT pg_sleep(2)", 0, NULL), 0);
    cr_expect(strstr(db->errstr, "statement timeout") != NULL, "%s", db->errstr);
    lf_db_t *later = lf_db_connect(lf_h_db_url(h), "test");
    s_expect_session(later, "15s"); /* a later connection keeps its own */
    lf_db_destroy(&later);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Rows of table t that this session's statements read by sequential scans, so far in
 * its open transaction and in the transactions it has not reported yet. */
static long s_seq_read(lf_db_t *db) {
    PGresult *r =
        lf_db_exec(db,
                   "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables"
                   " WHERE relname = 't'",
                   0, NULL);
    cr_assert(r, "%s", db->errstr);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* What one call of the prepared lookup reads of t by sequential scans, inside a
 * transaction (where nothing is reported, so the difference is the call's). */
static long s_lookup_reads(lf_db_t *db) {
    cr_assert_eq(lf_db_begin(db), 0, "%s", db->errstr);
    long before = s_seq_read(db);
    const char *p[] = {"{3,7,11}"};
    PGresult *r = lf_db_exec_prepared(
        db, "t_lookup", "SELECT id FROM t WHERE id = ANY($1::int[]) ORDER BY id", 1, p);
    cr_assert(r, "%s", db->errstr);
    cr_assert_eq(PQntuples(r), 3);
    PQclear(r);
    long read = s_seq_read(db) - before;
    lf_db_rollback(db);
    return read;
}

/* A prepared statement first run on a table of a few rows (analyzed then, as autovacuum
 * does after the first 50 rows of a new table) keeps the generic plan PostgreSQL makes
 * for it (a sequential scan: the table is one page) and reads the whole table at every
 * call once it has grown, until the next ANALYZE replans it; the
 * router's batches on a new installation spent 3-5 times their usual CPU that way
 * (docs/benchmarks.md). lf_db_connect_custom_plans plans at every call with the
 * table's present size: an index probe once the table is large. */
Test(db, custom_plans_follow_a_table_that_grew, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    free(lf_h_sql(h, "CREATE TABLE t (id int PRIMARY KEY, v text) WITH"
                     " (autovacuum_enabled = off); INSERT INTO t SELECT g, 'v' FROM"
                     " generate_series(1, 20) g; ANALYZE t"));
    lf_db_t *kept = lf_db_connect(lf_h_db_url(h), "test-generic");
    lf_db_t *custom = lf_db_connect_custom_plans(lf_h_db_url(h), "test-custom");
    for (int i = 0; i < 8; i++) { /* past the five calls before a generic plan */
        s_lookup_reads(kept);
        s_lookup_reads(custom);
    }
    free(lf_h_sql(h, "INSERT INTO t SELECT g, 'v' FROM generate_series(21, 50000) g"));
    long generic = s_lookup_reads(kept), planned = s_lookup_reads(custom);
    cr_expect_gt(generic, 40000, "the kept plan scans the grown table (%ld rows read)",
                 generic);
    cr_expect_eq(planned, 0, "the custom plan read %ld rows sequentially", planned);
    lf_db_destroy(&custom);
    lf_db_destroy(&kept);
    lf_h_destroy(&h);
}

/* Intake's batch function plans its statements once per connection (the generic plan):
 * with the default plan_cache_mode, a batch of a few leads made PostgreSQL plan the big
 * statement again at every call, 2-3 ms of CPU for one lead (docs/benchmarks.md). */
Test(db, intake_commit_keeps_one_generic_plan, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    char *cfg = lf_h_sql(h, "SELECT array_to_string(proconfig, ' ') FROM pg_proc "
                            "WHERE proname = 'lf_intake_commit'");
    cr_assert(cfg);
    cr_expect(strstr(cfg, "plan_cache_mode=force_generic_plan"), "proconfig: %s", cfg);
    cr_expect(strstr(cfg, "enable_seqscan=off"), "proconfig: %s", cfg);
    free(cfg);
    lf_h_destroy(&h);
}

static void s_collect_notice(void *arg, const char *msg) {
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0, add = strlen(msg);
    char *grown = realloc(*buf, old + add + 1);
    cr_assert(grown);
    memcpy(grown + old, msg, add + 1);
    *buf = grown;
}

/* One intake batch of one lead (phone and e-mail) through lf_intake_commit; returns the
 * status of its row. */
static char *s_intake_one(PGconn *c, const char *id, const char *phone,
                          const char *email) {
    const char *p[] = {id, phone, email};
    PGresult *r = PQexecParams(
        c,
        "SELECT out_status FROM lf_intake_commit(ARRAY[$1::uuid], ARRAY['lead'],"
        " ARRAY['api'], NULL, NULL, NULL, ARRAY[$3::text], ARRAY[$2::text], NULL, NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL, NULL)",
        3, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1);
    char *status = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return status;
}

/* A lead's phone and e-mail are indexed once (0046): leads marked intake_open in the
 * unique indexes of 0043, every other lead in leads_phone_unmarked/_email_unmarked, and
 * intake's repeat-inquiry lookup probes both halves by index (its plans, from
 * auto_explain, name the four indexes and scan no table). Before 0046 a lead intake made
 * had its phone and e-mail in leads_phone/leads_email too: two index entries more per
 * insert and per routed lead (docs/benchmarks.md, "The cost of a lead row"). */
Test(db, phone_and_email_are_indexed_once_and_intake_probes_both_halves, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    char *idx = lf_h_sql(h, "SELECT string_agg(indexname, ' ' ORDER BY indexname)"
                            " FROM pg_indexes WHERE tablename = 'leads'"
                            " AND indexdef ~ '\\((phone|email)\\)'");
    cr_assert(idx);
    cr_expect_str_eq(
        idx, "leads_email_unmarked leads_intake_open_email leads_intake_open_phone"
             " leads_phone_unmarked");
    free(idx);
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    char *plans = calloc(1, 1);
    PQsetNoticeProcessor(c, s_collect_notice, &plans);
    PGresult *r = PQexec(c, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                            " SET auto_explain.log_nested_statements = on;"
                            " SET auto_explain.log_level = notice;"
                            " SET client_min_messages = notice");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    char *st = s_intake_one(c, "0190aaaa-0000-7000-8000-000000000001", "+8613800138000",
                            "wf@example.com");
    cr_expect_str_eq(st, "created");
    free(st);
    /* The same phone again: merged into the marked lead. */
    st = s_intake_one(c, "0190aaaa-0000-7000-8000-000000000002", "+8613800138000",
                      "other@example.com");
    cr_expect_str_eq(st, "merged");
    free(st);
    /* Won, then reopened: no longer marked, found through the other half. */
    free(lf_h_sql(h, "UPDATE leads SET stage = 'won' WHERE phone = '+8613800138000'"));
    free(lf_h_sql(h, "UPDATE leads SET stage = 'new' WHERE phone = '+8613800138000'"));
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE intake_open"), 0);
    st = s_intake_one(c, "0190aaaa-0000-7000-8000-000000000003", "+8613900139000",
                      "wf@example.com");
    cr_expect_str_eq(st, "merged", "the reopened lead is found by its e-mail");
    free(st);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 1);
    for (const char *const *ix =
             (const char *const[]){"leads_phone_unmarked", "leads_email_unmarked",
                                   "leads_intake_open_phone", "leads_intake_open_email",
                                   NULL};
         *ix; ix++)
        cr_expect(strstr(plans, *ix), "no probe of %s in:\n%s", *ix, plans);
    cr_expect(!strstr(plans, "Seq Scan on leads"), "a scan of leads:\n%s", plans);
    free(plans);
    PQfinish(c);
    lf_h_destroy(&h);
}

/* lf_intake_commit(ids, kinds, emails, phones, keys, calls): one batch, the other
 * columns NULL; returns "pos:status:lead" per result row, sorted, in one string. */
static char *s_intake_batch(PGconn *c, const char *ids, const char *kinds,
                            const char *emails, const char *phones, const char *keys,
                            const char *calls) {
    const char *p[] = {ids, kinds, emails, phones, keys, calls};
    PGresult *r = PQexecParams(
        c,
        "SELECT string_agg(coalesce(out_pos::text, '-') || ':' || out_status || ':' ||"
        " out_lead, ' ' ORDER BY out_pos NULLS FIRST, out_lead) FROM lf_intake_commit("
        " $1::uuid[], $2::text[], array_fill('api'::text, "
        "ARRAY[cardinality($1::uuid[])]),"
        " NULL, NULL, NULL, $3::text[], $4::text[], NULL, NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, $5::text[], $6::jsonb[], NULL, NULL, NULL,"
        " NULL)",
        6, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    char *out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* The ids of new leads' events are drawn by intake (p_event_id, the committer's
 * arrays: one per row), not by PostgreSQL, whose gen_random_uuid() costs a backend
 * several microseconds a call (OpenSSL 3's generator; docs/benchmarks.md, "Intake,
 * sixth pass"). Each lead.created event, of the first pass and of the next, takes one
 * of the ids given, each once, and the answer names the event stored; a merged inquiry's
 * event (rare) still gets an id drawn by PostgreSQL, and so does every event of a caller
 * of the old 26-argument form. */
Test(db, new_leads_events_carry_the_ids_the_caller_drew, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    /* The batch's answer is kept in a table, then per result row: its lead's last
     * digit, status, and whether its event is that lead's outbox row with an id among
     * those given (a statement does not see what the function it calls wrote). */
    const char *sql =
        "CREATE TEMP TABLE ans AS SELECT * FROM lf_intake_commit("
        " $1::uuid[], $2::text[], array_fill('api'::text, "
        "ARRAY[cardinality($1::uuid[])]),"
        " NULL, NULL, NULL, $3::text[], $4::text[], NULL, NULL, NULL, NULL, NULL, NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL, $5::jsonb[], NULL, NULL, NULL, NULL,"
        " $6::uuid[])";
    const char *check =
        "SELECT string_agg(right(r.out_lead, 1) || ':' || r.out_status || ':' ||"
        " coalesce((SELECT CASE WHEN o.event_id = ANY ($1::uuid[]) THEN 'given'"
        " ELSE 'drawn' END FROM outbox o WHERE o.event_id::text = r.out_event"
        " AND o.lead_id::text = r.out_lead AND o.id = r.out_seq), 'none'), ' '"
        " ORDER BY r.out_lead, r.out_status) FROM ans r";
    /* Two new people. */
    const char *p1[] = {
        "{0190cccc-0000-7000-8000-000000000001,0190cccc-0000-7000-8000-000000000002}",
        "{lead,lead}",
        "{a@example.com,b@example.com}",
        "{+8613800000001,+8613800000002}",
        "{NULL,NULL}",
        "{0190eeee-0000-4000-8000-0000000000e1,0190eeee-0000-4000-8000-0000000000e2}"};
    PGresult *r = PQexecParams(c, sql, 6, NULL, p1, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexecParams(c, check, 1, NULL, p1 + 5, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_expect_str_eq(PQgetvalue(r, 0, 0), "1:created:given 2:created:given");
    PQclear(r);
    PQclear(PQexec(c, "DROP TABLE ans"));
    /* A repeat inquiry of the first and a new call (both decided by the next pass), a
     * new person (the first pass). */
    const char *p2[] = {
        "{0190cccc-0000-7000-8000-000000000003,0190cccc-0000-7000-8000-000000000004,"
        "0190cccc-0000-7000-8000-000000000005}",
        "{lead,call,lead}",
        "{a@example.com,NULL,c@example.com}",
        "{+8613800000009,+8613800000004,+8613800000005}",
        "{NULL,\"{\\\"call_sid\\\": \\\"CA9\\\"}\",NULL}",
        "{0190eeee-0000-4000-8000-0000000000e3,0190eeee-0000-4000-8000-0000000000e4,"
        "0190eeee-0000-4000-8000-0000000000e5}"};
    r = PQexecParams(c, sql, 6, NULL, p2, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexecParams(c, check, 1, NULL, p2 + 5, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_expect_str_eq(PQgetvalue(r, 0, 0),
                     "1:merged:drawn 4:created:given 5:created:given");
    PQclear(r);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM outbox WHERE event_id::text LIKE"
                                  " '0190eeee-0000-4000-8000-0000000000e%'"),
                 4, "four of the five ids given, each once");
    /* The 26-argument form: its events get ids all the same. */
    char *st = s_intake_one(c, "0190cccc-0000-7000-8000-000000000006", "+8613800000006",
                            "f@example.com");
    cr_expect_str_eq(st, "created");
    free(st);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT event_id) FROM outbox"), 6);
    PQfinish(c);
    lf_h_destroy(&h);
}

/* A batch of new people is stored by a statement that sets up none of the merge's,
 * the retry's or the call's work (no insert into lead_inquiries in its plans, from
 * auto_explain; the old function's one statement had it in every batch), and a batch
 * mixing a new person, a repeat inquiry, a retry and a new call still gets each its
 * answer and rows: the rows that are not new people are decided by the whole statement
 * in the function's next pass. */
Test(db, a_batch_of_new_people_skips_the_merge_and_a_mixed_batch_is_decided_whole,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    char *plans = calloc(1, 1);
    PQsetNoticeProcessor(c, s_collect_notice, &plans);
    PGresult *r = PQexec(c, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                            " SET auto_explain.log_nested_statements = on;"
                            " SET auto_explain.log_level = notice;"
                            " SET client_min_messages = notice");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    char *out = s_intake_batch(
        c, "{0190bbbb-0000-7000-8000-000000000001,0190bbbb-0000-7000-8000-000000000002}",
        "{lead,lead}", "{a@example.com,b@example.com}", "{+8613800000001,+8613800000002}",
        "{NULL,k1}", "{NULL,NULL}");
    cr_expect_str_eq(out, "-:created:0190bbbb-0000-7000-8000-000000000001 "
                          "-:created:0190bbbb-0000-7000-8000-000000000002");
    free(out);
    cr_expect(strstr(plans, "Insert on leads"), "no insert of leads in:\n%s", plans);
    cr_expect(!strstr(plans, "Insert on lead_inquiries"),
              "a batch of new people set up the merge:\n%s", plans);
    /* Their phones and e-mails are checked once, by the insert's ON CONFLICT against
     * the unique indexes of the leads marked intake_open, not probed before it too. */
    cr_expect(!strstr(plans, "Index Scan using leads_intake_open_phone") &&
                  !strstr(plans, "Index Only Scan using leads_intake_open_phone") &&
                  !strstr(plans, "Index Scan using leads_intake_open_email") &&
                  !strstr(plans, "Index Only Scan using leads_intake_open_email"),
              "a batch of new people probed the marked leads:\n%s", plans);
    cr_expect(strstr(plans, "leads_intake_open_phone"), "no arbiter index in:\n%s",
              plans);
    plans[0] = '\0';
    /* A new person, the first lead's phone again, the second's key again, a new call. */
    out = s_intake_batch(
        c,
        "{0190bbbb-0000-7000-8000-000000000003,0190bbbb-0000-7000-8000-000000000004,"
        "0190bbbb-0000-7000-8000-000000000005,0190bbbb-0000-7000-8000-000000000006}",
        "{lead,lead,lead,call}", "{c@example.com,d@example.com,e@example.com,NULL}",
        "{+8613800000003,+8613800000001,+8613800000005,+8613800000006}",
        "{NULL,NULL,k1,NULL}", "{NULL,NULL,NULL,\"{\\\"call_sid\\\": \\\"CA1\\\"}\"}");
    cr_expect_str_eq(out, "-:created:0190bbbb-0000-7000-8000-000000000003 "
                          "-:created:0190bbbb-0000-7000-8000-000000000006 "
                          "2:merged:0190bbbb-0000-7000-8000-000000000001 "
                          "3:duplicate:0190bbbb-0000-7000-8000-000000000002");
    free(out);
    cr_expect(strstr(plans, "Insert on lead_inquiries"), "no merge in:\n%s", plans);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 4);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM outbox"), 5,
                 "four lead.created and one lead.merged");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_events WHERE type = 'call'"
                                  " AND data ->> 'call_sid' = 'CA1'"),
                 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_inquiries"), 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM lead_search"), 4);
    /* Two rows of one batch for one new person (the same e-mail): the second waits
     * for the first's lead and is merged into it. */
    out = s_intake_batch(
        c, "{0190bbbb-0000-7000-8000-000000000007,0190bbbb-0000-7000-8000-000000000008}",
        "{lead,lead}", "{f@example.com,f@example.com}", "{+8613800000007,+8613800000008}",
        "{NULL,NULL}", "{NULL,NULL}");
    cr_expect_str_eq(out, "-:created:0190bbbb-0000-7000-8000-000000000007 "
                          "2:merged:0190bbbb-0000-7000-8000-000000000007");
    free(out);
    free(plans);
    PQfinish(c);
    lf_h_destroy(&h);
}
