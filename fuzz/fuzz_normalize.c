/* fuzz_normalize.c - libFuzzer entry point for every field normalizer.
 *
 * The normalizers take NUL-terminated strings from untrusted clients, so the fuzzer makes
 * a NUL-terminated copy of its bytes (an embedded NUL simply ends the string early, as it
 * would for any C caller) and hands it to each rule. Beyond "no crash, no leak, no UB",
 * it checks the promises callers rely on: results are NUL-terminated valid UTF-8 that fit
 * the buffer, normalization is idempotent, e-mails and phones have their documented
 * shape, and budgets are finite, ordered and within bounds. Phones go through
 * libphonenumber (common/phone.c and its C++ shim) and company names through the company
 * key (common/company.c, ICU), with their own promises checked.
 * See fuzz/README.md for the build and run lines.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf/company.h"
#include "lf/normalize.h"
#include "lf/phone.h"
#include "lf/phonenumber.h"

#define S_CHECK(cond)                                                                    \
    do {                                                                                 \
        if (!(cond))                                                                     \
            abort();                                                                     \
    } while (0)

typedef int (*s_rule_t)(const char *, char *, size_t, const char **);

/* Runs a string rule with a large buffer and with a tiny one, checking the contract. */
static void s_string_rule(s_rule_t fn, const char *in, int idempotent) {
    char out[4096], again[4096], tiny[5];
    const char *why = NULL;
    int rc = fn(in, out, sizeof out, &why);
    S_CHECK(rc == -1 || rc == 0 || rc == 1);
    S_CHECK(memchr(out, '\0', sizeof out) != NULL);
    if (rc == -1)
        S_CHECK(why && *why);
    if (rc == 1)
        S_CHECK(out[0] == '\0');
    if (rc == 0) {
        S_CHECK(out[0] != '\0');
        S_CHECK(lf_utf8_valid(out, strlen(out)));
        if (idempotent) {
            int rc2 = fn(out, again, sizeof again, NULL);
            S_CHECK(rc2 == 0 && strcmp(out, again) == 0);
        }
    }
    memset(tiny, 'Z', sizeof tiny);
    int rct = fn(in, tiny, sizeof tiny, NULL);
    S_CHECK(memchr(tiny, '\0', sizeof tiny) != NULL);
    if (rct == 0)
        S_CHECK(rc == 0 && strcmp(tiny, out) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    (void)lf_utf8_valid(s, size);
    (void)lf_utf8_chars(s);

    s_string_rule(lf_norm_text, s, 1);
    s_string_rule(lf_norm_name, s, 1);
    s_string_rule(lf_norm_email, s, 1);
    s_string_rule(lf_norm_phone, s, 1);

    char e164[LF_E164_SIZE];
    if (lf_norm_phone(s, e164, sizeof e164, NULL) == 0) {
        size_t n = strlen(e164);
        /* libphonenumber takes short numbers as valid (+49 40 304: 8 characters). */
        S_CHECK(e164[0] == '+' && n >= 4 && n <= 16 && e164[1] != '0');
        for (size_t i = 1; i < n; i++)
            S_CHECK(e164[i] >= '0' && e164[i] <= '9');
    }
    /* The whole phone verdict: a valid number has a known type and a two-letter country
       (none for the non-geographic calling codes such as +888);
       a parsed-but-invalid one keeps an E.164 and is "unknown"; the rest has nothing. */
    lf_phone_t ph;
    const char *pwhy = NULL;
    int prc = lf_phone_parse(s, NULL, &ph, &pwhy);
    S_CHECK(prc == 0 || prc == 1 || prc == -1 || prc == -2);
    S_CHECK(ph.type && ph.lib_type);
    if (prc == 0) {
        S_CHECK(ph.e164[0] == '+' && (strlen(ph.country) == 2 || ph.country[0] == '\0'));
        S_CHECK(!strcmp(ph.type, "mobile") || !strcmp(ph.type, "fixed_line") ||
                !strcmp(ph.type, "toll_free") || !strcmp(ph.type, "voip") ||
                !strcmp(ph.type, "unknown"));
        char again[LF_E164_SIZE];
        S_CHECK(lf_norm_phone(ph.e164, again, sizeof again, NULL) == 0 &&
                !strcmp(again, ph.e164));
    } else if (prc == -2) {
        S_CHECK(ph.e164[0] == '+' && !strcmp(ph.type, "unknown") && pwhy && *pwhy);
    } else {
        S_CHECK(ph.e164[0] == '\0' && (prc == 1 || (pwhy && *pwhy)));
    }

    /* The shim's shortcut for Chinese mobile numbers answers what Parse() answers. */
    for (int r = 0; r < 2; r++) {
        const char *region = r ? "US" : "CN";
        lf_pn_result_t a, b;
        int ra = lf_pn_parse(s, region, &a), rb = lf_pn_parse_library(s, region, &b);
        S_CHECK(ra == rb && !strcmp(a.e164, b.e164) && !strcmp(a.type, b.type) &&
                !strcmp(a.country, b.country) && a.country_code == b.country_code &&
                a.valid == b.valid && a.reason == b.reason);
    }

    /* The company key: letters and digits only, never longer than the name. */
    char key[LF_COMPANY_KEY_SIZE];
    const char *kwhy = NULL;
    int krc = lf_company_key(s, key, sizeof key, &kwhy);
    S_CHECK(krc == 0 || krc == 1 || krc == -1);
    if (krc == 0) {
        S_CHECK(key[0] && lf_utf8_valid(key, strlen(key)) && !strchr(key, ' '));
        S_CHECK(!strpbrk(key, "()[],.;:!?'\"-_/\\&"));
    } else {
        S_CHECK(key[0] == '\0' && (krc == 1 || (kwhy && *kwhy)));
    }
    char small[8];
    if (lf_company_key(s, small, sizeof small, NULL) == 0)
        S_CHECK(krc == 0 && !strcmp(small, key));

    char mail[LF_EMAIL_SIZE];
    if (lf_norm_email(s, mail, sizeof mail, NULL) == 0) {
        char *at = strchr(mail, '@');
        S_CHECK(at && !strchr(at + 1, '@') && !strchr(mail, ' ') && strchr(at, '.'));
    }

    lf_budget_t b;
    const char *why = NULL;
    int rc = lf_norm_budget(s, "CNY", &b, &why);
    S_CHECK(rc == -1 || rc == 0 || rc == 1);
    if (rc == 0) {
        S_CHECK(b.has_min || b.has_max);
        S_CHECK(isfinite(b.min) && isfinite(b.max) && b.min >= 0 && b.max >= 0);
        S_CHECK(b.min <= 1e13 && b.max <= 1e13);
        if (b.has_min && b.has_max)
            S_CHECK(b.min <= b.max);
        S_CHECK(strlen(b.currency) == 3);
    } else {
        S_CHECK(!b.has_min && !b.has_max);
    }
    /* The fuzz input doubles as the default currency: it must be validated, not trusted.
     */
    (void)lf_norm_budget("10-20万", s, &b, NULL);

    const char *u = NULL;
    rc = lf_norm_urgency(s, &u, NULL);
    S_CHECK(rc == 0 ? u != NULL : u == NULL);
    int v = 7;
    rc = lf_norm_bool(s, &v, NULL);
    S_CHECK(rc == 0 ? (v == 0 || v == 1) : v == 7);

    double d;
    if (size >= sizeof d) {
        memcpy(&d, data, sizeof d);
        (void)lf_norm_budget_number(d, "CNY", &b);
    }
    free(s);
    return 0;
}
