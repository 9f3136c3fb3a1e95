/* The test harness itself (tests/support/harness.c): the ports it gives the services. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
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

/* Whether process pid has ended: no such process, or a zombie that nobody reaps yet (in
 * a container, process 1 may not reap the orphans it adopts). */
static int s_gone(pid_t pid) {
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    int n = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return n == 1 && state == 'Z';
}

/* A test process killed by its time-out (or by hand) takes its services with it: here a
 * child process starts the router and is killed with SIGKILL, and the router must be gone
 * within 5 s. With the old harness it lived on, reparented, holding its ports and its
 * database connection after the test run (31 such services were found on the
 * development machine after one evening of suite runs). */
Test(harness, services_die_with_the_test_that_started_them, .timeout = 60) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        close(p[0]);
        lf_h_t *h = lf_h_new(0, 1);
        lf_h_start(h, LF_H_ROUTER, 0);
        pid_t svc = lf_h_pid(h, LF_H_ROUTER, 0);
        if (write(p[1], &svc, sizeof svc) != (ssize_t)sizeof svc)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    pid_t svc = 0;
    ssize_t got = read(p[0], &svc, sizeof svc);
    close(p[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert_eq(got, (ssize_t)sizeof svc, "the child started the router");
    cr_assert_gt(svc, 0);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = s_gone(svc);
        if (!gone) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (!gone)
        kill(svc, SIGKILL); /* leave nothing behind, then fail */
    cr_assert(gone, "router %d outlived the test process that started it", (int)svc);
}
