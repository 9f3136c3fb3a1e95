/* lf_event_head against jansson's whole parse: the same seq, type and lead_id for every
 * envelope both read, the same verdict for every envelope it calls malformed, and the
 * texts it cannot judge left to jansson. Then lf_event_recv_head over real sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/event_head.h"

#include "../support/head_agree.h"

/* An envelope as the router's batch path writes it. */
static const char *const s_env =
    "{\"v\":1,\"seq\":1234567,\"event_id\":\"0190c3b2-7d1e-4abc-8def-0123456789ab\","
    "\"type\":\"lead.assigned\",\"lead_id\":\"0190c3b2-7d1e-7abc-8def-0123456789ab\","
    "\"at\":\"2026-12-03T07:41:05.123456Z\",\"payload\":{\"grade\":\"B\",\"score\":62,"
    "\"owner\":\"rep-017\",\"queue\":null,\"reason\":\"skills \\\"and\\\" territory\","
    "\"tags\":[1,[2,{\"seq\":9}],\"x\"],\"team\":\"north\",\"pool_reason\":null}}";

static lf_head_rc s_head(const char *text, json_t **out) {
    return lf_event_head(text, strlen(text), NULL, out);
}

static const char *const s_top[] = {"at", NULL};
static const char *const s_payload[] = {"grade", "owner", "missing", NULL};
static const lf_head_keep_t s_keep = {"lead.assigned", s_top, s_payload};

/* lf_event_head agrees with jansson on text, with keep (tests/support/head_agree.c). */
static void s_agree_keep(const char *text, size_t len, const lf_head_keep_t *keep) {
    const char *why = lf_head_disagreement(text, len, keep);
    cr_assert_null(why, "%s (keep %s): %.*s", why ? why : "", keep ? keep->type : "none",
                   (int)len, text);
}

static void s_agree(const char *text, size_t len) {
    s_agree_keep(text, len, NULL);
    s_agree_keep(text, len, &s_keep);
}

/* Each of the n texts reads as rc with keep (NULL: seq, type, lead_id only), with no
 * envelope unless LF_HEAD_OK, and agrees with jansson's reading (s_agree). */
static void s_expect_all(const char *const *texts, size_t n, const lf_head_keep_t *keep,
                         lf_head_rc rc) {
    for (size_t i = 0; i < n; i++) {
        json_t *h = NULL;
        cr_expect_eq(lf_event_head(texts[i], strlen(texts[i]), keep, &h), rc, "%.60s",
                     texts[i]);
        cr_expect_eq(h != NULL, rc == LF_HEAD_OK, "%.60s", texts[i]);
        json_decref(h);
        s_agree(texts[i], strlen(texts[i]));
    }
}

Test(event_head, reads_an_envelope_as_jansson_does) {
    json_t *h = NULL;
    cr_assert_eq(s_head(s_env, &h), LF_HEAD_OK);
    cr_expect_eq(lf_event_seq(h), 1234567, "the nested \"seq\" is not the envelope's");
    cr_expect_str_eq(lf_event_type(h), "lead.assigned");
    cr_expect_str_eq(lf_event_lead(h), "0190c3b2-7d1e-7abc-8def-0123456789ab");
    cr_expect_null(lf_event_payload(h), "a light envelope carries no payload");
    json_decref(h);
    s_agree(s_env, strlen(s_env));
}

Test(event_head, any_key_order_spacing_and_the_last_of_a_repeated_key) {
    const char *texts[] = {
        /* jsonb's text form: keys by length, a space after ':' and ',' */
        "{\"v\": 1, \"at\": \"2026-12-03T07:41:05Z\", \"seq\": 88, \"type\": "
        "\"lead.created\","
        " \"lead_id\": \"L-1\", \"payload\": {}}",
        " \n{ \"type\" :\"deal.won\",\r\n\t\"seq\" : 5 } \n",
        "{\"seq\":1,\"type\":\"a\",\"seq\":2,\"type\":\"b\",\"lead_id\":\"x\",\"lead_"
        "id\":\"y\"}",
        "{\"seq\":3,\"type\":\"\",\"lead_id\":null}",
        "{\"seq\":4,\"type\":\"t\",\"lead_id\":17}",
        "{\"seq\":999999999999999999,\"type\":\"t\"}",
        "{\"seq\":6,\"type\":\"电话线索\",\"lead_id\":\"客户-1\"}",
    };
    s_expect_all(texts, sizeof texts / sizeof texts[0], NULL, LF_HEAD_OK);
    json_t *h = NULL;
    s_head(texts[2], &h);
    cr_expect_eq(lf_event_seq(h), 2);
    cr_expect_str_eq(lf_event_type(h), "b");
    cr_expect_str_eq(lf_event_lead(h), "y");
    json_decref(h);
}

Test(event_head, keeps_the_fields_a_consumer_names_for_its_type_only) {
    json_t *h = NULL;
    cr_assert_eq(lf_event_head(s_env, strlen(s_env), &s_keep, &h), LF_HEAD_OK);
    cr_expect_str_eq(json_string_value(json_object_get(h, "at")),
                     "2026-12-03T07:41:05.123456Z");
    const json_t *pl = lf_event_payload(h);
    cr_expect_str_eq(json_string_value(json_object_get(pl, "grade")), "B");
    cr_expect_str_eq(json_string_value(json_object_get(pl, "owner")), "rep-017");
    cr_expect_eq(json_object_size(pl), 2u, "score, team and the rest are not kept");
    cr_expect_null(json_object_get(h, "event_id"));
    json_decref(h);
    const char *texts[] = {
        /* another type: whole */
        "{\"seq\":1,\"type\":\"lead.reassigned\",\"payload\":{\"grade\":\"A\"}}",
        /* a kept field that is not a string, or escaped: whole */
        "{\"seq\":1,\"type\":\"lead.assigned\",\"at\":5}",
        "{\"seq\":1,\"type\":\"lead.assigned\",\"payload\":{\"grade\":[\"A\"]}}",
        "{\"seq\":1,\"type\":\"lead.assigned\",\"payload\":{\"owner\":\"r\\u0031\"}}",
        "{\"seq\":1,\"type\":\"lead.assigned\",\"payload\":\"text\"}",
        "{\"seq\":1,\"type\":\"lead.assigned\",\"payload\":{\"gr\\u0061de\":\"A\"}}",
    };
    s_expect_all(texts, sizeof texts / sizeof texts[0], &s_keep, LF_HEAD_WHOLE);
    const char *light[] = {
        "{\"seq\":1,\"type\":\"lead.assigned\"}", /* no payload: none kept */
        "{\"seq\":1,\"type\":\"lead.assigned\",\"at\":null,\"payload\":{\"owner\":null,"
        "\"owner\":\"r2\",\"n\":{\"grade\":\"X\"}}}",
    };
    s_expect_all(light, sizeof light / sizeof light[0], &s_keep, LF_HEAD_OK);
}

Test(event_head, what_jansson_drops_is_malformed) {
    const char *texts[] = {
        "{\"type\":\"x\"}",
        "{\"seq\":1}",
        "{\"seq\":0,\"type\":\"x\"}",
        "{\"seq\":-3,\"type\":\"x\"}",
        "{\"seq\":1.5,\"type\":\"x\"}",
        "{\"seq\":1e3,\"type\":\"x\"}",
        "{\"seq\":\"5\",\"type\":\"x\"}",
        "{\"seq\":true,\"type\":\"x\"}",
        "{\"seq\":null,\"type\":\"x\"}",
        "{\"seq\":5,\"type\":7}",
        "{\"seq\":5,\"type\":null}",
        "{\"seq\":5,\"type\":{\"a\":1}}",
        "{\"seq\":012,\"type\":\"x\"}",
        "{\"seq\":5,\"type\":\"\xff\xfe\"}",
        "{}",
    };
    s_expect_all(texts, sizeof texts / sizeof texts[0], NULL, LF_HEAD_MALFORMED);
}

Test(event_head, what_it_cannot_judge_is_left_to_jansson) {
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "{\"seq\":1,\"type\":\"x\",\"p\":[");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s%d", i ? "," : "", i);
    snprintf(many + n, sizeof many - n, "]}");
    const char *texts[] = {
        "{\"se\\u0071\":1,\"type\":\"x\"}",            /* an escaped key */
        "{\"seq\":1,\"type\":\"lead\\u002ecreated\"}", /* an escaped type */
        "{\"seq\":1,\"type\":\"x\",\"lead_id\":\"a\\\"b\"}",
        "{\"seq\":1,\"type\":\"a\tb\"}",                /* a raw control character */
        "{\"seq\":1000000000000000000,\"type\":\"x\"}", /* 19 digits */
        "{\"seq\":1,\"type\":\"x\"} trailing",
        "{\"seq\":1,\"type\":\"x\"}{}",
        "{\"seq\":1,\"type\":\"x\"", /* cut short */
        "[{\"seq\":1,\"type\":\"x\"}]",
        "not json",
        "",
        many, /* more tokens than the reader holds */
    };
    s_expect_all(texts, sizeof texts / sizeof texts[0], NULL, LF_HEAD_WHOLE);
}

Test(event_head, a_nul_byte_after_the_object_is_not_whitespace) {
    const char text[] = "{\"seq\":1,\"type\":\"x\"}\0";
    json_t *h = NULL;
    cr_expect_eq(lf_event_head(text, sizeof text - 1, NULL, &h), LF_HEAD_WHOLE);
    cr_expect_null(h);
    s_agree(text, sizeof text - 1);
}

/* Every way of cutting the envelope short, and many random bytes overwritten: whatever
 * lf_event_head decides must agree with the whole parse (s_agree). */
Test(event_head, mutated_envelopes_never_disagree_with_jansson) {
    size_t len = strlen(s_env);
    char buf[1024];
    for (size_t cut = 0; cut <= len; cut++) {
        memcpy(buf, s_env, cut);
        s_agree(buf, cut);
    }
    const char alphabet[] = "{}[]\",:\\ 0123456789-.eEtrufalsn\x01\x80xyz";
    unsigned long long x = 0x9e3779b97f4a7c15ull; /* xorshift64: fixed seed */
    int ok = 0, malformed = 0, unsure = 0;
    for (int round = 0; round < 60000; round++) {
        memcpy(buf, s_env, len + 1);
        int flips = 1 + (int)(x % 3);
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % len);
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[at] = alphabet[x % (sizeof alphabet - 1)];
        }
        json_t *h = NULL;
        lf_head_rc rc = lf_event_head(buf, len, NULL, &h);
        json_decref(h);
        ok += rc == LF_HEAD_OK, malformed += rc == LF_HEAD_MALFORMED,
            unsure += rc == LF_HEAD_WHOLE;
        s_agree(buf, len);
    }
    /* The mutations reach all three outcomes, so each branch above was compared. */
    cr_expect_gt(ok, 1000);
    cr_expect_gt(malformed, 100);
    cr_expect_gt(unsure, 1000);
}

Test(event_head, recv_head_over_sockets_reads_light_drops_bad_and_falls_back) {
    void *ctx = zmq_ctx_new();
    void *pub = lf_zmq_pub(ctx, "inproc://head1");
    const char *eps[] = {"inproc://head1", NULL};
    void *sub = lf_zmq_sub(ctx, eps, NULL);
    usleep(100 * 1000);
    const char *escaped = "{\"seq\":8,\"type\":\"lead\\u002eassigned\",\"payload\":{}}";
    cr_assert_eq(lf_event_send_raw(pub, "lead.assigned", s_env, strlen(s_env)), 0);
    cr_assert_eq(lf_event_send_raw(pub, "x", "{\"seq\":0,\"type\":\"x\"}", 20), 0);
    cr_assert_eq(lf_event_send_raw(pub, "lead.assigned", escaped, strlen(escaped)), 0);
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, 2000), 1);
    usleep(100 * 1000);
    json_t *a = lf_event_recv_head(sub, NULL);
    cr_assert(a);
    cr_expect_eq(lf_event_seq(a), 1234567);
    cr_expect_eq(json_object_size(a), 3u, "the light envelope: seq, type, lead_id");
    json_t *b = lf_event_recv_head(sub, NULL);
    cr_assert_null(b, "seq 0 is dropped");
    json_t *c = lf_event_recv_head(sub, NULL);
    cr_assert(c, "the escaped type is parsed whole");
    cr_expect_str_eq(lf_event_type(c), "lead.assigned");
    cr_expect(json_is_object(lf_event_payload(c)), "the whole envelope, payload and all");
    cr_expect_null(lf_event_recv_head(sub, NULL), "nothing else is waiting");
    json_decref(a);
    json_decref(c);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}
