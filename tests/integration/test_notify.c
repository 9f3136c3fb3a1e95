/* Notification delivery against loopback receivers (tests/support/receiver.c), one
 * per destination type, with the real scheduler and intake: each body and signature
 * as the target expects it; 500, 429 with Retry-After, 400, robots' error codes, a
 * timeout and a hang; a receiver down for a while then back (nothing lost); two
 * schedulers delivering (no row held by both, a repeat only after a failed send); a burst
 * of 500 for one robot arriving as a few merged messages within its rate; a robot's gap
 * counted from the answer of a message that arrived late, and one message at a time in
 * flight to a robot that answers slowly; e-mail over
 * SMTP; quiet hours; a failing destination paused and its manager told; destinations
 * through the API (masked, write-only, who may set what, private addresses refused), the
 * list, retry and metrics; secrets encrypted at rest, a wrong key, rotating the key, team
 * secrets named by secret_env / secret_file. Leads and notifications are written with
 * SQL: the scheduler's delivery is tested alone (timer firing into notifications has its
 * own tests). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../services/scheduler/notify_format.h"
#include "lf/secret.h"
#include "lf/util.h"
#include "../support/harness.h"
#include "../support/notify_setup.h"
#include "../support/receiver.h"

/* A valid secret key that sealed none of the stored secrets. */
#define S_OTHER_KEY "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

TestSuite(notify, .fini = lf_h_fini);

/* Leads L<first>..L<first+n-1> owned by wang.fang, each with a notification of kind
 * for rep, in one statement (one fan-out). */
static void s_notifications(lf_h_t *h, int first, int n, const char *rep,
                            const char *kind) {
    char q[1024];
    snprintf(q, sizeof q,
             "WITH l AS (INSERT INTO leads (id, channel, name, company, phone, grade,"
             " owner, need, budget_raw) SELECT ('00000000-0000-7000-8000-' || "
             "lpad(g::text, 12, '0'))::uuid, 'web_form', '王先生', '华东医疗',"
             " '+86138' || lpad(g::text, 8, '0'), 'A', 'wang.fang', 'CT 机', '50万'"
             " FROM generate_series(%d, %d) g ON CONFLICT DO NOTHING RETURNING id)"
             " INSERT INTO notifications (lead_id, rep_id, kind, message)"
             " SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, "
             "'%s', '%s', '请处理' FROM generate_series(%d, %d) g"
             " RETURNING 1",
             first, first + n - 1, rep, kind, first, first + n - 1);
    free(lf_h_sql(h, q));
}

static json_t *s_json(char *text) {
    json_t *j = json_loads(text ? text : "", 0, NULL);
    free(text);
    return j;
}

/* The value of query parameter name in target (caller frees), percent-decoded. */
/* The first message `rcv` got is signed as a generic webhook with `secret`: hex
 * HMAC-SHA256 of "<timestamp>.<body>" in X-Leadflow-Signature. */
static void s_expect_webhook_signed(lf_rcv_t *rcv, const char *secret, const char *what) {
    char *body = lf_rcv_body(rcv, 0), *ts = lf_rcv_header(rcv, 0, "X-Leadflow-Timestamp"),
         *sig = lf_rcv_header(rcv, 0, "X-Leadflow-Signature"), hex[65], want[80];
    cr_assert(body && ts && sig, "%s: no signed message", what);
    lf_sign_webhook(secret, ts, body, strlen(body), hex);
    snprintf(want, sizeof want, "sha256=%s", hex);
    cr_expect_str_eq(sig, want, "%s", what);
    free(body);
    free(ts);
    free(sig);
}

static char *s_query(const char *target, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = strstr(target, key);
    if (!p)
        return NULL;
    p += strlen(key);
    size_t n = strcspn(p, "&");
    char *out = calloc(1, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n + 1) {
            unsigned v;
            sscanf(p + i + 1, "%2x", &v);
            *o++ = (char)v;
            i += 2;
        } else {
            *o++ = p[i];
        }
    }
    return out;
}

/* The first message `rcv` got is signed as DingTalk signs: the query's timestamp (ms)
 * and sign, the HMAC-SHA256 of "<timestamp>\n<secret>" under `secret`. */
static void s_expect_dingtalk_signed(lf_rcv_t *rcv, const char *secret,
                                     const char *what) {
    char *t = lf_rcv_target(rcv, 0), *ts = s_query(t, "timestamp"),
         *sign = s_query(t, "sign"), want[64];
    cr_assert(ts && sign, "%s: %s", what, t);
    lf_sign_dingtalk(secret, atoll(ts), want, sizeof want);
    cr_expect_str_eq(sign, want, "%s", what);
    free(t);
    free(ts);
    free(sign);
}

static long s_count(lf_h_t *h, const char *where) {
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM notify_deliveries x JOIN notify_dests d"
             " ON d.key = x.dest_key WHERE %s",
             where);
    return lf_h_sql_long(h, q);
}

Test(notify, each_target_gets_its_own_body_and_signature, .timeout = 90) {
    lf_rcv_t *wecom = lf_rcv_start(0), *ding = lf_rcv_start(0), *feishu = lf_rcv_start(0),
             *slack = lf_rcv_start(0), *hook = lf_rcv_start(0), *smtp = lf_rcv_start(1);
    lf_rcv_default(wecom, (lf_rcv_answer_t){.status = 200,
                                            .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_rcv_default(ding, (lf_rcv_answer_t){.status = 200,
                                           .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_rcv_default(feishu, (lf_rcv_answer_t){.status = 200,
                                             .body = "{\"code\":0,\"msg\":\"success\"}"});
    lf_rcv_default(slack, (lf_rcv_answer_t){.status = 200, .body = "ok"});
    lf_h_t *h = lf_h_new(0, 1);
    char dests[2048], smtp_url[64];
    snprintf(
        dests, sizeof dests,
        "[{\"type\": \"wecom\", \"url\": \"http://127.0.0.1:%d/cgi-bin/webhook/"
        "send?key=k1\", \"to\": \"13800138000\"},"
        " {\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/robot/send?"
        "access_token=t1\", \"secret\": \"SECding\", \"to\": \"13800138000\"},"
        " {\"type\": \"feishu\", \"url\": \"http://127.0.0.1:%d/open-apis/bot/v2/hook/"
        "f1\", \"secret\": \"SECfei\", \"to\": \"ou_42\"},"
        " {\"type\": \"slack\", \"url\": \"http://127.0.0.1:%d/services/T/B/x\"},"
        " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/hook\","
        " \"secret\": \"whsec\"},"
        " {\"type\": \"email\", \"to\": \"wang.fang@example.com\"}]",
        lf_rcv_port(wecom), lf_rcv_port(ding), lf_rcv_port(feishu), lf_rcv_port(slack),
        lf_rcv_port(hook));
    lf_h_set_notify(h, "wang.fang", dests);
    snprintf(smtp_url, sizeof smtp_url, "smtp://127.0.0.1:%d", lf_rcv_port(smtp));
    lf_h_env(h, "LEADFLOW_SMTP_URL", smtp_url);
    lf_h_env(h, "LEADFLOW_SMTP_FROM", "leadflow@example.com");
    lf_h_env(h, "LEADFLOW_SMTP_TLS", "try");
    lf_h_env(h, "LEADFLOW_LINK_TEMPLATE", "https://crm.example.com/leads/{lead_id}");
    lf_h_notify_fast(h);
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    cr_expect_eq(s_count(h, "true"), 6, "one delivery per destination");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_rcv_t *all[] = {wecom, ding, feishu, slack, hook, smtp};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(lf_rcv_wait(all[i], 1, 20000), 1, "receiver %d got nothing", i);
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", "6", 10000));

    /* WeCom: text with @mobile, masked phone, the link. */
    char *t = lf_rcv_target(wecom, 0);
    cr_expect_str_eq(t, "/cgi-bin/webhook/send?key=k1");
    free(t);
    json_t *j = s_json(lf_rcv_body(wecom, 0));
    cr_expect_str_eq(json_string_value(json_object_get(j, "msgtype")), "text");
    const json_t *txt = json_object_get(j, "text");
    cr_expect_str_eq(json_string_value(json_array_get(
                         json_object_get(txt, "mentioned_mobile_list"), 0)),
                     "13800138000");
    cr_expect_str_eq(
        json_string_value(json_object_get(txt, "content")),
        "【新线索分配】\nA级新线索：王先生（华东医疗），电话 +86138****0001，"
        "需求：CT 机，预算：50万。请尽快联系。 https://crm.example.com/leads/"
        "00000000-0000-7000-8000-000000000001");
    json_decref(j);

    /* DingTalk: timestamp (ms) and sign in the query, checked here. */
    t = lf_rcv_target(ding, 0);
    char *ts = s_query(t, "timestamp"), *sign = s_query(t, "sign"), want[64];
    cr_assert(ts && sign, "%s", t);
    cr_expect(!strncmp(t, "/robot/send?access_token=t1&timestamp=", 38), "%s", t);
    lf_sign_dingtalk("SECding", atoll(ts), want, sizeof want);
    cr_expect_str_eq(sign, want, "DingTalk signature");
    cr_expect_gt(atoll(ts), 1700000000000LL, "milliseconds");
    free(t);
    free(ts);
    free(sign);
    j = s_json(lf_rcv_body(ding, 0));
    cr_expect_str_eq(json_string_value(json_object_get(j, "msgtype")), "markdown");
    cr_expect_str_eq(json_string_value(json_array_get(
                         json_object_get(json_object_get(j, "at"), "atMobiles"), 0)),
                     "13800138000");
    cr_expect(
        strstr(json_string_value(json_object_get(json_object_get(j, "markdown"), "text")),
               "@13800138000"));
    json_decref(j);

    /* Feishu: timestamp (s) and sign in the body. */
    j = s_json(lf_rcv_body(feishu, 0));
    const char *fts = json_string_value(json_object_get(j, "timestamp"));
    cr_assert(fts);
    lf_sign_feishu("SECfei", atoll(fts), want, sizeof want);
    cr_expect_str_eq(json_string_value(json_object_get(j, "sign")), want,
                     "Feishu signature");
    cr_expect_str_eq(json_string_value(json_object_get(j, "msg_type")), "post");
    json_t *zh =
        json_object_get(json_object_get(json_object_get(j, "content"), "post"), "zh_cn");
    cr_expect_str_eq(json_string_value(json_object_get(zh, "title")), "新线索分配");
    json_decref(j);

    /* Slack: text with the link in Slack's markup. */
    j = s_json(lf_rcv_body(slack, 0));
    cr_expect(strstr(
        json_string_value(json_object_get(j, "text")),
        "<https://crm.example.com/leads/00000000-0000-7000-8000-000000000001|查看>"));
    json_decref(j);

    /* Generic webhook: hex HMAC-SHA256 of "<timestamp>.<body>", delivery id. */
    char *body = lf_rcv_body(hook, 0),
         *hts = lf_rcv_header(hook, 0, "X-Leadflow-Timestamp"),
         *sig = lf_rcv_header(hook, 0, "X-Leadflow-Signature"),
         *dlv = lf_rcv_header(hook, 0, "X-Leadflow-Delivery");
    cr_assert(body && hts && sig && dlv);
    char hex[65], wsig[80];
    lf_sign_webhook("whsec", hts, body, strlen(body), hex);
    snprintf(wsig, sizeof wsig, "sha256=%s", hex);
    cr_expect_str_eq(sig, wsig, "webhook signature");
    j = json_loads(body, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(j, "delivery_id")), dlv);
    json_t *n0 = json_array_get(json_object_get(j, "notifications"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(n0, "lead_id")),
                     "00000000-0000-7000-8000-000000000001");
    cr_expect_str_eq(json_string_value(json_object_get(n0, "kind")), "lead_assigned");
    cr_expect_str_eq(json_string_value(json_object_get(n0, "to")), "wang.fang");
    json_decref(j);
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM notify_deliveries WHERE batch = '%s'",
             dlv);
    cr_expect_eq(lf_h_sql_long(h, q), 1, "the delivery id is the row's batch");
    free(body);
    free(hts);
    free(sig);
    free(dlv);

    /* E-mail: envelope, encoded subject, base64 UTF-8 body. */
    t = lf_rcv_target(smtp, 0);
    cr_expect_str_eq(t, "<leadflow@example.com> <wang.fang@example.com>");
    free(t);
    body = lf_rcv_body(smtp, 0);
    cr_expect(strstr(body, "Subject: =?UTF-8?B?5paw57q/57Si5YiG6YWN?="), "%s", body);
    char *b64 = strstr(body, "\r\n\r\n");
    cr_assert(b64);
    unsigned char dec[4096];
    char clean[4096];
    size_t k = 0;
    for (char *p = b64 + 4; *p && k < sizeof clean - 1; p++)
        if (*p != '\r' && *p != '\n')
            clean[k++] = *p;
    clean[k] = '\0';
    int dn = EVP_DecodeBlock(dec, (unsigned char *)clean, (int)k);
    cr_assert_gt(dn, 0);
    dec[dn] = '\0';
    cr_expect(strstr((char *)dec, "王先生（华东医疗）"), "%s", dec);
    free(body);

    /* Metrics on intake. */
    char *m = NULL;
    const char *hdr[] = {"Authorization:", NULL};
    cr_expect_eq(lf_h_http(h, "GET", "/metrics", hdr, NULL, 0, &m), 200);
    cr_expect(strstr(m, "leadflow_notify_sent_total{type=\"wecom\"} 1\n"), "%s", m);
    cr_expect(strstr(m, "leadflow_notify_sent_total{type=\"email\"} 1\n"));
    cr_expect(strstr(m, "leadflow_notify_latency_seconds_count{type=\"feishu\"} 1\n"));
    cr_expect(strstr(m,
                     "leadflow_notify_latency_seconds_bucket{type=\"slack\",le=\"+Inf\"} "
                     "1\n"));
    free(m);
    lf_h_destroy(&h);
    for (int i = 0; i < 6; i++)
        lf_rcv_stop(&all[i]);
}

/* One receiver per kind of answer; where a receiver's script runs out it says 200. */
Test(notify, answers_decide_retry_or_dead, .timeout = 90) {
    enum { R500, R429, R400, RBOT, RFAST, RTIMEOUT, RHANG, NR };
    lf_rcv_t *r[NR];
    for (int i = 0; i < NR; i++)
        r[i] = lf_rcv_start(0);
    lf_rcv_script(r[R500], &(lf_rcv_answer_t){.status = 500, .body = "oops"}, 1);
    lf_rcv_script(r[R429],
                  &(lf_rcv_answer_t){.status = 429, .body = "", .retry_after = 2}, 1);
    lf_rcv_script(r[R400], &(lf_rcv_answer_t){.status = 400, .body = "bad"}, 1);
    lf_rcv_default(
        r[RBOT],
        (lf_rcv_answer_t){.status = 200,
                          .body = "{\"errcode\":310000,\"errmsg\":\"keywords not in "
                                  "content\"}"});
    lf_rcv_script(r[RFAST],
                  &(lf_rcv_answer_t){.status = 200, .body = "{\"errcode\":45009}"}, 1);
    lf_rcv_default(r[RFAST], (lf_rcv_answer_t){.status = 200, .body = "{\"errcode\":0}"});
    lf_rcv_script(
        r[RTIMEOUT],
        &(lf_rcv_answer_t){.status = 200, .body = "", .retry_after = 0, .delay_ms = 1500},
        1);
    lf_rcv_script(r[RHANG], &(lf_rcv_answer_t){.hang = 1}, 1);
    lf_h_t *h = lf_h_new(0, 1);
    char dests[2048];
    snprintf(dests, sizeof dests,
             "[{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/a\"},"
             " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/b\"},"
             " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/c\"},"
             " {\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/d\"},"
             " {\"type\": \"wecom\", \"url\": \"http://127.0.0.1:%d/e\"},"
             " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/f\"},"
             " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/g\"}]",
             lf_rcv_port(r[0]), lf_rcv_port(r[1]), lf_rcv_port(r[2]), lf_rcv_port(r[3]),
             lf_rcv_port(r[4]), lf_rcv_port(r[5]), lf_rcv_port(r[6]));
    lf_h_set_notify(h, "wang.fang", dests);
    lf_h_notify_fast(h);
    lf_h_env(h, "LEADFLOW_NOTIFY_WORKERS", "4"); /* a hang holds only one of them */
    s_notifications(h, 1, 1, "wang.fang", "sla_reminder");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries"
                            " WHERE state IN ('sent', 'dead')",
                            "7", 30000),
              "not every destination got its answer");
    sleep(2); /* a dead row must stay dead: no further request */
    /* The timeout (f) may take one try more: its retry can queue behind the first,
     * slow request in the receiver and time out too. */
    char *s = lf_h_sql(h, "SELECT string_agg(right(d.url, 1) || ':' || x.state || ':' ||"
                          " CASE WHEN right(d.url, 1) = 'f' AND x.attempts >= 2 THEN 2"
                          " ELSE x.attempts END, ' ' ORDER BY right(d.url, 1))"
                          " FROM notify_deliveries x JOIN notify_dests d"
                          " ON d.key = x.dest_key");
    cr_expect_str_eq(s, "a:sent:2 b:sent:2 c:dead:1 d:dead:1 e:sent:2 f:sent:2 g:sent:2");
    free(s);
    cr_expect_eq(lf_rcv_count(r[R400]), 1, "a 400 is not retried");
    cr_expect_eq(lf_rcv_count(r[RBOT]), 1, "a keyword refusal is not retried");
    cr_assert_eq(lf_rcv_count(r[R429]), 2);
    cr_expect_geq(lf_rcv_at(r[R429], 1) - lf_rcv_at(r[R429], 0), 1900,
                  "Retry-After: 2 was not honoured (%lld ms)",
                  (long long)(lf_rcv_at(r[R429], 1) - lf_rcv_at(r[R429], 0)));
    s = lf_h_sql(h, "SELECT x.last_error FROM notify_deliveries x JOIN notify_dests d"
                    " ON d.key = x.dest_key WHERE d.type = 'dingtalk'");
    cr_expect(strstr(s, "310000"), "%s", s);
    free(s);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT failed FROM notify_stats WHERE type = 'webhook'"), 5,
        "500, 429, 400, timeout, hang");
    cr_expect_eq(lf_h_sql_long(h, "SELECT dead FROM notify_stats WHERE type = 'webhook'"),
                 1);
    lf_h_destroy(&h);
    for (int i = 0; i < NR; i++)
        lf_rcv_stop(&r[i]);
}

Test(notify, a_receiver_down_then_back_loses_nothing, .timeout = 120) {
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_down(r, 1);
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_notify_to(h, "wang.fang", r, "webhook", "/h", NULL);
    lf_h_env(h, "LEADFLOW_NOTIFY_MERGE_MAX", "7");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    /* Notifications keep coming while the receiver is down. */
    for (int i = 0; i < 5; i++) {
        s_notifications(h, 1 + i * 10, 10, "wang.fang", "lead_assigned");
        usleep(500000);
    }
    sleep(3);
    cr_expect_eq(lf_rcv_count(r), 0);
    cr_assert_gt(lf_h_sql_long(h, "SELECT sum(attempts) FROM notify_deliveries"), 50,
                 "no retries while the receiver was down");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                  " WHERE state = 'dead'"),
                 0);
    lf_rcv_down(r, 0);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'",
                            "50", 30000),
              "not everything was delivered once the receiver came back");
    /* Every notification arrived, each once (nothing was answered before). */
    int seen[51] = {0};
    for (int i = 0; i < lf_rcv_count(r); i++) {
        json_t *j = s_json(lf_rcv_body(r, i));
        size_t k;
        json_t *n;
        json_array_foreach(json_object_get(j, "notifications"), k, n) {
            json_int_t id = json_integer_value(json_object_get(n, "id"));
            if (id >= 1 && id <= 50)
                seen[id]++;
        }
        json_decref(j);
    }
    for (int i = 1; i <= 50; i++)
        cr_expect_eq(seen[i], 1, "notification %d arrived %d times", i, seen[i]);
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

/* Two schedulers, three delivery threads each, four reps with a destination each: a
 * row is never taken by two of them at once. Four destinations, because one holds a
 * single message in flight and the thread that recorded its answer leases it again at
 * once: two schedulers on one destination take turns only by luck, and one of them may
 * do all the work (it did, once, in CI). Both start before the rows exist, so neither
 * has a head start. Each notification arrives, always in the same message (one
 * X-Leadflow-Delivery), never more often than it was leased, and every lease beyond
 * the first follows a failed send its scheduler recorded: a row sent by a second
 * scheduler while the first still held it would be an attempt with no failure. What
 * the delivery promises is at least once: under load a send can time out after the
 * receiver took the request (this receiver answers one connection at a time, and
 * reads a request its sender gave up on from the socket), and the retry repeats the
 * message with the same delivery id. When no send failed, nothing arrived twice. */
Test(notify, two_schedulers_never_send_one_row_twice, .timeout = 120) {
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_default(r, (lf_rcv_answer_t){
                          .status = 200, .body = "", .retry_after = 0, .delay_ms = 30});
    lf_h_t *h = lf_h_new(0, 1);
    static const char *const reps[] = {"li.ming", "wang.fang", "zhang.wei", "chen.jing"};
    const int nreps = (int)(sizeof reps / sizeof *reps);
    for (int i = 0; i < nreps; i++) {
        char path[64];
        snprintf(path, sizeof path, "/h/%s", reps[i]);
        lf_h_notify_to(h, reps[i], r, "webhook", path, NULL);
    }
    lf_h_env(h, "LEADFLOW_NOTIFY_MERGE_MAX", "3");
    lf_h_env(h, "LEADFLOW_NOTIFY_WORKERS", "3");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_h_start(h, LF_H_SCHEDULER, 1);
    const int n = 300;
    for (int i = 0; i < nreps; i++) /* notification ids 1..n, n / nreps per rep */
        s_notifications(h, 1 + i * (n / nreps), n / nreps, reps[i], "lead_assigned");
    char want[16];
    snprintf(want, sizeof want, "%d", n);
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", want, 60000));
    sleep(1);
    /* Attempts of each row, by notification id (one destination a rep: one row each). */
    int *attempts = calloc((size_t)n + 1, sizeof *attempts);
    char *list = lf_h_sql(h, "SELECT string_agg(notification_id || ' ' || attempts, ' ')"
                             " FROM notify_deliveries");
    cr_assert(list);
    for (char *p = list, *e; *p; p = e) {
        long id = strtol(p, &e, 10), a = strtol(e, &e, 10);
        cr_assert(e != p);
        if (id >= 1 && id <= n)
            attempts[id] = (int)a;
    }
    free(list);
    int *seen = calloc((size_t)n + 1, sizeof *seen);
    char **dlv = calloc((size_t)n + 1, sizeof *dlv);
    int two_messages = 0;
    for (int i = 0; i < lf_rcv_count(r); i++) {
        char *d = lf_rcv_header(r, i, "X-Leadflow-Delivery");
        cr_assert(d, "request %d has no X-Leadflow-Delivery", i);
        json_t *j = s_json(lf_rcv_body(r, i));
        size_t k;
        json_t *x;
        json_array_foreach(json_object_get(j, "notifications"), k, x) {
            json_int_t id = json_integer_value(json_object_get(x, "id"));
            if (id < 1 || id > n)
                continue;
            seen[id]++;
            if (!dlv[id])
                dlv[id] = strdup(d);
            else if (strcmp(dlv[id], d))
                two_messages++;
        }
        json_decref(j);
        free(d);
    }
    int twice = 0, missing = 0, beyond = 0;
    for (int i = 1; i <= n; i++) {
        twice += seen[i] > 1;
        missing += seen[i] == 0;
        beyond += seen[i] > attempts[i];
        free(dlv[i]);
    }
    free(dlv);
    free(seen);
    free(attempts);
    cr_expect_eq(missing, 0, "%d notifications never arrived", missing);
    cr_expect_eq(two_messages, 0, "%d times a notification came in a second message",
                 two_messages);
    cr_expect_eq(beyond, 0, "%d notifications arrived more often than they were leased",
                 beyond);
    long again = lf_h_sql_long(h, "SELECT sum(attempts - 1) FROM notify_deliveries");
    long failed =
        lf_h_sql_long(h, "SELECT failed FROM notify_stats WHERE type = 'webhook'");
    cr_expect_eq(again, failed,
                 "%ld leases beyond a row's first, %ld failed sends recorded: a row was"
                 " leased again while another scheduler still held it",
                 again, failed);
    if (failed == 0)
        cr_expect_eq(twice, 0, "%d notifications were sent more than once", twice);
    else
        cr_log_info("%ld sends failed (timeouts under load); %d notifications were sent"
                    " again, with the same X-Leadflow-Delivery",
                    failed, twice);
    /* Both schedulers took part (leased_by is host:pid:worker). */
    char *split = lf_h_sql(h, "SELECT string_agg(c::text, ' / ') FROM (SELECT count(*) c"
                              " FROM notify_deliveries"
                              " GROUP BY split_part(leased_by, ':', 2)) s");
    cr_log_info("rows sent by each scheduler: %s", split ? split : "?");
    free(split);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(DISTINCT split_part(leased_by, ':', 2))"
                                  " FROM notify_deliveries"),
                 2, "one scheduler did all the work: the test proves nothing");
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

Test(notify, a_burst_of_500_for_one_robot_is_a_few_merged_messages, .timeout = 120) {
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_default(
        r, (lf_rcv_answer_t){.status = 200, .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_notify_to(h, "wang.fang", r, "wecom", "/send?key=k", "\"to\": \"13800138000\"");
    lf_h_env(h, "LEADFLOW_NOTIFY_WORKERS", "4");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    /* A handover of 500 leads: 500 notifications in one go. */
    s_notifications(h, 1, 500, "wang.fang", "lead_reassigned");
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", "500", 60000));
    int msgs = lf_rcv_count(r);
    cr_expect_leq(msgs, 6, "%d messages for 500 notifications", msgs);
    long total = 0;
    for (int i = 0; i < msgs; i++) {
        json_t *j = s_json(lf_rcv_body(r, i));
        const char *c =
            json_string_value(json_object_get(json_object_get(j, "text"), "content"));
        cr_assert(c);
        cr_expect_lt(strlen(c), 2048, "WeCom text limit");
        const char *p = strstr(c, "共 ");
        total += p ? atol(p + strlen("共 ")) : 1;
        json_decref(j);
        /* 20 messages a minute: 3 s apart at least. */
        if (i > 0)
            cr_expect_geq(lf_rcv_at(r, i) - lf_rcv_at(r, i - 1), 2900,
                          "messages %d and %d only %lld ms apart", i - 1, i,
                          (long long)(lf_rcv_at(r, i) - lf_rcv_at(r, i - 1)));
    }
    cr_expect_eq(total, 500, "the merged messages announce %ld notifications", total);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT messages FROM notify_stats WHERE type = 'wecom'"), msgs);
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

/* A lease reads the rows of the message it makes, not the destination's whole backlog
 * (0061): with 5,000 rows waiting for one robot, the lease reads few more than the 20
 * it merges. Counted from the backend's statistics (pg_stat_xact_user_tables: rows
 * fetched through indexes and read by sequential scans of notify_deliveries). Before
 * 0061 the two picks read every due row of the destination and sorted them: 10,061. */
Test(notify, a_lease_reads_one_message_not_the_backlog, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    free(lf_h_sql(h, "INSERT INTO notify_dests (key, type, url) VALUES ('backlog-robot',"
                     " 'wecom', 'http://127.0.0.1:9/send') RETURNING 1"));
    free(lf_h_sql(h, "WITH n AS (INSERT INTO notifications (kind, message) SELECT"
                     " 'lead_assigned', 'n' || g FROM generate_series(1, 5000) g"
                     " RETURNING id) INSERT INTO notify_deliveries (notification_id,"
                     " dest_key, next_at) SELECT id, 'backlog-robot', now() - interval"
                     " '1 hour' FROM n RETURNING 1"));
    free(lf_h_sql(h, "ANALYZE notify_deliveries"));
    for (int round = 0; round < 2; round++) {
        /* One transaction (one PQexec): what the backend had read, the lease, and what
         * it read since (the statistics of earlier transactions not yet reported stay
         * in the view for up to a second; within a transaction nothing is reported). */
        long read = lf_h_sql_long(
            h, "CREATE TEMP TABLE IF NOT EXISTS r0 (v bigint); TRUNCATE r0;"
               " INSERT INTO r0 SELECT coalesce(idx_tup_fetch, 0) +"
               " coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables"
               " WHERE relname = 'notify_deliveries';"
               " SELECT count(*) FROM lf_notify_lease('test', 4, 20, 60, '{}'::jsonb);"
               " SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) -"
               " coalesce((SELECT v FROM r0), 0) FROM pg_stat_xact_user_tables"
               " WHERE relname = 'notify_deliveries'");
        cr_expect(read >= 20 && read < 500,
                  "round %d: the lease read %ld rows of notify_deliveries", round, read);
        cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                      " WHERE state = 'sending'"),
                     20 * (round + 1), "round %d leased one message of 20", round);
        free(lf_h_sql(h, "UPDATE notify_dests SET next_send_at = '-infinity'"));
    }
    lf_h_destroy(&h);
}

/* Receiver r as wang.fang's WeCom robot, with the fast delivery settings of
 * lf_h_notify_fast but a request timeout of timeout_ms (a service takes the first of
 * two settings of one variable, so lf_h_notify_to's 1 s cannot be overridden). */
static void s_slow_robot(lf_h_t *h, lf_rcv_t *r, const char *timeout_ms) {
    char dests[256];
    snprintf(dests, sizeof dests,
             "[{\"type\": \"wecom\", \"url\": \"http://127.0.0.1:%d/send?key=k\"}]",
             lf_rcv_port(r));
    lf_h_set_notify(h, "wang.fang", dests);
    lf_h_env(h, "LEADFLOW_NOTIFY_BACKOFF_MS", "100");
    lf_h_env(h, "LEADFLOW_NOTIFY_BACKOFF_MAX_MS", "800");
    lf_h_env(h, "LEADFLOW_NOTIFY_POLL_MS", "50");
    lf_h_env(h, "LEADFLOW_NOTIFY_TIMEOUT_MS", timeout_ms);
}

/* A robot's gap counts from the moment a message's answer is in, not from its lease:
 * the first of three messages reaches the robot 1.5 s after it was leased (the receiver
 * reads it late, as a slow connect or network path would deliver it), and the second
 * still comes at least the 3 s gap after it. Counted from the lease, the second came
 * about 1.5 s after the first. */
Test(notify, a_message_that_arrives_late_still_gets_the_robots_whole_gap, .timeout = 60) {
    const char *ok = "{\"errcode\":0,\"errmsg\":\"ok\"}";
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_default(r, (lf_rcv_answer_t){.status = 200, .body = ok});
    lf_rcv_script(r, &(lf_rcv_answer_t){.status = 200, .body = ok, .read_delay_ms = 1500},
                  1);
    lf_h_t *h = lf_h_new(0, 1);
    s_slow_robot(h, r, "5000");                    /* read late, not timed out */
    lf_h_env(h, "LEADFLOW_NOTIFY_MERGE_MAX", "2"); /* three messages */
    s_notifications(h, 1, 6, "wang.fang", "lead_reassigned");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", "6", 30000));
    cr_assert_eq(lf_rcv_count(r), 3);
    /* 20 messages a minute: 3 s apart at least (100 ms for the two clocks). */
    for (int i = 1; i < 3; i++)
        cr_expect_geq(lf_rcv_at(r, i) - lf_rcv_at(r, i - 1), 2900,
                      "messages %d and %d only %lld ms apart", i - 1, i,
                      (long long)(lf_rcv_at(r, i) - lf_rcv_at(r, i - 1)));
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

/* While a message to a destination is in flight, nobody else leases the destination:
 * the robot takes 5 s to answer the first message, longer than its 3 s gap, and of
 * three delivery threads none starts a second message meanwhile (the rows of one batch
 * only are 'sending', looked at every 100 ms until the answer), not even once a dead
 * notification of the same destination is retried through the API. The next message
 * leaves the gap after the answer. Before, the destination was free again 3 s after
 * the lease: a second message went out while the first was unanswered, and could
 * arrive before it. */
Test(notify, a_slow_answer_keeps_a_second_message_to_the_robot_back, .timeout = 60) {
    const char *ok = "{\"errcode\":0,\"errmsg\":\"ok\"}";
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_default(r, (lf_rcv_answer_t){.status = 200, .body = ok});
    lf_rcv_script(r, &(lf_rcv_answer_t){.status = 200, .body = ok, .delay_ms = 5000}, 1);
    lf_h_t *h = lf_h_new(0, 1);
    s_slow_robot(h, r, "10000"); /* slow, not timed out */
    lf_h_env(h, "LEADFLOW_NOTIFY_WORKERS", "3");
    lf_h_env(h, "LEADFLOW_NOTIFY_MERGE_MAX", "2");
    s_notifications(h, 1, 4, "wang.fang", "lead_reassigned");
    s_notifications(h, 5, 1, "wang.fang", "lead_reassigned");
    free(lf_h_sql(h, "UPDATE notify_deliveries SET state = 'dead', attempts = 1,"
                     " last_error = 'HTTP 500' WHERE notification_id = 5 RETURNING 1"));
    char path[96];
    snprintf(
        path, sizeof path, "/v1/notifications/%ld/retry",
        lf_h_sql_long(h, "SELECT id FROM notify_deliveries WHERE notification_id = 5"));
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert_eq(lf_rcv_wait(r, 1, 15000), 1);
    json_t *out = NULL;
    cr_expect_eq(lf_h_post_json(h, path, "{}", &out), 202);
    json_decref(out);
    long most = 0;
    int64_t last = 0;
    while (!lf_rcv_answered(r, 0) && lf_mono_ms() - lf_rcv_at(r, 0) < 8000) {
        long n = lf_h_sql_long(h, "SELECT count(DISTINCT batch) FROM notify_deliveries"
                                  " WHERE state = 'sending'");
        most = n > most ? n : most;
        if (!lf_rcv_answered(r, 0))
            last = lf_mono_ms();
        usleep(100000);
    }
    cr_expect(lf_rcv_answered(r, 0), "the first message was not answered in 8 s");
    cr_expect_geq(last - lf_rcv_at(r, 0), 4000,
                  "the last look while the answer was held came %lld ms after it arrived",
                  (long long)(last - lf_rcv_at(r, 0)));
    cr_expect_eq(most, 1, "%ld messages to one robot were in flight at once", most);
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", "5", 30000));
    cr_assert_eq(lf_rcv_count(r), 3, "5 notifications, 2 a message");
    cr_expect_geq(lf_rcv_at(r, 1) - lf_rcv_at(r, 0), 5000 + 2900,
                  "the second message came %lld ms after the first, answered after 5 s",
                  (long long)(lf_rcv_at(r, 1) - lf_rcv_at(r, 0)));
    cr_expect_geq(lf_rcv_at(r, 2) - lf_rcv_at(r, 1), 2900);
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

Test(notify, smtp_temporary_refusal_is_retried, .timeout = 60) {
    lf_rcv_t *smtp = lf_rcv_start(1);
    lf_rcv_script(smtp, &(lf_rcv_answer_t){.status = 451}, 1);
    lf_h_t *h = lf_h_new(0, 1);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", lf_rcv_port(smtp));
    lf_h_env(h, "LEADFLOW_SMTP_URL", url);
    lf_h_env(h, "LEADFLOW_SMTP_FROM", "leadflow@example.com");
    lf_h_env(h, "LEADFLOW_SMTP_TLS", "try");
    lf_h_notify_fast(h);
    lf_h_set_notify(h, "li.ming",
                    "[{\"type\": \"email\", \"to\": \"li.ming@example.com\"}]");
    s_notifications(h, 1, 1, "li.ming", "sla_escalation");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h, "SELECT state || ':' || attempts FROM notify_deliveries",
                            "sent:2", 20000));
    char *t = lf_rcv_target(smtp, 0);
    cr_expect_str_eq(t, "<leadflow@example.com> <li.ming@example.com>");
    free(t);
    lf_h_destroy(&h);
    lf_rcv_stop(&smtp);
}

Test(notify, quiet_hours_hold_back_all_but_escalations, .timeout = 60) {
    lf_rcv_t *r = lf_rcv_start(0), *hook = lf_rcv_start(0);
    lf_h_t *h = lf_h_new(0, 1);
    /* Team east works only tomorrow 09:00-10:00 UTC (its business calendar). */
    char cfg[1024], *dow = lf_h_sql(h, "SELECT to_char(now() + interval '1 day', 'dy')");
    snprintf(cfg, sizeof cfg,
             "{\"default_team\": null, \"teams\": {\"east\": {\"policy\": \"weighted\","
             " \"calendar\": {\"timezone\": \"UTC\", \"work_days\": [\"%s\"],"
             " \"hours\": [[\"09:00\", \"10:00\"]]}}}}",
             dow);
    free(dow);
    lf_h_config(h, "routing.json", cfg);
    char dests[512];
    snprintf(dests, sizeof dests,
             "[{\"type\": \"slack\", \"url\": \"http://127.0.0.1:%d/s\"},"
             " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/h\"}]",
             lf_rcv_port(r), lf_rcv_port(hook));
    lf_h_set_notify(h, "wang.fang", dests);
    lf_h_set_notify(h, "zhang.wei", dests);
    /* wang.fang: its own work_hours, tomorrow 09:00-10:00 UTC; zhang.wei: none, so its
     * team's calendar; chen.jing (south) ignores shifts: never quiet. */
    free(lf_h_sql(h, "UPDATE reps SET timezone = 'UTC', ignore_shift = false,"
                     " work_hours = jsonb_build_object(to_char(now() + interval '1 day',"
                     " 'dy'), '[\"09:00\", \"10:00\"]'::jsonb) WHERE id = 'wang.fang'"
                     " RETURNING 1"));
    free(lf_h_sql(h, "UPDATE reps SET ignore_shift = false, work_hours = NULL"
                     " WHERE id = 'zhang.wei' RETURNING 1"));
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0); /* writes the team calendars to PostgreSQL */
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) > 0 FROM notify_teams WHERE team = 'east'"
                            " AND open_hours IS NOT NULL",
                            "t", 10000));
    s_notifications(h, 1, 1, "wang.fang", "sla_reminder");
    s_notifications(h, 2, 1, "wang.fang", "sla_escalation");
    s_notifications(h, 3, 1, "zhang.wei", "sla_reminder");
    const char *tomorrow9 =
        "date_trunc('day', now() + interval '1 day') + interval '9 hours'";
    char q[512];
    snprintf(q, sizeof q,
             "SELECT string_agg('L' || right(n.lead_id::text, 1) || ':' || d.type || ':' "
             "|| (x.next_at = %s), ' '"
             " ORDER BY n.lead_id, d.type) FROM notify_deliveries x JOIN notifications n"
             " ON n.id = x.notification_id JOIN notify_dests d ON d.key = x.dest_key",
             tomorrow9);
    char *s = lf_h_sql(h, q);
    cr_expect_str_eq(s,
                     "L1:slack:true L1:webhook:false L2:slack:false L2:webhook:false "
                     "L3:slack:true L3:webhook:false",
                     "reminders to people wait for working hours; escalations and "
                     "webhooks do not");
    free(s);
    cr_assert_eq(lf_rcv_wait(r, 1, 15000), 1);
    sleep(1);
    cr_expect_eq(lf_rcv_count(r), 1, "only the escalation goes to the chat now");
    json_t *j = s_json(lf_rcv_body(r, 0));
    cr_expect(strstr(json_string_value(json_object_get(j, "text")), "首次联系超时升级"));
    json_decref(j);
    cr_expect(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries x JOIN notify_dests d"
                            " ON d.key = x.dest_key WHERE d.type = 'webhook'"
                            " AND x.state = 'sent'",
                            "3", 10000));
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
    lf_rcv_stop(&hook);
}

Test(notify, a_failing_destination_is_paused_and_the_manager_told, .timeout = 60) {
    lf_rcv_t *bad = lf_rcv_start(0), *mgr = lf_rcv_start(0);
    lf_rcv_default(bad, (lf_rcv_answer_t){.status = 503, .body = "down"});
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_notify_to(h, "wang.fang", bad, "slack", "/s", NULL);
    lf_h_notify_to(h, "li.ming", mgr, "webhook", "/m", NULL);
    lf_h_env(h, "LEADFLOW_NOTIFY_PAUSE_AFTER_S", "1");
    s_notifications(h, 1, 1, "wang.fang", "sla_reminder");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert_eq(lf_rcv_wait(mgr, 1, 20000), 1, "the manager was not told");
    json_t *j = s_json(lf_rcv_body(mgr, 0));
    json_t *n0 = json_array_get(json_object_get(j, "notifications"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(n0, "kind")),
                     "destination_paused");
    cr_expect_str_eq(json_string_value(json_object_get(n0, "to")), "li.ming");
    cr_expect(strstr(json_string_value(json_object_get(n0, "message")), "wang.fang"));
    json_decref(j);
    sleep(2);
    cr_expect_eq(lf_rcv_count(bad), 3, "a paused destination is left alone");
    cr_expect_eq(s_count(h, "d.type = 'slack' AND x.state = 'pending'"), 1,
                 "the notification waits (until the pause ends or its maximum age)");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_dests WHERE type = 'slack'"
                                  " AND paused_until > now()"),
                 1);
    lf_h_destroy(&h);
    lf_rcv_stop(&bad);
    lf_rcv_stop(&mgr);
}

/* ---- the API ---- */

static int s_patch(lf_h_t *h, const char *key, const char *path, const char *json,
                   json_t **out) {
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hd[] = {auth, "Content-Type: application/json", NULL};
    char *body = NULL;
    int st = lf_h_http(h, "PATCH", path, hd, json, strlen(json), &body);
    if (out)
        *out = json_loads(body ? body : "", 0, NULL);
    free(body);
    return st;
}

Test(notify, destinations_through_the_api, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    const char *admin = lf_h_admin_key(h);
    json_t *out = NULL;
    cr_assert_eq(
        s_patch(h, admin, "/v1/reps/wang.fang",
                "{\"notify\": [{\"type\": \"wecom\", \"url\": \"http://127.0.0.1:9/"
                "cgi-bin/webhook/send?key=abcdef123456\", \"to\": \"13800138000\"},"
                " {\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:9/robot/"
                "send?access_token=tok987654\", \"secret\": \"SECxyz\"}]}",
                &out),
        200);
    char *txt = json_dumps(json_object_get(out, "notify"), JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(txt, "[{\"to\":\"13800138000\",\"type\":\"wecom\",\"url\":"
                          "\"http://127.0.0.1:9/cgi-bin/webhook/send?key=****3456\"},"
                          "{\"secret\":\"****\",\"type\":\"dingtalk\",\"url\":"
                          "\"http://127.0.0.1:9/robot/send?access_token=****7654\"}]");
    free(txt);
    json_decref(out);
    /* An unrelated change and a masked list sent back keep what is stored. */
    cr_assert_eq(s_patch(h, admin, "/v1/reps/wang.fang", "{\"capacity\": 12}", NULL),
                 200);
    json_t *rep = NULL;
    cr_assert_eq(lf_h_get_json(h, "/v1/reps/wang.fang", &rep), 200);
    json_t *list = json_deep_copy(json_object_get(rep, "notify"));
    json_array_append_new(list, json_pack("{s:s, s:s}", "type", "slack", "url",
                                          "http://127.0.0.1:9/services/T/B/zz"));
    json_t *patch = json_pack("{s:o}", "notify", list);
    char *pt = json_dumps(patch, JSON_COMPACT);
    cr_assert_eq(s_patch(h, admin, "/v1/reps/wang.fang", pt, NULL), 200);
    free(pt);
    json_decref(patch);
    json_decref(rep);
    /* The secret kept is the one stored, encrypted (secrets_are_stored_encrypted_...). */
    char *s = lf_h_sql(h, "SELECT string_agg(coalesce(d ->> 'url', '') || '|' ||"
                          " coalesce(left(d ->> 'secret', 7), ''), ' ' ORDER BY o) FROM"
                          " reps, jsonb_array_elements(notify) WITH ORDINALITY x(d, o)"
                          " WHERE id = 'wang.fang' AND position('SECxyz' in notify::text)"
                          " = 0");
    cr_expect_str_eq(s, "http://127.0.0.1:9/cgi-bin/webhook/send?key=abcdef123456| "
                        "http://127.0.0.1:9/robot/send?access_token=tok987654|enc:v1: "
                        "http://127.0.0.1:9/services/T/B/zz|");
    free(s);
    /* Refused: private addresses (tests allow loopback only), unknown types, e-mail
     * without an address, a masked URL that matches nothing. */
    cr_expect_eq(
        s_patch(h, admin, "/v1/reps/wang.fang",
                "{\"notify\": [{\"type\": \"webhook\", \"url\": "
                "\"http://10.1.2.3/h\"}, {\"type\": \"slack\", \"url\": "
                "\"http://169.254.169.254/latest\"}, {\"type\": \"qq\", \"url\": "
                "\"http://127.0.0.1/x\"}, {\"type\": \"email\"}, {\"type\": "
                "\"wecom\", \"url\": \"http://127.0.0.1:9/send?key=****zzzz\"}]}",
                &out),
        422);
    txt = json_dumps(json_object_get(out, "fields"), JSON_COMPACT);
    cr_expect(strstr(txt, "notify[0].url") && strstr(txt, "notify[1].url") &&
                  strstr(txt, "notify[2].type") && strstr(txt, "notify[3].to") &&
                  strstr(txt, "notify[4].url"),
              "%s", txt);
    free(txt);
    json_decref(out);
    /* A rep's own key: chat destinations yes, webhooks no. */
    char hash_sql[512];
    snprintf(hash_sql, sizeof hash_sql,
             "INSERT INTO api_keys (id, key_hash, rep_id) VALUES ('key_wf',"
             " encode(sha256('wf-key'::bytea), 'hex'), 'wang.fang') RETURNING 1");
    free(lf_h_sql(h, hash_sql));
    cr_expect_eq(s_patch(h, "wf-key", "/v1/reps/wang.fang",
                         "{\"notify\": [{\"type\": \"feishu\", \"url\": "
                         "\"http://127.0.0.1:9/open-apis/bot/v2/hook/abcdef\"}]}",
                         NULL),
                 200);
    cr_expect_eq(s_patch(h, "wf-key", "/v1/reps/wang.fang",
                         "{\"notify\": [{\"type\": \"webhook\", \"url\": "
                         "\"http://127.0.0.1:9/mine\"}]}",
                         &out),
                 403);
    cr_expect_str_eq(json_string_value(json_object_get(out, "error")), "forbidden");
    json_decref(out);
    lf_h_destroy(&h);
}

Test(notify, list_and_retry_through_the_api, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    lf_h_set_notify(h, "wang.fang",
                    "[{\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:9/robot/send?"
                    "access_token=tok987654\", \"secret\": \"SECxyz\"}]");
    s_notifications(h, 1, 2, "wang.fang", "sla_reminder");
    free(lf_h_sql(h, "UPDATE notify_deliveries SET state = 'dead', attempts = 3,"
                     " last_error = 'HTTP 200 code 310000' WHERE notification_id = 1"
                     " RETURNING 1"));
    json_t *out = NULL;
    cr_assert_eq(lf_h_get_json(h, "/v1/notifications?to=wang.fang&state=dead", &out),
                 200);
    json_t *list = json_object_get(out, "notifications");
    cr_assert_eq(json_array_size(list), 1);
    json_t *n0 = json_array_get(list, 0);
    cr_expect_str_eq(json_string_value(json_object_get(n0, "kind")), "sla_reminder");
    cr_expect_str_eq(json_string_value(json_object_get(n0, "to")), "wang.fang");
    cr_expect_str_eq(json_string_value(json_object_get(n0, "lead_id")),
                     "00000000-0000-7000-8000-000000000001");
    cr_expect_eq(json_integer_value(json_object_get(n0, "attempts")), 3);
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(n0, "destination"), "url")),
        "http://127.0.0.1:9/robot/send?access_token=****7654");
    char *all = json_dumps(out, 0);
    cr_expect(!strstr(all, "SECxyz") && !strstr(all, "tok987654"), "a secret leaked: %s",
              all);
    free(all);
    char path[96];
    snprintf(path, sizeof path, "/v1/notifications/%s/retry",
             json_string_value(json_object_get(n0, "id")));
    json_decref(out);
    cr_expect_eq(lf_h_post_json(h, path, "{}", &out), 202);
    cr_expect_str_eq(json_string_value(json_object_get(out, "state")), "pending");
    json_decref(out);
    cr_expect_eq(lf_h_post_json(h, path, "{}", &out), 409, "only a dead one");
    json_decref(out);
    cr_expect_eq(lf_h_post_json(h, "/v1/notifications/999999/retry", "{}", &out), 404);
    json_decref(out);
    cr_assert_eq(
        lf_h_get_json(h, "/v1/notifications?state=pending&kind=sla_reminder", &out), 200);
    cr_expect_eq(json_array_size(json_object_get(out, "notifications")), 2);
    json_decref(out);
    cr_assert_eq(lf_h_get_json(h, "/v1/notifications?limit=1", &out), 200);
    cr_expect(json_is_string(json_object_get(out, "next_cursor")));
    json_decref(out);
    cr_expect_eq(lf_h_get_json(h, "/v1/notifications?state=lost", &out), 400);
    json_decref(out);
    /* People see the notifications of the reps they reach: wang.fang its own, its
     * manager li.ming those of its reps, zhang.wei none of them. */
    free(lf_h_sql(h,
                  "INSERT INTO api_keys (id, key_hash, scope, rep_id) VALUES"
                  " ('k1', encode(sha256('wf-key'::bytea), 'hex'), 'rep', 'wang.fang'),"
                  " ('k2', encode(sha256('zw-key'::bytea), 'hex'), 'rep', 'zhang.wei'),"
                  " ('k3', encode(sha256('lm-key'::bytea), 'hex'), 'manager', 'li.ming')"
                  " RETURNING 1"));
    const char *keys[] = {"wf-key", "zw-key", "lm-key"};
    const size_t want[] = {2, 0, 2};
    for (int i = 0; i < 3; i++) {
        char auth[64], *b = NULL;
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", keys[i]);
        const char *hd[] = {auth, NULL};
        cr_expect_eq(lf_h_http(h, "GET", "/v1/notifications", hd, NULL, 0, &b), 200);
        json_t *j = s_json(b);
        cr_expect_eq(json_array_size(json_object_get(j, "notifications")), want[i],
                     "%s sees %zu", keys[i],
                     json_array_size(json_object_get(j, "notifications")));
        json_decref(j);
    }
    lf_h_destroy(&h);
}

Test(notify, team_and_global_destinations_from_the_configuration, .timeout = 60) {
    lf_rcv_t *team = lf_rcv_start(0), *global = lf_rcv_start(0);
    lf_h_t *h = lf_h_new(0, 1);
    char cfg[1024], url[64];
    snprintf(
        cfg, sizeof cfg,
        "{\"default_team\": null, \"default_policy\": \"round_robin\","
        " \"default_fallback\": {\"queue\": \"unassigned\"}, \"teams\": {\"east\":"
        " {\"policy\": \"weighted\", \"manager\": \"li.ming\", \"notify\": [{\"type\":"
        " \"webhook\", \"url\": \"http://127.0.0.1:%d/team\", \"secret\": \"t\"}]}}}",
        lf_rcv_port(team));
    lf_h_config(h, "routing.json", cfg);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/all", lf_rcv_port(global));
    lf_h_env(h, "LEADFLOW_WEBHOOK_URL", url);
    lf_h_env(h, "LEADFLOW_WEBHOOK_SECRET", "g");
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    /* wang.fang is in team east; chen.jing in south (no team destinations). */
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    s_notifications(h, 2, 1, "chen.jing", "lead_assigned");
    cr_assert(lf_h_wait_sql(
        h, "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'", "3", 20000));
    cr_expect_eq(lf_rcv_count(team), 1);
    json_t *j = s_json(lf_rcv_body(team, 0));
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "notifications"), 0), "to")),
                     "wang.fang");
    json_decref(j);
    s_expect_webhook_signed(global, "g", "the global webhook's signature");
    size_t items = 0;
    for (int i = 0; i < lf_rcv_count(global); i++) {
        json_t *g = s_json(lf_rcv_body(global, i));
        items += json_array_size(json_object_get(g, "notifications"));
        json_decref(g);
    }
    cr_expect_eq(items, 2, "the global webhook gets everything");
    lf_h_destroy(&h);
    lf_rcv_stop(&team);
    lf_rcv_stop(&global);
}

Test(notify, a_bad_team_destination_stops_the_scheduler_with_a_clear_error,
     .timeout = 30) {
    char cmd[1024];
    const char *bin = getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin";
    snprintf(
        cmd, sizeof cmd,
        "d=$(mktemp -d) && cp config/*.json $d/ && printf '%%s' '{\"teams\": {\"east\":"
        " {\"notify\": [{\"type\": \"qq\", \"url\": \"http://x\"}]}}}' > $d/routing.json"
        " && LEADFLOW_CONFIG_DIR=$d "
        "LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:"
        "%s/postgres %s/leadflow-scheduler 2>&1 | grep -q 'teams.east.notify\\[0\\]';"
        " rc=$?; rm -rf $d; exit $rc",
        getenv("LF_TEST_PG_PORT"), bin);
    cr_expect_eq(system(cmd), 0, "a bad team destination was not refused clearly");
}

/* A scheduler killed between send and record: the rows stay leased, and once the
 * lease runs out the message is sent again with the same X-Leadflow-Delivery, which
 * is what lets a receiver drop the repeat (at-least-once, never lost). */
Test(notify, a_kill_between_send_and_record_repeats_with_the_same_delivery_id,
     .timeout = 120) {
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_script(r, &(lf_rcv_answer_t){.status = 200, .delay_ms = 800}, 1);
    lf_h_t *h = lf_h_new(0, 1);
    /* A 1 s timeout (lf_h_notify_fast): a lease of 32 s. */
    lf_h_notify_to(h, "wang.fang", r, "webhook", "/h", "\"secret\": \"s\"");
    s_notifications(h, 1, 3, "wang.fang", "lead_assigned");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert_eq(lf_rcv_wait(r, 1, 15000), 1);
    lf_h_stop(h, LF_H_SCHEDULER, 0, 1); /* while the receiver is still answering */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                  " WHERE state = 'sending'"),
                 3, "the rows stay leased");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'",
                            "3", 60000),
              "the leased rows were never sent again");
    cr_assert_eq(lf_rcv_count(r), 2);
    char *d0 = lf_rcv_header(r, 0, "X-Leadflow-Delivery"),
         *d1 = lf_rcv_header(r, 1, "X-Leadflow-Delivery");
    cr_assert(d0 && d1);
    cr_expect_str_eq(d0, d1, "a repeat must carry the same delivery id");
    cr_expect_geq(lf_rcv_at(r, 1) - lf_rcv_at(r, 0), 25000,
                  "sent again before the lease ran out");
    free(d0);
    free(d1);
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

/* A scheduler stopped (SIGTERM) while one worker holds two destinations' leases: the
 * message it is sending is cut short (a failed try, retried), and the other is given
 * back, rows pending and the destination free, so the next scheduler sends it at once,
 * not when the lease (32 s with the fast settings) would have run out. */
Test(notify, a_stopped_scheduler_gives_back_what_it_leased_and_did_not_send,
     .timeout = 90) {
    lf_rcv_t *r = lf_rcv_start(0);
    lf_rcv_script(r, &(lf_rcv_answer_t){.status = 200, .delay_ms = 800}, 1);
    lf_h_t *h = lf_h_new(0, 1);
    lf_h_notify_to(h, "wang.fang", r, "webhook", "/a", "\"secret\": \"s\"");
    lf_h_notify_to(h, "li.ming", r, "webhook", "/b", "\"secret\": \"s\"");
    lf_h_env(h, "LEADFLOW_NOTIFY_WORKERS", "1");
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    s_notifications(h, 2, 1, "li.ming", "lead_assigned");
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert_eq(lf_rcv_wait(r, 1, 15000), 1);
    /* One lease took both destinations; the first message is being answered. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                  " WHERE state = 'sending'"),
                 2, "one lease holds both");
    lf_h_stop(h, LF_H_SCHEDULER, 0, 0);
    cr_expect_eq(lf_rcv_count(r), 1, "the second message started after the stop");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                  " WHERE state = 'sending'"),
                 0, "a leased row was not given back");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"
                                  " WHERE state = 'pending' AND attempts = 0"),
                 1, "the row not sent is pending, its try not counted");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_dests"
                                  " WHERE next_send_at > now() + interval '10 seconds'"),
                 0, "a destination is still held by the stopped scheduler's lease");
    /* The message being sent when the stop came was cut short (a failure, retried
     * after its backoff); the one given back goes at once, not after the lease. */
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries WHERE state = 'sent'",
                            "2", 15000),
              "the message given back waited for the stopped scheduler's lease");
    int n = lf_rcv_count(r);
    char *first = lf_rcv_target(r, 0);
    cr_assert(first);
    int other = 0;
    for (int i = 1; i < n; i++) {
        char *t = lf_rcv_target(r, i);
        other += t && strcmp(t, first) != 0;
        free(t);
    }
    cr_expect_eq(other, 1, "the other destination got %d messages", other);
    free(first);
    lf_h_destroy(&h);
    lf_rcv_stop(&r);
}

/* The fan-out trigger skips its work while no destination exists anywhere (the
 * router writes a notification per assignment, and the targets' joins cost ~36 us
 * each for nothing), and fans out again from the first statement after a rep, a team
 * or '*' gets one: the check is made per statement, nothing is cached. */
Test(notify, fan_out_starts_with_the_first_destination, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 1);
    free(lf_h_sql(h, "UPDATE reps SET notify = '[]' RETURNING 1"));
    free(lf_h_sql(h, "DELETE FROM notify_teams RETURNING 1"));
    s_notifications(h, 1, 3, "wang.fang", "lead_assigned");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"), 0);
    /* A rep's own destination. */
    free(lf_h_sql(h, "UPDATE reps SET notify = '[{\"type\": \"webhook\", \"url\":"
                     " \"http://127.0.0.1:9/r\"}]' WHERE id = 'wang.fang' RETURNING 1"));
    s_notifications(h, 4, 2, "wang.fang", "lead_assigned");
    s_notifications(h, 6, 1, "chen.jing", "lead_assigned");
    cr_expect_eq(s_count(h, "d.url = 'http://127.0.0.1:9/r'"), 2,
                 "the rep's two new notifications were not fanned out");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_deliveries"), 2);
    /* Only a global destination ('*', from the configuration). */
    free(lf_h_sql(h, "UPDATE reps SET notify = '[]' RETURNING 1"));
    free(lf_h_sql(h,
                  "INSERT INTO notify_teams (team, notify) VALUES ('*', '[{\"type\":"
                  " \"webhook\", \"url\": \"http://127.0.0.1:9/all\"}]') RETURNING 1"));
    s_notifications(h, 7, 2, "chen.jing", "lead_assigned");
    cr_expect_eq(s_count(h, "d.url = 'http://127.0.0.1:9/all'"), 2,
                 "the global destination got nothing");
    lf_h_destroy(&h);
}

/* The secrets stored in PostgreSQL for the rows of a SQL condition on reps, as one text
 * (for searching the stored bytes). */
static char *s_stored_secrets(lf_h_t *h) {
    return lf_h_sql(h, "SELECT concat_ws(' ', (SELECT string_agg(notify::text, ' ') FROM"
                       " reps), (SELECT string_agg(notify::text, ' ') FROM notify_teams),"
                       " (SELECT string_agg(coalesce(secret, '-'), ' ') FROM"
                       " notify_dests))");
}

/* Secrets at rest: a secret set through the API is stored encrypted (reps.notify, then
 * notify_dests when a notification fans out), as is a secret stored in plain text before
 * (written here with SQL) once leadflow-migrate runs with the key; the API shows none of
 * them; the scheduler opens each for its message, so DingTalk, Feishu and the webhook
 * get signatures made with the real secrets (checked here with the plain secrets). */
Test(notify, secrets_are_stored_encrypted_and_messages_still_signed, .timeout = 90) {
    lf_rcv_t *ding = lf_rcv_start(0), *feishu = lf_rcv_start(0), *hook = lf_rcv_start(0);
    lf_rcv_default(ding, (lf_rcv_answer_t){.status = 200,
                                           .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_rcv_default(feishu, (lf_rcv_answer_t){.status = 200,
                                             .body = "{\"code\":0,\"msg\":\"success\"}"});
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    /* li.ming's Feishu robot: stored before secrets were encrypted */
    char dests[1024];
    snprintf(dests, sizeof dests,
             "[{\"type\": \"feishu\", \"url\": \"http://127.0.0.1:%d/open-apis/bot/v2/"
             "hook/f1\", \"secret\": \"SECfei-plain\"}]",
             lf_rcv_port(feishu));
    lf_h_set_notify(h, "li.ming", dests);
    snprintf(
        dests, sizeof dests,
        "{\"notify\": [{\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/robot/"
        "send?access_token=t1\", \"secret\": \"SECding-api\"},"
        " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/hook\","
        " \"secret\": \"whsec-api\"}]}",
        lf_rcv_port(ding), lf_rcv_port(hook));
    json_t *out = NULL;
    cr_assert_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang", dests, &out), 200);
    char *txt = json_dumps(out, JSON_COMPACT);
    cr_expect(!strstr(txt, "SECding") && !strstr(txt, "whsec") && !strstr(txt, "enc:v1"),
              "the answer shows a secret: %s", txt);
    free(txt);
    json_decref(out);
    /* Stored: wang.fang's sealed, li.ming's still plain until the migrate step. */
    char *all = s_stored_secrets(h);
    cr_expect(!strstr(all, "SECding-api") && !strstr(all, "whsec-api"), "%s", all);
    cr_expect(strstr(all, "SECfei-plain"), "%s", all);
    free(all);
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM reps, jsonb_array_elements(notify)"
                               " d WHERE id = 'wang.fang' AND d ->> 'secret' LIKE"
                               " 'enc:v1:%'"),
                 2);
    /* leadflow-migrate with the key encrypts what was stored in plain text, once. */
    char cmd[1024];
    for (int round = 0; round < 2; round++) {
        snprintf(cmd, sizeof cmd,
                 "LEADFLOW_DATABASE_URL='%s' LEADFLOW_SECRET_KEY=%s %s/leadflow-migrate"
                 " >/dev/null 2>&1",
                 lf_h_db_url(h), LF_H_SECRET_KEY,
                 getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin");
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    all = s_stored_secrets(h);
    cr_expect(!strstr(all, "SECfei-plain"), "a plain secret stayed: %s", all);
    free(all);
    /* One notification each fans out to the destinations (notify_dests): sealed too. */
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    s_notifications(h, 2, 1, "li.ming", "lead_assigned");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_dests WHERE secret LIKE"
                                  " 'enc:v1:%'"),
                 3);
    all = s_stored_secrets(h);
    cr_expect(!strstr(all, "SECding") && !strstr(all, "whsec") && !strstr(all, "SECfei"),
              "%s", all);
    free(all);
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    lf_rcv_t *rcv[] = {ding, feishu, hook};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lf_rcv_wait(rcv[i], 1, 20000), 1, "receiver %d got nothing", i);
    char want[64];
    s_expect_dingtalk_signed(ding, "SECding-api",
                             "DingTalk signature with the secret set through the API");
    json_t *j = s_json(lf_rcv_body(feishu, 0));
    const char *fts = json_string_value(json_object_get(j, "timestamp"));
    cr_assert(fts);
    lf_sign_feishu("SECfei-plain", atoll(fts), want, sizeof want);
    cr_expect_str_eq(json_string_value(json_object_get(j, "sign")), want,
                     "Feishu signature with the secret encrypted by the migrate step");
    json_decref(j);
    s_expect_webhook_signed(hook, "whsec-api", "webhook signature");
    lf_h_destroy(&h);
    lf_rcv_stop(&ding);
    lf_rcv_stop(&feishu);
    lf_rcv_stop(&hook);
}

/* A scheduler whose key is not the one that encrypted a secret sends nothing to that
 * destination and says why in the delivery's error, and keeps running; intake with that
 * key, or with none, refuses a new secret with 503 and a clear message, and stores
 * nothing; leadflow-migrate with that key fails and encrypts nothing. */
Test(notify, a_wrong_or_missing_key_is_a_clear_error, .timeout = 90) {
    lf_rcv_t *ding = lf_rcv_start(0);
    lf_rcv_default(ding, (lf_rcv_answer_t){.status = 200,
                                           .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char dests[512];
    snprintf(
        dests, sizeof dests,
        "{\"notify\": [{\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/robot/"
        "send?access_token=t1\", \"secret\": \"SECding\"}]}",
        lf_rcv_port(ding));
    cr_assert_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang", dests, NULL), 200);
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    lf_h_stop(h, LF_H_INTAKE, 0, 0);
    lf_h_env(h, "LEADFLOW_SECRET_KEY", S_OTHER_KEY);
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_expect(lf_h_wait_sql(h,
                            "SELECT count(*) FROM notify_deliveries WHERE last_error LIKE"
                            " '%does not decrypt with LEADFLOW_SECRET_KEY%'",
                            "1", 20000),
              "no clear error on the delivery");
    cr_expect_eq(lf_rcv_count(ding), 0, "a message went out unsigned or signed wrong");
    cr_expect_eq(kill(lf_h_pid(h, LF_H_SCHEDULER, 0), 0), 0, "the scheduler is gone");
    /* intake with the other key: new secrets refused, other changes go through */
    lf_h_start(h, LF_H_INTAKE, 0);
    char *before = lf_h_sql(h, "SELECT notify::text FROM reps WHERE id = 'wang.fang'");
    json_t *out = NULL;
    cr_expect_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/li.ming",
                         "{\"notify\": [{\"type\": \"feishu\", \"url\": "
                         "\"http://127.0.0.1:9/open-apis/bot/v2/hook/f1\", \"secret\": "
                         "\"SECfei\"}]}",
                         &out),
                 503);
    cr_expect_str_eq(json_string_value(json_object_get(out, "error")),
                     "secret_key_unavailable");
    const char *msg = json_string_value(json_object_get(out, "message"));
    cr_expect(msg && strstr(msg, "another key"), "%s", msg ? msg : "-");
    json_decref(out);
    cr_expect_eq(
        s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang", "{\"capacity\": 9}", NULL),
        200, "a change that sets no secret");
    char *after = lf_h_sql(h, "SELECT notify::text FROM reps WHERE id = 'wang.fang'");
    cr_expect_str_eq(after, before, "the stored secret is kept as it was");
    free(before);
    free(after);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE id = 'li.ming' AND"
                                  " notify <> '[]'"),
                 0, "nothing stored");
    /* leadflow-migrate with the other key */
    lf_h_set_notify(h, "li.ming",
                    "[{\"type\": \"webhook\", \"url\": "
                    "\"http://127.0.0.1:9/h\", \"secret\": \"plain-one\"}]");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_SECRET_KEY=%s %s/leadflow-migrate"
             " >/dev/null 2>&1",
             lf_h_db_url(h), S_OTHER_KEY,
             getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin");
    cr_expect_neq(system(cmd), 0, "leadflow-migrate went on with the other key");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE notify::text LIKE"
                                  " '%plain-one%'"),
                 1, "encrypted with the other key");
    lf_h_destroy(&h);

    /* intake without a key */
    h = lf_h_new(0, 1);
    lf_h_env(h, "LEADFLOW_SECRET_KEY", "");
    lf_h_start(h, LF_H_INTAKE, 0);
    cr_expect_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang", dests, &out), 503);
    msg = json_string_value(json_object_get(out, "message"));
    cr_expect(msg && strstr(msg, "LEADFLOW_SECRET_KEY is not set"), "%s",
              msg ? msg : "-");
    json_decref(out);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM reps WHERE notify <> '[]'"), 0);
    lf_h_destroy(&h);
    lf_rcv_stop(&ding);
}

/* Runs leadflow-migrate --rotate-secret-key from old_key (NULL: not set) to new_key,
 * its log in <test dir>/rotate.log (appended). Returns the exit status. */
static int s_rotate(lf_h_t *h, const char *old_key, const char *new_key) {
    char cmd[1536];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_SECRET_KEY_OLD='%s'"
             " LEADFLOW_SECRET_KEY='%s' %s/leadflow-migrate --rotate-secret-key"
             " >>%s/rotate.log 2>&1",
             lf_h_db_url(h), old_key ? old_key : "", new_key,
             getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin", lf_h_dir(h));
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* How many lines of the rotation's log contain needle. */
static long s_rotate_log(lf_h_t *h, const char *needle) {
    char path[1024];
    snprintf(path, sizeof path, "%s/rotate.log", lf_h_dir(h));
    return lf_h_file_count(path, 0, needle);
}

#define S_NEW_KEY "5d1c3f0e9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3b4a5968778695a4b"

/* Rotating LEADFLOW_SECRET_KEY: with intake stopped, leadflow-migrate
 * --rotate-secret-key re-encrypts every stored secret (a rep's list set through the
 * API, the destinations it fanned out to) under the new key and encrypts the plain ones
 * (a rep's and a team's, written with SQL as before encryption), in one go; a second
 * run with the same pair changes not a byte; the old key no longer opens them; intake
 * and the scheduler restarted with the new key take a new secret and sign DingTalk and
 * webhook messages with the same secrets as before. */
Test(notify, rotating_the_secret_key_keeps_every_secret, .timeout = 90) {
    lf_rcv_t *ding = lf_rcv_start(0), *hook = lf_rcv_start(0);
    lf_rcv_default(ding, (lf_rcv_answer_t){.status = 200,
                                           .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    char dests[1024];
    snprintf(
        dests, sizeof dests,
        "{\"notify\": [{\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/robot/"
        "send?access_token=t1\", \"secret\": \"SECding-rot\"},"
        " {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/hook\","
        " \"secret\": \"whsec-rot\"}]}",
        lf_rcv_port(ding), lf_rcv_port(hook));
    cr_assert_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang", dests, NULL), 200);
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    lf_h_set_notify(h, "li.ming",
                    "[{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/h\","
                    " \"secret\": \"plain-rep\"}]");
    free(lf_h_sql(h,
                  "INSERT INTO notify_teams (team, notify) VALUES ('north', '[{\"type\":"
                  " \"webhook\", \"url\": \"http://127.0.0.1:9/n\", \"secret\":"
                  " \"plain-team\"}]') RETURNING 1"));
    const char *sealed_q =
        "SELECT count(*) FILTER (WHERE s LIKE 'enc:v1:%') || ' of ' || count(*) FROM ("
        " SELECT d ->> 'secret' AS s FROM reps, jsonb_array_elements(notify) d"
        "  WHERE d ? 'secret'"
        " UNION ALL SELECT d ->> 'secret' FROM notify_teams, "
        "jsonb_array_elements(notify) d"
        "  WHERE d ? 'secret'"
        " UNION ALL SELECT secret FROM notify_dests WHERE secret IS NOT NULL) x";
    char *got = lf_h_sql(h, sealed_q);
    cr_assert_str_eq(got, "4 of 6", "before: two plain secrets, four sealed");
    free(got);
    char *before = s_stored_secrets(h);
    lf_h_stop(h, LF_H_INTAKE, 0, 0);

    cr_assert_eq(s_rotate(h, LF_H_SECRET_KEY, S_NEW_KEY), 0, "the rotation failed");
    cr_expect_eq(s_rotate_log(h, "secrets_reencrypted=4 plain_secrets_encrypted=2"
                                 " already_under_the_new_key=0"),
                 1);
    got = lf_h_sql(h, sealed_q);
    cr_expect_str_eq(got, "6 of 6", "after: every secret sealed");
    free(got);
    char *after = s_stored_secrets(h);
    cr_expect_str_neq(after, before, "nothing was re-encrypted");
    cr_expect(!strstr(after, "SECding") && !strstr(after, "whsec") &&
                  !strstr(after, "plain-"),
              "a secret in plain text: %s", after);
    /* Again with the same pair: nothing changes. */
    cr_assert_eq(s_rotate(h, LF_H_SECRET_KEY, S_NEW_KEY), 0, "the second run failed");
    cr_expect_eq(s_rotate_log(h, "secrets_reencrypted=0 plain_secrets_encrypted=0"
                                 " already_under_the_new_key=6"),
                 1);
    char *again = s_stored_secrets(h);
    cr_expect_str_eq(again, after, "the second run rewrote secrets");
    free(again);
    /* The old key opens none of them now: leadflow-migrate with it refuses. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_SECRET_KEY=%s %s/leadflow-migrate"
             " >/dev/null 2>&1",
             lf_h_db_url(h), LF_H_SECRET_KEY,
             getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/bin");
    cr_expect_neq(system(cmd), 0, "the old key still opens the stored secrets");

    /* The services with the new key. */
    lf_h_env(h, "LEADFLOW_SECRET_KEY", S_NEW_KEY);
    lf_h_start(h, LF_H_INTAKE, 0);
    cr_expect_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/zhang.wei",
                         "{\"notify\": [{\"type\": \"webhook\", \"url\":"
                         " \"http://127.0.0.1:9/z\", \"secret\": \"whsec-new\"}]}",
                         NULL),
                 200, "intake with the new key refuses a new secret");
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    cr_assert_eq(lf_rcv_wait(ding, 1, 20000), 1, "DingTalk got nothing");
    cr_assert_eq(lf_rcv_wait(hook, 1, 20000), 1, "the webhook got nothing");
    s_expect_dingtalk_signed(ding, "SECding-rot",
                             "DingTalk signature after the rotation");
    s_expect_webhook_signed(hook, "whsec-rot", "webhook signature after the rotation");
    free(after);
    free(before);
    lf_h_destroy(&h);
    lf_rcv_stop(&ding);
    lf_rcv_stop(&hook);
}

/* A rotation that cannot move every secret moves none: a wrong old key, a stored secret
 * that opens with neither key (sealed under a third one) while the others would
 * rotate, and a missing old key each exit 1 with a clear line, and the stored bytes
 * stay as they were. */
Test(notify, a_rotation_with_a_wrong_old_key_changes_nothing, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    cr_assert_eq(s_patch(h, lf_h_admin_key(h), "/v1/reps/wang.fang",
                         "{\"notify\": [{\"type\": \"webhook\", \"url\":"
                         " \"http://127.0.0.1:9/w\", \"secret\": \"whsec-1\"}]}",
                         NULL),
                 200);
    lf_h_stop(h, LF_H_INTAKE, 0, 0);
    char *before = s_stored_secrets(h);
    cr_expect_eq(s_rotate(h, S_OTHER_KEY, S_NEW_KEY), 1, "a wrong old key went through");
    cr_expect_eq(s_rotate_log(h, "the secret of reps wang.fang (destination 1) opens"
                                 " with neither the old key nor the new one; nothing"
                                 " was changed"),
                 1);
    char *now = s_stored_secrets(h);
    cr_expect_str_eq(now, before, "a wrong old key changed a stored secret");
    free(now);
    /* The right old key, but one secret (a destination row) sealed under a third key:
     * the rep's, which would rotate, stays as it was too. */
    char err[256], *third = NULL;
    lf_secret_key_t *k = NULL;
    cr_assert_eq(lf_secret_key_parse(S_OTHER_KEY, &k, err, sizeof err), 0, "%s", err);
    third = lf_secret_seal(k, "whsec-third");
    lf_secret_key_destroy(&k);
    cr_assert(third);
    char q[1024];
    snprintf(q, sizeof q,
             "INSERT INTO notify_dests (key, type, url, secret) VALUES ('zz-third',"
             " 'webhook', 'http://127.0.0.1:9/t', '%s') RETURNING 1",
             third);
    free(third);
    free(lf_h_sql(h, q));
    free(before);
    before = s_stored_secrets(h);
    cr_expect_eq(s_rotate(h, LF_H_SECRET_KEY, S_NEW_KEY), 1,
                 "a secret under a third key went through");
    cr_expect_eq(
        s_rotate_log(h, "the secret of notify_dests zz-third opens with neither"), 1);
    now = s_stored_secrets(h);
    cr_expect_str_eq(now, before, "a rotation that failed changed a stored secret");
    free(now);
    /* No old key at all. */
    cr_expect_eq(s_rotate(h, NULL, S_NEW_KEY), 1);
    cr_expect_eq(s_rotate_log(h, "needs the old key in LEADFLOW_SECRET_KEY_OLD"), 1);
    now = s_stored_secrets(h);
    cr_expect_str_eq(now, before);
    free(now);
    free(before);
    lf_h_destroy(&h);
}

/* A team destination's secret named in routing.json instead of written there: one from
 * an environment variable of the scheduler (secret_env), one from a file (secret_file,
 * as a container secret is mounted). Messages are signed with those secrets, they are
 * stored encrypted like any other, and neither the secrets nor the references appear in
 * PostgreSQL in plain text. A variable that is not set stops the scheduler with the
 * destination and the variable named. */
Test(notify, team_secrets_from_the_environment_or_a_file, .timeout = 60) {
    lf_rcv_t *hook = lf_rcv_start(0), *ding = lf_rcv_start(0);
    lf_rcv_default(ding, (lf_rcv_answer_t){.status = 200,
                                           .body = "{\"errcode\":0,\"errmsg\":\"ok\"}"});
    lf_h_t *h = lf_h_new(0, 1);
    char path[1024], cfg[1536];
    snprintf(path, sizeof path, "%s/ding.secret", lf_h_dir(h));
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("SECding-file\n", f);
    fclose(f);
    snprintf(cfg, sizeof cfg,
             "{\"default_team\": null, \"default_policy\": \"round_robin\","
             " \"default_fallback\": {\"queue\": \"unassigned\"}, \"teams\": {\"east\":"
             " {\"manager\": \"li.ming\", \"notify\": ["
             "{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:%d/team\","
             " \"secret_env\": \"LF_TEST_EAST_HOOK_SECRET\"},"
             " {\"type\": \"dingtalk\", \"url\": \"http://127.0.0.1:%d/robot/send?"
             "access_token=t9\", \"secret_file\": \"%s\"}]}}}",
             lf_rcv_port(hook), lf_rcv_port(ding), path);
    lf_h_config(h, "routing.json", cfg);
    lf_h_env(h, "LF_TEST_EAST_HOOK_SECRET", "whsec-env");
    lf_h_notify_fast(h);
    lf_h_start(h, LF_H_SCHEDULER, 0);
    s_notifications(h, 1, 1, "wang.fang", "lead_assigned");
    cr_assert_eq(lf_rcv_wait(hook, 1, 20000), 1, "the team webhook got nothing");
    cr_assert_eq(lf_rcv_wait(ding, 1, 20000), 1, "the team's DingTalk got nothing");
    s_expect_webhook_signed(hook, "whsec-env",
                            "webhook signed with the secret from the environment");
    s_expect_dingtalk_signed(ding, "SECding-file",
                             "DingTalk signed with the secret from the file");
    char *all = s_stored_secrets(h);
    cr_expect(!strstr(all, "whsec-env") && !strstr(all, "SECding-file") &&
                  !strstr(all, "secret_env") && !strstr(all, "secret_file"),
              "stored: %s", all);
    free(all);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM notify_teams,"
                                  " jsonb_array_elements(notify) d WHERE team = 'east'"
                                  " AND d ->> 'secret' LIKE 'enc:v1:%'"),
                 2, "the team's two secrets are not stored encrypted");
    lf_h_destroy(&h);
    lf_rcv_stop(&hook);
    lf_rcv_stop(&ding);

    /* The variable not set: the scheduler does not start, and says which. */
    char cmd[1536];
    const char *bin = getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin";
    snprintf(
        cmd, sizeof cmd,
        "d=$(mktemp -d) && cp config/*.json $d/ && printf '%%s' '{\"teams\": {\"east\":"
        " {\"notify\": [{\"type\": \"webhook\", \"url\": \"http://x\", \"secret_env\":"
        " \"LF_TEST_UNSET_SECRET\"}]}}}' > $d/routing.json && LEADFLOW_CONFIG_DIR=$d "
        "LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:%s/postgres"
        " %s/leadflow-scheduler 2>&1 | grep -q 'teams.east.notify\\[0\\]: secret_env:"
        " LF_TEST_UNSET_SECRET is not set'; rc=$?; rm -rf $d; exit $rc",
        getenv("LF_TEST_PG_PORT"), bin);
    cr_expect_eq(system(cmd), 0, "an unset secret_env was not refused clearly");
}
