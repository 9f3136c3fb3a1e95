/* Envelopes over real ZeroMQ sockets (inproc), including malformed messages. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "lf/event.h"

Test(event, envelope_round_trip_and_topic_filter) {
    void *ctx = zmq_ctx_new();
    void *pub = lf_zmq_pub(ctx, "inproc://ev1");
    cr_assert(pub);
    const char *eps[] = {"inproc://ev1", NULL};
    const char *topics[] = {"lead.created", NULL};
    void *sub = lf_zmq_sub(ctx, eps, topics);
    cr_assert(sub);
    usleep(100 * 1000); /* let the subscription reach the publisher */
    json_t *env = json_pack("{s:i, s:i, s:s, s:s, s:s, s:{s:s}}", "v", 1, "seq", 42,
                            "type", "lead.created", "lead_id", "L1", "at",
                            "2026-01-01T00:00:00.000Z", "payload", "channel", "api");
    json_t *other =
        json_pack("{s:i, s:i, s:s}", "v", 1, "seq", 43, "type", "lead.assigned");
    cr_assert_eq(lf_event_send(pub, other), 0);
    cr_assert_eq(lf_event_send(pub, env), 0);
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, 2000), 1);
    json_t *got = lf_event_recv(sub);
    cr_assert(got);
    cr_expect_eq(lf_event_seq(got), 42, "the unsubscribed type was filtered out");
    cr_expect_str_eq(lf_event_lead(got), "L1");
    cr_expect_str_eq(json_string_value(json_object_get(lf_event_payload(got), "channel")),
                     "api");
    json_decref(got);
    json_decref(env);
    json_decref(other);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}

Test(event, malformed_messages_are_dropped_not_fatal) {
    void *ctx = zmq_ctx_new();
    void *pub = lf_zmq_pub(ctx, "inproc://ev2");
    const char *eps[] = {"inproc://ev2", NULL};
    void *sub = lf_zmq_sub(ctx, eps, NULL);
    usleep(100 * 1000);
    const char *bad[] = {"not json", "[]", "{\"type\":\"x\"}", "{\"seq\":1}",
                         "{\"type\":\"x\",\"seq\":0}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(lf_event_send_raw(pub, "x", bad[i], strlen(bad[i])), 0);
    zmq_send(pub, "lonely-topic-frame", 18, 0); /* no body frame */
    lf_event_send_raw(pub, "x", "{\"type\":\"x\",\"seq\":7}", 20);
    usleep(200 * 1000);
    json_t *got = NULL;
    for (int i = 0; i < 10 && !got; i++)
        got = lf_event_recv(sub);
    cr_assert(got, "the valid message after the bad ones was not received");
    cr_expect_eq(lf_event_seq(got), 7);
    json_decref(got);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}

Test(event, bind_failure_returns_null) {
    void *ctx = zmq_ctx_new();
    void *a = lf_zmq_pub(ctx, "inproc://ev3");
    cr_assert(a);
    cr_expect_null(lf_zmq_pub(ctx, "inproc://ev3"),
                   "second bind of one endpoint must fail");
    cr_expect_null(lf_zmq_pub(ctx, "nonsense://"));
    zmq_close(a);
    zmq_ctx_term(ctx);
}

/* A message with several extra frames is consumed whole: the next recv returns the
 * next message. The old code drained one extra frame only and then read the rest of
 * the message as messages of their own (the valid event after it was lost). */
Test(event, extra_frames_are_drained_and_the_next_message_is_intact) {
    void *ctx = zmq_ctx_new();
    void *pub = lf_zmq_pub(ctx, "inproc://ev4");
    const char *eps[] = {"inproc://ev4", NULL};
    void *sub = lf_zmq_sub(ctx, eps, NULL);
    usleep(100 * 1000);
    const char *first = "{\"type\":\"x\",\"seq\":8}";
    cr_assert_eq(zmq_send(pub, "x", 1, ZMQ_SNDMORE), 1);
    cr_assert_eq(zmq_send(pub, first, strlen(first), ZMQ_SNDMORE), (int)strlen(first));
    cr_assert_eq(zmq_send(pub, "extra-1", 7, ZMQ_SNDMORE), 7);
    cr_assert_eq(zmq_send(pub, "extra-2", 7, ZMQ_SNDMORE), 7);
    cr_assert_eq(zmq_send(pub, "{\"type\":\"x\",\"seq\":666}", 22, 0), 22);
    lf_event_send_raw(pub, "x", "{\"type\":\"x\",\"seq\":9}", 20);
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, 2000), 1);
    usleep(100 * 1000);
    json_t *a = lf_event_recv(sub);
    cr_assert(a);
    cr_expect_eq(lf_event_seq(a), 8);
    json_t *b = lf_event_recv(sub);
    cr_assert(b, "the message after the one with extra frames was not received whole");
    cr_expect_eq(lf_event_seq(b), 9, "got seq %lld", lf_event_seq(b));
    cr_expect_null(lf_event_recv(sub), "nothing else is waiting");
    json_decref(a);
    json_decref(b);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}
