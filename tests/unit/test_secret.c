/* Notification secrets sealed with AES-256-GCM (common/secret.c): keys as hex or
 * base64, a round trip, plain values written before encryption passed through, and the
 * clear refusals: no key, another key, a damaged value, a malformed key. Secrets named
 * by reference in a configuration file (common/secret_ref.c), as a table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf/secret.h"
#include "lf/secret_ref.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
/* KEY_A in base64 */
#define KEY_A64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static lf_secret_key_t *s_key(const char *text) {
    lf_secret_key_t *k = NULL;
    char err[200] = "";
    cr_assert_eq(lf_secret_key_parse(text, &k, err, sizeof err), 0, "%s", err);
    cr_assert(k);
    return k;
}

Test(secret, a_sealed_secret_opens_with_its_key_and_hides_the_text) {
    lf_secret_key_t *a = s_key(KEY_A), *a64 = s_key(KEY_A64);
    char *s1 = lf_secret_seal(a, "SECding-0123456789"),
         *s2 = lf_secret_seal(a, "SECding-0123456789");
    cr_assert(s1 && s2);
    cr_expect(lf_secret_is_sealed(s1));
    cr_expect(!strstr(s1, "SECding"), "%s", s1);
    cr_expect_str_neq(s1, s2, "a new nonce each time");
    char *plain = NULL, err[200] = "";
    cr_assert_eq(lf_secret_open(a, s1, &plain, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(plain, "SECding-0123456789");
    free(plain);
    cr_assert_eq(lf_secret_open(a64, s2, &plain, err, sizeof err), 0,
                 "the same key in base64: %s", err);
    cr_expect_str_eq(plain, "SECding-0123456789");
    free(plain);
    char *empty = lf_secret_seal(a, "");
    cr_assert_eq(lf_secret_open(a, empty, &plain, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(plain, "");
    free(plain);
    free(empty);
    free(s1);
    free(s2);
    lf_secret_key_destroy(&a);
    lf_secret_key_destroy(&a64);
    cr_expect_null(a);
}

Test(secret, a_plain_value_from_before_is_used_as_it_is) {
    char *plain = NULL, err[200] = "";
    cr_assert_eq(lf_secret_open(NULL, "whsec", &plain, err, sizeof err), 0);
    cr_expect_str_eq(plain, "whsec");
    free(plain);
}

Test(secret, another_key_no_key_or_a_damaged_value_is_a_clear_error) {
    lf_secret_key_t *a = s_key(KEY_A), *b = s_key(KEY_B);
    char *s = lf_secret_seal(a, "SECfei");
    char *plain = NULL, err[200] = "";
    cr_expect_eq(lf_secret_open(b, s, &plain, err, sizeof err), -1);
    cr_expect_null(plain);
    cr_expect(strstr(err, "another key"), "%s", err);
    err[0] = '\0';
    cr_expect_eq(lf_secret_open(NULL, s, &plain, err, sizeof err), -1);
    cr_expect(strstr(err, "LEADFLOW_SECRET_KEY is not set"), "%s", err);
    /* one byte of the ciphertext changed: the tag no longer matches */
    size_t at = strlen(LF_SECRET_PREFIX) + 20;
    s[at] = s[at] == 'A' ? 'B' : 'A';
    cr_expect_eq(lf_secret_open(a, s, &plain, err, sizeof err), -1);
    cr_expect_eq(lf_secret_open(a, LF_SECRET_PREFIX "abc", &plain, err, sizeof err), -1);
    cr_expect(strstr(err, "damaged"), "%s", err);
    cr_expect_eq(lf_secret_open(a, LF_SECRET_PREFIX "AAAA", &plain, err, sizeof err), -1);
    free(s);
    lf_secret_key_destroy(&a);
    lf_secret_key_destroy(&b);
}

Test(secret, a_malformed_key_is_refused_without_repeating_it) {
    const char *bad[] = {"short", KEY_A "00",
                         "zz0102030405060708090a0b0c0d0e0f"
                         "101112131415161718191a1b1c1d1e1f",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lf_secret_key_t *k = NULL;
        char err[200] = "";
        cr_expect_eq(lf_secret_key_parse(bad[i], &k, err, sizeof err), -1, "%s", bad[i]);
        cr_expect_null(k);
        cr_expect(strstr(err, "LEADFLOW_SECRET_KEY must be"), "%s", err);
        cr_expect(!strstr(err, bad[i]), "the key is not repeated: %s", err);
    }
    lf_secret_key_t *k = (lf_secret_key_t *)1;
    char err[10];
    cr_expect_eq(lf_secret_key_parse(NULL, &k, err, sizeof err), 0);
    cr_expect_null(k, "no key");
}

/* Each destination, with the secret it ends with or the start of the refusal. Files
 * under the test's own folder; one variable set, one empty. */
Test(secret, references_in_a_configuration_file) {
    char dir[] = "/tmp/lf-secret-ref.XXXXXX", path[3][128];
    cr_assert(mkdtemp(dir));
    const char *content[] = {"SECfile\n", "SECcrlf\r\n", ""};
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/s%d", dir, i);
        FILE *f = fopen(path[i], "w");
        cr_assert(f);
        fputs(content[i], f);
        fclose(f);
    }
    setenv("LF_TEST_REF_SET", "whsec-env", 1);
    setenv("LF_TEST_REF_EMPTY", "", 1);
    unsetenv("LF_TEST_REF_UNSET");
    char d0[256], d1[256], d2[256], d3[256];
    snprintf(d0, sizeof d0, "{\"type\": \"dingtalk\", \"secret_file\": \"%s\"}", path[0]);
    snprintf(d1, sizeof d1, "{\"type\": \"dingtalk\", \"secret_file\": \"%s\"}", path[1]);
    snprintf(d2, sizeof d2, "{\"type\": \"dingtalk\", \"secret_file\": \"%s\"}", path[2]);
    snprintf(d3, sizeof d3, "{\"type\": \"dingtalk\", \"secret_file\": \"%s/none\"}",
             dir);
    const struct {
        const char *dest, *secret, *refused;
    } cases[] = {
        {"{\"type\": \"webhook\", \"secret\": \"inline\"}", "inline", NULL},
        {"{\"type\": \"webhook\"}", NULL, NULL},
        {"{\"type\": \"webhook\", \"secret_env\": \"LF_TEST_REF_SET\"}", "whsec-env",
         NULL},
        {d0, "SECfile", NULL},
        {d1, "SECcrlf", NULL},
        {"{\"secret_env\": \"LF_TEST_REF_UNSET\"}", NULL,
         "secret_env: LF_TEST_REF_UNSET is not set or empty"},
        {"{\"secret_env\": \"LF_TEST_REF_EMPTY\"}", NULL,
         "secret_env: LF_TEST_REF_EMPTY is not set or empty"},
        {"{\"secret_env\": \"\"}", NULL, "secret_env must name"},
        {"{\"secret_env\": 7}", NULL, "secret_env must name"},
        {"{\"secret\": \"x\", \"secret_env\": \"LF_TEST_REF_SET\"}", NULL, "give one of"},
        {"{\"secret_env\": \"LF_TEST_REF_SET\", \"secret_file\": \"/x\"}", NULL,
         "give one of"},
        {"{\"secret_file\": \"relative/path\"}", NULL, "secret_file must be an absolute"},
        {d2, NULL, "secret_file: /tmp/lf-secret-ref."},
        {d3, NULL, "secret_file: cannot read"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *d = json_loads(cases[i].dest, 0, NULL);
        cr_assert(d, "case %zu", i);
        char why[300] = "";
        int rc = lf_secret_ref_resolve(d, why, sizeof why);
        if (cases[i].refused) {
            cr_expect_eq(rc, -1, "case %zu", i);
            cr_expect(strstr(why, cases[i].refused), "case %zu: %s", i, why);
            cr_expect(!strstr(why, "whsec-env"), "case %zu names the secret: %s", i, why);
        } else {
            cr_expect_eq(rc, 0, "case %zu: %s", i, why);
            const char *got = json_string_value(json_object_get(d, "secret"));
            if (cases[i].secret)
                cr_expect(got && !strcmp(got, cases[i].secret), "case %zu: %s", i,
                          got ? got : "(none)");
            else
                cr_expect_null(got, "case %zu", i);
            cr_expect_null(json_object_get(d, "secret_env"), "case %zu", i);
            cr_expect_null(json_object_get(d, "secret_file"), "case %zu", i);
        }
        json_decref(d);
    }
    for (int i = 0; i < 3; i++)
        unlink(path[i]);
    rmdir(dir);
}
