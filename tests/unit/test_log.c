#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lf/log.h"

Test(log, phone_numbers_are_masked) {
    char out[64];
    cr_expect_str_eq(lf_mask_phone("+8613800138000", out, sizeof out), "+86138****8000");
    cr_expect_str_eq(lf_mask_phone("123", out, sizeof out), "****");
    /* A short E.164 (a German fixed line of 7 digits): most of it stays hidden. It
       used to come out as +49403****0304, every digit shown. */
    cr_expect_str_eq(lf_mask_phone("+4940304", out, sizeof out), "+49****04");
    cr_expect_null(strstr(lf_mask_phone("+4940304", out, sizeof out), "403"));
    cr_expect_str_eq(lf_mask_phone("+4930123456", out, sizeof out), "+49****56");
    cr_expect_str_eq(lf_mask_phone(NULL, out, sizeof out), "-");
    cr_expect_null(strstr(lf_mask_phone("+8613800138000", out, sizeof out), "0013"));
}

Test(log, emails_keep_only_first_letter_and_domain) {
    char out[64];
    cr_expect_str_eq(lf_mask_email("wang.fang@example.com", out, sizeof out),
                     "w***@example.com");
    cr_expect_str_eq(lf_mask_email("@x", out, sizeof out), "***");
    cr_expect_str_eq(lf_mask_email("nodomain", out, sizeof out), "***");
}

Test(log, keys_show_at_most_four_characters) {
    char out[64];
    cr_expect_str_eq(lf_mask_key("dev-admin-key", out, sizeof out), "dev-***");
    cr_expect_str_eq(lf_mask_key("abcd", out, sizeof out), "ab***");
    char tiny[4];
    lf_mask_key("dev-admin-key", tiny, sizeof tiny);
    cr_expect_eq(strlen(tiny), 3, "output is truncated, never overflowed");
}

Test(log, levels_parse) {
    cr_expect_eq(lf_log_parse_level("debug"), LF_LOG_DEBUG);
    cr_expect_eq(lf_log_parse_level("WARN"), LF_LOG_WARN);
    cr_expect_eq(lf_log_parse_level("warning"), LF_LOG_WARN);
    cr_expect_eq(lf_log_parse_level("loud"), -1);
}

/* A free text and what a masking function leaves of it. */
typedef struct {
    const char *in, *out;
} s_case_t;

/* Runs fn (in place) on each case's text and compares. */
static void s_cases(char *(*fn)(char *), const s_case_t *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        fn(buf);
        cr_expect_str_eq(buf, cases[i].out, "case %zu: %s", i, cases[i].in);
    }
    cr_expect_null(fn(NULL));
}

/* A table of free texts (PostgreSQL errors, log lines) and what the scrub leaves. */
Test(log, scrub_masks_phones_emails_and_keys_in_free_text) {
    static const s_case_t cases[] = {
        {"duplicate key value: (phone)=(+8613800138000)",
         "duplicate key value: (phone)=(+86138****8000)"},
        {"invalid input syntax for type bigint: \"13900139000\"",
         "invalid input syntax for type bigint: \"139****9000\""},
        {"mail wang.fang@example.com failed", "mail w***@example.com failed"},
        {"to=<li@x.cn>", "to=<**@x.cn>"},
        {"key lf_5b0e9a1c2d3e4f5a6b7c8d9e0f1a2b3c used", "key lf_5*** used"},
        /* left alone: UUIDs, timestamps, SQLSTATEs, short numbers, words */
        {"lead 0193a1b2-7c3e-7d41-9b1a-301234567890 at 2026-12-01T14:25:04.132Z [23505]",
         "lead 0193a1b2-7c3e-7d41-9b1a-301234567890 at 2026-12-01T14:25:04.132Z [23505]"},
        {"port=55432 seq=123456 batch=42", "port=55432 seq=123456 batch=42"},
        /* our own counters stay readable; a key that names a phone does not protect it */
        {"stopped folded=123456789 seq=98765432",
         "stopped folded=123456789 seq=98765432"},
        {"call from=13800138000 phone=+8613800138000",
         "call from=138****8000 phone=+86138****8000"},
        {"order abc1234567 x", "order abc1234567 x"},
        {"", ""},
    };
    s_cases(lf_log_scrub, cases, sizeof cases / sizeof cases[0]);
}

/* The values a PostgreSQL error quotes are masked whole, the names of the objects it
 * quotes are not. */
Test(log, mask_values_hides_what_an_error_quotes_and_keeps_object_names) {
    static const s_case_t cases[] = {
        {"query: ERROR:  invalid input syntax for type integer: \"Wang Fang "
         "13800138000 wang.fang@example.com\" [22P02]",
         "query: ERROR:  invalid input syntax for type integer: \"***\" [22P02]"},
        {"duplicate key value violates unique constraint \"leads_pkey\"",
         "duplicate key value violates unique constraint \"leads_pkey\""},
        {"new row for relation \"leads\" violates check constraint \"leads_phone\"",
         "new row for relation \"leads\" violates check constraint \"leads_phone\""},
        {"column \"nme\" of relation \"leads\" does not exist",
         "column \"nme\" of relation \"leads\" does not exist"},
        {"Key (phone)=(+8613800138000) already exists.",
         "Key (phone)=(***) already exists."},
        {"malformed array literal: \"{Li Lei}\"", "malformed array literal: \"***\""},
        {"value: \"ab\" and \"\"", "value: \"**\" and \"\""},
        {"cut off: \"Li Lei 139", "cut off: \"***"},
        {"no quotes at all", "no quotes at all"},
        {"", ""},
    };
    s_cases(lf_log_mask_values, cases, sizeof cases / sizeof cases[0]);
}
