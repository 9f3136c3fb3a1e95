/* leadflow-migrate against a real PostgreSQL: the repeatable function files are
 * applied after the versioned migrations and again only when one of them changes;
 * a no-transaction migration can build an index CONCURRENTLY; a broken function
 * file changes nothing. Each test copies db/ into its own folder and points the
 * migrator at the copy. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "lf/util.h"

TestSuite(migrate, .fini = lf_h_fini);

static const char *s_bin(void) {
    const char *b = getenv("LF_TEST_BIN");
    return b && *b ? b : "build/bin";
}

/* Runs leadflow-migrate on the test's database with the db/ copy in dir/db. */
static int s_migrate(lf_h_t *h, const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=%s/db/migrations "
             "%s/leadflow-migrate >>%s/migrate2.log 2>&1",
             lf_h_db_url(h), dir, s_bin(), dir);
    return system(cmd);
}

static void s_sh(const char *fmt, const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, dir, dir, dir);
    cr_assert(system(cmd) == 0, "%s", cmd);
}

Test(migrate, repeatable_files_are_recorded_and_reapplied_only_when_changed) {
    lf_h_t *h = lf_h_new(0, 0);
    const char *dir = lf_h_dir(h);
    long files = lf_h_sql_long(h, "SELECT count(*) FROM schema_repeatables");
    cr_assert_gt(files, 10, "the harness' migrate run records the function files");
    s_sh("cp -r db %s/db", dir);

    /* Nothing changed: nothing applied (applied_at stays). */
    char *before = lf_h_sql(h, "SELECT max(applied_at)::text FROM schema_repeatables");
    cr_assert_eq(s_migrate(h, dir), 0);
    char *after = lf_h_sql(h, "SELECT max(applied_at)::text FROM schema_repeatables");
    cr_expect_str_eq(after, before, "an unchanged folder is not re-applied");
    free(before);
    free(after);

    /* A changed function file is applied: the new body answers. */
    s_sh("printf \"CREATE OR REPLACE FUNCTION lf_test_probe() RETURNS int LANGUAGE sql "
         "AS \\$\\$ SELECT 41 \\$\\$;\\n\" > %s/db/functions/90_probe.sql",
         dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT lf_test_probe()"), 41);
    s_sh("sed -i 's/41/42/' %s/db/functions/90_probe.sql", dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT lf_test_probe()"), 42);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM schema_repeatables"), files + 1);

    /* A view dropped with CASCADE by an earlier file comes back: the whole folder is
     * re-applied, in order. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM pg_views WHERE viewname = "
                                  "'v_stage_conversion'"),
                 1);

    /* A broken file fails the run and leaves the previous definitions in place. */
    s_sh("printf 'CREATE OR REPLACE FUNCTION lf_test_probe() RETURNS int LANGUAGE sql "
         "AS $$ SELECT nope $$;\\n' > %s/db/functions/90_probe.sql",
         dir);
    cr_expect_neq(s_migrate(h, dir), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT lf_test_probe()"), 42);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM pg_views WHERE viewname = "
                                  "'v_funnel'"),
                 1);
    lf_h_destroy(&h);
}

Test(migrate, no_transaction_migration_builds_an_index_concurrently) {
    lf_h_t *h = lf_h_new(0, 0);
    const char *dir = lf_h_dir(h);
    s_sh("cp -r db %s/db && printf -- '-- leadflow:no-transaction\\n"
         "CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_probe_idx ON leads (source);\\n"
         "CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_probe2_idx ON leads (name);\\n' "
         "> %s/db/migrations/9990_probe.sql",
         dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM pg_indexes WHERE indexname IN "
                                  "('leads_probe_idx', 'leads_probe2_idx')"),
                 2);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM schema_migrations WHERE version = "
                               "'9990_probe.sql'"),
                 1);
    /* The same statement in an ordinary (transactional) migration is refused by
     * PostgreSQL, which is why the marker exists. */
    s_sh("printf 'CREATE INDEX CONCURRENTLY leads_probe3_idx ON leads (company);\\n' "
         "> %s/db/migrations/9991_probe.sql",
         dir);
    cr_expect_neq(s_migrate(h, dir), 0);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM schema_migrations WHERE version = "
                               "'9991_probe.sql'"),
                 0);
    lf_h_destroy(&h);
}

/* Whether dir/migrate2.log holds needle; empties the log for the next run. */
static int s_log_has(const char *dir, const char *needle) {
    char path[600];
    snprintf(path, sizeof path, "%s/migrate2.log", dir);
    size_t len = 0;
    char *log = lf_read_file(path, &len);
    int has = log && strstr(log, needle) != NULL;
    free(log);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    return has;
}

/* A versioned file changed after it ran is reported at every run, unless it names the
 * shipped content it corrects: then the recorded checksum moves to the corrected file,
 * nothing runs again, and a later unexplained change is reported again. */
Test(migrate, a_corrected_migration_names_the_content_it_replaces) {
    lf_h_t *h = lf_h_new(0, 0);
    const char *dir = lf_h_dir(h);
    s_sh("cp -r db %s/db && printf 'CREATE TABLE probe_c (a int);\\n'"
         " > %s/db/migrations/9992_probe.sql && truncate -s0 %s/migrate2.log",
         dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_assert_eq(lf_h_sql_long(h, "SELECT count(*) FROM probe_c"), 0);
    s_log_has(dir, "");

    /* Changed without saying what it corrects: reported, not re-run (CREATE TABLE
     * again would fail the run). */
    s_sh("printf 'CREATE TABLE probe_c (a int); -- typo fixed\\n'"
         " > %s/db/migrations/9992_probe.sql.new && sha256sum "
         "%s/db/migrations/9992_probe.sql"
         " | cut -c1-64 > %s/old.sum",
         dir);
    char *old = lf_h_sql(h, "SELECT sha256 FROM schema_migrations WHERE version ="
                            " '9992_probe.sql'");
    s_sh("mv %s/db/migrations/9992_probe.sql.new %s/db/migrations/9992_probe.sql", dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect(
        s_log_has(dir, "migration changed after it was applied file=9992_probe.sql"));

    /* Naming the shipped checksum: accepted once, recorded, silent from then on. */
    s_sh("(printf -- '-- leadflow:corrects-sha256 '; cat %s/old.sum;"
         " printf 'CREATE TABLE probe_c (a int); -- typo fixed\\n')"
         " > %s/db/migrations/9992_probe.sql",
         dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect(
        s_log_has(dir, "migration corrected after it was applied file=9992_probe.sql"));
    char *now = lf_h_sql(h, "SELECT sha256 FROM schema_migrations WHERE version ="
                            " '9992_probe.sql'");
    cr_expect(old && now && strcmp(old, now) != 0, "the corrected checksum is recorded");
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect(!s_log_has(dir, "9992_probe.sql"), "a recorded correction is not reported");

    /* A later change that names nothing is reported again. */
    s_sh("printf 'CREATE TABLE probe_c (a int);\\n' > %s/db/migrations/9992_probe.sql",
         dir);
    cr_assert_eq(s_migrate(h, dir), 0);
    cr_expect(
        s_log_has(dir, "migration changed after it was applied file=9992_probe.sql"));
    free(old);
    free(now);
    lf_h_destroy(&h);
}

/* First cell of a query on conn, as a new string ("" when no row, NULL on error). */
static char *s_val(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    char *out = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        out = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    else if (PQresultStatus(r) == PGRES_COMMAND_OK)
        out = strdup(PQcmdTuples(r));
    else
        cr_log_error("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return out;
}

static void s_expect(PGconn *conn, const char *sql, const char *want) {
    char *got = s_val(conn, sql);
    cr_expect(got && !strcmp(got, want), "%s: got '%s', want '%s'", sql,
              got ? got : "(error)", want);
    free(got);
}

/* 0040 makes lead ids uuid. On a database at the schema before it (0001-0036) holding
 * rows as the services wrote them plus one lead typed in by hand with an id that is
 * not a UUID: the migration stops, names every column holding such ids with the query
 * that lists them, and changes nothing. With that lead gone it goes through: every id
 * reads back as the same text, the foreign keys of the append-only rows are gone (those
 * people edit are kept), the views are back and no row points at nothing. */
Test(migrate, uuid_ids_refuses_a_bad_id_and_keeps_every_id, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    const char *dir = lf_h_dir(h);
    char db[64], url[512], sql[256];
    snprintf(db, sizeof db, "lf_upgrade_%d", (int)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    free(lf_h_sql(h, sql));
    snprintf(url, sizeof url, "%s", lf_h_db_url(h));
    snprintf(strrchr(url, '/') + 1, sizeof url - (size_t)(strrchr(url, '/') + 1 - url),
             "%s", db);
    /* The schema before 0040, without the function folder (today's functions are
     * written for uuid ids). */
    s_sh("mkdir -p %s/old/migrations %s/old/functions && cp db/migrations/00[0-3]*.sql "
         "%s/old/migrations/",
         dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=%s/old/migrations "
             "%s/leadflow-migrate >>%s/upgrade.log 2>&1",
             url, dir, s_bin(), dir);
    cr_assert_eq(system(cmd), 0, "the old schema could not be made (%s/upgrade.log)",
                 dir);
    PGconn *c = PQconnectdb(url);
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    const char *a = "019ad735-840a-7c4c-8a42-38a0b923820d",
               *b = "019ad735-8414-7c81-8e72-8d9d4c2f636f";
    char rows[4096];
    snprintf(
        rows, sizeof rows,
        "INSERT INTO reps (id, name, team) VALUES ('wang.fang', 'W', 'east');"
        "INSERT INTO leads (id, channel, phone, owner, stage, closed_at, loss_reason)"
        " VALUES ('%s', 'api', '+8613800138000', 'wang.fang', 'lost', now(), 'price');"
        "INSERT INTO leads (id, channel, phone, reactivated_from, lost_deal) VALUES"
        " ('%s', 'reactivation', '+8613800138000', '%s', '%s'),"
        " ('hand-made-1', 'api', '+8613800138001', NULL, NULL);"
        "INSERT INTO lead_events (lead_id, type) VALUES ('%s', 'created'), ('%s', "
        "'created'),"
        " ('hand-made-1', 'created');"
        "INSERT INTO outbox (event_id, type, lead_id) VALUES"
        " (gen_random_uuid(), 'lead.created', '%s'), (gen_random_uuid(), 'digest.sent', "
        "NULL);"
        "INSERT INTO assignments (lead_id, rep_id, reason) VALUES ('%s', 'wang.fang', "
        "'rr');"
        "INSERT INTO timers (id, lead_id, kind, due_at) VALUES (7, '%s', 'stale', now());"
        "INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message) VALUES"
        " (7, '%s', 'wang.fang', 'stale_warning', 'x');"
        "INSERT INTO lead_inquiries (lead_id, kind, channel) VALUES ('%s', 'inquiry', "
        "'api');"
        "INSERT INTO lead_claims (rep_id, lead_id) VALUES ('wang.fang', '%s');"
        "INSERT INTO lead_recycles (lead_id, timer_id, from_rep, stage, cooldown_until)"
        " VALUES ('%s', 7, 'wang.fang', 'proposal', now());"
        "INSERT INTO analytics_deals (lead_id, stage, reached) VALUES ('%s', 'lost', "
        "'{new}');",
        a, b, a, a, a, b, a, a, a, a, a, a, a, a);
    PGresult *r = PQexec(c, rows);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);

    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=db/migrations "
             "%s/leadflow-migrate >%s/upgrade2.log 2>&1",
             url, s_bin(), dir);
    cr_expect_neq(system(cmd), 0, "a lead id that is not a UUID must stop the migration");
    char path[600];
    snprintf(path, sizeof path, "%s/upgrade2.log", dir);
    size_t len = 0;
    char *log = lf_read_file(path, &len);
    cr_assert(log);
    cr_expect(
        strstr(log,
               "leads.id: 1 row(s); find them with: SELECT * FROM leads WHERE id !~"),
        "%s", log);
    cr_expect(strstr(log, "lead_events.lead_id: 1 row(s)"), "%s", log);
    cr_expect(!strstr(log, "invalid input syntax"), "a raw cast failure: %s", log);
    free(log);
    s_expect(c,
             "SELECT data_type FROM information_schema.columns"
             " WHERE table_name = 'leads' AND column_name = 'id'",
             "text");
    s_expect(c, "SELECT count(*) FROM schema_migrations WHERE version LIKE '0040%'", "0");

    /* (the timeline is append-only: its trigger refuses a DELETE) */
    free(s_val(c, "ALTER TABLE lead_events DISABLE TRIGGER USER"));
    free(s_val(c, "DELETE FROM lead_events WHERE lead_id = 'hand-made-1'"));
    free(s_val(c, "ALTER TABLE lead_events ENABLE TRIGGER USER"));
    free(s_val(c, "DELETE FROM leads WHERE id = 'hand-made-1'"));
    /* Views a BI tool made: one on a table of its own (it must survive), one on leads and
     * one on that view in another schema (they block the type change: dropped, named). */
    free(s_val(c, "CREATE TABLE bi_targets (team text, target int);"
                  "CREATE VIEW bi_targets_v AS SELECT team, target FROM bi_targets;"
                  "CREATE VIEW bi_owned AS SELECT id, owner FROM leads;"
                  "CREATE SCHEMA bi; CREATE VIEW bi.owned_count AS"
                  " SELECT count(*) AS n FROM public.bi_owned"));
    cr_assert_eq(system(cmd), 0, "the migration failed once the bad id was gone");
    s_expect(
        c,
        "SELECT string_agg(schemaname || '.' || viewname, ',' ORDER BY viewname)"
        " FROM pg_views WHERE viewname IN ('bi_targets_v', 'bi_owned', 'owned_count')",
        "public.bi_targets_v");
    log = lf_read_file(path, &len);
    cr_assert(log);
    cr_expect(strstr(log, "dropped the view public.bi_owned: it reads a column"), "%s",
              log);
    cr_expect(strstr(log, "dropped the view bi.owned_count"), "%s", log);
    cr_expect(!strstr(log, "dropped the view public.v_funnel"),
              "leadflow's own views are re-created, not reported: %s", log);
    free(log);
    s_expect(
        c,
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE c.data_type <> 'uuid')"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE'"
        " AND c.table_schema = 'public' AND c.column_name = 'lead_id'"
        /* text by design (0037: compared with the outbox's id as text) */
        " AND c.table_name <> 'analytics_reactivated'",
        "11 0"); /* 9 tables, lead_search since 0041, lead_first_contact since 0047 */
    snprintf(sql, sizeof sql, "SELECT string_agg(id::text, ',' ORDER BY id) FROM leads");
    char want[128];
    snprintf(want, sizeof want, "%s,%s", a, b);
    s_expect(c, sql, want);
    snprintf(want, sizeof want, "%s %s", a, a);
    s_expect(c,
             "SELECT reactivated_from || ' ' || lost_deal FROM leads"
             " WHERE channel = 'reactivation'",
             want);
    s_expect(c, "SELECT count(*) FROM lf_orphans() WHERE orphans > 0", "0");
    /* ...and the check sees one when there is (what every test's lf_h_destroy runs). */
    free(s_val(c, "INSERT INTO lead_claims (rep_id, lead_id) VALUES"
                  " ('wang.fang', '019ad735-0000-7000-8000-000000000000')"));
    s_expect(c,
             "SELECT string_agg(link || '=' || orphans, ',') FROM lf_orphans()"
             " WHERE orphans > 0",
             "lead_claims.lead_id -> leads=1");
    free(s_val(c, "DELETE FROM lead_claims WHERE lead_id ="
                  " '019ad735-0000-7000-8000-000000000000'"));
    s_expect(c,
             "SELECT count(*) FROM pg_views WHERE viewname IN ('v_funnel',"
             " 'v_lead_outcomes', 'assignment_explanations', 'v_reactivated_deals')",
             "4");
    s_expect(c,
             "SELECT string_agg(conrelid::regclass || '.' || conname, ',' ORDER BY"
             " conname) FROM pg_constraint WHERE contype = 'f'",
             "api_keys.api_keys_rep_id_fkey,customers.customers_owner_fkey,"
             "notify_deliveries.notify_deliveries_dest_key_fkey");
    /* The envelope carries the same text as before. */
    snprintf(want, sizeof want, "%s", a);
    s_expect(c,
             "SELECT lf_envelope(id, event_id, type, lead_id, at, version, payload)"
             " ->> 'lead_id' FROM outbox WHERE type = 'lead.created'",
             want);
    PQfinish(c);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db);
    free(lf_h_sql(h, sql));
    lf_h_destroy(&h);
}

/* 0041 moves the lists' search to lead_search. On a database at the schema before it
 * (0001-0040) holding leads: after the migration each of them has its search row, with
 * the text the old index held (ASCII letters lowered, others kept, as before), the
 * search finds them, the old index is gone, and a lead inserted or renamed afterwards
 * is found by its new text through the triggers. */
Test(migrate, lead_search_backfills_the_leads_before_it, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    const char *dir = lf_h_dir(h);
    char db[64], url[512], sql[512];
    snprintf(db, sizeof db, "lf_search_%d", (int)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    free(lf_h_sql(h, sql));
    snprintf(url, sizeof url, "%s", lf_h_db_url(h));
    snprintf(strrchr(url, '/') + 1, sizeof url - (size_t)(strrchr(url, '/') + 1 - url),
             "%s", db);
    s_sh("mkdir -p %s/s40/migrations %s/s40/functions && cp db/migrations/00[0-3]*.sql "
         "db/migrations/0040_*.sql %s/s40/migrations/",
         dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=%s/s40/migrations "
             "%s/leadflow-migrate >>%s/search.log 2>&1",
             url, dir, s_bin(), dir);
    cr_assert_eq(system(cmd), 0, "the schema at 0040 could not be made (%s/search.log)",
                 dir);
    PGconn *c = PQconnectdb(url);
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    free(s_val(c, "INSERT INTO leads (id, channel, phone, name, company, email) VALUES"
                  " ('019ad735-840a-7c4c-8a42-38a0b923820d', 'api', '+8613800138000',"
                  "  'Ärger Wang', '某某 Trading', 'wang@acme.example'),"
                  " ('019ad735-8414-7c81-8e72-8d9d4c2f636f', 'api', NULL, NULL, NULL,"
                  "  'li@bolt.example')"));
    s_expect(c, "SELECT count(*) FROM pg_indexes WHERE indexname = 'leads_search'", "1");
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=db/migrations "
             "%s/leadflow-migrate >>%s/search.log 2>&1",
             url, s_bin(), dir);
    cr_assert_eq(system(cmd), 0, "the migration failed (%s/search.log)", dir);
    s_expect(c, "SELECT string_agg(doc, '|' ORDER BY lead_id) FROM lead_search",
             "Ärger wang 某某 trading wang@acme.example +8613800138000|"
             "  li@bolt.example ");
    s_expect(c,
             "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes"
             " WHERE indexname IN ('leads_search', 'lead_search_doc')",
             "lead_search_doc");
    /* The lists' condition (services/intake/api_lists.c). */
    const char *found = "SELECT coalesce(string_agg(right(l.id::text, 4), ','"
                        " ORDER BY l.id), '-') FROM leads l WHERE l.id IN"
                        " (SELECT s.lead_id FROM lead_search s WHERE s.doc LIKE '%s')";
    snprintf(sql, sizeof sql, found, "%wang%");
    s_expect(c, sql, "820d");
    snprintf(sql, sizeof sql, found, "%.example%");
    s_expect(c, sql, "820d,636f");
    free(s_val(c, "UPDATE leads SET name = 'Zhou', stage = 'contacted'"
                  " WHERE id = '019ad735-8414-7c81-8e72-8d9d4c2f636f'"));
    free(s_val(c, "INSERT INTO leads (id, channel, phone, name) VALUES"
                  " ('019ad735-9000-7000-8000-000000000001', 'api', '+8613800138002',"
                  "  'Zhou Two')"));
    snprintf(sql, sizeof sql, found, "%zhou%");
    s_expect(c, sql, "636f,0001");
    s_expect(c, "SELECT count(*) FROM lf_orphans() WHERE orphans > 0", "0");
    PQfinish(c);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db);
    free(lf_h_sql(h, sql));
    lf_h_destroy(&h);
}

/* 0042 leaves 15% of each page of leads free, so that an update that changes no
 * indexed column (the scheduler's first-contact clock, the keep-alive clock) is a HOT
 * update: the new row version stays on its page and no index gets an entry. Leads
 * written in one statement fill their pages; the clock of the first one is then set in
 * a transaction of its own: one HOT update, on the same page. (With pages filled to
 * 100% it found no room and wrote an entry in every index of leads.) */
Test(migrate, a_clock_update_of_a_lead_is_hot) {
    lf_h_t *h = lf_h_new(0, 0);
    free(lf_h_sql(h,
                  "INSERT INTO leads (id, channel, phone, name, company, raw)"
                  " SELECT ('019ad735-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,"
                  " 'api', '+86138' || lpad(g::text, 8, '0'), 'Wang ' || g,"
                  " 'Company ' || g, jsonb_build_object('need', repeat('x', 100))"
                  " FROM generate_series(1, 200) g"));
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    s_expect(c,
             "SELECT (ctid::text::point)[0] FROM leads WHERE id ="
             " '019ad735-0000-7000-8000-000000000001'",
             "0");
    free(s_val(c, "BEGIN"));
    free(s_val(c, "UPDATE leads SET first_contact_due_at = now() + interval '1 hour'"
                  " WHERE id = '019ad735-0000-7000-8000-000000000001'"));
    s_expect(c, "SELECT pg_stat_get_xact_tuples_hot_updated('leads'::regclass)", "1");
    free(s_val(c, "COMMIT"));
    s_expect(c,
             "SELECT (ctid::text::point)[0] FROM leads WHERE id ="
             " '019ad735-0000-7000-8000-000000000001'",
             "0");
    s_expect(c, "SELECT reloptions::text FROM pg_class WHERE relname = 'leads'",
             "{fillfactor=85}");
    PQfinish(c);
    lf_h_destroy(&h);
}

/* 0058: the ack row of a batch whose events are not adjacent in the outbox (128 ranges
 * of one seq, about 2.7 kB) is stored inline as it is, not compressed: without the
 * table's toast_tuple_target it was compressed to about 1 kB at the insert and
 * decompressed at every read. */
Test(migrate, an_ack_row_of_a_spread_batch_stays_uncompressed) {
    lf_h_t *h = lf_h_new(0, 0);
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    free(s_val(c, "INSERT INTO consumer_acks (consumer, seqs, top_xid)"
                  " SELECT 'test', range_agg(int8range(2 * g, 2 * g, '[]')), '1'"
                  " FROM generate_series(1, 128) g"));
    s_expect(c,
             "SELECT pg_column_size(seqs) > 2500 AND"
             " pg_column_compression(seqs) IS NULL FROM consumer_acks"
             " WHERE consumer = 'test'",
             "t");
    s_expect(c, "SELECT reloptions::text FROM pg_class WHERE relname = 'consumer_acks'",
             "{toast_tuple_target=8160}");
    PQfinish(c);
    lf_h_destroy(&h);
}

/* 0053: the lists' team index holds the leads that have a team, i.e. routed ones.
 * Intake inserts a lead with no team; that insert no longer writes an entry under NULL
 * that no list reads. A list by team (the statement of services/intake/api_lists.c,
 * planned generically as a prepared statement is) still walks the index. */
Test(migrate, the_team_index_holds_only_leads_with_a_team) {
    lf_h_t *h = lf_h_new(0, 0);
    free(lf_h_sql(h,
                  "INSERT INTO leads (id, channel, phone, team, created_at)"
                  " SELECT ('019ad735-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,"
                  " 'api', '+86138' || lpad(g::text, 8, '0'),"
                  " CASE WHEN g % 4 = 0 THEN 'east' END,"
                  " now() - g * interval '1 second'"
                  " FROM generate_series(1, 200) g"));
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    s_expect(c,
             "SELECT indexdef LIKE '%(team, created_at, id) WHERE (team IS NOT NULL)'"
             " FROM pg_indexes WHERE indexname = 'leads_team_created'",
             "t");
    s_expect(c,
             "SELECT count(*) FROM pg_indexes WHERE indexname = 'leads_team_created_set'",
             "0");
    /* ANALYZE samples all 200 rows: the index's reltuples is then its entry count. */
    free(s_val(c, "ANALYZE leads"));
    s_expect(
        c, "SELECT reltuples::bigint FROM pg_class WHERE relname = 'leads_team_created'",
        "50");
    free(s_val(c, "SET plan_cache_mode = force_generic_plan"));
    free(s_val(c, "SET enable_seqscan = off"));
    free(s_val(c, "PREPARE by_team(text) AS SELECT l.id FROM leads l WHERE l.team = $1"
                  " ORDER BY l.created_at DESC, l.id DESC LIMIT 20"));
    PGresult *r = PQexec(c, "EXPLAIN (COSTS OFF) EXECUTE by_team('east')");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    size_t len = 1;
    for (int i = 0; i < PQntuples(r); i++)
        len += strlen(PQgetvalue(r, i, 0)) + 1;
    char *plan = lf_calloc(1, len);
    for (int i = 0; i < PQntuples(r); i++) {
        strcat(plan, PQgetvalue(r, i, 0));
        strcat(plan, "\n");
    }
    PQclear(r);
    cr_expect(strstr(plan, "Scan Backward using leads_team_created") != NULL,
              "a list by team does not walk the team index:\n%s", plan);
    free(plan);
    r = PQexec(c, "EXECUTE by_team('east')");
    cr_expect_eq(PQntuples(r), 20, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    lf_h_destroy(&h);
}

/* 0059: the unique index of notifications.timer_id holds the notifications of a timer
 * only. The router's notifications (lead_assigned, pool_waiting: no timer) no longer
 * write an entry under NULL that nothing reads; a timer still makes one notification:
 * a second row with its id is refused, and the functions' ON CONFLICT clause (with the
 * predicate that infers the partial index) skips it. */
Test(migrate, the_timer_index_holds_only_notifications_of_a_timer) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_allow_orphans(h); /* notifications of made-up leads and timers */
    PGconn *c = PQconnectdb(lf_h_db_url(h));
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    s_expect(c,
             "SELECT indexdef LIKE '%UNIQUE INDEX notifications_timer_once ON"
             " public.notifications USING btree (timer_id) WHERE (timer_id IS NOT NULL)'"
             " FROM pg_indexes WHERE tablename = 'notifications'"
             " AND indexname = 'notifications_timer_once'",
             "t");
    s_expect(c,
             "SELECT count(*) FROM pg_constraint"
             " WHERE conname = 'notifications_timer_id_key'",
             "0");
    /* 200 notifications as the router writes them, 50 as firing timers do. */
    free(s_val(c, "INSERT INTO notifications (lead_id, rep_id, kind, message)"
                  " SELECT gen_random_uuid(), 'rep' || g, 'lead_assigned', 'x'"
                  " FROM generate_series(1, 200) g"));
    free(s_val(c, "INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)"
                  " SELECT g, gen_random_uuid(), 'rep' || g, 'sla_reminder', 'x'"
                  " FROM generate_series(1, 50) g"));
    /* ANALYZE reads all 250 rows: the index's reltuples is then its entry count. */
    free(s_val(c, "ANALYZE notifications"));
    s_expect(c,
             "SELECT reltuples::bigint FROM pg_class"
             " WHERE relname = 'notifications_timer_once'",
             "50");
    PGresult *r = PQexec(c, "INSERT INTO notifications (timer_id, lead_id, rep_id, kind,"
                            " message) VALUES (7, gen_random_uuid(), 'rep7',"
                            " 'sla_reminder', 'again')");
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    cr_expect(state && !strcmp(state, "23505"),
              "a second notification of timer 7 was not refused: %s", PQerrorMessage(c));
    PQclear(r);
    s_expect(c,
             "INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)"
             " VALUES (7, gen_random_uuid(), 'rep7', 'sla_reminder', 'again'),"
             " (51, gen_random_uuid(), 'rep51', 'sla_reminder', 'new')"
             " ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL DO NOTHING",
             "1");
    s_expect(c, "SELECT count(*) FROM notifications WHERE timer_id = 7", "1");
    s_expect(c, "SELECT count(*) FROM notifications WHERE timer_id IS NULL", "200");
    PQfinish(c);
    lf_h_destroy(&h);
}
