/* notify_setup.c - reps whose destinations are loopback receivers (notify_setup.h). */
#include "notify_setup.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lf_h_notify_fast(lf_h_t *h) {
    lf_h_env(h, "LEADFLOW_NOTIFY_BACKOFF_MS", "100");
    lf_h_env(h, "LEADFLOW_NOTIFY_BACKOFF_MAX_MS", "800");
    lf_h_env(h, "LEADFLOW_NOTIFY_POLL_MS", "50");
    lf_h_env(h, "LEADFLOW_NOTIFY_TIMEOUT_MS", "1000");
}

void lf_h_set_notify(lf_h_t *h, const char *rep, const char *json) {
    char q[4096];
    snprintf(q, sizeof q, "UPDATE reps SET notify = '%s' WHERE id = '%s' RETURNING 1",
             json, rep);
    char *r = lf_h_sql(h, q);
    cr_assert(r && !strcmp(r, "1"), "cannot set %s's destinations", rep);
    free(r);
}

void lf_h_notify_to(lf_h_t *h, const char *rep, lf_rcv_t *r, const char *type,
                    const char *path, const char *extra) {
    char dests[1024];
    snprintf(dests, sizeof dests,
             "[{\"type\": \"%s\", \"url\": \"http://127.0.0.1:%d%s\"%s%s}]", type,
             lf_rcv_port(r), path, extra ? ", " : "", extra ? extra : "");
    lf_h_set_notify(h, rep, dests);
    lf_h_notify_fast(h);
}
