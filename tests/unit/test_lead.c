/* The canonical lead: each field through its normalizer, all errors at once. */
#include <criterion/criterion.h>
#include <string.h>

#include "lf/lead.h"

static json_t *s_canon(const char *in, json_t **errors) {
    json_t *j = json_loads(in, 0, NULL);
    cr_assert(j, "bad fixture %s", in);
    *errors = json_array();
    json_t *lead = lf_lead_canonical(j, "api", NULL, *errors);
    json_decref(j);
    return lead;
}

static int s_has_error(json_t *errors, const char *field, const char *code) {
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "field")), field) &&
            !strcmp(json_string_value(json_object_get(e, "code")), code))
            return 1;
    }
    return 0;
}

Test(lead, full_width_and_chinese_input_is_canonical) {
    json_t *errors;
    json_t *lead =
        s_canon("{\"name\":\" 王芳 \",\"phone\":\"＋８６ １３８００１３８０００\","
                "\"email\":\"Wang.Fang＠Example.COM\",\"budget\":\"10-20万\","
                "\"urgency\":\"紧急\",\"decision_maker\":\"否\",\"wechat\":\"wf\"}",
                &errors);
    cr_assert(lead, "unexpected errors: %s", json_dumps(errors, 0));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "name")), "王芳");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone")), "+8613800138000");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "email")),
                     "wang.fang@example.com");
    json_t *b = json_object_get(lead, "budget");
    cr_expect_eq(json_real_value(json_object_get(b, "min")), 100000.0);
    cr_expect_eq(json_real_value(json_object_get(b, "max")), 200000.0);
    cr_expect_str_eq(json_string_value(json_object_get(lead, "urgency")), "high");
    cr_expect(json_is_false(json_object_get(lead, "decision_maker")));
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(lead, "extra"), "wechat")),
        "wf");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "channel")), "api");
    json_decref(lead);
    json_decref(errors);
}

Test(lead, every_broken_field_is_reported) {
    json_t *errors;
    json_t *lead =
        s_canon("{\"email\":\"no\",\"phone\":\"12\",\"budget\":-5,\"urgency\":\"soon\","
                "\"decision_maker\":\"maybe\",\"channel\":\"fax\",\"name\":7}",
                &errors);
    cr_expect_null(lead);
    cr_expect(s_has_error(errors, "email", "invalid"));
    cr_expect(s_has_error(errors, "phone", "invalid"));
    cr_expect(s_has_error(errors, "budget", "invalid"));
    cr_expect(s_has_error(errors, "urgency", "invalid"));
    cr_expect(s_has_error(errors, "decision_maker", "invalid"));
    cr_expect(s_has_error(errors, "channel", "invalid"));
    cr_expect(s_has_error(errors, "name", "type"));
    cr_expect_eq(json_array_size(errors), 7, "%s", json_dumps(errors, 0));
    json_decref(errors);
}

Test(lead, a_phone_or_an_email_is_required) {
    json_t *errors;
    cr_expect_null(s_canon("{\"name\":\"x\"}", &errors));
    cr_expect(s_has_error(errors, "phone", "required"));
    json_decref(errors);
    cr_expect_null(s_canon("{\"phone\":\"  \"}", &errors));
    cr_expect(s_has_error(errors, "phone", "required"));
    json_decref(errors);
}

Test(lead, unparsed_budget_is_kept_raw_and_null) {
    json_t *errors;
    json_t *lead = s_canon("{\"phone\":\"13800138000\",\"budget\":\"待定\"}", &errors);
    cr_assert(lead);
    cr_expect(json_is_null(json_object_get(lead, "budget")));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "budget_raw")), "待定");
    json_decref(lead);
    json_decref(errors);
}

Test(lead, lengths_are_counted_in_characters) {
    char in[1024] = "{\"phone\":\"13800138000\",\"name\":\"";
    for (int i = 0; i < 100; i++)
        strcat(in, "王");
    strcat(in, "\"}");
    json_t *errors;
    json_t *lead = s_canon(in, &errors);
    cr_expect(lead, "100 Chinese characters (300 bytes) fit a 100-character name");
    json_decref(lead);
    json_decref(errors);
    in[strlen(in) - 2] = '\0';
    strcat(in, "王\"}");
    lead = s_canon(in, &errors);
    cr_expect_null(lead);
    cr_expect(s_has_error(errors, "name", "invalid") ||
              s_has_error(errors, "name", "too_long"));
    json_decref(errors);
}

Test(lead, a_forced_channel_cannot_be_escaped) {
    json_t *in = json_pack("{s:s, s:s}", "phone", "13800138000", "channel", "partner");
    json_t *errors = json_array();
    cr_expect_null(lf_lead_canonical(in, "web_form", "web_form", errors));
    cr_expect(s_has_error(errors, "channel", "forbidden"));
    json_decref(in);
    json_decref(errors);
}

Test(lead, phone_type_and_country_come_from_libphonenumber) {
    json_t *errors;
    json_t *lead = s_canon("{\"phone\":\"400-800-1234\"}", &errors);
    cr_assert(lead, "unexpected errors: %s", json_dumps(errors, 0));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone")), "+864008001234");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone_type")), "toll_free");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone_country")), "CN");
    cr_expect_eq(json_array_size(json_object_get(lead, "flags")), 0);
    json_decref(lead);
    json_decref(errors);
    lead = s_canon("{\"email\":\"a@example.com\"}", &errors);
    cr_assert(lead);
    cr_expect(json_is_null(json_object_get(lead, "phone_type")));
    cr_expect(json_is_null(json_object_get(lead, "phone_country")));
    json_decref(lead);
    json_decref(errors);
}

Test(lead, unallocated_number_is_422_unless_the_channel_keeps_it) {
    json_t *errors = json_array();
    json_t *in = json_pack("{s:s, s:s}", "phone", "14212345678", "channel", "phone");
    cr_assert_null(lf_lead_canonical(in, "api", NULL, errors));
    cr_expect(s_has_error(errors, "phone", "invalid"));
    json_decref(errors);

    cr_assert_eq(lf_lead_keep_unverified_phones("phone, trade_show"), 0);
    errors = json_array();
    json_t *lead = lf_lead_canonical(in, "api", NULL, errors);
    cr_assert(lead, "unexpected errors: %s", json_dumps(errors, 0));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone")), "+8614212345678");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "phone_type")), "unknown");
    cr_expect(json_is_null(json_object_get(lead, "phone_country")));
    json_t *flags = json_object_get(lead, "flags");
    cr_expect_eq(json_array_size(flags), 1);
    cr_expect_str_eq(json_string_value(json_array_get(flags, 0)), "phone_unverified");
    json_decref(lead);
    json_decref(errors);

    /* Another channel still refuses it; text that is no number at all is refused
       everywhere. */
    errors = json_array();
    json_object_set_new(in, "channel", json_string("web_form"));
    cr_expect_null(lf_lead_canonical(in, "api", NULL, errors));
    json_object_set_new(in, "channel", json_string("phone"));
    json_object_set_new(in, "phone", json_string("1.38001E+10"));
    cr_expect_null(lf_lead_canonical(in, "api", NULL, errors));
    json_decref(errors);
    json_decref(in);

    cr_expect_eq(lf_lead_keep_unverified_phones("phone,fax"), -1);
    cr_expect_eq(lf_lead_keep_unverified_phones(""), 0);
}

Test(lead, company_is_kept_as_typed_and_keyed) {
    json_t *errors;
    json_t *lead = s_canon(
        "{\"phone\":\"13800138000\",\"company\":\"華東醫療器械（上海）有限公司\"}",
        &errors);
    cr_assert(lead, "unexpected errors: %s", json_dumps(errors, 0));
    cr_expect_str_eq(json_string_value(json_object_get(lead, "company")),
                     "華東醫療器械(上海)有限公司");
    cr_expect_str_eq(json_string_value(json_object_get(lead, "company_key")),
                     "华东医疗器械");
    json_decref(lead);
    json_decref(errors);
    lead = s_canon("{\"phone\":\"13800138000\"}", &errors);
    cr_expect(json_is_null(json_object_get(lead, "company_key")));
    json_decref(lead);
    json_decref(errors);
}
