/* notify_setup.h - the setup that notification tests share: reps whose destinations
 * are loopback receivers (receiver.h), and delivery settings fast enough for a test. */
#ifndef LF_TEST_NOTIFY_SETUP_H
#define LF_TEST_NOTIFY_SETUP_H

#include "harness.h"
#include "receiver.h"

/* Retries in tenths of seconds instead of minutes, 50 ms polls and a 1 s timeout, for
 * the services started from now on. */
void lf_h_notify_fast(lf_h_t *h);
/* Sets rep's destinations (a JSON list) in PostgreSQL; aborts the test when rep does
 * not exist. */
void lf_h_set_notify(lf_h_t *h, const char *rep, const char *json);
/* Makes receiver r rep's only destination: {"type": type, "url":
 * "http://127.0.0.1:<port><path>"} and the members in extra (e.g. "\"secret\": \"s\"",
 * or NULL), and sets the fast delivery settings (lf_h_notify_fast). */
void lf_h_notify_to(lf_h_t *h, const char *rep, lf_rcv_t *r, const char *type,
                    const char *path, const char *extra);

#endif
