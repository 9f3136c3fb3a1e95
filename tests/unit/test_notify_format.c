/* notify_format: every target's body byte for byte, the three signatures against
 * values computed independently (Python's hmac/base64), merging, templates from
 * config, and what each kind of answer means. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../services/scheduler/notify_format.h"

static json_t *s_items(int n, const char *kind) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "L%d", i + 1);
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, "
                         "s:s}}",
                         "id", (json_int_t)(i + 1), "kind", kind, "to", "wang.fang",
                         "lead_id", id, "message", "m", "lead", "name", "王先生",
                         "company", "华东医疗", "phone", "+8613800138000", "grade", "A",
                         "need", "CT", "budget", "50万", "owner", "wang.fang"));
    }
    return a;
}

static const lf_notify_style_t s_style = {NULL, "https://crm.example.com/leads/{lead_id}",
                                          10};

Test(notify_format, signatures_match_independent_values) {
    char out[64], hex[65];
    lf_sign_dingtalk("SECabc123", 1700000000123LL, out, sizeof out);
    cr_expect_str_eq(out, "etIBQNvdgq9e1O4P4gRnRS05m9vXVgr6/5xt3Azj2s8=");
    lf_sign_feishu("SECabc123", 1700000000LL, out, sizeof out);
    cr_expect_str_eq(out, "UqhI0v4zAkSwI4hNYBuHQvnrAqshA0UaeBGHCUMPX70=");
    lf_sign_webhook("whsec", "1700000000", "{\"a\":1}", 7, hex);
    cr_expect_str_eq(hex,
                     "8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032");
}

Test(notify_format, wecom_text_mentions_by_mobile_and_masks_the_phone) {
    json_t *items = s_items(1, "lead_assigned");
    lf_dest_t d = {LF_DEST_WECOM,
                   "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", NULL,
                   "13800138000", NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 1700000000123LL, &m), 0);
    cr_expect_str_eq(m.url, d.url);
    cr_expect_str_eq(
        m.body,
        "{\"msgtype\":\"text\",\"text\":{\"content\":\"【新线索分配】\\nA级新线索："
        "王先生（华东医疗），电话 +86138****8000，需求：CT，预算：50万。请尽快联系。 "
        "https://crm.example.com/leads/L1\",\"mentioned_mobile_list\":["
        "\"13800138000\"]}}");
    cr_expect_eq(m.nheaders, 0);
    lf_notify_msg_clear(&m);
    d.to = NULL; /* nobody to mention: markdown with a link */
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 0, &m), 0);
    cr_expect_str_eq(
        m.body, "{\"msgtype\":\"markdown\",\"markdown\":{\"content\":\"**新线索分配**\\n"
                "A级新线索：王先生（华东医疗），电话 +86138****8000，需求：CT，预算："
                "50万。请尽快联系。 [查看](https://crm.example.com/leads/L1)\"}}");
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, dingtalk_signed_markdown_with_at) {
    json_t *items = s_items(1, "sla_reminder");
    lf_dest_t d = {LF_DEST_DINGTALK,
                   "https://oapi.dingtalk.com/robot/send?access_token=t", "SECabc123",
                   "13800138000", NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, NULL, "dlv", 1700000000123LL, &m), 0);
    cr_expect_str_eq(m.url, "https://oapi.dingtalk.com/robot/send?access_token=t"
                            "&timestamp=1700000000123"
                            "&sign=etIBQNvdgq9e1O4P4gRnRS05m9vXVgr6%2F5xt3Azj2s8%3D");
    cr_expect_str_eq(
        m.body, "{\"msgtype\":\"markdown\",\"markdown\":{\"title\":\"首次联系超时提醒\","
                "\"text\":\"#### 首次联系超时提醒\\nA级线索 王先生（华东医疗）已超过首次"
                "联系时限，请立即联系客户，电话 +86138****8000。\\n@13800138000\"},"
                "\"at\":{\"atMobiles\":[\"13800138000\"],\"isAtAll\":false}}");
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, feishu_post_signed_in_the_body) {
    json_t *items = s_items(1, "follow_up_reminder");
    lf_dest_t d = {LF_DEST_FEISHU, "https://open.feishu.cn/open-apis/bot/v2/hook/x",
                   "SECabc123", "ou_123", NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 1700000000999LL, &m), 0);
    cr_expect_str_eq(
        m.body,
        "{\"msg_type\":\"post\",\"content\":{\"post\":{\"zh_cn\":{\"title\":\"跟进提醒\","
        "\"content\":[[{\"tag\":\"text\",\"text\":\"线索 王先生（华东医疗）到了下一步跟进"
        "时间。m\"},{\"tag\":\"a\",\"text\":\" 查看\",\"href\":\"https://crm.example.com/"
        "leads/L1\"}],[{\"tag\":\"at\",\"user_id\":\"ou_123\"}]]}}},\"timestamp\":"
        "\"1700000000\",\"sign\":\"UqhI0v4zAkSwI4hNYBuHQvnrAqshA0UaeBGHCUMPX70=\"}");
    lf_notify_msg_clear(&m);
    d.format = "text";
    d.secret = NULL;
    cr_assert_eq(lf_notify_render(&d, items, NULL, "dlv", 0, &m), 0);
    cr_expect_str_eq(m.body,
                     "{\"msg_type\":\"text\",\"content\":{\"text\":\"【跟进提醒】\\n"
                     "线索 王先生（华东医疗）到了下一步跟进时间。m\\n<at user_id="
                     "\\\"ou_123\\\"></at>\"}}");
    lf_notify_msg_clear(&m);
    d.format = "interactive";
    cr_assert_eq(lf_notify_render(&d, items, NULL, "dlv", 0, &m), 0);
    json_t *j = json_loads(m.body, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(j, "msg_type")), "interactive");
    cr_expect_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(j, "card"), "header"),
                            "title"),
            "content")),
        "跟进提醒");
    json_decref(j);
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, slack_text_with_mention_and_link) {
    json_t *items = s_items(1, "sla_escalation");
    lf_dest_t d = {LF_DEST_SLACK, "https://hooks.slack.com/services/T/B/x", NULL, "U42",
                   NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 0, &m), 0);
    cr_expect_str_eq(m.body,
                     "{\"text\":\"<@U42> *首次联系超时升级*\\nA级线索 王先生（华东"
                     "医疗）由 wang.fang 负责，提醒后仍未联系，请督促跟进。 "
                     "<https://crm.example.com/leads/L1|查看>\"}");
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, webhook_is_signed_over_timestamp_and_body) {
    json_t *items = s_items(2, "lead_assigned");
    lf_dest_t d = {LF_DEST_WEBHOOK, "https://hooks.example.com/lf", "whsec", NULL, NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "0190-d", 1700000000123LL, &m), 0);
    cr_assert_eq(m.nheaders, 3);
    cr_expect_str_eq(m.headers[0], "X-Leadflow-Timestamp: 1700000000");
    cr_expect_str_eq(m.headers[1], "X-Leadflow-Delivery: 0190-d");
    char sig[65], want[96];
    lf_sign_webhook("whsec", "1700000000", m.body, strlen(m.body), sig);
    snprintf(want, sizeof want, "X-Leadflow-Signature: sha256=%s", sig);
    cr_expect_str_eq(m.headers[2], want);
    json_t *j = json_loads(m.body, 0, NULL);
    cr_assert(j);
    cr_expect_str_eq(json_string_value(json_object_get(j, "delivery_id")), "0190-d");
    cr_expect_eq(json_integer_value(json_object_get(j, "count")), 2);
    json_t *n1 = json_array_get(json_object_get(j, "notifications"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(n1, "lead_id")), "L2");
    cr_expect_str_eq(json_string_value(json_object_get(n1, "link")),
                     "https://crm.example.com/leads/L2");
    cr_expect_str_eq(json_string_value(json_object_get(n1, "title")), "新线索分配");
    json_decref(j);
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, five_hundred_waiting_become_one_short_message) {
    json_t *items = s_items(480, "lead_assigned");
    json_t *more = s_items(20, "follow_up_reminder");
    json_array_extend(items, more);
    json_decref(more);
    lf_dest_t d = {LF_DEST_WECOM, "https://x/send?key=k", NULL, "13800138000", NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 0, &m), 0);
    cr_expect_str_eq(m.subject, "leadflow：共 500 条通知（新线索分配 480，跟进提醒 20）");
    json_t *j = json_loads(m.body, 0, NULL);
    const char *content =
        json_string_value(json_object_get(json_object_get(j, "text"), "content"));
    cr_assert(content);
    /* WeCom text is at most 2048 bytes. */
    cr_expect_lt(strlen(content), 2048, "%zu bytes", strlen(content));
    cr_expect(strstr(content, "• [新线索分配] A级新线索") != NULL, "%s", content);
    cr_expect(strstr(content, "……另有 4") != NULL, "%s", content);
    json_decref(j);
    lf_notify_msg_clear(&m);
    /* E-mail lists every one of them. */
    d = (lf_dest_t){LF_DEST_EMAIL, NULL, NULL, "li.ming@example.com", NULL};
    cr_assert_eq(lf_notify_render(&d, items, &s_style, "dlv", 0, &m), 0);
    cr_expect(strstr(m.body, "leads/L480 ") || strstr(m.body, "leads/L480\n"));
    cr_expect(strstr(m.body, "另有") == NULL);
    lf_notify_msg_clear(&m);
    json_decref(items);
}

Test(notify_format, templates_from_config_override_the_built_in_ones) {
    json_t *items = s_items(1, "lead_assigned");
    json_t *tpl =
        json_pack("{s:{s:s, s:s}}", "lead_assigned", "title", "New lead", "text",
                  "{name} / {company} / {phone_full} / {unknown} / {lead_id}");
    lf_notify_style_t st = {tpl, NULL, 10};
    lf_dest_t d = {LF_DEST_SLACK, "https://hooks.slack.com/x", NULL, NULL, NULL};
    lf_notify_msg_t m;
    cr_assert_eq(lf_notify_render(&d, items, &st, "dlv", 0, &m), 0);
    cr_expect_str_eq(
        m.body,
        "{\"text\":\"*New lead*\\n王先生 / 华东医疗 / +8613800138000 / - / L1\"}");
    lf_notify_msg_clear(&m);
    json_decref(tpl);
    json_decref(items);
}

Test(notify_format, bad_input_is_refused) {
    json_t *items = s_items(1, "lead_assigned"), *none = json_array();
    lf_dest_t d = {LF_DEST_WECOM, NULL, NULL, NULL, NULL};
    lf_notify_msg_t m;
    cr_expect_eq(lf_notify_render(&d, items, NULL, "x", 0, &m), -1, "no URL");
    d.url = "https://x";
    cr_expect_eq(lf_notify_render(&d, none, NULL, "x", 0, &m), -1, "nothing to send");
    d.type = 42;
    cr_expect_eq(lf_notify_render(&d, items, NULL, "x", 0, &m), -1, "unknown type");
    cr_expect_eq(lf_dest_type_parse("feishu"), LF_DEST_FEISHU);
    cr_expect_eq(lf_dest_type_parse("lark"), -1);
    json_decref(items);
    json_decref(none);
}

Test(notify_format, answers_are_classified) {
    char err[200];
    long ra;
    cr_expect_eq(lf_notify_classify(LF_DEST_WECOM, 200,
                                    "{\"errcode\":0,\"errmsg\":\"ok\"}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_OK);
    cr_expect_eq(lf_notify_classify(LF_DEST_WECOM, 200, "{\"errcode\":45009}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_RETRY, "too fast");
    cr_expect_eq(lf_notify_classify(LF_DEST_WECOM, 200, "{\"errcode\":93000}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_DEAD, "invalid webhook URL");
    cr_expect_str_eq(err, "HTTP 200 code 93000 {\"errcode\":93000}");
    cr_expect_eq(lf_notify_classify(LF_DEST_DINGTALK, 200,
                                    "{\"errcode\":310000,\"errmsg\":\"sign not match\"}",
                                    -1, err, sizeof err, &ra),
                 LF_SEND_DEAD, "signature refused");
    cr_expect_eq(lf_notify_classify(LF_DEST_DINGTALK, 200, "{\"errcode\":130101}", -1,
                                    err, sizeof err, &ra),
                 LF_SEND_RETRY);
    cr_expect_eq(ra, 600, "DingTalk blocks a robot for 10 minutes");
    cr_expect_eq(lf_notify_classify(LF_DEST_FEISHU, 200,
                                    "{\"code\":19021,\"msg\":\"sign match fail\"}", -1,
                                    err, sizeof err, &ra),
                 LF_SEND_DEAD);
    cr_expect_eq(lf_notify_classify(LF_DEST_FEISHU, 200, "{\"code\":9499}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_RETRY);
    cr_expect_eq(lf_notify_classify(LF_DEST_FEISHU, 200, "{\"StatusCode\":0}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_OK);
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 429, "", 7, err, sizeof err, &ra),
                 LF_SEND_RETRY);
    cr_expect_eq(ra, 7, "Retry-After is kept");
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 408, "", -1, err, sizeof err, &ra),
                 LF_SEND_RETRY);
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 503, "", -1, err, sizeof err, &ra),
                 LF_SEND_RETRY);
    cr_expect_eq(
        lf_notify_classify(LF_DEST_WEBHOOK, 400, "bad", -1, err, sizeof err, &ra),
        LF_SEND_DEAD);
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 404, "", -1, err, sizeof err, &ra),
                 LF_SEND_DEAD);
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 0, NULL, -1, err, sizeof err, &ra),
                 LF_SEND_RETRY, "no answer (timeout, refused)");
    cr_expect_eq(lf_notify_classify(LF_DEST_SLACK, 200, "ok", -1, err, sizeof err, &ra),
                 LF_SEND_OK);
    cr_expect_eq(
        lf_notify_classify(LF_DEST_SLACK, 403, "invalid_token", -1, err, sizeof err, &ra),
        LF_SEND_DEAD);
    cr_expect_eq(lf_notify_classify(LF_DEST_WEBHOOK, 200, "{\"errcode\":5}", -1, err,
                                    sizeof err, &ra),
                 LF_SEND_OK, "only robots' bodies are read");
}
