/* test_privacy.c - no phone number or e-mail address reaches a log or an error column.
 *
 * The whole stack runs; hostile and ordinary requests carry phone numbers and e-mail
 * addresses that appear nowhere else; a fault makes PostgreSQL reject the router's
 * update of one lead, so the error that comes back would quote the failing row (its
 * DETAIL: "Failing row contains (... phone ... e-mail ...)"). Then every log is
 * searched: each service's, the migration's and PostgreSQL's own (scripts/test.sh
 * exports its path as LF_TEST_PG_LOG), and the error column of consumer_acks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(privacy, .fini = lf_h_fini);

/* What the requests below send, in the forms they are sent and stored. */
static const char *const s_secrets[] = {"17700177001",
                                        "17700177002",
                                        "17700177003",
                                        "17700177004",
                                        "17700177005",
                                        "17700177006",
                                        "17700177007",
                                        "1770017",
                                        "0017 7001",
                                        "privacy.one@example.org",
                                        "privacy.two@example.org",
                                        "privacy.three@example.org",
                                        "privacy.four@example.org",
                                        NULL};

static void s_post(lf_h_t *h, const char *path, const char *ctype, const char *body) {
    char ct[128];
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    const char *hd[] = {ct, NULL};
    lf_h_http(h, "POST", path, hd, body, strlen(body), NULL);
}

Test(privacy, logs_and_error_columns_carry_no_phone_or_email, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 1);
    /* The fault: the router's grading update of this person's lead breaks a rule, so
     * PostgreSQL answers with the whole failing row in its DETAIL. */
    free(lf_h_sql(h, "ALTER TABLE leads ADD CONSTRAINT privacy_fault CHECK"
                     " (grade IS NULL OR phone IS DISTINCT FROM '+8617700177001')"));
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_ANALYTICS, 0);
    const char *J = "application/json";
    /* Ordinary, repeated (merged) and retried leads. */
    s_post(h, "/v1/leads", J,
           "{\"name\":\"隐私一\",\"phone\":\"177 0017 7001\",\"email\":"
           "\"privacy.one@example.org\",\"industry\":\"medical\"}");
    s_post(h, "/v1/leads", J,
           "{\"phone\":\"+86 177-0017-7002\",\"email\":\"privacy.two@example.org\"}");
    s_post(h, "/v1/leads", J,
           "{\"phone\":\"17700177002\",\"need\":\"again\"}"); /* merged */
    /* Hostile: broken JSON, wrong types, a bad e-mail, injection, oversize fields. */
    s_post(h, "/v1/leads", J, "{\"phone\":\"17700177003\",\"email\":");
    s_post(h, "/v1/leads", J,
           "{\"phone\":17700177003,\"email\":[\"privacy.three@example.org\"]}");
    s_post(h, "/v1/leads", J,
           "{\"phone\":\"17700177003'); DROP TABLE leads;--\",\"email\":"
           "\"privacy.three@example.org\\u0000\"}");
    s_post(h, "/v1/leads", J, "{\"email\":\"privacy.four@example.org@@\"}");
    s_post(h, "/v1/leads", "application/x-www-form-urlencoded",
           "phone=177%200017%207004&email=privacy.four%40example.org&budget=%F0%28");
    /* Imports with good and bad rows, a call, a call with a broken sid. */
    s_post(
        h, "/v1/leads/import", "text/csv",
        "name,phone,email\nA,17700177005,privacy.four@example.org\nB,17700177006,bad@\n"
        "C,\"17700177007\nbroken\n");
    s_post(h, "/v1/calls", J, "{\"CallSid\":\"CApriv1\",\"From\":\"17700177006\"}");
    s_post(h, "/v1/calls", J, "{\"CallSid\":\"CA priv;\",\"From\":\"17700177007\"}");
    /* The same with a wrong key, which must not be logged either. */
    const char *bad[] = {"Authorization: Bearer lf_0123456789abcdef0123456789abcdef",
                         "Content-Type: application/json", NULL};
    lf_h_http(h, "POST", "/v1/leads", bad, "{\"phone\":\"17700177005\"}", 23, NULL);
    /* Wait until the router has met the fault (the event is parked). */
    cr_expect(
        lf_h_wait_sql(h, "SELECT count(*) > 0 FROM consumer_acks WHERE error IS NOT NULL",
                      "t", 20000),
        "the fault reached the router");
    usleep(500 * 1000);
    /* Services stop first, so their last lines are written. */
    char *acks =
        lf_h_sql(h, "SELECT coalesce(string_agg(error, ' | '), '') FROM consumer_acks");
    const char *dir = lf_h_dir(h);
    char paths[8][600];
    int np = 0;
    const char *names[] = {"intake.0.log",    "router.0.log", "scheduler.0.log",
                           "analytics.0.log", "migrate.log",  NULL};
    for (int i = 0; names[i]; i++)
        snprintf(paths[np++], sizeof paths[0], "%s/%s", dir, names[i]);
    const char *pglog = getenv("LF_TEST_PG_LOG");
    if (pglog)
        snprintf(paths[np++], sizeof paths[0], "%s", pglog);
    cr_expect(pglog,
              "LF_TEST_PG_LOG is set by scripts/test.sh: PostgreSQL's log is checked");
    cr_expect(lf_h_file_count(paths[1], 0, "event parked") > 0,
              "the router logged the failure");
    for (int s = 0; s_secrets[s]; s++) {
        cr_expect(!strstr(acks, s_secrets[s]), "consumer_acks.error has %s: %s",
                  s_secrets[s], acks);
        for (int p = 0; p < np; p++)
            cr_expect(lf_h_file_count(paths[p], 0, s_secrets[s]) == 0, "%s contains %s",
                      paths[p], s_secrets[s]);
    }
    cr_expect(lf_h_file_count(paths[0], 0, "0123456789abcdef") == 0,
              "a presented key is not logged");
    free(acks);
    lf_h_destroy(&h);
}
