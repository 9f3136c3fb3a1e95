#include <criterion/criterion.h>
#include <string.h>

#include "lf/log.h"

Test(log, phone_numbers_are_masked) {
    char out[64];
    cr_expect_str_eq(lf_mask_phone("+8613800138000", out, sizeof out), "+86138****8000");
    cr_expect_str_eq(lf_mask_phone("123", out, sizeof out), "****");
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
