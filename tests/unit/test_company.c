/* test_company.c - the company key (common/company.c), data-driven:
 * tests/fixtures/company/pairs.tsv lists pairs that must and must not get the same key,
 * keys.tsv some exact keys. Adding a case is adding a line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utrans.h>

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

/* The compiled-in traditional-to-simplified table is ICU's transliterator: the same for
   every code point and on strings (no context rules), against the ICU linked here. */
Test(company, simplification_is_icus_transliterator) {
    UErrorCode st = U_ZERO_ERROR;
    UChar id[32];
    u_uastrcpy(id, "Traditional-Simplified");
    UTransliterator *t = utrans_openU(id, -1, UTRANS_FORWARD, NULL, 0, NULL, &st);
    cr_assert(U_SUCCESS(st), "ICU: %s", u_errorName(st));
    size_t differ = 0, mapped = 0;
    UChar32 sample[4096];
    size_t ns = 0;
    for (UChar32 c = 0x80; c <= 0x10FFFF; c++) {
        if (U_IS_SURROGATE(c) || !u_isdefined(c))
            continue;
        UChar u[8];
        int32_t len = 0;
        U16_APPEND_UNSAFE(u, len, c);
        int32_t lim = len, l = len;
        st = U_ZERO_ERROR;
        utrans_transUChars(t, u, &l, 8, 0, &lim, &st);
        int32_t i = 0;
        UChar32 d;
        U16_NEXT(u, i, l, d);
        if (i != l || (ucs4_t)d != lf_company_simplify_char((ucs4_t)c)) {
            if (differ++ < 10)
                cr_log_error("U+%04X: ICU gives U+%04X, the table U+%04X", (unsigned)c,
                             (unsigned)d, (unsigned)lf_company_simplify_char((ucs4_t)c));
        }
        if (d != c) {
            mapped++;
            if (ns < 4096)
                sample[ns++] = c;
        }
    }
    cr_expect_eq(differ, 0, "%zu code points differ: run tools/gen/t2s_table.c", differ);
    cr_expect_gt(mapped, 2000);
    /* Strings of mapped characters with plain ones between them. */
    srand(15);
    for (int k = 0; k < 500; k++) {
        UChar u[128], v[128];
        int32_t len = 0, vl = 0;
        for (int j = 0; j < 20; j++) {
            UChar32 c = (j % 3 == 2) ? (UChar32)(0x4E00 + rand() % 0x5000)
                                     : sample[(size_t)rand() % ns];
            U16_APPEND_UNSAFE(u, len, c);
            U16_APPEND_UNSAFE(v, vl, (UChar32)lf_company_simplify_char((ucs4_t)c));
        }
        int32_t lim = len;
        st = U_ZERO_ERROR;
        utrans_transUChars(t, u, &len, 128, 0, &lim, &st);
        cr_expect(len == vl && memcmp(u, v, (size_t)len * sizeof *u) == 0,
                  "string %d: ICU and the table differ", k);
    }
    utrans_close(t);
}
