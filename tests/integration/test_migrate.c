/* leadflow-migrate against a real PostgreSQL: the repeatable function files are
 * applied after the versioned migrations and again only when one of them changes;
 * a no-transaction migration can build an index CONCURRENTLY; a broken function
 * file changes nothing. Each test copies db/ into its own folder and points the
 * migrator at the copy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

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
