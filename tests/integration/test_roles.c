/* test_roles.c - least privilege in PostgreSQL (db/migrations/0012_roles.sql,
 * db/functions/99_grants.sql).
 *
 * Every other service test already runs each service as its own role (the harness
 * logs them in as leadflow_<service>), so a grant that is missing fails there. This
 * suite checks the other side: what the roles must NOT be able to do, and that the BI
 * role reads the analytics views and nothing with a person in it. The test's own
 * connection is the schema owner; SET ROLE takes each role's rights. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(roles, .fini = lf_h_fini);

/* Runs sql as role; returns 1 when it succeeded, 0 when PostgreSQL refused it. */
static int s_as(lf_h_t *h, const char *role, const char *sql) {
    char q[1024];
    snprintf(q, sizeof q, "DO $$ BEGIN SET LOCAL ROLE %s; EXECUTE %s; RESET ROLE; END $$",
             role, sql);
    char *r = lf_h_sql(h, q);
    int ok = r != NULL;
    free(r);
    free(lf_h_sql(h, "RESET ROLE"));
    return ok;
}

Test(roles, services_cannot_change_the_schema_or_reach_past_their_tables, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    const char *services[] = {"leadflow_intake",    "leadflow_router",
                              "leadflow_scheduler", "leadflow_analytics",
                              "leadflow_bi",        NULL};
    for (int i = 0; services[i]; i++) {
        cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM pg_roles WHERE rolname IN"
                                      " ('leadflow_intake', 'leadflow_router',"
                                      " 'leadflow_scheduler', 'leadflow_analytics',"
                                      " 'leadflow_bi') AND NOT rolsuper"
                                      " AND NOT rolcreaterole AND NOT rolcreatedb"),
                     5);
        const char *ddl[] = {"'CREATE TABLE x (a int)'",
                             "'DROP TABLE leads'",
                             "'ALTER TABLE leads ADD COLUMN x int'",
                             "'TRUNCATE outbox'",
                             "'DELETE FROM leads'",
                             "'DROP FUNCTION lf_caller_sees'",
                             NULL};
        for (int d = 0; ddl[d]; d++)
            cr_expect_not(s_as(h, services[i], ddl[d]), "%s may run %s", services[i],
                          ddl[d]);
    }
    /* Each service reads what its job needs, not more. */
    cr_expect(s_as(h, "leadflow_intake", "'SELECT phone FROM leads'"));
    cr_expect(s_as(h, "leadflow_intake", "'SELECT key_hash FROM api_keys'"));
    cr_expect_not(s_as(h, "leadflow_intake", "'DELETE FROM consumer_acks'"));
    cr_expect_not(s_as(h, "leadflow_intake", "'SELECT * FROM rollup_funnel'"));
    cr_expect_not(s_as(h, "leadflow_router", "'SELECT key_hash FROM api_keys'"));
    cr_expect_not(s_as(h, "leadflow_scheduler", "'SELECT key_hash FROM api_keys'"));
    cr_expect_not(s_as(h, "leadflow_analytics", "'SELECT key_hash FROM api_keys'"));
    cr_expect_not(s_as(h, "leadflow_analytics", "'UPDATE leads SET name = name'"));
    cr_expect_not(s_as(h, "leadflow_router", "'UPDATE api_keys SET revoked_at = now()'"));
    lf_h_destroy(&h);
}

Test(roles, bi_reads_the_analytics_views_and_no_personal_column, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    const char *views[] = {"v_funnel",
                           "v_win_loss",
                           "v_pipeline_value",
                           "v_loss_reasons",
                           "v_lead_outcomes",
                           "v_first_response",
                           "v_conversion",
                           "v_stage_conversion",
                           "assignment_explanations",
                           "v_recycled_deals",
                           "v_reactivated_deals",
                           "v_keepalive_outcomes",
                           NULL};
    for (int i = 0; views[i]; i++) {
        char q[160];
        snprintf(q, sizeof q, "'SELECT * FROM %s LIMIT 1'", views[i]);
        cr_expect(s_as(h, "leadflow_bi", q), "BI cannot read %s", views[i]);
    }
    const char *tables[] = {
        "leads",    "lead_events", "lead_inquiries", "customers",     "reps",
        "api_keys", "outbox",      "notifications",  "consumer_acks", NULL};
    for (int i = 0; tables[i]; i++) {
        char q[160];
        snprintf(q, sizeof q, "'SELECT 1 FROM %s LIMIT 1'", tables[i]);
        cr_expect_not(s_as(h, "leadflow_bi", q), "BI reads %s", tables[i]);
    }
    cr_expect_not(s_as(h, "leadflow_bi", "'INSERT INTO stages (id) VALUES (''x'')'"));
    /* No column that BI may read is personal, whatever the object. */
    char *cols = lf_h_sql(
        h,
        "SELECT coalesce(string_agg(DISTINCT c.table_name || '.' || c.column_name, ', '),"
        " '') FROM information_schema.columns c"
        " WHERE c.table_schema = 'public'"
        " AND has_table_privilege('leadflow_bi', format('%I.%I', c.table_schema, "
        "c.table_name), 'SELECT')"
        " AND c.column_name ~ '(phone|email|mail|name|company|raw|extra|need|key)'"
        " AND c.column_name NOT IN ('loss_reason', 'stage_name')"
        " AND c.column_name !~ '^(label_|loss_reason)'");
    cr_assert(cols);
    cr_expect_str_eq(cols, "", "BI can read personal columns: %s", cols);
    free(cols);
    lf_h_destroy(&h);
}
