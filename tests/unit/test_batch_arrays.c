/* test_batch_arrays.c - a batch of lead rows as PostgreSQL array literals (array_in's
 * text format): quoting, NULLs, booleans, numbers, JSON columns, reuse after reset.
 * That PostgreSQL reads them back as the same values is checked end to end by
 * tests/integration/test_intake.c (every lead goes through them). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../services/intake/batch_arrays.h"
#include "lf/util.h"

/* Column positions (the order of lf_intake_commit's parameters). */
enum {
    C_ID = 0,
    C_KIND = 1,
    C_NAME = 4,
    C_BUDGET_MIN = 9,
    C_DM = 14,
    C_EXTRA = 18,
    C_RAW = 19,
    C_CALL = 21,
    C_EVENT_ID = 26
};

Test(batch_arrays, quoting_nulls_and_types) {
    lf_batch_arrays_t *a = lf_batch_arrays_new();
    json_t *r1 = json_pack("{s:s, s:s, s:I, s:b, s:{s:s}, s:s}", "id", "L1", "name",
                           "王 \"芳\" \\ x", "budget_min", (json_int_t)500000,
                           "decision_maker", 1, "extra", "k", "a\"b", "kind", "call");
    json_t *r2 = json_pack("{s:s, s:n, s:b, s:f}", "id", "L2", "name", "decision_maker",
                           0, "budget_min", 1.5);
    lf_batch_arrays_add(a, r1);
    lf_batch_arrays_add(a, r2);
    const char *const *p = lf_batch_arrays_params(a);
    cr_expect_str_eq(p[C_ID], "{\"L1\",\"L2\"}");
    cr_expect_str_eq(p[C_KIND], "{\"call\",NULL}");
    cr_expect_str_eq(p[C_NAME], "{\"王 \\\"芳\\\" \\\\ x\",NULL}");
    cr_expect_str_eq(p[C_BUDGET_MIN], "{\"500000\",\"1.5\"}");
    cr_expect_str_eq(p[C_DM], "{t,f}");
    cr_expect_str_eq(p[C_EXTRA], "{\"{\\\"k\\\":\\\"a\\\\\\\"b\\\"}\",NULL}");
    cr_expect_str_eq(p[C_RAW], "{NULL,NULL}");
    cr_expect_str_eq(p[C_CALL], "{NULL,NULL}");
    /* every lead gets a new random event id, whatever its row holds */
    char e1[37], e2[37];
    cr_assert_eq(sscanf(p[C_EVENT_ID], "{%36[-0-9a-f],%36[-0-9a-f]}", e1, e2), 2, "%s",
                 p[C_EVENT_ID]);
    cr_expect_eq(strlen(p[C_EVENT_ID]), 2 + 36 + 1 + 36);
    cr_expect(lf_uuid_valid(e1) && lf_uuid_valid(e2) && e1[14] == '4' && e2[14] == '4',
              "%s", p[C_EVENT_ID]);
    cr_expect(strcmp(e1, e2) != 0, "%s", p[C_EVENT_ID]);
    /* adding after params reopens the literals */
    lf_batch_arrays_add(a, r2);
    p = lf_batch_arrays_params(a);
    cr_expect_str_eq(p[C_ID], "{\"L1\",\"L2\",\"L2\"}");
    cr_expect_gt(lf_batch_arrays_bytes(a), 0);
    lf_batch_arrays_reset(a);
    p = lf_batch_arrays_params(a);
    cr_expect_str_eq(p[C_ID], "{}");
    lf_batch_arrays_add(a, r2);
    cr_expect_str_eq(lf_batch_arrays_params(a)[C_ID], "{\"L2\"}");
    json_decref(r1);
    json_decref(r2);
    lf_batch_arrays_destroy(&a);
    cr_expect_null(a);
    lf_batch_arrays_destroy(&a); /* accepts NULL */
}
