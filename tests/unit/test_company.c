/* test_company.c - the company key (common/company.c), data-driven:
 * tests/fixtures/company/pairs.tsv lists pairs that must and must not get the same key,
 * keys.tsv some exact keys. Adding a case is adding a line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/company.h"

static const char *s_root(void) {
    const char *r = getenv("LF_FIXTURES");
    return r && *r ? r : "tests/fixtures";
}

/* Splits a tab-separated line into at most `max` fields; returns how many. */
static int s_split(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    while (n < max) {
        f[n++] = line;
        char *t = strchr(line, '\t');
        if (!t)
            break;
        *t = '\0';
        line = t + 1;
    }
    return n;
}

static FILE *s_open(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/company/%s", s_root(), name);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    return f;
}

Test(company, pairs_that_must_and_must_not_match) {
    FILE *f = s_open("pairs.tsv");
    char line[1024];
    size_t same = 0, different = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *fld[3];
        cr_assert_eq(s_split(line, fld, 3), 3, "pairs.tsv: a line without 3 fields");
        char a[LF_COMPANY_KEY_SIZE], b[LF_COMPANY_KEY_SIZE];
        const char *why = NULL;
        cr_assert_eq(lf_company_key(fld[0], a, sizeof a, &why), 0, "%s: %s", fld[0],
                     why ? why : "");
        cr_assert_eq(lf_company_key(fld[1], b, sizeof b, &why), 0, "%s: %s", fld[1],
                     why ? why : "");
        if (!strcmp(fld[2], "same")) {
            same++;
            cr_expect_str_eq(a, b, "\"%s\" (%s) and \"%s\" (%s) must match", fld[0], a,
                             fld[1], b);
        } else {
            cr_assert_str_eq(fld[2], "different", "pairs.tsv: unknown verdict %s",
                             fld[2]);
            different++;
            cr_expect_str_neq(a, b, "\"%s\" and \"%s\" must not match (both %s)", fld[0],
                              fld[1], a);
        }
    }
    fclose(f);
    cr_expect_geq(same + different, 40, "issue 15 asks for at least 40 pairs");
    cr_expect_geq(different, 10, "too few pairs that must not match");
}

Test(company, exact_keys) {
    FILE *f = s_open("keys.tsv");
    char line[1024];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *fld[2];
        cr_assert_eq(s_split(line, fld, 2), 2);
        char k[LF_COMPANY_KEY_SIZE];
        cr_expect_eq(lf_company_key(fld[0], k, sizeof k, NULL), 0, "%s", fld[0]);
        cr_expect_str_eq(k, fld[1], "%s", fld[0]);
        n++;
    }
    fclose(f);
    cr_expect_gt(n, 0);
}

Test(company, empty_and_bad_input) {
    char k[LF_COMPANY_KEY_SIZE];
    const char *why = NULL;
    cr_expect_eq(lf_company_key(NULL, k, sizeof k, &why), 1);
    cr_expect_str_eq(k, "");
    cr_expect_eq(lf_company_key("  ", k, sizeof k, &why), 1);
    cr_expect_eq(lf_company_key("（）", k, sizeof k, &why), 1);
    cr_expect_eq(lf_company_key("\xff", k, sizeof k, &why), -1);
    cr_expect_str_eq(why, "not valid UTF-8");
    cr_expect_eq(lf_company_key("华东医疗器械有限公司", k, 4, &why), -1);
    cr_expect_str_eq(k, "");
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_expect_eq(lf_company_key(big, k, sizeof k, &why), -1);
}
