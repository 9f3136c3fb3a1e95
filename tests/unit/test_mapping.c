/* test_mapping.c: header synonyms, partner field mapping and call-number lookup. */
#include "../../services/intake/mapping.h"

#include <criterion/criterion.h>
#include <string.h>

static const struct {
    const char *header;
    const char *field; /* NULL: not a known header */
} s_headers[] = {
    {"姓名", "name"},
    {" 联系人 ", "name"},
    {"\xe3\x80\x80联系人\xe3\x80\x80", "name"}, /* U+3000 ideographic spaces */
    {"Name", "name"},
    {"CONTACT", "name"},
    {"公司名称", "company"},
    {"单位", "company"},
    {"Company", "company"},
    {"手机号*", "phone"},
    {"*联系电话", "phone"},
    {"电话：", "phone"},
    {"手机号（必填）", "phone"},
    {"Mobile", "phone"},
    {"TEL", "phone"},
    {"电子邮件", "email"},
    {"E-Mail", "email"},
    {"e_mail", "email"},
    {"ｅｍａｉｌ", "email"}, /* full-width letters */
    {"预算（万元）", "budget"},
    {"预算(元)", "budget"},
    {"budget (CNY)", "budget"},
    {"需求描述", "need"},
    {"Requirement", "need"},
    {"紧急程度", "urgency"},
    {"是否决策人", "decision_maker"},
    {"Decision Maker", "decision_maker"},
    {"decision-maker", "decision_maker"},
    {"省份", "region"},
    {"Region", "region"},
    {"行业", "industry"},
    {"来源", "source"},
    {"外部编号", "external_id"},
    {"ID", "external_id"},
    {"币种", "currency"},
    {"渠道", "channel"},
    {"展位号", NULL},
    {"", NULL},
    {"   ", NULL},
    {"（）", NULL},
    {"name2", NULL},
    {"\xff\xfe", NULL},
    {"姓\xe5", NULL},
    {"na\xc0\xafme", NULL},
};

Test(mapping, header_synonyms) {
    for (size_t i = 0; i < sizeof s_headers / sizeof *s_headers; i++) {
        const char *got = lf_map_header(s_headers[i].header);
        if (s_headers[i].field)
            cr_expect(got && strcmp(got, s_headers[i].field) == 0,
                      "\"%s\" -> %s, want %s", s_headers[i].header, got ? got : "NULL",
                      s_headers[i].field);
        else
            cr_expect_null(got, "\"%s\" -> %s, want NULL", s_headers[i].header, got);
    }
    cr_expect_null(lf_map_header(NULL));
    char longh[600];
    memset(longh, 'a', sizeof longh - 1);
    longh[sizeof longh - 1] = '\0';
    cr_expect_null(lf_map_header(longh));
}

static lf_mapping_t *s_load(const char *text, char *err, size_t errsz) {
    json_error_t jerr;
    json_t *cfg = json_loads(text, 0, &jerr);
    cr_assert_not_null(cfg, "test config: %s", jerr.text);
    lf_mapping_t *m = lf_mapping_from_json(cfg, err, errsz);
    json_decref(cfg);
    return m;
}

static void s_expect_json(json_t *got, const char *want_text) {
    json_t *want = json_loads(want_text, 0, NULL);
    cr_assert_not_null(want, "bad expected JSON in test");
    char *g = got ? json_dumps(got, JSON_SORT_KEYS) : NULL;
    cr_expect(got && json_equal(got, want), "got %s\nwant %s", g ? g : "NULL", want_text);
    free(g);
    json_decref(want);
}

Test(mapping, repository_config_loads) {
    char err[256] = "";
    lf_mapping_t *m = lf_mapping_load("config/channels.json", err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_expect(lf_mapping_has(m, "acme"));
    cr_expect(lf_mapping_has(m, "expo-cn"));
    cr_expect_not(lf_mapping_has(m, "nobody"));
    const json_t *n = lf_mapping_call_number(m, "+864001234567");
    cr_expect_str_eq(json_string_value(json_object_get(n, "source")), "400-hotline");
    cr_expect_str_eq(json_string_value(json_object_get(n, "campaign")), "spring-expo");
    cr_expect_null(lf_mapping_call_number(m, "+860000000000"));
    cr_expect_null(lf_mapping_call_number(m, NULL));
    lf_mapping_destroy(&m);
    cr_expect_null(m);
    lf_mapping_destroy(&m);
    lf_mapping_destroy(NULL);
}

Test(mapping, load_missing_and_broken_files) {
    char err[256] = "";
    cr_expect_null(lf_mapping_load("/nonexistent/channels.json", err, sizeof err));
    cr_expect(strstr(err, "/nonexistent/channels.json") != NULL, "%s", err);
}

static const char *s_acme =
    "{\"partners\": {\"acme\": {\"fields\": {\"name\": \"contact.full_name\", \"phone\": "
    "\"contact.phones[0]\", \"company\": \"org.name\", \"external_id\": \"lead_id\", "
    "\"budget\": \"deal.budget\", \"need\": \"deal.items[1].desc\"}, \"channel\": "
    "\"partner\", "
    "\"source\": \"acme\"}, \"bare\": {}}}";

Test(mapping, apply_nested_paths_and_arrays) {
    char err[256] = "";
    lf_mapping_t *m = s_load(s_acme, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    json_t *in = json_loads(
        "{\"contact\": {\"full_name\": \"王芳\", \"phones\": [\"13800138000\", "
        "\"021-1234\"], "
        "\"title\": \"CTO\"}, \"org\": {\"name\": \"Acme\"}, \"lead_id\": 12345, "
        "\"deal\": {\"budget\": 50000.5, \"items\": [{\"desc\": \"a\"}, {\"desc\": "
        "\"CT\"}]}, "
        "\"email\": \"W@X.CN\", \"note\": \"call after 5\"}",
        0, NULL);
    json_t *out = lf_mapping_apply(m, "acme", in);
    s_expect_json(
        out,
        "{\"name\": \"王芳\", \"phone\": \"13800138000\", \"company\": \"Acme\", "
        "\"external_id\": 12345, \"budget\": 50000.5, \"need\": \"CT\", "
        "\"email\": \"W@X.CN\", \"channel\": \"partner\", \"source\": \"acme\", "
        "\"extra\": {\"contact\": {\"phones\": [null, \"021-1234\"], \"title\": "
        "\"CTO\"}, \"deal\": {\"items\": [{\"desc\": \"a\"}, null]}, \"note\": \"call "
        "after 5\"}}");
    /* The input is borrowed: untouched. */
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(in, "org"), "name")), "Acme");
    json_decref(out);
    json_decref(in);
    lf_mapping_destroy(&m);
}

Test(mapping, apply_missing_paths_and_wrong_types) {
    char err[256] = "";
    lf_mapping_t *m = s_load(s_acme, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    /* contact is an array, phones is an object, org.name is null, deal.budget an object.
     */
    json_t *in =
        json_loads("{\"contact\": [1], \"org\": {\"name\": null}, \"deal\": {\"budget\": "
                   "{\"v\": 1}, \"items\": []}, \"source\": \"acme-cn\"}",
                   0, NULL);
    json_t *out = lf_mapping_apply(m, "acme", in);
    s_expect_json(out,
                  "{\"channel\": \"partner\", \"source\": \"acme-cn\", \"extra\": "
                  "{\"contact\": [1], \"org\": {\"name\": null}, \"deal\": {\"budget\": "
                  "{\"v\": 1}, \"items\": []}}}");
    json_decref(out);
    json_decref(in);
    in = json_object();
    out = lf_mapping_apply(m, "acme", in);
    s_expect_json(out, "{\"channel\": \"partner\", \"source\": \"acme\", \"extra\": {}}");
    json_decref(out);
    json_decref(in);
    lf_mapping_destroy(&m);
}

Test(mapping, apply_unknown_partner_and_bad_input) {
    char err[256] = "";
    lf_mapping_t *m = s_load(s_acme, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    json_t *in = json_loads("{\"name\": \"x\", \"channel\": \"api\"}", 0, NULL);
    cr_expect_null(lf_mapping_apply(m, "globex", in));
    cr_expect_null(lf_mapping_apply(m, NULL, in));
    cr_expect_null(lf_mapping_apply(NULL, "acme", in));
    json_t *arr = json_array();
    cr_expect_null(lf_mapping_apply(m, "acme", arr));
    json_decref(arr);
    /* A partner without fields passes canonical names through; channel is not theirs to
     * set. */
    json_t *out = lf_mapping_apply(m, "bare", in);
    s_expect_json(out,
                  "{\"name\": \"x\", \"channel\": \"partner\", \"source\": \"bare\", "
                  "\"extra\": {\"channel\": \"api\"}}");
    json_decref(out);
    json_decref(in);
    lf_mapping_destroy(&m);
}

static const struct {
    const char *cfg;
    const char *err_part;
} s_bad_cfgs[] = {
    {"[]", "must be a JSON object"},
    {"{\"partners\": []}", "partners must be an object"},
    {"{\"partners\": {\"p\": 1}}", "partners.p must be an object"},
    {"{\"partners\": {\"p\": {\"fields\": {\"nmae\": \"a\"}}}}",
     "not a mappable lead field"},
    {"{\"partners\": {\"p\": {\"fields\": {\"channel\": \"a\"}}}}",
     "not a mappable lead field"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": 3}}}}", "must be a path string"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a..b\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a.\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"[0]\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a[x]\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a[1\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a[]\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a[99999999999]\"}}}}",
     "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a]b\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"fields\": {\"name\": \"a[0]b\"}}}}", "bad field path"},
    {"{\"partners\": {\"p\": {\"channel\": \"fax\"}}}", "channel must be one of"},
    {"{\"partners\": {\"p\": {\"source\": \"\"}}}", "source must be a non-empty string"},
    {"{\"partners\": {\"p\": {\"fields\": []}}}", "fields must be an object"},
    {"{\"calls\": []}", "calls.numbers must be an object"},
    {"{\"calls\": {\"numbers\": {\"4001234567\": {}}}}", "not an E.164 number"},
    {"{\"calls\": {\"numbers\": {\"+86 400\": {}}}}", "not an E.164 number"},
    {"{\"calls\": {\"numbers\": {\"+864001234567\": {\"source\": 1}}}}", "must be {"},
    {"{\"calls\": {\"numbers\": {\"+864001234567\": \"hotline\"}}}", "must be {"},
};

Test(mapping, bad_configs_rejected) {
    for (size_t i = 0; i < sizeof s_bad_cfgs / sizeof *s_bad_cfgs; i++) {
        char err[256] = "";
        lf_mapping_t *m = s_load(s_bad_cfgs[i].cfg, err, sizeof err);
        cr_expect_null(m, "config %zu should be rejected: %s", i, s_bad_cfgs[i].cfg);
        cr_expect(strstr(err, s_bad_cfgs[i].err_part) != NULL, "config %zu: err \"%s\"",
                  i, err);
        lf_mapping_destroy(&m);
    }
}

Test(mapping, canonical_fields) {
    cr_expect(lf_is_canonical_field("decision_maker"));
    cr_expect(lf_is_canonical_field("external_id"));
    cr_expect_not(lf_is_canonical_field("extra"));
    cr_expect_not(lf_is_canonical_field("Name"));
    cr_expect_not(lf_is_canonical_field(NULL));
}

Test(mapping, units_in_headers) {
    const struct {
        const char *header, *field, *unit;
    } cases[] = {
        {"预算（万元）", "budget", "万元"},    {"预算(万元)", "budget", "万元"},
        {"预算（千元）", "budget", "千元"},    {"预算（元）", "budget", "元"},
        {"预算(万)", "budget", "万"},          {"Budget (k)", "budget", "k"},
        {"budget (USD)", "budget", "USD"},     {"预算（美元）", "budget", "美元"},
        {"预算【万元】", "budget", "万元"},    {"预算[万元]", "budget", "万元"},
        {"预算(单位:万元)", "budget", "万元"}, {"预算（单位：万元）", "budget", "万元"},
        {"预算（备注）", "budget", ""},        {"预算", "budget", ""},
        {"手机(万元)", "phone", ""},           {"unknown (万元)", NULL, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char unit[LF_UNIT_SIZE] = "junk";
        const char *f = lf_map_header_unit(cases[i].header, unit, sizeof unit);
        if (cases[i].field)
            cr_expect(f && !strcmp(f, cases[i].field), "%s: field %s", cases[i].header,
                      f ? f : "NULL");
        else
            cr_expect_null(f, "%s", cases[i].header);
        cr_expect_str_eq(unit, cases[i].unit, "%s", cases[i].header);
    }
    char out[64];
    cr_expect_str_eq(lf_apply_unit("80", "万元", out, sizeof out), "80万元");
    cr_expect_str_eq(lf_apply_unit(" 1,200.5 ", "万元", out, sizeof out),
                     " 1,200.5 万元");
    cr_expect_str_eq(lf_apply_unit("50万", "万元", out, sizeof out), "50万");
    cr_expect_str_eq(lf_apply_unit("待定", "万元", out, sizeof out), "待定");
    cr_expect_str_eq(lf_apply_unit("-5", "万元", out, sizeof out), "-5");
    cr_expect_str_eq(lf_apply_unit("80", "", out, sizeof out), "80");
    cr_expect_str_eq(lf_apply_unit("80", "万元", out, 4), "80");
}

Test(mapping, partner_key_with_a_unit) {
    json_t *cfg =
        json_loads("{\"partners\": {\"acme\": {\"fields\": {"
                   "\"budget\": \"lead.预算（万元）\", \"phone\": \"lead.tel\"}}}}",
                   0, NULL);
    char err[256];
    lf_mapping_t *m = lf_mapping_from_json(cfg, err, sizeof err);
    cr_assert(m, "%s", err);
    json_t *in = json_loads(
        "{\"lead\": {\"预算（万元）\": 80, \"tel\": \"13800138000\"}}", 0, NULL);
    json_t *out = lf_mapping_apply(m, "acme", in);
    cr_expect_str_eq(json_string_value(json_object_get(out, "budget")), "80万元");
    json_decref(out);
    json_decref(in);
    in = json_loads("{\"lead\": {\"预算（万元）\": \"30万\"}}", 0, NULL);
    out = lf_mapping_apply(m, "acme", in);
    cr_expect_str_eq(json_string_value(json_object_get(out, "budget")), "30万");
    json_decref(out);
    json_decref(in);
    lf_mapping_destroy(&m);
    json_decref(cfg);
}
