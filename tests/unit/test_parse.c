/* test_parse.c: form, JSON and Content-Type parsing of single-lead bodies.
 *
 * Table-driven: each row is an input and the exact outcome (decoded object, or the
 * reason). Most rows are hostile input, because that is what an internet-facing parser
 * mostly sees. */
#include "../../services/intake/parse.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *body; /* request body */
    size_t len;       /* 0: strlen(body) */
    const char *want; /* expected object as JSON, or NULL when the parse must fail */
    const char *why;  /* expected reason when it fails */
} form_case_t;

static const form_case_t s_form_cases[] = {
    {"name=Wang+Fang&phone=13800138000", 0,
     "{\"name\":\"Wang Fang\",\"phone\":\"13800138000\"}", NULL},
    {"name=%E4%B8%AD%E6%96%87", 0, "{\"name\":\"中文\"}", NULL},
    {"%E5%A7%93%E5%90%8D=%e7%8e%8b", 0, "{\"姓名\":\"王\"}", NULL},
    {"a=1&a=2&a=3", 0, "{\"a\":\"3\"}", NULL},
    {"a=1&&&b=2&", 0, "{\"a\":\"1\",\"b\":\"2\"}", NULL},
    {"flag&x=", 0, "{\"flag\":\"\",\"x\":\"\"}", NULL},
    {"a=b=c", 0, "{\"a\":\"b=c\"}", NULL},
    {"a=%2B%26%3D%25", 0, "{\"a\":\"+&=%\"}", NULL},
    {"", 0, "{}", NULL},
    {"&&&", 0, "{}", NULL},
    {"a=%G1", 0, NULL, "form body has an invalid %-escape"},
    {"a=%4", 0, NULL, "form body has an invalid %-escape"},
    {"a=%", 0, NULL, "form body has an invalid %-escape"},
    {"%=1", 0, NULL, "form body has an invalid %-escape"},
    {"a=%4&b=1", 0, NULL, "form body has an invalid %-escape"},
    {"a=%%41", 0, NULL, "form body has an invalid %-escape"},
    {"a=%FF", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"a=%C0%AF", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"a=%ED%A0%80", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"a=%E4%B8", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"%FF=1", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"a=\xff", 0, NULL, "form body is not valid UTF-8 after decoding"},
    {"a=%00", 0, NULL, "form body contains a NUL byte"},
    {"a=x\0y", 5, NULL, "form body contains a NUL byte"},
    {"=v", 0, NULL, "form body has a field without a name"},
    {"a=1&=2", 0, NULL, "form body has a field without a name"},
    /* The length is honoured: bytes after len are not read. */
    {"a=1&b=2", 3, "{\"a\":\"1\"}", NULL},
    {"From=%2B8613800138000&To=%2B864001234567&CallSid=CA1&CallStatus=ringing", 0,
     "{\"From\":\"+8613800138000\",\"To\":\"+864001234567\",\"CallSid\":\"CA1\","
     "\"CallStatus\":\"ringing\"}",
     NULL},
};

Test(parse, form_table) {
    for (size_t i = 0; i < sizeof s_form_cases / sizeof *s_form_cases; i++) {
        const form_case_t *c = &s_form_cases[i];
        size_t len = c->len ? c->len : strlen(c->body);
        const char *why = NULL;
        json_t *got = lf_parse_form(c->body, len, &why);
        if (c->want) {
            json_t *want = json_loads(c->want, 0, NULL);
            cr_assert_not_null(want);
            cr_expect(got && json_equal(got, want), "case %zu (%s): %s", i, c->body,
                      why ? why : "wrong object");
            json_decref(want);
        } else {
            cr_expect_null(got, "case %zu (%s) should fail", i, c->body);
            cr_expect(why && strcmp(why, c->why) == 0,
                      "case %zu: why \"%s\", want \"%s\"", i, why ? why : "(null)",
                      c->why);
        }
        json_decref(got);
    }
}

/* A body that is one long run of escapes must decode without overrunning anything. */
Test(parse, form_long_escapes) {
    size_t n = 30000;
    char *body = malloc(3 * n + 3);
    memcpy(body, "a=", 2);
    for (size_t i = 0; i < n; i++)
        memcpy(body + 2 + 3 * i, "%41", 3);
    const char *why = NULL;
    json_t *got = lf_parse_form(body, 2 + 3 * n, &why);
    cr_assert_not_null(got, "%s", why);
    cr_expect_eq(json_string_length(json_object_get(got, "a")), n);
    json_decref(got);
    free(body);
}

typedef struct {
    const char *body;
    size_t len;      /* 0: strlen(body) */
    const char *why; /* NULL: must parse */
    const char *detail_prefix;
} json_case_t;

static const json_case_t s_json_cases[] = {
    {"{\"name\":\"王芳\",\"budget\":50000,\"dm\":true,\"x\":{\"y\":[1,{}]}}", 0, NULL,
     NULL},
    {" \r\n{}\n ", 0, NULL, NULL},
    {"{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"}", 0,
     NULL, NULL},
    {"", 0, "body is empty", "body is empty"},
    {" \t\r\n", 0, "body is empty", "body is empty"},
    {"[]", 0, "body must be a JSON object", "body must be a JSON object"},
    {"\"just a string\"", 0, "body must be a JSON object", NULL},
    {"42", 0, "body must be a JSON object", NULL},
    {"null", 0, "body must be a JSON object", NULL},
    {"true", 0, "body must be a JSON object", NULL},
    {"{\"a\":1,\"a\":2}", 0, "body is not valid JSON",
     "body is not valid JSON: duplicate object key"},
    {"{\"a\":{\"b\":1,\"b\":1}}", 0, "body is not valid JSON",
     "body is not valid JSON: duplicate"},
    {"{\"a\":1", 0, "body is not valid JSON", "body is not valid JSON: "},
    {"{\"a\":1}}", 0, "body is not valid JSON", "body is not valid JSON: "},
    {"{\"a\":1} {\"b\":2}", 0, "body is not valid JSON", "body is not valid JSON: "},
    {"{'a':1}", 0, "body is not valid JSON", NULL},
    {"{\"a\":NaN}", 0, "body is not valid JSON", NULL},
    {"{\"a\":\"\xff\"}", 0, "body is not valid JSON", NULL},
    {"{\"a\":\"\xc0\xaf\"}", 0, "body is not valid JSON", NULL},
    {"{\"a\":\"\\u0000\"}", 0, "body is not valid JSON", NULL},
    {"{\"a\":\"\\ud800\"}", 0, "body is not valid JSON", NULL},
    {"{\"a\":1}\0garbage", 15, "body is not valid JSON", NULL},
    {"\xef\xbb\xbf{}", 0, "body is not valid JSON", NULL},
    {"{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}", 0, NULL, NULL}, /* depth 16 */
    {"{\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", 0, "nesting too deep",
     "nesting too deep"}, /* 17 */
    {"{\"a\":1}", 3, "body is not valid JSON", NULL},
};

Test(parse, json_table) {
    for (size_t i = 0; i < sizeof s_json_cases / sizeof *s_json_cases; i++) {
        const json_case_t *c = &s_json_cases[i];
        size_t len = c->len ? c->len : strlen(c->body);
        const char *why = NULL;
        char detail[256] = "untouched";
        json_t *got = lf_parse_json_object(c->body, len, &why, detail, sizeof detail);
        if (!c->why) {
            cr_expect(json_is_object(got), "case %zu should parse: %s", i, detail);
        } else {
            cr_expect_null(got, "case %zu should fail", i);
            cr_expect(why && strcmp(why, c->why) == 0, "case %zu: why \"%s\"", i,
                      why ? why : "(null)");
            if (c->detail_prefix)
                cr_expect(strncmp(detail, c->detail_prefix, strlen(c->detail_prefix)) ==
                              0,
                          "case %zu: detail \"%s\"", i, detail);
        }
        json_decref(got);
    }
}

/* 100000 levels would blow jansson's stack on a small thread; the pre-scan must stop it.
 */
static void s_expect_too_deep(const char *open, const char *close, size_t depth) {
    size_t ol = strlen(open), cl = strlen(close), len = depth * (ol + cl);
    char *body = malloc(len);
    for (size_t i = 0; i < depth; i++) {
        memcpy(body + i * ol, open, ol);
        memcpy(body + depth * ol + i * cl, close, cl);
    }
    const char *why = NULL;
    char detail[128];
    cr_expect_null(lf_parse_json_object(body, len, &why, detail, sizeof detail));
    cr_expect_str_eq(why, "nesting too deep");
    cr_expect_str_eq(detail, "nesting too deep");
    free(body);
}

Test(parse, json_depth_bombs) {
    s_expect_too_deep("[", "]", 100000);
    s_expect_too_deep("{\"a\":", "}", 100000);
    s_expect_too_deep("[", "", 100000); /* unterminated: still rejected before jansson */
}

Test(parse, json_detail_names_position) {
    const char *why;
    char detail[256];
    const char *body = "{\n  \"a\": 1,\n  \"a\": 2\n}";
    cr_assert_null(lf_parse_json_object(body, strlen(body), &why, detail, sizeof detail));
    cr_expect(strstr(detail, "at line 3 column") != NULL, "%s", detail);
    /* detail and why are optional. */
    cr_expect_null(lf_parse_json_object("[]", 2, NULL, NULL, 0));
}

typedef struct {
    const char *header;
    int rc;
    const char *media;
    const char *charset;
} ct_case_t;

static const ct_case_t s_ct_cases[] = {
    {"application/json; charset=UTF-8", 0, "application/json", "utf-8"},
    {"text/csv;charset=gb18030", 0, "text/csv", "gb18030"},
    {"Text/CSV; Charset=\"GBK\"", 0, "text/csv", "gbk"},
    {"application/x-www-form-urlencoded", 0, "application/x-www-form-urlencoded", ""},
    {"  application/x-ndjson  ", 0, "application/x-ndjson", ""},
    {"text/csv; header=present; charset=utf-8", 0, "text/csv", "utf-8"},
    {"text/csv; charset=utf-8; charset=gbk", 0, "text/csv", "utf-8"},
    {"text/csv;;charset=gbk;", 0, "text/csv", "gbk"},
    {"text/csv; boundary=\"a;b=c\"; charset=gbk", 0, "text/csv", "gbk"},
    {"", -1, "", ""},
    {"garbage", -1, "", ""},
    {"/json", -1, "", ""},
    {"application/", -1, "", ""},
    {"application/json charset=utf-8", -1, "", ""},
    {"application/json; charset", -1, "", ""},
    {"application/json; charset=", -1, "", ""},
    {"application/json; =utf-8", -1, "", ""},
    {"application/json; charset=\"utf-8", -1, "", ""},
    {"application/json; charset=\"utf\x01\"", -1, "", ""},
    {"application/j son", -1, "", ""},
    {"应用/json", -1, "", ""},
    {"text/csv; "
     "charset=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     -1, "", ""},
};

Test(parse, content_type_table) {
    for (size_t i = 0; i < sizeof s_ct_cases / sizeof *s_ct_cases; i++) {
        const ct_case_t *c = &s_ct_cases[i];
        char media[64] = "x", charset[32] = "x";
        int rc = lf_parse_content_type(c->header, media, sizeof media, charset,
                                       sizeof charset);
        cr_expect_eq(rc, c->rc, "case %zu (%s): rc %d", i, c->header, rc);
        cr_expect_str_eq(media, c->media, "case %zu (%s)", i, c->header);
        cr_expect_str_eq(charset, c->charset, "case %zu (%s)", i, c->header);
    }
}

Test(parse, content_type_small_buffers) {
    char media[9], charset[4];
    cr_expect_eq(lf_parse_content_type("application/json", media, sizeof media, charset,
                                       sizeof charset),
                 -1);
    cr_expect_str_eq(media, "");
    cr_expect_eq(
        lf_parse_content_type(NULL, media, sizeof media, charset, sizeof charset), -1);
    cr_expect_eq(
        lf_parse_content_type("text/csv", media, sizeof media, charset, sizeof charset),
        0);
    cr_expect_str_eq(media, "text/csv");
}
