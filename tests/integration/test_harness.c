/* The test harness itself (tests/support/harness.c): the ports it gives the services. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(harness, .fini = lf_h_fini);

/* A socket bound to 127.0.0.1:port, as the local end of another process's connection
 * holds it (not listening: a connection to it is refused at once). */
static int s_hold(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "port %d held", port);
    return fd;
}

/* The port a test picked can be taken before the service binds it (seen once in a
 * CI-like run: "Address already in use"). Here it is taken for sure, for intake's HTTP
 * and events ports and the router's and scheduler's events ports: each service starts
 * on new ports, and the services reach each other. The old harness failed ("intake did
 * not become healthy"). */
Test(harness, a_service_whose_port_was_taken_starts_again_on_new_ports, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    int http = lf_h_http_port(h);
    int held[4] = {s_hold(http), s_hold(lf_h_zmq_port(h, LF_H_INTAKE)),
                   s_hold(lf_h_zmq_port(h, LF_H_ROUTER)),
                   s_hold(lf_h_zmq_port(h, LF_H_SCHEDULER))};
    int zmq[3] = {lf_h_zmq_port(h, LF_H_INTAKE), lf_h_zmq_port(h, LF_H_ROUTER),
                  lf_h_zmq_port(h, LF_H_SCHEDULER)};
    lf_h_start_all(h, LF_H_INTAKE | LF_H_ROUTER | LF_H_SCHEDULER);
    cr_expect_neq(lf_h_http_port(h), http, "intake moved to another HTTP port");
    cr_expect_neq(lf_h_zmq_port(h, LF_H_INTAKE), zmq[0]);
    cr_expect_neq(lf_h_zmq_port(h, LF_H_ROUTER), zmq[1]);
    cr_expect_neq(lf_h_zmq_port(h, LF_H_SCHEDULER), zmq[2]);
    json_t *o = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"phone\":\"13800138000\"}", &o), 201);
    char q[256];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM timers t JOIN leads l ON l.id = t.lead_id "
             "WHERE l.id = '%s' AND l.owner IS NOT NULL",
             json_string_value(json_object_get(o, "id")));
    json_decref(o);
    cr_expect(lf_h_wait_sql(h, q, "1", 20000), "the lead is routed and timed");
    for (int i = 0; i < 4; i++)
        close(held[i]);
    lf_h_destroy(&h);
}

/* The kernel gives outgoing connections (libpq, curl, ZeroMQ reconnecting) ports of
 * its ephemeral range, so a port chosen there and released can be taken before the
 * service binds it. The harness's ports lie below that range. The old harness took
 * them from it (bind to port 0). */
Test(harness, free_ports_lie_outside_the_ephemeral_range) {
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        cr_assert_eq(fscanf(f, "%d %d", &lo, &hi), 2);
        fclose(f);
    }
    for (int i = 0; i < 500; i++) {
        int port = lf_h_free_port();
        cr_assert(port > 0 && (port < lo || port > hi), "port %d in %d-%d", port, lo, hi);
    }
}
