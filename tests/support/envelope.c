/* envelope.c - see envelope.h. */
#include "envelope.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

lf_h_sub_t lf_h_sub_open(lf_h_t *h, int service, const char *prefix, int timeout_ms) {
    lf_h_sub_t s = {zmq_ctx_new(), NULL};
    s.sub = zmq_socket(s.ctx, ZMQ_SUB);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", lf_h_zmq_port(h, service));
    cr_assert_eq(zmq_connect(s.sub, ep), 0);
    zmq_setsockopt(s.sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    zmq_setsockopt(s.sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    usleep(300 * 1000); /* the subscription reaches the publisher */
    return s;
}

void lf_h_sub_close(lf_h_sub_t *s) {
    zmq_close(s->sub);
    zmq_ctx_term(s->ctx);
    s->sub = s->ctx = NULL;
}

json_t *lf_h_recv_outbox_envelope(lf_h_t *h, lf_h_sub_t *s, const char *want_type) {
    char type[64] = "", env[8192] = "";
    int n = zmq_recv(s->sub, type, sizeof type - 1, 0);
    cr_assert_gt(n, 0, "a %s envelope is published", want_type);
    type[n] = '\0';
    n = zmq_recv(s->sub, env, sizeof env - 1, 0);
    cr_assert_gt(n, 0);
    env[n] = '\0';
    cr_expect_str_eq(type, want_type);
    PGconn *pg = PQconnectdb(lf_h_db_url(h));
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *p[] = {env};
    PGresult *r = PQexecParams(
        pg,
        "SELECT lf_envelope(o.id, o.event_id, o.type, o.lead_id, o.at, o.version, "
        "o.payload)::jsonb = $1::jsonb, lf_envelope(o.id, o.event_id, o.type, "
        "o.lead_id, o.at, o.version, o.payload)::text FROM outbox o "
        "WHERE o.id = ($1::jsonb ->> 'seq')::bigint",
        1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_eq(PQntuples(r), 1, "the envelope names its outbox row: %s", env);
    cr_expect_str_eq(PQgetvalue(r, 0, 0), "t", "published %s\nlf_envelope %s", env,
                     PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(pg);
    json_t *e = json_loads(env, 0, NULL);
    cr_assert(e, "the envelope is JSON: %s", env);
    return e;
}
