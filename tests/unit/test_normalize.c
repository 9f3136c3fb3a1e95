/* test_normalize.c - the field normalizers against data-driven fixtures and edge cases.
 *
 * The bulk of the coverage lives in tests/fixtures/normalize/<rule>/<case>/, in the style
 * of jansson's test suites, so that adding a case is adding files:
 *   input     the raw bytes given to the rule (no trailing newline unless it is the
 * point); expected  the expected output (for budget, a JSON object, {"unparsed":true} for
 * 1); empty     present instead of expected when the rule must return 1 (absent); error
 * present instead of expected when the rule must return -1; currency  optional, budget
 * only: the default currency passed in (else "CNY"). Each case becomes one Criterion
 * parameterized test, and every failure names its case. The fixture root is $LF_FIXTURES
 * or "tests/fixtures" (tests run from the repo root). The direct tests below cover what
 * files cannot express: buffer sizes, NULLs, 10 KB input.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistr.h>
#include <unicase.h>
#include <uninorm.h>

#include "lf/normalize.h"

#define S_MIN_CASES 80

typedef struct {
    char rule[32];
    char name[200];
} s_case_t;

static const char *s_root(void) {
    const char *r = getenv("LF_FIXTURES");
    return r && *r ? r : "tests/fixtures";
}

/* Reads a whole file; NULL when it does not exist. Caller owns the result. */
static char *s_slurp(const char *dir, const char *file, size_t *len) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (!buf)
        abort();
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int s_exists(const char *dir, const char *file) {
    char path[2048];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return stat(path, &st) == 0;
}

static int s_cmp_names(const void *a, const void *b) {
    const s_case_t *x = a, *y = b;
    int c = strcmp(x->rule, y->rule);
    return c ? c : strcmp(x->name, y->name);
}

static void s_free_cases(struct criterion_test_params *p) {
    cr_free(p->params);
}

/* Walks <root>/normalize/<rule>/<case>/ and turns every folder into a test parameter. The
   parameters live in Criterion's shared memory (cr_malloc) as the docs require. */
ParameterizedTestParameters(normalize, fixture) {
    char base[1024];
    snprintf(base, sizeof base, "%s/normalize", s_root());
    size_t cap = 512, n = 0;
    s_case_t *tmp = calloc(cap, sizeof *tmp);
    DIR *rules = opendir(base);
    struct dirent *r, *c;
    while (tmp && rules && (r = readdir(rules))) {
        if (r->d_name[0] == '.' || strlen(r->d_name) >= sizeof tmp->rule)
            continue;
        char rdir[1300];
        snprintf(rdir, sizeof rdir, "%s/%s", base, r->d_name);
        DIR *cases = opendir(rdir);
        while (cases && (c = readdir(cases))) {
            if (c->d_name[0] == '.' || strlen(c->d_name) >= sizeof tmp->name)
                continue;
            if (n == cap) {
                cap *= 2;
                tmp = realloc(tmp, cap * sizeof *tmp);
                if (!tmp)
                    abort();
            }
            /* Both lengths were checked above, so the copies include the NUL. */
            memcpy(tmp[n].rule, r->d_name, strlen(r->d_name) + 1);
            memcpy(tmp[n].name, c->d_name, strlen(c->d_name) + 1);
            n++;
        }
        if (cases)
            closedir(cases);
    }
    if (rules)
        closedir(rules);
    qsort(tmp, n, sizeof *tmp, s_cmp_names);
    /* An empty walk must still produce one test, which then fails loudly. */
    size_t m = n ? n : 1;
    s_case_t *params = cr_calloc(m, sizeof *params);
    if (n)
        memcpy(params, tmp, n * sizeof *tmp);
    else
        snprintf(params[0].rule, sizeof params[0].rule, "(no fixtures)");
    free(tmp);
    return cr_make_param_array(s_case_t, params, m, s_free_cases);
}

typedef int (*s_string_rule_t)(const char *, char *, size_t, const char **);

static void s_check_budget(const s_case_t *tc, const char *dir, const char *input,
                           int want_error) {
    char *cur = s_slurp(dir, "currency", NULL);
    if (cur)
        cur[strcspn(cur, "\n")] = '\0';
    lf_budget_t b;
    const char *why = NULL;
    int rc = lf_norm_budget(input, cur ? cur : "CNY", &b, &why);
    free(cur);
    if (want_error) {
        cr_expect_eq(rc, -1, "budget/%s: want -1, got %d (min %.17g max %.17g)", tc->name,
                     rc, b.min, b.max);
        cr_expect(why && *why, "budget/%s: -1 without a reason", tc->name);
        return;
    }
    char *exp = s_slurp(dir, "expected", NULL);
    cr_assert(exp, "budget/%s: no expected, empty or error file", tc->name);
    json_error_t jerr;
    json_t *j = json_loads(exp, 0, &jerr);
    free(exp);
    cr_assert(j, "budget/%s: expected is not JSON: %s", tc->name, jerr.text);
    if (json_is_true(json_object_get(j, "unparsed"))) {
        cr_expect_eq(rc, 1, "budget/%s: want 1 (unparsed), got %d", tc->name, rc);
        json_decref(j);
        return;
    }
    cr_expect_eq(rc, 0, "budget/%s: want 0, got %d (%s)", tc->name, rc, why ? why : "");
    if (rc == 0) {
        const char *ends[2] = {"min", "max"};
        int has[2] = {b.has_min, b.has_max};
        double got[2] = {b.min, b.max};
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(j, ends[i]);
            if (!v || json_is_null(v)) {
                cr_expect_not(has[i], "budget/%s: %s should be null, got %.17g", tc->name,
                              ends[i], got[i]);
            } else {
                double w = json_number_value(v);
                cr_expect(has[i] && fabs(got[i] - w) <= 1e-6 * fmax(1, fabs(w)),
                          "budget/%s: %s want %.17g got %s%.17g", tc->name, ends[i], w,
                          has[i] ? "" : "(null) ", got[i]);
            }
        }
        const char *wc = json_string_value(json_object_get(j, "currency"));
        cr_expect(wc && strcmp(wc, b.currency) == 0, "budget/%s: currency want %s got %s",
                  tc->name, wc ? wc : "?", b.currency);
    }
    json_decref(j);
}

ParameterizedTest(s_case_t *tc, normalize, fixture) {
    char dir[1600];
    snprintf(dir, sizeof dir, "%s/normalize/%s/%s", s_root(), tc->rule, tc->name);
    char *input = s_slurp(dir, "input", NULL);
    cr_assert(input, "%s/%s: no input file in %s", tc->rule, tc->name, dir);
    int want_error = s_exists(dir, "error");
    int want_empty = s_exists(dir, "empty");
    char *exp = s_slurp(dir, "expected", NULL);

    s_string_rule_t fn = NULL;
    if (strcmp(tc->rule, "text") == 0)
        fn = lf_norm_text;
    else if (strcmp(tc->rule, "name") == 0)
        fn = lf_norm_name;
    else if (strcmp(tc->rule, "email") == 0)
        fn = lf_norm_email;
    else if (strcmp(tc->rule, "phone") == 0)
        fn = lf_norm_phone;

    const char *why = NULL;
    if (fn) {
        char out[4096];
        memset(out, 'Z', sizeof out);
        int rc = fn(input, out, sizeof out, &why);
        if (want_error) {
            cr_expect_eq(rc, -1, "%s/%s: want -1, got %d with \"%s\"", tc->rule, tc->name,
                         rc, out);
            cr_expect(why && *why, "%s/%s: -1 without a reason", tc->rule, tc->name);
        } else if (want_empty) {
            cr_expect_eq(rc, 1, "%s/%s: want 1 (empty), got %d with \"%s\"", tc->rule,
                         tc->name, rc, out);
            cr_expect_str_eq(out, "", "%s/%s: empty result must be \"\"", tc->rule,
                             tc->name);
        } else {
            cr_assert(exp, "%s/%s: no expected, empty or error file", tc->rule, tc->name);
            cr_expect_eq(rc, 0, "%s/%s: want 0, got %d (%s)", tc->rule, tc->name, rc,
                         why ? why : "");
            cr_expect_str_eq(out, exp, "%s/%s: want \"%s\" got \"%s\"", tc->rule,
                             tc->name, exp, out);
        }
    } else if (strcmp(tc->rule, "budget") == 0) {
        s_check_budget(tc, dir, input, want_error);
    } else if (strcmp(tc->rule, "urgency") == 0 || strcmp(tc->rule, "bool") == 0) {
        int is_bool = tc->rule[0] == 'b';
        const char *u = NULL;
        int bv = -7;
        int rc =
            is_bool ? lf_norm_bool(input, &bv, &why) : lf_norm_urgency(input, &u, &why);
        char got[16];
        snprintf(got, sizeof got, "%s",
                 is_bool ? (bv == 1   ? "true"
                            : bv == 0 ? "false"
                                      : "-")
                         : (u ? u : "-"));
        if (want_error || want_empty) {
            cr_expect_eq(rc, want_error ? -1 : 1, "%s/%s: want %d, got %d (%s)", tc->rule,
                         tc->name, want_error ? -1 : 1, rc, got);
        } else {
            cr_assert(exp, "%s/%s: no expected, empty or error file", tc->rule, tc->name);
            exp[strcspn(exp, "\n")] = '\0';
            cr_expect_eq(rc, 0, "%s/%s: want 0, got %d", tc->rule, tc->name, rc);
            cr_expect_str_eq(got, exp, "%s/%s: want %s got %s", tc->rule, tc->name, exp,
                             got);
        }
    } else {
        cr_assert_fail("%s/%s: unknown rule folder", tc->rule, tc->name);
    }
    free(exp);
    free(input);
}

/* The fixture walk must find the suite; a wrong LF_FIXTURES must not pass as "0
 * failures". */
Test(normalize, fixture_count) {
    char base[1024];
    snprintf(base, sizeof base, "%s/normalize", s_root());
    size_t n = 0;
    DIR *rules = opendir(base);
    cr_assert(rules, "cannot open %s", base);
    struct dirent *r;
    while ((r = readdir(rules))) {
        if (r->d_name[0] == '.')
            continue;
        char rdir[1300];
        snprintf(rdir, sizeof rdir, "%s/%s", base, r->d_name);
        DIR *cases = opendir(rdir);
        struct dirent *c;
        while (cases && (c = readdir(cases)))
            n += c->d_name[0] != '.';
        if (cases)
            closedir(cases);
    }
    closedir(rules);
    cr_expect_geq(n, S_MIN_CASES, "only %zu fixture cases", n);
}

/* ---- direct edge cases ------------------------------------------------------------- */

Test(normalize, utf8_valid) {
    cr_expect_eq(lf_utf8_valid("abc", 3), 1);
    cr_expect_eq(lf_utf8_valid("\xe4\xb8\xad", 3), 1);     /* 中 */
    cr_expect_eq(lf_utf8_valid("\xf4\x8f\xbf\xbf", 4), 1); /* U+10FFFF */
    cr_expect_eq(lf_utf8_valid("\xc0\xaf", 2), 0);         /* overlong '/' */
    cr_expect_eq(lf_utf8_valid("\xe0\x80\xaf", 3), 0);     /* overlong, 3 bytes */
    cr_expect_eq(lf_utf8_valid("\xf0\x80\x80\xaf", 4), 0); /* overlong, 4 bytes */
    cr_expect_eq(lf_utf8_valid("\xed\xa0\x80", 3), 0);     /* surrogate D800 */
    cr_expect_eq(lf_utf8_valid("\xf4\x90\x80\x80", 4), 0); /* U+110000 */
    cr_expect_eq(lf_utf8_valid("\xe4\xb8", 2), 0);         /* truncated */
    cr_expect_eq(lf_utf8_valid("\x80", 1), 0);             /* lone continuation */
    cr_expect_eq(lf_utf8_valid("\xff", 1), 0);
    cr_expect_eq(lf_utf8_valid("a\0b", 3), 1);
    cr_expect_eq(lf_utf8_valid(NULL, 0), 1);
}

Test(normalize, utf8_chars) {
    cr_expect_eq(lf_utf8_chars("abc"), 3);
    cr_expect_eq(lf_utf8_chars("张三"), 2);
    cr_expect_eq(lf_utf8_chars("１３８"), 3);
    cr_expect_eq(lf_utf8_chars(""), 0);
    cr_expect_eq(lf_utf8_chars(NULL), 0);
    cr_expect_eq(lf_utf8_chars("\xff\xfe"), 2);
}

Test(normalize, buffer_too_small) {
    char out[8];
    const char *why = NULL;
    cr_expect_eq(lf_norm_text("hello world", out, 8, &why), -1);
    cr_expect_str_eq(out, "");
    cr_expect_str_eq(why, "too long");
    cr_expect_eq(lf_norm_text("1234567", out, 8, NULL), 0); /* exactly fits */
    cr_expect_str_eq(out, "1234567");
    cr_expect_eq(lf_norm_text("x", out, 0, &why), -1);
    cr_expect_eq(lf_norm_text("x", NULL, 8, &why), -1);
    cr_expect_eq(lf_norm_name("张三", out, 6, &why), -1); /* 6 bytes + NUL */
    cr_expect_eq(lf_norm_name("张三", out, 7, &why), 0);
    char e[LF_E164_SIZE];
    cr_expect_eq(lf_norm_phone("13800138000", e, 14, &why), -1);
    cr_expect_str_eq(e, "");
    cr_expect_eq(lf_norm_phone("13800138000", e, 15, &why), 0);
    cr_expect_str_eq(e, "+8613800138000");
    cr_expect_eq(lf_norm_phone("+1 201 555 0123", e, 13, &why), 0);
    cr_expect_str_eq(e, "+12015550123");
    cr_expect_eq(lf_norm_email("a@b.cn", out, 6, &why), -1);
    cr_expect_eq(lf_norm_email("a@b.cn", out, 7, &why), 0);
}

Test(normalize, null_and_empty) {
    char out[16];
    const char *why = NULL, *u = (const char *)1;
    int b = 7;
    cr_expect_eq(lf_norm_text(NULL, out, sizeof out, &why), 1);
    cr_expect_eq(lf_norm_email(NULL, out, sizeof out, &why), 1);
    cr_expect_eq(lf_norm_phone(NULL, out, sizeof out, &why), 1);
    cr_expect_eq(lf_norm_urgency(NULL, &u, &why), 1);
    cr_expect_null(u);
    cr_expect_eq(lf_norm_bool(" \t", &b, &why), 1);
    cr_expect_eq(b, 7, "*out must be untouched when absent");
    lf_budget_t bud;
    cr_expect_eq(lf_norm_budget(NULL, NULL, &bud, &why), 1);
    cr_expect_eq(lf_norm_budget("", "CNY", &bud, NULL), 1);
}

Test(normalize, invalid_utf8_everywhere) {
    static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80", "ab\xff", "\xe4\xb8",
                                      "\xf8\x88\x80\x80\x80"};
    char out[64];
    lf_budget_t b;
    const char *u;
    int v;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = NULL;
        cr_expect_eq(lf_norm_text(bad[i], out, sizeof out, &why), -1, "case %zu", i);
        cr_expect_str_eq(why, "not valid UTF-8");
        cr_expect_eq(lf_norm_name(bad[i], out, sizeof out, NULL), -1);
        cr_expect_eq(lf_norm_email(bad[i], out, sizeof out, NULL), -1);
        cr_expect_eq(lf_norm_phone(bad[i], out, sizeof out, NULL), -1);
        cr_expect_eq(lf_norm_budget(bad[i], "CNY", &b, NULL), -1);
        cr_expect_eq(lf_norm_urgency(bad[i], &u, NULL), -1);
        cr_expect_eq(lf_norm_bool(bad[i], &v, NULL), -1);
    }
}

static char *s_repeat(const char *unit, size_t times) {
    size_t ul = strlen(unit);
    char *s = malloc(ul * times + 1);
    cr_assert(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * times] = '\0';
    return s;
}

Test(normalize, ten_kilobyte_inputs) {
    char *big = s_repeat("a ", 5120); /* 10 KB, collapses to 5119 spaces between a's */
    size_t sz = 16384;
    char *out = malloc(sz);
    const char *why = NULL;
    lf_budget_t b;
    int v;
    const char *u;
    cr_expect_eq(lf_norm_text(big, out, sz, &why), 0);
    cr_expect_eq(strlen(out), 10239);
    cr_expect_eq(lf_norm_name(big, out, sz, &why), -1);
    cr_expect_str_eq(why, "name too long");
    cr_expect_eq(lf_norm_email(big, out, sz, NULL), -1);
    cr_expect_eq(lf_norm_phone(big, out, sz, NULL), -1);
    cr_expect_eq(lf_norm_urgency(big, &u, NULL), -1);
    cr_expect_eq(lf_norm_bool(big, &v, NULL), -1);
    free(big);

    char *digits = s_repeat("9", 10240);
    cr_expect_eq(lf_norm_phone(digits, out, sz, NULL), -1);
    cr_expect_eq(lf_norm_budget(digits, "CNY", &b, &why), -1);
    cr_expect_str_eq(why, "amount too large");
    free(digits);

    char *wide =
        s_repeat("\xef\xbc\x91", 3500); /* full-width １, 10.5 KB -> 3500 bytes */
    cr_expect_eq(lf_norm_text(wide, out, sz, NULL), 0);
    cr_expect_eq(strlen(out), 3500);
    cr_expect_eq(out[0], '1');
    free(wide);

    char *zw = s_repeat("\xe2\x80\x8b", 3500); /* only zero-width spaces */
    cr_expect_eq(lf_norm_text(zw, out, sz, NULL), 1);
    free(zw);

    /* A local part of 10 KB is far past 64 bytes. */
    char *mail = s_repeat("x", 10240);
    mail[10230] = '@';
    memcpy(mail + 10231, "ex.com", 6);
    mail[10237] = '\0';
    cr_expect_eq(lf_norm_email(mail, out, sz, NULL), -1);
    free(mail);
    free(out);
}

Test(normalize, input_cap) {
    char *huge = s_repeat("a", LF_NORM_MAX_INPUT + 1);
    char out[8];
    const char *why = NULL;
    cr_expect_eq(lf_norm_text(huge, out, sizeof out, &why), -1);
    cr_expect_str_eq(why, "too long");
    free(huge);
}

Test(normalize, name_limit) {
    char out[LF_NAME_SIZE];
    char *s = s_repeat("张", 100);
    cr_expect_eq(lf_norm_name(s, out, sizeof out, NULL), 0, "100 characters are allowed");
    free(s);
    s = s_repeat("张", 101);
    cr_expect_eq(lf_norm_name(s, out, sizeof out, NULL), -1);
    free(s);
}

Test(normalize, budget_number) {
    lf_budget_t b;
    cr_expect_eq(lf_norm_budget_number(300000, NULL, &b), 0);
    cr_expect(b.has_min && b.has_max && b.min == 300000 && b.max == 300000);
    cr_expect_str_eq(b.currency, "CNY");
    cr_expect_eq(lf_norm_budget_number(20000, "usd", &b), 0);
    cr_expect_str_eq(b.currency, "USD");
    cr_expect_eq(lf_norm_budget_number(0, "CNY", &b), 0);
    cr_expect_eq(lf_norm_budget_number(-1, "CNY", &b), -1);
    cr_expect_eq(lf_norm_budget_number(NAN, "CNY", &b), -1);
    cr_expect_eq(lf_norm_budget_number(INFINITY, "CNY", &b), -1);
    cr_expect_eq(lf_norm_budget_number(1e14, "CNY", &b), -1);
    cr_expect_eq(lf_norm_budget_number(1, "US", &b), -1);
    cr_expect_eq(lf_norm_budget_number(1, "U$D", &b), -1);
    cr_expect_not(b.has_min || b.has_max, "out is zeroed on -1");
}

Test(normalize, budget_default_currency) {
    lf_budget_t b;
    const char *why = NULL;
    cr_expect_eq(lf_norm_budget("50万", "hkd", &b, &why), 0);
    cr_expect_str_eq(b.currency, "HKD");
    cr_expect_eq(lf_norm_budget("50万", "人民币", &b, &why), -1);
    cr_expect_str_eq(why, "not a valid currency code");
    cr_expect_eq(lf_norm_budget("50万", NULL, &b, &why), 0);
    cr_expect_str_eq(b.currency, "CNY");
}

Test(normalize, why_is_optional) {
    char out[32];
    const char *u;
    int v;
    lf_budget_t b;
    cr_expect_eq(lf_norm_phone("12345", out, sizeof out, NULL), -1);
    cr_expect_eq(lf_norm_email("nope", out, sizeof out, NULL), -1);
    cr_expect_eq(lf_norm_urgency("someday", &u, NULL), -1);
    cr_expect_eq(lf_norm_bool("maybe", &v, NULL), -1);
    cr_expect_eq(lf_norm_budget("-5", "CNY", &b, NULL), -1);
}

/* lf_norm_text skips NFKC for text of printable ASCII and CJK unified ideographs
 * (U+4E00-U+9FFF) only, because NFKC leaves such text as it is. Checked here against
 * libunistring itself: every one of those characters alone, and all of them in one
 * text (so that no neighbour composes with the next), come back unchanged. */
/* lf_norm_email lowers an all-ASCII address byte by byte instead of asking
 * u8_tolower (with NFKC): the same answer, checked here against libunistring for every
 * ASCII character alone and for all of them in one text, and on addresses. */
Test(normalize, an_ascii_address_is_lowered_as_u8_tolower_lowers_it) {
    uint8_t all[128];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) {
        uint8_t one = (uint8_t)c,
                want = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        size_t ll = 0;
        uint8_t *low = u8_tolower(&one, 1, NULL, UNINORM_NFKC, NULL, &ll);
        cr_assert(low);
        cr_expect(ll == 1 && low[0] == want, "0x%02x lowers to something else", c);
        free(low);
        all[n++] = one;
    }
    size_t ll = 0;
    uint8_t *low = u8_tolower(all, n, NULL, UNINORM_NFKC, NULL, &ll);
    cr_assert(low);
    cr_expect_eq(ll, n);
    for (size_t i = 0; i < n && i < ll; i++)
        cr_expect_eq(low[i],
                     (all[i] >= 'A' && all[i] <= 'Z') ? all[i] - 'A' + 'a' : all[i]);
    free(low);
    char out[320];
    const char *why = NULL;
    cr_expect_eq(lf_norm_email(" Wang.Fang+Q4@Example.COM ", out, sizeof out, &why), 0);
    cr_expect_str_eq(out, "wang.fang+q4@example.com");
    /* Not ASCII: the library's path, full-width letters and the ideographic stop. */
    cr_expect_eq(lf_norm_email("ＷＦ@Example\xE3\x80\x82"
                               "com",
                               out, sizeof out, &why),
                 0);
    cr_expect_str_eq(out, "wf@example.com");
}

Test(normalize, nfkc_leaves_ascii_and_cjk_unified_ideographs_as_they_are) {
    size_t cap = (0x7f - 0x20) + 3 * (0x9fff - 0x4e00 + 1) + 1, n = 0;
    uint8_t *all = malloc(cap);
    cr_assert(all);
    for (ucs4_t uc = 0x20; uc <= 0x9fff; uc++) {
        if (uc == 0x7f)
            uc = 0x4e00;
        uint8_t one[4];
        int k = u8_uctomb(one, uc, sizeof one);
        cr_assert(k > 0);
        size_t nl = 0;
        uint8_t *norm = u8_normalize(UNINORM_NFKC, one, (size_t)k, NULL, &nl);
        cr_assert(norm);
        cr_expect(nl == (size_t)k && !memcmp(norm, one, nl), "U+%04X changes under NFKC",
                  (unsigned)uc);
        free(norm);
        memcpy(all + n, one, (size_t)k);
        n += (size_t)k;
    }
    size_t nl = 0;
    uint8_t *norm = u8_normalize(UNINORM_NFKC, all, n, NULL, &nl);
    cr_assert(norm);
    cr_expect(nl == n && !memcmp(norm, all, n));
    free(norm);
    free(all);
    /* And the rule itself on such text: white space collapsed and trimmed, nothing
     * else touched. */
    char out[128];
    const char *why = NULL;
    cr_expect_eq(lf_norm_text("  上海华东  医疗 Co.,  Ltd ", out, sizeof out, &why), 0);
    cr_expect_str_eq(out, "上海华东 医疗 Co., Ltd");
    /* Text outside that set still goes through NFKC: full-width letters fold. */
    cr_expect_eq(lf_norm_text("ＡＢＣ 上海", out, sizeof out, &why), 0);
    cr_expect_str_eq(out, "ABC 上海");
}
