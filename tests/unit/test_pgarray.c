/* pgarray: PostgreSQL array literals, every text element quoted, integers bare, NULL as
 * NULL. */
#include <criterion/criterion.h>
#include <string.h>

#include "lf/pgarray.h"

Test(pgarray, empty_array) {
    lf_pgarray_t a;
    lf_pgarray_init(&a);
    cr_expect_str_eq(lf_pgarray_end(&a), "{}");
    cr_expect_eq(a.n, 0);
    lf_pgarray_free(&a);
}

Test(pgarray, elements_are_quoted_and_escaped) {
    lf_pgarray_t a;
    lf_pgarray_init(&a);
    lf_pgarray_add(&a, "plain");
    lf_pgarray_add(&a, NULL);
    lf_pgarray_add(&a, "");
    lf_pgarray_add(&a, "NULL");
    lf_pgarray_add(&a, "a,b {c}");
    lf_pgarray_add(&a, "say \"hi\" \\ bye");
    lf_pgarray_add(&a, "{\"k\": [1, 2]}");
    lf_pgarray_add(&a, "华东医疗");
    lf_pgarray_add_int(&a, -42);
    cr_expect_str_eq(lf_pgarray_end(&a),
                     "{\"plain\",NULL,\"\",\"NULL\",\"a,b {c}\","
                     "\"say \\\"hi\\\" \\\\ bye\",\"{\\\"k\\\": [1, 2]}\",\"华东医疗\","
                     "-42}");
    cr_expect_eq(a.n, 9);
    lf_pgarray_free(&a);
}

Test(pgarray, grows_past_its_first_buffer) {
    lf_pgarray_t a;
    lf_pgarray_init(&a);
    char big[1000];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 100; i++)
        lf_pgarray_add(&a, big);
    const char *s = lf_pgarray_end(&a);
    /* {, }, 100 x (2 quotes + 999 escaped quotes x 2 bytes), 99 commas */
    cr_expect_eq(strlen(s), 2 + 100 * (2 + 999 * 2) + 99);
    cr_expect_eq(s[strlen(s) - 1], '}');
    lf_pgarray_free(&a);
    lf_pgarray_free(&a); /* twice is harmless */
}

Test(pgarray, integers_are_written_bare) {
    lf_pgarray_t a;
    lf_pgarray_init(&a);
    lf_pgarray_add_int(&a, 0);
    lf_pgarray_add_int(&a, 7);
    lf_pgarray_add_int(&a, -1);
    lf_pgarray_add_int(&a, 9223372036854775807LL);
    lf_pgarray_add_int(&a, -9223372036854775807LL - 1);
    cr_expect_str_eq(lf_pgarray_end(&a),
                     "{0,7,-1,9223372036854775807,-9223372036854775808}");
    cr_expect_eq(a.n, 5);
    lf_pgarray_free(&a);
}
