/* event.c - envelope transport over ZeroMQ PUB/SUB.
 *
 * PUB/SUB is chosen over PUSH/PULL because several services read the same event
 * (router, scheduler, analytics) and a slow reader must never slow intake down:
 * PUB drops for that subscriber instead, and the subscriber's sweep of the outbox
 * brings the event back. */
#include "lf/event.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "lf/event_head.h"
#include "lf/log.h"

void *lf_zmq_pub(void *ctx, const char *endpoint) {
    void *s = zmq_socket(ctx, ZMQ_PUB);
    if (!s)
        return NULL;
    int hwm = 100000, linger = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, endpoint) != 0) {
        lf_error("cannot bind events endpoint=%s err=%s", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

void *lf_zmq_sub(void *ctx, const char *const *endpoints, const char *const *topics) {
    void *s = zmq_socket(ctx, ZMQ_SUB);
    if (!s)
        return NULL;
    /* A consumer that falls behind would otherwise hold every waiting envelope in
     * memory (bench/memory.sh: 160 MiB for a 75,000-lead backlog at 100,000). Beyond
     * this many, ZeroMQ drops; the events are in the outbox, and the consumer's sweep
     * finds what it has not acknowledged. */
    int hwm = 4096, linger = 0;
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (!topics) {
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    } else {
        for (const char *const *t = topics; *t; t++)
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, *t, strlen(*t));
    }
    for (const char *const *e = endpoints; e && *e; e++) {
        if (!**e)
            continue;
        /* connect() is asynchronous: a producer that is not up yet is retried by
         * ZeroMQ in the background, which is what we want at start-up. */
        if (zmq_connect(s, *e) != 0) {
            lf_error("cannot connect events endpoint=%s err=%s", *e, zmq_strerror(errno));
            zmq_close(s);
            return NULL;
        }
    }
    return s;
}

int lf_event_send_raw(void *sock, const char *type, const char *json, size_t len) {
    if (zmq_send(sock, type, strlen(type), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    if (zmq_send(sock, json, len, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

int lf_event_send(void *sock, const json_t *env) {
    const char *type = lf_event_type(env);
    if (!type)
        return -1;
    char *text = json_dumps(env, JSON_COMPACT);
    if (!text)
        return -1;
    int rc = lf_event_send_raw(sock, type, text, strlen(text));
    free(text);
    return rc;
}

/* Takes one message off the socket into *body (its envelope frame). Returns 0, or -1
 * when nothing is waiting or the message has no body frame (*body is then closed). */
static int s_recv_body(void *sock, zmq_msg_t *body) {
    zmq_msg_t topic;
    zmq_msg_init(&topic);
    if (zmq_msg_recv(&topic, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&topic);
        return -1;
    }
    int more = zmq_msg_more(&topic);
    zmq_msg_close(&topic);
    if (!more) {
        lf_warn("event message without body frame dropped");
        return -1;
    }
    zmq_msg_init(body);
    if (zmq_msg_recv(body, sock, 0) < 0) {
        zmq_msg_close(body);
        return -1;
    }
    /* Drain every unexpected extra frame so the next recv starts on a message. The
     * MORE flag is the socket's (ZMQ_RCVMORE after each part): the body frame's own
     * flag says nothing about the frames after the first extra one. */
    if (zmq_msg_more(body)) {
        lf_warn("event message with extra frames (ignored)");
        int rcvmore = 1;
        size_t len = sizeof rcvmore;
        while (rcvmore) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            int rc = zmq_msg_recv(&extra, sock, 0);
            zmq_msg_close(&extra);
            if (rc < 0 || zmq_getsockopt(sock, ZMQ_RCVMORE, &rcvmore, &len) != 0)
                break;
        }
    }
    return 0;
}

/* The whole envelope of a body frame, or NULL (logged) when it is malformed. */
static json_t *s_parse(zmq_msg_t *body) {
    json_error_t jerr;
    json_t *env = json_loadb(zmq_msg_data(body), zmq_msg_size(body), 0, &jerr);
    if (!env || !json_is_object(env) || !lf_event_type(env) || lf_event_seq(env) <= 0) {
        lf_warn("malformed event dropped (its outbox row will be swept): %s",
                env ? "missing type or seq" : jerr.text);
        json_decref(env);
        return NULL;
    }
    return env;
}

json_t *lf_event_recv(void *sock) {
    zmq_msg_t body;
    if (s_recv_body(sock, &body) < 0)
        return NULL;
    json_t *env = s_parse(&body);
    zmq_msg_close(&body);
    return env;
}

json_t *lf_event_recv_head(void *sock, const lf_head_keep_t *keep) {
    zmq_msg_t body;
    if (s_recv_body(sock, &body) < 0)
        return NULL;
    json_t *env = NULL;
    /* A malformed text (rare) is parsed whole as well, so that the drop is logged with
     * jansson's reason, as on the whole path; the two agree on what they drop
     * (tests/support/head_agree.c). */
    if (lf_event_head(zmq_msg_data(&body), zmq_msg_size(&body), keep, &env) != LF_HEAD_OK)
        env = s_parse(&body);
    zmq_msg_close(&body);
    return env;
}

const char *lf_event_type(const json_t *env) {
    return json_string_value(json_object_get(env, "type"));
}

const char *lf_event_lead(const json_t *env) {
    return json_string_value(json_object_get(env, "lead_id"));
}

long long lf_event_seq(const json_t *env) {
    const json_t *v = json_object_get(env, "seq");
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

const json_t *lf_event_payload(const json_t *env) {
    return json_object_get(env, "payload");
}
